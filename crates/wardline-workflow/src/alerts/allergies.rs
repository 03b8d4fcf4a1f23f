//! Allergies and adverse reactions: record, verify, refute, enter in
//! error, and "no known allergies" (see the model in [`super`]).
//!
//! * Recording makes an `AllergyIntolerance` `active` and `unconfirmed`
//!   (or `confirmed` when the recorder says it is and may confirm); a
//!   substance from the formulary is coded (dm+d VTM/VMP as the formulary
//!   has it), one given as a SNOMED CT code is coded so; anything else is
//!   free text, `code.text` with [`FREE_TEXT_EXT`].
//! * Recording an allergy ends an active "no known allergies" statement
//!   (`inactive`), and "no known allergies" is refused while an allergy is
//!   in force — the two never stand together.
//! * Verify: `unconfirmed` → `confirmed`. Refute: → `refuted` with the
//!   reason in a `note`; the clinical status is removed (FHIR's invariant
//!   ait-1). Entered in error: the verification `entered-in-error`, the
//!   clinical status removed. Neither screens prescriptions again
//!   ([`super::allergy_in_force`]).
//! * Each action locks `alerts-allergy/{patient}` and is audited
//!   `alerts-allergy`.

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::{
    AlertsError, CLINICAL_SYSTEM, FREE_TEXT_EXT, NO_KNOWN_ALLERGY, SNOMED_SYSTEM,
    VERIFICATION_SYSTEM, allergy_in_force, begin, code_of, fhir_time, is_no_known_allergy,
    patient_in,
};

/// A substance as the form gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Substance {
    /// A coded substance: (system, code, display).
    Coded(String, String, String),
    /// Free text (marked as such).
    Text(String),
}

impl Substance {
    /// The substance as typed, coded where it can be: a SNOMED CT concept
    /// id when one is given (digits), otherwise the formulary's dm+d VTM
    /// (the substance) whose name is the text (ignoring case), otherwise
    /// free text.
    pub fn from_input(
        formulary: &crate::medicines::formulary::Formulary,
        text: &str,
        snomed: &str,
    ) -> Substance {
        let (text, snomed) = (text.trim(), snomed.trim());
        if !snomed.is_empty() && snomed.bytes().all(|b| b.is_ascii_digit()) {
            return Substance::Coded(SNOMED_SYSTEM.into(), snomed.into(), text.into());
        }
        let lower = text.to_lowercase();
        if !lower.is_empty()
            && let Some(e) = formulary.search_all(text, true).into_iter().find(|e| {
                !e.vtm.is_local() && !e.vtm.code.is_empty() && e.vtm.display.to_lowercase() == lower
            })
        {
            return Substance::Coded(
                crate::medicines::DMD_SYSTEM.into(),
                e.vtm.code.clone(),
                e.vtm.display.clone(),
            );
        }
        Substance::Text(text.to_owned())
    }
}

/// What is recorded of an allergy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAllergy {
    pub substance: Substance,
    /// `allergy` | `intolerance`.
    pub kind: String,
    /// The reaction, in words ("Urticaria", "Anaphylaxis"); optional.
    pub reaction: Option<String>,
    /// `mild` | `moderate` | `severe`.
    pub severity: Option<String>,
    /// `low` | `high` | `unable-to-assess`.
    pub criticality: Option<String>,
    /// Recorded as confirmed (needs a position that may confirm).
    pub confirmed: bool,
}

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}], "text": display})
}

/// The substance's `code`, and whether it is free text.
fn code_for(s: &Substance) -> Result<(Value, bool), AlertsError> {
    match s {
        Substance::Coded(system, code, display) if !code.trim().is_empty() => {
            Ok((concept(system, code.trim(), display.trim()), false))
        }
        Substance::Text(t) if !t.trim().is_empty() => Ok((json!({"text": t.trim()}), true)),
        _ => Err(AlertsError::Invalid(
            "substance",
            "Enter the substance the patient is allergic to.".into(),
        )),
    }
}

/// Records an allergy (audited `alerts-allergy`); returns its id.
pub fn record(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    a: &NewAllergy,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    let mut tx = begin(svc, access, "alerts-allergy", "C")?;
    let id = record_in(&mut tx, patient, a, now)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of recording, in `tx`.
pub fn record_in(
    tx: &mut Tx<'_>,
    patient: &str,
    a: &NewAllergy,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    let (code, free) = code_for(&a.substance)?;
    let opt = |v: &Option<String>,
               ok: &[&str],
               field: &'static str|
     -> Result<Option<String>, AlertsError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) if ok.contains(&s) => Ok(Some(s.to_owned())),
            Some(s) => Err(AlertsError::Invalid(
                field,
                format!("'{s}' is not one of {}.", ok.join(", ")),
            )),
        }
    };
    let severity = opt(&a.severity, &["mild", "moderate", "severe"], "severity")?;
    let criticality = opt(
        &a.criticality,
        &["low", "high", "unable-to-assess"],
        "criticality",
    )?;
    let kind = opt(&Some(a.kind.clone()), &["allergy", "intolerance"], "kind")?
        .unwrap_or_else(|| "allergy".into());
    tx.lock(&[format!("alerts-allergy/{patient}")])?;
    patient_in(tx, patient)?;
    let existing = tx.find(
        "AllergyIntolerance",
        &format!("patient=Patient/{patient}&_count=500"),
    )?;
    for mut nka in existing
        .into_iter()
        .filter(|x| is_no_known_allergy(x) && code_of(&x["clinicalStatus"]) == Some("active"))
    {
        nka["clinicalStatus"] = concept(CLINICAL_SYSTEM, "inactive", "Inactive");
        tx.save(nka)?;
    }
    let verification = if a.confirmed {
        "confirmed"
    } else {
        "unconfirmed"
    };
    let mut r = json!({
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": concept(CLINICAL_SYSTEM, "active", "Active"),
        "verificationStatus": concept(VERIFICATION_SYSTEM, verification, if a.confirmed { "Confirmed" } else { "Unconfirmed" }),
        "type": kind,
        "code": code,
        "patient": {"reference": format!("Patient/{patient}")},
        "recordedDate": fhir_time(now),
    });
    if free {
        r["extension"] = json!([{"url": FREE_TEXT_EXT, "valueBoolean": true}]);
    }
    if let Some(c) = criticality {
        r["criticality"] = json!(c);
    }
    if a.reaction.as_deref().is_some_and(|x| !x.trim().is_empty()) || severity.is_some() {
        let mut reaction = json!({});
        if let Some(m) = a
            .reaction
            .as_deref()
            .map(str::trim)
            .filter(|x| !x.is_empty())
        {
            reaction["manifestation"] = json!([{"text": m}]);
        } else {
            reaction["manifestation"] = json!([{"text": "Not recorded"}]);
        }
        if let Some(s) = severity {
            reaction["severity"] = json!(s);
        }
        r["reaction"] = json!([reaction]);
    }
    if let Some(who) = tx.access().agent().who.clone() {
        r["recorder"] = json!({"reference": who});
    }
    Ok(tx.save(r)?.id)
}

/// Records "no known allergies" (audited `alerts-allergy`); returns its id.
pub fn no_known_allergies(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    let mut tx = begin(svc, access, "alerts-allergy", "C")?;
    let id = no_known_allergies_in(&mut tx, patient, now)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of "no known allergies", in `tx`: refused while an allergy is
/// in force; at most one active statement.
pub fn no_known_allergies_in(
    tx: &mut Tx<'_>,
    patient: &str,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    tx.lock(&[format!("alerts-allergy/{patient}")])?;
    patient_in(tx, patient)?;
    let existing = tx.find(
        "AllergyIntolerance",
        &format!("patient=Patient/{patient}&_count=500"),
    )?;
    if existing.iter().any(allergy_in_force) {
        return Err(AlertsError::Conflict(
            "An allergy is recorded and in force: refute it or mark it entered in error first."
                .into(),
        ));
    }
    if let Some(nka) = existing
        .iter()
        .find(|x| is_no_known_allergy(x) && code_of(&x["clinicalStatus"]) == Some("active"))
    {
        return Ok(nka["id"].as_str().unwrap_or_default().to_owned());
    }
    let mut r = json!({
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": concept(CLINICAL_SYSTEM, "active", "Active"),
        "verificationStatus": concept(VERIFICATION_SYSTEM, "confirmed", "Confirmed"),
        "code": concept(SNOMED_SYSTEM, NO_KNOWN_ALLERGY, "No known allergy"),
        "patient": {"reference": format!("Patient/{patient}")},
        "recordedDate": fhir_time(now),
    });
    if let Some(who) = tx.access().agent().who.clone() {
        r["recorder"] = json!({"reference": who});
    }
    Ok(tx.save(r)?.id)
}

/// What is done to an allergy record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `unconfirmed` → `confirmed`.
    Verify,
    /// → `refuted`, with the reason.
    Refute(String),
    /// → `entered-in-error`, with the reason (optional).
    EnteredInError(Option<String>),
}

/// Verifies, refutes or enters in error the allergy `id` (audited
/// `alerts-allergy`).
pub fn change(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    c: &Change,
    now: OffsetDateTime,
) -> Result<(), AlertsError> {
    let mut tx = begin(svc, access, "alerts-allergy", "U")?;
    change_in(&mut tx, id, c, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of changing an allergy's verification, in `tx`.
pub fn change_in(
    tx: &mut Tx<'_>,
    id: &str,
    c: &Change,
    now: OffsetDateTime,
) -> Result<(), AlertsError> {
    let a = tx.get("AllergyIntolerance", id)?.ok_or_else(|| {
        AlertsError::NotFound(format!("There is no allergy record with id {id}."))
    })?;
    let patient = a["patient"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Patient/"))
        .unwrap_or_default()
        .to_owned();
    tx.lock(&[format!("alerts-allergy/{patient}")])?;
    let mut a = tx.get("AllergyIntolerance", id)?.unwrap_or(a);
    let from = code_of(&a["verificationStatus"])
        .unwrap_or("unconfirmed")
        .to_owned();
    if from == "entered-in-error" {
        return Err(AlertsError::Conflict(
            "This allergy record was entered in error: it cannot be changed.".into(),
        ));
    }
    let note = |a: &mut Value, text: &str, by: Option<&str>| {
        let mut n = json!({"text": text, "time": fhir_time(now)});
        if let Some(w) = by {
            n["authorReference"] = json!({"reference": w});
        }
        match a.get_mut("note").and_then(Value::as_array_mut) {
            Some(ns) => ns.push(n),
            None => a["note"] = json!([n]),
        }
    };
    let by = tx.access().agent().who.clone();
    match c {
        Change::Verify => {
            if from != "unconfirmed" {
                return Err(AlertsError::Conflict(format!(
                    "Only an unconfirmed allergy is verified; this one is {from}."
                )));
            }
            a["verificationStatus"] = concept(VERIFICATION_SYSTEM, "confirmed", "Confirmed");
        }
        Change::Refute(reason) => {
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(AlertsError::Invalid(
                    "reason",
                    "Give the reason the allergy is refuted.".into(),
                ));
            }
            if from == "refuted" {
                return Err(AlertsError::Conflict(
                    "This allergy is already refuted.".into(),
                ));
            }
            a["verificationStatus"] = concept(VERIFICATION_SYSTEM, "refuted", "Refuted");
            a.as_object_mut().map(|o| o.remove("clinicalStatus"));
            note(&mut a, &format!("Refuted: {reason}"), by.as_deref());
        }
        Change::EnteredInError(reason) => {
            a["verificationStatus"] =
                concept(VERIFICATION_SYSTEM, "entered-in-error", "Entered in Error");
            a.as_object_mut().map(|o| o.remove("clinicalStatus"));
            let r = reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
            note(
                &mut a,
                &format!(
                    "Entered in error{}",
                    r.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                by.as_deref(),
            );
        }
    }
    tx.save(a)?;
    Ok(())
}

/// An allergy record as the alerts page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllergyLine {
    pub id: String,
    pub substance: String,
    pub free_text: bool,
    pub coded: Option<String>,
    pub verification: String,
    pub clinical: Option<String>,
    pub criticality: Option<String>,
    pub reaction: Option<String>,
    pub severity: Option<String>,
    pub no_known: bool,
    pub in_force: bool,
    pub notes: Vec<String>,
}

impl AllergyLine {
    pub fn of(a: &Value) -> AllergyLine {
        let s = |v: &Value| v.as_str().map(str::to_owned);
        AllergyLine {
            id: s(&a["id"]).unwrap_or_default(),
            substance: crate::fhir::concept_text(&a["code"]).unwrap_or_else(|| "Allergy".into()),
            free_text: a["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["url"] == FREE_TEXT_EXT && e["valueBoolean"] == true),
            coded: a["code"]["coding"][0]["code"].as_str().map(|c| {
                format!(
                    "{} {c}",
                    if a["code"]["coding"][0]["system"] == SNOMED_SYSTEM {
                        "SNOMED CT"
                    } else {
                        "dm+d"
                    }
                )
            }),
            verification: code_of(&a["verificationStatus"])
                .unwrap_or("unconfirmed")
                .to_owned(),
            clinical: code_of(&a["clinicalStatus"]).map(str::to_owned),
            criticality: s(&a["criticality"]),
            reaction: crate::fhir::concept_text(&a["reaction"][0]["manifestation"][0]),
            severity: s(&a["reaction"][0]["severity"]),
            no_known: is_no_known_allergy(a),
            in_force: allergy_in_force(a),
            notes: a["note"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| s(&n["text"]))
                .collect(),
        }
    }
}

/// The patient's allergy records (in force first), as `access` may see them.
pub fn of_patient(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<Vec<AllergyLine>, AlertsError> {
    let found = svc.search_as(
        access,
        "AllergyIntolerance",
        &[
            ("patient", patient.to_owned()),
            ("_count", "500".to_owned()),
        ],
    )?;
    let mut out: Vec<AllergyLine> = found.resources.iter().map(AllergyLine::of).collect();
    out.sort_by_key(|l| !l.in_force);
    Ok(out)
}
