//! Transfers of care over a real store (SQLite always, PostgreSQL too when
//! `WARDLINE_TEST_PG_URL` is set): routing per practice, the delivery
//! lifecycle, retries and the fallback route with a moved clock, MESH
//! delivery and acknowledgement against the MESH sandbox and email to a real
//! SMTP server (`scripts/with-peers.sh`), and the 24-hour standard.

mod support;

use serde_json::{Value, json};
use support::Backend;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use wardline_core::access::{Operation, forbidden};
use wardline_core::{Access, Agent, FhirService, Op, ResourceView, Trusted};
use wardline_fhir::FhirError;
use wardline_store::Reader;
use wardline_workflow::pmi::TASK_SYSTEM;
use wardline_workflow::transfers::email::{Mailer, SmtpConfig, SmtpSecurity};
use wardline_workflow::transfers::mesh::auth_header;
use wardline_workflow::transfers::routing::{Channel, Route, routes_in, set_routes};
use wardline_workflow::transfers::send::{Policy, Transports, run};
use wardline_workflow::transfers::standard::{OVERDUE_CODE, State, compliance, raise_overdue};
use wardline_workflow::transfers::{
    DELIVERY_FAILURE_CODE, Kind, Outgoing, TransfersError, attempts, delivery_text, peers, queue,
};

fn backends(test: &str) -> Vec<Backend> {
    support::backends(&format!("xfer_{test}"), wardline_workflow::with_rules, seed)
}

fn op() -> Trusted {
    Trusted::operator("transfers-test")
}

const DISCHARGED: OffsetDateTime = datetime!(2026-11-30 10:00 UTC);

fn put(svc: &FhirService, r: Value) {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    tx.save(r).unwrap();
    tx.commit().unwrap();
}

/// A discharged patient, a consultant, a ward and bed, a GP practice, and
/// a signed discharge summary's document Bundle, PDF and DocumentReference
/// for each encounter (what signing stores; a `final` summary Composition
/// itself is made only by `documents::discharge::sign_in`, which the
/// discharge tests drive).
fn seed(svc: &FhirService) {
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Smith", "given": ["Ann"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Practitioner", "id": "cons1", "name": [{"family": "Jones", "given": ["Huw"], "prefix": ["Dr"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Location", "id": "ward-a", "name": "Ash Ward", "status": "active",
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "wa"}]}}),
    );
    put(
        svc,
        json!({"resourceType": "Location", "id": "bed-a1", "name": "Bed 1", "status": "active",
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]},
        "partOf": {"reference": "Location/ward-a"}}),
    );
    put(
        svc,
        json!({"resourceType": "Organization", "id": "gp-x1", "name": "Riverside Medical Centre", "active": true,
        "type": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/organisation-role", "code": "76", "display": "GP PRACTICE"}]}]}),
    );
    for (enc, end) in [("e1", DISCHARGED), ("e2", DISCHARGED + Duration::hours(2))] {
        put(
            svc,
            json!({"resourceType": "Encounter", "id": enc, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
                "individual": {"reference": "Practitioner/cons1"}}],
            "serviceType": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/UKCore-TreatmentFunction", "code": "300", "display": "General Internal Medicine"}]},
            "period": {"start": "2026-11-27T09:00:00Z", "end": wardline_workflow::transfers::fhir_time(end)},
            "location": [{"location": {"reference": "Location/bed-a1", "display": "Bed 1"}, "status": "completed"}]}),
        );
        put(
            svc,
            json!({"resourceType": "Bundle", "id": format!("doc-{enc}"), "type": "document",
            "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:7d5c7a4e-0000-4000-8000-00000000000{}", &enc[1..])},
            "timestamp": "2026-11-30T12:00:00Z",
            "entry": [{"fullUrl": format!("urn:uuid:7d5c7a4e-0000-4000-8000-10000000000{}", &enc[1..]),
                "resource": {"resourceType": "Composition", "status": "final",
                "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005"}]},
                "subject": {"reference": "Patient/p1"}, "date": "2026-11-30T12:00:00Z",
                "author": [{"display": "Dr Huw Jones"}], "title": "Discharge summary"}}]}),
        );
        put(
            svc,
            json!({"resourceType": "DocumentReference", "id": format!("dr-{enc}"), "status": "current",
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005", "display": "Discharge summary"}]},
            "subject": {"reference": "Patient/p1"}, "date": "2026-11-30T12:00:00Z",
            "context": {"encounter": [{"reference": format!("Encounter/{enc}")}]},
            "content": [
                {"attachment": {"contentType": "application/fhir+json", "url": format!("Bundle/doc-{enc}")}},
                {"attachment": {"contentType": "application/pdf", "data": "JVBERi0xLjQKJSBXYXJkbGluZSB0ZXN0IFBERgo="}}]}),
        );
    }
}

fn outgoing(enc: &str) -> Outgoing {
    Outgoing {
        kind: Kind::DischargeSummary,
        patient: "Patient/p1".into(),
        encounter: format!("Encounter/{enc}"),
        document: format!("DocumentReference/dr-{enc}"),
        recipient: "Organization/gp-x1".into(),
    }
}

fn comm(svc: &FhirService, id: &str) -> Value {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    let c = tx.get("Communication", id).unwrap().unwrap();
    tx.commit().unwrap();
    c
}

fn tasks(svc: &FhirService, code: &str) -> Vec<Value> {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    let t = tx
        .find("Task", &format!("code={TASK_SYSTEM}|{code}"))
        .unwrap();
    tx.commit().unwrap();
    t
}

fn routes(svc: &FhirService) {
    set_routes(
        svc,
        &op(),
        "gp-x1",
        &[
            Route {
                channel: Channel::Mesh,
                address: "x26abc2".into(),
            },
            Route {
                channel: Channel::Email,
                address: "riverside.gp@nhs.net".into(),
            },
        ],
    )
    .unwrap();
}

#[test]
fn routing_is_the_practices_endpoints_in_order() {
    for b in backends("routing") {
        let svc = &b.svc;
        routes(svc);
        let access = op();
        let mut tx = svc.begin(&access).unwrap();
        let r = routes_in(&mut tx, "gp-x1").unwrap();
        tx.commit().unwrap();
        assert_eq!(r.len(), 2, "{}", b.name);
        assert_eq!(
            (r[0].channel, r[0].address.as_str()),
            (Channel::Mesh, "X26ABC2")
        );
        assert_eq!(r[1].channel, Channel::Email);
        // Email first, MESH off.
        set_routes(
            svc,
            &op(),
            "gp-x1",
            &[Route {
                channel: Channel::Email,
                address: "riverside.gp@nhs.net".into(),
            }],
        )
        .unwrap();
        let access = op();
        let mut tx = svc.begin(&access).unwrap();
        let r = routes_in(&mut tx, "gp-x1").unwrap();
        let mesh_ep = tx.get("Endpoint", "gp-x1-mesh").unwrap().unwrap();
        tx.commit().unwrap();
        assert_eq!(r.len(), 1, "{}", b.name);
        assert_eq!(r[0].channel, Channel::Email);
        assert_eq!(mesh_ep["status"], "off");
        // A bad address is refused, naming the field, and nothing changes.
        let e = set_routes(
            svc,
            &op(),
            "gp-x1",
            &[Route {
                channel: Channel::Email,
                address: "nope".into(),
            }],
        )
        .unwrap_err();
        assert!(
            matches!(e, TransfersError::Invalid(ref m) if m.starts_with("email:")),
            "{e:?}"
        );
        let e = set_routes(svc, &op(), "gp-none", &[]).unwrap_err();
        assert_eq!(e.status(), 404);
    }
}

#[test]
fn queueing_is_one_delivery_per_document_and_checks_its_references() {
    for b in backends("queue") {
        let svc = &b.svc;
        let now = DISCHARGED + Duration::hours(3);
        let id = queue(svc, &op(), &outgoing("e1"), now).unwrap();
        let c = comm(svc, &id);
        assert_eq!(c["status"], "preparation", "{}", b.name);
        assert_eq!(
            c["payload"][0]["contentReference"]["reference"],
            "DocumentReference/dr-e1"
        );
        assert_eq!(c["recipient"][0]["reference"], "Organization/gp-x1");
        assert_eq!(attempts(&c), 0);
        assert_eq!(
            queue(svc, &op(), &outgoing("e1"), now).unwrap(),
            id,
            "{}",
            b.name
        );
        let mut bad = outgoing("e1");
        bad.document = "Binary/x".into();
        let e = queue(svc, &op(), &bad, now).unwrap_err();
        assert!(
            matches!(e, TransfersError::Invalid(ref m) if m.starts_with("document")),
            "{e:?}"
        );
        let mut bad = outgoing("e1");
        bad.recipient = "Organization/nowhere".into();
        assert_eq!(queue(svc, &op(), &bad, now).unwrap_err().status(), 404);
    }
}

#[test]
fn failures_back_off_then_fall_back_then_stop_on_a_worklist() {
    for b in backends("retry") {
        let svc = &b.svc;
        routes(svc);
        let t0 = DISCHARGED + Duration::hours(3);
        let id = queue(svc, &op(), &outgoing("e1"), t0).unwrap();
        let transports = Transports {
            mesh: Some(peers::unreachable_mesh()),
            email: None,
        };
        let policy = Policy {
            attempts_per_route: 2,
            backoff: Duration::minutes(5),
        };
        let r = run(svc, &op(), &transports, policy, t0).unwrap();
        assert_eq!(r.retrying, vec![id.clone()], "{}", b.name);
        let c = comm(svc, &id);
        assert_eq!(c["status"], "preparation");
        assert_eq!(attempts(&c), 1);
        assert_eq!(delivery_text(&c, "route"), Some("mesh"));
        assert!(
            delivery_text(&c, "lastError")
                .unwrap()
                .starts_with("MESH: MESH is unreachable"),
            "{c}"
        );
        assert_eq!(
            delivery_text(&c, "nextAttempt"),
            Some("2026-11-30T13:05:00Z")
        );
        // Not due yet: nothing happens.
        let r = run(svc, &op(), &transports, policy, t0 + Duration::minutes(4)).unwrap();
        assert!(
            r.retrying.is_empty() && r.sent.is_empty(),
            "{}: {r:?}",
            b.name
        );
        // Second MESH failure: the next route (email), due at once.
        run(svc, &op(), &transports, policy, t0 + Duration::minutes(5)).unwrap();
        let c = comm(svc, &id);
        assert_eq!(delivery_text(&c, "route"), Some("email"), "{}", b.name);
        assert_eq!(attempts(&c), 0);
        // Email is not configured here: the last route fails, the delivery stops
        // and lands on the delivery-failures worklist.
        let r = run(svc, &op(), &transports, policy, t0 + Duration::minutes(5)).unwrap();
        assert_eq!(r.failed, vec![id.clone()], "{}", b.name);
        let c = comm(svc, &id);
        assert_eq!(c["status"], "stopped");
        assert!(
            c["statusReason"]["text"]
                .as_str()
                .unwrap()
                .contains("not configured"),
            "{c}"
        );
        let t = tasks(svc, DELIVERY_FAILURE_CODE);
        assert_eq!(t.len(), 1, "{}", b.name);
        assert_eq!(t[0]["focus"]["reference"], format!("Communication/{id}"));
        // A stopped delivery is never sent again.
        let r = run(svc, &op(), &transports, policy, t0 + Duration::hours(5)).unwrap();
        assert!(r.failed.is_empty() && r.retrying.is_empty());
        // Nor revived by a plain write (the rule holds on every channel), nor
        // a delivery created as already sent.
        let mut revived = comm(svc, &id);
        revived["status"] = json!("preparation");
        let access = op();
        let mut tx = svc.begin(&access).unwrap();
        let e = tx.save(revived).unwrap_err();
        assert_eq!(e.status, 422, "{}: {e:?}", b.name);
        drop(tx);
        let mut forged = comm(svc, &id);
        forged.as_object_mut().unwrap().remove("id");
        forged["status"] = json!("completed");
        let mut tx = svc.begin(&access).unwrap();
        assert_eq!(tx.save(forged).unwrap_err().status, 422, "{}", b.name);
        drop(tx);
        assert_eq!(comm(svc, &id)["status"], "stopped");
    }
}

/// The practice side: downloads and acknowledges message `id` in mailbox X26ABC2.
fn practice_acknowledges(url: &str, key: &str, id: &str) -> Vec<u8> {
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
    let body = http
        .get(format!("{url}/messageexchange/X26ABC2/inbox/{id}"))
        .header("authorization", auth())
        .header("accept", "application/vnd.mesh.v2+json")
        .send()
        .unwrap();
    assert!(body.status().is_success(), "download: {}", body.status());
    let bytes = body.bytes().unwrap().to_vec();
    let ack = http
        .put(format!(
            "{url}/messageexchange/X26ABC2/inbox/{id}/status/acknowledged"
        ))
        .header("authorization", auth())
        .header("accept", "application/vnd.mesh.v2+json")
        .send()
        .unwrap();
    assert!(ack.status().is_success(), "acknowledge: {}", ack.status());
    bytes
}

#[test]
fn delivered_over_mesh_and_acknowledged_by_the_practice() {
    let Some((url, key)) = peers::mesh() else {
        return;
    };
    for b in backends("mesh") {
        let svc = &b.svc;
        routes(svc);
        let t0 = DISCHARGED + Duration::hours(3);
        let id = queue(svc, &op(), &outgoing("e1"), t0).unwrap();
        let transports = Transports {
            mesh: Some(peers::mesh_client(&url, &key)),
            email: None,
        };
        let r = run(svc, &op(), &transports, Policy::default(), t0).unwrap();
        assert_eq!(r.sent, vec![id.clone()], "{}", b.name);
        let c = comm(svc, &id);
        assert_eq!(c["status"], "in-progress");
        assert_eq!(c["sent"], "2026-11-30T13:00:00Z");
        assert!(c.get("received").is_none());
        let mid = delivery_text(&c, "meshMessageId").unwrap().to_owned();
        // Not acknowledged yet: still waiting.
        let r = run(
            svc,
            &op(),
            &transports,
            Policy::default(),
            t0 + Duration::minutes(1),
        )
        .unwrap();
        assert!(r.acknowledged.is_empty(), "{}", b.name);
        let got: Value = serde_json::from_slice(&practice_acknowledges(&url, &key, &mid)).unwrap();
        assert_eq!(got["resourceType"], "Bundle");
        assert_eq!(got["id"], "doc-e1");
        let r = run(
            svc,
            &op(),
            &transports,
            Policy::default(),
            t0 + Duration::minutes(2),
        )
        .unwrap();
        assert_eq!(r.acknowledged, vec![id.clone()], "{}", b.name);
        let c = comm(svc, &id);
        assert_eq!(c["status"], "completed");
        assert_eq!(c["received"], "2026-11-30T13:02:00Z");
    }
}

#[test]
fn the_authorisation_header_is_checked_by_mesh() {
    let Some((url, _key)) = peers::mesh() else {
        return;
    };
    // A wrong shared key: the sandbox (AUTH_MODE=full) refuses.
    let e = peers::mesh_client(&url, "not-the-key")
        .track("nothing")
        .unwrap_err();
    assert!(e.contains("403"), "{e}");
}

#[test]
fn mesh_down_falls_back_to_email_with_the_pdf() {
    let Some((host, port, dir)) = peers::smtp() else {
        return;
    };
    for b in backends("email") {
        let svc = &b.svc;
        routes(svc);
        let t0 = DISCHARGED + Duration::hours(3);
        let id = queue(svc, &op(), &outgoing("e2"), t0).unwrap();
        let mailer = Mailer::new(&SmtpConfig {
            host: host.clone(),
            port,
            from: "discharges@wardline-trust.nhs.net".into(),
            security: SmtpSecurity::None,
            credentials: None,
        })
        .unwrap();
        let transports = Transports {
            mesh: Some(peers::unreachable_mesh()),
            email: Some(mailer),
        };
        let policy = Policy {
            attempts_per_route: 1,
            backoff: Duration::minutes(5),
        };
        run(svc, &op(), &transports, policy, t0).unwrap();
        let r = run(svc, &op(), &transports, policy, t0).unwrap();
        assert_eq!(r.sent, vec![id.clone()], "{}", b.name);
        let c = comm(svc, &id);
        assert_eq!(c["status"], "completed", "{}", b.name);
        assert_eq!(delivery_text(&c, "route"), Some("email"));
        assert_eq!(delivery_text(&c, "address"), Some("riverside.gp@nhs.net"));
        let marker = format!("Communication/{id}");
        let found = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .find(|m| m.contains(&marker))
            .expect("the email arrived at the SMTP server");
        assert!(
            found.contains("X-Envelope-To: riverside.gp@nhs.net"),
            "{found}"
        );
        assert!(found.contains("application/pdf"), "{found}");
        assert!(found.contains("discharge-summary.pdf"));
        // The PDF's bytes, however the mailer chose to encode them.
        assert!(
            found.contains("JVBERi0xLjQKJSBXYXJkbGluZSB0ZXN0IFBERgo")
                || found.contains("% Wardline test PDF"),
            "the PDF is attached: {found}"
        );
        assert!(!found.contains("Smith"), "no patient name in the email");
    }
}

#[test]
fn a_missed_24_hour_summary_raises_one_task_for_the_consultant_and_it_closes_when_sent() {
    for b in backends("overdue") {
        let svc = &b.svc;
        // 23 hours after the first discharge: nothing overdue.
        let created = raise_overdue(svc, &op(), DISCHARGED + Duration::hours(23)).unwrap();
        assert!(created.is_empty(), "{}", b.name);
        // 25 hours: e1 overdue (e2 was discharged two hours later: not yet).
        let at = DISCHARGED + Duration::hours(25);
        let created = raise_overdue(svc, &op(), at).unwrap();
        assert_eq!(created.len(), 1, "{}", b.name);
        let t = tasks(svc, OVERDUE_CODE);
        assert_eq!(t[0]["encounter"]["reference"], "Encounter/e1");
        assert_eq!(t[0]["owner"]["reference"], "Practitioner/cons1");
        assert_eq!(t[0]["status"], "requested");
        // Once only.
        assert!(
            raise_overdue(svc, &op(), at + Duration::minutes(1))
                .unwrap()
                .is_empty()
        );
        let d = compliance(svc, &op(), DISCHARGED - Duration::days(1), at).unwrap();
        assert_eq!(d.total.discharges, 2, "{}", b.name);
        assert_eq!(d.total.overdue, 1);
        assert_eq!(d.by_ward[0].name, "Ash Ward");
        assert_eq!(d.by_specialty[0].name, "General Internal Medicine");
        let e1 = d
            .discharges
            .iter()
            .find(|x| x.encounter == "Encounter/e1")
            .unwrap();
        assert_eq!(e1.state, State::Overdue);
        assert_eq!(e1.signed.as_deref(), Some("2026-11-30T12:00:00Z"));
        // Sent (over email, the practice's only route here) at 26 h: the Task
        // is completed by the delivery itself.
        let Some((host, port, _)) = peers::smtp() else {
            continue;
        };
        set_routes(
            svc,
            &op(),
            "gp-x1",
            &[Route {
                channel: Channel::Email,
                address: "riverside.gp@nhs.net".into(),
            }],
        )
        .unwrap();
        let sent_at = DISCHARGED + Duration::hours(26);
        queue(svc, &op(), &outgoing("e1"), sent_at).unwrap();
        let mailer = Mailer::new(&SmtpConfig {
            host,
            port,
            from: "discharges@wardline-trust.nhs.net".into(),
            security: SmtpSecurity::None,
            credentials: None,
        })
        .unwrap();
        let r = run(
            svc,
            &op(),
            &Transports {
                mesh: None,
                email: Some(mailer),
            },
            Policy::default(),
            sent_at,
        )
        .unwrap();
        assert_eq!(r.sent.len(), 1, "{}", b.name);
        let t = tasks(svc, OVERDUE_CODE);
        assert_eq!(t[0]["status"], "completed", "{}", b.name);
        let d = compliance(svc, &op(), DISCHARGED - Duration::days(1), sent_at).unwrap();
        let e1 = d
            .discharges
            .iter()
            .find(|x| x.encounter == "Encounter/e1")
            .unwrap();
        assert_eq!(e1.state, State::Late);
        assert_eq!(e1.hours, 26);
    }
}

/// Staff who may search encounters but may not read the patient's record.
struct NotTheirPatient(Agent);

impl Access for NotTheirPatient {
    fn agent(&self) -> &Agent {
        &self.0
    }
    fn check_type(&self, _: Op, _: Option<&str>) -> Result<(), FhirError> {
        Ok(())
    }
    fn check_resource(&self, _: Op, r: &ResourceView<'_>, _: &dyn Reader) -> Result<(), FhirError> {
        if r.resource_type == "Patient" {
            return Err(forbidden("not your patient"));
        }
        Ok(())
    }
    fn check_operation(&self, _: Operation) -> Result<(), FhirError> {
        Ok(())
    }
}

#[test]
fn the_dashboard_counts_every_discharge_and_names_only_patients_the_viewer_may_read() {
    for b in backends("withheld") {
        let svc = &b.svc;
        let at = DISCHARGED + Duration::hours(25);
        let viewer = NotTheirPatient(Agent::operator("other-ward-doctor"));
        let d = compliance(svc, &viewer, DISCHARGED - Duration::days(1), at).unwrap();
        assert_eq!(d.total.discharges, 2, "{}: counted", b.name);
        assert_eq!(d.total.overdue, 1, "{}", b.name);
        assert!(
            d.discharges
                .iter()
                .all(|x| x.withheld && !x.patient_name.contains("SMITH")),
            "{}: {:?}",
            b.name,
            d.discharges
        );
        let named = compliance(svc, &op(), DISCHARGED - Duration::days(1), at).unwrap();
        assert!(
            named
                .discharges
                .iter()
                .all(|x| !x.withheld && x.patient_name == "SMITH, Ann"),
            "{}",
            b.name
        );
    }
}
