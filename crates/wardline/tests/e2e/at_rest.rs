//! Issue 22, encryption at rest:
//!
//! * SQLite with a database key (`wardline key init`, `--db-key-file`): the
//!   file and its WAL carry no "SQLite format 3" header and no patient name;
//!   the server serves with the key; without it, or with another key, every
//!   command is refused naming the key (and nothing new is created); a
//!   backup of the encrypted database is itself encrypted with the same key
//!   and restores with it only;
//! * `wardline encrypt-db`: a plaintext database converted keeps every
//!   resource, its audit chain verifies, and its secrets are sealed;
//! * secrets (PostgreSQL and SQLite): password hashes, TOTP seeds and the
//!   token signing key are sealed when the key is first given (the
//!   migration), no value holds them in plaintext, sign-in with a TOTP code
//!   still works, and a server started without the key is refused.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Env, path_str, wardline_cli};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const PASSWORD: &str = "a-test-password-1";
const NAME: &str = "Quillfeatherstone";

fn new_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = wardline_cli(&["key", "init", "--out", path_str(&path)]);
    assert!(out.ok, "key init: {}", out.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is owner-only");
    }
    // Never overwritten.
    let again = wardline_cli(&["key", "init", "--out", path_str(&path)]);
    assert!(!again.ok);
    assert!(
        again.stderr.contains("never overwritten"),
        "{}",
        again.stderr
    );
    path
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The database file and its WAL, as bytes (the WAL may be absent).
fn db_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    ["wardline.db", "wardline.db-wal"]
        .iter()
        .filter_map(|f| {
            std::fs::read(dir.join(f))
                .ok()
                .map(|b| ((*f).to_owned(), b))
        })
        .collect()
}

/// No patient name (nor any of `secrets`) in the database file or its WAL;
/// with `settled` (no server running, the WAL checkpointed by the last
/// command's close), the file is all there and has no plaintext header.
fn assert_unreadable(dir: &Path, secrets: &[&str], settled: bool) {
    let files = db_bytes(dir);
    assert!(!files.is_empty());
    for (name, bytes) in &files {
        if name == "wardline.db" && settled {
            assert!(bytes.len() > 4096, "{name}: {} bytes", bytes.len());
            assert!(
                !bytes.starts_with(b"SQLite format 3\0"),
                "{name} has a plaintext SQLite header"
            );
        }
        for needle in std::iter::once(&NAME).chain(secrets) {
            assert!(
                !contains(bytes, needle.as_bytes()),
                "{name} holds '{needle}' in plaintext"
            );
        }
    }
}

fn patient(name: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": name, "given": ["Ada"]}],
           "gender": "female", "birthDate": "1961-03-04"})
}

/// `wardline serve` refused at start-up: it exits with an error (not a
/// signal) whose text is returned.
fn serve_refused(extra: &[&str]) -> String {
    let mut args: Vec<String> = vec!["serve".into(), "--listen".into()];
    args.push(format!("127.0.0.1:{}", common::free_port()));
    args.extend(extra.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(&refs)
        .env("RUST_LOG", "warn")
        .env_remove("WARDLINE_DB_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run wardline serve");
    assert_eq!(out.status.code(), Some(1), "serve exits with an error");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_encrypted_sqlite_database_reads_only_with_its_key() {
    let keys = tempfile::tempdir().unwrap();
    let key = new_key(keys.path(), "db.key");
    let other = new_key(keys.path(), "other.key");
    let env = Env::sqlite();
    env.use_db_key_file(&key);
    let id = {
        let server = env.start();
        let r = server.post("Patient", &patient(NAME));
        assert_eq!(r.status, 201, "{}", r.brief());
        let id = r.body["id"].as_str().unwrap().to_owned();
        // The WAL holds the write until a checkpoint: it too is encrypted.
        assert_unreadable(env.data_dir(), &[], false);
        id
    };
    // A command's close checkpoints the WAL into the file.
    let out = env.cli(&["audit", "verify"]);
    assert!(out.contains("intact"), "{out}");
    assert_unreadable(env.data_dir(), &[], true);

    // The server serves with the key after a restart.
    {
        let server = env.start();
        let r = server.get(&format!("Patient/{id}"));
        assert_eq!(r.status, 200, "{}", r.brief());
        assert_eq!(r.body["name"][0]["family"], NAME);
    }

    let db = env.data_dir().join("wardline.db");
    let size = std::fs::metadata(&db).unwrap().len();
    let plain = Env::sqlite();
    let dir = env.data_dir().to_str().unwrap().to_owned();
    // Without the key: a clear error naming the file and the option.
    let out = wardline_cli(&["audit", "verify", "--data-dir", &dir]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("is encrypted") && out.stderr.contains("--db-key-file"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(path_str(&db)),
        "names the file: {}",
        out.stderr
    );
    let err = serve_refused(&["--data-dir", &dir]);
    assert!(err.contains("--db-key-file"), "{err}");
    // With another key: refused, naming that key; nothing is created or changed.
    let out = wardline_cli(&[
        "audit",
        "verify",
        "--data-dir",
        &dir,
        "--db-key-file",
        path_str(&other),
    ]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains(path_str(&other)) && out.stderr.contains("not the key"),
        "{}",
        out.stderr
    );
    let err = serve_refused(&["--data-dir", &dir, "--db-key-file", path_str(&other)]);
    assert!(err.contains(path_str(&other)), "{err}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), size);
    // A plaintext database given a key is refused too, naming what to run.
    drop(plain.start());
    let err = serve_refused(&[
        "--data-dir",
        path_str(plain.data_dir()),
        "--db-key-file",
        path_str(&key),
    ]);
    assert!(
        err.contains("is not encrypted") && err.contains("wardline encrypt-db"),
        "{err}"
    );
    // With the key: the chain verifies.
    let out = env.cli(&["audit", "verify"]);
    assert!(out.contains("intact"), "{out}");

    // A backup of the encrypted database is encrypted with the same key,
    // and restores and serves with it only.
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("b.db");
    let out = wardline_cli(&[
        "backup",
        "--out",
        path_str(&file),
        "--data-dir",
        &dir,
        "--db-key-file",
        path_str(&key),
    ]);
    assert!(out.ok, "backup: {}", out.stderr);
    let bytes = std::fs::read(&file).unwrap();
    assert!(!bytes.starts_with(b"SQLite format 3\0"));
    assert!(!contains(&bytes, NAME.as_bytes()));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(backups.path().join("b.db.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["database_encryption"], "sqlcipher");
    let target = Env::sqlite();
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&file),
        "--data-dir",
        path_str(target.data_dir()),
    ]);
    assert!(!out.ok);
    assert!(out.stderr.contains("--db-key-file"), "{}", out.stderr);
    assert!(!target.data_dir().join("wardline.db").exists());
    let out = wardline_cli(&[
        "restore",
        "drill",
        "--from",
        path_str(&file),
        "--db-key-file",
        path_str(&key),
    ]);
    assert!(
        out.ok && out.stdout.contains("restore drill OK"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&file),
        "--data-dir",
        path_str(target.data_dir()),
        "--db-key-file",
        path_str(&key),
    ]);
    assert!(out.ok, "restore: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("audit chain: intact"), "{}", out.stdout);
    target.use_db_key_file(&key);
    let server = target.start();
    let r = server.get(&format!("Patient/{id}"));
    assert_eq!(r.status, 200, "{}", r.brief());
    drop(server);
    target.cli(&["audit", "verify"]);
    assert_unreadable(target.data_dir(), &[], true);
}

#[test]
fn a_plaintext_database_converted_keeps_every_resource_and_its_chain() {
    let keys = tempfile::tempdir().unwrap();
    let key = new_key(keys.path(), "db.key");
    let env = Env::sqlite();
    let mut ids = Vec::new();
    {
        let server = env.start();
        for i in 0..25 {
            let r = server.post("Patient", &patient(&format!("{NAME}{i}")));
            assert_eq!(r.status, 201, "{}", r.brief());
            let pid = r.body["id"].as_str().unwrap().to_owned();
            let r = server.post(
                "Observation",
                &json!({"resourceType": "Observation", "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                        "subject": {"reference": format!("Patient/{pid}")},
                        "effectiveDateTime": "2026-12-01T10:00:00Z",
                        "valueQuantity": {"value": 60 + i, "unit": "/min",
                            "system": "http://unitsofmeasure.org", "code": "/min"}}),
            );
            assert_eq!(r.status, 201, "{}", r.brief());
            ids.push(pid);
        }
        // An update and a delete: history and tombstones are kept too.
        let mut p = server.get(&format!("Patient/{}", ids[0])).body;
        p["gender"] = json!("other");
        assert_eq!(server.put(&format!("Patient/{}", ids[0]), &p).status, 200);
        let r = server.delete(&format!("Patient/{}", ids[1]));
        assert!(r.is_success(), "{}", r.brief());
    }
    let added = env.cli_with_env(
        &["user", "add", "rest.u1", "--name", "Rhea Rest"],
        &[("WARDLINE_NEW_PASSWORD", PASSWORD)],
    );
    let seed = totp_secret(&added);
    let plain_bytes = std::fs::read(env.data_dir().join("wardline.db")).unwrap();
    assert!(plain_bytes.starts_with(b"SQLite format 3\0"));

    let converted = Env::sqlite();
    let out = wardline_cli(&[
        "encrypt-db",
        "--data-dir",
        path_str(env.data_dir()),
        "--out-data-dir",
        path_str(converted.data_dir()),
        "--db-key-file",
        path_str(&key),
    ]);
    assert!(out.ok, "encrypt-db: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("audit chain intact"), "{}", out.stdout);
    assert_unreadable(converted.data_dir(), &[&seed], true);
    // Into a directory that is not empty: refused.
    let out = wardline_cli(&[
        "encrypt-db",
        "--data-dir",
        path_str(env.data_dir()),
        "--out-data-dir",
        path_str(converted.data_dir()),
        "--db-key-file",
        path_str(&key),
    ]);
    assert!(
        !out.ok && out.stderr.contains("not empty"),
        "{}",
        out.stderr
    );

    converted.use_db_key_file(&key);
    let out = converted.cli(&["audit", "verify"]);
    assert!(out.contains("intact"), "{out}");
    // Decrypted with the key, the secrets inside are sealed too.
    assert_sealed_sqlite(converted.data_dir(), &key, &seed);
    let (a, b) = (env.start(), converted.start());
    for q in [
        "Patient?_summary=count",
        "Observation?_summary=count",
        "Patient?gender=other&_summary=count",
    ] {
        assert_eq!(a.count(q), b.count(q), "{q}");
    }
    assert_eq!(b.count("Patient?_summary=count"), 24);
    for id in &ids[2..] {
        let (x, y) = (
            a.get(&format!("Patient/{id}")),
            b.get(&format!("Patient/{id}")),
        );
        assert_eq!((x.status, &x.body), (y.status, &y.body));
    }
    assert_eq!(b.get(&format!("Patient/{}", ids[1])).status, 410);
    let h = b.get(&format!("Patient/{}/_history", ids[0]));
    assert_eq!(common::entries(&h.body).len(), 2, "{}", h.brief());
}

fn totp_secret(user_add_stdout: &str) -> String {
    user_add_stdout
        .lines()
        .find_map(|l| l.strip_prefix("TOTP secret: "))
        .unwrap_or_else(|| panic!("no TOTP secret in {user_add_stdout}"))
        .trim()
        .to_owned()
}

/// Opens the encrypted SQLite database with its key (as an attacker with
/// the file and the key for the file alone would) and checks that no
/// secret is there in plaintext.
fn assert_sealed_sqlite(dir: &Path, key: &Path, seed: &str) {
    let k = wardline::atrest::DbKey::load(key).unwrap();
    let c = rusqlite::Connection::open(dir.join("wardline.db")).unwrap();
    wardline_store_sqlite::apply_key(&c, &k.sqlcipher_key()).unwrap();
    let mut st = c
        .prepare("SELECT namespace, key, value FROM system_kv")
        .unwrap();
    let rows: Vec<(String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    check_sealed(&rows, seed);
}

fn check_sealed(rows: &[(String, String, String)], seed: &str) {
    let mut accounts = 0;
    let mut signing = 0;
    for (ns, key, value) in rows {
        assert!(!value.contains(seed), "{ns}/{key} holds the TOTP seed");
        assert!(
            !value.contains("argon2"),
            "{ns}/{key} holds a password hash"
        );
        if ns == "account" || ns == "auth" || ns == "at-rest" {
            assert!(
                value.starts_with("wardline-sealed v1 "),
                "{ns}/{key} is not sealed: {value}"
            );
            accounts += usize::from(ns == "account");
            signing += usize::from(ns == "auth" && key == "signing-key");
        }
    }
    assert!(accounts >= 1, "accounts: {rows:?}");
    assert_eq!(signing, 1, "the signing key is there, sealed");
}

fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Signs in through the form with a password and a TOTP code; the status.
fn sign_in(env: &Env, root: &str, user: &str, password: &str) -> u16 {
    let c: Client = crate::ui::browser();
    let html = c
        .get(format!("{root}/auth/login"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let code = env.cli(&["user", "code", user]);
    let r = c
        .post(format!("{root}/auth/login"))
        .form(&[
            ("request", field(&html, "request").as_str()),
            ("csrf", field(&html, "csrf").as_str()),
            ("username", user),
            ("password", password),
            ("code", code.trim()),
            ("action", "sign-in"),
        ])
        .send()
        .unwrap();
    r.status().as_u16()
}

/// The secrets' migration: a database with plaintext secrets (a demo one,
/// so that `wardline user code` may print the TOTP code to sign in with),
/// then opened with a key.
fn secrets_case(env: Env) {
    let keys = tempfile::tempdir().unwrap();
    let key = new_key(keys.path(), "db.key");
    drop(env.start_with(&["--demo"]));
    let added = env.cli_with_env(
        &["user", "add", "rest.u1", "--name", "Rhea Rest"],
        &[("WARDLINE_NEW_PASSWORD", PASSWORD)],
    );
    let seed = totp_secret(&added);
    env.cli(&["user", "grant", "rest.u1", "--role", "doctor"]);
    let pg = env
        .database_url()
        .map(|u| postgres::Client::connect(u, postgres::NoTls).unwrap());
    let mut pg = match pg {
        Some(mut c) => {
            // Before: in plaintext (the check below is not vacuous).
            let before = kv_rows(&mut c);
            assert!(before.iter().any(|(_, _, v)| v.contains(&seed)));
            env.use_db_key_file(&key);
            Some(c)
        }
        None => {
            // SQLite: the key means an encrypted file; the conversion seals.
            let converted = Env::sqlite();
            let out = wardline_cli(&[
                "encrypt-db",
                "--data-dir",
                path_str(env.data_dir()),
                "--out-data-dir",
                path_str(converted.data_dir()),
                "--db-key-file",
                path_str(&key),
            ]);
            assert!(out.ok, "encrypt-db: {}{}", out.stdout, out.stderr);
            converted.use_db_key_file(&key);
            return secrets_sealed(&converted, &key, &seed, None);
        }
    };
    secrets_sealed(&env, &key, &seed, pg.as_mut());
}

fn kv_rows(pg: &mut postgres::Client) -> Vec<(String, String, String)> {
    pg.query("SELECT namespace, key, value FROM system_kv", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn secrets_sealed(env: &Env, key: &Path, seed: &str, pg: Option<&mut postgres::Client>) {
    let server = env.start();
    match pg {
        Some(c) => check_sealed(&kv_rows(c), seed),
        None => assert_sealed_sqlite(env.data_dir(), key, seed),
    }
    // Sign-in with the password and a TOTP code still works (the demo
    // user's account, sealed by the migration, and the new user's).
    assert_eq!(sign_in(env, &server.root, "rest.u1", PASSWORD), 303);
    assert_eq!(
        sign_in(env, &server.root, "nurse.w1", "wardline-demo-only"),
        303
    );
    // A wrong password is still refused.
    assert_ne!(
        sign_in(env, &server.root, "rest.u1", "not-the-password"),
        303
    );
    drop(server);
    // Started without the key, or with another: refused, naming the option
    // (SQLite: the encrypted file is refused first, as tested above).
    if env.database_url().is_some() {
        let mut args = env.store_args();
        let i = args.iter().position(|a| a == "--db-key-file").unwrap();
        args.drain(i..i + 2);
        let run = |args: &[String]| {
            let mut all = vec!["audit".to_owned(), "verify".to_owned()];
            all.extend(args.iter().cloned());
            wardline_cli(&all.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let out = run(&args);
        assert!(!out.ok);
        assert!(
            out.stderr.contains("are sealed") && out.stderr.contains("--db-key-file"),
            "{}",
            out.stderr
        );
        let keys = tempfile::tempdir().unwrap();
        let other = new_key(keys.path(), "other.key");
        args.push("--db-key-file".into());
        args.push(path_str(&other).into());
        let out = run(&args);
        assert!(!out.ok);
        assert!(
            out.stderr.contains("another key") && out.stderr.contains(path_str(&other)),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn secrets_are_sealed_and_totp_sign_in_still_works_sqlite() {
    secrets_case(Env::sqlite());
}

#[test]
fn secrets_are_sealed_and_totp_sign_in_still_works_postgres() {
    if let Some(env) = Env::postgres() {
        secrets_case(env);
    }
}
