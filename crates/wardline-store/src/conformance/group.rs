//! Concurrent transactions (issue 21, group commit): each commits or fails
//! alone, whatever the backend groups together.

use crate::audit::AuditAppend;
use crate::{ResourceWrite, Store, StoreError, WriteMethod};

fn basic(id: &str, expected: Option<i64>) -> ResourceWrite {
    ResourceWrite {
        resource_type: "Basic".into(),
        id: id.into(),
        expected_version: expected,
        version: expected.unwrap_or(0) + 1,
        last_updated_ms: 5_000,
        method: WriteMethod::Create,
        json: format!(r#"{{"resourceType":"Basic","id":"{id}"}}"#),
        patient_key: None,
        index: vec![],
    }
}

/// Sixteen threads write concurrently, each with an audit row; one rolls
/// back after writing and one fails on a version conflict: exactly those two
/// are lost, every commit that returned `Ok` is readable, and the audit
/// chain stays whole. Returns the ids whose commit returned `Ok` (a backend
/// test checks them again after reopening).
pub fn concurrent_commits_one_fails(store: &dyn Store) -> Vec<String> {
    const THREADS: usize = 16;
    const ROUNDS: usize = 5;
    let h0 = store.audit_head().unwrap();
    let committed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let committed = &committed;
            scope.spawn(move || {
                for r in 0..ROUNDS {
                    let id = format!("gc-{t}-{r}");
                    let mut tx = store.begin().unwrap();
                    match t {
                        // Writes, then rolls back (dropped).
                        5 => {
                            tx.write(basic(&id, None)).unwrap();
                            assert!(tx.read("Basic", &id).unwrap().is_some());
                            drop(tx);
                        }
                        // A version conflict, found at the write or (a
                        // backend that batches writes) at commit: nothing
                        // of it is written.
                        9 => {
                            let e = match tx.write(basic(&id, Some(7))) {
                                Err(e) => e,
                                Ok(()) => tx.commit().unwrap_err(),
                            };
                            assert!(matches!(e, StoreError::VersionConflict { .. }), "{e}");
                        }
                        _ => {
                            tx.write(basic(&id, None)).unwrap();
                            tx.append_audit(&[AuditAppend {
                                recorded_ms: 5_000,
                                agent: format!("conf-group-{t}"),
                                action: "C".into(),
                                subtype: "create".into(),
                                outcome: 0,
                                patients: vec![],
                                json: format!(r#"{{"id":"{id}"}}"#),
                            }])
                            .unwrap();
                            tx.commit().unwrap();
                            committed.lock().unwrap().push(id);
                        }
                    }
                }
            });
        }
    });
    let committed = committed.into_inner().unwrap();
    assert_eq!(committed.len(), (THREADS - 2) * ROUNDS);
    for id in &committed {
        assert!(store.read("Basic", id).unwrap().is_some(), "{id} lost");
    }
    for r in 0..ROUNDS {
        for t in [5, 9] {
            let id = format!("gc-{t}-{r}");
            assert!(store.read("Basic", &id).unwrap().is_none(), "{id} kept");
        }
    }
    let head = store.audit_head().unwrap();
    assert_eq!(head.seq, h0.seq + committed.len() as i64);
    // Chained in the order they were appended: each row's hash is the next
    // one's previous hash, from the head before.
    let rows = store.scan_audit(h0.seq, 1_000).unwrap();
    assert_eq!(rows.len(), committed.len());
    let mut prev = h0.hash.clone();
    for row in &rows {
        assert_eq!(row.prev_hash, prev, "audit row {}", row.seq);
        prev = row.hash.clone();
    }
    assert_eq!(head.hash, prev);
    committed
}
