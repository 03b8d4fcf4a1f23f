//! The forms' rules on every write path: a form's version is valid and
//! frozen once in use ([`FormRule`]), a response is valid against the
//! version it answers ([`ResponseRule`]), and a completed response's marked
//! answers become Observations in the same transaction ([`Extraction`]).

use serde_json::{Value, json};
use wardline_core::{Change, ProposedWrite, RuleTx, Tx, WriteHook, WriteRule};
use wardline_fhir::FhirError;

use super::{
    FORMS_BASE, Form, Problem, allowed, answer_value, answers_of, check_response, is_form,
    read_form, response_allowed,
};

fn refuse(what: &str, p: Problem, at: &str) -> FhirError {
    let msg = match &p.link_id {
        Some(l) => format!("{what}: item {l}: {}", p.message),
        None => format!("{what}: {}", p.message),
    };
    let mut e = FhirError::new(422, "business-rule", msg);
    if let Some(l) = p.link_id {
        e = e.at(format!("{at}.item.where(linkId='{l}')"));
    } else {
        e = e.at(at.to_owned());
    }
    e
}

/// The Questionnaire a response's `questionnaire` canonical names: `url|version`
/// is that version, a bare `url` the one without a version.
pub fn resolve(find: &mut super::Find<'_>, canonical: &str) -> Result<Option<Value>, FhirError> {
    let (url, version) = match canonical.split_once('|') {
        Some((u, v)) => (u, Some(v)),
        None => (canonical, None),
    };
    if url.is_empty() {
        return Ok(None);
    }
    let found = match version {
        Some(v) => find("Questionnaire", &format!("url={url}&version={v}"))?,
        None => find("Questionnaire", &format!("url={url}"))?
            .into_iter()
            .filter(|q| q["version"].is_null())
            .collect(),
    };
    Ok(found.into_iter().find(|q| q["version"].as_str() == version))
}

/// Every write of a form (`Questionnaire` not of the order catalogue) is a
/// valid form ([`read_form`]); an active or retired version keeps its
/// items, url and version, and its status moves only as [`allowed`].
pub struct FormRule;

impl WriteRule for FormRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Questionnaire"
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        let q = w.resource;
        if !is_form(q) {
            return Ok(());
        }
        let what = format!("Questionnaire/{}", w.id);
        let status = q["status"].as_str().unwrap_or("draft");
        if let Some(cur) = w.current.filter(|c| is_form(c)) {
            let was = cur["status"].as_str().unwrap_or("draft");
            if !allowed(was, status) {
                return Err(FhirError::new(
                    409,
                    "business-rule",
                    format!("{what} is {was}: it cannot become {status}. Make a new version to change it."),
                )
                .at("Questionnaire.status"));
            }
            if was != "draft" {
                for part in ["item", "url", "version"] {
                    if cur[part] != q[part] {
                        return Err(FhirError::new(
                            409,
                            "business-rule",
                            format!(
                                "{what} is {was}: its {part} cannot change (responses answered this version). Make a new version to change the form."
                            ),
                        )
                        .at(format!("Questionnaire.{part}")));
                    }
                }
            }
        }
        // Another system's draft (the FHIR specification's examples, a
        // questionnaire being written elsewhere) is stored as sent: it is
        // checked as a form when it becomes active — when clinicians are
        // offered it — while Wardline's own forms are checked on every write.
        let own = q["url"].as_str().is_some_and(|u| u.starts_with(FORMS_BASE));
        if !own && status == "draft" {
            return Ok(());
        }
        let mut find = |t: &str, query: &str| tx.find(t, query, 1000);
        read_form(q, &mut find).map_err(|p| refuse(&what, p, "Questionnaire"))?;
        Ok(())
    }
}

/// Every write of a response to a form is valid against the form version
/// it names ([`check_response`]); a response names a version that exists
/// (an active one when it is new) and keeps it, and its status moves only
/// as [`response_allowed`].
pub struct ResponseRule;

impl WriteRule for ResponseRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "QuestionnaireResponse"
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        let qr = w.resource;
        let what = format!("QuestionnaireResponse/{}", w.id);
        let canonical = qr["questionnaire"].as_str().unwrap_or_default();
        let mut find = |t: &str, query: &str| tx.find(t, query, 1000);
        let Some(q) = resolve(&mut find, canonical)? else {
            if canonical.starts_with(FORMS_BASE) {
                return Err(FhirError::new(
                    422,
                    "not-found",
                    format!("{what}: there is no form version {canonical}: name the form's url and version (url|version)."),
                )
                .at("QuestionnaireResponse.questionnaire"));
            }
            return Ok(());
        };
        if !is_form(&q) {
            return Ok(());
        }
        let status = qr["status"].as_str().unwrap_or_default();
        match w.current {
            Some(cur) => {
                if cur["questionnaire"] != qr["questionnaire"] {
                    return Err(FhirError::new(
                        409,
                        "business-rule",
                        format!(
                            "{what} answered {}: the form version it answered cannot change.",
                            cur["questionnaire"].as_str().unwrap_or("a form")
                        ),
                    )
                    .at("QuestionnaireResponse.questionnaire"));
                }
                let was = cur["status"].as_str().unwrap_or_default();
                if !response_allowed(was, status) {
                    return Err(FhirError::new(
                        409,
                        "business-rule",
                        format!("{what} is {was}: it cannot become {status}."),
                    )
                    .at("QuestionnaireResponse.status"));
                }
            }
            None if q["status"] != "active" => {
                return Err(FhirError::new(
                    422,
                    "business-rule",
                    format!(
                        "{what}: the form version {canonical} is {}: only an active form is filled in.",
                        q["status"].as_str().unwrap_or("not active")
                    ),
                )
                .at("QuestionnaireResponse.questionnaire"));
            }
            None => {}
        }
        if status == "entered-in-error" {
            return Ok(());
        }
        let form = read_form(&q, &mut find).map_err(|p| refuse(&what, p, "Questionnaire"))?;
        let complete = matches!(status, "completed" | "amended");
        check_response(&form, &qr["item"], complete)
            .map_err(|p| refuse(&what, p, "QuestionnaireResponse"))
    }
}

/// The Observations a completed response's marked answers become (see the
/// module documentation); `qr` has its `id`.
pub fn extracted(form: &Form, qr: &Value) -> Vec<Value> {
    let Ok(answers) = answers_of(form, &qr["item"]) else {
        return Vec::new();
    };
    let id = qr["id"].as_str().unwrap_or_default();
    let mut out = Vec::new();
    for item in form.all() {
        let Some(code) = &item.extract else { continue };
        for a in answers.get(&item.link_id).into_iter().flatten() {
            let Some((key, v)) = answer_value(a) else {
                continue;
            };
            let (vkey, value) = match key {
                "valueCoding" => {
                    let mut cc = json!({"coding": [v]});
                    if let Some(d) = v["display"].as_str() {
                        cc["text"] = json!(d);
                    }
                    ("valueCodeableConcept", cc)
                }
                "valueDecimal" => ("valueQuantity", json!({"value": v})),
                "valueDate" => ("valueDateTime", v.clone()),
                k => (k, v.clone()),
            };
            let mut obs = json!({
                "resourceType": "Observation",
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}],
                "code": {"coding": [code], "text": item.text},
                "subject": qr["subject"],
                "effectiveDateTime": qr["authored"],
                "derivedFrom": [{"reference": format!("QuestionnaireResponse/{id}")}],
            });
            obs[vkey] = value;
            if qr.get("encounter").is_some() {
                obs["encounter"] = qr["encounter"].clone();
            }
            if qr.get("author").is_some() {
                obs["performer"] = json!([qr["author"]]);
            }
            out.push(obs);
        }
    }
    out
}

/// Extraction on every channel (a write hook: it runs in the transaction
/// that completes the response). It writes Observations only; a store
/// failure fails the transaction.
pub struct Extraction;

impl WriteHook for Extraction {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "QuestionnaireResponse"
    }

    fn before_commit(&self, tx: &mut Tx<'_>, changes: &[Change]) -> Result<(), FhirError> {
        for c in changes {
            let parse = |s: &Option<String>| {
                s.as_deref()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
            };
            let (before, Some(after)) = (parse(&c.before), parse(&c.after)) else {
                continue;
            };
            let done = |r: &Value| matches!(r["status"].as_str(), Some("completed" | "amended"));
            let now_done = done(&after);
            let was_done = before.as_ref().is_some_and(done);
            let changed = before.as_ref().is_none_or(|b| b["item"] != after["item"]);
            let withdrawn = after["status"] == "entered-in-error" && was_done;
            if !(withdrawn || now_done && (!was_done || changed)) {
                continue;
            }
            let canonical = after["questionnaire"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut find = |t: &str, q: &str| tx.find(t, q);
            let Some(q) = resolve(&mut find, &canonical)? else {
                continue;
            };
            if !is_form(&q) {
                continue;
            }
            let form = match read_form(&q, &mut find) {
                Ok(f) => f,
                Err(_) => continue,
            };
            if form.all().iter().all(|i| i.extract.is_none()) {
                continue;
            }
            let earlier = tx.find(
                "Observation",
                &format!("derived-from=QuestionnaireResponse/{}&_count=1000", c.id),
            )?;
            for mut o in earlier {
                if o["status"] != "entered-in-error" {
                    o["status"] = json!("entered-in-error");
                    tx.save(o)?;
                }
            }
            if now_done {
                for obs in extracted(&form, &after) {
                    tx.save(obs)?;
                }
            }
        }
        Ok(())
    }
}
