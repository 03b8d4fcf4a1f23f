//! The REST side: `$export` at its three levels, registered in the core's
//! operations table, and the status and file URLs of a job, registered as
//! operation URLs (see `wardline_core::operation`).

use std::path::PathBuf;
use std::sync::Arc;

use wardline_core::{
    Body, FhirResponse, FhirService, Method, Operation, OperationRequest, OperationSpec,
    OperationUrl,
};
use wardline_fhir::FhirError;

use crate::R;
use crate::engine::{ExportLevel, parse_spec};
use crate::jobs::{ExportJobs, JobStatus, manifest};

/// The canonical URLs of the Bulk Data OperationDefinitions, at each level.
pub const SYSTEM_DEFINITION: &str = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export";
pub const PATIENT_DEFINITION: &str =
    "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export";
pub const GROUP_DEFINITION: &str =
    "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export";
/// The Bulk Data IG's CapabilityStatement, which a server offering
/// `$export` declares it instantiates.
pub const BULK_DATA_CAPABILITY: &str =
    "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data";

/// Enables Bulk Data `$export` on `svc`, keeping jobs and their files under
/// `dir` (created; unfinished jobs from a previous run are started again):
/// registers the operation at its three levels (`[base]/$export`,
/// `Patient/$export`, `Group/[id]/$export`, GET or POST, each needing
/// `Prefer: respond-async`) and the URLs a job hands out,
/// `$export-poll-status?_jobId=…` (GET polls, DELETE cancels) and
/// `$export-file/[job]/[file]`. Every one checks
/// [`Operation::Export`] first and is audited by the interaction (subtypes
/// `export`, `export-status`, `export-file`).
pub fn with_exports(svc: FhirService, dir: PathBuf) -> std::io::Result<FhirService> {
    let jobs = ExportJobs::start(dir, svc.bulk_reader())?;
    let kickoff = |level: fn(&OperationRequest<'_>) -> ExportLevel| {
        let jobs = jobs.clone();
        move |svc: &FhirService, r: &OperationRequest<'_>| kickoff(&jobs, svc, level(r), r)
    };
    let specs = [
        OperationSpec::system(
            "export",
            SYSTEM_DEFINITION,
            kickoff(|_| ExportLevel::System),
        ),
        OperationSpec::type_level(
            "Patient",
            "export",
            PATIENT_DEFINITION,
            kickoff(|_| ExportLevel::Patient),
        ),
        OperationSpec::instance(
            "Group",
            "export",
            GROUP_DEFINITION,
            kickoff(|r| ExportLevel::Group(r.id().unwrap_or_default().to_owned())),
        ),
    ];
    let mut svc = svc;
    for spec in specs {
        svc = svc.with_operation(
            spec.with_get()
                .audited_by_interaction()
                .instantiating(BULK_DATA_CAPABILITY),
        );
    }
    let status_jobs = jobs.clone();
    Ok(svc
        .with_operation_url(
            OperationUrl::new(
                "export-poll-status",
                move |svc: &FhirService, r: &OperationRequest<'_>| status(&status_jobs, svc, r),
            )
            .with_delete(),
        )
        .with_operation_url(
            OperationUrl::new(
                "export-file",
                move |_: &FhirService, r: &OperationRequest<'_>| file(&jobs, r),
            )
            .with_segments(2),
        ))
}

/// `$export` kick-off: validates, records the job, answers 202 with the
/// status URL in `Content-Location`.
fn kickoff(
    jobs: &Arc<ExportJobs>,
    svc: &FhirService,
    level: ExportLevel,
    req: &OperationRequest<'_>,
) -> R<FhirResponse> {
    req.audit_as("export", "E");
    req.access().check_operation(Operation::Export)?;
    if !req.headers().prefer_async {
        return Err(FhirError::invalid(
            "$export is asynchronous: send 'Prefer: respond-async'",
        ));
    }
    let params = req.primitive_parameters()?;
    let reader = svc.bulk_reader();
    if let ExportLevel::Group(id) = &level {
        reader.read("Group", id)?;
    }
    let spec = parse_spec(&reader, level, &params)?;
    let base = &svc.config().base_url;
    let request = url_with(base, &req.path().join("/"), req.query());
    let id = jobs.submit(&spec, request, wardline_fhir::datetime::now_ms())?;
    let mut r = FhirResponse::no_content();
    r.status = 202;
    r.content_location = Some(format!("{base}/$export-poll-status?_jobId={id}"));
    Ok(r)
}

/// `$export-poll-status?_jobId=…`: 202 with `X-Progress` while the job
/// runs, the manifest when it is complete, 500 when it failed; DELETE
/// cancels it and removes its files.
fn status(jobs: &ExportJobs, svc: &FhirService, req: &OperationRequest<'_>) -> R<FhirResponse> {
    req.audit_as("export-status", "R");
    req.access().check_operation(Operation::Export)?;
    let id = req
        .query()
        .iter()
        .find(|(k, _)| k == "_jobId")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| FhirError::invalid("_jobId is required"))?;
    let unknown = || FhirError::not_found(format!("no export job '{id}'"));
    if req.method() == Method::Delete {
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
        JobStatus::Accepted | JobStatus::InProgress => {
            let mut r = FhirResponse::no_content();
            r.status = 202;
            r.headers.push((
                "x-progress",
                format!("{}: {} resources written", v.status.as_str(), v.progress),
            ));
            r.headers.push(("retry-after", "1".into()));
            Ok(r)
        }
        JobStatus::Complete => {
            // The manifest is plain JSON, not a FHIR resource.
            let mut r = FhirResponse::json(200, manifest(&svc.config().base_url, id, &v));
            r.headers.push(("content-type", "application/json".into()));
            Ok(r)
        }
        JobStatus::Failed => Err(FhirError::new(
            500,
            "exception",
            format!(
                "the export failed: {}",
                v.error.as_deref().unwrap_or("unknown error")
            ),
        )),
    }
}

/// `$export-file/[job]/[file]`: an output file of a complete job.
fn file(jobs: &ExportJobs, req: &OperationRequest<'_>) -> R<FhirResponse> {
    req.audit_as("export-file", "R");
    req.access().check_operation(Operation::Export)?;
    let [job, file] = req.tail() else {
        return Err(FhirError::not_found("no such export file"));
    };
    let path = jobs
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

fn url_with(base: &str, path: &str, q: &[(String, String)]) -> String {
    let qs = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q)
        .finish();
    if qs.is_empty() {
        format!("{base}/{path}")
    } else {
        format!("{base}/{path}?{qs}")
    }
}
