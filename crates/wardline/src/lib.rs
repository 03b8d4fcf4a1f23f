//! The composition root's reusable parts, shared by the `wardline` binary
//! and the `wardline-bench` tool so that neither writes them twice: where
//! the data lives ([`StoreArgs`]: `--data-dir` / `--database`, the one place
//! that picks the backend), the service every command writes through
//! ([`service`]: the core with the workflows' write rules) and loading FHIR
//! JSON through the core ([`load`]: what `wardline import` and the
//! benchmarks load with).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod load;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use wardline_core::{FhirService, ServiceConfig};
use wardline_store::Store;

/// The FHIR service over `store` with the workflows' write rules
/// (`wardline_workflow::with_rules`: one active record per NHS number, one
/// record per hospital number), so that no command that writes — `serve`,
/// `import`, the HL7 tools, the user tools — skips them. `serve` adds the
/// operations, exports and the HL7 outbox on top.
pub fn service(store: Arc<dyn Store>, config: ServiceConfig) -> FhirService {
    wardline_workflow::with_rules(FhirService::new(store, config))
}

/// Where the data lives.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Directory of the embedded SQLite database.
    #[arg(long, env = "WARDLINE_DATA_DIR", default_value = "wardline-data")]
    pub data_dir: PathBuf,
    /// A postgres://… URL; when given, PostgreSQL is used instead of SQLite.
    #[arg(long, env = "WARDLINE_DATABASE")]
    pub database: Option<String>,
}

impl StoreArgs {
    pub fn open(&self) -> Result<Arc<dyn Store>> {
        match &self.database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let s = wardline_store_postgres::PostgresStore::connect(url)
                    .with_context(|| "cannot connect to PostgreSQL".to_string())?;
                Ok(Arc::new(s))
            }
            Some(other) => anyhow::bail!("--database must be a postgres:// URL, not '{other}'"),
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
                let path = self.data_dir.join("wardline.db");
                let s = wardline_store_sqlite::SqliteStore::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                Ok(Arc::new(s))
            }
        }
    }
}
