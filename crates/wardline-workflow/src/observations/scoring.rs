//! NEWS2 computed on arrival, and the escalation it raises.
//!
//! [`ScoreOnArrival`] watches `Observation`. At commit it takes every set
//! (patient, `effectiveDateTime`) a changed reading belongs to — before or
//! after the change, so a withdrawn reading rescores its set — reads the
//! set's current readings (one search), the patient's scale (one search of
//! `Flag`), and writes the set's score ([`score_set_in`]). Reads are past the
//! caller's access: a gateway allowed only `system/Observation.c` still gets
//! its readings scored. A reading without a `Patient` subject or an
//! `effectiveDateTime` belongs to no set and is not scored.
//!
//! **Escalation.** When the score's response is above low, under the lock
//! `news2:Patient/{id}`: if an open (requested or in-progress) escalation
//! Task of the patient is at the same or a higher level, the score is linked
//! to it ([`super::ESCALATION_EXT`]) and no second task is raised (a remote
//! monitor reporting every few minutes does not flood the team); otherwise a
//! new Task is raised (priority `urgent`, or `stat` for an emergency) and
//! linked. `authoredOn` is the set's time (the readings' clock, not the
//! server's). A score that falls never touches an open task: only a person
//! completes it ([`super::tasks`]).
//!
//! **The responsible team** ([`responsible`]): for an admitted patient (an
//! `in-progress` Encounter) the ward (`Task.location`, the encounter's
//! current location) and the attending consultant (`Task.owner`, as results
//! escalation reads it); for a patient at home, their active `CareTeam`
//! (`Task.owner`: the community team running their remote monitoring). A
//! patient with neither still gets the task, unowned, listed first on the
//! task list as "No responsible team": it is never dropped.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use wardline_core::{Change, Tx, WriteHook};
use wardline_fhir::FhirError;

type R<T> = Result<T, FhirError>;

use super::news2::{self, News2, Response, Scale, Vitals};
use super::{
    COMPLETE_EXT, ESCALATION_CODE, ESCALATION_EXT, NEWS2_CODE, OBS_SYSTEM, RESPONSE_EXT, SCALE_EXT,
    SNOMED, SNOMED_NEWS2, TASK_SYSTEM, add_reading, is_score, parameter_code, score_id, set_key,
};
use crate::fhir::search_all;

/// The write hook: see the module documentation.
pub struct ScoreOnArrival;

impl WriteHook for ScoreOnArrival {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Observation"
    }

    fn before_commit(&self, tx: &mut Tx<'_>, changes: &[Change]) -> R<()> {
        let mut sets = BTreeSet::new();
        for c in changes {
            for side in [&c.before, &c.after].into_iter().flatten() {
                // Cheap: only parse what may be a reading.
                let Ok(v) = serde_json::from_str::<Value>(side) else {
                    continue;
                };
                if is_score(&v) || super::parameter_of_code(&v["code"]).is_none() {
                    continue;
                }
                if let Some(k) = set_key(&v) {
                    sets.insert(k);
                }
            }
        }
        for (patient, effective) in sets {
            score_set_in(tx, &patient, &effective)?;
        }
        Ok(())
    }
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

/// The set's current readings (withdrawn ones left out).
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

/// Scores one set and escalates (see the module documentation). Returns
/// the score, or `None` when the set has no reading left (its score is
/// then withdrawn, `entered-in-error`).
pub fn score_set_in(tx: &mut Tx<'_>, patient: &str, effective: &str) -> R<Option<News2>> {
    let readings = readings_in(tx, patient, effective)?;
    let id = score_id(patient, effective);
    let mut vitals = Vitals::default();
    let mut from = Vec::new();
    for r in &readings {
        if add_reading(&mut vitals, r).is_some()
            && let Some(rid) = r["id"].as_str()
        {
            from.push(json!({"reference": format!("Observation/{rid}")}));
        }
    }
    let existing = crate::results::stored(tx, "Observation", &id)
        .map_err(|e| wardline_fhir::FhirError::internal(e.to_string()))?;
    if from.is_empty() {
        if let Some(mut s) = existing
            && s["status"] != "entered-in-error"
        {
            s["status"] = json!("entered-in-error");
            tx.save(s)?;
        }
        return Ok(None);
    }
    let scale = scale_in(tx, patient)?;
    let score = news2::score(&vitals, scale);
    let mut obs = score_resource(&id, patient, effective, &score, from);
    if let Some(e) = existing.as_ref().and_then(escalation_of) {
        // Keep the link to the task that already covers this set.
        set_escalation(&mut obs, &e);
    }
    if score.response > Response::Low {
        let task = escalate_in(tx, patient, effective, &id, &score)?;
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

/// Whether `task` is a NEWS2 escalation.
pub fn is_escalation(task: &Value) -> bool {
    task["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["system"] == TASK_SYSTEM && c["code"] == ESCALATION_CODE)
}

/// The response level an escalation Task was raised at.
pub fn task_level(task: &Value) -> Option<Response> {
    task["businessStatus"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == OBS_SYSTEM)
        .and_then(|c| c["code"].as_str())
        .and_then(Response::from_code)
}

/// The responsible team of a patient: `(owner, ward)` references.
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
            .map(str::to_owned);
        let consultant = crate::results::escalation::attending(e);
        return Ok((consultant, ward.map(|w| ward_of(tx, &w))));
    }
    let teams = search_all(
        tx,
        "CareTeam",
        &[
            ("subject", patient.to_owned()),
            ("status", "active".to_owned()),
        ],
    )?;
    Ok((
        teams
            .first()
            .and_then(|t| t["id"].as_str())
            .map(|id| format!("CareTeam/{id}")),
        None,
    ))
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
) -> R<String> {
    tx.lock(&[format!("news2:{patient}")])?;
    let open = search_all(
        tx,
        "Task",
        &[
            ("patient", patient.to_owned()),
            ("code", format!("{TASK_SYSTEM}|{ESCALATION_CODE}")),
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
    // The same set, its readings arriving one by one (a batch's entries
    // are separate transactions): its open task is raised, not doubled.
    if let Some(mut t) = open
        .into_iter()
        .find(|t| t["focus"]["reference"].as_str() == Some(focus.as_str()))
    {
        t["priority"] = json!(level.task_priority().unwrap_or("urgent"));
        t["businessStatus"] = business_status(level);
        t["description"] = json!(description);
        let id = tx.save(t)?.id;
        return Ok(format!("Task/{id}"));
    }
    let (owner, ward) = responsible(tx, patient)?;
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": level.task_priority().unwrap_or("urgent"),
        "code": {"coding": [{"system": TASK_SYSTEM, "code": ESCALATION_CODE,
                             "display": "NEWS2 escalation"}]},
        "businessStatus": business_status(level),
        "description": description,
        "focus": {"reference": focus},
        "for": {"reference": patient},
        "authoredOn": effective,
        "lastModified": effective,
    });
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
