//! The composition root's reusable parts, shared by the `wardline` binary
//! and the `wardline-bench` tool so that neither writes them twice: where
//! the data lives ([`StoreArgs`]: `--data-dir` / `--database`, the one place
//! that picks the backend, and `--time-zone`, the trust's, in which the
//! index is built), the service every command writes through ([`service`]:
//! the core with the workflows' write rules; [`StoreArgs::service`] opens
//! the store and builds it with its index brought up to date) and loading
//! FHIR JSON through the core ([`load`]: what `wardline import` and the
//! benchmarks load with).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

// issue 22: audit anchor
pub mod anchor;
// issue 22: encryption at rest
pub mod atrest;
pub mod hexstr;
pub mod load;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use wardline_core::{FhirService, ServiceConfig};
use wardline_fhir::datetime::LocalZone;
use wardline_store::Store;

/// The FHIR service over `store` with the workflows' write rules
/// (`wardline_workflow::with_rules`: one active record per NHS number, one
/// record per hospital number), so that no command that writes — `serve`,
/// `import`, the HL7 tools, the user tools — skips them. `serve` adds the
/// operations, exports and the HL7 outbox on top.
pub fn service(store: Arc<dyn Store>, config: ServiceConfig) -> FhirService {
    wardline_workflow::with_rules(FhirService::new(store, config))
}

/// How stores opened by [`StoreArgs::open`] commit (issue 21: group
/// commit, on unless `serve --group-commit off` or a benchmark says so).
static GROUP_COMMIT: std::sync::Mutex<Option<wardline_store::group_commit::GroupCommit>> =
    std::sync::Mutex::new(None);

/// Sets how stores opened from now on commit (see [`GROUP_COMMIT`]).
pub fn set_group_commit(g: wardline_store::group_commit::GroupCommit) {
    *GROUP_COMMIT.lock().unwrap_or_else(|e| e.into_inner()) = Some(g);
}

/// How stores opened now commit.
pub fn group_commit() -> wardline_store::group_commit::GroupCommit {
    GROUP_COMMIT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_default()
}

/// `--group-commit on|off` (serve, the benchmarks).
pub fn parse_on_off(s: &str) -> std::result::Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("'{other}': give on or off")),
    }
}

/// The embedded database's file in the data directory.
pub const SQLITE_FILE: &str = "wardline.db";

/// Where the data lives.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Directory of the embedded SQLite database.
    #[arg(long, env = "WARDLINE_DATA_DIR", default_value = "wardline-data")]
    pub data_dir: PathBuf,
    /// A postgres://… URL; when given, PostgreSQL is used instead of SQLite.
    #[arg(long, env = "WARDLINE_DATABASE")]
    pub database: Option<String>,
    /// The trust's local time zone (an IANA name such as Europe/London):
    /// dates without a time-zone offset, stored or searched for (a date of
    /// birth, `birthdate=2024-07-01`), are read in it. The search index is
    /// built in it and the database remembers it: without this option a
    /// command uses the database's zone (Europe/London for a new one); with
    /// another zone, the index is rebuilt in it before the command runs.
    #[arg(
        long,
        env = "WARDLINE_TIME_ZONE",
        value_name = "ZONE",
        value_parser = LocalZone::named
    )]
    pub time_zone: Option<LocalZone>,
    /// Issue 22, encryption at rest: the database key (`wardline key init
    /// --out FILE`), kept outside the data directory. SQLite: the database
    /// file is encrypted with it (SQLCipher; a new database is created
    /// encrypted, a plaintext one is converted with `wardline encrypt-db`).
    /// Both backends: the secrets in the database (password hashes, TOTP
    /// seeds, the token signing key) are sealed with it. A database opened
    /// once with a key refuses to open without it.
    #[arg(long, env = "WARDLINE_DB_KEY_FILE", value_name = "FILE")]
    pub db_key_file: Option<PathBuf>,
}

impl StoreArgs {
    /// Opens the store and builds the service over it in the trust's time
    /// zone (`config.time_zone` is set: `--time-zone`, else the one the
    /// database's index was built in, else Europe/London), after bringing
    /// its search index to the service's format ([`prepare_index`]).
    pub fn service(&self, config: ServiceConfig) -> Result<FhirService> {
        self.service_over(self.open()?, config)
    }

    /// [`StoreArgs::service`] over a store opened by the caller (issue 22:
    /// `serve --replica`, a primary and its read replica as one store).
    pub fn service_over(
        &self,
        store: Arc<dyn Store>,
        config: ServiceConfig,
    ) -> Result<FhirService> {
        let time_zone = match &self.time_zone {
            Some(z) => z.clone(),
            None => match wardline_core::reindex::recorded_zone(&*store)
                .map_err(|e| anyhow::anyhow!("cannot read the index's time zone: {e}"))?
            {
                Some(name) => LocalZone::named(&name).map_err(|_| {
                    anyhow::anyhow!(
                        "the database's index was built in the time zone '{name}', which this \
                         build does not know; give --time-zone"
                    )
                })?,
                None => LocalZone::default(),
            },
        };
        let svc = service(
            store,
            ServiceConfig {
                time_zone,
                ..config
            },
        );
        prepare_index(&svc)?;
        Ok(svc)
    }

    /// [`StoreArgs::service`] for a command that works on an existing
    /// database (the operator commands: `user`, `token`, `client`, `audit`,
    /// `hl7`, …): where there is none it refuses, naming the directory,
    /// instead of creating an empty one by accident. Only `serve` and
    /// `import` create a database.
    pub fn existing_service(&self, config: ServiceConfig) -> Result<FhirService> {
        self.require_existing()?;
        self.service(config)
    }

    /// [`StoreArgs::open`] for a command that works on an existing database
    /// (see [`StoreArgs::existing_service`]).
    pub fn open_existing(&self) -> Result<Arc<dyn Store>> {
        self.require_existing()?;
        self.open()
    }

    /// An error naming the data directory when it holds no Wardline
    /// database (SQLite; a PostgreSQL URL names a database that exists).
    fn require_existing(&self) -> Result<()> {
        if self.database.is_some() {
            return Ok(());
        }
        let path = self.data_dir.join(SQLITE_FILE);
        if path.is_file() {
            return Ok(());
        }
        let dir = std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        anyhow::bail!(
            "there is no Wardline database in {} (no {SQLITE_FILE}): `wardline serve` or \
             `wardline import` creates one; give --data-dir (or WARDLINE_DATA_DIR) or \
             --database to use another",
            dir.display()
        )
    }

    /// Where the data is, in words for the start-up lines: the SQLite
    /// file's absolute path, or the PostgreSQL server and database (never
    /// the password).
    pub fn location(&self) -> String {
        match &self.database {
            Some(url) => {
                // postgres://user:password@host:port/db?options → host:port/db
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
                let rest = rest.split('?').next().unwrap_or(rest);
                format!("PostgreSQL {rest}")
            }
            None => {
                let dir =
                    std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
                format!("{} (SQLite)", dir.join(SQLITE_FILE).display())
            }
        }
    }

    /// Opens the store, creating an empty SQLite database when there is
    /// none (`serve`, `import` and the benchmarks). With `--db-key-file`
    /// the SQLite file is opened (or created) encrypted and the secrets are
    /// sealed ([`atrest`]); without it, a database whose file or secrets
    /// are encrypted is refused, never read as if empty.
    pub fn open(&self) -> Result<Arc<dyn Store>> {
        let key = self
            .db_key_file
            .as_deref()
            .map(atrest::DbKey::load)
            .transpose()?;
        let store: Arc<dyn Store> = match &self.database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let s = wardline_store_postgres::PostgresStore::connect(url)
                    .with_context(|| "cannot connect to PostgreSQL".to_string())?;
                Arc::new(s)
            }
            Some(other) => anyhow::bail!("--database must be a postgres:// URL, not '{other}'"),
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
                let path = self.data_dir.join(SQLITE_FILE);
                Arc::new(open_sqlite(&path, key.as_ref())?)
            }
        };
        match key {
            Some(key) => {
                let sealed = atrest::seal_secrets(&*store, &key)?;
                if sealed > 0 {
                    tracing::info!(
                        secrets = sealed,
                        key = %key.path().display(),
                        "sealed the plaintext secrets in the database with the database key"
                    );
                }
                Ok(Arc::new(atrest::SealedStore::new(store, key.sealer())))
            }
            None => {
                if atrest::is_sealed(&*store)? {
                    anyhow::bail!(
                        "the secrets in {} (password hashes, TOTP seeds, the token signing key) \
                         are sealed with a database key: give --db-key-file FILE (or \
                         WARDLINE_DB_KEY_FILE), the key it was sealed with",
                        self.location()
                    );
                }
                Ok(store)
            }
        }
    }
}

/// Opens the SQLite database at `path`, encrypted with `key` or plaintext,
/// with errors that say which and name the key file.
pub fn open_sqlite(
    path: &std::path::Path,
    key: Option<&atrest::DbKey>,
) -> Result<wardline_store_sqlite::SqliteStore> {
    let plaintext = check_sqlite_key(path, key)?;
    let sqlcipher = key.map(atrest::DbKey::sqlcipher_key);
    wardline_store_sqlite::SqliteStore::open_with(path, sqlcipher.as_ref(), group_commit()).map_err(
        |e| match key {
            Some(k) if plaintext.is_some() => anyhow::anyhow!(
                "cannot open {} with the database key {}: it is not the key this database was \
                 encrypted with ({e})",
                path.display(),
                k.path().display()
            ),
            _ => anyhow::anyhow!("cannot open {}: {e}", path.display()),
        },
    )
}

/// Refuses, with an error saying what to do, a key for a plaintext SQLite
/// file or no key for an encrypted one; returns whether the file is
/// plaintext (`None`: absent or empty).
pub fn check_sqlite_key(
    path: &std::path::Path,
    key: Option<&atrest::DbKey>,
) -> Result<Option<bool>> {
    let plaintext = atrest::sqlite_is_plaintext(path)?;
    match (key, plaintext) {
        (Some(k), Some(true)) => anyhow::bail!(
            "{} is not encrypted, but a database key was given ({}): convert it with `wardline \
             encrypt-db --data-dir DIR --out-data-dir NEWDIR --db-key-file {}`, or leave out \
             --db-key-file",
            path.display(),
            k.path().display(),
            k.path().display()
        ),
        (None, Some(false)) => anyhow::bail!(
            "{} is encrypted (or is not a SQLite database): give --db-key-file FILE (or \
             WARDLINE_DB_KEY_FILE), the key it was encrypted with",
            path.display()
        ),
        _ => {}
    }
    Ok(plaintext)
}

/// Rebuilds the search index when it was built in another format or time
/// zone ([`FhirService::reindex_if_needed`]), logging its progress; before
/// the service is used.
pub fn prepare_index(svc: &FhirService) -> Result<()> {
    let started = std::time::Instant::now();
    let mut said = started;
    let rebuilt = svc
        .reindex_if_needed(&mut |n| {
            if said.elapsed().as_secs() >= 10 {
                said = std::time::Instant::now();
                tracing::info!(resources = n, "rebuilding the search index");
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot rebuild the search index: {e}"))?;
    if let Some(n) = rebuilt {
        tracing::info!(
            resources = n,
            format = %svc.index_format(),
            seconds = started.elapsed().as_secs(),
            "search index rebuilt"
        );
    }
    Ok(())
}
