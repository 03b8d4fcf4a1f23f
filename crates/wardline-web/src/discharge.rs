//! Discharge summary pages (issue 18): from an admission
//! (`/ui/encounters/{id}/discharge-summary`: open its summary, or start one
//! pre-filled from the record), the summary (`/ui/discharge-summaries/{id}`:
//! every PRSB heading as it stands, sign, PDF), editing the headings the
//! clinician writes (`…/edit`), amending a signed one (`…/amend`) and its
//! PDF (`…/pdf`). Every rule is `wardline_workflow::documents::discharge`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use time::OffsetDateTime;
use wardline_auth::rbac::Activity;
use wardline_workflow::documents::discharge::{
    self, DischargeError, HEADINGS, Section, Summary, display_time,
};

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

fn refusal(e: &DischargeError) -> Response {
    layout::refusal_page(e.status(), e.message(), "discharge summary")
}

fn writes(cx: &Cx) -> bool {
    cx.role.is_some_and(|r| r.has(Activity::RecordClinical))
}

fn base(id: &str) -> String {
    format!("/ui/discharge-summaries/{}", enc(id))
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

fn banner(s: &Summary) -> Markup {
    html! {
        div class="nhsuk-card" data-testid="summary-patient" {
            div class="nhsuk-card__content" {
                p class="nhsuk-body nhsuk-u-margin-bottom-0" {
                    strong { (s.patient.name) } " · NHS number "
                    (s.patient.nhs_number.as_deref().unwrap_or("not recorded"))
                    " · Born " (s.patient.birth_date.as_deref().unwrap_or("not recorded"))
                }
            }
        }
    }
}

fn summary_body(
    cx: &Cx,
    s: &Summary,
    error: Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    let b = base(&s.id);
    html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(&s.patient_id)), "Back to the patient"))
        @if let Some(d) = done { (layout::success(d)) }
        @if let Some((f, m)) = &error {
            (layout::error_summary(&[(f.clone(), m.clone())]))
        }
        h1 { "Discharge summary " (status_tag(&s.status)) }
        (banner(s))
        @if let Some(sig) = &s.signed {
            p data-testid="signed-by" { "Signed by " (sig.name) " on " (display_time(&sig.at)) "." }
        }
        div class="wl-actions" {
            a class="nhsuk-button nhsuk-button--secondary" href={ (b) "/pdf" } data-testid="pdf" { "PDF" }
            a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/encounters/" (enc(&s.encounter_id)) "/discharge-medicines" } { "Discharge medicines" }
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
        @if writes(cx) && s.status == "preliminary" {
            h2 { "Sign" }
            // issue 18: access — the patient's sharing decision, before signing queues the delivery.
            (consent_warning(cx, s))
            p { "Signing makes this the discharge summary: it is stored as a FHIR document and a PDF, and it can then only be amended." }
            form method="post" action={ (b) "/sign" } novalidate {
                (layout::csrf(cx))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="sign" { "Sign the discharge summary" }
            }
        }
    }
}

fn edit_body(
    cx: &Cx,
    s: &Summary,
    action: &str,
    values: &Form,
    error: Option<(String, String)>,
) -> Markup {
    let amend = action.ends_with("/amend");
    html! {
        (layout::back_link(&base(&s.id), "Back to the summary"))
        @if let Some((f, m)) = &error {
            (layout::error_summary(&[(f.clone(), m.clone())]))
        }
        h1 { @if amend { "Amend the discharge summary" } @else { "Edit the discharge summary" } }
        (banner(s))
        p { "The other headings are read from the record each time you save"
            @if amend { " and the summary is signed again by you." } @else { "." } }
        form method="post" action=(action) novalidate {
            (layout::csrf(cx))
            @for h in HEADINGS.iter().filter(|h| h.written) {
                @let err = error.as_ref().filter(|(f, _)| f == h.key).map(|(_, m)| m.as_str());
                @let value = values.get(h.key).cloned().or_else(|| s.section(h.key).and_then(|x| x.written.clone())).unwrap_or_default();
                div class={ "nhsuk-form-group" @if err.is_some() { " nhsuk-form-group--error" } } {
                    label class="nhsuk-label nhsuk-label--s" for=(h.key) { (h.title) }
                    @if discharge::REQUIRED_TO_SIGN.contains(&h.key) { div class="nhsuk-hint" { "Required before signing." } }
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

fn written_of(f: &Form) -> Vec<(String, String)> {
    HEADINGS
        .iter()
        .filter(|h| h.written)
        .filter_map(|h| Some((h.key.to_owned(), f.get(h.key)?.clone())))
        .collect()
}

fn load(cx: &Cx, id: &str) -> Result<Summary, DischargeError> {
    discharge::view(&cx.svc, cx.access(), id, "discharge-summary-view")
}

// ---------------------------------------------------------------- from the admission

/// `GET /ui/encounters/{id}/discharge-summary`: the admission's summary,
/// or the offer to start it.
pub(crate) async fn encounter_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        match discharge::find_for_encounter(&cx.svc, cx.access(), &id) {
            Ok(Some(s)) => see_other(&base(&s)),
            Ok(None) => layout::page(
                cx,
                "Start the discharge summary",
                Nav::None,
                html! {
                    h1 { "Discharge summary" }
                    p data-testid="no-summary" { "This admission has no discharge summary yet. Starting one fills in every heading Wardline can read from the record (GP practice, admission, diagnoses, procedures, results, discharge medicines, allergies); you then write the clinical summary, the information given and the plan, and sign it." }
                    @if writes(cx) {
                        form method="post" action={ "/ui/encounters/" (enc(&id)) "/discharge-summary" } novalidate {
                            (layout::csrf(cx))
                            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="start-summary" { "Start the discharge summary" }
                        }
                    }
                },
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/encounters/{id}/discharge-summary`: start it (pre-filled).
pub(crate) async fn start_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        match discharge::start(&cx.svc, cx.access(), &id, OffsetDateTime::now_utc()) {
            Ok(s) => see_other(&format!("{}/edit", base(&s))),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- the summary

/// `GET /ui/discharge-summaries/{id}`: the summary as it stands.
/// A warning when the patient has dissented from sharing with their GP
/// practice: signing queues the delivery, which the send job will then
/// withhold (`transfers::send::practice_consent_warning`).
fn consent_warning(cx: &Cx, s: &Summary) -> Markup {
    let w = wardline_workflow::transfers::send::practice_consent_warning(
        &cx.svc,
        cx.access(),
        &s.patient_id,
        OffsetDateTime::now_utc(),
    );
    let text = match w {
        Ok(None) => return html! {},
        Ok(Some(why)) => format!(
            "{why} The summary will not be sent to the GP practice: after signing, the team is asked to review how the practice is to be told what it needs."
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

pub(crate) async fn summary_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match q.get("done").map(String::as_str) {
            Some("saved") => Some("Saved. Check every heading, then sign."),
            Some("signed") => {
                Some("Signed: the discharge summary is stored as a document and a PDF.")
            }
            Some("amended") => Some("Amended and signed again."),
            _ => None,
        };
        match load(cx, &id) {
            Ok(s) => layout::page(
                cx,
                "Discharge summary",
                Nav::None,
                summary_body(cx, &s, None, done),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `GET /ui/discharge-summaries/{id}/edit`.
pub(crate) async fn edit_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| match load(cx, &id) {
        Ok(s) => layout::page(
            cx,
            "Edit the discharge summary",
            Nav::None,
            edit_body(cx, &s, &format!("{}/edit", base(&id)), &Form::new(), None),
        ),
        Err(e) => refusal(&e),
    })
    .await
}

fn form_again(cx: &Cx, id: &str, action: &str, f: &Form, e: DischargeError) -> Response {
    let (field, m) = match e {
        DischargeError::Field(k, m) => (k, m),
        DischargeError::Invalid(m) => ("clinical-summary".to_owned(), m),
        e => return refusal(&e),
    };
    match load(cx, id) {
        Ok(s) => layout::page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            cx,
            "Discharge summary",
            Nav::None,
            edit_body(cx, &s, action, f, Some((field, m))),
        ),
        Err(e) => refusal(&e),
    }
}

/// `POST /ui/discharge-summaries/{id}/edit`: save the draft.
pub(crate) async fn edit_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let w = written_of(&f);
        match discharge::save_draft(&cx.svc, cx.access(), &id, &w, OffsetDateTime::now_utc()) {
            Ok(()) => see_other(&format!("{}?done=saved", base(&id))),
            Err(e) => form_again(cx, &id, &format!("{}/edit", base(&id)), &f, e),
        }
    })
    .await
}

/// `POST /ui/discharge-summaries/{id}/sign`.
pub(crate) async fn sign_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        match discharge::sign(&cx.svc, cx.access(), &id, OffsetDateTime::now_utc()) {
            Ok(_) => see_other(&format!("{}?done=signed", base(&id))),
            Err(DischargeError::Field(k, m)) => match load(cx, &id) {
                Ok(s) => layout::page_with(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    cx,
                    "Discharge summary",
                    Nav::None,
                    summary_body(cx, &s, Some((k, m)), None),
                ),
                Err(e) => refusal(&e),
            },
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `GET /ui/discharge-summaries/{id}/amend`.
pub(crate) async fn amend_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| match load(cx, &id) {
        Ok(s) => layout::page(
            cx,
            "Amend the discharge summary",
            Nav::None,
            edit_body(cx, &s, &format!("{}/amend", base(&id)), &Form::new(), None),
        ),
        Err(e) => refusal(&e),
    })
    .await
}

/// `POST /ui/discharge-summaries/{id}/amend`: amend and sign again.
pub(crate) async fn amend_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let w = written_of(&f);
        match discharge::amend(&cx.svc, cx.access(), &id, &w, OffsetDateTime::now_utc()) {
            Ok(_) => see_other(&format!("{}?done=amended", base(&id))),
            Err(e) => form_again(cx, &id, &format!("{}/amend", base(&id)), &f, e),
        }
    })
    .await
}

/// `GET /ui/discharge-summaries/{id}/pdf`: the PDF (the stored one once
/// signed).
pub(crate) async fn pdf_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        match discharge::pdf_of(&cx.svc, cx.access(), &id) {
            Ok(bytes) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/pdf".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"discharge-summary-{}.pdf\"", enc(&id)),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                ],
                bytes,
            )
                .into_response(),
            Err(e) => refusal(&e),
        }
    })
    .await
}
