//! Discharge summary pages (issue 18): from an admission
//! (`/ui/encounters/{id}/discharge-summary`: open its summary, or start one
//! pre-filled from the record), the summary (`/ui/discharge-summaries/{id}`:
//! every PRSB heading as it stands, sign, PDF), editing the headings the
//! clinician writes (`…/edit`), amending a signed one (`…/amend`) and its
//! PDF (`…/pdf`). Every rule is `wardline_workflow::documents::discharge`'s.
//!
//! The pages are written once for any [`Doc`] (a form of document and where
//! its pages live): the clinic letter's pages (`crate::letters`) are these
//! pages with the letter's form and a few parts of its own.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use wardline_auth::rbac::Activity;
use wardline_workflow::documents::discharge::{
    self, DischargeError, SUMMARY, Section, Summary, display_time,
};

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

/// A form of document and where its pages are.
pub(crate) struct Doc {
    pub form: &'static discharge::Form,
    /// The pages of one document: `{base}/{id}`.
    pub base: &'static str,
    /// The encounter's page: `/ui/encounters/{id}/{from_encounter}`.
    pub from_encounter: &'static str,
    /// What starting one fills in, in a sentence.
    pub start_hint: &'static str,
    /// More buttons beside PDF, Edit and Amend.
    pub actions: fn(&Cx, &Summary) -> Markup,
    /// More on the document's page, after its headings.
    pub more: fn(&Cx, &Summary) -> Markup,
}

fn no_more(_: &Cx, _: &Summary) -> Markup {
    html! {}
}

fn summary_actions(_: &Cx, s: &Summary) -> Markup {
    html! {
        a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/encounters/" (enc(&s.encounter_id)) "/discharge-medicines" } { "Discharge medicines" }
    }
}

/// The discharge summary's pages.
pub(crate) static SUMMARY_DOC: Doc = Doc {
    form: &SUMMARY,
    base: "/ui/discharge-summaries",
    from_encounter: "discharge-summary",
    start_hint: "This admission has no discharge summary yet. Starting one fills in every heading Wardline can read from the record (GP practice, admission, diagnoses, procedures, results, discharge medicines, allergies); you then write the clinical summary, the information given and the plan, and sign it.",
    actions: summary_actions,
    more: no_more,
};

pub(crate) fn refusal(d: &Doc, e: &DischargeError) -> Response {
    layout::refusal_page(e.status(), e.message(), d.form.noun)
}

pub(crate) fn writes(cx: &Cx) -> bool {
    cx.role.is_some_and(|r| r.has(Activity::RecordClinical))
}

fn base(d: &Doc, id: &str) -> String {
    format!("{}/{}", d.base, enc(id))
}

fn status_tag(status: &str) -> Markup {
    let (class, text) = match status {
        "final" => ("nhsuk-tag nhsuk-tag--green", "Signed"),
        "amended" => ("nhsuk-tag nhsuk-tag--green", "Amended and signed"),
        "entered-in-error" => ("nhsuk-tag nhsuk-tag--red", "Entered in error"),
        _ => ("nhsuk-tag nhsuk-tag--orange", "Draft: not signed"),
    };
    html! { strong class=(class) data-testid="summary-status" data-status=(status) { (text) } }
}

fn section_view(s: &Section) -> Markup {
    html! {
        section data-testid="heading" data-key=(s.key) {
            h2 class="nhsuk-heading-m" { (s.title) }
            @if !s.lines.is_empty() {
                ul class="nhsuk-list nhsuk-list--bullet" {
                    @for l in &s.lines { li { (l) } }
                }
            }
            @if let Some(e) = &s.empty {
                div class="nhsuk-inset-text" data-testid="absent" { p { (e) } }
            }
            @if let Some(w) = &s.written {
                div data-testid="written" {
                    @for p in w.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
                        p { (p) }
                    }
                }
            }
        }
    }
}

/// The patient banner (`chart::banner`, with the patient's alerts).
fn banner(cx: &Cx, s: &Summary) -> Markup {
    html! {
        div data-testid="summary-patient" {
            (crate::chart::patient_banner(cx, &s.patient_id))
        }
    }
}

/// A warning when the patient has dissented from sharing with their GP
/// practice: signing queues the delivery, which the send job will then
/// withhold (`transfers::send::practice_consent_warning`).
fn consent_warning(cx: &Cx, s: &Summary) -> Markup {
    let w = wardline_workflow::transfers::send::practice_consent_warning(
        &cx.svc,
        cx.access(),
        &s.patient_id,
        cx.svc.now(),
    );
    let text = match w {
        Ok(None) => return html! {},
        Ok(Some(why)) => format!(
            "{why} It will not be sent to the GP practice: after signing, the team is asked to review how the practice is to be told what it needs."
        ),
        Err(e) => format!(
            "Wardline could not check the patient's sharing decision ({e}); the delivery is checked again before anything is sent."
        ),
    };
    html! {
        div class="nhsuk-warning-callout" data-testid="consent-warning" {
            h3 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Not to be shared with the GP practice" } }
            p { (text) }
        }
    }
}

fn summary_body(
    cx: &Cx,
    d: &Doc,
    s: &Summary,
    error: Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    let b = base(d, &s.id);
    let noun = d.form.noun;
    html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(&s.patient_id)), "Back to the patient"))
        @if let Some(d) = done { (layout::success(d)) }
        @if let Some((f, m)) = &error {
            (layout::error_summary(&[(f.clone(), m.clone())]))
        }
        h1 { (d.form.display) " " (status_tag(&s.status)) }
        (banner(cx, s))
        @if let Some(sig) = &s.signed {
            p data-testid="signed-by" { "Signed by " (sig.name) " on " (display_time(&sig.at)) "." }
        }
        div class="wl-actions" {
            a class="nhsuk-button nhsuk-button--secondary" href={ (b) "/pdf" } data-testid="pdf" { "PDF" }
            ((d.actions)(cx, s))
            @if writes(cx) && s.status == "preliminary" {
                a class="nhsuk-button" href={ (b) "/edit" } data-testid="edit" { "Edit" }
            }
            @if writes(cx) && matches!(s.status.as_str(), "final" | "amended") {
                a class="nhsuk-button nhsuk-button--secondary" href={ (b) "/amend" } data-testid="amend" { "Amend" }
            }
        }
        @for sec in &s.sections {
            @let field = error.as_ref().is_some_and(|(f, _)| *f == sec.key);
            div id=(sec.key) class={ @if field { "nhsuk-form-group--error" } } { (section_view(sec)) }
        }
        ((d.more)(cx, s))
        @if writes(cx) && s.status == "preliminary" {
            h2 { "Sign" }
            // issue 18: access — the patient's sharing decision, before signing queues the delivery.
            (consent_warning(cx, s))
            p { "Signing makes this the " (noun) ": it is stored as a FHIR document and a PDF, sent to the GP practice"
                @if d.form.copy_to_patient.is_some() { " and copied to the patient" }
                ", and it can then only be amended." }
            form method="post" action={ (b) "/sign" } novalidate {
                (layout::csrf(cx))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="sign" { "Sign the " (noun) }
            }
        }
    }
}

fn edit_body(
    cx: &Cx,
    d: &Doc,
    s: &Summary,
    action: &str,
    values: &Form,
    error: Option<(String, String)>,
) -> Markup {
    let amend = action.ends_with("/amend");
    let noun = d.form.noun;
    html! {
        (layout::back_link(&base(d, &s.id), &format!("Back to the {noun}")))
        @if let Some((f, m)) = &error {
            (layout::error_summary(&[(f.clone(), m.clone())]))
        }
        h1 { @if amend { "Amend the " (noun) } @else { "Edit the " (noun) } }
        (banner(cx, s))
        p { "The other headings are read from the record each time you save"
            @if amend { " and the " (noun) " is signed again by you." } @else { "." } }
        form method="post" action=(action) novalidate {
            (layout::csrf(cx))
            @for h in d.form.headings.iter().filter(|h| h.written) {
                @let err = error.as_ref().filter(|(f, _)| f == h.key).map(|(_, m)| m.as_str());
                @let value = values.get(h.key).cloned().or_else(|| s.section(h.key).and_then(|x| x.written.clone())).unwrap_or_default();
                div class={ "nhsuk-form-group" @if err.is_some() { " nhsuk-form-group--error" } } {
                    label class="nhsuk-label nhsuk-label--s" for=(h.key) { (h.title) }
                    @if d.form.required.contains(&h.key) { div class="nhsuk-hint" { "Required before signing." } }
                    @if let Some(e) = err {
                        span class="nhsuk-error-message" id={ (h.key) "-error" } { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                    }
                    textarea class={ "nhsuk-textarea" @if err.is_some() { " nhsuk-textarea--error" } } id=(h.key) name=(h.key) rows="5"
                        data-testid={ "write-" (h.key) }
                        aria-describedby=[err.map(|_| format!("{}-error", h.key))] { (value) }
                }
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="save" {
                @if amend { "Amend and sign" } @else { "Save and preview" }
            }
        }
    }
}

fn written_of(d: &Doc, f: &Form) -> Vec<(String, String)> {
    d.form
        .headings
        .iter()
        .filter(|h| h.written)
        .filter_map(|h| Some((h.key.to_owned(), f.get(h.key)?.clone())))
        .collect()
}

fn load(cx: &Cx, d: &Doc, id: &str) -> Result<Summary, DischargeError> {
    d.form.view(&cx.svc, cx.access(), id)
}

// ---------------------------------------------------------------- from the admission

/// `GET /ui/encounters/{id}/{from_encounter}`: the encounter's document,
/// or the offer to start it.
fn encounter_view(cx: &Cx, d: &Doc, id: &str) -> Response {
    match d.form.find_for_encounter(&cx.svc, cx.access(), id) {
        Ok(Some(s)) => see_other(&base(d, &s)),
        Ok(None) => layout::page(
            cx,
            &format!("Start the {}", d.form.noun),
            Nav::None,
            html! {
                h1 { (d.form.display) }
                p data-testid="no-summary" { (d.start_hint) }
                @if writes(cx) {
                    form method="post" action={ "/ui/encounters/" (enc(id)) "/" (d.from_encounter) } novalidate {
                        (layout::csrf(cx))
                        button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="start-summary" { "Start the " (d.form.noun) }
                    }
                }
            },
        ),
        Err(e) => refusal(d, &e),
    }
}

/// `POST /ui/encounters/{id}/{from_encounter}`: start it (pre-filled).
fn start_view(cx: &Cx, d: &Doc, id: &str) -> Response {
    match d.form.start(&cx.svc, cx.access(), id, cx.svc.now()) {
        Ok(s) => see_other(&format!("{}/edit", base(d, &s))),
        Err(e) => refusal(d, &e),
    }
}

/// `GET {base}/{id}`: the document as it stands.
fn document_view(cx: &Cx, d: &Doc, id: &str, done: Option<&str>) -> Response {
    let done = match done {
        Some("saved") => Some("Saved. Check every heading, then sign.".to_owned()),
        Some("signed") => Some(format!(
            "Signed: the {} is stored as a document and a PDF.",
            d.form.noun
        )),
        Some("amended") => Some("Amended and signed again.".to_owned()),
        _ => None,
    };
    match load(cx, d, id) {
        Ok(s) => layout::page(
            cx,
            d.form.display,
            Nav::None,
            summary_body(cx, d, &s, None, done.as_deref()),
        ),
        Err(e) => refusal(d, &e),
    }
}

/// `GET {base}/{id}/edit` and `…/amend`.
fn edit_view(cx: &Cx, d: &Doc, id: &str, amend: bool) -> Response {
    let what = if amend { "amend" } else { "edit" };
    match load(cx, d, id) {
        Ok(s) => layout::page(
            cx,
            &format!(
                "{} the {}",
                if amend { "Amend" } else { "Edit" },
                d.form.noun
            ),
            Nav::None,
            edit_body(
                cx,
                d,
                &s,
                &format!("{}/{what}", base(d, id)),
                &Form::new(),
                None,
            ),
        ),
        Err(e) => refusal(d, &e),
    }
}

fn form_again(cx: &Cx, d: &Doc, id: &str, action: &str, f: &Form, e: DischargeError) -> Response {
    let (field, m) = match e {
        DischargeError::Field(k, m) => (k, m),
        DischargeError::Invalid(m) => ("clinical-summary".to_owned(), m),
        e => return refusal(d, &e),
    };
    match load(cx, d, id) {
        Ok(s) => layout::page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            cx,
            d.form.display,
            Nav::None,
            edit_body(cx, d, &s, action, f, Some((field, m))),
        ),
        Err(e) => refusal(d, &e),
    }
}

/// `POST {base}/{id}/edit` (save the draft) and `…/amend` (amend and sign
/// again).
fn save_view(cx: &Cx, d: &Doc, id: &str, f: &Form, amend: bool) -> Response {
    let w = written_of(d, f);
    let now = cx.svc.now();
    let (result, what, done) = if amend {
        (
            d.form.amend(&cx.svc, cx.access(), id, &w, now).map(|_| ()),
            "amend",
            "amended",
        )
    } else {
        (
            d.form.save_draft(&cx.svc, cx.access(), id, &w, now),
            "edit",
            "saved",
        )
    };
    match result {
        Ok(()) => see_other(&format!("{}?done={done}", base(d, id))),
        Err(e) => form_again(cx, d, id, &format!("{}/{what}", base(d, id)), f, e),
    }
}

/// `POST {base}/{id}/sign`.
fn sign_view(cx: &Cx, d: &Doc, id: &str) -> Response {
    match d.form.sign(&cx.svc, cx.access(), id, cx.svc.now()) {
        Ok(_) => see_other(&format!("{}?done=signed", base(d, id))),
        Err(DischargeError::Field(k, m)) => match load(cx, d, id) {
            Ok(s) => layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                d.form.display,
                Nav::None,
                summary_body(cx, d, &s, Some((k, m)), None),
            ),
            Err(e) => refusal(d, &e),
        },
        Err(e) => refusal(d, &e),
    }
}

/// `GET {base}/{id}/pdf`: the PDF (the stored one once signed).
fn pdf_view(cx: &Cx, d: &Doc, id: &str) -> Response {
    match d.form.pdf_of(&cx.svc, cx.access(), id) {
        Ok(bytes) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/pdf".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"{}-{}.pdf\"", d.form.audit, enc(id)),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => refusal(d, &e),
    }
}

// ---------------------------------------------------------------- the routes

/// Which document's pages a route serves (the handlers below are generic
/// over it: `discharge::summary_page::<Summaries>`).
pub(crate) trait Pages: Send + Sync + 'static {
    const DOC: &'static Doc;
}

/// The discharge summary's routes.
pub(crate) struct Summaries;

impl Pages for Summaries {
    const DOC: &'static Doc = &SUMMARY_DOC;
}

/// `GET /ui/encounters/{id}/{from_encounter}`.
pub(crate) async fn encounter_page<P: Pages>(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
) -> Response {
    ui.run(req, None, move |cx, _| encounter_view(cx, P::DOC, &id))
        .await
}

/// `POST /ui/encounters/{id}/{from_encounter}`.
pub(crate) async fn start_post<P: Pages>(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| start_view(cx, P::DOC, &id))
        .await
}

/// `GET {base}/{id}`.
pub(crate) async fn summary_page<P: Pages>(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
) -> Response {
    ui.run(req, None, move |cx, q| {
        document_view(cx, P::DOC, &id, q.get("done").map(String::as_str))
    })
    .await
}

/// `GET {base}/{id}/edit` (`amend` false) and `GET {base}/{id}/amend`.
async fn form_page<P: Pages>(ui: crate::Ui, req: Req, id: String, amend: bool) -> Response {
    ui.run(req, None, move |cx, _| edit_view(cx, P::DOC, &id, amend))
        .await
}

/// `POST {base}/{id}/edit` and `POST {base}/{id}/amend`.
async fn form_post<P: Pages>(
    ui: crate::Ui,
    req: Req,
    id: String,
    body: Bytes,
    amend: bool,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        save_view(cx, P::DOC, &id, &f, amend)
    })
    .await
}

/// `GET {base}/{id}/edit`.
pub(crate) async fn edit_page<P: Pages>(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
) -> Response {
    form_page::<P>(ui, req, id, false).await
}

/// `POST {base}/{id}/edit`: save the draft.
pub(crate) async fn edit_post<P: Pages>(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    form_post::<P>(ui, req, id, body, false).await
}

/// `POST {base}/{id}/sign`.
pub(crate) async fn sign_post<P: Pages>(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| sign_view(cx, P::DOC, &id))
        .await
}

/// `GET {base}/{id}/amend`.
pub(crate) async fn amend_page<P: Pages>(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
) -> Response {
    form_page::<P>(ui, req, id, true).await
}

/// `POST {base}/{id}/amend`: amend and sign again.
pub(crate) async fn amend_post<P: Pages>(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    form_post::<P>(ui, req, id, body, true).await
}

/// `GET {base}/{id}/pdf`.
pub(crate) async fn pdf_page<P: Pages>(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
) -> Response {
    ui.run(req, None, move |cx, _| pdf_view(cx, P::DOC, &id))
        .await
}
