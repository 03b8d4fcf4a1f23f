//! Outpatient clinics and appointments (issue 19): clinic templates and
//! their slots, booking from the outpatient waiting list with the trust's
//! reasonable-offer rules, rebooking, cancellation, arrival, the attendance
//! outcome (did-not-attend included) and the clinic list for the day.
//!
//! # The model (FHIR R4; no second schema)
//!
//! * **A clinic template** is a `Schedule`: `actor` the consultant
//!   `Practitioner` and the clinic `Location`, `serviceType` the clinic's
//!   specialty (a treatment function code, system [`SPECIALTY_SYSTEM`],
//!   the code a waiting-list entry names), `planningHorizon` the dates it is
//!   valid from and to, `comment` its name, and [`TEMPLATE_EXT`] with the
//!   sub-extensions `weekday` (0..*, `mon` … `sun`), `sessionStart` and
//!   `sessionEnd` (`valueTime`, the trust's local time), `slotMinutes`
//!   (`valueInteger`), `kind` ([`Kind`]: `new` | `follow-up`) and `mode`
//!   ([`Mode`]: `face-to-face` | `virtual`). [`clinics`] writes and reads it.
//! * **A slot** is a `Slot` of that `schedule`: `start`/`end`, `status`
//!   `free` or `busy`, `serviceType` the template's, `appointmentType` the
//!   kind ([`KIND_SYSTEM`]), [`MODE_EXT`] the mode, and the identifier
//!   [`SLOT_ID_SYSTEM`] `{schedule id}/{start, UTC}`, which makes generating
//!   a template's slots twice create none the second time.
//! * **An appointment** is an `Appointment` (`status` `booked` → `arrived` →
//!   `fulfilled`, or `cancelled` with `cancelationReason` and
//!   [`CANCELLED_BY_EXT`] `patient` | `hospital`, or `noshow`), `slot` the
//!   Slot, `start`/`end` the slot's, `participant` the patient, consultant
//!   and clinic `Location`, `basedOn` the waiting-list entry (a
//!   `ServiceRequest`, see `crate::waiting`), `appointmentType` the kind,
//!   [`MODE_EXT`] the mode, and, once seen, [`OUTCOME_EXT`] the attendance
//!   outcome. A rebooked appointment is `cancelled` with the reason and
//!   [`REBOOKED_EXT`] naming its successor.
//! * **Arrival** makes the appointment `arrived` and opens an `Encounter`
//!   (class `AMB`, `in-progress`, `appointment` the Appointment,
//!   `basedOn` the entry): the attendance that the clinic letters
//!   (`crate::documents::letters`) are written for.
//! * **An offer** of dates is a `Communication` ([`OFFER_CODE`]): the slots
//!   offered (`about`), the date made, the patient's answer and whether the
//!   offer was reasonable ([`OFFER_EXT`]); see [`booking`].
//!
//! # Rules (one home each)
//!
//! * **A slot is busy while an appointment holds it**, on every channel:
//!   [`SlotStatus`], a write hook, sets the Slot `busy` or `free` in the
//!   transaction that books, moves or cancels an appointment.
//! * **One booked appointment per slot**, on every channel: [`SlotRule`], a
//!   write rule registered by `crate::with_rules`, locks the Slot
//!   (`Slot/{id}`, the key [`booking`] takes too) and refuses an
//!   appointment that would hold a slot another appointment holds, a slot
//!   that is not there, or a slot of the other kind (a follow-up patient in
//!   a new-patient slot): 422 at `Appointment.slot[i]` /
//!   `Appointment.appointmentType`. A plain REST `POST Appointment` and an
//!   HL7 `SIU^S12` are refused the same way.
//! * Booking, rebooking, cancellation, arrival and outcomes are functions
//!   over a `Tx` (`…_in`) with an audited entry each (audit subtypes
//!   `outpatients-template`, `outpatients-book`, `outpatients-cancel`,
//!   `outpatients-arrive`, `outpatients-outcome`, `outpatients-list`).

pub mod attendance;
pub mod booking;
pub mod clinics;
pub mod list;
pub mod rule;

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

pub use rule::{SlotRule, SlotStatus};

/// A clinic template's shape (on `Schedule`; see the module documentation).
pub const TEMPLATE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/clinic-template";
/// A slot's or appointment's mode (`valueCode` `face-to-face` | `virtual`).
pub const MODE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/clinic-mode";
/// New or follow-up (`Slot.appointmentType`, `Appointment.appointmentType`).
pub const KIND_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/clinic-kind";
/// A slot's identifier: `{schedule id}/{start, UTC}`.
pub const SLOT_ID_SYSTEM: &str = "https://fhir.wardline.invalid/Id/clinic-slot";
/// A slot's second identifier, for channels that know the clinic's place
/// and the time but not Wardline's schedule (an HL7 SIU's AIL and start):
/// `{Location id}/{start, UTC}` ([`slot_at_key`]).
pub const SLOT_AT_SYSTEM: &str = "https://fhir.wardline.invalid/Id/clinic-slot-at";
/// NHS treatment function codes (the clinic's and the entry's specialty):
/// the RTT pathways' system.
pub const SPECIALTY_SYSTEM: &str = crate::rtt::TREATMENT_FUNCTION_SYSTEM;
/// Who cancelled (`valueCode` `patient` | `hospital`, on Appointment).
pub const CANCELLED_BY_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/cancelled-by";
/// The appointment that replaced a rebooked one (`valueReference`).
pub const REBOOKED_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/rebooked-as";
/// The attendance outcome (sub-extensions `outcome`, `rttStatus`, `by`, `at`,
/// `reason`, on Appointment).
pub const OUTCOME_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/attendance-outcome";
/// An offer's details (sub-extensions `reasonable`, `answer`, on Communication).
pub const OFFER_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/appointment-offer";
/// `Communication.category` code (system `pmi::TASK_SYSTEM`) of an offer.
pub const OFFER_CODE: &str = "appointment-offer";
/// `Task.code` of a patient who declined two reasonable offers.
pub const DECLINED_REVIEW_CODE: &str = "declined-offers-review";

/// The appointment statuses that hold their slot.
pub const HOLDING: [&str; 4] = ["booked", "arrived", "checked-in", "fulfilled"];

/// New patient or follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    New,
    FollowUp,
}

impl Kind {
    pub fn code(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::FollowUp => "follow-up",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "new" => Some(Kind::New),
            "follow-up" => Some(Kind::FollowUp),
            _ => None,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Kind::New => "New",
            Kind::FollowUp => "Follow-up",
        }
    }
    /// The coded concept (`appointmentType`).
    pub fn concept(self) -> Value {
        json!({"coding": [{"system": KIND_SYSTEM, "code": self.code(), "display": self.label()}]})
    }
    /// The kind a Slot's or Appointment's `appointmentType` names.
    pub fn of(r: &Value) -> Option<Kind> {
        r["appointmentType"]["coding"]
            .as_array()?
            .iter()
            .find(|c| c["system"] == KIND_SYSTEM)
            .and_then(|c| Kind::parse(c["code"].as_str()?))
    }
}

/// Face to face or virtual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    FaceToFace,
    Virtual,
}

impl Mode {
    pub fn code(self) -> &'static str {
        match self {
            Mode::FaceToFace => "face-to-face",
            Mode::Virtual => "virtual",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "face-to-face" => Some(Mode::FaceToFace),
            "virtual" => Some(Mode::Virtual),
            _ => None,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Mode::FaceToFace => "Face to face",
            Mode::Virtual => "Virtual",
        }
    }
    /// The mode a Slot or Appointment carries (face to face when none).
    pub fn of(r: &Value) -> Mode {
        r["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"] == MODE_EXT)
            .and_then(|e| Mode::parse(e["valueCode"].as_str()?))
            .unwrap_or(Mode::FaceToFace)
    }
}

/// Epoch milliseconds as a FHIR instant to the second, UTC.
pub fn instant_of(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    crate::orders::request::fhir_time(t)
}

/// The [`SLOT_AT_SYSTEM`] value of a slot at `location` (a Location id)
/// starting at `start` (any FHIR instant); `None` when `start` is not one.
pub fn slot_at_key(location: &str, start: &str) -> Option<String> {
    let (ms, _) = wardline_fhir::datetime::parse_range(start)?;
    Some(format!("{location}/{}", instant_of(ms)))
}

/// A simple extension's value member on `r` (`valueCode`, `valueString`, …).
pub(crate) fn ext<'a>(r: &'a Value, url: &str) -> Option<&'a Value> {
    r["extension"].as_array()?.iter().find(|e| e["url"] == url)
}

/// Sets a simple extension on `r`, replacing one of the same URL.
pub(crate) fn set_ext(r: &mut Value, url: &str, member: &str, value: Value) {
    let mut e = json!({"url": url});
    e[member] = value;
    match r.get_mut("extension").and_then(Value::as_array_mut) {
        Some(es) => {
            es.retain(|x| x["url"] != url);
            es.push(e);
        }
        None => r["extension"] = json!([e]),
    }
}

/// A sub-extension of the complex extension `url` on `r`.
pub(crate) fn sub<'a>(r: &'a Value, url: &str, part: &str) -> Option<&'a Value> {
    ext(r, url)?["extension"]
        .as_array()?
        .iter()
        .find(|s| s["url"] == part)
}

/// What went wrong with an outpatient action, in a sentence, with the HTTP
/// status that fits ([`OutpatientsError::status`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OutpatientsError {
    /// The request is wrong (400); the first member names the field.
    Invalid(String, String),
    /// 404.
    NotFound(String),
    /// The caller may not (403).
    Forbidden(String),
    /// The record's state does not allow it — the slot was taken, the
    /// appointment is no longer booked — or someone changed it at the same
    /// moment (409).
    Conflict(String),
    /// Wardline failed (500).
    Store(String),
}

impl OutpatientsError {
    pub fn invalid(field: &str, m: impl Into<String>) -> OutpatientsError {
        OutpatientsError::Invalid(field.to_owned(), m.into())
    }
    pub fn status(&self) -> u16 {
        match self {
            OutpatientsError::Invalid(..) => 400,
            OutpatientsError::NotFound(_) => 404,
            OutpatientsError::Forbidden(_) => 403,
            OutpatientsError::Conflict(_) => 409,
            OutpatientsError::Store(_) => 500,
        }
    }
    pub fn message(&self) -> String {
        match self {
            OutpatientsError::Invalid(_, m)
            | OutpatientsError::NotFound(m)
            | OutpatientsError::Forbidden(m)
            | OutpatientsError::Conflict(m)
            | OutpatientsError::Store(m) => m.clone(),
        }
    }
    /// The form field at fault, for an error summary's link.
    pub fn field(&self) -> Option<&str> {
        match self {
            OutpatientsError::Invalid(f, _) => Some(f),
            _ => None,
        }
    }
}

impl std::fmt::Display for OutpatientsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for OutpatientsError {}

impl From<FhirError> for OutpatientsError {
    fn from(e: FhirError) -> OutpatientsError {
        use crate::fhir::Refusal as R;
        // A slot taken by another booker is the clinic's everyday conflict:
        // say so, not "invalid".
        let slot_taken = e.status == 422
            && e.issues
                .iter()
                .any(|i| i.code == "duplicate" && i.expression.iter().any(|x| x.contains("slot")));
        match R::of(&e, "appointment") {
            R::Forbidden(m) => OutpatientsError::Forbidden(m),
            R::NotFound(m) => OutpatientsError::NotFound(m),
            R::Concurrent(m) => OutpatientsError::Conflict(m),
            R::Invalid(m) if slot_taken => OutpatientsError::Conflict(m),
            R::Invalid(m) => OutpatientsError::invalid("", m),
            R::Store(m) => OutpatientsError::Store(m),
        }
    }
}

impl From<crate::waiting::WaitingError> for OutpatientsError {
    fn from(e: crate::waiting::WaitingError) -> OutpatientsError {
        use crate::waiting::WaitingError as W;
        match e {
            W::Field(f, m) => OutpatientsError::invalid(f, m),
            W::NotFound(m) => OutpatientsError::NotFound(m),
            W::Fhir(e) => e.into(),
            other => OutpatientsError::Conflict(other.message()),
        }
    }
}

impl From<crate::rtt::RttError> for OutpatientsError {
    fn from(e: crate::rtt::RttError) -> OutpatientsError {
        use crate::rtt::RttError as R;
        match e {
            R::Field(f, m) => OutpatientsError::invalid(f, m),
            R::NotFound(m) => OutpatientsError::NotFound(m),
            R::Fhir(e) => e.into(),
            other => OutpatientsError::Conflict(other.message()),
        }
    }
}

pub(crate) fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, OutpatientsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_mode_read_their_codes() {
        let s = json!({"appointmentType": Kind::FollowUp.concept(),
            "extension": [{"url": MODE_EXT, "valueCode": "virtual"}]});
        assert_eq!(Kind::of(&s), Some(Kind::FollowUp));
        assert_eq!(Mode::of(&s), Mode::Virtual);
        assert_eq!(Mode::of(&json!({})), Mode::FaceToFace);
        assert_eq!(Kind::of(&json!({})), None);
    }

    #[test]
    fn a_slot_taken_is_a_conflict() {
        let e = FhirError::new(422, "duplicate", "taken").at("Appointment.slot[0]");
        assert_eq!(OutpatientsError::from(e).status(), 409);
        let e = FhirError::new(422, "business-rule", "wrong").at("Appointment.appointmentType");
        assert_eq!(OutpatientsError::from(e).status(), 400);
    }
}
