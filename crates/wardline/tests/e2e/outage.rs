//! Database outages on PostgreSQL (issue 22): the test runs its own
//! PostgreSQL server (Debian's binaries, a temporary cluster on a loopback
//! port) so that it can terminate its backends, stop it and start it again
//! under a running Wardline:
//!
//! * terminated backends: requests go on (the pool replaces the
//!   connections), never a 500;
//! * the server stopped: `/healthz` answers 503 within its one-second bound,
//!   a REST write answers 503 `no-store` with `Retry-After` (not a 30-second
//!   hang, not a 500 "exception"), an HL7 message gets `AR` "not stored";
//! * the server started again: Wardline recovers without a restart — the
//!   same HL7 message is then applied, nothing acknowledged earlier is lost;
//! * a commit whose connection is lost is reported as of unknown outcome,
//!   never as "not stored";
//! * `wardline serve --database postgres://…` writes nothing in its working
//!   directory.
//!
//! Skipped (saying so) when PostgreSQL's server binaries are absent, unless
//! `WARDLINE_REQUIRE_PG` is set.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, free_port};
use serde_json::json;
use wardline_store::{Store, StoreError};

use crate::hl7::{Client, field};

/// A PostgreSQL server of the test's own.
struct PrivatePg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL program (as the `postgres` user when root: the server
/// refuses to run as root).
fn pg_run(bin: &Path, prog: &str, args: &[&str]) -> std::process::Output {
    let exe = bin.join(prog);
    let mut cmd = if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()))
}

impl PrivatePg {
    /// `None` (printing SKIPPED) when there is no `initdb` and PostgreSQL is
    /// not required.
    fn start() -> Option<PrivatePg> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max();
        let Some(bin) = bin else {
            let required = std::env::var(wardline_store_postgres::testenv::REQUIRE_VAR)
                .is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
            assert!(
                !required,
                "PostgreSQL is required but its server binaries (initdb) are not installed"
            );
            println!("SKIPPED: no PostgreSQL server binaries under /usr/lib/postgresql");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        if as_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown the cluster directory to postgres");
        }
        let data = dir.path().join("data");
        let out = pg_run(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePg {
            bin,
            dir,
            port: free_port(),
        };
        pg.up();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn up(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.dir.path().display()
        );
        let out = pg_run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn down(&self) {
        let out = pg_run(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "60", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Terminates every backend connected to `db` (but the caller's own).
    fn terminate(&self, db: &str) -> i64 {
        let mut c = postgres::Client::connect(&self.admin_url(), postgres::NoTls).expect("admin");
        let rows = c
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db],
            )
            .expect("terminate backends");
        rows.len() as i64
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = pg_run(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
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

fn patient(id: &str) -> serde_json::Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": "Outage", "given": [id]}]})
}

fn a04(ctrl: &str, hospital_number: &str) -> String {
    format!(
        "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261204090000||ADT^A04^ADT_A01|{ctrl}|P|2.4\r\
         EVN|A04|20261204090000\r\
         PID|1||{hospital_number}^^^RWG^MR||OUTAGE^MLLP||19700101|F\r\
         PV1|1|O{}V{ctrl}\r",
        "|".repeat(17)
    )
}

/// A client whose requests give up after `secs`: a hang fails the test.
fn bounded_client(secs: u64) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(secs))
        .build()
        .expect("client")
}

#[test]
fn postgres_outage_fails_fast_and_recovers() {
    let Some(pg) = PrivatePg::start() else { return };
    let env = Env::postgres_on(&pg.admin_url());
    let db = db_name(env.database_url().expect("a database"));
    let mllp = free_port();
    let server = env.start_with(&["--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    let r = server.put("Patient/before", &patient("before"));
    assert_eq!(r.status, 201, "{}", r.brief());
    let mut hl7 = Client::connect(mllp).expect("mllp");
    let ack = hl7.send(&a04("OUT-1", "H9000001")).expect("ack");
    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");

    // Backends terminated under the server: the pool replaces them; no 500.
    assert!(pg.terminate(&db) >= 1, "the server held connections");
    let mut ok = 0;
    for i in 0..5 {
        let r = server.put(&format!("Patient/t{i}"), &patient(&format!("t{i}")));
        assert!(
            r.status == 201 || r.status == 503,
            "after terminated backends: {}",
            r.brief()
        );
        if r.status == 201 {
            ok += 1;
        }
    }
    assert!(
        ok >= 4,
        "the pool recovered from terminated backends ({ok} of 5)"
    );

    // The server stopped.
    pg.down();
    let quick = bounded_client(3);
    let started = Instant::now();
    let h = quick
        .get(format!("{}/healthz", server.root))
        .send()
        .expect("/healthz answers while the database is away");
    let health_took = started.elapsed();
    assert_eq!(h.status().as_u16(), 503);
    let body: serde_json::Value = h.json().expect("json");
    assert_eq!(body["status"], "unavailable");
    println!("healthz answered 503 in {health_took:?} with the database stopped");
    for i in 0..3 {
        let r = server.send(
            server
                .client
                .put(server.url(&format!("Patient/down{i}")))
                .timeout(Duration::from_secs(15))
                .header("Content-Type", "application/fhir+json")
                .body(patient(&format!("down{i}")).to_string()),
        );
        assert_eq!(
            r.status,
            503,
            "a write with the database away: {}",
            r.brief()
        );
        assert_eq!(r.body["issue"][0]["code"], "no-store", "{}", r.brief());
        let text = r.body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or_default();
        assert!(text.contains("nothing was stored"), "{text}");
        assert_eq!(r.header("retry-after").as_deref(), Some("5"));
    }
    let ack = hl7.send(&a04("OUT-2", "H9000002")).expect("ack while down");
    assert_eq!(field(&ack, "MSA-1"), "AR", "{ack}");
    assert!(ack.contains("not stored"), "{ack}");
    // Still answering fast after a while away.
    let h = quick
        .get(format!("{}/healthz", server.root))
        .send()
        .expect("healthz");
    assert_eq!(h.status().as_u16(), 503);

    // Back again: recovered without a restart.
    pg.up();
    let mut healthy = false;
    for _ in 0..120 {
        if quick
            .get(format!("{}/healthz", server.root))
            .send()
            .is_ok_and(|r| r.status().as_u16() == 200)
        {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(healthy, "/healthz back to 200 once PostgreSQL is back");
    let r = server.put("Patient/after", &patient("after"));
    assert_eq!(r.status, 201, "{}", r.brief());
    let ack = hl7.send(&a04("OUT-2", "H9000002")).expect("ack after");
    assert_eq!(
        field(&ack, "MSA-1"),
        "AA",
        "the resent message is applied: {ack}"
    );
    for id in ["before", "after", "t4"] {
        assert_eq!(
            server.get(&format!("Patient/{id}")).status,
            200,
            "Patient/{id}"
        );
    }
    assert_eq!(server.count("Patient?identifier=H9000001"), 1);
    assert_eq!(server.count("Patient?identifier=H9000002"), 1);
}

#[test]
fn a_commit_whose_connection_is_lost_is_of_unknown_outcome() {
    let Some(pg) = PrivatePg::start() else { return };
    let env = Env::postgres_on(&pg.admin_url());
    let url = env.database_url().expect("a database").to_owned();
    let store = wardline_store_postgres::PostgresStore::connect(&url).expect("store");
    let mut tx = store.begin().expect("begin");
    tx.kv_put("outage-test", "k", "v").expect("write");
    assert!(pg.terminate(&db_name(&url)) >= 1);
    match tx.commit() {
        Err(StoreError::OutcomeUnknown(m)) => println!("commit: outcome unknown ({m})"),
        other => panic!("a commit on a lost connection: {other:?}"),
    }
    // A later transaction works on a fresh connection.
    let mut tx = store.begin().expect("begin again");
    tx.kv_put("outage-test", "k2", "v").expect("write");
    tx.commit().expect("commit");
    // With the server stopped, starting a transaction fails fast and says
    // the database is unavailable.
    pg.down();
    let started = Instant::now();
    let e = store.begin().and_then(|mut tx| {
        tx.kv_put("outage-test", "k3", "v")?;
        tx.commit()
    });
    assert!(matches!(e, Err(StoreError::Unavailable(_))), "{e:?}");
    println!("unavailable reported in {:?}", started.elapsed());
}

#[test]
fn serve_on_postgres_writes_nothing_in_its_working_directory() {
    let Some(pg) = PrivatePg::start() else { return };
    let env = Env::postgres_on(&pg.admin_url());
    let cwd = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .current_dir(cwd.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database", env.database_url().expect("url")])
        .env("RUST_LOG", "warn")
        .env("WARDLINE_DUPLICATE_SCAN_MINUTES", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let client = bounded_client(3);
    let mut healthy = false;
    for _ in 0..240 {
        if client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy, "the server started");
    let left: Vec<String> = std::fs::read_dir(cwd.path())
        .expect("read cwd")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left in the working directory: {left:?}");
}
