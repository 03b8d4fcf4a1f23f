//! Tracking the Care Act notices: the admission's page ([`case`]), the
//! ward's social-care worklist ([`worklist`]) and the job step that raises
//! and closes the notices' Tasks ([`raise_overdue_in`]).

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::timescales::{Timescales, display_instant, local_text, parse_day};
use super::{
    CareActError, DISCHARGE_NOTICE_DUE_CODE, Delivery, LOOKBACK, LocalAuthority, Notice,
    NoticeKind, OPEN_TASK, UNACKNOWLEDGED_CODE, in_force, local_authorities_in, notices_in,
    part_ref, previous_local_authority_in, type_query,
};
use crate::documents::discharge::Patient;
use crate::fhir::reference_id;
use crate::pmi::TASK_SYSTEM;
use crate::transfers::{fhir_time, ms_of, parse_ms};

/// The social-care page of one admission.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub encounter: String,
    pub patient: Patient,
    pub ward: Option<String>,
    pub in_hospital: bool,
    pub notices: Vec<Notice>,
    pub local_authorities: Vec<LocalAuthority>,
    /// The local authority the form offers first.
    pub default_local_authority: Option<String>,
}

/// The admission's notices and what the form needs, read as the caller
/// (audited, `care-act-view`).
pub fn case(svc: &FhirService, access: &dyn Access, encounter: &str) -> Result<Case, CareActError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "care-act-view", "R");
    tx.audit_reads();
    let enc = tx.get("Encounter", encounter)?.ok_or_else(|| {
        CareActError::NotFound(format!("There is no admission Encounter/{encounter}."))
    })?;
    let pid = reference_id(&enc["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let patient = match tx.get("Patient", &pid)? {
        Some(p) => Patient::of(&p, &pid),
        None => Patient::unknown(&pid),
    };
    let eref = format!("Encounter/{encounter}");
    let notices = notices_in(&mut tx, &eref)?;
    let local_authorities = local_authorities_in(&mut tx)?;
    let default_local_authority = match in_force(&notices, NoticeKind::Assessment) {
        Some(a) => Some(
            a.local_authority
                .trim_start_matches("Organization/")
                .to_owned(),
        ),
        None => previous_local_authority_in(&mut tx, &format!("Patient/{pid}"))?,
    };
    let ward = enc["location"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| reference_id(&l["location"], "Location"))
        .map(str::to_owned);
    let ward = match ward {
        Some(l) => {
            crate::adt::ward_name(&tx, &l).map_err(|e| CareActError::Store(e.to_string()))?
        }
        None => None,
    };
    tx.commit()?;
    Ok(Case {
        encounter: encounter.to_owned(),
        patient,
        ward,
        in_hospital: enc["status"] == "in-progress",
        notices,
        local_authorities,
        default_local_authority,
    })
}

/// One admission on the ward's social-care worklist.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub encounter: String,
    pub patient: String,
    pub patient_name: String,
    /// The ward's `Location` id, when recorded.
    pub ward_id: Option<String>,
    pub ward: String,
    pub local_authority: String,
    pub assessment: Option<Notice>,
    pub discharge: Option<Notice>,
    /// Open Tasks of this admission's notices (code, description).
    pub tasks: Vec<(String, String)>,
}

/// The social-care worklist: admissions with notices given in the last
/// [`LOOKBACK`], on `ward` (a `Location` id; every ward when `None`), read
/// as the caller (audited, `care-act-worklist`).
pub fn worklist(
    svc: &FhirService,
    access: &dyn Access,
    ward: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<Row>, CareActError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "care-act-worklist", "R");
    tx.audit_reads();
    let encounters = recent_encounters(&mut tx, ward, now)?;
    let tasks = tx.find(
        "Task",
        &format!(
            "code={TASK_SYSTEM}|{UNACKNOWLEDGED_CODE},{TASK_SYSTEM}|{DISCHARGE_NOTICE_DUE_CODE}&status={OPEN_TASK}&_count=1000"
        ),
    )?;
    let mut rows = Vec::new();
    for e in encounters {
        let notices = notices_in(&mut tx, &e)?;
        let Some(first) = notices.first() else {
            continue;
        };
        let patient = first.patient.clone();
        let patient_name = match patient.strip_prefix("Patient/") {
            Some(pid) => tx
                .get("Patient", pid)?
                .map(|p| Patient::of(&p, pid).name)
                .unwrap_or_else(|| "Unknown patient".into()),
            None => "Unknown patient".into(),
        };
        let assessment = notices
            .iter()
            .rev()
            .find(|n| n.kind == NoticeKind::Assessment)
            .cloned();
        let discharge = notices
            .iter()
            .rev()
            .find(|n| n.kind == NoticeKind::Discharge)
            .cloned();
        let last = notices.last().unwrap_or(first);
        rows.push(Row {
            encounter: e.clone(),
            patient,
            patient_name,
            ward_id: last
                .ward
                .as_deref()
                .and_then(|w| w.strip_prefix("Location/"))
                .map(str::to_owned),
            ward: last
                .ward_name
                .clone()
                .unwrap_or_else(|| "No ward recorded".into()),
            local_authority: last.local_authority_name.clone(),
            tasks: tasks
                .iter()
                .filter(|t| t["encounter"]["reference"] == e.as_str())
                .map(|t| {
                    (
                        t["code"]["coding"][0]["code"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        t["description"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            assessment,
            discharge,
        });
    }
    tx.commit()?;
    rows.sort_by(|a, b| (&a.ward, &a.patient_name).cmp(&(&b.ward, &b.patient_name)));
    Ok(rows)
}

pub(super) fn close_tasks_in(
    tx: &mut Tx<'_>,
    focus: &str,
    code: &str,
    outcome: &str,
    now: OffsetDateTime,
) -> Result<(), CareActError> {
    Ok(crate::transfers::complete_tasks_in(
        tx,
        &format!("focus={focus}&code={TASK_SYSTEM}|{code}"),
        outcome,
        now,
    )?)
}

/// The admissions (`Encounter/{id}`) with notices given since `now` less
/// [`LOOKBACK`], on `ward` (a `Location` id) when given.
fn recent_encounters(
    tx: &mut Tx<'_>,
    ward: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<String>, CareActError> {
    let docs = tx.find(
        "DocumentReference",
        &format!(
            "type={}&date=ge{}&_count=1000",
            type_query(),
            fhir_time(now - LOOKBACK)
        ),
    )?;
    let mut encounters: Vec<String> = docs
        .iter()
        .filter(|d| {
            ward.is_none_or(|w| part_ref(d, "ward").is_some_and(|r| r.0 == format!("Location/{w}")))
        })
        .filter_map(|d| d["context"]["encounter"][0]["reference"].as_str())
        .map(str::to_owned)
        .collect();
    encounters.sort();
    encounters.dedup();
    Ok(encounters)
}

fn raise_once_in(
    tx: &mut Tx<'_>,
    n: &Notice,
    code: &str,
    display: &str,
    description: String,
    due: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Option<String>, CareActError> {
    let focus = format!("DocumentReference/{}", n.id);
    tx.lock(&[format!("{focus}/{code}")])?;
    let any = tx.find("Task", &format!("focus={focus}&code={TASK_SYSTEM}|{code}"))?;
    if !any.is_empty() {
        return Ok(None);
    }
    let now_s = fhir_time(now);
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "urgent",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": code, "display": display}]},
        "focus": {"reference": focus},
        "for": {"reference": n.patient},
        "encounter": {"reference": n.encounter},
        "authoredOn": now_s,
        "lastModified": now_s,
        "restriction": {"period": {"end": fhir_time(due)}},
        "description": description,
    });
    if let Some(w) = &n.ward {
        task["location"] = json!({"reference": w, "display": n.ward_name});
    }
    Ok(Some(tx.save(task)?.id))
}

/// The tracking step of the transfers job at `now` (see the module
/// documentation), in `tx`: raises the Tasks due and completes those
/// resolved. Returns the Tasks created.
pub fn raise_overdue_in(
    tx: &mut Tx<'_>,
    t: &Timescales,
    now: OffsetDateTime,
) -> Result<Vec<String>, CareActError> {
    let encounters = recent_encounters(tx, None, now)?;
    let now_ms = ms_of(now);
    let mut created = Vec::new();
    for e in encounters {
        let notices = notices_in(tx, &e)?;
        let in_hospital = match e.strip_prefix("Encounter/") {
            Some(id) => tx
                .get("Encounter", id)?
                .is_some_and(|enc| enc["status"] == "in-progress"),
            None => false,
        };
        for n in &notices {
            let focus = format!("DocumentReference/{}", n.id);
            // Delivered: acknowledged over MESH, or handed to the mail server.
            let delivered = n.delivery.as_ref().is_some_and(|d| d.status == "completed");
            if delivered {
                close_tasks_in(
                    tx,
                    &focus,
                    UNACKNOWLEDGED_CODE,
                    "Delivered to the local authority.",
                    now,
                )?;
            } else if let Some(given) = parse_ms(&n.given_at) {
                let due_ms = given + t.acknowledge_within.whole_milliseconds() as i64;
                if now_ms >= due_ms {
                    let due =
                        OffsetDateTime::from_unix_timestamp(due_ms.div_euclid(1000)).unwrap_or(now);
                    let state = n.delivery.as_ref().map_or("not queued", Delivery::label);
                    let why = n
                        .delivery
                        .as_ref()
                        .and_then(|d| d.last_error.clone())
                        .map(|m| format!(" Last error: {m}"))
                        .unwrap_or_default();
                    created.extend(raise_once_in(
                        tx,
                        n,
                        UNACKNOWLEDGED_CODE,
                        "Care Act notice not acknowledged",
                        format!(
                            "The {} to {} given {} has not been acknowledged (delivery: {state}).{why} Check it reached the local authority, or give it by another means.",
                            n.kind.label().to_lowercase(),
                            n.local_authority_name,
                            local_text(t, &n.given_at)
                        ),
                        due,
                        now,
                    )?);
                }
            }
        }
        // A discharge notice due and not given.
        for a in notices.iter().filter(|n| n.kind == NoticeKind::Assessment) {
            let focus = format!("DocumentReference/{}", a.id);
            let answered = notices.iter().any(|n| {
                n.kind == NoticeKind::Discharge
                    && n.given_at >= a.given_at
                    && n.withdrawn_by.is_none()
            });
            if a.withdrawn_by.is_some() || answered || !in_hospital {
                let why = if a.withdrawn_by.is_some() {
                    "Assessment notice withdrawn."
                } else if answered {
                    "Discharge notice given."
                } else {
                    "The patient has left hospital."
                };
                close_tasks_in(tx, &focus, DISCHARGE_NOTICE_DUE_CODE, why, now)?;
                continue;
            }
            let Some(day) = a.discharge_day.as_deref().and_then(parse_day) else {
                continue;
            };
            let latest = t.latest_discharge_notice(day);
            if now >= latest - t.discharge_notice_warning {
                created.extend(raise_once_in(
                    tx,
                    a,
                    DISCHARGE_NOTICE_DUE_CODE,
                    "Care Act discharge notice due",
                    format!(
                        "The discharge notice to {} for discharge on {day} is due by {} and has not been given.",
                        a.local_authority_name,
                        display_instant(t, latest)
                    ),
                    latest,
                    now,
                )?);
            }
        }
    }
    Ok(created)
}

/// [`raise_overdue_in`] as one audited transaction (`care-act-overdue`).
pub fn raise_overdue(
    svc: &FhirService,
    access: &dyn Access,
    t: &Timescales,
    now: OffsetDateTime,
) -> Result<Vec<String>, CareActError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "care-act-overdue", "C");
    let out = raise_overdue_in(&mut tx, t, now)?;
    tx.commit()?;
    Ok(out)
}
