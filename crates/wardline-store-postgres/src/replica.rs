//! A primary and a read replica behind one [`Store`] (issue 22).
//!
//! [`ReplicatedStore`] sends searches and `_include` rounds outside a
//! transaction — what search Bundles and the workspace's list pages (bed
//! boards, worklists, patient lists) are made of — to the replica, a
//! PostgreSQL hot standby fed by streaming replication; everything else
//! goes to the primary: every transaction (so a write, and every read a
//! write makes), the read of one resource by id (`read`, `read_many`,
//! `vread`: a FHIR read right after a create, a chart opened from a list),
//! history, the audit trail and the key-value data (credentials, sessions).
//!
//! Read-your-writes: after each commit through this store the primary's
//! WAL position is noted; a search goes to the replica only once the
//! replica has replayed at least that far, otherwise it goes to the
//! primary. So a page shown after a write this server made (a redirect to
//! the bed board after an admission) never misses that write, whatever the
//! replica's lag. (Writes another server made on the same primary are seen
//! on the replica as soon as it replays them: normally well under a
//! second.) A replica that fails or cannot be reached is left alone for
//! [`RETRY_AFTER`] and its work goes to the primary meanwhile: searches
//! never fail because of the replica.
//!
//! [`ReplicaStats`] counts where searches went, for `/metrics`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wardline_fhir::SearchQuery;
use wardline_store::audit::{AuditAnchor, AuditAppend, AuditQuery, AuditRow};
use wardline_store::{
    HistoryRequest, IncludeRequest, PageRequest, Reader, Reindex, ResourceWrite, Result,
    SearchPage, Store, StoreTx, StoredResource,
};

use crate::PostgresStore;

/// How long a replica that failed is left alone.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where searches went.
#[derive(Debug, Default)]
pub struct ReplicaStats {
    /// Served by the replica.
    pub replica: AtomicU64,
    /// Sent to the primary because the replica had not yet replayed this
    /// server's latest write.
    pub primary_lagging: AtomicU64,
    /// Sent to the primary because the replica failed or is away.
    pub primary_unavailable: AtomicU64,
}

impl ReplicaStats {
    /// Prometheus text for `/metrics`.
    pub fn render(&self) -> String {
        format!(
            "# HELP wardline_replica_searches_total Searches by the database that served them.\n\
             # TYPE wardline_replica_searches_total counter\n\
             wardline_replica_searches_total{{served_by=\"replica\"}} {}\n\
             wardline_replica_searches_total{{served_by=\"primary\",reason=\"replica_behind\"}} {}\n\
             wardline_replica_searches_total{{served_by=\"primary\",reason=\"replica_unavailable\"}} {}\n",
            self.replica.load(Ordering::Relaxed),
            self.primary_lagging.load(Ordering::Relaxed),
            self.primary_unavailable.load(Ordering::Relaxed),
        )
    }
}

/// A primary and its read replica as one store (see the module).
pub struct ReplicatedStore {
    primary: Arc<PostgresStore>,
    replica: PostgresStore,
    /// The primary's WAL position after this server's latest commit.
    written: AtomicU64,
    /// The replica's replay position when last asked.
    replayed: AtomicU64,
    /// Until when the replica is left alone after a failure.
    away_until: Mutex<Option<Instant>>,
    stats: Arc<ReplicaStats>,
}

impl ReplicatedStore {
    pub fn new(primary: PostgresStore, replica: PostgresStore) -> ReplicatedStore {
        ReplicatedStore {
            primary: Arc::new(primary),
            replica,
            written: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            away_until: Mutex::new(None),
            stats: Arc::new(ReplicaStats::default()),
        }
    }

    /// Connects to both: the primary as [`PostgresStore::connect`] (its
    /// migrations applied), the replica as
    /// [`PostgresStore::connect_replica`].
    pub fn connect(primary_url: &str, replica_url: &str) -> Result<ReplicatedStore> {
        let primary = PostgresStore::connect(primary_url)?;
        let replica = PostgresStore::connect_replica(replica_url)?;
        let s = ReplicatedStore::new(primary, replica);
        // Start from the primary's position now: nothing older is waited for.
        if let Ok(p) = s.primary.wal_position() {
            s.written.store(p, Ordering::Relaxed);
        }
        Ok(s)
    }

    pub fn stats(&self) -> Arc<ReplicaStats> {
        self.stats.clone()
    }

    fn replica_away(&self) -> bool {
        let mut g = self.away_until.lock().unwrap_or_else(|p| p.into_inner());
        match *g {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *g = None;
                false
            }
            None => false,
        }
    }

    fn mark_away(&self, why: &str) {
        let mut g = self.away_until.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            tracing_like_warn(why);
        }
        *g = Some(Instant::now() + RETRY_AFTER);
    }

    /// Whether the replica has replayed this server's latest write (asking
    /// it only when the last answer was behind).
    fn caught_up(&self) -> Result<bool> {
        let want = self.written.load(Ordering::Acquire);
        if self.replayed.load(Ordering::Acquire) >= want {
            return Ok(true);
        }
        let now = self.replica.wal_position()?;
        self.replayed.fetch_max(now, Ordering::AcqRel);
        Ok(now >= want)
    }

    /// Runs a read on the replica when it is there and caught up, else on
    /// the primary.
    fn routed<T>(&self, f: impl Fn(&dyn Store) -> Result<T>) -> Result<T> {
        if self.replica_away() {
            self.stats
                .primary_unavailable
                .fetch_add(1, Ordering::Relaxed);
            return f(&*self.primary);
        }
        match self.caught_up() {
            Ok(true) => match f(&self.replica) {
                Ok(v) => {
                    self.stats.replica.fetch_add(1, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) => self.mark_away(&e.to_string()),
            },
            Ok(false) => {
                self.stats.primary_lagging.fetch_add(1, Ordering::Relaxed);
                return f(&*self.primary);
            }
            Err(e) => self.mark_away(&e.to_string()),
        }
        self.stats
            .primary_unavailable
            .fetch_add(1, Ordering::Relaxed);
        f(&*self.primary)
    }
}

/// The crate logs nothing else; a replica going away is said once on
/// standard error (the server's log).
fn tracing_like_warn(why: &str) {
    eprintln!(
        "WARN wardline_store_postgres::replica: the read replica failed ({why}); searches go to \
         the primary for the next {} s",
        RETRY_AFTER.as_secs()
    );
}

impl Reader for ReplicatedStore {
    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        self.primary.read(resource_type, id)
    }
    fn read_many(&self, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
        self.primary.read_many(keys)
    }
    fn search(&self, query: &SearchQuery, page: &PageRequest) -> Result<SearchPage> {
        self.routed(|s| s.search(query, page))
    }
    fn include(&self, req: &IncludeRequest) -> Result<Vec<StoredResource>> {
        self.routed(|s| s.include(req))
    }
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
        self.primary.vread(resource_type, id, version)
    }
}

/// A primary transaction that notes the primary's WAL position once it
/// has committed.
struct NotingTx<'a> {
    inner: Box<dyn StoreTx + 'a>,
    store: &'a ReplicatedStore,
}

impl Reader for NotingTx<'_> {
    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        self.inner.read(resource_type, id)
    }
    fn read_many(&self, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
        self.inner.read_many(keys)
    }
    fn search(&self, query: &SearchQuery, page: &PageRequest) -> Result<SearchPage> {
        self.inner.search(query, page)
    }
    fn include(&self, req: &IncludeRequest) -> Result<Vec<StoredResource>> {
        self.inner.include(req)
    }
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
        self.inner.vread(resource_type, id, version)
    }
}

impl StoreTx for NotingTx<'_> {
    fn write(&mut self, w: ResourceWrite) -> Result<()> {
        self.inner.write(w)
    }
    fn announce_change(&mut self) -> Result<()> {
        self.inner.announce_change()
    }
    fn reindex(&mut self, items: &[Reindex]) -> Result<usize> {
        self.inner.reindex(items)
    }
    fn append_audit(&mut self, rows: &[AuditAppend]) -> Result<()> {
        self.inner.append_audit(rows)
    }
    fn kv_put(&mut self, namespace: &str, key: &str, value: &str) -> Result<()> {
        self.inner.kv_put(namespace, key, value)
    }
    fn kv_get(&mut self, namespace: &str, key: &str) -> Result<Option<String>> {
        self.inner.kv_get(namespace, key)
    }
    fn lock(&mut self, keys: &[&str]) -> Result<()> {
        self.inner.lock(keys)
    }
    fn commit(self: Box<Self>) -> Result<()> {
        let NotingTx { inner, store } = *self;
        inner.commit()?;
        // Every transaction committed before this call is at or before the
        // position it returns. If the primary cannot say (it went away just
        // after the commit), searches stay on the primary for a while.
        match store.primary.wal_position() {
            Ok(at) => {
                store.written.fetch_max(at, Ordering::AcqRel);
            }
            Err(e) => store.mark_away(&format!("cannot read the primary's WAL position: {e}")),
        }
        Ok(())
    }
}

impl Store for ReplicatedStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }
    /// Changes are announced and heard on the primary, where they commit.
    fn watch_changes(&self, on_change: Box<dyn Fn() + Send + Sync>) -> Result<bool> {
        self.primary.watch_changes(on_change)
    }
    fn history(&self, req: &HistoryRequest) -> Result<Vec<StoredResource>> {
        self.primary.history(req)
    }
    fn explain(&self, query: &SearchQuery, page: &PageRequest) -> Result<Vec<String>> {
        self.primary.explain(query, page)
    }
    fn begin(&self) -> Result<Box<dyn StoreTx + '_>> {
        Ok(Box::new(NotingTx {
            inner: self.primary.begin()?,
            store: self,
        }))
    }
    fn append_audit(&self, rows: &[AuditAppend]) -> Result<Vec<i64>> {
        self.primary.append_audit(rows)
    }
    fn scan_audit(&self, after_seq: i64, limit: usize) -> Result<Vec<AuditRow>> {
        self.primary.scan_audit(after_seq, limit)
    }
    fn scan_audit_patients(&self, after_seq: i64, upto_seq: i64) -> Result<Vec<(i64, String)>> {
        self.primary.scan_audit_patients(after_seq, upto_seq)
    }
    fn search_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        self.primary.search_audit(q)
    }
    fn audit_head(&self) -> Result<AuditAnchor> {
        self.primary.audit_head()
    }
    fn audit_anchor(&self) -> Result<Option<AuditAnchor>> {
        self.primary.audit_anchor()
    }
    fn purge_audit(&self, before_ms: i64) -> Result<u64> {
        self.primary.purge_audit(before_ms)
    }
    fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<String>> {
        self.primary.kv_get(namespace, key)
    }
    fn kv_list(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, String)>> {
        self.primary.kv_list(namespace, prefix)
    }
    fn kv_put(&self, namespace: &str, key: &str, value: &str) -> Result<()> {
        self.primary.kv_put(namespace, key, value)
    }
    fn kv_delete(&self, namespace: &str, key: &str) -> Result<bool> {
        self.primary.kv_delete(namespace, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_name_who_served_each_search() {
        let s = ReplicaStats::default();
        s.replica.fetch_add(3, Ordering::Relaxed);
        s.primary_lagging.fetch_add(2, Ordering::Relaxed);
        s.primary_unavailable.fetch_add(1, Ordering::Relaxed);
        let text = s.render();
        assert!(text.contains("wardline_replica_searches_total{served_by=\"replica\"} 3\n"));
        assert!(text.contains(
            "wardline_replica_searches_total{served_by=\"primary\",reason=\"replica_behind\"} 2\n"
        ));
        assert!(text.contains(
            "wardline_replica_searches_total{served_by=\"primary\",reason=\"replica_unavailable\"} 1\n"
        ));
    }
}
