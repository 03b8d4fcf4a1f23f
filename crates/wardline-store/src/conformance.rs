//! The conformance suite every backend runs: plain functions over `&dyn Store`
//! with hand-built index entries and hand-computed expectations.
//!
//! Each case writes resources of its own resource type name space (unique ids
//! per case) so the cases can share one store.

use wardline_fhir::definitions::SearchParamType;
use wardline_fhir::search::{
    Filter, FilterKind, Predicate, Prefix, SearchQuery, SortKey, StringMatch, TokenSystem,
};
use wardline_fhir::{IndexEntry, IndexValue};

use crate::{
    HistoryRequest, HistoryScope, PageRequest, ResourceWrite, Store, StoreError, WriteMethod,
};

/// Runs every case.
pub fn run_all(store: &dyn Store) {
    write_read_vread_history(store);
    version_conflicts_write_nothing(store);
    rollback_on_drop(store);
    delete_then_recreate(store);
    search_predicates(store);
    paging_is_stable(store);
}

fn token(param: &str, system: &str, code: &str) -> IndexEntry {
    IndexEntry {
        param: param.into(),
        value: IndexValue::Token {
            system: Some(system.into()),
            code: Some(code.into()),
            text: None,
        },
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
    };
    let name = |s: &str| IndexEntry {
        param: "name".into(),
        value: IndexValue::String {
            norm: wardline_fhir::index::normalise_string(s),
            exact: s.into(),
        },
    };
    let qty = |v: f64| IndexEntry {
        param: "value-quantity".into(),
        value: IndexValue::Quantity {
            value: v,
            system: Some("http://unitsofmeasure.org".into()),
            code: Some("mg".into()),
            unit: Some("mg".into()),
        },
    };
    let subj = |id: &str| IndexEntry {
        param: "subject".into(),
        value: IndexValue::Reference {
            target_type: Some("Patient".into()),
            target_id: Some(id.into()),
            url: format!("Patient/{id}"),
        },
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
