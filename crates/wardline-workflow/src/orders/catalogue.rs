//! The order catalogue: what can be requested (pathology tests and panels,
//! radiology examinations), what each needs (specimen and container, the
//! radiology department's questions), what each produces (analytes with
//! their reference and critical ranges), and order sets.
//!
//! # Model
//!
//! The catalogue is conformance-like FHIR R4 in the one store — definitions,
//! not patient data:
//!
//! * **An orderable** is an `ActivityDefinition` (`kind` `ServiceRequest`,
//!   `status` `active` | `retired`), `id` a stable slug (`path-fbc`,
//!   `rad-cxr`), `url` `https://fhir.wardline.invalid/ActivityDefinition/<id>`
//!   (what a `ServiceRequest.instantiatesCanonical` points at), `title`,
//!   `code` (SNOMED CT where the trust is sure of the concept, otherwise a
//!   local code of [`LOCAL_ORDERABLE`], which the screens mark as local),
//!   `topic[0]` the department ([`DEPARTMENT`]: `haematology`,
//!   `biochemistry`, `microbiology`, `transfusion`, `immunology`,
//!   `radiology`).
//! * **Specimen**: `specimenRequirement` → a contained `SpecimenDefinition`:
//!   `typeCollected` (SNOMED CT specimen type), `typeTested[0].container`
//!   (`type.text` the tube as the ward knows it, "EDTA (purple top)";
//!   `cap.text` its colour; `minimumVolumeQuantity` in mL),
//!   `patientPreparation[0].text` (fasting) and `timeAspect` (timing notes).
//! * **Analytes**: `observationResultRequirement` → contained
//!   `ObservationDefinition`s: `code` (LOINC where sure, else a local code
//!   of [`LOCAL_ANALYTE`]), `preferredReportName`,
//!   `quantitativeDetails.unit` (UCUM coding), `qualifiedInterval`s of
//!   category `reference` (the normal range; with `gender` when it differs
//!   by sex) and `critical` (FHIR's meaning: results **outside** this range
//!   are critical). A delta check is the complex extension
//!   [`DELTA_CHECK`] with sub-extensions `absolute` (`valueQuantity`, in the
//!   analyte's unit) and/or `percent` (`valueDecimal`): a change from the
//!   patient's previous result larger than either fails the check.
//! * **Minimum retest interval**: extension [`RETEST_INTERVAL`]
//!   `valueDuration` (UCUM `h`, `d` or `wk`).
//! * **Imaging**: extension [`MODALITY`] `valueCoding` (DICOM `CR`, `CT`,
//!   `MR`, `US`…), extension [`IONISING`] `valueBoolean`, and the questions
//!   the radiology department requires through extension [`QUESTIONNAIRE`]
//!   `valueCanonical` → a `Questionnaire` (`url`
//!   `https://fhir.wardline.invalid/Questionnaire/<id>`) whose items have
//!   the link ids `clinical-indication`, `pregnancy`, `contrast-allergy`,
//!   `egfr`, `irmer-justification` (and `mri-safety` for MRI).
//! * **An order set** is a `PlanDefinition` (`type` `order-set`, `url`
//!   `https://fhir.wardline.invalid/PlanDefinition/<id>`) whose
//!   `action[].definitionCanonical` are orderable urls.
//!
//! # Rules
//!
//! * A catalogue entry is valid before it is stored, on every channel:
//!   [`CatalogueRule`] (registered by `crate::with_rules`) refuses a write
//!   of an `ActivityDefinition`, `PlanDefinition` or `Questionnaire` that
//!   [`parse_orderable`] / [`parse_order_set`] / [`parse_questionnaire`]
//!   reject, naming what is wrong — a reference range whose low is above its
//!   high, a critical limit inside the reference range, a pathology test
//!   without a specimen, an examination without a modality, an order set
//!   naming an orderable that does not exist. Definitions that are not the
//!   catalogue's ([`in_catalogue`]: urls elsewhere, no department) are
//!   other modules' business and pass untouched.
//! * [`import`] checks a whole Bundle first and refuses all of it with the
//!   entry named; nothing is half-imported.
//! * Orderables are never deleted: they are retired ([`set_active`]), so the
//!   orders that name them still resolve.
//! * [`Analyte::interpret`] is the **one** place an abnormal flag is
//!   computed from a number (N, L, H, LL, HH). Reference limits are
//!   inclusive (a value equal to the low or high limit is normal); critical
//!   limits are exclusive, as laboratories write them ("critical < 2.5").
//!   Where ranges differ by sex, [`Analyte::for_sex`] gives the analyte with
//!   that sex's range; without a known sex the range is the widest of them,
//!   so no value is flagged that either sex's range would call normal, and
//!   critical limits never depend on sex.
//! * [`Analyte::delta_exceeded`] is the one delta-check calculation (a change
//!   larger than the absolute limit, or than the percentage of the previous
//!   value; a change equal to a limit passes).
//!
//! The seed catalogue (`wardline-demo`'s `data/order-catalogue.json`) holds
//! **demonstration values**: adult ranges per common UK laboratory practice
//! (Pathology Harmony where it has harmonised a range; critical limits in
//! the spirit of the Royal College of Pathologists' guidance on
//! communicating critical results). A trust replaces them with its own
//! laboratory's ranges before clinical use.
//!
//! [`load`] reads the catalogue as the system (it is not patient data): an
//! entry that no longer parses (written before a rule existed) is left out
//! and listed in [`Catalogue::problems`] for the administrator.

mod admin;
mod parse;

pub use admin::{
    CatalogueError, CatalogueRule, ImportReport, check_bundle, import, load_as, resource_as,
    save_order_set, save_orderable, set_active,
};
pub use parse::{parse_order_set, parse_orderable, parse_questionnaire, valid_id};

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::FhirService;
use wardline_fhir::FhirError;
use wardline_store::Reader;

use crate::fhir::{UCUM, json_all};

/// The project's base for local systems and canonical urls.
pub const BASE: &str = "https://fhir.wardline.invalid";
/// The system of a local (non-SNOMED) orderable code.
pub const LOCAL_ORDERABLE: &str = "https://fhir.wardline.invalid/CodeSystem/local-orderable";
/// The system of a local analyte code.
pub const LOCAL_ANALYTE: &str = "https://fhir.wardline.invalid/CodeSystem/local-analyte";
/// The departments (`ActivityDefinition.topic`).
pub const DEPARTMENT: &str = "https://fhir.wardline.invalid/CodeSystem/order-department";
pub const DELTA_CHECK: &str = "https://fhir.wardline.invalid/StructureDefinition/delta-check";
pub const RETEST_INTERVAL: &str =
    "https://fhir.wardline.invalid/StructureDefinition/minimum-retest-interval";
pub const MODALITY: &str = "https://fhir.wardline.invalid/StructureDefinition/imaging-modality";
pub const IONISING: &str = "https://fhir.wardline.invalid/StructureDefinition/ionising";
pub const QUESTIONNAIRE: &str =
    "https://fhir.wardline.invalid/StructureDefinition/order-questionnaire";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC: &str = "http://loinc.org";
pub const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// FHIR's ObservationInterpretation codes (v3).
pub const INTERPRETATION: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const PLAN_TYPE: &str = "http://terminology.hl7.org/CodeSystem/plan-definition-type";

/// The departments, code and name, in the order screens list them.
pub const DEPARTMENTS: [(&str, &str); 6] = [
    ("haematology", "Haematology"),
    ("biochemistry", "Clinical biochemistry"),
    ("microbiology", "Microbiology"),
    ("transfusion", "Blood transfusion"),
    ("immunology", "Immunology"),
    ("radiology", "Radiology"),
];

/// The imaging modalities the catalogue knows (DICOM codes).
pub const MODALITIES: [(&str, &str); 7] = [
    ("CR", "Computed Radiography"),
    ("DX", "Digital Radiography"),
    ("CT", "Computed Tomography"),
    ("MR", "Magnetic Resonance"),
    ("US", "Ultrasound"),
    ("NM", "Nuclear Medicine"),
    ("XA", "X-Ray Angiography"),
];

/// Specimen types (SNOMED CT) the admin screens offer.
pub const SPECIMEN_TYPES: [(&str, &str); 9] = [
    ("119297000", "Blood specimen"),
    ("122555007", "Venous blood specimen"),
    ("122552005", "Arterial blood specimen"),
    ("119364003", "Serum specimen"),
    ("119361006", "Plasma specimen"),
    ("122575003", "Urine specimen"),
    ("258574006", "Mid-stream urine specimen"),
    ("119339001", "Stool specimen"),
    ("119334006", "Sputum specimen"),
];

/// The whole catalogue, active and retired.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Catalogue {
    /// By department (in [`DEPARTMENTS`] order), then title.
    pub orderables: Vec<Orderable>,
    /// By title.
    pub sets: Vec<OrderSet>,
    /// The questionnaires orderables point at, by url.
    pub questionnaires: Vec<Questionnaire>,
    /// Stored entries that do not parse, as `Type/id: why` (left out above).
    pub problems: Vec<String>,
}

/// One test, panel or examination that can be requested.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orderable {
    pub id: String,
    pub url: String,
    pub title: String,
    /// The CodeableConcept the ServiceRequest carries.
    pub code: Value,
    /// The code is a local one ([`LOCAL_ORDERABLE`]), not SNOMED CT.
    pub local_code: bool,
    /// A [`DEPARTMENTS`] code.
    pub department: String,
    pub imaging: bool,
    /// The DICOM modality code (`CR`, `CT`, `MR`, `US`…).
    pub modality: Option<String>,
    pub ionising: bool,
    pub specimen: Option<SpecimenRequirement>,
    /// Patient preparation (fasting).
    pub preparation: Option<String>,
    /// Timing notes (when to take it, how fast to deliver it).
    pub timing: Option<String>,
    pub retest_interval_hours: Option<u32>,
    pub questionnaire: Option<Questionnaire>,
    pub analytes: Vec<Analyte>,
    pub active: bool,
    /// `description`, shown to requesters.
    pub description: Option<String>,
}

/// What specimen a test needs and in what container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecimenRequirement {
    /// The CodeableConcept of the specimen type (SNOMED CT).
    pub specimen_type: Value,
    /// The container as the ward knows it, e.g. "EDTA (purple top)".
    pub container: String,
    /// The cap colour.
    pub colour: Option<String>,
    /// The minimum volume, mL.
    pub minimum_volume_ml: Option<f64>,
}

/// One question the requester must (or may) answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Question {
    pub link_id: String,
    pub text: String,
    /// `string` | `boolean` | `decimal` | `choice` | `text`.
    pub kind: String,
    pub required: bool,
    /// For `choice`: (code, display).
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Questionnaire {
    pub url: String,
    pub items: Vec<Question>,
    /// The resource id and title (for the admin screens).
    pub id: String,
    pub title: String,
}

/// A range of an analyte that applies to one sex (`male` | `female`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SexRange {
    pub gender: String,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// One result a test produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analyte {
    /// The CodeableConcept the Observation carries.
    pub code: Value,
    pub display: String,
    /// UCUM code.
    pub unit: Option<String>,
    /// The reference range (inclusive): see the module documentation for
    /// ranges that differ by sex.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Critical limits (exclusive: a value below `critical_low` or above
    /// `critical_high` is critical).
    pub critical_low: Option<f64>,
    pub critical_high: Option<f64>,
    /// Delta check: the largest change from the previous result that passes,
    /// absolute (in `unit`) and/or as a percentage of the previous value.
    pub delta_absolute: Option<f64>,
    pub delta_percent: Option<f64>,
    /// Reference ranges by sex, when they differ.
    pub sex_ranges: Vec<SexRange>,
}

/// A named group of orderables requested together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderSet {
    pub id: String,
    pub url: String,
    pub title: String,
    /// Orderable ids.
    pub orderables: Vec<String>,
    pub active: bool,
    pub description: Option<String>,
}

/// An abnormal flag (HL7 v3 ObservationInterpretation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Interpretation {
    CriticalLow,
    Low,
    Normal,
    High,
    CriticalHigh,
}

impl Interpretation {
    /// `N`, `L`, `H`, `LL`, `HH`.
    pub fn code(self) -> &'static str {
        match self {
            Interpretation::Normal => "N",
            Interpretation::Low => "L",
            Interpretation::High => "H",
            Interpretation::CriticalLow => "LL",
            Interpretation::CriticalHigh => "HH",
        }
    }
    /// In words, as screens show it.
    pub fn display(self) -> &'static str {
        match self {
            Interpretation::Normal => "Normal",
            Interpretation::Low => "Low",
            Interpretation::High => "High",
            Interpretation::CriticalLow => "Critical low",
            Interpretation::CriticalHigh => "Critical high",
        }
    }
    /// From a v3 code (`N`, `L`, `H`, `LL`, `HH`; also `<`/`>` off-scale
    /// read as critical, `A`/`AA` have no direction and are not read).
    pub fn from_code(code: &str) -> Option<Interpretation> {
        Some(match code {
            "N" => Interpretation::Normal,
            "L" => Interpretation::Low,
            "H" => Interpretation::High,
            "LL" | "<" => Interpretation::CriticalLow,
            "HH" | ">" => Interpretation::CriticalHigh,
            _ => return None,
        })
    }
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            Interpretation::CriticalLow | Interpretation::CriticalHigh
        )
    }
    pub fn is_abnormal(self) -> bool {
        self != Interpretation::Normal
    }
    /// The `Observation.interpretation` CodeableConcept.
    pub fn concept(self) -> Value {
        json!({"coding": [{"system": INTERPRETATION, "code": self.code(), "display": self.display()}],
               "text": self.display()})
    }
}

impl Analyte {
    /// The flag of `value` (see the module documentation). A value that is
    /// not a number (NaN) is never called normal: it is flagged critical
    /// high so that a person looks at it.
    pub fn interpret(&self, value: f64) -> Interpretation {
        if value.is_nan() {
            return Interpretation::CriticalHigh;
        }
        if self.critical_low.is_some_and(|c| value < c) {
            Interpretation::CriticalLow
        } else if self.critical_high.is_some_and(|c| value > c) {
            Interpretation::CriticalHigh
        } else if self.low.is_some_and(|l| value < l) {
            Interpretation::Low
        } else if self.high.is_some_and(|h| value > h) {
            Interpretation::High
        } else {
            Interpretation::Normal
        }
    }

    /// The analyte with the reference range of `gender` (`male`, `female`)
    /// when it has one; otherwise (or without a sex) as it is.
    pub fn for_sex(&self, gender: Option<&str>) -> Analyte {
        let mut a = self.clone();
        if let Some(r) = gender.and_then(|g| self.sex_ranges.iter().find(|r| r.gender == g)) {
            a.low = r.low;
            a.high = r.high;
        }
        a
    }

    /// The code's first coding as `system|code`.
    pub fn token(&self) -> String {
        token_of(&self.code)
    }

    /// Whether this analyte has the code `system|code` (or a bare code)
    /// among its codings.
    pub fn has_code(&self, token: &str) -> bool {
        has_token(&self.code, token)
    }

    /// The reference range as people read it ("3.5–5.3 mmol/L", "< 5
    /// mg/L"); `None` without one.
    pub fn range_text(&self) -> Option<String> {
        range_text(self.low, self.high, self.unit.as_deref())
    }

    /// The `Observation.referenceRange` entries: the range that applies
    /// (for the patient's sex when given) in the analyte's unit.
    pub fn reference_range(&self) -> Vec<Value> {
        let q = |v: f64| {
            let mut q = json!({"value": v});
            if let Some(u) = &self.unit {
                q["unit"] = json!(u);
                q["system"] = json!(UCUM);
                q["code"] = json!(u);
            }
            q
        };
        if self.low.is_none() && self.high.is_none() {
            return Vec::new();
        }
        let mut r = json!({});
        if let Some(l) = self.low {
            r["low"] = q(l);
        }
        if let Some(h) = self.high {
            r["high"] = q(h);
        }
        if let Some(t) = self.range_text() {
            r["text"] = json!(t);
        }
        vec![r]
    }

    /// Whether the change from the patient's `previous` result to `value`
    /// fails the delta check: larger than the absolute limit, or than the
    /// percentage limit of the previous value (a previous value of zero
    /// has no percentage change: only the absolute limit applies). Without
    /// a delta check nothing fails; a value that is not a number fails.
    pub fn delta_exceeded(&self, previous: f64, value: f64) -> bool {
        if !previous.is_finite() || !value.is_finite() {
            return self.delta_absolute.is_some() || self.delta_percent.is_some();
        }
        let change = (value - previous).abs();
        // Results and limits are decimals as written; in binary floating
        // point 1.0 - 0.7 is 0.30000000000000004, so a change exactly at
        // the limit must not count as beyond it: compare with a tolerance
        // far below any reported precision.
        let eps = 1e-9 * (1.0 + previous.abs().max(value.abs()));
        let absolute = self.delta_absolute.is_some_and(|d| change - d > eps);
        let percent = self.delta_percent.is_some_and(|p| {
            previous != 0.0 && change * 100.0 - p * previous.abs() > eps * 100.0 * (1.0 + p)
        });
        absolute || percent
    }

    /// Parses a result as typed (`5.3`, `-1`, ` 12 `): a finite decimal,
    /// or an error naming what is wrong.
    pub fn parse_value(text: &str) -> Result<f64, String> {
        let t = text.trim();
        let v: f64 = t.parse().map_err(|_| format!("\"{t}\" is not a number"))?;
        if !v.is_finite()
            || t.chars()
                .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        {
            return Err(format!("\"{t}\" is not a number"));
        }
        Ok(v)
    }
}

pub(super) fn num(v: f64) -> String {
    let s = format!("{v}");
    if s.contains('e') { format!("{v:.}") } else { s }
}

/// A range as people read it.
pub fn range_text(low: Option<f64>, high: Option<f64>, unit: Option<&str>) -> Option<String> {
    let r = match (low, high) {
        (Some(l), Some(h)) => format!("{}–{}", num(l), num(h)),
        (Some(l), None) => format!("≥ {}", num(l)),
        (None, Some(h)) => format!("≤ {}", num(h)),
        (None, None) => return None,
    };
    Some(
        match unit.map(crate::fhir::ucum_print).filter(|u| !u.is_empty()) {
            Some(u) if u == "%" => format!("{r}%"),
            Some(u) => format!("{r} {u}"),
            None => r,
        },
    )
}

pub(super) fn token_of(c: &Value) -> String {
    let coding = &c["coding"][0];
    format!(
        "{}|{}",
        coding["system"].as_str().unwrap_or_default(),
        coding["code"].as_str().unwrap_or_default()
    )
}

pub(super) fn has_token(c: &Value, token: &str) -> bool {
    let (system, code) = match token.split_once('|') {
        Some((s, c)) => (Some(s), c),
        None => (None, token),
    };
    c["coding"].as_array().into_iter().flatten().any(|x| {
        x["code"].as_str() == Some(code)
            && system.is_none_or(|s| s.is_empty() || x["system"].as_str() == Some(s))
    })
}

impl Catalogue {
    pub fn orderable(&self, id: &str) -> Option<&Orderable> {
        self.orderables.iter().find(|o| o.id == id)
    }
    /// The orderable whose url is `url` (a `ServiceRequest`'s
    /// `instantiatesCanonical`; a `|version` suffix is ignored).
    pub fn by_url(&self, url: &str) -> Option<&Orderable> {
        let url = url.split('|').next().unwrap_or(url);
        self.orderables.iter().find(|o| o.url == url)
    }
    pub fn set(&self, id: &str) -> Option<&OrderSet> {
        self.sets.iter().find(|s| s.id == id)
    }
    /// The orderable whose code has the coding `system|code`.
    pub fn by_code(&self, token: &str) -> Option<&Orderable> {
        self.orderables.iter().find(|o| has_token(&o.code, token))
    }
    /// The analyte with the code `system|code` (or a bare code) in any
    /// orderable, active ones first: how a result without a flag is
    /// interpreted.
    pub fn analyte(&self, token: &str) -> Option<&Analyte> {
        let mut all: Vec<&Orderable> = self.orderables.iter().collect();
        all.sort_by_key(|o| !o.active);
        all.into_iter()
            .flat_map(|o| o.analytes.iter())
            .find(|a| a.has_code(token))
    }
    /// The active orderables of one department.
    pub fn department(&self, code: &str) -> impl Iterator<Item = &Orderable> {
        self.orderables
            .iter()
            .filter(move |o| o.department == code && o.active)
    }
    pub fn questionnaire(&self, url: &str) -> Option<&Questionnaire> {
        self.questionnaires.iter().find(|q| q.url == url)
    }
}

/// The name of a department code.
pub fn department_name(code: &str) -> &str {
    DEPARTMENTS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(code, |(_, n)| n)
}

// ---- reading the store -------------------------------------------------------

pub(super) fn dept_rank(code: &str) -> usize {
    DEPARTMENTS
        .iter()
        .position(|(c, _)| *c == code)
        .unwrap_or(DEPARTMENTS.len())
}

/// Whether a stored resource is the catalogue's (see [`in_catalogue`]).
///
/// The store also holds definitions that are not orderables (the official
/// examples, other modules' forms and protocols). The catalogue's are:
/// a `Questionnaire` or `PlanDefinition` whose `url` is under [`BASE`]; an
/// `ActivityDefinition` whose `url` is under [`BASE`] or that names a
/// department of [`DEPARTMENT`] in its `topic`. Others are neither loaded
/// nor checked by the write rule; [`import`] treats every entry of its
/// Bundle as the catalogue's.
pub fn in_catalogue(r: &Value) -> bool {
    let ours = r["url"]
        .as_str()
        .is_some_and(|u| u.starts_with(&format!("{BASE}/")));
    match r["resourceType"].as_str() {
        Some("ActivityDefinition") => {
            ours || r["topic"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|t| t["coding"].as_array().into_iter().flatten())
                .any(|c| c["system"] == DEPARTMENT)
        }
        // Chemotherapy protocols (issue 17) are PlanDefinitions under the
        // same base but not order sets.
        Some("PlanDefinition") => ours && !crate::medicines::chemo::regimen::is_protocol_type(r),
        // Issue 20: configurable forms have their own base and are not
        // the catalogue's questions.
        Some("Questionnaire") => {
            ours && !r["url"]
                .as_str()
                .is_some_and(|u| u.starts_with(crate::forms::FORMS_BASE))
        }
        _ => false,
    }
}

/// Builds a catalogue from its resources (any order; those not
/// [`in_catalogue`] are left out); what does not parse goes to `problems`.
pub fn from_resources(
    activity_definitions: &[Value],
    plan_definitions: &[Value],
    questionnaires: &[Value],
) -> Catalogue {
    let mut problems = Vec::new();
    let mut qs = HashMap::new();
    let mut qlist = Vec::new();
    for q in questionnaires.iter().filter(|r| in_catalogue(r)) {
        match parse_questionnaire(q) {
            Ok(p) => {
                qs.insert(p.url.clone(), p.clone());
                qlist.push(p);
            }
            Err(e) => problems.push(format!(
                "Questionnaire/{}: {e}",
                q["id"].as_str().unwrap_or("?")
            )),
        }
    }
    let mut orderables = Vec::new();
    for ad in activity_definitions.iter().filter(|r| in_catalogue(r)) {
        match parse_orderable(ad, &qs) {
            Ok(o) => orderables.push(o),
            Err(e) => problems.push(format!(
                "ActivityDefinition/{}: {e}",
                ad["id"].as_str().unwrap_or("?")
            )),
        }
    }
    orderables.sort_by(|a: &Orderable, b: &Orderable| {
        (dept_rank(&a.department), a.title.to_lowercase())
            .cmp(&(dept_rank(&b.department), b.title.to_lowercase()))
    });
    let by_url: HashMap<String, String> = orderables
        .iter()
        .map(|o| (o.url.clone(), o.id.clone()))
        .collect();
    let mut sets = Vec::new();
    for pd in plan_definitions.iter().filter(|r| in_catalogue(r)) {
        match parse_order_set(pd, &|u| by_url.get(u).cloned()) {
            Ok(s) => sets.push(s),
            Err(e) => problems.push(format!(
                "PlanDefinition/{}: {e}",
                pd["id"].as_str().unwrap_or("?")
            )),
        }
    }
    sets.sort_by_key(|s| s.title.to_lowercase());
    qlist.sort_by(|a, b| a.url.cmp(&b.url));
    Catalogue {
        orderables,
        sets,
        questionnaires: qlist,
        problems,
    }
}

/// The catalogue, active and retired, read as the system (it is not
/// patient data, and every requester needs all of it).
pub fn load(svc: &FhirService) -> Result<Catalogue, FhirError> {
    load_from(svc.system_reader())
}

/// [`load`] from any reader (a transaction sees its own writes).
pub fn load_from<Rd: Reader + ?Sized>(r: &Rd) -> Result<Catalogue, FhirError> {
    Ok(from_resources(
        &json_all(r, "ActivityDefinition")?,
        &json_all(r, "PlanDefinition")?,
        &json_all(r, "Questionnaire")?,
    ))
}

/// A map from orderable id to the answers of its questionnaire, as the
/// requesting page passes them (a convenience type for callers).
pub type Answers = BTreeMap<String, BTreeMap<String, String>>;

#[cfg(test)]
mod tests;
