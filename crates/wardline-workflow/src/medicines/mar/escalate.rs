//! Late time-critical doses, escalated to the ward.
//!
//! A dose of a time-critical medicine (formulary `timeCritical`: insulin,
//! anticoagulants, Parkinson's medicines, …) of an `active` prescription
//! with nothing recorded by its time plus `grace` (30 minutes by default,
//! [`super::schedule::TIME_CRITICAL_GRACE`]), or recorded as not given
//! because the medicine was unavailable or could not be given, raises
//! **one** `Task` ([`LATE_DOSE_CODE`], system `pmi::TASK_SYSTEM`,
//! `priority` `urgent`) for the ward's nurse in charge: `location` the
//! patient's ward (from the prescription's encounter's current bed),
//! `performerType` "Nurse in charge", `for` the patient, `focus` the
//! prescription, `identifier` the dose slot. Wardline has no rota of who is
//! in charge of a ward, so the Task is the ward's, shown on its drug round
//! until closed. Once: the slot is locked and its Task looked for in the
//! transaction before one is written. Doses more than a day late are not
//! escalated again after a restart (the look-back is 24 hours).
//!
//! The job (`wardline serve`, every minute) and the CLI (`wardline
//! medicines escalate --now …`) call [`escalate_late`] with the clock
//! injected; nothing here reads the wall clock.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::schedule;
use super::{
    administrations_of, instant_text, omission_of, search_all, slot_id, slot_lock, slot_of, stored,
};
use crate::medicines::formulary::Entry;
use crate::medicines::{DOSE_SLOT_SYSTEM, MedicinesError};
use crate::pmi::TASK_SYSTEM;

/// `Task.code` of a late time-critical dose.
pub const LATE_DOSE_CODE: &str = "late-time-critical-dose";

/// How far back a run looks for late doses.
pub const LOOK_BACK: Duration = Duration::hours(24);

/// Omission reasons of a time-critical dose that are escalated at once.
const ESCALATED_OMISSIONS: [&str; 2] = ["unavailable", "unable"];

/// The ward (`Location` of physical type `wa`) of an encounter's current
/// bed: (id, name).
pub fn ward_of<Rd: wardline_store::Reader + ?Sized>(
    r: &Rd,
    encounter: &Value,
) -> Result<Option<(String, String)>, wardline_fhir::FhirError> {
    let Some(mut loc) = encounter["location"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["status"] == "active" || l["status"].is_null())
        .filter(|l| l["period"]["end"].is_null())
        .filter_map(|l| crate::fhir::reference_id(&l["location"], "Location"))
        .next_back()
        .map(str::to_owned)
    else {
        return Ok(None);
    };
    for _ in 0..6 {
        let Some(l) = stored(r, "Location", &loc)? else {
            return Ok(None);
        };
        let is_ward = l["physicalType"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["code"] == "wa");
        if is_ward {
            return Ok(Some((
                loc,
                l["name"].as_str().unwrap_or_default().to_owned(),
            )));
        }
        match crate::fhir::reference_id(&l["partOf"], "Location") {
            Some(p) => loc = p.to_owned(),
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// Whether a slot's escalation Task exists.
fn escalated(tx: &Tx<'_>, slot: &str) -> Result<bool, MedicinesError> {
    Ok(!search_all(
        tx,
        "Task",
        &[
            ("code", format!("{TASK_SYSTEM}|{LATE_DOSE_CODE}")),
            ("identifier", format!("{DOSE_SLOT_SYSTEM}|{slot}")),
        ],
    )?
    .is_empty())
}

/// Escalates every late time-critical dose at `now` (see the module
/// documentation), in the caller's transaction. Returns the Tasks created.
pub fn escalate_late_in(
    tx: &mut Tx<'_>,
    now: OffsetDateTime,
    grace: Duration,
) -> Result<Vec<String>, MedicinesError> {
    let zone = tx.time_zone().clone();
    let critical: Vec<Entry> = crate::fhir::json_all(&*tx, "Medication")?
        .iter()
        .filter_map(Entry::from_medication)
        .filter(|e| e.time_critical)
        .collect();
    let mut created = Vec::new();
    for chunk in critical.chunks(50) {
        let meds = chunk
            .iter()
            .map(|e| format!("Medication/{}", e.id))
            .collect::<Vec<_>>()
            .join(",");
        let requests = search_all(
            &*tx,
            "MedicationRequest",
            &[("status", "active".to_owned()), ("medication", meds)],
        )?;
        for mr in requests {
            let Some(id) = mr["id"].as_str().map(str::to_owned) else {
                continue;
            };
            // Up to an hour ahead: a dose recorded as not given before its time.
            let due = schedule::slots(
                &mr,
                &zone,
                now - LOOK_BACK,
                now + schedule::EARLY + Duration::seconds(1),
            );
            if due.is_empty() {
                continue;
            }
            let records = administrations_of(&*tx, &id)?;
            for s in due {
                let slot = slot_id(&id, s.at);
                let record = records.iter().find(|m| slot_of(m) == Some(slot.as_str()));
                let omitted_for_supply = record.is_some_and(|m| {
                    m["status"] == "not-done"
                        && omission_of(m).is_some_and(|c| ESCALATED_OMISSIONS.contains(&c))
                });
                let late = record.is_none() && now > s.at + grace;
                if !(late || omitted_for_supply) || escalated(tx, &slot)? {
                    continue;
                }
                // Again under the slot's lock: a nurse may be recording it, or
                // another server escalating it.
                tx.lock(&[slot_lock(&slot), format!("MedicationRequest/{id}")])?;
                let Some(mr_now) = stored(&*tx, "MedicationRequest", &id)? else {
                    continue;
                };
                if mr_now["status"] != "active" || escalated(tx, &slot)? {
                    continue;
                }
                let record = administrations_of(&*tx, &id)?
                    .into_iter()
                    .find(|m| slot_of(m) == Some(slot.as_str()));
                let why = match &record {
                    None if now > s.at + grace => format!(
                        "not recorded {} minutes after its time",
                        (now - s.at).whole_minutes()
                    ),
                    Some(m)
                        if m["status"] == "not-done"
                            && omission_of(m).is_some_and(|c| ESCALATED_OMISSIONS.contains(&c)) =>
                    {
                        format!(
                            "not given: {}",
                            omission_of(m)
                                .and_then(super::omission_display)
                                .unwrap_or("not given")
                        )
                    }
                    _ => continue,
                };
                // Read through the transaction so the audit event names the patient.
                tx.get("MedicationRequest", &id)?;
                let name = chunk
                    .iter()
                    .find(|e| {
                        crate::fhir::reference_id(&mr_now["medicationReference"], "Medication")
                            == Some(e.id.as_str())
                    })
                    .map(|e| e.name().to_owned())
                    .unwrap_or_else(|| "A time-critical medicine".to_owned());
                let ward = match crate::fhir::reference_id(&mr_now["encounter"], "Encounter") {
                    Some(e) => match stored(&*tx, "Encounter", e)? {
                        Some(enc) => ward_of(&*tx, &enc)?,
                        None => None,
                    },
                    None => None,
                };
                let text = format!(
                    "Time-critical dose late: {name}, due {} — {why}.",
                    schedule::local_text(&zone, s.at)
                );
                let now_s = instant_text(now);
                let mut task = json!({
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "priority": "urgent",
                    "identifier": [{"system": DOSE_SLOT_SYSTEM, "value": slot}],
                    "code": {"coding": [{"system": TASK_SYSTEM, "code": LATE_DOSE_CODE,
                        "display": "Late time-critical dose"}]},
                    "description": text,
                    "focus": {"reference": format!("MedicationRequest/{id}")},
                    "for": mr_now["subject"],
                    "authoredOn": now_s,
                    "lastModified": now_s,
                    "performerType": [{"text": "Nurse in charge"}],
                    "note": [{"time": now_s, "text": text}],
                });
                if mr_now["encounter"].is_object() {
                    task["encounter"] = mr_now["encounter"].clone();
                }
                if let Some((wid, wname)) = ward {
                    task["location"] =
                        json!({"reference": format!("Location/{wid}"), "display": wname});
                }
                created.push(tx.save(task)?.id);
            }
        }
    }
    Ok(created)
}

/// [`escalate_late_in`] as one audited transaction for `access` (the job
/// runs it as the operator).
pub fn escalate_late(
    svc: &FhirService,
    access: &dyn Access,
    now: OffsetDateTime,
    grace: Duration,
) -> Result<Vec<String>, MedicinesError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "medicines-escalate", "C");
    let out = escalate_late_in(&mut tx, now, grace)?;
    tx.commit()?;
    Ok(out)
}
