//! Prescribing on the inpatient drug chart: a [`Prescription`] (what a
//! prescriber asks for) checked against the formulary and its kind, built
//! into the `MedicationRequest` of the contract ([`super`]), put through
//! decision support ([`super::checks`]) and saved `active` with the
//! prescriber's signature ([`SIGNATURE_EXT`]) — the prescriber signs by
//! submitting.
//!
//! # Rules
//!
//! * The medicine is an active formulary entry; the route one of the
//!   entry's routes (SNOMED CT); the dose positive, in the entry's unit of
//!   dose or its strength's unit (`tablet` or `mg` for a 500 mg tablet);
//!   the indication given. Each kind needs its own parts: *regular* at
//!   least one `HH:MM` time; *as required* a minimum interval and a maximum
//!   per 24 hours (at least one dose); *once only* its time; *variable
//!   dose* a dose range (low ≤ high) and the scale or instruction;
//!   *infusion* a rate (mL/h), volume (mL) and duration (h) that agree
//!   (rate × duration = volume, within 1 %). Stop and review dates are not
//!   before the start. A refusal names the field in a sentence.
//! * [`set_status_in`] is **the one place a prescription's status
//!   changes**: it locks the MedicationRequest, reads it in the
//!   transaction, applies [`super::allowed`] and, to make it `active`,
//!   needs the signature. [`PrescriptionRule`] (registered by
//!   `crate::with_rules`) refuses the same on every other channel — a plain
//!   REST `PUT`, a Bundle, HL7: a status move `allowed` forbids, or a drug
//!   chart prescription made `active` without a signature, is 422 naming
//!   `MedicationRequest.status`.
//! * A change stops the old prescription (reason "changed: …") and saves a
//!   new one with `priorPrescription`, in one transaction; decision support
//!   sees the record without the old one.
//! * A draft (chemotherapy before release, an order from a pharmacy system
//!   waiting for a prescriber) is never given; [`sign_in`] makes it active,
//!   running decision support then.
//!
//! Time is injected: every `_in` function takes `now`.

use serde::Serialize;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, ProposedWrite, RuleTx, Tx, WriteRule};
use wardline_fhir::FhirError;

use super::checks::{self, Alert, Override};
use super::formulary::{self, Entry, Formulary, Qty};
use super::{
    CATEGORY_SYSTEM, INFUSION_VOLUME_EXT, Kind, LOCAL_CATEGORY_SYSTEM, MIN_INTERVAL_EXT,
    MedicinesError, REVIEW_EXT, SIGNATURE_EXT, SNOMED_SYSTEM, VARIABLE_DOSE_EXT, allowed,
};
use crate::fhir::UCUM;

// ---------------------------------------------------------------- types

/// What a prescriber asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Prescription {
    /// Patient id.
    pub patient: String,
    /// Encounter id; `None` takes the patient's current (in-progress)
    /// encounter, if any.
    pub encounter: Option<String>,
    /// The formulary `Medication` id (`med-…`).
    pub medicine: String,
    pub kind: Kind,
    /// The dose (every kind but variable dose; optional for an infusion:
    /// the drug in the bag).
    pub dose: Option<Qty>,
    /// Variable dose: the lowest and highest dose.
    pub dose_range: Option<(Qty, Qty)>,
    /// SNOMED CT route code, one of the formulary entry's.
    pub route: String,
    /// Regular (and optionally variable dose): administration times `HH:MM`.
    pub times: Vec<String>,
    /// Regular: every how many days the times repeat (1 daily, 7 weekly; 0
    /// is read as 1).
    pub every_days: u32,
    /// As required: what for (e.g. "pain"); `None` is plain "as required".
    pub prn_reason: Option<String>,
    /// As required: the minimum interval between doses, hours.
    pub min_interval_hours: Option<f64>,
    /// As required: the most that may be given in 24 hours, in the dose's unit.
    pub max_per_24h: Option<Qty>,
    /// Once only: when.
    pub once_at: Option<OffsetDateTime>,
    /// Infusion: rate mL/h, volume mL, duration h.
    pub rate_ml_h: Option<f64>,
    pub volume_ml: Option<f64>,
    pub duration_hours: Option<f64>,
    /// Why (required).
    pub indication: String,
    /// From when; `None` is now.
    pub start: Option<OffsetDateTime>,
    pub stop: Option<Date>,
    pub review: Option<Date>,
    /// Further instructions (for a variable dose: the scale, required).
    pub instructions: Option<String>,
    /// A discharge prescription (TTO): category `discharge`.
    pub discharge: bool,
}

impl Prescription {
    /// An empty prescription of `kind` of `medicine` for `patient`, to fill in.
    pub fn new(patient: &str, medicine: &str, kind: Kind) -> Prescription {
        Prescription {
            patient: patient.to_owned(),
            encounter: None,
            medicine: medicine.to_owned(),
            kind,
            dose: None,
            dose_range: None,
            route: String::new(),
            times: Vec::new(),
            every_days: 1,
            prn_reason: None,
            min_interval_hours: None,
            max_per_24h: None,
            once_at: None,
            rate_ml_h: None,
            volume_ml: None,
            duration_hours: None,
            indication: String::new(),
            start: None,
            stop: None,
            review: None,
            instructions: None,
            discharge: false,
        }
    }
}

/// Who prescribes: a `Practitioner/…` reference and the name shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prescriber {
    pub reference: String,
    pub display: String,
}

impl Prescriber {
    /// The person signed in (their Practitioner and name), if they are one.
    pub fn of_access(svc: &FhirService, access: &dyn Access) -> Option<Prescriber> {
        let reference = access.agent().who.clone()?;
        let id = reference.strip_prefix("Practitioner/")?;
        let display = svc
            .system_reader()
            .read("Practitioner", id)
            .ok()
            .flatten()
            .filter(|r| !r.deleted)
            .and_then(|r| serde_json::from_str::<Value>(&r.json).ok())
            .and_then(|p| crate::orders::request::person_name(&p))
            .unwrap_or_else(|| access.agent().name.clone());
        Some(Prescriber { reference, display })
    }
}

/// What was saved: the MedicationRequest id and the alerts gone past.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prescribed {
    pub id: String,
    pub alerts: Vec<Alert>,
}

// ---------------------------------------------------------------- helpers

fn fhir_time(t: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(t)
}

fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn parse_date(s: &str) -> Option<Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.get(..10)?, f).ok()
}

fn parse_instant(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, MedicinesError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

/// `HH:MM` (or `HH:MM:SS`) as FHIR's `time` (`HH:MM:SS`).
pub fn parse_time_of_day(s: &str) -> Option<String> {
    let s = s.trim();
    let mut parts = s.split(':');
    let h: u8 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next()?.parse().ok()?;
    let sec: u8 = match parts.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(format!("{h:02}:{m:02}:{sec:02}"))
}

fn qty_json(q: &Qty) -> Value {
    json!({"value": q.value, "unit": q.unit})
}

fn ucum(value: f64, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM, "code": unit})
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A quantity as people write it ("500 mg", "2 tablet").
pub fn qty_text(q: &Qty) -> String {
    format!("{} {}", num(q.value), q.unit).trim().to_owned()
}

fn positive(v: Option<f64>, what: &str) -> Result<f64, MedicinesError> {
    match v {
        Some(x) if x.is_finite() && x > 0.0 => Ok(x),
        Some(_) => Err(MedicinesError::Invalid(format!(
            "{what} must be a number greater than zero."
        ))),
        None => Err(MedicinesError::Invalid(format!("Give the {what}."))),
    }
}

/// Units of mass a dose may be written in when the strength is a mass.
const MASS_UNITS: [&str; 7] = [
    "g",
    "mg",
    "microgram",
    "micrograms",
    "mcg",
    "nanogram",
    "ng",
];

/// Whether `unit` is one a dose of `e` may be written in: its unit of
/// dose, its strength's unit, or (when the strength is a mass) another
/// unit of mass.
fn unit_fits(e: &Entry, unit: &str) -> bool {
    let u = unit.trim().to_lowercase();
    let mut ok: Vec<String> = Vec::new();
    if !e.unit_of_dose.is_empty() {
        ok.push(e.unit_of_dose.to_lowercase());
    }
    if let Some((n, _)) = &e.strength {
        let n = n.unit.to_lowercase();
        if MASS_UNITS.contains(&n.as_str()) {
            ok.extend(MASS_UNITS.iter().map(|m| (*m).to_owned()));
        }
        ok.push(n);
    }
    if ok.is_empty() {
        return !u.is_empty();
    }
    ok.contains(&u)
}

fn units_allowed(e: &Entry) -> String {
    let mut ok: Vec<String> = Vec::new();
    if !e.unit_of_dose.is_empty() {
        ok.push(e.unit_of_dose.clone());
    }
    if let Some((n, _)) = &e.strength
        && !ok.contains(&n.unit)
    {
        ok.push(n.unit.clone());
    }
    ok.join(" or ")
}

fn check_dose(e: &Entry, q: &Qty, what: &str) -> Result<(), MedicinesError> {
    if !(q.value.is_finite() && q.value > 0.0) {
        return Err(MedicinesError::Invalid(format!(
            "The {what} must be a number greater than zero."
        )));
    }
    if !unit_fits(e, &q.unit) {
        return Err(MedicinesError::Invalid(format!(
            "The {what} unit '{}' does not fit {}: write it in {}.",
            q.unit,
            e.name(),
            units_allowed(e)
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- building

/// Checks `p` against the formulary and its kind; the entry it names.
pub fn validate<'f>(
    formulary: &'f Formulary,
    p: &Prescription,
    now: OffsetDateTime,
) -> Result<&'f Entry, MedicinesError> {
    if p.patient.trim().is_empty() {
        return Err(MedicinesError::Invalid("Choose the patient.".into()));
    }
    let e = formulary.entry(p.medicine.trim()).ok_or_else(|| {
        MedicinesError::Invalid(format!(
            "Medicine: '{}' is not in the formulary.",
            p.medicine
        ))
    })?;
    if !e.active {
        return Err(MedicinesError::Invalid(format!(
            "Medicine: {} has been withdrawn from the formulary.",
            e.name()
        )));
    }
    let route = p.route.trim();
    if route.is_empty() {
        return Err(MedicinesError::Invalid("Route: choose the route.".into()));
    }
    if !e.routes.iter().any(|r| r.code == route) {
        let names: Vec<String> = e
            .routes
            .iter()
            .map(|r| {
                if r.display.is_empty() {
                    r.code.clone()
                } else {
                    r.display.clone()
                }
            })
            .collect();
        return Err(MedicinesError::Invalid(format!(
            "Route: {} is not given by route {route}; its routes are: {}.",
            e.name(),
            if names.is_empty() {
                "none recorded (ask pharmacy to complete the formulary entry)".to_owned()
            } else {
                names.join(", ")
            }
        )));
    }
    if p.indication.trim().is_empty() {
        return Err(MedicinesError::Invalid(
            "Indication: say what the medicine is for.".into(),
        ));
    }
    match p.kind {
        Kind::Regular => {
            let dose = p
                .dose
                .as_ref()
                .ok_or_else(|| MedicinesError::Invalid("Dose: give the dose.".into()))?;
            check_dose(e, dose, "dose")?;
            if p.times.is_empty() {
                return Err(MedicinesError::Invalid(
                    "Times: give at least one administration time (HH:MM).".into(),
                ));
            }
        }
        Kind::AsRequired => {
            let dose = p
                .dose
                .as_ref()
                .ok_or_else(|| MedicinesError::Invalid("Dose: give the dose.".into()))?;
            check_dose(e, dose, "dose")?;
            positive(p.min_interval_hours, "minimum interval (hours)")?;
            let max = p.max_per_24h.as_ref().ok_or_else(|| {
                MedicinesError::Invalid(
                    "Maximum in 24 hours: give the most that may be given in 24 hours.".into(),
                )
            })?;
            check_dose(e, max, "maximum in 24 hours")?;
            if max.unit.trim().to_lowercase() == dose.unit.trim().to_lowercase()
                && max.value < dose.value
            {
                return Err(MedicinesError::Invalid(format!(
                    "Maximum in 24 hours: {} is less than one dose ({}).",
                    qty_text(max),
                    qty_text(dose)
                )));
            }
        }
        Kind::OnceOnly => {
            let dose = p
                .dose
                .as_ref()
                .ok_or_else(|| MedicinesError::Invalid("Dose: give the dose.".into()))?;
            check_dose(e, dose, "dose")?;
            if p.once_at.is_none() {
                return Err(MedicinesError::Invalid(
                    "Time: give when the once-only dose is to be given.".into(),
                ));
            }
        }
        Kind::VariableDose => {
            let (lo, hi) = p.dose_range.as_ref().ok_or_else(|| {
                MedicinesError::Invalid("Dose range: give the lowest and highest dose.".into())
            })?;
            check_dose(e, lo, "lowest dose")?;
            check_dose(e, hi, "highest dose")?;
            if lo.unit.trim().to_lowercase() != hi.unit.trim().to_lowercase() {
                return Err(MedicinesError::Invalid(
                    "Dose range: write the lowest and highest dose in the same unit.".into(),
                ));
            }
            if lo.value > hi.value {
                return Err(MedicinesError::Invalid(format!(
                    "Dose range: the lowest dose ({}) is above the highest ({}).",
                    qty_text(lo),
                    qty_text(hi)
                )));
            }
            if p.instructions.as_deref().unwrap_or("").trim().is_empty() {
                return Err(MedicinesError::Invalid(
                    "Instructions: give the scale or how the dose is decided (e.g. by INR).".into(),
                ));
            }
        }
        Kind::Infusion => {
            let rate = positive(p.rate_ml_h, "rate (mL/h)")?;
            let volume = positive(p.volume_ml, "volume (mL)")?;
            let hours = positive(p.duration_hours, "duration (hours)")?;
            if ((rate * hours) - volume).abs() > volume * 0.01 {
                return Err(MedicinesError::Invalid(format!(
                    "Rate: {} mL/h for {} h is {} mL, not the volume of {} mL; correct the rate, volume or duration.",
                    num(rate),
                    num(hours),
                    num(rate * hours),
                    num(volume)
                )));
            }
            if let Some(d) = &p.dose {
                check_dose(e, d, "dose")?;
            }
        }
    }
    for t in &p.times {
        if parse_time_of_day(t).is_none() {
            return Err(MedicinesError::Invalid(format!(
                "Times: '{t}' is not a time of day (HH:MM, 24-hour clock)."
            )));
        }
    }
    let start = p.start.unwrap_or(now);
    for (d, what) in [(p.stop, "Stop date"), (p.review, "Review date")] {
        if let Some(d) = d
            && d < start.date()
        {
            return Err(MedicinesError::Invalid(format!(
                "{what}: {} is before the start ({}).",
                date_text(d),
                date_text(start.date())
            )));
        }
    }
    Ok(e)
}

/// The `MedicationRequest` of `p` (already [`validate`]d against `entry`),
/// in the contract's shape, with `status` and — when `sign` — the
/// prescriber's signature at `now`. No `id`.
pub fn build(
    entry: &Entry,
    prescriber: &Prescriber,
    p: &Prescription,
    status: &str,
    sign: bool,
    now: OffsetDateTime,
) -> Value {
    let route = entry
        .routes
        .iter()
        .find(|r| r.code == p.route.trim())
        .map(|r| json!({"coding": [{"system": SNOMED_SYSTEM, "code": r.code, "display": r.display}], "text": r.display}))
        .unwrap_or_else(|| json!({"coding": [{"system": SNOMED_SYSTEM, "code": p.route.trim()}]}));
    let mut dosage = json!({"sequence": 1, "route": route});
    let times: Vec<String> = p
        .times
        .iter()
        .filter_map(|t| parse_time_of_day(t))
        .collect();
    if let Some(text) = p
        .instructions
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        dosage["text"] = json!(text);
    }
    let mut extension: Vec<Value> = Vec::new();
    match p.kind {
        Kind::Regular => {
            let every = p.every_days.max(1);
            dosage["timing"] = json!({"repeat": {
                "timeOfDay": times,
                "frequency": times.len(),
                "period": every,
                "periodUnit": "d"}});
            if let Some(d) = &p.dose {
                dosage["doseAndRate"] = json!([{"doseQuantity": qty_json(d)}]);
            }
        }
        Kind::AsRequired => {
            match p
                .prn_reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
            {
                Some(r) => dosage["asNeededCodeableConcept"] = json!({"text": r}),
                None => dosage["asNeededBoolean"] = json!(true),
            }
            if let Some(d) = &p.dose {
                dosage["doseAndRate"] = json!([{"doseQuantity": qty_json(d)}]);
            }
            if let Some(m) = &p.max_per_24h {
                dosage["maxDosePerPeriod"] =
                    json!({"numerator": qty_json(m), "denominator": ucum(24.0, "h")});
            }
            if let Some(h) = p.min_interval_hours {
                dosage["extension"] =
                    json!([{"url": MIN_INTERVAL_EXT, "valueDuration": ucum(h, "h")}]);
            }
        }
        Kind::OnceOnly => {
            let at = p.once_at.map(fhir_time).unwrap_or_default();
            dosage["timing"] = json!({"event": [at], "repeat": {"count": 1}});
            if let Some(d) = &p.dose {
                dosage["doseAndRate"] = json!([{"doseQuantity": qty_json(d)}]);
            }
        }
        Kind::VariableDose => {
            extension.push(json!({"url": VARIABLE_DOSE_EXT, "valueBoolean": true}));
            if !times.is_empty() {
                dosage["timing"] = json!({"repeat": {
                    "timeOfDay": times, "frequency": times.len(),
                    "period": p.every_days.max(1), "periodUnit": "d"}});
            }
            if let Some((lo, hi)) = &p.dose_range {
                dosage["doseAndRate"] =
                    json!([{"doseRange": {"low": qty_json(lo), "high": qty_json(hi)}}]);
            }
        }
        Kind::Infusion => {
            let mut dr = json!({"rateQuantity": ucum(p.rate_ml_h.unwrap_or(0.0), "mL/h")});
            if let Some(d) = &p.dose {
                dr["doseQuantity"] = qty_json(d);
            }
            dosage["doseAndRate"] = json!([dr]);
            dosage["timing"] = json!({"repeat": {
                "duration": p.duration_hours.unwrap_or(0.0), "durationUnit": "h"}});
            dosage["extension"] = json!([{"url": INFUSION_VOLUME_EXT,
                "valueQuantity": ucum(p.volume_ml.unwrap_or(0.0), "mL")}]);
        }
    }
    if let Some(r) = p.review {
        extension.push(json!({"url": REVIEW_EXT, "valueDate": date_text(r)}));
    }
    if sign {
        extension.push(signature(prescriber, now));
    }
    let start = p.start.unwrap_or(now);
    let mut validity = json!({"start": fhir_time(start)});
    if let Some(s) = p.stop {
        validity["end"] = json!(date_text(s));
    }
    let category = if p.discharge {
        "discharge"
    } else {
        "inpatient"
    };
    let mut mr = json!({
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": category,
            "display": if p.discharge { "Discharge" } else { "Inpatient" }}]}],
        "medicationReference": {"reference": format!("Medication/{}", entry.id), "display": entry.name()},
        "subject": {"reference": format!("Patient/{}", p.patient.trim())},
        "authoredOn": fhir_time(now),
        "requester": {"reference": prescriber.reference, "display": prescriber.display},
        "reasonCode": [{"text": p.indication.trim()}],
        "dosageInstruction": [dosage],
        "dispenseRequest": {"validityPeriod": validity},
    });
    if let Some(e) = &p.encounter {
        mr["encounter"] = json!({"reference": format!("Encounter/{e}")});
    }
    if !extension.is_empty() {
        mr["extension"] = json!(extension);
    }
    mr
}

/// The signature extension: `by` the prescriber, `at` now.
pub fn signature(prescriber: &Prescriber, now: OffsetDateTime) -> Value {
    json!({"url": SIGNATURE_EXT, "extension": [
        {"url": "by", "valueReference": {"reference": prescriber.reference, "display": prescriber.display}},
        {"url": "at", "valueDateTime": fhir_time(now)}]})
}

/// The signature of a prescription: who (reference, display) and when.
pub fn signed(mr: &Value) -> Option<(String, String, String)> {
    let ext = mr["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == SIGNATURE_EXT)?;
    let subs = ext["extension"].as_array()?;
    let by = subs.iter().find(|s| s["url"] == "by")?;
    let at = subs.iter().find(|s| s["url"] == "at")?;
    Some((
        by["valueReference"]["reference"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        by["valueReference"]["display"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        at["valueDateTime"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// Whether a MedicationRequest is a drug chart prescription (category
/// `inpatient` or `discharge`, or Wardline's `chemotherapy`) — the ones
/// that must be signed before they are active. Other MedicationRequests
/// (a medication list brought from elsewhere) are not on the chart.
pub fn on_drug_chart(mr: &Value) -> bool {
    mr["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .any(|c| {
            (c["system"] == CATEGORY_SYSTEM
                && (c["code"] == "inpatient" || c["code"] == "discharge"))
                || (c["system"] == LOCAL_CATEGORY_SYSTEM && c["code"] == "chemotherapy")
        })
}

/// Whether a prescription is a discharge prescription (TTO).
pub fn is_discharge(mr: &Value) -> bool {
    mr["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .any(|c| c["system"] == CATEGORY_SYSTEM && c["code"] == "discharge")
}

fn qty_of(v: &Value) -> Option<Qty> {
    Some(Qty {
        value: v["value"].as_f64()?,
        unit: v["unit"]
            .as_str()
            .or_else(|| v["code"].as_str())
            .unwrap_or_default()
            .to_owned(),
    })
}

fn ext_of<'a>(v: &'a Value, url: &str) -> Option<&'a Value> {
    v["extension"].as_array()?.iter().find(|e| e["url"] == url)
}

/// Reads a MedicationRequest of the contract's shape back into a
/// [`Prescription`] (what `$prescribe` and the HL7 mapping receive).
/// The medicine is the `medicationReference`'s id.
pub fn read_prescription(mr: &Value) -> Result<Prescription, MedicinesError> {
    let patient = crate::fhir::reference_id(&mr["subject"], "Patient")
        .ok_or_else(|| {
            MedicinesError::Invalid(
                "MedicationRequest.subject: name the patient (Patient/…).".into(),
            )
        })?
        .to_owned();
    let medicine = crate::fhir::reference_id(&mr["medicationReference"], "Medication")
        .ok_or_else(|| {
            MedicinesError::Invalid(
                "MedicationRequest.medicationReference: name the formulary medicine (Medication/…)."
                    .into(),
            )
        })?
        .to_owned();
    let kind = super::kind(mr);
    let d = &mr["dosageInstruction"][0];
    let mut p = Prescription::new(&patient, &medicine, kind);
    p.encounter = crate::fhir::reference_id(&mr["encounter"], "Encounter").map(str::to_owned);
    let dr = &d["doseAndRate"][0];
    p.dose = qty_of(&dr["doseQuantity"]);
    if let (Some(lo), Some(hi)) = (
        qty_of(&dr["doseRange"]["low"]),
        qty_of(&dr["doseRange"]["high"]),
    ) {
        p.dose_range = Some((lo, hi));
    }
    p.route = d["route"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["system"] == SNOMED_SYSTEM)
        .and_then(|c| c["code"].as_str())
        .unwrap_or_default()
        .to_owned();
    let repeat = &d["timing"]["repeat"];
    p.times = repeat["timeOfDay"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| t.get(..5).unwrap_or(t).to_owned())
        .collect();
    p.every_days = match repeat["periodUnit"].as_str() {
        Some("wk") => u32::try_from(repeat["period"].as_u64().unwrap_or(1) * 7).unwrap_or(7),
        _ => repeat["period"]
            .as_f64()
            .map(|x| x.round().max(1.0) as u32)
            .unwrap_or(1),
    };
    p.prn_reason = d["asNeededCodeableConcept"]["text"]
        .as_str()
        .map(str::to_owned);
    p.min_interval_hours = ext_of(d, MIN_INTERVAL_EXT).and_then(|e| {
        let v = e["valueDuration"]["value"].as_f64()?;
        Some(match e["valueDuration"]["code"].as_str() {
            Some("min") => v / 60.0,
            Some("d") => v * 24.0,
            _ => v,
        })
    });
    p.max_per_24h = qty_of(&d["maxDosePerPeriod"]["numerator"]);
    p.once_at = d["timing"]["event"][0].as_str().and_then(parse_instant);
    p.rate_ml_h = dr["rateQuantity"]["value"].as_f64();
    p.volume_ml = ext_of(d, INFUSION_VOLUME_EXT).and_then(|e| e["valueQuantity"]["value"].as_f64());
    p.duration_hours = repeat["duration"]
        .as_f64()
        .map(|v| match repeat["durationUnit"].as_str() {
            Some("min") => v / 60.0,
            Some("d") => v * 24.0,
            _ => v,
        });
    p.indication = mr["reasonCode"][0]["text"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| crate::fhir::concept_text(&mr["reasonCode"][0]))
        .unwrap_or_default();
    let validity = &mr["dispenseRequest"]["validityPeriod"];
    p.start = validity["start"].as_str().and_then(parse_instant);
    p.stop = validity["end"].as_str().and_then(parse_date);
    p.review = ext_of(mr, REVIEW_EXT)
        .and_then(|e| e["valueDate"].as_str())
        .and_then(parse_date);
    p.instructions = d["text"].as_str().map(str::to_owned);
    p.discharge = is_discharge(mr);
    Ok(p)
}

// ---------------------------------------------------------------- saving

/// The patient checked and locked, and the encounter to use.
fn patient_in(tx: &mut Tx<'_>, p: &Prescription) -> Result<Option<String>, MedicinesError> {
    let pid = p.patient.trim();
    tx.lock(&[format!("medicines:Patient/{pid}")])?;
    let patient = tx
        .get("Patient", pid)?
        .ok_or_else(|| MedicinesError::NotFound(format!("There is no patient with id {pid}.")))?;
    if patient["active"] == json!(false) {
        return Err(MedicinesError::Conflict(
            "This record is not active (it may have been merged): prescribe on the patient's current record.".into(),
        ));
    }
    match p
        .encounter
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(e) => {
            let enc = tx.get("Encounter", e)?.ok_or_else(|| {
                MedicinesError::Invalid(format!("Encounter: there is no encounter {e}."))
            })?;
            if crate::fhir::reference_id(&enc["subject"], "Patient") != Some(pid) {
                return Err(MedicinesError::Invalid(format!(
                    "Encounter: {e} is another patient's."
                )));
            }
            Ok(Some(e.to_owned()))
        }
        None => {
            let found = tx.find(
                "Encounter",
                &format!("subject=Patient/{pid}&status=in-progress&_count=5"),
            )?;
            Ok(found
                .iter()
                .find_map(|e| e["id"].as_str().map(str::to_owned)))
        }
    }
}

/// Runs decision support on `mr` and saves it; the alerts gone past.
fn check_and_save(
    tx: &mut Tx<'_>,
    formulary: &Formulary,
    patient: &str,
    mut mr: Value,
    overrides: &[Override],
    now: OffsetDateTime,
) -> Result<Prescribed, MedicinesError> {
    let id = match mr["id"].as_str() {
        Some(id) => id.to_owned(),
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            mr["id"] = json!(id);
            id
        }
    };
    let alerts = checks::assess_in(tx, formulary, patient, &mr, now)?;
    checks::gate(&alerts, overrides)?;
    tx.save(mr)?;
    checks::record_in(
        tx,
        patient,
        &format!("MedicationRequest/{id}"),
        &alerts,
        overrides,
        now,
    )?;
    Ok(Prescribed { id, alerts })
}

/// Prescribes `p`, signed by `prescriber` at `now`, in `tx` (see the module
/// documentation): validated, checked by decision support (a hard stop or
/// an override alert without a reason in `overrides` refuses with
/// [`MedicinesError::Alerts`]), saved `active`, and each alert gone past
/// recorded.
pub fn prescribe_in(
    tx: &mut Tx<'_>,
    formulary: &Formulary,
    prescriber: &Prescriber,
    p: &Prescription,
    overrides: &[Override],
    now: OffsetDateTime,
) -> Result<Prescribed, MedicinesError> {
    let entry = validate(formulary, p, now)?;
    tx.access()
        .check_type(wardline_core::Op::Create, Some("MedicationRequest"))?;
    let encounter = patient_in(tx, p)?;
    let mut p = p.clone();
    p.encounter = encounter;
    let mr = build(entry, prescriber, &p, "active", true, now);
    check_and_save(tx, formulary, p.patient.trim(), mr, overrides, now)
}

/// Saves `p` as a `draft` (never given): signed by `prescriber` when `sign`
/// (a chemotherapy prescription waiting for release), or not (an order
/// waiting for a prescriber). No decision support runs until it is
/// signed ([`sign_in`]) or released. Returns the MedicationRequest; the
/// caller may add to it (chemotherapy's `basedOn`, category) and save it
/// again in the same transaction.
pub fn draft_in(
    tx: &mut Tx<'_>,
    formulary: &Formulary,
    prescriber: &Prescriber,
    p: &Prescription,
    sign: bool,
    now: OffsetDateTime,
) -> Result<Value, MedicinesError> {
    let entry = validate(formulary, p, now)?;
    tx.access()
        .check_type(wardline_core::Op::Create, Some("MedicationRequest"))?;
    let encounter = patient_in(tx, p)?;
    let mut p = p.clone();
    p.encounter = encounter;
    let mut mr = build(entry, prescriber, &p, "draft", sign, now);
    mr["id"] = json!(uuid::Uuid::new_v4().to_string());
    Ok(tx.save(mr)?.resource)
}

/// Signs a draft prescription and makes it active, running decision support
/// against the record now.
pub fn sign_in(
    tx: &mut Tx<'_>,
    formulary: &Formulary,
    prescriber: &Prescriber,
    id: &str,
    overrides: &[Override],
    now: OffsetDateTime,
) -> Result<Prescribed, MedicinesError> {
    tx.lock(&[format!("MedicationRequest/{id}")])?;
    let mut mr = tx
        .get("MedicationRequest", id)?
        .ok_or_else(|| MedicinesError::NotFound(format!("There is no prescription {id}.")))?;
    let status = mr["status"].as_str().unwrap_or_default().to_owned();
    if status != "draft" {
        return Err(MedicinesError::Conflict(format!(
            "Only a draft prescription is signed; this one is {status}."
        )));
    }
    let p = read_prescription(&mr)?;
    validate(formulary, &p, now)?;
    let mut exts: Vec<Value> = mr["extension"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["url"] != SIGNATURE_EXT)
        .collect();
    exts.push(signature(prescriber, now));
    mr["extension"] = json!(exts);
    mr["status"] = json!("active");
    mr["requester"] = json!({"reference": prescriber.reference, "display": prescriber.display});
    check_and_save(tx, formulary, p.patient.trim(), mr, overrides, now)
}

/// Changes prescription `old` to `p`: the old one `stopped` with reason
/// "changed: {reason}", and `p` prescribed with `priorPrescription` →
/// the old one; decision support sees the record without the old one.
#[allow(clippy::too_many_arguments)]
pub fn change_in(
    tx: &mut Tx<'_>,
    formulary: &Formulary,
    prescriber: &Prescriber,
    old: &str,
    p: &Prescription,
    reason: &str,
    overrides: &[Override],
    now: OffsetDateTime,
) -> Result<Prescribed, MedicinesError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(MedicinesError::Invalid(
            "Reason: say why the prescription is changed.".into(),
        ));
    }
    let entry = validate(formulary, p, now)?;
    tx.access()
        .check_type(wardline_core::Op::Create, Some("MedicationRequest"))?;
    tx.lock(&[format!("MedicationRequest/{old}")])?;
    let current = tx
        .get("MedicationRequest", old)?
        .ok_or_else(|| MedicinesError::NotFound(format!("There is no prescription {old}.")))?;
    let status = current["status"].as_str().unwrap_or_default();
    if status != "active" && status != "on-hold" {
        return Err(MedicinesError::Conflict(format!(
            "Only a current prescription is changed; this one is {status}."
        )));
    }
    if crate::fhir::reference_id(&current["subject"], "Patient") != Some(p.patient.trim()) {
        return Err(MedicinesError::Invalid(
            "The changed prescription must be for the same patient.".into(),
        ));
    }
    let encounter = patient_in(tx, p)?;
    set_status_in(tx, old, "stopped", &format!("changed: {reason}"))?;
    let mut p = p.clone();
    p.encounter = encounter;
    let mut mr = build(entry, prescriber, &p, "active", true, now);
    mr["priorPrescription"] = json!({"reference": format!("MedicationRequest/{old}")});
    check_and_save(tx, formulary, p.patient.trim(), mr, overrides, now)
}

/// Discontinues (stops) a prescription with a reason.
pub fn discontinue_in(
    tx: &mut Tx<'_>,
    id: &str,
    reason: &str,
    who: Option<&Prescriber>,
    now: OffsetDateTime,
) -> Result<(), MedicinesError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(MedicinesError::Invalid(
            "Reason: say why the prescription is discontinued.".into(),
        ));
    }
    tx.lock(&[format!("MedicationRequest/{id}")])?;
    let current = tx
        .get("MedicationRequest", id)?
        .ok_or_else(|| MedicinesError::NotFound(format!("There is no prescription {id}.")))?;
    let status = current["status"].as_str().unwrap_or("unknown");
    if status != "active" && status != "on-hold" {
        return Err(MedicinesError::Conflict(format!(
            "Only a current prescription is discontinued; this one is {status}."
        )));
    }
    let mut mr = set_status_in(tx, id, "stopped", reason)?;
    let mut note = json!({"text": format!("Discontinued: {reason}"), "time": fhir_time(now)});
    if let Some(w) = who {
        note["authorReference"] = json!({"reference": w.reference, "display": w.display});
    }
    match mr.get_mut("note").and_then(Value::as_array_mut) {
        Some(n) => n.push(note),
        None => mr["note"] = json!([note]),
    }
    tx.save(mr)?;
    Ok(())
}

/// **The one place a prescription's status changes**: locks
/// `MedicationRequest/{id}`, reads it in `tx`, refuses a move
/// [`super::allowed`] forbids (or to `active` without the prescriber's
/// signature) with [`MedicinesError::Conflict`], and saves it with
/// `statusReason` `reason` (when given). Returns the saved resource.
/// Setting the status it already has changes nothing.
pub fn set_status_in(
    tx: &mut Tx<'_>,
    id: &str,
    to: &str,
    reason: &str,
) -> Result<Value, MedicinesError> {
    tx.lock(&[format!("MedicationRequest/{id}")])?;
    let mut mr = tx
        .get("MedicationRequest", id)?
        .ok_or_else(|| MedicinesError::NotFound(format!("There is no prescription {id}.")))?;
    let from = mr["status"].as_str().unwrap_or("unknown").to_owned();
    if from == to {
        return Ok(mr);
    }
    if !allowed(&from, to) {
        return Err(MedicinesError::Conflict(format!(
            "A prescription that is {from} cannot be made {to}."
        )));
    }
    if to == "active" && on_drug_chart(&mr) && signed(&mr).is_none() {
        return Err(MedicinesError::Conflict(
            "The prescription is not signed: a prescriber must sign it before it is active.".into(),
        ));
    }
    mr["status"] = json!(to);
    let reason = reason.trim();
    if reason.is_empty() {
        if let Some(m) = mr.as_object_mut() {
            m.remove("statusReason");
        }
    } else {
        mr["statusReason"] = json!({"text": reason});
    }
    Ok(tx.save(mr)?.resource)
}

// ---------------------------------------------------------------- entries

/// [`prescribe_in`] for the person signed in (the prescriber), audited
/// `medicines-prescribe`.
pub fn prescribe(
    svc: &FhirService,
    access: &dyn Access,
    formulary: &Formulary,
    p: &Prescription,
    overrides: &[Override],
    now: OffsetDateTime,
) -> Result<Prescribed, MedicinesError> {
    let prescriber = prescriber_of(svc, access)?;
    let mut tx = begin(svc, access, "medicines-prescribe", "C")?;
    let done = prescribe_in(&mut tx, formulary, &prescriber, p, overrides, now)?;
    tx.commit()?;
    Ok(done)
}

/// [`sign_in`] for the person signed in, audited `medicines-prescribe`.
pub fn sign(
    svc: &FhirService,
    access: &dyn Access,
    formulary: &Formulary,
    id: &str,
    overrides: &[Override],
    now: OffsetDateTime,
) -> Result<Prescribed, MedicinesError> {
    let prescriber = prescriber_of(svc, access)?;
    let mut tx = begin(svc, access, "medicines-prescribe", "U")?;
    let done = sign_in(&mut tx, formulary, &prescriber, id, overrides, now)?;
    tx.commit()?;
    Ok(done)
}

/// [`change_in`] for the person signed in, audited `medicines-change`.
#[allow(clippy::too_many_arguments)]
pub fn change(
    svc: &FhirService,
    access: &dyn Access,
    formulary: &Formulary,
    old: &str,
    p: &Prescription,
    reason: &str,
    overrides: &[Override],
    now: OffsetDateTime,
) -> Result<Prescribed, MedicinesError> {
    let prescriber = prescriber_of(svc, access)?;
    let mut tx = begin(svc, access, "medicines-change", "U")?;
    let done = change_in(
        &mut tx,
        formulary,
        &prescriber,
        old,
        p,
        reason,
        overrides,
        now,
    )?;
    tx.commit()?;
    Ok(done)
}

/// [`discontinue_in`] for the person signed in, audited
/// `medicines-discontinue`.
pub fn discontinue(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), MedicinesError> {
    let who = Prescriber::of_access(svc, access);
    let mut tx = begin(svc, access, "medicines-discontinue", "U")?;
    discontinue_in(&mut tx, id, reason, who.as_ref(), now)?;
    tx.commit()?;
    Ok(())
}

fn prescriber_of(svc: &FhirService, access: &dyn Access) -> Result<Prescriber, MedicinesError> {
    access
        .check_type(wardline_core::Op::Create, Some("MedicationRequest"))
        .map_err(MedicinesError::from)?;
    Prescriber::of_access(svc, access).ok_or_else(|| {
        MedicinesError::Forbidden(
            "Only a prescriber on record (a Practitioner) can prescribe.".into(),
        )
    })
}

/// The formulary as the transaction of prescribing reads it (the system's
/// view; it is not patient data).
pub fn formulary_of(svc: &FhirService) -> Result<Formulary, MedicinesError> {
    Ok(formulary::load(svc)?)
}

// The drug chart and a prescription's detail: `chart.rs`.
mod chart;
pub use chart::*;

// ---------------------------------------------------------------- the rule

/// The prescription lifecycle on every channel (see the module
/// documentation); registered by `crate::with_rules`.
pub struct PrescriptionRule;

/// Why a write of a MedicationRequest breaks the lifecycle, if it does.
pub fn lifecycle_refusal(resource: &Value, current: Option<&Value>) -> Option<String> {
    let to = resource["status"].as_str().unwrap_or("unknown");
    let from = current.map(|c| c["status"].as_str().unwrap_or("unknown"));
    if let Some(from) = from
        && from != to
        && !allowed(from, to)
    {
        return Some(format!(
            "A prescription that is {from} cannot be made {to}: a stopped, completed or cancelled prescription is never restarted (prescribe it again)."
        ));
    }
    if to == "active"
        && from != Some("active")
        && on_drug_chart(resource)
        && signed(resource).is_none()
    {
        return Some(
            "A drug chart prescription is active only when signed by its prescriber (extension prescriber-signature): prescribe through MedicationRequest/$prescribe.".into(),
        );
    }
    None
}

impl WriteRule for PrescriptionRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "MedicationRequest"
    }

    fn check(&self, _tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        match lifecycle_refusal(w.resource, w.current) {
            Some(m) => Err(FhirError::new(422, "business-rule", m).at("MedicationRequest.status")),
            None => Ok(()),
        }
    }
}

pub mod operation;

#[cfg(test)]
mod tests;
