//! Waiting lists (issue 19): outpatient (new, follow-up) and elective
//! admitted (inpatient, day case) entries, each on the patient's RTT
//! pathway ([`crate::rtt`]).
//!
//! # The FHIR shape (the clinics and theatres code reads it)
//!
//! An **entry** is a `ServiceRequest`:
//!
//! * `intent` `plan`; `category` [`LIST_SYSTEM`] with the [`List`] code
//!   (`outpatient-new`, `outpatient-follow-up`, `inpatient`, `day-case`);
//! * `status` `active` (waiting, or booked), `on-hold` (suspended:
//!   [`SUSPENSION_EXT`] with sub-extensions `reason` `valueString` and
//!   `until` `valueDate`), `completed` (seen or treated: off the list) or
//!   `revoked` (removed without being seen); the reason it left is
//!   [`OUTCOME_EXT`] (`valueString`);
//! * `priority` FHIR's (`routine`, `urgent`, `asap`, `stat`) with the
//!   exact [`Priority`] in [`PRIORITY_EXT`] (`valueCoding`,
//!   [`PRIORITY_SYSTEM`]: `routine`, `urgent`, `two-week-wait`, `P1`–`P4`);
//! * `code` the intended procedure (SNOMED CT), `authoredOn` the date
//!   decided, `subject`, `performer` the consultant, `supportingInfo` the
//!   pathway (`EpisodeOfCare`), `basedOn` the pathway's referral, the
//!   specialty in [`crate::rtt::TREATMENT_FUNCTION_EXT`], `note` a note;
//! * [`BOOKED_EXT`] `valueReference` → the `Appointment` it is booked into
//!   (none: waiting to be booked).
//!
//! Every change goes through this module's `_in` functions (book, unbook,
//! suspend, resume, close, remove), which hold the entry's state rules.

pub mod validation;

use serde::Serialize;
use serde_json::{Value, json};
use time::Date;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

use crate::fhir::reference_id;
use crate::rtt::{self, RttError, TREATMENT_FUNCTION_EXT, TREATMENT_FUNCTION_SYSTEM};

/// `ServiceRequest.category` of a waiting-list entry.
pub const LIST_SYSTEM: &str = wardline_auth::rbac::WAITING_LIST_SYSTEM;
/// The entry's exact priority (`valueCoding`).
pub const PRIORITY_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/waiting-priority";
pub const PRIORITY_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/waiting-priority";
/// The appointment an entry is booked into (`valueReference`).
pub const BOOKED_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/booked";
/// A suspension (sub-extensions `reason`, `until`).
pub const SUSPENSION_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/waiting-suspension";
/// Why an entry left the list (`valueString`).
pub const OUTCOME_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/waiting-outcome";
/// SNOMED CT.
pub const SNOMED_SYSTEM: &str = "http://snomed.info/sct";

/// A waiting list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum List {
    OutpatientNew,
    OutpatientFollowUp,
    Inpatient,
    DayCase,
}

impl List {
    pub const ALL: [List; 4] = [
        List::OutpatientNew,
        List::OutpatientFollowUp,
        List::Inpatient,
        List::DayCase,
    ];
    pub fn code(self) -> &'static str {
        match self {
            List::OutpatientNew => "outpatient-new",
            List::OutpatientFollowUp => "outpatient-follow-up",
            List::Inpatient => "inpatient",
            List::DayCase => "day-case",
        }
    }
    pub fn parse(code: &str) -> Option<List> {
        List::ALL.into_iter().find(|l| l.code() == code.trim())
    }
    pub fn label(self) -> &'static str {
        match self {
            List::OutpatientNew => "Outpatient (new)",
            List::OutpatientFollowUp => "Outpatient (follow-up)",
            List::Inpatient => "Inpatient",
            List::DayCase => "Day case",
        }
    }
    /// An elective admitted list (inpatient or day case).
    pub fn admitted(self) -> bool {
        matches!(self, List::Inpatient | List::DayCase)
    }
}

/// An entry's priority: outpatient referrals' routine / urgent / two-week
/// wait (suspected cancer); admitted lists' clinical priorities P1–P4
/// (Federation of Surgical Specialty Associations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Priority {
    Routine,
    Urgent,
    TwoWeekWait,
    P1,
    P2,
    P3,
    P4,
}

impl Priority {
    pub const ALL: [Priority; 7] = [
        Priority::Routine,
        Priority::Urgent,
        Priority::TwoWeekWait,
        Priority::P1,
        Priority::P2,
        Priority::P3,
        Priority::P4,
    ];
    pub fn code(self) -> &'static str {
        self.entry().0
    }
    pub fn parse(code: &str) -> Option<Priority> {
        let code = code.trim();
        Priority::ALL
            .into_iter()
            .find(|p| p.code().eq_ignore_ascii_case(code))
    }
    pub fn label(self) -> &'static str {
        self.entry().1
    }
    /// FHIR's `ServiceRequest.priority` for it.
    pub fn fhir(self) -> &'static str {
        self.entry().2
    }
    /// A clinical priority of the admitted lists (P1–P4).
    pub fn admitted(self) -> bool {
        matches!(
            self,
            Priority::P1 | Priority::P2 | Priority::P3 | Priority::P4
        )
    }
    fn entry(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Priority::Routine => ("routine", "Routine", "routine"),
            Priority::Urgent => ("urgent", "Urgent", "urgent"),
            Priority::TwoWeekWait => ("two-week-wait", "Two-week wait (suspected cancer)", "asap"),
            Priority::P1 => ("P1", "P1: within 72 hours", "stat"),
            Priority::P2 => ("P2", "P2: within 1 month", "asap"),
            Priority::P3 => ("P3", "P3: within 3 months", "urgent"),
            Priority::P4 => ("P4", "P4: can wait more than 3 months", "routine"),
        }
    }
}

/// What went wrong with a waiting-list action, in a sentence that names
/// the field (see [`WaitingError::field`]).
#[derive(Debug, Clone, PartialEq)]
pub enum WaitingError {
    /// A field is wrong (400): the field, the message.
    Field(&'static str, String),
    /// No such entry (404).
    NotFound(String),
    /// The entry's state does not allow it (422).
    State(String),
    /// The pathway refused.
    Rtt(RttError),
    /// The store refused (403, 409 someone changed it, 5xx).
    Fhir(FhirError),
}

impl WaitingError {
    pub fn status(&self) -> u16 {
        match self {
            WaitingError::Field(..) => 400,
            WaitingError::NotFound(_) => 404,
            WaitingError::State(_) => 422,
            WaitingError::Rtt(e) => e.status(),
            WaitingError::Fhir(e) => e.status,
        }
    }
    pub fn field(&self) -> Option<&'static str> {
        match self {
            WaitingError::Field(f, _) => Some(f),
            WaitingError::Rtt(e) => e.field(),
            _ => None,
        }
    }
    pub fn message(&self) -> String {
        match self {
            WaitingError::Field(_, m) | WaitingError::NotFound(m) | WaitingError::State(m) => {
                m.clone()
            }
            WaitingError::Rtt(e) => e.message(),
            WaitingError::Fhir(e) => rtt::refusal_text(e, "waiting-list entry"),
        }
    }
}

rtt::planned_care_error!(WaitingError);

impl From<RttError> for WaitingError {
    fn from(e: RttError) -> WaitingError {
        match e {
            RttError::Fhir(e) => WaitingError::Fhir(e),
            e => WaitingError::Rtt(e),
        }
    }
}

impl From<WaitingError> for FhirError {
    fn from(e: WaitingError) -> FhirError {
        match e {
            WaitingError::Fhir(e) => e,
            WaitingError::Rtt(e) => e.into(),
            other => rtt::outcome(other.status(), other.message(), other.field()),
        }
    }
}

impl From<WaitingError> for crate::referrals::ReferralError {
    fn from(e: WaitingError) -> Self {
        use crate::referrals::ReferralError as R;
        match e {
            WaitingError::Fhir(e) => e.into(),
            WaitingError::Rtt(e) => e.into(),
            WaitingError::NotFound(m) => R::NotFound(m),
            WaitingError::State(m) => R::Conflict(m),
            WaitingError::Field(f, m) => R::Field(f.into(), m),
        }
    }
}

/// An entry to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry<'a> {
    /// Patient id.
    pub patient: &'a str,
    pub list: List,
    /// The pathway (`EpisodeOfCare` id).
    pub pathway: Option<&'a str>,
    /// Treatment function code.
    pub specialty: &'a str,
    /// Practitioner id.
    pub consultant: Option<&'a str>,
    /// The intended procedure (SNOMED CT code, display).
    pub procedure: Option<(&'a str, &'a str)>,
    pub priority: Priority,
    /// The date decided.
    pub decided: Date,
    pub note: Option<&'a str>,
}

/// An entry's place on its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    Waiting,
    Booked,
    Suspended,
    /// Seen or treated.
    Completed,
    Removed,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Waiting => "Waiting",
            State::Booked => "Booked",
            State::Suspended => "Suspended",
            State::Completed => "Off the list (seen or treated)",
            State::Removed => "Removed",
        }
    }
}

/// Whether the resource is a waiting-list entry.
pub fn is_entry(sr: &Value) -> bool {
    list_of(sr).is_some()
}

/// The entry's list.
pub fn list_of(sr: &Value) -> Option<List> {
    if sr["resourceType"] != "ServiceRequest" || sr["intent"] != "plan" {
        return None;
    }
    sr["category"].as_array()?.iter().find_map(|c| {
        c["coding"].as_array()?.iter().find_map(|cd| {
            (cd["system"] == LIST_SYSTEM)
                .then(|| cd["code"].as_str().and_then(List::parse))
                .flatten()
        })
    })
}

fn ext<'a>(sr: &'a Value, url: &str) -> Option<&'a Value> {
    sr["extension"].as_array()?.iter().find(|e| e["url"] == url)
}

fn set_ext(sr: &mut Value, url: &str, value: Option<Value>) {
    if !sr["extension"].is_array() {
        sr["extension"] = json!([]);
    }
    if let Some(exts) = sr["extension"].as_array_mut() {
        exts.retain(|e| e["url"] != url);
        if let Some(mut v) = value {
            v["url"] = json!(url);
            exts.push(v);
        }
    }
}

/// The appointment (id) an entry is booked into.
pub fn booked(sr: &Value) -> Option<&str> {
    reference_id(&ext(sr, BOOKED_EXT)?["valueReference"], "Appointment")
}

/// The entry's state.
pub fn state_of(sr: &Value) -> State {
    match sr["status"].as_str() {
        Some("active") if booked(sr).is_some() => State::Booked,
        Some("active") => State::Waiting,
        Some("on-hold") => State::Suspended,
        Some("completed") => State::Completed,
        _ => State::Removed,
    }
}

/// The entry's exact priority.
pub fn priority_of(sr: &Value) -> Option<Priority> {
    ext(sr, PRIORITY_EXT)?["valueCoding"]["code"]
        .as_str()
        .and_then(Priority::parse)
}

/// The entry's pathway (EpisodeOfCare id).
pub fn pathway_of(sr: &Value) -> Option<&str> {
    sr["supportingInfo"]
        .as_array()?
        .iter()
        .find_map(|r| reference_id(r, "EpisodeOfCare"))
}

fn fhir_date(d: Date) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    d.format(&f).unwrap_or_default()
}

/// The entries still on a list (waiting, booked or suspended) of a patient.
pub fn open_entries_in(tx: &mut Tx<'_>, patient: &str) -> Result<Vec<Value>, WaitingError> {
    Ok(tx
        .find(
            "ServiceRequest",
            &format!("subject=Patient/{patient}&intent=plan&status=active,on-hold"),
        )?
        .into_iter()
        .filter(is_entry)
        .collect())
}

/// Adds an entry to a list; its ServiceRequest id.
pub fn add_in(tx: &mut Tx<'_>, e: &NewEntry) -> Result<String, WaitingError> {
    if !rtt::valid_specialty(e.specialty) {
        return Err(WaitingError::Field(
            "specialty",
            format!(
                "The specialty must be a three-digit treatment function code, not {:?}.",
                e.specialty
            ),
        ));
    }
    if e.list.admitted() != e.priority.admitted() {
        return Err(WaitingError::Field(
            "priority",
            if e.list.admitted() {
                format!(
                    "An admitted list's priority is P1, P2, P3 or P4, not {}.",
                    e.priority.label()
                )
            } else {
                format!(
                    "An outpatient list's priority is routine, urgent or two-week wait, not {}.",
                    e.priority.label()
                )
            },
        ));
    }
    let procedure = match e.procedure {
        Some((code, display)) if !code.trim().is_empty() => {
            if !code.trim().chars().all(|c| c.is_ascii_digit()) {
                return Err(WaitingError::Field(
                    "procedure",
                    format!("The procedure must be a SNOMED CT code (digits), not {code:?}."),
                ));
            }
            Some((code.trim(), display.trim()))
        }
        _ if e.list.admitted() => {
            return Err(WaitingError::Field(
                "procedure",
                "An admitted list entry needs the intended procedure.".into(),
            ));
        }
        _ => None,
    };
    let Some(patient) = tx.get("Patient", e.patient)? else {
        return Err(WaitingError::NotFound(format!(
            "There is no patient {}.",
            e.patient
        )));
    };
    if patient.get("deceasedDateTime").is_some() || patient["deceasedBoolean"] == true {
        return Err(WaitingError::Field(
            "patient",
            "The patient has died: they cannot be added to a waiting list.".into(),
        ));
    }
    if let Some(c) = e.consultant
        && tx.get("Practitioner", c)?.is_none()
    {
        return Err(WaitingError::Field(
            "consultant",
            format!("There is no consultant Practitioner/{c}."),
        ));
    }
    let mut referral = None;
    if let Some(pw) = e.pathway {
        let (_, p) = rtt::pathway_in(tx, pw)?;
        if p.patient != e.patient {
            return Err(WaitingError::Field(
                "pathway",
                format!("The pathway EpisodeOfCare/{pw} is another patient's."),
            ));
        }
        tx.lock(&[format!("waiting/{pw}/{}", e.list.code())])?;
        let twin = open_entries_in(tx, e.patient)?
            .into_iter()
            .any(|sr| pathway_of(&sr) == Some(pw) && list_of(&sr) == Some(e.list));
        if twin {
            return Err(WaitingError::State(format!(
                "The pathway is already on the {} list: one entry per pathway and list.",
                e.list.label()
            )));
        }
        referral = p.referral;
    }
    let mut sr = json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": LIST_SYSTEM, "code": e.list.code(), "display": e.list.label()}]}],
        "priority": e.priority.fhir(),
        "subject": {"reference": format!("Patient/{}", e.patient)},
        "authoredOn": fhir_date(e.decided),
        "extension": [
            {"url": PRIORITY_EXT, "valueCoding": {"system": PRIORITY_SYSTEM, "code": e.priority.code(), "display": e.priority.label()}},
            {"url": TREATMENT_FUNCTION_EXT, "valueCoding": {"system": TREATMENT_FUNCTION_SYSTEM, "code": e.specialty}},
        ],
    });
    sr["code"] = match procedure {
        Some((code, display)) => {
            let mut c = json!({"system": SNOMED_SYSTEM, "code": code});
            if !display.is_empty() {
                c["display"] = json!(display);
            }
            json!({"coding": [c], "text": if display.is_empty() { code } else { display }})
        }
        None => json!({"text": e.list.label()}),
    };
    if let Some(c) = e.consultant {
        sr["performer"] = json!([{"reference": format!("Practitioner/{c}")}]);
    }
    if let Some(pw) = e.pathway {
        sr["supportingInfo"] = json!([{"reference": format!("EpisodeOfCare/{pw}")}]);
    }
    if let Some(r) = referral {
        sr["basedOn"] = json!([{"reference": format!("ServiceRequest/{r}")}]);
    }
    if let Some(n) = e.note.map(str::trim).filter(|n| !n.is_empty()) {
        sr["note"] = json!([{"text": n}]);
    }
    Ok(tx.save(sr)?.id)
}

/// Locks and reads an entry.
pub fn entry_in(tx: &mut Tx<'_>, id: &str) -> Result<Value, WaitingError> {
    tx.lock(&[format!("ServiceRequest/{id}")])?;
    tx.get("ServiceRequest", id)?
        .filter(is_entry)
        .ok_or_else(|| WaitingError::NotFound(format!("There is no waiting-list entry {id}.")))
}

fn refuse(sr: &Value, what: &str) -> WaitingError {
    WaitingError::State(format!(
        "The entry is {}: it cannot be {what}.",
        state_of(sr).label().to_lowercase()
    ))
}

/// Books the entry into `appointment`; refuses an entry not waiting or
/// already booked.
pub fn book_in(tx: &mut Tx<'_>, entry: &str, appointment: &str) -> Result<(), WaitingError> {
    let mut sr = entry_in(tx, entry)?;
    if state_of(&sr) != State::Waiting {
        return Err(refuse(&sr, "booked"));
    }
    let Some(appt) = tx.get("Appointment", appointment)? else {
        return Err(WaitingError::Field(
            "appointment",
            format!("There is no Appointment/{appointment}."),
        ));
    };
    let patient = reference_id(&sr["subject"], "Patient").unwrap_or_default();
    let for_other = appt["participant"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| reference_id(&p["actor"], "Patient").is_some_and(|id| id != patient))
    });
    if for_other {
        return Err(WaitingError::Field(
            "appointment",
            format!("Appointment/{appointment} is another patient's."),
        ));
    }
    set_ext(
        &mut sr,
        BOOKED_EXT,
        Some(json!({"valueReference": {"reference": format!("Appointment/{appointment}")}})),
    );
    tx.save(sr)?;
    Ok(())
}

/// Back to waiting (a hospital cancellation, a DNA of a follow-up).
pub fn unbook_in(tx: &mut Tx<'_>, entry: &str) -> Result<(), WaitingError> {
    let mut sr = entry_in(tx, entry)?;
    if state_of(&sr) != State::Booked {
        return Err(refuse(&sr, "unbooked"));
    }
    set_ext(&mut sr, BOOKED_EXT, None);
    tx.save(sr)?;
    Ok(())
}

fn leave(tx: &mut Tx<'_>, entry: &str, reason: &str, status: &str) -> Result<(), WaitingError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(WaitingError::Field(
            "reason",
            "Give the reason the entry leaves the list.".into(),
        ));
    }
    let mut sr = entry_in(tx, entry)?;
    if !matches!(
        state_of(&sr),
        State::Waiting | State::Booked | State::Suspended
    ) {
        return Err(refuse(&sr, "taken off the list again"));
    }
    sr["status"] = json!(status);
    set_ext(&mut sr, SUSPENSION_EXT, None);
    set_ext(&mut sr, OUTCOME_EXT, Some(json!({"valueString": reason})));
    tx.save(sr)?;
    Ok(())
}

/// Seen / treated / removed: the entry leaves the list (`completed`), with
/// the reason.
pub fn close_in(tx: &mut Tx<'_>, entry: &str, reason: &str) -> Result<(), WaitingError> {
    leave(tx, entry, reason, "completed")
}

/// Removed without being seen or treated (`revoked`), with the reason.
pub fn remove_in(tx: &mut Tx<'_>, entry: &str, reason: &str) -> Result<(), WaitingError> {
    leave(tx, entry, reason, "revoked")
}

/// Suspends a waiting entry with a reason until a date.
pub fn suspend_in(
    tx: &mut Tx<'_>,
    entry: &str,
    reason: &str,
    until: Date,
) -> Result<(), WaitingError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(WaitingError::Field(
            "reason",
            "Give the reason for the suspension.".into(),
        ));
    }
    let mut sr = entry_in(tx, entry)?;
    if state_of(&sr) != State::Waiting {
        return Err(refuse(&sr, "suspended"));
    }
    sr["status"] = json!("on-hold");
    set_ext(
        &mut sr,
        SUSPENSION_EXT,
        Some(json!({"extension": [
            {"url": "reason", "valueString": reason},
            {"url": "until", "valueDate": fhir_date(until)},
        ]})),
    );
    tx.save(sr)?;
    Ok(())
}

/// Ends a suspension: the entry waits again.
pub fn resume_in(tx: &mut Tx<'_>, entry: &str) -> Result<(), WaitingError> {
    let mut sr = entry_in(tx, entry)?;
    if state_of(&sr) != State::Suspended {
        return Err(refuse(&sr, "resumed"));
    }
    sr["status"] = json!("active");
    set_ext(&mut sr, SUSPENSION_EXT, None);
    tx.save(sr)?;
    Ok(())
}

// ---------------------------------------------------------------- audited entries

fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, FhirError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

/// Runs `f` in one transaction audited as `what`.
fn audited<T>(
    svc: &FhirService,
    access: &dyn Access,
    what: &str,
    action: &'static str,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, WaitingError>,
) -> Result<T, WaitingError> {
    let mut tx = begin(svc, access, what, action)?;
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// Adds an entry (`waiting-add`).
pub fn add(svc: &FhirService, access: &dyn Access, e: &NewEntry) -> Result<String, WaitingError> {
    audited(svc, access, "waiting-add", "C", |tx| add_in(tx, e))
}

/// Suspends an entry (`waiting-suspend`).
pub fn suspend(
    svc: &FhirService,
    access: &dyn Access,
    entry: &str,
    reason: &str,
    until: Date,
) -> Result<(), WaitingError> {
    audited(svc, access, "waiting-suspend", "U", |tx| {
        suspend_in(tx, entry, reason, until)
    })
}

/// Resumes an entry (`waiting-resume`).
pub fn resume(svc: &FhirService, access: &dyn Access, entry: &str) -> Result<(), WaitingError> {
    audited(svc, access, "waiting-resume", "U", |tx| {
        resume_in(tx, entry)
    })
}

/// Removes an entry with the reason (`waiting-remove`).
pub fn remove(
    svc: &FhirService,
    access: &dyn Access,
    entry: &str,
    reason: &str,
) -> Result<(), WaitingError> {
    audited(svc, access, "waiting-remove", "U", |tx| {
        remove_in(tx, entry, reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_tables_round_trip() {
        for l in List::ALL {
            assert_eq!(List::parse(l.code()), Some(l));
            assert!(!l.label().is_empty());
        }
        assert_eq!(List::parse("day-case"), Some(List::DayCase));
        assert_eq!(List::parse("daycase"), None);
        assert!(List::Inpatient.admitted() && !List::OutpatientNew.admitted());
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.code()), Some(p));
            assert!(["routine", "urgent", "asap", "stat"].contains(&p.fhir()));
        }
        assert_eq!(Priority::parse("p2"), Some(Priority::P2));
        assert_eq!(
            Priority::parse("two-week-wait"),
            Some(Priority::TwoWeekWait)
        );
        assert_eq!(Priority::parse("P5"), None);
        assert!(Priority::P1.admitted() && !Priority::Urgent.admitted());
    }

    #[test]
    fn the_state_is_read_from_status_and_booking() {
        let mut sr = json!({"resourceType": "ServiceRequest", "intent": "plan", "status": "active",
            "category": [{"coding": [{"system": LIST_SYSTEM, "code": "inpatient"}]}]});
        assert_eq!(list_of(&sr), Some(List::Inpatient));
        assert_eq!(state_of(&sr), State::Waiting);
        set_ext(
            &mut sr,
            BOOKED_EXT,
            Some(json!({"valueReference": {"reference": "Appointment/7"}})),
        );
        assert_eq!(booked(&sr), Some("7"));
        assert_eq!(state_of(&sr), State::Booked);
        sr["status"] = json!("on-hold");
        assert_eq!(state_of(&sr), State::Suspended);
        sr["status"] = json!("revoked");
        assert_eq!(state_of(&sr), State::Removed);
        sr["intent"] = json!("order");
        assert!(!is_entry(&sr));
    }
}
