//! The typed record API (`read_as`, `search_as`): the same checks and audit
//! events as REST, typed results, plain errors.

use std::sync::Arc;

use serde_json::json;
use wardline_core::access::{Agent, Operation, forbidden};
use wardline_core::{
    Access, Body, FhirRequest, FhirService, Method, Op, RequestHeaders, ResourceView,
    ServiceConfig, Trusted,
};
use wardline_fhir::FhirError;
use wardline_store::Reader;

/// Sees every patient but `hidden`; may not touch Observations at all.
struct Narrow {
    agent: Agent,
    hidden: &'static str,
}

impl Access for Narrow {
    fn agent(&self) -> &Agent {
        &self.agent
    }
    fn restricted(&self) -> bool {
        true
    }
    fn check_type(&self, _op: Op, t: Option<&str>) -> Result<(), FhirError> {
        match t {
            Some("Observation") => Err(forbidden("no results for this position")),
            _ => Ok(()),
        }
    }
    fn check_resource(
        &self,
        _op: Op,
        r: &ResourceView<'_>,
        _: &dyn Reader,
    ) -> Result<(), FhirError> {
        if r.patient == Some(self.hidden) {
            Err(forbidden("no relationship"))
        } else {
            Ok(())
        }
    }
    fn check_operation(&self, _op: Operation) -> Result<(), FhirError> {
        Ok(())
    }
}

fn service() -> FhirService {
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().unwrap();
    let svc = FhirService::new(Arc::new(store), ServiceConfig::default());
    svc.transact(&Trusted::operator("seed"), |tx| {
        for (id, family) in [("a", "Smith"), ("b", "Smithson"), ("c", "Jones")] {
            tx.save(json!({"resourceType": "Patient", "id": id, "name": [{"family": family}]}))?;
        }
        Ok(())
    })
    .unwrap();
    svc
}

fn audit_count(svc: &FhirService) -> usize {
    let r = svc.handle(
        FhirRequest {
            method: Method::Get,
            path: vec!["AuditEvent".into()],
            query: vec![("_count".into(), "1000".into())],
            headers: RequestHeaders::default(),
            body: None,
        },
        &Trusted::operator("ig"),
    );
    assert_eq!(r.status, 200);
    let b: serde_json::Value = match r.body {
        Body::Raw(t) => serde_json::from_str(&t).unwrap(),
        Body::Json(v) => v,
        _ => panic!("no bundle"),
    };
    b["entry"].as_array().map_or(0, Vec::len)
}

#[test]
fn reads_and_searches_are_checked_typed_and_audited() {
    let svc = service();
    let who = Narrow {
        agent: Agent {
            name: "nurse".into(),
            ..Agent::default()
        },
        hidden: "b",
    };
    let before = audit_count(&svc);

    let a = svc.read_as(&who, "Patient", "a").unwrap().unwrap();
    assert_eq!(a["name"][0]["family"], "Smith");
    assert_eq!(svc.read_as(&who, "Patient", "nobody").unwrap(), None);
    let e = svc.read_as(&who, "Patient", "b").unwrap_err();
    assert_eq!(e.status, 403);

    let found = svc
        .search_as(
            &who,
            "Patient",
            &[("family", "smith"), ("_total", "accurate")],
        )
        .unwrap();
    let ids: Vec<&str> = found
        .resources
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a"]);
    assert_eq!(found.withheld, 1, "Smithson is withheld, and counted");
    assert_eq!(found.total, None, "a total would count the withheld one");
    assert!(!found.more);

    let e = svc
        .search_as(&who, "Observation", &[("patient", "a")])
        .unwrap_err();
    assert_eq!(e.status, 403);
    let e = svc
        .search_as(&who, "Patient", &[("no-such-parameter", "x")])
        .unwrap_err();
    assert_eq!(e.status, 400);

    // Paging and _elements.
    let page = svc
        .search_as(
            &Trusted::operator("t"),
            "Patient",
            &[("_count", "2"), ("_elements", "id")],
        )
        .unwrap();
    assert_eq!(page.resources.len(), 2);
    assert!(page.more);
    assert!(
        page.resources[0].get("name").is_none(),
        "{}",
        page.resources[0]
    );

    // Every call above left one audit event (seven: three reads, four
    // searches), and so did the count itself.
    assert_eq!(audit_count(&svc) - before, 8);
    let e = svc
        .search_as(&who, "AuditEvent", &[("_count", "1")])
        .unwrap_err();
    assert_eq!(e.status, 400, "the trail is not searched as records");
}
