//! The formulary over a real store: SQLite always, PostgreSQL too when
//! `WARDLINE_TEST_PG_URL` is set. Import of the starter file, re-import
//! updating and withdrawing, a bad file changing nothing and naming its
//! line, who may import, and the write rule refusing a malformed
//! formulary `Medication` on REST and in a transaction.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use wardline_auth::directory::{Directory, Position};
use wardline_auth::policy::{Policy, Principal};
use wardline_auth::rbac::Role;
use wardline_core::{
    Agent, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Trusted,
};
use wardline_workflow::medicines::formulary::{self, ImportError};
use wardline_workflow::medicines::{FORMULARY_EXT, LOCAL_MEDICINE_SYSTEM};

struct Backend {
    name: &'static str,
    svc: Arc<FhirService>,
    /// The database under `svc`, for a second server over it.
    store: Arc<dyn wardline_store::Store>,
    _dir: Option<tempfile::TempDir>,
}

fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn wardline_store::Store> =
        Arc::new(wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap());
    let mut out = vec![Backend {
        name: "sqlite",
        svc: Arc::new(wardline_workflow::with_rules(FhirService::new(
            sqlite.clone(),
            ServiceConfig::default(),
        ))),
        store: sqlite,
        _dir: Some(dir),
    }];
    if let Some((pg, _, _)) = wardline_store_postgres::testenv::store(&format!("form_{test}")) {
        let pg: Arc<dyn wardline_store::Store> = Arc::new(pg);
        out.push(Backend {
            name: "postgres",
            svc: Arc::new(wardline_workflow::with_rules(FhirService::new(
                pg.clone(),
                ServiceConfig::default(),
            ))),
            store: pg,
            _dir: None,
        });
    }
    out
}

fn op() -> Trusted {
    Trusted::operator("formulary-test")
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

fn put(svc: &FhirService, r: &Value) -> (u16, String) {
    let resp = svc.handle(
        FhirRequest {
            method: Method::Put,
            path: vec![
                "Medication".to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            ],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(serde_json::to_vec(r).unwrap()),
        },
        &op(),
    );
    (resp.status, format!("{:?}", resp.body))
}

const STARTER: &str = wardline_demo::FORMULARY;

/// The starter file without its rows naming `drop`, and with `edit` applied
/// to the rest.
fn variant(drop: &str, edit: impl Fn(&str) -> String) -> String {
    STARTER
        .lines()
        .filter(|l| !l.contains(drop))
        .map(|l| edit(l) + "\n")
        .collect()
}

#[test]
fn the_starter_imports_and_imports_again_unchanged() {
    for b in backends("starter") {
        let r = formulary::import(&b.svc, &op(), STARTER, "formulary.csv").unwrap();
        assert!(r.added.len() >= 150, "{}: {}", b.name, r.added.len());
        assert!(r.changed.is_empty() && r.withdrawn.is_empty());
        let f = formulary::load(&b.svc).unwrap();
        assert_eq!(f.entries.len(), r.added.len());
        let tab = f.entry("med-42109611000001109").unwrap();
        assert_eq!(tab.name(), "Paracetamol 500mg tablets");
        assert!(!tab.is_local());
        assert_eq!(tab.vtm.code, "90332006");
        assert!(f.of_vtm("90332006").count() >= 4);
        let local = f.search("paracetamol suppositories");
        assert_eq!(local.len(), 1);
        assert!(local[0].is_local());
        assert_eq!(local[0].vmp.system, LOCAL_MEDICINE_SYSTEM);
        // Search: prefix first, brands found, withdrawn never.
        assert_eq!(f.search("amox")[0].vtm.display, "Amoxicillin");
        assert!(
            f.search("laxido")
                .iter()
                .any(|e| e.name().starts_with("Macrogol"))
        );
        assert!(f.search("").is_empty());
        let again = formulary::import(&b.svc, &op(), STARTER, "formulary.csv").unwrap();
        assert!(again.added.is_empty() && again.changed.is_empty() && again.withdrawn.is_empty());
        assert_eq!(again.unchanged, r.added.len(), "{}", b.name);
    }
}

/// The formulary is kept in memory between reads (`load_shared`), and any
/// change to a `Medication` — by an import, by REST, through another server
/// sharing the database — is read at the next load: the write gives the
/// formulary a new generation in its own transaction.
#[test]
fn the_formulary_kept_in_memory_is_read_again_after_any_change() {
    for b in backends("cache") {
        formulary::import(&b.svc, &op(), STARTER, "formulary.csv").unwrap();
        let first = formulary::load_shared(&b.svc).unwrap();
        let again = formulary::load_shared(&b.svc).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "{}: read twice", b.name);
        let tab = first.entry("med-42109611000001109").unwrap().clone();
        assert!(!tab.high_risk, "{}", b.name);

        // A second server over the same database.
        let other = Arc::new(wardline_workflow::with_rules(FhirService::new(
            b.store.clone(),
            ServiceConfig::default(),
        )));
        assert_eq!(
            formulary::load_shared(&other).unwrap().entries.len(),
            first.entries.len()
        );

        // A change over REST on the first is seen by both.
        let mut med = b
            .svc
            .read_as(&op(), "Medication", "med-42109611000001109")
            .unwrap()
            .unwrap();
        med["code"]["coding"][0]["display"] = json!("Paracetamol 500mg tablets (changed)");
        let (status, body) = put(&b.svc, &med);
        assert_eq!(status, 200, "{}: {body}", b.name);
        for svc in [&b.svc, &other] {
            let f = formulary::load_shared(svc).unwrap();
            assert!(!Arc::ptr_eq(&f, &first), "{}", b.name);
            assert_eq!(
                f.entry("med-42109611000001109").unwrap().name(),
                "Paracetamol 500mg tablets (changed)",
                "{}",
                b.name
            );
        }
        // A withdrawal by re-import, made on the other server, likewise.
        formulary::import(
            &other,
            &op(),
            &variant("42109611000001109", |l| l.to_owned()),
            "formulary.csv",
        )
        .unwrap();
        let f = formulary::load(&b.svc).unwrap();
        assert!(
            f.search("paracetamol 500mg tablets")
                .iter()
                .all(|e| e.id != "med-42109611000001109"),
            "{}: withdrawn",
            b.name
        );
    }
}

#[test]
fn a_reimport_updates_withdraws_and_reinstates_never_deleting() {
    for b in backends("reimport") {
        formulary::import(&b.svc, &op(), STARTER, "formulary.csv").unwrap();
        let f = formulary::load(&b.svc).unwrap();
        let warfarin = f.search("warfarin 5mg")[0].clone();
        let ibu = f.search("ibuprofen 400mg")[0].clone();
        // Warfarin 5mg is dropped; ibuprofen 400mg's default dose changes.
        let text = variant("Warfarin 5mg tablets", |l| {
            if l.contains("Ibuprofen 400mg tablets") {
                l.replace(",400 mg,three times a day", ",200 mg,three times a day")
            } else {
                l.to_owned()
            }
        });
        let r = formulary::import(&b.svc, &op(), &text, "v2.csv").unwrap();
        assert_eq!(
            r.withdrawn
                .iter()
                .map(|x| x.id.as_str())
                .collect::<Vec<_>>(),
            vec![warfarin.id.as_str()],
            "{}",
            b.name
        );
        assert_eq!(r.changed.len(), 1);
        assert_eq!(r.changed[0].id, ibu.id);
        assert!(r.added.is_empty());
        let f = formulary::load(&b.svc).unwrap();
        // Withdrawn: still there (charts name it), inactive, not offered.
        let w = f.entry(&warfarin.id).unwrap();
        assert!(!w.active);
        assert!(f.search("warfarin 5mg").is_empty());
        assert_eq!(f.search_all("warfarin 5mg", true).len(), 1);
        let stored = b
            .svc
            .system_reader()
            .read("Medication", &warfarin.id)
            .unwrap();
        assert!(stored.is_some());
        assert_eq!(
            f.entry(&ibu.id)
                .unwrap()
                .default_dose
                .as_ref()
                .unwrap()
                .value,
            200.0
        );
        // Back in the file: offered again.
        let r = formulary::import(&b.svc, &op(), STARTER, "formulary.csv").unwrap();
        assert_eq!(r.changed.len(), 2, "{}: {r:?}", b.name);
        assert!(
            formulary::load(&b.svc)
                .unwrap()
                .entry(&warfarin.id)
                .unwrap()
                .active
        );
    }
}

#[test]
fn a_bad_file_changes_nothing_and_names_the_line() {
    for b in backends("bad") {
        formulary::import(&b.svc, &op(), STARTER, "formulary.csv").unwrap();
        let before = formulary::load(&b.svc).unwrap();
        // Drop a medicine (which would withdraw it) and break a later line.
        let bad = variant("Warfarin 5mg tablets", |l| {
            if l.contains("Ibuprofen 400mg tablets") {
                l.replace(",26643006,", ",1234,")
            } else {
                l.to_owned()
            }
        });
        let line = bad
            .lines()
            .position(|l| l.contains("Ibuprofen 400mg tablets"))
            .unwrap()
            + 1;
        let err = formulary::import(&b.svc, &op(), &bad, "formulary.csv").unwrap_err();
        let ImportError::File(problems) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            problems[0],
            format!(
                "formulary.csv line {line}: routes: '1234' is not a known route code (SNOMED CT; see docs/formulary-format.md)"
            ),
            "{}",
            b.name
        );
        assert_eq!(err.status(), 400);
        let after = formulary::load(&b.svc).unwrap();
        assert_eq!(before.entries, after.entries, "{}", b.name);
        // An empty file would withdraw everything: refused.
        let header = STARTER
            .lines()
            .find(|l| l.starts_with("code_system"))
            .unwrap();
        assert!(formulary::import(&b.svc, &op(), header, "empty.csv").is_err());
        assert_eq!(formulary::load(&b.svc).unwrap().entries, before.entries);
    }
}

#[test]
fn only_formulary_managers_import() {
    for b in backends("who") {
        let nurse = policy(&b.svc, Role::StaffNurse);
        let err = formulary::import(&b.svc, &nurse, STARTER, "formulary.csv").unwrap_err();
        assert_eq!(err.status(), 403, "{}: {err}", b.name);
        assert!(formulary::load(&b.svc).unwrap().entries.is_empty());
        let pharmacist = policy(&b.svc, Role::Pharmacist);
        let r = formulary::import(&b.svc, &pharmacist, STARTER, "formulary.csv").unwrap();
        assert!(r.added.len() >= 150);
    }
}

#[test]
fn the_write_rule_refuses_a_malformed_formulary_medication() {
    for b in backends("rule") {
        formulary::import(&b.svc, &op(), STARTER, "formulary.csv").unwrap();
        let good = b
            .svc
            .system_reader()
            .read("Medication", "med-42109611000001109")
            .unwrap()
            .unwrap();
        let good: Value = serde_json::from_str(&good.json).unwrap();
        let ext = |m: &mut Value| -> Vec<Value> {
            m["extension"][0]["extension"].as_array().unwrap().clone()
        };
        let set_subs = |m: &mut Value, subs: Vec<Value>| {
            m["extension"][0]["extension"] = Value::Array(subs);
        };
        // No VTM.
        let mut m = good.clone();
        let subs: Vec<Value> = ext(&mut m)
            .into_iter()
            .filter(|s| s["url"] != "vtm")
            .collect();
        set_subs(&mut m, subs);
        let (status, body) = put(&b.svc, &m);
        assert_eq!(status, 422, "{}: {body}", b.name);
        assert!(
            body.contains("extension('vtm')") && body.contains("VTM"),
            "{body}"
        );
        // A bad schedule.
        let mut m = good.clone();
        let mut subs = ext(&mut m);
        subs.push(json!({"url": "controlledDrug", "valueString": "7"}));
        set_subs(&mut m, subs);
        let (status, body) = put(&b.svc, &m);
        assert_eq!(status, 422);
        assert!(body.contains("controlledDrug"), "{body}");
        // An unknown route.
        let mut m = good.clone();
        let mut subs = ext(&mut m);
        subs.push(json!({"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": "1234"}}));
        set_subs(&mut m, subs);
        let (status, body) = put(&b.svc, &m);
        assert_eq!(status, 422);
        assert!(body.contains("'1234' is not a known route code"), "{body}");
        // A local code passed off as dm+d.
        let mut m = good.clone();
        m["id"] = json!("med-L9999");
        m["code"]["coding"][0]["code"] = json!("L9999");
        let (status, body) = put(&b.svc, &m);
        assert_eq!(status, 422);
        assert!(body.contains("Medication.code"), "{body}");
        // In a transaction too (the rule is the core's, on every path).
        let operator = op();
        let mut tx = b.svc.begin(&operator).unwrap();
        let mut m = good.clone();
        m["status"] = json!("entered-in-error");
        assert!(tx.save(m).is_err());
        drop(tx);
        // A well-formed change, and a Medication that is not the
        // formulary's, pass.
        let mut m = good.clone();
        m["status"] = json!("inactive");
        assert_eq!(put(&b.svc, &m).0, 200);
        let gp = json!({"resourceType": "Medication", "id": "gp-med", "code": {"text": "Something from a GP record"}});
        assert_eq!(put(&b.svc, &gp).0, 201);
        let f = formulary::load(&b.svc).unwrap();
        assert!(f.entry("gp-med").is_none());
        assert!(!f.entry("med-42109611000001109").unwrap().active);
        // And the import leaves the non-formulary one alone.
        formulary::import(&b.svc, &op(), STARTER, "formulary.csv").unwrap();
        assert!(
            b.svc
                .system_reader()
                .read("Medication", "gp-med")
                .unwrap()
                .is_some()
        );
        let _ = FORMULARY_EXT;
    }
}
