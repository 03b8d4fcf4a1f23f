//! Transport-free FHIR service: interactions, conditional logic, bundles,
//! paging, CapabilityStatement.
//!
//! [`FhirService::handle`] takes a [`FhirRequest`] (method, path below the FHIR
//! base, query pairs, the headers that matter, body) and returns a
//! [`FhirResponse`]. The HTTP layer only translates; everything that makes an
//! interaction correct is here, once:
//!
//! * every write is parsed, validated ([`Definitions::validate`]), stamped with
//!   `id`/`meta`, indexed ([`Definitions::extract_index`]) and written through one
//!   [`StoreTx`]; the response is built only after [`StoreTx::commit`] returned;
//! * transactions run in one store transaction; batches entry by entry;
//! * paging links are absolute and pinned to a snapshot (see `search`).
//!
//! Where things are: `route` maps paths to interactions, `reads` (read,
//! vread, history, search, `$everything`, the audit trail) and `writes`
//! (create, update, patch, delete, conditional interactions, the one write
//! path) answer them, `bundle` runs transactions and batches, [`operation`]
//! is the operations table, [`txn`] the service-level transaction, [`rules`]
//! the refusals registered from above that every write passes, `records`
//! the typed record API for code above the core (and [`BulkReader`], the
//! population-level read of bulk extracts), [`access`] the gate, [`audit`]
//! the trail, [`consent`] the patients' decisions, [`reindex`] the index
//! kept in the format (and the trust's time zone) this service writes.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod access;
pub mod audit;
mod bundle;
mod capability;
pub mod clock;
pub mod consent;
pub mod downtime;
pub mod limits;
pub mod operation;
mod reads;
mod records;
pub mod reindex;
mod route;
pub mod rules;
mod search;
pub mod txn;
mod writes;

pub use access::{Access, Agent, AgentKind, Op, Operation, ResourceView, Trusted};
pub use operation::{Level, OperationHandler, OperationRequest, OperationSpec, OperationUrl};
pub use records::{BulkEntry, BulkPage, BulkReader, BulkScan, Found, Reads};
pub use rules::{ProposedWrite, RuleTx, WriteRule};
pub use txn::{Change, Saved, Tx, WriteHook};

use std::sync::Arc;

use serde_json::{Value, json};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::{LocalZone, now_ms};
use wardline_fhir::definitions::{Definitions, r4};
use wardline_fhir::search::Handling;
use wardline_store::{Reader, Store, StoredResource};

pub struct ServiceConfig {
    /// Absolute base URL of the FHIR endpoint, without a trailing slash.
    pub base_url: String,
    pub default_count: usize,
    pub max_count: usize,
    /// At most this many `_include`d / `_revinclude`d resources per page (a
    /// warning in the Bundle says when more existed).
    pub max_include: usize,
    /// The SMART on FHIR OAuth endpoints, when the server offers them (the
    /// CapabilityStatement then carries a SMART `security` element).
    pub oauth: Option<OAuthUris>,
    /// The trust's local time zone: date values without a time-zone offset
    /// (a date of birth, `birthdate=2024-07-01`) are read in it, in the index
    /// and in searches alike (see `wardline_fhir::datetime`). The index is
    /// built in it: [`FhirService::reindex_if_needed`] rebuilds the index of
    /// a database built in another.
    pub time_zone: LocalZone,
    /// Bounded work per request: the size of one resource, the breadth of
    /// one search ([`limits`]).
    pub limits: limits::Limits,
}

/// Absolute URLs of the OAuth 2.0 authorization and token endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthUris {
    pub authorize: String,
    pub token: String,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            base_url: "http://127.0.0.1:8080/fhir".into(),
            default_count: 20,
            max_count: 1000,
            max_include: 2000,
            oauth: None,
            time_zone: LocalZone::default(),
            limits: limits::Limits::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

pub struct FhirRequest {
    pub method: Method,
    /// Path below the FHIR base, split and percent-decoded.
    pub path: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: RequestHeaders,
    pub body: Option<Vec<u8>>,
}

#[derive(Default, Clone)]
pub struct RequestHeaders {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_none_exist: Option<String>,
    pub if_modified_since: Option<String>,
    pub prefer_return: Option<PreferReturn>,
    pub prefer_handling: Handling,
    /// `Prefer: respond-async`.
    pub prefer_async: bool,
    pub content_type: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreferReturn {
    Minimal,
    Representation,
    OperationOutcome,
}

#[derive(Debug)]
pub enum Body {
    None,
    Json(Value),
    /// Stored JSON text served as-is.
    Raw(String),
    /// A file streamed from disk (bulk export output).
    File {
        path: std::path::PathBuf,
        content_type: &'static str,
    },
}

#[derive(Debug)]
pub struct FhirResponse {
    pub status: u16,
    pub body: Body,
    pub etag: Option<String>,
    pub last_modified_ms: Option<i64>,
    pub location: Option<String>,
    pub content_location: Option<String>,
    /// Further response headers (`Retry-After`, `X-Progress`, `Expires`).
    pub headers: Vec<(&'static str, String)>,
}

impl FhirResponse {
    pub fn json(status: u16, v: Value) -> FhirResponse {
        FhirResponse {
            status,
            body: Body::Json(v),
            etag: None,
            last_modified_ms: None,
            location: None,
            content_location: None,
            headers: Vec::new(),
        }
    }

    /// A body that is already JSON text.
    pub fn raw(status: u16, text: String) -> FhirResponse {
        FhirResponse {
            body: Body::Raw(text),
            ..FhirResponse::no_content()
        }
        .with_status(status)
    }

    fn with_status(mut self, status: u16) -> FhirResponse {
        self.status = status;
        self
    }

    /// 204 with no body (deletions).
    pub fn no_content() -> FhirResponse {
        FhirResponse {
            status: 204,
            body: Body::None,
            etag: None,
            last_modified_ms: None,
            location: None,
            content_location: None,
            headers: Vec::new(),
        }
    }

    pub fn error(e: &FhirError) -> FhirResponse {
        let mut r = FhirResponse::json(e.status, e.to_operation_outcome());
        if e.is_downtime() {
            // Issue 22: downtime lasts minutes, not seconds.
            r.headers.push(("retry-after", "60".into()));
        } else if e.status == 503 {
            r.headers.push(("retry-after", "5".into()));
        }
        r
    }
}

type R<T> = Result<T, FhirError>;

/// The canonical URL of `Patient/[id]/$everything`'s OperationDefinition.
pub const EVERYTHING_DEFINITION: &str =
    "http://hl7.org/fhir/OperationDefinition/Patient-everything";

/// System key-value data: what Wardline keeps beside the FHIR record and
/// that is not FHIR (credentials, the token signing key, SMART clients,
/// sessions, sign-ins in progress, authorization codes). Entries are text
/// values under a `namespace` and a `key`; each call is its own durable
/// transaction (a write inside a FHIR transaction is `Tx::kv_put`). Nothing
/// here is audited or access-checked: callers are the access machinery
/// itself, and never put patient data here.
///
/// Obtained from [`FhirService::system_data`]; the narrow alternative to
/// [`FhirService::store`] for crates that need only this.
#[derive(Clone, Copy)]
pub struct SystemData<'a> {
    store: &'a dyn Store,
}

impl SystemData<'_> {
    /// The value under `namespace`/`key`, if any.
    pub fn get(&self, namespace: &str, key: &str) -> R<Option<String>> {
        Ok(self.store.kv_get(namespace, key)?)
    }

    /// The entries of `namespace` whose key starts with `prefix` (plain
    /// text, no wildcards), in key order.
    pub fn list(&self, namespace: &str, prefix: &str) -> R<Vec<(String, String)>> {
        Ok(self.store.kv_list(namespace, prefix)?)
    }

    /// Inserts or replaces, durably.
    pub fn put(&self, namespace: &str, key: &str, value: &str) -> R<()> {
        Ok(self.store.kv_put(namespace, key, value)?)
    }

    /// Deletes; returns whether the entry existed (so that of two callers
    /// deleting the same entry, exactly one sees `true`: one-use codes).
    pub fn delete(&self, namespace: &str, key: &str) -> R<bool> {
        Ok(self.store.kv_delete(namespace, key)?)
    }
}

pub struct FhirService {
    store: Arc<dyn Store>,
    defs: &'static Definitions,
    config: ServiceConfig,
    hooks: Vec<Arc<dyn WriteHook>>,
    rules: Vec<Arc<dyn WriteRule>>,
    operations: operation::Operations,
    audit_sink: std::sync::OnceLock<audit::AuditSink>,
    audit_enabled: bool,
    /// Commits that wrote resources (see [`FhirService::change_count`]).
    changes: std::sync::atomic::AtomicU64,
    /// The clinical clock ([`clock`]).
    clock: clock::Clock,
    /// Id of the trust's own `Organization` ([`FhirService::with_trust_organization`]).
    trust_organization: Option<String>,
    /// Issue 22: read-only downtime ([`downtime`]).
    downtime: downtime::State,
    /// Issue 22: commits other servers on the same database announced
    /// ([`FhirService::follow_other_servers`]).
    remote_changes: Arc<std::sync::atomic::AtomicU64>,
}

/// One interaction in progress: who asks, and the audit event it will leave.
pub(crate) struct Ctx<'a> {
    pub access: &'a dyn Access,
    pub record: std::cell::RefCell<audit::AuditRecord>,
    /// Set by a transaction that committed the event with its writes.
    pub audited: std::cell::Cell<bool>,
}

impl<'a> Ctx<'a> {
    fn new(access: &'a dyn Access) -> Ctx<'a> {
        Ctx {
            access,
            record: std::cell::RefCell::new(audit::AuditRecord::rest("operation", "E")),
            audited: std::cell::Cell::new(false),
        }
    }

    /// Names the interaction and checks the type-level permission.
    fn start(&self, subtype: &str, op: Op, t: Option<&str>) -> R<()> {
        {
            let mut r = self.record.borrow_mut();
            r.subtype.1 = subtype.to_owned();
            r.action = op.audit_action();
        }
        self.access.check_type(op, t)
    }

    fn name(&self, subtype: &str, action: &'static str) {
        let mut r = self.record.borrow_mut();
        r.subtype.1 = subtype.to_owned();
        r.action = action;
    }

    /// Checks that a resource may leave, and notes it for the audit event.
    pub(crate) fn check_out(&self, op: Op, r: &StoredResource, reader: &dyn Reader) -> R<()> {
        self.check_out_found(op, r, reader, false)
    }

    /// [`Ctx::check_out`] for a search match, saying whether the search was
    /// an exact patient trace ([`access::is_trace`]).
    /// The policy's decision on `r` for `op`, recording nothing: allowed
    /// for an unrestricted requester and for a deleted resource (what
    /// [`Ctx::check_out_found`] and [`Ctx::may_see`] both ask).
    fn policy_on(&self, op: Op, r: &StoredResource, reader: &dyn Reader, traced: bool) -> R<()> {
        if !self.access.restricted() || r.deleted {
            return Ok(());
        }
        let view = ResourceView {
            resource_type: &r.resource_type,
            id: &r.id,
            patient: r.patient_key.as_deref(),
            json: &r.json,
            traced,
        };
        self.access.check_resource(op, &view, reader)
    }

    /// Whether the policy lets the requester see `r` (as
    /// [`Ctx::check_out_found`] decides), without recording anything.
    pub(crate) fn may_see(
        &self,
        op: Op,
        r: &StoredResource,
        reader: &dyn Reader,
        traced: bool,
    ) -> bool {
        self.policy_on(op, r, reader, traced).is_ok()
    }

    pub(crate) fn check_out_found(
        &self,
        op: Op,
        r: &StoredResource,
        reader: &dyn Reader,
        traced: bool,
    ) -> R<()> {
        if let Err(e) = self.policy_on(op, r, reader, traced) {
            // A refused single read names what was asked for, so that
            // `AuditEvent?patient=…` finds attempted access too.
            if op == Op::Read {
                self.record
                    .borrow_mut()
                    .touch(&r.resource_type, &r.id, r.patient_key.as_deref());
            }
            return Err(e);
        }
        let mut rec = self.record.borrow_mut();
        rec.touch(&r.resource_type, &r.id, r.patient_key.as_deref());
        if let Some(p) = r.patient_key.as_deref()
            && rec.break_glass.is_none()
        {
            rec.break_glass = self.access.break_glass(p);
        }
        Ok(())
    }
}

/// The outcome of one write, used for responses and transaction entries.
pub(crate) struct Written {
    pub status: u16,
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated_ms: i64,
    pub json: String,
    /// The content equalled the current version's: nothing was written.
    pub unchanged: bool,
}

impl FhirService {
    pub fn new(store: Arc<dyn Store>, config: ServiceConfig) -> FhirService {
        let mut operations = operation::Operations::default();
        operations.add(
            OperationSpec::instance(
                "Patient",
                "everything",
                EVERYTHING_DEFINITION,
                FhirService::everything,
            )
            .with_get()
            .audited_by_interaction(),
        );
        FhirService {
            store,
            defs: r4(),
            config,
            hooks: Vec::new(),
            rules: Vec::new(),
            operations,
            audit_sink: std::sync::OnceLock::new(),
            audit_enabled: true,
            changes: std::sync::atomic::AtomicU64::new(0),
            clock: clock::Clock::system(),
            trust_organization: None,
            downtime: downtime::State::default(),
            remote_changes: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// Names the trust's own `Organization` (its id): the owner of last
    /// resort of work that nobody nearer owns, e.g. a NEWS2 escalation for a
    /// patient with no ward, team, GP practice or managing organisation.
    pub fn with_trust_organization(mut self, id: impl Into<String>) -> FhirService {
        self.trust_organization = Some(id.into());
        self
    }

    /// The trust's own `Organization` id, when the composition root named it.
    pub fn trust_organization(&self) -> Option<&str> {
        self.trust_organization.as_deref()
    }

    /// Uses `clock` as the clinical clock ([`clock`]; the system clock by
    /// default).
    pub fn with_clock(mut self, clock: clock::Clock) -> FhirService {
        self.clock = clock;
        self
    }

    /// Now on the clinical clock ([`clock`]): what the domain services, the
    /// pages and the background jobs take as the time.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// [`FhirService::now`] in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// How many transactions that wrote resources have committed since the
    /// service started, whatever the path (REST interaction, transaction
    /// Bundle, a workflow's or the HL7 v2 engine's [`Tx`]). It only grows,
    /// and grows after the commit is durable, so a live page that saw `n`
    /// and now sees more knows the record changed and should refresh. It
    /// counts this process's commits, and once
    /// [`FhirService::follow_other_servers`] is on (PostgreSQL), the commits
    /// every server on the same database announces (this one's included, so
    /// a local commit may count twice: the count only ever says "changed").
    pub fn change_count(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
            + self
                .remote_changes
                .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Issue 22: live pages across servers. Asks the store to report the
    /// commits any server on the same database announces (PostgreSQL:
    /// `LISTEN`; each writing transaction `NOTIFY`s in its commit), counted
    /// into [`FhirService::change_count`]. Whether the store can (SQLite is
    /// one process: `false`).
    pub fn follow_other_servers(&self) -> R<bool> {
        let remote = self.remote_changes.clone();
        Ok(self.store.watch_changes(Box::new(move || {
            remote.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }))?)
    }

    pub(crate) fn note_change(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Turns the audit trail off. For benchmarks that measure what auditing
    /// costs (`wardline-bench … --audit off`) only: the server never runs
    /// without it.
    pub fn without_audit_for_benchmark(mut self) -> FhirService {
        self.audit_enabled = false;
        self
    }

    pub(crate) fn audit_enabled(&self) -> bool {
        self.audit_enabled
    }

    /// Records audit events outside any write transaction (reads, refusals,
    /// logins), returning once they are durable.
    pub fn record_audit(&self, agent: &Agent, records: &[audit::AuditRecord]) -> R<()> {
        if !self.audit_enabled || records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let rows = records.iter().map(|r| r.to_append(agent, now)).collect();
        self.audit_sink
            .get_or_init(|| audit::AuditSink::start(self.store.clone()))
            .record(rows)
    }

    /// The whole store: for the core and the composition roots (the
    /// `wardline` binary, `wardline-bench`) only — a tidy test holds every
    /// other crate to the narrow accessors: the typed record API
    /// (`read_as`, `search_as`, `system_reader`, `bulk_reader`), a `Tx`,
    /// [`FhirService::system_data`], [`FhirService::backend`] and
    /// [`FhirService::health_check`].
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The store's reads, inside the core. Above it: [`FhirService::system_reader`].
    pub(crate) fn reader(&self) -> &dyn Reader {
        &*self.store
    }

    /// The system key-value data kept beside the FHIR record (credentials,
    /// keys, sessions, sign-ins in progress): see [`SystemData`].
    pub fn system_data(&self) -> SystemData<'_> {
        SystemData {
            store: &*self.store,
        }
    }

    /// The storage backend's name (`sqlite`, `postgres`), for `/healthz`
    /// and `/metrics`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Whether the store answers: one primary-key read (of a resource that
    /// does not exist), so it costs one round trip and reads nothing.
    pub fn health_check(&self) -> R<()> {
        self.store.read("Patient", "-healthz-")?;
        Ok(())
    }

    /// Audit retention: removes the audit rows recorded before `before_ms`
    /// (never the newest) and moves the chain's anchor, so the rest still
    /// verifies; returns how many went. For the retention job, which holds
    /// the service, not the store.
    pub fn purge_audit_before(&self, before_ms: i64) -> R<u64> {
        Ok(self.store.purge_audit(before_ms)?)
    }

    /// The audit chain's head (newest `seq` and hash) and the anchor of the
    /// last purge: what `serve --audit-key` checkpoints outside the
    /// database (issue 22: audit anchor).
    pub fn audit_head(
        &self,
    ) -> R<(
        wardline_store::audit::AuditAnchor,
        Option<wardline_store::audit::AuditAnchor>,
    )> {
        Ok((self.store.audit_head()?, self.store.audit_anchor()?))
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The trust's local time zone (see [`ServiceConfig::time_zone`]).
    pub fn time_zone(&self) -> &LocalZone {
        &self.config.time_zone
    }

    pub fn capability_statement(&self) -> Value {
        capability::statement(
            self.defs,
            &self.config.base_url,
            self.config.oauth.as_ref(),
            &self.operations,
        )
    }

    /// Registers an operation in the operations table, replacing one of the
    /// same level and name (see [`operation`]).
    pub fn with_operation(mut self, spec: OperationSpec) -> FhirService {
        self.operations.add(spec);
        self
    }

    /// Registers a URL an operation hands out (see [`operation`]),
    /// replacing one of the same name and number of segments.
    pub fn with_operation_url(mut self, url: OperationUrl) -> FhirService {
        self.operations.add_url(url);
        self
    }

    /// The operations table: every operation the service answers.
    pub fn operations(&self) -> impl Iterator<Item = &OperationSpec> {
        self.operations.iter()
    }

    /// Runs one interaction for `access`: checks it, runs it, audits it.
    pub fn handle(&self, req: FhirRequest, access: &dyn Access) -> FhirResponse {
        let query = (!req.query.is_empty()).then(|| query_string(&req.query));
        let result = self.interaction(access, !is_unaudited(&req), query, |cx| {
            self.route(&req, cx).map(|r| {
                let status = r.status;
                (r, status)
            })
        });
        match result {
            Ok(r) => r,
            Err(e) => {
                let e = self.classify_refusal(e);
                if !e.is_client_error() && !e.is_downtime() {
                    tracing::error!(status = e.status, error = %e, "request failed");
                }
                FhirResponse::error(&e)
            }
        }
    }

    /// One interaction for `access`: `f` runs it, and unless a transaction
    /// of it already committed the event (or `audited` is false), its audit
    /// event is recorded with its status, reason and (for a read) `query`
    /// before the result is returned: every channel (REST through
    /// [`FhirService::handle`], code through `read_as` / `search_as`) is
    /// audited the same way. If the event cannot be recorded the result is
    /// withheld and the error returned.
    pub(crate) fn interaction<T>(
        &self,
        access: &dyn Access,
        audited: bool,
        query: Option<String>,
        f: impl FnOnce(&Ctx<'_>) -> R<(T, u16)>,
    ) -> R<T> {
        self.interaction_into(access, audited, query, None, f)
    }

    /// [`FhirService::interaction`], its audit event kept in `deferred`
    /// (when given) for the caller to commit with others
    /// ([`FhirService::reads_as`]) instead of committed on its own.
    pub(crate) fn interaction_into<T>(
        &self,
        access: &dyn Access,
        audited: bool,
        query: Option<String>,
        deferred: Option<&std::cell::RefCell<Vec<audit::AuditRecord>>>,
        f: impl FnOnce(&Ctx<'_>) -> R<(T, u16)>,
    ) -> R<T> {
        let cx = Ctx::new(access);
        let result = f(&cx);
        let (status, desc) = match &result {
            Ok((_, s)) => (*s, None),
            Err(e) => (e.status, Some(e.to_string())),
        };
        if audited && !cx.audited.get() {
            let mut rec = cx.record.into_inner();
            rec.set_status(status, desc);
            if rec.action == "R" {
                rec.query = query;
            }
            match deferred {
                Some(d) => d.borrow_mut().push(rec),
                None => {
                    if let Err(e) = self.record_audit(access.agent(), &[rec]) {
                        if let Err(refused) = result {
                            // Nothing is served, so nothing is withheld: the
                            // client is told why it was refused (e.g. that
                            // nothing was stored, or that a commit's outcome
                            // is unknown) rather than that the audit failed,
                            // which would hide what it needs to know. The
                            // refusal, which holds no patient data, is logged.
                            tracing::error!(error = %e, status = refused.status, refusal = %refused, "a refusal could not be audited");
                            return Err(refused);
                        }
                        tracing::error!(error = %e, "audit failed; the response is withheld");
                        return Err(e);
                    }
                }
            }
        }
        result.map(|(v, _)| v)
    }

    /// A transaction whose commit records the interaction's audit event.
    fn begin_in<'a>(&'a self, cx: &'a Ctx<'a>) -> R<Tx<'a>> {
        let mut tx = Tx::begin(self, cx.access)?;
        tx.audit = cx.record.borrow().clone();
        tx.audited = Some(&cx.audited);
        Ok(tx)
    }

    fn check_type(&self, t: &str) -> R<()> {
        if self.defs.is_resource_type(t) {
            Ok(())
        } else {
            Err(FhirError::new(
                404,
                "not-supported",
                format!("'{t}' is not a FHIR R4 resource type"),
            ))
        }
    }

    pub(crate) fn defs(&self) -> &'static Definitions {
        self.defs
    }
}

/// Whether a write needs to look up the current version first.
#[derive(Clone, Copy)]
pub(crate) enum Fresh {
    /// A server-generated id: the resource cannot exist yet.
    NewId,
    /// Read the current version; with `Some(v)`, it must be `v` (If-Match).
    Check(Option<i64>),
}

/// Interactions that touch no record and leave no audit event.
fn is_unaudited(req: &FhirRequest) -> bool {
    req.path.len() == 1 && req.path[0] == "metadata"
}

/// The search Bundle entry saying how many resources were withheld.
pub(crate) fn withheld_entry(n: usize) -> Value {
    json!({
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "information",
                "code": "suppressed",
                "diagnostics": format!(
                    "{n} resource(s) matched but are not shown: you have no legitimate relationship with the patient, the patient has not consented to sharing with your organisation, or your access does not cover them"
                ),
            }],
        },
        "search": {"mode": "outcome"},
    })
}

fn method_not_allowed() -> FhirError {
    FhirError::new(405, "not-supported", "that method is not allowed here")
}

fn conflict(e: wardline_store::StoreError, had_if_match: bool) -> FhirError {
    let mut f: FhirError = e.into();
    if had_if_match && f.status == 409 {
        f.status = 412;
    }
    f
}

fn prefix(mut e: FhirError, at: &str) -> FhirError {
    if at.is_empty() {
        return e;
    }
    for i in &mut e.issues {
        if i.expression.is_empty() {
            i.expression.push(at.to_owned());
        } else {
            for x in &mut i.expression {
                // `Patient.name` inside an entry → `Bundle.entry[3].resource.name`
                let rest = x.split_once('.').map_or("", |(_, r)| r);
                *x = if rest.is_empty() {
                    at.to_owned()
                } else {
                    format!("{at}.{rest}")
                };
            }
        }
    }
    e
}

pub(crate) fn existing(r: Option<StoredResource>, t: &str, id: &str) -> R<StoredResource> {
    match r {
        None => Err(FhirError::not_found(format!("{t}/{id} is not known"))),
        Some(r) if r.deleted => Err(FhirError::gone(format!("{t}/{id} has been deleted"))),
        Some(r) => Ok(r),
    }
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

pub fn etag_version(s: &str) -> Option<i64> {
    s.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

/// Whether `id` is a valid FHIR id (1 to 64 of `A-Z a-z 0-9 - .`).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn parse_count(v: &str) -> R<usize> {
    v.parse().map_err(|_| {
        FhirError::invalid(format!("_count '{v}' is not a non-negative integer")).at("_count")
    })
}

fn query_string(q: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q.iter().filter(|(k, _)| k != "_format" && k != "_pretty"))
        .finish()
}

pub(crate) fn url_with(base: &str, path: &str, q: &[(String, String)]) -> String {
    let qs = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q)
        .finish();
    if qs.is_empty() {
        format!("{base}/{path}")
    } else {
        format!("{base}/{path}?{qs}")
    }
}

/// `_summary`/`_elements` on a read.
fn summary_elements(q: &[(String, String)]) -> Option<search::Shape> {
    search::Shape::from_query(q)
}
