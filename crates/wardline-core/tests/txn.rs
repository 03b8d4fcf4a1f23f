//! `FhirService::transact` and write hooks: all-or-nothing, hooks see each
//! changed resource once (first before, last after) from every write path and
//! write in the same transaction. (Merging patients is a workflow:
//! `wardline-workflow` `pmi::merge`, tested there.)

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wardline_core::{
    Change, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Tx, WriteHook,
};
use wardline_fhir::FhirError;

fn service(hooks: Vec<Arc<dyn WriteHook>>) -> FhirService {
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().unwrap();
    let mut svc = FhirService::new(Arc::new(store), ServiceConfig::default());
    for h in hooks {
        svc = svc.with_hook(h);
    }
    svc
}

fn patient(nhs: &str, family: &str) -> Value {
    json!({"resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"family": family}]})
}

/// Records what it saw; for every Patient change writes a Communication
/// noting it, in the same transaction.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Change>>,
    fail: bool,
}

impl WriteHook for Recorder {
    fn watches(&self, t: &str) -> bool {
        t == "Patient"
    }
    fn before_commit(&self, tx: &mut Tx<'_>, changes: &[Change]) -> Result<(), FhirError> {
        self.seen.lock().unwrap().extend(changes.iter().cloned());
        if self.fail {
            return Err(FhirError::internal("hook failed"));
        }
        for c in changes {
            tx.save(
                json!({"resourceType": "Communication", "status": "completed",
                "about": [{"reference": format!("Patient/{}", c.id)}]}),
            )?;
        }
        Ok(())
    }
}

fn count(svc: &FhirService, t: &str) -> u64 {
    let r = svc.handle(
        FhirRequest {
            method: Method::Get,
            path: vec![t.into()],
            query: vec![("_summary".into(), "count".into())],
            headers: RequestHeaders::default(),
            body: None,
        },
        &wardline_core::Trusted::operator("test"),
    );
    let v: Value = match r.body {
        wardline_core::Body::Json(v) => v,
        wardline_core::Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        other => panic!("no body: {other:?}"),
    };
    v["total"].as_u64().unwrap()
}

#[test]
fn transact_commits_all_or_nothing() {
    let svc = service(vec![]);
    let id = svc
        .transact(&wardline_core::Trusted::operator("test"), |tx| {
            let p = tx.save(patient("9434765919", "Smith"))?;
            assert!(p.created);
            // Reads see the transaction's own writes.
            assert_eq!(tx.get("Patient", &p.id)?.unwrap()["name"][0]["family"], "Smith");
            let found = tx.find("Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919")?;
            assert_eq!(found.len(), 1);
            tx.save(json!({"resourceType": "Encounter", "status": "in-progress",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": format!("Patient/{}", p.id)}}))?;
            Ok(p.id)
        })
        .unwrap();
    assert_eq!(count(&svc, "Encounter"), 1);

    // An error after some saves rolls all of them back.
    let err = svc
        .transact(&wardline_core::Trusted::operator("test"), |tx| {
            tx.save(patient("9434765870", "Jones"))?;
            tx.save(json!({"resourceType": "Encounter", "status": 5}))?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(err.status, 400, "{err}");
    assert_eq!(count(&svc, "Patient"), 1);
    assert_eq!(count(&svc, "Encounter"), 1);

    // An update keeps the id and bumps the version.
    let v = svc
        .transact(&wardline_core::Trusted::operator("test"), |tx| {
            let mut p = tx.get("Patient", &id)?.unwrap();
            p["name"][0]["family"] = json!("Smyth");
            Ok(tx.save(p)?.version)
        })
        .unwrap();
    assert_eq!(v, 2);
}

#[test]
fn hooks_see_every_write_path_once_and_write_in_the_same_transaction() {
    let rec = Arc::new(Recorder::default());
    let svc = service(vec![rec.clone()]);
    // REST create.
    let r = svc.handle(
        FhirRequest {
            method: Method::Post,
            path: vec!["Patient".into()],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(patient("9434765919", "Smith").to_string().into_bytes()),
        },
        &wardline_core::Trusted::operator("test"),
    );
    assert_eq!(r.status, 201);
    // A transaction writing the same patient twice through Tx: one change.
    svc.transact(&wardline_core::Trusted::operator("test"), |tx| {
        let p = tx.save(patient("9434765870", "Jones"))?;
        let mut v = p.resource;
        v["name"][0]["family"] = json!("Jones-Smith");
        tx.save(v)?;
        // Not watched: not shown to the hook.
        tx.save(json!({"resourceType": "Organization", "name": "RWG"}))?;
        Ok(())
    })
    .unwrap();
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].before.is_none() && seen[0].after.is_some());
    let after: Value = serde_json::from_str(seen[1].after.as_deref().unwrap()).unwrap();
    assert_eq!(after["name"][0]["family"], "Jones-Smith");
    assert!(seen[1].before.is_none(), "first before of the transaction");
    assert_eq!(count(&svc, "Communication"), 2);

    // A transaction Bundle (the REST path) is seen too, with its before.
    let id = seen[0].id.clone();
    let mut p = patient("9434765919", "Smith");
    p["id"] = json!(id);
    p["gender"] = json!("female");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": p, "request": {"method": "PUT", "url": format!("Patient/{id}")}}]});
    let r = svc.handle(
        FhirRequest {
            method: Method::Post,
            path: vec![],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(bundle.to_string().into_bytes()),
        },
        &wardline_core::Trusted::operator("test"),
    );
    assert_eq!(r.status, 200);
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen[2].before.as_deref().unwrap().contains("Smith"));
    assert!(!seen[2].before.as_deref().unwrap().contains("female"));
    assert_eq!(count(&svc, "Communication"), 3);

    // A REST delete: after is None.
    let r = svc.handle(
        FhirRequest {
            method: Method::Delete,
            path: vec!["Patient".into(), id.clone()],
            query: vec![],
            headers: RequestHeaders::default(),
            body: None,
        },
        &wardline_core::Trusted::operator("test"),
    );
    assert_eq!(r.status, 204);
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(seen[3].after.is_none() && seen[3].before.is_some());
}

#[test]
fn a_failing_hook_aborts_the_write() {
    let rec = Arc::new(Recorder {
        fail: true,
        ..Recorder::default()
    });
    let svc = service(vec![rec]);
    let r = svc.handle(
        FhirRequest {
            method: Method::Post,
            path: vec!["Patient".into()],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(patient("9434765919", "Smith").to_string().into_bytes()),
        },
        &wardline_core::Trusted::operator("test"),
    );
    assert_eq!(r.status, 500);
    assert_eq!(count(&svc, "Patient"), 0);
}

#[test]
fn change_count_grows_after_each_committed_write_from_every_path() {
    let svc = service(vec![]);
    let op = wardline_core::Trusted::operator("test");
    assert_eq!(svc.change_count(), 0);
    let req = |method: Method, path: Vec<String>, body: Option<Value>| FhirRequest {
        method,
        path,
        query: vec![],
        headers: RequestHeaders::default(),
        body: body.map(|b| b.to_string().into_bytes()),
    };
    // REST create.
    let r = svc.handle(
        req(
            Method::Post,
            vec!["Patient".into()],
            Some(patient("9434765919", "Smith")),
        ),
        &op,
    );
    assert_eq!(r.status, 201);
    assert_eq!(svc.change_count(), 1);
    // Reads and searches change nothing.
    let r = svc.handle(req(Method::Get, vec!["Patient".into()], None), &op);
    assert_eq!(r.status, 200);
    assert_eq!(svc.change_count(), 1);
    // A transaction Bundle of two writes is one commit.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("9434765870", "Jones"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Organization", "name": "RWG"}, "request": {"method": "POST", "url": "Organization"}}]});
    let r = svc.handle(req(Method::Post, vec![], Some(bundle)), &op);
    assert_eq!(r.status, 200);
    assert_eq!(svc.change_count(), 2);
    // A service transaction (workflows, the HL7 engine).
    svc.transact(&op, |tx| {
        tx.save(json!({"resourceType": "Organization", "name": "Other"}))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(svc.change_count(), 3);
    // A transaction that writes nothing, or fails, does not count.
    svc.transact(&op, |tx| {
        tx.find("Patient", "family=Smith")?;
        Ok(())
    })
    .unwrap();
    let failed = svc.transact(&op, |tx| {
        tx.save(json!({"resourceType": "Organization", "name": "Lost"}))?;
        Err::<(), _>(FhirError::invalid("changed my mind"))
    });
    assert!(failed.is_err());
    let r = svc.handle(
        req(
            Method::Post,
            vec!["Patient".into()],
            Some(json!({"resourceType": "Patient", "gender": 7})),
        ),
        &op,
    );
    assert_eq!(r.status, 400);
    assert_eq!(svc.change_count(), 3);
}

/// `Tx::vread` reads an earlier version through the transaction's own
/// connection: on the embedded store (one connection, held by the open
/// transaction) reading through the store instead waited on itself for
/// ever — a correction of a result, which reads the values it replaces,
/// hung. The read runs on a thread so that a regression fails the test
/// (after a generous bound) instead of hanging the suite.
#[test]
fn vread_inside_a_transaction_reads_through_it() {
    let (done, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let svc = service(vec![]);
        let op = wardline_core::Trusted::operator("test");
        let v1 = svc
            .transact(&op, |tx| tx.save(patient("9434765919", "Earlier")))
            .unwrap();
        let id = v1.id.clone();
        let seen = svc
            .transact(&op, |tx| {
                let mut p = tx.get("Patient", &id)?.unwrap();
                p["name"] = json!([{"family": "Later"}]);
                tx.save(p)?;
                let before = tx.vread("Patient", &id, 1)?.unwrap();
                let now = tx.vread("Patient", &id, 2)?.unwrap();
                Ok((
                    before["name"][0]["family"].clone(),
                    now["name"][0]["family"].clone(),
                ))
            })
            .unwrap();
        let _ = done.send(seen);
    });
    let (before, now) = got
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("vread inside a transaction waited on its own connection");
    assert_eq!(before, json!("Earlier"));
    assert_eq!(now, json!("Later"));
}

/// `Tx::find` returns every match, page by page past the service's maximum
/// page size (a rule counting matches is never cut short), in the default
/// order or the query's `_sort`; an explicit `_count` is the caller's limit.
#[test]
fn find_reads_every_match_past_the_page_size() {
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().unwrap();
    let svc = FhirService::new(
        Arc::new(store),
        ServiceConfig {
            max_count: 3,
            ..ServiceConfig::default()
        },
    );
    let op = wardline_core::Trusted::operator("test");
    let families = ["Ng", "Adams", "Khan", "Brown", "Zhou", "Evans", "Ito"];
    svc.transact(&op, |tx| {
        for f in families {
            tx.save(
                json!({"resourceType": "Patient", "gender": "unknown", "name": [{"family": f}]}),
            )?;
        }
        Ok(())
    })
    .unwrap();
    svc.transact(&op, |tx| {
        let all = tx.find("Patient", "gender=unknown")?;
        assert_eq!(all.len(), 7, "past a page size of 3");
        let names = |v: &[Value]| -> Vec<String> {
            v.iter()
                .map(|p| p["name"][0]["family"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names(&all), families, "creation order");
        let sorted = tx.find("Patient", "gender=unknown&_sort=family")?;
        let mut want: Vec<&str> = families.to_vec();
        want.sort_unstable();
        assert_eq!(names(&sorted), want, "the query's order, every page");
        assert_eq!(
            tx.find("Patient", "gender=unknown&_count=2")?.len(),
            2,
            "the caller's limit"
        );
        Ok(())
    })
    .unwrap();
}
