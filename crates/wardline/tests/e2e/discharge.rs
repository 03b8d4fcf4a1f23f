//! Discharge summaries over real HTTP, with a real session of the demo
//! trust, on both backends:
//!
//! * a diagnosis (SNOMED CT with ICD-10), a procedure and an allergy of an
//!   in-patient on watford-w1 (written through the FHIR API) are pre-filled
//!   into the summary started from the admission;
//! * a text too long for a heading is refused with the NHS error summary
//!   linking to its field (422); signing without a plan likewise;
//! * dr.watford writes the headings, signs; the Composition is `final`,
//!   `Composition/{id}/$document` is the document Bundle, and the PDF read
//!   back with `pdftotext` carries every heading, the pre-filled and
//!   written content, and the patient's name, NHS number and date of birth
//!   on every one of its pages;
//! * a plain REST write making a draft final is refused (422).

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{self, Env};
use crate::ui::{browser, csrf, sign_in};
use reqwest::blocking::Client;

const HEADINGS: [&str; 13] = [
    "Person demographics",
    "GP practice",
    "Admission details",
    "Discharge details",
    "Diagnoses",
    "Clinical summary",
    "Procedures",
    "Investigation results",
    "Medications and medical devices",
    "Allergies and adverse reactions",
    "Information and advice given",
    "Person completing record",
    "Plan and requested actions",
];

pub(crate) fn page(c: &Client, url: &str) -> String {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.text().unwrap()
}

pub(crate) fn post(
    c: &Client,
    root: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let token = csrf(root, c);
    let mut f: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
    f.extend_from_slice(form);
    c.post(format!("{root}{path}")).form(&f).send().unwrap()
}

fn location(r: &reqwest::blocking::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// The text of pages `from..=to` of a PDF, as `pdftotext` reads it.
pub(crate) fn pdf_text(path: &std::path::Path, page: Option<usize>) -> String {
    let mut cmd = Command::new("pdftotext");
    if let Some(p) = page {
        cmd.args(["-f", &p.to_string(), "-l", &p.to_string()]);
    }
    let out = cmd
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian poppler-utils) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");

    // An in-patient on watford-w1 and their admission.
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
    let p = s.get(&format!("Patient/{patient}")).body;
    let nhs = p["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == "https://fhir.nhs.uk/Id/nhs-number")
        .and_then(|i| i["value"].as_str())
        .expect("a demo patient has an NHS number")
        .to_owned();
    let dob = p["birthDate"].as_str().expect("a birth date").to_owned();

    // What the record holds for the admission.
    for (path, r) in [
        (
            "Condition/e2e-dx",
            json!({"resourceType": "Condition", "id": "e2e-dx",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "385093006", "display": "Community acquired pneumonia"},
                {"system": "http://hl7.org/fhir/sid/icd-10", "code": "J18.9"}]},
            "subject": {"reference": format!("Patient/{patient}")}, "encounter": {"reference": format!("Encounter/{enc_id}")}}),
        ),
        (
            "Procedure/e2e-proc",
            json!({"resourceType": "Procedure", "id": "e2e-proc", "status": "completed",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40701008", "display": "Echocardiography"}]},
            "subject": {"reference": format!("Patient/{patient}")}, "encounter": {"reference": format!("Encounter/{enc_id}")},
            "performedDateTime": "2026-03-01T11:00:00Z"}),
        ),
        (
            "AllergyIntolerance/e2e-al",
            json!({"resourceType": "AllergyIntolerance", "id": "e2e-al",
            "code": {"text": "Latex"}, "patient": {"reference": format!("Patient/{patient}")},
            "reaction": [{"manifestation": [{"text": "Urticaria"}]}]}),
        ),
    ] {
        let r = s.put(path, &r);
        assert!(r.is_success(), "{}: {path}: {}", env.name, r.brief());
    }

    // From the admission: no summary yet, then started and pre-filled.
    let url = format!("{root}/ui/encounters/{enc_id}/discharge-summary");
    let first = doctor.get(&url).send().unwrap();
    let id = if first.status() == 303 {
        // The demo data may already hold one; open it.
        location(&first)
            .trim_start_matches("/ui/discharge-summaries/")
            .to_owned()
    } else {
        let html = first.text().unwrap();
        assert!(
            html.contains("data-testid=\"start-summary\""),
            "{}: {html}",
            env.name
        );
        let r = post(
            &doctor,
            &root,
            &format!("/ui/encounters/{enc_id}/discharge-summary"),
            &[],
        );
        assert_eq!(r.status(), 303, "{}", env.name);
        let to = location(&r);
        assert!(to.ends_with("/edit"), "{to}");
        to.trim_start_matches("/ui/discharge-summaries/")
            .trim_end_matches("/edit")
            .to_owned()
    };
    let view = page(&doctor, &format!("{root}/ui/discharge-summaries/{id}"));
    assert!(
        view.contains("Community acquired pneumonia (SNOMED CT 385093006; ICD-10 J18.9)"),
        "{}: {view}",
        env.name
    );
    assert!(view.contains("Echocardiography"), "{}", env.name);
    assert!(view.contains("Latex: Urticaria"), "{}", env.name);
    assert!(view.contains(r#"data-status="preliminary""#));

    // A heading too long: the form again, the error summary linking to it.
    let long = "x".repeat(20_001);
    let r = post(
        &doctor,
        &root,
        &format!("/ui/discharge-summaries/{id}/edit"),
        &[("clinical-summary", "Short."), ("plan", long.as_str())],
    );
    assert_eq!(r.status(), 422, "{}", env.name);
    let html = r.text().unwrap();
    assert!(
        html.contains("nhsuk-error-summary") && html.contains("href=\"#plan\""),
        "{html}"
    );
    // Not signed without a plan.
    let r = post(
        &doctor,
        &root,
        &format!("/ui/discharge-summaries/{id}/edit"),
        &[("clinical-summary", "Short.")],
    );
    assert_eq!(r.status(), 303);
    let r = post(
        &doctor,
        &root,
        &format!("/ui/discharge-summaries/{id}/sign"),
        &[],
    );
    assert_eq!(r.status(), 422, "{}", env.name);
    assert!(r.text().unwrap().contains("href=\"#plan\""));

    // A plain REST write cannot make the draft final.
    let mut c = s.get(&format!("Composition/{id}")).body;
    c["status"] = json!("final");
    let r = s.put(&format!("Composition/{id}"), &c);
    assert_eq!(r.status, 422, "{}: {}", env.name, r.brief());

    // Written (long enough to need several pages) and signed.
    let summary = "Admitted with a three-day history of cough and fever; treated with intravenous then oral antibiotics with a good response. ".repeat(40);
    let r = post(
        &doctor,
        &root,
        &format!("/ui/discharge-summaries/{id}/edit"),
        &[
            ("clinical-summary", summary.as_str()),
            ("information-given", "Told to return if breathless."),
            ("plan", "GP: please repeat the chest X-ray in six weeks."),
        ],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let r = post(
        &doctor,
        &root,
        &format!("/ui/discharge-summaries/{id}/sign"),
        &[],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let c = s.get(&format!("Composition/{id}")).body;
    assert_eq!(c["status"], "final", "{}", env.name);
    let view = page(&doctor, &format!("{root}/ui/discharge-summaries/{id}"));
    assert!(view.contains(r#"data-status="final""#));

    // The FHIR document.
    let doc = s.get(&format!("Composition/{id}/$document"));
    assert_eq!(doc.status, 200, "{}: {}", env.name, doc.brief());
    assert_eq!(doc.body["type"], "document");
    assert_eq!(
        doc.body["entry"][0]["resource"]["resourceType"],
        "Composition"
    );
    let held: Vec<Value> = doc.body["entry"].as_array().unwrap().clone();
    assert!(held.iter().any(|e| e["resource"]["id"] == "e2e-dx"));
    let drs = common::entries(
        &s.get(&format!("DocumentReference?related=Composition/{id}"))
            .body,
    );
    assert_eq!(drs.len(), 1, "{}", env.name);

    // The PDF, read back by a PDF reader.
    let r = doctor
        .get(format!("{root}/ui/discharge-summaries/{id}/pdf"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let bytes = r.bytes().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("summary.pdf");
    std::fs::write(&file, &bytes).unwrap();
    let text = pdf_text(&file, None);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for h in HEADINGS {
        assert!(
            flat.contains(h),
            "{}: heading {h} missing from the PDF: {flat}",
            env.name
        );
    }
    for want in [
        "Community acquired pneumonia (SNOMED CT 385093006; ICD-10 J18.9)",
        "Echocardiography",
        "Latex: Urticaria",
        "GP: please repeat the chest X-ray in six weeks.",
        "Told to return if breathless.",
        "Signed by",
    ] {
        assert!(
            flat.contains(want),
            "{}: {want} missing from the PDF",
            env.name
        );
    }
    let pages = text.matches('\u{c}').count();
    assert!(
        pages >= 2,
        "{}: the long summary should take more than one page",
        env.name
    );
    for n in 1..=pages {
        let t = pdf_text(&file, Some(n));
        assert!(
            t.contains(&nhs) && t.contains(&dob),
            "{}: page {n} lacks the identifiers: {t}",
            env.name
        );
        assert!(
            t.contains(&format!("Page {n} of {pages}")),
            "{}: page {n}: {t}",
            env.name
        );
    }
}

#[test]
fn discharge_summary_prefilled_edited_signed_and_read_as_pdf() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
