//! A search costs a bounded number of store round trips whatever the number
//! of `_include`s: one for the page (plus one for a total), one per include
//! round. Proven by counting the calls a search makes on a wrapped store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use wardline_core::{Body, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig};
use wardline_fhir::SearchQuery;
use wardline_store::audit::{AuditAnchor, AuditAppend, AuditQuery, AuditRow};
use wardline_store::{
    HistoryRequest, IncludeRequest, PageRequest, Reader, Result, SearchPage, Store, StoreTx,
    StoredResource,
};

/// Delegates to SQLite and counts every read-side call.
struct Counting {
    inner: wardline_store_sqlite::SqliteStore,
    calls: AtomicUsize,
}

impl Counting {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl Reader for Counting {
    fn read(&self, t: &str, id: &str) -> Result<Option<StoredResource>> {
        self.tick();
        self.inner.read(t, id)
    }
    fn read_many(&self, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
        self.tick();
        self.inner.read_many(keys)
    }
    fn search(&self, q: &SearchQuery, page: &PageRequest) -> Result<SearchPage> {
        self.tick();
        self.inner.search(q, page)
    }
    fn include(&self, req: &IncludeRequest) -> Result<Vec<StoredResource>> {
        self.tick();
        self.inner.include(req)
    }
    fn vread(&self, t: &str, id: &str, v: i64) -> Result<Option<StoredResource>> {
        self.tick();
        self.inner.vread(t, id, v)
    }
}

impl Store for Counting {
    fn backend(&self) -> &'static str {
        "counting"
    }
    fn watch_changes(&self, on_change: Box<dyn Fn() + Send + Sync>) -> Result<bool> {
        self.inner.watch_changes(on_change)
    }
    fn history(&self, req: &HistoryRequest) -> Result<Vec<StoredResource>> {
        self.tick();
        self.inner.history(req)
    }
    fn explain(&self, q: &SearchQuery, page: &PageRequest) -> Result<Vec<String>> {
        self.inner.explain(q, page)
    }
    fn begin(&self) -> Result<Box<dyn StoreTx + '_>> {
        self.inner.begin()
    }
    fn append_audit(&self, rows: &[AuditAppend]) -> Result<Vec<i64>> {
        self.inner.append_audit(rows)
    }
    fn scan_audit(&self, after_seq: i64, limit: usize) -> Result<Vec<AuditRow>> {
        self.inner.scan_audit(after_seq, limit)
    }
    fn scan_audit_patients(&self, after_seq: i64, upto_seq: i64) -> Result<Vec<(i64, String)>> {
        self.inner.scan_audit_patients(after_seq, upto_seq)
    }
    fn search_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        self.inner.search_audit(q)
    }
    fn audit_head(&self) -> Result<AuditAnchor> {
        self.inner.audit_head()
    }
    fn audit_anchor(&self) -> Result<Option<AuditAnchor>> {
        self.inner.audit_anchor()
    }
    fn purge_audit(&self, before_ms: i64) -> Result<u64> {
        self.inner.purge_audit(before_ms)
    }
    fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<String>> {
        self.inner.kv_get(namespace, key)
    }
    fn kv_list(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, String)>> {
        self.inner.kv_list(namespace, prefix)
    }
    fn kv_put(&self, namespace: &str, key: &str, value: &str) -> Result<()> {
        self.inner.kv_put(namespace, key, value)
    }
    fn kv_delete(&self, namespace: &str, key: &str) -> Result<bool> {
        self.inner.kv_delete(namespace, key)
    }
}

fn get(s: &FhirService, path: &str, query: &[(&str, &str)]) -> Value {
    let r = s.handle(
        FhirRequest {
            method: Method::Get,
            path: path.split('/').map(str::to_owned).collect(),
            query: query
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            headers: RequestHeaders::default(),
            body: None,
        },
        &wardline_core::Trusted::operator("test"),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    match r.body {
        Body::Raw(t) => serde_json::from_str(&t).unwrap(),
        Body::Json(v) => v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn includes_do_not_multiply_round_trips() {
    let store = Arc::new(Counting {
        inner: wardline_store_sqlite::SqliteStore::open_in_memory().unwrap(),
        calls: AtomicUsize::new(0),
    });
    let svc = FhirService::new(store.clone(), ServiceConfig::default());
    let bundle = wardline_demo::generate(3, 10);
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

    let cost = |query: &[(&str, &str)]| -> (usize, usize) {
        store.calls.store(0, Ordering::SeqCst);
        let b = get(&svc, "Encounter", query);
        (
            store.calls.load(Ordering::SeqCst),
            b["entry"].as_array().map_or(0, Vec::len),
        )
    };
    let (plain, n_plain) = cost(&[]);
    let (one, n_one) = cost(&[("_include", "Encounter:subject")]);
    let (many, n_many) = cost(&[
        ("_include", "Encounter:subject"),
        ("_include", "Encounter:location"),
        ("_include", "Encounter:participant"),
        ("_include", "Encounter:service-provider"),
        ("_revinclude", "Observation:encounter"),
        ("_revinclude", "Condition:encounter"),
    ]);
    assert_eq!(plain, 1, "a plain search is one store call");
    assert_eq!(one, 2, "one include adds one call");
    assert_eq!(many, 2, "six includes still add one call");
    assert!(
        n_plain < n_one && n_one < n_many,
        "{n_plain} {n_one} {n_many}"
    );
    // :iterate adds one call per round, bounded.
    let (iter, _) = cost(&[
        ("_include", "Encounter:location"),
        ("_include:iterate", "Location:partof"),
    ]);
    assert!(iter <= 2 + 3, "{iter} calls");
    // $everything: one page query and one include query per page.
    store.calls.store(0, Ordering::SeqCst);
    let b = get(&svc, "Patient/pat-0000/$everything", &[]);
    assert!(b["entry"].as_array().is_some_and(|e| e.len() > 5));
    // one existence read of the Patient, the page, the references.
    assert_eq!(store.calls.load(Ordering::SeqCst), 3);
}
