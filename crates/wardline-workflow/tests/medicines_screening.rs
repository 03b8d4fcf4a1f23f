//! The pharmacist's screening and the discharge medicines over a real store:
//! SQLite always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is set.

mod support;

use serde_json::{Value, json};
use support::Backend;
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::rbac::{Role, required_activity, screening_permitted};
use wardline_core::access::{Operation, forbidden};
use wardline_core::{
    Access, Agent, Body, FhirRequest, FhirService, Method, Op, RequestHeaders, ResourceView,
    Trusted,
};
use wardline_fhir::FhirError;
use wardline_store::Reader;
use wardline_workflow::medicines::discharge::{Change, discharge_medicines};
use wardline_workflow::medicines::prescribe::{Prescriber, signature};
use wardline_workflow::medicines::screening::{
    self, annotate, open_queries, query, resolve_query, screen, screened_by, worklist,
};
use wardline_workflow::medicines::{
    CATEGORY_SYSTEM, FORMULARY_EXT, MedicinesError, PHARMACY_QUERY_CODE, SCREENING_EXT,
    screening_status,
};
use wardline_workflow::pmi::TASK_SYSTEM;

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("screen_{test}"),
        wardline_workflow::with_rules,
        seed,
    )
}

fn op() -> Trusted {
    Trusted::operator("screening-test")
}

/// A user whose position is `role`: the real RBAC table decides each type,
/// and the real screening rule each MedicationRequest write (as the policy
/// applies it).
struct AsRole {
    agent: Agent,
    role: Role,
}

impl Access for AsRole {
    fn agent(&self) -> &Agent {
        &self.agent
    }
    fn check_type(&self, op: Op, t: Option<&str>) -> Result<(), FhirError> {
        match t {
            Some(t) if !self.role.permits(required_activity(t, op)) => {
                Err(forbidden(format!("{} may not {op:?} {t}", self.role)))
            }
            _ => Ok(()),
        }
    }
    fn check_resource(
        &self,
        op: Op,
        r: &ResourceView<'_>,
        reader: &dyn Reader,
    ) -> Result<(), FhirError> {
        self.check_type(op, Some(r.resource_type))?;
        if r.resource_type == "MedicationRequest" && op.is_write() && !r.json.is_empty() {
            let cur = reader
                .read("MedicationRequest", r.id)
                .map_err(FhirError::from)?
                .map(|c| c.json);
            if !screening_permitted(self.role, r.json, cur.as_deref()) {
                return Err(forbidden("only a pharmacist screens"));
            }
        }
        Ok(())
    }
    fn check_operation(&self, _: Operation) -> Result<(), FhirError> {
        Ok(())
    }
}

fn as_role(role: Role, who: &str) -> AsRole {
    AsRole {
        agent: Agent {
            who: Some(format!("Practitioner/{who}")),
            ..Agent::operator(role.code())
        },
        role,
    }
}

fn pharmacist() -> AsRole {
    as_role(Role::Pharmacist, "ph1")
}

fn req(method: Method, path: Vec<String>, body: Option<Value>) -> FhirRequest {
    FhirRequest {
        method,
        path,
        query: vec![],
        headers: RequestHeaders::default(),
        body: body.map(|b| b.to_string().into_bytes()),
    }
}

fn json_of(b: Body) -> Value {
    match b {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => panic!("no body"),
    }
}

fn put(svc: &FhirService, r: Value) {
    let (t, id) = (
        r["resourceType"].as_str().unwrap().to_owned(),
        r["id"].as_str().unwrap().to_owned(),
    );
    let res = svc.handle(
        req(Method::Put, vec![t.clone(), id.clone()], Some(r)),
        &op(),
    );
    assert!(res.status < 300, "{t}/{id}: {:?}", res.body);
}

fn get(svc: &FhirService, t: &str, id: &str) -> Value {
    let r = svc.handle(req(Method::Get, vec![t.into(), id.into()], None), &op());
    assert_eq!(r.status, 200, "{t}/{id}");
    json_of(r.body)
}

fn location(id: &str, name: &str, kind: &str, parent: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "status": "active", "name": name,
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": kind}]}});
    if let Some(p) = parent {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    l
}

fn medication(id: &str, name: &str, vtm: &str, high_risk: bool) -> Value {
    let code = id.trim_start_matches("med-");
    json!({"resourceType": "Medication", "id": id, "status": "active",
        "code": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine", "code": code, "display": name}]},
        "form": {"text": "Tablet"},
        "extension": [{"url": FORMULARY_EXT, "extension": [
            {"url": "vtm", "valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine", "code": format!("L{}", vtm.to_uppercase()), "display": vtm}},
            {"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral"}},
            {"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": "34206005", "display": "Subcutaneous"}},
            {"url": "unitOfDose", "valueString": "tablet"},
            {"url": "highRisk", "valueBoolean": high_risk}]}]})
}

fn seed(svc: &FhirService) {
    let rs = [
        location("site", "Watford General", "si", None),
        location("w1", "Ward 1", "wa", Some("site")),
        location("w2", "Ward 2", "wa", Some("site")),
        location("b1", "Bed 1", "bd", Some("w1")),
        location("b2", "Bed 2", "bd", Some("w2")),
        json!({"resourceType": "Patient", "id": "p1", "active": true, "gender": "female", "birthDate": "1950-05-01",
            "name": [{"use": "official", "family": "Smith", "given": ["Alice"]}]}),
        json!({"resourceType": "Patient", "id": "p2", "active": true, "gender": "male", "birthDate": "1940-01-01",
            "name": [{"use": "official", "family": "Brown", "given": ["Carl"]}]}),
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Mehta", "given": ["Sanjay"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Practitioner", "id": "ph1", "name": [{"family": "Okafor", "given": ["Ada"]}]}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-02-27T10:00:00Z"},
            "location": [{"location": {"reference": "Location/b1"}, "status": "active"}]}),
        json!({"resourceType": "Encounter", "id": "e2", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p2"}, "period": {"start": "2026-02-27T10:00:00Z"},
            "location": [{"location": {"reference": "Location/b2"}, "status": "active"}]}),
        medication(
            "med-LPARA1G",
            "Paracetamol 500mg tablets",
            "paracetamol",
            false,
        ),
        medication(
            "med-LENOX40",
            "Enoxaparin 40mg injection",
            "enoxaparin",
            true,
        ),
        medication("med-LAML5", "Amlodipine 5mg tablets", "amlodipine", false),
        medication("med-LAML10", "Amlodipine 10mg tablets", "amlodipine", false),
        medication(
            "med-LOME20",
            "Omeprazole 20mg capsules",
            "omeprazole",
            false,
        ),
    ];
    for r in rs {
        put(svc, r);
    }
}

struct Rx<'a> {
    id: &'a str,
    patient: &'a str,
    encounter: &'a str,
    med: &'a str,
    dose: f64,
    unit: &'a str,
    status: &'a str,
    category: &'a str,
    authored: &'a str,
}

fn prescription(svc: &FhirService, rx: Rx<'_>) {
    put(
        svc,
        json!({"resourceType": "MedicationRequest", "id": rx.id, "status": rx.status, "intent": "order",
            "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": rx.category}]}],
            "medicationReference": {"reference": format!("Medication/{}", rx.med)},
            "subject": {"reference": format!("Patient/{}", rx.patient)},
            "encounter": {"reference": format!("Encounter/{}", rx.encounter)},
            "requester": {"reference": "Practitioner/dr1"},
            "authoredOn": rx.authored,
            "extension": [signature(&Prescriber { reference: "Practitioner/dr1".into(), display: "Dr Sanjay Mehta".into() }, NOW)],
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "timeOfDay": ["08:00:00"]}},
                "route": {"text": "Oral"},
                "doseAndRate": [{"doseQuantity": {"value": rx.dose, "unit": rx.unit}}]}]}),
    );
}

fn rx<'a>(id: &'a str, med: &'a str, authored: &'a str) -> Rx<'a> {
    Rx {
        id,
        patient: "p1",
        encounter: "e1",
        med,
        dose: 1.0,
        unit: "g",
        status: "active",
        category: "inpatient",
        authored,
    }
}

const NOW: OffsetDateTime = datetime!(2026-03-02 12:00 UTC);

fn without(mut v: Value, keys: &[&str]) -> Value {
    for k in keys {
        v.as_object_mut().unwrap().remove(*k);
    }
    v
}

#[test]
fn the_worklist_is_unscreened_prescriptions_oldest_day_first_high_risk_first() {
    for b in backends("worklist") {
        let svc = &b.svc;
        prescription(svc, rx("a", "med-LPARA1G", "2026-03-02T08:00:00Z"));
        prescription(svc, rx("b", "med-LENOX40", "2026-03-02T11:00:00Z"));
        prescription(svc, rx("c", "med-LOME20", "2026-03-01T20:00:00Z"));
        prescription(
            svc,
            Rx {
                patient: "p2",
                encounter: "e2",
                ..rx("d", "med-LPARA1G", "2026-03-02T09:00:00Z")
            },
        );
        // Not on it: an inpatient draft, a stopped one.
        prescription(
            svc,
            Rx {
                status: "draft",
                ..rx("e", "med-LPARA1G", "2026-03-02T09:00:00Z")
            },
        );
        prescription(
            svc,
            Rx {
                status: "stopped",
                ..rx("f", "med-LPARA1G", "2026-03-02T09:00:00Z")
            },
        );
        // On it: a draft discharge prescription.
        prescription(
            svc,
            Rx {
                status: "draft",
                category: "discharge",
                ..rx("g", "med-LAML5", "2026-03-02T10:00:00Z")
            },
        );

        let w = worklist(svc, &pharmacist(), None, NOW).unwrap();
        let ids: Vec<&str> = w.items.iter().map(|i| i.prescription.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a", "d", "g"], "{}", b.name);
        let first = &w.items[1];
        assert!(first.high_risk);
        assert_eq!(first.patient, "Alice Smith");
        assert_eq!(first.ward.as_deref(), Some("Ward 1"));
        assert_eq!(first.bed.as_deref(), Some("Bed 1"));
        assert_eq!(first.medicine, "Enoxaparin 40mg injection");
        assert_eq!(first.dose, "1 g Oral at 08:00");
        assert_eq!(first.prescriber.as_deref(), Some("Dr Sanjay Mehta"));
        assert_eq!(first.age_minutes, 60);
        assert!(w.items[4].discharge);

        let ward2 = worklist(svc, &pharmacist(), Some("w2"), NOW).unwrap();
        let ids: Vec<&str> = ward2
            .items
            .iter()
            .map(|i| i.prescription.as_str())
            .collect();
        assert_eq!(ids, ["d"], "{}", b.name);
        // A site: every ward of it.
        let site = worklist(svc, &pharmacist(), Some("site"), NOW).unwrap();
        let ids: Vec<&str> = site.items.iter().map(|i| i.prescription.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a", "d", "g"], "{}", b.name);

        // Screened: off the worklist.
        screen(svc, &pharmacist(), "c", None, NOW).unwrap();
        let w = worklist(svc, &pharmacist(), None, NOW).unwrap();
        assert!(!w.items.iter().any(|i| i.prescription == "c"));
    }
}

#[test]
fn screening_writes_the_verdict_and_nothing_else() {
    for b in backends("screen") {
        let svc = &b.svc;
        prescription(svc, rx("a", "med-LPARA1G", "2026-03-02T08:00:00Z"));
        let before = get(svc, "MedicationRequest", "a");
        screen(
            svc,
            &pharmacist(),
            "a",
            Some("Dose checked against weight."),
            NOW,
        )
        .unwrap();
        let after = get(svc, "MedicationRequest", "a");
        assert_eq!(screening_status(&after), "screened", "{}", b.name);
        assert_eq!(
            screened_by(&after),
            Some(("Practitioner/ph1".into(), "2026-03-02T12:00:00Z".into()))
        );
        assert_eq!(after["note"][0]["text"], "Dose checked against weight.");
        assert_eq!(
            after["note"][0]["authorReference"]["reference"],
            "Practitioner/ph1"
        );
        assert_eq!(
            without(before.clone(), &["meta", "extension", "note"]),
            without(after.clone(), &["meta", "extension", "note"]),
            "{}: screening changed something else",
            b.name
        );
        assert_eq!(after["extension"].as_array().unwrap().len(), 2);
        assert_eq!(after["extension"][1]["url"], SCREENING_EXT);
        assert_eq!(after["extension"][0], before["extension"][0]);

        // Annotating adds a note only.
        annotate(svc, &pharmacist(), "a", "Check levels on day 3.", NOW).unwrap();
        let again = get(svc, "MedicationRequest", "a");
        assert_eq!(again["note"].as_array().unwrap().len(), 2);
        assert_eq!(screening_status(&again), "screened");
        assert!(matches!(
            annotate(svc, &pharmacist(), "a", "  ", NOW),
            Err(MedicinesError::Invalid(_))
        ));
    }
}

#[test]
fn only_a_pharmacist_screens() {
    for b in backends("who") {
        let svc = &b.svc;
        prescription(svc, rx("a", "med-LPARA1G", "2026-03-02T08:00:00Z"));
        for role in [Role::Doctor, Role::Consultant, Role::StaffNurse] {
            let e = screen(svc, &as_role(role, "dr1"), "a", None, NOW).unwrap_err();
            assert!(
                matches!(e, MedicinesError::Forbidden(_)),
                "{} {role:?}: {e:?}",
                b.name
            );
            let e = query(svc, &as_role(role, "dr1"), "a", "Why?", NOW).unwrap_err();
            assert!(
                matches!(e, MedicinesError::Forbidden(_)),
                "{} {role:?}: {e:?}",
                b.name
            );
        }
        assert_eq!(
            screening_status(&get(svc, "MedicationRequest", "a")),
            "unscreened"
        );
        screen(svc, &pharmacist(), "a", None, NOW).unwrap();
        // A prescriber's plain write cannot remove the screening…
        let mut mr = get(svc, "MedicationRequest", "a");
        mr.as_object_mut().unwrap().remove("extension");
        let r = svc.handle(
            req(
                Method::Put,
                vec!["MedicationRequest".into(), "a".into()],
                Some(mr),
            ),
            &as_role(Role::Doctor, "dr1"),
        );
        assert_eq!(r.status, 403, "{}", b.name);
        // …but may still stop the prescription, which keeps it.
        let mut mr = get(svc, "MedicationRequest", "a");
        mr["status"] = json!("stopped");
        let r = svc.handle(
            req(
                Method::Put,
                vec!["MedicationRequest".into(), "a".into()],
                Some(mr),
            ),
            &as_role(Role::Doctor, "dr1"),
        );
        assert_eq!(r.status, 200, "{}: {:?}", b.name, r.body);
        // A prescription no longer in force is not screened.
        assert!(matches!(
            screen(svc, &pharmacist(), "a", None, NOW),
            Err(MedicinesError::Conflict(_))
        ));
    }
}

#[test]
fn a_query_goes_to_the_prescriber_and_back() {
    for b in backends("query") {
        let svc = &b.svc;
        prescription(svc, rx("a", "med-LENOX40", "2026-03-02T08:00:00Z"));
        let task = query(
            svc,
            &pharmacist(),
            "a",
            "Weight 48 kg: is 40 mg intended?",
            NOW,
        )
        .unwrap();
        let mr = get(svc, "MedicationRequest", "a");
        assert_eq!(screening_status(&mr), "queried", "{}", b.name);
        let t = get(svc, "Task", &task);
        assert_eq!(t["code"]["coding"][0]["system"], TASK_SYSTEM);
        assert_eq!(t["code"]["coding"][0]["code"], PHARMACY_QUERY_CODE);
        assert_eq!(t["owner"]["reference"], "Practitioner/dr1");
        assert_eq!(t["focus"]["reference"], "MedicationRequest/a");
        assert_eq!(t["requester"]["reference"], "Practitioner/ph1");
        assert_eq!(t["status"], "requested");

        // The prescriber sees it among their open queries.
        let mine =
            open_queries(svc, &as_role(Role::Doctor, "dr1"), Some("Practitioner/dr1")).unwrap();
        assert_eq!(mine.len(), 1, "{}", b.name);
        assert_eq!(mine[0].question, "Weight 48 kg: is 40 mg intended?");
        assert_eq!(mine[0].asked_by.as_deref(), Some("Ada Okafor"));
        assert!(
            open_queries(svc, &op(), Some("Practitioner/other"))
                .unwrap()
                .is_empty()
        );
        // Still on the worklist, queried, with the question.
        let w = worklist(svc, &pharmacist(), None, NOW).unwrap();
        assert_eq!(w.items[0].screening, "queried");
        assert_eq!(
            w.items[0].query.as_ref().unwrap().question,
            "Weight 48 kg: is 40 mg intended?"
        );

        // The prescriber answers: the Task closes, the prescription waits
        // for the pharmacist.
        resolve_query(
            svc,
            &as_role(Role::Doctor, "dr1"),
            &task,
            "Yes: VTE prophylaxis, weight checked.",
            NOW,
        )
        .unwrap();
        let t = get(svc, "Task", &task);
        assert_eq!(t["status"], "completed");
        assert_eq!(
            t["output"][0]["valueString"],
            "Yes: VTE prophylaxis, weight checked."
        );
        assert!(
            open_queries(svc, &op(), Some("Practitioner/dr1"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            screening_status(&get(svc, "MedicationRequest", "a")),
            "queried"
        );
        let w = worklist(svc, &pharmacist(), None, NOW).unwrap();
        assert_eq!(
            w.items[0].query.as_ref().unwrap().answer.as_deref(),
            Some("Yes: VTE prophylaxis, weight checked.")
        );
        assert!(matches!(
            resolve_query(svc, &op(), &task, "again", NOW),
            Err(MedicinesError::Conflict(_))
        ));

        // A second query, then screening closes it.
        let t2 = query(svc, &pharmacist(), "a", "Renal function?", NOW).unwrap();
        screen(svc, &pharmacist(), "a", None, NOW).unwrap();
        assert_eq!(get(svc, "Task", &t2)["status"], "cancelled");
        assert_eq!(
            screening_status(&get(svc, "MedicationRequest", "a")),
            "screened"
        );
    }
}

#[test]
fn a_changed_prescription_starts_unscreened() {
    for b in backends("changed") {
        let svc = &b.svc;
        prescription(svc, rx("a", "med-LPARA1G", "2026-03-02T08:00:00Z"));
        screen(svc, &pharmacist(), "a", None, NOW).unwrap();
        // The change: the old one stopped (keeping its screening), a new one.
        let mut old = get(svc, "MedicationRequest", "a");
        old["status"] = json!("stopped");
        old["statusReason"] = json!({"text": "changed"});
        let r = svc.handle(
            req(
                Method::Put,
                vec!["MedicationRequest".into(), "a".into()],
                Some(old),
            ),
            &as_role(Role::Doctor, "dr1"),
        );
        assert_eq!(r.status, 200, "{}", b.name);
        prescription(
            svc,
            Rx {
                dose: 500.0,
                unit: "mg",
                ..rx("a2", "med-LPARA1G", "2026-03-02T11:00:00Z")
            },
        );
        let w = worklist(svc, &pharmacist(), None, NOW).unwrap();
        let ids: Vec<&str> = w.items.iter().map(|i| i.prescription.as_str()).collect();
        assert_eq!(ids, ["a2"], "{}", b.name);
        // Copying the old screening onto a new prescription is refused to a prescriber.
        let mut copy = get(svc, "MedicationRequest", "a2");
        copy["extension"] = get(svc, "MedicationRequest", "a")["extension"].clone();
        let r = svc.handle(
            req(
                Method::Put,
                vec!["MedicationRequest".into(), "a2".into()],
                Some(copy),
            ),
            &as_role(Role::Doctor, "dr1"),
        );
        assert_eq!(r.status, 403, "{}", b.name);
    }
}

#[test]
fn the_discharge_medicines_against_the_chart_and_ready_once_screened() {
    for b in backends("tto") {
        let svc = &b.svc;
        prescription(svc, rx("in-para", "med-LPARA1G", "2026-02-28T08:00:00Z"));
        prescription(svc, rx("in-aml", "med-LAML5", "2026-02-28T08:00:00Z"));
        prescription(svc, rx("in-enox", "med-LENOX40", "2026-02-28T08:00:00Z"));
        let tto = |id: &'static str, med: &'static str, dose: f64, unit: &'static str| Rx {
            status: "draft",
            category: "discharge",
            dose,
            unit,
            ..rx(id, med, "2026-03-02T09:00:00Z")
        };
        prescription(svc, tto("t-para", "med-LPARA1G", 1.0, "g"));
        prescription(svc, tto("t-aml", "med-LAML10", 10.0, "mg"));
        prescription(svc, tto("t-ome", "med-LOME20", 20.0, "mg"));
        let mut aml = get(svc, "MedicationRequest", "t-aml");
        aml["note"] = json!([{"text": "BP above target on 5 mg"}]);
        put(svc, aml);

        let d = discharge_medicines(svc, &pharmacist(), "e1", NOW).unwrap();
        let by = |id: &str| {
            d.lines
                .iter()
                .find(|l| l.prescription.as_deref() == Some(id))
                .unwrap()
        };
        assert_eq!(by("t-para").change, Change::Continued, "{}", b.name);
        assert_eq!(by("t-aml").change, Change::Changed);
        assert_eq!(
            by("t-aml").reason.as_deref(),
            Some("BP above target on 5 mg")
        );
        assert_eq!(by("t-aml").inpatient.as_deref(), Some("in-aml"));
        assert_eq!(by("t-ome").change, Change::Started);
        let stopped: Vec<&str> = d
            .lines
            .iter()
            .filter(|l| l.change == Change::Stopped)
            .filter_map(|l| l.inpatient.as_deref())
            .collect();
        assert_eq!(stopped, ["in-enox"]);
        assert_eq!(d.unscreened, 3);
        assert!(!d.ready);

        for t in ["t-para", "t-aml"] {
            screen(svc, &pharmacist(), t, None, NOW).unwrap();
        }
        let d = discharge_medicines(svc, &pharmacist(), "e1", NOW).unwrap();
        assert_eq!(d.unscreened, 1);
        assert!(
            !d.ready,
            "{}: a TTO with an unscreened item is not ready",
            b.name
        );
        screen(svc, &pharmacist(), "t-ome", None, NOW).unwrap();
        let d = discharge_medicines(svc, &pharmacist(), "e1", NOW).unwrap();
        assert!(d.ready, "{}", b.name);
        assert_eq!(d.patient_id, "p1");

        // No discharge prescriptions: not ready.
        let d2 = discharge_medicines(svc, &pharmacist(), "e2", NOW).unwrap();
        assert!(!d2.ready && d2.lines.is_empty());
        let _ = screening::is_discharge;
    }
}
