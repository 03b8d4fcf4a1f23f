//! The asynchronous export jobs of the REST API: persisted under one
//! directory, run one at a time by a worker thread, re-run after a restart.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wardline_core::BulkReader;
use wardline_fhir::FhirError;

use crate::R;
use crate::engine::{ExportLevel, ExportOutput, ExportSpec, export_to_dir, fsync_dir, parse_spec};

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
    /// Opens the export directory (created with the first job, so a server
    /// that never exports writes nothing there), re-queues the jobs a
    /// previous process left unfinished, and starts the worker.
    pub fn start(dir: PathBuf, reader: BulkReader) -> std::io::Result<Arc<ExportJobs>> {
        let (tx, rx) = channel();
        let mut jobs = HashMap::new();
        let mut requeue = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries.collect::<std::io::Result<Vec<_>>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        for entry in entries {
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
            .spawn(move || worker.work(rx, reader))?;
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

    fn work(&self, rx: Receiver<String>, reader: BulkReader) {
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
            let result = parse_spec(&reader, level, &params).and_then(|spec| {
                export_to_dir(
                    &reader,
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
    use crate::test_support::{put, service};

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

        let jobs = ExportJobs::start(dir.path().to_owned(), svc.bulk_reader()).unwrap();
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
        let jobs = ExportJobs::start(dir.path().to_owned(), svc.bulk_reader()).unwrap();
        // The Group vanishes between kick-off and run: the job fails, visibly.
        let spec = parse_spec(&svc.bulk_reader(), ExportLevel::Group("gone".into()), &[]).unwrap();
        let id = jobs
            .submit(&spec, "http://x/fhir/Group/gone/$export".into(), 0)
            .unwrap();
        let v = wait_done(&jobs, &id);
        assert_eq!(v.status, JobStatus::Failed);
        assert!(v.error.unwrap().contains("Group/gone"));
    }
}
