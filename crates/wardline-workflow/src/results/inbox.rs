//! The results inbox: a clinician's result-review Tasks, opening a result
//! (which records that they read it), and acknowledging it.
//!
//! * [`inbox`] lists one page (50) of the owner's open Tasks, critical then
//!   abnormal then normal, unread before read, newest first within each —
//!   the store sorts by the Task's [`super::INBOX_ORDER_SYSTEM`] key and
//!   `authoredOn`, so a page costs one search with the patients included,
//!   however many results the clinician has. [`Queue::Team`] is the
//!   escalations owned by the clinician as responsible consultant;
//!   [`Queue::Done`] the acknowledged ones.
//! * [`open`] shows the result with its ranges, flags and earlier values,
//!   and — when the caller may acknowledge it (its owner, or the report's
//!   responsible consultant) — records that they read it: extension
//!   [`super::READ_EXT`] (who, when) and `status` `in-progress`.
//! * [`acknowledge`] needs that reading first (409 "no acknowledgement
//!   without reading"), records the outcome, and raises the follow-up Task
//!   an outcome asks for. Acknowledging an escalation also acknowledges the
//!   Task it escalated, and the other way round: a critical result is
//!   acknowledged once, by whoever of the team does it.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::{
    CONTACT_PATIENT, ESCALATED_EXT, Flag, READ_EXT, RESULT_ACTION, RESULT_ESCALATION,
    RESULT_OUTCOME_SYSTEM, RESULT_REVIEW, ResultsError, TASK_SYSTEM, now_text, order_code,
    reference_of, report_lock, stored_search, task_code, value_text,
};

/// Items per inbox page.
pub const PAGE_SIZE: usize = 50;

/// Which of a clinician's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Queue {
    /// Results to review (their own requests).
    Mine,
    /// Critical results escalated to them as responsible consultant.
    Team,
    /// What they acknowledged.
    Done,
}

impl Queue {
    pub fn parse(s: &str) -> Option<Queue> {
        match s {
            "mine" | "" => Some(Queue::Mine),
            "team" => Some(Queue::Team),
            "done" => Some(Queue::Done),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Queue::Mine => "mine",
            Queue::Team => "team",
            Queue::Done => "done",
        }
    }
}

/// One inbox row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxItem {
    pub task: String,
    pub report: String,
    pub patient: String,
    pub patient_name: String,
    pub nhs_number: Option<String>,
    pub title: String,
    pub flag: Flag,
    /// `new`, `read`, `acknowledged`, `corrected`, `cancelled`, `escalated`.
    pub state: String,
    /// When it was notified (`authoredOn`).
    pub at: String,
    /// Escalated to the consultant (the original Task).
    pub escalated: bool,
}

/// One page of an inbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    pub page: usize,
    pub more: bool,
    /// Items the caller may not see (not shown).
    pub withheld: usize,
}

pub(crate) fn state_of(task: &Value) -> &'static str {
    let bs = task["businessStatus"]["text"].as_str().unwrap_or("");
    match task["status"].as_str() {
        Some("completed") => "acknowledged",
        Some("cancelled") => "superseded",
        _ if task_code(task) == Some(RESULT_ESCALATION) => "escalated",
        _ if bs == "corrected" => "corrected",
        _ if bs == "cancelled" => "cancelled",
        Some("in-progress") => "read",
        _ => "new",
    }
}

fn has_ext(task: &Value, url: &str) -> bool {
    task["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["url"] == url)
}

fn patient_name(p: &Value) -> String {
    let names = p["name"].as_array().cloned().unwrap_or_default();
    let n = names
        .iter()
        .find(|n| n["use"] == "official")
        .or(names.first())
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(t) = n["text"].as_str() {
        return t.to_owned();
    }
    let family = n["family"].as_str().unwrap_or("").to_uppercase();
    let given: Vec<&str> = n["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match (family.is_empty(), given.is_empty()) {
        (false, false) => format!("{family}, {}", given.join(" ")),
        (false, true) => family,
        (true, false) => given.join(" "),
        (true, true) => "(no name)".to_owned(),
    }
}

/// A Practitioner's name ("Dr Sanjay Mehta"; its text when given).
fn practitioner_name(p: &Value) -> String {
    let n = p["name"]
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(t) = n["text"].as_str() {
        return t.to_owned();
    }
    let parts: Vec<&str> = n["prefix"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(n["given"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .chain(n["family"].as_str())
        .collect();
    if parts.is_empty() {
        format!("Practitioner/{}", p["id"].as_str().unwrap_or(""))
    } else {
        parts.join(" ")
    }
}

fn nhs_number(p: &Value) -> Option<String> {
    p["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == wardline_fhir::NHS_NUMBER_SYSTEM)
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned)
}

/// Page `page` (1-based) of `owner`'s results to review (see the module
/// documentation).
pub fn inbox(
    svc: &FhirService,
    access: &dyn Access,
    owner: &str,
    page: usize,
) -> Result<InboxPage, ResultsError> {
    inbox_queue(svc, access, owner, Queue::Mine, page)
}

/// Page `page` (1-based) of one of `owner`'s queues.
pub fn inbox_queue(
    svc: &FhirService,
    access: &dyn Access,
    owner: &str,
    queue: Queue,
    page: usize,
) -> Result<InboxPage, ResultsError> {
    if !owner.starts_with("Practitioner/") {
        return Err(ResultsError::Invalid(format!(
            "owner '{owner}' is not a Practitioner reference: an inbox belongs to a person on record."
        )));
    }
    let page = page.max(1);
    let (code, status, sort) = match queue {
        Queue::Mine => (
            RESULT_REVIEW,
            "requested,in-progress",
            "business-status,-authored-on",
        ),
        Queue::Team => (
            RESULT_ESCALATION,
            "requested,in-progress",
            "business-status,-authored-on",
        ),
        Queue::Done => (RESULT_REVIEW, "completed", "-modified"),
    };
    let found = svc.search_as(
        access,
        "Task",
        &[
            ("owner", owner.to_owned()),
            ("code", format!("{TASK_SYSTEM}|{code}")),
            ("status", status.to_owned()),
            ("_sort", sort.to_owned()),
            ("_count", PAGE_SIZE.to_string()),
            ("_offset", ((page - 1) * PAGE_SIZE).to_string()),
            ("_include", "Task:patient".to_owned()),
            // Not counted: counting an inbox of 10,000 results costs as
            // much as finding its first page (every match is probed again);
            // the page says whether more follow (BENCHMARKS.md, issue 16).
        ],
    )?;
    let patients: std::collections::HashMap<String, &Value> = found
        .included
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .filter_map(|p| Some((format!("Patient/{}", p["id"].as_str()?), p)))
        .collect();
    let items = found
        .resources
        .iter()
        .map(|t| {
            let patient = reference_of(&t["for"]).unwrap_or("").to_owned();
            let p = patients.get(&patient);
            InboxItem {
                task: t["id"].as_str().unwrap_or("").to_owned(),
                report: crate::fhir::reference_id(&t["focus"], "DiagnosticReport")
                    .unwrap_or("")
                    .to_owned(),
                patient_name: p.map_or_else(|| "(not shown)".to_owned(), |p| patient_name(p)),
                nhs_number: p.and_then(|p| nhs_number(p)),
                patient: patient
                    .strip_prefix("Patient/")
                    .unwrap_or(&patient)
                    .to_owned(),
                title: t["description"].as_str().unwrap_or("Result").to_owned(),
                flag: Flag::of_priority(t["priority"].as_str().unwrap_or("")),
                state: state_of(t).to_owned(),
                at: t["authoredOn"].as_str().unwrap_or("").to_owned(),
                escalated: has_ext(t, ESCALATED_EXT),
            }
        })
        .collect();
    Ok(InboxPage {
        items,
        page,
        more: found.more,
        withheld: found.withheld,
    })
}

/// One analyte of a result as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservationLine {
    pub id: String,
    pub name: String,
    /// The value with its unit (`6.8 mmol/L`).
    pub value: String,
    /// The reference range as written (`3.5–5.3 mmol/L`).
    pub range: Option<String>,
    /// Interpretation codes (`HH`, `L`), `N` left out.
    pub flags: Vec<String>,
    pub flag: Flag,
    /// The flags in words (`critically high`).
    pub flag_words: Option<String>,
    pub status: String,
    /// The previous value of this Observation when it was changed.
    pub earlier: Option<String>,
}

/// A result as [`open`] shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultView {
    pub task: String,
    pub task_status: String,
    pub state: String,
    pub report: String,
    pub title: String,
    pub status: String,
    pub issued: Option<String>,
    pub patient: String,
    pub patient_name: String,
    pub nhs_number: Option<String>,
    pub flag: Flag,
    pub observations: Vec<ObservationLine>,
    pub conclusion: Option<String>,
    /// The Task's notes (what changed, why escalated).
    pub notes: Vec<String>,
    /// Who read it (their name), and when.
    pub read_by: Vec<(String, String)>,
    /// Whose inbox it is in (their name).
    pub owner: Option<String>,
    pub may_acknowledge: bool,
    /// (outcome, by whom (their name), when) once acknowledged.
    pub acknowledged: Option<(String, String, String)>,
    pub escalated: Option<String>,
}

/// Interpretation codes in words.
pub fn flag_words(code: &str) -> Option<&'static str> {
    Some(match code {
        "HH" | "HU" => "critically high",
        "LL" | "LU" => "critically low",
        "AA" => "critically abnormal",
        "H" | "HX" => "high",
        "L" | "LX" => "low",
        "A" => "abnormal",
        ">" => "above the measurable range",
        "<" => "below the measurable range",
        "POS" | "DET" => "positive",
        "R" => "resistant",
        _ => return None,
    })
}

fn range_text(o: &Value) -> Option<String> {
    let r = o["referenceRange"].as_array()?.first()?;
    if let Some(t) = r["text"].as_str() {
        return Some(t.to_owned());
    }
    let low = crate::fhir::quantity_text(&r["low"]);
    let high = crate::fhir::quantity_text(&r["high"]);
    match (low, high) {
        (Some(l), Some(h)) => {
            let unit = crate::fhir::unit_text(&r["high"]).unwrap_or_default();
            let l = l.trim_end_matches(&unit).trim_end().to_owned();
            Some(format!("{l}–{h}"))
        }
        (Some(l), None) => Some(format!("≥ {l}")),
        (None, Some(h)) => Some(format!("≤ {h}")),
        (None, None) => None,
    }
}

/// Who may acknowledge a Task: its owner, or the report's responsible
/// consultant.
fn may_acknowledge(tx: &Tx<'_>, task: &Value, who: &str) -> Result<bool, ResultsError> {
    if reference_of(&task["owner"]) == Some(who) {
        return Ok(true);
    }
    let Some(report) = crate::fhir::reference_id(&task["focus"], "DiagnosticReport") else {
        return Ok(false);
    };
    Ok(super::escalation::responsible_consultant(tx, report)?.as_deref() == Some(who))
}

fn read_entry(who: &str, when: &str) -> Value {
    json!({"url": READ_EXT, "extension": [
        {"url": "who", "valueReference": {"reference": who}},
        {"url": "when", "valueDateTime": when}]})
}

fn read_list(task: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in task["extension"].as_array().into_iter().flatten() {
        if e["url"] != READ_EXT {
            continue;
        }
        let mut who = String::new();
        let mut when = String::new();
        for s in e["extension"].as_array().into_iter().flatten() {
            match s["url"].as_str() {
                Some("who") => who = reference_of(&s["valueReference"]).unwrap_or("").to_owned(),
                Some("when") => when = s["valueDateTime"].as_str().unwrap_or("").to_owned(),
                _ => {}
            }
        }
        out.push((who, when));
    }
    out
}

fn load_task(tx: &mut Tx<'_>, task: &str) -> Result<Value, ResultsError> {
    let t = tx
        .get("Task", task)?
        .ok_or_else(|| ResultsError::NotFound(format!("Task/{task} not found.")))?;
    if !matches!(task_code(&t), Some(RESULT_REVIEW | RESULT_ESCALATION)) {
        return Err(ResultsError::Invalid(format!(
            "Task/{task} is not a result to review."
        )));
    }
    Ok(t)
}

/// Opens a result from the inbox (see the module documentation): the
/// report with its observations, ranges, flags and earlier values; and,
/// when the caller may acknowledge it, records that they read it.
pub fn open(
    svc: &FhirService,
    access: &dyn Access,
    task: &str,
    now: OffsetDateTime,
) -> Result<ResultView, ResultsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "results-open", "R");
    tx.audit_reads();
    let first = load_task(&mut tx, task)?;
    let report_id = crate::fhir::reference_id(&first["focus"], "DiagnosticReport")
        .ok_or_else(|| ResultsError::Invalid(format!("Task/{task} names no report (focus).")))?
        .to_owned();
    tx.lock(&[report_lock(&report_id)])?;
    let mut t = load_task(&mut tx, task)?;
    let report = tx.get("DiagnosticReport", &report_id)?.ok_or_else(|| {
        ResultsError::NotFound(format!("DiagnosticReport/{report_id} not found."))
    })?;
    let who = access.agent().who.clone();
    let may = match &who {
        Some(w) => may_acknowledge(&tx, &t, w)?,
        None => false,
    };
    let now_s = now_text(now);
    if let Some(w) = &who
        && may
        && matches!(t["status"].as_str(), Some("requested" | "in-progress"))
    {
        let already = read_list(&t).iter().any(|(x, _)| x == w);
        if !already || t["status"] == "requested" {
            let mut ext = t["extension"].as_array().cloned().unwrap_or_default();
            if !already {
                ext.push(read_entry(w, &now_s));
            }
            t["extension"] = json!(ext);
            t["status"] = json!("in-progress");
            t["lastModified"] = json!(now_s);
            let flag = Flag::of_priority(t["priority"].as_str().unwrap_or(""));
            t["businessStatus"]["coding"] = json!([order_code(flag, 2)]);
            t = tx.save(t)?.resource;
        }
    }
    let mut observations = Vec::new();
    for r in report["result"].as_array().into_iter().flatten() {
        let Some(id) = crate::fhir::reference_id(r, "Observation") else {
            continue;
        };
        let Some(o) = tx.get("Observation", id)? else {
            continue;
        };
        let version: i64 = o["meta"]["versionId"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let mut earlier = None;
        if version > 1
            && let Some(prev) = tx.vread("Observation", id, version - 1)?
        {
            let was = value_text(&prev);
            if was != value_text(&o) {
                earlier = Some(was);
            }
        }
        let flags: Vec<String> = o["interpretation"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["coding"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["code"].as_str().map(str::to_owned))
            .filter(|c| c != "N")
            .collect();
        let words: Vec<&str> = flags.iter().filter_map(|f| flag_words(f)).collect();
        let value = {
            let mut x = o.clone();
            if let Some(m) = x.as_object_mut() {
                m.remove("interpretation");
            }
            value_text(&x)
        };
        observations.push(ObservationLine {
            id: id.to_owned(),
            name: crate::fhir::concept_text(&o["code"]).unwrap_or_default(),
            value,
            range: range_text(&o),
            flag: Flag::of_observation(&o),
            flag_words: (!words.is_empty()).then(|| words.join(", ")),
            flags,
            status: o["status"].as_str().unwrap_or("").to_owned(),
            earlier,
        });
    }
    let patient_ref = reference_of(&report["subject"]).unwrap_or("").to_owned();
    let patient = match patient_ref.strip_prefix("Patient/") {
        Some(id) => tx.get("Patient", id)?,
        None => None,
    };
    let acknowledged = (t["status"] == "completed").then(|| {
        let mut outcome = String::new();
        let mut by = String::new();
        for o in t["output"].as_array().into_iter().flatten() {
            if let Some(c) = o["valueCodeableConcept"]["coding"]
                .as_array()
                .and_then(|a| a.first())
            {
                outcome = c["display"]
                    .as_str()
                    .or(c["code"].as_str())
                    .unwrap_or("")
                    .to_owned();
            }
            if let Some(r) = reference_of(&o["valueReference"]) {
                by = r.to_owned();
            }
        }
        (
            outcome,
            by,
            t["executionPeriod"]["end"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    });
    let flag = super::report_flag(
        &observations
            .iter()
            .map(|l| {
                json!({"interpretation": [{"coding": l.flags.iter().map(|f| json!({"code": f})).collect::<Vec<_>>()}]})
            })
            .collect::<Vec<_>>(),
    );
    // Who is named, as people read it.
    let mut names: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut name_of = |tx: &mut Tx<'_>, r: &str| -> Result<String, ResultsError> {
        if let Some(n) = names.get(r) {
            return Ok(n.clone());
        }
        let n = match r.strip_prefix("Practitioner/") {
            Some(id) => tx
                .get("Practitioner", id)?
                .map(|p| practitioner_name(&p))
                .unwrap_or_else(|| r.to_owned()),
            None => r.to_owned(),
        };
        names.insert(r.to_owned(), n.clone());
        Ok(n)
    };
    let mut read_by = Vec::new();
    for (who, when) in read_list(&t) {
        read_by.push((name_of(&mut tx, &who)?, when));
    }
    let acknowledged = match acknowledged {
        Some((o, by, at)) => Some((o, name_of(&mut tx, &by)?, at)),
        None => None,
    };
    let owner = match reference_of(&t["owner"]) {
        Some(o) => Some(name_of(&mut tx, o)?),
        None => None,
    };
    let view = ResultView {
        task: task.to_owned(),
        task_status: t["status"].as_str().unwrap_or("").to_owned(),
        state: state_of(&t).to_owned(),
        report: report_id,
        title: crate::fhir::concept_text(&report["code"]).unwrap_or_else(|| "Result".to_owned()),
        status: report["status"].as_str().unwrap_or("").to_owned(),
        issued: report["issued"].as_str().map(str::to_owned),
        patient: patient_ref
            .strip_prefix("Patient/")
            .unwrap_or(&patient_ref)
            .to_owned(),
        patient_name: patient
            .as_ref()
            .map_or_else(|| "(not shown)".to_owned(), patient_name),
        nhs_number: patient.as_ref().and_then(nhs_number),
        flag,
        observations,
        conclusion: report["conclusion"].as_str().map(str::to_owned),
        notes: t["note"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["text"].as_str().map(str::to_owned))
            .collect(),
        read_by,
        owner,
        may_acknowledge: may && matches!(t["status"].as_str(), Some("requested" | "in-progress")),
        acknowledged,
        escalated: t["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"] == ESCALATED_EXT)
            .and_then(|e| e["valueDateTime"].as_str())
            .map(str::to_owned),
    };
    tx.commit()?;
    Ok(view)
}

/// The outcomes of an acknowledgement: (code, display).
pub const OUTCOMES: [(&str, &str); 3] = [
    ("filed", "Filed: no action needed"),
    ("action-required", "Action required"),
    ("contact-patient", "Patient to be contacted"),
];

/// Acknowledges a result (see the module documentation). `note` is
/// required for `action-required` (what is to be done).
pub fn acknowledge(
    svc: &FhirService,
    access: &dyn Access,
    task: &str,
    outcome: &str,
    note: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), ResultsError> {
    let Some((_, display)) = OUTCOMES.iter().find(|(c, _)| *c == outcome) else {
        return Err(ResultsError::Invalid(format!(
            "outcome '{outcome}' is not one of filed, action-required, contact-patient."
        )));
    };
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if outcome == "action-required" && note.is_none() {
        return Err(ResultsError::Invalid(
            "note: say what action is required.".to_owned(),
        ));
    }
    let Some(who) = access.agent().who.clone() else {
        return Err(ResultsError::Forbidden(
            "Only a clinician on record (a Practitioner) can acknowledge a result.".to_owned(),
        ));
    };
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "results-acknowledge", "U");
    let first = load_task(&mut tx, task)?;
    let report_id = crate::fhir::reference_id(&first["focus"], "DiagnosticReport")
        .ok_or_else(|| ResultsError::Invalid(format!("Task/{task} names no report (focus).")))?
        .to_owned();
    tx.lock(&[report_lock(&report_id)])?;
    let t = load_task(&mut tx, task)?;
    // The acknowledger must be allowed to see the result itself (and the
    // audit event names its patient).
    if tx.get("DiagnosticReport", &report_id)?.is_none() {
        return Err(ResultsError::NotFound(format!(
            "DiagnosticReport/{report_id} not found."
        )));
    }
    match t["status"].as_str() {
        Some("completed") => {
            return Err(ResultsError::Conflict(format!(
                "This result was already acknowledged ({}).",
                t["executionPeriod"]["end"].as_str().unwrap_or("earlier")
            )));
        }
        Some("cancelled") => {
            return Err(ResultsError::Conflict(
                "This notification was superseded by a later version of the report: open the newer one in the inbox."
                    .to_owned(),
            ));
        }
        _ => {}
    }
    if !may_acknowledge(&tx, &t, &who)? {
        return Err(ResultsError::Forbidden(
            "Only the clinician this result was sent to, or the patient's responsible consultant, may acknowledge it."
                .to_owned(),
        ));
    }
    if !read_list(&t).iter().any(|(w, _)| *w == who) {
        return Err(ResultsError::Conflict(
            "No acknowledgement without reading: open the result first.".to_owned(),
        ));
    }
    let now_s = now_text(now);
    let code = task_code(&t).unwrap_or(RESULT_REVIEW).to_owned();
    complete(&mut tx, t.clone(), &who, outcome, display, note, &now_s)?;
    // The escalation and what it escalated are acknowledged together.
    let linked: Vec<Value> = stored_search(
        &tx,
        "Task",
        &[("focus", format!("DiagnosticReport/{report_id}"))],
    )?
    .into_iter()
    .filter(|o| matches!(o["status"].as_str(), Some("requested" | "in-progress")))
    .filter(|o| {
        let part_of = |x: &Value, id: &str| {
            x["partOf"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| crate::fhir::reference_id(p, "Task") == Some(id))
        };
        let oid = o["id"].as_str().unwrap_or("");
        part_of(o, task) || part_of(&t, oid)
    })
    .collect();
    for o in linked {
        let via = format!(
            "Acknowledged by {who} through the {} Task/{task}.",
            if code == RESULT_ESCALATION {
                "escalation"
            } else {
                "result"
            }
        );
        let n = match note {
            Some(n) => format!("{via} {n}"),
            None => via,
        };
        complete(&mut tx, o, &who, outcome, display, Some(&n), &now_s)?;
    }
    if outcome != "filed" {
        let follow = if outcome == "contact-patient" {
            (CONTACT_PATIENT, "Contact the patient about a result")
        } else {
            (RESULT_ACTION, "Action after a result")
        };
        let mut f = json!({
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "priority": t["priority"],
            "code": {"coding": [{"system": TASK_SYSTEM, "code": follow.0, "display": follow.1}]},
            "description": format!("{}: {}", follow.1, t["description"].as_str().unwrap_or("result")),
            "focus": t["focus"],
            "for": t["for"],
            "partOf": [{"reference": format!("Task/{task}")}],
            "owner": {"reference": who},
            "requester": {"reference": who},
            "authoredOn": now_s,
            "lastModified": now_s,
        });
        if let Some(n) = note {
            f["note"] = json!([{"time": now_s, "authorReference": {"reference": who}, "text": n}]);
        }
        tx.save(f)?;
    }
    tx.commit()?;
    Ok(())
}

fn complete(
    tx: &mut Tx<'_>,
    mut t: Value,
    who: &str,
    outcome: &str,
    display: &str,
    note: Option<&str>,
    now_s: &str,
) -> Result<(), ResultsError> {
    t["status"] = json!("completed");
    t["lastModified"] = json!(now_s);
    let start = read_list(&t)
        .first()
        .map(|(_, w)| w.clone())
        .unwrap_or_else(|| now_s.to_owned());
    t["executionPeriod"] = json!({"start": start, "end": now_s});
    t["output"] = json!([
        {"type": {"coding": [{"system": RESULT_OUTCOME_SYSTEM, "code": "outcome"}], "text": "Outcome"},
         "valueCodeableConcept": {"coding": [{"system": RESULT_OUTCOME_SYSTEM, "code": outcome, "display": display}]}},
        {"type": {"text": "Acknowledged by"}, "valueReference": {"reference": who}},
    ]);
    let flag = Flag::of_priority(t["priority"].as_str().unwrap_or(""));
    t["businessStatus"]["coding"] = json!([order_code(flag, 3)]);
    if let Some(n) = note {
        let mut notes = t["note"].as_array().cloned().unwrap_or_default();
        notes.push(json!({"time": now_s, "authorReference": {"reference": who}, "text": n}));
        t["note"] = json!(notes);
    }
    tx.save(t)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_of_tasks() {
        let t = |status: &str, bs: &str, code: &str| {
            json!({"status": status, "businessStatus": {"text": bs},
                "code": {"coding": [{"system": TASK_SYSTEM, "code": code}]}})
        };
        assert_eq!(state_of(&t("requested", "critical", RESULT_REVIEW)), "new");
        assert_eq!(
            state_of(&t("in-progress", "critical", RESULT_REVIEW)),
            "read"
        );
        assert_eq!(
            state_of(&t("requested", "corrected", RESULT_REVIEW)),
            "corrected"
        );
        assert_eq!(
            state_of(&t("completed", "corrected", RESULT_REVIEW)),
            "acknowledged"
        );
        assert_eq!(
            state_of(&t("requested", "escalated", RESULT_ESCALATION)),
            "escalated"
        );
    }

    #[test]
    fn ranges_and_flags_in_words() {
        let o = json!({"referenceRange": [{"low": {"value": 3.5, "unit": "mmol/L"}, "high": {"value": 5.3, "unit": "mmol/L"}}]});
        assert_eq!(range_text(&o).as_deref(), Some("3.5–5.3 mmol/L"));
        assert_eq!(flag_words("HH"), Some("critically high"));
        assert_eq!(flag_words("N"), None);
    }

    #[test]
    fn names_as_the_inbox_shows_them() {
        let p = json!({"name": [{"use": "official", "family": "Smith", "given": ["Alice", "May"]}],
            "identifier": [{"system": wardline_fhir::NHS_NUMBER_SYSTEM, "value": "9434765919"}]});
        assert_eq!(patient_name(&p), "SMITH, Alice May");
        assert_eq!(nhs_number(&p).as_deref(), Some("9434765919"));
    }
}
