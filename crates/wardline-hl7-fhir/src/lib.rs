//! HL7 v2 ↔ FHIR R4 translation for Wardline's integration engine: this
//! crate translates, it holds no clinical rule of its own.
//!
//! * [`inbound`]: a parsed v2 message becomes calls inside one service
//!   transaction ([`records::TxRecords`]): plain finds and saves for what is
//!   only data (demographics, orders, results, documents), and the domain
//!   services of `wardline-workflow` for what has rules — a patient entering
//!   or leaving a bed goes through `adt::beds` (locks, bed checks, the bed
//!   master policy), A40 through `pmi::merge_in` (every reference repointed,
//!   Provenance, unmerge). The caller (the engine in `wardline-integration`)
//!   commits it with the message's record, so a message and all its effects
//!   commit together or not at all.
//! * [`outbound`]: a committed change to a FHIR resource (before/after)
//!   becomes the v2 message a downstream system expects (ADT, ORM, ORU,
//!   SIU), or none. It only reads, through [`Records`]; its tests run
//!   against [`memory::MemoryRecords`].
//!
//! UK conventions (see `ARCHITECTURE.md`, "HL7 v2 mappings"): the NHS number
//! is the PID-3 repetition whose assigning authority (CX-4) is `NHS` (or
//! whose identifier type CX-5 is `NH`), stored with the system
//! [`NHS_NUMBER_SYSTEM`]; other PID-3 repetitions are local numbers whose
//! system is built by [`MappingConfig::local_system`].
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod codes;
pub mod inbound;
pub mod memory;
pub mod outbound;
pub mod records;

use serde_json::Value;
use wardline_hl7::ErrorDetail;

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// Access to the record for a mapping: find, read, save. Implemented over a
/// service transaction by [`records::TxRecords`] and in memory by
/// [`memory::MemoryRecords`] (outbound tests). Clinical rules (beds, merges)
/// are not here: the inbound mapping calls the domain services of
/// `wardline-workflow` for them.
pub trait Records {
    /// The current (not deleted) resource of `resource_type` carrying the
    /// identifier `system|value`, or `None`. A Patient merged away (`link`
    /// of type `replaced-by`) does not match when its survivor does (the
    /// survivor carries its identifiers). More than one match is an error.
    fn find_by_identifier(
        &mut self,
        resource_type: &str,
        system: &str,
        value: &str,
    ) -> Result<Option<Value>, MapError>;

    /// The current (not deleted) resource, or `None`.
    fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<Value>, MapError>;

    /// Creates the resource (when it has no `id`; the id is assigned) or
    /// creates/updates it under its `id`. Returns the id. The resource is
    /// validated against FHIR R4 on save; an invalid one is an error.
    fn save(&mut self, resource: Value) -> Result<String, MapError>;
}

/// Why a message could not be mapped. Becomes the ACK's ERR segment.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{text}")]
pub struct MapError {
    pub kind: MapErrorKind,
    /// HL7 table 0357 code (`wardline_hl7::ack::error_code`), e.g. 101
    /// required field missing, 102 data type error, 103 table value not
    /// found, 200 unsupported message type, 201 unsupported event code, 204
    /// unknown key identifier, 207 application internal error.
    pub code: u16,
    /// Segment id and field (`PID-3`, `PV1-3`, `OBR[2]-4`) when known.
    pub location: Option<String>,
    /// A sentence for the sender's support team, naming the value at fault.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapErrorKind {
    /// The content is wrong (missing/invalid field, unknown patient): `AE`.
    /// Resending the same message will fail again.
    Content,
    /// The message type or trigger event is not mapped: stored, and
    /// acknowledged or rejected per configuration.
    Unsupported,
    /// The record could not be read or written (store failure): `AR`,
    /// the sender should resend later.
    Internal,
}

impl MapError {
    pub fn content(code: u16, location: Option<&str>, text: impl Into<String>) -> MapError {
        MapError {
            kind: MapErrorKind::Content,
            code,
            location: location.map(str::to_owned),
            text: text.into(),
        }
    }

    pub fn unsupported(code: u16, text: impl Into<String>) -> MapError {
        MapError {
            kind: MapErrorKind::Unsupported,
            code,
            location: None,
            text: text.into(),
        }
    }

    pub fn internal(text: impl Into<String>) -> MapError {
        MapError {
            kind: MapErrorKind::Internal,
            code: 207,
            location: None,
            text: text.into(),
        }
    }

    /// The ACK ERR detail for this error.
    pub fn to_detail(&self) -> ErrorDetail {
        let d = ErrorDetail::new(self.code, self.text.clone());
        match self
            .location
            .as_deref()
            .and_then(|l| l.parse::<wardline_hl7::Path>().ok())
        {
            Some(p) => d.at(&p),
            None => d,
        }
    }
}

/// Site-specific choices for both directions.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Base of identifier systems for local numbers: a PID-3 repetition with
    /// assigning authority `RFH` and type `MR` gets the system
    /// `{identifier_base}/rfh-mr`; visit numbers `{identifier_base}/visit`,
    /// placer/filler order numbers `{identifier_base}/placer-order`,
    /// `{identifier_base}/filler-order`, locations `{identifier_base}/location`,
    /// consultant codes `{identifier_base}/consultant` (unless the code looks
    /// like a GMC number: 7 digits → `https://fhir.hl7.org.uk/Id/gmc-number`).
    pub identifier_base: String,
    /// MSH-3/MSH-4 this system puts on outbound messages.
    pub sending_application: String,
    pub sending_facility: String,
    /// Who is master of the beds when a message puts a patient in a bed
    /// Wardline holds otherwise (see `wardline_workflow::adt::beds`).
    pub bed_master: wardline_workflow::adt::BedMaster,
}

impl Default for MappingConfig {
    fn default() -> Self {
        MappingConfig {
            identifier_base: "https://fhir.wardline.invalid/Id".into(),
            sending_application: "WARDLINE".into(),
            sending_facility: "WARDLINE".into(),
            bed_master: wardline_workflow::adt::BedMaster::default(),
        }
    }
}

impl MappingConfig {
    /// System for a local identifier from its assigning authority and type.
    pub fn local_system(&self, authority: &str, type_code: &str) -> String {
        let slug = |s: &str| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        };
        match (authority.is_empty(), type_code.is_empty()) {
            (true, true) => format!("{}/local", self.identifier_base),
            (false, true) => format!("{}/{}", self.identifier_base, slug(authority)),
            (true, false) => format!("{}/{}", self.identifier_base, slug(type_code)),
            (false, false) => format!(
                "{}/{}-{}",
                self.identifier_base,
                slug(authority),
                slug(type_code)
            ),
        }
    }
}
