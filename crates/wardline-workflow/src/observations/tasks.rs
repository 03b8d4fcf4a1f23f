//! The escalation task list: open NEWS2 escalation `Task`s per team or
//! ward, acknowledged and completed by a person.
//!
//! Acknowledge sets `status` `in-progress` and notes who and when;
//! complete sets `completed` with the outcome. Nothing else closes an
//! escalation (a falling score does not: [`super::scoring`]). Each is one
//! audited transaction (`observations-task`) under the patient's
//! `news2:` lock, so it cannot cross a new score being linked.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService};

use super::ObservationsError;
use super::news2::Response;
use super::scoring::{is_escalation, task_level};

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
        ("code", super::scoring::kinds_query()),
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

/// `acknowledge` (→ in-progress) or complete (→ completed, with `outcome`):
/// the shared task lifecycle's [`crate::tasks::start_in`] and
/// [`crate::tasks::complete_in`] (who may, notes, outcome), on an escalation
/// only, under the patient's NEWS2 lock (the scoring hook raising or
/// linking an escalation at the same time waits).
pub fn act(
    svc: &FhirService,
    access: &dyn Access,
    task_id: &str,
    complete: bool,
    outcome: &str,
    now: OffsetDateTime,
) -> Result<(), ObservationsError> {
    let caller = crate::tasks::lists::Caller::of(access);
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "observations-task", "U");
    let task = tx
        .get("Task", task_id)?
        .filter(is_escalation)
        .ok_or_else(|| ObservationsError::NotFound(format!("No escalation Task/{task_id}.")))?;
    let patient = task["for"]["reference"].as_str().unwrap_or("").to_owned();
    tx.lock(&[format!("news2:{patient}")])?;
    if complete {
        crate::tasks::complete_in(&mut tx, task_id, outcome, &caller, now)
    } else {
        crate::tasks::start_in(&mut tx, task_id, &caller, now)
    }
    .map_err(ObservationsError::from)?;
    tx.commit()?;
    Ok(())
}

/// An open NEWS2 escalation as the patient banner shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BannerAlert {
    /// `Task/{id}` of the most urgent open escalation.
    pub task: String,
    pub level: Response,
    /// The NEWS2 of the score that raised it.
    pub score: Option<u64>,
    /// Due time (`restriction.period.end`).
    pub due: Option<String>,
    /// "Open NEWS2 escalation (score 7): emergency response".
    pub text: String,
}

/// The patient's most urgent open NEWS2 escalation, for the banner: read
/// in `tx`, the page's transaction that has already opened the patient's
/// record as the caller (one Task search and one read of the score it is
/// about; unchecked like the rest of the banner's summary).
pub fn banner_alert(
    tx: &wardline_core::Tx<'_>,
    patient: &str,
) -> Result<Option<BannerAlert>, wardline_fhir::FhirError> {
    let open = crate::fhir::search_all(
        tx,
        "Task",
        &[
            ("patient", patient.to_owned()),
            ("code", super::scoring::kinds_query()),
            ("status", "requested,in-progress".to_owned()),
        ],
    )?;
    let Some(t) = open
        .iter()
        .filter(|t| task_level(t).is_some())
        .max_by_key(|t| (task_level(t), t["authoredOn"].as_str().map(str::to_owned)))
    else {
        return Ok(None);
    };
    let level = task_level(t).unwrap_or(Response::Urgent);
    let score = match t["focus"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Observation/"))
    {
        Some(id) => crate::results::stored(tx, "Observation", id)
            .map_err(|e| wardline_fhir::FhirError::internal(e.to_string()))?
            .and_then(|o| o["valueInteger"].as_u64()),
        None => None,
    };
    let text = match score {
        Some(n) => format!("Open NEWS2 escalation (score {n}): {}", level.label()),
        None => format!("Open NEWS2 escalation: {}", level.label()),
    };
    Ok(Some(BannerAlert {
        task: format!("Task/{}", t["id"].as_str().unwrap_or("")),
        level,
        score,
        due: t["restriction"]["period"]["end"]
            .as_str()
            .map(str::to_owned),
        text,
    }))
}
