//! Results over real HTTP: `POST /fhir/DiagnosticReport/$submit` (the
//! status rules' refusals as 409s), then the requester's inbox and the
//! acknowledgement through the UI (refused before the result is opened),
//! and `wardline results escalate --now` moving the clock past the limit.

use crate::common;
use crate::ui::{browser, csrf, sign_in};

use common::Env;
use serde_json::{Value, json};

fn practitioner_of(env: &Env, user: &str) -> String {
    let list = env.cli(&["user", "list"]);
    list.lines()
        .find(|l| l.starts_with(&format!("{user} ")) || l.starts_with(&format!("{user}  ")))
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("Practitioner/"))
        })
        .unwrap_or_else(|| panic!("{user} not in {list}"))
        .to_owned()
}

fn bundle(sr: &str, patient: &str, accession: &str, status: &str, k: f64, flag: &str) -> Value {
    json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:6a1f0c1e-0000-4000-8000-000000000001", "resource": {
            "resourceType": "DiagnosticReport", "status": status,
            "identifier": [{"system": "https://fhir.wardline.invalid/Id/filler-order", "value": accession}],
            "basedOn": [{"reference": sr}],
            "subject": {"reference": patient},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "26958001", "display": "Urea and electrolytes"}], "text": "U&E"},
            "effectiveDateTime": "2026-03-02T08:30:00Z",
            "result": [{"reference": "urn:uuid:6a1f0c1e-0000-4000-8000-000000000002"}]}},
        {"fullUrl": "urn:uuid:6a1f0c1e-0000-4000-8000-000000000002", "resource": {
            "resourceType": "Observation", "status": status,
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]},
            "valueQuantity": {"value": k, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
            "referenceRange": [{"low": {"value": 3.5, "unit": "mmol/L"}, "high": {"value": 5.3, "unit": "mmol/L"}}],
            "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": flag}]}]}}]})
}

fn param<'a>(p: &'a Value, name: &str) -> Vec<&'a Value> {
    p["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == name)
        .collect()
}

#[test]
fn submit_then_inbox_acknowledge_and_escalate_over_http() {
    let env = Env::sqlite();
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let doctor = practitioner_of(&env, "dr.watford");

    let p = s.post(
        "/fhir/Patient",
        &json!({"resourceType": "Patient", "active": true,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990001251"}],
            "name": [{"use": "official", "family": "Resultson", "given": ["Rita"]}],
            "gender": "female", "birthDate": "1950-01-01"}),
    );
    assert_eq!(p.status, 201, "{}", p.brief());
    let patient = format!("Patient/{}", p.body["id"].as_str().unwrap());
    let sr = s.post(
        "/fhir/ServiceRequest",
        &json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "code": {"text": "U&E"}, "subject": {"reference": patient},
            "requester": {"reference": doctor}, "authoredOn": "2026-03-02T08:00:00Z"}),
    );
    assert_eq!(sr.status, 201, "{}", sr.brief());
    let sr = format!("ServiceRequest/{}", sr.body["id"].as_str().unwrap());

    // A normal result first, then a critical one.
    let normal = s.post(
        "/fhir/DiagnosticReport/$submit",
        &bundle(&sr, &patient, "LE1", "final", 4.1, "N"),
    );
    assert_eq!(normal.status, 200, "{}", normal.brief());
    let r = s.post(
        "/fhir/DiagnosticReport/$submit",
        &bundle(&sr, &patient, "LE2", "final", 6.9, "HH"),
    );
    assert_eq!(r.status, 200, "{}", r.brief());
    assert_eq!(param(&r.body, "matched")[0]["valueBoolean"], true);
    let notified = param(&r.body, "notified");
    assert_eq!(notified.len(), 1, "{}", r.body);
    let task = notified[0]["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .strip_prefix("Task/")
        .unwrap()
        .to_owned();
    let t = s.get(&format!("/fhir/Task/{task}"));
    assert_eq!(t.body["owner"]["reference"], doctor.as_str());
    assert_eq!(t.body["priority"], "stat");

    // The status rules over REST: final again with another value, and back
    // to preliminary, are 409s; the same again is no change.
    let again = s.post(
        "/fhir/DiagnosticReport/$submit",
        &bundle(&sr, &patient, "LE2", "final", 6.9, "HH"),
    );
    assert_eq!(again.status, 200);
    assert!(param(&again.body, "notified").is_empty(), "{}", again.body);
    let changed = s.post(
        "/fhir/DiagnosticReport/$submit",
        &bundle(&sr, &patient, "LE2", "final", 4.4, "N"),
    );
    assert_eq!(changed.status, 409, "{}", changed.brief());
    assert!(changed.brief().contains("correct"), "{}", changed.brief());
    let back = s.post(
        "/fhir/DiagnosticReport/$submit",
        &bundle(&sr, &patient, "LE2", "preliminary", 6.9, "HH"),
    );
    assert_eq!(back.status, 409, "{}", back.brief());
    let bad = s.post(
        "/fhir/DiagnosticReport/$submit",
        &json!({"resourceType": "Bundle", "type": "batch"}),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.brief().contains("Bundle.type"), "{}", bad.brief());

    // The doctor's inbox: the critical result first, flagged.
    let c = browser();
    sign_in(&env, &root, &c, "dr.watford");
    let html = c
        .get(format!("{root}/ui/results"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let first = html
        .find("data-testid=\"inbox-row\"")
        .unwrap_or_else(|| panic!("no inbox rows: {html}"));
    let row = &html[first..first + 400];
    assert!(row.contains(&format!("data-task=\"{task}\"")), "{row}");
    assert!(row.contains("data-flag=\"critical\""), "{row}");
    assert!(html.contains("RESULTSON, Rita"), "{html}");

    // The laboratory completes the request when it releases the result: the
    // result to review keeps the requester's relationship with the patient.
    let mut done_sr = s.get(&format!("/fhir/{sr}")).body;
    done_sr["status"] = json!("completed");
    let put = s.put(&format!("/fhir/{sr}"), &done_sr);
    assert_eq!(put.status, 200, "{}", put.brief());

    // Acknowledging before opening is refused.
    let token = csrf(&root, &c);
    let early = c
        .post(format!("{root}/ui/results/{task}/acknowledge"))
        .form(&[("csrf", token.as_str()), ("outcome", "filed")])
        .send()
        .unwrap();
    assert_eq!(early.status(), 409);
    assert!(early.text().unwrap().contains("without reading"));
    assert_eq!(
        s.get(&format!("/fhir/Task/{task}")).body["status"],
        "requested"
    );

    // Open it: ranges and flags in words; it is now read.
    let page = c
        .get(format!("{root}/ui/results/{task}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("critically high"), "{page}");
    assert!(page.contains("3.5–5.3 mmol/L"), "{page}");
    assert_eq!(
        s.get(&format!("/fhir/Task/{task}")).body["status"],
        "in-progress"
    );
    // An outcome is needed; then it is acknowledged.
    let none = c
        .post(format!("{root}/ui/results/{task}/acknowledge"))
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(none.status(), 422);
    assert!(none.text().unwrap().contains("Choose an outcome"));
    let ok = c
        .post(format!("{root}/ui/results/{task}/acknowledge"))
        .form(&[
            ("csrf", token.as_str()),
            ("outcome", "contact-patient"),
            ("note", "Ring about repeat bloods"),
        ])
        .send()
        .unwrap();
    assert_eq!(ok.status(), 303);
    let done = s.get(&format!("/fhir/Task/{task}"));
    assert_eq!(done.body["status"], "completed");
    assert_eq!(
        done.body["output"][1]["valueReference"]["reference"],
        doctor.as_str()
    );
    // Audited as the doctor.
    let ig = env.privacy_officer();
    let audit: Value = ig
        .get(format!(
            "{root}/fhir/AuditEvent?patient={patient}&_count=200"
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        audit.to_string().contains("results-acknowledge"),
        "the acknowledgement is in the audit trail: {audit}"
    );

    // A second critical result nobody acknowledges: not escalated before the
    // limit, escalated once after it.
    let r2 = s.post(
        "/fhir/DiagnosticReport/$submit",
        &bundle(&sr, &patient, "LE3", "final", 2.0, "LL"),
    );
    assert_eq!(r2.status, 200, "{}", r2.brief());
    let authored = {
        let t2 = param(&r2.body, "notified")[0]["valueReference"]["reference"]
            .as_str()
            .unwrap()
            .to_owned();
        s.get(&format!("/fhir/{t2}")).body["authoredOn"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let at = |minutes: i64| {
        let t =
            time::OffsetDateTime::parse(&authored, &time::format_description::well_known::Rfc3339)
                .unwrap()
                + time::Duration::minutes(minutes);
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let out = env.cli(&["results", "escalate", "--now", &at(30)]);
    assert!(out.contains("nothing to escalate"), "{out}");
    let out = env.cli(&["results", "escalate", "--now", &at(61)]);
    assert_eq!(out.matches("escalated: Task/").count(), 1, "{out}");
    let out = env.cli(&["results", "escalate", "--now", &at(200)]);
    assert!(out.contains("nothing to escalate"), "once: {out}");
    let team = c
        .get(format!("{root}/ui/results?queue=team"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(team.contains("data-state=\"escalated\""), "{team}");
}
