//! Transactions as a service API, and write hooks.
//!
//! [`FhirService::transact`] runs a closure over a [`Tx`]: reads see the
//! transaction's own writes, every save goes through the same validation,
//! stamping and indexing as a REST write, and everything commits together (or
//! nothing does) when the closure returns `Ok`. Workflow services that change
//! several resources at once (the HL7 v2 engine, ADT, merges) use this instead
//! of building transaction Bundles.
//!
//! Every write path of the service (REST interactions, transaction Bundles,
//! [`Tx`]) records the changes to resource types a [`WriteHook`] watches;
//! just before commit each hook sees them (first `before`, last `after` per
//! resource) and may write more in the same transaction. That is how the HL7
//! v2 outbox is fed: the outbound message is committed with the change it
//! announces, or neither is. Writes made by hooks are not shown to hooks.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use wardline_fhir::{FhirError, SearchQuery};
use wardline_store::audit::AuditAppend;
use wardline_store::{
    IncludeRequest, PageRequest, Reader, Reindex, ResourceWrite, SearchPage, StoreTx,
    StoredResource, WriteMethod,
};

use crate::access::{Access, Op, ResourceView};
use crate::audit::AuditRecord;
use crate::{FhirService, Fresh, R, new_id};

/// One resource changed by a transaction, as hooks see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub resource_type: String,
    pub id: String,
    /// The current version before the transaction (JSON), `None` if it did
    /// not exist or was deleted.
    pub before: Option<String>,
    /// The version the transaction leaves (JSON), `None` when it deletes it.
    pub after: Option<String>,
}

/// Sees committed-to-be changes before commit; may write in the same
/// transaction. An error aborts the whole transaction, so a hook must only
/// fail for store errors, never because it dislikes the data.
pub trait WriteHook: Send + Sync {
    /// Whether changes of this resource type are passed to the hook.
    fn watches(&self, resource_type: &str) -> bool;
    fn before_commit(&self, tx: &mut Tx<'_>, changes: &[Change]) -> R<()>;
}

/// A store transaction that remembers what was written.
pub(crate) struct Recording<'a> {
    inner: Box<dyn StoreTx + 'a>,
    hooks: &'a [Arc<dyn WriteHook>],
    recording: bool,
    changes: Vec<Change>,
    positions: HashMap<(String, String), usize>,
    written: Vec<(String, String)>,
    written_set: std::collections::HashSet<(String, String)>,
}

impl Reader for Recording<'_> {
    fn read(&self, t: &str, id: &str) -> wardline_store::Result<Option<StoredResource>> {
        self.inner.read(t, id)
    }
    fn read_many(&self, keys: &[(String, String)]) -> wardline_store::Result<Vec<StoredResource>> {
        self.inner.read_many(keys)
    }
    fn search(&self, q: &SearchQuery, p: &PageRequest) -> wardline_store::Result<SearchPage> {
        self.inner.search(q, p)
    }
    fn include(&self, req: &IncludeRequest) -> wardline_store::Result<Vec<StoredResource>> {
        self.inner.include(req)
    }
    fn vread(&self, t: &str, id: &str, v: i64) -> wardline_store::Result<Option<StoredResource>> {
        self.inner.vread(t, id, v)
    }
}

impl StoreTx for Recording<'_> {
    fn write(&mut self, w: ResourceWrite) -> wardline_store::Result<()> {
        let key = (w.resource_type.clone(), w.id.clone());
        // A set beside the ordered list: an import writes thousands of
        // resources in one transaction.
        if self.written_set.insert(key.clone()) {
            self.written.push(key.clone());
        }
        if !self.recording || !self.hooks.iter().any(|h| h.watches(&w.resource_type)) {
            return self.inner.write(w);
        }
        let after = (w.method != WriteMethod::Delete).then(|| w.json.clone());
        match self.positions.get(&key) {
            Some(&i) => {
                self.inner.write(w)?;
                self.changes[i].after = after;
            }
            None => {
                let before = self
                    .inner
                    .read(&key.0, &key.1)?
                    .filter(|r| !r.deleted)
                    .map(|r| r.json);
                self.inner.write(w)?;
                self.positions.insert(key.clone(), self.changes.len());
                self.changes.push(Change {
                    resource_type: key.0,
                    id: key.1,
                    before,
                    after,
                });
            }
        }
        Ok(())
    }

    /// Not a change of any resource: nothing is recorded.
    fn reindex(&mut self, items: &[Reindex]) -> wardline_store::Result<usize> {
        self.inner.reindex(items)
    }

    fn append_audit(&mut self, rows: &[AuditAppend]) -> wardline_store::Result<()> {
        self.inner.append_audit(rows)
    }

    fn kv_put(&mut self, namespace: &str, key: &str, value: &str) -> wardline_store::Result<()> {
        self.inner.kv_put(namespace, key, value)
    }

    fn kv_get(&mut self, namespace: &str, key: &str) -> wardline_store::Result<Option<String>> {
        self.inner.kv_get(namespace, key)
    }

    fn lock(&mut self, keys: &[&str]) -> wardline_store::Result<()> {
        self.inner.lock(keys)
    }

    fn announce_change(&mut self) -> wardline_store::Result<()> {
        self.inner.announce_change()
    }

    fn commit(self: Box<Self>) -> wardline_store::Result<()> {
        self.inner.commit()
    }
}

/// A read-write transaction of the service. Dropping it without
/// [`Tx::commit`] rolls back.
pub struct Tx<'a> {
    svc: &'a FhirService,
    pub(crate) rec: Recording<'a>,
    origin: Option<String>,
    pub(crate) access: &'a dyn Access,
    /// The audit event committed with the transaction's writes.
    pub(crate) audit: AuditRecord,
    /// Set when the event was committed (the REST layer then records no other).
    pub(crate) audited: Option<&'a std::cell::Cell<bool>>,
    /// System data was written (the transaction is audited like a write).
    kv_written: bool,
    /// See [`Tx::audit_reads`].
    audit_reads: bool,
    /// See [`Tx::vouch`].
    vouched: std::collections::BTreeSet<String>,
}

/// The outcome of [`Tx::save`].
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub id: String,
    pub version: i64,
    /// Whether the save created the resource (or revived a deleted one).
    pub created: bool,
    /// The resource as stored (with `id` and `meta`).
    pub resource: Value,
}

impl<'a> Tx<'a> {
    pub(crate) fn begin(svc: &'a FhirService, access: &'a dyn Access) -> R<Tx<'a>> {
        // Issue 22: the operator's downtime switch, read outside the
        // transaction (at most once a second).
        svc.refresh_downtime_if_stale();
        Ok(Tx {
            access,
            audit: AuditRecord::rest("transaction", "E"),
            audited: None,
            kv_written: false,
            audit_reads: false,
            svc,
            rec: Recording {
                inner: svc.store().begin()?,
                hooks: &svc.hooks,
                recording: true,
                changes: Vec::new(),
                positions: HashMap::new(),
                written: Vec::new(),
                written_set: Default::default(),
            },
            origin: None,
            vouched: Default::default(),
        })
    }

    /// Names the interaction in the audit event (default `transaction`,
    /// action `E`); e.g. an HL7 v2 engine names the message type.
    pub fn set_audit_subtype(&mut self, system: &'static str, code: &str, action: &'static str) {
        self.audit.subtype = (system, code.to_owned());
        self.audit.action = action;
    }

    /// Commits the audit event even if the transaction writes nothing: for a
    /// workflow whose reads are the point (a preview shown to a person).
    /// Without it a read-only transaction leaves no event, so that the
    /// system's own polling (the HL7 outbox) does not fill the trail.
    pub fn audit_reads(&mut self) {
        self.audit_reads = true;
    }

    /// The audit event this transaction will commit (to name the patient,
    /// a break-glass reason or the event type of a workflow's action).
    pub fn audit_record(&mut self) -> &mut AuditRecord {
        &mut self.audit
    }

    /// Writes system key-value data (not FHIR: credentials, grants) in this
    /// transaction.
    pub fn kv_put(&mut self, namespace: &str, key: &str, value: &str) -> R<()> {
        self.rec.inner.kv_put(namespace, key, value)?;
        self.kv_written = true;
        Ok(())
    }

    /// Reads system key-value data in this transaction (its own
    /// [`Tx::kv_put`]s included). Under a [`Tx::lock`] every writer of the
    /// entry takes, the value is the latest committed: how a counter is kept.
    pub fn kv_get(&mut self, namespace: &str, key: &str) -> R<Option<String>> {
        Ok(self.rec.inner.kv_get(namespace, key)?)
    }

    /// Locks the records a rule is about (`Location/b1`, `Patient/p1`, an
    /// identifier) until this transaction ends, in the database, so that two
    /// transactions deciding on the same bed or patient — from any channel
    /// and any server on the same database — run one after the other, the
    /// second seeing what the first committed. Lock before reading what the
    /// rule decides on. The keys are sorted and deduplicated, so callers
    /// that lock everything at once never wait for each other in a circle;
    /// a deadlock between incremental lockers fails one transaction with a
    /// 409 (try it again). See [`wardline_store::StoreTx::lock`].
    pub fn lock<S: AsRef<str>>(&mut self, keys: &[S]) -> R<()> {
        let mut keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(self.rec.inner.lock(&keys)?)
    }

    pub(crate) fn service(&self) -> &'a FhirService {
        self.svc
    }

    /// The trust's local time zone (the service's), for rules that read
    /// wall-clock times (a drug round's dose times).
    /// The trust's own `Organization` id ([`FhirService::trust_organization`]).
    pub fn trust_organization(&self) -> Option<&str> {
        self.service().trust_organization()
    }

    /// Now on the service's clinical clock ([`crate::clock`]).
    pub fn now_ms(&self) -> i64 {
        self.service().now_ms()
    }

    pub fn time_zone(&self) -> &wardline_fhir::datetime::LocalZone {
        self.svc.time_zone()
    }

    /// The requester this transaction acts for.
    pub fn access(&self) -> &dyn Access {
        self.access
    }

    /// Checks a read inside the transaction and notes it for the audit event.
    pub(crate) fn check_read(&mut self, r: &StoredResource) -> R<()> {
        if self.access.restricted() {
            let view = ResourceView {
                resource_type: &r.resource_type,
                id: &r.id,
                patient: r.patient_key.as_deref(),
                json: &r.json,
                traced: false,
            };
            self.access.check_resource(Op::Read, &view, &self.rec)?;
        }
        self.touch(&r.resource_type, &r.id, r.patient_key.as_deref());
        Ok(())
    }

    /// Checks a write (the new content, and the current version it replaces)
    /// and notes it for the audit event. Hooks' own writes are not checked:
    /// they are the system's consequences of a permitted change.
    pub(crate) fn check_write(
        &mut self,
        op: Op,
        new: Option<ResourceView<'_>>,
        current: Option<&StoredResource>,
    ) -> R<()> {
        if !self.rec.recording {
            return Ok(());
        }
        if self.access.restricted() {
            if let Some(c) = current.filter(|c| !c.deleted) {
                let view = ResourceView {
                    resource_type: &c.resource_type,
                    id: &c.id,
                    patient: c.patient_key.as_deref(),
                    json: &c.json,
                    traced: false,
                };
                self.access.check_resource(op, &view, &self.rec)?;
            }
            if let Some(n) = &new {
                self.access.check_resource(op, n, &self.rec)?;
            }
        }
        let (t, id, patient) = match (&new, current) {
            (Some(n), _) => (n.resource_type, n.id, n.patient),
            (None, Some(c)) => (
                c.resource_type.as_str(),
                c.id.as_str(),
                c.patient_key.as_deref(),
            ),
            (None, None) => return Ok(()),
        };
        let (t, id, patient) = (t.to_owned(), id.to_owned(), patient.map(str::to_owned));
        self.touch(&t, &id, patient.as_deref());
        Ok(())
    }

    fn touch(&mut self, t: &str, id: &str, patient: Option<&str>) {
        self.audit.touch(t, id, patient);
        if let Some(p) = patient
            && self.audit.break_glass.is_none()
        {
            self.audit.break_glass = self.access.break_glass(p);
        }
    }

    pub(crate) fn write(&mut self, w: ResourceWrite) -> wardline_store::Result<()> {
        self.rec.write(w)
    }

    /// Names the system a change came from (e.g. the HL7 sending
    /// application), so that hooks can avoid echoing it back.
    pub fn set_origin(&mut self, origin: impl Into<String>) {
        self.origin = Some(origin.into());
    }

    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Records that a workflow, in this process and this transaction,
    /// checked something a [`WriteRule`](crate::WriteRule) cannot check
    /// from the record alone — a second person's own sign-in, say — so the
    /// rule may let a write through that it would refuse from any other
    /// channel ([`RuleTx::vouched`](crate::RuleTx::vouched)). Nothing a
    /// client sends can set it: it lives only in this transaction.
    pub fn vouch(&mut self, key: impl Into<String>) {
        self.vouched.insert(key.into());
    }

    /// Whether [`Tx::vouch`] was called with `key` in this transaction.
    pub fn vouched(&self, key: &str) -> bool {
        self.vouched.contains(key)
    }

    /// Every resource written so far in this transaction, as `(type, id)`, in
    /// first-write order.
    pub fn written(&self) -> &[(String, String)] {
        &self.rec.written
    }

    /// The current, non-deleted resource.
    pub fn get(&mut self, t: &str, id: &str) -> R<Option<Value>> {
        match self.rec.read(t, id)? {
            Some(r) if !r.deleted => {
                self.check_read(&r)?;
                serde_json::from_str(&r.json)
                    .map(Some)
                    .map_err(|e| FhirError::internal(format!("stored {t}/{id} unreadable: {e}")))
            }
            _ => Ok(None),
        }
    }

    /// An earlier version of a resource (as committed; versions are never
    /// changed), checked and audited like [`Tx::get`]. `None` when there is
    /// no such version or it is a deletion.
    pub fn vread(&mut self, t: &str, id: &str, version: i64) -> R<Option<Value>> {
        match Reader::vread(&self.rec, t, id, version)? {
            Some(r) if !r.deleted => {
                self.check_read(&r)?;
                serde_json::from_str(&r.json).map(Some).map_err(|e| {
                    FhirError::internal(format!(
                        "stored {t}/{id}/_history/{version} unreadable: {e}"
                    ))
                })
            }
            _ => Ok(None),
        }
    }

    /// Resources of type `t` matching a FHIR search query string, in the
    /// default order (creation order) or the query's `_sort`: every match,
    /// read page by page (the service's maximum page size) within one
    /// snapshot, so a rule or a list is never silently cut short. An
    /// explicit `_count` is the caller's limit: that many at most.
    pub fn find(&mut self, t: &str, query: &str) -> R<Vec<Value>> {
        let q = self.svc.parse_criteria(t, query)?;
        let max = self.svc.config().max_count.max(1);
        let limited = q.count.is_some();
        let mut page = PageRequest {
            count: q.count.unwrap_or(max).min(max),
            ..PageRequest::default()
        };
        let mut out = Vec::new();
        loop {
            let found = self.rec.search(&q, &page)?;
            let n = found.resources.len();
            let last = found.resources.last().map(|r| r.rid);
            for r in found.resources {
                self.check_read(&r)?;
                out.push(serde_json::from_str(&r.json).map_err(|e| {
                    FhirError::internal(format!("stored {t}/{} unreadable: {e}", r.id))
                })?);
            }
            if limited || !found.has_more || n == 0 {
                break;
            }
            page.snapshot_rid = Some(found.snapshot_rid);
            if q.sort.is_empty() {
                page.after_rid = last;
            } else {
                page.offset += n;
            }
        }
        Ok(out)
    }

    /// Validates, stamps, indexes and writes `resource`: created with a new id
    /// when it has none, otherwise created or updated under its id.
    pub fn save(&mut self, mut resource: Value) -> R<Saved> {
        let t = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or_else(|| FhirError::new(400, "required", "resourceType is missing"))?
            .to_owned();
        let (id, fresh) = match resource.get("id").and_then(Value::as_str) {
            Some(id) => (id.to_owned(), Fresh::Check(None)),
            None => (new_id(), Fresh::NewId),
        };
        let svc = self.svc;
        let w = svc.prepare_write(self, &t, &id, &mut resource, fresh, "")?;
        Ok(Saved {
            id: w.id,
            version: w.version,
            created: w.status == 201,
            resource,
        })
    }

    /// Deletes (tombstones) a resource; deleting a missing one does nothing.
    pub fn delete(&mut self, t: &str, id: &str) -> R<()> {
        let svc = self.svc;
        svc.delete_in(self, t, id)
    }

    /// Runs the hooks over the recorded changes, then commits durably.
    pub fn commit(mut self) -> R<()> {
        let changes = std::mem::take(&mut self.rec.changes);
        self.rec.positions.clear();
        if !changes.is_empty() {
            self.rec.recording = false;
            let hooks = self.rec.hooks;
            for h in hooks {
                let mine: Vec<Change> = changes
                    .iter()
                    .filter(|c| h.watches(&c.resource_type))
                    .cloned()
                    .collect();
                if !mine.is_empty() {
                    h.before_commit(&mut self, &mine)?;
                }
            }
        }
        let touched = !self.rec.written.is_empty() || self.kv_written || self.audit_reads;
        if touched && self.svc.audit_enabled() {
            let row = self
                .audit
                .to_append(self.access.agent(), wardline_fhir::datetime::now_ms());
            self.rec.inner.append_audit(&[row])?;
        }
        let audited = self.audited;
        let wrote = !self.rec.written.is_empty();
        let svc = self.svc;
        if wrote {
            // Issue 22: downtime may have begun while this transaction ran;
            // and other servers' live pages hear of the commit.
            svc.check_writable()?;
            self.rec.inner.announce_change()?;
        }
        Box::new(self.rec)
            .commit()
            .map_err(|e| svc.classify_refusal(e.into()))?;
        if wrote {
            svc.note_change();
            svc.note_write_worked();
        }
        if touched && let Some(a) = audited {
            a.set(true);
        }
        Ok(())
    }
}

impl Reader for Tx<'_> {
    fn read(&self, t: &str, id: &str) -> wardline_store::Result<Option<StoredResource>> {
        self.rec.read(t, id)
    }
    fn read_many(&self, keys: &[(String, String)]) -> wardline_store::Result<Vec<StoredResource>> {
        self.rec.read_many(keys)
    }
    fn search(&self, q: &SearchQuery, p: &PageRequest) -> wardline_store::Result<SearchPage> {
        self.rec.search(q, p)
    }
    fn include(&self, req: &IncludeRequest) -> wardline_store::Result<Vec<StoredResource>> {
        self.rec.include(req)
    }
    fn vread(&self, t: &str, id: &str, v: i64) -> wardline_store::Result<Option<StoredResource>> {
        self.rec.vread(t, id, v)
    }
}

impl FhirService {
    /// Adds a hook that sees every change to the types it watches, in the
    /// transaction that makes it.
    pub fn with_hook(mut self, hook: Arc<dyn WriteHook>) -> FhirService {
        self.hooks.push(hook);
        self
    }

    /// Starts a transaction on behalf of `access` (see the module
    /// documentation): its reads and writes are checked, and its writes are
    /// audited in it.
    pub fn begin<'a>(&'a self, access: &'a dyn Access) -> R<Tx<'a>> {
        Tx::begin(self, access)
    }

    /// Runs `f` in one transaction and commits when it returns `Ok`.
    pub fn transact<T>(&self, access: &dyn Access, f: impl FnOnce(&mut Tx<'_>) -> R<T>) -> R<T> {
        let mut tx = self.begin(access)?;
        let out = f(&mut tx).map_err(|e| self.classify_refusal(e))?;
        tx.commit()?;
        Ok(out)
    }
}
