//! Chemotherapy through the real server over HTTP: fixture formulary
//! Medications, a patient on ward watford-w1 with height, weight and blood
//! results are written through the FHIR REST API; `dr.watford` sees the
//! BSA by both formulas, previews and prescribes AC cycle 1 (the doses and
//! their calculation shown); the prescriber cannot verify; `dr2.watford`
//! verifies as second clinician and `pharm.watford` as pharmacist; release
//! makes every prescription active; the cycle is fetched as a FHIR Bundle
//! with `CarePlan/{id}/$chemotherapy-cycle` and validates.

use crate::common;
use crate::ui::{browser, csrf, sign_in};

use common::Env;
use serde_json::{Value, json};

const FORMULARY_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/formulary-entry";
const LOCAL: &str = "https://fhir.wardline.invalid/CodeSystem/local-medicine";

fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn seed(s: &common::Server, patient: &str) {
    let put = |r: Value| {
        let url = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        json!({"resource": r, "request": {"method": "PUT", "url": url}})
    };
    let now = time::OffsetDateTime::now_utc();
    let at = |days: i64| {
        let t = now - time::Duration::days(days);
        format!(
            "{:04}-{:02}-{:02}T08:00:00Z",
            t.year(),
            u8::from(t.month()),
            t.day()
        )
    };
    let obs = |id: &str, code: &str, v: f64, unit: &str, when: String| {
        put(
            json!({"resourceType": "Observation", "id": format!("{patient}-{id}"), "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": format!("Patient/{patient}")}, "effectiveDateTime": when,
            "valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}),
        )
    };
    let mut entries = vec![
        put(
            json!({"resourceType": "Patient", "id": patient, "active": true,
            "name": [{"use": "official", "family": "Okafor", "given": ["Grace"]}],
            "gender": "female", "birthDate": "1968-02-14"}),
        ),
        put(
            json!({"resourceType": "Encounter", "id": format!("{patient}-enc"), "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": format!("Patient/{patient}")},
            "location": [{"location": {"reference": "Location/watford-w1"}, "status": "active"}],
            "period": {"start": at(1)}}),
        ),
        obs("height", "8302-2", 170.0, "cm", at(30)),
        obs("weight", "29463-7", 70.0, "kg", at(2)),
        obs("neut", "751-8", 2.4, "10*9/L", at(1)),
        obs("plt", "777-3", 210.0, "10*9/L", at(1)),
    ];
    for d in ["Doxorubicin", "Cyclophosphamide"] {
        let c = d.to_uppercase();
        entries.push(put(json!({"resourceType": "Medication", "id": format!("med-LE2E-{c}"), "status": "active",
            "code": {"coding": [{"system": LOCAL, "code": format!("LE2E-{c}"), "display": format!("{d} (e2e)")}]},
            "form": {"text": "Solution for infusion"},
            "extension": [{"url": FORMULARY_EXT, "extension": [
                {"url": "vtm", "valueCoding": {"system": LOCAL, "code": format!("LVE2E-{c}"), "display": d}},
                {"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": "47625008", "display": "Intravenous route"}},
                {"url": "unitOfDose", "valueString": "mg"}]}]})));
    }
    let r = s
        .client
        .post(&s.base)
        .json(&json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "seed: {}", r.text().unwrap());
}

fn page(c: &reqwest::blocking::Client, url: &str) -> String {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.text().unwrap()
}

fn post(
    c: &reqwest::blocking::Client,
    root: &str,
    url: &str,
    form: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let token = csrf(root, c);
    let mut f: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
    f.extend_from_slice(form);
    c.post(format!("{root}{url}")).form(&f).send().unwrap()
}

#[test]
fn a_chemotherapy_cycle_over_http() {
    let env = Env::sqlite();
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    seed(&s, "chemo-e2e");
    let day1 = today();

    // --- prescribing, as dr.watford -------------------------------------
    let dr = browser();
    sign_in(&env, &root, &dr, "dr.watford");
    let html = page(&dr, &format!("{root}/ui/patients/chemo-e2e/chemotherapy"));
    assert!(
        html.contains("BSA (Mosteller)") && html.contains("1.82 m²"),
        "{html}"
    );
    assert!(html.contains("BSA (DuBois)") && html.contains("1.81 m²"));
    assert!(
        html.contains("AC (doxorubicin, cyclophosphamide)"),
        "the demo regimens"
    );
    let preview = page(
        &dr,
        &format!("{root}/ui/patients/chemo-e2e/chemotherapy?regimen=chemo-ac&cycle=1&start={day1}"),
    );
    // Doxorubicin 60 mg/m² × 1.82 m² = 109.2 mg; cyclophosphamide 600 × 1.82 = 1092 mg.
    assert!(
        preview.contains("60 mg/m² × 1.82 m² = 109.2 mg"),
        "{preview}"
    );
    assert!(preview.contains("1092 mg"));
    assert!(preview.contains("Prescribe cycle"));
    let r = post(
        &dr,
        &root,
        "/ui/patients/chemo-e2e/chemotherapy",
        &[
            ("regimen", "chemo-ac"),
            ("cycle", "1"),
            ("start", &day1),
            ("reduce-0", "10"),
            ("reason-0", ""),
        ],
    );
    assert_eq!(r.status(), 422, "a reduction without its reason");
    assert!(r.text().unwrap().contains("needs its reason"));
    let r = post(
        &dr,
        &root,
        "/ui/patients/chemo-e2e/chemotherapy",
        &[("regimen", "chemo-ac"), ("cycle", "1"), ("start", &day1)],
    );
    assert_eq!(r.status(), 303);
    let next = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(next.starts_with("/ui/chemotherapy/"), "{next}");
    let cp = next["/ui/chemotherapy/".len()..next.find('?').unwrap()].to_owned();
    let html = page(&dr, &format!("{root}{next}"));
    assert!(
        html.contains("109.2 mg") && html.contains("Not verified"),
        "{html}"
    );
    assert!(html.contains("Prescribed: not released"));
    // The prescriber cannot verify their own cycle.
    let r = post(
        &dr,
        &root,
        &format!("/ui/chemotherapy/{cp}/verify"),
        &[("role", "clinical")],
    );
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().contains("error="));
    // Release before verification is refused.
    let r = post(&dr, &root, &format!("/ui/chemotherapy/{cp}/release"), &[]);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.contains("error="), "{loc}");

    // --- verification -------------------------------------------------------
    let dr2 = browser();
    sign_in(&env, &root, &dr2, "dr2.watford");
    let r = post(
        &dr2,
        &root,
        &format!("/ui/chemotherapy/{cp}/verify"),
        &[("role", "clinical")],
    );
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("done=verified")
    );
    let pharm = browser();
    sign_in(&env, &root, &pharm, "pharm.watford");
    let html = page(&pharm, &format!("{root}/ui/chemotherapy/{cp}"));
    assert!(html.contains("Verify as pharmacist"), "{html}");
    let r = post(
        &pharm,
        &root,
        &format!("/ui/chemotherapy/{cp}/verify"),
        &[("role", "pharmacy")],
    );
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("done=verified")
    );

    // --- release ------------------------------------------------------------
    let r = post(&dr, &root, &format!("/ui/chemotherapy/{cp}/release"), &[]);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("done=released"),
        "{:?}",
        r.headers()["location"]
    );
    let html = page(&dr, &format!("{root}/ui/chemotherapy/{cp}"));
    assert!(html.contains("Released") && html.contains("109.2 mg"));

    // --- shared as FHIR -----------------------------------------------------
    let r = s
        .client
        .get(format!("{}/CarePlan/{cp}/$chemotherapy-cycle", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let bundle: Value = r.json().unwrap();
    wardline_fhir::definitions::r4().validate(&bundle).unwrap();
    let res: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let mrs: Vec<&&Value> = res
        .iter()
        .filter(|r| r["resourceType"] == "MedicationRequest")
        .collect();
    assert_eq!(mrs.len(), 2);
    assert!(mrs.iter().all(|m| m["status"] == "active"));
    for t in [
        "CarePlan",
        "PlanDefinition",
        "Patient",
        "Medication",
        "Observation",
    ] {
        assert!(res.iter().any(|r| r["resourceType"] == t), "{t}");
    }
    // Each entry is what the server holds.
    for r in &res {
        let url = format!(
            "{}/{}/{}",
            s.base,
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let stored: Value = s.client.get(&url).send().unwrap().json().unwrap();
        assert_eq!(&stored, *r, "{url}");
    }
    // Not a cycle: 404.
    let r = s
        .client
        .get(format!("{}/CarePlan/nope/$chemotherapy-cycle", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}
