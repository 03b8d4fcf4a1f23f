//! The read-write transaction: buffered writes flushed in batches with array
//! parameters (`unnest`), one statement per table per batch.

use std::cell::RefCell;
use std::collections::HashMap;

use r2d2::PooledConnection;
use wardline_fhir::{IndexValue, SearchQuery};
use wardline_store::audit::AuditAppend;
use wardline_store::sql::INDEX_TABLES;
use wardline_store::{
    PageRequest, Reader, Reindex, ResourceWrite, Result, SearchPage, StoreError, StoreTx,
    StoredResource, WriteMethod,
};

use crate::{FLUSH_AT, Manager, PgConn, be};

struct State {
    conn: PooledConnection<Manager>,
    pending: Vec<ResourceWrite>,
    /// (type, id) -> index in `pending`.
    keys: HashMap<(String, String), usize>,
    /// Set after any error: the transaction can then only roll back.
    failed: bool,
    /// Audit rows, chained and inserted at commit (see [`crate::audit`]).
    audit: Vec<AuditAppend>,
}

pub(crate) struct PgTx {
    st: RefCell<State>,
    done: bool,
}

impl PgTx {
    pub(crate) fn new(conn: PooledConnection<Manager>) -> PgTx {
        PgTx {
            st: RefCell::new(State {
                conn,
                pending: Vec::new(),
                keys: HashMap::new(),
                failed: false,
                audit: Vec::new(),
            }),
            done: false,
        }
    }

    /// Runs `f` on the connection after flushing buffered writes.
    fn flushed<T>(&self, f: impl FnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        let mut st = self.st.borrow_mut();
        st.flush()?;
        let out = f(&mut st.conn);
        if out.is_err() {
            st.failed = true;
        }
        out
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if !self.done {
            let st = self.st.get_mut();
            // If this fails the connection is gone, and the server rolls back.
            let _rollback = st.conn.client.batch_execute("ROLLBACK");
        }
    }
}

impl Reader for PgTx {
    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        let buffered = self
            .st
            .borrow()
            .keys
            .contains_key(&(resource_type.to_owned(), id.to_owned()));
        if buffered {
            self.flushed(|c| crate::read_current(c, resource_type, id))
        } else {
            let mut st = self.st.borrow_mut();
            if st.failed {
                return Err(failed());
            }
            crate::read_current(&mut st.conn, resource_type, id)
        }
    }
    fn read_many(&self, keys: &[(String, String)]) -> Result<Vec<StoredResource>> {
        self.flushed(|c| crate::read_many(c, keys))
    }
    fn search(&self, query: &SearchQuery, page: &PageRequest) -> Result<SearchPage> {
        self.flushed(|c| crate::search(c, query, page))
    }
    fn include(&self, req: &wardline_store::IncludeRequest) -> Result<Vec<StoredResource>> {
        self.flushed(|c| crate::include(c, req))
    }
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
        self.flushed(|c| crate::vread(c, resource_type, id, version))
    }
}

fn failed() -> StoreError {
    StoreError::Backend("transaction already failed; it can only be rolled back".into())
}

impl StoreTx for PgTx {
    fn write(&mut self, w: ResourceWrite) -> Result<()> {
        let st = self.st.get_mut();
        if st.failed {
            return Err(failed());
        }
        let key = (w.resource_type.clone(), w.id.clone());
        if let Some(&i) = st.keys.get(&key) {
            // A second write of a buffered resource: check against the buffered
            // version, then flush so each batch holds one write per resource.
            let found = st.pending[i].version;
            if w.expected_version != Some(found) {
                return Err(StoreError::VersionConflict {
                    resource_type: w.resource_type,
                    id: w.id,
                    expected: w.expected_version,
                    found: Some(found),
                });
            }
            st.flush()?;
        }
        st.keys.insert(key, st.pending.len());
        st.pending.push(w);
        if st.pending.len() >= FLUSH_AT {
            st.flush()?;
        }
        Ok(())
    }

    fn reindex(&mut self, items: &[Reindex]) -> Result<usize> {
        if items.is_empty() {
            return Ok(0);
        }
        self.flushed(|c| reindex(c, items))
    }

    fn append_audit(&mut self, rows: &[AuditAppend]) -> Result<()> {
        let st = self.st.get_mut();
        if st.failed {
            return Err(failed());
        }
        // Chained at commit: the head lock is then held only for the insert
        // and the commit, and never while this transaction waits for a row lock.
        st.audit.extend_from_slice(rows);
        Ok(())
    }

    fn kv_put(&mut self, namespace: &str, key: &str, value: &str) -> Result<()> {
        let st = self.st.get_mut();
        if st.failed {
            return Err(failed());
        }
        let out = crate::audit::kv_put(&mut st.conn, namespace, key, value);
        if out.is_err() {
            st.failed = true;
        }
        out
    }

    fn kv_get(&mut self, namespace: &str, key: &str) -> Result<Option<String>> {
        let st = self.st.get_mut();
        if st.failed {
            return Err(failed());
        }
        let out = crate::audit::kv_get(&mut st.conn, namespace, key);
        if out.is_err() {
            st.failed = true;
        }
        out
    }

    fn lock(&mut self, keys: &[&str]) -> Result<()> {
        let st = self.st.get_mut();
        if st.failed {
            return Err(failed());
        }
        for k in keys {
            // A transaction-level advisory lock on a 64-bit hash of the
            // schema and the key: released by COMMIT or ROLLBACK, never left
            // in a table. Advisory locks are per database, so the schema keeps
            // two Wardlines sharing a database (tests, tenants) apart. Two
            // keys sharing a hash only serialise more than needed.
            let out = st
                .conn
                .client
                .execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || $1, 0))",
                    &[k],
                )
                .map(|_| ());
            if let Err(e) = out {
                st.failed = true;
                let deadlock = e.code() == Some(&postgres::error::SqlState::T_R_DEADLOCK_DETECTED);
                return Err(if deadlock {
                    StoreError::LockConflict(format!("deadlock while locking {k}"))
                } else {
                    crate::be(e)
                });
            }
        }
        Ok(())
    }

    /// Issue 22: `NOTIFY` on [`crate::CHANGES_CHANNEL`] with this schema's
    /// name, delivered to every listener when (and only if) the
    /// transaction commits; PostgreSQL folds repeats within a transaction.
    fn announce_change(&mut self) -> Result<()> {
        let st = self.st.get_mut();
        if st.failed {
            return Err(failed());
        }
        let out = st
            .conn
            .execute(
                "SELECT pg_notify($1, current_schema())",
                &[&crate::CHANGES_CHANNEL],
            )
            .map(|_| ());
        if out.is_err() {
            st.failed = true;
        }
        out
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let st = self.st.get_mut();
        if st.failed {
            return Err(failed());
        }
        st.flush()?;
        if !st.audit.is_empty() {
            let rows = std::mem::take(&mut st.audit);
            if let Err(e) = crate::audit::append(&mut st.conn, &rows) {
                st.failed = true;
                return Err(e);
            }
        }
        st.conn
            .client
            .batch_execute("COMMIT")
            .map_err(crate::commit_error)?;
        self.done = true;
        Ok(())
    }
}

type Opt<'a> = Vec<Option<&'a str>>;

/// Per-table column arrays for one batch of index rows.
#[derive(Default)]
struct IndexRows<'a> {
    token: (Common<'a>, Opt<'a>, Opt<'a>, Vec<Option<String>>),
    string: (Common<'a>, Vec<&'a str>, Vec<&'a str>),
    date: (Common<'a>, Vec<i64>, Vec<i64>),
    number: (Common<'a>, Vec<f64>),
    quantity: (Common<'a>, Vec<f64>, Opt<'a>, Opt<'a>, Opt<'a>),
    reference: (Common<'a>, Opt<'a>, Opt<'a>, Vec<&'a str>, Opt<'a>),
    uri: (Common<'a>, Vec<&'a str>),
}

#[derive(Default)]
struct Common<'a> {
    rid: Vec<i64>,
    res_type: Vec<&'a str>,
    param: Vec<&'a str>,
    patient_key: Vec<Option<&'a str>>,
    grp: Vec<Option<i32>>,
}

/// The index rows of one resource: its rid, type, patient and entries.
type Indexed<'a> = (
    i64,
    &'a str,
    Option<&'a str>,
    &'a [wardline_fhir::IndexEntry],
);

impl<'a> Common<'a> {
    fn push(
        &mut self,
        rid: i64,
        res_type: &'a str,
        patient_key: Option<&'a str>,
        e: &'a wardline_fhir::IndexEntry,
    ) {
        self.rid.push(rid);
        self.res_type.push(res_type);
        self.param.push(&e.param);
        self.patient_key.push(patient_key);
        self.grp.push(e.group.map(|g| g as i32));
    }
}

/// See [`StoreTx::reindex`]: the current rows locked, those still at the
/// version given get their index rows replaced.
fn reindex(c: &mut PgConn, items: &[Reindex]) -> Result<usize> {
    let types: Vec<&str> = items.iter().map(|w| w.resource_type.as_str()).collect();
    let ids: Vec<&str> = items.iter().map(|w| w.id.as_str()).collect();
    let rows = c.query(
        "SELECT r.res_type, r.res_id, r.rid, r.version, r.deleted, r.patient_key FROM resources r
         JOIN unnest($1::text[], $2::text[]) AS u(t, i) ON r.res_type = u.t AND r.res_id = u.i
         FOR UPDATE OF r",
        &[&types, &ids],
    )?;
    /// rid, version, deleted, patient key.
    type Current = (i64, i64, i16, Option<String>);
    let mut current: HashMap<(String, String), Current> = HashMap::with_capacity(rows.len());
    for r in &rows {
        current.insert(
            (r.try_get(0).map_err(be)?, r.try_get(1).map_err(be)?),
            (
                r.try_get(2).map_err(be)?,
                r.try_get(3).map_err(be)?,
                r.try_get(4).map_err(be)?,
                r.try_get(5).map_err(be)?,
            ),
        );
    }
    let mut rows: Vec<Indexed<'_>> = Vec::with_capacity(items.len());
    for it in items {
        if let Some((rid, version, deleted, pk)) =
            current.get(&(it.resource_type.clone(), it.id.clone()))
            && *version == it.version
            && *deleted == 0
        {
            rows.push((*rid, &it.resource_type, pk.as_deref(), &it.index));
        }
    }
    let rids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    for t in INDEX_TABLES {
        c.execute(&format!("DELETE FROM {t} WHERE rid = ANY($1)"), &[&rids])?;
    }
    insert_index_rows(c, &rows)?;
    Ok(rows.len())
}

fn unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

impl State {
    fn flush(&mut self) -> Result<()> {
        if self.failed {
            return Err(failed());
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.keys.clear();
        let out = flush_batch(&mut self.conn, &pending);
        if out.is_err() {
            self.failed = true;
        }
        out
    }
}

fn flush_batch(c: &mut PgConn, batch: &[ResourceWrite]) -> Result<()> {
    // 1. Lock and read the current versions; check every expectation.
    let types: Vec<&str> = batch.iter().map(|w| w.resource_type.as_str()).collect();
    let ids: Vec<&str> = batch.iter().map(|w| w.id.as_str()).collect();
    let rows = c.query(
        "SELECT r.res_type, r.res_id, r.rid, r.version FROM resources r
         JOIN unnest($1::text[], $2::text[]) AS u(t, i) ON r.res_type = u.t AND r.res_id = u.i
         FOR UPDATE OF r",
        &[&types, &ids],
    )?;
    let mut current: HashMap<(String, String), (i64, i64)> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let k = (r.try_get(0).map_err(be)?, r.try_get(1).map_err(be)?);
        current.insert(k, (r.try_get(2).map_err(be)?, r.try_get(3).map_err(be)?));
    }
    let mut rids: Vec<Option<i64>> = Vec::with_capacity(batch.len());
    for w in batch {
        let found = current
            .get(&(w.resource_type.clone(), w.id.clone()))
            .copied();
        if found.map(|f| f.1) != w.expected_version {
            return Err(StoreError::VersionConflict {
                resource_type: w.resource_type.clone(),
                id: w.id.clone(),
                expected: w.expected_version,
                found: found.map(|f| f.1),
            });
        }
        rids.push(found.map(|f| f.0));
    }

    // 2. Creates: one INSERT ... SELECT FROM unnest(...) RETURNING rid.
    let creates: Vec<&ResourceWrite> = batch
        .iter()
        .zip(&rids)
        .filter(|(_, r)| r.is_none())
        .map(|(w, _)| w)
        .collect();
    let mut new_rids: HashMap<(String, String), i64> = HashMap::with_capacity(creates.len());
    if !creates.is_empty() {
        let cols = columns(&creates);
        let stmt = c.stmt(
                "INSERT INTO resources (res_type, res_id, version, last_updated, seq, method, deleted, patient_key, content)
                 SELECT t, i, v, lu, nextval('write_seq'), m, d, pk, c
                 FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int2[], $6::int2[], $7::text[], $8::text[])
                   AS u(t, i, v, lu, m, d, pk, c)
                 RETURNING rid, res_type, res_id",
            )?;
        let rows = c
            .client
            .query(
                &stmt,
                &[
                    &cols.types,
                    &cols.ids,
                    &cols.versions,
                    &cols.updated,
                    &cols.methods,
                    &cols.deleted,
                    &cols.patient_keys,
                    &cols.contents,
                ],
            )
            .map_err(|e| {
                if unique_violation(&e) {
                    // A concurrent transaction created one of these ids first.
                    let w = creates[0];
                    StoreError::VersionConflict {
                        resource_type: w.resource_type.clone(),
                        id: w.id.clone(),
                        expected: None,
                        found: None,
                    }
                } else {
                    be(e)
                }
            })?;
        for r in &rows {
            let rid: i64 = r.try_get(0).map_err(be)?;
            let t: String = r.try_get(1).map_err(be)?;
            let i: String = r.try_get(2).map_err(be)?;
            new_rids.insert((t, i), rid);
        }
    }

    // 3. Updates: move the current rows to history, update them in place,
    //    drop their old index rows.
    let updates: Vec<(i64, &ResourceWrite)> = batch
        .iter()
        .zip(&rids)
        .filter_map(|(w, r)| r.map(|r| (r, w)))
        .collect();
    if !updates.is_empty() {
        let urids: Vec<i64> = updates.iter().map(|u| u.0).collect();
        let ws: Vec<&ResourceWrite> = updates.iter().map(|u| u.1).collect();
        let cols = columns(&ws);
        c.execute(
            "INSERT INTO resource_history (rid, res_type, res_id, version, last_updated, seq, method, deleted, patient_key, content)
             SELECT rid, res_type, res_id, version, last_updated, seq, method, deleted, patient_key, content
             FROM resources WHERE rid = ANY($1)",
            &[&urids],
        )?;
        c.execute(
            "UPDATE resources r SET version = u.v, last_updated = u.lu, seq = nextval('write_seq'),
                method = u.m, deleted = u.d, patient_key = u.pk, content = u.c
             FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int2[], $5::int2[], $6::text[], $7::text[])
               AS u(rid, v, lu, m, d, pk, c)
             WHERE r.rid = u.rid",
            &[
                &urids, &cols.versions, &cols.updated, &cols.methods, &cols.deleted,
                &cols.patient_keys, &cols.contents,
            ],
        )?;
        for t in INDEX_TABLES {
            c.execute(&format!("DELETE FROM {t} WHERE rid = ANY($1)"), &[&urids])?;
        }
    }

    // 4. Index rows, one INSERT per table.
    let mut rows: Vec<Indexed<'_>> = Vec::with_capacity(batch.len());
    for (w, r) in batch.iter().zip(&rids) {
        let rid = match r {
            Some(r) => *r,
            None => *new_rids
                .get(&(w.resource_type.clone(), w.id.clone()))
                .ok_or_else(|| be(format!("no rid returned for {}/{}", w.resource_type, w.id)))?,
        };
        rows.push((rid, &w.resource_type, w.patient_key.as_deref(), &w.index));
    }
    insert_index_rows(c, &rows)
}

/// The index rows of `rows`, one INSERT per table.
fn insert_index_rows(c: &mut PgConn, rows: &[Indexed<'_>]) -> Result<()> {
    let mut ix = IndexRows::default();
    for &(rid, t, pk, index) in rows {
        for e in index {
            match &e.value {
                IndexValue::Token { system, code, .. } => {
                    ix.token.0.push(rid, t, pk, e);
                    ix.token.1.push(system.as_deref());
                    ix.token.2.push(code.as_deref());
                    ix.token.3.push(crate::token_text(&e.value));
                }
                IndexValue::String { norm, exact } => {
                    ix.string.0.push(rid, t, pk, e);
                    ix.string.1.push(norm);
                    ix.string.2.push(exact);
                }
                IndexValue::Date { lo, hi } => {
                    ix.date.0.push(rid, t, pk, e);
                    ix.date.1.push(*lo);
                    ix.date.2.push(*hi);
                }
                IndexValue::Number { value } => {
                    ix.number.0.push(rid, t, pk, e);
                    ix.number.1.push(*value);
                }
                IndexValue::Quantity {
                    value,
                    system,
                    code,
                    unit,
                } => {
                    ix.quantity.0.push(rid, t, pk, e);
                    ix.quantity.1.push(*value);
                    ix.quantity.2.push(system.as_deref());
                    ix.quantity.3.push(code.as_deref());
                    ix.quantity.4.push(unit.as_deref());
                }
                IndexValue::Reference {
                    target_type,
                    target_id,
                    url,
                    version,
                } => {
                    ix.reference.0.push(rid, t, pk, e);
                    ix.reference.1.push(target_type.as_deref());
                    ix.reference.2.push(target_id.as_deref());
                    ix.reference
                        .3
                        .push(wardline_store::sql::stored_reference_url(
                            target_type.as_deref(),
                            target_id.as_deref(),
                            url,
                        ));
                    ix.reference.4.push(version.as_deref());
                }
                IndexValue::Uri { value } => {
                    ix.uri.0.push(rid, t, pk, e);
                    ix.uri.1.push(value);
                }
            }
        }
    }
    const HEAD: &str = "$1::int8[], $2::text[], $3::text[], $4::text[], $5::int4[]";
    let (k, a, b, t) = &ix.token;
    if !k.rid.is_empty() {
        c.execute(
            &format!("INSERT INTO idx_token (rid, res_type, param, patient_key, grp, system, code, text) SELECT * FROM unnest({HEAD}, $6::text[], $7::text[], $8::text[])"),
            &[&k.rid, &k.res_type, &k.param, &k.patient_key, &k.grp, a, b, t],
        )?;
    }
    let (k, a, b) = &ix.string;
    if !k.rid.is_empty() {
        c.execute(
            &format!("INSERT INTO idx_string (rid, res_type, param, patient_key, grp, norm, exact) SELECT * FROM unnest({HEAD}, $6::text[], $7::text[])"),
            &[&k.rid, &k.res_type, &k.param, &k.patient_key, &k.grp, a, b],
        )?;
    }
    let (k, a, b) = &ix.date;
    if !k.rid.is_empty() {
        c.execute(
            &format!("INSERT INTO idx_date (rid, res_type, param, patient_key, grp, lo, hi) SELECT * FROM unnest({HEAD}, $6::int8[], $7::int8[])"),
            &[&k.rid, &k.res_type, &k.param, &k.patient_key, &k.grp, a, b],
        )?;
    }
    let (k, a) = &ix.number;
    if !k.rid.is_empty() {
        c.execute(
            &format!("INSERT INTO idx_number (rid, res_type, param, patient_key, grp, value) SELECT * FROM unnest({HEAD}, $6::float8[])"),
            &[&k.rid, &k.res_type, &k.param, &k.patient_key, &k.grp, a],
        )?;
    }
    let (k, a, b, d, e) = &ix.quantity;
    if !k.rid.is_empty() {
        c.execute(
            &format!("INSERT INTO idx_quantity (rid, res_type, param, patient_key, grp, value, system, code, unit) SELECT * FROM unnest({HEAD}, $6::float8[], $7::text[], $8::text[], $9::text[])"),
            &[&k.rid, &k.res_type, &k.param, &k.patient_key, &k.grp, a, b, d, e],
        )?;
    }
    let (k, a, b, d, v) = &ix.reference;
    if !k.rid.is_empty() {
        c.execute(
            &format!("INSERT INTO idx_reference (rid, res_type, param, patient_key, grp, target_type, target_id, url, version) SELECT * FROM unnest({HEAD}, $6::text[], $7::text[], $8::text[], $9::text[])"),
            &[&k.rid, &k.res_type, &k.param, &k.patient_key, &k.grp, a, b, d, v],
        )?;
    }
    let (k, a) = &ix.uri;
    if !k.rid.is_empty() {
        c.execute(
            &format!("INSERT INTO idx_uri (rid, res_type, param, patient_key, grp, value) SELECT * FROM unnest({HEAD}, $6::text[])"),
            &[&k.rid, &k.res_type, &k.param, &k.patient_key, &k.grp, a],
        )?;
    }
    Ok(())
}

/// Resource column arrays for a set of writes.
struct Columns<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    versions: Vec<i64>,
    updated: Vec<i64>,
    methods: Vec<i16>,
    deleted: Vec<i16>,
    patient_keys: Vec<Option<&'a str>>,
    contents: Vec<&'a str>,
}

fn columns<'a>(ws: &[&'a ResourceWrite]) -> Columns<'a> {
    Columns {
        types: ws.iter().map(|w| w.resource_type.as_str()).collect(),
        ids: ws.iter().map(|w| w.id.as_str()).collect(),
        versions: ws.iter().map(|w| w.version).collect(),
        updated: ws.iter().map(|w| w.last_updated_ms).collect(),
        methods: ws.iter().map(|w| w.method.as_i64() as i16).collect(),
        deleted: ws
            .iter()
            .map(|w| i16::from(w.method == WriteMethod::Delete))
            .collect(),
        patient_keys: ws.iter().map(|w| w.patient_key.as_deref()).collect(),
        contents: ws.iter().map(|w| w.json.as_str()).collect(),
    }
}
