//! Issue 18's chain end to end with the real peers, through the real binary
//! on both backends (`serve --demo` with `--mesh-*`/`--smtp-*` pointing at
//! `scripts/with-peers.sh`'s mesh-sandbox and SMTP sink):
//!
//! * two demo in-patients of the Watford site are chosen from the record
//!   itself: one whose practice's first route (its `Organization.endpoint`
//!   read over FHIR) is a MESH mailbox, one whose practice has email only;
//! * dr.watford, signed in over HTTP, discharges each (the ADT discharge
//!   form) and then starts, writes and signs the discharge summary (the pages of
//!   `wardline-web/src/discharge.rs`); signing queues the delivery;
//! * `wardline transfers send --now` (or the serve job, whichever runs
//!   first) delivers: the test, as the practice's MESH mailbox, lists its
//!   inbox through the sandbox's MESH API v2 (authorisation header from
//!   `transfers::mesh::auth_header`), downloads the message, checks it is a
//!   FHIR document Bundle whose first entry is the signed Composition
//!   (373942005) for that patient and admission, holding the Patient with
//!   their NHS number, and acknowledges it; the next send run makes the
//!   `Communication` `completed` with `received` (read over FHIR);
//! * the email-only practice's summary arrives at the SMTP sink addressed
//!   to the practice, the PDF attached, and that attachment is a PDF whose
//!   text (`pdftotext`) carries the NHS number;
//! * `/ui/discharge-summaries/{id}/pdf` is rendered to a PNG by `pdftoppm
//!   -png -r 50 -f 1 -l 1` (signature and IHDR width/height checked) and
//!   `pdftotext` reads the NHS number back.
//!
//! The routing sends one route per delivery (the first that works, in the
//! practice's order), so a MESH practice gets no email copy; the email
//! half is proved with the practice that has no MESH.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use reqwest::blocking::Client;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_workflow::transfers::mesh::auth_header;
use wardline_workflow::transfers::peers;

use crate::common::{Env, Server};
use crate::ui::{browser, csrf, sign_in};

const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
const ROUTE: &str = "https://fhir.wardline.invalid/CodeSystem/endpoint-connection-type";

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

/// The first non-empty option of the select `id`.
pub(crate) fn first_option(html: &str, id: &str) -> String {
    let at = html
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no select {id} in {html}"));
    let select = &html[at..html[at..].find("</select>").map_or(html.len(), |e| at + e)];
    select
        .split(r#"<option value=""#)
        .skip(1)
        .filter_map(|o| o.split('"').next())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("no option in select {id}: {select}"))
        .to_owned()
}

fn delivery<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["extension"]
        .as_array()?
        .iter()
        .flat_map(|e| e["extension"].as_array().into_iter().flatten())
        .find(|e| e["url"] == name)
        .and_then(|e| {
            e["valueString"]
                .as_str()
                .or_else(|| e["valueCode"].as_str())
        })
}

fn nhs_number(patient: &Value) -> Option<String> {
    patient["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == NHS_NUMBER)
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned)
}

/// An in-patient of the Watford site with their registered practice and
/// its first delivery route.
struct Inpatient {
    patient: String,
    encounter: String,
    practice: String,
    /// `mesh`, `email`, or `email-only` (email first and no MESH route).
    kind: String,
    /// The first route's address (`mesh://{mailbox}`, `mailto:…`).
    address: String,
}

fn inpatients(s: &Server) -> Vec<Inpatient> {
    let mut out = Vec::new();
    for e in s.search_all("Encounter?status=in-progress&class=IMP&_count=200") {
        let on_watford = e["location"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["location"]["reference"].as_str())
            .any(|l| l.starts_with("Location/watford-"));
        if !on_watford {
            continue;
        }
        let patient = e["subject"]["reference"]
            .as_str()
            .unwrap()
            .trim_start_matches("Patient/")
            .to_owned();
        let p = s.get(&format!("Patient/{patient}")).body;
        let Some(practice) = p["generalPractitioner"][0]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Organization/"))
        else {
            continue;
        };
        let org = s.get(&format!("Organization/{practice}")).body;
        let routes: Vec<(String, String)> = org["endpoint"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["reference"].as_str())
            .map(|r| s.get(r).body)
            .filter(|ep| ep["status"] == "active" && ep["connectionType"]["system"] == ROUTE)
            .map(|ep| {
                (
                    ep["connectionType"]["code"].as_str().unwrap().to_owned(),
                    ep["address"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let Some((kind, address)) = routes.first() else {
            continue;
        };
        let kind = if routes.iter().any(|(k, _)| k == "mesh") {
            kind.clone()
        } else {
            "email-only".to_owned()
        };
        out.push(Inpatient {
            patient,
            encounter: e["id"].as_str().unwrap().to_owned(),
            practice: practice.to_owned(),
            kind,
            address: address.clone(),
        });
    }
    out
}

/// dr.watford discharges the patient over the ADT form, then starts,
/// writes and signs the admission's discharge summary and reads its PDF
/// (after the discharge: the recent-encounter relationship); the
/// Composition id and the PDF.
pub(crate) fn discharge_and_sign(
    s: &Server,
    env: &Env,
    doctor: &Client,
    enc: &str,
) -> (String, Vec<u8>) {
    let root = s.root.as_str();
    // The patient leaves first; the treating team keeps its relationship
    // with them for the recent-encounter window (issue 18: access), so the
    // summary is written and signed after the discharge, as on the ward.
    let form = page(doctor, &format!("{root}/ui/encounters/{enc}/discharge"));
    let destination = first_option(&form, "destination");
    let method = first_option(&form, "method");
    let r = post(
        doctor,
        root,
        &format!("/ui/encounters/{enc}/discharge"),
        &[("destination", &destination), ("method", &method)],
    );
    assert_eq!(
        r.status(),
        303,
        "{}: discharge: {}",
        env.name,
        r.text().unwrap()
    );
    let first = doctor
        .get(format!("{root}/ui/encounters/{enc}/discharge-summary"))
        .send()
        .unwrap();
    let id = if first.status() == 303 {
        location(&first)
            .trim_start_matches("/ui/discharge-summaries/")
            .to_owned()
    } else {
        assert_eq!(first.status(), 200, "{}", env.name);
        let html = first.text().unwrap();
        assert!(
            html.contains("data-testid=\"start-summary\""),
            "{}: {html}",
            env.name
        );
        let r = post(
            doctor,
            root,
            &format!("/ui/encounters/{enc}/discharge-summary"),
            &[],
        );
        assert_eq!(
            r.status(),
            303,
            "{}: start: {}",
            env.name,
            r.text().unwrap()
        );
        location(&r)
            .trim_start_matches("/ui/discharge-summaries/")
            .trim_end_matches("/edit")
            .to_owned()
    };
    let r = post(
        doctor,
        root,
        &format!("/ui/discharge-summaries/{id}/edit"),
        &[
            (
                "clinical-summary",
                "Admitted with community acquired pneumonia; treated with antibiotics and recovered.",
            ),
            ("information-given", "Told to return if breathless."),
            ("plan", "GP: please repeat the chest X-ray in six weeks."),
        ],
    );
    assert_eq!(r.status(), 303, "{}: edit: {}", env.name, r.text().unwrap());
    let r = post(
        doctor,
        root,
        &format!("/ui/discharge-summaries/{id}/sign"),
        &[],
    );
    assert_eq!(r.status(), 303, "{}: sign: {}", env.name, r.text().unwrap());
    // The signed PDF, while the doctor may still read it.
    let r = doctor
        .get(format!("{root}/ui/discharge-summaries/{id}/pdf"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", env.name);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().unwrap().to_vec();
    (id, pdf)
}

/// The delivery signing queued for the admission.
fn communication(s: &Server, env: &Env, enc: &str) -> Value {
    let found: Vec<Value> = s
        .search_all(&format!("Communication?encounter=Encounter/{enc}"))
        .into_iter()
        .filter(|c| {
            c["payload"][0]["contentReference"]["reference"]
                .as_str()
                .is_some_and(|r| r.starts_with("DocumentReference/"))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{}: deliveries of {enc}: {found:?}",
        env.name
    );
    found.into_iter().next().unwrap()
}

fn pdf_text(path: &Path) -> String {
    let out = Command::new("pdftotext")
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

/// Page 1 rendered by `pdftoppm -png -r 50 -f 1 -l 1`: (width, height)
/// read from the PNG's IHDR chunk.
fn first_page_png(pdf: &Path, dir: &Path) -> (u32, u32) {
    let prefix = dir.join("page");
    let out = Command::new("pdftoppm")
        .args(["-png", "-r", "50", "-f", "1", "-l", "1"])
        .arg(pdf)
        .arg(&prefix)
        .output()
        .expect("pdftoppm (Debian poppler-utils) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pdftoppm names it page-1.png or page-01.png by the page count.
    let png = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("page-") && n.ends_with(".png"))
        })
        .expect("pdftoppm wrote a PNG");
    let bytes = std::fs::read(png).unwrap();
    assert!(bytes.len() > 33, "a PNG of {} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "the PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "IHDR first");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

/// The base64 body of the `application/pdf` part of a MIME message.
fn pdf_attachment(mail: &str) -> Vec<u8> {
    let at = mail
        .find("Content-Type: application/pdf")
        .unwrap_or_else(|| panic!("no PDF part in {mail}"));
    let part = &mail[at..];
    let body_at = part
        .find("\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| part.find("\n\n").map(|i| i + 2))
        .expect("the part's body");
    let body: String = part[body_at..]
        .lines()
        .take_while(|l| !l.starts_with("--") && !l.trim().is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("the PDF part is base64")
}

struct Peers {
    mesh_url: String,
    key: String,
    smtp_host: String,
    smtp_port: String,
    smtp_dir: std::path::PathBuf,
}

impl Peers {
    fn delivery_args(&self) -> Vec<String> {
        [
            "--mesh-url",
            &self.mesh_url,
            "--mesh-mailbox",
            "X26ABC1",
            "--mesh-password",
            "password",
            "--mesh-shared-key",
            &self.key,
            "--smtp-host",
            &self.smtp_host,
            "--smtp-port",
            &self.smtp_port,
            "--smtp-security",
            "none",
            "--smtp-from",
            "discharges@watford-trust.nhs.net",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    fn send(&self, env: &Env, when: OffsetDateTime) -> String {
        let now = when.format(&Rfc3339).unwrap();
        let mut args = vec!["transfers", "send", "--now", now.as_str()];
        let d = self.delivery_args();
        args.extend(d.iter().map(String::as_str));
        env.cli(&args)
    }

    /// A MESH request as `mailbox` (password "password", the sandbox's).
    fn mesh(
        &self,
        rb: reqwest::blocking::RequestBuilder,
        mailbox: &str,
    ) -> reqwest::blocking::Response {
        let auth = auth_header(
            mailbox,
            "password",
            &self.key,
            &uuid::Uuid::new_v4().to_string(),
            1,
            OffsetDateTime::now_utc(),
        );
        rb.header("authorization", auth)
            .header("accept", "application/vnd.mesh.v2+json")
            .send()
            .unwrap()
    }
}

fn scenario(env: &Env, peers: &Peers) {
    let mut args = vec!["--demo".to_owned()];
    args.extend(peers.delivery_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = env.start_with(&args);
    let root = s.root.clone();

    let all = inpatients(&s);
    let by_mesh = all
        .iter()
        .find(|i| i.kind == "mesh" && i.address.starts_with("mesh://"))
        .unwrap_or_else(|| panic!("{}: no Watford in-patient at a MESH practice", env.name));
    let by_email = all
        .iter()
        .find(|i| i.kind == "email-only")
        .unwrap_or_else(|| {
            panic!(
                "{}: no Watford in-patient at an email-only practice",
                env.name
            )
        });
    let mailbox = by_mesh.address.trim_start_matches("mesh://").to_owned();

    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");

    // 1. Discharged, the summary written and signed, for both patients.
    let (comp_mesh, pdf_mesh) = discharge_and_sign(&s, env, &doctor, &by_mesh.encounter);
    let (comp_email, _) = discharge_and_sign(&s, env, &doctor, &by_email.encounter);
    for (comp, who) in [(&comp_mesh, by_mesh), (&comp_email, by_email)] {
        let c = s.get(&format!("Composition/{comp}")).body;
        assert_eq!(c["status"], "final", "{}: {c}", env.name);
        assert_eq!(
            s.get(&format!("Encounter/{}", who.encounter)).body["status"],
            "finished",
            "{}: the admission is discharged",
            env.name
        );
    }

    // 2. Sent (by the CLI run, or the serve job if it ran first).
    let c_mesh = communication(&s, env, &by_mesh.encounter);
    let c_email = communication(&s, env, &by_email.encounter);
    let id_mesh = c_mesh["id"].as_str().unwrap().to_owned();
    let id_email = c_email["id"].as_str().unwrap().to_owned();
    let out = peers.send(env, OffsetDateTime::now_utc());
    let c = s.get(&format!("Communication/{id_mesh}")).body;
    assert_eq!(c["status"], "in-progress", "{}: {c}\n{out}", env.name);
    assert_eq!(
        c["recipient"][0]["reference"],
        format!("Organization/{}", by_mesh.practice)
    );
    assert_eq!(delivery(&c, "route"), Some("mesh"), "{}: {c}", env.name);
    let mid = delivery(&c, "meshMessageId")
        .expect("the MESH message id is recorded")
        .to_owned();

    // The practice lists its inbox, downloads the message, reads it.
    let http = reqwest::blocking::Client::new();
    let url = &peers.mesh_url;
    let inbox = peers.mesh(
        http.get(format!("{url}/messageexchange/{mailbox}/inbox")),
        &mailbox,
    );
    assert!(
        inbox.status().is_success(),
        "{}: inbox {}",
        env.name,
        inbox.status()
    );
    let inbox: Value = inbox.json().unwrap();
    assert!(
        inbox["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m == mid.as_str())),
        "{}: {mid} not in {mailbox}'s inbox: {inbox}",
        env.name
    );
    let got = peers.mesh(
        http.get(format!("{url}/messageexchange/{mailbox}/inbox/{mid}")),
        &mailbox,
    );
    assert!(
        got.status().is_success(),
        "{}: download {}",
        env.name,
        got.status()
    );
    let doc: Value =
        serde_json::from_slice(&got.bytes().unwrap()).expect("the MESH message is JSON");
    assert_eq!(doc["resourceType"], "Bundle", "{}", env.name);
    assert_eq!(doc["type"], "document", "{}", env.name);
    let entries = doc["entry"].as_array().expect("the Bundle's entries");
    let comp = &entries[0]["resource"];
    assert_eq!(comp["resourceType"], "Composition", "{}", env.name);
    assert_eq!(comp["id"], comp_mesh.as_str(), "{}", env.name);
    assert_eq!(comp["status"], "final", "{}", env.name);
    assert!(
        comp["type"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["system"] == "http://snomed.info/sct" && c["code"] == "373942005"),
        "{}: {comp}",
        env.name
    );
    let resolve = |reference: &Value| -> Value {
        let r = reference.as_str().expect("a reference");
        entries
            .iter()
            .find(|e| e["fullUrl"] == r)
            .map(|e| e["resource"].clone())
            .unwrap_or_else(|| panic!("{r} is not in the document"))
    };
    let patient = resolve(&comp["subject"]["reference"]);
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["id"], by_mesh.patient.as_str(), "{}", env.name);
    let stored = s.get(&format!("Patient/{}", by_mesh.patient)).body;
    let nhs = nhs_number(&stored).expect("a demo patient has an NHS number");
    assert_eq!(nhs_number(&patient).as_deref(), Some(nhs.as_str()));
    let encounter = resolve(&comp["encounter"]["reference"]);
    assert_eq!(encounter["resourceType"], "Encounter");
    assert_eq!(encounter["id"], by_mesh.encounter.as_str(), "{}", env.name);

    // Acknowledged; the next run records the practice's receipt.
    let ack = peers.mesh(
        http.put(format!(
            "{url}/messageexchange/{mailbox}/inbox/{mid}/status/acknowledged"
        )),
        &mailbox,
    );
    assert!(
        ack.status().is_success(),
        "{}: ack {}",
        env.name,
        ack.status()
    );
    let out = peers.send(env, OffsetDateTime::now_utc() + time::Duration::minutes(1));
    let c = s.get(&format!("Communication/{id_mesh}")).body;
    assert_eq!(c["status"], "completed", "{}: {c}\n{out}", env.name);
    assert!(
        c["received"].is_string() && c["sent"].is_string(),
        "{}: {c}",
        env.name
    );

    // 3. The practice without MESH: by email, the PDF attached.
    let c = s.get(&format!("Communication/{id_email}")).body;
    assert_eq!(c["status"], "completed", "{}: {c}", env.name);
    assert_eq!(delivery(&c, "route"), Some("email"), "{}: {c}", env.name);
    let to = by_email.address.trim_start_matches("mailto:");
    let marker = format!("Communication/{id_email}");
    let mail = std::fs::read_dir(&peers.smtp_dir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find(|m| m.contains(&marker))
        .unwrap_or_else(|| panic!("{}: no email for {marker}", env.name));
    assert!(
        mail.contains(&format!("X-Envelope-To: {to}")),
        "{}: {mail}",
        env.name
    );
    let email_patient = s.get(&format!("Patient/{}", by_email.patient)).body;
    let email_nhs = nhs_number(&email_patient).expect("an NHS number");
    let dir = tempfile::tempdir().unwrap();
    let attached = dir.path().join("attached.pdf");
    let pdf = pdf_attachment(&mail);
    assert!(
        pdf.starts_with(b"%PDF-"),
        "{}: the attachment is a PDF",
        env.name
    );
    std::fs::write(&attached, &pdf).unwrap();
    let flat = |t: String| t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat(pdf_text(&attached)).contains(&email_nhs),
        "{}: the emailed PDF lacks the NHS number",
        env.name
    );

    // 4. The signed summary's PDF: page 1 as an image, the NHS number read back.
    let file = dir.path().join("summary.pdf");
    std::fs::write(&file, &pdf_mesh).unwrap();
    let png_dir = tempfile::tempdir().unwrap();
    let (w, h) = first_page_png(&file, png_dir.path());
    assert!(w > 0 && h > 0, "{}: a {w}x{h} image", env.name);
    let text = flat(pdf_text(&file));
    assert!(
        text.contains(&nhs),
        "{}: NHS number {nhs} not read back from the PDF: {text}",
        env.name
    );
}

#[test]
fn discharge_summary_signed_over_http_reaches_the_gp_by_mesh_and_email() {
    let (Some((mesh_url, key)), Some((smtp_host, smtp_port, smtp_dir))) =
        (peers::mesh(), peers::smtp())
    else {
        return;
    };
    let peers = Peers {
        mesh_url,
        key,
        smtp_host,
        smtp_port: smtp_port.to_string(),
        smtp_dir,
    };
    scenario(&Env::sqlite(), &peers);
    if let Some(pg) = Env::postgres() {
        scenario(&pg, &peers);
    }
}
