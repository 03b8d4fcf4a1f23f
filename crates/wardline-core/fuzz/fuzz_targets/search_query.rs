#![no_main]

//! Arbitrary bytes → a FHIR search as a client sends it: the first byte picks
//! the resource type (or a system-level search), the rest is the query string,
//! decoded as the HTTP layer decodes it (`application/x-www-form-urlencoded`).
//! The query is parsed (`search::parse_in`, in the trust's zone, lenient and
//! strict), and every query that parses strictly is run through the service
//! (`FhirService::handle`) against one empty in-memory SQLite store, as a
//! trusted operator, so the SQL it compiles to is executed. The service runs
//! without its audit trail (`without_audit_for_benchmark`): the trail is not
//! what is fuzzed, and its rows would grow the store with every execution.
//!
//! Findings: a panic anywhere, and any answer of 500 or above — a search the
//! store cannot run must be refused as a 4xx naming what was wrong (issue 21:
//! 999 parameters or 3,000 OR values once answered 500 with SQLite's error).

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use wardline_core::{FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Trusted};
use wardline_fhir::datetime::LocalZone;
use wardline_fhir::definitions::r4;
use wardline_fhir::search::{self, Handling};

const TYPES: [&str; 8] = [
    "Patient",
    "Observation",
    "Encounter",
    "Condition",
    "MedicationRequest",
    "ServiceRequest",
    "Appointment",
    "Practitioner",
];

fn service() -> &'static FhirService {
    static SVC: OnceLock<FhirService> = OnceLock::new();
    SVC.get_or_init(|| {
        let store = wardline_store_sqlite::SqliteStore::open_in_memory().expect("store");
        FhirService::new(Arc::new(store), ServiceConfig::default()).without_audit_for_benchmark()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let resource_type = TYPES.get(usize::from(pick) % (TYPES.len() + 1)).copied();
    let params: Vec<(String, String)> = form_urlencoded::parse(rest).into_owned().collect();
    let zone = LocalZone::london();
    let mut parsed = false;
    for handling in [Handling::Lenient, Handling::Strict] {
        match search::parse_in(r4(), &zone, resource_type, &params, handling) {
            Ok(_) => parsed = handling == Handling::Strict,
            Err(e) => assert!(
                (400..500).contains(&e.status),
                "parse_in refused with {} (not a 4xx): {e}",
                e.status
            ),
        }
    }
    if !parsed {
        return;
    }
    let req = FhirRequest {
        method: Method::Get,
        path: resource_type.map(str::to_owned).into_iter().collect(),
        query: params,
        headers: RequestHeaders::default(),
        body: None,
    };
    let resp = service().handle(req, &Trusted::operator("fuzz"));
    if resp.status >= 500 {
        eprintln!("query: {:?} on {resource_type:?}", String::from_utf8_lossy(rest));
        panic!("search answered {}", resp.status);
    }
});
