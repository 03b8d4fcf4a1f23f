//! Order communications: requests for tests and imaging, as
//! `ServiceRequest`s (FHIR R4; `intent` `order`).
//!
//! This is the one home of an order's **status lifecycle** (FHIR
//! RequestStatus), which every channel that changes an order obeys — today
//! the HL7 v2 ORM/OML mapping (`wardline-hl7-fhir`), and the requesting and
//! acknowledgement pages that build on it:
//!
//! ```text
//! draft ──► active ◄──► on-hold
//!   │         │  │          │
//!   │         │  └──► completed
//!   ▼         ▼          ▼
//! revoked (cancelled) ◄──┘        any ──► entered-in-error (recorded in error)
//! ```
//!
//! * `draft` may become `active`, `on-hold` or `revoked`; `active` and
//!   `on-hold` move between each other and may become `completed` or
//!   `revoked`.
//! * `completed` and `revoked` are ends: a finished or cancelled order is
//!   not started again — a new order is placed instead, so the history of
//!   what was asked for and when stays true.
//! * Any order may be marked `entered-in-error`, and that is final.
//! * `unknown` (a status an external system could not tell) may become
//!   anything; nothing becomes `unknown` once known.
//! * Setting the status an order already has is no change (a message sent
//!   again).
//!
//! [`request`] places a requisition from the chart (ServiceRequests,
//! Specimens, the answers to the orderable's questions; the duplicate-order
//! rule) and cancels an order; [`label`] prints the specimen labels with
//! their Code 128 barcodes.

pub mod catalogue;
pub mod label;
pub mod request;

pub use request::{
    DuplicateWarning, OrderLine, OrderRequest, OrdersError, Placed, RequestLine, Requisition,
    SpecimenLine, cancel, cancel_at, cancel_in, patient_orders, place, place_at, place_in,
    requisition,
};

use serde::Serialize;
use serde_json::{Value, json};

/// A status change the lifecycle does not allow, with a sentence to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifecycleError {
    pub from: String,
    pub to: String,
    pub message: String,
}

impl std::fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LifecycleError {}

/// The FHIR R4 RequestStatus codes.
pub const STATUSES: [&str; 7] = [
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "entered-in-error",
    "unknown",
];

/// Whether an order may go from `from` to `to` (see the module
/// documentation). Unknown codes are never allowed.
pub fn allowed(from: &str, to: &str) -> bool {
    if !STATUSES.contains(&from) || !STATUSES.contains(&to) {
        return false;
    }
    if from == to {
        return true;
    }
    match (from, to) {
        (_, "entered-in-error") => from != "entered-in-error",
        (_, "unknown") => false,
        ("unknown", _) => true,
        ("draft", "active" | "on-hold" | "revoked") => true,
        ("active", "on-hold" | "completed" | "revoked") => true,
        ("on-hold", "active" | "completed" | "revoked") => true,
        _ => false,
    }
}

fn label(status: &str) -> &str {
    match status {
        "draft" => "a draft",
        "active" => "active",
        "on-hold" => "on hold",
        "revoked" => "cancelled",
        "completed" => "completed",
        "entered-in-error" => "marked as entered in error",
        other => other,
    }
}

/// Sets the status of a ServiceRequest (new or stored), or refuses the
/// change. A new one (no `status` yet) may start in any status but
/// `entered-in-error`, `revoked` and `completed`: an order is placed before
/// it can end. Returns whether the status changed.
pub fn set_status(order: &mut Value, to: &str) -> Result<bool, LifecycleError> {
    let from = order["status"].as_str().map(str::to_owned);
    let refuse = |from: &str, message: String| LifecycleError {
        from: from.to_owned(),
        to: to.to_owned(),
        message,
    };
    match from.as_deref() {
        None => {
            if !STATUSES.contains(&to) || matches!(to, "entered-in-error" | "revoked" | "completed")
            {
                return Err(refuse(
                    "",
                    format!("An order cannot be placed already {}.", label(to)),
                ));
            }
        }
        Some(f) if f == to => return Ok(false),
        Some(f) if !allowed(f, to) => {
            let why = match f {
                "completed" | "revoked" => {
                    " A finished or cancelled order is not started again: place a new order."
                }
                "entered-in-error" => " An order marked as entered in error is final.",
                _ => "",
            };
            return Err(refuse(
                f,
                format!(
                    "The order is {}, so it cannot become {}.{why}",
                    label(f),
                    label(to)
                ),
            ));
        }
        Some(_) => {}
    }
    order["status"] = json!(to);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_table() {
        let ok = [
            ("draft", "active"),
            ("draft", "revoked"),
            ("active", "on-hold"),
            ("on-hold", "active"),
            ("active", "completed"),
            ("on-hold", "revoked"),
            ("completed", "entered-in-error"),
            ("revoked", "entered-in-error"),
            ("unknown", "active"),
            ("active", "active"),
        ];
        for (f, t) in ok {
            assert!(allowed(f, t), "{f} -> {t}");
        }
        let refused = [
            ("completed", "active"),
            ("revoked", "active"),
            ("revoked", "completed"),
            ("entered-in-error", "active"),
            ("entered-in-error", "revoked"),
            ("active", "draft"),
            ("active", "unknown"),
            ("active", "nonsense"),
        ];
        for (f, t) in refused {
            assert!(!allowed(f, t), "{f} -> {t}");
        }
    }

    #[test]
    fn set_status_changes_refuses_and_says_why() {
        let mut o = json!({"resourceType": "ServiceRequest"});
        assert!(set_status(&mut o, "revoked").is_err(), "not placed yet");
        assert!(set_status(&mut o, "active").unwrap());
        assert!(
            !set_status(&mut o, "active").unwrap(),
            "a resend changes nothing"
        );
        assert!(set_status(&mut o, "completed").unwrap());
        let e = set_status(&mut o, "active").unwrap_err();
        assert_eq!((e.from.as_str(), e.to.as_str()), ("completed", "active"));
        assert!(e.message.contains("place a new order"), "{e}");
        assert_eq!(o["status"], "completed", "a refusal changes nothing");
    }

    proptest::proptest! {
        /// Whatever the path, nothing leaves entered-in-error, and a
        /// completed or cancelled order never becomes active again.
        #[test]
        fn ends_are_ends(path in proptest::collection::vec(proptest::sample::select(&STATUSES[..]), 1..12)) {
            let mut o = json!({"resourceType": "ServiceRequest", "status": "active"});
            let mut ended: Option<String> = None;
            for to in path {
                let before = o["status"].as_str().unwrap_or_default().to_owned();
                let r = set_status(&mut o, to);
                if before == "entered-in-error" {
                    proptest::prop_assert!(to == "entered-in-error" || r.is_err());
                }
                if let Some(e) = &ended && r.is_ok() {
                    proptest::prop_assert!(to == e.as_str() || to == "entered-in-error");
                }
                let now = o["status"].as_str().unwrap_or_default();
                if matches!(now, "completed" | "revoked" | "entered-in-error") {
                    ended = Some(now.to_owned());
                }
            }
        }
    }
}
