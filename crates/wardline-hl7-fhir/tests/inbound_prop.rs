//! An arbitrary ADT^A01 (random field values, including delimiters, escapes,
//! HL7 nulls and non-ASCII text) either applies or returns a `MapError`;
//! it never panics, and whatever it saves is valid R4 (checked on save).

use proptest::prelude::*;
use wardline_hl7::Message;

mod support;
use support::TestRecord;
use wardline_hl7_fhir::{MapErrorKind, MappingConfig};

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\"\"".to_owned()),
        Just("9434765919^^^NHS^NH".to_owned()),
        Just("RWG1^^^RWG^MR~9434765870^^^NHS".to_owned()),
        Just("20240612093000".to_owned()),
        Just("202410270130+0100".to_owned()),
        Just("WARD7^BAY2^BED4^RWG".to_owned()),
        Just("1234567^JONES^Bob".to_owned()),
        "[0-9]{0,16}",
        "[A-Za-z0-9 ^~&\\\\.+-]{0,24}",
        "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_a01_never_panics(
        pid in proptest::collection::vec(value(), 30),
        pv1 in proptest::collection::vec(value(), 45),
        evn in proptest::collection::vec(value(), 6),
    ) {
        let clean = |v: &[String]| -> String {
            v.iter().map(|s| s.replace(['|', '\r', '\n'], " ")).collect::<Vec<_>>().join("|")
        };
        let text = format!(
            "MSH|^~\\&|PAS|RWG|EPR|RWG|20240612093000||ADT^A01^ADT_A01|1|P|2.4\rEVN|{}\rPID|{}\rPV1|{}\r",
            clean(&evn), clean(&pid), clean(&pv1)
        );
        let Ok(msg) = Message::parse(&text) else { return Ok(()); };
        let records = TestRecord::new();
        match records.apply(&msg, &MappingConfig::default()) {
            Ok(a) => prop_assert!(a.patient_id.is_some()),
            Err(e) => {
                prop_assert!(e.kind != MapErrorKind::Internal, "internal error (invalid FHIR?): {e:?}\n{text}");
                prop_assert!(!e.text.is_empty());
            }
        }
    }
}
