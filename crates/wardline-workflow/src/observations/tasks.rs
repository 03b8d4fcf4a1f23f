//! The escalation task list: open NEWS2 escalation `Task`s per team or
//! ward, acknowledged and completed by a person.
//!
//! Acknowledge sets `status` `in-progress` and notes who and when;
//! complete sets `completed` with the outcome. Nothing else closes an
//! escalation (a falling score does not: [`super::scoring`]). Each is one
//! audited transaction (`observations-task`) under the patient's
//! `news2:` lock, so it cannot cross a new score being linked.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService};

use super::news2::Response;
use super::scoring::{is_escalation, task_level};
use super::{ESCALATION_CODE, ObservationsError, TASK_SYSTEM, now_text};

/// One open escalation as the list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Escalation {
    pub id: String,
    pub patient: String,
    pub level: Option<Response>,
    pub status: String,
    pub description: String,
    pub authored_on: String,
    /// `CareTeam/…`, `Practitioner/…` or `None`.
    pub owner: Option<String>,
    /// `Location/…` (the ward) or `None`.
    pub ward: Option<String>,
}

impl Escalation {
    fn of(t: &Value) -> Option<Escalation> {
        let r = |v: &Value| v["reference"].as_str().map(str::to_owned);
        Some(Escalation {
            id: t["id"].as_str()?.to_owned(),
            patient: r(&t["for"])?,
            level: task_level(t),
            status: t["status"].as_str().unwrap_or("").to_owned(),
            description: t["description"].as_str().unwrap_or("").to_owned(),
            authored_on: t["authoredOn"].as_str().unwrap_or("").to_owned(),
            owner: r(&t["owner"]),
            ward: r(&t["location"]),
        })
    }

    /// What the list groups by: the ward, else the owning team, else none.
    pub fn team(&self) -> Option<&str> {
        self.ward.as_deref().or(self.owner.as_deref())
    }
}

/// Open escalations the caller may read (each read audited), optionally
/// only those of `patient`; the most urgent first, then the oldest.
pub fn open_escalations(
    svc: &FhirService,
    access: &dyn Access,
    patient: Option<&str>,
) -> Result<Vec<Escalation>, ObservationsError> {
    let mut q = vec![
        ("code", format!("{TASK_SYSTEM}|{ESCALATION_CODE}")),
        ("status", "requested,in-progress".to_owned()),
    ];
    if let Some(p) = patient {
        q.push(("patient", p.to_owned()));
    }
    let found = crate::fhir::search_as_all(svc, access, "Task", &q)?;
    let mut out: Vec<Escalation> = found.resources.iter().filter_map(Escalation::of).collect();
    out.sort_by(|a, b| {
        b.level
            .cmp(&a.level)
            .then_with(|| a.authored_on.cmp(&b.authored_on))
    });
    Ok(out)
}

/// `acknowledge` (→ in-progress) or complete (→ completed, with `outcome`).
pub fn act(
    svc: &FhirService,
    access: &dyn Access,
    task_id: &str,
    complete: bool,
    outcome: &str,
    now: OffsetDateTime,
) -> Result<(), ObservationsError> {
    if complete && outcome.trim().is_empty() {
        return Err(ObservationsError::Field {
            field: "outcome".into(),
            message: "Enter what was done (the outcome of the review)".into(),
        });
    }
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "observations-task", "U");
    let task = tx
        .get("Task", task_id)?
        .filter(is_escalation)
        .ok_or_else(|| ObservationsError::NotFound(format!("No escalation Task/{task_id}.")))?;
    let patient = task["for"]["reference"].as_str().unwrap_or("").to_owned();
    tx.lock(&[format!("news2:{patient}")])?;
    // Again under the lock.
    let Some(mut task) = tx.get("Task", task_id)? else {
        return Err(ObservationsError::NotFound(format!(
            "No escalation Task/{task_id}."
        )));
    };
    let status = task["status"].as_str().unwrap_or("");
    if !matches!(status, "requested" | "in-progress") {
        return Err(ObservationsError::Conflict(format!(
            "This escalation is already {status}."
        )));
    }
    if !complete && status == "in-progress" {
        return Err(ObservationsError::Conflict(
            "This escalation is already acknowledged.".into(),
        ));
    }
    let now_s = now_text(now);
    let who = access
        .agent()
        .who
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let text = if complete {
        format!("Completed by {who}: {}", outcome.trim())
    } else {
        format!("Acknowledged by {who}")
    };
    let mut notes = task["note"].as_array().cloned().unwrap_or_default();
    notes.push(json!({"time": now_s, "text": text, "authorReference": {"reference": who}}));
    task["note"] = json!(notes);
    task["status"] = json!(if complete { "completed" } else { "in-progress" });
    task["lastModified"] = json!(now_s);
    if complete {
        task["executionPeriod"]["end"] = json!(now_s);
    } else {
        task["executionPeriod"] = json!({"start": now_s});
    }
    tx.save(task)?;
    tx.commit()?;
    Ok(())
}
