//! The 24-hour standard: every inpatient discharge's summary is sent to
//! the GP practice within 24 hours of discharge.
//!
//! * **A discharge** is an inpatient `Encounter` (class `IMP`) `finished`
//!   with `period.end` (as ADT writes it). Its summary is *signed* when a
//!   `DocumentReference` of type SNOMED CT 373942005 names it as
//!   `context.encounter` (its `date`), *sent* when a delivery
//!   `Communication` of kind `discharge-summary` for the encounter has
//!   `sent`, *acknowledged* when it has `received`.
//! * **Overdue**: 24 hours after discharge with nothing sent. The job
//!   ([`raise_overdue`], the clock injected) raises one `Task`
//!   [`OVERDUE_CODE`] per overdue discharge (`focus` and `encounter` the
//!   Encounter, `for` the patient, `owner` the responsible consultant — the
//!   attending consultant, `participant` `ATND`, whose queue stands for the
//!   team as for escalated results — and `priority` `urgent`); it is never
//!   raised twice for an encounter. Sending the summary completes it
//!   ([`close_overdue_in`], called where the delivery is recorded as sent);
//!   the job also completes any whose summary went out another way.
//! * **The compliance dashboard** ([`compliance`]): the discharges of the
//!   period, by ward (the ward of the last bed) and by specialty (the
//!   encounter's `serviceType`), with the percentage sent within 24 hours
//!   of those due, and the overdue list.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::{
    DISCHARGE_SUMMARY_CODE, KIND_SYSTEM, Kind, SNOMED, TransfersError, fhir_time, kind_of, ms_of,
    parse_ms,
};
use crate::pmi::TASK_SYSTEM;

/// `Task.code` (system `pmi::TASK_SYSTEM`) of a discharge past 24 hours
/// without a sent summary.
pub const OVERDUE_CODE: &str = "discharge-summary-overdue";
/// The standard.
pub const STANDARD: Duration = Duration::hours(24);
/// How far back the job looks for discharges.
pub const LOOKBACK: Duration = Duration::days(30);

const OPEN_TASK: &str = "requested,received,accepted,ready,in-progress,on-hold";

/// Completes the open overdue-summary Tasks of `encounter` (`Encounter/{id}`).
pub fn close_overdue_in(
    tx: &mut Tx<'_>,
    encounter: &str,
    now: OffsetDateTime,
) -> Result<(), TransfersError> {
    super::complete_tasks_in(
        tx,
        &format!("encounter={encounter}&code={TASK_SYSTEM}|{OVERDUE_CODE}"),
        "Discharge summary sent to the GP practice.",
        now,
    )
}

/// Where one discharge's summary stands.
#[derive(Debug, Clone, Serialize)]
pub struct Discharge {
    pub encounter: String,
    pub patient: String,
    pub patient_name: String,
    /// The caller may not see this patient: the name is withheld.
    pub withheld: bool,
    pub ward: String,
    pub specialty: String,
    pub consultant: Option<String>,
    pub discharged: String,
    pub signed: Option<String>,
    pub sent: Option<String>,
    pub acknowledged: Option<String>,
    /// Delivery status (`preparation`, `in-progress`, …) when queued.
    pub delivery: Option<String>,
    /// Hours from discharge to sent (or to now when not sent).
    pub hours: i64,
    pub state: State,
}

/// A discharge against the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Sent within 24 hours.
    Met,
    /// Sent, but after 24 hours.
    Late,
    /// Not sent, and 24 hours have passed.
    Overdue,
    /// Not sent, still within 24 hours.
    Pending,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Met => "Sent within 24 hours",
            State::Late => "Sent late",
            State::Overdue => "Overdue",
            State::Pending => "Within 24 hours, not sent yet",
        }
    }
}

fn name_of(p: &Value) -> String {
    let n = &p["name"][0];
    let given: Vec<&str> = n["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let family = n["family"].as_str().unwrap_or("");
    match (given.is_empty(), family.is_empty()) {
        (true, true) => n["text"].as_str().unwrap_or("Unnamed patient").to_owned(),
        _ => format!("{}, {}", family.to_uppercase(), given.join(" ")),
    }
}

fn ward_of(
    tx: &mut Tx<'_>,
    enc: &Value,
    cache: &mut HashMap<String, String>,
) -> Result<String, TransfersError> {
    let last = enc["location"].as_array().and_then(|l| l.last()).cloned();
    let Some(id) = last
        .as_ref()
        .and_then(|l| l["location"]["reference"].as_str())
        .and_then(|r| r.strip_prefix("Location/"))
        .map(str::to_owned)
    else {
        return Ok("No ward recorded".to_owned());
    };
    if let Some(w) = cache.get(&id) {
        return Ok(w.clone());
    }
    // The ward the last location lies in (the ADT place tree), else the
    // name the encounter recorded for it.
    let name =
        match crate::adt::ward_name(&*tx, &id).map_err(|e| TransfersError::Store(e.to_string()))? {
            Some(w) => w,
            None => last
                .as_ref()
                .and_then(|l| l["location"]["display"].as_str())
                .unwrap_or("Unknown ward")
                .to_owned(),
        };
    cache.insert(id, name.clone());
    Ok(name)
}

fn specialty_of(enc: &Value) -> String {
    crate::adt::specialty_words(&enc["serviceType"])
        .unwrap_or_else(|| "No specialty recorded".to_owned())
}

/// The discharges whose `period.end` is in `[since, now]`, with where their
/// summaries stand, oldest first.
pub fn discharges_in(
    tx: &mut Tx<'_>,
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Vec<Discharge>, TransfersError> {
    let encs = tx.find(
        "Encounter",
        &format!(
            "status=finished&class=IMP&date=ge{}&_count=1000",
            fhir_time(since)
        ),
    )?;
    let (since_ms, now_ms) = (ms_of(since), ms_of(now));
    let mut wards = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for enc in encs {
        let Some(end) = enc["period"]["end"].as_str() else {
            continue;
        };
        let Some(end_ms) = parse_ms(end) else {
            continue;
        };
        if end_ms < since_ms || end_ms > now_ms {
            continue;
        }
        let Some(id) = enc["id"].as_str() else {
            continue;
        };
        let eref = format!("Encounter/{id}");
        let patient = enc["subject"]["reference"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let patient_name = match names.get(&patient) {
            Some(n) => n.clone(),
            None => {
                let n = match patient.strip_prefix("Patient/") {
                    Some(pid) => tx.get("Patient", pid)?.map(|p| name_of(&p)),
                    None => None,
                }
                .unwrap_or_else(|| "Unknown patient".to_owned());
                names.insert(patient.clone(), n.clone());
                n
            }
        };
        let docs = tx.find(
            "DocumentReference",
            &format!("encounter={eref}&type={SNOMED}|{DISCHARGE_SUMMARY_CODE}"),
        )?;
        let signed = docs
            .iter()
            .filter(|d| d["status"] == "current")
            .filter_map(|d| d["date"].as_str())
            .min()
            .map(str::to_owned);
        let comms = tx.find(
            "Communication",
            &format!(
                "encounter={eref}&category={KIND_SYSTEM}|{}",
                Kind::DischargeSummary.code()
            ),
        )?;
        let comms: Vec<&Value> = comms
            .iter()
            .filter(|c| {
                kind_of(c) == Some(Kind::DischargeSummary) && c["status"] != "entered-in-error"
            })
            .collect();
        let sent = comms
            .iter()
            .filter_map(|c| c["sent"].as_str())
            .min()
            .map(str::to_owned);
        let acknowledged = comms
            .iter()
            .filter_map(|c| c["received"].as_str())
            .min()
            .map(str::to_owned);
        let delivery = comms
            .iter()
            .find(|c| c["sent"].is_string())
            .or(comms.last())
            .and_then(|c| c["status"].as_str())
            .map(str::to_owned);
        let due_ms = end_ms + STANDARD.whole_milliseconds() as i64;
        let sent_ms = sent.as_deref().and_then(parse_ms);
        let state = match sent_ms {
            Some(s) if s <= due_ms => State::Met,
            Some(_) => State::Late,
            None if now_ms >= due_ms => State::Overdue,
            None => State::Pending,
        };
        let hours = (sent_ms.unwrap_or(now_ms) - end_ms) / 3_600_000;
        out.push(Discharge {
            encounter: eref,
            patient,
            patient_name,
            withheld: false,
            ward: ward_of(tx, &enc, &mut wards)?,
            specialty: specialty_of(&enc),
            consultant: crate::results::escalation::attending(&enc),
            discharged: end.to_owned(),
            signed,
            sent,
            acknowledged,
            delivery,
            hours,
            state,
        });
    }
    out.sort_by(|a, b| a.discharged.cmp(&b.discharged));
    Ok(out)
}

/// Raises the overdue-summary Tasks due at `now` and completes those whose
/// summary has been sent, in `tx`. Returns the Tasks created.
pub fn raise_overdue_in(
    tx: &mut Tx<'_>,
    now: OffsetDateTime,
) -> Result<Vec<String>, TransfersError> {
    let mut created = Vec::new();
    for d in discharges_in(tx, now - LOOKBACK, now)? {
        match d.state {
            State::Met | State::Late => close_overdue_in(tx, &d.encounter, now)?,
            State::Pending => {}
            State::Overdue => {
                tx.lock(&[format!("{}/summary-overdue", d.encounter)])?;
                let any = tx.find(
                    "Task",
                    &format!(
                        "encounter={}&code={TASK_SYSTEM}|{OVERDUE_CODE}",
                        d.encounter
                    ),
                )?;
                if !any.is_empty() {
                    continue;
                }
                let now_s = fhir_time(now);
                let mut task = json!({
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "priority": "urgent",
                    "code": {"coding": [{"system": TASK_SYSTEM, "code": OVERDUE_CODE,
                        "display": "Discharge summary overdue"}]},
                    "focus": {"reference": d.encounter},
                    "for": {"reference": d.patient},
                    "encounter": {"reference": d.encounter},
                    "authoredOn": now_s,
                    "lastModified": now_s,
                    "restriction": {"period": {"end": d.discharged}},
                    "description": format!(
                        "The discharge summary for {} (discharged {} from {}, {}) has not been sent to the GP practice within 24 hours.",
                        d.patient_name, d.discharged, d.ward, d.specialty
                    ),
                });
                if let Some(c) = &d.consultant {
                    task["owner"] = json!({"reference": c});
                }
                created.push(tx.save(task)?.id);
            }
        }
    }
    Ok(created)
}

/// [`raise_overdue_in`] as one audited transaction (`transfers-overdue`).
pub fn raise_overdue(
    svc: &FhirService,
    access: &dyn Access,
    now: OffsetDateTime,
) -> Result<Vec<String>, TransfersError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-overdue", "C");
    let out = raise_overdue_in(&mut tx, now)?;
    tx.commit()?;
    Ok(out)
}

/// One group's figures against the standard.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub discharges: usize,
    /// Those 24 hours or more after discharge (or already sent).
    pub due: usize,
    pub met: usize,
    pub overdue: usize,
}

impl Group {
    /// Percent of those due that were sent within 24 hours (`None` when none is due).
    pub fn percent(&self) -> Option<u32> {
        (self.due > 0).then(|| ((self.met * 100 + self.due / 2) / self.due) as u32)
    }
}

/// The compliance dashboard's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Compliance {
    pub since: String,
    pub total: Group,
    pub by_ward: Vec<Group>,
    pub by_specialty: Vec<Group>,
    pub discharges: Vec<Discharge>,
    /// Deliveries stopped after every route failed, with their Task.
    pub failures: Vec<Value>,
    /// Deliveries withheld because the patient dissented from sharing with
    /// the recipient (their open [`super::DELIVERY_WITHHELD_CODE`] Tasks).
    pub withheld: Vec<Value>,
}

fn group(name: &str, ds: &[&Discharge]) -> Group {
    let count = |s: State| ds.iter().filter(|d| d.state == s).count();
    Group {
        name: name.to_owned(),
        discharges: ds.len(),
        due: ds.len() - count(State::Pending),
        met: count(State::Met),
        overdue: count(State::Overdue),
    }
}

fn groups(ds: &[Discharge], key: impl Fn(&Discharge) -> &str) -> Vec<Group> {
    let mut m: HashMap<&str, Vec<&Discharge>> = HashMap::new();
    for d in ds {
        m.entry(key(d)).or_default().push(d);
    }
    let mut out: Vec<Group> = m.iter().map(|(k, v)| group(k, v)).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The dashboard for discharges since `since`. The figures are the
/// trust's (read as the operator `transfers-dashboard`, audited as such:
/// a compliance figure must count every discharge, not those the viewer
/// happens to be allowed to see); each discharge's patient is named only
/// when the caller may read that patient's record (read as the caller,
/// audited), otherwise shown as withheld.
pub fn compliance(
    svc: &FhirService,
    access: &dyn Access,
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Compliance, TransfersError> {
    // The caller must at least be staff who may see encounters.
    access.check_type(wardline_core::Op::Search, Some("Encounter"))?;
    let system = wardline_core::Trusted::operator("transfers-dashboard");
    let mut tx = svc.begin(&system)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-dashboard", "R");
    let mut discharges = discharges_in(&mut tx, since, now)?;
    let failures = tx.find(
        "Task",
        &format!(
            "code={TASK_SYSTEM}|{}&status={OPEN_TASK}",
            super::DELIVERY_FAILURE_CODE
        ),
    )?;
    let withheld = tx.find(
        "Task",
        &format!(
            "code={TASK_SYSTEM}|{}&status={OPEN_TASK}",
            super::DELIVERY_WITHHELD_CODE
        ),
    )?;
    tx.commit()?;
    let mut seen: HashMap<String, bool> = HashMap::new();
    for d in &mut discharges {
        let visible = match seen.get(&d.patient) {
            Some(v) => *v,
            None => {
                let v = d
                    .patient
                    .strip_prefix("Patient/")
                    .is_some_and(|id| matches!(svc.read_as(access, "Patient", id), Ok(Some(_))));
                seen.insert(d.patient.clone(), v);
                v
            }
        };
        if !visible {
            d.patient_name = "Withheld (not your patient)".to_owned();
            d.withheld = true;
        }
    }
    // A Task names its patient only to a caller who may read them (the
    // patient of a Task outside the period's discharges is read as the
    // caller here, audited).
    let mut masked = |tasks: Vec<Value>, what: &str| -> Vec<Value> {
        tasks
            .into_iter()
            .map(|t| {
                let p = t["for"]["reference"].as_str().unwrap_or_default().to_owned();
                let visible = match seen.get(&p) {
                    Some(v) => *v,
                    None => {
                        let v = p.strip_prefix("Patient/").is_some_and(|id| {
                            matches!(svc.read_as(access, "Patient", id), Ok(Some(_)))
                        });
                        seen.insert(p, v);
                        v
                    }
                };
                if visible {
                    t
                } else {
                    json!({"description": format!("{what} (patient withheld: not your patient)."), "id": t["id"]})
                }
            })
            .collect()
    };
    let failures = masked(failures, "A delivery failed on every route");
    let withheld = masked(
        withheld,
        "A delivery was withheld: the patient dissented from sharing with the recipient",
    );
    let all: Vec<&Discharge> = discharges.iter().collect();
    Ok(Compliance {
        since: fhir_time(since),
        total: group("All wards", &all),
        by_ward: groups(&discharges, |d| &d.ward),
        by_specialty: groups(&discharges, |d| &d.specialty),
        discharges,
        failures,
        withheld,
    })
}

/// The open overdue-summary Tasks owned by `owner` (`Practitioner/{id}`):
/// the consultant team's task list.
pub fn team_overdue(
    svc: &FhirService,
    access: &dyn Access,
    owner: &str,
) -> Result<Vec<Value>, TransfersError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-dashboard", "R");
    let out = tx.find(
        "Task",
        &format!("owner={owner}&code={TASK_SYSTEM}|{OVERDUE_CODE}&status={OPEN_TASK}"),
    )?;
    tx.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_of_those_due() {
        let g = Group {
            name: "x".into(),
            discharges: 4,
            due: 3,
            met: 2,
            overdue: 1,
        };
        assert_eq!(g.percent(), Some(67));
        let none = Group {
            name: "y".into(),
            discharges: 1,
            due: 0,
            met: 0,
            overdue: 0,
        };
        assert_eq!(none.percent(), None);
    }
}
