//! The Emergency Department (issue 20): an ambulance arrival, triage,
//! streaming and the tracking board's clocks at their edges (3:29:59 /
//! 3:30:00 amber, 3:59:59 / 4:00:00 the 4-hour breach, 11:59:59 /
//! 12:00:00), the attendance lifecycle on every channel (the service and
//! plain REST writes), referral to a specialty (ServiceRequest + Task in
//! the shared shape), decision to admit through ADT (the patient leaves
//! the board; the clock stops at departure), discharge with its
//! destination, and the ECDS-shaped extract — on SQLite and, with
//! `WARDLINE_TEST_PG_URL`, PostgreSQL.

mod support;

use serde_json::{Value, json};
use support::{Backend, as_role, backends, doctor, get, op, put, rest};
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::rbac::Role;
use wardline_core::{FhirService, Method};
use wardline_workflow::ed::attend::{self, Admit, Arrival, Coding};
use wardline_workflow::ed::board::{self, board};
use wardline_workflow::ed::{Clock, EdError, Stream, TASK_KIND_SYSTEM, WaitingFor};

const KIND: &str = "https://fhir.wardline.invalid/CodeSystem/location-kind";
const AMBULANCE: &str = "1048031000000100";
const T0: OffsetDateTime = datetime!(2026-11-20 08:00:00 UTC);

fn at(h: i64, m: i64, s: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(h * 3600 + m * 60 + s)
}

fn location(id: &str, name: &str, phys: &str, part_of: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "name": name, "status": "active",
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": phys}]}});
    if let Some(p) = part_of {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    l
}

fn seed(svc: &FhirService) {
    put(svc, location("s1", "Watford General", "si", None));
    let mut ed = location("s1-ed", "Emergency Department", "area", Some("s1"));
    ed["type"] = json!([{"coding": [{"system": KIND, "code": "ed"}]}]);
    put(svc, ed);
    for s in Stream::ALL {
        let mut a = location(
            &format!("s1-ed-{}", s.code()),
            s.label(),
            "area",
            Some("s1-ed"),
        );
        a["type"] = json!([{"coding": [{"system": KIND, "code": "ed-area"}]}]);
        a["identifier"] =
            json!([{"system": wardline_workflow::ed::AREA_SYSTEM, "value": s.code()}]);
        put(svc, a);
    }
    put(svc, location("w1", "Ward 1", "wa", Some("s1")));
    put(svc, location("w1-b1", "Bay 1", "ro", Some("w1")));
    put(svc, location("w1-b1-1", "Bed 1", "bd", Some("w1-b1")));
    put(
        svc,
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Mehta", "given": ["Sanjay"], "prefix": ["Dr"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "PractitionerRole", "id": "pr-clerk", "active": true,
            "code": [{"coding": [{"system": wardline_auth::directory::ROLE_SYSTEM, "code": "ward-clerk"}]}]}),
    );
    for (n, nhs) in [(1, "9434765919"), (2, "9434765870"), (3, "9434765838")] {
        put(
            svc,
            json!({"resourceType": "Patient", "id": format!("p{n}"),
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
                "name": [{"family": format!("Patient{n}"), "given": ["Test"]}], "gender": "female", "birthDate": "1960-01-01"}),
        );
    }
}

fn stores() -> Vec<Backend> {
    backends(
        "ed",
        |s| wardline_workflow::with_rules(wardline_workflow::with_operations(s)),
        seed,
    )
}

fn ambulance(svc: &FhirService, patient: &str, arrived: OffsetDateTime) -> String {
    attend::arrive(
        svc,
        &doctor(),
        &Arrival {
            patient_id: patient.into(),
            site: "s1".into(),
            mode: AMBULANCE.into(),
            ambulance_incident: "INC-4471".into(),
            handover: Some(arrived + time::Duration::minutes(12)),
            arrived: Some(arrived),
            complaint: "29857009".into(),
        },
        arrived,
    )
    .unwrap()
}

fn row_clock(svc: &FhirService, id: &str, now: OffsetDateTime) -> Option<Clock> {
    board(svc, &doctor(), "s1", now)
        .unwrap()
        .rows
        .into_iter()
        .find(|r| r.attendance == id)
        .map(|r| r.clock)
}

#[test]
fn an_ambulance_arrival_is_triaged_streamed_and_its_clocks_turn_at_their_edges() {
    for b in stores() {
        let svc = &b.svc;
        let id = ambulance(svc, "p1", T0);
        let enc = get(svc, "Encounter", &id);
        assert_eq!(enc["class"]["code"], "EMER", "{}", b.name);
        assert_eq!(enc["status"], "arrived");
        assert_eq!(enc["period"]["start"], "2026-11-20T08:00:00Z");

        attend::triage(svc, &doctor(), &id, 2, "Cardiac pain", at(0, 10, 0)).unwrap();
        attend::stream(svc, &doctor(), &id, Stream::Majors, at(0, 15, 0)).unwrap();
        attend::see(svc, &doctor(), &id, at(0, 40, 0)).unwrap();
        attend::waiting(svc, &doctor(), &id, &[WaitingFor::Results]).unwrap();

        let bd = board(svc, &doctor(), "s1", at(1, 0, 0)).unwrap();
        assert_eq!(bd.rows.len(), 1, "{}", b.name);
        let r = &bd.rows[0];
        assert_eq!(r.patient, "p1");
        assert_eq!(r.name, "PATIENT1, Test");
        assert_eq!(r.nhs_number.as_deref(), Some("9434765919"));
        assert_eq!(r.place, "Majors");
        assert_eq!(r.triage, Some(2));
        assert_eq!(r.discriminator.as_deref(), Some("Cardiac pain"));
        assert_eq!(r.clinician.as_deref(), Some("Dr Sanjay Mehta"));
        assert_eq!(r.status, "in-progress");
        assert_eq!(r.waiting_for, vec![WaitingFor::Results]);
        assert_eq!(r.in_department_ms, 3_600_000);

        for (now, want) in [
            (at(3, 29, 59), Clock::Within),
            (at(3, 30, 0), Clock::Amber),
            (at(3, 59, 59), Clock::Amber),
            (at(4, 0, 0), Clock::Breached),
            (at(11, 59, 59), Clock::Breached),
            (at(12, 0, 0), Clock::TwelveHours),
        ] {
            assert_eq!(row_clock(svc, &id, now), Some(want), "{} at {now}", b.name);
        }
        let late = board(svc, &doctor(), "s1", at(12, 0, 0)).unwrap();
        assert_eq!((late.amber, late.breached, late.twelve_hours), (1, 1, 1));
    }
}

#[test]
fn the_lifecycle_holds_on_the_service_and_on_plain_rest_writes() {
    for b in stores() {
        let svc = &b.svc;
        let id = ambulance(svc, "p2", T0);
        // One attendance at a time.
        let again = attend::arrive(
            svc,
            &doctor(),
            &Arrival {
                patient_id: "p2".into(),
                site: "s1".into(),
                mode: "1048061000000105".into(),
                ..Arrival::default()
            },
            at(0, 5, 0),
        );
        assert!(
            matches!(again, Err(EdError::Conflict(Some("patient"), _))),
            "{again:?}"
        );
        // An ambulance arrival needs its incident reference.
        let no_ref = attend::arrive(
            svc,
            &doctor(),
            &Arrival {
                patient_id: "p3".into(),
                site: "s1".into(),
                mode: AMBULANCE.into(),
                ..Arrival::default()
            },
            T0,
        );
        assert!(
            matches!(no_ref, Err(EdError::Field("ambulance_incident", _))),
            "{no_ref:?}"
        );
        // A clerk may not triage.
        let mut clerk = as_role(Role::WardClerk, "dr1");
        clerk.agent.position = Some("PractitionerRole/pr-clerk".into());
        let e = attend::triage(svc, &clerk, &id, 3, "Pain", at(0, 5, 0)).unwrap_err();
        assert_eq!(e.status(), 403, "{e:?}");

        attend::triage(svc, &doctor(), &id, 3, "Moderate pain", at(0, 5, 0)).unwrap();
        let enc = get(svc, "Encounter", &id);
        // REST: the triage category cannot be removed (H-263).
        let mut lost = enc.clone();
        lost.as_object_mut().unwrap().remove("priority");
        let (s, oo) = rest(svc, Method::Put, &["Encounter", &id], Some(lost));
        assert_eq!(s, 422, "{} {oo}", b.name);
        assert!(oo.to_string().contains("triage category"), "{oo}");
        // REST: the arrival cannot move later (the clock would hide a breach, H-260).
        let mut later = enc.clone();
        later["period"]["start"] = json!("2026-11-20T09:00:00Z");
        let (s, oo) = rest(svc, Method::Put, &["Encounter", &id], Some(later));
        assert_eq!(s, 422, "{oo}");
        // REST: no going back from triaged to arrived.
        let mut back = enc.clone();
        back["status"] = json!("arrived");
        let (s, _) = rest(svc, Method::Put, &["Encounter", &id], Some(back));
        assert_eq!(s, 422);
        // REST: no triage before arrival.
        let (s, oo) = rest(
            svc,
            Method::Post,
            &["Encounter"],
            Some(json!({"resourceType": "Encounter", "status": "triaged",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
                "subject": {"reference": "Patient/p3"}, "period": {"start": "2026-11-20T08:00:00Z"},
                "priority": {"coding": [{"system": wardline_workflow::ed::TRIAGE_SYSTEM, "code": "2"}]},
                "extension": [{"url": wardline_workflow::ed::ED_EXT, "extension": [
                    {"url": "triage-time", "valueDateTime": "2026-11-20T07:50:00Z"}]}]})),
        );
        assert_eq!(s, 422, "{oo}");
        assert!(oo.to_string().contains("no triage before arrival"), "{oo}");

        // Discharge once; never twice, on either channel.
        let e = attend::discharge(svc, &doctor(), &id, "306706006", at(1, 0, 0)).unwrap_err();
        assert_eq!(
            e.field(),
            Some("destination"),
            "the ward is the decision to admit"
        );
        attend::discharge(svc, &doctor(), &id, "306689006", at(1, 0, 0)).unwrap();
        let e = attend::discharge(svc, &doctor(), &id, "19712007", at(1, 5, 0)).unwrap_err();
        assert_eq!(e.status(), 409, "{e:?}");
        let e = attend::triage(svc, &doctor(), &id, 1, "Late", at(1, 5, 0)).unwrap_err();
        assert_eq!(e.status(), 409, "{e:?}");
        let mut twice = get(svc, "Encounter", &id);
        twice["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] = json!("19712007");
        let (s, oo) = rest(svc, Method::Put, &["Encounter", &id], Some(twice));
        assert_eq!(s, 422, "{oo}");
        assert!(oo.to_string().contains("no discharge twice"), "{oo}");
        // Off the board; the clock stopped at departure.
        assert_eq!(row_clock(svc, &id, at(5, 0, 0)), None);
        let d = board::detail(svc, &doctor(), &id, at(9, 0, 0)).unwrap();
        assert_eq!(d.in_department_ms, 3_600_000);
        // A new attendance is possible after leaving.
        ambulance(svc, "p2", at(2, 0, 0));
        let _ = op();
    }
}

#[test]
fn referral_raises_a_task_and_decision_to_admit_goes_through_adt() {
    for b in stores() {
        let svc = &b.svc;
        let id = ambulance(svc, "p3", T0);
        attend::triage(svc, &doctor(), &id, 2, "Chest pain", at(0, 10, 0)).unwrap();
        attend::stream(svc, &doctor(), &id, Stream::Resus, at(0, 12, 0)).unwrap();
        let r = attend::refer(svc, &doctor(), &id, "320", "Troponin raised", at(1, 0, 0)).unwrap();
        let task = get(svc, "Task", &r.task);
        assert_eq!(task["status"], "requested", "{}", b.name);
        assert_eq!(task["intent"], "order");
        assert_eq!(task["priority"], "urgent");
        assert_eq!(task["code"]["coding"][0]["system"], TASK_KIND_SYSTEM);
        assert_eq!(task["code"]["coding"][0]["code"], "ed-specialty-review");
        assert_eq!(task["for"]["reference"], "Patient/p3");
        assert_eq!(
            task["focus"]["reference"],
            format!("ServiceRequest/{}", r.request)
        );
        assert_eq!(task["owner"]["reference"], format!("CareTeam/{}", r.team));
        assert_eq!(task["restriction"]["period"]["end"], "2026-11-20T10:00:00Z");
        assert_eq!(task["requester"]["reference"], "Practitioner/dr1");
        let team = get(svc, "CareTeam", &r.team);
        assert_eq!(team["name"], "Cardiology team, Watford General");
        // A second referral to the same specialty finds the same team.
        let r2 = attend::refer(svc, &doctor(), &id, "320", "", at(1, 5, 0)).unwrap();
        assert_eq!(r2.team, r.team);
        let row = board(svc, &doctor(), "s1", at(1, 10, 0))
            .unwrap()
            .rows
            .remove(0);
        assert_eq!(row.referrals, vec!["Cardiology", "Cardiology"]);
        assert!(row.waiting_for.contains(&WaitingFor::SpecialtyReview));
        assert_eq!(row.place, "Resus");

        attend::code(
            svc,
            &doctor(),
            &id,
            &Coding {
                diagnosis: "22298006".into(),
                investigations: vec!["29303009".into(), "26604007".into()],
                treatments: vec!["18629005".into()],
                ..Coding::default()
            },
        )
        .unwrap();

        let admission = attend::admit(
            svc,
            &doctor(),
            &id,
            &Admit {
                bed: "w1-b1-1".into(),
                specialty: Some("320".into()),
                ..Admit::default()
            },
            at(3, 59, 59),
        )
        .unwrap();
        let adm = get(svc, "Encounter", &admission);
        assert_eq!(adm["class"]["code"], "IMP", "{}", b.name);
        assert_eq!(adm["status"], "in-progress");
        assert_eq!(adm["period"]["start"], "2026-11-20T11:59:59Z");
        let att = get(svc, "Encounter", &id);
        assert_eq!(att["status"], "finished");
        assert_eq!(att["period"]["end"], "2026-11-20T11:59:59Z");
        assert_eq!(
            att["hospitalization"]["dischargeDisposition"]["coding"][0]["code"],
            "306706006"
        );
        // Admitted: off the board (H-262); 3:59:59 in the department, no breach.
        assert!(
            board(svc, &doctor(), "s1", at(4, 30, 0))
                .unwrap()
                .rows
                .is_empty()
        );
        let d = board::detail(svc, &doctor(), &id, at(8, 0, 0)).unwrap();
        assert_eq!(d.clock, Clock::Amber);
        assert_eq!(
            d.diagnoses,
            vec![("22298006".to_owned(), "Myocardial infarction".to_owned())]
        );
        // Admit only from the department.
        let e = attend::admit(
            svc,
            &doctor(),
            &id,
            &Admit {
                bed: "w1-b1-1".into(),
                ..Admit::default()
            },
            at(4, 0, 0),
        )
        .unwrap_err();
        assert_eq!(e.status(), 409, "{e:?}");

        // The ECDS extract of the day.
        let rows = board::extract(svc, &doctor(), at(-1, 0, 0), at(23, 0, 0)).unwrap();
        assert_eq!(rows.len(), 1, "{}", b.name);
        let x = &rows[0];
        assert_eq!(x.attendance_id, id);
        assert_eq!(x.nhs_number, "9434765838");
        assert_eq!(x.site, "s1");
        assert_eq!(x.arrival_mode, AMBULANCE);
        assert_eq!(x.ambulance_incident, "INC-4471");
        assert_eq!(x.handover, "2026-11-20T08:12:00Z");
        assert_eq!(x.chief_complaint, "29857009");
        assert_eq!(x.acuity, "1064911000000105");
        assert_eq!(x.triage_time, "2026-11-20T08:10:00Z");
        assert_eq!(x.investigations, "29303009;26604007");
        assert_eq!(x.treatments, "18629005");
        assert_eq!(x.diagnoses, "22298006");
        assert_eq!(x.decision_to_admit, "2026-11-20T11:59:59Z");
        assert_eq!(x.departure, "2026-11-20T11:59:59Z");
        assert_eq!(x.discharge_destination, "306706006");
        let csv = board::to_csv(&rows).unwrap();
        assert!(
            csv.starts_with("attendance_id,nhs_number,site,arrival,arrival_mode,"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 2);
        assert!(
            board::extract(svc, &doctor(), at(1, 0, 0), at(23, 0, 0))
                .unwrap()
                .is_empty()
        );
    }
}
