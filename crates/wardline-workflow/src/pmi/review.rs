//! The duplicate-record review queue: `Task`s, one per pair of patients.
//!
//! A review is a FHIR `Task` (status `requested`, intent `proposal`) with
//! `code` = [`TASK_SYSTEM`]`|`[`DUPLICATE_REVIEW_CODE`], `focus` = one
//! Patient, `input` = the other Patient, the score and the reasons, and the
//! identifier [`DUPLICATE_PAIR_SYSTEM`]`|a:b` (the two ids sorted), so the
//! same pair is raised once, ever: a dismissed review (`completed`, output
//! "not the same person") keeps it from being raised again. The Task names no
//! patient in `for`, so it is outside both patients' compartments (a merge
//! does not repoint it).
//!
//! Its band (`probable` or `possible`, [`Band`]) is an input, and its score
//! is also `Task.businessStatus` coded [`DUPLICATE_SCORE_SYSTEM`]`|0953`
//! (thousandths, four digits), so that the store sorts the queue by it
//! (`_sort=-business-status`) and [`review_queue`] reads it a page at a
//! time, strongest first, however long it is. A scan that meets an open
//! review again brings its score, band and reasons up to date (reviews
//! opened before the score was sortable gain it then).

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::{format_instant, now_ms};
use wardline_fhir::definitions::r4;
use wardline_fhir::search::Handling;
use wardline_store::{PageRequest, Reader};

use super::matching::{Band, Match, score_candidates};
use super::{
    DUPLICATE_PAIR_SYSTEM, DUPLICATE_REVIEW_CODE, PatientSummary, TASK_SYSTEM, fhir_search,
};

/// `Task.businessStatus` of an open review: the match score in thousandths,
/// four digits (`0953`), so that sorting the codes sorts the scores.
pub const DUPLICATE_SCORE_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/duplicate-score";

/// Reviews per page of [`review_queue`].
pub const REVIEW_PAGE_SIZE: usize = 50;

/// One open review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub task_id: String,
    pub a: PatientSummary,
    pub b: PatientSummary,
    pub score: f64,
    pub band: Band,
    pub reasons: Vec<String>,
}

/// One page of the open reviews, strongest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewPage {
    /// This page's reviews. A review whose record was merged since it was
    /// raised is no longer a question and is left out, so a page may hold
    /// fewer than [`REVIEW_PAGE_SIZE`].
    pub reviews: Vec<Review>,
    /// 1-based.
    pub page: usize,
    /// Open reviews in the whole queue, when the store could count them all
    /// for the caller.
    pub total: Option<u64>,
    /// Later pages follow.
    pub more: bool,
}

/// The sortable code of a score.
fn score_code(score: f64) -> String {
    format!("{:04}", (score.clamp(0.0, 1.0) * 1000.0).round() as u32)
}

/// The pair key: the two ids sorted, joined by `:` (never in a FHIR id).
pub(crate) fn pair_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}:{b}")
    } else {
        format!("{b}:{a}")
    }
}

/// Every resource of type `t` matching `params`, page by page inside `tx`
/// (each checked for the caller as it is read).
pub(crate) fn find_all(
    tx: &mut Tx<'_>,
    t: &str,
    params: &[(&str, String)],
    mut each: impl FnMut(&mut Tx<'_>, Value) -> Result<(), FhirError>,
) -> Result<(), FhirError> {
    let pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let q = wardline_fhir::search::parse(r4(), Some(t), &pairs, Handling::Strict)?;
    let mut after_rid = None;
    let mut snapshot_rid = None;
    loop {
        let page = tx.search(
            &q,
            &PageRequest {
                count: 500,
                after_rid,
                snapshot_rid,
                ..PageRequest::default()
            },
        )?;
        snapshot_rid = Some(page.snapshot_rid);
        after_rid = page.resources.last().map(|r| r.rid);
        for r in &page.resources {
            // Through the transaction's checked read.
            if let Some(v) = tx.get(&r.resource_type, &r.id)? {
                each(tx, v)?;
            }
        }
        if !page.has_more || after_rid.is_none() {
            return Ok(());
        }
    }
}

fn review_task(a: &Value, b: &Value, m: &Match) -> Value {
    let id = |v: &Value| {
        v.get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (ia, ib) = (id(a), id(b));
    let (first, second) = if ia <= ib { (&ia, &ib) } else { (&ib, &ia) };
    let name = |v: &Value| PatientSummary::from_resource(v).display_name;
    let band = m.band.unwrap_or(Band::Possible);
    let mut input = vec![
        json!({"type": {"text": "other patient"}, "valueReference": {"reference": format!("Patient/{second}")}}),
        json!({"type": {"text": "match score"}, "valueDecimal": (m.score * 1000.0).round() / 1000.0}),
        json!({"type": {"text": "match band"}, "valueCode": band.code()}),
    ];
    for r in &m.reasons {
        input.push(json!({"type": {"text": "reason"}, "valueString": r}));
    }
    json!({
        "resourceType": "Task",
        "identifier": [{"system": DUPLICATE_PAIR_SYSTEM, "value": pair_key(&ia, &ib)}],
        "status": "requested",
        "intent": "proposal",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": DUPLICATE_REVIEW_CODE,
                             "display": "Review possible duplicate patient records"}]},
        "description": format!("{} and {} may be the same person ({}, {:.0}% match)",
                               name(a), name(b), band.label().to_lowercase(), m.score * 100.0),
        "businessStatus": {
            "coding": [{"system": DUPLICATE_SCORE_SYSTEM, "code": score_code(m.score)}],
            "text": format!("{} ({:.0}% match)", band.label(), m.score * 100.0),
        },
        "focus": {"reference": format!("Patient/{first}")},
        "authoredOn": format_instant(now_ms()),
        "input": input,
    })
}

/// Whether a review Task is still waiting for a person.
fn is_open(task: &Value) -> bool {
    matches!(
        task.get("status").and_then(Value::as_str),
        Some("requested" | "received" | "accepted" | "in-progress")
    )
}

/// An open review brought up to date with a fresh one of the same pair
/// (score, band, reasons, description), or `None` when it is closed or
/// already says the same.
fn refreshed(mut task: Value, fresh: &Value) -> Option<Value> {
    if !is_open(&task) {
        return None;
    }
    let mut changed = false;
    for k in ["input", "businessStatus", "description"] {
        if task.get(k) != fresh.get(k) {
            task[k] = fresh[k].clone();
            changed = true;
        }
    }
    changed.then_some(task)
}

/// Patients examined per transaction by [`scan_duplicates`]: a scan of a
/// million-patient index never holds them all, nor one long transaction.
pub const SCAN_BATCH: usize = 500;

/// What one scan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// Active patients whose candidates were scored.
    pub examined: usize,
    /// Reviews opened.
    pub opened: usize,
}

/// The background job: walks every active patient, [`SCAN_BATCH`] at a time
/// (each batch its own transaction), scores its blocking candidates and opens
/// a review for each pair at or above the threshold that was never queued
/// (or dismissed) before. Returns how many it opened.
pub fn scan_duplicates(svc: &FhirService, access: &dyn Access) -> Result<usize, FhirError> {
    Ok(scan_duplicates_by(svc, access, SCAN_BATCH)?.opened)
}

/// [`scan_duplicates`] with the batch size given, reporting what it did.
pub fn scan_duplicates_by(
    svc: &FhirService,
    access: &dyn Access,
    batch: usize,
) -> Result<ScanReport, FhirError> {
    let mut report = ScanReport::default();
    let mut after: Option<i64> = None;
    loop {
        match scan_batch(svc, access, after, batch.max(1), &mut report)? {
            Some(rid) => after = Some(rid),
            None => return Ok(report),
        }
    }
}

/// Where [`last_scan`] is kept (system key-value data, not FHIR).
const LAST_SCAN: (&str, &str) = ("pmi", "duplicate-scan");

/// When the last scan finished, and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LastScan {
    /// An instant, `2026-11-23T14:05:00.000Z`.
    pub finished: String,
    pub examined: usize,
    pub opened: usize,
}

/// The last finished scan, if any; an unreadable record is an error, not
/// "never ran".
pub fn last_scan(svc: &FhirService) -> Result<Option<LastScan>, FhirError> {
    match svc.system_data().get(LAST_SCAN.0, LAST_SCAN.1)? {
        Some(s) => serde_json::from_str(&s).map(Some).map_err(|e| {
            FhirError::internal(format!(
                "the record of the last duplicate scan is unreadable: {e}"
            ))
        }),
        None => Ok(None),
    }
}

/// One batch: up to `batch` patients stored after `after` (a store row id),
/// in one transaction, added to `report`. Returns where the next batch
/// starts, or `None` at the end; the last batch records [`LastScan`], so
/// that every scan leaves one audit event even when it opens nothing.
fn scan_batch(
    svc: &FhirService,
    access: &dyn Access,
    after: Option<i64>,
    batch: usize,
    report: &mut ScanReport,
) -> Result<Option<i64>, FhirError> {
    svc.transact(access, |tx| {
        tx.set_audit_subtype(
            wardline_core::audit::WARDLINE_SUBTYPE,
            "pmi-duplicate-scan",
            "E",
        );
        let q = wardline_fhir::search::parse(r4(), Some("Patient"), &[], Handling::Strict)?;
        let page = tx.search(
            &q,
            &PageRequest {
                count: batch,
                after_rid: after,
                ..PageRequest::default()
            },
        )?;
        let next = if page.has_more {
            page.resources.last().map(|r| r.rid)
        } else {
            None
        };
        // Pairs opened in this batch (the store is asked about earlier ones).
        let mut opened_now: HashSet<String> = HashSet::new();
        let (mut examined, mut opened) = (0, 0);
        for r in &page.resources {
            // Through the transaction's checked read.
            let Some(p) = tx.get(&r.resource_type, &r.id)? else {
                continue;
            };
            if p.get("active").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            examined += 1;
            let id = p.get("id").and_then(Value::as_str).unwrap_or_default();
            let found = score_candidates(&p, Some(id), Band::Possible, |params| {
                tx.find("Patient", &query_string(&params))
            })?;
            for (other, m) in found {
                let oid = other.get("id").and_then(Value::as_str).unwrap_or_default();
                let key = pair_key(id, oid);
                if opened_now.contains(&key) {
                    continue;
                }
                let known = tx.find(
                    "Task",
                    &query_string(&[(
                        "identifier".to_owned(),
                        format!("{DUPLICATE_PAIR_SYSTEM}|{key}"),
                    )]),
                )?;
                let fresh = review_task(&p, &other, &m);
                if known.is_empty() {
                    tx.save(fresh)?;
                    opened += 1;
                } else {
                    for task in known {
                        if let Some(task) = refreshed(task, &fresh) {
                            tx.save(task)?;
                        }
                    }
                }
                opened_now.insert(key);
            }
        }
        report.examined += examined;
        report.opened += opened;
        if next.is_none() {
            let last = LastScan {
                finished: format_instant(now_ms()),
                examined: report.examined,
                opened: report.opened,
            };
            let text =
                serde_json::to_string(&last).map_err(|e| FhirError::internal(e.to_string()))?;
            tx.kv_put(LAST_SCAN.0, LAST_SCAN.1, &text)?;
        }
        Ok(next)
    })
}

/// `k=v&…`, encoded as `Tx::find` decodes it (form encoding).
fn query_string(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn patient_ref(v: &Value) -> Option<String> {
    crate::fhir::reference_id(v, "Patient").map(str::to_owned)
}

/// Page `page` (1-based) of the open reviews, strongest first: the store
/// sorts the whole queue by score, so the first page holds the strongest
/// matches however many reviews are open.
pub fn review_queue(
    svc: &FhirService,
    access: &dyn Access,
    page: usize,
) -> Result<ReviewPage, FhirError> {
    let page = page.max(1);
    let found = svc.search_as(
        access,
        "Task",
        &[
            ("code", format!("{TASK_SYSTEM}|{DUPLICATE_REVIEW_CODE}")),
            ("status", "requested,received,accepted,in-progress".into()),
            // Strongest first; reviews of equal score in the order raised.
            ("_sort", "-business-status".into()),
            ("_count", REVIEW_PAGE_SIZE.to_string()),
            ("_offset", ((page - 1) * REVIEW_PAGE_SIZE).to_string()),
            ("_total", "accurate".into()),
        ],
    )?;
    let mut pairs = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for t in &found.resources {
        let Some(a) = patient_ref(&t["focus"]) else {
            continue;
        };
        let mut b = None;
        let mut score = 0.0;
        let mut band = None;
        let mut reasons = Vec::new();
        for i in t
            .get("input")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match i.pointer("/type/text").and_then(Value::as_str) {
                Some("other patient") => b = patient_ref(&i["valueReference"]),
                Some("match score") => {
                    score = i.get("valueDecimal").and_then(Value::as_f64).unwrap_or(0.0)
                }
                Some("match band") => {
                    band = i
                        .get("valueCode")
                        .and_then(Value::as_str)
                        .and_then(Band::from_code)
                }
                Some("reason") => reasons.extend(
                    i.get("valueString")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                ),
                _ => {}
            }
        }
        let Some(b) = b else { continue };
        // Reviews raised before there were bands were all probable.
        let band = band.or(Band::of(score)).unwrap_or(Band::Probable);
        for x in [&a, &b] {
            if !ids.contains(x) {
                ids.push(x.clone());
            }
        }
        let task_id = t
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        pairs.push((task_id, a, b, score, band, reasons));
    }
    let mut patients = std::collections::HashMap::new();
    for chunk in ids.chunks(100) {
        for p in fhir_search(
            svc,
            access,
            "Patient",
            vec![
                ("_id".into(), chunk.join(",")),
                ("_count".into(), "100".into()),
            ],
        )? {
            let s = PatientSummary::from_resource(&p);
            patients.insert(s.id.clone(), s);
        }
    }
    let reviews: Vec<Review> = pairs
        .into_iter()
        .filter_map(|(task_id, a, b, score, band, reasons)| {
            Some(Review {
                task_id,
                a: patients.get(&a)?.clone(),
                b: patients.get(&b)?.clone(),
                score,
                band,
                reasons,
            })
        })
        // A pair already merged is no longer a question.
        .filter(|r| r.a.active && r.b.active)
        .collect();
    Ok(ReviewPage {
        reviews,
        page,
        total: found.total,
        more: found.more,
    })
}

/// Closes a review Task with an outcome (`not the same person`, `merged`).
pub(crate) fn close(tx: &mut Tx<'_>, mut task: Value, outcome: &str) -> Result<(), FhirError> {
    task["status"] = json!("completed");
    task["businessStatus"] = json!({"text": outcome});
    task["lastModified"] = json!(format_instant(now_ms()));
    task["output"] = json!([{"type": {"text": "outcome"}, "valueString": outcome}]);
    tx.save(task)?;
    Ok(())
}

/// Marks a review "not the same person": the Task is completed and the pair
/// is never raised again.
pub fn dismiss_review(
    svc: &FhirService,
    access: &dyn Access,
    task_id: &str,
) -> Result<(), FhirError> {
    svc.transact(access, |tx| {
        let task = tx
            .get("Task", task_id)?
            .ok_or_else(|| FhirError::not_found(format!("There is no review {task_id}")))?;
        let is_review = task
            .pointer("/code/coding")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("system").and_then(Value::as_str) == Some(TASK_SYSTEM)
                        && c.get("code").and_then(Value::as_str) == Some(DUPLICATE_REVIEW_CODE)
                })
            });
        if !is_review {
            return Err(FhirError::invalid(format!(
                "Task {task_id} is not a duplicate-record review"
            )));
        }
        if task.get("status").and_then(Value::as_str) == Some("completed") {
            return Err(FhirError::conflict(format!(
                "Review {task_id} was already closed"
            )));
        }
        close(tx, task, "not the same person")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keys_are_symmetric() {
        assert_eq!(pair_key("b", "a"), "a:b");
        assert_eq!(pair_key("a", "b"), "a:b");
        let params = vec![
            ("identifier".to_owned(), "https://x|1 2".to_owned()),
            ("name".to_owned(), "O'Neil & Sons=+%#".to_owned()),
        ];
        let back: Vec<(String, String)> = form_urlencoded::parse(query_string(&params).as_bytes())
            .into_owned()
            .collect();
        assert_eq!(back, params);
    }
}
