//! Clinical alerts (issue 20) over a real store: SQLite always, PostgreSQL
//! too when `WARDLINE_TEST_PG_URL` is set. Allergies (record, verify,
//! refute, entered in error, no known allergies, and medicines' screening
//! reading them), CP-IS, end-of-life preferences, Mental Health Act
//! detentions (the legal clock on every channel, regrade, renewal, the
//! reminders over a moved clock) and the banner's alerts.

mod support;

use serde_json::{Value, json};
use support::{AsRole, Backend, as_role, put, rest};
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::rbac::Role;
use wardline_core::{FhirService, Method, Trusted};
use wardline_workflow::alerts::allergies::{self, Change, NewAllergy, Substance};
use wardline_workflow::alerts::flags::{self, EndOfLife, NewCpis};
use wardline_workflow::alerts::mha::{self, NewDetention, Section};
use wardline_workflow::alerts::{
    ALERT_SYSTEM, AlertsError, FlagKind, MHA_EXPIRY_TASK, MHA_EXT, TASK_KIND_SYSTEM, banner,
};
use wardline_workflow::medicines::checks::{AlertKind, assess_in};
use wardline_workflow::medicines::{DMD_SYSTEM, formulary};

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("alerts_{test}"),
        wardline_workflow::with_rules,
        seed,
    )
}

fn position(id: &str, role: Role) -> Value {
    json!({"resourceType": "PractitionerRole", "id": id, "active": true,
        "practitioner": {"reference": format!("Practitioner/{id}")},
        "code": [{"coding": [{"system": wardline_auth::directory::ROLE_SYSTEM, "code": role.code()}]}]})
}

fn seed(svc: &FhirService) {
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p1", "active": true, "gender": "female", "birthDate": "2015-06-01",
        "name": [{"use": "official", "family": "Test", "given": ["Amy"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Location", "id": "ward-a", "status": "active", "name": "Ward A"}),
    );
    for (id, role) in [
        ("doc", Role::Doctor),
        ("hca", Role::HealthcareAssistant),
        ("clerk", Role::Receptionist),
    ] {
        put(
            svc,
            json!({"resourceType": "Practitioner", "id": id, "name": [{"family": id}]}),
        );
        put(svc, position(id, role));
    }
    // A dm+d-coded amoxicillin (the demo formulary's, with real codes).
    let mut e = formulary::parse(wardline_demo::FORMULARY)
        .unwrap()
        .into_iter()
        .find(|e| e.name() == "Amoxicillin 500mg capsules")
        .unwrap();
    e.vmp = formulary::Code {
        system: DMD_SYSTEM.into(),
        code: "39732311000001104".into(),
        display: "Amoxicillin 500mg capsules".into(),
    };
    e.id = "med-39732311000001104".into();
    e.vtm = formulary::Code {
        system: DMD_SYSTEM.into(),
        code: "27658006".into(),
        display: "Amoxicillin".into(),
    };
    e.amps.clear();
    put(svc, e.to_medication());
}

/// A person in a position of `role` (the write rule reads the role from it).
fn user(role: Role, id: &str) -> AsRole {
    let mut a = as_role(role, id);
    a.agent.kind = wardline_core::AgentKind::User;
    a.agent.position = Some(format!("PractitionerRole/{id}"));
    a
}

fn doctor() -> AsRole {
    user(Role::Doctor, "doc")
}

fn hca() -> AsRole {
    user(Role::HealthcareAssistant, "hca")
}

const NOW: OffsetDateTime = datetime!(2026-03-02 10:00 UTC);

fn amoxicillin_alerts(svc: &FhirService) -> usize {
    let f = formulary::load(svc).unwrap();
    let candidate = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationReference": {"reference": "Medication/med-39732311000001104", "display": "Amoxicillin 500mg capsules"},
        "subject": {"reference": "Patient/p1"},
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "timeOfDay": ["08:00:00"]}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "capsule"}}]}]});
    let d = doctor();
    let mut tx = svc.begin(&d).unwrap();
    assess_in(&mut tx, &f, "p1", &candidate, NOW)
        .unwrap()
        .iter()
        .filter(|a| a.kind == AlertKind::Allergy)
        .count()
}

fn new_allergy(substance: Substance, confirmed: bool) -> NewAllergy {
    NewAllergy {
        substance,
        kind: "allergy".into(),
        reaction: Some("Urticaria".into()),
        severity: Some("moderate".into()),
        criticality: Some("high".into()),
        confirmed,
    }
}

/// H-272: an allergy screens prescriptions while in force; refuted or
/// entered in error it never does; "no known allergies" never stands
/// beside one in force; only a registered professional or pharmacist
/// confirms or refutes (on REST too).
#[test]
fn allergies_are_recorded_verified_refuted_and_screen_only_while_in_force() {
    for b in backends("allergy") {
        let (svc, n) = (&b.svc, b.name);
        let fm = formulary::load(svc).unwrap();
        // Coded from the formulary when the name is a substance it has.
        let s = Substance::from_input(&fm, "amoxicillin", "");
        assert_eq!(
            s,
            Substance::Coded(DMD_SYSTEM.into(), "27658006".into(), "Amoxicillin".into()),
            "{n}"
        );
        assert_eq!(
            Substance::from_input(&fm, "Elastoplast", ""),
            Substance::Text("Elastoplast".into())
        );
        assert!(matches!(
            Substance::from_input(&fm, "Latex", "111088007"),
            Substance::Coded(..)
        ));

        // An HCA records it unconfirmed, may not confirm it.
        assert_eq!(amoxicillin_alerts(svc), 0, "{n}");
        let err =
            allergies::record(svc, &hca(), "p1", &new_allergy(s.clone(), true), NOW).unwrap_err();
        assert!(matches!(err, AlertsError::Forbidden(_)), "{n}: {err:?}");
        let id = allergies::record(svc, &hca(), "p1", &new_allergy(s, false), NOW).unwrap();
        assert_eq!(
            amoxicillin_alerts(svc),
            1,
            "{n}: an unconfirmed allergy screens"
        );
        let err = allergies::change(svc, &hca(), &id, &Change::Verify, NOW).unwrap_err();
        assert!(matches!(err, AlertsError::Forbidden(_)), "{n}: {err:?}");
        allergies::change(svc, &doctor(), &id, &Change::Verify, NOW).unwrap();
        let a = support::get(svc, "AllergyIntolerance", &id);
        assert_eq!(
            a["verificationStatus"]["coding"][0]["code"], "confirmed",
            "{n}"
        );
        let bn = banner(svc, &doctor(), "p1").unwrap();
        assert_eq!(
            (bn.allergies, bn.worst_criticality.as_deref()),
            (1, Some("high")),
            "{n}"
        );

        // "No known allergies" is refused while it is in force.
        let err = allergies::no_known_allergies(svc, &doctor(), "p1", NOW).unwrap_err();
        assert_eq!(err.status(), 409, "{n}");

        // Refuted: a reason is needed; then it never screens.
        let err =
            allergies::change(svc, &doctor(), &id, &Change::Refute(" ".into()), NOW).unwrap_err();
        assert_eq!(err.field(), Some("reason"), "{n}");
        allergies::change(
            svc,
            &doctor(),
            &id,
            &Change::Refute("Tolerated a full course in 2025".into()),
            NOW,
        )
        .unwrap();
        let a = support::get(svc, "AllergyIntolerance", &id);
        assert_eq!(
            a["verificationStatus"]["coding"][0]["code"], "refuted",
            "{n}"
        );
        assert!(a.get("clinicalStatus").is_none(), "{n}");
        assert_eq!(
            amoxicillin_alerts(svc),
            0,
            "{n}: a refuted allergy never screens"
        );
        assert_eq!(banner(svc, &doctor(), "p1").unwrap().allergies, 0, "{n}");

        // A plain REST write cannot make a refuted allergy read as active.
        let mut bad = a.clone();
        bad["clinicalStatus"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]});
        let (st, body) = rest(svc, Method::Put, &["AllergyIntolerance", &id], Some(bad));
        assert_eq!(st, 422, "{n}: {body}");

        // No known allergies, then ended by a real one recorded.
        let nka = allergies::no_known_allergies(svc, &doctor(), "p1", NOW).unwrap();
        assert!(
            banner(svc, &doctor(), "p1").unwrap().no_known_allergies,
            "{n}"
        );
        assert_eq!(amoxicillin_alerts(svc), 0, "{n}: NKA screens nothing");
        let latex = allergies::record(
            svc,
            &doctor(),
            "p1",
            &new_allergy(Substance::Text("Latex".into()), true),
            NOW,
        )
        .unwrap();
        let bn = banner(svc, &doctor(), "p1").unwrap();
        assert!(!bn.no_known_allergies && bn.allergies == 1, "{n}: {bn:?}");
        assert_eq!(
            support::get(svc, "AllergyIntolerance", &nka)["clinicalStatus"]["coding"][0]["code"],
            "inactive"
        );
        let l = support::get(svc, "AllergyIntolerance", &latex);
        assert_eq!(
            l["extension"][0]["valueBoolean"], true,
            "{n}: free text is marked"
        );
        // Entered in error: gone from the banner, cannot be changed again.
        allergies::change(
            svc,
            &doctor(),
            &latex,
            &Change::EnteredInError(Some("wrong patient".into())),
            NOW,
        )
        .unwrap();
        assert_eq!(banner(svc, &doctor(), "p1").unwrap().allergies, 0, "{n}");
        assert_eq!(
            allergies::change(svc, &doctor(), &latex, &Change::Verify, NOW)
                .unwrap_err()
                .status(),
            409
        );
        // An empty substance names the field.
        let e = allergies::record(
            svc,
            &doctor(),
            "p1",
            &new_allergy(Substance::Text(" ".into()), false),
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("substance"));
    }
}

fn cpis() -> NewCpis {
    NewCpis {
        plan_type: "CPP".into(),
        start: "2026-01-10".into(),
        end: None,
        la_ods: "A1B2C".into(),
        la_name: "Exampleshire County Council".into(),
        la_phone: "01632 960000".into(),
        out_of_hours_phone: Some("01632 960999".into()),
    }
}

/// H-270: the CP-IS flag in its national shape, recorded only by a
/// registered professional (on REST too), shown in the banner until ended.
#[test]
fn cpis_flag_is_recorded_by_professionals_in_its_national_shape() {
    for b in backends("cpis") {
        let (svc, n) = (&b.svc, b.name);
        let mut bad = cpis();
        bad.la_ods = String::new();
        assert_eq!(
            flags::record_cpis(svc, &doctor(), "p1", &bad)
                .unwrap_err()
                .field(),
            Some("la_ods"),
            "{n}"
        );
        bad = cpis();
        bad.plan_type = "XYZ".into();
        assert_eq!(
            flags::record_cpis(svc, &doctor(), "p1", &bad)
                .unwrap_err()
                .field(),
            Some("plan_type")
        );
        bad = cpis();
        bad.end = Some("2025-01-01".into());
        assert_eq!(
            flags::record_cpis(svc, &doctor(), "p1", &bad)
                .unwrap_err()
                .field(),
            Some("end")
        );
        let err = flags::record_cpis(svc, &hca(), "p1", &cpis()).unwrap_err();
        assert!(matches!(err, AlertsError::Forbidden(_)), "{n}: {err:?}");

        let id = flags::record_cpis(svc, &doctor(), "p1", &cpis()).unwrap();
        let f = support::get(svc, "Flag", &id);
        assert_eq!(FlagKind::of(&f), Some(FlagKind::Cpis));
        assert_eq!(f["author"]["identifier"]["value"], "A1B2C", "{n}");
        assert_eq!(f["period"]["start"], "2026-01-10");
        let bn = banner(svc, &doctor(), "p1").unwrap();
        assert_eq!(bn.cpis.len(), 1, "{n}");
        assert_eq!(bn.cpis[0].plan, "Child protection plan");
        assert_eq!(bn.cpis[0].la_phone, "01632 960000");
        // The summary every page reads carries it.
        let ps = wardline_workflow::pmi::summary(svc, &doctor(), "p1")
            .unwrap()
            .unwrap();
        assert_eq!(ps.alerts.unwrap().cpis.len(), 1, "{n}");
        // A clerk (demographics only) is told alerts are hidden, not that there are none.
        let clerk = user(Role::Receptionist, "clerk");
        let hidden = banner(svc, &clerk, "p1").unwrap();
        assert!(
            hidden.flags_hidden && hidden.allergies_hidden && hidden.cpis.is_empty(),
            "{n}: {hidden:?}"
        );

        // REST: without the ODS code refused; by an HCA's position refused.
        let mut shapeless = f.clone();
        shapeless.as_object_mut().unwrap().remove("id");
        shapeless["extension"][0]["extension"] =
            json!([{"url": "planType", "valueCoding": {"code": "LAC"}}]);
        let (st, body) = rest(svc, Method::Post, &["Flag"], Some(shapeless));
        assert_eq!(st, 422, "{n}: {body}");
        let mut ok = f.clone();
        ok.as_object_mut().unwrap().remove("id");
        let h = hca();
        let r = svc.handle(
            support::req(Method::Post, vec!["Flag".into()], Some(ok)),
            &h,
        );
        assert_eq!(r.status, 403, "{n}");

        flags::end(svc, &doctor(), FlagKind::Cpis, &id, false, NOW).unwrap();
        assert!(banner(svc, &doctor(), "p1").unwrap().cpis.is_empty(), "{n}");
        assert_eq!(
            flags::end(svc, &doctor(), FlagKind::Cpis, &id, false, NOW)
                .unwrap_err()
                .status(),
            409
        );
    }
}

/// End-of-life preferences: a DNACPR decision needs its date and who made
/// it; recording again replaces the one Flag.
#[test]
fn end_of_life_preferences_with_dnacpr_and_lpa() {
    for b in backends("eol") {
        let (svc, n) = (&b.svc, b.name);
        let mut e = EndOfLife {
            preferred_place_of_care: Some("Home".into()),
            preferred_place_of_death: Some("Hospice".into()),
            resuscitation: "dnacpr".into(),
            respect: true,
            decision_date: Some("2026-02-20".into()),
            decided_by: None,
            lpa_name: Some("Jane Test".into()),
            lpa_contact: Some("07700 900000".into()),
        };
        assert_eq!(
            flags::record_end_of_life(svc, &doctor(), "p1", &e, NOW)
                .unwrap_err()
                .field(),
            Some("decided_by"),
            "{n}"
        );
        e.decided_by = Some("Dr Patel, consultant".into());
        let id = flags::record_end_of_life(svc, &doctor(), "p1", &e, NOW).unwrap();
        let eol = banner(svc, &doctor(), "p1").unwrap().end_of_life.unwrap();
        assert!(eol.dnacpr && eol.respect && eol.lpa, "{n}");
        e.resuscitation = "for-cpr".into();
        let again = flags::record_end_of_life(svc, &doctor(), "p1", &e, NOW).unwrap();
        assert_eq!(again, id, "{n}: one Flag, a new version");
        assert!(
            !banner(svc, &doctor(), "p1")
                .unwrap()
                .end_of_life
                .unwrap()
                .dnacpr
        );
        assert!(
            flags::record_end_of_life(svc, &hca(), "p1", &e, NOW).is_err(),
            "{n}"
        );
    }
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn reminders(svc: &FhirService, flag: &str) -> Vec<Value> {
    svc.search_as(
        &Trusted::operator("t"),
        "Task",
        &[
            ("focus", format!("Flag/{flag}")),
            ("code", format!("{TASK_KIND_SYSTEM}|{MHA_EXPIRY_TASK}")),
        ],
    )
    .unwrap()
    .resources
}

/// H-271, H-273: section 5(2) from 10:00 expires 10:00 three days later;
/// the reminder is raised 12 hours before (not a minute earlier), once,
/// to the ward, due at the expiry; regrading to section 3 ends the 5(2),
/// cancels its reminder and starts six months "beginning with the day";
/// a REST write with any other expiry is refused.
#[test]
fn mha_clock_reminders_regrade_renew_and_end() {
    for b in backends("mha") {
        let (svc, n) = (&b.svc, b.name);
        let op = Trusted::operator("mha-reminders");
        let d = NewDetention {
            section: Section::S5_2,
            start: NOW,
            responsible_clinician: None,
            ward: Some("Location/ward-a".into()),
        };
        let future = NewDetention {
            start: NOW + time::Duration::hours(1),
            ..d.clone()
        };
        assert_eq!(
            mha::record(svc, &doctor(), "p1", &future, NOW)
                .unwrap_err()
                .field(),
            Some("start"),
            "{n}"
        );
        let nowhere = NewDetention {
            ward: None,
            ..d.clone()
        };
        assert_eq!(
            mha::record(svc, &doctor(), "p1", &nowhere, NOW)
                .unwrap_err()
                .field(),
            Some("ward")
        );
        assert!(matches!(
            mha::record(svc, &hca(), "p1", &d, NOW).unwrap_err(),
            AlertsError::Forbidden(_)
        ));

        let flag = mha::record(svc, &doctor(), "p1", &d, NOW).unwrap();
        let f = support::get(svc, "Flag", &flag);
        let det = mha::Detention::of(&f).unwrap();
        assert_eq!(det.expiry_ms, ms(datetime!(2026-03-05 10:00 UTC)), "{n}");
        assert_eq!(
            mha::record(svc, &doctor(), "p1", &d, NOW)
                .unwrap_err()
                .status(),
            409,
            "{n}: one in force"
        );
        let bn = banner(svc, &doctor(), "p1").unwrap();
        assert_eq!(bn.mha[0].section, "Section 5(2)", "{n}");

        // The clock moves: nothing at 21:59 on day 3, the reminder at 22:00.
        assert!(
            mha::raise_reminders(svc, &op, datetime!(2026-03-04 21:59 UTC))
                .unwrap()
                .is_empty(),
            "{n}"
        );
        let raised = mha::raise_reminders(svc, &op, datetime!(2026-03-04 22:00 UTC)).unwrap();
        assert_eq!(raised.len(), 1, "{n}");
        let t = support::get(svc, "Task", &raised[0]);
        assert_eq!(t["owner"]["reference"], "Location/ward-a", "{n}");
        assert_eq!(
            t["restriction"]["period"]["end"], "2026-03-05T10:00:00Z",
            "{n}"
        );
        assert_eq!(t["for"]["reference"], "Patient/p1");
        assert_eq!(
            (
                t["status"].as_str(),
                t["intent"].as_str(),
                t["priority"].as_str()
            ),
            (Some("requested"), Some("order"), Some("urgent"))
        );
        assert!(
            mha::raise_reminders(svc, &op, datetime!(2026-03-04 23:00 UTC))
                .unwrap()
                .is_empty(),
            "{n}: once"
        );

        // A REST write with another expiry is refused.
        let mut wrong = f.clone();
        for s in wrong["extension"][0]["extension"].as_array_mut().unwrap() {
            if s["url"] == "expiry" {
                s["valueDateTime"] = json!("2026-03-05T12:00:00Z");
            }
        }
        let (st, body) = rest(svc, Method::Put, &["Flag", &flag], Some(wrong));
        assert_eq!(st, 422, "{n}: {body}");
        assert!(
            body.to_string().contains("2026-03-05T10:00:00Z"),
            "{n}: {body}"
        );

        // Regrade 5(2) -> 3 at 12:00 on 4 March: six months beginning with that day.
        let at = datetime!(2026-03-04 12:00 UTC);
        assert!(
            mha::regrade_to(svc, &doctor(), &flag, Section::S136, at, at).is_err(),
            "{n}"
        );
        let s3 = mha::regrade_to(svc, &doctor(), &flag, Section::S3, at, at).unwrap();
        assert_eq!(
            support::get(svc, "Flag", &flag)["status"],
            "inactive",
            "{n}"
        );
        assert!(
            reminders(svc, &flag)
                .iter()
                .all(|t| t["status"] == "cancelled"),
            "{n}"
        );
        let d3 = mha::Detention::of(&support::get(svc, "Flag", &s3)).unwrap();
        // 4 September is in British Summer Time: local midnight is 23:00 UTC the day before.
        assert_eq!(d3.expiry_ms, ms(datetime!(2026-09-03 23:00 UTC)), "{n}");
        assert_eq!(
            support::get(svc, "Flag", &s3)["extension"][0]["url"],
            MHA_EXT
        );
        // Renewal: six more months from the expiry.
        mha::renew(svc, &doctor(), &s3, datetime!(2026-08-01 09:00 UTC)).unwrap();
        let d3 = mha::Detention::of(&support::get(svc, "Flag", &s3)).unwrap();
        assert_eq!(
            (d3.renewals, d3.expiry_ms),
            (1, ms(datetime!(2027-03-04 00:00 UTC))),
            "{n}"
        );
        // The reminder for the renewed expiry, then discharge cancels it.
        let r = mha::raise_reminders(svc, &op, datetime!(2027-03-03 00:00 UTC)).unwrap();
        assert_eq!(r.len(), 1, "{n}");
        mha::end(svc, &doctor(), &s3, false, datetime!(2027-03-03 09:00 UTC)).unwrap();
        assert!(
            reminders(svc, &s3)
                .iter()
                .all(|t| t["status"] == "cancelled"),
            "{n}"
        );
        assert!(banner(svc, &doctor(), "p1").unwrap().mha.is_empty(), "{n}");
        // Tagged so the job finds them.
        assert_eq!(
            support::get(svc, "Flag", &s3)["meta"]["tag"][0]["system"],
            ALERT_SYSTEM
        );
    }
}

/// A lapsed detention still raises its reminder (as `asap`, saying it has
/// expired) when the job first runs after the expiry (H-271).
#[test]
fn a_lapsed_section_is_reminded_as_expired() {
    for b in backends("lapsed") {
        let (svc, n) = (&b.svc, b.name);
        let d = NewDetention {
            section: Section::S136,
            start: NOW,
            responsible_clinician: Some("Practitioner/doc".into()),
            ward: None,
        };
        let flag = mha::record(svc, &doctor(), "p1", &d, NOW).unwrap();
        let r = mha::raise_reminders(
            svc,
            &Trusted::operator("t"),
            datetime!(2026-03-03 11:00 UTC),
        )
        .unwrap();
        assert_eq!(r.len(), 1, "{n}");
        let t = support::get(svc, "Task", &r[0]);
        assert_eq!(t["priority"], "asap", "{n}");
        assert_eq!(t["owner"]["reference"], "Practitioner/doc", "{n}");
        assert!(
            t["description"].as_str().unwrap().contains("has expired"),
            "{n}"
        );
        assert_eq!(t["focus"]["reference"], format!("Flag/{flag}"));
    }
}
