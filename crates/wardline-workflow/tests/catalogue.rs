//! The order catalogue over a real store: SQLite always, PostgreSQL too when
//! `WARDLINE_TEST_PG_URL` is set (each test in a fresh schema). Import of
//! the demo seed, the write rule on REST and transactions, who may change
//! it, edits and retirement, and `interpret` over the loaded catalogue.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use wardline_auth::directory::{Directory, Position};
use wardline_auth::policy::{Policy, Principal};
use wardline_auth::rbac::Role;
use wardline_core::{
    Agent, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Trusted,
};
use wardline_workflow::orders::catalogue::{
    self, BASE, Catalogue, CatalogueError, Interpretation, LOINC,
};

struct Backend {
    name: &'static str,
    svc: Arc<FhirService>,
    _dir: Option<tempfile::TempDir>,
}

fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let mut out = vec![Backend {
        name: "sqlite",
        svc: Arc::new(wardline_workflow::with_rules(FhirService::new(
            Arc::new(sqlite),
            ServiceConfig::default(),
        ))),
        _dir: Some(dir),
    }];
    if let Some((pg, _, _)) = wardline_store_postgres::testenv::store(&format!("cat_{test}")) {
        out.push(Backend {
            name: "postgres",
            svc: Arc::new(wardline_workflow::with_rules(FhirService::new(
                Arc::new(pg),
                ServiceConfig::default(),
            ))),
            _dir: None,
        });
    }
    out
}

fn op() -> Trusted {
    Trusted::operator("catalogue-test")
}

fn seed() -> Value {
    wardline_demo::order_catalogue()
}

fn seeded(b: &Backend) -> Catalogue {
    catalogue::import(&b.svc, &op(), &seed()).unwrap();
    catalogue::load(&b.svc).unwrap()
}

fn policy(svc: &Arc<FhirService>, role: Role) -> Policy {
    let dir = Arc::new(Directory::open(svc.clone(), "trust").unwrap());
    let principal = Principal {
        agent: Agent {
            name: format!("{role}-user"),
            who: Some("Practitioner/p1".into()),
            position: Some("PractitionerRole/pos1".into()),
            ..Agent::default()
        },
        scopes: wardline_auth::scopes::ScopeSet::parse("user/*.cruds").unwrap(),
        position: Some(Position {
            id: "pos1".into(),
            practitioner: "p1".into(),
            role,
            organization: "trust".into(),
            locations: Vec::new(),
            active: true,
        }),
        patient: None,
        break_glass: HashMap::new(),
        system: false,
    };
    Policy::new(principal, dir)
}

fn post_bundle(svc: &FhirService, bundle: &Value) -> (u16, Value) {
    let r = svc.handle(
        FhirRequest {
            method: Method::Post,
            path: vec![],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(serde_json::to_vec(bundle).unwrap()),
        },
        &op(),
    );
    let body = match &r.body {
        wardline_core::Body::Json(v) => v.clone(),
        _ => Value::Null,
    };
    (r.status, body)
}

fn put(svc: &FhirService, r: &Value) -> (u16, String) {
    let t = r["resourceType"].as_str().unwrap();
    let id = r["id"].as_str().unwrap();
    let resp = svc.handle(
        FhirRequest {
            method: Method::Put,
            path: vec![t.to_owned(), id.to_owned()],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(serde_json::to_vec(r).unwrap()),
        },
        &op(),
    );
    (resp.status, format!("{:?}", resp.body))
}

#[test]
fn the_seed_imports_loads_and_imports_again_unchanged() {
    for b in backends("seed") {
        let n = seed()["entry"].as_array().unwrap().len();
        let first = catalogue::import(&b.svc, &op(), &seed()).unwrap();
        assert_eq!(first.created.len(), n, "{}", b.name);
        assert!(first.updated.is_empty());
        let c = catalogue::load(&b.svc).unwrap();
        assert_eq!(c.problems, Vec::<String>::new(), "{}", b.name);
        assert_eq!(c.orderables.len(), 34, "{}", b.name);
        assert!(c.sets.len() >= 3);
        let ue = c.orderable("path-ue").unwrap();
        let k = ue.analytes.iter().find(|a| a.has_code("2823-3")).unwrap();
        assert_eq!(k.interpret(6.8), Interpretation::CriticalHigh);
        assert_eq!(k.interpret(4.0), Interpretation::Normal);
        assert_eq!(c.set("sepsis-screen").unwrap().orderables.len(), 9);
        let cxr = c
            .by_url(&format!("{BASE}/ActivityDefinition/rad-cxr"))
            .unwrap();
        assert!(cxr.ionising && cxr.imaging);
        assert_eq!(cxr.modality.as_deref(), Some("CR"));
        // The same Bundle again changes nothing.
        let again = catalogue::import(&b.svc, &op(), &seed()).unwrap();
        assert_eq!(again.unchanged.len(), n, "{}", b.name);
        assert!(again.created.is_empty() && again.updated.is_empty());
        // A changed title is an update, and load sees it.
        let mut bundle = seed();
        let e = bundle["entry"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["resource"]["id"] == "path-crp")
            .unwrap();
        e["resource"]["title"] = json!("CRP (C-reactive protein)");
        let third = catalogue::import(&b.svc, &op(), &bundle).unwrap();
        assert_eq!(
            third.updated,
            vec!["ActivityDefinition/path-crp".to_owned()]
        );
        assert_eq!(
            catalogue::load(&b.svc)
                .unwrap()
                .orderable("path-crp")
                .unwrap()
                .title,
            "CRP (C-reactive protein)"
        );
    }
}

#[test]
fn a_wrong_bundle_is_refused_whole_with_the_entry_named() {
    for b in backends("refused") {
        let mut bundle = seed();
        let entries = bundle["entry"].as_array_mut().unwrap();
        let i = entries
            .iter()
            .position(|e| e["resource"]["id"] == "path-ue")
            .unwrap();
        // Potassium's critical high inside its reference range.
        let k = entries[i]["resource"]["contained"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["code"]["coding"][0]["code"] == "2823-3")
            .unwrap();
        k["qualifiedInterval"][1]["range"]["high"]["value"] = json!(5.0);
        let e = catalogue::import(&b.svc, &op(), &bundle).unwrap_err();
        assert_eq!(e.status(), 400);
        let m = e.message();
        assert!(
            m.contains(&format!("Entry {}", i + 1)) && m.contains("ActivityDefinition/path-ue"),
            "{m}"
        );
        assert!(
            m.contains("Potassium") && m.contains("critical high (5)"),
            "{m}"
        );
        // Nothing of it was written.
        let c = catalogue::load(&b.svc).unwrap();
        assert!(
            c.orderables.is_empty() && c.questionnaires.is_empty(),
            "{}",
            b.name
        );

        // An order set naming a test that is in neither the Bundle nor the store.
        let set = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {"resourceType": "PlanDefinition", "id": "x", "url": format!("{BASE}/PlanDefinition/x"),
                "title": "X", "status": "active",
                "type": {"coding": [{"code": "order-set"}]},
                "action": [{"definitionCanonical": format!("{BASE}/ActivityDefinition/nope")}]},
            "request": {"method": "PUT", "url": "PlanDefinition/x"}}]});
        let e = catalogue::import(&b.svc, &op(), &set).unwrap_err();
        assert!(e.message().contains("not in the catalogue"), "{e}");
        // Not a catalogue Bundle.
        let odd = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {"resourceType": "Patient", "id": "p"}, "request": {"method": "PUT", "url": "Patient/p"}}]});
        assert!(
            catalogue::import(&b.svc, &op(), &odd)
                .unwrap_err()
                .message()
                .contains("only Questionnaire, ActivityDefinition and PlanDefinition")
        );
    }
}

#[test]
fn rest_writes_pass_the_same_rule() {
    for b in backends("rest") {
        // The seed is importable as a plain FHIR transaction too.
        let (status, body) = post_bundle(&b.svc, &seed());
        assert_eq!(status, 200, "{}: {body}", b.name);
        let c = catalogue::load(&b.svc).unwrap();
        assert_eq!(c.orderables.len(), 34);
        // A PUT that breaks a rule is refused with the reason.
        let mut bad = c.orderable("path-fbc").unwrap().to_resource(None);
        bad.as_object_mut().unwrap().remove("specimenRequirement");
        let (status, body) = put(&b.svc, &bad);
        assert_eq!(status, 422, "{}: {body}", b.name);
        assert!(body.contains("needs its specimen"), "{body}");
        // A good one goes through, and load sees it.
        let mut good = c.orderable("path-fbc").unwrap().clone();
        good.retest_interval_hours = Some(12);
        let (status, body) = put(&b.svc, &good.to_resource(None));
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            catalogue::load(&b.svc)
                .unwrap()
                .orderable("path-fbc")
                .unwrap()
                .retest_interval_hours,
            Some(12)
        );
        // Questionnaires outside the catalogue's base are not its business.
        let other = json!({"resourceType": "Questionnaire", "id": "q1", "status": "active",
            "url": "http://example.org/fhir/Questionnaire/intake"});
        assert_eq!(put(&b.svc, &other).0, 201);
        // Nor are definitions of other systems (an official example's
        // protocol, an order set of another catalogue): stored, not loaded.
        let ad = json!({"resourceType": "ActivityDefinition", "id": "citalopramPrescription",
            "url": "http://example.org/fhir/ActivityDefinition/citalopram", "status": "draft",
            "kind": "MedicationRequest"});
        assert_eq!(put(&b.svc, &ad).0, 201);
        let pd = json!({"resourceType": "PlanDefinition", "id": "example-os", "status": "draft",
            "url": "http://example.org/fhir/PlanDefinition/os",
            "type": {"coding": [{"code": "order-set"}]},
            "action": [{"definitionCanonical": "http://example.org/fhir/ActivityDefinition/citalopram"}]});
        assert_eq!(put(&b.svc, &pd).0, 201);
        let after = catalogue::load(&b.svc).unwrap();
        assert!(after.problems.is_empty(), "{:?}", after.problems);
        assert!(
            after.orderable("citalopramPrescription").is_none()
                && after.set("example-os").is_none()
        );
    }
}

#[test]
fn only_catalogue_managers_change_it_and_all_staff_read_it() {
    for b in backends("access") {
        let doctor = policy(&b.svc, Role::Consultant);
        let e = catalogue::import(&b.svc, &doctor, &seed()).unwrap_err();
        assert!(
            matches!(e, CatalogueError::Forbidden(_)),
            "{}: {e:?}",
            b.name
        );
        let admin = policy(&b.svc, Role::SystemAdmin);
        catalogue::import(&b.svc, &admin, &seed()).unwrap();
        let lab = policy(&b.svc, Role::LaboratoryManager);
        catalogue::set_active(&b.svc, &lab, "ActivityDefinition", "path-esr", false).unwrap();
        assert!(matches!(
            catalogue::set_active(&b.svc, &doctor, "ActivityDefinition", "path-fbc", false),
            Err(CatalogueError::Forbidden(_))
        ));
        // Any member of staff reads a definition (audited, through the policy).
        let nurse = policy(&b.svc, Role::StaffNurse);
        let ad = catalogue::resource_as(&b.svc, &nurse, "ActivityDefinition", "path-fbc").unwrap();
        assert_eq!(ad["title"], "Full blood count (FBC)");
    }
}

#[test]
fn edits_retire_and_reinstate() {
    for b in backends("edits") {
        let c = seeded(&b);
        let admin = policy(&b.svc, Role::SystemAdmin);
        // Retire: kept, marked, out of the department's active list.
        catalogue::set_active(&b.svc, &admin, "ActivityDefinition", "rad-axr", false).unwrap();
        let after = catalogue::load(&b.svc).unwrap();
        assert!(!after.orderable("rad-axr").unwrap().active);
        assert!(after.department("radiology").all(|o| o.id != "rad-axr"));
        assert_eq!(after.orderables.len(), c.orderables.len());
        catalogue::set_active(&b.svc, &admin, "ActivityDefinition", "rad-axr", true).unwrap();
        assert!(
            catalogue::load(&b.svc)
                .unwrap()
                .orderable("rad-axr")
                .unwrap()
                .active
        );
        // Add a test; the id may not be taken twice.
        let mut new = c.orderable("path-mg").unwrap().clone();
        new.id = "path-zinc".into();
        new.url = format!("{BASE}/ActivityDefinition/path-zinc");
        new.title = "Zinc".into();
        new.code = json!({"coding": [{"system": catalogue::LOCAL_ORDERABLE, "code": "ZN", "display": "Zinc"}]});
        new.analytes[0].code = json!({"coding": [{"system": LOINC, "code": "5763-9"}]});
        new.analytes[0].display = "Zinc".into();
        new.analytes[0].unit = Some("umol/L".into());
        (new.analytes[0].low, new.analytes[0].high) = (Some(11.0), Some(24.0));
        new.analytes[0].critical_low = None;
        catalogue::save_orderable(&b.svc, &admin, &new, true).unwrap();
        let e = catalogue::save_orderable(&b.svc, &admin, &new, true).unwrap_err();
        assert!(e.message().contains("already used"), "{e}");
        let loaded = catalogue::load(&b.svc).unwrap();
        assert_eq!(loaded.orderable("path-zinc"), Some(&new));
        // An edit that breaks a rule is refused by the rule, naming it.
        let mut bad = new.clone();
        bad.analytes[0].critical_low = Some(15.0);
        let e = catalogue::save_orderable(&b.svc, &admin, &bad, false).unwrap_err();
        assert_eq!(e.status(), 400, "{e:?}");
        assert!(e.message().contains("inside its reference range"), "{e}");
        // Order sets: add one, its tests must exist.
        let mut set = c.set("chest-pain").unwrap().clone();
        set.id = "zinc-check".into();
        set.url = format!("{BASE}/PlanDefinition/zinc-check");
        set.title = "Zinc check".into();
        set.orderables = vec!["path-zinc".into(), "path-ue".into()];
        catalogue::save_order_set(&b.svc, &admin, &set, true).unwrap();
        assert_eq!(
            catalogue::load(&b.svc).unwrap().set("zinc-check"),
            Some(&set)
        );
        set.orderables.push("path-nothing".into());
        let e = catalogue::save_order_set(&b.svc, &admin, &set, false).unwrap_err();
        assert!(e.message().contains("not in the catalogue"), "{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Over every analyte of the catalogue as stored and loaded (on each
    /// backend): bands are monotone in the value, and a critical flag is
    /// abnormal.
    #[test]
    fn interpret_over_the_stored_catalogue(pairs in proptest::collection::vec((0usize..1000, -1000.0f64..2000.0, -1000.0f64..2000.0), 32)) {
        thread_local! {
            static LOADED: Vec<(&'static str, Catalogue)> = backends("interpret")
                .into_iter()
                .map(|b| {
                    let c = seeded(&b);
                    (b.name, c)
                })
                .collect();
        }
        LOADED.with(|all| {
            for (name, c) in all {
                let analytes: Vec<_> = c.orderables.iter().flat_map(|o| o.analytes.iter()).collect();
                prop_assert!(analytes.len() > 40, "{name}");
                for (i, x, y) in &pairs {
                    let a = analytes[i % analytes.len()];
                    let (lo, hi) = (x.min(*y), x.max(*y));
                    for a in [a.clone(), a.for_sex(Some("male")), a.for_sex(Some("female"))] {
                        let (f, g) = (a.interpret(lo), a.interpret(hi));
                        prop_assert!(f <= g, "{name} {}: {lo} → {f:?}, {hi} → {g:?}", a.display);
                        prop_assert!(!g.is_critical() || g.is_abnormal());
                        if let (Some(l), Some(h)) = (a.low, a.high) {
                            let mid = (l + h) / 2.0;
                            prop_assert_eq!(a.interpret(mid), Interpretation::Normal);
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
}
