//! NEWS2 computed on arrival, and the escalation it raises.
//!
//! [`ScoreOnArrival`] watches `Observation`. At commit it takes every set
//! (patient, effective instant) a changed reading belongs to — before or
//! after the change, so a withdrawn reading rescores its set — and writes
//! the set's score ([`score_set_in`]).
//!
//! **What is scored.** Only a reading of a `Patient` with a full instant
//! (`effectiveDateTime` with a time, `effectiveInstant`, or
//! `effectivePeriod.start` with a time) taken within the recency window:
//! no more than [`WINDOW_MS`] (24 hours) before now by the hook's clock,
//! and no more than [`SKEW_MS`] (15 minutes, a device's clock ahead) after
//! it. Anything else — a date-only reading, imported history, a reading
//! from the future — is stored exactly as the client sent it and is not
//! scored, so history is never scored nor escalated. The hook never turns
//! a valid write into an error: a set it cannot read is left unscored
//! (a store failure still fails the transaction, as it must).
//!
//! **Cost, O(entries).** A set whose readings all arrive in this write and
//! that has no score yet (a gateway's Bundle, the ward form) is scored from
//! the write's own entries: one read of the score's id, no search. A set
//! completed or changed piecemeal reads its stored readings with one
//! indexed search (`subject`, `date=eq{instant}`). The SpO₂ scale of every
//! patient in the write is one `Flag` search. Reads are past the caller's
//! access: a gateway allowed only `system/Observation.c` still gets its
//! readings scored.
//!
//! **Escalation.** When the score's response is above low, under the lock
//! `news2:Patient/{id}`: if an open (requested or in-progress) escalation
//! Task of the patient is at the same or a higher level, the score is linked
//! to it ([`super::ESCALATION_EXT`]) and no second task is raised (a remote
//! monitor reporting every few minutes does not flood the team); otherwise a
//! new Task is raised (the shared Task convention: kind
//! `task-kind|news2-single-3`, `news2-urgent` or `news2-emergency`, priority
//! `urgent`, or `stat` for an emergency, due in `restriction.period.end`:
//! [`due_after_ms`] after the reading was taken) and linked. A score that
//! falls never touches an open task: only a person completes it
//! ([`super::tasks`]).
//!
//! **The responsible team** ([`responsible`], `Task.owner`): for an
//! admitted patient (an `in-progress` Encounter) the ward (`Location`, the
//! encounter's current place walked up to its ward), also in
//! `Task.location`; for a patient at home, their active `CareTeam` (the
//! community team running their remote monitoring); else their GP
//! practice, the organisation managing their record, or, last, the trust
//! itself (`FhirService::with_trust_organization`): an urgent task always
//! has an owner (`tasks::TaskRule`), so it is never refused and dropped.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use wardline_core::{Change, Tx, WriteHook};
use wardline_fhir::FhirError;

type R<T> = Result<T, FhirError>;

use super::news2::{self, News2, Response, Scale, Vitals};
use super::{
    COMPLETE_EXT, ESCALATION_EXT, NEWS2_CODE, OBS_SYSTEM, RESPONSE_EXT, SCALE_EXT, SNOMED,
    SNOMED_NEWS2, TASK_KIND_SYSTEM, add_reading, is_score, parameter_code, score_id, set_key,
};
use crate::fhir::search_all;

/// How long before now a reading may have been taken and still be scored
/// (and escalated): 24 hours. Older readings are history.
pub const WINDOW_MS: i64 = 24 * 3_600_000;
/// How far ahead of now a reading's time may be (a device clock running
/// fast) and still be scored: 15 minutes.
pub const SKEW_MS: i64 = 15 * 60_000;

/// The write hook: see the module documentation. The service's clinical
/// clock ([`wardline_core::clock`]) decides what is recent (a test moves it).
#[derive(Default)]
pub struct ScoreOnArrival;

/// A set touched by a write: the readings the write creates, and whether
/// it touches the set only by creating readings.
#[derive(Default)]
struct Touched {
    created: Vec<Value>,
    only_creates: bool,
    seen: bool,
}

/// The set key of a reading when it is to be scored at `now_ms`: a
/// `Patient` subject and a full instant within the recency window.
pub fn recent_set_key(obs: &Value, now_ms: i64) -> Option<(String, String)> {
    let (patient, effective) = set_key(obs)?;
    if !effective.contains('T') {
        return None;
    }
    let (at, _) = wardline_fhir::datetime::parse_range(&effective)?;
    (at >= now_ms - WINDOW_MS && at <= now_ms + SKEW_MS).then_some((patient, effective))
}

impl WriteHook for ScoreOnArrival {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Observation"
    }

    fn before_commit(&self, tx: &mut Tx<'_>, changes: &[Change]) -> R<()> {
        let now = tx.now_ms();
        let mut sets: BTreeMap<(String, String), Touched> = BTreeMap::new();
        for c in changes {
            let created = c.before.is_none();
            for (side, after) in [(&c.before, false), (&c.after, true)] {
                let Some(side) = side else { continue };
                let Ok(v) = serde_json::from_str::<Value>(side) else {
                    continue;
                };
                if is_score(&v) || super::parameter_of_code(&v["code"]).is_none() {
                    continue;
                }
                let Some(k) = recent_set_key(&v, now) else {
                    continue;
                };
                let t = sets.entry(k).or_default();
                if !t.seen {
                    t.seen = true;
                    t.only_creates = true;
                }
                if created && after {
                    t.created.push(v);
                } else {
                    t.only_creates = false;
                }
            }
        }
        if sets.is_empty() {
            return Ok(());
        }
        let patients: BTreeSet<&str> = sets.keys().map(|(p, _)| p.as_str()).collect();
        let scales = match scales_in(tx, &patients) {
            Ok(s) => s,
            Err(e) if unscorable(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for ((patient, effective), t) in &sets {
            let scale = if scales.contains(patient.as_str()) {
                Scale::Two
            } else {
                Scale::One
            };
            let given = t.only_creates.then_some(t.created.as_slice());
            match score_set_with(tx, patient, effective, given, scale, now) {
                Ok(_) => {}
                Err(e) if unscorable(&e) => {
                    tracing::warn!(patient, effective, error = %e, "NEWS2 set left unscored");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// An error that means "this set cannot be scored" (a query the store
/// refuses for this data), not a failing store: the write goes on.
fn unscorable(e: &FhirError) -> bool {
    (400..500).contains(&e.status) && e.status != 409
}

/// Patients among `patients` with an active SpO₂ scale-2 `Flag`: one search.
fn scales_in<'p>(tx: &Tx<'_>, patients: &BTreeSet<&'p str>) -> R<BTreeSet<&'p str>> {
    let joined = patients.iter().copied().collect::<Vec<_>>().join(",");
    let flags = search_all(tx, "Flag", &[("patient", joined)])?;
    Ok(patients
        .iter()
        .copied()
        .filter(|p| {
            flags.iter().any(|f| {
                super::scale::is_scale_two(f) && f["subject"]["reference"].as_str() == Some(p)
            })
        })
        .collect())
}

/// The patient's SpO₂ scale: 2 when an active scale-2 `Flag` is recorded.
pub fn scale_in(tx: &Tx<'_>, patient: &str) -> R<Scale> {
    let flags = search_all(tx, "Flag", &[("patient", patient.to_owned())])?;
    Ok(if flags.iter().any(super::scale::is_scale_two) {
        Scale::Two
    } else {
        Scale::One
    })
}

/// The set's current readings (withdrawn ones left out): one search.
pub fn readings_in(tx: &Tx<'_>, patient: &str, effective: &str) -> R<Vec<Value>> {
    let found = search_all(
        tx,
        "Observation",
        &[
            ("subject", patient.to_owned()),
            ("date", format!("eq{effective}")),
        ],
    )?;
    Ok(found
        .into_iter()
        .filter(|o| {
            !is_score(o)
                && set_key(o).is_some_and(|(p, e)| p == patient && e == effective)
                && super::parameter_of_code(&o["code"]).is_some()
        })
        .collect())
}

/// Scores one set now (reading its readings and the patient's scale) and
/// escalates: what the ward form calls after its write.
pub fn score_set_in(
    tx: &mut Tx<'_>,
    patient: &str,
    effective: &str,
    now_ms: i64,
) -> R<Option<News2>> {
    let scale = scale_in(tx, patient)?;
    score_set_with(tx, patient, effective, None, scale, now_ms)
}

/// Scores one set and escalates (see the module documentation): from
/// `given` (the readings a write creates) when the set has no score yet,
/// else from its stored readings. Returns the score, or `None` when the set
/// has no reading left (its score is then withdrawn, `entered-in-error`).
fn score_set_with(
    tx: &mut Tx<'_>,
    patient: &str,
    effective: &str,
    given: Option<&[Value]>,
    scale: Scale,
    now_ms: i64,
) -> R<Option<News2>> {
    let id = score_id(patient, effective);
    let existing = crate::results::stored(tx, "Observation", &id)
        .map_err(|e| wardline_fhir::FhirError::internal(e.to_string()))?;
    let readings = match (given, &existing) {
        (Some(g), None) => g.to_vec(),
        _ => readings_in(tx, patient, effective)?,
    };
    let mut vitals = Vitals::default();
    let mut from = Vec::new();
    for r in &readings {
        if add_reading(&mut vitals, r).is_some()
            && let Some(rid) = r["id"].as_str()
        {
            from.push(json!({"reference": format!("Observation/{rid}")}));
        }
    }
    if from.is_empty() {
        if let Some(mut s) = existing
            && s["status"] != "entered-in-error"
        {
            s["status"] = json!("entered-in-error");
            tx.save(s)?;
        }
        return Ok(None);
    }
    let score = news2::score(&vitals, scale);
    let mut obs = score_resource(&id, patient, effective, &score, from);
    if let Some(e) = existing.as_ref().and_then(escalation_of) {
        // Keep the link to the task that already covers this set.
        set_escalation(&mut obs, &e);
    }
    if score.response > Response::Low {
        let task = escalate_in(tx, patient, effective, &id, &score, now_ms)?;
        set_escalation(&mut obs, &task);
    }
    if existing.as_ref().is_some_and(|e| same_score(e, &obs)) {
        return Ok(Some(score));
    }
    tx.save(obs)?;
    Ok(Some(score))
}

fn same_score(a: &Value, b: &Value) -> bool {
    [
        "status",
        "valueInteger",
        "component",
        "derivedFrom",
        "extension",
    ]
    .iter()
    .all(|k| a[k] == b[k])
}

/// The escalation Task a score is linked to.
pub fn escalation_of(score: &Value) -> Option<String> {
    score["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == ESCALATION_EXT)?["valueReference"]["reference"]
        .as_str()
        .map(str::to_owned)
}

fn set_escalation(obs: &mut Value, task: &str) {
    if let Some(ext) = obs["extension"].as_array_mut() {
        ext.retain(|e| e["url"] != ESCALATION_EXT);
        ext.push(json!({"url": ESCALATION_EXT, "valueReference": {"reference": task}}));
    }
}

/// The score `Observation` of a set (see the parent module documentation).
pub fn score_resource(
    id: &str,
    patient: &str,
    effective: &str,
    score: &News2,
    derived_from: Vec<Value>,
) -> Value {
    let components: Vec<Value> = score
        .parts
        .iter()
        .map(|(p, s)| {
            let (system, code, display, _) = parameter_code(*p);
            json!({"code": {"coding": [{"system": system, "code": code, "display": display}],
                            "text": p.label()},
                   "valueInteger": s})
        })
        .collect();
    let scale = match score.scale {
        Scale::One => 1,
        Scale::Two => 2,
    };
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": if score.complete { "final" } else { "preliminary" },
        "category": [{"coding": [{"system": super::CATEGORY_SYSTEM, "code": "survey"}]}],
        "code": {"coding": [
            {"system": OBS_SYSTEM, "code": NEWS2_CODE, "display": "NEWS2 score"},
            {"system": SNOMED, "code": SNOMED_NEWS2,
             "display": "Royal College of Physicians National Early Warning Score 2 (NEWS2) total score"}],
            "text": "NEWS2"},
        "subject": {"reference": patient},
        "effectiveDateTime": effective,
        "valueInteger": score.total,
        "component": components,
        "derivedFrom": derived_from,
        "extension": [
            {"url": SCALE_EXT, "valueInteger": scale},
            {"url": RESPONSE_EXT, "valueCode": score.response.code()},
            {"url": COMPLETE_EXT, "valueBoolean": score.complete},
        ],
    })
}

/// The task kind (`task-kind` code) of an escalation at `level`.
pub fn task_kind(level: Response) -> Option<&'static str> {
    match level {
        Response::Low => None,
        Response::UrgentWard => Some("news2-single-3"),
        Response::Urgent => Some("news2-urgent"),
        Response::Emergency => Some("news2-emergency"),
    }
}

/// The level of an escalation task kind.
pub fn level_of_kind(code: &str) -> Option<Response> {
    [Response::UrgentWard, Response::Urgent, Response::Emergency]
        .into_iter()
        .find(|l| task_kind(*l) == Some(code))
}

/// The `code` search value matching every NEWS2 escalation kind.
pub fn kinds_query() -> String {
    [Response::UrgentWard, Response::Urgent, Response::Emergency]
        .into_iter()
        .filter_map(task_kind)
        .map(|k| format!("{TASK_KIND_SYSTEM}|{k}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How long after the reading was taken the response is due (local policy
/// read from the RCP 2017 chart's clinical response): emergency —
/// immediate assessment — 15 minutes; urgent (5–6) and a single 3 — an
/// urgent review by a clinician — 60 minutes.
pub fn due_after_ms(level: Response) -> i64 {
    match level {
        Response::Emergency => 15 * 60_000,
        _ => 60 * 60_000,
    }
}

/// Whether `task` is a NEWS2 escalation.
pub fn is_escalation(task: &Value) -> bool {
    task_level(task).is_some()
}

/// The response level an escalation Task was raised at (its kind).
pub fn task_level(task: &Value) -> Option<Response> {
    task["code"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == TASK_KIND_SYSTEM)
        .and_then(|c| c["code"].as_str())
        .and_then(level_of_kind)
}

/// The responsible team of a patient: `(owner, ward)` references. The
/// owner is the ward (`Location`) for an admitted patient, the active
/// `CareTeam` for a patient at home, else their GP, the organisation
/// managing their record, or the trust itself.
pub fn responsible(tx: &Tx<'_>, patient: &str) -> R<(Option<String>, Option<String>)> {
    let encounters = search_all(
        tx,
        "Encounter",
        &[
            ("subject", patient.to_owned()),
            ("status", "in-progress".to_owned()),
        ],
    )?;
    if let Some(e) = encounters.last() {
        let ward = e["location"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["status"] != "completed")
            .filter_map(|l| l["location"]["reference"].as_str())
            .next_back()
            .map(|w| ward_of(tx, w));
        if ward.is_some() {
            return Ok((ward.clone(), ward));
        }
    }
    let teams = search_all(
        tx,
        "CareTeam",
        &[
            ("subject", patient.to_owned()),
            ("status", "active".to_owned()),
        ],
    )?;
    if let Some(id) = teams.first().and_then(|t| t["id"].as_str()) {
        return Ok((Some(format!("CareTeam/{id}")), None));
    }
    // No ward and no team: the patient's GP (practice), else the
    // organisation that manages their record — an urgent escalation is never
    // left unowned (`tasks::TaskRule`, H-280).
    let id = patient.strip_prefix("Patient/").unwrap_or(patient);
    let p = crate::results::stored(tx, "Patient", id)
        .map_err(|e| wardline_fhir::FhirError::internal(e.to_string()))?
        .unwrap_or_default();
    let fallback = p["generalPractitioner"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&p["managingOrganization"]))
        .find_map(|r| r["reference"].as_str())
        .map(str::to_owned)
        // Nobody nearer: the trust itself, so the escalation (and the score
        // raised with it) is never refused for want of an owner.
        .or_else(|| tx.trust_organization().map(|t| format!("Organization/{t}")));
    Ok((fallback, None))
}

/// The ward of a place: the encounter holds the bed; its `partOf` chain
/// (bed, bay, ward) is walked up to the `Location` of `physicalType` `wa`
/// (at most five steps); failing that, the place itself.
fn ward_of(tx: &Tx<'_>, place: &str) -> String {
    let mut at = place.to_owned();
    for _ in 0..5 {
        let Some(id) = at.strip_prefix("Location/") else {
            break;
        };
        let Ok(Some(loc)) = crate::results::stored(tx, "Location", id) else {
            break;
        };
        let kind = loc["physicalType"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["code"] == "wa");
        if kind {
            return at;
        }
        match loc["partOf"]["reference"].as_str() {
            Some(parent) => at = parent.to_owned(),
            None => break,
        }
    }
    place.to_owned()
}

/// Raises (or finds) the escalation Task covering a score; returns
/// `Task/{id}`.
fn escalate_in(
    tx: &mut Tx<'_>,
    patient: &str,
    effective: &str,
    score_id: &str,
    score: &News2,
    now_ms: i64,
) -> R<String> {
    tx.lock(&[format!("news2:{patient}")])?;
    let open = search_all(
        tx,
        "Task",
        &[
            ("patient", patient.to_owned()),
            ("code", kinds_query()),
            ("status", "requested,in-progress".to_owned()),
        ],
    )?;
    if let Some(t) = open
        .iter()
        .filter(|t| task_level(t).is_some_and(|l| l >= score.response))
        .max_by_key(|t| task_level(t))
        .and_then(|t| t["id"].as_str())
    {
        return Ok(format!("Task/{t}"));
    }
    let level = score.response;
    let focus = format!("Observation/{score_id}");
    let description = describe(score);
    let taken = wardline_fhir::datetime::parse_range(effective).map_or(now_ms, |(s, _)| s);
    let due = wardline_fhir::datetime::format_instant(taken + due_after_ms(level));
    let code = json!({"coding": [{"system": TASK_KIND_SYSTEM, "code": task_kind(level),
                                  "display": level.label()}],
                      "text": "NEWS2 escalation"});
    // The same set, its readings arriving one by one (a batch's entries
    // are separate transactions): its open task is raised, not doubled.
    if let Some(mut t) = open
        .into_iter()
        .find(|t| t["focus"]["reference"].as_str() == Some(focus.as_str()))
    {
        t["priority"] = json!(level.task_priority().unwrap_or("urgent"));
        t["code"] = code;
        t["businessStatus"] = business_status(level);
        t["description"] = json!(description);
        t["restriction"] = json!({"period": {"end": due}});
        let id = tx.save(t)?.id;
        return Ok(format!("Task/{id}"));
    }
    let (owner, ward) = responsible(tx, patient)?;
    let now = wardline_fhir::datetime::format_instant(now_ms);
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": level.task_priority().unwrap_or("urgent"),
        "code": code,
        "businessStatus": business_status(level),
        "description": description,
        "focus": {"reference": focus},
        "for": {"reference": patient},
        "authoredOn": now,
        "lastModified": now,
        "restriction": {"period": {"end": due}},
    });
    if let Some(who) = tx.access().agent().who.clone() {
        task["requester"] = if who.contains('/') {
            json!({"reference": who})
        } else {
            json!({"display": who})
        };
    }
    if let Some(o) = owner {
        task["owner"] = json!({"reference": o});
    }
    if let Some(w) = ward {
        task["location"] = json!({"reference": w});
    }
    let id = tx.save(task)?.id;
    Ok(format!("Task/{id}"))
}

fn business_status(level: Response) -> Value {
    json!({"coding": [{"system": OBS_SYSTEM, "code": level.code(), "display": level.label()}],
           "text": level.label()})
}

fn describe(score: &News2) -> String {
    let level = score.response;
    let scale = if score.scale == Scale::Two {
        " (SpO₂ scale 2)"
    } else {
        ""
    };
    let incomplete = if score.complete {
        String::new()
    } else {
        let missing: Vec<&str> = score.missing().iter().map(|p| p.label()).collect();
        format!("; incomplete set, not measured: {}", missing.join(", "))
    };
    format!(
        "NEWS2 {}{scale}: {}{incomplete}",
        score.total,
        level.label()
    )
}

/// Every NEWS2 score of a patient, oldest first.
pub fn scores_in(tx: &Tx<'_>, patient: &str) -> R<Vec<Value>> {
    let mut s = search_all(
        tx,
        "Observation",
        &[
            ("subject", patient.to_owned()),
            ("code", format!("{OBS_SYSTEM}|{NEWS2_CODE}")),
        ],
    )?;
    s.retain(|o| o["status"] != "entered-in-error");
    s.sort_by(|a, b| {
        a["effectiveDateTime"]
            .as_str()
            .cmp(&b["effectiveDateTime"].as_str())
    });
    Ok(s)
}

/// The scale a stored score was computed on.
pub fn scale_of(score: &Value) -> Option<u64> {
    score["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == SCALE_EXT)?["valueInteger"]
        .as_u64()
}

/// The response recorded on a stored score.
pub fn response_of(score: &Value) -> Option<Response> {
    score["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == RESPONSE_EXT)?["valueCode"]
        .as_str()
        .and_then(Response::from_code)
}
