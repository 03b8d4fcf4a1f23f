//! Transfers of care through the real binary, on both backends: a signed
//! discharge summary (written through the FHIR API) is queued and sent by
//! `wardline transfers send` to the MESH sandbox, the practice (mailbox
//! X26ABC2) downloads and acknowledges it, and the Communication read over
//! FHIR shows it `completed` with `received`; with MESH down the second
//! summary goes by email and arrives at the SMTP server with its PDF; a
//! discharge 25 hours ago without a summary sent is raised as overdue, and
//! the dashboard shows it. The peers are `scripts/with-peers.sh`'s (skipped
//! without them, failing with `WARDLINE_REQUIRE_PEERS=1`).

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_workflow::transfers::mesh::auth_header;
use wardline_workflow::transfers::peers;

use crate::common::{self, Env, Server};
use crate::ui::{browser, sign_in};

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn put(s: &Server, path: &str, body: Value) {
    let r = s.put(path, &body);
    assert!(r.is_success(), "PUT {path}: {}", r.brief());
}

/// A patient registered at gp-e82001 (demo routes: MESH X26ABC2, then
/// email e82001.gp@nhs.net), discharged at `end`, with a signed summary.
fn discharged_with_summary(s: &Server, n: &str, end: &str) {
    put(
        s,
        &format!("Patient/xfer-p{n}"),
        json!({"resourceType": "Patient", "id": format!("xfer-p{n}"),
        "name": [{"family": "Transfer", "given": [format!("Test{n}")]}],
        "generalPractitioner": [{"reference": "Organization/gp-e82001"}]}),
    );
    put(
        s,
        &format!("Encounter/xfer-e{n}"),
        json!({"resourceType": "Encounter", "id": format!("xfer-e{n}"), "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": format!("Patient/xfer-p{n}")},
        "serviceType": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/UKCore-TreatmentFunction", "code": "300", "display": "General Internal Medicine"}]},
        "location": [{"location": {"reference": "Location/watford-w1", "display": "Ward 1"}, "status": "completed"}],
        "period": {"start": "2026-11-20T09:00:00Z", "end": end}}),
    );
    put(
        s,
        &format!("Bundle/xfer-doc{n}"),
        json!({"resourceType": "Bundle", "id": format!("xfer-doc{n}"), "type": "document",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:2b1f0c3e-1111-4000-8000-00000000000{n}")},
        "timestamp": end,
        "entry": [{"fullUrl": format!("urn:uuid:2b1f0c3e-2222-4000-8000-00000000000{n}"),
            "resource": {"resourceType": "Composition", "status": "final",
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005"}]},
            "subject": {"reference": format!("Patient/xfer-p{n}")}, "date": end,
            "author": [{"display": "Dr Test"}], "title": "Discharge summary"}}]}),
    );
    put(
        s,
        &format!("DocumentReference/xfer-dr{n}"),
        json!({"resourceType": "DocumentReference", "id": format!("xfer-dr{n}"), "status": "current",
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005", "display": "Discharge summary"}]},
        "subject": {"reference": format!("Patient/xfer-p{n}")}, "date": end,
        "context": {"encounter": [{"reference": format!("Encounter/xfer-e{n}")}]},
        "content": [
            {"attachment": {"contentType": "application/fhir+json", "url": format!("Bundle/xfer-doc{n}")}},
            {"attachment": {"contentType": "application/pdf", "data": "JVBERi0xLjQKJSBXYXJkbGluZSBlMmUgUERGCg=="}}]}),
    );
}

fn comm_id(out: &str, what: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{what}: Communication/")))
        .unwrap_or_else(|| panic!("no '{what}' line in: {out}"))
        .trim()
        .to_owned()
}

fn scenario(env: &Env, mesh: &(String, String), smtp: &(String, u16, std::path::PathBuf)) {
    let s = env.start_with(&["--demo"]);
    let now = OffsetDateTime::now_utc();
    let ended = now - time::Duration::hours(3);
    discharged_with_summary(&s, "1", &at(ended));
    discharged_with_summary(&s, "2", &at(ended));
    let (url, key) = mesh;
    let (host, port, dir) = smtp;
    let port = port.to_string();
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let send = |mesh_url: &str, when: OffsetDateTime| {
        env.cli(&[
            "transfers",
            "send",
            "--now",
            &at(when),
            "--mesh-url",
            mesh_url,
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
            "discharges@watford-trust.nhs.net",
            "--transfer-attempts",
            "1",
        ])
    };

    // 1. Over MESH, acknowledged by the practice.
    let q = env.cli(&[
        "transfers",
        "queue",
        "--document",
        "DocumentReference/xfer-dr1",
        "--now",
        &at(now),
    ]);
    let c1 = comm_id(&q, "queued");
    let out = send(url, now);
    assert_eq!(comm_id(&out, "sent"), c1, "{}: {out}", env.name);
    let c = s.get(&format!("Communication/{c1}")).body;
    assert_eq!(c["status"], "in-progress", "{}: {c}", env.name);
    assert_eq!(c["recipient"][0]["reference"], "Organization/gp-e82001");
    let mid = c["extension"][0]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "meshMessageId")
        .and_then(|e| e["valueString"].as_str())
        .expect("the MESH message id is recorded")
        .to_owned();
    let http = reqwest::blocking::Client::new();
    let auth = || {
        auth_header(
            "X26ABC2",
            "password",
            key,
            &uuid::Uuid::new_v4().to_string(),
            1,
            OffsetDateTime::now_utc(),
        )
    };
    let got = http
        .get(format!("{url}/messageexchange/X26ABC2/inbox/{mid}"))
        .header("authorization", auth())
        .header("accept", "application/vnd.mesh.v2+json")
        .send()
        .unwrap();
    assert!(
        got.status().is_success(),
        "{}: download {}",
        env.name,
        got.status()
    );
    let doc: Value = got.json().unwrap();
    assert_eq!(doc["id"], "xfer-doc1");
    let ack = http
        .put(format!(
            "{url}/messageexchange/X26ABC2/inbox/{mid}/status/acknowledged"
        ))
        .header("authorization", auth())
        .header("accept", "application/vnd.mesh.v2+json")
        .send()
        .unwrap();
    assert!(
        ack.status().is_success(),
        "{}: ack {}",
        env.name,
        ack.status()
    );
    let later = now + time::Duration::minutes(1);
    let out = send(url, later);
    assert_eq!(comm_id(&out, "acknowledged"), c1, "{}: {out}", env.name);
    let c = s.get(&format!("Communication/{c1}")).body;
    assert_eq!(c["status"], "completed", "{}: {c}", env.name);
    assert!(c["received"].is_string() && c["sent"].is_string(), "{c}");

    // 2. MESH down: the fallback route, email, with the PDF attached.
    let q = env.cli(&[
        "transfers",
        "queue",
        "--document",
        "DocumentReference/xfer-dr2",
        "--now",
        &at(now),
    ]);
    let c2 = comm_id(&q, "queued");
    let out = send(&dead, now);
    assert_eq!(comm_id(&out, "retrying"), c2, "{}: {out}", env.name);
    let out = send(&dead, now);
    assert_eq!(comm_id(&out, "sent"), c2, "{}: {out}", env.name);
    let c = s.get(&format!("Communication/{c2}")).body;
    assert_eq!(c["status"], "completed", "{}: {c}", env.name);
    let marker = format!("Communication/{c2}");
    let mail = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find(|m| m.contains(&marker))
        .unwrap_or_else(|| panic!("{}: no email for {marker}", env.name));
    assert!(mail.contains("X-Envelope-To: e82001.gp@nhs.net"), "{mail}");
    assert!(
        mail.contains("discharge-summary.pdf") && mail.contains("application/pdf"),
        "{mail}"
    );

    // 3. A discharge 25 hours ago with nothing sent: overdue, on the dashboard.
    discharged_with_summary(&s, "3", &at(now - time::Duration::hours(25)));
    let out = env.cli(&["transfers", "overdue", "--now", &at(now)]);
    assert!(out.contains("overdue: Task/"), "{}: {out}", env.name);
    let again = env.cli(&["transfers", "overdue", "--now", &at(now)]);
    assert!(again.contains("nothing overdue"), "{}: {again}", env.name);
    let tasks = common::entries(
        &s.get("Task?code=https://fhir.wardline.invalid/CodeSystem/task|discharge-summary-overdue&encounter=Encounter/xfer-e3").body,
    );
    assert_eq!(tasks.len(), 1, "{}", env.name);
    let ui = browser();
    sign_in(env, &s.root, &ui, "dr.watford");
    let page = ui
        .get(format!("{}/ui/transfers", s.root))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains(r#"data-encounter="Encounter/xfer-e3""#),
        "{}: {page}",
        env.name
    );
    assert!(page.contains("data-testid=\"overdue-row\""), "{}", env.name);
    // The figures are the trust's; dr.watford may read this patient (an
    // encounter on his ward), so the row names them.
    assert!(page.contains("TRANSFER, Test3"), "{}: {page}", env.name);
}

#[test]
fn discharge_summaries_go_to_the_gp_over_mesh_or_email_and_overdue_ones_are_raised() {
    let (Some(mesh), Some(smtp)) = (peers::mesh(), peers::smtp()) else {
        return;
    };
    scenario(&Env::sqlite(), &mesh, &smtp);
    if let Some(pg) = Env::postgres() {
        scenario(&pg, &mesh, &smtp);
    }
}
