//! `FhirService::handle` over a real SQLite store: transactions, references,
//! conditionals and batches, without HTTP.

use std::sync::Arc;

use serde_json::{Value, json};
use wardline_core::{
    Body, FhirRequest, FhirResponse, FhirService, Method, OperationRequest, OperationSpec,
    RequestHeaders, ServiceConfig,
};
use wardline_fhir::FhirError;

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

/// A stand-in for an operation a module above the core would define.
fn cancel(svc: &FhirService, r: &OperationRequest<'_>) -> Result<FhirResponse, FhirError> {
    let p = r.parameters()?;
    let reason = p["parameter"]
        .as_array()
        .and_then(|ps| ps.iter().find(|x| x["name"] == "reason"))
        .and_then(|x| x["valueString"].as_str())
        .unwrap_or("none")
        .to_owned();
    assert!(svc.config().base_url.starts_with("http"));
    Ok(FhirResponse::json(
        200,
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "id", "valueString": r.id()},
            {"name": "type", "valueString": r.resource_type()},
            {"name": "reason", "valueString": reason},
        ]}),
    ))
}

/// Audit events of operations (reading them leaves one of another subtype).
fn audit_count(s: &FhirService) -> usize {
    let (st, b) = call(
        s,
        Method::Get,
        "AuditEvent",
        &[("subtype", "operation"), ("_count", "1000")],
        None,
    );
    assert_eq!(st, 200, "{b}");
    b["entry"].as_array().map_or(0, Vec::len)
}

#[test]
fn an_instance_operation_registered_outside_the_core_is_routed_listed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let definition = "https://fhir.wardline.invalid/OperationDefinition/MedicationRequest-cancel";
    let s = FhirService::new(Arc::new(store), ServiceConfig::default())
        .with_operation(OperationSpec::instance(
            "MedicationRequest",
            "cancel",
            definition,
            cancel,
        ))
        .with_operation(
            OperationSpec::system(
                "ping",
                "https://fhir.wardline.invalid/OperationDefinition/ping",
                |_: &FhirService, r: &OperationRequest<'_>| {
                    Ok(FhirResponse::json(200, r.parameters()?.clone()))
                },
            )
            .with_get(),
        );

    // Routed, with the id and the Parameters body.
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "reason", "valueString": "entered in error"}]});
    let before = audit_count(&s);
    let (st, r) = call(
        &s,
        Method::Post,
        "MedicationRequest/mr1/$cancel",
        &[],
        Some(body.clone()),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["parameter"][0]["valueString"], "mr1");
    assert_eq!(r["parameter"][1]["valueString"], "MedicationRequest");
    assert_eq!(r["parameter"][2]["valueString"], "entered in error");
    // It wrote nothing: its transactions would have recorded the event.
    assert_eq!(audit_count(&s), before);

    // Listed in the CapabilityStatement, with the core's own operations.
    let (_, cs) = call(&s, Method::Get, "metadata", &[], None);
    let resource = |t: &str| {
        cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == t)
            .unwrap()
            .clone()
    };
    let has = |ops: &Value, name: &str, def: &str| {
        ops.as_array().is_some_and(|os| {
            os.iter()
                .any(|o| o["name"] == name && o["definition"] == def)
        })
    };
    assert!(
        has(
            &resource("MedicationRequest")["operation"],
            "cancel",
            definition
        ),
        "{}",
        resource("MedicationRequest")
    );
    let patient = resource("Patient");
    assert!(has(
        &patient["operation"],
        "everything",
        wardline_core::EVERYTHING_DEFINITION
    ));
    // (`$export`, registered by `wardline-export`, is checked there.)
    let system = &cs["rest"][0]["operation"];
    assert!(has(
        system,
        "ping",
        "https://fhir.wardline.invalid/OperationDefinition/ping"
    ));
    assert!(resource("Observation").get("operation").is_none());

    // A method it does not accept is 405 (and the attempt is audited).
    let (st, r) = call(&s, Method::Get, "MedicationRequest/mr1/$cancel", &[], None);
    assert_eq!(st, 405, "{r}");
    assert_eq!(r["resourceType"], "OperationOutcome");
    assert!(
        r["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("MedicationRequest/[id]/$cancel"),
        "{r}"
    );
    assert_eq!(audit_count(&s), before + 1);
    let (st, _) = call(
        &s,
        Method::Delete,
        "MedicationRequest/mr1/$cancel",
        &[],
        None,
    );
    assert_eq!(st, 405);

    // Registered on instances only: not on the type, nor on another type.
    let (st, r) = call(
        &s,
        Method::Post,
        "MedicationRequest/$cancel",
        &[],
        Some(body.clone()),
    );
    assert_eq!(st, 404, "{r}");
    assert!(r.to_string().contains("no operation $cancel"), "{r}");
    let (st, _) = call(&s, Method::Post, "Observation/o1/$cancel", &[], Some(body));
    assert_eq!(st, 404);
    let (st, _) = call(&s, Method::Post, "NoSuchType/x/$cancel", &[], None);
    assert_eq!(st, 404);
    // A body that is not Parameters is 400.
    let (st, r) = call(
        &s,
        Method::Post,
        "MedicationRequest/mr1/$cancel",
        &[],
        Some(json!({"resourceType": "Patient"})),
    );
    assert_eq!(st, 400, "{r}");

    // A system operation that also accepts GET: the URL parameters become
    // its Parameters; an unknown system operation is 404.
    let (st, r) = call(&s, Method::Get, "$ping", &[("say", "hello")], None);
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r["parameter"][0],
        json!({"name": "say", "valueString": "hello"})
    );
    let (st, r) = call(&s, Method::Get, "$nothing", &[], None);
    assert_eq!(st, 404, "{r}");
}

#[test]
fn export_and_everything_are_unknown_where_not_registered() {
    // Without exports enabled, `$export` is not in the table (nor in the
    // CapabilityStatement); `$everything` always is.
    let (s, _d) = service();
    let (st, _) = call(&s, Method::Get, "$export", &[], None);
    assert_eq!(st, 404);
    let (_, cs) = call(&s, Method::Get, "metadata", &[], None);
    assert!(
        cs["rest"][0].get("operation").is_none(),
        "{}",
        cs["rest"][0]["operation"]
    );
    let (st, _) = call(&s, Method::Get, "Patient/nobody/$everything", &[], None);
    assert_eq!(st, 404);
    let (st, _) = call(&s, Method::Delete, "Patient/nobody/$everything", &[], None);
    assert_eq!(st, 405);
}

#[test]
fn an_operation_url_is_routed_by_name_segments_and_method_and_not_listed() {
    use wardline_core::OperationUrl;
    let (s, _d) = service();
    let s = s
        .with_operation_url(
            OperationUrl::new("thing-file", |_: &FhirService, r: &OperationRequest<'_>| {
                r.audit_as("thing-file", "R");
                Ok(FhirResponse::json(
                    200,
                    json!({"tail": r.tail(), "method": format!("{:?}", r.method())}),
                ))
            })
            .with_segments(2)
            .with_delete(),
        )
        .with_operation_url(OperationUrl::new(
            "thing-status",
            |_: &FhirService, r: &OperationRequest<'_>| {
                r.audit_as("thing-status", "R");
                Ok(FhirResponse::json(200, json!({"query": r.query().len()})))
            },
        ));
    let (st, r) = call(&s, Method::Get, "$thing-file/j1/a.ndjson", &[], None);
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["tail"], json!(["j1", "a.ndjson"]));
    let (st, r) = call(&s, Method::Delete, "$thing-file/j1/a.ndjson", &[], None);
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["method"], "Delete");
    let (st, r) = call(&s, Method::Post, "$thing-file/j1/a.ndjson", &[], None);
    assert_eq!(st, 405, "{r}");
    // The number of segments is part of the URL.
    let (st, _) = call(&s, Method::Get, "$thing-file/j1", &[], None);
    assert_eq!(st, 404);
    let (st, _) = call(&s, Method::Get, "$thing-file", &[], None);
    assert_eq!(st, 404);
    let (st, r) = call(&s, Method::Get, "$thing-status", &[("_jobId", "x")], None);
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["query"], 1);
    let (st, _) = call(&s, Method::Delete, "$thing-status", &[], None);
    assert_eq!(st, 405);
    // Audited by the interaction, under the handler's subtype (the GET and
    // the DELETE; the refused POST never reached the handler).
    let (st, b) = call(
        &s,
        Method::Get,
        "AuditEvent",
        &[("subtype", "thing-file")],
        None,
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["entry"].as_array().map_or(0, Vec::len), 2);
    // Not operations: not in the CapabilityStatement.
    let (_, cs) = call(&s, Method::Get, "metadata", &[], None);
    assert!(!cs.to_string().contains("thing-"), "{cs}");
}
