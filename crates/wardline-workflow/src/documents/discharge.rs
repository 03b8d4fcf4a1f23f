//! Discharge summaries (issue 18): the hospital's account of an admission
//! for the GP, under the PRSB eDischarge Summary headings, pre-filled from
//! the record, edited and signed by a clinician, kept as a FHIR document
//! and rendered as HTML (the web) and PDF ([`pdf`]).
//!
//! # The model (FHIR R4)
//!
//! * **A summary** is a `Composition`: `type` SNOMED CT [`DISCHARGE_SUMMARY`]
//!   "Discharge summary", `subject` the patient, `encounter` the admission,
//!   `author` who started it, `date`, `title`, and one `section` per
//!   heading of [`HEADINGS`], in that order, each with `title` the PRSB
//!   heading, `code` [`HEADING_SYSTEM`]`|{key}`, `text` the narrative
//!   (XHTML, generated from the lines below), the lines pre-filled from the
//!   record in [`LINE_EXT`] (repeated `valueString`), what the clinician
//!   wrote in [`WRITTEN_EXT`], `entry` the records a line was read from
//!   (`Condition`, `Procedure`, `DiagnosticReport`, `MedicationRequest`,
//!   `AllergyIntolerance`, the GP's `Organization`), and, when nothing is
//!   recorded, `emptyReason` (`nilknown` / `unavailable`, with the sentence
//!   the reader is shown as its text). One summary per admission.
//! * **Pre-fill** ([`prefill`]) reads, each with the caller's access: the
//!   patient's demographics; the GP practice (`Patient.generalPractitioner`
//!   → `Organization`, with its ODS code); the admission (period, wards,
//!   consultant, admission method and source; discharge date, destination);
//!   diagnoses (`Condition`s with `encounter` the admission, SNOMED CT with
//!   any ICD-10 coding); procedures (`Procedure`s with that `encounter`);
//!   investigation results (the admission's `DiagnosticReport`s with their
//!   `Observation`s); medications on discharge with changes and reasons
//!   ([`crate::medicines::discharge`], the TTO comparison); allergies.
//!   What is absent is said in the section in plain words; what the caller
//!   may not see is counted there, never silently left out.
//! * **Status lifecycle** (one home: [`allowed`]; the [`DischargeRule`] holds
//!   every write to it): `preliminary` while drafted and edited (each save
//!   reads the record again) → `final` when signed ([`sign_in`], the only
//!   place a summary becomes final) → `amended` when changed after signing
//!   ([`amend_in`]: a new version, signed again); any → `entered-in-error`.
//!   A signed summary is never changed in place.
//! * **Signing** ([`sign_in`]), by a clinician (`RecordClinical`, the policy
//!   on `Composition`): the Composition gets `attester` (`legal`, `time`,
//!   `party`) and the *person completing record* heading (name, role,
//!   date); in the same transaction Wardline stores the PDF as a `Binary`,
//!   the FHIR **document** `Bundle` (`type` `document`, `identifier`,
//!   `timestamp`, the Composition first, then every resource it
//!   references) and a `DocumentReference` (`type` [`DISCHARGE_SUMMARY`],
//!   `context.encounter`, `content` the Bundle and the PDF). The
//!   Composition names its document in [`DOCUMENT_EXT`]. An amendment
//!   stores a new Bundle, PDF and DocumentReference (`relatesTo` `replaces`
//!   the earlier one, which becomes `superseded`); the old Bundle stays.
//!
//! Audit subtypes: `discharge-summary-draft` (start, save), `-sign`,
//! `-amend`, `-view`, `-pdf`.

pub mod operation;
pub mod pdf;
pub mod prefill;
mod seal;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, ProposedWrite, RuleTx, Tx, WriteRule};
use wardline_fhir::FhirError;

use crate::fhir::reference_id;
pub use prefill::{Patient, Prefill, prefill};
pub use seal::composition_in_document;
use seal::seal_in;

/// SNOMED CT.
pub const SNOMED_SYSTEM: &str = "http://snomed.info/sct";
/// SNOMED CT 373942005 "Discharge summary" (Composition and DocumentReference type).
pub const DISCHARGE_SUMMARY: &str = "373942005";
/// The PRSB headings, by Wardline's key (`Composition.section.code`).
pub const HEADING_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/prsb-edischarge-heading";
/// A line pre-filled from the record (`valueString`, repeated, on a section).
pub const LINE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/section-line";
/// What the clinician wrote under the heading (`valueString`, on a section).
pub const WRITTEN_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/section-written";
/// The signed document (`valueReference` `Bundle/…`, on the Composition).
pub const DOCUMENT_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/signed-document";
/// The document Bundle's identifier system (value `urn:uuid:…`).
pub const DOCUMENT_ID_SYSTEM: &str = "urn:ietf:rfc:3986";
/// FHIR's list-empty-reason codes (`Composition.section.emptyReason`).
pub const EMPTY_REASON_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/list-empty-reason";

/// One PRSB eDischarge heading as Wardline keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Heading {
    pub key: &'static str,
    pub title: &'static str,
    /// Read from the record.
    pub prefilled: bool,
    /// The clinician writes under it.
    pub written: bool,
}

impl Heading {
    /// A heading: read from the record (`prefilled`), written by the
    /// clinician (`written`), or both.
    pub const fn new(
        key: &'static str,
        title: &'static str,
        prefilled: bool,
        written: bool,
    ) -> Heading {
        Heading {
            key,
            title,
            prefilled,
            written,
        }
    }
}

const fn h(key: &'static str, title: &'static str, prefilled: bool, written: bool) -> Heading {
    Heading::new(key, title, prefilled, written)
}

/// The headings of a summary, in the PRSB eDischarge Summary order.
pub const HEADINGS: [Heading; 13] = [
    h("person-demographics", "Person demographics", true, false),
    h("gp-practice", "GP practice", true, false),
    h("admission-details", "Admission details", true, false),
    h("discharge-details", "Discharge details", true, true),
    h("diagnoses", "Diagnoses", true, false),
    h("clinical-summary", "Clinical summary", false, true),
    h("procedures", "Procedures", true, false),
    h(
        "investigation-results",
        "Investigation results",
        true,
        false,
    ),
    h(
        "medications",
        "Medications and medical devices",
        true,
        false,
    ),
    h("allergies", "Allergies and adverse reactions", true, false),
    h(
        "information-given",
        "Information and advice given",
        false,
        true,
    ),
    h(
        "person-completing-record",
        "Person completing record",
        false,
        false,
    ),
    h("plan", "Plan and requested actions", false, true),
];

/// The heading with this key.
pub fn heading(key: &str) -> Option<&'static Heading> {
    SUMMARY.heading(key)
}

/// Reads the record for a document's pre-filled headings.
pub type PrefillFn =
    fn(&FhirService, &dyn Access, &str, OffsetDateTime) -> Result<Prefill, DischargeError>;
/// Queues a copy of a signed document for the patient, in the signing
/// transaction.
pub type CopyFn = fn(&mut Tx<'_>, &Signed, OffsetDateTime) -> Result<(), DischargeError>;

/// A kind of signed clinical document kept under fixed headings: the
/// discharge summary ([`SUMMARY`]) and the clinic letter
/// ([`super::letters::LETTER`]) share this module's whole lifecycle (draft,
/// sign, amend, document Bundle, PDF, delivery to the GP practice, the
/// write rule) and differ only in what is here.
#[derive(Debug)]
pub struct Form {
    /// SNOMED CT type (Composition and DocumentReference `type`).
    pub code: &'static str,
    /// The type's display and the document's title.
    pub display: &'static str,
    /// How sentences name one ("discharge summary").
    pub noun: &'static str,
    /// How sentences name its encounter ("admission").
    pub of: &'static str,
    pub headings: &'static [Heading],
    /// `Composition.section.code` system.
    pub heading_system: &'static str,
    /// The written headings it is not signed without.
    pub required: &'static [&'static str],
    /// Audit subtype prefix (`{audit}-draft`, `-sign`, `-amend`, `-view`, `-pdf`).
    pub audit: &'static str,
    /// Its delivery kind to the GP practice.
    pub kind: crate::transfers::Kind,
    pub prefill: PrefillFn,
    pub copy_to_patient: Option<CopyFn>,
}

/// The discharge summary.
pub static SUMMARY: Form = Form {
    code: DISCHARGE_SUMMARY,
    display: "Discharge summary",
    noun: "discharge summary",
    of: "admission",
    headings: &HEADINGS,
    heading_system: HEADING_SYSTEM,
    required: &REQUIRED_TO_SIGN,
    audit: "discharge-summary",
    kind: crate::transfers::Kind::DischargeSummary,
    prefill: prefill::prefill,
    copy_to_patient: None,
};

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The forms there are.
pub fn forms() -> [&'static Form; 2] {
    [&SUMMARY, &super::letters::LETTER]
}

/// The form of a stored Composition, by its type.
pub fn form_of(c: &Value) -> Option<&'static Form> {
    forms().into_iter().find(|f| f.is(c))
}

impl Form {
    /// The heading with this key.
    pub fn heading(&self, key: &str) -> Option<&'static Heading> {
        self.headings.iter().find(|h| h.key == key)
    }

    /// Whether a Composition is of this form.
    pub fn is(&self, c: &Value) -> bool {
        c["type"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["system"] == SNOMED_SYSTEM && c["code"] == self.code)
    }

    fn type_concept(&self) -> Value {
        json!({"coding": [{"system": SNOMED_SYSTEM, "code": self.code, "display": self.display}]})
    }

    fn capital(&self) -> String {
        format!("A {}", self.noun)
    }

    fn not_found(&self, id: &str) -> DischargeError {
        DischargeError::NotFound(format!("There is no {} {id}.", self.noun))
    }
}

/// The FHIR Composition statuses a summary takes.
pub const STATUSES: [&str; 4] = ["preliminary", "final", "amended", "entered-in-error"];

/// Whether a summary (or letter) may go from `from` to `to` (see the module
/// documentation): the one home of the lifecycle.
pub fn allowed(from: &str, to: &str) -> bool {
    if !STATUSES.contains(&from) || !STATUSES.contains(&to) {
        return false;
    }
    matches!(
        (from, to),
        ("preliminary", "preliminary" | "final")
            | ("final" | "amended", "amended")
            | ("preliminary" | "final" | "amended", "entered-in-error")
            | ("entered-in-error", "entered-in-error")
    )
}

/// One heading of a summary as it is shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub key: String,
    pub title: String,
    /// Pre-filled from the record.
    pub lines: Vec<String>,
    /// The records the lines were read from (`Condition/…`).
    pub entries: Vec<String>,
    /// What the reader is told when nothing is recorded.
    pub empty: Option<String>,
    /// What the clinician wrote.
    pub written: Option<String>,
}

/// Who signed, as the summary says it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signature {
    pub by: String,
    pub name: String,
    pub role: Option<String>,
    pub at: String,
}

/// A summary as the screens, the PDF and the tests read it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub version: String,
    pub status: String,
    pub patient_id: String,
    pub encounter_id: String,
    pub patient: Patient,
    pub date: String,
    /// The document's title ("Discharge summary", "Clinic letter").
    pub title: String,
    pub sections: Vec<Section>,
    pub signed: Option<Signature>,
    /// `Bundle/…` of the signed document.
    pub document: Option<String>,
}

impl Summary {
    pub fn section(&self, key: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.key == key)
    }
}

/// What a delivery step needs once a summary is signed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signed {
    pub composition: String,
    pub patient: String,
    pub encounter: String,
    pub bundle: String,
    pub binary: String,
    pub document_reference: String,
    /// The GP practice `Organization` id, when the record names one.
    pub gp_practice: Option<String>,
}

/// What went wrong with a discharge summary, in a sentence, with its HTTP
/// status ([`DischargeError::status`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum DischargeError {
    Invalid(String),
    /// What was written under a heading is wrong (400): the heading's key
    /// (the form field) and the sentence.
    Field(String, String),
    NotFound(String),
    Forbidden(String),
    Conflict(String),
    Store(String),
}

impl DischargeError {
    pub fn status(&self) -> u16 {
        match self {
            DischargeError::Invalid(_) | DischargeError::Field(..) => 400,
            DischargeError::NotFound(_) => 404,
            DischargeError::Forbidden(_) => 403,
            DischargeError::Conflict(_) => 409,
            DischargeError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            DischargeError::Invalid(m)
            | DischargeError::Field(_, m)
            | DischargeError::NotFound(m)
            | DischargeError::Forbidden(m)
            | DischargeError::Conflict(m)
            | DischargeError::Store(m) => m,
        }
    }
}

impl std::fmt::Display for DischargeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for DischargeError {}

impl From<FhirError> for DischargeError {
    fn from(e: FhirError) -> DischargeError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "document") {
            R::Forbidden(m) => DischargeError::Forbidden(m),
            R::NotFound(m) => DischargeError::NotFound(m),
            R::Concurrent(m) => DischargeError::Conflict(m),
            R::Invalid(m) => DischargeError::Invalid(m),
            R::Store(m) => DischargeError::Store(m),
        }
    }
}

impl From<crate::medicines::MedicinesError> for DischargeError {
    fn from(e: crate::medicines::MedicinesError) -> DischargeError {
        let m = e.message();
        match e.status() {
            403 => DischargeError::Forbidden(m),
            404 => DischargeError::NotFound(m),
            409 => DischargeError::Conflict(m),
            400..=499 => DischargeError::Invalid(m),
            _ => DischargeError::Store(m),
        }
    }
}

// ---------------------------------------------------------------- reading

fn ext_strings(v: &Value, url: &str) -> Vec<String> {
    v["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == url)
        .filter_map(|e| e["valueString"].as_str().map(str::to_owned))
        .collect()
}

/// Whether a Composition is a discharge summary.
pub fn is_summary(c: &Value) -> bool {
    SUMMARY.is(c)
}

/// The sections of a stored summary.
pub fn sections_of(c: &Value) -> Vec<Section> {
    c["section"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Section {
            key: s["code"]["coding"][0]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            title: s["title"].as_str().unwrap_or_default().to_owned(),
            lines: ext_strings(s, LINE_EXT),
            entries: s["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["reference"].as_str().map(str::to_owned))
                .collect(),
            empty: s["emptyReason"]["text"].as_str().map(str::to_owned),
            written: ext_strings(s, WRITTEN_EXT).into_iter().next(),
        })
        .collect()
}

/// A stored summary as [`Summary`] (`patient` from the stored Patient).
pub fn summary_of(c: &Value, patient: Patient) -> Summary {
    let signed = c["attester"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["mode"] == "legal"))
        .map(|a| Signature {
            by: a["party"]["reference"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name: a["party"]["display"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            role: a["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["url"] == ROLE_EXT)
                .and_then(|e| e["valueString"].as_str().map(str::to_owned)),
            at: a["time"].as_str().unwrap_or_default().to_owned(),
        });
    Summary {
        id: c["id"].as_str().unwrap_or_default().to_owned(),
        version: c["meta"]["versionId"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        status: c["status"].as_str().unwrap_or_default().to_owned(),
        patient_id: reference_id(&c["subject"], "Patient")
            .unwrap_or_default()
            .to_owned(),
        encounter_id: reference_id(&c["encounter"], "Encounter")
            .unwrap_or_default()
            .to_owned(),
        patient,
        date: c["date"].as_str().unwrap_or_default().to_owned(),
        title: c["title"]
            .as_str()
            .unwrap_or("Clinical document")
            .to_owned(),
        sections: sections_of(c),
        signed,
        document: document_of(c),
    }
}

/// The signer's role as the summary says it (`valueString`, on the attester).
pub const ROLE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/attester-role";

/// `Bundle/…` of a signed summary's document.
pub fn document_of(c: &Value) -> Option<String> {
    c["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == DOCUMENT_EXT)?["valueReference"]["reference"]
        .as_str()
        .map(str::to_owned)
}

// ---------------------------------------------------------------- writing

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A section as stored (a discharge summary's heading).
pub fn section_json(s: &Section) -> Value {
    section_json_of(HEADING_SYSTEM, s)
}

/// A section as stored, its heading coded in `system`.
pub fn section_json_of(system: &str, s: &Section) -> Value {
    let mut div = String::from("<div xmlns=\"http://www.w3.org/1999/xhtml\">");
    if !s.lines.is_empty() {
        div.push_str("<ul>");
        for l in &s.lines {
            div.push_str(&format!("<li>{}</li>", esc(l)));
        }
        div.push_str("</ul>");
    }
    if let Some(e) = &s.empty {
        div.push_str(&format!("<p>{}</p>", esc(e)));
    }
    if let Some(w) = &s.written {
        for p in w.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
            div.push_str(&format!("<p>{}</p>", esc(p)));
        }
    }
    if s.lines.is_empty() && s.empty.is_none() && s.written.is_none() {
        div.push_str("<p>Nothing written.</p>");
    }
    div.push_str("</div>");
    let mut ext: Vec<Value> = s
        .lines
        .iter()
        .map(|l| json!({"url": LINE_EXT, "valueString": l}))
        .collect();
    if let Some(w) = &s.written {
        ext.push(json!({"url": WRITTEN_EXT, "valueString": w}));
    }
    let mut v = json!({
        "title": s.title,
        "code": {"coding": [{"system": system, "code": s.key, "display": s.title}]},
        "text": {"status": if s.written.is_some() { "additional" } else { "generated" }, "div": div},
    });
    if !ext.is_empty() {
        v["extension"] = json!(ext);
    }
    if !s.entries.is_empty() {
        v["entry"] = json!(
            s.entries
                .iter()
                .map(|r| json!({"reference": r}))
                .collect::<Vec<_>>()
        );
    } else if let Some(e) = &s.empty {
        let code = if e.contains("may not see") {
            "withheld"
        } else {
            "nilknown"
        };
        v["emptyReason"] =
            json!({"coding": [{"system": EMPTY_REASON_SYSTEM, "code": code}], "text": e});
    }
    v
}

/// The sections of a summary (or letter, `prefill.form`): the pre-filled
/// ones from `prefill`, the written ones from `written` (by heading key),
/// the person completing the record from `signer`.
pub fn build_sections(
    prefill: &Prefill,
    written: &[(String, String)],
    signer: Option<&Signature>,
) -> Vec<Section> {
    prefill
        .form
        .headings
        .iter()
        .map(|h| {
            let mut s = prefill.section(h.key).cloned().unwrap_or(Section {
                key: h.key.to_owned(),
                title: h.title.to_owned(),
                lines: vec![],
                entries: vec![],
                empty: None,
                written: None,
            });
            s.title = h.title.to_owned();
            if h.written {
                s.written = written
                    .iter()
                    .find(|(k, _)| k == h.key)
                    .map(|(_, t)| t.trim().replace("\r\n", "\n"))
                    .filter(|t| !t.is_empty());
                // A heading also read from the record keeps what it says
                // when the record is silent.
                if !h.prefilled && s.written.is_none() {
                    s.empty = Some("Nothing written yet.".to_owned());
                } else if !h.prefilled || s.written.is_some() {
                    s.empty = None;
                }
            }
            if h.key == "person-completing-record" {
                completing(&mut s, signer);
            }
            s
        })
        .collect()
}

/// An instant as people read it (`2026-03-02 12:00 UTC`).
pub fn display_time(at: &str) -> String {
    match (at.get(..10), at.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => at.to_owned(),
    }
}

fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, DischargeError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

fn now_text(now: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(now)
}

fn lock_key(encounter: &str) -> String {
    format!("discharge-summary/Encounter/{encounter}")
}

/// The admission's summary (not entered in error), read in `tx`.
pub fn of_encounter_in(tx: &mut Tx<'_>, encounter: &str) -> Result<Option<Value>, DischargeError> {
    SUMMARY.of_encounter_in(tx, encounter)
}

/// The id of admission `encounter`'s summary, if it has one.
pub fn find_for_encounter(
    svc: &FhirService,
    access: &dyn Access,
    encounter: &str,
) -> Result<Option<String>, DischargeError> {
    SUMMARY.find_for_encounter(svc, access, encounter)
}

/// Starts the summary of admission `encounter` (pre-filled from the record
/// as the caller sees it), or returns the one it already has. Returns the
/// Composition id.
pub fn start(
    svc: &FhirService,
    access: &dyn Access,
    encounter: &str,
    now: OffsetDateTime,
) -> Result<String, DischargeError> {
    SUMMARY.start(svc, access, encounter, now)
}

/// Saves the clinician's text under the written headings (key, text) and
/// reads the record again for the pre-filled ones. Only a `preliminary`
/// summary is edited this way (a signed one is amended).
pub fn save_draft(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    written: &[(String, String)],
    now: OffsetDateTime,
) -> Result<(), DischargeError> {
    SUMMARY.save_draft(svc, access, id, written, now)
}

/// Signs the summary as the person signed in, now: it becomes `final` and
/// its document, PDF and DocumentReference are stored (see the module
/// documentation). Returns what a delivery step needs.
pub fn sign(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<Signed, DischargeError> {
    SUMMARY.sign(svc, access, id, now)
}

/// Amends a signed summary as the person signed in: the written headings
/// replaced by `written`, the record read again, signed again now; a new
/// document, PDF and DocumentReference (the old ones stay).
pub fn amend(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    written: &[(String, String)],
    now: OffsetDateTime,
) -> Result<Signed, DischargeError> {
    SUMMARY.amend(svc, access, id, written, now)
}

/// The most a clinician writes under one heading.
pub const MAX_WRITTEN: usize = 20_000;

/// The headings a summary is not signed without.
pub const REQUIRED_TO_SIGN: [&str; 2] = ["clinical-summary", "plan"];

impl Form {
    fn begin<'a>(
        &self,
        svc: &'a FhirService,
        access: &'a dyn Access,
        what: &str,
        action: &'static str,
    ) -> Result<Tx<'a>, DischargeError> {
        begin(svc, access, &format!("{}-{what}", self.audit), action)
    }

    fn search(&self, encounter: &str) -> String {
        format!(
            "encounter=Encounter/{encounter}&type={SNOMED_SYSTEM}|{}&status=preliminary,final,amended",
            self.code
        )
    }

    /// The encounter's document of this form (not entered in error), read in `tx`.
    pub fn of_encounter_in(
        &self,
        tx: &mut Tx<'_>,
        encounter: &str,
    ) -> Result<Option<Value>, DischargeError> {
        Ok(tx
            .find("Composition", &self.search(encounter))?
            .into_iter()
            .next())
    }

    /// The id of the encounter's document of this form, if it has one.
    pub fn find_for_encounter(
        &self,
        svc: &FhirService,
        access: &dyn Access,
        encounter: &str,
    ) -> Result<Option<String>, DischargeError> {
        let found = svc.search_as(
            access,
            "Composition",
            &[
                ("encounter", format!("Encounter/{encounter}")),
                ("type", format!("{SNOMED_SYSTEM}|{}", self.code)),
                ("status", "preliminary,final,amended".to_owned()),
            ],
        )?;
        Ok(found
            .resources
            .first()
            .and_then(|c| c["id"].as_str().map(str::to_owned)))
    }

    /// Starts the encounter's document (pre-filled from the record as the
    /// caller sees it), or returns the one it already has. Returns the
    /// Composition id. Audited `{audit}-draft`.
    pub fn start(
        &'static self,
        svc: &FhirService,
        access: &dyn Access,
        encounter: &str,
        now: OffsetDateTime,
    ) -> Result<String, DischargeError> {
        if let Some(id) = self.find_for_encounter(svc, access, encounter)? {
            return Ok(id);
        }
        let p = (self.prefill)(svc, access, encounter, now)?;
        let who = access.agent().who.clone();
        let mut tx = self.begin(svc, access, "draft", "C")?;
        let id = start_in(&mut tx, &p, who.as_deref(), now)?;
        tx.commit()?;
        Ok(id)
    }

    /// [`save_draft_in`] as one audited transaction (`{audit}-draft`).
    pub fn save_draft(
        &'static self,
        svc: &FhirService,
        access: &dyn Access,
        id: &str,
        written: &[(String, String)],
        now: OffsetDateTime,
    ) -> Result<(), DischargeError> {
        let encounter = self.encounter_of(svc, access, id)?;
        let p = (self.prefill)(svc, access, &encounter, now)?;
        let mut tx = self.begin(svc, access, "draft", "U")?;
        save_draft_in(&mut tx, id, &p, written, now)?;
        tx.commit()?;
        Ok(())
    }

    /// [`sign_in`] as one audited transaction (`{audit}-sign`).
    pub fn sign(
        &self,
        svc: &FhirService,
        access: &dyn Access,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Signed, DischargeError> {
        let mut tx = self.begin(svc, access, "sign", "U")?;
        if !tx.get("Composition", id)?.is_some_and(|c| self.is(&c)) {
            return Err(self.not_found(id));
        }
        let signed = sign_in(&mut tx, id, now)?;
        tx.commit()?;
        Ok(signed)
    }

    /// [`amend_in`] as one audited transaction (`{audit}-amend`).
    pub fn amend(
        &'static self,
        svc: &FhirService,
        access: &dyn Access,
        id: &str,
        written: &[(String, String)],
        now: OffsetDateTime,
    ) -> Result<Signed, DischargeError> {
        let encounter = self.encounter_of(svc, access, id)?;
        let p = (self.prefill)(svc, access, &encounter, now)?;
        let mut tx = self.begin(svc, access, "amend", "U")?;
        let signed = amend_in(&mut tx, id, &p, written, now)?;
        tx.commit()?;
        Ok(signed)
    }

    fn encounter_of(
        &self,
        svc: &FhirService,
        access: &dyn Access,
        id: &str,
    ) -> Result<String, DischargeError> {
        let c = svc
            .read_as(access, "Composition", id)?
            .filter(|c| self.is(c))
            .ok_or_else(|| self.not_found(id))?;
        reference_id(&c["encounter"], "Encounter")
            .map(str::to_owned)
            .ok_or_else(|| {
                DischargeError::Invalid(format!("The {} names no {}.", self.noun, self.of))
            })
    }

    fn check_written(&self, written: &[(String, String)]) -> Result<(), DischargeError> {
        for (k, t) in written {
            match self.heading(k) {
                Some(h) if h.written => {}
                _ => {
                    return Err(DischargeError::Invalid(format!(
                        "There is no heading '{k}' to write under."
                    )));
                }
            }
            if t.chars().count() > MAX_WRITTEN {
                return Err(DischargeError::Field(
                    k.clone(),
                    format!(
                        "{} is too long: write at most {MAX_WRITTEN} characters.",
                        self.heading(k).map_or("The text", |h| h.title)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a document whose required headings are not written.
    fn ready_to_sign(&self, written: &[(String, String)]) -> Result<(), DischargeError> {
        for k in self.required {
            if !written.iter().any(|(w, t)| w == k && !t.trim().is_empty()) {
                let title = self.heading(k).map_or(*k, |h| h.title);
                return Err(DischargeError::Field(
                    (*k).to_owned(),
                    format!("Write the {} before signing.", title.to_lowercase()),
                ));
            }
        }
        Ok(())
    }
}

/// The rule of starting, in `tx`: one document of the form (`p.form`) per
/// encounter (an existing one is returned), `preliminary`, pre-filled from `p`.
pub fn start_in(
    tx: &mut Tx<'_>,
    p: &Prefill,
    author: Option<&str>,
    now: OffsetDateTime,
) -> Result<String, DischargeError> {
    let form = p.form;
    tx.lock(&[lock_key(&p.encounter_id)])?;
    if let Some(c) = form.of_encounter_in(tx, &p.encounter_id)? {
        return Ok(c["id"].as_str().unwrap_or_default().to_owned());
    }
    let sections = build_sections(p, &[], None);
    let mut c = json!({
        "resourceType": "Composition",
        "status": "preliminary",
        "type": form.type_concept(),
        "subject": {"reference": format!("Patient/{}", p.patient_id), "display": p.patient.name},
        "encounter": {"reference": format!("Encounter/{}", p.encounter_id)},
        "date": now_text(now),
        "title": form.display,
        "section": sections.iter().map(|s| section_json_of(form.heading_system, s)).collect::<Vec<_>>(),
    });
    c["author"] = match author {
        Some(a) => json!([{"reference": a}]),
        None => json!([{"display": tx.access().agent().name}]),
    };
    Ok(tx.save(c)?.id)
}

/// Locks and reads a summary (or letter) in `tx`, with its form.
fn locked(tx: &mut Tx<'_>, id: &str) -> Result<(Value, &'static Form), DischargeError> {
    tx.lock(&[format!("Composition/{id}")])?;
    tx.get("Composition", id)?
        .and_then(|c| form_of(&c).map(|f| (c, f)))
        .ok_or_else(|| DischargeError::NotFound(format!("There is no clinical document {id}.")))
}

/// The headings the clinician wrote under, read from a stored summary.
pub fn written_of(c: &Value) -> Vec<(String, String)> {
    sections_of(c)
        .into_iter()
        .filter_map(|s| Some((s.key, s.written?)))
        .collect()
}

/// The rule of editing a draft, in `tx`.
pub fn save_draft_in(
    tx: &mut Tx<'_>,
    id: &str,
    p: &Prefill,
    written: &[(String, String)],
    now: OffsetDateTime,
) -> Result<(), DischargeError> {
    let (mut c, form) = locked(tx, id)?;
    if !std::ptr::eq(form, p.form) {
        return Err(p.form.not_found(id));
    }
    form.check_written(written)?;
    if c["status"] != "preliminary" {
        return Err(DischargeError::Conflict(format!(
            "This {} is signed: amend it instead.",
            form.noun
        )));
    }
    let sections = build_sections(p, written, None);
    c["section"] = json!(
        sections
            .iter()
            .map(|s| section_json_of(form.heading_system, s))
            .collect::<Vec<_>>()
    );
    c["date"] = json!(now_text(now));
    tx.save(c)?;
    Ok(())
}

/// The signer (the caller's Practitioner and position), read in `tx`.
fn signer_in(
    tx: &mut Tx<'_>,
    form: &Form,
    now: OffsetDateTime,
) -> Result<Signature, DischargeError> {
    let agent = tx.access().agent().clone();
    let Some(by) = agent.who.clone().filter(|w| w.starts_with("Practitioner/")) else {
        return Err(DischargeError::Forbidden(format!(
            "Only a clinician on record signs a {}.",
            form.noun
        )));
    };
    // Entitled by the position's role: doctors and registered nurses sign
    // what leaves the trust; a healthcare assistant or a clerk does not
    // (H-151).
    let entitled = crate::fhir::caller_role_in(tx)?
        .is_some_and(|r| r.has(wardline_auth::rbac::Activity::SignClinicalDocuments));
    if !entitled {
        return Err(DischargeError::Forbidden(format!(
            "Only a doctor or a registered nurse signs a {}: the position you are signed in with does not.",
            form.noun
        )));
    }
    let name = match reference_id(&json!({"reference": by}), "Practitioner") {
        Some(pid) => tx
            .get("Practitioner", pid)?
            .and_then(|p| crate::orders::request::person_name(&p)),
        None => None,
    }
    .unwrap_or_else(|| agent.name.clone());
    let role = match agent
        .position
        .as_deref()
        .and_then(|p| p.strip_prefix("PractitionerRole/"))
    {
        Some(r) => tx.get("PractitionerRole", r)?.and_then(|r| {
            r["code"]
                .as_array()?
                .iter()
                .find_map(crate::fhir::concept_text)
        }),
        None => None,
    };
    Ok(Signature {
        by,
        name,
        role,
        at: now_text(now),
    })
}

/// The rule of signing, in `tx`: the one place a summary (or letter)
/// becomes `final`.
pub fn sign_in(tx: &mut Tx<'_>, id: &str, now: OffsetDateTime) -> Result<Signed, DischargeError> {
    let (c, form) = locked(tx, id)?;
    match c["status"].as_str() {
        Some("preliminary") => {}
        Some(s) => {
            return Err(DischargeError::Conflict(format!(
                "This {} is already {s}: amend it to change it.",
                form.noun
            )));
        }
        None => return Err(DischargeError::Invalid("The summary has no status.".into())),
    }
    let written = written_of(&c);
    form.ready_to_sign(&written)?;
    let signer = signer_in(tx, form, now)?;
    let mut sections = sections_of(&c);
    for s in sections
        .iter_mut()
        .filter(|s| s.key == "person-completing-record")
    {
        completing(s, Some(&signer));
    }
    let signed = seal_in(tx, form, c, sections, "final", &signer, None, now)?;
    queue_delivery(tx, form, &signed, now)?;
    Ok(signed)
}

/// The person completing the record: the signer's name, role and date, or
/// that nobody has signed yet.
fn completing(s: &mut Section, signer: Option<&Signature>) {
    match signer {
        Some(sig) => {
            s.lines = vec![
                format!("Name: {}", sig.name),
                format!("Role: {}", sig.role.as_deref().unwrap_or("Not recorded")),
                format!("Date: {}", display_time(&sig.at)),
            ];
            s.empty = None;
        }
        None => {
            s.lines = vec![];
            s.empty = Some(
                "Not yet signed: the clinician who signs is the person completing the record."
                    .to_owned(),
            );
        }
    }
}

/// The rule of amending, in `tx`: a `final` or `amended` summary (or
/// letter) becomes `amended`, signed again.
pub fn amend_in(
    tx: &mut Tx<'_>,
    id: &str,
    p: &Prefill,
    written: &[(String, String)],
    now: OffsetDateTime,
) -> Result<Signed, DischargeError> {
    let form = p.form;
    form.check_written(written)?;
    form.ready_to_sign(written)?;
    let (c, stored) = locked(tx, id)?;
    if !std::ptr::eq(form, stored) {
        return Err(form.not_found(id));
    }
    if !matches!(c["status"].as_str(), Some("final" | "amended")) {
        return Err(DischargeError::Conflict(format!(
            "Only a signed {} is amended; sign the draft instead.",
            form.noun
        )));
    }
    let signer = signer_in(tx, form, now)?;
    let sections = build_sections(p, written, Some(&signer));
    let earlier = tx
        .find(
            "DocumentReference",
            &format!("related=Composition/{id}&status=current"),
        )?
        .into_iter()
        .next();
    let signed = seal_in(tx, form, c, sections, "amended", &signer, earlier, now)?;
    queue_delivery(tx, form, &signed, now)?;
    Ok(signed)
}

/// Queues the signed (or amended) document for the patient's registered
/// GP practice ([`crate::transfers::queue_in`]) and, for a form that copies
/// the patient, the patient's copy, in the signing transaction, so no
/// document is signed without its delivery recorded. A record naming no GP
/// practice queues nothing for the GP: the 24-hour standard then shows the
/// discharge as not sent, on the team's list and the dashboard.
fn queue_delivery(
    tx: &mut Tx<'_>,
    form: &Form,
    signed: &Signed,
    now: OffsetDateTime,
) -> Result<(), DischargeError> {
    use crate::transfers::{Outgoing, queue_in};
    if let Some(gp) = &signed.gp_practice {
        let out = Outgoing {
            kind: form.kind,
            patient: format!("Patient/{}", signed.patient),
            encounter: format!("Encounter/{}", signed.encounter),
            document: format!("DocumentReference/{}", signed.document_reference),
            recipient: format!("Organization/{gp}"),
        };
        queue_in(tx, &out, now).map_err(transfers_error)?;
    }
    if let Some(copy) = form.copy_to_patient {
        copy(tx, signed, now)?;
    }
    Ok(())
}

/// A transfers refusal as a document error.
pub fn transfers_error(e: crate::transfers::TransfersError) -> DischargeError {
    match e.status() {
        403 => DischargeError::Forbidden(e.message()),
        404 => DischargeError::NotFound(e.message()),
        409 => DischargeError::Conflict(e.message()),
        400..=499 => DischargeError::Invalid(e.message()),
        _ => DischargeError::Store(e.message()),
    }
}

// ---------------------------------------------------------------- viewing

/// A summary as the caller may see it, audited as `what`
/// (`discharge-summary-view`, or `-pdf`).
pub fn view(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    what: &str,
) -> Result<Summary, DischargeError> {
    view_form(&SUMMARY, svc, access, id, what)
}

fn view_form(
    form: &Form,
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    what: &str,
) -> Result<Summary, DischargeError> {
    let mut tx = begin(svc, access, what, "R")?;
    tx.audit_reads();
    let c = tx
        .get("Composition", id)?
        .filter(|c| form.is(c))
        .ok_or_else(|| form.not_found(id))?;
    let pid = reference_id(&c["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let patient = match tx.get("Patient", &pid)? {
        Some(p) => Patient::of(&p, &pid),
        None => Patient::unknown(&pid),
    };
    tx.commit()?;
    Ok(summary_of(&c, patient))
}

/// The summary's PDF: for a signed one the PDF stored when it was signed,
/// for a draft one rendered now (marked as a draft). Audited as
/// `discharge-summary-pdf`.
pub fn pdf_of(svc: &FhirService, access: &dyn Access, id: &str) -> Result<Vec<u8>, DischargeError> {
    SUMMARY.pdf_of(svc, access, id)
}

impl Form {
    /// The document as the caller may see it, audited as `{audit}-view`.
    pub fn view(
        &self,
        svc: &FhirService,
        access: &dyn Access,
        id: &str,
    ) -> Result<Summary, DischargeError> {
        view_form(self, svc, access, id, &format!("{}-view", self.audit))
    }

    /// The document's PDF: for a signed one the PDF stored when it was
    /// signed, for a draft one rendered now (marked as a draft). Audited
    /// as `{audit}-pdf`.
    pub fn pdf_of(
        &self,
        svc: &FhirService,
        access: &dyn Access,
        id: &str,
    ) -> Result<Vec<u8>, DischargeError> {
        let what = format!("{}-pdf", self.audit);
        let s = view_form(self, svc, access, id, &what)?;
        if s.signed.is_none() {
            return Ok(pdf::render(&s));
        }
        let mut tx = begin(svc, access, &what, "R")?;
        tx.audit_reads();
        let stored = tx
            .find(
                "DocumentReference",
                &format!("related=Composition/{id}&status=current"),
            )?
            .into_iter()
            .find_map(|dr| {
                dr["content"]
                    .as_array()?
                    .iter()
                    .find(|c| c["attachment"]["contentType"] == "application/pdf")?["attachment"]
                    ["url"]
                    .as_str()
                    .map(str::to_owned)
            });
        let bytes = match stored.as_deref().and_then(|u| u.strip_prefix("Binary/")) {
            Some(b) => tx.get("Binary", b)?.and_then(|b| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(b["data"].as_str()?)
                    .ok()
            }),
            None => None,
        };
        tx.commit()?;
        bytes.ok_or_else(|| {
            DischargeError::NotFound(format!(
                "The PDF stored when this {} was signed is missing.",
                self.noun
            ))
        })
    }
}

/// The signed document Bundle of a summary's (or letter's) current version
/// (the `Composition/{id}/$document` operation), audited `{audit}-view`.
pub fn document(svc: &FhirService, access: &dyn Access, id: &str) -> Result<Value, DischargeError> {
    let mut tx = begin(svc, access, "discharge-summary-view", "R")?;
    tx.audit_reads();
    let (c, form) = tx
        .get("Composition", id)?
        .and_then(|c| form_of(&c).map(|f| (c, f)))
        .ok_or_else(|| {
            DischargeError::NotFound(format!(
                "There is no discharge summary or clinic letter {id}."
            ))
        })?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, &format!("{}-view", form.audit), "R");
    let Some(b) = document_of(&c) else {
        return Err(DischargeError::Conflict(format!(
            "This {} is not signed yet: it has no document.",
            form.noun
        )));
    };
    let bid = b.trim_start_matches("Bundle/");
    let bundle = tx.get("Bundle", bid)?.ok_or_else(|| {
        DischargeError::NotFound(format!(
            "The document {b} of this {} is missing.",
            form.noun
        ))
    })?;
    tx.commit()?;
    Ok(bundle)
}

// ---------------------------------------------------------------- the rule

/// The lifecycle on every write path (registered by `crate::with_rules`).
pub struct DischargeRule;

/// Why a write of a discharge summary breaks the rules, if it does.
pub fn refusal(
    resource: &Value,
    current: Option<&Value>,
    document: Option<&Value>,
) -> Option<String> {
    refusal_of(&SUMMARY, resource, current, document)
}

/// Why a write of a document of `form` breaks the rules, if it does.
pub fn refusal_of(
    form: &Form,
    resource: &Value,
    current: Option<&Value>,
    document: Option<&Value>,
) -> Option<String> {
    let (a, noun, of) = (form.capital(), form.noun, form.of);
    let to = resource["status"].as_str().unwrap_or("unknown");
    let from = current.and_then(|c| c["status"].as_str());
    // A signed summary written again unchanged in what was signed (its
    // sections, signature, document, admission): a patient merge re-pointing
    // its subject, or a write of the same content.
    if let Some(cur) = current
        && from == Some(to)
        && matches!(to, "final" | "amended")
        && [
            "section",
            "attester",
            "extension",
            "encounter",
            "type",
            "date",
        ]
        .iter()
        .all(|k| cur[*k] == resource[*k])
    {
        return None;
    }
    match from {
        None if to != "preliminary" => {
            return Some(format!(
                "A {noun} is created preliminary, not {to}: it becomes final only when signed."
            ));
        }
        Some(f) if !allowed(f, to) => {
            return Some(format!(
                "A {noun} that is {f} cannot be made {to}: a signed {noun} is amended, never changed back."
            ));
        }
        _ => {}
    }
    if let Some(cur) = current
        && cur["encounter"] != resource["encounter"]
    {
        return Some(format!("A {noun} stays with its {of} (encounter)."));
    }
    if matches!(to, "final" | "amended") {
        let same = |k: &str| document.is_some_and(|d| d[k] == resource[k]);
        let signed_now = document.is_some()
            && same("status")
            && same("section")
            && same("attester")
            && resource["attester"][0]["mode"] == "legal"
            // A new signature: a new signing time, or (signed again within
            // the same second) a new document.
            && current.is_none_or(|c| {
                c["attester"] != resource["attester"] || document_of(c) != document_of(resource)
            });
        if !signed_now {
            return Some(format!(
                "{a} is made final or amended only by signing it (with its document Bundle, in the same transaction): use the {noun} pages."
            ));
        }
    }
    None
}

impl WriteRule for DischargeRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Composition"
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        let Some(form) = w.current.and_then(form_of).or_else(|| form_of(w.resource)) else {
            return Ok(());
        };
        if !form.is(w.resource) {
            return Err(FhirError::new(
                422,
                "business-rule",
                format!("A {0} stays a {0} (type {1}).", form.noun, form.code),
            )
            .at("Composition.type"));
        }
        let document = match document_of(w.resource) {
            Some(b) if matches!(w.resource["status"].as_str(), Some("final" | "amended")) => tx
                .get("Bundle", b.trim_start_matches("Bundle/"))?
                .map(|d| composition_in_document(&d)),
            _ => None,
        };
        if let Some(m) = refusal_of(form, w.resource, w.current, document.as_ref()) {
            return Err(FhirError::new(422, "business-rule", m).at("Composition.status"));
        }
        // One summary per admission, one letter per attendance.
        if let Some(enc) = reference_id(&w.resource["encounter"], "Encounter")
            && w.resource["status"] != "entered-in-error"
        {
            tx.lock(&[lock_key(enc)])?;
            let others = tx.find("Composition", &form.search(enc), 10)?;
            if let Some(o) = others.iter().find(|o| o["id"] != w.id) {
                return Err(FhirError::new(
                    409,
                    "duplicate",
                    format!(
                        "{} Encounter/{enc} already has a {} (Composition/{}).",
                        capitalised(form.of),
                        form.noun,
                        o["id"].as_str().unwrap_or_default()
                    ),
                )
                .at("Composition.encounter"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_moves_forward_only() {
        assert!(allowed("preliminary", "final"));
        assert!(allowed("final", "amended"));
        assert!(allowed("amended", "amended"));
        assert!(allowed("final", "entered-in-error"));
        assert!(!allowed("final", "preliminary"));
        assert!(!allowed("final", "final"));
        assert!(!allowed("preliminary", "amended"));
        assert!(!allowed("entered-in-error", "preliminary"));
        assert!(!allowed("bogus", "final"));
    }

    #[test]
    fn a_section_round_trips_through_its_json() {
        let s = Section {
            key: "plan".into(),
            title: "Plan and requested actions".into(),
            lines: vec!["a <b> & c".into()],
            entries: vec!["Condition/c1".into()],
            empty: None,
            written: Some("Review in clinic.".into()),
        };
        let v = json!({"section": [section_json(&s)]});
        assert_eq!(sections_of(&v), vec![s]);
        assert!(
            v["section"][0]["text"]["div"]
                .as_str()
                .unwrap()
                .contains("a &lt;b&gt; &amp; c")
        );
    }

    #[test]
    fn headings_are_in_prsb_order_with_unique_keys() {
        let keys: std::collections::HashSet<_> = HEADINGS.iter().map(|h| h.key).collect();
        assert_eq!(keys.len(), HEADINGS.len());
        assert_eq!(HEADINGS[1].title, "GP practice");
        assert_eq!(HEADINGS[12].title, "Plan and requested actions");
    }
}
