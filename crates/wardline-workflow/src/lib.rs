//! Workflow services: what clerks, nurses and bed managers do, as operations
//! over FHIR resources in the one store. Nothing here has a schema of its
//! own: a workflow reads and writes resources through
//! [`wardline_core::FhirService`] with the caller's
//! [`wardline_core::Access`], so every step is authorised, validated,
//! indexed and audited like a REST interaction, and committed in one
//! transaction.
//!
//! * [`pmi`] — the Patient Master Index: search, registration with NHS
//!   number checks, scored duplicate detection with a review queue, and
//!   merge / unmerge with `Patient/$merge` semantics, also served over
//!   FHIR REST as `POST Patient/$merge`.
//! * [`chart`] — the chart summary behind the patient banner.
//! * [`fhir`] — the one way workflows read: FHIR interactions through the
//!   service with the caller's access.
//! * [`adt`] — admission, transfer, discharge and their cancellations as
//!   `Encounter` location history and `Location` bed state; the bed board.
//!
//! The web UI (`wardline-web`) and the FHIR operations call these; they hold
//! no rules of their own.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod adt;
pub mod chart;
pub mod fhir;
pub mod pmi;

use wardline_core::FhirService;

/// The service with the workflows' FHIR operations registered
/// (`Patient/$merge`); the server's composition root calls this.
pub fn with_operations(svc: FhirService) -> FhirService {
    svc.with_operation(pmi::MergeOperation::spec())
}
