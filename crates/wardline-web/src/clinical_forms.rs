//! Configurable forms (issue 20): the administrator's forms
//! (`/ui/forms`: define a form item by item, import a Questionnaire file,
//! activate, retire, make a new version), a patient's forms in the chart
//! (`/ui/patients/{id}/forms`: choose an active form, fill it in, save a
//! draft or complete it; `/ui/responses/{id}` to read one) and the KPIs per
//! ward (`/ui/kpis`). Every rule is `wardline_workflow::forms`'s: a
//! refusal naming an item comes back as the error summary linking to it.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use time::{Date, Duration, OffsetDateTime};
use wardline_auth::rbac::Activity;
use wardline_workflow::forms::define::{self, NewItem};
use wardline_workflow::forms::kpi::{self, Figure, Report};
use wardline_workflow::forms::respond::{self, Submission};
use wardline_workflow::forms::{FormsError, Item, apply_enable_when};
use wardline_workflow::outpatients::clinics::{date_text, parse_date};

use crate::layout::{self, Field, Nav};
use crate::outpatients::{error_for, f};
use crate::{Cx, Form, Req, St, enc, see_other};

type Error = Option<(String, String)>;

fn refusal(e: &FormsError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "form")
}

fn defines(cx: &Cx) -> bool {
    cx.may(Activity::ManageCatalogue)
}

fn status_tag(status: &str) -> Markup {
    let class = match status {
        "active" | "completed" => "nhsuk-tag--green",
        "draft" | "in-progress" => "nhsuk-tag--blue",
        _ => "nhsuk-tag--grey",
    };
    html! { strong class={ "nhsuk-tag " (class) } data-testid="status" data-status=(status) { (status) } }
}

fn summary_of(error: &Error) -> Markup {
    match error {
        Some((field, m)) => layout::error_summary(&[(field.clone(), m.clone())]),
        None => html! {},
    }
}

fn status_of(error: &Error) -> StatusCode {
    if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

fn error_of(e: &FormsError, default: &str) -> Error {
    Some((e.field().unwrap_or(default).to_owned(), e.message()))
}

// ---------------------------------------------------------------- the forms list

fn list_body(cx: &Cx, forms: &[define::FormSummary], form: &Form, error: &Error) -> Markup {
    html! {
        h1 { "Forms" }
        p { "Forms are FHIR Questionnaires. Clinicians complete the active ones from a patient's record. " a href="/ui/kpis" data-testid="to-kpis" { "KPIs per ward" } }
        @if forms.is_empty() {
            p data-testid="no-forms" { "No forms yet." }
        } @else {
            table class="nhsuk-table" data-testid="forms" {
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Form" } th scope="col" { "Version" } th scope="col" { "Items" } th scope="col" { "Status" }
                } }
                tbody class="nhsuk-table__body" {
                    @for fs in forms {
                        tr class="nhsuk-table__row" data-testid="form-row" data-form=(fs.id) {
                            td class="nhsuk-table__cell" { a href={ "/ui/forms/" (enc(&fs.id)) } data-testid="open-form" { (fs.title) } }
                            td class="nhsuk-table__cell" { (fs.version.as_deref().unwrap_or("—")) }
                            td class="nhsuk-table__cell" { (fs.items) }
                            td class="nhsuk-table__cell" { (status_tag(&fs.status)) }
                        }
                    }
                }
            }
        }
        @if defines(cx) {
            (summary_of(error))
            h2 { "Define a form" }
            form method="post" action="/ui/forms" novalidate {
                (layout::csrf(cx))
                (layout::input(&Field { value: f(form, "title"), error: error_for(error, "title"), ..Field::new("title", "Title") }))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="create-form" { "Create draft" }
            }
            h2 { "Import a Questionnaire" }
            form method="post" action="/ui/forms/import" enctype="multipart/form-data" novalidate {
                (layout::csrf(cx))
                div class={ "nhsuk-form-group" @if error_for(error, "file").is_some() { " nhsuk-form-group--error" } } {
                    label class="nhsuk-label" for="file" { "Questionnaire JSON file" }
                    @if let Some(e) = error_for(error, "file") {
                        span class="nhsuk-error-message" id="file-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                    }
                    input class="nhsuk-file-upload" id="file" name="file" type="file" accept=".json,application/fhir+json,application/json";
                }
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="import-form" { "Import as a draft" }
            }
        }
    }
}

fn list_page(cx: &Cx, form: &Form, error: &Error, status: StatusCode) -> Response {
    match define::list(&cx.svc, cx.access(), false) {
        Ok(forms) => layout::page_with(
            status,
            cx,
            "Forms",
            Nav::None,
            list_body(cx, &forms, form, error),
        ),
        Err(e) => refusal(&e),
    }
}

/// `GET /ui/forms`.
pub(crate) async fn forms_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        list_page(cx, &q, &None, StatusCode::OK)
    })
    .await
}

/// `POST /ui/forms`: a new draft.
pub(crate) async fn create_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        match define::create(&cx.svc, cx.access(), f(&form, "title"), cx.svc.now()) {
            Ok(id) => see_other(&format!("/ui/forms/{}", enc(&id))),
            Err(e @ FormsError::Item(..)) => list_page(
                cx,
                &form,
                &error_of(&e, "title"),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/forms/import` (multipart: `csrf` and the file `file`).
pub(crate) async fn import_post(
    State(ui): St,
    req: Req,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let (mut fields, problem) = crate::multipart_fields(multipart, 4 * 1024 * 1024).await;
    let csrf = crate::csrf_form(&fields);
    let file = fields.remove("file").unwrap_or_default();
    ui.run(req, Some(&csrf), move |cx, _| {
        let again = |m: String| {
            list_page(
                cx,
                &Form::new(),
                &Some(("file".into(), m)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        };
        if problem.is_some() {
            return again(
                "The file could not be read, or is larger than 4 MB. Choose it again.".into(),
            );
        }
        if file.is_empty() {
            return again("Choose the Questionnaire file to import.".into());
        }
        let text = String::from_utf8_lossy(&file).into_owned();
        match define::import(&cx.svc, cx.access(), &text, cx.svc.now()) {
            Ok(id) => see_other(&format!("/ui/forms/{}?done=imported", enc(&id))),
            Err(e @ FormsError::Item(..)) => again(e.message()),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- one form

fn item_rows(items: &[Item], depth: usize) -> Markup {
    html! {
        @for i in items {
            tr class="nhsuk-table__row" data-testid="item-row" data-link-id=(i.link_id) {
                td class="nhsuk-table__cell" { @for _ in 0..depth { "— " } code { (i.link_id) } }
                td class="nhsuk-table__cell" { (i.text) }
                td class="nhsuk-table__cell" {
                    (i.kind)
                    @if i.required { " · required" }
                    @if i.repeats { " · repeats" }
                    @if i.extract.is_some() { " · extracted" }
                }
                td class="nhsuk-table__cell" {
                    @if !i.options.is_empty() {
                        (i.options.iter().map(|o| o.display.as_str()).collect::<Vec<_>>().join(", "))
                    }
                    @for ew in &i.enable_when {
                        br; "Only if " code { (ew.question) } " " (ew.operator) " " (ew.answer)
                    }
                }
            }
            (item_rows(&i.items, depth + 1))
        }
    }
}

const KIND_LABELS: [(&str, &str); 11] = [
    ("string", "Short text"),
    ("text", "Long text"),
    ("integer", "Whole number"),
    ("decimal", "Number"),
    ("boolean", "Yes or no"),
    ("date", "Date"),
    ("dateTime", "Date and time"),
    ("choice", "Choice"),
    ("open-choice", "Choice or other"),
    ("group", "Group (a heading with items)"),
    ("display", "Text shown, no answer"),
];

fn form_body(
    cx: &Cx,
    id: &str,
    fm: &wardline_workflow::forms::Form,
    form: &Form,
    error: &Error,
    done: Option<&str>,
) -> Markup {
    let kinds: Vec<(String, String)> = std::iter::once((String::new(), "Choose…".to_owned()))
        .chain(
            KIND_LABELS
                .iter()
                .map(|(k, l)| ((*k).to_owned(), (*l).to_owned())),
        )
        .collect();
    let ops: Vec<(String, String)> = ["=", "!=", ">", "<", ">=", "<=", "exists"]
        .iter()
        .map(|o| ((*o).to_owned(), (*o).to_owned()))
        .collect();
    let field = |fid: &'static str, label: &'static str| Field {
        value: f(form, fid),
        error: error_for(error, fid),
        ..Field::new(fid, label)
    };
    let base = format!("/ui/forms/{}", enc(id));
    html! {
        @if let Some(d) = done { (layout::success(d)) }
        (layout::back_link("/ui/forms", "All forms"))
        h1 data-testid="form-title" { (fm.title) }
        p { "Version " (fm.version.as_deref().unwrap_or("—")) " · " (status_tag(&fm.status)) " · " code { (fm.url) } }
        (summary_of(error))
        @if fm.items.is_empty() {
            p data-testid="no-items" { "No items yet." }
        } @else {
            table class="nhsuk-table" data-testid="items" {
                thead class="nhsuk-table__head" { tr { th { "linkId" } th { "Text" } th { "Type" } th { "Choices, conditions" } } }
                tbody class="nhsuk-table__body" { (item_rows(&fm.items, 0)) }
            }
        }
        @if defines(cx) {
            @if fm.status == "draft" {
                h2 { "Add an item" }
                form method="post" action={ (base) "/items" } novalidate data-testid="add-item" {
                    (layout::csrf(cx))
                    (layout::input(&Field { hint: Some("A short name, unique in the form, for example fallen"), width: "nhsuk-input--width-20", ..field("link_id", "linkId") }))
                    (layout::input(&field("text", "Question or heading")))
                    (layout::select("kind", "Type of answer", &kinds, f(form, "kind"), error_for(error, "kind")))
                    div class="nhsuk-checkboxes nhsuk-u-margin-bottom-4" {
                        div class="nhsuk-checkboxes__item" {
                            input class="nhsuk-checkboxes__input" id="required" name="required" type="checkbox" value="yes" checked[f(form, "required") == "yes"];
                            label class="nhsuk-label nhsuk-checkboxes__label" for="required" { "Required" }
                        }
                        div class="nhsuk-checkboxes__item" {
                            input class="nhsuk-checkboxes__input" id="repeats" name="repeats" type="checkbox" value="yes" checked[f(form, "repeats") == "yes"];
                            label class="nhsuk-label nhsuk-checkboxes__label" for="repeats" { "More than one answer allowed" }
                        }
                    }
                    div class={ "nhsuk-form-group" @if error_for(error, "options").is_some() { " nhsuk-form-group--error" } } {
                        label class="nhsuk-label" for="options" { "Choices (for a choice), one a line" }
                        div class="nhsuk-hint" { "code|text, for example low|Low risk" }
                        textarea class="nhsuk-textarea" id="options" name="options" rows="3" { (f(form, "options")) }
                    }
                    (layout::input(&Field { hint: Some("Instead of choices: a ValueSet's url in Wardline"), ..field("value_set", "Choices from a value set") }))
                    (layout::input(&Field { hint: Some("Put it inside this group (its linkId); leave empty for the end of the form"), width: "nhsuk-input--width-20", ..field("group", "Group") }))
                    (layout::input(&Field { hint: Some("Ask it only when this earlier question (its linkId)…"), width: "nhsuk-input--width-20", ..field("enable_question", "Only if") }))
                    (layout::select("enable_operator", "…compares", &ops, f(form, "enable_operator"), None))
                    (layout::input(&Field { hint: Some("…with this answer: yes or no, a number, a date, a choice's code"), width: "nhsuk-input--width-20", ..field("enable_answer", "Answer") }))
                    (layout::input(&Field { hint: Some("To make the answer an observation: system|code|text, for example http://snomed.info/sct|129839007|At risk of falls"), ..field("extract", "Observation code") }))
                    button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="add-item-button" { "Add item" }
                }
                @if !fm.items.is_empty() {
                    form method="post" action={ (base) "/remove" } novalidate class="nhsuk-u-margin-bottom-4" {
                        (layout::csrf(cx))
                        (layout::input(&Field { width: "nhsuk-input--width-20", ..field("remove", "Remove the item with linkId") }))
                        button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Remove item" }
                    }
                    (layout::action_button(cx, &format!("{base}/activate"), "Make active", ""))
                }
            }
            @if fm.status == "active" {
                (layout::action_button(cx, &format!("{base}/version"), "Edit (make a new version)", "nhsuk-button--secondary"))
                (layout::action_button(cx, &format!("{base}/retire"), "Retire", "nhsuk-button--warning"))
            }
        }
    }
}

fn form_page(cx: &Cx, id: &str, form: &Form, error: &Error, done: Option<&str>) -> Response {
    match define::load(&cx.svc, cx.access(), id) {
        Ok((fm, _)) => layout::page_with(
            status_of(error),
            cx,
            &fm.title.clone(),
            Nav::None,
            form_body(cx, id, &fm, form, error, done),
        ),
        Err(e) => refusal(&e),
    }
}

/// `GET /ui/forms/{id}`.
pub(crate) async fn form_detail(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match q.get("done").map(String::as_str) {
            Some("imported") => Some("Questionnaire imported as a draft."),
            Some("added") => Some("Item added."),
            Some("active") => Some("The form is active: clinicians can complete it."),
            Some("version") => Some("A new draft version: edit it, then make it active."),
            _ => None,
        };
        form_page(cx, &id, &Form::new(), &None, done)
    })
    .await
}

/// `POST /ui/forms/{id}/items`.
pub(crate) async fn add_item_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let opt = |k: &str| Some(f(&form, k).to_owned()).filter(|v| !v.trim().is_empty());
        let item = NewItem {
            group: opt("group"),
            link_id: f(&form, "link_id").to_owned(),
            text: f(&form, "text").to_owned(),
            kind: f(&form, "kind").to_owned(),
            required: f(&form, "required") == "yes",
            repeats: f(&form, "repeats") == "yes",
            options: f(&form, "options").lines().map(str::to_owned).collect(),
            value_set: opt("value_set"),
            enable_question: opt("enable_question"),
            enable_operator: f(&form, "enable_operator").to_owned(),
            enable_answer: f(&form, "enable_answer").to_owned(),
            extract: opt("extract"),
        };
        match define::add_item(&cx.svc, cx.access(), &id, &item) {
            Ok(()) => see_other(&format!("/ui/forms/{}?done=added", enc(&id))),
            Err(e @ (FormsError::Item(..) | FormsError::Invalid(_) | FormsError::Conflict(_))) => {
                // An item's own problem is shown at the field it comes from.
                let field = match e.field() {
                    Some(l) if l == item.link_id.trim() => "link_id",
                    Some(other) => other,
                    None => "link_id",
                };
                let err = Some((field.to_owned(), e.message()));
                form_page(cx, &id, &form, &err, None)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/forms/{id}/remove`.
pub(crate) async fn remove_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| match define::remove_item(
        &cx.svc,
        cx.access(),
        &id,
        f(&form, "remove").trim(),
    ) {
        Ok(()) => see_other(&format!("/ui/forms/{}", enc(&id))),
        Err(e @ (FormsError::NotFound(_) | FormsError::Conflict(_))) => {
            form_page(cx, &id, &form, &Some(("remove".into(), e.message())), None)
        }
        Err(e) => refusal(&e),
    })
    .await
}

/// `POST /ui/forms/{id}/activate`.
pub(crate) async fn activate_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        match define::activate(&cx.svc, cx.access(), &id, cx.svc.now()) {
            Ok(()) => see_other(&format!("/ui/forms/{}?done=active", enc(&id))),
            Err(e @ (FormsError::Item(..) | FormsError::Invalid(_))) => {
                form_page(cx, &id, &form, &error_of(&e, "link_id"), None)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/forms/{id}/retire`.
pub(crate) async fn retire_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        match define::retire(&cx.svc, cx.access(), &id) {
            Ok(()) => see_other(&format!("/ui/forms/{}", enc(&id))),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/forms/{id}/version`: a new draft version.
pub(crate) async fn version_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        match define::new_version(&cx.svc, cx.access(), &id, cx.svc.now()) {
            Ok(v) => see_other(&format!("/ui/forms/{}?done=version", enc(&v))),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- the chart

/// `GET /ui/patients/{id}/forms`: the patient's responses, and the active
/// forms to complete.
pub(crate) async fn patient_forms(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let p = match crate::patients::patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let (forms, responses) = match (
            define::list(&cx.svc, cx.access(), true),
            respond::responses(&cx.svc, cx.access(), &id),
        ) {
            (Ok(f), Ok(r)) => (f, r),
            (Err(e), _) | (_, Err(e)) => return refusal(&e),
        };
        let done = match q.get("done").map(String::as_str) {
            Some("completed") => Some("Form completed."),
            Some("draft") => Some("Draft saved."),
            _ => None,
        };
        let body = html! {
            (crate::chart::banner(&p, None))
            (layout::back_link(&format!("/ui/patients/{}", enc(&id)), "Back to the record"))
            @if let Some(d) = done { (layout::success(d)) }
            h2 class="nhsuk-heading-l" { "Forms" }
            @if responses.is_empty() {
                p data-testid="no-responses" { "No forms completed for this patient." }
            } @else {
                table class="nhsuk-table" data-testid="responses" {
                    thead class="nhsuk-table__head" { tr { th { "Form" } th { "Saved" } th { "Status" } } }
                    tbody class="nhsuk-table__body" {
                        @for r in &responses {
                            tr class="nhsuk-table__row" data-testid="response-row" data-response=(r.id) {
                                td class="nhsuk-table__cell" {
                                    @if r.status == "in-progress" {
                                        a href={ "/ui/patients/" (enc(&id)) "/forms/" (enc(&r.form)) "?response=" (enc(&r.id)) } { (r.title) }
                                    } @else {
                                        a href={ "/ui/responses/" (enc(&r.id)) } { (r.title) }
                                    }
                                    " (version " (r.version.as_deref().unwrap_or("—")) ")"
                                }
                                td class="nhsuk-table__cell" { (r.authored) }
                                td class="nhsuk-table__cell" { (status_tag(&r.status)) }
                            }
                        }
                    }
                }
            }
            h3 { "Complete a form" }
            @if forms.is_empty() { p { "No forms are active." } }
            ul class="nhsuk-list" data-testid="active-forms" {
                @for fs in &forms {
                    li { a href={ "/ui/patients/" (enc(&id)) "/forms/" (enc(&fs.id)) } data-testid="fill-form" data-form=(fs.id) { (fs.title) } }
                }
            }
        };
        layout::page(cx, "Forms", Nav::Patients, body)
    })
    .await
}

/// The answers posted (fields `q-{linkId}`), by linkId.
fn answers_posted(form: &Form) -> HashMap<String, String> {
    form.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("q-")?.to_owned(), v.clone())))
        .collect()
}

fn choice_options(item: &Item) -> Vec<(String, String)> {
    let mut opts: Vec<(String, String)> = vec![(String::new(), "Choose…".into())];
    opts.extend(
        item.options
            .iter()
            .map(|o| (o.code.clone(), o.display.clone())),
    );
    if item.kind == "open-choice" {
        opts.push(("other".into(), "Other (type it below)".into()));
    }
    opts
}

fn question(
    item: &Item,
    values: &HashMap<String, String>,
    extra: usize,
    error: &Error,
    on: &[String],
) -> Markup {
    if !on.contains(&item.link_id) {
        return html! {};
    }
    let err = error_for(error, &format!("q-{}", item.link_id));
    let existing = respond::raw_values(item, values).len();
    let count = if item.repeats {
        existing.max(1) + extra
    } else {
        1
    };
    let label = if item.required {
        format!("{} (required)", item.text)
    } else {
        item.text.clone()
    };
    let name = |n: usize| {
        if n == 0 {
            format!("q-{}", item.link_id)
        } else {
            format!("q-{}.{n}", item.link_id)
        }
    };
    let value = |n: usize| {
        let k = if n == 0 {
            item.link_id.clone()
        } else {
            format!("{}.{n}", item.link_id)
        };
        values.get(&k).cloned().unwrap_or_default()
    };
    html! {
        @match item.kind.as_str() {
            "display" => { p data-link-id=(item.link_id) { (item.text) } }
            "group" => {
                fieldset class="nhsuk-fieldset nhsuk-u-margin-bottom-4" data-link-id=(item.link_id) {
                    legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--m" { (item.text) }
                    @for c in &item.items { (question(c, values, 0, error, on)) }
                }
            }
            kind => {
                div class="wl-question" data-link-id=(item.link_id) data-testid="question" {
                @for n in 0..count {
                    @let id = name(n);
                    @let v = value(n);
                    @let e = if n == 0 { err } else { None };
                    @let lbl = if n == 0 { label.clone() } else { format!("{} ({})", item.text, n + 1) };
                    @match kind {
                        "boolean" => { (layout::radios(&id, &lbl, &[("yes", "Yes"), ("no", "No")], &v, e)) }
                        "choice" if item.options.len() <= 6 => {
                            @let opts: Vec<(&str, &str)> = item.options.iter().map(|o| (o.code.as_str(), o.display.as_str())).collect();
                            (layout::radios(&id, &lbl, &opts, &v, e))
                        }
                        "choice" | "open-choice" => {
                            (layout::select(&id, &lbl, &choice_options(item), &v, e))
                            @if kind == "open-choice" {
                                @let other_id = format!("{id}.other");
                                (layout::input(&Field { value: &v, ..Field::new(&other_id, "Other") }))
                            }
                        }
                        "text" => {
                            div class={ "nhsuk-form-group" @if e.is_some() { " nhsuk-form-group--error" } } {
                                label class="nhsuk-label" for=(id) { (lbl) }
                                @if let Some(m) = e { span class="nhsuk-error-message" id={ (id) "-error" } { span class="nhsuk-u-visually-hidden" { "Error: " } (m) } }
                                textarea class="nhsuk-textarea" id=(id) name=(id) rows="3" { (v) }
                            }
                        }
                        "date" => { (layout::input(&Field { kind: "date", value: &v, error: e, ..Field::new(&id, &lbl) })) }
                        "dateTime" => { (layout::input(&Field { hint: Some("For example 2026-12-03T14:30"), value: &v, error: e, width: "nhsuk-input--width-20", ..Field::new(&id, &lbl) })) }
                        "integer" | "decimal" => { (layout::input(&Field { value: &v, error: e, width: "nhsuk-input--width-5", ..Field::new(&id, &lbl) })) }
                        _ => { (layout::input(&Field { value: &v, error: e, ..Field::new(&id, &lbl) })) }
                    }
                }
                @if item.repeats {
                    button class="nhsuk-button nhsuk-button--secondary nhsuk-button--small" type="submit" name="action" value={ "add:" (item.link_id) } data-testid="add-another" { "Add another" }
                }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn fill_page(
    cx: &Cx,
    patient: &str,
    form_id: &str,
    response: Option<&str>,
    values: &HashMap<String, String>,
    extra: Option<&str>,
    error: &Error,
    fragment: bool,
) -> Response {
    let p = match crate::patients::patient_or_404(cx, patient) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let fm = match define::load(&cx.svc, cx.access(), form_id) {
        Ok((fm, _)) => fm,
        Err(e) => return refusal(&e),
    };
    // enableWhen applied on the server: the questions the answers so far ask.
    let on = {
        let mut typed =
            respond::answers_from_fields(&fm, values, cx.svc.time_zone()).unwrap_or_default();
        apply_enable_when(&fm, &mut typed)
    };
    let questions = html! {
        @for i in &fm.items {
            (question(i, values, usize::from(extra == Some(i.link_id.as_str())), error, &on))
        }
    };
    if fragment {
        return layout::fragment(questions);
    }
    let action = format!("/ui/patients/{}/forms/{}", enc(patient), enc(form_id));
    let body = html! {
        (crate::chart::banner(&p, None))
        (layout::back_link(&format!("/ui/patients/{}/forms", enc(patient)), "Back to the patient's forms"))
        h2 class="nhsuk-heading-l" data-testid="fill-title" { (fm.title) }
        (summary_of(error))
        form method="post" action=(action) novalidate data-testid="fill" data-live-questions="questions" {
            (layout::csrf(cx))
            @if let Some(r) = response { input type="hidden" name="response" value=(r); }
            div id="questions" data-testid="questions" aria-live="polite" { (questions) }
            div class="nhsuk-button-group" {
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" name="action" value="refresh" data-testid="refresh" data-no-script-only="true" { "Update the questions" }
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" name="action" value="draft" data-testid="save-draft" { "Save draft" }
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" name="action" value="complete" data-testid="complete" { "Complete" }
            }
        }
    };
    layout::page_with(status_of(error), cx, &fm.title.clone(), Nav::Patients, body)
}

/// `GET /ui/patients/{id}/forms/{form}[?response=]`.
pub(crate) async fn fill_form(
    State(ui): St,
    req: Req,
    Path((id, form_id)): Path<(String, String)>,
) -> Response {
    ui.run(req, None, move |cx, q| {
        let response = q.get("response").cloned().filter(|r| !r.is_empty());
        let values = match &response {
            Some(r) => match respond::view(&cx.svc, cx.access(), r) {
                Ok((fm, qr)) => respond::fields_of(&fm, &qr),
                Err(e) => return refusal(&e),
            },
            None => HashMap::new(),
        };
        fill_page(
            cx,
            &id,
            &form_id,
            response.as_deref(),
            &values,
            None,
            &None,
            false,
        )
    })
    .await
}

/// `POST /ui/patients/{id}/forms/{form}`: add a repeat, update the
/// questions, save a draft or complete.
pub(crate) async fn fill_post(
    State(ui): St,
    req: Req,
    Path((id, form_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let values = answers_posted(&form);
        let response = Some(f(&form, "response").to_owned()).filter(|r| !r.is_empty());
        let action = f(&form, "action");
        if let Some(link) = action.strip_prefix("add:") {
            return fill_page(
                cx,
                &id,
                &form_id,
                response.as_deref(),
                &values,
                Some(link),
                &None,
                false,
            );
        }
        if action == "refresh" {
            // The page's script asks for the questions alone each time an
            // answer changes (`fragment=questions`): which questions are
            // asked is decided here, by the form's enableWhen, never in the
            // browser. Without the script the button reloads the page.
            let fragment = f(&form, "fragment") == "questions";
            return fill_page(
                cx,
                &id,
                &form_id,
                response.as_deref(),
                &values,
                None,
                &None,
                fragment,
            );
        }
        let s = Submission {
            form: form_id.clone(),
            patient: id.clone(),
            response: response.clone(),
            fields: values.clone(),
            complete: action == "complete",
        };
        match respond::save(&cx.svc, cx.access(), &s, cx.svc.now()) {
            Ok(_) => see_other(&format!(
                "/ui/patients/{}/forms?done={}",
                enc(&id),
                if s.complete { "completed" } else { "draft" }
            )),
            Err(e @ (FormsError::Item(..) | FormsError::Invalid(_))) => {
                let err = Some((
                    e.field()
                        .map_or_else(|| "fill".to_owned(), |l| format!("q-{l}")),
                    e.message(),
                ));
                fill_page(
                    cx,
                    &id,
                    &form_id,
                    response.as_deref(),
                    &values,
                    None,
                    &err,
                    false,
                )
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn answer_text(a: &Value) -> String {
    match wardline_workflow::forms::answer_value(a) {
        Some(("valueBoolean", v)) => if v == true { "Yes" } else { "No" }.to_owned(),
        Some(("valueCoding", v)) => v["display"]
            .as_str()
            .or(v["code"].as_str())
            .unwrap_or_default()
            .to_owned(),
        Some((_, v)) => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
        None => String::new(),
    }
}

/// `GET /ui/responses/{id}`: one response, read with the version it answered.
pub(crate) async fn response_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        let (fm, qr) = match respond::view(&cx.svc, cx.access(), &id) {
            Ok(v) => v,
            Err(e) => return refusal(&e),
        };
        let patient = wardline_workflow::fhir::reference_id(&qr["subject"], "Patient").unwrap_or_default().to_owned();
        let p = match crate::patients::patient_or_404(cx, &patient) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let answers = wardline_workflow::forms::answers_of(&fm, &qr["item"]).unwrap_or_default();
        let body = html! {
            (crate::chart::banner(&p, None))
            (layout::back_link(&format!("/ui/patients/{}/forms", enc(&patient)), "Back to the patient's forms"))
            h2 class="nhsuk-heading-l" { (fm.title) " (version " (fm.version.as_deref().unwrap_or("—")) ")" }
            p { (status_tag(qr["status"].as_str().unwrap_or_default())) " " (qr["authored"].as_str().unwrap_or_default()) }
            dl class="nhsuk-summary-list" data-testid="answers" {
                @for i in fm.all().into_iter().filter(|i| i.is_question()) {
                    @if let Some(a) = answers.get(&i.link_id) {
                        div class="nhsuk-summary-list__row" data-link-id=(i.link_id) {
                            dt class="nhsuk-summary-list__key" { (i.text) }
                            dd class="nhsuk-summary-list__value" { (a.iter().map(answer_text).collect::<Vec<_>>().join("; ")) }
                        }
                    }
                }
            }
        };
        layout::page(cx, &fm.title.clone(), Nav::Patients, body)
    })
    .await
}

// ---------------------------------------------------------------- KPIs

/// Columns (inline SVG): each ward's completion rate.
fn columns(r: &Report) -> Markup {
    let width = 90 * r.wards.len().max(1) + 20;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height="180" role="img"
            aria-label={ (r.kpi.title) ": completion rate per ward" } data-testid="kpi-chart" {
            line x1="10" y1="140" x2=(width - 10) y2="140" stroke="#425563" {}
            @for (i, w) in r.wards.iter().enumerate() {
                @let x = 20 + i * 90;
                @let h = w.percent().unwrap_or(0) as usize * 120 / 100;
                rect x=(x) y=(140 - h) width="50" height=(h) fill="#005eb8" {}
                text x=(x) y=(135 - h) font-size="13" { @match w.percent() { Some(p) => { (p) "%" }, None => { "—" } } }
                text x=(x) y="158" font-size="12" { (w.ward) }
            }
        }
    }
}

fn figure_row(w: &Figure) -> Markup {
    html! {
        tr class="nhsuk-table__row" data-testid="kpi-ward" data-ward=(w.ward) data-admissions=(w.admissions) data-met=(w.met) data-pending=(w.pending) {
            td class="nhsuk-table__cell" { (w.ward) }
            td class="nhsuk-table__cell" { (w.admissions) }
            td class="nhsuk-table__cell" { (w.met) }
            td class="nhsuk-table__cell" { (w.pending) }
            td class="nhsuk-table__cell" data-testid="kpi-rate" { @match w.percent() { Some(p) => { (p) "%" }, None => { "none due" } } }
        }
    }
}

fn day_start(cx: &Cx, d: Date) -> Option<OffsetDateTime> {
    let (ms, _) = wardline_fhir::datetime::parse_range_in(&date_text(d), cx.svc.time_zone())?;
    OffsetDateTime::from_unix_timestamp(ms / 1000).ok()
}

/// The KPI page: the figures of every active KPI for admissions in the
/// period, and, for those who manage forms, defining and retiring KPIs.
fn kpis_body(cx: &Cx, q: &Form, error: &Error) -> Result<Markup, Response> {
    let today = cx.svc.now().date();
    let from = q
        .get("from")
        .and_then(|d| parse_date(d))
        .unwrap_or(today - Duration::days(6));
    let to = q.get("to").and_then(|d| parse_date(d)).unwrap_or(today);
    let (Some(start), Some(end)) = (day_start(cx, from), day_start(cx, to + Duration::days(1)))
    else {
        return Err(layout::refusal_page(
            400,
            "Enter the period as real dates.",
            "KPI",
        ));
    };
    // Those who manage forms but see no admissions (an administrator) still
    // define and retire KPIs: they see the definitions without figures.
    let (reports, definitions) = match kpi::report(&cx.svc, cx.access(), start, end, cx.svc.now()) {
        Ok(r) => (r, Vec::new()),
        Err(FormsError::Forbidden(_)) if defines(cx) => (
            Vec::new(),
            kpi::list(&cx.svc, cx.access()).map_err(|e| refusal(&e))?,
        ),
        Err(e) => return Err(refusal(&e)),
    };
    let forms = if defines(cx) {
        define::list(&cx.svc, cx.access(), true).map_err(|e| refusal(&e))?
    } else {
        Vec::new()
    };
    let mut form_options: Vec<(String, String)> = vec![(String::new(), "Choose a form".into())];
    for fs in &forms {
        if !form_options.iter().any(|(u, _)| u == &fs.url) {
            form_options.push((fs.url.clone(), fs.title.clone()));
        }
    }
    let (from_s, to_s) = (date_text(from), date_text(to));
    let done = match q.get("done").map(String::as_str) {
        Some("defined") => Some("KPI defined."),
        Some("retired") => Some("KPI retired: it is no longer reported."),
        _ => None,
    };
    Ok(html! {
        @if let Some(m) = done { (layout::success(m)) }
        (summary_of(error))
        h1 { "Forms KPIs per ward" }
        form method="get" action="/ui/kpis" class="nhsuk-u-margin-bottom-4" {
            (layout::input(&Field { kind: "date", value: &from_s, ..Field::new("from", "Admitted from") }))
            (layout::input(&Field { kind: "date", value: &to_s, ..Field::new("to", "to (inclusive)") }))
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="show-kpis" { "Show" }
        }
        @if reports.is_empty() && definitions.is_empty() { p data-testid="no-kpis" { "No KPIs are defined." } }
        @if !definitions.is_empty() {
            p data-testid="kpi-figures-hidden" { "The figures are shown to clinical staff; your role sees the definitions." }
        }
        @for k in &definitions {
            section data-testid="kpi" data-kpi=(k.id) {
                h2 { (k.title) }
                p class="nhsuk-body-s" {
                    "The form " (k.form.as_deref().unwrap_or("(none)")) " completed within " (k.window_hours) " hours of admission."
                }
                (retire_button(cx, &k.id))
            }
        }
        @for r in &reports {
            section data-testid="kpi" data-kpi=(r.kpi.id) {
                h2 { (r.kpi.title) }
                p class="nhsuk-body-s" { "Within " (r.kpi.window_hours) " hours of admission. Pending: the window is still open." }
                table class="nhsuk-table" {
                    thead class="nhsuk-table__head" { tr { th { "Ward" } th { "Admissions" } th { "In time" } th { "Pending" } th { "Rate" } } }
                    tbody class="nhsuk-table__body" {
                        @for w in &r.wards { (figure_row(w)) }
                        (figure_row(&r.total))
                    }
                }
                (columns(r))
                (retire_button(cx, &r.kpi.id))
            }
        }
        @if defines(cx) {
            h2 { "Define a KPI" }
            p { "A KPI counts the admissions whose patient had the form completed within the window after admission, per ward." }
            form method="post" action="/ui/kpis" novalidate {
                (layout::csrf(cx))
                (layout::input(&Field { value: f(q, "title"), error: error_for(error, "title"), ..Field::new("title", "What it measures (for example: Skin checked within 6 hours of admission)") }))
                (layout::select("form", "The form that counts", &form_options, f(q, "form"), error_for(error, "form")))
                (layout::input(&Field { kind: "number", value: f(q, "window"), error: error_for(error, "window"), ..Field::new("window", "Within how many hours of admission") }))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="define-kpi" { "Define the KPI" }
            }
        }
    })
}

/// The retire button of a KPI, for those who manage forms.
fn retire_button(cx: &Cx, id: &str) -> Markup {
    html! {
        @if defines(cx) {
            form method="post" action={ "/ui/kpis/" (enc(id)) "/retire" } {
                (layout::csrf(cx))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="retire-kpi" { "Retire this KPI" }
            }
        }
    }
}

/// `GET /ui/kpis[?from=YYYY-MM-DD&to=YYYY-MM-DD]` (to inclusive).
pub(crate) async fn kpis_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| match kpis_body(cx, &q, &None) {
        Ok(body) => layout::page(cx, "Forms KPIs", Nav::None, body),
        Err(r) => r,
    })
    .await
}

/// `POST /ui/kpis`: defines a KPI (`forms::kpi::define`).
pub(crate) async fn define_kpi_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let draft = kpi::KpiDraft {
            title: f(&form, "title").to_owned(),
            form: f(&form, "form").to_owned(),
            window_hours: f(&form, "window").to_owned(),
        };
        match kpi::define(&cx.svc, cx.access(), &draft, cx.svc.now()) {
            Ok(_) => see_other("/ui/kpis?done=defined"),
            Err(e @ FormsError::Item(..)) => {
                let error = error_of(&e, "title");
                match kpis_body(cx, &form, &error) {
                    Ok(body) => {
                        layout::page_with(status_of(&error), cx, "Forms KPIs", Nav::None, body)
                    }
                    Err(r) => r,
                }
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/kpis/{id}/retire`.
pub(crate) async fn retire_kpi_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        match kpi::retire(&cx.svc, cx.access(), &id, cx.svc.now()) {
            Ok(()) => see_other("/ui/kpis?done=retired"),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// The pages' routes (listed in `crate::ROUTES`), merged into the UI router.
pub(crate) fn routes() -> axum::Router<crate::Ui> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/forms", get(forms_page).post(create_post))
        .route("/forms/import", post(import_post))
        .route("/forms/{id}", get(form_detail))
        .route("/forms/{id}/items", post(add_item_post))
        .route("/forms/{id}/remove", post(remove_post))
        .route("/forms/{id}/activate", post(activate_post))
        .route("/forms/{id}/retire", post(retire_post))
        .route("/forms/{id}/version", post(version_post))
        .route("/patients/{id}/forms", get(patient_forms))
        .route(
            "/patients/{id}/forms/{form}",
            get(fill_form).post(fill_post),
        )
        .route("/responses/{id}", get(response_page))
        .route("/kpis", get(kpis_page).post(define_kpi_post))
        .route("/kpis/{id}/retire", post(retire_kpi_post))
}
