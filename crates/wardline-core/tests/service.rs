//! `FhirService::handle` over a real SQLite store: transactions, references,
//! conditionals and batches, without HTTP.

use std::sync::Arc;

use serde_json::{Value, json};
use wardline_core::{
    Body, FhirRequest, FhirResponse, FhirService, Method, RequestHeaders, ServiceConfig,
};

fn service() -> (FhirService, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("t.db")).unwrap();
    (
        FhirService::new(Arc::new(store), ServiceConfig::default()),
        dir,
    )
}

fn call(
    s: &FhirService,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let r: FhirResponse = s.handle(
        FhirRequest {
            method,
            path: path
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            query: query
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            headers: RequestHeaders::default(),
            body: body.map(|b| serde_json::to_vec(&b).unwrap()),
        },
        &wardline_core::Trusted::operator("test"),
    );
    let v = match r.body {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        Body::None => Value::Null,
        Body::File { path, .. } => Value::String(path.display().to_string()),
    };
    (r.status, v)
}

fn count(s: &FhirService, t: &str) -> u64 {
    let (_, b) = call(s, Method::Get, t, &[("_summary", "count")], None);
    b["total"].as_u64().unwrap()
}

#[test]
fn transaction_rewrites_urn_uuids_and_resolves_conditional_references() {
    let (s, _d) = service();
    let (st, _) = call(
        &s,
        Method::Put,
        "Organization/gp1",
        &[],
        Some(json!({"resourceType": "Organization", "id": "gp1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "E82001"}]})),
    );
    assert_eq!(st, 201);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
         "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}],
             "generalPractitioner": [{"reference": "Organization?identifier=https://fhir.nhs.uk/Id/ods-organization-code|E82001"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222",
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "hr"},
             "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"}},
         "request": {"method": "POST", "url": "Observation"}}
    ]});
    let (st, resp) = call(&s, Method::Post, "", &[], Some(bundle));
    assert_eq!(st, 200, "{resp}");
    let loc = resp["entry"][0]["response"]["location"].as_str().unwrap();
    let pid = loc.split('/').nth(1).unwrap().to_owned();
    let (_, obs) = call(
        &s,
        Method::Get,
        "Observation",
        &[("subject", &format!("Patient/{pid}"))],
        None,
    );
    assert_eq!(obs["entry"].as_array().unwrap().len(), 1, "{obs}");
    let (_, p) = call(&s, Method::Get, &format!("Patient/{pid}"), &[], None);
    assert_eq!(p["generalPractitioner"][0]["reference"], "Organization/gp1");
    // Compartment search finds the observation through the patient key.
    let (_, c) = call(
        &s,
        Method::Get,
        &format!("Patient/{pid}/Observation"),
        &[],
        None,
    );
    assert_eq!(c["entry"].as_array().unwrap().len(), 1);
}

#[test]
fn a_failing_entry_fails_the_whole_transaction() {
    let (s, _d) = service();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Ok"}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "birthDate": "not-a-date"}, "request": {"method": "POST", "url": "Patient"}}
    ]});
    let (st, oo) = call(&s, Method::Post, "", &[], Some(bundle));
    assert_eq!(st, 400, "{oo}");
    assert_eq!(
        oo["issue"][0]["expression"][0],
        "Bundle.entry[1].resource.birthDate"
    );
    assert_eq!(count(&s, "Patient"), 0, "nothing written");
    // A conditional reference that matches nothing fails it too.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "managingOrganization": {"reference": "Organization?identifier=x|nope"}},
         "request": {"method": "POST", "url": "Patient"}}
    ]});
    let (st, _) = call(&s, Method::Post, "", &[], Some(bundle));
    assert_eq!(st, 400);
    assert_eq!(count(&s, "Patient"), 0);
}

#[test]
fn batch_entries_are_independent() {
    let (s, _d) = service();
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Good"}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "nmae": []}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/missing"}}
    ]});
    let (st, r) = call(&s, Method::Post, "", &[], Some(bundle));
    assert_eq!(st, 200);
    assert_eq!(r["type"], "batch-response");
    assert!(
        r["entry"][0]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("201")
    );
    assert!(
        r["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("400")
    );
    assert_eq!(
        r["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert!(
        r["entry"][2]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("404")
    );
    assert_eq!(count(&s, "Patient"), 1);
}

#[test]
fn conditional_create_update_and_versioning() {
    let (s, _d) = service();
    let p = json!({"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "1"}]});
    let req = |cond: &str| FhirRequest {
        method: Method::Post,
        path: vec!["Patient".into()],
        query: vec![],
        headers: RequestHeaders {
            if_none_exist: Some(cond.into()),
            ..RequestHeaders::default()
        },
        body: Some(serde_json::to_vec(&p).unwrap()),
    };
    assert_eq!(
        s.handle(
            req("identifier=urn:x|1"),
            &wardline_core::Trusted::operator("test")
        )
        .status,
        201
    );
    assert_eq!(
        s.handle(
            req("identifier=urn:x|1"),
            &wardline_core::Trusted::operator("test")
        )
        .status,
        200,
        "existing match returned"
    );
    assert_eq!(count(&s, "Patient"), 1);
    // Conditional update of the match makes version 2; history shows both.
    let (st, _) = call(
        &s,
        Method::Put,
        "Patient",
        &[("identifier", "urn:x|1")],
        Some(
            json!({"resourceType": "Patient", "active": true, "identifier": [{"system": "urn:x", "value": "1"}]}),
        ),
    );
    assert_eq!(st, 200);
    let (_, b) = call(&s, Method::Get, "Patient", &[], None);
    let id = b["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
    assert_eq!(b["entry"][0]["resource"]["meta"]["versionId"], "2");
    let (_, h) = call(
        &s,
        Method::Get,
        &format!("Patient/{id}/_history"),
        &[],
        None,
    );
    assert_eq!(h["entry"].as_array().unwrap().len(), 2);
    let (st, _) = call(
        &s,
        Method::Get,
        &format!("Patient/{id}/_history/1"),
        &[],
        None,
    );
    assert_eq!(st, 200);
    // Delete leaves a tombstone: 410 on read, version 3 in history.
    assert_eq!(
        call(&s, Method::Delete, &format!("Patient/{id}"), &[], None).0,
        204
    );
    assert_eq!(
        call(&s, Method::Get, &format!("Patient/{id}"), &[], None).0,
        410
    );
    let (_, h) = call(
        &s,
        Method::Get,
        &format!("Patient/{id}/_history"),
        &[],
        None,
    );
    assert_eq!(h["entry"][0]["request"]["method"], "DELETE");
}

#[test]
fn capability_statement_lists_supported_params() {
    let (s, _d) = service();
    let (st, cs) = call(&s, Method::Get, "metadata", &[], None);
    assert_eq!(st, 200);
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let patient = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap();
    assert!(
        patient["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "birthdate")
    );
}
