//! The HL7 v2 message store: every message in or out is a FHIR
//! `Communication` in the one versioned store.
//!
//! | what | where in `Communication` |
//! |---|---|
//! | direction, message type, trigger event, destination | `category` codings ([`DIRECTION_SYSTEM`], v2 tables 0076 and 0003, [`DESTINATION_SYSTEM`]) |
//! | sender and control id (MSH-3^MSH-4, MSH-10) | `identifier` (system [`sender_system`], value MSH-10) |
//! | the message as received / sent | `payload[0].contentAttachment` (`x-application/hl7-v2+er7`, base64) |
//! | the ACK sent / received | `payload[1].contentAttachment` |
//! | state | `status`: inbound `completed` (applied), `not-done` (refused: AE/AR), `on-hold` (stored, not mapped); outbound `preparation` (queued), `completed` (AA received), `stopped` (dead letter) |
//! | errors | `statusReason.text` and `note` |
//! | the patient, the resources it touched | `subject`, `about` |
//! | when | `received` (inbound) / `sent` (outbound, when acknowledged) |
//!
//! So the store is searchable with plain FHIR search, e.g.
//! `Communication?category=…hl7v2-direction|inbound&status=not-done&received=ge2026-11-23`
//! or `Communication?patient=…`. The logical id of an inbound record is a hash
//! of sender and control id ([`inbound_id`]), so a duplicate is found by one
//! primary-key read and two racing deliveries cannot both create it.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest;

pub const DIRECTION_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/hl7v2-direction";
pub const DESTINATION_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/hl7v2-destination";
pub const MESSAGE_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0076";
pub const EVENT_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0003";
pub const ER7: &str = "x-application/hl7-v2+er7";

/// The identifier system of messages from one sender (MSH-3 and MSH-4 as
/// written, percent-encoded so that the system is a URI and distinct senders
/// stay distinct).
pub fn sender_system(app: &str, facility: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!("urn:wardline:hl7v2:sender:{}:{}", enc(app), enc(facility))
}

/// The logical id of the record of an inbound message: `v2-` and 60 hex
/// digits of SHA-256 over sender and control id.
pub fn inbound_id(app: &str, facility: &str, control_id: &str) -> String {
    let mut h = sha2::Sha256::new();
    for part in [app, facility, control_id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut id = String::from("v2-");
    for b in digest.iter() {
        id.push_str(&format!("{b:02x}"));
    }
    id.truncate(63);
    id
}

/// A payload entry holding `bytes` as an ER7 attachment.
pub fn attachment(bytes: &[u8], title: &str) -> Value {
    json!({"contentAttachment": {
        "contentType": ER7,
        "title": title,
        "data": base64::engine::general_purpose::STANDARD.encode(bytes),
    }})
}

/// The text of payload `index` (0 the message, 1 the ACK), if present.
pub fn payload_text(record: &Value, index: usize) -> Option<String> {
    let data = record
        .get("payload")?
        .get(index)?
        .get("contentAttachment")?
        .get("data")?
        .as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    String::from_utf8(bytes).ok()
}

pub fn coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

/// The status of a record.
pub fn status(record: &Value) -> &str {
    record.get("status").and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_valid_fhir_ids() {
        let a = inbound_id("PAS", "RWG", "1");
        assert_eq!(a, inbound_id("PAS", "RWG", "1"));
        assert_eq!(a.len(), 63);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        // Length-prefixed: moving characters between parts changes the id.
        assert_ne!(a, inbound_id("PASR", "WG", "1"));
        assert_ne!(a, inbound_id("PAS", "RWG", "2"));
        assert_ne!(
            sender_system("A:B", "C"),
            sender_system("A", "B:C"),
            "separator in a name"
        );
    }

    #[test]
    fn payload_round_trips() {
        let r = json!({"payload": [attachment("MSH|^~\\&|Ω\r".as_bytes(), "message")]});
        assert_eq!(payload_text(&r, 0).as_deref(), Some("MSH|^~\\&|Ω\r"));
        assert_eq!(payload_text(&r, 1), None);
    }
}
