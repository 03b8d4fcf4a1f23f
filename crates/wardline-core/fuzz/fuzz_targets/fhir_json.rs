#![no_main]

//! Arbitrary bytes → the checks every FHIR write passes before it reaches a
//! transaction, in the order `wardline-core` runs them: `json::parse`
//! (malformed JSON and duplicate keys refused), the per-resource limits
//! (`limits::check_resource`), R4 validation (`Definitions::validate`), then
//! search-index extraction (`Definitions::extract_index`) of what was
//! accepted.
//!
//! Findings: a panic anywhere; an error that is not a 4xx (a write must be
//! refused as the client's fault, never answered 500); and an accepted
//! resource that does not survive a round trip (serialised and parsed again,
//! it must be the same value and index the same way).

use libfuzzer_sys::fuzz_target;
use wardline_core::limits::{Limits, check_resource};
use wardline_fhir::datetime::LocalZone;
use wardline_fhir::definitions::r4;
use wardline_fhir::json;

fn refused_as_client_error(stage: &str, status: u16, data: &[u8], detail: &str) {
    if !(400..500).contains(&status) {
        eprintln!("input: {:?}", String::from_utf8_lossy(data));
        panic!("{stage} refused with {status}, not a 4xx: {detail}");
    }
}

fuzz_target!(|data: &[u8]| {
    let value = match json::parse(data) {
        Ok(v) => v,
        Err(e) => return refused_as_client_error("json::parse", e.status, data, &e.to_string()),
    };
    let limits = Limits::default();
    if let Err(e) = check_resource(&value, &limits) {
        return refused_as_client_error("limits", e.status, data, &e.to_string());
    }
    let defs = r4();
    if let Err(e) = defs.validate(&value) {
        return refused_as_client_error("validate", e.status, data, &e.to_string());
    }
    let zone = LocalZone::london();
    let index = defs.extract_index(&value, &zone);
    let text = serde_json::to_vec(&value).expect("a parsed value serialises");
    let again = json::parse(&text).expect("a valid resource, serialised, parses again");
    assert_eq!(again, value, "round trip changed the resource");
    assert_eq!(
        defs.extract_index(&again, &zone).len(),
        index.len(),
        "round trip changed the index"
    );
});
