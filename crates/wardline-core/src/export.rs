//! Bulk Data Access (`$export`): the export engine and the asynchronous jobs
//! that run it for the REST API.
//!
//! [`export_to_dir`] streams the selected resources, type by type and page by
//! page in `rid` order, into one NDJSON file per type; memory stays bounded by
//! one page whatever the size of the store. The `wardline export` command calls
//! it directly; the server runs it in [`ExportJobs`], one job at a time on a
//! worker thread.
//!
//! Jobs survive restarts: each job is a directory under the export directory
//! with a `job.json` written atomically (temporary file, fsync, rename) at every
//! state change. A job found `accepted` or `in-progress` when the server starts
//! is run again from the beginning (its partial files removed); it is never
//! silently lost. A job is `complete` only after every output file is fsynced.
//!
//! Consistency: there is no upper time bound. Every resource current when the
//! scan reaches it is exported, so a resource written during the export may
//! appear in this export and again in the next `_since=transactionTime` one,
//! but none falls between the two.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wardline_fhir::FhirError;
use wardline_fhir::definitions::Definitions;
use wardline_fhir::search::{
    self as fsearch, Filter, FilterKind, Handling, PatientScope, Prefix, SearchQuery,
};
use wardline_store::{PageRequest, Store};

type R<T> = Result<T, FhirError>;

/// The canonical URLs of the Bulk Data OperationDefinitions, at each level.
pub const SYSTEM_DEFINITION: &str = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export";
pub const PATIENT_DEFINITION: &str =
    "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export";
pub const GROUP_DEFINITION: &str =
    "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export";

/// Resources read per store round trip while exporting.
pub const EXPORT_PAGE: usize = 5000;

/// `[base]/$export`, `[base]/Patient/$export` or `[base]/Group/ID/$export`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLevel {
    System,
    Patient,
    Group(String),
}

impl ExportLevel {
    fn to_json(&self) -> Value {
        match self {
            ExportLevel::System => json!({"level": "system"}),
            ExportLevel::Patient => json!({"level": "patient"}),
            ExportLevel::Group(id) => json!({"level": "group", "group": id}),
        }
    }

    fn from_json(v: &Value) -> Option<ExportLevel> {
        Some(match v["level"].as_str()? {
            "system" => ExportLevel::System,
            "patient" => ExportLevel::Patient,
            "group" => ExportLevel::Group(v["group"].as_str()?.to_owned()),
            _ => return None,
        })
    }
}

/// A validated export request.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub level: ExportLevel,
    /// `_type`; empty means every type the level allows.
    pub types: Vec<String>,
    /// `_since`, in epoch milliseconds.
    pub since_ms: Option<i64>,
    /// `_typeFilter`: per type, queries that are OR-ed.
    pub type_filters: HashMap<String, Vec<SearchQuery>>,
    /// The kick-off parameters as given (kept to re-run after a restart).
    pub params: Vec<(String, String)>,
}

/// One NDJSON file of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOutput {
    pub resource_type: String,
    /// File name within the export directory (`Observation.ndjson`).
    pub file: String,
    pub count: u64,
}

const FORMATS: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// Validates the kick-off parameters.
pub fn parse_spec(
    defs: &Definitions,
    level: ExportLevel,
    params: &[(String, String)],
) -> R<ExportSpec> {
    let mut spec = ExportSpec {
        level,
        types: Vec::new(),
        since_ms: None,
        type_filters: HashMap::new(),
        params: params.to_vec(),
    };
    let bad = |k: &str, why: String| FhirError::invalid(why).at(k);
    for (k, v) in params {
        match k.as_str() {
            "_outputFormat" => {
                if !FORMATS.contains(&v.as_str()) {
                    return Err(bad(
                        k,
                        format!(
                            "_outputFormat '{v}' is not supported; use application/fhir+ndjson"
                        ),
                    ));
                }
            }
            "_type" => {
                for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !defs.is_resource_type(t) {
                        return Err(bad(k, format!("_type '{t}' is not a resource type")));
                    }
                    spec.types.push(t.to_owned());
                }
            }
            "_since" => {
                let (lo, _) = wardline_fhir::datetime::parse_range(v)
                    .ok_or_else(|| bad(k, format!("_since '{v}' is not an instant")))?;
                spec.since_ms = Some(lo);
            }
            "_typeFilter" => {
                for f in v.split(',').filter(|f| !f.is_empty()) {
                    let (t, query) = f.split_once('?').ok_or_else(|| {
                        bad(
                            k,
                            format!("_typeFilter '{f}' must be Type?search-parameters"),
                        )
                    })?;
                    if !defs.is_resource_type(t) {
                        return Err(bad(
                            k,
                            format!("_typeFilter '{f}': '{t}' is not a resource type"),
                        ));
                    }
                    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                        .into_owned()
                        .collect();
                    let q =
                        fsearch::parse(defs, Some(t), &pairs, Handling::Strict).map_err(|e| {
                            bad(k, format!("_typeFilter '{f}': {}", e.issues[0].diagnostics))
                        })?;
                    if !q.include.is_empty() || !q.revinclude.is_empty() || !q.sort.is_empty() {
                        return Err(bad(
                            k,
                            format!("_typeFilter '{f}' may only hold search filters"),
                        ));
                    }
                    spec.type_filters.entry(t.to_owned()).or_default().push(q);
                }
            }
            "_format" | "_pretty" => {}
            "patient" | "includeAssociatedData" | "_elements" => {
                return Err(FhirError::not_supported(format!(
                    "$export parameter '{k}' is not supported"
                ))
                .at(k.as_str()));
            }
            _ => return Err(bad(k, format!("'{k}' is not a parameter of $export"))),
        }
    }
    // A _typeFilter type not in an explicit _type list would never be exported.
    if !spec.types.is_empty() {
        for t in spec.type_filters.keys() {
            if !spec.types.contains(t) {
                return Err(bad(
                    "_typeFilter",
                    format!("_typeFilter names {t}, which _type leaves out"),
                ));
            }
        }
    }
    Ok(spec)
}

/// The resource types an export visits, in a stable order.
fn export_types(defs: &Definitions, spec: &ExportSpec) -> Vec<String> {
    let in_compartment = |t: &str| {
        t == "Patient"
            || defs
                .patient_compartment
                .get(t)
                .is_some_and(|p| !p.is_empty())
    };
    let mut types: Vec<String> = if spec.types.is_empty() {
        let mut all: Vec<String> = defs
            .types
            .keys()
            .filter(|t| defs.is_resource_type(t))
            .cloned()
            .collect();
        all.sort();
        all
    } else {
        spec.types.clone()
    };
    if spec.level != ExportLevel::System {
        types.retain(|t| in_compartment(t));
    }
    types
}

/// The patients a Group export covers: the Group's `member.entity` references
/// to Patients.
fn group_patients(store: &dyn Store, id: &str) -> R<Vec<String>> {
    let g = store
        .read("Group", id)?
        .filter(|g| !g.deleted)
        .ok_or_else(|| FhirError::not_found(format!("Group/{id} is not known")))?;
    let v: Value = serde_json::from_str(&g.json)
        .map_err(|e| FhirError::internal(format!("stored Group/{id} unreadable: {e}")))?;
    let mut out = Vec::new();
    for m in v["member"].as_array().into_iter().flatten() {
        if m["inactive"] == json!(true) {
            continue;
        }
        if let Some(r) = m.pointer("/entity/reference").and_then(Value::as_str)
            && let Some(id) = r.strip_prefix("Patient/")
        {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

/// The queries for one type (OR-ed), each restricted by `_since` and the level.
fn type_queries(spec: &ExportSpec, t: &str, scope: &Option<PatientScope>) -> Vec<SearchQuery> {
    let base = SearchQuery {
        resource_type: Some(t.to_owned()),
        ..SearchQuery::default()
    };
    let mut qs = spec
        .type_filters
        .get(t)
        .cloned()
        .unwrap_or_else(|| vec![base]);
    for q in &mut qs {
        q.patient_scope = scope.clone();
        if let Some(since) = spec.since_ms {
            q.filters.push(Filter {
                param: "_lastUpdated".into(),
                param_type: None,
                kind: FilterKind::LastUpdated(vec![(Prefix::Ge, since, since + 1)]),
            });
        }
    }
    qs
}

fn scope(store: &dyn Store, spec: &ExportSpec) -> R<Option<PatientScope>> {
    Ok(match &spec.level {
        ExportLevel::System => None,
        ExportLevel::Patient => Some(PatientScope::Any),
        ExportLevel::Group(id) => Some(PatientScope::Of(group_patients(store, id)?)),
    })
}

/// How many resources the export will write (for progress bars); filters that
/// overlap may make this an overestimate.
pub fn count(store: &dyn Store, defs: &Definitions, spec: &ExportSpec) -> R<u64> {
    let scope = scope(store, spec)?;
    let mut n = 0;
    for t in export_types(defs, spec) {
        for q in type_queries(spec, &t, &scope) {
            let page = PageRequest {
                count_only: true,
                ..PageRequest::default()
            };
            n += store.search(&q, &page)?.total.unwrap_or(0);
        }
    }
    Ok(n)
}

/// Writes the export into `dir` (which must exist): one `Type.ndjson` per type
/// with at least one resource, fsynced. `progress` is called with the number of
/// resources written so far; `cancel` stops the export between pages.
pub fn export_to_dir(
    store: &dyn Store,
    defs: &Definitions,
    spec: &ExportSpec,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
    cancel: &AtomicBool,
) -> R<Vec<ExportOutput>> {
    let io = |e: std::io::Error| FhirError::internal(format!("writing the export failed: {e}"));
    let scope = scope(store, spec)?;
    // Patients under the national data opt-out are left out, with their
    // whole compartment (see `consent`).
    let opted_out =
        crate::consent::secondary_use_opt_outs(defs, store, wardline_fhir::datetime::now_ms())?;
    let mut withheld = 0u64;
    let mut outputs = Vec::new();
    let mut written = 0u64;
    // One snapshot for the whole export: later pages never see rows created
    // after the first page (updates to existing rows are still seen).
    let mut snapshot: Option<i64> = None;
    for t in export_types(defs, spec) {
        let queries = type_queries(spec, &t, &scope);
        let dedupe = queries.len() > 1;
        let mut seen: HashSet<i64> = HashSet::new();
        let mut file: Option<BufWriter<fs::File>> = None;
        let name = format!("{t}.ndjson");
        let mut n = 0u64;
        for q in queries {
            let mut after = None;
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return Err(FhirError::new(499, "processing", "export cancelled"));
                }
                let page = store.search(
                    &q,
                    &PageRequest {
                        count: EXPORT_PAGE,
                        after_rid: after,
                        snapshot_rid: snapshot,
                        ..PageRequest::default()
                    },
                )?;
                snapshot.get_or_insert(page.snapshot_rid);
                for r in &page.resources {
                    if dedupe && !seen.insert(r.rid) {
                        continue;
                    }
                    if r.patient_key
                        .as_ref()
                        .is_some_and(|p| opted_out.contains(p))
                    {
                        withheld += 1;
                        continue;
                    }
                    let f = match &mut file {
                        Some(f) => f,
                        None => file.insert(BufWriter::with_capacity(
                            1 << 20,
                            fs::File::create(dir.join(&name)).map_err(io)?,
                        )),
                    };
                    // Stored JSON is compact (one line) by construction.
                    f.write_all(r.json.as_bytes()).map_err(io)?;
                    f.write_all(b"\n").map_err(io)?;
                    n += 1;
                }
                written += page.resources.len() as u64;
                progress(written);
                match (page.has_more, page.resources.last()) {
                    (true, Some(last)) => after = Some(last.rid),
                    _ => break,
                }
            }
        }
        if let Some(f) = file {
            let f = f.into_inner().map_err(|e| io(e.into_error()))?;
            f.sync_all().map_err(io)?;
            outputs.push(ExportOutput {
                resource_type: t.clone(),
                file: name,
                count: n,
            });
        }
    }
    fsync_dir(dir).map_err(io)?;
    if withheld > 0 {
        tracing::info!(
            withheld,
            patients = opted_out.len(),
            "export: resources of patients under the national data opt-out left out"
        );
    }
    Ok(outputs)
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    let _ = dir;
    Ok(())
}

// ---- asynchronous jobs --------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Accepted,
    InProgress,
    Complete,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Accepted => "accepted",
            JobStatus::InProgress => "in-progress",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "accepted" => JobStatus::Accepted,
            "in-progress" => JobStatus::InProgress,
            "complete" => JobStatus::Complete,
            "failed" => JobStatus::Failed,
            _ => return None,
        })
    }
}

/// What a poll of the status endpoint sees.
#[derive(Debug, Clone)]
pub struct JobView {
    pub status: JobStatus,
    pub progress: u64,
    pub transaction_time: String,
    pub request: String,
    pub output: Vec<ExportOutput>,
    pub error: Option<String>,
}

struct Job {
    level: ExportLevel,
    params: Vec<(String, String)>,
    request: String,
    transaction_time: String,
    status: JobStatus,
    output: Vec<ExportOutput>,
    error: Option<String>,
    progress: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
}

impl Job {
    fn to_json(&self, id: &str) -> Value {
        json!({
            "id": id,
            "status": self.status.as_str(),
            "level": self.level.to_json(),
            "params": self.params.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "request": self.request,
            "transactionTime": self.transaction_time,
            "output": self.output.iter().map(|o| json!({"type": o.resource_type, "file": o.file, "count": o.count})).collect::<Vec<_>>(),
            "error": self.error,
        })
    }

    fn from_json(v: &Value) -> Option<Job> {
        let params = v["params"]
            .as_array()?
            .iter()
            .map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())))
            .collect::<Option<Vec<_>>>()?;
        let output = v["output"]
            .as_array()?
            .iter()
            .map(|o| {
                Some(ExportOutput {
                    resource_type: o["type"].as_str()?.to_owned(),
                    file: o["file"].as_str()?.to_owned(),
                    count: o["count"].as_u64()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Job {
            level: ExportLevel::from_json(&v["level"])?,
            params,
            request: v["request"].as_str()?.to_owned(),
            transaction_time: v["transactionTime"].as_str()?.to_owned(),
            status: JobStatus::parse(v["status"].as_str()?)?,
            output,
            error: v["error"].as_str().map(str::to_owned),
            progress: Arc::new(AtomicU64::new(0)),
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// The server's export jobs: persisted under one directory, run one at a time
/// by a worker thread.
pub struct ExportJobs {
    dir: PathBuf,
    jobs: Mutex<HashMap<String, Job>>,
    queue: Mutex<Sender<String>>,
}

impl ExportJobs {
    /// Opens (creating) the export directory, re-queues the jobs a previous
    /// process left unfinished, and starts the worker.
    pub fn start(
        dir: PathBuf,
        store: Arc<dyn Store>,
        defs: &'static Definitions,
    ) -> std::io::Result<Arc<ExportJobs>> {
        fs::create_dir_all(&dir)?;
        let (tx, rx) = channel();
        let mut jobs = HashMap::new();
        let mut requeue = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path().join("job.json");
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let id = entry.file_name().to_string_lossy().into_owned();
            match serde_json::from_str::<Value>(&text)
                .ok()
                .as_ref()
                .and_then(Job::from_json)
            {
                Some(job) => {
                    if matches!(job.status, JobStatus::Accepted | JobStatus::InProgress) {
                        requeue.push(id.clone());
                    }
                    jobs.insert(id, job);
                }
                None => tracing::warn!(path = %path.display(), "unreadable export job record"),
            }
        }
        let this = Arc::new(ExportJobs {
            dir,
            jobs: Mutex::new(jobs),
            queue: Mutex::new(tx.clone()),
        });
        for id in requeue {
            tracing::info!(job = %id, "re-running an export interrupted by a restart");
            this.set_status(&id, JobStatus::Accepted, None)?;
            let _ = tx.send(id);
        }
        let worker = this.clone();
        std::thread::Builder::new()
            .name("wardline-export".into())
            .spawn(move || worker.work(rx, store, defs))?;
        Ok(this)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new job and queues it; returns its id.
    pub fn submit(&self, spec: &ExportSpec, request: String, now_ms: i64) -> R<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let job = Job {
            level: spec.level.clone(),
            params: spec.params.clone(),
            request,
            transaction_time: wardline_fhir::datetime::format_instant(now_ms),
            status: JobStatus::Accepted,
            output: Vec::new(),
            error: None,
            progress: Arc::new(AtomicU64::new(0)),
            cancel: Arc::new(AtomicBool::new(false)),
        };
        let io =
            |e: std::io::Error| FhirError::internal(format!("cannot record the export job: {e}"));
        fs::create_dir_all(self.dir.join(&id)).map_err(io)?;
        persist(&self.dir.join(&id), &job.to_json(&id)).map_err(io)?;
        self.lock().insert(id.clone(), job);
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(id.clone())
            .map_err(|_| FhirError::internal("the export worker has stopped"))?;
        Ok(id)
    }

    pub fn view(&self, id: &str) -> Option<JobView> {
        let jobs = self.lock();
        let j = jobs.get(id)?;
        Some(JobView {
            status: j.status,
            progress: j.progress.load(Ordering::Relaxed),
            transaction_time: j.transaction_time.clone(),
            request: j.request.clone(),
            output: j.output.clone(),
            error: j.error.clone(),
        })
    }

    /// Cancels a job (stopping it if running) and deletes its files.
    pub fn delete(&self, id: &str) -> bool {
        let Some(job) = self.lock().remove(id) else {
            return false;
        };
        job.cancel.store(true, Ordering::Relaxed);
        if let Err(e) = fs::remove_dir_all(self.dir.join(id)) {
            tracing::warn!(job = %id, error = %e, "could not remove the export files");
        }
        true
    }

    /// The path of an output file of a complete job.
    pub fn file(&self, id: &str, name: &str) -> Option<PathBuf> {
        let jobs = self.lock();
        let j = jobs.get(id)?;
        (j.status == JobStatus::Complete && j.output.iter().any(|o| o.file == name))
            .then(|| self.dir.join(id).join(name))
    }

    fn set_status(
        &self,
        id: &str,
        status: JobStatus,
        error: Option<String>,
    ) -> std::io::Result<()> {
        let mut jobs = self.lock();
        let Some(j) = jobs.get_mut(id) else {
            return Ok(());
        };
        j.status = status;
        j.error = error;
        persist(&self.dir.join(id), &j.to_json(id))
    }

    fn work(&self, rx: Receiver<String>, store: Arc<dyn Store>, defs: &'static Definitions) {
        while let Ok(id) = rx.recv() {
            let Some((level, params, progress, cancel)) = self.lock().get(&id).map(|j| {
                (
                    j.level.clone(),
                    j.params.clone(),
                    j.progress.clone(),
                    j.cancel.clone(),
                )
            }) else {
                continue; // deleted before it started
            };
            let dir = self.dir.join(&id);
            // A re-run starts from nothing.
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().ends_with(".ndjson") {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
            if let Err(e) = self.set_status(&id, JobStatus::InProgress, None) {
                tracing::error!(job = %id, error = %e, "cannot record export progress");
                continue;
            }
            tracing::info!(job = %id, "export started");
            let result = parse_spec(defs, level, &params).and_then(|spec| {
                export_to_dir(
                    store.as_ref(),
                    defs,
                    &spec,
                    &dir,
                    &mut |n| progress.store(n, Ordering::Relaxed),
                    &cancel,
                )
            });
            if cancel.load(Ordering::Relaxed) {
                continue; // deleted while running; its directory is gone
            }
            let outcome = match result {
                Ok(outputs) => {
                    let total: u64 = outputs.iter().map(|o| o.count).sum();
                    let mut jobs = self.lock();
                    if let Some(j) = jobs.get_mut(&id) {
                        j.output = outputs;
                    }
                    drop(jobs);
                    tracing::info!(job = %id, resources = total, "export complete");
                    self.set_status(&id, JobStatus::Complete, None)
                }
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "export failed");
                    self.set_status(&id, JobStatus::Failed, Some(e.to_string()))
                }
            };
            if let Err(e) = outcome {
                tracing::error!(job = %id, error = %e, "cannot record the export result");
            }
        }
    }
}

/// Writes `job.json` atomically: a temporary file, fsync, rename, fsync the directory.
fn persist(dir: &Path, v: &Value) -> std::io::Result<()> {
    let tmp = dir.join("job.json.tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(v.to_string().as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join("job.json"))?;
    fsync_dir(dir)
}

/// The completion manifest of the Bulk Data Access IG.
pub fn manifest(base: &str, id: &str, v: &JobView) -> Value {
    json!({
        "transactionTime": v.transaction_time,
        "request": v.request,
        "requiresAccessToken": false,
        "output": v.output.iter().map(|o| json!({
            "type": o.resource_type,
            "url": format!("{base}/$export-file/{id}/{}", o.file),
            "count": o.count,
        })).collect::<Vec<_>>(),
        "error": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig};

    fn service() -> FhirService {
        let store = Arc::new(wardline_store_sqlite::SqliteStore::open_in_memory().unwrap());
        FhirService::new(store, ServiceConfig::default())
    }

    fn put(svc: &FhirService, v: Value) {
        let t = v["resourceType"].as_str().unwrap().to_owned();
        let id = v["id"].as_str().unwrap().to_owned();
        let r = svc.handle(
            FhirRequest {
                method: Method::Put,
                path: vec![t, id],
                query: vec![],
                headers: RequestHeaders::default(),
                body: Some(v.to_string().into_bytes()),
            },
            &crate::Trusted::operator("test"),
        );
        assert!(r.status < 300, "{:?}", r.body);
    }

    fn wait_done(jobs: &ExportJobs, id: &str) -> JobView {
        for _ in 0..500 {
            let v = jobs.view(id).expect("job known");
            if matches!(v.status, JobStatus::Complete | JobStatus::Failed) {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("job {id} did not finish");
    }

    #[test]
    fn an_interrupted_job_is_run_again_on_start() {
        let svc = service();
        for i in 0..7 {
            put(
                &svc,
                json!({"resourceType": "Patient", "id": format!("p{i}"), "gender": "female"}),
            );
        }
        let dir = tempfile::tempdir().unwrap();
        // What a killed process leaves: a job record in progress and a partial file.
        let job_dir = dir.path().join("j1");
        fs::create_dir_all(&job_dir).unwrap();
        fs::write(job_dir.join("Patient.ndjson"), "{\"partial\n").unwrap();
        let mut job = Job::from_json(&json!({
            "status": "in-progress", "level": {"level": "system"},
            "params": [["_type", "Patient"]], "request": "http://x/fhir/$export",
            "transactionTime": "2026-01-01T00:00:00Z", "output": [], "error": null,
        }))
        .unwrap();
        job.status = JobStatus::InProgress;
        persist(&job_dir, &job.to_json("j1")).unwrap();

        let jobs =
            ExportJobs::start(dir.path().to_owned(), svc.store().clone(), svc.defs()).unwrap();
        let v = wait_done(&jobs, "j1");
        assert_eq!(v.status, JobStatus::Complete, "{:?}", v.error);
        assert_eq!(v.output.len(), 1);
        assert_eq!(v.output[0].count, 7);
        let text = fs::read_to_string(job_dir.join("Patient.ndjson")).unwrap();
        assert_eq!(text.lines().count(), 7);
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<Value>(l).is_ok())
        );
        // The record on disk says complete too, so a further restart serves it.
        let on_disk: Value =
            serde_json::from_str(&fs::read_to_string(job_dir.join("job.json")).unwrap()).unwrap();
        assert_eq!(on_disk["status"], "complete");
        assert_eq!(
            jobs.file("j1", "Patient.ndjson"),
            Some(job_dir.join("Patient.ndjson"))
        );
        assert_eq!(jobs.file("j1", "../job.json"), None);
    }

    #[test]
    fn a_failing_job_is_reported_failed() {
        let svc = service();
        let dir = tempfile::tempdir().unwrap();
        let jobs =
            ExportJobs::start(dir.path().to_owned(), svc.store().clone(), svc.defs()).unwrap();
        // The Group vanishes between kick-off and run: the job fails, visibly.
        let spec = parse_spec(svc.defs(), ExportLevel::Group("gone".into()), &[]).unwrap();
        let id = jobs
            .submit(&spec, "http://x/fhir/Group/gone/$export".into(), 0)
            .unwrap();
        let v = wait_done(&jobs, &id);
        assert_eq!(v.status, JobStatus::Failed);
        assert!(v.error.unwrap().contains("Group/gone"));
    }

    #[test]
    fn memory_is_bounded_by_pages() {
        // More resources than one page: the export pages through them and
        // every one is written once.
        let svc = service();
        let n = EXPORT_PAGE + 17;
        let mut entries = Vec::new();
        for i in 0..n {
            entries.push(json!({"resource": {"resourceType": "Basic", "id": format!("b{i}"), "code": {"text": "x"}},
                "request": {"method": "PUT", "url": format!("Basic/b{i}")}}));
        }
        let r = svc.handle(
            FhirRequest {
                method: Method::Post,
                path: vec![],
                query: vec![],
                headers: RequestHeaders::default(),
                body: Some(
                    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
                        .to_string()
                        .into_bytes(),
                ),
            },
            &crate::Trusted::operator("test"),
        );
        assert_eq!(r.status, 200);
        let dir = tempfile::tempdir().unwrap();
        let spec = parse_spec(
            svc.defs(),
            ExportLevel::System,
            &[("_type".into(), "Basic".into())],
        )
        .unwrap();
        let mut calls = 0;
        let out = export_to_dir(
            svc.store().as_ref(),
            svc.defs(),
            &spec,
            dir.path(),
            &mut |_| calls += 1,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(out[0].count, n as u64);
        assert_eq!(calls, 2, "two pages");
        let text = fs::read_to_string(dir.path().join("Basic.ndjson")).unwrap();
        let ids: HashSet<&str> = text
            .lines()
            .map(|l| &l[l.find("\"id\":\"").unwrap() + 6..])
            .collect();
        assert_eq!(ids.len(), n);
        // Cancelled before it starts: an error, not a partial success.
        let dir2 = tempfile::tempdir().unwrap();
        assert!(
            export_to_dir(
                svc.store().as_ref(),
                svc.defs(),
                &spec,
                dir2.path(),
                &mut |_| {},
                &AtomicBool::new(true)
            )
            .is_err()
        );
    }
}
