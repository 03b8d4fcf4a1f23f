//! The dose arithmetic, as pure functions: per m², per kg, by AUC
//! (Calvert, with the GFR from Cockcroft–Gault), flat; a percentage
//! reduction with its reason; the protocol's maximum; banding or rounding;
//! and the cumulative lifetime dose of the anthracyclines.
//!
//! The order of the steps (one home: [`calculate`]):
//! 1. the protocol dose × the patient's basis (BSA, weight, GFR + 25);
//! 2. the reduction (`dose × (100 − %) / 100`, with its reason);
//! 3. the protocol's maximum single dose (e.g. vincristine 2 mg);
//! 4. the national dose band where the drug is banded, else the protocol's
//!    rounding (e.g. capecitabine to 150 mg, the smaller tablet).

use serde::Serialize;

use super::banding::{self, BandTable};

/// How a protocol states a drug's dose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Basis {
    /// mg per m² of body surface area.
    PerM2,
    /// mg per kg of body weight.
    PerKg,
    /// Target area under the curve (mg/mL·min), Calvert.
    Auc,
    /// A flat dose in mg.
    Flat,
}

impl Basis {
    /// The code kept in the protocol and on the prescription.
    pub fn code(self) -> &'static str {
        match self {
            Basis::PerM2 => "mg/m2",
            Basis::PerKg => "mg/kg",
            Basis::Auc => "auc",
            Basis::Flat => "flat",
        }
    }

    pub fn parse(code: &str) -> Option<Basis> {
        match code {
            "mg/m2" => Some(Basis::PerM2),
            "mg/kg" => Some(Basis::PerKg),
            "auc" => Some(Basis::Auc),
            "flat" => Some(Basis::Flat),
            _ => None,
        }
    }

    /// The protocol's dose as written (`375 mg/m²`, `AUC 5`).
    pub fn describe(self, dose: f64) -> String {
        match self {
            Basis::PerM2 => format!("{} mg/m²", trim(dose)),
            Basis::PerKg => format!("{} mg/kg", trim(dose)),
            Basis::Auc => format!("AUC {}", trim(dose)),
            Basis::Flat => format!("{} mg", trim(dose)),
        }
    }
}

/// Calvert's formula: dose (mg) = target AUC × (GFR + 25).
/// (Calvert AH et al., J Clin Oncol 1989;7:1748.)
pub fn calvert(auc: f64, gfr_ml_min: f64) -> f64 {
    auc * (gfr_ml_min + 25.0)
}

/// Sex, for Cockcroft–Gault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sex {
    Male,
    Female,
}

/// Cockcroft–Gault creatinine clearance (mL/min) from age (years), actual
/// body weight (kg) and serum creatinine in µmol/L:
/// `(140 − age) × weight / (72 × Scr mg/dL)`, × 0.85 for a woman, with
/// Scr mg/dL = µmol/L ÷ 88.4 (Cockcroft DW, Gault MH. Nephron
/// 1976;16:31). The UK's `× 1.23` (men) and `× 1.04` (women) over µmol/L
/// are these constants rounded.
pub fn cockcroft_gault(age_years: f64, weight_kg: f64, creatinine_umol_l: f64, sex: Sex) -> f64 {
    let scr_mg_dl = creatinine_umol_l / 88.4;
    let crcl = (140.0 - age_years) * weight_kg / (72.0 * scr_mg_dl);
    match sex {
        Sex::Male => crcl,
        Sex::Female => crcl * 0.85,
    }
}

/// The GFR Calvert is given: the clearance capped (`cap`, 125 mL/min by
/// default, so carboplatin never exceeds AUC × 150 mg), and never below 0.
pub fn gfr_for_calvert(crcl: f64, cap: f64) -> (f64, bool) {
    let g = crcl.max(0.0);
    if g > cap { (cap, true) } else { (g, false) }
}

/// What the patient's basis is measured as.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Patient {
    pub bsa_m2: Option<f64>,
    pub weight_kg: Option<f64>,
    /// The GFR used (already capped).
    pub gfr_ml_min: Option<f64>,
}

/// One drug's dose as the protocol states it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protocol<'a> {
    pub basis: Basis,
    pub dose: f64,
    /// The protocol's maximum single dose in mg (vincristine 2 mg).
    pub max_dose: Option<f64>,
    /// The national band table the drug is banded to, if it is.
    pub band: Option<&'a BandTable>,
    /// Otherwise round to a multiple of this (mg), e.g. a tablet strength.
    pub round_to: Option<f64>,
}

/// A dose with how it was calculated (kept on the prescription and shown).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calculation {
    pub basis: Basis,
    pub per: f64,
    /// The patient's measure multiplied by (m², kg, GFR + 25), if any.
    pub factor: Option<f64>,
    /// Before reduction (mg).
    pub calculated: f64,
    pub reduction_percent: f64,
    pub reduction_reason: Option<String>,
    /// After reduction and the maximum, before banding (mg).
    pub reduced: f64,
    /// Whether the protocol's maximum applied.
    pub max_applied: bool,
    /// The band dose, when banded.
    pub banded: Option<f64>,
    /// What is prescribed (mg).
    pub final_dose: f64,
    /// Steps in words, for the page and the prescription's text.
    pub steps: Vec<String>,
}

/// Calculates one dose (see the module documentation for the order).
pub fn calculate(
    p: &Protocol<'_>,
    patient: &Patient,
    reduction_percent: f64,
    reduction_reason: Option<&str>,
) -> Result<Calculation, String> {
    if !(0.0..100.0).contains(&reduction_percent) {
        return Err(format!(
            "A dose reduction of {reduction_percent} % is not possible: give 0 to 99 %."
        ));
    }
    let reason = reduction_reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    if reduction_percent > 0.0 && reason.is_none() {
        return Err(format!(
            "A {reduction_percent} % dose reduction needs its reason."
        ));
    }
    if !(p.dose.is_finite() && p.dose > 0.0) {
        return Err("The protocol's dose must be above zero.".into());
    }
    let mut steps = Vec::new();
    let (factor, calculated) = match p.basis {
        Basis::PerM2 => {
            let b = patient
                .bsa_m2
                .ok_or("A dose per m² needs the body surface area.")?;
            steps.push(format!(
                "{} × {} m² = {} mg",
                p.basis.describe(p.dose),
                trim(b),
                trim(round_mg(p.dose * b))
            ));
            (Some(b), p.dose * b)
        }
        Basis::PerKg => {
            let w = patient.weight_kg.ok_or("A dose per kg needs the weight.")?;
            steps.push(format!(
                "{} × {} kg = {} mg",
                p.basis.describe(p.dose),
                trim(w),
                trim(round_mg(p.dose * w))
            ));
            (Some(w), p.dose * w)
        }
        Basis::Auc => {
            let g = patient
                .gfr_ml_min
                .ok_or("A dose by AUC needs the GFR (creatinine clearance).")?;
            let d = calvert(p.dose, g);
            steps.push(format!(
                "Calvert: AUC {} × ({} + 25) mL/min = {} mg",
                trim(p.dose),
                trim(round_mg(g)),
                trim(round_mg(d))
            ));
            (Some(g + 25.0), d)
        }
        Basis::Flat => {
            steps.push(format!("Flat dose {} mg", trim(p.dose)));
            (None, p.dose)
        }
    };
    let mut reduced = calculated * (100.0 - reduction_percent) / 100.0;
    if reduction_percent > 0.0 {
        steps.push(format!(
            "Reduced by {} % ({}): {} mg",
            trim(reduction_percent),
            reason.as_deref().unwrap_or_default(),
            trim(round_mg(reduced))
        ));
    }
    let mut max_applied = false;
    if let Some(m) = p.max_dose
        && reduced > m
    {
        reduced = m;
        max_applied = true;
        steps.push(format!("Capped at the protocol's maximum {} mg", trim(m)));
    }
    let reduced = round_mg(reduced);
    let (banded, final_dose) = match (p.band, p.round_to) {
        (Some(t), _) => match banding::band(t, reduced) {
            Some(b) => {
                steps.push(format!(
                    "Banded ({}): {} mg → {} mg",
                    t.name,
                    trim(reduced),
                    trim(b.dose)
                ));
                (Some(b.dose), b.dose)
            }
            None => {
                steps.push(format!(
                    "{} mg is outside the band table ({}): not banded",
                    trim(reduced),
                    t.name
                ));
                (None, reduced)
            }
        },
        (None, Some(r)) if r > 0.0 => {
            let d = ((reduced / r).round() * r).max(r);
            steps.push(format!(
                "Rounded to the nearest {} mg: {} mg",
                trim(r),
                trim(d)
            ));
            (None, d)
        }
        _ => (None, reduced),
    };
    Ok(Calculation {
        basis: p.basis,
        per: p.dose,
        factor,
        calculated: round_mg(calculated),
        reduction_percent,
        reduction_reason: reason,
        reduced,
        max_applied,
        banded,
        final_dose,
        steps,
    })
}

/// A dose in mg rounded to 0.01 mg (the arithmetic's precision; banding
/// and rounding then give what is made).
pub fn round_mg(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A number without trailing zeros (`1.5`, `700`).
pub fn trim(x: f64) -> String {
    let s = format!("{:.2}", x);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

// ------------------------------------------------------------ cumulative

/// A lifetime cumulative limit: the substance (its class code on the
/// protocol) and the limit in mg/m².
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limit {
    pub class: &'static str,
    pub name: &'static str,
    pub mg_per_m2: f64,
}

/// The lifetime limits Wardline knows (the trust's protocols may state
/// lower ones; these are the widely published maxima in the SmPCs and
/// BNF): doxorubicin 450 mg/m² (the conventional limit; some sources
/// allow 550), epirubicin 900 mg/m². Each substance is tracked on its own:
/// a patient who has had both is **not** converted to a doxorubicin
/// equivalent (stated limitation; the pharmacist's verification covers it).
pub const LIMITS: [Limit; 2] = [
    Limit {
        class: "doxorubicin",
        name: "Doxorubicin",
        mg_per_m2: 450.0,
    },
    Limit {
        class: "epirubicin",
        name: "Epirubicin",
        mg_per_m2: 900.0,
    },
];

pub fn limit_of(class: &str) -> Option<&'static Limit> {
    LIMITS.iter().find(|l| l.class == class)
}

/// Where a cumulative dose stands against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    Within,
    /// At or above the warning fraction (90 % by default) of the limit.
    Warning,
    /// Above the limit: refused unless a consultant overrides with a reason.
    Beyond,
}

/// The cumulative standing of `prior` (mg/m² already given or released)
/// plus `this` (mg/m² this cycle).
pub fn cumulative(limit: f64, prior: f64, this: f64, warn_fraction: f64) -> Standing {
    let total = prior + this;
    // A hair of tolerance: 450.000001 from rounding is not beyond 450.
    if total > limit + 1e-6 {
        Standing::Beyond
    } else if total >= limit * warn_fraction - 1e-9 {
        Standing::Warning
    } else {
        Standing::Within
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn per_m2(dose: f64) -> Protocol<'static> {
        Protocol {
            basis: Basis::PerM2,
            dose,
            max_dose: None,
            band: None,
            round_to: None,
        }
    }

    #[test]
    fn calvert_worked_examples() {
        // AUC 5, GFR 100 mL/min: 5 × (100 + 25) = 625 mg.
        assert_eq!(calvert(5.0, 100.0), 625.0);
        // AUC 6, GFR 60: 6 × 85 = 510 mg.
        assert_eq!(calvert(6.0, 60.0), 510.0);
        // The cap: GFR 150 is used as 125, so AUC 5 gives at most 750 mg.
        let (g, capped) = gfr_for_calvert(150.0, 125.0);
        assert!(capped);
        assert_eq!(calvert(5.0, g), 750.0);
    }

    #[test]
    fn cockcroft_gault_worked_examples() {
        // Man, 60 years, 72 kg, creatinine 1.0 mg/dL (88.4 µmol/L):
        // (140 − 60) × 72 / (72 × 1.0) = 80 mL/min.
        assert!((cockcroft_gault(60.0, 72.0, 88.4, Sex::Male) - 80.0).abs() < 1e-9);
        // The same woman: 80 × 0.85 = 68 mL/min.
        assert!((cockcroft_gault(60.0, 72.0, 88.4, Sex::Female) - 68.0).abs() < 1e-9);
        // UK form: (140 − 65) × 70 × 1.23 / 100 µmol/L = 64.6 mL/min.
        let uk = (140.0 - 65.0) * 70.0 * 1.23 / 100.0;
        assert!((cockcroft_gault(65.0, 70.0, 100.0, Sex::Male) - uk).abs() / uk < 0.002);
    }

    #[test]
    fn per_m2_per_kg_flat() {
        let p = Patient {
            bsa_m2: Some(1.8),
            weight_kg: Some(70.0),
            gfr_ml_min: Some(100.0),
        };
        // R-CHOP: rituximab 375 mg/m² × 1.8 m² = 675 mg.
        let c = calculate(&per_m2(375.0), &p, 0.0, None).unwrap();
        assert_eq!((c.calculated, c.final_dose), (675.0, 675.0));
        let kg = Protocol {
            basis: Basis::PerKg,
            ..per_m2(8.0)
        };
        assert_eq!(calculate(&kg, &p, 0.0, None).unwrap().final_dose, 560.0);
        let auc = Protocol {
            basis: Basis::Auc,
            ..per_m2(5.0)
        };
        assert_eq!(calculate(&auc, &p, 0.0, None).unwrap().final_dose, 625.0);
        let flat = Protocol {
            basis: Basis::Flat,
            ..per_m2(100.0)
        };
        assert_eq!(
            calculate(&flat, &Patient::default(), 0.0, None)
                .unwrap()
                .final_dose,
            100.0
        );
        assert!(calculate(&per_m2(375.0), &Patient::default(), 0.0, None).is_err());
    }

    #[test]
    fn reductions_need_a_reason_and_apply_before_the_maximum() {
        let p = Patient {
            bsa_m2: Some(2.0),
            ..Patient::default()
        };
        assert!(calculate(&per_m2(100.0), &p, 25.0, None).is_err());
        assert!(calculate(&per_m2(100.0), &p, 25.0, Some("  ")).is_err());
        assert!(calculate(&per_m2(100.0), &p, 100.0, Some("x")).is_err());
        let c = calculate(&per_m2(100.0), &p, 25.0, Some("neutropenia")).unwrap();
        assert_eq!((c.calculated, c.final_dose), (200.0, 150.0));
        assert_eq!(c.reduction_reason.as_deref(), Some("neutropenia"));
        // Vincristine 1.4 mg/m² × 2.0 = 2.8 mg, capped at 2 mg.
        let vcr = Protocol {
            max_dose: Some(2.0),
            ..per_m2(1.4)
        };
        let c = calculate(&vcr, &p, 0.0, None).unwrap();
        assert!(c.max_applied);
        assert_eq!(c.final_dose, 2.0);
        // Rounding to a tablet: 1250 × 1.8 = 2250 → 2250 (15 × 150).
        let cape = Protocol {
            round_to: Some(150.0),
            ..per_m2(1250.0)
        };
        let p18 = Patient {
            bsa_m2: Some(1.83),
            ..Patient::default()
        };
        // 1250 × 1.83 = 2287.5 → 2250 (nearest 150).
        assert_eq!(
            calculate(&cape, &p18, 0.0, None).unwrap().final_dose,
            2250.0
        );
    }

    #[test]
    fn cumulative_limits() {
        // Doxorubicin: 7 cycles of 60 mg/m² = 420 (93 %): a warning; an
        // eighth would make 480: beyond 450.
        assert_eq!(cumulative(450.0, 360.0, 60.0, 0.9), Standing::Warning);
        assert_eq!(cumulative(450.0, 420.0, 60.0, 0.9), Standing::Beyond);
        assert_eq!(cumulative(450.0, 300.0, 60.0, 0.9), Standing::Within);
        // Exactly at the limit is allowed (with the warning); 405 is 90 %.
        assert_eq!(cumulative(450.0, 400.0, 50.0, 0.9), Standing::Warning);
        assert_eq!(cumulative(450.0, 355.0, 50.0, 0.9), Standing::Warning);
        assert_eq!(cumulative(450.0, 354.0, 50.0, 0.9), Standing::Within);
        assert_eq!(limit_of("epirubicin").map(|l| l.mg_per_m2), Some(900.0));
    }

    proptest! {
        #[test]
        fn calvert_is_linear_and_capped(auc in 1.0f64..10.0, crcl in 0.0f64..300.0) {
            let (g, _) = gfr_for_calvert(crcl, 125.0);
            let d = calvert(auc, g);
            prop_assert!(d <= auc * 150.0 + 1e-9);
            prop_assert!(d >= auc * 25.0 - 1e-9);
        }

        #[test]
        fn reductions_never_raise_a_dose(dose in 1.0f64..2000.0, bsa in 1.0f64..2.5, r in 0.0f64..99.0) {
            let p = Patient { bsa_m2: Some(bsa), ..Patient::default() };
            let full = calculate(&per_m2(dose), &p, 0.0, None).unwrap();
            let red = calculate(&per_m2(dose), &p, r, Some("toxicity")).unwrap();
            prop_assert!(red.final_dose <= full.final_dose + 1e-9);
            prop_assert!((red.reduced - full.calculated * (100.0 - r) / 100.0).abs() < 0.011);
        }

        #[test]
        fn cumulative_is_monotone(prior in 0.0f64..1000.0, this in 0.0f64..200.0, more in 0.0f64..100.0) {
            let rank = |s| match s { Standing::Within => 0, Standing::Warning => 1, Standing::Beyond => 2 };
            prop_assert!(rank(cumulative(450.0, prior + more, this, 0.9)) >= rank(cumulative(450.0, prior, this, 0.9)));
            prop_assert_eq!(cumulative(450.0, prior, this, 0.9) == Standing::Beyond, prior + this > 450.0 + 1e-6);
        }
    }
}
