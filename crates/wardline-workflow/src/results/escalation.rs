//! Escalation of critical results nobody has acknowledged.
//!
//! A critical inbox Task ([`super::RESULT_REVIEW`], `priority` `stat`) still
//! `requested` or `in-progress` when `limit` has passed since its
//! `authoredOn` is escalated **once**: a Task [`super::RESULT_ESCALATION`]
//! (`priority` `stat`, `partOf` the original, `owner` the responsible
//! consultant) is created, and the original gets extension
//! [`super::ESCALATED_EXT`] (valueDateTime), which is what makes it once: the
//! check and the write happen under the report's lock, in one transaction.
//!
//! The **responsible consultant** is the attending consultant of the
//! report's encounter (or its request's): `Encounter.participant` of type
//! `ATND`, as ADT and HL7 PV1-7 record it; failing that, the requester. A
//! consultant firm is represented by its consultant, so "the team" is the
//! consultant's escalation queue (the inbox's Team tab) — Wardline has no
//! firm membership to do more with, and says so rather than guess.
//!
//! The job (`wardline serve`, every minute, `--critical-result-escalation-minutes`)
//! and the CLI (`wardline results escalate --now …`) call [`escalate_due`]
//! with the clock injected; nothing here reads the wall clock.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::{
    ESCALATED_EXT, Flag, RESULT_ESCALATION, RESULT_REVIEW, ResultsError, TASK_SYSTEM, now_text,
    order_code, reference_of, report_lock, stored, stored_search, target_in, task_code,
};

/// The attending consultant (`Practitioner/…`) of an Encounter: its
/// participant of type `ATND`.
pub fn attending(encounter: &Value) -> Option<String> {
    encounter["participant"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["type"].as_array().into_iter().flatten().any(|t| {
                t["coding"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["code"] == "ATND")
            })
        })
        .and_then(|p| reference_of(&p["individual"]))
        .filter(|r| r.starts_with("Practitioner/"))
        .map(str::to_owned)
}

/// The responsible consultant of a stored report (see the module
/// documentation): `Practitioner/…`, or `None` when the report is not
/// matched or nobody is named.
pub fn responsible_consultant(
    tx: &Tx<'_>,
    report_id: &str,
) -> Result<Option<String>, ResultsError> {
    let Some(report) = stored(tx, "DiagnosticReport", report_id)? else {
        return Ok(None);
    };
    Ok(target_in(tx, &report)?.and_then(|t| t.consultant.or(t.requester)))
}

fn escalated(task: &Value) -> bool {
    task["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["url"] == ESCALATED_EXT)
}

/// Escalates every critical Task due at `now` (see the module
/// documentation), in the caller's transaction. Returns the escalation
/// Tasks created.
pub fn escalate_due_in(
    tx: &mut Tx<'_>,
    now: OffsetDateTime,
    limit: Duration,
) -> Result<Vec<String>, ResultsError> {
    let due_before = now_text(now - limit);
    let candidates = stored_search(
        tx,
        "Task",
        &[
            ("code", format!("{TASK_SYSTEM}|{RESULT_REVIEW}")),
            ("status", "requested,in-progress".to_owned()),
            ("priority", "stat".to_owned()),
            ("authored-on", format!("le{due_before}")),
        ],
    )?;
    let mut created = Vec::new();
    for c in candidates {
        if escalated(&c) {
            continue;
        }
        let (Some(task_id), Some(report_id)) = (
            c["id"].as_str().map(str::to_owned),
            crate::fhir::reference_id(&c["focus"], "DiagnosticReport").map(str::to_owned),
        ) else {
            continue;
        };
        tx.lock(&[report_lock(&report_id)])?;
        // Again under the lock: another server may have escalated it.
        let Some(mut task) = stored(tx, "Task", &task_id)? else {
            continue;
        };
        if escalated(&task)
            || !matches!(task["status"].as_str(), Some("requested" | "in-progress"))
            || task_code(&task) != Some(RESULT_REVIEW)
        {
            continue;
        }
        let Some(consultant) = responsible_consultant(tx, &report_id)? else {
            continue;
        };
        // Read through the transaction so that the audit event names the
        // report and its patient.
        tx.get("DiagnosticReport", &report_id)?;
        let now_s = now_text(now);
        let minutes = limit.whole_minutes();
        let owner = reference_of(&task["owner"])
            .unwrap_or("the requester")
            .to_owned();
        let esc = json!({
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "priority": "stat",
            "code": {"coding": [{"system": TASK_SYSTEM, "code": RESULT_ESCALATION,
                "display": "Critical result not acknowledged"}]},
            "description": task["description"],
            "focus": task["focus"],
            "for": task["for"],
            "basedOn": task["basedOn"],
            "partOf": [{"reference": format!("Task/{task_id}")}],
            "owner": {"reference": consultant},
            "authoredOn": now_s,
            "lastModified": now_s,
            "businessStatus": {"coding": [order_code(Flag::Critical, 1)], "text": "escalated"},
            "note": [{"time": now_s, "text": format!(
                "Critical result not acknowledged by {owner} within {minutes} minutes of notification ({}): escalated to the responsible consultant's team.",
                task["authoredOn"].as_str().unwrap_or("")
            )}],
        });
        let id = tx.save(esc)?.id;
        let mut ext = task["extension"].as_array().cloned().unwrap_or_default();
        ext.push(json!({"url": ESCALATED_EXT, "valueDateTime": now_s}));
        task["extension"] = json!(ext);
        task["lastModified"] = json!(now_s);
        tx.save(task)?;
        created.push(id);
    }
    Ok(created)
}

/// [`escalate_due_in`] as one audited transaction for `access` (the job
/// runs it as the operator).
pub fn escalate_due(
    svc: &FhirService,
    access: &dyn Access,
    now: OffsetDateTime,
    limit: Duration,
) -> Result<Vec<String>, ResultsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "results-escalate", "C");
    let out = escalate_due_in(&mut tx, now, limit)?;
    tx.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attending_consultant() {
        let e = json!({"participant": [
            {"type": [{"coding": [{"code": "ADM"}]}], "individual": {"reference": "Practitioner/a"}},
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
             "individual": {"reference": "Practitioner/c"}}]});
        assert_eq!(attending(&e).as_deref(), Some("Practitioner/c"));
        assert_eq!(attending(&json!({})), None);
    }

    #[test]
    fn escalated_is_read_from_the_extension() {
        assert!(escalated(
            &json!({"extension": [{"url": ESCALATED_EXT, "valueDateTime": "2026-01-01T00:00:00Z"}]})
        ));
        assert!(!escalated(&json!({"extension": [{"url": "x"}]})));
    }
}
