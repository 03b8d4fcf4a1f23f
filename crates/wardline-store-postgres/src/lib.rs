//! PostgreSQL backend of the Wardline store (production).
//!
//! # Schema
//! The same tables, columns and versioned migrations as SQLite (see
//! [`wardline_store::sql::migrations`]), recorded in `schema_migrations`:
//! * `resources`: the current version of each resource. `rid` is an identity
//!   surrogate key assigned on first write and never changed; `(res_type,
//!   res_id)` is unique; `seq` (from the `write_seq` sequence) orders system
//!   history; `content` is the resource JSON.
//! * `resource_history`: superseded versions only, primary key `(rid, version)`.
//!   A create writes the JSON once; an update moves the old row here.
//! * `idx_token`, `idx_string`, `idx_date`, `idx_number`, `idx_quantity`,
//!   `idx_reference`, `idx_uri`: one row per indexed value, keyed by `rid` and
//!   carrying `res_type`, `param` and `patient_key`.
//!
//! `content` is `TEXT`, not `jsonb`: the store never queries inside the JSON
//! (search goes through the index tables), and `TEXT` returns exactly the bytes
//! written (key order, number formatting) with no parse/re-serialise cost on
//! every read and write.
//!
//! # Writes
//! A transaction buffers its writes and flushes them in a handful of
//! statements per batch (array parameters with `unnest`, one statement per
//! table), before any search or read of a buffered resource, every
//! [`FLUSH_AT`] writes, and at commit. The version check happens at flush:
//! current rows are locked with `SELECT ... FOR UPDATE` and compared to each
//! write's expected version; a concurrent create of the same id fails on the
//! unique key. Both are reported as [`StoreError::VersionConflict`], and a
//! transaction that saw an error can only roll back. Commit uses the server's
//! default `synchronous_commit`, so a returned commit is durable.
//!
//! # Scaling out by patient (Citus)
//! Every row of a patient-compartment resource carries `patient_key` in
//! `resources`, `resource_history` and all index tables. To distribute:
//! make `patient_key` part of the distribution key (`SELECT
//! create_distributed_table('resources', 'patient_key')`, likewise for the
//! history and index tables, colocated), give non-patient resources (Practitioner,
//! Organization, Location, ...) a `patient_key` of NULL and keep them in
//! reference tables or a single shard, and extend the unique key and primary
//! keys to include `patient_key` (Citus requires the distribution column in
//! unique constraints). Compartment searches (`patient_key = $1`) then route to
//! one shard; the `rid IN (SELECT rid FROM idx_x ...)` subqueries stay
//! co-located because index rows share their resource's `patient_key`.
//! The audit chain (`audit_log`, `audit_patient`, `audit_head`,
//! `audit_anchor`) and `system_kv` are not distributed: the chain has one
//! head, so they stay local tables of the coordinator.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Row, Statement};
use r2d2::{ManageConnection, Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use wardline_fhir::{IndexValue, SearchQuery};
use wardline_store::audit::{AuditAnchor, AuditAppend, AuditQuery, AuditRow};
use wardline_store::sql::{self, Dialect, SqlValue};
use wardline_store::{
    HistoryRequest, IncludeRequest, PageRequest, Reader, Result, SearchPage, Store, StoreError,
    StoreTx, StoredResource, WriteMethod,
};

mod audit;
pub mod ops;
pub mod replica;
pub mod testenv;
mod write;

/// How long a new connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request waits for a busy pool's connection.
const CHECKOUT_WAIT: Duration = Duration::from_secs(10);
/// The slice of that wait after which a known-down database is reported.
const CHECKOUT_SLICE: Duration = Duration::from_millis(250);

/// Marks the database as away when the pool fails to connect to it.
#[derive(Debug)]
struct MarkDown(Arc<AtomicBool>);

impl r2d2::HandleError<postgres::Error> for MarkDown {
    fn handle_error(&self, e: postgres::Error) {
        // Refused, reset, shutting down or starting: away. Not "too many
        // connections" — a busy server is waited for, not reported down.
        if lost_connection(&e) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Buffered writes are flushed when this many are pending.
pub const FLUSH_AT: usize = 2000;

/// A database error as the store reports it: a lost or refused connection
/// (the server stopped, restarting, the backend terminated, the pool unable
/// to connect) is [`StoreError::Unavailable`], anything else
/// [`StoreError::Backend`].
pub(crate) fn be<E: std::fmt::Display + 'static>(e: E) -> StoreError {
    let any = &e as &dyn std::any::Any;
    let pg = any.downcast_ref::<postgres::Error>();
    // `postgres::Error` says only "db error": the server's message is its source.
    let text = match pg.and_then(StdError::source) {
        Some(src) => format!("{e}: {src}"),
        None => e.to_string(),
    };
    if pg.is_some_and(lost_connection) || any.is::<r2d2::Error>() {
        StoreError::Unavailable(text)
    } else {
        StoreError::Backend(text)
    }
}

/// The error of a `COMMIT`: a connection lost while committing leaves the
/// outcome unknown (the server may have committed before it went).
pub(crate) fn commit_error(e: postgres::Error) -> StoreError {
    match be(e) {
        StoreError::Unavailable(m) => StoreError::OutcomeUnknown(m),
        other => other,
    }
}

/// Whether `e` says the connection is gone or the server is not accepting
/// work: closed, an I/O failure, SQLSTATE class 08 (connection exception),
/// 57P01–57P03 (terminated by an administrator, crash shutdown, cannot
/// connect now).
pub(crate) fn lost_connection(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let c = code.code();
        return c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03");
    }
    // No SQLSTATE: an error of the socket itself (reset, refused).
    StdError::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// A client with its own prepared-statement cache (a `prepare` is a round
/// trip; the search SQL for a given query shape repeats).
pub struct PgConn {
    pub(crate) client: Client,
    cache: HashMap<String, Statement>,
}

impl PgConn {
    pub(crate) fn stmt(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.cache.get(sql) {
            return Ok(s.clone());
        }
        if self.cache.len() >= 512 {
            self.cache.clear();
        }
        let s = self.client.prepare(sql).map_err(be)?;
        self.cache.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub(crate) fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let s = self.stmt(sql)?;
        self.client.query(&s, params).map_err(be)
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let s = self.stmt(sql)?;
        self.client.execute(&s, params).map_err(be)
    }
}

/// r2d2 manager handing out [`PgConn`]s.
pub struct Manager(PostgresConnectionManager<NoTls>);

impl ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<PgConn, postgres::Error> {
        let mut client = self.0.connect()?;
        // Statements are cached per connection; without this PostgreSQL may
        // switch a cached statement to a generic plan made while the tables
        // were small (or stale statistics during a bulk load) and keep it as
        // they grow, which turned 0.1 ms searches into 60 ms scans. Custom
        // plans cost a re-plan per execution and follow the data.
        client.batch_execute("SET plan_cache_mode = force_custom_plan")?;
        Ok(PgConn {
            client,
            cache: HashMap::new(),
        })
    }

    fn is_valid(&self, c: &mut PgConn) -> std::result::Result<(), postgres::Error> {
        c.client.simple_query("")?;
        Ok(())
    }

    fn has_broken(&self, c: &mut PgConn) -> bool {
        c.client.is_closed()
    }
}

/// A bound value adapting to the parameter type the server inferred.
#[derive(Debug)]
struct Param<'a>(&'a SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.0 {
            SqlValue::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            SqlValue::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            SqlValue::Text(s) => s.as_str().to_sql(ty, out),
            SqlValue::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
        )
    }

    to_sql_checked!();
}

pub(crate) fn query_built(c: &mut PgConn, b: &sql::SqlBuilder) -> Result<Vec<Row>> {
    let params: Vec<Param<'_>> = b.params.iter().map(Param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    c.query(&b.sql, &refs)
}

pub(crate) fn row_to_resource(r: &Row) -> Result<StoredResource> {
    let get = || -> std::result::Result<StoredResource, postgres::Error> {
        Ok(StoredResource {
            rid: r.try_get(0)?,
            resource_type: r.try_get(1)?,
            id: r.try_get(2)?,
            version: r.try_get(3)?,
            last_updated_ms: r.try_get(4)?,
            seq: r.try_get(5)?,
            method: WriteMethod::from_i64(i64::from(r.try_get::<_, i16>(6)?)),
            deleted: r.try_get::<_, i16>(7)? != 0,
            json: r.try_get(8)?,
            patient_key: r.try_get(9)?,
        })
    };
    get().map_err(be)
}

pub struct PostgresStore {
    /// `Option` only so that [`Drop`] can move the pool to another thread.
    pool: Option<Pool<Manager>>,
    /// Set when the pool failed to connect, cleared by a good checkout.
    down: Arc<AtomicBool>,
    /// How connections are made (the change watcher makes its own).
    config: postgres::Config,
    /// Tells the change watcher's thread to stop (when the store goes).
    closed: Arc<AtomicBool>,
}

/// Issue 22: the channel on which writing transactions announce their
/// commits (the payload is the schema, so stores sharing a database in
/// separate schemas do not hear each other).
pub const CHANGES_CHANNEL: &str = "wardline_changes";

/// The change watcher: one connection of its own `LISTEN`ing on
/// [`CHANGES_CHANNEL`]; each notification for this schema calls
/// `on_change`. A lost connection is made again (once a second), and a
/// change is then reported, since commits may have been missed meanwhile.
fn watch(
    config: postgres::Config,
    closed: Arc<AtomicBool>,
    on_change: Box<dyn Fn() + Send + Sync>,
) {
    let mut first = true;
    while !closed.load(Ordering::Acquire) {
        let mut client = match config.connect(NoTls) {
            Ok(c) => c,
            Err(_) => {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let schema: String = match client
            .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
            .and_then(|()| client.query_one("SELECT current_schema()", &[]))
        {
            Ok(row) => row.get(0),
            Err(_) => {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if !first {
            on_change();
        }
        first = false;
        loop {
            if closed.load(Ordering::Acquire) {
                return;
            }
            let next = {
                let mut n = client.notifications();
                let mut it = n.timeout_iter(Duration::from_millis(500));
                use postgres::fallible_iterator::FallibleIterator;
                it.next().map(|o| o.map(|note| note.payload() == schema))
            };
            match next {
                Ok(Some(mine)) => {
                    if mine {
                        on_change();
                    }
                }
                Ok(None) => {
                    if client.is_closed() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
}

impl Drop for PostgresStore {
    /// The synchronous `postgres` client closes its connection with its own
    /// runtime's `block_on`, which panics (and aborts) if the store is dropped
    /// inside an async context, as when the HTTP server shuts down. Closing the
    /// connections on a plain thread works from any context.
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

fn valid_schema(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl PostgresStore {
    /// Connects (pool of up to 16 connections) and applies migrations.
    pub fn connect(url: &str) -> Result<PostgresStore> {
        Self::open(url, None, true)
    }

    /// Like [`PostgresStore::connect`], but every connection uses `schema`
    /// (created if missing) as its `search_path`: isolated stores in one
    /// database, e.g. for parallel tests. `schema` must be a plain lower-case
    /// identifier.
    pub fn connect_with_schema(url: &str, schema: &str) -> Result<PostgresStore> {
        if !valid_schema(schema) {
            return Err(StoreError::Backend(format!(
                "invalid schema name {schema:?}: use lower-case letters, digits and _"
            )));
        }
        Self::open(url, Some(schema), true)
    }

    /// Connects to a read replica (a hot standby of the primary Wardline
    /// writes to): no migration is applied (a standby is read-only; the
    /// schema arrives from the primary), the pool is built without waiting
    /// for a first connection, so a replica that is down at start-up is
    /// only reported (see [`replica::ReplicatedStore`]).
    pub fn connect_replica(url: &str) -> Result<PostgresStore> {
        Self::open(url, None, false)
    }

    fn open(url: &str, schema: Option<&str>, primary: bool) -> Result<PostgresStore> {
        let mut config: postgres::Config = url.parse().map_err(be)?;
        if let Some(s) = schema {
            let mut c = config.connect(NoTls).map_err(be)?;
            c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .map_err(be)?;
            let opts = match config.get_options() {
                Some(o) => format!("{o} -c search_path={s}"),
                None => format!("-c search_path={s}"),
            };
            config.options(&opts);
        }
        if config.get_connect_timeout().is_none() {
            // A host that does not answer is not waited for long.
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let down = Arc::new(AtomicBool::new(false));
        let builder = Pool::builder()
            .max_size(16)
            .min_idle(Some(1))
            .connection_timeout(CHECKOUT_WAIT)
            .error_handler(Box::new(MarkDown(down.clone())));
        let manager = Manager(PostgresConnectionManager::new(config.clone(), NoTls));
        let pool = if primary {
            builder.build(manager).map_err(be)?
        } else {
            builder.build_unchecked(manager)
        };
        let store = PostgresStore {
            pool: Some(pool),
            down,
            config,
            closed: Arc::new(AtomicBool::new(false)),
        };
        if primary {
            store.migrate()?;
        }
        Ok(store)
    }

    /// A connection from the pool. While every connection is busy it waits
    /// (up to [`CHECKOUT_WAIT`]); once a connection attempt has failed since
    /// the last good checkout (the database is away) it answers
    /// [`StoreError::Unavailable`] within [`CHECKOUT_SLICE`], so requests
    /// and probes fail fast instead of queueing behind a dead server, and
    /// recover by themselves when it is back.
    fn conn(&self) -> Result<PooledConnection<Manager>> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the store is closed".into()))?;
        let start = std::time::Instant::now();
        loop {
            match pool.get_timeout(CHECKOUT_SLICE) {
                Ok(c) => {
                    self.down.store(false, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(e) => {
                    if self.down.load(Ordering::Relaxed) || start.elapsed() >= CHECKOUT_WAIT {
                        return Err(StoreError::Unavailable(format!(
                            "no database connection: {e}"
                        )));
                    }
                }
            }
        }
    }

    fn migrate(&self) -> Result<()> {
        let mut c = self.conn()?;
        let mut tx = c.client.transaction().map_err(be)?;
        // Serialise concurrent starters on the same database.
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7171001);
             CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL);",
        )
        .map_err(be)?;
        for (name, ddl) in sql::migrations(Dialect::Postgres) {
            let done = tx
                .query_opt(
                    "SELECT name FROM schema_migrations WHERE name = $1",
                    &[&name],
                )
                .map_err(be)?;
            if done.is_none() {
                tx.batch_execute(&ddl).map_err(be)?;
                tx.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2)",
                    &[&name, &wardline_fhir::datetime::now_ms()],
                )
                .map_err(be)?;
            }
        }
        tx.commit().map_err(be)
    }
}

const READ_SQL: &str = "SELECT rid, res_type, res_id, version, last_updated, seq, method, deleted, content, patient_key FROM resources WHERE res_type = $1 AND res_id = $2";

pub(crate) fn read_current(c: &mut PgConn, t: &str, id: &str) -> Result<Option<StoredResource>> {
    let rows = c.query(READ_SQL, &[&t, &id])?;
    rows.first().map(row_to_resource).transpose()
}

pub(crate) fn read_many(c: &mut PgConn, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let types: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let rows = c.query(
        "SELECT r.rid, r.res_type, r.res_id, r.version, r.last_updated, r.seq, r.method, r.deleted, r.content, r.patient_key
         FROM resources r JOIN unnest($1::text[], $2::text[]) AS u(t, i) ON r.res_type = u.t AND r.res_id = u.i",
        &[&types, &ids],
    )?;
    rows.iter().map(row_to_resource).collect()
}

pub(crate) fn include(c: &mut PgConn, req: &IncludeRequest) -> Result<Vec<StoredResource>> {
    let Some(b) = sql::include_sql(Dialect::Postgres, req) else {
        return Ok(Vec::new());
    };
    query_built(c, &b)?.iter().map(row_to_resource).collect()
}

pub(crate) fn search(c: &mut PgConn, q: &SearchQuery, page: &PageRequest) -> Result<SearchPage> {
    let snapshot = match page.snapshot_rid {
        Some(s) => s,
        None => c
            .query("SELECT COALESCE(MAX(rid), 0)::bigint FROM resources", &[])?
            .first()
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()
            .map_err(be)?
            .unwrap_or(0),
    };
    let page = PageRequest {
        snapshot_rid: Some(snapshot),
        ..page.clone()
    };
    let total = if page.want_total || page.count_only {
        let rows = query_built(c, &sql::count_sql(Dialect::Postgres, q, &page))?;
        let n: i64 = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(be)?
            .unwrap_or(0);
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
    let rows = query_built(c, &sql::search_sql(Dialect::Postgres, q, &page))?;
    let mut resources = rows
        .iter()
        .map(row_to_resource)
        .collect::<Result<Vec<_>>>()?;
    let has_more = resources.len() > page.count;
    resources.truncate(page.count);
    Ok(SearchPage {
        resources,
        total,
        has_more,
        snapshot_rid: snapshot,
    })
}

impl Reader for PostgresStore {
    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        read_current(&mut *self.conn()?, resource_type, id)
    }
    fn read_many(&self, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
        read_many(&mut *self.conn()?, keys)
    }
    fn search(&self, query: &SearchQuery, page: &PageRequest) -> Result<SearchPage> {
        search(&mut *self.conn()?, query, page)
    }
    fn include(&self, req: &IncludeRequest) -> Result<Vec<StoredResource>> {
        include(&mut *self.conn()?, req)
    }
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
        vread(&mut *self.conn()?, resource_type, id, version)
    }
}

/// One version of a resource: the current row, or its row in the history.
pub(crate) fn vread(
    c: &mut PgConn,
    resource_type: &str,
    id: &str,
    version: i64,
) -> Result<Option<StoredResource>> {
    let Some(cur) = read_current(c, resource_type, id)? else {
        return Ok(None);
    };
    if cur.version == version {
        return Ok(Some(cur));
    }
    let rows = c.query(
        "SELECT rid, res_type, res_id, version, last_updated, seq, method, deleted, content, patient_key
         FROM resource_history WHERE rid = $1 AND version = $2",
        &[&cur.rid, &version],
    )?;
    rows.first().map(row_to_resource).transpose()
}

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn watch_changes(&self, on_change: Box<dyn Fn() + Send + Sync>) -> Result<bool> {
        let (config, closed) = (self.config.clone(), self.closed.clone());
        std::thread::Builder::new()
            .name("pg-change-watcher".into())
            .spawn(move || watch(config, closed, on_change))
            .map_err(|e| StoreError::Backend(format!("cannot start the change watcher: {e}")))?;
        Ok(true)
    }

    fn explain(&self, query: &SearchQuery, page: &PageRequest) -> Result<Vec<String>> {
        let mut b = sql::search_sql(Dialect::Postgres, query, page);
        b.sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", b.sql);
        let rows = query_built(&mut *self.conn()?, &b)?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(be))
            .collect()
    }

    fn history(&self, req: &HistoryRequest) -> Result<Vec<StoredResource>> {
        let mut c = self.conn()?;
        let rows = query_built(&mut c, &sql::history_sql(Dialect::Postgres, req))?;
        rows.iter().map(row_to_resource).collect()
    }

    fn begin(&self) -> Result<Box<dyn StoreTx + '_>> {
        let mut conn = self.conn()?;
        conn.client.batch_execute("BEGIN").map_err(be)?;
        Ok(Box::new(write::PgTx::new(conn)))
    }

    fn append_audit(&self, rows: &[AuditAppend]) -> Result<Vec<i64>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        audit::in_tx(&mut *self.conn()?, |c| audit::append(c, rows))
    }

    fn scan_audit(&self, after_seq: i64, limit: usize) -> Result<Vec<AuditRow>> {
        audit::scan(&mut *self.conn()?, after_seq, limit)
    }

    fn scan_audit_patients(&self, after_seq: i64, upto_seq: i64) -> Result<Vec<(i64, String)>> {
        audit::scan_patients(&mut *self.conn()?, after_seq, upto_seq)
    }

    fn search_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        audit::search(&mut *self.conn()?, q)
    }

    fn audit_head(&self) -> Result<AuditAnchor> {
        audit::head(&mut *self.conn()?)
    }

    fn audit_anchor(&self) -> Result<Option<AuditAnchor>> {
        audit::anchor(&mut *self.conn()?)
    }

    fn purge_audit(&self, before_ms: i64) -> Result<u64> {
        audit::in_tx(&mut *self.conn()?, |c| audit::purge(c, before_ms))
    }

    fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<String>> {
        audit::kv_get(&mut *self.conn()?, namespace, key)
    }

    fn kv_list(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, String)>> {
        audit::kv_list(&mut *self.conn()?, namespace, prefix)
    }

    fn kv_put(&self, namespace: &str, key: &str, value: &str) -> Result<()> {
        // One statement outside a transaction block: committed (durably) by itself.
        audit::kv_put(&mut *self.conn()?, namespace, key, value)
    }

    fn kv_delete(&self, namespace: &str, key: &str) -> Result<bool> {
        audit::kv_delete(&mut *self.conn()?, namespace, key)
    }
}

/// The index value columns of one row, for building per-table arrays.
pub(crate) fn token_text(v: &IndexValue) -> Option<String> {
    match v {
        IndexValue::Token { text, .. } => {
            text.as_deref().map(wardline_fhir::index::normalise_string)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
