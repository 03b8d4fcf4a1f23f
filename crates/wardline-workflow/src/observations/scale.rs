//! SpO₂ scale 2: confirmed hypercapnic respiratory failure, recorded per
//! patient by a clinician.
//!
//! The record is a `Flag` (`code` [`super::OBS_SYSTEM`]`|`[`super::SCALE2_CODE`],
//! `status` `active`, `subject` the patient, `author` the clinician,
//! `period.start`); stopping it sets `status` `inactive` and `period.end`.
//! Only a registered clinician records or stops it — a doctor or a
//! registered nurse: a position holding [`Activity::RecordClinical`] and
//! [`Activity::Prescribe`] or [`Activity::AdministerMedication`] (the
//! target saturation is prescribed with the oxygen and the oxygen given);
//! not a healthcare assistant, not clerical staff. That is a write rule,
//! [`ScaleRule`] (registered in `with_rules`), so it holds for the ward
//! page ([`set_scale_two`]) and a plain REST write of the `Flag` alike. A
//! caller acting in no position (a system integration) is left to its
//! access, as for the theatres' rule. Every set scored afterwards reads it
//! ([`super::scoring::scale_in`]); scores already stored keep the scale they
//! were computed on ([`super::SCALE_EXT`]).

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_auth::rbac::Activity;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::rules::{ProposedWrite, RuleTx, WriteRule};
use wardline_core::{Access, FhirService};
use wardline_fhir::FhirError;

use super::{OBS_SYSTEM, ObservationsError, SCALE2_CODE, now_text};
use crate::fhir::search_all;

/// Whether `flag` is a scale-2 record (active or not).
pub fn is_scale_flag(flag: &Value) -> bool {
    flag["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["system"] == OBS_SYSTEM && c["code"] == SCALE2_CODE)
}

/// Whether a position's role may set or clear scale 2 (see the module
/// documentation).
pub fn may_set_scale(role: wardline_auth::rbac::Role) -> bool {
    role.has(Activity::RecordClinical)
        && (role.has(Activity::Prescribe) || role.has(Activity::AdministerMedication))
}

/// The write rule: a scale-2 `Flag` is written (created, changed, stopped)
/// only by a registered clinician.
pub struct ScaleRule;

impl WriteRule for ScaleRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Flag"
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        if !is_scale_flag(w.resource) && !w.current.is_some_and(is_scale_flag) {
            return Ok(());
        }
        let Some(pos) = tx.access().agent().position.clone() else {
            return Ok(());
        };
        let id = pos.strip_prefix("PractitionerRole/").unwrap_or(&pos);
        let role = tx
            .get("PractitionerRole", id)?
            .and_then(|pr| crate::fhir::role_of_position(&pr));
        if role.is_some_and(may_set_scale) {
            return Ok(());
        }
        Err(wardline_core::access::forbidden(format!(
            "Only a doctor or registered nurse may set or stop the NEWS2 SpO₂ scale 2{}.",
            role.map(|r| format!("; your position is {}", r.display()))
                .unwrap_or_default()
        )))
    }
}

/// Whether `flag` is an active scale-2 record.
pub fn is_scale_two(flag: &Value) -> bool {
    flag["status"] == "active" && is_scale_flag(flag)
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
    // Who may: [`ScaleRule`], asked when the Flag is saved.
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
