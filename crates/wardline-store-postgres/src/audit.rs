//! The audit chain and the system key-value table on PostgreSQL.
//!
//! Appends lock the one `audit_head` row (`SELECT … FOR UPDATE`) until their
//! transaction ends, so concurrent appenders queue there and the chain is in
//! commit order. A [`crate::write::PgTx`] takes that lock only at commit,
//! after its resource writes are flushed: it is held for the two statements
//! and the commit, and never while waiting for another lock.

use postgres::Row;
use wardline_store::Result;
use wardline_store::audit::{self, AuditAnchor, AuditAppend, AuditQuery, AuditRow};
use wardline_store::sql::{self, Dialect};

use crate::{PgConn, be};

/// Serialises purges (the anchor only moves forward).
const PURGE_LOCK: i64 = 7_171_002;

/// Runs `f` in a transaction of its own on `c`: commits on `Ok`, rolls back
/// on `Err` (so the connection goes back to the pool clean).
pub(crate) fn in_tx<T>(c: &mut PgConn, f: impl FnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
    c.client.batch_execute("BEGIN").map_err(be)?;
    match f(c) {
        Ok(v) => {
            c.client
                .batch_execute("COMMIT")
                .map_err(crate::commit_error)?;
            Ok(v)
        }
        Err(e) => {
            // If this fails the connection is broken and the pool drops it.
            let _rollback = c.client.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// Chains and inserts `rows` in the open transaction of `c`: one statement
/// for the lock and the head, one for all rows, their patients and the new head.
pub(crate) fn append(c: &mut PgConn, rows: &[AuditAppend]) -> Result<Vec<i64>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let head = c.query(
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        &[],
    )?;
    let head = head.first().ok_or_else(|| be("audit_head has no row"))?;
    let head_seq: i64 = head.try_get(0).map_err(be)?;
    let head_hash: String = head.try_get(1).map_err(be)?;
    let chained = audit::chain(head_seq, &head_hash, rows);

    let seqs: Vec<i64> = chained.iter().map(|r| r.seq).collect();
    let recorded: Vec<i64> = chained.iter().map(|r| r.recorded_ms).collect();
    let agents: Vec<&str> = chained.iter().map(|r| r.agent.as_str()).collect();
    let actions: Vec<&str> = chained.iter().map(|r| r.action.as_str()).collect();
    let subtypes: Vec<&str> = chained.iter().map(|r| r.subtype.as_str()).collect();
    let outcomes: Vec<i32> = chained.iter().map(|r| r.outcome).collect();
    let patients: Vec<String> = chained.iter().map(|r| r.patients.join(" ")).collect();
    let contents: Vec<&str> = chained.iter().map(|r| r.json.as_str()).collect();
    let prevs: Vec<&str> = chained.iter().map(|r| r.prev_hash.as_str()).collect();
    let hashes: Vec<&str> = chained.iter().map(|r| r.hash.as_str()).collect();
    let (mut p_seqs, mut p_ids): (Vec<i64>, Vec<&str>) = (Vec::new(), Vec::new());
    for r in &chained {
        for p in sql::audit_patients(&r.patients) {
            p_seqs.push(r.seq);
            p_ids.push(p);
        }
    }
    let last = chained.last().ok_or_else(|| be("nothing chained"))?;
    let st = c.stmt(
        "WITH l AS (
            INSERT INTO audit_log (seq, recorded, agent, action, subtype, outcome, patients, content, prev_hash, hash)
            SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int4[],
                                 $7::text[], $8::text[], $9::text[], $10::text[])
         ), p AS (
            INSERT INTO audit_patient (seq, patient) SELECT * FROM unnest($11::int8[], $12::text[])
         )
         UPDATE audit_head SET seq = $13, hash = $14 WHERE id = 1",
    )?;
    c.client
        .execute(
            &st,
            &[
                &seqs, &recorded, &agents, &actions, &subtypes, &outcomes, &patients, &contents,
                &prevs, &hashes, &p_seqs, &p_ids, &last.seq, &last.hash,
            ],
        )
        .map_err(|e| {
            // A row already holds one of these seqs: inserted after the
            // head behind the store's back (see `audit::beyond_head_error`).
            if e.as_db_error()
                .is_some_and(|d| d.constraint() == Some("audit_log_pkey"))
            {
                audit::beyond_head_error(head_seq)
            } else {
                be(e)
            }
        })?;
    Ok(seqs)
}

fn audit_row(r: &Row) -> Result<AuditRow> {
    let get = || -> std::result::Result<AuditRow, postgres::Error> {
        Ok(AuditRow {
            seq: r.try_get(0)?,
            recorded_ms: r.try_get(1)?,
            agent: r.try_get(2)?,
            action: r.try_get(3)?,
            subtype: r.try_get(4)?,
            outcome: r.try_get(5)?,
            patients: sql::split_patients(r.try_get(6)?),
            json: r.try_get(7)?,
            prev_hash: r.try_get(8)?,
            hash: r.try_get(9)?,
        })
    };
    get().map_err(be)
}

fn anchor_row(r: &Row) -> Result<AuditAnchor> {
    Ok(AuditAnchor {
        seq: r.try_get(0).map_err(be)?,
        hash: r.try_get(1).map_err(be)?,
    })
}

pub(crate) fn scan(c: &mut PgConn, after_seq: i64, limit: usize) -> Result<Vec<AuditRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(
        &format!(
            "SELECT {} FROM audit_log a WHERE a.seq > $1 ORDER BY a.seq LIMIT $2",
            sql::AUDIT_COLUMNS
        ),
        &[&after_seq, &limit],
    )?
    .iter()
    .map(audit_row)
    .collect()
}

pub(crate) fn scan_patients(
    c: &mut PgConn,
    after_seq: i64,
    upto_seq: i64,
) -> Result<Vec<(i64, String)>> {
    c.query(
        "SELECT seq, patient FROM audit_patient WHERE seq > $1 AND seq <= $2 ORDER BY seq, patient COLLATE \"C\"",
        &[&after_seq, &upto_seq],
    )?
    .iter()
    .map(|r| Ok((r.try_get(0).map_err(be)?, r.try_get(1).map_err(be)?)))
    .collect()
}

pub(crate) fn search(c: &mut PgConn, q: &AuditQuery) -> Result<Vec<AuditRow>> {
    crate::query_built(c, &sql::audit_search_sql(Dialect::Postgres, q))?
        .iter()
        .map(audit_row)
        .collect()
}

pub(crate) fn head(c: &mut PgConn) -> Result<AuditAnchor> {
    let rows = c.query("SELECT seq, hash FROM audit_head WHERE id = 1", &[])?;
    anchor_row(rows.first().ok_or_else(|| be("audit_head has no row"))?)
}

pub(crate) fn anchor(c: &mut PgConn) -> Result<Option<AuditAnchor>> {
    let rows = c.query("SELECT seq, hash FROM audit_anchor WHERE id = 1", &[])?;
    rows.first().map(anchor_row).transpose()
}

/// See [`wardline_store::Store::purge_audit`]; in the open transaction of `c`.
pub(crate) fn purge(c: &mut PgConn, before_ms: i64) -> Result<u64> {
    c.query("SELECT pg_advisory_xact_lock($1)", &[&PURGE_LOCK])?;
    // The head is read, not locked: appends go on meanwhile, and rows up to
    // the head read here are committed and never change.
    let head = head(c)?.seq;
    // The first row to keep, walking the chain from its start.
    let first_kept: Option<i64> = c
        .query(
            "SELECT seq FROM audit_log WHERE recorded >= $1 ORDER BY seq LIMIT 1",
            &[&before_ms],
        )?
        .first()
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(be)?;
    let cutoff = first_kept.map_or(i64::MAX, |s| s - 1).min(head - 1);
    let last = c.query(
        "SELECT seq, hash FROM audit_log WHERE seq <= $1 ORDER BY seq DESC LIMIT 1",
        &[&cutoff],
    )?;
    let Some(last) = last.first().map(anchor_row).transpose()? else {
        return Ok(0);
    };
    let n = c.execute("DELETE FROM audit_log WHERE seq <= $1", &[&last.seq])?;
    c.execute("DELETE FROM audit_patient WHERE seq <= $1", &[&last.seq])?;
    c.execute(
        "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
        &[&last.seq, &last.hash],
    )?;
    Ok(n)
}

pub(crate) fn kv_get(c: &mut PgConn, namespace: &str, key: &str) -> Result<Option<String>> {
    c.query(
        "SELECT value FROM system_kv WHERE namespace = $1 AND key = $2",
        &[&namespace, &key],
    )?
    .first()
    .map(|r| r.try_get(0))
    .transpose()
    .map_err(be)
}

pub(crate) fn kv_list(
    c: &mut PgConn,
    namespace: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>> {
    // A range on the primary key (`key` compares byte-wise, see the
    // migration): `LIKE` would treat `%` and `_` as wildcards.
    let rows = match sql::prefix_upper_bound(prefix) {
        Some(upper) => c.query(
            "SELECT key, value FROM system_kv
             WHERE namespace = $1 AND key >= $2 AND key < $3 ORDER BY key",
            &[&namespace, &prefix, &upper],
        )?,
        None => c.query(
            "SELECT key, value FROM system_kv WHERE namespace = $1 AND key >= $2 ORDER BY key",
            &[&namespace, &prefix],
        )?,
    };
    rows.iter()
        .map(|r| Ok((r.try_get(0).map_err(be)?, r.try_get(1).map_err(be)?)))
        .collect()
}

pub(crate) fn kv_put(c: &mut PgConn, namespace: &str, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO system_kv (namespace, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value",
        &[&namespace, &key, &value],
    )?;
    Ok(())
}

pub(crate) fn kv_delete(c: &mut PgConn, namespace: &str, key: &str) -> Result<bool> {
    let n = c.execute(
        "DELETE FROM system_kv WHERE namespace = $1 AND key = $2",
        &[&namespace, &key],
    )?;
    Ok(n > 0)
}
