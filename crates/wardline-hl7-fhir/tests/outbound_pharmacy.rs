//! Pharmacy out (issue 17, H-135): each dose recorded on the MAR — given or
//! not given — becomes one RAS^O17 (v2.5.1) for a pharmacy system, with
//! the patient, the prescription's numbers, the medicine, amount, route,
//! giver and, for a dose not given, the omission reason; the orders and
//! ADT feed (`message_for`) never sends one.

use serde_json::{Value, json};
use wardline_hl7::Message;
use wardline_hl7_fhir::memory::MemoryRecords;
use wardline_hl7_fhir::outbound::{Change, OutboundMessage, message_for, pharmacy_message_for};
use wardline_hl7_fhir::{MapError, MappingConfig, NHS_NUMBER_SYSTEM, Records};

const TS: &str = "20261123101500+0000";
const WL: &str = "https://fhir.wardline.invalid";
const DMD: &str = "https://dmd.nhs.uk";

fn records() -> MemoryRecords {
    let mut r = MemoryRecords::new();
    for f in [
        json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765919"}],
            "name": [{"family": "Smith", "given": ["Ann"]}], "gender": "female", "birthDate": "1980-03-14"}),
        json!({"resourceType": "Patient", "id": "p2",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9999999484"}],
            "name": [{"family": "Jones", "given": ["Bob"]}], "gender": "male"}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "identifier": [{"system": format!("{WL}/Id/visit"), "value": "V123"}],
            "subject": {"reference": "Patient/p1"}}),
        json!({"resourceType": "Practitioner", "id": "doc",
            "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "4123456"}],
            "name": [{"family": "House", "given": ["Gregory"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Practitioner", "id": "nurse",
            "identifier": [{"system": "https://fhir.wardline.invalid/Id/staff", "value": "N001"}],
            "name": [{"family": "Nightingale", "given": ["Flo"]}]}),
        json!({"resourceType": "Medication", "id": "med-para", "status": "active",
            "code": {"coding": [{"system": DMD, "code": "42109611000001109", "display": "Paracetamol 500mg tablets"}]}}),
        json!({"resourceType": "Medication", "id": "med-local", "status": "active",
            "code": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine",
                "code": "MIX^1", "display": "Magic mouthwash | 5mL & swish"}]}}),
        json!({"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
            "medicationReference": {"reference": "Medication/med-para"},
            "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
            "requester": {"reference": "Practitioner/doc"}, "authoredOn": "2026-11-23T08:00:00+00:00",
            "dosageInstruction": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral"}]}}]}),
        json!({"resourceType": "MedicationRequest", "id": "mr2", "status": "active", "intent": "order",
            "identifier": [{"system": format!("{WL}/Id/pharmacy-order"), "value": "EPMA-77"}],
            "medicationReference": {"reference": "Medication/med-local"},
            "subject": {"reference": "Patient/p1"},
            "requester": {"reference": "Practitioner/doc"}}),
    ] {
        r.save(f).expect("valid fixture");
    }
    r
}

fn given() -> Value {
    json!({"resourceType": "MedicationAdministration", "id": "ma1", "status": "completed",
        "medicationReference": {"reference": "Medication/med-para"},
        "subject": {"reference": "Patient/p1"}, "context": {"reference": "Encounter/e1"},
        "request": {"reference": "MedicationRequest/mr1"},
        "effectiveDateTime": "2026-11-23T10:02:00+00:00",
        "performer": [{"function": {"coding": [{"code": "performer"}]}, "actor": {"reference": "Practitioner/nurse"}},
            {"function": {"coding": [{"code": "witness"}]}, "actor": {"reference": "Practitioner/doc"}}],
        "dosage": {"dose": {"value": 2, "unit": "tablet"},
            "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral"}]}},
        "extension": [{"url": "https://fhir.wardline.invalid/StructureDefinition/batch", "valueString": "B12"}]})
}

fn omitted() -> Value {
    json!({"resourceType": "MedicationAdministration", "id": "ma2", "status": "not-done",
        "medicationReference": {"reference": "Medication/med-local"},
        "subject": {"reference": "Patient/p1"},
        "request": {"reference": "MedicationRequest/mr2"},
        "statusReason": [{"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/dose-omission",
            "code": "refused", "display": "Patient refused"}]}],
        "effectiveDateTime": "2026-11-23T14:00:00Z",
        "performer": [{"actor": {"reference": "Practitioner/nurse"}}]})
}

fn ras(
    r: &mut MemoryRecords,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<Option<OutboundMessage>, MapError> {
    if let Some(a) = after {
        r.save(a.clone()).expect("valid");
    }
    let c = Change {
        resource_type: "MedicationAdministration",
        before,
        after,
    };
    pharmacy_message_for(&c, r, &MappingConfig::default(), "C1", TS)
}

fn parsed(m: &OutboundMessage) -> Message<'static> {
    let p = Message::parse(&m.text).expect("parses").into_owned();
    assert_eq!(p.encode(), m.text);
    p
}

/// A component's text: `SEG-F-C`, or `SEG-F` for its first component.
fn t(m: &Message, path: &str) -> String {
    let mut parts = path.split('-');
    let (seg, field) = (parts.next().unwrap(), parts.next().unwrap());
    let path = format!("{seg}-{field}.{}", parts.next().unwrap_or("1"));
    m.text(&path)
        .expect("path")
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

fn ids(m: &Message) -> Vec<String> {
    m.segments().iter().map(|s| s.id().to_string()).collect()
}

#[test]
fn a_dose_given_is_one_ras_o17_with_every_field() {
    let mut r = records();
    let out = ras(&mut r, None, Some(&given()))
        .unwrap()
        .expect("a message");
    assert_eq!(out.message_type, "RAS^O17");
    assert_eq!(out.patient_id.as_deref(), Some("p1"));
    let m = parsed(&out);
    assert_eq!(ids(&m), ["MSH", "PID", "PV1", "ORC", "RXA", "RXR"]);
    assert_eq!(t(&m, "MSH-9"), "RAS");
    assert_eq!(t(&m, "MSH-9-2"), "O17");
    assert_eq!(t(&m, "MSH-9-3"), "RAS_O17");
    assert_eq!(t(&m, "MSH-10"), "C1");
    assert_eq!(t(&m, "MSH-12"), "2.5.1");
    // The patient and the admission.
    assert_eq!(t(&m, "PID-3"), "9434765919");
    assert_eq!(t(&m, "PID-3-4"), "NHS");
    assert_eq!(t(&m, "PID-5"), "Smith");
    assert_eq!(t(&m, "PV1-2"), "I");
    assert_eq!(t(&m, "PV1-19"), "V123");
    // ORC: the prescription prescribed in Wardline (placer = its id).
    assert_eq!(t(&m, "ORC-1"), "RE");
    assert_eq!(t(&m, "ORC-2"), "mr1");
    assert_eq!(t(&m, "ORC-3"), "");
    assert_eq!(t(&m, "ORC-9"), "20261123080000+0000");
    assert_eq!(t(&m, "ORC-12"), "4123456");
    assert_eq!(t(&m, "ORC-12-2"), "House");
    assert_eq!(t(&m, "ORC-12-3"), "Gregory");
    // RXA (v2.5.1 positions).
    assert_eq!(t(&m, "RXA-1"), "0");
    assert_eq!(t(&m, "RXA-2"), "1");
    assert_eq!(t(&m, "RXA-3"), "20261123100200+0000");
    assert_eq!(t(&m, "RXA-4"), "20261123100200+0000");
    assert_eq!(t(&m, "RXA-5"), "42109611000001109");
    assert_eq!(t(&m, "RXA-5-2"), "Paracetamol 500mg tablets");
    assert_eq!(t(&m, "RXA-5-3"), "DMD");
    assert_eq!(t(&m, "RXA-6"), "2");
    assert_eq!(t(&m, "RXA-7"), "tablet");
    // The giver, not the witness.
    assert_eq!(t(&m, "RXA-10"), "N001");
    assert_eq!(t(&m, "RXA-10-2"), "Nightingale");
    assert_eq!(t(&m, "RXA-10-3"), "Flo");
    assert_eq!(t(&m, "RXA-15"), "B12");
    assert_eq!(t(&m, "RXA-18"), "");
    assert_eq!(t(&m, "RXA-20"), "CP");
    assert_eq!(t(&m, "RXA-21"), "A");
    // RXR: table 0162 (as inbound RDE reads it) with SNOMED CT beside.
    assert_eq!(t(&m, "RXR-1"), "PO");
    assert_eq!(t(&m, "RXR-1-2"), "Oral");
    assert_eq!(t(&m, "RXR-1-3"), "HL70162");
    assert_eq!(t(&m, "RXR-1-4"), "26643006");
    assert_eq!(t(&m, "RXR-1-6"), "SCT");
}

#[test]
fn a_dose_not_given_is_na_or_re_with_the_omission_reason_and_escaped_text() {
    let mut r = records();
    let m = parsed(
        &ras(&mut r, None, Some(&omitted()))
            .unwrap()
            .expect("a message"),
    );
    // No encounter on the record: no PV1.
    assert_eq!(ids(&m), ["MSH", "PID", "ORC", "RXA", "RXR"]);
    // Prescribed elsewhere (RDE^O11): its number is the placer's.
    assert_eq!(t(&m, "ORC-2"), "EPMA-77");
    assert_eq!(t(&m, "ORC-3"), "mr2");
    // A local code, delimiters escaped, read back unchanged.
    assert_eq!(t(&m, "RXA-5"), "MIX^1");
    assert_eq!(t(&m, "RXA-5-2"), "Magic mouthwash | 5mL & swish");
    assert_eq!(t(&m, "RXA-5-3"), "L");
    assert!(
        m.encode()
            .contains("MIX\\S\\1^Magic mouthwash \\F\\ 5mL \\T\\ swish^L")
    );
    assert_eq!(t(&m, "RXA-3"), "20261123140000+0000");
    assert_eq!(t(&m, "RXA-6"), "0");
    assert_eq!(t(&m, "RXA-7"), "");
    assert_eq!(t(&m, "RXA-10-2"), "Nightingale");
    assert_eq!(t(&m, "RXA-18"), "refused");
    assert_eq!(t(&m, "RXA-18-2"), "Patient refused");
    assert_eq!(t(&m, "RXA-18-3"), "dose-omission");
    assert_eq!(t(&m, "RXA-20"), "RE");
    assert_eq!(t(&m, "RXA-21"), "A");

    // Any other reason is "not administered".
    let mut away = omitted();
    away["id"] = json!("ma3");
    away["statusReason"] = json!([{"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/dose-omission",
        "code": "nil-by-mouth", "display": "Nil by mouth"}]}]);
    let m = parsed(&ras(&mut r, None, Some(&away)).unwrap().expect("a message"));
    assert_eq!(t(&m, "RXA-20"), "NA");
    assert_eq!(t(&m, "RXA-18"), "nil-by-mouth");
}

#[test]
fn corrections_and_withdrawals() {
    let mut r = records();
    let a = given();
    // Only meta changed: nothing.
    let mut same = a.clone();
    same["meta"] = json!({"versionId": "2"});
    assert!(ras(&mut r, Some(&a), Some(&same)).unwrap().is_none());
    // A corrected amount: U.
    let mut fixed = a.clone();
    fixed["dosage"]["dose"]["value"] = json!(1);
    let m = parsed(
        &ras(&mut r, Some(&a), Some(&fixed))
            .unwrap()
            .expect("a message"),
    );
    assert_eq!((t(&m, "RXA-21"), t(&m, "RXA-6")), ("U".into(), "1".into()));
    // Entered in error: D, describing the dose as it was reported.
    let mut wrong = fixed.clone();
    wrong["status"] = json!("entered-in-error");
    let m = parsed(
        &ras(&mut r, Some(&fixed), Some(&wrong))
            .unwrap()
            .expect("a message"),
    );
    assert_eq!(
        (t(&m, "RXA-21"), t(&m, "RXA-20")),
        ("D".into(), "CP".into())
    );
    // A record made in progress, or in error, tells nobody.
    let mut pending = given();
    pending["id"] = json!("ma9");
    pending["status"] = json!("in-progress");
    assert!(ras(&mut r, None, Some(&pending)).unwrap().is_none());
    // Deletes give nothing.
    assert!(ras(&mut r, Some(&a), None).unwrap().is_none());
}

#[test]
fn the_wrong_patient_or_no_prescription_is_an_error_not_a_message() {
    let mut r = records();
    // The dose names another patient than its prescription (H-135).
    let mut other = given();
    other["subject"] = json!({"reference": "Patient/p2"});
    let e = ras(&mut r, None, Some(&other)).unwrap_err();
    assert_eq!(e.location.as_deref(), Some("PID-3"), "{e}");
    assert!(e.text.contains("MedicationRequest/mr1"), "{e}");
    let mut orphan = given();
    orphan["request"] = json!({"reference": "MedicationRequest/nope"});
    let e = ras(&mut r, None, Some(&orphan)).unwrap_err();
    assert_eq!(e.location.as_deref(), Some("ORC-2"), "{e}");
}

#[test]
fn the_orders_and_adt_feed_never_sends_one() {
    let mut r = records();
    let a = given();
    r.save(a.clone()).unwrap();
    let c = Change {
        resource_type: "MedicationAdministration",
        before: None,
        after: Some(&a),
    };
    assert!(
        message_for(&c, &mut r, &MappingConfig::default(), "C1", TS)
            .unwrap()
            .is_none()
    );
}
