//! ADT and the bed board over a real store: SQLite always, PostgreSQL too
//! when `WARDLINE_TEST_PG_URL` is set (each test in a fresh schema).

mod support;

use std::sync::{Arc, Barrier};

use serde_json::{Value, json};
use support::Backend;
use wardline_core::access::{Operation, forbidden};
use wardline_core::{
    Access, Agent, Body, FhirRequest, FhirService, Method, Op, RequestHeaders, ResourceView,
    ServiceConfig, Trusted,
};
use wardline_fhir::FhirError;
use wardline_store::Reader;
use wardline_workflow::adt::{self, Admission, AdmissionKind, AdtErrorKind, BedState, WardBoard};

// ------------------------------------------------------------------ setup

fn backends(test: &str) -> Vec<Backend> {
    support::backends(&format!("adt_{test}"), support::plain, seed)
}

fn op() -> Trusted {
    Trusted::operator("adt-test")
}

fn loc(id: &str, name: &str, kind: &str, part_of: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "status": "active", "name": name,
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": kind}]}});
    if let Some(p) = part_of {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    if kind == "bd" {
        l["operationalStatus"] = BedState::Available.coding();
    }
    l
}

fn patient(id: &str, family: &str, given: &str, gender: &str, nhs: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "active": true,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"use": "official", "family": family, "given": [given]}], "gender": gender})
}

/// Site `s` → wards `w1` (bays `a`: beds a1–a3, `b`: b1–b2) and `w2` (bay
/// `c`: c1–c2, and bed `w2x` directly in the ward); four patients; a
/// consultant.
fn seed(svc: &FhirService) {
    let mut rs = vec![
        loc("s", "Watford General", "si", None),
        loc("w1", "Cedar Ward", "wa", Some("s")),
        loc("w2", "Oak Ward", "wa", Some("s")),
        loc("a", "Bay A", "ro", Some("w1")),
        loc("b", "Bay B", "ro", Some("w1")),
        loc("c", "Bay C", "ro", Some("w2")),
        loc("w2x", "Side room 1", "bd", Some("w2")),
        patient("f1", "Smith", "Alice", "female", "9434765919"),
        patient("f2", "Jones", "Beth", "female", "9434765870"),
        patient("m1", "Brown", "Carl", "male", "9434765862"),
        patient("m2", "Green", "Dan", "male", "9434765854"),
        json!({"resourceType": "Practitioner", "id": "cons", "name": [{"family": "House", "given": ["Greg"], "prefix": ["Dr"]}]}),
    ];
    for (bay, n) in [("a", 3), ("b", 2), ("c", 2)] {
        for i in 1..=n {
            rs.push(loc(
                &format!("{bay}{i}"),
                &format!("Bed {i}"),
                "bd",
                Some(bay),
            ));
        }
    }
    let entries: Vec<Value> = rs
        .into_iter()
        .map(|r| {
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            json!({"resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    let r = svc.handle(
        req(
            Method::Post,
            vec![],
            Some(json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})),
        ),
        &op(),
    );
    assert_eq!(r.status, 200, "seed: {:?}", r.body);
}

fn req(method: Method, path: Vec<String>, body: Option<Value>) -> FhirRequest {
    FhirRequest {
        method,
        path,
        query: vec![],
        headers: RequestHeaders::default(),
        body: body.map(|b| b.to_string().into_bytes()),
    }
}

fn get(svc: &FhirService, t: &str, id: &str) -> Value {
    let r = svc.handle(req(Method::Get, vec![t.into(), id.into()], None), &op());
    assert_eq!(r.status, 200, "{t}/{id}");
    match r.body {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => panic!("no body"),
    }
}

fn without_meta(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("meta");
    v
}

fn admission(patient: &str, bed: &str) -> Admission {
    Admission {
        patient_id: patient.into(),
        bed_id: bed.into(),
        kind: AdmissionKind::Emergency,
        consultant_id: Some("cons".into()),
        specialty: Some("300".into()),
        expected_discharge: Some("2025-03-10".into()),
        placement_reason: None,
    }
}

fn admit_at(svc: &FhirService, patient: &str, bed: &str, at: &str) -> String {
    adt::admit_at(svc, &op(), &admission(patient, bed), at)
        .unwrap_or_else(|e| panic!("admit {patient} to {bed}: {e}"))
}

/// Admits despite placement concerns (a deliberate mixed-sex bay).
fn admit_giving_reason(svc: &FhirService, patient: &str, bed: &str, at: &str) -> String {
    let a = Admission {
        placement_reason: Some("No other bed".into()),
        ..admission(patient, bed)
    };
    adt::admit_at(svc, &op(), &a, at).unwrap_or_else(|e| panic!("admit {patient} to {bed}: {e}"))
}

fn board(svc: &FhirService, ward: &str) -> WardBoard {
    adt::ward_board(svc, &op(), ward).unwrap()
}

fn bed_state(svc: &FhirService, ward: &str, bed: &str) -> BedState {
    board(svc, ward)
        .bays
        .iter()
        .flat_map(|b| &b.beds)
        .find(|b| b.id == bed)
        .unwrap_or_else(|| panic!("no bed {bed} on {ward}"))
        .state
}

const T0: &str = "2025-03-01T09:00:00Z";
const T1: &str = "2025-03-02T10:30:00Z";
const T2: &str = "2025-03-04T16:00:00Z";

// ------------------------------------------------------------------ tests

#[test]
fn admit_transfer_discharge_keeps_the_bed_history() {
    for b in backends("happy") {
        let svc = &b.svc;
        let enc_id = admit_at(svc, "f1", "a1", T0);
        let enc = get(svc, "Encounter", &enc_id);
        assert_eq!(enc["status"], "in-progress", "{}", b.name);
        assert_eq!(enc["class"]["code"], "IMP");
        assert_eq!(enc["period"]["start"], T0);
        // UK Core: the admission method is its extension on hospitalization.
        assert_eq!(
            enc["hospitalization"]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
            "21"
        );
        assert_eq!(
            enc["hospitalization"]["admitSource"]["coding"][0]["code"],
            "emd"
        );
        assert_eq!(
            enc["participant"][0]["individual"]["reference"],
            "Practitioner/cons"
        );
        assert_eq!(enc["serviceType"]["coding"][0]["code"], "300");
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Occupied);
        assert_eq!(get(svc, "Location", "a1")["operationalStatus"]["code"], "O");

        let now = adt::current_stay(svc, &op(), "f1")
            .unwrap()
            .expect("a stay");
        assert_eq!(now.encounter_id, enc_id);
        assert_eq!(now.kind, AdmissionKind::Emergency);
        assert_eq!(
            (now.bed.as_deref(), now.ward.as_deref(), now.site.as_deref()),
            (Some("Bed 1"), Some("Cedar Ward"), Some("Watford General"))
        );
        assert_eq!(now.consultant.as_deref(), Some("Dr Greg House"));
        assert_eq!(now.expected_discharge.as_deref(), Some("2025-03-10"));

        adt::transfer_at(svc, &op(), &enc_id, "c2", T1).unwrap();
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Cleaning, "{}", b.name);
        assert_eq!(get(svc, "Location", "a1")["operationalStatus"]["code"], "H");
        assert_eq!(bed_state(svc, "w2", "c2"), BedState::Occupied);

        adt::discharge_at(svc, &op(), &enc_id, "19", "1", T2).unwrap();
        assert_eq!(bed_state(svc, "w2", "c2"), BedState::Cleaning);
        let enc = get(svc, "Encounter", &enc_id);
        assert_eq!(enc["status"], "finished");
        assert_eq!(enc["period"]["end"], T2);
        assert_eq!(
            enc["hospitalization"]["dischargeDisposition"]["coding"][0]["code"],
            "19"
        );
        // UK Core: the discharge method is its extension on the Encounter.
        assert_eq!(
            enc["extension"][1]["url"],
            "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DischargeMethod"
        );
        assert_eq!(
            enc["extension"][1]["valueCodeableConcept"]["coding"][0]["code"],
            "1"
        );

        let s = adt::stay(svc, &op(), &enc_id).unwrap();
        assert_eq!(s.status, "finished");
        assert_eq!(s.discharged.as_deref(), Some(T2));
        assert_eq!(s.bed.as_deref(), Some("Bed 2"));
        // Issue 15: the bay is part of where a patient is (two patients in
        // different bays both showed "Ward · Bed 1").
        assert_eq!(s.bay.as_deref(), Some("Bay C"));
        assert_eq!(s.place(), "Watford General · Oak Ward · Bay C · Bed 2");
        assert_eq!(
            s.movements,
            vec![
                adt::Movement {
                    bed: "Bed 1".into(),
                    bay: "Bay A".into(),
                    ward: "Cedar Ward".into(),
                    from: T0.into(),
                    to: Some(T1.into())
                },
                adt::Movement {
                    bed: "Bed 2".into(),
                    bay: "Bay C".into(),
                    ward: "Oak Ward".into(),
                    from: T1.into(),
                    to: Some(T2.into())
                },
            ]
        );
        assert!(adt::current_stay(svc, &op(), "f1").unwrap().is_none());

        // Cleaned: available again, and the patient can come back.
        adt::set_bed_state(svc, &op(), "a1", BedState::Available, None).unwrap();
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Available);
        // Admit "now" (no explicit time) works as well.
        let again = adt::admit(
            svc,
            &op(),
            &Admission {
                expected_discharge: None,
                placement_reason: None,
                ..admission("f1", "a1")
            },
        )
        .unwrap();
        adt::discharge(svc, &op(), &again, "79", "4").unwrap();
    }
}

fn refused(r: Result<impl std::fmt::Debug, adt::AdtError>, kind: AdtErrorKind, words: &str) {
    match r {
        Ok(v) => panic!("expected a refusal containing '{words}', got {v:?}"),
        Err(e) => {
            assert_eq!(e.kind, kind, "{e}");
            assert!(
                e.message.contains(words),
                "'{}' does not say '{words}'",
                e.message
            );
            assert!(
                !e.message.contains("FhirError") && !e.message.contains("{"),
                "{e}"
            );
        }
    }
}

#[test]
fn every_rule_is_refused_with_a_plain_message() {
    for b in backends("rules") {
        let (svc, a) = (&b.svc, &op());
        let e1 = admit_at(svc, "f1", "a1", T0);
        // Two patients in one bed.
        refused(
            adt::admit_at(svc, a, &admission("m1", "a1"), T1),
            AdtErrorKind::Conflict,
            "Cedar Ward · Bay A · Bed 1 is occupied",
        );
        // A patient admitted twice.
        refused(
            adt::admit_at(svc, a, &admission("f1", "a2"), T1),
            AdtErrorKind::Conflict,
            "already has an admission in progress in Watford General · Cedar Ward · Bay A · Bed 1",
        );
        // Beds that are not available.
        for (bed, state, word) in [
            ("a2", BedState::Closed, "closed"),
            ("a3", BedState::Blocked, "blocked"),
            ("b1", BedState::Cleaning, "being cleaned"),
        ] {
            adt::set_bed_state(svc, a, bed, state, Some("Deep clean")).unwrap();
            refused(
                adt::admit_at(svc, a, &admission("m1", bed), T1),
                AdtErrorKind::Conflict,
                word,
            );
            refused(
                adt::transfer_at(svc, a, &e1, bed, T1),
                AdtErrorKind::Conflict,
                word,
            );
        }
        // Not a bed; unknown things.
        refused(
            adt::admit_at(svc, a, &admission("m1", "w1"), T1),
            AdtErrorKind::Invalid,
            "is not a bed",
        );
        refused(
            adt::admit_at(svc, a, &admission("nobody", "b2"), T1),
            AdtErrorKind::NotFound,
            "no patient",
        );
        refused(
            adt::admit_at(svc, a, &admission("m1", "nowhere"), T1),
            AdtErrorKind::NotFound,
            "no bed",
        );
        refused(
            adt::transfer(svc, a, "nothing", "b2", None),
            AdtErrorKind::NotFound,
            "no admission",
        );
        refused(
            adt::admit_at(
                svc,
                a,
                &Admission {
                    specialty: Some("999".into()),
                    ..admission("m1", "b2")
                },
                T1,
            ),
            AdtErrorKind::Invalid,
            "treatment function",
        );
        refused(
            adt::admit_at(
                svc,
                a,
                &Admission {
                    expected_discharge: Some("2025-02-01".into()),
                    placement_reason: None,
                    ..admission("m1", "b2")
                },
                T1,
            ),
            AdtErrorKind::Invalid,
            "before the admission",
        );
        refused(
            adt::admit_at(svc, a, &admission("m1", "b2"), "2999-01-01T00:00:00Z"),
            AdtErrorKind::Invalid,
            "in the future",
        );
        // Times: nothing before the patient arrived.
        refused(
            adt::discharge_at(svc, a, &e1, "19", "1", "2025-02-28T09:00:00Z"),
            AdtErrorKind::Invalid,
            "before the patient arrived",
        );
        refused(
            adt::transfer_at(svc, a, &e1, "b2", "2025-03-01T08:59:59Z"),
            AdtErrorKind::Invalid,
            "before the patient arrived",
        );
        adt::transfer_at(svc, a, &e1, "b2", T1).unwrap();
        refused(
            adt::discharge_at(svc, a, &e1, "19", "1", "2025-03-02T10:00:00Z"),
            AdtErrorKind::Invalid,
            "before the patient arrived",
        );
        refused(
            adt::transfer_at(svc, a, &e1, "b2", T2),
            AdtErrorKind::Invalid,
            "already in that bed",
        );
        // Bad codes.
        refused(
            adt::discharge_at(svc, a, &e1, "00", "1", T2),
            AdtErrorKind::Invalid,
            "not a discharge destination",
        );
        refused(
            adt::discharge_at(svc, a, &e1, "19", "9", T2),
            AdtErrorKind::Invalid,
            "not a discharge method",
        );
        // Bed states: never by hand to occupied, never with a patient in it.
        refused(
            adt::set_bed_state(svc, a, "c1", BedState::Occupied, None),
            AdtErrorKind::Invalid,
            "only by admitting",
        );
        refused(
            adt::set_bed_state(
                svc,
                a,
                "b2",
                BedState::Closed,
                Some("Side room refurbishment"),
            ),
            AdtErrorKind::Conflict,
            "has a patient in it",
        );
        // Not in progress: no transfer, discharge or second discharge.
        adt::discharge_at(svc, a, &e1, "19", "1", T2).unwrap();
        refused(
            adt::transfer_at(svc, a, &e1, "c1", T2),
            AdtErrorKind::Conflict,
            "has been discharged",
        );
        refused(
            adt::discharge_at(svc, a, &e1, "19", "1", T2),
            AdtErrorKind::Conflict,
            "has been discharged",
        );
        refused(
            adt::cancel_admission(svc, a, &e1),
            AdtErrorKind::Conflict,
            "cancel the discharge first",
        );
        refused(
            adt::cancel_transfer(svc, a, &e1),
            AdtErrorKind::Conflict,
            "has been discharged",
        );
        let e2 = admit_at(svc, "m1", "c1", T1);
        refused(
            adt::cancel_discharge(svc, a, &e2),
            AdtErrorKind::Conflict,
            "still in progress",
        );
        refused(
            adt::cancel_transfer(svc, a, &e2),
            AdtErrorKind::Conflict,
            "no transfer to cancel",
        );
        adt::cancel_admission(svc, a, &e2).unwrap();
        refused(
            adt::transfer_at(svc, a, &e2, "c2", T2),
            AdtErrorKind::Conflict,
            "was cancelled",
        );
        refused(
            adt::cancel_admission(svc, a, &e2),
            AdtErrorKind::Conflict,
            "was cancelled",
        );
        // An encounter that is not in progress, written through FHIR.
        let r = svc.handle(
            req(Method::Put, vec!["Encounter".into(), "planned".into()], Some(json!({"resourceType": "Encounter", "id": "planned",
                "status": "planned", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": "Patient/m2"}}))),
            a,
        );
        assert_eq!(r.status, 201);
        refused(
            adt::discharge(svc, a, "planned", "19", "1"),
            AdtErrorKind::Conflict,
            "has not started",
        );
    }
}

#[test]
fn cancels_restore_the_prior_state_exactly() {
    for b in backends("cancel") {
        let (svc, a) = (&b.svc, &op());
        let bed_before = without_meta(get(svc, "Location", "a1"));
        // Cancel admission: entered in error, bed as it was.
        let e = admit_at(svc, "f1", "a1", T0);
        adt::cancel_admission(svc, a, &e).unwrap();
        assert_eq!(
            get(svc, "Encounter", &e)["status"],
            "entered-in-error",
            "{}",
            b.name
        );
        assert_eq!(without_meta(get(svc, "Location", "a1")), bed_before);
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Available);
        assert!(adt::current_stay(svc, a, "f1").unwrap().is_none());

        // Cancel transfer: the encounter exactly as before the transfer.
        let e = admit_at(svc, "f1", "a1", T0);
        let before = without_meta(get(svc, "Encounter", &e));
        let c1_before = without_meta(get(svc, "Location", "c1"));
        adt::transfer_at(svc, a, &e, "c1", T1).unwrap();
        adt::cancel_transfer(svc, a, &e).unwrap();
        assert_eq!(without_meta(get(svc, "Encounter", &e)), before);
        assert_eq!(without_meta(get(svc, "Location", "c1")), c1_before);
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Occupied);
        assert_eq!(get(svc, "Location", "a1")["operationalStatus"]["code"], "O");

        // ... refused when the old bed has been taken, or closed.
        adt::transfer_at(svc, a, &e, "c1", T1).unwrap();
        adt::set_bed_state(svc, a, "a1", BedState::Available, None).unwrap();
        let other = admit_at(svc, "m1", "a1", T1);
        refused(
            adt::cancel_transfer(svc, a, &e),
            AdtErrorKind::Conflict,
            "now has another patient in it",
        );
        adt::cancel_admission(svc, a, &other).unwrap();
        adt::set_bed_state(
            svc,
            a,
            "a1",
            BedState::Closed,
            Some("Side room refurbishment"),
        )
        .unwrap();
        refused(
            adt::cancel_transfer(svc, a, &e),
            AdtErrorKind::Conflict,
            "has been closed since",
        );
        adt::set_bed_state(svc, a, "a1", BedState::Cleaning, None).unwrap();
        adt::cancel_transfer(svc, a, &e).unwrap();
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Occupied);
        assert_eq!(bed_state(svc, "w2", "c1"), BedState::Available);

        // Cancel discharge: back in progress in the same bed, exactly.
        let before = without_meta(get(svc, "Encounter", &e));
        adt::discharge_at(svc, a, &e, "54", "1", T2).unwrap();
        adt::cancel_discharge(svc, a, &e).unwrap();
        assert_eq!(without_meta(get(svc, "Encounter", &e)), before);
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Occupied);

        // ... refused when the bed has been taken meanwhile, or the patient
        // has been admitted again.
        adt::discharge_at(svc, a, &e, "54", "1", T2).unwrap();
        adt::set_bed_state(svc, a, "a1", BedState::Available, None).unwrap();
        let other = admit_at(svc, "m1", "a1", T2);
        refused(
            adt::cancel_discharge(svc, a, &e),
            AdtErrorKind::Conflict,
            "now has another patient in it",
        );
        adt::cancel_admission(svc, a, &other).unwrap();
        let again = admit_at(svc, "f1", "b1", T2);
        refused(
            adt::cancel_discharge(svc, a, &e),
            AdtErrorKind::Conflict,
            "already has an admission in progress",
        );
        adt::cancel_admission(svc, a, &again).unwrap();
        adt::cancel_discharge(svc, a, &e).unwrap();
        assert_eq!(get(svc, "Encounter", &e)["status"], "in-progress");
    }
}

#[test]
fn two_admissions_racing_for_one_bed_leave_exactly_one() {
    for b in backends("race") {
        let svc = &b.svc;
        for (round, bed) in ["a1", "a2", "a3", "b1", "b2"].into_iter().enumerate() {
            let (p, q) = if round % 2 == 0 {
                ("f1", "m1")
            } else {
                ("f2", "m2")
            };
            let gate = Barrier::new(2);
            let results: Vec<Result<String, adt::AdtError>> = std::thread::scope(|s| {
                let hs: Vec<_> = [p, q]
                    .into_iter()
                    .map(|who| {
                        let gate = &gate;
                        s.spawn(move || {
                            gate.wait();
                            adt::admit_at(svc, &op(), &admission(who, bed), T0)
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let ok: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(ok.len(), 1, "{} {bed}: {results:?}", b.name);
            let err = results.iter().find_map(|r| r.as_ref().err()).unwrap();
            assert_eq!(err.kind, AdtErrorKind::Conflict, "{err}");
            // Exactly one current encounter in the bed, in the store itself.
            let q = wardline_fhir::search::parse(
                wardline_fhir::definitions::r4(),
                Some("Encounter"),
                &[
                    ("location".into(), format!("Location/{bed}")),
                    ("status".into(), "in-progress".into()),
                ],
                wardline_fhir::search::Handling::Strict,
            )
            .unwrap();
            let page = svc
                .system_reader()
                .search(
                    &q,
                    &wardline_store::PageRequest {
                        count: 10,
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(page.resources.len(), 1, "{} {bed}", b.name);
            adt::discharge_at(svc, &op(), ok[0], "19", "1", T1).unwrap();
        }
        // The same patient admitted to two beds at once: one admission.
        let gate = Barrier::new(2);
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = ["c1", "c2"]
                .into_iter()
                .map(|bed| {
                    let gate = &gate;
                    s.spawn(move || {
                        gate.wait();
                        adt::admit_at(svc, &op(), &admission("m2", bed), T2)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{} {results:?}",
            b.name
        );
    }
}

#[test]
fn the_board_shows_an_admission_written_through_fhir() {
    for b in backends("fhir") {
        let svc = &b.svc;
        let r = svc.handle(
            req(Method::Post, vec!["Encounter".into()], Some(json!({"resourceType": "Encounter", "status": "in-progress",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": "Patient/m1"},
                "period": {"start": T0},
                "location": [
                    {"location": {"reference": "Location/a1"}, "status": "completed", "period": {"start": T0, "end": T1}},
                    {"location": {"reference": "Location/b2"}, "status": "active", "period": {"start": T1}}]}))),
            &op(),
        );
        assert_eq!(r.status, 201, "{}", b.name);
        // The bed's own status was not touched (still U): the encounter decides.
        assert_eq!(get(svc, "Location", "b2")["operationalStatus"]["code"], "U");
        let w = board(svc, "w1");
        let bed = w
            .bays
            .iter()
            .flat_map(|b| &b.beds)
            .find(|x| x.id == "b2")
            .unwrap();
        assert_eq!(bed.state, BedState::Occupied, "{}", b.name);
        let p = bed.patient.as_ref().expect("patient shown");
        assert_eq!(
            (p.id.as_str(), p.name.as_str(), p.nhs_number.as_deref()),
            ("m1", "BROWN, Carl", Some("9434765862"))
        );
        // The bed it left is not occupied.
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Available);
        // Nobody can be admitted into it; it is not offered.
        refused(
            adt::admit_at(svc, &op(), &admission("f1", "b2"), T1),
            AdtErrorKind::Conflict,
            "is occupied",
        );
        let free = adt::available_beds(svc, &op(), Some("w1")).unwrap();
        assert!(!free.iter().any(|(id, _)| id == "b2"));
        assert_eq!(
            free[0],
            (
                "a1".to_owned(),
                "Watford General · Cedar Ward · Bay A · Bed 1".to_owned()
            )
        );
        // And the workflow can discharge it.
        let id = match r.body {
            Body::Json(v) => v["id"].as_str().unwrap().to_owned(),
            Body::Raw(s) => serde_json::from_str::<Value>(&s).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            _ => panic!("no body"),
        };
        adt::discharge_at(svc, &op(), &id, "19", "1", T2).unwrap();
        assert_eq!(bed_state(svc, "w1", "b2"), BedState::Cleaning);
    }
}

/// Issue 23: closing or blocking a bed says why; the board shows the reason
/// until the bed reopens, when it is removed.
#[test]
fn closing_or_blocking_a_bed_needs_a_reason_shown_until_it_reopens() {
    for b in backends("bed_reason") {
        let (svc, a) = (&b.svc, &op());
        for state in [BedState::Closed, BedState::Blocked] {
            for reason in [None, Some("  ")] {
                refused(
                    adt::set_bed_state(svc, a, "a3", state, reason),
                    AdtErrorKind::Invalid,
                    "Say why the bed is",
                );
            }
        }
        assert_eq!(
            bed_state(svc, "w1", "a3"),
            BedState::Available,
            "{}",
            b.name
        );
        adt::set_bed_state(svc, a, "a3", BedState::Blocked, Some(" Broken bed rail ")).unwrap();
        let bed = |svc: &FhirService| {
            board(svc, "w1")
                .bays
                .into_iter()
                .flat_map(|b| b.beds)
                .find(|b| b.id == "a3")
                .unwrap()
        };
        let a3 = bed(svc);
        assert_eq!(a3.state, BedState::Blocked);
        assert_eq!(a3.reason.as_deref(), Some("Broken bed rail"), "{}", b.name);
        // Another reason replaces it; reopening removes it from the record.
        adt::set_bed_state(svc, a, "a3", BedState::Closed, Some("Infection control")).unwrap();
        assert_eq!(bed(svc).reason.as_deref(), Some("Infection control"));
        adt::set_bed_state(svc, a, "a3", BedState::Available, Some("ignored")).unwrap();
        assert_eq!(bed(svc).reason, None);
        assert!(
            !get(svc, "Location", "a3")
                .to_string()
                .contains("bed-status-reason"),
            "{}",
            b.name
        );
    }
}

#[test]
fn occupancy_per_ward_and_site_and_mixed_sex_bays() {
    for b in backends("occupancy") {
        let (svc, a) = (&b.svc, &op());
        admit_at(svc, "f1", "a1", T0);
        admit_giving_reason(svc, "m1", "a2", T0);
        admit_at(svc, "f2", "b1", T0);
        admit_at(svc, "m2", "w2x", T0);
        adt::set_bed_state(
            svc,
            a,
            "a3",
            BedState::Closed,
            Some("Side room refurbishment"),
        )
        .unwrap();
        adt::set_bed_state(svc, a, "b2", BedState::Cleaning, None).unwrap();
        adt::set_bed_state(
            svc,
            a,
            "c1",
            BedState::Blocked,
            Some("Side room refurbishment"),
        )
        .unwrap();

        let w1 = board(svc, "w1");
        assert_eq!(
            (w1.name.as_str(), w1.site.as_str(), w1.site_id.as_str()),
            ("Cedar Ward", "Watford General", "s")
        );
        let o = &w1.occupancy;
        assert_eq!(
            (
                o.beds,
                o.occupied,
                o.available,
                o.cleaning,
                o.closed,
                o.blocked
            ),
            (5, 3, 0, 1, 1, 0),
            "{}",
            b.name
        );
        assert!((o.percent() - 75.0).abs() < 1e-9);
        let bays: Vec<(&str, bool, usize)> = w1
            .bays
            .iter()
            .map(|b| (b.name.as_str(), b.mixed_sex, b.beds.len()))
            .collect();
        assert_eq!(bays, [("Bay A", true, 3), ("Bay B", false, 2)]);
        let names: Vec<&str> = w1.bays[0].beds.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["Bed 1", "Bed 2", "Bed 3"]);
        assert_eq!(
            w1.bays[0].beds[0]
                .patient
                .as_ref()
                .unwrap()
                .expected_discharge
                .as_deref(),
            Some("2025-03-10")
        );

        // A bed directly in a ward shows in a bay named after the ward.
        let w2 = board(svc, "w2");
        let bays: Vec<&str> = w2.bays.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(bays, ["Bay C", "Oak Ward"]);
        let o = &w2.occupancy;
        assert_eq!((o.beds, o.occupied, o.available, o.blocked), (3, 1, 1, 1));

        let sites = adt::sites(svc, a).unwrap();
        assert_eq!(sites.len(), 1);
        let s = &sites[0];
        assert_eq!(s.name, "Watford General");
        assert_eq!(
            (
                s.occupancy.beds,
                s.occupancy.occupied,
                s.occupancy.available
            ),
            (8, 4, 1)
        );
        let wards: Vec<(&str, usize)> = s
            .wards
            .iter()
            .map(|w| (w.name.as_str(), w.occupancy.occupied))
            .collect();
        assert_eq!(wards, [("Cedar Ward", 3), ("Oak Ward", 1)]);
        assert_eq!(
            adt::available_beds(svc, a, None).unwrap(),
            vec![(
                "c2".to_owned(),
                "Watford General · Oak Ward · Bay C · Bed 2".to_owned()
            )]
        );

        // Moving the man out of Bay A ends the mixed-sex warning there.
        let m1 = adt::current_stay(svc, a, "m1").unwrap().unwrap();
        adt::transfer_at(svc, a, &m1.encounter_id, "c2", T1).unwrap();
        assert!(!board(svc, "w1").bays[0].mixed_sex);
    }
}

fn flag_isolation(svc: &FhirService, patient: &str) {
    let r = svc.handle(
        req(Method::Post, vec!["Flag".into()], Some(json!({"resourceType": "Flag", "status": "active",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40174006"}], "text": "Isolation: MRSA"},
            "subject": {"reference": format!("Patient/{patient}")}}))),
        &op(),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
}

fn concern_kinds(e: &adt::AdtError) -> Vec<adt::ConcernKind> {
    assert_eq!(e.kind, AdtErrorKind::NeedsReason, "{e}");
    assert_eq!(e.status(), 409);
    e.concerns.iter().map(|c| c.kind).collect()
}

/// Regression (issue 15): a male patient admitted into a bay with a female
/// patient, or next to a patient in isolation, went ahead with no warning;
/// the board said "mixed-sex bay" only afterwards. Now the allocation is
/// refused with the concerns until a reason is given, and the reason is kept.
#[test]
fn placement_concerns_come_before_the_move_and_the_reason_is_kept() {
    use adt::ConcernKind::{IsolationInBay, MixedSex, PatientIsolated};
    for b in backends("placement") {
        let (svc, a) = (&b.svc, &op());
        admit_at(svc, "f1", "a1", T0);

        // A man into Bay A with Alice in Bed 1: refused, with the concern.
        let e = adt::admit_at(svc, a, &admission("m1", "a2"), T0).unwrap_err();
        assert_eq!(concern_kinds(&e), [MixedSex], "{}", b.name);
        let said = &e.concerns[0].message;
        assert!(
            said.contains("Bay A") && said.contains("Bed 1") && said.contains("female"),
            "{said}"
        );
        assert!(
            !said.contains("Smith") && !said.contains("Alice"),
            "names the other patient: {said}"
        );
        assert_eq!(
            bed_state(svc, "w1", "a2"),
            BedState::Available,
            "saved before the warning was answered"
        );
        // A blank reason is no reason.
        let blank = Admission {
            placement_reason: Some("  ".into()),
            ..admission("m1", "a2")
        };
        assert_eq!(
            concern_kinds(&adt::admit_at(svc, a, &blank, T0).unwrap_err()),
            [MixedSex]
        );

        // With a reason it goes ahead, and the reason is kept on the bed's entry.
        let enc_id = admit_giving_reason(svc, "m1", "a2", T0);
        let enc = get(svc, "Encounter", &enc_id);
        let ext = &enc["location"][0]["extension"][0];
        assert_eq!(ext["url"], adt::PLACEMENT_EXT);
        let parts = ext["extension"].as_array().unwrap();
        assert!(
            parts.iter().any(|p| p["url"] == "concern"
                && p["valueString"].as_str().unwrap().contains("mixed-sex"))
        );
        assert!(
            parts
                .iter()
                .any(|p| p["url"] == "reason" && p["valueString"] == "No other bed")
        );

        // A woman into an empty bay, or a side room: nothing to say.
        admit_at(svc, "f2", "b1", T0);
        // Beth is put in isolation; moving Alice next to her raises it.
        flag_isolation(svc, "f2");
        let alice = adt::current_stay(svc, a, "f1")
            .unwrap()
            .unwrap()
            .encounter_id;
        let e = adt::transfer_at(svc, a, &alice, "b2", T1).unwrap_err();
        assert_eq!(concern_kinds(&e), [IsolationInBay], "{}", b.name);
        assert!(
            e.concerns[0].message.contains("MRSA"),
            "{}",
            e.concerns[0].message
        );
        adt::transfer_at_with_reason(
            svc,
            a,
            &alice,
            "b2",
            T1,
            Some("Cohorted by infection control"),
        )
        .unwrap();
        assert_eq!(bed_state(svc, "w1", "b2"), BedState::Occupied);

        // A patient in isolation into a bay with others (Carl in Bay A).
        flag_isolation(svc, "m2");
        let e = adt::admit_at(svc, a, &admission("m2", "a3"), T1).unwrap_err();
        assert_eq!(concern_kinds(&e), [PatientIsolated], "{}", b.name);
        // ...but into a side room there is nothing to warn of.
        admit_at(svc, "m2", "w2x", T1);
    }
}

/// The consultants offered for an admission: consultant roles, by name.
#[test]
fn consultants_are_offered_by_name() {
    for b in backends("consultants") {
        let svc = &b.svc;
        for r in [
            json!({"resourceType": "PractitionerRole", "active": true, "practitioner": {"reference": "Practitioner/cons"}, "code": [{"text": "Consultant"}]}),
            json!({"resourceType": "Practitioner", "id": "nurse", "name": [{"family": "Nightingale", "given": ["Flo"]}]}),
            json!({"resourceType": "PractitionerRole", "active": true, "practitioner": {"reference": "Practitioner/nurse"}, "code": [{"text": "Staff Nurse"}]}),
        ] {
            let t = r["resourceType"].as_str().unwrap().to_owned();
            let (method, path) = match r["id"].as_str() {
                Some(id) => (Method::Put, vec![t, id.to_owned()]),
                None => (Method::Post, vec![t]),
            };
            let res = svc.handle(req(method, path, Some(r)), &op());
            assert!(res.status < 300, "{:?}", res.body);
        }
        assert_eq!(
            adt::consultants(svc, &op()).unwrap(),
            vec![("cons".to_owned(), "Dr Greg House".to_owned())],
            "{}",
            b.name
        );
    }
}

/// A requester with no relationship to one patient.
struct NoRelationship {
    agent: Agent,
    hidden: &'static str,
}

impl Access for NoRelationship {
    fn agent(&self) -> &Agent {
        &self.agent
    }
    fn check_type(&self, _: Op, _: Option<&str>) -> Result<(), FhirError> {
        Ok(())
    }
    fn check_resource(&self, _: Op, r: &ResourceView<'_>, _: &dyn Reader) -> Result<(), FhirError> {
        if r.patient == Some(self.hidden) {
            Err(forbidden("no legitimate relationship with this patient"))
        } else {
            Ok(())
        }
    }
    fn check_operation(&self, _: Operation) -> Result<(), FhirError> {
        Ok(())
    }
}

#[test]
fn patients_the_caller_may_not_see_are_withheld() {
    for b in backends("withheld") {
        let svc = &b.svc;
        admit_at(svc, "f1", "a1", T0);
        admit_giving_reason(svc, "m1", "a2", T0);
        let r = svc.handle(
            req(Method::Post, vec!["Flag".into()], Some(json!({"resourceType": "Flag", "status": "active",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40174006"}], "text": "Isolation: C. difficile"},
                "subject": {"reference": "Patient/f1"}}))),
            &op(),
        );
        assert_eq!(r.status, 201);
        let nurse = NoRelationship {
            agent: Agent {
                name: "nurse".into(),
                ..Agent::default()
            },
            hidden: "m1",
        };
        let w = adt::ward_board(svc, &nurse, "w1").unwrap();
        let beds = &w.bays[0].beds;
        let f1 = beds[0].patient.as_ref().expect("f1 is visible");
        assert_eq!(
            (f1.id.as_str(), f1.isolation.as_deref()),
            ("f1", Some("Isolation: C. difficile")),
            "{}",
            b.name
        );
        assert!(!beds[0].withheld);
        assert_eq!(beds[1].state, BedState::Occupied);
        assert!(
            beds[1].withheld && beds[1].patient.is_none(),
            "{:?}",
            beds[1]
        );
        // The warning still counts the withheld patient; the figures too.
        assert!(w.bays[0].mixed_sex);
        assert_eq!(w.occupancy.occupied, 2);
        // The admission itself is refused to them, and so is admitting into
        // the bed (without naming who is in it).
        let m1 = adt::current_stay(svc, &op(), "m1").unwrap().unwrap();
        assert_eq!(
            adt::stay(svc, &nurse, &m1.encounter_id).unwrap_err().kind,
            AdtErrorKind::Forbidden
        );
        assert_eq!(
            adt::current_stay(svc, &nurse, "m1").unwrap_err().kind,
            AdtErrorKind::Forbidden
        );
        let e = adt::admit_at(svc, &nurse, &admission("f2", "a2"), T1).unwrap_err();
        assert_eq!(e.kind, AdtErrorKind::Conflict);
        assert!(
            !e.message.contains("Brown") && !e.message.contains("m1"),
            "{e}"
        );
        assert_eq!(
            adt::discharge(svc, &nurse, &m1.encounter_id, "19", "1")
                .unwrap_err()
                .kind,
            AdtErrorKind::Forbidden
        );
        // With everyone visible, nothing is withheld (the Trusted board).
        assert!(board(svc, "w1").bays[0].beds.iter().all(|b| !b.withheld));
    }
}

/// Every ADT action is announced to HL7 v2 destinations by the outbox, in
/// the action's own transaction, with the trigger event a PAS expects.
#[test]
fn each_action_queues_its_hl7_trigger_event() {
    use wardline_integration::outbox::{Destination, OutboxHook};
    let dir = tempfile::tempdir().unwrap();
    let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let hook = OutboxHook::new(
        vec![Destination::parse("PAS=127.0.0.1:9").unwrap()],
        wardline_hl7_fhir::MappingConfig::default(),
    );
    let svc = FhirService::new(Arc::new(store), ServiceConfig::default()).with_hook(Arc::new(hook));
    seed(&svc);
    let events = |svc: &FhirService| -> Vec<String> {
        let mut r = req(Method::Get, vec!["Communication".into()], None);
        r.query = vec![("_count".into(), "100".into())];
        let v = match svc.handle(r, &op()).body {
            Body::Json(v) => v,
            Body::Raw(s) => serde_json::from_str(&s).unwrap(),
            _ => panic!("no body"),
        };
        v["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| {
                e["resource"]["category"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|c| {
                let c = &c["coding"][0];
                (c["system"] == "http://terminology.hl7.org/CodeSystem/v2-0003")
                    .then(|| c["code"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let a = &op();
    let e = admit_at(&svc, "f1", "a1", T0);
    adt::transfer_at(&svc, a, &e, "b1", T1).unwrap();
    adt::cancel_transfer(&svc, a, &e).unwrap();
    adt::discharge_at(&svc, a, &e, "19", "1", T2).unwrap();
    adt::cancel_discharge(&svc, a, &e).unwrap();
    adt::cancel_admission(&svc, a, &e).unwrap();
    // Bed states are not announced (Locations are not v2 trigger resources).
    adt::set_bed_state(
        &svc,
        a,
        "a2",
        BedState::Closed,
        Some("Side room refurbishment"),
    )
    .unwrap();
    let got = events(&svc);
    // The seed's four Patients are announced first (A28).
    assert_eq!(got[..4], ["A28", "A28", "A28", "A28"]);
    assert_eq!(got[4..], ["A01", "A02", "A12", "A03", "A13", "A11"]);
}

/// The demo trust's bed board: every site and ward, admissions in beds, the
/// isolation flag and the deliberate mixed-sex bay.
#[test]
fn the_demo_trust_makes_a_full_bed_board() {
    let dir = tempfile::tempdir().unwrap();
    let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let svc = FhirService::new(Arc::new(store), ServiceConfig::default());
    let bundle = wardline_demo::generate_on(
        20_261_123,
        100,
        "2025-06-15",
        &wardline_fhir::hospital_number::Scheme::default(),
    );
    let r = svc.handle(req(Method::Post, vec![], Some(bundle.clone())), &op());
    assert_eq!(r.status, 200);
    let admitted = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["resource"]["resourceType"] == "Encounter" && e["resource"]["status"] == "in-progress"
        })
        .count();
    let sites = adt::sites(&svc, &op()).unwrap();
    assert_eq!(sites.len(), 3);
    assert!(sites.iter().all(|s| s.wards.len() == 2));
    let occupied: usize = sites.iter().map(|s| s.occupancy.occupied).sum();
    assert_eq!(occupied, admitted);
    let (mut mixed, mut isolated, mut beds) = (0, 0, 0);
    for s in &sites {
        for w in &s.wards {
            let b = adt::ward_board(&svc, &op(), &w.id).unwrap();
            assert_eq!(b.occupancy, w.occupancy);
            mixed += b.bays.iter().filter(|b| b.mixed_sex).count();
            for bed in b.bays.iter().flat_map(|b| &b.beds) {
                beds += 1;
                assert_eq!(
                    bed.state == BedState::Occupied,
                    bed.patient.is_some(),
                    "{bed:?}"
                );
                isolated += bed
                    .patient
                    .as_ref()
                    .and_then(|p| p.isolation.as_ref())
                    .is_some() as usize;
            }
        }
    }
    assert_eq!((mixed, isolated, beds), (1, 1, 48));
    // An admitted demo patient can be discharged through the workflow.
    let any = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["resource"]["resourceType"] == "Encounter" && e["resource"]["status"] == "in-progress"
        })
        .unwrap();
    adt::discharge(
        &svc,
        &op(),
        any["resource"]["id"].as_str().unwrap(),
        "19",
        "1",
    )
    .unwrap();
}

#[test]
fn leave_of_absence_keeps_the_bed_held() {
    use wardline_workflow::adt::beds::{self, BedMaster, Mover};
    for b in backends("leave") {
        let (svc, a) = (&b.svc, &op());
        let e1 = admit_at(svc, "f1", "a1", T0);
        // On leave: the bed stays theirs (occupied, nobody else goes in).
        svc.transact(a, |tx| {
            let mut enc = tx.get("Encounter", &e1)?.unwrap();
            beds::go_on_leave(&mut enc)?;
            tx.save(enc).map(|_| ())
        })
        .unwrap();
        let enc = get(svc, "Encounter", &e1);
        assert_eq!(enc["status"], "onleave", "{}", b.name);
        assert_eq!(enc["location"][0]["status"], "active");
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Occupied);
        refused(
            adt::admit_at(svc, a, &admission("m1", "a1"), T1),
            AdtErrorKind::Conflict,
            "Cedar Ward · Bay A · Bed 1 is occupied",
        );
        refused(
            adt::set_bed_state(
                svc,
                a,
                "a1",
                BedState::Closed,
                Some("Side room refurbishment"),
            ),
            AdtErrorKind::Conflict,
            "has a patient in it",
        );
        // Going on leave twice changes nothing; a finished stay cannot.
        let mut again = get(svc, "Encounter", &e1);
        beds::go_on_leave(&mut again).unwrap();
        assert_eq!(without_meta(again), without_meta(enc.clone()));
        let mut done = enc.clone();
        done["status"] = json!("finished");
        refused(
            beds::go_on_leave(&mut done),
            AdtErrorKind::Conflict,
            "finished",
        );

        // Back: in progress again in the same bed, still occupied.
        for mover in [Mover::Feed(BedMaster::Wardline), Mover::Wardline] {
            svc.transact(a, |tx| {
                let mut enc = tx.get("Encounter", &e1)?.unwrap();
                beds::back_from_leave(tx, &mut enc, mover)?;
                tx.save(enc).map(|_| ())
            })
            .unwrap();
        }
        let back = get(svc, "Encounter", &e1);
        assert_eq!(back["status"], "in-progress");
        assert_eq!(back["location"], enc["location"]);
        assert_eq!(bed_state(svc, "w1", "a1"), BedState::Occupied);
        let mut planned = back.clone();
        planned["status"] = json!("planned");
        let r = svc.transact(a, |tx| {
            beds::back_from_leave(tx, &mut planned, Mover::Wardline).map_err(Into::into)
        });
        assert!(
            r.as_ref()
                .is_err_and(|e| e.to_string().contains("Only a patient on leave")),
            "{r:?}"
        );
    }
}
