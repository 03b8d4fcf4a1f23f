//! What the workflow tests share: the stores every test runs on. Each test
//! file is its own crate and includes this with `mod support;`; a file uses
//! part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::sync::Arc;

use serde_json::Value;
use wardline_auth::rbac::{Role, required_activity};
use wardline_core::access::{Operation, forbidden};
use wardline_core::{
    Access, Agent, Body, FhirRequest, FhirService, Method, Op, RequestHeaders, ResourceView,
    ServiceConfig, Trusted,
};
use wardline_fhir::FhirError;
use wardline_store::{Reader, Store};

/// One backend a test runs on.
pub struct Backend {
    /// `sqlite` or `postgres`, for assertion messages.
    pub name: &'static str,
    pub svc: FhirService,
    /// The SQLite file's directory, removed when the backend is dropped.
    _dir: Option<tempfile::TempDir>,
}

/// The raw stores: SQLite in a fresh temporary directory always, and
/// PostgreSQL in a fresh schema whose name begins `prefix` when `WARDLINE_TEST_PG_URL`
/// is set (or required by `WARDLINE_REQUIRE_PG`).
pub fn stores(prefix: &str) -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let mut out: Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> =
        vec![("sqlite", Arc::new(sqlite), Some(dir))];
    if let Some((pg, _, _)) = wardline_store_postgres::testenv::store(prefix) {
        out.push(("postgres", Arc::new(pg), None));
    }
    out
}

/// A service over each of [`stores`], made by `wrap` (the write rules and
/// operations the test needs: `wardline_workflow::with_rules`, …, or none)
/// and seeded by `seed`.
pub fn backends(
    prefix: &str,
    wrap: impl Fn(FhirService) -> FhirService,
    seed: impl Fn(&FhirService),
) -> Vec<Backend> {
    stores(prefix)
        .into_iter()
        .map(|(name, store, dir)| {
            let svc = wrap(FhirService::new(store, ServiceConfig::default()));
            seed(&svc);
            Backend {
                name,
                svc,
                _dir: dir,
            }
        })
        .collect()
}

/// The service as it is, without write rules.
pub fn plain(svc: FhirService) -> FhirService {
    svc
}

// ------------------------------------------------ users and plain REST calls
// (the clinical documents' tests: `documents_discharge.rs`, `documents_letters.rs`)

pub fn op() -> Trusted {
    Trusted::operator("documents-test")
}

/// A user whose position is `role`: the real RBAC table decides each type,
/// and the real screening rule each MedicationRequest write (as the policy
/// applies it).
pub struct AsRole {
    pub agent: Agent,
    pub role: Role,
}

impl Access for AsRole {
    fn agent(&self) -> &Agent {
        &self.agent
    }
    fn check_type(&self, op: Op, t: Option<&str>) -> Result<(), FhirError> {
        match t {
            Some(t) if !self.role.permits(required_activity(t, op)) => {
                Err(forbidden(format!("{} may not {op:?} {t}", self.role)))
            }
            _ => Ok(()),
        }
    }
    fn check_resource(
        &self,
        op: Op,
        r: &ResourceView<'_>,
        reader: &dyn Reader,
    ) -> Result<(), FhirError> {
        let _ = reader;
        self.check_type(op, Some(r.resource_type))?;
        Ok(())
    }
    fn check_operation(&self, _: Operation) -> Result<(), FhirError> {
        Ok(())
    }
}

pub fn as_role(role: Role, who: &str) -> AsRole {
    AsRole {
        agent: Agent {
            who: Some(format!("Practitioner/{who}")),
            ..Agent::operator(role.code())
        },
        role,
    }
}

pub fn doctor() -> AsRole {
    let mut d = as_role(Role::Doctor, "dr1");
    d.agent.position = Some("PractitionerRole/pr1".into());
    d
}

pub fn req(method: Method, path: Vec<String>, body: Option<Value>) -> FhirRequest {
    FhirRequest {
        method,
        path,
        query: vec![],
        headers: RequestHeaders::default(),
        body: body.map(|b| b.to_string().into_bytes()),
    }
}

pub fn json_of(b: Body) -> Value {
    match b {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => panic!("no body"),
    }
}

pub fn put(svc: &FhirService, r: Value) {
    let (t, id) = (
        r["resourceType"].as_str().unwrap().to_owned(),
        r["id"].as_str().unwrap().to_owned(),
    );
    let res = svc.handle(
        req(Method::Put, vec![t.clone(), id.clone()], Some(r)),
        &op(),
    );
    assert!(res.status < 300, "{t}/{id}: {:?}", res.body);
}

pub fn get(svc: &FhirService, t: &str, id: &str) -> Value {
    let r = svc.handle(req(Method::Get, vec![t.into(), id.into()], None), &op());
    assert_eq!(r.status, 200, "{t}/{id}");
    json_of(r.body)
}

pub fn rest(svc: &FhirService, method: Method, path: &[&str], body: Option<Value>) -> (u16, Value) {
    let r = svc.handle(
        req(method, path.iter().map(|s| (*s).to_owned()).collect(), body),
        &op(),
    );
    let status = r.status;
    (
        status,
        match r.body {
            Body::Json(v) => v,
            Body::Raw(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
            _ => Value::Null,
        },
    )
}
