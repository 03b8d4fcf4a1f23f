//! Observations and NEWS2 over real HTTP with the demo trust, on both
//! backends:
//!
//! * nurse.w1 opens the observations chart of an in-patient on watford-w1,
//!   a wrong field is refused with the error summary naming it (422);
//! * a set scoring NEWS2 7 is recorded: the chart shows the emergency alert,
//!   the score, graphs with the NEWS2 bands and the points; the escalation
//!   Task is stat, on ward watford-w1; it is on the task list, where the
//!   nurse acknowledges and completes it;
//! * the chart links to the observations page, which shows the patient
//!   banner;
//! * a remote-monitoring gateway with a backend-services token of exactly
//!   `system/Observation.c` (SMART v2 create) posts a transaction Bundle
//!   for the patient: scored on arrival, the score read back over FHIR; the
//!   same token may not read;
//! * a date-only reading (as imported data carry) is stored as sent and
//!   not scored.

use serde_json::{Value, json};

use crate::common::{self, Env};
use crate::ui::{browser, page, post_form as post, sign_in};

fn set(rr: &str) -> Vec<(&'static str, String)> {
    // RR as given; SpO₂ 93 on air (2), BP 105 (1), pulse 95 (1), alert, 37.
    vec![
        ("respiration_rate", rr.to_owned()),
        ("spo2", "93".into()),
        ("oxygen", "air".into()),
        ("systolic_bp", "105".into()),
        ("pulse", "95".into()),
        ("consciousness", "A".into()),
        ("temperature", "37".into()),
    ]
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let nurse = browser();
    sign_in(env, &root, &nurse, "nurse.w1");
    let board = page(&nurse, &format!("{root}/ui/beds/watford-w1"));
    let key = "href=\"/ui/patients/";
    let patient = board
        .match_indices(key)
        .map(|(i, _)| {
            let rest = &board[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .find(|id| id != "new" && !id.contains(['/', '?']))
        .unwrap_or_else(|| panic!("{}: no patient on the board", env.name));
    let chart = page(&nurse, &format!("{root}/ui/patients/{patient}"));
    assert!(
        chart.contains(&format!(r#"href="/ui/patients/{patient}/observations""#)),
        "{}: the chart links to the observations",
        env.name
    );
    let url = format!("{root}/ui/patients/{patient}/observations");
    let p = page(&nurse, &url);
    assert!(p.contains(r#"data-testid="patient-banner""#), "the banner");
    assert!(p.contains(r#"data-testid="obs-form""#), "{}", env.name);
    assert!(p.contains(r#"inputmode="decimal""#));

    // A wrong field: refused, named.
    let mut bad = set("250");
    bad[0].1 = "250".into();
    let form: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post(
        &nurse,
        &root,
        &format!("/ui/patients/{patient}/observations"),
        &form,
    );
    assert_eq!(r.status(), 422, "{}", env.name);
    let body = r.text().unwrap();
    assert!(body.contains("nhsuk-error-summary"), "{body}");
    assert!(body.contains("#respiration_rate"), "{body}");

    // NEWS2 7: RR 25 (3) + 2 + 1 + 1.
    let good = set("25");
    let form: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post(
        &nurse,
        &root,
        &format!("/ui/patients/{patient}/observations"),
        &form,
    );
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    let p = page(&nurse, &url);
    assert!(
        p.contains(r#"data-testid="news2-alert" data-level="emergency""#),
        "{}: {p}",
        env.name
    );
    assert!(
        p.contains(r#"data-testid="latest-news2" data-score="7""#),
        "{p}"
    );
    assert!(p.contains(r#"data-testid="obs-graph""#) && p.contains(r#"data-testid="news2-band""#));
    assert!(
        p.contains(r#"data-testid="obs-point" data-value="25""#),
        "{p}"
    );

    let tasks = common::entries(
        &s.get(&format!(
            "Task?patient=Patient/{patient}&code=https://fhir.wardline.invalid/CodeSystem/task-kind|news2-emergency"
        ))
        .body,
    );
    assert_eq!(tasks.len(), 1, "{}", env.name);
    let t: &Value = &tasks[0]["resource"];
    assert_eq!(t["priority"], "stat");
    assert_eq!(t["location"]["reference"], "Location/watford-w1");
    // The shared Task convention: the ward's team owns it; due time.
    assert_eq!(t["owner"]["reference"], "Location/watford-w1");
    assert!(t["restriction"]["period"]["end"].is_string(), "{t}");
    let tid = t["id"].as_str().unwrap().to_owned();

    let list = page(&nurse, &format!("{root}/ui/observations/tasks"));
    assert!(
        list.contains(&format!(r#"data-task="{tid}" data-level="emergency""#)),
        "{list}"
    );
    let r = post(
        &nurse,
        &root,
        &format!("/ui/observations/tasks/{tid}/acknowledge"),
        &[],
    );
    assert_eq!(r.status(), 303);
    let r = post(
        &nurse,
        &root,
        &format!("/ui/observations/tasks/{tid}/complete"),
        &[("outcome", "Reviewed by the outreach team")],
    );
    assert_eq!(r.status(), 303);
    assert_eq!(s.get(&format!("Task/{tid}")).body["status"], "completed");

    // The remote gateway: a backend-services client posting a Bundle with
    // a token of exactly `system/Observation.c`. Taken five minutes ago.
    let gateway = common::authorised_client(&env.system_token("system/Observation.c"));
    let at = wardline_fhir::datetime::format_instant(
        wardline_fhir::datetime::now_ms() / 1000 * 1000 - 300_000,
    );
    let at = at.as_str();
    let obs = |code: &str, system: &str, value: Value| {
        let mut o = json!({"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": format!("Patient/{patient}")}, "effectiveDateTime": at});
        for (k, v) in value.as_object().unwrap() {
            o[k] = v.clone();
        }
        json!({"resource": o, "request": {"method": "POST", "url": "Observation"}})
    };
    let loinc = "http://loinc.org";
    let q = |v: f64, u: &str| json!({"valueQuantity": {"value": v, "unit": u, "system": "http://unitsofmeasure.org", "code": u}});
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        obs("9279-1", loinc, q(18.0, "/min")),
        obs("2708-6", loinc, q(96.0, "%")),
        obs("supplemental-oxygen", "https://fhir.wardline.invalid/CodeSystem/observation", json!({"valueBoolean": false})),
        obs("8480-6", loinc, q(125.0, "mm[Hg]")),
        obs("8867-4", loinc, q(72.0, "/min")),
        obs("67775-7", loinc, json!({"valueCodeableConcept": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/acvpu", "code": "A"}]}})),
        obs("8310-5", loinc, q(36.8, "Cel")),
    ]});
    let post = |body: &Value, path: &str| {
        gateway
            .post(s.url(path))
            .header("Content-Type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let r = post(&bundle, "");
    assert_eq!(
        r.status(),
        200,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    // Create only: the same token may not read.
    let r = gateway
        .get(s.url(&format!("Patient/{patient}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let scores = common::entries(
        &s.get(&format!(
            "Observation?subject=Patient/{patient}&code=https://fhir.wardline.invalid/CodeSystem/observation|news2&date=eq{}",
            common::escape_uri(at)
        ))
        .body,
    );
    assert_eq!(scores.len(), 1, "{}", env.name);
    assert_eq!(scores[0]["resource"]["valueInteger"], 0);
    assert_eq!(
        scores[0]["resource"]["derivedFrom"]
            .as_array()
            .unwrap()
            .len(),
        7
    );

    // A date-only reading (imported data, FHIR examples): stored as sent,
    // never refused because it cannot be scored, and not scored.
    let mut dated = bundle["entry"][1]["resource"].clone();
    dated["effectiveDateTime"] = json!("2026-03-02");
    let r = post(&dated, "Observation");
    assert_eq!(r.status(), 201, "{}", env.name);
    let scores = common::entries(
        &s.get(&format!(
            "Observation?subject=Patient/{patient}&code=https://fhir.wardline.invalid/CodeSystem/observation|news2&date=2026-03-02"
        ))
        .body,
    );
    assert!(scores.is_empty(), "{}: {scores:?}", env.name);
}

#[test]
fn observations_news2_escalation_and_remote_monitoring_over_http() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
