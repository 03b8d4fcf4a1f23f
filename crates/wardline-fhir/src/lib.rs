//! The FHIR R4 domain of Wardline. This crate does no IO beyond reading the
//! specification data compiled into it.
//!
//! * [`error`]: [`FhirError`], the one error type every layer speaks, which renders
//!   as an `OperationOutcome` with an HTTP status.
//! * [`nhs_number`]: Modulus 11 validation and formatting of NHS numbers.
//! * [`hospital_number`]: a trust's hospital-number scheme (system, prefix,
//!   width, Luhn check digit): formatting and checking.
//! * [`phonetic`]: Double Metaphone codes of names (the `phonetic` search
//!   parameter, patient matching).
//! * [`definitions`]: the R4 resource and data-type model and search parameters,
//!   compiled from the official CC0 definition bundles (see `data/README.md`).
//! * [`json`]: parsing FHIR JSON text: a key given twice is refused, numbers
//!   keep the text they were written in (a decimal's precision).
//! * [`validate`]: validation of a resource against that model: structure,
//!   types, strings free of control characters, required bindings.
//! * [`profile`]: UK Core profile validation (`UKCore-Patient`,
//!   `UKCore-Encounter`, their extensions and required value sets, compiled
//!   from the UK Core package into `data/uk-core.json`).
//! * [`fhirpath`]: the subset of FHIRPath that the official search-parameter
//!   expressions use.
//! * [`reference`](mod@reference): the literal references of a resource
//!   (every `reference` string, at any depth), found, matched and rewritten.
//! * [`index`]: what a resource contributes to the search indexes ([`IndexEntry`]).
//! * [`search`]: a parsed, typed search request ([`SearchQuery`]), independent of
//!   any database.
//! * [`datetime`]: FHIR date/dateTime/instant values as half-open ranges.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod datetime;
pub mod definitions;
pub mod error;
pub mod extract;
pub mod fhirpath;
pub mod hospital_number;
pub mod index;
pub mod json;
pub mod nhs_number;
pub mod phonetic;
pub mod profile;
pub mod reference;
pub mod search;
pub mod validate;

pub use error::{FhirError, Issue, IssueSeverity};
pub use index::{IndexEntry, IndexValue};
pub use search::SearchQuery;

/// The NHS number identifier system.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
