//! The Emergency Department (issue 20): arrival (walk-in or ambulance),
//! triage, streaming, the tracking board with its 4-hour and 12-hour
//! clocks, referral to a specialty, decision to admit (through
//! [`crate::adt`]), discharge with its destination, and the Emergency Care
//! Data Set (ECDS) shaped extract.
//!
//! # The model (FHIR R4; no second schema)
//!
//! * **An attendance** is an `Encounter` of class `EMER` (v3 ActCode):
//!   status `arrived` → `triaged` → `in-progress` (seen by a clinician) →
//!   `finished`; `period.start` the arrival (the clocks' start),
//!   `period.end` the departure (the clocks' stop); `location[]` the
//!   department's history — the department itself (waiting) then the
//!   stream's area, one entry per place, `active` for the current one.
//! * **The ECDS items** ([`ECDS`] names each with its element):
//!   arrival mode (SNOMED CT, [`ARRIVAL_MODES`]) in [`ED_EXT`] `arrival-mode`,
//!   with `ambulance-incident` (the ambulance service's incident reference)
//!   and `handover` (dateTime); **acuity** in `Encounter.priority` (the
//!   ECDS acuity SNOMED CT code and the triage category 1–5 in
//!   [`TRIAGE_SYSTEM`]) with [`ED_EXT`] `triage-discriminator`,
//!   `triage-time` and `triaged-by`; the **chief complaint** in
//!   `reasonCode` ([`COMPLAINTS`]); **diagnoses** as `Condition`s
//!   (category `encounter-diagnosis`) named by `Encounter.diagnosis`
//!   ([`DIAGNOSES`]); **investigations** and **treatments** as
//!   [`ED_EXT`] `investigation` / `treatment` (`valueCoding`, SNOMED CT,
//!   [`INVESTIGATIONS`], [`TREATMENTS`]); the **discharge destination** in
//!   `hospitalization.dischargeDisposition` ([`DESTINATIONS`]).
//! * **The board's notes**: `waiting-for` (`valueCode`: results,
//!   specialty-review, bed; repeated), the responsible clinician as a
//!   `participant` of type `PPRF`, the decision to admit
//!   (`decision-to-admit`, dateTime) and the admission it led to
//!   (`admission`, a reference to the inpatient Encounter).
//! * **Places**: per site a department `Location` (`type`
//!   [`crate::theatres::LOCATION_KIND_SYSTEM`] `ed`) and its areas (`ed-area`
//!   with [`Stream`]'s code in `identifier`), part of the department.
//! * **A referral to a specialty** is a `ServiceRequest` (category
//!   [`REFERRAL_CATEGORY`], `code` the treatment function, `encounter` the
//!   attendance, `performer` the specialty's team) and a `Task` in the
//!   shared shape (code `ed-specialty-review` in
//!   [`TASK_KIND_SYSTEM`], owner the team's `CareTeam`, due in
//!   `restriction.period.end` one hour on).
//!
//! # Rules (one home each)
//!
//! * [`EdRule`], a write rule on every attendance ([`is_attendance`]: an
//!   `EMER` Encounter carrying [`ED_EXT`]; registered in
//!   `crate::with_rules`: REST, Bundles and the pages alike): the status
//!   never goes back; a finished attendance's departure, destination and
//!   status are never changed (no discharge twice); no triage before
//!   arrival (a triage needs an arrived patient and a time not before the
//!   arrival); a triage category once recorded is never removed; the
//!   arrival time is never moved later (that would hide a breach); an
//!   attendance leaving the department has its departure time and
//!   destination (a finished one written whole, as history loaded from
//!   another system, is taken as it is).
//! * Decision to admit only from the department ([`attend::admit_in`]): an
//!   attendance in progress is finished and the inpatient admission made
//!   by [`crate::adt::admit_in`] in the same transaction.
//! * The clocks ([`Clock`]): from arrival to departure (or now, by the
//!   injected clock): amber at 3 h 30, a 4-hour breach at 4 h 00 m 00 s,
//!   a 12-hour breach at 12 h.
//!
//! Audit subtypes: `ed-arrive`, `ed-triage`, `ed-stream`, `ed-see`,
//! `ed-waiting`, `ed-refer`, `ed-code`, `ed-admit`, `ed-discharge`,
//! `ed-board`, `ed-export`. Roles: everything but arrival needs
//! `record-clinical` (nurses, doctors) of the position acted in.

pub mod attend;
pub mod board;

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, ProposedWrite, RuleTx, Tx, WriteRule};
use wardline_fhir::FhirError;

pub use crate::adt::SNOMED;
pub(crate) use crate::theatres::{ext, fhir_time, sub};

/// The attendance's ECDS items and board notes (on Encounter).
pub const ED_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/ed-attendance";
/// `Encounter.priority`: the triage category, 1–5.
pub const TRIAGE_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/ed-triage-category";
/// `ServiceRequest.category` of a referral to a specialty from the department.
pub const REFERRAL_CATEGORY: &str = "https://fhir.wardline.invalid/CodeSystem/ed-referral";
/// The shared Task convention's kinds.
pub const TASK_KIND_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/task-kind";
/// `CareTeam.identifier` of a specialty's team at a site (`{site}-{code}`).
pub const TEAM_SYSTEM: &str = "https://fhir.wardline.invalid/Id/specialty-team";
/// `Location.identifier` of a department area (its [`Stream`] code).
pub const AREA_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/ed-area";
pub(crate) const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// Amber from 3 h 30 in the department.
pub const AMBER_MS: i64 = 210 * 60_000;
/// The 4-hour standard.
pub const FOUR_HOURS_MS: i64 = 4 * 3_600_000;
/// The 12-hour standard (from arrival).
pub const TWELVE_HOURS_MS: i64 = 12 * 3_600_000;
/// A specialty review is due within this of the referral.
pub const REVIEW_DUE_MS: i64 = 3_600_000;

/// ECDS EMERGENCY CARE ARRIVAL MODE (SNOMED CT UK edition): code, label,
/// the ambulances first (their incident reference and handover time are
/// asked for). Checked against independent published ECDS analyses (the
/// codes and their meanings agree across them); the national reference
/// set itself is the NHS England ECDS ETOS, which this machine cannot
/// reach: a trust's terminology server replaces this list.
pub const ARRIVAL_MODES: [(&str, &str); 9] = [
    ("1048031000000100", "Arrival by emergency road ambulance"),
    (
        "1048041000000109",
        "Arrival by emergency road ambulance with medical escort",
    ),
    (
        "1048021000000102",
        "Arrival by non-emergency road ambulance",
    ),
    ("1048051000000107", "Arrival by helicopter air ambulance"),
    (
        "1048081000000101",
        "Arrival by medical repatriation air ambulance",
    ),
    ("1048071000000103", "Arrival by own transport"),
    ("1048061000000105", "Arrival by public transport"),
    ("1048001000000106", "Arrival by police transport"),
    ("1047991000000102", "Arrival by prison transport"),
];
/// The arrival modes that are an ambulance (incident reference expected).
pub fn is_ambulance(code: &str) -> bool {
    matches!(
        code,
        "1048031000000100"
            | "1048041000000109"
            | "1048021000000102"
            | "1048051000000107"
            | "1048081000000101"
    )
}

/// ECDS EMERGENCY CARE ACUITY (SNOMED CT) by triage category 1–5.
pub const ACUITY: [(u8, &str, &str); 5] = [
    (
        1,
        "1064891000000107",
        "Immediate resuscitation level emergency care acuity",
    ),
    (
        2,
        "1064911000000105",
        "Very urgent level emergency care acuity",
    ),
    (3, "1064901000000108", "Urgent level emergency care acuity"),
    (
        4,
        "1077241000000103",
        "Standard level emergency care acuity",
    ),
    (
        5,
        "1077251000000100",
        "Low acuity level emergency care acuity",
    ),
];
/// The Manchester-style name of a triage category.
pub fn category_label(c: u8) -> &'static str {
    match c {
        1 => "1 Immediate",
        2 => "2 Very urgent",
        3 => "3 Urgent",
        4 => "4 Standard",
        _ => "5 Non-urgent",
    }
}

/// ECDS EMERGENCY CARE CHIEF COMPLAINT (SNOMED CT), a working subset.
pub const COMPLAINTS: [(&str, &str); 8] = [
    ("29857009", "Chest pain"),
    ("267036007", "Breathlessness"),
    ("21522001", "Abdominal pain"),
    ("25064002", "Headache"),
    ("1912002", "Fall"),
    ("271594007", "Collapse / syncope"),
    ("91175000", "Seizure"),
    ("386661006", "Fever"),
];
/// ECDS EMERGENCY CARE DIAGNOSIS (SNOMED CT), a working subset.
pub const DIAGNOSES: [(&str, &str); 6] = [
    ("22298006", "Myocardial infarction"),
    ("233604007", "Pneumonia"),
    ("125605004", "Fracture of bone"),
    ("74400008", "Appendicitis"),
    ("230690007", "Stroke"),
    ("195967001", "Asthma"),
];
/// ECDS EMERGENCY CARE CLINICAL INVESTIGATION (SNOMED CT), a subset.
pub const INVESTIGATIONS: [(&str, &str); 4] = [
    ("29303009", "Electrocardiogram"),
    ("26604007", "Full blood count"),
    ("363680008", "X-ray"),
    ("77477000", "CT scan"),
];
/// ECDS EMERGENCY CARE PROCEDURE (treatments, SNOMED CT), a subset.
pub const TREATMENTS: [(&str, &str); 3] = [
    ("18629005", "Administration of medicine"),
    ("225358003", "Wound care"),
    ("89666000", "Cardiopulmonary resuscitation"),
];
/// ECDS EMERGENCY CARE DISCHARGE DESTINATION (SNOMED CT). The ward is
/// reached only through the decision to admit.
pub const DESTINATIONS: [(&str, &str); 5] = [
    ("306689006", "Discharge to home"),
    ("306691003", "Discharge to residential home"),
    ("19712007", "Transfer to another health care facility"),
    ("306705005", "Discharge to police custody"),
    ("306706006", "Discharge to ward (admitted)"),
];
/// The destination written by the decision to admit.
pub const TO_WARD: &str = "306706006";

/// The ECDS items of the extract: (column, ECDS data item, where).
pub const ECDS: [(&str, &str, &str); 16] = [
    (
        "attendance_id",
        "EMERGENCY CARE ATTENDANCE IDENTIFIER",
        "Encounter.id",
    ),
    (
        "nhs_number",
        "NHS NUMBER",
        "Patient.identifier (NHS number)",
    ),
    (
        "site",
        "SITE CODE (OF TREATMENT)",
        "the department's site Location",
    ),
    (
        "arrival",
        "EMERGENCY CARE ARRIVAL DATE and TIME",
        "Encounter.period.start",
    ),
    (
        "arrival_mode",
        "EMERGENCY CARE ARRIVAL MODE (SNOMED CT)",
        "ed-attendance arrival-mode",
    ),
    (
        "ambulance_incident",
        "AMBULANCE INCIDENT NUMBER",
        "ed-attendance ambulance-incident",
    ),
    (
        "handover",
        "EMERGENCY CARE PATIENT HANDOVER DATE and TIME (ambulance)",
        "ed-attendance handover",
    ),
    (
        "chief_complaint",
        "EMERGENCY CARE CHIEF COMPLAINT (SNOMED CT)",
        "Encounter.reasonCode",
    ),
    (
        "acuity",
        "EMERGENCY CARE ACUITY (SNOMED CT)",
        "Encounter.priority",
    ),
    (
        "triage_time",
        "EMERGENCY CARE INITIAL ASSESSMENT DATE and TIME",
        "ed-attendance triage-time",
    ),
    (
        "investigations",
        "EMERGENCY CARE CLINICAL INVESTIGATION (SNOMED CT)",
        "ed-attendance investigation",
    ),
    (
        "treatments",
        "EMERGENCY CARE PROCEDURE (SNOMED CT)",
        "ed-attendance treatment",
    ),
    (
        "diagnoses",
        "EMERGENCY CARE DIAGNOSIS (SNOMED CT)",
        "Encounter.diagnosis → Condition.code",
    ),
    (
        "decision_to_admit",
        "DECISION TO ADMIT DATE and TIME",
        "ed-attendance decision-to-admit",
    ),
    (
        "departure",
        "EMERGENCY CARE DEPARTURE DATE and TIME",
        "Encounter.period.end",
    ),
    (
        "discharge_destination",
        "EMERGENCY CARE DISCHARGE DESTINATION (SNOMED CT)",
        "Encounter.hospitalization.dischargeDisposition",
    ),
];

/// The label of `code` in a code list.
pub fn label<'a>(list: &'a [(&'a str, &'a str)], code: &str) -> Option<&'a str> {
    list.iter().find(|(c, _)| *c == code).map(|(_, l)| *l)
}

/// An area of the department a patient is streamed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Stream {
    Resus,
    Majors,
    Minors,
    Paediatrics,
    Utc,
}

impl Stream {
    pub const ALL: [Stream; 5] = [
        Stream::Resus,
        Stream::Majors,
        Stream::Minors,
        Stream::Paediatrics,
        Stream::Utc,
    ];
    pub fn code(self) -> &'static str {
        match self {
            Stream::Resus => "resus",
            Stream::Majors => "majors",
            Stream::Minors => "minors",
            Stream::Paediatrics => "paediatrics",
            Stream::Utc => "utc",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Stream::Resus => "Resus",
            Stream::Majors => "Majors",
            Stream::Minors => "Minors",
            Stream::Paediatrics => "Paediatrics",
            Stream::Utc => "Urgent treatment centre",
        }
    }
    pub fn parse(s: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|x| x.code() == s.trim())
    }
}

/// What a patient on the board is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum WaitingFor {
    Results,
    SpecialtyReview,
    Bed,
}

impl WaitingFor {
    pub const ALL: [WaitingFor; 3] = [
        WaitingFor::Results,
        WaitingFor::SpecialtyReview,
        WaitingFor::Bed,
    ];
    pub fn code(self) -> &'static str {
        match self {
            WaitingFor::Results => "results",
            WaitingFor::SpecialtyReview => "specialty-review",
            WaitingFor::Bed => "bed",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            WaitingFor::Results => "Results",
            WaitingFor::SpecialtyReview => "Specialty review",
            WaitingFor::Bed => "Bed",
        }
    }
    pub fn parse(s: &str) -> Option<WaitingFor> {
        WaitingFor::ALL.into_iter().find(|x| x.code() == s.trim())
    }
}

/// Where the clocks stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Clock {
    /// Under 3 h 30.
    Within,
    /// 3 h 30 up to 4 h.
    Amber,
    /// 4 hours or more: the 4-hour standard breached.
    Breached,
    /// 12 hours or more.
    TwelveHours,
}

impl Clock {
    /// The clock after `ms` in the department.
    pub fn after(ms: i64) -> Clock {
        if ms >= TWELVE_HOURS_MS {
            Clock::TwelveHours
        } else if ms >= FOUR_HOURS_MS {
            Clock::Breached
        } else if ms >= AMBER_MS {
            Clock::Amber
        } else {
            Clock::Within
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Clock::Within => "within",
            Clock::Amber => "amber",
            Clock::Breached => "breached",
            Clock::TwelveHours => "twelve-hours",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Clock::Within => "Within 4 hours",
            Clock::Amber => "Approaching 4 hours",
            Clock::Breached => "4-hour breach",
            Clock::TwelveHours => "12-hour breach",
        }
    }
}

/// "3 h 05 m".
pub fn duration_text(ms: i64) -> String {
    let m = ms.max(0) / 60_000;
    format!("{} h {:02} m", m / 60, m % 60)
}

// ---------------------------------------------------------------- errors

/// What went wrong, in a sentence that names the field.
#[derive(Debug, Clone, PartialEq)]
pub enum EdError {
    /// A field is wrong (400): the field, the message.
    Field(&'static str, String),
    /// No such attendance, patient or place (404).
    NotFound(String),
    /// The attendance's state does not allow it (409): the field, if any.
    Conflict(Option<&'static str>, String),
    /// The caller's position may not do it (403).
    Forbidden(String),
    /// The store refused (a write rule's 422, 403, 409, 5xx).
    Fhir(FhirError),
}

impl EdError {
    pub fn status(&self) -> u16 {
        match self {
            EdError::Field(..) => 400,
            EdError::NotFound(_) => 404,
            EdError::Conflict(..) => 409,
            EdError::Forbidden(_) => 403,
            EdError::Fhir(e) => e.status,
        }
    }
    pub fn field(&self) -> Option<&'static str> {
        match self {
            EdError::Field(f, _) => Some(f),
            EdError::Conflict(f, _) => *f,
            _ => None,
        }
    }
    pub fn message(&self) -> String {
        match self {
            EdError::Field(_, m)
            | EdError::NotFound(m)
            | EdError::Conflict(_, m)
            | EdError::Forbidden(m) => m.clone(),
            EdError::Fhir(e) => crate::rtt::refusal_text(e, "attendance"),
        }
    }
}

crate::rtt::planned_care_error!(EdError);

impl From<EdError> for FhirError {
    fn from(e: EdError) -> FhirError {
        match e {
            EdError::Fhir(e) => e,
            other => crate::rtt::outcome(other.status(), other.message(), other.field()),
        }
    }
}

impl From<crate::adt::AdtError> for EdError {
    fn from(e: crate::adt::AdtError) -> EdError {
        use crate::adt::AdtErrorKind as K;
        match e.kind {
            K::NotFound => EdError::NotFound(e.message),
            K::Forbidden => EdError::Forbidden(e.message),
            K::Invalid => EdError::Field("bed", e.message),
            _ => EdError::Conflict(Some("bed"), e.message),
        }
    }
}

// ---------------------------------------------------------------- readers

/// Whether `enc` is an attendance of the department: an `EMER` Encounter
/// carrying [`ED_EXT`] (what arrival writes). Other emergency-class
/// encounters (an HL7 v2 feed's, history loaded from elsewhere) are not
/// the department's and are left to their writers.
pub fn is_attendance(enc: &Value) -> bool {
    enc["resourceType"] == "Encounter"
        && enc["class"]["code"] == "EMER"
        && ext(enc, ED_EXT).is_some()
}

/// Whether the attendance is still in the department.
pub fn in_department(enc: &Value) -> bool {
    matches!(
        enc["status"].as_str(),
        Some("arrived" | "triaged" | "in-progress")
    )
}

fn rank(status: &str) -> Option<u8> {
    match status {
        "planned" => Some(0),
        "arrived" => Some(1),
        "triaged" => Some(2),
        "in-progress" => Some(3),
        "finished" => Some(4),
        _ => None,
    }
}

/// The triage category (1–5) in `Encounter.priority`.
pub fn triage_category(enc: &Value) -> Option<u8> {
    enc["priority"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == TRIAGE_SYSTEM)?["code"]
        .as_str()?
        .parse()
        .ok()
        .filter(|c| (1..=5).contains(c))
}

/// A value of the attendance extension.
pub fn item<'a>(enc: &'a Value, name: &str) -> Option<&'a Value> {
    sub(ext(enc, ED_EXT)?, name)
}

/// Every value named `name` of the attendance extension.
pub fn items<'a>(enc: &'a Value, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    ext(enc, ED_EXT)
        .and_then(|e| e["extension"].as_array())
        .into_iter()
        .flatten()
        .filter(move |s| s["url"] == name)
}

pub(crate) fn ms(s: &str) -> Option<i64> {
    wardline_fhir::datetime::parse_range(s).map(|r| r.0)
}

pub(crate) fn ms_of(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The arrival (`period.start`) in milliseconds.
pub fn arrival_ms(enc: &Value) -> Option<i64> {
    enc["period"]["start"].as_str().and_then(ms)
}

/// Time in the department: arrival to departure, or to `now_ms` while
/// still there.
pub fn time_in_department(enc: &Value, now_ms: i64) -> Option<i64> {
    let start = arrival_ms(enc)?;
    let end = if in_department(enc) {
        now_ms
    } else {
        enc["period"]["end"].as_str().and_then(ms).unwrap_or(now_ms)
    };
    Some(end - start)
}

// ---------------------------------------------------------------- the rule

/// The attendance lifecycle on every write of an `EMER` Encounter (see the
/// module documentation).
pub struct EdRule;

fn refuse(at: &str, message: impl Into<String>) -> FhirError {
    FhirError::new(422, "business-rule", message.into()).at(at)
}

/// The rule over a proposed attendance and the version it replaces.
pub fn check_attendance(new: &Value, current: Option<&Value>) -> Result<(), FhirError> {
    let status = new["status"].as_str().unwrap_or("");
    let arrival = arrival_ms(new);
    // A finished attendance written whole (history loaded from another
    // system, the demo trust) is taken as it is; one leaving the
    // department here must say when and where to.
    let leaving = status == "finished" && current.is_some_and(in_department);
    if (in_department(new) || leaving) && arrival.is_none() {
        return Err(refuse(
            "Encounter.period.start",
            "An attendance needs its arrival time (period.start)",
        ));
    }
    if let Some(cat) = triage_category(new) {
        if status == "planned" {
            return Err(refuse(
                "Encounter.priority",
                format!("Triage category {cat} cannot be recorded before the patient has arrived"),
            ));
        }
        if let (Some(t), Some(a)) = (
            item(new, "triage-time")
                .and_then(|v| v["valueDateTime"].as_str())
                .and_then(ms),
            arrival,
        ) && t < a
        {
            return Err(refuse(
                "Encounter.extension",
                "The triage time is before the arrival: no triage before arrival",
            ));
        }
    } else if status == "triaged" {
        return Err(refuse(
            "Encounter.priority",
            "A triaged attendance needs its triage category (1 to 5)",
        ));
    }
    if leaving {
        let end = new["period"]["end"].as_str().and_then(ms);
        match (end, arrival) {
            (None, _) => {
                return Err(refuse(
                    "Encounter.period.end",
                    "A finished attendance needs its departure time (period.end)",
                ));
            }
            (Some(e), Some(a)) if e < a => {
                return Err(refuse(
                    "Encounter.period.end",
                    "The departure is before the arrival",
                ));
            }
            _ => {}
        }
        if !new["hospitalization"]["dischargeDisposition"]["coding"].is_array() {
            return Err(refuse(
                "Encounter.hospitalization.dischargeDisposition",
                "A finished attendance needs its discharge destination",
            ));
        }
    }
    let Some(cur) = current else {
        return Ok(());
    };
    let was = cur["status"].as_str().unwrap_or("");
    if was == "finished" && status != "entered-in-error" {
        let same = |p: &str| new.pointer(p) == cur.pointer(p);
        if status != "finished"
            || !same("/period/end")
            || !same("/hospitalization/dischargeDisposition")
        {
            return Err(refuse(
                "Encounter.status",
                "The patient has left the department: the attendance's departure and destination are recorded once (no discharge twice)",
            ));
        }
    }
    if let (Some(n), Some(o)) = (rank(status), rank(was))
        && n < o
    {
        return Err(refuse(
            "Encounter.status",
            format!("An attendance cannot go back from {was} to {status}"),
        ));
    }
    if let Some(c) = triage_category(cur)
        && triage_category(new).is_none()
    {
        return Err(refuse(
            "Encounter.priority",
            format!("Triage category {c} is recorded and cannot be removed"),
        ));
    }
    if let (Some(n), Some(o)) = (arrival, arrival_ms(cur))
        && n > o
    {
        return Err(refuse(
            "Encounter.period.start",
            "The arrival time cannot be moved later (the 4-hour clock runs from the arrival)",
        ));
    }
    Ok(())
}

impl WriteRule for EdRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Encounter"
    }

    fn check(&self, _tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        if !is_attendance(w.resource) && !w.current.is_some_and(is_attendance) {
            return Ok(());
        }
        check_attendance(w.resource, w.current)
    }
}

// ---------------------------------------------------------------- audited entries

/// Runs `f` in one transaction audited as `what`.
pub(crate) fn audited<T>(
    svc: &FhirService,
    access: &dyn Access,
    what: &str,
    action: &'static str,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, EdError>,
) -> Result<T, EdError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// Only clinical staff (`record-clinical`: nurses, doctors) triage, stream,
/// refer, admit and discharge; a caller in no position (an integration) is
/// left to its access.
pub fn may_record_in(tx: &mut Tx<'_>) -> Result<(), EdError> {
    match crate::fhir::caller_role_in(tx)? {
        Some(r) if !r.has(wardline_auth::rbac::Activity::RecordClinical) => {
            Err(EdError::Forbidden(format!(
                "Only clinical staff record triage and care in the Emergency Department; your position is {}.",
                r.display()
            )))
        }
        _ => Ok(()),
    }
}

/// Sets the attendance extension's `name` to `values` (replacing any).
pub(crate) fn set_items(enc: &mut Value, name: &str, values: Vec<Value>) {
    if !enc["extension"].is_array() {
        enc["extension"] = json!([]);
    }
    let Some(exts) = enc["extension"].as_array_mut() else {
        return;
    };
    if !exts.iter().any(|e| e["url"] == ED_EXT) {
        exts.push(json!({"url": ED_EXT, "extension": []}));
    }
    if let Some(e) = exts.iter_mut().find(|e| e["url"] == ED_EXT)
        && let Some(subs) = e["extension"].as_array_mut()
    {
        subs.retain(|s| s["url"] != name);
        for mut v in values {
            v["url"] = json!(name);
            subs.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ambulance modes are exactly the ones that say so, and no code
    /// is listed twice.
    #[test]
    fn arrival_modes_are_unique_and_ambulances_are_named() {
        for (code, label) in ARRIVAL_MODES {
            assert_eq!(is_ambulance(code), label.contains("ambulance"), "{code}");
            assert_eq!(ARRIVAL_MODES.iter().filter(|(c, _)| *c == code).count(), 1);
        }
        assert!(!is_ambulance("1048071000000103"), "own transport");
    }
}
