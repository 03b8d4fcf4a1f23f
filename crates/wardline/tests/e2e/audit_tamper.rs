//! Tampering with the audit chain in the database behind Wardline's back is
//! found by `wardline audit verify`, which names the rows: an edited row, a
//! deleted row, two rows swapped, and the newest rows deleted. Each case runs
//! on a fresh store of 20 rows, on SQLite and (when `WARDLINE_TEST_PG_URL` is
//! set) PostgreSQL.

use crate::common;

use std::process::Command;

use common::Env;
use wardline_store::Store;
use wardline_store::audit::AuditAppend;

const ROWS: i64 = 20;

fn database_url(env: &Env) -> Option<String> {
    let args = env.store_args();
    let i = args.iter().position(|a| a == "--database")?;
    args.get(i + 1).cloned()
}

fn open(env: &Env) -> Box<dyn Store> {
    match database_url(env) {
        Some(url) => Box::new(wardline_store_postgres::PostgresStore::connect(&url).unwrap()),
        None => Box::new(
            wardline_store_sqlite::SqliteStore::open(&env.data_dir().join("wardline.db")).unwrap(),
        ),
    }
}

/// Runs SQL on the database directly, as someone with database access would.
fn tamper(env: &Env, sql: &str) {
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

/// `wardline audit verify` on the store: exit code and stdout.
fn verify(env: &Env) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(["audit", "verify"])
        .args(env.store_args())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run wardline audit verify");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

/// A store holding an intact chain of [`ROWS`] rows, appended in and out of
/// transactions; `verify` says so.
fn fresh(make_env: &dyn Fn() -> Env) -> Env {
    let env = make_env();
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
        assert_eq!(
            store.append_audit(&rows[13..]).unwrap(),
            (14..=ROWS).collect::<Vec<_>>()
        );
    }
    let (code, out) = verify(&env);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("audit chain intact: {ROWS} rows (seq 1..{ROWS})")),
        "{out}"
    );
    env
}

/// Verifies a tampered store: exit 1, exactly these findings, and a summary.
fn assert_findings(env: &Env, want: &[&str]) {
    let (code, out) = verify(env);
    assert_eq!(code, 1, "{out}");
    let findings: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("audit chain BROKEN"))
        .collect();
    assert_eq!(findings, want, "{}: {out}", env.name);
    assert!(
        out.contains(&format!(
            "audit chain BROKEN: {} finding{}",
            want.len(),
            if want.len() == 1 { "" } else { "s" }
        )),
        "{out}"
    );
}

fn tamper_cases(make_env: &dyn Fn() -> Env) {
    // (a) A row's content edited.
    let env = fresh(make_env);
    tamper(
        &env,
        r#"UPDATE audit_log SET content = '{"resourceType":"AuditEvent","n":0}' WHERE seq = 7"#,
    );
    assert_findings(
        &env,
        &["row 7 was altered: its hash does not match its content"],
    );

    // (b) A row in the middle deleted.
    let env = fresh(make_env);
    tamper(&env, "DELETE FROM audit_log WHERE seq = 10");
    assert_findings(&env, &["rows 10..10 are missing (deleted)"]);

    // (c) Two rows swapped (their seq values exchanged).
    let env = fresh(make_env);
    tamper(
        &env,
        "UPDATE audit_log SET seq = -1 WHERE seq = 4;
         UPDATE audit_log SET seq = 4 WHERE seq = 5;
         UPDATE audit_log SET seq = 5 WHERE seq = -1;",
    );
    assert_findings(
        &env,
        &[
            "row 4 was altered: its hash does not match its content",
            "row 4 does not follow the row before it (reordered or replaced)",
            "row 5 was altered: its hash does not match its content",
            "row 5 does not follow the row before it (reordered or replaced)",
            "row 6 does not follow the row before it (reordered or replaced)",
        ],
    );

    // (d) The newest rows deleted.
    let env = fresh(make_env);
    tamper(&env, "DELETE FROM audit_log WHERE seq > 17");
    assert_findings(
        &env,
        &["rows 18..20 are missing from the end (the chain head is 20)"],
    );
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
/// chain still verifies from the new anchor.
fn retention_case(make_env: &dyn Fn() -> Env) {
    let env = fresh(make_env);
    let mut server = env.start_with(&["--audit-retention-days", "30"]);
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
    let (code, out) = verify(&env);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "verified from the purge anchor at seq {}",
            ROWS - 1
        )),
        "{out}"
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
