//! Issue 18: a patient's sharing decision is honoured on every send, over a
//! real store (SQLite always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is
//! set) and, with `scripts/with-peers.sh`, against the MESH sandbox and the
//! SMTP sink: a patient who dissented from sharing with the practice has
//! nothing sent (no route tried, nothing in the practice's MESH inbox or
//! the mail sink), the delivery is stopped with the reason, a Task asks the
//! consultant to review it, the dashboard shows it as withheld; a patient
//! who did not (or whose dissent has lapsed) is sent as before. Every
//! attempt of the job is audited naming the delivery (H-202, H-203, H-204).

mod support;

use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use wardline_core::{
    Body, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Trusted,
};
use wardline_workflow::pmi::TASK_SYSTEM;
use wardline_workflow::transfers::email::{Mailer, SmtpConfig, SmtpSecurity};
use wardline_workflow::transfers::mesh::auth_header;
use wardline_workflow::transfers::routing::{Channel, Route, set_routes};
use wardline_workflow::transfers::send::{
    Policy, Transports, consent_warning, practice_consent_warning, run,
};
use wardline_workflow::transfers::standard::compliance;
use wardline_workflow::transfers::{
    DELIVERY_WITHHELD_CODE, Kind, Outgoing, attempts, delivery_text, peers, queue,
};

const DISCHARGED: OffsetDateTime = datetime!(2026-11-30 10:00 UTC);
const T0: OffsetDateTime = datetime!(2026-11-30 13:00 UTC);

struct Backend {
    name: &'static str,
    svc: FhirService,
    /// A tag unique to this run, in each document Bundle's id (the MESH
    /// sandbox and the mail sink outlive one test).
    tag: String,
    _dir: Option<tempfile::TempDir>,
}

fn backends(test: &str) -> Vec<Backend> {
    support::stores(&format!("consent_{test}"))
        .into_iter()
        .map(|(name, store, dir)| {
            let svc =
                wardline_workflow::with_rules(FhirService::new(store, ServiceConfig::default()));
            let tag = uuid::Uuid::new_v4().simple().to_string();
            seed(&svc, &tag);
            Backend {
                name,
                svc,
                tag,
                _dir: dir,
            }
        })
        .collect()
}

fn op() -> Trusted {
    Trusted::operator("transfers-consent-test")
}

fn save(svc: &FhirService, r: Value) -> String {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    let id = tx.save(r).unwrap().id;
    tx.commit().unwrap();
    id
}

/// Patients `dissents` (who said no to sharing with the practice) and
/// `shares`, each discharged under Dr Jones with a signed summary's
/// Bundle, PDF and DocumentReference; the practice.
fn seed(svc: &FhirService, tag: &str) {
    save(
        svc,
        json!({"resourceType": "Organization", "id": "gp-c1", "name": "Canal Side Surgery", "active": true}),
    );
    save(
        svc,
        json!({"resourceType": "Practitioner", "id": "cons1", "name": [{"family": "Jones", "prefix": ["Dr"]}]}),
    );
    for p in ["dissents", "shares"] {
        save(
            svc,
            json!({"resourceType": "Patient", "id": p, "name": [{"family": p.to_uppercase(), "given": ["Sam"]}],
                "generalPractitioner": [{"reference": "Organization/gp-c1"}]}),
        );
        save(
            svc,
            json!({"resourceType": "Encounter", "id": format!("enc-{p}"), "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": format!("Patient/{p}")},
            "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
                "individual": {"reference": "Practitioner/cons1"}}],
            "period": {"start": "2026-11-27T09:00:00Z", "end": wardline_workflow::transfers::fhir_time(DISCHARGED)}}),
        );
        save(
            svc,
            json!({"resourceType": "Bundle", "id": format!("doc-{p}-{tag}"), "type": "document",
            "timestamp": "2026-11-30T12:00:00Z",
            "entry": [{"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                "resource": {"resourceType": "Composition", "status": "final",
                "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005"}]},
                "subject": {"reference": format!("Patient/{p}")}, "date": "2026-11-30T12:00:00Z",
                "author": [{"display": "Dr Jones"}], "title": "Discharge summary"}}]}),
        );
        save(
            svc,
            json!({"resourceType": "DocumentReference", "id": format!("dr-{p}"), "status": "current",
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005"}]},
            "subject": {"reference": format!("Patient/{p}")}, "date": "2026-11-30T12:00:00Z",
            "context": {"encounter": [{"reference": format!("Encounter/enc-{p}")}]},
            "content": [
                {"attachment": {"contentType": "application/fhir+json", "url": format!("Bundle/doc-{p}-{tag}")}},
                {"attachment": {"contentType": "application/pdf", "data": "JVBERi0xLjQKJSBDb25zZW50IHRlc3QK"}}]}),
        );
    }
}

/// The patient's dissent from sharing with the practice, as the consent
/// workflow records it; `period_end` makes it lapse.
fn dissent(svc: &FhirService, patient: &str, orgs: &[&str], period_end: Option<&str>) -> String {
    let mut c = wardline_core::consent::resource(
        patient,
        &wardline_core::consent::Decision::NoSharing(
            orgs.iter().map(|o| (*o).to_owned()).collect(),
        ),
        wardline_fhir::datetime::parse_range("2026-11-01T00:00:00Z")
            .unwrap()
            .0,
    );
    if let Some(end) = period_end {
        c["provision"]["period"] = json!({"start": "2026-11-01T00:00:00Z", "end": end});
    }
    save(svc, c)
}

fn outgoing(p: &str) -> Outgoing {
    Outgoing {
        kind: Kind::DischargeSummary,
        patient: format!("Patient/{p}"),
        encounter: format!("Encounter/enc-{p}"),
        document: format!("DocumentReference/dr-{p}"),
        recipient: "Organization/gp-c1".into(),
    }
}

fn get(svc: &FhirService, t: &str, id: &str) -> Value {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    let v = tx.get(t, id).unwrap().unwrap();
    tx.commit().unwrap();
    v
}

fn find(svc: &FhirService, t: &str, q: &str) -> Vec<Value> {
    let r = svc.handle(
        FhirRequest {
            method: Method::Get,
            path: vec![t.into()],
            query: q
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            headers: RequestHeaders::default(),
            body: None,
        },
        &op(),
    );
    let v = match r.body {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => panic!("no body"),
    };
    v["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect()
}

/// The job's audit events of `subtype` naming `Communication/{id}`, each
/// by the job's own agent (a system: no person as `who`).
fn job_events(svc: &FhirService, subtype: &str, id: &str) -> usize {
    let what = format!("Communication/{id}");
    find(svc, "AuditEvent", &format!("subtype={subtype}&_count=500"))
        .iter()
        .filter(|e| {
            e["entity"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|x| x["what"]["reference"] == what.as_str())
        })
        .inspect(|e| {
            assert!(
                e["agent"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| a["altId"] == "transfers-consent-test"
                        && a["who"].get("reference").is_none()),
                "the job's agent: {e}"
            );
        })
        .count()
}

fn route(svc: &FhirService, channel: Channel, address: &str) {
    set_routes(
        svc,
        &op(),
        "gp-c1",
        &[Route {
            channel,
            address: address.into(),
        }],
    )
    .unwrap();
}

#[test]
fn a_dissenting_patients_delivery_is_withheld_before_any_route_and_reviewed() {
    for b in backends("withheld") {
        let (svc, name) = (&b.svc, b.name);
        route(svc, Channel::Mesh, "X26ABC2");
        dissent(svc, "dissents", &["gp-c1"], None);
        // A dissent from another organisation, and one that has lapsed, do
        // not stop a delivery to this practice.
        dissent(svc, "shares", &["someone-else"], None);
        dissent(svc, "shares", &[], Some("2026-11-15T00:00:00Z"));

        // The pages' warning, before anything is queued.
        let w = consent_warning(svc, &op(), "Patient/dissents", "Organization/gp-c1", T0)
            .unwrap()
            .expect("a warning for the dissenting patient");
        assert!(w.contains("Canal Side Surgery"), "{name}: {w}");
        assert_eq!(
            consent_warning(svc, &op(), "Patient/shares", "Organization/gp-c1", T0).unwrap(),
            None,
            "{name}"
        );
        // The same for the registered practice (what the summary page asks).
        let w = practice_consent_warning(svc, &op(), "dissents", T0)
            .unwrap()
            .expect("a warning for the registered practice");
        assert!(w.contains("Canal Side Surgery"), "{name}: {w}");
        assert_eq!(
            practice_consent_warning(svc, &op(), "shares", T0).unwrap(),
            None,
            "{name}"
        );

        let withheld = queue(svc, &op(), &outgoing("dissents"), T0).unwrap();
        let sent = queue(svc, &op(), &outgoing("shares"), T0).unwrap();
        let transports = Transports {
            mesh: Some(peers::unreachable_mesh()),
            email: None,
        };
        let r = run(svc, &op(), &transports, Policy::default(), T0).unwrap();
        assert_eq!(r.withheld, vec![withheld.clone()], "{name}: {r:?}");
        assert_eq!(r.retrying, vec![sent.clone()], "{name}: {r:?}");

        // Withheld: stopped with the reason, no route tried.
        let c = get(svc, "Communication", &withheld);
        assert_eq!(c["status"], "stopped", "{name}");
        let reason = c["statusReason"]["text"].as_str().unwrap();
        assert!(
            reason.contains("dissented from sharing") && reason.contains("Canal Side Surgery"),
            "{name}: {reason}"
        );
        assert_eq!(attempts(&c), 0, "{name}: no attempt");
        assert!(c.get("sent").is_none(), "{name}");
        assert_eq!(delivery_text(&c, "nextAttempt"), None, "{name}");
        assert!(
            delivery_text(&c, "lastError").is_some_and(|e| e.starts_with("Withheld:")),
            "{name}: {c}"
        );
        // The shared one was tried (MESH down here).
        let s = get(svc, "Communication", &sent);
        assert_eq!(s["status"], "preparation", "{name}");
        assert_eq!(attempts(&s), 1, "{name}");

        // The team's review Task.
        let tasks = find(
            svc,
            "Task",
            &format!("code={TASK_SYSTEM}|{DELIVERY_WITHHELD_CODE}"),
        );
        assert_eq!(tasks.len(), 1, "{name}: {tasks:?}");
        let t = &tasks[0];
        assert_eq!(t["focus"]["reference"], format!("Communication/{withheld}"));
        assert_eq!(t["for"]["reference"], "Patient/dissents");
        assert_eq!(t["owner"]["reference"], "Practitioner/cons1", "{name}");
        assert_eq!(t["status"], "requested");

        // Nothing more happens to it on later runs.
        let r = run(
            svc,
            &op(),
            &transports,
            Policy::default(),
            T0 + Duration::hours(1),
        )
        .unwrap();
        assert!(r.withheld.is_empty(), "{name}: {r:?}");
        assert_eq!(
            find(
                svc,
                "Task",
                &format!("code={TASK_SYSTEM}|{DELIVERY_WITHHELD_CODE}")
            )
            .len(),
            1,
            "{name}"
        );

        // The dashboard shows it as withheld.
        let d = compliance(svc, &op(), DISCHARGED - Duration::days(1), T0).unwrap();
        assert_eq!(d.withheld.len(), 1, "{name}");
        assert!(
            d.withheld[0]["description"]
                .as_str()
                .unwrap()
                .contains("dissented"),
            "{name}: {:?}",
            d.withheld
        );
        assert!(d.failures.is_empty(), "{name}");

        // Audit: the withholding is one event of the job naming the
        // delivery; each attempt on the shared one is (claim and outcome).
        assert_eq!(
            job_events(svc, "transfers-withhold", &withheld),
            1,
            "{name}"
        );
        assert_eq!(job_events(svc, "transfers-send", &withheld), 0, "{name}");
        // Two attempts (T0, then the retry after the back-off at T0 + 1 h):
        // each a claim and a recorded outcome.
        assert_eq!(job_events(svc, "transfers-send", &sent), 4, "{name}");
    }
}

/// The practice's view of its MESH inbox: every message's body.
fn inbox_bodies(url: &str, key: &str, mailbox: &str) -> Vec<String> {
    let http = reqwest::blocking::Client::new();
    let auth = || {
        auth_header(
            mailbox,
            "password",
            key,
            &uuid::Uuid::new_v4().to_string(),
            1,
            OffsetDateTime::now_utc(),
        )
    };
    let list: Value = http
        .get(format!("{url}/messageexchange/{mailbox}/inbox"))
        .header("authorization", auth())
        .header("accept", "application/vnd.mesh.v2+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    list["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|id| {
            http.get(format!("{url}/messageexchange/{mailbox}/inbox/{id}"))
                .header("authorization", auth())
                .header("accept", "application/vnd.mesh.v2+json")
                .send()
                .unwrap()
                .text()
                .unwrap()
        })
        .collect()
}

#[test]
fn nothing_reaches_the_mesh_inbox_for_a_dissenting_patient() {
    let Some((url, key)) = peers::mesh() else {
        return;
    };
    for b in backends("mesh") {
        let (svc, name, tag) = (&b.svc, b.name, &b.tag);
        route(svc, Channel::Mesh, "X26ABC3");
        dissent(svc, "dissents", &[], None);
        let withheld = queue(svc, &op(), &outgoing("dissents"), T0).unwrap();
        let sent = queue(svc, &op(), &outgoing("shares"), T0).unwrap();
        let transports = Transports {
            mesh: Some(peers::mesh_client(&url, &key)),
            email: None,
        };
        let r = run(svc, &op(), &transports, Policy::default(), T0).unwrap();
        assert_eq!(r.sent, vec![sent.clone()], "{name}: {r:?}");
        assert_eq!(r.withheld, vec![withheld.clone()], "{name}: {r:?}");
        let bodies = inbox_bodies(&url, &key, "X26ABC3");
        assert!(
            bodies
                .iter()
                .any(|b| b.contains(&format!("doc-shares-{tag}"))),
            "{name}: the shared summary arrived ({} messages)",
            bodies.len()
        );
        assert!(
            !bodies
                .iter()
                .any(|b| b.contains(&format!("doc-dissents-{tag}"))),
            "{name}: the dissenting patient's summary reached the inbox"
        );
    }
}

#[test]
fn nothing_reaches_the_mail_server_for_a_dissenting_patient() {
    let Some((host, port, dir)) = peers::smtp() else {
        return;
    };
    for b in backends("email") {
        let (svc, name) = (&b.svc, b.name);
        route(svc, Channel::Email, "canal.side@nhs.net");
        dissent(svc, "dissents", &["gp-c1"], None);
        let withheld = queue(svc, &op(), &outgoing("dissents"), T0).unwrap();
        let sent = queue(svc, &op(), &outgoing("shares"), T0).unwrap();
        let mailer = Mailer::new(&SmtpConfig {
            host: host.clone(),
            port,
            from: "discharges@wardline-trust.nhs.net".into(),
            security: SmtpSecurity::None,
            credentials: None,
        })
        .unwrap();
        let transports = Transports {
            mesh: None,
            email: Some(mailer),
        };
        let r = run(svc, &op(), &transports, Policy::default(), T0).unwrap();
        assert_eq!(r.sent, vec![sent.clone()], "{name}: {r:?}");
        assert_eq!(r.withheld, vec![withheld.clone()], "{name}: {r:?}");
        let mail: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .collect();
        // Each email names its delivery (`Communication/{id}`, ids unique
        // across stores).
        let has = |id: &str| {
            let marker = format!("Communication/{id}");
            mail.iter().any(|m| m.contains(&marker))
        };
        assert!(has(&sent), "{name}: the shared summary was emailed");
        assert!(
            !has(&withheld),
            "{name}: the dissenting patient's was emailed"
        );
    }
}
