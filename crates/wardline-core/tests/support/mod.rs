//! Helpers shared by the core's integration tests: a request through
//! [`FhirService::handle`] as the operator, a PUT that must succeed, and a
//! store on each backend.

use serde_json::Value;
use std::sync::Arc;

use wardline_core::{
    Body, FhirRequest, FhirResponse, FhirService, Method, RequestHeaders, Trusted,
};
use wardline_store::Store;

/// `method path?query` with a JSON body, as the operator: the response.
pub fn respond(
    svc: &FhirService,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> FhirResponse {
    svc.handle(
        FhirRequest {
            method,
            path: path
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            headers: RequestHeaders::default(),
            body: body.map(|b| b.to_string().into_bytes()),
        },
        &Trusted::operator("test"),
    )
}

/// The body of a response as JSON (`Null` when there is none).
pub fn json_of(r: FhirResponse) -> Value {
    match r.body {
        Body::Raw(t) => serde_json::from_str(&t).unwrap(),
        Body::Json(v) => v,
        _ => Value::Null,
    }
}

/// `method path?query` with a JSON body, as the operator: (status, body).
pub fn request(
    svc: &FhirService,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let r = respond(svc, method, path, query, body);
    (r.status, json_of(r))
}

/// A store on each backend: SQLite in a temporary directory, and
/// PostgreSQL (a fresh schema named after `prefix`) when the tests are given
/// one. The directory must outlive the store.
pub fn stores(prefix: &str) -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let mut out: Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> =
        vec![("sqlite", Arc::new(sqlite), Some(dir))];
    if let Some((pg, _, _)) = wardline_store_postgres::testenv::store(prefix) {
        out.push(("postgres", Arc::new(pg), None));
    }
    out
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
