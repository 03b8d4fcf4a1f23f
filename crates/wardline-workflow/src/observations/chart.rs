//! A patient's observation chart: every set (its readings and its NEWS2),
//! oldest first, read as the caller (each read checked and audited).

use serde::Serialize;
use wardline_core::{Access, FhirService};

use super::news2::{Parameter, Response, Vitals};
use super::scoring::{escalation_of, response_of};
use super::{ObservationsError, add_reading, is_score, set_key};
use crate::fhir::search_as_all;

/// One set as the chart shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChartSet {
    pub at: String,
    pub vitals: Vitals,
    pub total: Option<u64>,
    pub response: Option<Response>,
    pub complete: bool,
    pub escalation: Option<String>,
}

impl ChartSet {
    /// A numeric value of a parameter (air or oxygen: 1 or 0; ACVPU: 0
    /// alert, 1 otherwise), for graphs.
    pub fn value(&self, p: Parameter) -> Option<f64> {
        let v = &self.vitals;
        match p {
            Parameter::RespirationRate => v.respiration_rate,
            Parameter::Spo2 => v.spo2,
            Parameter::AirOrOxygen => v.oxygen.map(|o| if o { 1.0 } else { 0.0 }),
            Parameter::SystolicBp => v.systolic_bp,
            Parameter::Pulse => v.pulse,
            Parameter::Consciousness => v.consciousness.map(|c| {
                if c == super::news2::Acvpu::Alert {
                    0.0
                } else {
                    1.0
                }
            }),
            Parameter::Temperature => v.temperature,
        }
    }
}

/// The chart of `patient` (`Patient/{id}`): sets oldest first, and how many
/// readings were withheld from the caller.
pub fn chart(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<(Vec<ChartSet>, usize), ObservationsError> {
    let found = search_as_all(
        svc,
        access,
        "Observation",
        &[("subject", patient.to_owned())],
    )?;
    let mut sets: std::collections::BTreeMap<String, ChartSet> = Default::default();
    for o in &found.resources {
        let Some((_, at)) = set_key(o) else { continue };
        let entry = sets.entry(at.clone()).or_insert_with(|| ChartSet {
            at,
            vitals: Vitals::default(),
            total: None,
            response: None,
            complete: false,
            escalation: None,
        });
        if is_score(o) {
            if o["status"] != "entered-in-error" {
                entry.total = o["valueInteger"].as_u64();
                entry.response = response_of(o);
                entry.complete = o["status"] == "final";
                entry.escalation = escalation_of(o);
            }
        } else {
            add_reading(&mut entry.vitals, o);
        }
    }
    Ok((
        sets.into_values()
            .filter(|s| s.total.is_some() || s.vitals != Vitals::default())
            .collect(),
        found.withheld,
    ))
}
