//! Issue 22, the keyed audit anchor around a running server, and the
//! operator commands that hand out credentials: `serve --audit-key
//! --audit-checkpoints` checkpoints the chain head (at start-up, on a timer
//! and at shutdown) to a file outside the data directory, and `audit verify`
//! checks the chain against it; `wardline user code` works on a demo
//! database only and is audited either way; `wardline token` is audited.
//! On SQLite and (when `WARDLINE_TEST_PG_URL` is set) PostgreSQL.

use std::process::Command;

use crate::audit_tamper::{Anchor, open, tamper, verify};
use crate::common::Env;
use serde_json::json;
use wardline_store::audit::AuditQuery;

/// The checkpoint file's lines.
fn lines(a: &Anchor) -> Vec<String> {
    std::fs::read_to_string(&a.file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn serve_case(env: Env) {
    let a = Anchor::new();
    let mut args = a.args();
    args.extend(["--audit-checkpoint-seconds".into(), "3600".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = env.start_with(&args);
    let r = server.put(
        "Patient/anchor-p1",
        &json!({"resourceType": "Patient", "id": "anchor-p1", "name": [{"family": "Anchor"}]}),
    );
    assert!(r.is_success(), "{}", r.brief());
    let r = server.get("Patient/anchor-p1");
    assert_eq!(r.status, 200, "{}", r.brief());
    server.terminate();
    // The shutdown checkpoint records the head the server left.
    let head = open(&env).audit_head().unwrap();
    let all = lines(&a);
    let last = all
        .last()
        .unwrap_or_else(|| panic!("no checkpoint: {}", server.log_tail(3000)));
    assert!(
        last.contains(&format!(" head seq={} hash={} ", head.seq, head.hash)),
        "{}: head {head:?}, file {all:#?}",
        env.name
    );
    let (code, out) = verify(&env, Some(&a));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit chain intact"), "{out}");
    assert!(
        out.contains(&format!(
            "the newest (line {}) at seq {}",
            all.len(),
            head.seq
        )),
        "{out}"
    );
    // A restart continues the same file (its first line chained to the last).
    let mut server = env.start_with(&args);
    server.terminate();
    let (code, out) = verify(&env, Some(&a));
    assert_eq!(code, 0, "{out}");

    // The newest row deleted and the head moved back while the server is
    // down: the next start-up says so in the log (and still serves), and
    // verify names it: that start-up's checkpoint is behind the one before,
    // and the new row with that seq is not the row checkpointed.
    let head = open(&env).audit_head().unwrap();
    let n = lines(&a).len();
    assert!(lines(&a)[n - 1].contains(&format!(" seq={} hash={} ", head.seq, head.hash)));
    let store = open(&env);
    let prev = store.scan_audit(head.seq - 2, 1).unwrap().remove(0);
    tamper(
        &env,
        &format!(
            "DELETE FROM audit_log WHERE seq = {}; DELETE FROM audit_patient WHERE seq = {};
             UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1;",
            head.seq, head.seq, prev.seq, prev.hash
        ),
    );
    let server = env.start_with(&args);
    let log = server.log_tail(20_000);
    assert!(
        log.contains("the audit chain does not match its newest keyed checkpoint"),
        "{log}"
    );
    drop(server);
    let (code, out) = verify(&env, Some(&a));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "checkpoint line {} records seq {}, behind line {n}'s seq {}: the chain was moved back between them",
            n + 1,
            prev.seq,
            head.seq
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "row {} is not what checkpoint line {n} (",
            head.seq
        )),
        "{out}"
    );
}

#[test]
fn serve_checkpoints_the_chain_head_sqlite() {
    serve_case(Env::sqlite());
}

#[test]
fn serve_checkpoints_the_chain_head_postgres() {
    if let Some(env) = Env::postgres() {
        serve_case(env);
    }
}

fn wardline(env: &Env, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(args)
        .args(env.store_args())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run wardline")
}

/// Audit rows of one subtype, newest first.
fn events(env: &Env, subtype: &str) -> Vec<wardline_store::audit::AuditRow> {
    open(env)
        .search_audit(&AuditQuery {
            subtype: Some(subtype.into()),
            count: 50,
            ..AuditQuery::default()
        })
        .unwrap()
}

fn credentials_case(env: Env) {
    drop(open(&env)); // a database, not a demo one
    env.cli_with_env(
        &["user", "add", "anchor.u1", "--name", "Una Anchor"],
        &[("WARDLINE_NEW_PASSWORD", "a-test-password-1")],
    );
    // Refused outside a demo database, and the attempt audited.
    let out = wardline(&env, &["user", "code", "anchor.u1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", env.name);
    assert!(out.stdout.is_empty(), "no code is printed");
    assert!(
        err.contains("`wardline user code` works only on a demo database"),
        "{err}"
    );
    let shown = events(&env, "security-code-shown");
    assert_eq!(shown.len(), 1, "{}", env.name);
    assert_eq!(
        (shown[0].outcome, shown[0].agent.as_str()),
        (4, "cli:user-code")
    );
    assert!(
        shown[0].json.contains("not a demo database"),
        "{}",
        shown[0].json
    );
    // On a database `serve --demo` marked, the code is printed, audited.
    tamper(
        &env,
        "INSERT INTO system_kv (namespace, key, value) VALUES ('deployment', 'demo', 'test')",
    );
    let code = env.cli(&["user", "code", "anchor.u1"]);
    assert!(
        code.trim().len() == 6 && code.trim().bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    let shown = events(&env, "security-code-shown");
    assert_eq!(shown.len(), 2, "{}", env.name);
    assert_eq!(shown[0].outcome, 0);
    assert!(shown[0].json.contains("Practitioner/"), "{}", shown[0].json);

    // A token minted by the operator command is audited before it is shown.
    env.cli(&[
        "client",
        "add",
        "anchor-client",
        "--name",
        "Anchor client",
        "--scope",
        "system/*.rs",
    ]);
    let before = events(&env, "token-issued").len();
    let token = env.cli(&[
        "token",
        "--client",
        "anchor-client",
        "--scope",
        "system/Patient.rs",
    ]);
    assert!(!token.trim().is_empty());
    let issued = events(&env, "token-issued");
    assert_eq!(issued.len(), before + 1, "{}", env.name);
    assert_eq!(
        (issued[0].outcome, issued[0].agent.as_str()),
        (0, "cli:token")
    );

    // The anchor's files may not live in the (SQLite) data directory.
    if env.name == "sqlite" {
        let inside = env.data_dir().join("checkpoints");
        let a = Anchor::new();
        let out = wardline(
            &env,
            &[
                "audit",
                "checkpoint",
                "--audit-key",
                a.key.to_str().unwrap(),
                "--audit-checkpoints",
                inside.to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("is inside the data directory"), "{err}");
        assert!(!inside.exists());
    }
}

#[test]
fn credentials_from_the_cli_are_audited_sqlite() {
    credentials_case(Env::sqlite());
}

#[test]
fn credentials_from_the_cli_are_audited_postgres() {
    if let Some(env) = Env::postgres() {
        credentials_case(env);
    }
}
