//! Results (issue 16: being built).

pub mod cumulative;
pub mod escalation;
pub mod inbox;
pub mod unmatched;

// TEMPORARY (cum): stands in for res's `ResultsError` until h-res has its
// `API:` commit; replaced by res's mod.rs at the merge.
use wardline_fhir::FhirError;

#[derive(Debug, Clone)]
pub enum ResultsError {
    Invalid(String),
    NotFound(String),
    Forbidden(String),
    Conflict(String),
    Store(String),
}

impl From<FhirError> for ResultsError {
    fn from(e: FhirError) -> Self {
        match e.status {
            403 | 401 => ResultsError::Forbidden(e.to_string()),
            404 | 410 => ResultsError::NotFound(e.to_string()),
            409 | 412 => ResultsError::Conflict(e.to_string()),
            400..=499 => ResultsError::Invalid(e.to_string()),
            _ => ResultsError::Store(e.to_string()),
        }
    }
}

// TEMPORARY (cum): the contract's `Received` and `notify_in`, until h-res.
#[derive(Debug, Clone)]
pub struct Received {
    pub report: String,
    pub matched: bool,
    pub notified: Vec<String>,
}

pub fn notify_in(
    _tx: &mut wardline_core::Tx<'_>,
    _report: &str,
    _now: time::OffsetDateTime,
) -> Result<Vec<String>, ResultsError> {
    Ok(Vec::new())
}

impl ResultsError {
    pub fn status(&self) -> u16 {
        match self {
            ResultsError::Invalid(_) => 400,
            ResultsError::NotFound(_) => 404,
            ResultsError::Forbidden(_) => 403,
            ResultsError::Conflict(_) => 409,
            ResultsError::Store(_) => 500,
        }
    }
}

impl std::fmt::Display for ResultsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultsError::Invalid(m)
            | ResultsError::NotFound(m)
            | ResultsError::Forbidden(m)
            | ResultsError::Conflict(m)
            | ResultsError::Store(m) => f.write_str(m),
        }
    }
}
