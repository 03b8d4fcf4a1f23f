//! The unmatched-results worklist: results that arrived without a patient
//! Wardline could identify with certainty, or without an order of that
//! patient, wait here for a person to match them — never filed to a best
//! guess.
//!
//! # The shape of an unmatched report (the contract with every channel)
//!
//! A channel that receives a result it cannot match (the HL7 v2 ORU^R01
//! mapping, `POST DiagnosticReport/$submit`) stores it through
//! `results::receive_in` as a `DiagnosticReport` with:
//!
//! * `meta.tag` containing
//!   `{system: "https://fhir.wardline.invalid/CodeSystem/result-match", code: "unmatched"}`
//!   ([`TAG_SYSTEM`], [`TAG_CODE`]);
//! * **no `subject`** and no `basedOn` (nothing points at a patient or an
//!   order that might be the wrong one). Its `Observation`s (in `result`)
//!   have no `subject` either;
//! * what the sender said about the patient, as a **contained `Patient`**
//!   with `id` `"reported-patient"` ([`REPORTED_PATIENT_ID`]), referenced
//!   from the report's extension
//!   `https://fhir.wardline.invalid/StructureDefinition/reported-patient`
//!   ([`REPORTED_PATIENT_EXT`]) as `valueReference: {"reference": "#reported-patient"}`.
//!   The contained Patient carries exactly what was sent: `identifier`s (NHS
//!   number as `https://fhir.nhs.uk/Id/nhs-number`, other numbers with the
//!   system the channel maps their assigner to, or with only `value` and
//!   `type.text` naming the assigner when it maps to none), `name`,
//!   `birthDate`, `gender`, `address` when sent. Nothing of it is a claim
//!   that such a patient exists in Wardline;
//! * the order numbers the sender quoted, when any, as the extension
//!   `https://fhir.wardline.invalid/StructureDefinition/reported-order`
//!   ([`REPORTED_ORDER_EXT`], repeatable) with `valueIdentifier`
//!   `{system: "https://fhir.wardline.invalid/Id/placer-order" | ".../Id/filler-order", value}`;
//! * why it was not matched, as the extension
//!   `https://fhir.wardline.invalid/StructureDefinition/unmatched-reason`
//!   ([`UNMATCHED_REASON_EXT`]) `valueString`, a sentence such as "no
//!   patient with NHS number 9434765919" or "placer order R0000007-1 is
//!   for another patient" (optional but expected);
//! * everything else as any result (`status`, `code`, `issued`,
//!   `identifier` filler number, `performer`, `result`).
//!
//! Example (abridged):
//!
//! ```json
//! {"resourceType": "DiagnosticReport", "status": "final",
//!  "meta": {"tag": [{"system": "https://fhir.wardline.invalid/CodeSystem/result-match", "code": "unmatched"}]},
//!  "contained": [{"resourceType": "Patient", "id": "reported-patient",
//!     "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
//!     "name": [{"family": "SMITH", "given": ["JOHN"]}], "birthDate": "1970-01-01", "gender": "male"}],
//!  "extension": [
//!     {"url": "https://fhir.wardline.invalid/StructureDefinition/reported-patient", "valueReference": {"reference": "#reported-patient"}},
//!     {"url": "https://fhir.wardline.invalid/StructureDefinition/reported-order", "valueIdentifier": {"system": "https://fhir.wardline.invalid/Id/placer-order", "value": "R0000007-1"}},
//!     {"url": "https://fhir.wardline.invalid/StructureDefinition/unmatched-reason", "valueString": "no patient with NHS number 9434765919"}],
//!  "code": {"text": "Urea and electrolytes"},
//!  "result": [{"reference": "Observation/…"}]}
//! ```
//!
//! (The worklist, matching and their rules are documented below as they
//! are built.)

/// The tag system marking an unmatched result.
pub const TAG_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/result-match";
/// The tag code marking an unmatched result.
pub const TAG_CODE: &str = "unmatched";
/// The extension pointing at what the sender said about the patient.
pub const REPORTED_PATIENT_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/reported-patient";
/// The id of the contained Patient holding what the sender said.
pub const REPORTED_PATIENT_ID: &str = "reported-patient";
/// The extension holding an order number the sender quoted.
pub const REPORTED_ORDER_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/reported-order";
/// The extension saying why a result was not matched.
pub const UNMATCHED_REASON_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/unmatched-reason";
