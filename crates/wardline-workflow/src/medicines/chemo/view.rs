//! What the pages and the cancer centre are shown of a cycle: the cycle
//! with its doses, checks and verifications ([`view`]), a patient's cycles
//! ([`patient_cycles`]) and the cycle as a FHIR Bundle ([`share_bundle`]).

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::bsa::{self, Bsa};
use super::cycle::{
    Check, Measure, R, Verification, VerifyAs, begin, checks_in, ext_subs, is_chemo, latest_in,
    prescriber_key, prescriptions_of, stamp, sub, sub_f64, sub_str, verifications,
};
use super::*;
use crate::medicines::MedicinesError;

/// A dose as saved on its prescription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SavedDose {
    pub prescription: String,
    pub status: String,
    pub medicine: String,
    pub dose_mg: f64,
    pub text: String,
    pub basis: String,
    pub reduction: Option<(f64, String)>,
    pub banded: Option<f64>,
    pub steps: String,
}

/// A delay as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delay {
    pub reason: String,
    pub from: String,
    pub to: String,
    pub at: String,
}

/// A cycle as its page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CycleView {
    pub id: String,
    pub patient: String,
    pub title: String,
    pub regimen_url: String,
    pub number: Option<u32>,
    pub status: String,
    pub start: String,
    pub prescriber: String,
    pub prescriber_key: String,
    pub bsa: Option<f64>,
    pub bsa_formula: String,
    pub bsa_uncapped: Option<f64>,
    pub bsa_capped: bool,
    pub bsa_mosteller: Option<f64>,
    pub bsa_dubois: Option<f64>,
    pub height: Option<(f64, String)>,
    pub weight: Option<(f64, String)>,
    pub gfr: Option<f64>,
    pub doses: Vec<SavedDose>,
    pub checks: Vec<Check>,
    pub verifications: Vec<Verification>,
    pub delays: Vec<Delay>,
    pub overrides: Vec<String>,
    /// Why the cycle was revoked ([`super::revoke`]), if it was.
    pub revoked: Option<String>,
}

impl CycleView {
    pub fn verified(&self, role: VerifyAs) -> Option<&Verification> {
        self.verifications.iter().find(|v| v.role == role)
    }

    /// Whether release would pass its checks now (both verifications and
    /// every check).
    pub fn releasable(&self) -> bool {
        matches!(self.status.as_str(), "draft" | "on-hold")
            && self.verified(VerifyAs::Clinical).is_some()
            && self.verified(VerifyAs::Pharmacy).is_some()
            && self.checks.iter().all(|c| c.passed)
    }
}

/// The cycle number on a CarePlan.
pub fn cycle_number(cp: &Value) -> Option<u32> {
    ext_subs(cp, CYCLE_EXT)
        .first()
        .and_then(|s| sub(s, "number"))
        .and_then(|e| e["valueInteger"].as_u64())
        .and_then(|n| u32::try_from(n).ok())
}

fn view_in(tx: &mut Tx<'_>, config: &ChemoConfig, cp: &Value) -> R<CycleView> {
    let s: &[Value] = ext_subs(cp, CYCLE_EXT).first().copied().unwrap_or(&[]);
    let mut doses = Vec::new();
    for id in prescriptions_of(cp) {
        let Some(mr) = tx.get("MedicationRequest", &id)? else {
            continue;
        };
        let c: &[Value] = ext_subs(&mr, DOSE_CALC_EXT).first().copied().unwrap_or(&[]);
        let pct = sub_f64(c, "reductionPercent").unwrap_or(0.0);
        doses.push(SavedDose {
            prescription: id,
            status: mr["status"].as_str().unwrap_or_default().to_owned(),
            medicine: mr["medicationReference"]["display"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            dose_mg: mr["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
                .as_f64()
                .unwrap_or_default(),
            text: mr["dosageInstruction"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            basis: sub_str(c, "basis").unwrap_or_default().to_owned(),
            reduction: (pct > 0.0).then(|| {
                (
                    pct,
                    sub_str(c, "reductionReason").unwrap_or_default().to_owned(),
                )
            }),
            banded: sub_f64(c, "banded"),
            steps: sub_str(c, "steps").unwrap_or_default().to_owned(),
        });
    }
    let checks = if matches!(cp["status"].as_str(), Some("draft" | "on-hold")) {
        checks_in(tx, config, cp)?
    } else {
        Vec::new()
    };
    let delays = ext_subs(cp, DELAY_EXT)
        .into_iter()
        .map(|d| Delay {
            reason: sub_str(d, "reason").unwrap_or_default().to_owned(),
            from: sub_str(d, "from").unwrap_or_default().to_owned(),
            to: sub_str(d, "to").unwrap_or_default().to_owned(),
            at: sub_str(d, "at").unwrap_or_default().to_owned(),
        })
        .collect();
    let dt = |n: &str| {
        sub_str(s, n)
            .map(|d| d.get(..10).unwrap_or(d).to_owned())
            .unwrap_or_default()
    };
    Ok(CycleView {
        id: cp["id"].as_str().unwrap_or_default().to_owned(),
        patient: crate::fhir::reference_id(&cp["subject"], "Patient")
            .unwrap_or_default()
            .to_owned(),
        title: cp["title"].as_str().unwrap_or_default().to_owned(),
        regimen_url: cp["instantiatesCanonical"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        number: cycle_number(cp),
        status: cp["status"].as_str().unwrap_or_default().to_owned(),
        start: cp["period"]["start"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        prescriber: cp["author"]["display"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        prescriber_key: prescriber_key(cp),
        bsa: sub_f64(s, "bsa"),
        bsa_formula: sub_str(s, "bsaFormula")
            .and_then(bsa::Formula::parse)
            .map(|f| f.label().to_owned())
            .unwrap_or_default(),
        bsa_uncapped: sub_f64(s, "bsaUncapped"),
        bsa_capped: sub(s, "bsaCapped").is_some_and(|e| e["valueBoolean"] == true),
        bsa_mosteller: sub_f64(s, "bsaMosteller"),
        bsa_dubois: sub_f64(s, "bsaDuBois"),
        height: sub_f64(s, "heightCm").map(|h| (h, dt("heightDate"))),
        weight: sub_f64(s, "weightKg").map(|w| (w, dt("weightDate"))),
        gfr: sub_f64(s, "gfrUsed"),
        doses,
        checks,
        verifications: verifications(cp),
        delays,
        revoked: ext_subs(cp, super::revoke::REVOKE_EXT)
            .first()
            .and_then(|r| sub_str(r, "reason"))
            .map(str::to_owned),
        overrides: ext_subs(cp, CUMULATIVE_OVERRIDE_EXT)
            .into_iter()
            .map(|o| {
                format!(
                    "{}: {}",
                    sub_str(o, "class").unwrap_or_default(),
                    sub_str(o, "reason").unwrap_or_default()
                )
            })
            .collect(),
    })
}

/// A cycle as its page shows it (read as the caller, `chemo-view`).
pub fn view(
    svc: &FhirService,
    access: &dyn Access,
    config: &ChemoConfig,
    careplan: &str,
) -> R<CycleView> {
    let mut tx = begin(svc, access, "chemo-view", "R")?;
    tx.audit_reads();
    let cp = tx
        .get("CarePlan", careplan)?
        .filter(is_chemo)
        .ok_or_else(|| MedicinesError::NotFound(format!("No chemotherapy cycle '{careplan}'.")))?;
    if let Some(p) = crate::fhir::reference_id(&cp["subject"], "Patient") {
        tx.audit_record().patients.insert(p.to_owned());
    }
    let v = view_in(&mut tx, config, &cp)?;
    tx.commit()?;
    Ok(v)
}

/// A patient's cycles, newest day 1 first, with the latest height and
/// weight and the BSA they give (for the prescribing page).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientChemo {
    pub cycles: Vec<CycleView>,
    pub height: Option<Measure>,
    pub weight: Option<Measure>,
    pub bsa: Option<Result<Bsa, String>>,
}

/// [`PatientChemo`] read as the caller (`chemo-view`).
pub fn patient_cycles(
    svc: &FhirService,
    access: &dyn Access,
    config: &ChemoConfig,
    patient: &str,
) -> R<PatientChemo> {
    let mut tx = begin(svc, access, "chemo-view", "R")?;
    tx.audit_reads();
    tx.audit_record().patients.insert(patient.to_owned());
    let mut cycles = Vec::new();
    for cp in tx.find("CarePlan", &format!("subject=Patient/{patient}"))? {
        if is_chemo(&cp) {
            cycles.push(view_in(&mut tx, config, &cp)?);
        }
    }
    cycles.sort_by(|a, b| b.start.cmp(&a.start).then(b.number.cmp(&a.number)));
    let height = latest_in(&mut tx, patient, HEIGHT_LOINC, "cm")?;
    let weight = latest_in(&mut tx, patient, WEIGHT_LOINC, "kg")?;
    let bsa = match (&height, &weight) {
        (Some(h), Some(w)) => Some(bsa::compute(
            h.value,
            w.value,
            config.bsa_formula,
            config.bsa_cap,
        )),
        _ => None,
    };
    tx.commit()?;
    Ok(PatientChemo {
        cycles,
        height,
        weight,
        bsa,
    })
}

// ------------------------------------------------------------------ sharing

/// The cycle as a `collection` Bundle for the cancer centre: the CarePlan,
/// its MedicationRequests and their Medications, the regimen's
/// PlanDefinition, the Patient and the Observations it was calculated
/// from, read in the transaction as its caller.
pub fn share_bundle_in(tx: &mut Tx<'_>, careplan: &str, base: &str) -> R<Value> {
    let cp = tx
        .get("CarePlan", careplan)?
        .filter(is_chemo)
        .ok_or_else(|| MedicinesError::NotFound(format!("No chemotherapy cycle '{careplan}'.")))?;
    let mut entries: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut push = |r: Value, entries: &mut Vec<Value>| {
        let key = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default()
        );
        if seen.insert(key.clone()) {
            entries.push(json!({"fullUrl": format!("{base}/{key}"), "resource": r}));
        }
    };
    let patient = crate::fhir::reference_id(&cp["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    if let Some(p) = tx.get("Patient", &patient)? {
        push(p, &mut entries);
    }
    let canonical = cp["instantiatesCanonical"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut others = Vec::new();
    for id in prescriptions_of(&cp) {
        if let Some(mr) = tx.get("MedicationRequest", &id)? {
            if let Some(m) = crate::fhir::reference_id(&mr["medicationReference"], "Medication")
                && let Some(med) = tx.get("Medication", m)?
            {
                others.push(med);
            }
            others.push(mr);
        }
    }
    for s in cp["supportingInfo"].as_array().cloned().unwrap_or_default() {
        if let Some(o) = crate::fhir::reference_id(&s, "Observation")
            && let Some(obs) = tx.get("Observation", o)?
        {
            others.push(obs);
        }
    }
    push(cp, &mut entries);
    if let Some(id) = canonical.strip_prefix(REGIMEN_URL_BASE)
        && let Some(pd) = tx.get("PlanDefinition", id)?
    {
        push(pd, &mut entries);
    }
    for o in others {
        push(o, &mut entries);
    }
    tx.audit_record().patients.insert(patient);
    Ok(json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": stamp(OffsetDateTime::now_utc()),
        "entry": entries,
    }))
}

/// [`share_bundle_in`] in one audited read (`chemo-share`).
pub fn share_bundle(
    svc: &FhirService,
    access: &dyn Access,
    careplan: &str,
    base: &str,
) -> R<Value> {
    let mut tx = begin(svc, access, "chemo-share", "R")?;
    tx.audit_reads();
    let b = share_bundle_in(&mut tx, careplan, base)?;
    tx.commit()?;
    Ok(b)
}
