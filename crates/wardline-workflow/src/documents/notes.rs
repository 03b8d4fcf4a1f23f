//! Clinical notes (issue 18): ward round and clinic notes, written by
//! heading, signed and timed, amended with the original kept.
//!
//! # The model (FHIR R4)
//!
//! * **A note** is a `Composition`: `type` a [`NoteKind`] (the local code of
//!   [`NOTE_TYPE_SYSTEM`], and for a clinic note also SNOMED CT 371530004
//!   |Clinical consultation report|; no SNOMED CT concept for a ward round
//!   note was verified, so that one is local only), `title`, `subject` the
//!   patient, `encounter`, `author[0]` the practitioner who wrote it, `date`
//!   (when it was last written), and one `section` per heading written, in
//!   the fixed order of [`HEADINGS`] (presenting complaint, history,
//!   examination, impression, plan): `title`, `code` ([`HEADING_SYSTEM`],
//!   local), `text` the free text as XHTML ([`narrative`]; [`free_text`]
//!   reads it back). The impression's `entry` lists the coded diagnoses
//!   (`Condition`) and procedures (`Procedure`) entered from the note
//!   ([`coding`]).
//! * **Signing** is an `attester` (`mode` `legal`, `time`, `party` the
//!   author). Only the author signs; a signed note is `final`.
//! * **An amendment** is a new version of the same Composition, `status`
//!   `amended`, re-signed by the author (a new attester `time`) with the
//!   reason in [`STATUS_REASON_EXT`]. The original stays in the store's
//!   version history ([`view`] reads every version and what changed).
//! * **Entered in error**: `status` `entered-in-error` with the reason in
//!   [`STATUS_REASON_EXT`]; a note is never deleted.
//!
//! # The lifecycle (one home: [`transition`], which [`allowed`] governs)
//!
//! ```text
//! preliminary ──sign──► final ──amend──► amended ──amend──► amended
//!      │                  │                 │
//!      └──────────────────┴─────────────────┴──► entered-in-error
//! ```
//!
//! * A `preliminary` note (a draft) may be edited by its author.
//! * A signed note's content never changes without going to `amended`
//!   with a reason and a new signature.
//!
//! [`NoteRule`] (registered by `crate::with_rules`) makes every other
//! channel — a plain REST `PUT`, a Bundle — obey the same
//! ([`lifecycle_refusal`]): no move [`allowed`] forbids, no `final` or
//! `amended` note without the author's legal attestation, no change to a
//! signed note's content without going to `amended` with a reason and a
//! new signature, no attestation by anyone but the author, and no person
//! signing as someone else (the attester must be the person writing).
//! Writing at all needs the `RecordClinical` activity (the RBAC table for
//! `Composition`, `Condition`, `Procedure`).
//!
//! Audit subtypes: `notes-write` (a draft written or edited), `notes-sign`,
//! `notes-amend`, `notes-error` (entered in error), `notes-view` (a note
//! and its versions read), `notes-code` (a coded entry added or its
//! classification corrected). Time is injected: every `_in` function takes
//! `now`.

pub mod coding;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, ProposedWrite, RuleTx, Tx, WriteRule};
use wardline_fhir::FhirError;

use crate::fhir::reference_id;

/// The kinds of note (`Composition.type`, local codes).
pub const NOTE_TYPE_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/note-type";
/// The headings of a note (`Composition.section.code`, local codes).
pub const HEADING_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/note-heading";
/// Why a note was amended or entered in error (`valueString`, on the Composition).
pub const STATUS_REASON_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/note-status-reason";
/// SNOMED CT.
pub const SNOMED_SYSTEM: &str = "http://snomed.info/sct";

/// The headings in their fixed order: (code, title).
pub const HEADINGS: [(&str, &str); 5] = [
    ("presenting-complaint", "Presenting complaint"),
    ("history", "History"),
    ("examination", "Examination"),
    ("impression", "Impression"),
    ("plan", "Plan"),
];

/// The FHIR R4 Composition status codes.
pub const STATUSES: [&str; 4] = ["preliminary", "final", "amended", "entered-in-error"];

/// What kind of note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoteKind {
    WardRound,
    Clinic,
}

impl NoteKind {
    pub fn code(self) -> &'static str {
        match self {
            NoteKind::WardRound => "ward-round",
            NoteKind::Clinic => "clinic",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            NoteKind::WardRound => "Ward round note",
            NoteKind::Clinic => "Clinic note",
        }
    }

    pub fn parse(code: &str) -> Option<NoteKind> {
        [NoteKind::WardRound, NoteKind::Clinic]
            .into_iter()
            .find(|k| k.code() == code)
    }

    /// `Composition.type`.
    pub fn concept(self) -> Value {
        let mut codings =
            vec![json!({"system": NOTE_TYPE_SYSTEM, "code": self.code(), "display": self.label()})];
        if self == NoteKind::Clinic {
            codings.push(json!({"system": SNOMED_SYSTEM, "code": "371530004",
                "display": "Clinical consultation report"}));
        }
        json!({"coding": codings, "text": self.label()})
    }

    /// The kind of a Composition, when it is a clinical note.
    pub fn of(c: &Value) -> Option<NoteKind> {
        c["type"]["coding"]
            .as_array()?
            .iter()
            .filter(|x| x["system"] == NOTE_TYPE_SYSTEM)
            .find_map(|x| NoteKind::parse(x["code"].as_str()?))
    }
}

/// What went wrong with a notes action, in a sentence, with the HTTP status
/// that fits ([`NotesError::status`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum NotesError {
    /// The request is wrong (400): the form field it is about ("" when
    /// none) and why.
    Invalid(&'static str, String),
    NotFound(String),
    /// The caller may not (403).
    Forbidden(String),
    /// The note's state does not allow it, or someone changed it at the same
    /// moment (409).
    Conflict(String),
    Store(String),
}

impl NotesError {
    pub fn status(&self) -> u16 {
        match self {
            NotesError::Invalid(..) => 400,
            NotesError::NotFound(_) => 404,
            NotesError::Forbidden(_) => 403,
            NotesError::Conflict(_) => 409,
            NotesError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            NotesError::Invalid(_, m)
            | NotesError::NotFound(m)
            | NotesError::Forbidden(m)
            | NotesError::Conflict(m)
            | NotesError::Store(m) => m.clone(),
        }
    }

    /// The form field an `Invalid` is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            NotesError::Invalid(f, _) if !f.is_empty() => Some(f),
            _ => None,
        }
    }
}

impl std::fmt::Display for NotesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for NotesError {}

impl From<FhirError> for NotesError {
    fn from(e: FhirError) -> NotesError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "note") {
            R::Forbidden(m) => NotesError::Forbidden(m),
            R::NotFound(m) => NotesError::NotFound(m),
            R::Concurrent(m) => NotesError::Conflict(m),
            R::Invalid(m) => NotesError::Invalid("", m),
            R::Store(m) => NotesError::Store(m),
        }
    }
}

// ---------------------------------------------------------------- narrative

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Free text as the section's XHTML narrative: one `<p>` per paragraph
/// (blank-line separated), `<br/>` per line break, text escaped.
pub fn narrative(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let paras: Vec<String> = text
        .trim()
        .split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let lines: Vec<String> = p.split('\n').map(escape).collect();
            format!("<p>{}</p>", lines.join("<br/>"))
        })
        .collect();
    format!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>",
        paras.concat()
    )
}

/// The free text back from a narrative [`narrative`] wrote (other XHTML is
/// read as its text: tags dropped, paragraphs and line breaks kept).
pub fn free_text(div: &str) -> String {
    let mut out = String::new();
    let mut rest = div;
    let mut first_para = true;
    while let Some(lt) = rest.find('<') {
        out.push_str(&unescape(&rest[..lt]));
        let Some(gt) = rest[lt..].find('>') else {
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("");
        if name == "br" {
            out.push('\n');
        } else if name == "p" && !tag.starts_with('/') {
            if !first_para {
                out.push_str("\n\n");
            }
            first_para = false;
        }
        rest = &rest[lt + gt + 1..];
    }
    out.push_str(&unescape(rest));
    out
}

// ---------------------------------------------------------------- reading

/// One heading's text as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heading {
    pub code: String,
    pub title: String,
    pub text: String,
}

/// The note's headings, in the fixed order, each with its text ("" when
/// not written).
pub fn headings(note: &Value) -> Vec<Heading> {
    HEADINGS
        .iter()
        .map(|(code, title)| Heading {
            code: (*code).to_owned(),
            title: (*title).to_owned(),
            text: section(note, code)
                .and_then(|s| s["text"]["div"].as_str())
                .map(free_text)
                .unwrap_or_default(),
        })
        .collect()
}

fn section<'a>(note: &'a Value, code: &str) -> Option<&'a Value> {
    note["section"].as_array()?.iter().find(|s| {
        s["code"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["system"] == HEADING_SYSTEM && c["code"] == code)
    })
}

/// The author (`Practitioner/…`).
pub fn author(note: &Value) -> Option<&str> {
    note["author"][0]["reference"].as_str()
}

/// The legal attestation: (party, time).
pub fn signature(note: &Value) -> Option<(String, String)> {
    let a = note["attester"]
        .as_array()?
        .iter()
        .find(|a| a["mode"] == "legal")?;
    Some((
        a["party"]["reference"].as_str()?.to_owned(),
        a["time"].as_str()?.to_owned(),
    ))
}

/// Why the note was amended or entered in error (this version's reason).
pub fn status_reason(note: &Value) -> Option<&str> {
    note["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == STATUS_REASON_EXT)?["valueString"]
        .as_str()
}

fn version_of(r: &Value) -> i64 {
    r["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

// ---------------------------------------------------------------- lifecycle

/// Whether a note may go from `from` to `to` (see the module
/// documentation). Staying `preliminary` (editing a draft) or `amended`
/// (amending again) is allowed; staying `final` is allowed only as no
/// change of content ([`lifecycle_refusal`] checks that).
pub fn allowed(from: &str, to: &str) -> bool {
    if !STATUSES.contains(&from) || !STATUSES.contains(&to) {
        return false;
    }
    matches!(
        (from, to),
        ("preliminary", "preliminary" | "final" | "entered-in-error")
            | ("final", "final" | "amended" | "entered-in-error")
            | ("amended", "amended" | "entered-in-error")
            | ("entered-in-error", "entered-in-error")
    )
}

/// The one place a note's status changes: moves `note` to `to`, signed by
/// `by` (`Practitioner/…`, who must be the author) at `now` for `final`
/// and `amended`, with `reason` (required for `amended` and
/// `entered-in-error`).
pub fn transition(
    note: &mut Value,
    to: &str,
    by: Option<&str>,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let from = note["status"].as_str().unwrap_or("unknown").to_owned();
    if !allowed(&from, to) || (from == to && to != "preliminary" && to != "amended") {
        return Err(NotesError::Conflict(format!(
            "A note that is {from} cannot be made {to}."
        )));
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if matches!(to, "amended" | "entered-in-error") && reason.is_none() {
        return Err(NotesError::Invalid(
            "reason",
            if to == "amended" {
                "Give the reason for the amendment.".into()
            } else {
                "Give the reason the note was entered in error.".into()
            },
        ));
    }
    if matches!(to, "final" | "amended") {
        let by = by.ok_or_else(|| {
            NotesError::Forbidden("Only a practitioner on record signs a note.".into())
        })?;
        if author(note) != Some(by) {
            return Err(NotesError::Forbidden(
                "Only the note's author signs or amends it.".into(),
            ));
        }
        note["attester"] = json!([{"mode": "legal", "time": fhir_time(now),
            "party": {"reference": by}}]);
    }
    set_reason(
        note,
        reason.filter(|_| to != "final" && to != "preliminary"),
    );
    note["status"] = json!(to);
    Ok(())
}

fn set_reason(note: &mut Value, reason: Option<&str>) {
    if let Some(es) = note.get_mut("extension").and_then(Value::as_array_mut) {
        es.retain(|e| e["url"] != STATUS_REASON_EXT);
        if es.is_empty() {
            note.as_object_mut().map(|o| o.remove("extension"));
        }
    }
    if let Some(r) = reason {
        let ext = json!({"url": STATUS_REASON_EXT, "valueString": r});
        match note.get_mut("extension").and_then(Value::as_array_mut) {
            Some(es) => es.push(ext),
            None => note["extension"] = json!([ext]),
        }
    }
}

/// The note without what changes on every write (`meta`, `text`), the
/// attestation and the status reason: its content.
fn content(note: &Value) -> Value {
    let mut c = note.clone();
    if let Some(o) = c.as_object_mut() {
        for k in ["meta", "text", "attester", "status", "date"] {
            o.remove(k);
        }
    }
    set_reason(&mut c, None);
    c
}

/// Why a write of a note Composition breaks the lifecycle, if it does:
/// (the element, the reason). `caller` is the writer's `Practitioner/…`
/// (`None` for an operator or internal service, who may load signed notes
/// but still only as attested by their author).
pub fn lifecycle_refusal(
    note: &Value,
    current: Option<&Value>,
    caller: Option<&str>,
) -> Option<(&'static str, String)> {
    let to = note["status"].as_str().unwrap_or("unknown");
    let from = current.map(|c| c["status"].as_str().unwrap_or("unknown"));
    match from {
        None if !matches!(to, "preliminary" | "final") => {
            return Some((
                "Composition.status",
                format!("A new note is preliminary (a draft) or final (signed), not {to}."),
            ));
        }
        Some(from) if !allowed(from, to) => {
            return Some((
                "Composition.status",
                format!(
                    "A note that is {from} cannot be made {to}: a signed note is changed only by an amendment, and a note entered in error stays so."
                ),
            ));
        }
        _ => {}
    }
    let changed = current.is_some_and(|c| content(c) != content(note));
    if matches!(to, "final" | "amended") {
        let Some((party, at)) = signature(note) else {
            return Some((
                "Composition.attester",
                format!(
                    "A {to} note is signed: it needs its author's legal attestation (attester mode legal, time, party)."
                ),
            ));
        };
        if author(note) != Some(party.as_str()) {
            return Some((
                "Composition.attester",
                "Only the note's author signs it: the legal attester must be the author.".into(),
            ));
        }
        if caller.is_some_and(|c| c != party) && signing(note, current) {
            return Some((
                "Composition.attester",
                "No one signs a note as someone else: only its author signs or amends it.".into(),
            ));
        }
        let before = current.and_then(signature).map(|(_, t)| t);
        if let Some(b) = before
            && ms(&at) < ms(&b)
        {
            return Some((
                "Composition.attester",
                "A new signature is never dated before the one it follows.".into(),
            ));
        }
    }
    if let (Some(cur), Some(from)) = (current, from) {
        let signed = matches!(from, "final" | "amended");
        if signed && author(cur) != author(note) {
            return Some((
                "Composition.author",
                "A signed note's author never changes.".into(),
            ));
        }
        if signed && changed && to != "amended" && to != "entered-in-error" {
            return Some((
                "Composition.status",
                "A signed note's content is changed only by an amendment: status amended, with the reason and the author's signature.".into(),
            ));
        }
    }
    if matches!(to, "amended" | "entered-in-error")
        && status_reason(note).is_none_or(|r| r.trim().is_empty())
    {
        return Some((
            "Composition.extension",
            format!("A note made {to} carries its reason (extension note-status-reason)."),
        ));
    }
    None
}

/// The write rule: every write of a note Composition, on every channel,
/// obeys [`lifecycle_refusal`] (422 naming the element).
pub struct NoteRule;

impl WriteRule for NoteRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Composition"
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        if NoteKind::of(w.resource).is_none() && w.current.and_then(NoteKind::of).is_none() {
            return Ok(());
        }
        let caller = tx
            .access()
            .agent()
            .who
            .clone()
            .filter(|w| w.starts_with("Practitioner/"));
        let person = tx.access().restricted();
        match lifecycle_refusal(w.resource, w.current, caller.as_deref().filter(|_| person)) {
            Some((at, m)) => Err(FhirError::new(422, "business-rule", m).at(at)),
            None if person && caller.is_none() && signing(w.resource, w.current) => {
                Err(FhirError::new(
                    422,
                    "business-rule",
                    "Only a practitioner on record signs a note.",
                )
                .at("Composition.attester"))
            }
            None => Ok(()),
        }
    }
}

/// Whether this write is an act of signing: a note made `final` or
/// `amended`, a signature changed, or a signed note's content amended.
fn signing(note: &Value, current: Option<&Value>) -> bool {
    let to = note["status"].as_str().unwrap_or("unknown");
    if !matches!(to, "final" | "amended") {
        return false;
    }
    let Some(cur) = current else {
        return true;
    };
    cur["status"] != note["status"]
        || signature(cur) != signature(note)
        || content(cur) != content(note)
}

fn ms(t: &str) -> i64 {
    wardline_fhir::datetime::parse_range(t).map_or(0, |r| r.0)
}

// ---------------------------------------------------------------- writing

/// `now` as a FHIR instant to the second, UTC.
pub fn fhir_time(now: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(now)
}

/// A note as its author writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Patient id.
    pub patient: String,
    /// Encounter id; `None` takes the patient's current (in-progress)
    /// encounter, if any.
    pub encounter: Option<String>,
    pub kind: NoteKind,
    /// Each heading's free text, by heading code ([`HEADINGS`]); a heading
    /// left out or blank is not written.
    pub texts: Vec<(String, String)>,
}

fn text_for<'a>(texts: &'a [(String, String)], code: &str) -> &'a str {
    texts
        .iter()
        .find(|(c, _)| c == code)
        .map(|(_, t)| t.trim())
        .unwrap_or("")
}

/// The sections from the texts, in the fixed order, keeping each heading's
/// existing `entry` (the coded entries) from `old`.
fn sections(texts: &[(String, String)], old: &Value) -> Result<Vec<Value>, NotesError> {
    for (code, _) in texts {
        if !HEADINGS.iter().any(|(c, _)| c == code) {
            return Err(NotesError::Invalid(
                "",
                format!("There is no heading {code}."),
            ));
        }
    }
    let mut out = Vec::new();
    for (code, title) in HEADINGS {
        let text = text_for(texts, code);
        let entries = section(old, code).map(|s| s["entry"].clone());
        let has_entries = entries
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        if text.is_empty() && !has_entries {
            continue;
        }
        let mut s = json!({"title": title,
            "code": {"coding": [{"system": HEADING_SYSTEM, "code": code, "display": title}]},
            "text": {"status": "generated", "div": narrative(if text.is_empty() { "Coded entries only." } else { text })}});
        if has_entries && let Some(e) = entries {
            s["entry"] = e;
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err(NotesError::Invalid(
            HEADINGS[0].0,
            "Write at least one heading of the note.".into(),
        ));
    }
    Ok(out)
}

fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, NotesError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

fn me(access: &dyn Access) -> Result<String, NotesError> {
    access
        .agent()
        .who
        .clone()
        .filter(|w| w.starts_with("Practitioner/"))
        .ok_or_else(|| {
            NotesError::Forbidden(
                "Only a practitioner on record writes and signs clinical notes.".into(),
            )
        })
}

/// Writes a new draft note as the person signed in; its id.
pub fn write(
    svc: &FhirService,
    access: &dyn Access,
    draft: &Draft,
    now: OffsetDateTime,
) -> Result<String, NotesError> {
    let who = me(access)?;
    let mut tx = begin(svc, access, "notes-write", "C")?;
    let id = write_in(&mut tx, draft, &who, now)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of writing a draft, in `tx`: `preliminary`, by `author`.
pub fn write_in(
    tx: &mut Tx<'_>,
    draft: &Draft,
    author: &str,
    now: OffsetDateTime,
) -> Result<String, NotesError> {
    let patient = draft.patient.trim();
    if patient.is_empty() || tx.get("Patient", patient)?.is_none() {
        return Err(NotesError::NotFound(format!(
            "There is no patient with id {patient}."
        )));
    }
    let encounter = match draft.encounter.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => {
            let enc = tx.get("Encounter", e)?.ok_or_else(|| {
                NotesError::Invalid("encounter", format!("There is no encounter {e}."))
            })?;
            if reference_id(&enc["subject"], "Patient") != Some(patient) {
                return Err(NotesError::Invalid(
                    "encounter",
                    "That encounter is another patient's.".into(),
                ));
            }
            Some(e.to_owned())
        }
        None => tx
            .find(
                "Encounter",
                &format!("subject=Patient/{patient}&status=in-progress&_count=1"),
            )?
            .first()
            .and_then(|e| e["id"].as_str().map(str::to_owned)),
    };
    let mut note = json!({
        "resourceType": "Composition",
        "status": "preliminary",
        "type": draft.kind.concept(),
        "title": draft.kind.label(),
        "subject": {"reference": format!("Patient/{patient}")},
        "date": fhir_time(now),
        "author": [{"reference": author}],
        "section": sections(&draft.texts, &Value::Null)?,
    });
    if let Some(e) = encounter {
        note["encounter"] = json!({"reference": format!("Encounter/{e}")});
    }
    Ok(tx.save(note)?.id)
}

/// Locks and reads a note in `tx`.
fn note_in(tx: &mut Tx<'_>, id: &str) -> Result<Value, NotesError> {
    tx.lock(&[format!("Composition/{id}")])?;
    tx.get("Composition", id)?
        .filter(|c| NoteKind::of(c).is_some())
        .ok_or_else(|| NotesError::NotFound(format!("There is no clinical note with id {id}.")))
}

/// The author edits their draft.
pub fn edit(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    texts: &[(String, String)],
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let who = me(access)?;
    let mut tx = begin(svc, access, "notes-write", "U")?;
    edit_in(&mut tx, id, texts, &who, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of editing a draft, in `tx`: only a `preliminary` note, only
/// by its author.
pub fn edit_in(
    tx: &mut Tx<'_>,
    id: &str,
    texts: &[(String, String)],
    by: &str,
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let mut note = note_in(tx, id)?;
    if note["status"] != "preliminary" {
        return Err(NotesError::Conflict(
            "This note is signed: change it by amending it.".into(),
        ));
    }
    if author(&note) != Some(by) {
        return Err(NotesError::Forbidden(
            "Only the note's author edits their draft.".into(),
        ));
    }
    note["section"] = json!(sections(texts, &note)?);
    note["date"] = json!(fhir_time(now));
    tx.save(note)?;
    Ok(())
}

/// The author signs their note, now.
pub fn sign(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let who = me(access)?;
    let mut tx = begin(svc, access, "notes-sign", "U")?;
    sign_in(&mut tx, id, &who, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of signing, in `tx`: a draft becomes `final`, attested by its
/// author `by`.
pub fn sign_in(tx: &mut Tx<'_>, id: &str, by: &str, now: OffsetDateTime) -> Result<(), NotesError> {
    let mut note = note_in(tx, id)?;
    if note["status"] != "preliminary" {
        return Err(NotesError::Conflict(format!(
            "This note is already {}.",
            note["status"].as_str().unwrap_or("signed")
        )));
    }
    transition(&mut note, "final", Some(by), None, now)?;
    tx.save(note)?;
    Ok(())
}

/// The author amends their signed note: the new text, the reason, signed
/// again now.
pub fn amend(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    texts: &[(String, String)],
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let who = me(access)?;
    let mut tx = begin(svc, access, "notes-amend", "U")?;
    amend_in(&mut tx, id, texts, reason, &who, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of amending, in `tx`: a signed (`final` or `amended`) note
/// becomes `amended` with the new text and the reason, re-signed by its
/// author `by`; the version before stays in the history.
pub fn amend_in(
    tx: &mut Tx<'_>,
    id: &str,
    texts: &[(String, String)],
    reason: &str,
    by: &str,
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let original = note_in(tx, id)?;
    let mut note = original.clone();
    if !matches!(note["status"].as_str(), Some("final" | "amended")) {
        return Err(NotesError::Conflict(
            "Only a signed note is amended: edit a draft, or sign it first.".into(),
        ));
    }
    note["section"] = json!(sections(texts, &note)?);
    if content(&note) == content(&original) {
        return Err(NotesError::Invalid(
            HEADINGS[0].0,
            "The amendment changes nothing: change the text of a heading.".into(),
        ));
    }
    transition(&mut note, "amended", Some(by), Some(reason), now)?;
    note["date"] = json!(fhir_time(now));
    tx.save(note)?;
    Ok(())
}

/// Marks a note entered in error (it stays in the record, shown as such).
pub fn enter_in_error(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let who = me(access)?;
    let mut tx = begin(svc, access, "notes-error", "U")?;
    enter_in_error_in(&mut tx, id, reason, &who, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of entering a note in error, in `tx`: by its author, with the
/// reason.
pub fn enter_in_error_in(
    tx: &mut Tx<'_>,
    id: &str,
    reason: &str,
    by: &str,
    now: OffsetDateTime,
) -> Result<(), NotesError> {
    let mut note = note_in(tx, id)?;
    if author(&note) != Some(by) {
        return Err(NotesError::Forbidden(
            "Only the note's author marks it entered in error.".into(),
        ));
    }
    transition(&mut note, "entered-in-error", Some(by), Some(reason), now)?;
    tx.save(note)?;
    Ok(())
}

// ---------------------------------------------------------------- lists and pages

/// One note in a patient's list.
#[derive(Debug, Clone, Serialize)]
pub struct NoteSummary {
    pub id: String,
    pub kind: NoteKind,
    pub status: String,
    pub date: String,
    pub author: Option<String>,
    pub author_name: Option<String>,
    pub version: i64,
}

/// A patient's notes, newest first, with how many the caller may not see.
pub fn list(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<(Vec<NoteSummary>, usize), NotesError> {
    let found = svc.search_as(
        access,
        "Composition",
        &[
            ("subject", format!("Patient/{patient}")),
            (
                "type",
                format!("{NOTE_TYPE_SYSTEM}|ward-round,{NOTE_TYPE_SYSTEM}|clinic"),
            ),
            ("_include", "Composition:author".to_owned()),
            ("_count", "200".to_owned()),
        ],
    )?;
    let name = |r: Option<&str>| {
        let id = r?.strip_prefix("Practitioner/")?;
        found
            .included
            .iter()
            .find(|p| p["resourceType"] == "Practitioner" && p["id"] == id)
            .and_then(crate::orders::request::person_name)
    };
    let mut out: Vec<NoteSummary> = found
        .resources
        .iter()
        .filter_map(|c| {
            Some(NoteSummary {
                id: c["id"].as_str()?.to_owned(),
                kind: NoteKind::of(c)?,
                status: c["status"].as_str().unwrap_or("unknown").to_owned(),
                date: c["date"].as_str().unwrap_or_default().to_owned(),
                author: author(c).map(str::to_owned),
                author_name: name(author(c)),
                version: version_of(c),
            })
        })
        .collect();
    out.sort_by(|a, b| b.date.cmp(&a.date).then(b.id.cmp(&a.id)));
    Ok((out, found.withheld))
}

/// One version of a note and what changed from the one before.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub version: i64,
    pub status: String,
    pub date: String,
    pub signed: Option<(String, String)>,
    pub reason: Option<String>,
    pub headings: Vec<Heading>,
    /// The headings whose text differs from the version before (every
    /// written heading for the first version).
    pub changed: Vec<String>,
}

/// A note with every version, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct NoteView {
    pub note: Value,
    pub versions: Vec<Version>,
}

/// A note and its versions, read in one audited (`notes-view`) transaction.
pub fn view(svc: &FhirService, access: &dyn Access, id: &str) -> Result<NoteView, NotesError> {
    let mut tx = begin(svc, access, "notes-view", "R")?;
    tx.audit_reads();
    let note = tx
        .get("Composition", id)?
        .filter(|c| NoteKind::of(c).is_some())
        .ok_or_else(|| NotesError::NotFound(format!("There is no clinical note with id {id}.")))?;
    let patient = reference_id(&note["subject"], "Patient").map(str::to_owned);
    tx.audit_record()
        .touch("Composition", id, patient.as_deref());
    let mut versions: Vec<Version> = Vec::new();
    for v in 1..=version_of(&note) {
        let Some(old) = tx.vread("Composition", id, v)? else {
            continue;
        };
        let hs = headings(&old);
        let changed = hs
            .iter()
            .filter(|h| match versions.last() {
                Some(prev) => prev
                    .headings
                    .iter()
                    .find(|p| p.code == h.code)
                    .is_none_or(|p| p.text != h.text),
                None => !h.text.is_empty(),
            })
            .map(|h| h.title.clone())
            .collect();
        versions.push(Version {
            version: v,
            status: old["status"].as_str().unwrap_or("unknown").to_owned(),
            date: old["date"].as_str().unwrap_or_default().to_owned(),
            signed: signature(&old),
            reason: status_reason(&old).map(str::to_owned),
            headings: hs,
            changed,
        });
    }
    tx.commit()?;
    Ok(NoteView { note, versions })
}

#[cfg(test)]
mod tests;
