//! Body surface area: Mosteller and DuBois, and the trust's cap.
//!
//! * Mosteller (N Engl J Med 1987;317:1098): `√(height cm × weight kg / 3600)`.
//! * DuBois & DuBois (Arch Intern Med 1916;17:863):
//!   `0.007184 × weight kg^0.425 × height cm^0.725`.
//!
//! Both are always computed and shown; the trust chooses the one doses are
//! calculated from ([`super::ChemoConfig::bsa_formula`], Mosteller by
//! default) and a cap ([`super::ChemoConfig::bsa_cap`], 2.0 m² by default;
//! `None` for no cap). The cycle records which formula, the uncapped value
//! and whether the cap applied.

use serde::Serialize;

/// A BSA formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Formula {
    Mosteller,
    DuBois,
}

impl Formula {
    /// The code kept on the cycle.
    pub fn code(self) -> &'static str {
        match self {
            Formula::Mosteller => "mosteller",
            Formula::DuBois => "dubois",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Formula::Mosteller => "Mosteller",
            Formula::DuBois => "DuBois",
        }
    }

    pub fn parse(code: &str) -> Option<Formula> {
        match code.trim().to_ascii_lowercase().as_str() {
            "mosteller" => Some(Formula::Mosteller),
            "dubois" | "du-bois" | "du bois" => Some(Formula::DuBois),
            _ => None,
        }
    }

    /// The BSA (m²) of `height_cm` and `weight_kg` by this formula.
    pub fn bsa(self, height_cm: f64, weight_kg: f64) -> f64 {
        match self {
            Formula::Mosteller => mosteller(height_cm, weight_kg),
            Formula::DuBois => dubois(height_cm, weight_kg),
        }
    }
}

/// Mosteller's BSA in m².
pub fn mosteller(height_cm: f64, weight_kg: f64) -> f64 {
    (height_cm * weight_kg / 3600.0).sqrt()
}

/// DuBois & DuBois' BSA in m².
pub fn dubois(height_cm: f64, weight_kg: f64) -> f64 {
    0.007184 * weight_kg.powf(0.425) * height_cm.powf(0.725)
}

/// The BSA a cycle is dosed on: both formulas, the one used, and the cap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bsa {
    pub mosteller: f64,
    pub dubois: f64,
    pub formula: Formula,
    /// The chosen formula's value before the cap.
    pub uncapped: f64,
    /// What doses are calculated from (rounded to 2 decimal places).
    pub used: f64,
    pub capped: bool,
}

/// The plausible ranges of an adult's measurements (outside them a typing
/// slip is likelier than a patient: refused, not dosed).
pub const HEIGHT_RANGE_CM: (f64, f64) = (100.0, 230.0);
pub const WEIGHT_RANGE_KG: (f64, f64) = (25.0, 300.0);

/// Computes the BSA, or says why the measurements cannot be dosed on.
pub fn compute(
    height_cm: f64,
    weight_kg: f64,
    formula: Formula,
    cap: Option<f64>,
) -> Result<Bsa, String> {
    if !(HEIGHT_RANGE_CM.0..=HEIGHT_RANGE_CM.1).contains(&height_cm) {
        return Err(format!(
            "A height of {height_cm} cm is outside {}–{} cm: check the measurement.",
            HEIGHT_RANGE_CM.0, HEIGHT_RANGE_CM.1
        ));
    }
    if !(WEIGHT_RANGE_KG.0..=WEIGHT_RANGE_KG.1).contains(&weight_kg) {
        return Err(format!(
            "A weight of {weight_kg} kg is outside {}–{} kg: check the measurement.",
            WEIGHT_RANGE_KG.0, WEIGHT_RANGE_KG.1
        ));
    }
    let uncapped = round2(formula.bsa(height_cm, weight_kg));
    let (used, capped) = match cap {
        Some(c) if uncapped > c => (c, true),
        _ => (uncapped, false),
    };
    Ok(Bsa {
        mosteller: round2(mosteller(height_cm, weight_kg)),
        dubois: round2(dubois(height_cm, weight_kg)),
        formula,
        uncapped,
        used,
        capped,
    })
}

/// Rounds to 2 decimal places (BSA is stated to 0.01 m²).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mosteller_worked_examples() {
        // √(180 × 80 / 3600) = √4 = 2.00 m²; √(170 × 70 / 3600) = 1.82 m².
        assert!((mosteller(180.0, 80.0) - 2.0).abs() < 1e-12);
        assert_eq!(round2(mosteller(170.0, 70.0)), 1.82);
        assert_eq!(round2(mosteller(160.0, 60.0)), 1.63);
    }

    #[test]
    fn dubois_worked_examples() {
        // 0.007184 × 80^0.425 × 180^0.725 = 1.996 m²; 170 cm 70 kg = 1.81 m².
        assert_eq!(round2(dubois(180.0, 80.0)), 2.00);
        assert!((dubois(180.0, 80.0) - 1.9964).abs() < 1e-4);
        assert_eq!(round2(dubois(170.0, 70.0)), 1.81);
        assert_eq!(round2(dubois(160.0, 60.0)), 1.62);
    }

    #[test]
    fn the_cap_applies_above_it_only() {
        let b = compute(183.0, 95.0, Formula::Mosteller, Some(2.0)).unwrap();
        assert_eq!((b.uncapped, b.used, b.capped), (2.2, 2.0, true));
        let b = compute(183.0, 95.0, Formula::DuBois, Some(2.0)).unwrap();
        assert_eq!((b.uncapped, b.used, b.capped), (2.17, 2.0, true));
        assert_eq!(b.mosteller, 2.2);
        let b = compute(183.0, 95.0, Formula::Mosteller, None).unwrap();
        assert_eq!((b.used, b.capped), (2.2, false));
        let b = compute(180.0, 80.0, Formula::Mosteller, Some(2.0)).unwrap();
        assert_eq!((b.used, b.capped), (2.0, false));
    }

    #[test]
    fn implausible_measurements_are_refused() {
        assert!(compute(17.0, 70.0, Formula::Mosteller, None).is_err());
        assert!(compute(170.0, 700.0, Formula::Mosteller, None).is_err());
        assert_eq!(Formula::parse("DuBois"), Some(Formula::DuBois));
        assert_eq!(Formula::parse("x"), None);
    }

    proptest! {
        #[test]
        fn formulas_agree_and_grow(h in 140.0f64..210.0, w in 40.0f64..150.0, dh in 0.1f64..10.0, dw in 0.1f64..10.0) {
            let (m, d) = (mosteller(h, w), dubois(h, w));
            // Both formulas agree within 5 % for a BMI of 18–35 (they part
            // in obesity, DuBois lower: why the formula is shown).
            let bmi = w / (h / 100.0).powi(2);
            if (18.0..=35.0).contains(&bmi) {
                prop_assert!((m - d).abs() / m < 0.05, "{h} {w}: {m} vs {d}");
            }
            // Taller or heavier never gives a smaller BSA.
            prop_assert!(mosteller(h + dh, w + dw) > m);
            prop_assert!(dubois(h + dh, w + dw) > d);
            // The cap is never exceeded and never raises a dose.
            let b = compute(h, w, Formula::Mosteller, Some(2.0)).unwrap();
            prop_assert!(b.used <= 2.0 && b.used <= b.uncapped);
            prop_assert_eq!(b.capped, b.uncapped > 2.0);
        }
    }
}
