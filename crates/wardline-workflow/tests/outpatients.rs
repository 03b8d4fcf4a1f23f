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

/// Tuesday 1 December 2026, 09:00; the clinics run on Mondays (the first
/// on 7 December).
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

// ------------------------------------------------ booking from the waiting list

use wardline_workflow::outpatients::attendance::{self, Outcome};
use wardline_workflow::outpatients::booking::{self, Answer, CancelledBy};
use wardline_workflow::outpatients::list::clinic_list;
use wardline_workflow::rtt::{self, NewPathway, Pathway, Status};
use wardline_workflow::waiting::{self, List, NewEntry, Priority, State};

/// Patient `p{n}` referred on 20 November: a pathway (RTT 10) and an entry
/// on `list`; returns (entry, pathway).
fn waiting_patient(svc: &FhirService, n: u32, list: List) -> (String, String) {
    let patient = format!("p{n}");
    let pw = rtt::open(
        svc,
        &op(),
        &NewPathway {
            patient: &patient,
            referral: None,
            specialty: "100",
            consultant: Some("c1"),
            start: date!(2026 - 11 - 20),
            status: Status::S10,
            source: &format!("Patient/{patient}"),
        },
        date!(2026 - 12 - 01),
    )
    .unwrap();
    let entry = waiting::add(
        svc,
        &op(),
        &NewEntry {
            patient: &patient,
            list,
            pathway: Some(&pw),
            specialty: "100",
            consultant: Some("c1"),
            procedure: None,
            priority: Priority::Routine,
            decided: date!(2026 - 11 - 20),
            note: None,
        },
    )
    .unwrap();
    (entry, pw)
}

fn state(svc: &FhirService, entry: &str) -> State {
    waiting::state_of(&get(svc, "ServiceRequest", entry))
}

fn events(svc: &FhirService, pw: &str) -> Vec<&'static str> {
    Pathway::of(&get(svc, "EpisodeOfCare", pw))
        .unwrap()
        .events
        .iter()
        .map(|e| e.status.code())
        .collect()
}

#[test]
fn sixteen_bookers_of_one_slot_through_the_service_exactly_one_wins() {
    for b in stores() {
        let svc = &b.svc;
        let (_, slots) = clinic(svc, Kind::New);
        let entries: Vec<String> = (1..=16)
            .map(|n| waiting_patient(svc, n, List::OutpatientNew).0)
            .collect();
        let barrier = Barrier::new(16);
        let results: Vec<Result<String, OutpatientsError>> = std::thread::scope(|s| {
            let hs: Vec<_> = entries
                .iter()
                .map(|e| {
                    let (barrier, slot) = (&barrier, &slots[0]);
                    s.spawn(move || {
                        barrier.wait();
                        booking::book(svc, &op(), e, slot, NOW)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "{}: {results:?}", b.name);
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(r.status(), 409, "{}: {r:?}", b.name);
        }
        assert_eq!(get(svc, "Slot", &slots[0])["status"], "busy", "{}", b.name);
        let booked: Vec<&String> = entries
            .iter()
            .filter(|e| state(svc, e) == State::Booked)
            .collect();
        assert_eq!(
            booked.len(),
            1,
            "{}: one entry booked, fifteen waiting",
            b.name
        );
        let a = get(svc, "Appointment", won[0]);
        assert_eq!(
            a["basedOn"][0]["reference"],
            format!("ServiceRequest/{}", booked[0])
        );
        assert_eq!(a["status"], "booked");
        assert_eq!(a["start"], "2026-12-07T09:00:00Z");
    }
}

#[test]
fn booking_takes_the_right_kind_cancelling_keeps_the_patient_on_the_list_rebooking_keeps_the_entry()
{
    for b in stores() {
        let svc = &b.svc;
        let (_, new_slots) = clinic(svc, Kind::New);
        let (entry, _) = waiting_patient(svc, 1, List::OutpatientNew);
        let (fu_entry, _) = waiting_patient(svc, 2, List::OutpatientFollowUp);
        // A follow-up patient is not booked into a new-patient slot.
        let e = booking::book(svc, &op(), &fu_entry, &new_slots[0], NOW).unwrap_err();
        assert_eq!(e.field(), Some("slot"), "{}: {e:?}", b.name);
        // The free slots offered for an entry are its kind's.
        let free = booking::free_slots(svc, &op(), &entry, NOW, 50).unwrap();
        assert_eq!(free.len(), 12, "{}", b.name);
        assert!(
            booking::free_slots(svc, &op(), &fu_entry, NOW, 50)
                .unwrap()
                .is_empty()
        );

        let a1 = booking::book(svc, &op(), &entry, &new_slots[0], NOW).unwrap();
        assert_eq!(state(svc, &entry), State::Booked);
        // Booked twice: refused.
        let e = booking::book(svc, &op(), &entry, &new_slots[1], NOW).unwrap_err();
        assert_eq!(e.status(), 409, "{}: {e:?}", b.name);

        // Rebooked by the patient: the old one cancelled with the reason, the entry kept.
        let a2 = booking::rebook(
            svc,
            &op(),
            &a1,
            &new_slots[1],
            CancelledBy::Patient,
            "Holiday",
            NOW,
        )
        .unwrap();
        let old = get(svc, "Appointment", &a1);
        assert_eq!(old["status"], "cancelled", "{}", b.name);
        assert_eq!(old["cancelationReason"]["text"], "Holiday");
        assert_eq!(
            get(svc, "Slot", &new_slots[0])["status"],
            "free",
            "{}",
            b.name
        );
        assert_eq!(
            get(svc, "Slot", &new_slots[1])["status"],
            "busy",
            "{}",
            b.name
        );
        let sr = get(svc, "ServiceRequest", &entry);
        assert_eq!(waiting::booked(&sr), Some(a2.as_str()), "{}", b.name);

        // Cancelled by the hospital: the slot freed, the patient back to waiting.
        let e = booking::cancel(svc, &op(), &a2, CancelledBy::Hospital, "  ", NOW).unwrap_err();
        assert_eq!(e.field(), Some("reason"));
        booking::cancel(
            svc,
            &op(),
            &a2,
            CancelledBy::Hospital,
            "Consultant on leave",
            NOW,
        )
        .unwrap();
        assert_eq!(state(svc, &entry), State::Waiting, "{}", b.name);
        assert_eq!(
            get(svc, "Slot", &new_slots[1])["status"],
            "free",
            "{}",
            b.name
        );
        let (waiting_now, _) = booking::waiting_to_book(svc, &op()).unwrap();
        assert!(
            waiting_now.iter().any(|w| w.entry.id == entry),
            "{}",
            b.name
        );
    }
}

/// H-223: an appointment cancelled outside the booking pages — a plain
/// REST `PUT`, or an HL7 SIU^S15 applied as one — gives the patient's entry
/// back to the list (waiting to be booked), as the booking page's cancel
/// does; an entry booked elsewhere since is left alone.
#[test]
fn an_appointment_cancelled_over_rest_puts_the_entry_back_to_waiting() {
    for b in stores() {
        let svc = &b.svc;
        let (_, slots) = clinic(svc, Kind::New);
        let (entry, _) = waiting_patient(svc, 1, List::OutpatientNew);
        let a1 = booking::book(svc, &op(), &entry, &slots[0], NOW).unwrap();
        assert_eq!(state(svc, &entry), State::Booked, "{}", b.name);

        let mut cancelled = get(svc, "Appointment", &a1);
        cancelled["status"] = json!("cancelled");
        let (st, oo) = rest(svc, Method::Put, &["Appointment", &a1], Some(cancelled));
        assert_eq!(st, 200, "{}: {oo}", b.name);
        assert_eq!(state(svc, &entry), State::Waiting, "{}", b.name);
        assert_eq!(get(svc, "Slot", &slots[0])["status"], "free", "{}", b.name);
        assert!(
            booking::waiting_to_book(svc, &op())
                .unwrap()
                .0
                .iter()
                .any(|w| w.entry.id == entry),
            "{}: back on the list to book",
            b.name
        );

        // Booked again, then the old (already cancelled) appointment is
        // written again as entered in error: the new booking stands.
        let a2 = booking::book(svc, &op(), &entry, &slots[1], NOW).unwrap();
        let mut old = get(svc, "Appointment", &a1);
        old["status"] = json!("entered-in-error");
        let (st, oo) = rest(svc, Method::Put, &["Appointment", &a1], Some(old));
        assert_eq!(st, 200, "{}: {oo}", b.name);
        let sr = get(svc, "ServiceRequest", &entry);
        assert_eq!(waiting::booked(&sr), Some(a2.as_str()), "{}", b.name);
    }
}

#[test]
fn arrival_and_the_outcome_move_the_list_and_the_pathway() {
    for b in stores() {
        let svc = &b.svc;
        let (s, slots) = clinic(svc, Kind::New);
        let (e1, pw1) = waiting_patient(svc, 1, List::OutpatientNew);
        let (e2, pw2) = waiting_patient(svc, 2, List::OutpatientNew);
        let (e3, pw3) = waiting_patient(svc, 3, List::OutpatientNew);
        let a1 = booking::book(svc, &op(), &e1, &slots[0], NOW).unwrap();
        let a2 = booking::book(svc, &op(), &e2, &slots[1], NOW).unwrap();
        let a3 = booking::book(svc, &op(), &e3, &slots[2], NOW).unwrap();
        let clinic_day = datetime!(2026-12-07 09:05 UTC);

        // No outcome before arrival.
        let e = attendance::outcome(
            svc,
            &op(),
            &a1,
            &Outcome::Discharged { treated: None },
            clinic_day,
        )
        .unwrap_err();
        assert_eq!(e.status(), 409, "{}", b.name);
        let enc = attendance::arrive(svc, &op(), &a1, clinic_day).unwrap();
        let encounter = get(svc, "Encounter", &enc);
        assert_eq!(encounter["class"]["code"], "AMB");
        assert_eq!(encounter["status"], "in-progress");
        assert_eq!(
            encounter["appointment"][0]["reference"],
            format!("Appointment/{a1}")
        );
        assert_eq!(get(svc, "Appointment", &a1)["status"], "arrived");

        // Added to the admitted list: the entry closed, a day-case entry, RTT 20.
        let r = attendance::outcome(
            svc,
            &op(),
            &a1,
            &Outcome::Admitted {
                day_case: true,
                procedure: ("80146002".into(), "Appendicectomy".into()),
                priority: Priority::P2,
            },
            clinic_day,
        )
        .unwrap();
        assert_eq!(state(svc, &e1), State::Completed, "{}", b.name);
        let admitted = get(svc, "ServiceRequest", r.new_entry.as_ref().unwrap());
        assert_eq!(waiting::list_of(&admitted), Some(List::DayCase));
        assert_eq!(waiting::priority_of(&admitted), Some(Priority::P2));
        assert_eq!(waiting::pathway_of(&admitted), Some(pw1.as_str()));
        assert_eq!(events(svc, &pw1), ["10", "20"], "{}", b.name);
        assert_eq!(get(svc, "Appointment", &a1)["status"], "fulfilled");
        assert_eq!(get(svc, "Encounter", &enc)["status"], "finished");

        // Seen and discharged: by default a decision not to treat (34).
        attendance::arrive(svc, &op(), &a2, clinic_day).unwrap();
        attendance::outcome(
            svc,
            &op(),
            &a2,
            &Outcome::Discharged { treated: None },
            clinic_day,
        )
        .unwrap();
        assert_eq!(events(svc, &pw2), ["10", "34"], "{}", b.name);
        assert_eq!(state(svc, &e2), State::Completed);

        // Follow-up: a new follow-up entry on the same pathway, due by a date.
        attendance::arrive(svc, &op(), &a3, clinic_day).unwrap();
        let e = attendance::outcome(
            svc,
            &op(),
            &a3,
            &Outcome::FollowUp {
                due: date!(2026 - 11 - 01),
            },
            clinic_day,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("due"), "{}", b.name);
        let r = attendance::outcome(
            svc,
            &op(),
            &a3,
            &Outcome::FollowUp {
                due: date!(2027 - 03 - 01),
            },
            clinic_day,
        )
        .unwrap();
        let fu = get(svc, "ServiceRequest", r.new_entry.as_ref().unwrap());
        assert_eq!(waiting::list_of(&fu), Some(List::OutpatientFollowUp));
        assert_eq!(waiting::state_of(&fu), State::Waiting);
        assert_eq!(events(svc, &pw3), ["10", "20"], "{}", b.name);

        // The clinic list for the day.
        let l = clinic_list(svc, &op(), &s, date!(2026 - 12 - 07)).unwrap();
        assert_eq!(l.rows.len(), 3, "{}", b.name);
        assert_eq!(l.rows[0].patient.as_deref(), Some("Test Patient1"));
        assert_eq!(l.rows[0].status.as_deref(), Some("fulfilled"));
        assert_eq!(l.rows[0].arrived.as_deref(), Some("2026-12-07T09:05:00Z"));
        assert!(
            l.rows[0].outcome.as_deref().unwrap().contains("day-case"),
            "{:?}",
            l.rows[0]
        );
        assert_eq!(l.rows[2].kind, Some(Kind::New));
    }
}

#[test]
fn a_first_appointment_dna_discharges_to_the_gp_unless_overridden() {
    for b in stores() {
        let svc = &b.svc;
        let (_, slots) = clinic(svc, Kind::New);
        let (_, fu_slots) = clinic(svc, Kind::FollowUp);
        let (e1, pw1) = waiting_patient(svc, 1, List::OutpatientNew);
        let (e2, pw2) = waiting_patient(svc, 2, List::OutpatientNew);
        let (e3, _) = waiting_patient(svc, 3, List::OutpatientFollowUp);
        let a1 = booking::book(svc, &op(), &e1, &slots[0], NOW).unwrap();
        let a2 = booking::book(svc, &op(), &e2, &slots[1], NOW).unwrap();
        let a3 = booking::book(svc, &op(), &e3, &fu_slots[0], NOW).unwrap();
        // Not before the appointment is due.
        let e = attendance::did_not_attend(svc, &op(), &a1, None, NOW).unwrap_err();
        assert_eq!(e.status(), 409, "{}", b.name);
        let after = datetime!(2026-12-07 11:00 UTC);

        let d = attendance::did_not_attend(svc, &op(), &a1, None, after).unwrap();
        assert!(d.discharged, "{}", b.name);
        assert_eq!(get(svc, "Appointment", &a1)["status"], "noshow");
        assert_eq!(state(svc, &e1), State::Completed, "{}", b.name);
        assert_eq!(events(svc, &pw1), ["10", "33"], "{}", b.name);
        let letter = get(svc, "Composition", d.letter.as_ref().unwrap());
        assert_eq!(letter["status"], "preliminary");
        assert_eq!(
            letter["encounter"]["reference"],
            format!("Encounter/{}", d.encounter.as_ref().unwrap())
        );
        let text = letter.to_string();
        assert!(text.contains("did not attend"), "{}: {text}", b.name);

        // A clinician overrides the policy: the patient goes back to waiting.
        let d =
            attendance::did_not_attend(svc, &op(), &a2, Some("Safeguarding concern: keep"), after)
                .unwrap();
        assert!(!d.discharged && d.letter.is_none(), "{}", b.name);
        assert_eq!(state(svc, &e2), State::Waiting, "{}", b.name);
        assert_eq!(events(svc, &pw2), ["10"], "{}", b.name);

        // A follow-up DNA: back on the follow-up list.
        let d = attendance::did_not_attend(svc, &op(), &a3, None, after).unwrap();
        assert!(!d.discharged, "{}", b.name);
        assert_eq!(state(svc, &e3), State::Waiting, "{}", b.name);
    }
}

#[test]
fn declining_two_reasonable_offers_raises_a_clinical_review() {
    for b in stores() {
        let svc = &b.svc;
        let s = save_template(svc, &op(), &template(Kind::New)).unwrap();
        generate(svc, &op(), &s, date!(2026 - 12 - 01), date!(2027 - 01 - 31)).unwrap();
        let (entry, _) = waiting_patient(svc, 1, List::OutpatientNew);
        let free = booking::free_slots(svc, &op(), &entry, NOW, 100).unwrap();
        let on = |d: &str| -> String {
            free.iter()
                .find(|f| f.slot.start.starts_with(d))
                .unwrap()
                .slot
                .id
                .clone()
        };
        // 7 and 14 December: less than three weeks' notice — not reasonable.
        let (o1, ok) = booking::offer(
            svc,
            &op(),
            &entry,
            &[on("2026-12-07"), on("2026-12-14")],
            NOW,
        )
        .unwrap();
        assert!(!ok, "{}", b.name);
        let r = booking::answer(svc, &op(), &o1, &Answer::Declined, NOW).unwrap();
        assert_eq!(r.review_task, None);
        // Two reasonable offers declined: the second raises the review.
        let mut review = None;
        for round in 0..2 {
            let (o, ok) = booking::offer(
                svc,
                &op(),
                &entry,
                &[on("2026-12-28"), on("2027-01-04")],
                NOW,
            )
            .unwrap();
            assert!(ok, "{}", b.name);
            let r = booking::answer(svc, &op(), &o, &Answer::Declined, NOW).unwrap();
            assert_eq!(
                r.review_task.is_some(),
                round == 1,
                "{}: round {round}",
                b.name
            );
            review = r.review_task;
        }
        let task = get(svc, "Task", &review.unwrap());
        assert_eq!(
            task["focus"]["reference"],
            format!("ServiceRequest/{entry}")
        );
        assert_eq!(task["owner"]["reference"], "Practitioner/c1");
        // An accepted offer books the slot chosen.
        let (o, _) = booking::offer(
            svc,
            &op(),
            &entry,
            &[on("2027-01-11"), on("2027-01-18")],
            NOW,
        )
        .unwrap();
        // Newest first, though all four were made at the same instant: the
        // unanswered one heads the list the booking page shows.
        let (shown, declined) = booking::offers(svc, &op(), &entry).unwrap();
        assert_eq!(shown.len(), 4, "{}", b.name);
        assert_eq!(
            (shown[0].id.as_str(), shown[0].answer.as_deref()),
            (o.as_str(), None)
        );
        assert_eq!(declined, 2, "{}", b.name);
        let r = booking::answer(svc, &op(), &o, &Answer::Accepted(on("2027-01-18")), NOW).unwrap();
        let a = get(svc, "Appointment", &r.appointment.unwrap());
        assert!(
            a["start"].as_str().unwrap().starts_with("2027-01-18"),
            "{}",
            b.name
        );
    }
}
