//! [`assess_in`]: the five checks over the patient's record in the
//! transaction.

use serde_json::Value;
use wardline_core::Tx;

use super::dose::{cockcroft_gault, mg_text, most_in_24h_mg};
use super::knowledge::{self, Action, Knowledge, Measure, Med, Severity};
use super::{Alert, AlertKind, Grade};
use crate::medicines::formulary::{Entry, Formulary};
use crate::medicines::{CATEGORY_SYSTEM, MedicinesError, SNOMED_SYSTEM, kind};

pub const LOINC: &str = "http://loinc.org";
/// Body weight.
pub const WEIGHT: &str = "29463-7";
/// eGFR (CKD-EPI, and MDRD).
pub const EGFR: [&str; 2] = ["62238-1", "33914-3"];
/// Creatinine, serum or plasma, µmol/L.
pub const CREATININE: &str = "14682-9";
/// SNOMED CT Anaphylaxis (disorder).
const ANAPHYLAXIS: &str = "39579001";
/// How many of the patient's prescriptions are read (a drug chart is far
/// smaller; more is refused rather than silently cut).
const CHART_MAX: usize = 500;

/// A numeric result.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Obs {
    pub reference: String,
    pub value: f64,
    pub unit: String,
    pub at_ms: i64,
    pub when: String,
}

impl Obs {
    fn of(o: &Value) -> Option<Obs> {
        let q = &o["valueQuantity"];
        let when = o["effectiveDateTime"]
            .as_str()
            .or_else(|| o["effectivePeriod"]["start"].as_str())
            .or_else(|| o["issued"].as_str())?;
        Some(Obs {
            reference: format!("Observation/{}", o["id"].as_str()?),
            value: q["value"].as_f64()?,
            unit: q["unit"]
                .as_str()
                .or_else(|| q["code"].as_str())
                .unwrap_or_default()
                .to_owned(),
            at_ms: wardline_fhir::datetime::parse_range(when)?.0,
            when: when.get(..10).unwrap_or(when).to_owned(),
        })
    }
}

fn store(e: impl Into<MedicinesError>) -> MedicinesError {
    e.into()
}

/// The latest final (or amended, corrected) numeric result of any of
/// `codes` (LOINC).
pub(super) fn latest(
    tx: &mut Tx<'_>,
    patient: &str,
    codes: &[&str],
) -> Result<Option<Obs>, MedicinesError> {
    let code = codes
        .iter()
        .map(|c| format!("{LOINC}|{c}"))
        .collect::<Vec<_>>()
        .join(",");
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("patient", &format!("Patient/{patient}"))
        .append_pair("code", &code)
        .append_pair("status", "final,amended,corrected")
        .append_pair("_sort", "-date")
        .append_pair("_count", "5")
        .finish();
    Ok(tx
        .find("Observation", &q)
        .map_err(store)?
        .iter()
        .find_map(Obs::of))
}

fn weight_kg(o: &Obs) -> Option<f64> {
    match o.unit.trim().to_lowercase().as_str() {
        "kg" | "" => Some(o.value),
        "g" => Some(o.value / 1000.0),
        "[lb_av]" | "lb" | "lbs" => Some(o.value * 0.453_592_37),
        _ => None,
    }
    .filter(|w| *w > 0.0)
}

fn creatinine_umol(o: &Obs) -> Option<f64> {
    match o.unit.trim().to_lowercase().as_str() {
        "umol/l" | "µmol/l" | "μmol/l" | "micromol/l" => Some(o.value),
        "mg/dl" => Some(o.value * 88.4),
        "mmol/l" => Some(o.value * 1000.0),
        _ => None,
    }
}

/// The medicine's setting: a discharge (TTO) prescription is compared with
/// other TTOs, an inpatient one with the inpatient chart.
fn is_discharge(mr: &Value) -> bool {
    mr["category"].as_array().into_iter().flatten().any(|c| {
        c["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["system"] == CATEGORY_SYSTEM && k["code"] == "discharge")
    })
}

/// Pushes `a`, or folds it into the alert with the same key (the higher
/// grade, both messages, both implicated lists).
fn push(alerts: &mut Vec<Alert>, a: Alert) {
    if let Some(old) = alerts.iter_mut().find(|o| o.key == a.key) {
        if a.grade > old.grade {
            old.grade = a.grade;
            old.kind = a.kind;
        }
        if !old.message.contains(&a.message) {
            old.message = format!("{} {}", old.message, a.message);
        }
        for i in a.implicated {
            if !old.implicated.contains(&i) {
                old.implicated.push(i);
            }
        }
    } else {
        alerts.push(a);
    }
}

struct Other<'f> {
    reference: String,
    mr: Value,
    entry: Option<&'f Entry>,
    med: Option<Med>,
}

impl Other<'_> {
    fn label(&self) -> String {
        let name = self
            .entry
            .map(|e| e.name().to_owned())
            .unwrap_or_else(|| "another medicine".to_owned());
        format!("{name} ({})", kind(&self.mr).label().to_lowercase())
    }
}

pub(super) fn assess_in(
    tx: &mut Tx<'_>,
    formulary: &Formulary,
    patient: &str,
    candidate: &Value,
    now: time::OffsetDateTime,
) -> Result<Vec<Alert>, MedicinesError> {
    let k = knowledge::get().map_err(MedicinesError::Store)?;
    let patient = patient.strip_prefix("Patient/").unwrap_or(patient);
    let reference = candidate["medicationReference"]["reference"]
        .as_str()
        .unwrap_or_default();
    let entry = formulary.entry(reference).ok_or_else(|| {
        MedicinesError::Invalid(format!(
            "Decision support needs a formulary medicine; '{reference}' is not one."
        ))
    })?;
    let med = Med::of(entry);
    let mut skip: Vec<String> = Vec::new();
    if let Some(id) = candidate["id"].as_str() {
        skip.push(format!("MedicationRequest/{id}"));
    }
    if let Some(r) = candidate["priorPrescription"]["reference"].as_str() {
        skip.push(r.to_owned());
    }
    let discharge = is_discharge(candidate);
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("subject", &format!("Patient/{patient}"))
        .append_pair("status", "active,on-hold")
        .append_pair("_count", &(CHART_MAX + 1).to_string())
        .finish();
    let found = tx.find("MedicationRequest", &q).map_err(store)?;
    if found.len() > CHART_MAX {
        return Err(MedicinesError::Conflict(format!(
            "The patient has more than {CHART_MAX} current prescriptions; decision support cannot check them all."
        )));
    }
    let others: Vec<Other<'_>> = found
        .into_iter()
        .filter(|mr| is_discharge(mr) == discharge)
        .filter_map(|mr| {
            let reference = format!("MedicationRequest/{}", mr["id"].as_str()?);
            if skip.contains(&reference) {
                return None;
            }
            let entry = mr["medicationReference"]["reference"]
                .as_str()
                .and_then(|r| formulary.entry(r));
            Some(Other {
                reference,
                med: entry.map(Med::of),
                entry,
                mr,
            })
        })
        .collect();

    let mut alerts = Vec::new();
    allergies(tx, k, formulary, patient, &med, &mut alerts)?;
    duplicates(k, &med, &others, &mut alerts);
    interactions(k, &med, &others, &mut alerts);

    let max = k.max_dose(&med.vtm);
    let renal_rules: Vec<_> = k.renal_rules_for(&med).collect();
    let weight = if max.is_some_and(|m| m.weight_band.is_some()) || !renal_rules.is_empty() {
        latest(tx, patient, &[WEIGHT])?
    } else {
        None
    };
    let kg = weight.as_ref().and_then(weight_kg);
    let candidate_mg = most_in_24h_mg(candidate, Some(entry));
    if let Some(rule) = max {
        maximum_dose(rule, &med, candidate_mg, &others, kg, &weight, &mut alerts);
    }
    if !renal_rules.is_empty() {
        let r = Renal::read(tx, patient, weight.as_ref(), kg, now)?;
        for rule in renal_rules {
            renal(k, &r, rule, &med, candidate_mg, kg, now, &mut alerts);
        }
    }
    alerts.sort_by(|a, b| b.grade.cmp(&a.grade).then_with(|| a.key.cmp(&b.key)));
    Ok(alerts)
}

// ----------------------------------------------------------------- allergy

/// What an allergy record names, matched against the formulary and the
/// knowledge.
struct Allergen {
    /// Substances (VTM codes) it names.
    vtms: Vec<String>,
    /// Allergy classes it names as a group (penicillins).
    groups: Vec<String>,
    /// Allergy classes of the substances it names.
    classes: Vec<String>,
    text: String,
}

fn allergen(a: &Value, k: &Knowledge, formulary: &Formulary) -> Allergen {
    let c = &a["code"];
    let mut codes: Vec<&str> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    if let Some(t) = c["text"].as_str() {
        names.push(allergen_name(t));
    }
    for coding in c["coding"].as_array().into_iter().flatten() {
        if let Some(code) = coding["code"].as_str() {
            codes.push(code);
        }
        if let Some(d) = coding["display"].as_str() {
            names.push(allergen_name(d));
        }
    }
    let mut vtms: Vec<String> = Vec::new();
    for e in &formulary.entries {
        let v = &e.vtm;
        if v.code.is_empty() || vtms.contains(&v.code) {
            continue;
        }
        let name = v.display.to_lowercase();
        if codes.contains(&v.code.as_str()) || (!name.is_empty() && names.contains(&name)) {
            vtms.push(v.code.clone());
        }
    }
    let groups: Vec<String> = k
        .allergy_classes
        .iter()
        .filter(|g| {
            g.names.iter().any(|n| names.contains(n))
                || g.codes.iter().any(|x| codes.contains(&x.as_str()))
        })
        .map(|g| g.class.clone())
        .collect();
    let mut classes = groups.clone();
    for v in &vtms {
        if let Some(e) = formulary.of_vtm(v).next() {
            for c in &e.classes {
                if k.allergy_class(c).is_some() && !classes.contains(c) {
                    classes.push(c.clone());
                }
            }
        }
    }
    Allergen {
        vtms,
        groups,
        classes,
        text: crate::fhir::concept_text(c).unwrap_or_else(|| "a substance".to_owned()),
    }
}

/// The substance an allergy's text or display names, lower case: without
/// a finding's wording ("Allergy to penicillin", "Latex allergy") or a
/// SNOMED CT semantic tag ("Amoxicillin (substance)").
pub(super) fn allergen_name(text: &str) -> String {
    let mut t = text.trim().to_lowercase();
    for tag in [" (substance)", " (finding)", " (disorder)", " (product)"] {
        if let Some(s) = t.strip_suffix(tag) {
            t = s.to_owned();
        }
    }
    for prefix in [
        "allergy to ",
        "intolerance to ",
        "allergic to ",
        "hypersensitivity to ",
    ] {
        if let Some(s) = t.strip_prefix(prefix) {
            t = s.to_owned();
        }
    }
    for suffix in [" allergy", " intolerance"] {
        if let Some(s) = t.strip_suffix(suffix) {
            t = s.to_owned();
        }
    }
    t.trim().to_owned()
}

/// An immediate, severe reaction: high criticality, a severe reaction or
/// anaphylaxis.
fn severe(a: &Value) -> bool {
    a["criticality"] == "high"
        || a["reaction"].as_array().into_iter().flatten().any(|r| {
            r["severity"] == "severe"
                || r["manifestation"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| {
                        m["coding"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["system"] == SNOMED_SYSTEM && c["code"] == ANAPHYLAXIS)
                            || crate::fhir::concept_text(m)
                                .is_some_and(|t| t.to_lowercase().contains("anaphyla"))
                    })
        })
}

fn allergies(
    tx: &mut Tx<'_>,
    k: &Knowledge,
    formulary: &Formulary,
    patient: &str,
    med: &Med,
    alerts: &mut Vec<Alert>,
) -> Result<(), MedicinesError> {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("patient", &format!("Patient/{patient}"))
        .append_pair("_count", "500")
        .finish();
    for a in tx.find("AllergyIntolerance", &q).map_err(store)? {
        // The one reading of an allergy in force (issue 20's alerts):
        // refuted, entered in error, ended and "no known allergies"
        // records never screen.
        if !crate::alerts::allergy_in_force(&a) {
            continue;
        }
        let Some(id) = a["id"].as_str() else { continue };
        let reference = format!("AllergyIntolerance/{id}");
        let who = allergen(&a, k, formulary);
        let intolerance = a["type"] == "intolerance";
        let what = if intolerance {
            "intolerance"
        } else {
            "allergy"
        };
        let detail = if severe(&a) {
            " (high criticality or a severe reaction)"
        } else {
            ""
        };
        let direct =
            who.vtms.contains(&med.vtm) || who.groups.iter().any(|g| med.classes.contains(g));
        let class = who
            .classes
            .iter()
            .find(|c| med.classes.contains(c))
            .and_then(|c| k.allergy_class(c));
        let cross = k.cross_sensitivities.iter().find(|x| {
            who.classes.contains(&x.allergy_class) && med.classes.contains(&x.medicine_class)
        });
        let (grade, message) = if direct {
            (
                if intolerance {
                    Grade::Advisory
                } else if severe(&a) {
                    Grade::HardStop
                } else {
                    Grade::Override
                },
                format!(
                    "Recorded {what} to {}{detail}: {} is that substance or of that group.",
                    who.text, med.name
                ),
            )
        } else if let Some(c) = class {
            (
                if intolerance {
                    Grade::Advisory
                } else {
                    Grade::Override
                },
                format!(
                    "Recorded {what} to {}{detail}; {} is also one of the {}.",
                    who.text, med.name, c.name
                ),
            )
        } else if let Some(x) = cross {
            (
                if severe(&a) && !intolerance {
                    Grade::Override
                } else {
                    Grade::Advisory
                },
                format!("Recorded {what} to {}{detail}: {}", who.text, x.message),
            )
        } else {
            continue;
        };
        push(
            alerts,
            Alert {
                key: format!("allergy:{reference}"),
                kind: AlertKind::Allergy,
                grade,
                message,
                implicated: vec![reference],
            },
        );
    }
    Ok(())
}

// --------------------------------------------------- duplicates, interactions

fn duplicates(k: &Knowledge, med: &Med, others: &[Other<'_>], alerts: &mut Vec<Alert>) {
    for o in others {
        let Some(m) = &o.med else { continue };
        let message = if m.vtm == med.vtm {
            format!(
                "{} is already prescribed: {}.",
                capitalised(&med.name),
                o.label()
            )
        } else if let Some(c) = med
            .classes
            .iter()
            .filter(|c| m.classes.contains(c))
            .find_map(|c| k.duplicate_class(c))
        {
            format!(
                "Duplicate therapy: {} is already prescribed, also one of the {}.",
                o.label(),
                c.name
            )
        } else {
            continue;
        };
        push(
            alerts,
            Alert {
                key: format!("duplicate-therapy:{}", o.reference),
                kind: AlertKind::DuplicateTherapy,
                grade: Grade::Override,
                message,
                implicated: vec![o.reference.clone()],
            },
        );
    }
}

fn interactions(k: &Knowledge, med: &Med, others: &[Other<'_>], alerts: &mut Vec<Alert>) {
    for o in others {
        let Some(m) = &o.med else { continue };
        let mut found: Vec<_> = k
            .interactions
            .iter()
            .filter(|i| i.between(med, m))
            .collect();
        if found.is_empty() {
            continue;
        }
        found.sort_by_key(|i| std::cmp::Reverse(i.severity));
        let top = found[0].severity;
        let mut message = format!("Interaction with {}:", o.label());
        for i in found {
            if !message.contains(&i.message) {
                message.push(' ');
                message.push_str(&i.message);
            }
        }
        push(
            alerts,
            Alert {
                key: format!("interaction:{}", o.reference),
                kind: AlertKind::Interaction,
                grade: match top {
                    Severity::Severe => Grade::Override,
                    Severity::Moderate => Grade::Advisory,
                },
                message,
                implicated: vec![o.reference.clone()],
            },
        );
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

// ------------------------------------------------------------ maximum dose

fn maximum_dose(
    rule: &knowledge::MaxDose,
    med: &Med,
    candidate_mg: Option<f64>,
    others: &[Other<'_>],
    kg: Option<f64>,
    weight: &Option<Obs>,
    alerts: &mut Vec<Alert>,
) {
    let key = format!("maximum-dose:{}", med.vtm);
    let name = capitalised(&med.name);
    let Some(mut total) = candidate_mg else {
        push(
            alerts,
            Alert {
                key,
                kind: AlertKind::MaximumDose,
                grade: Grade::Advisory,
                message: format!(
                    "This dose of {} could not be counted in mg: check it against the maximum of {} in 24 hours yourself.",
                    med.name,
                    mg_text(rule.mg_per24h)
                ),
                implicated: Vec::new(),
            },
        );
        return;
    };
    let mut implicated = Vec::new();
    let mut uncounted = 0;
    for o in others {
        if o.med.as_ref().is_none_or(|m| m.vtm != med.vtm) {
            continue;
        }
        implicated.push(o.reference.clone());
        match most_in_24h_mg(&o.mr, o.entry) {
            Some(mg) => total += mg,
            None => uncounted += 1,
        }
    }
    let limit = rule.limit_mg(kg);
    let by_weight = (limit < rule.mg_per24h)
        .then(|| kg.map(|w| format!(" for {w:.0} kg")))
        .flatten()
        .unwrap_or_default();
    let across = if implicated.is_empty() {
        "this prescription".to_owned()
    } else {
        format!(
            "this and {} other current prescription{} (all routes)",
            implicated.len(),
            if implicated.len() == 1 { "" } else { "s" }
        )
    };
    let unc = if uncounted > 0 {
        format!(" ({uncounted} more could not be counted in mg.)")
    } else {
        String::new()
    };
    if total > limit + 1e-6 {
        if let Some(w) = weight.as_ref().filter(|_| !by_weight.is_empty()) {
            implicated.push(w.reference.clone());
        }
        push(
            alerts,
            Alert {
                key,
                kind: AlertKind::MaximumDose,
                grade: Grade::Override,
                message: format!(
                    "{name}: up to {} in 24 hours across {across} exceeds the maximum of {}{by_weight}.{unc}",
                    mg_text(total),
                    mg_text(limit)
                ),
                implicated,
            },
        );
    } else if let (Some(b), None) = (rule.weight_band, kg) {
        push(
            alerts,
            Alert {
                key: format!("maximum-dose:{}:no-weight", med.vtm),
                kind: AlertKind::MaximumDose,
                grade: Grade::Advisory,
                message: format!(
                    "No body weight is recorded: under {:.0} kg the maximum of {} is {:.0} mg/kg in 24 hours.",
                    b.below_kg, med.name, b.mg_per_kg_per24h
                ),
                implicated: Vec::new(),
            },
        );
    } else if uncounted > 0 {
        push(
            alerts,
            Alert {
                key,
                kind: AlertKind::MaximumDose,
                grade: Grade::Advisory,
                message: format!(
                    "{name}: {} in 24 hours counted; {uncounted} other prescription{} could not be counted in mg — check the total against the maximum of {}{by_weight}.",
                    mg_text(total),
                    if uncounted == 1 { "" } else { "s" },
                    mg_text(limit)
                ),
                implicated,
            },
        );
    }
}

// ------------------------------------------------------------------ renal

/// The patient's renal function as the record has it.
struct Renal {
    egfr: Option<Obs>,
    /// Creatinine clearance (Cockcroft–Gault) and the creatinine it came
    /// from; `None` without a creatinine, weight, age or sex.
    crcl: Option<(f64, Obs)>,
    /// Why there is no creatinine clearance, when there is a creatinine.
    no_crcl: Option<&'static str>,
}

impl Renal {
    fn read(
        tx: &mut Tx<'_>,
        patient: &str,
        weight: Option<&Obs>,
        kg: Option<f64>,
        now: time::OffsetDateTime,
    ) -> Result<Renal, MedicinesError> {
        let egfr = latest(tx, patient, &EGFR)?;
        let creat = latest(tx, patient, &[CREATININE])?;
        let mut no_crcl = None;
        let crcl = match creat {
            None => None,
            Some(c) => {
                let p = tx.get("Patient", patient).map_err(store)?;
                let age = p
                    .as_ref()
                    .and_then(|p| p["birthDate"].as_str())
                    .and_then(|b| age_years(b, now.date()));
                let female = p.as_ref().map(|p| p["gender"] != "male");
                match (creatinine_umol(&c), age, kg, female, weight) {
                    (Some(cr), Some(age), Some(kg), Some(female), Some(_)) => {
                        Some((cockcroft_gault(f64::from(age), kg, female, cr), c))
                    }
                    (None, ..) => {
                        no_crcl = Some("the creatinine's unit is not known");
                        None
                    }
                    (_, None, ..) => {
                        no_crcl = Some("no date of birth is recorded");
                        None
                    }
                    _ => {
                        no_crcl = Some("no body weight is recorded");
                        None
                    }
                }
            }
        };
        Ok(Renal {
            egfr,
            crcl,
            no_crcl,
        })
    }
}

/// Whole years from a FHIR date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`) to `today`.
pub(super) fn age_years(birth: &str, today: time::Date) -> Option<i32> {
    let mut parts = birth.get(..10).unwrap_or(birth).split('-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next().map_or(Ok(1), str::parse).ok()?;
    let d: u8 = parts.next().map_or(Ok(1), str::parse).ok()?;
    let mut age = today.year() - y;
    if (u8::from(today.month()), today.day()) < (m, d) {
        age -= 1;
    }
    (0..=150).contains(&age).then_some(age)
}

#[allow(clippy::too_many_arguments)]
fn renal(
    k: &Knowledge,
    r: &Renal,
    rule: &knowledge::RenalRule,
    med: &Med,
    candidate_mg: Option<f64>,
    kg: Option<f64>,
    now: time::OffsetDateTime,
    alerts: &mut Vec<Alert>,
) {
    let name = capitalised(&med.name);
    let egfr = r
        .egfr
        .as_ref()
        .map(|o| (o.value, Measure::Egfr, o, String::new()));
    let crcl = r
        .crcl
        .as_ref()
        .map(|(v, o)| (*v, Measure::Crcl, o, " (Cockcroft–Gault)".to_owned()));
    let chosen = match rule.measure {
        Measure::Crcl => crcl.or_else(|| {
            egfr.map(|(v, m, o, _)| {
                let why = r.no_crcl.unwrap_or("no creatinine is recorded");
                (
                    v,
                    m,
                    o,
                    format!(" (used as creatinine clearance could not be calculated: {why})"),
                )
            })
        }),
        Measure::Egfr => egfr.or(crcl),
    };
    let Some((value, measure, obs, how)) = chosen else {
        push(
            alerts,
            Alert {
                key: "renal:no-result".to_owned(),
                kind: AlertKind::Renal,
                grade: Grade::Advisory,
                message: format!(
                    "No eGFR or creatinine is recorded: {name} has renal dose rules ({}).",
                    summary_of(rule)
                ),
                implicated: Vec::new(),
            },
        );
        return;
    };
    let age_h = (now.unix_timestamp() * 1000 - obs.at_ms) / 3_600_000;
    let stale = age_h > k.renal_result_max_age_hours;
    let when = if stale {
        format!(" on {}, {} days ago", obs.when, age_h / 24)
    } else {
        format!(" on {}", obs.when)
    };
    let unit = match measure {
        Measure::Egfr => "mL/min/1.73 m²",
        Measure::Crcl => "mL/min",
    };
    let Some(band) = rule.band(value) else {
        if stale {
            push(
                alerts,
                Alert {
                    key: "renal:stale".to_owned(),
                    kind: AlertKind::Renal,
                    grade: Grade::Advisory,
                    message: format!(
                        "The latest {} ({value:.0} {unit}{when}) is older than {} hours: {name} has renal dose rules ({}); recheck renal function.",
                        measure.label(),
                        k.renal_result_max_age_hours,
                        summary_of(rule)
                    ),
                    implicated: vec![obs.reference.clone()],
                },
            );
        }
        return;
    };
    let over = |max: Option<f64>| match (max, candidate_mg) {
        (Some(m), Some(mg)) => mg > m + 1e-6,
        _ => false,
    };
    let band_max = band
        .max_mg_per24h
        .into_iter()
        .chain(band.max_mg_per_kg_per24h.and_then(|p| kg.map(|w| p * w)))
        .reduce(f64::min);
    let grade = match band.action {
        Action::Avoid => Grade::Override,
        Action::Reduce if over(band_max) => Grade::Override,
        Action::Reduce | Action::Monitor => Grade::Advisory,
    };
    let max_text = match (band_max, candidate_mg) {
        (Some(m), Some(mg)) if over(band_max) => format!(
            " This prescription is up to {} in 24 hours; the most in this band is {}.",
            mg_text(mg),
            mg_text(m)
        ),
        _ => String::new(),
    };
    push(
        alerts,
        Alert {
            key: format!("renal:{}", obs.reference),
            kind: AlertKind::Renal,
            grade,
            message: format!(
                "{name}: {} {value:.0} {unit}{how}{when} is below {}: {}{max_text}",
                measure.label(),
                band.below,
                band.advice
            ),
            implicated: vec![obs.reference.clone()],
        },
    );
}

fn summary_of(rule: &knowledge::RenalRule) -> String {
    let mut bands: Vec<_> = rule.bands.iter().collect();
    bands.sort_by(|a, b| a.below.total_cmp(&b.below));
    bands
        .iter()
        .map(|b| {
            format!(
                "{} below {}: {}",
                rule.measure.label(),
                b.below,
                match b.action {
                    Action::Avoid => "avoid",
                    Action::Reduce => "reduce the dose",
                    Action::Monitor => "monitor",
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn age_in_whole_years() {
        assert_eq!(age_years("1956-12-02", date!(2026 - 12 - 02)), Some(70));
        assert_eq!(age_years("1956-12-03", date!(2026 - 12 - 02)), Some(69));
        assert_eq!(age_years("1956", date!(2026 - 12 - 02)), Some(70));
        assert_eq!(age_years("nonsense", date!(2026 - 12 - 02)), None);
    }

    #[test]
    fn allergen_names_lose_the_wording_of_a_finding() {
        assert_eq!(allergen_name("Allergy to penicillin"), "penicillin");
        assert_eq!(allergen_name("Latex allergy"), "latex");
        assert_eq!(allergen_name("Amoxicillin (substance)"), "amoxicillin");
        assert_eq!(allergen_name(" Penicillins "), "penicillins");
        assert_eq!(allergen_name("Intolerance to codeine"), "codeine");
    }

    #[test]
    fn alerts_with_one_key_fold_into_one() {
        let a = |grade, m: &str, i: &str| Alert {
            key: "renal:Observation/1".into(),
            kind: AlertKind::Renal,
            grade,
            message: m.into(),
            implicated: vec![i.into()],
        };
        let mut v = Vec::new();
        push(&mut v, a(Grade::Advisory, "monitor.", "Observation/1"));
        push(&mut v, a(Grade::Override, "avoid.", "Observation/1"));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].grade, Grade::Override);
        assert_eq!(v[0].message, "monitor. avoid.");
        assert_eq!(v[0].implicated, vec!["Observation/1".to_owned()]);
    }

    #[test]
    fn an_allergy_is_severe_by_criticality_severity_or_anaphylaxis() {
        use serde_json::json;
        assert!(severe(&json!({"criticality": "high"})));
        assert!(!severe(&json!({"criticality": "low"})));
        assert!(severe(&json!({"reaction": [{"severity": "severe"}]})));
        assert!(severe(
            &json!({"reaction": [{"manifestation": [{"coding": [{"system": SNOMED_SYSTEM, "code": ANAPHYLAXIS}]}]}]})
        ));
        assert!(severe(
            &json!({"reaction": [{"manifestation": [{"text": "Anaphylactic shock"}]}]})
        ));
        assert!(!severe(
            &json!({"reaction": [{"manifestation": [{"text": "rash"}]}]})
        ));
    }
}
