//! What HL7 v2 ADT messages write is UK Core: the Patient of an A01 or A28
//! and the Encounter of an A01 claim their UK Core profile and conform
//! (the core refuses a claimed resource that does not, so a mapping that
//! wrote one would fail the message); PID-32 is the NHS number's
//! verification status and PID-22 the ethnic category, as UK Core shapes
//! them, and both go back out in what Wardline sends; a changed NHS number
//! keeps the patient UK Core (one NHS number) and findable by the old one.

use serde_json::Value;
use wardline_fhir::definitions::r4;
use wardline_fhir::profile::uk_core;
use wardline_hl7::Message;

mod support;
use support::TestRecord;
use wardline_hl7_fhir::inbound::Applied;
use wardline_hl7_fhir::{MapError, MapErrorKind, MappingConfig};

const NHS1: &str = "9434765919";
const NHS2: &str = "9434765870";
const PATIENT: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
const ENCOUNTER: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter";
const VERIFICATION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
const ETHNIC: &str = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory";

fn apply(r: &TestRecord, text: &str) -> Result<Applied, MapError> {
    let msg = Message::parse(text).expect("test message parses");
    r.apply(&msg, &MappingConfig::default())
}

fn ok(r: &TestRecord, text: &str) -> Applied {
    apply(r, text).unwrap_or_else(|e| panic!("{e:?} for\n{}", text.replace('\r', "\n")))
}

fn m(segments: &[String]) -> String {
    segments.join("\r") + "\r"
}

fn msh(ty: &str, id: &str) -> String {
    format!("MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20240612093000||{ty}|{id}|P|2.4")
}

/// PID with the NHS number, a local number, PID-22 and PID-32.
fn pid(nhs: &str, ethnic: &str, status: &str) -> String {
    let mut f = vec![""; 32];
    f[0] = "1";
    let ids = format!("{nhs}^^^NHS^NH~RWG123456^^^RWG^MR");
    f[2] = &ids;
    f[4] = "SMITH^Jane^^^Mrs^^L";
    f[6] = "19800214";
    f[7] = "F";
    f[21] = ethnic;
    f[31] = status;
    format!("PID|{}", f.join("|"))
}

fn a01(pid: &str, visit: &str) -> String {
    m(&[
        msh("ADT^A01^ADT_A01", visit),
        "EVN|A01|20240612093000".into(),
        pid.into(),
        {
            let mut f = vec![""; 19];
            f[0] = "1";
            f[1] = "I";
            f[2] = "WARD7^BAY2^BED4^RWG";
            f[6] = "1234567^JONES^Robert^^^Dr";
            f[18] = visit;
            format!("PV1|{}", f.join("|"))
        },
    ])
}

fn a28(pid: &str, id: &str) -> String {
    m(&[
        msh("ADT^A28^ADT_A05", id),
        "EVN|A28|20240612093000".into(),
        pid.into(),
    ])
}

fn a31(pid: &str, id: &str) -> String {
    m(&[
        msh("ADT^A31^ADT_A05", id),
        "EVN|A31|20240612093000".into(),
        pid.into(),
    ])
}

fn conforms(v: &Value, profile: &str) {
    assert!(
        v["meta"]["profile"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == profile)),
        "claims {profile}: {v}"
    );
    let issues = uk_core().issues(r4(), v);
    assert!(issues.is_empty(), "{issues:?} in {v}");
}

fn code_of(ext: &Value) -> &str {
    ext["valueCodeableConcept"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

fn nhs_identifiers(p: &Value) -> Vec<&Value> {
    p["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["system"] == "https://fhir.nhs.uk/Id/nhs-number")
        .collect()
}

#[test]
fn an_a01_writes_a_uk_core_patient_and_encounter() {
    let r = TestRecord::new();
    ok(&r, &a01(&pid(NHS1, "A", "NSTS01"), "V1"));
    let p = &r.all("Patient")[0];
    conforms(p, PATIENT);
    let nhs = nhs_identifiers(p);
    assert_eq!(nhs.len(), 1);
    assert_eq!(nhs[0]["extension"][0]["url"], VERIFICATION);
    assert_eq!(code_of(&nhs[0]["extension"][0]), "01");
    assert_eq!(
        nhs[0]["extension"][0]["valueCodeableConcept"]["coding"][0]["system"],
        "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
    );
    assert_eq!(p["extension"][0]["url"], ETHNIC);
    assert_eq!(
        p["extension"][0]["valueCodeableConcept"]["coding"][0],
        serde_json::json!({"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland",
            "code": "A", "display": "White - British"})
    );
    conforms(&r.all("Encounter")[0], ENCOUNTER);
}

#[test]
fn an_a28_without_status_or_ethnicity_is_uk_core_too() {
    let r = TestRecord::new();
    ok(&r, &a28(&pid(NHS1, "", ""), "1"));
    let p = &r.all("Patient")[0];
    conforms(p, PATIENT);
    assert!(nhs_identifiers(p)[0].get("extension").is_none());
    assert!(p.get("extension").is_none());
}

#[test]
fn updates_replace_the_status_and_the_ethnic_category() {
    let r = TestRecord::new();
    ok(&r, &a28(&pid(NHS1, "A", "NSTS02"), "1"));
    // No PID-32 and no PID-22: both kept.
    ok(&r, &a31(&pid(NHS1, "", ""), "2"));
    let p = &r.all("Patient")[0];
    assert_eq!(code_of(&nhs_identifiers(p)[0]["extension"][0]), "02");
    assert_eq!(code_of(&p["extension"][0]), "A");
    // Verified, another category: replaced, still one of each.
    ok(&r, &a31(&pid(NHS1, "Z", "NSTS01"), "3"));
    let p = &r.all("Patient")[0];
    conforms(p, PATIENT);
    let ext = nhs_identifiers(p)[0]["extension"].as_array().unwrap();
    assert_eq!(ext.len(), 1);
    assert_eq!(code_of(&ext[0]), "01");
    assert_eq!(p["extension"].as_array().unwrap().len(), 1);
    assert_eq!(code_of(&p["extension"][0]), "Z");
    // HL7 null deletes the category.
    ok(&r, &a31(&pid(NHS1, "\"\"", ""), "4"));
    assert!(r.all("Patient")[0].get("extension").is_none());
    // A code outside the NHS table is kept as the CE rule maps it.
    ok(&r, &a31(&pid(NHS1, "WBRI^White British^LOCAL", ""), "5"));
    let p = &r.all("Patient")[0];
    conforms(p, PATIENT);
    assert_eq!(code_of(&p["extension"][0]), "WBRI");
}

#[test]
fn an_unknown_nhs_number_status_is_refused_at_pid_32() {
    let r = TestRecord::new();
    let e = apply(&r, &a28(&pid(NHS1, "", "NSTS09"), "1")).unwrap_err();
    assert_eq!(e.kind, MapErrorKind::Content, "{e:?}");
    assert_eq!(e.code, 103);
    assert_eq!(e.location.as_deref(), Some("PID-32"));
    assert!(e.text.contains("NSTS09"), "{}", e.text);
    // Other table 0445 codes are not about the NHS number.
    ok(&r, &a28(&pid(NHS1, "", "AL"), "2"));
}

#[test]
fn a_changed_nhs_number_keeps_one_and_finds_the_patient_by_the_old() {
    let r = TestRecord::new();
    ok(&r, &a28(&pid(NHS1, "", "NSTS01"), "1"));
    // The PAS corrects the NHS number (same hospital number).
    ok(&r, &a31(&pid(NHS2, "", "NSTS02"), "2"));
    assert_eq!(r.count("Patient"), 1);
    let p = &r.all("Patient")[0];
    conforms(p, PATIENT);
    let nhs = nhs_identifiers(p);
    assert_eq!(nhs.len(), 1, "UK Core allows one NHS number: {p}");
    assert_eq!(nhs[0]["value"], NHS2);
    assert_eq!(code_of(&nhs[0]["extension"][0]), "02");
    let old: Vec<&Value> = p["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["use"] == "old")
        .collect();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["value"], NHS1);
    assert_eq!(
        old[0]["system"],
        "https://fhir.wardline.invalid/Id/superseded-nhs-number"
    );
    // A message quoting only the old number finds the same patient.
    let only_old = format!("PID|1||{NHS1}^^^NHS^NH||SMITH^Jane");
    ok(&r, &a31(&only_old, "3"));
    assert_eq!(
        r.count("Patient"),
        1,
        "no duplicate made from the old number"
    );
    // ...and makes it current again, the other one superseded.
    let p = &r.all("Patient")[0];
    conforms(p, PATIENT);
    let nhs = nhs_identifiers(p);
    assert_eq!(nhs.len(), 1);
    assert_eq!(nhs[0]["value"], NHS1);
}

#[test]
fn the_status_and_the_category_go_out_and_read_back() {
    use wardline_hl7_fhir::memory::MemoryRecords;
    use wardline_hl7_fhir::outbound::{Change, message_for};
    let r = TestRecord::new();
    ok(&r, &a28(&pid(NHS1, "G", "NSTS01"), "1"));
    let p = r.all("Patient")[0].clone();
    let change = Change {
        resource_type: "Patient",
        before: None,
        after: Some(&p),
    };
    let out = message_for(
        &change,
        &mut MemoryRecords::new(),
        &MappingConfig::default(),
        "x1",
        "20240612093000",
    )
    .unwrap()
    .unwrap();
    let msg = Message::parse(&out.text).unwrap();
    assert_eq!(
        msg.get("PID-22").unwrap(),
        Some("G^Mixed - Any other mixed background")
    );
    assert_eq!(msg.get("PID-32").unwrap(), Some("NSTS01"));
    // Read back by another Wardline: the same status and category.
    let other = TestRecord::new();
    ok(&other, &out.text);
    let back = &other.all("Patient")[0];
    conforms(back, PATIENT);
    assert_eq!(code_of(&nhs_identifiers(back)[0]["extension"][0]), "01");
    assert_eq!(code_of(&back["extension"][0]), "G");
}

/// A record changed by the mapping before issue 15 (the replaced NHS number
/// kept as a second NHS-number identifier, `use` `old`) and claiming UK
/// Core is made UK Core by the next message, even one with no NHS number.
#[test]
fn an_old_second_nhs_number_is_superseded_by_the_next_message() {
    let r = TestRecord::new();
    ok(&r, &a28(&pid(NHS1, "", ""), "1"));
    let mut p = r.all("Patient")[0].clone();
    p["identifier"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"use": "old", "system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS2}));
    // Stored as it was then: without the claim (the core would refuse it).
    p.as_object_mut().unwrap().remove("meta");
    let id = p["id"].as_str().unwrap().to_owned();
    r.svc
        .transact(&wardline_core::Trusted::operator("t"), |tx| {
            tx.save(p.clone())
        })
        .unwrap();
    let mut claimed = r.get("Patient", &id).unwrap();
    claimed["meta"] = serde_json::json!({"profile": [PATIENT]});
    assert!(!uk_core().issues(r4(), &claimed).is_empty());
    // An A31 quoting only the hospital number.
    ok(&r, &a31("PID|1||RWG123456^^^RWG^MR||SMITH^Janet", "2"));
    let p = r.get("Patient", &id).unwrap();
    assert_eq!(nhs_identifiers(&p).len(), 1, "{p}");
    let mut claimed = p.clone();
    claimed["meta"] = serde_json::json!({"profile": [PATIENT]});
    assert!(uk_core().issues(r4(), &claimed).is_empty(), "{p}");
}
