//! Inbound: a parsed HL7 v2 message → changes to the record.
//!
//! [`apply`] reads the current record through [`Records`] and saves what the
//! message changes; the caller runs it in one store transaction, so an error
//! after some saves rolls everything back. [`is_supported`] tells which
//! `MSH-9` type^event pairs are mapped; others are [`MapError::unsupported`]
//! (200 unknown message type, 201 unknown event). Content problems are
//! [`MapError::content`] with a table 0357 code (101 required field missing,
//! 102 data type error, 103 table value not found, 204 unknown key
//! identifier), the field location (`PID-3`, `OBX[2]-5`) and a sentence naming
//! the value.
//!
//! # General rules
//!
//! * Values are read with the message's own separators and escapes decoded;
//!   `\.br\` in FT/TX text becomes a line break.
//! * Updates: an empty field leaves the stored value unchanged; the HL7 null
//!   `""` deletes it (patient demographics, consultants, hospital service,
//!   admit source, GP/practice); a value replaces it.
//! * Timestamps (TS/DTM/DT): `YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`; dates
//!   keep their precision (`2024`, `2024-03`, `2024-03-05`); with a time,
//!   minutes/seconds are zero-filled and a timestamp without offset is read as
//!   Europe/London local time and given the UK offset of that moment (GMT
//!   `+00:00` or BST `+01:00`, current UK rules for every year; the repeated
//!   October hour is taken as BST). `instant`s (DiagnosticReport.issued,
//!   Appointment start/end, DocumentReference.date) are always to the second.
//!   A bad timestamp is error 102 naming the field and the value.
//! * Coded values (CE/CWE): coding-system `LN` → `http://loinc.org`, `SCT` →
//!   `http://snomed.info/sct`, `I10` → ICD-10, `HL7nnnn` →
//!   `http://terminology.hl7.org/CodeSystem/v2-nnnn`, any other name → a local
//!   system `{identifier_base without /Id}/CodeSystem/<name-slug>`, no name →
//!   a coding without system. Alternate codings (CE-4..6) are kept.
//! * Clinicians (XCN) are Practitioners found/created by identifier: `G` + 7
//!   digits → `https://fhir.nhs.uk/Id/gmp-number` (GP), 7 digits →
//!   `https://fhir.hl7.org.uk/Id/gmc-number`, else `{base}/consultant`. An
//!   XCN without an id (name only) is ignored.
//!
//! # Patient (PID, PD1) — every message type
//!
//! * The NHS number is the PID-3 repetition with CX-4 `NHS` or CX-5 `NH`,
//!   checked with Modulus 11 (invalid → 102 at PID-3), stored normalised with
//!   system `https://fhir.nhs.uk/Id/nhs-number`. Other repetitions are local
//!   numbers (`use` `usual`, CX-5 as a v2-0203 `type`) with system
//!   `MappingConfig::local_system(CX-4, CX-5)`. No identifier → 101 at PID-3.
//! * The patient is found by NHS number first, then by each local number;
//!   else it is created (`active` true).
//! * ADT messages update the found patient: the message's identifiers are
//!   added (others kept; a different NHS number replaces the stored one,
//!   which is kept with `use` `old`), and present demographics replace the
//!   stored ones. Orders, results, appointments and documents only find the
//!   patient (or create it with the message's demographics); they never
//!   change a stored patient.
//! * PID-5 XPN → name (family^given^middle^suffix^prefix^degree^type; type
//!   L official, D/A usual, M/B maiden, N nickname, S anonymous; middle
//!   names are extra `given`); PID-7 → birthDate (date part); PID-8 sex M/F →
//!   male/female, U/N → unknown, O/A → other, anything else 103; PID-11 XAD →
//!   address (street, other designation, other geographic designation as
//!   lines; city; county as `district`; XAD-5 postcode, UK postcodes
//!   normalised to `NW3 2QG`; type H home, B/O work, C temp, BA old, M
//!   postal); PID-13 → telecom (PRN home, WPN work, ORN/VHN temp, CP/PRS
//!   mobile, Internet/NET email, FX fax, BP pager), PID-14 → telecom `work`
//!   (each field replaces only its own entries); PID-16 (table 0002) →
//!   maritalStatus in v3-MaritalStatus (v2-0002 when it has no equivalent);
//!   PID-29 → deceasedDateTime, else PID-30 Y/N → deceasedBoolean.
//! * PD1-3 (XON; ODS code in XON-10 or XON-3) → Organization found/created
//!   by `https://fhir.nhs.uk/Id/ods-organization-code`; PD1-4 (XCN) → GP
//!   Practitioner; both → generalPractitioner.
//!
//! # ADT → Encounter and Location
//!
//! * The Encounter is identified by the visit number PV1-19 (system
//!   `{base}/visit`). A01/A04/A05 create it; A02, A03, A08 (with a PV1-19),
//!   A11, A12, A13 need a known one (204 at PV1-19 naming the value; an empty
//!   PV1-19 is 101). A08 without PV1-19 updates the patient only.
//! * PV1-2 (table 0004) → class (v3 ActCode): I/B IMP, E EMER, O/R/C AMB, P
//!   PRENC; empty/N/U → the event's default (A04 AMB, A05 PRENC, else IMP).
//! * PV1-3 PL (ward^room^bed^facility) → Locations site (PL-4) → ward (PL-1)
//!   → room (PL-2) → bed (PL-3), each found/created by `{base}/location` with
//!   the path of the levels present (`RWG/WARD7/BAY2/BED4`), physicalType
//!   si/wa/ro/bd, `partOf` the level above. Encounter.location holds the most
//!   specific level, with `status` and `period`.
//! * Bed operationalStatus (v2-0116): `O` when a patient is admitted,
//!   registered or transferred into it (and when a cancel transfer/discharge
//!   puts them back), `H` housekeeping when they leave it (transfer out,
//!   discharge), `U` unoccupied after a cancelled admission or a cancelled
//!   transfer into it.
//! * PV1-7/8/17 (XCN) → participant ATND/REF/ADM (v3-ParticipationType),
//!   replacing the participants of that type; PV1-10 → serviceType
//!   (v2-0069); PV1-14 → hospitalization.admitSource (v2-0023); PV1-36 →
//!   hospitalization.dischargeDisposition (v2-0112).
//! * Event times: the event time is EVN-6, else EVN-2, else MSH-7.
//! * A01 admit / A04 register: status in-progress, period.start PV1-44 else
//!   the event time, the location becomes the active entry (a resend at the
//!   same location changes nothing). A05 pre-admit: status planned,
//!   period.start PV2-8 (expected admit) else PV1-44, location entry
//!   `planned`; a later A01 for the same visit starts it.
//! * A02 transfer: the active location entry is completed with period.end =
//!   event time, the new one (PV1-3, required: 101) appended active from the
//!   event time.
//! * A03 discharge: status finished, period.end PV1-45 else the event time,
//!   the active location completed.
//! * A08: patient, class (when PV1-2 is given), consultants, service, admit
//!   source; locations are not changed by A08.
//! * A11 cancel admit: status `entered-in-error` (the admission should never
//!   have been recorded; `cancelled` would mean it ended before it began),
//!   the active location completed and its bed `U`.
//! * A12 cancel transfer: the latest location entry is removed (its bed `U`)
//!   and the previous one is active again (end removed, bed `O`). When PV1-3
//!   already names the active location the message is a resend and nothing
//!   changes; with fewer than two entries → 204 at PV1-19.
//! * A13 cancel discharge: back to in-progress, period.end and
//!   dischargeDisposition removed, the last location active again (bed `O`);
//!   an encounter that is not finished is left as it is (resend).
//! * A28 add person / A31 update person: Patient only (created when unknown).
//! * A40 merge: PID is the surviving patient (found/created and updated),
//!   MRG-1 the prior identifiers (same NHS/local rules) → the source patient
//!   (unknown → 204 at MRG-1), then `Records::merge_patients(source,
//!   target)`. When the prior identifiers already lead to the survivor
//!   (resend) nothing changes.
pub mod adt;
mod orders;
mod patient;
pub(crate) mod ts;
pub(crate) mod util;

use wardline_hl7::Message;

use crate::{MapError, MappingConfig, Records};

/// What a message did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The patient the message was about.
    pub patient_id: Option<String>,
    /// One line for the message log (`ADT^A01: Patient/r1, Encounter/r4 …`).
    pub summary: String,
}

const ADT_EVENTS: &[&str] = &[
    "A01", "A02", "A03", "A04", "A05", "A08", "A11", "A12", "A13", "A28", "A31", "A40",
];

/// Whether MSH-9 type^event is mapped.
pub fn is_supported(message_type: &str, trigger_event: &str) -> bool {
    match message_type {
        "ADT" => ADT_EVENTS.contains(&trigger_event),
        "ORM" => trigger_event == "O01",
        "OML" => trigger_event == "O21",
        "ORU" => trigger_event == "R01",
        _ => false,
    }
}

fn known_type(message_type: &str) -> bool {
    matches!(message_type, "ADT" | "ORM" | "OML" | "ORU" | "SIU" | "MDM")
}

/// Applies the message to the record (see the module doc).
pub fn apply(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
) -> Result<Applied, MapError> {
    let ty = msg.message_type().unwrap_or_default().trim().to_owned();
    let ev = msg.trigger_event().unwrap_or_default().trim().to_owned();
    if !is_supported(&ty, &ev) {
        return Err(if known_type(&ty) {
            MapError::unsupported(
                201,
                format!("MSH-9 event '{ty}^{ev}' is not mapped for message type {ty}"),
            )
        } else {
            MapError::unsupported(200, format!("MSH-9 message type '{ty}^{ev}' is not mapped"))
        });
    }
    match ty.as_str() {
        "ADT" => adt::apply(msg, records, cfg, &ev),
        "ORM" | "OML" => orders::apply_order(msg, records, cfg, &format!("{ty}^{ev}")),
        "ORU" => orders::apply_result(msg, records, cfg),
        _ => Err(MapError::unsupported(
            200,
            format!("MSH-9 message type '{ty}^{ev}' is not mapped"),
        )),
    }
}
