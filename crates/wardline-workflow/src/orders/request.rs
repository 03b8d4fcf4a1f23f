//! Requesting tests and imaging from the chart: a **requisition**.
//!
//! # The model (FHIR R4)
//!
//! * A requisition is one `ServiceRequest` per orderable of the catalogue
//!   ([`super::catalogue`]), all sharing `requisition` = Identifier
//!   `{WL/Id/requisition, "R" + 7 digits}` ([`REQUISITION_SYSTEM`]). The
//!   number is the next of a sequence kept in system data under a database
//!   lock, so two placements — on one server or several on one database —
//!   never get the same one; a number some ServiceRequest already holds
//!   (loaded from elsewhere) is skipped.
//! * Each ServiceRequest: `status` `active`, `intent` `order`, `priority`
//!   (`routine` | `urgent` | `asap` | `stat`), `code` the orderable's,
//!   `instantiatesCanonical` [the orderable's url], `category` SNOMED CT
//!   108252007 |Laboratory procedure| or 363679005 |Imaging|, `subject`,
//!   `encounter` (the patient's current admission, if any), `requester` (the
//!   person placing it, `Practitioner/…`), `authoredOn`, `identifier` placer
//!   `{WL/Id/placer-order, "{requisition}-{n}"}` (n = 1.. in the order
//!   asked), `note[0].text` the clinical details, `supportingInfo` → the
//!   `QuestionnaireResponse` of the orderable's questions (imaging: clinical
//!   indication, pregnancy, contrast allergy, eGFR, IR(ME)R justification),
//!   and `specimen` → the tube it goes in (pathology).
//! * One `Specimen` per distinct container (and specimen type) among the
//!   requisition's pathology tests: `identifier` `{WL/Id/specimen,
//!   "{requisition}-{k}"}` — **the value the label's barcode encodes**
//!   ([`super::label`]) and the laboratory scans — `status` `available`,
//!   `type`, `container[0].type.text` (the tube, e.g. "EDTA (purple top)"),
//!   `container[0].description` the cap colour, `subject`, `request` [the
//!   ServiceRequests in that tube]; no `receivedTime` until the laboratory
//!   receives it.
//!
//! # Rules
//!
//! * Every orderable must be in the catalogue and active; the priority one
//!   of the four; clinical details given; each answer valid for its
//!   question (a choice among its options, a number for a decimal, yes/no
//!   for a boolean), and every required question answered — the refusal
//!   names the test and the question.
//! * Pregnancy (ionising examinations): when the questionnaire asks it, it
//!   must be answered for anyone who may be pregnant (not recorded male,
//!   aged 12 to 55 or of unknown age); "pregnant" or "possibly pregnant"
//!   needs the IR(ME)R justification answered.
//! * **Duplicate orders**: an `active` or `completed` ServiceRequest of the
//!   same orderable (`instantiatesCanonical`) for the patient authored less
//!   than the orderable's minimum retest interval before now refuses the
//!   whole placement with [`OrdersError::Duplicate`] (naming the test, when
//!   and by whom), unless an override reason is given; the reason is kept
//!   on each repeated ServiceRequest (extension [`DUPLICATE_OVERRIDE_EXT`],
//!   `valueString`) and in the audit event (subtype
//!   `orders-place-duplicate`). The check runs under a lock on the patient's
//!   orders, so two clinicians ordering the same test at the same moment
//!   take turns and the second is warned.
//! * Cancelling moves a ServiceRequest to `revoked` through the one
//!   lifecycle ([`super::set_status`]), with the reason as a note.
//!
//! Time is injected: `place_at` / `cancel_at` take `now`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;
use wardline_fhir::definitions::r4;
use wardline_fhir::search::{Handling, escape_value};
use wardline_store::{PageRequest, Reader};

use super::catalogue::{Catalogue, Orderable, Question, SpecimenRequirement};
use crate::pmi::PatientSummary;

/// `ServiceRequest.requisition` system.
pub const REQUISITION_SYSTEM: &str = "https://fhir.wardline.invalid/Id/requisition";
/// The placer order number (as the HL7 v2 mapping writes it).
pub const PLACER_SYSTEM: &str = "https://fhir.wardline.invalid/Id/placer-order";
/// The specimen identifier: what the label's barcode encodes.
pub const SPECIMEN_SYSTEM: &str = "https://fhir.wardline.invalid/Id/specimen";
/// Why a test was ordered again within its retest interval.
pub const DUPLICATE_OVERRIDE_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/duplicate-override";
const SNOMED: &str = "http://snomed.info/sct";
/// The request priorities (FHIR RequestPriority).
pub const PRIORITIES: [(&str, &str); 4] = [
    ("routine", "Routine"),
    ("urgent", "Urgent"),
    ("asap", "ASAP"),
    ("stat", "Immediately (stat)"),
];
const SEQUENCE_NAMESPACE: &str = "orders";
const SEQUENCE_KEY: &str = "requisition-last";

// ---------------------------------------------------------------- errors

/// A refusal or failure, with a sentence to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OrdersError {
    /// The request is wrong (400).
    Invalid(String),
    /// 404.
    NotFound(String),
    /// The caller may not (403).
    Forbidden(String),
    /// The test was ordered within its retest interval (409): show the
    /// warnings and ask for a reason to go ahead.
    Duplicate(Vec<DuplicateWarning>),
    /// The record's state does not allow it, or someone changed it at the
    /// same moment (409).
    Conflict(String),
    /// Wardline failed (500).
    Store(String),
}

impl OrdersError {
    /// The HTTP status that fits.
    pub fn status(&self) -> u16 {
        match self {
            OrdersError::Invalid(_) => 400,
            OrdersError::NotFound(_) => 404,
            OrdersError::Forbidden(_) => 403,
            OrdersError::Duplicate(_) | OrdersError::Conflict(_) => 409,
            OrdersError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            OrdersError::Invalid(m)
            | OrdersError::NotFound(m)
            | OrdersError::Forbidden(m)
            | OrdersError::Conflict(m)
            | OrdersError::Store(m) => m.clone(),
            OrdersError::Duplicate(ws) => format!(
                "Possible duplicate order: {} Give a reason to order again.",
                ws.iter()
                    .map(DuplicateWarning::message)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }
}

impl std::fmt::Display for OrdersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for OrdersError {}

impl From<FhirError> for OrdersError {
    fn from(e: FhirError) -> OrdersError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "order") {
            R::Forbidden(m) => OrdersError::Forbidden(m),
            R::NotFound(m) => OrdersError::NotFound(m),
            R::Concurrent(m) => OrdersError::Conflict(m),
            R::Invalid(m) => OrdersError::Invalid(m),
            R::Store(m) => OrdersError::Store(m),
        }
    }
}

impl From<super::LifecycleError> for OrdersError {
    fn from(e: super::LifecycleError) -> OrdersError {
        OrdersError::Conflict(e.message)
    }
}

// ---------------------------------------------------------------- types

/// What a clinician asks for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrderRequest {
    /// Patient id.
    pub patient: String,
    /// Catalogue ids (an order set is expanded by the caller with
    /// `Catalogue::set`).
    pub orderables: Vec<String>,
    /// `routine` | `urgent` | `asap` | `stat`.
    pub priority: String,
    pub clinical_details: String,
    /// Orderable id → question linkId → answer (a choice's code; `yes` /
    /// `no` for a boolean; a number as text for a decimal).
    pub answers: BTreeMap<String, BTreeMap<String, String>>,
    /// Why a test is ordered again within its retest interval.
    pub duplicate_override: Option<String>,
}

/// What was placed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placed {
    pub requisition: String,
    /// ServiceRequest ids, in the order asked.
    pub requests: Vec<String>,
    /// Specimen ids, in label order.
    pub specimens: Vec<String>,
}

/// An earlier order of the same test within its retest interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicateWarning {
    /// Catalogue id.
    pub orderable: String,
    pub title: String,
    /// The earlier ServiceRequest's id.
    pub service_request: String,
    pub requisition: Option<String>,
    pub status: String,
    /// When it was requested (FHIR dateTime).
    pub authored_on: String,
    /// Who requested it, as a name.
    pub requester: Option<String>,
    pub retest_interval_hours: u32,
    /// How long before now it was requested, in hours (rounded down).
    pub hours_ago: i64,
}

impl DuplicateWarning {
    pub fn message(&self) -> String {
        let ago = match self.hours_ago {
            h if h < 1 => "less than an hour ago".to_owned(),
            1 => "1 hour ago".to_owned(),
            h => format!("{h} hours ago"),
        };
        format!(
            "{} was requested {ago} ({}{}{}); the minimum retest interval is {}.",
            self.title,
            self.authored_on,
            self.requester
                .as_deref()
                .map(|r| format!(" by {r}"))
                .unwrap_or_default(),
            self.requisition
                .as_deref()
                .map(|r| format!(", requisition {r}"))
                .unwrap_or_default(),
            interval_words(self.retest_interval_hours)
        )
    }
}

fn interval_words(hours: u32) -> String {
    match hours {
        1 => "1 hour".to_owned(),
        h if h % 24 == 0 && h >= 48 => format!("{} days", h / 24),
        24 => "1 day".to_owned(),
        h => format!("{h} hours"),
    }
}

/// A requisition as the requisition page, the labels and the laboratory
/// need it.
#[derive(Debug, Clone, Serialize)]
pub struct Requisition {
    pub requisition: String,
    pub patient: PatientSummary,
    pub authored_on: String,
    /// `Practitioner/…`.
    pub requester_ref: Option<String>,
    /// The requester's name.
    pub requester: Option<String>,
    pub priority: String,
    pub clinical_details: String,
    pub encounter: Option<String>,
    pub requests: Vec<RequestLine>,
    pub specimens: Vec<SpecimenLine>,
}

/// One ServiceRequest of a requisition.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLine {
    pub id: String,
    /// The placer order number.
    pub placer: String,
    /// The orderable's url.
    pub orderable: Option<String>,
    pub title: String,
    pub code: Value,
    pub status: String,
    pub priority: String,
    pub imaging: bool,
    /// The answers to the orderable's questions: (question, answer).
    pub answers: Vec<(String, String)>,
    /// The specimen identifier of the tube it is in.
    pub specimen: Option<String>,
    pub duplicate_override: Option<String>,
    /// Notes after the clinical details (a cancellation's reason).
    pub notes: Vec<String>,
}

/// One Specimen (tube) of a requisition.
#[derive(Debug, Clone, Serialize)]
pub struct SpecimenLine {
    pub id: String,
    /// The barcode's value.
    pub identifier: String,
    pub specimen_type: String,
    pub container: String,
    pub colour: Option<String>,
    /// Titles of the tests in the tube.
    pub tests: Vec<String>,
    pub status: String,
    /// When the laboratory received it.
    pub received: Option<String>,
}

/// One order on the chart.
#[derive(Debug, Clone, Serialize)]
pub struct OrderLine {
    pub id: String,
    pub requisition: Option<String>,
    pub title: String,
    pub status: String,
    pub priority: String,
    pub authored_on: String,
    pub requester: Option<String>,
}

// ---------------------------------------------------------------- pure rules

/// The requisition number of serial `n`: `R` and seven digits.
pub fn requisition_number(n: u64) -> String {
    format!("R{n:07}")
}

/// The serial of a requisition number, if it is one.
pub fn requisition_serial(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('R')?;
    if digits.len() < 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether an order authored at `authored_ms` falls within `hours` of
/// `now_ms` (an order dated after now counts as within).
pub fn within_retest_interval(authored_ms: i64, now_ms: i64, hours: u32) -> bool {
    now_ms - authored_ms < i64::from(hours) * 3_600_000
}

/// The tubes of a requisition: the pathology orderables (by index) grouped
/// by container and specimen type, in the order first asked.
pub fn group_specimens<'a>(
    orderables: &[&'a Orderable],
) -> Vec<(&'a SpecimenRequirement, Vec<usize>)> {
    let mut out: Vec<(&SpecimenRequirement, Vec<usize>)> = Vec::new();
    let key = |s: &SpecimenRequirement| {
        (
            s.container.trim().to_lowercase(),
            s.specimen_type.to_string(),
        )
    };
    for (i, o) in orderables.iter().enumerate() {
        let Some(s) = o.specimen.as_ref().filter(|_| !o.imaging) else {
            continue;
        };
        match out.iter_mut().find(|(t, _)| key(t) == key(s)) {
            Some((_, v)) => v.push(i),
            None => out.push((s, vec![i])),
        }
    }
    out
}

/// Whether a patient may be pregnant, for the imaging questions: not
/// recorded male, and aged 12 to 55 (or of unknown age) at `today`.
pub fn may_be_pregnant(gender: Option<&str>, birth_date: Option<&str>, today: time::Date) -> bool {
    if gender == Some("male") {
        return false;
    }
    match birth_date.and_then(|b| age_at(b, today)) {
        Some(age) => (12..=55).contains(&age),
        None => true,
    }
}

fn age_at(birth: &str, today: time::Date) -> Option<i32> {
    let mut parts = birth.split('-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let d: u8 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut age = today.year() - y;
    if (u8::from(today.month()), today.day()) < (m, d) {
        age -= 1;
    }
    Some(age)
}

/// An answer as a QuestionnaireResponse `answer` value, or why not.
pub fn answer_value(q: &Question, text: &str) -> Result<Value, String> {
    let t = text.trim();
    match q.kind.as_str() {
        "boolean" => match t.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(json!({"valueBoolean": true})),
            "no" | "false" => Ok(json!({"valueBoolean": false})),
            _ => Err("answer yes or no".to_owned()),
        },
        "decimal" | "integer" => {
            let n: f64 = t.parse().map_err(|_| "give a number".to_owned())?;
            if !n.is_finite() || !(0.0..=100_000.0).contains(&n) {
                return Err("give a number from 0 upwards".to_owned());
            }
            let v: Value = serde_json::from_str(t.trim_start_matches('+'))
                .map_err(|_| "give a number such as 62 or 58.5".to_owned())?;
            if !v.is_number() {
                return Err("give a number".to_owned());
            }
            Ok(if q.kind == "integer" {
                if n.fract() != 0.0 {
                    return Err("give a whole number".to_owned());
                }
                json!({"valueInteger": v})
            } else {
                json!({"valueDecimal": v})
            })
        }
        "choice" => q
            .options
            .iter()
            .find(|(code, label)| code == t || label.eq_ignore_ascii_case(t))
            .map(|(code, label)| json!({"valueCoding": {"code": code, "display": label}}))
            .ok_or_else(|| {
                format!(
                    "choose one of: {}",
                    q.options
                        .iter()
                        .map(|(_, l)| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        _ => {
            if t.chars().count() > 2000 {
                return Err("keep it under 2,000 characters".to_owned());
            }
            Ok(json!({"valueString": t}))
        }
    }
}

/// The answers of one orderable checked against its questions: the
/// QuestionnaireResponse items, or the first problem naming the question.
pub fn check_answers(
    o: &Orderable,
    given: Option<&BTreeMap<String, String>>,
    pregnancy_matters: bool,
) -> Result<Vec<Value>, OrdersError> {
    let empty = BTreeMap::new();
    let given = given.unwrap_or(&empty);
    let Some(qn) = &o.questionnaire else {
        if let Some(k) = given.keys().find(|_| true) {
            return Err(OrdersError::Invalid(format!(
                "{} has no questions, but an answer to '{k}' was given.",
                o.title
            )));
        }
        return Ok(Vec::new());
    };
    if let Some(k) = given
        .keys()
        .find(|k| !qn.items.iter().any(|q| &q.link_id == *k))
    {
        return Err(OrdersError::Invalid(format!(
            "'{k}' is not one of the questions of {}.",
            o.title
        )));
    }
    let answered = |id: &str| given.get(id).map(|s| s.trim()).filter(|s| !s.is_empty());
    let mut items = Vec::new();
    for q in &qn.items {
        let required = q.required || (q.link_id == "pregnancy" && o.ionising && pregnancy_matters);
        let Some(text) = answered(&q.link_id) else {
            if required {
                return Err(OrdersError::Invalid(format!(
                    "{}: answer '{}'.",
                    o.title, q.text
                )));
            }
            continue;
        };
        let value = answer_value(q, text)
            .map_err(|why| OrdersError::Invalid(format!("{}: '{}': {why}.", o.title, q.text)))?;
        items.push(json!({"linkId": q.link_id, "text": q.text, "answer": [value]}));
    }
    if o.ionising
        && matches!(
            answered("pregnancy"),
            Some("pregnant" | "possibly-pregnant")
        )
        && qn.items.iter().any(|q| q.link_id == "irmer-justification")
        && answered("irmer-justification").is_none()
    {
        let text = qn
            .items
            .iter()
            .find(|q| q.link_id == "irmer-justification")
            .map(|q| q.text.as_str())
            .unwrap_or("IR(ME)R justification");
        return Err(OrdersError::Invalid(format!(
            "{}: the patient may be pregnant, so answer '{text}' (why the exposure is justified).",
            o.title
        )));
    }
    Ok(items)
}

// ---------------------------------------------------------------- helpers

/// `now` as a FHIR dateTime to the second, UTC.
pub fn fhir_time(now: OffsetDateTime) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn ms_of(now: OffsetDateTime) -> i64 {
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn parse_ms(s: &str) -> Option<i64> {
    wardline_fhir::datetime::parse_range(s).map(|r| r.0)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn ref_id<'a>(v: &'a Value, t: &str) -> Option<&'a str> {
    v.get("reference")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit_once(&format!("{t}/")).map(|(_, id)| id))
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

fn identifier(v: &Value, system: &str) -> Option<String> {
    v.get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|i| str_of(i, "system") == system)
        .map(|i| str_of(i, "value").to_owned())
}

/// Unchecked search for the rules (they decide past the caller's access).
fn system_search(
    reader: &dyn Reader,
    t: &str,
    params: &[(&str, String)],
) -> Result<Vec<Value>, OrdersError> {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let q = wardline_fhir::search::parse(r4(), Some(t), &params, Handling::Strict)?;
    let page = reader
        .search(
            &q,
            &PageRequest {
                count: 200,
                ..PageRequest::default()
            },
        )
        .map_err(FhirError::from)?;
    page.resources
        .iter()
        .map(|r| {
            serde_json::from_str(&r.json)
                .map_err(|e| OrdersError::Store(format!("stored {t}/{} unreadable: {e}", r.id)))
        })
        .collect()
}

/// A person's name as staff say it ("Dr Sanjay Mehta").
pub fn person_name(p: &Value) -> Option<String> {
    let names = p.get("name").and_then(Value::as_array)?;
    let n = names
        .iter()
        .find(|n| str_of(n, "use") == "official")
        .or(names.first())?;
    if let Some(t) = n.get("text").and_then(Value::as_str) {
        return Some(t.to_owned());
    }
    let words = |k: &str| -> Vec<String> {
        n.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let mut parts = words("prefix");
    parts.extend(words("given"));
    if let Some(f) = n.get("family").and_then(Value::as_str) {
        parts.push(f.to_owned());
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn practitioner_name(reader: &dyn Reader, reference: &str) -> Option<String> {
    let id = reference.strip_prefix("Practitioner/")?;
    let r = reader.read("Practitioner", id).ok()??;
    if r.deleted {
        return None;
    }
    person_name(&serde_json::from_str(&r.json).ok()?)
}

fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, OrdersError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

// ---------------------------------------------------------------- placing

/// Places `req` for the person signed in (their `Practitioner` is the
/// requester), now.
pub fn place(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    req: &OrderRequest,
) -> Result<Placed, OrdersError> {
    place_at(svc, access, catalogue, req, svc.now())
}

/// [`place`] at `now`.
pub fn place_at(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    req: &OrderRequest,
    now: OffsetDateTime,
) -> Result<Placed, OrdersError> {
    let requester = access.agent().who.clone();
    let mut tx = begin(svc, access, "orders-place", "C")?;
    let placed = place_in(&mut tx, catalogue, req, requester.as_deref(), now)?;
    tx.commit()?;
    Ok(placed)
}

/// The rule of placing a requisition, in `tx` (see the module
/// documentation). `requester` is `Practitioner/…` (or `None` for a
/// system).
pub fn place_in(
    tx: &mut Tx<'_>,
    catalogue: &Catalogue,
    req: &OrderRequest,
    requester: Option<&str>,
    now: OffsetDateTime,
) -> Result<Placed, OrdersError> {
    // --- what was asked, checked before anything is read -------------
    let patient_id = req.patient.trim();
    if patient_id.is_empty() {
        return Err(OrdersError::Invalid("Choose the patient.".into()));
    }
    let mut chosen: Vec<&Orderable> = Vec::new();
    for id in &req.orderables {
        let id = id.trim();
        let o = catalogue.orderable(id).ok_or_else(|| {
            OrdersError::Invalid(format!(
                "'{id}' is not a test or examination in the catalogue."
            ))
        })?;
        if !o.active {
            return Err(OrdersError::Invalid(format!(
                "{} is no longer offered (retired from the catalogue).",
                o.title
            )));
        }
        if !chosen.iter().any(|c| c.id == o.id) {
            chosen.push(o);
        }
    }
    if chosen.is_empty() {
        return Err(OrdersError::Invalid(
            "Choose at least one test or examination.".into(),
        ));
    }
    let priority = req.priority.trim().to_ascii_lowercase();
    if !PRIORITIES.iter().any(|(p, _)| *p == priority) {
        return Err(OrdersError::Invalid(format!(
            "'{}' is not a priority: choose routine, urgent, ASAP or stat.",
            req.priority
        )));
    }
    let details = req.clinical_details.trim();
    if details.is_empty() {
        return Err(OrdersError::Invalid(
            "Give the clinical details: what the laboratory or radiology department should know."
                .into(),
        ));
    }
    if let Some(k) = req
        .answers
        .keys()
        .find(|k| !chosen.iter().any(|o| &o.id == *k))
    {
        return Err(OrdersError::Invalid(format!(
            "Answers were given for '{k}', which is not being ordered."
        )));
    }
    let reason = req
        .duplicate_override
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());

    // --- may the caller write what this places? (before anything is read:
    // a refusal never tells them about the patient's other orders) -------
    let mut types = vec!["ServiceRequest"];
    if chosen.iter().any(|o| !o.imaging && o.specimen.is_some()) {
        types.push("Specimen");
    }
    if chosen.iter().any(|o| o.questionnaire.is_some()) {
        types.push("QuestionnaireResponse");
    }
    for t in types {
        tx.access()
            .check_type(wardline_core::Op::Create, Some(t))
            .map_err(OrdersError::from)?;
    }

    // --- the patient, locked with the sequence ------------------------
    tx.lock(&[
        format!("orders:Patient/{patient_id}"),
        format!("orders:{SEQUENCE_KEY}"),
    ])?;
    let patient = tx.get("Patient", patient_id)?.ok_or_else(|| {
        OrdersError::NotFound(format!("There is no patient with id {patient_id}."))
    })?;
    if patient["active"] == json!(false) {
        return Err(OrdersError::Conflict(
            "This record is not active (it may have been merged): order on the patient's current record."
                .into(),
        ));
    }
    let pregnancy_matters = may_be_pregnant(
        patient.get("gender").and_then(Value::as_str),
        patient.get("birthDate").and_then(Value::as_str),
        now.date(),
    );
    let mut answers = Vec::with_capacity(chosen.len());
    for o in &chosen {
        answers.push(check_answers(o, req.answers.get(&o.id), pregnancy_matters)?);
    }

    // --- duplicates ------------------------------------------------------
    let now_ms = ms_of(now);
    let mut warnings = Vec::new();
    for o in &chosen {
        let Some(hours) = o.retest_interval_hours.filter(|h| *h > 0) else {
            continue;
        };
        let found = system_search(
            &*tx,
            "ServiceRequest",
            &[
                ("patient", format!("Patient/{patient_id}")),
                ("status", "active,completed".to_owned()),
                ("instantiates-canonical", escape_value(&o.url)),
            ],
        )?;
        for sr in found {
            let Some(at) = sr.get("authoredOn").and_then(Value::as_str) else {
                continue;
            };
            let Some(at_ms) = parse_ms(at) else { continue };
            if !within_retest_interval(at_ms, now_ms, hours) {
                continue;
            }
            let requester = sr["requester"]["reference"]
                .as_str()
                .and_then(|r| practitioner_name(&*tx, r));
            warnings.push(DuplicateWarning {
                orderable: o.id.clone(),
                title: o.title.clone(),
                service_request: str_of(&sr, "id").to_owned(),
                requisition: sr
                    .get("requisition")
                    .and_then(|r| r.get("value"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                status: str_of(&sr, "status").to_owned(),
                authored_on: at.to_owned(),
                requester,
                retest_interval_hours: hours,
                hours_ago: ((now_ms - at_ms).max(0)) / 3_600_000,
            });
        }
    }
    if !warnings.is_empty() && reason.is_none() {
        warnings.sort_by(|a, b| (&a.title, &b.authored_on).cmp(&(&b.title, &a.authored_on)));
        return Err(OrdersError::Duplicate(warnings));
    }
    if let Some(r) = reason.filter(|_| !warnings.is_empty()) {
        tx.set_audit_subtype(WARDLINE_SUBTYPE, "orders-place-duplicate", "C");
        tx.audit_record().outcome_desc = Some(format!(
            "ordered again within the retest interval ({}): {r}",
            warnings
                .iter()
                .map(|w| w.title.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // --- the requisition number -----------------------------------------
    let requisition = next_requisition(tx)?;

    // --- the current admission ------------------------------------------
    let encounter = system_search(
        &*tx,
        "Encounter",
        &[
            ("patient", format!("Patient/{patient_id}")),
            ("status", "in-progress,onleave,arrived,triaged".to_owned()),
        ],
    )?
    .into_iter()
    .max_by_key(|e| {
        e["period"]["start"]
            .as_str()
            .and_then(parse_ms)
            .unwrap_or(i64::MIN)
    })
    .map(|e| str_of(&e, "id").to_owned());

    // --- the resources ----------------------------------------------------
    let authored = fhir_time(now);
    let subject = json!({"reference": format!("Patient/{patient_id}")});
    let sr_ids: Vec<String> = chosen.iter().map(|_| new_id()).collect();
    let tubes = group_specimens(&chosen);
    let mut specimen_of: HashMap<usize, String> = HashMap::new();
    let mut specimens = Vec::new();
    for (k, (s, members)) in tubes.iter().enumerate() {
        let id = new_id();
        for m in members {
            specimen_of.insert(*m, id.clone());
        }
        let mut container = json!({"type": {"text": s.container}});
        if let Some(c) = &s.colour {
            container["description"] = json!(c);
        }
        let mut spec = json!({
            "resourceType": "Specimen",
            "id": id,
            "identifier": [{"system": SPECIMEN_SYSTEM, "value": format!("{requisition}-{}", k + 1)}],
            "status": "available",
            "subject": subject,
            "request": members.iter().map(|m| json!({"reference": format!("ServiceRequest/{}", sr_ids[*m])})).collect::<Vec<_>>(),
            "container": [container],
        });
        if s.specimen_type.is_object() {
            spec["type"] = s.specimen_type.clone();
        }
        specimens.push(spec);
    }
    let mut resources = Vec::new();
    for (n, o) in chosen.iter().enumerate() {
        let mut code = o.code.clone();
        if !code.is_object() {
            code = json!({});
        }
        if code.get("text").is_none() {
            code["text"] = json!(o.title);
        }
        let category = if o.imaging {
            json!({"system": SNOMED, "code": "363679005", "display": "Imaging"})
        } else {
            json!({"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"})
        };
        let mut sr = json!({
            "resourceType": "ServiceRequest",
            "id": sr_ids[n],
            "identifier": [{"system": PLACER_SYSTEM, "value": format!("{requisition}-{}", n + 1)}],
            "instantiatesCanonical": [o.url],
            "requisition": {"system": REQUISITION_SYSTEM, "value": requisition},
            "status": "active",
            "intent": "order",
            "category": [{"coding": [category]}],
            "priority": priority,
            "code": code,
            "subject": subject,
            "authoredOn": authored,
            "note": [{"text": details, "time": authored}],
        });
        if let Some(e) = &encounter {
            sr["encounter"] = json!({"reference": format!("Encounter/{e}")});
        }
        if let Some(r) = requester {
            sr["requester"] = json!({"reference": r});
            sr["note"][0]["authorReference"] = json!({"reference": r});
        }
        if let Some(s) = specimen_of.get(&n) {
            sr["specimen"] = json!([{"reference": format!("Specimen/{s}")}]);
        }
        if let Some(r) = reason
            && warnings.iter().any(|w| w.orderable == o.id)
        {
            sr["extension"] = json!([{"url": DUPLICATE_OVERRIDE_EXT, "valueString": r}]);
        }
        if !answers[n].is_empty()
            && let Some(qn) = &o.questionnaire
        {
            let qr_id = new_id();
            let mut qr = json!({
                "resourceType": "QuestionnaireResponse",
                "id": qr_id,
                "questionnaire": qn.url,
                "basedOn": [{"reference": format!("ServiceRequest/{}", sr_ids[n])}],
                "status": "completed",
                "subject": subject,
                "authored": authored,
                "item": answers[n],
            });
            if let Some(r) = requester {
                qr["author"] = json!({"reference": r});
            }
            if let Some(e) = &encounter {
                qr["encounter"] = json!({"reference": format!("Encounter/{e}")});
            }
            sr["supportingInfo"] = json!([{"reference": format!("QuestionnaireResponse/{qr_id}")}]);
            resources.push(qr);
        }
        resources.push(sr);
    }
    for r in resources.into_iter().chain(specimens) {
        tx.save(r)?;
    }
    Ok(Placed {
        requisition,
        requests: sr_ids,
        specimens: tubes
            .iter()
            .filter_map(|(_, m)| m.first().and_then(|i| specimen_of.get(i)).cloned())
            .collect(),
    })
}

/// The next requisition number nobody holds (under the sequence lock the
/// caller took).
fn next_requisition(tx: &mut Tx<'_>) -> Result<String, OrdersError> {
    let last: u64 = tx
        .kv_get(SEQUENCE_NAMESPACE, SEQUENCE_KEY)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for n in (last + 1..).take(10_000) {
        let value = requisition_number(n);
        let held = system_search(
            &*tx,
            "ServiceRequest",
            &[(
                "requisition",
                format!(
                    "{}|{}",
                    escape_value(REQUISITION_SYSTEM),
                    escape_value(&value)
                ),
            )],
        )?;
        if held.is_empty() {
            tx.kv_put(SEQUENCE_NAMESPACE, SEQUENCE_KEY, &n.to_string())?;
            return Ok(value);
        }
    }
    Err(OrdersError::Store(
        "no free requisition number was found; tell the service desk".into(),
    ))
}

// ---------------------------------------------------------------- reading

/// A requisition with its requests, specimens and patient, as the caller
/// may see it (audited).
pub fn requisition(
    svc: &FhirService,
    access: &dyn Access,
    requisition: &str,
) -> Result<Requisition, OrdersError> {
    let number = requisition.trim();
    if requisition_serial(number).is_none() {
        return Err(OrdersError::NotFound(format!(
            "'{number}' is not a requisition number (they look like R0000123)."
        )));
    }
    let found = svc.search_as(
        access,
        "ServiceRequest",
        &[
            (
                "requisition",
                format!(
                    "{}|{}",
                    escape_value(REQUISITION_SYSTEM),
                    escape_value(number)
                ),
            ),
            ("_include", "ServiceRequest:specimen".to_owned()),
            ("_include", "ServiceRequest:requester".to_owned()),
            ("_count", "200".to_owned()),
        ],
    )?;
    if found.resources.is_empty() {
        return Err(if found.withheld > 0 {
            OrdersError::Forbidden("You are not allowed to see this requisition.".into())
        } else {
            OrdersError::NotFound(format!("There is no requisition {number}."))
        });
    }
    let mut srs = found.resources;
    srs.sort_by_key(|s| {
        identifier(s, PLACER_SYSTEM)
            .and_then(|p| p.rsplit_once('-').and_then(|(_, n)| n.parse::<u32>().ok()))
            .unwrap_or(u32::MAX)
    });
    let first = &srs[0];
    let patient_id = ref_id(&first["subject"], "Patient")
        .ok_or_else(|| OrdersError::Store(format!("requisition {number} names no patient")))?
        .to_owned();
    let patient = crate::pmi::summary(svc, access, &patient_id)?
        .ok_or_else(|| OrdersError::NotFound(format!("The patient of {number} is not found.")))?;
    let by_id = |t: &str, id: &str| {
        found
            .included
            .iter()
            .find(|r| str_of(r, "resourceType") == t && str_of(r, "id") == id)
    };
    let requester_ref = first["requester"]["reference"].as_str().map(str::to_owned);
    let requester = requester_ref
        .as_deref()
        .and_then(|r| r.strip_prefix("Practitioner/"))
        .and_then(|id| by_id("Practitioner", id))
        .and_then(person_name);
    // The answers.
    let qrs = svc
        .search_as(
            access,
            "QuestionnaireResponse",
            &[
                (
                    "based-on",
                    srs.iter()
                        .map(|s| format!("ServiceRequest/{}", str_of(s, "id")))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                ("_count", "200".to_owned()),
            ],
        )?
        .resources;
    let title = |s: &Value| {
        s["code"]["text"]
            .as_str()
            .or_else(|| s["code"]["coding"][0]["display"].as_str())
            .unwrap_or("Unnamed test")
            .to_owned()
    };
    let mut specimens: Vec<SpecimenLine> = Vec::new();
    let mut requests = Vec::new();
    for s in &srs {
        let id = str_of(s, "id").to_owned();
        let specimen = s["specimen"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|r| ref_id(r, "Specimen"))
            .and_then(|sid| by_id("Specimen", sid));
        if let Some(sp) = specimen {
            let sid = str_of(sp, "id");
            match specimens.iter_mut().find(|x| x.id == sid) {
                Some(line) => line.tests.push(title(s)),
                None => specimens.push(SpecimenLine {
                    id: sid.to_owned(),
                    identifier: identifier(sp, SPECIMEN_SYSTEM).unwrap_or_default(),
                    specimen_type: crate::fhir::concept_text(&sp["type"]).unwrap_or_default(),
                    container: sp["container"][0]["type"]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    colour: sp["container"][0]["description"]
                        .as_str()
                        .map(str::to_owned),
                    tests: vec![title(s)],
                    status: str_of(sp, "status").to_owned(),
                    received: sp["receivedTime"].as_str().map(str::to_owned),
                }),
            }
        }
        let answers = qrs
            .iter()
            .filter(|q| {
                q["basedOn"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|b| ref_id(b, "ServiceRequest") == Some(id.as_str()))
            })
            .flat_map(|q| q["item"].as_array().cloned().unwrap_or_default())
            .map(|item| {
                let a = &item["answer"][0];
                let text = if let Some(b) = a["valueBoolean"].as_bool() {
                    if b { "Yes" } else { "No" }.to_owned()
                } else if let Some(c) = a.get("valueCoding") {
                    str_of(c, "display").to_owned()
                } else if let Some(n) = a.get("valueDecimal").or(a.get("valueInteger")) {
                    n.to_string()
                } else {
                    str_of(a, "valueString").to_owned()
                };
                (
                    item["text"]
                        .as_str()
                        .unwrap_or(str_of(&item, "linkId"))
                        .to_owned(),
                    text,
                )
            })
            .collect();
        let notes: Vec<String> = s["note"]
            .as_array()
            .into_iter()
            .flatten()
            .skip(1)
            .filter_map(|n| n["text"].as_str().map(str::to_owned))
            .collect();
        requests.push(RequestLine {
            id: id.clone(),
            placer: identifier(s, PLACER_SYSTEM).unwrap_or_default(),
            orderable: s["instantiatesCanonical"][0].as_str().map(str::to_owned),
            title: title(s),
            code: s["code"].clone(),
            status: str_of(s, "status").to_owned(),
            priority: str_of(s, "priority").to_owned(),
            imaging: s["category"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["coding"].as_array().into_iter().flatten())
                .any(|c| c["code"] == "363679005"),
            answers,
            specimen: specimens
                .iter()
                .find(|x| {
                    Some(x.id.as_str())
                        == s["specimen"][0]
                            .get("reference")
                            .and_then(Value::as_str)
                            .and_then(|r| r.strip_prefix("Specimen/"))
                })
                .map(|x| x.identifier.clone()),
            duplicate_override: s["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["url"] == DUPLICATE_OVERRIDE_EXT)
                .and_then(|e| e["valueString"].as_str())
                .map(str::to_owned),
            notes,
        });
    }
    specimens.sort_by_key(|s| {
        s.identifier
            .rsplit_once('-')
            .and_then(|(_, k)| k.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    });
    Ok(Requisition {
        requisition: number.to_owned(),
        patient,
        authored_on: str_of(first, "authoredOn").to_owned(),
        requester_ref,
        requester,
        priority: str_of(first, "priority").to_owned(),
        clinical_details: first["note"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        encounter: ref_id(&first["encounter"], "Encounter").map(str::to_owned),
        requests,
        specimens,
    })
}

/// The patient's orders, newest first (at most `limit`), as the caller may
/// see them, and how many were withheld.
pub fn patient_orders(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    limit: usize,
) -> Result<(Vec<OrderLine>, usize), OrdersError> {
    let found = svc.search_as(
        access,
        "ServiceRequest",
        &[
            ("patient", format!("Patient/{patient}")),
            ("_sort", "-authored".to_owned()),
            ("_include", "ServiceRequest:requester".to_owned()),
            ("_count", limit.to_string()),
        ],
    )?;
    let lines = found
        .resources
        .iter()
        .map(|s| OrderLine {
            id: str_of(s, "id").to_owned(),
            requisition: s["requisition"]["value"].as_str().map(str::to_owned),
            title: s["code"]["text"]
                .as_str()
                .or_else(|| s["code"]["coding"][0]["display"].as_str())
                .unwrap_or("Unnamed test")
                .to_owned(),
            status: str_of(s, "status").to_owned(),
            priority: str_of(s, "priority").to_owned(),
            authored_on: str_of(s, "authoredOn").to_owned(),
            requester: s["requester"]["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix("Practitioner/"))
                .and_then(|id| {
                    found.included.iter().find(|p| {
                        str_of(p, "resourceType") == "Practitioner" && str_of(p, "id") == id
                    })
                })
                .and_then(person_name),
        })
        .collect();
    Ok((lines, found.withheld))
}

// ---------------------------------------------------------------- cancelling

/// Cancels one ServiceRequest (to `revoked`, through the lifecycle), now.
pub fn cancel(
    svc: &FhirService,
    access: &dyn Access,
    service_request: &str,
    reason: &str,
) -> Result<(), OrdersError> {
    cancel_at(svc, access, service_request, reason, svc.now())
}

/// [`cancel`] at `now`.
pub fn cancel_at(
    svc: &FhirService,
    access: &dyn Access,
    service_request: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), OrdersError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "orders-cancel", "U")?;
    cancel_in(&mut tx, service_request, reason, who.as_deref(), now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of cancelling, in `tx`.
pub fn cancel_in(
    tx: &mut Tx<'_>,
    service_request: &str,
    reason: &str,
    who: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), OrdersError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(OrdersError::Invalid(
            "Give the reason for cancelling the order.".into(),
        ));
    }
    tx.lock(&[format!("ServiceRequest/{service_request}")])?;
    let mut sr = tx.get("ServiceRequest", service_request)?.ok_or_else(|| {
        OrdersError::NotFound(format!("There is no order with id {service_request}."))
    })?;
    if !super::set_status(&mut sr, "revoked")? {
        return Err(OrdersError::Conflict(
            "The order is already cancelled.".into(),
        ));
    }
    let mut note = json!({"text": format!("Cancelled: {reason}"), "time": fhir_time(now)});
    if let Some(w) = who {
        note["authorReference"] = json!({"reference": w});
    }
    match sr.get_mut("note").and_then(Value::as_array_mut) {
        Some(notes) => notes.push(note),
        None => sr["note"] = json!([note]),
    }
    tx.save(sr)?;
    Ok(())
}

#[cfg(test)]
mod tests;
