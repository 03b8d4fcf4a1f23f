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
    audit_trail(svc)["entry"].as_array().map_or(0, Vec::len)
}

/// The audit trail as a searchset Bundle (up to 1000 events).
fn audit_trail(svc: &FhirService) -> serde_json::Value {
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
    b
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
    assert_eq!(
        found.total,
        Some(1),
        "the total counts what the caller sees"
    );
    assert!(!found.more);

    // `_total=accurate` over pages the policy filters: counted as seen.
    let first = svc
        .search_as(
            &who,
            "Patient",
            &[("family", "smith"), ("_count", "1"), ("_total", "accurate")],
        )
        .unwrap();
    assert_eq!(first.total, Some(1), "Smithson, withheld, is not counted");
    let count = svc
        .search_as(
            &who,
            "Patient",
            &[("family", "smith"), ("_summary", "count")],
        )
        .unwrap();
    assert_eq!(count.total, Some(1), "a count tells nothing withheld");
    // Cheap totals: a complete first page is its own total; the
    // unrestricted caller's count is the store's.
    let op = Trusted::operator("t");
    let all = svc
        .search_as(&op, "Patient", &[("family", "smith")])
        .unwrap();
    assert_eq!(all.total, Some(2));
    let paged = svc
        .search_as(&op, "Patient", &[("family", "smith"), ("_count", "1")])
        .unwrap();
    assert_eq!(paged.total, None, "more pages, and no total asked for");
    let asked = svc
        .search_as(
            &op,
            "Patient",
            &[("family", "smith"), ("_count", "1"), ("_total", "accurate")],
        )
        .unwrap();
    assert_eq!(asked.total, Some(2));

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

    // Every call above left one audit event (twelve: three reads, nine
    // searches), and so did the count itself.
    assert_eq!(audit_count(&svc) - before, 13);
    let e = svc
        .search_as(&who, "AuditEvent", &[("_count", "1")])
        .unwrap_err();
    assert_eq!(e.status, 400, "the trail is not searched as records");
}

/// `reads_as`: the searches of one page checked and withheld as
/// `search_as` does, one audit event each with its query, all recorded
/// (also when the page fails) before the result is returned.
#[test]
fn reads_of_one_page_are_audited_together_one_event_per_search() {
    let svc = service(); // Patients a, b (hidden), c
    let who = Narrow {
        agent: Agent::operator("narrow"),
        hidden: "b",
    };
    let before = audit_count(&svc);
    let (smiths, jones) = svc
        .reads_as(&who, |r| {
            let smiths = r.search("Patient", &[("family", "smith")])?;
            let jones = r.search("Patient", &[("family", "jones")])?;
            Ok((smiths, jones))
        })
        .unwrap();
    assert_eq!(smiths.resources.len(), 1);
    assert_eq!(smiths.withheld, 1, "Smithson withheld as search_as would");
    assert_eq!(jones.resources[0]["id"], "c");
    // Two events, and the count's own.
    assert_eq!(audit_count(&svc) - before, 3);
    let text = audit_trail(&svc).to_string();
    // Each event keeps its own query (base64Binary): family=smith, family=jones.
    assert!(
        text.contains("ZmFtaWx5PXNtaXRo") && text.contains("ZmFtaWx5PWpvbmVz"),
        "{text}"
    );
    assert!(text.contains("1 matching resource withheld"), "{text}");

    // A refused search inside fails the page; its event is still recorded.
    let before = audit_count(&svc);
    let e = svc
        .reads_as(&who, |r| {
            r.search("Patient", &[("family", "smith")])?;
            r.search("Observation", &[("patient", "a")])
        })
        .unwrap_err();
    assert_eq!(e.status, 403);
    assert_eq!(audit_count(&svc) - before, 3);
}

#[test]
fn the_bulk_reader_pages_in_rid_order_on_one_snapshot_without_opted_out_patients() {
    let svc = service(); // Patients a, b, c
    svc.transact(&Trusted::operator("seed"), |tx| {
        for p in ["a", "b", "c"] {
            tx.save(json!({"resourceType": "Observation", "id": format!("o-{p}"), "status": "final",
                "code": {"text": "x"}, "subject": {"reference": format!("Patient/{p}")}}))?;
        }
        // b is under the national data opt-out.
        tx.save(json!({"resourceType": "Consent", "id": "oo-b", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/b"}, "provision": {"type": "deny"}}))?;
        Ok(())
    })
    .unwrap();
    let reader = svc.bulk_reader();
    let defs = reader.definitions();
    let q = |t: &str| {
        wardline_fhir::search::parse(defs, Some(t), &[], wardline_fhir::search::Handling::Strict)
            .unwrap()
    };
    assert_eq!(reader.count(&q("Patient")).unwrap(), 3);
    let mut scan = reader.scan().unwrap();
    assert_eq!(scan.opted_out_patients(), 1);
    // Pages of one: b is read but left out, and the cursor moves on.
    let mut ids = Vec::new();
    let (mut after, mut read, mut rids) = (None, 0, Vec::new());
    loop {
        let page = scan.page(&q("Patient"), after, 1).unwrap();
        read += page.read;
        for r in &page.resources {
            ids.push(r.id.clone());
            rids.push(r.rid);
            assert!(!r.json.contains('\n'));
        }
        // Created after the first page: not seen by this scan.
        if after.is_none() {
            svc.transact(&Trusted::operator("seed"), |tx| {
                tx.save(json!({"resourceType": "Patient", "id": "late"}))?;
                Ok(())
            })
            .unwrap();
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(read, 3);
    assert!(rids.windows(2).all(|w| w[0] < w[1]));
    let obs = scan.page(&q("Observation"), None, 100).unwrap();
    let obs: Vec<&str> = obs.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(obs, ["o-a", "o-c"]);
    assert_eq!(scan.withheld(), 2);
    // Reads for the extract's own decisions: 404 unknown, 410 deleted.
    assert_eq!(reader.read("Patient", "a").unwrap()["id"], "a");
    assert_eq!(reader.read("Patient", "nobody").unwrap_err().status, 404);
    svc.transact(&Trusted::operator("seed"), |tx| tx.delete("Patient", "c"))
        .unwrap();
    assert_eq!(reader.read("Patient", "c").unwrap_err().status, 410);
    // Filters only.
    let sorted = wardline_fhir::search::parse(
        defs,
        Some("Patient"),
        &[("_sort".into(), "name".into())],
        wardline_fhir::search::Handling::Strict,
    )
    .unwrap();
    assert_eq!(scan.page(&sorted, None, 10).unwrap_err().status, 400);
}
