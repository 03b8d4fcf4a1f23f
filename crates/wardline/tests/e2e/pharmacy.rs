//! The pharmacist's screening and the discharge medicines over real HTTP,
//! with real sessions of the demo trust, on both backends:
//!
//! * a prescription signed by dr.watford for a patient on ward watford-w1
//!   (written through the FHIR API) is on pharm.watford's worklist, also
//!   filtered to the ward;
//! * the consultant cannot screen it (403) and it stays unscreened (H-115);
//! * the pharmacist queries it; the consultant finds the question under
//!   their pharmacy queries and answers; the pharmacist sees the answer,
//!   screens it, and it leaves the worklist, screened on the record;
//! * a discharge prescription for the admission: the discharge medicines
//!   page is not ready until it is screened (H-116).

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

fn screening(mr: &Value) -> String {
    mr["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| {
            e["url"] == "https://fhir.wardline.invalid/StructureDefinition/pharmacy-screening"
        })
        .and_then(|e| {
            e["extension"]
                .as_array()?
                .iter()
                .find(|s| s["url"] == "status")?["valueCode"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unscreened".into())
}

fn prescription(id: &str, patient: &str, enc: &str, dr: &str, med: &str, category: &str) -> Value {
    json!({"resourceType": "MedicationRequest", "id": id, "status": "active", "intent": "order",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": category}]}],
        "medicationReference": {"reference": format!("Medication/{med}"), "display": "E2E test medicine"},
        "subject": {"reference": format!("Patient/{patient}")},
        "encounter": {"reference": format!("Encounter/{enc}")},
        "requester": {"reference": format!("Practitioner/{dr}")},
        "authoredOn": "2026-03-02T08:00:00Z",
        "reasonCode": [{"text": "Pain"}],
        "extension": [{"url": "https://fhir.wardline.invalid/StructureDefinition/prescriber-signature", "extension": [
            {"url": "by", "valueReference": {"reference": format!("Practitioner/{dr}")}},
            {"url": "at", "valueDateTime": "2026-03-02T08:00:00Z"}]}],
        "dosageInstruction": [{"text": "1 g four times a day"}]})
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();

    let pharm = browser();
    sign_in(env, &root, &pharm, "pharm.watford");
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");

    // An in-patient on watford-w1 (from the ward board), their admission,
    // the consultant's Practitioner, a medicine.
    let board = page(&doctor, &format!("{root}/ui/beds/watford-w1"));
    let key = "href=\"/ui/patients/";
    let patient = board
        .match_indices(key)
        .map(|(i, _)| {
            let rest = &board[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .find(|id| id != "new" && !id.contains(['/', '?']))
        .unwrap_or_else(|| panic!("{}: no patient on the board", env.name));
    let enc = common::entries(
        &s.get(&format!(
            "Encounter?patient=Patient/{patient}&status=in-progress"
        ))
        .body,
    )
    .into_iter()
    .map(|e| e["resource"].clone())
    .find(|e| e["class"]["code"] == "IMP")
    .expect("the admission");
    let enc_id = enc["id"].as_str().unwrap().to_owned();
    // dr.watford's Practitioner, through the position they are signed in as.
    let sess: Value = doctor
        .get(format!("{root}/auth/session"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let position = sess["position"].as_str().expect("a position").to_owned();
    let role = s.get(&format!(
        "PractitionerRole/{}",
        position.trim_start_matches("PractitionerRole/")
    ));
    let dr = role.body["practitioner"]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: {}", env.name, role.text))
        .trim_start_matches("Practitioner/")
        .to_owned();
    let med = "med-e2e-para".to_owned();
    let r = s.put(
        "Medication/med-e2e-para",
        &json!({"resourceType": "Medication", "id": med, "status": "active",
            "code": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine", "code": "E2EPARA500", "display": "Paracetamol 500mg tablets"}]}}),
    );
    assert!(r.is_success(), "{}: {}", env.name, r.brief());
    let r = s.put(
        "MedicationRequest/e2e-rx-1",
        &prescription("e2e-rx-1", &patient, &enc_id, &dr, &med, "inpatient"),
    );
    assert!(r.is_success(), "{}: {}", env.name, r.brief());

    // On the worklist, also filtered to the ward.
    let w = page(&pharm, &format!("{root}/ui/pharmacy"));
    assert!(
        w.contains(r#"data-prescription="e2e-rx-1""#),
        "{}: {w}",
        env.name
    );
    let w = page(&pharm, &format!("{root}/ui/pharmacy?ward=watford-w1"));
    assert!(
        w.contains(r#"data-prescription="e2e-rx-1""#),
        "{}: {w}",
        env.name
    );

    // The consultant cannot screen it.
    let r = post(
        &doctor,
        &root,
        "/ui/pharmacy/prescriptions/e2e-rx-1/screen",
        &[],
    );
    assert_eq!(r.status(), 403, "{}", env.name);
    assert_eq!(
        screening(&s.get("MedicationRequest/e2e-rx-1").body),
        "unscreened"
    );

    // Query → answer → screen.
    let r = post(
        &pharm,
        &root,
        "/ui/pharmacy/prescriptions/e2e-rx-1/query",
        &[("question", "Weight 48 kg: reduce to 500 mg?")],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    assert_eq!(
        screening(&s.get("MedicationRequest/e2e-rx-1").body),
        "queried"
    );
    let q = page(&doctor, &format!("{root}/ui/pharmacy/queries"));
    assert!(
        q.contains("Weight 48 kg: reduce to 500 mg?"),
        "{}: {q}",
        env.name
    );
    let key = r#"data-testid="open-query" data-task=""#;
    let at = q.find(key).expect("an open query") + key.len();
    let task = &q[at..at + q[at..].find('"').unwrap()];
    let r = post(
        &doctor,
        &root,
        &format!("/ui/pharmacy/queries/{task}/answer"),
        &[(&format!("answer-{task}"), "Weight is 68 kg; 1 g is right.")],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let p = page(
        &pharm,
        &format!("{root}/ui/pharmacy/prescriptions/e2e-rx-1"),
    );
    assert!(p.contains("Weight is 68 kg; 1 g is right."), "{}", env.name);
    let r = post(
        &pharm,
        &root,
        "/ui/pharmacy/prescriptions/e2e-rx-1/screen",
        &[("note", "")],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    assert_eq!(
        screening(&s.get("MedicationRequest/e2e-rx-1").body),
        "screened"
    );
    let w = page(&pharm, &format!("{root}/ui/pharmacy"));
    assert!(
        !w.contains(r#"data-prescription="e2e-rx-1""#),
        "{}",
        env.name
    );

    // The discharge medicines: not ready until the TTO is screened.
    let r = s.put(
        "MedicationRequest/e2e-tto-1",
        &prescription("e2e-tto-1", &patient, &enc_id, &dr, &med, "discharge"),
    );
    assert!(r.is_success(), "{}: {}", env.name, r.brief());
    let url = format!("{root}/ui/encounters/{enc_id}/discharge-medicines");
    let d = page(&doctor, &url);
    assert!(d.contains(r#"data-ready="false""#), "{}: {d}", env.name);
    assert!(
        d.contains(r#"data-change="continued""#),
        "{}: {d}",
        env.name
    );
    let r = post(
        &pharm,
        &root,
        "/ui/pharmacy/prescriptions/e2e-tto-1/screen",
        &[],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let d = page(&doctor, &url);
    assert!(d.contains(r#"data-ready="true""#), "{}: {d}", env.name);
}

#[test]
fn pharmacy_screening_and_discharge_medicines_over_http() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
