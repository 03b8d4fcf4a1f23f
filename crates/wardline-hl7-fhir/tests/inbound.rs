//! Inbound mappings against `TestRecord`, with project-written UK
//! messages. Every saved resource is validated against R4 by
//! `TestRecord::save`.

use serde_json::{Value, json};
use wardline_hl7::Message;

mod support;
use support::TestRecord;
use wardline_hl7_fhir::inbound::Applied;
use wardline_hl7_fhir::{MapError, MapErrorKind, MappingConfig, NHS_NUMBER_SYSTEM, Records};

const NHS1: &str = "9434765919";
const NHS2: &str = "9434765870";
// (9434765828, suggested in the brief, fails Modulus 11.)
const NHS3: &str = "9434765838";

fn msh(ty: &str, id: &str) -> String {
    format!("MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20240612093000||{ty}|{id}|P|2.4")
}

fn m(segments: &[&str]) -> String {
    segments.join("\r") + "\r"
}

fn apply(records: &mut TestRecord, text: &str) -> Result<Applied, MapError> {
    let msg = Message::parse(text).expect("test message parses");
    records.apply(&msg, &MappingConfig::default())
}

fn ok(records: &mut TestRecord, text: &str) -> Applied {
    match apply(records, text) {
        Ok(a) => a,
        Err(e) => panic!("{e:?} for\n{}", text.replace('\r', "\n")),
    }
}

fn err(records: &mut TestRecord, text: &str) -> MapError {
    match apply(records, text) {
        Ok(a) => panic!("expected an error, got {a:?}"),
        Err(e) => e,
    }
}

fn assert_content(e: &MapError, code: u16, loc: &str, names: &str) {
    assert_eq!(e.kind, MapErrorKind::Content, "{e:?}");
    assert_eq!(e.code, code, "{e:?}");
    assert_eq!(e.location.as_deref(), Some(loc), "{e:?}");
    assert!(
        e.text.contains(names),
        "{:?} does not name {names:?}",
        e.text
    );
}

fn pid(nhs: &str) -> String {
    format!(
        "PID|1||{nhs}^^^NHS^NH~RWG123456^^^RWG^MR||SMITH^Jane^Anne^^Mrs^^L||19800214|F|||1 High Street^Flat 2^London^^nw32qg^GBR^H||020 7946 0000^PRN^PH~07700 900123^PRS^CP|0113 496 0000^WPN^PH||M"
    )
}

/// A PV1 segment from (field number, value) pairs.
fn seg(id: &str, fields: &[(usize, &str)]) -> String {
    let n = fields.iter().map(|(i, _)| *i).max().unwrap_or(0);
    let mut v = vec![""; n];
    for (i, x) in fields {
        v[i - 1] = x;
    }
    format!("{id}|{}", v.join("|"))
}

fn pv1(class: &str, loc: &str, visit: &str, extra44: &str) -> String {
    seg(
        "PV1",
        &[
            (1, "1"),
            (2, class),
            (3, loc),
            (7, "1234567^JONES^Robert^^^Dr"),
            (8, "C1234^BROWN^Alice^^^Dr"),
            (10, "300"),
            (14, "19"),
            (19, visit),
            (44, extra44),
        ],
    )
}

fn admit(nhs: &str, visit: &str, loc: &str) -> String {
    m(&[
        &msh("ADT^A01^ADT_A01", "1"),
        "EVN|A01|20240612093000",
        &pid(nhs),
        "PD1|||Riverside Surgery^^Y12345|G1234567^PATEL^Anil^^^Dr",
        &pv1("I", loc, visit, "20240612090000"),
    ])
}

fn event(ev: &str, nhs: &str, visit: &str, loc: &str, when: &str) -> String {
    m(&[
        &msh(&format!("ADT^{ev}^ADT_A01"), "2"),
        &format!("EVN|{ev}|{when}||||{when}"),
        &format!("PID|1||{nhs}^^^NHS^NH"),
        &seg("PV1", &[(1, "1"), (2, "I"), (3, loc), (19, visit)]),
    ])
}

fn one(records: &TestRecord, rt: &str) -> Value {
    let all = records.all(rt);
    assert_eq!(all.len(), 1, "{rt}: {all:#?}");
    all.into_iter().next().unwrap()
}

fn location_by_path(records: &TestRecord, path: &str) -> Value {
    records
        .all("Location")
        .into_iter()
        .find(|l| l["identifier"][0]["value"] == path)
        .unwrap_or_else(|| panic!("no Location {path}"))
}

fn bed_status(records: &TestRecord, path: &str) -> String {
    location_by_path(records, path)["operationalStatus"]["code"]
        .as_str()
        .unwrap_or("none")
        .to_owned()
}

fn loc_ref(records: &TestRecord, path: &str) -> String {
    format!(
        "Location/{}",
        location_by_path(records, path)["id"].as_str().unwrap()
    )
}

const BED4: &str = "WARD7^BAY2^BED4^RWG";
const BED1: &str = "WARD9^BAY1^BED1^RWG";

#[test]
fn admit_creates_patient_encounter_and_locations() {
    let mut r = TestRecord::new();
    let a = ok(&mut r, &admit(NHS1, "V1001", BED4));
    let p = one(&r, "Patient");
    assert_eq!(a.patient_id.as_deref(), p["id"].as_str());
    assert_eq!(
        p["identifier"],
        json!([
            {"system": NHS_NUMBER_SYSTEM, "value": NHS1},
            {"use": "usual",
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": "https://fhir.wardline.invalid/Id/rwg-mr", "value": "RWG123456"}
        ])
    );
    assert_eq!(
        p["name"],
        json!([{"use": "official", "family": "SMITH", "given": ["Jane", "Anne"], "prefix": ["Mrs"]}])
    );
    assert_eq!(p["birthDate"], "1980-02-14");
    assert_eq!(p["gender"], "female");
    assert_eq!(p["address"][0]["postalCode"], "NW3 2QG");
    assert_eq!(p["address"][0]["line"], json!(["1 High Street", "Flat 2"]));
    assert_eq!(p["address"][0]["use"], "home");
    assert_eq!(
        p["telecom"],
        json!([
            {"system": "phone", "value": "020 7946 0000", "use": "home"},
            {"system": "phone", "value": "07700 900123", "use": "mobile"},
            {"system": "phone", "value": "0113 496 0000", "use": "work"}
        ])
    );
    assert_eq!(p["maritalStatus"]["coding"][0]["code"], "M");
    // GP practice and GP.
    let org = one(&r, "Organization");
    assert_eq!(org["identifier"][0]["value"], "Y12345");
    let gps = &p["generalPractitioner"];
    assert_eq!(
        gps[0]["reference"],
        format!("Organization/{}", org["id"].as_str().unwrap())
    );
    let gp = r
        .all("Practitioner")
        .into_iter()
        .find(|x| x["identifier"][0]["system"] == "https://fhir.nhs.uk/Id/gmp-number")
        .expect("GP");
    assert_eq!(
        gps[1]["reference"],
        format!("Practitioner/{}", gp["id"].as_str().unwrap())
    );

    let e = one(&r, "Encounter");
    assert_eq!(e["status"], "in-progress");
    assert_eq!(e["class"]["code"], "IMP");
    assert_eq!(e["identifier"][0]["value"], "V1001");
    assert_eq!(
        e["identifier"][0]["system"],
        "https://fhir.wardline.invalid/Id/visit"
    );
    assert_eq!(e["period"]["start"], "2024-06-12T09:00:00+01:00");
    assert_eq!(
        e["subject"]["reference"],
        format!("Patient/{}", p["id"].as_str().unwrap())
    );
    assert_eq!(e["serviceType"]["coding"][0]["code"], "300");
    assert_eq!(
        e["hospitalization"]["admitSource"]["coding"][0]["code"],
        "19"
    );
    // Locations: site → ward → room → bed.
    assert_eq!(r.count("Location"), 4);
    let site = location_by_path(&r, "RWG");
    let ward = location_by_path(&r, "RWG/WARD7");
    let bay = location_by_path(&r, "RWG/WARD7/BAY2");
    let bed = location_by_path(&r, "RWG/WARD7/BAY2/BED4");
    assert_eq!(site["physicalType"]["coding"][0]["code"], "si");
    assert_eq!(ward["physicalType"]["coding"][0]["code"], "wa");
    assert_eq!(bay["physicalType"]["coding"][0]["code"], "ro");
    assert_eq!(bed["physicalType"]["coding"][0]["code"], "bd");
    assert_eq!(
        ward["partOf"]["reference"],
        format!("Location/{}", site["id"].as_str().unwrap())
    );
    assert_eq!(
        bed["partOf"]["reference"],
        format!("Location/{}", bay["id"].as_str().unwrap())
    );
    assert_eq!(bed_status(&r, "RWG/WARD7/BAY2/BED4"), "O");
    assert_eq!(
        e["location"],
        json!([{"location": {"reference": loc_ref(&r, "RWG/WARD7/BAY2/BED4"), "display": "RWG/WARD7/BAY2/BED4"},
                "status": "active", "period": {"start": "2024-06-12T09:00:00+01:00"}}])
    );
    // Consultants.
    let parts = e["participant"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["type"][0]["coding"][0]["code"], "ATND");
    assert_eq!(parts[1]["type"][0]["coding"][0]["code"], "REF");
    let gmc = r
        .all("Practitioner")
        .into_iter()
        .find(|x| x["identifier"][0]["system"] == "https://fhir.hl7.org.uk/Id/gmc-number")
        .expect("GMC consultant");
    assert_eq!(gmc["identifier"][0]["value"], "1234567");
    assert_eq!(
        parts[0]["individual"]["reference"],
        format!("Practitioner/{}", gmc["id"].as_str().unwrap())
    );

    // Resending the admission changes nothing but the versions.
    ok(&mut r, &admit(NHS1, "V1001", BED4));
    assert_eq!(r.count("Patient"), 1);
    assert_eq!(r.count("Encounter"), 1);
    assert_eq!(r.count("Location"), 4);
    assert_eq!(r.count("Practitioner"), 3);
    assert_eq!(
        one(&r, "Encounter")["location"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn admit_transfer_discharge_keeps_location_history() {
    let mut r = TestRecord::new();
    ok(&mut r, &admit(NHS1, "V2001", BED4));
    ok(&mut r, &event("A02", NHS1, "V2001", BED1, "20240613140000"));
    let e = one(&r, "Encounter");
    let bed4 = loc_ref(&r, "RWG/WARD7/BAY2/BED4");
    let bed1 = loc_ref(&r, "RWG/WARD9/BAY1/BED1");
    assert_eq!(
        e["location"],
        json!([
            {"location": {"reference": bed4, "display": "RWG/WARD7/BAY2/BED4"}, "status": "completed",
             "period": {"start": "2024-06-12T09:00:00+01:00", "end": "2024-06-13T14:00:00+01:00"}},
            {"location": {"reference": bed1, "display": "RWG/WARD9/BAY1/BED1"}, "status": "active",
             "period": {"start": "2024-06-13T14:00:00+01:00"}}
        ])
    );
    assert_eq!(bed_status(&r, "RWG/WARD7/BAY2/BED4"), "H");
    assert_eq!(bed_status(&r, "RWG/WARD9/BAY1/BED1"), "O");
    // Ward and site locations are shared, not duplicated.
    assert_eq!(r.count("Location"), 7);

    let discharge = m(&[
        &msh("ADT^A03^ADT_A03", "3"),
        "EVN|A03|20241201100000",
        &format!("PID|1||{NHS1}^^^NHS^NH"),
        &seg(
            "PV1",
            &[
                (1, "1"),
                (2, "I"),
                (3, BED1),
                (19, "V2001"),
                (36, "01"),
                (45, "20241201103000"),
            ],
        ),
    ]);
    ok(&mut r, &discharge);
    let e = one(&r, "Encounter");
    assert_eq!(e["status"], "finished");
    assert_eq!(
        e["period"]["end"], "2024-12-01T10:30:00+00:00",
        "GMT in December"
    );
    assert_eq!(e["location"][1]["status"], "completed");
    assert_eq!(
        e["location"][1]["period"]["end"],
        "2024-12-01T10:30:00+00:00"
    );
    assert_eq!(
        e["hospitalization"]["dischargeDisposition"]["coding"][0],
        json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0112", "code": "01"})
    );
    assert_eq!(bed_status(&r, "RWG/WARD9/BAY1/BED1"), "H");
    assert_eq!(bed_status(&r, "RWG/WARD7/BAY2/BED4"), "H");
}

#[test]
fn cancel_discharge_then_cancel_transfer_then_cancel_admit() {
    let mut r = TestRecord::new();
    ok(&mut r, &admit(NHS1, "V3001", BED4));
    ok(&mut r, &event("A02", NHS1, "V3001", BED1, "20240613140000"));
    ok(&mut r, &event("A03", NHS1, "V3001", BED1, "20240614110000"));
    assert_eq!(one(&r, "Encounter")["status"], "finished");

    // A13: back in BED1, no end.
    ok(&mut r, &event("A13", NHS1, "V3001", BED1, "20240614120000"));
    let e = one(&r, "Encounter");
    assert_eq!(e["status"], "in-progress");
    assert!(e["period"].get("end").is_none(), "{e:#}");
    assert_eq!(e["location"][1]["status"], "active");
    assert!(e["location"][1]["period"].get("end").is_none());
    assert_eq!(bed_status(&r, "RWG/WARD9/BAY1/BED1"), "O");
    // Resent A13: nothing changes.
    ok(&mut r, &event("A13", NHS1, "V3001", BED1, "20240614120000"));
    assert_eq!(one(&r, "Encounter"), e);

    // A12 (PV1-3 = the location before the transfer): BED4 active again.
    ok(&mut r, &event("A12", NHS1, "V3001", BED4, "20240614130000"));
    let e = one(&r, "Encounter");
    let locs = e["location"].as_array().unwrap();
    assert_eq!(locs.len(), 1);
    assert_eq!(
        locs[0]["location"]["reference"],
        loc_ref(&r, "RWG/WARD7/BAY2/BED4")
    );
    assert_eq!(locs[0]["status"], "active");
    assert_eq!(
        locs[0]["period"],
        json!({"start": "2024-06-12T09:00:00+01:00"})
    );
    assert_eq!(bed_status(&r, "RWG/WARD7/BAY2/BED4"), "O");
    assert_eq!(bed_status(&r, "RWG/WARD9/BAY1/BED1"), "U");
    // Resent A12: already back, nothing removed.
    ok(&mut r, &event("A12", NHS1, "V3001", BED4, "20240614130000"));
    assert_eq!(one(&r, "Encounter"), e);
    // A12 with nothing to cancel.
    let x = err(&mut r, &event("A12", NHS1, "V3001", BED1, "20240614130000"));
    assert_content(&x, 204, "PV1-19", "V3001");

    // A11: entered in error, bed unoccupied.
    ok(&mut r, &event("A11", NHS1, "V3001", BED4, "20240614140000"));
    let e = one(&r, "Encounter");
    assert_eq!(e["status"], "entered-in-error");
    assert_eq!(e["location"][0]["status"], "completed");
    assert_eq!(bed_status(&r, "RWG/WARD7/BAY2/BED4"), "U");
}

#[test]
fn a08_updates_and_keeps_other_identifiers() {
    let mut r = TestRecord::new();
    ok(&mut r, &admit(NHS1, "V4001", BED4));
    let a08 = m(&[
        &msh("ADT^A08^ADT_A01", "4"),
        "EVN|A08|20240615080000",
        &format!("PID|1||{NHS1}^^^NHS^NH~X99^^^OTHER^PI||SMITH-JONES^Jane|||||||||||S"),
        &seg(
            "PV1",
            &[
                (1, "1"),
                (2, "E"),
                (7, "C555^GREEN^Gail"),
                (10, "\"\""),
                (19, "V4001"),
            ],
        ),
    ]);
    ok(&mut r, &a08);
    let p = one(&r, "Patient");
    let ids: Vec<&str> = p["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![NHS1, "RWG123456", "X99"]);
    assert_eq!(p["name"][0]["family"], "SMITH-JONES");
    assert_eq!(p["birthDate"], "1980-02-14", "empty field leaves it");
    assert_eq!(p["gender"], "female");
    assert_eq!(p["maritalStatus"]["coding"][0]["code"], "S");
    assert_eq!(p["address"][0]["postalCode"], "NW3 2QG");
    let e = one(&r, "Encounter");
    assert_eq!(e["class"]["code"], "EMER");
    assert!(e.get("serviceType").is_none(), "\"\" removed PV1-10");
    let atnd: Vec<&Value> = e["participant"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"][0]["coding"][0]["code"] == "ATND")
        .collect();
    assert_eq!(atnd.len(), 1);
    assert_eq!(atnd[0]["individual"]["display"], "Gail GREEN");
    assert_eq!(
        e["location"].as_array().unwrap().len(),
        1,
        "A08 does not move"
    );
}

#[test]
fn hl7_null_deletes_demographics() {
    let mut r = TestRecord::new();
    ok(&mut r, &admit(NHS1, "V5001", BED4));
    let a31 = m(&[
        &msh("ADT^A31^ADT_A05", "5"),
        "EVN|A31|20240615080000",
        &format!("PID|1||{NHS1}^^^NHS^NH||\"\"||\"\"|\"\"|||\"\"||\"\"|\"\"||\"\""),
        "PD1|||\"\"",
    ]);
    ok(&mut r, &a31);
    let p = one(&r, "Patient");
    for k in [
        "name",
        "birthDate",
        "gender",
        "address",
        "telecom",
        "maritalStatus",
    ] {
        assert!(p.get(k).is_none(), "{k} still in {p:#}");
    }
    // PD1-3 deleted, PD1-4 (empty) kept.
    let gps = p["generalPractitioner"].as_array().unwrap();
    assert_eq!(gps.len(), 1);
    assert!(
        gps[0]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );
    assert_eq!(p["identifier"].as_array().unwrap().len(), 2);
}

#[test]
fn a40_merge_repoints_encounter() {
    let mut r = TestRecord::new();
    // The record to retire was registered under the hospital number only.
    let admitted = m(&[
        &msh("ADT^A01^ADT_A01", "5"),
        "EVN|A01|20240612093000",
        "PID|1||RWG123456^^^RWG^MR||SMITH^Jane||19800214|F",
        &pv1("I", BED4, "V6001", "20240612090000"),
    ]);
    ok(&mut r, &admitted);
    let a28 = m(&[
        &msh("ADT^A28^ADT_A05", "6"),
        "EVN|A28|20240615080000",
        &format!("PID|1||{NHS3}^^^NHS^NH~RWG777^^^RWG^MR||BLOGGS^Joe||19700101|M"),
    ]);
    ok(&mut r, &a28);
    assert_eq!(r.count("Patient"), 2);
    let survivor = r
        .all("Patient")
        .into_iter()
        .find(|p| p["identifier"][0]["value"] == NHS3)
        .unwrap();
    let sid = survivor["id"].as_str().unwrap().to_owned();
    let a40 = m(&[
        &msh("ADT^A40^ADT_A39", "7"),
        "EVN|A40|20240615090000",
        &format!("PID|1||{NHS3}^^^NHS^NH||BLOGGS^Joe"),
        "MRG|RWG123456^^^RWG^MR",
    ]);
    let a = ok(&mut r, &a40);
    assert_eq!(a.patient_id.as_deref(), Some(sid.as_str()));
    let e = one(&r, "Encounter");
    assert_eq!(e["subject"]["reference"], format!("Patient/{sid}"));
    let old = r
        .all("Patient")
        .into_iter()
        .find(|p| p["id"] != sid.as_str())
        .unwrap();
    assert_eq!(old["active"], false);
    assert_eq!(old["link"][0]["type"], "replaced-by");
    let s = r.get("Patient", &sid).unwrap();
    assert_eq!(s["link"][0]["type"], "replaces");
    // The PMI's merge: a Provenance lists what was repointed (so it can be
    // undone), and the retired record's numbers lead to the survivor.
    let prov = one(&r, "Provenance");
    assert_eq!(prov["activity"]["coding"][0]["code"], "merge");
    let found = r
        .find_by_identifier(
            "Patient",
            &MappingConfig::default().local_system("RWG", "MR"),
            "RWG123456",
        )
        .unwrap()
        .unwrap();
    assert_eq!(found["id"], sid.as_str());
    // Resent: nothing to do, no error.
    ok(&mut r, &a40);
    assert_eq!(r.count("Provenance"), 1);
    // Unknown prior identifier.
    let x = err(
        &mut r,
        &m(&[
            &msh("ADT^A40^ADT_A39", "8"),
            &format!("PID|1||{NHS3}^^^NHS^NH"),
            "MRG|NOPE42^^^RWG^MR",
        ]),
    );
    assert_content(&x, 204, "MRG-1", "NOPE42");
}

#[test]
fn a40_across_two_nhs_numbers_is_refused_by_the_pmi() {
    let mut r = TestRecord::new();
    ok(&mut r, &admit(NHS2, "V6101", BED4));
    ok(
        &mut r,
        &m(&[
            &msh("ADT^A28^ADT_A05", "9"),
            &format!("PID|1||{NHS3}^^^NHS^NH||BLOGGS^Joe||19700101|M"),
        ]),
    );
    let x = err(
        &mut r,
        &m(&[
            &msh("ADT^A40^ADT_A39", "10"),
            &format!("PID|1||{NHS3}^^^NHS^NH||BLOGGS^Joe"),
            "MRG|RWG123456^^^RWG^MR",
        ]),
    );
    assert_content(&x, 207, "MRG-1", "different NHS numbers");
    // Nothing was merged.
    assert!(r.all("Patient").iter().all(|p| p["active"] == true));
    assert_eq!(r.count("Provenance"), 0);
}

#[test]
fn adt_error_paths_name_the_value() {
    let mut r = TestRecord::new();
    let bad_nhs = admit("9434765918", "V7001", BED4);
    assert_content(&err(&mut r, &bad_nhs), 102, "PID-3", "9434765918");
    let no_id = m(&[
        &msh("ADT^A01^ADT_A01", "9"),
        "PID|1||||SMITH^A",
        &pv1("I", BED4, "V1", ""),
    ]);
    assert_content(&err(&mut r, &no_id), 101, "PID-3", "PID-3");
    let unknown_visit = event("A02", NHS1, "V-NOPE", BED1, "20240613140000");
    assert_content(&err(&mut r, &unknown_visit), 204, "PV1-19", "V-NOPE");
    for ev in ["A03", "A08", "A11", "A12", "A13"] {
        let x = err(&mut r, &event(ev, NHS1, "V-GONE", BED1, "20240613140000"));
        assert_content(&x, 204, "PV1-19", "V-GONE");
    }
    let no_visit = event("A02", NHS1, "", BED1, "20240613140000");
    assert_content(&err(&mut r, &no_visit), 101, "PV1-19", "PV1-19");
    let bad_birth = admit(NHS1, "V7002", BED4).replace("19800214", "19801314");
    assert_content(&err(&mut r, &bad_birth), 102, "PID-7", "19801314");
    let bad_sex = admit(NHS1, "V7003", BED4).replace("|F|||", "|Q|||");
    assert_content(&err(&mut r, &bad_sex), 103, "PID-8", "'Q'");
    let bad_class = m(&[
        &msh("ADT^A01^ADT_A01", "10"),
        &pid(NHS1),
        &pv1("Z", BED4, "V7004", ""),
    ]);
    assert_content(&err(&mut r, &bad_class), 103, "PV1-2", "'Z'");
    let bad_time = m(&[
        &msh("ADT^A01^ADT_A01", "11"),
        &pid(NHS1),
        &pv1("I", BED4, "V7005", "2024061"),
    ]);
    assert_content(&err(&mut r, &bad_time), 102, "PV1-44", "2024061");
    // A transfer needs a location.
    ok(&mut r, &admit(NHS1, "V7006", BED4));
    let bad_evn = event("A02", NHS1, "V7006", BED1, "2024-06-13");
    assert_content(&err(&mut r, &bad_evn), 102, "EVN-6", "2024-06-13");
    let no_loc = event("A02", NHS1, "V7006", "", "20240613140000");
    assert_content(&err(&mut r, &no_loc), 101, "PV1-3", "V7006");
    // Unsupported.
    let e = err(&mut r, &m(&[&msh("ADT^A99", "12"), &pid(NHS1)]));
    assert_eq!((e.kind, e.code), (MapErrorKind::Unsupported, 201));
    assert!(
        e.text.contains("ADT^A99") && e.text.contains("MSH-9"),
        "{}",
        e.text
    );
    let e = err(&mut r, &m(&[&msh("ZZZ^Z01", "13"), &pid(NHS1)]));
    assert_eq!((e.kind, e.code), (MapErrorKind::Unsupported, 200));
    assert!(e.text.contains("ZZZ^Z01"), "{}", e.text);
}

#[test]
fn other_separators_and_escapes() {
    let mut r = TestRecord::new();
    let text = format!(
        "MSH#*~!@#PAS#RWG#EPR#RWG#20240612093000##ADT*A28#1#P#2.4\rPID#1##{NHS1}***NHS*NH##O!S!BRIEN*Sean\r"
    );
    ok(&mut r, &text);
    let p = one(&r, "Patient");
    assert_eq!(p["name"][0]["family"], "O*BRIEN");
    assert_eq!(p["name"][0]["given"], json!(["Sean"]));
}

fn orm(control: &str, placer: &str, filler: &str, extra: &[&str]) -> String {
    let mut segs = vec![
        msh("ORM^O01^ORM_O01", "20"),
        format!("PID|1||{NHS1}^^^NHS^NH||SMITH^Jane||19800214|F"),
        seg("PV1", &[(1, "1"), (2, "I"), (19, "V9001")]),
        seg(
            "ORC",
            &[
                (1, control),
                (2, placer),
                (3, filler),
                (9, "20240612101500"),
                (12, "C1234^BROWN^Alice^^^Dr"),
            ],
        ),
        seg(
            "OBR",
            &[
                (1, "1"),
                (2, placer),
                (3, filler),
                (4, "26604007^Full blood count^SCT"),
                (27, "^^^^^S"),
            ],
        ),
    ];
    segs.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
    m(&refs)
}

fn oru(status: &str, value: &str, obx_status: &str) -> String {
    m(&[
        &msh("ORU^R01^ORU_R01", "30"),
        &format!("PID|1||{NHS1}^^^NHS^NH||SMITH^Jane||19800214|F"),
        &seg("PV1", &[(1, "1"), (2, "I"), (19, "V9001")]),
        "ORC|RE|PL123|FL456",
        &seg(
            "OBR",
            &[
                (1, "1"),
                (2, "PL123"),
                (3, "FL456"),
                (4, "26604007^Full blood count^SCT"),
                (7, "20240612110000"),
                (22, "20240612123000"),
                (24, "HM"),
                (25, status),
            ],
        ),
        "NTE|1||Sample slightly haemolysed",
        &format!(
            "OBX|1|NM|718-7^Haemoglobin^LN||{value}|g/L^g/L^UCUM|115-165|L|||{obx_status}|||20240612110000"
        ),
        "NTE|1||Repeat advised\\.br\\if symptomatic",
        &format!("OBX|2|NM|777-3^Platelets^LN||250|10*9/L|150-400|N|||{obx_status}"),
        &format!("OBX|3|ST|COMMENT^Comment^L||Film reviewed \\T\\ normal||||||{obx_status}"),
        &format!("OBX|4|SN|5905-5^Monocytes^LN||<^0.1|10*9/L|||||{obx_status}"),
        &format!("OBX|5|CE|600-7^Culture^LN||3092008^Staphylococcus aureus^SCT||||||{obx_status}"),
    ])
}

#[test]
fn order_then_result_links_based_on() {
    let mut r = TestRecord::new();
    ok(&mut r, &admit(NHS1, "V9001", BED4));
    ok(&mut r, &orm("NW", "PL123", "", &["NTE|1||Fasting"]));
    let sr = one(&r, "ServiceRequest");
    assert_eq!(sr["status"], "active");
    assert_eq!(sr["intent"], "order");
    assert_eq!(sr["priority"], "stat");
    assert_eq!(
        sr["code"],
        json!({"coding": [{"system": "http://snomed.info/sct", "code": "26604007", "display": "Full blood count"}],
               "text": "Full blood count"})
    );
    assert_eq!(sr["authoredOn"], "2024-06-12T10:15:00+01:00");
    assert_eq!(
        sr["identifier"][0]["system"],
        "https://fhir.wardline.invalid/Id/placer-order"
    );
    assert_eq!(sr["note"], json!([{"text": "Fasting"}]));
    let enc = one(&r, "Encounter");
    assert_eq!(
        sr["encounter"]["reference"],
        format!("Encounter/{}", enc["id"].as_str().unwrap())
    );
    assert!(
        sr["requester"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );
    // The lab accepts it with a filler number: same ServiceRequest.
    ok(
        &mut r,
        &orm("SC", "PL123", "FL456", &[]).replace("ORC|SC|PL123|FL456|", "ORC|SC|PL123|FL456||IP"),
    );
    let sr = one(&r, "ServiceRequest");
    assert_eq!(sr["identifier"].as_array().unwrap().len(), 2);
    assert_eq!(sr["status"], "active");

    ok(&mut r, &oru("P", "110", "P"));
    let dr = one(&r, "DiagnosticReport");
    assert_eq!(dr["status"], "preliminary");
    assert_eq!(
        dr["basedOn"][0]["reference"],
        format!("ServiceRequest/{}", sr["id"].as_str().unwrap())
    );
    assert_eq!(dr["identifier"][0]["value"], "FL456");
    assert_eq!(dr["effectiveDateTime"], "2024-06-12T11:00:00+01:00");
    assert_eq!(dr["issued"], "2024-06-12T12:30:00+01:00");
    assert_eq!(dr["conclusion"], "Sample slightly haemolysed");
    assert_eq!(dr["category"][0]["coding"][0]["code"], "HM");
    assert_eq!(dr["result"].as_array().unwrap().len(), 5);
    let obs = r.all("Observation");
    assert_eq!(obs.len(), 5);
    assert_eq!(obs[0]["status"], "preliminary");
    assert_eq!(
        obs[0]["valueQuantity"],
        json!({"value": 110, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"})
    );
    assert_eq!(obs[0]["referenceRange"][0]["low"]["value"], 115);
    assert_eq!(obs[0]["interpretation"][0]["coding"][0]["code"], "L");
    assert_eq!(
        obs[0]["note"],
        json!([{"text": "Repeat advised\nif symptomatic"}])
    );
    assert_eq!(obs[1]["valueQuantity"]["code"], "10*9/L");
    assert_eq!(obs[2]["valueString"], "Film reviewed & normal");
    assert_eq!(obs[3]["valueQuantity"]["comparator"], "<");
    assert_eq!(obs[3]["valueQuantity"]["value"], 0.1);
    assert_eq!(
        obs[4]["valueCodeableConcept"]["coding"][0]["code"],
        "3092008"
    );
    assert_eq!(obs[0]["basedOn"], dr["basedOn"]);
    assert_eq!(obs[0]["subject"], dr["subject"]);

    // Corrected result: same report and observations, updated.
    ok(&mut r, &oru("C", "120", "C"));
    assert_eq!(r.count("DiagnosticReport"), 1);
    assert_eq!(r.count("Observation"), 5);
    let dr2 = one(&r, "DiagnosticReport");
    assert_eq!(dr2["id"], dr["id"]);
    assert_eq!(dr2["status"], "corrected");
    assert_eq!(dr2["result"], dr["result"]);
    let obs2 = r.all("Observation");
    assert_eq!(obs2[0]["id"], obs[0]["id"]);
    assert_eq!(obs2[0]["valueQuantity"]["value"], 120);
    assert_eq!(obs2[0]["status"], "corrected");

    // Cancel the order.
    ok(&mut r, &orm("CA", "PL123", "FL456", &[]));
    assert_eq!(one(&r, "ServiceRequest")["status"], "revoked");
}

#[test]
fn order_and_result_errors_name_the_value() {
    let mut r = TestRecord::new();
    assert_content(
        &err(&mut r, &orm("CA", "PL-NONE", "", &[])),
        204,
        "ORC-2",
        "PL-NONE",
    );
    assert_content(
        &err(&mut r, &orm("ZZ", "PL1", "", &[])),
        103,
        "ORC-1",
        "'ZZ'",
    );
    assert_content(&err(&mut r, &orm("NW", "", "", &[])), 101, "ORC-2", "ORC-2");
    let bad_prio = orm("NW", "PL2", "", &[]).replace("^^^^^S", "^^^^^Q");
    assert_content(&err(&mut r, &bad_prio), 103, "OBR-27", "'Q'");
    let bad_time = orm("NW", "PL3", "", &[]).replace("20240612101500", "20241612");
    assert_content(&err(&mut r, &bad_time), 102, "ORC-9", "20241612");
    assert_content(&err(&mut r, &oru("F", "1O5", "F")), 102, "OBX-5", "1O5");
    assert_content(&err(&mut r, &oru("Q", "105", "F")), 103, "OBR-25", "'Q'");
    assert_content(&err(&mut r, &oru("F", "105", "Q")), 103, "OBX-11", "'Q'");
    let no_filler = oru("F", "105", "F")
        .replace("|FL456|", "||")
        .replace("ORC|RE|PL123|FL456", "ORC|RE|PL123");
    assert_content(&err(&mut r, &no_filler), 101, "OBR-3", "PL123");
    let bad_sn = oru("F", "105", "F").replace("<^0.1", "<^abc");
    assert_content(&err(&mut r, &bad_sn), 102, "OBX[4]-5", "abc");
    let no_code = oru("F", "105", "F").replace("OBX|3|ST|COMMENT^Comment^L|", "OBX|3|ST||");
    assert_content(&err(&mut r, &no_code), 101, "OBX[3]-3", "FL456");
}

fn siu(ev: &str, start: &str, extra_sch: &[(usize, &str)]) -> String {
    let mut f = vec![
        (1, "APT100"),
        (2, "F-APT100"),
        (6, "ROUTINE^Routine follow-up"),
        (7, "FU^Follow up^L"),
        (8, "NORMAL^Normal^HL70276"),
    ];
    f.extend_from_slice(extra_sch);
    m(&[
        &msh(&format!("SIU^{ev}^SIU_S12"), "40"),
        &seg("SCH", &f),
        &format!("PID|1||{NHS2}^^^NHS^NH||TAYLOR^Sam||19900101|M"),
        "RGS|1",
        &format!("AIS|1||CARD^Cardiology clinic^L|{start}|||30|min"),
        "AIP|1||C1234^BROWN^Alice^^^Dr|CON^Consultant^L|||",
        "AIL|1||OPD1^ROOM3^^RWG|||",
        "AIG|1||ECG1^ECG machine 1|EQ^Equipment",
    ])
}

#[test]
fn siu_book_reschedule_cancel() {
    let mut r = TestRecord::new();
    ok(&mut r, &siu("S12", "20240701093000", &[]));
    let a = one(&r, "Appointment");
    assert_eq!(a["status"], "booked");
    assert_eq!(a["start"], "2024-07-01T09:30:00+01:00");
    assert_eq!(a["end"], "2024-07-01T10:00:00+01:00");
    assert_eq!(a["minutesDuration"], 30);
    assert_eq!(a["identifier"].as_array().unwrap().len(), 2);
    // SCH-7 (table 0276) is the appointment type, as FHIR binds it and as
    // Wardline sends it; SCH-6 the reason; SCH-8 only when SCH-7 is empty.
    assert_eq!(a["appointmentType"]["coding"][0]["code"], "FU");
    assert_eq!(a["reasonCode"].as_array().unwrap().len(), 1);
    assert_eq!(a["reasonCode"][0]["coding"][0]["code"], "ROUTINE");
    assert_eq!(a["serviceType"][0]["coding"][0]["code"], "CARD");
    let parts = a["participant"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    let p = one(&r, "Patient");
    assert_eq!(
        parts[0]["actor"]["reference"],
        format!("Patient/{}", p["id"].as_str().unwrap())
    );
    assert!(
        parts[1]["actor"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );
    assert_eq!(parts[1]["type"][0]["coding"][0]["code"], "CON");
    assert_eq!(parts[2]["actor"]["display"], "RWG/OPD1/ROOM3");
    assert_eq!(parts[3]["actor"], json!({"display": "ECG machine 1"}));

    // S13: new times (SCH-11 wins over AIS), winter time.
    ok(
        &mut r,
        &siu(
            "S13",
            "20241202140000",
            &[(11, "^^^20241202140000^20241202144500")],
        ),
    );
    let a2 = one(&r, "Appointment");
    assert_eq!(a2["id"], a["id"]);
    assert_eq!(a2["start"], "2024-12-02T14:00:00+00:00");
    assert_eq!(a2["end"], "2024-12-02T14:45:00+00:00");
    assert_eq!(a2["minutesDuration"], 45);

    // S15: cancelled.
    ok(&mut r, &siu("S15", "20241202140000", &[]));
    let a3 = one(&r, "Appointment");
    assert_eq!(a3["status"], "cancelled");
    assert_eq!(a3["cancelationReason"]["coding"][0]["code"], "ROUTINE");
    assert_eq!(r.count("Patient"), 1);

    // Unknown appointment, bad duration unit, bad time.
    let unknown = siu("S14", "20240701093000", &[]).replace("F-APT100", "F-NOPE");
    let unknown = unknown.replace("SCH|APT100|", "SCH||");
    assert_content(&err(&mut r, &unknown), 204, "SCH-2", "F-NOPE");
    let bad_unit = siu("S12", "20240701093000", &[]).replace("|30|min", "|30|fortnights");
    assert_content(&err(&mut r, &bad_unit), 103, "AIS-8", "fortnights");
    let bad_time = siu("S12", "2024070109300", &[]);
    assert_content(&err(&mut r, &bad_time), 102, "AIS-4", "2024070109300");
    let no_ids = siu("S12", "20240701093000", &[]).replace("SCH|APT100|F-APT100|", "SCH|||");
    assert_content(&err(&mut r, &no_ids), 101, "SCH-1", "SCH-1");
}

#[test]
fn mdm_t02_text_document() {
    let mut r = TestRecord::new();
    ok(&mut r, &admit(NHS1, "V8001", BED4));
    let t02 = m(&[
        &msh("MDM^T02^MDM_T02", "50"),
        "EVN|T02|20240620101500",
        &format!("PID|1||{NHS1}^^^NHS^NH"),
        &seg("PV1", &[(1, "1"), (2, "I"), (19, "V8001")]),
        &seg(
            "TXA",
            &[
                (1, "1"),
                (2, "DS^Discharge summary"),
                (3, "TX"),
                (4, "20240620100000"),
                (6, "20240620090000"),
                (9, "C1234^BROWN^Alice^^^Dr"),
                (12, "DOC-77"),
                (17, "AU"),
                (19, "AV"),
            ],
        ),
        "OBX|1|TX|DS^Discharge summary||Admitted with chest pain \\T\\ breathlessness.",
        "OBX|2|FT|DS^Discharge summary||Discharged home.\\.br\\Follow up in clinic.",
    ]);
    ok(&mut r, &t02);
    let d = one(&r, "DocumentReference");
    assert_eq!(d["status"], "current");
    assert_eq!(d["docStatus"], "final");
    assert_eq!(d["identifier"][0]["value"], "DOC-77");
    assert_eq!(d["type"]["coding"][0]["code"], "DS");
    assert_eq!(d["date"], "2024-06-20T09:00:00+01:00");
    assert_eq!(d["context"]["period"]["start"], "2024-06-20T10:00:00+01:00");
    let enc = one(&r, "Encounter");
    assert_eq!(
        d["context"]["encounter"][0]["reference"],
        format!("Encounter/{}", enc["id"].as_str().unwrap())
    );
    let att = &d["content"][0]["attachment"];
    assert_eq!(att["contentType"], "text/plain");
    let expected =
        "Admitted with chest pain & breathlessness.\nDischarged home.\nFollow up in clinic.";
    assert_eq!(att["data"], wardline_hl7_fhir_b64(expected));
    assert!(
        d["author"][0]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );

    // An edit (T08) updates the same document; T11 cancels it.
    ok(
        &mut r,
        &t02.replace("MDM^T02", "MDM^T08").replace("|AU|", "|LA|"),
    );
    assert_eq!(r.count("DocumentReference"), 1);
    ok(&mut r, &t02.replace("MDM^T02", "MDM^T11"));
    assert_eq!(one(&r, "DocumentReference")["status"], "entered-in-error");

    let no_number = t02.replace("|DOC-77|", "||");
    assert_content(&err(&mut r, &no_number), 101, "TXA-12", "TXA-12");
    let bad_status = t02.replace("|AU|", "|ZZ|");
    assert_content(&err(&mut r, &bad_status), 103, "TXA-17", "'ZZ'");
    let bad_date = t02.replace("20240620090000", "20240620256000");
    assert_content(&err(&mut r, &bad_date), 102, "TXA-6", "20240620256000");
}

/// An independent base64 (not the one under test).
fn wardline_hl7_fhir_b64(s: &str) -> String {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bits: String = s.bytes().map(|b| format!("{b:08b}")).collect();
    let mut out: String = bits
        .as_bytes()
        .chunks(6)
        .map(|c| {
            let mut v = String::from_utf8(c.to_vec()).unwrap();
            while v.len() < 6 {
                v.push('0');
            }
            table[usize::from_str_radix(&v, 2).unwrap()] as char
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

#[test]
fn nm_with_comparator_keeps_it() {
    let mut r = TestRecord::new();
    ok(&mut r, &oru("F", "<15", "F"));
    let obs = r.all("Observation");
    assert_eq!(obs[0]["valueQuantity"]["comparator"], "<");
    assert_eq!(obs[0]["valueQuantity"]["value"], 15);
    assert_eq!(obs[0]["status"], "final");
    assert_eq!(one(&r, "DiagnosticReport")["status"], "final");
    // No ServiceRequest: no basedOn.
    assert!(one(&r, "DiagnosticReport").get("basedOn").is_none());
}

/// Found by fuzzing: codes with inner whitespace runs and undecodable ED data
/// must neither produce invalid FHIR nor be dropped.
#[test]
fn fuzz_findings_invalid_codes_and_bad_ed_data() {
    let mut r = TestRecord::new();
    let a = ok(
        &mut r,
        "MSH|^~\\&|LAB|RWG|EPR|RWG|20261123||ORU^R01|F1|P|2.4\rPID|||9434765919^^^NHS^NH\rOBR|1||FILL1|A  B^Odd code\rOBX|1|ST|X^Test^L||v|||H  L\r",
    );
    // Issue 16: no Patient is made from a result; an unknown patient's
    // result is kept unmatched for the worklist.
    assert!(a.patient_id.is_none());
    assert_eq!(r.count("Patient"), 0);
    let dr = &r.all("DiagnosticReport")[0];
    assert_eq!(dr["code"]["text"], "Odd code", "{dr}");
    assert!(dr["code"].get("coding").is_none(), "{dr}");
    let obs = &r.all("Observation")[0];
    assert_eq!(obs["interpretation"][0]["text"], "H  L", "{obs}");

    let e = err(
        &mut TestRecord::new(),
        "MSH|^~\\&|LAB|RWG|EPR|RWG|20261123||ORU^R01|F2|P|2.4\rPID|||9434765919^^^NHS^NH\rOBR|1||FILL2|X^Y^L\rOBX|1|ED|PDF^Report^L||^AP^PDF^Base64^VGhp?cw==\r",
    );
    assert_eq!(e.code, 102, "{e:?}");
    assert_eq!(e.location.as_deref(), Some("OBX-5"));
    assert!(e.text.contains("VGhp?cw=="), "{}", e.text);
}

/// An ADT event with a given patient class (PV1-2).
fn class_event(ev: &str, class: &str, visit: &str, loc: &str, when: &str) -> String {
    m(&[
        &msh(&format!("ADT^{ev}^ADT_A01"), &format!("{ev}-{when}")),
        &format!("EVN|{ev}|{when}||||{when}"),
        &format!("PID|1||{NHS1}^^^NHS^NH"),
        &seg("PV1", &[(1, "1"), (2, class), (3, loc), (19, visit)]),
    ])
}

#[test]
fn a06_a07_change_the_class_and_a06_admits_to_the_bed() {
    let mut r = TestRecord::new();
    // An outpatient attendance (A04, no bed).
    ok(
        &mut r,
        &class_event("A04", "O", "V6001", "OPD1", "20240612090000"),
    );
    let e = one(&r, "Encounter");
    assert_eq!(e["class"]["code"], "AMB");
    // A06: becomes an inpatient, admitted to BED4 through the bed rules.
    let a = ok(
        &mut r,
        &class_event("A06", "I", "V6001", BED4, "20240612110000"),
    );
    assert!(a.summary.contains("RWG/WARD7/BAY2/BED4"), "{}", a.summary);
    let e = one(&r, "Encounter");
    assert_eq!(e["status"], "in-progress");
    assert_eq!(e["class"]["code"], "IMP");
    let locs = e["location"].as_array().unwrap();
    assert_eq!(locs.last().unwrap()["status"], "active");
    assert_eq!(
        locs.last().unwrap()["location"]["reference"],
        loc_ref(&r, "RWG/WARD7/BAY2/BED4")
    );
    assert_eq!(locs.iter().filter(|l| l["status"] == "active").count(), 1);
    assert_eq!(bed_status(&r, "RWG/WARD7/BAY2/BED4"), "O");
    // A resend changes nothing.
    ok(
        &mut r,
        &class_event("A06", "I", "V6001", BED4, "20240612110000"),
    );
    assert_eq!(one(&r, "Encounter")["location"], e["location"]);
    // A07 back to outpatient: class AMB; PV1-3 where they are: no move.
    ok(
        &mut r,
        &class_event("A07", "O", "V6001", BED4, "20240613090000"),
    );
    let e7 = one(&r, "Encounter");
    assert_eq!(e7["class"]["code"], "AMB");
    assert_eq!(e7["status"], "in-progress");
    assert_eq!(e7["location"], e["location"]);
    // A07 with an empty PV1-2 defaults to outpatient.
    ok(
        &mut r,
        &class_event("A06", "", "V6001", "", "20240613100000"),
    );
    assert_eq!(one(&r, "Encounter")["class"]["code"], "IMP");
    ok(
        &mut r,
        &class_event("A07", "", "V6001", "", "20240613110000"),
    );
    assert_eq!(one(&r, "Encounter")["class"]["code"], "AMB");
    // A06 into a bed someone else is in is refused (Wardline is master).
    ok(&mut r, &admit(NHS2, "V6002", BED1));
    let clash = class_event("A06", "I", "V6001", BED1, "20240613120000");
    assert_content(&err(&mut r, &clash), 207, "PV1-3", "occupied");
    // Unknown visit; a finished visit cannot change class.
    let unknown = class_event("A06", "I", "V6999", BED4, "20240613120000");
    assert_content(&err(&mut r, &unknown), 204, "PV1-19", "'V6999'");
    ok(
        &mut r,
        &class_event("A03", "O", "V6001", "", "20240614090000"),
    );
    let done = class_event("A06", "I", "V6001", BED4, "20240614100000");
    assert_content(&err(&mut r, &done), 207, "PV1-19", "finished");
}

#[test]
fn a21_a22_leave_of_absence_keeps_the_bed() {
    let mut r = TestRecord::new();
    ok(&mut r, &admit(NHS1, "V7001", BED4));
    let before = r
        .all("Encounter")
        .into_iter()
        .find(|e| e["identifier"][0]["value"] == "V7001")
        .unwrap();
    let a = ok(
        &mut r,
        &class_event("A21", "I", "V7001", BED4, "20240613090000"),
    );
    assert!(a.summary.contains("onleave"), "{}", a.summary);
    let e = one(&r, "Encounter");
    assert_eq!(e["status"], "onleave");
    // The bed is held: same location entries, still occupied.
    assert_eq!(e["location"], before["location"]);
    assert_eq!(bed_status(&r, "RWG/WARD7/BAY2/BED4"), "O");
    // Nobody else can be admitted to it meanwhile.
    assert_content(
        &err(&mut r, &admit(NHS2, "V7002", BED4)),
        207,
        "PV1-3",
        "occupied",
    );
    // A resend of the A21 changes nothing.
    ok(
        &mut r,
        &class_event("A21", "I", "V7001", BED4, "20240613090000"),
    );
    assert_eq!(one(&r, "Encounter")["status"], "onleave");
    // A22: back in progress in the same bed.
    let a = ok(
        &mut r,
        &class_event("A22", "I", "V7001", BED4, "20240614090000"),
    );
    assert!(a.summary.contains("back at"), "{}", a.summary);
    let e = one(&r, "Encounter");
    assert_eq!(e["status"], "in-progress");
    assert_eq!(e["location"], before["location"]);
    assert_eq!(bed_status(&r, "RWG/WARD7/BAY2/BED4"), "O");
    // Resend of A22: nothing changes.
    ok(
        &mut r,
        &class_event("A22", "I", "V7001", BED4, "20240614090000"),
    );
    assert_eq!(one(&r, "Encounter")["status"], "in-progress");
    // A21 for a visit that is not in progress is refused.
    ok(
        &mut r,
        &class_event("A03", "I", "V7001", "", "20240615090000"),
    );
    let late = class_event("A21", "I", "V7001", "", "20240615100000");
    assert_content(&err(&mut r, &late), 207, "PV1-19", "finished");
    let late = class_event("A22", "I", "V7001", "", "20240615100000");
    assert_content(
        &err(&mut r, &late),
        207,
        "PV1-19",
        "Only a patient on leave",
    );
    let unknown = class_event("A21", "I", "V7999", "", "20240615100000");
    assert_content(&err(&mut r, &unknown), 204, "PV1-19", "'V7999'");
}

#[test]
fn a38_cancels_a_pre_admission_only() {
    let mut r = TestRecord::new();
    let a05 = m(&[
        &msh("ADT^A05^ADT_A05", "80"),
        "EVN|A05|20240612093000",
        &format!("PID|1||{NHS1}^^^NHS^NH"),
        &seg("PV1", &[(1, "1"), (2, "P"), (3, BED4), (19, "V8501")]),
        &seg("PV2", &[(8, "20240620090000")]),
    ]);
    ok(&mut r, &a05);
    let planned = one(&r, "Encounter");
    assert_eq!(planned["status"], "planned");
    let a = ok(
        &mut r,
        &class_event("A38", "P", "V8501", "", "20240613090000"),
    );
    assert!(a.summary.contains("cancelled"), "{}", a.summary);
    let e = one(&r, "Encounter");
    assert_eq!(e["status"], "cancelled");
    assert_eq!(e["class"], planned["class"]);
    assert_eq!(e["period"], planned["period"]);
    assert_eq!(e["location"], planned["location"]);
    // A pre-admission held no bed and none is touched.
    assert_eq!(bed_status(&r, "RWG/WARD7/BAY2/BED4"), "none");
    // Resend: nothing changes.
    ok(
        &mut r,
        &class_event("A38", "P", "V8501", "", "20240613090000"),
    );
    assert_eq!(one(&r, "Encounter")["status"], "cancelled");
    // An admission in progress is not a pre-admission (A11 cancels it).
    ok(&mut r, &admit(NHS1, "V8502", BED1));
    let wrong = class_event("A38", "I", "V8502", "", "20240613100000");
    assert_content(&err(&mut r, &wrong), 207, "PV1-19", "in-progress");
    let unknown = class_event("A38", "P", "V8599", "", "20240613100000");
    assert_content(&err(&mut r, &unknown), 204, "PV1-19", "'V8599'");
}

#[test]
fn an_order_follows_the_orders_lifecycle() {
    let mut r = TestRecord::new();
    ok(&mut r, &orm("NW", "PL900", "", &[]));
    assert_eq!(one(&r, "ServiceRequest")["status"], "active");
    // Cancelled (CA): an end.
    ok(&mut r, &orm("CA", "PL900", "", &[]));
    assert_eq!(one(&r, "ServiceRequest")["status"], "revoked");
    // A new-order message for it again does not restart it.
    let e = err(&mut r, &orm("NW", "PL900", "", &[]));
    assert_content(&e, 207, "ORC-1", "place a new order");
    assert_eq!(one(&r, "ServiceRequest")["status"], "revoked");
    // Marking it entered in error is always possible (XO with ORC-5 ER).
    ok(
        &mut r,
        &orm("XO", "PL900", "", &[]).replace("ORC|XO|PL900||", "ORC|XO|PL900|||ER"),
    );
    assert_eq!(one(&r, "ServiceRequest")["status"], "entered-in-error");
}
