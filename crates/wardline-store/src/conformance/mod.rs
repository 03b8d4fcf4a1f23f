//! The conformance suite every backend runs: plain functions over `&dyn Store`
//! with hand-built index entries and hand-computed expectations. Test
//! support, compiled only with the `conformance` feature (the backends'
//! dev-dependencies turn it on); it panics on the first difference.
//!
//! Each case writes resources of its own resource type name space (unique ids
//! per case) so the cases can share one store.
// A test suite: it panics on the first difference.
#![allow(clippy::unwrap_used)]

use wardline_fhir::definitions::SearchParamType;
use wardline_fhir::search::{
    Filter, FilterKind, Predicate, Prefix, SearchQuery, SortKey, StringMatch, TokenSystem, UriMatch,
};
use wardline_fhir::{IndexEntry, IndexValue};

use crate::audit::{self, AuditAnchor, AuditAppend, AuditQuery, AuditRow};
use crate::{
    HistoryRequest, HistoryScope, PageRequest, ResourceWrite, Store, StoreError, WriteMethod,
};

mod audit_kv;
mod canonical_reindex;
// issue 21: group commit
mod group;
pub use audit_kv::*;
pub use canonical_reindex::*;
pub use group::concurrent_commits_one_fails;

/// Runs every case.
pub fn run_all(store: &dyn Store) {
    write_read_vread_history(store);
    version_conflicts_write_nothing(store);
    rollback_on_drop(store);
    delete_then_recreate(store);
    search_predicates(store);
    paging_is_stable(store);
    index_replaced_on_update(store);
    history_scopes(store);
    conflict_in_multi_write_tx_writes_nothing(store);
    more_predicates_sort_and_paging(store);
    chains_has_and_includes(store);
    canonical_references(store);
    reindex_replaces_index_rows(store);
    audit_append_in_and_out_of_transactions(store);
    audit_search(store);
    audit_concurrent_appends(store);
    kv_put_get_list_delete(store);
    locks_are_released_at_commit_and_rollback(store);
    concurrent_commits_one_fails(store);
    // Last: it purges the rows of the cases before it.
    audit_purge(store);
}

fn token(param: &str, system: &str, code: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::Token {
            system: Some(system.into()),
            code: Some(code.into()),
            text: None,
        },
        group: None,
    }
}

fn write(
    store: &dyn Store,
    rtype: &str,
    id: &str,
    expected: Option<i64>,
    index: Vec<IndexEntry>,
    patient: Option<&str>,
) -> Result<(), StoreError> {
    let version = expected.unwrap_or(0) + 1;
    let mut tx = store.begin()?;
    tx.write(ResourceWrite {
        resource_type: rtype.into(),
        id: id.into(),
        expected_version: expected,
        version,
        last_updated_ms: 1_000 * version,
        method: if expected.is_some() {
            WriteMethod::Update
        } else {
            WriteMethod::Create
        },
        json: format!(r#"{{"resourceType":"{rtype}","id":"{id}","v":{version}}}"#),
        patient_key: patient.map(str::to_owned),
        index,
    })?;
    tx.commit()
}

fn query(rtype: &str, filters: Vec<Filter>) -> SearchQuery {
    SearchQuery {
        resource_type: Some(rtype.into()),
        filters,
        ..SearchQuery::default()
    }
}

fn ids(store: &dyn Store, q: &SearchQuery) -> Vec<String> {
    let page = store
        .search(
            q,
            &PageRequest {
                count: 100,
                ..PageRequest::default()
            },
        )
        .expect("search");
    page.resources.into_iter().map(|r| r.id).collect()
}

pub fn write_read_vread_history(store: &dyn Store) {
    write(store, "Basic", "h1", None, vec![], None).unwrap();
    write(store, "Basic", "h1", Some(1), vec![], None).unwrap();
    let cur = store.read("Basic", "h1").unwrap().unwrap();
    assert_eq!(cur.version, 2);
    assert!(cur.json.contains("\"v\":2"));
    let v1 = store.vread("Basic", "h1", 1).unwrap().unwrap();
    assert!(v1.json.contains("\"v\":1"));
    assert!(store.vread("Basic", "h1", 3).unwrap().is_none());
    let h = store
        .history(&HistoryRequest {
            scope: HistoryScope::Instance("Basic".into(), "h1".into()),
            since_ms: None,
            before_ms: None,
            before_seq: None,
            count: 10,
        })
        .unwrap();
    assert_eq!(h.iter().map(|r| r.version).collect::<Vec<_>>(), vec![2, 1]);
    // Keyset paging of history.
    let older = store
        .history(&HistoryRequest {
            scope: HistoryScope::Instance("Basic".into(), "h1".into()),
            since_ms: None,
            before_ms: None,
            before_seq: Some(h[0].seq),
            count: 10,
        })
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].version, 1);
    let many = store
        .read_many(&[
            ("Basic".into(), "h1".into()),
            ("Basic".into(), "nope".into()),
        ])
        .unwrap();
    assert_eq!(many.len(), 1);
}

pub fn version_conflicts_write_nothing(store: &dyn Store) {
    write(store, "Basic", "c1", None, vec![], None).unwrap();
    let e = write(store, "Basic", "c1", None, vec![], None).unwrap_err();
    assert!(matches!(e, StoreError::VersionConflict { .. }), "{e}");
    write(store, "Basic", "c1", Some(1), vec![], None).unwrap();
    let e = write(store, "Basic", "c1", Some(1), vec![], None).unwrap_err();
    assert!(matches!(e, StoreError::VersionConflict { .. }));
    assert_eq!(store.read("Basic", "c1").unwrap().unwrap().version, 2);
}

pub fn rollback_on_drop(store: &dyn Store) {
    {
        let mut tx = store.begin().unwrap();
        tx.write(ResourceWrite {
            resource_type: "Basic".into(),
            id: "rb1".into(),
            expected_version: None,
            version: 1,
            last_updated_ms: 1,
            method: WriteMethod::Create,
            json: "{}".into(),
            patient_key: None,
            index: vec![],
        })
        .unwrap();
        assert!(
            tx.read("Basic", "rb1").unwrap().is_some(),
            "tx sees its own write"
        );
    }
    assert!(store.read("Basic", "rb1").unwrap().is_none());
}

pub fn delete_then_recreate(store: &dyn Store) {
    write(
        store,
        "Flag",
        "d1",
        None,
        vec![token("code", "s", "x")],
        None,
    )
    .unwrap();
    let q = query(
        "Flag",
        vec![Filter {
            param: "code".into(),
            param_type: Some(SearchParamType::Token),
            kind: FilterKind::Match(vec![Predicate::Token {
                system: TokenSystem::Any,
                code: Some("x".into()),
            }]),
        }],
    );
    assert_eq!(ids(store, &q), vec!["d1"]);
    let mut tx = store.begin().unwrap();
    tx.write(ResourceWrite {
        resource_type: "Flag".into(),
        id: "d1".into(),
        expected_version: Some(1),
        version: 2,
        last_updated_ms: 5,
        method: WriteMethod::Delete,
        json: String::new(),
        patient_key: None,
        index: vec![],
    })
    .unwrap();
    tx.commit().unwrap();
    assert!(store.read("Flag", "d1").unwrap().unwrap().deleted);
    assert!(ids(store, &q).is_empty(), "deleted resources never match");
    write(
        store,
        "Flag",
        "d1",
        Some(2),
        vec![token("code", "s", "x")],
        None,
    )
    .unwrap();
    assert_eq!(ids(store, &q), vec!["d1"]);
}

pub fn search_predicates(store: &dyn Store) {
    let date = |lo: i64, hi: i64| IndexEntry {
        param: "date".into(),
        value: IndexValue::Date { lo, hi },
        group: None,
    };
    let name = |s: &str| IndexEntry {
        param: "name".into(),
        value: IndexValue::String {
            norm: wardline_fhir::index::normalise_string(s),
            exact: s.into(),
        },
        group: None,
    };
    let qty = |v: f64| IndexEntry {
        param: "value-quantity".into(),
        value: IndexValue::Quantity {
            value: v,
            system: Some("http://unitsofmeasure.org".into()),
            code: Some("mg".into()),
            unit: Some("mg".into()),
        },
        group: None,
    };
    let subj = |id: &str| IndexEntry {
        param: "subject".into(),
        value: IndexValue::Reference {
            target_type: Some("Patient".into()),
            target_id: Some(id.into()),
            url: format!("Patient/{id}"),
            version: None,
        },
        group: None,
    };
    let day = 86_400_000;
    write(
        store,
        "Observation",
        "o1",
        None,
        vec![
            token("code", "http://loinc.org", "1"),
            date(10 * day, 11 * day),
            name("Ann Smith"),
            qty(5.0),
            subj("p1"),
        ],
        Some("p1"),
    )
    .unwrap();
    write(
        store,
        "Observation",
        "o2",
        None,
        vec![
            token("code", "http://snomed.info/sct", "1"),
            date(20 * day, 21 * day),
            name("Bob Smythe"),
            qty(100.0),
            subj("p2"),
        ],
        Some("p2"),
    )
    .unwrap();
    write(
        store,
        "Observation",
        "o3",
        None,
        vec![date(30 * day, 31 * day)],
        None,
    )
    .unwrap();

    let f = |param: &str, t: SearchParamType, kind: FilterKind| Filter {
        param: param.into(),
        param_type: Some(t),
        kind,
    };
    let tok = |sys: TokenSystem, code: &str| {
        FilterKind::Match(vec![Predicate::Token {
            system: sys,
            code: Some(code.into()),
        }])
    };
    let t = SearchParamType::Token;
    assert_eq!(
        ids(
            store,
            &query(
                "Observation",
                vec![f("code", t, tok(TokenSystem::Any, "1"))]
            )
        ),
        vec!["o1", "o2"]
    );
    assert_eq!(
        ids(
            store,
            &query(
                "Observation",
                vec![f(
                    "code",
                    t,
                    tok(TokenSystem::Is("http://loinc.org".into()), "1")
                )]
            )
        ),
        vec!["o1"]
    );
    assert!(
        ids(
            store,
            &query(
                "Observation",
                vec![f("code", t, tok(TokenSystem::None, "1"))]
            )
        )
        .is_empty()
    );
    assert_eq!(
        ids(
            store,
            &query("Observation", vec![f("code", t, FilterKind::Missing(true))])
        ),
        vec!["o3"]
    );
    assert_eq!(
        ids(
            store,
            &query(
                "Observation",
                vec![f(
                    "code",
                    t,
                    FilterKind::Not(vec![Predicate::Token {
                        system: TokenSystem::Is("http://loinc.org".into()),
                        code: Some("1".into())
                    }])
                )]
            )
        ),
        vec!["o2", "o3"]
    );
    let d = |p: Prefix, lo: i64, hi: i64| {
        ids(
            store,
            &query(
                "Observation",
                vec![f(
                    "date",
                    SearchParamType::Date,
                    FilterKind::Match(vec![Predicate::Date { prefix: p, lo, hi }]),
                )],
            ),
        )
    };
    assert_eq!(d(Prefix::Eq, 20 * day, 21 * day), vec!["o2"]);
    assert_eq!(d(Prefix::Gt, 20 * day, 21 * day), vec!["o3"]);
    assert_eq!(d(Prefix::Ge, 20 * day, 21 * day), vec!["o2", "o3"]);
    assert_eq!(d(Prefix::Lt, 20 * day, 21 * day), vec!["o1"]);
    assert_eq!(d(Prefix::Le, 20 * day, 21 * day), vec!["o1", "o2"]);
    assert_eq!(d(Prefix::Ne, 20 * day, 21 * day), vec!["o1", "o3"]);
    assert_eq!(d(Prefix::Sa, 20 * day, 21 * day), vec!["o3"]);
    assert_eq!(d(Prefix::Eb, 20 * day, 21 * day), vec!["o1"]);
    // A month-precision search containing day 10..11.
    assert_eq!(d(Prefix::Eq, 0, 15 * day), vec!["o1"]);
    let s = |v: &str, mode: StringMatch| {
        ids(
            store,
            &query(
                "Observation",
                vec![f(
                    "name",
                    SearchParamType::String,
                    FilterKind::Match(vec![Predicate::String {
                        value: v.into(),
                        mode,
                    }]),
                )],
            ),
        )
    };
    assert_eq!(s("ann", StringMatch::StartsWith), vec!["o1"]);
    assert_eq!(s("smith", StringMatch::StartsWith), Vec::<String>::new());
    assert_eq!(s("sm", StringMatch::Contains), vec!["o1", "o2"]);
    assert_eq!(s("Ann Smith", StringMatch::Exact), vec!["o1"]);
    assert_eq!(s("ann smith", StringMatch::Exact), Vec::<String>::new());
    assert_eq!(s("ann smith", StringMatch::Equal), vec!["o1"]);
    assert_eq!(s("ann", StringMatch::Equal), Vec::<String>::new());
    assert_eq!(
        s("%", StringMatch::Contains),
        Vec::<String>::new(),
        "LIKE wildcards are escaped"
    );
    let q = |p: Prefix, v: f64| {
        ids(
            store,
            &query(
                "Observation",
                vec![f(
                    "value-quantity",
                    SearchParamType::Quantity,
                    FilterKind::Match(vec![Predicate::Quantity {
                        prefix: p,
                        value: v,
                        lo: v - 0.5,
                        hi: v + 0.5,
                        system: None,
                        code: Some("mg".into()),
                    }]),
                )],
            ),
        )
    };
    assert_eq!(q(Prefix::Eq, 5.0), vec!["o1"]);
    assert_eq!(q(Prefix::Gt, 5.0), vec!["o2"]);
    assert_eq!(q(Prefix::Le, 100.0), vec!["o1", "o2"]);
    let r = ids(
        store,
        &query(
            "Observation",
            vec![f(
                "subject",
                SearchParamType::Reference,
                FilterKind::Match(vec![Predicate::Reference {
                    target_type: Some("Patient".into()),
                    target_id: Some("p2".into()),
                    url: None,
                }]),
            )],
        ),
    );
    assert_eq!(r, vec!["o2"]);
    // Compartment by patient key.
    let mut cq = query("Observation", vec![]);
    cq.compartment = Some(("Patient".into(), "p1".into()));
    assert_eq!(ids(store, &cq), vec!["o1"]);
    // _id and sorting.
    assert_eq!(
        ids(
            store,
            &query(
                "Observation",
                vec![Filter {
                    param: "_id".into(),
                    param_type: None,
                    kind: FilterKind::Id(vec!["o3".into(), "o1".into()])
                }]
            )
        ),
        vec!["o1", "o3"]
    );
    let mut sq = query("Observation", vec![]);
    sq.sort = vec![SortKey {
        param: "date".into(),
        param_type: Some(SearchParamType::Date),
        descending: true,
    }];
    assert_eq!(ids(store, &sq), vec!["o3", "o2", "o1"]);
    let total = store
        .search(
            &query("Observation", vec![]),
            &PageRequest {
                count: 0,
                count_only: true,
                ..PageRequest::default()
            },
        )
        .unwrap()
        .total;
    assert_eq!(total, Some(3));
}

pub fn paging_is_stable(store: &dyn Store) {
    for i in 0..7 {
        write(store, "Device", &format!("pg{i}"), None, vec![], None).unwrap();
    }
    let q = query("Device", vec![]);
    let mut page = PageRequest {
        count: 3,
        want_total: true,
        ..PageRequest::default()
    };
    let mut seen = Vec::new();
    let first = store.search(&q, &page).unwrap();
    assert_eq!(first.total, Some(7));
    assert!(first.has_more);
    seen.extend(first.resources.iter().map(|r| r.id.clone()));
    page.snapshot_rid = Some(first.snapshot_rid);
    page.after_rid = first.resources.last().map(|r| r.rid);
    // Created while the client pages: must not appear.
    write(store, "Device", "late", None, vec![], None).unwrap();
    loop {
        let p = store.search(&q, &page).unwrap();
        seen.extend(p.resources.iter().map(|r| r.id.clone()));
        page.after_rid = p.resources.last().map(|r| r.rid);
        if !p.has_more {
            break;
        }
    }
    let want: Vec<String> = (0..7).map(|i| format!("pg{i}")).collect();
    assert_eq!(seen, want);
}

pub fn index_replaced_on_update(store: &dyn Store) {
    let code = |c: &str| {
        query(
            "Flag",
            vec![Filter {
                param: "code".into(),
                param_type: Some(SearchParamType::Token),
                kind: FilterKind::Match(vec![Predicate::Token {
                    system: TokenSystem::Any,
                    code: Some(c.into()),
                }]),
            }],
        )
    };
    write(
        store,
        "Flag",
        "u1",
        None,
        vec![token("code", "s", "old")],
        None,
    )
    .unwrap();
    assert_eq!(ids(store, &code("old")), vec!["u1"]);
    write(
        store,
        "Flag",
        "u1",
        Some(1),
        vec![token("code", "s", "new")],
        None,
    )
    .unwrap();
    assert!(
        ids(store, &code("old")).is_empty(),
        "old index rows removed"
    );
    assert_eq!(ids(store, &code("new")), vec!["u1"]);
}

pub fn history_scopes(store: &dyn Store) {
    write(store, "Library", "l1", None, vec![], None).unwrap();
    write(store, "Library", "l1", Some(1), vec![], None).unwrap();
    write(store, "Library", "l2", None, vec![], None).unwrap();
    let req = |scope: HistoryScope, since_ms: Option<i64>| HistoryRequest {
        scope,
        since_ms,
        before_ms: None,
        before_seq: None,
        count: 100,
    };
    let ty = store
        .history(&req(HistoryScope::Type("Library".into()), None))
        .unwrap();
    let got: Vec<(String, i64)> = ty.iter().map(|r| (r.id.clone(), r.version)).collect();
    assert_eq!(
        got,
        vec![("l2".into(), 1), ("l1".into(), 2), ("l1".into(), 1)]
    );
    // The helper stamps version v at 1000 * v ms.
    let since = store
        .history(&req(HistoryScope::Type("Library".into()), Some(2_000)))
        .unwrap();
    assert_eq!(since.len(), 1);
    assert_eq!((since[0].id.as_str(), since[0].version), ("l1", 2));
    let sys = store.history(&req(HistoryScope::System, None)).unwrap();
    assert_eq!(sys[0].id, "l2", "newest write first");
    assert!(sys.len() >= 3);
    assert!(
        sys.windows(2).all(|w| w[0].seq > w[1].seq),
        "strictly by seq"
    );
    // Keyset paging through system history sees every version exactly once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .history(&HistoryRequest {
                scope: HistoryScope::System,
                since_ms: None,
                before_ms: None,
                before_seq: before,
                count: 2,
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| r.seq);
        seen.extend(page.into_iter().map(|r| r.seq));
    }
    assert_eq!(seen, sys.iter().map(|r| r.seq).collect::<Vec<_>>());
}

pub fn conflict_in_multi_write_tx_writes_nothing(store: &dyn Store) {
    write(store, "Basic", "mw-existing", None, vec![], None).unwrap();
    let mut tx = store.begin().unwrap();
    let w = |id: &str, expected: Option<i64>| ResourceWrite {
        resource_type: "Basic".into(),
        id: id.into(),
        expected_version: expected,
        version: expected.unwrap_or(0) + 1,
        last_updated_ms: 1,
        method: WriteMethod::Create,
        json: "{}".into(),
        patient_key: None,
        index: vec![token("code", "s", "mw")],
    };
    tx.write(w("mw-new", None)).unwrap();
    // A conflict may be reported by the write or, at the latest, by the commit.
    let e = match tx.write(w("mw-existing", None)) {
        // Roll back (and, on SQLite, release the writer) before going on.
        Err(e) => {
            drop(tx);
            e
        }
        Ok(()) => tx.commit().expect_err("commit must fail"),
    };
    assert!(matches!(e, StoreError::VersionConflict { .. }), "{e}");
    assert!(store.read("Basic", "mw-new").unwrap().is_none());
    // Expecting a version of a resource that does not exist is a conflict too.
    let e = write(store, "Basic", "mw-absent", Some(1), vec![], None).unwrap_err();
    assert!(matches!(e, StoreError::VersionConflict { .. }), "{e}");
    assert!(store.read("Basic", "mw-absent").unwrap().is_none());
}

pub fn more_predicates_sort_and_paging(store: &dyn Store) {
    let t = "RiskAssessment";
    let day = 86_400_000;
    let e = |param: &str, value: IndexValue| IndexEntry {
        param: param.into(),
        value,
        group: None,
    };
    let name = |s: &str| {
        e(
            "name",
            IndexValue::String {
                norm: s.into(),
                exact: s.into(),
            },
        )
    };
    let num = |v: f64| e("probability", IndexValue::Number { value: v });
    let uri = |u: &str| e("url", IndexValue::Uri { value: u.into() });
    let date = |lo: i64, hi: i64| e("date", IndexValue::Date { lo, hi });
    write(
        store,
        t,
        "r1",
        None,
        vec![
            name("b"),
            num(0.5),
            uri("http://a.org/fhir/x"),
            date(10 * day, 11 * day),
            e(
                "code",
                IndexValue::Token {
                    system: Some("http://snomed.info/sct".into()),
                    code: Some("84114007".into()),
                    text: Some("Heart Failure".into()),
                },
            ),
        ],
        Some("p9"),
    )
    .unwrap();
    write(
        store,
        t,
        "r2",
        None,
        vec![
            name("a"),
            num(1.5),
            uri("http://a.org/other"),
            date(40 * day, 41 * day),
            e(
                "code",
                IndexValue::Token {
                    system: None,
                    code: Some("x".into()),
                    text: None,
                },
            ),
        ],
        None,
    )
    .unwrap();
    write(store, t, "r3", None, vec![name("a")], None).unwrap();
    write(store, t, "r4", None, vec![], None).unwrap();
    // r2 gets a second version (last_updated 2000).
    write(
        store,
        t,
        "r2",
        Some(1),
        vec![
            name("a"),
            num(1.5),
            uri("http://a.org/other"),
            date(40 * day, 41 * day),
            e(
                "code",
                IndexValue::Token {
                    system: None,
                    code: Some("x".into()),
                    text: None,
                },
            ),
        ],
        None,
    )
    .unwrap();
    write(store, "Basic", "mp-b", None, vec![], Some("p9")).unwrap();

    let run = |param: &str, ty: SearchParamType, kind: FilterKind| {
        ids(
            store,
            &query(
                t,
                vec![Filter {
                    param: param.into(),
                    param_type: Some(ty),
                    kind,
                }],
            ),
        )
    };
    let n = |p: Prefix, v: f64, lo: f64, hi: f64| {
        run(
            "probability",
            SearchParamType::Number,
            FilterKind::Match(vec![Predicate::Number {
                prefix: p,
                value: v,
                lo,
                hi,
            }]),
        )
    };
    assert_eq!(n(Prefix::Eq, 1.5, 1.45, 1.55), vec!["r2"]);
    assert_eq!(n(Prefix::Eq, 1.0, 0.95, 1.05), Vec::<String>::new());
    assert_eq!(n(Prefix::Gt, 1.0, 0.95, 1.05), vec!["r2"]);
    assert_eq!(n(Prefix::Lt, 1.0, 0.95, 1.05), vec!["r1"]);
    assert_eq!(n(Prefix::Ge, 1.5, 1.45, 1.55), vec!["r2"]);
    assert_eq!(n(Prefix::Le, 1.5, 1.45, 1.55), vec!["r1", "r2"]);
    assert_eq!(n(Prefix::Ne, 0.5, 0.45, 0.55), vec!["r2"]);
    assert_eq!(n(Prefix::Ap, 0.52, 0.515, 0.525), vec!["r1"], "within 10%");
    assert_eq!(n(Prefix::Ap, 0.6, 0.55, 0.65), Vec::<String>::new());
    let num_missing = |m: bool| {
        run(
            "probability",
            SearchParamType::Number,
            FilterKind::Missing(m),
        )
    };
    assert_eq!(num_missing(true), vec!["r3", "r4"]);
    assert_eq!(num_missing(false), vec!["r1", "r2"]);

    let u = |v: &str, mode: UriMatch| {
        run(
            "url",
            SearchParamType::Uri,
            FilterKind::Match(vec![Predicate::Uri {
                value: v.into(),
                mode,
            }]),
        )
    };
    assert_eq!(u("http://a.org/other", UriMatch::Exact), vec!["r2"]);
    assert_eq!(
        u("http://a.org/fhir", UriMatch::Exact),
        Vec::<String>::new()
    );
    assert_eq!(u("http://a.org/fhir", UriMatch::Below), vec!["r1"]);
    assert_eq!(u("http://a.org/fhir/x/y", UriMatch::Above), vec!["r1"]);

    let tok = |p: Predicate| run("code", SearchParamType::Token, FilterKind::Match(vec![p]));
    assert_eq!(tok(Predicate::TokenText("heart".into())), vec!["r1"]);
    assert_eq!(
        tok(Predicate::TokenText("failure".into())),
        Vec::<String>::new()
    );
    assert_eq!(
        tok(Predicate::Token {
            system: TokenSystem::None,
            code: Some("x".into())
        }),
        vec!["r2"]
    );
    assert_eq!(
        tok(Predicate::Token {
            system: TokenSystem::Is("http://snomed.info/sct".into()),
            code: None
        }),
        vec!["r1"]
    );
    // OR within a filter.
    assert_eq!(
        run(
            "code",
            SearchParamType::Token,
            FilterKind::Match(vec![
                Predicate::Token {
                    system: TokenSystem::Any,
                    code: Some("x".into())
                },
                Predicate::Token {
                    system: TokenSystem::Any,
                    code: Some("84114007".into())
                },
            ])
        ),
        vec!["r1", "r2"]
    );
    // AND across filters.
    let and = query(
        t,
        vec![
            Filter {
                param: "name".into(),
                param_type: Some(SearchParamType::String),
                kind: FilterKind::Match(vec![Predicate::String {
                    value: "a".into(),
                    mode: StringMatch::StartsWith,
                }]),
            },
            Filter {
                param: "probability".into(),
                param_type: Some(SearchParamType::Number),
                kind: FilterKind::Missing(true),
            },
        ],
    );
    assert_eq!(ids(store, &and), vec!["r3"]);

    let d = |p: Prefix, lo: i64, hi: i64| {
        run(
            "date",
            SearchParamType::Date,
            FilterKind::Match(vec![Predicate::Date { prefix: p, lo, hi }]),
        )
    };
    assert_eq!(d(Prefix::Ap, 10 * day, 11 * day), vec!["r1"]);
    assert_eq!(d(Prefix::Ap, 25 * day, 26 * day), Vec::<String>::new());

    let lu = |p: Prefix, lo: i64, hi: i64| {
        ids(
            store,
            &query(
                t,
                vec![Filter {
                    param: "_lastUpdated".into(),
                    param_type: None,
                    kind: FilterKind::LastUpdated(vec![(p, lo, hi)]),
                }],
            ),
        )
    };
    assert_eq!(lu(Prefix::Gt, 1_000, 1_001), vec!["r2"]);
    assert_eq!(lu(Prefix::Eq, 1_000, 1_001), vec!["r1", "r3", "r4"]);
    assert_eq!(lu(Prefix::Lt, 2_000, 2_001), vec!["r1", "r3", "r4"]);

    // Sorting: by name ascending, then _id descending; missing values last.
    let sorted = |keys: Vec<(&str, Option<SearchParamType>, bool)>, page: PageRequest| {
        let mut q = query(t, vec![]);
        q.sort = keys
            .into_iter()
            .map(|(p, ty, desc)| SortKey {
                param: p.into(),
                param_type: ty,
                descending: desc,
            })
            .collect();
        store.search(&q, &page).unwrap()
    };
    let page = |count: usize, offset: usize| PageRequest {
        count,
        offset,
        want_total: true,
        ..PageRequest::default()
    };
    let p = sorted(
        vec![
            ("name", Some(SearchParamType::String), false),
            ("_id", None, true),
        ],
        page(100, 0),
    );
    let got: Vec<&str> = p.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got, vec!["r3", "r2", "r1", "r4"]);
    let p = sorted(
        vec![("name", Some(SearchParamType::String), true)],
        page(100, 0),
    );
    let got: Vec<&str> = p.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got, vec!["r1", "r2", "r3", "r4"]);
    let p = sorted(vec![("_lastUpdated", None, true)], page(1, 0));
    assert_eq!(p.resources[0].id, "r2");
    // Offset paging with an explicit sort.
    let keys = || {
        vec![
            ("name", Some(SearchParamType::String), false),
            ("_id", None, true),
        ]
    };
    let p1 = sorted(keys(), page(2, 0));
    let p2 = sorted(keys(), page(2, 2));
    assert!(p1.has_more && !p2.has_more);
    assert_eq!(p1.total, Some(4));
    let got: Vec<&str> = p1
        .resources
        .iter()
        .chain(&p2.resources)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(got, vec!["r3", "r2", "r1", "r4"]);

    // Across types, and by patient compartment across types.
    let mut all = SearchQuery {
        resource_type: None,
        filters: vec![Filter {
            param: "_id".into(),
            param_type: None,
            kind: FilterKind::Id(vec!["r1".into(), "mp-b".into()]),
        }],
        ..SearchQuery::default()
    };
    let mut got = ids(store, &all);
    got.sort();
    assert_eq!(got, vec!["mp-b", "r1"]);
    all.filters.clear();
    all.compartment = Some(("Patient".into(), "p9".into()));
    let mut got = ids(store, &all);
    got.sort();
    assert_eq!(got, vec!["mp-b", "r1"]);
}

fn reference(param: &str, t: &str, id: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::Reference {
            target_type: Some(t.into()),
            target_id: Some(id.into()),
            url: format!("{t}/{id}"),
            version: None,
        },
        group: None,
    }
}

fn token_filter(param: &str, code: &str) -> Filter {
    Filter {
        param: param.into(),
        param_type: Some(SearchParamType::Token),
        kind: FilterKind::Match(vec![Predicate::Token {
            system: TokenSystem::Any,
            code: Some(code.into()),
        }]),
    }
}

fn chain(param: &str, target: &str, inner: Filter) -> Filter {
    Filter {
        param: param.into(),
        param_type: Some(SearchParamType::Reference),
        kind: FilterKind::Chain(vec![(target.into(), inner)]),
    }
}

fn has(source: &str, param: &str, inner: Filter) -> Filter {
    Filter {
        param: "_has".into(),
        param_type: None,
        kind: FilterKind::Has {
            source_type: source.into(),
            reference_param: param.into(),
            inner: Box::new(inner),
        },
    }
}

/// Chained and reverse-chained filters, and include rounds, over three
/// made-up types (`COrg` ← `CPat` ← `CObs`).
pub fn chains_has_and_includes(store: &dyn Store) {
    use crate::IncludeRequest;
    use wardline_fhir::search::Include;
    let w =
        |t: &str, id: &str, index: Vec<IndexEntry>| write(store, t, id, None, index, None).unwrap();
    w("COrg", "org1", vec![token("identifier", "ods", "A")]);
    w("COrg", "org2", vec![token("identifier", "ods", "B")]);
    w(
        "CPat",
        "p1",
        vec![
            token("identifier", "nhs", "111"),
            reference("gp", "COrg", "org1"),
        ],
    );
    w(
        "CPat",
        "p2",
        vec![
            token("identifier", "nhs", "222"),
            reference("gp", "COrg", "org2"),
        ],
    );
    w(
        "CObs",
        "o1",
        vec![token("code", "l", "c1"), reference("subject", "CPat", "p1")],
    );
    w(
        "CObs",
        "o2",
        vec![token("code", "l", "c2"), reference("subject", "CPat", "p2")],
    );
    w(
        "CObs",
        "o3",
        vec![token("code", "l", "c2"), reference("subject", "CPat", "p1")],
    );
    w(
        "CObs",
        "o4",
        vec![
            token("code", "l", "panel"),
            reference("has-member", "CObs", "o1"),
        ],
    );
    let sorted = |q: &SearchQuery| {
        let mut v = ids(store, q);
        v.sort();
        v
    };
    // One link.
    let q = query(
        "CObs",
        vec![chain("subject", "CPat", token_filter("identifier", "111"))],
    );
    assert_eq!(sorted(&q), vec!["o1", "o3"]);
    // Two links.
    let q = query(
        "CObs",
        vec![chain(
            "subject",
            "CPat",
            chain("gp", "COrg", token_filter("identifier", "B")),
        )],
    );
    assert_eq!(sorted(&q), vec!["o2"]);
    // Several candidate target types are OR-ed.
    let q = query(
        "CObs",
        vec![Filter {
            param: "subject".into(),
            param_type: Some(SearchParamType::Reference),
            kind: FilterKind::Chain(vec![
                ("COrg".into(), token_filter("identifier", "111")),
                ("CPat".into(), token_filter("identifier", "222")),
            ]),
        }],
    );
    assert_eq!(sorted(&q), vec!["o2"]);
    // A chain to an _id.
    let q = query(
        "CObs",
        vec![chain(
            "subject",
            "CPat",
            Filter {
                param: "_id".into(),
                param_type: None,
                kind: FilterKind::Id(vec!["p2".into()]),
            },
        )],
    );
    assert_eq!(sorted(&q), vec!["o2"]);
    // _has, nested _has, _has to an _id.
    assert_eq!(
        sorted(&query(
            "CPat",
            vec![has("CObs", "subject", token_filter("code", "c2"))]
        )),
        vec!["p1", "p2"]
    );
    assert_eq!(
        sorted(&query(
            "CPat",
            vec![has("CObs", "subject", token_filter("code", "c1"))]
        )),
        vec!["p1"]
    );
    assert_eq!(
        sorted(&query(
            "COrg",
            vec![has(
                "CPat",
                "gp",
                has("CObs", "subject", token_filter("code", "c1"))
            )]
        )),
        vec!["org1"]
    );
    let by_id = Filter {
        param: "_id".into(),
        param_type: None,
        kind: FilterKind::Id(vec!["o2".into()]),
    };
    assert_eq!(
        sorted(&query("CPat", vec![has("CObs", "subject", by_id)])),
        vec!["p2"]
    );
    // A _has whose inner filter is a chain.
    assert_eq!(
        sorted(&query(
            "CPat",
            vec![has(
                "CObs",
                "subject",
                chain(
                    "subject",
                    "CPat",
                    chain("gp", "COrg", token_filter("identifier", "A"))
                )
            )]
        )),
        vec!["p1"]
    );

    // Includes: one request answers forward and reverse includes together.
    let key = |t: &str, id: &str| {
        let r = store.read(t, id).unwrap().unwrap();
        (r.rid, t.to_owned(), id.to_owned())
    };
    let inc = |s: &str, p: Option<&str>, t: Option<&str>| Include {
        source_type: s.into(),
        param: p.map(Into::into),
        target_type: t.map(Into::into),
        iterate: false,
    };
    let got = |req: &IncludeRequest| {
        let mut v: Vec<String> = store
            .include(req)
            .unwrap()
            .into_iter()
            .map(|r| format!("{}/{}", r.resource_type, r.id))
            .collect();
        v.sort();
        v
    };
    let req = IncludeRequest {
        matched: vec![key("CObs", "o1"), key("CObs", "o3")],
        forward: vec![inc("CObs", Some("subject"), None)],
        reverse: vec![inc("CObs", Some("has-member"), None)],
        limit: 100,
    };
    assert_eq!(got(&req), vec!["CObs/o4", "CPat/p1"]);
    // Target type and wildcard.
    let req = IncludeRequest {
        matched: vec![key("CPat", "p1"), key("CPat", "p2")],
        forward: vec![inc("CPat", None, Some("COrg"))],
        reverse: vec![inc("CObs", Some("subject"), None)],
        limit: 100,
    };
    assert_eq!(
        got(&req),
        vec!["CObs/o1", "CObs/o2", "CObs/o3", "COrg/org1", "COrg/org2"]
    );
    let req = IncludeRequest {
        matched: vec![key("CPat", "p1")],
        forward: vec![inc("CPat", Some("gp"), Some("CPat"))],
        reverse: vec![],
        limit: 100,
    };
    assert!(got(&req).is_empty(), "target type excludes COrg");
    // The limit: limit + 1 rows come back so the caller can tell.
    let req = IncludeRequest {
        matched: vec![key("CPat", "p1"), key("CPat", "p2")],
        forward: vec![],
        reverse: vec![inc("CObs", Some("subject"), None)],
        limit: 1,
    };
    assert_eq!(store.include(&req).unwrap().len(), 2);

    // A deleted source no longer satisfies _has nor is included.
    let mut tx = store.begin().unwrap();
    tx.write(ResourceWrite {
        resource_type: "CObs".into(),
        id: "o2".into(),
        expected_version: Some(1),
        version: 2,
        last_updated_ms: 5,
        method: WriteMethod::Delete,
        json: String::new(),
        patient_key: None,
        index: vec![],
    })
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(
        sorted(&query(
            "CPat",
            vec![has("CObs", "subject", token_filter("code", "c2"))]
        )),
        vec!["p1"]
    );
    let req = IncludeRequest {
        matched: vec![key("CPat", "p2")],
        forward: vec![],
        reverse: vec![inc("CObs", Some("subject"), None)],
        limit: 100,
    };
    assert!(got(&req).is_empty());
}
