//! `wardline backup` and `wardline restore` (issue 22): an online,
//! consistent copy of the SQLite database with a manifest beside it, and a
//! restore that verifies the copy against the manifest before it is used.
//!
//! The copy is SQLite's `VACUUM INTO` from a connection of its own: it reads
//! one snapshot (a read transaction in WAL mode), so the copy is the database
//! as of one commit while the server keeps serving and committing. The
//! manifest is computed from the copy, never from the live file: it is the
//! state the copy holds. PostgreSQL is backed up with its own tools
//! (`pg_basebackup` and WAL archiving), driven by `pgbackup.rs`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wardline::atrest::DbKey;

/// The manifest's format tag.
const MANIFEST_FORMAT: &str = "wardline-backup-manifest v1";

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// The backup file to write (never overwritten); the manifest is written
    /// beside it as FILE.manifest.json. With --database postgres://…: a new
    /// directory, where pg_basebackup's tar files, its checksum manifest and
    /// Wardline's manifest (wardline-manifest.json) are written.
    #[arg(long, value_name = "FILE|DIR")]
    out: Option<PathBuf>,
    /// PostgreSQL: the directory of PostgreSQL's programs (pg_basebackup;
    /// default: WARDLINE_PG_BIN, the newest /usr/lib/postgresql/*/bin, else
    /// PATH).
    #[arg(long, value_name = "DIR")]
    pg_bin: Option<PathBuf>,
    /// Encrypt the backup (the age format, x25519) to this key: the file
    /// `wardline backup key init` wrote, or one holding just its public key
    /// (`age1…`), so the backup host need not hold the secret.
    #[arg(long, value_name = "KEY")]
    encrypt_to: Option<PathBuf>,
    #[command(flatten)]
    store: crate::StoreArgs,
}

#[derive(Subcommand)]
pub enum BackupCommand {
    /// The backup encryption key, kept outside the backups.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a new x25519 key (age format) in a new file readable by its
    /// owner only; keep it apart from the backups and the data directory.
    Init(KeyInitArgs),
}

#[derive(Args)]
pub struct KeyInitArgs {
    /// The file to create (never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RestoreArgs {
    #[command(subcommand)]
    command: Option<RestoreCommand>,
    /// The backup file written by `wardline backup` (for PostgreSQL: its
    /// directory).
    #[arg(long, value_name = "FILE|DIR")]
    from: Option<PathBuf>,
    /// The manifest (default: FILE.manifest.json beside the backup).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The new data directory to restore into: it must not exist, or be
    /// empty (for PostgreSQL: the new PostgreSQL data directory).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The key an encrypted backup was made for (`wardline backup key init`).
    #[arg(long, value_name = "KEY")]
    identity: Option<PathBuf>,
    #[command(flatten)]
    pg: crate::pgbackup::PgRestoreArgs,
    /// Issue 22: the database key of a backup of an encrypted database (the
    /// copy stays encrypted with it: serve the restored directory with the
    /// same key).
    #[arg(long, env = "WARDLINE_DB_KEY_FILE", value_name = "FILE")]
    db_key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum RestoreCommand {
    /// Restore the backup to a scratch directory, verify it against its
    /// manifest, report, and remove the scratch copy.
    Drill(DrillArgs),
}

#[derive(Args)]
pub struct DrillArgs {
    /// The backup file written by `wardline backup` (for PostgreSQL: its
    /// directory).
    #[arg(long, value_name = "FILE|DIR")]
    from: PathBuf,
    /// The manifest (default: FILE.manifest.json beside the backup).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The key an encrypted backup was made for (`wardline backup key init`).
    #[arg(long, value_name = "KEY")]
    identity: Option<PathBuf>,
    #[command(flatten)]
    pg: crate::pgbackup::PgRestoreArgs,
    /// Issue 22: the database key of a backup of an encrypted database (the
    /// copy stays encrypted with it: serve the restored directory with the
    /// same key).
    #[arg(long, env = "WARDLINE_DB_KEY_FILE", value_name = "FILE")]
    db_key_file: Option<PathBuf>,
}

/// The first bytes of an age-encrypted file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/";

fn key_init(out: &Path) -> Result<ExitCode> {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let text = format!(
        "# wardline backup key (age x25519): keep it apart from the backups and the data directory\n\
         # public key: {}\n{}\n",
        id.to_public(),
        id.to_string().expose_secret()
    );
    wardline::anchor::write_key_file(out, "the backup key", &text)?;
    println!(
        "backup key written to {} (readable by its owner only); public key {}; back up with \
         `--encrypt-to {}`, restore with `--identity {}`; keep it apart from the backups",
        out.display(),
        id.to_public(),
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_key_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read the key {}", path.display()))
}

/// The recipient in a key file: its secret key's public half, or a public
/// key (`age1…`, or after `# public key: `).
pub(crate) fn load_recipient(path: &Path) -> Result<age::x25519::Recipient> {
    for line in read_key_file(path)?.lines() {
        let line = line.trim();
        if line.starts_with("AGE-SECRET-KEY-") {
            return Ok(load_identity_text(line, path)?.to_public());
        }
        let public = line.strip_prefix("# public key: ").unwrap_or(line);
        if public.starts_with("age1") {
            return public
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: not an age public key: {e}", path.display()));
        }
    }
    anyhow::bail!(
        "{} holds no age key (AGE-SECRET-KEY-… or age1…): make one with `wardline backup key init`",
        path.display()
    )
}

fn load_identity_text(line: &str, path: &Path) -> Result<age::x25519::Identity> {
    line.parse()
        .map_err(|e| anyhow::anyhow!("{}: not an age secret key: {e}", path.display()))
}

pub(crate) fn load_identity(path: &Path) -> Result<age::x25519::Identity> {
    for line in read_key_file(path)?.lines() {
        let line = line.trim();
        if line.starts_with("AGE-SECRET-KEY-") {
            return load_identity_text(line, path);
        }
    }
    anyhow::bail!(
        "{} holds no age secret key (AGE-SECRET-KEY-…): give the file `wardline backup key init` wrote",
        path.display()
    )
}

pub(crate) fn encrypt_file(src: &Path, dst: &Path, to: &age::x25519::Recipient) -> Result<()> {
    let enc = age::Encryptor::with_recipients(std::iter::once(to as &dyn age::Recipient))
        .map_err(|e| anyhow::anyhow!("cannot encrypt: {e}"))?;
    let out = std::fs::File::create_new(dst)
        .with_context(|| format!("cannot create {}", dst.display()))?;
    let mut w = enc.wrap_output(std::io::BufWriter::new(out))?;
    let mut input =
        std::fs::File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
    std::io::copy(&mut input, &mut w)?;
    let mut inner = w.finish()?;
    inner.flush()?;
    inner
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dst.display()))?
        .sync_all()?;
    Ok(())
}

pub(crate) fn decrypt_file(src: &Path, dst: &Path, id: &age::x25519::Identity) -> Result<()> {
    let input =
        std::fs::File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
    let dec = age::Decryptor::new(std::io::BufReader::new(input))
        .map_err(|e| anyhow::anyhow!("cannot decrypt {}: {e}", src.display()))?;
    let mut r = dec
        .decrypt(std::iter::once(id as &dyn age::Identity))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot decrypt {}: {e} (is --identity the key the backup was made for?)",
                src.display()
            )
        })?;
    let mut out = std::fs::File::create_new(dst)
        .with_context(|| format!("cannot create {}", dst.display()))?;
    std::io::copy(&mut r, &mut out)
        .with_context(|| format!("cannot decrypt {} (damaged?)", src.display()))?;
    out.sync_all()?;
    Ok(())
}

/// Whether the file is age-encrypted.
pub(crate) fn is_encrypted(path: &Path) -> Result<bool> {
    let mut head = [0u8; 19];
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let n = f.read(&mut head)?;
    Ok(&head[..n] == AGE_MAGIC)
}

/// What a database file holds, as the manifest records it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts {
    /// Current, non-deleted resources per type.
    pub(crate) counts: BTreeMap<String, u64>,
    /// Per type, SHA-256 over every current version (tombstones too) in
    /// (type, id) order.
    pub(crate) type_sha256: BTreeMap<String, String>,
    /// SHA-256 over every current version of every type, in (type, id) order.
    pub(crate) content_sha256: String,
    pub(crate) audit_head_seq: i64,
    pub(crate) audit_head_hash: String,
    pub(crate) audit_rows: u64,
}

pub(crate) use wardline::hexstr::encode as hex;

/// Builds [`Facts`] from the current versions in (type, id) order: the
/// one hashing of both backends' manifests.
#[derive(Default)]
pub(crate) struct FactsBuilder {
    counts: BTreeMap<String, u64>,
    type_sha256: BTreeMap<String, String>,
    all: Sha256,
    current: Option<(String, Sha256)>,
}

impl FactsBuilder {
    pub(crate) fn add(&mut self, ty: &str, id: &str, version: i64, deleted: bool, content: &str) {
        if self.current.as_ref().is_none_or(|(t, _)| t != ty) {
            if let Some((t, h)) = self.current.take() {
                self.type_sha256.insert(t, hex(&h.finalize()));
            }
            self.current = Some((ty.to_owned(), Sha256::new()));
            self.counts.entry(ty.to_owned()).or_insert(0);
        }
        if !deleted {
            *self.counts.entry(ty.to_owned()).or_insert(0) += 1;
        }
        let line = format!("{ty}\0{id}\0{version}\0{}\0", i64::from(deleted));
        if let Some((_, h)) = self.current.as_mut() {
            h.update(line.as_bytes());
            h.update(content.as_bytes());
            h.update(b"\n");
        }
        self.all.update(line.as_bytes());
        self.all.update(content.as_bytes());
        self.all.update(b"\n");
    }

    pub(crate) fn finish(
        mut self,
        audit_head_seq: i64,
        audit_head_hash: String,
        audit_rows: u64,
    ) -> Facts {
        if let Some((t, h)) = self.current.take() {
            self.type_sha256.insert(t, hex(&h.finalize()));
        }
        Facts {
            counts: self.counts,
            type_sha256: self.type_sha256,
            content_sha256: hex(&self.all.finalize()),
            audit_head_seq,
            audit_head_hash,
            audit_rows,
        }
    }
}

/// Reads the facts of the SQLite database at `path` in one read
/// transaction (an encrypted one with its database key).
pub(crate) fn facts(path: &Path, key: Option<&DbKey>) -> Result<Facts> {
    let mut c = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    if let Some(k) = key {
        wardline_store_sqlite::apply_key(&c, &k.sqlcipher_key())?;
    }
    wardline_store_sqlite::check_key(&c).map_err(|e| match key {
        Some(k) => anyhow::anyhow!(
            "cannot open {} with the database key {} ({e}): it is not the key the database was \
             encrypted with",
            path.display(),
            k.path().display()
        ),
        None => anyhow::anyhow!(
            "cannot open {} ({e}): it is encrypted (give --db-key-file) or not a database",
            path.display()
        ),
    })?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    let tx = c.transaction()?;
    let mut b = FactsBuilder::default();
    {
        let mut stmt = tx
            .prepare(
                "SELECT res_type, res_id, version, deleted, content FROM resources \
                 ORDER BY res_type, res_id",
            )
            .context("cannot read the resources table (is this a Wardline database?)")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let ty: String = r.get(0)?;
            let id: String = r.get(1)?;
            let version: i64 = r.get(2)?;
            let deleted: i64 = r.get(3)?;
            let content: String = r.get(4)?;
            b.add(&ty, &id, version, deleted != 0, &content);
        }
    }
    let (audit_head_seq, audit_head_hash): (i64, String) = tx
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap_or((0, String::new()));
    let audit_rows: i64 = tx.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))?;
    Ok(b.finish(
        audit_head_seq,
        audit_head_hash,
        u64::try_from(audit_rows).unwrap_or(0),
    ))
}

pub(crate) fn file_sha256(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn manifest_path(backup: &Path, given: Option<&Path>) -> PathBuf {
    match given {
        Some(p) => p.to_path_buf(),
        None => {
            let mut s = backup.as_os_str().to_owned();
            s.push(".manifest.json");
            PathBuf::from(s)
        }
    }
}

fn manifest_json(f: &Facts, file_sha: &str, bytes: u64, source: &str) -> Value {
    json!({
        "format": MANIFEST_FORMAT,
        "created": wardline_fhir::datetime::format_instant(wardline_fhir::datetime::now_ms()),
        "source": source,
        "file": {"bytes": bytes, "sha256": file_sha},
        "resources": {
            "counts": f.counts,
            "sha256_by_type": f.type_sha256,
            "sha256": f.content_sha256,
            "order": "current versions (deletions included) by (type, id); each hashed as \
                      type NUL id NUL version NUL deleted NUL json LF",
        },
        "audit": {"head_seq": f.audit_head_seq, "head_hash": f.audit_head_hash, "rows": f.audit_rows},
    })
}

pub(crate) fn facts_from_manifest(m: &Value) -> Result<Facts> {
    if m.get("format").and_then(Value::as_str) != Some(MANIFEST_FORMAT) {
        anyhow::bail!("the manifest is not a {MANIFEST_FORMAT} manifest");
    }
    facts_of(m, MANIFEST_FORMAT)
}

/// The `resources` and `audit` sections of a manifest (both backends').
pub(crate) fn facts_of(m: &Value, format: &str) -> Result<Facts> {
    let bad = || anyhow::anyhow!("the manifest is not a {format} manifest");
    let res = m.get("resources").ok_or_else(bad)?;
    let counts = res
        .get("counts")
        .and_then(Value::as_object)
        .ok_or_else(bad)?
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_u64().ok_or_else(bad)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let type_sha256 = res
        .get("sha256_by_type")
        .and_then(Value::as_object)
        .ok_or_else(bad)?
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or_else(bad)?.to_owned())))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let audit = m.get("audit").ok_or_else(bad)?;
    Ok(Facts {
        counts,
        type_sha256,
        content_sha256: res
            .get("sha256")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_owned(),
        audit_head_seq: audit
            .get("head_seq")
            .and_then(Value::as_i64)
            .ok_or_else(bad)?,
        audit_head_hash: audit
            .get("head_hash")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_owned(),
        audit_rows: audit.get("rows").and_then(Value::as_u64).ok_or_else(bad)?,
    })
}

pub(crate) fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

pub fn backup(a: &BackupArgs) -> Result<ExitCode> {
    if let Some(BackupCommand::Key(KeyCommand::Init(k))) = &a.command {
        return key_init(&k.out);
    }
    let Some(out) = &a.out else {
        anyhow::bail!("give --out FILE (the backup file to write)");
    };
    let recipient = a.encrypt_to.as_deref().map(load_recipient).transpose()?;
    if let Some(url) = &a.store.database {
        // issue 22: PostgreSQL backup, PITR and replica
        return crate::pgbackup::backup(
            url,
            &a.store.location(),
            out,
            recipient.as_ref(),
            a.pg_bin.as_deref(),
        );
    }
    let src = a.store.data_dir.join(wardline::SQLITE_FILE);
    if !src.is_file() {
        anyhow::bail!(
            "there is no Wardline database in {} (no {}): give --data-dir (or WARDLINE_DATA_DIR)",
            a.store.data_dir.display(),
            wardline::SQLITE_FILE
        );
    }
    let key = a
        .store
        .db_key_file
        .as_deref()
        .map(DbKey::load)
        .transpose()?;
    wardline::check_sqlite_key(&src, key.as_ref())?;
    if out.exists() {
        anyhow::bail!(
            "{} exists: `wardline backup` never overwrites a file; give a new --out",
            out.display()
        );
    }
    let manifest = manifest_path(out, None);
    if manifest.exists() {
        anyhow::bail!(
            "{} exists: `wardline backup` never overwrites a manifest; give a new --out",
            manifest.display()
        );
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let live_bytes = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "backup: copying {} ({:.1} MB) to {} as one consistent snapshot (VACUUM INTO); the \
         server may keep serving",
        src.display(),
        live_bytes as f64 / 1e6,
        out.display()
    );
    let started = std::time::Instant::now();
    let copy = {
        let src = src.clone();
        let partial = partial.clone();
        let sqlcipher = key.as_ref().map(DbKey::sqlcipher_key);
        std::thread::spawn(move || -> Result<()> {
            let c = rusqlite::Connection::open(&src)
                .with_context(|| format!("cannot open {}", src.display()))?;
            // An encrypted database's copy is encrypted with the same key
            // (VACUUM INTO attaches the copy with the main database's key).
            if let Some(k) = &sqlcipher {
                wardline_store_sqlite::apply_key(&c, k)?;
            }
            c.busy_timeout(std::time::Duration::from_secs(30))?;
            let target = partial
                .to_str()
                .context("the backup file's path must be valid UTF-8")?;
            c.execute("VACUUM INTO ?1", [target])
                .with_context(|| format!("cannot copy the database to {}", partial.display()))?;
            Ok(())
        })
    };
    // Progress: the copy's size, every half second, while it is written.
    let (mut last, mut printed) = (0, std::time::Instant::now());
    while !copy.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(20));
        if printed.elapsed() < std::time::Duration::from_millis(500) {
            continue;
        }
        printed = std::time::Instant::now();
        let n = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if n != last {
            eprintln!("backup: {:.1} MB written", n as f64 / 1e6);
            last = n;
        }
    }
    let copied = copy
        .join()
        .map_err(|_| anyhow::anyhow!("the copy thread panicked"))?;
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    sync_file(&partial)?;
    eprintln!(
        "backup: copied in {:.1} s; computing the manifest (counts, audit head, checksums)",
        started.elapsed().as_secs_f64()
    );
    let f = facts(&partial, key.as_ref())?;
    let bytes = std::fs::metadata(&partial)?.len();
    let sha = file_sha256(&partial)?;
    let mut m = manifest_json(&f, &sha, bytes, &src.display().to_string());
    if key.is_some() {
        // The copy is the encrypted database as it is: restored, it opens
        // with the same database key only.
        m["database_encryption"] = json!("sqlcipher");
    }
    match &recipient {
        Some(r) => {
            eprintln!("backup: encrypting to {r} (age, x25519)");
            let done = encrypt_file(&partial, out, r);
            let _ = std::fs::remove_file(&partial);
            done?;
            m["encryption"] = json!({"format": "age", "recipient": r.to_string()});
        }
        None => std::fs::rename(&partial, out)
            .with_context(|| format!("cannot rename the copy to {}", out.display()))?,
    }
    let mut mf = std::fs::File::create_new(&manifest)
        .with_context(|| format!("cannot create {}", manifest.display()))?;
    mf.write_all(serde_json::to_string_pretty(&m)?.as_bytes())?;
    mf.write_all(b"\n")?;
    mf.sync_all()?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    let total: u64 = f.counts.values().sum();
    println!(
        "backup written: {} ({bytes} bytes{}, sha256 {sha})",
        out.display(),
        if recipient.is_some() {
            " before encryption; encrypted to the key"
        } else {
            ""
        }
    );
    println!("manifest: {}", manifest.display());
    println!(
        "{total} current resources of {} types; audit chain head seq {} ({} rows)",
        f.counts.len(),
        f.audit_head_seq,
        f.audit_rows
    );
    Ok(ExitCode::SUCCESS)
}

pub fn restore(a: &RestoreArgs) -> Result<ExitCode> {
    match &a.command {
        Some(RestoreCommand::Drill(d)) => drill(d),
        None => {
            let (Some(from), Some(dir)) = (&a.from, &a.data_dir) else {
                anyhow::bail!(
                    "give --from FILE and --data-dir NEWDIR (or `wardline restore drill --from FILE`)"
                );
            };
            let id = a.identity.as_deref().map(load_identity).transpose()?;
            if crate::pgbackup::is_pg_backup(from) {
                let ok = crate::pgbackup::restore(from, dir, id.as_ref(), &a.pg)?;
                if !ok {
                    println!(
                        "restore FAILED verification: do not serve {}",
                        dir.display()
                    );
                }
                return Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            let manifest = manifest_path(from, a.manifest.as_deref());
            let key = a.db_key_file.as_deref().map(DbKey::load).transpose()?;
            let ok = restore_into(from, &manifest, dir, id.as_ref(), key.as_ref())?;
            if ok {
                println!(
                    "restored to {}: serve it with `wardline serve --data-dir {}`",
                    dir.join(wardline::SQLITE_FILE).display(),
                    dir.display()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "restore FAILED verification: nothing was left in {}",
                    dir.display()
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

fn drill(d: &DrillArgs) -> Result<ExitCode> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let scratch = std::env::temp_dir().join(format!(
        "wardline-restore-drill-{}-{nanos}",
        std::process::id()
    ));
    println!("restore drill: scratch directory {}", scratch.display());
    let manifest = manifest_path(&d.from, d.manifest.as_deref());
    let started = std::time::Instant::now();
    let id = d.identity.as_deref().map(load_identity).transpose()?;
    let key = d.db_key_file.as_deref().map(DbKey::load).transpose()?;
    let result = if crate::pgbackup::is_pg_backup(&d.from) {
        let pg = crate::pgbackup::PgRestoreArgs {
            keep_running: false,
            ..d.pg.clone()
        };
        crate::pgbackup::restore(&d.from, &scratch, id.as_ref(), &pg)
    } else {
        restore_into(&d.from, &manifest, &scratch, id.as_ref(), key.as_ref())
    };
    let removed = std::fs::remove_dir_all(&scratch);
    let ok = result?;
    removed.with_context(|| format!("cannot remove the scratch copy {}", scratch.display()))?;
    println!(
        "restore drill {}: restored and verified in {:.1} s; the scratch copy is removed",
        if ok { "OK" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Copies `from` into the new data directory `dir`, verifies the copy
/// against the manifest and prints the report. `Ok(true)`: verified, in
/// place as `dir/wardline.db`; `Ok(false)`: a mismatch (the copy removed).
fn restore_into(
    from: &Path,
    manifest: &Path,
    dir: &Path,
    identity: Option<&age::x25519::Identity>,
    key: Option<&DbKey>,
) -> Result<bool> {
    let text = std::fs::read_to_string(manifest).with_context(|| {
        format!(
            "cannot read the backup's manifest {} (give --manifest)",
            manifest.display()
        )
    })?;
    let m: Value = serde_json::from_str(&text)
        .with_context(|| format!("the manifest {} is not JSON", manifest.display()))?;
    let want = facts_from_manifest(&m).with_context(|| manifest.display().to_string())?;
    if !from.is_file() {
        anyhow::bail!("there is no backup file {}", from.display());
    }
    let encrypted = is_encrypted(from)?;
    if encrypted && identity.is_none() {
        anyhow::bail!(
            "{} is encrypted: give --identity KEY (the file `wardline backup key init` wrote)",
            from.display()
        );
    }
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Vec<_>>();
        if !entries.is_empty() {
            entries.sort();
            entries.truncate(5);
            anyhow::bail!(
                "refusing to restore into {}: it is not empty (it holds {}); restore into a new \
                 or empty directory",
                dir.display(),
                entries.join(", ")
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let target = dir.join(wardline::SQLITE_FILE);
    let staging = dir.join(format!("{}.restoring", wardline::SQLITE_FILE));
    let remove_staging = || {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = staging.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    };
    match identity.filter(|_| encrypted) {
        Some(id) => {
            if let Err(e) = decrypt_file(from, &staging, id) {
                remove_staging();
                return Err(e);
            }
            println!("decrypted: OK (age, x25519)");
        }
        None => {
            std::fs::copy(from, &staging).with_context(|| {
                format!("cannot copy {} to {}", from.display(), staging.display())
            })?;
            sync_file(&staging)?;
        }
    }
    let report = wardline::check_sqlite_key(&staging, key)
        .with_context(|| format!("the backup {}", from.display()))
        .and_then(|_| verify_copy(&staging, &m, &want, key));
    let findings = match report {
        Ok(f) => f,
        Err(e) => {
            remove_staging();
            return Err(e);
        }
    };
    if !findings.is_empty() {
        remove_staging();
        for f in &findings {
            println!("MISMATCH: {f}");
        }
        println!(
            "verification FAILED: {} finding{}",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        );
        return Ok(false);
    }
    std::fs::rename(&staging, &target)
        .with_context(|| format!("cannot rename the copy to {}", target.display()))?;
    remove_staging();
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    println!("verification OK");
    Ok(true)
}

/// Checks the copy at `path` against the manifest; prints what matched and
/// returns what did not.
fn verify_copy(path: &Path, m: &Value, want: &Facts, key: Option<&DbKey>) -> Result<Vec<String>> {
    let mut findings = Vec::new();
    let file = m.get("file");
    let want_sha = file.and_then(|f| f.get("sha256")).and_then(Value::as_str);
    let got_sha = file_sha256(path)?;
    match want_sha {
        Some(s) if s == got_sha => println!("file checksum: OK (sha256 {got_sha})"),
        Some(s) => findings.push(format!(
            "the backup file's checksum differs from the manifest's (sha256 {got_sha}, manifest \
             {s}): the file was changed after the backup"
        )),
        None => findings.push("the manifest records no file checksum".into()),
    }
    let got = facts(path, key).context("cannot read the restored copy")?;
    // Counts and checksums per type.
    let types: std::collections::BTreeSet<&String> =
        want.counts.keys().chain(got.counts.keys()).collect();
    let mut types_ok = 0;
    for t in types {
        let (w, g) = (
            want.counts.get(t).copied().unwrap_or(0),
            got.counts.get(t).copied().unwrap_or(0),
        );
        let mut ok = true;
        if w != g {
            findings.push(format!(
                "{t}: {w} current resources in the manifest, {g} in the restored copy"
            ));
            ok = false;
        }
        if want.type_sha256.get(t) != got.type_sha256.get(t) {
            findings.push(format!(
                "{t}: the checksum of the current versions differs from the manifest's (a \
                 resource was changed, added or removed)"
            ));
            ok = false;
        }
        if ok {
            types_ok += 1;
        }
    }
    let total: u64 = got.counts.values().sum();
    println!(
        "resources: {total} current resources; {types_ok} of {} types match the manifest's \
         counts and checksums",
        want.counts.len().max(got.counts.len())
    );
    if want.content_sha256 == got.content_sha256 {
        println!(
            "checksum of every current version: OK (sha256 {})",
            got.content_sha256
        );
    } else {
        findings.push(format!(
            "the checksum of every current version differs (manifest {}, restored {})",
            want.content_sha256, got.content_sha256
        ));
    }
    if (want.audit_head_seq, &want.audit_head_hash) != (got.audit_head_seq, &got.audit_head_hash) {
        findings.push(format!(
            "audit chain head: seq {} in the manifest, seq {} in the restored copy (or its hash \
             differs)",
            want.audit_head_seq, got.audit_head_seq
        ));
    }
    if want.audit_rows != got.audit_rows {
        findings.push(format!(
            "audit rows: {} in the manifest, {} in the restored copy",
            want.audit_rows, got.audit_rows
        ));
    }
    // The chain itself, walked and re-hashed (as `wardline audit verify`).
    let chain = {
        let sqlcipher = key.map(DbKey::sqlcipher_key);
        let store = wardline_store_sqlite::SqliteStore::open_with_key(path, sqlcipher.as_ref())
            .with_context(|| format!("cannot open the restored copy {}", path.display()))?;
        wardline_store::audit::verify(&store, 1_000)
            .map_err(|e| anyhow::anyhow!("cannot read the restored audit chain: {e}"))?
    };
    if chain.findings.is_empty() {
        println!(
            "audit chain: intact, {} rows, head seq {} as in the manifest",
            chain.rows, got.audit_head_seq
        );
    } else {
        for f in &chain.findings {
            findings.push(format!("audit chain: {f}"));
        }
    }
    Ok(findings)
}
