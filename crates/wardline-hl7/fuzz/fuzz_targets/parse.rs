#![no_main]

use libfuzzer_sys::fuzz_target;
use wardline_hl7::{AckCode, ErrorDetail, Message, ack, ack_unparsed, parse_file_bytes};

fuzz_target!(|data: &[u8]| {
    match Message::parse_bytes(data) {
        Err(e) => {
            let _ = ack_unparsed(data, AckCode::AR, &e);
        }
        Ok(m) => {
            // Every accepted input re-encodes byte for byte.
            assert_eq!(m.encode().as_bytes(), data);
            let _ = m.to_json();
            let _ = ack(&m, AckCode::AE, &[ErrorDetail::new(207, "fuzz")]);
            for p in ["MSH-9.1", "PID-3[2].4.2", "OBX[2]-5"] {
                let _ = m.text(p);
            }
        }
    }
    if let Ok(f) = parse_file_bytes(data) {
        assert_eq!(f.encode().as_bytes(), data);
    }
});
