//! RDE^O11 over MLLP on SQLite and PostgreSQL (issue 17):
//! * a new order for a known patient is applied as a signed, active
//!   prescription (AA), found by its placer number; its discontinuation
//!   (ORC-1 DC) stops it;
//! * a give code not in the formulary is `AE` naming RXE-2, units that are
//!   not the medicine's `AE` naming RXE-5, an unknown patient `AE` naming
//!   PID-3 — and nothing is saved for any of them (H-118, H-119);
//! * the real RDE^O11 of the shared test data (`hl7v2/fhir-converter/`),
//!   whose patient Wardline does not know, is refused with AE naming PID-3.

use crate::common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, free_port};
use serde_json::json;
use wardline_hl7::mllp::{FrameDecoder, encode_frame};
use wardline_hl7::{AckCode, Message, ack};

use crate::hl7::{Client, field};

const NHS: &str = "9434765919";

fn rde(control: &str, nhs: &str, orc1: &str, placer: &str, give: &str, units: &str) -> String {
    [
        format!(
            "MSH|^~\\&|EPMA|RWG|WARDLINE|RWG|20260302090000||RDE^O11^RDE_O11|{control}|P|2.5.1"
        ),
        format!("PID|1||{nhs}^^^NHS^NH||Smith^Alice||19500501|F"),
        format!("ORC|{orc1}|{placer}|||||||20260302090000|||1234567^Mehta^Sanjay^^^Dr"),
        "TQ1|1||QDS".to_owned(),
        format!("RXE||{give}|2||{units}||||||||||||||||||||||^Pain"),
        "RXR|PO^Oral^HL70162".to_owned(),
    ]
    .join("\r")
        + "\r"
}

fn count(s: &common::Server) -> u64 {
    s.count("MedicationRequest")
}

fn fixtures(env: &Env, s: &common::Server) {
    for r in [
        json!({"resourceType": "Patient", "id": "rde-p1", "active": true, "gender": "female", "birthDate": "1950-05-01",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
            "name": [{"use": "official", "family": "Smith", "given": ["Alice"]}]}),
        json!({"resourceType": "Encounter", "id": "rde-e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/rde-p1"}, "period": {"start": "2026-03-01T10:00:00Z"}}),
        json!({"resourceType": "Medication", "id": "med-LE2EPARA500", "status": "active",
            "code": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine", "code": "LE2EPARA500", "display": "Paracetamol 500mg tablets"}]},
            "form": {"text": "Tablet"},
            "ingredient": [{"itemCodeableConcept": {"text": "Paracetamol"}, "strength": {
                "numerator": {"value": 500, "unit": "mg"}, "denominator": {"value": 1, "unit": "tablet"}}}],
            "extension": [{"url": "https://fhir.wardline.invalid/StructureDefinition/formulary-entry", "extension": [
                {"url": "vtm", "valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine", "code": "LPARACETAMOL", "display": "Paracetamol"}},
                {"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral"}},
                {"url": "unitOfDose", "valueString": "tablet"}]}]}),
    ] {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let res = s.put(&path, &r);
        assert!(res.is_success(), "{}: {path}: {}", env.name, res.brief());
    }
}

fn scenario(env: &Env) {
    let mllp = free_port();
    let s = env.start_with(&["--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    fixtures(env, &s);
    let before = count(&s);
    let mut c = Client::connect(mllp).unwrap();

    // Refusals, each naming its field, nothing saved.
    let ack = c
        .send(&rde(
            "RDE-BAD-1",
            NHS,
            "NW",
            "RX9001",
            "NOPE123^Unknown tablets^LOCAL",
            "tablet",
        ))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AE", "{}: {ack}", env.name);
    assert!(
        ack.contains("RXE-2") && ack.contains("NOPE123"),
        "{}: {ack}",
        env.name
    );
    let ack = c
        .send(&rde(
            "RDE-BAD-2",
            NHS,
            "NW",
            "RX9002",
            "LE2EPARA500^Paracetamol^LOCAL",
            "mL",
        ))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AE", "{}: {ack}", env.name);
    assert!(ack.contains("RXE-5"), "{}: {ack}", env.name);
    let ack = c
        .send(&rde(
            "RDE-BAD-3",
            "9434765870",
            "NW",
            "RX9003",
            "LE2EPARA500^Paracetamol^LOCAL",
            "tablet",
        ))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AE", "{}: {ack}", env.name);
    assert!(ack.contains("PID-3"), "{}: {ack}", env.name);
    assert_eq!(
        count(&s),
        before,
        "{}: a refused RDE saved something",
        env.name
    );

    // Applied.
    let ack = c
        .send(&rde(
            "RDE-1",
            NHS,
            "NW",
            "RX1001",
            "LE2EPARA500^Paracetamol 500mg tablets^LOCAL",
            "tablet",
        ))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}: {ack}", env.name);
    let found = common::entries(&s.get("MedicationRequest?identifier=RX1001").body);
    assert_eq!(found.len(), 1, "{}", env.name);
    let mr = &found[0]["resource"];
    assert_eq!(mr["status"], "active");
    assert_eq!(mr["subject"]["reference"], "Patient/rde-p1");
    assert_eq!(
        mr["medicationReference"]["reference"],
        "Medication/med-LE2EPARA500"
    );
    assert_eq!(
        mr["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"],
        2.0
    );
    assert_eq!(
        mr["dosageInstruction"][0]["timing"]["repeat"]["timeOfDay"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    assert!(
        mr["extension"].as_array().unwrap().iter().any(|e| e["url"]
            == "https://fhir.wardline.invalid/StructureDefinition/prescriber-signature"),
        "{}: unsigned: {mr}",
        env.name
    );
    // A resend changes nothing.
    let ack = c
        .send(&rde(
            "RDE-1b",
            NHS,
            "NW",
            "RX1001",
            "LE2EPARA500^Paracetamol 500mg tablets^LOCAL",
            "tablet",
        ))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}: {ack}", env.name);
    assert_eq!(count(&s), before + 1, "{}", env.name);

    // Discontinued.
    let ack = c
        .send(&rde(
            "RDE-2",
            NHS,
            "DC",
            "RX1001",
            "LE2EPARA500^Paracetamol 500mg tablets^LOCAL",
            "tablet",
        ))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}: {ack}", env.name);
    let id = mr["id"].as_str().unwrap();
    assert_eq!(
        s.get(&format!("MedicationRequest/{id}")).body["status"],
        "stopped"
    );

    // The public example: its patient is unknown here.
    match common::testdata_dir("hl7v2/fhir-converter") {
        Some(dir) => {
            let text = std::fs::read_to_string(dir.join("RDE-O11-01.hl7")).unwrap();
            let ack = c.send(&text.replace('\n', "\r")).unwrap();
            assert_eq!(field(&ack, "MSA-1"), "AE", "{}: {ack}", env.name);
            assert!(ack.contains("PID-3"), "{}: {ack}", env.name);
        }
        None => eprintln!("skipped: the shared HL7 v2 test data (hl7v2/fhir-converter) is absent"),
    }
}

#[test]
fn mllp_rde_sqlite() {
    scenario(&Env::sqlite());
}

#[test]
fn mllp_rde_postgres() {
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}

/// A pharmacy system (or any feed) on 127.0.0.1: answers every message
/// ACK AA and keeps it.
fn listener() -> (String, Arc<Mutex<Vec<String>>>) {
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
                        let reply = ack(&m, AckCode::AA, &[]).encode();
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

fn ras_scenario(env: &Env) {
    let (pharm, received) = listener();
    let (lab, _) = listener();
    let mllp = free_port();
    let s = env.start_with(&[
        "--mllp-listen",
        &format!("127.0.0.1:{mllp}"),
        "--hl7-destination",
        &format!("PHARM={pharm}/PHARMSYS^RWG;pharmacy=ras"),
        "--hl7-destination",
        &format!("LAB={lab}"),
    ]);
    fixtures(env, &s);
    let mut c = Client::connect(mllp).unwrap();
    let ack = c
        .send(&rde(
            "RDE-RAS-1",
            NHS,
            "NW",
            "RX2001",
            "LE2EPARA500^Paracetamol 500mg tablets^LOCAL",
            "tablet",
        ))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}: {ack}", env.name);
    let found = common::entries(&s.get("MedicationRequest?identifier=RX2001").body);
    assert_eq!(found.len(), 1, "{}", env.name);
    let mr_id = found[0]["resource"]["id"].as_str().unwrap().to_owned();

    let dose = |status: &str| {
        let mut ma = json!({"resourceType": "MedicationAdministration", "status": status,
            "medicationReference": {"reference": "Medication/med-LE2EPARA500"},
            "subject": {"reference": "Patient/rde-p1"},
            "context": {"reference": "Encounter/rde-e1"},
            "request": {"reference": format!("MedicationRequest/{mr_id}")},
            "effectiveDateTime": "2026-03-02T12:05:00Z"});
        if status == "completed" {
            ma["dosage"] = json!({"dose": {"value": 2, "unit": "tablet"},
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral"}]}});
        } else {
            ma["statusReason"] = json!([{"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/dose-omission",
                "code": "refused", "display": "Patient refused"}]}]);
            ma["effectiveDateTime"] = json!("2026-03-02T18:00:00Z");
        }
        ma
    };
    for status in ["completed", "not-done"] {
        let r = s.post("MedicationAdministration", &dose(status));
        assert!(r.is_success(), "{}: {}", env.name, r.brief());
    }

    // Both reach the pharmacy system (bounded wait for delivery).
    let mut ras = Vec::new();
    for _ in 0..400 {
        ras = received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("|RAS^O17^RAS_O17|"))
            .cloned()
            .collect::<Vec<_>>();
        if ras.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ras.len(), 2, "{}: {:?}", env.name, received.lock().unwrap());
    let f = |m: &str, path: &str| {
        Message::parse(m)
            .unwrap()
            .text(path)
            .unwrap()
            .map(|c| c.into_owned())
            .unwrap_or_default()
    };
    let given = &ras[0];
    assert_eq!(f(given, "MSH-5"), "PHARMSYS", "{}", env.name);
    assert_eq!(f(given, "MSH-12"), "2.5.1");
    assert_eq!(f(given, "PID-3.1"), NHS);
    assert_eq!(f(given, "PV1-2"), "I");
    assert_eq!(f(given, "ORC-1"), "RE");
    assert_eq!(f(given, "ORC-2"), "RX2001", "the sender's placer number");
    assert_eq!(f(given, "ORC-3"), mr_id);
    assert_eq!(f(given, "ORC-12.2"), "Mehta");
    assert_eq!(f(given, "RXA-3"), "20260302120500+0000");
    assert_eq!(f(given, "RXA-5.1"), "LE2EPARA500");
    assert_eq!(f(given, "RXA-5.3"), "L");
    assert_eq!(f(given, "RXA-6"), "2");
    assert_eq!(f(given, "RXA-7.1"), "tablet");
    assert_eq!(f(given, "RXA-20"), "CP");
    assert_eq!(f(given, "RXA-21"), "A");
    assert_eq!(f(given, "RXR-1.1"), "PO");
    let refused = &ras[1];
    assert_eq!(f(refused, "PID-3.1"), NHS);
    assert_eq!(f(refused, "ORC-2"), "RX2001");
    assert_eq!(f(refused, "RXA-6"), "0");
    assert_eq!(f(refused, "RXA-18.1"), "refused");
    assert_eq!(f(refused, "RXA-20"), "RE");
    // The prescription's route when the record gives none.
    assert_eq!(f(refused, "RXR-1.1"), "PO");

    // The other destination's feed is unchanged: its queue holds no RAS.
    let queued = s.search_all(&format!(
        "Communication?category={}&_count=200",
        common::escape_uri("https://fhir.wardline.invalid/CodeSystem/hl7v2-destination|LAB")
    ));
    assert!(!queued.is_empty(), "{}: LAB gets its ADT feed", env.name);
    assert!(
        !queued.iter().any(|q| q.to_string().contains("\"RAS\"")),
        "{}: a RAS^O17 queued for LAB",
        env.name
    );
}

#[test]
fn mllp_ras_sqlite() {
    ras_scenario(&Env::sqlite());
}

#[test]
fn mllp_ras_postgres() {
    if let Some(pg) = Env::postgres() {
        ras_scenario(&pg);
    }
}
