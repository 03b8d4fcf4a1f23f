//! "You do not have access": what a person sees when the policy keeps a
//! patient's record from them, with emergency ("break-glass") access
//! offered where their role may use it — the same grant as the API's
//! `POST /auth/break-glass` (`Directory::break_glass`: a stated reason, a
//! time limit of at most 12 hours, an audit event and a review task for the
//! privacy officer, in one transaction) — and the privacy officer's list of
//! break-glass uses to review.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_auth::rbac::Activity;
use wardline_fhir::FhirError;

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

/// The time limits offered, in minutes (the directory allows 1 to 720).
const LIMITS: [(&str, &str); 5] = [
    ("15", "15 minutes"),
    ("30", "30 minutes"),
    ("60", "1 hour"),
    ("240", "4 hours"),
    ("720", "12 hours (the longest allowed)"),
];

/// Whether the signed-in position may use break-glass.
pub(crate) fn may_break_glass(cx: &Cx) -> bool {
    cx.role.is_some_and(|r| r.has(Activity::BreakGlass))
}

/// The break-glass form for patient `id`: reason (required) and time limit,
/// with the errors of a previous attempt beside their fields.
fn form(cx: &Cx, id: &str, reason: &str, minutes: &str, errors: &[(String, String)]) -> Markup {
    let err = |f: &str| errors.iter().find(|(k, _)| k == f).map(|(_, m)| m.as_str());
    let reason_error = err("reason");
    let described = if reason_error.is_some() {
        "reason-hint reason-error"
    } else {
        "reason-hint"
    };
    html! {
        div class="nhsuk-card" data-testid="break-glass" {
            div class="nhsuk-card__content" {
                h2 class="nhsuk-card__heading" { "Emergency access (break-glass)" }
                p { "If this patient needs care now and you cannot wait to be given access, you can open their record for a limited time." }
                p { "Your reason, and everything you open, is recorded and reviewed by the privacy officer. Use it only in an emergency." }
                (layout::error_summary(errors))
                form method="post" action={ "/ui/patients/" (enc(id)) "/break-glass" } novalidate {
                    (layout::csrf(cx))
                    div class={ "nhsuk-form-group" @if reason_error.is_some() { " nhsuk-form-group--error" } } {
                        label class="nhsuk-label" for="reason" { "Why do you need emergency access?" }
                        div class="nhsuk-hint" id="reason-hint" { "For example, unconscious patient brought in, no notes available. At least 10 characters." }
                        @if let Some(e) = reason_error {
                            span class="nhsuk-error-message" id="reason-error" {
                                span class="nhsuk-u-visually-hidden" { "Error: " } (e)
                            }
                        }
                        textarea class={ "nhsuk-textarea" @if reason_error.is_some() { " nhsuk-textarea--error" } }
                            id="reason" name="reason" rows="3" aria-describedby=(described) { (reason) }
                    }
                    (layout::select(
                        "minutes",
                        "For how long?",
                        &LIMITS.iter().map(|(v, t)| ((*v).to_owned(), (*t).to_owned())).collect::<Vec<_>>(),
                        minutes,
                        err("minutes"),
                    ))
                    button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" { "Use emergency access" }
                }
            }
        }
    }
}

/// The 403 page for patient `id`: what the policy said, and the
/// break-glass form when the position may use it.
pub(crate) fn no_access_page(cx: &Cx, id: &str, e: &FhirError) -> Response {
    no_access(cx, id, e, "", "60", &[], StatusCode::FORBIDDEN)
}

fn no_access(
    cx: &Cx,
    id: &str,
    e: &FhirError,
    reason: &str,
    minutes: &str,
    errors: &[(String, String)],
    status: StatusCode,
) -> Response {
    let body = html! {
        h1 { "You do not have access" }
        p data-testid="no-access-reason" { (layout::sentence(&layout::what_happened(e))) }
        p { "Access to records is limited to staff with a legitimate relationship with the patient." }
        @if may_break_glass(cx) {
            (form(cx, id, reason, minutes, errors))
        }
        p { a href="/ui/patients" { "Go to patient search" } }
    };
    layout::page_with(status, cx, "You do not have access", Nav::Patients, body)
}

/// Whether the caller's position has a legitimate relationship with the
/// patient, as the policy decides it (`wardline_auth::policy::relationship`,
/// read past the caller's access as a policy decision is).
fn related(cx: &Cx, id: &str) -> bool {
    let Some(pos) = &cx.principal.position else {
        return false;
    };
    wardline_auth::policy::relationship(&cx.dir, cx.svc.system_reader(), pos, id).unwrap_or_else(
        |e| {
            tracing::warn!(error = %e, patient = %id, "relationship could not be checked");
            false
        },
    )
}

/// What the chart says about the caller's access to patient `id`: under a
/// break-glass grant, that it is in force and why; when parts of the record
/// were withheld, or a clinician has no legitimate relationship with the
/// patient (so nothing of the record is shown to them), that they do not
/// have access, with the break-glass form where the position may use it.
pub(crate) fn chart_notice(cx: &Cx, id: &str, withheld: usize) -> Markup {
    if let Some(reason) = cx.access().break_glass(id) {
        return html! {
            div class="nhsuk-warning-callout" data-testid="break-glass-in-force" {
                h2 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Emergency access (break-glass)" } }
                p { "You are using emergency access to this record: " (reason) }
                p { "Everything you open is recorded and reviewed by the privacy officer." }
            }
        };
    }
    let clinician = cx.role.is_some_and(|r| r.has(Activity::ViewClinical));
    if withheld == 0 && (!clinician || related(cx, id)) {
        return html! {};
    }
    html! {
        div class="nhsuk-warning-callout" data-testid="no-access" {
            h2 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "You do not have access to all of this record" } }
            p { "Parts of this patient's record are not shown: you have no legitimate relationship with the patient recorded (such as an admission to your ward, a referral or a care team), or the patient has not consented to sharing with your organisation." }
        }
        @if may_break_glass(cx) {
            (form(cx, id, "", "60", &[]))
        }
    }
}

/// `GET /ui/patients/{id}/break-glass`: the form on its own.
pub(crate) async fn break_glass_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        let refusal = wardline_core::access::forbidden(
            "you do not have access to this patient's whole record",
        );
        no_access(cx, &id, &refusal, "", "60", &[], StatusCode::OK)
    })
    .await
}

fn field<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

/// `POST /ui/patients/{id}/break-glass`: the grant, through the directory
/// (as the API's), then the chart; a refused form comes back with its
/// errors beside the fields.
pub(crate) async fn break_glass_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let reason = field(&f, "reason");
        let minutes_text = field(&f, "minutes");
        let minutes = match minutes_text.parse::<i64>() {
            Ok(m) => m,
            Err(_) => {
                let e = FhirError::invalid("choose how long you need emergency access for")
                    .at("minutes");
                return refused(cx, &id, &e, reason, minutes_text);
            }
        };
        match cx.dir.break_glass(&cx.principal, &id, reason, minutes) {
            Ok(_) => see_other(&format!("/ui/patients/{}?done=break-glass", enc(&id))),
            Err(e) if e.status == 400 => refused(cx, &id, &e, reason, minutes_text),
            Err(e) if e.status == 403 => no_access_page(cx, &id, &e),
            Err(e) => crate::fhir_error(&e),
        }
    })
    .await
}

/// The form again with the directory's refusal beside the field it names.
fn refused(cx: &Cx, id: &str, e: &FhirError, reason: &str, minutes: &str) -> Response {
    let at = e
        .issues
        .first()
        .and_then(|i| i.expression.first())
        .map(String::as_str)
        .unwrap_or("reason");
    let message = layout::sentence(&layout::what_happened(e));
    let refusal =
        wardline_core::access::forbidden("you do not have access to this patient's whole record");
    no_access(
        cx,
        id,
        &refusal,
        reason,
        minutes,
        &[(at.to_owned(), message)],
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

/// `GET /ui/break-glass`: every use of break-glass, newest first, for the
/// privacy officer (the reading is audited; other roles are refused).
pub(crate) async fn reviews_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, |cx, _| {
        let reviews = match cx.dir.break_glass_reviews(cx.access()) {
            Ok(r) => r,
            Err(e) => return crate::fhir_error(&e),
        };
        let date = |d: &Option<String>| d.as_deref().map(layout::long_date).unwrap_or_default();
        let body = html! {
            h1 { "Emergency access to review" }
            p { "Each time someone used break-glass to open a record: who, which patient, why, and until when. Check each against the care the patient was given." }
            @if reviews.is_empty() {
                p data-testid="no-reviews" { "Nobody has used emergency access." }
            } @else {
                table class="nhsuk-table-responsive" data-testid="break-glass-reviews" {
                    caption class="nhsuk-table__caption" { (reviews.len()) " use" @if reviews.len() != 1 { "s" } " of emergency access" }
                    thead class="nhsuk-table__head" {
                        tr role="row" {
                            th scope="col" { "When" }
                            th scope="col" { "Who" }
                            th scope="col" { "Patient" }
                            th scope="col" { "Reason given" }
                            th scope="col" { "Until" }
                            th scope="col" { "Review" }
                        }
                    }
                    tbody class="nhsuk-table__body" {
                        @for r in &reviews {
                            tr role="row" class="nhsuk-table__row" data-testid="break-glass-review" {
                                td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "When " } (date(&r.granted)) }
                                td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "Who " } (r.user) }
                                td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "Patient " } (r.patient.as_deref().unwrap_or("")) }
                                td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "Reason given " } (r.reason) }
                                td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "Until " } (date(&r.until)) }
                                td class="nhsuk-table__cell" {
                                    span class="nhsuk-table-responsive__heading" { "Review " }
                                    @if r.status == "requested" {
                                        strong class="nhsuk-tag nhsuk-tag--orange" { "To review" }
                                    } @else {
                                        strong class="nhsuk-tag nhsuk-tag--grey" { (r.status) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        layout::page(cx, "Emergency access to review", Nav::Reviews, body)
    })
    .await
}
