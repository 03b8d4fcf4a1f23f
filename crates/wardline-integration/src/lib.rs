//! The HL7 v2 integration engine: Wardline in the middle of a trust's feeds.
//!
//! * [`message_store`]: every message in or out is a FHIR `Communication`
//!   (raw text, ACK, status, errors, patient, resources touched).
//! * [`engine`]: inbound processing, ACK after commit, duplicates, reprocess.
//! * [`listener`]: the MLLP server.
//! * [`outbox`]: changes become outbound messages in the same transaction
//!   (a [`wardline_core::WriteHook`]); a dispatcher delivers them per
//!   destination, in order per patient, with retries and a dead-letter state.
//!
//! The v2 ↔ FHIR mappings themselves are in `wardline-hl7-fhir`, the syntax
//! in `wardline-hl7`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod engine;
pub mod listener;
pub mod message_store;
pub mod metrics;

pub use engine::{Engine, EngineConfig, Receipt, UnsupportedPolicy};
pub use listener::{ListenerConfig, serve};
pub mod outbox;

pub use outbox::{Destination, DispatchConfig, Dispatcher, OutboxHook};
