//! Clinic letters over real HTTP, with a real session of the demo trust,
//! on both backends:
//!
//! * a patient registered at gp-e82001 (demo routes: MESH X26ABC2, then
//!   email) with an email address, in clinic on watford-w1 (an outpatient
//!   attendance, class AMB), is listed on their clinic letters page with
//!   "Write clinic letter"; the letter started there is pre-filled (the
//!   clinic, a diagnosis, a current medicine);
//! * signing without the clinical summary is refused with the NHS error
//!   summary linking to it (422); written and signed, the Composition is
//!   `final` and two deliveries are queued in the signing transaction: to
//!   the practice and to the patient (recipient the Patient);
//! * an empty preference is refused with the error summary (422); the
//!   patient then asks for post: the amended letter (signed again, the
//!   original kept as version history) makes a print-and-post Task, shown
//!   on the print worklist and marked done there;
//! * the PDF, read back with `pdftotext`, carries the letter's headings;
//! * with the transfers peers (`scripts/with-peers.sh`), `wardline
//!   transfers send` (run once the letter is signed) delivers the GP's
//!   copy to the practice's MESH inbox and the patient's copy, with its
//!   PDF, to the SMTP server.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_workflow::transfers::mesh::auth_header;
use wardline_workflow::transfers::peers;

use crate::common::{self, Env, Server};
use crate::discharge::{page, pdf_text, post};
use crate::ui::{browser, sign_in};
use reqwest::blocking::Client;

const EMAIL: &str = "letter.patient@example.org";

fn put(s: &Server, path: &str, body: Value) {
    let r = s.put(path, &body);
    assert!(r.is_success(), "PUT {path}: {}", r.brief());
}

fn deliveries(s: &Server) -> Vec<Value> {
    common::entries(&s.get("Communication?encounter=Encounter/e2e-op").body)
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

/// The MESH sandbox (URL, shared key) and the SMTP server (host, port, mail directory).
type Peers<'a> = (&'a (String, String), &'a (String, u16, std::path::PathBuf));

fn scenario(env: &Env, peers: Option<Peers<'_>>) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    put(
        &s,
        "Patient/e2e-lp",
        json!({"resourceType": "Patient", "id": "e2e-lp", "active": true, "birthDate": "1961-04-02",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765870"}],
        "name": [{"use": "official", "family": "Letterby", "given": ["Lena"]}],
        "telecom": [{"system": "email", "value": EMAIL, "use": "home"}],
        "address": [{"line": ["4 Clarendon Road"], "city": "Watford", "postalCode": "WD17 1JA"}],
        "generalPractitioner": [{"reference": "Organization/gp-e82001"}]}),
    );
    put(
        &s,
        "Encounter/e2e-op",
        json!({"resourceType": "Encounter", "id": "e2e-op", "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
        "serviceType": {"text": "Respiratory clinic"},
        "subject": {"reference": "Patient/e2e-lp"},
        "location": [{"location": {"reference": "Location/watford-w1"}, "status": "active"}],
        "period": {"start": "2026-11-30T10:00:00Z"}}),
    );
    put(
        &s,
        "Condition/e2e-lc",
        json!({"resourceType": "Condition", "id": "e2e-lc",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "195967001", "display": "Asthma"}]},
        "subject": {"reference": "Patient/e2e-lp"}, "encounter": {"reference": "Encounter/e2e-op"}}),
    );
    put(
        &s,
        "MedicationRequest/e2e-lm",
        json!({"resourceType": "MedicationRequest", "id": "e2e-lm", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"text": "Salbutamol 100 micrograms/dose inhaler"},
        "subject": {"reference": "Patient/e2e-lp"},
        "dosageInstruction": [{"text": "Two puffs when needed"}]}),
    );
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");

    // From the patient's letters: the attendance, and the offer to write.
    let list = page(
        &doctor,
        &format!("{root}/ui/patients/e2e-lp/clinic-letters"),
    );
    assert!(
        list.contains(r#"data-encounter="e2e-op""#) && list.contains("write-letter"),
        "{}: {list}",
        env.name
    );
    assert!(list.contains(&format!("by email to {EMAIL}")), "{list}");
    let r = post(&doctor, &root, "/ui/encounters/e2e-op/clinic-letter", &[]);
    assert_eq!(r.status(), 303, "{}", env.name);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.ends_with("/edit"), "{to}");
    let id = to
        .trim_start_matches("/ui/clinic-letters/")
        .trim_end_matches("/edit")
        .to_owned();
    let view = page(&doctor, &format!("{root}/ui/clinic-letters/{id}"));
    for want in [
        "Clinic: Respiratory clinic",
        "Asthma (SNOMED CT 195967001)",
        "Salbutamol 100 micrograms/dose inhaler, Two puffs when needed",
        r#"data-status="preliminary""#,
    ] {
        assert!(view.contains(want), "{}: {want}: {view}", env.name);
    }

    // Not signed without the clinical summary.
    let r = post(
        &doctor,
        &root,
        &format!("/ui/clinic-letters/{id}/sign"),
        &[],
    );
    assert_eq!(r.status(), 422, "{}", env.name);
    let html = r.text().unwrap();
    assert!(
        html.contains("nhsuk-error-summary") && html.contains("href=\"#clinical-summary\""),
        "{html}"
    );
    let r = post(
        &doctor,
        &root,
        &format!("/ui/clinic-letters/{id}/edit"),
        &[
            (
                "clinical-summary",
                "Asthma well controlled; peak flow 420 L/min.",
            ),
            ("medications", "No changes."),
            ("information-given", "Inhaler technique reviewed."),
            ("plan", "GP: no action needed. Discharged from clinic."),
        ],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let r = post(
        &doctor,
        &root,
        &format!("/ui/clinic-letters/{id}/sign"),
        &[],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let c = s.get(&format!("Composition/{id}")).body;
    assert_eq!(c["status"], "final", "{}", env.name);
    assert_eq!(c["type"]["coding"][0]["code"], "371530004");
    let signed_version = c["meta"]["versionId"].as_str().unwrap().to_owned();
    let mut to: Vec<String> = deliveries(&s)
        .iter()
        .map(|c| c["recipient"][0]["reference"].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(
        to,
        vec!["Organization/gp-e82001", "Patient/e2e-lp"],
        "{}",
        env.name
    );
    if let Some((mesh, smtp)) = peers {
        send_to_peers(env, &s, mesh, smtp);
    }
    let view = page(&doctor, &format!("{root}/ui/clinic-letters/{id}"));
    assert!(
        view.contains(r#"data-to="Patient/e2e-lp""#),
        "{}: {view}",
        env.name
    );

    // A plain REST write cannot change the signed letter.
    let mut edit = c.clone();
    edit["title"] = json!("Changed");
    edit["section"][4]["title"] = json!("Changed");
    let r = s.put(&format!("Composition/{id}"), &edit);
    assert_eq!(r.status, 422, "{}: {}", env.name, r.brief());

    // The PDF.
    let r = doctor
        .get(format!("{root}/ui/clinic-letters/{id}/pdf"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("letter.pdf");
    std::fs::write(&file, r.bytes().unwrap()).unwrap();
    let text = pdf_text(&file, None)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for want in [
        "Clinic letter",
        "Clinic and attendance details",
        "Plan and requested actions",
        "GP: no action needed. Discharged from clinic.",
        "9434765870",
        "Signed by",
    ] {
        assert!(text.contains(want), "{}: {want}: {text}", env.name);
    }

    // The preference: none chosen is refused; then post.
    let back = format!("/ui/clinic-letters/{id}");
    let r = post(
        &doctor,
        &root,
        "/ui/patients/e2e-lp/letter-preference",
        &[("back", back.as_str())],
    );
    assert_eq!(r.status(), 422, "{}", env.name);
    assert!(r.text().unwrap().contains("href=\"#preference\""));
    let r = post(
        &doctor,
        &root,
        "/ui/patients/e2e-lp/letter-preference",
        &[("back", back.as_str()), ("preference", "post")],
    );
    assert_eq!(r.status(), 303, "{}", env.name);

    // Amended: signed again, the original kept; the patient's copy by post.
    let r = post(
        &doctor,
        &root,
        &format!("/ui/clinic-letters/{id}/amend"),
        &[
            (
                "clinical-summary",
                "Asthma well controlled; peak flow 450 L/min.",
            ),
            ("plan", "GP: no action needed. Discharged from clinic."),
        ],
    );
    let status = r.status();
    assert_eq!(status, 303, "{}: {}", env.name, r.text().unwrap());
    let c = s.get(&format!("Composition/{id}")).body;
    assert_eq!(c["status"], "amended", "{}", env.name);
    let old = s.get(&format!("Composition/{id}/_history/{signed_version}"));
    assert_eq!(old.status, 200, "{}", env.name);
    assert_eq!(old.body["status"], "final");
    assert!(old.body.to_string().contains("420 L/min"));
    let worklist = page(&doctor, &format!("{root}/ui/letter-printing"));
    let key = "data-testid=\"print-item\" data-task=\"";
    let start = worklist
        .find(key)
        .unwrap_or_else(|| panic!("{}: nothing to print: {worklist}", env.name));
    let rest = &worklist[start + key.len()..];
    let task = rest[..rest.find('"').unwrap()].to_owned();
    assert!(worklist.contains("4 Clarendon Road"), "{worklist}");
    let r = post(
        &doctor,
        &root,
        &format!("/ui/letter-printing/{task}/done"),
        &[],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let t = s.get(&format!("Task/{task}")).body;
    assert_eq!(t["status"], "completed", "{}", env.name);
    assert!(!page(&doctor, &format!("{root}/ui/letter-printing")).contains(&task));
}

/// With the peers: the GP's copy over MESH, the patient's by email.
fn send_to_peers(
    env: &Env,
    s: &Server,
    (url, key): &(String, String),
    (host, port, maildir): &(String, u16, std::path::PathBuf),
) {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let port = port.to_string();
    let out = env.cli(&[
        "transfers",
        "send",
        "--now",
        &now,
        "--mesh-url",
        url,
        "--mesh-mailbox",
        "X26ABC1",
        "--mesh-password",
        "password",
        "--mesh-shared-key",
        key,
        "--smtp-host",
        host,
        "--smtp-port",
        &port,
        "--smtp-security",
        "none",
        "--smtp-from",
        "letters@watford-trust.nhs.net",
    ]);
    let all = deliveries(s);
    let to_patient: Vec<&Value> = all
        .iter()
        .filter(|c| c["recipient"][0]["reference"] == "Patient/e2e-lp")
        .collect();
    assert_eq!(to_patient.len(), 1, "{}", env.name);
    let pc = to_patient[0];
    assert_eq!(pc["status"], "completed", "{}: {out}: {pc}", env.name);
    let marker = format!("Communication/{}", pc["id"].as_str().unwrap());
    let mail = std::fs::read_dir(maildir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find(|m| m.contains(&marker))
        .unwrap_or_else(|| panic!("{}: no email for {marker}", env.name));
    assert!(mail.contains(&format!("X-Envelope-To: {EMAIL}")), "{mail}");
    assert!(
        mail.contains("clinic-letter.pdf") && mail.contains("application/pdf"),
        "{mail}"
    );
    assert!(!mail.contains("fhir+json"), "a patient gets the PDF only");
    let http = Client::new();
    for gp in all
        .iter()
        .filter(|c| c["recipient"][0]["reference"] == "Organization/gp-e82001")
    {
        assert_eq!(gp["status"], "in-progress", "{}: {out}: {gp}", env.name);
        let mid = gp["extension"][0]["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == "meshMessageId")
            .and_then(|e| e["valueString"].as_str())
            .expect("the MESH message id is recorded")
            .to_owned();
        let got = http
            .get(format!("{url}/messageexchange/X26ABC2/inbox/{mid}"))
            .header(
                "authorization",
                auth_header(
                    "X26ABC2",
                    "password",
                    key,
                    &uuid::Uuid::new_v4().to_string(),
                    1,
                    OffsetDateTime::now_utc(),
                ),
            )
            .header("accept", "application/vnd.mesh.v2+json")
            .send()
            .unwrap();
        assert!(got.status().is_success(), "{}: {}", env.name, got.status());
        let doc: Value = got.json().unwrap();
        assert_eq!(doc["type"], "document", "{}", env.name);
        assert_eq!(
            doc["entry"][0]["resource"]["type"]["coding"][0]["code"],
            "371530004"
        );
    }
}

#[test]
fn clinic_letters_written_signed_copied_to_the_gp_and_the_patient_and_amended() {
    let mesh = peers::mesh();
    let smtp = peers::smtp();
    let both = mesh.as_ref().zip(smtp.as_ref());
    scenario(&Env::sqlite(), both);
    if let Some(pg) = Env::postgres() {
        scenario(&pg, both);
    }
}
