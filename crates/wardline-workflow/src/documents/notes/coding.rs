//! Coded diagnoses and procedures entered from a clinical note.
//!
//! # The model (FHIR R4; the discharge summary reads exactly this shape)
//!
//! * **A diagnosis or problem** is a `Condition`: `subject`, `encounter`
//!   (the note's), `category[0]` `encounter-diagnosis` or
//!   `problem-list-item` (FHIR's condition-category), `code.coding[0]`
//!   SNOMED CT and `code.coding[1]` the ICD-10 code ([`ICD10_SYSTEM`]) for
//!   the coding staff, `clinicalStatus` `active`, `verificationStatus`
//!   `confirmed` or `provisional`, `recordedDate`, `recorder`.
//! * **A procedure** is a `Procedure`: `subject`, `encounter`, `status`
//!   `completed`, `code.coding[0]` SNOMED CT and `code.coding[1]` OPCS-4
//!   ([`OPCS4_SYSTEM`]), `performedDateTime`, `recorder`.
//! * Each is referenced from the note's impression section `entry`: on a
//!   draft that is an edit; on a signed note it is an amendment by the
//!   author ("Coded entry added: …"), through the one lifecycle function.
//! * What may be entered is the curated picking list [`picklist`]
//!   (`picklist.json`, documented in `docs/clinical-notes-picklist.md`).
//! * A coder corrects the classification code ([`correct_classification`]):
//!   the ICD-10 / OPCS-4 coding is replaced (the SNOMED CT concept the
//!   clinician chose never changes), the correction is a `note` on the
//!   resource (who, when, from what) and the version before stays in the
//!   history. Codes are checked by [`parse_icd10`] / [`parse_opcs4`].

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::{HEADINGS, NotesError, SNOMED_SYSTEM, begin, fhir_time, me, note_in, transition};
use crate::fhir::reference_id;

/// ICD-10 (WHO; the UK uses the 5th edition), FHIR's identifier for it.
pub const ICD10_SYSTEM: &str = "http://hl7.org/fhir/sid/icd-10";
/// OPCS-4 (NHS England's classification of interventions and procedures).
/// Local: no FHIR identifier for it was verified.
pub const OPCS4_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/opcs-4";
/// FHIR's condition categories.
pub const CONDITION_CATEGORY_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/condition-category";
const CLINICAL_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const VERIFICATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";

/// The heading whose `entry` lists the coded entries.
pub const CODED_HEADING: &str = "impression";

/// An ICD-10 code in its usual form (`J18.9`, `I64`, `I10.X`), or why not:
/// a letter, two digits, then optionally a `.` (which may be left out) and
/// a fourth character (a digit, or `X` the UK's filler), optionally a fifth
/// digit and a UK dagger/asterisk marker (`D`/`A`). Upper-cased; spaces
/// dropped.
pub fn parse_icd10(s: &str) -> Result<String, String> {
    let c: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let bad = || {
        Err(format!(
            "{s:?} is not an ICD-10 code: a letter, two digits and, after a point, one more (for example J18.9)."
        ))
    };
    let b = c.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_digit() || !b[2].is_ascii_digit()
    {
        return bad();
    }
    let rest = c[3..].strip_prefix('.').unwrap_or(&c[3..]);
    if c[3..].starts_with('.') && rest.is_empty() {
        return bad();
    }
    let r = rest.as_bytes();
    let ok = match r.len() {
        0 => true,
        1 => r[0].is_ascii_digit() || r[0] == b'X',
        2 => {
            (r[0].is_ascii_digit() || r[0] == b'X')
                && (r[1].is_ascii_digit() || matches!(r[1], b'A' | b'D'))
        }
        3 => {
            (r[0].is_ascii_digit() || r[0] == b'X')
                && r[1].is_ascii_digit()
                && matches!(r[2], b'A' | b'D')
        }
        _ => false,
    };
    if !ok {
        return bad();
    }
    Ok(if rest.is_empty() {
        c[..3].to_owned()
    } else {
        format!("{}.{rest}", &c[..3])
    })
}

/// An OPCS-4 code in its usual form (`H01.9`), or why not: a chapter
/// letter (A–Z but I and O, which OPCS-4 does not use), two digits, then
/// optionally a `.` (which may be left out) and one digit.
pub fn parse_opcs4(s: &str) -> Result<String, String> {
    let c: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let b = c.as_bytes();
    let head = b.len() >= 3
        && b[0].is_ascii_uppercase()
        && !matches!(b[0], b'I' | b'O')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit();
    let rest = c.get(3..).unwrap_or("");
    let tail = rest.strip_prefix('.').unwrap_or(rest);
    let ok = head && (rest.is_empty() || (tail.len() == 1 && tail.as_bytes()[0].is_ascii_digit()));
    if !ok {
        return Err(format!(
            "{s:?} is not an OPCS-4 code: a chapter letter, two digits and, after a point, one more (for example H01.9)."
        ));
    }
    Ok(if tail.is_empty() {
        c[..3].to_owned()
    } else {
        format!("{}.{tail}", &c[..3])
    })
}

/// Diagnosis (→ `Condition`, ICD-10) or procedure (→ `Procedure`, OPCS-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    Diagnosis,
    Procedure,
}

/// One entry of the picking list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pick {
    pub kind: EntryKind,
    pub snomed: String,
    pub display: String,
    /// The ICD-10 (diagnosis) or OPCS-4 (procedure) code.
    pub code: String,
    pub code_display: String,
    /// Checked against the published releases; `false` is a local entry
    /// (see the data file's `about`).
    pub verified: bool,
}

#[derive(Deserialize)]
struct PickFile {
    entries: Vec<Pick>,
}

/// The curated picking list (`picklist.json`).
pub fn picklist() -> &'static [Pick] {
    static LIST: OnceLock<Vec<Pick>> = OnceLock::new();
    LIST.get_or_init(|| {
        serde_json::from_str::<PickFile>(include_str!("picklist.json"))
            .map(|f| f.entries)
            .unwrap_or_default()
    })
}

/// The picking-list entry for a SNOMED CT code.
pub fn pick(snomed: &str) -> Option<&'static Pick> {
    picklist().iter().find(|p| p.snomed == snomed)
}

/// What the clinician enters from the note.
#[derive(Debug, Clone, PartialEq)]
pub struct CodedInput {
    /// The SNOMED CT code of a picking-list entry.
    pub snomed: String,
    /// Diagnoses: `encounter-diagnosis` or `problem-list-item`.
    pub category: String,
    /// Diagnoses: `confirmed` or `provisional`.
    pub verification: String,
    /// A classification code other than the list's (checked), if given.
    pub classification: Option<String>,
}

fn classification_coding(kind: EntryKind, code: &str, display: Option<&str>) -> Value {
    let system = match kind {
        EntryKind::Diagnosis => ICD10_SYSTEM,
        EntryKind::Procedure => OPCS4_SYSTEM,
    };
    let mut c = json!({"system": system, "code": code});
    if let Some(d) = display {
        c["display"] = json!(d);
    }
    c
}

/// Adds a coded diagnosis or procedure to the note (see the module
/// documentation); the new resource's `Type/id`.
pub fn add_entry(
    svc: &FhirService,
    access: &dyn Access,
    note: &str,
    input: &CodedInput,
    now: OffsetDateTime,
) -> Result<String, NotesError> {
    let who = me(access)?;
    let mut tx = begin(svc, access, "notes-code", "C")?;
    let r = add_entry_in(&mut tx, note, input, &who, now)?;
    tx.commit()?;
    Ok(r)
}

/// The rule of adding a coded entry, in `tx`, by the note's author `by`.
pub fn add_entry_in(
    tx: &mut Tx<'_>,
    note_id: &str,
    input: &CodedInput,
    by: &str,
    now: OffsetDateTime,
) -> Result<String, NotesError> {
    let p = pick(input.snomed.trim()).ok_or_else(|| {
        NotesError::Invalid(
            "snomed",
            "Choose a diagnosis or procedure from the list.".into(),
        )
    })?;
    let (code, display) = match input.classification.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => {
            let parsed = match p.kind {
                EntryKind::Diagnosis => parse_icd10(c),
                EntryKind::Procedure => parse_opcs4(c),
            }
            .map_err(|m| NotesError::Invalid("classification", m))?;
            let same = parsed == p.code;
            (parsed, same.then_some(p.code_display.as_str()))
        }
        _ => (p.code.clone(), Some(p.code_display.as_str())),
    };
    let mut note = note_in(tx, note_id)?;
    let status = note["status"].as_str().unwrap_or("unknown").to_owned();
    if status == "entered-in-error" {
        return Err(NotesError::Conflict(
            "This note was entered in error: nothing is added to it.".into(),
        ));
    }
    if super::author(&note) != Some(by) {
        return Err(NotesError::Forbidden(
            "Only the note's author adds coded entries to it.".into(),
        ));
    }
    let subject = note["subject"].clone();
    let snomed = json!({"system": SNOMED_SYSTEM, "code": p.snomed, "display": p.display});
    let concept = json!({"coding": [snomed, classification_coding(p.kind, &code, display)], "text": p.display});
    let mut r = match p.kind {
        EntryKind::Diagnosis => {
            if !matches!(
                input.category.as_str(),
                "encounter-diagnosis" | "problem-list-item"
            ) {
                return Err(NotesError::Invalid(
                    "category",
                    "Choose whether this is a diagnosis of this encounter or a problem for the problem list.".into(),
                ));
            }
            if !matches!(input.verification.as_str(), "confirmed" | "provisional") {
                return Err(NotesError::Invalid(
                    "verification",
                    "Choose whether the diagnosis is confirmed or provisional.".into(),
                ));
            }
            json!({"resourceType": "Condition",
                "clinicalStatus": {"coding": [{"system": CLINICAL_SYSTEM, "code": "active"}]},
                "verificationStatus": {"coding": [{"system": VERIFICATION_SYSTEM, "code": input.verification}]},
                "category": [{"coding": [{"system": CONDITION_CATEGORY_SYSTEM, "code": input.category}]}],
                "code": concept, "subject": subject,
                "recordedDate": fhir_time(now), "recorder": {"reference": by}})
        }
        EntryKind::Procedure => json!({"resourceType": "Procedure", "status": "completed",
            "code": concept, "subject": subject,
            "performedDateTime": fhir_time(now), "recorder": {"reference": by}}),
    };
    if note.get("encounter").is_some() {
        r["encounter"] = note["encounter"].clone();
    }
    let t = r["resourceType"].as_str().unwrap_or_default().to_owned();
    let saved = tx.save(r)?;
    let reference = format!("{t}/{}", saved.id);
    add_reference(&mut note, &reference, &p.display);
    if status != "preliminary" {
        let reason = format!("Coded entry added: {}", p.display);
        transition(&mut note, "amended", Some(by), Some(&reason), now)?;
    }
    note["date"] = json!(fhir_time(now));
    tx.save(note)?;
    Ok(reference)
}

fn add_reference(note: &mut Value, reference: &str, display: &str) {
    let entry = json!({"reference": reference, "display": display});
    let sections = note.get_mut("section").and_then(Value::as_array_mut);
    let Some(sections) = sections else {
        return;
    };
    let is_coded = |s: &Value| {
        s["code"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["code"] == CODED_HEADING)
    };
    if let Some(s) = sections.iter_mut().find(|s| is_coded(s)) {
        match s.get_mut("entry").and_then(Value::as_array_mut) {
            Some(es) => es.push(entry),
            None => s["entry"] = json!([entry]),
        }
        return;
    }
    let title = HEADINGS
        .iter()
        .find(|(c, _)| *c == CODED_HEADING)
        .map_or("Impression", |(_, t)| t);
    let new = json!({"title": title,
        "code": {"coding": [{"system": super::HEADING_SYSTEM, "code": CODED_HEADING, "display": title}]},
        "text": {"status": "generated", "div": super::narrative("Coded entries only.")},
        "entry": [entry]});
    // Keep the fixed order: before the plan when there is one.
    let at = sections
        .iter()
        .position(|s| {
            s["code"]["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["code"] == "plan")
        })
        .unwrap_or(sections.len());
    sections.insert(at, new);
}

/// A coded entry as the note page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Coded {
    /// `Condition/…` or `Procedure/…`.
    pub reference: String,
    pub kind: EntryKind,
    pub snomed: Option<String>,
    pub display: String,
    /// The ICD-10 or OPCS-4 code.
    pub classification: Option<String>,
    /// `encounter-diagnosis`, `problem-list-item` (diagnoses).
    pub category: Option<String>,
    pub verification: Option<String>,
    /// Coders' corrections (the resource's notes).
    pub corrections: Vec<String>,
}

fn coding_of<'a>(r: &'a Value, system: &str) -> Option<&'a str> {
    r["code"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == system)?["code"]
        .as_str()
}

/// Reads a coded resource into what the page shows.
pub fn coded(r: &Value) -> Option<Coded> {
    let t = r["resourceType"].as_str()?;
    let kind = match t {
        "Condition" => EntryKind::Diagnosis,
        "Procedure" => EntryKind::Procedure,
        _ => return None,
    };
    let system = match kind {
        EntryKind::Diagnosis => ICD10_SYSTEM,
        EntryKind::Procedure => OPCS4_SYSTEM,
    };
    Some(Coded {
        reference: format!("{t}/{}", r["id"].as_str()?),
        kind,
        snomed: coding_of(r, SNOMED_SYSTEM).map(str::to_owned),
        display: crate::fhir::concept_text(&r["code"]).unwrap_or_default(),
        classification: coding_of(r, system).map(str::to_owned),
        category: r["category"][0]["coding"][0]["code"]
            .as_str()
            .map(str::to_owned),
        verification: r["verificationStatus"]["coding"][0]["code"]
            .as_str()
            .map(str::to_owned),
        corrections: r["note"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["text"].as_str().map(str::to_owned))
            .collect(),
    })
}

/// The coded entries the note references, as the caller may see them.
pub fn entries_of(
    svc: &FhirService,
    access: &dyn Access,
    note: &Value,
) -> Result<Vec<Coded>, NotesError> {
    let mut out = Vec::new();
    for s in note["section"].as_array().into_iter().flatten() {
        for e in s["entry"].as_array().into_iter().flatten() {
            for t in ["Condition", "Procedure"] {
                if let Some(id) = reference_id(e, t)
                    && let Some(r) = svc.read_as(access, t, id)?
                    && let Some(c) = coded(&r)
                {
                    out.push(c);
                }
            }
        }
    }
    Ok(out)
}

/// A coder corrects the ICD-10 (Condition) or OPCS-4 (Procedure) code of a
/// coded entry, as the person signed in.
pub fn correct_classification(
    svc: &FhirService,
    access: &dyn Access,
    reference: &str,
    code: &str,
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "notes-code", "U")?;
    correct_classification_in(&mut tx, reference, code, who.as_deref(), now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of a classification correction, in `tx` (see the module
/// documentation).
pub fn correct_classification_in(
    tx: &mut Tx<'_>,
    reference: &str,
    code: &str,
    by: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let (t, id) = reference
        .split_once('/')
        .filter(|(t, _)| matches!(*t, "Condition" | "Procedure"))
        .ok_or_else(|| NotesError::NotFound(format!("There is no coded entry {reference}.")))?;
    let (kind, system) = if t == "Condition" {
        (EntryKind::Diagnosis, ICD10_SYSTEM)
    } else {
        (EntryKind::Procedure, OPCS4_SYSTEM)
    };
    let code = match kind {
        EntryKind::Diagnosis => parse_icd10(code),
        EntryKind::Procedure => parse_opcs4(code),
    }
    .map_err(|m| NotesError::Invalid("classification", m))?;
    tx.lock(&[reference])?;
    let mut r = tx
        .get(t, id)?
        .ok_or_else(|| NotesError::NotFound(format!("There is no coded entry {reference}.")))?;
    let old = coding_of(&r, system).map(str::to_owned);
    if old.as_deref() == Some(code.as_str()) {
        return Err(NotesError::Invalid(
            "classification",
            format!("The code is already {code}."),
        ));
    }
    let Some(codings) = r["code"]["coding"].as_array_mut() else {
        return Err(NotesError::Conflict(
            "This entry has no coded concept to classify.".into(),
        ));
    };
    codings.retain(|c| c["system"] != system);
    codings.push(classification_coding(kind, &code, None));
    let label = if kind == EntryKind::Diagnosis {
        "ICD-10"
    } else {
        "OPCS-4"
    };
    let mut note = json!({"time": fhir_time(now), "text": format!(
        "{label} code corrected from {} to {code} by the coding team.",
        old.as_deref().unwrap_or("none")
    )});
    if let Some(b) = by {
        note["authorReference"] = json!({"reference": b});
    }
    match r.get_mut("note").and_then(Value::as_array_mut) {
        Some(ns) => ns.push(note),
        None => r["note"] = json!([note]),
    }
    tx.save(r)?;
    Ok(())
}
