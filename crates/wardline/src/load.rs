//! Loading FHIR JSON through the core, for `wardline import` and the
//! benchmarks: a resource is a PUT (or a POST without an id), a transaction
//! or batch Bundle is posted as it is, any other Bundle becomes a transaction
//! of its entries' resources.

use std::io::Read;
use std::path::Path;

use serde_json::Value;
use wardline_core::{Body, FhirRequest, FhirService, Method, RequestHeaders};
use wardline_fhir::FhirError;

/// Loads `resource` (a plain resource or a Bundle) through the core. Returns
/// the number of resources written.
pub fn load_value(service: &FhirService, v: Value) -> Result<usize, String> {
    let rt = v
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or("not a FHIR resource (no resourceType)")?
        .to_owned();
    if rt == "Bundle" {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind == "transaction" || kind == "batch" {
            let n = v.get("entry").and_then(Value::as_array).map_or(0, Vec::len);
            let resp = call(service, Method::Post, vec![], &v)?;
            if kind == "batch"
                && let Body::Json(b) = &resp
            {
                let failed: Vec<String> = b["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .filter(|(_, e)| {
                        !e["response"]["status"]
                            .as_str()
                            .unwrap_or("")
                            .starts_with('2')
                    })
                    .map(|(i, e)| {
                        format!(
                            "entry {i}: {}",
                            e["response"]["outcome"]["issue"][0]["diagnostics"]
                        )
                    })
                    .collect();
                if !failed.is_empty() {
                    return Err(format!("batch entries failed: {}", failed.join("; ")));
                }
            }
            return Ok(n);
        }
        // Other Bundles: load each entry's resource as a transaction of PUTs/POSTs.
        let resources: Vec<Value> = v
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("resource").cloned())
            .collect();
        let n = resources.len();
        call(service, Method::Post, vec![], &transaction(resources))?;
        return Ok(n);
    }
    match v.get("id").and_then(Value::as_str) {
        Some(id) => call(service, Method::Put, vec![rt.clone(), id.to_owned()], &v)?,
        None => call(service, Method::Post, vec![rt], &v)?,
    };
    Ok(1)
}

/// A transaction Bundle writing `resources`: each a PUT to its id, or a
/// POST when it has none.
pub fn transaction(resources: impl IntoIterator<Item = Value>) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let t = r["resourceType"].as_str().unwrap_or_default().to_owned();
            match r.get("id").and_then(Value::as_str).map(str::to_owned) {
                Some(id) => serde_json::json!({"resource": r, "request": {"method": "PUT", "url": format!("{t}/{id}")}}),
                None => serde_json::json!({"resource": r, "request": {"method": "POST", "url": t}}),
            }
        })
        .collect();
    serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

pub fn call(
    service: &FhirService,
    method: Method,
    path: Vec<String>,
    v: &Value,
) -> Result<Body, String> {
    let resp = service.handle(
        FhirRequest {
            method,
            path,
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(serde_json::to_vec(v).map_err(|e| e.to_string())?),
        },
        &wardline_core::Trusted::operator("import"),
    );
    if resp.status >= 400 {
        return Err(match &resp.body {
            Body::Json(oo) => outcome_text(oo),
            _ => format!("refused ({})", resp.status),
        });
    }
    Ok(resp.body)
}

/// An OperationOutcome as a person reads it: each issue's element, then its
/// diagnostics (`Patient.birthDate: 'x' is not a valid date`), issues joined
/// by "; ". No HTTP status: the CLI is not talking HTTP.
pub fn outcome_text(oo: &Value) -> String {
    let text: Vec<String> = oo["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let why = i["diagnostics"]
                .as_str()
                .or_else(|| i["details"]["text"].as_str())
                .unwrap_or_else(|| i["code"].as_str().unwrap_or("error"));
            match i["expression"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
            {
                Some(at) => format!("{at}: {why}"),
                None => why.to_owned(),
            }
        })
        .collect();
    if text.is_empty() {
        "refused".to_owned()
    } else {
        text.join("; ")
    }
}

/// A [`FhirError`] in the same words as [`outcome_text`], for the CLI's
/// messages (its `Display` starts with the HTTP status, which means nothing
/// to someone at a terminal).
pub fn plain(e: &FhirError) -> String {
    outcome_text(&e.to_operation_outcome())
}

/// [`plain`] as an [`anyhow::Error`], for `map_err`.
pub fn fhir_err(e: FhirError) -> anyhow::Error {
    anyhow::anyhow!(plain(&e))
}

/// A file's text, gunzipped when it ends in `.gz`.
pub fn read_text(p: &Path) -> std::io::Result<String> {
    let raw = std::fs::read(p)?;
    if p.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_string(&mut s)?;
        Ok(s)
    } else {
        String::from_utf8(raw).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
