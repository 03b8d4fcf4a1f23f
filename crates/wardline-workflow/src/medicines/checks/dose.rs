//! The arithmetic of the checks: a prescription's most in any 24 hours in
//! mg, the sum over a patient's prescriptions, and creatinine clearance by
//! Cockcroft–Gault. Pure functions over the FHIR shapes of the
//! [model](super::super).

use serde_json::Value;

use super::super::formulary::Entry;
use super::super::{Kind, MIN_INTERVAL_EXT, kind};

/// A mass in mg, from a value and its unit (`mg`, `g`, `microgram`,
/// `mcg`, `ug`, `nanogram`, `ng`); `None` for any other unit.
pub fn mass_mg(value: f64, unit: &str) -> Option<f64> {
    let u = unit.trim().to_lowercase();
    let factor = match u.as_str() {
        "mg" | "milligram" | "milligrams" => 1.0,
        "g" | "gram" | "grams" => 1000.0,
        "kg" => 1_000_000.0,
        "microgram" | "micrograms" | "mcg" | "ug" | "µg" | "μg" => 0.001,
        "nanogram" | "nanograms" | "ng" => 0.000_001,
        _ => return None,
    };
    Some(value * factor)
}

fn singular(u: &str) -> String {
    let u = u.trim().to_lowercase();
    u.strip_suffix('s').map(str::to_owned).unwrap_or(u)
}

fn qty(q: &Value) -> Option<(f64, String)> {
    let v = q["value"].as_f64()?;
    let unit = q["unit"]
        .as_str()
        .or_else(|| q["code"].as_str())
        .unwrap_or_default()
        .to_owned();
    Some((v, unit))
}

/// A dose (a FHIR Quantity) in mg: a mass as it is, or a count of the
/// entry's unit of dose (tablets, mL) through its strength.
pub fn dose_mg(q: &Value, entry: Option<&Entry>) -> Option<f64> {
    let (v, unit) = qty(q)?;
    if let Some(mg) = mass_mg(v, &unit) {
        return Some(mg);
    }
    let e = entry?;
    let (num, den) = e.strength.as_ref()?;
    let per = mass_mg(num.value, &num.unit)?;
    if den.value <= 0.0 {
        return None;
    }
    let u = singular(&unit);
    let fits = u == singular(&den.unit)
        || (!e.unit_of_dose.is_empty() && u == singular(&e.unit_of_dose))
        || (u.is_empty() && den.value == 1.0);
    fits.then(|| v * per / den.value)
}

/// A duration in hours (`h`, `min`, `d`, `wk`; UCUM or words).
pub fn hours(value: f64, unit: &str) -> Option<f64> {
    let f = match unit.trim().to_lowercase().as_str() {
        "s" | "sec" | "second" | "seconds" => 1.0 / 3600.0,
        "min" | "minute" | "minutes" => 1.0 / 60.0,
        "h" | "hr" | "hour" | "hours" => 1.0,
        "d" | "day" | "days" => 24.0,
        "wk" | "week" | "weeks" => 168.0,
        "mo" | "month" | "months" => 720.0,
        "a" | "year" | "years" => 8760.0,
        _ => return None,
    };
    Some(value * f)
}

/// How many administrations of a regular timing can fall in 24 hours:
/// the `timeOfDay`s of a daily timing, else `frequency` (or
/// `frequencyMax`) per `period`, rounded up, at least one.
pub fn times_in_24h(timing: &Value) -> f64 {
    let r = &timing["repeat"];
    let tod = r["timeOfDay"].as_array().map_or(0, Vec::len) as f64;
    let freq = r["frequencyMax"]
        .as_f64()
        .or_else(|| r["frequency"].as_f64())
        .unwrap_or(if tod > 0.0 { tod } else { 1.0 })
        .max(tod);
    let period_h = hours(
        r["period"].as_f64().unwrap_or(1.0),
        r["periodUnit"].as_str().unwrap_or("d"),
    )
    .filter(|h| *h > 0.0)
    .unwrap_or(24.0);
    (freq * 24.0 / period_h - 1e-9).ceil().max(1.0)
}

/// The most of a prescription that can be given in any 24 hours, in mg;
/// `None` when its dose is not a mass and cannot be made one through the
/// entry's strength (or an infusion prescribed by rate).
///
/// * regular: dose × [`times_in_24h`];
/// * as required: `maxDosePerPeriod` scaled to 24 hours, else the dose
///   × the doses the minimum interval allows in 24 hours, else one dose;
/// * once only: the dose;
/// * variable dose: the top of the range (or the dose);
/// * infusion: a dose given as a mass, else `None`.
pub fn most_in_24h_mg(mr: &Value, entry: Option<&Entry>) -> Option<f64> {
    let d = &mr["dosageInstruction"][0];
    let dr = &d["doseAndRate"][0];
    let dose = || dose_mg(&dr["doseQuantity"], entry);
    match kind(mr) {
        Kind::Regular => Some(dose()? * times_in_24h(&d["timing"])),
        Kind::AsRequired => {
            let m = &d["maxDosePerPeriod"];
            if let Some(n) = dose_mg(&m["numerator"], entry) {
                let per_h = qty(&m["denominator"])
                    .and_then(|(v, u)| hours(v, &u))
                    .filter(|h| *h > 0.0)
                    .unwrap_or(24.0);
                return Some(n * (24.0 / per_h).max(1.0));
            }
            let one = dose()?;
            let interval_h = d["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["url"] == MIN_INTERVAL_EXT)
                .and_then(|e| qty(&e["valueDuration"]))
                .and_then(|(v, u)| hours(v, &u))
                .filter(|h| *h > 0.0);
            Some(match interval_h {
                Some(h) => one * (24.0 / h).floor().max(1.0),
                None => one,
            })
        }
        Kind::OnceOnly => dose(),
        Kind::VariableDose => dose_mg(&dr["doseRange"]["high"], entry).or_else(dose),
        Kind::Infusion => dose(),
    }
}

/// The sum over prescriptions (each its most in 24 hours) and how many
/// could not be counted.
pub fn total_mg<'a>(
    items: impl IntoIterator<Item = (&'a Value, Option<&'a Entry>)>,
) -> (f64, usize) {
    let mut total = 0.0;
    let mut unknown = 0;
    for (mr, e) in items {
        match most_in_24h_mg(mr, e) {
            Some(mg) => total += mg,
            None => unknown += 1,
        }
    }
    (total, unknown)
}

/// Creatinine clearance (mL/min) by Cockcroft–Gault with serum creatinine
/// in µmol/L: (140 − age) × weight (kg) × 1.23 (male) or 1.04 (female) ÷
/// creatinine. Never below zero.
pub fn cockcroft_gault(
    age_years: f64,
    weight_kg: f64,
    female: bool,
    creatinine_umol_l: f64,
) -> f64 {
    if creatinine_umol_l <= 0.0 {
        return f64::INFINITY;
    }
    let k = if female { 1.04 } else { 1.23 };
    ((140.0 - age_years) * weight_kg * k / creatinine_umol_l).max(0.0)
}

/// A mass in mg written for people (`4 g`, `2.7 g`, `500 mg`, `62.5 micrograms`).
pub fn mg_text(mg: f64) -> String {
    fn num(v: f64) -> String {
        let s = format!("{:.2}", v);
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
    if mg >= 1000.0 {
        format!("{} g", num(mg / 1000.0))
    } else if mg >= 1.0 || mg == 0.0 {
        format!("{} mg", num(mg))
    } else {
        format!("{} micrograms", num(mg * 1000.0))
    }
}

#[cfg(test)]
mod tests;
