#![no_main]

//! Arbitrary bytes → `Message::parse_bytes` → `wardline_hl7_fhir::inbound::apply`
//! in a transaction of a real service (in-memory SQLite) with the default
//! `MappingConfig`, as the engine applies it.
//!
//! The mapping must never panic; an `Err` is fine, except one: the service
//! validates every resource against FHIR R4, and a mapping must never
//! produce invalid FHIR, so the error `records::map_err` gives a refused save
//! ("the mapped resource is not valid FHIR") is a finding: it is printed and
//! the target panics.
//!
//! The message is applied a second time to the same record (a resend, the
//! update path for the patient, encounter, order... created by the first).

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use wardline_core::{FhirService, ServiceConfig, Trusted};
use wardline_hl7::Message;
use wardline_hl7_fhir::records::TxRecords;
use wardline_hl7_fhir::{MappingConfig, inbound};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse_bytes(data) else {
        return;
    };
    let cfg = MappingConfig::default();
    let store = wardline_store_sqlite::SqliteStore::open_in_memory().expect("store");
    let svc = FhirService::new(Arc::new(store), ServiceConfig::default());
    let access = Trusted::operator("fuzz");
    for attempt in ["first", "second"] {
        let mut tx = svc.begin(&access).expect("transaction");
        match inbound::apply(&msg, &mut TxRecords::inbound(&mut tx), &cfg) {
            Ok(_) => tx.commit().expect("commit"),
            Err(e) if e.text.starts_with("the mapped resource is not valid FHIR") => {
                eprintln!("FINDING (apply {attempt}): mapping produced invalid FHIR: {}", e.text);
                eprintln!("input: {:?}", String::from_utf8_lossy(data));
                panic!("invalid FHIR produced: {}", e.text);
            }
            Err(_) => {}
        }
    }
});
