//! Recording a set of vital signs on the ward: one form, every NEWS2
//! parameter required, each range-checked with its field named.
//!
//! [`record_vitals`] saves one reading per parameter (the codes of
//! [`super::parameter_code`]), all with the same `effectiveDateTime` (the
//! injected `now`), the caller as `performer` and the admission as
//! `encounter`, in one audited transaction (`observations-record`); the
//! score and any escalation are written by the write hook in the same
//! transaction ([`super::scoring`]), so the nurse's 2xx means all of it
//! is stored.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService};

use super::news2::{Acvpu, News2, Parameter, Vitals};
use super::scoring::{escalation_of, scale_in};
use super::{CATEGORY_SYSTEM, ObservationsError, now_text, parameter_code, score_id};

/// The form as submitted (strings as typed).
#[derive(Debug, Clone, Default)]
pub struct VitalsForm {
    pub respiration_rate: String,
    pub spo2: String,
    /// `air` or `oxygen`.
    pub oxygen: String,
    pub systolic_bp: String,
    pub pulse: String,
    /// `A`, `C`, `V`, `P` or `U`.
    pub consciousness: String,
    pub temperature: String,
}

/// The form's fields: (name, label, lowest and highest accepted value).
pub const RANGES: [(&str, &str, f64, f64); 5] = [
    ("respiration_rate", "Respiration rate", 0.0, 80.0),
    ("spo2", "SpO₂", 50.0, 100.0),
    ("systolic_bp", "Systolic blood pressure", 40.0, 300.0),
    ("pulse", "Pulse", 20.0, 300.0),
    ("temperature", "Temperature", 25.0, 45.0),
];

fn field(field: &str, message: String) -> ObservationsError {
    ObservationsError::Field {
        field: field.to_owned(),
        message,
    }
}

fn number(name: &str, raw: &str) -> Result<f64, ObservationsError> {
    let (_, label, lo, hi) =
        RANGES
            .iter()
            .find(|r| r.0 == name)
            .copied()
            .unwrap_or((name, name, f64::MIN, f64::MAX));
    let t = raw.trim();
    if t.is_empty() {
        return Err(field(name, format!("Enter the {}", label.to_lowercase())));
    }
    let v: f64 = t
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| field(name, format!("{label} must be a number")))?;
    if v < lo || v > hi {
        return Err(field(
            name,
            format!("{label} must be between {lo} and {hi}: {t} is not a plausible reading"),
        ));
    }
    Ok(v)
}

/// Parses and checks the form: the first wrong field, named.
pub fn parse(f: &VitalsForm) -> Result<Vitals, ObservationsError> {
    let oxygen = match f.oxygen.trim() {
        "air" => false,
        "oxygen" => true,
        _ => {
            return Err(field(
                "oxygen",
                "Select whether the patient is on air or oxygen".into(),
            ));
        }
    };
    let consciousness = Acvpu::from_code(f.consciousness.trim()).ok_or_else(|| {
        field(
            "consciousness",
            "Select the level of consciousness (ACVPU)".into(),
        )
    })?;
    Ok(Vitals {
        respiration_rate: Some(number("respiration_rate", &f.respiration_rate)?),
        spo2: Some(number("spo2", &f.spo2)?),
        oxygen: Some(oxygen),
        systolic_bp: Some(number("systolic_bp", &f.systolic_bp)?),
        pulse: Some(number("pulse", &f.pulse)?),
        consciousness: Some(consciousness),
        temperature: Some(number("temperature", &f.temperature)?),
    })
}

/// One reading as a vital-signs `Observation`.
pub fn reading(p: Parameter, v: &Vitals, patient: &str, effective: &str) -> Option<Value> {
    let (system, code, display, unit) = parameter_code(p);
    let mut o = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": p.label()},
        "subject": {"reference": patient},
        "effectiveDateTime": effective,
    });
    let q = |x: f64| json!({"value": x, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit});
    match p {
        Parameter::RespirationRate => o["valueQuantity"] = q(v.respiration_rate?),
        Parameter::Spo2 => o["valueQuantity"] = q(v.spo2?),
        Parameter::SystolicBp => o["valueQuantity"] = q(v.systolic_bp?),
        Parameter::Pulse => o["valueQuantity"] = q(v.pulse?),
        Parameter::Temperature => o["valueQuantity"] = q(v.temperature?),
        Parameter::AirOrOxygen => o["valueBoolean"] = json!(v.oxygen?),
        Parameter::Consciousness => {
            let c = v.consciousness?;
            o["valueCodeableConcept"] = json!({"coding": [{"system": super::ACVPU_SYSTEM,
                "code": c.code(), "display": c.label()}], "text": c.label()});
        }
    }
    Some(o)
}

/// What recording a set did.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// `Observation/{id}` of the score.
    pub score: String,
    pub news2: News2,
    /// `Task/{id}` of the escalation covering it, if any.
    pub escalation: Option<String>,
}

/// Records the form for `patient` (`Patient/{id}`) in `encounter`, as one
/// audited transaction (see the module documentation).
pub fn record_vitals(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    encounter: Option<&str>,
    form: &VitalsForm,
    now: OffsetDateTime,
) -> Result<Recorded, ObservationsError> {
    let vitals = parse(form)?;
    let pid = patient.strip_prefix("Patient/").unwrap_or(patient);
    let patient = format!("Patient/{pid}");
    let effective = now_text(now);
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "observations-record", "C");
    if tx.get("Patient", pid)?.is_none() {
        return Err(ObservationsError::NotFound(format!(
            "No patient {patient}."
        )));
    }
    for p in Parameter::ALL {
        let Some(mut o) = reading(p, &vitals, &patient, &effective) else {
            continue;
        };
        if let Some(e) = encounter {
            o["encounter"] = json!({"reference": e});
        }
        if let Some(who) = access.agent().who.clone() {
            o["performer"] = json!([{"reference": who}]);
        }
        tx.save(o)?;
    }
    tx.commit()?;
    // What the hook wrote, read back as the caller.
    let id = score_id(&patient, &effective);
    let mut tx = svc.begin(access)?;
    let stored = tx
        .get("Observation", &id)?
        .ok_or_else(|| ObservationsError::Store(format!("The score {id} was not written.")))?;
    let scale = scale_in(&tx, &patient)?;
    Ok(Recorded {
        score: format!("Observation/{id}"),
        news2: super::news2::score(&vitals, scale),
        escalation: escalation_of(&stored),
    })
}
