//! SQLite backend of the Wardline store: the embedded default.
//!
//! Schema and search SQL come from [`wardline_store::sql`] (shared with
//! PostgreSQL). The database runs in WAL mode with `synchronous=FULL`, so a
//! commit that returned is on disk.
//!
//! Connections: SQLite allows one writer at a time, so there is one writer
//! connection behind a mutex ([`Store::begin`] takes it and issues
//! `BEGIN IMMEDIATE`) and a small pool of reader connections, which WAL lets run
//! alongside the writer. The pool is a few lines here because it only has to
//! hand out idle connections; a general pool crate adds nothing for that.
//!
//! Encryption at rest (issue 22): SQLite is built with SQLCipher (rusqlite's
//! `bundled-sqlcipher`), so [`SqliteStore::open_with_key`] opens a database
//! encrypted page by page (AES-256, an HMAC per page; the WAL too) under a
//! raw 256-bit key set on every connection before anything else. Without a
//! key a database is plaintext, as before.
//!
//! Group commit (issue 21, on by default for a database file): concurrent
//! transactions share one durable commit. A transaction joins the database
//! transaction that is open on the writer (opening one with `BEGIN
//! IMMEDIATE` if none is: the first member needs no savepoint) as a
//! `SAVEPOINT`; its commit `RELEASE`s the
//! savepoint, registers in the open group (epoch) and lets go of the
//! writer; one of the waiting members (the leader) issues the `COMMIT` once
//! no further transaction is running or queued (or the group is full), and
//! wakes the group with the outcome. A rollback undoes its savepoint only.
//! A failed `COMMIT`, or the database rolling the whole transaction back
//! after an error, fails every member of the group (each is told). A
//! transaction that rolls back while earlier members of its group wait
//! returns only once their commit is finished: what it read of theirs is
//! never answered before it is durable.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params_from_iter, types::Value as SqlParam};
use wardline_fhir::index::normalise_string;
use wardline_fhir::{IndexValue, SearchQuery};
use wardline_store::audit::{self, AuditAnchor, AuditAppend, AuditQuery, AuditRow};
use wardline_store::group_commit::{self, GroupCommit};
use wardline_store::sql::{self, Dialect, SqlValue};
use wardline_store::{
    HistoryRequest, IncludeRequest, PageRequest, Reader, Reindex, ResourceWrite, Result,
    SearchPage, Store, StoreError, StoreTx, StoredResource, WriteMethod,
};

const READERS: usize = 4;

fn be(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub struct SqliteStore {
    writer: Mutex<Writer>,
    group: Group,
    readers: Mutex<Vec<Connection>>,
    available: Condvar,
    path: Option<PathBuf>,
}

/// The writer connection and the group transaction open on it.
struct Writer {
    conn: Connection,
    /// The number of the open group (or of the last one).
    epoch: u64,
    /// A group's database transaction is open (`BEGIN IMMEDIATE` issued,
    /// not yet committed or rolled back).
    open: bool,
}

impl Writer {
    fn new(conn: Connection) -> Writer {
        Writer {
            conn,
            epoch: 0,
            open: false,
        }
    }
}

/// What the members of the groups share (see the crate documentation).
struct Group {
    cfg: GroupCommit,
    coord: Mutex<Coord>,
    changed: Condvar,
    /// Tests: the next group's COMMIT fails.
    #[cfg(test)]
    fail_next: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Coord {
    /// Transactions begun (running, or waiting for the writer) and not yet
    /// committed or rolled back.
    active: usize,
    /// Members whose savepoints were released into the open group.
    pending: usize,
    /// A leader is committing the open group.
    committing: bool,
    /// Every group up to this number is finished (committed or failed).
    done: u64,
    /// Failed groups: the error, and how many members are still to be told.
    failed: HashMap<u64, (String, usize)>,
    stats: GroupStats,
}

/// Counts of this store's durable group commits (tests, `/metrics` has the
/// process-wide histogram in [`group_commit::METRICS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Durable commits of groups (with at least one member).
    pub groups: u64,
    /// Transactions committed in them.
    pub members: u64,
    /// The most members one commit held.
    pub largest: u64,
    /// Groups whose commit failed.
    pub failed: u64,
}

impl Group {
    fn new(cfg: GroupCommit) -> Group {
        Group {
            cfg,
            coord: Mutex::new(Coord::default()),
            changed: Condvar::new(),
            #[cfg(test)]
            fail_next: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn configure(c: &Connection) -> Result<()> {
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 10000;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -65536;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(be)?;
    c.set_prepared_statement_cache_capacity(256);
    Ok(())
}

/// The first 16 bytes of a plaintext SQLite database file. An encrypted
/// (SQLCipher) file starts with a random salt instead.
pub const PLAINTEXT_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Keys a connection of an encrypted database (issue 22: SQLCipher): the
/// raw 256-bit key, no passphrase derivation. It must be the first
/// statement on the connection; nothing is read until the first query, so
/// a wrong key shows there ([`check_key`]).
pub fn apply_key(c: &Connection, key: &[u8; 32]) -> rusqlite::Result<()> {
    let mut hex = String::with_capacity(64);
    for b in key {
        hex.push_str(&format!("{b:02x}"));
    }
    c.execute_batch(&format!("PRAGMA key = \"x'{hex}'\";"))
}

/// Reads the schema, the first read of a connection: with a wrong key,
/// without the key of an encrypted file, or with a key for a plaintext
/// file, SQLite answers "file is not a database" here.
pub fn check_key(c: &Connection) -> rusqlite::Result<()> {
    c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|_| ())
}

fn open_connection(path: &Path, key: Option<&[u8; 32]>) -> Result<Connection> {
    let c = Connection::open(path).map_err(be)?;
    if let Some(k) = key {
        apply_key(&c, k).map_err(be)?;
    }
    check_key(&c).map_err(|e| {
        // Closed now, the connection would checkpoint a WAL left by a
        // server that was killed: harmless (the frames are copied as they
        // are) but a write through a key that does not open the file.
        let _ = c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        );
        StoreError::Backend(match key {
            Some(_) => format!(
                "{e}: the key does not open {} (a wrong key, or a database that is not encrypted)",
                path.display()
            ),
            None => format!(
                "{e}: {} is encrypted or not a SQLite database",
                path.display()
            ),
        })
    })?;
    configure(&c)?;
    Ok(c)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations;
    /// group commit on.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with(path, None, GroupCommit::default())
    }

    /// [`SqliteStore::open`] of an encrypted database (SQLCipher) with its
    /// raw key, or of a plaintext one with `None`. A new file is created
    /// encrypted with the key. Every connection, the writer's and each
    /// reader's, is keyed before anything else runs on it.
    pub fn open_with_key(path: &Path, key: Option<&[u8; 32]>) -> Result<SqliteStore> {
        SqliteStore::open_with(path, key, GroupCommit::default())
    }

    /// [`SqliteStore::open_with_key`] with group commit as given.
    pub fn open_with(
        path: &Path,
        key: Option<&[u8; 32]>,
        group: GroupCommit,
    ) -> Result<SqliteStore> {
        let writer = open_connection(path, key)?;
        migrate(&writer)?;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(open_connection(path, key)?);
        }
        Ok(SqliteStore {
            writer: Mutex::new(Writer::new(writer)),
            group: Group::new(group),
            readers: Mutex::new(readers),
            available: Condvar::new(),
            path: Some(path.to_owned()),
        })
    }

    /// A private in-memory database (one connection serves reads and
    /// writes, so no group commit: a reader would see a group's work
    /// before its commit, and there is no fsync to share).
    pub fn open_in_memory() -> Result<SqliteStore> {
        let writer = Connection::open_in_memory().map_err(be)?;
        migrate(&writer)?;
        Ok(SqliteStore {
            writer: Mutex::new(Writer::new(writer)),
            group: Group::new(GroupCommit::off()),
            readers: Mutex::new(Vec::new()),
            available: Condvar::new(),
            path: None,
        })
    }

    /// Runs `f` on a reader connection (the writer for in-memory stores).
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.path.is_none() {
            let w = lock(&self.writer);
            return f(&w.conn);
        }
        let conn = {
            let mut pool = lock(&self.readers);
            loop {
                if let Some(c) = pool.pop() {
                    break c;
                }
                pool = self.available.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
        };
        let out = f(&conn);
        lock(&self.readers).push(conn);
        self.available.notify_one();
        out
    }

    /// Runs `f` in a write transaction of its own on the writer (a member
    /// of a group with group commit on), committing if it returns `Ok` and
    /// rolling back otherwise.
    fn with_writer<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.grouped() {
            let tx = self.begin_member()?;
            let v = f(tx.conn())?;
            Box::new(tx).commit()?;
            return Ok(v);
        }
        let w = lock(&self.writer);
        let conn = &w.conn;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(be)?;
        match f(conn) {
            Ok(v) => match conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _rollback_result = conn.execute_batch("ROLLBACK");
                    Err(be(e))
                }
            },
            Err(e) => {
                let _rollback_result = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

// ---- group commit ---------------------------------------------------------

impl SqliteStore {
    /// Whether transactions share durable commits.
    fn grouped(&self) -> bool {
        self.group.cfg.enabled
    }

    /// This store's group commit counts.
    pub fn group_stats(&self) -> GroupStats {
        lock(&self.group.coord).stats
    }

    /// Begins a member of the open group (opening one if none is).
    fn begin_member(&self) -> Result<SqliteTx<'_>> {
        lock(&self.group.coord).active += 1;
        let mut w = lock(&self.writer);
        // A group the database ended behind its members' backs is failed
        // (they are told); this transaction starts the next one.
        let _failed = self.check_open(&mut w);
        // The first member of a group needs no savepoint: the group holds
        // nothing else while it runs, so its rollback is the transaction's
        // (a savepoint costs a copy of every page it changes: a large
        // Bundle alone would pay it for nothing).
        let first = !w.open;
        let joined = if first {
            w.conn.execute_batch("BEGIN IMMEDIATE").map(|()| {
                w.epoch += 1;
                w.open = true;
            })
        } else {
            w.conn.execute_batch("SAVEPOINT member")
        }
        .map_err(be);
        match joined {
            Ok(()) => Ok(SqliteTx {
                store: self,
                w: Some(w),
                grouped: true,
                savepoint: !first,
                done: false,
            }),
            Err(e) => {
                // Nothing of this member was written; the group it would
                // have joined goes on.
                self.leave(&mut w, false);
                Err(e)
            }
        }
    }

    /// Fails the open group when the database has rolled its transaction
    /// back on its own (an I/O error, a full disk): every member is told.
    fn check_open(&self, w: &mut Writer) -> Result<()> {
        if w.open && w.conn.is_autocommit() {
            let msg = "the database rolled back the group's transaction after an error: \
                       nothing of it was stored"
                .to_owned();
            self.finish(w, Err(msg.clone()));
            return Err(StoreError::Unavailable(msg));
        }
        Ok(())
    }

    /// Ends the open group (under the writer): records the outcome for its
    /// members and wakes them.
    fn finish(&self, w: &mut Writer, outcome: std::result::Result<(), String>) {
        w.open = false;
        let mut c = lock(&self.group.coord);
        let members = std::mem::take(&mut c.pending);
        c.done = w.epoch;
        if members > 0 {
            let failed = outcome.is_err();
            c.stats.groups += 1;
            c.stats.members += members as u64;
            c.stats.largest = c.stats.largest.max(members as u64);
            if failed {
                c.stats.failed += 1;
            }
            group_commit::METRICS.record(members, failed);
            if let Err(msg) = outcome {
                c.failed.insert(w.epoch, (msg, members));
            }
        }
        drop(c);
        self.group.changed.notify_all();
    }

    /// A member has ended without registering (rolled back, or failed to
    /// begin); returns the group it must wait for before it answers
    /// (earlier members' work it may have read), if any.
    fn leave(&self, w: &mut Writer, rolled_back: bool) -> Option<u64> {
        let mut c = lock(&self.group.coord);
        c.active -= 1;
        let mut wait = None;
        if w.open && c.pending == 0 {
            // Nothing committed in this group yet: end the empty database
            // transaction rather than hold the write lock with nothing in it.
            drop(c);
            let _rollback_result = w.conn.execute_batch("ROLLBACK");
            self.finish(w, Ok(()));
            return None;
        }
        if rolled_back && w.open {
            wait = Some(w.epoch);
        }
        drop(c);
        self.group.changed.notify_all();
        wait
    }

    /// Waits until group `epoch` is finished; with `told`, as one of its
    /// members, returns its outcome. A waiter becomes the leader and
    /// commits the group when nothing else is running or queued, or the
    /// group is full.
    fn wait_for(&self, epoch: u64, told: bool) -> Result<()> {
        let g = &self.group;
        let mut c = lock(&g.coord);
        loop {
            if c.done >= epoch {
                let Some((msg, left)) = c.failed.get_mut(&epoch) else {
                    return Ok(());
                };
                if !told {
                    return Ok(());
                }
                let err = StoreError::Unavailable(msg.clone());
                *left -= 1;
                if *left == 0 {
                    c.failed.remove(&epoch);
                }
                return Err(err);
            }
            if !c.committing && (c.active == 0 || c.pending >= g.cfg.max_members) {
                c.committing = true;
                drop(c);
                self.lead(epoch);
                c = lock(&g.coord);
                c.committing = false;
                g.changed.notify_all();
                continue;
            }
            c = g.changed.wait(c).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The leader: commits group `epoch` if it is still open.
    fn lead(&self, epoch: u64) {
        let mut w = lock(&self.writer);
        if !(w.open && w.epoch == epoch) || self.check_open(&mut w).is_err() {
            return;
        }
        #[cfg(test)]
        let committed = if self
            .group
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            Err("a failure injected by a test".to_owned())
        } else {
            w.conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        };
        #[cfg(not(test))]
        let committed = w.conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        match committed {
            Ok(()) => {
                if let Some(n) = self.group.cfg.crash_after_group_of
                    && lock(&self.group.coord).pending >= n
                {
                    // Tests only: a crash between the group's durable
                    // commit and telling its members.
                    std::process::abort();
                }
                self.finish(&mut w, Ok(()));
            }
            Err(e) => {
                if !w.conn.is_autocommit() {
                    let _rollback_result = w.conn.execute_batch("ROLLBACK");
                }
                self.finish(
                    &mut w,
                    Err(format!(
                        "the group commit failed, nothing of this group was stored: {e}"
                    )),
                );
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn migrate(c: &Connection) -> Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .map_err(be)?;
    for (name, ddl) in sql::migrations(Dialect::Sqlite) {
        let done: Option<String> = c
            .query_row(
                "SELECT name FROM schema_migrations WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(be)?;
        if done.is_none() {
            let tx = c.unchecked_transaction().map_err(be)?;
            tx.execute_batch(&ddl).map_err(be)?;
            tx.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2)",
                rusqlite::params![name, wardline_fhir::datetime::now_ms()],
            )
            .map_err(be)?;
            tx.commit().map_err(be)?;
        }
    }
    Ok(())
}

fn to_params(v: &[SqlValue]) -> Vec<SqlParam> {
    v.iter()
        .map(|v| match v {
            SqlValue::Int(i) => SqlParam::Integer(*i),
            SqlValue::Real(f) => SqlParam::Real(*f),
            SqlValue::Text(s) => SqlParam::Text(s.clone()),
            SqlValue::Null => SqlParam::Null,
        })
        .collect()
}

fn row_to_resource(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredResource> {
    Ok(StoredResource {
        rid: r.get(0)?,
        resource_type: r.get(1)?,
        id: r.get(2)?,
        version: r.get(3)?,
        last_updated_ms: r.get(4)?,
        seq: r.get(5)?,
        method: WriteMethod::from_i64(r.get(6)?),
        deleted: r.get::<_, i64>(7)? != 0,
        json: r.get(8)?,
        patient_key: r.get(9)?,
    })
}

fn read_current(c: &Connection, rtype: &str, id: &str) -> Result<Option<StoredResource>> {
    let mut st = c
        .prepare_cached(&format!(
            "SELECT {} FROM resources WHERE res_type = ?1 AND res_id = ?2",
            sql::RESOURCE_COLUMNS
        ))
        .map_err(be)?;
    st.query_row([rtype, id], row_to_resource)
        .optional()
        .map_err(be)
}

fn read_many(c: &Connection, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
    let mut out = Vec::with_capacity(keys.len());
    for (t, id) in keys {
        if let Some(r) = read_current(c, t, id)? {
            out.push(r);
        }
    }
    Ok(out)
}

fn search(c: &Connection, q: &SearchQuery, page: &PageRequest) -> Result<SearchPage> {
    let snapshot = match page.snapshot_rid {
        Some(s) => s,
        None => c
            .query_row("SELECT COALESCE(MAX(rid), 0) FROM resources", [], |r| {
                r.get(0)
            })
            .map_err(be)?,
    };
    let page = PageRequest {
        snapshot_rid: Some(snapshot),
        ..page.clone()
    };
    let total = if page.want_total || page.count_only {
        let b = sql::count_sql(Dialect::Sqlite, q, &page);
        let n: i64 = c
            .prepare_cached(&b.sql)
            .map_err(be)?
            .query_row(params_from_iter(to_params(&b.params)), |r| r.get(0))
            .map_err(be)?;
        Some(n as u64)
    } else {
        None
    };
    if page.count_only {
        return Ok(SearchPage {
            resources: Vec::new(),
            total,
            has_more: false,
            snapshot_rid: snapshot,
        });
    }
    let b = sql::search_sql(Dialect::Sqlite, q, &page);
    let mut st = c.prepare_cached(&b.sql).map_err(be)?;
    let mut resources: Vec<StoredResource> = st
        .query_map(params_from_iter(to_params(&b.params)), row_to_resource)
        .map_err(be)?
        .collect::<rusqlite::Result<_>>()
        .map_err(be)?;
    let has_more = resources.len() > page.count;
    resources.truncate(page.count);
    Ok(SearchPage {
        resources,
        total,
        has_more,
        snapshot_rid: snapshot,
    })
}

fn include(c: &Connection, req: &IncludeRequest) -> Result<Vec<StoredResource>> {
    let Some(b) = sql::include_sql(Dialect::Sqlite, req) else {
        return Ok(Vec::new());
    };
    let mut st = c.prepare(&b.sql).map_err(be)?;
    st.query_map(params_from_iter(to_params(&b.params)), row_to_resource)
        .map_err(be)?
        .collect::<rusqlite::Result<_>>()
        .map_err(be)
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: r.get(0)?,
        recorded_ms: r.get(1)?,
        agent: r.get(2)?,
        action: r.get(3)?,
        subtype: r.get(4)?,
        outcome: r.get(5)?,
        patients: sql::split_patients(&r.get::<_, String>(6)?),
        json: r.get(7)?,
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    })
}

/// Chains and inserts `rows` in the current write transaction of `c` (the
/// writer, so the head cannot move under it).
fn append_audit(c: &Connection, rows: &[AuditAppend]) -> Result<Vec<i64>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let (head_seq, head_hash): (i64, String) = c
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")
        .map_err(be)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(be)?;
    let links = audit::chain_links(head_seq, &head_hash, rows);
    let mut log = c
        .prepare_cached(
            "INSERT INTO audit_log (seq, recorded, agent, action, subtype, outcome, patients, content, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(be)?;
    let mut patient = c
        .prepare_cached("INSERT INTO audit_patient (seq, patient) VALUES (?1, ?2)")
        .map_err(be)?;
    for (r, (seq, prev_hash, hash)) in rows.iter().zip(&links) {
        log.execute(rusqlite::params![
            seq,
            r.recorded_ms,
            r.agent,
            r.action,
            r.subtype,
            r.outcome,
            r.patients.join(" "),
            r.json,
            prev_hash,
            hash
        ])
        .map_err(|e| match e.sqlite_error_code() {
            // A row already holds this seq: inserted after the head behind
            // the store's back (see `audit::beyond_head_error`).
            Some(rusqlite::ErrorCode::ConstraintViolation) => audit::beyond_head_error(head_seq),
            _ => be(e),
        })?;
        for p in sql::audit_patients(&r.patients) {
            patient.execute(rusqlite::params![seq, p]).map_err(be)?;
        }
    }
    if let Some((seq, _, hash)) = links.last() {
        c.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")
            .map_err(be)?
            .execute(rusqlite::params![seq, hash])
            .map_err(be)?;
    }
    Ok(links.iter().map(|l| l.0).collect())
}

/// See [`Store::purge_audit`]; in the current write transaction of `c`.
fn purge_audit(c: &Connection, before_ms: i64) -> Result<u64> {
    let head: i64 = c
        .query_row("SELECT seq FROM audit_head WHERE id = 1", [], |r| r.get(0))
        .map_err(be)?;
    // The first row to keep: walk the chain from its start (`+recorded`
    // keeps SQLite on the rowid order instead of the `recorded` index).
    let first_kept: Option<i64> = c
        .query_row(
            "SELECT seq FROM audit_log WHERE +recorded >= ?1 ORDER BY seq LIMIT 1",
            [before_ms],
            |r| r.get(0),
        )
        .optional()
        .map_err(be)?;
    let cutoff = first_kept.map_or(i64::MAX, |s| s - 1).min(head - 1);
    let last: Option<(i64, String)> = c
        .query_row(
            "SELECT seq, hash FROM audit_log WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1",
            [cutoff],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(be)?;
    let Some((seq, hash)) = last else {
        return Ok(0);
    };
    let n = c
        .execute("DELETE FROM audit_log WHERE seq <= ?1", [seq])
        .map_err(be)?;
    c.execute("DELETE FROM audit_patient WHERE seq <= ?1", [seq])
        .map_err(be)?;
    c.execute(
        "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        rusqlite::params![seq, hash],
    )
    .map_err(be)?;
    Ok(n as u64)
}

fn kv_put(c: &Connection, namespace: &str, key: &str, value: &str) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO system_kv (namespace, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
    )
    .map_err(be)?
    .execute([namespace, key, value])
    .map_err(be)?;
    Ok(())
}

impl Reader for SqliteStore {
    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        self.with_reader(|c| read_current(c, resource_type, id))
    }
    fn read_many(&self, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
        self.with_reader(|c| read_many(c, keys))
    }
    fn search(&self, query: &SearchQuery, page: &PageRequest) -> Result<SearchPage> {
        self.with_reader(|c| search(c, query, page))
    }
    fn include(&self, req: &IncludeRequest) -> Result<Vec<StoredResource>> {
        self.with_reader(|c| include(c, req))
    }
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
        self.with_reader(|c| vread(c, resource_type, id, version))
    }
}

/// One version of a resource: the current row, or its row in the history.
fn vread(c: &Connection, rtype: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
    let Some(cur) = read_current(c, rtype, id)? else {
        return Ok(None);
    };
    if cur.version == version {
        return Ok(Some(cur));
    }
    let mut st = c
        .prepare_cached(&format!(
            "SELECT {} FROM resource_history WHERE rid = ?1 AND version = ?2",
            sql::RESOURCE_COLUMNS
        ))
        .map_err(be)?;
    st.query_row(rusqlite::params![cur.rid, version], row_to_resource)
        .optional()
        .map_err(be)
}

impl Store for SqliteStore {
    /// One process per SQLite database: its own commits are all there are.
    fn watch_changes(&self, _on_change: Box<dyn Fn() + Send + Sync>) -> Result<bool> {
        Ok(false)
    }
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn history(&self, req: &HistoryRequest) -> Result<Vec<StoredResource>> {
        self.with_reader(|c| {
            let b = sql::history_sql(Dialect::Sqlite, req);
            let mut st = c.prepare_cached(&b.sql).map_err(be)?;
            st.query_map(params_from_iter(to_params(&b.params)), row_to_resource)
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)
        })
    }

    fn explain(&self, query: &SearchQuery, page: &PageRequest) -> Result<Vec<String>> {
        let b = sql::search_sql(Dialect::Sqlite, query, page);
        self.with_reader(|c| {
            let mut st = c
                .prepare(&format!("EXPLAIN QUERY PLAN {}", b.sql))
                .map_err(be)?;
            st.query_map(params_from_iter(to_params(&b.params)), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(be)?
            .map(|r| {
                r.map(|(id, parent, detail)| format!("{id:>3} {parent:>3}  {detail}"))
                    .map_err(be)
            })
            .collect()
        })
    }

    fn begin(&self) -> Result<Box<dyn StoreTx + '_>> {
        if self.grouped() {
            return Ok(Box::new(self.begin_member()?));
        }
        let w = lock(&self.writer);
        w.conn.execute_batch("BEGIN IMMEDIATE").map_err(be)?;
        Ok(Box::new(SqliteTx {
            store: self,
            w: Some(w),
            grouped: false,
            savepoint: false,
            done: false,
        }))
    }

    fn append_audit(&self, rows: &[AuditAppend]) -> Result<Vec<i64>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.with_writer(|c| append_audit(c, rows))
    }

    fn scan_audit(&self, after_seq: i64, limit: usize) -> Result<Vec<AuditRow>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM audit_log a WHERE a.seq > ?1 ORDER BY a.seq LIMIT ?2",
                sql::AUDIT_COLUMNS
            ))
            .map_err(be)?
            .query_map(rusqlite::params![after_seq, limit as i64], audit_row)
            .map_err(be)?
            .collect::<rusqlite::Result<_>>()
            .map_err(be)
        })
    }

    fn scan_audit_patients(&self, after_seq: i64, upto_seq: i64) -> Result<Vec<(i64, String)>> {
        self.with_reader(|c| {
            c.prepare_cached(
                "SELECT seq, patient FROM audit_patient WHERE seq > ?1 AND seq <= ?2 ORDER BY seq, patient",
            )
            .map_err(be)?
            .query_map([after_seq, upto_seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(be)?
            .collect::<rusqlite::Result<_>>()
            .map_err(be)
        })
    }

    fn search_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        let b = sql::audit_search_sql(Dialect::Sqlite, q);
        self.with_reader(|c| {
            c.prepare_cached(&b.sql)
                .map_err(be)?
                .query_map(params_from_iter(to_params(&b.params)), audit_row)
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)
        })
    }

    fn audit_head(&self) -> Result<AuditAnchor> {
        self.with_reader(|c| {
            c.prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")
                .map_err(be)?
                .query_row([], |r| {
                    Ok(AuditAnchor {
                        seq: r.get(0)?,
                        hash: r.get(1)?,
                    })
                })
                .map_err(be)
        })
    }

    fn audit_anchor(&self) -> Result<Option<AuditAnchor>> {
        self.with_reader(|c| {
            c.prepare_cached("SELECT seq, hash FROM audit_anchor WHERE id = 1")
                .map_err(be)?
                .query_row([], |r| {
                    Ok(AuditAnchor {
                        seq: r.get(0)?,
                        hash: r.get(1)?,
                    })
                })
                .optional()
                .map_err(be)
        })
    }

    fn purge_audit(&self, before_ms: i64) -> Result<u64> {
        self.with_writer(|c| purge_audit(c, before_ms))
    }

    fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<String>> {
        self.with_reader(|c| {
            c.prepare_cached("SELECT value FROM system_kv WHERE namespace = ?1 AND key = ?2")
                .map_err(be)?
                .query_row([namespace, key], |r| r.get(0))
                .optional()
                .map_err(be)
        })
    }

    fn kv_list(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, String)>> {
        // A range on the primary key: `LIKE` would treat `%` and `_` as wildcards.
        let upper = sql::prefix_upper_bound(prefix);
        let sql = if upper.is_some() {
            "SELECT key, value FROM system_kv WHERE namespace = ?1 AND key >= ?2 AND key < ?3 ORDER BY key"
        } else {
            "SELECT key, value FROM system_kv WHERE namespace = ?1 AND key >= ?2 ORDER BY key"
        };
        let mut params: Vec<&str> = vec![namespace, prefix];
        params.extend(upper.as_deref());
        self.with_reader(|c| {
            c.prepare_cached(sql)
                .map_err(be)?
                .query_map(params_from_iter(params), |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)
        })
    }

    fn kv_put(&self, namespace: &str, key: &str, value: &str) -> Result<()> {
        if self.grouped() {
            return self.with_writer(|c| kv_put(c, namespace, key, value));
        }
        // One statement: its own (durable) transaction.
        let w = lock(&self.writer);
        kv_put(&w.conn, namespace, key, value)
    }

    fn kv_delete(&self, namespace: &str, key: &str) -> Result<bool> {
        if self.grouped() {
            return self.with_writer(|c| kv_delete(c, namespace, key));
        }
        let w = lock(&self.writer);
        kv_delete(&w.conn, namespace, key)
    }
}

fn kv_delete(conn: &Connection, namespace: &str, key: &str) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM system_kv WHERE namespace = ?1 AND key = ?2")
        .map_err(be)?
        .execute([namespace, key])
        .map_err(be)?;
    Ok(n > 0)
}

struct SqliteTx<'a> {
    store: &'a SqliteStore,
    /// The writer, held from begin to commit or rollback (`None` only while
    /// being dropped).
    w: Option<MutexGuard<'a, Writer>>,
    /// A member of a group rather than a transaction of its own.
    grouped: bool,
    /// A member after the first of its group: its work is in a savepoint.
    savepoint: bool,
    done: bool,
}

impl SqliteTx<'_> {
    fn conn(&self) -> &Connection {
        match &self.w {
            Some(w) => &w.conn,
            None => unreachable!("the writer is held until the transaction ends"),
        }
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(mut w) = self.w.take() else {
            return;
        };
        if !self.grouped {
            let _rollback_result = w.conn.execute_batch("ROLLBACK");
            return;
        }
        // Only this member's savepoint is undone (the first member's work
        // is the whole transaction, rolled back by `leave`).
        if self.savepoint {
            let _rollback_result = w.conn.execute_batch("ROLLBACK TO member; RELEASE member");
        }
        let _failed = self.store.check_open(&mut w);
        let wait = self.store.leave(&mut w, true);
        drop(w);
        if let Some(epoch) = wait {
            let _outcome = self.store.wait_for(epoch, false);
        }
    }
}

impl Reader for SqliteTx<'_> {
    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        read_current(self.conn(), resource_type, id)
    }
    fn read_many(&self, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
        read_many(self.conn(), keys)
    }
    fn search(&self, query: &SearchQuery, page: &PageRequest) -> Result<SearchPage> {
        search(self.conn(), query, page)
    }
    fn include(&self, req: &IncludeRequest) -> Result<Vec<StoredResource>> {
        include(self.conn(), req)
    }
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
        vread(self.conn(), resource_type, id, version)
    }
}

impl StoreTx for SqliteTx<'_> {
    fn announce_change(&mut self) -> Result<()> {
        Ok(())
    }
    fn write(&mut self, w: ResourceWrite) -> Result<()> {
        let c = self.conn();
        let current: Option<(i64, i64)> = c
            .prepare_cached(
                "SELECT rid, version FROM resources WHERE res_type = ?1 AND res_id = ?2",
            )
            .map_err(be)?
            .query_row([&w.resource_type, &w.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(be)?;
        if current.map(|c| c.1) != w.expected_version {
            return Err(StoreError::VersionConflict {
                resource_type: w.resource_type,
                id: w.id,
                expected: w.expected_version,
                found: current.map(|c| c.1),
            });
        }
        let seq: i64 = c
            .prepare_cached("UPDATE seq_counter SET value = value + 1 WHERE id = 1 RETURNING value")
            .map_err(be)?
            .query_row([], |r| r.get(0))
            .map_err(be)?;
        let deleted = i64::from(w.method == WriteMethod::Delete);
        let rid = match current {
            Some((rid, _)) => {
                c.prepare_cached(
                    "INSERT INTO resource_history SELECT rid, res_type, res_id, version, last_updated, seq, method, deleted, patient_key, content FROM resources WHERE rid = ?1",
                )
                .map_err(be)?
                .execute([rid])
                .map_err(be)?;
                c.prepare_cached(
                    "UPDATE resources SET version = ?2, last_updated = ?3, seq = ?4, method = ?5, deleted = ?6, patient_key = ?7, content = ?8 WHERE rid = ?1",
                )
                .map_err(be)?
                .execute(rusqlite::params![
                    rid,
                    w.version,
                    w.last_updated_ms,
                    seq,
                    w.method.as_i64(),
                    deleted,
                    w.patient_key,
                    w.json
                ])
                .map_err(be)?;
                delete_index(c, rid)?;
                rid
            }
            None => {
                c.prepare_cached(
                    "INSERT INTO resources (res_type, res_id, version, last_updated, seq, method, deleted, patient_key, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(be)?
                .execute(rusqlite::params![
                    w.resource_type,
                    w.id,
                    w.version,
                    w.last_updated_ms,
                    seq,
                    w.method.as_i64(),
                    deleted,
                    w.patient_key,
                    w.json
                ])
                .map_err(be)?;
                c.last_insert_rowid()
            }
        };
        let t = w.resource_type.as_str();
        for e in &w.index {
            insert_index(c, rid, t, &e.param, e.group, &e.value)?;
        }
        Ok(())
    }

    fn reindex(&mut self, items: &[Reindex]) -> Result<usize> {
        let c = self.conn();
        let mut n = 0;
        for it in items {
            let current: Option<(i64, i64, i64)> = c
                .prepare_cached(
                    "SELECT rid, version, deleted FROM resources WHERE res_type = ?1 AND res_id = ?2",
                )
                .map_err(be)?
                .query_row([&it.resource_type, &it.id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(be)?;
            let Some((rid, version, deleted)) = current else {
                continue;
            };
            if version != it.version || deleted != 0 {
                continue;
            }
            delete_index(c, rid)?;
            for e in &it.index {
                insert_index(c, rid, &it.resource_type, &e.param, e.group, &e.value)?;
            }
            n += 1;
        }
        Ok(n)
    }

    fn append_audit(&mut self, rows: &[AuditAppend]) -> Result<()> {
        // The writer is this transaction's until commit or rollback (with
        // group commit, the group's rows before it are chained first: the
        // chain is in the order members ran, and they commit together).
        append_audit(self.conn(), rows).map(|_| ())
    }

    fn kv_put(&mut self, namespace: &str, key: &str, value: &str) -> Result<()> {
        kv_put(self.conn(), namespace, key, value)
    }

    fn kv_get(&mut self, namespace: &str, key: &str) -> Result<Option<String>> {
        self.conn()
            .prepare_cached("SELECT value FROM system_kv WHERE namespace = ?1 AND key = ?2")
            .map_err(be)?
            .query_row([namespace, key], |r| r.get(0))
            .optional()
            .map_err(be)
    }

    fn lock(&mut self, _keys: &[&str]) -> Result<()> {
        // This transaction holds the writer until it ends (`BEGIN IMMEDIATE`
        // made it the database's only writer; with group commit, the
        // members before it have ended and commit or fail with it): every
        // key is already ours.
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if !self.grouped {
            self.conn().execute_batch("COMMIT").map_err(be)?;
            self.done = true;
            return Ok(());
        }
        let store = self.store;
        let savepoint = self.savepoint;
        let Some(mut w) = self.w.take() else {
            return Err(StoreError::Backend("transaction already ended".into()));
        };
        self.done = true;
        drop(self);
        if savepoint && let Err(e) = w.conn.execute_batch("RELEASE member") {
            let _rollback_result = w.conn.execute_batch("ROLLBACK TO member; RELEASE member");
            let _failed = store.check_open(&mut w);
            if let Some(epoch) = store.leave(&mut w, true) {
                drop(w);
                let _outcome = store.wait_for(epoch, false);
            }
            return Err(be(e));
        }
        if let Err(e) = store.check_open(&mut w) {
            // The database had ended the group (every member was told).
            store.leave(&mut w, false);
            return Err(e);
        }
        let epoch = w.epoch;
        {
            let mut c = lock(&store.group.coord);
            c.active -= 1;
            c.pending += 1;
        }
        store.group.changed.notify_all();
        drop(w);
        store.wait_for(epoch, true)
    }
}

/// Deletes every index row of `rid`.
fn delete_index(c: &Connection, rid: i64) -> Result<()> {
    for t in wardline_store::sql::INDEX_TABLES {
        c.prepare_cached(&format!("DELETE FROM {t} WHERE rid = ?1"))
            .map_err(be)?
            .execute([rid])
            .map_err(be)?;
    }
    Ok(())
}

/// Inserts one index row with a fixed statement per table (cached), binding
/// borrowed values. The rows carry no `patient_key` and a relative
/// reference's `url` is `''` (migration `0005_narrow_index_rows`).
fn insert_index(
    c: &Connection,
    rid: i64,
    t: &str,
    param: &str,
    grp: Option<u32>,
    v: &IndexValue,
) -> Result<()> {
    use rusqlite::params;
    let n = match v {
        IndexValue::Token { system, code, text } => c
            .prepare_cached(
                "INSERT INTO idx_token (rid, res_type, param, grp, system, code, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    rid,
                    t,
                    param,
                    grp,
                    system,
                    code,
                    text.as_deref().map(normalise_string)
                ])
            }),
        IndexValue::String { norm, exact } => c
            .prepare_cached(
                "INSERT INTO idx_string (rid, res_type, param, grp, norm, exact) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| s.execute(params![rid, t, param, grp, norm, exact])),
        IndexValue::Date { lo, hi } => c
            .prepare_cached(
                "INSERT INTO idx_date (rid, res_type, param, grp, lo, hi) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| s.execute(params![rid, t, param, grp, lo, hi])),
        IndexValue::Number { value } => c
            .prepare_cached(
                "INSERT INTO idx_number (rid, res_type, param, grp, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![rid, t, param, grp, value])),
        IndexValue::Quantity {
            value,
            system,
            code,
            unit,
        } => c
            .prepare_cached(
                "INSERT INTO idx_quantity (rid, res_type, param, grp, value, system, code, unit) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| s.execute(params![rid, t, param, grp, value, system, code, unit])),
        IndexValue::Reference {
            target_type,
            target_id,
            url,
            version,
        } => c
            .prepare_cached(
                "INSERT INTO idx_reference (rid, res_type, param, grp, target_type, target_id, url, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                let url = sql::stored_reference_url(target_type.as_deref(), target_id.as_deref(), url);
                s.execute(params![rid, t, param, grp, target_type, target_id, url, version])
            }),
        IndexValue::Uri { value } => c
            .prepare_cached(
                "INSERT INTO idx_uri (rid, res_type, param, grp, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![rid, t, param, grp, value])),
    };
    n.map(|_| ()).map_err(be)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_on_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        wardline_store::conformance::run_all(&store);
    }

    /// Issue 21: a database written before the narrow index rows is
    /// migrated in place: `patient_key` leaves the index tables, a relative
    /// reference's `url` becomes `''`, and searches still find every row.
    #[test]
    fn narrow_index_rows_migrate_an_existing_database() {
        use wardline_fhir::search::{Filter, FilterKind, Predicate};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .unwrap();
            for (name, ddl) in sql::migrations(Dialect::Sqlite) {
                if name == "0005_narrow_index_rows" {
                    break;
                }
                c.execute_batch(&ddl).unwrap();
                c.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [name])
                    .unwrap();
            }
            c.execute_batch(
                "INSERT INTO resources (rid, res_type, res_id, version, last_updated, seq, method, deleted, patient_key, content)
                   VALUES (1, 'Observation', 'o1', 1, 0, 1, 0, 0, 'p1', '{}'),
                          (2, 'Observation', 'o2', 1, 0, 2, 0, 0, 'p2', '{}');
                 INSERT INTO idx_reference (rid, res_type, param, patient_key, grp, target_type, target_id, url, version)
                   VALUES (1, 'Observation', 'subject', 'p1', NULL, 'Patient', 'p1', 'Patient/p1', NULL),
                          (2, 'Observation', 'subject', 'p2', NULL, 'Patient', 'p2', 'http://x.org/fhir/Patient/p2', NULL);
                 INSERT INTO idx_token (rid, res_type, param, patient_key, grp, system, code, text)
                   VALUES (1, 'Observation', 'code', 'p1', NULL, 'http://loinc.org', '8867-4', NULL);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        {
            let w = &lock(&store.writer).conn;
            for t in sql::INDEX_TABLES {
                let n: i64 = w
                    .query_row(
                        &format!("SELECT COUNT(*) FROM pragma_table_info('{t}') WHERE name = 'patient_key'"),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(n, 0, "{t} keeps no patient_key");
            }
            let urls: Vec<String> = w
                .prepare("SELECT url FROM idx_reference ORDER BY rid")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(urls, vec!["", "http://x.org/fhir/Patient/p2"]);
        }
        let find = |p: Predicate| -> Vec<String> {
            let q = SearchQuery {
                resource_type: Some("Observation".into()),
                filters: vec![Filter {
                    param: "subject".into(),
                    param_type: Some(wardline_fhir::definitions::SearchParamType::Reference),
                    kind: FilterKind::Match(vec![p]),
                }],
                ..SearchQuery::default()
            };
            let page = PageRequest {
                count: 10,
                ..PageRequest::default()
            };
            store
                .search(&q, &page)
                .unwrap()
                .resources
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        let by_id = |id: &str| Predicate::Reference {
            target_type: Some("Patient".into()),
            target_id: Some(id.into()),
            url: None,
        };
        assert_eq!(find(by_id("p1")), vec!["o1"]);
        assert_eq!(find(by_id("p2")), vec!["o2"]);
        let canonical = |url: &str| Predicate::Canonical {
            url: url.into(),
            version: None,
            below: false,
        };
        assert_eq!(find(canonical("Patient/p1")), vec!["o1"]);
        assert_eq!(find(canonical("http://x.org/fhir/Patient/p2")), vec!["o2"]);
        let url_only = Predicate::Reference {
            target_type: None,
            target_id: None,
            url: Some("http://x.org/fhir/Patient/p2".into()),
        };
        assert_eq!(find(url_only), vec!["o2"]);
        // New writes go through the narrowed statements.
        let mut tx = store.begin().unwrap();
        tx.write(ResourceWrite {
            resource_type: "Observation".into(),
            id: "o3".into(),
            version: 1,
            expected_version: None,
            last_updated_ms: 0,
            method: WriteMethod::Create,
            patient_key: Some("p1".into()),
            json: "{}".into(),
            index: vec![wardline_fhir::IndexEntry {
                param: "subject".into(),
                value: IndexValue::Reference {
                    target_type: Some("Patient".into()),
                    target_id: Some("p1".into()),
                    url: "Patient/p1".into(),
                    version: None,
                },
                group: None,
            }],
        })
        .unwrap();
        tx.commit().unwrap();
        assert_eq!(find(by_id("p1")), vec!["o1", "o3"]);
        assert_eq!(find(canonical("Patient/p1")), vec!["o1", "o3"]);
    }

    #[test]
    fn durability_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        let w = lock(&store.writer);
        let mode: String = w
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = w
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }
}

/// Group commit (issue 21).
#[cfg(test)]
mod group_tests {
    use super::*;

    fn write(tx: &mut dyn StoreTx, id: &str) {
        tx.write(ResourceWrite {
            resource_type: "Basic".into(),
            id: id.into(),
            expected_version: None,
            version: 1,
            last_updated_ms: 1,
            method: WriteMethod::Create,
            json: "{}".into(),
            patient_key: None,
            index: vec![],
        })
        .unwrap();
    }

    /// Waits (bounded) until `n` transactions have begun or queued.
    fn until_active(store: &SqliteStore, n: usize) {
        for _ in 0..100_000 {
            if lock(&store.group.coord).active >= n {
                return;
            }
            std::thread::yield_now();
        }
        panic!("{n} transactions never queued");
    }

    /// Concurrent commits, one rolling back: every `Ok` is durable after
    /// reopening, the rolled-back one is not, and they shared commits.
    #[test]
    fn concurrent_commits_share_a_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let committed = {
            let store = SqliteStore::open(&path).unwrap();
            let committed = wardline_store::conformance::concurrent_commits_one_fails(&store);
            let stats = store.group_stats();
            assert_eq!(stats.members, committed.len() as u64, "{stats:?}");
            assert!(stats.groups <= stats.members, "{stats:?}");
            committed
        };
        let store = SqliteStore::open(&path).unwrap();
        for id in &committed {
            assert!(store.read("Basic", id).unwrap().is_some(), "{id}");
        }
        assert!(store.read("Basic", "gc-5-0").unwrap().is_none());
    }

    /// Transactions queued behind a running one join its group: one
    /// durable commit for all of them (counted, not timed); the one that
    /// rolls back is the only one lost.
    #[test]
    fn queued_transactions_join_one_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        let mut first = store.begin().unwrap();
        write(&mut *first, "q-first");
        std::thread::scope(|scope| {
            for i in 0..6 {
                let store = &store;
                scope.spawn(move || {
                    let mut tx = store.begin().unwrap();
                    write(&mut *tx, &format!("q-{i}"));
                    if i == 3 {
                        drop(tx);
                    } else {
                        tx.commit().unwrap();
                    }
                });
            }
            until_active(&store, 7);
            first.commit().unwrap();
        });
        let stats = store.group_stats();
        assert_eq!(
            stats,
            GroupStats {
                groups: 1,
                members: 6,
                largest: 6,
                failed: 0
            }
        );
        assert!(store.read("Basic", "q-first").unwrap().is_some());
        assert!(store.read("Basic", "q-3").unwrap().is_none());
        for i in [0, 1, 2, 4, 5] {
            assert!(store.read("Basic", &format!("q-{i}")).unwrap().is_some());
        }
    }

    /// A group whose COMMIT fails fails every member: each is told, none
    /// is readable, and the next group works.
    #[test]
    fn a_failed_group_fails_every_member() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        let mut first = store.begin().unwrap();
        write(&mut *first, "f-first");
        let outcomes = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for i in 0..4 {
                let (store, outcomes) = (&store, &outcomes);
                scope.spawn(move || {
                    let mut tx = store.begin().unwrap();
                    write(&mut *tx, &format!("f-{i}"));
                    let outcome = tx.commit();
                    outcomes.lock().unwrap().push(outcome);
                });
            }
            until_active(&store, 5);
            store
                .group
                .fail_next
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let outcome = first.commit();
            outcomes.lock().unwrap().push(outcome);
        });
        let outcomes = outcomes.into_inner().unwrap();
        assert_eq!(outcomes.len(), 5);
        for o in outcomes {
            let e = o.unwrap_err();
            assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
            assert!(
                e.to_string().contains("nothing of this group was stored"),
                "{e}"
            );
        }
        assert!(store.read("Basic", "f-first").unwrap().is_none());
        for i in 0..4 {
            assert!(store.read("Basic", &format!("f-{i}")).unwrap().is_none());
        }
        let stats = store.group_stats();
        assert_eq!((stats.groups, stats.members, stats.failed), (1, 5, 1));
        assert!(
            lock(&store.group.coord).failed.is_empty(),
            "every member was told"
        );
        let mut tx = store.begin().unwrap();
        write(&mut *tx, "f-after");
        tx.commit().unwrap();
        assert!(store.read("Basic", "f-after").unwrap().is_some());
    }

    #[test]
    fn off_commits_each_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open_with(&dir.path().join("w.db"), None, GroupCommit::off()).unwrap();
        let committed = wardline_store::conformance::concurrent_commits_one_fails(&store);
        assert!(!committed.is_empty());
        assert_eq!(store.group_stats(), GroupStats::default());
    }
}
