//! The cumulative results view and the unmatched-results worklist over a
//! real store: SQLite always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is
//! set (each test in a fresh schema).

mod support;

use serde_json::{Value, json};
use support::Backend;
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_core::{FhirService, Trusted};
use wardline_workflow::results::ResultsError;
use wardline_workflow::results::cumulative::{self, ValueFlag};
use wardline_workflow::results::unmatched::{self, REPORTED_PATIENT_EXT, TAG_CODE, TAG_SYSTEM};

// ------------------------------------------------------------------ setup

fn backends(test: &str) -> Vec<Backend> {
    support::backends(&format!("cum_{test}"), support::plain, seed)
}

/// The laboratory scientist who matches (a person on record).
fn lab() -> Trusted {
    Trusted::new(wardline_core::Agent {
        name: "bms.lab".into(),
        who: Some("Practitioner/bms".into()),
        ..wardline_core::Agent::default()
    })
}

fn op() -> Trusted {
    Trusted::operator("cumulative-test")
}

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
const LOINC: &str = "http://loinc.org";

fn patient(id: &str, family: &str, nhs: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "active": true,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"use": "official", "family": family, "given": ["Ann"]}], "gender": "female",
        "birthDate": "1950-02-03"})
}

fn order(id: &str, patient: &str, placer: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
        "code": {"text": "Urea and electrolytes"},
        "identifier": [{"system": "https://fhir.wardline.invalid/Id/placer-order", "value": placer}],
        "subject": {"reference": format!("Patient/{patient}")},
        "requester": {"reference": "Practitioner/drw"},
        "authoredOn": "2026-05-31T09:00:00Z"})
}

fn obs(id: &str, patient: Option<&str>, code: &str, name: &str, at: &str, v: f64) -> Value {
    let mut o = json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
        "effectiveDateTime": at,
        "valueQuantity": {"value": v, "unit": "umol/L", "system": "http://unitsofmeasure.org", "code": "umol/L"},
        "referenceRange": [{"low": {"value": 59}, "high": {"value": 104}}]});
    if let Some(p) = patient {
        o["subject"] = json!({"reference": format!("Patient/{p}")});
    }
    o
}

fn seed(svc: &FhirService) {
    let rs = vec![
        patient("p1", "Able", "9434765919"),
        patient("p2", "Baker", "9434765870"),
        json!({"resourceType": "Practitioner", "id": "drw", "name": [{"family": "Watford", "prefix": ["Dr"]}]}),
        json!({"resourceType": "Practitioner", "id": "bms", "name": [{"family": "Scientist"}]}),
        order("sr1", "p1", "R0000001-1"),
        order("sr2", "p2", "R0000002-1"),
    ];
    save_all(svc, rs);
}

fn save_all(svc: &FhirService, rs: Vec<Value>) {
    svc.transact(&op(), |tx| {
        for r in rs {
            tx.save(r)?;
        }
        Ok(())
    })
    .unwrap();
}

fn read(svc: &FhirService, t: &str, id: &str) -> Value {
    svc.read_as(&op(), t, id).unwrap().unwrap()
}

/// An unmatched U&E report as a sender files it (the module's shape).
fn unmatched_report(id: &str, nhs: &str, placer: Option<&str>) -> Vec<Value> {
    let mut ext = vec![
        json!({"url": REPORTED_PATIENT_EXT, "valueReference": {"reference": "#reported-patient"}}),
        json!({"url": unmatched::UNMATCHED_REASON_EXT, "valueString": format!("no patient with NHS number {nhs}")}),
    ];
    if let Some(p) = placer {
        ext.push(json!({"url": unmatched::REPORTED_ORDER_EXT, "valueIdentifier": {"system": "https://fhir.wardline.invalid/Id/placer-order", "value": p}}));
    }
    vec![
        obs(
            &format!("{id}-o1"),
            None,
            "2160-0",
            "Creatinine",
            "2026-05-31T10:00:00Z",
            300.0,
        ),
        json!({"resourceType": "DiagnosticReport", "id": id, "status": "final",
            "meta": {"tag": [{"system": TAG_SYSTEM, "code": TAG_CODE}]},
            "contained": [{"resourceType": "Patient", "id": "reported-patient",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
                "name": [{"family": "ABLE", "given": ["ANN"]}], "birthDate": "1950-02-03"}],
            "extension": ext,
            "code": {"text": "Urea and electrolytes"},
            "issued": "2026-05-31T11:00:00Z",
            "result": [{"reference": format!("Observation/{id}-o1")}]}),
    ]
}

// ------------------------------------------------------------------ cumulative

#[test]
fn the_table_shows_the_latest_version_of_each_value_and_only_results() {
    for b in backends("latest") {
        let svc = &b.svc;
        save_all(
            svc,
            vec![
                obs(
                    "c1",
                    Some("p1"),
                    "2160-0",
                    "Creatinine",
                    "2026-01-10T09:00:00Z",
                    90.0,
                ),
                obs(
                    "c2",
                    Some("p1"),
                    "2160-0",
                    "Creatinine",
                    "2026-03-10T09:00:00Z",
                    150.0,
                ),
                obs(
                    "k1",
                    Some("p1"),
                    "2823-3",
                    "Potassium",
                    "2026-03-10T09:00:00Z",
                    4.2,
                ),
                // Another patient's value, a vital sign, a value in error.
                obs(
                    "x1",
                    Some("p2"),
                    "2160-0",
                    "Creatinine",
                    "2026-03-10T09:00:00Z",
                    999.0,
                ),
                {
                    let mut v = obs(
                        "v1",
                        Some("p1"),
                        "8867-4",
                        "Heart rate",
                        "2026-03-10T09:00:00Z",
                        80.0,
                    );
                    v["category"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]);
                    v
                },
                {
                    let mut e = obs(
                        "e1",
                        Some("p1"),
                        "2160-0",
                        "Creatinine",
                        "2026-02-10T09:00:00Z",
                        5000.0,
                    );
                    e["status"] = json!("entered-in-error");
                    e
                },
            ],
        );
        let c = cumulative::cumulative(svc, &op(), "p1", None, None).unwrap();
        let names: Vec<&str> = c.series.iter().map(|s| s.display.as_str()).collect();
        assert_eq!(names, ["Creatinine", "Potassium"], "{}", b.name);
        let creat = &c.series[0];
        let values: Vec<f64> = creat.points.iter().filter_map(|p| p.value).collect();
        assert_eq!(
            values,
            [90.0, 150.0],
            "{}: oldest first, nothing in error, nobody else's",
            b.name
        );
        assert_eq!(
            c.columns,
            ["2026-03-10T09:00:00Z", "2026-01-10T09:00:00Z"],
            "{}",
            b.name
        );
        assert_eq!(
            creat.at("2026-03-10T09:00:00Z").unwrap().flag,
            ValueFlag::High
        );

        // A correction: a new version of c2 with another value.
        let mut corrected = read(svc, "Observation", "c2");
        corrected["status"] = json!("corrected");
        corrected["valueQuantity"]["value"] = json!(95.0);
        save_all(svc, vec![corrected]);
        let c = cumulative::cumulative(svc, &op(), "p1", None, None).unwrap();
        let creat = &c.series[0];
        let values: Vec<f64> = creat.points.iter().filter_map(|p| p.value).collect();
        assert_eq!(
            values,
            [90.0, 95.0],
            "{}: the corrected value replaces the earlier one",
            b.name
        );
        let p = creat.at("2026-03-10T09:00:00Z").unwrap();
        assert_eq!(
            (p.status.as_str(), p.flag),
            ("corrected", ValueFlag::Normal),
            "{}",
            b.name
        );

        // One analyte, since a date.
        let only = cumulative::cumulative(
            svc,
            &op(),
            "p1",
            Some("http://loinc.org|2160-0"),
            Some(datetime!(2026-02-01 0:00 UTC)),
        )
        .unwrap();
        assert_eq!(only.series.len(), 1, "{}", b.name);
        assert_eq!(
            only.series[0].points.len(),
            1,
            "{}: only since February",
            b.name
        );
        let svg = cumulative::trend_svg(&c.series[0]);
        assert_eq!(
            svg.matches("data-testid=\"trend-point\"").count(),
            2,
            "{}",
            b.name
        );

        // Bad input names the field; an unknown patient is 404.
        assert!(matches!(
            cumulative::cumulative(svc, &op(), "p1", Some("2160-0"), None),
            Err(ResultsError::Invalid(m)) if m.contains("system|code")
        ));
        assert!(matches!(
            cumulative::cumulative(svc, &op(), "nobody", None, None),
            Err(ResultsError::NotFound(_))
        ));
    }
}

#[test]
fn the_overview_is_bounded_and_says_when_more_exist() {
    for b in backends("bounded") {
        let svc = &b.svc;
        let n = cumulative::OVERVIEW_LIMIT + 20;
        let rs: Vec<Value> = (0..n)
            .map(|i| {
                let at = wardline_fhir::datetime::format_instant(
                    1_700_000_000_000 + i as i64 * 3_600_000,
                );
                obs(
                    &format!("b{i}"),
                    Some("p1"),
                    "2160-0",
                    "Creatinine",
                    &at,
                    80.0 + (i % 7) as f64,
                )
            })
            .collect();
        save_all(svc, rs);
        let c = cumulative::cumulative(svc, &op(), "p1", None, None).unwrap();
        assert_eq!(c.read, cumulative::OVERVIEW_LIMIT, "{}", b.name);
        assert!(c.more, "{}", b.name);
        // The newest were read.
        let newest =
            wardline_fhir::datetime::format_instant(1_700_000_000_000 + (n as i64 - 1) * 3_600_000);
        assert_eq!(c.columns[0], newest, "{}", b.name);
        let one = cumulative::cumulative(svc, &op(), "p1", Some("http://loinc.org|2160-0"), None)
            .unwrap();
        assert_eq!(
            one.read, n,
            "{}: one analyte reads up to its own limit",
            b.name
        );
        assert!(!one.more, "{}", b.name);
    }
}

// ------------------------------------------------------------------ unmatched

#[test]
fn matching_files_the_report_and_notifies_the_requester() {
    for b in backends("match") {
        let svc = &b.svc;
        save_all(
            svc,
            unmatched_report("u1", "9434765919", Some("R0000001-1")),
        );
        save_all(svc, unmatched_report("u2", "1111111111", None));

        let page = unmatched::unmatched(svc, &lab(), 0).unwrap();
        let ids: Vec<&str> = page.items.iter().map(|i| i.report.as_str()).collect();
        assert_eq!(ids.len(), 2, "{}", b.name);
        let u1 = page.items.iter().find(|i| i.report == "u1").unwrap();
        assert_eq!(u1.reported.as_ref().unwrap().display_name, "ABLE, ANN");
        assert_eq!(
            u1.orders,
            [(
                "https://fhir.wardline.invalid/Id/placer-order".to_owned(),
                "R0000001-1".to_owned()
            )]
        );
        assert!(u1.reason.as_deref().unwrap().contains("9434765919"));

        // Candidates: p1 by NHS number and by the quoted order.
        let view = unmatched::candidates(svc, &lab(), "u1", None).unwrap();
        assert_eq!(view.candidates.len(), 1, "{}", b.name);
        let c = &view.candidates[0];
        assert_eq!(c.patient.id, "p1");
        assert_eq!(c.why.len(), 2, "{}: {:?}", b.name, c.why);
        assert!(c.orders[0].quoted && c.orders[0].id == "sr1");
        // Looking a patient up adds them.
        let view = unmatched::candidates(svc, &lab(), "u2", Some("943 476 5870")).unwrap();
        assert_eq!(
            view.candidates
                .iter()
                .map(|c| c.patient.id.as_str())
                .collect::<Vec<_>>(),
            ["p2"]
        );

        let r = unmatched::match_report(svc, &lab(), "u1", "p1", Some("sr1"), NOW).unwrap();
        assert!(r.matched);
        let rep = read(svc, "DiagnosticReport", "u1");
        assert_eq!(rep["subject"]["reference"], "Patient/p1", "{}", b.name);
        assert_eq!(rep["basedOn"][0]["reference"], "ServiceRequest/sr1");
        assert!(
            !unmatched::is_unmatched(&rep),
            "{}: the tag is gone",
            b.name
        );
        assert!(
            rep["extension"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["url"] == REPORTED_PATIENT_EXT),
            "what was sent is kept"
        );
        let m = rep["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == unmatched::MATCHED_EXT)
            .unwrap();
        assert_eq!(
            m["extension"][0]["valueReference"]["reference"],
            "Practitioner/bms"
        );
        let o = read(svc, "Observation", "u1-o1");
        assert_eq!(
            o["subject"]["reference"], "Patient/p1",
            "{}: the values are filed too",
            b.name
        );
        // The requester is told: an inbox Task for the report, owned by them.
        assert!(!r.notified.is_empty(), "{}: nobody was notified", b.name);
        let task = read(svc, "Task", &r.notified[0]);
        assert_eq!(task["focus"]["reference"], "DiagnosticReport/u1");
        assert_eq!(task["owner"]["reference"], "Practitioner/drw", "{}", b.name);
        // The value is in the patient's cumulative view now.
        let c = cumulative::cumulative(svc, &op(), "p1", None, None).unwrap();
        assert_eq!(c.series[0].points[0].value, Some(300.0));
        // Off the worklist, and never matched twice.
        let page = unmatched::unmatched(svc, &lab(), 0).unwrap();
        assert_eq!(
            page.items
                .iter()
                .map(|i| i.report.as_str())
                .collect::<Vec<_>>(),
            ["u2"]
        );
        assert!(
            matches!(
                unmatched::match_report(svc, &lab(), "u1", "p2", Some("sr2"), NOW),
                Err(ResultsError::Conflict(m)) if m.contains("filed to patient p1")
            ),
            "{}",
            b.name
        );
    }
}

#[test]
fn a_report_is_never_matched_to_another_patients_order() {
    for b in backends("other") {
        let svc = &b.svc;
        save_all(
            svc,
            unmatched_report("u1", "9434765919", Some("R0000002-1")),
        );
        let e = unmatched::match_report(svc, &lab(), "u1", "p1", Some("sr2"), NOW).unwrap_err();
        assert!(
            matches!(&e, ResultsError::Conflict(m) if m.contains("another patient") && m.contains("R0000002-1")),
            "{}: {e:?}",
            b.name
        );
        // Nothing changed.
        let rep = read(svc, "DiagnosticReport", "u1");
        assert!(unmatched::is_unmatched(&rep), "{}", b.name);
        assert!(rep.get("subject").is_none());
        assert!(read(svc, "Observation", "u1-o1").get("subject").is_none());
        // Unknown ids and a missing patient are named.
        assert!(matches!(
            unmatched::match_report(svc, &lab(), "u1", "", Some("sr1"), NOW),
            Err(ResultsError::Invalid(m)) if m.contains("patient")
        ));
        assert!(matches!(
            unmatched::match_report(svc, &lab(), "u1", "p1", Some("nope"), NOW),
            Err(ResultsError::NotFound(m)) if m.contains("nope")
        ));
        assert!(matches!(
            unmatched::match_report(svc, &lab(), "nope", "p1", Some("sr1"), NOW),
            Err(ResultsError::NotFound(_))
        ));
        // No order: refused, saying why (nobody would be told).
        assert!(matches!(
            unmatched::match_report(svc, &lab(), "u1", "p1", None, NOW),
            Err(ResultsError::Invalid(m)) if m.contains("order")
        ));
        // An order entered in error is refused.
        let mut wrong = order("sr3", "p1", "R0000003-1");
        wrong["status"] = json!("entered-in-error");
        save_all(svc, vec![wrong]);
        assert!(
            matches!(
                unmatched::match_report(svc, &lab(), "u1", "p1", Some("sr3"), NOW),
                Err(ResultsError::Conflict(m)) if m.contains("entered in error")
            ),
            "{}",
            b.name
        );
        // A merged record is refused, naming its replacement.
        let mut merged = patient("p3", "Able", "9434765862");
        merged["active"] = json!(false);
        merged["link"] = json!([{"type": "replaced-by", "other": {"reference": "Patient/p1"}}]);
        save_all(svc, vec![merged]);
        assert!(
            matches!(
                unmatched::match_report(svc, &lab(), "u1", "p3", None, NOW),
                Err(ResultsError::Conflict(m)) if m.contains("merged into p1")
            ),
            "{}",
            b.name
        );
    }
}

#[test]
fn a_result_received_unmatched_is_matched_and_its_correction_replaces_the_value() {
    use wardline_workflow::results::{self, Incoming, Source};
    for b in backends("received") {
        let svc = &b.svc;
        // Arrives (e.g. over HL7) with a patient nobody could identify.
        let mut sent = unmatched_report("x", "9434765919", Some("R0000001-1"));
        let mut report = sent.pop().unwrap();
        let mut o = sent.pop().unwrap();
        for v in [&mut report, &mut o] {
            v.as_object_mut().unwrap().remove("id");
        }
        report.as_object_mut().unwrap().remove("meta");
        report.as_object_mut().unwrap().remove("result");
        report["identifier"] = json!([{"system": "https://fhir.wardline.invalid/Id/filler-order", "value": "L0000042"}]);
        let incoming = |report: &Value, o: &Value| Incoming {
            report: report.clone(),
            observations: vec![o.clone()],
            source: Source::Hl7 {
                sender: "LAB".into(),
            },
        };
        let r = results::receive(svc, &op(), incoming(&report, &o), NOW).unwrap();
        assert!(!r.matched && r.notified.is_empty(), "{}", b.name);
        let page = unmatched::unmatched(svc, &lab(), 0).unwrap();
        assert_eq!(page.items.len(), 1, "{}: on the worklist", b.name);
        assert_eq!(page.items[0].report, r.report);
        assert!(
            cumulative::cumulative(svc, &op(), "p1", None, None)
                .unwrap()
                .series
                .is_empty(),
            "{}: not in anyone's record before it is matched",
            b.name
        );

        let m = unmatched::match_report(svc, &lab(), &r.report, "p1", Some("sr1"), NOW).unwrap();
        assert_eq!(m.notified.len(), 1, "{}", b.name);
        let c = cumulative::cumulative(svc, &op(), "p1", None, None).unwrap();
        assert_eq!(
            c.series[0]
                .points
                .iter()
                .map(|p| p.value)
                .collect::<Vec<_>>(),
            [Some(300.0)]
        );

        // The laboratory corrects it (same filler number): the table shows
        // the corrected value only, the history keeps the first.
        let mut corrected = report.clone();
        corrected["status"] = json!("corrected");
        let mut o2 = o.clone();
        o2["valueQuantity"]["value"] = json!(130.0);
        let r2 = results::receive(svc, &op(), incoming(&corrected, &o2), NOW).unwrap();
        assert_eq!(r2.report, r.report, "{}", b.name);
        assert!(r2.matched, "{}: the correction follows the match", b.name);
        let c = cumulative::cumulative(svc, &op(), "p1", None, None).unwrap();
        let pts = &c.series[0].points;
        assert_eq!(pts.len(), 1, "{}: one value, not two: {pts:?}", b.name);
        assert_eq!(
            (pts[0].value, pts[0].status.as_str()),
            (Some(130.0), "corrected"),
            "{}",
            b.name
        );
    }
}
