//! Theatres (issue 19): theatre sessions, lists built from the admitted
//! waiting list, on-the-day status, the WHO surgical safety checklist, the
//! operation recorded (RTT 30 on the pathway) and utilisation.
//!
//! # The model (FHIR R4; no second schema)
//!
//! * **A theatre** is a `Location` whose `type` is [`LOCATION_KIND_SYSTEM`]
//!   `theatre`. Its sessions hang off one `Schedule` per theatre (`actor`
//!   the Location, `serviceCategory` [`CATEGORY_SYSTEM`] `theatre`), made
//!   the first time a session is planned there.
//! * **A session** is a `Slot` of that schedule: `start`/`end`, `status`
//!   `busy` (allocated), `serviceCategory` [`CATEGORY_SYSTEM`]
//!   `theatre-session` (how sessions are searched), `serviceType` the
//!   specialty (treatment function code, `crate::rtt::TREATMENT_FUNCTION_SYSTEM`),
//!   and [`SESSION_EXT`] with the sub-extensions `theatre` (the Location),
//!   `surgeon` and `anaesthetist` (`Practitioner` references).
//! * **A case** is an `Appointment` (`serviceCategory` [`CATEGORY_SYSTEM`]
//!   `theatre-case`; no `slot`, so the clinics' one-appointment-per-slot
//!   rule does not apply): `basedOn` the admitted waiting-list entry (booked
//!   into it by `crate::waiting::book_in`), `participant` the patient, the
//!   surgeon and the theatre, `reasonCode` the intended procedure,
//!   `start`/`end` its planned place on the list, and [`CASE_EXT`] with the
//!   sub-extensions `session` (the Slot), `order` (`valueInteger`),
//!   `minutes` (the estimated duration), `estimate` (`history` | `default`),
//!   the on-the-day times ([`Step`], `valueDateTime`), `cancelled`
//!   (`valueDateTime`, with `cancelationReason`) and `procedure` (the
//!   `Procedure` recorded). Status `booked`, `fulfilled` once the patient is
//!   back on the ward, `cancelled`.
//! * **The WHO surgical safety checklist** (WHO, 2009) is [`CHECKLIST_EXT`]
//!   on the case: one sub-extension per item ticked, its `url` the item's
//!   code ([`ITEMS`]), with `by` (`valueReference`, who ticked it) and `at`
//!   (`valueDateTime`). An extension on the case rather than a
//!   `QuestionnaireResponse` so that the write rule that blocks progression
//!   reads one resource, on every channel.
//! * **The operation** is a `Procedure` (`completed`, `code`, `subject`,
//!   `performer` the surgeon, `performedPeriod` knife to skin → closed,
//!   `basedOn` the entry, `location` the theatre).
//!
//! # Rules (one home each)
//!
//! * [`TheatreRule`], a write rule on every `Appointment` that is a case
//!   (registered by `crate::with_rules`, so REST, Bundles, HL7 and the pages
//!   are held to it alike): on-the-day times only in order ([`Step::ALL`])
//!   and never earlier than the step before; a recorded time or a ticked
//!   item is never removed or changed; checklist parts in order (time out
//!   after sign in, sign out after time out); **knife to skin refused
//!   until sign in and time out are complete; leaving theatre (recovery,
//!   back to the ward) refused until sign out is complete**.
//! * Sessions: a surgeon or theatre never in two overlapping sessions
//!   ([`list::plan_session_in`], refused); conflicts already in the store
//!   (written past the pages) are shown on the list ([`list::conflicts_in`]).
//! * A list whose estimated total over-runs its session is refused unless
//!   the person adding the case says they accept the over-run; the list
//!   shows the over-run ([`list::add_case_in`]).
//! * The operation recorded as first definitive treatment records RTT 30
//!   on the pathway on the day of the operation and closes the entry, in
//!   the same transaction ([`day::record_operation_in`]).
//!
//! Audit subtypes: `theatres-session`, `theatres-list`, `theatres-case`,
//! `theatres-checklist`, `theatres-operation`, `theatres-utilisation`.
//! Roles: planning and recording need `record-clinical` (doctors, nurses)
//! on the resources written, as the RBAC table decides per type.

pub mod day;
pub mod list;
pub mod utilisation;

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, ProposedWrite, RuleTx, Tx, WriteRule};
use wardline_fhir::FhirError;

use crate::fhir::reference_id;

/// `Location.type` of a theatre.
pub const LOCATION_KIND_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/location-kind";
/// `serviceCategory` of theatre schedules, sessions and cases.
pub const CATEGORY_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/theatres";
/// A session's theatre, surgeon and anaesthetist (on Slot).
pub const SESSION_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/theatre-session";
/// A case's place on its list and its day (on Appointment).
pub const CASE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/theatre-case";
/// The WHO surgical safety checklist (on Appointment).
pub const CHECKLIST_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/who-surgical-safety-checklist";
/// The estimated duration used when the store holds no past operation
/// with the procedure's code (minutes).
pub const DEFAULT_MINUTES: i64 = 60;

/// An on-the-day step of a case, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Step {
    SentFor,
    AnaestheticRoom,
    KnifeToSkin,
    Closed,
    Recovery,
    ReturnedToWard,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::SentFor,
        Step::AnaestheticRoom,
        Step::KnifeToSkin,
        Step::Closed,
        Step::Recovery,
        Step::ReturnedToWard,
    ];
    pub fn code(self) -> &'static str {
        match self {
            Step::SentFor => "sent-for",
            Step::AnaestheticRoom => "anaesthetic-room",
            Step::KnifeToSkin => "knife-to-skin",
            Step::Closed => "closed",
            Step::Recovery => "recovery",
            Step::ReturnedToWard => "returned-to-ward",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Step::SentFor => "Sent for",
            Step::AnaestheticRoom => "In anaesthetic room",
            Step::KnifeToSkin => "Knife to skin",
            Step::Closed => "Closed",
            Step::Recovery => "In recovery",
            Step::ReturnedToWard => "Returned to ward",
        }
    }
    pub fn parse(code: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.code() == code.trim())
    }
}

/// A part of the WHO checklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Part {
    SignIn,
    TimeOut,
    SignOut,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::SignIn, Part::TimeOut, Part::SignOut];
    pub fn code(self) -> &'static str {
        match self {
            Part::SignIn => "sign-in",
            Part::TimeOut => "time-out",
            Part::SignOut => "sign-out",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Part::SignIn => "Sign in (before induction of anaesthesia)",
            Part::TimeOut => "Time out (before skin incision)",
            Part::SignOut => "Sign out (before the patient leaves the operating room)",
        }
    }
    pub fn parse(code: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.code() == code.trim())
    }
    /// The part's items.
    pub fn items(self) -> impl Iterator<Item = &'static (Part, &'static str, &'static str)> {
        ITEMS.iter().filter(move |i| i.0 == self)
    }
}

/// The checklist's items (WHO Surgical Safety Checklist, first edition
/// 2009): part, code, text.
pub const ITEMS: [(Part, &str, &str); 17] = [
    (
        Part::SignIn,
        "sign-in.identity",
        "Patient has confirmed identity, site, procedure and consent",
    ),
    (
        Part::SignIn,
        "sign-in.site-marked",
        "Site marked (or not applicable)",
    ),
    (
        Part::SignIn,
        "sign-in.anaesthesia-check",
        "Anaesthesia machine and medication check complete",
    ),
    (
        Part::SignIn,
        "sign-in.pulse-oximeter",
        "Pulse oximeter on the patient and functioning",
    ),
    (Part::SignIn, "sign-in.allergy", "Known allergy checked"),
    (
        Part::SignIn,
        "sign-in.airway",
        "Difficult airway or aspiration risk assessed",
    ),
    (
        Part::SignIn,
        "sign-in.blood-loss",
        "Risk of more than 500 ml blood loss assessed",
    ),
    (
        Part::TimeOut,
        "time-out.team",
        "All team members introduced by name and role",
    ),
    (
        Part::TimeOut,
        "time-out.confirm",
        "Surgeon, anaesthetist and nurse confirm patient, site and procedure",
    ),
    (
        Part::TimeOut,
        "time-out.antibiotics",
        "Antibiotic prophylaxis given in the last 60 minutes (or not applicable)",
    ),
    (
        Part::TimeOut,
        "time-out.critical-events",
        "Anticipated critical events reviewed by surgeon, anaesthetist and nursing team",
    ),
    (
        Part::TimeOut,
        "time-out.imaging",
        "Essential imaging displayed (or not applicable)",
    ),
    (
        Part::SignOut,
        "sign-out.procedure",
        "Nurse confirms the name of the procedure recorded",
    ),
    (
        Part::SignOut,
        "sign-out.counts",
        "Instrument, sponge and needle counts correct",
    ),
    (
        Part::SignOut,
        "sign-out.specimens",
        "Specimens labelled, with the patient's name",
    ),
    (
        Part::SignOut,
        "sign-out.equipment",
        "Equipment problems to be addressed recorded",
    ),
    (
        Part::SignOut,
        "sign-out.recovery",
        "Key concerns for recovery reviewed",
    ),
];

/// What went wrong, in a sentence that names the field.
#[derive(Debug, Clone, PartialEq)]
pub enum TheatreError {
    /// A field is wrong (400): the field, the message.
    Field(&'static str, String),
    /// No such session, case, theatre or entry (404).
    NotFound(String),
    /// The state of the list or the case does not allow it (422): the
    /// field when there is one.
    Refused(Option<&'static str>, String),
    /// The caller's position may not do it (403).
    Forbidden(String),
    /// The store refused (403, 409, 422 from a write rule, 5xx).
    Fhir(FhirError),
}

impl TheatreError {
    pub fn status(&self) -> u16 {
        match self {
            TheatreError::Field(..) => 400,
            TheatreError::NotFound(_) => 404,
            TheatreError::Refused(..) => 422,
            TheatreError::Forbidden(_) => 403,
            TheatreError::Fhir(e) => e.status,
        }
    }
    pub fn field(&self) -> Option<&'static str> {
        match self {
            TheatreError::Field(f, _) => Some(f),
            TheatreError::Refused(f, _) => *f,
            _ => None,
        }
    }
    pub fn message(&self) -> String {
        match self {
            TheatreError::Field(_, m)
            | TheatreError::NotFound(m)
            | TheatreError::Refused(_, m)
            | TheatreError::Forbidden(m) => m.clone(),
            TheatreError::Fhir(e) => crate::rtt::refusal_text(e, "theatre record"),
        }
    }
}

impl std::fmt::Display for TheatreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for TheatreError {}

impl From<FhirError> for TheatreError {
    fn from(e: FhirError) -> TheatreError {
        TheatreError::Fhir(e)
    }
}

impl From<crate::waiting::WaitingError> for TheatreError {
    fn from(e: crate::waiting::WaitingError) -> TheatreError {
        use crate::waiting::WaitingError as W;
        match e {
            W::Fhir(e) => TheatreError::Fhir(e),
            W::NotFound(m) => TheatreError::NotFound(m),
            W::Field(f, m) => TheatreError::Field(f, m),
            other => TheatreError::Refused(Some("entry"), other.message()),
        }
    }
}

impl From<crate::rtt::RttError> for TheatreError {
    fn from(e: crate::rtt::RttError) -> TheatreError {
        use crate::rtt::RttError as R;
        match e {
            R::Fhir(e) => TheatreError::Fhir(e),
            R::NotFound(m) => TheatreError::NotFound(m),
            R::Field(f, m) => TheatreError::Field(f, m),
            R::Clock(m) => TheatreError::Refused(Some("definitive"), m),
        }
    }
}

impl From<TheatreError> for FhirError {
    fn from(e: TheatreError) -> FhirError {
        match e {
            TheatreError::Fhir(e) => e,
            other => crate::rtt::outcome(other.status(), other.message(), other.field()),
        }
    }
}

// ---------------------------------------------------------------- readers

pub(crate) fn sub<'a>(e: &'a Value, name: &str) -> Option<&'a Value> {
    e["extension"].as_array()?.iter().find(|s| s["url"] == name)
}

pub(crate) fn ext<'a>(r: &'a Value, url: &str) -> Option<&'a Value> {
    r["extension"].as_array()?.iter().find(|e| e["url"] == url)
}

/// Sets (or with `None` removes) sub-extension `name` of `url` on `r`.
pub(crate) fn set_sub(r: &mut Value, url: &str, name: &str, value: Option<Value>) {
    if !r["extension"].is_array() {
        r["extension"] = json!([]);
    }
    let Some(exts) = r["extension"].as_array_mut() else {
        return;
    };
    if !exts.iter().any(|e| e["url"] == url) {
        exts.push(json!({"url": url, "extension": []}));
    }
    if let Some(e) = exts.iter_mut().find(|e| e["url"] == url) {
        if !e["extension"].is_array() {
            e["extension"] = json!([]);
        }
        if let Some(subs) = e["extension"].as_array_mut() {
            subs.retain(|s| s["url"] != name);
            if let Some(mut v) = value {
                v["url"] = json!(name);
                subs.push(v);
            }
        }
    }
}

pub(crate) fn coded(r: &Value, field: &str, system: &str, code: &str) -> bool {
    r[field].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            c["coding"].as_array().is_some_and(|cd| {
                cd.iter()
                    .any(|x| x["system"] == system && x["code"] == code)
            })
        })
    })
}

/// Whether the appointment is a theatre case.
pub fn is_case(a: &Value) -> bool {
    a["resourceType"] == "Appointment"
        && coded(a, "serviceCategory", CATEGORY_SYSTEM, "theatre-case")
}

/// The time of `step` on a case.
pub fn step_time(case: &Value, step: Step) -> Option<OffsetDateTime> {
    let c = ext(case, CASE_EXT)?;
    parse_time(sub(c, step.code())?["valueDateTime"].as_str()?)
}

/// The checklist items ticked on a case: (code, who, when).
pub fn ticked(case: &Value) -> Vec<(String, String, String)> {
    ext(case, CHECKLIST_EXT)
        .and_then(|c| c["extension"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some((
                i["url"].as_str()?.to_owned(),
                sub(i, "by")
                    .and_then(|b| {
                        b["valueReference"]["display"]
                            .as_str()
                            .or(b["valueReference"]["reference"].as_str())
                    })
                    .unwrap_or("")
                    .to_owned(),
                sub(i, "at")?["valueDateTime"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Whether every item of `part` is ticked.
pub fn complete(case: &Value, part: Part) -> bool {
    let t = ticked(case);
    part.items()
        .all(|(_, code, _)| t.iter().any(|(c, _, _)| c == code))
}

pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

pub(crate) fn fhir_time(t: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(t)
}

// ---------------------------------------------------------------- the rule

/// The on-the-day and WHO checklist rules on every write of a case (see
/// the module documentation).
pub struct TheatreRule;

fn refuse(message: String) -> FhirError {
    FhirError::new(422, "business-rule", message).at("Appointment.extension")
}

/// The rule over a proposed case and the version it replaces.
pub fn check_case(new: &Value, current: Option<&Value>) -> Result<(), FhirError> {
    let mut last: Option<(Step, OffsetDateTime)> = None;
    let mut gap: Option<Step> = None;
    for step in Step::ALL {
        match step_time(new, step) {
            Some(t) => {
                if let Some(missing) = gap {
                    return Err(refuse(format!(
                        "{} cannot be recorded before {}: the steps are recorded in order",
                        step.label(),
                        missing.label().to_lowercase()
                    )));
                }
                if let Some((prev, pt)) = last
                    && t < pt
                {
                    return Err(refuse(format!(
                        "{} cannot be earlier than {}",
                        step.label(),
                        prev.label().to_lowercase()
                    )));
                }
                last = Some((step, t));
            }
            None => {
                if gap.is_none() {
                    gap = Some(step);
                }
            }
        }
    }
    if let Some(cur) = current {
        for step in Step::ALL {
            if let Some(was) = step_time(cur, step)
                && step_time(new, step) != Some(was)
            {
                return Err(refuse(format!(
                    "The time of {} is recorded and cannot be changed or removed",
                    step.label().to_lowercase()
                )));
            }
        }
        let now: Vec<String> = ticked(new).into_iter().map(|t| t.0).collect();
        if let Some((code, _, _)) = ticked(cur).into_iter().find(|t| !now.contains(&t.0)) {
            return Err(refuse(format!(
                "Checklist item {code} is ticked and cannot be unticked"
            )));
        }
    }
    for (code, _, _) in ticked(new) {
        if !ITEMS.iter().any(|i| i.1 == code) {
            return Err(refuse(format!(
                "{code} is not an item of the WHO checklist"
            )));
        }
    }
    let ticked_in = |p: Part| {
        let t = ticked(new);
        p.items()
            .any(|(_, code, _)| t.iter().any(|(c, _, _)| c == code))
    };
    if ticked_in(Part::TimeOut) && !complete(new, Part::SignIn) {
        return Err(refuse(
            "Time out cannot start before sign in is complete".into(),
        ));
    }
    if ticked_in(Part::SignOut) && !complete(new, Part::TimeOut) {
        return Err(refuse(
            "Sign out cannot start before time out is complete".into(),
        ));
    }
    if step_time(new, Step::KnifeToSkin).is_some() {
        for part in [Part::SignIn, Part::TimeOut] {
            if !complete(new, part) {
                return Err(refuse(format!(
                    "Knife to skin is refused: the WHO checklist's {} is not complete",
                    part.code().replace('-', " ")
                )));
            }
        }
    }
    if step_time(new, Step::Recovery).is_some() && !complete(new, Part::SignOut) {
        return Err(refuse(
            "The patient cannot leave theatre: the WHO checklist's sign out is not complete".into(),
        ));
    }
    Ok(())
}

impl WriteRule for TheatreRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Appointment"
    }

    fn check(&self, _tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        if !is_case(w.resource) && !w.current.is_some_and(is_case) {
            return Ok(());
        }
        check_case(w.resource, w.current)
    }
}

// ---------------------------------------------------------------- audited entries

/// Runs `f` in one transaction audited as `what`.
pub(crate) fn audited<T>(
    svc: &FhirService,
    access: &dyn Access,
    what: &str,
    action: &'static str,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, TheatreError>,
) -> Result<T, TheatreError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// Only clinical staff (a position holding `record-clinical`: doctors,
/// nurses) record a case's day, its checklist and its operation; a caller
/// acting in no position (a system integration) is left to its access.
pub fn may_record_in(tx: &mut Tx<'_>) -> Result<(), TheatreError> {
    match crate::fhir::caller_role_in(tx)? {
        Some(r) if !r.has(wardline_auth::rbac::Activity::RecordClinical) => {
            Err(TheatreError::Forbidden(format!(
                "Only clinical staff record theatre cases and the WHO checklist; your position is {}.",
                r.display()
            )))
        }
        _ => Ok(()),
    }
}

/// The id of a reference of `t`.
pub(crate) fn rid<'a>(r: &'a Value, t: &str) -> Option<&'a str> {
    reference_id(r, t)
}
