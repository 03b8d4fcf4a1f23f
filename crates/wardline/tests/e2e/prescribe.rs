//! Prescribing on the drug chart over real HTTP, with real sessions of the
//! demo trust (`serve --demo`), on both backends:
//!
//! * the consultant finds a medicine in the formulary, chooses the kind and
//!   prescribes a regular and an as-required medicine; the drug chart lists
//!   them by kind, signed by the prescriber;
//! * a form with a wrong route comes back (422) naming the field, with the
//!   values kept;
//! * the prescription's page shows its history; discontinuing it with a
//!   reason moves it to the ended list with the reason;
//! * a nurse is not offered prescribing and cannot post a prescription (403);
//! * `MedicationRequest/$prescribe` with a user token: 201 and the signed
//!   resource; 400 OperationOutcome naming the field; any 409 lists the
//!   alerts one issue each with key and grade; `$discontinue` 200 then 409;
//! * a plain `PUT` restarting a stopped prescription is 422 naming
//!   `MedicationRequest.status`.
//!
//! Two formulary entries are written here over REST (the demo formulary
//! belongs to the formulary module), in the contract's shape.

use serde_json::{Value, json};

use crate::common::{self, Env};
use crate::ui::{browser, csrf, sign_in};
use reqwest::blocking::Client;

fn page(c: &Client, url: &str) -> String {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.text().unwrap()
}

fn post(c: &Client, root: &str, path: &str, form: &[(&str, &str)]) -> reqwest::blocking::Response {
    let token = csrf(root, c);
    let mut f: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
    f.extend_from_slice(form);
    c.post(format!("{root}{path}")).form(&f).send().unwrap()
}

fn attrs(html: &str, attr: &str) -> Vec<String> {
    let key = format!("{attr}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

fn medication(id: &str, name: &str) -> Value {
    // In the shape the formulary's own rule accepts (local codes L…).
    let code = id.trim_start_matches("med-");
    json!({"resourceType": "Medication", "id": id, "status": "active",
        "code": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine", "code": code, "display": name}]},
        "form": {"text": "Tablet"},
        "ingredient": [{"itemCodeableConcept": {"text": name}, "strength": {
            "numerator": {"value": 500, "unit": "mg"}, "denominator": {"value": 1, "unit": "tablet"}}}],
        "extension": [{"url": "https://fhir.wardline.invalid/StructureDefinition/formulary-entry", "extension": [
            {"url": "vtm", "valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine", "code": format!("LV{code}"), "display": name.split(' ').next().unwrap()}},
            {"url": "unitOfDose", "valueString": "tablet"},
            {"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral"}}]}]})
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    for (id, name) in [
        ("med-LE2E1", "Zedoparin 500mg tablets (e2e)"),
        ("med-LE2E2", "Zedocodone 500mg tablets (e2e)"),
    ] {
        let r = s.put(&format!("Medication/{id}"), &medication(id, name));
        assert!(r.is_success(), "{}: {}", env.name, r.brief());
    }
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");
    let board = page(&doctor, &format!("{root}/ui/beds/watford-w2"));
    let patient = attrs(&board, "href")
        .into_iter()
        .filter_map(|h| h.strip_prefix("/ui/patients/").map(str::to_owned))
        .find(|id| id != "new" && !id.contains(['/', '?']))
        .unwrap_or_else(|| panic!("{}: no patient on the board", env.name));
    let chart = page(&doctor, &format!("{root}/ui/patients/{patient}"));
    assert!(
        chart.contains(&format!("/ui/patients/{patient}/medicines")),
        "the chart links the drug chart"
    );
    let drug_chart = format!("{root}/ui/patients/{patient}/medicines");
    assert!(page(&doctor, &drug_chart).contains(r#"data-testid="prescribe""#));

    // Search, choose, kind, form.
    let new = format!("/ui/patients/{patient}/medicines/new");
    let found = page(&doctor, &format!("{root}{new}?q=zedoparin"));
    assert!(
        found.contains(r#"data-id="med-LE2E1""#),
        "{}: {found}",
        env.name
    );
    assert!(!found.contains(r#"data-id="med-LE2E2""#));
    let kinds = page(&doctor, &format!("{root}{new}?medicine=med-LE2E1"));
    assert!(kinds.contains(r#"value="as-required""#));
    let form = page(
        &doctor,
        &format!("{root}{new}?medicine=med-LE2E1&kind=regular"),
    );
    for name in [
        "dose",
        "dose_unit",
        "route",
        "times",
        "indication",
        // A date: the NHS date input's three fields.
        "review-day",
        "review-month",
        "review-year",
    ] {
        assert!(form.contains(&format!(r#"name="{name}""#)), "no {name}");
    }

    let regular = [
        ("medicine", "med-LE2E1"),
        ("kind", "regular"),
        ("dose", "1000"),
        ("dose_unit", "mg"),
        ("route", "26643006"),
        ("times", "08:00, 20:00"),
        ("indication", "Back pain"),
    ];
    // A route the product is not given by: refused, naming it, values kept.
    let mut bad = regular.to_vec();
    bad[4] = ("route", "47625008");
    let r = post(&doctor, &root, &new, &bad);
    assert_eq!(r.status(), 422, "{}", env.name);
    let html = r.text().unwrap();
    assert!(html.contains("Route"), "{html}");
    assert!(html.contains(r#"value="Back pain""#), "the values are kept");

    let r = post(&doctor, &root, &new, &regular);
    assert_eq!(r.status(), 303, "{}: {}", env.name, r.text().unwrap());
    let prn = [
        ("medicine", "med-LE2E2"),
        ("kind", "as-required"),
        ("dose", "1"),
        ("dose_unit", "tablet"),
        ("route", "26643006"),
        ("prn_reason", "pain"),
        ("min_interval", "4"),
        ("max_24h", "4"),
        ("indication", "Breakthrough pain"),
    ];
    let r = post(&doctor, &root, &new, &prn);
    assert_eq!(r.status(), 303, "{}: {}", env.name, r.text().unwrap());

    let html = page(&doctor, &drug_chart);
    assert!(html.contains(r#"data-testid="section-regular""#), "{html}");
    assert!(
        html.contains(r#"data-testid="section-as-required""#),
        "{html}"
    );
    assert!(html.contains("Zedoparin 500mg tablets (e2e)"));
    assert!(html.contains("08:00, 20:00"));
    assert!(html.contains("As required for pain, at least 4 h apart, at most 4 tablet in 24 h"));
    assert!(
        html.contains("Sanjay Mehta") || html.contains("Signed "),
        "signed by the prescriber"
    );
    let ids: Vec<String> = html
        .split(r#"data-testid="prescription" data-id=""#)
        .skip(1)
        .map(|t| t[..t.find('"').unwrap()].to_owned())
        .collect();
    assert!(ids.len() >= 2, "{}", env.name);
    let first = ids[0].clone();

    // The prescription, discontinued with a reason.
    let detail = page(&doctor, &format!("{root}/ui/prescriptions/{first}"));
    assert!(detail.contains(r#"data-testid="versions""#));
    assert!(detail.contains(r#"id="discontinue-reason""#));
    let r = post(
        &doctor,
        &root,
        &format!("/ui/prescriptions/{first}/discontinue"),
        &[("reason", "")],
    );
    assert_eq!(r.status(), 400, "a reason is needed");
    let r = post(
        &doctor,
        &root,
        &format!("/ui/prescriptions/{first}/discontinue"),
        &[("reason", "Pain settled")],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let detail = page(&doctor, &format!("{root}/ui/prescriptions/{first}"));
    assert!(detail.contains(r#"data-status="stopped""#), "{detail}");
    assert!(detail.contains("Pain settled"));
    let html = page(&doctor, &drug_chart);
    assert!(html.contains(r#"data-testid="section-ended""#));

    // A nurse prescribes nothing.
    let nurse = browser();
    sign_in(env, &root, &nurse, "nurse.w1");
    let r = nurse.get(format!("{root}{new}")).send().unwrap();
    assert_eq!(r.status(), 403, "{}", env.name);
    let r = post(&nurse, &root, &new, &regular);
    assert_eq!(r.status(), 403, "{}", env.name);

    // Over FHIR REST, as the consultant.
    let token = env.cli(&[
        "token",
        "--user",
        "dr.watford",
        "--scope",
        "user/*.cruds",
        "--minutes",
        "60",
    ]);
    let rest = common::authorised_client(token.trim());
    let mr = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "subject": {"reference": format!("Patient/{patient}")},
        "medicationReference": {"reference": "Medication/med-LE2E1"},
        "reasonCode": [{"text": "Back pain"}],
        "dosageInstruction": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]},
            "timing": {"repeat": {"timeOfDay": ["08:00:00"], "frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}]});
    let call = |body: &Value, path: &str| {
        let r = rest
            .post(format!("{}/{path}", s.base))
            .header("Content-Type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap())
    };
    let params = |mr: &Value| json!({"resourceType": "Parameters", "parameter": [{"name": "prescription", "resource": mr}]});
    let (status, saved) = call(&params(&mr), "MedicationRequest/$prescribe");
    assert_eq!(status, 201, "{}: {saved}", env.name);
    assert_eq!(saved["status"], "active");
    assert!(
        saved["extension"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["url"]
                == "https://fhir.wardline.invalid/StructureDefinition/prescriber-signature")
    );
    let id = saved["id"].as_str().unwrap().to_owned();
    let mut no_reason = mr.clone();
    no_reason.as_object_mut().unwrap().remove("reasonCode");
    let (status, oo) = call(&params(&no_reason), "MedicationRequest/$prescribe");
    assert_eq!(status, 400, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .starts_with("Indication")
    );
    // The same medicine again: decision support may raise alerts (duplicate
    // therapy); a 409 lists each with its key and grade.
    let (status, again) = call(&params(&mr), "MedicationRequest/$prescribe");
    match status {
        201 => assert_eq!(again["status"], "active"),
        409 => {
            assert_eq!(again["resourceType"], "OperationOutcome");
            for i in again["issue"].as_array().unwrap() {
                assert!(
                    i["details"]["text"].as_str().is_some_and(|k| !k.is_empty()),
                    "{i}"
                );
                let grade = i["extension"][0]["valueCode"].as_str().unwrap();
                assert!(
                    ["hard-stop", "override", "advisory"].contains(&grade),
                    "{i}"
                );
            }
        }
        other => panic!("{}: {other} {again}", env.name),
    }
    let reason = json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "Course finished"}]});
    let (status, stopped) = call(&reason, &format!("MedicationRequest/{id}/$discontinue"));
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    let (status, _) = call(&reason, &format!("MedicationRequest/{id}/$discontinue"));
    assert_eq!(status, 409);
    // A plain PUT restarting it: the write rule.
    let mut restart = stopped.clone();
    restart["status"] = json!("active");
    let r = s.put(&format!("MedicationRequest/{id}"), &restart);
    assert_eq!(r.status, 422, "{}: {}", env.name, r.brief());
    assert!(
        r.brief().contains("MedicationRequest.status"),
        "{}",
        r.brief()
    );
}

#[test]
fn prescribing_on_sqlite() {
    scenario(&Env::sqlite());
}

#[test]
fn prescribing_on_postgres() {
    let Some(env) = Env::postgres() else {
        return;
    };
    scenario(&env);
}
