//! Theatres (issue 19): sessions (no surgeon in two theatres at once),
//! lists from the admitted waiting list with estimated durations from the
//! procedure's history, the over-run refused unless accepted, reordering,
//! cancellation back to the list, the on-the-day steps behind the WHO
//! checklist on every channel (the service and a plain REST write), the
//! operation recorded as first definitive treatment (RTT 30 on the day,
//! the entry closed) and utilisation — on SQLite and, with
//! `WARDLINE_TEST_PG_URL`, PostgreSQL.

mod support;

use serde_json::json;
use support::{Backend, backends, get, op, put, rest};
use time::OffsetDateTime;
use time::macros::{date, datetime};
use wardline_core::{FhirService, Method};
use wardline_workflow::rtt::{self, NewPathway, Pathway, Status};
use wardline_workflow::theatres::list::{self, NewSession};
use wardline_workflow::theatres::{ITEMS, LOCATION_KIND_SYSTEM, Part, Step, day, utilisation};
use wardline_workflow::waiting::{self, List, NewEntry, Priority, State};

const SNOMED: &str = "http://snomed.info/sct";
/// Primary hip replacement; past operations took 80, 100 and 90 minutes.
const HIP: &str = "52734007";
/// Appendicectomy: no past operations in the store (the default estimate).
const APPX: &str = "80146002";

fn seed(svc: &FhirService) {
    for (id, family) in [("s1", "Lister"), ("s2", "Paget"), ("an1", "Snow")] {
        put(
            svc,
            json!({"resourceType": "Practitioner", "id": id,
                "name": [{"family": family, "given": ["Joseph"], "prefix": ["Dr"]}]}),
        );
    }
    for (id, name) in [("th1", "Theatre 1"), ("th2", "Theatre 2")] {
        put(
            svc,
            json!({"resourceType": "Location", "id": id, "name": name, "status": "active",
                "type": [{"coding": [{"system": LOCATION_KIND_SYSTEM, "code": "theatre"}]}]}),
        );
    }
    for n in 1..=6 {
        put(
            svc,
            json!({"resourceType": "Patient", "id": format!("p{n}"),
                "name": [{"family": format!("Patient{n}"), "given": ["Test"]}]}),
        );
    }
    for (n, mins) in [(1, 80), (2, 100), (3, 90)] {
        put(
            svc,
            json!({"resourceType": "Procedure", "id": format!("past{n}"), "status": "completed",
                "code": {"coding": [{"system": SNOMED, "code": HIP}]},
                "subject": {"reference": "Patient/p6"},
                "performedPeriod": {"start": "2026-06-01T09:00:00Z",
                    "end": format!("2026-06-01T{:02}:{:02}:00Z", 9 + mins / 60, mins % 60)}}),
        );
    }
}

fn stores() -> Vec<Backend> {
    backends(
        "theatres",
        |s| wardline_workflow::with_rules(wardline_workflow::with_operations(s)),
        seed,
    )
}

/// Patient `p{n}` referred on 1 October, decided for surgery: (entry, pathway).
fn admitted(svc: &FhirService, n: u32, procedure: Option<(&str, &str)>) -> (String, String) {
    let patient = format!("p{n}");
    let pw = rtt::open(
        svc,
        &op(),
        &NewPathway {
            patient: &patient,
            referral: None,
            specialty: "110",
            consultant: Some("s1"),
            start: date!(2026 - 10 - 01),
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
            list: List::Inpatient,
            pathway: Some(&pw),
            specialty: "110",
            consultant: Some("s1"),
            procedure,
            priority: Priority::P3,
            decided: date!(2026 - 11 - 02),
            note: None,
        },
    )
    .unwrap();
    (entry, pw)
}

fn session(theatre: &str, surgeon: &str, start: OffsetDateTime, hours: i64) -> NewSession<'static> {
    NewSession {
        theatre: if theatre == "th1" { "th1" } else { "th2" },
        specialty: "110",
        surgeon: if surgeon == "s1" { "s1" } else { "s2" },
        anaesthetist: None,
        start,
        end: start + time::Duration::hours(hours),
    }
}

const MORNING: OffsetDateTime = datetime!(2026-12-14 08:00 UTC);

#[test]
fn a_surgeon_is_never_in_two_theatres_at_once_and_the_list_is_estimated_from_history() {
    for b in stores() {
        let svc = &b.svc;
        let s1 = list::plan_session(svc, &op(), &session("th1", "s1", MORNING, 4)).unwrap();
        // The same surgeon in Theatre 2, overlapping: refused naming the surgeon.
        let e = list::plan_session(
            svc,
            &op(),
            &session("th2", "s1", MORNING + time::Duration::hours(2), 4),
        )
        .unwrap_err();
        assert_eq!(
            (e.status(), e.field()),
            (422, Some("surgeon")),
            "{}: {e}",
            b.name
        );
        assert!(e.message().contains("Lister"), "{}", e.message());
        // Theatre 1 taken by another surgeon: refused at the start.
        let e = list::plan_session(svc, &op(), &session("th1", "s2", MORNING, 2)).unwrap_err();
        assert_eq!(e.field(), Some("start"), "{}", b.name);
        // Afterwards, the same surgeon in Theatre 2 is fine.
        let s2 = list::plan_session(
            svc,
            &op(),
            &session("th2", "s1", MORNING + time::Duration::hours(5), 3),
        )
        .unwrap();
        assert_ne!(s1, s2);
        // A conflict written past the pages (plain REST) is shown on the list.
        let mut clash = get(svc, "Slot", &s2);
        clash.as_object_mut().unwrap().remove("id");
        clash["start"] = json!("2026-12-14T09:00:00Z");
        let (st, _) = rest(svc, Method::Post, &["Slot"], Some(clash));
        assert_eq!(st, 201);
        let v = list::session(svc, &op(), &s1).unwrap();
        assert_eq!(v.conflicts.len(), 1, "{}: {:?}", b.name, v.conflicts);
        assert!(v.conflicts[0].contains("Theatre 2"));

        // Estimates: the hip from history (median of 80, 90, 100), the
        // unnamed procedure by default.
        let (e1, _) = admitted(svc, 1, Some((HIP, "Primary hip replacement")));
        let (e2, _) = admitted(svc, 2, Some((APPX, "Appendicectomy")));
        let (e3, _) = admitted(svc, 3, Some((HIP, "Primary hip replacement")));
        let c1 = list::add_case(svc, &op(), &s1, &e1, false).unwrap();
        let c2 = list::add_case(svc, &op(), &s1, &e2, false).unwrap();
        let v = list::session(svc, &op(), &s1).unwrap();
        assert_eq!(v.cases.len(), 2);
        assert_eq!(
            (v.cases[0].minutes, v.cases[0].default_estimate),
            (90, false)
        );
        assert_eq!(
            (v.cases[1].minutes, v.cases[1].default_estimate),
            (60, true)
        );
        assert_eq!(v.cases[1].start, "2026-12-14T09:30:00Z");
        assert_eq!(
            waiting::state_of(&get(svc, "ServiceRequest", &e1)),
            State::Booked
        );
        // The entry cannot go on a list twice.
        let e = list::add_case(svc, &op(), &s1, &e1, false).unwrap_err();
        assert_eq!(e.status(), 422, "{}", b.name);

        // 150 + 90 = 240 fits a 4-hour session; a fourth case would over-run.
        let c3 = list::add_case(svc, &op(), &s1, &e3, false).unwrap();
        let (e4, _) = admitted(svc, 4, Some((APPX, "Appendicectomy")));
        let e = list::add_case(svc, &op(), &s1, &e4, false).unwrap_err();
        assert_eq!(
            (e.status(), e.field()),
            (422, Some("accept-overrun")),
            "{}",
            b.name
        );
        assert!(e.message().contains("60 minutes"), "{}", e.message());
        assert_eq!(
            waiting::state_of(&get(svc, "ServiceRequest", &e4)),
            State::Waiting
        );
        let c4 = list::add_case(svc, &op(), &s1, &e4, true).unwrap();
        let v = list::session(svc, &op(), &s1).unwrap();
        assert_eq!(v.overrun_minutes(), 60);

        // Reorder: the third case up, in front of the second.
        list::move_case(svc, &op(), &c3, true).unwrap();
        let v = list::session(svc, &op(), &s1).unwrap();
        let order: Vec<&str> = v.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(order, [c1.as_str(), c3.as_str(), c2.as_str(), c4.as_str()]);
        assert_eq!(v.cases[1].start, "2026-12-14T09:30:00Z");
        assert_eq!(v.cases[2].start, "2026-12-14T11:00:00Z");

        // Cancelled: the patient goes back to waiting, the list closes up.
        let e = list::cancel(svc, &op(), &c4, " ", MORNING).unwrap_err();
        assert_eq!(e.field(), Some("reason"));
        list::cancel(svc, &op(), &c4, "No bed on the ward", MORNING).unwrap();
        assert_eq!(
            waiting::state_of(&get(svc, "ServiceRequest", &e4)),
            State::Waiting
        );
        let v = list::session(svc, &op(), &s1).unwrap();
        assert_eq!(v.overrun_minutes(), 0);
        assert_eq!(v.cases[3].status, "cancelled");
        let offered = svc
            .begin(&op())
            .map(|mut tx| list::waiting_in(&mut tx, "110").unwrap())
            .unwrap();
        assert!(offered.iter().any(|w| w.0 == e4), "{}", b.name);
    }
}

fn all(part: Part) -> Vec<&'static str> {
    ITEMS.iter().filter(|i| i.0 == part).map(|i| i.1).collect()
}

const NURSE: (&str, &str) = ("Practitioner/s2", "Dr Joseph Paget");

#[test]
fn the_who_checklist_blocks_progression_on_every_channel_and_the_operation_stops_the_clock() {
    for b in stores() {
        let svc = &b.svc;
        let s = list::plan_session(svc, &op(), &session("th1", "s1", MORNING, 4)).unwrap();
        let (entry, pw) = admitted(svc, 1, Some((HIP, "Primary hip replacement")));
        let c = list::add_case(svc, &op(), &s, &entry, false).unwrap();
        let t = |m: i64| MORNING + time::Duration::minutes(m);

        // Out of order: the anaesthetic room before being sent for.
        let e = day::step(svc, &op(), &c, Step::AnaestheticRoom, t(5)).unwrap_err();
        assert_eq!(e.status(), 422, "{}: {e}", b.name);
        day::step(svc, &op(), &c, Step::SentFor, t(0)).unwrap();
        day::step(svc, &op(), &c, Step::AnaestheticRoom, t(10)).unwrap();
        // Time out before sign in is complete: refused.
        let e = day::tick(svc, &op(), &c, &all(Part::TimeOut), NURSE, t(12)).unwrap_err();
        assert!(e.message().contains("sign in"), "{}: {e}", b.name);
        day::tick(svc, &op(), &c, &all(Part::SignIn), NURSE, t(12)).unwrap();
        // Knife to skin without time out: refused through the service …
        let e = day::step(svc, &op(), &c, Step::KnifeToSkin, t(30)).unwrap_err();
        assert_eq!(e.status(), 422, "{}", b.name);
        assert!(e.message().contains("time out"), "{}: {e}", b.name);
        // … and through a plain REST update of the appointment.
        let mut a = get(svc, "Appointment", &c);
        let ext = a["extension"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["url"] == wardline_workflow::theatres::CASE_EXT)
            .unwrap();
        ext["extension"]
            .as_array_mut()
            .unwrap()
            .push(json!({"url": "knife-to-skin", "valueDateTime": "2026-12-14T08:30:00Z"}));
        let (st, oo) = rest(svc, Method::Put, &["Appointment", &c], Some(a));
        assert_eq!(st, 422, "{}: {oo}", b.name);
        assert!(oo.to_string().contains("time out"), "{oo}");
        // Time out partly done still blocks; done, the knife goes in.
        let to = all(Part::TimeOut);
        day::tick(svc, &op(), &c, &to[..2], NURSE, t(25)).unwrap();
        assert!(day::step(svc, &op(), &c, Step::KnifeToSkin, t(30)).is_err());
        day::tick(svc, &op(), &c, &to[2..], NURSE, t(26)).unwrap();
        // Times never go backwards.
        let e = day::step(svc, &op(), &c, Step::KnifeToSkin, t(5)).unwrap_err();
        assert_eq!(e.status(), 422);
        day::step(svc, &op(), &c, Step::KnifeToSkin, t(30)).unwrap();
        // A recorded time cannot be removed over REST.
        let mut a = get(svc, "Appointment", &c);
        a.as_object_mut().unwrap().remove("extension");
        let (st, _) = rest(svc, Method::Put, &["Appointment", &c], Some(a));
        assert_eq!(st, 422, "{}", b.name);
        // No operation recorded before closing.
        assert!(day::record_operation(svc, &op(), &c, None, true).is_err());
        day::step(svc, &op(), &c, Step::Closed, t(125)).unwrap();
        // Leaving theatre without sign out: refused.
        let e = day::step(svc, &op(), &c, Step::Recovery, t(130)).unwrap_err();
        assert!(e.message().contains("sign out"), "{}: {e}", b.name);
        day::tick(svc, &op(), &c, &all(Part::SignOut), NURSE, t(128)).unwrap();
        day::step(svc, &op(), &c, Step::Recovery, t(130)).unwrap();

        // The operation: a Procedure, RTT 30 on the day, the entry closed.
        let r = day::record_operation(svc, &op(), &c, None, true).unwrap();
        assert_eq!(
            (r.rtt, r.on.as_str()),
            (Some("30"), "2026-12-14"),
            "{}",
            b.name
        );
        let p = get(svc, "Procedure", &r.procedure);
        assert_eq!(p["code"]["coding"][0]["code"], HIP);
        assert_eq!(p["performedPeriod"]["start"], "2026-12-14T08:30:00Z");
        assert_eq!(p["performedPeriod"]["end"], "2026-12-14T10:05:00Z");
        assert_eq!(p["performer"][0]["actor"]["reference"], "Practitioner/s1");
        let pathway = Pathway::of(&get(svc, "EpisodeOfCare", &pw)).unwrap();
        assert_eq!(pathway.clock, rtt::Clock::Stopped, "{}", b.name);
        assert_eq!(pathway.stop, Some(date!(2026 - 12 - 14)));
        let last = pathway.events.last().unwrap();
        assert_eq!(last.status, Status::S30);
        assert_eq!(
            waiting::state_of(&get(svc, "ServiceRequest", &entry)),
            State::Completed
        );
        // Recorded once only.
        assert!(day::record_operation(svc, &op(), &c, None, true).is_err());
        day::step(svc, &op(), &c, Step::ReturnedToWard, t(160)).unwrap();
        assert_eq!(get(svc, "Appointment", &c)["status"], "fulfilled");
        let d = day::detail(svc, &op(), &c).unwrap();
        assert!(d.checklist.iter().all(|(_, done, _)| *done));
        assert_eq!(d.procedure.as_deref(), Some(r.procedure.as_str()));
        // The estimate learns: this hip (95 minutes) joins the history.
        let got = svc
            .begin(&op())
            .map(|mut tx| list::estimate_in(&mut tx, SNOMED, HIP).unwrap())
            .unwrap();
        assert_eq!(got, Some((93, 4)), "{}", b.name);
    }
}

#[test]
fn utilisation_counts_touch_time_late_starts_early_finishes_and_cancellations() {
    for b in stores() {
        let svc = &b.svc;
        let s = list::plan_session(svc, &op(), &session("th1", "s1", MORNING, 4)).unwrap();
        let (e1, _) = admitted(svc, 1, Some((HIP, "Primary hip replacement")));
        let (e2, _) = admitted(svc, 2, Some((APPX, "Appendicectomy")));
        let c1 = list::add_case(svc, &op(), &s, &e1, false).unwrap();
        let c2 = list::add_case(svc, &op(), &s, &e2, false).unwrap();
        let t = |m: i64| MORNING + time::Duration::minutes(m);
        day::step(svc, &op(), &c1, Step::SentFor, t(0)).unwrap();
        day::step(svc, &op(), &c1, Step::AnaestheticRoom, t(20)).unwrap();
        let items: Vec<&str> = ITEMS.iter().map(|i| i.1).collect();
        day::tick(svc, &op(), &c1, &items[..12], NURSE, t(25)).unwrap();
        day::step(svc, &op(), &c1, Step::KnifeToSkin, t(40)).unwrap();
        day::step(svc, &op(), &c1, Step::Closed, t(136)).unwrap();
        day::tick(svc, &op(), &c1, &items[12..], NURSE, t(137)).unwrap();
        day::step(svc, &op(), &c1, Step::Recovery, t(140)).unwrap();
        list::cancel(svc, &op(), &c2, "Patient unwell on the day", t(150)).unwrap();
        let u =
            utilisation::figures(svc, &op(), date!(2026 - 12 - 14), date!(2026 - 12 - 14)).unwrap();
        assert_eq!(u.sessions.len(), 1, "{}", b.name);
        let f = &u.sessions[0];
        assert_eq!((f.touch_minutes, f.touch_percent), (96, 40));
        assert_eq!(f.late_start_minutes, Some(20));
        assert_eq!(f.early_finish_minutes, Some(100));
        assert_eq!(
            f.cancellations,
            [(
                "Test Patient2".to_owned(),
                "Patient unwell on the day".to_owned()
            )]
        );
        assert_eq!(
            (u.late_starts, u.early_finishes, u.cancellations),
            (1, 1, 1)
        );
        let e = utilisation::figures(svc, &op(), date!(2026 - 12 - 14), date!(2026 - 12 - 01))
            .unwrap_err();
        assert_eq!(e.field(), Some("to"));
    }
}
