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
//!   naming an orderable that does not exist.
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

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::rules::{ProposedWrite, RuleTx, WriteRule};
use wardline_core::{Access, FhirService};
use wardline_fhir::FhirError;
use wardline_fhir::search::Handling;
use wardline_store::{PageRequest, Reader, StoredResource};

use crate::fhir::{UCUM, concept_text};

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

fn num(v: f64) -> String {
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

fn token_of(c: &Value) -> String {
    let coding = &c["coding"][0];
    format!(
        "{}|{}",
        coding["system"].as_str().unwrap_or_default(),
        coding["code"].as_str().unwrap_or_default()
    )
}

fn has_token(c: &Value, token: &str) -> bool {
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

// ---- parsing ---------------------------------------------------------------

fn ext<'a>(r: &'a Value, url: &str) -> Option<&'a Value> {
    r["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"].as_str() == Some(url))
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Whether `id` is a FHIR id usable as a catalogue slug.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

fn coded(c: &Value, what: &str) -> Result<(), String> {
    let coding = &c["coding"][0];
    if coding["system"].as_str().is_none_or(str::is_empty)
        || coding["code"].as_str().is_none_or(|s| s.trim().is_empty())
    {
        return Err(format!("{what} needs a coding with a system and a code"));
    }
    Ok(())
}

fn quantity_value(q: &Value) -> Option<f64> {
    q["value"].as_f64()
}

fn duration_hours(d: &Value) -> Result<u32, String> {
    let v = d["value"]
        .as_f64()
        .filter(|v| *v > 0.0 && v.is_finite())
        .ok_or("the minimum retest interval needs a positive value")?;
    let unit = d["code"].as_str().or(d["unit"].as_str()).unwrap_or("");
    let hours = match unit {
        "h" => v,
        "d" => v * 24.0,
        "wk" => v * 24.0 * 7.0,
        other => {
            return Err(format!(
                "the minimum retest interval's unit \"{other}\" is not h, d or wk"
            ));
        }
    };
    if hours > f64::from(u32::MAX) || hours.fract() != 0.0 {
        return Err("the minimum retest interval must be a whole number of hours".to_owned());
    }
    // Checked above: a whole number within u32.
    Ok(hours as u32)
}

/// Reads a Questionnaire of the catalogue, or says what is wrong.
pub fn parse_questionnaire(q: &Value) -> Result<Questionnaire, String> {
    if q["resourceType"] != "Questionnaire" {
        return Err("not a Questionnaire".to_owned());
    }
    let id = q["id"].as_str().unwrap_or_default().to_owned();
    let url = text_of(&q["url"]).ok_or("a catalogue questionnaire needs a url")?;
    let mut items = Vec::new();
    for (i, it) in q["item"].as_array().into_iter().flatten().enumerate() {
        let link_id = text_of(&it["linkId"]).ok_or(format!("item {} has no linkId", i + 1))?;
        let kind = it["type"].as_str().unwrap_or_default().to_owned();
        if !matches!(
            kind.as_str(),
            "string" | "boolean" | "decimal" | "choice" | "text" | "integer"
        ) {
            return Err(format!(
                "question {link_id} has type \"{kind}\": a catalogue question is string, text, boolean, decimal, integer or choice"
            ));
        }
        let options: Vec<(String, String)> = it["answerOption"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| {
                let c = &o["valueCoding"];
                let code = c["code"].as_str()?;
                Some((
                    code.to_owned(),
                    c["display"].as_str().unwrap_or(code).to_owned(),
                ))
            })
            .collect();
        if kind == "choice" && options.is_empty() {
            return Err(format!(
                "question {link_id} is a choice without answer options"
            ));
        }
        items.push(Question {
            text: text_of(&it["text"]).unwrap_or_else(|| link_id.clone()),
            link_id,
            kind,
            required: it["required"].as_bool().unwrap_or(false),
            options,
        });
    }
    if items.is_empty() {
        return Err("the questionnaire has no questions".to_owned());
    }
    Ok(Questionnaire {
        url,
        items,
        title: text_of(&q["title"]).unwrap_or_else(|| id.clone()),
        id,
    })
}

fn contained<'a>(r: &'a Value, reference: &Value) -> Option<&'a Value> {
    let local = reference["reference"].as_str()?.strip_prefix('#')?;
    r["contained"]
        .as_array()?
        .iter()
        .find(|c| c["id"].as_str() == Some(local))
}

fn parse_specimen(sd: &Value) -> Result<SpecimenRequirement, String> {
    if sd["resourceType"] != "SpecimenDefinition" {
        return Err("specimenRequirement must point at a contained SpecimenDefinition".to_owned());
    }
    let t = &sd["typeCollected"];
    coded(t, "the specimen type (typeCollected)")?;
    let c = &sd["typeTested"][0]["container"];
    let container = concept_text(&c["type"])
        .filter(|s| !s.trim().is_empty())
        .ok_or("the specimen needs its container (typeTested[0].container.type.text)")?;
    let minimum_volume_ml = match c.get("minimumVolumeQuantity") {
        Some(q) => {
            let v = quantity_value(q)
                .filter(|v| *v > 0.0)
                .ok_or("the minimum volume must be a positive quantity")?;
            if q["code"].as_str().is_some_and(|u| u != "mL") {
                return Err("the minimum volume must be in mL".to_owned());
            }
            Some(v)
        }
        None => None,
    };
    Ok(SpecimenRequirement {
        specimen_type: t.clone(),
        container,
        colour: concept_text(&c["cap"]),
        minimum_volume_ml,
    })
}

fn range_bounds(r: &Value) -> (Option<f64>, Option<f64>) {
    (r["low"]["value"].as_f64(), r["high"]["value"].as_f64())
}

fn parse_analyte(od: &Value) -> Result<Analyte, String> {
    if od["resourceType"] != "ObservationDefinition" {
        return Err(
            "observationResultRequirement must point at a contained ObservationDefinition"
                .to_owned(),
        );
    }
    let code = od["code"].clone();
    let display = text_of(&od["preferredReportName"])
        .or_else(|| concept_text(&code))
        .unwrap_or_default();
    let name = if display.is_empty() {
        "an analyte".to_owned()
    } else {
        format!("analyte {display}")
    };
    coded(&code, &format!("{name}'s code"))?;
    let unit_c = &od["quantitativeDetails"]["unit"];
    let unit = unit_c["coding"][0]["code"]
        .as_str()
        .or(unit_c["text"].as_str())
        .map(str::to_owned);
    let mut a = Analyte {
        code,
        display,
        unit,
        low: None,
        high: None,
        critical_low: None,
        critical_high: None,
        delta_absolute: None,
        delta_percent: None,
        sex_ranges: Vec::new(),
    };
    let mut general = false;
    for qi in od["qualifiedInterval"].as_array().into_iter().flatten() {
        let (lo, hi) = range_bounds(&qi["range"]);
        if let (Some(l), Some(h)) = (lo, hi)
            && l > h
        {
            return Err(format!(
                "{name} has a {} range whose low ({}) is above its high ({})",
                qi["category"].as_str().unwrap_or("reference"),
                num(l),
                num(h)
            ));
        }
        match (qi["category"].as_str(), qi["gender"].as_str()) {
            (Some("critical"), None) => {
                if a.critical_low.is_some() || a.critical_high.is_some() {
                    return Err(format!("{name} has more than one critical range"));
                }
                a.critical_low = lo;
                a.critical_high = hi;
            }
            (Some("critical"), Some(_)) => {
                return Err(format!(
                    "{name}'s critical range depends on sex: critical limits apply to everyone"
                ));
            }
            (Some("reference") | None, None) => {
                if general {
                    return Err(format!("{name} has more than one reference range"));
                }
                general = true;
                a.low = lo;
                a.high = hi;
            }
            (Some("reference") | None, Some(g)) => {
                if !matches!(g, "male" | "female") {
                    return Err(format!(
                        "{name} has a range for \"{g}\": use male or female"
                    ));
                }
                if a.sex_ranges.iter().any(|r| r.gender == g) {
                    return Err(format!("{name} has two {g} ranges"));
                }
                a.sex_ranges.push(SexRange {
                    gender: g.to_owned(),
                    low: lo,
                    high: hi,
                });
            }
            (Some(other), _) => {
                if other != "absolute" {
                    return Err(format!(
                        "{name} has a range of unknown category \"{other}\""
                    ));
                }
            }
        }
    }
    if !general && !a.sex_ranges.is_empty() {
        // The widest of the sexes' ranges (see the module documentation).
        a.low = a
            .sex_ranges
            .iter()
            .map(|r| r.low)
            .try_fold(f64::INFINITY, |m, l| l.map(|l| m.min(l)));
        a.high = a
            .sex_ranges
            .iter()
            .map(|r| r.high)
            .try_fold(f64::NEG_INFINITY, |m, h| h.map(|h| m.max(h)));
    }
    let ranges =
        std::iter::once((a.low, a.high)).chain(a.sex_ranges.iter().map(|r| (r.low, r.high)));
    for (lo, hi) in ranges {
        if let (Some(c), Some(l)) = (a.critical_low, lo.or(hi))
            && c > l
        {
            return Err(format!(
                "{name}'s critical low ({}) is inside its reference range (from {})",
                num(c),
                num(l)
            ));
        }
        if let (Some(c), Some(h)) = (a.critical_high, hi.or(lo))
            && c < h
        {
            return Err(format!(
                "{name}'s critical high ({}) is inside its reference range (up to {})",
                num(c),
                num(h)
            ));
        }
    }
    if let Some(d) = ext(od, DELTA_CHECK) {
        let sub = |u: &str| {
            d["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["url"].as_str() == Some(u))
        };
        a.delta_absolute = sub("absolute")
            .map(|e| &e["valueQuantity"])
            .or(d.get("valueQuantity"))
            .and_then(quantity_value);
        a.delta_percent = sub("percent").and_then(|e| e["valueDecimal"].as_f64());
        if a.delta_absolute.is_none() && a.delta_percent.is_none() {
            return Err(format!(
                "{name}'s delta check needs an absolute (valueQuantity) or percent (valueDecimal) limit"
            ));
        }
        if a.delta_absolute.is_some_and(|v| v <= 0.0) || a.delta_percent.is_some_and(|v| v <= 0.0) {
            return Err(format!("{name}'s delta check limits must be positive"));
        }
    }
    Ok(a)
}

/// Reads an orderable (`ActivityDefinition`), or says what is wrong.
/// `questionnaires` resolves its questionnaire canonical (by url).
pub fn parse_orderable(
    ad: &Value,
    questionnaires: &HashMap<String, Questionnaire>,
) -> Result<Orderable, String> {
    if ad["resourceType"] != "ActivityDefinition" {
        return Err("not an ActivityDefinition".to_owned());
    }
    let id = ad["id"].as_str().unwrap_or_default().to_owned();
    if !valid_id(&id) {
        return Err(format!(
            "the id \"{id}\" is not a catalogue id (letters, digits and hyphens, up to 64)"
        ));
    }
    let url = text_of(&ad["url"]).ok_or("an orderable needs a url")?;
    if ad["kind"] != "ServiceRequest" {
        return Err("an orderable's kind must be ServiceRequest".to_owned());
    }
    let active = match ad["status"].as_str() {
        Some("active") => true,
        Some("retired") => false,
        other => {
            return Err(format!(
                "an orderable's status must be active or retired, not {}",
                other.unwrap_or("missing")
            ));
        }
    };
    let title = text_of(&ad["title"]).ok_or("an orderable needs a title")?;
    let code = ad["code"].clone();
    coded(&code, "the orderable's code")?;
    let local_code = code["coding"][0]["system"] == LOCAL_ORDERABLE;
    let department = ad["topic"][0]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["system"] == DEPARTMENT)
        .and_then(|c| c["code"].as_str())
        .ok_or("an orderable needs its department (topic[0], system order-department)")?
        .to_owned();
    if !DEPARTMENTS.iter().any(|(c, _)| *c == department) {
        return Err(format!("\"{department}\" is not a department"));
    }
    let imaging = department == "radiology";
    let modality =
        ext(ad, MODALITY).and_then(|e| e["valueCoding"]["code"].as_str().map(str::to_owned));
    if imaging && modality.is_none() {
        return Err(
            "a radiology examination needs its modality (extension imaging-modality)".to_owned(),
        );
    }
    let ionising = ext(ad, IONISING)
        .and_then(|e| e["valueBoolean"].as_bool())
        .unwrap_or(false);
    if ionising && !imaging {
        return Err("only a radiology examination can be marked ionising".to_owned());
    }
    let specimen = match ad["specimenRequirement"].as_array().and_then(|s| s.first()) {
        Some(r) => Some(parse_specimen(contained(ad, r).ok_or(
            "specimenRequirement[0] must point at a contained SpecimenDefinition (#id)",
        )?)?),
        None => None,
    };
    if !imaging && specimen.is_none() {
        return Err("a pathology test needs its specimen (specimenRequirement)".to_owned());
    }
    let sd = ad["specimenRequirement"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(|r| contained(ad, r));
    let preparation = sd.and_then(|s| {
        s["patientPreparation"]
            .as_array()?
            .iter()
            .filter_map(concept_text)
            .reduce(|a, b| format!("{a} {b}"))
    });
    let timing = sd.and_then(|s| text_of(&s["timeAspect"]));
    let retest_interval_hours = ext(ad, RETEST_INTERVAL)
        .map(|e| duration_hours(&e["valueDuration"]))
        .transpose()?;
    let questionnaire = match ext(ad, QUESTIONNAIRE) {
        Some(e) => {
            let url = e["valueCanonical"]
                .as_str()
                .ok_or("the order-questionnaire extension needs a valueCanonical")?;
            Some(
                questionnaires
                    .get(url.split('|').next().unwrap_or(url))
                    .cloned()
                    .ok_or(format!("the questionnaire {url} does not exist"))?,
            )
        }
        None => None,
    };
    let mut analytes: Vec<Analyte> = Vec::new();
    for (i, r) in ad["observationResultRequirement"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let od = contained(ad, r).ok_or(format!(
            "observationResultRequirement[{i}] must point at a contained ObservationDefinition (#id)"
        ))?;
        let a = parse_analyte(od)?;
        if analytes.iter().any(|b| b.token() == a.token()) {
            return Err(format!("analyte {} is listed twice", a.display));
        }
        analytes.push(a);
    }
    Ok(Orderable {
        id,
        url,
        title,
        code,
        local_code,
        department,
        imaging,
        modality,
        ionising,
        specimen,
        preparation,
        timing,
        retest_interval_hours,
        questionnaire,
        analytes,
        active,
        description: text_of(&ad["description"]),
    })
}

/// Reads an order set (`PlanDefinition`), or says what is wrong.
/// `orderable_id` resolves an action's canonical to an orderable id.
pub fn parse_order_set(
    pd: &Value,
    orderable_id: &dyn Fn(&str) -> Option<String>,
) -> Result<OrderSet, String> {
    if pd["resourceType"] != "PlanDefinition" {
        return Err("not a PlanDefinition".to_owned());
    }
    let id = pd["id"].as_str().unwrap_or_default().to_owned();
    if !valid_id(&id) {
        return Err(format!("the id \"{id}\" is not a catalogue id"));
    }
    let url = text_of(&pd["url"]).ok_or("an order set needs a url")?;
    let title = text_of(&pd["title"]).ok_or("an order set needs a title")?;
    if !pd["type"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["code"] == "order-set")
    {
        return Err("an order set's type must be order-set".to_owned());
    }
    let active = match pd["status"].as_str() {
        Some("active") => true,
        Some("retired") => false,
        other => {
            return Err(format!(
                "an order set's status must be active or retired, not {}",
                other.unwrap_or("missing")
            ));
        }
    };
    let mut orderables = Vec::new();
    for (i, a) in pd["action"].as_array().into_iter().flatten().enumerate() {
        let c = a["definitionCanonical"]
            .as_str()
            .ok_or(format!("action[{i}] needs a definitionCanonical"))?;
        let id = orderable_id(c.split('|').next().unwrap_or(c)).ok_or(format!(
            "action[{i}] names {c}, which is not in the catalogue"
        ))?;
        if !orderables.contains(&id) {
            orderables.push(id);
        }
    }
    if orderables.is_empty() {
        return Err("an order set needs at least one test or examination".to_owned());
    }
    Ok(OrderSet {
        id,
        url,
        title,
        orderables,
        active,
        description: text_of(&pd["description"]),
    })
}

// ---- writing -----------------------------------------------------------------

fn quantity(v: f64, unit: Option<&str>) -> Value {
    let mut q = json!({"value": v});
    if let Some(u) = unit {
        q["unit"] = json!(u);
        q["system"] = json!(UCUM);
        q["code"] = json!(u);
    }
    q
}

fn range_json(low: Option<f64>, high: Option<f64>, unit: Option<&str>) -> Value {
    let mut r = json!({});
    if let Some(l) = low {
        r["low"] = quantity(l, unit);
    }
    if let Some(h) = high {
        r["high"] = quantity(h, unit);
    }
    r
}

impl Analyte {
    /// The contained `ObservationDefinition` (with local id `id`).
    pub fn to_resource(&self, id: &str) -> Value {
        let unit = self.unit.as_deref();
        let mut od = json!({
            "resourceType": "ObservationDefinition",
            "id": id,
            "code": self.code,
            "permittedDataType": ["Quantity"],
            "preferredReportName": self.display,
        });
        if let Some(u) = unit {
            od["quantitativeDetails"] = json!({"unit": {"coding": [{"system": UCUM, "code": u}], "text": crate::fhir::ucum_print(u)}});
        }
        let mut intervals = Vec::new();
        if self.sex_ranges.is_empty() && (self.low.is_some() || self.high.is_some()) {
            intervals.push(
                json!({"category": "reference", "range": range_json(self.low, self.high, unit)}),
            );
        }
        for r in &self.sex_ranges {
            intervals.push(json!({"category": "reference", "gender": r.gender, "range": range_json(r.low, r.high, unit)}));
        }
        if self.critical_low.is_some() || self.critical_high.is_some() {
            intervals.push(json!({"category": "critical", "range": range_json(self.critical_low, self.critical_high, unit)}));
        }
        if !intervals.is_empty() {
            od["qualifiedInterval"] = json!(intervals);
        }
        let mut delta = Vec::new();
        if let Some(d) = self.delta_absolute {
            delta.push(json!({"url": "absolute", "valueQuantity": quantity(d, unit)}));
        }
        if let Some(p) = self.delta_percent {
            delta.push(json!({"url": "percent", "valueDecimal": p}));
        }
        if !delta.is_empty() {
            od["extension"] = json!([{"url": DELTA_CHECK, "extension": delta}]);
        }
        od
    }
}

fn set_ext(r: &mut Value, url: &str, value: Option<Value>) {
    let mut exts: Vec<Value> = r["extension"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["url"] != url)
        .collect();
    if let Some(v) = value {
        let mut e = json!({"url": url});
        if let (Some(m), Some(vm)) = (e.as_object_mut(), v.as_object()) {
            for (k, x) in vm {
                m.insert(k.clone(), x.clone());
            }
        }
        exts.push(e);
    }
    if let Some(m) = r.as_object_mut() {
        if exts.is_empty() {
            m.remove("extension");
        } else {
            m.insert("extension".to_owned(), json!(exts));
        }
    }
}

impl Orderable {
    /// The `ActivityDefinition` of this orderable. With `base` (the stored
    /// resource) the elements the catalogue does not model are kept.
    pub fn to_resource(&self, base: Option<&Value>) -> Value {
        let mut ad = base.cloned().unwrap_or_else(|| json!({}));
        if let Some(m) = ad.as_object_mut() {
            for k in [
                "meta",
                "text",
                "contained",
                "specimenRequirement",
                "observationResultRequirement",
                "description",
            ] {
                m.remove(k);
            }
        }
        ad["resourceType"] = json!("ActivityDefinition");
        ad["id"] = json!(self.id);
        ad["url"] = json!(self.url);
        ad["name"] = json!(self.id.replace(['-', '.'], "_"));
        ad["title"] = json!(self.title);
        ad["status"] = json!(if self.active { "active" } else { "retired" });
        ad["kind"] = json!("ServiceRequest");
        ad["code"] = self.code.clone();
        ad["topic"] = json!([{"coding": [{"system": DEPARTMENT, "code": self.department, "display": department_name(&self.department)}]}]);
        if let Some(d) = &self.description {
            ad["description"] = json!(d);
        }
        let mut contained = Vec::new();
        if let Some(s) = &self.specimen {
            let mut container = json!({"type": {"text": s.container}});
            if let Some(c) = &s.colour {
                container["cap"] = json!({"text": c});
            }
            if let Some(v) = s.minimum_volume_ml {
                container["minimumVolumeQuantity"] = quantity(v, Some("mL"));
            }
            let mut sd = json!({
                "resourceType": "SpecimenDefinition",
                "id": "specimen",
                "typeCollected": s.specimen_type,
                "typeTested": [{"preference": "preferred", "container": container}],
            });
            if let Some(p) = &self.preparation {
                sd["patientPreparation"] = json!([{"text": p}]);
            }
            if let Some(t) = &self.timing {
                sd["timeAspect"] = json!(t);
            }
            contained.push(sd);
            ad["specimenRequirement"] = json!([{"reference": "#specimen"}]);
        }
        let mut results = Vec::new();
        for (i, a) in self.analytes.iter().enumerate() {
            let id = format!("analyte-{}", i + 1);
            contained.push(a.to_resource(&id));
            results.push(json!({"reference": format!("#{id}")}));
        }
        if !results.is_empty() {
            ad["observationResultRequirement"] = json!(results);
        }
        if !contained.is_empty() {
            ad["contained"] = json!(contained);
        }
        set_ext(
            &mut ad,
            MODALITY,
            self.modality.as_ref().map(|m| {
                let display = MODALITIES.iter().find(|(c, _)| c == m).map(|(_, d)| *d);
                let mut c = json!({"system": DICOM, "code": m});
                if let Some(d) = display {
                    c["display"] = json!(d);
                }
                json!({"valueCoding": c})
            }),
        );
        set_ext(
            &mut ad,
            IONISING,
            self.imaging.then(|| json!({"valueBoolean": self.ionising})),
        );
        set_ext(
            &mut ad,
            RETEST_INTERVAL,
            self.retest_interval_hours.map(|h| {
                if h % 24 == 0 {
                    json!({"valueDuration": {"value": h / 24, "unit": "d", "system": UCUM, "code": "d"}})
                } else {
                    json!({"valueDuration": {"value": h, "unit": "h", "system": UCUM, "code": "h"}})
                }
            }),
        );
        set_ext(
            &mut ad,
            QUESTIONNAIRE,
            self.questionnaire
                .as_ref()
                .map(|q| json!({"valueCanonical": q.url})),
        );
        ad
    }
}

impl OrderSet {
    /// The `PlanDefinition` of this order set; `url_of` gives an
    /// orderable's url from its id.
    pub fn to_resource(
        &self,
        base: Option<&Value>,
        url_of: &dyn Fn(&str) -> Option<String>,
    ) -> Value {
        let mut pd = base.cloned().unwrap_or_else(|| json!({}));
        if let Some(m) = pd.as_object_mut() {
            m.remove("meta");
            m.remove("text");
            m.remove("description");
        }
        pd["resourceType"] = json!("PlanDefinition");
        pd["id"] = json!(self.id);
        pd["url"] = json!(self.url);
        pd["name"] = json!(self.id.replace(['-', '.'], "_"));
        pd["title"] = json!(self.title);
        pd["type"] =
            json!({"coding": [{"system": PLAN_TYPE, "code": "order-set", "display": "Order Set"}]});
        pd["status"] = json!(if self.active { "active" } else { "retired" });
        if let Some(d) = &self.description {
            pd["description"] = json!(d);
        }
        pd["action"] = json!(
            self.orderables
                .iter()
                .map(|id| json!({"definitionCanonical": url_of(id).unwrap_or_else(|| format!("{BASE}/ActivityDefinition/{id}"))}))
                .collect::<Vec<_>>()
        );
        pd
    }
}

// ---- reading the store -------------------------------------------------------

fn all_of<Rd: Reader + ?Sized>(r: &Rd, t: &str) -> Result<Vec<StoredResource>, FhirError> {
    let q = wardline_fhir::search::parse(
        wardline_fhir::definitions::r4(),
        Some(t),
        &[] as &[(String, String)],
        Handling::Strict,
    )?;
    let mut out = Vec::new();
    let mut page = PageRequest {
        count: 1000,
        ..PageRequest::default()
    };
    loop {
        let p = r.search(&q, &page)?;
        page.snapshot_rid = Some(p.snapshot_rid);
        page.after_rid = p.resources.last().map(|r| r.rid);
        let more = p.has_more && page.after_rid.is_some();
        out.extend(p.resources);
        if !more {
            return Ok(out);
        }
    }
}

fn json_all<Rd: Reader + ?Sized>(r: &Rd, t: &str) -> Result<Vec<Value>, FhirError> {
    all_of(r, t)?
        .into_iter()
        .map(|s| {
            serde_json::from_str(&s.json)
                .map_err(|e| FhirError::internal(format!("stored {t}/{} is unreadable: {e}", s.id)))
        })
        .collect()
}

fn dept_rank(code: &str) -> usize {
    DEPARTMENTS
        .iter()
        .position(|(c, _)| *c == code)
        .unwrap_or(DEPARTMENTS.len())
}

/// Builds a catalogue from its resources (any order); what does not parse
/// goes to `problems`.
pub fn from_resources(
    activity_definitions: &[Value],
    plan_definitions: &[Value],
    questionnaires: &[Value],
) -> Catalogue {
    let mut problems = Vec::new();
    let mut qs = HashMap::new();
    let mut qlist = Vec::new();
    for q in questionnaires {
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
    for ad in activity_definitions {
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
    for pd in plan_definitions {
        // Only order sets are the catalogue's.
        if !pd["type"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["code"] == "order-set")
        {
            continue;
        }
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

// ---- errors ------------------------------------------------------------------

/// A refusal or failure of a catalogue change, with a sentence to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CatalogueError {
    /// 400: the entry is wrong (the message names it and the element).
    Invalid(String),
    /// 404.
    NotFound(String),
    /// 403.
    Forbidden(String),
    /// 409: someone changed it at the same moment.
    Conflict(String),
    /// 500.
    Store(String),
}

impl CatalogueError {
    pub fn status(&self) -> u16 {
        match self {
            CatalogueError::Invalid(_) => 400,
            CatalogueError::NotFound(_) => 404,
            CatalogueError::Forbidden(_) => 403,
            CatalogueError::Conflict(_) => 409,
            CatalogueError::Store(_) => 500,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            CatalogueError::Invalid(m)
            | CatalogueError::NotFound(m)
            | CatalogueError::Forbidden(m)
            | CatalogueError::Conflict(m)
            | CatalogueError::Store(m) => m,
        }
    }
}

impl std::fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CatalogueError {}

impl From<FhirError> for CatalogueError {
    fn from(e: FhirError) -> CatalogueError {
        let text = e
            .issues
            .iter()
            .map(|i| {
                let d = i.diagnostics.trim().trim_end_matches('.');
                match i.expression.first() {
                    Some(x) if !d.contains(x.as_str()) => format!("{x}: {d}"),
                    _ => d.to_owned(),
                }
            })
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        match e.status {
            401 | 403 => CatalogueError::Forbidden(
                "You are not allowed to change the order catalogue.".to_owned(),
            ),
            404 | 410 => CatalogueError::NotFound(format!("{text}.")),
            409 | 412 => CatalogueError::Conflict(
                "Someone else changed the catalogue at the same moment. Reload the page and try again."
                    .to_owned(),
            ),
            400..=499 => CatalogueError::Invalid(format!("{text}.")),
            _ => CatalogueError::Store(format!(
                "Wardline could not complete this ({text}). Nothing was changed; try again, and report it if it happens again."
            )),
        }
    }
}

// ---- the write rule ------------------------------------------------------------

/// Every write of an `ActivityDefinition`, an order-set `PlanDefinition`
/// or a `Questionnaire` of the catalogue must parse (see the module
/// documentation) — on every channel: REST, a transaction Bundle, [`import`],
/// the admin screens.
pub struct CatalogueRule;

impl WriteRule for CatalogueRule {
    fn watches(&self, resource_type: &str) -> bool {
        matches!(
            resource_type,
            "ActivityDefinition" | "PlanDefinition" | "Questionnaire"
        )
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, write: &ProposedWrite<'_>) -> Result<(), FhirError> {
        let r = write.resource;
        let refuse = |why: String| {
            FhirError::new(
                422,
                "business-rule",
                format!("{}/{}: {why}", write.resource_type, write.id),
            )
            .at(write.resource_type)
        };
        match write.resource_type {
            "Questionnaire" => {
                // Only the catalogue's questionnaires (urls under the base)
                // are its to check; others are other modules' forms.
                if r["url"].as_str().is_some_and(|u| u.starts_with(BASE)) {
                    parse_questionnaire(r).map_err(refuse)?;
                }
                Ok(())
            }
            "ActivityDefinition" => {
                let mut qs = HashMap::new();
                if let Some(url) = ext(r, QUESTIONNAIRE).and_then(|e| e["valueCanonical"].as_str())
                {
                    let url = url.split('|').next().unwrap_or(url);
                    for q in json_all(tx.reader(), "Questionnaire")? {
                        if q["url"] == url
                            && let Ok(p) = parse_questionnaire(&q)
                        {
                            qs.insert(p.url.clone(), p);
                        }
                    }
                }
                parse_orderable(r, &qs).map(|_| ()).map_err(refuse)
            }
            _ => {
                if !r["type"]["coding"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["code"] == "order-set")
                {
                    return Ok(());
                }
                let ads = json_all(tx.reader(), "ActivityDefinition")?;
                let lookup = |u: &str| {
                    ads.iter()
                        .find(|a| a["url"] == u)
                        .and_then(|a| a["id"].as_str().map(str::to_owned))
                };
                parse_order_set(r, &lookup).map(|_| ()).map_err(refuse)
            }
        }
    }
}

// ---- import and edits ------------------------------------------------------------

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// `Type/id` of what was created.
    pub created: Vec<String>,
    /// `Type/id` of what was updated (changed).
    pub updated: Vec<String>,
    /// `Type/id` of what was already exactly so.
    pub unchanged: Vec<String>,
}

const IMPORTABLE: [&str; 3] = ["Questionnaire", "ActivityDefinition", "PlanDefinition"];

/// Imports a catalogue Bundle (`transaction` of PUTs, or `collection`) of
/// `Questionnaire`s, `ActivityDefinition`s and order-set
/// `PlanDefinition`s. Every entry is checked first, against the Bundle and
/// the stored catalogue together; any wrong entry refuses the whole Bundle
/// with the entry named. Then all are written in one transaction for
/// `access` (which needs the catalogue-management permission), audited as
/// `catalogue-import`.
pub fn import(
    svc: &FhirService,
    access: &dyn Access,
    bundle: &Value,
) -> Result<ImportReport, CatalogueError> {
    let entries = check_bundle(svc, bundle)?;
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        "catalogue-import",
        "U",
    );
    let mut report = ImportReport::default();
    for r in entries {
        let t = r["resourceType"].as_str().unwrap_or_default().to_owned();
        let id = r["id"].as_str().unwrap_or_default().to_owned();
        let key = format!("{t}/{id}");
        let before = tx.get(&t, &id)?;
        if let Some(b) = &before
            && same_content(b, &r)
        {
            report.unchanged.push(key);
            continue;
        }
        tx.save(r)?;
        if before.is_some() {
            report.updated.push(key);
        } else {
            report.created.push(key);
        }
    }
    tx.commit()?;
    Ok(report)
}

fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("meta");
            m.remove("text");
        }
        v
    };
    strip(a) == strip(b)
}

/// Checks a catalogue Bundle (see [`import`]) and returns its resources in
/// the order they can be written (questionnaires, orderables, sets).
pub fn check_bundle(svc: &FhirService, bundle: &Value) -> Result<Vec<Value>, CatalogueError> {
    let invalid = |m: String| CatalogueError::Invalid(m);
    if bundle["resourceType"] != "Bundle" {
        return Err(invalid(
            "The file is not a FHIR Bundle (resourceType must be Bundle).".to_owned(),
        ));
    }
    if !matches!(
        bundle["type"].as_str(),
        Some("transaction" | "collection" | "batch")
    ) {
        return Err(invalid(
            "The Bundle's type must be transaction (of PUTs) or collection.".to_owned(),
        ));
    }
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return Err(invalid("The Bundle has no entries.".to_owned()));
    }
    let mut seen = HashMap::new();
    let mut resources = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let r = &e["resource"];
        let t = r["resourceType"].as_str().unwrap_or("(no resourceType)");
        let id = r["id"].as_str().unwrap_or("");
        let name = format!("Entry {} ({t}/{id})", i + 1);
        if !IMPORTABLE.contains(&t) {
            return Err(invalid(format!(
                "{name}: a catalogue Bundle holds only Questionnaire, ActivityDefinition and PlanDefinition resources."
            )));
        }
        if !valid_id(id) {
            return Err(invalid(format!(
                "{name}: the resource needs an id (letters, digits and hyphens, up to 64)."
            )));
        }
        if let Some(m) = e["request"]["method"].as_str() {
            let url = e["request"]["url"].as_str().unwrap_or("");
            if m != "PUT" || url != format!("{t}/{id}") {
                return Err(invalid(format!(
                    "{name}: the request must be PUT {t}/{id} (a catalogue entry keeps its id)."
                )));
            }
        }
        if let Some(j) = seen.insert(format!("{t}/{id}"), i + 1) {
            return Err(invalid(format!("{name}: the same resource as entry {j}.")));
        }
        resources.push((i + 1, r.clone()));
    }
    let stored = load(svc)?;
    // Questionnaires: the Bundle's, over the stored ones.
    let mut qs: HashMap<String, Questionnaire> = stored
        .questionnaires
        .iter()
        .map(|q| (q.url.clone(), q.clone()))
        .collect();
    let mut q_out = Vec::new();
    let mut ad_out = Vec::new();
    let mut pd_out = Vec::new();
    for (i, r) in &resources {
        let name = format!(
            "Entry {i} ({}/{})",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        if r["resourceType"] == "Questionnaire" {
            let q = parse_questionnaire(r).map_err(|e| invalid(format!("{name}: {e}.")))?;
            qs.insert(q.url.clone(), q);
            q_out.push(r.clone());
        }
    }
    let mut urls: HashMap<String, String> = stored
        .orderables
        .iter()
        .map(|o| (o.url.clone(), o.id.clone()))
        .collect();
    for (i, r) in &resources {
        let name = format!(
            "Entry {i} ({}/{})",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        if r["resourceType"] == "ActivityDefinition" {
            let o = parse_orderable(r, &qs).map_err(|e| invalid(format!("{name}: {e}.")))?;
            if let Some(other) = urls.get(&o.url).filter(|x| **x != o.id) {
                return Err(invalid(format!(
                    "{name}: the url {} is already ActivityDefinition/{other}'s.",
                    o.url
                )));
            }
            urls.insert(o.url.clone(), o.id.clone());
            ad_out.push(r.clone());
        }
    }
    for (i, r) in &resources {
        let name = format!(
            "Entry {i} ({}/{})",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        if r["resourceType"] == "PlanDefinition" {
            parse_order_set(r, &|u| urls.get(u).cloned())
                .map_err(|e| invalid(format!("{name}: {e}.")))?;
            pd_out.push(r.clone());
        }
    }
    q_out.extend(ad_out);
    q_out.extend(pd_out);
    Ok(q_out)
}

/// Creates or replaces an orderable (the admin screens). Elements the
/// catalogue does not model are kept from the stored version. `expected`
/// is `None` to create one (refused if the id is taken).
pub fn save_orderable(
    svc: &FhirService,
    access: &dyn Access,
    o: &Orderable,
    create: bool,
) -> Result<(), CatalogueError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        if create {
            "catalogue-add"
        } else {
            "catalogue-edit"
        },
        if create { "C" } else { "U" },
    );
    tx.lock(&[format!("catalogue:ActivityDefinition/{}", o.id)])?;
    let before = tx.get("ActivityDefinition", &o.id)?;
    if create && before.is_some() {
        return Err(CatalogueError::Invalid(format!(
            "The id {} is already used by another test or examination: choose another.",
            o.id
        )));
    }
    if !create && before.is_none() {
        return Err(CatalogueError::NotFound(format!(
            "There is no test or examination with id {}.",
            o.id
        )));
    }
    tx.save(o.to_resource(before.as_ref()))?;
    tx.commit()?;
    Ok(())
}

/// Creates or replaces an order set (the admin screens).
pub fn save_order_set(
    svc: &FhirService,
    access: &dyn Access,
    set: &OrderSet,
    create: bool,
) -> Result<(), CatalogueError> {
    let catalogue = load(svc)?;
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        if create {
            "order-set-add"
        } else {
            "order-set-edit"
        },
        if create { "C" } else { "U" },
    );
    tx.lock(&[format!("catalogue:PlanDefinition/{}", set.id)])?;
    let before = tx.get("PlanDefinition", &set.id)?;
    if create && before.is_some() {
        return Err(CatalogueError::Invalid(format!(
            "The id {} is already used by another order set: choose another.",
            set.id
        )));
    }
    if !create && before.is_none() {
        return Err(CatalogueError::NotFound(format!(
            "There is no order set with id {}.",
            set.id
        )));
    }
    let url_of = |id: &str| catalogue.orderable(id).map(|o| o.url.clone());
    tx.save(set.to_resource(before.as_ref(), &url_of))?;
    tx.commit()?;
    Ok(())
}

/// Retires (`active` false) or reinstates an orderable
/// (`ActivityDefinition`) or order set (`PlanDefinition`). Nothing is
/// deleted: orders placed from it still name it.
pub fn set_active(
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    id: &str,
    active: bool,
) -> Result<(), CatalogueError> {
    if !matches!(resource_type, "ActivityDefinition" | "PlanDefinition") {
        return Err(CatalogueError::Invalid(format!(
            "{resource_type} is not part of the order catalogue."
        )));
    }
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        if active {
            "catalogue-reinstate"
        } else {
            "catalogue-retire"
        },
        "U",
    );
    tx.lock(&[format!("catalogue:{resource_type}/{id}")])?;
    let mut r = tx.get(resource_type, id)?.ok_or_else(|| {
        CatalogueError::NotFound(format!(
            "There is no {resource_type}/{id} in the catalogue."
        ))
    })?;
    let to = if active { "active" } else { "retired" };
    if r["status"] == to {
        return Ok(());
    }
    r["status"] = json!(to);
    tx.save(r)?;
    tx.commit()?;
    Ok(())
}

/// The stored resource behind an orderable or order set, read for
/// `access` (audited): what the admin screens show as FHIR.
pub fn resource_as(
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    id: &str,
) -> Result<Value, CatalogueError> {
    svc.read_as(access, resource_type, id)?
        .ok_or_else(|| CatalogueError::NotFound(format!("There is no {resource_type}/{id}.")))
}

/// A map from orderable id to the answers of its questionnaire, as the
/// requesting page passes them (a convenience type for callers).
pub type Answers = BTreeMap<String, BTreeMap<String, String>>;

#[cfg(test)]
mod tests;
