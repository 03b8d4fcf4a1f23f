//! The clinic list for the day: what clinic staff work from.
//!
//! One row per slot of the clinic (a `Schedule`) on the local day, in time
//! order: the time, new or follow-up, and — when the slot is taken — the
//! patient, the appointment's status, when they arrived (the attendance
//! `Encounter`'s start) and the outcome. Cancelled appointments leave their
//! slot free and are not listed. Read with the caller's access (each search
//! audited as the view `outpatients-list`); what they may not see is
//! counted, never shown.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use time::Date;
use wardline_core::{Access, FhirService};

use super::clinics::{SlotView, Template, date_text};
use super::{HOLDING, Kind, OUTCOME_EXT, OutpatientsError, sub};
use crate::fhir::reference_id;

/// One row of the clinic list.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub slot: SlotView,
    pub appointment: Option<String>,
    pub patient_id: Option<String>,
    pub patient: Option<String>,
    pub nhs_number: Option<String>,
    pub kind: Option<Kind>,
    /// The appointment's status (`booked`, `arrived`, `fulfilled`, `noshow`).
    pub status: Option<String>,
    pub arrived: Option<String>,
    /// The attendance outcome's label, once recorded.
    pub outcome: Option<String>,
    /// The attendance `Encounter`, once arrived.
    pub encounter: Option<String>,
}

/// The list, and how many appointments the caller may not see.
#[derive(Debug, Clone)]
pub struct ClinicList {
    pub clinic: Template,
    pub day: String,
    pub rows: Vec<Row>,
    pub withheld: usize,
}

/// The clinic list of `schedule` on `day`.
pub fn clinic_list(
    svc: &FhirService,
    access: &dyn Access,
    schedule: &str,
    day: Date,
) -> Result<ClinicList, OutpatientsError> {
    let s = svc
        .read_as(access, "Schedule", schedule)?
        .ok_or_else(|| OutpatientsError::NotFound(format!("There is no clinic {schedule}.")))?;
    let clinic = Template::of(&s).ok_or_else(|| {
        OutpatientsError::NotFound(format!("Schedule/{schedule} is not a clinic template."))
    })?;
    let slots = super::clinics::slots_on(svc, access, schedule, day)?;
    let mut appts: HashMap<String, Value> = HashMap::new();
    let mut patients: HashMap<String, Value> = HashMap::new();
    let mut encounters: HashMap<String, Value> = HashMap::new();
    let mut withheld = 0;
    for chunk in slots.chunks(50) {
        let refs: Vec<String> = chunk.iter().map(|s| format!("Slot/{}", s.id)).collect();
        let found = crate::fhir::search_as_all(
            svc,
            access,
            "Appointment",
            &[
                ("slot", refs.join(",")),
                ("status", [&HOLDING[..], &["noshow"]].concat().join(",")),
                ("_include", "Appointment:patient".to_owned()),
                ("_revinclude", "Encounter:appointment".to_owned()),
            ],
        )?;
        withheld += found.withheld;
        for a in found.resources {
            for sl in a["slot"].as_array().into_iter().flatten() {
                if let Some(id) = reference_id(sl, "Slot") {
                    appts.insert(id.to_owned(), a.clone());
                }
            }
        }
        for r in found.included {
            let id = r["id"].as_str().unwrap_or_default().to_owned();
            match r["resourceType"].as_str() {
                Some("Patient") => {
                    patients.insert(id, r);
                }
                Some("Encounter") => {
                    if let Some(a) = reference_id(&r["appointment"][0], "Appointment") {
                        encounters.insert(a.to_owned(), r.clone());
                    }
                }
                _ => {}
            }
        }
    }
    let rows = slots
        .into_iter()
        .map(|slot| {
            let a = appts.get(&slot.id);
            let patient_id = a.and_then(|a| {
                a["participant"]
                    .as_array()?
                    .iter()
                    .find_map(|p| reference_id(&p["actor"], "Patient"))
                    .map(str::to_owned)
            });
            let p = patient_id.as_ref().and_then(|id| patients.get(id));
            let enc = a
                .and_then(|a| a["id"].as_str())
                .and_then(|id| encounters.get(id));
            Row {
                appointment: a.and_then(|a| a["id"].as_str()).map(str::to_owned),
                patient: p.and_then(crate::orders::request::person_name),
                nhs_number: p.and_then(|p| {
                    p["identifier"]
                        .as_array()?
                        .iter()
                        .find(|i| i["system"] == wardline_fhir::NHS_NUMBER_SYSTEM)?["value"]
                        .as_str()
                        .map(str::to_owned)
                }),
                patient_id,
                kind: a.and_then(Kind::of).or(slot.kind),
                status: a.and_then(|a| a["status"].as_str()).map(str::to_owned),
                arrived: enc
                    .and_then(|e| e["period"]["start"].as_str())
                    .map(str::to_owned),
                outcome: a
                    .and_then(|a| sub(a, OUTCOME_EXT, "label"))
                    .and_then(|v| v["valueString"].as_str())
                    .map(str::to_owned),
                encounter: enc.and_then(|e| e["id"].as_str()).map(str::to_owned),
                slot,
            }
        })
        .collect();
    Ok(ClinicList {
        clinic,
        day: date_text(day),
        rows,
        withheld,
    })
}
