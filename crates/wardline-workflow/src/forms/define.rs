//! Defining forms: a draft made and edited item by item, imported from
//! Questionnaire JSON, activated (retiring the other active versions of its
//! url), retired, and a new draft version of an active form. Who may: the
//! holders of `ManageCatalogue` (the policy's rule for `Questionnaire`
//! writes). Each action is one transaction audited `forms-define`; what a
//! form must be is [`super::rule::FormRule`]'s, asked on the save.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::{FORMS_BASE, Form, FormsError, KINDS, OBSERVATION_EXTRACT_EXT, is_form, read_form};
use crate::orders::request::fhir_time;

fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, FormsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

/// A form version as the forms list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FormSummary {
    pub id: String,
    pub url: String,
    pub version: Option<String>,
    pub title: String,
    pub status: String,
    pub items: usize,
}

fn summary(q: &Value) -> FormSummary {
    let h = super::header(q);
    FormSummary {
        id: h.id,
        url: h.url,
        version: h.version,
        title: h.title,
        status: h.status,
        items: q["item"].as_array().map_or(0, Vec::len),
    }
}

/// Every form version (not the order catalogue's questions), by title then
/// version; `active_only` keeps the active ones (what a clinician chooses from).
pub fn list(
    svc: &FhirService,
    access: &dyn Access,
    active_only: bool,
) -> Result<Vec<FormSummary>, FormsError> {
    let mut params = vec![];
    if active_only {
        params.push(("status", "active".to_owned()));
    }
    let found = crate::fhir::search_as_all(svc, access, "Questionnaire", &params)?;
    let mut out: Vec<FormSummary> = found
        .resources
        .iter()
        .filter(|q| is_form(q))
        // A form with no items (one written over REST) has nothing to fill in.
        .filter(|q| !active_only || q["item"].as_array().is_some_and(|i| !i.is_empty()))
        .map(summary)
        .collect();
    out.sort_by(|a, b| {
        a.title.cmp(&b.title).then(
            a.version
                .as_deref()
                .and_then(|v| v.parse::<u32>().ok())
                .cmp(&b.version.as_deref().and_then(|v| v.parse::<u32>().ok())),
        )
    });
    Ok(out)
}

/// One form version, read and checked (value sets expanded), with its JSON.
pub fn load(svc: &FhirService, access: &dyn Access, id: &str) -> Result<(Form, Value), FormsError> {
    let mut tx = begin(svc, access, "forms-view", "R")?;
    let out = load_in(&mut tx, id)?;
    tx.commit()?;
    Ok(out)
}

/// [`load`] in `tx` (a draft may have no items yet).
pub fn load_in(tx: &mut Tx<'_>, id: &str) -> Result<(Form, Value), FormsError> {
    let q = tx
        .get("Questionnaire", id)?
        .filter(is_form)
        .ok_or_else(|| FormsError::NotFound(format!("There is no form with id {id}.")))?;
    let mut find = |t: &str, query: &str| tx.find(t, query);
    let form = read_form(&q, &mut find)?;
    Ok((form, q))
}

fn slug(title: &str) -> String {
    let s: String = title
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if s.is_empty() { "form".to_owned() } else { s }
}

/// A new draft form (version 1) titled `title`; returns its id. Its url is
/// `{FORMS_BASE}/{title as a slug}`; refused when a form has that url.
pub fn create(
    svc: &FhirService,
    access: &dyn Access,
    title: &str,
    now: OffsetDateTime,
) -> Result<String, FormsError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(FormsError::Item(
            "title".into(),
            "Enter the form's title.".into(),
        ));
    }
    let url = format!("{FORMS_BASE}/{}", slug(title));
    let mut tx = begin(svc, access, "forms-define", "C")?;
    tx.lock(&[format!("form/{url}")])?;
    if !tx.find("Questionnaire", &format!("url={url}"))?.is_empty() {
        return Err(FormsError::Item(
            "title".into(),
            format!("A form called \"{title}\" exists already: open it, or choose another title."),
        ));
    }
    let saved = tx.save(json!({
        "resourceType": "Questionnaire",
        "url": url,
        "version": "1",
        "name": slug(title).replace('-', "_"),
        "title": title,
        "status": "draft",
        "date": fhir_time(now),
    }))?;
    tx.commit()?;
    Ok(saved.id)
}

/// An item to add to a draft form (the administrator's page).
#[derive(Debug, Clone, Default)]
pub struct NewItem {
    /// Put it inside this group (its linkId); at the end of the form otherwise.
    pub group: Option<String>,
    pub link_id: String,
    pub text: String,
    pub kind: String,
    pub required: bool,
    pub repeats: bool,
    /// `code` or `code|display`, or `system|code|display`, one per entry.
    pub options: Vec<String>,
    /// A ValueSet's canonical url.
    pub value_set: Option<String>,
    /// Shown only when this question (an earlier one's linkId)…
    pub enable_question: Option<String>,
    /// …compares so (`=`, `!=`, `>`, `<`, `>=`, `<=`, `exists`)…
    pub enable_operator: String,
    /// …with this answer (`yes`/`no`, a number, a date, a code or text,
    /// read by the earlier question's type).
    pub enable_answer: String,
    /// The observation code when the answer is extracted: `system|code|display`.
    pub extract: Option<String>,
}

fn choice_of(s: &str) -> Value {
    let parts: Vec<&str> = s.split('|').map(str::trim).collect();
    match parts.as_slice() {
        [system, code, display] => json!({"system": system, "code": code, "display": display}),
        [code, display] => json!({"code": code, "display": display}),
        _ => json!({"code": s.trim(), "display": s.trim()}),
    }
}

fn enable_answer(kind: &str, operator: &str, text: &str) -> Result<(String, Value), String> {
    let t = text.trim();
    if operator == "exists" {
        return match t.to_ascii_lowercase().as_str() {
            "yes" | "true" | "" => Ok(("answerBoolean".into(), json!(true))),
            "no" | "false" => Ok(("answerBoolean".into(), json!(false))),
            _ => Err("for \"exists\" answer yes or no".into()),
        };
    }
    Ok(match kind {
        "boolean" => match t.to_ascii_lowercase().as_str() {
            "yes" | "true" => ("answerBoolean".into(), json!(true)),
            "no" | "false" => ("answerBoolean".into(), json!(false)),
            _ => return Err("answer yes or no".into()),
        },
        "integer" => (
            "answerInteger".into(),
            json!(t.parse::<i64>().map_err(|_| "give a whole number")?),
        ),
        "decimal" => (
            "answerDecimal".into(),
            json!(t.parse::<f64>().map_err(|_| "give a number")?),
        ),
        "date" => ("answerDate".into(), json!(t)),
        "dateTime" => ("answerDateTime".into(), json!(t)),
        "choice" | "open-choice" => ("answerCoding".into(), choice_of(t)),
        _ => ("answerString".into(), json!(t)),
    })
}

fn push_into(items: &mut [Value], group: &str, item: Value) -> bool {
    for i in items.iter_mut() {
        if i["linkId"] == group {
            match i.get_mut("item").and_then(Value::as_array_mut) {
                Some(children) => children.push(item),
                None => i["item"] = json!([item]),
            }
            return true;
        }
        if let Some(children) = i.get_mut("item").and_then(Value::as_array_mut)
            && push_into(children, group, item.clone())
        {
            return true;
        }
    }
    false
}

fn find_kind(items: &Value, link_id: &str) -> Option<String> {
    for i in items.as_array().into_iter().flatten() {
        if i["linkId"] == link_id {
            return i["type"].as_str().map(str::to_owned);
        }
        if let Some(k) = find_kind(&i["item"], link_id) {
            return Some(k);
        }
    }
    None
}

/// Locks and reads a draft form in `tx`; refuses a version in use.
fn draft_in(tx: &mut Tx<'_>, form: &str) -> Result<Value, FormsError> {
    tx.lock(&[format!("Questionnaire/{form}")])?;
    let q = tx
        .get("Questionnaire", form)?
        .filter(is_form)
        .ok_or_else(|| FormsError::NotFound(format!("There is no form with id {form}.")))?;
    if q["status"] != "draft" {
        return Err(FormsError::Conflict(
            "This version is in use and cannot change: make a new version to edit the form.".into(),
        ));
    }
    Ok(q)
}

/// Adds an item to a draft form.
pub fn add_item(
    svc: &FhirService,
    access: &dyn Access,
    form: &str,
    n: &NewItem,
) -> Result<(), FormsError> {
    let field = |f: &str, m: String| FormsError::Item(f.to_owned(), m);
    let link_id = n.link_id.trim();
    if link_id.is_empty() {
        return Err(field(
            "link_id",
            "Enter the item's linkId (a short name, unique in the form).".into(),
        ));
    }
    if n.text.trim().is_empty() {
        return Err(field(
            "text",
            "Enter the question or heading as people will read it.".into(),
        ));
    }
    if !KINDS.contains(&n.kind.as_str()) {
        return Err(field("kind", "Choose the type of answer.".into()));
    }
    let mut tx = begin(svc, access, "forms-define", "U")?;
    let mut q = draft_in(&mut tx, form)?;
    let mut item = json!({"linkId": link_id, "text": n.text.trim(), "type": n.kind});
    if n.required {
        item["required"] = json!(true);
    }
    if n.repeats {
        item["repeats"] = json!(true);
    }
    let opts: Vec<Value> = n
        .options
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(|o| json!({"valueCoding": choice_of(o)}))
        .collect();
    if !opts.is_empty() {
        item["answerOption"] = json!(opts);
    }
    if let Some(vs) = n
        .value_set
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        item["answerValueSet"] = json!(vs);
    }
    if let Some(qid) = n
        .enable_question
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        let Some(kind) = find_kind(&q["item"], qid) else {
            return Err(field(
                "enable_question",
                format!("There is no earlier question \"{qid}\" to depend on."),
            ));
        };
        let op = if n.enable_operator.is_empty() {
            "="
        } else {
            n.enable_operator.as_str()
        };
        let (key, answer) = enable_answer(&kind, op, &n.enable_answer)
            .map_err(|m| field("enable_answer", format!("The answer to {qid}: {m}.")))?;
        let mut ew = json!({"question": qid, "operator": op});
        ew[key] = answer;
        item["enableWhen"] = json!([ew]);
    }
    if let Some(code) = n
        .extract
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        item["code"] = json!([choice_of(code)]);
        item["extension"] = json!([{"url": OBSERVATION_EXTRACT_EXT, "valueBoolean": true}]);
    }
    let items = q
        .get_mut("item")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let mut items = items;
    match n.group.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        Some(g) => {
            if !push_into(&mut items, g, item) {
                return Err(field(
                    "group",
                    format!("There is no group \"{g}\" in the form."),
                ));
            }
        }
        None => items.push(item),
    }
    q["item"] = json!(items);
    save_checked(&mut tx, q)?;
    tx.commit()?;
    Ok(())
}

/// Saves a form in `tx`, checked first by the rule's own reading
/// ([`read_form`]) so that a problem comes back naming its item.
fn save_checked(tx: &mut Tx<'_>, q: Value) -> Result<String, FormsError> {
    let mut find = |t: &str, query: &str| tx.find(t, query);
    read_form(&q, &mut find)?;
    Ok(tx.save(q)?.id)
}

/// Removes an item (and what is inside it) from a draft form.
pub fn remove_item(
    svc: &FhirService,
    access: &dyn Access,
    form: &str,
    link_id: &str,
) -> Result<(), FormsError> {
    fn strip(items: &mut Vec<Value>, link_id: &str) -> bool {
        let before = items.len();
        items.retain(|i| i["linkId"] != link_id);
        if items.len() != before {
            return true;
        }
        items.iter_mut().any(|i| {
            i.get_mut("item")
                .and_then(Value::as_array_mut)
                .is_some_and(|c| strip(c, link_id))
        })
    }
    let mut tx = begin(svc, access, "forms-define", "U")?;
    let mut q = draft_in(&mut tx, form)?;
    let mut items = q["item"].as_array().cloned().unwrap_or_default();
    if !strip(&mut items, link_id) {
        return Err(FormsError::NotFound(format!(
            "The form has no item {link_id}."
        )));
    }
    if items.is_empty() {
        q.as_object_mut().map(|o| o.remove("item"));
    } else {
        q["item"] = json!(items);
    }
    save_checked(&mut tx, q)?;
    tx.commit()?;
    Ok(())
}

/// Makes a version active (refused when it is not a valid form with
/// questions), retiring the other active versions of its url.
pub fn activate(
    svc: &FhirService,
    access: &dyn Access,
    form: &str,
    now: OffsetDateTime,
) -> Result<(), FormsError> {
    let mut tx = begin(svc, access, "forms-define", "U")?;
    activate_in(&mut tx, form, now)?;
    tx.commit()?;
    Ok(())
}

/// [`activate`] in `tx`.
pub fn activate_in(tx: &mut Tx<'_>, form: &str, now: OffsetDateTime) -> Result<(), FormsError> {
    let (f, mut q) = load_in(tx, form)?;
    if f.items.is_empty() {
        return Err(FormsError::Invalid(
            "The form has no questions: add at least one before making it active.".into(),
        ));
    }
    tx.lock(&[format!("form/{}", f.url)])?;
    for mut other in tx.find("Questionnaire", &format!("url={}&status=active", f.url))? {
        if other["id"] != q["id"] {
            other["status"] = json!("retired");
            tx.save(other)?;
        }
    }
    q["status"] = json!("active");
    q["date"] = json!(fhir_time(now));
    save_checked(tx, q)?;
    Ok(())
}

/// Retires a version: it is no longer offered; its responses stay.
pub fn retire(svc: &FhirService, access: &dyn Access, form: &str) -> Result<(), FormsError> {
    let mut tx = begin(svc, access, "forms-define", "U")?;
    tx.lock(&[format!("Questionnaire/{form}")])?;
    let mut q = tx
        .get("Questionnaire", form)?
        .filter(is_form)
        .ok_or_else(|| FormsError::NotFound(format!("There is no form with id {form}.")))?;
    q["status"] = json!("retired");
    save_checked(&mut tx, q)?;
    tx.commit()?;
    Ok(())
}

/// A new draft version of a form (its items copied, the next version
/// number); returns its id. The version it came from is unchanged.
pub fn new_version(
    svc: &FhirService,
    access: &dyn Access,
    form: &str,
    now: OffsetDateTime,
) -> Result<String, FormsError> {
    let mut tx = begin(svc, access, "forms-define", "C")?;
    let q = tx
        .get("Questionnaire", form)?
        .filter(is_form)
        .ok_or_else(|| FormsError::NotFound(format!("There is no form with id {form}.")))?;
    let url = q["url"].as_str().unwrap_or_default().to_owned();
    tx.lock(&[format!("form/{url}")])?;
    let versions = tx.find("Questionnaire", &format!("url={url}&_count=1000"))?;
    if let Some(d) = versions.iter().find(|v| v["status"] == "draft") {
        return Err(FormsError::Conflict(format!(
            "Version {} of this form is a draft already: edit that one (Questionnaire/{}).",
            d["version"].as_str().unwrap_or("?"),
            d["id"].as_str().unwrap_or_default()
        )));
    }
    let next = versions
        .iter()
        .filter_map(|v| v["version"].as_str()?.parse::<u32>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let mut copy = q.clone();
    let o = copy
        .as_object_mut()
        .ok_or_else(|| FormsError::Store("a form is not an object".into()))?;
    o.remove("id");
    o.remove("meta");
    copy["version"] = json!(next.to_string());
    copy["status"] = json!("draft");
    copy["date"] = json!(fhir_time(now));
    let id = save_checked(&mut tx, copy)?;
    tx.commit()?;
    Ok(id)
}

/// Imports a Questionnaire (JSON) as a new draft form; returns its id. A
/// url is given when it has none (from its title), version `1` when it
/// has none; a url the order catalogue uses, or one a form has at that
/// version already, is refused.
pub fn import(
    svc: &FhirService,
    access: &dyn Access,
    json_text: &str,
    now: OffsetDateTime,
) -> Result<String, FormsError> {
    let mut q: Value = serde_json::from_str(json_text)
        .map_err(|e| FormsError::Item("file".into(), format!("The file is not JSON: {e}.")))?;
    if q["resourceType"] != "Questionnaire" {
        return Err(FormsError::Item(
            "file".into(),
            "The file is not a FHIR Questionnaire (its resourceType must be Questionnaire).".into(),
        ));
    }
    let o = q
        .as_object_mut()
        .ok_or_else(|| FormsError::Invalid("The Questionnaire is not a JSON object.".into()))?;
    o.remove("id");
    o.remove("meta");
    if q["url"].as_str().is_none_or(str::is_empty) {
        let title = q["title"].as_str().or(q["name"].as_str()).unwrap_or("form");
        q["url"] = json!(format!("{FORMS_BASE}/{}", slug(title)));
    }
    if q["version"].is_null() {
        q["version"] = json!("1");
    }
    q["status"] = json!("draft");
    q["date"] = json!(fhir_time(now));
    if !is_form(&q) {
        return Err(FormsError::Item(
            "file".into(),
            format!(
                "Its url {} is the order catalogue's: give the form a url of its own.",
                q["url"].as_str().unwrap_or_default()
            ),
        ));
    }
    let url = q["url"].as_str().unwrap_or_default().to_owned();
    let version = q["version"].as_str().unwrap_or_default().to_owned();
    let mut tx = begin(svc, access, "forms-define", "C")?;
    tx.lock(&[format!("form/{url}")])?;
    if !tx
        .find("Questionnaire", &format!("url={url}&version={version}"))?
        .is_empty()
    {
        return Err(FormsError::Item(
            "file".into(),
            format!("Version {version} of {url} is in Wardline already."),
        ));
    }
    let id = match save_checked(&mut tx, q) {
        Err(FormsError::Item(l, m)) => {
            return Err(FormsError::Item("file".into(), format!("Item {l}: {m}")));
        }
        r => r?,
    };
    tx.commit()?;
    Ok(id)
}
