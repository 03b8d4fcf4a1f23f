//! `POST [base]/DiagnosticReport/$submit`: a result over FHIR REST, through
//! the same status rules and notification as every other channel
//! ([`super::receive`]).
//!
//! In: a `collection` Bundle holding exactly one `DiagnosticReport` and its
//! `Observation`s (the body itself, or a `Parameters` with the Bundle as
//! parameter `bundle`). The report's `basedOn` names the
//! `ServiceRequest/…` it answers and `subject` the patient; without them
//! (or when they disagree) the result is stored unmatched for the worklist.
//! The report's `result` is rebuilt from the Observations sent.
//!
//! Out (200): a `Parameters` with `report` (Reference), `matched`
//! (boolean), one `notified` (Reference to the inbox Task) per person told,
//! and `outcome` (an OperationOutcome in words). A body that is not such a
//! Bundle is 400 naming the element; a refusal of the status rules (a final
//! result sent final again with other values, a status going back) is 409.

use serde_json::{Value, json};
use wardline_core::{FhirResponse, FhirService, OperationHandler, OperationRequest, OperationSpec};
use wardline_fhir::FhirError;

use super::{Incoming, Source};

/// The canonical URL of the operation's definition.
pub const SUBMIT_DEFINITION: &str =
    "https://fhir.wardline.invalid/OperationDefinition/DiagnosticReport-submit";

/// `DiagnosticReport/$submit`; registered by
/// `wardline_workflow::with_operations`.
pub struct SubmitOperation;

impl SubmitOperation {
    pub fn spec() -> OperationSpec {
        OperationSpec::type_level(
            "DiagnosticReport",
            "submit",
            SUBMIT_DEFINITION,
            SubmitOperation,
        )
    }
}

/// The report and observations of a `$submit` body.
pub fn incoming_of(body: &Value) -> Result<Incoming, FhirError> {
    let bundle = if body["resourceType"] == "Parameters" {
        body["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "bundle")
            .map(|p| &p["resource"])
            .ok_or_else(|| {
                FhirError::invalid("Parameters: give the Bundle as parameter 'bundle' (resource)")
            })?
    } else {
        body
    };
    if bundle["resourceType"] != "Bundle" {
        return Err(FhirError::invalid(
            "the body must be a Bundle (resourceType) of type collection",
        ));
    }
    if bundle["type"] != "collection" {
        return Err(FhirError::invalid(format!(
            "Bundle.type must be collection, not {}",
            bundle["type"]
        )));
    }
    let mut report = None;
    let mut observations = Vec::new();
    for (i, e) in bundle["entry"].as_array().into_iter().flatten().enumerate() {
        let r = &e["resource"];
        match r["resourceType"].as_str() {
            Some("DiagnosticReport") if report.is_none() => report = Some(r.clone()),
            Some("DiagnosticReport") => {
                return Err(FhirError::invalid(format!(
                    "Bundle.entry[{i}]: one DiagnosticReport per submission"
                )));
            }
            Some("Observation") => observations.push(r.clone()),
            other => {
                return Err(FhirError::invalid(format!(
                    "Bundle.entry[{i}]: a {} is not part of a result (DiagnosticReport and Observations only)",
                    other.unwrap_or("resource without a resourceType")
                )));
            }
        }
    }
    let Some(mut report) = report else {
        return Err(FhirError::invalid(
            "Bundle.entry: the Bundle holds no DiagnosticReport",
        ));
    };
    if !observations.is_empty()
        && let Some(m) = report.as_object_mut()
    {
        // Rebuilt from the Observations saved.
        m.remove("result");
    }
    Ok(Incoming {
        report,
        observations,
        source: Source::Rest,
    })
}

impl OperationHandler for SubmitOperation {
    fn invoke(
        &self,
        svc: &FhirService,
        req: &OperationRequest<'_>,
    ) -> Result<FhirResponse, FhirError> {
        let incoming = incoming_of(&req.body()?)?;
        let got =
            super::receive(svc, req.access(), incoming, svc.now()).map_err(|e| e.to_fhir())?;
        let what = match (got.matched, got.notified.len()) {
            (false, _) => format!(
                "DiagnosticReport/{} was stored unmatched: it names no request of its patient, so it waits on the matching worklist.",
                got.report
            ),
            (true, 0) => format!(
                "DiagnosticReport/{} was stored; nobody needed telling.",
                got.report
            ),
            (true, n) => format!(
                "DiagnosticReport/{} was stored and {n} inbox notification(s) sent.",
                got.report
            ),
        };
        let mut parameter = vec![
            json!({"name": "report", "valueReference": {"reference": format!("DiagnosticReport/{}", got.report)}}),
            json!({"name": "matched", "valueBoolean": got.matched}),
        ];
        for t in &got.notified {
            parameter.push(
                json!({"name": "notified", "valueReference": {"reference": format!("Task/{t}")}}),
            );
        }
        parameter.push(json!({"name": "outcome", "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": what}]}}));
        Ok(FhirResponse::json(
            200,
            json!({"resourceType": "Parameters", "parameter": parameter}),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_of_one_report_and_its_observations() {
        let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "DiagnosticReport", "status": "final", "result": [{"reference": "urn:uuid:1"}]}},
            {"resource": {"resourceType": "Observation", "status": "final"}}]});
        let i = incoming_of(&b).unwrap();
        assert_eq!(i.observations.len(), 1);
        assert!(i.report.get("result").is_none());
        assert_eq!(i.source, Source::Rest);
        let p =
            json!({"resourceType": "Parameters", "parameter": [{"name": "bundle", "resource": b}]});
        assert!(incoming_of(&p).is_ok());
    }

    proptest::proptest! {
        /// Whatever the order of the entries, the one report is found and
        /// every Observation is kept, in the order sent; a second report
        /// anywhere is refused naming its entry.
        #[test]
        fn entries_in_any_order(n in 0usize..6, at in 0usize..6, twice in proptest::bool::ANY) {
            let at = at.min(n);
            let mut entries: Vec<Value> = (0..n)
                .map(|i| json!({"resource": {"resourceType": "Observation", "id": format!("o{i}")}}))
                .collect();
            entries.insert(at, json!({"resource": {"resourceType": "DiagnosticReport", "status": "final"}}));
            if twice {
                entries.push(json!({"resource": {"resourceType": "DiagnosticReport", "status": "final"}}));
            }
            let b = json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
            match incoming_of(&b) {
                Ok(i) => {
                    proptest::prop_assert!(!twice);
                    let ids: Vec<String> = i.observations.iter().map(|o| o["id"].as_str().unwrap_or("").to_owned()).collect();
                    let want: Vec<String> = (0..n).map(|i| format!("o{i}")).collect();
                    proptest::prop_assert_eq!(ids, want);
                    proptest::prop_assert_eq!(&i.report["status"], "final");
                }
                Err(e) => {
                    proptest::prop_assert!(twice);
                    let where_ = format!("entry[{}]", n + 1);
                    proptest::prop_assert!(e.issues[0].diagnostics.contains(&where_));
                }
            }
        }
    }

    #[test]
    fn anything_else_is_named() {
        let bad = |v: Value| incoming_of(&v).unwrap_err().issues[0].diagnostics.clone();
        assert!(bad(json!({"resourceType": "Bundle", "type": "batch"})).contains("Bundle.type"));
        assert!(bad(json!({"resourceType": "Observation"})).contains("Bundle"));
        assert!(
            bad(
                json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient"}}]})
            )
            .contains("entry[0]")
        );
        assert!(
            bad(json!({"resourceType": "Bundle", "type": "collection", "entry": []}))
                .contains("no DiagnosticReport")
        );
        assert!(
            bad(
                json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "DiagnosticReport"}},
            {"resource": {"resourceType": "DiagnosticReport"}}]})
            )
            .contains("entry[1]")
        );
    }
}
