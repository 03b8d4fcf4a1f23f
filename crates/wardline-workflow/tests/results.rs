//! Results: status rules, the inbox, acknowledgement, correction
//! re-notification and escalation over a real store — SQLite always,
//! PostgreSQL too when `WARDLINE_TEST_PG_URL` is set (each test in a fresh
//! schema).

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::Backend;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use wardline_core::{Agent, FhirService, Trusted};
use wardline_workflow::results::{
    self, Flag, Incoming, Queue, ResultsError, Source, escalate_due, inbox, inbox_queue,
};

fn backends(test: &str) -> Vec<Backend> {
    support::backends(&format!("results_{test}"), support::plain, seed)
}

fn op() -> Trusted {
    Trusted::operator("results-test")
}

fn person(id: &str) -> Trusted {
    Trusted::new(Agent {
        name: id.to_owned(),
        who: Some(format!("Practitioner/{id}")),
        ..Agent::default()
    })
}

const T0: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);

/// Patients p1, p2; the requester `dr1`, another doctor `dr2`, the
/// consultant `c1` (attending of p1's admission `e1`); requests `sr1` (p1,
/// by dr1, in e1) and `sr2` (p2, by dr2, no encounter).
fn seed(svc: &FhirService) {
    let rs = vec![
        json!({"resourceType": "Patient", "id": "p1", "active": true,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
            "name": [{"use": "official", "family": "Smith", "given": ["Alice"]}], "gender": "female"}),
        json!({"resourceType": "Patient", "id": "p2", "active": true,
            "name": [{"use": "official", "family": "Jones", "given": ["Beth"]}], "gender": "female"}),
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Patel", "given": ["Ravi"]}]}),
        json!({"resourceType": "Practitioner", "id": "dr2", "name": [{"family": "Brown", "given": ["Sam"]}]}),
        json!({"resourceType": "Practitioner", "id": "c1", "name": [{"family": "Okafor", "given": ["Ada"]}]}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
                "individual": {"reference": "Practitioner/c1"}}]}),
        sr("sr1", "p1", Some("dr1"), Some("e1"), "R0000001-1"),
        sr("sr2", "p2", Some("dr2"), None, "R0000002-1"),
    ];
    let a = op();
    let mut tx = svc.begin(&a).unwrap();
    for r in rs {
        tx.save(r).unwrap();
    }
    tx.commit().unwrap();
}

fn sr(id: &str, patient: &str, requester: Option<&str>, enc: Option<&str>, placer: &str) -> Value {
    let mut s = json!({"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
        "priority": "routine",
        "identifier": [{"system": "https://fhir.wardline.invalid/Id/placer-order", "value": placer}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "26958001", "display": "Urea and electrolytes"}], "text": "U&E"},
        "subject": {"reference": format!("Patient/{patient}")},
        "authoredOn": "2026-03-02T08:00:00Z"});
    if let Some(r) = requester {
        s["requester"] = json!({"reference": format!("Practitioner/{r}")});
    }
    if let Some(e) = enc {
        s["encounter"] = json!({"reference": format!("Encounter/{e}")});
    }
    s
}

fn potassium(value: f64, flag: &str) -> Value {
    json!({"resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]},
        "valueQuantity": {"value": value, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
        "referenceRange": [{"low": {"value": 3.5, "unit": "mmol/L"}, "high": {"value": 5.3, "unit": "mmol/L"}}],
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": flag}]}]})
}

fn sodium(value: f64) -> Value {
    json!({"resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2951-2", "display": "Sodium"}]},
        "valueQuantity": {"value": value, "unit": "mmol/L"},
        "interpretation": [{"coding": [{"code": "N"}]}]})
}

fn report(accession: &str, sr: Option<&str>, patient: Option<&str>, status: &str) -> Value {
    let mut r = json!({"resourceType": "DiagnosticReport", "status": status,
        "identifier": [{"system": "https://fhir.wardline.invalid/Id/filler-order", "value": accession}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "26958001", "display": "Urea and electrolytes"}], "text": "U&E"},
        "effectiveDateTime": "2026-03-02T08:30:00Z"});
    if let Some(s) = sr {
        r["basedOn"] = json!([{"reference": format!("ServiceRequest/{s}")}]);
    }
    if let Some(p) = patient {
        r["subject"] = json!({"reference": format!("Patient/{p}")});
    }
    r
}

fn incoming(report: Value, obs: Vec<Value>) -> Incoming {
    Incoming {
        report,
        observations: obs,
        source: Source::Laboratory,
    }
}

fn task(svc: &FhirService, id: &str) -> Value {
    svc.read_as(&op(), "Task", id).unwrap().unwrap()
}

fn tasks_of(svc: &FhirService, report: &str) -> Vec<Value> {
    svc.search_as(
        &op(),
        "Task",
        &[
            ("focus", format!("DiagnosticReport/{report}")),
            ("_count", "100".into()),
        ],
    )
    .unwrap()
    .resources
}

#[test]
fn a_final_result_reaches_the_requester_once_and_never_goes_back() {
    for b in backends("final") {
        let svc = &b.svc;
        let r = results::receive(
            svc,
            &op(),
            incoming(
                report("L1", Some("sr1"), Some("p1"), "final"),
                vec![potassium(6.8, "HH"), sodium(140.0)],
            ),
            T0,
        )
        .unwrap();
        assert!(r.matched, "{}", b.name);
        assert_eq!(r.notified.len(), 1, "{}", b.name);
        let t = task(svc, &r.notified[0]);
        assert_eq!(t["owner"]["reference"], "Practitioner/dr1", "{}", b.name);
        assert_eq!(t["priority"], "stat", "a critical value: {}", b.name);
        assert_eq!(t["status"], "requested");
        assert_eq!(t["for"]["reference"], "Patient/p1");
        assert_eq!(t["businessStatus"]["text"], "critical");

        // The same message again: no change, nobody told twice.
        let again = results::receive(
            svc,
            &op(),
            incoming(
                report("L1", Some("sr1"), Some("p1"), "final"),
                vec![potassium(6.8, "HH"), sodium(140.0)],
            ),
            T0 + Duration::minutes(1),
        )
        .unwrap();
        assert_eq!(again.report, r.report, "{}", b.name);
        assert!(again.notified.is_empty(), "{}", b.name);
        let stored = svc
            .read_as(&op(), "DiagnosticReport", &r.report)
            .unwrap()
            .unwrap();
        assert_eq!(
            stored["meta"]["versionId"], "1",
            "nothing written: {}",
            b.name
        );

        // Final again with a different value: refused (a correction must say so).
        let e = results::receive(
            svc,
            &op(),
            incoming(
                report("L1", Some("sr1"), Some("p1"), "final"),
                vec![potassium(4.2, "N"), sodium(140.0)],
            ),
            T0 + Duration::minutes(2),
        )
        .unwrap_err();
        assert_eq!(e.status(), 409, "{}: {e}", b.name);
        assert!(e.message().contains("correct"), "{e}");

        // Back to preliminary: refused.
        let e = results::receive(
            svc,
            &op(),
            incoming(
                report("L1", Some("sr1"), Some("p1"), "preliminary"),
                vec![potassium(6.8, "HH")],
            ),
            T0 + Duration::minutes(3),
        )
        .unwrap_err();
        assert_eq!(e.status(), 409, "{}: {e}", b.name);
        // Nothing changed by the refusals.
        assert_eq!(tasks_of(svc, &r.report).len(), 1, "{}", b.name);
        let stored = svc
            .read_as(&op(), "DiagnosticReport", &r.report)
            .unwrap()
            .unwrap();
        assert_eq!(stored["status"], "final");
        assert_eq!(stored["meta"]["versionId"], "1");
    }
}

#[test]
fn unmatched_results_go_to_the_worklist_and_tell_nobody() {
    for b in backends("unmatched") {
        let svc = &b.svc;
        // No request.
        let r = results::receive(
            svc,
            &op(),
            incoming(
                report("L2", None, Some("p1"), "final"),
                vec![potassium(6.8, "HH")],
            ),
            T0,
        )
        .unwrap();
        assert!(!r.matched && r.notified.is_empty(), "{}", b.name);
        let stored = svc
            .read_as(&op(), "DiagnosticReport", &r.report)
            .unwrap()
            .unwrap();
        assert!(results::is_unmatched(&stored), "{}", b.name);
        // A request of another patient: never filed to it.
        let r = results::receive(
            svc,
            &op(),
            incoming(
                report("L3", Some("sr2"), Some("p1"), "final"),
                vec![potassium(6.8, "HH")],
            ),
            T0,
        )
        .unwrap();
        assert!(!r.matched && r.notified.is_empty(), "{}", b.name);
        assert!(tasks_of(svc, &r.report).is_empty());
        // A later version of a result never moves it to another patient.
        let first = results::receive(
            svc,
            &op(),
            incoming(
                report("L9", Some("sr1"), Some("p1"), "preliminary"),
                vec![potassium(6.8, "HH")],
            ),
            T0,
        )
        .unwrap();
        let e = results::receive(
            svc,
            &op(),
            incoming(
                report("L9", Some("sr2"), Some("p2"), "final"),
                vec![potassium(6.8, "HH")],
            ),
            T0,
        )
        .unwrap_err();
        assert_eq!(e.status(), 409, "{}: {e}", b.name);
        assert!(e.message().contains("another patient"), "{e}");
        let kept = svc
            .read_as(&op(), "DiagnosticReport", &first.report)
            .unwrap()
            .unwrap();
        assert_eq!(kept["subject"]["reference"], "Patient/p1");
        assert_eq!(kept["status"], "preliminary");
        // notify_in refuses an unmatched report.
        let a = op();
        let mut tx = svc.begin(&a).unwrap();
        let e = results::notify_in(&mut tx, &r.report, T0).unwrap_err();
        assert_eq!(e.status(), 409, "{}", b.name);
    }
}

#[test]
fn no_acknowledgement_without_reading_and_only_by_the_team() {
    for b in backends("ack") {
        let svc = &b.svc;
        let r = results::receive(
            svc,
            &op(),
            incoming(
                report("L4", Some("sr1"), Some("p1"), "final"),
                vec![potassium(6.8, "HH")],
            ),
            T0,
        )
        .unwrap();
        let t = &r.notified[0];
        let e = results::acknowledge(svc, &person("dr1"), t, "filed", None, T0).unwrap_err();
        assert_eq!(e.status(), 409, "{}: {e}", b.name);
        assert!(e.message().contains("without reading"), "{e}");

        // Another doctor may look but not acknowledge, and does not mark it read.
        let v = results::open(svc, &person("dr2"), t, T0).unwrap();
        assert!(!v.may_acknowledge);
        assert_eq!(task(svc, t)["status"], "requested", "{}", b.name);
        let e = results::acknowledge(svc, &person("dr2"), t, "filed", None, T0).unwrap_err();
        assert_eq!(e.status(), 403, "{}: {e}", b.name);

        let v = results::open(svc, &person("dr1"), t, T0 + Duration::minutes(5)).unwrap();
        assert!(v.may_acknowledge);
        assert_eq!(v.read_by[0].0, "Ravi Patel", "who read it, by name");
        assert_eq!(v.owner.as_deref(), Some("Ravi Patel"));
        assert_eq!(v.flag, Flag::Critical);
        assert_eq!(
            v.observations[0].flag_words.as_deref(),
            Some("critically high")
        );
        assert_eq!(v.observations[0].range.as_deref(), Some("3.5–5.3 mmol/L"));
        assert_eq!(task(svc, t)["status"], "in-progress", "{}", b.name);

        let e =
            results::acknowledge(svc, &person("dr1"), t, "action-required", None, T0).unwrap_err();
        assert_eq!(e.status(), 400, "a note is needed: {e}");
        let e = results::acknowledge(svc, &person("dr1"), t, "nonsense", None, T0).unwrap_err();
        assert_eq!(e.status(), 400);

        results::acknowledge(
            svc,
            &person("dr1"),
            t,
            "action-required",
            Some("Repeat U&E, start calcium gluconate"),
            T0 + Duration::minutes(6),
        )
        .unwrap();
        let done = task(svc, t);
        assert_eq!(done["status"], "completed", "{}", b.name);
        assert_eq!(done["executionPeriod"]["end"], "2026-03-02T09:06:00.000Z");
        assert_eq!(
            done["output"][0]["valueCodeableConcept"]["coding"][0]["code"],
            "action-required"
        );
        // The follow-up Task, owned by the acknowledger.
        let follow: Vec<Value> = tasks_of(svc, &r.report)
            .into_iter()
            .filter(|x| x["code"]["coding"][0]["code"] == results::RESULT_ACTION)
            .collect();
        assert_eq!(follow.len(), 1, "{}", b.name);
        assert_eq!(follow[0]["owner"]["reference"], "Practitioner/dr1");
        assert_eq!(
            follow[0]["note"][0]["text"],
            "Repeat U&E, start calcium gluconate"
        );
        // Not twice.
        let e = results::acknowledge(svc, &person("dr1"), t, "filed", None, T0).unwrap_err();
        assert_eq!(e.status(), 409);
        // Off the inbox, on the acknowledged queue.
        assert!(
            inbox(svc, &op(), "Practitioner/dr1", 1)
                .unwrap()
                .items
                .is_empty(),
            "{}",
            b.name
        );
        let done = inbox_queue(svc, &op(), "Practitioner/dr1", Queue::Done, 1).unwrap();
        assert_eq!(done.items.len(), 1, "{}", b.name);
        assert_eq!(done.items[0].state, "acknowledged");
    }
}

#[test]
fn a_correction_supersedes_and_renotifies_everyone_who_read_it() {
    for b in backends("correct") {
        let svc = &b.svc;
        let p = results::receive(
            svc,
            &op(),
            incoming(
                report("L5", Some("sr1"), Some("p1"), "preliminary"),
                vec![potassium(6.8, "HH")],
            ),
            T0,
        )
        .unwrap();
        let t1 = p.notified[0].clone();
        // The consultant (team) reads the preliminary.
        results::open(svc, &person("c1"), &t1, T0 + Duration::minutes(1)).unwrap();

        let f = results::receive(
            svc,
            &op(),
            incoming(
                report("L5", Some("sr1"), Some("p1"), "final"),
                vec![potassium(6.8, "HH")],
            ),
            T0 + Duration::minutes(10),
        )
        .unwrap();
        assert_eq!(f.report, p.report);
        // The requester, and the consultant who had read the preliminary.
        let owners: Vec<String> = f
            .notified
            .iter()
            .map(|t| {
                task(svc, t)["owner"]["reference"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            owners,
            vec!["Practitioner/dr1", "Practitioner/c1"],
            "{}",
            b.name
        );
        assert_eq!(
            task(svc, &t1)["status"],
            "cancelled",
            "superseded: {}",
            b.name
        );

        // The requester reads and files the final.
        let t2 = f.notified[0].clone();
        results::open(svc, &person("dr1"), &t2, T0 + Duration::minutes(11)).unwrap();
        results::acknowledge(
            svc,
            &person("dr1"),
            &t2,
            "filed",
            None,
            T0 + Duration::minutes(12),
        )
        .unwrap();

        // Corrected: the analyser was wrong (haemolysed sample).
        let c = results::receive(
            svc,
            &op(),
            incoming(
                report("L5", Some("sr1"), Some("p1"), "corrected"),
                vec![potassium(4.2, "N")],
            ),
            T0 + Duration::minutes(30),
        )
        .unwrap();
        assert_eq!(c.notified.len(), 2, "{}", b.name);
        for id in &c.notified {
            let t = task(svc, id);
            assert_eq!(t["businessStatus"]["text"], "corrected", "{}", b.name);
            let note = t["note"][0]["text"].as_str().unwrap();
            assert!(
                note.contains("was 6.8 mmol/L (HH)") && note.contains("now 4.2 mmol/L"),
                "{note}"
            );
        }
        // The acknowledged final stays acknowledged; the consultant's open one is superseded.
        assert_eq!(task(svc, &t2)["status"], "completed");
        assert_eq!(task(svc, &f.notified[1])["status"], "cancelled");
        // The Observation is a new version of the same one: history keeps the old value.
        let rep = svc
            .read_as(&op(), "DiagnosticReport", &c.report)
            .unwrap()
            .unwrap();
        assert_eq!(rep["status"], "corrected");
        let oid = rep["result"][0]["reference"]
            .as_str()
            .unwrap()
            .strip_prefix("Observation/")
            .unwrap()
            .to_owned();
        assert_eq!(
            rep["result"].as_array().unwrap().len(),
            1,
            "no duplicate result: {}",
            b.name
        );
        let o = svc.read_as(&op(), "Observation", &oid).unwrap().unwrap();
        assert_eq!(o["status"], "corrected");
        assert_eq!(
            o["meta"]["versionId"], "3",
            "prelim, final, corrected: {}",
            b.name
        );
        // Opening the corrected result shows the earlier value.
        let v = results::open(
            svc,
            &person("dr1"),
            &c.notified[0],
            T0 + Duration::minutes(31),
        )
        .unwrap();
        assert_eq!(v.state, "corrected");
        assert_eq!(
            v.observations[0].earlier.as_deref(),
            Some("6.8 mmol/L (HH)")
        );
        // A corrected result never becomes final again.
        let e = results::receive(
            svc,
            &op(),
            incoming(
                report("L5", Some("sr1"), Some("p1"), "final"),
                vec![potassium(4.2, "N")],
            ),
            T0 + Duration::minutes(40),
        )
        .unwrap_err();
        assert_eq!(e.status(), 409);
    }
}

#[test]
fn an_unacknowledged_critical_result_escalates_once_after_the_limit() {
    for b in backends("escalate") {
        let svc = &b.svc;
        let r = results::receive(
            svc,
            &op(),
            incoming(
                report("L6", Some("sr1"), Some("p1"), "final"),
                vec![potassium(6.9, "HH")],
            ),
            T0,
        )
        .unwrap();
        // A normal result never escalates.
        results::receive(
            svc,
            &op(),
            incoming(
                report("L7", Some("sr1"), Some("p1"), "final"),
                vec![sodium(140.0)],
            ),
            T0,
        )
        .unwrap();
        let limit = Duration::minutes(60);
        assert!(
            escalate_due(svc, &op(), T0 + Duration::minutes(59), limit)
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
        let esc = escalate_due(svc, &op(), T0 + Duration::minutes(61), limit).unwrap();
        assert_eq!(esc.len(), 1, "{}", b.name);
        let e = task(svc, &esc[0]);
        assert_eq!(
            e["owner"]["reference"], "Practitioner/c1",
            "the attending consultant: {}",
            b.name
        );
        assert_eq!(e["code"]["coding"][0]["code"], results::RESULT_ESCALATION);
        assert_eq!(
            e["partOf"][0]["reference"],
            format!("Task/{}", r.notified[0])
        );
        let orig = task(svc, &r.notified[0]);
        assert!(
            orig["extension"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["url"] == results::ESCALATED_EXT)
        );
        // Once.
        assert!(
            escalate_due(svc, &op(), T0 + Duration::minutes(120), limit)
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
        // The consultant's team queue shows it.
        let team = inbox_queue(svc, &op(), "Practitioner/c1", Queue::Team, 1).unwrap();
        assert_eq!(team.items.len(), 1);
        assert_eq!(team.items[0].state, "escalated");
        // The consultant reads and acknowledges: both are done.
        results::open(svc, &person("c1"), &esc[0], T0 + Duration::minutes(70)).unwrap();
        results::acknowledge(
            svc,
            &person("c1"),
            &esc[0],
            "contact-patient",
            None,
            T0 + Duration::minutes(71),
        )
        .unwrap();
        assert_eq!(task(svc, &esc[0])["status"], "completed");
        assert_eq!(
            task(svc, &r.notified[0])["status"],
            "completed",
            "{}",
            b.name
        );
        assert!(
            inbox(svc, &op(), "Practitioner/dr1", 1)
                .unwrap()
                .items
                .iter()
                .all(|i| i.report != r.report)
        );
        // An acknowledged result does not escalate.
        let r2 = results::receive(
            svc,
            &op(),
            incoming(
                report("L8", Some("sr1"), Some("p1"), "final"),
                vec![potassium(2.1, "LL")],
            ),
            T0,
        )
        .unwrap();
        results::open(
            svc,
            &person("dr1"),
            &r2.notified[0],
            T0 + Duration::minutes(2),
        )
        .unwrap();
        results::acknowledge(
            svc,
            &person("dr1"),
            &r2.notified[0],
            "filed",
            None,
            T0 + Duration::minutes(3),
        )
        .unwrap();
        assert!(
            escalate_due(svc, &op(), T0 + Duration::minutes(200), limit)
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
    }
}

#[test]
fn the_inbox_puts_critical_and_new_first() {
    for b in backends("inbox") {
        let svc = &b.svc;
        let mk = |acc: &str, obs: Vec<Value>, at: i64| {
            results::receive(
                svc,
                &op(),
                incoming(report(acc, Some("sr1"), Some("p1"), "final"), obs),
                T0 + Duration::minutes(at),
            )
            .unwrap()
        };
        let normal = mk("N1", vec![sodium(140.0)], 0);
        let abnormal = mk("A1", vec![potassium(5.6, "H")], 1);
        let critical_read = mk("C1", vec![potassium(6.9, "HH")], 2);
        let critical_new = mk("C2", vec![potassium(7.1, "HH")], 3);
        results::open(
            svc,
            &person("dr1"),
            &critical_read.notified[0],
            T0 + Duration::minutes(4),
        )
        .unwrap();
        let page = inbox(svc, &person("dr1"), "Practitioner/dr1", 1).unwrap();
        let order: Vec<&str> = page.items.iter().map(|i| i.report.as_str()).collect();
        assert_eq!(
            order,
            vec![
                critical_new.report.as_str(),
                critical_read.report.as_str(),
                abnormal.report.as_str(),
                normal.report.as_str()
            ],
            "{}",
            b.name
        );
        assert_eq!(page.items[0].patient_name, "SMITH, Alice");
        assert_eq!(page.items[0].nhs_number.as_deref(), Some("9434765919"));
        assert_eq!(page.items[0].flag, Flag::Critical);
        assert_eq!(page.items[0].state, "new");
        assert_eq!(page.items[1].state, "read");
        assert!(!page.more, "four items: one page");
        let e = inbox(svc, &op(), "dr1", 1).unwrap_err();
        assert!(matches!(e, ResultsError::Invalid(_)));
    }
}

#[test]
fn values_sent_without_flags_are_flagged_from_the_catalogue() {
    for b in backends("interpret") {
        let svc = &b.svc;
        wardline_workflow::orders::catalogue::import(svc, &op(), &wardline_demo::order_catalogue())
            .unwrap();
        let bare = |v: f64, unit: &str| {
            json!({"resourceType": "Observation",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]},
                "valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}})
        };
        // 7.0 mmol/L is above the catalogue's critical high (6.5): critical.
        let r = results::receive(
            svc,
            &op(),
            incoming(
                report("I1", Some("sr1"), Some("p1"), "final"),
                vec![bare(7.0, "mmol/L")],
            ),
            T0,
        )
        .unwrap();
        assert_eq!(task(svc, &r.notified[0])["priority"], "stat", "{}", b.name);
        let rep = svc
            .read_as(&op(), "DiagnosticReport", &r.report)
            .unwrap()
            .unwrap();
        let oid = rep["result"][0]["reference"]
            .as_str()
            .unwrap()
            .strip_prefix("Observation/")
            .unwrap()
            .to_owned();
        let o = svc.read_as(&op(), "Observation", &oid).unwrap().unwrap();
        assert_eq!(
            o["interpretation"][0]["coding"][0]["code"], "HH",
            "{}",
            b.name
        );
        assert_eq!(o["referenceRange"][0]["low"]["value"], 3.5);
        // A flag sent is kept as sent.
        let mut sent = bare(4.0, "mmol/L");
        sent["interpretation"] = json!([{"coding": [{"code": "H"}]}]);
        let r = results::receive(
            svc,
            &op(),
            incoming(report("I2", Some("sr1"), Some("p1"), "final"), vec![sent]),
            T0,
        )
        .unwrap();
        assert_eq!(
            task(svc, &r.notified[0])["priority"],
            "urgent",
            "{}",
            b.name
        );
        // Another unit than the analyte's: not flagged by its ranges.
        let r = results::receive(
            svc,
            &op(),
            incoming(
                report("I3", Some("sr1"), Some("p1"), "final"),
                vec![bare(27.0, "mg/dL")],
            ),
            T0,
        )
        .unwrap();
        let rep = svc
            .read_as(&op(), "DiagnosticReport", &r.report)
            .unwrap()
            .unwrap();
        let oid = rep["result"][0]["reference"]
            .as_str()
            .unwrap()
            .strip_prefix("Observation/")
            .unwrap()
            .to_owned();
        let o = svc.read_as(&op(), "Observation", &oid).unwrap().unwrap();
        assert!(o.get("interpretation").is_none(), "{}: {o}", b.name);
    }
}

#[test]
fn the_same_result_from_two_channels_at_once_is_stored_and_told_once() {
    for b in backends("race") {
        let svc = Arc::new(b.svc);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let svc = svc.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    // A laboratory release and an HL7 resend of the same report.
                    let source = if i == 0 {
                        Source::Laboratory
                    } else {
                        Source::Hl7 {
                            sender: "LAB".into(),
                        }
                    };
                    loop {
                        match results::receive(
                            &svc,
                            &op(),
                            Incoming {
                                report: report("RACE1", Some("sr1"), Some("p1"), "final"),
                                observations: vec![potassium(6.8, "HH")],
                                source: source.clone(),
                            },
                            T0,
                        ) {
                            // A deadlock or write clash between the two is a 409 to retry.
                            Err(ResultsError::Conflict(m)) if m.contains("at the same moment") => {
                                continue;
                            }
                            other => return other.unwrap(),
                        }
                    }
                })
            })
            .collect();
        let got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got[0].report, got[1].report, "{}: one report", b.name);
        assert_eq!(
            got.iter().map(|g| g.notified.len()).sum::<usize>(),
            1,
            "{}: told once",
            b.name
        );
        let reports = svc
            .search_as(
                &op(),
                "DiagnosticReport",
                &[(
                    "identifier",
                    "https://fhir.wardline.invalid/Id/filler-order|RACE1",
                )],
            )
            .unwrap();
        assert_eq!(reports.resources.len(), 1, "{}", b.name);
    }
}

#[test]
fn the_policy_knows_the_inbox_task_codes() {
    // An open one owned by a clinician relates them to the patient
    // (`wardline_auth::policy::relationship`): the two lists are one.
    assert_eq!(
        wardline_auth::rbac::RESULT_TASK_CODES,
        [
            results::RESULT_REVIEW,
            results::RESULT_ESCALATION,
            results::RESULT_ACTION,
            results::CONTACT_PATIENT
        ]
    );
    assert_eq!(
        wardline_auth::rbac::RESULT_REVIEW_CODE,
        results::RESULT_REVIEW
    );
}
