//! Clinical alerts shown in the patient banner on every patient page:
//! allergies and adverse reactions, the child-protection information
//! sharing (CP-IS) flag, end-of-life preferences and Mental Health Act
//! detentions with their legal clocks and reminders.
//!
//! # The model (FHIR R4; `shared/notes/fhir-mapping.md`)
//!
//! * **Allergies** ([`allergies`]) are `AllergyIntolerance` in the UK Core
//!   shape: `clinicalStatus` (`active` | `inactive` | `resolved`, absent
//!   when refuted or entered in error), `verificationStatus`
//!   (`unconfirmed` → `confirmed`, or `refuted` with the reason in a
//!   `note`, or `entered-in-error`), `code` the substance (SNOMED CT or dm+d
//!   when coded; free text is `code.text` alone and carries
//!   [`FREE_TEXT_EXT`]), `criticality`, `reaction[0]` (`manifestation`,
//!   `severity`), `recorder`, `recordedDate`. "No known allergies" is its
//!   own statement: SNOMED CT [`NO_KNOWN_ALLERGY`] 716186003 as the code.
//!   Whether a record screens prescriptions and counts in the banner is
//!   [`allergy_in_force`] (the one reading: medicines' checks and the chart
//!   use it).
//! * **CP-IS, end-of-life, Mental Health Act** ([`flags`], [`mha`]) are
//!   `Flag`s tagged (`meta.tag`, system [`ALERT_SYSTEM`]) and coded
//!   (`code.coding[0]`, the same system) `cpis` | `end-of-life` | `mha`,
//!   `status` `active` until ended (`inactive`, `period.end` the end) or
//!   `entered-in-error`; `subject` the patient, `author` who recorded it
//!   (the local authority for CP-IS), `period.start`. Each kind's details
//!   are sub-extensions of one extension ([`CPIS_EXT`], [`EOL_EXT`],
//!   [`MHA_EXT`]) described in its module.
//! * **Reminders** before a detention expires are `Task`s in the shared
//!   task convention (`code` [`TASK_KIND_SYSTEM`] `mha-expiry`, `focus`
//!   the Flag, `owner` the responsible clinician or the ward,
//!   `restriction.period.end` the legal expiry), raised by
//!   [`mha::raise_reminders`] over the injected clock.
//!
//! # Who may record (the write rule [`rule::AlertRule`], on every channel)
//!
//! Recording an allergy needs `record-clinical` (the RBAC table); making it
//! `confirmed` or `refuted` needs a registered professional's position
//! (`sign-clinical-documents`: doctors, registered nurses, ward sisters) or
//! a pharmacist's (`prescribe`); a healthcare assistant records it
//! `unconfirmed`. CP-IS, end-of-life and MHA flags are recorded, changed
//! and ended by registered professionals only. Audit subtypes:
//! `alerts-allergy`, `alerts-cpis`, `alerts-eol`, `alerts-mha`,
//! `alerts-reminder`.

pub mod allergies;
pub mod banner;
pub mod flags;
pub mod mha;
pub mod rule;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

pub use banner::{Banner, banner};

/// Wardline's clinical-alert kinds (`Flag.code`, `Flag.meta.tag`).
pub const ALERT_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/clinical-alert";
/// A CP-IS flag's details.
pub const CPIS_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/cpis";
/// CP-IS plan types (`CPP`, `LAC`, `UCPP`).
pub const CPIS_PLAN_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/cpis-plan-type";
/// End-of-life preferences' details.
pub const EOL_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/end-of-life";
/// A Mental Health Act detention's details.
pub const MHA_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/mha-detention";
/// Sections of the Mental Health Act 1983 (`2`, `3`, `4`, `5(2)`, `5(4)`,
/// `135`, `136`).
pub const MHA_SECTION_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/mha-section";
/// An allergy whose substance is free text, not coded (`valueBoolean` true).
pub const FREE_TEXT_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/free-text";
/// The shared task convention's kinds (`Task.code.coding[0].system`).
pub use crate::tasks::KIND_SYSTEM as TASK_KIND_SYSTEM;
/// `Task.code` of a reminder before a detention's legal expiry.
pub const MHA_EXPIRY_TASK: &str = "mha-expiry";
/// SNOMED CT.
pub const SNOMED_SYSTEM: &str = "http://snomed.info/sct";
/// SNOMED CT 716186003 |No known allergy|.
pub const NO_KNOWN_ALLERGY: &str = "716186003";
/// FHIR's allergy clinical and verification status systems.
pub const CLINICAL_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
pub const VERIFICATION_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";

/// The kinds of Wardline alert flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlagKind {
    Cpis,
    EndOfLife,
    Mha,
}

impl FlagKind {
    pub fn code(self) -> &'static str {
        match self {
            FlagKind::Cpis => "cpis",
            FlagKind::EndOfLife => "end-of-life",
            FlagKind::Mha => "mha",
        }
    }

    /// The kind a Flag is tagged or coded with, if any.
    pub fn of(flag: &Value) -> Option<FlagKind> {
        let codes = flag["meta"]["tag"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(flag["code"]["coding"].as_array().into_iter().flatten());
        for c in codes {
            if c["system"] == ALERT_SYSTEM {
                match c["code"].as_str() {
                    Some("cpis") => return Some(FlagKind::Cpis),
                    Some("end-of-life") => return Some(FlagKind::EndOfLife),
                    Some("mha") => return Some(FlagKind::Mha),
                    _ => {}
                }
            }
        }
        None
    }
}

/// The first coding's code of a CodeableConcept.
pub fn code_of(c: &Value) -> Option<&str> {
    c["coding"].as_array()?.first()?["code"].as_str()
}

/// Whether the allergy record is a "no known allergies" statement.
pub fn is_no_known_allergy(a: &Value) -> bool {
    a["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["code"] == NO_KNOWN_ALLERGY)
}

/// Whether an `AllergyIntolerance` is in force — screens prescriptions
/// and counts in the banner: not a "no known allergies" statement, its
/// clinical status `active` (or not recorded) and its verification neither
/// `refuted` nor `entered-in-error`. The one reading (hazard H-272).
pub fn allergy_in_force(a: &Value) -> bool {
    !is_no_known_allergy(a)
        && code_of(&a["clinicalStatus"]).is_none_or(|c| c == "active")
        && code_of(&a["verificationStatus"])
            .is_none_or(|c| c != "refuted" && c != "entered-in-error")
}

/// Reads a sub-extension's value of the extension `url` on `r`.
pub fn sub<'a>(r: &'a Value, url: &str, part: &str) -> Option<&'a Value> {
    r["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == url)?["extension"]
        .as_array()?
        .iter()
        .find(|s| s["url"] == part)
}

/// A sub-extension's string-like value (`valueString`, `valueCode`,
/// `valueDateTime`, `valueDate`, a reference or a coding's code).
pub fn sub_text<'a>(r: &'a Value, url: &str, part: &str) -> Option<&'a str> {
    let s = sub(r, url, part)?;
    s["valueString"]
        .as_str()
        .or_else(|| s["valueCode"].as_str())
        .or_else(|| s["valueDateTime"].as_str())
        .or_else(|| s["valueDate"].as_str())
        .or_else(|| s["valueReference"]["reference"].as_str())
        .or_else(|| s["valueCoding"]["code"].as_str())
}

/// What went wrong with an alerts action, with the HTTP status that fits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AlertsError {
    /// The request is wrong (400); the first part names the form field.
    Invalid(&'static str, String),
    NotFound(String),
    Forbidden(String),
    /// The record's state does not allow it (409).
    Conflict(String),
    Store(String),
}

impl AlertsError {
    pub fn status(&self) -> u16 {
        match self {
            AlertsError::Invalid(..) => 400,
            AlertsError::NotFound(_) => 404,
            AlertsError::Forbidden(_) => 403,
            AlertsError::Conflict(_) => 409,
            AlertsError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            AlertsError::Invalid(_, m)
            | AlertsError::NotFound(m)
            | AlertsError::Forbidden(m)
            | AlertsError::Conflict(m)
            | AlertsError::Store(m) => m.clone(),
        }
    }

    /// The form field the error is about, when it is about one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AlertsError::Invalid(f, _) => Some(f),
            _ => None,
        }
    }
}

impl std::fmt::Display for AlertsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for AlertsError {}

impl From<FhirError> for AlertsError {
    fn from(e: FhirError) -> AlertsError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "alert") {
            R::Forbidden(m) => AlertsError::Forbidden(m),
            R::NotFound(m) => AlertsError::NotFound(m),
            R::Concurrent(m) => AlertsError::Conflict(m),
            R::Invalid(m) => AlertsError::Invalid("", m),
            R::Store(m) => AlertsError::Store(m),
        }
    }
}

/// `now` as a FHIR instant to the second, UTC.
pub fn fhir_time(now: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(now)
}

/// Milliseconds since the Unix epoch.
pub fn ms_of(now: OffsetDateTime) -> i64 {
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// An instant (ms) as a FHIR instant, UTC (to the second when it has no
/// milliseconds: `2026-03-05T10:00:00Z`).
pub fn instant(ms: i64) -> String {
    let s = wardline_fhir::datetime::format_instant(ms);
    match s.strip_suffix(".000Z") {
        Some(whole) => format!("{whole}Z"),
        None => s,
    }
}

/// A FHIR date/time's first instant (ms).
pub fn parse_ms(s: &str) -> Option<i64> {
    wardline_fhir::datetime::parse_range(s).map(|r| r.0)
}

/// A transaction audited under `alerts-{what}`.
fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, AlertsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

/// Reads the patient in `tx`; 404 when there is none.
fn patient_in(tx: &mut Tx<'_>, patient: &str) -> Result<Value, AlertsError> {
    tx.get("Patient", patient)?
        .ok_or_else(|| AlertsError::NotFound(format!("There is no patient with id {patient}.")))
}

/// Locks and reads a Flag of `kind` in `tx`.
fn flag_in(tx: &mut Tx<'_>, id: &str, kind: FlagKind) -> Result<Value, AlertsError> {
    tx.lock(&[format!("Flag/{id}")])?;
    let f = tx
        .get("Flag", id)?
        .filter(|f| FlagKind::of(f) == Some(kind))
        .ok_or_else(|| AlertsError::NotFound(format!("There is no such alert ({id}).")))?;
    Ok(f)
}

/// The active Flags of `kind` for the patient, in `tx`.
fn active_flags_in(
    tx: &mut Tx<'_>,
    patient: &str,
    kind: FlagKind,
) -> Result<Vec<Value>, AlertsError> {
    Ok(tx
        .find(
            "Flag",
            &format!(
                "patient=Patient/{patient}&_tag={ALERT_SYSTEM}|{}",
                kind.code()
            ),
        )?
        .into_iter()
        .filter(|f| f["status"] == "active")
        .collect())
}

/// A new alert Flag's common part.
fn new_flag(kind: FlagKind, patient: &str, display: &str, start: &str) -> Value {
    serde_json::json!({
        "resourceType": "Flag",
        "meta": {"tag": [{"system": ALERT_SYSTEM, "code": kind.code()}]},
        "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": if kind == FlagKind::Cpis { "safety" } else { "clinical" }}]}],
        "code": {"coding": [{"system": ALERT_SYSTEM, "code": kind.code(), "display": display}], "text": display},
        "subject": {"reference": format!("Patient/{patient}")},
        "period": {"start": start},
    })
}

/// Ends a Flag: `inactive`, `period.end` now (or entered in error).
fn end_flag(f: &mut Value, now: OffsetDateTime, in_error: bool) {
    if in_error {
        f["status"] = serde_json::json!("entered-in-error");
    } else {
        f["status"] = serde_json::json!("inactive");
        f["period"]["end"] = serde_json::json!(fhir_time(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuted_entered_in_error_and_nka_are_not_in_force() {
        let st = |c: &str, v: &str| json!({"clinicalStatus": {"coding": [{"code": c}]}, "verificationStatus": {"coding": [{"code": v}]}, "code": {"text": "Penicillin"}});
        assert!(allergy_in_force(&st("active", "confirmed")));
        assert!(allergy_in_force(&st("active", "unconfirmed")));
        assert!(!allergy_in_force(&st("inactive", "confirmed")));
        assert!(!allergy_in_force(
            &json!({"verificationStatus": {"coding": [{"code": "refuted"}]}})
        ));
        assert!(!allergy_in_force(
            &json!({"verificationStatus": {"coding": [{"code": "entered-in-error"}]}})
        ));
        assert!(allergy_in_force(&json!({"code": {"text": "Latex"}})));
        assert!(!allergy_in_force(
            &json!({"code": {"coding": [{"system": SNOMED_SYSTEM, "code": NO_KNOWN_ALLERGY}]}})
        ));
    }
}
