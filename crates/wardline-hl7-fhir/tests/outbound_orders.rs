//! Orders out: a requisition (the ServiceRequests placed together, sharing
//! `requisition`) leaves as one OML^O21 with an order group per request and
//! an SPM per specimen; a destination configured for ORM^O01 gets one
//! ORM per request as before; the OML reads back through Wardline's own
//! inbound mapping as the orders it was made from.

use serde_json::{Value, json};
use wardline_hl7::Message;
use wardline_hl7_fhir::memory::MemoryRecords;
use wardline_hl7_fhir::outbound::{Built, Change, OrderFormat, messages_for};
use wardline_hl7_fhir::{MappingConfig, NHS_NUMBER_SYSTEM, Records};

const TS: &str = "20261123101500+0000";
const WL: &str = "https://fhir.wardline.invalid";

fn cfg() -> MappingConfig {
    MappingConfig::default()
}

fn records() -> MemoryRecords {
    let mut r = MemoryRecords::new();
    for f in [
        json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765919"}],
            "name": [{"family": "Smith", "given": ["Ann"]}], "gender": "female", "birthDate": "1980-03-14"}),
        json!({"resourceType": "Practitioner", "id": "doc",
            "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "4123456"}],
            "name": [{"family": "House", "given": ["Gregory"]}]}),
        json!({"resourceType": "Specimen", "id": "sp1", "status": "available",
            "identifier": [{"system": format!("{WL}/Id/specimen"), "value": "R0000042-1"}],
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000", "display": "Blood specimen"}]},
            "subject": {"reference": "Patient/p1"},
            "container": [{"type": {"text": "EDTA (purple top)"}}]}),
        json!({"resourceType": "QuestionnaireResponse", "id": "qr1", "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "item": [
                {"linkId": "clinical-indication", "text": "Clinical indication", "answer": [{"valueString": "Cough, fever | crackles"}]},
                {"linkId": "pregnancy", "answer": [{"valueCoding": {"code": "not-pregnant", "display": "Not pregnant"}}]},
                {"linkId": "unanswered"}]}),
    ] {
        r.save(f).expect("valid fixture");
    }
    r
}

fn sr(id: &str, n: usize, code: &str, requisition: Option<&str>) -> Value {
    let mut v = json!({"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
        "priority": "urgent",
        "identifier": [{"system": format!("{WL}/Id/placer-order"), "value": format!("R0000042-{n}")}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}], "text": code},
        "subject": {"reference": "Patient/p1"},
        "requester": {"reference": "Practitioner/doc"},
        "authoredOn": "2026-11-23T10:00:00+00:00",
        "note": [{"text": "Clinical details: chest pain"}]});
    if let Some(r) = requisition {
        v["requisition"] = json!({"system": format!("{WL}/Id/requisition"), "value": r});
    }
    v
}

fn build(
    r: &mut MemoryRecords,
    changes: &[(&str, Option<&Value>, Option<&Value>)],
    f: OrderFormat,
) -> Vec<Built> {
    for (_, _, a) in changes {
        if let Some(a) = a {
            r.save((*a).clone()).expect("valid");
        }
    }
    let views: Vec<Change> = changes
        .iter()
        .map(|(t, b, a)| Change {
            resource_type: t,
            before: *b,
            after: *a,
        })
        .collect();
    let mut n = 0;
    let mut ctrl = || {
        n += 1;
        format!("C{n}")
    };
    messages_for(&views, r, &cfg(), f, &mut ctrl, TS)
}

fn msg(b: &Built) -> Message<'static> {
    let m = b.message.clone().expect("maps").expect("a message");
    let p = Message::parse(&m.text).expect("parses").into_owned();
    assert_eq!(p.encode(), m.text);
    p
}

fn t(m: &Message, path: &str) -> Option<String> {
    m.text(path).expect("path").map(|c| c.into_owned())
}

fn ids(m: &Message) -> Vec<String> {
    m.segments().iter().map(|s| s.id().to_string()).collect()
}

#[test]
fn a_requisition_is_one_oml_o21_with_an_order_group_per_request() {
    let mut r = records();
    let mut fbc = sr("sr1", 1, "26604007", Some("R0000042"));
    fbc["specimen"] = json!([{"reference": "Specimen/sp1"}]);
    let ue = sr("sr2", 2, "444164000", Some("R0000042"));
    let mut cxr = sr("sr3", 3, "399208008", Some("R0000042"));
    cxr["supportingInfo"] = json!([{"reference": "QuestionnaireResponse/qr1"}]);
    let other = sr("sr9", 1, "1000", Some("R0000043"));
    let sp = r.get("Specimen", "sp1").unwrap();
    let built = build(
        &mut r,
        &[
            ("ServiceRequest", None, Some(&fbc)),
            ("Specimen", None, Some(&sp)),
            ("ServiceRequest", None, Some(&ue)),
            ("ServiceRequest", None, Some(&other)),
            ("ServiceRequest", None, Some(&cxr)),
        ],
        OrderFormat::Oml,
    );
    // One for R0000042 (three requests), one for the Specimen (no
    // message), one for R0000043.
    assert_eq!(built.len(), 3, "{built:?}");
    assert_eq!(
        built[0].about,
        [
            "ServiceRequest/sr1",
            "ServiceRequest/sr2",
            "ServiceRequest/sr3"
        ]
    );
    assert_eq!(built[1].message, Ok(None));
    let m = msg(&built[0]);
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("OML^O21^OML_O21"));
    assert_eq!(t(&m, "MSH-12").as_deref(), Some("2.5.1"));
    assert_eq!(
        ids(&m),
        [
            "MSH", "PID", "ORC", "TQ1", "OBR", "NTE", "SPM", "ORC", "TQ1", "OBR", "NTE", "ORC",
            "TQ1", "OBR", "NTE", "OBX", "OBX"
        ]
    );
    let orcs: Vec<_> = m.segments_with_id("ORC").collect();
    for (i, orc) in orcs.iter().enumerate() {
        assert_eq!(
            orc.field(1).map(|f| f.raw().to_owned()).as_deref(),
            Some("NW")
        );
        assert_eq!(
            orc.field(2).map(|f| f.raw().to_owned()),
            Some(format!("R0000042-{}", i + 1))
        );
        // Placer group number = the requisition.
        assert_eq!(
            orc.field(4).map(|f| f.raw().to_owned()).as_deref(),
            Some("R0000042")
        );
    }
    assert_eq!(t(&m, "TQ1-9").as_deref(), Some("A"));
    assert_eq!(t(&m, "OBR-4.1").as_deref(), Some("26604007"));
    assert_eq!(t(&m, "OBR-16.1").as_deref(), Some("4123456"));
    assert_eq!(t(&m, "SPM-2").as_deref(), Some("R0000042-1"));
    assert_eq!(t(&m, "SPM-4.1").as_deref(), Some("119297000"));
    assert_eq!(t(&m, "SPM-27.2").as_deref(), Some("EDTA (purple top)"));
    let obx: Vec<String> = m.segments_with_id("OBX").map(|s| s.encode()).collect();
    assert!(
        obx[0].starts_with(
            "OBX|1|ST|clinical-indication^Clinical indication^L||Cough, fever \\F\\ crackles"
        ),
        "{obx:?}"
    );
    assert!(
        obx[1].contains("|CWE|pregnancy^^L||not-pregnant^Not pregnant|"),
        "{obx:?}"
    );
    // The other requisition is its own message.
    let m2 = msg(&built[2]);
    assert_eq!(t(&m2, "ORC-4").as_deref(), Some("R0000043"));
    assert_eq!(m2.segments_with_id("ORC").count(), 1);
}

#[test]
fn a_cancelled_request_is_orc_ca_and_changes_that_say_nothing_send_nothing() {
    let mut r = records();
    let a = sr("sr1", 1, "26604007", Some("R0000042"));
    let b = sr("sr2", 2, "444164000", Some("R0000042"));
    let mut cancelled = a.clone();
    cancelled["status"] = json!("revoked");
    let mut meta_only = b.clone();
    meta_only["meta"] = json!({"versionId": "2"});
    let built = build(
        &mut r,
        &[
            ("ServiceRequest", Some(&a), Some(&cancelled)),
            ("ServiceRequest", Some(&b), Some(&meta_only)),
        ],
        OrderFormat::Oml,
    );
    assert_eq!(built.len(), 1);
    let m = msg(&built[0]);
    assert_eq!(
        m.segments_with_id("ORC").count(),
        1,
        "only the cancelled one"
    );
    assert_eq!(t(&m, "ORC-1").as_deref(), Some("CA"));
    assert_eq!(t(&m, "ORC-2").as_deref(), Some("R0000042-1"));
    assert_eq!(t(&m, "ORC-5").as_deref(), Some("CA"));
    // Nothing at all when no order changed what it sends.
    let built = build(
        &mut r,
        &[("ServiceRequest", Some(&b), Some(&meta_only))],
        OrderFormat::Oml,
    );
    assert_eq!(built.len(), 1);
    assert_eq!(built[0].message, Ok(None));
}

#[test]
fn an_orm_destination_gets_one_orm_o01_per_request() {
    let mut r = records();
    let a = sr("sr1", 1, "26604007", Some("R0000042"));
    let b = sr("sr2", 2, "444164000", Some("R0000042"));
    let built = build(
        &mut r,
        &[
            ("ServiceRequest", None, Some(&a)),
            ("ServiceRequest", None, Some(&b)),
        ],
        OrderFormat::Orm,
    );
    assert_eq!(built.len(), 2);
    for (i, b) in built.iter().enumerate() {
        let m = msg(b);
        assert_eq!(t(&m, "MSH-9").as_deref(), Some("ORM^O01^ORM_O01"));
        assert_eq!(t(&m, "MSH-12").as_deref(), Some("2.4"));
        assert_eq!(t(&m, "MSH-10"), Some(format!("C{}", i + 1)));
        assert_eq!(t(&m, "ORC-2"), Some(format!("R0000042-{}", i + 1)));
    }
}

#[test]
fn an_oml_reads_back_as_the_orders_it_was_made_from() {
    mod_support::roundtrip();
}

#[path = "support/mod.rs"]
mod support;

mod mod_support {
    use super::*;
    use support::TestRecord;

    pub fn roundtrip() {
        let mut r = records();
        let a = sr("sr1", 1, "26604007", Some("R0000042"));
        let b = sr("sr2", 2, "444164000", Some("R0000042"));
        let built = build(
            &mut r,
            &[
                ("ServiceRequest", None, Some(&a)),
                ("ServiceRequest", None, Some(&b)),
            ],
            OrderFormat::Oml,
        );
        let text = built[0].message.clone().unwrap().unwrap().text;
        let m = Message::parse(&text).unwrap();
        let rec = TestRecord::new();
        rec.apply(&m, &cfg()).expect("applies");
        let srs = rec.all("ServiceRequest");
        assert_eq!(srs.len(), 2);
        for (i, s) in srs.iter().enumerate() {
            assert_eq!(s["status"], "active");
            // v2 has no urgent: it goes out as A and reads back asap (codes::PRIORITY).
            assert_eq!(s["priority"], "asap");
            assert_eq!(
                s["requisition"],
                json!({"system": format!("{WL}/Id/requisition"), "value": "R0000042"})
            );
            let placer = format!("R0000042-{}", i + 1);
            assert!(
                s["identifier"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["value"] == placer.as_str()),
                "{s}"
            );
        }
    }
}
