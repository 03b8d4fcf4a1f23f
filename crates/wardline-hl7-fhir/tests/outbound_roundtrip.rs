//! Outbound then inbound: the ADT messages Wardline sends, applied by
//! Wardline's own inbound mapping to an empty record, give back the key
//! facts of the Patient and Encounter they were made from.

use serde_json::{Value, json};
use wardline_hl7::Message;
use wardline_hl7_fhir::memory::MemoryRecords;
use wardline_hl7_fhir::outbound::{Change, OutboundMessage, message_for};
use wardline_hl7_fhir::{MappingConfig, NHS_NUMBER_SYSTEM, Records, inbound};

const PHYS: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";

fn cfg() -> MappingConfig {
    MappingConfig {
        identifier_base: "https://fhir.rfh.nhs.uk/Id".into(),
        ..MappingConfig::default()
    }
}

fn location(id: &str, kind: &str, path: &str, part_of: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "name": path,
        "identifier": [{"system": format!("{}/location", cfg().identifier_base), "value": path}],
        "physicalType": {"coding": [{"system": PHYS, "code": kind}]}});
    if let Some(p) = part_of {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    l
}

fn source() -> MemoryRecords {
    let mut r = MemoryRecords::new();
    for f in [
        location("site", "si", "RFH", None),
        location("ward", "wa", "RFH/WARD7", Some("site")),
        location("bay", "ro", "RFH/WARD7/BAY2", Some("ward")),
        location("bed", "bd", "RFH/WARD7/BAY2/BED4", Some("bay")),
        json!({"resourceType": "Practitioner", "id": "cons",
            "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "4123456"}],
            "name": [{"family": "House", "given": ["Gregory"]}]}),
        json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765919"},
                           {"system": cfg().local_system("RFH", "MR"), "value": "RFH123"}],
            "name": [{"use": "official", "family": "O'Brien", "given": ["Ann", "Marie"]}],
            "gender": "female", "birthDate": "1980-03-14",
            "address": [{"use": "home", "line": ["1 High Street"], "city": "London", "postalCode": "NW3 2QG"}]}),
    ] {
        r.save(f).expect("valid fixture");
    }
    r
}

fn encounter(status: &str) -> Value {
    let mut e = json!({"resourceType": "Encounter", "id": "e1", "status": status,
        "identifier": [{"system": format!("{}/visit", cfg().identifier_base), "value": "V0001"}],
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
                         "individual": {"reference": "Practitioner/cons"}}],
        "period": {"start": "2026-11-23T09:30:00+00:00"},
        "location": [{"location": {"reference": "Location/bed"}, "status": "active"}]});
    if status == "finished" {
        e["period"]["end"] = json!("2026-11-25T14:00:00+00:00");
        e["location"][0]["status"] = json!("completed");
    }
    e
}

fn send(
    r: &mut MemoryRecords,
    before: Option<&Value>,
    after: &Value,
    control: &str,
) -> OutboundMessage {
    r.save(after.clone()).expect("valid encounter");
    let change = Change {
        resource_type: "Encounter",
        before,
        after: Some(after),
    };
    message_for(&change, r, &cfg(), control, "20261123101500+0000")
        .expect("maps")
        .expect("a message")
}

fn receive(dest: &mut MemoryRecords, out: &OutboundMessage) {
    let msg = Message::parse(&out.text).expect("parses");
    inbound::apply(&msg, dest, &cfg())
        .unwrap_or_else(|e| panic!("{}: {e:?}\n{}", out.message_type, out.text));
}

/// `RFH/WARD7/BAY2/BED4`-style path of a Location: the identifiers up the
/// `partOf` chain, read from `dest`.
fn location_path(dest: &mut MemoryRecords, reference: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = reference.strip_prefix("Location/").map(str::to_owned);
    while let Some(id) = next.take() {
        let loc = dest
            .read("Location", &id)
            .unwrap()
            .expect("location exists");
        let kind = loc["physicalType"]["coding"][0]["code"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let path = loc["identifier"][0]["value"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        out.push(format!("{kind}:{path}"));
        next = loc["partOf"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Location/"))
            .map(str::to_owned);
        assert!(out.len() < 10, "partOf cycle");
    }
    out
}

#[test]
fn admit_then_discharge_round_trips_through_inbound() {
    let mut src = source();
    let mut dest = MemoryRecords::new();
    let visit_system = format!("{}/visit", cfg().identifier_base);

    let a01 = send(&mut src, None, &encounter("in-progress"), "1");
    assert_eq!(a01.message_type, "ADT^A01");
    receive(&mut dest, &a01);

    let patient = dest
        .find_by_identifier("Patient", NHS_NUMBER_SYSTEM, "9434765919")
        .unwrap()
        .expect("patient created from PID");
    assert_eq!(patient["name"][0]["family"], "O'Brien");
    assert_eq!(patient["name"][0]["given"], json!(["Ann", "Marie"]));
    assert_eq!(patient["birthDate"], "1980-03-14");
    assert_eq!(patient["gender"], "female");
    assert_eq!(patient["address"][0]["postalCode"], "NW3 2QG");
    let local = dest
        .find_by_identifier("Patient", &cfg().local_system("RFH", "MR"), "RFH123")
        .unwrap()
        .expect("local number kept");
    assert_eq!(local["id"], patient["id"]);

    let enc = dest
        .find_by_identifier("Encounter", &visit_system, "V0001")
        .unwrap()
        .expect("encounter created from PV1-19");
    assert_eq!(enc["status"], "in-progress");
    assert_eq!(enc["class"]["code"], "IMP");
    assert_eq!(
        enc["subject"]["reference"].as_str(),
        Some(format!("Patient/{}", patient["id"].as_str().unwrap()).as_str())
    );
    let active: Vec<&Value> = enc["location"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["status"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{enc}");
    let bed = active[0]["location"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        location_path(&mut dest, &bed),
        [
            "bd:RFH/WARD7/BAY2/BED4",
            "ro:RFH/WARD7/BAY2",
            "wa:RFH/WARD7",
            "si:RFH"
        ]
    );
    let start = enc["period"]["start"].as_str().unwrap();
    assert!(start.starts_with("2026-11-23T09:30:00"), "{start}");
    let attending = enc["participant"][0]["individual"]["reference"]
        .as_str()
        .unwrap();
    let cons = dest
        .read(
            "Practitioner",
            attending.trim_start_matches("Practitioner/"),
        )
        .unwrap()
        .unwrap();
    assert_eq!(cons["identifier"][0]["value"], "4123456");
    assert_eq!(cons["name"][0]["family"], "House");

    let a03 = send(
        &mut src,
        Some(&encounter("in-progress")),
        &encounter("finished"),
        "2",
    );
    assert_eq!(a03.message_type, "ADT^A03");
    receive(&mut dest, &a03);
    let enc = dest
        .find_by_identifier("Encounter", &visit_system, "V0001")
        .unwrap()
        .unwrap();
    assert_eq!(enc["status"], "finished");
    assert_eq!(enc["class"]["code"], "IMP");
    let end = enc["period"]["end"].as_str().unwrap();
    assert!(end.starts_with("2026-11-25T14:00:00"), "{end}");
    assert!(
        enc["location"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] != "active"),
        "{enc}"
    );
    assert_eq!(dest.count("Patient"), 1);
    assert_eq!(dest.count("Encounter"), 1);
}
