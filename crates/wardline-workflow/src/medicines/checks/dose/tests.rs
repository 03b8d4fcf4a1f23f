use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::medicines::formulary::{Entry, Qty};

fn tablet_500() -> Entry {
    Entry {
        id: "med-para-500".into(),
        unit_of_dose: "tablet".into(),
        strength: Some((
            Qty {
                value: 500.0,
                unit: "mg".into(),
            },
            Qty {
                value: 1.0,
                unit: "tablet".into(),
            },
        )),
        ..Entry::default()
    }
}

fn iv_10mg_ml() -> Entry {
    Entry {
        id: "med-para-iv".into(),
        unit_of_dose: "mL".into(),
        strength: Some((
            Qty {
                value: 10.0,
                unit: "mg".into(),
            },
            Qty {
                value: 1.0,
                unit: "mL".into(),
            },
        )),
        ..Entry::default()
    }
}

fn regular(value: f64, unit: &str, times: &[&str]) -> Value {
    json!({"resourceType": "MedicationRequest", "dosageInstruction": [{
        "timing": {"repeat": {"timeOfDay": times, "frequency": times.len(), "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}]}]})
}

fn prn(value: f64, unit: &str, max: Option<(f64, &str)>, interval_h: Option<f64>) -> Value {
    let mut d = json!({"asNeededBoolean": true,
        "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}]});
    if let Some((v, u)) = max {
        d["maxDosePerPeriod"] = json!({"numerator": {"value": v, "unit": u},
            "denominator": {"value": 24, "unit": "h"}});
    }
    if let Some(h) = interval_h {
        d["extension"] =
            json!([{"url": MIN_INTERVAL_EXT, "valueDuration": {"value": h, "unit": "h"}}]);
    }
    json!({"resourceType": "MedicationRequest", "dosageInstruction": [d]})
}

const QDS: [&str; 4] = ["06:00:00", "12:00:00", "18:00:00", "22:00:00"];

#[test]
fn paracetamol_across_routes_is_over_the_maximum() {
    // 1 g QDS oral (2 × 500 mg tablets) + 1 g PRN IV, max 4 g in 24 h.
    let oral = regular(2.0, "tablet", &QDS);
    let iv = prn(100.0, "mL", Some((4.0, "g")), Some(4.0));
    let t = tablet_500();
    let i = iv_10mg_ml();
    assert_eq!(most_in_24h_mg(&oral, Some(&t)), Some(4000.0));
    assert_eq!(most_in_24h_mg(&iv, Some(&i)), Some(4000.0));
    let (total, unknown) = total_mg([(&oral, Some(&t)), (&iv, Some(&i))]);
    assert_eq!(unknown, 0);
    assert!(total > 4000.0, "{total}");
    assert_eq!(mg_text(total), "8 g");
}

#[test]
fn paracetamol_two_500mg_tablets_qds_is_exactly_the_maximum() {
    let oral = regular(2.0, "tablets", &QDS);
    let (total, _) = total_mg([(&oral, Some(&tablet_500()))]);
    assert!((total - 4000.0).abs() < 1e-9);
    assert!(total <= 4000.0 + 1e-6, "not over");
}

#[test]
fn a_prn_without_a_maximum_counts_the_doses_its_interval_allows() {
    // 1 g every 4 hours at the most: six doses in 24 hours.
    let p = prn(1.0, "g", None, Some(4.0));
    assert_eq!(most_in_24h_mg(&p, None), Some(6000.0));
    // 1 g every 6 hours: four.
    let p = prn(1000.0, "mg", None, Some(6.0));
    assert_eq!(most_in_24h_mg(&p, None), Some(4000.0));
}

#[test]
fn frequencies_and_units() {
    assert_eq!(mass_mg(500.0, "microgram"), Some(0.5));
    assert_eq!(mass_mg(1.0, "g"), Some(1000.0));
    assert_eq!(mass_mg(1.0, "tablet"), None);
    // Every 6 hours.
    assert_eq!(
        times_in_24h(&json!({"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}})),
        4.0
    );
    // Weekly (methotrexate): one dose can fall in a day.
    assert_eq!(
        times_in_24h(&json!({"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}})),
        1.0
    );
    // Three times a day by times of day only.
    assert_eq!(
        times_in_24h(&json!({"repeat": {"timeOfDay": ["08:00:00", "14:00:00", "22:00:00"]}})),
        3.0
    );
    // A dose in units cannot be made mg.
    let insulin = regular(10.0, "unit", &["08:00:00"]);
    assert_eq!(most_in_24h_mg(&insulin, None), None);
    assert_eq!(mg_text(2700.0), "2.7 g");
    assert_eq!(mg_text(62.5), "62.5 mg");
}

#[test]
fn cockcroft_gault_against_a_worked_example() {
    // A 70-year-old man, 75 kg, serum creatinine 110 µmol/L:
    // (140 − 70) × 75 × 1.23 ÷ 110 ≈ 58.7 mL/min.
    let c = cockcroft_gault(70.0, 75.0, false, 110.0);
    assert!((c - 58.7).abs() < 0.05, "{c}");
    // The same woman: × 1.04 → 49.6 mL/min.
    let f = cockcroft_gault(70.0, 75.0, true, 110.0);
    assert!((f - 49.6).abs() < 0.05, "{f}");
    // The mg/dL form's example (60-year-old man, 80 kg, 1.2 mg/dL =
    // 106.08 µmol/L: 74.1 mL/min) agrees within the constants' rounding.
    let us = cockcroft_gault(60.0, 80.0, false, 1.2 * 88.4);
    assert!((us - 74.1).abs() < 0.5, "{us}");
}

proptest! {
    /// Adding a prescription never lowers the total; a larger dose never
    /// lowers it either.
    #[test]
    fn the_dose_sum_is_monotone(
        doses in proptest::collection::vec((1u32..4000, 1usize..5, any::<bool>()), 0..8),
        extra in 1u32..4000,
        times in 1usize..5,
        bump in 0u32..2000,
    ) {
        let mrs: Vec<Value> = doses.iter().map(|(mg, t, is_prn)| {
            if *is_prn { prn(f64::from(*mg), "mg", None, Some(24.0 / *t as f64)) }
            else { regular(f64::from(*mg), "mg", &QDS[..*t]) }
        }).collect();
        let (before, _) = total_mg(mrs.iter().map(|m| (m, None)));
        let more = regular(f64::from(extra), "mg", &QDS[..times]);
        let (after, _) = total_mg(mrs.iter().map(|m| (m, None)).chain([(&more, None)]));
        prop_assert!(after >= before);
        let bigger = regular(f64::from(extra + bump), "mg", &QDS[..times]);
        let (bigger_total, _) = total_mg(mrs.iter().map(|m| (m, None)).chain([(&bigger, None)]));
        prop_assert!(bigger_total >= after);
    }

    /// Cockcroft–Gault falls as creatinine or age rises and rises with
    /// weight.
    #[test]
    fn cockcroft_gault_is_monotone(age in 18.0f64..100.0, w in 30.0f64..150.0, cr in 30.0f64..900.0, d in 0.1f64..50.0) {
        let c = cockcroft_gault(age, w, false, cr);
        prop_assert!(cockcroft_gault(age, w, false, cr + d) <= c);
        prop_assert!(cockcroft_gault((age + d).min(140.0), w, false, cr) <= c);
        prop_assert!(cockcroft_gault(age, w + d, false, cr) >= c);
        prop_assert!(cockcroft_gault(age, w, true, cr) <= c);
    }
}
