//! Social care pages (issue 18): an admission's Care Act notices to the
//! local authority (`/ui/encounters/{id}/social-care`: the notices given,
//! their delivery and timescales; give the assessment notice, then the
//! discharge notice; withdraw one) and the social-care worklist by ward
//! (`/ui/social-care`: notices, their deliveries and the Tasks the job
//! raised). Every rule is `wardline_workflow::transfers::care_act`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_auth::rbac::Activity;
use wardline_workflow::transfers::care_act::timescales::{Timescales, local_text};
use wardline_workflow::transfers::care_act::{
    self, CHC, CareActError, Case, Notice, NoticeInput, NoticeKind, OBJECTIONS, Row, in_force,
};

use crate::layout::{self, Field, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

fn refusal(e: &CareActError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "social care notice")
}

fn writes(cx: &Cx) -> bool {
    cx.role.is_some_and(|r| r.has(Activity::RecordClinical))
}

fn base(encounter: &str) -> String {
    format!("/ui/encounters/{}/social-care", enc(encounter))
}

fn delivery_tag(n: &Notice) -> Markup {
    let (class, text) = match &n.delivery {
        None => ("nhsuk-tag nhsuk-tag--red", "Not queued"),
        Some(d) => (
            match d.status.as_str() {
                "completed" => "nhsuk-tag nhsuk-tag--green",
                "stopped" => "nhsuk-tag nhsuk-tag--red",
                "in-progress" => "nhsuk-tag nhsuk-tag--blue",
                _ => "nhsuk-tag nhsuk-tag--grey",
            },
            d.label(),
        ),
    };
    html! { strong class=(class) data-testid="delivery" { (text) } }
}

fn notices_table(n: &[Notice], encounter: &str, cx: &Cx) -> Markup {
    html! {
        table class="nhsuk-table" data-testid="notices" {
            thead class="nhsuk-table__head" { tr {
                th { "Notice" } th { "Given" } th { "To" } th { "Discharge day" }
                th { "Timescales" } th { "Delivery" } th { "" }
            } }
            tbody class="nhsuk-table__body" {
                @for x in n {
                    tr class="nhsuk-table__row" data-testid="notice" data-kind=(x.kind.code()) {
                        td class="nhsuk-table__cell" {
                            (x.kind.label())
                            @if x.withdrawn_by.is_some() { br; strong class="nhsuk-tag nhsuk-tag--grey" data-testid="withdrawn" { "Withdrawn" } }
                            @if let Some(r) = &x.override_reason { br; span class="nhsuk-body-s" data-testid="override" { "Given short of the timescales: " (r) } }
                        }
                        td class="nhsuk-table__cell" { (local(&x.given_at)) @if let Some(g) = &x.given_day { br; span class="nhsuk-body-s" { "counts as given " (g) } } }
                        td class="nhsuk-table__cell" { (x.local_authority_name) }
                        td class="nhsuk-table__cell" { (x.discharge_day.as_deref().unwrap_or("Not known")) }
                        td class="nhsuk-table__cell" data-testid="timescales" {
                            @if let Some(e) = &x.earliest_discharge { "Earliest discharge " (e) br; }
                            @if x.kind == NoticeKind::Assessment { @if let Some(l) = &x.latest_discharge_notice { "Discharge notice by " (local(l)) } }
                        }
                        td class="nhsuk-table__cell" {
                            (delivery_tag(x))
                            @if let Some(e) = x.delivery.as_ref().and_then(|d| d.last_error.as_ref()) { br; span class="nhsuk-body-s" { (e) } }
                        }
                        td class="nhsuk-table__cell" {
                            @if writes(cx) && x.kind != NoticeKind::Withdrawal && x.withdrawn_by.is_none() {
                                a href={ (base(encounter)) "/withdraw?notice=" (enc(&x.id)) } data-testid="withdraw" { "Withdraw" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A stored instant as the trust's local time.
fn local(s: &str) -> String {
    local_text(&Timescales::default(), s)
}

fn value<'a>(f: &'a Form, k: &str, default: &'a str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or(default)
}

fn notice_form(
    cx: &Cx,
    case: &Case,
    kind: NoticeKind,
    f: &Form,
    error: Option<&(String, String)>,
) -> Markup {
    let err = |k: &str| error.filter(|(f, _)| f == k).map(|(_, m)| m.as_str());
    let assessment = in_force(&case.notices, NoticeKind::Assessment);
    let las: Vec<(String, String)> =
        std::iter::once((String::new(), "Choose a local authority".to_owned()))
            .chain(case.local_authorities.iter().map(|l| {
                let how = l
                    .routes
                    .iter()
                    .map(|r| r.channel.label())
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    l.id.clone(),
                    if how.is_empty() {
                        format!("{} (no route set)", l.name)
                    } else {
                        format!("{} ({how})", l.name)
                    },
                )
            }))
            .collect();
    let la_default = case.default_local_authority.clone().unwrap_or_default();
    let (action, title, consulted) = match kind {
        NoticeKind::Discharge => (
            "discharge",
            "Give the discharge notice",
            "The patient (and their carer, where appropriate) has been told the proposed discharge day",
        ),
        _ => (
            "assessment",
            "Give the assessment notice",
            "The patient (and their carer, where feasible) was consulted before this notice",
        ),
    };
    html! {
        h2 { (title) }
        @if kind == NoticeKind::Discharge {
            @if let Some(a) = assessment {
                div class="nhsuk-inset-text" data-testid="due" {
                    p { "The assessment notice to " (a.local_authority_name) " was given " (local(&a.given_at)) "."
                        @if let Some(e) = &a.earliest_discharge { " The earliest discharge day it allows is " strong { (e) } "." }
                        @if let Some(l) = &a.latest_discharge_notice { " For discharge on " (a.discharge_day.as_deref().unwrap_or("the expected day")) ", give the discharge notice by " strong { (local(l)) } "." } }
                }
            }
        }
        form method="post" action={ (base(&case.encounter)) "/" (action) } novalidate {
            (layout::csrf(cx))
            (layout::select("local-authority", "Local authority", &las, value(f, "local-authority", &la_default), err("local-authority")))
            (layout::input(&Field {
                hint: Some(if kind == NoticeKind::Discharge { "The proposed discharge day, for example 4 12 2026" } else { "The likely discharge day, if known, for example 4 12 2026" }),
                value: value(f, "discharge-day", ""),
                error: err("discharge-day"),
                kind: "date",
                width: "nhsuk-input--width-10",
                ..Field::new("discharge-day", if kind == NoticeKind::Discharge { "Proposed discharge day" } else { "Likely discharge day" })
            }))
            div class={ "nhsuk-form-group" @if err("consulted").is_some() { " nhsuk-form-group--error" } } {
                @if let Some(e) = err("consulted") {
                    span class="nhsuk-error-message" id="consulted-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                }
                div class="nhsuk-checkboxes" {
                    div class="nhsuk-checkboxes__item" {
                        input class="nhsuk-checkboxes__input" id="consulted" name="consulted" type="checkbox" value="yes" checked[f.get("consulted").is_some()]
                            aria-describedby=[err("consulted").map(|_| "consulted-error")];
                        label class="nhsuk-label nhsuk-checkboxes__label" for="consulted" { (consulted) }
                    }
                }
            }
            @if kind == NoticeKind::Assessment {
                (layout::radios("objection", "Did the patient or their carer object to the notice?", &OBJECTIONS, value(f, "objection", ""), err("objection")))
                (layout::radios("chc", "NHS continuing healthcare", &CHC, value(f, "chc", ""), err("chc")))
            }
            (layout::input(&Field { value: value(f, "contact-name", ""), error: err("contact-name"), ..Field::new("contact-name", "Contact at the hospital (name)") }))
            (layout::input(&Field { value: value(f, "contact-phone", ""), error: err("contact-phone"), kind: "tel", width: "nhsuk-input--width-20", ..Field::new("contact-phone", "Contact telephone") }))
            (layout::input(&Field { value: value(f, "contact-email", ""), error: err("contact-email"), kind: "email", ..Field::new("contact-email", "Contact email") }))
            @if kind == NoticeKind::Discharge {
                div class={ "nhsuk-form-group" @if err("override-reason").is_some() { " nhsuk-form-group--error" } } {
                    label class="nhsuk-label" for="override-reason" { "Reason to give it short of the timescales (only if it is)" }
                    @if let Some(e) = err("override-reason") {
                        span class="nhsuk-error-message" id="override-reason-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                    }
                    textarea class={ "nhsuk-textarea" @if err("override-reason").is_some() { " nhsuk-textarea--error" } } id="override-reason" name="override-reason" rows="3"
                        aria-describedby=[err("override-reason").map(|_| "override-reason-error")] { (value(f, "override-reason", "")) }
                }
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid={ "give-" (action) } { (title) }
        }
    }
}

fn case_body(
    cx: &Cx,
    case: &Case,
    f: &Form,
    error: Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    let assessment = in_force(&case.notices, NoticeKind::Assessment);
    html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(&case.patient.id)), "Back to the patient"))
        @if let Some(d) = done { (layout::success(d)) }
        @if let Some((k, m)) = &error { (layout::error_summary(&[(k.clone(), m.clone())])) }
        h1 { "Social care notices" }
        // The patient banner (`chart::banner`, with the patient's alerts).
        div data-testid="patient" {
            (crate::chart::patient_banner(cx, &case.patient.id))
            p class="nhsuk-body-s" { (case.patient.name) " · " (case.ward.as_deref().unwrap_or("No ward recorded")) }
        }
        p { "For a patient not likely to be safe to discharge without care and support: the assessment notice tells the local authority, then the discharge notice gives the proposed discharge day. Each is sent as a document over the local authority's route (MESH or email) and tracked. "
            "The statutory scheme (Care Act 2014 Schedule 3) was repealed in England from 1 July 2022; the trust's timescales table applies." }
        @if case.notices.is_empty() { p data-testid="no-notices" { "No notice has been given for this admission." } }
        @else { (notices_table(&case.notices, &case.encounter, cx)) }
        @if writes(cx) && case.in_hospital {
            @if assessment.is_some() { (notice_form(cx, case, NoticeKind::Discharge, f, error.as_ref())) }
            @else { (notice_form(cx, case, NoticeKind::Assessment, f, error.as_ref())) }
        }
    }
}

fn load(cx: &Cx, id: &str) -> Result<Case, CareActError> {
    care_act::case(&cx.svc, cx.access(), id)
}

/// `GET /ui/encounters/{id}/social-care`.
pub(crate) async fn case_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match q.get("done").map(String::as_str) {
            Some("assessment") => {
                Some("Assessment notice given: it is queued to the local authority.")
            }
            Some("discharge") => {
                Some("Discharge notice given: it is queued to the local authority.")
            }
            Some("withdrawal") => {
                Some("Notice withdrawn: the withdrawal is queued to the local authority.")
            }
            _ => None,
        };
        match load(cx, &id) {
            Ok(c) => layout::page(
                cx,
                "Social care notices",
                Nav::None,
                case_body(cx, &c, &Form::new(), None, done),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn input_of(f: &Form) -> NoticeInput {
    let g = |k: &str| f.get(k).cloned().unwrap_or_default();
    NoticeInput {
        local_authority: g("local-authority"),
        discharge_day: g("discharge-day"),
        consulted: f.get("consulted").is_some(),
        objection: g("objection"),
        chc: g("chc"),
        contact_name: g("contact-name"),
        contact_phone: g("contact-phone"),
        contact_email: g("contact-email"),
        override_reason: g("override-reason"),
    }
}

fn again(cx: &Cx, id: &str, f: &Form, e: CareActError) -> Response {
    let (k, m) = match e {
        CareActError::Field(k, m) => (k, m),
        CareActError::Conflict(m) => ("local-authority".to_owned(), m),
        e => return refusal(&e),
    };
    match load(cx, id) {
        Ok(c) => layout::page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            cx,
            "Social care notices",
            Nav::None,
            case_body(cx, &c, f, Some((k, m)), None),
        ),
        Err(e) => refusal(&e),
    }
}

fn give_post(cx: &Cx, id: &str, kind: NoticeKind, f: &Form) -> Response {
    let t = Timescales::default();
    let now = cx.svc.now();
    match care_act::give(&cx.svc, cx.access(), kind, id, &input_of(f), &t, now) {
        Ok(_) => see_other(&format!("{}?done={}", base(id), kind.code())),
        Err(e) => again(cx, id, f, e),
    }
}

/// `POST /ui/encounters/{id}/social-care/assessment`.
pub(crate) async fn assessment_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        give_post(cx, &id, NoticeKind::Assessment, &f)
    })
    .await
}

/// `POST /ui/encounters/{id}/social-care/discharge`.
pub(crate) async fn discharge_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        give_post(cx, &id, NoticeKind::Discharge, &f)
    })
    .await
}

fn withdraw_body(cx: &Cx, id: &str, notice: &str, reason: &str, error: Option<&str>) -> Markup {
    html! {
        (layout::back_link(&base(id), "Back to the notices"))
        @if let Some(e) = error { (layout::error_summary(&[("reason".to_owned(), e.to_owned())])) }
        h1 { "Withdraw the notice" }
        p { "A withdrawal notice goes to the same local authority, the same way." }
        form method="post" action={ (base(id)) "/withdraw" } novalidate {
            (layout::csrf(cx))
            input type="hidden" name="notice" value=(notice);
            div class={ "nhsuk-form-group" @if error.is_some() { " nhsuk-form-group--error" } } {
                label class="nhsuk-label" for="reason" { "Why is it withdrawn?" }
                @if let Some(e) = error {
                    span class="nhsuk-error-message" id="reason-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                }
                textarea class={ "nhsuk-textarea" @if error.is_some() { " nhsuk-textarea--error" } } id="reason" name="reason" rows="3"
                    aria-describedby=[error.map(|_| "reason-error")] { (reason) }
            }
            button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" data-testid="confirm-withdraw" { "Withdraw the notice" }
        }
    }
}

/// `GET /ui/encounters/{id}/social-care/withdraw?notice=…`.
pub(crate) async fn withdraw_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let notice = q.get("notice").cloned().unwrap_or_default();
        layout::page(
            cx,
            "Withdraw the notice",
            Nav::None,
            withdraw_body(cx, &id, &notice, "", None),
        )
    })
    .await
}

/// `POST /ui/encounters/{id}/social-care/withdraw`.
pub(crate) async fn withdraw_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let notice = f.get("notice").cloned().unwrap_or_default();
        let reason = f.get("reason").cloned().unwrap_or_default();
        match care_act::withdraw(&cx.svc, cx.access(), &notice, &reason, cx.svc.now()) {
            Ok(_) => see_other(&format!("{}?done=withdrawal", base(&id))),
            Err(CareActError::Field(_, m)) => layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                "Withdraw the notice",
                Nav::None,
                withdraw_body(cx, &id, &notice, &reason, Some(&m)),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn row_view(r: &Row) -> Markup {
    html! {
        tr class="nhsuk-table__row" data-testid="worklist-row" data-encounter=(r.encounter) {
            td class="nhsuk-table__cell" {
                a href={ "/ui/encounters/" (enc(r.encounter.trim_start_matches("Encounter/"))) "/social-care" } { (r.patient_name) }
            }
            td class="nhsuk-table__cell" { (r.ward) }
            td class="nhsuk-table__cell" { (r.local_authority) }
            td class="nhsuk-table__cell" data-testid="assessment" {
                @match &r.assessment {
                    Some(a) => { "Given " (local(&a.given_at)) br; (delivery_tag(a))
                        @if a.withdrawn_by.is_some() { " " strong class="nhsuk-tag nhsuk-tag--grey" { "Withdrawn" } }
                        @if let Some(e) = &a.earliest_discharge { br; "Earliest discharge " (e) } },
                    None => { "Not given" },
                }
            }
            td class="nhsuk-table__cell" data-testid="discharge" {
                @match &r.discharge {
                    Some(d) => { "For " (d.discharge_day.as_deref().unwrap_or("")) br; (delivery_tag(d)) },
                    None => {
                        "Not given"
                        @if let Some(l) = r.assessment.as_ref().filter(|a| a.withdrawn_by.is_none()).and_then(|a| a.latest_discharge_notice.as_ref()) { br; "Due by " (local(l)) }
                    },
                }
            }
            td class="nhsuk-table__cell" data-testid="tasks" {
                @for (_, d) in &r.tasks { strong class="nhsuk-tag nhsuk-tag--red" { "Action" } " " (d) br; }
            }
        }
    }
}

/// `GET /ui/social-care?ward=…`: the social-care worklist by ward.
pub(crate) async fn worklist_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let ward = q.get("ward").filter(|w| !w.is_empty()).cloned();
        let rows = match care_act::worklist(&cx.svc, cx.access(), None, cx.svc.now()) {
            Ok(r) => r,
            Err(e) => return refusal(&e),
        };
        let mut wards: Vec<(String, String)> = rows
            .iter()
            .filter_map(|r| Some((r.ward_id.clone()?, r.ward.clone())))
            .collect();
        wards.sort_by(|a, b| a.1.cmp(&b.1));
        wards.dedup();
        let options: Vec<(String, String)> = std::iter::once((String::new(), "All wards".to_owned())).chain(wards).collect();
        let shown: Vec<&Row> = rows
            .iter()
            .filter(|r| ward.as_ref().is_none_or(|w| r.ward_id.as_ref() == Some(w)))
            .collect();
        layout::page(
            cx,
            "Social care notices",
            Nav::None,
            html! {
                h1 { "Social care notices" }
                p { "Care Act assessment and discharge notices to local authorities from the last 60 days, with their delivery and what needs doing." }
                form method="get" action="/ui/social-care" {
                    (layout::select("ward", "Ward", &options, ward.as_deref().unwrap_or(""), None))
                    button class="nhsuk-button nhsuk-button--secondary" type="submit" data-testid="filter" { "Show" }
                }
                @if shown.is_empty() { p data-testid="empty" { "No notices." } }
                @else {
                    table class="nhsuk-table" data-testid="worklist" {
                        thead class="nhsuk-table__head" { tr {
                            th { "Patient" } th { "Ward" } th { "Local authority" } th { "Assessment notice" } th { "Discharge notice" } th { "To do" }
                        } }
                        tbody class="nhsuk-table__body" { @for r in &shown { (row_view(r)) } }
                    }
                }
            },
        )
    })
    .await
}
