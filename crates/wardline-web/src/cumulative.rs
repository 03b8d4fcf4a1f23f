//! The cumulative view of a patient's results (a table of every analyte by
//! specimen time and a trend chart per analyte, drawn on the server as SVG)
//! and the laboratory's unmatched-results worklist with its matching form.
//! Reading, charting and matching are `wardline_workflow::results::
//! {cumulative, unmatched}`; the pages only render them.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use time::Duration;
use wardline_auth::rbac::Activity;
use wardline_workflow::results::ResultsError;
use wardline_workflow::results::cumulative::{self, Cumulative, Point, Series, ValueFlag};
use wardline_workflow::results::unmatched::{self, MatchView, UnmatchedItem};

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

/// A workflow refusal or failure as a page.
fn results_error(e: &ResultsError) -> Response {
    layout::refusal_page(e.status(), &e.to_string(), "results")
}

// ------------------------------------------------------------ cumulative

/// The periods the view offers, as (query value, label, days back).
const PERIODS: [(&str, &str, Option<i64>); 4] = [
    ("3m", "Last 3 months", Some(92)),
    ("1y", "Last year", Some(366)),
    ("5y", "Last 5 years", Some(5 * 366)),
    ("all", "All results", None),
];

fn flag_tag(f: ValueFlag) -> Markup {
    let class = if f.is_critical() {
        "nhsuk-tag nhsuk-tag--red"
    } else if f.is_abnormal() {
        "nhsuk-tag nhsuk-tag--orange"
    } else {
        return html! {};
    };
    html! { " " strong class=(class) data-testid="flag" title=(f.words()) { (f.code()) span class="nhsuk-u-visually-hidden" { " (" (f.words()) ")" } } }
}

fn cell(p: Option<&Point>) -> Markup {
    match p {
        None => html! { td class="nhsuk-table__cell" {} },
        Some(p) => html! {
            td class="nhsuk-table__cell" data-flag=(p.flag.code()) {
                @if p.flag.is_critical() { strong { (value_only(p)) } } @else { (value_only(p)) }
                (flag_tag(p.flag))
                @if p.status == "corrected" || p.status == "amended" { br; span class="nhsuk-body-s" { "(" (p.status) ")" } }
                @if p.status == "preliminary" { br; span class="nhsuk-body-s" { "(preliminary)" } }
            }
        },
    }
}

/// The value without its unit (the row names the unit).
fn value_only(p: &Point) -> String {
    match p.value {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v}"),
        None => p.text.clone(),
    }
}

fn table(c: &Cumulative, id: &str, period: &str) -> Markup {
    html! {
        div class="nhsuk-table-container" {
            table class="nhsuk-table" data-testid="cumulative-table" {
                caption class="nhsuk-table__caption" { "Results by specimen time, newest first" }
                thead class="nhsuk-table__head" {
                    tr {
                        th scope="col" { "Test" }
                        th scope="col" { "Reference range" }
                        @for col in &c.columns { th scope="col" { (layout::long_date(col)) } }
                    }
                }
                tbody class="nhsuk-table__body" {
                    @for s in &c.series {
                        tr class="nhsuk-table__row" data-testid="analyte-row" data-analyte=(s.key) {
                            th scope="row" class="nhsuk-table__cell" {
                                a href={ "/ui/patients/" (enc(id)) "/results?code=" (enc(&s.key)) "&period=" (enc(period)) } { (s.display) }
                                @if let Some(u) = &s.unit { br; span class="nhsuk-body-s" { (u) } }
                            }
                            td class="nhsuk-table__cell" { (s.range_text().unwrap_or_default()) }
                            @for col in &c.columns { (cell(s.at(col))) }
                        }
                    }
                }
            }
        }
    }
}

fn chart(s: &Series) -> Markup {
    let svg = cumulative::trend_svg(s);
    html! {
        @if !svg.is_empty() {
            figure class="wl-trend-figure" data-testid="trend" data-analyte=(s.key) {
                figcaption { h3 class="nhsuk-heading-s" { (s.display) @if let Some(u) = &s.unit { " (" (u) ")" } } }
                // Built by `trend_svg`, which escapes every text it draws.
                (PreEscaped(svg))
                @if let Some(r) = s.range_text() { p class="nhsuk-body-s" { "Shaded: the reference range " (r) ". Red points are critical, amber abnormal." } }
            }
        }
    }
}

/// Every value of one analyte, newest first (its own view).
fn series_list(s: &Series) -> Markup {
    html! {
        table class="nhsuk-table" data-testid="series-table" {
            caption class="nhsuk-table__caption" { (s.display) ", every value, newest first" }
            thead class="nhsuk-table__head" { tr { th scope="col" { "Specimen taken" } th scope="col" { "Value" } th scope="col" { "Status" } } }
            tbody class="nhsuk-table__body" {
                @for p in s.points.iter().rev() {
                    tr class="nhsuk-table__row" {
                        td class="nhsuk-table__cell" { (layout::long_date(&p.at)) }
                        td class="nhsuk-table__cell" { (p.text) (flag_tag(p.flag)) }
                        td class="nhsuk-table__cell" { (p.status) }
                    }
                }
            }
        }
    }
}

/// `GET /ui/patients/{id}/results[?code=system|code][&period=3m|1y|5y|all]`.
pub(crate) async fn cumulative_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let p = match crate::patients::patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let period = q.get("period").map(String::as_str).unwrap_or("all");
        let Some(&(period, _, days)) = PERIODS.iter().find(|(k, _, _)| *k == period) else {
            return layout::error_page(
                StatusCode::BAD_REQUEST,
                "That could not be done",
                &format!("The period '{period}' is not one Wardline offers: choose 3m, 1y, 5y or all."),
            );
        };
        let code = q.get("code").map(String::as_str).filter(|c| !c.trim().is_empty());
        let now = cx.svc.now();
        let since = days.map(|d| now - Duration::days(d));
        let c = match cumulative::cumulative(&cx.svc, cx.access(), &id, code, since) {
            Ok(c) => c,
            Err(e) => return results_error(&e),
        };
        let one = code.and_then(|k| c.series.iter().find(|s| s.key == k));
        let base = format!("/ui/patients/{}/results", enc(&id));
        let body = html! {
            (layout::back_link(&format!("/ui/patients/{}", enc(&id)), "Back to the record"))
            (crate::chart::banner(&p, None))
            h2 { @if let Some(s) = one { "Results: " (s.display) } @else { "Cumulative results" } }
            form method="get" action=(base) class="nhsuk-u-margin-bottom-4" novalidate {
                @if let Some(k) = code { input type="hidden" name="code" value=(k); }
                (layout::select("period", "Show", &PERIODS.iter().map(|(k, l, _)| ((*k).to_owned(), (*l).to_owned())).collect::<Vec<_>>(), period, None))
                button class="nhsuk-button nhsuk-button--secondary" type="submit" { "Show" }
            }
            @if code.is_some() { p { a href={ (base) "?period=" (period) } { "All tests" } } }
            @if c.withheld > 0 { p data-testid="results-withheld" { (c.withheld) " results are not shown: your access does not cover them." } }
            @if c.more {
                div class="nhsuk-inset-text" data-testid="results-more" {
                    p { "Only the newest " (c.read) " results are shown. Choose a test, or a shorter period, to see older ones." }
                }
            }
            @if c.series.is_empty() {
                p data-testid="no-results" {
                    @if c.withheld > 0 { "No results you may see in this period." } @else { "No results recorded in this period." }
                }
            } @else if let Some(s) = one {
                (chart(s))
                (series_list(s))
            } @else {
                (table(&c, &id, period))
                h2 { "Trends" }
                @for s in &c.series { (chart(s)) }
            }
        };
        layout::page(cx, &format!("Results – {}", p.display_name), Nav::Patients, body)
    })
    .await
}

// ------------------------------------------------------------ unmatched

fn may_match(cx: &Cx) -> bool {
    cx.role.is_some_and(|r| r.has(Activity::LabProcess))
}

fn not_for_you(cx: &Cx) -> Response {
    layout::error_page(
        StatusCode::FORBIDDEN,
        "You do not have access",
        &format!(
            "The unmatched-results worklist is the laboratory's: your position ({}) does not include it.",
            cx.position
        ),
    )
}

fn sent(it: &UnmatchedItem) -> Markup {
    html! {
        @match &it.reported {
            Some(r) => {
                (r.display_name)
                @if let Some(b) = &r.birth_date { br; "Born " (layout::long_date(b)) }
                @for (s, v) in &it.identifiers { br; span class="nhsuk-body-s" { (identifier_label(s)) ": " (v) } }
            }
            None => { "Nothing said about the patient" }
        }
    }
}

fn identifier_label(system: &str) -> &str {
    match system {
        wardline_workflow::pmi::NHS_NUMBER_SYSTEM => "NHS number",
        s => s.rsplit('/').next().filter(|x| !x.is_empty()).unwrap_or(s),
    }
}

/// `GET /ui/results/unmatched[?page=N]`.
pub(crate) async fn worklist_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        if !may_match(cx) {
            return not_for_you(cx);
        }
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let w = match unmatched::unmatched(&cx.svc, cx.access(), page) {
            Ok(w) => w,
            Err(e) => return results_error(&e),
        };
        let body = html! {
            @if q.get("done").map(String::as_str) == Some("matched") { (layout::success("The result was filed to the patient and the requester told.")) }
            h1 { "Unmatched results" }
            p { "Results that arrived without a patient (or an order) Wardline could match with certainty. Check each against the request form or with the sender, then match it. Nothing here is in any patient's record yet." }
            @if w.items.is_empty() {
                p data-testid="no-unmatched" { "No results are waiting to be matched." }
            } @else {
                table class="nhsuk-table" data-testid="unmatched-list" {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "Report" } th scope="col" { "Received" } th scope="col" { "The sender said" } th scope="col" { "Why unmatched" } th scope="col" { span class="nhsuk-u-visually-hidden" { "Action" } } } }
                    tbody class="nhsuk-table__body" {
                        @for it in &w.items {
                            tr class="nhsuk-table__row" data-testid="unmatched-item" data-report=(it.report) {
                                td class="nhsuk-table__cell" { (it.title) br; span class="nhsuk-body-s" { (it.status) ", " (it.values) " values" } }
                                td class="nhsuk-table__cell" { (it.issued.as_deref().map(layout::long_date).unwrap_or_default()) }
                                td class="nhsuk-table__cell" { (sent(it)) }
                                td class="nhsuk-table__cell" { (it.reason.as_deref().unwrap_or("")) }
                                td class="nhsuk-table__cell" { a href={ "/ui/results/unmatched/" (enc(&it.report)) } { "Match" span class="nhsuk-u-visually-hidden" { " " (it.title) } } }
                            }
                        }
                    }
                }
            }
            @if w.withheld > 0 { p { (w.withheld) " more not shown: your access does not cover them." } }
            @if page > 0 { a href={ "/ui/results/unmatched?page=" (page - 1) } { "Previous page" } " " }
            @if w.more { a href={ "/ui/results/unmatched?page=" (page + 1) } { "Next page" } }
        };
        layout::page(cx, "Unmatched results", Nav::Laboratory, body)
    })
    .await
}

fn match_body(cx: &Cx, v: &MatchView, lookup: &str, error: Option<&str>) -> Markup {
    let it = &v.item;
    let action = format!("/ui/results/unmatched/{}", enc(&it.report));
    html! {
        (layout::back_link("/ui/results/unmatched", "Back to unmatched results"))
        h1 { "Match a result: " (it.title) }
        @if let Some(e) = error {
            div class="nhsuk-error-summary" aria-labelledby="error-summary-title" role="alert" tabindex="-1" data-testid="match-error" {
                h2 class="nhsuk-error-summary__title" id="error-summary-title" { "There is a problem" }
                div class="nhsuk-error-summary__body" { p { (e) } }
            }
        }
        dl class="nhsuk-summary-list" data-testid="reported" {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "The sender said" } dd class="nhsuk-summary-list__value" { (sent(it)) } }
            @if !it.orders.is_empty() {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Order numbers quoted" } dd class="nhsuk-summary-list__value" { @for (_, o) in &it.orders { (o) " " } } }
            }
            @if let Some(r) = &it.reason { div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Why unmatched" } dd class="nhsuk-summary-list__value" { (r) } } }
        }
        form method="get" action=(action) novalidate {
            div class="nhsuk-form-group" {
                label class="nhsuk-label" for="find" { "Look up a patient by NHS number or hospital number" }
                input class="nhsuk-input nhsuk-input--width-10" id="find" name="find" type="text" value=(lookup);
            }
            button class="nhsuk-button nhsuk-button--secondary" type="submit" { "Look up" }
        }
        h2 { "Possible patients" }
        @if v.candidates.is_empty() {
            p data-testid="no-candidates" { "No patient matches what the sender said. Look the patient up, or ask the sender." }
        }
        @for c in &v.candidates {
            section class="nhsuk-card" data-testid="candidate" data-patient=(c.patient.id) {
                div class="nhsuk-card__content" {
                    h3 class="nhsuk-card__heading" { (c.patient.display_name) }
                    p {
                        "NHS number " (crate::patients::nhs(&c.patient))
                        @if let Some(b) = &c.patient.birth_date { ", born " (layout::long_date(b)) }
                        @if let Some(h) = &c.patient.hospital_number { ", hospital number " (h) }
                    }
                    p class="nhsuk-body-s" { "Offered because: " (c.why.join("; ")) }
                    @if c.orders.is_empty() {
                        p { "This patient has no orders in Wardline. A result is filed against the request it answers: find out who asked for it, and record the request first." }
                    } @else {
                    form method="post" action=(action) novalidate {
                        (layout::csrf(cx))
                        input type="hidden" name="patient" value=(c.patient.id);
                        div class="nhsuk-form-group" {
                            fieldset class="nhsuk-fieldset" {
                                legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Which order does the result answer?" }
                                div class="nhsuk-radios" {
                                    @for (i, o) in c.orders.iter().enumerate() {
                                        @let rid = format!("order-{}-{i}", c.patient.id);
                                        div class="nhsuk-radios__item" {
                                            input class="nhsuk-radios__input" id=(rid) name="order" type="radio" value=(o.id) checked[o.quoted];
                                            label class="nhsuk-label nhsuk-radios__label" for=(rid) {
                                                (o.title) " – " (o.placer.as_deref().unwrap_or(&o.id)) " (" (o.status)
                                                @if let Some(a) = &o.authored { ", requested " (layout::long_date(a)) }
                                                ")" @if o.quoted { strong { " – the number the sender quoted" } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        button class="nhsuk-button" type="submit" data-testid="match-button" { "Match to " (c.patient.display_name) }
                    }
                    }
                }
            }
        }
    }
}

/// `GET /ui/results/unmatched/{report}[?find=…]`.
pub(crate) async fn match_page(State(ui): St, req: Req, Path(report): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        if !may_match(cx) {
            return not_for_you(cx);
        }
        let lookup = q.get("find").cloned().unwrap_or_default();
        match unmatched::candidates(&cx.svc, cx.access(), &report, Some(&lookup)) {
            Ok(v) => layout::page(
                cx,
                "Match a result",
                Nav::Laboratory,
                match_body(cx, &v, &lookup, None),
            ),
            Err(e) => results_error(&e),
        }
    })
    .await
}

/// `POST /ui/results/unmatched/{report}` (`patient`, `order`).
pub(crate) async fn match_post(
    State(ui): St,
    req: Req,
    Path(report): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f: Form| {
        if !may_match(cx) {
            return not_for_you(cx);
        }
        let patient = f.get("patient").map(|s| s.trim()).unwrap_or_default();
        let order = f.get("order").map(|s| s.trim()).filter(|s| !s.is_empty());
        let refused = |msg: String| match unmatched::candidates(&cx.svc, cx.access(), &report, None)
        {
            Ok(v) => layout::page_with(
                StatusCode::CONFLICT,
                cx,
                "Match a result",
                Nav::Laboratory,
                match_body(cx, &v, "", Some(&msg)),
            ),
            Err(e) => results_error(&e),
        };
        match unmatched::match_report(&cx.svc, cx.access(), &report, patient, order, cx.svc.now()) {
            Ok(_) => see_other("/ui/results/unmatched?done=matched"),
            Err(e @ (ResultsError::Invalid(_) | ResultsError::Conflict(_))) => {
                refused(layout::sentence(&e.to_string()))
            }
            Err(e) => results_error(&e),
        }
    })
    .await
}
