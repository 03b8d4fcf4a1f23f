//! An update whose content equals the current version (ignoring
//! `meta.versionId`/`meta.lastUpdated` and JSON member order) makes no new
//! version: 200 with the current version and ETag, no history entry, on
//! every write path (PUT, conditional PUT, transaction and batch entries, the
//! latter two saying so in the entry's `outcome`); it is still checked and
//! audited as an update, and write rules are not asked (nothing changes).
//! SQLite and PostgreSQL.

mod support;
use support::{json_of, put, request, respond};

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wardline_core::{FhirService, Method, ProposedWrite, RuleTx, ServiceConfig, WriteRule};
use wardline_fhir::FhirError;
use wardline_store::Store;

fn stores(test: &str) -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    support::stores(&format!("noop_{test}"))
}

fn history_len(svc: &FhirService, path: &str) -> usize {
    let (st, b) = request(svc, Method::Get, &format!("{path}/_history"), &[], None);
    assert_eq!(st, 200, "{b}");
    b["entry"].as_array().map_or(0, Vec::len)
}

/// (status, ETag, body) of a PUT.
fn put_etag(svc: &FhirService, path: &str, body: Value) -> (u16, Option<String>, Value) {
    let r = respond(svc, Method::Put, path, &[], Some(body));
    let (status, etag) = (r.status, r.etag.clone());
    (status, etag, json_of(r))
}

fn post_bundle(svc: &FhirService, b: Value) -> (u16, Value) {
    request(svc, Method::Post, "", &[], Some(b))
}

fn update_audits(svc: &FhirService) -> usize {
    let (st, b) = request(
        svc,
        Method::Get,
        "AuditEvent",
        &[("subtype", "update"), ("_count", "1000")],
        None,
    );
    assert_eq!(st, 200, "{b}");
    b["entry"].as_array().map_or(0, Vec::len)
}

#[test]
fn an_identical_put_returns_the_current_version_and_makes_no_new_one() {
    for (name, store, _dir) in stores("put") {
        let svc = FhirService::new(store, ServiceConfig::default());
        let v1 = json!({"resourceType": "Patient", "id": "p1", "active": true,
            "name": [{"family": "Same", "given": ["Ann"]}], "birthDate": "1970-01-02"});
        let (st, etag, _) = put_etag(&svc, "Patient/p1", v1.clone());
        assert_eq!((st, etag.as_deref()), (201, Some("W/\"1\"")), "[{name}]");

        // The same content, members in another order, with stale stamps.
        let again = json!({"birthDate": "1970-01-02", "name": [{"given": ["Ann"], "family": "Same"}],
            "meta": {"versionId": "7", "lastUpdated": "2001-01-01T00:00:00Z"},
            "id": "p1", "active": true, "resourceType": "Patient"});
        let audits = update_audits(&svc);
        let (st, etag, body) = put_etag(&svc, "Patient/p1", again);
        assert_eq!(st, 200, "[{name}] {body}");
        assert_eq!(etag.as_deref(), Some("W/\"1\""), "[{name}]");
        assert_eq!(body["meta"]["versionId"], "1", "[{name}]");
        assert_eq!(history_len(&svc, "Patient/p1"), 1, "[{name}]");
        assert_eq!(
            update_audits(&svc),
            audits + 1,
            "[{name}] the no-op update is audited"
        );

        // A real change makes version 2; repeating it does not make 3.
        let mut v2 = v1.clone();
        v2["active"] = json!(false);
        assert_eq!(
            put_etag(&svc, "Patient/p1", v2.clone()).1.as_deref(),
            Some("W/\"2\"")
        );
        let (st, etag, _) = put_etag(&svc, "Patient/p1", v2.clone());
        assert_eq!((st, etag.as_deref()), (200, Some("W/\"2\"")), "[{name}]");
        assert_eq!(history_len(&svc, "Patient/p1"), 2, "[{name}]");

        // Extra meta (a profile) is content: it makes a version.
        let mut v3 = v2.clone();
        v3["meta"] = json!({"tag": [{"system": "https://example.org/t", "code": "x"}]});
        assert_eq!(
            put_etag(&svc, "Patient/p1", v3.clone()).1.as_deref(),
            Some("W/\"3\"")
        );
        assert_eq!(
            put_etag(&svc, "Patient/p1", v3).1.as_deref(),
            Some("W/\"3\"")
        );

        // A deleted resource written again with its old content is revived.
        let (st, _) = request(&svc, Method::Delete, "Patient/p1", &[], None);
        assert_eq!(st, 204);
        let (st, etag, _) = put_etag(&svc, "Patient/p1", v2);
        assert_eq!((st, etag.as_deref()), (201, Some("W/\"5\"")), "[{name}]");
    }
}

#[test]
fn identical_bundle_entries_report_200_with_the_current_version() {
    for (name, store, _dir) in stores("bundle") {
        let svc = FhirService::new(store, ServiceConfig::default());
        let org = json!({"resourceType": "Organization", "id": "o1", "name": "Ward Trust"});
        for kind in ["transaction", "batch"] {
            let b = json!({"resourceType": "Bundle", "type": kind, "entry": [
                {"resource": org, "request": {"method": "PUT", "url": "Organization/o1"}}]});
            let (st, r) = post_bundle(&svc, b);
            assert_eq!(st, 200, "[{name}] {r}");
            let resp = &r["entry"][0]["response"];
            if kind == "transaction" {
                assert_eq!(resp["status"], "201 Created", "[{name}] {resp}");
                assert!(resp["outcome"].is_null(), "[{name}] {resp}");
            } else {
                assert_eq!(resp["status"], "200 OK", "[{name}] {kind} {resp}");
                assert_eq!(resp["etag"], "W/\"1\"", "[{name}] {kind} {resp}");
                let why = resp["outcome"]["issue"][0]["diagnostics"]
                    .as_str()
                    .unwrap_or_default();
                assert!(why.starts_with("unchanged"), "[{name}] {kind} {resp}");
            }
        }
        // And in a transaction, once it exists.
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": org, "request": {"method": "PUT", "url": "Organization/o1"}}]});
        let (_, r) = post_bundle(&svc, b);
        let resp = &r["entry"][0]["response"];
        assert_eq!(resp["status"], "200 OK", "[{name}] {resp}");
        assert_eq!(
            resp["location"], "Organization/o1/_history/1",
            "[{name}] {resp}"
        );
        assert!(
            resp["outcome"]["issue"][0]["diagnostics"]
                .as_str()
                .is_some_and(|d| d.starts_with("unchanged")),
            "[{name}] {resp}"
        );
        // A conditional update with identical content.
        let (st, b) = request(
            &svc,
            Method::Put,
            "Organization",
            &[("_id", "o1")],
            Some(org.clone()),
        );
        assert_eq!(st, 200, "[{name}] {b}");
        assert_eq!(b["meta"]["versionId"], "1", "[{name}] {b}");
        assert_eq!(history_len(&svc, "Organization/o1"), 1, "[{name}]");
    }
}

/// Refuses every change to a Patient that is not `active` any more (as a
/// lifecycle rule refuses changes to a closed record).
#[derive(Default)]
struct Closed {
    asked: Mutex<usize>,
}

impl WriteRule for Closed {
    fn watches(&self, t: &str) -> bool {
        t == "Patient"
    }
    fn check(&self, _tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        *self.asked.lock().unwrap() += 1;
        if w.current.is_some_and(|c| c["active"] == false) {
            return Err(
                FhirError::new(422, "business-rule", "the record is closed").at("Patient.active")
            );
        }
        Ok(())
    }
}

#[test]
fn a_rule_is_not_asked_about_a_no_op_but_refuses_a_change() {
    for (name, store, _dir) in stores("rule") {
        let rule = Arc::new(Closed::default());
        let svc = FhirService::new(store, ServiceConfig::default()).with_rule(rule.clone());
        let closed = json!({"resourceType": "Patient", "id": "c1", "active": false});
        put(&svc, closed.clone());
        let asked = *rule.asked.lock().unwrap();
        // Writing it again as it is: nothing changes, the rule is not asked.
        let (st, etag, _) = put_etag(&svc, "Patient/c1", closed.clone());
        assert_eq!((st, etag.as_deref()), (200, Some("W/\"1\"")), "[{name}]");
        assert_eq!(*rule.asked.lock().unwrap(), asked, "[{name}]");
        // A change is refused by the rule.
        let mut changed = closed;
        changed["gender"] = json!("female");
        let (st, _, body) = put_etag(&svc, "Patient/c1", changed);
        assert_eq!(st, 422, "[{name}] {body}");
        assert_eq!(history_len(&svc, "Patient/c1"), 1, "[{name}]");
    }
}
