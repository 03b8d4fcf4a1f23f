//! Prescribing on the drug chart over a real store: SQLite always,
//! PostgreSQL too when `WARDLINE_TEST_PG_URL` is set (each test in a fresh
//! schema). The formulary is built here in the contract's shape.

mod support;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::{date, datetime};
use wardline_auth::rbac::{Role, required_activity};
use wardline_core::access::{Operation, forbidden};
use wardline_core::{
    Access, Agent, Body, FhirRequest, FhirService, Method, Op, RequestHeaders, ResourceView,
    Trusted,
};
use wardline_fhir::FhirError;
use wardline_store::Reader;
use wardline_workflow::medicines::checks::Override;
use wardline_workflow::medicines::formulary::{self, Formulary, Qty};
use wardline_workflow::medicines::prescribe::{
    self, Prescriber, Prescription, discontinue_in, prescribe_in, set_status_in,
};
use wardline_workflow::medicines::{
    FORMULARY_EXT, Kind, LOCAL_MEDICINE_SYSTEM, MedicinesError, SIGNATURE_EXT, SNOMED_SYSTEM,
    administrable, kind,
};

/// A backend and what the tests load from it once.
struct Backend {
    base: support::Backend,
    formulary: Formulary,
}

impl std::ops::Deref for Backend {
    type Target = support::Backend;
    fn deref(&self) -> &support::Backend {
        &self.base
    }
}

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("rx_{test}"),
        |svc| wardline_workflow::with_operations(wardline_workflow::with_rules(svc)),
        seed,
    )
    .into_iter()
    .map(|base| Backend {
        formulary: formulary::load(&base.svc).unwrap(),
        base,
    })
    .collect()
}

fn op() -> Trusted {
    Trusted::operator("rx-test")
}

/// A user whose position is `role`: the real RBAC table decides each type.
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
        _: &dyn Reader,
    ) -> Result<(), FhirError> {
        self.check_type(op, Some(r.resource_type))
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

fn medication(
    id: &str,
    name: &str,
    unit: &str,
    strength_mg: Option<f64>,
    route: (&str, &str),
) -> Value {
    // In the shape the formulary's own rule accepts: a local VMP code
    // (L…), id med-{code}, the VTM and the form.
    let code = id.trim_start_matches("med-");
    let mut m = json!({"resourceType": "Medication", "id": id, "status": "active",
        "code": {"coding": [{"system": LOCAL_MEDICINE_SYSTEM, "code": code, "display": name}]},
        "form": {"text": if unit == "mL" { "Infusion" } else { "Tablet" }},
        "extension": [{"url": FORMULARY_EXT, "extension": [
            {"url": "vtm", "valueCoding": {"system": LOCAL_MEDICINE_SYSTEM, "code": format!("LV{code}"), "display": name.split(' ').next().unwrap()}},
            {"url": "unitOfDose", "valueString": unit},
            {"url": "route", "valueCoding": {"system": SNOMED_SYSTEM, "code": route.0, "display": route.1}}]}]});
    if let Some(s) = strength_mg {
        m["ingredient"] = json!([{"itemCodeableConcept": {"text": name}, "strength": {
            "numerator": {"value": s, "unit": "mg"}, "denominator": {"value": 1, "unit": unit}}}]);
    }
    m
}

const ORAL: (&str, &str) = ("26643006", "Oral");
const IV: (&str, &str) = ("47625008", "Intravenous");

fn seed(svc: &FhirService) {
    let rs = [
        medication(
            "med-LT1001",
            "Paracetamol 500mg tablets",
            "tablet",
            Some(500.0),
            ORAL,
        ),
        medication(
            "med-LT1002",
            "Warfarin 1mg tablets",
            "tablet",
            Some(1.0),
            ORAL,
        ),
        medication(
            "med-LT1003",
            "Sodium chloride 0.9% infusion 1litre bags",
            "mL",
            None,
            IV,
        ),
        json!({"resourceType": "Patient", "id": "p1", "active": true, "gender": "male", "birthDate": "1950-01-01",
            "name": [{"use": "official", "family": "Brown", "given": ["Carl"]}]}),
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Mehta", "given": ["Sanjay"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Practitioner", "id": "nurse1", "name": [{"family": "Jones", "given": ["Ann"]}]}),
        json!({"resourceType": "Encounter", "id": "e-p1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-02-27T10:00:00Z"}}),
    ];
    for r in rs {
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
}

const T0: OffsetDateTime = datetime!(2026-03-01 09:00 UTC);

fn dr() -> Prescriber {
    Prescriber {
        reference: "Practitioner/dr1".into(),
        display: "Dr Sanjay Mehta".into(),
    }
}

fn q(v: f64, u: &str) -> Qty {
    Qty {
        value: v,
        unit: u.into(),
    }
}

fn regular() -> Prescription {
    let mut p = Prescription::new("p1", "med-LT1001", Kind::Regular);
    p.dose = Some(q(1.0, "g").clone());
    p.dose = Some(q(1000.0, "mg"));
    p.route = ORAL.0.into();
    p.times = vec![
        "08:00".into(),
        "12:00".into(),
        "18:00".into(),
        "22:00".into(),
    ];
    p.indication = "Pain after fracture".into();
    p.review = Some(date!(2026 - 03 - 04));
    p
}

fn each_kind() -> Vec<Prescription> {
    let mut prn = Prescription::new("p1", "med-LT1001", Kind::AsRequired);
    prn.dose = Some(q(1.0, "tablet"));
    prn.route = ORAL.0.into();
    prn.prn_reason = Some("pain".into());
    prn.min_interval_hours = Some(4.0);
    prn.max_per_24h = Some(q(8.0, "tablet"));
    prn.indication = "Pain".into();
    let mut once = Prescription::new("p1", "med-LT1001", Kind::OnceOnly);
    once.dose = Some(q(2.0, "tablet"));
    once.route = ORAL.0.into();
    once.once_at = Some(datetime!(2026-03-01 10:00 UTC));
    once.indication = "Fever".into();
    let mut var = Prescription::new("p1", "med-LT1002", Kind::VariableDose);
    var.dose_range = Some((q(1.0, "mg"), q(10.0, "mg")));
    var.route = ORAL.0.into();
    var.times = vec!["18:00".into()];
    var.instructions = Some("Dose by INR: see the anticoagulation chart".into());
    var.indication = "Atrial fibrillation".into();
    let mut inf = Prescription::new("p1", "med-LT1003", Kind::Infusion);
    inf.route = IV.0.into();
    inf.rate_ml_h = Some(125.0);
    inf.volume_ml = Some(1000.0);
    inf.duration_hours = Some(8.0);
    inf.indication = "Maintenance fluids".into();
    vec![regular(), prn, once, var, inf]
}

fn prescribe(b: &Backend, p: &Prescription) -> Result<String, MedicinesError> {
    let who = op();
    let mut tx = b.svc.begin(&who).unwrap();
    let done = prescribe_in(&mut tx, &b.formulary, &dr(), p, &[], T0)?;
    tx.commit().unwrap();
    Ok(done.id)
}

/// [`prescribe`], going past decision support's override alerts (the
/// same medicine prescribed as every kind is duplicate therapy) with a
/// reason; a hard stop still refuses.
fn prescribe_past_alerts(b: &Backend, p: &Prescription) -> Result<String, MedicinesError> {
    match prescribe(b, p) {
        Err(MedicinesError::Alerts(alerts)) => {
            let overrides: Vec<Override> = alerts
                .iter()
                .map(|a| Override {
                    key: a.key.clone(),
                    reason: "each kind of prescription is tested".into(),
                })
                .collect();
            let who = op();
            let mut tx = b.svc.begin(&who).unwrap();
            let done = prescribe_in(&mut tx, &b.formulary, &dr(), p, &overrides, T0)?;
            tx.commit().unwrap();
            Ok(done.id)
        }
        other => other,
    }
}

fn get(svc: &FhirService, id: &str) -> Value {
    let r = svc.handle(
        req(
            Method::Get,
            vec!["MedicationRequest".into(), id.into()],
            None,
        ),
        &op(),
    );
    assert_eq!(r.status, 200, "MedicationRequest/{id}");
    json_of(r.body)
}

fn put(svc: &FhirService, mr: &Value) -> (u16, Value) {
    let id = mr["id"].as_str().unwrap().to_owned();
    let r = svc.handle(
        req(
            Method::Put,
            vec!["MedicationRequest".into(), id],
            Some(mr.clone()),
        ),
        &op(),
    );
    (r.status, json_of(r.body))
}

#[test]
fn each_kind_is_prescribed_signed_and_on_the_chart() {
    for b in backends("kinds") {
        let mut ids = Vec::new();
        for p in each_kind() {
            let id = prescribe_past_alerts(&b, &p)
                .unwrap_or_else(|e| panic!("{}: {:?}: {e}", b.name, p.kind));
            let mr = get(&b.svc, &id);
            assert_eq!(mr["status"], "active", "{}", b.name);
            assert_eq!(kind(&mr), p.kind, "{}: {mr:#}", b.name);
            assert_eq!(mr["encounter"]["reference"], "Encounter/e-p1", "{}", b.name);
            assert_eq!(mr["requester"]["reference"], "Practitioner/dr1");
            assert!(
                mr["extension"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["url"] == SIGNATURE_EXT)
            );
            ids.push(id);
        }
        let doctor = as_role(Role::Doctor, "dr1");
        let chart =
            prescribe::drug_chart(&b.svc, &doctor, "p1", datetime!(2026-03-04 09:00 UTC)).unwrap();
        assert_eq!(chart.regular.len(), 1, "{}", b.name);
        assert_eq!(chart.as_required.len(), 1);
        assert_eq!(chart.once_only.len(), 1);
        assert_eq!(chart.variable.len(), 1);
        assert_eq!(chart.infusions.len(), 1);
        let reg = &chart.regular[0];
        assert_eq!(reg.dose, "1000 mg");
        assert_eq!(reg.timing, "08:00, 12:00, 18:00, 22:00");
        assert_eq!(reg.route, "Oral");
        assert!(reg.review_due, "the review date has come");
        assert_eq!(reg.screening, "unscreened");
        assert_eq!(reg.prescriber.as_deref(), Some("Dr Sanjay Mehta"));
        assert!(chart.as_required[0].timing.contains("at least 4 h apart"));
        assert!(
            chart.as_required[0]
                .timing
                .contains("at most 8 tablet in 24 h")
        );
        assert_eq!(chart.infusions[0].dose, "1000 mL at 125 mL/h over 8 h");
        assert_eq!(chart.variable[0].dose, "1–10 mg");
    }
}

#[test]
fn a_refusal_names_the_field_and_saves_nothing() {
    for b in backends("refusal") {
        let mut p = regular();
        p.route = IV.0.into();
        match prescribe(&b, &p) {
            Err(MedicinesError::Invalid(m)) => assert!(m.starts_with("Route:"), "{m}"),
            other => panic!("{}: {other:?}", b.name),
        }
        let mut p = regular();
        p.dose = Some(q(5.0, "mL"));
        assert!(matches!(prescribe(&b, &p), Err(MedicinesError::Invalid(m)) if m.contains("unit")));
        let chart = prescribe::drug_chart(&b.svc, &op(), "p1", T0).unwrap();
        assert_eq!(chart.current().count(), 0, "{}", b.name);
    }
}

#[test]
fn change_stops_the_old_and_links_the_new() {
    for b in backends("change") {
        let old = prescribe(&b, &regular()).unwrap();
        let mut p = regular();
        p.dose = Some(q(500.0, "mg"));
        let who = op();
        let mut tx = b.svc.begin(&who).unwrap();
        let new = prescribe::change_in(
            &mut tx,
            &b.formulary,
            &dr(),
            &old,
            &p,
            "weight 45 kg",
            &[],
            T0,
        )
        .unwrap();
        tx.commit().unwrap();
        let o = get(&b.svc, &old);
        assert_eq!(o["status"], "stopped", "{}", b.name);
        assert_eq!(o["statusReason"]["text"], "changed: weight 45 kg");
        let n = get(&b.svc, &new.id);
        assert_eq!(n["status"], "active");
        assert_eq!(
            n["priorPrescription"]["reference"],
            format!("MedicationRequest/{old}")
        );
        let chart = prescribe::drug_chart(&b.svc, &op(), "p1", T0).unwrap();
        assert_eq!(chart.regular.len(), 1, "only the new one is current");
        assert_eq!(chart.regular[0].dose, "500 mg");
        assert_eq!(chart.ended.len(), 1);
        // A change needs a reason, and the old one must be current.
        let mut tx = b.svc.begin(&who).unwrap();
        assert!(matches!(
            prescribe::change_in(&mut tx, &b.formulary, &dr(), &new.id, &p, " ", &[], T0),
            Err(MedicinesError::Invalid(_))
        ));
        drop(tx);
        let mut tx = b.svc.begin(&who).unwrap();
        assert!(matches!(
            prescribe::change_in(&mut tx, &b.formulary, &dr(), &old, &p, "again", &[], T0),
            Err(MedicinesError::Conflict(_))
        ));
        drop(tx);
        let detail = prescribe::detail(&b.svc, &op(), &old, T0).unwrap();
        assert_eq!(detail.replaced_by, vec![new.id.clone()]);
        assert_eq!(detail.versions.len(), 2, "{}", b.name);
        assert_eq!(detail.versions[0].status, "stopped");
    }
}

#[test]
fn discontinue_needs_a_reason_and_ends_it() {
    for b in backends("discontinue") {
        let id = prescribe(&b, &regular()).unwrap();
        let who = op();
        let mut tx = b.svc.begin(&who).unwrap();
        assert!(matches!(
            discontinue_in(&mut tx, &id, "  ", Some(&dr()), T0),
            Err(MedicinesError::Invalid(_))
        ));
        drop(tx);
        let mut tx = b.svc.begin(&who).unwrap();
        discontinue_in(&mut tx, &id, "No longer in pain", Some(&dr()), T0).unwrap();
        tx.commit().unwrap();
        let mr = get(&b.svc, &id);
        assert_eq!(mr["status"], "stopped", "{}", b.name);
        assert_eq!(mr["statusReason"]["text"], "No longer in pain");
        assert!(!administrable(mr["status"].as_str().unwrap()));
        // Not twice.
        let mut tx = b.svc.begin(&who).unwrap();
        assert!(matches!(
            discontinue_in(&mut tx, &id, "again", Some(&dr()), T0),
            Err(MedicinesError::Conflict(_))
        ));
    }
}

#[test]
fn the_lifecycle_holds_through_set_status_in_and_a_plain_write() {
    for b in backends("lifecycle") {
        let id = prescribe(&b, &regular()).unwrap();
        let who = op();
        let mut tx = b.svc.begin(&who).unwrap();
        set_status_in(&mut tx, &id, "stopped", "course finished").unwrap();
        tx.commit().unwrap();
        // Through the one place.
        let mut tx = b.svc.begin(&who).unwrap();
        match set_status_in(&mut tx, &id, "active", "") {
            Err(MedicinesError::Conflict(m)) => assert!(m.contains("stopped"), "{m}"),
            other => panic!("{}: {other:?}", b.name),
        }
        drop(tx);
        // Through a plain REST PUT: the write rule.
        let mut mr = get(&b.svc, &id);
        mr["status"] = json!("active");
        let (status, body) = put(&b.svc, &mr);
        assert_eq!(status, 422, "{}: {body}", b.name);
        assert_eq!(
            body["issue"][0]["expression"][0],
            "MedicationRequest.status"
        );
        assert_eq!(get(&b.svc, &id)["status"], "stopped");
        // Created active without a signature: refused too.
        let mut unsigned = get(&b.svc, &id);
        unsigned["id"] = json!("unsigned-1");
        unsigned["status"] = json!("active");
        unsigned.as_object_mut().unwrap().remove("extension");
        let (status, body) = put(&b.svc, &unsigned);
        assert_eq!(status, 422, "{}: {body}", b.name);
        assert_eq!(
            body["issue"][0]["expression"][0],
            "MedicationRequest.status"
        );
        // Through a transaction Bundle: the same.
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": unsigned, "request": {"method": "PUT", "url": "MedicationRequest/unsigned-1"}}]});
        let r = b.svc.handle(req(Method::Post, vec![], Some(bundle)), &op());
        assert_eq!(r.status, 422, "{}", b.name);
        // A change that does not move the status (an annotation) passes.
        let mut annotated = get(&b.svc, &id);
        annotated["note"] = json!([{"text": "seen"}]);
        assert_eq!(put(&b.svc, &annotated).0, 200);
    }
}

#[test]
fn a_draft_is_not_active_until_signed() {
    for b in backends("draft") {
        let who = op();
        let mut tx = b.svc.begin(&who).unwrap();
        let draft =
            prescribe::draft_in(&mut tx, &b.formulary, &dr(), &regular(), false, T0).unwrap();
        tx.commit().unwrap();
        let id = draft["id"].as_str().unwrap().to_owned();
        let mr = get(&b.svc, &id);
        assert_eq!(mr["status"], "draft", "{}", b.name);
        assert!(!administrable("draft"));
        // Not made active without the signature, by either way.
        let mut tx = b.svc.begin(&who).unwrap();
        assert!(
            matches!(set_status_in(&mut tx, &id, "active", ""), Err(MedicinesError::Conflict(m)) if m.contains("not signed"))
        );
        drop(tx);
        let mut plain = mr.clone();
        plain["status"] = json!("active");
        assert_eq!(put(&b.svc, &plain).0, 422, "{}", b.name);
        let chart = prescribe::drug_chart(&b.svc, &who, "p1", T0).unwrap();
        assert_eq!((chart.drafts.len(), chart.current().count()), (1, 0));
        // Signing makes it active.
        let mut tx = b.svc.begin(&who).unwrap();
        prescribe::sign_in(&mut tx, &b.formulary, &dr(), &id, &[], T0).unwrap();
        tx.commit().unwrap();
        let mr = get(&b.svc, &id);
        assert_eq!(mr["status"], "active");
        assert!(prescribe::signed(&mr).is_some());
    }
}

#[test]
fn a_nurse_cannot_prescribe_a_doctor_can() {
    for b in backends("rbac") {
        let nurse = as_role(Role::StaffNurse, "nurse1");
        match prescribe::prescribe(&b.svc, &nurse, &b.formulary, &regular(), &[], T0) {
            Err(MedicinesError::Forbidden(_)) => {}
            other => panic!("{}: {other:?}", b.name),
        }
        let doctor = as_role(Role::Doctor, "dr1");
        let done =
            prescribe::prescribe(&b.svc, &doctor, &b.formulary, &regular(), &[], T0).unwrap();
        let mr = get(&b.svc, &done.id);
        assert_eq!(mr["requester"]["display"], "Dr Sanjay Mehta", "{}", b.name);
        // A nurse may not discontinue either.
        assert!(matches!(
            prescribe::discontinue(&b.svc, &nurse, &done.id, "why", T0),
            Err(MedicinesError::Forbidden(_))
        ));
    }
}

#[test]
fn prescribe_operation_over_rest() {
    for b in backends("operation") {
        let p = regular();
        let e = b.formulary.entry(&p.medicine).unwrap();
        let mr = prescribe::build(e, &dr(), &p, "active", false, T0);
        let doctor = as_role(Role::Doctor, "dr1");
        let body = json!({"resourceType": "Parameters", "parameter": [{"name": "prescription", "resource": mr}]});
        let r = b.svc.handle(
            req(
                Method::Post,
                vec!["MedicationRequest".into(), "$prescribe".into()],
                Some(body),
            ),
            &doctor,
        );
        assert_eq!(r.status, 201, "{}: {:?}", b.name, r.body);
        let saved = json_of(r.body);
        assert_eq!(saved["status"], "active");
        assert!(prescribe::signed(&saved).is_some());
        let id = saved["id"].as_str().unwrap().to_owned();
        // Invalid: 400 naming the field.
        let mut bad = regular();
        bad.indication = String::new();
        let mr = prescribe::build(e, &dr(), &bad, "active", false, T0);
        let body = json!({"resourceType": "Parameters", "parameter": [{"name": "prescription", "resource": mr}]});
        let r = b.svc.handle(
            req(
                Method::Post,
                vec!["MedicationRequest".into(), "$prescribe".into()],
                Some(body),
            ),
            &doctor,
        );
        assert_eq!(r.status, 400);
        assert!(
            json_of(r.body)["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .starts_with("Indication")
        );
        // $discontinue.
        let body = json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "Finished"}]});
        let r = b.svc.handle(
            req(
                Method::Post,
                vec![
                    "MedicationRequest".into(),
                    id.clone(),
                    "$discontinue".into(),
                ],
                Some(body.clone()),
            ),
            &doctor,
        );
        assert_eq!(r.status, 200, "{}: {:?}", b.name, r.body);
        assert_eq!(json_of(r.body)["status"], "stopped");
        let r = b.svc.handle(
            req(
                Method::Post,
                vec!["MedicationRequest".into(), id, "$discontinue".into()],
                Some(body),
            ),
            &doctor,
        );
        assert_eq!(r.status, 409);
    }
}
