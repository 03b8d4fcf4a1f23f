//! Configurable forms (issue 20): an administrator defines a form as a FHIR
//! `Questionnaire`, clinicians complete it in the chart as a
//! `QuestionnaireResponse`, answers marked for extraction become
//! `Observation`s, and KPIs count forms completed in time after admission.
//!
//! # The model (FHIR R4 and SDC, no schema of its own)
//!
//! * **A form** is a `Questionnaire` that is not the order catalogue's
//!   (`orders::catalogue::in_catalogue`): `url` (Wardline's own forms under
//!   [`FORMS_BASE`]; an imported form keeps its own), `version` (`"1"`,
//!   `"2"`, …: one resource per version), `status` draft → active → retired,
//!   `title`, and `item`s: `group`, `display`, `string`, `text`, `integer`,
//!   `decimal`, `boolean`, `date`, `dateTime`, `choice`, `open-choice`
//!   ([`KINDS`]), each with `required`, `repeats`, `answerOption` or
//!   `answerValueSet` (a `ValueSet` in the store, expanded from its
//!   `expansion` or its `compose` — [`expand`]), `enableWhen` with
//!   `enableBehavior`, and the SDC [`OBSERVATION_EXTRACT_EXT`] with the
//!   item's `code` for an answer that becomes an Observation.
//! * **Versions**: a draft is edited in place; an active or retired
//!   version is frozen (its items, url and version never change: the write
//!   rule [`rule::FormRule`] refuses it on every channel). Editing an active
//!   form makes a new draft version ([`define::new_version`]); activating a
//!   version retires the other active versions of the same url.
//! * **A response** is a `QuestionnaireResponse` whose `questionnaire` is
//!   the canonical `url|version` it answered (kept for ever: a later
//!   version never changes how an old response reads), `status`
//!   `in-progress` (a draft) → `completed` → `amended` | `entered-in-error`
//!   ([`response_allowed`]), `subject`, `encounter` (the admission, when
//!   the patient is in), `author`, `authored`. The write rule
//!   [`rule::ResponseRule`] checks every write of a response to a form
//!   against its version ([`check_response`]: answers of the right type and
//!   from the options, one answer unless the item repeats, none to a
//!   question not enabled, every enabled required question answered once
//!   completed) — the one home of that check, for the chart and REST alike.
//! * **Extraction** ([`rule::Extraction`], a write hook, so in the same
//!   transaction on every channel): when a response becomes completed (or
//!   an amended one changes), each answer of an item with
//!   [`OBSERVATION_EXTRACT_EXT`] becomes an `Observation` (`status`
//!   `final`, `code` the item's `code`, `subject`, `encounter`,
//!   `effectiveDateTime` the response's `authored`, `performer` its author,
//!   `derivedFrom` the response, the value from the answer); observations
//!   extracted before from the same response are marked
//!   `entered-in-error`, as they are when the response is.
//! * **KPIs** ([`kpi`]) are `Measure`s with [`KPI_EXT`].
//!
//! Audit subtypes: `forms-define` (defining, importing, activating,
//! retiring), `forms-respond` (saving a response), `forms-view` (reading
//! one), `forms-kpis` (the KPI figures).

pub mod define;
pub mod kpi;
pub mod respond;
pub mod rule;

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use wardline_fhir::FhirError;

/// Wardline's own forms' canonical URLs (`{FORMS_BASE}/{name}`).
pub const FORMS_BASE: &str = "https://fhir.wardline.invalid/forms";
/// SDC: the item's answer becomes an Observation (`valueBoolean` true).
pub const OBSERVATION_EXTRACT_EXT: &str =
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract";
/// A KPI's definition on its `Measure` (sub-extensions `form`
/// `valueCanonical`, or `code` `valueCoding`; `anchor` `valueCode`
/// `admission`; `window` `valueDuration` in hours).
pub const KPI_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/form-kpi";
/// The item types a form may have.
pub const KINDS: [&str; 11] = [
    "group",
    "display",
    "string",
    "text",
    "integer",
    "decimal",
    "boolean",
    "date",
    "dateTime",
    "choice",
    "open-choice",
];

/// Whether a Questionnaire is a form (not the order catalogue's questions).
pub fn is_form(q: &Value) -> bool {
    q["resourceType"] == "Questionnaire" && !crate::orders::catalogue::in_catalogue(q)
}

/// The canonical a response names for this version: `url|version`.
pub fn canonical(q: &Value) -> String {
    let url = q["url"].as_str().unwrap_or_default();
    match q["version"].as_str() {
        Some(v) => format!("{url}|{v}"),
        None => url.to_owned(),
    }
}

/// Whether a form may go from status `from` to `to`.
pub fn allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("draft", "draft" | "active" | "retired")
            | ("active", "active" | "retired")
            | ("retired", "retired")
    )
}

/// Whether a response may go from status `from` to `to`.
pub fn response_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        (
            "in-progress",
            "in-progress" | "completed" | "entered-in-error" | "stopped"
        ) | ("completed", "completed" | "amended" | "entered-in-error")
            | ("amended", "amended" | "entered-in-error")
    )
}

/// What is wrong, naming the item (`linkId`) when it is about one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub link_id: Option<String>,
    pub message: String,
}

impl Problem {
    fn at(link_id: &str, message: impl Into<String>) -> Problem {
        Problem {
            link_id: Some(link_id.to_owned()),
            message: message.into(),
        }
    }
}

/// What went wrong with a forms action, in a sentence, with the HTTP status
/// that fits ([`FormsError::status`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum FormsError {
    /// The request is wrong (400).
    Invalid(String),
    /// An item of the form or of the answers is wrong (422): its `linkId`.
    Item(String, String),
    /// 404.
    NotFound(String),
    /// The caller may not (403).
    Forbidden(String),
    /// The record's state does not allow it, or someone changed it (409).
    Conflict(String),
    /// Wardline failed (500).
    Store(String),
}

impl FormsError {
    pub fn status(&self) -> u16 {
        match self {
            FormsError::Invalid(_) => 400,
            FormsError::Item(..) => 422,
            FormsError::NotFound(_) => 404,
            FormsError::Forbidden(_) => 403,
            FormsError::Conflict(_) => 409,
            FormsError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            FormsError::Invalid(m)
            | FormsError::Item(_, m)
            | FormsError::NotFound(m)
            | FormsError::Forbidden(m)
            | FormsError::Conflict(m)
            | FormsError::Store(m) => m.clone(),
        }
    }

    /// The item the error is about (a form field), if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            FormsError::Item(f, _) => Some(f),
            _ => None,
        }
    }
}

impl std::fmt::Display for FormsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for FormsError {}

impl From<Problem> for FormsError {
    fn from(p: Problem) -> FormsError {
        match p.link_id {
            Some(l) => FormsError::Item(l, p.message),
            None => FormsError::Invalid(p.message),
        }
    }
}

impl From<FhirError> for FormsError {
    fn from(e: FhirError) -> FormsError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "form") {
            R::Forbidden(m) => FormsError::Forbidden(m),
            R::NotFound(m) => FormsError::NotFound(m),
            R::Concurrent(m) => FormsError::Conflict(m),
            R::Invalid(m) => FormsError::Invalid(m),
            R::Store(m) => FormsError::Store(m),
        }
    }
}

// ---------------------------------------------------------------- the form

/// One condition of an item's `enableWhen`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnableWhen {
    pub question: String,
    pub operator: String,
    /// The `answer[x]` element name (`answerBoolean`, …) and its value.
    pub answer_key: String,
    pub answer: Value,
}

/// A choice: `system` (may be empty), `code`, `display`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub system: String,
    pub code: String,
    pub display: String,
}

impl Choice {
    pub fn coding(&self) -> Value {
        let mut c = json!({"code": self.code, "display": self.display});
        if !self.system.is_empty() {
            c["system"] = json!(self.system);
        }
        c
    }

    fn matches(&self, c: &Value) -> bool {
        c["code"].as_str() == Some(self.code.as_str())
            && (self.system.is_empty() || c["system"].as_str() == Some(self.system.as_str()))
    }
}

/// One item of a form, read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub link_id: String,
    pub text: String,
    pub kind: String,
    pub required: bool,
    pub repeats: bool,
    /// Inline `answerOption`s, or the expanded `answerValueSet`.
    pub options: Vec<Choice>,
    pub value_set: Option<String>,
    pub enable_when: Vec<EnableWhen>,
    /// `enableBehavior` `any` (otherwise all conditions must hold).
    pub enable_any: bool,
    /// The Observation code when the answer is extracted.
    pub extract: Option<Value>,
    pub items: Vec<Item>,
}

impl Item {
    /// Whether the item takes answers (not a group or display text).
    pub fn is_question(&self) -> bool {
        !matches!(self.kind.as_str(), "group" | "display")
    }

    /// The item and every item under it, in document order.
    pub fn flatten<'a>(items: &'a [Item], out: &mut Vec<&'a Item>) {
        for i in items {
            out.push(i);
            Item::flatten(&i.items, out);
        }
    }
}

/// A form read: its items with value sets expanded.
#[derive(Debug, Clone, Serialize)]
pub struct Form {
    pub id: String,
    pub url: String,
    pub version: Option<String>,
    pub title: String,
    pub status: String,
    pub items: Vec<Item>,
}

impl Form {
    pub fn canonical(&self) -> String {
        match &self.version {
            Some(v) => format!("{}|{v}", self.url),
            None => self.url.clone(),
        }
    }

    /// Every item, in document order.
    pub fn all(&self) -> Vec<&Item> {
        let mut v = Vec::new();
        Item::flatten(&self.items, &mut v);
        v
    }
}

/// Reads resources for a form's checks: `(type, FHIR query) → resources`
/// (a rule's reads or a workflow transaction's).
pub type Find<'a> = dyn FnMut(&str, &str) -> Result<Vec<Value>, FhirError> + 'a;

/// The codes of the ValueSet `url` (its `expansion.contains`, else its
/// `compose.include`s: listed concepts, or every concept of a CodeSystem in
/// the store), or why not.
pub fn expand(find: &mut Find<'_>, url: &str) -> Result<Vec<Choice>, String> {
    let (base, version) = match url.split_once('|') {
        Some((b, v)) => (b, Some(v)),
        None => (url, None),
    };
    let q = match version {
        Some(v) => format!("url={base}&version={v}"),
        None => format!("url={base}"),
    };
    let vss = find("ValueSet", &q).map_err(|e| e.to_string())?;
    let Some(vs) = vss
        .iter()
        .find(|v| v["status"] != "retired")
        .or(vss.first())
    else {
        return Err(format!("there is no ValueSet {url} in Wardline"));
    };
    let mut out = Vec::new();
    let choice = |system: &str, c: &Value| -> Option<Choice> {
        let code = c["code"].as_str()?;
        Some(Choice {
            system: c["system"].as_str().unwrap_or(system).to_owned(),
            code: code.to_owned(),
            display: c["display"].as_str().unwrap_or(code).to_owned(),
        })
    };
    if let Some(contains) = vs["expansion"]["contains"].as_array() {
        out.extend(contains.iter().filter_map(|c| choice("", c)));
    } else {
        for inc in vs["compose"]["include"].as_array().into_iter().flatten() {
            let system = inc["system"].as_str().unwrap_or_default();
            match inc["concept"].as_array() {
                Some(cs) => out.extend(cs.iter().filter_map(|c| choice(system, c))),
                None if !system.is_empty() => {
                    let css =
                        find("CodeSystem", &format!("url={system}")).map_err(|e| e.to_string())?;
                    let Some(cs) = css.first() else {
                        return Err(format!(
                            "ValueSet {url} includes CodeSystem {system}, which is not in Wardline"
                        ));
                    };
                    out.extend(
                        cs["concept"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| choice(system, c)),
                    );
                }
                None => {}
            }
        }
    }
    if out.is_empty() {
        return Err(format!("ValueSet {url} has no codes to choose from"));
    }
    Ok(out)
}

/// The `answer[x]` element an enableWhen on a question of `kind` may use.
fn answer_fits(kind: &str, key: &str, operator: &str) -> bool {
    if operator == "exists" {
        return key == "answerBoolean";
    }
    match kind {
        "boolean" => key == "answerBoolean",
        "integer" => key == "answerInteger",
        "decimal" => matches!(key, "answerDecimal" | "answerInteger"),
        "string" | "text" => key == "answerString",
        "date" => key == "answerDate",
        "dateTime" => matches!(key, "answerDateTime" | "answerDate"),
        "choice" => key == "answerCoding",
        "open-choice" => matches!(key, "answerCoding" | "answerString"),
        _ => false,
    }
}

const OPERATORS: [&str; 7] = ["exists", "=", "!=", ">", "<", ">=", "<="];

/// Reads and checks a form (see the module documentation): linkIds unique,
/// known types, groups with items, choices with options (value sets
/// expanded through `find`), each enableWhen about an earlier question with
/// an answer of its type, extracted items with a code. The first problem
/// names its item.
pub fn read_form(q: &Value, find: &mut Find<'_>) -> Result<Form, Problem> {
    let mut seen: Vec<(String, String)> = Vec::new();
    let items = read_items(&q["item"], find, &mut seen)?;
    Ok(Form { items, ..header(q) })
}

/// A form version's identity and status as stored, its items not read.
pub fn header(q: &Value) -> Form {
    Form {
        id: q["id"].as_str().unwrap_or_default().to_owned(),
        url: q["url"].as_str().unwrap_or_default().to_owned(),
        version: q["version"].as_str().map(str::to_owned),
        title: q["title"]
            .as_str()
            .or(q["name"].as_str())
            .unwrap_or("Untitled form")
            .to_owned(),
        status: q["status"].as_str().unwrap_or("draft").to_owned(),
        items: Vec::new(),
    }
}

fn read_items(
    items: &Value,
    find: &mut Find<'_>,
    seen: &mut Vec<(String, String)>,
) -> Result<Vec<Item>, Problem> {
    let mut out = Vec::new();
    for (n, it) in items.as_array().into_iter().flatten().enumerate() {
        let Some(link_id) = it["linkId"]
            .as_str()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        else {
            return Err(Problem {
                link_id: None,
                message: format!("Item {} has no linkId.", n + 1),
            });
        };
        let link_id = link_id.to_owned();
        if seen.iter().any(|(l, _)| *l == link_id) {
            return Err(Problem::at(
                &link_id,
                format!("The linkId {link_id} is used twice: each item needs its own."),
            ));
        }
        let kind = it["type"].as_str().unwrap_or_default().to_owned();
        if !KINDS.contains(&kind.as_str()) {
            return Err(Problem::at(
                &link_id,
                format!(
                    "Item {link_id} has type \"{kind}\": a form's items are {}.",
                    KINDS.join(", ")
                ),
            ));
        }
        let text = it["text"].as_str().unwrap_or(&link_id).to_owned();
        let mut enable_when = Vec::new();
        for ew in it["enableWhen"].as_array().into_iter().flatten() {
            let question = ew["question"].as_str().unwrap_or_default().to_owned();
            let operator = ew["operator"].as_str().unwrap_or_default().to_owned();
            let Some((key, answer)) = ew
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.starts_with("answer")))
            else {
                return Err(Problem::at(
                    &link_id,
                    format!("Item {link_id}: its enableWhen on {question} gives no answer."),
                ));
            };
            let Some((_, qkind)) = seen.iter().find(|(l, _)| *l == question) else {
                return Err(Problem::at(
                    &link_id,
                    format!(
                        "Item {link_id} is enabled by \"{question}\", which is not a question before it in the form."
                    ),
                ));
            };
            if !OPERATORS.contains(&operator.as_str()) {
                return Err(Problem::at(
                    &link_id,
                    format!("Item {link_id}: \"{operator}\" is not an enableWhen operator."),
                ));
            }
            if !answer_fits(qkind, key, &operator) {
                return Err(Problem::at(
                    &link_id,
                    format!(
                        "Item {link_id} is enabled by an {key} on {question}, which is a {qkind} question: the answer's type does not fit."
                    ),
                ));
            }
            enable_when.push(EnableWhen {
                question,
                operator,
                answer_key: key.clone(),
                answer: answer.clone(),
            });
        }
        if enable_when.len() > 1 && it["enableBehavior"].as_str().is_none() {
            return Err(Problem::at(
                &link_id,
                format!(
                    "Item {link_id} has more than one enableWhen: say whether all or any must hold (enableBehavior)."
                ),
            ));
        }
        let mut options: Vec<Choice> = it["answerOption"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| {
                if let Some(c) = o.get("valueCoding") {
                    let code = c["code"].as_str()?;
                    Some(Choice {
                        system: c["system"].as_str().unwrap_or_default().to_owned(),
                        code: code.to_owned(),
                        display: c["display"].as_str().unwrap_or(code).to_owned(),
                    })
                } else {
                    let s = o["valueString"].as_str()?;
                    Some(Choice {
                        system: String::new(),
                        code: s.to_owned(),
                        display: s.to_owned(),
                    })
                }
            })
            .collect();
        let value_set = it["answerValueSet"].as_str().map(str::to_owned);
        if let Some(vs) = &value_set {
            options = expand(find, vs)
                .map_err(|m| Problem::at(&link_id, format!("Item {link_id}'s choices: {m}.")))?;
        }
        if matches!(kind.as_str(), "choice" | "open-choice") && options.is_empty() {
            return Err(Problem::at(
                &link_id,
                format!(
                    "Item {link_id} is a choice without options: give answer options or a value set."
                ),
            ));
        }
        let extract = it["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["url"] == OBSERVATION_EXTRACT_EXT && e["valueBoolean"] == true);
        let extract = if extract {
            let code = it["code"]
                .as_array()
                .and_then(|c| c.first())
                .filter(|c| c["code"].is_string());
            match code {
                Some(c) if !matches!(kind.as_str(), "group" | "display") => Some(c.clone()),
                Some(_) => {
                    return Err(Problem::at(
                        &link_id,
                        format!(
                            "Item {link_id} is a {kind}: only a question's answer can become an observation."
                        ),
                    ));
                }
                None => {
                    return Err(Problem::at(
                        &link_id,
                        format!(
                            "Item {link_id} is marked for extraction but has no code for the observation."
                        ),
                    ));
                }
            }
        } else {
            None
        };
        seen.push((link_id.clone(), kind.clone()));
        let children = read_items(&it["item"], find, seen)?;
        if kind == "group" && children.is_empty() {
            return Err(Problem::at(
                &link_id,
                format!("Group {link_id} has no items."),
            ));
        }
        out.push(Item {
            link_id,
            text,
            required: it["required"].as_bool().unwrap_or(false),
            repeats: it["repeats"].as_bool().unwrap_or(false),
            enable_any: it["enableBehavior"] == "any",
            kind,
            options,
            value_set,
            enable_when,
            extract,
            items: children,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------- answers

/// A response's answers by linkId, in the order given.
pub type Answers = HashMap<String, Vec<Value>>;

/// Every answer of a response (its `item`s, nested), by linkId; an item
/// answered in two places counts twice. Refuses an item the form does not
/// have.
pub fn answers_of(form: &Form, qr_items: &Value) -> Result<Answers, Problem> {
    let known: Vec<&str> = form.all().iter().map(|i| i.link_id.as_str()).collect();
    let mut out = Answers::new();
    fn walk(v: &Value, known: &[&str], out: &mut Answers) -> Result<(), Problem> {
        for it in v.as_array().into_iter().flatten() {
            let l = it["linkId"].as_str().unwrap_or_default();
            if !known.contains(&l) {
                return Err(Problem {
                    link_id: None,
                    message: format!(
                        "The response answers \"{l}\", which is not an item of its form."
                    ),
                });
            }
            for a in it["answer"].as_array().into_iter().flatten() {
                out.entry(l.to_owned()).or_default().push(a.clone());
                walk(&a["item"], known, out)?;
            }
            walk(&it["item"], known, out)?;
        }
        Ok(())
    }
    walk(qr_items, &known, &mut out)?;
    Ok(out)
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn compare(op: &str, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering as O;
    let ord = match (a, b) {
        (Value::Object(_), Value::Object(_)) => {
            // Codings: equal when code (and system, when both have one) match.
            let same = a["code"] == b["code"]
                && (a["system"].is_null() || b["system"].is_null() || a["system"] == b["system"]);
            return match op {
                "=" => same,
                "!=" => !same,
                _ => false,
            };
        }
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => match (a.as_str(), b.as_str()) {
                (Some(x), Some(y)) => Some(x.cmp(y)),
                _ => (a == b).then_some(O::Equal),
            },
        },
    };
    match (op, ord) {
        ("=", Some(o)) => o == O::Equal,
        ("!=", o) => o != Some(O::Equal),
        (">", Some(o)) => o == O::Greater,
        ("<", Some(o)) => o == O::Less,
        (">=", Some(o)) => o != O::Less,
        ("<=", Some(o)) => o != O::Greater,
        _ => false,
    }
}

/// The value of an answer (`valueX`), whatever its type.
pub fn answer_value(a: &Value) -> Option<(&str, &Value)> {
    a.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("value"))
        .map(|(k, v)| (k.as_str(), v))
}

/// Whether `item` is enabled, given the answers of the items before it
/// (those of disabled items already removed).
pub fn enabled(item: &Item, answers: &Answers) -> bool {
    if item.enable_when.is_empty() {
        return true;
    }
    let hold = |ew: &EnableWhen| {
        let given = answers.get(&ew.question).map_or(&[][..], Vec::as_slice);
        if ew.operator == "exists" {
            return given.is_empty() != (ew.answer == true);
        }
        given
            .iter()
            .any(|a| answer_value(a).is_some_and(|(_, v)| compare(&ew.operator, v, &ew.answer)))
    };
    if item.enable_any {
        item.enable_when.iter().any(hold)
    } else {
        item.enable_when.iter().all(hold)
    }
}

/// Removes the answers of items not enabled (in document order, so an item
/// enabled only by a disabled one is disabled too); returns the linkIds of
/// the items enabled.
pub fn apply_enable_when(form: &Form, answers: &mut Answers) -> Vec<String> {
    let mut on = Vec::new();
    let mut off_parents: Vec<&str> = Vec::new();
    fn walk<'a>(
        items: &'a [Item],
        parent_on: bool,
        answers: &mut Answers,
        on: &mut Vec<String>,
        off: &mut Vec<&'a str>,
    ) {
        for i in items {
            let is_on = parent_on && enabled(i, answers);
            if is_on {
                on.push(i.link_id.clone());
            } else {
                answers.remove(&i.link_id);
                off.push(&i.link_id);
            }
            walk(&i.items, is_on, answers, on, off);
        }
    }
    walk(&form.items, true, answers, &mut on, &mut off_parents);
    on
}

/// The answer's value key a question of `kind` takes.
fn fits(item: &Item, a: &Value) -> Result<(), String> {
    let Some((key, v)) = answer_value(a) else {
        return Err("the answer has no value".into());
    };
    let ok = match item.kind.as_str() {
        "boolean" => key == "valueBoolean",
        "integer" => key == "valueInteger",
        "decimal" => matches!(key, "valueDecimal" | "valueInteger"),
        "string" | "text" => key == "valueString",
        "date" => key == "valueDate",
        "dateTime" => key == "valueDateTime",
        "choice" => key == "valueCoding" && item.options.iter().any(|o| o.matches(v)),
        "open-choice" => {
            (key == "valueCoding" && item.options.iter().any(|o| o.matches(v)))
                || key == "valueString"
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else if matches!(item.kind.as_str(), "choice" | "open-choice") && key == "valueCoding" {
        Err(format!(
            "\"{}\" is not one of its choices ({})",
            v["code"].as_str().unwrap_or_default(),
            item.options
                .iter()
                .map(|o| o.display.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        Err(format!("a {} question cannot take a {key}", item.kind))
    }
}

/// Checks a response's answers against its form version: each of the
/// right type and from the options, one unless the item repeats, none to a
/// question not enabled and, when `complete`, every enabled required
/// question answered. The first problem names its item.
pub fn check_response(form: &Form, qr_items: &Value, complete: bool) -> Result<(), Problem> {
    let given = answers_of(form, qr_items)?;
    let mut kept = given.clone();
    let on = apply_enable_when(form, &mut kept);
    for item in form.all() {
        let answers = given.get(&item.link_id).map_or(&[][..], Vec::as_slice);
        if !item.is_question() {
            if !answers.is_empty() {
                return Err(Problem::at(
                    &item.link_id,
                    format!("\"{}\" is not a question: it takes no answer.", item.text),
                ));
            }
            continue;
        }
        let is_on = on.contains(&item.link_id);
        if !is_on && !answers.is_empty() {
            return Err(Problem::at(
                &item.link_id,
                format!(
                    "\"{}\" is not asked given the other answers: remove its answer.",
                    item.text
                ),
            ));
        }
        if answers.len() > 1 && !item.repeats {
            return Err(Problem::at(
                &item.link_id,
                format!("\"{}\" takes one answer, not {}.", item.text, answers.len()),
            ));
        }
        for a in answers {
            fits(item, a)
                .map_err(|m| Problem::at(&item.link_id, format!("\"{}\": {m}.", item.text)))?;
        }
        if complete && is_on && item.required && answers.is_empty() {
            return Err(Problem::at(
                &item.link_id,
                format!("Answer \"{}\": it is required.", item.text),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_find() -> impl FnMut(&str, &str) -> Result<Vec<Value>, FhirError> {
        |_: &str, _: &str| Ok(Vec::new())
    }

    #[test]
    fn lifecycles() {
        assert!(allowed("draft", "active"));
        assert!(allowed("active", "retired"));
        assert!(!allowed("active", "draft"));
        assert!(!allowed("retired", "active"));
        assert!(response_allowed("in-progress", "completed"));
        assert!(!response_allowed("completed", "in-progress"));
        assert!(response_allowed("completed", "amended"));
    }

    #[test]
    fn enable_when_must_point_back_with_a_fitting_answer() {
        let q = json!({"item": [
            {"linkId": "b", "type": "string", "enableWhen": [{"question": "a", "operator": "=", "answerBoolean": true}]},
            {"linkId": "a", "type": "boolean"}]});
        let e = read_form(&q, &mut no_find()).unwrap_err();
        assert_eq!(e.link_id.as_deref(), Some("b"));
        assert!(
            e.message.contains("not a question before it"),
            "{}",
            e.message
        );
        let q = json!({"item": [{"linkId": "a", "type": "integer"},
            {"linkId": "b", "type": "string", "enableWhen": [{"question": "a", "operator": "=", "answerBoolean": true}]}]});
        let e = read_form(&q, &mut no_find()).unwrap_err();
        assert!(e.message.contains("does not fit"), "{}", e.message);
        let q = json!({"item": [{"linkId": "a", "type": "integer"}, {"linkId": "a", "type": "string"}]});
        assert!(
            read_form(&q, &mut no_find())
                .unwrap_err()
                .message
                .contains("used twice")
        );
        let q = json!({"item": [{"linkId": "c", "type": "choice"}]});
        assert!(
            read_form(&q, &mut no_find())
                .unwrap_err()
                .message
                .contains("without options")
        );
    }

    #[test]
    fn operators_compare_numbers_and_codings() {
        assert!(compare(">=", &json!(3), &json!(3)));
        assert!(!compare(">", &json!(3), &json!(3)));
        assert!(compare(
            "=",
            &json!({"system": "s", "code": "y"}),
            &json!({"code": "y"})
        ));
        assert!(compare(
            "!=",
            &json!({"system": "s", "code": "y"}),
            &json!({"code": "n"})
        ));
        assert!(compare("<", &json!("2026-01-01"), &json!("2026-02-01")));
    }
}
