//! Operations support (issue 22): what `wardline backup` and `wardline
//! restore` read from a PostgreSQL database, and the WAL position a read
//! replica is compared by.
//!
//! * [`scan_snapshot`] walks every current version in one `REPEATABLE
//!   READ` snapshot, in (type, id) byte order, with the audit chain's head
//!   of the same snapshot: the facts a backup's manifest records and a
//!   restore checks (the hashing is the caller's, shared with SQLite).
//! * [`PostgresStore::wal_position`]: the primary's current WAL position,
//!   or on a standby the position it has replayed, as a byte offset.

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use wardline_store::{Result, StoreError};

use crate::{PostgresStore, be};

/// One current version (a deletion tombstone too), as [`scan_snapshot`]
/// hands it over.
pub struct CurrentRow<'a> {
    pub resource_type: &'a str,
    pub id: &'a str,
    pub version: i64,
    pub deleted: bool,
    pub content: &'a str,
}

/// The audit chain in the snapshot [`scan_snapshot`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainFacts {
    pub head_seq: i64,
    pub head_hash: String,
    pub rows: u64,
    /// The newest `recorded` time (ms) of any row: a change recorded after
    /// it is not in the database.
    pub newest_recorded_ms: Option<i64>,
}

/// Calls `each` with every current version of every resource, in (type,
/// id) byte order, and returns the audit chain's head, all in one
/// read-only `REPEATABLE READ` snapshot over a connection of its own
/// (streamed: the rows are never all in memory).
pub fn scan_snapshot(url: &str, mut each: impl FnMut(CurrentRow<'_>)) -> Result<ChainFacts> {
    let mut config: postgres::Config = url.parse().map_err(be)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(crate::CONNECT_TIMEOUT);
    }
    let mut c: Client = config.connect(NoTls).map_err(be)?;
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(be)?;
    {
        let no_params: [&str; 0] = [];
        let mut rows = tx
            .query_raw(
                "SELECT res_type, res_id, version, deleted, content FROM resources \
                 ORDER BY res_type COLLATE \"C\", res_id COLLATE \"C\"",
                no_params,
            )
            .map_err(|e| match be(e) {
                StoreError::Backend(m) => StoreError::Backend(format!(
                    "cannot read the resources table (is this a Wardline database?): {m}"
                )),
                other => other,
            })?;
        while let Some(r) = rows.next().map_err(be)? {
            let ty: &str = r.try_get(0).map_err(be)?;
            let id: &str = r.try_get(1).map_err(be)?;
            let version: i64 = r.try_get(2).map_err(be)?;
            let deleted: i16 = r.try_get(3).map_err(be)?;
            let content: &str = r.try_get(4).map_err(be)?;
            each(CurrentRow {
                resource_type: ty,
                id,
                version,
                deleted: deleted != 0,
                content,
            });
        }
    }
    let head = tx
        .query_opt("SELECT seq, hash FROM audit_head WHERE id = 1", &[])
        .map_err(be)?;
    let (head_seq, head_hash) = match head {
        Some(r) => (r.try_get(0).map_err(be)?, r.try_get(1).map_err(be)?),
        None => (0, String::new()),
    };
    let r = tx
        .query_one("SELECT COUNT(*), MAX(recorded) FROM audit_log", &[])
        .map_err(be)?;
    let rows: i64 = r.try_get(0).map_err(be)?;
    let newest_recorded_ms: Option<i64> = r.try_get(1).map_err(be)?;
    tx.commit().map_err(be)?;
    Ok(ChainFacts {
        head_seq,
        head_hash,
        rows: u64::try_from(rows).unwrap_or(0),
        newest_recorded_ms,
    })
}

impl PostgresStore {
    /// The WAL position as a byte offset: on a primary, how far WAL has
    /// been written (every transaction committed before the call is at or
    /// before it); on a standby, how far it has replayed (every transaction
    /// before it is visible there). Compare the two to know whether a
    /// standby shows a write yet.
    pub fn wal_position(&self) -> Result<u64> {
        let mut c = self.conn()?;
        let rows = c.query(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
             ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint",
            &[],
        )?;
        let n: Option<i64> = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(be)?
            .flatten();
        Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }

    /// Whether the server is a standby (in recovery).
    pub fn in_recovery(&self) -> Result<bool> {
        let mut c = self.conn()?;
        let rows = c.query("SELECT pg_is_in_recovery()", &[])?;
        rows.first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(be)
            .map(|v| v.unwrap_or(false))
    }
}

/// Whether the server at `url` is in recovery (a standby, or a restore
/// still replaying WAL), over a connection of its own.
pub fn in_recovery_at(url: &str) -> Result<bool> {
    let mut config: postgres::Config = url.parse().map_err(be)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(crate::CONNECT_TIMEOUT);
    }
    let mut c = config.connect(NoTls).map_err(be)?;
    let r = c.query_one("SELECT pg_is_in_recovery()", &[]).map_err(be)?;
    r.try_get(0).map_err(be)
}

/// The user and database a `postgres://` URL names (never its password);
/// `None` when it is not a valid URL.
pub fn url_user_db(url: &str) -> Option<(String, String)> {
    let c: postgres::Config = url.parse().ok()?;
    let user = c.get_user().unwrap_or("postgres").to_owned();
    let db = c.get_dbname().unwrap_or(&user).to_owned();
    Some((user, db))
}
