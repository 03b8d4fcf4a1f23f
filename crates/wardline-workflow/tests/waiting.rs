//! Referrals in, triage and the waiting lists over real stores (SQLite
//! always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is set): a referral
//! typed in or POSTed over FHIR awaits triage; accepting it opens the RTT
//! pathway on the date received and puts the patient on the outpatient-new
//! list; redirecting keeps the received date; the entry's states (book,
//! unbook, suspend, resume, close, remove with a reason); the validation
//! worklist; who may do what; the PTL's counts.

mod support;

use serde_json::{Value, json};
use support::{Backend, put};
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};
use wardline_auth::rbac::Role;
use wardline_core::{FhirService, Method, Trusted};
use wardline_workflow::referrals::triage::{
    self, Accept, Intake, Redirect, Source, awaiting, received,
};
use wardline_workflow::referrals::{ReferralError, State, TRIAGE_CODE, state_of};
use wardline_workflow::rtt::ptl::{self, Filter};
use wardline_workflow::rtt::{self, Clock, Pathway, Status};
use wardline_workflow::waiting::validation::{self, Problem};
use wardline_workflow::waiting::{
    self, List, NewEntry, Priority, State as Entry, WaitingError, book_in, close_in,
    state_of as entry_state, unbook_in,
};

const NOW: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);
const TODAY: Date = date!(2026 - 12 - 01);

fn backends(test: &str) -> Vec<Backend> {
    support::backends(&format!("wait_{test}"), wardline_workflow::with_rules, seed)
}

fn op() -> Trusted {
    Trusted::operator("waiting-test")
}

fn seed(svc: &FhirService) {
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Smith", "given": ["Ann"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p2", "name": [{"family": "Brown", "given": ["Bob"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Practitioner", "id": "cons1", "name": [{"family": "Jones"}]}),
    );
    put(
        svc,
        json!({"resourceType": "Practitioner", "id": "cons2", "name": [{"family": "Patel"}]}),
    );
    put(
        svc,
        json!({"resourceType": "Organization", "id": "other", "name": "Other Hospital NHS Trust"}),
    );
    for (id, role) in [
        ("pr-cons", "consultant"),
        ("pr1", "doctor"),
        ("pr-clerk", "receptionist"),
    ] {
        put(
            svc,
            json!({"resourceType": "PractitionerRole", "id": id, "active": true,
            "practitioner": {"reference": "Practitioner/cons1"},
            "code": [{"coding": [{"system": wardline_auth::directory::ROLE_SYSTEM, "code": role}]}]}),
        );
    }
}

fn typed_in(
    svc: &FhirService,
    patient: &str,
    received_on: Date,
    consultant: Option<&str>,
) -> String {
    triage::intake(
        svc,
        &op(),
        &Intake {
            patient,
            source: Source::Letter,
            from: "Dr A Green, Riverside Surgery",
            requester: None,
            specialty: "110",
            consultant,
            priority: "routine",
            reason: "Painful left knee for 6 months",
            received: received_on,
            attachments: &[],
        },
        NOW,
    )
    .unwrap()
}

fn accept(svc: &FhirService, id: &str, priority: Priority) -> triage::Accepted {
    triage::accept(
        svc,
        &op(),
        id,
        &Accept {
            priority,
            specialty: "110",
            consultant: Some("cons1"),
            note: None,
        },
        NOW,
    )
    .unwrap()
}

fn read(svc: &FhirService, t: &str, id: &str) -> Value {
    support::get(svc, t, id)
}

fn open_tasks(svc: &FhirService, referral: &str) -> usize {
    let (s, b) = support::rest(svc, Method::Get, &["Task"], None);
    assert_eq!(s, 200);
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            let t = &e["resource"];
            t["focus"]["reference"] == format!("ServiceRequest/{referral}")
                && t["code"]["coding"][0]["code"] == TRIAGE_CODE
                && t["status"] == "requested"
        })
        .count()
}

/// A letter typed in awaits triage with its received date; accepting it
/// urgent opens the pathway with the clock started on the date received
/// (10, the referral its source) and adds an urgent outpatient-new entry on
/// the pathway; the triage Task is closed.
#[test]
fn accepting_a_referral_starts_the_clock_on_the_date_received() {
    for b in backends("accept") {
        let svc = &b.svc;
        let id = typed_in(svc, "p1", date!(2026 - 11 - 02), Some("cons1"));
        let sr = read(svc, "ServiceRequest", &id);
        assert_eq!(state_of(&sr), Some(State::Sent), "{}", b.name);
        assert_eq!(received(&sr), Some(date!(2026 - 11 - 02)));
        assert_eq!(open_tasks(svc, &id), 1);
        let list = awaiting(svc, &op(), Some("cons1"), Some("110")).unwrap();
        assert_eq!(
            list.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            [id.as_str()]
        );
        assert!(
            awaiting(svc, &op(), Some("cons2"), None)
                .unwrap()
                .is_empty()
        );
        assert!(awaiting(svc, &op(), None, Some("120")).unwrap().is_empty());

        let a = accept(svc, &id, Priority::Urgent);
        assert_eq!(
            state_of(&read(svc, "ServiceRequest", &id)),
            Some(State::Accepted)
        );
        assert_eq!(open_tasks(svc, &id), 0);
        let p = Pathway::of(&read(svc, "EpisodeOfCare", &a.pathway)).unwrap();
        assert_eq!((p.clock, p.start), (Clock::Running, date!(2026 - 11 - 02)));
        assert_eq!(p.events[0].status, Status::S10);
        assert_eq!(p.events[0].source, format!("ServiceRequest/{id}"));
        assert_eq!(p.referral.as_deref(), Some(id.as_str()));
        let e = read(svc, "ServiceRequest", &a.entry);
        assert_eq!(waiting::list_of(&e), Some(List::OutpatientNew));
        assert_eq!(waiting::priority_of(&e), Some(Priority::Urgent));
        assert_eq!(e["priority"], "urgent");
        assert_eq!(waiting::pathway_of(&e), Some(a.pathway.as_str()));
        assert_eq!(e["basedOn"][0]["reference"], format!("ServiceRequest/{id}"));
        assert_eq!(entry_state(&e), Entry::Waiting);
        // Triaged once only.
        let again = triage::accept(
            svc,
            &op(),
            &id,
            &Accept {
                priority: Priority::Routine,
                specialty: "110",
                consultant: None,
                note: None,
            },
            NOW,
        );
        assert!(
            matches!(again, Err(ReferralError::Conflict(_))),
            "{again:?}"
        );
        // An admitted priority is not a triage outcome.
        let id2 = typed_in(svc, "p2", date!(2026 - 11 - 20), None);
        let e = triage::accept(
            svc,
            &op(),
            &id2,
            &Accept {
                priority: Priority::P2,
                specialty: "110",
                consultant: None,
                note: None,
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("priority"));
        assert_eq!(
            state_of(&read(svc, "ServiceRequest", &id2)),
            Some(State::Sent)
        );
    }
}

/// Redirecting within the trust keeps the date received (the clock, when
/// the pathway opens, starts then: it continues); to another provider it
/// closes here and the pathway records 21 and leaves the PTL.
#[test]
fn redirecting_keeps_the_clock() {
    for b in backends("redirect") {
        let svc = &b.svc;
        let id = typed_in(svc, "p1", date!(2026 - 10 - 05), Some("cons1"));
        let r = triage::redirect(
            svc,
            &op(),
            &id,
            &Redirect {
                specialty: "120",
                consultant: Some("cons2"),
                provider: None,
                reason: "ENT, not orthopaedics",
            },
            NOW,
        )
        .unwrap();
        assert_eq!(r, None);
        let sr = read(svc, "ServiceRequest", &id);
        assert_eq!(state_of(&sr), Some(State::Sent), "{}", b.name);
        assert_eq!(triage::specialty(&sr), Some("120"));
        assert_eq!(open_tasks(svc, &id), 1);
        assert!(
            awaiting(svc, &op(), Some("cons1"), None)
                .unwrap()
                .is_empty()
        );
        assert_eq!(awaiting(svc, &op(), Some("cons2"), None).unwrap().len(), 1);
        let a = triage::accept(
            svc,
            &op(),
            &id,
            &Accept {
                priority: Priority::Routine,
                specialty: "120",
                consultant: Some("cons2"),
                note: None,
            },
            NOW,
        )
        .unwrap();
        let p = Pathway::of(&read(svc, "EpisodeOfCare", &a.pathway)).unwrap();
        assert_eq!(
            p.start,
            date!(2026 - 10 - 05),
            "the clock continues from receipt"
        );

        let id = typed_in(svc, "p2", date!(2026 - 11 - 02), None);
        let e = triage::redirect(
            svc,
            &op(),
            &id,
            &Redirect {
                specialty: "110",
                consultant: None,
                provider: Some("other"),
                reason: " ",
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("reason"));
        let pw = triage::redirect(
            svc,
            &op(),
            &id,
            &Redirect {
                specialty: "110",
                consultant: None,
                provider: Some("other"),
                reason: "Closer to home",
            },
            NOW,
        )
        .unwrap()
        .unwrap();
        let sr = read(svc, "ServiceRequest", &id);
        assert_eq!(state_of(&sr), Some(State::Rejected));
        let p = Pathway::of(&read(svc, "EpisodeOfCare", &pw)).unwrap();
        assert_eq!(p.last_status(), Some(Status::S21));
        assert_eq!(p.clock, Clock::Running);
        assert!(!ptl::on_ptl(&p));
    }
}

/// Only a consultant triages; booking staff keep the lists; a healthcare
/// assistant does neither.
#[test]
fn who_may_triage_and_keep_the_lists() {
    for b in backends("roles") {
        let svc = &b.svc;
        let id = typed_in(svc, "p1", date!(2026 - 11 - 02), None);
        let mut doctor = support::doctor();
        doctor.agent.position = Some("PractitionerRole/pr1".into());
        let e = triage::accept(
            svc,
            &doctor,
            &id,
            &Accept {
                priority: Priority::Routine,
                specialty: "110",
                consultant: None,
                note: None,
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.status(), 403, "{} {e:?}", b.name);
        let mut cons = support::as_role(Role::Consultant, "cons1");
        cons.agent.position = Some("PractitionerRole/pr-cons".into());
        let a = triage::accept(
            svc,
            &cons,
            &id,
            &Accept {
                priority: Priority::Routine,
                specialty: "110",
                consultant: Some("cons1"),
                note: None,
            },
            NOW,
        )
        .unwrap();

        let clerk = support::as_role(Role::Receptionist, "clerk1");
        waiting::suspend(
            svc,
            &clerk,
            &a.entry,
            "Patient on holiday",
            date!(2026 - 12 - 20),
        )
        .unwrap();
        waiting::resume(svc, &clerk, &a.entry).unwrap();
        let hca = support::as_role(Role::HealthcareAssistant, "hca1");
        let e = waiting::remove(svc, &hca, &a.entry, "no").unwrap_err();
        assert_eq!(e.status(), 403);
        assert_eq!(
            entry_state(&read(svc, "ServiceRequest", &a.entry)),
            Entry::Waiting
        );
    }
}

fn admitted(
    svc: &FhirService,
    patient: &str,
    pathway: Option<&str>,
) -> Result<String, WaitingError> {
    waiting::add(
        svc,
        &op(),
        &NewEntry {
            patient,
            list: List::Inpatient,
            pathway,
            specialty: "110",
            consultant: Some("cons1"),
            procedure: Some(("179344006", "Knee replacement")),
            priority: Priority::P3,
            decided: date!(2026 - 11 - 16),
            note: Some("Left knee"),
        },
    )
}

/// An admitted entry with its intended procedure and P1–P4 priority; the
/// entry's states: booked only when waiting and once; unbooked back to
/// waiting; suspended with a reason and date, resumed; off the list only
/// with a reason; one entry per pathway and list; a deceased patient is
/// refused.
#[test]
fn an_entry_moves_only_as_its_state_allows() {
    for b in backends("states") {
        let svc = &b.svc;
        let id = typed_in(svc, "p1", date!(2026 - 09 - 01), None);
        let a = accept(svc, &id, Priority::Routine);
        let e = admitted(svc, "p1", Some(&a.pathway)).unwrap();
        let sr = read(svc, "ServiceRequest", &e);
        assert_eq!(sr["code"]["coding"][0]["code"], "179344006", "{}", b.name);
        assert_eq!(sr["authoredOn"], "2026-11-16");
        assert_eq!(sr["priority"], "urgent");
        assert_eq!(waiting::priority_of(&sr), Some(Priority::P3));
        // One entry per pathway and list.
        assert!(matches!(
            admitted(svc, "p1", Some(&a.pathway)),
            Err(WaitingError::State(_))
        ));
        // The wrong patient's pathway, a missing procedure, an outpatient priority.
        assert_eq!(
            admitted(svc, "p2", Some(&a.pathway)).unwrap_err().field(),
            Some("pathway")
        );
        let bad = |procedure, priority| {
            waiting::add(
                svc,
                &op(),
                &NewEntry {
                    patient: "p2",
                    list: List::DayCase,
                    pathway: None,
                    specialty: "110",
                    consultant: None,
                    procedure,
                    priority,
                    decided: TODAY,
                    note: None,
                },
            )
            .unwrap_err()
        };
        assert_eq!(bad(None, Priority::P2).field(), Some("procedure"));
        assert_eq!(
            bad(Some(("179344006", "")), Priority::Urgent).field(),
            Some("priority")
        );
        assert_eq!(
            bad(Some(("knee", "")), Priority::P2).field(),
            Some("procedure")
        );

        put(
            svc,
            json!({"resourceType": "Appointment", "id": "ap1", "status": "booked",
            "start": "2026-12-10T09:00:00Z", "end": "2026-12-10T09:30:00Z",
            "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}]}),
        );
        put(
            svc,
            json!({"resourceType": "Appointment", "id": "ap2", "status": "booked",
            "start": "2026-12-10T09:00:00Z", "end": "2026-12-10T09:30:00Z",
            "participant": [{"actor": {"reference": "Patient/p2"}, "status": "accepted"}]}),
        );
        let access = op();
        let run = |f: &dyn Fn(&mut wardline_core::Tx<'_>) -> Result<(), WaitingError>| {
            let mut tx = svc.begin(&access).unwrap();
            let r = f(&mut tx);
            if r.is_ok() {
                tx.commit().unwrap();
            }
            r
        };
        assert_eq!(
            run(&|tx| book_in(tx, &e, "ap2")).unwrap_err().field(),
            Some("appointment")
        );
        assert_eq!(
            run(&|tx| book_in(tx, &e, "nope")).unwrap_err().field(),
            Some("appointment")
        );
        run(&|tx| book_in(tx, &e, "ap1")).unwrap();
        assert_eq!(
            waiting::booked(&read(svc, "ServiceRequest", &e)),
            Some("ap1")
        );
        assert!(matches!(
            run(&|tx| book_in(tx, &e, "ap1")),
            Err(WaitingError::State(_))
        ));
        // A booked entry is not suspended.
        assert!(matches!(
            waiting::suspend(svc, &op(), &e, "ill", TODAY),
            Err(WaitingError::State(_))
        ));
        run(&|tx| unbook_in(tx, &e)).unwrap();
        assert_eq!(
            entry_state(&read(svc, "ServiceRequest", &e)),
            Entry::Waiting
        );
        assert_eq!(
            waiting::suspend(svc, &op(), &e, " ", TODAY)
                .unwrap_err()
                .field(),
            Some("reason")
        );
        waiting::suspend(svc, &op(), &e, "Unfit for surgery", date!(2027 - 01 - 31)).unwrap();
        let sr = read(svc, "ServiceRequest", &e);
        assert_eq!(sr["status"], "on-hold");
        assert!(matches!(
            run(&|tx| book_in(tx, &e, "ap1")),
            Err(WaitingError::State(_))
        ));
        waiting::resume(svc, &op(), &e).unwrap();
        assert_eq!(
            run(&|tx| close_in(tx, &e, "")).unwrap_err().field(),
            Some("reason")
        );
        run(&|tx| close_in(tx, &e, "Operated")).unwrap();
        let sr = read(svc, "ServiceRequest", &e);
        assert_eq!(
            (sr["status"].as_str(), entry_state(&sr)),
            (Some("completed"), Entry::Completed)
        );
        assert!(matches!(
            waiting::remove(svc, &op(), &e, "again"),
            Err(WaitingError::State(_))
        ));

        put(
            svc,
            json!({"resourceType": "Patient", "id": "p3", "deceasedDateTime": "2026-11-01T10:00:00Z"}),
        );
        let e = waiting::add(
            svc,
            &op(),
            &NewEntry {
                patient: "p3",
                list: List::OutpatientFollowUp,
                pathway: None,
                specialty: "110",
                consultant: None,
                procedure: None,
                priority: Priority::Routine,
                decided: TODAY,
                note: None,
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("patient"));
    }
}

/// The validation worklist finds each problem, and validating clears the
/// 12-week one.
#[test]
fn the_validation_worklist() {
    for b in backends("validation") {
        let svc = &b.svc;
        let id = typed_in(svc, "p1", date!(2026 - 06 - 01), None);
        let a = accept(svc, &id, Priority::Routine);
        // No pathway; a booking in the past with no outcome.
        let lone = waiting::add(
            svc,
            &op(),
            &NewEntry {
                patient: "p2",
                list: List::OutpatientFollowUp,
                pathway: None,
                specialty: "110",
                consultant: None,
                procedure: None,
                priority: Priority::Routine,
                decided: date!(2026 - 11 - 30),
                note: None,
            },
        )
        .unwrap();
        put(
            svc,
            json!({"resourceType": "Appointment", "id": "past", "status": "booked",
            "start": "2026-11-20T09:00:00Z", "end": "2026-11-20T09:30:00Z",
            "participant": [{"actor": {"reference": "Patient/p2"}, "status": "accepted"}]}),
        );
        let access = op();
        let mut tx = svc.begin(&access).unwrap();
        book_in(&mut tx, &lone, "past").unwrap();
        tx.commit().unwrap();
        // The accepted entry was decided today: validated recently enough
        // until 12 weeks have passed.
        let later = TODAY + time::Duration::days(validation::VALIDATE_EVERY_DAYS);
        let found = |today| validation::worklist(svc, &op(), today).unwrap();
        let now = found(TODAY);
        let problems = |rows: &[validation::Row], id: &str| {
            rows.iter()
                .find(|r| r.id == id)
                .map(|r| r.problems.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            problems(&now, &lone),
            [Problem::NoPathway, Problem::PastBookingNoOutcome],
            "{}",
            b.name
        );
        assert!(problems(&now, &a.entry).is_empty());
        assert_eq!(problems(&found(later), &a.entry), [Problem::NotValidated]);
        validation::validate(svc, &op(), &a.entry, later).unwrap();
        assert!(problems(&found(later), &a.entry).is_empty());
        // The patient dies.
        put(
            svc,
            json!({"resourceType": "Patient", "id": "p1", "deceasedBoolean": true}),
        );
        assert_eq!(problems(&found(later), &a.entry), [Problem::Deceased]);
    }
}

/// A plain `POST ServiceRequest` of the e-Referral shape (the BaRS
/// ServiceRequest example's category, intent, status and dates, its
/// references pointed at this server's patient) awaits triage.
#[test]
fn a_plain_fhir_referral_awaits_triage() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/nhs-api-examples/bars/specification/examples1.4.0/service_request/PUT-body.json");
    let Ok(text) = std::fs::read_to_string(&example) else {
        eprintln!("SKIPPED: ../shared/testdata/nhs-api-examples/bars is absent");
        return;
    };
    let ex: Value = serde_json::from_str(&text).unwrap();
    for b in backends("plain") {
        let svc = &b.svc;
        let mut sr = json!({"resourceType": "ServiceRequest"});
        for k in [
            "status",
            "intent",
            "category",
            "authoredOn",
            "occurrencePeriod",
        ] {
            sr[k] = ex[k].clone();
        }
        sr["subject"] = json!({"reference": "Patient/p1"});
        sr["requester"] = json!({"display": "Dr A Green, Riverside Surgery"});
        sr["reasonCode"] = json!([{"text": "Knee pain"}]);
        let (s, body) = support::rest(svc, Method::Post, &["ServiceRequest"], Some(sr));
        assert_eq!(s, 201, "{} {body}", b.name);
        let id = body["id"].as_str().unwrap().to_owned();
        let stored = read(svc, "ServiceRequest", &id);
        assert_eq!(state_of(&stored), Some(State::Sent), "{stored}");
        assert!(wardline_workflow::referrals::is_inbound(&stored));
        assert!(received(&stored).is_some());
        assert_eq!(open_tasks(svc, &id), 1);
        let a = accept(svc, &id, Priority::TwoWeekWait);
        let p = Pathway::of(&read(svc, "EpisodeOfCare", &a.pathway)).unwrap();
        assert_eq!(Some(p.start), received(&stored));
    }
}

/// The PTL's counts: bands, 18-week performance, 52-week breaches, by
/// specialty and consultant; a stopped clock leaves it.
#[test]
fn the_ptl_counts() {
    for b in backends("ptl") {
        let svc = &b.svc;
        let mut pathways = Vec::new();
        for (received_on, cons) in [
            (date!(2026 - 11 - 23), "cons1"), // 1 week
            (date!(2026 - 07 - 27), "cons1"), // 18 weeks
            (date!(2025 - 12 - 01), "cons2"), // 52 weeks
            (date!(2026 - 08 - 10), "cons2"), // 16 weeks
        ] {
            let id = typed_in(svc, "p1", received_on, Some(cons));
            let a = triage::accept(
                svc,
                &op(),
                &id,
                &Accept {
                    priority: Priority::Routine,
                    specialty: if cons == "cons1" { "110" } else { "120" },
                    consultant: Some(cons),
                    note: None,
                },
                NOW,
            )
            .unwrap();
            pathways.push(a.pathway);
        }
        let p = ptl::ptl(svc, &op(), TODAY, Filter::default()).unwrap();
        assert_eq!(p.all.total, 4, "{}", b.name);
        assert_eq!(
            (p.all.under_18, p.all.from_18_to_52, p.all.over_52),
            (2, 1, 1)
        );
        assert_eq!(p.all.performance(), 50.0);
        assert_eq!(p.rows[0].weeks, 52);
        assert_eq!(
            p.rows.iter().map(|r| r.weeks).collect::<Vec<_>>(),
            [52, 18, 16, 1]
        );
        let keys: Vec<(&str, usize, usize)> = p
            .by_specialty
            .iter()
            .map(|t| (t.key.as_str(), t.total, t.over_52))
            .collect();
        assert_eq!(keys, [("110", 2, 0), ("120", 2, 1)]);
        let c2 = ptl::ptl(
            svc,
            &op(),
            TODAY,
            Filter {
                consultant: Some("cons2"),
                specialty: None,
            },
        )
        .unwrap();
        assert_eq!(c2.all.total, 2);
        // Treated: the clock stops and the pathway leaves the PTL.
        rtt::record(
            svc,
            &op(),
            &pathways[2],
            Status::S30,
            date!(2026 - 11 - 30),
            "Procedure/x",
            TODAY,
        )
        .unwrap();
        let p = ptl::ptl(svc, &op(), TODAY, Filter::default()).unwrap();
        assert_eq!((p.all.total, p.all.over_52), (3, 0));
        let csv = ptl::csv(&p, |id| (format!("Name {id}"), String::new()));
        assert_eq!(csv.lines().count(), 4);
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .contains(",18,18 to under 26 weeks,10")
        );
        // A caller who may not search pathways is refused.
        let hca = support::as_role(Role::Receptionist, "r1");
        assert!(ptl::ptl(svc, &hca, TODAY, Filter::default()).is_err());
    }
}
