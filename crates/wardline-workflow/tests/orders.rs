//! Requesting from the chart over a real store: SQLite always, PostgreSQL
//! too when `WARDLINE_TEST_PG_URL` is set (each test in a fresh schema),
//! with the demo trust's order catalogue loaded as the FHIR Bundle it is.

mod support;

use std::collections::BTreeMap;
use std::sync::Barrier;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::rbac::{Role, required_activity};
use wardline_core::access::{Operation, forbidden};
use wardline_core::{
    Access, Agent, Body, FhirRequest, FhirService, Method, Op, RequestHeaders, ResourceView,
    Trusted,
};
use wardline_fhir::FhirError;
use wardline_store::Reader;
use wardline_workflow::orders::catalogue::{self, Catalogue};
use wardline_workflow::orders::label;
use wardline_workflow::orders::request::{
    DUPLICATE_OVERRIDE_EXT, PLACER_SYSTEM, REQUISITION_SYSTEM, SPECIMEN_SYSTEM,
};
use wardline_workflow::orders::{self, OrderRequest, OrdersError};

// ------------------------------------------------------------------ setup

/// A backend and what the tests load from it once.
struct Backend {
    base: support::Backend,
    cat: Catalogue,
}

impl std::ops::Deref for Backend {
    type Target = support::Backend;
    fn deref(&self) -> &support::Backend {
        &self.base
    }
}

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("orders_{test}"),
        wardline_workflow::with_rules,
        seed,
    )
    .into_iter()
    .map(|base| Backend {
        cat: catalogue::load(&base.svc).unwrap(),
        base,
    })
    .collect()
}

fn op() -> Trusted {
    Trusted::operator("orders-test")
}

/// The consultant `dr1` placing orders (their `Practitioner` is the
/// requester), with every permission.
fn doctor() -> Trusted {
    Trusted::new(Agent {
        name: "dr.one".into(),
        who: Some("Practitioner/dr1".into()),
        ..Agent::operator("dr.one")
    })
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

fn as_role(role: Role) -> AsRole {
    AsRole {
        agent: Agent {
            who: Some("Practitioner/dr2".into()),
            ..Agent::operator(role.code())
        },
        role,
    }
}

fn req(
    method: Method,
    path: Vec<String>,
    query: Vec<(String, String)>,
    body: Option<Value>,
) -> FhirRequest {
    FhirRequest {
        method,
        path,
        query,
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

fn seed(svc: &FhirService) {
    let r = svc.handle(
        req(
            Method::Post,
            vec![],
            vec![],
            Some(wardline_demo::order_catalogue()),
        ),
        &op(),
    );
    assert_eq!(r.status, 200, "catalogue: {:?}", r.body);
    let rs = [
        json!({"resourceType": "Patient", "id": "f1", "active": true, "gender": "female", "birthDate": "1990-05-01",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
            "name": [{"use": "official", "family": "Smith", "given": ["Alice"]}]}),
        json!({"resourceType": "Patient", "id": "m1", "active": true, "gender": "male", "birthDate": "1950-01-01",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765862"}],
            "name": [{"use": "official", "family": "Brown", "given": ["Carl"]}]}),
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Mehta", "given": ["Sanjay"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Encounter", "id": "e-m1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/m1"}, "period": {"start": "2026-02-27T10:00:00Z"}}),
    ];
    for r in rs {
        let (t, id) = (
            r["resourceType"].as_str().unwrap().to_owned(),
            r["id"].as_str().unwrap().to_owned(),
        );
        let res = svc.handle(
            req(Method::Put, vec![t.clone(), id.clone()], vec![], Some(r)),
            &op(),
        );
        assert!(res.status < 300, "{t}/{id}: {:?}", res.body);
    }
}

fn get(svc: &FhirService, t: &str, id: &str) -> Value {
    let r = svc.handle(
        req(Method::Get, vec![t.into(), id.into()], vec![], None),
        &op(),
    );
    assert_eq!(r.status, 200, "{t}/{id}");
    json_of(r.body)
}

const T0: OffsetDateTime = datetime!(2026-03-01 09:00 UTC);

fn cxr_answers() -> BTreeMap<String, String> {
    [
        (
            "clinical-indication",
            "Productive cough and fever for five days",
        ),
        ("pregnancy", "not-pregnant"),
        (
            "irmer-justification",
            "Suspected community-acquired pneumonia: will change antibiotic choice",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

fn order(patient: &str, tests: &[&str]) -> OrderRequest {
    let mut answers = BTreeMap::new();
    if tests.contains(&"rad-cxr") {
        answers.insert("rad-cxr".to_owned(), cxr_answers());
    }
    OrderRequest {
        patient: patient.into(),
        orderables: tests.iter().map(|s| (*s).to_owned()).collect(),
        priority: "urgent".into(),
        clinical_details: "Febrile, new cough; ?pneumonia".into(),
        answers,
        duplicate_override: None,
    }
}

fn ident(v: &Value, system: &str) -> String {
    v["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"] == system)
        .unwrap_or_else(|| panic!("no {system} in {v}"))["value"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ------------------------------------------------------------------ tests

#[test]
fn a_requisition_is_service_requests_specimens_and_answers() {
    for b in backends("place") {
        let (svc, cat) = (&b.svc, &b.cat);
        let placed = orders::place_at(
            svc,
            &doctor(),
            cat,
            &order(
                "f1",
                &["path-fbc", "path-ue", "rad-cxr", "path-lft", "path-fbc"],
            ),
            T0,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", b.name));
        assert_eq!(placed.requisition, "R0000001", "{}", b.name);
        assert_eq!(placed.requests.len(), 4, "FBC once: {placed:?}");
        // One tube per container: EDTA (FBC), SST (U&E + LFT); none for the X-ray.
        assert_eq!(placed.specimens.len(), 2, "{}", b.name);

        let srs: Vec<Value> = placed
            .requests
            .iter()
            .map(|id| get(svc, "ServiceRequest", id))
            .collect();
        for (n, sr) in srs.iter().enumerate() {
            assert_eq!(sr["status"], "active");
            assert_eq!(sr["intent"], "order");
            assert_eq!(sr["priority"], "urgent");
            assert_eq!(sr["subject"]["reference"], "Patient/f1");
            assert_eq!(sr["requester"]["reference"], "Practitioner/dr1");
            assert_eq!(sr["authoredOn"], "2026-03-01T09:00:00Z");
            assert_eq!(sr["requisition"]["system"], REQUISITION_SYSTEM);
            assert_eq!(sr["requisition"]["value"], "R0000001");
            assert_eq!(ident(sr, PLACER_SYSTEM), format!("R0000001-{}", n + 1));
            assert_eq!(sr["note"][0]["text"], "Febrile, new cough; ?pneumonia");
            assert!(sr.get("encounter").is_none(), "f1 is not admitted");
        }
        let url = |id: &str| cat.orderable(id).unwrap().url.clone();
        assert_eq!(srs[0]["instantiatesCanonical"][0], json!(url("path-fbc")));
        assert_eq!(srs[0]["code"], {
            let mut c = cat.orderable("path-fbc").unwrap().code.clone();
            if c.get("text").is_none() {
                c["text"] = json!(cat.orderable("path-fbc").unwrap().title);
            }
            c
        });
        assert_eq!(srs[0]["category"][0]["coding"][0]["code"], "108252007");
        assert_eq!(srs[2]["category"][0]["coding"][0]["code"], "363679005");
        assert!(srs[2].get("specimen").is_none(), "no tube for an X-ray");

        // Specimens: identifiers, containers, what is in each.
        let spec = |sr: &Value| {
            get(
                svc,
                "Specimen",
                sr["specimen"][0]["reference"]
                    .as_str()
                    .unwrap()
                    .strip_prefix("Specimen/")
                    .unwrap(),
            )
        };
        let edta = spec(&srs[0]);
        let sst = spec(&srs[1]);
        assert_eq!(spec(&srs[3])["id"], sst["id"], "U&E and LFT share a tube");
        assert_eq!(ident(&edta, SPECIMEN_SYSTEM), "R0000001-1");
        assert_eq!(ident(&sst, SPECIMEN_SYSTEM), "R0000001-2");
        assert_eq!(edta["status"], "available");
        assert!(edta.get("receivedTime").is_none());
        assert_eq!(edta["container"][0]["type"]["text"], "EDTA (purple top)");
        assert_eq!(sst["request"].as_array().unwrap().len(), 2);
        assert_eq!(edta["subject"]["reference"], "Patient/f1");

        // The X-ray's answers.
        let qr_ref = srs[2]["supportingInfo"][0]["reference"].as_str().unwrap();
        let qr = get(
            svc,
            "QuestionnaireResponse",
            qr_ref.strip_prefix("QuestionnaireResponse/").unwrap(),
        );
        assert_eq!(qr["status"], "completed");
        assert_eq!(
            qr["basedOn"][0]["reference"],
            format!("ServiceRequest/{}", placed.requests[2])
        );
        let items = qr["item"].as_array().unwrap();
        assert_eq!(items[0]["linkId"], "clinical-indication");
        assert_eq!(items[1]["answer"][0]["valueCoding"]["code"], "not-pregnant");

        // Read back as the requisition page and labels see it.
        let r = orders::requisition(svc, &doctor(), "R0000001").unwrap();
        assert_eq!(r.patient.id, "f1");
        assert_eq!(r.requester.as_deref(), Some("Dr Sanjay Mehta"));
        assert_eq!(r.requests.len(), 4);
        assert_eq!(r.specimens.len(), 2);
        assert_eq!(r.specimens[0].identifier, "R0000001-1");
        assert_eq!(r.specimens[1].tests.len(), 2, "{:?}", r.specimens[1]);
        assert!(r.requests[2].imaging);
        assert!(
            r.requests[2]
                .answers
                .iter()
                .any(|(_, a)| a == "Not pregnant"),
            "{:?}",
            r.requests[2].answers
        );
        let labels = label::labels(&r).unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[0].nhs_number.as_deref(), Some("943 476 5919"));
        assert_eq!(labels[0].birth_date.as_deref(), Some("1990-05-01"));
        assert!(labels[1].barcode.contains(r#"data-barcode="R0000001-2""#));

        // The chart's list; the next requisition; an admitted patient's
        // orders name the admission.
        let (lines, withheld) = orders::patient_orders(svc, &doctor(), "f1", 50).unwrap();
        assert_eq!((lines.len(), withheld), (4, 0));
        let next = orders::place_at(svc, &doctor(), cat, &order("m1", &["path-crp"]), T0).unwrap();
        assert_eq!(next.requisition, "R0000002", "{}", b.name);
        let sr = get(svc, "ServiceRequest", &next.requests[0]);
        assert_eq!(sr["encounter"]["reference"], "Encounter/e-m1");
        assert!(matches!(
            orders::requisition(svc, &doctor(), "R0000099"),
            Err(OrdersError::NotFound(_))
        ));
    }
}

#[test]
fn bad_requests_are_refused_naming_what_is_wrong() {
    for b in backends("refused") {
        let (svc, cat) = (&b.svc, &b.cat);
        let refuse = |o: OrderRequest, want: &str, status: u16| {
            let e = orders::place_at(svc, &doctor(), cat, &o, T0).unwrap_err();
            assert_eq!(e.status(), status, "{}: {e}", b.name);
            assert!(
                e.message().contains(want),
                "{}: '{e}' lacks '{want}'",
                b.name
            );
        };
        refuse(order("f1", &["path-nonsense"]), "path-nonsense", 400);
        refuse(order("f1", &[]), "at least one", 400);
        refuse(
            OrderRequest {
                priority: "whenever".into(),
                ..order("f1", &["path-fbc"])
            },
            "priority",
            400,
        );
        refuse(
            OrderRequest {
                clinical_details: "  ".into(),
                ..order("f1", &["path-fbc"])
            },
            "clinical details",
            400,
        );
        refuse(order("nobody", &["path-fbc"]), "no patient", 404);
        // A retired test is no longer offered.
        let mut retired = cat.clone();
        retired
            .orderables
            .iter_mut()
            .find(|o| o.id == "path-esr")
            .unwrap()
            .active = false;
        let e = orders::place_at(svc, &doctor(), &retired, &order("f1", &["path-esr"]), T0)
            .unwrap_err();
        assert!(e.message().contains("no longer offered"), "{e}");
        // The X-ray without its clinical indication.
        let mut o = order("f1", &["rad-cxr"]);
        o.answers
            .get_mut("rad-cxr")
            .unwrap()
            .remove("clinical-indication");
        refuse(o, "Clinical indication", 400);
        // An answer that is not one of the choices.
        let mut o = order("f1", &["rad-cxr"]);
        o.answers
            .get_mut("rad-cxr")
            .unwrap()
            .insert("pregnancy".into(), "unsure".into());
        refuse(o, "choose one of", 400);
        // A ward clerk orders nothing (the RBAC table: ServiceRequest needs
        // OrderTests), and nothing is left behind.
        let e = orders::place_at(
            svc,
            &as_role(Role::WardClerk),
            cat,
            &order("f1", &["path-fbc"]),
            T0,
        )
        .unwrap_err();
        assert_eq!(e.status(), 403, "{}: {e}", b.name);
        let (lines, _) = orders::patient_orders(svc, &doctor(), "f1", 50).unwrap();
        assert!(lines.is_empty(), "{}: {lines:?}", b.name);
        // A staff nurse may.
        orders::place_at(
            svc,
            &as_role(Role::StaffNurse),
            cat,
            &order("f1", &["path-fbc"]),
            T0,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", b.name));
    }
}

#[test]
fn a_repeat_within_the_retest_interval_is_a_duplicate_unless_a_reason_is_given() {
    for b in backends("duplicate") {
        let (svc, cat) = (&b.svc, &b.cat);
        // CRP: minimum retest interval 24 hours in the demo catalogue.
        assert_eq!(
            cat.orderable("path-crp").unwrap().retest_interval_hours,
            Some(24)
        );
        let first = orders::place_at(svc, &doctor(), cat, &order("f1", &["path-crp"]), T0).unwrap();
        let later = T0 + time::Duration::hours(23);
        let e = orders::place_at(
            svc,
            &doctor(),
            cat,
            &order("f1", &["path-crp", "path-fbc"]),
            later,
        )
        .unwrap_err();
        let OrdersError::Duplicate(ws) = &e else {
            panic!("{}: not a duplicate: {e}", b.name)
        };
        assert_eq!(e.status(), 409);
        assert_eq!(ws.len(), 1, "{ws:?}");
        assert_eq!(ws[0].orderable, "path-crp");
        assert_eq!(ws[0].service_request, first.requests[0]);
        assert_eq!(ws[0].hours_ago, 23);
        assert_eq!(ws[0].requester.as_deref(), Some("Dr Sanjay Mehta"));
        assert_eq!(
            ws[0].requisition.as_deref(),
            Some(first.requisition.as_str())
        );
        assert!(e.message().contains("C-reactive protein"), "{e}");
        // Nothing was placed, and no number was used.
        let (lines, _) = orders::patient_orders(svc, &doctor(), "f1", 50).unwrap();
        assert_eq!(lines.len(), 1, "{}", b.name);

        // Someone who may not order is refused before the duplicate check:
        // never told of the patient's other orders.
        let e = orders::place_at(
            svc,
            &as_role(Role::WardClerk),
            cat,
            &order("f1", &["path-crp"]),
            later,
        )
        .unwrap_err();
        assert_eq!(e.status(), 403, "{}: {e}", b.name);

        // Another patient's CRP is no duplicate.
        orders::place_at(svc, &doctor(), cat, &order("m1", &["path-crp"]), later).unwrap();

        // With a reason: placed, the reason on the repeated test only, audited.
        let again = orders::place_at(
            svc,
            &doctor(),
            cat,
            &OrderRequest {
                duplicate_override: Some("Sepsis: CRP trend needed before the ward round".into()),
                ..order("f1", &["path-crp", "path-fbc"])
            },
            later,
        )
        .unwrap();
        let crp = get(svc, "ServiceRequest", &again.requests[0]);
        assert_eq!(crp["extension"][0]["url"], DUPLICATE_OVERRIDE_EXT);
        assert_eq!(
            crp["extension"][0]["valueString"],
            "Sepsis: CRP trend needed before the ward round"
        );
        assert!(
            get(svc, "ServiceRequest", &again.requests[1])
                .get("extension")
                .is_none()
        );
        let audit = svc.handle(
            req(
                Method::Get,
                vec!["AuditEvent".into()],
                vec![("subtype".into(), "orders-place-duplicate".into())],
                None,
            ),
            &op(),
        );
        let audit = json_of(audit.body);
        let text = audit.to_string();
        assert!(
            text.contains("CRP trend needed before the ward round"),
            "{}: the override is not in the audit trail: {text}",
            b.name
        );

        // Within 24 hours of the last CRP (the override's, at `later`) it is
        // still a duplicate; 24 hours after it, it is not.
        let after = T0 + time::Duration::hours(25);
        let e =
            orders::place_at(svc, &doctor(), cat, &order("f1", &["path-crp"]), after).unwrap_err();
        assert!(
            matches!(&e, OrdersError::Duplicate(ws) if ws.len() == 1 && ws[0].service_request == again.requests[0]),
            "{}: {e}",
            b.name
        );
        let well_after = later + time::Duration::hours(24);
        orders::place_at(svc, &doctor(), cat, &order("f1", &["path-crp"]), well_after)
            .unwrap_or_else(|e| panic!("{}: after the interval: {e}", b.name));

        // A cancelled order does not count.
        let p = orders::place_at(svc, &doctor(), cat, &order("m1", &["path-hba1c"]), T0).unwrap();
        orders::cancel_at(svc, &doctor(), &p.requests[0], "Wrong patient", T0).unwrap();
        orders::place_at(svc, &doctor(), cat, &order("m1", &["path-hba1c"]), T0)
            .unwrap_or_else(|e| panic!("{}: a cancelled order counted: {e}", b.name));
    }
}

#[test]
fn cancelling_follows_the_lifecycle() {
    for b in backends("cancel") {
        let (svc, cat) = (&b.svc, &b.cat);
        let p = orders::place_at(svc, &doctor(), cat, &order("f1", &["path-fbc"]), T0).unwrap();
        let id = &p.requests[0];
        assert!(matches!(
            orders::cancel_at(svc, &doctor(), id, " ", T0),
            Err(OrdersError::Invalid(_))
        ));
        orders::cancel_at(svc, &doctor(), id, "Sample not needed: discharged", T0).unwrap();
        let sr = get(svc, "ServiceRequest", id);
        assert_eq!(sr["status"], "revoked");
        assert_eq!(
            sr["note"][1]["text"],
            "Cancelled: Sample not needed: discharged"
        );
        assert_eq!(
            sr["note"][1]["authorReference"]["reference"],
            "Practitioner/dr1"
        );
        let e = orders::cancel_at(svc, &doctor(), id, "again", T0).unwrap_err();
        assert_eq!(e.status(), 409, "{e}");
        // A completed order cannot be cancelled (the lifecycle says why).
        let p = orders::place_at(svc, &doctor(), cat, &order("m1", &["path-fbc"]), T0).unwrap();
        let mut sr = get(svc, "ServiceRequest", &p.requests[0]);
        sr["status"] = json!("completed");
        let r = svc.handle(
            req(
                Method::Put,
                vec!["ServiceRequest".into(), p.requests[0].clone()],
                vec![],
                Some(sr),
            ),
            &op(),
        );
        assert!(r.status < 300);
        let e = orders::cancel_at(svc, &doctor(), &p.requests[0], "late", T0).unwrap_err();
        assert!(e.message().contains("completed"), "{e}");
        assert!(matches!(
            orders::cancel_at(svc, &doctor(), "missing", "x", T0),
            Err(OrdersError::NotFound(_))
        ));
    }
}

#[test]
fn racing_placements_get_distinct_requisitions_and_one_duplicate_warning() {
    for b in backends("race") {
        let (svc, cat) = (&b.svc, &b.cat);
        for round in 0..4 {
            // Two clinicians, two patients, at the same moment.
            let gate = Barrier::new(2);
            let placed: Vec<Result<orders::Placed, OrdersError>> = std::thread::scope(|s| {
                let hs: Vec<_> = ["f1", "m1"]
                    .into_iter()
                    .map(|p| {
                        let gate = &gate;
                        s.spawn(move || {
                            gate.wait();
                            orders::place_at(svc, &doctor(), cat, &order(p, &["path-fbc"]), T0)
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let numbers: Vec<String> = placed
                .iter()
                .map(|r| {
                    r.as_ref()
                        .unwrap_or_else(|e| panic!("{} round {round}: {e}", b.name))
                        .requisition
                        .clone()
                })
                .collect();
            assert_ne!(numbers[0], numbers[1], "{} round {round}", b.name);
        }
        // Eight requisitions, numbered 1 to 8 with none skipped or shared.
        let mut all: Vec<String> = ["f1", "m1"]
            .iter()
            .flat_map(|p| orders::patient_orders(svc, &doctor(), p, 50).unwrap().0)
            .filter_map(|l| l.requisition)
            .collect();
        all.sort();
        let want: Vec<String> = (1..=8).map(|n| format!("R{n:07}")).collect();
        assert_eq!(all, want, "{}", b.name);

        // The same test for the same patient at the same moment: one is
        // placed, the other is warned of it.
        let gate = Barrier::new(2);
        let results: Vec<Result<orders::Placed, OrdersError>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let gate = &gate;
                    s.spawn(move || {
                        gate.wait();
                        orders::place_at(svc, &doctor(), cat, &order("f1", &["path-crp"]), T0)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let dup = results
            .iter()
            .filter(|r| matches!(r, Err(OrdersError::Duplicate(_))))
            .count();
        assert_eq!((ok, dup), (1, 1), "{}: {results:?}", b.name);
    }
}
