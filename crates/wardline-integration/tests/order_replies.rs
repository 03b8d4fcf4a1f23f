//! Orders through the outbox (in-process, SQLite): a requisition is one
//! OML^O21 to a destination taking OML and one ORM^O01 per order to one
//! configured `;orders=orm`; the filler's ORL^O22, arriving as the
//! application acknowledgement, is applied to the orders by the
//! dispatcher (filler number, a refused order cancelled with its reason)
//! and not echoed back.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{Value, json};
use wardline_core::{FhirService, ServiceConfig, Trusted};
use wardline_hl7::mllp::{FrameDecoder, encode_frame};
use wardline_hl7::{Message, MessageBuilder, Separators};
use wardline_hl7_fhir::MappingConfig;
use wardline_hl7_fhir::outbound::OrderFormat;
use wardline_integration::message_store::payload_text;
use wardline_integration::{Destination, DispatchConfig, Dispatcher, OutboxHook};

const WL: &str = "https://fhir.wardline.invalid";

fn service(dests: Vec<Destination>) -> Arc<FhirService> {
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().unwrap();
    let svc = FhirService::new(Arc::new(store), ServiceConfig::default())
        .with_hook(Arc::new(OutboxHook::new(dests, MappingConfig::default())));
    Arc::new(svc)
}

fn find(svc: &FhirService, t: &str, q: &str) -> Vec<Value> {
    svc.transact(&Trusted::operator("test"), |tx| tx.find(t, q))
        .unwrap()
}

fn get(svc: &FhirService, t: &str, id: &str) -> Value {
    svc.transact(&Trusted::operator("test"), |tx| tx.get(t, id))
        .unwrap()
        .unwrap()
}

fn queued(svc: &FhirService, dest: &str, status: &str) -> Vec<String> {
    find(
        svc,
        "Communication",
        &format!(
            "category=https://fhir.wardline.invalid/CodeSystem/hl7v2-destination|{dest}&status={status}"
        ),
    )
    .iter()
    .filter_map(|r| payload_text(r, 0))
    .collect()
}

/// A patient and a requisition of two orders, written in one transaction.
fn place(svc: &FhirService) {
    svc.transact(&Trusted::operator("test"), |tx| {
        tx.save(json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
            "name": [{"family": "SMITH"}]}))?;
        for n in 1..=2 {
            tx.save(json!({"resourceType": "ServiceRequest", "id": format!("sr{n}"),
                "status": "active", "intent": "order",
                "requisition": {"system": format!("{WL}/Id/requisition"), "value": "R0000009"},
                "identifier": [{"system": format!("{WL}/Id/placer-order"), "value": format!("R0000009-{n}")}],
                "code": {"text": format!("Test {n}")},
                "subject": {"reference": "Patient/p1"}}))?;
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn destinations_take_an_order_format() {
    let d = Destination::parse("LAB=127.0.0.1:2576/LABSYS^RWG").unwrap();
    assert_eq!(d.orders, OrderFormat::Oml, "OML^O21 by default");
    let d = Destination::parse("RIS=127.0.0.1:2577/RADIS^RWG;orders=orm").unwrap();
    assert_eq!(
        (d.orders, d.receiving_application.as_str()),
        (OrderFormat::Orm, "RADIS")
    );
    let d = Destination::parse("RIS=127.0.0.1:2577;orders=OML").unwrap();
    assert_eq!(d.orders, OrderFormat::Oml);
    let e = Destination::parse("RIS=127.0.0.1:2577;orders=hl7").unwrap_err();
    assert!(e.contains("orders=orm"), "{e}");
    assert!(Destination::parse("RIS=127.0.0.1:2577;colour=red").is_err());
}

proptest::proptest! {
    /// Any well-formed spec reads back as what it says, with or without
    /// the order option; an unknown option is refused naming it.
    #[test]
    fn destination_specs(
        name in "[A-Za-z0-9_-]{1,12}",
        port in 1u16..,
        app in proptest::option::of("[A-Z]{1,8}"),
        orders in proptest::option::of(proptest::sample::select(vec!["oml", "orm", "ORM", "other"])),
    ) {
        let mut spec = format!("{name}=127.0.0.1:{port}");
        if let Some(a) = &app {
            spec.push_str(&format!("/{a}^RWG"));
        }
        if let Some(o) = orders {
            spec.push_str(&format!(";orders={o}"));
        }
        match (Destination::parse(&spec), orders) {
            (Err(e), Some("other")) => proptest::prop_assert!(e.contains("orders=other"), "{}", e),
            (Ok(d), o) => {
                proptest::prop_assert_eq!(&d.name, &name);
                proptest::prop_assert_eq!(d.address, format!("127.0.0.1:{port}"));
                proptest::prop_assert_eq!(d.receiving_application, app.clone().unwrap_or(name.clone()));
                let want = if o.is_some_and(|o| o.eq_ignore_ascii_case("orm")) {
                    OrderFormat::Orm
                } else {
                    OrderFormat::Oml
                };
                proptest::prop_assert_eq!(d.orders, want);
            }
            (r, o) => proptest::prop_assert!(false, "{spec}: {r:?} ({o:?})"),
        }
    }
}

#[test]
fn a_requisition_is_one_oml_or_an_orm_per_order_by_destination() {
    let svc = service(vec![
        Destination::parse("LAB=127.0.0.1:1").unwrap(),
        Destination::parse("RIS=127.0.0.1:1;orders=orm").unwrap(),
    ]);
    place(&svc);
    let lab = queued(&svc, "LAB", "preparation");
    let ris = queued(&svc, "RIS", "preparation");
    let types = |q: &[String]| -> Vec<String> {
        q.iter()
            .map(|m| {
                Message::parse(m)
                    .unwrap()
                    .get("MSH-9")
                    .unwrap()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let mut lt = types(&lab);
    lt.sort();
    assert_eq!(lt, ["ADT^A28^ADT_A05", "OML^O21^OML_O21"]);
    let mut rt = types(&ris);
    rt.sort();
    assert_eq!(
        rt,
        ["ADT^A28^ADT_A05", "ORM^O01^ORM_O01", "ORM^O01^ORM_O01"]
    );
    let oml = lab.iter().find(|m| m.contains("OML^O21")).unwrap();
    assert_eq!(
        Message::parse(oml).unwrap().segments_with_id("ORC").count(),
        2
    );
}

/// A filler that answers the OML^O21 with an ORL^O22: the first order
/// refused (UA, with a reason), the others accepted with a number.
fn filler() -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut dec = FrameDecoder::new(1 << 20);
        let mut buf = [0u8; 8192];
        let mut got = Vec::new();
        while got.len() < 2 {
            while let Some(f) = dec.next_frame() {
                let text = String::from_utf8(f).unwrap();
                let m = Message::parse(&text).unwrap();
                let mut b = MessageBuilder::new(Separators::default());
                let is_oml = m.message_type().as_deref() == Some("OML");
                b.msh()
                    .set(3, "LABSYS")
                    .set(7, "20261123120000")
                    .set_component(9, 1, if is_oml { "ORL" } else { "ACK" })
                    .set_component(9, 2, if is_oml { "O22" } else { "A28" })
                    .set(10, "R1")
                    .set(11, "P")
                    .set(12, "2.5.1");
                b.segment("MSA")
                    .set(1, "AA")
                    .set(2, &m.control_id().unwrap_or_default());
                if is_oml {
                    for (i, orc) in m.segments_with_id("ORC").enumerate() {
                        let placer = orc.field(2).unwrap().raw().to_owned();
                        let seg = b.segment("ORC");
                        if i == 0 {
                            seg.set(1, "UA").set(2, &placer).set_component(
                                16,
                                2,
                                "No sample received",
                            );
                        } else {
                            seg.set(1, "OK")
                                .set(2, &placer)
                                .set(3, &format!("L{placer}"));
                        }
                    }
                }
                conn.write_all(&encode_frame(b.encode().as_bytes()))
                    .unwrap();
                got.push(text);
            }
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = dec.push(&buf[..n]);
                }
            }
        }
        got
    });
    (addr, h)
}

#[test]
fn the_fillers_orl_reply_is_applied_to_the_orders_and_not_echoed() {
    let (addr, server) = filler();
    let dest = Destination::parse(&format!("LAB={addr}/LABSYS^RWG")).unwrap();
    let svc = service(vec![dest.clone()]);
    place(&svc);
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = DispatchConfig {
        poll: Duration::from_millis(10),
        ack_timeout: Duration::from_secs(10),
        ..DispatchConfig::default()
    };
    let mut d =
        Dispatcher::new(svc.clone(), dest, cfg, stop).with_mapping(MappingConfig::default());
    for _ in 0..20 {
        d.round().unwrap();
        if queued(&svc, "LAB", "preparation").is_empty() {
            break;
        }
    }
    drop(d);
    let got = server.join().unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    let sr1 = get(&svc, "ServiceRequest", "sr1");
    assert_eq!(sr1["status"], "revoked", "{sr1}");
    let note = sr1["note"][0]["text"].as_str().unwrap();
    assert!(
        note.contains("LABSYS could not accept the order (UA): No sample received"),
        "{note}"
    );
    let sr2 = get(&svc, "ServiceRequest", "sr2");
    assert_eq!(sr2["status"], "active");
    assert!(
        sr2["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["value"] == "LR0000009-2"),
        "{sr2}"
    );
    // Both messages delivered; the reply's changes were not queued back
    // to the laboratory that made them.
    assert_eq!(queued(&svc, "LAB", "completed").len(), 2);
    assert!(queued(&svc, "LAB", "preparation").is_empty());
}
