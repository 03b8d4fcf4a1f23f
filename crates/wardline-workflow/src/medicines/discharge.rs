//! Discharge medicines (TTO, "to take out"): what the patient goes home
//! on, against what they had on the inpatient chart, and whether it is
//! ready for the discharge summary.
//!
//! # The model
//!
//! * A discharge prescription is a `MedicationRequest` of the admission
//!   (`encounter`) with `category` [`CATEGORY_SYSTEM`] `discharge`,
//!   prescribed like any other (`medicines::prescribe::prescribe_in` with
//!   `discharge: true`); a `draft` one waits for release, an `active` one is
//!   released. `cancelled`, `stopped` and `entered-in-error` ones are no
//!   longer on it.
//! * Each is compared with the admission's inpatient prescriptions in force
//!   (`active`, `on-hold`) by medicine — the same VTM (substance) when the
//!   formulary knows both, else the same `Medication`:
//!   - **started**: nothing on the inpatient chart of that medicine;
//!   - **continued**: the same dose ([`super::screening::dose_text`]);
//!   - **changed**: another dose; the reason is the discharge prescription's
//!     first `note` (none given is shown as such);
//!   - and each inpatient prescription in force with no discharge
//!     counterpart is **stopped** on discharge, its reason its
//!     `statusReason` once stopped (none given is shown as such).
//! * **Ready for the discharge summary**: there is at least one discharge
//!   prescription and every one is screened by a pharmacist
//!   ([`super::screening_status`]). A discharge prescription changed after
//!   screening is a new MedicationRequest and so unscreened again — the TTO
//!   is not ready until it is screened.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use wardline_core::{Access, FhirService};

use super::formulary::Entry;
use super::screening::{dose_text, is_discharge, medicine_text};
use super::{MedicinesError, screening_status};
use crate::fhir::{concept_text, reference_id};

/// How a discharge medicine compares with the inpatient chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Started,
    Continued,
    Changed,
    Stopped,
}

impl Change {
    pub fn label(self) -> &'static str {
        match self {
            Change::Started => "Started",
            Change::Continued => "Continued",
            Change::Changed => "Dose changed",
            Change::Stopped => "Stopped",
        }
    }
}

/// One line of the discharge medicines.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub change: Change,
    pub medicine: String,
    /// The discharge prescription (none for a stopped medicine).
    pub prescription: Option<String>,
    /// The dose on discharge (none for a stopped medicine).
    pub dose: Option<String>,
    /// The prescription on the inpatient chart it is compared with.
    pub inpatient: Option<String>,
    pub inpatient_dose: Option<String>,
    /// Why it changed or stopped (`None`: no reason given).
    pub reason: Option<String>,
    /// `unscreened`, `screened` or `queried` (of the discharge prescription).
    pub screening: Option<String>,
    /// `draft` or `active` (of the discharge prescription).
    pub status: Option<String>,
}

/// The discharge medicines of one admission.
#[derive(Debug, Clone, Serialize)]
pub struct DischargeMedicines {
    pub encounter: String,
    pub patient_id: String,
    /// Discharge prescriptions first (in the order prescribed), then the
    /// stopped ones.
    pub lines: Vec<Line>,
    /// Discharge prescriptions not yet screened (or queried).
    pub unscreened: usize,
    /// Every discharge prescription screened (and there is at least one).
    pub ready: bool,
    /// Prescriptions the caller may not see.
    pub withheld: usize,
}

fn in_tto(mr: &Value) -> bool {
    is_discharge(mr) && matches!(mr["status"].as_str(), Some("draft" | "active" | "on-hold"))
}

fn in_force_inpatient(mr: &Value) -> bool {
    !is_discharge(mr) && matches!(mr["status"].as_str(), Some("active" | "on-hold"))
}

/// The discharge medicines of admission `encounter`, as the caller may see
/// them (see the module documentation). `_now` is when they are read.
pub fn discharge_medicines(
    svc: &FhirService,
    access: &dyn Access,
    encounter: &str,
    _now: OffsetDateTime,
) -> Result<DischargeMedicines, MedicinesError> {
    let enc = svc
        .read_as(access, "Encounter", encounter)?
        .ok_or_else(|| MedicinesError::NotFound(format!("There is no admission {encounter}.")))?;
    let found = svc.search_as(
        access,
        "MedicationRequest",
        &[
            ("encounter", format!("Encounter/{encounter}")),
            ("_include", "MedicationRequest:medication".to_owned()),
            ("_sort", "authoredon".to_owned()),
            ("_count", "1000".to_owned()),
        ],
    )?;
    let entry = |mr: &Value| -> Option<Entry> {
        let id = reference_id(&mr["medicationReference"], "Medication")?;
        found
            .included
            .iter()
            .find(|m| m["resourceType"] == "Medication" && m["id"] == id)
            .and_then(Entry::from_medication)
    };
    // The same medicine: the same substance, else the same Medication.
    let key = |mr: &Value| -> String {
        match entry(mr) {
            Some(e) if !e.vtm.code.is_empty() => format!("vtm:{}|{}", e.vtm.system, e.vtm.code),
            _ => format!(
                "ref:{}",
                mr["medicationReference"]["reference"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| medicine_text(mr))
            ),
        }
    };
    let name = |mr: &Value| entry(mr).map_or_else(|| medicine_text(mr), |e| e.name().to_owned());
    let tto: Vec<&Value> = found.resources.iter().filter(|m| in_tto(m)).collect();
    let chart: Vec<&Value> = found
        .resources
        .iter()
        .filter(|m| in_force_inpatient(m))
        .collect();
    let mut matched = vec![false; chart.len()];
    let mut lines = Vec::new();
    for t in &tto {
        let k = key(t);
        let pos = chart
            .iter()
            .enumerate()
            .position(|(i, c)| !matched[i] && key(c) == k);
        let dose = dose_text(t);
        let (change, inpatient, inpatient_dose, reason) = match pos {
            None => (Change::Started, None, None, None),
            Some(i) => {
                matched[i] = true;
                let c = chart[i];
                let cd = dose_text(c);
                let same = cd == dose
                    && key(c) == k
                    && c["medicationReference"] == t["medicationReference"];
                (
                    if same {
                        Change::Continued
                    } else {
                        Change::Changed
                    },
                    c["id"].as_str().map(str::to_owned),
                    Some(cd),
                    if same {
                        None
                    } else {
                        t["note"][0]["text"].as_str().map(str::to_owned)
                    },
                )
            }
        };
        lines.push(Line {
            change,
            medicine: name(t),
            prescription: t["id"].as_str().map(str::to_owned),
            dose: Some(dose),
            inpatient,
            inpatient_dose,
            reason,
            screening: Some(screening_status(t).to_owned()),
            status: t["status"].as_str().map(str::to_owned),
        });
    }
    for (i, c) in chart.iter().enumerate() {
        if matched[i] {
            continue;
        }
        lines.push(Line {
            change: Change::Stopped,
            medicine: name(c),
            prescription: None,
            dose: None,
            inpatient: c["id"].as_str().map(str::to_owned),
            inpatient_dose: Some(dose_text(c)),
            reason: concept_text(&c["statusReason"]),
            screening: None,
            status: None,
        });
    }
    let unscreened = tto
        .iter()
        .filter(|t| screening_status(t) != "screened")
        .count();
    Ok(DischargeMedicines {
        encounter: encounter.to_owned(),
        patient_id: reference_id(&enc["subject"], "Patient")
            .unwrap_or_default()
            .to_owned(),
        ready: !tto.is_empty() && unscreened == 0,
        unscreened,
        lines,
        withheld: found.withheld,
    })
}
