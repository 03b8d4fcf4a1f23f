//! Issue 22, PostgreSQL operations: base backup, point-in-time restore, a
//! streaming read replica and failover. The tests run PostgreSQL clusters
//! of their own (Debian's binaries, temporary clusters on loopback ports),
//! so that they can archive WAL, stop a primary and promote a standby:
//!
//! * point-in-time restore: writes A, a base backup (encrypted), more
//!   writes A, the instant T noted, writes B (new patients and an update of
//!   an A patient), the WAL archived by `wardline wal-archive`; `wardline
//!   restore --to-time T` gives A (the updated patient at its version
//!   before T) and no B, its audit chain verifies; the restore drill of the
//!   same backup reports OK; an instant without its offset is refused; a
//!   tar file whose checksum is not the manifest's is refused, naming it;
//! * the replica: writes through Wardline on the primary are visible on
//!   the standby; searches are served by the replica (`/metrics` counts
//!   them by the database that served them) and return every write of this
//!   server (read-your-writes); the primary stopped (`-m immediate`, a
//!   crash), the standby promoted (`pg_ctl promote`), Wardline started on
//!   it: every acknowledged write is there, and it takes writes;
//! * a replica that is away: searches go to the primary and answer.
//!
//! Skipped (saying so) when PostgreSQL's server binaries are absent, unless
//! `WARDLINE_REQUIRE_PG` is set.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, free_port, path_str, private_pg, wardline_cli, with_dbname};
use serde_json::json;
use wardline_store::{Reader, Store};

/// The bounded waits (generous: the machine is shared).
const WAIT: Duration = Duration::from_secs(120);

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory the `postgres` user owns (when root).
fn pg_dir(path: &Path) {
    std::fs::create_dir_all(path).expect("mkdir");
    if private_pg::as_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown")
            .success();
        assert!(ok, "chown {}", path.display());
    }
}

/// A cluster of the test's own; stopped (immediately) on drop.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// `-c name=value` settings given at start.
    settings: Vec<String>,
}

impl Cluster {
    fn new(bin: &Path, data: PathBuf, settings: &[String]) -> Cluster {
        let log = data.with_extension("log");
        Cluster {
            bin: bin.to_path_buf(),
            data,
            log,
            port: free_port(),
            settings: settings.to_vec(),
        }
    }

    fn init(bin: &Path, data: PathBuf, settings: &[String]) -> Cluster {
        let c = Cluster::new(bin, data, settings);
        ok(
            &private_pg::run(
                bin,
                "initdb",
                &[
                    "-D",
                    &c.data_s(),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
            ),
            "initdb",
        );
        c.up();
        c
    }

    fn data_s(&self) -> String {
        self.data.display().to_string()
    }

    fn up(&self) {
        let mut opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
            self.port
        );
        for s in &self.settings {
            opts.push_str(&format!(" -c {s}"));
        }
        let out = private_pg::run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &self.data_s(),
                "-l",
                &self.log.display().to_string(),
                "-o",
                &opts,
                "-w",
                "-t",
                "120",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn stop(&self, mode: &str) {
        ok(
            &private_pg::run(
                &self.bin,
                "pg_ctl",
                &["-D", &self.data_s(), "-m", mode, "-w", "-t", "120", "stop"],
            ),
            "pg_ctl stop",
        );
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.admin_url(), postgres::NoTls).expect("admin connection")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = private_pg::run(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data_s(), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn patient(id: &str, family: &str) -> serde_json::Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family, "given": [id]}]})
}

fn db_name(url: &str) -> String {
    url.rsplit('/')
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn now_ms() -> i64 {
    wardline_fhir::datetime::now_ms()
}

#[test]
fn point_in_time_restore_to_a_chosen_instant() {
    let Some(bin) = private_pg::bin() else { return };
    let root = tempfile::tempdir().expect("tempdir");
    pg_dir(root.path());
    let archive = root.path().join("wal-archive");
    pg_dir(&archive);
    let archive_command = format!(
        "archive_command='{} wal-archive --to {} %p %f'",
        env!("CARGO_BIN_EXE_wardline"),
        path_str(&archive)
    );
    let pg = Cluster::init(
        &bin,
        root.path().join("primary"),
        &["archive_mode=on".into(), archive_command],
    );
    let env = Env::postgres_on(&pg.admin_url());
    let url = env.database_url().expect("a database").to_owned();
    let server = env.start();

    // A: before the backup.
    for i in 0..5 {
        let id = format!("pitr-a{i}");
        let r = server.put(&format!("Patient/{id}"), &patient(&id, "Before"));
        assert!(r.is_success(), "write A {id}: {}", r.brief());
    }
    // The base backup, encrypted to a key kept apart.
    let keys = root.path().join("keys");
    std::fs::create_dir(&keys).expect("mkdir");
    let key = keys.join("backup.key");
    let out = wardline_cli(&["backup", "key", "init", "--out", path_str(&key)]);
    assert!(out.ok, "key init: {}", out.stderr);
    let bk = root.path().join("backup");
    let out = wardline_cli(&[
        "backup",
        "--database",
        &url,
        "--out",
        path_str(&bk),
        "--encrypt-to",
        path_str(&key),
    ]);
    assert!(out.ok, "backup: {}{}", out.stdout, out.stderr);
    assert!(bk.join("base.tar.age").is_file() && !bk.join("base.tar").exists());
    assert!(bk.join("backup_manifest").is_file());
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bk.join("wardline-manifest.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    assert_eq!(manifest["resources"]["counts"]["Patient"], json!(5));
    // More A after the backup: replayed from the archive.
    for i in 5..8 {
        let id = format!("pitr-a{i}");
        let r = server.put(&format!("Patient/{id}"), &patient(&id, "Before"));
        assert!(r.is_success(), "write A {id}: {}", r.brief());
    }
    // The instant: after every A was acknowledged, before any B was sent.
    let t = now_ms() + 1;
    while now_ms() <= t {
        std::thread::sleep(Duration::from_millis(1));
    }
    let target = wardline_fhir::datetime::format_instant(t);
    // B: after the instant: new patients, and an update of an A patient.
    for i in 0..3 {
        let id = format!("pitr-b{i}");
        let r = server.put(&format!("Patient/{id}"), &patient(&id, "After"));
        assert!(r.is_success(), "write B {id}: {}", r.brief());
    }
    let r = server.put("Patient/pitr-a0", &patient("pitr-a0", "Changed"));
    assert!(r.is_success(), "update A0: {}", r.brief());
    // Every WAL segment up to B archived.
    let segment: String = pg
        .admin()
        .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
        .expect("switch WAL")
        .get(0);
    let deadline = Instant::now() + WAIT;
    while !archive.join(&segment).is_file() {
        assert!(
            Instant::now() < deadline,
            "segment {segment} not archived: {}",
            std::fs::read_to_string(&pg.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // An instant without its offset is refused (it would be the wrong one).
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&bk),
        "--data-dir",
        path_str(&root.path().join("never")),
        "--identity",
        path_str(&key),
        "--wal-archive",
        path_str(&archive),
        "--to-time",
        "2026-12-04T18:00:00",
    ]);
    assert!(!out.ok && out.stderr.contains("offset"), "{}", out.stderr);
    assert!(!root.path().join("never").exists());

    // The restore to the instant, left running for the checks.
    let restored = root.path().join("restored");
    let port = free_port();
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&bk),
        "--data-dir",
        path_str(&restored),
        "--identity",
        path_str(&key),
        "--wal-archive",
        path_str(&archive),
        "--to-time",
        &target,
        "--pg-port",
        &port.to_string(),
        "--keep-running",
    ]);
    let restored_pg = Cluster {
        bin: bin.clone(),
        data: restored.clone(),
        log: restored.join("wardline-restore.log"),
        port,
        settings: Vec::new(),
    };
    assert!(out.ok, "restore: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("verification OK"), "{}", out.stdout);
    assert!(
        out.stdout.contains("nothing after the target"),
        "{}",
        out.stdout
    );
    let restored_url = with_dbname(&restored_pg.admin_url(), &db_name(&url));
    {
        let store = wardline_store_postgres::PostgresStore::connect(&restored_url)
            .expect("open the restored database");
        for i in 0..8 {
            let id = format!("pitr-a{i}");
            let r = store.read("Patient", &id).expect("read");
            assert!(r.is_some(), "{id} (written before the instant) restored");
        }
        let a0 = store.read("Patient", "pitr-a0").expect("read").expect("a0");
        assert_eq!(
            a0.version, 1,
            "the update after the instant is not restored"
        );
        assert!(a0.json.contains("Before"), "{}", a0.json);
        for i in 0..3 {
            let id = format!("pitr-b{i}");
            assert!(
                store.read("Patient", &id).expect("read").is_none(),
                "{id} (written after the instant) absent"
            );
        }
        let chain = wardline_store::audit::verify(&store, 1_000).expect("verify");
        assert!(chain.findings.is_empty(), "{:?}", chain.findings);
        assert!(store.audit_head().expect("head").seq > 0);
    }
    let out = wardline_cli(&["audit", "verify", "--database", &restored_url]);
    assert!(out.ok, "audit verify: {}{}", out.stdout, out.stderr);
    restored_pg.stop("fast");

    // The drill of the same backup (to the end of its own WAL).
    let out = wardline_cli(&[
        "restore",
        "drill",
        "--from",
        path_str(&bk),
        "--identity",
        path_str(&key),
    ]);
    assert!(out.ok, "drill: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("restore drill OK"), "{}", out.stdout);
    let scratch = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("restore drill: scratch directory "))
        .expect("the drill names its scratch directory");
    assert!(!Path::new(scratch).exists(), "scratch copy removed");

    // A base.tar that is not the one backed up is refused before any
    // server starts, naming it.
    let mpath = bk.join("wardline-manifest.json");
    let mut changed = manifest.clone();
    changed["files"]["base.tar"]["sha256"] = json!("0".repeat(64));
    std::fs::write(&mpath, changed.to_string()).expect("write manifest");
    let out = wardline_cli(&[
        "restore",
        "--from",
        path_str(&bk),
        "--data-dir",
        path_str(&root.path().join("damaged")),
        "--identity",
        path_str(&key),
    ]);
    assert!(!out.ok, "a damaged backup is refused: {}", out.stdout);
    assert!(
        out.stdout.contains("MISMATCH: base.tar: its checksum")
            && out.stdout.contains("verification FAILED"),
        "{}",
        out.stdout
    );
    drop(server);
}

/// A `wardline serve` the test starts on a database URL of its choosing.
struct Serve {
    child: Child,
    root: String,
    log: PathBuf,
}

impl Serve {
    fn start(data_dir: &Path, database: &str, log: PathBuf) -> Serve {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_wardline"))
            .args([
                "serve",
                "--data-dir",
                path_str(data_dir),
                "--database",
                database,
            ])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .env("WARDLINE_DUPLICATE_SCAN_MINUTES", "0")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(log.with_extension("err")).expect("log"))
            .spawn()
            .expect("spawn wardline");
        let mut srv = Serve {
            child,
            root: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + WAIT;
        let quick = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        loop {
            if let Ok(Some(st)) = srv.child.try_wait() {
                panic!(
                    "wardline serve exited ({st}): {}",
                    std::fs::read_to_string(srv.log.with_extension("err")).unwrap_or_default()
                );
            }
            if quick
                .get(format!("{}/healthz", srv.root))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return srv;
            }
            assert!(Instant::now() < deadline, "wardline serve not healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wardline_replica_searches_total{served_by="replica"}` on `/metrics`.
fn replica_searches(server: &common::Server) -> u64 {
    let r = server.send(server.client.get(format!("{}/metrics", server.root)));
    assert!(r.is_success(), "/metrics: {}", r.brief());
    r.text
        .lines()
        .find_map(|l| l.strip_prefix("wardline_replica_searches_total{served_by=\"replica\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no replica counter on /metrics: {}", r.text))
}

#[test]
fn a_read_replica_serves_searches_and_takes_over_with_nothing_lost() {
    let Some(bin) = private_pg::bin() else { return };
    let root = tempfile::tempdir().expect("tempdir");
    pg_dir(root.path());
    let primary = Cluster::init(&bin, root.path().join("primary"), &[]);
    let env = Env::postgres_on(&primary.admin_url());
    let url = env.database_url().expect("a database").to_owned();
    let db = db_name(&url);
    // The standby: a base backup of the primary with its streaming
    // settings (-R), on a port of its own.
    let standby_data = root.path().join("standby");
    let standby = Cluster::new(&bin, standby_data.clone(), &[]);
    ok(
        &private_pg::run(
            &bin,
            "pg_basebackup",
            &[
                "-d",
                &format!(
                    "host=127.0.0.1 port={} user=postgres application_name=standby1",
                    primary.port
                ),
                "-D",
                &standby.data_s(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        ),
        "pg_basebackup -R",
    );
    standby.up();
    // Synchronous replication: a commit is acknowledged once the standby
    // has it, so a failover loses nothing acknowledged.
    {
        let mut admin = primary.admin();
        admin
            .batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            .expect("synchronous standby");
        admin
            .batch_execute("SELECT pg_reload_conf()")
            .expect("reload");
    }
    let replica_url = with_dbname(&standby.admin_url(), &db);
    let server = env.start_with(&["--replica", &replica_url]);

    // Writes through Wardline on the primary, visible on the replica.
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let id = format!("rep-{i}");
        let r = server.put(&format!("Patient/{id}"), &patient(&id, "Replicated"));
        assert!(r.is_success(), "write {id}: {}", r.brief());
        acknowledged.push(id);
    }
    {
        let replica =
            wardline_store_postgres::PostgresStore::connect_replica(&replica_url).expect("replica");
        assert!(replica.in_recovery().expect("in recovery"), "a standby");
        let deadline = Instant::now() + WAIT;
        for id in &acknowledged {
            while replica.read("Patient", id).expect("read").is_none() {
                assert!(Instant::now() < deadline, "{id} never reached the replica");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // Searches served by the replica, with every write of this server.
    let before = replica_searches(&server);
    let deadline = Instant::now() + WAIT;
    loop {
        let n = server.count("Patient?family=Replicated");
        assert_eq!(n, 10, "a search after the writes sees them all");
        if replica_searches(&server) > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no search was served by the replica"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Read-your-writes: a search right after a write finds it.
    for i in 10..15 {
        let id = format!("rep-{i}");
        let r = server.put(&format!("Patient/{id}"), &patient(&id, "Replicated"));
        assert!(r.is_success(), "write {id}: {}", r.brief());
        acknowledged.push(id.clone());
        let found = server.search_all(&format!("Patient?_id={id}"));
        assert_eq!(
            found.len(),
            1,
            "{id} found by the search right after its write"
        );
    }

    // Failover: the primary crashes; the standby is promoted.
    primary.stop("immediate");
    ok(
        &private_pg::run(&bin, "pg_ctl", &["-D", &standby.data_s(), "-w", "promote"]),
        "pg_ctl promote",
    );
    let token = server.token.clone();
    drop(server);
    // Wardline pointed at the promoted standby, with the same token (the
    // keys and clients are in the database it took over).
    let logs = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let srv = Serve::start(data.path(), &replica_url, logs.path().join("promoted.log"));
    let client = common::authorised_client(&token);
    for id in &acknowledged {
        let r = client
            .get(format!("{}/fhir/Patient/{id}", srv.root))
            .send()
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200, "acknowledged {id} after failover");
    }
    let r = client
        .put(format!("{}/fhir/Patient/after-failover", srv.root))
        .header("Content-Type", "application/fhir+json")
        .body(patient("after-failover", "Promoted").to_string())
        .send()
        .expect("PUT");
    assert!(
        r.status().is_success(),
        "the promoted standby takes writes: {}",
        r.status()
    );
    let out = wardline_cli(&["audit", "verify", "--database", &replica_url]);
    assert!(out.ok, "audit verify: {}{}", out.stdout, out.stderr);
    drop(srv);
    drop(standby);
}

/// A replica that is not there: searches are answered by the primary.
#[test]
fn searches_fall_back_to_the_primary_when_the_replica_is_away() {
    let Some(env) = Env::postgres() else { return };
    let away = format!("postgres://postgres@127.0.0.1:{}/none", free_port());
    let server = env.start_with(&["--replica", &away]);
    let r = server.put("Patient/away-1", &patient("away-1", "Fallback"));
    assert!(r.is_success(), "{}", r.brief());
    assert_eq!(server.count("Patient?family=Fallback"), 1);
    assert_eq!(replica_searches(&server), 0);
    let m = server.send(server.client.get(format!("{}/metrics", server.root)));
    assert!(
        m.text.lines().any(|l| l.starts_with(
            "wardline_replica_searches_total{served_by=\"primary\",reason=\"replica_unavailable\"}"
        ) && !l.ends_with(" 0")),
        "{}",
        m.text
    );
}
