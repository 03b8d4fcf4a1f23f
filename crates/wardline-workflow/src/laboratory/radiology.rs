//! Radiology: the worklist of imaging requests and their justification
//! under IR(ME)R 2017.
//!
//! An exposure to ionising radiation must be **justified** by an IR(ME)R
//! practitioner (or an operator under their guidelines) before it is
//! carried out: the referrer's clinical question must be one the
//! examination can answer with a net benefit. The worklist shows each open
//! imaging request (`ServiceRequest` with category SNOMED CT 363679005
//! |Imaging|) with what the referrer answered on the request form (the
//! `QuestionnaireResponse` in `supportingInfo`: clinical indication,
//! pregnancy status, contrast allergy, eGFR, the IR(ME)R clinical question).
//!
//! **The decision is a `Task`** (not an extension on the request: the
//! request is the referrer's record, which radiology staff do not write):
//! `code` `{WL/CodeSystem/task, "irmer-justification"}`, `focus` → the
//! ServiceRequest, `for` → the patient, `requester` → the radiographer who
//! decided, `authoredOn` and `executionPeriod.end` the decision time,
//! `businessStatus` `{WL/CodeSystem/irmer-justification, justified |
//! not-justified}`. Justified: `status` `completed`, `owner` the
//! radiographer. Not justified: a reason is required (`statusReason.text`),
//! and the Task is `requested` with `owner` → the referrer: it is theirs to
//! act on (give more information, or cancel the request); the request is
//! not changed. One decision per request: a second is refused (409) naming
//! the first.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::{LabError, actor, begin, lock, stamp};
use crate::fhir::{concept_text, reference_id};
use crate::pmi::PatientSummary;

/// The task code system (as the directory and the PMI use).
pub const TASK_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/task";
pub const IRMER_CODE: &str = "irmer-justification";
pub const IRMER_OUTCOME: &str = "https://fhir.wardline.invalid/CodeSystem/irmer-justification";
const SNOMED: &str = "http://snomed.info/sct";
/// SNOMED CT 363679005 |Imaging|.
pub const IMAGING_CATEGORY: &str = "363679005";

/// A radiographer's decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Justification {
    pub task: String,
    pub justified: bool,
    pub reason: Option<String>,
    pub by: String,
    pub at: String,
}

/// An imaging request on the worklist.
#[derive(Debug, Clone, Serialize)]
pub struct ImagingRequest {
    pub request: String,
    pub title: String,
    pub patient: String,
    pub patient_name: String,
    pub nhs_number: Option<String>,
    pub priority: String,
    pub authored: Option<String>,
    pub requester: Option<String>,
    pub clinical_details: Option<String>,
    /// (question, answer) as the referrer gave them.
    pub answers: Vec<(String, String)>,
    pub justification: Option<Justification>,
}

fn is_imaging(sr: &Value) -> bool {
    sr["category"].as_array().into_iter().flatten().any(|c| {
        c["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["code"] == IMAGING_CATEGORY)
    })
}

fn justification_of(t: &Value) -> Option<Justification> {
    let code = t["businessStatus"]["coding"][0]["code"].as_str()?;
    Some(Justification {
        task: t["id"].as_str().unwrap_or_default().to_owned(),
        justified: code == "justified",
        reason: t["statusReason"]["text"].as_str().map(str::to_owned),
        by: t["requester"]["display"]
            .as_str()
            .or_else(|| t["requester"]["reference"].as_str())
            .unwrap_or_default()
            .to_owned(),
        at: t["authoredOn"].as_str().unwrap_or_default().to_owned(),
    })
}

fn is_irmer(t: &Value) -> bool {
    t["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["system"] == TASK_SYSTEM && c["code"] == IRMER_CODE)
}

fn answer_text(a: &Value) -> Option<String> {
    for (k, v) in a.as_object()? {
        if let Some(rest) = k.strip_prefix("value") {
            return Some(match (rest, v) {
                ("Boolean", Value::Bool(b)) => if *b { "Yes" } else { "No" }.to_owned(),
                ("Coding", c) => c["display"]
                    .as_str()
                    .or_else(|| c["code"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                (_, Value::String(s)) => s.clone(),
                (_, other) => other.to_string(),
            });
        }
    }
    None
}

/// The answers of a QuestionnaireResponse, in order.
pub fn answers(qr: &Value) -> Vec<(String, String)> {
    qr["item"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let q = i["text"]
                .as_str()
                .or_else(|| i["linkId"].as_str())?
                .to_owned();
            let a = i["answer"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(answer_text)
                .collect::<Vec<_>>()
                .join(", ");
            (!a.is_empty()).then_some((q, a))
        })
        .collect()
}

/// The open imaging requests the caller may see, oldest first, with the
/// referrer's answers and any justification; and how many were withheld.
pub fn worklist(
    svc: &FhirService,
    access: &dyn Access,
) -> Result<(Vec<ImagingRequest>, usize), LabError> {
    let found = svc.search_as(
        access,
        "ServiceRequest",
        &[
            ("category", format!("{SNOMED}|{IMAGING_CATEGORY}")),
            ("status", "active,on-hold".to_owned()),
            ("_sort", "authored".to_owned()),
            ("_count", "100".to_owned()),
            ("_include", "ServiceRequest:subject".to_owned()),
            ("_revinclude", "Task:focus".to_owned()),
        ],
    )?;
    let mut withheld = found.withheld;
    let mut out = Vec::new();
    for sr in &found.resources {
        let id = sr["id"].as_str().unwrap_or_default();
        let pid = reference_id(&sr["subject"], "Patient").unwrap_or_default();
        let pat = found
            .included
            .iter()
            .find(|p| p["resourceType"] == "Patient" && p["id"] == pid)
            .map(PatientSummary::from_resource);
        let justification = found
            .included
            .iter()
            .filter(|t| t["resourceType"] == "Task" && is_irmer(t))
            .find(|t| reference_id(&t["focus"], "ServiceRequest") == Some(id))
            .and_then(justification_of);
        let mut qa = Vec::new();
        for s in sr["supportingInfo"].as_array().into_iter().flatten() {
            if let Some(qid) = reference_id(s, "QuestionnaireResponse") {
                match svc.read_as(access, "QuestionnaireResponse", qid) {
                    Ok(Some(qr)) => qa.extend(answers(&qr)),
                    Ok(None) => {}
                    Err(e) if e.status == 403 => withheld += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        out.push(ImagingRequest {
            request: id.to_owned(),
            title: concept_text(&sr["code"]).unwrap_or_else(|| "Imaging".into()),
            patient: pid.to_owned(),
            patient_name: pat
                .as_ref()
                .map(|p| p.display_name.clone())
                .unwrap_or_else(|| "(not shown)".into()),
            nhs_number: pat.and_then(|p| p.nhs_number),
            priority: sr["priority"].as_str().unwrap_or("routine").to_owned(),
            authored: sr["authoredOn"].as_str().map(str::to_owned),
            requester: sr["requester"]["display"]
                .as_str()
                .or_else(|| sr["requester"]["reference"].as_str())
                .map(str::to_owned),
            clinical_details: sr["note"][0]["text"].as_str().map(str::to_owned),
            answers: qa,
            justification,
        });
    }
    Ok((out, withheld))
}

/// Records the justification decision on an imaging request now.
pub fn justify(
    svc: &FhirService,
    access: &dyn Access,
    request: &str,
    justified: bool,
    reason: Option<&str>,
) -> Result<Justification, LabError> {
    justify_at(svc, access, request, justified, reason, svc.now())
}

/// [`justify`] at a given time.
pub fn justify_at(
    svc: &FhirService,
    access: &dyn Access,
    request: &str,
    justified: bool,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<Justification, LabError> {
    let mut tx = begin(svc, access, "radiology-justify", "C")?;
    let j = justify_in(&mut tx, request, justified, reason, now)?;
    tx.commit()?;
    Ok(j)
}

/// [`justify`] inside a transaction.
pub fn justify_in(
    tx: &mut Tx<'_>,
    request: &str,
    justified: bool,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<Justification, LabError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if !justified && reason.is_none() {
        return Err(LabError::invalid(
            "Reason: say why the exposure is not justified (what the referrer must add or change).",
        ));
    }
    if reason.is_some_and(|r| r.chars().count() > 2000) {
        return Err(LabError::invalid("Reason: at most 2,000 characters."));
    }
    lock(tx, &[format!("ServiceRequest/{request}")])?;
    let sr = tx
        .get("ServiceRequest", request)?
        .ok_or_else(|| LabError::not_found(format!("There is no request {request}.")))?;
    if !is_imaging(&sr) {
        return Err(LabError::conflict(
            "This is not an imaging request: IR(ME)R justification is for imaging.",
        ));
    }
    if !matches!(sr["status"].as_str(), Some("active" | "on-hold")) {
        return Err(LabError::conflict(format!(
            "The request is {}: only an open request is justified.",
            sr["status"].as_str().unwrap_or("closed")
        )));
    }
    let earlier = tx.find(
        "Task",
        &format!("focus=ServiceRequest/{request}&code={TASK_SYSTEM}|{IRMER_CODE}"),
    )?;
    if let Some(j) = earlier.iter().find_map(justification_of) {
        return Err(LabError::conflict(format!(
            "The request was already {} by {} at {}.",
            if j.justified {
                "justified"
            } else {
                "found not justified"
            },
            j.by,
            j.at
        )));
    }
    let patient = reference_id(&sr["subject"], "Patient")
        .ok_or_else(|| LabError::conflict("The request names no patient."))?
        .to_owned();
    let (by, _) = actor(tx.access());
    let at = stamp(now);
    let (code, display) = if justified {
        ("justified", "Justified")
    } else {
        ("not-justified", "Not justified")
    };
    let mut task = json!({
        "resourceType": "Task",
        "status": if justified { "completed" } else { "requested" },
        "intent": "order",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": IRMER_CODE, "display": "IR(ME)R justification of an imaging request"}]},
        "focus": {"reference": format!("ServiceRequest/{request}")},
        "for": {"reference": format!("Patient/{patient}")},
        "authoredOn": at,
        "lastModified": at,
        "requester": by,
        "businessStatus": {"coding": [{"system": IRMER_OUTCOME, "code": code, "display": display}], "text": display},
        "executionPeriod": {"end": at},
    });
    task["owner"] = if justified {
        by.clone()
    } else {
        sr["requester"].clone()
    };
    if let Some(r) = reason {
        task["statusReason"] = json!({"text": r});
    }
    let saved = tx.save(task)?;
    Ok(Justification {
        task: saved.id,
        justified,
        reason: reason.map(str::to_owned),
        by: by["display"].as_str().unwrap_or_default().to_owned(),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_words() {
        let qr = json!({"resourceType": "QuestionnaireResponse", "item": [
            {"linkId": "clinical-indication", "text": "Clinical indication", "answer": [{"valueString": "Cough, fever"}]},
            {"linkId": "pregnancy", "answer": [{"valueCoding": {"code": "not-pregnant", "display": "Not pregnant"}}]},
            {"linkId": "contrast-allergy", "text": "Contrast allergy", "answer": [{"valueBoolean": false}]},
            {"linkId": "egfr", "text": "eGFR", "answer": [{"valueDecimal": 72}]},
            {"linkId": "empty", "text": "Nothing"}
        ]});
        assert_eq!(
            answers(&qr),
            vec![
                ("Clinical indication".to_owned(), "Cough, fever".to_owned()),
                ("pregnancy".to_owned(), "Not pregnant".to_owned()),
                ("Contrast allergy".to_owned(), "No".to_owned()),
                ("eGFR".to_owned(), "72".to_owned()),
            ]
        );
    }
}
