//! Issue 22, encryption at rest: `wardline key init` (the database key)
//! and `wardline encrypt-db` (an encrypted copy of a plaintext SQLite
//! database, in a new data directory). See `wardline::atrest`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wardline::atrest::DbKey;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a new database key (32 random bytes) in a new file readable
    /// by its owner only. Keep it outside the data directory and its
    /// backups, and a copy in escrow: without it the database is lost.
    Init(KeyInitArgs),
}

#[derive(Args)]
pub struct KeyInitArgs {
    /// The file to create (never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args)]
pub struct EncryptDbArgs {
    /// The data directory of the plaintext database (left as it is).
    #[arg(long, env = "WARDLINE_DATA_DIR", default_value = "wardline-data")]
    data_dir: PathBuf,
    /// The new data directory of the encrypted copy: it must not exist, or
    /// be empty.
    #[arg(long, value_name = "DIR")]
    out_data_dir: PathBuf,
    /// The database key to encrypt with (`wardline key init`).
    #[arg(long, env = "WARDLINE_DB_KEY_FILE", value_name = "FILE")]
    db_key_file: PathBuf,
}

pub fn run_key(c: KeyCommand) -> Result<ExitCode> {
    match c {
        KeyCommand::Init(a) => {
            DbKey::create(&a.out)?;
            println!(
                "database key written to {} (readable by its owner only). Give it to every \
                 command with --db-key-file (or WARDLINE_DB_KEY_FILE); keep it apart from the \
                 data directory and the backups, and a copy in escrow: without it the \
                 database cannot be read",
                a.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Writes an encrypted copy of the plaintext database in `data_dir` to
/// `out_data_dir` (SQLCipher's `sqlcipher_export` under the source's write
/// lock, so the copy is one commit's state), checks it against the source
/// (counts, a checksum of every current version, the audit chain walked),
/// and seals its secrets.
pub fn encrypt_db(a: &EncryptDbArgs) -> Result<ExitCode> {
    let key = DbKey::load(&a.db_key_file)?;
    let src = a.data_dir.join(wardline::SQLITE_FILE);
    match wardline::atrest::sqlite_is_plaintext(&src)? {
        None => anyhow::bail!(
            "there is no Wardline database in {} (no {}): give --data-dir",
            a.data_dir.display(),
            wardline::SQLITE_FILE
        ),
        Some(false) => anyhow::bail!(
            "{} is already encrypted (or is not a SQLite database): nothing to convert",
            src.display()
        ),
        Some(true) => {}
    }
    let dir = &a.out_data_dir;
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "refusing to write into {}: it is not empty; give a new or empty --out-data-dir",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let target = dir.join(wardline::SQLITE_FILE);
    let staging = dir.join(format!("{}.encrypting", wardline::SQLITE_FILE));
    eprintln!(
        "encrypt-db: copying {} into {} encrypted with {} (stop the server first: what it \
         writes after the copy is not in it)",
        src.display(),
        target.display(),
        key.path().display()
    );
    let exported = (|| -> Result<()> {
        let c = rusqlite::Connection::open(&src)
            .with_context(|| format!("cannot open {}", src.display()))?;
        c.busy_timeout(std::time::Duration::from_secs(30))?;
        let hex: String = key
            .sqlcipher_key()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let staging_text = staging
            .to_str()
            .context("the new data directory's path must be valid UTF-8")?;
        c.execute(
            &format!("ATTACH DATABASE ?1 AS encrypted KEY \"x'{hex}'\""),
            [staging_text],
        )
        .context("cannot create the encrypted copy")?;
        c.execute_batch("BEGIN IMMEDIATE")?;
        c.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))
            .context("cannot copy into the encrypted database (sqlcipher_export)")?;
        c.execute_batch("COMMIT; DETACH DATABASE encrypted;")?;
        Ok(())
    })();
    if let Err(e) = exported {
        remove_db_files(&staging);
        return Err(e);
    }
    std::fs::rename(&staging, &target)
        .with_context(|| format!("cannot rename the copy to {}", target.display()))?;
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    // Check the copy against the source.
    let want = crate::backup::facts(&src, None)?;
    let got = crate::backup::facts(&target, Some(&key))?;
    let fail = |what: &str| -> Result<ExitCode> {
        remove_db_files(&target);
        println!(
            "encrypt-db FAILED: {what}; nothing was left in {}",
            dir.display()
        );
        Ok(ExitCode::FAILURE)
    };
    if got != want {
        return fail(
            "the encrypted copy differs from the source (counts, checksums or audit head)",
        );
    }
    let store = crate::StoreArgs {
        data_dir: dir.clone(),
        database: None,
        time_zone: None,
        db_key_file: Some(a.db_key_file.clone()),
    }
    .open()?;
    let chain = wardline_store::audit::verify(&*store, 1_000)
        .map_err(|e| anyhow::anyhow!("cannot read the copy's audit chain: {e}"))?;
    if !chain.findings.is_empty() {
        for f in &chain.findings {
            println!("audit chain: {f}");
        }
        drop(store);
        return fail("the copy's audit chain does not verify");
    }
    let total: u64 = got.counts.values().sum();
    println!(
        "encrypted copy written: {} ({total} current resources of {} types, every current \
         version's checksum as in the source; audit chain intact, {} rows, head seq {}; secrets \
         sealed)",
        target.display(),
        got.counts.len(),
        chain.rows,
        got.audit_head_seq
    );
    println!(
        "serve it with `wardline serve --data-dir {} --db-key-file {}`; the plaintext database \
         in {} is left as it was: remove it, and its plaintext backups, once the copy serves",
        dir.display(),
        key.path().display(),
        a.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
