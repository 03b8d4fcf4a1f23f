//! `$export` over the transport-free service: registered through the
//! core's operations table (listed in the CapabilityStatement at its three
//! levels), kick-off, status, manifest, file and cancellation through the
//! operation URLs, and the access check.

use std::sync::Arc;

use serde_json::{Value, json};
use wardline_core::access::{Agent, Operation, forbidden};
use wardline_core::{
    Access, Body, FhirRequest, FhirService, Method, Op, RequestHeaders, ResourceView,
    ServiceConfig, Trusted,
};
use wardline_fhir::FhirError;

fn service(dir: &std::path::Path) -> FhirService {
    let store = wardline_store_sqlite::SqliteStore::open(&dir.join("t.db")).unwrap();
    wardline_export::with_exports(
        FhirService::new(Arc::new(store), ServiceConfig::default()),
        dir.join("exports"),
    )
    .unwrap()
}

fn call(
    s: &FhirService,
    access: &dyn Access,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    prefer_async: bool,
) -> (u16, Value, wardline_core::FhirResponse) {
    let mut r = s.handle(
        FhirRequest {
            method,
            path: path
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            query: query
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            headers: RequestHeaders {
                prefer_async,
                ..RequestHeaders::default()
            },
            body: None,
        },
        access,
    );
    let v = match std::mem::replace(&mut r.body, Body::None) {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        Body::None => Value::Null,
        Body::File { path, .. } => Value::String(std::fs::read_to_string(path).unwrap()),
    };
    (r.status, v, r)
}

/// Everything but `$export`.
struct NoExport(Agent);

impl Access for NoExport {
    fn agent(&self) -> &Agent {
        &self.0
    }
    fn restricted(&self) -> bool {
        true
    }
    fn check_type(&self, _: Op, _: Option<&str>) -> Result<(), FhirError> {
        Ok(())
    }
    fn check_resource(
        &self,
        _: Op,
        _: &ResourceView<'_>,
        _: &dyn wardline_store::Reader,
    ) -> Result<(), FhirError> {
        Ok(())
    }
    fn check_operation(&self, op: Operation) -> Result<(), FhirError> {
        match op {
            Operation::Export => Err(forbidden("no export activity")),
            _ => Ok(()),
        }
    }
}

#[test]
fn export_is_registered_listed_run_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let op = Trusted::operator("test");
    for i in 0..3 {
        let (st, _, _) = {
            let r = s.handle(
                FhirRequest {
                    method: Method::Put,
                    path: vec!["Patient".into(), format!("p{i}")],
                    query: vec![],
                    headers: RequestHeaders::default(),
                    body: Some(
                        json!({"resourceType": "Patient", "id": format!("p{i}")})
                            .to_string()
                            .into_bytes(),
                    ),
                },
                &op,
            );
            (r.status, (), ())
        };
        assert!(st < 300);
    }

    // Listed in the CapabilityStatement at its three levels.
    let (_, cs, _) = call(&s, &op, Method::Get, "metadata", &[], false);
    let resource = |t: &str| {
        cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == t)
            .unwrap()
            .clone()
    };
    let has = |ops: &Value, name: &str, def: &str| {
        ops.as_array().is_some_and(|os| {
            os.iter()
                .any(|o| o["name"] == name && o["definition"] == def)
        })
    };
    assert!(has(
        &resource("Patient")["operation"],
        "export",
        wardline_export::PATIENT_DEFINITION
    ));
    assert!(has(
        &resource("Patient")["operation"],
        "everything",
        wardline_core::EVERYTHING_DEFINITION
    ));
    assert!(has(
        &resource("Group")["operation"],
        "export",
        wardline_export::GROUP_DEFINITION
    ));
    assert!(has(
        &cs["rest"][0]["operation"],
        "export",
        wardline_export::SYSTEM_DEFINITION
    ));
    // The status and file URLs are not operations.
    assert!(!cs.to_string().contains("export-poll-status"));
    // The server declares the Bulk Data IG's CapabilityStatement.
    assert_eq!(
        cs["instantiates"],
        json!(["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"])
    );

    // Refused without the export activity, at every URL.
    let no = NoExport(Agent::operator("no-export"));
    let (st, _, _) = call(&s, &no, Method::Get, "$export", &[], true);
    assert_eq!(st, 403);
    let (st, _, _) = call(
        &s,
        &no,
        Method::Get,
        "$export-poll-status",
        &[("_jobId", "x")],
        false,
    );
    assert_eq!(st, 403);
    let (st, _, _) = call(
        &s,
        &no,
        Method::Get,
        "$export-file/x/Patient.ndjson",
        &[],
        false,
    );
    assert_eq!(st, 403);

    // Kick-off, poll, manifest, file.
    let (st, _, _) = call(&s, &op, Method::Get, "$export", &[], false);
    assert_eq!(st, 400, "Prefer: respond-async is required");
    let (st, _, _) = call(&s, &op, Method::Get, "Group/nope/$export", &[], true);
    assert_eq!(st, 404);
    let (st, _, r) = call(
        &s,
        &op,
        Method::Get,
        "$export",
        &[("_type", "Patient")],
        true,
    );
    assert_eq!(st, 202);
    let status_url = r.content_location.unwrap();
    let job = status_url.split("_jobId=").nth(1).unwrap().to_owned();
    let manifest = loop {
        let (st, v, r) = call(
            &s,
            &op,
            Method::Get,
            "$export-poll-status",
            &[("_jobId", &job)],
            false,
        );
        match st {
            202 => {
                assert!(r.headers.iter().any(|(k, _)| *k == "x-progress"));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            200 => break v,
            _ => panic!("status {st}: {v}"),
        }
    };
    assert_eq!(manifest["output"][0]["count"], 3);
    let url = manifest["output"][0]["url"].as_str().unwrap();
    let path = &url[url.find("$export-file").unwrap()..];
    let (st, text, _) = call(&s, &op, Method::Get, path, &[], false);
    assert_eq!(st, 200);
    assert_eq!(text.as_str().unwrap().lines().count(), 3);
    let (st, _, _) = call(
        &s,
        &op,
        Method::Get,
        &format!("$export-file/{job}/Nope.ndjson"),
        &[],
        false,
    );
    assert_eq!(st, 404);

    // Audited under the export subtypes.
    let count = |subtype: &str| {
        let (st, b, _) = call(
            &s,
            &op,
            Method::Get,
            "AuditEvent",
            &[("subtype", subtype), ("_count", "1000")],
            false,
        );
        assert_eq!(st, 200);
        b["entry"].as_array().map_or(0, Vec::len)
    };
    assert!(count("export") >= 3);
    assert!(count("export-status") >= 2);
    assert!(count("export-file") >= 2);

    // Cancelled (deleted): gone.
    let (st, _, _) = call(
        &s,
        &op,
        Method::Delete,
        "$export-poll-status",
        &[("_jobId", &job)],
        false,
    );
    assert_eq!(st, 202);
    let (st, _, _) = call(
        &s,
        &op,
        Method::Get,
        "$export-poll-status",
        &[("_jobId", &job)],
        false,
    );
    assert_eq!(st, 404);
    let (st, _, _) = call(&s, &op, Method::Get, path, &[], false);
    assert_eq!(st, 404);
}

#[test]
fn without_the_export_crate_there_is_no_export() {
    let dir = tempfile::tempdir().unwrap();
    let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let s = FhirService::new(Arc::new(store), ServiceConfig::default());
    let op = Trusted::operator("test");
    for path in [
        "$export",
        "$export-poll-status",
        "$export-file/j/Patient.ndjson",
    ] {
        let (st, _, _) = call(&s, &op, Method::Get, path, &[("_jobId", "j")], true);
        assert_eq!(st, 404, "{path}");
    }
}
