//! The cumulative results view and the unmatched-results worklist over real
//! HTTP, on the demo server: results sent with `DiagnosticReport/$submit`;
//! on SQLite, and PostgreSQL when `WARDLINE_TEST_PG_URL` is set;
//! the requesting consultant opens the patient's results (table and an SVG
//! trend chart with a point per value) and may not see the worklist; the
//! laboratory scientist sees the unmatched report with what the sender said,
//! is refused matching it to another patient's order, matches it to the
//! right one, and the consultant finds it in their inbox.

use crate::common;
use crate::ui::{browser, sign_in};

use common::{Env, Server};
use serde_json::{Value, json};

const LOINC: &str = "http://loinc.org";

fn practitioner_of(s: &Server, user: &str) -> String {
    let found = s.search_all(&common::escape_uri(&format!(
        "Practitioner?identifier=https://fhir.wardline.invalid/Id/username|{user}"
    )));
    found[0]["id"].as_str().unwrap().to_owned()
}

fn obs(code: &str, name: &str, at: &str, v: f64, unit: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
        "effectiveDateTime": at,
        "valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        "referenceRange": [{"low": {"value": 59}, "high": {"value": 104}}]})
}

fn submit(s: &Server, report: Value, observations: Vec<Value>) -> Value {
    let mut entries = vec![json!({"resource": report})];
    entries.extend(observations.into_iter().map(|o| json!({"resource": o})));
    let r = s.post(
        "DiagnosticReport/$submit",
        &json!({"resourceType": "Bundle", "type": "collection", "entry": entries}),
    );
    assert_eq!(r.status, 200, "$submit: {}", r.brief());
    r.body
}

fn param<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {p}"))
}

#[test]
fn cumulative_view_and_unmatched_worklist_over_http() {
    run(Env::sqlite());
    if let Some(env) = Env::postgres() {
        run(env);
    }
}

fn run(env: Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let dr = practitioner_of(&s, "dr.watford");

    // Two patients, each with an open laboratory request by the consultant.
    for (id, family, nhs) in [
        ("cum-p1", "Cumulus", "9434765919"),
        ("cum-p2", "Stratus", "9434765870"),
    ] {
        let r = s.put(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id, "active": true,
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
                "name": [{"use": "official", "family": family, "given": ["Ann"]}],
                "gender": "female", "birthDate": "1950-02-03"}),
        );
        assert!(r.is_success(), "{}", r.brief());
        let sr = format!("sr-{id}");
        let r = s.put(
            &format!("ServiceRequest/{sr}"),
            &json!({"resourceType": "ServiceRequest", "id": sr, "status": "active", "intent": "order",
                "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "108252007"}]}],
                "code": {"text": "Urea and electrolytes"},
                "identifier": [{"system": "https://fhir.wardline.invalid/Id/placer-order", "value": format!("R-{id}")}],
                "subject": {"reference": format!("Patient/{id}")},
                "requester": {"reference": format!("Practitioner/{dr}")},
                "authoredOn": "2026-01-01T09:00:00Z"}),
        );
        assert!(r.is_success(), "{}", r.brief());
    }
    // Three creatinine results for p1 (one high), matched on arrival.
    for (i, (at, v)) in [
        ("2026-01-10T09:00:00Z", 80.0),
        ("2026-02-10T09:00:00Z", 95.0),
        ("2026-03-10T09:00:00Z", 160.0),
    ]
    .into_iter()
    .enumerate()
    {
        let p = submit(
            &s,
            json!({"resourceType": "DiagnosticReport", "status": "final",
                "identifier": [{"system": "https://fhir.wardline.invalid/Id/filler-order", "value": format!("LE2E{i}")}],
                "code": {"text": "Urea and electrolytes"}, "effectiveDateTime": at, "issued": at,
                "subject": {"reference": "Patient/cum-p1"},
                "basedOn": [{"reference": "ServiceRequest/sr-cum-p1"}]}),
            vec![obs("2160-0", "Creatinine", at, v, "umol/L")],
        );
        assert_eq!(param(&p, "matched")["valueBoolean"], true);
    }
    // One result nobody could match: what the sender said is contained.
    let p = submit(
        &s,
        json!({"resourceType": "DiagnosticReport", "status": "final",
            "identifier": [{"system": "https://fhir.wardline.invalid/Id/filler-order", "value": "LE2EU"}],
            "code": {"text": "Urea and electrolytes"}, "issued": "2026-03-11T09:00:00Z",
            "contained": [{"resourceType": "Patient", "id": "reported-patient",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
                "name": [{"family": "CUMULUS", "given": ["ANN"]}], "birthDate": "1950-02-03"}],
            "extension": [
                {"url": "https://fhir.wardline.invalid/StructureDefinition/reported-patient", "valueReference": {"reference": "#reported-patient"}},
                {"url": "https://fhir.wardline.invalid/StructureDefinition/unmatched-reason", "valueString": "no placer order number"}]}),
        vec![obs(
            "2160-0",
            "Creatinine",
            "2026-03-11T08:00:00Z",
            170.0,
            "umol/L",
        )],
    );
    assert_eq!(param(&p, "matched")["valueBoolean"], false);
    let report = param(&p, "report")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("DiagnosticReport/")
        .to_owned();

    // --- the consultant ---------------------------------------------------------
    let doc = browser();
    sign_in(&env, &root, &doc, "dr.watford");
    let chart = doc
        .get(format!("{root}/ui/patients/cum-p1"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        chart.contains("href=\"/ui/patients/cum-p1/results\""),
        "the chart links to Results"
    );
    let r = doc
        .get(format!("{root}/ui/patients/cum-p1/results"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().unwrap();
    assert!(html.contains("data-testid=\"cumulative-table\""), "{html}");
    assert_eq!(
        html.matches("data-testid=\"trend-chart\"").count(),
        1,
        "one analyte, one chart"
    );
    assert_eq!(
        html.matches("data-testid=\"trend-point\"").count(),
        3,
        "a point per result"
    );
    assert_eq!(
        html.matches("data-flag=\"H\"").count(),
        2,
        "the high value, in the table and on the chart"
    );
    assert!(
        !html.contains(">170<"),
        "the unmatched value is in nobody's record"
    );
    // One analyte, with a bad period named.
    let q = common::escape_uri("code=http://loinc.org|2160-0&period=all");
    let one = doc
        .get(format!("{root}/ui/patients/cum-p1/results?{q}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(one.contains("data-testid=\"series-table\""));
    let bad = doc
        .get(format!("{root}/ui/patients/cum-p1/results?period=forever"))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().unwrap().contains("forever"));
    // The worklist is the laboratory's.
    let r = doc
        .get(format!("{root}/ui/results/unmatched"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s.get_with(&format!("DiagnosticReport/{report}"), &[]);
    assert_eq!(r.status, 200, "the system client reads it");

    // --- the laboratory --------------------------------------------------------------
    let lab = browser();
    sign_in(&env, &root, &lab, "bms.lab");
    let list = lab
        .get(format!("{root}/ui/results/unmatched"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        list.contains(&format!("data-report=\"{report}\"")),
        "{list}"
    );
    assert!(list.contains("CUMULUS, ANN") && list.contains("no placer order number"));
    let page = lab
        .get(format!("{root}/ui/results/unmatched/{report}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("data-patient=\"cum-p1\""),
        "the NHS number finds the candidate: {page}"
    );
    let csrf = crate::ui::csrf(&root, &lab);
    // Another patient's order: refused, in words, nothing filed.
    let r = lab
        .post(format!("{root}/ui/results/unmatched/{report}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("patient", "cum-p1"),
            ("order", "sr-cum-p2"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("another patient"));
    let r = lab
        .post(format!("{root}/ui/results/unmatched/{report}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("patient", "cum-p1"),
            ("order", "sr-cum-p1"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap());
    let list = lab
        .get(format!("{root}/ui/results/unmatched"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !list.contains(&format!("data-report=\"{report}\"")),
        "off the worklist"
    );

    // The consultant is told, and the value joins the record.
    let inbox = doc
        .get(format!("{root}/ui/results"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        inbox.contains(&format!("data-report=\"{report}\"")),
        "{inbox}"
    );
    let html = doc
        .get(format!("{root}/ui/patients/cum-p1/results"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(html.matches("data-testid=\"trend-point\"").count(), 4);
    let rep = s.get(&format!("DiagnosticReport/{report}")).body;
    assert_eq!(rep["subject"]["reference"], "Patient/cum-p1");
    assert_eq!(rep["basedOn"][0]["reference"], "ServiceRequest/sr-cum-p1");
}
