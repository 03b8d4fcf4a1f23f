//! Issue 15, search: canonical references are matched by URL, and date
//! values without a time-zone offset are read in the trust's local time
//! zone (Europe/London by default), on SQLite and PostgreSQL, through
//! `FhirService::handle` as the REST API calls it. The fixtures are written
//! here; the expectations are computed by hand from the UK clock changes of
//! 2024 (BST from 31 March 01:00 UTC to 27 October 01:00 UTC).
//!
//! Before the fix, `MeasureReport?measure=Measure/CMS146` found nothing (a
//! canonical was indexed without type and id, the query compared ids), and
//! `Observation?date=2024-07-01` meant the UTC day, so an observation at
//! 00:30 BST on 1 July was not found and one at 00:00 BST on 2 July was.

mod support;
use support::{put, request};

use std::collections::BTreeSet;

use serde_json::{Value, json};
use wardline_core::{FhirService, Method, ServiceConfig};

struct Backend {
    name: &'static str,
    svc: FhirService,
    _dir: Option<tempfile::TempDir>,
}

fn backends(test: &str) -> Vec<Backend> {
    support::stores(&format!("i15_{test}"))
        .into_iter()
        .map(|(name, store, dir)| Backend {
            name,
            svc: FhirService::new(store, ServiceConfig::default()),
            _dir: dir,
        })
        .collect()
}

/// The ids a search finds (all on one page).
fn found(svc: &FhirService, t: &str, query: &[(&str, &str)]) -> BTreeSet<String> {
    let mut q = query.to_vec();
    q.push(("_count", "100"));
    let (status, b) = request(svc, Method::Get, t, &q, None);
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

#[test]
fn canonical_references_are_matched_by_url() {
    for b in backends("canonical") {
        let svc = &b.svc;
        put(
            svc,
            json!({"resourceType": "MeasureReport", "id": "mr1", "status": "complete",
            "type": "individual", "measure": "Measure/CMS146",
            "period": {"start": "2014-01-01", "end": "2014-03-31"}}),
        );
        put(
            svc,
            json!({"resourceType": "MeasureReport", "id": "mr2", "status": "complete",
            "type": "individual", "measure": "http://example.org/fhir/Measure/CMS146|2.1",
            "period": {"start": "2014-01-01", "end": "2014-03-31"}}),
        );
        put(
            svc,
            json!({"resourceType": "QuestionnaireResponse", "id": "qr1", "status": "completed",
            "questionnaire": "Questionnaire/gcs"}),
        );
        put(
            svc,
            json!({"resourceType": "QuestionnaireResponse", "id": "qr2", "status": "completed",
            "questionnaire": "http://example.org/fhir/Questionnaire/gcs|1.0"}),
        );
        put(
            svc,
            json!({"resourceType": "QuestionnaireResponse", "id": "qr3", "status": "completed",
            "questionnaire": "http://example.org/fhir/Questionnaire/gcs|1.0.2"}),
        );
        put(
            svc,
            json!({"resourceType": "QuestionnaireResponse", "id": "qr4", "status": "completed",
            "questionnaire": "http://example.org/fhir/Questionnaire/gcs|2.0"}),
        );
        put(
            svc,
            json!({"resourceType": "Procedure", "id": "pr1", "status": "completed",
            "instantiatesCanonical": ["PlanDefinition/KDN5", "http://example.org/fhir/PlanDefinition/other"],
            "subject": {"reference": "Patient/p1"}}),
        );
        let n = b.name;
        let q = |t: &str, k: &str, v: &str| found(svc, t, &[(k, v)]);
        assert_eq!(
            q("MeasureReport", "measure", "Measure/CMS146"),
            set(&["mr1"]),
            "{n}"
        );
        assert_eq!(
            q(
                "MeasureReport",
                "measure",
                "http://example.org/fhir/Measure/CMS146"
            ),
            set(&["mr2"]),
            "{n}: any version"
        );
        assert_eq!(
            q(
                "MeasureReport",
                "measure",
                "http://example.org/fhir/Measure/CMS146|2.1"
            ),
            set(&["mr2"]),
            "{n}"
        );
        assert!(
            q(
                "MeasureReport",
                "measure",
                "http://example.org/fhir/Measure/CMS146|2.0"
            )
            .is_empty(),
            "{n}"
        );
        assert_eq!(
            q(
                "QuestionnaireResponse",
                "questionnaire",
                "Questionnaire/gcs"
            ),
            set(&["qr1"]),
            "{n}"
        );
        let gcs = "http://example.org/fhir/Questionnaire/gcs";
        assert_eq!(
            q("QuestionnaireResponse", "questionnaire", gcs),
            set(&["qr2", "qr3", "qr4"]),
            "{n}"
        );
        assert_eq!(
            q(
                "QuestionnaireResponse",
                "questionnaire",
                &format!("{gcs}|1.0")
            ),
            set(&["qr2"]),
            "{n}"
        );
        assert_eq!(
            q(
                "QuestionnaireResponse",
                "questionnaire:below",
                &format!("{gcs}|1.0")
            ),
            set(&["qr2", "qr3"]),
            "{n}: 1.0 and the versions below it"
        );
        assert_eq!(
            q(
                "QuestionnaireResponse",
                "questionnaire:below",
                "http://example.org/fhir/"
            ),
            set(&["qr2", "qr3", "qr4"]),
            "{n}: URLs below"
        );
        assert_eq!(
            q("Procedure", "instantiates-canonical", "PlanDefinition/KDN5"),
            set(&["pr1"]),
            "{n}"
        );
        assert!(
            q("Procedure", "instantiates-canonical", "PlanDefinition/KDN").is_empty(),
            "{n}"
        );
        // `:below` on a literal reference parameter is a clear 400.
        let (status, body) = request(
            svc,
            Method::Get,
            "Procedure",
            &[("subject:below", "Patient/p1")],
            None,
        );
        assert_eq!(status, 200, "{n}: lenient handling reports it: {body}");
        assert!(body.to_string().contains("subject:below"), "{n}: {body}");
    }
}

/// An Observation in group `code` at `at`.
fn obs(id: &str, code: &str, at: Value) -> Value {
    let mut o = json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": "urn:test", "code": code}]}});
    match at {
        Value::String(_) => o["effectiveDateTime"] = at,
        p => o["effectivePeriod"] = p,
    }
    o
}

#[test]
fn zone_less_dates_are_local_days_across_the_clock_changes() {
    for b in backends("local_days") {
        let svc = &b.svc;
        // Summer (BST, UTC+1); searched for 1 July: [30 Jun 23:00Z, 1 Jul 23:00Z).
        put(svc, obs("j1", "jul", json!("2024-06-30T23:30:00Z"))); // 00:30 BST 1 July
        put(svc, obs("j2", "jul", json!("2024-06-30T22:30:00Z"))); // 23:30 BST 30 June
        put(svc, obs("j3", "jul", json!("2024-07-01T23:59:59+01:00"))); // 23:59:59 BST 1 July
        put(svc, obs("j4", "jul", json!("2024-07-01T23:00:00Z"))); // 00:00 BST 2 July
        put(
            svc,
            obs(
                "j5",
                "jul",
                json!({"start": "2024-07-01", "end": "2024-07-01"}),
            ),
        ); // a local day
        // Autumn: 27 October has 25 hours, [26 Oct 23:00Z, 28 Oct 00:00Z).
        put(svc, obs("o1", "oct", json!("2024-10-26T23:30:00Z"))); // 00:30 BST 27 Oct
        put(svc, obs("o2", "oct", json!("2024-10-27T23:30:00Z"))); // 23:30 GMT 27 Oct
        put(svc, obs("o3", "oct", json!("2024-10-28T00:00:00Z"))); // 00:00 GMT 28 Oct
        put(svc, obs("o4", "oct", json!("2024-10-26T22:59:00Z"))); // 23:59 BST 26 Oct
        // Spring: 31 March has 23 hours, [31 Mar 00:00Z, 31 Mar 23:00Z).
        put(svc, obs("m1", "mar", json!("2024-03-31T23:30:00Z"))); // 00:30 BST 1 April
        put(svc, obs("m2", "mar", json!("2024-03-30T23:30:00Z"))); // 23:30 GMT 30 March
        put(svc, obs("m3", "mar", json!("2024-03-31T00:30:00Z"))); // 00:30 GMT 31 March
        put(svc, obs("m4", "mar", json!("2024-03-31T22:30:00Z"))); // 23:30 BST 31 March
        // The repeated hour: 01:30 on 27 October was 00:30Z, then 01:30Z.
        put(svc, obs("f1", "fold", json!("2024-10-27T00:30:00Z")));
        put(svc, obs("f2", "fold", json!("2024-10-27T01:30:00Z")));
        put(svc, obs("f3", "fold", json!("2024-10-27T02:30:00Z")));
        let n = b.name;
        let check = |code: &str, day: &str, cases: &[(&str, &[&str])]| {
            for (prefix, want) in cases {
                let v = format!("{prefix}{day}");
                assert_eq!(
                    found(
                        svc,
                        "Observation",
                        &[("code", &format!("urn:test|{code}")), ("date", &v)]
                    ),
                    set(want),
                    "{n}: Observation?code={code}&date={v}"
                );
            }
        };
        check(
            "jul",
            "2024-07-01",
            &[
                ("", &["j1", "j3", "j5"]),
                ("eq", &["j1", "j3", "j5"]),
                ("ne", &["j2", "j4"]),
                ("lt", &["j2"]),
                ("gt", &["j4"]),
                ("le", &["j1", "j2", "j3", "j5"]),
                ("ge", &["j1", "j3", "j4", "j5"]),
                ("sa", &["j4"]),
                ("eb", &["j2"]),
                ("ap", &["j1", "j2", "j3", "j4", "j5"]),
            ],
        );
        check(
            "jul",
            "2024-07",
            &[("", &["j1", "j3", "j4", "j5"]), ("lt", &["j2"])],
        );
        check(
            "oct",
            "2024-10-27",
            &[
                ("eq", &["o1", "o2"]),
                ("ne", &["o3", "o4"]),
                ("lt", &["o4"]),
                ("gt", &["o3"]),
                ("le", &["o1", "o2", "o4"]),
                ("ge", &["o1", "o2", "o3"]),
                ("sa", &["o3"]),
                ("eb", &["o4"]),
                ("ap", &["o1", "o2", "o3", "o4"]),
            ],
        );
        check(
            "mar",
            "2024-03-31",
            &[
                ("eq", &["m3", "m4"]),
                ("ne", &["m1", "m2"]),
                ("lt", &["m2"]),
                ("gt", &["m1"]),
                ("le", &["m2", "m3", "m4"]),
                ("ge", &["m1", "m3", "m4"]),
                ("sa", &["m1"]),
                ("eb", &["m2"]),
                ("ap", &["m1", "m2", "m3", "m4"]),
            ],
        );
        // A zone-less time is a local clock reading; in the repeated hour it
        // means both instants.
        check("jul", "2024-07-01T00:30", &[("", &["j1"])]);
        check(
            "fold",
            "2024-10-27T01:30",
            &[("", &["f1", "f2"]), ("gt", &["f3"])],
        );
        // An offset in the search value is an instant, as before.
        check(
            "jul",
            "2024-07-01T00:00:00Z",
            &[("lt", &["j1", "j2", "j5"]), ("ge", &["j3", "j4", "j5"])],
        );
        check("jul", "2024-06-30T23:30:00Z", &[("eq", &["j1"])]);
        // Stored dates without an offset and searches for them agree in
        // every season.
        put(
            svc,
            json!({"resourceType": "Patient", "id": "summer", "birthDate": "1990-07-01"}),
        );
        put(
            svc,
            json!({"resourceType": "Patient", "id": "winter", "birthDate": "1990-01-01"}),
        );
        put(
            svc,
            json!({"resourceType": "Patient", "id": "bst70", "birthDate": "1970-06-15"}),
        );
        for (v, want) in [
            ("1990-07-01", &["summer"][..]),
            ("1990-01-01", &["winter"]),
            ("1970-06-15", &["bst70"]),
            ("1990-07", &["summer"]),
            ("1990", &["summer", "winter"]),
            ("gt1990-06-30", &["summer"]),
            ("lt1990-07-02", &["bst70", "summer", "winter"]),
        ] {
            assert_eq!(
                found(svc, "Patient", &[("birthdate", v)]),
                set(want),
                "{n}: birthdate={v}"
            );
        }
    }
}
