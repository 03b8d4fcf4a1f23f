//! The pathology laboratory's and radiology department's pages, over
//! `wardline_workflow::laboratory` (which holds every rule):
//!
//! * `/ui/lab` — reception: a scan box (autofocus; a barcode scanner types
//!   the label's number and Enter) that receives the tube and shows its
//!   patient to check against the label; the bench worklist of reports not
//!   yet authorised; an analyser file to paste.
//! * `/ui/lab/reports/{id}` — one report: enter results, validate (with the
//!   failed delta checks to confirm with a reason), authorise.
//! * `/ui/lab/turnaround` — received → authorised per test, with a chart.
//! * `/ui/radiology` — imaging requests with the referrer's answers, and
//!   the IR(ME)R justification.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use time::OffsetDateTime;
use wardline_workflow::laboratory::{self, LabError, LabReport, radiology};
use wardline_workflow::orders::catalogue::{self, Catalogue};

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

fn get<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

/// A workflow refusal as a page.
fn lab_error(e: &LabError) -> Response {
    layout::refusal_page(e.status(), &e.message, "laboratory")
}

fn load_catalogue(cx: &Cx) -> Result<Catalogue, Response> {
    catalogue::load(&cx.svc).map_err(|e| crate::fhir_error(&e))
}

fn flag_words(flag: Option<&str>) -> Option<(&'static str, &'static str)> {
    Some(match flag? {
        "HH" => ("nhsuk-tag nhsuk-tag--red", "Critical high"),
        "LL" => ("nhsuk-tag nhsuk-tag--red", "Critical low"),
        "H" => ("nhsuk-tag nhsuk-tag--orange", "High"),
        "L" => ("nhsuk-tag nhsuk-tag--orange", "Low"),
        "N" => ("nhsuk-tag nhsuk-tag--grey", "Normal"),
        _ => return None,
    })
}

fn stage_tag(stage: &str) -> Markup {
    let (class, text) = match stage {
        "received" => ("nhsuk-tag nhsuk-tag--blue", "Received"),
        "entered" => ("nhsuk-tag nhsuk-tag--yellow", "Results entered"),
        "validated" => ("nhsuk-tag nhsuk-tag--green", "Validated: to authorise"),
        _ => ("nhsuk-tag nhsuk-tag--grey", stage),
    };
    html! { strong class=(class) { (text) } }
}

// ---------------------------------------------------------------- reception

fn lab_home(cx: &Cx, q: &Form, error: Option<(&str, &str)>, csv: &str) -> Result<Markup, LabError> {
    let (items, withheld) = laboratory::worklist(&cx.svc, cx.access())?;
    let received = get(q, "received");
    let just = items
        .iter()
        .filter(|i| !received.is_empty() && i.barcode.as_deref() == Some(received))
        .collect::<Vec<_>>();
    let err = |k: &str| error.filter(|(f, _)| *f == k).map(|(_, m)| m);
    Ok(html! {
        h1 { "Laboratory" }
        @if let Some((field, msg)) = error { (layout::error_summary(&[(field.to_owned(), msg.to_owned())])) }
        @if let Some(first) = just.first() {
            div class="nhsuk-notification-banner nhsuk-notification-banner--success" role="alert" data-testid="received" {
                div class="nhsuk-notification-banner__header" {
                    h2 class="nhsuk-notification-banner__title" { "Received" }
                }
                div class="nhsuk-notification-banner__content" {
                    p class="nhsuk-notification-banner__heading" {
                        "Specimen " (received) " received. Check the label is for "
                        strong data-testid="received-patient" { (first.patient_name) }
                        @if let Some(n) = &first.nhs_number { ", NHS number " (n) }
                        "."
                    }
                    ul { @for i in &just { li { a href={ "/ui/lab/reports/" (enc(&i.report)) } { (i.accession) " — " (i.title) } } } }
                }
            }
        }
        @if get(q, "done") == "imported" {
            (layout::success(&format!("The analyser file was entered ({} results).", get(q, "rows"))))
        }
        form method="post" action="/ui/lab/receive" novalidate {
            (layout::csrf(cx))
            div class={ "nhsuk-form-group" @if err("barcode").is_some() { " nhsuk-form-group--error" } } {
                label class="nhsuk-label nhsuk-label--m" for="barcode" { "Receive a specimen" }
                div class="nhsuk-hint" id="barcode-hint" { "Scan the label's barcode, or type the number under it." }
                @if let Some(e) = err("barcode") {
                    span class="nhsuk-error-message" id="barcode-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                }
                input class={ "nhsuk-input nhsuk-input--width-20" @if err("barcode").is_some() { " nhsuk-input--error" } }
                    id="barcode" name="barcode" type="text" autocomplete="off" autofocus spellcheck="false"
                    aria-describedby="barcode-hint";
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Receive" }
        }
        h2 { "On the bench" }
        @if withheld > 0 { p class="nhsuk-body-s" { (withheld) " report(s) are not shown: your position has no access to them." } }
        @if items.is_empty() {
            p { "Nothing is waiting: no received specimen has results to enter, validate or authorise." }
        } @else {
            table class="nhsuk-table" data-testid="worklist" {
                thead class="nhsuk-table__head" { tr class="nhsuk-table__row" {
                    th class="nhsuk-table__header" { "Accession" } th class="nhsuk-table__header" { "Test" }
                    th class="nhsuk-table__header" { "Patient" } th class="nhsuk-table__header" { "Specimen" }
                    th class="nhsuk-table__header" { "Stage" }
                } }
                tbody class="nhsuk-table__body" {
                    @for i in &items {
                        tr class="nhsuk-table__row" {
                            td class="nhsuk-table__cell" { a href={ "/ui/lab/reports/" (enc(&i.report)) } { (i.accession) } }
                            td class="nhsuk-table__cell" { (i.title) @if i.critical { " " strong class="nhsuk-tag nhsuk-tag--red" { "Critical" } } }
                            td class="nhsuk-table__cell" { (i.patient_name) @if let Some(n) = &i.nhs_number { br; span class="nhsuk-body-s" { (n) } } }
                            td class="nhsuk-table__cell" { (i.barcode.as_deref().unwrap_or("")) @if let Some(r) = &i.received { br; span class="nhsuk-body-s" { "received " (r) } } }
                            td class="nhsuk-table__cell" { (stage_tag(i.stage)) }
                        }
                    }
                }
            }
        }
        h2 { "Analyser file" }
        form method="post" action="/ui/lab/import" novalidate {
            (layout::csrf(cx))
            div class={ "nhsuk-form-group" @if err("csv").is_some() { " nhsuk-form-group--error" } } {
                label class="nhsuk-label" for="csv" { "Paste the analyser's CSV export" }
                div class="nhsuk-hint" id="csv-hint" { "One result per line: specimen barcode, analyte code, value, unit. The whole file is entered, or none of it." }
                @if let Some(e) = err("csv") {
                    span class="nhsuk-error-message" id="csv-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                }
                textarea class="nhsuk-textarea" id="csv" name="csv" rows="5" aria-describedby="csv-hint" { (csv) }
            }
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Enter the file's results" }
        }
        @if cx.role.is_some_and(|r| r.has(wardline_auth::rbac::Activity::LabAuthorise)) {
            p { a href="/ui/lab/turnaround" { "Turnaround times" } }
        }
    })
}

pub(crate) async fn lab_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| match lab_home(cx, &q, None, "") {
        Ok(body) => layout::page(cx, "Laboratory", Nav::Laboratory, body),
        Err(e) => lab_error(&e),
    })
    .await
}

fn home_again(cx: &Cx, field: &str, msg: &str, csv: &str) -> Response {
    match lab_home(cx, &Form::new(), Some((field, msg)), csv) {
        Ok(body) => layout::page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            cx,
            "Laboratory",
            Nav::Laboratory,
            body,
        ),
        Err(e) => lab_error(&e),
    }
}

pub(crate) async fn receive_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(
        req,
        Some(&body),
        move |cx, f| match laboratory::receive_specimen(&cx.svc, cx.access(), get(&f, "barcode")) {
            Ok(r) => see_other(&format!("/ui/lab?received={}", enc(&r.barcode))),
            Err(e) if matches!(e.status(), 400 | 404 | 409) => {
                home_again(cx, "barcode", &layout::sentence(&e.message), "")
            }
            Err(e) => lab_error(&e),
        },
    )
    .await
}

pub(crate) async fn import_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let cat = match load_catalogue(cx) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let csv = f.get("csv").cloned().unwrap_or_default();
        match laboratory::import_csv(&cx.svc, cx.access(), &cat, &csv) {
            Ok(r) => see_other(&format!("/ui/lab?done=imported&rows={}", r.rows)),
            Err(e) if matches!(e.status(), 400 | 404 | 409) => {
                home_again(cx, "csv", &layout::sentence(&e.message), &csv)
            }
            Err(e) => lab_error(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- a report

fn report_body(cx: &Cx, r: &LabReport, f: &Form, error: Option<(&str, &str)>) -> Markup {
    let err = |k: &str| error.filter(|(x, _)| *x == k).map(|(_, m)| m);
    let open = !r.is_authorised();
    let action = |what: &str| format!("/ui/lab/reports/{}/{what}", enc(&r.id));
    let done = get(f, "done");
    html! {
        (layout::back_link("/ui/lab", "Back to the laboratory"))
        h1 { (r.title) " " span class="nhsuk-caption-l" { "Accession " (r.accession) } }
        @match done {
            "entered" => (layout::success("Results entered.")),
            "validated" => (layout::success("Technically validated: ready for authorisation by another person.")),
            "authorised" => (layout::success("Authorised and released to the requester.")),
            _ => {}
        }
        @if let Some((field, msg)) = error { (layout::error_summary(&[(field.to_owned(), msg.to_owned())])) }
        dl class="nhsuk-summary-list" data-testid="report-summary" {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Patient" }
                dd class="nhsuk-summary-list__value" { (r.patient.display_name)
                    @if let Some(n) = &r.patient.nhs_number { " · NHS number " (n) }
                    @if let Some(b) = &r.patient.birth_date { " · born " (layout::long_date(b)) } } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Specimen" }
                dd class="nhsuk-summary-list__value" { (r.barcode.as_deref().unwrap_or("")) @if let Some(c) = &r.container { " · " (c) } @if let Some(t) = &r.received { " · received " (t) } } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Requested by" }
                dd class="nhsuk-summary-list__value" { (r.requester.as_deref().unwrap_or("—")) @if let Some(p) = &r.priority { " · " (p) } } }
            @if let Some(d) = &r.clinical_details {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Clinical details" } dd class="nhsuk-summary-list__value" { (d) } }
            }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Status" }
                dd class="nhsuk-summary-list__value" data-testid="report-status" { (r.status)
                    @if let Some(v) = &r.validated { " · validated by " (v.name) " at " (v.at) }
                    @if let Some(a) = &r.authorised { " · authorised by " (a.name) " at " (a.at) } } }
        }
        form method="post" action=(action("results")) novalidate {
            (layout::csrf(cx))
            table class="nhsuk-table" data-testid="analytes" {
                thead class="nhsuk-table__head" { tr class="nhsuk-table__row" {
                    th class="nhsuk-table__header" { "Analyte" } th class="nhsuk-table__header" { "Result" }
                    th class="nhsuk-table__header" { "Reference range" } th class="nhsuk-table__header" { "Flag" }
                } }
                tbody class="nhsuk-table__body" {
                    @for a in &r.rows {
                        @let name = format!("value:{}", a.code);
                        tr class="nhsuk-table__row" data-analyte=(a.display) {
                            td class="nhsuk-table__cell" { label for=(name) { (a.display) } }
                            td class="nhsuk-table__cell" {
                                @if open {
                                    input class="nhsuk-input nhsuk-input--width-5" id=(name) name=(name) type="text" inputmode="decimal" autocomplete="off"
                                        value=(f.get(&name).map(String::as_str).or(a.value.as_deref()).unwrap_or(""));
                                } @else {
                                    (a.value.as_deref().unwrap_or("—"))
                                }
                                @if let Some(u) = &a.unit { " " span class="nhsuk-body-s" { (wardline_workflow::fhir::ucum_print(u)) } }
                            }
                            td class="nhsuk-table__cell" { (a.range.as_deref().unwrap_or("")) }
                            td class="nhsuk-table__cell" data-testid="flag" {
                                @if let Some((class, words)) = flag_words(a.flag.as_deref()) { strong class=(class) { (words) } }
                                @if let Some(reason) = &a.delta_confirmed { br; span class="nhsuk-body-s" { "Delta confirmed: " (reason) } }
                            }
                        }
                    }
                }
            }
            @if let Some(e) = err("results") { p class="nhsuk-error-message" { (e) } }
            @if open { button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Save results" } }
        }
        @if open && r.status == "preliminary" && r.validated.is_none() {
            h2 { "Technical validation" }
            form method="post" action=(action("validate")) novalidate {
                (layout::csrf(cx))
                @if r.deltas.is_empty() {
                    p { "No delta check failed against the patient's previous results." }
                } @else {
                    div class="nhsuk-warning-callout" data-testid="deltas" {
                        h3 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Delta check failed" } }
                        p { "Check the specimen is this patient's before validating. Give a reason for each to accept it." }
                    }
                    @for d in &r.deltas {
                        @let name = format!("reason:{}", d.code);
                        (layout::input(&layout::Field {
                            value: get(f, &name),
                            error: err("deltas"),
                            hint: Some(&d.sentence()),
                            ..layout::Field::new(&name, &format!("Reason to accept the change in {}", d.display))
                        }))
                    }
                }
                @if let Some(e) = err("validate") { p class="nhsuk-error-message" { (e) } }
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Validate" }
            }
        }
        @if open && r.validated.is_some() {
            h2 { "Authorisation" }
            p { "Authorising releases the results to the requester's inbox. Someone other than the person who validated them must authorise." }
            @if let Some(e) = err("authorise") { p class="nhsuk-error-message" { (e) } }
            (layout::action_button(cx, &action("authorise"), "Authorise and release", "nhsuk-button"))
        }
    }
}

fn show_report(
    cx: &Cx,
    id: &str,
    f: &Form,
    status: StatusCode,
    error: Option<(&str, &str)>,
) -> Response {
    let cat = match load_catalogue(cx) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match laboratory::report(&cx.svc, cx.access(), &cat, id) {
        Ok(r) => layout::page_with(
            status,
            cx,
            &format!("{} {}", r.title, r.accession),
            Nav::Laboratory,
            report_body(cx, &r, f, error),
        ),
        Err(e) => lab_error(&e),
    }
}

pub(crate) async fn report_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        show_report(cx, &id, &q, StatusCode::OK, None)
    })
    .await
}

/// Runs a bench action; a refusal is shown on the report beside `field`.
fn bench_action(
    cx: &Cx,
    id: &str,
    f: &Form,
    field: &str,
    done: &str,
    act: impl FnOnce(&Catalogue) -> Result<(), LabError>,
) -> Response {
    let cat = match load_catalogue(cx) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match act(&cat) {
        Ok(()) => see_other(&format!("/ui/lab/reports/{}?done={done}", enc(id))),
        Err(e) if matches!(e.status(), 400 | 409) => show_report(
            cx,
            id,
            f,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some((field, &layout::sentence(&e.message))),
        ),
        Err(e) => lab_error(&e),
    }
}

pub(crate) async fn results_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let values: Vec<(String, String)> = f
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("value:").map(|c| (c.to_owned(), v.clone())))
            .collect();
        bench_action(cx, &id, &f, "results", "entered", |cat| {
            laboratory::enter_results(&cx.svc, cx.access(), cat, &id, &values).map(|_| ())
        })
    })
    .await
}

pub(crate) async fn validate_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let reasons: BTreeMap<String, String> = f
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("reason:").map(|c| (c.to_owned(), v.clone())))
            .collect();
        let field = if reasons.is_empty() {
            "validate"
        } else {
            "deltas"
        };
        bench_action(cx, &id, &f, field, "validated", |cat| {
            laboratory::validate(&cx.svc, cx.access(), cat, &id, &reasons).map(|_| ())
        })
    })
    .await
}

pub(crate) async fn authorise_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        bench_action(cx, &id, &f, "authorise", "authorised", |cat| {
            laboratory::authorise(&cx.svc, cx.access(), cat, &id).map(|_| ())
        })
    })
    .await
}

// ---------------------------------------------------------------- turnaround

fn day(s: &str) -> Option<OffsetDateTime> {
    let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(d.midnight().assume_utc())
}

pub(crate) async fn turnaround_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let today = cx.svc.now().date();
        let until = match get(&q, "to") {
            "" => (today + time::Duration::days(1)).midnight().assume_utc(),
            s => match day(s) {
                Some(d) => d + time::Duration::days(1),
                None => return layout::error_page(StatusCode::BAD_REQUEST, "That could not be done", "To: give a date as YYYY-MM-DD."),
            },
        };
        let since = match get(&q, "from") {
            "" => until - time::Duration::days(7),
            s => match day(s) {
                Some(d) => d,
                None => return layout::error_page(StatusCode::BAD_REQUEST, "That could not be done", "From: give a date as YYYY-MM-DD."),
            },
        };
        match laboratory::turnaround(&cx.svc, cx.access(), since, until) {
            Ok(rows) => {
                let body = html! {
                    (layout::back_link("/ui/lab", "Back to the laboratory"))
                    h1 { "Turnaround times" }
                    p { "From the specimen's receipt to the report's authorisation, for reports authorised from "
                        (laboratory::stamp(since)) " until " (laboratory::stamp(until)) ". Percentiles by the nearest rank." }
                    form method="get" action="/ui/lab/turnaround" {
                        (layout::input(&layout::Field { kind: "date", value: get(&q, "from"), width: "nhsuk-input--width-10", ..layout::Field::new("from", "From") }))
                        (layout::input(&layout::Field { kind: "date", value: get(&q, "to"), width: "nhsuk-input--width-10", ..layout::Field::new("to", "To") }))
                        button class="nhsuk-button nhsuk-button--secondary" type="submit" { "Show" }
                    }
                    @if rows.is_empty() {
                        p { "No report was authorised in this period." }
                    } @else {
                        table class="nhsuk-table" data-testid="turnaround" {
                            thead class="nhsuk-table__head" { tr class="nhsuk-table__row" {
                                th class="nhsuk-table__header" { "Test" } th class="nhsuk-table__header" { "Reports" }
                                th class="nhsuk-table__header" { "Median (min)" } th class="nhsuk-table__header" { "90th percentile (min)" }
                                th class="nhsuk-table__header" { "Longest (min)" }
                            } }
                            tbody class="nhsuk-table__body" {
                                @for r in &rows {
                                    tr class="nhsuk-table__row" {
                                        td class="nhsuk-table__cell" { (r.test) } td class="nhsuk-table__cell" { (r.count) }
                                        td class="nhsuk-table__cell" { (format!("{:.0}", r.median_minutes)) }
                                        td class="nhsuk-table__cell" { (format!("{:.0}", r.p90_minutes)) }
                                        td class="nhsuk-table__cell" { (format!("{:.0}", r.max_minutes)) }
                                    }
                                }
                            }
                        }
                        div class="wl-chart" { (PreEscaped(laboratory::turnaround_svg(&rows))) }
                    }
                };
                layout::page(cx, "Turnaround times", Nav::Laboratory, body)
            }
            Err(e) => lab_error(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- radiology

pub(crate) async fn radiology_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let (list, withheld) = match radiology::worklist(&cx.svc, cx.access()) {
            Ok(x) => x,
            Err(e) => return lab_error(&e),
        };
        let error = get(&q, "error");
        let body = html! {
            h1 { "Radiology requests" }
            @if get(&q, "done") == "justified" { (layout::success("The decision was recorded.")) }
            @if !error.is_empty() { (layout::error_summary(&[("reason".to_owned(), error.to_owned())])) }
            @if withheld > 0 { p class="nhsuk-body-s" { (withheld) " item(s) are not shown: your position has no access to them." } }
            @if list.is_empty() { p { "No imaging request is open." } }
            @for r in &list {
                div class="nhsuk-card" data-testid="imaging-request" {
                    div class="nhsuk-card__content" {
                        h2 class="nhsuk-card__heading nhsuk-heading-m" { (r.title) " " span class="nhsuk-caption-m" { (r.priority) } }
                        p { (r.patient_name) @if let Some(n) = &r.nhs_number { " · NHS number " (n) }
                            @if let Some(q) = &r.requester { " · requested by " (q) } @if let Some(a) = &r.authored { " · " (a) } }
                        @if let Some(d) = &r.clinical_details { p { "Clinical details: " (d) } }
                        @if !r.answers.is_empty() {
                            dl class="nhsuk-summary-list" {
                                @for (qn, an) in &r.answers {
                                    div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { (qn) } dd class="nhsuk-summary-list__value" { (an) } }
                                }
                            }
                        }
                        @match &r.justification {
                            Some(j) => p data-testid="justification" {
                                strong class={ "nhsuk-tag " @if j.justified { "nhsuk-tag--green" } @else { "nhsuk-tag--red" } } {
                                    @if j.justified { "Justified (IR(ME)R)" } @else { "Not justified" }
                                }
                                " by " (j.by) " at " (j.at)
                                @if let Some(reason) = &j.reason { ": " (reason) }
                            },
                            None => form method="post" action={ "/ui/radiology/" (enc(&r.request)) "/justify" } novalidate {
                                (layout::csrf(cx))
                                (layout::radios("decision", "IR(ME)R justification", &[("justified", "Justified"), ("not-justified", "Not justified")], "justified", None))
                                (layout::input(&layout::Field { hint: Some("Required when not justified: what the referrer must add or change."), ..layout::Field::new("reason", "Reason") }))
                                button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Record decision" }
                            },
                        }
                    }
                }
            }
        };
        layout::page(cx, "Radiology", Nav::Radiology, body)
    })
    .await
}

pub(crate) async fn justify_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let justified = get(&f, "decision") != "not-justified";
        let reason = Some(get(&f, "reason")).filter(|r| !r.is_empty());
        match radiology::justify(&cx.svc, cx.access(), &id, justified, reason) {
            Ok(_) => see_other("/ui/radiology?done=justified"),
            Err(e) if matches!(e.status(), 400 | 409) => see_other(&format!(
                "/ui/radiology?error={}",
                enc(&layout::sentence(&e.message))
            )),
            Err(e) => lab_error(&e),
        }
    })
    .await
}
