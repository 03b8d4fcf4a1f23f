//! e-Referrals over real stores (SQLite always, PostgreSQL too when
//! `WARDLINE_TEST_PG_URL` is set): two providers, each with its own store —
//! the referring trust (A) and the receiving provider (B) — joined by a
//! transport that hands A's messages to B's `$process-message` handling and
//! back. Drafting and its checks, the lifecycle on every write path, the
//! BaRS message's shape against the standard's own examples, delivery with
//! retries and a failure Task (the clock moved, never slept), acceptance,
//! rejection, wrong provider, missing attachment, chasing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use wardline_core::{Agent, FhirService, ServiceConfig, Trusted};
use wardline_workflow::pmi::TASK_SYSTEM;
use wardline_workflow::referrals::inbound::{Received, receive};
use wardline_workflow::referrals::message::{Local, build_in};
use wardline_workflow::referrals::send::{Failure, Policy, Transport, chase, retry_in, run};
use wardline_workflow::referrals::triage::{Accept, accept};
use wardline_workflow::referrals::{
    CHASE_CODE, Draft, FAILURE_CODE, ReferralError, State, TRIAGE_CODE, cancel, draft, get, list,
    part, reject, send, state_of, upload,
};
use wardline_workflow::waiting::Priority;

/// Triage's acceptance: routine, general medicine (the only way a received
/// referral is accepted).
fn routine() -> Accept<'static> {
    Accept {
        priority: Priority::Routine,
        specialty: "300",
        consultant: None,
        note: None,
    }
}

const A_URL: &str = "https://a.example/fhir/$process-message";
const B_URL: &str = "https://b.example/fhir/$process-message";
const NOW: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

struct Pair {
    name: &'static str,
    a: FhirService,
    b: FhirService,
    _dirs: Vec<tempfile::TempDir>,
}

fn service(test: &str, side: &str, pg: bool) -> Option<(FhirService, Option<tempfile::TempDir>)> {
    if pg {
        let (s, _, _) = wardline_store_postgres::testenv::store(&format!("ref_{test}_{side}"))?;
        return Some((
            FhirService::new(Arc::new(s), ServiceConfig::default()),
            None,
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let s = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    Some((
        FhirService::new(Arc::new(s), ServiceConfig::default()),
        Some(dir),
    ))
}

fn pairs(test: &str) -> Vec<Pair> {
    let mut out = Vec::new();
    for (name, pg) in [("sqlite", false), ("postgres", true)] {
        let (Some((a, da)), Some((b, db))) = (service(test, "a", pg), service(test, "b", pg))
        else {
            continue;
        };
        let a = wardline_workflow::with_rules(a);
        let b = wardline_workflow::with_rules(b);
        seed_a(&a);
        seed_b(&b);
        out.push(Pair {
            name,
            a,
            b,
            _dirs: [da, db].into_iter().flatten().collect(),
        });
    }
    out
}

fn op() -> Trusted {
    Trusted::operator("referrals-test")
}

/// A practitioner on record (drafts, sends, triages).
fn clinician(who: &str) -> Trusted {
    Trusted::new(Agent {
        who: Some(format!("Practitioner/{who}")),
        ..Agent::operator(who)
    })
}

fn put(svc: &FhirService, r: Value) {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    tx.save(r).unwrap();
    tx.commit().unwrap();
}

fn org(id: &str, name: &str, ods: &str, endpoint: Option<&str>) -> Value {
    let mut o = json!({"resourceType": "Organization", "id": id, "name": name, "active": true,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}]});
    if endpoint.is_some() {
        o["endpoint"] = json!([{"reference": format!("Endpoint/{id}-bars")}]);
    }
    o
}

fn endpoint(org: &str, url: &str) -> Value {
    json!({"resourceType": "Endpoint", "id": format!("{org}-bars"), "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-msg"},
        "payloadType": [{"text": "BaRS message"}], "address": url})
}

/// The referring trust: its own organisation, a patient with an NHS
/// number, a consultant, an encounter, a signed letter (a PDF as a
/// Binary), the receiving provider with its BaRS endpoint, and a provider
/// without one.
fn seed_a(svc: &FhirService) {
    put(
        svc,
        org("trust-a", "Northgate Hospitals NHS Trust", "RA1", None),
    );
    put(svc, endpoint("prov-b", B_URL));
    put(
        svc,
        org("prov-b", "Southdale Community Services", "RB2", Some(B_URL)),
    );
    put(svc, org("prov-c", "Eastfield Clinic", "RC3", None));
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p1", "active": true,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"},
                       {"system": "https://fhir.wardline.invalid/Id/hospital-number", "value": "A123"}],
        "name": [{"family": "Smith", "given": ["Ann"]}], "birthDate": "1950-02-03", "gender": "female"}),
    );
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p2", "active": true, "name": [{"family": "Other"}]}),
    );
    put(
        svc,
        json!({"resourceType": "Practitioner", "id": "drA", "name": [{"family": "Jones", "given": ["Huw"], "prefix": ["Dr"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"}}),
    );
    put(
        svc,
        json!({"resourceType": "Binary", "id": "letter-pdf", "contentType": "application/pdf", "data": "JVBERi0xLjQKJSVFT0YK"}),
    );
    put(
        svc,
        json!({"resourceType": "DocumentReference", "id": "letter1", "status": "current",
        "type": {"text": "Clinic letter"}, "subject": {"reference": "Patient/p1"},
        "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/letter-pdf", "title": "Clinic letter"}}]}),
    );
    put(
        svc,
        json!({"resourceType": "DocumentReference", "id": "other-doc", "status": "current",
        "subject": {"reference": "Patient/p2"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}]}),
    );
}

/// The receiving provider: its organisation (ODS RB2), the referrer known
/// by ODS code, a clinician.
fn seed_b(svc: &FhirService) {
    put(
        svc,
        org("b-self", "Southdale Community Services", "RB2", None),
    );
    put(svc, endpoint("b-trust-a", A_URL));
    put(
        svc,
        org(
            "b-trust-a",
            "Northgate Hospitals NHS Trust",
            "RA1",
            Some(A_URL),
        ),
    );
    put(
        svc,
        json!({"resourceType": "Practitioner", "id": "drB", "name": [{"family": "Patel", "given": ["Mira"]}]}),
    );
}

fn local_a() -> Local {
    Local {
        organization: Some("trust-a".into()),
        endpoint: A_URL.into(),
        phone: Some("0113 496 0000".into()),
    }
}

fn local_b() -> Local {
    Local {
        organization: Some("b-self".into()),
        endpoint: B_URL.into(),
        phone: None,
    }
}

/// Hands each message to the other side's `$process-message` handling
/// (as the receiving server does), or fails as an unreachable server.
struct Wire<'a> {
    a: &'a FhirService,
    b: &'a FhirService,
    down: AtomicBool,
    sent: std::sync::Mutex<Vec<Value>>,
}

impl Transport for Wire<'_> {
    fn post(&self, url: &str, message: &Value) -> Result<(), Failure> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Failure {
                message: "Not reached: connection refused".into(),
                permanent: false,
            });
        }
        self.sent.lock().unwrap().push(message.clone());
        let to = match url {
            A_URL => self.a,
            B_URL => self.b,
            other => panic!("no server at {other}"),
        };
        receive(to, &op(), message, NOW)
            .map(|_| ())
            .map_err(|e| Failure {
                message: e.message(),
                permanent: e.status() < 500,
            })
    }
}

fn wire<'a>(p: &'a Pair) -> Wire<'a> {
    Wire {
        a: &p.a,
        b: &p.b,
        down: AtomicBool::new(false),
        sent: std::sync::Mutex::new(Vec::new()),
    }
}

fn a_draft() -> Draft {
    Draft {
        patient: "Patient/p1".into(),
        encounter: Some("Encounter/e1".into()),
        receiver: "Organization/prov-b".into(),
        service: None,
        priority: "urgent".into(),
        reason: "Community rehabilitation after a fall".into(),
        attachments: vec!["DocumentReference/letter1".into()],
    }
}

/// A referral drafted and sent from A by drA (not yet delivered).
fn sent(p: &Pair) -> String {
    let dr = clinician("drA");
    let id = draft(&p.a, &dr, &a_draft(), NOW).unwrap();
    send(&p.a, &dr, &id, NOW).unwrap();
    id
}

fn tasks(svc: &FhirService, code: &str, status: &str) -> Vec<Value> {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    let t = tx
        .find(
            "Task",
            &format!("code={TASK_SYSTEM}|{code}&status={status}"),
        )
        .unwrap();
    tx.commit().unwrap();
    t
}

fn read(svc: &FhirService, id: &str) -> Value {
    get(svc, &op(), id).unwrap()
}

#[test]
fn a_referral_is_sent_received_with_its_attachment_accepted_and_tracked() {
    for p in pairs("accept") {
        let n = p.name;
        let w = wire(&p);
        let dr = clinician("drA");
        // A PDF uploaded on the page goes with the letter.
        let up = upload(
            &p.a,
            &dr,
            "p1",
            "Referral letter",
            b"%PDF-1.4 referral",
            NOW,
        )
        .unwrap();
        let mut d = a_draft();
        d.attachments.push(format!("DocumentReference/{up}"));
        let id = draft(&p.a, &dr, &d, NOW).unwrap();
        assert_eq!(state_of(&read(&p.a, &id)), Some(State::Draft), "{n}");
        // Nothing goes before it is sent.
        let r = run(&p.a, &op(), &w, &local_a(), Policy::default(), NOW).unwrap();
        assert!(r.delivered.is_empty(), "{n}");
        send(&p.a, &dr, &id, NOW).unwrap();
        let r = run(&p.a, &op(), &w, &local_a(), Policy::default(), NOW).unwrap();
        assert_eq!(r.delivered, vec![id.clone()], "{n}");
        let sr = read(&p.a, &id);
        assert_eq!(sr["status"], "active", "{n}");
        assert!(
            wardline_workflow::referrals::delivery_label(&sr)
                .unwrap()
                .starts_with("Delivered"),
            "{n}"
        );

        // B has it: the patient matched by NHS number (registered here), the
        // letter with its content, a triage task.
        let got = list(&p.b, &op(), true, None).unwrap();
        assert_eq!(got.len(), 1, "{n}");
        assert_eq!(got[0].state, State::Sent, "{n}");
        assert_eq!(got[0].attachments, 2, "{n}");
        let rid = got[0].id.clone();
        let bsr = read(&p.b, &rid);
        assert_eq!(
            bsr["performer"][0]["reference"], "Organization/b-self",
            "{n}"
        );
        assert_eq!(part(&bsr, "replyTo"), Some(A_URL), "{n}");
        let doc_id = bsr["supportingInfo"][0]["reference"]
            .as_str()
            .unwrap()
            .to_owned();
        let access = op();
        let mut tx = p.b.begin(&access).unwrap();
        let doc = tx
            .get(
                "DocumentReference",
                doc_id.trim_start_matches("DocumentReference/"),
            )
            .unwrap()
            .unwrap();
        let pat = tx
            .get(
                "Patient",
                bsr["subject"]["reference"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("Patient/"),
            )
            .unwrap()
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(
            doc["content"][0]["attachment"]["data"], "JVBERi0xLjQKJSVFT0YK",
            "{n}"
        );
        assert_eq!(
            bsr["supportingInfo"][1]["display"], "Referral letter",
            "{n}: the uploaded PDF came too"
        );
        assert_eq!(
            pat["identifier"].as_array().unwrap().len(),
            1,
            "{n}: only the NHS number travels"
        );
        assert_eq!(tasks(&p.b, TRIAGE_CODE, "requested").len(), 1, "{n}");

        // Sent again (a retry after a lost answer): taken once.
        let again = w.sent.lock().unwrap()[0].clone();
        let dup = receive(&p.b, &op(), &again, NOW).unwrap();
        assert_eq!(dup, Received::Duplicate(rid.clone()), "{n}");

        // B accepts; the answer goes back; A shows accepted.
        accept(
            &p.b,
            &clinician("drB"),
            &rid,
            &routine(),
            NOW + Duration::hours(1),
        )
        .unwrap();
        assert!(tasks(&p.b, TRIAGE_CODE, "requested").is_empty(), "{n}");
        let r = run(
            &p.b,
            &op(),
            &w,
            &local_b(),
            Policy::default(),
            NOW + Duration::hours(1),
        )
        .unwrap();
        assert_eq!(r.delivered, vec![rid.clone()], "{n}");
        let sr = read(&p.a, &id);
        assert_eq!(state_of(&sr), Some(State::Accepted), "{n}");
        assert_eq!(
            list(&p.a, &op(), false, Some("Patient/p1")).unwrap()[0].state,
            State::Accepted,
            "{n}"
        );
        // Accepted: never chased.
        assert!(
            chase(&p.a, &op(), Duration::days(5), NOW + Duration::days(10))
                .unwrap()
                .is_empty(),
            "{n}"
        );
    }
}

#[test]
fn a_rejection_keeps_its_reason_and_a_silent_provider_is_chased() {
    for p in pairs("reject") {
        let n = p.name;
        let w = wire(&p);
        let id = sent(&p);
        run(&p.a, &op(), &w, &local_a(), Policy::default(), NOW).unwrap();
        // Not answered in five days: one chase task for the referrer.
        assert!(
            chase(&p.a, &op(), Duration::days(5), NOW + Duration::days(4))
                .unwrap()
                .is_empty(),
            "{n}"
        );
        assert_eq!(
            chase(&p.a, &op(), Duration::days(5), NOW + Duration::days(6)).unwrap(),
            vec![id.clone()],
            "{n}"
        );
        assert!(
            chase(&p.a, &op(), Duration::days(5), NOW + Duration::days(7))
                .unwrap()
                .is_empty(),
            "{n}"
        );
        let t = tasks(&p.a, CHASE_CODE, "requested");
        assert_eq!(t[0]["owner"]["reference"], "Practitioner/drA", "{n}");

        let rid = list(&p.b, &op(), true, None).unwrap()[0].id.clone();
        let e = reject(&p.b, &clinician("drB"), &rid, " ", NOW).unwrap_err();
        assert_eq!(e.field(), Some("reason"), "{n}");
        reject(
            &p.b,
            &clinician("drB"),
            &rid,
            "Outside our catchment area",
            NOW,
        )
        .unwrap();
        run(&p.b, &op(), &w, &local_b(), Policy::default(), NOW).unwrap();
        let sr = read(&p.a, &id);
        assert_eq!(state_of(&sr), Some(State::Rejected), "{n}");
        assert_eq!(sr["status"], "revoked", "{n}");
        assert_eq!(
            part(&sr, "reason"),
            Some("Outside our catchment area"),
            "{n}"
        );
        // The answer closed the chase.
        assert!(tasks(&p.a, CHASE_CODE, "requested").is_empty(), "{n}");
        // Final: it cannot be accepted now.
        assert!(
            accept(&p.b, &clinician("drB"), &rid, &routine(), NOW).is_err(),
            "{n}"
        );
    }
}

#[test]
fn an_unreachable_provider_is_retried_with_back_off_then_a_failure_task() {
    for p in pairs("down") {
        let n = p.name;
        let w = wire(&p);
        w.down.store(true, Ordering::SeqCst);
        let id = sent(&p);
        let policy = Policy {
            attempts_per_route: 3,
            backoff: Duration::minutes(5),
        };
        let at = |mins: i64| {
            run(
                &p.a,
                &op(),
                &w,
                &local_a(),
                policy,
                NOW + Duration::minutes(mins),
            )
            .unwrap()
        };
        assert_eq!(at(0).retrying, vec![id.clone()], "{n}");
        // Not due again until the back-off has passed (5, then 10 minutes).
        assert_eq!(at(4), Default::default(), "{n}");
        assert_eq!(at(5).retrying, vec![id.clone()], "{n}");
        assert!(at(14).retrying.is_empty(), "{n}");
        assert_eq!(at(15).failed, vec![id.clone()], "{n}");
        let t = tasks(&p.a, FAILURE_CODE, "requested");
        assert_eq!(t.len(), 1, "{n}");
        assert_eq!(
            t[0]["focus"]["reference"],
            format!("ServiceRequest/{id}"),
            "{n}"
        );
        assert!(
            t[0]["description"]
                .as_str()
                .unwrap()
                .contains("connection refused"),
            "{n}"
        );
        let label = wardline_workflow::referrals::delivery_label(&read(&p.a, &id)).unwrap();
        assert!(label.starts_with("Not delivered"), "{n}: {label}");
        assert!(list(&p.b, &op(), true, None).unwrap().is_empty(), "{n}");
        // Back up: sent again from the failure, the task closed.
        w.down.store(false, Ordering::SeqCst);
        let access = op();
        let mut tx = p.a.begin(&access).unwrap();
        retry_in(&mut tx, &id, NOW + Duration::hours(1)).unwrap();
        tx.commit().unwrap();
        assert!(tasks(&p.a, FAILURE_CODE, "requested").is_empty(), "{n}");
        let r = run(
            &p.a,
            &op(),
            &w,
            &local_a(),
            policy,
            NOW + Duration::hours(1),
        )
        .unwrap();
        assert_eq!(r.delivered, vec![id.clone()], "{n}");
        assert_eq!(list(&p.b, &op(), true, None).unwrap().len(), 1, "{n}");
    }
}

#[test]
fn drafting_checks_the_provider_the_attachments_and_the_fields() {
    for p in pairs("draft") {
        let n = p.name;
        let dr = clinician("drA");
        let field = |d: Draft| {
            draft(&p.a, &dr, &d, NOW)
                .unwrap_err()
                .field()
                .map(str::to_owned)
        };
        let no_endpoint = Draft {
            receiver: "Organization/prov-c".into(),
            ..a_draft()
        };
        assert_eq!(field(no_endpoint).as_deref(), Some("receiver"), "{n}");
        let wrong_patient = Draft {
            attachments: vec!["DocumentReference/other-doc".into()],
            ..a_draft()
        };
        assert_eq!(field(wrong_patient).as_deref(), Some("attachments"), "{n}");
        let missing = Draft {
            attachments: vec!["DocumentReference/nope".into()],
            ..a_draft()
        };
        assert_eq!(field(missing).as_deref(), Some("attachments"), "{n}");
        assert_eq!(
            field(Draft {
                reason: "  ".into(),
                ..a_draft()
            })
            .as_deref(),
            Some("reason"),
            "{n}"
        );
        assert_eq!(
            field(Draft {
                priority: "soon".into(),
                ..a_draft()
            })
            .as_deref(),
            Some("priority"),
            "{n}"
        );
        // An upload that is not a PDF is refused at its field.
        let e = upload(&p.a, &dr, "p1", "Scan", b"GIF89a", NOW).unwrap_err();
        assert_eq!(e.field(), Some("pdf"), "{n}");
        assert_eq!(
            upload(&p.a, &dr, "p1", "Scan", b"", NOW)
                .unwrap_err()
                .field(),
            Some("pdf"),
            "{n}"
        );
        // Only a practitioner on record refers.
        assert!(
            matches!(
                draft(&p.a, &op(), &a_draft(), NOW),
                Err(ReferralError::Forbidden(_))
            ),
            "{n}"
        );
        // An attachment withdrawn after drafting stops the send.
        let id = draft(&p.a, &dr, &a_draft(), NOW).unwrap();
        let access = op();
        let mut tx = p.a.begin(&access).unwrap();
        let mut d = tx.get("DocumentReference", "letter1").unwrap().unwrap();
        d["status"] = json!("entered-in-error");
        tx.save(d.clone()).unwrap();
        tx.commit().unwrap();
        let e = send(&p.a, &dr, &id, NOW).unwrap_err();
        assert_eq!(e.field(), Some("attachments"), "{n}");
        assert_eq!(state_of(&read(&p.a, &id)), Some(State::Draft), "{n}");
        // Cancelled with its reason; then final.
        assert_eq!(
            cancel(&p.a, &dr, &id, "").unwrap_err().field(),
            Some("reason"),
            "{n}"
        );
        cancel(&p.a, &dr, &id, "Patient declined").unwrap();
        let sr = read(&p.a, &id);
        assert_eq!(
            (sr["status"].as_str(), part(&sr, "reason")),
            (Some("revoked"), Some("Patient declined")),
            "{n}"
        );
        assert!(
            matches!(send(&p.a, &dr, &id, NOW), Err(ReferralError::Conflict(_))),
            "{n}"
        );
    }
}

#[test]
fn the_lifecycle_holds_on_plain_writes() {
    for p in pairs("rule") {
        let n = p.name;
        let id = draft(&p.a, &clinician("drA"), &a_draft(), NOW).unwrap();
        let access = op();
        let save = |f: &dyn Fn(&mut Value)| {
            let mut tx = p.a.begin(&access).unwrap();
            let mut sr = tx.get("ServiceRequest", &id).unwrap().unwrap();
            f(&mut sr);
            let r = tx.save(sr);
            if r.is_ok() {
                tx.commit().unwrap();
            }
            r.map(|_| ()).map_err(|e| e.status)
        };
        let set = |sr: &mut Value, state: &str, status: &str| {
            let exts = sr["extension"][0]["extension"].as_array_mut().unwrap();
            for e in exts.iter_mut() {
                if e["url"] == "state" {
                    e["valueCode"] = json!(state);
                }
            }
            sr["status"] = json!(status);
        };
        // Draft straight to accepted: refused; status not the state's: refused.
        assert_eq!(save(&|sr| set(sr, "accepted", "active")), Err(422), "{n}");
        assert_eq!(save(&|sr| set(sr, "draft", "active")), Err(422), "{n}");
        assert_eq!(
            save(&|sr| {
                sr.as_object_mut().unwrap().remove("extension");
            }),
            Err(422),
            "{n}"
        );
        // Created already sent (not received): refused.
        let mut tx = p.a.begin(&access).unwrap();
        let mut sr = tx.get("ServiceRequest", &id).unwrap().unwrap();
        sr.as_object_mut().unwrap().remove("id");
        set(&mut sr, "sent", "active");
        assert_eq!(
            tx.save(sr).map(|_| ()).map_err(|e| e.status),
            Err(422),
            "{n}"
        );
        drop(tx);
        // The allowed move passes.
        assert_eq!(save(&|sr| set(sr, "cancelled", "revoked")), Ok(()), "{n}");
    }
}

#[test]
fn wrong_provider_missing_attachment_and_foreign_responses_are_refused() {
    for p in pairs("refuse") {
        let n = p.name;
        let w = wire(&p);
        let id = sent(&p);
        let access = op();
        let mut tx = p.a.begin(&access).unwrap();
        let sr = tx.get("ServiceRequest", &id).unwrap().unwrap();
        let msg = build_in(&mut tx, &sr, &local_a(), NOW).unwrap();
        tx.commit().unwrap();
        // Addressed to a provider B is not.
        let mut wrong = msg.clone();
        for e in wrong["entry"].as_array_mut().unwrap() {
            if e["resource"]["resourceType"] == "Organization"
                && e["resource"]["name"] == "Southdale Community Services"
            {
                e["resource"]["identifier"][0]["value"] = json!("RZZ");
            }
        }
        assert!(
            matches!(receive(&p.b, &op(), &wrong, NOW), Err(ReferralError::Conflict(m)) if m.contains("wrong provider")),
            "{n}"
        );
        // An attachment named but not carried.
        let mut lacking = msg.clone();
        lacking["entry"]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["resource"]["resourceType"] != "DocumentReference");
        let e = receive(&p.b, &op(), &lacking, NOW).unwrap_err();
        assert_eq!(e.field(), Some("ServiceRequest.supportingInfo"), "{n}");
        // Not a BaRS message.
        let mut other = msg.clone();
        other["entry"][0]["resource"]["eventCoding"]["system"] = json!("urn:other");
        assert_eq!(
            receive(&p.b, &op(), &other, NOW).unwrap_err().field(),
            Some("MessageHeader.eventCoding"),
            "{n}"
        );
        assert!(
            list(&p.b, &op(), true, None).unwrap().is_empty(),
            "{n}: nothing half-taken"
        );
        // The real one; then an answer claiming to be from another provider.
        run(&p.a, &op(), &w, &local_a(), Policy::default(), NOW).unwrap();
        let rid = list(&p.b, &op(), true, None).unwrap()[0].id.clone();
        accept(&p.b, &clinician("drB"), &rid, &routine(), NOW).unwrap();
        let mut tx = p.b.begin(&access).unwrap();
        let bsr = tx.get("ServiceRequest", &rid).unwrap().unwrap();
        let mut answer = build_in(&mut tx, &bsr, &local_b(), NOW).unwrap();
        tx.commit().unwrap();
        for e in answer["entry"].as_array_mut().unwrap() {
            if e["resource"]["resourceType"] == "Organization" {
                e["resource"]["identifier"][0]["value"] = json!("RZZ");
            }
        }
        assert!(
            matches!(
                receive(&p.a, &op(), &answer, NOW),
                Err(ReferralError::Forbidden(_))
            ),
            "{n}"
        );
        assert_eq!(state_of(&read(&p.a, &id)), Some(State::Sent), "{n}");
    }
}

fn bars_examples() -> Option<std::path::PathBuf> {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/nhs-api-examples/bars/specification/examples1.4.0/process_message");
    d.is_dir().then_some(d)
}

/// The message's shape is the standard's: the upstream request examples'
/// MessageHeader fields, event and reason systems, Bundle profile, and
/// resource types.
#[test]
fn the_message_has_the_shape_of_the_bars_examples() {
    let Some(dir) = bars_examples() else {
        eprintln!("SKIPPED: ../shared/testdata/nhs-api-examples/bars is absent");
        return;
    };
    let mut examples = Vec::new();
    for f in [
        "POST-body.json",
        "request/Booking (POST).json",
        "request/ValidationResponse (POST) .json",
    ] {
        let path = dir.join(f);
        if let Ok(t) = std::fs::read_to_string(&path) {
            examples.push(serde_json::from_str::<Value>(&t).unwrap());
        }
    }
    assert!(
        !examples.is_empty(),
        "the examples folder has the request examples"
    );
    for p in pairs("shape") {
        let n = p.name;
        let id = sent(&p);
        let access = op();
        let mut tx = p.a.begin(&access).unwrap();
        let sr = tx.get("ServiceRequest", &id).unwrap().unwrap();
        let msg = build_in(&mut tx, &sr, &local_a(), NOW).unwrap();
        tx.commit().unwrap();
        let header = &msg["entry"][0]["resource"];
        let types: Vec<&str> = msg["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["resourceType"].as_str().unwrap())
            .collect();
        for ex in &examples {
            assert_eq!(msg["type"], ex["type"], "{n}");
            assert_eq!(msg["meta"]["profile"], ex["meta"]["profile"], "{n}");
            let eh = &ex["entry"][0]["resource"];
            assert_eq!(eh["resourceType"], "MessageHeader");
            for (k, v) in eh.as_object().unwrap() {
                if ["id", "meta", "extension", "response"].contains(&k.as_str()) {
                    continue;
                }
                assert!(!header[k].is_null(), "{n}: MessageHeader.{k} is missing");
                if let Some(sub) = v.as_object() {
                    for sk in sub.keys() {
                        assert!(
                            !header[k][sk].is_null(),
                            "{n}: MessageHeader.{k}.{sk} is missing"
                        );
                    }
                }
                if let Some(first) = v
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(Value::as_object)
                {
                    for sk in first.keys() {
                        assert!(
                            !header[k][0][sk].is_null(),
                            "{n}: MessageHeader.{k}[0].{sk} is missing"
                        );
                    }
                }
            }
            assert_eq!(
                header["eventCoding"]["system"], eh["eventCoding"]["system"],
                "{n}"
            );
            assert_eq!(
                header["reason"]["coding"][0]["system"], eh["reason"]["coding"][0]["system"],
                "{n}"
            );
            // Every entry is a urn:uuid fullUrl, as in the examples.
            for e in msg["entry"].as_array().unwrap() {
                assert!(
                    e["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"),
                    "{n}"
                );
            }
        }
        // The resource types the upstream referral-side example carries.
        let upstream: Vec<&str> = examples
            .iter()
            .flat_map(|ex| {
                ex["entry"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["resource"]["resourceType"].as_str().unwrap())
            })
            .collect();
        for t in &types {
            assert!(
                *t == "DocumentReference" || upstream.contains(t),
                "{n}: {t} is not in the examples"
            );
        }
        for t in [
            "MessageHeader",
            "ServiceRequest",
            "Patient",
            "Organization",
            "Practitioner",
            "Encounter",
            "DocumentReference",
        ] {
            assert!(types.contains(&t), "{n}: {t} is not in the message");
        }
        assert_eq!(
            types[1], "ServiceRequest",
            "{n}: the focus follows the header"
        );
        assert_eq!(
            header["focus"][0]["reference"], msg["entry"][1]["fullUrl"],
            "{n}"
        );
        // Every reference inside resolves within the message.
        let urls: Vec<&str> = msg["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["fullUrl"].as_str().unwrap())
            .collect();
        let srm = &msg["entry"][1]["resource"];
        for r in [
            &srm["subject"],
            &srm["requester"],
            &srm["performer"][0],
            &srm["encounter"],
            &srm["supportingInfo"][0],
            &header["sender"],
            &header["destination"][0]["receiver"],
        ] {
            assert!(
                urls.contains(&r["reference"].as_str().unwrap()),
                "{n}: {r} does not resolve"
            );
        }
        assert_eq!(srm["category"][0]["coding"][0]["code"], "referral", "{n}");
        assert_eq!(header["destination"][0]["endpoint"], B_URL, "{n}");
        assert_eq!(header["source"]["endpoint"], A_URL, "{n}");
    }
}
