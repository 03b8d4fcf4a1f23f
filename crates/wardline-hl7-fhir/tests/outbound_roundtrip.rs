//! Outbound then inbound: the ADT messages Wardline sends, applied by
//! Wardline's own inbound mapping to an empty record, give back the key
//! facts of the Patient and Encounter they were made from.

use serde_json::{Value, json};
use wardline_hl7::Message;

mod support;
use support::TestRecord;
use wardline_hl7_fhir::memory::MemoryRecords;
use wardline_hl7_fhir::outbound::{Change, OutboundMessage, message_for};
use wardline_hl7_fhir::{MappingConfig, NHS_NUMBER_SYSTEM, Records};

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

fn receive(dest: &mut TestRecord, out: &OutboundMessage) {
    let msg = Message::parse(&out.text).expect("parses");
    dest.apply(&msg, &cfg())
        .unwrap_or_else(|e| panic!("{}: {e:?}\n{}", out.message_type, out.text));
}

/// `RFH/WARD7/BAY2/BED4`-style path of a Location: the identifiers up the
/// `partOf` chain, read from `dest`.
fn location_path(dest: &mut TestRecord, reference: &str) -> Vec<String> {
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
    let mut dest = TestRecord::new();
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

fn send_any(r: &mut MemoryRecords, resource: &Value) -> OutboundMessage {
    r.save(resource.clone()).expect("valid resource");
    let change = Change {
        resource_type: resource["resourceType"].as_str().unwrap(),
        before: None,
        after: Some(resource),
    };
    message_for(&change, r, &cfg(), "9", "20261123101500+0000")
        .expect("maps")
        .expect("a message")
}

#[test]
fn order_result_and_appointment_round_trip_through_inbound() {
    let base = cfg().identifier_base;
    let ucum = "http://unitsofmeasure.org";
    let mut src = source();
    let mut dest = TestRecord::new();
    let order = json!({"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
        "identifier": [{"system": format!("{base}/placer-order"), "value": "PL123"}],
        "priority": "routine",
        "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2", "display": "CBC panel"}]},
        "subject": {"reference": "Patient/p1"},
        "requester": {"reference": "Practitioner/cons"},
        "note": [{"text": "Fasting | 12h ^ water ok"}]});
    for o in [
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}]},
            "subject": {"reference": "Patient/p1"},
            "valueQuantity": {"value": 101, "unit": "g/L", "system": ucum, "code": "g/L"},
            "referenceRange": [{"low": {"value": 115}, "high": {"value": 165}}]}),
        json!({"resourceType": "Observation", "id": "o2", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "883-9"}]},
            "subject": {"reference": "Patient/p1"},
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "112144000", "display": "Blood group A"}]}}),
        json!({"resourceType": "Observation", "id": "o3", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "18314-6"}]},
            "subject": {"reference": "Patient/p1"},
            "valueString": "Target cells ^ seen | see note"}),
    ] {
        src.save(o).unwrap();
    }
    let report = json!({"resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
        "identifier": [{"system": format!("{base}/filler-order"), "value": "LAB777"}],
        "basedOn": [{"reference": "ServiceRequest/sr1"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-23T08:00:00+00:00",
        "issued": "2026-11-23T10:14:59+00:00",
        "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o2"}, {"reference": "Observation/o3"}]});
    let appointment = json!({"resourceType": "Appointment", "id": "ap1", "status": "booked",
        "start": "2026-12-01T09:00:00Z", "end": "2026-12-01T09:20:00Z",
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"},
                        {"actor": {"reference": "Practitioner/cons"}, "status": "accepted"}]});

    for resource in [&order, &report, &appointment] {
        let out = send_any(&mut src, resource);
        receive(&mut dest, &out);
    }

    let sr = dest
        .find_by_identifier("ServiceRequest", &format!("{base}/placer-order"), "PL123")
        .unwrap()
        .expect("order created from ORC-2");
    assert_eq!(sr["status"], "active");
    assert_eq!(sr["priority"], "routine");
    assert_eq!(sr["code"]["coding"][0]["system"], "http://loinc.org");
    assert_eq!(sr["code"]["coding"][0]["code"], "58410-2");
    assert_eq!(sr["note"][0]["text"], "Fasting | 12h ^ water ok");

    let dr = dest
        .find_by_identifier(
            "DiagnosticReport",
            &format!("{base}/filler-order"),
            "LAB777",
        )
        .unwrap()
        .expect("report created from OBR-3");
    assert_eq!(dr["status"], "final");
    assert_eq!(
        dr["basedOn"][0]["reference"].as_str(),
        Some(format!("ServiceRequest/{}", sr["id"].as_str().unwrap()).as_str())
    );
    let results = dr["result"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let obs: Vec<Value> = results
        .iter()
        .map(|r| {
            let id = r["reference"]
                .as_str()
                .unwrap()
                .trim_start_matches("Observation/");
            dest.read("Observation", id).unwrap().unwrap()
        })
        .collect();
    assert_eq!(obs[0]["code"]["coding"][0]["code"], "718-7");
    assert_eq!(obs[0]["valueQuantity"]["value"], json!(101));
    assert_eq!(obs[0]["valueQuantity"]["code"], "g/L");
    assert_eq!(obs[0]["referenceRange"][0]["low"]["value"], json!(115));
    assert_eq!(
        obs[1]["valueCodeableConcept"]["coding"][0]["code"],
        "112144000"
    );
    assert_eq!(obs[2]["valueString"], "Target cells ^ seen | see note");
    assert!(obs.iter().all(|o| o["status"] == "final"));

    let appt = dest
        .find_by_identifier("Appointment", &format!("{base}/filler-appointment"), "ap1")
        .unwrap()
        .expect("appointment created from SCH-2");
    assert_eq!(appt["status"], "booked");
    assert!(
        appt["start"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-01T09:00:00")
    );
    assert!(
        appt["end"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-01T09:20:00")
    );
    assert_eq!(dest.count("Patient"), 1);
}
