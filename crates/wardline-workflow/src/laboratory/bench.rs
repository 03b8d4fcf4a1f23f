//! The bench: result entry, technical validation with delta checks, and
//! authorisation (see the module documentation of [`super`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::delta;
use super::{
    DELTA_CHECK_EXT, DeltaFinding, FILLER_ORDER, LABORATORY_AUTHORISATION_EXT, LabError,
    OBSERVATION_CATEGORY, SPECIMEN_ID, TECHNICAL_VALIDATION_EXT, actor, begin, code_key,
    code_matches, ext, identifier, is_lab_record, lock, remove_ext, set_ext, signoff_ext,
    signoff_of, stamp, tag,
};
use crate::fhir::{UCUM, concept_text, reference_id};
use crate::orders::catalogue::{Analyte, Catalogue, Orderable};
use crate::pmi::PatientSummary;

// ---------------------------------------------------------------- types

/// What result entry did.
#[derive(Debug, Clone, Serialize)]
pub struct Entered {
    pub report: String,
    /// partial or preliminary.
    pub status: String,
    /// The Observations written (id per analyte code key).
    pub observations: Vec<(String, String)>,
}

/// What validation did.
#[derive(Debug, Clone, Serialize)]
pub struct Validated {
    pub report: String,
    /// The delta checks that failed and were confirmed.
    pub confirmed: Vec<DeltaFinding>,
}

/// What authorisation did.
#[derive(Debug, Clone, Serialize)]
pub struct Authorised {
    pub report: String,
    /// Inbox Tasks the release created.
    pub notified: Vec<String>,
}

/// Who signed a step off, and when.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Signoff {
    /// `Practitioner/…` (or the user name).
    pub who: String,
    pub name: String,
    pub at: String,
}

/// One analyte of a report on the bench.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyteRow {
    /// `system|code`.
    pub code: String,
    pub display: String,
    pub unit: Option<String>,
    /// "3.5–5.3".
    pub range: Option<String>,
    pub value: Option<String>,
    /// v3 ObservationInterpretation: N, L, H, LL, HH.
    pub flag: Option<String>,
    pub critical: bool,
    pub abnormal: bool,
    /// The reason a failed delta check was accepted.
    pub delta_confirmed: Option<String>,
}

/// A report as the bench sees it.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    pub id: String,
    pub accession: String,
    pub title: String,
    pub status: String,
    pub patient: PatientSummary,
    pub barcode: Option<String>,
    pub container: Option<String>,
    pub received: Option<String>,
    pub requester: Option<String>,
    pub priority: Option<String>,
    pub clinical_details: Option<String>,
    pub rows: Vec<AnalyteRow>,
    pub validated: Option<Signoff>,
    pub authorised: Option<Signoff>,
    /// Delta checks failing now (before validation; confirmed ones included).
    pub deltas: Vec<DeltaFinding>,
}

impl LabReport {
    pub fn is_authorised(&self) -> bool {
        self.authorised.is_some()
            || matches!(self.status.as_str(), "final" | "amended" | "corrected")
    }
}

// ---------------------------------------------------------------- context

/// A report with its request and the analytes its test produces.
struct Work<'c> {
    dr: Value,
    sr: Value,
    analytes: &'c [Analyte],
    patient: String,
}

pub(super) fn orderable_of<'c>(catalogue: &'c Catalogue, sr: &Value) -> Option<&'c Orderable> {
    sr["instantiatesCanonical"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|u| catalogue.by_url(u))
        .or_else(|| {
            catalogue.orderables.iter().find(|o| {
                o.code["coding"].as_array().into_iter().flatten().any(|c| {
                    code_matches(
                        &sr["code"],
                        &format!(
                            "{}|{}",
                            c["system"].as_str().unwrap_or_default(),
                            c["code"].as_str().unwrap_or_default()
                        ),
                    )
                })
            })
        })
}

fn load<'c>(
    tx: &mut Tx<'_>,
    catalogue: &'c Catalogue,
    report: &str,
    lock_it: bool,
) -> Result<Work<'c>, LabError> {
    if lock_it {
        lock(tx, &[format!("DiagnosticReport/{report}")])?;
    }
    let dr = tx
        .get("DiagnosticReport", report)?
        .ok_or_else(|| LabError::not_found(format!("There is no report {report}.")))?;
    if !is_lab_record(&dr) {
        return Err(LabError::conflict(
            "This report did not come from Wardline's laboratory (it was received from another system), so it is not worked on the bench.",
        ));
    }
    let sr_id = dr["basedOn"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|r| reference_id(r, "ServiceRequest"))
        .ok_or_else(|| LabError::conflict("The report names no request."))?
        .to_owned();
    let sr = tx.get("ServiceRequest", &sr_id)?.ok_or_else(|| {
        LabError::conflict(format!("The report's request {sr_id} is not on record."))
    })?;
    let analytes = orderable_of(catalogue, &sr)
        .map(|o| o.analytes.as_slice())
        .unwrap_or(&[]);
    if analytes.is_empty() {
        return Err(LabError::conflict(format!(
            "The catalogue lists no results for {}: add its analytes to the catalogue first.",
            concept_text(&sr["code"]).unwrap_or_else(|| "this test".into())
        )));
    }
    let patient = reference_id(&dr["subject"], "Patient")
        .ok_or_else(|| LabError::conflict("The report names no patient."))?
        .to_owned();
    Ok(Work {
        dr,
        sr,
        analytes,
        patient,
    })
}

fn results_of(tx: &mut Tx<'_>, dr: &Value) -> Result<Vec<Value>, LabError> {
    let mut out = Vec::new();
    for r in dr["result"].as_array().into_iter().flatten() {
        if let Some(id) = reference_id(r, "Observation")
            && let Some(o) = tx.get("Observation", id)?
        {
            out.push(o);
        }
    }
    Ok(out)
}

/// Why a report can no longer be worked on the bench (it was authorised).
pub(super) fn authorised_reason(dr: &Value) -> Option<String> {
    if let Some((_, name, at)) = signoff_of(dr, LABORATORY_AUTHORISATION_EXT) {
        return Some(format!("It was already authorised by {name} at {at}."));
    }
    matches!(
        dr["status"].as_str(),
        Some("final" | "amended" | "corrected")
    )
    .then(|| "It is already final.".to_owned())
}

fn check_open(dr: &Value) -> Result<(), LabError> {
    if let Some(why) = authorised_reason(dr) {
        return Err(LabError::conflict(format!(
            "The report cannot be changed on the bench: {why} A change now is a correction."
        )));
    }
    if matches!(
        dr["status"].as_str(),
        Some("cancelled" | "entered-in-error")
    ) {
        return Err(LabError::conflict("The report was cancelled."));
    }
    Ok(())
}

// ---------------------------------------------------------------- values

/// A result as typed: a decimal number (`5.2`, `-0.4`, `140`), kept as
/// written (FHIR decimals keep their precision). No exponent, sign `+`,
/// `NaN` or infinity.
pub fn parse_number(text: &str) -> Option<(f64, Value)> {
    let t = text.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !ok || t.len() > 24 {
        return None;
    }
    let x: f64 = t.parse().ok()?;
    let v: Value = serde_json::from_str(t).ok()?;
    x.is_finite().then_some((x, v))
}

fn quantity(value: Value, unit: &str) -> Value {
    json!({"value": value, "unit": crate::fhir::ucum_print(unit), "system": UCUM, "code": unit})
}

fn numeric_value(o: &Value) -> Option<f64> {
    let v = &o["valueQuantity"]["value"];
    v.as_f64().or_else(|| v.to_string().parse().ok())
}

fn value_text(o: &Value) -> Option<String> {
    if o["valueQuantity"].is_object() {
        return Some(o["valueQuantity"]["value"].to_string());
    }
    o["valueString"].as_str().map(str::to_owned)
}

fn flag_of(o: &Value) -> Option<String> {
    o["interpretation"][0]["coding"][0]["code"]
        .as_str()
        .map(str::to_owned)
}

fn analyte_of<'a>(analytes: &'a [Analyte], o: &Value) -> Option<&'a Analyte> {
    analytes.iter().find(|a| {
        a.code["coding"].as_array().into_iter().flatten().any(|c| {
            code_matches(
                &o["code"],
                &format!(
                    "{}|{}",
                    c["system"].as_str().unwrap_or_default(),
                    c["code"].as_str().unwrap_or_default()
                ),
            )
        })
    })
}

// ---------------------------------------------------------------- entry

/// Enters results for a report now: `values` are (analyte code — `code`
/// or `system|code` — , value as typed).
pub fn enter_results(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    report: &str,
    values: &[(String, String)],
) -> Result<Entered, LabError> {
    enter_results_at(svc, access, catalogue, report, values, svc.now())
}

/// [`enter_results`] at a given time.
pub fn enter_results_at(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    report: &str,
    values: &[(String, String)],
    now: OffsetDateTime,
) -> Result<Entered, LabError> {
    let mut tx = begin(svc, access, "lab-enter", "U")?;
    let e = enter_results_in(&mut tx, catalogue, report, values, now)?;
    tx.commit()?;
    Ok(e)
}

/// [`enter_results`] inside a transaction. A value left empty is not
/// entered (the analyte keeps what it had); an unknown analyte code, or a
/// value that is not a number for an analyte with a unit, is refused naming
/// it. Entering withdraws an earlier technical validation (the values it
/// vouched for changed).
pub fn enter_results_in(
    tx: &mut Tx<'_>,
    catalogue: &Catalogue,
    report: &str,
    values: &[(String, String)],
    now: OffsetDateTime,
) -> Result<Entered, LabError> {
    let Work {
        mut dr,
        sr,
        analytes,
        patient,
    } = load(tx, catalogue, report, true)?;
    check_open(&dr)?;
    let mut existing = results_of(tx, &dr)?;
    let specimen = dr["specimen"][0].clone();
    let effective = match dr["effectiveDateTime"].as_str() {
        Some(e) => e.to_owned(),
        None => {
            let received = reference_id(&specimen, "Specimen")
                .map(str::to_owned)
                .map(|id| tx.get("Specimen", &id))
                .transpose()?
                .flatten()
                .and_then(|s| s["receivedTime"].as_str().map(str::to_owned));
            received.unwrap_or_else(|| stamp(now))
        }
    };
    let gender = tx
        .get("Patient", &patient)?
        .and_then(|p| p["gender"].as_str().map(str::to_owned));
    let mut written = Vec::new();
    let mut any = false;
    for (code, text) in values {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let a = analytes
            .iter()
            .find(|a| code_matches(&a.code, code))
            .ok_or_else(|| {
                LabError::invalid(format!(
                    "Analyte {code}: {} does not produce it (it produces {}).",
                    concept_text(&sr["code"]).unwrap_or_else(|| "this test".into()),
                    analytes
                        .iter()
                        .map(|a| a.display.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let mut o = match existing
            .iter()
            .position(|o| analyte_of(analytes, o).is_some_and(|x| std::ptr::eq(x, a)))
        {
            Some(i) => existing.remove(i),
            None => json!({"resourceType": "Observation"}),
        };
        o["status"] = json!("preliminary");
        o["category"] = json!([{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}]);
        o["code"] = a.code.clone();
        o["subject"] = json!({"reference": format!("Patient/{patient}")});
        o["basedOn"] = json!([{"reference": format!("ServiceRequest/{}", sr["id"].as_str().unwrap_or_default())}]);
        o["specimen"] = specimen.clone();
        o["effectiveDateTime"] = json!(effective);
        if let Some(e) = dr.get("encounter") {
            o["encounter"] = e.clone();
        }
        if let Some(obj) = o.as_object_mut() {
            for k in [
                "valueQuantity",
                "valueString",
                "interpretation",
                "referenceRange",
            ] {
                obj.remove(k);
            }
        }
        remove_ext(&mut o, DELTA_CHECK_EXT);
        // The range that applies to the patient's sex.
        let a = &a.for_sex(gender.as_deref());
        match (&a.unit, parse_number(text)) {
            (Some(unit), Some((x, v))) => {
                o["valueQuantity"] = quantity(v, unit);
                o["interpretation"] = json!([a.interpret(x).concept()]);
                let rr = a.reference_range();
                if !rr.is_empty() {
                    o["referenceRange"] = json!(rr);
                }
            }
            (Some(unit), None) => {
                return Err(LabError::invalid(format!(
                    "{}: '{text}' is not a number (in {unit}). Type the value as a decimal, for example 4.2.",
                    a.display
                )));
            }
            (None, Some((x, v))) if a.low.is_some() || a.high.is_some() => {
                o["valueQuantity"] = json!({"value": v});
                o["interpretation"] = json!([a.interpret(x).concept()]);
            }
            (None, _) => {
                if text.chars().count() > 1000 {
                    return Err(LabError::invalid(format!(
                        "{}: the result is longer than 1,000 characters.",
                        a.display
                    )));
                }
                o["valueString"] = json!(text);
            }
        }
        tag(&mut o);
        let saved = tx.save(o)?;
        written.push((code_key(&a.code), saved.id.clone()));
        let r = json!({"reference": format!("Observation/{}", saved.id)});
        if !dr["result"].as_array().is_some_and(|rs| rs.contains(&r)) {
            if !dr["result"].is_array() {
                dr["result"] = json!([]);
            }
            if let Some(rs) = dr["result"].as_array_mut() {
                rs.push(r);
            }
        }
        any = true;
    }
    if !any {
        return Err(LabError::invalid("Results: enter at least one value."));
    }
    let all = results_of(tx, &dr)?;
    let complete = analytes.iter().all(|a| {
        all.iter().any(|o| {
            analyte_of(analytes, o).is_some_and(|x| std::ptr::eq(x, a)) && value_text(o).is_some()
        })
    });
    dr["status"] = json!(if complete { "preliminary" } else { "partial" });
    remove_ext(&mut dr, TECHNICAL_VALIDATION_EXT);
    let status = dr["status"].as_str().unwrap_or_default().to_owned();
    tx.save(dr)?;
    Ok(Entered {
        report: report.to_owned(),
        status,
        observations: written,
    })
}

// ---------------------------------------------------------------- delta checks

/// The delta checks of a report's results against the patient's previous
/// final result of each analyte (failed ones only).
fn deltas_in(
    tx: &mut Tx<'_>,
    work: &Work<'_>,
    results: &[Value],
) -> Result<Vec<(DeltaFinding, String)>, LabError> {
    let mut out = Vec::new();
    let here: Vec<&str> = results.iter().filter_map(|o| o["id"].as_str()).collect();
    for o in results {
        let Some(a) = analyte_of(work.analytes, o) else {
            continue;
        };
        let limit = delta::limit_of(a);
        let Some(current) = numeric_value(o) else {
            continue;
        };
        if !limit.is_set() {
            continue;
        }
        let key = code_key(&a.code);
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("patient", &format!("Patient/{}", work.patient))
            .append_pair("code", &key)
            .append_pair("status", "final,amended,corrected")
            .append_pair("_sort", "-date")
            .append_pair("_count", "10")
            .finish();
        let previous = tx
            .find("Observation", &q)?
            .into_iter()
            .find(|p| !here.contains(&p["id"].as_str().unwrap_or_default()));
        let Some(p) = previous else { continue };
        let Some(prev) = numeric_value(&p) else {
            continue;
        };
        let d = delta::check(a, prev, current);
        if d.exceeded {
            out.push((
                DeltaFinding {
                    code: key,
                    display: a.display.clone(),
                    unit: a.unit.clone(),
                    delta: d,
                    limit,
                    previous_observation: p["id"].as_str().unwrap_or_default().to_owned(),
                    previous_at: p["effectiveDateTime"].as_str().map(str::to_owned),
                },
                o["id"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- validation

/// Technically validates a report now. `confirmations` maps an analyte code
/// (`code` or `system|code`) to the reason a failed delta check is accepted.
pub fn validate(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    report: &str,
    confirmations: &BTreeMap<String, String>,
) -> Result<Validated, LabError> {
    validate_at(svc, access, catalogue, report, confirmations, svc.now())
}

/// [`validate`] at a given time.
pub fn validate_at(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    report: &str,
    confirmations: &BTreeMap<String, String>,
    now: OffsetDateTime,
) -> Result<Validated, LabError> {
    let mut tx = begin(svc, access, "lab-validate", "U")?;
    let v = validate_in(&mut tx, catalogue, report, confirmations, now)?;
    tx.commit()?;
    Ok(v)
}

/// [`validate`] inside a transaction.
pub fn validate_in(
    tx: &mut Tx<'_>,
    catalogue: &Catalogue,
    report: &str,
    confirmations: &BTreeMap<String, String>,
    now: OffsetDateTime,
) -> Result<Validated, LabError> {
    let work = load(tx, catalogue, report, true)?;
    check_open(&work.dr)?;
    match work.dr["status"].as_str() {
        Some("preliminary") => {}
        _ => {
            return Err(LabError::conflict(
                "Enter every result of the report before validating it.",
            ));
        }
    }
    if let Some((_, name, at)) = signoff_of(&work.dr, TECHNICAL_VALIDATION_EXT) {
        return Err(LabError::conflict(format!(
            "The report was already validated by {name} at {at}."
        )));
    }
    let results = results_of(tx, &work.dr)?;
    let failed = deltas_in(tx, &work, &results)?;
    let reason_for = |f: &DeltaFinding| {
        let bare = f.code.split_once('|').map(|(_, c)| c).unwrap_or(&f.code);
        confirmations
            .get(&f.code)
            .or_else(|| confirmations.get(bare))
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
    };
    let unconfirmed: Vec<DeltaFinding> = failed
        .iter()
        .filter(|(f, _)| reason_for(f).is_none())
        .map(|(f, _)| f.clone())
        .collect();
    if !unconfirmed.is_empty() {
        return Err(LabError::deltas_unconfirmed(unconfirmed));
    }
    let (by, _) = actor(tx.access());
    let at = stamp(now);
    let mut confirmed = Vec::new();
    for (f, obs_id) in failed {
        let reason = reason_for(&f).unwrap_or_default();
        let Some(mut o) = results.iter().find(|o| o["id"] == obs_id.as_str()).cloned() else {
            continue;
        };
        let mut e = signoff_ext(DELTA_CHECK_EXT, &by, &at);
        if let Some(subs) = e["extension"].as_array_mut() {
            subs.push(json!({"url": "previous", "valueReference": {"reference": format!("Observation/{}", f.previous_observation)}}));
            subs.push(json!({"url": "reason", "valueString": reason}));
        }
        set_ext(&mut o, e);
        tx.save(o)?;
        confirmed.push(f);
    }
    let mut dr = work.dr;
    set_ext(&mut dr, signoff_ext(TECHNICAL_VALIDATION_EXT, &by, &at));
    tx.save(dr)?;
    Ok(Validated {
        report: report.to_owned(),
        confirmed,
    })
}

// ---------------------------------------------------------------- authorisation

/// Authorises a validated report now and releases it to the requester.
pub fn authorise(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    report: &str,
) -> Result<Authorised, LabError> {
    authorise_at(svc, access, catalogue, report, svc.now())
}

/// [`authorise`] at a given time.
pub fn authorise_at(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    report: &str,
    now: OffsetDateTime,
) -> Result<Authorised, LabError> {
    let mut tx = begin(svc, access, "lab-authorise", "U")?;
    let a = authorise_in(&mut tx, catalogue, report, now)?;
    tx.commit()?;
    Ok(a)
}

/// [`authorise`] inside a transaction.
pub fn authorise_in(
    tx: &mut Tx<'_>,
    catalogue: &Catalogue,
    report: &str,
    now: OffsetDateTime,
) -> Result<Authorised, LabError> {
    let work = load(tx, catalogue, report, true)?;
    if let Some(why) = authorised_reason(&work.dr) {
        return Err(LabError::conflict(format!(
            "A result is authorised once: {why}"
        )));
    }
    check_open(&work.dr)?;
    let Some((validator, vname, _)) = signoff_of(&work.dr, TECHNICAL_VALIDATION_EXT) else {
        return Err(LabError::conflict(
            "The report must be technically validated by a biomedical scientist before it is authorised.",
        ));
    };
    let (by, me) = actor(tx.access());
    if validator == me {
        return Err(LabError::conflict(format!(
            "You ({vname}) validated this report: a different person must authorise it."
        )));
    }
    let at = stamp(now);
    let mut observations = Vec::new();
    for mut o in results_of(tx, &work.dr)? {
        o["status"] = json!("final");
        o["issued"] = json!(at);
        observations.push(o);
    }
    let mut dr = work.dr;
    dr["status"] = json!("final");
    dr["issued"] = json!(at);
    dr["resultsInterpreter"] = json!([by]);
    set_ext(&mut dr, signoff_ext(LABORATORY_AUTHORISATION_EXT, &by, &at));
    let notified = release_in(tx, dr, observations, now)?;
    let mut sr = work.sr;
    if crate::orders::set_status(&mut sr, "completed")? {
        tx.save(sr)?;
    }
    Ok(Authorised {
        report: report.to_owned(),
        notified,
    })
}

/// Releases the authorised report: through the results core, the one home
/// of result status rules, which saves it with its results and tells the
/// requester's inbox (a critical value first).
fn release_in(
    tx: &mut Tx<'_>,
    dr: Value,
    observations: Vec<Value>,
    now: OffsetDateTime,
) -> Result<Vec<String>, LabError> {
    let received = crate::results::receive_in(
        tx,
        crate::results::Incoming {
            report: dr,
            observations,
            source: crate::results::Source::Laboratory,
        },
        now,
    )?;
    Ok(received.notified)
}

// ---------------------------------------------------------------- the view

/// A report as the bench sees it (read as the caller, audited).
pub fn report(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    id: &str,
) -> Result<LabReport, LabError> {
    let mut tx = begin(svc, access, "lab-report", "R")?;
    tx.audit_reads();
    let work = load(&mut tx, catalogue, id, false)?;
    let results = results_of(&mut tx, &work.dr)?;
    let deltas: Vec<DeltaFinding> = if work.dr["status"] == "final" {
        Vec::new()
    } else {
        deltas_in(&mut tx, &work, &results)?
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    };
    let pat = tx
        .get("Patient", &work.patient)?
        .map(|p| PatientSummary::from_resource(&p))
        .ok_or_else(|| LabError::not_found("The report's patient is not on record."))?;
    let spec = match work.dr["specimen"][0].clone() {
        s if s.is_object() => match reference_id(&s, "Specimen") {
            Some(sid) => tx.get("Specimen", sid)?,
            None => None,
        },
        _ => None,
    };
    let rows = work
        .analytes
        .iter()
        .map(|a| {
            let o = results
                .iter()
                .find(|o| analyte_of(work.analytes, o).is_some_and(|x| std::ptr::eq(x, a)));
            let flag = o.and_then(flag_of);
            AnalyteRow {
                code: code_key(&a.code),
                display: a.display.clone(),
                unit: a.unit.clone(),
                range: a.for_sex(pat.gender.as_deref()).range_text(),
                value: o.and_then(value_text),
                critical: matches!(flag.as_deref(), Some("LL" | "HH")),
                abnormal: matches!(flag.as_deref(), Some("L" | "H" | "LL" | "HH")),
                flag,
                delta_confirmed: o.and_then(|o| ext(o, DELTA_CHECK_EXT)).and_then(|e| {
                    e["extension"]
                        .as_array()?
                        .iter()
                        .find(|x| x["url"] == "reason")?["valueString"]
                        .as_str()
                        .map(str::to_owned)
                }),
            }
        })
        .collect();
    let signoff =
        |url: &str| signoff_of(&work.dr, url).map(|(who, name, at)| Signoff { who, name, at });
    let view = LabReport {
        id: id.to_owned(),
        accession: identifier(&work.dr, FILLER_ORDER)
            .unwrap_or_default()
            .to_owned(),
        title: concept_text(&work.dr["code"]).unwrap_or_default(),
        status: work.dr["status"].as_str().unwrap_or_default().to_owned(),
        patient: pat,
        barcode: spec
            .as_ref()
            .and_then(|s| identifier(s, SPECIMEN_ID))
            .map(str::to_owned),
        container: spec
            .as_ref()
            .and_then(|s| s["container"][0]["type"]["text"].as_str())
            .map(str::to_owned),
        received: spec
            .as_ref()
            .and_then(|s| s["receivedTime"].as_str())
            .map(str::to_owned),
        requester: work.sr["requester"]["display"]
            .as_str()
            .or_else(|| work.sr["requester"]["reference"].as_str())
            .map(str::to_owned),
        priority: work.sr["priority"].as_str().map(str::to_owned),
        clinical_details: work.sr["note"][0]["text"].as_str().map(str::to_owned),
        rows,
        validated: signoff(TECHNICAL_VALIDATION_EXT),
        authorised: signoff(LABORATORY_AUTHORISATION_EXT),
        deltas,
    };
    tx.commit()?;
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_as_typed() {
        assert_eq!(parse_number("4.20").unwrap().1.to_string(), "4.20");
        assert_eq!(parse_number(" -0.5 ").unwrap().0, -0.5);
        assert_eq!(parse_number("140").unwrap().0, 140.0);
        for bad in [
            "", "NaN", "inf", "1e5", "+5", "4.", ".5", "4,2", "5 mmol/L", "--1",
        ] {
            assert!(parse_number(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        /// Any decimal a person types round-trips to the same value and
        /// keeps its text; anything with another character is refused.
        #[test]
        fn decimals_roundtrip(neg in any::<bool>(), int in 0u32..1_000_000, frac in proptest::option::of("[0-9]{1,6}")) {
            let text = format!("{}{int}{}", if neg { "-" } else { "" }, frac.as_deref().map(|f| format!(".{f}")).unwrap_or_default());
            let (x, v) = parse_number(&text).unwrap();
            prop_assert_eq!(v.to_string(), text.clone());
            prop_assert!((x - text.parse::<f64>().unwrap()).abs() < 1e-9);
        }

        #[test]
        fn junk_is_refused(s in "[0-9.]{0,4}[a-zA-Z ,+eE][0-9.]{0,4}") {
            let t = s.trim();
            // A trailing or leading space alone is trimmed, not junk.
            if t.chars().all(|c| c.is_ascii_digit() || c == '.') { return Ok(()); }
            prop_assert!(parse_number(&s).is_none(), "{s}");
        }
    }
}
