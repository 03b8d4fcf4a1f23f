//! `Patient/$everything` returns the Patient first, on the first page, even
//! when the record's other resources were written before it (an import that
//! loads `Encounter.ndjson` before `Patient.ndjson`), and on no other page.
//! Issue 15: the first page of such a record had no Patient.

use std::sync::Arc;

use serde_json::{Value, json};
use wardline_core::{
    Body, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Trusted,
};

fn get(svc: &FhirService, path: &[&str], query: &[(&str, &str)]) -> Value {
    let r = svc.handle(
        FhirRequest {
            method: Method::Get,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            headers: RequestHeaders::default(),
            body: None,
        },
        &Trusted::operator("test"),
    );
    assert_eq!(r.status, 200);
    match r.body {
        Body::Raw(t) => serde_json::from_str(&t).unwrap(),
        Body::Json(v) => v,
        _ => panic!("no body"),
    }
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect()
}

fn next_query(bundle: &Value) -> Option<Vec<(String, String)>> {
    let url = bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")?["url"]
        .as_str()?;
    let q = url.split_once('?')?.1;
    Some(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
}

#[test]
fn the_patient_comes_first_on_the_first_page_only() {
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().unwrap();
    let svc = FhirService::new(Arc::new(store), ServiceConfig::default());
    svc.transact(&Trusted::operator("seed"), |tx| {
        for i in 0..5 {
            tx.save(json!({"resourceType": "Encounter", "id": format!("e{i}"), "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": "Patient/late"}}))?;
        }
        // The Patient is written after its encounters.
        tx.save(json!({"resourceType": "Patient", "id": "late", "name": [{"family": "Late"}]}))?;
        Ok(())
    })
    .unwrap();

    let first = get(
        &svc,
        &["Patient", "late", "$everything"],
        &[("_count", "2")],
    );
    let mut seen = ids(&first);
    assert_eq!(seen[0], "Patient/late", "{first}");
    let mut next = next_query(&first);
    let mut pages = 1;
    while let Some(q) = next {
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let page = get(&svc, &["Patient", "late", "$everything"], &q);
        let got = ids(&page);
        assert!(
            !got.contains(&"Patient/late".to_owned()),
            "the patient once: {page}"
        );
        seen.extend(got);
        next = next_query(&page);
        pages += 1;
        assert!(pages < 10, "paging ends");
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "Encounter/e0",
            "Encounter/e1",
            "Encounter/e2",
            "Encounter/e3",
            "Encounter/e4",
            "Patient/late"
        ]
    );
    // Asking for encounters only leaves the patient out.
    let enc_only = get(
        &svc,
        &["Patient", "late", "$everything"],
        &[("_type", "Encounter"), ("_count", "2")],
    );
    assert!(
        !ids(&enc_only).contains(&"Patient/late".to_owned()),
        "{enc_only}"
    );
}
