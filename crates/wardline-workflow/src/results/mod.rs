//! Results: laboratory and imaging reports, their status rules, and who is
//! told about them.
//!
//! # The model (FHIR R4)
//!
//! * **A result** is a `DiagnosticReport` with its `Observation`s in
//!   `result` (one per analyte; abnormal flags in
//!   `Observation.interpretation`, v3 ObservationInterpretation: `H`, `L`,
//!   `A` abnormal; `HH`, `LL`, `AA` critical). It is *matched* when it has a
//!   `subject` and at least one `basedOn` ServiceRequest of that same
//!   subject: then it belongs to a request, and the request's `requester` is
//!   told. Otherwise it is **unmatched**: stored with `meta.tag`
//!   [`RESULT_MATCH_SYSTEM`]`|unmatched`, nobody is notified, and it waits on
//!   the matching worklist ([`unmatched`]) — never filed to a best guess. A
//!   matched request with neither a requester nor a responsible consultant
//!   is treated as unmatched too: a result nobody would be told about must
//!   not be filed quietly.
//! * **Status rules** (the one home: [`receive_in`], which every channel —
//!   the laboratory's release, HL7 v2 ORU, REST `DiagnosticReport/$submit` —
//!   calls): `registered` → `partial` → `preliminary` → `final` →
//!   `amended` / `corrected` / `appended` (→ again); any → `cancelled` or
//!   `entered-in-error`. A report never goes back (a final never becomes
//!   preliminary; a corrected one never becomes final again). A `final`
//!   report sent as `final` again with **different values** is refused (409
//!   here, `AE` on HL7): a change to a final result is a correction and must
//!   say so. The same report sent again is no change (nothing written,
//!   nobody told twice). `cancelled` may still become `entered-in-error`;
//!   otherwise `cancelled` and `entered-in-error` are ends. A correction
//!   writes new *versions* of the same Observations (an incoming
//!   Observation without an id takes the id of the report's earlier
//!   Observation with the same code), so the history keeps every earlier
//!   value. A report is the same report when it has the same `id`, or
//!   shares an `identifier` (the filler's accession number) with a stored
//!   one; the identifiers are locked before the look-up, so the same result
//!   arriving on two channels at once is stored and told once. A report
//!   with neither is always new.
//! * **The inbox** ([`inbox`]) is `Task`s: `code` [`TASK_SYSTEM`]`|`
//!   [`RESULT_REVIEW`], `focus` the report, `for` the patient, `owner` the
//!   requester (`ServiceRequest.requester`), `status` `requested` (new) →
//!   `in-progress` (opened: extension [`READ_EXT`] records who and when) →
//!   `completed` (acknowledged, with the outcome in `output` and
//!   `executionPeriod.end`). `priority` `stat` (a critical value), `urgent`
//!   (abnormal), `routine`; `businessStatus.text` `critical` / `abnormal` /
//!   `normal`, or `corrected` / `cancelled` for those notifications;
//!   `businessStatus.coding` [`INBOX_ORDER_SYSTEM`] a two-digit sort key
//!   (flag rank, then unread before read before done) so that the store
//!   sorts an inbox of any length critical and new first.
//! * **Notification** ([`notify_in`]) happens when a matched report is
//!   `preliminary`, `final`, `amended`, `corrected`, `appended`,
//!   `cancelled` or `entered-in-error` and something changed. Each earlier
//!   open Task of the report is closed (`cancelled`, `statusReason`
//!   "superseded"), so an inbox holds one item per report; the requester
//!   always gets a new Task, and so does **everyone who had read an earlier
//!   version** (an earlier Task of the report `in-progress` or `completed`,
//!   or anyone in its [`READ_EXT`]), with a note of the earlier values that
//!   changed — a correction reaches every person who saw the old value.
//! * **Escalation** ([`escalation`]): a critical Task not acknowledged
//!   within the configured time of `authoredOn` raises one Task
//!   [`RESULT_ESCALATION`] owned by the responsible consultant (the
//!   encounter's attending, `participant` type `ATND`; failing that the
//!   requester), and the original gets extension [`ESCALATED_EXT`].
//! * **Acknowledgement** ([`inbox::acknowledge`]) needs the acknowledger to
//!   have opened the result first (409 "no acknowledgement without
//!   reading"), and to be the Task's owner or the report's responsible
//!   consultant (the "team": a consultant firm is its consultant). Outcome
//!   [`RESULT_OUTCOME_SYSTEM`] `filed`, `action-required` or
//!   `contact-patient`; the last two raise a follow-up Task
//!   (`result-action` / `contact-patient`) owned by the acknowledger.
//!
//! Reads that decide a rule (the request and its requester, who read an
//! earlier version) look at the store in the transaction, past the caller's
//! access: the laboratory releasing a result must reach the requester
//! whoever may see what. What a person is shown is read with their access.

pub mod cumulative;
pub mod escalation;
pub mod inbox;
mod notify;
pub mod operation;
pub mod unmatched;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;
use wardline_store::Reader;

pub use escalation::{escalate_due, escalate_due_in, responsible_consultant};
pub use inbox::{
    InboxItem, InboxPage, ObservationLine, Queue, ResultView, acknowledge, inbox, inbox_queue, open,
};
pub use notify::notify_in;
pub(crate) use notify::{order_code, task_code};

pub use crate::pmi::TASK_SYSTEM;

const WL: &str = "https://fhir.wardline.invalid";

/// `meta.tag` system of a report's matching state (`unmatched`).
pub const RESULT_MATCH_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/result-match";
/// The tag code of a report that belongs to no request (yet).
pub const UNMATCHED: &str = "unmatched";
/// `Task.code` of a result to review (an inbox item).
pub const RESULT_REVIEW: &str = "result-review";
/// `Task.code` of a critical result escalated to the responsible consultant.
pub const RESULT_ESCALATION: &str = "result-escalation";
/// `Task.code` of the follow-up an acknowledgement with action raises.
pub const RESULT_ACTION: &str = "result-action";
/// `Task.code` of the follow-up "contact the patient".
pub const CONTACT_PATIENT: &str = "contact-patient";
/// `Task.output` system of an acknowledgement's outcome.
pub const RESULT_OUTCOME_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/result-outcome";
/// `Task.businessStatus.coding` system: the inbox's sort key.
pub const INBOX_ORDER_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/result-inbox-order";
/// Extension on a Task: who opened (read) the result, and when
/// (sub-extensions `who` valueReference, `when` valueDateTime).
pub const READ_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/read";
/// Extension on a Task: when it was escalated (valueDateTime).
pub const ESCALATED_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/escalated";

/// The DiagnosticReport statuses (FHIR R4).
pub const STATUSES: [&str; 10] = [
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
    "unknown",
];

/// Statuses in which a matched report is told to people.
pub(crate) const NOTIFY: [&str; 7] = [
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
];

// ---------------------------------------------------------------- types

/// A result arriving from any channel.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The DiagnosticReport (with `basedOn` already resolved to
    /// `ServiceRequest/…` where the sender's placer number was known).
    pub report: Value,
    /// Its Observations (may be empty when `report.result` references
    /// stored ones).
    pub observations: Vec<Value>,
    pub source: Source,
}

/// Where a result came from (for the audit trail and `meta.source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Released by Wardline's own laboratory workflow.
    Laboratory,
    /// An HL7 v2 ORU from the named sending application.
    Hl7 { sender: String },
    /// FHIR REST (`DiagnosticReport/$submit`).
    Rest,
}

impl Source {
    fn uri(&self) -> String {
        match self {
            Source::Laboratory => format!("{WL}/source/laboratory"),
            Source::Hl7 { sender } => format!(
                "{WL}/source/hl7/{}",
                form_urlencoded::byte_serialize(sender.as_bytes()).collect::<String>()
            ),
            Source::Rest => format!("{WL}/source/rest"),
        }
    }
}

/// What [`receive_in`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Received {
    /// The DiagnosticReport id.
    pub report: String,
    /// `false`: stored unmatched, on the worklist.
    pub matched: bool,
    /// The inbox Tasks created.
    pub notified: Vec<String>,
}

/// How abnormal a result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Flag {
    Critical,
    Abnormal,
    Normal,
}

impl Flag {
    /// `critical`, `abnormal`, `normal`.
    pub fn code(self) -> &'static str {
        match self {
            Flag::Critical => "critical",
            Flag::Abnormal => "abnormal",
            Flag::Normal => "normal",
        }
    }

    /// The Task priority that carries it.
    pub fn priority(self) -> &'static str {
        match self {
            Flag::Critical => "stat",
            Flag::Abnormal => "urgent",
            Flag::Normal => "routine",
        }
    }

    /// From a Task priority.
    pub fn of_priority(p: &str) -> Flag {
        match p {
            "stat" => Flag::Critical,
            "urgent" | "asap" => Flag::Abnormal,
            _ => Flag::Normal,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Flag::Critical => 1,
            Flag::Abnormal => 2,
            Flag::Normal => 3,
        }
    }

    /// The flag of one interpretation code (v3 ObservationInterpretation): the
    /// catalogue's reading of `N`, `L`, `H`, `LL`, `HH`, `<`, `>`, then the
    /// codes without a direction (`AA` critical; `A`, `HX`, `LX`, `POS`…
    /// abnormal).
    pub fn of_code(code: &str) -> Flag {
        if let Some(i) = crate::orders::catalogue::Interpretation::from_code(code) {
            return if i.is_critical() {
                Flag::Critical
            } else if i.is_abnormal() {
                Flag::Abnormal
            } else {
                Flag::Normal
            };
        }
        match code {
            "HH" | "LL" | "AA" | "HU" | "LU" | "critical" => Flag::Critical,
            "H" | "L" | "A" | "HX" | "LX" | ">" | "<" | "POS" | "DET" | "R" => Flag::Abnormal,
            _ => Flag::Normal,
        }
    }

    /// The flag of an Observation: the worst of its interpretations (and
    /// its components').
    pub fn of_observation(o: &Value) -> Flag {
        let mut worst = Flag::Normal;
        let mut look = |v: &Value| {
            for c in v["interpretation"].as_array().into_iter().flatten() {
                for cd in c["coding"].as_array().into_iter().flatten() {
                    if let Some(code) = cd["code"].as_str() {
                        worst = worst.min(Flag::of_code(code));
                    }
                }
                if let Some(t) = c["text"].as_str()
                    && t.eq_ignore_ascii_case("critical")
                {
                    worst = Flag::Critical;
                }
            }
        };
        look(o);
        for comp in o["component"].as_array().into_iter().flatten() {
            look(comp);
        }
        worst
    }
}

/// A refusal or failure, with a sentence to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ResultsError {
    /// The request is wrong (400), naming the element.
    Invalid(String),
    /// 404.
    NotFound(String),
    /// The caller may not (403).
    Forbidden(String),
    /// The record's state does not allow it (409): a status going back, a
    /// final result changed without a correction, acknowledgement without
    /// reading; or another transaction changed it at the same moment.
    Conflict(String),
    /// Wardline failed (500).
    Store(String),
}

impl ResultsError {
    /// The HTTP status that fits.
    pub fn status(&self) -> u16 {
        match self {
            ResultsError::Invalid(_) => 400,
            ResultsError::NotFound(_) => 404,
            ResultsError::Forbidden(_) => 403,
            ResultsError::Conflict(_) => 409,
            ResultsError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ResultsError::Invalid(m)
            | ResultsError::NotFound(m)
            | ResultsError::Forbidden(m)
            | ResultsError::Conflict(m)
            | ResultsError::Store(m) => m,
        }
    }

    /// As a FHIR error (an OperationOutcome with the status).
    pub fn to_fhir(&self) -> FhirError {
        let code = match self {
            ResultsError::Invalid(_) => "invalid",
            ResultsError::NotFound(_) => "not-found",
            ResultsError::Forbidden(_) => "forbidden",
            ResultsError::Conflict(_) => "conflict",
            ResultsError::Store(_) => "exception",
        };
        FhirError::new(self.status(), code, self.message())
    }
}

impl std::fmt::Display for ResultsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ResultsError {}

impl From<FhirError> for ResultsError {
    fn from(e: FhirError) -> ResultsError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "result") {
            R::Forbidden(m) => ResultsError::Forbidden(m),
            R::NotFound(m) => ResultsError::NotFound(m),
            R::Concurrent(m) => ResultsError::Conflict(m),
            R::Invalid(m) => ResultsError::Invalid(m),
            R::Store(m) => ResultsError::Store(m),
        }
    }
}

impl From<wardline_store::StoreError> for ResultsError {
    fn from(e: wardline_store::StoreError) -> ResultsError {
        ResultsError::from(FhirError::from(e))
    }
}

// ---------------------------------------------------------- status rules

fn rank(status: &str) -> Option<u8> {
    match status {
        "registered" => Some(0),
        "partial" => Some(1),
        "preliminary" => Some(2),
        "final" => Some(3),
        "amended" | "corrected" | "appended" => Some(4),
        _ => None,
    }
}

pub(crate) fn is_correction(status: &str) -> bool {
    matches!(status, "amended" | "corrected" | "appended")
}

/// What the status rules say about a report arriving with status `to`
/// over a stored one with status `from` (`None`: new), `same` telling
/// whether its values are those stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Store it (and tell people when matched).
    Apply,
    /// The same report again: nothing to do.
    NoChange,
}

/// The status rules (see the module documentation). `Err` is the sentence
/// of a refusal.
pub fn transition(from: Option<&str>, to: &str, same: bool) -> Result<Transition, String> {
    if !STATUSES.contains(&to) {
        return Err(format!(
            "DiagnosticReport.status '{to}' is not a report status (one of {}).",
            STATUSES.join(", ")
        ));
    }
    let Some(from) = from else {
        return Ok(Transition::Apply);
    };
    if from == to && same {
        return Ok(Transition::NoChange);
    }
    match (from, to) {
        ("entered-in-error", _) => Err(
            "The report was marked as entered in error, which is final: send a new report."
                .to_owned(),
        ),
        ("cancelled", "entered-in-error") => Ok(Transition::Apply),
        ("cancelled", _) => Err(
            "The report was cancelled, which is final: send a new report (or mark it entered in error)."
                .to_owned(),
        ),
        (_, "cancelled" | "entered-in-error") => Ok(Transition::Apply),
        ("unknown", _) => Ok(Transition::Apply),
        (_, "unknown") => Err(format!(
            "The report is {from}; its status cannot become unknown."
        )),
        ("final", "final") => Err(
            "The report is final and this one changes its values: a change to a final result is a correction — send it with status corrected (HL7 OBR-25 C) or amended."
                .to_owned(),
        ),
        _ => match (rank(from), rank(to)) {
            (Some(a), Some(b)) if b < a => Err(format!(
                "The report is {from}; it cannot go back to {to}. {}",
                if a >= 3 {
                    "A released result is changed only by a correction (status corrected or amended)."
                } else {
                    ""
                }
            )
            .trim_end()
            .to_owned()),
            _ => Ok(Transition::Apply),
        },
    }
}

// ------------------------------------------------------------ helpers

pub(crate) fn now_text(now: OffsetDateTime) -> String {
    wardline_fhir::datetime::format_instant(
        (now.unix_timestamp_nanos() / 1_000_000).clamp(i64::MIN as i128, i64::MAX as i128) as i64,
    )
}

/// A stored resource read in the transaction past the caller's access (for
/// deciding a rule; never shown as it is).
pub(crate) fn stored(tx: &Tx<'_>, t: &str, id: &str) -> Result<Option<Value>, ResultsError> {
    match Reader::read(tx, t, id)? {
        Some(r) if !r.deleted => serde_json::from_str(&r.json)
            .map(Some)
            .map_err(|e| ResultsError::Store(format!("stored {t}/{id} is unreadable: {e}"))),
        _ => Ok(None),
    }
}

/// Every current resource of `t` matching `pairs`, read in the
/// transaction past the caller's access.
pub(crate) fn stored_search(
    tx: &Tx<'_>,
    t: &str,
    pairs: &[(&str, String)],
) -> Result<Vec<Value>, ResultsError> {
    // The workflows' one paged search past access.
    Ok(crate::fhir::search_all(tx, t, pairs)?)
}

pub(crate) fn reference_of(v: &Value) -> Option<&str> {
    v["reference"].as_str()
}

/// `system|code` of a concept's first coding (or its text).
pub(crate) fn code_key(c: &Value) -> Option<String> {
    c["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|cd| {
            let code = cd["code"].as_str()?;
            Some(format!("{}|{code}", cd["system"].as_str().unwrap_or("")))
        })
        .or_else(|| c["text"].as_str().map(|t| format!("text|{t}")))
}

/// The lock key of a report: everything that changes the report or its
/// Tasks takes it.
pub(crate) fn report_lock(id: &str) -> String {
    format!("results:DiagnosticReport/{id}")
}

/// The value of an Observation as people read it (`6.8 mmol/L`, a coded
/// answer, a string), with its flag code when abnormal.
pub fn value_text(o: &Value) -> String {
    let v = value_only(o);
    let flags: Vec<&str> = o["interpretation"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .filter_map(|c| c["code"].as_str())
        .filter(|c| *c != "N")
        .collect();
    if flags.is_empty() {
        v
    } else {
        format!("{v} ({})", flags.join(", "))
    }
}

/// The value of an Observation as people read it, without its flag (for
/// views that show the flag apart).
pub fn value_only(o: &Value) -> String {
    if let Some(q) = o.get("valueQuantity") {
        crate::fhir::quantity_text(q).unwrap_or_default()
    } else if let Some(c) = o.get("valueCodeableConcept") {
        crate::fhir::concept_text(c).unwrap_or_default()
    } else if let Some(s) = o["valueString"].as_str() {
        s.to_owned()
    } else if let Some(b) = o["valueBoolean"].as_bool() {
        if b { "yes" } else { "no" }.to_owned()
    } else if let Some(i) = o.get("valueInteger") {
        i.to_string()
    } else if let Some(r) = o.get("valueRange") {
        format!(
            "{}–{}",
            crate::fhir::quantity_text(&r["low"]).unwrap_or_default(),
            crate::fhir::quantity_text(&r["high"]).unwrap_or_default()
        )
    } else if let Some(d) = o.get("dataAbsentReason") {
        format!(
            "no value ({})",
            crate::fhir::concept_text(d).unwrap_or_default()
        )
    } else {
        let parts: Vec<String> = o["component"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {}",
                    crate::fhir::concept_text(&c["code"]).unwrap_or_default(),
                    value_text(c)
                )
            })
            .collect();
        parts.join(", ")
    }
}

/// What a result says, for comparing two versions: each Observation's code
/// and value elements, and the report's conclusion and attachments.
fn fingerprint(report: &Value, observations: &[Value]) -> Value {
    let mut obs: Vec<(String, Value)> = observations
        .iter()
        .map(|o| {
            let mut m = serde_json::Map::new();
            if let Some(obj) = o.as_object() {
                for (k, v) in obj {
                    if k.starts_with("value")
                        || matches!(
                            k.as_str(),
                            "interpretation"
                                | "dataAbsentReason"
                                | "component"
                                | "referenceRange"
                                | "note"
                        )
                    {
                        m.insert(k.clone(), v.clone());
                    }
                }
            }
            (code_key(&o["code"]).unwrap_or_default(), Value::Object(m))
        })
        .collect();
    obs.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.to_string().cmp(&b.1.to_string()))
    });
    json!({
        "observations": obs.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "conclusion": report["conclusion"],
        "conclusionCode": report["conclusionCode"],
        "presentedForm": report["presentedForm"],
    })
}

/// The Observation status that goes with a report status.
fn observation_status(report_status: &str) -> &'static str {
    match report_status {
        "registered" => "registered",
        "partial" | "preliminary" => "preliminary",
        "final" => "final",
        "amended" | "appended" => "amended",
        "corrected" => "corrected",
        "cancelled" => "cancelled",
        "entered-in-error" => "entered-in-error",
        _ => "unknown",
    }
}

fn validate(incoming: &Incoming) -> Result<(), ResultsError> {
    let r = &incoming.report;
    if r["resourceType"] != "DiagnosticReport" {
        return Err(ResultsError::Invalid(
            "The result must be a DiagnosticReport (resourceType).".to_owned(),
        ));
    }
    match r["status"].as_str() {
        None => {
            return Err(ResultsError::Invalid(
                "DiagnosticReport.status is missing.".to_owned(),
            ));
        }
        Some(s) if !STATUSES.contains(&s) => {
            return Err(ResultsError::Invalid(format!(
                "DiagnosticReport.status '{s}' is not a report status (one of {}).",
                STATUSES.join(", ")
            )));
        }
        Some(_) => {}
    }
    if code_key(&r["code"]).is_none() {
        return Err(ResultsError::Invalid(
            "DiagnosticReport.code is missing: say which test this is.".to_owned(),
        ));
    }
    for (i, o) in incoming.observations.iter().enumerate() {
        if o["resourceType"] != "Observation" {
            return Err(ResultsError::Invalid(format!(
                "observation {} is not an Observation (resourceType).",
                i + 1
            )));
        }
        if code_key(&o["code"]).is_none() {
            return Err(ResultsError::Invalid(format!(
                "Observation.code of observation {} is missing: say which analyte it is.",
                i + 1
            )));
        }
    }
    Ok(())
}

fn identifiers(r: &Value) -> Vec<(String, String)> {
    r["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some((
                i["system"].as_str()?.to_owned(),
                i["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The stored report this one is a version of: by id, else by any of its
/// identifiers.
fn find_existing(tx: &mut Tx<'_>, report: &Value) -> Result<Option<String>, ResultsError> {
    if let Some(id) = report["id"].as_str() {
        return Ok(Some(id.to_owned()));
    }
    let ids = identifiers(report);
    if ids.is_empty() {
        return Ok(None);
    }
    let keys: Vec<String> = ids
        .iter()
        .map(|(s, v)| crate::pmi::lookup_key("DiagnosticReport", s, v))
        .collect();
    tx.lock(&keys)?;
    for (s, v) in &ids {
        let found = stored_search(
            tx,
            "DiagnosticReport",
            &[("identifier", format!("{s}|{v}"))],
        )?;
        if let Some(id) = found.first().and_then(|r| r["id"].as_str()) {
            return Ok(Some(id.to_owned()));
        }
    }
    Ok(None)
}

/// Who is told about a matched report, and about whom.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `Patient/…`.
    pub patient: String,
    /// The ServiceRequests it answers (`ServiceRequest/…`).
    pub requests: Vec<String>,
    /// The requester (`Practitioner/…`), if the request names one.
    pub requester: Option<String>,
    /// The responsible consultant (`Practitioner/…`), if known.
    pub consultant: Option<String>,
}

/// Whether the report is matched (see the module documentation), and to
/// whom. Reads past the caller's access.
pub fn target_in(tx: &Tx<'_>, report: &Value) -> Result<Option<Target>, ResultsError> {
    let Some(patient) = reference_of(&report["subject"])
        .filter(|r| r.starts_with("Patient/"))
        .map(str::to_owned)
    else {
        return Ok(None);
    };
    let mut requests = Vec::new();
    let mut requester = None;
    let mut encounter = reference_of(&report["encounter"]).map(str::to_owned);
    for b in report["basedOn"].as_array().into_iter().flatten() {
        let Some(id) = crate::fhir::reference_id(b, "ServiceRequest") else {
            continue;
        };
        let Some(sr) = stored(tx, "ServiceRequest", id)? else {
            continue;
        };
        if reference_of(&sr["subject"]) != Some(patient.as_str()) {
            // A request of another patient: never file to it.
            return Ok(None);
        }
        requests.push(format!("ServiceRequest/{id}"));
        if requester.is_none() {
            requester = reference_of(&sr["requester"])
                .filter(|r| r.starts_with("Practitioner/"))
                .map(str::to_owned);
        }
        if encounter.is_none() {
            encounter = reference_of(&sr["encounter"]).map(str::to_owned);
        }
    }
    if requests.is_empty() {
        return Ok(None);
    }
    let consultant = match encounter
        .as_deref()
        .and_then(|e| e.strip_prefix("Encounter/"))
    {
        Some(id) => stored(tx, "Encounter", id)?
            .as_ref()
            .and_then(escalation::attending),
        None => None,
    };
    if requester.is_none() && consultant.is_none() {
        return Ok(None);
    }
    Ok(Some(Target {
        patient,
        requests,
        requester,
        consultant,
    }))
}

fn set_unmatched_tag(report: &mut Value, unmatched: bool) {
    let tags = report["meta"]["tag"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut tags: Vec<Value> = tags
        .into_iter()
        .filter(|t| t["system"] != RESULT_MATCH_SYSTEM)
        .collect();
    if unmatched {
        tags.push(json!({"system": RESULT_MATCH_SYSTEM, "code": UNMATCHED,
            "display": "Unmatched result: on the matching worklist"}));
    }
    if !report["meta"].is_object() {
        report["meta"] = json!({});
    }
    if tags.is_empty() {
        if let Some(m) = report["meta"].as_object_mut() {
            m.remove("tag");
        }
    } else {
        report["meta"]["tag"] = Value::Array(tags);
    }
}

/// Whether a stored report carries the unmatched tag.
pub fn is_unmatched(report: &Value) -> bool {
    report["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["system"] == RESULT_MATCH_SYSTEM && t["code"] == UNMATCHED)
}

// -------------------------------------------------------------- receive

/// Flags the Observations sent without an interpretation whose value is a
/// number, from the catalogue's analyte of the same code
/// (`orders::catalogue::Analyte::interpret`, the one place flags are
/// computed; the patient's sex picks a sex-specific range), and gives them
/// the analyte's reference range when they carry none. A value in another
/// unit than the analyte's is never flagged by it (a range in mmol/L says
/// nothing about mg/dL): it stays as sent.
fn interpret_from_catalogue(
    tx: &Tx<'_>,
    observations: &mut [Value],
    subject: Option<&str>,
) -> Result<(), ResultsError> {
    let needs = |o: &Value| {
        o.get("interpretation").is_none() && o["valueQuantity"]["value"].as_f64().is_some()
    };
    if !observations.iter().any(needs) {
        return Ok(());
    }
    let catalogue = crate::orders::catalogue::load_from(tx)?;
    let gender = match subject.and_then(|s| s.strip_prefix("Patient/")) {
        Some(id) => {
            stored(tx, "Patient", id)?.and_then(|p| p["gender"].as_str().map(str::to_owned))
        }
        None => None,
    };
    for o in observations.iter_mut().filter(|o| needs(o)) {
        let tokens: Vec<String> = o["code"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some(format!("{}|{}", c["system"].as_str()?, c["code"].as_str()?)))
            .collect();
        let Some(analyte) = tokens.iter().find_map(|t| catalogue.analyte(t)) else {
            continue;
        };
        let analyte = analyte.for_sex(gender.as_deref());
        let q = &o["valueQuantity"];
        let unit = q["code"].as_str().or(q["unit"].as_str());
        if let Some(au) = &analyte.unit
            && unit != Some(au.as_str())
        {
            continue;
        }
        let Some(v) = q["value"].as_f64() else {
            continue;
        };
        o["interpretation"] = json!([analyte.interpret(v).concept()]);
        if o.get("referenceRange").is_none() {
            let rr = analyte.reference_range();
            if !rr.is_empty() {
                o["referenceRange"] = Value::Array(rr);
            }
        }
    }
    Ok(())
}

/// Stores a result under the status rules and tells people about it (see
/// the module documentation), in the caller's transaction.
pub fn receive_in(
    tx: &mut Tx<'_>,
    incoming: Incoming,
    now: OffsetDateTime,
) -> Result<Received, ResultsError> {
    validate(&incoming)?;
    let Incoming {
        mut report,
        observations,
        source,
    } = incoming;
    let existing = find_existing(tx, &report)?;
    if let Some(id) = &existing {
        tx.lock(&[report_lock(id)])?;
    }
    let old = match &existing {
        Some(id) => stored(tx, "DiagnosticReport", id)?,
        None => None,
    };
    let old_obs: Vec<Value> = match &old {
        Some(o) => result_observations(tx, o)?,
        None => Vec::new(),
    };
    let to = report["status"].as_str().unwrap_or("unknown").to_owned();
    // A later version never moves a result to another patient: that is a
    // different result, or a misfiled one for a person to sort out.
    if let Some(o) = &old
        && let (Some(was), Some(now)) = (
            reference_of(&o["subject"]),
            reference_of(&report["subject"]),
        )
        && was != now
    {
        return Err(ResultsError::Conflict(format!(
            "DiagnosticReport/{} is filed for {was}, and this version names {now}: a result is never moved to another patient by a resend. Send it as a new report, or mark the earlier one entered in error.",
            existing.as_deref().unwrap_or("")
        )));
    }
    // Carry what identifies the patient and the request from the stored
    // version when a later one does not repeat it.
    if let Some(o) = &old {
        for k in ["subject", "basedOn", "encounter", "specimen"] {
            if report.get(k).is_none() && o.get(k).is_some() {
                report[k] = o[k].clone();
            }
        }
        if report.get("result").is_none() && observations.is_empty() {
            report["result"] = o["result"].clone();
        }
    }
    let new_obs_for_compare: Vec<Value> = if observations.is_empty() {
        result_observations(tx, &report)?
    } else {
        observations.clone()
    };
    let same = old
        .as_ref()
        .is_some_and(|o| fingerprint(o, &old_obs) == fingerprint(&report, &new_obs_for_compare));
    let from = old
        .as_ref()
        .map(|o| o["status"].as_str().unwrap_or("unknown"));
    match transition(from, &to, same).map_err(ResultsError::Conflict)? {
        Transition::NoChange => {
            let id = existing.unwrap_or_default();
            return Ok(Received {
                matched: !old.as_ref().is_some_and(is_unmatched),
                report: id,
                notified: Vec::new(),
            });
        }
        Transition::Apply => {}
    }

    // The Observations: new versions of the earlier ones of the same code.
    let mut by_code: BTreeMap<String, String> = BTreeMap::new();
    for o in &old_obs {
        if let (Some(k), Some(id)) = (code_key(&o["code"]), o["id"].as_str()) {
            by_code.entry(k).or_insert_with(|| id.to_owned());
        }
    }
    let mut refs: Vec<String> = Vec::new();
    let mut replaced: BTreeSet<String> = BTreeSet::new();
    let obs_status = observation_status(&to);
    let mut observations = observations;
    interpret_from_catalogue(tx, &mut observations, reference_of(&report["subject"]))?;
    for mut o in observations {
        if o.get("id").is_none()
            && let Some(id) = code_key(&o["code"]).and_then(|k| by_code.remove(&k))
        {
            o["id"] = json!(id);
        }
        for k in ["subject", "basedOn", "encounter", "specimen"] {
            if o.get(k).is_none() && report.get(k).is_some() {
                o[k] = match (k, &report[k]) {
                    ("specimen", Value::Array(a)) => a.first().cloned().unwrap_or(Value::Null),
                    (_, v) => v.clone(),
                };
                if o[k].is_null()
                    && let Some(m) = o.as_object_mut()
                {
                    m.remove(k);
                }
            }
        }
        if o.get("status").is_none() || rank(&to).is_some_and(|r| r >= 3) || to == "cancelled" {
            o["status"] = json!(obs_status);
        }
        if o.get("effectiveDateTime").is_none()
            && o.get("effectivePeriod").is_none()
            && let Some(e) = report.get("effectiveDateTime")
        {
            o["effectiveDateTime"] = e.clone();
        }
        if o.get("issued").is_none()
            && let Some(i) = report.get("issued")
        {
            o["issued"] = i.clone();
        }
        let saved = tx.save(o)?;
        replaced.insert(saved.id.clone());
        refs.push(format!("Observation/{}", saved.id));
    }
    if !refs.is_empty() {
        // Earlier results this version does not repeat are kept.
        for r in old
            .as_ref()
            .map(|o| o["result"].clone())
            .unwrap_or(Value::Null)
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(id) = crate::fhir::reference_id(r, "Observation")
                && !replaced.contains(id)
            {
                let mut o = stored(tx, "Observation", id)?.unwrap_or(Value::Null);
                if o.is_object() && o["status"] != obs_status && rank(&to).is_some_and(|r| r >= 3) {
                    o["status"] = json!(obs_status);
                    tx.save(o)?;
                }
                refs.push(format!("Observation/{id}"));
            }
        }
        report["result"] = Value::Array(
            refs.iter()
                .map(|r| json!({"reference": r}))
                .collect::<Vec<_>>(),
        );
    }
    if let Some(id) = &existing {
        report["id"] = json!(id);
    }
    if report["meta"]["source"].is_null() {
        if !report["meta"].is_object() {
            report["meta"] = json!({});
        }
        report["meta"]["source"] = json!(source.uri());
    }
    if report.get("issued").is_none() && rank(&to).is_some_and(|r| r >= 2) {
        report["issued"] = json!(now_text(now));
    }
    let target = target_in(tx, &report)?;
    set_unmatched_tag(&mut report, target.is_none());
    let saved = tx.save(report)?;
    if existing.is_none() {
        tx.lock(&[report_lock(&saved.id)])?;
    }
    let notified = if target.is_some() && NOTIFY.contains(&to.as_str()) {
        notify_in(tx, &saved.id, now)?
    } else {
        Vec::new()
    };
    Ok(Received {
        report: saved.id,
        matched: target.is_some(),
        notified,
    })
}

/// [`receive_in`] as one authorised, audited transaction for `access`.
pub fn receive(
    svc: &FhirService,
    access: &dyn Access,
    incoming: Incoming,
    now: OffsetDateTime,
) -> Result<Received, ResultsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "results-receive", "C");
    if let Source::Hl7 { sender } = &incoming.source {
        tx.set_origin(sender.clone());
    }
    let out = receive_in(&mut tx, incoming, now)?;
    tx.commit()?;
    Ok(out)
}

/// The Observations a report's `result` references (stored ones only).
pub(crate) fn result_observations(tx: &Tx<'_>, report: &Value) -> Result<Vec<Value>, ResultsError> {
    let mut out = Vec::new();
    for r in report["result"].as_array().into_iter().flatten() {
        if let Some(id) = crate::fhir::reference_id(r, "Observation")
            && let Some(o) = stored(tx, "Observation", id)?
        {
            out.push(o);
        }
    }
    Ok(out)
}

/// The flag of a report: the worst of its Observations'.
pub fn report_flag(observations: &[Value]) -> Flag {
    observations
        .iter()
        .map(Flag::of_observation)
        .min()
        .unwrap_or(Flag::Normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_move_forward_only() {
        let ok = [
            (None, "final"),
            (Some("registered"), "partial"),
            (Some("partial"), "preliminary"),
            (Some("preliminary"), "final"),
            (Some("final"), "corrected"),
            (Some("final"), "amended"),
            (Some("corrected"), "corrected"),
            (Some("amended"), "corrected"),
            (Some("final"), "cancelled"),
            (Some("preliminary"), "entered-in-error"),
            (Some("cancelled"), "entered-in-error"),
            (Some("unknown"), "final"),
        ];
        for (f, t) in ok {
            assert_eq!(
                transition(f, t, false),
                Ok(Transition::Apply),
                "{f:?} -> {t}"
            );
        }
        let refused = [
            (Some("final"), "preliminary"),
            (Some("final"), "partial"),
            (Some("corrected"), "final"),
            (Some("preliminary"), "registered"),
            (Some("cancelled"), "final"),
            (Some("entered-in-error"), "final"),
            (Some("entered-in-error"), "cancelled"),
            (Some("final"), "unknown"),
            (None, "nonsense"),
        ];
        for (f, t) in refused {
            assert!(transition(f, t, false).is_err(), "{f:?} -> {t}");
        }
    }

    #[test]
    fn final_again_is_no_change_or_a_refusal() {
        assert_eq!(
            transition(Some("final"), "final", true),
            Ok(Transition::NoChange)
        );
        let e = transition(Some("final"), "final", false).unwrap_err();
        assert!(e.contains("correction"), "{e}");
        // A preliminary may change its values.
        assert_eq!(
            transition(Some("preliminary"), "preliminary", false),
            Ok(Transition::Apply)
        );
        // Going back is refused even with the same values.
        assert!(transition(Some("final"), "preliminary", true).is_err());
    }

    #[test]
    fn flags_from_interpretations() {
        let o = |codes: &[&str]| json!({"interpretation": [{"coding": codes.iter().map(|c| json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": c})).collect::<Vec<_>>()}]});
        assert_eq!(Flag::of_observation(&o(&["HH"])), Flag::Critical);
        assert_eq!(Flag::of_observation(&o(&["LL"])), Flag::Critical);
        assert_eq!(Flag::of_observation(&o(&["H"])), Flag::Abnormal);
        assert_eq!(Flag::of_observation(&o(&["N"])), Flag::Normal);
        assert_eq!(Flag::of_observation(&json!({})), Flag::Normal);
        assert_eq!(
            report_flag(&[o(&["N"]), o(&["L"]), o(&["HH"])]),
            Flag::Critical
        );
        assert_eq!(report_flag(&[o(&["N"]), o(&["L"])]), Flag::Abnormal);
        assert_eq!(Flag::of_priority(Flag::Critical.priority()), Flag::Critical);
        assert_eq!(Flag::of_priority(Flag::Abnormal.priority()), Flag::Abnormal);
    }

    #[test]
    fn fingerprint_sees_values_not_bookkeeping() {
        let a = json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
            "valueQuantity": {"value": 6.8, "unit": "mmol/L"}});
        let mut b = a.clone();
        b["id"] = json!("o2");
        b["status"] = json!("preliminary");
        b["meta"] = json!({"versionId": "3"});
        let r = json!({"conclusion": "x"});
        assert_eq!(
            fingerprint(&r, std::slice::from_ref(&a)),
            fingerprint(&r, std::slice::from_ref(&b))
        );
        b["valueQuantity"]["value"] = json!(4.2);
        assert_ne!(
            fingerprint(&r, std::slice::from_ref(&a)),
            fingerprint(&r, &[b])
        );
        assert_ne!(
            fingerprint(&r, std::slice::from_ref(&a)),
            fingerprint(&json!({"conclusion": "y"}), &[a])
        );
    }

    #[test]
    fn values_as_people_read_them() {
        let o = json!({"valueQuantity": {"value": 6.8, "unit": "mmol/L"},
            "interpretation": [{"coding": [{"code": "HH"}]}]});
        assert_eq!(value_text(&o), "6.8 mmol/L (HH)");
        assert_eq!(value_text(&json!({"valueString": "Positive"})), "Positive");
    }

    #[test]
    fn the_unmatched_tag_comes_and_goes() {
        let mut r = json!({"meta": {"tag": [{"system": "x", "code": "y"}]}});
        set_unmatched_tag(&mut r, true);
        assert!(is_unmatched(&r));
        set_unmatched_tag(&mut r, false);
        assert!(!is_unmatched(&r));
        assert_eq!(r["meta"]["tag"].as_array().map(Vec::len), Some(1));
    }

    proptest::proptest! {
        /// Whatever arrives in whatever order, a stored report's status
        /// never goes back in rank, nothing leaves entered-in-error, and a
        /// final's values change only through a correction.
        #[test]
        fn never_back(path in proptest::collection::vec((proptest::sample::select(&STATUSES[..]), proptest::bool::ANY), 1..14)) {
            let mut cur: Option<&str> = None;
            for (to, same) in path {
                let r = transition(cur, to, same);
                if let (Some(c), Ok(Transition::Apply)) = (cur, &r) {
                    proptest::prop_assert!(c != "entered-in-error");
                    if let (Some(a), Some(b)) = (rank(c), rank(to)) {
                        proptest::prop_assert!(b >= a);
                    }
                    proptest::prop_assert!(!(c == "final" && to == "final"));
                }
                if r == Ok(Transition::Apply) {
                    cur = Some(to);
                }
            }
        }
    }
}
