//! FHIR input through the core, without HTTP:
//!
//! * decimals come back as written (a property test over the service);
//! * a REST body with a key given twice is refused (`FhirService::handle`
//!   parses with `wardline_fhir::json`);
//! * what workflows, the HL7 v2 mapping and the import write through
//!   `Tx::save` meets the same validation as a REST write: codes outside a
//!   required binding, control characters, a `meta` of the wrong shape.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use wardline_core::{Body, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig};
use wardline_fhir::FhirError;

fn service() -> FhirService {
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().unwrap();
    FhirService::new(Arc::new(store), ServiceConfig::default())
}

fn trusted() -> wardline_core::Trusted {
    wardline_core::Trusted::operator("test")
}

/// Status and body text of a request with a raw body.
fn call(svc: &FhirService, method: Method, path: &str, body: Option<&str>) -> (u16, String) {
    let r = svc.handle(
        FhirRequest {
            method,
            path: path
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            query: vec![],
            headers: RequestHeaders::default(),
            body: body.map(|b| b.as_bytes().to_vec()),
        },
        &trusted(),
    );
    let text = match r.body {
        Body::Json(v) => serde_json::to_string(&v).unwrap(),
        Body::Raw(s) => s,
        Body::None => String::new(),
        Body::File { path, .. } => path.display().to_string(),
    };
    (r.status, text)
}

fn count(svc: &FhirService, t: &str) -> usize {
    let (st, text) = call(svc, Method::Get, t, None);
    assert_eq!(st, 200, "{text}");
    let b: Value = serde_json::from_str(&text).unwrap();
    b["entry"].as_array().map_or(0, Vec::len)
}

fn expressions(e: &FhirError) -> Vec<String> {
    e.issues.iter().flat_map(|i| i.expression.clone()).collect()
}

#[test]
fn tx_save_validates_what_every_channel_writes() {
    let svc = service();
    let cases = [
        (
            json!({"resourceType": "Patient", "gender": "banana"}),
            "Patient.gender",
        ),
        (
            json!({"resourceType": "Observation", "status": "banana", "code": {"text": "x"}}),
            "Observation.status",
        ),
        (
            json!({"resourceType": "Patient", "name": [{"family": "Smi\u{7}th"}]}),
            "Patient.name[0].family",
        ),
        (
            json!({"resourceType": "Patient", "meta": {"versionId": {"a": 1}}}),
            "Patient.meta.versionId",
        ),
        (
            json!({"resourceType": "Patient", "id": "p1", "meta": {"lastUpdated": "soon"}}),
            "Patient.meta.lastUpdated",
        ),
    ];
    for (resource, at) in cases {
        let err = svc
            .transact(&trusted(), |tx| {
                tx.save(json!({"resourceType": "Patient", "gender": "female"}))?;
                tx.save(resource.clone())
            })
            .unwrap_err();
        assert_eq!(err.status, 400, "{resource}: {err}");
        assert_eq!(expressions(&err), vec![at.to_owned()], "{resource}: {err}");
    }
    // Nothing of the failed transactions was written.
    assert_eq!(count(&svc, "Patient"), 0);
    assert_eq!(count(&svc, "Observation"), 0);
    // The server still stamps meta over a well-formed one.
    let saved = svc
        .transact(&trusted(), |tx| {
            tx.save(json!({"resourceType": "Patient", "gender": "other",
                "meta": {"versionId": "9", "tag": [{"system": "urn:x", "code": "t"}]}}))
        })
        .unwrap();
    assert_eq!(saved.resource["meta"]["versionId"], "1");
    assert_eq!(saved.resource["meta"]["tag"][0]["code"], "t");
}

#[test]
fn rest_bodies_with_a_duplicate_key_are_refused() {
    let svc = service();
    let (st, text) = call(
        &svc,
        Method::Post,
        "Patient",
        Some(r#"{"resourceType":"Patient","gender":"male","gender":"female"}"#),
    );
    assert_eq!(st, 400, "{text}");
    assert!(
        text.contains(r#""expression":["Patient.gender"]"#),
        "{text}"
    );
    let (st, text) = call(
        &svc,
        Method::Post,
        "",
        Some(
            r#"{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"},
            "request":{"method":"POST","url":"Patient"},"request":{"method":"POST","url":"Patient"}}]}"#,
        ),
    );
    assert_eq!(st, 400, "{text}");
    assert!(
        text.contains(r#""expression":["Bundle.entry[0].request"]"#),
        "{text}"
    );
    // A JSON Patch document is parsed the same way.
    let (st, created) = call(
        &svc,
        Method::Post,
        "Patient",
        Some(r#"{"resourceType":"Patient","gender":"male"}"#),
    );
    assert_eq!(st, 201);
    let id = serde_json::from_str::<Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, text) = call(
        &svc,
        Method::Patch,
        &format!("Patient/{id}"),
        Some(r#"[{"op":"replace","path":"/gender","value":"female","value":"other"}]"#),
    );
    assert_eq!(st, 400, "{text}");
    assert!(text.contains(r#""expression":["[0].value"]"#), "{text}");
    assert_eq!(count(&svc, "Patient"), 1);
}

/// A FHIR decimal's text: sign, digits (more than an f64 holds), a
/// fraction with trailing zeros, sometimes an exponent.
fn decimal() -> impl Strategy<Value = String> {
    (
        "-?(0|[1-9][0-9]{0,22})",
        "(\\.[0-9]{0,10}0{0,3}[0-9])?",
        "(e[-+]?[1-9][0-9]?)?",
    )
        .prop_map(|(i, f, e)| format!("{i}{f}{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any decimal is stored and returned as written: create response,
    /// read, vread, history and search.
    #[test]
    fn decimals_round_trip_exactly(d in decimal()) {
        let svc = service();
        let body = format!(
            r#"{{"resourceType":"Observation","status":"final","code":{{"text":"x"}},"valueQuantity":{{"value":{d}}}}}"#
        );
        let (st, created) = call(&svc, Method::Post, "Observation", Some(&body));
        prop_assert_eq!(st, 201, "{}", created);
        // Every digit as written; only an exponent is spelt `e+N`/`e-N`.
        let written = match d.split_once('e') {
            Some((m, e)) if !e.starts_with(['+', '-']) => format!("{m}e+{e}"),
            _ => d.clone(),
        };
        let want = format!(r#""valueQuantity":{{"value":{written}}}"#);
        prop_assert!(created.contains(&want), "create: {}", created);
        let id = serde_json::from_str::<Value>(&created).unwrap()["id"].as_str().unwrap().to_owned();
        for path in [
            format!("Observation/{id}"),
            format!("Observation/{id}/_history/1"),
            format!("Observation/{id}/_history"),
            "Observation".to_owned(),
        ] {
            let (st, text) = call(&svc, Method::Get, &path, None);
            prop_assert_eq!(st, 200);
            prop_assert!(text.contains(&want), "{}: {}", path, text);
        }
    }
}
