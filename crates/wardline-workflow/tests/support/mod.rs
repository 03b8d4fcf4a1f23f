//! What the workflow tests share: the stores every test runs on. Each test
//! file is its own crate and includes this with `mod support;`; a file uses
//! part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::sync::Arc;

use wardline_core::{FhirService, ServiceConfig};
use wardline_store::Store;

/// One backend a test runs on.
pub struct Backend {
    /// `sqlite` or `postgres`, for assertion messages.
    pub name: &'static str,
    pub svc: FhirService,
    /// The SQLite file's directory, removed when the backend is dropped.
    _dir: Option<tempfile::TempDir>,
}

/// The raw stores: SQLite in a fresh temporary directory always, and
/// PostgreSQL in a fresh schema whose name begins `prefix` when `WARDLINE_TEST_PG_URL`
/// is set (or required by `WARDLINE_REQUIRE_PG`).
pub fn stores(prefix: &str) -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let mut out: Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> =
        vec![("sqlite", Arc::new(sqlite), Some(dir))];
    if let Some((pg, _, _)) = wardline_store_postgres::testenv::store(prefix) {
        out.push(("postgres", Arc::new(pg), None));
    }
    out
}

/// A service over each of [`stores`], made by `wrap` (the write rules and
/// operations the test needs: `wardline_workflow::with_rules`, …, or none)
/// and seeded by `seed`.
pub fn backends(
    prefix: &str,
    wrap: impl Fn(FhirService) -> FhirService,
    seed: impl Fn(&FhirService),
) -> Vec<Backend> {
    stores(prefix)
        .into_iter()
        .map(|(name, store, dir)| {
            let svc = wrap(FhirService::new(store, ServiceConfig::default()));
            seed(&svc);
            Backend {
                name,
                svc,
                _dir: dir,
            }
        })
        .collect()
}

/// The service as it is, without write rules.
pub fn plain(svc: FhirService) -> FhirService {
    svc
}
