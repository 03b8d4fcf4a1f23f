//! Referral to treatment (RTT): the consultant-led 18-week pathway, its
//! clock and the status codes recorded on each event (issue 19).
//!
//! # The source of the rules
//!
//! NHS England, *Recording and reporting referral to treatment (RTT)
//! waiting times for consultant-led elective care* (the RTT guidance, with
//! the National Health Service Commissioning Board and Clinical
//! Commissioning Groups (Responsibilities and Standing Rules) Regulations
//! 2012 it interprets — the "RTT Rules Suite") and the NHS Data
//! Dictionary's *Referral to Treatment Period Status* codes, which
//! [`Status`] carries with their meanings. The rules this module applies:
//!
//! * **Clock start**: when the provider receives the referral (code 10);
//!   a new clock on a pathway after active monitoring ends (11), for a
//!   consultant's referral for a new condition or a substantively new
//!   treatment (12), and when a patient whose first appointment was
//!   nullified (33) rebooks (10 again, on the date of rebooking).
//! * **Clock continues** (20) through every activity before treatment, and
//!   when the patient moves to another provider (21).
//! * **Clock stop**: first definitive treatment (30); active monitoring
//!   started by the patient (31) or the clinician (32); a decision not to
//!   treat (34); the patient declines treatment (35); the patient dies
//!   (36).
//! * **Nullification**: a did-not-attend of the *first* appointment after
//!   the referral (33) removes the clock as if it had never started (the
//!   pathway is not counted as waiting, nor as a completed wait). A DNA of
//!   any later appointment does not stop the clock.
//! * After a stop, activity is recorded with 90 (after treatment), 91
//!   (active monitoring), 92 (not yet referred), 98 (not applicable) or
//!   99 (not yet known): none moves the clock.
//! * **Weeks waited**: whole weeks from the clock start to today (a running
//!   clock) or to the clock stop ([`weeks_between`]).
//!
//! # The FHIR shape (the clinics and theatres code reads it)
//!
//! A **pathway** is an `EpisodeOfCare`:
//!
//! * `identifier` [`PPID_SYSTEM`]: the patient pathway identifier (PPID);
//! * `type` [`EPISODE_TYPE_SYSTEM`] `rtt`;
//! * `status` `active` (the clock is running), `finished` (stopped) or
//!   `cancelled` (nullified by a first-appointment DNA);
//! * `patient`, `referralRequest` (the referral), `careManager` (the
//!   consultant, a `Practitioner`);
//! * `period.start` the clock start, `period.end` the clock stop (or the
//!   nullification); earlier clock periods of the same pathway (a clock
//!   restarted with 10, 11 or 12) are kept in `statusHistory`;
//! * extension [`TREATMENT_FUNCTION_EXT`] (`valueCoding`,
//!   [`TREATMENT_FUNCTION_SYSTEM`]): the specialty, e.g. `100`;
//! * repeating extension [`EVENT_EXT`], one per event in date order, with
//!   sub-extensions `status` (`valueCoding`, [`STATUS_SYSTEM`]), `date`
//!   (`valueDate`) and `source` (`valueReference`: the resource that is
//!   the event — the referral, an `Appointment`, an `Encounter`, a
//!   `Procedure`).
//!
//! Open pathways are found with `EpisodeOfCare?type=…|rtt&status=active`
//! (`patient`, `date` and `care-manager` narrow it).

pub mod ptl;

use serde::Serialize;
use serde_json::{Value, json};
use time::Date;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

use crate::fhir::reference_id;

/// The patient pathway identifier (PPID).
pub const PPID_SYSTEM: &str = "https://fhir.wardline.invalid/rtt-pathway";
/// `EpisodeOfCare.type` of an RTT pathway (code [`EPISODE_TYPE_RTT`]).
pub const EPISODE_TYPE_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/episode-type";
pub const EPISODE_TYPE_RTT: &str = "rtt";
/// One RTT event (sub-extensions `status`, `date`, `source`).
pub const EVENT_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/rtt-event";
/// The RTT period status codes ([`Status`]).
pub const STATUS_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/rtt-status";
/// The pathway's specialty (`valueCoding`).
pub const TREATMENT_FUNCTION_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/treatment-function";
/// NHS Data Dictionary treatment function codes.
pub const TREATMENT_FUNCTION_SYSTEM: &str =
    "https://fhir.wardline.invalid/CodeSystem/treatment-function";

/// The Data Dictionary's *Referral to Treatment Period Status* codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Status {
    S10,
    S11,
    S12,
    S20,
    S21,
    S30,
    S31,
    S32,
    S33,
    S34,
    S35,
    S36,
    S90,
    S91,
    S92,
    S98,
    S99,
}

/// What a status does to the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ClockEffect {
    /// A clock starts (10, 11, 12).
    Start,
    /// The clock keeps running (20, 21).
    Continue,
    /// The clock stops (30–36; 33 nullifies it).
    Stop,
    /// No RTT clock: after treatment, active monitoring, not applicable.
    None,
}

impl Status {
    pub const ALL: [Status; 17] = [
        Status::S10,
        Status::S11,
        Status::S12,
        Status::S20,
        Status::S21,
        Status::S30,
        Status::S31,
        Status::S32,
        Status::S33,
        Status::S34,
        Status::S35,
        Status::S36,
        Status::S90,
        Status::S91,
        Status::S92,
        Status::S98,
        Status::S99,
    ];

    pub fn code(self) -> &'static str {
        self.entry().0
    }

    pub fn parse(code: &str) -> Option<Status> {
        let code = code.trim();
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The code's meaning in plain English (NHS Data Dictionary).
    pub fn label(self) -> &'static str {
        self.entry().1
    }

    pub fn effect(self) -> ClockEffect {
        self.entry().2
    }

    fn entry(self) -> (&'static str, &'static str, ClockEffect) {
        use ClockEffect as E;
        match self {
            Status::S10 => (
                "10",
                "First activity: referral received, clock starts",
                E::Start,
            ),
            Status::S11 => (
                "11",
                "Active monitoring ended: a new clock starts",
                E::Start,
            ),
            Status::S12 => (
                "12",
                "Consultant referral for a new condition: a new clock starts",
                E::Start,
            ),
            Status::S20 => ("20", "Subsequent activity: clock continues", E::Continue),
            Status::S21 => (
                "21",
                "Transferred to another provider: clock continues",
                E::Continue,
            ),
            Status::S30 => (
                "30",
                "First definitive treatment started: clock stops",
                E::Stop,
            ),
            Status::S31 => (
                "31",
                "Active monitoring started by the patient: clock stops",
                E::Stop,
            ),
            Status::S32 => (
                "32",
                "Active monitoring started by the clinician: clock stops",
                E::Stop,
            ),
            Status::S33 => (
                "33",
                "Did not attend the first appointment: clock nullified",
                E::Stop,
            ),
            Status::S34 => ("34", "Decision not to treat: clock stops", E::Stop),
            Status::S35 => ("35", "Patient declined treatment: clock stops", E::Stop),
            Status::S36 => ("36", "Patient died before treatment: clock stops", E::Stop),
            Status::S90 => ("90", "After first definitive treatment", E::None),
            Status::S91 => ("91", "During active monitoring", E::None),
            Status::S92 => ("92", "Not yet referred for treatment", E::None),
            Status::S98 => ("98", "Not applicable to RTT", E::None),
            Status::S99 => ("99", "Not yet known", E::None),
        }
    }

    /// The FHIR `Coding` of the status.
    pub fn coding(self) -> Value {
        json!({"system": STATUS_SYSTEM, "code": self.code(), "display": self.label()})
    }
}

/// Whole weeks from `start` to `end` (0 when `end` is before `start`).
pub fn weeks_between(start: Date, end: Date) -> i64 {
    ((end - start).whole_days() / 7).max(0)
}

// ---------------------------------------------------------------- errors

/// What went wrong with an RTT action, in a sentence that names the field
/// (see [`RttError::field`]).
#[derive(Debug, Clone, PartialEq)]
pub enum RttError {
    /// A field is wrong (400): the field, the message.
    Field(&'static str, String),
    /// No such pathway, patient or referral (404).
    NotFound(String),
    /// The clock's state does not allow it (422).
    Clock(String),
    /// The store refused (403, 409 someone changed it, 5xx).
    Fhir(FhirError),
}

impl RttError {
    pub fn status(&self) -> u16 {
        match self {
            RttError::Field(..) => 400,
            RttError::NotFound(_) => 404,
            RttError::Clock(_) => 422,
            RttError::Fhir(e) => e.status,
        }
    }

    /// The form field the error is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            RttError::Field(f, _) => Some(f),
            _ => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            RttError::Field(_, m) | RttError::NotFound(m) | RttError::Clock(m) => m.clone(),
            RttError::Fhir(e) => refusal_text(e, "pathway"),
        }
    }
}

/// A store refusal as a person reads it.
pub(crate) fn refusal_text(e: &FhirError, what: &str) -> String {
    use crate::fhir::Refusal as R;
    match R::of(e, what) {
        R::Forbidden(m) | R::NotFound(m) | R::Concurrent(m) | R::Invalid(m) | R::Store(m) => m,
    }
}

/// An OperationOutcome of a planned-care refusal.
pub(crate) fn outcome(status: u16, message: String, field: Option<&str>) -> FhirError {
    let code = match status {
        400 => "invalid",
        404 => "not-found",
        _ => "business-rule",
    };
    let e = FhirError::new(status, code, message);
    match field {
        Some(f) => e.at(f),
        None => e,
    }
}

/// `Display` (the message), `Error` and `From<FhirError>` (the `Fhir`
/// variant) of a planned-care error enum with `message()` ([`RttError`],
/// `waiting::WaitingError`).
macro_rules! planned_care_error {
    ($t:ident) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.message())
            }
        }

        impl std::error::Error for $t {}

        impl From<wardline_fhir::FhirError> for $t {
            fn from(e: wardline_fhir::FhirError) -> $t {
                $t::Fhir(e)
            }
        }
    };
}
pub(crate) use planned_care_error;

planned_care_error!(RttError);

impl From<RttError> for FhirError {
    fn from(e: RttError) -> FhirError {
        match e {
            RttError::Fhir(e) => e,
            other => outcome(other.status(), other.message(), other.field()),
        }
    }
}

impl From<RttError> for crate::referrals::ReferralError {
    fn from(e: RttError) -> Self {
        use crate::referrals::ReferralError as R;
        match e {
            RttError::Fhir(e) => e.into(),
            RttError::NotFound(m) => R::NotFound(m),
            RttError::Clock(m) => R::Conflict(m),
            RttError::Field(f, m) => R::Field(f.into(), m),
        }
    }
}

// ---------------------------------------------------------------- the pathway

/// A pathway to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPathway<'a> {
    /// Patient id.
    pub patient: &'a str,
    /// The referral (`ServiceRequest` id).
    pub referral: Option<&'a str>,
    /// Treatment function code, e.g. `100`.
    pub specialty: &'a str,
    /// The consultant (`Practitioner` id).
    pub consultant: Option<&'a str>,
    /// The clock start (the date the referral was received).
    pub start: Date,
    /// 10, 11 or 12.
    pub status: Status,
    /// The resource that starts it, e.g. `ServiceRequest/1`.
    pub source: &'a str,
}

/// A clock's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Clock {
    Running,
    Stopped,
    /// Removed by a DNA of the first appointment (33).
    Nullified,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub status: Status,
    pub date: Date,
    /// `Type/id`.
    pub source: String,
}

/// A pathway as read from its `EpisodeOfCare` (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Pathway {
    pub id: String,
    pub ppid: String,
    /// Patient id.
    pub patient: String,
    /// ServiceRequest id.
    pub referral: Option<String>,
    pub specialty: String,
    /// Practitioner id.
    pub consultant: Option<String>,
    pub clock: Clock,
    /// The current clock's start.
    pub start: Date,
    /// The current clock's stop (or nullification).
    pub stop: Option<Date>,
    pub events: Vec<Event>,
}

pub(crate) fn fhir_date(d: Date) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    d.format(&f).unwrap_or_default()
}

/// A FHIR `date` (the first ten characters of a date or dateTime).
pub fn parse_date(s: &str) -> Option<Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.get(..10)?, &f).ok()
}

fn sub<'a>(e: &'a Value, name: &str) -> Option<&'a Value> {
    e["extension"].as_array()?.iter().find(|s| s["url"] == name)
}

/// Whether the resource is an RTT pathway.
pub fn is_pathway(v: &Value) -> bool {
    v["resourceType"] == "EpisodeOfCare"
        && v["type"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                t["coding"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["system"] == EPISODE_TYPE_SYSTEM && c["code"] == EPISODE_TYPE_RTT
                    })
                })
            })
        })
}

impl Pathway {
    /// Reads a pathway; `None` when `v` is not one.
    pub fn of(v: &Value) -> Option<Pathway> {
        if !is_pathway(v) {
            return None;
        }
        let exts = v["extension"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let events = exts
            .iter()
            .filter(|e| e["url"] == EVENT_EXT)
            .filter_map(|e| {
                Some(Event {
                    status: Status::parse(sub(e, "status")?["valueCoding"]["code"].as_str()?)?,
                    date: parse_date(sub(e, "date")?["valueDate"].as_str()?)?,
                    source: sub(e, "source")
                        .and_then(|s| s["valueReference"]["reference"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                })
            })
            .collect();
        let specialty = exts
            .iter()
            .find(|e| e["url"] == TREATMENT_FUNCTION_EXT)
            .and_then(|e| e["valueCoding"]["code"].as_str())
            .unwrap_or_default()
            .to_owned();
        let clock = match v["status"].as_str() {
            Some("active") => Clock::Running,
            Some("cancelled") => Clock::Nullified,
            _ => Clock::Stopped,
        };
        Some(Pathway {
            id: v["id"].as_str().unwrap_or_default().to_owned(),
            ppid: v["identifier"]
                .as_array()
                .and_then(|is| is.iter().find(|i| i["system"] == PPID_SYSTEM))
                .and_then(|i| i["value"].as_str())
                .unwrap_or_default()
                .to_owned(),
            patient: reference_id(&v["patient"], "Patient")
                .unwrap_or_default()
                .to_owned(),
            referral: v["referralRequest"][0]["reference"]
                .as_str()
                .and_then(|_| reference_id(&v["referralRequest"][0], "ServiceRequest"))
                .map(str::to_owned),
            specialty,
            consultant: reference_id(&v["careManager"], "Practitioner").map(str::to_owned),
            clock,
            start: v["period"]["start"].as_str().and_then(parse_date)?,
            stop: v["period"]["end"].as_str().and_then(parse_date),
            events,
        })
    }

    /// Whole weeks waited: to `today` while the clock runs, to the stop once
    /// stopped; `None` for a nullified clock (it never counted).
    pub fn weeks_waited(&self, today: Date) -> Option<i64> {
        match self.clock {
            Clock::Running => Some(weeks_between(self.start, today)),
            Clock::Stopped => Some(weeks_between(self.start, self.stop.unwrap_or(today))),
            Clock::Nullified => None,
        }
    }

    /// The pathway as it would be after recording `status` on `on` (the
    /// clock rules of [`record_in`], without a store), or why it may not be.
    pub fn after(&self, status: Status, on: Date) -> Result<Pathway, RttError> {
        let mut p = self.clone();
        match clock_rule(self, status, on)? {
            Next::Same => {}
            Next::Restart => {
                p.clock = Clock::Running;
                p.start = on;
                p.stop = None;
            }
            Next::Stop(s) => {
                p.clock = if s == "cancelled" {
                    Clock::Nullified
                } else {
                    Clock::Stopped
                };
                p.stop = Some(on);
            }
        }
        p.events.push(Event {
            status,
            date: on,
            source: String::new(),
        });
        Ok(p)
    }

    /// The last event's status.
    pub fn last_status(&self) -> Option<Status> {
        self.events.last().map(|e| e.status)
    }
}

/// `Type/id`, both parts present.
fn check_source(source: &str) -> Result<(), RttError> {
    match source.split_once('/') {
        Some((t, id))
            if !t.is_empty()
                && t.chars().all(|c| c.is_ascii_alphabetic())
                && !id.is_empty()
                && !id.contains('/') =>
        {
            Ok(())
        }
        _ => Err(RttError::Field(
            "source",
            format!("The event's source must be a reference Type/id, not {source:?}."),
        )),
    }
}

fn event_ext(status: Status, on: Date, source: &str) -> Value {
    json!({"url": EVENT_EXT, "extension": [
        {"url": "status", "valueCoding": status.coding()},
        {"url": "date", "valueDate": fhir_date(on)},
        {"url": "source", "valueReference": {"reference": source}},
    ]})
}

fn new_ppid() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..20].to_uppercase()
}

/// The treatment functions of the RTT return (NHS Data Dictionary
/// *Treatment Function Code*), as the pages offer them.
pub const SPECIALTIES: [(&str, &str); 20] = [
    ("100", "General Surgery"),
    ("101", "Urology"),
    ("110", "Trauma and Orthopaedics"),
    ("120", "Ear Nose and Throat"),
    ("130", "Ophthalmology"),
    ("140", "Oral Surgery"),
    ("150", "Neurosurgery"),
    ("160", "Plastic Surgery"),
    ("170", "Cardiothoracic Surgery"),
    ("300", "General Internal Medicine"),
    ("301", "Gastroenterology"),
    ("320", "Cardiology"),
    ("330", "Dermatology"),
    ("340", "Respiratory Medicine"),
    ("400", "Neurology"),
    ("410", "Rheumatology"),
    ("430", "Elderly Medicine"),
    ("502", "Gynaecology"),
    ("103", "Breast Surgery"),
    ("104", "Colorectal Surgery"),
];

/// A specialty's name ("Treatment function 999" for a code not in
/// [`SPECIALTIES`]).
pub fn specialty_name(code: &str) -> String {
    SPECIALTIES.iter().find(|(c, _)| *c == code).map_or_else(
        || format!("Treatment function {code}"),
        |(_, n)| (*n).to_owned(),
    )
}

/// Whether `code` is a treatment function code (three digits).
pub fn valid_specialty(code: &str) -> bool {
    code.len() == 3 && code.chars().all(|c| c.is_ascii_digit())
}

/// Opens a pathway (an EpisodeOfCare) whose clock starts on `start`;
/// returns its id.
pub fn open_in(tx: &mut Tx<'_>, new: &NewPathway) -> Result<String, RttError> {
    if new.status.effect() != ClockEffect::Start {
        return Err(RttError::Field(
            "status",
            format!(
                "A pathway opens with status 10, 11 or 12, not {}.",
                new.status.code()
            ),
        ));
    }
    if !valid_specialty(new.specialty) {
        return Err(RttError::Field(
            "specialty",
            format!(
                "The specialty must be a three-digit treatment function code, not {:?}.",
                new.specialty
            ),
        ));
    }
    check_source(new.source)?;
    if tx.get("Patient", new.patient)?.is_none() {
        return Err(RttError::NotFound(format!(
            "There is no patient {}.",
            new.patient
        )));
    }
    if let Some(r) = new.referral
        && tx.get("ServiceRequest", r)?.is_none()
    {
        return Err(RttError::Field(
            "referral",
            format!("There is no referral ServiceRequest/{r}."),
        ));
    }
    if let Some(c) = new.consultant
        && tx.get("Practitioner", c)?.is_none()
    {
        return Err(RttError::Field(
            "consultant",
            format!("There is no consultant Practitioner/{c}."),
        ));
    }
    let mut eoc = json!({
        "resourceType": "EpisodeOfCare",
        "identifier": [{"system": PPID_SYSTEM, "value": new_ppid()}],
        "status": "active",
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": EPISODE_TYPE_RTT,
            "display": "Referral to treatment pathway"}]}],
        "patient": {"reference": format!("Patient/{}", new.patient)},
        "period": {"start": fhir_date(new.start)},
        "extension": [
            {"url": TREATMENT_FUNCTION_EXT, "valueCoding": {"system": TREATMENT_FUNCTION_SYSTEM,
                "code": new.specialty}},
            event_ext(new.status, new.start, new.source),
        ],
    });
    if let Some(r) = new.referral {
        eoc["referralRequest"] = json!([{"reference": format!("ServiceRequest/{r}")}]);
    }
    if let Some(c) = new.consultant {
        eoc["careManager"] = json!({"reference": format!("Practitioner/{c}")});
    }
    Ok(tx.save(eoc)?.id)
}

/// Locks and reads a pathway in `tx`.
pub fn pathway_in(tx: &mut Tx<'_>, id: &str) -> Result<(Value, Pathway), RttError> {
    tx.lock(&[format!("EpisodeOfCare/{id}")])?;
    let v = tx
        .get("EpisodeOfCare", id)?
        .ok_or_else(|| RttError::NotFound(format!("There is no pathway EpisodeOfCare/{id}.")))?;
    let p = Pathway::of(&v)
        .ok_or_else(|| RttError::NotFound(format!("EpisodeOfCare/{id} is not an RTT pathway.")))?;
    Ok((v, p))
}

/// Records one RTT event (status on a date, the resource that is the
/// event: "Appointment/7", "Encounter/3", "Procedure/9") on the pathway;
/// applies the clock rules (stop/restart; see the module docs).
pub fn record_in(
    tx: &mut Tx<'_>,
    pathway: &str,
    status: Status,
    on: Date,
    source: &str,
) -> Result<(), RttError> {
    check_source(source)?;
    let (mut v, p) = pathway_in(tx, pathway)?;
    let next = clock_rule(&p, status, on)?;
    match next {
        Next::Same => {}
        Next::Restart => {
            let old = json!({"status": v["status"].clone(), "period": v["period"].clone()});
            match v["statusHistory"].as_array_mut() {
                Some(h) => h.push(old),
                None => v["statusHistory"] = json!([old]),
            }
            v["status"] = json!("active");
            v["period"] = json!({"start": fhir_date(on)});
        }
        Next::Stop(s) => {
            v["status"] = json!(s);
            v["period"]["end"] = json!(fhir_date(on));
        }
    }
    if !v["extension"].is_array() {
        v["extension"] = json!([]);
    }
    if let Some(exts) = v["extension"].as_array_mut() {
        exts.push(event_ext(status, on, source));
    }
    tx.save(v)?;
    Ok(())
}

enum Next {
    Same,
    Restart,
    /// The new `EpisodeOfCare.status`.
    Stop(&'static str),
}

/// The clock rules: what `status` on `on` does to pathway `p`, or why it
/// may not be recorded.
fn clock_rule(p: &Pathway, status: Status, on: Date) -> Result<Next, RttError> {
    if let Some(last) = p.events.last()
        && on < last.date
    {
        return Err(RttError::Field(
            "date",
            format!(
                "The event's date {} is before the pathway's last event ({}, {}): events are recorded in date order.",
                fhir_date(on),
                last.status.code(),
                fhir_date(last.date)
            ),
        ));
    }
    let running = p.clock == Clock::Running;
    let code = status.code();
    match status.effect() {
        ClockEffect::Start => {
            if running {
                return Err(RttError::Clock(format!(
                    "The clock has been running since {}: a new clock ({code}) starts only after it stops.",
                    fhir_date(p.start)
                )));
            }
            let last_stop = p
                .events
                .iter()
                .rev()
                .find(|e| e.status.effect() == ClockEffect::Stop)
                .map(|e| e.status);
            let fits = match status {
                // A first appointment DNA'd: the clock starts again when the
                // patient rebooks.
                Status::S10 => last_stop == Some(Status::S33),
                // A new clock at the end of active monitoring.
                Status::S11 => matches!(last_stop, Some(Status::S31 | Status::S32)),
                // A new condition or substantively new treatment.
                _ => p.clock == Clock::Stopped,
            };
            if !fits {
                return Err(RttError::Clock(match status {
                    Status::S10 => "A clock starts again with 10 only when a patient whose first appointment was missed (33) rebooks.".to_owned(),
                    Status::S11 => "11 ends active monitoring: the clock must have stopped for active monitoring (31 or 32).".to_owned(),
                    _ => "12 starts a clock for a new condition after the previous clock stopped.".to_owned(),
                }));
            }
            Ok(Next::Restart)
        }
        ClockEffect::Continue | ClockEffect::Stop if !running => Err(RttError::Clock(format!(
            "The clock is not running (it {} on {}): {code} cannot be recorded.",
            if p.clock == Clock::Nullified {
                "was nullified"
            } else {
                "stopped"
            },
            p.stop.map(fhir_date).unwrap_or_default()
        ))),
        ClockEffect::Continue => Ok(Next::Same),
        ClockEffect::Stop => {
            if status == Status::S33 && p.events.iter().any(|e| attended_since(e, p.start)) {
                return Err(RttError::Clock(
                    "33 is only for a missed first appointment: the patient has attended since the clock started, and a later missed appointment does not stop the clock (record 20, or 34 to discharge).".to_owned(),
                ));
            }
            Ok(Next::Stop(if status == Status::S33 {
                "cancelled"
            } else {
                "finished"
            }))
        }
        ClockEffect::None => {
            if running {
                return Err(RttError::Clock(format!(
                    "The clock is running: {code} ({}) is recorded only after it stops; a running clock continues with 20.",
                    status.label()
                )));
            }
            Ok(Next::Same)
        }
    }
}

/// An attendance on the current clock: an event on an `Encounter` after it
/// started.
fn attended_since(e: &Event, start: Date) -> bool {
    e.date >= start
        && e.source.starts_with("Encounter/")
        && e.status.effect() == ClockEffect::Continue
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

/// Refuses an event dated after `today`.
fn not_future(on: Date, today: Date) -> Result<(), RttError> {
    if on > today {
        return Err(RttError::Field(
            "date",
            format!(
                "The date {} is in the future: an RTT event is recorded when it has happened.",
                fhir_date(on)
            ),
        ));
    }
    Ok(())
}

/// Opens a pathway in one audited transaction (`rtt-open`).
pub fn open(
    svc: &FhirService,
    access: &dyn Access,
    new: &NewPathway,
    today: Date,
) -> Result<String, RttError> {
    not_future(new.start, today)?;
    let mut tx = begin(svc, access, "rtt-open", "C")?;
    let id = open_in(&mut tx, new)?;
    tx.commit()?;
    Ok(id)
}

/// Records an event in one audited transaction (`rtt-record`).
pub fn record(
    svc: &FhirService,
    access: &dyn Access,
    pathway: &str,
    status: Status,
    on: Date,
    source: &str,
    today: Date,
) -> Result<(), RttError> {
    not_future(on, today)?;
    let mut tx = begin(svc, access, "rtt-record", "U")?;
    record_in(&mut tx, pathway, status, on, source)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_code_table_round_trips_and_says_what_each_code_does() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.code()), Some(s));
            assert!(!s.label().is_empty());
        }
        let codes: Vec<&str> = Status::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(
            codes,
            [
                "10", "11", "12", "20", "21", "30", "31", "32", "33", "34", "35", "36", "90", "91",
                "92", "98", "99"
            ]
        );
        assert_eq!(Status::parse(" 30 "), Some(Status::S30));
        assert_eq!(Status::parse("13"), None);
        assert_eq!(Status::parse(""), None);
        use ClockEffect as E;
        let effects: Vec<E> = Status::ALL.iter().map(|s| s.effect()).collect();
        assert_eq!(
            effects,
            [
                E::Start,
                E::Start,
                E::Start,
                E::Continue,
                E::Continue,
                E::Stop,
                E::Stop,
                E::Stop,
                E::Stop,
                E::Stop,
                E::Stop,
                E::Stop,
                E::None,
                E::None,
                E::None,
                E::None,
                E::None
            ]
        );
        assert!(Status::S30.label().contains("definitive treatment"));
        assert!(Status::S33.label().contains("Did not attend"));
        assert_eq!(Status::S21.coding()["system"], STATUS_SYSTEM);
    }

    #[test]
    fn weeks_are_whole_weeks() {
        let s = date!(2026 - 01 - 05);
        assert_eq!(weeks_between(s, s), 0);
        assert_eq!(weeks_between(s, date!(2026 - 01 - 11)), 0);
        assert_eq!(weeks_between(s, date!(2026 - 01 - 12)), 1);
        assert_eq!(weeks_between(s, date!(2025 - 12 - 01)), 0);
    }

    #[test]
    fn errors_become_outcomes_naming_the_field() {
        let e: FhirError = RttError::Field("date", "The date is wrong.".into()).into();
        assert_eq!(e.status, 400);
        assert_eq!(e.issues[0].expression, ["date"]);
        let e: FhirError = RttError::Clock("no".into()).into();
        assert_eq!(e.status, 422);
    }
}
