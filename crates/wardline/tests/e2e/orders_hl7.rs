//! Issue 16 over MLLP with a real peer, on SQLite and PostgreSQL:
//! * a requisition written to the server leaves as **one OML^O21** to a
//!   laboratory system run by the test (a Rust MLLP listener), which
//!   answers with ORL^O22 accepting each order with its own number; the
//!   orders then carry the filler numbers;
//! * an ORU^R01 sent back over MLLP lands against the right order of the
//!   right patient and in the requester's inbox (a critical result-review
//!   Task); a result for a patient Wardline does not know is accepted
//!   (AA) and waits unmatched — no Patient is made from it;
//! * every ORU^R01 of the shared test data (`$WARDLINE_TESTDATA` or
//!   `../shared/testdata`, `hl7v2/`) is acknowledged AA or AE with a reason,
//!   every AA'd message is stored with its report(s), and, the record
//!   having no patients, every report is in the unmatched worklist.

use crate::common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, escape_uri, free_port};
use serde_json::{Value, json};
use wardline_hl7::mllp::{FrameDecoder, encode_frame};
use wardline_hl7::{AckCode, Message, MessageBuilder, Separators, ack};

use crate::hl7::{Client, field};

const WL: &str = "https://fhir.wardline.invalid";
const NHS: &str = "9434765919";
const UNMATCHED_TAG: &str = "https://fhir.wardline.invalid/CodeSystem/result-match|unmatched";

/// The ORL^O22 a laboratory sends back for an OML^O21: each order accepted
/// (`OK`) with filler number `L` + its placer number.
fn orl(oml: &Message<'_>) -> String {
    let mut b = MessageBuilder::new(Separators::default());
    b.msh()
        .set(3, "LABSYS")
        .set(4, "RWG")
        .set(5, oml.sending_application().unwrap_or_default())
        .set(7, "20261123120000")
        .set_component(9, 1, "ORL")
        .set_component(9, 2, "O22")
        .set_component(9, 3, "ORL_O22")
        .set(10, &format!("ORL{}", oml.control_id().unwrap_or_default()))
        .set(11, "P")
        .set(12, "2.5.1");
    b.segment("MSA")
        .set(1, "AA")
        .set(2, &oml.control_id().unwrap_or_default());
    for orc in oml.segments_with_id("ORC") {
        let placer = orc.field(2).map(|f| f.raw().to_owned()).unwrap_or_default();
        b.segment("ORC")
            .set(1, "OK")
            .set(2, &placer)
            .set(3, &format!("L{placer}"));
    }
    b.encode()
}

/// A laboratory system on 127.0.0.1: answers OML^O21 with ORL^O22 and
/// anything else with an ACK AA; keeps every message it received (the
/// outpatients test uses it as the PAS that receives SIU).
pub(crate) fn laboratory() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let got = received.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let got = got.clone();
            std::thread::spawn(move || {
                let mut dec = FrameDecoder::new(1 << 20);
                let mut buf = [0u8; 8192];
                loop {
                    while let Some(f) = dec.next_frame() {
                        let text = String::from_utf8(f).unwrap();
                        let m = Message::parse(&text).unwrap();
                        let reply = if m.message_type().as_deref() == Some("OML") {
                            orl(&m)
                        } else {
                            ack(&m, AckCode::AA, &[]).encode()
                        };
                        got.lock().unwrap().push(text);
                        conn.write_all(&encode_frame(reply.as_bytes())).unwrap();
                    }
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let _ = dec.push(&buf[..n]);
                        }
                    }
                }
            });
        }
    });
    (addr, received)
}

fn put(id: &str, v: Value) -> Value {
    let t = v["resourceType"].as_str().unwrap().to_owned();
    let mut v = v;
    v["id"] = json!(id);
    json!({"resource": v, "request": {"method": "PUT", "url": format!("{t}/{id}")}})
}

/// A requisition as the requesting pages write it (contract section 2):
/// two ServiceRequests sharing the requisition, one specimen.
fn requisition_bundle() -> Value {
    let sr = |n: usize, code: &str, title: &str| {
        put(
            &format!("sr{n}"),
            json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                "priority": "urgent",
                "requisition": {"system": format!("{WL}/Id/requisition"), "value": "R0000001"},
                "identifier": [{"system": format!("{WL}/Id/placer-order"), "value": format!("R0000001-{n}")}],
                "instantiatesCanonical": [format!("{WL}/ActivityDefinition/{code}")],
                "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "108252007"}]}],
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}], "text": title},
                "subject": {"reference": "Patient/p1"},
                "requester": {"reference": "Practitioner/doc"},
                "authoredOn": "2026-11-23T10:00:00+00:00",
                "specimen": [{"reference": "Specimen/sp1"}],
                "note": [{"text": "Chest pain, ?ACS"}]}),
        )
    };
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        put("doc", json!({"resourceType": "Practitioner",
            "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "4123456"}],
            "name": [{"family": "House", "given": ["Gregory"]}]})),
        put("p1", json!({"resourceType": "Patient",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
            "name": [{"family": "SMITH", "given": ["Jane"]}], "gender": "female", "birthDate": "1980-02-14"})),
        put("sp1", json!({"resourceType": "Specimen", "status": "available",
            "identifier": [{"system": format!("{WL}/Id/specimen"), "value": "R0000001-1"}],
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000"}]},
            "subject": {"reference": "Patient/p1"},
            "container": [{"type": {"text": "EDTA (purple top)"}}]})),
        sr(1, "26604007", "Full blood count"),
        sr(2, "444164000", "Urea and electrolytes"),
    ]})
}

fn oru(ctrl: &str, nhs: &str, placer: &str, filler: &str) -> String {
    [
        format!("MSH|^~\\&|LABSYS|RWG|WARDLINE|RWG|20261123120000||ORU^R01^ORU_R01|{ctrl}|P|2.5.1"),
        format!("PID|1||{nhs}^^^NHS^NH||SMITH^Jane||19800214|F"),
        format!("ORC|RE|{placer}|{filler}"),
        format!("OBR|1|{placer}|{filler}|26604007^Full blood count^SCT|||20261123110000|||||||||||||||20261123115000||HM|F"),
        "OBX|1|NM|718-7^Haemoglobin^LN||62|g/L^g/L^UCUM|115-165|LL|||F".into(),
    ]
    .join("\r")
        + "\r"
}

fn orders_round_trip(env: &Env) {
    let (lab, received) = laboratory();
    let mllp = free_port();
    let s = env.start_with(&[
        "--mllp-listen",
        &format!("127.0.0.1:{mllp}"),
        "--hl7-destination",
        &format!("LAB={lab}/LABSYS^RWG"),
    ]);
    let r = s.post("", &requisition_bundle());
    assert_eq!(r.status, 200, "{}", r.text);

    // The requisition leaves as one OML^O21 (bounded wait for delivery).
    let mut omls = Vec::new();
    for _ in 0..400 {
        omls = received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("|OML^O21^OML_O21|"))
            .cloned()
            .collect();
        if !omls.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(omls.len(), 1, "one OML^O21: {:?}", received.lock().unwrap());
    let m = Message::parse(&omls[0]).unwrap();
    assert_eq!(m.get("MSH-5").unwrap(), Some("LABSYS"));
    assert_eq!(m.get("MSH-12").unwrap(), Some("2.5.1"));
    assert_eq!(m.get("PID-3.1").unwrap(), Some(NHS));
    let orcs: Vec<(String, String, String)> = m
        .segments_with_id("ORC")
        .map(|o| {
            let f = |n| o.field(n).map(|f| f.raw().to_owned()).unwrap_or_default();
            (f(1), f(2), f(4))
        })
        .collect();
    assert_eq!(
        orcs,
        [
            ("NW".into(), "R0000001-1".into(), "R0000001".into()),
            ("NW".into(), "R0000001-2".into(), "R0000001".into())
        ]
    );
    assert_eq!(m.get("SPM-2").unwrap(), Some("R0000001-1"));
    assert_eq!(m.get("OBR-16.1").unwrap(), Some("4123456"));

    // The ORL^O22 reply gave each order its filler number.
    let filler_of = |id: &str| -> Option<String> {
        s.get(&format!("ServiceRequest/{id}")).body["identifier"]
            .as_array()?
            .iter()
            .find(|i| i["system"] == format!("{WL}/Id/filler-order").as_str())
            .and_then(|i| i["value"].as_str().map(str::to_owned))
    };
    for _ in 0..400 {
        if filler_of("sr2").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(filler_of("sr1").as_deref(), Some("LR0000001-1"));
    assert_eq!(filler_of("sr2").as_deref(), Some("LR0000001-2"));
    assert_eq!(s.get("ServiceRequest/sr1").body["status"], "active");
    // The reply is not echoed back as an order update.
    assert_eq!(
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("|OML^O21"))
            .count(),
        1
    );

    // The result comes back over MLLP and lands against the order.
    let mut c = Client::connect(mllp).unwrap();
    let ack = c
        .send(&oru("RES-1", NHS, "R0000001-1", "LR0000001-1"))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
    let reports = s.search_all("DiagnosticReport?based-on=ServiceRequest/sr1");
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["subject"]["reference"], "Patient/p1");
    assert_eq!(reports[0]["status"], "final");
    assert!(
        reports[0]["meta"]
            .get("tag")
            .is_none_or(|t| !t.to_string().contains("unmatched"))
    );
    // … and in the requester's inbox: a result-review Task, critical.
    let inbox = s.search_all(&escape_uri(&format!(
        "Task?owner=Practitioner/doc&code={WL}/CodeSystem/task|result-review"
    )));
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(
        inbox[0]["focus"]["reference"],
        format!("DiagnosticReport/{}", reports[0]["id"].as_str().unwrap())
    );
    assert_eq!(inbox[0]["for"]["reference"], "Patient/p1");
    assert_eq!(
        inbox[0]["priority"], "stat",
        "haemoglobin 62 g/L, LL: critical"
    );

    // A result for a patient Wardline does not know: accepted, unmatched,
    // and no Patient made from it.
    let ack = c
        .send(&oru("RES-2", "9434765870", "R0000001-2", "LR0000001-2"))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
    assert_eq!(s.count("Patient"), 1);
    assert_eq!(
        s.count(&escape_uri(&format!(
            "DiagnosticReport?_tag={UNMATCHED_TAG}"
        ))),
        1
    );
    assert_eq!(
        s.count("DiagnosticReport?based-on=ServiceRequest/sr2"),
        0,
        "not filed to the order of another patient"
    );
}

#[test]
fn mllp_orders_and_results_sqlite() {
    orders_round_trip(&Env::sqlite());
}

#[test]
fn mllp_orders_and_results_postgres() {
    if let Some(env) = Env::postgres() {
        orders_round_trip(&env);
    }
}

/// The message with MSH-15/MSH-16 emptied: every message then gets the one
/// application ACK (AA/AE/AR) this test reads. The acknowledgement modes
/// themselves are `hl7.rs`'s business; the result is unchanged.
fn original_mode(m: &Message<'_>) -> String {
    let text = m.encode();
    let fs = m.separators().field;
    let (msh, rest) = text.split_at(text.find('\r').unwrap_or(text.len()));
    let mut fields: Vec<&str> = msh.split(fs).collect();
    for i in [14, 15] {
        if i < fields.len() {
            fields[i] = "";
        }
    }
    format!("{}{rest}", fields.join(&fs.to_string()))
}

/// Every ORU^R01 of the shared test data, over MLLP.
fn shared_results(env: &Env) {
    let Some(dir) = common::testdata_dir("hl7v2") else {
        println!(
            "SKIPPED: shared HL7 v2 test data not found under {} (set WARDLINE_TESTDATA)",
            common::testdata().display()
        );
        return;
    };
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_none_or(|x| x != "gz") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut results = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let Ok(file) = wardline_hl7::parse_file_bytes(&bytes) else {
            continue;
        };
        for m in file.messages() {
            if m.message_type().as_deref() == Some("ORU")
                && m.trigger_event().as_deref() == Some("R01")
            {
                results.push((
                    f.display().to_string(),
                    m.sending_application().unwrap_or_default().to_owned(),
                    m.sending_facility().unwrap_or_default().to_owned(),
                    m.control_id().unwrap_or_default().into_owned(),
                    original_mode(m),
                ));
            }
        }
    }
    assert!(results.len() > 100, "{} ORU^R01 found", results.len());
    let mllp = free_port();
    let s = env.start_with(&["--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    let mut c = Client::connect(mllp).unwrap();
    let mut accepted = std::collections::BTreeSet::new();
    let (mut aa, mut ae) = (0, 0);
    for (file, app, fac, ctrl, text) in &results {
        let ack = c.send(text).unwrap();
        match field(&ack, "MSA-1").as_str() {
            "AA" => {
                aa += 1;
                accepted.insert((app.clone(), fac.clone(), ctrl.clone()));
            }
            "AE" => {
                ae += 1;
                let why = field(&ack, "ERR-8") + &field(&ack, "MSA-3");
                assert!(
                    !why.trim().is_empty(),
                    "{file} {ctrl}: AE without a reason: {ack}"
                );
            }
            other => panic!("{file} {ctrl}: {other}: {ack}"),
        }
    }
    // Every accepted message is recorded, with the report(s) it stored.
    let records = s.search_all(&escape_uri(
        "Communication?category=http://terminology.hl7.org/CodeSystem/v2-0076|ORU&status=completed&_count=500",
    ));
    assert_eq!(
        records.len(),
        accepted.len(),
        "one record per accepted message"
    );
    let mut reports = std::collections::BTreeSet::new();
    for rec in &records {
        let about: Vec<String> = rec["about"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["reference"].as_str())
                    .filter(|r| r.starts_with("DiagnosticReport/"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !about.is_empty(),
            "an accepted result stored no report: {rec}"
        );
        reports.extend(about);
    }
    let stored = s.count("DiagnosticReport");
    assert_eq!(
        stored as usize,
        reports.len(),
        "every stored report came from an accepted message"
    );
    // No patient is known: every report is in the unmatched worklist.
    let unmatched = s.count(&escape_uri(&format!(
        "DiagnosticReport?_tag={UNMATCHED_TAG}"
    )));
    assert_eq!(unmatched, stored);
    assert_eq!(s.count("Patient"), 0, "no Patient made from a result");
    println!(
        "shared ORU^R01: {} sent, {aa} AA ({} distinct), {ae} AE; {stored} reports stored, {unmatched} in the unmatched worklist",
        results.len(),
        accepted.len()
    );
}

#[test]
fn mllp_shared_results_sqlite() {
    shared_results(&Env::sqlite());
}

#[test]
fn mllp_shared_results_postgres() {
    if let Some(env) = Env::postgres() {
        shared_results(&env);
    }
}
