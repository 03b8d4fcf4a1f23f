//! Completing a form in the chart: the answers as a page posts them
//! ([`answers_from_fields`]: one field per answer, `{linkId}` and, for an
//! item that repeats, `{linkId}.1`, `{linkId}.2`, …), enableWhen applied on
//! the server, saved as a draft (`in-progress`) or completed, in one
//! transaction audited `forms-respond` — checked by
//! [`super::check_response`] before the save as the write rule checks it
//! on the save, and extracted by [`super::rule::Extraction`] on completion.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService};

use super::define::load_in;
use super::rule::resolve;
use super::{
    Answers, Form, FormsError, Item, Problem, answer_value, apply_enable_when, check_response,
    is_form, read_form,
};
use crate::orders::request::fhir_time;

/// How many answers a repeating item takes on the page at most.
pub const MAX_REPEATS: usize = 50;

/// The raw values posted for an item, in order (`{linkId}`, `{linkId}.1`, …).
pub fn raw_values<'a>(item: &Item, fields: &'a HashMap<String, String>) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut push = |k: &str| {
        if let Some(v) = fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            out.push(v);
        }
    };
    push(&item.link_id);
    if item.repeats {
        for n in 1..MAX_REPEATS {
            push(&format!("{}.{n}", item.link_id));
        }
    }
    out
}

/// One answer typed in for `item`, as a QuestionnaireResponse answer.
pub fn parse_answer(
    item: &Item,
    text: &str,
    zone: &wardline_fhir::datetime::LocalZone,
) -> Result<Value, Problem> {
    let bad = |m: String| Problem {
        link_id: Some(item.link_id.clone()),
        message: format!("\"{}\": {m}", item.text),
    };
    let t = text.trim();
    Ok(match item.kind.as_str() {
        "boolean" => match t.to_ascii_lowercase().as_str() {
            "yes" | "true" => json!({"valueBoolean": true}),
            "no" | "false" => json!({"valueBoolean": false}),
            _ => return Err(bad("answer yes or no.".into())),
        },
        "integer" => {
            json!({"valueInteger": t.parse::<i64>().map_err(|_| bad("enter a whole number, for example 3.".into()))?})
        }
        "decimal" => {
            let n: f64 = t
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| bad("enter a number, for example 72.5.".into()))?;
            json!({"valueDecimal": n})
        }
        "date" => {
            if t.len() != 10 || wardline_fhir::datetime::parse_range(t).is_none() {
                return Err(bad("enter a real date.".into()));
            }
            json!({"valueDate": t})
        }
        "dateTime" => {
            let (ms, _) = wardline_fhir::datetime::parse_range_in(t, zone)
                .filter(|_| t.len() >= 16)
                .ok_or_else(
                    || bad("enter a date and time, for example 2026-12-03T14:30.".into()),
                )?;
            json!({"valueDateTime": wardline_fhir::datetime::format_instant(ms)})
        }
        "choice" | "open-choice" => match item.options.iter().find(|o| o.code == t) {
            Some(o) => json!({"valueCoding": o.coding()}),
            None if item.kind == "open-choice" => json!({"valueString": t}),
            None => return Err(bad("choose one of the answers offered.".into())),
        },
        _ => json!({"valueString": t}),
    })
}

/// The answers posted, typed and with enableWhen applied (the answers of
/// questions not asked dropped), by linkId.
pub fn answers_from_fields(
    form: &Form,
    fields: &HashMap<String, String>,
    zone: &wardline_fhir::datetime::LocalZone,
) -> Result<Answers, Problem> {
    let mut answers = Answers::new();
    for item in form.all().into_iter().filter(|i| i.is_question()) {
        let mut typed = Vec::new();
        for raw in raw_values(item, fields) {
            // "other" chosen in an open choice: the text typed beside it.
            let raw = if item.kind == "open-choice" && raw == "other" {
                match fields
                    .get(&format!("{}.other", item.link_id))
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                {
                    Some(o) => o,
                    None => continue,
                }
            } else {
                raw
            };
            typed.push(parse_answer(item, raw, zone));
        }
        if !typed.is_empty() {
            answers.insert(
                item.link_id.clone(),
                typed.into_iter().collect::<Result<_, _>>()?,
            );
        }
    }
    apply_enable_when(form, &mut answers);
    Ok(answers)
}

/// The response's `item`s for `answers`, nested as the form's groups are.
pub fn response_items(form: &Form, answers: &Answers) -> Vec<Value> {
    fn build(items: &[Item], answers: &Answers) -> Vec<Value> {
        let mut out = Vec::new();
        for i in items {
            if i.kind == "group" {
                let children = build(&i.items, answers);
                if !children.is_empty() {
                    out.push(json!({"linkId": i.link_id, "text": i.text, "item": children}));
                }
                continue;
            }
            let mut entry = json!({"linkId": i.link_id, "text": i.text});
            if let Some(a) = answers.get(&i.link_id).filter(|a| !a.is_empty()) {
                entry["answer"] = json!(a);
            }
            let children = build(&i.items, answers);
            if !children.is_empty() {
                entry["item"] = json!(children);
            }
            if entry.get("answer").is_some() || entry.get("item").is_some() {
                out.push(entry);
            }
        }
        out
    }
    build(&form.items, answers)
}

/// The fields a page shows for a saved response (the reverse of
/// [`answers_from_fields`]).
pub fn fields_of(form: &Form, qr: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(answers) = super::answers_of(form, &qr["item"]) else {
        return out;
    };
    for item in form.all() {
        for (n, a) in answers.get(&item.link_id).into_iter().flatten().enumerate() {
            let Some((key, v)) = answer_value(a) else {
                continue;
            };
            let text = match key {
                "valueBoolean" => if v == true { "yes" } else { "no" }.to_owned(),
                "valueCoding" => v["code"].as_str().unwrap_or_default().to_owned(),
                _ => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            };
            let name = if n == 0 {
                item.link_id.clone()
            } else {
                format!("{}.{n}", item.link_id)
            };
            out.insert(name, text);
        }
    }
    out
}

/// A response to save.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// The form version (`Questionnaire` id).
    pub form: String,
    pub patient: String,
    /// The draft response being continued, if any.
    pub response: Option<String>,
    pub fields: HashMap<String, String>,
    /// Completed (required questions enforced); a draft otherwise.
    pub complete: bool,
}

/// Saves a response as the person signed in, now: the admission in
/// progress as its encounter; returns its id.
pub fn save(
    svc: &FhirService,
    access: &dyn Access,
    s: &Submission,
    now: OffsetDateTime,
) -> Result<String, FormsError> {
    let encounter = crate::adt::current_stay(svc, access, &s.patient)
        .map_err(|e| FormsError::Forbidden(e.message))?
        .map(|st| st.encounter_id);
    let author = access.agent().who.clone();
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        WARDLINE_SUBTYPE,
        "forms-respond",
        if s.response.is_some() { "U" } else { "C" },
    );
    let (form, q) = load_in(&mut tx, &s.form)?;
    let answers = answers_from_fields(&form, &s.fields, tx.time_zone())?;
    let items = response_items(&form, &answers);
    check_response(&form, &json!(items), s.complete)?;
    let mut qr = match &s.response {
        Some(id) => {
            tx.lock(&[format!("QuestionnaireResponse/{id}")])?;
            let qr = tx
                .get("QuestionnaireResponse", id)?
                .ok_or_else(|| FormsError::NotFound(format!("There is no response {id}.")))?;
            if qr["status"] != "in-progress" {
                return Err(FormsError::Conflict(format!(
                    "This response is {} and can no longer be edited.",
                    qr["status"].as_str().unwrap_or("closed")
                )));
            }
            if qr["subject"]["reference"] != format!("Patient/{}", s.patient) {
                return Err(FormsError::Invalid(
                    "This response is about another patient.".into(),
                ));
            }
            qr
        }
        None => {
            if q["status"] != "active" {
                return Err(FormsError::Conflict(
                    "This form is not active: choose an active form.".into(),
                ));
            }
            json!({"resourceType": "QuestionnaireResponse",
                "questionnaire": form.canonical(),
                "subject": {"reference": format!("Patient/{}", s.patient)}})
        }
    };
    qr["status"] = json!(if s.complete {
        "completed"
    } else {
        "in-progress"
    });
    qr["authored"] = json!(fhir_time(now));
    qr["item"] = json!(items);
    if let Some(e) = &encounter {
        qr["encounter"] = json!({"reference": format!("Encounter/{e}")});
    }
    if let Some(a) = &author {
        qr["author"] = json!({"reference": a});
    }
    let id = tx.save(qr)?.id;
    tx.commit()?;
    Ok(id)
}

/// A response as the chart lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseSummary {
    pub id: String,
    pub form: String,
    pub title: String,
    pub version: Option<String>,
    pub status: String,
    pub authored: String,
}

/// The patient's responses to forms, newest first (read as the caller).
pub fn responses(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<Vec<ResponseSummary>, FormsError> {
    let found = crate::fhir::search_as_all(
        svc,
        access,
        "QuestionnaireResponse",
        &[("subject", format!("Patient/{patient}"))],
    )?;
    let mut titles: HashMap<String, Option<(String, String)>> = HashMap::new();
    let mut tx = svc.begin(access)?;
    let mut out = Vec::new();
    for qr in &found.resources {
        let canonical = qr["questionnaire"].as_str().unwrap_or_default().to_owned();
        let t = match titles.get(&canonical) {
            Some(t) => t.clone(),
            None => {
                let mut find = |t: &str, q: &str| tx.find(t, q);
                let t = resolve(&mut find, &canonical)?.filter(is_form).map(|q| {
                    (
                        q["id"].as_str().unwrap_or_default().to_owned(),
                        q["title"].as_str().unwrap_or("Form").to_owned(),
                    )
                });
                titles.insert(canonical.clone(), t.clone());
                t
            }
        };
        let Some((form, title)) = t else { continue };
        out.push(ResponseSummary {
            id: qr["id"].as_str().unwrap_or_default().to_owned(),
            form,
            title,
            version: canonical.split_once('|').map(|(_, v)| v.to_owned()),
            status: qr["status"].as_str().unwrap_or_default().to_owned(),
            authored: qr["authored"].as_str().unwrap_or_default().to_owned(),
        });
    }
    tx.commit()?;
    out.sort_by(|a, b| b.authored.cmp(&a.authored));
    Ok(out)
}

/// One response with the form version it answered (audited `forms-view`).
pub fn view(
    svc: &FhirService,
    access: &dyn Access,
    response: &str,
) -> Result<(Form, Value), FormsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "forms-view", "R");
    let qr = tx
        .get("QuestionnaireResponse", response)?
        .ok_or_else(|| FormsError::NotFound(format!("There is no response {response}.")))?;
    let canonical = qr["questionnaire"].as_str().unwrap_or_default().to_owned();
    let mut find = |t: &str, q: &str| tx.find(t, q);
    let q = resolve(&mut find, &canonical)?
        .filter(is_form)
        .ok_or_else(|| FormsError::NotFound(format!("The form {canonical} is not in Wardline.")))?;
    let form = read_form(&q, &mut find)?;
    tx.commit()?;
    Ok((form, qr))
}
