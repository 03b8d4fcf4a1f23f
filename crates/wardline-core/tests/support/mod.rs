//! Helpers shared by the core's integration tests: a request through
//! [`FhirService::handle`] as the operator, and a PUT that must succeed.

use serde_json::Value;
use wardline_core::{Body, FhirRequest, FhirService, Method, RequestHeaders, Trusted};

/// `method path?query` with a JSON body, as the operator: (status, body).
pub fn request(
    svc: &FhirService,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let r = svc.handle(
        FhirRequest {
            method,
            path: path.split('/').map(str::to_owned).collect(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            headers: RequestHeaders::default(),
            body: body.map(|b| b.to_string().into_bytes()),
        },
        &Trusted::operator("test"),
    );
    let v = match r.body {
        Body::Raw(t) => serde_json::from_str(&t).unwrap(),
        Body::Json(v) => v,
        _ => Value::Null,
    };
    (r.status, v)
}

pub fn put(svc: &FhirService, r: Value) {
    let path = format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    );
    let (status, body) = request(svc, Method::Put, &path, &[], Some(r));
    assert!(
        status == 200 || status == 201,
        "PUT {path}: {status} {body}"
    );
}
