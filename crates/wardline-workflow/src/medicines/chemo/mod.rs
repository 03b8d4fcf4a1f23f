//! Chemotherapy: regimens as protocols, cycles prescribed from the
//! patient's latest height and weight, verified by a second clinician and a
//! pharmacist, released only when the pre-cycle blood checks pass, and
//! shared with the cancer centre as FHIR.
//!
//! # The model
//!
//! * **A regimen** ([`regimen`]) is a `PlanDefinition` (`type`
//!   `clinical-protocol`, `url` [`REGIMEN_URL_BASE`]`{id}`, `identifier`
//!   [`REGIMEN_SYSTEM`]) with its cycle length and number of cycles in
//!   [`REGIMEN_EXT`] and one `action` per drug ([`DRUG_EXT`]: the
//!   formulary substance by dm+d VTM, dose basis, dose, days, route,
//!   infusion, dose-band table or rounding, maximum, cumulative class).
//! * **A cycle** ([`cycle`]) is a `CarePlan` (`category` [`CATEGORY`]
//!   `chemotherapy` of `medicines::LOCAL_CATEGORY_SYSTEM`,
//!   `instantiatesCanonical` the regimen's url, `intent` `plan`,
//!   `period.start` the cycle's day 1, `author` the prescriber, `activity`
//!   its prescriptions, `supportingInfo` the Observations used) with
//!   [`CYCLE_EXT`] (cycle number; BSA used, formula, uncapped value, cap
//!   applied, both formulas' values; height and weight and their dates; the
//!   GFR used), one [`VERIFICATION_EXT`] per verification (`role`
//!   `clinical` | `pharmacy`, `by`, `at`), a [`DELAY_EXT`] per delay, and a
//!   [`CUMULATIVE_OVERRIDE_EXT`] where a consultant went past a lifetime
//!   limit.
//! * **Its prescriptions** are `MedicationRequest`s (`category`
//!   `chemotherapy`, `basedOn` the CarePlan, `status` `draft` until the
//!   cycle is released) each with [`DOSE_CALC_EXT`] saying how the dose was
//!   calculated (basis, protocol dose, BSA/weight/GFR, reduction % and
//!   reason, band, mg/m² given for the cumulative total).
//!
//! # The cycle's status
//!
//! ```text
//! draft ──release──► active ──delay──► on-hold ──release──► active
//!   └──delay──► on-hold                       any ──► revoked
//! ```
//!
//! A prescription follows its cycle through
//! `medicines::prescribe::set_status_in` (which applies `medicines::allowed`):
//! `draft → active` on release, `active → on-hold` on a delay; a cycle
//! revoked ([`revoke`], with its reason) cancels its draft prescriptions and
//! stops its released ones.
//!
//! # Rules (one home each, in [`cycle`])
//!
//! * prescribing computes from the **latest** height (LOINC 8302-2) and
//!   weight (29463-7); a weight taken more than
//!   [`ChemoConfig::weight_max_age_days`] before day 1 is refused;
//! * a lifetime limit ([`dose::LIMITS`]) is warned at
//!   [`ChemoConfig::cumulative_warn_fraction`] and refused beyond, unless a
//!   consultant overrides with a reason (checked again at release);
//! * the pre-cycle checks (neutrophils 751-8 ≥ 1.0 ×10⁹/L, platelets
//!   777-3 ≥ 100 ×10⁹/L, creatinine 14682-9 present for an AUC-dosed drug;
//!   results older than [`ChemoConfig::blood_max_age_days`] before day 1
//!   count as missing) must pass to release;
//! * verification by a second clinician (a position with Prescribe, not
//!   the prescriber) and by a pharmacist (ScreenPrescriptions), each once,
//!   by two different people; release needs both.

pub mod banding;
pub mod bsa;
pub mod cycle;
pub mod dose;
pub mod operation;
pub mod regimen;
pub mod revoke;
pub mod view;

use serde::Serialize;

/// Where a regimen's canonical URL starts (`{base}{id}`).
pub const REGIMEN_URL_BASE: &str = "https://fhir.wardline.invalid/PlanDefinition/";
/// The regimen's short code (`R-CHOP-21`).
pub const REGIMEN_SYSTEM: &str = "https://fhir.wardline.invalid/Id/chemotherapy-regimen";
/// FHIR's PlanDefinition types (`clinical-protocol`).
pub const PROTOCOL_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/plan-definition-type";
/// The regimen's cycle length and number of cycles (on PlanDefinition).
pub const REGIMEN_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/chemotherapy-regimen";
/// One drug of a regimen (on PlanDefinition.action).
pub const DRUG_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/chemotherapy-regimen-drug";
/// The cycle's number and what its doses were calculated from (on CarePlan).
pub const CYCLE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/chemotherapy-cycle";
/// A verification of the cycle (on CarePlan; `role`, `by`, `at`).
pub const VERIFICATION_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/chemotherapy-verification";
/// A delay (on CarePlan; `reason`, `from`, `to`, `by`, `at`).
pub const DELAY_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/chemotherapy-delay";
/// A consultant's override of a lifetime limit (on CarePlan; `class`,
/// `reason`, `by`, `at`).
pub const CUMULATIVE_OVERRIDE_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/chemotherapy-cumulative-override";
/// How a dose was calculated (on MedicationRequest).
pub const DOSE_CALC_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/chemotherapy-dose-calculation";
/// The category code of a cycle and its prescriptions
/// (`medicines::LOCAL_CATEGORY_SYSTEM`).
pub const CATEGORY: &str = "chemotherapy";

/// LOINC codes the rules read.
pub const LOINC: &str = "http://loinc.org";
pub const HEIGHT_LOINC: &str = "8302-2";
pub const WEIGHT_LOINC: &str = "29463-7";
pub const NEUTROPHILS_LOINC: &str = "751-8";
pub const PLATELETS_LOINC: &str = "777-3";
pub const CREATININE_LOINC: &str = "14682-9";

/// The trust's chemotherapy settings. [`ChemoConfig::from_env`] reads them
/// from the server's environment (`WARDLINE_CHEMO_*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChemoConfig {
    /// The BSA formula doses are calculated from (Mosteller by default).
    pub bsa_formula: bsa::Formula,
    /// The BSA cap in m² (2.0 by default; `None`: no cap).
    pub bsa_cap: Option<f64>,
    /// A weight taken more than this many days before day 1 is stale (14).
    pub weight_max_age_days: i64,
    /// Blood results taken more than this many days before day 1 count as
    /// missing (7).
    pub blood_max_age_days: i64,
    /// Neutrophils needed to release (1.0 ×10⁹/L).
    pub neutrophils_min: f64,
    /// Platelets needed to release (100 ×10⁹/L).
    pub platelets_min: f64,
    /// The creatinine clearance cap for Calvert (125 mL/min).
    pub gfr_cap: f64,
    /// The fraction of a lifetime limit at which the prescriber is warned (0.9).
    pub cumulative_warn_fraction: f64,
}

impl Default for ChemoConfig {
    fn default() -> ChemoConfig {
        ChemoConfig {
            bsa_formula: bsa::Formula::Mosteller,
            bsa_cap: Some(2.0),
            weight_max_age_days: 14,
            blood_max_age_days: 7,
            neutrophils_min: 1.0,
            platelets_min: 100.0,
            gfr_cap: 125.0,
            cumulative_warn_fraction: 0.9,
        }
    }
}

impl ChemoConfig {
    /// The defaults, changed by `WARDLINE_CHEMO_BSA_FORMULA`
    /// (`mosteller` | `dubois`), `WARDLINE_CHEMO_BSA_CAP` (m², or `none`),
    /// `WARDLINE_CHEMO_WEIGHT_MAX_AGE_DAYS`, `WARDLINE_CHEMO_BLOOD_MAX_AGE_DAYS`
    /// and `WARDLINE_CHEMO_GFR_CAP`; a value that does not parse is an error
    /// naming the variable.
    pub fn from_env() -> Result<ChemoConfig, String> {
        let mut c = ChemoConfig::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var("WARDLINE_CHEMO_BSA_FORMULA") {
            c.bsa_formula = bsa::Formula::parse(&v).ok_or(format!(
                "WARDLINE_CHEMO_BSA_FORMULA: '{v}' is not mosteller or dubois"
            ))?;
        }
        if let Some(v) = var("WARDLINE_CHEMO_BSA_CAP") {
            c.bsa_cap = if v.trim().eq_ignore_ascii_case("none") {
                None
            } else {
                Some(
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| *x > 0.5 && *x < 4.0)
                        .ok_or(format!(
                            "WARDLINE_CHEMO_BSA_CAP: '{v}' is not a BSA in m² or none"
                        ))?,
                )
            };
        }
        for (k, slot) in [
            (
                "WARDLINE_CHEMO_WEIGHT_MAX_AGE_DAYS",
                &mut c.weight_max_age_days,
            ),
            (
                "WARDLINE_CHEMO_BLOOD_MAX_AGE_DAYS",
                &mut c.blood_max_age_days,
            ),
        ] {
            if let Some(v) = var(k) {
                *slot = v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|d| *d >= 0)
                    .ok_or(format!("{k}: '{v}' is not a number of days"))?;
            }
        }
        if let Some(v) = var("WARDLINE_CHEMO_GFR_CAP") {
            c.gfr_cap = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| *x > 0.0)
                .ok_or(format!("WARDLINE_CHEMO_GFR_CAP: '{v}' is not mL/min"))?;
        }
        Ok(c)
    }
}
