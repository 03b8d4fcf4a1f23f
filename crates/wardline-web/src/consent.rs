//! The chart's consent section, and the form that records a patient's
//! decision: dissent from sharing with organisations outside the trust (all
//! of them, or one), or the national data opt-out. Recording, withdrawing
//! and listing are `wardline_workflow::consent`; who may do each is the
//! policy's (registration staff record; they and clinicians see).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_core::Op;
use wardline_core::consent::Decision;
use wardline_workflow::consent;
use wardline_workflow::pmi::PatientSummary;

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

/// Whether the caller's position may record consent decisions at all (the
/// policy's type-level check; the record itself is checked when written).
fn may_record(cx: &Cx) -> bool {
    cx.access().check_type(Op::Create, Some("Consent")).is_ok()
}

/// The chart's "Consent and sharing" section for patient `id`.
pub(crate) fn section(cx: &Cx, id: &str) -> Markup {
    let lines = match consent::decisions(&cx.svc, cx.access(), id) {
        Ok(l) => Some(l),
        Err(e) if e.status == 403 => None,
        Err(e) => {
            tracing::warn!(error = %e, patient = %id, "consent decisions could not be read");
            return html! {
                h2 { "Consent and sharing" }
                p data-testid="consent-failed" { "Wardline could not read this patient's consent decisions. Try again later." }
            };
        }
    };
    html! {
        section aria-labelledby="consent-heading" data-testid="consent" {
            h2 id="consent-heading" { "Consent and sharing" }
            @match &lines {
                None => p { "Your position does not cover consent decisions." },
                Some(d) if d.lines.is_empty() && d.withheld > 0 => p data-testid="consent-withheld" { "This patient's consent decisions are not shown to you: your access does not cover them." },
                Some(d) if d.lines.is_empty() => p data-testid="no-consent" { "No decisions recorded: the record is shared for the patient's care, and may be used for research and planning." },
                Some(d) => {
                    dl class="nhsuk-summary-list" data-testid="consent-decisions" {
                        @for l in &d.lines {
                            div class="nhsuk-summary-list__row" {
                                dt class="nhsuk-summary-list__key" {
                                    @if l.in_force {
                                        strong class="nhsuk-tag nhsuk-tag--red" { "In force" }
                                    } @else {
                                        strong class="nhsuk-tag nhsuk-tag--grey" { "Withdrawn" }
                                    }
                                }
                                dd class="nhsuk-summary-list__value" {
                                    (l.text())
                                    @if let Some(m) = &l.made { " (recorded " (layout::long_date(m)) ")" }
                                }
                                dd class="nhsuk-summary-list__actions" {
                                    @if l.in_force && may_record(cx) {
                                        form method="post" action={ "/ui/patients/" (enc(id)) "/consent/" (enc(&l.id)) "/withdraw" } novalidate {
                                            (layout::csrf(cx))
                                            button class="nhsuk-button nhsuk-button--secondary nhsuk-button--small" type="submit" {
                                                "Withdraw" span class="nhsuk-u-visually-hidden" { " this decision" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if d.withheld > 0 {
                        p { (d.withheld) " more not shown: your access does not cover them." }
                    }
                }
            }
            @if lines.is_some() && may_record(cx) {
                a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/patients/" (enc(id)) "/consent" } { "Record a consent decision" }
            }
        }
    }
}

fn get<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

/// The decision kinds offered.
const KINDS: [(&str, &str); 2] = [
    (
        "no-sharing",
        "Does not want their record shared with organisations outside the trust",
    ),
    (
        "opt-out",
        "National data opt-out: not to be used for research or planning",
    ),
];

/// The form for patient `p` (named above the heading, so the decision is
/// recorded in the right patient's record).
fn consent_form(cx: &Cx, p: &PatientSummary, f: &Form, errors: &[(String, String)]) -> Markup {
    let id = p.id.as_str();
    let err = |k: &str| errors.iter().find(|(e, _)| e == k).map(|(_, m)| m.as_str());
    let is_trust = |o: &str| {
        cx.dir
            .is_trust_organisation(cx.svc.system_reader(), o)
            .unwrap_or(true)
    };
    let mut orgs = vec![(
        String::new(),
        "Every organisation outside the trust".to_owned(),
    )];
    match consent::partner_organisations(&cx.svc, cx.access(), &is_trust) {
        Ok(o) => orgs.extend(o),
        Err(e) => tracing::warn!(error = %e, "partner organisations could not be listed"),
    }
    html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(id)), "Back to the record"))
        (crate::chart::banner_of(cx, p))
        span class="nhsuk-caption-l" data-testid="consent-patient" { (p.display_name) " – " (crate::patients::nhs(p)) }
        h1 { "Record a consent decision" }
        (layout::error_summary(errors))
        form method="post" action={ "/ui/patients/" (enc(id)) "/consent" } novalidate {
            (layout::csrf(cx))
            (layout::radios("kind", "What has the patient decided?", &KINDS, get(f, "kind"), err("kind")))
            (layout::select("organisation", "If they refuse sharing: with which organisation?", &orgs, get(f, "organisation"), err("organisation")))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Record decision" }
        }
    }
}

/// `GET /ui/patients/{id}/consent`.
pub(crate) async fn form_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        let p = match crate::patients::patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        layout::page(
            cx,
            "Record a consent decision",
            Nav::Patients,
            consent_form(cx, &p, &Form::new(), &[]),
        )
    })
    .await
}

/// `POST /ui/patients/{id}/consent`.
pub(crate) async fn form_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let p = match crate::patients::patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let decision = match get(&f, "kind") {
            "no-sharing" => {
                let org = get(&f, "organisation");
                Decision::NoSharing(if org.is_empty() {
                    Vec::new()
                } else {
                    vec![org.to_owned()]
                })
            }
            "opt-out" => Decision::NationalOptOut,
            _ => {
                let errors = [(
                    "kind".to_owned(),
                    "Choose what the patient has decided".to_owned(),
                )];
                return layout::page_with(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    cx,
                    "Record a consent decision",
                    Nav::Patients,
                    consent_form(cx, &p, &f, &errors),
                );
            }
        };
        match consent::record(&cx.svc, cx.access(), &id, &decision) {
            Ok(_) => see_other(&format!("/ui/patients/{}?done=consent", enc(&id))),
            Err(e) if e.status == 400 => {
                let errors = [(
                    "organisation".to_owned(),
                    layout::sentence(&layout::what_happened(&e)),
                )];
                layout::page_with(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    cx,
                    "Record a consent decision",
                    Nav::Patients,
                    consent_form(cx, &p, &f, &errors),
                )
            }
            Err(e) => crate::fhir_error(&e),
        }
    })
    .await
}

/// `POST /ui/patients/{id}/consent/{consent}/withdraw`.
pub(crate) async fn withdraw_post(
    State(ui): St,
    req: Req,
    Path((id, consent_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        match consent::withdraw(&cx.svc, cx.access(), &id, &consent_id) {
            Ok(()) => see_other(&format!("/ui/patients/{}?done=consent-withdrawn", enc(&id))),
            Err(e) => crate::fhir_error(&e),
        }
    })
    .await
}
