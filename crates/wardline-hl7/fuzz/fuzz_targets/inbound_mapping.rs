#![no_main]

//! Arbitrary bytes → `Message::parse_bytes` → `wardline_hl7_fhir::inbound::apply`
//! on an empty `MemoryRecords` with the default `MappingConfig`.
//!
//! The mapping must never panic; an `Err` is fine, except one:
//! `MemoryRecords::save` validates every resource against FHIR R4 and turns
//! an invalid one into `MapError::internal("invalid <type> produced: ...")`.
//! A mapping must never produce invalid FHIR, so that error is a finding:
//! it is printed and the target panics.
//!
//! The message is applied a second time to the same records (a resend, the
//! update path for the patient, encounter, order... created by the first).

use libfuzzer_sys::fuzz_target;
use wardline_hl7::Message;
use wardline_hl7_fhir::memory::MemoryRecords;
use wardline_hl7_fhir::{MapErrorKind, MappingConfig, inbound};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse_bytes(data) else {
        return;
    };
    let cfg = MappingConfig::default();
    let mut records = MemoryRecords::new();
    for attempt in ["first", "second"] {
        if let Err(e) = inbound::apply(&msg, &mut records, &cfg)
            && e.kind == MapErrorKind::Internal
            && e.text.starts_with("invalid ")
            && e.text.contains(" produced: ")
        {
            eprintln!(
                "FINDING (apply {attempt}): mapping produced invalid FHIR: {}",
                e.text
            );
            eprintln!("input: {:?}", String::from_utf8_lossy(data));
            panic!("invalid FHIR produced: {}", e.text);
        }
    }
});
