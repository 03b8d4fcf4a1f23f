//! The audit chain, transaction locks and system key-value data.

use super::*;

// ---- the audit chain and system key-value data ------------------------------
//
// The audit log is one chain shared by the cases (and by whatever else used
// the store before), so each case works after the head it finds.

#[allow(clippy::too_many_arguments)]
fn audit_append(
    recorded_ms: i64,
    agent: &str,
    action: &str,
    subtype: &str,
    outcome: i32,
    patients: &[&str],
    json: &str,
) -> AuditAppend {
    AuditAppend {
        recorded_ms,
        agent: agent.into(),
        action: action.into(),
        subtype: subtype.into(),
        outcome,
        patients: patients.iter().map(|p| p.to_string()).collect(),
        json: json.into(),
    }
}

fn simple_audit(recorded_ms: i64, agent: &str, n: usize) -> AuditAppend {
    audit_append(
        recorded_ms,
        agent,
        "R",
        "read",
        0,
        &[],
        &format!(r#"{{"resourceType":"AuditEvent","n":{n}}}"#),
    )
}

/// Verifies the whole chain (small pages, to exercise paging) and asserts it
/// is intact; returns the number of rows.
fn assert_chain_intact(store: &dyn Store) -> u64 {
    let v = audit::verify(store, 7).expect("verify");
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert_eq!(v.head, store.audit_head().unwrap());
    v.rows
}

fn audit_seqs(rows: &[AuditRow]) -> Vec<i64> {
    rows.iter().map(|r| r.seq).collect()
}

pub fn audit_append_in_and_out_of_transactions(store: &dyn Store) {
    let h0 = store.audit_head().unwrap();
    let agent = "Practitioner/conf-append";
    let rows: Vec<AuditAppend> = (0..3)
        .map(|n| simple_audit(1_700_000_000_000, agent, n))
        .collect();

    // Rolled back with its transaction: nothing, and the head is unchanged.
    {
        let mut tx = store.begin().unwrap();
        tx.append_audit(&rows).unwrap();
    }
    assert_eq!(store.audit_head().unwrap(), h0);
    assert!(store.scan_audit(h0.seq, 10).unwrap().is_empty());

    // Committed with a resource write.
    let mut tx = store.begin().unwrap();
    tx.write(ResourceWrite {
        resource_type: "Basic".into(),
        id: "audit-tx".into(),
        expected_version: None,
        version: 1,
        last_updated_ms: 1,
        method: WriteMethod::Create,
        json: "{}".into(),
        patient_key: None,
        index: vec![],
    })
    .unwrap();
    tx.append_audit(&rows[..2]).unwrap();
    tx.append_audit(&[]).unwrap();
    tx.append_audit(&rows[2..]).unwrap();
    tx.commit().unwrap();
    let h1 = store.audit_head().unwrap();
    assert_eq!(h1.seq, h0.seq + 3);
    let got = store.scan_audit(h0.seq, 10).unwrap();
    assert_eq!(audit_seqs(&got), vec![h0.seq + 1, h0.seq + 2, h0.seq + 3]);
    assert_eq!(got.iter().map(AuditRow::append).collect::<Vec<_>>(), rows);
    assert_eq!(got[0].prev_hash, h0.hash);
    assert_eq!(got[2].hash, h1.hash);
    assert_eq!(got, audit::chain(h0.seq, &h0.hash, &rows));

    // In a transaction of its own: contiguous seqs, returned.
    let more: Vec<AuditAppend> = (3..8)
        .map(|n| simple_audit(1_700_000_000_001, agent, n))
        .collect();
    let seqs = store.append_audit(&more).unwrap();
    assert_eq!(seqs, ((h1.seq + 1)..=(h1.seq + 5)).collect::<Vec<_>>());
    assert_eq!(store.audit_head().unwrap().seq, h1.seq + 5);
    assert_eq!(store.scan_audit(h1.seq, 2).unwrap().len(), 2, "limit");

    // Empty input is a no-op, in and out of a transaction.
    let h2 = store.audit_head().unwrap();
    assert!(store.append_audit(&[]).unwrap().is_empty());
    let mut tx = store.begin().unwrap();
    tx.append_audit(&[]).unwrap();
    tx.commit().unwrap();
    assert_eq!(store.audit_head().unwrap(), h2);

    assert_chain_intact(store);
}

pub fn audit_search(store: &dyn Store) {
    let (a, b) = ("Practitioner/conf-search-a", "Practitioner/conf-search-b");
    let (px, py) = ("conf-search-px", "conf-search-py");
    let t = 1_700_000_100_000;
    let rows = vec![
        audit_append(t, a, "R", "read", 0, &[px], "{\"n\":0}"),
        audit_append(t + 1, b, "C", "create", 0, &[px, py], "{\"n\":1}"),
        audit_append(t + 2, a, "R", "search-type", 4, &[py], "{\"n\":2}"),
        audit_append(t + 3, a, "U", "update", 0, &[], "{\"n\":3}"),
        audit_append(t + 4, b, "R", "read", 8, &[px, px], "{\"n\":4}"),
        audit_append(t + 5, a, "R", "read", 0, &[px], "{\"n\":5}"),
    ];
    let s = store.append_audit(&rows).unwrap();
    let find = |q: AuditQuery| -> Vec<i64> {
        audit_seqs(&store.search_audit(&AuditQuery { count: 100, ..q }).unwrap())
    };
    let patient = |p: &str| AuditQuery {
        patient: Some(p.into()),
        ..AuditQuery::default()
    };
    let agent = |x: &str| AuditQuery {
        agent: Some(x.into()),
        ..AuditQuery::default()
    };
    // The patient index as verification reads it (issue 22): by seq, each
    // patient once per row.
    let entries = |i: usize| (s[i], px.to_owned());
    assert_eq!(
        store.scan_audit_patients(s[0] - 1, s[5]).unwrap(),
        vec![
            entries(0),
            entries(1),
            (s[1], py.to_owned()),
            (s[2], py.to_owned()),
            entries(4),
            entries(5),
        ]
    );
    assert_eq!(
        store.scan_audit_patients(s[1], s[3]).unwrap(),
        vec![(s[2], py.to_owned())]
    );
    // Each criterion, newest first; a patient named twice in a row gives it once.
    assert_eq!(find(patient(px)), vec![s[5], s[4], s[1], s[0]]);
    assert_eq!(find(patient(py)), vec![s[2], s[1]]);
    assert_eq!(find(patient("conf-search-nobody")), Vec::<i64>::new());
    assert_eq!(find(agent(a)), vec![s[5], s[3], s[2], s[0]]);
    assert_eq!(find(agent(b)), vec![s[4], s[1]]);
    assert_eq!(
        find(AuditQuery {
            action: Some("R".into()),
            ..agent(a)
        }),
        vec![s[5], s[2], s[0]]
    );
    assert_eq!(
        find(AuditQuery {
            subtype: Some("read".into()),
            ..patient(px)
        }),
        vec![s[5], s[4], s[0]]
    );
    assert_eq!(
        find(AuditQuery {
            outcome: Some(8),
            ..patient(px)
        }),
        vec![s[4]]
    );
    assert_eq!(
        find(AuditQuery {
            subtype: Some("create".into()),
            agent: Some(b.into()),
            ..patient(py)
        }),
        vec![s[1]]
    );
    assert_eq!(
        find(AuditQuery {
            since_ms: Some(t + 2),
            before_ms: Some(t + 5),
            ..agent(a)
        }),
        vec![s[3], s[2]]
    );
    assert_eq!(
        find(AuditQuery {
            since_ms: Some(t + 1),
            before_ms: Some(t + 2),
            ..AuditQuery::default()
        }),
        vec![s[1]]
    );
    // Rows come back whole.
    let r4 = &store
        .search_audit(&AuditQuery {
            outcome: Some(8),
            count: 1,
            ..patient(px)
        })
        .unwrap()[0];
    assert_eq!(r4.append(), rows[4]);
    let r3 = &store
        .search_audit(&AuditQuery {
            action: Some("U".into()),
            count: 1,
            ..agent(a)
        })
        .unwrap()[0];
    assert_eq!(r3.patients, Vec::<String>::new());

    // Paging with `before_seq`, by patient and otherwise.
    let page = |q: AuditQuery, count: usize| -> Vec<i64> {
        audit_seqs(&store.search_audit(&AuditQuery { count, ..q }).unwrap())
    };
    assert_eq!(page(patient(px), 2), vec![s[5], s[4]]);
    let before = |seq: i64, q: AuditQuery| AuditQuery {
        before_seq: Some(seq),
        ..q
    };
    assert_eq!(page(before(s[4], patient(px)), 2), vec![s[1], s[0]]);
    assert_eq!(page(before(s[0], patient(px)), 2), Vec::<i64>::new());
    assert_eq!(page(agent(a), 3), vec![s[5], s[3], s[2]]);
    assert_eq!(page(before(s[2], agent(a)), 3), vec![s[0]]);
    assert_eq!(page(agent(a), 0), Vec::<i64>::new());
}

pub fn audit_concurrent_appends(store: &dyn Store) {
    const THREADS: usize = 4;
    const EACH: usize = 50;
    let h0 = store.audit_head().unwrap();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                let agent = format!("conf-concurrent-{t}");
                for i in 0..EACH {
                    let row = audit_append(
                        1_700_000_200_000,
                        &agent,
                        "R",
                        "read",
                        0,
                        &[],
                        &format!(r#"{{"t":{t},"i":{i}}}"#),
                    );
                    if i % 2 == 0 {
                        assert_eq!(store.append_audit(&[row]).unwrap().len(), 1);
                    } else {
                        let mut tx = store.begin().unwrap();
                        tx.append_audit(&[row]).unwrap();
                        tx.commit().unwrap();
                    }
                }
            });
        }
    });
    let total = (THREADS * EACH) as i64;
    let head = store.audit_head().unwrap();
    assert_eq!(head.seq, h0.seq + total);
    let rows = store.scan_audit(h0.seq, 1_000).unwrap();
    assert_eq!(
        audit_seqs(&rows),
        ((h0.seq + 1)..=(h0.seq + total)).collect::<Vec<_>>()
    );
    // Each thread's rows are all there, in the order it appended them.
    for t in 0..THREADS {
        let mine: Vec<&str> = rows
            .iter()
            .filter(|r| r.agent == format!("conf-concurrent-{t}"))
            .map(|r| r.json.as_str())
            .collect();
        let want: Vec<String> = (0..EACH)
            .map(|i| format!(r#"{{"t":{t},"i":{i}}}"#))
            .collect();
        assert_eq!(mine, want);
    }
    let mut v = audit::Verifier::new(Some(&h0));
    for r in &rows {
        v.row(r);
    }
    assert_eq!(v.finish(&head), (total as u64, vec![]));
    assert_chain_intact(store);
}

pub fn kv_put_get_list_delete(store: &dyn Store) {
    let ns = "conf-kv";
    let keys = [
        "user:bob",
        "user:alice",
        "user%",
        "user_x",
        "userz",
        "usex",
        "user:%weird",
        "user:é",
        "a-b",
        "aB",
        "ab",
        "a_c",
    ];
    for (i, k) in keys.iter().enumerate() {
        store.kv_put(ns, k, &format!("v{i}")).unwrap();
    }
    store.kv_put("conf-kv-other", "user:carol", "x").unwrap();
    assert_eq!(store.kv_get(ns, "user:bob").unwrap().as_deref(), Some("v0"));
    assert_eq!(store.kv_get(ns, "user:nobody").unwrap(), None);
    assert_eq!(store.kv_get("conf-kv-other", "user:bob").unwrap(), None);
    store.kv_put(ns, "user:bob", "replaced").unwrap();
    assert_eq!(
        store.kv_get(ns, "user:bob").unwrap().as_deref(),
        Some("replaced")
    );

    let list = |prefix: &str| -> Vec<String> {
        store
            .kv_list(ns, prefix)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    // Key order is code point order, whatever the database's locale.
    assert_eq!(
        list("user:"),
        vec!["user:%weird", "user:alice", "user:bob", "user:é"]
    );
    // `%` and `_` are plain characters, not wildcards.
    assert_eq!(list("user%"), vec!["user%"]);
    assert_eq!(list("user_"), vec!["user_x"]);
    assert_eq!(list("a"), vec!["a-b", "aB", "a_c", "ab"]);
    assert_eq!(list("user:é"), vec!["user:é"]);
    assert_eq!(list("nothing"), Vec::<String>::new());
    let mut all: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    all.sort();
    assert_eq!(list(""), all);
    assert_eq!(
        store.kv_list(ns, "user:b").unwrap(),
        vec![("user:bob".to_owned(), "replaced".to_owned())]
    );

    assert!(store.kv_delete(ns, "user:alice").unwrap());
    assert!(!store.kv_delete(ns, "user:alice").unwrap());
    assert_eq!(store.kv_get(ns, "user:alice").unwrap(), None);

    // Within a transaction: gone with a rollback, kept with a commit.
    {
        let mut tx = store.begin().unwrap();
        tx.kv_put(ns, "tx:rolled-back", "1").unwrap();
    }
    assert_eq!(store.kv_get(ns, "tx:rolled-back").unwrap(), None);
    let mut tx = store.begin().unwrap();
    assert_eq!(tx.kv_get(ns, "tx:committed").unwrap(), None);
    tx.kv_put(ns, "tx:committed", "1").unwrap();
    tx.kv_put(ns, "tx:committed", "2").unwrap();
    // Read inside the transaction: its own write, and what others committed.
    assert_eq!(tx.kv_get(ns, "tx:committed").unwrap().as_deref(), Some("2"));
    assert_eq!(
        tx.kv_get(ns, "user:bob").unwrap().as_deref(),
        Some("replaced")
    );
    tx.commit().unwrap();
    assert_eq!(
        store.kv_get(ns, "tx:committed").unwrap().as_deref(),
        Some("2")
    );
}

/// Purges everything the cases before it appended (their rows are recorded
/// before 2030; this case's "young" rows are recorded in 2065).
pub fn audit_purge(store: &dyn Store) {
    const OLD: i64 = 1_000;
    const YOUNG: i64 = 3_000_000_000_000;
    const CUT: i64 = 2_500_000_000_000;
    let p = "conf-purge-p";
    let agent = "Practitioner/conf-purge";
    let before = assert_chain_intact(store);
    let row = |recorded: i64, n: usize| {
        audit_append(
            recorded,
            agent,
            "R",
            "read",
            0,
            &[p],
            &format!("{{\"n\":{n}}}"),
        )
    };
    // Five old rows, a young one, an old one after it, and the newest.
    let mut rows: Vec<AuditAppend> = (0..5).map(|n| row(OLD + n as i64, n)).collect();
    rows.push(row(YOUNG, 5));
    rows.push(row(OLD, 6));
    rows.push(row(YOUNG, 7));
    let s = store.append_audit(&rows).unwrap();
    let by_patient = || {
        audit_seqs(
            &store
                .search_audit(&AuditQuery {
                    patient: Some(p.into()),
                    count: 100,
                    ..AuditQuery::default()
                })
                .unwrap(),
        )
    };
    let hash_of = |seq: i64| store.scan_audit(seq - 1, 1).unwrap()[0].hash.clone();
    let (h4, h6) = (hash_of(s[4]), hash_of(s[6]));

    // Everything up to the first young row goes (the old row after it stays:
    // no gap opens in the chain).
    let n = store.purge_audit(CUT).unwrap();
    assert_eq!(n, before + 5);
    assert_eq!(
        store.audit_anchor().unwrap(),
        Some(AuditAnchor {
            seq: s[4],
            hash: h4
        })
    );
    assert_eq!(
        audit_seqs(&store.scan_audit(0, 100).unwrap()),
        s[5..].to_vec()
    );
    assert_eq!(by_patient(), vec![s[7], s[6], s[5]]);
    assert_eq!(assert_chain_intact(store), 3);
    assert_eq!(store.purge_audit(CUT).unwrap(), 0);

    // Never the newest row.
    assert_eq!(store.purge_audit(i64::MAX).unwrap(), 2);
    assert_eq!(
        store.audit_anchor().unwrap(),
        Some(AuditAnchor {
            seq: s[6],
            hash: h6
        })
    );
    assert_eq!(audit_seqs(&store.scan_audit(0, 100).unwrap()), vec![s[7]]);
    assert_eq!(by_patient(), vec![s[7]]);
    assert_eq!(store.purge_audit(i64::MAX).unwrap(), 0);
    assert_eq!(assert_chain_intact(store), 1);

    // The chain goes on from there.
    let next = store.append_audit(&[row(YOUNG, 8)]).unwrap();
    assert_eq!(next, vec![s[7] + 1]);
    assert_eq!(assert_chain_intact(store), 2);
}

/// `StoreTx::lock`: a key is released by commit and by rollback (a second
/// transaction takes it at once; were it not released, PostgreSQL would make
/// it wait for ever), and locking a key twice in one transaction is fine.
pub fn locks_are_released_at_commit_and_rollback(store: &dyn Store) {
    let mut tx = store.begin().unwrap();
    tx.lock(&["conf-lock/a", "conf-lock/b"]).unwrap();
    tx.lock(&["conf-lock/a"]).unwrap();
    tx.commit().unwrap();
    let mut tx = store.begin().unwrap();
    tx.lock(&["conf-lock/a"]).unwrap();
    drop(tx);
    let mut tx = store.begin().unwrap();
    tx.lock(&["conf-lock/b", "conf-lock/a"]).unwrap();
    tx.kv_put("conf-lock", "k", "v").unwrap();
    tx.commit().unwrap();
    assert_eq!(
        store.kv_get("conf-lock", "k").unwrap().as_deref(),
        Some("v")
    );
    // Nothing is left behind in the key-value table by a lock.
    assert_eq!(store.kv_list("conf-lock", "").unwrap().len(), 1);
}
