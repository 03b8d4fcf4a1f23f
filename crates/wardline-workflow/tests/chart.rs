//! The chart summary over a real store: SQLite always, PostgreSQL when
//! `WARDLINE_TEST_PG_URL` is set (a fresh schema, dropped afterwards).
//!
//! * only active flags are alerts (H-038);
//! * a list the caller's position does not cover, or whose entries are
//!   withheld from them, is never "none recorded" (H-050) — with the real
//!   policy of `wardline-auth`: a ward clerk, a nurse whose patient was
//!   discharged more than the recent-encounter window ago (the policy's
//!   clock moved), a nurse with the patient on the ward;
//! * problems and medicines, current ones first, ended ones marked, every
//!   entry once (H-051);
//! * observations with their age measured at the injected `now`, the old
//!   ones marked, units as people write them (H-052).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use wardline_auth::directory::{Directory, Position};
use wardline_auth::policy::{Policy, Principal};
use wardline_auth::rbac::Role;
use wardline_core::{Agent, FhirService, ServiceConfig, Trusted};
use wardline_fhir::datetime::parse_range;
use wardline_workflow::chart::{self, ChartSummary};

/// A PostgreSQL schema, dropped when the guard goes.
struct PgSchema {
    url: String,
    schema: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] PgSchema),
}

/// Each backend: SQLite, and PostgreSQL when `WARDLINE_TEST_PG_URL` is set
/// (otherwise it says it skipped).
fn backends(test: &str) -> Vec<(&'static str, Arc<FhirService>, Guard)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = wardline_store_sqlite::SqliteStore::open(&dir.path().join("chart.db")).unwrap();
    let mut out = vec![(
        "sqlite",
        Arc::new(FhirService::new(Arc::new(sqlite), ServiceConfig::default())),
        Guard::Sqlite(dir),
    )];
    if let Some((pg, url, schema)) =
        wardline_store_postgres::testenv::store(&format!("chart_{test}"))
    {
        out.push((
            "postgres",
            Arc::new(FhirService::new(Arc::new(pg), ServiceConfig::default())),
            Guard::Pg(PgSchema { url, schema }),
        ));
    }
    out
}

fn op() -> Trusted {
    Trusted::operator("chart-test")
}

fn save_all(svc: &FhirService, resources: Vec<Value>) {
    svc.transact(&op(), |tx| {
        for r in resources {
            tx.save(r)?;
        }
        Ok(())
    })
    .unwrap();
}

fn ms(s: &str) -> i64 {
    parse_range(s).unwrap().0
}

/// The real access policy of a user in `role` at `locations`.
fn policy(dir: &Arc<Directory>, role: Role, locations: &[&str]) -> Policy {
    let principal = Principal {
        agent: Agent {
            name: format!("{role}-user"),
            who: Some("Practitioner/u1".into()),
            position: Some("PractitionerRole/pos1".into()),
            ..Agent::default()
        },
        scopes: wardline_auth::scopes::ScopeSet::parse("user/*.cruds").unwrap(),
        position: Some(Position {
            id: "pos1".into(),
            practitioner: "u1".into(),
            role,
            organization: "trust".into(),
            locations: locations.iter().map(|l| (*l).to_owned()).collect(),
            active: true,
        }),
        patient: None,
        break_glass: HashMap::new(),
        system: false,
    };
    Policy::new(principal, dir.clone())
}

#[test]
fn only_active_flags_are_alerts() {
    for (name, svc, _guard) in backends("flags") {
        save_all(
            &svc,
            vec![
                json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Flagg"}]}),
                json!({"resourceType": "Flag", "id": "f1", "status": "active",
                    "code": {"text": "Violent behaviour risk"}, "subject": {"reference": "Patient/p1"}}),
                json!({"resourceType": "Flag", "id": "f2", "status": "inactive",
                    "code": {"text": "Old MRSA"}, "subject": {"reference": "Patient/p1"}}),
            ],
        );
        let s = chart::summary(&svc, &op(), "p1", ms("2026-11-20T10:00:00Z")).unwrap();
        let texts: Vec<&str> = s.alerts.entries.iter().map(|a| a.text.as_str()).collect();
        assert_eq!(texts, ["Violent behaviour risk"], "{name}");
        assert!(!s.hides_anything(), "{name}");
    }
}

/// A patient on ward w1 with something in every list: an allergy, an
/// alert, problems, medicines, vital signs, a report and ten encounters
/// (`stay_status` is the current one's status).
fn patient_on_ward(svc: &FhirService, stay_status: &str) {
    let subject = json!({"reference": "Patient/p1"});
    let mut r = vec![
        json!({"resourceType": "Location", "id": "w1", "status": "active", "name": "Ward 1"}),
        json!({"resourceType": "Location", "id": "w1-b1", "status": "active", "name": "Bed 1",
            "partOf": {"reference": "Location/w1"}}),
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Chart"}]}),
        json!({"resourceType": "AllergyIntolerance", "id": "a1", "patient": subject,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "code": {"text": "Penicillin"}, "criticality": "high"}),
        json!({"resourceType": "Flag", "id": "f1", "status": "active", "subject": subject,
            "code": {"text": "Falls risk"}}),
        json!({"resourceType": "Condition", "id": "c-old", "subject": subject,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]},
            "code": {"text": "Fractured wrist"}, "recordedDate": "2026-10-01", "abatementDateTime": "2026-11-01"}),
        json!({"resourceType": "Condition", "id": "c-dm", "subject": subject,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Type 2 diabetes mellitus"}]},
            "onsetDateTime": "2015-03-01", "recordedDate": "2015-03-02"}),
        json!({"resourceType": "Medication", "id": "med-amlo",
            "code": {"coding": [{"system": "https://dmd.nhs.uk", "code": "319283006", "display": "Amlodipine 5mg tablets"}]}}),
        json!({"resourceType": "MedicationRequest", "id": "mr-amlo", "status": "active", "intent": "order",
            "subject": subject, "medicationReference": {"reference": "Medication/med-amlo"},
            "authoredOn": "2025-06-01", "dosageInstruction": [{"text": "5 mg once a day"}]}),
        json!({"resourceType": "MedicationRequest", "id": "mr-fluclox", "status": "stopped", "intent": "order",
            "subject": subject, "medicationCodeableConcept": {"text": "Flucloxacillin 500mg capsules"},
            "authoredOn": "2026-11-10", "dosageInstruction": [{"text": "500 mg four times a day"}]}),
        json!({"resourceType": "MedicationStatement", "id": "ms-para", "status": "active",
            "subject": subject, "medicationCodeableConcept": {"text": "Paracetamol 500mg tablets"},
            "effectiveDateTime": "2026-11-01", "dosage": [{"text": "1 g when needed"}]}),
        json!({"resourceType": "Observation", "id": "o-temp", "status": "final", "subject": subject,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5", "display": "Body temperature"}]},
            "effectiveDateTime": "2025-01-14T09:30:00Z",
            "valueQuantity": {"value": 37.8, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"}}),
        json!({"resourceType": "Observation", "id": "o-hr", "status": "final", "subject": subject,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "effectiveDateTime": "2026-11-20T08:00:00Z",
            "valueQuantity": {"value": 88, "unit": "beats per minute", "system": "http://unitsofmeasure.org", "code": "/min"}}),
        json!({"resourceType": "DiagnosticReport", "id": "dr1", "status": "final", "subject": subject,
            "code": {"text": "Full blood count"}, "effectiveDateTime": "2026-11-19T07:00:00Z"}),
    ];
    for i in 0..9 {
        r.push(json!({"resourceType": "Encounter", "id": format!("e-old{i}"), "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": subject, "period": {"start": format!("2024-0{}-01", i + 1), "end": format!("2024-0{}-01", i + 1)}}));
    }
    r.push(
        json!({"resourceType": "Encounter", "id": "e-now", "status": stay_status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": subject, "period": {"start": "2026-11-18T10:00:00Z"},
        "location": [{"location": {"reference": "Location/w1-b1"}, "status": "active"}]}),
    );
    save_all(svc, r);
}

const NOW: &str = "2026-11-20T10:00:00Z";

fn every_section_says_what_it_hid(s: &ChartSummary, who: &str) {
    assert!(!s.alerts.none_recorded(), "{who}: alerts");
    assert!(!s.allergies.none_recorded(), "{who}: allergies");
    assert!(!s.problems.none_recorded(), "{who}: problems");
    assert!(!s.medicines.none_recorded(), "{who}: medicines");
    assert!(!s.observations.none_recorded(), "{who}: observations");
    assert!(!s.results.none_recorded(), "{who}: results");
    assert!(s.hides_anything(), "{who}");
}

#[test]
fn what_is_hidden_is_never_none_recorded() {
    for (name, svc, _guard) in backends("hidden") {
        patient_on_ward(&svc, "in-progress");
        let now = ms(NOW);
        let clock = wardline_auth::clock::ManualClock::at(now);
        let dir = Arc::new(
            Directory::open(svc.clone(), "trust")
                .unwrap()
                .with_clock(clock.clock()),
        );

        // A ward clerk: the position covers encounters (ADT) but no
        // clinical list; those are not covered, not empty.
        let clerk = policy(&dir, Role::WardClerk, &["w1"]);
        let s = chart::summary(&svc, &clerk, "p1", now).unwrap();
        every_section_says_what_it_hid(&s, &format!("{name} clerk"));
        for (list, h) in [
            ("alerts", s.alerts.hidden),
            ("allergies", s.allergies.hidden),
            ("problems", s.problems.hidden),
            ("medicines", s.medicines.hidden),
            ("observations", s.observations.hidden),
            ("results", s.results.hidden),
        ] {
            assert!(h.not_covered, "{name} clerk: {list} {h:?}");
        }
        assert!(s.encounters.hidden.nothing(), "{name} clerk: encounters");
        assert_eq!(s.encounters.entries.len(), 10, "{name}");

        // A nurse on the ward sees it all, hides nothing.
        let nurse = policy(&dir, Role::StaffNurse, &["w1"]);
        let s = chart::summary(&svc, &nurse, "p1", now).unwrap();
        assert!(!s.hides_anything(), "{name} nurse: {s:?}");
        assert_eq!(s.encounters.total, Some(10), "{name}");

        // The patient is discharged: the nurse's care relationship ends,
        // and every entry is withheld — counted, never "none recorded".
        save_all(
            &svc,
            vec![
                json!({"resourceType": "Encounter", "id": "e-now", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": "Patient/p1"},
                "period": {"start": "2026-11-18T10:00:00Z", "end": "2026-11-20T09:00:00Z"},
                "location": [{"location": {"reference": "Location/w1-b1"}, "status": "completed"}]}),
            ],
        );
        // An hour after the discharge the ward still cares for them (the
        // recent-encounter window, issue 18).
        let nurse = policy(&dir, Role::StaffNurse, &["w1"]);
        let s = chart::summary(&svc, &nurse, "p1", now).unwrap();
        assert!(!s.hides_anything(), "{name} nurse just after discharge");
        // The window closes: every entry is withheld.
        clock.advance(15 * 86_400_000);
        let nurse = policy(&dir, Role::StaffNurse, &["w1"]);
        let s = chart::summary(&svc, &nurse, "p1", now).unwrap();
        every_section_says_what_it_hid(&s, &format!("{name} nurse after discharge"));
        assert!(s.encounters.entries.is_empty(), "{name}");
        assert!(!s.encounters.none_recorded(), "{name}");
        assert_eq!(s.encounters.hidden.withheld, 10, "{name}");
        assert!(!s.encounters.hidden.not_covered, "{name}");
        assert_eq!(s.encounters.total, None, "{name}: a total would count them");
        assert_eq!(s.allergies.hidden.withheld, 1, "{name}");
        assert_eq!(s.alerts.hidden.withheld, 1, "{name}");
        assert_eq!(s.problems.hidden.withheld, 2, "{name}");
        assert_eq!(s.medicines.hidden.withheld, 3, "{name}");
        assert_eq!(s.observations.hidden.withheld, 2, "{name}");
        assert_eq!(s.results.hidden.withheld, 1, "{name}");
    }
}

#[test]
fn problems_and_medicines_current_first_ended_marked() {
    for (name, svc, _guard) in backends("lists") {
        patient_on_ward(&svc, "in-progress");
        let s = chart::summary(&svc, &op(), "p1", ms(NOW)).unwrap();

        let problems: Vec<(&str, bool, Option<&str>)> = s
            .problems
            .entries
            .iter()
            .map(|p| (p.text.as_str(), p.current, p.clinical_status.as_deref()))
            .collect();
        assert_eq!(
            problems,
            [
                ("Type 2 diabetes mellitus", true, Some("Active")),
                ("Fractured wrist", false, Some("Resolved")),
            ],
            "{name}: the active problem first although recorded earlier"
        );
        let dm = &s.problems.entries[0];
        assert_eq!(dm.verification.as_deref(), Some("Confirmed"), "{name}");
        assert_eq!(dm.onset.as_deref(), Some("2015-03-01"), "{name}");
        assert_eq!(s.problems.entries[1].ended.as_deref(), Some("2026-11-01"));

        let meds: Vec<(&str, &str, bool, Option<&str>)> = s
            .medicines
            .entries
            .iter()
            .map(|m| {
                (
                    m.medication.as_str(),
                    m.status_text.as_str(),
                    m.current,
                    m.dosage.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            meds,
            [
                // Named from the Medication it refers to.
                (
                    "Amlodipine 5mg tablets",
                    "Active",
                    true,
                    Some("5 mg once a day")
                ),
                (
                    "Paracetamol 500mg tablets",
                    "Taking",
                    true,
                    Some("1 g when needed")
                ),
                // Stopped, although prescribed after the others.
                (
                    "Flucloxacillin 500mg capsules",
                    "Stopped",
                    false,
                    Some("500 mg four times a day")
                ),
            ],
            "{name}"
        );
        assert_eq!(s.medicines.entries[0].start.as_deref(), Some("2025-06-01"));
        assert!(!s.problems.more && !s.medicines.more, "{name}");
    }
}

#[test]
fn observations_carry_their_age_and_old_ones_are_marked() {
    for (name, svc, _guard) in backends("obs") {
        patient_on_ward(&svc, "in-progress");
        let s = chart::summary(&svc, &op(), "p1", ms(NOW)).unwrap();
        let obs: Vec<(&str, &str, Option<&str>, bool)> = s
            .observations
            .entries
            .iter()
            .map(|o| (o.name.as_str(), o.value.as_str(), o.age.as_deref(), o.old))
            .collect();
        assert_eq!(
            obs,
            [
                (
                    "Heart rate",
                    "88 beats per minute",
                    Some("2 hours ago"),
                    false
                ),
                (
                    "Body temperature",
                    "37.8 °C",
                    Some("1 year 10 months ago"),
                    true
                ),
            ],
            "{name}"
        );
        assert_eq!(
            s.observations.entries[1].when.as_deref(),
            Some("2025-01-14T09:30:00Z")
        );
        assert_eq!(s.results.entries[0].age.as_deref(), Some("1 day ago"));
        // The same record a day later: the heart rate is old too (the clock
        // is the caller's, not the machine's).
        let later = chart::summary(&svc, &op(), "p1", ms("2026-11-21T08:01:00Z")).unwrap();
        assert!(later.observations.entries.iter().all(|o| o.old), "{name}");
    }
}
