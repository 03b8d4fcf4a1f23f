//! Canonical references (matched by URL and version) and the index rebuild
//! ([`crate::StoreTx::reindex`]).

use super::*;
use crate::Reindex;

fn canonical(url: &str, version: Option<&str>) -> IndexEntry {
    IndexEntry {
        param: "questionnaire".into(),
        value: IndexValue::Reference {
            target_type: None,
            target_id: None,
            url: url.into(),
            version: version.map(str::to_owned),
        },
        group: None,
    }
}

fn by_canonical(url: &str, version: Option<&str>, below: bool) -> SearchQuery {
    query(
        "QuestionnaireResponse",
        vec![Filter {
            param: "questionnaire".into(),
            param_type: Some(SearchParamType::Reference),
            kind: FilterKind::Match(vec![Predicate::Canonical {
                url: url.into(),
                version: version.map(str::to_owned),
                below,
            }]),
        }],
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A canonical matches by URL whatever its version; by URL and version
/// when the search gives one; `:below` by URL prefix, or by version and the
/// versions below it. Literal references with the same text do not match.
pub fn canonical_references(store: &dyn Store) {
    let q = "http://example.org/fhir/Questionnaire/gcs";
    write(
        store,
        "QuestionnaireResponse",
        "cr1",
        None,
        vec![canonical(q, None)],
        None,
    )
    .unwrap();
    write(
        store,
        "QuestionnaireResponse",
        "cr2",
        None,
        vec![canonical(q, Some("1.2"))],
        None,
    )
    .unwrap();
    write(
        store,
        "QuestionnaireResponse",
        "cr3",
        None,
        vec![canonical(q, Some("1.2.3"))],
        None,
    )
    .unwrap();
    write(
        store,
        "QuestionnaireResponse",
        "cr4",
        None,
        vec![canonical(q, Some("1.20"))],
        None,
    )
    .unwrap();
    write(
        store,
        "QuestionnaireResponse",
        "cr5",
        None,
        vec![canonical("Questionnaire/gcs", None)],
        None,
    )
    .unwrap();
    write(
        store,
        "QuestionnaireResponse",
        "cr6",
        None,
        vec![canonical(&format!("{q}-short"), None)],
        None,
    )
    .unwrap();
    // A literal reference to a Questionnaire with id gcs: not a canonical.
    write(
        store,
        "QuestionnaireResponse",
        "cr7",
        None,
        vec![IndexEntry {
            param: "questionnaire".into(),
            value: IndexValue::Reference {
                target_type: Some("Questionnaire".into()),
                target_id: Some("gcs".into()),
                url: "Questionnaire/gcs".into(),
                version: None,
            },
            group: None,
        }],
        None,
    )
    .unwrap();
    let got =
        |u: &str, v: Option<&str>, below: bool| sorted(ids(store, &by_canonical(u, v, below)));
    assert_eq!(got(q, None, false), vec!["cr1", "cr2", "cr3", "cr4"]);
    assert_eq!(got(q, Some("1.2"), false), vec!["cr2"]);
    assert_eq!(got(q, Some("1.2.3"), false), vec!["cr3"]);
    assert!(got(q, Some("2"), false).is_empty());
    // Relative canonicals match as written (and so does the literal
    // reference's text: a URL is a URL).
    assert_eq!(got("Questionnaire/gcs", None, false), vec!["cr5", "cr7"]);
    assert!(
        got("questionnaire/gcs", None, false).is_empty(),
        "case matters"
    );
    // `:below`: versions below 1.2 (1.20 is not), URLs below the URL.
    assert_eq!(got(q, Some("1.2"), true), vec!["cr2", "cr3"]);
    assert_eq!(got(q, None, true), vec!["cr1", "cr2", "cr3", "cr4", "cr6"]);
    assert!(
        got("HTTP://example.org", None, true).is_empty(),
        "case matters"
    );
    // Issue 21: the literal reference's row stores no URL text (its target
    // columns say it), yet reads as `Questionnaire/gcs` to every URL match.
    assert_eq!(got("Questionnaire/", None, true), vec!["cr5", "cr7"]);
    assert_eq!(got("Questionnaire/gc", None, true), vec!["cr5", "cr7"]);
    assert!(got("Questionnaire/gcs", Some("1"), false).is_empty());
    assert!(got("Questionnaire", None, false).is_empty());
}

/// A reindex replaces the index rows of the current version, writes no
/// version, and leaves alone a resource written since (or deleted).
pub fn reindex_replaces_index_rows(store: &dyn Store) {
    let code = |c: &str| {
        query(
            "Basic",
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
        "Basic",
        "ri1",
        None,
        vec![token("code", "s", "old")],
        Some("p1"),
    )
    .unwrap();
    write(
        store,
        "Basic",
        "ri2",
        None,
        vec![token("code", "s", "old")],
        None,
    )
    .unwrap();
    write(
        store,
        "Basic",
        "ri2",
        Some(1),
        vec![token("code", "s", "old")],
        None,
    )
    .unwrap();
    write(
        store,
        "Basic",
        "ri3",
        None,
        vec![token("code", "s", "old")],
        None,
    )
    .unwrap();
    let before = store.read("Basic", "ri1").unwrap().unwrap();
    let item = |id: &str, version: i64| Reindex {
        resource_type: "Basic".into(),
        id: id.into(),
        version,
        index: vec![token("code", "s", "new"), token("code", "s", "newer")],
    };
    let mut tx = store.begin().unwrap();
    // ri2 is at version 2: computed from version 1, it is left alone; ri9
    // does not exist.
    let n = tx
        .reindex(&[item("ri1", 1), item("ri2", 1), item("ri9", 1)])
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(n, 1);
    assert_eq!(ids(store, &code("new")), vec!["ri1"]);
    assert_eq!(ids(store, &code("newer")), vec!["ri1"]);
    assert_eq!(sorted(ids(store, &code("old"))), vec!["ri2", "ri3"]);
    let after = store.read("Basic", "ri1").unwrap().unwrap();
    assert_eq!(after, before, "no new version, nothing else changed");
    assert_eq!(
        store.vread("Basic", "ri1", 2).unwrap(),
        None,
        "no version written"
    );
    // The rows keep the resource's patient: a compartment search finds them.
    let mut in_compartment = code("newer");
    in_compartment.compartment = Some(("Patient".into(), "p1".into()));
    assert_eq!(ids(store, &in_compartment), vec!["ri1"]);
    // Rolled back: nothing changes.
    let mut tx = store.begin().unwrap();
    assert_eq!(tx.reindex(&[item("ri3", 1)]).unwrap(), 1);
    drop(tx);
    assert_eq!(sorted(ids(store, &code("old"))), vec!["ri2", "ri3"]);
    // A deleted resource is left alone.
    let mut tx = store.begin().unwrap();
    tx.write(ResourceWrite {
        resource_type: "Basic".into(),
        id: "ri3".into(),
        expected_version: Some(1),
        version: 2,
        last_updated_ms: 5_000,
        method: WriteMethod::Delete,
        json: String::new(),
        patient_key: None,
        index: Vec::new(),
    })
    .unwrap();
    tx.commit().unwrap();
    let mut tx = store.begin().unwrap();
    assert_eq!(tx.reindex(&[item("ri3", 2)]).unwrap(), 0);
    tx.commit().unwrap();
    assert!(ids(store, &code("new")).iter().all(|i| i != "ri3"));
}
