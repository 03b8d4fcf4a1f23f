//! Bulk Data Access (`$export`) — this crate's one contract: **an export
//! writes every current resource it selects, and nothing else, to one
//! NDJSON file per type, with the resources of patients under the national
//! data opt-out left out, and a job the server accepted is never lost.**
//!
//! * [`export_to_dir`] is the engine: it streams the selected resources,
//!   type by type and page by page in `rid` order, into one NDJSON file per
//!   type; memory stays bounded by one page ([`EXPORT_PAGE`]) whatever the
//!   size of the store. It reads through the core's
//!   [`wardline_core::BulkReader`] (one snapshot for the whole export; the
//!   opt-out applied by the core), never the store. `wardline export` calls
//!   it directly.
//! * [`ExportJobs`] runs it for the REST API, one job at a time on a worker
//!   thread. Jobs survive restarts: each job is a directory under the export
//!   directory with a `job.json` written atomically (temporary file, fsync,
//!   rename) at every state change. A job found `accepted` or `in-progress`
//!   when the server starts is run again from the beginning (its partial
//!   files removed). A job is `complete` only after every output file is
//!   fsynced.
//! * [`with_exports`] registers it on a [`wardline_core::FhirService`], as
//!   `wardline_workflow::with_operations` registers the workflows'
//!   operations: `$export` at system, `Patient` and `Group/[id]` level in
//!   the core's operations table, and the status and file URLs of a job as
//!   operation URLs. Each checks `Operation::Export` and is audited by the
//!   interaction.
//!
//! Consistency: there is no upper time bound. Every resource current when the
//! scan reaches it is exported, so a resource written during the export may
//! appear in this export and again in the next `_since=transactionTime` one,
//! but none falls between the two.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod engine;
mod jobs;
mod rest;

pub use engine::{
    EXPORT_PAGE, ExportLevel, ExportOutput, ExportSpec, count, export_to_dir, parse_spec,
};
pub use jobs::{ExportJobs, JobStatus, JobView, manifest};
pub use rest::{
    BULK_DATA_CAPABILITY, GROUP_DEFINITION, PATIENT_DEFINITION, SYSTEM_DEFINITION, with_exports,
};

type R<T> = Result<T, wardline_fhir::FhirError>;

#[cfg(test)]
mod test_support {
    use std::sync::Arc;

    use serde_json::Value;
    use wardline_core::{FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig};

    pub fn service() -> FhirService {
        let store = Arc::new(wardline_store_sqlite::SqliteStore::open_in_memory().unwrap());
        FhirService::new(store, ServiceConfig::default())
    }

    pub fn put(svc: &FhirService, v: Value) {
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
            &wardline_core::Trusted::operator("test"),
        );
        assert!(r.status < 300, "{:?}", r.body);
    }
}
