//! The pathology laboratory's workflow, and the radiology department's
//! vetting of imaging requests (issue 16).
//!
//! # The model (FHIR R4, in the one store)
//!
//! A requisition placed on the ward (`orders::request`) is one
//! `ServiceRequest` per test and one `Specimen` per tube, whose identifier
//! `{WL/Id/specimen, "{requisition}-{k}"}` is what the label's barcode
//! encodes. The laboratory then works like this:
//!
//! 1. **Reception** ([`receive_specimen`]): the tube's barcode is scanned;
//!    the `Specimen` gets `receivedTime` and the extension
//!    [`RECEIVED_BY_EXT`] (who), and for each `ServiceRequest` in the tube
//!    one `DiagnosticReport` is registered: `status` `registered`,
//!    `basedOn` the request, `subject`, `specimen`, `code` the request's,
//!    `category` LAB, and the laboratory's accession number as the filler
//!    identifier `{WL/Id/filler-order, "L" + 7 digits}` (a sequence kept
//!    in the transaction). The requests stay `active`.
//! 2. **Result entry** ([`enter_results`], or a file from an analyser,
//!    [`import_csv`]): one `Observation` per analyte of the test (the
//!    catalogue's `ObservationDefinition`s): `status` `preliminary`,
//!    `valueQuantity` in the analyte's UCUM unit, `referenceRange`, and
//!    `interpretation` (v3 ObservationInterpretation N/L/H/LL/HH) computed
//!    by `catalogue::Analyte::interpret` — the one place flags are made.
//!    The report is `partial` until every analyte has a value, then
//!    `preliminary`. Entering again replaces the values (a new version:
//!    the history keeps the earlier one) and withdraws any validation.
//! 3. **Technical validation** ([`validate`]) by a biomedical scientist:
//!    every analyte is compared with the patient's previous final result
//!    of the same code ([`delta`]); a change beyond the analyte's delta
//!    limit must be confirmed with a reason (kept on the Observation as
//!    [`DELTA_CHECK_EXT`]), else the validation is refused listing them.
//!    The report gets [`TECHNICAL_VALIDATION_EXT`] (who, when).
//! 4. **Authorisation** ([`authorise`]) by a clinical scientist or
//!    consultant, **not the person who validated it**: the report becomes
//!    `final` with `issued`, `resultsInterpreter` and
//!    [`LABORATORY_AUTHORISATION_EXT`]; its Observations `final`; it is
//!    released through `results::receive_in` (the one home of result status
//!    rules and inbox notification), and the request becomes `completed`
//!    through the order lifecycle (`orders::set_status`). A report is
//!    authorised once: a second authorisation is refused (409), a change
//!    after release is a correction, which goes through the results core.
//! 5. **Turnaround** ([`turnaround()`]): per test, received → authorised,
//!    count, median and 90th percentile (nearest rank), for the laboratory's
//!    managers.
//!
//! Everything the laboratory creates carries the `meta.tag`
//! [`LABORATORY_TAG`]: the access policy then lets only laboratory staff
//! write those records, and only those who authorise write them once
//! authorised (`wardline_auth::rbac::laboratory_record_permitted`), so no
//! channel can make a bench result final without the workflow. Laboratory
//! staff have a care relationship with a patient while a laboratory
//! request of theirs is open (`rbac::request_relates`).
//!
//! **Radiology** ([`radiology`]): a worklist of open imaging requests with
//! the referrer's answers (clinical indication, pregnancy, contrast, eGFR,
//! the IR(ME)R clinical question), and the radiographer's justification
//! under IR(ME)R 2017 recorded as a `Task` (see that module).
//!
//! # Rules, and why they hold under concurrency
//!
//! Each action is one transaction ([`FhirService::begin`], audited with a
//! subtype `lab-…`) that first locks the record it decides on (the
//! Specimen at reception, the DiagnosticReport at the bench) and reads it
//! again after the lock, so two scans of one tube, or two authorisations of
//! one report, take turns and the second sees the first: receipt twice is
//! refused naming when and by whom, authorisation twice likewise.
//! Reception refuses a tube whose requests name another patient than the
//! tube (a wrong-patient specimen is never resulted).

pub mod analyser;
mod bench;
pub mod delta;
pub mod radiology;
pub mod turnaround;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

use crate::fhir::{concept_text, reference_id};
use crate::pmi::PatientSummary;

pub use analyser::{AnalyserRow, ImportReport, import_csv, import_csv_at, import_in, parse_csv};
pub use bench::{
    AnalyteRow, Authorised, Entered, LabReport, Signoff, Validated, authorise, authorise_at,
    authorise_in, enter_results, enter_results_at, enter_results_in, parse_number, report,
    validate, validate_at, validate_in,
};
pub use delta::{Delta, DeltaLimit};
pub use turnaround::{TurnaroundRow, percentile, turnaround, turnaround_svg};

/// The base of Wardline's own systems.
const WL: &str = "https://fhir.wardline.invalid";
/// The specimen identifier system; the label's barcode is its value.
pub const SPECIMEN_ID: &str = "https://fhir.wardline.invalid/Id/specimen";
/// The filler order number: the laboratory's accession number.
pub const FILLER_ORDER: &str = "https://fhir.wardline.invalid/Id/filler-order";
/// Who received a specimen (`valueReference`).
pub const RECEIVED_BY_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/received-by";
/// A report's technical validation: sub-extensions `by` (valueReference)
/// and `at` (valueDateTime).
pub const TECHNICAL_VALIDATION_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/technical-validation";
/// A report's authorisation (same shape as the validation).
pub const LABORATORY_AUTHORISATION_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/laboratory-authorisation";
/// A failed delta check confirmed on an Observation: sub-extensions
/// `previous` (valueReference to the earlier Observation),
/// `previous-value` (valueQuantity), `reason` (valueString), `by`, `at`.
pub const DELTA_CHECK_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/delta-check-confirmed";
/// The tag of every record the laboratory keeps.
pub const LABORATORY_TAG: (&str, &str) = (
    "https://fhir.wardline.invalid/CodeSystem/record-keeper",
    "laboratory",
);
/// v3 ObservationInterpretation.
pub const INTERPRETATION: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const DIAGNOSTIC_SERVICE: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

// ---------------------------------------------------------------- errors

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LabErrorKind {
    /// The request is wrong (400).
    Invalid,
    /// 404: no such specimen (barcode) or report.
    NotFound,
    /// The record's state does not allow it (409).
    Conflict,
    /// Delta checks failed and were not confirmed (409, listed in
    /// [`LabError::deltas`]).
    DeltaUnconfirmed,
    /// 403.
    Forbidden,
    /// Another transaction changed the record at the same moment (409).
    Concurrent,
    /// Wardline failed (500).
    Store,
}

/// A failed delta check, as the bench is shown it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeltaFinding {
    /// The analyte's code (`system|code`).
    pub code: String,
    pub display: String,
    pub unit: Option<String>,
    pub delta: Delta,
    pub limit: DeltaLimit,
    /// The previous result's Observation id and when it was taken.
    pub previous_observation: String,
    pub previous_at: Option<String>,
}

impl DeltaFinding {
    pub fn sentence(&self) -> String {
        let u = self
            .unit
            .as_deref()
            .map(|u| format!(" {u}"))
            .unwrap_or_default();
        format!(
            "{}: {}{u} now, {}{u} before{} — a change of {}{u} is more than the delta limit ({})",
            self.display,
            delta::trim(self.delta.current),
            delta::trim(self.delta.previous),
            self.previous_at
                .as_deref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default(),
            delta::trim(self.delta.change),
            self.limit.describe(self.unit.as_deref()),
        )
    }
}

/// A refusal or failure, with a sentence to show.
#[derive(Debug, Clone, Serialize)]
pub struct LabError {
    pub kind: LabErrorKind,
    pub message: String,
    /// The failed delta checks, for [`LabErrorKind::DeltaUnconfirmed`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaFinding>,
}

impl LabError {
    fn of(kind: LabErrorKind, m: impl Into<String>) -> LabError {
        LabError {
            kind,
            message: m.into(),
            deltas: Vec::new(),
        }
    }
    pub fn invalid(m: impl Into<String>) -> LabError {
        LabError::of(LabErrorKind::Invalid, m)
    }
    pub fn not_found(m: impl Into<String>) -> LabError {
        LabError::of(LabErrorKind::NotFound, m)
    }
    pub fn conflict(m: impl Into<String>) -> LabError {
        LabError::of(LabErrorKind::Conflict, m)
    }
    pub fn forbidden(m: impl Into<String>) -> LabError {
        LabError::of(LabErrorKind::Forbidden, m)
    }
    pub fn store(m: impl Into<String>) -> LabError {
        LabError::of(LabErrorKind::Store, m)
    }
    pub fn deltas_unconfirmed(deltas: Vec<DeltaFinding>) -> LabError {
        LabError {
            kind: LabErrorKind::DeltaUnconfirmed,
            message: format!(
                "Delta check failed — confirm each with a reason before validating: {}.",
                deltas
                    .iter()
                    .map(DeltaFinding::sentence)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            deltas,
        }
    }

    /// The HTTP status that fits.
    pub fn status(&self) -> u16 {
        match self.kind {
            LabErrorKind::Invalid => 400,
            LabErrorKind::NotFound => 404,
            LabErrorKind::Conflict | LabErrorKind::DeltaUnconfirmed | LabErrorKind::Concurrent => {
                409
            }
            LabErrorKind::Forbidden => 403,
            LabErrorKind::Store => 500,
        }
    }
}

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LabError {}

impl From<FhirError> for LabError {
    fn from(e: FhirError) -> LabError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "record") {
            R::Forbidden(m) => LabError::forbidden(m),
            R::NotFound(m) => LabError::not_found(m),
            R::Concurrent(m) => LabError::of(LabErrorKind::Concurrent, m),
            R::Invalid(m) => LabError::invalid(m),
            R::Store(m) => LabError::store(m),
        }
    }
}

impl From<crate::results::ResultsError> for LabError {
    fn from(e: crate::results::ResultsError) -> LabError {
        use crate::results::ResultsError as R;
        match e {
            R::Invalid(m) => LabError::invalid(m),
            R::NotFound(m) => LabError::not_found(m),
            R::Forbidden(m) => LabError::forbidden(m),
            R::Conflict(m) => LabError::conflict(m),
            R::Store(m) => LabError::store(m),
        }
    }
}

impl From<crate::orders::LifecycleError> for LabError {
    fn from(e: crate::orders::LifecycleError) -> LabError {
        LabError::conflict(e.message)
    }
}

// ---------------------------------------------------------------- helpers

/// `2026-03-05T14:30:00Z`: the instant, to the second, in UTC.
pub fn stamp(now: OffsetDateTime) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, LabError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

/// The caller as a reference (their Practitioner when they are one) and a
/// name to show; the key compared when one person may not do two steps.
pub(crate) fn actor(access: &dyn Access) -> (Value, String) {
    let a = access.agent();
    let r = match &a.who {
        Some(w) => json!({"reference": w, "display": a.name}),
        None => json!({"display": a.name}),
    };
    (r, a.key().into_owned())
}

/// A complex extension `{url, extension: [by, at]}`.
pub(crate) fn signoff_ext(url: &str, by: &Value, at: &str) -> Value {
    json!({"url": url, "extension": [
        {"url": "by", "valueReference": by},
        {"url": "at", "valueDateTime": at},
    ]})
}

/// `(who, when)` of a sign-off extension, if the resource has it: who is
/// the reference (or the display when there is none).
pub(crate) fn signoff_of(r: &Value, url: &str) -> Option<(String, String, String)> {
    let e = ext(r, url)?;
    let sub = |k: &str| {
        e["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["url"] == k)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let by = sub("by");
    let at = sub("at")["valueDateTime"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = by["valueReference"]["reference"]
        .as_str()
        .or_else(|| by["valueReference"]["display"].as_str())
        .unwrap_or_default()
        .to_owned();
    let name = by["valueReference"]["display"]
        .as_str()
        .unwrap_or(&key)
        .to_owned();
    Some((key, name, at))
}

pub(crate) fn ext<'a>(r: &'a Value, url: &str) -> Option<&'a Value> {
    r["extension"].as_array()?.iter().find(|e| e["url"] == url)
}

pub(crate) fn set_ext(r: &mut Value, e: Value) {
    let url = e["url"].clone();
    if !r["extension"].is_array() {
        r["extension"] = json!([]);
    }
    if let Some(a) = r["extension"].as_array_mut() {
        a.retain(|x| x["url"] != url);
        a.push(e);
    }
}

pub(crate) fn remove_ext(r: &mut Value, url: &str) {
    if let Some(a) = r.get_mut("extension").and_then(Value::as_array_mut) {
        a.retain(|x| x["url"] != url);
        if a.is_empty()
            && let Some(o) = r.as_object_mut()
        {
            o.remove("extension");
        }
    }
}

pub(crate) fn tag(r: &mut Value) {
    let t = json!({"system": LABORATORY_TAG.0, "code": LABORATORY_TAG.1});
    if !r["meta"]["tag"].is_array() {
        r["meta"]["tag"] = json!([]);
    }
    if let Some(a) = r["meta"]["tag"].as_array_mut()
        && !a.contains(&t)
    {
        a.push(t);
    }
}

pub(crate) fn is_lab_record(r: &Value) -> bool {
    r["meta"]["tag"].as_array().is_some_and(|ts| {
        ts.iter()
            .any(|t| t["system"] == LABORATORY_TAG.0 && t["code"] == LABORATORY_TAG.1)
    })
}

pub(crate) fn identifier<'a>(r: &'a Value, system: &str) -> Option<&'a str> {
    r["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == system)?["value"]
        .as_str()
}

fn lock(tx: &mut Tx<'_>, keys: &[String]) -> Result<(), LabError> {
    Ok(tx.lock(keys)?)
}

/// The key of a code: the first coding's `system|code` (or its text).
pub fn code_key(code: &Value) -> String {
    code["coding"]
        .as_array()
        .and_then(|cs| cs.first())
        .map(|c| {
            format!(
                "{}|{}",
                c["system"].as_str().unwrap_or_default(),
                c["code"].as_str().unwrap_or_default()
            )
        })
        .or_else(|| code["text"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Whether `key` (`system|code`, or a bare code) names a coding of `code`.
pub fn code_matches(code: &Value, key: &str) -> bool {
    let key = key.trim();
    code["coding"].as_array().into_iter().flatten().any(|c| {
        let (s, k) = (
            c["system"].as_str().unwrap_or_default(),
            c["code"].as_str().unwrap_or_default(),
        );
        !k.is_empty()
            && match key.split_once('|') {
                Some((ks, kc)) => ks == s && kc == k,
                None => key == k,
            }
    })
}

fn accession(tx: &mut Tx<'_>) -> Result<String, LabError> {
    const NS: &str = "laboratory";
    const SEQ: &str = "accession-last";
    lock(tx, &["laboratory:accession".to_owned()])?;
    let mut n: u64 = tx
        .kv_get(NS, SEQ)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    loop {
        n += 1;
        let value = format!("L{n:07}");
        // Numbers loaded from elsewhere (a migration) are never reused.
        let used = tx.find(
            "DiagnosticReport",
            &format!("identifier={FILLER_ORDER}|{value}&_count=1"),
        )?;
        if used.is_empty() {
            tx.kv_put(NS, SEQ, &n.to_string())?;
            return Ok(value);
        }
    }
}

// ---------------------------------------------------------------- reception

/// A report line of a received tube.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportLine {
    pub report: String,
    pub accession: String,
    pub title: String,
    pub status: String,
}

/// A received specimen: the patient to check against the tube, and the
/// reports registered for it.
#[derive(Debug, Clone, Serialize)]
pub struct Reception {
    pub specimen: String,
    pub barcode: String,
    pub patient: PatientSummary,
    pub container: Option<String>,
    pub received: String,
    pub reports: Vec<ReportLine>,
}

/// Receives the tube whose label reads `barcode`, now.
pub fn receive_specimen(
    svc: &FhirService,
    access: &dyn Access,
    barcode: &str,
) -> Result<Reception, LabError> {
    receive_specimen_at(svc, access, barcode, svc.now())
}

/// [`receive_specimen`] at a given time.
pub fn receive_specimen_at(
    svc: &FhirService,
    access: &dyn Access,
    barcode: &str,
    now: OffsetDateTime,
) -> Result<Reception, LabError> {
    let mut tx = begin(svc, access, "lab-receive", "U")?;
    let r = receive_specimen_in(&mut tx, barcode, now)?;
    tx.commit()?;
    Ok(r)
}

/// The barcode as scanned: a scanner may add a newline or spaces; the
/// identifier itself is `R` + digits + `-` + digits.
pub fn clean_barcode(barcode: &str) -> Result<String, LabError> {
    let b = barcode.trim();
    if b.is_empty() {
        return Err(LabError::invalid(
            "Barcode: scan the specimen label or type the number under the barcode.",
        ));
    }
    if b.len() > 64 || b.chars().any(|c| c.is_control() || c == '|' || c == ',') {
        return Err(LabError::invalid(format!(
            "Barcode: '{}' is not a specimen number.",
            b.chars().take(64).collect::<String>()
        )));
    }
    Ok(b.to_owned())
}

/// [`receive_specimen`] inside a transaction.
pub fn receive_specimen_in(
    tx: &mut Tx<'_>,
    barcode: &str,
    now: OffsetDateTime,
) -> Result<Reception, LabError> {
    let barcode = clean_barcode(barcode)?;
    let at = stamp(now);
    lock(
        tx,
        &[crate::pmi::lookup_key("Specimen", SPECIMEN_ID, &barcode)],
    )?;
    let found = tx.find(
        "Specimen",
        &format!(
            "identifier={}&_count=2",
            form_urlencoded::byte_serialize(format!("{SPECIMEN_ID}|{barcode}").as_bytes())
                .collect::<String>()
        ),
    )?;
    let mut specimen = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(LabError::not_found(format!(
                "No specimen has the barcode {barcode}. Check the label; a tube without a request is not received."
            )));
        }
        _ => {
            return Err(LabError::conflict(format!(
                "More than one specimen has the barcode {barcode}: do not process it, and report it."
            )));
        }
    };
    let sid = specimen["id"].as_str().unwrap_or_default().to_owned();
    lock(tx, &[format!("Specimen/{sid}")])?;
    specimen = tx
        .get("Specimen", &sid)?
        .ok_or_else(|| LabError::not_found(format!("Specimen {barcode} was removed.")))?;
    if let Some(when) = specimen["receivedTime"].as_str() {
        let by = ext(&specimen, RECEIVED_BY_EXT)
            .and_then(|e| e["valueReference"]["display"].as_str())
            .map(|n| format!(" by {n}"))
            .unwrap_or_default();
        return Err(LabError::conflict(format!(
            "Specimen {barcode} was already received at {when}{by}."
        )));
    }
    if matches!(
        specimen["status"].as_str(),
        Some("unavailable" | "unsatisfactory" | "entered-in-error")
    ) {
        return Err(LabError::conflict(format!(
            "Specimen {barcode} is marked {}: it cannot be received.",
            specimen["status"].as_str().unwrap_or_default()
        )));
    }
    let patient = reference_id(&specimen["subject"], "Patient")
        .map(str::to_owned)
        .ok_or_else(|| {
            LabError::conflict(format!(
                "Specimen {barcode} does not name its patient: it cannot be received."
            ))
        })?;
    let pat = tx.get("Patient", &patient)?.ok_or_else(|| {
        LabError::not_found(format!(
            "The patient of specimen {barcode} is not on record."
        ))
    })?;
    let mut requests = Vec::new();
    for r in specimen["request"].as_array().into_iter().flatten() {
        let Some(id) = reference_id(r, "ServiceRequest") else {
            continue;
        };
        let sr = tx.get("ServiceRequest", id)?.ok_or_else(|| {
            LabError::conflict(format!(
                "Specimen {barcode} names request {id}, which is not on record."
            ))
        })?;
        // A tube labelled for one patient with another's request is a
        // wrong-patient specimen: never resulted (H-088).
        if reference_id(&sr["subject"], "Patient") != Some(patient.as_str()) {
            return Err(LabError::conflict(format!(
                "Specimen {barcode} and its request {} name different patients: do not process it; reject the sample and ask for a new one.",
                identifier(&sr, &format!("{WL}/Id/placer-order")).unwrap_or(id)
            )));
        }
        requests.push(sr);
    }
    let open: Vec<&Value> = requests
        .iter()
        .filter(|sr| matches!(sr["status"].as_str(), Some("active" | "on-hold")))
        .collect();
    if open.is_empty() {
        return Err(LabError::conflict(format!(
            "Specimen {barcode} has no open request (cancelled or completed): it cannot be received."
        )));
    }
    let (by, _) = actor(tx.access());
    specimen["receivedTime"] = json!(at);
    set_ext(
        &mut specimen,
        json!({"url": RECEIVED_BY_EXT, "valueReference": by}),
    );
    tx.save(specimen.clone())?;
    let mut reports = Vec::new();
    for sr in open {
        let acc = accession(tx)?;
        let srid = sr["id"].as_str().unwrap_or_default();
        let mut dr = json!({
            "resourceType": "DiagnosticReport",
            "identifier": [{"system": FILLER_ORDER, "value": acc}],
            "basedOn": [{"reference": format!("ServiceRequest/{srid}")}],
            "status": "registered",
            "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": "LAB", "display": "Laboratory"}]}],
            "code": sr["code"].clone(),
            "subject": {"reference": format!("Patient/{patient}")},
            "specimen": [{"reference": format!("Specimen/{sid}")}],
        });
        if let Some(e) = sr.get("encounter") {
            dr["encounter"] = e.clone();
        }
        if let Some(c) = specimen["collection"]["collectedDateTime"].as_str() {
            dr["effectiveDateTime"] = json!(c);
        }
        tag(&mut dr);
        let saved = tx.save(dr)?;
        reports.push(ReportLine {
            report: saved.id,
            accession: acc,
            title: concept_text(&sr["code"]).unwrap_or_else(|| "Test".into()),
            status: "registered".into(),
        });
    }
    Ok(Reception {
        specimen: sid,
        barcode,
        patient: PatientSummary::from_resource(&pat),
        container: specimen["container"][0]["type"]["text"]
            .as_str()
            .map(str::to_owned),
        received: at,
        reports,
    })
}

// ---------------------------------------------------------------- worklist

/// A report on the bench.
#[derive(Debug, Clone, Serialize)]
pub struct WorkItem {
    pub report: String,
    pub accession: String,
    pub title: String,
    /// registered, partial, preliminary.
    pub status: String,
    /// received, entered, validated.
    pub stage: &'static str,
    pub patient: String,
    pub patient_name: String,
    pub nhs_number: Option<String>,
    pub barcode: Option<String>,
    pub received: Option<String>,
    /// Any analyte with a critical flag.
    pub critical: bool,
}

/// The bench's worklist: the laboratory's reports not yet authorised,
/// oldest first, as the caller may see them (and how many were withheld).
pub fn worklist(
    svc: &FhirService,
    access: &dyn Access,
) -> Result<(Vec<WorkItem>, usize), LabError> {
    let found = svc.search_as(
        access,
        "DiagnosticReport",
        &[
            ("_tag", format!("{}|{}", LABORATORY_TAG.0, LABORATORY_TAG.1)),
            ("status", "registered,partial,preliminary".to_owned()),
            ("_count", "200".to_owned()),
            ("_include", "DiagnosticReport:subject".to_owned()),
            ("_include", "DiagnosticReport:specimen".to_owned()),
            ("_include", "DiagnosticReport:result".to_owned()),
        ],
    )?;
    let included = |t: &str, r: &Value| -> Option<Value> {
        let id = reference_id(r, t)?;
        found
            .included
            .iter()
            .find(|x| x["resourceType"] == t && x["id"] == id)
            .cloned()
    };
    let mut out = Vec::new();
    for dr in &found.resources {
        let pat = included("Patient", &dr["subject"]).map(|p| PatientSummary::from_resource(&p));
        let spec = dr["specimen"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|s| included("Specimen", s));
        let critical = dr["result"].as_array().into_iter().flatten().any(|r| {
            included("Observation", r).is_some_and(|o| {
                o["interpretation"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|i| {
                        i["coding"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| matches!(c["code"].as_str(), Some("LL" | "HH" | "AA")))
                    })
            })
        });
        let status = dr["status"].as_str().unwrap_or_default().to_owned();
        out.push(WorkItem {
            report: dr["id"].as_str().unwrap_or_default().to_owned(),
            accession: identifier(dr, FILLER_ORDER).unwrap_or_default().to_owned(),
            title: concept_text(&dr["code"]).unwrap_or_default(),
            stage: if ext(dr, TECHNICAL_VALIDATION_EXT).is_some() {
                "validated"
            } else if status == "registered" {
                "received"
            } else {
                "entered"
            },
            status,
            patient: reference_id(&dr["subject"], "Patient")
                .unwrap_or_default()
                .to_owned(),
            patient_name: pat
                .as_ref()
                .map(|p| p.display_name.clone())
                .unwrap_or_else(|| "(not shown)".into()),
            nhs_number: pat.and_then(|p| p.nhs_number),
            barcode: spec
                .as_ref()
                .and_then(|s| identifier(s, SPECIMEN_ID))
                .map(str::to_owned),
            received: spec
                .as_ref()
                .and_then(|s| s["receivedTime"].as_str())
                .map(str::to_owned),
            critical,
        });
    }
    Ok((out, found.withheld))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_seconds() {
        let t = time::macros::datetime!(2026-03-05 14:30:12.789 +01:00);
        assert_eq!(stamp(t), "2026-03-05T13:30:12Z");
    }

    #[test]
    fn barcodes_are_checked() {
        assert_eq!(clean_barcode(" R0000012-1\n").unwrap(), "R0000012-1");
        assert_eq!(clean_barcode("").unwrap_err().status(), 400);
        assert!(
            clean_barcode("a|b")
                .unwrap_err()
                .message
                .starts_with("Barcode")
        );
    }

    #[test]
    fn codes_match_by_system_and_code_or_code() {
        let c = json!({"coding": [{"system": "http://loinc.org", "code": "2823-3"}]});
        assert!(code_matches(&c, "2823-3"));
        assert!(code_matches(&c, "http://loinc.org|2823-3"));
        assert!(!code_matches(&c, "http://snomed.info/sct|2823-3"));
        assert!(!code_matches(&c, ""));
        assert_eq!(code_key(&c), "http://loinc.org|2823-3");
    }

    #[test]
    fn signoffs_read_back() {
        let mut r = json!({"resourceType": "DiagnosticReport"});
        let by = json!({"reference": "Practitioner/p1", "display": "Priya Nair"});
        set_ext(
            &mut r,
            signoff_ext(TECHNICAL_VALIDATION_EXT, &by, "2026-01-01T10:00:00Z"),
        );
        let (key, name, at) = signoff_of(&r, TECHNICAL_VALIDATION_EXT).unwrap();
        assert_eq!(
            (key.as_str(), name.as_str(), at.as_str()),
            ("Practitioner/p1", "Priya Nair", "2026-01-01T10:00:00Z")
        );
        remove_ext(&mut r, TECHNICAL_VALIDATION_EXT);
        assert!(r.get("extension").is_none());
    }
}
