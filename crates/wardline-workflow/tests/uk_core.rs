//! What the workflows write is UK Core: a registered Patient, an admission's
//! Encounter through transfer, discharge and a cancelled discharge, and the
//! demo trust's Patients and Encounters each claim their UK Core profile and
//! conform to it (checked here with `wardline_fhir::profile` as well as by
//! the core on every write). SQLite always, PostgreSQL too when
//! `WARDLINE_TEST_PG_URL` is set.

use std::sync::Arc;

use serde_json::{Value, json};
use wardline_core::{
    Body, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Trusted,
};
use wardline_fhir::definitions::r4;
use wardline_fhir::profile::uk_core;
use wardline_workflow::adt::{self, Admission, AdmissionKind};
use wardline_workflow::pmi::{self, NewPatient};

const UK_CORE_PATIENT: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
const UK_CORE_ENCOUNTER: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter";

const ADMISSION_METHOD_EXT: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod";
const DISCHARGE_METHOD_EXT: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DischargeMethod";

fn backends(test: &str) -> Vec<(&'static str, FhirService, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let mut out = vec![(
        "sqlite",
        FhirService::new(Arc::new(sqlite), ServiceConfig::default()),
        Some(dir),
    )];
    if let Some((pg, _, _)) = wardline_store_postgres::testenv::store(&format!("ukcore_{test}")) {
        out.push((
            "postgres",
            FhirService::new(Arc::new(pg), ServiceConfig::default()),
            None,
        ));
    }
    out
}

fn op() -> Trusted {
    Trusted::operator("ukcore-test")
}

fn call(svc: &FhirService, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let r = svc.handle(
        FhirRequest {
            method,
            path: path
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            query: vec![],
            headers: RequestHeaders::default(),
            body: body.map(|b| b.to_string().into_bytes()),
        },
        &op(),
    );
    let v = match r.body {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => Value::Null,
    };
    (r.status, v)
}

fn read(svc: &FhirService, t: &str, id: &str) -> Value {
    let (st, v) = call(svc, Method::Get, &format!("{t}/{id}"), None);
    assert_eq!(st, 200, "{t}/{id}");
    v
}

/// `v` claims `profile` and conforms to it.
fn conforms(v: &Value, profile: &str, what: &str) {
    assert!(
        v["meta"]["profile"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == profile)),
        "{what} claims {profile}: {v}"
    );
    let issues = uk_core().issues(r4(), v);
    assert!(issues.is_empty(), "{what}: {issues:?}");
}

fn ext<'v>(list: &'v Value, url: &str) -> Vec<&'v Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == url)
        .collect()
}

#[test]
fn registration_admission_and_discharge_write_uk_core() {
    for (name, svc, _dir) in backends("workflow") {
        // Registration.
        let form = NewPatient {
            nhs_number: "943 476 5919".into(),
            family: "Smith".into(),
            given: "Alice".into(),
            birth_date: "1970-01-01".into(),
            gender: "female".into(),
            address_line: "1 High Street".into(),
            city: "Leeds".into(),
            postcode: "LS1 4AP".into(),
            phone: "0113 496 0000".into(),
            ethnic_category: "H".into(),
        };
        let p = pmi::register(&svc, &op(), &form, true).unwrap();
        let patient = read(&svc, "Patient", &p.id);
        conforms(
            &patient,
            UK_CORE_PATIENT,
            &format!("{name}: registered patient"),
        );
        let nhs = &patient["identifier"][0];
        assert_eq!(nhs["system"], "https://fhir.nhs.uk/Id/nhs-number");
        assert_eq!(
            nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"], "02",
            "{name}: number present but not traced"
        );
        assert_eq!(
            patient["extension"][0]["valueCodeableConcept"]["coding"][0],
            json!({"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland",
                "code": "H", "display": "Asian or Asian British - Indian"}),
            "{name}: the ethnic category as UK Core carries it"
        );

        // A bed.
        for l in [
            json!({"resourceType": "Location", "id": "w", "status": "active", "name": "Ward",
                "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "wa"}]}}),
            json!({"resourceType": "Location", "id": "b1", "status": "active", "name": "Bed 1",
                "partOf": {"reference": "Location/w"},
                "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]},
                "operationalStatus": adt::BedState::Available.coding()}),
            json!({"resourceType": "Location", "id": "b2", "status": "active", "name": "Bed 2",
                "partOf": {"reference": "Location/w"},
                "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]},
                "operationalStatus": adt::BedState::Available.coding()}),
        ] {
            let path = format!("Location/{}", l["id"].as_str().unwrap());
            let (st, v) = call(&svc, Method::Put, &path, Some(l));
            assert!(st < 300, "{v}");
        }

        // Admission: the admission method as UK Core carries it.
        let admission = Admission {
            patient_id: p.id.clone(),
            bed_id: "b1".into(),
            kind: AdmissionKind::Elective,
            consultant_id: None,
            specialty: None,
            expected_discharge: None,
            placement_reason: None,
        };
        let eid = adt::admit_at(&svc, &op(), &admission, "2025-03-01T09:00:00Z").unwrap();
        let enc = read(&svc, "Encounter", &eid);
        conforms(&enc, UK_CORE_ENCOUNTER, &format!("{name}: admission"));
        let method = ext(&enc["hospitalization"]["extension"], ADMISSION_METHOD_EXT);
        assert_eq!(method.len(), 1, "{name}: {enc}");
        assert_eq!(
            method[0]["valueCodeableConcept"]["coding"][0],
            json!({"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland",
                "code": "11", "display": "Elective admission: waiting list"})
        );
        assert!(
            !enc["hospitalization"]["admitSource"]
                .to_string()
                .contains("AdmissionMethod"),
            "{name}: the admission method is not an admit source: {enc}"
        );
        assert_eq!(AdmissionKind::of_encounter(&enc), AdmissionKind::Elective);

        // Transfer, then discharge: the discharge method on the Encounter.
        adt::transfer_at(&svc, &op(), &eid, "b2", "2025-03-02T09:00:00Z").unwrap();
        conforms(
            &read(&svc, "Encounter", &eid),
            UK_CORE_ENCOUNTER,
            "transferred",
        );
        adt::discharge_at(&svc, &op(), &eid, "19", "1", "2025-03-03T09:00:00Z").unwrap();
        let enc = read(&svc, "Encounter", &eid);
        conforms(&enc, UK_CORE_ENCOUNTER, &format!("{name}: discharged"));
        assert_eq!(
            ext(&enc["extension"], DISCHARGE_METHOD_EXT).len(),
            1,
            "{enc}"
        );
        assert!(
            ext(&enc["hospitalization"]["extension"], DISCHARGE_METHOD_EXT).is_empty(),
            "{name}: not on hospitalization: {enc}"
        );

        // Cancelled discharge: the method goes, the admission method stays.
        adt::cancel_discharge(&svc, &op(), &eid).unwrap();
        let enc = read(&svc, "Encounter", &eid);
        conforms(
            &enc,
            UK_CORE_ENCOUNTER,
            &format!("{name}: discharge cancelled"),
        );
        assert!(
            ext(&enc["extension"], DISCHARGE_METHOD_EXT).is_empty(),
            "{enc}"
        );
        assert_eq!(
            ext(&enc["hospitalization"]["extension"], ADMISSION_METHOD_EXT).len(),
            1
        );
    }
}

/// A discharge recorded before issue 15 (the method on `hospitalization`,
/// no profile claim) is still cancelled cleanly.
#[test]
fn an_old_discharge_is_cancelled_cleanly() {
    for (name, svc, _dir) in backends("olddischarge") {
        for (path, r) in [
            ("Patient/p", json!({"resourceType": "Patient", "id": "p"})),
            (
                "Location/b",
                json!({"resourceType": "Location", "id": "b", "status": "active",
                "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]},
                "operationalStatus": adt::BedState::Cleaning.coding()}),
            ),
        ] {
            let (st, v) = call(&svc, Method::Put, path, Some(r));
            assert!(st < 300, "{v}");
        }
        let (st, v) = call(
            &svc,
            Method::Put,
            "Encounter/e",
            Some(json!({
                "resourceType": "Encounter", "id": "e", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": "Patient/p"},
                "period": {"start": "2025-03-01T09:00:00Z", "end": "2025-03-03T09:00:00Z"},
                "location": [{"location": {"reference": "Location/b"}, "status": "completed",
                    "period": {"start": "2025-03-01T09:00:00Z", "end": "2025-03-03T09:00:00Z"}}],
                "hospitalization": {
                    "dischargeDisposition": {"coding": [{"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeDestinationEngland", "code": "19"}]},
                    "extension": [{"url": DISCHARGE_METHOD_EXT, "valueCodeableConcept": {"coding": [
                        {"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeMethodEngland", "code": "1"}]}}]}
            })),
        );
        assert!(st < 300, "{v}");
        adt::cancel_discharge(&svc, &op(), "e").unwrap();
        let enc = read(&svc, "Encounter", "e");
        assert_eq!(enc["status"], "in-progress", "{name}");
        assert!(enc.get("hospitalization").is_none(), "{name}: {enc}");
    }
}

/// Every Patient and Encounter of the demo trust claims UK Core and
/// conforms, and the whole trust loads (so the core agreed).
#[test]
fn the_demo_trust_is_uk_core() {
    let bundle = wardline_demo::generate_on(
        20_261_123,
        60,
        "2025-06-15",
        &wardline_fhir::hospital_number::Scheme::default(),
    );
    let (mut patients, mut encounters) = (0, 0);
    for e in bundle["entry"].as_array().unwrap() {
        let r = &e["resource"];
        match r["resourceType"].as_str() {
            Some("Patient") => {
                patients += 1;
                conforms(r, UK_CORE_PATIENT, r["id"].as_str().unwrap());
            }
            Some("Encounter") => {
                encounters += 1;
                conforms(r, UK_CORE_ENCOUNTER, r["id"].as_str().unwrap());
            }
            _ => {}
        }
    }
    assert_eq!(patients, 60);
    assert!(encounters > 60);
    for (name, svc, _dir) in backends("demo") {
        let (st, v) = call(&svc, Method::Post, "", Some(bundle.clone()));
        assert_eq!(st, 200, "{name}: {v}");
    }
    // The benchmark population too.
    for index in 0..5 {
        for r in wardline_demo::population::patient_resources(
            7,
            index,
            &wardline_fhir::hospital_number::Scheme::default(),
        ) {
            match r["resourceType"].as_str() {
                Some("Patient") => conforms(&r, UK_CORE_PATIENT, "population patient"),
                Some("Encounter") => conforms(&r, UK_CORE_ENCOUNTER, "population encounter"),
                _ => {}
            }
        }
    }
}
