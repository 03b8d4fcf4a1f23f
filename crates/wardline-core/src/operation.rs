//! FHIR operations defined above the core, on a resource type
//! (`POST [base]/[type]/$name` with a `Parameters` body).
//!
//! The core knows the operations of the specification's own machinery
//! (`$export`, `$everything`); an operation that is a workflow (such as
//! `Patient/$merge`, which lives in `wardline-workflow`) is registered on
//! the service by the composition root with [`FhirService::with_operation`],
//! so the core depends on no workflow and the workflow on no web layer.
//!
//! **Audit.** An operation writes through [`FhirService::transact`], whose
//! commit records the audit event of what it did; the interaction then
//! records nothing more. A request that fails records one event for the
//! attempt, with its status and reason, as any failed interaction does.

use std::sync::Arc;

use serde_json::Value;
use wardline_fhir::FhirError;

use crate::{Access, FhirResponse, FhirService};

/// One operation on a resource type.
pub trait TypeOperation: Send + Sync {
    /// The canonical URL of its OperationDefinition, listed in the
    /// CapabilityStatement.
    fn definition(&self) -> &'static str;

    /// Runs it for `access` with the `Parameters` resource sent (already
    /// checked to be one). Refusals and bad parameters are errors with the
    /// status to answer.
    fn invoke(
        &self,
        svc: &FhirService,
        access: &dyn Access,
        parameters: &Value,
    ) -> Result<FhirResponse, FhirError>;
}

/// The registered operations: (resource type, name without `$`).
#[derive(Default, Clone)]
pub(crate) struct Operations {
    entries: Vec<(String, String, Arc<dyn TypeOperation>)>,
}

impl Operations {
    pub(crate) fn add(&mut self, t: &str, name: &str, op: Arc<dyn TypeOperation>) {
        self.entries.retain(|(et, en, _)| !(et == t && en == name));
        self.entries.push((t.to_owned(), name.to_owned(), op));
    }

    pub(crate) fn get(&self, t: &str, name: &str) -> Option<&Arc<dyn TypeOperation>> {
        self.entries
            .iter()
            .find(|(et, en, _)| et == t && en == name)
            .map(|(_, _, op)| op)
    }

    /// `(type, name, definition)` of each, for the CapabilityStatement.
    pub(crate) fn listed(&self) -> Vec<(&str, &str, &'static str)> {
        self.entries
            .iter()
            .map(|(t, n, op)| (t.as_str(), n.as_str(), op.definition()))
            .collect()
    }
}

/// Checks that a body is a `Parameters` resource with a `parameter` list
/// whose entries each have a name.
pub(crate) fn check_parameters(v: &Value) -> Result<(), FhirError> {
    if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(FhirError::invalid(
            "an operation's body must be a Parameters resource",
        ));
    }
    match v.get("parameter") {
        None => Ok(()),
        Some(Value::Array(ps)) => {
            for (i, p) in ps.iter().enumerate() {
                if p.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(FhirError::invalid(format!(
                        "Parameters.parameter[{i}] has no name"
                    )));
                }
            }
            Ok(())
        }
        Some(_) => Err(FhirError::invalid("Parameters.parameter must be a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_checked() {
        assert!(check_parameters(&json!({"resourceType": "Parameters"})).is_ok());
        assert!(
            check_parameters(&json!({"resourceType": "Parameters", "parameter": [{"name": "a"}]}))
                .is_ok()
        );
        let e = check_parameters(&json!({"resourceType": "Patient"})).unwrap_err();
        assert!(e.to_string().contains("Parameters resource"), "{e}");
        let e = check_parameters(&json!({"resourceType": "Parameters", "parameter": [{}]}))
            .unwrap_err();
        assert!(e.to_string().contains("parameter[0]"), "{e}");
        assert!(check_parameters(&json!({"resourceType": "Parameters", "parameter": 1})).is_err());
    }
}
