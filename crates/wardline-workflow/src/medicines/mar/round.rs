//! What the drug round and the patient's chart show: each prescription's
//! dose slots in a window with their state (not yet due, due, overdue —
//! a time-critical one marked late —, given, not given, not due because the
//! prescription is on hold or ended), who recorded them and when, and for an
//! as-required medicine the last dose, the earliest next and what remains
//! of its 24-hour maximum. Read with the caller's access (the ward's board
//! and searches as them, audited); the formulary is read as the system.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use wardline_core::{Access, FhirService, Reads};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::LocalZone;

use super::escalate::LATE_DOSE_CODE;
use super::schedule::{self, Slot, Timeliness};
use super::{
    amount_text, dose_range, instant_text, omission_display, omission_of, prescribed_dose,
    prn_limits, slot_id, slot_of,
};
use crate::medicines::formulary::Entry;
use crate::medicines::{BATCH_EXT, CATEGORY_SYSTEM, DOSE_SLOT_SYSTEM, Kind, MedicinesError, kind};
use crate::pmi::TASK_SYSTEM;

/// The state of a dose slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DoseState {
    NotYetDue,
    Due,
    Overdue,
    Given,
    NotGiven,
    /// Nothing recorded and the prescription is on hold or ended.
    NotDue,
}

impl DoseState {
    pub fn code(self) -> &'static str {
        match self {
            DoseState::NotYetDue => "not-yet-due",
            DoseState::Due => "due",
            DoseState::Overdue => "overdue",
            DoseState::Given => "given",
            DoseState::NotGiven => "not-given",
            DoseState::NotDue => "not-due",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            DoseState::NotYetDue => "Not yet due",
            DoseState::Due => "Due",
            DoseState::Overdue => "Overdue",
            DoseState::Given => "Given",
            DoseState::NotGiven => "Not given",
            DoseState::NotDue => "Not due",
        }
    }
}

/// A dose recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub id: String,
    pub given: bool,
    /// When given (local `YYYY-MM-DD HH:MM`); for an omission, when recorded.
    pub at: String,
    pub by: String,
    pub witness: Option<String>,
    pub dose: Option<String>,
    pub route: Option<String>,
    pub site: Option<String>,
    pub batch: Option<String>,
    /// The omission reason's code and words.
    pub reason: Option<(String, String)>,
    pub note: Option<String>,
}

/// One dose slot.
#[derive(Debug, Clone, Serialize)]
pub struct Dose {
    pub slot: Slot,
    /// The dose-slot identifier (`{prescription}/{instant}`).
    pub slot_id: String,
    /// The instant as the forms post it back.
    pub instant: String,
    pub state: DoseState,
    /// Overdue past the time-critical grace.
    pub late_critical: bool,
    pub record: Option<Recorded>,
    /// A late-dose Task was raised for it.
    pub escalated: bool,
}

/// An as-required medicine's position now.
#[derive(Debug, Clone, Serialize)]
pub struct Prn {
    pub last: Option<String>,
    /// The earliest time the usual dose may be given (local), `None` when
    /// it can never be (over the maximum alone).
    pub next: Option<String>,
    pub may_give_now: bool,
    pub given_24h: f64,
    pub max_24h: Option<f64>,
    pub remaining: Option<f64>,
    pub interval: Option<String>,
    pub unit: String,
    /// Every dose of the last 24 hours.
    pub recent: Vec<Recorded>,
}

/// One prescription on the round or chart.
#[derive(Debug, Clone, Serialize)]
pub struct Prescription {
    pub id: String,
    pub medicine: String,
    pub status: String,
    pub kind: Kind,
    /// "1 g oral", "2–10 units subcutaneous".
    pub dose: String,
    pub instructions: Option<String>,
    pub time_critical: bool,
    pub controlled_drug: Option<String>,
    pub needs_witness: bool,
    pub high_risk: bool,
    /// The unit the dose is counted in.
    pub unit: String,
    pub prescribed: Option<f64>,
    pub range: Option<(Option<f64>, Option<f64>)>,
    pub doses: Vec<Dose>,
    pub prn: Option<Prn>,
    /// Recorded doses outside any slot in the window (infusions).
    pub other: Vec<Recorded>,
}

impl Prescription {
    pub fn count(&self, s: DoseState) -> usize {
        self.doses.iter().filter(|d| d.state == s).count()
    }
}

/// A patient on the round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundPatient {
    pub id: String,
    pub name: String,
    pub nhs_number: Option<String>,
    pub bed: String,
    pub prescriptions: Vec<Prescription>,
    pub due: usize,
    pub overdue: usize,
    pub late_critical: usize,
}

/// A ward's drug round.
#[derive(Debug, Clone, Serialize)]
pub struct DrugRound {
    pub ward_id: String,
    pub ward: String,
    pub site: String,
    /// Local `YYYY-MM-DD HH:MM`.
    pub now: String,
    pub from: String,
    pub to: String,
    pub patients: Vec<RoundPatient>,
    /// Occupied beds whose patient the caller may not see.
    pub withheld: usize,
    /// Open late-dose Tasks of the ward's patients: (Task id, text).
    pub escalations: Vec<(String, String)>,
}

/// A patient's administration record.
#[derive(Debug, Clone, Serialize)]
pub struct PatientMar {
    pub patient_id: String,
    pub now: String,
    /// The local days shown, oldest first.
    pub days: Vec<String>,
    pub prescriptions: Vec<Prescription>,
    /// Prescriptions the caller may not see.
    pub withheld: usize,
}

fn me(e: FhirError) -> MedicinesError {
    e.into()
}

fn adt(e: crate::adt::AdtError) -> MedicinesError {
    match e.status() {
        403 => MedicinesError::Forbidden(e.message),
        404 => MedicinesError::NotFound(e.message),
        400 => MedicinesError::Invalid(e.message),
        409 => MedicinesError::Conflict(e.message),
        _ => MedicinesError::Store(e.message),
    }
}

fn recorded(ma: &Value, zone: &LocalZone) -> Recorded {
    let given = ma["status"] == "completed";
    let performers: Vec<&Value> = ma["performer"].as_array().into_iter().flatten().collect();
    let role = |p: &&Value| {
        p["function"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["code"].as_str())
            .unwrap_or("performer")
            .to_owned()
    };
    let name = |p: &Value| {
        p["actor"]["display"]
            .as_str()
            .or_else(|| p["actor"]["reference"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let at_text = if given {
        ma["effectiveDateTime"].as_str()
    } else {
        ma["note"][0]["time"]
            .as_str()
            .or_else(|| ma["effectiveDateTime"].as_str())
    };
    let dose = &ma["dosage"]["dose"];
    Recorded {
        id: ma["id"].as_str().unwrap_or_default().to_owned(),
        given,
        at: at_text
            .and_then(|s| schedule::instant_of(s, zone, false))
            .map(|t| schedule::local_text(zone, t))
            .unwrap_or_default(),
        by: performers
            .iter()
            .find(|p| role(p) != "witness")
            .map(|p| name(p))
            .unwrap_or_default(),
        witness: performers
            .iter()
            .find(|p| role(p) == "witness")
            .map(|p| name(p)),
        dose: dose["value"].as_f64().map(|v| {
            format!("{} {}", amount_text(v), super::unit_of(dose))
                .trim()
                .to_owned()
        }),
        route: crate::fhir::concept_text(&ma["dosage"]["route"]),
        site: crate::fhir::concept_text(&ma["dosage"]["site"]),
        batch: ma["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"] == BATCH_EXT)
            .and_then(|e| e["valueString"].as_str())
            .map(str::to_owned),
        reason: omission_of(ma)
            .map(|c| (c.to_owned(), omission_display(c).unwrap_or(c).to_owned())),
        note: ma["note"][0]["text"]
            .as_str()
            .filter(|t| *t != "Recorded")
            .map(str::to_owned)
            .or_else(|| ma["statusReason"][0]["text"].as_str().map(str::to_owned)),
    }
}

fn dose_text(mr: &Value) -> String {
    let d = &mr["dosageInstruction"][0];
    let amount = match (prescribed_dose(mr), dose_range(mr)) {
        (Some((v, u)), _) => format!("{} {u}", amount_text(v)),
        (None, Some((lo, hi, u))) => format!(
            "{}–{} {u}",
            lo.map_or("?".to_owned(), amount_text),
            hi.map_or("?".to_owned(), amount_text)
        ),
        _ => String::new(),
    };
    let rate = d["doseAndRate"][0]["rateQuantity"].as_object().map(|_| {
        crate::fhir::quantity_text(&d["doseAndRate"][0]["rateQuantity"]).unwrap_or_default()
    });
    let route = crate::fhir::concept_text(&d["route"]).unwrap_or_default();
    [amount, rate.unwrap_or_default(), route]
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds one prescription's view at `now` over `[from, to)`.
#[allow(clippy::too_many_arguments)]
fn prescription(
    mr: &Value,
    entry: Option<&Entry>,
    records: &[&Value],
    escalated: &HashMap<String, String>,
    zone: &LocalZone,
    now: OffsetDateTime,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Prescription {
    let id = mr["id"].as_str().unwrap_or_default().to_owned();
    let status = mr["status"].as_str().unwrap_or("unknown").to_owned();
    let k = kind(mr);
    let tc = entry.is_some_and(|e| e.time_critical);
    let by_slot: HashMap<&str, &Value> = records
        .iter()
        .filter_map(|m| Some((slot_of(m)?, *m)))
        .collect();
    let doses = schedule::slots(mr, zone, from, to)
        .into_iter()
        .map(|s| {
            let sid = slot_id(&id, s.at);
            let record = by_slot.get(sid.as_str());
            let state = match record {
                Some(m) if m["status"] == "completed" => DoseState::Given,
                Some(_) => DoseState::NotGiven,
                None if status != "active" => DoseState::NotDue,
                None => match schedule::timeliness(s.at, now, tc) {
                    Timeliness::NotYetDue => DoseState::NotYetDue,
                    Timeliness::Due => DoseState::Due,
                    Timeliness::Overdue => DoseState::Overdue,
                },
            };
            Dose {
                instant: instant_text(s.at),
                late_critical: state == DoseState::Overdue && tc,
                record: record.map(|m| recorded(m, zone)),
                escalated: escalated.contains_key(&sid),
                slot_id: sid,
                slot: s,
                state,
            }
        })
        .collect();
    let (unit, prescribed) = match (prescribed_dose(mr), dose_range(mr)) {
        (Some((v, u)), _) => (u, Some(v)),
        (None, Some((_, _, u))) => (u, None),
        _ => (
            entry.map(|e| e.unit_of_dose.clone()).unwrap_or_default(),
            None,
        ),
    };
    let prn = (k == Kind::AsRequired).then(|| {
        let limits = prn_limits(mr);
        let mut given: Vec<(OffsetDateTime, f64, &Value)> = records
            .iter()
            .filter(|m| m["status"] == "completed")
            .filter_map(|m| {
                let t = schedule::instant_of(m["effectiveDateTime"].as_str()?, zone, false)?;
                let q = &m["dosage"]["dose"];
                let v = schedule::convert(q["value"].as_f64()?, &super::unit_of(q), &unit)?;
                Some((t, v, *m))
            })
            .filter(|(t, _, _)| *t <= now)
            .collect();
        given.sort_by_key(|g| g.0);
        let doses: Vec<(OffsetDateTime, f64)> = given.iter().map(|(t, v, _)| (*t, *v)).collect();
        let amount = prescribed
            .or_else(|| dose_range(mr).and_then(|(lo, _, _)| lo))
            .unwrap_or(1.0);
        let next = schedule::next_allowed(&doses, amount, limits, now);
        let given_24h: f64 = doses
            .iter()
            .filter(|(t, _)| *t > now - Duration::hours(24))
            .map(|(_, v)| v)
            .sum();
        Prn {
            last: given.last().map(|(t, _, _)| schedule::local_text(zone, *t)),
            next: next.map(|t| schedule::local_text(zone, t)),
            may_give_now: next == Some(now) && status == "active",
            given_24h,
            max_24h: limits.max_24h,
            remaining: limits.max_24h.map(|m| (m - given_24h).max(0.0)),
            interval: limits.interval.map(|i| {
                let h = i.whole_minutes() as f64 / 60.0;
                format!("{} hours", amount_text(h))
            }),
            unit: unit.clone(),
            recent: given
                .iter()
                .filter(|(t, _, _)| *t > now - Duration::hours(24))
                .map(|(_, _, m)| recorded(m, zone))
                .collect(),
        }
    });
    let other = if k == Kind::Infusion {
        records.iter().map(|m| recorded(m, zone)).collect()
    } else {
        Vec::new()
    };
    Prescription {
        medicine: entry
            .map(|e| e.name().to_owned())
            .or_else(|| {
                mr["medicationReference"]["display"]
                    .as_str()
                    .map(str::to_owned)
            })
            .or_else(|| crate::fhir::concept_text(&mr["medicationCodeableConcept"]))
            .unwrap_or_else(|| "Unknown medicine".to_owned()),
        kind: k,
        dose: dose_text(mr),
        instructions: mr["dosageInstruction"][0]["text"]
            .as_str()
            .or_else(|| mr["reasonCode"][0]["text"].as_str())
            .map(str::to_owned),
        time_critical: tc,
        controlled_drug: entry.and_then(|e| e.controlled_drug.clone()),
        needs_witness: entry.is_some_and(Entry::needs_witness),
        high_risk: entry.is_some_and(|e| e.high_risk),
        range: dose_range(mr).map(|(lo, hi, _)| (lo, hi)),
        unit,
        prescribed,
        doses,
        prn,
        other,
        id,
        status,
    }
}

fn is_discharge(mr: &Value) -> bool {
    mr["category"].as_array().into_iter().flatten().any(|c| {
        c["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["system"] == CATEGORY_SYSTEM && x["code"] == "discharge")
    })
}

/// Every match of a search for `access` by `param` over `refs` (full
/// references), a page of up to 1000 per group of `group` references (a
/// group whose page is full is asked reference by reference; one whose own
/// page is full is an error, never a silent cut).
fn search_by(
    reads: &Reads<'_>,
    t: &str,
    (param, refs, group): (&str, &[String], usize),
    extra: &[(&str, String)],
) -> Result<(Vec<Value>, usize), MedicinesError> {
    let mut out = Vec::new();
    let mut withheld = 0;
    for group in refs.chunks(group) {
        let ask = |rs: &[String]| {
            let mut params: Vec<(&str, String)> =
                vec![(param, rs.join(",")), ("_count", "1000".to_owned())];
            params.extend(extra.iter().cloned());
            reads.search(t, &params).map_err(me)
        };
        let found = ask(group)?;
        if !found.more {
            withheld += found.withheld;
            out.extend(found.resources);
            continue;
        }
        for p in group {
            let found = ask(std::slice::from_ref(p))?;
            if found.more {
                return Err(MedicinesError::Store(format!(
                    "{p} has more {t} records in this window than one page holds."
                )));
            }
            withheld += found.withheld;
            out.extend(found.resources);
        }
    }
    Ok((out, withheld))
}

/// Prescriptions by patient, how many were withheld, and the open
/// escalations (Task id, text).
type Views = (
    HashMap<String, Vec<Prescription>>,
    usize,
    Vec<(String, String)>,
);

/// The prescriptions, administrations and escalations of `patients` over a
/// window, as views, by patient; its searches are made through `reads`,
/// so a page audits them together ([`FhirService::reads_as`]: one durable
/// commit for the page, not one per search).
fn views_in(
    svc: &FhirService,
    reads: &Reads<'_>,
    patients: &[String],
    statuses: &str,
    now: OffsetDateTime,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Views, MedicinesError> {
    let zone = svc.time_zone().clone();
    let refs: Vec<String> = patients.iter().map(|p| format!("Patient/{p}")).collect();
    let (mrs, withheld) = search_by(
        reads,
        "MedicationRequest",
        ("subject", &refs, 5),
        &[("status", statuses.to_owned())],
    )?;
    let mrs: Vec<Value> = mrs.into_iter().filter(|m| !is_discharge(m)).collect();
    // A slot's dose is recorded no earlier than `EARLY` before it, so the
    // window's records start there; only as-required prescriptions need
    // the 24 hours before `now` (their interval and maximum), read by
    // request.
    let since = from - schedule::EARLY;
    let (mut mas, _) = search_by(
        reads,
        "MedicationAdministration",
        ("subject", &refs, 5),
        &[("effective-time", format!("ge{}", instant_text(since)))],
    )?;
    let prn_since = now - Duration::hours(24);
    if prn_since < since {
        let prn: Vec<String> = mrs
            .iter()
            .filter(|m| kind(m) == Kind::AsRequired)
            .filter_map(|m| m["id"].as_str())
            .map(|id| format!("MedicationRequest/{id}"))
            .collect();
        let (earlier, _) = search_by(
            reads,
            "MedicationAdministration",
            ("request", &prn, 50),
            &[
                ("effective-time", format!("ge{}", instant_text(prn_since))),
                ("effective-time", format!("lt{}", instant_text(since))),
            ],
        )?;
        mas.extend(earlier);
    }
    let (tasks, _) = search_by(
        reads,
        "Task",
        ("patient", &refs, 5),
        &[
            ("code", format!("{TASK_SYSTEM}|{LATE_DOSE_CODE}")),
            ("status", "requested,in-progress".to_owned()),
        ],
    )?;
    let mut escalated: HashMap<String, String> = HashMap::new();
    let mut escalations = Vec::new();
    for t in &tasks {
        let text = t["description"].as_str().unwrap_or_default().to_owned();
        if let Some(s) = t["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"] == DOSE_SLOT_SYSTEM)
            .and_then(|i| i["value"].as_str())
        {
            escalated.insert(s.to_owned(), text.clone());
        }
        escalations.push((t["id"].as_str().unwrap_or_default().to_owned(), text));
    }
    // The formulary as kept in memory (read as the system: it is not
    // patient data; read again after any change).
    let formulary = crate::medicines::formulary::load_shared(svc)?;
    let mut by_request: HashMap<&str, Vec<&Value>> = HashMap::new();
    for m in mas.iter().filter(|m| m["status"] != "entered-in-error") {
        if let Some(r) = crate::fhir::reference_id(&m["request"], "MedicationRequest") {
            by_request.entry(r).or_default().push(m);
        }
    }
    let mut out: HashMap<String, Vec<Prescription>> = HashMap::new();
    for mr in &mrs {
        let Some(pid) = crate::fhir::reference_id(&mr["subject"], "Patient") else {
            continue;
        };
        let id = mr["id"].as_str().unwrap_or_default();
        let entry = crate::fhir::reference_id(&mr["medicationReference"], "Medication")
            .and_then(|m| formulary.entry(m));
        let records = by_request.get(id).cloned().unwrap_or_default();
        out.entry(pid.to_owned()).or_default().push(prescription(
            mr, entry, &records, &escalated, &zone, now, from, to,
        ));
    }
    for list in out.values_mut() {
        // Kind (regular, once only, variable, infusion, as required), then name.
        list.sort_by_key(|p| {
            (
                matches!(p.kind, Kind::AsRequired),
                p.status != "active",
                p.medicine.to_lowercase(),
            )
        });
    }
    Ok((out, withheld, escalations))
}

/// The ward's drug round at `now`: every patient in its beds the caller may
/// see, with their active and on-hold prescriptions' doses in
/// `[now - before, now + after)`.
pub fn drug_round(
    svc: &FhirService,
    access: &dyn Access,
    ward: &str,
    now: OffsetDateTime,
    before: Duration,
    after: Duration,
) -> Result<DrugRound, MedicinesError> {
    let zone = svc.time_zone().clone();
    let board = crate::adt::ward_board(svc, access, ward).map_err(adt)?;
    let mut beds = Vec::new();
    let mut withheld = 0;
    for bay in &board.bays {
        for bed in &bay.beds {
            if let Some(p) = &bed.patient {
                let place = if bay.name.is_empty() {
                    bed.name.clone()
                } else {
                    format!("{} · {}", bay.name, bed.name)
                };
                beds.push((place, p.clone()));
            } else if bed.withheld {
                withheld += 1;
            }
        }
    }
    let ids: Vec<String> = beds.iter().map(|(_, p)| p.id.clone()).collect();
    let (from, to) = (now - before, now + after);
    let (mut by_patient, _, escalations) = svc
        .reads_as(access, |r| {
            Ok(views_in(svc, r, &ids, "active,on-hold", now, from, to))
        })
        .map_err(me)??;
    let patients = beds
        .into_iter()
        .map(|(bed, p)| {
            let prescriptions = by_patient.remove(&p.id).unwrap_or_default();
            let count = |s: DoseState| prescriptions.iter().map(|x| x.count(s)).sum();
            RoundPatient {
                due: count(DoseState::Due),
                overdue: count(DoseState::Overdue),
                late_critical: prescriptions
                    .iter()
                    .flat_map(|x| &x.doses)
                    .filter(|d| d.late_critical)
                    .count(),
                id: p.id,
                name: p.name,
                nhs_number: p.nhs_number,
                bed,
                prescriptions,
            }
        })
        .collect();
    Ok(DrugRound {
        ward_id: board.id,
        ward: board.name,
        site: board.site,
        now: schedule::local_text(&zone, now),
        from: schedule::local_text(&zone, from),
        to: schedule::local_text(&zone, to),
        patients,
        withheld,
        escalations,
    })
}

/// A patient's administration record: the local days from `days_back`
/// days before `now` to the end of `now`'s day, every prescription not
/// entered in error, each slot with what was recorded.
pub fn patient_mar(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    now: OffsetDateTime,
    days_back: i64,
) -> Result<PatientMar, MedicinesError> {
    let zone = svc.time_zone().clone();
    let today = schedule::local(&zone, now).0;
    let start =
        schedule::instant_of(&today, &zone, false).unwrap_or(now) - Duration::days(days_back);
    // The end of today: the start of the local day after.
    let end = schedule::instant_of(&today, &zone, true).unwrap_or(now + Duration::days(1));
    if svc
        .read_as(access, "Patient", patient)
        .map_err(me)?
        .is_none()
    {
        return Err(MedicinesError::NotFound(format!(
            "There is no patient {patient}."
        )));
    }
    let statuses = "active,on-hold,completed,stopped";
    let (mut by_patient, withheld, _) = svc
        .reads_as(access, |r| {
            let one = std::slice::from_ref(&patient.to_owned()).to_vec();
            Ok(views_in(svc, r, &one, statuses, now, start, end))
        })
        .map_err(me)??;
    let mut days = Vec::new();
    let mut t = start + Duration::hours(12);
    while t < end {
        days.push(schedule::local(&zone, t).0);
        t += Duration::days(1);
    }
    days.dedup();
    Ok(PatientMar {
        patient_id: patient.to_owned(),
        now: schedule::local_text(&zone, now),
        days,
        prescriptions: by_patient.remove(patient).unwrap_or_default(),
        withheld,
    })
}
