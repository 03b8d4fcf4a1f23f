//! The workflows' road into the store: FHIR interactions through
//! [`FhirService::handle`] with the caller's [`Access`], so a workflow's reads
//! are authorised, consent-filtered and audited exactly like REST ones.

use serde_json::Value;
use wardline_core::{Access, Body, FhirRequest, FhirService, Method, RequestHeaders};
use wardline_fhir::FhirError;

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
            .map_err(|e| FhirError::internal(format!("stored JSON does not parse: {e}"))),
        _ => Err(FhirError::internal("unexpected response body")),
    }
}

fn error_of(status: u16, body: Body) -> FhirError {
    let msg = body_json(body)
        .ok()
        .and_then(|v| {
            v["issue"].as_array().map(|issues| {
                issues
                    .iter()
                    .filter_map(|i| i["diagnostics"].as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("the request failed ({status})"));
    let code = match status {
        401 => "login",
        403 => "forbidden",
        404 => "not-found",
        409 | 412 => "conflict",
        _ if status < 500 => "invalid",
        _ => "exception",
    };
    FhirError::new(status, code, msg)
}

fn request(method: Method, path: &[&str], query: &[(&str, String)]) -> FhirRequest {
    FhirRequest {
        method,
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        headers: RequestHeaders::default(),
        body: None,
    }
}

/// `GET [type]?query`: one page of matches.
pub fn search(
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    query: &[(&str, String)],
) -> Result<Found, FhirError> {
    let r = svc.handle(request(Method::Get, &[resource_type], query), access);
    if r.status != 200 {
        return Err(error_of(r.status, r.body));
    }
    let bundle = body_json(r.body)?;
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

/// The number in a "suppressed" issue's diagnostics ("3 matches were
/// withheld…"), if it starts with one.
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
    let r = svc.handle(request(Method::Get, &[resource_type, id], &[]), access);
    match r.status {
        200 => body_json(r.body).map(Some),
        404 | 410 => Ok(None),
        s => Err(error_of(s, r.body)),
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

/// `Reference.reference` → the id, when it points at `resource_type`.
pub fn reference_id<'a>(r: &'a Value, resource_type: &str) -> Option<&'a str> {
    r["reference"]
        .as_str()?
        .strip_prefix(resource_type)?
        .strip_prefix('/')
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
    }
}
