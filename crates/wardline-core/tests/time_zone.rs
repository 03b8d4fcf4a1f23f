//! The trust's time zone is configuration (`ServiceConfig::time_zone`), and
//! the index is rebuilt when a database was indexed another way: by an
//! earlier Wardline (zone-less dates as UTC, a canonical's version in its
//! URL) or in another zone. SQLite and PostgreSQL.

mod support;
use support::{put, request};

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use wardline_core::{FhirService, Method, ServiceConfig};
use wardline_fhir::datetime::LocalZone;
use wardline_fhir::{IndexEntry, IndexValue};
use wardline_store::{Reindex, Store};

fn stores(test: &str) -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    support::stores(&format!("tz_{test}"))
}

fn service(store: &Arc<dyn Store>, zone: &str) -> FhirService {
    FhirService::new(
        store.clone(),
        ServiceConfig {
            time_zone: LocalZone::named(zone).unwrap(),
            ..ServiceConfig::default()
        },
    )
}

fn found(svc: &FhirService, t: &str, query: &[(&str, &str)]) -> BTreeSet<String> {
    let (status, b) = request(svc, Method::Get, t, query, None);
    assert_eq!(status, 200, "{t}?{query:?}: {b}");
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn never(_: u64) {}

/// The R4 example Task authored at 08:45:05 on 31 October 2016 in
/// Brisbane (+10:00) is a Task of 31 October for a trust in Brisbane, and
/// of 30 October (22:45 GMT) for one in London.
#[test]
fn the_trust_zone_decides_which_day_an_instant_is_on() {
    for (name, store, _dir) in stores("task") {
        let task = json!({"resourceType": "Task", "id": "example2", "status": "in-progress",
            "intent": "order", "authoredOn": "2016-10-31T08:45:05+10:00"});
        let brisbane = service(&store, "Australia/Brisbane");
        brisbane.reindex_if_needed(&mut never).unwrap();
        put(&brisbane, task);
        let q = |svc: &FhirService, v: &str| found(svc, "Task", &[("authored-on", v)]);
        assert_eq!(q(&brisbane, "eq2016-10-31"), set(&["example2"]), "{name}");
        assert!(q(&brisbane, "eq2016-10-30").is_empty(), "{name}");
        let london = service(&store, "Europe/London");
        assert_eq!(
            london.reindex_if_needed(&mut never).unwrap(),
            Some(1),
            "{name}"
        );
        assert!(q(&london, "eq2016-10-31").is_empty(), "{name}");
        assert_eq!(q(&london, "eq2016-10-30"), set(&["example2"]), "{name}");
        // The instant itself is found the same way in both.
        assert_eq!(
            q(&london, "2016-10-30T22:45:05Z"),
            set(&["example2"]),
            "{name}"
        );
    }
}

/// A database indexed before (no format recorded: zone-less dates as UTC,
/// canonical versions inside the URL) is reindexed once, writing no
/// version; a later start has nothing to do; another zone reindexes again.
#[test]
fn an_index_built_another_way_is_rebuilt() {
    for (name, store, _dir) in stores("reindex") {
        // The old index: what an earlier Wardline wrote.
        let old = service(&store, "UTC");
        put(
            &old,
            json!({"resourceType": "Patient", "id": "summer", "birthDate": "1990-07-01"}),
        );
        put(
            &old,
            json!({"resourceType": "QuestionnaireResponse", "id": "qr", "status": "completed",
            "questionnaire": "http://example.org/Questionnaire/gcs|1.0"}),
        );
        let mut tx = store.begin().unwrap();
        tx.reindex(&[Reindex {
            resource_type: "QuestionnaireResponse".into(),
            id: "qr".into(),
            version: 1,
            index: vec![IndexEntry::new(
                "questionnaire",
                IndexValue::Reference {
                    target_type: None,
                    target_id: None,
                    url: "http://example.org/Questionnaire/gcs|1.0".into(),
                    version: None,
                },
            )],
        }])
        .unwrap();
        tx.commit().unwrap();
        assert_eq!(
            wardline_core::reindex::recorded_zone(&*store).unwrap(),
            None
        );

        let london = service(&store, "Europe/London");
        let birth = |svc: &FhirService| found(svc, "Patient", &[("birthdate", "1990-07-01")]);
        let gcs = |svc: &FhirService| {
            found(
                svc,
                "QuestionnaireResponse",
                &[("questionnaire", "http://example.org/Questionnaire/gcs")],
            )
        };
        // The hazard: a summer birthday is not found on the old index.
        assert!(birth(&london).is_empty(), "{name}");
        assert!(gcs(&london).is_empty(), "{name}");
        let mut seen = Vec::new();
        assert_eq!(
            london.reindex_if_needed(&mut |n| seen.push(n)).unwrap(),
            Some(2),
            "{name}"
        );
        assert_eq!(seen.last(), Some(&2), "{name}");
        assert_eq!(birth(&london), set(&["summer"]), "{name}");
        assert_eq!(gcs(&london), set(&["qr"]), "{name}");
        assert_eq!(
            wardline_core::reindex::recorded_zone(&*store)
                .unwrap()
                .as_deref(),
            Some("Europe/London")
        );
        assert_eq!(london.index_format(), "2 Europe/London");
        // No version was written.
        let (_, p) = request(&london, Method::Get, "Patient/summer", &[], None);
        assert_eq!(p["meta"]["versionId"], "1", "{name}");
        let (_, h) = request(&london, Method::Get, "Patient/summer/_history", &[], None);
        assert_eq!(h["entry"].as_array().map(Vec::len), Some(1), "{name}");
        // Nothing to do the next time.
        assert_eq!(
            london.reindex_if_needed(&mut never).unwrap(),
            None,
            "{name}"
        );
        // Another zone: rebuilt in it.
        let kolkata = service(&store, "Asia/Kolkata");
        assert_eq!(
            kolkata.reindex_if_needed(&mut never).unwrap(),
            Some(2),
            "{name}"
        );
        assert_eq!(birth(&kolkata), set(&["summer"]), "{name}");
        assert_eq!(
            wardline_core::reindex::recorded_zone(&*store)
                .unwrap()
                .as_deref(),
            Some("Asia/Kolkata")
        );
    }
}

#[test]
fn a_new_database_records_its_zone_without_reindexing() {
    for (name, store, _dir) in stores("fresh") {
        let svc = service(&store, "Europe/London");
        assert_eq!(svc.reindex_if_needed(&mut never).unwrap(), None, "{name}");
        assert_eq!(
            wardline_core::reindex::recorded_zone(&*store)
                .unwrap()
                .as_deref(),
            Some("Europe/London"),
            "{name}"
        );
    }
}
