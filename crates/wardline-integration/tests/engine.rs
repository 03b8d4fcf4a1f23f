//! The engine in-process on SQLite: ACK codes, the message record,
//! duplicates, refusals and their correction, unparsable input, unsupported
//! types, and the outbox from every write path to delivery over MLLP.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::Value;
use wardline_core::{FhirService, ServiceConfig};
use wardline_hl7::mllp::{FrameDecoder, encode_frame};
use wardline_hl7::{AckCode, ErrorDetail, Message, ack};
use wardline_hl7_fhir::MappingConfig;
use wardline_integration::message_store::payload_text;
use wardline_integration::{
    Destination, DispatchConfig, Dispatcher, Engine, EngineConfig, OutboxHook, UnsupportedPolicy,
};

fn service(dests: Vec<Destination>) -> Arc<FhirService> {
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().unwrap();
    let mut svc = FhirService::new(Arc::new(store), ServiceConfig::default());
    if !dests.is_empty() {
        svc = svc.with_hook(Arc::new(OutboxHook::new(dests, MappingConfig::default())));
    }
    Arc::new(svc)
}

fn a01(control: &str, nhs: &str, bed: &str) -> String {
    format!(
        "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||ADT^A01^ADT_A01|{control}|P|2.4\r\
         EVN|A01|20261123090000\r\
         PID|1||{nhs}^^^NHS^NH~RWG0000001^^^RWG^MR||SMITH^JANE^^^MRS||19700101|F|||1 HIGH ST^^WATFORD^^WD18 0HB\r\
         PV1|1|I|WARD7^BAY2^{bed}^RWG||||C1234567^JONES^ALAN|||GEN|||||||||V{control}\r"
    )
}

fn find(svc: &FhirService, t: &str, q: &str) -> Vec<Value> {
    svc.transact(&wardline_core::Trusted::operator("test"), |tx| {
        tx.find(t, q)
    })
    .unwrap()
}

fn msa(ack_text: &str, field: &str) -> String {
    let m = Message::parse(ack_text).unwrap();
    m.text(field).unwrap().unwrap_or_default().into_owned()
}

fn record(svc: &FhirService, id: &str) -> Value {
    svc.transact(&wardline_core::Trusted::operator("test"), |tx| {
        tx.get("Communication", id)
    })
    .unwrap()
    .unwrap()
}

#[test]
fn admit_is_applied_recorded_and_acknowledged_after_commit() {
    let svc = service(vec![]);
    let engine = Engine::new(svc.clone(), EngineConfig::default());
    let r = engine.receive(a01("M1", "9434765919", "BED4").as_bytes());
    assert_eq!(r.code, AckCode::AA, "{}", r.ack);
    assert_eq!(msa(&r.ack, "MSA-2"), "M1");
    assert!(!r.duplicate);
    let patients = find(
        &svc,
        "Patient",
        "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919",
    );
    assert_eq!(patients.len(), 1);
    let pid = patients[0]["id"].as_str().unwrap();
    let encounters = find(&svc, "Encounter", &format!("patient={pid}"));
    assert_eq!(encounters.len(), 1);
    assert_eq!(encounters[0]["status"], "in-progress");
    // The record: completed, the patient, what it touched, message and ACK.
    let rec = record(&svc, r.record_id.as_deref().unwrap());
    assert_eq!(rec["status"], "completed");
    assert_eq!(rec["subject"]["reference"], format!("Patient/{pid}"));
    let about: Vec<&str> = rec["about"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["reference"].as_str().unwrap())
        .collect();
    assert!(
        about.contains(&format!("Patient/{pid}").as_str()),
        "{about:?}"
    );
    assert!(
        about.iter().any(|a| a.starts_with("Encounter/")),
        "{about:?}"
    );
    assert!(
        about.iter().any(|a| a.starts_with("Location/")),
        "{about:?}"
    );
    assert_eq!(
        payload_text(&rec, 0).unwrap(),
        a01("M1", "9434765919", "BED4")
    );
    assert_eq!(payload_text(&rec, 1).unwrap(), r.ack);
    // Searchable by patient, type, status.
    let by_patient = find(&svc, "Communication", &format!("patient={pid}"));
    assert_eq!(by_patient.len(), 1);
    let by_type = find(
        &svc,
        "Communication",
        "category=http://terminology.hl7.org/CodeSystem/v2-0003|A01&status=completed",
    );
    assert_eq!(by_type.len(), 1);
    // And by time received.
    assert_eq!(
        find(&svc, "Communication", "received=ge2026-01-01").len(),
        1
    );
    assert!(find(&svc, "Communication", "received=lt2026-01-01").is_empty());
}

#[test]
fn a_duplicate_is_acknowledged_again_and_not_applied_twice() {
    let svc = service(vec![]);
    let engine = Engine::new(svc.clone(), EngineConfig::default());
    let first = engine.receive(a01("DUP1", "9434765919", "BED4").as_bytes());
    assert_eq!(first.code, AckCode::AA);
    let again = engine.receive(a01("DUP1", "9434765919", "BED4").as_bytes());
    assert!(again.duplicate);
    assert_eq!(again.code, AckCode::AA);
    assert_eq!(again.ack, first.ack, "the same ACK is sent again");
    assert_eq!(find(&svc, "Encounter", "status=in-progress").len(), 1);
    let r = svc.handle(
        wardline_core::FhirRequest {
            method: wardline_core::Method::Get,
            path: vec!["Encounter".into(), "_history".into()],
            query: vec![("_count".into(), "100".into())],
            headers: Default::default(),
            body: None,
        },
        &wardline_core::Trusted::operator("test"),
    );
    assert_eq!(r.status, 200);
    let bundle: Value = match r.body {
        wardline_core::Body::Raw(t) => serde_json::from_str(&t).unwrap(),
        wardline_core::Body::Json(v) => v,
        _ => panic!("no history bundle"),
    };
    let versions = bundle["entry"].as_array().cloned().unwrap_or_default();
    assert_eq!(versions.len(), 1, "no second version of the encounter");
    // The same control id from another sender is another message.
    let other = a01("DUP1", "9434765870", "BED5")
        .replace("|PAS|RWG|", "|ED|RWG|")
        .replace("VDUP1", "VED1");
    let r = engine.receive(other.as_bytes());
    assert!(!r.duplicate);
    assert_eq!(r.code, AckCode::AA, "{}", r.ack);
    assert_eq!(find(&svc, "Encounter", "status=in-progress").len(), 2);
}

#[test]
fn bad_content_is_refused_with_the_field_recorded_and_can_be_corrected() {
    let svc = service(vec![]);
    let engine = Engine::new(svc.clone(), EngineConfig::default());
    // 9434765918 fails the Modulus 11 check.
    let bad = a01("BAD1", "9434765918", "BED4");
    let r = engine.receive(bad.as_bytes());
    assert_eq!(r.code, AckCode::AE, "{}", r.ack);
    assert!(
        r.ack.contains("9434765918"),
        "the ACK names the value: {}",
        r.ack
    );
    assert!(r.ack.contains("PID"), "{}", r.ack);
    assert!(
        find(&svc, "Encounter", "status=in-progress").is_empty(),
        "nothing applied"
    );
    let id = r.record_id.clone().unwrap();
    let rec = record(&svc, &id);
    assert_eq!(rec["status"], "not-done");
    assert!(
        rec["statusReason"]["text"]
            .as_str()
            .unwrap()
            .contains("9434765918")
    );
    // Searchable as a failure.
    assert_eq!(find(&svc, "Communication", "status=not-done").len(), 1);

    // Reprocessing the stored text fails the same way; a corrected text applies.
    let again = engine.reprocess(&id, None).unwrap();
    assert_eq!(again.code, AckCode::AE);
    let fixed = a01("BAD1", "9434765919", "BED4");
    let ok = engine.reprocess(&id, Some(fixed.as_bytes())).unwrap();
    assert_eq!(ok.code, AckCode::AA, "{}", ok.ack);
    assert_eq!(record(&svc, &id)["status"], "completed");
    assert_eq!(find(&svc, "Encounter", "status=in-progress").len(), 1);
    // Applied now: reprocessing again would apply twice and is refused.
    let err = engine.reprocess(&id, None).unwrap_err();
    assert!(err.contains("applied already"), "{err}");
    // And the sender resending the corrected message gets the same ACK.
    let resend = engine.receive(fixed.as_bytes());
    assert!(resend.duplicate);
}

#[test]
fn unparsable_and_unsupported_input_is_stored_and_answered() {
    let svc = service(vec![]);
    let engine = Engine::new(svc.clone(), EngineConfig::default());
    let r = engine.receive(b"PID|1||123\r");
    assert_eq!(r.code, AckCode::AR);
    assert!(r.ack.contains("MSH"), "{}", r.ack);
    let rec = record(&svc, r.record_id.as_deref().unwrap());
    assert_eq!(rec["status"], "not-done");
    assert_eq!(payload_text(&rec, 0).unwrap(), "PID|1||123\r");

    // No control id.
    let r = engine.receive(b"MSH|^~\\&|PAS|RWG|||20261123||ADT^A01||P|2.4\r");
    assert_eq!(r.code, AckCode::AR);
    assert!(
        r.ack.contains("MSH-10") || r.ack.contains("control"),
        "{}",
        r.ack
    );

    // An unmapped type (a pharmacy give, RGV^O15; RDE^O11 is mapped since
    // issue 17):
    // rejected by default, naming MSH-9, and kept for reprocessing — never
    // acknowledged as accepted (issue 15; before, this was AA).
    let rde = "MSH|^~\\&|EPMA|RWG|WARDLINE|RWG|20261123||RGV^O15^RGV_O15|R1|P|2.5\r\
               PID|1||9434765919^^^NHS^NH||SMITH^JANE\r";
    let r = engine.receive(rde.as_bytes());
    assert_eq!(r.code, AckCode::AR, "{}", r.ack);
    // v2.5: ERR-2 is the location, ERR-3 the code (`^` in the text is
    // escaped as \S\).
    assert!(r.ack.contains("ERR||MSH^1^9|200^"), "{}", r.ack);
    assert!(
        r.ack.contains("MSH-9 RGV\\S\\O15 is not mapped"),
        "{}",
        r.ack
    );
    assert_eq!(
        record(&svc, r.record_id.as_deref().unwrap())["status"],
        "not-done"
    );
    // An unmapped event of a mapped type is error 201.
    let a60 = "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123||ADT^A60^ADT_A60|R2|P|2.5\r\
               PID|1||9434765919^^^NHS^NH||SMITH^JANE\r";
    let r = engine.receive(a60.as_bytes());
    assert_eq!(r.code, AckCode::AR, "{}", r.ack);
    assert!(r.ack.contains("ERR||MSH^1^9|201^"), "{}", r.ack);
    // A deployment that parks them: on hold, answered AE saying so.
    let vxu = "MSH|^~\\&|IMM|RWG|WARDLINE|RWG|20261123||VXU^V04^VXU_V04|V1|P|2.5.1\r\
               PID|1||9434765919^^^NHS^NH||SMITH^JANE\r";
    let holding = Engine::new(
        svc.clone(),
        EngineConfig {
            unsupported: UnsupportedPolicy::Hold,
            ..EngineConfig::default()
        },
    );
    let r = holding.receive(vxu.as_bytes());
    assert_eq!(r.code, AckCode::AE, "{}", r.ack);
    assert!(
        r.ack.contains("VXU") && r.ack.contains("kept on hold, not applied"),
        "{}",
        r.ack
    );
    assert_eq!(
        record(&svc, r.record_id.as_deref().unwrap())["status"],
        "on-hold"
    );
    // Rejected by default, and still stored.
    let r = engine.receive(vxu.replace("|V1|", "|V2|").as_bytes());
    assert_eq!(r.code, AckCode::AR);
    assert!(r.ack.contains("VXU"), "{}", r.ack);
    assert_eq!(
        record(&svc, r.record_id.as_deref().unwrap())["status"],
        "not-done"
    );
}

/// A minimal downstream system: answers each message with `reply(control id)`
/// and reports what it received.
fn downstream(
    reply: impl Fn(&str) -> AckCode + Send + 'static,
    expect: usize,
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let mut got = Vec::new();
        listener.set_nonblocking(false).unwrap();
        while got.len() < expect {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut dec = FrameDecoder::new(1 << 20);
            let mut buf = [0u8; 8192];
            'conn: while got.len() < expect {
                while let Some(f) = dec.next_frame() {
                    let text = String::from_utf8(f).unwrap();
                    let m = Message::parse(&text).unwrap();
                    let id = m.control_id().unwrap().into_owned();
                    let code = reply(&id);
                    let errs = if code == AckCode::AA {
                        vec![]
                    } else {
                        vec![ErrorDetail::new(207, "downstream says no")]
                    };
                    conn.write_all(&encode_frame(ack(&m, code, &errs).encode().as_bytes()))
                        .unwrap();
                    got.push(text);
                }
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(n) => dec.push(&buf[..n]).unwrap(),
                }
            }
        }
        got
    });
    (addr, h)
}

fn quick() -> DispatchConfig {
    DispatchConfig {
        max_attempts: 2,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ack_timeout: Duration::from_secs(10),
        poll: Duration::from_millis(10),
    }
}

const LAB_Q: &str = "category=https://fhir.wardline.invalid/CodeSystem/hl7v2-destination|LAB";

fn queue(svc: &FhirService, status: &str) -> Vec<Value> {
    find(svc, "Communication", &format!("{LAB_Q}&status={status}"))
}

fn patient(svc: &FhirService, nhs: &str, family: &str) -> String {
    let p = serde_json::json!({"resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"family": family}]});
    svc.transact(&wardline_core::Trusted::operator("test"), |tx| {
        tx.save(p).map(|s| s.id)
    })
    .unwrap()
}

fn rename(svc: &FhirService, id: &str, family: &str) {
    svc.transact(&wardline_core::Trusted::operator("test"), |tx| {
        let mut p = tx.get("Patient", id)?.unwrap();
        p["name"][0]["family"] = family.into();
        tx.save(p).map(|_| ())
    })
    .unwrap();
}

#[test]
fn changes_are_queued_in_their_transaction_and_delivered_in_order() {
    // The hook's address does not matter; the dispatcher's does.
    let svc = service(vec![
        Destination::parse("LAB=127.0.0.1:1/LABSYS^RWG").unwrap(),
        Destination::parse("PAS=127.0.0.1:1").unwrap(),
    ]);
    let engine = Engine::new(svc.clone(), EngineConfig::default());
    // From PAS: queued for LAB (patient created, then admitted), not echoed to PAS.
    let r = engine.receive(a01("Q1", "9434765919", "BED4").as_bytes());
    assert_eq!(r.code, AckCode::AA, "{}", r.ack);
    let queued = queue(&svc, "preparation");
    let types: Vec<String> = queued
        .iter()
        .map(|q| {
            Message::parse(&payload_text(q, 0).unwrap())
                .unwrap()
                .get("MSH-9")
                .unwrap()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types, ["ADT^A28^ADT_A05", "ADT^A01^ADT_A01"], "{types:?}");
    let pas_q = "category=https://fhir.wardline.invalid/CodeSystem/hl7v2-destination|PAS";
    assert!(
        find(&svc, "Communication", pas_q).is_empty(),
        "not echoed to its sender"
    );
    // A REST write queues too (for both destinations: it has no origin).
    let r = svc.handle(
        wardline_core::FhirRequest {
            method: wardline_core::Method::Post,
            path: vec!["Patient".into()],
            query: vec![],
            headers: wardline_core::RequestHeaders::default(),
            body: Some(br#"{"resourceType":"Patient","name":[{"family":"REST"}]}"#.to_vec()),
        },
        &wardline_core::Trusted::operator("test"),
    );
    assert_eq!(r.status, 201);
    assert_eq!(queue(&svc, "preparation").len(), 3);
    assert_eq!(find(&svc, "Communication", pas_q).len(), 1);

    // Nothing listening: nothing is blamed, the queue waits.
    let stop = Arc::new(AtomicBool::new(false));
    let down = Destination::parse("LAB=127.0.0.1:1").unwrap();
    let mut d = Dispatcher::new(svc.clone(), down, quick(), stop.clone());
    assert!(!d.round().unwrap());
    assert_eq!(queue(&svc, "preparation").len(), 3);

    let (addr, server) = downstream(|_| AckCode::AA, 3);
    let lab = Destination::parse(&format!("LAB={addr}/LABSYS^RWG")).unwrap();
    let mut d = Dispatcher::new(svc.clone(), lab, quick(), stop);
    for _ in 0..50 {
        d.round().unwrap();
        if queue(&svc, "preparation").is_empty() {
            break;
        }
    }
    let done = queue(&svc, "completed");
    assert_eq!(done.len(), 3);
    assert!(
        done.iter()
            .all(|r| r["sent"].is_string() && payload_text(r, 1).is_some())
    );
    drop(d);
    let got = server.join().unwrap();
    let sent_types: Vec<&str> = got
        .iter()
        .map(|m| if m.contains("ADT^A01") { "A01" } else { "A28" })
        .collect();
    assert_eq!(sent_types, ["A28", "A01", "A28"], "creation order");
    assert!(
        got.iter()
            .all(|m| m.contains("|WARDLINE|WARDLINE|LABSYS|RWG|")),
        "{got:?}"
    );
}

#[test]
fn a_refusal_dead_letters_holds_that_patients_later_messages_and_can_be_retried() {
    let svc = service(vec![Destination::parse("LAB=127.0.0.1:1").unwrap()]);
    let x = patient(&svc, "9434765919", "XRAY"); // X: A28
    rename(&svc, &x, "XENON"); // X: A31, must wait for the A28
    let _y = patient(&svc, "9434765870", "YANKEE"); // Y: A28, independent
    assert_eq!(queue(&svc, "preparation").len(), 3);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let (addr, server) = downstream(
        move |_| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                AckCode::AE
            } else {
                AckCode::AA
            }
        },
        4,
    );
    let lab = Destination::parse(&format!("LAB={addr}")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut d = Dispatcher::new(svc.clone(), lab, quick(), stop);
    d.round().unwrap();
    let dead = queue(&svc, "stopped");
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["statusReason"]["text"]
            .as_str()
            .unwrap()
            .contains("downstream says no")
    );
    assert_eq!(queue(&svc, "completed").len(), 1, "Y's message went");
    assert_eq!(queue(&svc, "preparation").len(), 1, "X's A31 is held");
    d.round().unwrap();
    assert_eq!(
        queue(&svc, "preparation").len(),
        1,
        "still held while X has a dead letter"
    );

    wardline_integration::outbox::retry(&svc, dead[0]["id"].as_str().unwrap()).unwrap();
    for _ in 0..10 {
        d.round().unwrap();
        if queue(&svc, "completed").len() == 3 {
            break;
        }
    }
    assert_eq!(queue(&svc, "completed").len(), 3);
    drop(d);
    let got = server.join().unwrap();
    let order: Vec<String> = got
        .iter()
        .map(|m| {
            let msg = Message::parse(m).unwrap();
            format!(
                "{} {}",
                msg.get("MSH-9.2").unwrap().unwrap(),
                msg.text("PID-5.1").unwrap().unwrap()
            )
        })
        .collect();
    assert_eq!(order, ["A28 XRAY", "A28 YANKEE", "A28 XRAY", "A31 XENON"]);
    // A delivered message cannot be retried.
    let done = queue(&svc, "completed");
    let err =
        wardline_integration::outbox::retry(&svc, done[0]["id"].as_str().unwrap()).unwrap_err();
    assert!(err.contains("delivered already"), "{err}");
}

#[test]
fn the_listener_closes_idle_connections_and_serves_frames_in_order() {
    let svc = service(vec![]);
    let engine = Arc::new(Engine::new(svc, EngineConfig::default()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(wardline_integration::serve(
        listener,
        engine,
        wardline_integration::ListenerConfig {
            idle_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    ));
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Two frames in one write (a pipelining sender): two ACKs, in order.
    let mut bytes = encode_frame(a01("P1", "9434765919", "BED1").as_bytes());
    bytes.extend(encode_frame(a01("P2", "9434765870", "BED2").as_bytes()));
    c.write_all(&bytes).unwrap();
    let mut dec = FrameDecoder::new(1 << 20);
    let mut buf = [0u8; 4096];
    let mut acks = Vec::new();
    while acks.len() < 2 {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        dec.push(&buf[..n]).unwrap();
        while let Some(f) = dec.next_frame() {
            acks.push(msa(&String::from_utf8(f).unwrap(), "MSA-2"));
        }
    }
    assert_eq!(acks, ["P1", "P2"]);
    // Then silence: the server closes the connection (read returns 0).
    let n = c.read(&mut buf).unwrap();
    assert_eq!(n, 0, "closed after the idle timeout");
}

/// `a01` asking for enhanced mode (MSH-15, MSH-16).
fn enhanced(text: &str, accept: &str, application: &str) -> String {
    text.replacen("|P|2.4\r", &format!("|P|2.4|||{accept}|{application}\r"), 1)
}

/// MSA-1 of each reply.
fn codes(r: &wardline_integration::Receipt) -> Vec<String> {
    r.replies.iter().map(|a| msa(a, "MSA-1")).collect()
}

#[test]
fn original_mode_replies_with_the_one_ack() {
    let engine = Engine::new(service(vec![]), EngineConfig::default());
    let r = engine.receive(a01("O1", "9434765919", "BED1").as_bytes());
    assert_eq!(r.replies, std::slice::from_ref(&r.ack));
    assert_eq!(codes(&r), ["AA"]);
    let bad = engine.receive(a01("O2", "9434765918", "BED2").as_bytes());
    assert_eq!(codes(&bad), ["AE"]);
    assert_eq!(bad.replies, std::slice::from_ref(&bad.ack));
}

#[test]
fn enhanced_mode_commit_ack_after_commit_then_application_ack() {
    let svc = service(vec![]);
    let engine = Engine::new(svc.clone(), EngineConfig::default());

    // AL/AL: CA then AA, both for the message, each with its own MSH-10.
    let r = engine.receive(enhanced(&a01("E1", "9434765919", "BED1"), "AL", "AL").as_bytes());
    assert_eq!(codes(&r), ["CA", "AA"], "{:?}", r.replies);
    assert_eq!(r.code, AckCode::AA);
    assert_eq!(
        r.replies[1], r.ack,
        "the application ACK is the recorded one"
    );
    for a in &r.replies {
        assert_eq!(msa(a, "MSA-2"), "E1");
    }
    assert_ne!(msa(&r.replies[0], "MSH-10"), msa(&r.replies[1], "MSH-10"));
    // CA means committed: the admission is there when the receipt is.
    assert_eq!(find(&svc, "Encounter", "status=in-progress").len(), 1);
    assert_eq!(
        record(&svc, r.record_id.as_deref().unwrap())["status"],
        "completed"
    );
    // A resend is acknowledged the same way, nothing applied again.
    let again = engine.receive(enhanced(&a01("E1", "9434765919", "BED1"), "AL", "AL").as_bytes());
    assert!(again.duplicate);
    assert_eq!(codes(&again), ["CA", "AA"]);

    // Each condition of table 0155, on success and on a content error.
    let bad_nhs = "9434765918";
    for (accept, application, ok_codes, err_codes) in [
        ("AL", "NE", vec!["CA"], vec!["CE"]),
        ("NE", "AL", vec!["AA"], vec!["AE"]),
        ("NE", "NE", vec![], vec![]),
        ("ER", "AL", vec!["AA"], vec!["CE", "AE"]),
        ("SU", "ER", vec!["CA"], vec!["AE"]),
        ("AL", "SU", vec!["CA", "AA"], vec!["CE"]),
        ("AL", "", vec!["CA", "AA"], vec!["CE", "AE"]),
        ("", "ER", vec!["CA"], vec!["CE", "AE"]),
    ] {
        let n = format!("{accept}{application}");
        let good = enhanced(
            &a01(&format!("G{n}"), "9434765870", &format!("B{n}")),
            accept,
            application,
        );
        let r = engine.receive(good.as_bytes());
        assert_eq!(r.code, AckCode::AA, "{}", r.ack);
        assert_eq!(codes(&r), ok_codes, "{accept}/{application} success");
        let bad = enhanced(&a01(&format!("X{n}"), bad_nhs, "BED9"), accept, application);
        let r = engine.receive(bad.as_bytes());
        assert_eq!(r.code, AckCode::AE, "{}", r.ack);
        assert_eq!(codes(&r), err_codes, "{accept}/{application} content error");
        // The commit error names the field like the application error.
        for a in &r.replies {
            assert!(a.contains(bad_nhs), "{a}");
        }
    }

    // A reject (type not mapped, policy reject): CR then AR.
    let strict = Engine::new(
        svc.clone(),
        EngineConfig {
            unsupported: UnsupportedPolicy::Reject,
            ..EngineConfig::default()
        },
    );
    let vxu = "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||VXU^V04^VXU_V04|R1|P|2.4|||AL|AL\r\
               PID|1||9434765919^^^NHS^NH||SMITH^JANE\r";
    assert_eq!(codes(&strict.receive(vxu.as_bytes())), ["CR", "AR"]);
    // Refused before mapping (no MSH-10), asking for the commit ACK only.
    let no_id = "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||ADT^A01||P|2.4|||AL|NE\rPID|1\r";
    let r = engine.receive(no_id.as_bytes());
    assert_eq!(r.code, AckCode::AR, "{}", r.ack);
    assert_eq!(codes(&r), ["CR"], "{:?}", r.replies);
}

#[test]
fn the_listener_writes_the_commit_ack_then_the_application_ack() {
    let svc = service(vec![]);
    let engine = Arc::new(Engine::new(svc.clone(), EngineConfig::default()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(wardline_integration::serve(
        listener,
        engine,
        wardline_integration::ListenerConfig::default(),
    ));
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Enhanced (AL/AL), then NE/NE (no reply at all), then original mode.
    let mut bytes = encode_frame(enhanced(&a01("L1", "9434765919", "BED1"), "AL", "AL").as_bytes());
    bytes.extend(encode_frame(
        enhanced(&a01("L2", "9434765870", "BED2"), "NE", "NE").as_bytes(),
    ));
    bytes.extend(encode_frame(a01("L3", "9434765838", "BED3").as_bytes()));
    c.write_all(&bytes).unwrap();
    let mut dec = FrameDecoder::new(1 << 20);
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while got.len() < 3 {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        dec.push(&buf[..n]).unwrap();
        while let Some(f) = dec.next_frame() {
            let t = String::from_utf8(f).unwrap();
            got.push(format!("{} {}", msa(&t, "MSA-1"), msa(&t, "MSA-2")));
        }
    }
    assert_eq!(got, ["CA L1", "AA L1", "AA L3"]);
    // L2 was applied although nothing was sent back for it.
    assert_eq!(find(&svc, "Encounter", "status=in-progress").len(), 3);
}
