//! Delta checks: is a result plausible next to the patient's previous one?
//!
//! A large change between two results of the same analyte for the same
//! patient is either real (and clinically important) or a sign of a wrong
//! specimen (another patient's blood in this tube, a drip-arm sample). The
//! biomedical scientist must look before the result goes out.
//!
//! Whether a change **fails** is decided in one place, the catalogue's
//! `Analyte::delta_exceeded` (its limits: `delta_absolute` in the analyte's
//! unit, `delta_percent` of the previous value; a change equal to a limit
//! passes). This module describes the comparison for people: the change,
//! the change as a percentage, the limit in words.

use serde::Serialize;

use crate::orders::catalogue::Analyte;

/// How much two results may differ before someone must confirm them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct DeltaLimit {
    /// The largest change allowed, in the analyte's unit.
    pub absolute: Option<f64>,
    /// The largest change allowed, as a percentage of the previous value.
    pub percent: Option<f64>,
}

impl DeltaLimit {
    pub fn is_set(&self) -> bool {
        self.absolute.is_some() || self.percent.is_some()
    }

    /// The limit in words: "±30 µmol/L or ±50%".
    pub fn describe(&self, unit: Option<&str>) -> String {
        let mut parts = Vec::new();
        if let Some(a) = self.absolute {
            parts.push(match unit {
                Some(u) => format!("±{} {u}", trim(a)),
                None => format!("±{}", trim(a)),
            });
        }
        if let Some(p) = self.percent {
            parts.push(format!("±{}%", trim(p)));
        }
        parts.join(" or ")
    }
}

/// The comparison of a result with the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Delta {
    pub previous: f64,
    pub current: f64,
    /// `current - previous`.
    pub change: f64,
    /// The change as a percentage of the previous value; `None` when the
    /// previous value is zero.
    pub percent: Option<f64>,
    /// More than a limit allows (see the module documentation).
    pub exceeded: bool,
}

/// Compares `current` with `previous` for `analyte`; whether it fails is
/// `Analyte::delta_exceeded`'s decision.
pub fn check(analyte: &Analyte, previous: f64, current: f64) -> Delta {
    let change = current - previous;
    Delta {
        previous,
        current,
        change,
        percent: (previous != 0.0).then(|| change / previous.abs() * 100.0),
        exceeded: analyte.delta_exceeded(previous, current),
    }
}

/// The delta limits of an analyte.
pub fn limit_of(analyte: &Analyte) -> DeltaLimit {
    DeltaLimit {
        absolute: analyte.delta_absolute,
        percent: analyte.delta_percent,
    }
}

/// A number as people write it: no trailing zeros, at most 6 decimals.
pub fn trim(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn analyte(absolute: Option<f64>, percent: Option<f64>) -> Analyte {
        Analyte {
            code: json!({"coding": [{"system": "http://loinc.org", "code": "2823-3"}]}),
            display: "Potassium".into(),
            unit: Some("mmol/L".into()),
            low: Some(3.5),
            high: Some(5.3),
            critical_low: None,
            critical_high: None,
            delta_absolute: absolute,
            delta_percent: percent,
            sex_ranges: Vec::new(),
        }
    }

    #[test]
    fn worked_examples() {
        // Potassium 4.1 → 6.2 mmol/L, limit ±1.0: fails, a change of +2.1.
        let d = check(&analyte(Some(1.0), None), 4.1, 6.2);
        assert!(d.exceeded);
        assert!((d.change - 2.1).abs() < 1e-12);
        assert!((d.percent.unwrap() - 51.219_512).abs() < 1e-5);
        // Creatinine 80 → 130, ±50%: 62.5% fails; 80 → 120 is 50%: passes.
        let pct = analyte(None, Some(50.0));
        let d = check(&pct, 80.0, 130.0);
        assert!(d.exceeded);
        assert!((d.percent.unwrap() - 62.5).abs() < 1e-9);
        assert!(!check(&pct, 80.0, 120.0).exceeded);
        assert!(check(&pct, 80.0, 39.0).exceeded, "falls count too");
        // No percentage from zero.
        assert_eq!(check(&pct, 0.0, 1.0).percent, None);
        // No limit, no check.
        assert!(!check(&analyte(None, None), 1.0, 1000.0).exceeded);
    }

    #[test]
    fn limits_in_words() {
        let l = limit_of(&analyte(Some(30.0), Some(50.0)));
        assert_eq!(l.describe(Some("umol/L")), "±30 umol/L or ±50%");
        assert_eq!(limit_of(&analyte(Some(0.5), None)).describe(None), "±0.5");
        assert!(!limit_of(&analyte(None, None)).is_set());
        assert_eq!(trim(2.100), "2.1");
        assert_eq!(trim(-0.0), "0");
    }

    proptest! {
        /// The description agrees with the catalogue's decision and with
        /// itself: the change is current − previous, its percentage is of
        /// the previous value's size, and the verdict is the catalogue's.
        #[test]
        fn the_description_is_consistent(prev in -1e4f64..1e4, change in -1e3f64..1e3,
                                         a in proptest::option::of(0f64..100.0),
                                         p in proptest::option::of(0f64..200.0)) {
            let an = analyte(a, p);
            let d = check(&an, prev, prev + change);
            prop_assert_eq!(d.exceeded, an.delta_exceeded(prev, prev + change));
            prop_assert!((d.change - ((prev + change) - prev)).abs() < 1e-9);
            match d.percent {
                Some(pc) => prop_assert!((pc * prev.abs() / 100.0 - d.change).abs() < 1e-6 * (1.0 + d.change.abs())),
                None => prop_assert_eq!(prev, 0.0),
            }
            prop_assert!(!check(&an, prev, prev).exceeded, "no change never fails");
        }
    }
}
