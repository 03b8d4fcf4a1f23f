//! Telling people about a result: the inbox Tasks of a matched report
//! (see the module documentation of [`super`]).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::Tx;

use super::{
    Flag, INBOX_ORDER_SYSTEM, NOTIFY, READ_EXT, RESULT_ESCALATION, RESULT_REVIEW, ResultsError,
    TASK_SYSTEM, is_correction, now_text, reference_of, report_flag, report_lock,
    result_observations, stored, stored_search, target_in, value_text,
};

/// The inbox sort key (see the module documentation): flag rank, then 1
/// unread, 2 read, 3 done.
pub(crate) fn order_code(flag: Flag, state: u8) -> Value {
    json!({"system": INBOX_ORDER_SYSTEM, "code": format!("{}{}", flag.rank(), state)})
}

pub(crate) fn task_code(t: &Value) -> Option<&str> {
    t["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["system"] == TASK_SYSTEM)
        .and_then(|c| c["code"].as_str())
}

/// Who had read a Task: its owner once it is in progress or done, and
/// everyone its [`READ_EXT`] names.
pub(crate) fn readers_of(task: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if matches!(task["status"].as_str(), Some("in-progress" | "completed"))
        && let Some(o) = reference_of(&task["owner"])
    {
        out.push(o.to_owned());
    }
    for e in task["extension"].as_array().into_iter().flatten() {
        if e["url"] == READ_EXT {
            for s in e["extension"].as_array().into_iter().flatten() {
                if s["url"] == "who"
                    && let Some(w) = reference_of(&s["valueReference"])
                {
                    out.push(w.to_owned());
                }
            }
        }
    }
    out
}

/// The earlier values of a report's Observations that differ from the
/// current ones (from their history), as sentences.
fn earlier_values(tx: &mut Tx<'_>, observations: &[Value]) -> Result<Vec<String>, ResultsError> {
    let mut out = Vec::new();
    for o in observations {
        let Some(id) = o["id"].as_str() else { continue };
        let version: i64 = o["meta"]["versionId"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        if version <= 1 {
            continue;
        }
        // The latest earlier version whose value differs.
        let now_text = value_text(o);
        for v in (1..version).rev() {
            if let Some(prev) = tx.vread("Observation", id, v)? {
                let was = value_text(&prev);
                if was != now_text {
                    out.push(format!(
                        "{}: was {was}, now {now_text}",
                        crate::fhir::concept_text(&o["code"]).unwrap_or_default()
                    ));
                }
                break;
            }
        }
    }
    Ok(out)
}

/// Tells people about a stored, matched report (the notification step of
/// [`receive_in`] alone, for a report just matched from the worklist):
/// closes the report's earlier open Tasks as superseded and creates a new
/// inbox Task for the requester and for everyone who had read an earlier
/// version (see the module documentation). Returns the Task ids created.
/// A report not in a status that is told (`registered`, `partial`) tells
/// nobody; an unmatched one is refused (409).
pub fn notify_in(
    tx: &mut Tx<'_>,
    report_id: &str,
    now: OffsetDateTime,
) -> Result<Vec<String>, ResultsError> {
    tx.lock(&[report_lock(report_id)])?;
    let report = stored(tx, "DiagnosticReport", report_id)?.ok_or_else(|| {
        ResultsError::NotFound(format!("DiagnosticReport/{report_id} not found."))
    })?;
    let status = report["status"].as_str().unwrap_or("unknown").to_owned();
    let Some(target) = target_in(tx, &report)? else {
        return Err(ResultsError::Conflict(format!(
            "DiagnosticReport/{report_id} is not matched to a patient and a request of theirs (with a requester or a consultant), so there is nobody to tell."
        )));
    };
    if !NOTIFY.contains(&status.as_str()) {
        return Ok(Vec::new());
    }
    let observations = result_observations(tx, &report)?;
    let flag = if matches!(status.as_str(), "cancelled" | "entered-in-error") {
        Flag::Normal
    } else {
        report_flag(&observations)
    };
    let earlier = earlier_values(tx, &observations)?;
    let now_s = now_text(now);
    let focus = format!("DiagnosticReport/{report_id}");

    // Earlier Tasks of this report: who read them; close the open ones.
    let earlier_tasks = stored_search(tx, "Task", &[("focus", focus.clone())])?;
    let mut readers: BTreeSet<String> = BTreeSet::new();
    for mut t in earlier_tasks {
        if !matches!(task_code(&t), Some(RESULT_REVIEW | RESULT_ESCALATION)) {
            continue;
        }
        readers.extend(readers_of(&t));
        if matches!(t["status"].as_str(), Some("requested" | "in-progress")) {
            t["status"] = json!("cancelled");
            t["statusReason"] = json!({"text": format!(
                "Superseded: the report was sent again ({status}) on {now_s}"
            )});
            t["lastModified"] = json!(now_s);
            t["businessStatus"]["coding"] = json!([order_code(flag, 3)]);
            tx.save(t)?;
        }
    }
    let mut owners: Vec<String> = Vec::new();
    if let Some(r) = target.requester.clone().or(target.consultant.clone()) {
        owners.push(r);
    }
    for r in &readers {
        if r.starts_with("Practitioner/") && !owners.contains(r) {
            owners.push(r.clone());
        }
    }
    let title = crate::fhir::concept_text(&report["code"]).unwrap_or_else(|| "Result".to_owned());
    let mut created = Vec::new();
    for owner in owners {
        let had_read = readers.contains(&owner);
        let (state_text, note) = match status.as_str() {
            "cancelled" => (
                "cancelled",
                Some("The laboratory cancelled this result.".to_owned()),
            ),
            "entered-in-error" => (
                "cancelled",
                Some("This result was entered in error: disregard its earlier values.".to_owned()),
            ),
            s if is_correction(s) => (
                "corrected",
                Some(if earlier.is_empty() {
                    format!("The report was {s}.")
                } else {
                    format!("The report was {s}. {}.", earlier.join("; "))
                }),
            ),
            _ if had_read => (
                flag.code(),
                Some(if earlier.is_empty() {
                    format!("Updated ({status}) after you read an earlier version.")
                } else {
                    format!(
                        "Updated ({status}) after you read an earlier version. {}.",
                        earlier.join("; ")
                    )
                }),
            ),
            _ => (flag.code(), None),
        };
        let mut task = json!({
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "priority": flag.priority(),
            "code": {"coding": [{"system": TASK_SYSTEM, "code": RESULT_REVIEW, "display": "Review result"}]},
            "description": title,
            "focus": {"reference": focus},
            "for": {"reference": target.patient},
            "basedOn": target.requests.iter().map(|r| json!({"reference": r})).collect::<Vec<_>>(),
            "owner": {"reference": owner},
            "authoredOn": now_s,
            "lastModified": now_s,
            "businessStatus": {"coding": [order_code(flag, 1)], "text": state_text},
        });
        if let Some(n) = note {
            task["note"] = json!([{"time": now_s, "text": n}]);
        }
        created.push(tx.save(task)?.id);
    }
    Ok(created)
}
