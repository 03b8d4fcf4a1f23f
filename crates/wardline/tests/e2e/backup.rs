//! Issue 22, backup and verified restore (SQLite): `wardline backup` taken
//! while eight clients write through the real server; `wardline restore`
//! into a new directory verifies the copy against the manifest and holds
//! every resource acknowledged before the backup began; a tampered backup
//! (a byte changed in a resource, a row deleted) is refused, naming what
//! differs; a non-empty target is refused; `restore drill` reports OK and
//! removes its scratch copy; an unreachable PostgreSQL fails the backup
//! (PostgreSQL backups themselves: `pg_ops.rs`).

use crate::common;

use std::path::{Path, PathBuf};

use std::sync::Mutex;

use common::{Env, path_str, wardline_cli};
use serde_json::{Value, json};

const WRITERS: usize = 8;
/// Patients per writer (each with one Observation).
const PER_WRITER: usize = 40;

fn created_id(r: &common::Resp, rt: &str) -> Option<String> {
    if let Some(id) = r.body.get("id").and_then(Value::as_str) {
        return Some(id.to_owned());
    }
    let loc = r.header("location")?;
    let parts: Vec<&str> = loc.split('/').collect();
    let i = parts.iter().position(|p| *p == rt)?;
    parts.get(i + 1).map(|s| s.to_string())
}

/// Whether the SQLite database at `db` holds the current, live resource.
fn holds(conn: &rusqlite::Connection, rt: &str, id: &str) -> bool {
    conn.query_row(
        "SELECT COUNT(*) FROM resources WHERE res_type = ?1 AND res_id = ?2 AND deleted = 0",
        [rt, id],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

#[test]
fn backup_while_eight_clients_write_then_restore_verifies() {
    let env = Env::sqlite();
    let server = env.start();
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("wardline-backup.db");
    let acked: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());
    let mut before_backup = Vec::new();
    let mut after_backup = 0;
    std::thread::scope(|sc| {
        for w in 0..WRITERS {
            let (server, acked) = (&server, &acked);
            sc.spawn(move || {
                for i in 0..PER_WRITER {
                    let p = server.post(
                        "Patient",
                        &json!({"resourceType":"Patient",
                            "name":[{"family":"Backup","given":[format!("w{w}n{i}")]}]}),
                    );
                    assert!(p.is_success(), "create Patient: {}", p.brief());
                    let pid = created_id(&p, "Patient").expect("the new Patient's id");
                    acked.lock().unwrap().push(("Patient", pid.clone()));
                    let o = server.post(
                        "Observation",
                        &json!({"resourceType":"Observation","status":"final",
                            "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
                            "subject":{"reference":format!("Patient/{pid}")},
                            "valueQuantity":{"value":60 + i,"unit":"/min",
                                "system":"http://unitsofmeasure.org","code":"/min"}}),
                    );
                    assert!(o.is_success(), "create Observation: {}", o.brief());
                    let oid = created_id(&o, "Observation").expect("the new Observation's id");
                    acked.lock().unwrap().push(("Observation", oid));
                }
            });
        }
        // Mid-way: once a fair share is acknowledged (a bounded wait).
        for _ in 0..2_000 {
            if acked.lock().unwrap().len() >= WRITERS * PER_WRITER / 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        before_backup = acked.lock().unwrap().clone();
        let out = wardline_cli(&[
            "backup",
            "--data-dir",
            path_str(env.data_dir()),
            "--out",
            path_str(&file),
        ]);
        assert!(out.ok, "backup failed: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("VACUUM INTO") && out.stderr.contains("computing the manifest"),
            "progress on stderr: {}",
            out.stderr
        );
        after_backup = acked.lock().unwrap().len();
    });
    let total = acked.lock().unwrap().len();
    assert_eq!(total, WRITERS * PER_WRITER * 2);
    assert!(
        !before_backup.is_empty(),
        "writes acknowledged before the backup"
    );
    println!(
        "backup taken with {} writes acknowledged before it began, {after_backup} when it ended, \
         {total} in all",
        before_backup.len()
    );
    drop(server);
    // Restore to a new directory: verified, and every write acknowledged
    // before the backup began is there.
    let restored = scratch.path().join("restored");
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&file),
        "--data-dir",
        path_str(&restored),
    ]);
    assert!(out.ok, "restore failed: {}{}", out.stdout, out.stderr);
    for want in [
        "file checksum: OK",
        "checksum of every current version: OK",
        "audit chain: intact",
        "verification OK",
    ] {
        assert!(out.stdout.contains(want), "{want}: {}", out.stdout);
    }
    let conn = rusqlite::Connection::open(restored.join("wardline.db")).unwrap();
    let missing: Vec<_> = before_backup
        .iter()
        .filter(|(rt, id)| !holds(&conn, rt, id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged before the backup are missing from the restored copy: {:?}",
        missing.len(),
        before_backup.len(),
        &missing[..missing.len().min(5)]
    );
    drop(conn);
    // The restored copy serves, and `audit verify` agrees.
    let verify = wardline_cli(&["audit", "verify", "--data-dir", path_str(&restored)]);
    assert!(
        verify.ok,
        "audit verify: {}{}",
        verify.stdout, verify.stderr
    );
}

/// A small store (made by `wardline import`) and its backup.
fn small_backup(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut lines = String::new();
    for (id, family) in [("p1", "Smith"), ("p2", "Jones")] {
        lines.push_str(
            &json!({"resourceType":"Patient","id":id,"name":[{"family":family}]}).to_string(),
        );
        lines.push('\n');
    }
    for (id, p) in [("o1", "p1"), ("o2", "p2")] {
        lines.push_str(
            &json!({"resourceType":"Observation","id":id,"status":"final",
                "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
                "subject":{"reference":format!("Patient/{p}")},
                "valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}})
            .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(input.join("small.ndjson"), lines).unwrap();
    let out = wardline_cli(&[
        "import",
        path_str(&input.join("small.ndjson")),
        "--data-dir",
        path_str(&data),
    ]);
    assert!(out.ok, "import: {}{}", out.stdout, out.stderr);
    let file = dir.join("small.db");
    let out = wardline_cli(&[
        "backup",
        "--data-dir",
        path_str(&data),
        "--out",
        path_str(&file),
    ]);
    assert!(out.ok, "backup: {}{}", out.stdout, out.stderr);
    (data, file)
}

/// A copy of the backup (with its manifest) changed by `sql`.
fn tampered(dir: &Path, file: &Path, name: &str, sql: &str) -> PathBuf {
    let copy = dir.join(name);
    std::fs::copy(file, &copy).unwrap();
    let mut m = copy.as_os_str().to_owned();
    m.push(".manifest.json");
    let mut orig = file.as_os_str().to_owned();
    orig.push(".manifest.json");
    std::fs::copy(PathBuf::from(orig), PathBuf::from(m)).unwrap();
    let c = rusqlite::Connection::open(&copy).unwrap();
    assert_eq!(c.execute(sql, []).unwrap(), 1, "{sql}");
    drop(c);
    copy
}

#[test]
fn a_tampered_backup_is_refused_naming_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = small_backup(dir.path());
    // One byte changed in a resource: Smith → Smyth.
    let edited = tampered(
        dir.path(),
        &file,
        "edited.db",
        "UPDATE resources SET content = replace(content, 'Smith', 'Smyth') \
         WHERE res_type = 'Patient' AND res_id = 'p1'",
    );
    let target = dir.path().join("r1");
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&edited),
        "--data-dir",
        path_str(&target),
    ]);
    assert!(!out.ok, "a changed resource restored: {}", out.stdout);
    assert!(
        out.stdout
            .contains("Patient: the checksum of the current versions differs")
            && out.stdout.contains("the backup file's checksum differs"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("Observation:"),
        "only Patient named: {}",
        out.stdout
    );
    assert!(
        !target.join("wardline.db").exists() && !target.join("wardline.db.restoring").exists(),
        "nothing usable is left behind"
    );
    // A row deleted.
    let deleted = tampered(
        dir.path(),
        &file,
        "deleted.db",
        "DELETE FROM resources WHERE res_type = 'Observation' AND res_id = 'o2'",
    );
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&deleted),
        "--data-dir",
        path_str(&dir.path().join("r2")),
    ]);
    assert!(!out.ok, "a deleted row restored: {}", out.stdout);
    assert!(
        out.stdout
            .contains("Observation: 2 current resources in the manifest, 1 in the restored copy"),
        "{}",
        out.stdout
    );
    // The drill fails the same way, and removes its scratch copy.
    let out = wardline_cli(&["restore", "drill", "--from", path_str(&deleted)]);
    assert!(!out.ok, "drill of a tampered backup: {}", out.stdout);
    assert!(
        out.stdout.contains("restore drill FAILED"),
        "{}",
        out.stdout
    );
    let scratch = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("restore drill: scratch directory "))
        .expect("the drill names its scratch directory");
    assert!(!Path::new(scratch).exists(), "scratch copy removed");
}

#[test]
fn restore_refuses_a_non_empty_directory_and_the_drill_reports_ok() {
    let dir = tempfile::tempdir().unwrap();
    let (data, file) = small_backup(dir.path());
    // Into the live data directory (not empty): refused, nothing changed.
    let before = std::fs::read(data.join("wardline.db")).unwrap();
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&file),
        "--data-dir",
        path_str(&data),
    ]);
    assert!(!out.ok, "restore over a database: {}", out.stdout);
    assert!(
        out.stderr.contains("refusing to restore into") && out.stderr.contains("not empty"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(data.join("wardline.db")).unwrap(), before);
    // Into an empty directory that exists: fine.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&file),
        "--data-dir",
        path_str(&empty),
    ]);
    assert!(
        out.ok,
        "restore into an empty dir: {}{}",
        out.stdout, out.stderr
    );
    // The backup is never overwritten.
    let out = wardline_cli(&[
        "backup",
        "--data-dir",
        path_str(&data),
        "--out",
        path_str(&file),
    ]);
    assert!(
        !out.ok && out.stderr.contains("never overwrites"),
        "{}",
        out.stderr
    );
    // The drill.
    let out = wardline_cli(&["restore", "drill", "--from", path_str(&file)]);
    assert!(out.ok, "drill: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("restore drill OK"), "{}", out.stdout);
    assert!(out.stdout.contains("audit chain: intact"), "{}", out.stdout);
    let scratch = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("restore drill: scratch directory "))
        .expect("the drill names its scratch directory");
    assert!(!Path::new(scratch).exists(), "scratch copy removed");
}

/// PostgreSQL is backed up with pg_basebackup (tests/e2e/pg_ops.rs); a
/// server that does not answer fails the backup, naming the database, and
/// leaves nothing behind.
#[test]
fn backup_of_an_unreachable_postgresql_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = wardline_cli(&[
        "backup",
        "--database",
        "postgres://nobody@127.0.0.1:1/none",
        "--out",
        path_str(&dir.path().join("pg")),
    ]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("cannot read the database"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("pg").exists());
}

#[test]
fn an_encrypted_backup_restores_only_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = small_backup(dir.path());
    // The key lives outside the data directory and apart from the backup.
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = keys.join("backup.key");
    let out = wardline_cli(&["backup", "key", "init", "--out", path_str(&key)]);
    assert!(out.ok, "key init: {}{}", out.stdout, out.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    }
    let out = wardline_cli(&["backup", "key", "init", "--out", path_str(&key)]);
    assert!(!out.ok, "a key is never overwritten");
    // Encrypt to the public key alone: the backup host needs no secret.
    let text = std::fs::read_to_string(&key).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("the key file names its public key");
    let public_file = dir.path().join("backup.pub");
    std::fs::write(&public_file, format!("{public}\n")).unwrap();
    let file = dir.path().join("encrypted.db");
    let out = wardline_cli(&[
        "backup",
        "--data-dir",
        path_str(&data),
        "--out",
        path_str(&file),
        "--encrypt-to",
        path_str(&public_file),
    ]);
    assert!(out.ok, "encrypted backup: {}{}", out.stdout, out.stderr);
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        bytes.starts_with(b"age-encryption.org/v1"),
        "the age format"
    );
    assert!(
        !bytes.windows(5).any(|w| w == b"Smith") && !bytes.windows(6).any(|w| w == b"SQLite"),
        "no plaintext in the encrypted backup"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "no plaintext copy left behind");
    // Without the key: refused, naming --identity.
    let target = dir.path().join("r");
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&file),
        "--data-dir",
        path_str(&target),
    ]);
    assert!(
        !out.ok && out.stderr.contains("--identity"),
        "{}",
        out.stderr
    );
    // With another key: refused, nothing left.
    let other = keys.join("other.key");
    assert!(wardline_cli(&["backup", "key", "init", "--out", path_str(&other)]).ok);
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&file),
        "--data-dir",
        path_str(&target),
        "--identity",
        path_str(&other),
    ]);
    assert!(
        !out.ok && out.stderr.contains("cannot decrypt"),
        "{}",
        out.stderr
    );
    assert!(!target.join("wardline.db").exists());
    // With its key: decrypted and verified.
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&file),
        "--data-dir",
        path_str(&target),
        "--identity",
        path_str(&key),
    ]);
    assert!(out.ok, "restore: {}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("decrypted: OK") && out.stdout.contains("verification OK"),
        "{}",
        out.stdout
    );
    let out = wardline_cli(&[
        "restore",
        "drill",
        "--from",
        path_str(&file),
        "--identity",
        path_str(&key),
    ]);
    assert!(
        out.ok && out.stdout.contains("restore drill OK"),
        "{}",
        out.stdout
    );
}
