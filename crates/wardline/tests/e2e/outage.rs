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
//!   directory;
//! * during mixed REST and MLLP writes, PostgreSQL restarted immediately and
//!   then stopped for 35 s: every answer is a 2xx/`AA`, a 503/`AR` that says
//!   nothing was stored, or one that says the outcome is unknown; `/healthz`
//!   answers 503 within its bound all the while; the writes go on by
//!   themselves afterwards; nothing acknowledged is lost and every refused or
//!   unknown HL7 message, resent, is applied exactly once.
//!
//! Skipped (saying so) when PostgreSQL's server binaries are absent, unless
//! `WARDLINE_REQUIRE_PG` is set.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, free_port, private_pg};
use serde_json::json;
use wardline_store::{Store, StoreError};

use crate::hl7::{Client, field};

/// A PostgreSQL server of the test's own.
struct PrivatePg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    /// `None` (printing SKIPPED) when there is no `initdb` and PostgreSQL is
    /// not required.
    fn start() -> Option<PrivatePg> {
        let bin = private_pg::bin()?;
        let dir = tempfile::tempdir().expect("tempdir");
        if private_pg::as_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown the cluster directory to postgres");
        }
        let data = dir.path().join("data");
        let out = private_pg::run(
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
        let out = private_pg::run(
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

    /// `pg_ctl stop -m immediate` (a crash: no checkpoint) and start again.
    fn restart_immediately(&self) {
        let out = private_pg::run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop -m immediate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.up();
    }

    fn down(&self) {
        let out = private_pg::run(
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
        let _ = private_pg::run(
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

/// How one write was answered during the outage test.
#[derive(Default)]
struct Answers {
    /// Identifier values of creates answered 201.
    created: Vec<String>,
    /// REST writes answered 503 "nothing was stored".
    not_stored: usize,
    /// REST writes answered 503 with the outcome unknown (identifier values).
    unknown: Vec<String>,
    /// Control ids answered AA, and the messages answered AR (either kind).
    acked: Vec<String>,
    refused: Vec<(String, String)>,
    /// Answers that were none of those.
    wrong: Vec<String>,
}

const OUTAGE_SYS: &str = "http://example.org/outage-mixed";

#[test]
fn postgres_restarted_and_stopped_for_35_s_during_mixed_writes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let Some(pg) = PrivatePg::start() else { return };
    let env = Env::postgres_on(&pg.admin_url());
    let mllp = free_port();
    let server = env.start_with(&["--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    let answers = Arc::new(Mutex::new(Answers::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let (answers, stop) = (answers.clone(), stop.clone());
        let (base, token) = (server.base.clone(), server.token.clone());
        writers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client");
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let value = format!("w{w}-{n}");
                let body = json!({"resourceType":"Patient",
                    "identifier":[{"system":OUTAGE_SYS,"value":value}],
                    "name":[{"family":"Outage","given":[value.clone()]}]});
                let r = client
                    .post(format!("{base}/Patient"))
                    .bearer_auth(&token)
                    .header("Content-Type", "application/fhir+json")
                    .body(body.to_string())
                    .send();
                let mut a = answers.lock().unwrap();
                let Ok(r) = r else {
                    a.wrong.push(format!("{value}: no answer within 20 s"));
                    continue;
                };
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().unwrap_or_default();
                let code = body["issue"][0]["code"].as_str().unwrap_or_default();
                let text = body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
                match (status, code) {
                    (201, _) => a.created.push(value),
                    (503, "no-store") if text.contains("nothing was stored") => a.not_stored += 1,
                    (503, "transient") if text.contains("may or may not have been stored") => {
                        a.unknown.push(value)
                    }
                    _ => a.wrong.push(format!("{value}: {status} {body}")),
                }
                drop(a);
                if status != 201 {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }));
    }
    {
        let (answers, stop) = (answers.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            let mut client = Client::connect(mllp).expect("mllp");
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let ctrl = format!("MIX-{n}");
                let m = a04(&ctrl, &format!("HM{n:06}"));
                let ack = match client.send(&m) {
                    Ok(ack) => ack,
                    Err(e) => {
                        answers
                            .lock()
                            .unwrap()
                            .wrong
                            .push(format!("{ctrl}: MLLP connection lost: {e}"));
                        client = Client::connect(mllp).expect("mllp again");
                        continue;
                    }
                };
                let mut a = answers.lock().unwrap();
                match field(&ack, "MSA-1").as_str() {
                    "AA" => a.acked.push(ctrl),
                    "AR" if ack.contains("not stored") || ack.contains("unknown") => {
                        a.refused.push((ctrl, m));
                    }
                    _ => a.wrong.push(format!("{ctrl}: {ack}")),
                }
                drop(a);
                if !ack.contains("|AA|") {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }));
    }
    let acknowledged = |a: &Arc<Mutex<Answers>>| {
        let a = a.lock().unwrap();
        a.created.len() + a.acked.len()
    };
    let wait_for_more = |from: usize, what: &str| {
        let t0 = Instant::now();
        while acknowledged(&answers) < from + 20 {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "writes acknowledged again {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for_more(0, "at the start");

    // Restarted immediately (a crash of the database server).
    pg.restart_immediately();
    wait_for_more(acknowledged(&answers), "after the immediate restart");

    // Stopped for 35 s: /healthz is probed throughout.
    pg.down();
    let quick = bounded_client(3);
    let t0 = Instant::now();
    let (mut probes, mut slowest) = (0, Duration::ZERO);
    while t0.elapsed() < Duration::from_secs(35) {
        let started = Instant::now();
        let h = quick
            .get(format!("{}/healthz", server.root))
            .send()
            .expect("/healthz answers while the database is away");
        assert_eq!(h.status().as_u16(), 503, "/healthz with the database away");
        slowest = slowest.max(started.elapsed());
        probes += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let during = acknowledged(&answers);
    pg.up();
    wait_for_more(during, "after 35 s away (without a restart)");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let a = answers.lock().unwrap();
    println!(
        "35 s outage: {probes} /healthz probes answered 503, the slowest in {slowest:?}; \
         REST {} created, {} not stored, {} of unknown outcome; MLLP {} AA, {} AR",
        a.created.len(),
        a.not_stored,
        a.unknown.len(),
        a.acked.len(),
        a.refused.len()
    );
    assert!(
        a.wrong.is_empty(),
        "answers that were neither stored nor refused clearly:\n  {}",
        a.wrong.join("\n  ")
    );
    assert!(
        a.not_stored > 0 && !a.refused.is_empty(),
        "writes were refused while the database was away"
    );

    // Nothing acknowledged is lost.
    let stored: std::collections::BTreeSet<String> = server
        .search_all(&format!("Patient?identifier={OUTAGE_SYS}|&_count=500"))
        .iter()
        .filter_map(|p| p["identifier"][0]["value"].as_str().map(str::to_owned))
        .collect();
    for v in &a.created {
        assert!(stored.contains(v), "acknowledged create {v} lost");
    }
    // A create of unknown outcome is there once or not at all.
    for v in &a.unknown {
        assert!(
            server.count(&format!("Patient?identifier={OUTAGE_SYS}|{v}")) <= 1,
            "{v} stored twice"
        );
    }
    let mut hl7 = Client::connect(mllp).expect("mllp");
    for ctrl in &a.acked {
        let hn = format!(
            "HM{:06}",
            ctrl.trim_start_matches("MIX-").parse::<u32>().unwrap()
        );
        assert_eq!(
            server.count(&format!("Patient?identifier={hn}")),
            1,
            "acknowledged {ctrl}"
        );
    }
    // Every refused message, resent with its control id, is applied once.
    for (ctrl, m) in &a.refused {
        let ack = hl7.send(m).expect("ack");
        assert_eq!(field(&ack, "MSA-1"), "AA", "resent {ctrl}: {ack}");
        let hn = format!(
            "HM{:06}",
            ctrl.trim_start_matches("MIX-").parse::<u32>().unwrap()
        );
        assert_eq!(
            server.count(&format!("Patient?identifier={hn}")),
            1,
            "resent {ctrl}"
        );
    }
}
