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
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod access;
pub mod audit;
mod bundle;
mod capability;
pub mod consent;
pub mod export;
pub mod operation;
mod records;
mod search;
pub mod txn;

pub use access::{Access, Agent, AgentKind, Op, Operation, ResourceView, Trusted};
pub use operation::{Level, OperationHandler, OperationRequest, OperationSpec};
pub use records::Found;
pub use txn::{Change, Saved, Tx, WriteHook};

use std::sync::Arc;

use serde_json::{Map, Value, json};
use wardline_fhir::datetime::{format_instant, now_ms, parse_range};
use wardline_fhir::definitions::{Definitions, r4};
use wardline_fhir::search::Handling;
use wardline_fhir::{FhirError, SearchQuery};
use wardline_store::{
    HistoryRequest, HistoryScope, PageRequest, Reader, ResourceWrite, Store, StoredResource,
    WriteMethod,
};

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
        FhirResponse::json(e.status, e.to_operation_outcome())
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
    exports: Option<Arc<export::ExportJobs>>,
    hooks: Vec<Arc<dyn WriteHook>>,
    operations: operation::Operations,
    audit_sink: std::sync::OnceLock<audit::AuditSink>,
    audit_enabled: bool,
    /// Commits that wrote resources (see [`FhirService::change_count`]).
    changes: std::sync::atomic::AtomicU64,
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
        if self.access.restricted() && !r.deleted {
            let view = ResourceView {
                resource_type: &r.resource_type,
                id: &r.id,
                patient: r.patient_key.as_deref(),
                json: &r.json,
            };
            if let Err(e) = self.access.check_resource(op, &view, reader) {
                // A refused single read names what was asked for, so that
                // `AuditEvent?patient=…` finds attempted access too.
                if op == Op::Read {
                    self.record.borrow_mut().touch(
                        &r.resource_type,
                        &r.id,
                        r.patient_key.as_deref(),
                    );
                }
                return Err(e);
            }
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
            exports: None,
            hooks: Vec::new(),
            operations,
            audit_sink: std::sync::OnceLock::new(),
            audit_enabled: true,
            changes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many transactions that wrote resources have committed since the
    /// service started, whatever the path (REST interaction, transaction
    /// Bundle, a workflow's or the HL7 v2 engine's [`Tx`]). It only grows,
    /// and grows after the commit is durable, so a live page that saw `n`
    /// and now sees more knows the record changed and should refresh. It
    /// counts this process's commits only: another server on the same
    /// database is not seen.
    pub fn change_count(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn note_change(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Turns the audit trail off. For benchmarks that measure what auditing
    /// costs (`wardline bench … --audit off`) only: the server never runs
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

    /// Enables Bulk Data `$export`, keeping jobs and their files under `dir`
    /// (unfinished jobs from a previous run are started again), and
    /// registers the operation at its three levels: `[base]/$export`,
    /// `Patient/$export` and `Group/[id]/$export`.
    pub fn with_exports(mut self, dir: std::path::PathBuf) -> std::io::Result<FhirService> {
        self.exports = Some(export::ExportJobs::start(
            dir,
            self.store.clone(),
            self.defs,
        )?);
        let specs = [
            OperationSpec::system(
                "export",
                export::SYSTEM_DEFINITION,
                |svc: &FhirService, r: &OperationRequest<'_>| {
                    svc.export_kickoff(export::ExportLevel::System, r)
                },
            ),
            OperationSpec::type_level(
                "Patient",
                "export",
                export::PATIENT_DEFINITION,
                |svc: &FhirService, r: &OperationRequest<'_>| {
                    svc.export_kickoff(export::ExportLevel::Patient, r)
                },
            ),
            OperationSpec::instance(
                "Group",
                "export",
                export::GROUP_DEFINITION,
                |svc: &FhirService, r: &OperationRequest<'_>| {
                    let id = r.id().unwrap_or_default().to_owned();
                    svc.export_kickoff(export::ExportLevel::Group(id), r)
                },
            ),
        ];
        for spec in specs {
            self.operations
                .add(spec.with_get().audited_by_interaction());
        }
        Ok(self)
    }

    /// The whole store: for the composition root, operator commands and
    /// the layers that write through their own transactions. Crates that
    /// only need system key-value data, the backend's name or a health
    /// check use [`FhirService::system_data`], [`FhirService::backend`] and
    /// [`FhirService::health_check`] instead.
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

    pub fn config(&self) -> &ServiceConfig {
        &self.config
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

    /// The operations table: every operation the service answers.
    pub fn operations(&self) -> impl Iterator<Item = &OperationSpec> {
        self.operations.iter()
    }

    /// Runs one interaction for `access`: checks it, runs it, audits it.
    pub fn handle(&self, req: FhirRequest, access: &dyn Access) -> FhirResponse {
        let cx = Ctx::new(access);
        let result = self.route(&req, &cx);
        let (status, desc) = match &result {
            Ok(r) => (r.status, None),
            Err(e) => (e.status, Some(e.to_string())),
        };
        if !cx.audited.get() && !is_unaudited(&req) {
            let mut rec = cx.record.into_inner();
            rec.set_status(status, desc);
            if !req.query.is_empty() && rec.action == "R" {
                rec.query = Some(query_string(&req.query));
            }
            if let Err(e) = self.record_audit(access.agent(), &[rec]) {
                tracing::error!(error = %e, "audit failed; the response is withheld");
                return FhirResponse::error(&e);
            }
        }
        match result {
            Ok(r) => r,
            Err(e) => {
                if !e.is_client_error() {
                    tracing::error!(status = e.status, error = %e, "request failed");
                }
                FhirResponse::error(&e)
            }
        }
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

    fn route(&self, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        use Op::*;
        let p: Vec<&str> = req.path.iter().map(String::as_str).collect();
        let m = req.method;
        let get = matches!(m, Method::Get | Method::Head);
        match p.as_slice() {
            [] if m == Method::Post => self.bundle(req, cx),
            [] if get => {
                cx.start("search-system", Search, None)?;
                cx.access.check_operation(Operation::SystemWide)?;
                self.search(None, None, req, cx)
            }
            ["metadata"] if get => Ok(FhirResponse::json(200, self.capability_statement())),
            ["_history"] if get => {
                cx.start("history-system", Read, None)?;
                cx.access.check_operation(Operation::SystemWide)?;
                self.history(HistoryScope::System, req, cx)
            }
            ["_search"] if m == Method::Post => {
                cx.start("search-system", Search, None)?;
                cx.access.check_operation(Operation::SystemWide)?;
                self.search(None, None, req, cx)
            }
            ["$export-poll-status"] if get || m == Method::Delete => {
                cx.name("export-status", "R");
                cx.access.check_operation(Operation::Export)?;
                self.export_status(req)
            }
            ["$export-file", job, file] if get => {
                cx.name("export-file", "R");
                cx.access.check_operation(Operation::Export)?;
                self.export_file(job, file)
            }
            [op] if op.starts_with('$') => self.operation(req, cx, None, None, &op[1..]),
            ["AuditEvent", rest @ ..] => {
                if !get {
                    cx.name("update", "U");
                    return Err(FhirError::new(
                        405,
                        "not-supported",
                        "the audit trail is written by the server only",
                    ));
                }
                cx.start(
                    if rest.is_empty() {
                        "search-type"
                    } else {
                        "read"
                    },
                    Search,
                    Some("AuditEvent"),
                )?;
                cx.access.check_operation(Operation::AuditTrail)?;
                self.audit_trail(rest, req)
            }
            [t] => {
                self.check_type(t)?;
                match m {
                    Method::Get | Method::Head => {
                        cx.start("search-type", Search, Some(t))?;
                        self.search(Some(t), None, req, cx)
                    }
                    Method::Post => {
                        cx.start("create", Create, Some(t))?;
                        self.create(t, req, cx)
                    }
                    Method::Put => {
                        cx.start("update", Update, Some(t))?;
                        self.conditional_update(t, req, cx)
                    }
                    Method::Delete => {
                        cx.start("delete", Delete, Some(t))?;
                        self.conditional_delete(t, req, cx)
                    }
                    Method::Patch => Err(method_not_allowed()),
                }
            }
            [t, "_search"] if m == Method::Post => {
                self.check_type(t)?;
                cx.start("search-type", Search, Some(t))?;
                self.search(Some(t), None, req, cx)
            }
            [t, "_history"] if get => {
                self.check_type(t)?;
                cx.start("history-type", Read, Some(t))?;
                self.history(HistoryScope::Type((*t).into()), req, cx)
            }
            [t, op] if op.starts_with('$') => {
                self.check_type(t)?;
                self.operation(req, cx, Some(t), None, &op[1..])
            }
            [t, id] => {
                self.check_type(t)?;
                match m {
                    Method::Get | Method::Head => {
                        cx.start("read", Read, Some(t))?;
                        self.read(t, id, req, cx)
                    }
                    Method::Put => {
                        cx.start("update", Update, Some(t))?;
                        self.update(t, id, req, cx)
                    }
                    Method::Patch => {
                        cx.start("patch", Update, Some(t))?;
                        self.patch(t, id, req, cx)
                    }
                    Method::Delete => {
                        cx.start("delete", Delete, Some(t))?;
                        self.delete(t, id, cx)
                    }
                    Method::Post => Err(method_not_allowed()),
                }
            }
            [t, id, "_history"] if get => {
                self.check_type(t)?;
                cx.start("history-instance", Read, Some(t))?;
                self.history(HistoryScope::Instance((*t).into(), (*id).into()), req, cx)
            }
            [t, id, "_history", v] if get => {
                self.check_type(t)?;
                cx.start("vread", Read, Some(t))?;
                self.vread(t, id, v, cx)
            }
            [t, id, op] if op.starts_with('$') => {
                self.check_type(t)?;
                self.operation(req, cx, Some(t), Some(id), &op[1..])
            }
            ["Patient", id, ct] if get => {
                if *ct != "*" {
                    self.check_type(ct)?;
                }
                let ct = if *ct == "*" { None } else { Some(*ct) };
                cx.start("search-type", Search, ct)?;
                self.search(ct, Some(("Patient", id)), req, cx)
            }
            _ => Err(FhirError::new(
                404,
                "not-found",
                format!("no FHIR interaction at /{}", req.path.join("/")),
            )),
        }
    }

    /// Runs operation `name` from the operations table: on the system (`t`
    /// None), on type `t`, or on instance `t/id`.
    fn operation(
        &self,
        req: &FhirRequest,
        cx: &Ctx<'_>,
        t: Option<&str>,
        id: Option<&str>,
        name: &str,
    ) -> R<FhirResponse> {
        let Some(spec) = self.operations.find(t, id.is_some(), name) else {
            let on = match (t, id) {
                (None, _) => String::new(),
                (Some(t), None) => format!(" on {t}"),
                (Some(t), Some(id)) => format!(" on {t}/{id}"),
            };
            return Err(FhirError::new(
                404,
                "not-supported",
                format!("there is no operation ${name}{on}"),
            ));
        };
        if !spec.accepts(req.method) {
            return Err(spec.wrong_method(req.method));
        }
        let call = OperationRequest::new(req, t, id, cx);
        let r = spec.handler().invoke(self, &call)?;
        if spec.audit() == operation::Audit::ByOperation {
            // Its transaction recorded the audit event (see `operation`).
            cx.audited.set(true);
        }
        Ok(r)
    }

    // ---- reads -------------------------------------------------------------

    fn read(&self, t: &str, id: &str, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        let r = self.store.read(t, id)?;
        let r = existing(r, t, id)?;
        cx.check_out(Op::Read, &r, self.reader())?;
        if let Some(inm) = &req.headers.if_none_match
            && etag_version(inm) == Some(r.version)
        {
            return Ok(FhirResponse {
                status: 304,
                body: Body::None,
                etag: Some(etag(r.version)),
                last_modified_ms: Some(r.last_updated_ms),
                location: None,
                content_location: None,
                headers: Vec::new(),
            });
        }
        Ok(self.resource_response(200, &r, req))
    }

    fn vread(&self, t: &str, id: &str, v: &str, cx: &Ctx<'_>) -> R<FhirResponse> {
        let version: i64 = v
            .parse()
            .map_err(|_| FhirError::invalid(format!("'{v}' is not a version id")))?;
        let r = self
            .store
            .vread(t, id, version)?
            .ok_or_else(|| FhirError::not_found(format!("{t}/{id}/_history/{v} is not known")))?;
        if r.deleted {
            return Err(FhirError::gone(format!(
                "{t}/{id} version {v} is a deletion"
            )));
        }
        cx.check_out(Op::Read, &r, self.reader())?;
        Ok(FhirResponse {
            status: 200,
            body: Body::Raw(r.json.clone()),
            etag: Some(etag(r.version)),
            last_modified_ms: Some(r.last_updated_ms),
            location: None,
            content_location: None,
            headers: Vec::new(),
        })
    }

    fn resource_response(
        &self,
        status: u16,
        r: &StoredResource,
        req: &FhirRequest,
    ) -> FhirResponse {
        let body = match summary_elements(&req.query) {
            Some(shape) => match serde_json::from_str::<Value>(&r.json) {
                Ok(v) => Body::Json(search::shape_resource(self.defs, v, &shape)),
                Err(_) => Body::Raw(r.json.clone()),
            },
            None => Body::Raw(r.json.clone()),
        };
        FhirResponse {
            status,
            body,
            etag: Some(etag(r.version)),
            last_modified_ms: Some(r.last_updated_ms),
            location: None,
            content_location: None,
            headers: Vec::new(),
        }
    }

    fn history(&self, scope: HistoryScope, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        let mut since = None;
        let mut before_seq = None;
        let mut count = self.config.default_count;
        for (k, v) in &req.query {
            match k.as_str() {
                "_since" => {
                    since = Some(
                        parse_range(v)
                            .ok_or_else(|| {
                                FhirError::invalid(format!("_since '{v}' is not a date"))
                            })?
                            .0,
                    )
                }
                "_count" => count = parse_count(v)?.min(self.config.max_count),
                "_before_seq" => {
                    before_seq = Some(
                        v.parse()
                            .map_err(|_| FhirError::invalid("bad _before_seq"))?,
                    )
                }
                "_format" | "_pretty" => {}
                other => {
                    if req.headers.prefer_handling == Handling::Strict {
                        return Err(FhirError::invalid(format!(
                            "unknown _history parameter '{other}'"
                        ))
                        .at(other.to_owned()));
                    }
                }
            }
        }
        if let HistoryScope::Instance(t, id) = &scope
            && self.store.read(t, id)?.is_none()
        {
            return Err(FhirError::not_found(format!("{t}/{id} is not known")));
        }
        let rows = self.store.history(&HistoryRequest {
            scope: scope.clone(),
            since_ms: since,
            before_ms: None,
            before_seq,
            count: count + 1,
        })?;
        let has_more = rows.len() > count;
        let rows = &rows[..rows.len().min(count)];
        // Versions the requester may not see are left out (and counted).
        let mut withheld = 0usize;
        let mut visible = Vec::with_capacity(rows.len());
        for r in rows {
            match cx.check_out(Op::Read, r, self.reader()) {
                Ok(()) => visible.push(r),
                Err(e) if e.status == 403 => withheld += 1,
                Err(e) => return Err(e),
            }
        }
        let path = match &scope {
            HistoryScope::System => "_history".to_owned(),
            HistoryScope::Type(t) => format!("{t}/_history"),
            HistoryScope::Instance(t, id) => format!("{t}/{id}/_history"),
        };
        let base = &self.config.base_url;
        let mut keep: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != "_before_seq")
            .cloned()
            .collect();
        let mut links = vec![json!({"relation": "self", "url": url_with(base, &path, &req.query)})];
        if has_more && let Some(last) = rows.last() {
            keep.push(("_before_seq".into(), last.seq.to_string()));
            links.push(json!({"relation": "next", "url": url_with(base, &path, &keep)}));
        }
        let mut entries: Vec<Value> = visible
            .iter()
            .map(|r| {
                let full = format!("{base}/{}/{}", r.resource_type, r.id);
                let mut e = json!({
                    "fullUrl": full,
                    "request": {
                        "method": r.method.http_method(),
                        "url": if r.method == WriteMethod::Create { r.resource_type.clone() } else { format!("{}/{}", r.resource_type, r.id) },
                    },
                    "response": {
                        "status": match r.method { WriteMethod::Create => "201 Created", WriteMethod::Update => "200 OK", WriteMethod::Delete => "204 No Content" },
                        "etag": etag(r.version),
                        "lastModified": format_instant(r.last_updated_ms),
                    },
                });
                if !r.deleted
                    && let Ok(v) = serde_json::from_str::<Value>(&r.json)
                {
                    e["resource"] = v;
                }
                e
            })
            .collect();
        if withheld > 0 {
            entries.push(withheld_entry(withheld));
        }
        Ok(FhirResponse::json(
            200,
            json!({
                "resourceType": "Bundle",
                "type": "history",
                "link": links,
                "entry": entries,
            }),
        ))
    }

    fn search(
        &self,
        t: Option<&str>,
        compartment: Option<(&str, &str)>,
        req: &FhirRequest,
        cx: &Ctx<'_>,
    ) -> R<FhirResponse> {
        let mut params = req.query.clone();
        if req.method == Method::Post
            && let Some(body) = &req.body
            && !body.is_empty()
        {
            params.extend(form_urlencoded::parse(body).into_owned());
        }
        let bundle = search::run(
            self,
            cx,
            t,
            compartment,
            &params,
            &req.headers,
            &req.path,
            None,
        )?;
        Ok(FhirResponse::raw(200, bundle))
    }

    fn exports(&self) -> R<&Arc<export::ExportJobs>> {
        self.exports.as_ref().ok_or_else(|| {
            FhirError::new(
                501,
                "not-supported",
                "bulk export is not enabled on this server",
            )
        })
    }

    /// `$export` kick-off: validates, records the job, answers 202 with the
    /// status URL in `Content-Location`.
    fn export_kickoff(
        &self,
        level: export::ExportLevel,
        req: &OperationRequest<'_>,
    ) -> R<FhirResponse> {
        req.cx.name("export", "E");
        req.cx.access.check_operation(Operation::Export)?;
        let jobs = self.exports()?;
        if !req.headers().prefer_async {
            return Err(FhirError::invalid(
                "$export is asynchronous: send 'Prefer: respond-async'",
            ));
        }
        let params = req.primitive_parameters()?;
        if let export::ExportLevel::Group(id) = &level {
            let g = self.store.read("Group", id)?;
            existing(g, "Group", id)?;
        }
        let spec = export::parse_spec(self.defs, level, &params)?;
        let request = url_with(&self.config.base_url, &req.path().join("/"), req.query());
        let id = jobs.submit(&spec, request, wardline_fhir::datetime::now_ms())?;
        let mut r = FhirResponse::no_content();
        r.status = 202;
        r.content_location = Some(format!(
            "{}/$export-poll-status?_jobId={id}",
            self.config.base_url
        ));
        Ok(r)
    }

    fn export_status(&self, req: &FhirRequest) -> R<FhirResponse> {
        let jobs = self.exports()?;
        let id = req
            .query
            .iter()
            .find(|(k, _)| k == "_jobId")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| FhirError::invalid("_jobId is required"))?;
        let unknown = || FhirError::not_found(format!("no export job '{id}'"));
        if req.method == Method::Delete {
            return if jobs.delete(id) {
                let mut r = FhirResponse::no_content();
                r.status = 202;
                Ok(r)
            } else {
                Err(unknown())
            };
        }
        let v = jobs.view(id).ok_or_else(unknown)?;
        match v.status {
            export::JobStatus::Accepted | export::JobStatus::InProgress => {
                let mut r = FhirResponse::no_content();
                r.status = 202;
                r.headers.push((
                    "x-progress",
                    format!("{}: {} resources written", v.status.as_str(), v.progress),
                ));
                r.headers.push(("retry-after", "1".into()));
                Ok(r)
            }
            export::JobStatus::Complete => {
                // The manifest is plain JSON, not a FHIR resource.
                let mut r =
                    FhirResponse::json(200, export::manifest(&self.config.base_url, id, &v));
                r.headers.push(("content-type", "application/json".into()));
                Ok(r)
            }
            export::JobStatus::Failed => Err(FhirError::new(
                500,
                "exception",
                format!(
                    "the export failed: {}",
                    v.error.as_deref().unwrap_or("unknown error")
                ),
            )),
        }
    }

    fn export_file(&self, job: &str, file: &str) -> R<FhirResponse> {
        let path = self
            .exports()?
            .file(job, file)
            .ok_or_else(|| FhirError::not_found(format!("no export file {job}/{file}")))?;
        Ok(FhirResponse {
            status: 200,
            body: Body::File {
                path,
                content_type: "application/fhir+ndjson",
            },
            etag: None,
            last_modified_ms: None,
            location: None,
            content_location: None,
            headers: Vec::new(),
        })
    }

    /// `Patient/[id]/$everything` (`start`, `end`, `_since`, `_type`,
    /// `_count`, paging): the patient, every resource in their compartment,
    /// and the resources those refer to outside any patient's compartment.
    ///
    /// `start` and `end` are the care dates of the specification ("all
    /// records relating to care provided in a certain date range"; without
    /// `start` everything before `end`, without `end` everything after
    /// `start`), taken inclusively to the precision given (`end=2023`
    /// reaches the end of 2023). A resource's care dates are the values of
    /// every date search parameter of its type, except the record-keeping
    /// `_lastUpdated` and the people's `birthdate` and `death-date`
    /// (Observation `date`, Encounter `date`, Condition `onset-date`,
    /// `abatement-date` and `recorded-date`, MedicationRequest
    /// `authoredon` …): it is returned when any of them overlaps the
    /// range. A resource without any such date (none in its type, or none
    /// filled in) is returned whatever the range, since nothing says it
    /// lies outside, and so is the patient. Resources referred to are
    /// those of the resources returned. A date that cannot be read is 400
    /// naming the parameter.
    fn everything(&self, req: &OperationRequest<'_>) -> R<FhirResponse> {
        let cx = req.cx;
        cx.start("operation", Op::Search, None)?;
        let id = req.id().unwrap_or_default();
        let p = self.store.read("Patient", id)?;
        let p = existing(p, "Patient", id)?;
        cx.check_out(Op::Read, &p, self.reader())?;
        let given = req.primitive_parameters()?;
        let mut params = Vec::new();
        let mut has_count = false;
        let mut range = search::CareDates::default();
        for (k, v) in given {
            match k.as_str() {
                "_since" => {
                    if wardline_fhir::datetime::parse_range(&v).is_none() {
                        return Err(
                            FhirError::invalid(format!("_since '{v}' is not an instant"))
                                .at("_since"),
                        );
                    }
                    params.push(("_lastUpdated".to_owned(), format!("ge{v}")));
                }
                "_count" => {
                    has_count = true;
                    params.push((k, v));
                }
                "_type" | "_snapshot" | "_after" | "_format" | "_pretty" | "_lastUpdated" => {
                    params.push((k, v))
                }
                "start" | "end" => range.set(&k, v)?,
                _ => {
                    return Err(FhirError::invalid(format!(
                        "'{k}' is not a parameter of Patient/$everything"
                    ))
                    .at(k));
                }
            }
        }
        range.check()?;
        if !has_count {
            params.push(("_count".to_owned(), self.config.max_count.to_string()));
        }
        let bundle = search::run(
            self,
            cx,
            None,
            Some(("Patient", id)),
            &params,
            req.headers(),
            req.path(),
            Some(&range),
        )?;
        Ok(FhirResponse::raw(200, bundle))
    }

    // ---- writes ------------------------------------------------------------

    pub(crate) fn parse_body(&self, req: &FhirRequest) -> R<Value> {
        operation::parse_body(req)
    }

    fn create(&self, t: &str, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        let mut resource = self.parse_body(req)?;
        let mut tx = self.begin_in(cx)?;
        if let Some(cond) = &req.headers.if_none_exist {
            let found = self.conditional_match(&tx, t, cond)?;
            match found.len() {
                0 => {}
                1 => {
                    drop(tx);
                    cx.name("read", "R");
                    cx.check_out(Op::Read, &found[0], self.reader())?;
                    return Ok(self.resource_response(200, &found[0], req));
                }
                n => {
                    return Err(FhirError::precondition_failed(format!(
                        "If-None-Exist matched {n} resources"
                    )));
                }
            }
        }
        let id = new_id();
        let w = self.prepare_write(&mut tx, t, &id, &mut resource, Fresh::NewId, "")?;
        tx.commit()?;
        Ok(self.write_response(req, w))
    }

    fn update(&self, t: &str, id: &str, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        let mut resource = self.parse_body(req)?;
        match resource.get("id").and_then(Value::as_str) {
            Some(bid) if bid == id => {}
            Some(bid) => {
                return Err(FhirError::invalid(format!(
                    "the resource id '{bid}' does not match the URL id '{id}'"
                ))
                .at(format!("{t}.id")));
            }
            None => {
                return Err(FhirError::invalid("an update must carry the resource id")
                    .at(format!("{t}.id")));
            }
        }
        let if_match = match &req.headers.if_match {
            Some(v) => Some(etag_version(v).ok_or_else(|| {
                FhirError::invalid(format!("If-Match '{v}' is not an ETag like W/\"3\""))
            })?),
            None => None,
        };
        let mut tx = self.begin_in(cx)?;
        let w = self.prepare_write(&mut tx, t, id, &mut resource, Fresh::Check(if_match), "")?;
        tx.commit()?;
        Ok(self.write_response(req, w))
    }

    fn conditional_update(&self, t: &str, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        let cond = query_string(&req.query);
        if cond.is_empty() {
            return Err(FhirError::new(
                405,
                "not-supported",
                "PUT needs an id or search criteria",
            ));
        }
        let mut resource = self.parse_body(req)?;
        let mut tx = self.begin_in(cx)?;
        let found = self.conditional_match(&tx, t, &cond)?;
        let id = match found.len() {
            0 => resource
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(new_id),
            1 => {
                let existing = found[0].id.clone();
                if let Some(bid) = resource.get("id").and_then(Value::as_str)
                    && bid != existing
                {
                    return Err(FhirError::invalid(format!(
                        "the resource id '{bid}' does not match the matched resource '{existing}'"
                    )));
                }
                existing
            }
            n => {
                return Err(FhirError::precondition_failed(format!(
                    "the conditional update matched {n} resources"
                )));
            }
        };
        let w = self.prepare_write(&mut tx, t, &id, &mut resource, Fresh::Check(None), "")?;
        tx.commit()?;
        Ok(self.write_response(req, w))
    }

    fn patch(&self, t: &str, id: &str, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        match req.headers.content_type.as_deref() {
            Some("application/json-patch+json") | None => {}
            Some(other) => {
                return Err(FhirError::new(
                    415,
                    "not-supported",
                    format!("PATCH supports application/json-patch+json, not {other}"),
                ));
            }
        }
        let patch_doc = self.parse_body(req)?;
        let patch: json_patch::Patch = serde_json::from_value(patch_doc)
            .map_err(|e| FhirError::invalid(format!("not a JSON Patch document: {e}")))?;
        let mut tx = self.begin_in(cx)?;
        let cur = existing(tx.read(t, id)?, t, id)?;
        if let Some(v) = &req.headers.if_match
            && etag_version(v) != Some(cur.version)
        {
            return Err(FhirError::precondition_failed(format!(
                "If-Match {v} does not match the current version {}",
                cur.version
            )));
        }
        let mut resource: Value = serde_json::from_str(&cur.json)
            .map_err(|e| FhirError::internal(format!("stored JSON unreadable: {e}")))?;
        json_patch::patch(&mut resource, &patch)
            .map_err(|e| FhirError::unprocessable(format!("the patch cannot be applied: {e}")))?;
        if resource.get("id").and_then(Value::as_str) != Some(id)
            || resource.get("resourceType").and_then(Value::as_str) != Some(t)
        {
            return Err(FhirError::unprocessable(
                "a patch may not change id or resourceType",
            ));
        }
        let w = self.prepare_write(
            &mut tx,
            t,
            id,
            &mut resource,
            Fresh::Check(Some(cur.version)),
            "",
        )?;
        tx.commit()?;
        Ok(self.write_response(req, w))
    }

    fn delete(&self, t: &str, id: &str, cx: &Ctx<'_>) -> R<FhirResponse> {
        let mut tx = self.begin_in(cx)?;
        self.delete_in(&mut tx, t, id)?;
        tx.commit()?;
        Ok(FhirResponse::no_content())
    }

    /// Writes a tombstone; deleting a missing or deleted resource succeeds and
    /// writes nothing (delete is idempotent).
    pub(crate) fn delete_in(&self, tx: &mut Tx<'_>, t: &str, id: &str) -> R<()> {
        let Some(cur) = tx.read(t, id)? else {
            return Ok(());
        };
        if cur.deleted {
            return Ok(());
        }
        tx.check_write(Op::Delete, None, Some(&cur))?;
        tx.write(ResourceWrite {
            resource_type: t.into(),
            id: id.into(),
            expected_version: Some(cur.version),
            version: cur.version + 1,
            last_updated_ms: now_ms(),
            method: WriteMethod::Delete,
            json: String::new(),
            patient_key: None,
            index: Vec::new(),
        })?;
        Ok(())
    }

    fn conditional_delete(&self, t: &str, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        let cond = query_string(&req.query);
        if cond.is_empty() {
            return Err(FhirError::new(
                405,
                "not-supported",
                "DELETE needs an id or search criteria",
            ));
        }
        let mut tx = self.begin_in(cx)?;
        let found = self.conditional_match(&tx, t, &cond)?;
        if found.len() > 1 {
            return Err(FhirError::precondition_failed(format!(
                "the conditional delete matched {} resources",
                found.len()
            )));
        }
        for r in &found {
            self.delete_in(&mut tx, t, &r.id)?;
        }
        tx.commit()?;
        Ok(FhirResponse::no_content())
    }

    /// A query string (`a=1&b=2`) as a search on type `t`, strictly
    /// parsed (an unknown parameter is an error, never ignored).
    pub(crate) fn parse_criteria(&self, t: &str, query: &str) -> R<SearchQuery> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect();
        if pairs.is_empty() {
            return Err(FhirError::invalid("conditional criteria are empty"));
        }
        wardline_fhir::search::parse(self.defs, Some(t), &pairs, Handling::Strict)
    }

    /// Resources of type `t` matching a query string (`identifier=a|b&...`), at most 2.
    pub(crate) fn conditional_match(
        &self,
        r: &dyn Reader,
        t: &str,
        query: &str,
    ) -> R<Vec<StoredResource>> {
        let q = self.parse_criteria(t, query)?;
        let page = r.search(
            &q,
            &PageRequest {
                count: 2,
                ..PageRequest::default()
            },
        )?;
        Ok(page.resources)
    }

    /// Validates, stamps and writes `resource` as `t/id` inside `tx`.
    /// `fresh` says whether the id was just generated (no read needed: the
    /// store still refuses the write if the id exists) or carries the If-Match
    /// version, if any; `at` prefixes error expressions (e.g.
    /// `Bundle.entry[3].resource`).
    pub(crate) fn prepare_write(
        &self,
        tx: &mut Tx<'_>,
        t: &str,
        id: &str,
        resource: &mut Value,
        fresh: Fresh,
        at: &str,
    ) -> R<Written> {
        let expected = match fresh {
            Fresh::NewId => None,
            Fresh::Check(e) => e,
        };
        let obj = resource
            .as_object_mut()
            .ok_or_else(|| FhirError::structure("a resource must be a JSON object"))?;
        match obj.get("resourceType").and_then(Value::as_str) {
            Some(rt) if rt == t => {}
            Some(rt) => {
                return Err(prefix(
                    FhirError::invalid(format!(
                        "resourceType '{rt}' does not match the URL type '{t}'"
                    ))
                    .at(format!("{t}.resourceType")),
                    at,
                ));
            }
            None => {
                return Err(prefix(
                    FhirError::new(400, "required", "resourceType is missing").at("resourceType"),
                    at,
                ));
            }
        }
        if !valid_id(id) {
            return Err(prefix(
                FhirError::invalid(format!("'{id}' is not a valid FHIR id")).at(format!("{t}.id")),
                at,
            ));
        }
        obj.insert("id".into(), Value::String(id.into()));
        let cur = match fresh {
            Fresh::NewId => None,
            Fresh::Check(_) => tx.read(t, id)?,
        };
        let current_version = cur.as_ref().map(|c| c.version);
        if let Some(e) = expected
            && Some(e) != current_version.filter(|_| !cur.as_ref().is_some_and(|c| c.deleted))
        {
            return Err(FhirError::precondition_failed(format!(
                "If-Match version {e} is not the current version of {t}/{id} ({})",
                current_version.map_or("none".into(), |v| v.to_string())
            )));
        }
        let version = current_version.unwrap_or(0) + 1;
        let now = now_ms();
        let meta = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return Err(prefix(
                FhirError::invalid("meta must be an object").at(format!("{t}.meta")),
                at,
            ));
        };
        meta.insert("versionId".into(), Value::String(version.to_string()));
        meta.insert("lastUpdated".into(), Value::String(format_instant(now)));
        self.defs.validate(resource).map_err(|e| prefix(e, at))?;
        let index = self.defs.extract_index(resource);
        let patient_key = self.defs.patient_key(resource);
        let json = serde_json::to_string(resource)
            .map_err(|e| FhirError::internal(format!("cannot serialise: {e}")))?;
        let op = if current_version.is_some() && !cur.as_ref().is_some_and(|c| c.deleted) {
            Op::Update
        } else {
            Op::Create
        };
        let view = ResourceView {
            resource_type: t,
            id,
            patient: patient_key.as_deref(),
            json: &json,
        };
        tx.check_write(op, Some(view), cur.as_ref())
            .map_err(|e| prefix(e, at))?;
        tx.write(ResourceWrite {
            resource_type: t.into(),
            id: id.into(),
            expected_version: current_version,
            version,
            last_updated_ms: now,
            method: if current_version.is_some() {
                WriteMethod::Update
            } else {
                WriteMethod::Create
            },
            json: json.clone(),
            patient_key,
            index,
        })
        .map_err(|e| conflict(e, expected.is_some()))?;
        Ok(Written {
            status: if current_version.is_some() && !cur.as_ref().is_some_and(|c| c.deleted) {
                200
            } else {
                201
            },
            resource_type: t.into(),
            id: id.into(),
            version,
            last_updated_ms: now,
            json,
        })
    }

    fn write_response(&self, req: &FhirRequest, w: Written) -> FhirResponse {
        let location = format!(
            "{}/{}/{}/_history/{}",
            self.config.base_url, w.resource_type, w.id, w.version
        );
        let body = match req.headers.prefer_return {
            Some(PreferReturn::Minimal) => Body::None,
            Some(PreferReturn::OperationOutcome) => {
                Body::Json(wardline_fhir::error::informational_outcome(format!(
                    "{} {}/{} version {}",
                    if w.status == 201 {
                        "created"
                    } else {
                        "updated"
                    },
                    w.resource_type,
                    w.id,
                    w.version
                )))
            }
            _ => Body::Raw(w.json),
        };
        FhirResponse {
            status: w.status,
            body,
            etag: Some(etag(w.version)),
            last_modified_ms: Some(w.last_updated_ms),
            location: Some(location),
            content_location: None,
            headers: Vec::new(),
        }
    }

    fn bundle(&self, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        let b = self.parse_body(req)?;
        bundle::process(self, cx, b).map(|v| FhirResponse::json(200, v))
    }

    /// `GET AuditEvent[?…]` and `GET AuditEvent/SEQ`: the audit trail, from
    /// the store's chain (searchable by `patient`, `agent`, `action`,
    /// `subtype`, `outcome`, `date`; newest first).
    fn audit_trail(&self, rest: &[&str], req: &FhirRequest) -> R<FhirResponse> {
        match rest {
            [] => {}
            [id] => {
                let seq: i64 = id
                    .parse()
                    .map_err(|_| FhirError::not_found(format!("AuditEvent/{id} is not known")))?;
                let row = self
                    .store
                    .scan_audit(seq - 1, 1)?
                    .into_iter()
                    .find(|r| r.seq == seq)
                    .ok_or_else(|| FhirError::not_found(format!("AuditEvent/{id} is not known")))?;
                return Ok(FhirResponse::json(200, audit::row_to_resource(&row)));
            }
            _ => {
                return Err(FhirError::not_found(format!(
                    "no FHIR interaction at /{}",
                    req.path.join("/")
                )));
            }
        }
        let mut q = wardline_store::audit::AuditQuery {
            count: self.config.default_count,
            ..Default::default()
        };
        for (k, v) in &req.query {
            let reference =
                |v: &str, t: &str| v.strip_prefix(&format!("{t}/")).unwrap_or(v).to_owned();
            match k.as_str() {
                "patient" => q.patient = Some(reference(v, "Patient")),
                "agent" | "who" => q.agent = Some(v.clone()),
                "action" => q.action = Some(v.clone()),
                "subtype" => q.subtype = Some(v.rsplit('|').next().unwrap_or(v).to_owned()),
                "outcome" => {
                    q.outcome = Some(v.parse().map_err(|_| {
                        FhirError::invalid(format!("outcome '{v}' is not 0, 4, 8 or 12"))
                            .at("outcome")
                    })?)
                }
                "date" => {
                    let (prefix, value) = match v.get(..2) {
                        Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &v[2..]),
                        _ => ("eq", v.as_str()),
                    };
                    let (lo, hi) = parse_range(value).ok_or_else(|| {
                        FhirError::invalid(format!("date '{v}' is not a date")).at("date")
                    })?;
                    match prefix {
                        "ge" => q.since_ms = Some(lo),
                        "gt" => q.since_ms = Some(hi),
                        "lt" => q.before_ms = Some(lo),
                        "le" => q.before_ms = Some(hi),
                        _ => {
                            q.since_ms = Some(lo);
                            q.before_ms = Some(hi);
                        }
                    }
                }
                "_count" => q.count = parse_count(v)?.min(self.config.max_count),
                "_before_seq" => {
                    q.before_seq = Some(
                        v.parse()
                            .map_err(|_| FhirError::invalid("bad _before_seq"))?,
                    )
                }
                "_format" | "_pretty" => {}
                other => {
                    return Err(FhirError::invalid(format!(
                        "'{other}' is not a supported AuditEvent search parameter (patient, agent, action, subtype, outcome, date, _count)"
                    ))
                    .at(other.to_owned()));
                }
            }
        }
        let want = q.count;
        q.count = want + 1;
        let rows = self.store.search_audit(&q)?;
        let has_more = rows.len() > want;
        let rows = &rows[..rows.len().min(want)];
        let base = &self.config.base_url;
        let mut links =
            vec![json!({"relation": "self", "url": url_with(base, "AuditEvent", &req.query)})];
        if has_more && let Some(last) = rows.last() {
            let mut next: Vec<(String, String)> = req
                .query
                .iter()
                .filter(|(k, _)| k != "_before_seq")
                .cloned()
                .collect();
            next.push(("_before_seq".into(), last.seq.to_string()));
            links.push(json!({"relation": "next", "url": url_with(base, "AuditEvent", &next)}));
        }
        let entries: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "fullUrl": format!("{base}/AuditEvent/{}", r.seq),
                    "resource": audit::row_to_resource(r),
                    "search": {"mode": "match"},
                })
            })
            .collect();
        Ok(FhirResponse::json(
            200,
            json!({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}),
        ))
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

fn valid_id(id: &str) -> bool {
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
