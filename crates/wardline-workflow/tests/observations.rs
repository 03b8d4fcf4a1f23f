//! Observations and NEWS2 (issue 20): the score against the Royal College
//! of Physicians 2017 chart (worked examples at every band edge on both
//! SpO₂ scales, and properties over all readings), scoring on arrival on
//! every channel, escalation Tasks, scale 2, the ward form — over a real
//! store: SQLite always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is set.

mod support;

use proptest::prelude::*;
use serde_json::{Value, json};
use support::{Backend, req, rest};
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::clock::ManualClock;
use wardline_auth::rbac::Role;
use wardline_core::{Agent, FhirService, Method, Trusted};
use wardline_workflow::observations::news2::{
    self, Acvpu, Parameter, Response, Scale, Vitals, score,
};
use wardline_workflow::observations::record::{VitalsForm, reading, record_vitals};
use wardline_workflow::observations::scoring::{escalation_of, response_of, scale_of, scores_in};
use wardline_workflow::observations::tasks::{act, open_escalations};
use wardline_workflow::observations::{
    BannerAlert, ObservationsError, banner_alert, scale::set_scale_two, score_id,
};

const T0: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The services with the rules, the hook reading `clock` (what is recent).
fn backends_at(test: &str, clock: &ManualClock) -> Vec<Backend> {
    support::backends(
        &format!("observations_{test}"),
        |svc| {
            wardline_workflow::with_rules(
                svc.with_clock(clock.clock())
                    .with_trust_organization("trust"),
            )
        },
        seed,
    )
}

/// The clock stands two hours after `T0`: every set the tests record
/// between `T0` and then is recent.
fn backends(test: &str) -> Vec<Backend> {
    backends_at(test, &ManualClock::at(ms(T0 + time::Duration::hours(2))))
}

fn op() -> Trusted {
    Trusted::operator("observations-test")
}

fn person(id: &str, position: Option<&str>) -> Trusted {
    Trusted::new(Agent {
        name: id.to_owned(),
        who: Some(format!("Practitioner/{id}")),
        position: position.map(|p| format!("PractitionerRole/{p}")),
        ..Agent::default()
    })
}

/// p1 admitted (e1, ward w1, consultant c1); p2 at home under the community
/// team ct1; p3 at home with no team (their GP practice owns the escalation); a doctor's and a nurse's positions.
fn seed(svc: &FhirService) {
    let role = |id: &str, who: &str, code: &str| {
        json!({"resourceType": "PractitionerRole", "id": id, "active": true,
            "practitioner": {"reference": format!("Practitioner/{who}")},
            "code": [{"coding": [{"system": wardline_auth::directory::ROLE_SYSTEM, "code": code}]}]})
    };
    let rs = vec![
        json!({"resourceType": "Organization", "id": "gp-p3", "name": "Khan's GP practice"}),
        json!({"resourceType": "Organization", "id": "trust", "name": "The trust"}),
        // p4: no ward, team, GP practice or managing organisation.
        json!({"resourceType": "Patient", "id": "p4", "active": true, "name": [{"family": "Okafor"}]}),
        json!({"resourceType": "Patient", "id": "p1", "active": true, "name": [{"family": "Smith"}]}),
        json!({"resourceType": "Patient", "id": "p2", "active": true, "name": [{"family": "Jones"}]}),
        json!({"resourceType": "Patient", "id": "p3", "active": true, "name": [{"family": "Khan"}],
            "generalPractitioner": [{"reference": "Organization/gp-p3"}]}),
        json!({"resourceType": "Practitioner", "id": "c1"}),
        json!({"resourceType": "Practitioner", "id": "doc"}),
        json!({"resourceType": "Practitioner", "id": "nurse"}),
        role("pos-doc", "doc", "doctor"),
        {
            // The nurse works on ward 1 (the escalations it owns are hers to act on).
            let mut r = role("pos-nurse", "nurse", "staff-nurse");
            r["location"] = json!([{"reference": "Location/w1"}]);
            r
        },
        role("pos-hca", "hca", "healthcare-assistant"),
        role("pos-clerk", "clerk", "ward-clerk"),
        json!({"resourceType": "Location", "id": "w1", "name": "Ward 1", "status": "active"}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "location": [{"location": {"reference": "Location/w1"}, "status": "active"}],
            "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
                "individual": {"reference": "Practitioner/c1"}}]}),
        json!({"resourceType": "CareTeam", "id": "ct1", "status": "active", "name": "Community respiratory team",
            "subject": {"reference": "Patient/p2"}}),
    ];
    let a = op();
    let mut tx = svc.begin(&a).unwrap();
    for r in rs {
        tx.save(r).unwrap();
    }
    tx.commit().unwrap();
}

fn form(rr: &str, spo2: &str, o2: &str, sbp: &str, pulse: &str, c: &str, t: &str) -> VitalsForm {
    VitalsForm {
        respiration_rate: rr.into(),
        spo2: spo2.into(),
        oxygen: o2.into(),
        systolic_bp: sbp.into(),
        pulse: pulse.into(),
        consciousness: c.into(),
        temperature: t.into(),
    }
}

fn get(svc: &FhirService, t: &str, id: &str) -> Value {
    support::get(svc, t, id)
}

fn find(svc: &FhirService, q: &str) -> Vec<Value> {
    let (path, query) = q.split_once('?').unwrap();
    let mut r = req(Method::Get, vec![path.to_owned()], None);
    r.query = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let res = svc.handle(r, &op());
    assert_eq!(res.status, 200);
    support::json_of(res.body)["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

fn escalations(svc: &FhirService, patient: &str) -> Vec<Value> {
    find(
        svc,
        &format!(
            "Task?patient={patient}&code={}",
            wardline_workflow::observations::scoring::kinds_query()
        ),
    )
}

// ------------------------------------------------------------ the chart

/// Every band edge of chart 1 (RCP 2017), as (value, expected part).
#[test]
fn worked_examples_at_every_band_edge() {
    for (v, s) in [
        (8.0, 3),
        (9.0, 1),
        (11.0, 1),
        (12.0, 0),
        (20.0, 0),
        (21.0, 2),
        (24.0, 2),
        (25.0, 3),
    ] {
        assert_eq!(news2::respiration_rate(v), s, "RR {v}");
    }
    for (v, s) in [
        (91.0, 3),
        (92.0, 2),
        (93.0, 2),
        (94.0, 1),
        (95.0, 1),
        (96.0, 0),
        (100.0, 0),
    ] {
        assert_eq!(news2::spo2(v, Scale::One, Some(false)), s, "scale 1 {v}");
        // Scale 1 does not depend on oxygen (that is a separate part).
        assert_eq!(
            news2::spo2(v, Scale::One, Some(true)),
            s,
            "scale 1 on O2 {v}"
        );
    }
    for (v, air, o2) in [
        (83.0, 3, 3),
        (84.0, 2, 2),
        (85.0, 2, 2),
        (86.0, 1, 1),
        (87.0, 1, 1),
        (88.0, 0, 0),
        (92.0, 0, 0),
        (93.0, 0, 1),
        (94.0, 0, 1),
        (95.0, 0, 2),
        (96.0, 0, 2),
        (97.0, 0, 3),
        (100.0, 0, 3),
    ] {
        assert_eq!(
            news2::spo2(v, Scale::Two, Some(false)),
            air,
            "scale 2 air {v}"
        );
        assert_eq!(
            news2::spo2(v, Scale::Two, Some(true)),
            o2,
            "scale 2 oxygen {v}"
        );
    }
    assert_eq!(news2::air_or_oxygen(true), 2);
    assert_eq!(news2::air_or_oxygen(false), 0);
    for (v, s) in [
        (90.0, 3),
        (91.0, 2),
        (100.0, 2),
        (101.0, 1),
        (110.0, 1),
        (111.0, 0),
        (219.0, 0),
        (220.0, 3),
    ] {
        assert_eq!(news2::systolic_bp(v), s, "SBP {v}");
    }
    for (v, s) in [
        (40.0, 3),
        (41.0, 1),
        (50.0, 1),
        (51.0, 0),
        (90.0, 0),
        (91.0, 1),
        (110.0, 1),
        (111.0, 2),
        (130.0, 2),
        (131.0, 3),
    ] {
        assert_eq!(news2::pulse(v), s, "pulse {v}");
    }
    assert_eq!(news2::consciousness(Acvpu::Alert), 0);
    for c in [
        Acvpu::Confusion,
        Acvpu::Voice,
        Acvpu::Pain,
        Acvpu::Unresponsive,
    ] {
        assert_eq!(news2::consciousness(c), 3, "{c:?}: new confusion scores 3");
    }
    for (v, s) in [
        (35.0, 3),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.1, 1),
        (39.0, 1),
        (39.1, 2),
    ] {
        assert_eq!(news2::temperature(v), s, "temperature {v}");
    }
    // Chart 2's thresholds.
    assert_eq!(news2::response(4, 2), Response::Low);
    assert_eq!(news2::response(3, 3), Response::UrgentWard);
    assert_eq!(news2::response(5, 1), Response::Urgent);
    assert_eq!(news2::response(6, 3), Response::Urgent);
    assert_eq!(news2::response(7, 1), Response::Emergency);
}

/// A worked set: RR 22 (2), SpO₂ 95 on oxygen (1 + 2), BP 105 (1),
/// pulse 115 (2), alert (0), 38.5 °C (1) = 9, emergency.
#[test]
fn a_worked_set_and_its_response() {
    let v = Vitals {
        respiration_rate: Some(22.0),
        spo2: Some(95.0),
        oxygen: Some(true),
        systolic_bp: Some(105.0),
        pulse: Some(115.0),
        consciousness: Some(Acvpu::Alert),
        temperature: Some(38.5),
    };
    let s = score(&v, Scale::One);
    assert_eq!(
        (s.total, s.complete, s.response),
        (9, true, Response::Emergency)
    );
    // The same set on scale 2: 95 on oxygen scores 2, not 1.
    assert_eq!(score(&v, Scale::Two).total, 10);
}

fn band(lo: i64, hi: i64) -> impl Strategy<Value = f64> {
    (lo..=hi).prop_map(|v| v as f64)
}

proptest! {
    /// Every whole value in each band scores the chart's part.
    #[test]
    fn bands_hold_for_every_value(rr in band(0, 80), sat in band(50, 100), sbp in band(40, 300),
                                  hr in band(20, 300), t10 in 250i64..=450, o2 in any::<bool>()) {
        let exp_rr = if rr <= 8.0 { 3 } else if rr <= 11.0 { 1 } else if rr <= 20.0 { 0 } else if rr <= 24.0 { 2 } else { 3 };
        prop_assert_eq!(news2::respiration_rate(rr), exp_rr);
        let exp1 = if sat <= 91.0 { 3 } else if sat <= 93.0 { 2 } else if sat <= 95.0 { 1 } else { 0 };
        prop_assert_eq!(news2::spo2(sat, Scale::One, Some(o2)), exp1);
        let exp2 = if sat <= 83.0 { 3 } else if sat <= 85.0 { 2 } else if sat <= 87.0 { 1 }
            else if sat <= 92.0 || !o2 { 0 } else if sat <= 94.0 { 1 } else if sat <= 96.0 { 2 } else { 3 };
        prop_assert_eq!(news2::spo2(sat, Scale::Two, Some(o2)), exp2);
        // Below 93 % the two scales agree only where the chart says: scale 2
        // never scores more than scale 1 on air.
        if !o2 { prop_assert!(news2::spo2(sat, Scale::Two, Some(o2)) <= exp1); }
        let exp_bp = if sbp <= 90.0 { 3 } else if sbp <= 100.0 { 2 } else if sbp <= 110.0 { 1 } else if sbp <= 219.0 { 0 } else { 3 };
        prop_assert_eq!(news2::systolic_bp(sbp), exp_bp);
        let exp_hr = if hr <= 40.0 { 3 } else if hr <= 50.0 { 1 } else if hr <= 90.0 { 0 } else if hr <= 110.0 { 1 } else if hr <= 130.0 { 2 } else { 3 };
        prop_assert_eq!(news2::pulse(hr), exp_hr);
        let t = t10 as f64 / 10.0;
        let exp_t = if t10 <= 350 { 3 } else if t10 <= 360 { 1 } else if t10 <= 380 { 0 } else if t10 <= 390 { 1 } else { 2 };
        prop_assert_eq!(news2::temperature(t), exp_t);
    }

    /// The aggregate is the sum of the parts; the response follows chart 2;
    /// a missing parameter never raises the score (so a partial set's
    /// response is never too high).
    #[test]
    fn aggregate_and_response(rr in band(0, 80), sat in band(50, 100), o2 in any::<bool>(),
                              sbp in band(40, 300), hr in band(20, 300), c in 0usize..5,
                              t10 in 250i64..=450, two in any::<bool>(), drop in 0usize..8) {
        let scale = if two { Scale::Two } else { Scale::One };
        let full = Vitals { respiration_rate: Some(rr), spo2: Some(sat), oxygen: Some(o2),
            systolic_bp: Some(sbp), pulse: Some(hr), consciousness: Some(Acvpu::ALL[c]),
            temperature: Some(t10 as f64 / 10.0) };
        let s = score(&full, scale);
        prop_assert!(s.complete);
        let sum: u8 = s.parts.iter().map(|(_, p)| *p).sum();
        prop_assert_eq!(s.total, sum);
        let highest = s.parts.iter().map(|(_, p)| *p).max().unwrap();
        let exp = if sum >= 7 { Response::Emergency } else if sum >= 5 { Response::Urgent }
            else if highest == 3 { Response::UrgentWard } else { Response::Low };
        prop_assert_eq!(s.response, exp);
        let mut part = full;
        match drop {
            0 => part.respiration_rate = None,
            1 => part.spo2 = None,
            2 => part.oxygen = None,
            3 => part.systolic_bp = None,
            4 => part.pulse = None,
            5 => part.consciousness = None,
            6 => part.temperature = None,
            _ => {}
        }
        let p = score(&part, scale);
        prop_assert!(p.total <= s.total);
        prop_assert!(p.response <= s.response || (drop == 2 && scale == Scale::Two));
        prop_assert_eq!(p.complete, drop == 7);
    }
}

// ------------------------------------------------------------ the ward

#[test]
fn a_nurse_records_news2_7_and_an_emergency_task_is_raised() {
    for b in backends("ward") {
        let svc = &b.svc;
        let nurse = person("nurse", Some("pos-nurse"));
        // RR 25 (3), SpO₂ 93 air (2), BP 105 (1), pulse 95 (1), alert, 37 = 7.
        let r = record_vitals(
            svc,
            &nurse,
            "Patient/p1",
            Some("Encounter/e1"),
            &form("25", "93", "air", "105", "95", "A", "37"),
            T0,
        )
        .unwrap();
        assert_eq!(r.news2.total, 7, "{}", b.name);
        let sid = r.score.strip_prefix("Observation/").unwrap();
        let s = get(svc, "Observation", sid);
        assert_eq!(s["valueInteger"], 7);
        assert_eq!(s["status"], "final");
        assert_eq!(s["subject"]["reference"], "Patient/p1");
        assert_eq!(s["derivedFrom"].as_array().unwrap().len(), 7);
        assert_eq!(s["component"].as_array().unwrap().len(), 7);
        for d in s["derivedFrom"].as_array().unwrap() {
            let id = d["reference"]
                .as_str()
                .unwrap()
                .strip_prefix("Observation/")
                .unwrap();
            let o = get(svc, "Observation", id);
            assert_eq!(
                o["subject"]["reference"], "Patient/p1",
                "readings on the same patient"
            );
            assert_eq!(o["encounter"]["reference"], "Encounter/e1");
        }
        let tasks = escalations(svc, "Patient/p1");
        assert_eq!(tasks.len(), 1, "{}", b.name);
        let t = &tasks[0];
        assert_eq!(t["priority"], "stat");
        assert_eq!(t["status"], "requested");
        // The shared Task convention: the ward's team owns it, due in
        // restriction.period.end, the kind in code.coding[0].
        assert_eq!(t["owner"]["reference"], "Location/w1");
        assert_eq!(t["location"]["reference"], "Location/w1");
        assert_eq!(
            t["code"]["coding"][0]["system"],
            "https://fhir.wardline.invalid/CodeSystem/task-kind"
        );
        assert_eq!(t["code"]["coding"][0]["code"], "news2-emergency");
        assert_eq!(t["intent"], "order");
        assert_eq!(t["requester"]["reference"], "Practitioner/nurse");
        // Emergency: due 15 minutes after the set was taken; raised at the
        // clock's now.
        assert_eq!(
            t["restriction"]["period"]["end"],
            "2026-03-02T09:15:00.000Z"
        );
        assert_eq!(t["authoredOn"], "2026-03-02T11:00:00.000Z");
        assert_eq!(t["focus"]["reference"], r.score);
        assert_eq!(
            r.escalation.as_deref(),
            Some(format!("Task/{}", t["id"].as_str().unwrap()).as_str())
        );

        // Another 7 an hour later: linked to the open task, not a second one.
        let later = T0 + time::Duration::hours(1);
        let r2 = record_vitals(
            svc,
            &nurse,
            "Patient/p1",
            Some("Encounter/e1"),
            &form("25", "93", "air", "105", "95", "A", "37"),
            later,
        )
        .unwrap();
        assert_eq!(escalations(svc, "Patient/p1").len(), 1);
        assert_eq!(r2.escalation, r.escalation);

        // The score falls to 0: the open task stays open.
        let r3 = record_vitals(
            svc,
            &nurse,
            "Patient/p1",
            Some("Encounter/e1"),
            &form("16", "97", "air", "120", "70", "A", "37"),
            later + time::Duration::hours(1),
        )
        .unwrap();
        assert_eq!(r3.news2.total, 0);
        assert_eq!(r3.escalation, None);
        let open = open_escalations(svc, &nurse, Some("Patient/p1")).unwrap();
        assert_eq!(open.len(), 1, "a falling score does not close the task");
        assert_eq!(open[0].level, Some(Response::Emergency));
        assert_eq!(open[0].ward.as_deref(), Some("Location/w1"));
        // The banner's alert: the open escalation with the score that raised it.
        let a = banner(svc, "Patient/p1").expect("an open escalation in the banner");
        assert_eq!((a.level, a.score), (Response::Emergency, Some(7)));
        assert_eq!(a.task, format!("Task/{}", open[0].id));
        assert!(
            a.text.starts_with("Open NEWS2 escalation (score 7)"),
            "{}",
            a.text
        );
        assert_eq!(a.due.as_deref(), Some("2026-03-02T09:15:00.000Z"));
        assert_eq!(banner(svc, "Patient/p2"), None);

        // Someone not of the ward (a doctor with no ward) may not act on
        // the ward's task: the shared task rule.
        let id = open[0].id.clone();
        let doc = person("doc", Some("pos-doc"));
        assert!(matches!(
            act(svc, &doc, &id, false, "", later),
            Err(ObservationsError::Forbidden(_))
        ));
        // A nurse of the ward acknowledges, then completes it (with an outcome).
        act(svc, &nurse, &id, false, "", later).unwrap();
        assert!(matches!(
            act(svc, &nurse, &id, false, "", later),
            Err(ObservationsError::Conflict(_))
        ));
        let e = act(svc, &nurse, &id, true, " ", later).unwrap_err();
        assert!(matches!(e, ObservationsError::Field { ref field, .. } if field == "outcome"));
        act(
            svc,
            &nurse,
            &id,
            true,
            "Reviewed by outreach; antibiotics",
            later,
        )
        .unwrap();
        assert_eq!(get(svc, "Task", &id)["status"], "completed");
        assert_eq!(banner(svc, "Patient/p1"), None, "closed: off the banner");
        assert!(
            open_escalations(svc, &nurse, Some("Patient/p1"))
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn a_single_3_and_5_to_6_raise_urgent_tasks() {
    for b in backends("urgent") {
        let svc = &b.svc;
        let nurse = person("nurse", Some("pos-nurse"));
        // New confusion alone: 3 → urgent ward-based response.
        let r = record_vitals(
            svc,
            &nurse,
            "Patient/p1",
            None,
            &form("16", "97", "air", "120", "70", "C", "37"),
            T0,
        )
        .unwrap();
        assert_eq!((r.news2.total, r.news2.response), (3, Response::UrgentWard));
        let t = escalations(svc, "Patient/p1");
        assert_eq!(t.len(), 1, "{}", b.name);
        assert_eq!(t[0]["priority"], "urgent");
        // 5: urgent response, a higher level: a second task.
        let r = record_vitals(
            svc,
            &nurse,
            "Patient/p1",
            None,
            &form("22", "95", "air", "105", "70", "A", "37"),
            T0 + time::Duration::minutes(30),
        )
        .unwrap();
        assert_eq!((r.news2.total, r.news2.response), (4, Response::Low));
        let r = record_vitals(
            svc,
            &nurse,
            "Patient/p1",
            None,
            &form("22", "94", "air", "105", "95", "A", "37"),
            T0 + time::Duration::minutes(40),
        )
        .unwrap();
        assert_eq!((r.news2.total, r.news2.response), (5, Response::Urgent));
        assert_eq!(escalations(svc, "Patient/p1").len(), 2);
    }
}

#[test]
fn the_form_names_the_wrong_field() {
    for b in backends("form") {
        let svc = &b.svc;
        let nurse = person("nurse", Some("pos-nurse"));
        for (f, field) in [
            (
                form("", "97", "air", "120", "70", "A", "37"),
                "respiration_rate",
            ),
            (form("16", "9x", "air", "120", "70", "A", "37"), "spo2"),
            (form("16", "97", "", "120", "70", "A", "37"), "oxygen"),
            (
                form("16", "97", "air", "1200", "70", "A", "37"),
                "systolic_bp",
            ),
            (form("16", "97", "air", "120", "7", "A", "37"), "pulse"),
            (
                form("16", "97", "air", "120", "70", "Q", "37"),
                "consciousness",
            ),
            (
                form("16", "97", "air", "120", "70", "A", "73"),
                "temperature",
            ),
        ] {
            let e = record_vitals(svc, &nurse, "Patient/p1", None, &f, T0).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(
                matches!(e, ObservationsError::Field { field: ref x, .. } if x == field),
                "{e:?}"
            );
        }
        assert!(
            find(svc, "Observation?subject=Patient/p1").is_empty(),
            "nothing half-saved"
        );
    }
}

// ------------------------------------------------------------ scale 2

fn scale_flag(id: &str, status: &str) -> Value {
    json!({"resourceType": "Flag", "id": id, "status": status,
        "code": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/observation",
                             "code": "news2-spo2-scale-2"}]},
        "subject": {"reference": "Patient/p1"}})
}

/// A plain REST `PUT` of `r` by a user in `position` (the RBAC table as the
/// policy applies it); the status.
fn rest_as(svc: &FhirService, position: &str, role: Role, r: Value) -> u16 {
    let mut who = support::as_role(role, position);
    who.agent.position = Some(format!("PractitionerRole/{position}"));
    let path = vec!["Flag".to_owned(), r["id"].as_str().unwrap().to_owned()];
    svc.handle(req(Method::Put, path, Some(r)), &who).status
}

fn scale_rest(svc: &FhirService, position: &str, role: Role, status: &str) -> u16 {
    rest_as(svc, position, role, scale_flag("rest-s2", status))
}

#[test]
fn scale_2_is_set_by_a_clinician_and_changes_the_score() {
    for b in backends("scale") {
        let svc = &b.svc;
        let nurse = person("nurse", Some("pos-nurse"));
        let doc = person("doc", Some("pos-doc"));
        // Not a healthcare assistant: refused by the write rule on the
        // page's path and over plain REST alike.
        let hca = person("hca", Some("pos-hca"));
        let e = set_scale_two(svc, &hca, "Patient/p1", true, T0).unwrap_err();
        assert_eq!(e.status(), 403, "an HCA may not set the scale");
        assert_eq!(
            scale_rest(svc, "pos-hca", Role::HealthcareAssistant, "active"),
            403
        );
        assert_eq!(scale_rest(svc, "pos-clerk", Role::WardClerk, "active"), 403);
        // A registered nurse may, over REST too; and may stop it.
        assert_eq!(
            scale_rest(svc, "pos-nurse", Role::StaffNurse, "active"),
            201
        );
        assert_eq!(
            scale_rest(svc, "pos-hca", Role::HealthcareAssistant, "inactive"),
            403
        );
        assert_eq!(
            scale_rest(svc, "pos-nurse", Role::StaffNurse, "inactive"),
            200
        );
        // Any other Flag is the RBAC table's alone (an HCA records one).
        let mut other = scale_flag("rest-other", "active");
        other["code"] = json!({"text": "Falls risk"});
        assert_eq!(
            rest_as(svc, "pos-hca", Role::HealthcareAssistant, other),
            201
        );
        // 97 % on oxygen: scale 1 → SpO₂ 0 + O₂ 2.
        let f = form("16", "97", "oxygen", "120", "70", "A", "37");
        let r1 = record_vitals(svc, &nurse, "Patient/p1", None, &f, T0).unwrap();
        assert_eq!(r1.news2.total, 2);
        set_scale_two(svc, &doc, "Patient/p1", true, T0).unwrap();
        // On scale 2, ≥97 on oxygen scores 3 + O₂ 2 = 5: urgent.
        let later = T0 + time::Duration::minutes(15);
        let r2 = record_vitals(svc, &nurse, "Patient/p1", None, &f, later).unwrap();
        assert_eq!(
            (r2.news2.total, r2.news2.response),
            (5, Response::Urgent),
            "{}",
            b.name
        );
        let s = get(
            svc,
            "Observation",
            &score_id("Patient/p1", &r2_effective(later)),
        );
        assert_eq!(scale_of(&s), Some(2));
        assert_eq!(response_of(&s), Some(Response::Urgent));
        // The earlier score keeps its scale.
        let s1 = get(
            svc,
            "Observation",
            r1.score.strip_prefix("Observation/").unwrap(),
        );
        assert_eq!(scale_of(&s1), Some(1));
        // Stopped: back to scale 1.
        set_scale_two(svc, &doc, "Patient/p1", false, later).unwrap();
        let r3 = record_vitals(
            svc,
            &nurse,
            "Patient/p1",
            None,
            &f,
            later + time::Duration::minutes(15),
        )
        .unwrap();
        assert_eq!(r3.news2.total, 2);
    }
}

fn banner(svc: &FhirService, patient: &str) -> Option<BannerAlert> {
    let a = op();
    let tx = svc.begin(&a).unwrap();
    banner_alert(&tx, patient).unwrap()
}

fn r2_effective(t: OffsetDateTime) -> String {
    wardline_fhir::datetime::format_instant((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

// ------------------------------------------------------------ remote monitoring

fn device_set(patient: &str, at: &str, v: &Vitals) -> Vec<Value> {
    Parameter::ALL
        .into_iter()
        .filter_map(|p| reading(p, v, patient, at))
        .collect()
}

fn post_bundle(svc: &FhirService, kind: &str, rs: Vec<Value>) -> (u16, Value) {
    let entries: Vec<Value> = rs
        .into_iter()
        .map(|r| json!({"resource": r, "request": {"method": "POST", "url": "Observation"}}))
        .collect();
    rest(
        svc,
        Method::Post,
        &[],
        Some(json!({"resourceType": "Bundle", "type": kind, "entry": entries})),
    )
}

#[test]
fn a_gateway_posts_bundles_and_single_readings_scored_on_arrival() {
    for b in backends("remote") {
        let svc = &b.svc;
        let high = Vitals {
            respiration_rate: Some(26.0),
            spo2: Some(91.0),
            oxygen: Some(false),
            systolic_bp: Some(120.0),
            pulse: Some(80.0),
            consciousness: Some(Acvpu::Alert),
            temperature: Some(37.0),
        };
        let at = "2026-03-02T10:00:00Z";
        let (st, _) = post_bundle(svc, "transaction", device_set("Patient/p2", at, &high));
        assert_eq!(st, 200, "{}", b.name);
        let s = get(svc, "Observation", &score_id("Patient/p2", at));
        assert_eq!(s["valueInteger"], 6);
        assert_eq!(s["derivedFrom"].as_array().unwrap().len(), 7);
        let tasks = escalations(svc, "Patient/p2");
        assert_eq!(tasks.len(), 1, "{tasks:#?}");
        assert_eq!(
            tasks[0]["owner"]["reference"], "CareTeam/ct1",
            "the community team's list"
        );
        assert_eq!(
            escalation_of(&s).as_deref(),
            Some(format!("Task/{}", tasks[0]["id"].as_str().unwrap()).as_str())
        );

        // A batch of two patients' sets at the same moment: each scored on
        // its own patient; p3 has no team: the task goes to their GP practice.
        let mut rs = device_set("Patient/p3", at, &high);
        let low = Vitals {
            respiration_rate: Some(16.0),
            spo2: Some(97.0),
            ..high
        };
        rs.extend(device_set("Patient/p1", at, &low));
        let (st, body) = post_bundle(svc, "batch", rs);
        assert_eq!(st, 200);
        assert!(
            body["entry"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["response"]["status"].as_str().unwrap().starts_with("201"))
        );
        assert_eq!(
            get(svc, "Observation", &score_id("Patient/p3", at))["valueInteger"],
            6
        );
        assert_eq!(
            get(svc, "Observation", &score_id("Patient/p1", at))["valueInteger"],
            0
        );
        let t3 = escalations(svc, "Patient/p3");
        assert_eq!(
            t3.len(),
            1,
            "one task for the set, raised as its readings arrived"
        );
        assert_eq!(t3[0]["businessStatus"]["coding"][0]["code"], "urgent");
        assert_eq!(
            t3[0]["owner"]["reference"], "Organization/gp-p3",
            "no team: the GP practice owns it, never nobody (H-280)"
        );
        assert!(escalations(svc, "Patient/p1").is_empty());
        // p4 has nobody nearer: the trust owns it; the score is kept.
        let (st, _) = post_bundle(svc, "batch", device_set("Patient/p4", at, &high));
        assert_eq!(st, 200);
        assert_eq!(
            get(svc, "Observation", &score_id("Patient/p4", at))["valueInteger"],
            6
        );
        let t4 = escalations(svc, "Patient/p4");
        assert_eq!(t4.len(), 1, "{}", b.name);
        assert_eq!(
            t4[0]["owner"]["reference"], "Organization/trust",
            "nobody nearer: the trust owns it (H-280)"
        );

        // Single readings arriving one by one update the one score of the set.
        let at2 = "2026-03-02T11:00:00Z";
        let mut one = device_set("Patient/p2", at2, &low).into_iter();
        let (st, created) = rest(svc, Method::Post, &["Observation"], one.next());
        assert_eq!(st, 201);
        let partial = get(svc, "Observation", &score_id("Patient/p2", at2));
        assert_eq!(
            partial["status"], "preliminary",
            "an incomplete set is marked"
        );
        for r in one {
            assert_eq!(rest(svc, Method::Post, &["Observation"], Some(r)).0, 201);
        }
        let full = get(svc, "Observation", &score_id("Patient/p2", at2));
        assert_eq!(full["status"], "final");
        assert_eq!(full["derivedFrom"].as_array().unwrap().len(), 7);
        // A reading withdrawn rescored its set.
        let mut c = created.clone();
        c["status"] = json!("entered-in-error");
        let id = c["id"].as_str().unwrap().to_owned();
        assert_eq!(
            rest(svc, Method::Put, &["Observation", &id], Some(c)).0,
            200
        );
        let after = get(svc, "Observation", &score_id("Patient/p2", at2));
        assert_eq!(after["derivedFrom"].as_array().unwrap().len(), 6);
        assert_eq!(after["status"], "preliminary");
        assert_eq!(scores_in_count(svc, "Patient/p2"), 2);
    }
}

fn scores_in_count(svc: &FhirService, patient: &str) -> usize {
    let a = op();
    let tx = svc.begin(&a).unwrap();
    scores_in(&tx, patient).unwrap().len()
}

/// Only recent readings with a full instant are scored: a date-only
/// reading, history older than 24 hours and a reading from the future are
/// stored exactly as sent (201) and never scored nor escalated; the window's
/// edges are inclusive (24 h before, 15 min ahead by the hook's clock).
#[test]
fn only_recent_readings_are_scored_and_history_is_never_escalated() {
    let now = datetime!(2026-03-05 12:00 UTC);
    let clock = ManualClock::at(ms(now));
    for b in backends_at("recent", &clock) {
        clock.set(ms(now));
        let svc = &b.svc;
        let high = Vitals {
            respiration_rate: Some(26.0),
            spo2: Some(85.0),
            oxygen: Some(true),
            systolic_bp: Some(88.0),
            pulse: Some(135.0),
            consciousness: Some(Acvpu::Voice),
            temperature: Some(34.0),
        };
        let at = |t: OffsetDateTime| r2_effective(t);
        let scored = |at: &str| {
            let (st, _) = rest(
                svc,
                Method::Get,
                &["Observation", &score_id("Patient/p2", at)],
                None,
            );
            st == 200
        };
        // A date-only reading (imported data, FHIR examples): stored, unscored.
        let mut dated = reading(Parameter::Spo2, &high, "Patient/p2", "2026-03-05").unwrap();
        let (st, body) = rest(svc, Method::Post, &["Observation"], Some(dated.clone()));
        assert_eq!(st, 201, "{}: {body}", b.name);
        assert_eq!(body["effectiveDateTime"], "2026-03-05", "stored as sent");
        assert!(!scored("2026-03-05"));
        // The same in a transaction Bundle, and as effectivePeriod without a time.
        dated["effectivePeriod"] = json!({"start": "2026-03-04"});
        dated.as_object_mut().unwrap().remove("effectiveDateTime");
        assert_eq!(post_bundle(svc, "transaction", vec![dated]).0, 200);
        // History: a whole set taken 24 h and a minute ago (an import).
        let old = at(now - time::Duration::hours(24) - time::Duration::minutes(1));
        let (st, _) = post_bundle(svc, "transaction", device_set("Patient/p2", &old, &high));
        assert_eq!(st, 200);
        assert!(!scored(&old), "history is not scored");
        // From the future (a device clock 16 minutes fast): not scored.
        let ahead = at(now + time::Duration::minutes(16));
        assert_eq!(
            post_bundle(svc, "transaction", device_set("Patient/p2", &ahead, &high)).0,
            200
        );
        assert!(!scored(&ahead));
        assert!(
            escalations(svc, "Patient/p2").is_empty(),
            "history never escalated"
        );
        // The edges: exactly 24 h before, and 15 minutes ahead: scored.
        let edge = at(now - time::Duration::hours(24));
        assert_eq!(
            post_bundle(svc, "transaction", device_set("Patient/p2", &edge, &high)).0,
            200
        );
        assert!(scored(&edge), "{}", b.name);
        let skew = at(now + time::Duration::minutes(15));
        assert_eq!(
            post_bundle(svc, "batch", device_set("Patient/p2", &skew, &high)).0,
            200
        );
        assert!(scored(&skew));
        assert_eq!(escalations(svc, "Patient/p2").len(), 1);
        // effectivePeriod.start with a time is the set's time.
        let mut p = reading(Parameter::Pulse, &high, "Patient/p3", "x").unwrap();
        p.as_object_mut().unwrap().remove("effectiveDateTime");
        let start = at(now - time::Duration::minutes(5));
        p["effectivePeriod"] = json!({"start": start, "end": at(now)});
        assert_eq!(rest(svc, Method::Post, &["Observation"], Some(p)).0, 201);
        let s = get(svc, "Observation", &score_id("Patient/p3", &start));
        assert_eq!(s["status"], "preliminary");
        assert_eq!(s["valueInteger"], 3);
        // The clock moves on two days: the same kind of write is history now.
        clock.advance(48 * 3_600_000);
        let late = at(now);
        assert_eq!(
            post_bundle(svc, "transaction", device_set("Patient/p1", &late, &high)).0,
            200
        );
        assert!(!scored_for(svc, "Patient/p1", &late));
        assert!(escalations(svc, "Patient/p1").is_empty());
    }
}

fn scored_for(svc: &FhirService, patient: &str, at: &str) -> bool {
    rest(
        svc,
        Method::Get,
        &["Observation", &score_id(patient, at)],
        None,
    )
    .0 == 200
}
