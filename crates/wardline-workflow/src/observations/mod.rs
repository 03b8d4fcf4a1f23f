//! Observations: vital signs, NEWS2, escalation and remote monitoring
//! (issue 20).
//!
//! * **Readings** are FHIR R4 vital-signs `Observation`s (category
//!   `vital-signs`, the LOINC codes of the FHIR vital signs profile):
//!   respiration rate [`LOINC_RR`], oxygen saturation [`LOINC_SPO2`] (or
//!   `59408-5`), systolic blood pressure [`LOINC_SBP`] (alone, or as the
//!   component of a blood pressure panel `85354-9`), heart rate
//!   [`LOINC_PULSE`], body temperature [`LOINC_TEMP`] (°C), level of
//!   responsiveness [`LOINC_ACVPU`] (`valueCodeableConcept` in
//!   [`ACVPU_SYSTEM`]: `A`, `C` new confusion, `V`, `P`, `U`) and air or
//!   oxygen ([`OBS_SYSTEM`]`|`[`OXYGEN_CODE`], `valueBoolean` `true` on
//!   supplemental oxygen; LOINC has no such yes/no code).
//! * **A set** is the readings of one patient (`subject`) with the same
//!   `effectiveDateTime`. Its **NEWS2** is one `Observation` (SNOMED CT
//!   UK [`SNOMED_NEWS2`] "NEWS2 total score" and [`OBS_SYSTEM`]`|news2`),
//!   `valueInteger` the aggregate, one `component` per parameter scored
//!   (its reading's code, `valueInteger` the part), `derivedFrom` every
//!   reading, extensions [`SCALE_EXT`] (1 or 2), [`RESPONSE_EXT`] and
//!   [`COMPLETE_EXT`]. Its id is derived from the patient and the time
//!   ([`score_id`]), so a set's readings arriving in several writes update
//!   the one score. The score is computed by the pure function
//!   [`news2::score`], the one home of the chart.
//! * **Scored on arrival**: [`scoring::ScoreOnArrival`], a write hook
//!   registered in `with_rules`, scores every set a transaction touches on
//!   every channel — the ward form, REST, transaction and batch Bundles
//!   from a remote-monitoring gateway, HL7 — in the writing transaction,
//!   so nothing is acknowledged unscored.
//! * **SpO₂ scale 2** is used when the patient has an active `Flag`
//!   [`OBS_SYSTEM`]`|`[`SCALE2_CODE`] (confirmed hypercapnic respiratory
//!   failure), which only a clinician records ([`scale::set_scale_two`]).
//! * **Escalation** ([`scoring`]): a set whose response is above low raises
//!   a `Task` of kind [`TASK_KIND_SYSTEM`]`|news2-…` for the responsible team
//!   (see [`scoring::responsible`]); a later score never closes it — only a
//!   person acknowledges and completes it ([`tasks`]).
//! * **Recording** on the ward ([`record`]): one form, every parameter
//!   required and range-checked with the field named.
#![allow(clippy::module_name_repetitions)]

pub mod chart;
pub mod news2;
pub mod record;
pub mod scale;
pub mod scoring;
pub mod tasks;

pub use tasks::{BannerAlert, banner_alert};

use serde::Serialize;
use serde_json::Value;
use wardline_fhir::FhirError;

use news2::{Acvpu, Parameter, Vitals};

pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC_RR: &str = "9279-1";
pub const LOINC_SPO2: &str = "2708-6";
pub const LOINC_SPO2_OXIMETRY: &str = "59408-5";
pub const LOINC_BP_PANEL: &str = "85354-9";
pub const LOINC_SBP: &str = "8480-6";
pub const LOINC_PULSE: &str = "8867-4";
pub const LOINC_TEMP: &str = "8310-5";
pub const LOINC_ACVPU: &str = "67775-7";
/// SNOMED CT UK edition: Royal College of Physicians NEWS2 total score.
pub const SNOMED_NEWS2: &str = "1104051000000101";
/// Wardline's observation codes (`news2`, [`OXYGEN_CODE`], [`SCALE2_CODE`]).
pub const OBS_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/observation";
pub const NEWS2_CODE: &str = "news2";
pub const OXYGEN_CODE: &str = "supplemental-oxygen";
pub const SCALE2_CODE: &str = "news2-spo2-scale-2";
pub const ACVPU_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/acvpu";
pub const SCALE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/news2-scale";
pub const RESPONSE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/news2-response";
pub const COMPLETE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/news2-complete";
/// On a score: the escalation `Task` that covers it.
pub const ESCALATION_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/news2-escalation";
/// The shared Task convention's kinds (`news2-single-3`, `news2-urgent`,
/// `news2-emergency`: [`scoring::task_kind`]).
pub use crate::tasks::KIND_SYSTEM as TASK_KIND_SYSTEM;
pub const CATEGORY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// The reading's code (system, code, display, UCUM unit) for each parameter.
pub fn parameter_code(p: Parameter) -> (&'static str, &'static str, &'static str, &'static str) {
    match p {
        Parameter::RespirationRate => (LOINC, LOINC_RR, "Respiratory rate", "/min"),
        Parameter::Spo2 => (
            LOINC,
            LOINC_SPO2,
            "Oxygen saturation in Arterial blood",
            "%",
        ),
        Parameter::AirOrOxygen => (OBS_SYSTEM, OXYGEN_CODE, "On supplemental oxygen", ""),
        Parameter::SystolicBp => (LOINC, LOINC_SBP, "Systolic blood pressure", "mm[Hg]"),
        Parameter::Pulse => (LOINC, LOINC_PULSE, "Heart rate", "/min"),
        Parameter::Consciousness => (LOINC, LOINC_ACVPU, "Level of responsiveness", ""),
        Parameter::Temperature => (LOINC, LOINC_TEMP, "Body temperature", "Cel"),
    }
}

fn codings(v: &Value) -> impl Iterator<Item = (&str, &str)> {
    v["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["system"].as_str()?, c["code"].as_str()?)))
}

/// Which parameter a reading's `code` is, if any.
pub fn parameter_of_code(code: &Value) -> Option<Parameter> {
    codings(code).find_map(|(s, c)| match (s, c) {
        (LOINC, LOINC_RR) => Some(Parameter::RespirationRate),
        (LOINC, LOINC_SPO2 | LOINC_SPO2_OXIMETRY) => Some(Parameter::Spo2),
        (LOINC, LOINC_SBP | LOINC_BP_PANEL) => Some(Parameter::SystolicBp),
        (LOINC, LOINC_PULSE) => Some(Parameter::Pulse),
        (LOINC, LOINC_TEMP) => Some(Parameter::Temperature),
        (LOINC, LOINC_ACVPU) => Some(Parameter::Consciousness),
        (OBS_SYSTEM, OXYGEN_CODE) => Some(Parameter::AirOrOxygen),
        _ => None,
    })
}

/// Whether `obs` is a NEWS2 score.
pub fn is_score(obs: &Value) -> bool {
    codings(&obs["code"]).any(|(s, c)| s == OBS_SYSTEM && c == NEWS2_CODE)
}

/// A reading counts unless it was withdrawn.
fn counts(obs: &Value) -> bool {
    !matches!(
        obs["status"].as_str(),
        Some("entered-in-error" | "cancelled")
    )
}

fn number(v: &Value) -> Option<f64> {
    v["valueQuantity"]["value"].as_f64()
}

/// Adds one reading (a vital-signs `Observation`) to `v`; returns the
/// parameter it gave, or `None` if it is no NEWS2 reading (or has no
/// usable value).
pub fn add_reading(v: &mut Vitals, obs: &Value) -> Option<Parameter> {
    if !counts(obs) || is_score(obs) {
        return None;
    }
    let p = parameter_of_code(&obs["code"])?;
    match p {
        Parameter::RespirationRate => v.respiration_rate = Some(number(obs)?),
        Parameter::Spo2 => v.spo2 = Some(number(obs)?),
        Parameter::Pulse => v.pulse = Some(number(obs)?),
        Parameter::Temperature => {
            let q = &obs["valueQuantity"];
            let x = q["value"].as_f64()?;
            // Fahrenheit from a device is converted; anything else is not a
            // temperature NEWS2 can read.
            v.temperature = Some(match q["code"].as_str().or(q["unit"].as_str()) {
                Some("[degF]" | "°F") => (x - 32.0) * 5.0 / 9.0,
                Some("Cel" | "°C") | None => x,
                Some(_) => return None,
            });
        }
        Parameter::SystolicBp => {
            let x = number(obs).or_else(|| {
                obs["component"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| codings(&c["code"]).any(|(s, c)| s == LOINC && c == LOINC_SBP))
                    .and_then(number)
            })?;
            v.systolic_bp = Some(x);
        }
        Parameter::Consciousness => {
            let c = codings(&obs["valueCodeableConcept"])
                .find_map(|(s, c)| (s == ACVPU_SYSTEM).then(|| Acvpu::from_code(c)).flatten())?;
            v.consciousness = Some(c);
        }
        Parameter::AirOrOxygen => v.oxygen = Some(obs["valueBoolean"].as_bool()?),
    }
    Some(p)
}

/// When a reading was taken: `effectiveDateTime`, `effectiveInstant` or
/// `effectivePeriod.start`, as written (possibly a date only).
pub fn effective_of(obs: &Value) -> Option<&str> {
    obs["effectiveDateTime"]
        .as_str()
        .or_else(|| obs["effectiveInstant"].as_str())
        .or_else(|| obs["effectivePeriod"]["start"].as_str())
}

/// `Patient/{id}` and the effective time of a reading ([`effective_of`]):
/// the set it is in.
pub fn set_key(obs: &Value) -> Option<(String, String)> {
    let subject = obs["subject"]["reference"].as_str()?;
    let eff = effective_of(obs)?;
    subject
        .starts_with("Patient/")
        .then(|| (subject.to_owned(), eff.to_owned()))
}

/// The id of the score of a set: `news2-` and the first 32 hex digits of
/// the SHA-256 of `patient` and `effective` (ids are at most 64 characters).
pub fn score_id(patient: &str, effective: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(patient.as_bytes());
    h.update([0]);
    h.update(effective.as_bytes());
    let d = h.finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("news2-{hex}")
}

/// What went wrong with an observations action, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ObservationsError {
    /// A field of the input is wrong (400): the field's name and why.
    Field { field: String, message: String },
    /// 400.
    Invalid(String),
    /// 404.
    NotFound(String),
    /// 403.
    Forbidden(String),
    /// 409.
    Conflict(String),
    /// 500.
    Store(String),
}

impl ObservationsError {
    pub fn status(&self) -> u16 {
        match self {
            ObservationsError::Field { .. } | ObservationsError::Invalid(_) => 400,
            ObservationsError::NotFound(_) => 404,
            ObservationsError::Forbidden(_) => 403,
            ObservationsError::Conflict(_) => 409,
            ObservationsError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ObservationsError::Field { message, .. } => message.clone(),
            ObservationsError::Invalid(m)
            | ObservationsError::NotFound(m)
            | ObservationsError::Forbidden(m)
            | ObservationsError::Conflict(m)
            | ObservationsError::Store(m) => m.clone(),
        }
    }
}

impl std::fmt::Display for ObservationsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ObservationsError {}

impl From<crate::tasks::TasksError> for ObservationsError {
    fn from(e: crate::tasks::TasksError) -> Self {
        use crate::tasks::TasksError as T;
        match e {
            T::Invalid(m) => ObservationsError::Invalid(m),
            T::Field(field, message) => ObservationsError::Field { field, message },
            T::NotFound(m) => ObservationsError::NotFound(m),
            T::Forbidden(m) => ObservationsError::Forbidden(m),
            T::Conflict(m) => ObservationsError::Conflict(m),
            T::Store(m) => ObservationsError::Store(m),
        }
    }
}

impl From<FhirError> for ObservationsError {
    fn from(e: FhirError) -> ObservationsError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "record") {
            R::Forbidden(m) => ObservationsError::Forbidden(m),
            R::NotFound(m) => ObservationsError::NotFound(m),
            R::Concurrent(m) => ObservationsError::Conflict(m),
            R::Invalid(m) => ObservationsError::Invalid(m),
            R::Store(m) => ObservationsError::Store(m),
        }
    }
}

pub(crate) use crate::results::now_text;
