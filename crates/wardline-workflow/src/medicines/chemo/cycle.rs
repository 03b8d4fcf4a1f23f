//! A chemotherapy cycle: prescribing (from the latest height and weight),
//! the pre-cycle checks, verification by a second clinician and a
//! pharmacist, release and delay. Each rule is one `_in` function over a
//! [`Tx`] that locks what it decides on and reads it in the transaction;
//! beside each, the entry for people and REST (one audited transaction).
//! The shapes are in the [module documentation](super).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};
use wardline_auth::rbac::{Activity, Role};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::bsa::{self, Bsa};
use super::dose::{self, Basis, Calculation, Standing};
use super::regimen::{self, Regimen};
use super::*;
use crate::medicines::formulary::Formulary;
use crate::medicines::{LOCAL_CATEGORY_SYSTEM, MedicinesError, SIGNATURE_EXT};

pub(super) type R<T> = Result<T, MedicinesError>;

pub(super) const DAY_MS: i64 = 86_400_000;

// ------------------------------------------------------------------ inputs

/// A percentage reduction of one drug, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reduction {
    /// The drug's name as the regimen gives it.
    pub drug: String,
    pub percent: f64,
    pub reason: String,
}

/// What the prescriber asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub patient: String,
    /// The regimen's PlanDefinition id.
    pub regimen: String,
    pub cycle: u32,
    /// Day 1.
    #[serde(skip)]
    pub start: Date,
    pub reductions: Vec<Reduction>,
    /// A consultant's reason to go past a lifetime limit.
    pub cumulative_override: Option<String>,
}

// ------------------------------------------------------------------ the plan

/// A measurement read from an Observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measure {
    pub observation: String,
    pub value: f64,
    pub unit: String,
    /// When it was taken, as recorded.
    pub at: String,
    #[serde(skip)]
    pub at_ms: i64,
}

impl Measure {
    /// The date part of when it was taken.
    pub fn date(&self) -> &str {
        self.at.get(..10).unwrap_or(&self.at)
    }
}

/// The GFR an AUC dose was calculated from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gfr {
    pub creatinine: Measure,
    pub age: i64,
    pub sex: dose::Sex,
    /// Cockcroft–Gault clearance (mL/min), uncapped.
    pub crcl: f64,
    /// What Calvert was given.
    pub used: f64,
    pub capped: bool,
}

/// One drug's dose in the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoseLine {
    pub drug: String,
    pub medication: String,
    pub medication_name: String,
    pub route: String,
    pub days: Vec<u32>,
    pub times_per_day: u32,
    pub infusion: Option<String>,
    pub calc: Calculation,
    /// The dose per m² actually given (for the lifetime totals).
    pub mg_per_m2: f64,
    pub cumulative_class: Option<String>,
}

/// A lifetime total of one substance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CumulativeLine {
    pub class: String,
    pub name: String,
    pub limit: f64,
    /// mg/m² in the patient's other released cycles.
    pub prior: f64,
    pub this: f64,
    pub standing: Standing,
}

impl CumulativeLine {
    pub fn total(&self) -> f64 {
        self.prior + self.this
    }

    pub fn sentence(&self) -> String {
        let pct = self.total() / self.limit * 100.0;
        let head = format!(
            "{}: {} mg/m² before this cycle + {} mg/m² = {} mg/m², {:.0} % of the lifetime limit of {} mg/m²",
            self.name,
            dose::trim(self.prior),
            dose::trim(self.this),
            dose::trim(self.total()),
            pct,
            dose::trim(self.limit)
        );
        match self.standing {
            Standing::Within => head,
            Standing::Warning => format!("{head} — approaching the limit."),
            Standing::Beyond => format!("{head} — beyond the limit."),
        }
    }
}

/// A cycle's calculation, before it is saved (the prescribing page's
/// preview and what [`prescribe_cycle_in`] saves).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub regimen: Regimen,
    pub cycle: u32,
    #[serde(skip)]
    pub start: Date,
    pub height: Measure,
    pub weight: Measure,
    pub bsa: Bsa,
    pub gfr: Option<Gfr>,
    pub doses: Vec<DoseLine>,
    pub cumulative: Vec<CumulativeLine>,
}

// ------------------------------------------------------------------ reading

pub(super) fn date_ms(d: Date) -> i64 {
    d.midnight().assume_utc().unix_timestamp() * 1000
}

pub(super) fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.get(..10)?, &f).ok()
}

/// `2026-03-05T14:30:00Z`.
pub fn stamp(now: OffsetDateTime) -> String {
    crate::laboratory::stamp(now)
}

/// A quantity's value in `want` (`cm`, `kg`, `umol/L`, `10*9/L`), or
/// `None` for a unit not understood.
fn value_in(q: &Value, want: &str) -> Option<f64> {
    let v = q["value"].as_f64()?;
    let unit = q["code"]
        .as_str()
        .or_else(|| q["unit"].as_str())
        .unwrap_or_default()
        .replace('µ', "u")
        .replace(['×', ' '], "");
    let u = unit.as_str();
    let factor = match (want, u) {
        ("cm", "cm") | ("kg", "kg") | ("umol/L", "umol/L") => 1.0,
        ("cm", "m") => 100.0,
        ("cm", "[in_i]" | "in") => 2.54,
        ("kg", "g") => 0.001,
        ("kg", "[lb_av]" | "lb") => 0.453_592_37,
        ("umol/L", "mg/dL") => 88.4,
        ("10*9/L", "10*9/L" | "10^9/L" | "10⁹/L" | "10*3/uL" | "10^3/uL" | "x10*9/L") => 1.0,
        _ => return None,
    };
    Some(v * factor)
}

/// The latest final (or amended/corrected) Observation of `code` for the
/// patient, in `unit`, read in the transaction.
pub fn latest_in(tx: &mut Tx<'_>, patient: &str, code: &str, unit: &str) -> R<Option<Measure>> {
    let found = tx.find(
        "Observation",
        &format!("subject=Patient/{patient}&code={LOINC}|{code}"),
    )?;
    let mut best: Option<Measure> = None;
    for o in found {
        if !matches!(
            o["status"].as_str(),
            Some("final" | "amended" | "corrected")
        ) {
            continue;
        }
        let at = o["effectiveDateTime"]
            .as_str()
            .or_else(|| o["effectivePeriod"]["start"].as_str())
            .or_else(|| o["issued"].as_str())
            .unwrap_or_default()
            .to_owned();
        let Some((at_ms, _)) = wardline_fhir::datetime::parse_range(&at) else {
            continue;
        };
        let Some(value) = value_in(&o["valueQuantity"], unit) else {
            continue;
        };
        // Equal times: the one recorded later (creation order) wins.
        if best.as_ref().is_none_or(|b| at_ms >= b.at_ms) {
            best = Some(Measure {
                observation: o["id"].as_str().unwrap_or_default().to_owned(),
                value,
                unit: unit.replace("10*9/L", "×10⁹/L").replace("umol/L", "µmol/L"),
                at,
                at_ms,
            });
        }
    }
    Ok(best)
}

/// The caller's position's role, read in the transaction.
pub(super) fn role_in(tx: &mut Tx<'_>) -> R<Option<Role>> {
    Ok(crate::fhir::caller_role_in(tx)?)
}

/// The caller as a reference and the key compared when one person may not
/// do two steps.
pub(super) fn actor(access: &dyn Access) -> (Value, String) {
    crate::laboratory::actor(access)
}

pub(super) fn ext_subs<'a>(v: &'a Value, url: &str) -> Vec<&'a [Value]> {
    v["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == url)
        .filter_map(|e| e["extension"].as_array().map(Vec::as_slice))
        .collect()
}

pub(super) fn sub<'a>(s: &'a [Value], name: &str) -> Option<&'a Value> {
    s.iter().find(|e| e["url"] == name)
}

pub(super) fn sub_str<'a>(s: &'a [Value], name: &str) -> Option<&'a str> {
    let e = sub(s, name)?;
    e["valueString"]
        .as_str()
        .or_else(|| e["valueCode"].as_str())
        .or_else(|| e["valueDateTime"].as_str())
        .or_else(|| e["valueDate"].as_str())
        .or_else(|| e["valueReference"]["reference"].as_str())
}

pub(super) fn sub_f64(s: &[Value], name: &str) -> Option<f64> {
    sub(s, name).and_then(|e| e["valueDecimal"].as_f64())
}

pub(super) fn is_chemo(r: &Value) -> bool {
    r["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .any(|c| c["system"] == LOCAL_CATEGORY_SYSTEM && c["code"] == CATEGORY)
}

fn category() -> Value {
    json!([{"coding": [{"system": LOCAL_CATEGORY_SYSTEM, "code": CATEGORY, "display": "Chemotherapy"}]}])
}

/// The mg/m² per substance in the patient's released chemotherapy
/// prescriptions (`active`, `on-hold`, `completed` or `stopped`: once
/// released a dose may have been given, so it counts) other than those of
/// `except` (a CarePlan id).
pub fn prior_in(tx: &mut Tx<'_>, patient: &str, except: Option<&str>) -> R<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for mr in tx.find("MedicationRequest", &format!("subject=Patient/{patient}"))? {
        if !is_chemo(&mr)
            || !matches!(
                mr["status"].as_str(),
                Some("active" | "on-hold" | "completed" | "stopped")
            )
        {
            continue;
        }
        let of_this = mr["basedOn"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| except.is_some_and(|c| b["reference"] == format!("CarePlan/{c}")));
        if of_this {
            continue;
        }
        for s in ext_subs(&mr, DOSE_CALC_EXT) {
            if let (Some(class), Some(v)) = (sub_str(s, "cumulativeClass"), sub_f64(s, "mgPerM2")) {
                *out.entry(class.to_owned()).or_insert(0.0) += v;
            }
        }
    }
    Ok(out)
}

fn cumulative_lines(
    prior: &BTreeMap<String, f64>,
    this: &[(String, f64)],
    warn: f64,
) -> Vec<CumulativeLine> {
    let mut by: BTreeMap<&str, f64> = BTreeMap::new();
    for (c, v) in this {
        *by.entry(c.as_str()).or_insert(0.0) += v;
    }
    by.into_iter()
        .filter_map(|(c, v)| {
            let l = dose::limit_of(c)?;
            let p = prior.get(c).copied().unwrap_or(0.0);
            Some(CumulativeLine {
                class: c.to_owned(),
                name: l.name.to_owned(),
                limit: l.mg_per_m2,
                prior: dose::round_mg(p),
                this: dose::round_mg(v),
                standing: dose::cumulative(l.mg_per_m2, p, v, warn),
            })
        })
        .collect()
}

/// Reads and checks a regimen in the transaction.
fn regimen_in(tx: &mut Tx<'_>, id: &str) -> R<Regimen> {
    let pd = tx
        .get("PlanDefinition", id)?
        .filter(regimen::is_regimen)
        .ok_or_else(|| MedicinesError::NotFound(format!("No chemotherapy regimen '{id}'.")))?;
    regimen::parse(&pd).map_err(MedicinesError::Invalid)
}

/// The calculation of a cycle, read in the transaction (nothing saved).
pub fn plan_in(
    tx: &mut Tx<'_>,
    formulary: &Formulary,
    config: &ChemoConfig,
    req: &Request,
) -> R<Plan> {
    let regimen = regimen_in(tx, &req.regimen)?;
    if !regimen.active {
        return Err(MedicinesError::Conflict(format!(
            "{} is retired: choose a current regimen.",
            regimen.title
        )));
    }
    if req.cycle == 0 || req.cycle > regimen.cycles {
        return Err(MedicinesError::Invalid(format!(
            "{} has cycles 1 to {}: there is no cycle {}.",
            regimen.title, regimen.cycles, req.cycle
        )));
    }
    let patient = tx
        .get("Patient", &req.patient)?
        .ok_or_else(|| MedicinesError::NotFound(format!("No patient '{}'.", req.patient)))?;
    let height = latest_in(tx, &req.patient, HEIGHT_LOINC, "cm")?.ok_or_else(|| {
        MedicinesError::Conflict(
            "No height is recorded (LOINC 8302-2, in cm): record it before prescribing chemotherapy."
                .into(),
        )
    })?;
    let weight = latest_in(tx, &req.patient, WEIGHT_LOINC, "kg")?.ok_or_else(|| {
        MedicinesError::Conflict(
            "No weight is recorded (LOINC 29463-7, in kg): weigh the patient before prescribing chemotherapy."
                .into(),
        )
    })?;
    let start_ms = date_ms(req.start);
    let age_days = (start_ms - weight.at_ms).div_euclid(DAY_MS);
    if age_days > config.weight_max_age_days {
        return Err(MedicinesError::Conflict(format!(
            "The latest weight ({} kg on {}) was taken {age_days} days before day 1 ({}): the body surface area is not calculated from a weight older than {} days — weigh the patient again.",
            dose::trim(weight.value),
            weight.date(),
            date_text(req.start),
            config.weight_max_age_days
        )));
    }
    let bsa = bsa::compute(
        height.value,
        weight.value,
        config.bsa_formula,
        config.bsa_cap,
    )
    .map_err(MedicinesError::Conflict)?;
    let drugs: Vec<&regimen::Drug> = regimen.drugs_in(req.cycle).collect();
    for r in &req.reductions {
        if !drugs.iter().any(|d| d.name == r.drug) {
            return Err(MedicinesError::Invalid(format!(
                "{} is not given in cycle {} of {}: no reduction can apply to it.",
                r.drug, req.cycle, regimen.title
            )));
        }
    }
    let gfr = if drugs.iter().any(|d| d.basis == Basis::Auc) {
        Some(gfr_in(
            tx,
            config,
            &req.patient,
            &patient,
            &weight,
            req.start,
        )?)
    } else {
        None
    };
    let basis = dose::Patient {
        bsa_m2: Some(bsa.used),
        weight_kg: Some(weight.value),
        gfr_ml_min: gfr.as_ref().map(|g| g.used),
    };
    let mut doses = Vec::new();
    for d in drugs {
        let med = d.medicine(formulary).ok_or_else(|| {
            MedicinesError::Conflict(format!(
                "{} ({}) is not in the formulary: the pharmacy must add it before {} can be prescribed.",
                d.name,
                if d.vtm.code.is_empty() { &d.vtm.display } else { &d.vtm.code },
                regimen.title
            ))
        })?;
        let red = req.reductions.iter().find(|r| r.drug == d.name);
        let protocol = dose::Protocol {
            basis: d.basis,
            dose: d.dose,
            max_dose: d.max_dose,
            band: d.band_table.as_deref().and_then(super::banding::table),
            round_to: d.round_to,
        };
        let calc = dose::calculate(
            &protocol,
            &basis,
            red.map_or(0.0, |r| r.percent),
            red.map(|r| r.reason.as_str()),
        )
        .map_err(|e| MedicinesError::Invalid(format!("{}: {e}", d.name)))?;
        let mg_per_m2 = dose::round_mg(calc.final_dose / bsa.used);
        doses.push(DoseLine {
            drug: d.name.clone(),
            medication: med.id.clone(),
            medication_name: med.name().to_owned(),
            route: d.route.display.clone(),
            days: d.days.clone(),
            times_per_day: d.times_per_day,
            infusion: d.infusion.clone(),
            calc,
            mg_per_m2,
            cumulative_class: d.cumulative_class.clone(),
        });
    }
    let prior = prior_in(tx, &req.patient, None)?;
    let this: Vec<(String, f64)> = doses
        .iter()
        .filter_map(|d| {
            d.cumulative_class.clone().map(|c| {
                (
                    c,
                    d.mg_per_m2 * f64::from(d.times_per_day) * d.days.len() as f64,
                )
            })
        })
        .collect();
    let cumulative = cumulative_lines(&prior, &this, config.cumulative_warn_fraction);
    Ok(Plan {
        regimen,
        cycle: req.cycle,
        start: req.start,
        height,
        weight,
        bsa,
        gfr,
        doses,
        cumulative,
    })
}

/// The GFR for Calvert: Cockcroft–Gault from the latest creatinine (which
/// must be no older than the blood-result limit), the patient's age at day
/// 1, sex and the weight used; capped.
fn gfr_in(
    tx: &mut Tx<'_>,
    config: &ChemoConfig,
    id: &str,
    patient: &Value,
    weight: &Measure,
    start: Date,
) -> R<Gfr> {
    let creatinine = latest_in(tx, id, CREATININE_LOINC, "umol/L")?.ok_or_else(|| {
        MedicinesError::Conflict(
            "A dose by AUC (Calvert) needs a creatinine result (LOINC 14682-9): none is recorded."
                .into(),
        )
    })?;
    let old = (date_ms(start) - creatinine.at_ms).div_euclid(DAY_MS);
    if old > config.blood_max_age_days {
        return Err(MedicinesError::Conflict(format!(
            "The latest creatinine ({} µmol/L on {}) is {old} days before day 1: a GFR for Calvert needs one from the last {} days.",
            dose::trim(creatinine.value),
            creatinine.date(),
            config.blood_max_age_days
        )));
    }
    let born = patient["birthDate"]
        .as_str()
        .and_then(parse_date)
        .ok_or_else(|| {
            MedicinesError::Conflict(
                "Cockcroft–Gault needs the patient's date of birth, which is not recorded.".into(),
            )
        })?;
    let mut age = i64::from(start.year() - born.year());
    if (u8::from(start.month()), start.day()) < (u8::from(born.month()), born.day()) {
        age -= 1;
    }
    let sex = match patient["gender"].as_str() {
        Some("male") => dose::Sex::Male,
        Some("female") => dose::Sex::Female,
        _ => {
            return Err(MedicinesError::Conflict(
                "Cockcroft–Gault needs the patient's sex (male or female); it is not recorded as either, so a GFR must be measured and the dose calculated by hand."
                    .into(),
            ));
        }
    };
    let crcl = dose::cockcroft_gault(age as f64, weight.value, creatinine.value, sex);
    let (used, capped) = dose::gfr_for_calvert(crcl, config.gfr_cap);
    Ok(Gfr {
        creatinine,
        age,
        sex,
        crcl: dose::round_mg(crcl),
        used: dose::round_mg(used),
        capped,
    })
}

// ------------------------------------------------------------------ prescribing

/// What prescribing saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prescribed {
    pub careplan: String,
    pub prescriptions: Vec<String>,
    pub plan: Plan,
}

/// Prescribes a cycle: the plan ([`plan_in`]) saved as a draft `CarePlan`
/// with draft prescriptions. Refused: a stale weight, a cycle of the
/// regimen with this number already prescribed (and not revoked), a
/// lifetime limit gone past without a consultant's reason.
pub fn prescribe_cycle_in(
    tx: &mut Tx<'_>,
    formulary: &Formulary,
    config: &ChemoConfig,
    req: &Request,
    now: OffsetDateTime,
) -> R<Prescribed> {
    tx.lock(&[
        format!("Patient/{}", req.patient),
        format!("chemotherapy/{}", req.patient),
    ])?;
    let plan = plan_in(tx, formulary, config, req)?;
    for cp in tx.find("CarePlan", &format!("subject=Patient/{}", req.patient))? {
        let same = is_chemo(&cp)
            && cp["instantiatesCanonical"][0] == plan.regimen.url.as_str()
            && cycle_number(&cp) == Some(req.cycle)
            && !matches!(cp["status"].as_str(), Some("revoked" | "entered-in-error"));
        if same {
            return Err(MedicinesError::Conflict(format!(
                "Cycle {} of {} is already prescribed for this patient (CarePlan/{}).",
                req.cycle,
                plan.regimen.title,
                cp["id"].as_str().unwrap_or_default()
            )));
        }
    }
    let (me, _) = actor(tx.access());
    let at = stamp(now);
    let mut overrides = Vec::new();
    for line in plan
        .cumulative
        .iter()
        .filter(|l| l.standing == Standing::Beyond)
    {
        let reason = req
            .cumulative_override
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let consultant = role_in(tx)? == Some(Role::Consultant);
        match (reason, consultant) {
            (Some(r), true) => {
                overrides.push(json!({"url": CUMULATIVE_OVERRIDE_EXT, "extension": [
                    {"url": "class", "valueCode": line.class},
                    {"url": "reason", "valueString": r},
                    {"url": "by", "valueReference": me},
                    {"url": "at", "valueDateTime": at},
                ]}))
            }
            (_, false) => {
                return Err(MedicinesError::Conflict(format!(
                    "{} Refused: only a consultant may go past a lifetime limit, with a reason.",
                    line.sentence()
                )));
            }
            (None, true) => {
                return Err(MedicinesError::Conflict(format!(
                    "{} Give your reason as the consultant to go past it.",
                    line.sentence()
                )));
            }
        }
    }
    let cp_id = uuid::Uuid::new_v4().to_string();
    let subject = json!({"reference": format!("Patient/{}", req.patient)});
    let mut mrs = Vec::new();
    for d in &plan.doses {
        let id = uuid::Uuid::new_v4().to_string();
        let first = plan.start + time::Duration::days(i64::from(d.days[0]) - 1);
        let last = plan.start + time::Duration::days(i64::from(d.days[d.days.len() - 1]) - 1);
        let c = &d.calc;
        let mut calc = vec![
            json!({"url": "basis", "valueCode": c.basis.code()}),
            json!({"url": "protocolDose", "valueDecimal": c.per}),
            json!({"url": "calculated", "valueDecimal": c.calculated}),
            json!({"url": "reductionPercent", "valueDecimal": c.reduction_percent}),
            json!({"url": "final", "valueDecimal": c.final_dose}),
            json!({"url": "mgPerM2", "valueDecimal": d.mg_per_m2 * f64::from(d.times_per_day) * d.days.len() as f64}),
            json!({"url": "bsa", "valueDecimal": plan.bsa.used}),
            json!({"url": "weight", "valueDecimal": plan.weight.value}),
        ];
        if let Some(r) = &c.reduction_reason {
            calc.push(json!({"url": "reductionReason", "valueString": r}));
        }
        if let Some(b) = c.banded {
            calc.push(json!({"url": "banded", "valueDecimal": b}));
        }
        if c.max_applied {
            calc.push(json!({"url": "maximumApplied", "valueBoolean": true}));
        }
        if let (Basis::Auc, Some(g)) = (c.basis, &plan.gfr) {
            calc.push(json!({"url": "gfr", "valueDecimal": g.used}));
        }
        if let Some(cl) = &d.cumulative_class {
            calc.push(json!({"url": "cumulativeClass", "valueCode": cl}));
        }
        calc.push(json!({"url": "steps", "valueString": c.steps.join("; ")}));
        let text = format!(
            "{} mg {}{} day {} ({}){}",
            dose::trim(c.final_dose),
            d.route.to_lowercase(),
            if d.times_per_day == 2 {
                " twice daily"
            } else {
                ""
            },
            regimen::days_text(&d.days),
            c.steps.join("; "),
            d.infusion
                .as_deref()
                .map(|i| format!("; {i}"))
                .unwrap_or_default()
        );
        let mut route = regimen::coding_json(
            &plan
                .regimen
                .drugs_in(req.cycle)
                .find(|x| x.name == d.drug)
                .map(|x| x.route.clone())
                .unwrap_or_default(),
        );
        if route.as_object().is_some_and(serde_json::Map::is_empty) {
            route = Value::Null;
        }
        let mut dosage = json!({
            "text": text,
            "timing": {"repeat": {
                "boundsPeriod": {"start": date_text(first), "end": date_text(last)},
                "frequency": d.times_per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": c.final_dose, "unit": "mg",
                "system": "http://unitsofmeasure.org", "code": "mg"}}],
        });
        if !route.is_null() {
            dosage["route"] = json!({"coding": [route]});
        }
        let mr = json!({
            "resourceType": "MedicationRequest",
            "id": id,
            "status": "draft",
            "intent": "order",
            "category": category(),
            "medicationReference": {"reference": format!("Medication/{}", d.medication), "display": d.medication_name},
            "subject": subject,
            "authoredOn": at,
            "requester": me,
            "basedOn": [{"reference": format!("CarePlan/{cp_id}")}],
            "extension": [
                {"url": DOSE_CALC_EXT, "extension": calc},
                {"url": SIGNATURE_EXT, "extension": [
                    {"url": "by", "valueReference": me}, {"url": "at", "valueDateTime": at}]},
            ],
            "dosageInstruction": [dosage],
        });
        mrs.push(mr);
    }
    let mut cycle = vec![
        json!({"url": "number", "valueInteger": req.cycle}),
        json!({"url": "bsa", "valueDecimal": plan.bsa.used}),
        json!({"url": "bsaFormula", "valueCode": plan.bsa.formula.code()}),
        json!({"url": "bsaUncapped", "valueDecimal": plan.bsa.uncapped}),
        json!({"url": "bsaCapped", "valueBoolean": plan.bsa.capped}),
        json!({"url": "bsaMosteller", "valueDecimal": plan.bsa.mosteller}),
        json!({"url": "bsaDuBois", "valueDecimal": plan.bsa.dubois}),
        json!({"url": "height", "valueReference": {"reference": format!("Observation/{}", plan.height.observation)}}),
        json!({"url": "heightCm", "valueDecimal": plan.height.value}),
        json!({"url": "heightDate", "valueDateTime": plan.height.at}),
        json!({"url": "weight", "valueReference": {"reference": format!("Observation/{}", plan.weight.observation)}}),
        json!({"url": "weightKg", "valueDecimal": plan.weight.value}),
        json!({"url": "weightDate", "valueDateTime": plan.weight.at}),
    ];
    let mut supporting = vec![
        json!({"reference": format!("Observation/{}", plan.height.observation)}),
        json!({"reference": format!("Observation/{}", plan.weight.observation)}),
    ];
    if let Some(g) = &plan.gfr {
        cycle.push(json!({"url": "creatinine", "valueReference": {"reference": format!("Observation/{}", g.creatinine.observation)}}));
        cycle.push(json!({"url": "crcl", "valueDecimal": g.crcl}));
        cycle.push(json!({"url": "gfrUsed", "valueDecimal": g.used}));
        cycle.push(json!({"url": "gfrCapped", "valueBoolean": g.capped}));
        supporting.push(json!({"reference": format!("Observation/{}", g.creatinine.observation)}));
    }
    let mut ext = vec![
        json!({"url": CYCLE_EXT, "extension": cycle}),
        json!({"url": SIGNATURE_EXT, "extension": [
            {"url": "by", "valueReference": me}, {"url": "at", "valueDateTime": at}]}),
    ];
    ext.extend(overrides);
    let cp = json!({
        "resourceType": "CarePlan",
        "id": cp_id,
        "status": "draft",
        "intent": "plan",
        "category": category(),
        "instantiatesCanonical": [plan.regimen.url],
        "title": format!("{} cycle {}", plan.regimen.title, req.cycle),
        "subject": subject,
        "period": {"start": date_text(plan.start)},
        "created": at,
        "author": me,
        "extension": ext,
        "supportingInfo": supporting,
        "activity": mrs.iter().map(|m| json!({"reference": {"reference": format!("MedicationRequest/{}", m["id"].as_str().unwrap_or_default())}})).collect::<Vec<_>>(),
    });
    let mut ids = Vec::new();
    for mr in mrs {
        ids.push(tx.save(mr)?.id);
    }
    tx.save(cp)?;
    Ok(Prescribed {
        careplan: cp_id,
        prescriptions: ids,
        plan,
    })
}

pub(super) fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> R<Tx<'a>> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

/// [`prescribe_cycle_in`] in one audited transaction (`chemo-prescribe`).
pub fn prescribe_cycle(
    svc: &FhirService,
    access: &dyn Access,
    formulary: &Formulary,
    config: &ChemoConfig,
    req: &Request,
    now: OffsetDateTime,
) -> R<Prescribed> {
    let mut tx = begin(svc, access, "chemo-prescribe", "C")?;
    let p = prescribe_cycle_in(&mut tx, formulary, config, req, now)?;
    tx.commit()?;
    Ok(p)
}

/// [`plan_in`] for the prescribing page's preview (audited as a read,
/// `chemo-preview`).
pub fn preview(
    svc: &FhirService,
    access: &dyn Access,
    formulary: &Formulary,
    config: &ChemoConfig,
    req: &Request,
) -> R<Plan> {
    let mut tx = begin(svc, access, "chemo-preview", "R")?;
    tx.audit_reads();
    let p = plan_in(&mut tx, formulary, config, req)?;
    tx.commit()?;
    Ok(p)
}

// ------------------------------------------------------------------ checks

/// One pre-cycle check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    /// What is needed, in words (`≥ 1.0 ×10⁹/L`).
    pub needed: String,
    pub result: Option<Measure>,
    pub passed: bool,
    /// Why it failed (`missing`, `too old`, `below`).
    pub problem: Option<String>,
}

/// The pre-cycle checks of a cycle against the patient's latest results,
/// read in the transaction: neutrophils, platelets, and creatinine where a
/// dose is by AUC. A result taken more than the limit's days before day 1
/// counts as missing.
pub fn checks_in(tx: &mut Tx<'_>, config: &ChemoConfig, cp: &Value) -> R<Vec<Check>> {
    let patient = crate::fhir::reference_id(&cp["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let start = cp["period"]["start"]
        .as_str()
        .and_then(parse_date)
        .ok_or_else(|| MedicinesError::Store("the cycle has no day 1".into()))?;
    let start_ms = date_ms(start);
    let mut auc = false;
    for a in cp["activity"].as_array().into_iter().flatten() {
        if let Some(id) = crate::fhir::reference_id(&a["reference"], "MedicationRequest")
            && let Some(mr) = tx.get("MedicationRequest", id)?
        {
            auc |= ext_subs(&mr, DOSE_CALC_EXT)
                .iter()
                .any(|s| sub_str(s, "basis") == Some("auc"));
        }
    }
    let mut wanted = vec![
        (
            "Neutrophils",
            NEUTROPHILS_LOINC,
            "10*9/L",
            Some(config.neutrophils_min),
        ),
        (
            "Platelets",
            PLATELETS_LOINC,
            "10*9/L",
            Some(config.platelets_min),
        ),
    ];
    if auc {
        wanted.push((
            "Creatinine (for carboplatin's GFR)",
            CREATININE_LOINC,
            "umol/L",
            None,
        ));
    }
    let mut out = Vec::new();
    for (name, code, unit, min) in wanted {
        let result = latest_in(tx, &patient, code, unit)?;
        let shown_unit = unit.replace("10*9/L", "×10⁹/L").replace("umol/L", "µmol/L");
        let needed = match min {
            Some(m) => format!("≥ {} {shown_unit}", dose::trim(m)),
            None => format!(
                "a result from the {} days before day 1",
                config.blood_max_age_days
            ),
        };
        let problem = match &result {
            None => Some("no result".to_owned()),
            Some(r) if (start_ms - r.at_ms).div_euclid(DAY_MS) > config.blood_max_age_days => {
                Some(format!(
                    "the latest ({} on {}) is older than {} days before day 1: counts as missing",
                    dose::trim(r.value),
                    r.date(),
                    config.blood_max_age_days
                ))
            }
            Some(r) if min.is_some_and(|m| r.value < m) => Some(format!(
                "{} {shown_unit} on {} is below {}",
                dose::trim(r.value),
                r.date(),
                dose::trim(min.unwrap_or_default())
            )),
            Some(_) => None,
        };
        out.push(Check {
            name: name.to_owned(),
            needed,
            passed: problem.is_none(),
            result,
            problem,
        });
    }
    Ok(out)
}

// ------------------------------------------------------------------ verification

/// Who verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyAs {
    /// A second clinician (a position with Prescribe), not the prescriber.
    Clinical,
    /// A pharmacist (a position with ScreenPrescriptions).
    Pharmacy,
}

impl VerifyAs {
    pub fn code(self) -> &'static str {
        match self {
            VerifyAs::Clinical => "clinical",
            VerifyAs::Pharmacy => "pharmacy",
        }
    }

    pub fn parse(s: &str) -> Option<VerifyAs> {
        match s {
            "clinical" => Some(VerifyAs::Clinical),
            "pharmacy" => Some(VerifyAs::Pharmacy),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            VerifyAs::Clinical => "Second clinician",
            VerifyAs::Pharmacy => "Pharmacist",
        }
    }
}

/// A verification recorded on a cycle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub role: VerifyAs,
    pub by: String,
    pub by_name: String,
    pub at: String,
}

/// The verifications on a cycle.
pub fn verifications(cp: &Value) -> Vec<Verification> {
    cp["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == VERIFICATION_EXT)
        .filter_map(|e| {
            let s = e["extension"].as_array()?;
            let by = &sub(s, "by")?["valueReference"];
            Some(Verification {
                role: VerifyAs::parse(sub_str(s, "role")?)?,
                by: by["reference"]
                    .as_str()
                    .or_else(|| by["display"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                by_name: by["display"].as_str().unwrap_or_default().to_owned(),
                at: sub_str(s, "at").unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// The prescriber's key (as [`actor`] makes it).
pub(super) fn prescriber_key(cp: &Value) -> String {
    let a = &cp["author"];
    a["reference"]
        .as_str()
        .or_else(|| a["display"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Adds a step of the cycle's history to the CarePlan: extension `url`
/// with `parts`, then who (`by`) and when (`at`).
pub(super) fn add_step(
    cp: &mut Value,
    url: &str,
    mut parts: Vec<Value>,
    by: Value,
    now: OffsetDateTime,
) {
    parts.push(json!({"url": "by", "valueReference": by}));
    parts.push(json!({"url": "at", "valueDateTime": stamp(now)}));
    let e = json!({"url": url, "extension": parts});
    match cp["extension"].as_array_mut() {
        Some(a) => a.push(e),
        None => cp["extension"] = json!([e]),
    }
}

pub(super) fn lock_cycle(tx: &mut Tx<'_>, id: &str) -> R<Value> {
    tx.lock(&[format!("CarePlan/{id}")])?;
    tx.get("CarePlan", id)?
        .filter(is_chemo)
        .ok_or_else(|| MedicinesError::NotFound(format!("No chemotherapy cycle '{id}'.")))
}

/// Records a verification. Refused: a released or revoked cycle; a
/// position without the activity; the prescriber; a second verification
/// in the same role; the person who verified in the other role.
pub fn verify_in(tx: &mut Tx<'_>, careplan: &str, role: VerifyAs, now: OffsetDateTime) -> R<()> {
    let mut cp = lock_cycle(tx, careplan)?;
    if !matches!(cp["status"].as_str(), Some("draft" | "on-hold")) {
        return Err(MedicinesError::Conflict(format!(
            "This cycle is {}: only a cycle not yet released is verified.",
            cp["status"].as_str().unwrap_or("unknown")
        )));
    }
    let need = match role {
        VerifyAs::Clinical => Activity::Prescribe,
        VerifyAs::Pharmacy => Activity::ScreenPrescriptions,
    };
    let position = role_in(tx)?;
    if !position.is_some_and(|r| r.has(need)) {
        return Err(MedicinesError::Forbidden(format!(
            "Verifying as {} needs a position that may {} ({}).",
            role.label().to_lowercase(),
            match role {
                VerifyAs::Clinical => "prescribe",
                VerifyAs::Pharmacy => "screen prescriptions",
            },
            position.map_or("no position", Role::display)
        )));
    }
    let (me, key) = actor(tx.access());
    if key == prescriber_key(&cp) {
        return Err(MedicinesError::Conflict(
            "You prescribed this cycle: a different person must verify it.".into(),
        ));
    }
    for v in verifications(&cp) {
        if v.role == role {
            return Err(MedicinesError::Conflict(format!(
                "The {} verification is already recorded ({} at {}).",
                role.label().to_lowercase(),
                if v.by_name.is_empty() {
                    &v.by
                } else {
                    &v.by_name
                },
                v.at
            )));
        }
        if v.by == key {
            return Err(MedicinesError::Conflict(format!(
                "You verified this cycle as {}: the {} verification must be by someone else.",
                v.role.label().to_lowercase(),
                role.label().to_lowercase()
            )));
        }
    }
    add_step(
        &mut cp,
        VERIFICATION_EXT,
        vec![json!({"url": "role", "valueCode": role.code()})],
        me,
        now,
    );
    tx.save(cp)?;
    Ok(())
}

/// [`verify_in`] in one audited transaction (`chemo-verify`).
pub fn verify(
    svc: &FhirService,
    access: &dyn Access,
    careplan: &str,
    role: VerifyAs,
    now: OffsetDateTime,
) -> R<()> {
    let mut tx = begin(svc, access, "chemo-verify", "U")?;
    verify_in(&mut tx, careplan, role, now)?;
    tx.commit()?;
    Ok(())
}

// ------------------------------------------------------------------ release

/// The cycle's prescriptions' ids, each locked (the key every writer of a
/// prescription takes).
pub(super) fn locked_prescriptions(tx: &mut Tx<'_>, cp: &Value) -> R<Vec<String>> {
    let ids = prescriptions_of(cp);
    tx.lock(
        &ids.iter()
            .map(|i| format!("MedicationRequest/{i}"))
            .collect::<Vec<_>>(),
    )?;
    Ok(ids)
}

pub(super) fn prescriptions_of(cp: &Value) -> Vec<String> {
    cp["activity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| crate::fhir::reference_id(&a["reference"], "MedicationRequest"))
        .map(str::to_owned)
        .collect()
}

fn overridden(cp: &Value) -> Vec<String> {
    ext_subs(cp, CUMULATIVE_OVERRIDE_EXT)
        .into_iter()
        .filter_map(|s| sub_str(s, "class").map(str::to_owned))
        .collect()
}

/// Releases a cycle: both verifications recorded, every pre-cycle check
/// passed, and no lifetime limit gone past (counting what was released
/// since it was prescribed) without the consultant's override; then the
/// CarePlan is `active` and each prescription `active`, through
/// `medicines::prescribe::set_status_in` (the one place a prescription's
/// status changes).
pub fn release_in(
    tx: &mut Tx<'_>,
    config: &ChemoConfig,
    careplan: &str,
    now: OffsetDateTime,
) -> R<Vec<String>> {
    let mut cp = lock_cycle(tx, careplan)?;
    if !matches!(cp["status"].as_str(), Some("draft" | "on-hold")) {
        return Err(MedicinesError::Conflict(format!(
            "This cycle is {}: it cannot be released.",
            cp["status"].as_str().unwrap_or("unknown")
        )));
    }
    let vs = verifications(&cp);
    let missing: Vec<&str> = [VerifyAs::Clinical, VerifyAs::Pharmacy]
        .into_iter()
        .filter(|r| !vs.iter().any(|v| v.role == *r))
        .map(|r| match r {
            VerifyAs::Clinical => "a second clinician",
            VerifyAs::Pharmacy => "a pharmacist",
        })
        .collect();
    if !missing.is_empty() {
        return Err(MedicinesError::Conflict(format!(
            "The cycle must be verified by {} before it is released.",
            missing.join(" and ")
        )));
    }
    let failed: Vec<String> = checks_in(tx, config, &cp)?
        .into_iter()
        .filter(|c| !c.passed)
        .map(|c| {
            format!(
                "{} (needs {}): {}",
                c.name,
                c.needed,
                c.problem.unwrap_or_default()
            )
        })
        .collect();
    if !failed.is_empty() {
        return Err(MedicinesError::Conflict(format!(
            "The pre-cycle checks do not pass: {}. Delay the cycle or repeat the bloods.",
            failed.join("; ")
        )));
    }
    let patient = crate::fhir::reference_id(&cp["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let ids = locked_prescriptions(tx, &cp)?;
    let mut mrs = Vec::new();
    let mut this = Vec::new();
    for id in &ids {
        let mr = tx.get("MedicationRequest", id)?.ok_or_else(|| {
            MedicinesError::Store(format!("the cycle's MedicationRequest/{id} is missing"))
        })?;
        for s in ext_subs(&mr, DOSE_CALC_EXT) {
            if let (Some(c), Some(v)) = (sub_str(s, "cumulativeClass"), sub_f64(s, "mgPerM2")) {
                this.push((c.to_owned(), v));
            }
        }
        mrs.push(mr);
    }
    let prior = prior_in(tx, &patient, Some(careplan))?;
    let over = overridden(&cp);
    for l in cumulative_lines(&prior, &this, config.cumulative_warn_fraction) {
        if l.standing == Standing::Beyond && !over.contains(&l.class) {
            return Err(MedicinesError::Conflict(format!(
                "{} Released cycles since this one was prescribed take it past the limit: a consultant must prescribe it again with a reason.",
                l.sentence()
            )));
        }
    }
    for mr in mrs {
        if mr["status"] == "active" {
            continue;
        }
        // The one place a prescription's status changes (it refuses a
        // move `medicines::allowed` forbids).
        crate::medicines::prescribe::set_status_in(
            tx,
            mr["id"].as_str().unwrap_or_default(),
            "active",
            "",
        )?;
    }
    cp["status"] = json!("active");
    let (me, _) = actor(tx.access());
    set_sub_ext(
        &mut cp,
        CYCLE_EXT,
        "releasedBy",
        json!({"valueReference": me}),
    );
    set_sub_ext(
        &mut cp,
        CYCLE_EXT,
        "releasedAt",
        json!({"valueDateTime": stamp(now)}),
    );
    tx.save(cp)?;
    Ok(ids)
}

fn set_sub_ext(r: &mut Value, url: &str, name: &str, value: Value) {
    let Some(list) = r["extension"].as_array_mut() else {
        return;
    };
    let Some(e) = list.iter_mut().find(|e| e["url"] == url) else {
        return;
    };
    let mut v = value;
    v["url"] = json!(name);
    match e["extension"].as_array_mut() {
        Some(a) => {
            a.retain(|s| s["url"] != name);
            a.push(v);
        }
        None => e["extension"] = json!([v]),
    }
}

/// [`release_in`] in one audited transaction (`chemo-release`).
pub fn release(
    svc: &FhirService,
    access: &dyn Access,
    config: &ChemoConfig,
    careplan: &str,
    now: OffsetDateTime,
) -> R<Vec<String>> {
    let mut tx = begin(svc, access, "chemo-release", "U")?;
    let ids = release_in(&mut tx, config, careplan, now)?;
    tx.commit()?;
    Ok(ids)
}

// ------------------------------------------------------------------ delay

/// Delays a cycle to `to` with a reason: the CarePlan `on-hold` with day 1
/// moved, its released prescriptions `on-hold` and every prescription's
/// days moved with it. Releasing it again needs the checks to pass on the
/// new day 1.
pub fn delay_in(
    tx: &mut Tx<'_>,
    careplan: &str,
    reason: &str,
    to: Date,
    now: OffsetDateTime,
) -> R<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(MedicinesError::Invalid(
            "Give the reason for the delay.".into(),
        ));
    }
    let mut cp = lock_cycle(tx, careplan)?;
    if !matches!(cp["status"].as_str(), Some("draft" | "active" | "on-hold")) {
        return Err(MedicinesError::Conflict(format!(
            "This cycle is {}: it cannot be delayed.",
            cp["status"].as_str().unwrap_or("unknown")
        )));
    }
    let from = cp["period"]["start"]
        .as_str()
        .and_then(parse_date)
        .ok_or_else(|| MedicinesError::Store("the cycle has no day 1".into()))?;
    if to <= from {
        return Err(MedicinesError::Invalid(format!(
            "A delay moves day 1 later than {}: {} is not.",
            date_text(from),
            date_text(to)
        )));
    }
    let shift = to - from;
    let ids = locked_prescriptions(tx, &cp)?;
    for id in &ids {
        let Some(mut mr) = tx.get("MedicationRequest", id)? else {
            continue;
        };
        let held = mr["status"] == "active";
        let b = &mut mr["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"];
        for k in ["start", "end"] {
            if let Some(d) = b[k].as_str().and_then(parse_date) {
                b[k] = json!(date_text(d + shift));
            }
        }
        tx.save(mr)?;
        if held {
            crate::medicines::prescribe::set_status_in(tx, id, "on-hold", reason)?;
        }
    }
    let (me, _) = actor(tx.access());
    add_step(
        &mut cp,
        DELAY_EXT,
        vec![
            json!({"url": "reason", "valueString": reason}),
            json!({"url": "from", "valueDate": date_text(from)}),
            json!({"url": "to", "valueDate": date_text(to)}),
        ],
        me,
        now,
    );
    cp["status"] = json!("on-hold");
    cp["period"]["start"] = json!(date_text(to));
    tx.save(cp)?;
    Ok(())
}

/// [`delay_in`] in one audited transaction (`chemo-delay`).
pub fn delay(
    svc: &FhirService,
    access: &dyn Access,
    careplan: &str,
    reason: &str,
    to: Date,
    now: OffsetDateTime,
) -> R<()> {
    let mut tx = begin(svc, access, "chemo-delay", "U")?;
    delay_in(&mut tx, careplan, reason, to, now)?;
    tx.commit()?;
    Ok(())
}

// ------------------------------------------------------------------ views

pub use super::view::{
    CycleView, Delay, PatientChemo, SavedDose, cycle_number, patient_cycles, share_bundle,
    share_bundle_in, view,
};
