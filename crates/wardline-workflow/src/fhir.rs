//! The workflows' road into the store: FHIR interactions through
//! [`FhirService::handle`] with the caller's [`Access`], so a workflow's reads
//! are authorised, consent-filtered and audited exactly like REST ones.

use serde_json::Value;
use wardline_core::{Access, Body, FhirRequest, FhirService, Method, RequestHeaders};
use wardline_fhir::{FhirError, Issue};

/// The matches of a search and how many the access gate held back.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub resources: Vec<Value>,
    /// `include`d resources (`search.mode` = include).
    pub included: Vec<Value>,
    /// Matches the caller may not see (counted in the OperationOutcome the
    /// gate adds).
    pub withheld: usize,
    /// `Bundle.total`, when the server gave one.
    pub total: Option<u64>,
}

fn body_json(body: Body) -> Result<Value, FhirError> {
    match body {
        Body::Json(v) => Ok(v),
        Body::Raw(s) => serde_json::from_str(&s)
            .map_err(|e| FhirError::internal(format!("unreadable response: {e}"))),
        _ => Ok(Value::Null),
    }
}

/// The error an error response describes: one issue per `diagnostics` (or
/// `details.text`) of its OperationOutcome, coded by the status.
fn error_of(status: u16, outcome: &Value) -> FhirError {
    let code = match status {
        401 => "login",
        403 => "forbidden",
        404 => "not-found",
        410 => "deleted",
        409 | 412 => "conflict",
        s if s >= 500 => "exception",
        _ => "invalid",
    };
    let issues: Vec<Issue> = outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i["diagnostics"]
                .as_str()
                .or_else(|| i["details"]["text"].as_str())
        })
        .map(|d| Issue::error(code, d))
        .collect();
    if issues.is_empty() {
        return FhirError::new(status, code, format!("the request failed (HTTP {status})"));
    }
    FhirError { status, issues }
}

/// `GET path?query` through the service with the caller's access; an error
/// response becomes the error it describes.
pub fn get(
    svc: &FhirService,
    access: &dyn Access,
    path: Vec<String>,
    query: Vec<(String, String)>,
) -> Result<Value, FhirError> {
    let r = svc.handle(
        FhirRequest {
            method: Method::Get,
            path,
            query,
            headers: RequestHeaders::default(),
            body: None,
        },
        access,
    );
    let status = r.status;
    let body = body_json(r.body)?;
    if status >= 400 {
        return Err(error_of(status, &body));
    }
    Ok(body)
}

/// `GET [type]?query`: one page of matches.
pub fn search(
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    query: &[(&str, String)],
) -> Result<Found, FhirError> {
    let query = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let bundle = get(svc, access, vec![resource_type.to_owned()], query)?;
    let mut found = Found {
        total: bundle["total"].as_u64(),
        ..Found::default()
    };
    for e in bundle["entry"].as_array().into_iter().flatten() {
        let res = &e["resource"];
        match e["search"]["mode"].as_str() {
            Some("include") => found.included.push(res.clone()),
            Some("outcome") => {
                found.withheld += res["issue"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|i| i["code"] == "suppressed")
                    .map(|i| withheld_count(i).unwrap_or(1))
                    .sum::<usize>();
            }
            _ => found.resources.push(res.clone()),
        }
    }
    Ok(found)
}

/// The number in a "suppressed" issue's diagnostics ("3 resource(s)
/// matched but are not shown…"), if it starts with one.
fn withheld_count(issue: &Value) -> Option<usize> {
    issue["diagnostics"]
        .as_str()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `GET [type]/[id]`: `Ok(None)` when there is no such resource (or it was
/// deleted); a refusal is an error.
pub fn read(
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    id: &str,
) -> Result<Option<Value>, FhirError> {
    match get(
        svc,
        access,
        vec![resource_type.to_owned(), id.to_owned()],
        Vec::new(),
    ) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status == 404 || e.status == 410 => Ok(None),
        Err(e) => Err(e),
    }
}

/// The display text of a CodeableConcept: its text, else the first coding's
/// display, else its code.
pub fn concept_text(c: &Value) -> Option<String> {
    c["text"]
        .as_str()
        .or_else(|| {
            c["coding"]
                .as_array()?
                .iter()
                .find_map(|x| x["display"].as_str().or_else(|| x["code"].as_str()))
        })
        .map(str::to_owned)
}

/// The id of a `Type/id` reference (relative, or absolute ending in
/// `Type/id`).
pub fn reference_id<'a>(r: &'a Value, resource_type: &str) -> Option<&'a str> {
    let r = r["reference"].as_str()?;
    let id = r
        .rsplit_once(&format!("{resource_type}/"))
        .map(|(_, id)| id)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn concept_text_prefers_text_then_display_then_code() {
        assert_eq!(
            concept_text(&json!({"text": "T", "coding": [{"display": "D"}]})).as_deref(),
            Some("T")
        );
        assert_eq!(
            concept_text(&json!({"coding": [{"code": "c"}, {"display": "D"}]})).as_deref(),
            Some("c")
        );
        assert_eq!(concept_text(&json!({})), None);
    }

    #[test]
    fn reference_ids() {
        let r = json!({"reference": "Patient/p1"});
        assert_eq!(reference_id(&r, "Patient"), Some("p1"));
        assert_eq!(reference_id(&r, "Pat"), None);
        assert_eq!(reference_id(&json!({}), "Patient"), None);
        let abs = json!({"reference": "https://x.example/fhir/Patient/p2"});
        assert_eq!(reference_id(&abs, "Patient"), Some("p2"));
        assert_eq!(
            reference_id(&json!({"reference": "Patient/"}), "Patient"),
            None
        );
    }
}
