//! `POST [base]/Patient/$merge`: [`merge`](super::merge) over FHIR REST, with
//! the parameters of the FHIR R5 OperationDefinition `Patient-merge` (the
//! operation R4 lacks; servers that merge over R4 use this one).
//!
//! In: `source-patient` (Reference) or `source-patient-identifier`
//! (Identifier, 1..*: all must be on one record), the same for the target,
//! and `preview` (boolean). `result-patient` is refused as not supported:
//! update the target first, then merge.
//!
//! Out (200): `input` (the Parameters sent), `outcome` (an
//! OperationOutcome saying what was done, or with `preview` what would be)
//! and `result` (the target Patient as it is, or would be). A request that
//! names no patient, or names one twice, is 400; identifiers that match no
//! record, or more than one, and a merge the records' state refuses
//! (different NHS numbers, a retired target …) are 422; a reference to no
//! record is 404.

use serde_json::{Value, json};
use wardline_core::{
    Access, FhirResponse, FhirService, OperationHandler, OperationRequest, OperationSpec,
};
use wardline_fhir::FhirError;

/// The canonical URL of the operation's definition.
pub const MERGE_DEFINITION: &str = "http://hl7.org/fhir/OperationDefinition/Patient-merge";

/// `Patient/$merge`; register it with
/// `FhirService::with_operation(MergeOperation::spec())`.
pub struct MergeOperation;

impl MergeOperation {
    /// Its entry in the operations table: `POST [base]/Patient/$merge`
    /// (POST only: it changes the record).
    pub fn spec() -> OperationSpec {
        OperationSpec::type_level("Patient", "merge", MERGE_DEFINITION, MergeOperation)
    }
}

const KNOWN: [&str; 6] = [
    "source-patient",
    "source-patient-identifier",
    "target-patient",
    "target-patient-identifier",
    "result-patient",
    "preview",
];

fn params<'a>(p: &'a Value, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    p.get("parameter")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |x| x.get("name").and_then(Value::as_str) == Some(name))
}

fn bad(diagnostics: impl Into<String>) -> FhirError {
    FhirError::invalid(diagnostics)
}

fn unprocessable(diagnostics: impl Into<String>) -> FhirError {
    FhirError::new(422, "processing", diagnostics)
}

/// The patient id a `*-patient` Reference parameter names, if given.
fn by_reference(p: &Value, name: &str) -> Result<Option<String>, FhirError> {
    let mut found = params(p, name);
    let Some(first) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(bad(format!("'{name}' is given more than once")));
    }
    let Some(r) = first
        .pointer("/valueReference/reference")
        .and_then(Value::as_str)
    else {
        return Err(bad(format!(
            "'{name}' must be a valueReference with a reference such as Patient/123"
        )));
    };
    let mut parts = r.trim_end_matches('/').rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(id), Some("Patient")) if !id.is_empty() => Ok(Some(id.to_owned())),
        _ => Err(bad(format!(
            "'{name}' must refer to a Patient (Patient/id), not '{r}'"
        ))),
    }
}

/// The (system, value) pairs of a `*-patient-identifier` parameter.
fn identifiers(p: &Value, name: &str) -> Result<Vec<(String, String)>, FhirError> {
    params(p, name)
        .map(|x| {
            let i = x.get("valueIdentifier").ok_or_else(|| {
                bad(format!(
                    "'{name}' must be a valueIdentifier with a system and a value"
                ))
            })?;
            let field = |f: &str| i.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
            match (field("system"), field("value")) {
                (Some(s), Some(v)) => Ok((s.to_owned(), v.to_owned())),
                _ => Err(bad(format!(
                    "each '{name}' needs both a system and a value"
                ))),
            }
        })
        .collect()
}

fn has_identifier(p: &Value, system: &str, value: &str) -> bool {
    p.get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|i| {
            i.get("system").and_then(Value::as_str) == Some(system)
                && i.get("value").and_then(Value::as_str) == Some(value)
        })
}

/// The id of the `role` ("source" or "target") patient the parameters name.
fn resolve(
    svc: &FhirService,
    access: &dyn Access,
    p: &Value,
    role: &str,
) -> Result<String, FhirError> {
    let by_ref = by_reference(p, &format!("{role}-patient"))?;
    let ids = identifiers(p, &format!("{role}-patient-identifier"))?;
    let described = || {
        ids.iter()
            .map(|(s, v)| format!("{s}|{v}"))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    match (by_ref, ids.first()) {
        (None, None) => Err(bad(format!(
            "name the {role} patient: '{role}-patient' or '{role}-patient-identifier'"
        ))),
        (Some(id), None) => Ok(id),
        (by_ref, Some((system, value))) => {
            let found = super::fhir_search(
                svc,
                access,
                "Patient",
                vec![("identifier".into(), format!("{system}|{value}"))],
            )?;
            let matching: Vec<&Value> = found
                .iter()
                .filter(|f| ids.iter().all(|(s, v)| has_identifier(f, s, v)))
                .collect();
            let id_of = |v: &Value| v.get("id").and_then(Value::as_str).map(str::to_owned);
            match (matching.as_slice(), by_ref) {
                ([], _) => Err(unprocessable(format!(
                    "no patient record has the {role} identifiers {}",
                    described()
                ))),
                ([one], None) => id_of(one).ok_or_else(|| unprocessable("a record without an id")),
                ([one], Some(r)) if id_of(one).as_deref() == Some(r.as_str()) => Ok(r),
                ([_], Some(r)) => Err(unprocessable(format!(
                    "'{role}-patient' (Patient/{r}) is not the record with the {role} identifiers {}",
                    described()
                ))),
                (many, _) => Err(unprocessable(format!(
                    "{} patient records have the {role} identifiers {}: give more identifiers, or '{role}-patient'",
                    many.len(),
                    described()
                ))),
            }
        }
    }
}

fn preview_flag(p: &Value) -> Result<bool, FhirError> {
    let mut found = params(p, "preview");
    let v = match found.next() {
        None => return Ok(false),
        Some(x) => x
            .get("valueBoolean")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("'preview' must be a valueBoolean"))?,
    };
    if found.next().is_some() {
        return Err(bad("'preview' is given more than once"));
    }
    Ok(v)
}

impl OperationHandler for MergeOperation {
    fn invoke(
        &self,
        svc: &FhirService,
        req: &OperationRequest<'_>,
    ) -> Result<FhirResponse, FhirError> {
        let p = req.parameters()?;
        let access = req.access();
        for x in p
            .get("parameter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = x.get("name").and_then(Value::as_str).unwrap_or_default();
            if !KNOWN.contains(&name) {
                return Err(bad(format!(
                    "'{name}' is not a parameter of Patient/$merge"
                )));
            }
        }
        if params(p, "result-patient").next().is_some() {
            return Err(FhirError::new(
                422,
                "not-supported",
                "'result-patient' is not supported: update the target patient first, then merge",
            ));
        }
        let preview = preview_flag(p)?;
        let source = resolve(svc, access, p, "source")?;
        let target = resolve(svc, access, p, "target")?;
        let (out, result) = super::merge::run_merge(svc, access, &source, &target, preview)?;
        let what = if preview {
            format!(
                "Preview: Patient/{source} would be merged into Patient/{target}; {} resource(s) would be repointed. Nothing was changed.",
                out.repointed
            )
        } else {
            format!(
                "Patient/{source} was merged into Patient/{target}; {} resource(s) were repointed (Provenance/{}).",
                out.repointed, out.provenance
            )
        };
        let outcome = json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": what}],
        });
        Ok(FhirResponse::json(
            200,
            json!({
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "input", "resource": p},
                    {"name": "outcome", "resource": outcome},
                    {"name": "result", "resource": result},
                ],
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ps(parameter: Value) -> Value {
        json!({"resourceType": "Parameters", "parameter": parameter})
    }

    #[test]
    fn references_and_identifiers_are_read() {
        let p = ps(json!([
            {"name": "source-patient", "valueReference": {"reference": "https://h/fhir/Patient/a1"}},
            {"name": "target-patient-identifier", "valueIdentifier": {"system": "s", "value": "v"}},
            {"name": "preview", "valueBoolean": true},
        ]));
        assert_eq!(
            by_reference(&p, "source-patient").unwrap().as_deref(),
            Some("a1")
        );
        assert_eq!(by_reference(&p, "target-patient").unwrap(), None);
        assert_eq!(
            identifiers(&p, "target-patient-identifier").unwrap(),
            vec![("s".to_owned(), "v".to_owned())]
        );
        assert!(preview_flag(&p).unwrap());
        assert!(!preview_flag(&ps(json!([]))).unwrap());
    }

    #[test]
    fn malformed_parameters_are_named() {
        let e = |p: Value, name: &str| by_reference(&p, name).unwrap_err().to_string();
        assert!(e(ps(json!([{"name": "source-patient", "valueReference": {"reference": "Practitioner/x"}}])), "source-patient").contains("must refer to a Patient"));
        assert!(
            e(
                ps(json!([{"name": "source-patient", "valueString": "x"}])),
                "source-patient"
            )
            .contains("valueReference")
        );
        assert!(
            e(
                ps(json!([
            {"name": "source-patient", "valueReference": {"reference": "Patient/a"}},
            {"name": "source-patient", "valueReference": {"reference": "Patient/b"}}])),
                "source-patient"
            )
            .contains("more than once")
        );
        let i = identifiers(
            &ps(json!([{"name": "x", "valueIdentifier": {"value": "v"}}])),
            "x",
        )
        .unwrap_err();
        assert!(i.to_string().contains("system and a value"), "{i}");
        assert!(preview_flag(&ps(json!([{"name": "preview", "valueString": "yes"}]))).is_err());
    }
}
