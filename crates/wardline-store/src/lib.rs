//! The storage interface of Wardline.
//!
//! Everything above this crate sees storage only through [`Store`] and
//! [`StoreTx`]. The FHIR logic (versions, meta, conditional interactions,
//! bundles, validation, index extraction) lives in `wardline-core`; a backend only
//! persists what it is given, enforces optimistic version checks, and answers
//! searches compiled from a [`SearchQuery`].
//!
//! Invariants every backend keeps (checked by [`conformance`]):
//! * A write is visible, and `Ok` is returned from [`StoreTx::commit`], only after it
//!   is durably committed.
//! * History is append-only: every version ever written can be read back by
//!   [`Store::vread`].
//! * Index rows are replaced in the same transaction as the resource they index.
//! * Every row of a patient-compartment resource carries its `patient_key`, so the
//!   tables can be distributed by patient.
//!
//! The traits are synchronous: SQLite is synchronous anyway, and the HTTP layer
//! runs store calls on tokio's blocking pool.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use wardline_fhir::{FhirError, IndexEntry, SearchQuery};

/// How a version came to be (for `_history` entries' `request.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    Create,
    Update,
    Delete,
}

impl WriteMethod {
    pub fn as_i64(self) -> i64 {
        match self {
            WriteMethod::Create => 0,
            WriteMethod::Update => 1,
            WriteMethod::Delete => 2,
        }
    }
    pub fn from_i64(v: i64) -> WriteMethod {
        match v {
            0 => WriteMethod::Create,
            2 => WriteMethod::Delete,
            _ => WriteMethod::Update,
        }
    }
    pub fn http_method(self) -> &'static str {
        match self {
            WriteMethod::Create => "POST",
            WriteMethod::Update => "PUT",
            WriteMethod::Delete => "DELETE",
        }
    }
}

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    /// The store's immutable surrogate key for this resource (same for all its versions).
    pub rid: i64,
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated_ms: i64,
    /// Global write sequence number of this version (orders system history).
    pub seq: i64,
    pub method: WriteMethod,
    pub deleted: bool,
    /// The Patient whose compartment this version is in (see [`ResourceWrite::patient_key`]).
    pub patient_key: Option<String>,
    /// The resource JSON exactly as written (with `meta.versionId` and
    /// `meta.lastUpdated` already set by the core); empty for a deletion.
    pub json: String,
}

/// A new version to write. The core computes everything; the store persists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceWrite {
    pub resource_type: String,
    pub id: String,
    /// The current version the writer based this on; `None` means the resource
    /// must not exist yet (no row at all). A mismatch fails with
    /// [`StoreError::VersionConflict`] and nothing is written.
    pub expected_version: Option<i64>,
    /// The new version number (`expected_version + 1`, or 1).
    pub version: i64,
    pub last_updated_ms: i64,
    pub method: WriteMethod,
    /// The full resource JSON; empty when `method` is `Delete`.
    pub json: String,
    /// The id of the Patient whose compartment this resource is in (its own id for
    /// a Patient), or `None`. Used for compartment search and for sharding.
    pub patient_key: Option<String>,
    /// Search index entries; empty for a deletion.
    pub index: Vec<IndexEntry>,
}

/// The index of a current version, rebuilt by the core (see
/// [`StoreTx::reindex`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Reindex {
    pub resource_type: String,
    pub id: String,
    /// The version `index` was computed from.
    pub version: i64,
    pub index: Vec<IndexEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("version conflict on {resource_type}/{id}: expected {expected:?}, found {found:?}")]
    VersionConflict {
        resource_type: String,
        id: String,
        expected: Option<i64>,
        found: Option<i64>,
    },
    /// Two transactions waited for each other's locks (PostgreSQL chose
    /// this one to fail) or a lock could not be had: nothing was written,
    /// and the whole transaction may be tried again.
    #[error("lock conflict: {0}")]
    LockConflict(String),
    #[error("database error: {0}")]
    Backend(String),
    /// The database could not be reached (stopped, restarting, the
    /// connection lost) before anything was committed: nothing was written,
    /// and the request may be sent again later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The connection was lost while the commit was under way: the
    /// transaction may or may not have been committed. Said as unknown,
    /// never as "not stored".
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
}

impl From<StoreError> for FhirError {
    fn from(e: StoreError) -> FhirError {
        match e {
            StoreError::VersionConflict { .. } | StoreError::LockConflict(_) => {
                FhirError::conflict(e.to_string())
            }
            StoreError::Backend(msg) => FhirError::internal(msg),
            StoreError::Unavailable(msg) => FhirError::unavailable(format!(
                "The database is unavailable: nothing was stored; send the request again later. ({msg})"
            )),
            StoreError::OutcomeUnknown(msg) => FhirError::outcome_unknown(format!(
                "The connection to the database was lost while the change was being committed: \
                 it may or may not have been stored. Read before sending it again, or send a \
                 create again with If-None-Exist. ({msg})"
            )),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Paging position within a search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageRequest {
    /// Page size.
    pub count: usize,
    /// Rows to skip (used with an explicit `_sort`).
    pub offset: usize,
    /// Keyset cursor for the default order (by `rid`): return rows with `rid > after_rid`.
    pub after_rid: Option<i64>,
    /// Only resources with `rid <= snapshot_rid` (created before the first page was
    /// served), so that later pages are stable under concurrent creates.
    pub snapshot_rid: Option<i64>,
    /// Whether to count all matches.
    pub want_total: bool,
    /// Count only; return no rows.
    pub count_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    pub resources: Vec<StoredResource>,
    pub total: Option<u64>,
    /// More rows exist after this page.
    pub has_more: bool,
    /// The snapshot this paging session is pinned to (max rid when the first page ran).
    pub snapshot_rid: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HistoryScope {
    System,
    Type(String),
    Instance(String, String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRequest {
    pub scope: HistoryScope,
    /// `_since`: versions with `last_updated_ms >= since_ms`.
    pub since_ms: Option<i64>,
    /// `_at`-style upper bound: versions with `last_updated_ms < before_ms`.
    pub before_ms: Option<i64>,
    /// Keyset cursor: versions with `seq < before_seq` (newest first).
    pub before_seq: Option<i64>,
    pub count: usize,
}

/// One round of `_include` / `_revinclude` (see [`sql::include_sql`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncludeRequest {
    /// The resources to include from: (rid, type, id).
    pub matched: Vec<(i64, String, String)>,
    /// Resources these refer to.
    pub forward: Vec<wardline_fhir::search::Include>,
    /// Resources referring to these.
    pub reverse: Vec<wardline_fhir::search::Include>,
    /// At most this many are returned; one more is fetched to tell truncation.
    pub limit: usize,
}

/// Read and search operations, available on the store and inside a transaction.
pub trait Reader {
    /// The current version (which may be a deletion tombstone), or `None`.
    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>>;
    /// Current versions of many resources in one round trip; missing ones are
    /// left out. Order of the result is unspecified.
    fn read_many(&self, keys: &[(String, String)]) -> Result<Vec<StoredResource>>;
    /// Current, non-deleted resources matching `query`.
    fn search(&self, query: &SearchQuery, page: &PageRequest) -> Result<SearchPage>;
    /// One round of includes in one round trip: current, non-deleted resources
    /// in `rid` order, at most `req.limit + 1` of them.
    fn include(&self, req: &IncludeRequest) -> Result<Vec<StoredResource>>;
    /// One version of a resource (current or historic), or `None`. Inside a
    /// transaction it reads through the transaction's own connection (an
    /// embedded store with one connection would otherwise wait on itself).
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>>;
}

/// A storage backend.
pub trait Store: Reader + Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Versions newest first.
    fn history(&self, req: &HistoryRequest) -> Result<Vec<StoredResource>>;
    /// The database's plan for the page query of `query` (`EXPLAIN QUERY PLAN`
    /// on SQLite, `EXPLAIN` on PostgreSQL), one line per row; for operators.
    fn explain(&self, query: &SearchQuery, page: &PageRequest) -> Result<Vec<String>>;
    /// Starts a read-write transaction. Dropping it without [`StoreTx::commit`]
    /// rolls back.
    fn begin(&self) -> Result<Box<dyn StoreTx + '_>>;

    // ---- the audit trail (see [`audit`]) ----------------------------------

    /// Appends rows to the audit chain in a transaction of their own and
    /// returns their `seq`s (contiguous) once durably committed. Empty input
    /// does nothing.
    fn append_audit(&self, rows: &[audit::AuditAppend]) -> Result<Vec<i64>>;
    /// Rows with `seq > after_seq` in ascending order, at most `limit`.
    fn scan_audit(&self, after_seq: i64, limit: usize) -> Result<Vec<audit::AuditRow>>;
    /// The patient-index entries (`audit_patient`) with `after_seq < seq <=
    /// upto_seq`, as (`seq`, patient), in `seq` order: for
    /// [`audit::verify`], which checks them against their rows.
    fn scan_audit_patients(&self, after_seq: i64, upto_seq: i64) -> Result<Vec<(i64, String)>>;
    /// Rows matching `q`, newest first, at most `q.count`.
    fn search_audit(&self, q: &audit::AuditQuery) -> Result<Vec<audit::AuditRow>>;
    /// The chain head: the newest `seq` and its hash (`0` and [`audit::GENESIS`]
    /// for an empty chain).
    fn audit_head(&self) -> Result<audit::AuditAnchor>;
    /// The anchor left by the last purge, if any.
    fn audit_anchor(&self) -> Result<Option<audit::AuditAnchor>>;
    /// Deletes the oldest rows, those recorded before `before_ms`, in one
    /// transaction, and moves the anchor to the last deleted one; returns how
    /// many went. Only a run from the start of the chain goes (a row recorded
    /// before `before_ms` but after a younger row stays, so that no gap
    /// opens), and never the newest row (the head).
    fn purge_audit(&self, before_ms: i64) -> Result<u64>;

    // ---- system key-value data (not FHIR: credentials, keys, sessions) ----

    fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<String>>;
    /// Entries of a namespace whose key starts with `prefix` (plain text: no
    /// wildcards), in key order (by code point).
    fn kv_list(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, String)>>;
    /// Inserts or replaces, durably, in a transaction of its own.
    fn kv_put(&self, namespace: &str, key: &str, value: &str) -> Result<()>;
    /// Returns whether the entry existed.
    fn kv_delete(&self, namespace: &str, key: &str) -> Result<bool>;

    /// Issue 22 (live pages across servers): calls `on_change` for every
    /// commit announced by [`StoreTx::announce_change`] on this database,
    /// by any process, from a thread of the store's own; returns whether the
    /// backend can (a single-process store: `false`). No default: a store
    /// that wraps another must pass it on, or its servers stop hearing each
    /// other.
    fn watch_changes(&self, on_change: Box<dyn Fn() + Send + Sync>) -> Result<bool>;
}

/// A read-write transaction. Reads see the transaction's own writes.
pub trait StoreTx: Reader {
    fn write(&mut self, w: ResourceWrite) -> Result<()>;
    /// Replaces every index row of each resource's current version with
    /// the entries given, writing no new version (no history, no `seq`, no
    /// `lastUpdated`): how the core rebuilds the index when the way values
    /// are indexed changes. A resource whose current version is not the
    /// one given (written since it was read), or is deleted or missing, is
    /// left as it is. Returns how many were reindexed.
    fn reindex(&mut self, items: &[Reindex]) -> Result<usize>;
    /// Appends rows to the audit chain in this transaction: they commit or
    /// roll back with it. The chain head is locked from when the rows are
    /// chained (at the latest, at commit) until commit or rollback, so the
    /// chain is in commit order. Empty input does nothing.
    fn append_audit(&mut self, rows: &[audit::AuditAppend]) -> Result<()>;
    /// [`Store::kv_put`] inside this transaction.
    fn kv_put(&mut self, namespace: &str, key: &str, value: &str) -> Result<()>;
    /// [`Store::kv_get`] inside this transaction: it sees the transaction's
    /// own [`StoreTx::kv_put`]s, and what others committed before (so a value
    /// read under a [`StoreTx::lock`] that every writer of it takes is
    /// current: a counter).
    fn kv_get(&mut self, namespace: &str, key: &str) -> Result<Option<String>>;
    /// Takes an exclusive lock on each key (the name of a record a rule is
    /// about: `Location/b1`, an identifier), held in the database until this
    /// transaction commits or rolls back, so a second transaction locking
    /// the same key — from this process or another server on the same
    /// database — waits for it and then reads what it committed. Nothing is
    /// written and nothing is left behind. Keys are locked in the order
    /// given; a caller locks all it needs at once, sorted, where it can. On
    /// a deadlock one transaction fails with [`StoreError::LockConflict`].
    fn lock(&mut self, keys: &[&str]) -> Result<()>;
    /// Issue 22: tells [`Store::watch_changes`] watchers, if the commit
    /// happens, that this transaction changed resources (PostgreSQL:
    /// `NOTIFY`, delivered at commit and never on rollback; a single-process
    /// store: nothing). No default, as for [`Store::watch_changes`].
    fn announce_change(&mut self) -> Result<()>;
    /// Durably commits.
    fn commit(self: Box<Self>) -> Result<()>;
}

pub mod audit;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod group_commit;
pub mod sql;

#[cfg(test)]
mod outage_tests {
    use super::*;

    #[test]
    fn outages_are_503_and_an_unknown_outcome_says_so() {
        let e = FhirError::from(StoreError::Unavailable("refused".into()));
        assert_eq!((e.status, e.issues[0].code), (503, "no-store"));
        assert!(e.issues[0].diagnostics.contains("nothing was stored"));
        assert!(!e.is_outcome_unknown());
        let e = FhirError::from(StoreError::OutcomeUnknown("closed".into()));
        assert_eq!((e.status, e.issues[0].code), (503, "transient"));
        assert!(e.is_outcome_unknown());
        assert!(
            e.issues[0]
                .diagnostics
                .contains("may or may not have been stored")
        );
        let e = FhirError::from(StoreError::Backend("syntax".into()));
        assert_eq!(e.status, 500);
    }
}
