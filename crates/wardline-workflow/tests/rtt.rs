//! The RTT clock over real stores (SQLite always, PostgreSQL too when
//! `WARDLINE_TEST_PG_URL` is set): worked examples written from the
//! national rules' text — *Referral to treatment consultant-led waiting
//! times: rules suite* (Department of Health and Social Care, October
//! 2022; "Rule 1" clock starts, "Rule 3/4" clock stops, "Rule 5" DNAs and
//! nullification, new clocks after active monitoring) and the NHS Data
//! Dictionary's *Referral to Treatment Period Status* and *Discharge After
//! Patient Did Not Attend* — plus property tests of the clock.

mod support;

use proptest::prelude::*;
use serde_json::{Value, json};
use support::{Backend, put};
use time::Date;
use time::macros::date;
use wardline_core::{FhirService, Trusted};
use wardline_workflow::rtt::{
    self, Clock, ClockEffect, Event, NewPathway, Pathway, RttError, Status, weeks_between,
};

fn backends(test: &str) -> Vec<Backend> {
    support::backends(&format!("rtt_{test}"), wardline_workflow::with_rules, seed)
}

fn op() -> Trusted {
    Trusted::operator("rtt-test")
}

fn seed(svc: &FhirService) {
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Smith", "given": ["Ann"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Practitioner", "id": "cons1", "name": [{"family": "Jones", "given": ["Huw"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "ServiceRequest", "id": "ref1", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}}),
    );
}

/// Opens a pathway whose clock starts (10) on `start`, received by referral ref1.
fn open(svc: &FhirService, start: Date) -> String {
    rtt::open(
        svc,
        &op(),
        &NewPathway {
            patient: "p1",
            referral: Some("ref1"),
            specialty: "110",
            consultant: Some("cons1"),
            start,
            status: Status::S10,
            source: "ServiceRequest/ref1",
        },
        start,
    )
    .unwrap()
}

const TODAY: Date = date!(2026 - 12 - 01);

fn record(svc: &FhirService, pw: &str, s: Status, on: Date, source: &str) -> Result<(), RttError> {
    rtt::record(svc, &op(), pw, s, on, source, TODAY)
}

fn pathway(svc: &FhirService, id: &str) -> (Value, Pathway) {
    let v = support::get(svc, "EpisodeOfCare", id);
    let p = Pathway::of(&v).expect("an RTT pathway");
    (v, p)
}

/// Rule 1 (a clock starts when the provider receives the referral), then
/// activity (20) and first definitive treatment (30): the clock stops on
/// the day of the operation; the pathway is `finished` with the period
/// from receipt to treatment and every event kept with its source.
#[test]
fn a_clock_starts_on_receipt_and_stops_at_first_definitive_treatment() {
    for b in backends("treated") {
        let svc = &b.svc;
        let pw = open(svc, date!(2026 - 01 - 05));
        let (v, p) = pathway(svc, &pw);
        assert_eq!(v["status"], "active", "{}", b.name);
        assert_eq!(v["period"]["start"], "2026-01-05");
        assert_eq!(v["patient"]["reference"], "Patient/p1");
        assert_eq!(v["referralRequest"][0]["reference"], "ServiceRequest/ref1");
        assert_eq!(v["careManager"]["reference"], "Practitioner/cons1");
        assert_eq!(p.ppid.len(), 20);
        assert_eq!(p.specialty, "110");
        assert_eq!(p.clock, Clock::Running);
        assert_eq!(p.weeks_waited(date!(2026 - 02 - 01)), Some(3));

        record(svc, &pw, Status::S20, date!(2026 - 02 - 02), "Encounter/e1").unwrap();
        record(svc, &pw, Status::S20, date!(2026 - 03 - 02), "Encounter/e2").unwrap();
        record(
            svc,
            &pw,
            Status::S30,
            date!(2026 - 04 - 27),
            "Procedure/op1",
        )
        .unwrap();
        let (v, p) = pathway(svc, &pw);
        assert_eq!(v["status"], "finished", "{}", b.name);
        assert_eq!(v["period"]["end"], "2026-04-27");
        assert_eq!(p.clock, Clock::Stopped);
        // 112 days: 16 whole weeks, however long after it is read.
        assert_eq!(p.weeks_waited(date!(2026 - 04 - 27)), Some(16));
        assert_eq!(p.weeks_waited(TODAY), Some(16));
        let codes: Vec<&str> = p.events.iter().map(|e| e.status.code()).collect();
        assert_eq!(codes, ["10", "20", "20", "30"]);
        assert_eq!(p.events[3].source, "Procedure/op1");

        // After treatment: 90 is recorded, the clock does not move; a
        // stopped clock cannot continue or stop again.
        record(svc, &pw, Status::S90, date!(2026 - 05 - 11), "Encounter/e3").unwrap();
        for s in [Status::S20, Status::S30, Status::S34] {
            let e = record(svc, &pw, s, date!(2026 - 05 - 12), "Encounter/e4").unwrap_err();
            assert_eq!(e.status(), 422, "{} {}", b.name, s.code());
        }
        assert_eq!(pathway(svc, &pw).1.stop, Some(date!(2026 - 04 - 27)));
        // A new clock for the same condition with 10 is refused; 11 needs
        // active monitoring first.
        for s in [Status::S10, Status::S11] {
            let e = record(svc, &pw, s, date!(2026 - 05 - 12), "ServiceRequest/ref1").unwrap_err();
            assert!(matches!(e, RttError::Clock(_)), "{e:?}");
        }
    }
}

/// The 18- and 52-week edges: weeks waited are whole weeks from the clock
/// start, so day 125 is 17 weeks (within 18) and day 126 is 18 (over);
/// day 363 is 51 weeks and day 364 is 52 (a 52-week breach).
#[test]
fn weeks_waited_at_the_18_and_52_week_edges() {
    for b in backends("edges") {
        let start = date!(2026 - 01 - 05);
        let pw = open(&b.svc, start);
        let (_, p) = pathway(&b.svc, &pw);
        let day = |n: i64| start + time::Duration::days(n);
        assert_eq!(p.weeks_waited(day(125)), Some(17), "{}", b.name);
        assert_eq!(p.weeks_waited(day(126)), Some(18));
        assert_eq!(p.weeks_waited(day(363)), Some(51));
        assert_eq!(p.weeks_waited(day(364)), Some(52));
    }
}

/// Rule 5 / Data Dictionary "Discharge After Patient Did Not Attend": a DNA
/// of the first appointment after the referral nullifies the clock (33:
/// not counted as waiting nor as a completed wait); when the patient
/// rebooks, a new clock starts (10) on the date of rebooking.
#[test]
fn a_first_appointment_dna_nullifies_the_clock_and_rebooking_starts_a_new_one() {
    for b in backends("dna") {
        let svc = &b.svc;
        let pw = open(svc, date!(2026 - 03 - 02));
        record(
            svc,
            &pw,
            Status::S20,
            date!(2026 - 03 - 03),
            "Appointment/a1",
        )
        .unwrap();
        record(
            svc,
            &pw,
            Status::S33,
            date!(2026 - 03 - 16),
            "Appointment/a1",
        )
        .unwrap();
        let (v, p) = pathway(svc, &pw);
        assert_eq!(v["status"], "cancelled", "{}", b.name);
        assert_eq!(p.clock, Clock::Nullified);
        assert_eq!(p.weeks_waited(TODAY), None);
        // Nothing continues a nullified clock.
        let e = record(
            svc,
            &pw,
            Status::S20,
            date!(2026 - 03 - 17),
            "Appointment/a2",
        )
        .unwrap_err();
        assert_eq!(e.status(), 422);
        record(
            svc,
            &pw,
            Status::S10,
            date!(2026 - 03 - 18),
            "Appointment/a2",
        )
        .unwrap();
        let (v, p) = pathway(svc, &pw);
        assert_eq!(v["status"], "active");
        assert_eq!(v["period"]["start"], "2026-03-18");
        assert!(v["period"].get("end").is_none());
        assert_eq!(v["statusHistory"][0]["status"], "cancelled");
        assert_eq!(v["statusHistory"][0]["period"]["start"], "2026-03-02");
        assert_eq!(p.weeks_waited(date!(2026 - 04 - 01)), Some(2));
    }
}

/// A DNA of a later appointment (after the patient attended) does not stop
/// the clock: 33 is refused and the clock runs on.
#[test]
fn a_later_dna_does_not_stop_the_clock() {
    for b in backends("dna_later") {
        let svc = &b.svc;
        let pw = open(svc, date!(2026 - 03 - 02));
        record(svc, &pw, Status::S20, date!(2026 - 03 - 16), "Encounter/e1").unwrap();
        let e = record(
            svc,
            &pw,
            Status::S33,
            date!(2026 - 04 - 13),
            "Appointment/a2",
        )
        .unwrap_err();
        assert!(matches!(e, RttError::Clock(_)), "{} {e:?}", b.name);
        assert!(e.message().contains("first appointment"));
        assert_eq!(pathway(svc, &pw).1.clock, Clock::Running);
    }
}

/// Active monitoring stops the clock (32 clinician, 31 patient); activity
/// during it is 91; when the clinician decides to treat, a new clock
/// starts (11) and the weeks count from then.
#[test]
fn active_monitoring_stops_the_clock_and_its_end_starts_a_new_one() {
    for b in backends("monitoring") {
        let svc = &b.svc;
        let pw = open(svc, date!(2026 - 01 - 05));
        // A running clock is not "during active monitoring".
        let e = record(svc, &pw, Status::S91, date!(2026 - 01 - 06), "Encounter/e0").unwrap_err();
        assert!(matches!(e, RttError::Clock(_)), "{} {e:?}", b.name);
        record(svc, &pw, Status::S32, date!(2026 - 02 - 02), "Encounter/e1").unwrap();
        assert_eq!(pathway(svc, &pw).1.weeks_waited(TODAY), Some(4));
        record(svc, &pw, Status::S91, date!(2026 - 03 - 02), "Encounter/e2").unwrap();
        record(svc, &pw, Status::S11, date!(2026 - 06 - 01), "Encounter/e3").unwrap();
        let (v, p) = pathway(svc, &pw);
        assert_eq!(v["status"], "active");
        assert_eq!(p.start, date!(2026 - 06 - 01));
        assert_eq!(p.weeks_waited(date!(2026 - 06 - 29)), Some(4));
        assert_eq!(v["statusHistory"][0]["period"]["end"], "2026-02-02");
        // A new clock starts only once it has stopped.
        let e = record(
            svc,
            &pw,
            Status::S12,
            date!(2026 - 06 - 02),
            "ServiceRequest/ref1",
        )
        .unwrap_err();
        assert!(matches!(e, RttError::Clock(_)));
    }
}

/// 21 (transfer to another provider) and 20 continue the clock; the
/// decisions 34, 35 and 36 stop it; a consultant's referral for a new
/// condition after a stop starts a new clock (12).
#[test]
fn continue_stop_and_new_condition() {
    for b in backends("new_condition") {
        let svc = &b.svc;
        let pw = open(svc, date!(2026 - 01 - 05));
        record(
            svc,
            &pw,
            Status::S21,
            date!(2026 - 01 - 20),
            "ServiceRequest/ref1",
        )
        .unwrap();
        assert_eq!(pathway(svc, &pw).1.clock, Clock::Running, "{}", b.name);
        record(svc, &pw, Status::S34, date!(2026 - 02 - 16), "Encounter/e1").unwrap();
        assert_eq!(pathway(svc, &pw).1.clock, Clock::Stopped);
        record(
            svc,
            &pw,
            Status::S12,
            date!(2026 - 03 - 02),
            "ServiceRequest/ref1",
        )
        .unwrap();
        let p = pathway(svc, &pw).1;
        assert_eq!((p.clock, p.start), (Clock::Running, date!(2026 - 03 - 02)));
        record(svc, &pw, Status::S36, date!(2026 - 03 - 09), "Patient/p1").unwrap();
        assert_eq!(pathway(svc, &pw).1.stop, Some(date!(2026 - 03 - 09)));
    }
}

/// Bad input is refused naming the field; nothing is written.
#[test]
fn bad_events_are_refused_naming_the_field() {
    for b in backends("refused") {
        let svc = &b.svc;
        let pw = open(svc, date!(2026 - 01 - 05));
        record(svc, &pw, Status::S20, date!(2026 - 02 - 02), "Encounter/e1").unwrap();
        // Before the last event.
        let e = record(svc, &pw, Status::S20, date!(2026 - 01 - 30), "Encounter/e2").unwrap_err();
        assert_eq!((e.status(), e.field()), (400, Some("date")), "{}", b.name);
        // In the future.
        let e = record(svc, &pw, Status::S30, date!(2026 - 12 - 02), "Procedure/x").unwrap_err();
        assert_eq!(e.field(), Some("date"));
        // Not a reference.
        let e = record(svc, &pw, Status::S20, date!(2026 - 02 - 03), "e1").unwrap_err();
        assert_eq!(e.field(), Some("source"));
        let fe: wardline_fhir::FhirError = e.into();
        assert_eq!(fe.status, 400);
        assert_eq!(fe.issues[0].expression, ["source"]);
        // No such pathway.
        let e = record(
            svc,
            "nope",
            Status::S20,
            date!(2026 - 02 - 03),
            "Encounter/e1",
        )
        .unwrap_err();
        assert_eq!(e.status(), 404);
        assert_eq!(pathway(svc, &pw).1.events.len(), 2);

        let bad = |status, specialty, patient| {
            rtt::open(
                svc,
                &op(),
                &NewPathway {
                    patient,
                    referral: None,
                    specialty,
                    consultant: None,
                    start: date!(2026 - 01 - 05),
                    status,
                    source: "ServiceRequest/ref1",
                },
                TODAY,
            )
            .unwrap_err()
        };
        assert_eq!(bad(Status::S20, "110", "p1").field(), Some("status"));
        assert_eq!(bad(Status::S10, "ortho", "p1").field(), Some("specialty"));
        assert_eq!(bad(Status::S10, "110", "nobody").status(), 404);
    }
}

// ---------------------------------------------------------------- properties

fn fresh(start: Date) -> Pathway {
    Pathway {
        id: "x".into(),
        ppid: "X".into(),
        patient: "p".into(),
        referral: None,
        specialty: "100".into(),
        consultant: None,
        clock: Clock::Running,
        start,
        stop: None,
        events: vec![Event {
            status: Status::S10,
            date: start,
            source: "ServiceRequest/r".into(),
        }],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Over any sequence of events (accepted or refused as the rules say):
    /// weeks waited never go down as today moves on; a stopped clock's
    /// weeks never move; a running clock has no stop; a refused event
    /// changes nothing.
    #[test]
    fn the_clock_over_any_sequence(steps in proptest::collection::vec((0usize..17, 0i64..60), 1..30), later in 0i64..400) {
        let start = date!(2026 - 01 - 05);
        let mut p = fresh(start);
        let mut day = start;
        for (i, gap) in steps {
            day += time::Duration::days(gap);
            let s = Status::ALL[i];
            match p.after(s, day) {
                Ok(next) => {
                    if s.effect() == ClockEffect::Stop {
                        prop_assert!(next.clock != Clock::Running);
                        prop_assert_eq!(next.stop, Some(day));
                    }
                    if p.clock != Clock::Running && s.effect() != ClockEffect::Start {
                        prop_assert_eq!(next.stop, p.stop);
                        prop_assert_eq!(next.start, p.start);
                    }
                    p = next;
                }
                Err(e) => prop_assert!(e.status() == 422 || e.status() == 400),
            }
            prop_assert_eq!(p.clock == Clock::Running, p.stop.is_none());
            prop_assert!(p.start <= day);
        }
        let t1 = day + time::Duration::days(later);
        let t2 = t1 + time::Duration::days(later);
        match (p.weeks_waited(t1), p.weeks_waited(t2)) {
            (Some(a), Some(b)) => {
                prop_assert!(a <= b);
                if p.clock == Clock::Stopped { prop_assert_eq!(a, b); }
            }
            (None, None) => prop_assert_eq!(p.clock, Clock::Nullified),
            _ => prop_assert!(false, "weeks waited appeared or vanished"),
        }
    }

    #[test]
    fn weeks_between_is_whole_weeks(a in 0i64..2000, b in 0i64..2000) {
        let s = date!(2024 - 01 - 01);
        let (x, y) = (s + time::Duration::days(a), s + time::Duration::days(b));
        let w = weeks_between(x, y);
        prop_assert!(w >= 0);
        if b >= a { prop_assert!(w * 7 <= b - a && b - a < (w + 1) * 7); } else { prop_assert_eq!(w, 0); }
    }
}
