//! PostgreSQL backup, WAL archiving and point-in-time restore (issue 22),
//! with PostgreSQL's own tools; the SQLite half is `backup.rs`.
//!
//! * `wardline backup --database postgres://… --out DIR` records the
//!   database's facts (resource counts and checksums per type, the audit
//!   chain's head) in one snapshot, then runs `pg_basebackup` (tar format,
//!   `-X stream`, a SHA-256 checksum manifest) into DIR, and writes
//!   `wardline-manifest.json` beside (the tar files' checksums, and the
//!   facts): the restored database holds at least those facts (everything
//!   committed before the backup began). `--encrypt-to` encrypts the tar
//!   files with the same age code as the SQLite backup.
//! * `wardline wal-archive --to DIR PATH NAME` is an `archive_command`:
//!   a segment is copied under a temporary name, synced and renamed, never
//!   overwritten (an identical copy already there is success, so a retry
//!   after a crash is safe).
//! * `wardline restore --from DIR --data-dir NEW [--wal-archive A]
//!   [--to-time T]` lays the base backup into a new data directory,
//!   checks it with `pg_verifybackup`, writes `recovery.signal` with
//!   `restore_command`, `recovery_target_time` and
//!   `recovery_target_action = 'promote'`, starts a private server on a
//!   loopback port, waits for recovery to end, and verifies with
//!   Wardline's checks: the audit chain walked and re-hashed, the backup's
//!   chain head present in it with the same hash, no audit row recorded
//!   after the target time, and (when nothing was written during the
//!   backup) the counts and checksums of every type as in the manifest.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};

use crate::backup::{self, Facts, FactsBuilder};

/// The manifest's format tag.
pub const PG_MANIFEST_FORMAT: &str = "wardline-postgres-backup-manifest v1";
/// Wardline's manifest in a PostgreSQL backup directory.
pub const PG_MANIFEST: &str = "wardline-manifest.json";
/// The tar files `pg_basebackup -Ft -X stream` writes.
const TARS: [&str; 2] = ["base.tar", "pg_wal.tar"];

/// `wardline wal-archive`: PostgreSQL's `archive_command`.
#[derive(Args)]
pub struct WalArchiveArgs {
    /// The archive directory (it must exist).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// The segment's path (`%p`).
    path: PathBuf,
    /// The segment's file name (`%f`).
    name: String,
}

/// Where PostgreSQL's programs are: `--pg-bin`, `WARDLINE_PG_BIN`, the
/// newest `/usr/lib/postgresql/*/bin` (Debian), else `PATH`.
pub fn pg_program(bin: Option<&Path>, prog: &str) -> PathBuf {
    if let Some(b) = bin {
        return b.join(prog);
    }
    if let Some(b) = std::env::var_os("WARDLINE_PG_BIN") {
        return PathBuf::from(b).join(prog);
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join(prog).is_file())
        .max_by_key(|b| {
            b.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
    match debian {
        Some(b) => b.join(prog),
        None => PathBuf::from(prog),
    }
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server program, as the `postgres` user when run as root
/// (the server refuses to run as root).
fn server_command(bin: Option<&Path>, prog: &str) -> Command {
    let exe = pg_program(bin, prog);
    if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what} (is PostgreSQL installed? give --pg-bin)"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The URL's parts a restore needs again: user and database (never the
/// password).
fn url_user_db(url: &str) -> (String, String) {
    wardline_store_postgres::ops::url_user_db(url)
        .unwrap_or_else(|| ("postgres".into(), "postgres".into()))
}

/// The facts of the PostgreSQL database at `url`, in one snapshot; with
/// the newest audit row's recorded time.
fn pg_facts(url: &str) -> Result<(Facts, Option<i64>)> {
    let mut b = FactsBuilder::default();
    let chain = wardline_store_postgres::ops::scan_snapshot(url, |r| {
        b.add(r.resource_type, r.id, r.version, r.deleted, r.content);
    })
    .map_err(|e| anyhow::anyhow!("cannot read the database: {e}"))?;
    Ok((
        b.finish(chain.head_seq, chain.head_hash, chain.rows),
        chain.newest_recorded_ms,
    ))
}

fn facts_json(f: &Facts) -> (Value, Value) {
    (
        json!({
            "counts": f.counts,
            "sha256_by_type": f.type_sha256,
            "sha256": f.content_sha256,
            "order": "current versions (deletions included) by (type, id); each hashed as \
                      type NUL id NUL version NUL deleted NUL json LF",
        }),
        json!({"head_seq": f.audit_head_seq, "head_hash": f.audit_head_hash, "rows": f.audit_rows}),
    )
}

/// `wardline backup --database postgres://… --out DIR`.
pub fn backup(
    url: &str,
    location: &str,
    out: &Path,
    recipient: Option<&age::x25519::Recipient>,
    pg_bin: Option<&Path>,
) -> Result<ExitCode> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        anyhow::bail!(
            "{} exists and is not empty: a PostgreSQL backup is a new directory (never \
             overwritten); give a new --out",
            out.display()
        );
    }
    let started = Instant::now();
    eprintln!(
        "backup: recording the database's facts (counts, checksums, audit chain head) in one \
         snapshot"
    );
    let (f, _) = pg_facts(url)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let label = format!(
        "wardline backup {}",
        wardline_fhir::datetime::format_instant(wardline_fhir::datetime::now_ms())
    );
    eprintln!(
        "backup: pg_basebackup (tar, WAL streamed, SHA-256 manifest) into {}; the server keeps \
         serving",
        out.display()
    );
    let mut cmd = Command::new(pg_program(pg_bin, "pg_basebackup"));
    cmd.arg("-d").arg(url).arg("-D").arg(out).args([
        "-Ft",
        "-X",
        "stream",
        "--manifest-checksums=SHA256",
        "-c",
        "fast",
        "-l",
        &label,
    ]);
    if let Err(e) = run(cmd, "pg_basebackup") {
        let _ = std::fs::remove_dir_all(out);
        return Err(e);
    }
    let mut files = serde_json::Map::new();
    for name in TARS.iter().chain(std::iter::once(&"backup_manifest")) {
        let p = out.join(name);
        if !p.is_file() {
            anyhow::bail!("pg_basebackup wrote no {} in {}", name, out.display());
        }
        let sha = backup::file_sha256(&p)?;
        let bytes = std::fs::metadata(&p)?.len();
        let mut entry = json!({"bytes": bytes, "sha256": sha});
        if let Some(r) = recipient.filter(|_| *name != "backup_manifest") {
            let enc = out.join(format!("{name}.age"));
            let done = backup::encrypt_file(&p, &enc, r);
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
            done?;
            entry["encrypted_as"] = json!(format!("{name}.age"));
        }
        files.insert((*name).to_owned(), entry);
    }
    let (user, db) = url_user_db(url);
    let (resources, audit) = facts_json(&f);
    let mut m = json!({
        "format": PG_MANIFEST_FORMAT,
        "created": wardline_fhir::datetime::format_instant(wardline_fhir::datetime::now_ms()),
        "source": location,
        "database": db,
        "user": user,
        "label": label,
        "files": files,
        "facts_taken": "before the base backup began: a restore holds at least these \
                        (every change committed before), exactly these when nothing was \
                        written during the backup",
        "resources": resources,
        "audit": audit,
    });
    if let Some(r) = recipient {
        m["encryption"] = json!({"format": "age", "recipient": r.to_string()});
    }
    let manifest = out.join(PG_MANIFEST);
    let mut mf = std::fs::File::create_new(&manifest)
        .with_context(|| format!("cannot create {}", manifest.display()))?;
    use std::io::Write as _;
    mf.write_all(serde_json::to_string_pretty(&m)?.as_bytes())?;
    mf.write_all(b"\n")?;
    mf.sync_all()?;
    let _ = std::fs::File::open(out).and_then(|d| d.sync_all());
    let total: u64 = f.counts.values().sum();
    println!(
        "backup written: {} (pg_basebackup tar format{}; {:.1} s)",
        out.display(),
        if recipient.is_some() {
            ", encrypted to the key"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
    println!("manifest: {}", manifest.display());
    println!(
        "{total} current resources of {} types; audit chain head seq {} ({} rows) when it began",
        f.counts.len(),
        f.audit_head_seq,
        f.audit_rows
    );
    println!(
        "point-in-time restore needs the WAL archived since: archive_mode = on, archive_command \
         = 'wardline wal-archive --to /ARCHIVE %p %f' (see ARCHITECTURE.md)"
    );
    Ok(ExitCode::SUCCESS)
}

/// `wardline wal-archive --to DIR PATH NAME`.
pub fn wal_archive(a: &WalArchiveArgs) -> Result<ExitCode> {
    if a.name.is_empty() || a.name.contains('/') || a.name.starts_with('.') {
        anyhow::bail!("wal-archive: '{}' is not a WAL file name (%f)", a.name);
    }
    if !a.to.is_dir() {
        anyhow::bail!(
            "wal-archive: the archive directory {} does not exist",
            a.to.display()
        );
    }
    let dst = a.to.join(&a.name);
    if dst.exists() {
        // PostgreSQL may archive a segment again after a crash: the same
        // bytes are success, different bytes are never overwritten.
        if backup::file_sha256(&dst)? == backup::file_sha256(&a.path)? {
            return Ok(ExitCode::SUCCESS);
        }
        anyhow::bail!(
            "wal-archive: {} is already archived with different contents: not overwritten \
             (is another server archiving into the same directory?)",
            dst.display()
        );
    }
    let tmp = a.to.join(format!(".{}.partial", a.name));
    let _ = std::fs::remove_file(&tmp);
    std::fs::copy(&a.path, &tmp)
        .with_context(|| format!("wal-archive: cannot copy {}", a.path.display()))?;
    backup::sync_file(&tmp)?;
    // A hard link fails if the name exists: never overwrites.
    std::fs::hard_link(&tmp, &dst)
        .with_context(|| format!("wal-archive: cannot create {}", dst.display()))?;
    let _ = std::fs::remove_file(&tmp);
    std::fs::File::open(&a.to)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("wal-archive: cannot sync {}", a.to.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `from` is a PostgreSQL backup directory.
pub fn is_pg_backup(from: &Path) -> bool {
    from.join(PG_MANIFEST).is_file()
}

/// Options of a PostgreSQL restore.
#[derive(Args, Clone, Default)]
pub struct PgRestoreArgs {
    /// PostgreSQL backups: the WAL archive (where `wardline wal-archive`
    /// put the segments), replayed after the base backup.
    #[arg(long, value_name = "DIR")]
    pub wal_archive: Option<PathBuf>,
    /// PostgreSQL backups: recover to this instant (an RFC 3339 time with
    /// its offset, e.g. 2026-12-04T18:00:00Z) and no further: changes
    /// committed after it are not restored. Needs --wal-archive.
    #[arg(long, alias = "target-time", value_name = "INSTANT")]
    pub to_time: Option<String>,
    /// PostgreSQL backups: the loopback port of the private server started
    /// on the restored directory (default: a free one).
    #[arg(long, value_name = "PORT")]
    pub pg_port: Option<u16>,
    /// PostgreSQL backups: the directory of PostgreSQL's programs (default:
    /// WARDLINE_PG_BIN, the newest /usr/lib/postgresql/*/bin, else PATH).
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// PostgreSQL backups: leave the private server running after the
    /// verification (default: stopped, with the command to start it).
    #[arg(long)]
    pub keep_running: bool,
}

/// The target instant in milliseconds; refused unless a full date and time
/// with an offset (an instant without its zone is the wrong instant).
fn target_ms(s: &str) -> Result<i64> {
    let bad = || {
        anyhow::anyhow!(
            "--to-time '{s}' is not an instant: give a date, a time and its offset, e.g. \
             2026-12-04T18:00:00Z or 2026-12-04T18:00:00+00:00"
        )
    };
    let d = wardline_fhir::datetime::FhirDate::parse(s).ok_or_else(bad)?;
    if !d.has_offset() || !s.contains('T') {
        return Err(bad());
    }
    let (lo, _) = wardline_fhir::datetime::parse_range(s).ok_or_else(bad)?;
    Ok(lo)
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Restores the PostgreSQL backup `from` into the new data directory
/// `dir`, starts a private server on it, verifies and prints the report.
/// `Ok(true)`: verified. The server is stopped unless `keep_running`.
pub fn restore(
    from: &Path,
    dir: &Path,
    identity: Option<&age::x25519::Identity>,
    o: &PgRestoreArgs,
) -> Result<bool> {
    let manifest = from.join(PG_MANIFEST);
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read the backup's manifest {}", manifest.display()))?;
    let m: Value = serde_json::from_str(&text)
        .with_context(|| format!("the manifest {} is not JSON", manifest.display()))?;
    if m.get("format").and_then(Value::as_str) != Some(PG_MANIFEST_FORMAT) {
        anyhow::bail!(
            "{} is not a {PG_MANIFEST_FORMAT} manifest",
            manifest.display()
        );
    }
    let want = backup::facts_of(&m, PG_MANIFEST_FORMAT)?;
    let target = o.to_time.as_deref().map(target_ms).transpose()?;
    if target.is_some() && o.wal_archive.is_none() {
        anyhow::bail!(
            "--to-time needs --wal-archive DIR: a point-in-time restore replays the archived WAL \
             up to the instant"
        );
    }
    if let Some(a) = &o.wal_archive
        && !a.is_dir()
    {
        anyhow::bail!("the WAL archive {} is not a directory", a.display());
    }
    if m.get("encryption").is_some() && identity.is_none() {
        anyhow::bail!(
            "{} is encrypted: give --identity KEY (the file `wardline backup key init` wrote)",
            from.display()
        );
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        anyhow::bail!(
            "refusing to restore into {}: it is not empty; restore into a new or empty directory",
            dir.display()
        );
    }
    let root = as_root();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut findings = Vec::new();
    // 1. The tar files: decrypted, their checksums, extracted.
    for name in TARS {
        let entry = m.get("files").and_then(|f| f.get(name));
        let want_sha = entry.and_then(|e| e.get("sha256")).and_then(Value::as_str);
        let staged = dir.join(format!(".wardline-{name}"));
        let src = match entry
            .and_then(|e| e.get("encrypted_as"))
            .and_then(Value::as_str)
        {
            Some(enc) => {
                let id = identity.context("the backup is encrypted: give --identity KEY")?;
                backup::decrypt_file(&from.join(enc), &staged, id)?;
                staged.clone()
            }
            None => from.join(name),
        };
        let sha = backup::file_sha256(&src)?;
        match want_sha {
            Some(w) if w == sha => println!("{name}: checksum OK (sha256 {sha})"),
            _ => findings.push(format!(
                "{name}: its checksum (sha256 {sha}) differs from the manifest's: the file was \
                 changed after the backup"
            )),
        }
        let into = if name == "pg_wal.tar" {
            dir.join("pg_wal")
        } else {
            dir.to_path_buf()
        };
        std::fs::create_dir_all(&into)?;
        let mut tar = Command::new("tar");
        tar.arg("-xf").arg(&src).arg("-C").arg(&into);
        let r = run(tar, &format!("tar -xf {name}"));
        let _ = std::fs::remove_file(&staged);
        r?;
    }
    if !findings.is_empty() {
        return report(findings);
    }
    // 2. PostgreSQL's own check of every file against its manifest.
    let verify = pg_program(o.pg_bin.as_deref(), "pg_verifybackup");
    let mut cmd = Command::new(&verify);
    cmd.arg("-n")
        .arg("-m")
        .arg(from.join("backup_manifest"))
        .arg(dir);
    match run(cmd, "pg_verifybackup") {
        Ok(_) => println!("pg_verifybackup: every file matches the backup's checksum manifest"),
        Err(e) => findings.push(e.to_string()),
    }
    if !findings.is_empty() {
        return report(findings);
    }
    // 3. Recovery settings.
    let mut conf = String::from(
        "\n# wardline restore: the restored server archives nothing until an operator gives it \
         a NEW archive directory (never the one it was restored from)\narchive_mode = off\n",
    );
    if let Some(a) = &o.wal_archive {
        let a = std::path::absolute(a)?;
        let a = a.to_str().context("the WAL archive's path must be UTF-8")?;
        if a.contains('\'') || a.contains('"') {
            anyhow::bail!("the WAL archive's path must not contain quotes");
        }
        conf.push_str(&format!(
            "# wardline restore: recovery from the WAL archive\nrestore_command = 'cp \"{a}/%f\" \"%p\"'\n"
        ));
        if let Some(t) = target {
            conf.push_str(&format!(
                "recovery_target_time = '{}'\nrecovery_target_inclusive = off\n",
                // PostgreSQL's form: `2026-12-04 18:00:00.000+00`.
                wardline_fhir::datetime::format_instant(t)
                    .replace('T', " ")
                    .replace('Z', "+00")
            ));
        }
        conf.push_str("recovery_target_action = 'promote'\n");
        std::fs::write(dir.join("recovery.signal"), "")?;
    }
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("postgresql.auto.conf"))?;
        f.write_all(conf.as_bytes())?;
        f.sync_all()?;
    }
    if root {
        let mut c = Command::new("chown");
        c.args(["-R", "postgres:postgres"]).arg(dir);
        run(c, "chown postgres")?;
    }
    // 4. A private server on a loopback port; recovery to the end.
    let port = match o.pg_port {
        Some(p) => p,
        None => free_port()?,
    };
    let opts = format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''");
    let log = dir.join("wardline-restore.log");
    println!(
        "starting a private PostgreSQL on 127.0.0.1:{port} over {}{}",
        dir.display(),
        match &o.to_time {
            Some(t) => format!(", recovering to {t}"),
            None if o.wal_archive.is_some() => ", recovering to the end of the WAL archive".into(),
            None => String::new(),
        }
    );
    let mut start = server_command(o.pg_bin.as_deref(), "pg_ctl");
    start
        .arg("-D")
        .arg(dir)
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(&opts)
        .args(["-w", "-t", "600", "start"]);
    let pg_ctl_stop = |mode: &str| {
        let mut c = server_command(o.pg_bin.as_deref(), "pg_ctl");
        c.arg("-D").arg(dir).args(["-m", mode, "-w", "stop"]);
        let _ = c.stdin(Stdio::null()).output();
    };
    let log_tail = || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    if let Err(e) = run(start, "pg_ctl start") {
        pg_ctl_stop("immediate");
        anyhow::bail!("{e}\n--- server log ---\n{}", log_tail());
    }
    let (user, db) = (
        m.get("user").and_then(Value::as_str).unwrap_or("postgres"),
        m.get("database")
            .and_then(Value::as_str)
            .unwrap_or("postgres"),
    );
    let url = format!("postgres://{user}@127.0.0.1:{port}/{db}");
    let result = wait_and_verify(&url, &want, target, &log_tail);
    let keep = o.keep_running && matches!(result, Ok(ref f) if f.is_empty());
    if !keep {
        pg_ctl_stop("fast");
    }
    let findings = result?;
    let ok = findings.is_empty();
    report(findings)?;
    if ok {
        let start_cmd = format!(
            "pg_ctl -D {} -l {} -o \"-p {port} -c listen_addresses=127.0.0.1\" start",
            dir.display(),
            log.display()
        );
        if keep {
            println!("the restored server is running: {url}");
        } else {
            println!(
                "the restored server is stopped; start it with `{start_cmd}`{} and serve it with \
                 `wardline serve --database {url}`",
                if root { " (as the postgres user)" } else { "" }
            );
        }
    }
    Ok(ok)
}

fn report(findings: Vec<String>) -> Result<bool> {
    if findings.is_empty() {
        println!("verification OK");
        return Ok(true);
    }
    for f in &findings {
        println!("MISMATCH: {f}");
    }
    println!(
        "verification FAILED: {} finding{}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    );
    Ok(false)
}

/// Waits until the server has left recovery (promoted at the target, or at
/// the end of the WAL), then checks the database against the manifest.
fn wait_and_verify(
    url: &str,
    want: &Facts,
    target: Option<i64>,
    log_tail: &dyn Fn() -> String,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let last_err = match wardline_store_postgres::ops::in_recovery_at(url) {
            Ok(false) => break,
            Ok(true) => "still recovering".to_owned(),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            anyhow::bail!(
                "the restored server did not finish recovery ({last_err})\n--- server log ---\n{}",
                log_tail()
            );
        }
        if last_err.contains("refused") || last_err.contains("error connecting") {
            // The server stopped: recovery failed (e.g. the target is past
            // the end of the archived WAL).
            anyhow::bail!(
                "the restored server stopped during recovery ({last_err})\n--- server log ---\n{}",
                log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("recovery finished: the restored server is promoted (read-write)");
    let (got, newest) = pg_facts(url)?;
    let mut findings = Vec::new();
    let total: u64 = got.counts.values().sum();
    println!(
        "resources: {total} current resources of {} types; audit chain head seq {} ({} rows)",
        got.counts.len(),
        got.audit_head_seq,
        got.audit_rows
    );
    for (t, n) in &got.counts {
        println!("  {t}: {n}");
    }
    // The chain, walked and re-hashed (as `wardline audit verify`).
    let store = wardline_store_postgres::PostgresStore::connect(url)
        .map_err(|e| anyhow::anyhow!("cannot open the restored database: {e}"))?;
    let chain = wardline_store::audit::verify(&store, 1_000)
        .map_err(|e| anyhow::anyhow!("cannot read the restored audit chain: {e}"))?;
    if chain.findings.is_empty() {
        println!("audit chain: intact, {} rows", chain.rows);
    } else {
        for f in &chain.findings {
            findings.push(format!("audit chain: {f}"));
        }
    }
    // Everything committed before the backup began is there: the chain
    // holds the manifest's head with the same hash.
    use wardline_store::Store as _;
    if want.audit_head_seq > 0 {
        let at = store
            .scan_audit(want.audit_head_seq - 1, 1)
            .map_err(|e| anyhow::anyhow!("cannot read the restored audit chain: {e}"))?;
        match at.first() {
            Some(r) if r.seq == want.audit_head_seq && r.hash == want.audit_head_hash => println!(
                "the backup's audit head (seq {}) is in the restored chain with the same hash",
                want.audit_head_seq
            ),
            _ => findings.push(format!(
                "the backup's audit chain head (seq {}) is not in the restored chain with its \
                 hash: changes committed before the backup are missing",
                want.audit_head_seq
            )),
        }
    }
    if got.audit_head_seq == want.audit_head_seq {
        // Nothing written since the facts were taken: all must match.
        let mut types_ok = 0;
        let types: std::collections::BTreeSet<&String> =
            want.counts.keys().chain(got.counts.keys()).collect();
        for t in &types {
            let (w, g) = (
                want.counts.get(*t).copied().unwrap_or(0),
                got.counts.get(*t).copied().unwrap_or(0),
            );
            if w != g {
                findings.push(format!(
                    "{t}: {w} current resources in the manifest, {g} restored"
                ));
            } else if want.type_sha256.get(*t) != got.type_sha256.get(*t) {
                findings.push(format!(
                    "{t}: the checksum of the current versions differs from the manifest's"
                ));
            } else {
                types_ok += 1;
            }
        }
        println!(
            "{types_ok} of {} types match the manifest's counts and checksums (nothing was \
             written after the backup's facts were taken)",
            types.len()
        );
    } else {
        println!(
            "changes after the backup began were replayed: audit head seq {} (the backup's {})",
            got.audit_head_seq, want.audit_head_seq
        );
    }
    if let (Some(t), Some(n)) = (target, newest) {
        if n > t {
            findings.push(format!(
                "an audit row recorded at {} is after the target {}: recovery went past the instant",
                wardline_fhir::datetime::format_instant(n),
                wardline_fhir::datetime::format_instant(t)
            ));
        } else {
            println!(
                "nothing after the target: the newest audit row was recorded at {} (target {})",
                wardline_fhir::datetime::format_instant(n),
                wardline_fhir::datetime::format_instant(t)
            );
        }
    }
    drop(store);
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_must_be_an_instant_with_its_offset() {
        assert_eq!(
            target_ms("2026-12-04T18:00:00Z").unwrap(),
            target_ms("2026-12-04T19:00:00+01:00").unwrap()
        );
        assert_eq!(
            wardline_fhir::datetime::format_instant(target_ms("2026-12-04T18:00:00.250Z").unwrap()),
            "2026-12-04T18:00:00.250Z"
        );
        for bad in [
            "2026-12-04T18:00:00",
            "2026-12-04",
            "2026-12",
            "yesterday",
            "",
        ] {
            let e = target_ms(bad).unwrap_err().to_string();
            assert!(e.contains("offset"), "{bad}: {e}");
        }
    }

    fn archive(to: &Path, path: &Path, name: &str) -> Result<ExitCode> {
        wal_archive(&WalArchiveArgs {
            to: to.to_path_buf(),
            path: path.to_path_buf(),
            name: name.to_owned(),
        })
    }

    #[test]
    fn wal_archive_never_overwrites_and_accepts_the_same_segment_again() {
        let dir = tempfile::tempdir().unwrap();
        let arch = dir.path().join("archive");
        std::fs::create_dir(&arch).unwrap();
        let seg = dir.path().join("000000010000000000000001");
        std::fs::write(&seg, b"segment one").unwrap();
        archive(&arch, &seg, "000000010000000000000001").unwrap();
        assert_eq!(
            std::fs::read(arch.join("000000010000000000000001")).unwrap(),
            b"segment one"
        );
        // Archived again after a crash: the same bytes are success.
        archive(&arch, &seg, "000000010000000000000001").unwrap();
        // Different bytes under the same name: refused, the copy kept.
        std::fs::write(&seg, b"something else").unwrap();
        let e = archive(&arch, &seg, "000000010000000000000001")
            .unwrap_err()
            .to_string();
        assert!(e.contains("different contents"), "{e}");
        assert_eq!(
            std::fs::read(arch.join("000000010000000000000001")).unwrap(),
            b"segment one"
        );
        // No temporary file left; bad names and a missing archive refused.
        let names: Vec<_> = std::fs::read_dir(&arch)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(archive(&arch, &seg, "../x").is_err());
        assert!(archive(&arch, &seg, ".hidden").is_err());
        assert!(
            archive(
                &dir.path().join("missing"),
                &seg,
                "000000010000000000000002"
            )
            .is_err()
        );
    }
}
