//! Shared harness for the end-to-end tests (the modules of `tests/e2e`).
//!
//! Each test starts the real `wardline` binary on 127.0.0.1 with a free port and
//! a fresh data directory (SQLite), or a fresh PostgreSQL database created on the
//! server named by `WARDLINE_TEST_PG_URL`, and talks to it over HTTP. Servers are
//! killed when their [`Server`] is dropped; PostgreSQL test databases are dropped
//! when their [`Env`] is dropped.
#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to answer `/healthz` after it is started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

pub fn testdata() -> PathBuf {
    match std::env::var_os("WARDLINE_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/testdata"
        )),
    }
}

/// The test data folder `sub` (e.g. `fhir-r4-examples`), or `None` after
/// printing `SKIPPED: ...` when it is absent.
pub fn testdata_dir(sub: &str) -> Option<PathBuf> {
    let p = testdata().join(sub);
    if p.is_dir() {
        Some(p)
    } else {
        println!("SKIPPED: test data {} not found", p.display());
        None
    }
}

/// A throw-away PostgreSQL database, dropped on drop.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    fn create(admin_url: &str) -> PgDatabase {
        let name = format!("wl_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to WARDLINE_TEST_PG_URL: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        PgDatabase {
            admin_url: admin_url.to_string(),
            url: with_dbname(admin_url, &name),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Replace the database name (the URL path) of a `postgres://` URL.
pub fn with_dbname(url: &str, db: &str) -> String {
    let (main, query) = match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let after_scheme = main.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = main[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(main.len());
    format!("{}/{}{}", &main[..authority_end], db, query)
}

/// One backend a test runs against: a data directory, and for PostgreSQL a
/// fresh database. Start (and restart) servers on it with [`Env::start`].
pub struct Env {
    pub name: &'static str,
    data_dir: tempfile::TempDir,
    log_dir: tempfile::TempDir,
    pg: Option<PgDatabase>,
    starts: std::cell::Cell<u32>,
    test_client: std::cell::Cell<bool>,
    /// Issue 22: the database key every command and server is given.
    db_key_file: std::cell::RefCell<Option<PathBuf>>,
}

impl Env {
    pub fn sqlite() -> Env {
        Env {
            name: "sqlite",
            data_dir: tempfile::tempdir().expect("tempdir"),
            log_dir: tempfile::tempdir().expect("tempdir"),
            pg: None,
            starts: 0.into(),
            test_client: false.into(),
            db_key_file: None.into(),
        }
    }

    /// `None` (after printing `SKIPPED: ...`) when `WARDLINE_TEST_PG_URL` is
    /// unset; a failure instead when `WARDLINE_REQUIRE_PG` is set (see
    /// `wardline_store_postgres::testenv`).
    pub fn postgres() -> Option<Env> {
        let url = wardline_store_postgres::testenv::url()?;
        Some(Env {
            name: "postgres",
            data_dir: tempfile::tempdir().expect("tempdir"),
            log_dir: tempfile::tempdir().expect("tempdir"),
            pg: Some(PgDatabase::create(&url)),
            starts: 0.into(),
            test_client: false.into(),
            db_key_file: None.into(),
        })
    }

    /// A fresh database on the PostgreSQL server at `admin_url` (a test's
    /// own server, e.g. one it stops and starts).
    pub fn postgres_on(admin_url: &str) -> Env {
        Env {
            name: "postgres",
            data_dir: tempfile::tempdir().expect("tempdir"),
            log_dir: tempfile::tempdir().expect("tempdir"),
            pg: Some(PgDatabase::create(admin_url)),
            starts: 0.into(),
            test_client: false.into(),
            db_key_file: None.into(),
        }
    }

    /// Issue 22: from now on every command ([`Env::cli`], [`Env::store_args`])
    /// and server ([`Env::start`]) is given `--db-key-file path`.
    pub fn use_db_key_file(&self, path: &Path) {
        *self.db_key_file.borrow_mut() = Some(path.to_owned());
    }

    /// The PostgreSQL URL of this environment's database, if it has one.
    pub fn database_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.url.as_str())
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The `--data-dir` / `--database` arguments for running another `wardline`
    /// command (`import`, `export`) on this environment's store.
    pub fn store_args(&self) -> Vec<String> {
        let mut v = vec![
            "--data-dir".to_owned(),
            self.data_dir.path().display().to_string(),
        ];
        if let Some(pg) = &self.pg {
            v.push("--database".to_owned());
            v.push(pg.url.clone());
        }
        if let Some(k) = &*self.db_key_file.borrow() {
            v.push("--db-key-file".to_owned());
            v.push(k.display().to_string());
        }
        v
    }

    /// Runs a `wardline` operator command on this store; its stdout, or a
    /// panic naming the command and its stderr.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_with_env(args, &[])
    }

    pub fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
            .args(args)
            .args(self.store_args())
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run wardline");
        assert!(
            out.status.success(),
            "wardline {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A bearer token for the test suite's backend client (registered on first use).
    pub fn system_token(&self, scope: &str) -> String {
        if !self.test_client.get() {
            self.cli(&[
                "client",
                "add",
                "wardline-tests",
                "--name",
                "Wardline test suite",
                "--scope",
                TEST_CLIENT_SCOPE,
            ]);
            self.test_client.set(true);
        }
        self.cli(&[
            "token",
            "--client",
            "wardline-tests",
            "--scope",
            scope,
            "--minutes",
            "600",
        ])
        .trim()
        .to_owned()
    }

    /// A client for a privacy officer (created on this store as `ig.test`),
    /// who may read the audit trail. The store must hold `Organization/trust`.
    pub fn privacy_officer(&self) -> reqwest::blocking::Client {
        self.cli_with_env(
            &["user", "add", "ig.test", "--name", "Ida Governance"],
            &[("WARDLINE_NEW_PASSWORD", "a-test-password-1")],
        );
        self.cli(&["user", "grant", "ig.test", "--role", "privacy-officer"]);
        let token = self.cli(&[
            "token",
            "--user",
            "ig.test",
            "--scope",
            "user/AuditEvent.rs",
        ]);
        authorised_client(token.trim())
    }

    /// Start `wardline serve` on this backend and wait until `/healthz` answers.
    pub fn start(&self) -> Server {
        self.start_with(&[])
    }

    pub fn start_with(&self, extra_args: &[&str]) -> Server {
        let mut last_err = String::new();
        // A free port found by binding :0 can, rarely, be taken by another test
        // before the server binds it: retry with a new port when the server exits.
        for _ in 0..3 {
            let n = self.starts.get() + 1;
            self.starts.set(n);
            let port = free_port();
            let log_path = self.log_dir.path().join(format!("server-{n}.log"));
            let log = File::create(&log_path).expect("create server log");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_wardline"));
            cmd.arg("serve")
                .arg("--data-dir")
                .arg(self.data_dir.path())
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"));
            if let Some(pg) = &self.pg {
                cmd.arg("--database").arg(&pg.url);
            }
            if let Some(k) = &*self.db_key_file.borrow() {
                cmd.arg("--db-key-file").arg(k);
            }
            cmd.args(extra_args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log"))
                .stderr(log);
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.env("RUST_LOG", "warn");
            }
            // No background duplicate scan unless a test asks for one (with
            // `--duplicate-scan-minutes`, which wins over the environment):
            // its review Tasks and audit events would change other tests' counts.
            cmd.env("WARDLINE_DUPLICATE_SCAN_MINUTES", "0");
            let child = cmd.spawn().expect("spawn wardline binary");
            let mut server = Server {
                child: Some(child),
                port,
                base: format!("http://127.0.0.1:{port}/fhir"),
                root: format!("http://127.0.0.1:{port}"),
                log_path,
                client: client(),
                token: String::new(),
                backend: self.name,
            };
            match server.wait_healthy() {
                Ok(()) => {
                    // The suites are about FHIR and HL7, not sign-in: every
                    // request carries a backend-service token minted by the
                    // operator CLI (`tests/e2e/access.rs` tests access itself).
                    let token = self.system_token(TEST_CLIENT_SCOPE);
                    server.token = token.clone();
                    server.client = authorised_client(&token);
                    return server;
                }
                Err(e) => {
                    last_err = format!("{e}\n--- server log ---\n{}", server.log_tail(4000));
                    server.kill();
                }
            }
        }
        panic!(
            "wardline serve did not become healthy ({}): {last_err}",
            self.name
        );
    }
}

/// Percent-encode the characters that may not appear raw in a URI (`|` in token
/// searches, spaces, brackets, ...), leaving the rest (including existing `%XX`
/// escapes, `?`, `&`, `=`) alone.
pub fn escape_uri(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            ' ' | '|' | '[' | ']' | '"' | '<' | '>' | '^' | '`' | '{' | '}' | '\\' => {
                out.push_str(&format!("%{:02X}", ch as u32))
            }
            c if !c.is_ascii() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// What the test suite's backend client may do.
pub const TEST_CLIENT_SCOPE: &str = "system/*.cruds";

/// A client that sends `Authorization: Bearer TOKEN` with every request.
pub fn authorised_client(token: &str) -> reqwest::blocking::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("token header"),
    );
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .default_headers(h)
        .build()
        .expect("reqwest client")
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("reqwest client")
}

/// A running `wardline serve`, killed (SIGKILL) on drop.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// `http://127.0.0.1:PORT/fhir`
    pub base: String,
    /// `http://127.0.0.1:PORT`
    pub root: String,
    log_path: PathBuf,
    /// Sends the test suite's bearer token with every request.
    pub client: reqwest::blocking::Client,
    /// That token.
    pub token: String,
    pub backend: &'static str,
}

impl Server {
    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let url = format!("{}/healthz", self.root);
        let quick = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("server exited early with {status}"));
            }
            if let Ok(r) = quick.get(&url).send()
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no healthy /healthz within {}s",
                    STARTUP_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM the server and wait (bounded) for it to exit; its exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// SIGKILL the server (std's `Child::kill` sends SIGKILL on Unix) and reap it.
    /// The server's process id (issue 21: tests lower its file limit).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_tail(&self, max: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        if s.len() > max {
            let mut start = s.len() - max;
            while !s.is_char_boundary(start) {
                start += 1;
            }
            s = s[start..].to_string();
        }
        s
    }

    /// Absolute URL for a path below the FHIR base (`Patient/1`, `Patient?x=y`),
    /// or an absolute URL passed through unchanged.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, escape_uri(path.trim_start_matches('/')))
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(self.url(path)))
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut rb = self.client.get(self.url(path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb)
    }

    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.put_with(path, body, &[])
    }

    pub fn put_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        let mut rb = self
            .client
            .put(self.url(path))
            .header("Content-Type", "application/fhir+json")
            .body(serde_json::to_vec(body).expect("serialise"));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb)
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.post_with(path, body, &[])
    }

    pub fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        let mut rb = self
            .client
            .post(self.url(path))
            .header("Content-Type", "application/fhir+json")
            .body(serde_json::to_vec(body).expect("serialise"));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb)
    }

    /// A request with a raw body and explicit content type.
    pub fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::blocking::Body>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self
            .client
            .request(method, self.url(path))
            .header("Content-Type", content_type)
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb)
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.send(self.client.delete(self.url(path)))
    }

    pub fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Resp {
        let r = rb
            .send()
            .unwrap_or_else(|e| panic!("HTTP request to {} failed: {e}", self.backend));
        Resp::from(r)
    }

    /// Every resource matched by a search, following `next` links. Panics on a
    /// non-200 page. Also checks that the pages hold no duplicates.
    pub fn search_all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut url = self.url(path);
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 100_000, "paging does not terminate for {path}");
            let r = self.get(&url);
            assert_eq!(r.status, 200, "GET {url}: {}", r.text);
            for e in entries(&r.body) {
                if let Some(res) = e.get("resource") {
                    if e.pointer("/search/mode").and_then(Value::as_str) == Some("outcome") {
                        continue;
                    }
                    let key = format!("{}/{}", rtype(res), rid(res));
                    assert!(
                        seen.insert(key.clone()),
                        "{key} returned twice paging {path}"
                    );
                    out.push(res.clone());
                }
            }
            match next_link(&r.body) {
                Some(n) => url = n,
                None => break,
            }
        }
        out
    }

    /// `Bundle.total` of `path` with `_summary=count` added.
    pub fn count(&self, path: &str) -> u64 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = self.get(&format!("{path}{sep}_summary=count"));
        assert_eq!(r.status, 200, "count {path}: {}", r.text);
        r.body["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("no total for {path}: {}", r.text))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- {} server log (tail) ---\n{}",
                self.backend,
                self.log_tail(6000)
            );
        }
    }
}

/// A response: status, headers, body text and body parsed as JSON (`Null` when
/// empty or not JSON).
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl From<reqwest::blocking::Response> for Resp {
    fn from(r: reqwest::blocking::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            body,
        }
    }
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Short text for assertion messages.
    pub fn brief(&self) -> String {
        let mut t = self.text.clone();
        if t.len() > 1500 {
            let mut end = 1500;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
            t.push_str("...");
        }
        format!("HTTP {} {}", self.status, t)
    }
}

pub fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

pub fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"].as_array()?.iter().find_map(|l| {
        (l["relation"] == "next")
            .then(|| l["url"].as_str().map(str::to_string))
            .flatten()
    })
}

pub fn rtype(res: &Value) -> &str {
    res["resourceType"].as_str().unwrap_or("")
}

pub fn rid(res: &Value) -> &str {
    res["id"].as_str().unwrap_or("")
}

/// Ids of the `match` entries of a search-set Bundle (one page), sorted.
pub fn page_ids(bundle: &Value) -> Vec<String> {
    let mut v: Vec<String> = entries(bundle)
        .iter()
        .filter(|e| e.pointer("/search/mode").and_then(Value::as_str) != Some("outcome"))
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Remove `meta.versionId` and `meta.lastUpdated`, and `meta` itself if that
/// leaves it empty.
pub fn strip_meta(v: &mut Value) {
    if let Some(obj) = v.as_object_mut() {
        let mut empty = false;
        if let Some(meta) = obj.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("versionId");
            meta.remove("lastUpdated");
            empty = meta.is_empty();
        }
        if empty {
            obj.remove("meta");
        }
    }
}

/// Human-readable differences between two JSON values (paths), at most `max`.
pub fn json_diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>, max: usize) {
    if out.len() >= max {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => json_diff(va, vb, &format!("{path}.{k}"), out, max),
                    None => out.push(format!("{path}.{k}: missing from the server's copy")),
                }
            }
            for k in y.keys() {
                if !x.contains_key(k) {
                    out.push(format!("{path}.{k}: added by the server: {}", y[k]));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                json_diff(va, vb, &format!("{path}[{i}]"), out, max);
            }
        }
        // Numbers compare as written (serde_json's `arbitrary_precision`):
        // a decimal's precision is part of its value.
        _ if a == b => {}
        _ => out.push(format!("{path}: sent {a} got {b}")),
    }
}

/// Check that an error response is a 4xx carrying an OperationOutcome with at
/// least one error issue; returns the issues' expressions (flattened).
pub fn expect_outcome(r: &Resp, what: &str) -> Vec<String> {
    assert!(
        (400..500).contains(&r.status),
        "{what}: expected a 4xx, got {}",
        r.brief()
    );
    assert_eq!(
        r.body["resourceType"],
        "OperationOutcome",
        "{what}: error body is not an OperationOutcome: {}",
        r.brief()
    );
    let issues = r.body["issue"].as_array().cloned().unwrap_or_default();
    assert!(
        issues
            .iter()
            .any(|i| matches!(i["severity"].as_str(), Some("error") | Some("fatal"))),
        "{what}: no error issue: {}",
        r.brief()
    );
    issues
        .iter()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

/// Collects mismatches so one run reports every failing check, then fails once.
#[derive(Default)]
pub struct Checks {
    pub passed: usize,
    pub failures: Vec<String>,
}

impl Checks {
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(what());
        }
    }

    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got == want {
            self.passed += 1;
        } else {
            self.failures
                .push(format!("{what}: got {got:?}, expected {want:?}"));
        }
    }

    pub fn finish(self, label: &str) {
        println!(
            "{label}: {} checks passed, {} failed",
            self.passed,
            self.failures.len()
        );
        if !self.failures.is_empty() {
            panic!(
                "{label}: {} failed checks:\n  {}",
                self.failures.len(),
                self.failures.join("\n  ")
            );
        }
    }
}

/// What a `wardline` command printed, and whether it succeeded.
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `wardline` binary with `args` and nothing from the environment
/// that would choose a store or a key for it.
pub fn wardline_cli(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("WARDLINE_DATABASE")
        .env_remove("WARDLINE_DATA_DIR")
        .env_remove("WARDLINE_DB_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run wardline");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A path as the `&str` a command line takes.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Private PostgreSQL servers that tests start, stop and promote themselves
/// (Debian's server binaries; run as the `postgres` user when root).
pub mod private_pg {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    pub fn as_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    }

    /// The newest server binaries, or `None` (printing SKIPPED) when there
    /// are none and PostgreSQL is not required.
    pub fn bin() -> Option<PathBuf> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max();
        if bin.is_none() {
            let required = std::env::var(wardline_store_postgres::testenv::REQUIRE_VAR)
                .is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
            assert!(
                !required,
                "PostgreSQL is required but its server binaries (initdb) are not installed"
            );
            println!("SKIPPED: no PostgreSQL server binaries under /usr/lib/postgresql");
        }
        bin
    }

    /// Runs a PostgreSQL program (as the `postgres` user when root: the
    /// server refuses to run as root).
    pub fn run(bin: &Path, prog: &str, args: &[&str]) -> std::process::Output {
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
}
