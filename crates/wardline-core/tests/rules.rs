//! Write rules: a rule registered with `FhirService::with_rule` is asked on
//! every write path (POST, PUT, conditional PUT, PATCH, transaction and batch
//! entries, `Tx::save`) with the version it would replace, reads inside the
//! writing transaction (its earlier entries included), and its refusal fails
//! the write with the element named, prefixed with the entry in a Bundle.
//! (The rules themselves live above the core: the PMI's is tested in
//! `wardline-workflow` and through the server in `crates/wardline/tests/e2e/pmi.rs`.)

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wardline_core::{
    Body, FhirRequest, FhirService, Method, ProposedWrite, RequestHeaders, RuleTx, ServiceConfig,
    Trusted, WriteRule,
};
use wardline_fhir::FhirError;

const BADGE: &str = "https://example.org/badge";

/// One Patient per badge number; remembers the writes it was asked about.
#[derive(Default)]
struct OneBadge {
    asked: Mutex<Vec<(String, Option<String>)>>,
}

impl WriteRule for OneBadge {
    fn watches(&self, t: &str) -> bool {
        t == "Patient"
    }
    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        self.asked.lock().unwrap().push((
            w.id.to_owned(),
            w.current
                .and_then(|c| c.pointer("/name/0/family"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        ));
        let ids = w.resource["identifier"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, ident) in ids.iter().enumerate() {
            if ident["system"] != BADGE {
                continue;
            }
            let v = ident["value"].as_str().unwrap_or_default();
            tx.lock(&[format!("badge|{v}")])?;
            for other in tx.find("Patient", &format!("identifier={BADGE}|{v}"), 5)? {
                if other["id"] != w.id {
                    return Err(FhirError::new(
                        422,
                        "duplicate",
                        format!(
                            "badge {v} is held by Patient/{}",
                            other["id"].as_str().unwrap()
                        ),
                    )
                    .at(format!("Patient.identifier[{i}]")));
                }
            }
        }
        Ok(())
    }
}

fn patient(id: Option<&str>, badge: &str, family: &str) -> Value {
    let mut p = json!({"resourceType": "Patient", "identifier": [{"system": BADGE, "value": badge}],
                       "name": [{"family": family}]});
    if let Some(id) = id {
        p["id"] = json!(id);
    }
    p
}

fn call(
    svc: &FhirService,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Value,
) -> (u16, Value) {
    let r = svc.handle(
        FhirRequest {
            method,
            path: path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            headers: RequestHeaders {
                content_type: (method == Method::Patch)
                    .then(|| "application/json-patch+json".to_owned()),
                ..RequestHeaders::default()
            },
            body: Some(serde_json::to_vec(&body).unwrap()),
        },
        &Trusted::operator("test"),
    );
    let v = match r.body {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => Value::Null,
    };
    (r.status, v)
}

fn refused(r: &(u16, Value), at: &str, holder: &str) {
    assert_eq!(r.0, 422, "{}", r.1);
    assert_eq!(r.1["issue"][0]["code"], "duplicate", "{}", r.1);
    assert_eq!(r.1["issue"][0]["expression"][0], at, "{}", r.1);
    assert!(
        r.1["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains(&format!("Patient/{holder}")),
        "{}",
        r.1
    );
}

#[test]
fn a_rule_is_asked_on_every_write_path_and_its_refusal_names_the_element() {
    let rule = Arc::new(OneBadge::default());
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().unwrap();
    let svc = FhirService::new(Arc::new(store), ServiceConfig::default()).with_rule(rule.clone());
    let op = Trusted::operator("test");

    // POST, then a second holder refused.
    let (s, a) = call(
        &svc,
        Method::Post,
        "Patient",
        &[],
        patient(None, "B1", "Ames"),
    );
    assert_eq!(s, 201);
    let a_id = a["id"].as_str().unwrap().to_owned();
    let r = call(
        &svc,
        Method::Post,
        "Patient",
        &[],
        patient(None, "B1", "Bell"),
    );
    refused(&r, "Patient.identifier[0]", &a_id);
    // Other types are not its business.
    let (s, _) = call(
        &svc,
        Method::Post,
        "Basic",
        &[],
        json!({"resourceType": "Basic", "code": {"text": "x"},
               "identifier": [{"system": BADGE, "value": "B1"}]}),
    );
    assert_eq!(s, 201);

    // PUT: the rule sees the version replaced; the holder may keep its badge.
    rule.asked.lock().unwrap().clear();
    let (s, _) = call(
        &svc,
        Method::Put,
        &format!("Patient/{a_id}"),
        &[],
        patient(Some(&a_id), "B1", "Amesbury"),
    );
    assert_eq!(s, 200);
    assert_eq!(
        rule.asked.lock().unwrap().as_slice(),
        [(a_id.clone(), Some("Ames".to_owned()))]
    );
    let r = call(
        &svc,
        Method::Put,
        "Patient/c",
        &[],
        patient(Some("c"), "B1", "Cole"),
    );
    refused(&r, "Patient.identifier[0]", &a_id);
    // Conditional PUT and PATCH.
    let r = call(
        &svc,
        Method::Put,
        "Patient",
        &[("family", "Nobody")],
        patient(None, "B1", "Nobody"),
    );
    refused(&r, "Patient.identifier[0]", &a_id);
    let (s, _) = call(
        &svc,
        Method::Put,
        "Patient/d",
        &[],
        patient(Some("d"), "B2", "Dunn"),
    );
    assert_eq!(s, 201);
    let r = call(
        &svc,
        Method::Patch,
        "Patient/d",
        &[],
        json!([{"op": "replace", "path": "/identifier/0/value", "value": "B1"}]),
    );
    refused(&r, "Patient.identifier[0]", &a_id);

    // A transaction: the rule sees its earlier entries; the refusal names
    // the entry, and nothing of the Bundle is written.
    let entry = |p: Value| json!({"resource": p, "request": {"method": "POST", "url": "Patient"}});
    let r = call(
        &svc,
        Method::Post,
        "",
        &[],
        json!({"resourceType": "Bundle", "type": "transaction",
               "entry": [entry(patient(None, "B3", "Eve")), entry(patient(None, "B3", "Fay"))]}),
    );
    assert_eq!(r.0, 422, "{}", r.1);
    assert_eq!(
        r.1["issue"][0]["expression"][0],
        "Bundle.entry[1].resource.identifier[0]"
    );
    let (_, found) = call(
        &svc,
        Method::Get,
        "Patient",
        &[("identifier", &format!("{BADGE}|B3"))],
        Value::Null,
    );
    assert_eq!(found["entry"], json!([]), "{found}");
    // A batch: the one entry fails, the other is written.
    let (s, b) = call(
        &svc,
        Method::Post,
        "",
        &[],
        json!({"resourceType": "Bundle", "type": "batch",
               "entry": [entry(patient(None, "B1", "Gil")), entry(patient(None, "B4", "Hal"))]}),
    );
    assert_eq!(s, 200);
    assert_eq!(
        b["entry"][0]["response"]["status"],
        "422 Unprocessable Entity"
    );
    assert_eq!(b["entry"][1]["response"]["status"], "201 Created");

    // Tx::save, the road of the workflows and the HL7 v2 engine.
    let err = svc
        .transact(&op, |tx| tx.save(patient(None, "B1", "Ivy")))
        .unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(err.issues[0].expression, vec!["Patient.identifier[0]"]);
}
