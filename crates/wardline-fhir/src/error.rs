//! [`FhirError`]: an HTTP status plus `OperationOutcome` issues.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueSeverity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl IssueSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueSeverity::Fatal => "fatal",
            IssueSeverity::Error => "error",
            IssueSeverity::Warning => "warning",
            IssueSeverity::Information => "information",
        }
    }
}

/// One `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: IssueSeverity,
    /// An `IssueType` code: `invalid`, `structure`, `required`, `value`, `not-found`,
    /// `conflict`, `not-supported`, `processing`, `duplicate`, `exception`, `security`,
    /// `deleted`, `too-costly`, `informational`, ...
    pub code: &'static str,
    pub diagnostics: String,
    /// FHIRPath expressions locating the problem, e.g. `Patient.birthDate`.
    pub expression: Vec<String>,
}

impl Issue {
    pub fn error(code: &'static str, diagnostics: impl Into<String>) -> Issue {
        Issue {
            severity: IssueSeverity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Issue {
        self.expression.push(expression.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "severity": self.severity.as_str(),
            "code": self.code,
            "diagnostics": self.diagnostics,
        });
        if !self.expression.is_empty() {
            v["expression"] = json!(self.expression);
        }
        v
    }
}

/// The error type shared by every Wardline layer: an HTTP status and the issues
/// that explain it. Client errors are 4xx; a 5xx means Wardline itself failed.
#[derive(Debug, Clone, PartialEq)]
pub struct FhirError {
    pub status: u16,
    pub issues: Vec<Issue>,
}

impl std::fmt::Display for FhirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        for i in &self.issues {
            write!(f, "; {}: {}", i.code, i.diagnostics)?;
            if !i.expression.is_empty() {
                write!(f, " (at {})", i.expression.join(", "))?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for FhirError {}

/// How a downtime refusal's diagnostics begin ([`FhirError::downtime`]).
pub const DOWNTIME_PREFIX: &str = "Read-only: downtime";

impl FhirError {
    pub fn new(status: u16, code: &'static str, diagnostics: impl Into<String>) -> FhirError {
        FhirError {
            status,
            issues: vec![Issue::error(code, diagnostics)],
        }
    }

    pub fn from_issues(status: u16, issues: Vec<Issue>) -> FhirError {
        FhirError { status, issues }
    }

    /// Adds an expression to the first issue.
    pub fn at(mut self, expression: impl Into<String>) -> FhirError {
        if let Some(first) = self.issues.first_mut() {
            first.expression.push(expression.into());
        }
        self
    }

    /// 400 `invalid`.
    pub fn invalid(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(400, "invalid", diagnostics)
    }
    /// 400 `structure` (unparseable body).
    pub fn structure(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(400, "structure", diagnostics)
    }
    /// 404 `not-found`.
    pub fn not_found(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(404, "not-found", diagnostics)
    }
    /// 410 `deleted`.
    pub fn gone(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(410, "deleted", diagnostics)
    }
    /// 409 `conflict`.
    pub fn conflict(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(409, "conflict", diagnostics)
    }
    /// 412 `conflict` (If-Match / conditional mismatch).
    pub fn precondition_failed(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(412, "conflict", diagnostics)
    }
    /// 422 `processing` (valid FHIR that breaks a business rule or profile).
    pub fn unprocessable(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(422, "processing", diagnostics)
    }
    /// 501 / 400 `not-supported`.
    pub fn not_supported(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(400, "not-supported", diagnostics)
    }
    /// 500 `exception`: Wardline's own fault (database failure and the like).
    pub fn internal(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(500, "exception", diagnostics)
    }

    /// 503 `no-store`: the database is unreachable; nothing was stored and
    /// the request may be sent again.
    pub fn unavailable(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(503, "no-store", diagnostics)
    }
    /// 503 `transient`: the commit's outcome is unknown (the connection was
    /// lost while committing).
    pub fn outcome_unknown(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(503, "transient", diagnostics)
    }
    /// 503 `no-store` (issue 22: downtime): writes are switched off — the
    /// operator's downtime, `serve --read-only`, or a database that refuses
    /// writes. `since` is the local clock time it began ("14:05"). Nothing
    /// was stored; the diagnostics say so, and to record on paper.
    pub fn downtime(since: &str) -> FhirError {
        FhirError::new(
            503,
            "no-store",
            format!(
                "{DOWNTIME_PREFIX} since {since}: nothing was stored; record on paper and enter it when the downtime ends"
            ),
        )
    }
    /// Whether this is [`FhirError::downtime`].
    pub fn is_downtime(&self) -> bool {
        self.status == 503
            && self
                .issues
                .first()
                .is_some_and(|i| i.diagnostics.starts_with(DOWNTIME_PREFIX))
    }
    /// Whether this is [`FhirError::outcome_unknown`].
    pub fn is_outcome_unknown(&self) -> bool {
        self.status == 503 && self.issues.first().is_some_and(|i| i.code == "transient")
    }

    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status)
    }

    pub fn to_operation_outcome(&self) -> Value {
        json!({
            "resourceType": "OperationOutcome",
            "issue": self.issues.iter().map(Issue::to_json).collect::<Vec<_>>(),
        })
    }
}

/// An `OperationOutcome` carrying a single informational issue.
pub fn informational_outcome(diagnostics: impl Into<String>) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": diagnostics.into()}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_carries_expression_and_status() {
        let e = FhirError::invalid("birthDate is not a date").at("Patient.birthDate");
        assert_eq!(e.status, 400);
        let oo = e.to_operation_outcome();
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert_eq!(oo["issue"][0]["expression"][0], "Patient.birthDate");
        assert_eq!(oo["issue"][0]["code"], "invalid");
    }
}
