//! The pharmacist's clinical screening of prescriptions.
//!
//! # The model
//!
//! * The verdict is [`SCREENING_EXT`] on the `MedicationRequest`
//!   (sub-extensions `status` `screened` | `queried`, `by` the pharmacist's
//!   `Practitioner`, `at` the instant); none means *unscreened*
//!   ([`super::screening_status`] is the one reading). Screening writes that
//!   extension (and a `note`, when the pharmacist adds one) and nothing else
//!   of the prescription.
//! * An annotation is a `note` (`authorReference`, `time`, `text`).
//! * A query to the prescriber is a `Task` (`code` [`PHARMACY_QUERY_CODE`]
//!   of `pmi::TASK_SYSTEM`, `status` `requested`, `intent` `order`, `focus`
//!   the prescription, `for` the patient, `encounter`, `requester` the
//!   pharmacist, `owner` the prescriber (the prescription's `requester`),
//!   `description` the question), and the prescription's screening becomes
//!   `queried`. The prescriber answers it ([`resolve_query`]): the Task
//!   becomes `completed` with the answer in `output[0].valueString`; the
//!   prescription stays `queried` until a pharmacist reads the answer and
//!   screens it (or queries again) — an answer is not a screening. A
//!   prescription changed in answer is a new `MedicationRequest` (see the
//!   lifecycle in [`super`]) and so starts unscreened.
//! * Screening closes the prescription's open queries (`cancelled`, reason
//!   "screened").
//!
//! # Rules
//!
//! * Only a holder of the `ScreenPrescriptions` activity (pharmacists)
//!   changes [`SCREENING_EXT`]: the policy refuses any write of a
//!   MedicationRequest that adds, removes or changes it without that
//!   activity (`wardline_auth::rbac::screening_permitted`), on every channel.
//! * Only a prescription still in force (`active`, `on-hold`, or a `draft`
//!   discharge prescription waiting to be released) is screened or queried.
//! * Each action locks the prescription (`MedicationRequest/{id}`), reads it
//!   in the transaction and saves it with `tx.save` (so a prescriber's change
//!   at the same moment is seen, or fails the version check). Audit subtypes
//!   `medicines-screen` (screen, annotate) and `medicines-query` (query,
//!   answer).
//!
//! # The worklist
//!
//! [`worklist`]: prescriptions `active` (and `draft` discharge ones) whose
//! screening is `unscreened` or `queried`, oldest day first and, within a
//! day, high-risk medicines first, then by time; with patient, ward and
//! bed, medicine, dose, prescriber and age. Filtered by ward.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::formulary::Entry;
use super::{MedicinesError, PHARMACY_QUERY_CODE, SCREENING_EXT, screening_status};
use crate::fhir::{concept_text, quantity_text, reference_id};
use crate::pmi::TASK_SYSTEM;

/// Open Task statuses (a query not yet answered).
const OPEN_TASK: &str = "requested,received,accepted,ready,in-progress,on-hold";

// ---------------------------------------------------------------- reading

/// `now` as a FHIR instant to the second, UTC.
pub fn fhir_time(now: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(now)
}

fn ms_of(now: OffsetDateTime) -> i64 {
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn parse_ms(s: &str) -> Option<i64> {
    wardline_fhir::datetime::parse_range(s).map(|r| r.0)
}

pub use super::prescribe::is_discharge;

/// Whether a prescription in this state is screened: one in force
/// (`active`, `on-hold`) or a discharge prescription waiting (`draft`).
pub fn screenable(mr: &Value) -> bool {
    match mr["status"].as_str() {
        Some("active" | "on-hold") => true,
        Some("draft") => is_discharge(mr),
        _ => false,
    }
}

/// The medicine's name as the prescription gives it (the reference's
/// display, or a `medicationCodeableConcept`'s text).
pub fn medicine_text(mr: &Value) -> String {
    mr["medicationReference"]["display"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| concept_text(&mr["medicationCodeableConcept"]))
        .or_else(|| {
            mr["medicationReference"]["reference"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Unnamed medicine".to_owned())
}

/// The dose as the chart writes it: the dosage's `text` when given,
/// otherwise built from the dose (or range, or rate), route and timing.
pub fn dose_text(mr: &Value) -> String {
    let d = &mr["dosageInstruction"][0];
    if let Some(t) = d["text"].as_str().filter(|t| !t.trim().is_empty()) {
        return t.to_owned();
    }
    let dr = &d["doseAndRate"][0];
    let mut parts: Vec<String> = Vec::new();
    if let Some(q) = quantity_text(&dr["doseQuantity"]) {
        parts.push(q);
    } else if let (Some(lo), Some(hi)) = (
        quantity_text(&dr["doseRange"]["low"]),
        quantity_text(&dr["doseRange"]["high"]),
    ) {
        parts.push(format!("{lo} to {hi}"));
    }
    if let Some(r) = quantity_text(&dr["rateQuantity"]) {
        parts.push(format!("at {r}"));
    }
    if let Some(r) = concept_text(&d["route"]) {
        parts.push(r);
    }
    let rep = &d["timing"]["repeat"];
    if let Some(times) = rep["timeOfDay"].as_array().filter(|t| !t.is_empty()) {
        let ts: Vec<&str> = times
            .iter()
            .filter_map(Value::as_str)
            .map(|t| t.get(..5).unwrap_or(t))
            .collect();
        parts.push(format!("at {}", ts.join(", ")));
    }
    if d["asNeededBoolean"] == true || d.get("asNeededCodeableConcept").is_some() {
        parts.push("when required".to_owned());
        if let Some(why) = concept_text(&d["asNeededCodeableConcept"]) {
            parts.push(format!("for {why}"));
        }
    }
    if rep["count"] == 1 || d["timing"].get("event").is_some() {
        parts.push("once only".to_owned());
    }
    if parts.is_empty() {
        "See the prescription".to_owned()
    } else {
        parts.join(" ")
    }
}

fn screening_part<'a>(mr: &'a Value, part: &str) -> Option<&'a Value> {
    mr["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == SCREENING_EXT)?["extension"]
        .as_array()?
        .iter()
        .find(|s| s["url"] == part)
}

/// Who screened (or queried) the prescription and when: (`Practitioner/…`, instant).
pub fn screened_by(mr: &Value) -> Option<(String, String)> {
    let by = screening_part(mr, "by")?["valueReference"]["reference"].as_str()?;
    let at = screening_part(mr, "at")?["valueDateTime"].as_str()?;
    Some((by.to_owned(), at.to_owned()))
}

fn set_screening(mr: &mut Value, status: &str, by: Option<&str>, now: OffsetDateTime) {
    let mut subs = vec![json!({"url": "status", "valueCode": status})];
    if let Some(b) = by {
        subs.push(json!({"url": "by", "valueReference": {"reference": b}}));
    }
    subs.push(json!({"url": "at", "valueDateTime": fhir_time(now)}));
    let ext = json!({"url": SCREENING_EXT, "extension": subs});
    match mr.get_mut("extension").and_then(Value::as_array_mut) {
        Some(es) => {
            es.retain(|e| e["url"] != SCREENING_EXT);
            es.push(ext);
        }
        None => mr["extension"] = json!([ext]),
    }
}

fn push_note(mr: &mut Value, text: &str, by: Option<&str>, now: OffsetDateTime) {
    let mut note = json!({"text": text, "time": fhir_time(now)});
    if let Some(w) = by {
        note["authorReference"] = json!({"reference": w});
    }
    match mr.get_mut("note").and_then(Value::as_array_mut) {
        Some(ns) => ns.push(note),
        None => mr["note"] = json!([note]),
    }
}

fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, MedicinesError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

/// Locks and reads the prescription in `tx`; refuses one not in force.
fn in_force(tx: &mut Tx<'_>, id: &str) -> Result<Value, MedicinesError> {
    tx.lock(&[format!("MedicationRequest/{id}")])?;
    let mr = tx.get("MedicationRequest", id)?.ok_or_else(|| {
        MedicinesError::NotFound(format!("There is no prescription with id {id}."))
    })?;
    if !screenable(&mr) {
        return Err(MedicinesError::Conflict(format!(
            "This prescription is {} and no longer in force: there is nothing to screen.",
            mr["status"].as_str().unwrap_or("of unknown status")
        )));
    }
    Ok(mr)
}

fn open_queries_in(tx: &mut Tx<'_>, prescription: &str) -> Result<Vec<Value>, MedicinesError> {
    Ok(tx.find(
        "Task",
        &format!(
            "focus=MedicationRequest/{prescription}&code={TASK_SYSTEM}|{PHARMACY_QUERY_CODE}&status={OPEN_TASK}"
        ),
    )?)
}

// ---------------------------------------------------------------- screening

/// Marks the prescription screened by the person signed in, now; `note`
/// is kept as an annotation.
pub fn screen(
    svc: &FhirService,
    access: &dyn Access,
    prescription: &str,
    note: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), MedicinesError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "medicines-screen", "U")?;
    screen_in(&mut tx, prescription, who.as_deref(), note, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of screening, in `tx` (see the module documentation). `by` is
/// the pharmacist's `Practitioner/…`.
pub fn screen_in(
    tx: &mut Tx<'_>,
    prescription: &str,
    by: Option<&str>,
    note: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), MedicinesError> {
    let mut mr = in_force(tx, prescription)?;
    set_screening(&mut mr, "screened", by, now);
    if let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) {
        push_note(&mut mr, n, by, now);
    }
    tx.save(mr)?;
    for mut t in open_queries_in(tx, prescription)? {
        t["status"] = json!("cancelled");
        t["statusReason"] = json!({"text": "The pharmacist screened the prescription."});
        t["lastModified"] = json!(fhir_time(now));
        tx.save(t)?;
    }
    Ok(())
}

/// Adds an annotation (a `note`) to the prescription, by the person signed in.
pub fn annotate(
    svc: &FhirService,
    access: &dyn Access,
    prescription: &str,
    text: &str,
    now: OffsetDateTime,
) -> Result<(), MedicinesError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "medicines-screen", "U")?;
    annotate_in(&mut tx, prescription, text, who.as_deref(), now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of annotating, in `tx`.
pub fn annotate_in(
    tx: &mut Tx<'_>,
    prescription: &str,
    text: &str,
    by: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), MedicinesError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(MedicinesError::Invalid("Write the annotation.".into()));
    }
    let mut mr = in_force(tx, prescription)?;
    push_note(&mut mr, text, by, now);
    tx.save(mr)?;
    Ok(())
}

/// Queries the prescription with its prescriber, by the person signed in;
/// returns the query `Task`'s id.
pub fn query(
    svc: &FhirService,
    access: &dyn Access,
    prescription: &str,
    question: &str,
    now: OffsetDateTime,
) -> Result<String, MedicinesError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "medicines-query", "C")?;
    let id = query_in(&mut tx, prescription, question, who.as_deref(), now)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of querying, in `tx`: the prescription becomes `queried` and a
/// Task to its prescriber holds the question.
pub fn query_in(
    tx: &mut Tx<'_>,
    prescription: &str,
    question: &str,
    by: Option<&str>,
    now: OffsetDateTime,
) -> Result<String, MedicinesError> {
    let question = question.trim();
    if question.is_empty() {
        return Err(MedicinesError::Invalid(
            "Write the question for the prescriber.".into(),
        ));
    }
    let mut mr = in_force(tx, prescription)?;
    let Some(owner) = mr["requester"]["reference"].as_str().map(str::to_owned) else {
        return Err(MedicinesError::Conflict(
            "The prescription names no prescriber to ask.".into(),
        ));
    };
    set_screening(&mut mr, "queried", by, now);
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": PHARMACY_QUERY_CODE,
            "display": "Pharmacist's query about a prescription"}]},
        "description": question,
        "focus": {"reference": format!("MedicationRequest/{prescription}"),
            "display": medicine_text(&mr)},
        "for": mr["subject"].clone(),
        "authoredOn": fhir_time(now),
        "lastModified": fhir_time(now),
        "owner": {"reference": owner},
    });
    if mr.get("encounter").is_some() {
        task["encounter"] = mr["encounter"].clone();
    }
    if let Some(b) = by {
        task["requester"] = json!({"reference": b});
    }
    tx.save(mr)?;
    let saved = tx.save(task)?;
    Ok(saved.id)
}

/// The prescriber answers a query, now, as the person signed in.
pub fn resolve_query(
    svc: &FhirService,
    access: &dyn Access,
    task: &str,
    answer: &str,
    now: OffsetDateTime,
) -> Result<(), MedicinesError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "medicines-query", "U")?;
    resolve_query_in(&mut tx, task, answer, who.as_deref(), now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of answering a query, in `tx`: the Task is completed with the
/// answer; the prescription stays `queried` for the pharmacist to screen.
pub fn resolve_query_in(
    tx: &mut Tx<'_>,
    task: &str,
    answer: &str,
    by: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), MedicinesError> {
    let answer = answer.trim();
    if answer.is_empty() {
        return Err(MedicinesError::Invalid(
            "Write your answer to the pharmacist.".into(),
        ));
    }
    tx.lock(&[format!("Task/{task}")])?;
    let mut t = tx
        .get("Task", task)?
        .filter(|t| {
            t["code"]["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["system"] == TASK_SYSTEM && c["code"] == PHARMACY_QUERY_CODE)
        })
        .ok_or_else(|| MedicinesError::NotFound(format!("There is no pharmacy query {task}.")))?;
    let status = t["status"].as_str().unwrap_or_default();
    if !OPEN_TASK.split(',').any(|s| s == status) {
        return Err(MedicinesError::Conflict(format!(
            "This query is already closed ({status})."
        )));
    }
    t["status"] = json!("completed");
    t["lastModified"] = json!(fhir_time(now));
    t["output"] = json!([{"type": {"text": "answer"}, "valueString": answer}]);
    let mut note = json!({"text": answer, "time": fhir_time(now)});
    if let Some(b) = by {
        note["authorReference"] = json!({"reference": b});
    }
    t["note"] = json!([note]);
    tx.save(t)?;
    Ok(())
}

// ---------------------------------------------------------------- worklist

/// One prescription waiting for screening.
#[derive(Debug, Clone, Serialize)]
pub struct WorkItem {
    pub prescription: String,
    pub patient_id: String,
    pub patient: String,
    pub nhs_number: Option<String>,
    pub ward_id: Option<String>,
    pub ward: Option<String>,
    pub bed: Option<String>,
    pub medicine: String,
    pub dose: String,
    pub prescriber: Option<String>,
    pub authored_on: String,
    /// Minutes since it was prescribed.
    pub age_minutes: i64,
    pub high_risk: bool,
    pub discharge: bool,
    /// `unscreened` or `queried`.
    pub screening: String,
    /// The open query's question, or the last answered one's answer.
    pub query: Option<QueryState>,
}

/// A query on a prescription, as the worklist shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueryState {
    pub task: String,
    pub question: String,
    pub answer: Option<String>,
}

/// The worklist and how many prescriptions the caller may not see.
#[derive(Debug, Clone, Serialize)]
pub struct Worklist {
    pub items: Vec<WorkItem>,
    pub withheld: usize,
}

/// Prescriptions waiting for screening (see the module documentation), on
/// `place` when given: a ward `Location` id, or a site's (every ward of
/// it). Every page of the search is read: a long list is never cut short.
pub fn worklist(
    svc: &FhirService,
    access: &dyn Access,
    place: Option<&str>,
    now: OffsetDateTime,
) -> Result<Worklist, MedicinesError> {
    let wards: Option<std::collections::HashSet<String>> = match place {
        None => None,
        Some(p) => {
            let sites = crate::adt::sites(svc, access)
                .map_err(|e| MedicinesError::Forbidden(e.to_string()))?;
            Some(match sites.into_iter().find(|s| s.id == p) {
                Some(site) => site.wards.into_iter().map(|w| w.id).collect(),
                None => std::iter::once(p.to_owned()).collect(),
            })
        }
    };
    let found = crate::fhir::search_as_all(
        svc,
        access,
        "MedicationRequest",
        &[
            ("status", "active,draft".to_owned()),
            ("_include", "MedicationRequest:subject".to_owned()),
            ("_include", "MedicationRequest:requester".to_owned()),
            ("_include", "MedicationRequest:medication".to_owned()),
        ],
    )?;
    let (resources, included, withheld) = (found.resources, found.included, found.withheld);
    let by_key = |t: &str| -> HashMap<String, &Value> {
        included
            .iter()
            .filter(|r| r["resourceType"] == t)
            .filter_map(|r| Some((r["id"].as_str()?.to_owned(), r)))
            .collect()
    };
    let patients = by_key("Patient");
    let practitioners = by_key("Practitioner");
    let medications = by_key("Medication");
    let mut stays: HashMap<String, Option<crate::adt::Stay>> = HashMap::new();
    let now_ms = ms_of(now);
    let mut items = Vec::new();
    for mr in &resources {
        let state = screening_status(mr);
        if !(screenable(mr) && mr["status"] != "on-hold") || state == "screened" {
            continue;
        }
        let id = mr["id"].as_str().unwrap_or_default().to_owned();
        let patient_id = reference_id(&mr["subject"], "Patient")
            .unwrap_or_default()
            .to_owned();
        let p = patients.get(&patient_id);
        let stay = match reference_id(&mr["encounter"], "Encounter") {
            Some(e) => stays
                .entry(e.to_owned())
                .or_insert_with(|| crate::adt::stay(svc, access, e).ok())
                .clone(),
            None => None,
        };
        let ward_id = stay.as_ref().and_then(|s| s.ward_id.clone());
        if let Some(w) = &wards
            && !ward_id.as_deref().is_some_and(|id| w.contains(id))
        {
            continue;
        }
        let entry = reference_id(&mr["medicationReference"], "Medication")
            .and_then(|m| medications.get(m))
            .and_then(|m| Entry::from_medication(m));
        let authored = mr["authoredOn"].as_str().unwrap_or_default().to_owned();
        let age = parse_ms(&authored).map_or(0, |a| (now_ms - a) / 60_000);
        let query = if state == "queried" {
            latest_query(svc, access, &id)?
        } else {
            None
        };
        items.push(WorkItem {
            prescription: id,
            patient: p
                .and_then(|p| crate::orders::request::person_name(p))
                .unwrap_or_else(|| patient_id.clone()),
            nhs_number: p.and_then(|p| {
                p["identifier"]
                    .as_array()?
                    .iter()
                    .find(|i| i["system"] == wardline_fhir::NHS_NUMBER_SYSTEM)?["value"]
                    .as_str()
                    .map(str::to_owned)
            }),
            patient_id,
            ward_id,
            ward: stay.as_ref().and_then(|s| s.ward.clone()),
            bed: stay.as_ref().and_then(|s| s.bed.clone()),
            medicine: entry
                .as_ref()
                .map(|e| e.name().to_owned())
                .unwrap_or_else(|| medicine_text(mr)),
            dose: dose_text(mr),
            prescriber: reference_id(&mr["requester"], "Practitioner")
                .and_then(|r| practitioners.get(r))
                .and_then(|p| crate::orders::request::person_name(p)),
            authored_on: authored,
            age_minutes: age,
            high_risk: entry.as_ref().is_some_and(|e| e.high_risk),
            discharge: is_discharge(mr),
            screening: state.to_owned(),
            query,
        });
    }
    sort_worklist(&mut items);
    Ok(Worklist { items, withheld })
}

/// Oldest day first; within a day high-risk first, then oldest first.
pub fn sort_worklist(items: &mut [WorkItem]) {
    items.sort_by(|a, b| {
        let day = |i: &WorkItem| i.authored_on.get(..10).unwrap_or("").to_owned();
        day(a)
            .cmp(&day(b))
            .then(b.high_risk.cmp(&a.high_risk))
            .then(a.authored_on.cmp(&b.authored_on))
            .then(a.prescription.cmp(&b.prescription))
    });
}

fn latest_query(
    svc: &FhirService,
    access: &dyn Access,
    prescription: &str,
) -> Result<Option<QueryState>, MedicinesError> {
    let found = svc.search_as(
        access,
        "Task",
        &[
            ("focus", format!("MedicationRequest/{prescription}")),
            ("code", format!("{TASK_SYSTEM}|{PHARMACY_QUERY_CODE}")),
            ("_sort", "-_lastUpdated".to_owned()),
            ("_count", "1".to_owned()),
        ],
    )?;
    Ok(found.resources.first().map(query_state))
}

fn query_state(t: &Value) -> QueryState {
    QueryState {
        task: t["id"].as_str().unwrap_or_default().to_owned(),
        question: t["description"].as_str().unwrap_or_default().to_owned(),
        answer: t["output"][0]["valueString"].as_str().map(str::to_owned),
    }
}

// ---------------------------------------------------------------- queries

/// An open query, as its prescriber sees it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenQuery {
    pub task: String,
    pub prescription: String,
    pub medicine: String,
    pub patient_id: String,
    pub question: String,
    pub asked_by: Option<String>,
    pub asked_at: String,
}

/// The open pharmacy queries owned by `owner` (`Practitioner/…`), or all
/// the caller may see when `None`; oldest first.
pub fn open_queries(
    svc: &FhirService,
    access: &dyn Access,
    owner: Option<&str>,
) -> Result<Vec<OpenQuery>, MedicinesError> {
    let mut params = vec![
        ("code", format!("{TASK_SYSTEM}|{PHARMACY_QUERY_CODE}")),
        ("status", OPEN_TASK.to_owned()),
        ("_include", "Task:requester".to_owned()),
        ("_sort", "authored-on".to_owned()),
        ("_count", "500".to_owned()),
    ];
    if let Some(o) = owner {
        params.push(("owner", o.to_owned()));
    }
    let found = svc.search_as(access, "Task", &params)?;
    Ok(found
        .resources
        .iter()
        .map(|t| OpenQuery {
            task: t["id"].as_str().unwrap_or_default().to_owned(),
            prescription: reference_id(&t["focus"], "MedicationRequest")
                .unwrap_or_default()
                .to_owned(),
            medicine: t["focus"]["display"]
                .as_str()
                .unwrap_or("A prescription")
                .to_owned(),
            patient_id: reference_id(&t["for"], "Patient")
                .unwrap_or_default()
                .to_owned(),
            question: t["description"].as_str().unwrap_or_default().to_owned(),
            asked_by: reference_id(&t["requester"], "Practitioner").and_then(|id| {
                found
                    .included
                    .iter()
                    .find(|p| p["resourceType"] == "Practitioner" && p["id"] == id)
                    .and_then(crate::orders::request::person_name)
            }),
            asked_at: t["authoredOn"].as_str().unwrap_or_default().to_owned(),
        })
        .collect())
}

/// The queries of one prescription (open and answered), newest first.
pub fn queries_of(
    svc: &FhirService,
    access: &dyn Access,
    prescription: &str,
) -> Result<Vec<QueryState>, MedicinesError> {
    let found = svc.search_as(
        access,
        "Task",
        &[
            ("focus", format!("MedicationRequest/{prescription}")),
            ("code", format!("{TASK_SYSTEM}|{PHARMACY_QUERY_CODE}")),
            ("_sort", "-_lastUpdated".to_owned()),
            ("_count", "50".to_owned()),
        ],
    )?;
    Ok(found.resources.iter().map(query_state).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, authored: &str, high: bool) -> WorkItem {
        WorkItem {
            prescription: id.into(),
            patient_id: "p".into(),
            patient: "P".into(),
            nhs_number: None,
            ward_id: None,
            ward: None,
            bed: None,
            medicine: "m".into(),
            dose: "d".into(),
            prescriber: None,
            authored_on: authored.into(),
            age_minutes: 0,
            high_risk: high,
            discharge: false,
            screening: "unscreened".into(),
            query: None,
        }
    }

    #[test]
    fn oldest_day_first_then_high_risk_within_the_day() {
        let mut v = vec![
            item("a", "2026-03-02T08:00:00Z", false),
            item("b", "2026-03-02T12:00:00Z", true),
            item("c", "2026-03-01T23:00:00Z", false),
            item("d", "2026-03-02T07:00:00Z", false),
        ];
        sort_worklist(&mut v);
        let ids: Vec<&str> = v.iter().map(|i| i.prescription.as_str()).collect();
        assert_eq!(ids, ["c", "b", "d", "a"]);
    }

    #[test]
    fn screening_keeps_one_extension_and_the_others() {
        let mut mr = json!({"extension": [{"url": "x", "valueBoolean": true}]});
        let t = time::macros::datetime!(2026-03-01 09:00 UTC);
        set_screening(&mut mr, "queried", Some("Practitioner/ph"), t);
        set_screening(&mut mr, "screened", Some("Practitioner/ph"), t);
        assert_eq!(mr["extension"].as_array().unwrap().len(), 2);
        assert_eq!(screening_status(&mr), "screened");
        assert_eq!(
            screened_by(&mr),
            Some(("Practitioner/ph".into(), "2026-03-01T09:00:00Z".into()))
        );
    }

    #[test]
    fn a_discharge_draft_is_screenable_an_inpatient_draft_is_not() {
        let tto = json!({"status": "draft", "category": [{"coding": [{"system": super::super::CATEGORY_SYSTEM, "code": "discharge"}]}]});
        assert!(screenable(&tto));
        assert!(!screenable(&json!({"status": "draft"})));
        assert!(!screenable(&json!({"status": "stopped"})));
        assert!(screenable(&json!({"status": "active"})));
    }

    #[test]
    fn dose_text_reads_the_structure() {
        let mr = json!({"dosageInstruction": [{
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "g"}}],
            "route": {"text": "Oral"},
            "timing": {"repeat": {"timeOfDay": ["08:00:00", "14:00:00"]}}}]});
        assert_eq!(dose_text(&mr), "1 g Oral at 08:00, 14:00");
        let prn = json!({"dosageInstruction": [{"asNeededBoolean": true,
            "doseAndRate": [{"doseQuantity": {"value": 10, "unit": "mg"}}]}]});
        assert_eq!(dose_text(&prn), "10 mg when required");
    }
}
