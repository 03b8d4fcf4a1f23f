//! Delta checks: is a result plausible next to the patient's previous one?
//!
//! A large change between two results of the same analyte for the same
//! patient is either real (and clinically important) or a sign of a wrong
//! specimen (another patient's blood in this tube, a drip-arm sample). The
//! biomedical scientist must look before the result goes out.
//!
//! The limits come from the catalogue (`Analyte::delta_absolute`, in the
//! analyte's unit; `Analyte::delta_percent`, a percentage of the previous
//! value). A check **fails** when the size of the change is *more than*
//! either limit (a change exactly at the limit passes); with both limits
//! set, either one failing is enough. A percentage against a previous value
//! of zero: any change from zero fails it (it is an infinite relative
//! change), no change passes. No limit set: no check.

use serde::Serialize;

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

/// Tolerance for comparing a change with a limit: the difference of two
/// decimals in binary floating point (5.3 − 5.0 = 0.2999…) must not decide
/// a check that decimal arithmetic would pass.
const EPS: f64 = 1e-9;

/// Compares `current` with `previous` against `limit`.
pub fn check(previous: f64, current: f64, limit: DeltaLimit) -> Delta {
    let change = current - previous;
    let size = change.abs();
    let percent = (previous != 0.0).then(|| change / previous.abs() * 100.0);
    let over_abs = limit
        .absolute
        .is_some_and(|a| size > a.abs() + EPS * (1.0 + a.abs()));
    let over_pct = limit.percent.is_some_and(|p| match percent {
        Some(pc) => pc.abs() > p.abs() + EPS * (1.0 + p.abs()),
        None => size > 0.0,
    });
    Delta {
        previous,
        current,
        change,
        percent,
        exceeded: over_abs || over_pct,
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

    fn abs(a: f64) -> DeltaLimit {
        DeltaLimit {
            absolute: Some(a),
            percent: None,
        }
    }
    fn pct(p: f64) -> DeltaLimit {
        DeltaLimit {
            absolute: None,
            percent: Some(p),
        }
    }

    #[test]
    fn worked_examples() {
        // Potassium 4.1 → 6.2 mmol/L, limit ±1.0: fails.
        let d = check(4.1, 6.2, abs(1.0));
        assert!(d.exceeded);
        assert!((d.change - 2.1).abs() < 1e-12);
        // Sodium 140 → 141, limit ±8: passes.
        assert!(!check(140.0, 141.0, abs(8.0)).exceeded);
        // At the limit exactly, in decimals that binary floats cannot hold:
        // 5.0 → 5.3 with ±0.3 passes.
        assert!(!check(5.0, 5.3, abs(0.3)).exceeded);
        assert!(check(5.0, 5.31, abs(0.3)).exceeded);
        // Creatinine 80 → 130 µmol/L, ±50%: 62.5% fails; 80 → 120 is 50%: passes.
        let d = check(80.0, 130.0, pct(50.0));
        assert!(d.exceeded);
        assert!((d.percent.unwrap() - 62.5).abs() < 1e-9);
        assert!(!check(80.0, 120.0, pct(50.0)).exceeded);
        assert!(check(80.0, 39.0, pct(50.0)).exceeded, "falls count too");
        // Either limit fails it.
        let both = DeltaLimit {
            absolute: Some(30.0),
            percent: Some(50.0),
        };
        assert!(
            check(80.0, 115.0, both).exceeded,
            "35 > 30 though 43.75% < 50%"
        );
        assert!(!check(80.0, 105.0, both).exceeded);
        // From zero: any change fails a percentage; none passes.
        assert!(check(0.0, 0.1, pct(50.0)).exceeded);
        assert!(!check(0.0, 0.0, pct(50.0)).exceeded);
        assert_eq!(check(0.0, 1.0, pct(10.0)).percent, None);
        // No limit, no check.
        assert!(!check(1.0, 1000.0, DeltaLimit::default()).exceeded);
    }

    #[test]
    fn limits_in_words() {
        let l = DeltaLimit {
            absolute: Some(30.0),
            percent: Some(50.0),
        };
        assert_eq!(l.describe(Some("umol/L")), "±30 umol/L or ±50%");
        assert_eq!(abs(0.5).describe(None), "±0.5");
        assert_eq!(trim(2.100), "2.1");
        assert_eq!(trim(-0.0), "0");
    }

    proptest! {
        /// No change never fails; a change is judged by its size, not its
        /// direction; a bigger change never passes where a smaller failed;
        /// a percentage check does not depend on the scale of the unit.
        #[test]
        fn the_check_is_sane(prev in -1e4f64..1e4, change in -1e3f64..1e3,
                             more in 0f64..1e3, a in 0f64..100.0, p in 0f64..200.0,
                             scale in 0.001f64..1000.0) {
            let both = DeltaLimit { absolute: Some(a), percent: Some(p) };
            prop_assert!(!check(prev, prev, both).exceeded);
            let up = check(prev, prev + change, abs(a));
            let down = check(prev, prev - change, abs(a));
            prop_assert_eq!(up.exceeded, down.exceeded);
            let bigger = change.signum() * (change.abs() + more);
            if check(prev, prev + change, both).exceeded {
                prop_assert!(check(prev, prev + bigger, both).exceeded);
            }
            let x = check(prev, prev + change, pct(p)).exceeded;
            let y = check(prev * scale, (prev + change) * scale, pct(p)).exceeded;
            // Away from the boundary the scale cannot matter.
            if prev != 0.0 {
                let pc = (change / prev * 100.0).abs();
                if (pc - p).abs() > 1e-6 * (1.0 + p) {
                    prop_assert_eq!(x, y);
                }
            }
            // The absolute check is exactly |change| > a, away from the boundary.
            if (change.abs() - a).abs() > 1e-6 {
                prop_assert_eq!(up.exceeded, change.abs() > a);
            }
        }
    }
}
