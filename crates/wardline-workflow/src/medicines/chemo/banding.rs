//! Dose banding to the NHS England national dose-banding tables.
//!
//! The tables are data (`dose-bands.json` beside this file), kept in the
//! published structure: a table per container type and strength of raw
//! material, each band `From ≥`, `To (A) <`, `To (B) ≤`, the band dose and
//! the published variance. Wardline rounds **up on the step** between two
//! bands, so it uses `To (A)`: a dose is in the band with
//! `from ≤ dose < to_a`. A dose outside every band of the table is not
//! banded (the calculation says so) rather than pushed to the nearest end.
//!
//! Which tables and values are included, and their status, is stated in
//! the data file (`about`, `source`, `status`) and in ARCHITECTURE.md: only
//! the single-container 1 mg/mL table (vincristine and others), checked
//! against the published table; the other drugs are not banded.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The data file.
pub const DOSE_BANDS: &str = include_str!("dose-bands.json");

/// One band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub from: f64,
    #[serde(rename = "toA")]
    pub to_a: f64,
    #[serde(rename = "toB")]
    pub to_b: f64,
    pub dose: f64,
    #[serde(rename = "varianceBelow")]
    pub variance_below: i32,
    #[serde(rename = "varianceAbove")]
    pub variance_above: i32,
}

/// One published table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandTable {
    pub id: String,
    pub name: String,
    pub strength: String,
    pub drugs: Vec<String>,
    pub bands: Vec<Band>,
}

#[derive(Debug, Clone, Deserialize)]
struct File {
    status: String,
    tables: Vec<BandTable>,
}

fn file() -> &'static File {
    static F: OnceLock<File> = OnceLock::new();
    F.get_or_init(|| {
        // The file is checked by the tests below; a broken one bands nothing.
        serde_json::from_str(DOSE_BANDS).unwrap_or(File {
            status: "the dose-band file could not be read: nothing is banded".into(),
            tables: Vec::new(),
        })
    })
}

/// Every table included.
pub fn tables() -> &'static [BandTable] {
    &file().tables
}

/// The data file's statement of what is included and its status.
pub fn status() -> &'static str {
    &file().status
}

/// The table of this id.
pub fn table(id: &str) -> Option<&'static BandTable> {
    tables().iter().find(|t| t.id == id)
}

/// The band `dose_mg` falls in (`from ≤ dose < to_a`), if any.
pub fn band(t: &BandTable, dose_mg: f64) -> Option<Band> {
    t.bands
        .iter()
        .find(|b| b.from <= dose_mg && dose_mg < b.to_a)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vcr() -> &'static BandTable {
        table("single-container-1mg-ml").expect("the 1 mg/mL table is included")
    }

    #[test]
    fn the_file_is_read_and_the_bands_are_contiguous() {
        assert!(status().starts_with("PARTIAL"));
        let t = vcr();
        assert!(t.drugs.iter().any(|d| d == "vincristine"));
        for w in t.bands.windows(2) {
            assert_eq!(w[0].to_a, w[1].from, "bands meet at {}", w[0].to_a);
        }
        for b in &t.bands {
            assert!(b.from <= b.dose && b.dose < b.to_a, "{b:?}");
            assert!(b.from <= b.to_b && b.to_b < b.to_a, "{b:?}");
            // The published variance: within 7 % either side.
            assert!(b.variance_below.abs() <= 7 && b.variance_above.abs() <= 7);
        }
    }

    #[test]
    fn band_boundaries() {
        let t = vcr();
        // From ≥ … To (A) <: 1.35 is the 1.4 mg band, just under is 1.3 mg.
        assert_eq!(band(t, 1.35).map(|b| b.dose), Some(1.4));
        assert_eq!(band(t, 1.3499).map(|b| b.dose), Some(1.3));
        assert_eq!(band(t, 1.4499).map(|b| b.dose), Some(1.4));
        assert_eq!(band(t, 1.45).map(|b| b.dose), Some(1.5));
        // 1.75 up to (not including) 1.90 is 1.8 mg; 1.90 is 2 mg.
        assert_eq!(band(t, 1.75).map(|b| b.dose), Some(1.8));
        assert_eq!(band(t, 1.8999).map(|b| b.dose), Some(1.8));
        assert_eq!(band(t, 1.9).map(|b| b.dose), Some(2.0));
        assert_eq!(band(t, 2.0).map(|b| b.dose), Some(2.0));
        assert_eq!(band(t, 2.1).map(|b| b.dose), Some(2.2));
        // The ends: below the first band and from the last band's To (A).
        assert_eq!(band(t, 0.2099), None);
        assert_eq!(band(t, 0.21).map(|b| b.dose), Some(0.22));
        assert_eq!(band(t, 16.96).map(|b| b.dose), Some(16.0));
        assert_eq!(band(t, 16.97), None);
    }

    proptest! {
        #[test]
        fn a_banded_dose_is_within_seven_percent(dose in 0.21f64..16.97) {
            let t = vcr();
            let b = band(t, dose).expect("inside the table");
            prop_assert!(b.from <= dose && dose < b.to_a);
            prop_assert!(((b.dose - dose) / dose).abs() <= 0.07, "{dose} → {}", b.dose);
        }
    }
}
