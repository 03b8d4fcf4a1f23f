//! Prescribing over FHIR REST, through the same rules as the drug chart
//! page ([`super::prescribe`], [`super::discontinue`]).
//!
//! * `POST [base]/MedicationRequest/$prescribe`: a `Parameters` with
//!   `prescription` (resource: a MedicationRequest in the contract's shape —
//!   `subject`, `medicationReference` a formulary `Medication`, one
//!   structured `dosageInstruction`, `reasonCode[0].text` the indication;
//!   see [`super::read_prescription`]) and any number of `override` (parts
//!   `key`, `reason`: the prescriber's reason to go past an alert). The
//!   caller is the prescriber and signs by submitting. **201** with the
//!   saved MedicationRequest; **409** with an OperationOutcome listing the
//!   alerts when decision support stands in the way: one issue per alert,
//!   `diagnostics` its message, `details.coding` its kind
//!   (`ALERT_KIND_SYSTEM`), `details.text` its key (what an `override`
//!   names), and extension `ALERT_GRADE_EXT` its grade (`hard-stop`,
//!   `override`, `advisory`; severity `error` for the first two, `warning`
//!   for advisory). 400 names the element that is wrong; 403 for a caller
//!   who may not prescribe.
//! * `POST [base]/MedicationRequest/{id}/$discontinue`: parameter `reason`
//!   (string, required). 200 with the stopped MedicationRequest; 409 when it
//!   has already ended.

use serde_json::{Value, json};
use wardline_core::{FhirResponse, FhirService, OperationHandler, OperationRequest, OperationSpec};
use wardline_fhir::FhirError;

use super::super::checks::{Alert, Grade, Override};
use super::super::{ALERT_GRADE_EXT, ALERT_KIND_SYSTEM, MedicinesError};

pub const PRESCRIBE_DEFINITION: &str =
    "https://fhir.wardline.invalid/OperationDefinition/MedicationRequest-prescribe";
pub const DISCONTINUE_DEFINITION: &str =
    "https://fhir.wardline.invalid/OperationDefinition/MedicationRequest-discontinue";

/// `MedicationRequest/$prescribe`; registered by `crate::with_operations`.
pub struct PrescribeOperation;

impl PrescribeOperation {
    pub fn spec() -> OperationSpec {
        OperationSpec::type_level(
            "MedicationRequest",
            "prescribe",
            PRESCRIBE_DEFINITION,
            PrescribeOperation,
        )
    }
}

/// `MedicationRequest/{id}/$discontinue`; registered by `crate::with_operations`.
pub struct DiscontinueOperation;

impl DiscontinueOperation {
    pub fn spec() -> OperationSpec {
        OperationSpec::instance(
            "MedicationRequest",
            "discontinue",
            DISCONTINUE_DEFINITION,
            DiscontinueOperation,
        )
    }
}

/// The OperationOutcome of a refusal (the alerts listed, one issue each).
pub fn outcome_of(e: &MedicinesError) -> Value {
    match e {
        MedicinesError::Alerts(alerts) => json!({
            "resourceType": "OperationOutcome",
            "issue": alerts.iter().map(alert_issue).collect::<Vec<_>>(),
        }),
        other => json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code_of(other), "diagnostics": other.message()}],
        }),
    }
}

fn code_of(e: &MedicinesError) -> &'static str {
    match e {
        MedicinesError::Invalid(_) => "invalid",
        MedicinesError::NotFound(_) => "not-found",
        MedicinesError::Forbidden(_) => "forbidden",
        MedicinesError::Alerts(_) => "business-rule",
        MedicinesError::Conflict(_) => "conflict",
        MedicinesError::Store(_) => "exception",
    }
}

fn alert_issue(a: &Alert) -> Value {
    json!({
        "extension": [{"url": ALERT_GRADE_EXT, "valueCode": a.grade.code()}],
        "severity": if a.grade == Grade::Advisory { "warning" } else { "error" },
        "code": "business-rule",
        "details": {"coding": [{"system": ALERT_KIND_SYSTEM, "code": a.kind.code()}], "text": a.key},
        "diagnostics": a.message,
    })
}

fn refusal(e: MedicinesError) -> FhirResponse {
    FhirResponse::json(e.status(), outcome_of(&e))
}

/// The `prescription` and the `override`s of a `$prescribe` Parameters.
pub fn inputs_of(params: &Value) -> Result<(Value, Vec<Override>), FhirError> {
    let mut prescription = None;
    let mut overrides = Vec::new();
    for (i, p) in params["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        match p["name"].as_str() {
            Some("prescription") => {
                if p["resource"]["resourceType"] != "MedicationRequest" {
                    return Err(FhirError::invalid(
                        "parameter 'prescription' must hold a MedicationRequest (resource)",
                    )
                    .at(format!("Parameters.parameter[{i}].resource")));
                }
                prescription = Some(p["resource"].clone());
            }
            Some("override") => {
                let part = |n: &str| {
                    p["part"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|x| x["name"] == n)
                        .and_then(|x| x["valueString"].as_str().or(x["valueCode"].as_str()))
                        .map(str::to_owned)
                };
                let (Some(key), Some(reason)) = (part("key"), part("reason")) else {
                    return Err(FhirError::invalid(
                        "parameter 'override' needs parts 'key' and 'reason' (strings)",
                    )
                    .at(format!("Parameters.parameter[{i}]")));
                };
                overrides.push(Override { key, reason });
            }
            other => {
                return Err(FhirError::invalid(format!(
                    "unknown parameter '{}' ($prescribe takes 'prescription' and 'override')",
                    other.unwrap_or_default()
                ))
                .at(format!("Parameters.parameter[{i}]")));
            }
        }
    }
    let prescription = prescription.ok_or_else(|| {
        FhirError::invalid("give the MedicationRequest as parameter 'prescription' (resource)")
    })?;
    Ok((prescription, overrides))
}

impl OperationHandler for PrescribeOperation {
    fn invoke(
        &self,
        svc: &FhirService,
        req: &OperationRequest<'_>,
    ) -> Result<FhirResponse, FhirError> {
        let (mr, overrides) = inputs_of(req.parameters()?)?;
        let p = match super::read_prescription(&mr) {
            Ok(p) => p,
            Err(e) => return Ok(refusal(e)),
        };
        let formulary = super::formulary_of(svc).map_err(|e| FhirError::internal(e.message()))?;
        let now = svc.now();
        match super::prescribe(svc, req.access(), &formulary, &p, &overrides, now) {
            Ok(done) => {
                let saved = svc
                    .read_as(req.access(), "MedicationRequest", &done.id)?
                    .ok_or_else(|| FhirError::internal("the saved prescription is gone"))?;
                Ok(FhirResponse::json(201, saved))
            }
            Err(e) => Ok(refusal(e)),
        }
    }
}

impl OperationHandler for DiscontinueOperation {
    fn invoke(
        &self,
        svc: &FhirService,
        req: &OperationRequest<'_>,
    ) -> Result<FhirResponse, FhirError> {
        let id = req
            .id()
            .ok_or_else(|| {
                FhirError::invalid("name the prescription: MedicationRequest/{id}/$discontinue")
            })?
            .to_owned();
        let reason = req
            .primitive_parameters()?
            .into_iter()
            .find(|(k, _)| k == "reason")
            .map(|(_, v)| v)
            .unwrap_or_default();
        match super::discontinue(svc, req.access(), &id, &reason, svc.now()) {
            Ok(()) => {
                let saved = svc
                    .read_as(req.access(), "MedicationRequest", &id)?
                    .ok_or_else(|| FhirError::internal("the prescription is gone"))?;
                Ok(FhirResponse::json(200, saved))
            }
            Err(e) => Ok(refusal(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::medicines::checks::AlertKind;

    #[test]
    fn alerts_become_one_issue_each() {
        let e = MedicinesError::Alerts(vec![
            Alert {
                key: "allergy:penicillin".into(),
                kind: AlertKind::Allergy,
                grade: Grade::HardStop,
                message: "Allergic to penicillins.".into(),
                implicated: vec![],
            },
            Alert {
                key: "duplicate-therapy:nsaid".into(),
                kind: AlertKind::DuplicateTherapy,
                grade: Grade::Advisory,
                message: "Already on an NSAID.".into(),
                implicated: vec![],
            },
        ]);
        let o = outcome_of(&e);
        assert_eq!(o["issue"].as_array().unwrap().len(), 2);
        assert_eq!(o["issue"][0]["details"]["text"], "allergy:penicillin");
        assert_eq!(o["issue"][0]["extension"][0]["valueCode"], "hard-stop");
        assert_eq!(o["issue"][0]["severity"], "error");
        assert_eq!(o["issue"][1]["severity"], "warning");
        assert_eq!(
            o["issue"][1]["details"]["coding"][0]["code"],
            "duplicate-therapy"
        );
    }

    #[test]
    fn overrides_and_the_prescription_are_read() {
        let p = json!({"resourceType": "Parameters", "parameter": [
            {"name": "prescription", "resource": {"resourceType": "MedicationRequest"}},
            {"name": "override", "part": [{"name": "key", "valueString": "k"}, {"name": "reason", "valueString": "r"}]}]});
        let (mr, o) = inputs_of(&p).unwrap();
        assert_eq!(mr["resourceType"], "MedicationRequest");
        assert_eq!(
            o,
            vec![Override {
                key: "k".into(),
                reason: "r".into()
            }]
        );
        let bad = json!({"resourceType": "Parameters", "parameter": [
            {"name": "override", "part": [{"name": "key", "valueString": "k"}]}]});
        assert!(
            inputs_of(&bad).unwrap_err().issues[0]
                .diagnostics
                .contains("reason")
        );
        let none = json!({"resourceType": "Parameters", "parameter": []});
        assert!(inputs_of(&none).is_err());
    }
}
