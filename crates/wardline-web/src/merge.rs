//! Possible duplicates: the review queue, merge (with a side-by-side check
//! first) and unmerge.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_workflow::pmi::{self, PatientSummary};

use crate::layout::{self, Nav};
use crate::patients::{nhs, patient_or_404};
use crate::{Req, St, enc, see_other};

fn side_by_side(a: &PatientSummary, b: &PatientSummary, a_title: &str, b_title: &str) -> Markup {
    let row = |label: &str, x: String, y: String| {
        let differs = x != y;
        html! {
            tr class="nhsuk-table__row" {
                th class="nhsuk-table__header" scope="row" { (label) }
                td class="nhsuk-table__cell" { (x) }
                td class="nhsuk-table__cell" { (y) @if differs { " " strong class="nhsuk-tag nhsuk-tag--yellow" { "differs" } } }
            }
        }
    };
    let d = |p: &PatientSummary| {
        p.birth_date
            .as_deref()
            .map(layout::long_date)
            .unwrap_or_default()
    };
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        table class="nhsuk-table" data-testid="side-by-side" {
            thead class="nhsuk-table__head" {
                tr { th scope="col" { span class="nhsuk-u-visually-hidden" { "Field" } } th scope="col" { (a_title) } th scope="col" { (b_title) } }
            }
            tbody class="nhsuk-table__body" {
                (row("Name", a.display_name.clone(), b.display_name.clone()))
                (row("NHS number", nhs(a), nhs(b)))
                (row("Date of birth", d(a), d(b)))
                (row("Gender", crate::patients::gender_label(a.gender.as_deref()).to_owned(), crate::patients::gender_label(b.gender.as_deref()).to_owned()))
                (row("Address", o(&a.address), o(&b.address)))
                (row("Postcode", o(&a.postcode), o(&b.postcode)))
                (row("Hospital number", o(&a.hospital_number), o(&b.hospital_number)))
            }
        }
    }
}

/// The band's tag: probable and possible look different, so a reviewer
/// can tell them apart at a glance.
fn band_tag(band: pmi::Band) -> Markup {
    let class = match band {
        pmi::Band::Probable => "nhsuk-tag nhsuk-tag--orange",
        pmi::Band::Possible => "nhsuk-tag nhsuk-tag--blue",
    };
    html! { strong class=(class) data-testid="band" { (band.label()) } }
}

/// Previous, the page numbers, next (the design system's numbered pagination).
fn pagination(page: usize, pages: Option<usize>, more: bool) -> Markup {
    let href = |n: usize| format!("/ui/duplicates?page={n}");
    html! {
        @if page > 1 || more {
            nav class="nhsuk-pagination nhsuk-pagination--numbered" role="navigation" aria-label="Pagination" data-testid="queue-pages" {
                @if page > 1 {
                    div class="nhsuk-pagination__previous" {
                        a class="nhsuk-link nhsuk-pagination__link" href=(href(page - 1)) rel="prev" {
                            span class="nhsuk-pagination__title" { "Previous" span class="nhsuk-u-visually-hidden" { " page" } }
                        }
                    }
                }
                @if let Some(pages) = pages {
                    ul class="nhsuk-pagination__list" {
                        @for n in 1..=pages.max(page) {
                            @if n == 1 || n == pages || n.abs_diff(page) <= 2 {
                                @if n == page {
                                    li class="nhsuk-pagination__item nhsuk-pagination__item--current" {
                                        a class="nhsuk-link nhsuk-pagination__link" href=(href(n)) aria-label={ "Page " (n) } aria-current="page" { (n) }
                                    }
                                } @else {
                                    li class="nhsuk-pagination__item" {
                                        a class="nhsuk-link nhsuk-pagination__link" href=(href(n)) aria-label={ "Page " (n) } { (n) }
                                    }
                                }
                            } @else if n.abs_diff(page) == 3 {
                                li class="nhsuk-pagination__item nhsuk-pagination__item--ellipsis" { "⋯" }
                            }
                        }
                    }
                }
                @if more {
                    div class="nhsuk-pagination__next" {
                        a class="nhsuk-link nhsuk-pagination__link" href=(href(page + 1)) rel="next" {
                            span class="nhsuk-pagination__title" { "Next" span class="nhsuk-u-visually-hidden" { " page" } }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn queue_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, |cx, q| {
        let page = match q.get("page").map(|p| p.trim().parse::<usize>()) {
            None => 1,
            Some(Ok(n)) if n >= 1 => n,
            Some(_) => {
                return layout::error_page(
                    StatusCode::BAD_REQUEST,
                    "There is no such page",
                    "The page of the queue must be a whole number from 1. Go back to the first page of possible duplicates.",
                );
            }
        };
        let queue = match pmi::review_queue(&cx.svc, cx.access(), page) {
            Ok(q) => q,
            Err(e) => return crate::fhir_error(&e),
        };
        // Not knowing when it last ran is no reason to hide the queue.
        let last = pmi::last_scan(&cx.svc).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read when the duplicate scan last ran");
            None
        });
        let pages = queue
            .total
            .map(|t| (t as usize).div_ceil(pmi::REVIEW_PAGE_SIZE).max(1));
        let first = (page - 1) * pmi::REVIEW_PAGE_SIZE + 1;
        let body = html! {
            @if let Some(n) = q.get("found") { (layout::success(&format!("Scan finished: {n} new possible duplicate{} to review.", if n == "1" { "" } else { "s" }))) }
            @if q.get("done").map(String::as_str) == Some("dismissed") { (layout::success("Marked as different people. This pair will not be raised again.")) }
            h1 { "Possible duplicates" }
            p { "Records that look like the same person. Check each pair; merge them only if you are sure." }
            p { "The strongest matches come first. " strong { "Probable" } " duplicates agree on most of what identifies a person; "
                strong { "possible" } " ones agree on much but differ on something that usually tells people apart (a first name or a date of birth), as twins or a parent and child would, or a record keyed wrongly." }
            @if let Some(l) = &last {
                p class="nhsuk-body-s" data-testid="last-scan" {
                    "Wardline checks for duplicates by itself. Last checked "
                    (layout::long_date(l.finished.get(..10).unwrap_or(&l.finished))) " at " (l.finished.get(11..16).unwrap_or("")) " UTC: "
                    (l.examined) " record" @if l.examined != 1 { "s" } ", " (l.opened) " new."
                }
            }
            div class="wl-actions" { (layout::action_button(cx, "/ui/duplicates/scan", "Look for duplicates now", "nhsuk-button--secondary")) }
            @if let Some(t) = queue.total {
                @if t > 0 {
                    p data-testid="queue-count" {
                        (t) " open review" @if t != 1 { "s" } "."
                        @if let Some(p) = pages { @if p > 1 { " Page " (page) " of " (p) ", from review " (first) "." } }
                    }
                }
            }
            @if queue.reviews.is_empty() {
                @if page == 1 {
                    p data-testid="queue-empty" { "There are no possible duplicates to review." }
                } @else {
                    p data-testid="queue-empty" { "There are no reviews on this page. " a href="/ui/duplicates" { "Go to the first page" } "." }
                }
            }
            @for r in &queue.reviews {
                div class="nhsuk-card" data-testid="review" data-band=(r.band.code()) data-score=(format!("{:.3}", r.score)) {
                    div class="nhsuk-card__content" {
                        h2 class="nhsuk-card__heading nhsuk-heading-m" {
                            (r.a.display_name) " and " (r.b.display_name)
                            " " span class="nhsuk-caption-m nhsuk-u-display-inline" { "(match " (format!("{:.0}", r.score * 100.0)) "%)" }
                        }
                        p { (band_tag(r.band)) }
                        p { (r.reasons.join(", ")) }
                        (side_by_side(&r.a, &r.b, "Record A", "Record B"))
                        div class="wl-actions" {
                            a class="nhsuk-button" href={ "/ui/merge?source=" (enc(&r.b.id)) "&target=" (enc(&r.a.id)) } { "Merge B into A" }
                            a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/merge?source=" (enc(&r.a.id)) "&target=" (enc(&r.b.id)) } { "Merge A into B" }
                            (layout::action_button(cx, &format!("/ui/duplicates/{}/dismiss", enc(&r.task_id)), "Not the same person", "nhsuk-button--secondary"))
                        }
                    }
                }
            }
            (pagination(page, pages, queue.more))
        };
        layout::page(cx, "Possible duplicates", Nav::Duplicates, body)
    })
    .await
}

pub(crate) async fn scan_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), |cx, _| {
        match pmi::scan_duplicates(&cx.svc, cx.access()) {
            Ok(n) => see_other(&format!("/ui/duplicates?found={n}")),
            Err(e) => crate::fhir_error(&e),
        }
    })
    .await
}

pub(crate) async fn dismiss_post(
    State(ui): St,
    req: Req,
    Path(task): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        match pmi::dismiss_review(&cx.svc, cx.access(), &task) {
            Ok(()) => see_other("/ui/duplicates?done=dismissed"),
            Err(e) => crate::fhir_error(&e),
        }
    })
    .await
}

pub(crate) async fn confirm_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, |cx, q| {
        let (Some(source), Some(target)) = (q.get("source"), q.get("target")) else {
            return layout::error_page(
                StatusCode::BAD_REQUEST,
                "Choose two records",
                "Open a possible duplicate and choose which record to keep.",
            );
        };
        let (s, t) = match (patient_or_404(cx, source), patient_or_404(cx, target)) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        let body = html! {
            (layout::back_link("/ui/duplicates", "Back to possible duplicates"))
            h1 { "Merge these records?" }
            div class="nhsuk-warning-callout" {
                h2 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Check before you merge" } }
                p { "Everything recorded against the record being retired will move to the record being kept. The retired record will point to the one kept. A merge can be undone from the retired record." }
            }
            (side_by_side(&s, &t, "Retire this record", "Keep this record"))
            form method="post" action="/ui/merge" novalidate {
                (layout::csrf(cx))
                input type="hidden" name="source" value=(s.id);
                input type="hidden" name="target" value=(t.id);
                button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" { "Merge records" }
            }
        };
        layout::page(cx, "Merge records", Nav::Duplicates, body)
    })
    .await
}

pub(crate) async fn merge_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), |cx, f| {
        let (Some(source), Some(target)) = (f.get("source"), f.get("target")) else {
            return layout::error_page(
                StatusCode::BAD_REQUEST,
                "Choose two records",
                "Open a possible duplicate and choose which record to keep.",
            );
        };
        match pmi::merge(&cx.svc, cx.access(), source, target) {
            Ok(out) => see_other(&format!("/ui/patients/{}?done=merged", enc(&out.target))),
            Err(e) => crate::fhir_error(&e),
        }
    })
    .await
}

pub(crate) async fn unmerge_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        match pmi::unmerge(&cx.svc, cx.access(), &id) {
            Ok(out) => see_other(&format!("/ui/patients/{}?done=unmerged", enc(&out.source))),
            Err(e) => crate::fhir_error(&e),
        }
    })
    .await
}
