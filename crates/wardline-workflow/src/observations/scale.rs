//! SpO₂ scale 2: confirmed hypercapnic respiratory failure, recorded per
//! patient by a clinician.
//!
//! The record is a `Flag` (`code` [`super::OBS_SYSTEM`]`|`[`super::SCALE2_CODE`],
//! `status` `active`, `subject` the patient, `author` the clinician,
//! `period.start`); stopping it sets `status` `inactive` and `period.end`.
//! Only a caller whose position may prescribe ([`Activity::Prescribe`]: the
//! target saturation is prescribed with the oxygen) records or stops it,
//! through [`set_scale_two`]. Every set scored afterwards reads it
//! ([`super::scoring::scale_in`]); scores already stored keep the scale they
//! were computed on ([`super::SCALE_EXT`]).

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_auth::rbac::Activity;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService};

use super::{OBS_SYSTEM, ObservationsError, SCALE2_CODE, now_text};
use crate::fhir::search_all;

/// Whether `flag` is an active scale-2 record.
pub fn is_scale_two(flag: &Value) -> bool {
    flag["status"] == "active"
        && flag["code"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["system"] == OBS_SYSTEM && c["code"] == SCALE2_CODE)
}

/// Records (`on`) or stops scale 2 for `patient` (`Patient/{id}`), as one
/// audited transaction (`observations-scale`). Returns the Flag's id.
pub fn set_scale_two(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    on: bool,
    now: OffsetDateTime,
) -> Result<Option<String>, ObservationsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "observations-scale", "U");
    let pid = patient.strip_prefix("Patient/").unwrap_or(patient);
    if tx.get("Patient", pid)?.is_none() {
        return Err(ObservationsError::NotFound(format!(
            "No patient {patient}."
        )));
    }
    let role = crate::fhir::caller_role_in(&mut tx)?;
    if !role.is_some_and(|r| r.has(Activity::Prescribe)) {
        return Err(ObservationsError::Forbidden(
            "Only a clinician who prescribes oxygen may set the SpO₂ scale.".into(),
        ));
    }
    let patient = format!("Patient/{pid}");
    tx.lock(&[format!("news2:{patient}")])?;
    let now_s = now_text(now);
    let active: Vec<Value> = search_all(&tx, "Flag", &[("patient", patient.clone())])?
        .into_iter()
        .filter(is_scale_two)
        .collect();
    let mut out = None;
    if on && active.is_empty() {
        let mut flag = json!({
            "resourceType": "Flag",
            "status": "active",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                      "code": "clinical"}]}],
            "code": {"coding": [{"system": OBS_SYSTEM, "code": SCALE2_CODE,
                "display": "Use NEWS2 SpO₂ scale 2: confirmed hypercapnic respiratory failure (target 88–92%)"}],
                "text": "NEWS2 SpO₂ scale 2"},
            "subject": {"reference": patient},
            "period": {"start": now_s},
        });
        if let Some(who) = access.agent().who.clone() {
            flag["author"] = json!({"reference": who});
        }
        out = Some(tx.save(flag)?.id);
    } else if on {
        out = active[0]["id"].as_str().map(str::to_owned);
    } else {
        for mut f in active {
            f["status"] = json!("inactive");
            f["period"]["end"] = json!(now_s);
            out = Some(tx.save(f)?.id);
        }
    }
    tx.commit()?;
    Ok(out)
}
