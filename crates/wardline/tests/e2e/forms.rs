//! Configurable forms (issue 20) over real HTTP with the demo trust, on
//! both backends:
//!
//! * a Questionnaire imported over plain FHIR REST is a form (201); one
//!   whose enableWhen points at a later item is refused, naming it (422);
//! * a response to the demo falls risk form written over REST without a
//!   required answer is refused naming the item (H-291);
//! * a nurse completes the falls risk form in the chart for a patient
//!   admitted an hour ago: a required question skipped comes back as the
//!   error summary linking to it; completed, its marked answer is an
//!   Observation derived from the response (H-290), and the falls KPI
//!   counts the admission on its ward (H-293).

use serde_json::json;

use crate::common::{self, Env};
use crate::ui::{browser, csrf, page, sign_in};

const FALLS: &str = "https://fhir.wardline.invalid/forms/falls-risk";

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();

    // Import over REST.
    let q = json!({"resourceType": "Questionnaire", "status": "active", "version": "1",
        "url": "https://example.org/forms/pressure-areas", "title": "Pressure areas",
        "item": [{"linkId": "intact", "type": "boolean", "text": "Skin intact?", "required": true},
                 {"linkId": "where", "type": "string", "text": "Where?",
                  "enableWhen": [{"question": "intact", "operator": "=", "answerBoolean": false}]}]});
    let r = s.post("Questionnaire", &q);
    assert_eq!(r.status, 201, "{}: {}", env.name, r.brief());
    let mut bad = q.clone();
    bad["url"] = json!("https://example.org/forms/bad");
    bad["item"][0]["enableWhen"] =
        json!([{"question": "where", "operator": "exists", "answerBoolean": true}]);
    let r = s.post("Questionnaire", &bad);
    assert_eq!(r.status, 422, "{}: {}", env.name, r.brief());
    assert!(r.text.contains("intact"), "{}: {}", env.name, r.text);

    // A patient admitted an hour ago to watford-w1 (as ADT would write it).
    let now = time::OffsetDateTime::now_utc();
    let start = wardline_workflow::orders::request::fhir_time(now - time::Duration::hours(1));
    let r = s.put(
        "Patient/e2e-forms-p1",
        &json!({"resourceType": "Patient", "id": "e2e-forms-p1",
            "name": [{"family": "Formsby", "given": ["Fay"]}], "gender": "female", "birthDate": "1941-05-02"}),
    );
    assert!(r.is_success(), "{}: {}", env.name, r.brief());
    let r = s.put(
        "Encounter/e2e-forms-e1",
        &json!({"resourceType": "Encounter", "id": "e2e-forms-e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/e2e-forms-p1"},
            "period": {"start": start},
            "location": [{"location": {"reference": "Location/watford-w1"}, "status": "active"}]}),
    );
    assert!(r.is_success(), "{}: {}", env.name, r.brief());

    // REST: a completed response without the required falls risk.
    let r = s.post(
        "QuestionnaireResponse",
        &json!({"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": format!("{FALLS}|1"), "subject": {"reference": "Patient/e2e-forms-p1"},
            "authored": start,
            "item": [{"linkId": "history", "item": [{"linkId": "fallen", "answer": [{"valueBoolean": false}]}]},
                     {"linkId": "mobility", "answer": [{"valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/mobility", "code": "independent"}}]}]}),
    );
    assert_eq!(r.status, 422, "{}: {}", env.name, r.brief());
    assert!(
        r.text.contains("linkId='risk'"),
        "{}: the item is named: {}",
        env.name,
        r.text
    );

    // The nurse, in the chart.
    let nurse = browser();
    sign_in(env, &root, &nurse, "nurse.w1");
    let chart = page(&nurse, &format!("{root}/ui/patients/e2e-forms-p1"));
    assert!(
        chart.contains("/ui/patients/e2e-forms-p1/forms"),
        "{}",
        env.name
    );
    let list = page(&nurse, &format!("{root}/ui/patients/e2e-forms-p1/forms"));
    assert!(
        list.contains("Falls risk assessment"),
        "{}: {list}",
        env.name
    );
    let url = format!("{root}/ui/patients/e2e-forms-p1/forms/demo-falls-risk");
    let form = page(&nurse, &url);
    assert!(form.contains("name=\"q-fallen\""), "{}: {form}", env.name);
    let token = csrf(&root, &nurse);
    let r = nurse
        .post(&url)
        .form(&[
            ("csrf", token.as_str()),
            ("action", "complete"),
            ("q-mobility", "independent"),
            ("q-risk", "low"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 422, "{}", env.name);
    let html = r.text().unwrap();
    assert!(
        html.contains("href=\"#q-fallen\""),
        "{}: the error summary links to the question: {html}",
        env.name
    );
    let r = nurse
        .post(&url)
        .form(&[
            ("csrf", token.as_str()),
            ("action", "complete"),
            ("q-fallen", "no"),
            ("q-mobility", "independent"),
            ("q-factors", "sedation"),
            ("q-factors.1", "other"),
            ("q-factors.1.other", "New to the ward"),
            ("q-risk", "high"),
        ])
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    let qrs = common::entries(
        &s.get("QuestionnaireResponse?subject=Patient/e2e-forms-p1")
            .body,
    );
    assert_eq!(qrs.len(), 1, "{}", env.name);
    let qr = &qrs[0]["resource"];
    assert_eq!(qr["status"], "completed");
    assert_eq!(qr["questionnaire"], format!("{FALLS}|1"));
    assert_eq!(qr["encounter"]["reference"], "Encounter/e2e-forms-e1");
    let qr_id = qr["id"].as_str().unwrap();
    let obs = common::entries(
        &s.get(&format!(
            "Observation?derived-from=QuestionnaireResponse/{qr_id}"
        ))
        .body,
    );
    assert_eq!(obs.len(), 1, "{}", env.name);
    assert_eq!(
        obs[0]["resource"]["valueCodeableConcept"]["coding"][0]["code"],
        "high"
    );

    // The KPI page counts the admission on its ward as in time.
    let kpis = page(&nurse, &format!("{root}/ui/kpis"));
    let at = kpis
        .find("data-kpi=\"kpi-falls-risk-6h\"")
        .unwrap_or_else(|| panic!("{}: no falls KPI: {kpis}", env.name));
    let section = &kpis[at..];
    let section = &section[..section.find("</section>").unwrap_or(section.len())];
    let met: usize = section
        .split("data-met=\"")
        .skip(1)
        .filter_map(|p| p[..p.find('"').unwrap_or(0)].parse().ok())
        .max()
        .unwrap_or(0);
    assert!(
        met >= 1,
        "{}: the completed form is counted: {section}",
        env.name
    );
}

#[test]
fn forms_imported_completed_extracted_and_counted_over_http() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
