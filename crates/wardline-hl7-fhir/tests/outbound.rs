//! Outbound mapping rules: every message is parsed back with
//! `wardline_hl7::Message::parse` and checked field by field.

use serde_json::{Value, json};
use wardline_hl7::Message;
use wardline_hl7_fhir::memory::MemoryRecords;
use wardline_hl7_fhir::outbound::{Change, OutboundMessage, TRIGGER_TYPES, message_for};
use wardline_hl7_fhir::{MapError, MapErrorKind, MappingConfig, NHS_NUMBER_SYSTEM, Records};

const TS: &str = "20261123101500+0000";
const GMC: &str = "https://fhir.hl7.org.uk/Id/gmc-number";
const GMP: &str = "https://fhir.hl7.org.uk/Id/gmp-number";
const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const PHYS: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";
const ACT: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const PART: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

fn cfg() -> MappingConfig {
    MappingConfig {
        identifier_base: "https://fhir.rfh.nhs.uk/Id".into(),
        sending_application: "WARDLINE".into(),
        sending_facility: "RFH".into(),
        ..MappingConfig::default()
    }
}

fn location(id: &str, kind: &str, path: &str, name: &str, part_of: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "name": name, "status": "active",
        "identifier": [{"system": format!("{}/location", cfg().identifier_base), "value": path}],
        "physicalType": {"coding": [{"system": PHYS, "code": kind}]}});
    if let Some(p) = part_of {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    l
}

fn ann() -> Value {
    json!({"resourceType": "Patient", "id": "p1",
        "meta": {"versionId": "1", "lastUpdated": "2026-11-23T10:00:00Z"},
        "identifier": [
            {"system": format!("{}/rfh-mr", cfg().identifier_base), "value": "RFH123"},
            {"system": NHS_NUMBER_SYSTEM, "value": "9434765919"},
            {"system": "https://other.example/patients", "value": "X9"}],
        "name": [
            {"use": "usual", "given": ["Annie"]},
            {"use": "official", "family": "Smith", "given": ["Ann", "Marie"], "prefix": ["Mrs"]}],
        "gender": "female",
        "birthDate": "1980-03-14",
        "address": [{"use": "home", "line": ["Flat 2", "1 High Street", "Hampstead"], "city": "London", "postalCode": "NW3 2QG"}],
        "telecom": [
            {"system": "phone", "value": "020 7946 0000", "use": "home"},
            {"system": "phone", "value": "07700 900123", "use": "mobile"},
            {"system": "email", "value": "ann@example.nhs.uk"},
            {"system": "phone", "value": "020 7946 0999", "use": "work"}],
        "generalPractitioner": [{"reference": "Organization/gpp"}, {"reference": "Practitioner/gp"}]})
}

fn bob() -> Value {
    json!({"resourceType": "Patient", "id": "p2",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765870"},
                       {"system": format!("{}/rfh-mr", cfg().identifier_base), "value": "RFH456"}],
        "name": [{"use": "official", "family": "Jones", "given": ["Bob"]}],
        "gender": "male", "birthDate": "1950-01-02"})
}

/// The record: two patients, a GP practice and GP, two consultants, a site
/// with two wards, a bay and beds.
fn records() -> MemoryRecords {
    let mut r = MemoryRecords::new();
    let fixtures = [
        json!({"resourceType": "Organization", "id": "gpp", "name": "Holmes Practice",
               "identifier": [{"system": ODS, "value": "Y12345"}]}),
        json!({"resourceType": "Practitioner", "id": "gp",
               "identifier": [{"system": GMP, "value": "G1234567"}],
               "name": [{"family": "Watson", "given": ["John"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Practitioner", "id": "cons",
               "identifier": [{"system": GMC, "value": "4123456"}],
               "name": [{"use": "official", "family": "House", "given": ["Gregory"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Practitioner", "id": "ref",
               "identifier": [{"system": GMC, "value": "4999999"}],
               "name": [{"family": "Cuddy", "given": ["Lisa"]}]}),
        location("rfh", "si", "RFH", "Royal Free Hospital", None),
        location("w1", "wa", "RFH/WARD1", "Ward 1", Some("rfh")),
        location("bay2", "ro", "RFH/WARD1/BAY2", "Bay 2", Some("w1")),
        location("bed3", "bd", "RFH/WARD1/BAY2/BED3", "Bed 3", Some("bay2")),
        location("w2", "wa", "RFH/WARD2", "Ward 2", Some("rfh")),
        location("bed7", "bd", "RFH/WARD2/BED7", "Bed 7", Some("w2")),
        ann(),
        bob(),
    ];
    for f in fixtures {
        r.save(f).expect("valid fixture");
    }
    r
}

/// Saves `after` (the committed state) and maps the change.
fn run(
    r: &mut MemoryRecords,
    resource_type: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<Option<OutboundMessage>, MapError> {
    if let Some(a) = after {
        r.save(a.clone()).expect("valid fixture");
    }
    let change = Change {
        resource_type,
        before,
        after,
    };
    message_for(&change, r, &cfg(), "CTRL0001", TS)
}

fn expect(
    r: &mut MemoryRecords,
    rt: &str,
    before: Option<&Value>,
    after: &Value,
) -> (OutboundMessage, Message<'static>) {
    let out = run(r, rt, before, Some(after))
        .expect("maps")
        .expect("a message");
    let msg = Message::parse(&out.text).expect("parses").into_owned();
    assert_eq!(msg.encode(), out.text, "round trip");
    assert!(out.text.ends_with('\r'));
    assert!(!out.text.contains('\n'));
    (out, msg)
}

fn t(m: &Message, path: &str) -> Option<String> {
    m.text(path).expect("valid path").map(|c| c.into_owned())
}

fn count(m: &Message, id: &str) -> usize {
    m.segments_with_id(id).count()
}

fn ids(m: &Message) -> Vec<String> {
    m.segments().iter().map(|s| s.id().to_string()).collect()
}

// ---------------------------------------------------------------- Patient

#[test]
fn patient_created_is_a28_with_header_pid_and_pd1() {
    let mut r = records();
    let (out, m) = expect(&mut r, "Patient", None, &ann());
    assert_eq!(out.message_type, "ADT^A28");
    assert_eq!(out.patient_id.as_deref(), Some("p1"));
    assert!(
        out.text.starts_with(
            "MSH|^~\\&|WARDLINE|RFH|||20261123101500+0000||ADT^A28^ADT_A05|CTRL0001|P|2.4|"
        ),
        "{}",
        out.text
    );
    assert_eq!(m.receiving_application(), Some(""));
    assert_eq!(m.receiving_facility(), Some(""));
    assert_eq!(t(&m, "MSH-18").as_deref(), Some("UNICODE UTF-8"));
    assert_eq!(ids(&m), ["MSH", "EVN", "PID", "PD1", "PV1"]);
    assert_eq!(t(&m, "EVN-1").as_deref(), Some("A28"));
    assert_eq!(t(&m, "EVN-2").as_deref(), Some(TS));
    // NHS number first, then the local number, then the foreign one.
    assert_eq!(m.get("PID-3[1]").unwrap(), Some("9434765919^^^NHS^NH"));
    assert_eq!(m.get("PID-3[1].1").unwrap(), Some("9434765919"));
    assert_eq!(m.get("PID-3[2]").unwrap(), Some("RFH123^^^RFH^MR"));
    assert_eq!(m.get("PID-3[3]").unwrap(), Some("X9^^^^PI"));
    assert_eq!(m.get("PID-3[4]").unwrap(), None);
    // Official name first, then the usual one.
    assert_eq!(m.get("PID-5[1]").unwrap(), Some("Smith^Ann^Marie^^Mrs^^L"));
    assert_eq!(m.get("PID-5[2]").unwrap(), Some("^Annie^^^^^D"));
    assert_eq!(t(&m, "PID-7").as_deref(), Some("19800314"));
    assert_eq!(t(&m, "PID-8").as_deref(), Some("F"));
    assert_eq!(
        m.get("PID-11").unwrap(),
        Some("Flat 2^1 High Street^London^^NW3 2QG^^H^Hampstead")
    );
    assert_eq!(t(&m, "PID-11.5").as_deref(), Some("NW3 2QG"));
    assert_eq!(m.get("PID-13[1]").unwrap(), Some("020 7946 0000^PRN^PH"));
    assert_eq!(m.get("PID-13[2]").unwrap(), Some("07700 900123^PRN^CP"));
    assert_eq!(
        m.get("PID-13[3]").unwrap(),
        Some("^NET^Internet^ann@example.nhs.uk")
    );
    assert_eq!(m.get("PID-14").unwrap(), Some("020 7946 0999^WPN^PH"));
    assert_eq!(m.get("PID-30").unwrap(), None);
    assert_eq!(m.get("PD1-3").unwrap(), Some("Holmes Practice^^Y12345"));
    assert_eq!(m.get("PD1-4").unwrap(), Some("G1234567^Watson^John^^^Dr"));
    assert_eq!(m.get("PV1-2").unwrap(), Some("N"));
}

#[test]
fn patient_demographic_change_is_a31_and_death_is_sent() {
    let mut r = records();
    let before = ann();
    let mut after = ann();
    after["meta"]["versionId"] = json!("2");
    after["deceasedDateTime"] = json!("2026-11-22T23:10:00+00:00");
    let (out, m) = expect(&mut r, "Patient", Some(&before), &after);
    assert_eq!(out.message_type, "ADT^A31");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("ADT^A31^ADT_A05"));
    assert_eq!(t(&m, "PID-29").as_deref(), Some("20261122231000+0000"));
    assert_eq!(t(&m, "PID-30").as_deref(), Some("Y"));

    let mut moved = ann();
    moved["address"][0]["postalCode"] = json!("N1 9GU");
    let (_, m) = expect(&mut r, "Patient", Some(&before), &moved);
    assert_eq!(t(&m, "PID-11.5").as_deref(), Some("N1 9GU"));
}

#[test]
fn patient_changes_that_alter_no_segment_give_nothing() {
    let mut r = records();
    let before = ann();
    let mut meta = ann();
    meta["meta"] = json!({"versionId": "2", "lastUpdated": "2026-11-23T11:00:00Z"});
    assert_eq!(
        run(&mut r, "Patient", Some(&before), Some(&meta)).unwrap(),
        None
    );
    let mut narrative = ann();
    narrative["text"] = json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann</div>"});
    assert_eq!(
        run(&mut r, "Patient", Some(&before), Some(&narrative)).unwrap(),
        None
    );
    let mut unmapped = ann();
    unmapped["multipleBirthBoolean"] = json!(false);
    assert_eq!(
        run(&mut r, "Patient", Some(&before), Some(&unmapped)).unwrap(),
        None
    );
    // An identifier change does count.
    let mut new_id = ann();
    new_id["identifier"][0]["value"] = json!("RFH124");
    let out = run(&mut r, "Patient", Some(&before), Some(&new_id))
        .unwrap()
        .unwrap();
    assert_eq!(out.message_type, "ADT^A31");
}

#[test]
fn delete_gives_nothing_for_every_trigger_type() {
    let mut r = records();
    for rt in TRIGGER_TYPES {
        let before = json!({"resourceType": rt, "id": "x"});
        let change = Change {
            resource_type: rt,
            before: Some(&before),
            after: None,
        };
        assert_eq!(
            message_for(&change, &mut r, &cfg(), "1", TS).unwrap(),
            None,
            "{rt}"
        );
    }
}

#[test]
fn delimiters_in_names_are_escaped_and_read_back() {
    let mut r = records();
    let mut p = ann();
    let family = r"O'Brien|Smith^Jones~Tate\Lyle&Co";
    p["name"][1]["family"] = json!(family);
    let (out, m) = expect(&mut r, "Patient", None, &p);
    assert_eq!(t(&m, "PID-5[1].1").as_deref(), Some(family));
    assert_eq!(t(&m, "PID-5[1].2").as_deref(), Some("Ann"));
    assert!(
        out.text
            .contains(r"O'Brien\F\Smith\S\Jones\R\Tate\E\Lyle\T\Co^Ann"),
        "{}",
        out.text
    );
    assert_eq!(m.segment("PID").unwrap().field_count(), 14);
}

/// The record after a merge of `source` into `target`, written out as test
/// data (the merge itself is `wardline-workflow`'s `pmi::merge_in`): the
/// source's encounters repointed, the source inactive with `replaced-by`,
/// the target with `replaces` and the source's identifiers marked `old`
/// (as a PAS that sends A40 keeps them).
fn merged_by_hand(r: &mut MemoryRecords, source: &str, target: &str) {
    for mut e in r.all("Encounter") {
        if e["subject"]["reference"] == format!("Patient/{source}") {
            e["subject"] = json!({"reference": format!("Patient/{target}")});
            r.save(e).unwrap();
        }
    }
    let mut s = r.read("Patient", source).unwrap().unwrap();
    let mut t = r.read("Patient", target).unwrap().unwrap();
    s["active"] = json!(false);
    s["link"] =
        json!([{"other": {"reference": format!("Patient/{target}")}, "type": "replaced-by"}]);
    t["link"] = json!([{"other": {"reference": format!("Patient/{source}")}, "type": "replaces"}]);
    let mut ids = t["identifier"].as_array().cloned().unwrap_or_default();
    for i in s["identifier"].as_array().cloned().unwrap_or_default() {
        let mut old = i;
        old["use"] = json!("old");
        ids.push(old);
    }
    t["identifier"] = Value::Array(ids);
    r.save(s).unwrap();
    r.save(t).unwrap();
}

#[test]
fn merge_is_a40_with_survivor_pid_and_merged_identifiers() {
    let mut r = records();
    let mut bobs_visit = encounter("in-progress", "IMP");
    bobs_visit["subject"] = json!({"reference": "Patient/p2"});
    r.save(bobs_visit.clone()).unwrap();
    let source_before = r.read("Patient", "p2").unwrap().unwrap();
    let target_before = r.read("Patient", "p1").unwrap().unwrap();
    merged_by_hand(&mut r, "p2", "p1");
    let source_after = r.read("Patient", "p2").unwrap().unwrap();
    let target_after = r.read("Patient", "p1").unwrap().unwrap();

    let (out, m) = expect(&mut r, "Patient", Some(&source_before), &source_after);
    assert_eq!(out.message_type, "ADT^A40");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("ADT^A40^ADT_A39"));
    assert_eq!(out.patient_id.as_deref(), Some("p1"));
    assert_eq!(ids(&m), ["MSH", "EVN", "PID", "PD1", "MRG"]);
    assert_eq!(m.get("PID-3[1].1").unwrap(), Some("9434765919"));
    assert_eq!(t(&m, "PID-5.1").as_deref(), Some("Smith"));
    // The survivor's PID leaves out the identifiers it took over (use old).
    assert!(!m.get("PID-3").unwrap().unwrap().contains("9434765870"));
    assert_eq!(m.get("MRG-1[1]").unwrap(), Some("9434765870^^^NHS^NH"));
    assert_eq!(m.get("MRG-1[2]").unwrap(), Some("RFH456^^^RFH^MR"));
    assert_eq!(t(&m, "MRG-7.1").as_deref(), Some("Jones"));

    // The survivor's own update is announced by that A40, and so are the
    // merged patient's records repointed to the survivor.
    assert_eq!(
        run(&mut r, "Patient", Some(&target_before), Some(&target_after)).unwrap(),
        None
    );
    let repointed = r.read("Encounter", "e1").unwrap().unwrap();
    assert_eq!(repointed["subject"]["reference"], "Patient/p1");
    assert_eq!(
        run(&mut r, "Encounter", Some(&bobs_visit), Some(&repointed)).unwrap(),
        None
    );
    // A repointed record that also changed otherwise is announced.
    let mut discharged = repointed.clone();
    discharged["status"] = json!("finished");
    let out = run(&mut r, "Encounter", Some(&bobs_visit), Some(&discharged))
        .unwrap()
        .unwrap();
    assert_eq!(out.message_type, "ADT^A03");
    assert_eq!(out.patient_id.as_deref(), Some("p1"));
}

#[test]
fn visit_moved_to_another_patient_is_a08() {
    let mut r = records();
    let before = encounter("in-progress", "IMP");
    let mut after = before.clone();
    after["subject"] = json!({"reference": "Patient/p2"});
    let (out, m) = expect(&mut r, "Encounter", Some(&before), &after);
    assert_eq!(out.message_type, "ADT^A08");
    assert_eq!(out.patient_id.as_deref(), Some("p2"));
    assert_eq!(m.get("PID-3[1].1").unwrap(), Some("9434765870"));
}

#[test]
fn merge_into_an_unknown_patient_is_a_content_error() {
    let mut r = records();
    let before = bob();
    let mut after = bob();
    after["active"] = json!(false);
    after["link"] = json!([{"other": {"reference": "Patient/gone"}, "type": "replaced-by"}]);
    let e = run(&mut r, "Patient", Some(&before), Some(&after)).unwrap_err();
    assert_eq!(e.kind, MapErrorKind::Content);
    assert!(e.text.contains("Patient/gone"), "{}", e.text);
}

// ---------------------------------------------------------------- Encounter

fn encounter(status: &str, class: &str) -> Value {
    json!({"resourceType": "Encounter", "id": "e1", "status": status,
        "identifier": [{"system": format!("{}/visit", cfg().identifier_base), "value": "V0001"}],
        "class": {"system": ACT, "code": class},
        "serviceType": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function", "code": "300"}]},
        "subject": {"reference": "Patient/p1"},
        "participant": [
            {"type": [{"coding": [{"system": PART, "code": "ATND"}]}], "individual": {"reference": "Practitioner/cons"}},
            {"type": [{"coding": [{"system": PART, "code": "REF"}]}], "individual": {"reference": "Practitioner/ref"}},
            {"type": [{"coding": [{"system": PART, "code": "ADM"}]}], "individual": {"reference": "Practitioner/cons"}}],
        "period": {"start": "2026-11-23T09:30:00+00:00"},
        "location": [{"location": {"reference": "Location/bed3"}, "status": "active"}]})
}

#[test]
fn encounter_created_planned_is_a05() {
    let mut r = records();
    let mut e = encounter("planned", "IMP");
    e["location"][0]["status"] = json!("planned");
    let (out, m) = expect(&mut r, "Encounter", None, &e);
    assert_eq!(out.message_type, "ADT^A05");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("ADT^A05^ADT_A05"));
    assert_eq!(out.patient_id.as_deref(), Some("p1"));
    assert_eq!(m.get("PV1-3").unwrap(), Some("WARD1^BAY2^BED3^RFH"));
}

#[test]
fn encounter_created_in_progress_inpatient_is_a01_with_full_pv1() {
    let mut r = records();
    let (out, m) = expect(&mut r, "Encounter", None, &encounter("in-progress", "IMP"));
    assert_eq!(out.message_type, "ADT^A01");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("ADT^A01^ADT_A01"));
    assert_eq!(ids(&m), ["MSH", "EVN", "PID", "PD1", "PV1"]);
    assert_eq!(t(&m, "EVN-1").as_deref(), Some("A01"));
    assert_eq!(m.get("PID-3[1].1").unwrap(), Some("9434765919"));
    assert_eq!(t(&m, "PV1-1").as_deref(), Some("1"));
    assert_eq!(t(&m, "PV1-2").as_deref(), Some("I"));
    assert_eq!(t(&m, "PV1-3.1").as_deref(), Some("WARD1"));
    assert_eq!(t(&m, "PV1-3.2").as_deref(), Some("BAY2"));
    assert_eq!(t(&m, "PV1-3.3").as_deref(), Some("BED3"));
    assert_eq!(t(&m, "PV1-3.4").as_deref(), Some("RFH"));
    assert_eq!(m.get("PV1-6").unwrap(), Some(""));
    assert_eq!(m.get("PV1-7").unwrap(), Some("4123456^House^Gregory^^^Dr"));
    assert_eq!(m.get("PV1-8").unwrap(), Some("4999999^Cuddy^Lisa"));
    assert_eq!(m.get("PV1-17.1").unwrap(), Some("4123456"));
    assert_eq!(t(&m, "PV1-10").as_deref(), Some("300"));
    assert_eq!(t(&m, "PV1-19").as_deref(), Some("V0001"));
    assert_eq!(t(&m, "PV1-44").as_deref(), Some("20261123093000+0000"));
    assert_eq!(m.get("PV1-45").unwrap(), None);
}

#[test]
fn encounter_created_in_progress_other_classes_is_a04() {
    for (class, letter) in [("AMB", "O"), ("EMER", "E")] {
        let mut r = records();
        let mut e = encounter("in-progress", class);
        e.as_object_mut().unwrap().remove("identifier");
        let (out, m) = expect(&mut r, "Encounter", None, &e);
        assert_eq!(out.message_type, "ADT^A04", "{class}");
        assert_eq!(t(&m, "MSH-9").as_deref(), Some("ADT^A04^ADT_A01"));
        assert_eq!(t(&m, "PV1-2").as_deref(), Some(letter));
        // No visit number identifier: the Encounter id.
        assert_eq!(t(&m, "PV1-19").as_deref(), Some("e1"));
    }
}

#[test]
fn encounter_created_finished_or_cancelled_gives_nothing() {
    let mut r = records();
    for status in ["finished", "cancelled", "entered-in-error"] {
        let e = encounter(status, "IMP");
        assert_eq!(
            run(&mut r, "Encounter", None, Some(&e)).unwrap(),
            None,
            "{status}"
        );
    }
}

#[test]
fn encounter_transfer_is_a02_with_prior_location() {
    let mut r = records();
    let before = encounter("in-progress", "IMP");
    let mut after = before.clone();
    after["location"] = json!([
        {"location": {"reference": "Location/bed3"}, "status": "completed",
         "period": {"start": "2026-11-23T09:30:00+00:00", "end": "2026-11-23T12:00:00+00:00"}},
        {"location": {"reference": "Location/bed7"}, "status": "active",
         "period": {"start": "2026-11-23T12:00:00+00:00"}}]);
    let (out, m) = expect(&mut r, "Encounter", Some(&before), &after);
    assert_eq!(out.message_type, "ADT^A02");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("ADT^A02^ADT_A02"));
    assert_eq!(m.get("PV1-3").unwrap(), Some("WARD2^^BED7^RFH"));
    assert_eq!(m.get("PV1-6").unwrap(), Some("WARD1^BAY2^BED3^RFH"));
}

#[test]
fn encounter_transfer_undone_is_a12_back_in_the_prior_location() {
    let mut r = records();
    let mut before = encounter("in-progress", "IMP");
    before["location"] = json!([
        {"location": {"reference": "Location/bed3"}, "status": "completed",
         "period": {"start": "2026-11-23T09:30:00+00:00", "end": "2026-11-23T12:00:00+00:00"}},
        {"location": {"reference": "Location/bed7"}, "status": "active",
         "period": {"start": "2026-11-23T12:00:00+00:00"}}]);
    let mut after = before.clone();
    after["location"] = json!([
        {"location": {"reference": "Location/bed3"}, "status": "active",
         "period": {"start": "2026-11-23T09:30:00+00:00"}}]);
    let (out, m) = expect(&mut r, "Encounter", Some(&before), &after);
    assert_eq!(out.message_type, "ADT^A12");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("ADT^A12^ADT_A12"));
    assert_eq!(m.get("PV1-3").unwrap(), Some("WARD1^BAY2^BED3^RFH"));
    // Moving on to a third bed instead is a transfer, not a cancellation.
    let mut moved = before.clone();
    moved["location"][1]["status"] = json!("completed");
    moved["location"][1]["period"]["end"] = json!("2026-11-23T13:00:00+00:00");
    moved["location"]
        .as_array_mut()
        .unwrap()
        .push(json!({"location": {"reference": "Location/bed3"}, "status": "active"}));
    let (out, _) = expect(&mut r, "Encounter", Some(&before), &moved);
    assert_eq!(out.message_type, "ADT^A02");
}

#[test]
fn encounter_status_transitions() {
    let cases = [
        ("in-progress", "IMP", "finished", "IMP", "ADT^A03^ADT_A03"),
        ("finished", "IMP", "in-progress", "IMP", "ADT^A13^ADT_A01"),
        ("in-progress", "IMP", "cancelled", "IMP", "ADT^A11^ADT_A09"),
        (
            "in-progress",
            "EMER",
            "entered-in-error",
            "EMER",
            "ADT^A11^ADT_A09",
        ),
        ("planned", "IMP", "cancelled", "IMP", "ADT^A38^ADT_A38"),
        ("planned", "IMP", "in-progress", "IMP", "ADT^A01^ADT_A01"),
        ("planned", "AMB", "arrived", "AMB", "ADT^A04^ADT_A01"),
        ("in-progress", "IMP", "onleave", "IMP", "ADT^A21^ADT_A21"),
        ("onleave", "IMP", "in-progress", "IMP", "ADT^A22^ADT_A21"),
        (
            "in-progress",
            "EMER",
            "in-progress",
            "IMP",
            "ADT^A06^ADT_A06",
        ),
        (
            "in-progress",
            "IMP",
            "in-progress",
            "AMB",
            "ADT^A07^ADT_A06",
        ),
    ];
    for (old, old_class, new, new_class, want) in cases {
        let mut r = records();
        let before = encounter(old, old_class);
        let mut after = encounter(new, new_class);
        if new == "finished" {
            after["period"]["end"] = json!("2026-11-24T16:00:00+00:00");
        }
        let (out, m) = expect(&mut r, "Encounter", Some(&before), &after);
        assert_eq!(
            t(&m, "MSH-9").as_deref(),
            Some(want),
            "{old} {old_class} -> {new} {new_class}"
        );
        assert_eq!(t(&m, "EVN-1").as_deref(), Some(&want[4..7]));
        assert_eq!(out.message_type, want[..7]);
        if new == "finished" {
            assert_eq!(t(&m, "PV1-45").as_deref(), Some("20261124160000+0000"));
        }
    }
}

#[test]
fn encounter_other_changes_are_a08_and_meta_only_is_nothing() {
    let mut r = records();
    let before = encounter("in-progress", "IMP");
    let mut after = before.clone();
    after["participant"][0]["individual"] = json!({"reference": "Practitioner/ref"});
    let (out, m) = expect(&mut r, "Encounter", Some(&before), &after);
    assert_eq!(out.message_type, "ADT^A08");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("ADT^A08^ADT_A01"));
    assert_eq!(t(&m, "PV1-7.1").as_deref(), Some("4999999"));

    let mut meta = before.clone();
    meta["meta"] = json!({"versionId": "7"});
    assert_eq!(
        run(&mut r, "Encounter", Some(&before), Some(&meta)).unwrap(),
        None
    );
    // A change PV1 does not carry (reason) is not worth an A08.
    let mut reason = before.clone();
    reason["reasonCode"] = json!([{"text": "chest pain"}]);
    assert_eq!(
        run(&mut r, "Encounter", Some(&before), Some(&reason)).unwrap(),
        None
    );
}

#[test]
fn encounter_without_resolvable_patient_is_a_content_error_naming_it() {
    let mut r = records();
    let mut e = encounter("in-progress", "IMP");
    e["subject"] = json!({"reference": "Patient/nobody"});
    let err = run(&mut r, "Encounter", None, Some(&e)).unwrap_err();
    assert_eq!(err.kind, MapErrorKind::Content);
    assert_eq!(err.code, 204);
    assert!(err.text.contains("Patient/nobody"), "{}", err.text);
    assert!(err.text.contains("Encounter/e1"), "{}", err.text);

    e.as_object_mut().unwrap().remove("subject");
    let err = run(&mut r, "Encounter", None, Some(&e)).unwrap_err();
    assert_eq!(err.code, 101);
}

// ---------------------------------------------------------------- ServiceRequest

fn order(status: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "id": "sr1", "status": status, "intent": "order",
        "identifier": [{"system": format!("{}/placer-order", cfg().identifier_base), "value": "PL123"}],
        "priority": "urgent",
        "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2", "display": "CBC panel"},
                            {"system": "http://snomed.info/sct", "code": "26604007"}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "authoredOn": "2026-11-23T10:00:00+00:00",
        "requester": {"reference": "Practitioner/cons"},
        "note": [{"text": "Fasting? yes|no ^ see~notes & \\ call"}]})
}

#[test]
fn order_created_is_orm_nw() {
    let mut r = records();
    r.save(encounter("in-progress", "IMP")).unwrap();
    let (out, m) = expect(&mut r, "ServiceRequest", None, &order("active"));
    assert_eq!(out.message_type, "ORM^O01");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("ORM^O01^ORM_O01"));
    assert_eq!(out.patient_id.as_deref(), Some("p1"));
    assert_eq!(ids(&m), ["MSH", "PID", "PD1", "PV1", "ORC", "OBR", "NTE"]);
    assert_eq!(t(&m, "ORC-1").as_deref(), Some("NW"));
    assert_eq!(t(&m, "ORC-2").as_deref(), Some("PL123"));
    assert_eq!(t(&m, "OBR-2").as_deref(), Some("PL123"));
    assert_eq!(m.get("ORC-3").unwrap(), Some(""));
    assert_eq!(t(&m, "ORC-5").as_deref(), Some("IP"));
    assert_eq!(t(&m, "ORC-7.6").as_deref(), Some("A"));
    assert_eq!(t(&m, "ORC-9").as_deref(), Some("20261123100000+0000"));
    assert_eq!(m.get("ORC-12").unwrap(), Some("4123456^House^Gregory^^^Dr"));
    assert_eq!(
        m.get("OBR-4").unwrap(),
        Some("58410-2^CBC panel^LN^26604007^^SCT")
    );
    assert_eq!(t(&m, "OBR-16.1").as_deref(), Some("4123456"));
    assert_eq!(t(&m, "PV1-19").as_deref(), Some("V0001"));
    // The note keeps its delimiters.
    assert_eq!(
        t(&m, "NTE-3").as_deref(),
        Some("Fasting? yes|no ^ see~notes & \\ call")
    );
}

#[test]
fn order_control_codes() {
    let mut r = records();
    let before = order("active");
    let with_filler = |mut v: Value| {
        v["identifier"].as_array_mut().unwrap().push(
            json!({"system": format!("{}/filler-order", cfg().identifier_base), "value": "FL9"}),
        );
        v
    };
    let cases = [
        (order("revoked"), "CA", Some("CA")),
        (order("entered-in-error"), "CA", Some("ER")),
        (order("on-hold"), "SC", Some("HD")),
        (order("completed"), "SC", Some("CM")),
        (with_filler(order("active")), "XO", Some("IP")),
    ];
    for (after, control, status) in cases {
        let (_, m) = expect(&mut r, "ServiceRequest", Some(&before), &after);
        assert_eq!(
            t(&m, "ORC-1").as_deref(),
            Some(control),
            "{}",
            after["status"]
        );
        assert_eq!(t(&m, "ORC-5").as_deref(), status);
    }
    let (_, m) = expect(
        &mut r,
        "ServiceRequest",
        Some(&before),
        &with_filler(order("active")),
    );
    assert_eq!(t(&m, "ORC-3").as_deref(), Some("FL9"));
    assert_eq!(t(&m, "OBR-3").as_deref(), Some("FL9"));

    // Nothing for meta-only changes and for drafts; a draft made active is new.
    let mut meta = before.clone();
    meta["meta"] = json!({"versionId": "3"});
    assert_eq!(
        run(&mut r, "ServiceRequest", Some(&before), Some(&meta)).unwrap(),
        None
    );
    assert_eq!(
        run(&mut r, "ServiceRequest", None, Some(&order("draft"))).unwrap(),
        None
    );
    let (_, m) = expect(
        &mut r,
        "ServiceRequest",
        Some(&order("draft")),
        &order("active"),
    );
    assert_eq!(t(&m, "ORC-1").as_deref(), Some("NW"));
}

#[test]
fn order_without_placer_identifier_uses_the_id_and_needs_a_patient() {
    let mut r = records();
    let mut sr = order("active");
    sr.as_object_mut().unwrap().remove("identifier");
    sr.as_object_mut().unwrap().remove("encounter");
    let (_, m) = expect(&mut r, "ServiceRequest", None, &sr);
    assert_eq!(t(&m, "ORC-2").as_deref(), Some("sr1"));
    assert_eq!(count(&m, "PV1"), 0);
    sr["subject"] = json!({"reference": "Patient/missing"});
    let err = run(&mut r, "ServiceRequest", None, Some(&sr)).unwrap_err();
    assert!(err.text.contains("Patient/missing"), "{}", err.text);
}

// ---------------------------------------------------------------- DiagnosticReport

fn observations(r: &mut MemoryRecords) {
    let ucum = "http://unitsofmeasure.org";
    let interp = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
    for o in [
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-11-23T08:00:00+00:00",
            "valueQuantity": {"value": 101, "unit": "g/L", "system": ucum, "code": "g/L"},
            "interpretation": [{"coding": [{"system": interp, "code": "L"}]}],
            "referenceRange": [{"low": {"value": 115, "unit": "g/L", "system": ucum, "code": "g/L"},
                                "high": {"value": 165, "unit": "g/L", "system": ucum, "code": "g/L"}}]}),
        json!({"resourceType": "Observation", "id": "o2", "status": "amended",
            "code": {"coding": [{"system": "http://loinc.org", "code": "883-9", "display": "ABO group"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-11-23T08:00:00+00:00",
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "112144000", "display": "Blood group A"}]}}),
        json!({"resourceType": "Observation", "id": "o3", "status": "final",
            "code": {"text": "Film comment"},
            "subject": {"reference": "Patient/p1"},
            "valueString": "Target cells ^ seen | see note",
            "note": [{"text": "Reviewed by haematologist"}]}),
    ] {
        r.save(o).expect("valid observation");
    }
}

fn report(status: &str) -> Value {
    json!({"resourceType": "DiagnosticReport", "id": "dr1", "status": status,
        "identifier": [{"system": format!("{}/filler-order", cfg().identifier_base), "value": "LAB777"}],
        "basedOn": [{"reference": "ServiceRequest/sr1"}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "HM"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2", "display": "CBC panel"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-23T08:00:00+00:00",
        "issued": "2026-11-23T10:14:59.500+00:00",
        "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o2"}, {"reference": "Observation/o3"}],
        "conclusion": "Mild anaemia"})
}

#[test]
fn report_is_oru_with_three_obx() {
    let mut r = records();
    r.save(order("active")).unwrap();
    observations(&mut r);
    let (out, m) = expect(&mut r, "DiagnosticReport", None, &report("final"));
    assert_eq!(out.message_type, "ORU^R01");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("ORU^R01^ORU_R01"));
    assert_eq!(out.patient_id.as_deref(), Some("p1"));
    assert_eq!(
        ids(&m),
        [
            "MSH", "PID", "PD1", "OBR", "NTE", "OBX", "OBX", "OBX", "NTE"
        ]
    );
    assert_eq!(m.get("PID-3[1].1").unwrap(), Some("9434765919"));
    assert_eq!(t(&m, "OBR-2").as_deref(), Some("PL123"));
    assert_eq!(t(&m, "OBR-3").as_deref(), Some("LAB777"));
    assert_eq!(m.get("OBR-4").unwrap(), Some("58410-2^CBC panel^LN"));
    assert_eq!(t(&m, "OBR-7").as_deref(), Some("20261123080000+0000"));
    assert_eq!(t(&m, "OBR-22").as_deref(), Some("20261123101459.500+0000"));
    assert_eq!(t(&m, "OBR-24").as_deref(), Some("HM"));
    assert_eq!(t(&m, "OBR-25").as_deref(), Some("F"));
    assert_eq!(t(&m, "NTE[1]-3").as_deref(), Some("Mild anaemia"));

    assert_eq!(t(&m, "OBX[1]-1").as_deref(), Some("1"));
    assert_eq!(t(&m, "OBX[1]-2").as_deref(), Some("NM"));
    assert_eq!(m.get("OBX[1]-3").unwrap(), Some("718-7^Hemoglobin^LN"));
    assert_eq!(t(&m, "OBX[1]-5").as_deref(), Some("101"));
    assert_eq!(m.get("OBX[1]-6").unwrap(), Some("g/L^g/L^UCUM"));
    assert_eq!(t(&m, "OBX[1]-7").as_deref(), Some("115-165"));
    assert_eq!(t(&m, "OBX[1]-8").as_deref(), Some("L"));
    assert_eq!(t(&m, "OBX[1]-11").as_deref(), Some("F"));
    assert_eq!(t(&m, "OBX[1]-14").as_deref(), Some("20261123080000+0000"));

    assert_eq!(t(&m, "OBX[2]-1").as_deref(), Some("2"));
    assert_eq!(t(&m, "OBX[2]-2").as_deref(), Some("CWE"));
    assert_eq!(
        m.get("OBX[2]-5").unwrap(),
        Some("112144000^Blood group A^SCT")
    );
    assert_eq!(t(&m, "OBX[2]-11").as_deref(), Some("C"));

    assert_eq!(t(&m, "OBX[3]-2").as_deref(), Some("ST"));
    assert_eq!(m.get("OBX[3]-3").unwrap(), Some("^Film comment"));
    assert_eq!(
        t(&m, "OBX[3]-5").as_deref(),
        Some("Target cells ^ seen | see note")
    );
    assert_eq!(m.get("OBX[3]-14").unwrap(), None);
    assert_eq!(
        t(&m, "NTE[2]-3").as_deref(),
        Some("Reviewed by haematologist")
    );
}

#[test]
fn report_status_rules() {
    let mut r = records();
    observations(&mut r);
    // Not yet reportable.
    assert_eq!(
        run(
            &mut r,
            "DiagnosticReport",
            None,
            Some(&report("registered"))
        )
        .unwrap(),
        None
    );
    for (before, after, want) in [
        (None, "preliminary", "P"),
        (None, "partial", "P"),
        (Some("preliminary"), "final", "F"),
        (Some("final"), "corrected", "C"),
        (Some("final"), "amended", "C"),
        (Some("final"), "cancelled", "X"),
        (Some("final"), "entered-in-error", "X"),
    ] {
        let b = before.map(report);
        let (_, m) = expect(&mut r, "DiagnosticReport", b.as_ref(), &report(after));
        assert_eq!(
            t(&m, "OBR-25").as_deref(),
            Some(want),
            "{before:?} -> {after}"
        );
    }
    // A withdrawal of a report nobody had, and meta-only changes: nothing.
    let b = report("registered");
    assert_eq!(
        run(
            &mut r,
            "DiagnosticReport",
            Some(&b),
            Some(&report("cancelled"))
        )
        .unwrap(),
        None
    );
    let b = report("final");
    let mut meta = report("final");
    meta["meta"] = json!({"versionId": "2"});
    assert_eq!(
        run(&mut r, "DiagnosticReport", Some(&b), Some(&meta)).unwrap(),
        None
    );
    // A changed conclusion on a final report is resent.
    let mut concl = report("final");
    concl["conclusion"] = json!("Iron deficiency anaemia");
    let (_, m) = expect(&mut r, "DiagnosticReport", Some(&b), &concl);
    assert_eq!(t(&m, "NTE-3").as_deref(), Some("Iron deficiency anaemia"));
}

#[test]
fn report_with_an_unknown_result_is_a_content_error() {
    let mut r = records();
    observations(&mut r);
    let mut dr = report("final");
    dr["result"] = json!([{"reference": "Observation/o1"}, {"reference": "Observation/lost"}]);
    let err = run(&mut r, "DiagnosticReport", None, Some(&dr)).unwrap_err();
    assert_eq!(err.kind, MapErrorKind::Content);
    assert!(err.text.contains("Observation/lost"), "{}", err.text);
}

#[test]
fn observation_values_by_type() {
    let mut r = records();
    let base = |id: &str, value: (&str, Value)| {
        let mut o = json!({"resourceType": "Observation", "id": id, "status": "preliminary",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
            "subject": {"reference": "Patient/p1"}});
        o[value.0] = value.1;
        o
    };
    let obs = [
        base(
            "v1",
            (
                "valueQuantity",
                json!({"value": 5, "comparator": "<", "unit": "mmol/L"}),
            ),
        ),
        base("v2", ("valueDateTime", json!("2026-11-01"))),
        base(
            "v3",
            (
                "valueRange",
                json!({"low": {"value": 1.5}, "high": {"value": 2.25}}),
            ),
        ),
        base("v4", ("valueInteger", json!(42))),
        base("v5", ("valueDateTime", json!("2026-11-01T10:00:00Z"))),
    ];
    for o in &obs {
        r.save(o.clone()).unwrap();
    }
    let mut dr = report("preliminary");
    dr["result"] = json!(
        obs.iter()
            .map(|o| json!({"reference": format!("Observation/{}", o["id"].as_str().unwrap())}))
            .collect::<Vec<_>>()
    );
    let (_, m) = expect(&mut r, "DiagnosticReport", None, &dr);
    assert_eq!(t(&m, "OBX[1]-2").as_deref(), Some("SN"));
    assert_eq!(m.get("OBX[1]-5").unwrap(), Some("<^5"));
    assert_eq!(m.get("OBX[1]-6").unwrap(), Some("mmol/L^mmol/L"));
    assert_eq!(t(&m, "OBX[1]-11").as_deref(), Some("P"));
    assert_eq!(t(&m, "OBX[2]-2").as_deref(), Some("DT"));
    assert_eq!(t(&m, "OBX[2]-5").as_deref(), Some("20261101"));
    assert_eq!(t(&m, "OBX[3]-2").as_deref(), Some("SN"));
    assert_eq!(m.get("OBX[3]-5").unwrap(), Some("^1.5^-^2.25"));
    assert_eq!(t(&m, "OBX[4]-2").as_deref(), Some("NM"));
    assert_eq!(t(&m, "OBX[4]-5").as_deref(), Some("42"));
    assert_eq!(t(&m, "OBX[5]-2").as_deref(), Some("TS"));
    assert_eq!(t(&m, "OBX[5]-5").as_deref(), Some("20261101100000+0000"));
}

// ---------------------------------------------------------------- Appointment

fn appointment(status: &str) -> Value {
    json!({"resourceType": "Appointment", "id": "ap1", "status": status,
        "identifier": [{"system": format!("{}/placer-appointment", cfg().identifier_base), "value": "APT-1"}],
        "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "FOLLOWUP"}]},
        "reasonCode": [{"text": "Review of bloods"}],
        "start": "2026-12-01T09:00:00Z", "end": "2026-12-01T09:20:00Z", "minutesDuration": 20,
        "comment": "Bring letter | wheelchair ^ access",
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "Location/w1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/cons"}, "status": "accepted",
             "type": [{"coding": [{"system": PART, "code": "ATND"}]}]},
            {"actor": {"reference": "Location/bed7"}, "status": "accepted"}]})
}

#[test]
fn appointment_booked_is_s12() {
    let mut r = records();
    let (out, m) = expect(&mut r, "Appointment", None, &appointment("booked"));
    assert_eq!(out.message_type, "SIU^S12");
    assert_eq!(t(&m, "MSH-9").as_deref(), Some("SIU^S12^SIU_S12"));
    assert_eq!(out.patient_id.as_deref(), Some("p1"));
    assert_eq!(
        ids(&m),
        [
            "MSH", "SCH", "NTE", "PID", "PD1", "RGS", "AIL", "AIL", "AIP"
        ]
    );
    assert_eq!(t(&m, "SCH-1").as_deref(), Some("APT-1"));
    assert_eq!(t(&m, "SCH-2").as_deref(), Some("ap1"));
    assert_eq!(m.get("SCH-6").unwrap(), Some("^Review of bloods"));
    assert_eq!(m.get("SCH-7").unwrap(), Some("FOLLOWUP^^HL70276"));
    assert_eq!(t(&m, "SCH-9").as_deref(), Some("20"));
    assert_eq!(t(&m, "SCH-10").as_deref(), Some("min"));
    assert_eq!(t(&m, "SCH-11.4").as_deref(), Some("20261201090000+0000"));
    assert_eq!(t(&m, "SCH-11.5").as_deref(), Some("20261201092000+0000"));
    assert_eq!(t(&m, "SCH-25").as_deref(), Some("Booked"));
    assert_eq!(
        t(&m, "NTE-3").as_deref(),
        Some("Bring letter | wheelchair ^ access")
    );
    assert_eq!(m.get("PID-3[1].1").unwrap(), Some("9434765919"));
    assert_eq!(t(&m, "RGS-1").as_deref(), Some("1"));
    assert_eq!(m.get("AIL-3").unwrap(), Some("WARD1^^^RFH"));
    assert_eq!(t(&m, "AIL[2]-1").as_deref(), Some("2"));
    assert_eq!(m.get("AIL[2]-3").unwrap(), Some("WARD2^^BED7^RFH"));
    assert_eq!(t(&m, "AIL-6").as_deref(), Some("20261201090000+0000"));
    assert_eq!(m.get("AIP-3").unwrap(), Some("4123456^House^Gregory^^^Dr"));
    assert_eq!(m.get("AIP-4").unwrap(), Some("ATND^^v3-ParticipationType"));
}

#[test]
fn appointment_transitions() {
    let mut r = records();
    let before = appointment("booked");
    let mut moved = appointment("booked");
    moved["start"] = json!("2026-12-02T09:00:00Z");
    moved["end"] = json!("2026-12-02T09:20:00Z");
    let mut commented = appointment("booked");
    commented["comment"] = json!("Interpreter needed");
    let mut cancelled = appointment("cancelled");
    cancelled["cancelationReason"] = json!({"text": "Patient unwell"});
    let cases = [
        (moved, "SIU^S13", "Booked"),
        (cancelled, "SIU^S15", "Cancelled"),
        (appointment("noshow"), "SIU^S26", "Noshow"),
        (appointment("arrived"), "SIU^S14", "Started"),
        (commented, "SIU^S14", "Booked"),
    ];
    for (after, want, status) in cases {
        let (out, m) = expect(&mut r, "Appointment", Some(&before), &after);
        assert_eq!(out.message_type, want, "{}", after["status"]);
        assert_eq!(t(&m, "SCH-25").as_deref(), Some(status));
        let reason = if status == "Cancelled" {
            "Patient unwell"
        } else {
            "Review of bloods"
        };
        assert_eq!(t(&m, "SCH-6.2").as_deref(), Some(reason));
    }
    let (out, _) = expect(
        &mut r,
        "Appointment",
        Some(&appointment("proposed")),
        &appointment("booked"),
    );
    assert_eq!(out.message_type, "SIU^S12");
    assert_eq!(
        run(&mut r, "Appointment", None, Some(&appointment("proposed"))).unwrap(),
        None
    );
    let mut meta = appointment("booked");
    meta["meta"] = json!({"versionId": "4"});
    assert_eq!(
        run(&mut r, "Appointment", Some(&before), Some(&meta)).unwrap(),
        None
    );
}

#[test]
fn appointment_with_unknown_patient_is_a_content_error() {
    let mut r = records();
    let mut a = appointment("booked");
    a["participant"][0]["actor"] = json!({"reference": "Patient/ghost"});
    let err = run(&mut r, "Appointment", None, Some(&a)).unwrap_err();
    assert!(err.text.contains("Patient/ghost"), "{}", err.text);
}

#[test]
fn other_resource_types_give_nothing() {
    let mut r = records();
    let obs =
        json!({"resourceType": "Observation", "id": "x", "status": "final", "code": {"text": "x"}});
    assert_eq!(run(&mut r, "Observation", None, Some(&obs)).unwrap(), None);
}
