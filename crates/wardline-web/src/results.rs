//! Results pages.
//!
//! * **Inbox and result page** (this part): `/ui/results` — the signed-in
//!   clinician's results to review, critical and new first, with flags; the
//!   Team tab (critical results escalated to them as responsible
//!   consultant) and what they acknowledged; `/ui/results/{task}` — one
//!   result with its ranges and flags in words and colour, earlier values
//!   of a correction, and the acknowledgement form. Opening the page is
//!   what records that they read it (`results::open`), and acknowledgement
//!   is refused until then. Rules are `wardline_workflow::results`'.
//! * Cumulative view and unmatched worklist: below, in their own part.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_workflow::results::inbox::{OUTCOMES, PAGE_SIZE};
use wardline_workflow::results::{self, Flag, InboxPage, Queue, ResultView, ResultsError};

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

// ═══════════════ inbox and result page (results inbox owner) ═══════════════

/// A workflow refusal as a page.
fn results_error(e: &ResultsError) -> Response {
    layout::refusal_page(e.status(), e.message(), "results")
}

/// The flag as a coloured tag, in words.
fn flag_tag(flag: Flag) -> Markup {
    let (class, text) = match flag {
        Flag::Critical => ("nhsuk-tag nhsuk-tag--red", "Critical"),
        Flag::Abnormal => ("nhsuk-tag nhsuk-tag--orange", "Abnormal"),
        Flag::Normal => ("nhsuk-tag nhsuk-tag--grey", "Normal"),
    };
    html! { strong class=(class) data-testid="flag" data-flag=(flag.code()) { (text) } }
}

fn state_tag(state: &str) -> Markup {
    let (class, text) = match state {
        "new" => ("nhsuk-tag nhsuk-tag--blue", "New"),
        "read" => ("nhsuk-tag nhsuk-tag--white", "Read, not acknowledged"),
        "corrected" => ("nhsuk-tag nhsuk-tag--purple", "Corrected"),
        "cancelled" => ("nhsuk-tag nhsuk-tag--grey", "Cancelled"),
        "escalated" => ("nhsuk-tag nhsuk-tag--red", "Escalated"),
        "acknowledged" => ("nhsuk-tag nhsuk-tag--green", "Acknowledged"),
        _ => ("nhsuk-tag nhsuk-tag--grey", state),
    };
    html! { strong class=(class) data-testid="state" data-state=(state) { (text) } }
}

fn me(cx: &Cx) -> Option<String> {
    cx.access()
        .agent()
        .who
        .clone()
        .filter(|w| w.starts_with("Practitioner/"))
}

fn inbox_body(cx: &Cx, queue: Queue, page: &InboxPage, done: Option<&str>) -> Markup {
    let tabs = [
        (Queue::Mine, "To review"),
        (Queue::Team, "Team (escalated)"),
        (Queue::Done, "Acknowledged"),
    ];
    html! {
        @if done == Some("acknowledged") { (layout::success("Result acknowledged.")) }
        h1 { "Results inbox" }
        p class="nhsuk-body-s" { "Signed in as " (cx.position) "." }
        nav aria-label="Results queues" {
            ul class="wl-results-tabs" {
                @for (q, label) in tabs {
                    li {
                        @if q == queue {
                            strong aria-current="page" { (label) }
                        } @else {
                            a href={ "/ui/results?queue=" (q.code()) } { (label) }
                        }
                    }
                }
            }
        }
        @if page.items.is_empty() {
            p data-testid="inbox-empty" { "Nothing here." }
        } @else {
            table class="nhsuk-table" data-testid="inbox" {
                caption class="nhsuk-table__caption nhsuk-u-visually-hidden" { "Results, critical and new first" }
                thead class="nhsuk-table__head" {
                    tr {
                        th scope="col" { "Flag" }
                        th scope="col" { "Patient" }
                        th scope="col" { "Test" }
                        th scope="col" { "State" }
                        th scope="col" { "Received" }
                    }
                }
                tbody class="nhsuk-table__body" {
                    @for i in &page.items {
                        tr class="nhsuk-table__row" data-testid="inbox-row" data-task=(i.task) data-report=(i.report) data-flag=(i.flag.code()) data-state=(i.state) {
                            td class="nhsuk-table__cell" { (flag_tag(i.flag)) }
                            td class="nhsuk-table__cell" {
                                (i.patient_name)
                                @if let Some(n) = &i.nhs_number { br; span class="nhsuk-body-s" { "NHS " (n) } }
                            }
                            td class="nhsuk-table__cell" {
                                a href={ "/ui/results/" (enc(&i.task)) } data-testid="open-result" { (i.title) }
                            }
                            td class="nhsuk-table__cell" {
                                (state_tag(&i.state))
                                @if i.escalated { " " strong class="nhsuk-tag nhsuk-tag--red" { "Escalated to consultant" } }
                            }
                            td class="nhsuk-table__cell" { (layout::long_date(&i.at)) }
                        }
                    }
                }
            }
            @if page.withheld > 0 { p { (page.withheld) " more not shown: your access does not cover them." } }
            nav class="nhsuk-pagination" role="navigation" aria-label="Pagination" {
                ul class="nhsuk-list nhsuk-pagination__list" {
                    @if page.page > 1 {
                        li class="nhsuk-pagination-item--previous" {
                            a class="nhsuk-pagination__link nhsuk-pagination__link--prev" href={ "/ui/results?queue=" (queue.code()) "&page=" (page.page - 1) } { "Previous" }
                        }
                    }
                    @if page.more {
                        li class="nhsuk-pagination-item--next" {
                            a class="nhsuk-pagination__link nhsuk-pagination__link--next" href={ "/ui/results?queue=" (queue.code()) "&page=" (page.page + 1) } { "Next" }
                        }
                    }
                }
            }
        }
        p class="nhsuk-body-s" { (PAGE_SIZE) " per page." }
    }
}

/// `GET /ui/results`: the signed-in clinician's inbox.
pub(crate) async fn inbox_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let Some(owner) = me(cx) else {
            return layout::error_page(
                StatusCode::FORBIDDEN,
                "No results inbox",
                "A results inbox belongs to a clinician on record; your sign-in is not linked to one.",
            );
        };
        let Some(queue) = Queue::parse(q.get("queue").map(String::as_str).unwrap_or("")) else {
            return layout::error_page(
                StatusCode::BAD_REQUEST,
                "Not found",
                "There is no such queue: choose To review, Team or Acknowledged.",
            );
        };
        let page = q
            .get("page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1);
        match results::inbox_queue(&cx.svc, cx.access(), &owner, queue, page) {
            Ok(p) => layout::page(
                cx,
                "Results inbox",
                Nav::Results,
                inbox_body(cx, queue, &p, q.get("done").map(String::as_str)),
            ),
            Err(e) => results_error(&e),
        }
    })
    .await
}

fn result_body(cx: &Cx, v: &ResultView, form: &Form, error: Option<&(String, String)>) -> Markup {
    let err = |k: &str| error.filter(|(f, _)| f == k).map(|(_, m)| m.as_str());
    html! {
        (layout::back_link("/ui/results", "Back to the inbox"))
        span class="nhsuk-caption-l" data-testid="result-patient" {
            (v.patient_name)
            @if let Some(n) = &v.nhs_number { " – NHS " (n) }
        }
        h1 { (v.title) " " (flag_tag(v.flag)) }
        @if let Some(e) = error { (layout::error_summary(std::slice::from_ref(e))) }
        dl class="nhsuk-summary-list" {
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Report status" }
                dd class="nhsuk-summary-list__value" data-testid="report-status" { (v.status) }
            }
            @if let Some(i) = &v.issued {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Issued" }
                    dd class="nhsuk-summary-list__value" { (layout::long_date(i)) }
                }
            }
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "In your inbox" }
                dd class="nhsuk-summary-list__value" { (state_tag(&v.state)) }
            }
            @if !v.read_by.is_empty() {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Read by" }
                    dd class="nhsuk-summary-list__value" data-testid="read-by" {
                        @for (who, when) in &v.read_by { (who) " at " (layout::long_date(when)) br; }
                    }
                }
            }
        }
        @if let Some(at) = &v.escalated {
            div class="nhsuk-warning-callout" data-testid="escalated" {
                h2 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Escalated" } }
                p { "Not acknowledged in time: escalated to the responsible consultant at " (layout::long_date(at)) "." }
            }
        }
        @if !v.notes.is_empty() {
            div class="nhsuk-inset-text" data-testid="result-notes" {
                span class="nhsuk-u-visually-hidden" { "Information: " }
                @for n in &v.notes { p { (n) } }
            }
        }
        table class="nhsuk-table" data-testid="observations" {
            caption class="nhsuk-table__caption" { "Results" }
            thead class="nhsuk-table__head" {
                tr {
                    th scope="col" { "Test" }
                    th scope="col" { "Result" }
                    th scope="col" { "Reference range" }
                    th scope="col" { "Flag" }
                    th scope="col" { "Earlier value" }
                }
            }
            tbody class="nhsuk-table__body" {
                @for o in &v.observations {
                    tr class="nhsuk-table__row" data-testid="observation" data-flag=(o.flag.code()) {
                        td class="nhsuk-table__cell" { (o.name) }
                        td class="nhsuk-table__cell" {
                            @if o.flag == Flag::Normal { (o.value) } @else { strong { (o.value) } }
                        }
                        td class="nhsuk-table__cell" { (o.range.as_deref().unwrap_or("—")) }
                        td class="nhsuk-table__cell" {
                            @if let Some(w) = &o.flag_words {
                                strong class={ "nhsuk-tag " (match o.flag { Flag::Critical => "nhsuk-tag--red", Flag::Abnormal => "nhsuk-tag--orange", Flag::Normal => "nhsuk-tag--grey" }) } data-testid="flag-words" {
                                    (o.flags.join(", ")) " – " (w)
                                }
                            } @else { "—" }
                        }
                        td class="nhsuk-table__cell" data-testid="earlier" { (o.earlier.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        @if let Some(c) = &v.conclusion { h2 { "Conclusion" } p data-testid="conclusion" { (c) } }
        p { a href={ "/ui/patients/" (enc(&v.patient)) "/results" } data-testid="cumulative-link" { "See this patient's cumulative results" } }
        @if let Some((outcome, by, at)) = &v.acknowledged {
            div class="nhsuk-inset-text" data-testid="acknowledged" {
                p { "Acknowledged by " (by) " at " (layout::long_date(at)) ": " (outcome) "." }
            }
        }
        @if v.may_acknowledge {
            h2 { "Acknowledge" }
            form method="post" action={ "/ui/results/" (enc(&v.task)) "/acknowledge" } novalidate {
                (layout::csrf(cx))
                (layout::radios("outcome", "Outcome", &OUTCOMES, form.get("outcome").map(String::as_str).unwrap_or(""), err("outcome")))
                div class={ "nhsuk-form-group" @if err("note").is_some() { " nhsuk-form-group--error" } } {
                    label class="nhsuk-label" for="note" { "Note (what is to be done)" }
                    @if let Some(e) = err("note") {
                        span class="nhsuk-error-message" id="note-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                    }
                    textarea class={ "nhsuk-textarea" @if err("note").is_some() { " nhsuk-textarea--error" } } id="note" name="note" rows="3"
                        aria-describedby=[err("note").map(|_| "note-error")] {
                        (form.get("note").map(String::as_str).unwrap_or(""))
                    }
                }
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="acknowledge" { "Acknowledge result" }
            }
        }
    }
}

/// `GET /ui/results/{task}`: opens the result (recorded as read when it is
/// the caller's to acknowledge).
pub(crate) async fn result_page(State(ui): St, req: Req, Path(task): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        match results::open(&cx.svc, cx.access(), &task, cx.svc.now()) {
            Ok(v) => layout::page(
                cx,
                &v.title.clone(),
                Nav::Results,
                result_body(cx, &v, &Form::new(), None),
            ),
            Err(e) => results_error(&e),
        }
    })
    .await
}

/// `POST /ui/results/{task}/acknowledge`.
pub(crate) async fn acknowledge_post(
    State(ui): St,
    req: Req,
    Path(task): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let outcome = f.get("outcome").map(|s| s.trim()).unwrap_or("");
        let note = f.get("note").map(String::as_str);
        let field_error = if outcome.is_empty() {
            Some(("outcome".to_owned(), "Choose an outcome".to_owned()))
        } else {
            match results::acknowledge(&cx.svc, cx.access(), &task, outcome, note, cx.svc.now()) {
                Ok(()) => return see_other("/ui/results?done=acknowledged"),
                Err(ResultsError::Invalid(m)) => {
                    let field = if m.starts_with("note") {
                        "note"
                    } else {
                        "outcome"
                    };
                    Some((
                        field.to_owned(),
                        layout::sentence(m.trim_start_matches("note: ")),
                    ))
                }
                Err(e) => return results_error(&e),
            }
        };
        // Shown again with the error (open again: the view, already read).
        match results::open(&cx.svc, cx.access(), &task, cx.svc.now()) {
            Ok(v) => layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                &v.title.clone(),
                Nav::Results,
                result_body(cx, &v, &f, field_error.as_ref()),
            ),
            Err(e) => results_error(&e),
        }
    })
    .await
}

// ═══════════════ end of inbox and result page ═══════════════
