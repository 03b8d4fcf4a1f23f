//! Tampering with the audit chain in the database behind Wardline's back is
//! found by `wardline audit verify`, which names what is wrong and where.
//! Issue 22: the eighteen tampering cases, each on a fresh store of 20 rows
//! anchored by two keyed checkpoints (at seq 13 and 20, in a file outside the
//! data directory, sealed with a key made by `wardline audit key init`), on
//! SQLite and (when `WARDLINE_TEST_PG_URL` is set) PostgreSQL. The cases only
//! the keyed anchor can find are also verified without the key: the chain
//! alone says intact, and says it is not anchored.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::Env;
use wardline_store::Store;
use wardline_store::audit::{self, AuditAppend, AuditRow, GENESIS};

const ROWS: i64 = 20;

fn database_url(env: &Env) -> Option<String> {
    let args = env.store_args();
    let i = args.iter().position(|a| a == "--database")?;
    args.get(i + 1).cloned()
}

pub(crate) fn open(env: &Env) -> Box<dyn Store> {
    match database_url(env) {
        Some(url) => Box::new(wardline_store_postgres::PostgresStore::connect(&url).unwrap()),
        None => Box::new(
            wardline_store_sqlite::SqliteStore::open(&env.data_dir().join("wardline.db")).unwrap(),
        ),
    }
}

/// Runs SQL on the database directly, as someone with database access would.
pub(crate) fn tamper(env: &Env, sql: &str) {
    match database_url(env) {
        Some(url) => postgres::Client::connect(&url, postgres::NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap(),
        None => rusqlite::Connection::open(env.data_dir().join("wardline.db"))
            .unwrap()
            .execute_batch(sql)
            .unwrap(),
    }
}

fn row(n: i64) -> AuditAppend {
    AuditAppend {
        recorded_ms: 1_760_000_000_000 + n * 1_000,
        agent: format!("Practitioner/p{}", n % 3),
        action: if n % 4 == 0 { "U" } else { "R" }.into(),
        subtype: if n % 4 == 0 { "update" } else { "read" }.into(),
        outcome: 0,
        patients: vec![format!("patient-{}", n % 5)],
        json: format!(r#"{{"resourceType":"AuditEvent","n":{n}}}"#),
    }
}

/// The audit key and the checkpoint file, in a directory of their own
/// (outside the data directory), removed with it.
pub(crate) struct Anchor {
    _dir: tempfile::TempDir,
    pub key: PathBuf,
    pub file: PathBuf,
}

impl Anchor {
    pub(crate) fn new() -> Anchor {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("audit.key");
        let out = wardline(&["audit", "key", "init", "--out", key.to_str().unwrap()]);
        assert!(out.0 == 0, "{}", out.1);
        Anchor {
            key,
            file: dir.path().join("audit-checkpoints"),
            _dir: dir,
        }
    }

    pub(crate) fn args(&self) -> Vec<String> {
        vec![
            "--audit-key".into(),
            self.key.display().to_string(),
            "--audit-checkpoints".into(),
            self.file.display().to_string(),
        ]
    }
}

/// Runs `wardline ARGS`: exit code and stdout + stderr.
fn wardline(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run wardline");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

/// `wardline audit …` on the store (with the anchor's files when given).
fn audit_cmd(env: &Env, cmd: &str, anchor: Option<&Anchor>) -> (i32, String) {
    let mut args: Vec<String> = vec!["audit".into(), cmd.into()];
    args.extend(env.store_args());
    if let Some(a) = anchor {
        args.extend(a.args());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    wardline(&args)
}

/// `wardline audit verify` on the store: exit code and output.
pub(crate) fn verify(env: &Env, anchor: Option<&Anchor>) -> (i32, String) {
    audit_cmd(env, "verify", anchor)
}

fn checkpoint(env: &Env, anchor: &Anchor) {
    let (code, out) = audit_cmd(env, "checkpoint", Some(anchor));
    assert_eq!(code, 0, "{out}");
}

/// A store holding an intact chain of [`ROWS`] rows, appended in and out of
/// transactions, checkpointed at seq 13 and at seq 20; `verify` says so,
/// with and without the key.
fn fresh(make_env: &dyn Fn() -> Env) -> (Env, Anchor) {
    let env = make_env();
    let anchor = Anchor::new();
    {
        let store = open(&env);
        let rows: Vec<AuditAppend> = (1..=ROWS).map(row).collect();
        assert_eq!(
            store.append_audit(&rows[..8]).unwrap(),
            (1..=8).collect::<Vec<_>>()
        );
        let mut tx = store.begin().unwrap();
        tx.append_audit(&rows[8..13]).unwrap();
        tx.commit().unwrap();
        checkpoint(&env, &anchor);
        assert_eq!(
            store.append_audit(&rows[13..]).unwrap(),
            (14..=ROWS).collect::<Vec<_>>()
        );
        checkpoint(&env, &anchor);
    }
    let (code, out) = verify(&env, Some(&anchor));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("audit chain intact: {ROWS} rows (seq 1..{ROWS})")),
        "{out}"
    );
    assert!(
        out.contains("anchor: checked against 2 keyed checkpoints, the newest (line 2) at seq 20"),
        "{out}"
    );
    (env, anchor)
}

/// The instants in a finding, `(2026-12-04T13:40:00.123Z)`, as `(T)`.
fn untimed(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find('(') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find(')') {
            Some(j) if j == 24 && after[..j].ends_with('Z') && after.starts_with("20") => {
                out.push_str("(T)");
                rest = &after[j + 1..];
            }
            _ => {
                out.push('(');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The finding lines of a verify output.
fn findings(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with("audit chain ") && !l.starts_with("anchor: "))
        .map(untimed)
        .collect()
}

/// Verifies a tampered store with the key: exit 1, exactly these findings,
/// and a summary.
fn assert_findings(env: &Env, anchor: &Anchor, case: &str, want: &[&str]) {
    let (code, out) = verify(env, Some(anchor));
    assert_eq!(code, 1, "{case}: {out}");
    assert_eq!(findings(&out), want, "{}: {case}: {out}", env.name);
    assert!(
        out.contains(&format!(
            "audit chain BROKEN: {} finding{}",
            want.len(),
            if want.len() == 1 { "" } else { "s" }
        )),
        "{case}: {out}"
    );
}

/// What main measured: without the key, the chain alone passes.
fn passes_unanchored(env: &Env, case: &str) {
    let (code, out) = verify(env, None);
    assert_eq!(code, 0, "{case}: {out}");
    assert!(out.contains("audit chain intact"), "{case}: {out}");
    assert!(
        out.contains("the chain is not anchored, so a chain rewritten and re-hashed"),
        "{case}: {out}"
    );
}

/// The rows of the chain, in order.
fn rows(env: &Env) -> Vec<AuditRow> {
    open(env).scan_audit(0, 1_000).unwrap()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The database administrator's rewrite: every row after `keep_upto`
/// replaced by `appends`, chained and hashed as Wardline would, with their
/// patient-index entries, and the head moved to the last.
fn rechain(env: &Env, keep_upto: i64, appends: &[AuditAppend]) {
    let prev = rows(env)
        .iter()
        .find(|r| r.seq == keep_upto)
        .map_or_else(|| GENESIS.to_owned(), |r| r.hash.clone());
    let chained = audit::chain(keep_upto, &prev, appends);
    let mut sql = format!(
        "DELETE FROM audit_log WHERE seq > {keep_upto}; DELETE FROM audit_patient WHERE seq > {keep_upto};"
    );
    for r in &chained {
        sql.push_str(&format!(
            "INSERT INTO audit_log (seq, recorded, agent, action, subtype, outcome, patients, content, prev_hash, hash) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {});",
            r.seq,
            r.recorded_ms,
            quote(&r.agent),
            quote(&r.action),
            quote(&r.subtype),
            r.outcome,
            quote(&r.patients.join(" ")),
            quote(&r.json),
            quote(&r.prev_hash),
            quote(&r.hash)
        ));
        for p in &r.patients {
            sql.push_str(&format!(
                "INSERT INTO audit_patient (seq, patient) VALUES ({}, {});",
                r.seq,
                quote(p)
            ));
        }
    }
    let last = chained.last().expect("rows to chain");
    sql.push_str(&format!(
        "UPDATE audit_head SET seq = {}, hash = {} WHERE id = 1;",
        last.seq,
        quote(&last.hash)
    ));
    tamper(env, &sql);
}

fn hash_of(env: &Env, seq: i64) -> String {
    rows(env)
        .into_iter()
        .find(|r| r.seq == seq)
        .expect("the row")
        .hash
}

const ALTERED: &str = "was altered: its hash does not match its content";

fn tamper_cases(make_env: &dyn Fn() -> Env) {
    // 1. A row's content (the AuditEvent) edited.
    let (env, a) = fresh(make_env);
    tamper(
        &env,
        r#"UPDATE audit_log SET content = '{"resourceType":"AuditEvent","n":0}' WHERE seq = 7"#,
    );
    assert_findings(&env, &a, "content edited", &[&format!("row 7 {ALTERED}")]);

    // 2. A row's recorded time changed (an access moved an hour later).
    let (env, a) = fresh(make_env);
    tamper(
        &env,
        "UPDATE audit_log SET recorded = recorded + 3600000 WHERE seq = 8",
    );
    assert_findings(&env, &a, "time changed", &[&format!("row 8 {ALTERED}")]);

    // 3. A row's agent changed (the access blamed on someone else).
    let (env, a) = fresh(make_env);
    tamper(
        &env,
        "UPDATE audit_log SET agent = 'Practitioner/someone-else' WHERE seq = 9",
    );
    assert_findings(&env, &a, "agent changed", &[&format!("row 9 {ALTERED}")]);

    // 4. A row edited and the chain re-hashed from it on, the head moved to
    //    match: only the keyed checkpoints show it.
    let (env, a) = fresh(make_env);
    let mut appends: Vec<AuditAppend> = (7..=ROWS).map(row).collect();
    appends[0].json = r#"{"resourceType":"AuditEvent","n":0}"#.into();
    rechain(&env, 6, &appends);
    passes_unanchored(&env, "edit + re-hash");
    assert_findings(
        &env,
        &a,
        "edit + re-hash",
        &[
            "row 13 is not what checkpoint line 1 (T) anchored: the chain was rewritten and re-hashed within rows 1..13; 1 later checkpoint disagrees too",
        ],
    );

    // 5. A row in the middle deleted.
    let (env, a) = fresh(make_env);
    tamper(&env, "DELETE FROM audit_log WHERE seq = 10");
    assert_findings(
        &env,
        &a,
        "middle row deleted",
        &["rows 10..10 are missing (deleted)"],
    );

    // 6. A row in the middle deleted, the rows after it renumbered and
    //    re-hashed, the head moved back by one.
    let (env, a) = fresh(make_env);
    let appends: Vec<AuditAppend> = (11..=ROWS).map(row).collect();
    rechain(&env, 9, &appends);
    passes_unanchored(&env, "delete + re-hash");
    assert_findings(
        &env,
        &a,
        "delete + re-hash",
        &[
            "the chain head is seq 19, but checkpoint line 2 (T) recorded seq 20: rows 20..20 were deleted and the head moved back",
            "row 13 is not what checkpoint line 1 (T) anchored: the chain was rewritten and re-hashed within rows 1..13",
        ],
    );

    // 7. Two rows swapped (their seq values exchanged).
    let (env, a) = fresh(make_env);
    tamper(
        &env,
        "UPDATE audit_log SET seq = -1 WHERE seq = 4;
         UPDATE audit_log SET seq = 4 WHERE seq = 5;
         UPDATE audit_log SET seq = 5 WHERE seq = -1;",
    );
    assert_findings(
        &env,
        &a,
        "rows swapped",
        &[
            &format!("row 4 {ALTERED}"),
            "row 4 does not follow the row before it (reordered or replaced)",
            &format!("row 5 {ALTERED}"),
            "row 5 does not follow the row before it (reordered or replaced)",
            "row 6 does not follow the row before it (reordered or replaced)",
            // The index still lists each seq's old patient.
            "row 4's patient index (audit_patient) was altered: it lacks patient-0 (a search by patient would not find the row); it lists patient-4, whom the row does not name",
            "row 5's patient index (audit_patient) was altered: it lacks patient-4 (a search by patient would not find the row); it lists patient-0, whom the row does not name",
        ],
    );

    // 8. Two rows reordered and the chain re-hashed from them on.
    let (env, a) = fresh(make_env);
    let mut appends: Vec<AuditAppend> = (4..=ROWS).map(row).collect();
    appends.swap(0, 1);
    rechain(&env, 3, &appends);
    passes_unanchored(&env, "reorder + re-hash");
    assert_findings(
        &env,
        &a,
        "reorder + re-hash",
        &[
            "row 13 is not what checkpoint line 1 (T) anchored: the chain was rewritten and re-hashed within rows 1..13; 1 later checkpoint disagrees too",
        ],
    );

    // 9. The newest rows deleted (the head left as it was).
    let (env, a) = fresh(make_env);
    tamper(&env, "DELETE FROM audit_log WHERE seq > 17");
    assert_findings(
        &env,
        &a,
        "newest rows deleted",
        &[
            "rows 18..20 are missing from the end (the chain head is 20)",
            "row 20, anchored by checkpoint line 2 (T), is missing",
        ],
    );

    // 10. The newest rows deleted and the head moved back to match.
    let (env, a) = fresh(make_env);
    let h17 = hash_of(&env, 17);
    tamper(
        &env,
        &format!(
            "DELETE FROM audit_log WHERE seq > 17; DELETE FROM audit_patient WHERE seq > 17;
             UPDATE audit_head SET seq = 17, hash = '{h17}' WHERE id = 1;"
        ),
    );
    passes_unanchored(&env, "head moved back");
    assert_findings(
        &env,
        &a,
        "head moved back",
        &[
            "the chain head is seq 17, but checkpoint line 2 (T) recorded seq 20: rows 18..20 were deleted and the head moved back",
        ],
    );

    // 11. Everything deleted and the head reset to the empty chain.
    let (env, a) = fresh(make_env);
    tamper(
        &env,
        &format!(
            "DELETE FROM audit_log; DELETE FROM audit_patient;
             UPDATE audit_head SET seq = 0, hash = '{GENESIS}' WHERE id = 1;"
        ),
    );
    passes_unanchored(&env, "all deleted");
    assert_findings(
        &env,
        &a,
        "all deleted",
        &[
            "the chain head is seq 0, but checkpoint line 2 (T) recorded seq 20: rows 1..20 were deleted and the head moved back",
        ],
    );

    // 12. A forged purge anchor: the oldest rows deleted and an anchor set
    //     in the database, as if retention had purged them.
    let (env, a) = fresh(make_env);
    let h5 = hash_of(&env, 5);
    tamper(
        &env,
        &format!(
            "DELETE FROM audit_log WHERE seq <= 5; DELETE FROM audit_patient WHERE seq <= 5;
             INSERT INTO audit_anchor (id, seq, hash) VALUES (1, 5, '{h5}');"
        ),
    );
    passes_unanchored(&env, "forged purge anchor");
    assert_findings(
        &env,
        &a,
        "forged purge anchor",
        &[
            "the purge anchor (seq 5) is recorded by no checkpoint: rows up to seq 5 were deleted and the anchor set in the database, not by a keyed purge (or a purge ran without --audit-key)",
        ],
    );

    // 13. A row inserted after the head (chained from it, the head left):
    //     verify names it; a running server refuses what it cannot audit
    //     and says why; `wardline token` too.
    inserted_after_the_head(make_env);

    // 14. The patient index emptied: a search of the audit trail by patient
    //     finds nothing.
    let (env, a) = fresh(make_env);
    tamper(&env, "DELETE FROM audit_patient");
    let (code, out) = verify(&env, Some(&a));
    assert_eq!(code, 1, "{out}");
    let f = findings(&out);
    assert_eq!(f.len(), ROWS as usize, "{out}");
    assert_eq!(
        f[0],
        "row 1's patient index (audit_patient) was altered: it lacks patient-1 (a search by patient would not find the row)"
    );
    assert!(out.contains("audit chain BROKEN: 20 findings"), "{out}");

    // 15. A patient-index entry edited: the access hidden from one
    //     patient's trail and shown on another's.
    let (env, a) = fresh(make_env);
    tamper(
        &env,
        "UPDATE audit_patient SET patient = 'patient-9' WHERE seq = 12",
    );
    assert_findings(
        &env,
        &a,
        "index edited",
        &[
            "row 12's patient index (audit_patient) was altered: it lacks patient-2 (a search by patient would not find the row); it lists patient-9, whom the row does not name",
        ],
    );

    // 16. A row duplicated: the newest copied as seq 21, the head moved to it.
    let (env, a) = fresh(make_env);
    let h20 = hash_of(&env, 20);
    tamper(
        &env,
        &format!(
            "INSERT INTO audit_log (seq, recorded, agent, action, subtype, outcome, patients, content, prev_hash, hash)
               SELECT 21, recorded, agent, action, subtype, outcome, patients, content, prev_hash, hash
               FROM audit_log WHERE seq = 20;
             INSERT INTO audit_patient (seq, patient) SELECT 21, patient FROM audit_patient WHERE seq = 20;
             UPDATE audit_head SET seq = 21, hash = '{h20}' WHERE id = 1;"
        ),
    );
    assert_findings(
        &env,
        &a,
        "row duplicated",
        &[
            &format!("row 21 {ALTERED}"),
            "row 21 does not follow the row before it (reordered or replaced)",
        ],
    );

    // 17. The chain head's hash edited.
    let (env, a) = fresh(make_env);
    tamper(
        &env,
        &format!(
            "UPDATE audit_head SET hash = '{}' WHERE id = 1",
            "f".repeat(64)
        ),
    );
    assert_findings(
        &env,
        &a,
        "head edited",
        &[
            "the chain head names row 20 with another hash than the row has (the head or the row was rewritten)",
        ],
    );

    // 18. The newest rows deleted, the head moved back, and the checkpoint
    //     file edited to match: without the key its line cannot be sealed.
    let (env, a) = fresh(make_env);
    let h17 = hash_of(&env, 17);
    tamper(
        &env,
        &format!(
            "DELETE FROM audit_log WHERE seq > 17; DELETE FROM audit_patient WHERE seq > 17;
             UPDATE audit_head SET seq = 17, hash = '{h17}' WHERE id = 1;"
        ),
    );
    let text = std::fs::read_to_string(&a.file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let h20 = lines[1]
        .split(' ')
        .find_map(|w| w.strip_prefix("hash="))
        .unwrap()
        .to_owned();
    let forged = lines[1].replace("seq=20", "seq=17").replace(&h20, &h17);
    std::fs::write(&a.file, format!("{}\n{forged}\n", lines[0])).unwrap();
    assert_findings(
        &env,
        &a,
        "checkpoint file edited",
        &["checkpoint line 2 fails the key check: it was edited, or made with another audit key"],
    );
}

/// Case 13: a row inserted after the head behind the server's back.
fn inserted_after_the_head(make_env: &dyn Fn() -> Env) {
    let (env, a) = fresh(make_env);
    let server = env.start();
    // Something was audited while serving: find the head now.
    let head = open(&env).audit_head().unwrap();
    let fake = audit::chain(head.seq, &head.hash, &[row(99)]).remove(0);
    tamper(
        &env,
        &format!(
            "INSERT INTO audit_log (seq, recorded, agent, action, subtype, outcome, patients, content, prev_hash, hash)
             VALUES ({}, {}, 'Practitioner/p0', 'R', 'read', 0, '', '{{}}', '{}', '{}');",
            fake.seq, fake.recorded_ms, fake.prev_hash, fake.hash
        ),
    );
    let r = server.get("Patient?_count=1");
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        r.text.contains(&format!(
            "a row with seq {} already lies beyond the chain head (seq {})",
            head.seq + 1,
            head.seq
        )),
        "{}",
        r.text
    );
    let (code, out) = verify(&env, Some(&a));
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        findings(&out),
        vec![format!(
            "1 row from seq {} lies beyond the chain head (seq {}): inserted behind Wardline's back; no audit event can be appended until removed",
            head.seq + 1,
            head.seq
        )],
        "{out}"
    );
    // Without the key too: it is the chain's own evidence.
    let (code, out) = verify(&env, None);
    assert_eq!(code, 1, "{out}");
    drop(server);
}

#[test]
fn tampering_is_found_sqlite() {
    tamper_cases(&Env::sqlite);
}

#[test]
fn tampering_is_found_postgres() {
    if Env::postgres().is_none() {
        return;
    }
    tamper_cases(&|| Env::postgres().expect("WARDLINE_TEST_PG_URL"));
}

/// `serve --audit-retention-days` purges rows past retention at start-up
/// (here all 20, dated 2025, except the newest, which the chain keeps) and the
/// chain still verifies from the new anchor. With the keyed anchor, the
/// purge is checkpointed, so the anchor verifies against the checkpoints.
fn retention_case(make_env: &dyn Fn() -> Env) {
    let (env, a) = fresh(make_env);
    let mut args = vec!["--audit-retention-days".to_owned(), "30".to_owned()];
    args.extend(a.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = env.start_with(&args);
    let store = open(&env);
    let mut anchor = None;
    for _ in 0..600 {
        anchor = store.audit_anchor().unwrap();
        if anchor.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.terminate();
    let anchor =
        anchor.unwrap_or_else(|| panic!("no purge within 60 s: {}", server.log_tail(3000)));
    assert_eq!(anchor.seq, ROWS - 1, "{}", env.name);
    for key in [None, Some(&a)] {
        let (code, out) = verify(&env, key);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains(&format!(
                "verified from the purge anchor at seq {}",
                ROWS - 1
            )),
            "{out}"
        );
    }
    let text = std::fs::read_to_string(&a.file).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(" purge seq=19 ") && l.contains(&anchor.hash)),
        "{text}"
    );
}

#[test]
fn retention_purges_sqlite() {
    retention_case(&Env::sqlite);
}

#[test]
fn retention_purges_postgres() {
    if Env::postgres().is_none() {
        return;
    }
    retention_case(&|| Env::postgres().expect("WARDLINE_TEST_PG_URL"));
}
