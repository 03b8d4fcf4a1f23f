//! The pharmacy pages (issue 17): the pharmacist's screening worklist
//! (`/ui/pharmacy`, by ward), one prescription to screen, annotate or query
//! (`/ui/pharmacy/prescriptions/{id}`), the prescriber's open queries to
//! answer (`/ui/pharmacy/queries`), and an admission's discharge medicines
//! (`/ui/encounters/{id}/discharge-medicines`). Every rule is
//! `wardline_workflow::medicines::screening`'s and `::discharge`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use wardline_auth::rbac::Activity;
use wardline_workflow::medicines::discharge::{self, Change, DischargeMedicines};
use wardline_workflow::medicines::screening::{self, OpenQuery, QueryState, Worklist};
use wardline_workflow::medicines::{self, MedicinesError};
use wardline_workflow::orders::request::person_name;

use crate::layout::{self, Nav};
use crate::{Cx, Req, St, enc, see_other};

fn refusal(e: &MedicinesError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "pharmacy")
}

fn screens(cx: &Cx) -> bool {
    cx.role
        .is_some_and(|r| r.has(Activity::ScreenPrescriptions))
}

fn me(cx: &Cx) -> Option<String> {
    cx.access()
        .agent()
        .who
        .clone()
        .filter(|w| w.starts_with("Practitioner/"))
}

/// The screening status as a coloured tag, in words.
pub(crate) fn screening_tag(status: &str) -> Markup {
    let (class, text) = match status {
        "screened" => ("nhsuk-tag nhsuk-tag--green", "Screened"),
        "queried" => ("nhsuk-tag nhsuk-tag--orange", "Queried"),
        _ => ("nhsuk-tag nhsuk-tag--grey", "Not screened"),
    };
    html! { strong class=(class) data-testid="screening" data-screening=(status) { (text) } }
}

fn age_text(minutes: i64) -> String {
    match minutes {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

fn textarea(id: &str, label: &str, hint: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        div class={ "nhsuk-form-group" @if error.is_some() { " nhsuk-form-group--error" } } {
            label class="nhsuk-label" for=(id) { (label) }
            @if let Some(h) = hint { div class="nhsuk-hint" id={ (id) "-hint" } { (h) } }
            @if let Some(e) = error {
                span class="nhsuk-error-message" id={ (id) "-error" } { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
            }
            textarea class={ "nhsuk-textarea" @if error.is_some() { " nhsuk-textarea--error" } } id=(id) name=(id) rows="3"
                aria-describedby=[error.map(|_| format!("{id}-error"))] {}
        }
    }
}

// ---------------------------------------------------------------- worklist

fn worklist_body(
    w: &Worklist,
    wards: &[(String, String)],
    ward: Option<&str>,
    done: Option<&str>,
) -> Markup {
    html! {
        @if let Some(d) = done { (layout::success(d)) }
        h1 { "Prescriptions to screen" }
        form method="get" action="/ui/pharmacy" class="nhsuk-u-margin-bottom-4" {
            div class="nhsuk-form-group" {
                label class="nhsuk-label" for="ward" { "Ward or site" }
                select class="nhsuk-select" id="ward" name="ward" data-testid="ward-filter" {
                    option value="" { "All wards" }
                    @for (id, name) in wards {
                        option value=(id) selected[ward == Some(id.as_str())] { (name) }
                    }
                }
            }
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Show" }
        }
        @if w.items.is_empty() {
            p data-testid="worklist-empty" { "Nothing to screen." }
        } @else {
            table class="nhsuk-table" data-testid="worklist" {
                caption class="nhsuk-table__caption" { (w.items.len()) " prescriptions, oldest first, high-risk medicines first within a day" }
                thead class="nhsuk-table__head" {
                    tr {
                        th scope="col" { "Patient" }
                        th scope="col" { "Ward and bed" }
                        th scope="col" { "Medicine" }
                        th scope="col" { "Dose" }
                        th scope="col" { "Prescriber" }
                        th scope="col" { "Waiting" }
                        th scope="col" { "Status" }
                    }
                }
                tbody class="nhsuk-table__body" {
                    @for i in &w.items {
                        tr class="nhsuk-table__row" data-testid="worklist-row" data-prescription=(i.prescription) data-screening=(i.screening) {
                            td class="nhsuk-table__cell" {
                                (i.patient)
                                @if let Some(n) = &i.nhs_number { br; span class="nhsuk-body-s" { "NHS " (n) } }
                            }
                            td class="nhsuk-table__cell" {
                                (i.ward.as_deref().unwrap_or("—"))
                                @if let Some(b) = &i.bed { " · " (b) }
                            }
                            td class="nhsuk-table__cell" {
                                a href={ "/ui/pharmacy/prescriptions/" (enc(&i.prescription)) } data-testid="open-prescription" { (i.medicine) }
                                @if i.high_risk { " " strong class="nhsuk-tag nhsuk-tag--red" { "High risk" } }
                                @if i.discharge { " " strong class="nhsuk-tag nhsuk-tag--blue" { "Discharge (TTO)" } }
                            }
                            td class="nhsuk-table__cell" { (i.dose) }
                            td class="nhsuk-table__cell" { (i.prescriber.as_deref().unwrap_or("—")) }
                            td class="nhsuk-table__cell" { (age_text(i.age_minutes)) }
                            td class="nhsuk-table__cell" {
                                (screening_tag(&i.screening))
                                @if let Some(q) = &i.query {
                                    @if q.answer.is_some() { " " strong class="nhsuk-tag nhsuk-tag--blue" data-testid="answered" { "Answered" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if w.withheld > 0 { p { (w.withheld) " more not shown: your access does not cover them." } }
    }
}

fn ward_options(cx: &Cx) -> Vec<(String, String)> {
    wardline_workflow::adt::sites(&cx.svc, cx.access())
        .map(|sites| {
            sites
                .into_iter()
                .flat_map(|s| {
                    let site = s.name.clone();
                    std::iter::once((s.id.clone(), format!("Every ward at {site}"))).chain(
                        s.wards
                            .into_iter()
                            .map(move |w| (w.id, format!("{} ({site})", w.name))),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /ui/pharmacy`: the screening worklist.
pub(crate) async fn worklist_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let ward = q
            .get("ward")
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty());
        let done = match q.get("done").map(String::as_str) {
            Some("screened") => Some("Prescription screened."),
            Some("queried") => Some("Query sent to the prescriber."),
            _ => None,
        };
        match screening::worklist(&cx.svc, cx.access(), ward.as_deref(), cx.svc.now()) {
            Ok(w) => layout::page(
                cx,
                "Prescriptions to screen",
                Nav::None,
                worklist_body(&w, &ward_options(cx), ward.as_deref(), done),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- one prescription

struct View {
    mr: Value,
    patient: String,
    prescriber: Option<String>,
    queries: Vec<QueryState>,
}

fn view(cx: &Cx, id: &str) -> Result<View, MedicinesError> {
    let mr = cx
        .svc
        .read_as(cx.access(), "MedicationRequest", id)?
        .ok_or_else(|| {
            MedicinesError::NotFound(format!("There is no prescription with id {id}."))
        })?;
    let name_of = |t: &str, r: &Value| -> Option<String> {
        let id = wardline_workflow::fhir::reference_id(r, t)?;
        cx.svc
            .read_as(cx.access(), t, id)
            .ok()
            .flatten()
            .and_then(|p| person_name(&p))
    };
    Ok(View {
        patient: name_of("Patient", &mr["subject"]).unwrap_or_else(|| "Unnamed patient".into()),
        prescriber: name_of("Practitioner", &mr["requester"]),
        queries: screening::queries_of(&cx.svc, cx.access(), id)?,
        mr,
    })
}

fn prescription_body(cx: &Cx, id: &str, v: &View, error: Option<(&str, String)>) -> Markup {
    let err = |k: &str| {
        error
            .as_ref()
            .filter(|(f, _)| *f == k)
            .map(|(_, m)| m.as_str())
    };
    let status = medicines::screening_status(&v.mr);
    let base = format!("/ui/pharmacy/prescriptions/{}", enc(id));
    let in_force = screening::screenable(&v.mr);
    html! {
        (layout::back_link("/ui/pharmacy", "Back to the worklist"))
        @if let Some(pid) = v.mr["subject"]["reference"].as_str() { (crate::chart::patient_banner(cx, pid)) }
        span class="nhsuk-caption-l" data-testid="rx-patient" { (v.patient) }
        h1 { (screening::medicine_text(&v.mr)) " " (screening_tag(status)) }
        @if let Some((f, m)) = &error {
            (layout::error_summary(&[((*f).to_owned(), m.clone())]))
        }
        dl class="nhsuk-summary-list" {
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Dose" }
                dd class="nhsuk-summary-list__value" data-testid="rx-dose" { (screening::dose_text(&v.mr)) }
            }
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Prescription status" }
                dd class="nhsuk-summary-list__value" data-testid="rx-status" { (v.mr["status"].as_str().unwrap_or("unknown")) }
            }
            @if let Some(ind) = v.mr["reasonCode"][0]["text"].as_str() {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Indication" }
                    dd class="nhsuk-summary-list__value" { (ind) }
                }
            }
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Prescriber" }
                dd class="nhsuk-summary-list__value" { (v.prescriber.as_deref().unwrap_or("—")) }
            }
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Prescribed" }
                dd class="nhsuk-summary-list__value" { (layout::long_date(v.mr["authoredOn"].as_str().unwrap_or(""))) }
            }
            @if let Some((by, at)) = screening::screened_by(&v.mr) {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Screening" }
                    dd class="nhsuk-summary-list__value" data-testid="screened-by" {
                        (status) " by " (by) " at " (layout::long_date(&at))
                    }
                }
            }
        }
        @if let Some(notes) = v.mr["note"].as_array().filter(|n| !n.is_empty()) {
            h2 { "Annotations" }
            ul class="nhsuk-list nhsuk-list--bullet" data-testid="rx-notes" {
                @for n in notes {
                    li { (n["text"].as_str().unwrap_or("")) " "
                        span class="nhsuk-body-s" { "(" (layout::long_date(n["time"].as_str().unwrap_or(""))) ")" } }
                }
            }
        }
        @if !v.queries.is_empty() {
            h2 { "Queries to the prescriber" }
            ul class="nhsuk-list" data-testid="rx-queries" {
                @for q in &v.queries {
                    li {
                        strong { "Question: " } (q.question)
                        @if let Some(a) = &q.answer { br; strong { "Answer: " } span data-testid="query-answer" { (a) } }
                        @else { br; span class="nhsuk-tag nhsuk-tag--orange" { "Waiting for an answer" } }
                    }
                }
            }
        }
        @if screens(cx) && in_force {
            h2 { "Screen" }
            form method="post" action={ (base) "/screen" } novalidate {
                (layout::csrf(cx))
                (textarea("note", "Note (optional)", Some("Kept on the prescription as an annotation."), None))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="screen" { "Mark as screened" }
            }
            h2 { "Annotate" }
            form method="post" action={ (base) "/annotate" } novalidate {
                (layout::csrf(cx))
                (textarea("text", "Annotation", None, err("text")))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="annotate" { "Add annotation" }
            }
            h2 { "Query the prescriber" }
            form method="post" action={ (base) "/query" } novalidate {
                (layout::csrf(cx))
                (textarea("question", "Question for the prescriber", None, err("question")))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="query" { "Send query" }
            }
        } @else if !in_force {
            p data-testid="not-in-force" { "This prescription is no longer in force." }
        }
    }
}

/// `GET /ui/pharmacy/prescriptions/{id}`.
pub(crate) async fn prescription_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = q.get("done").cloned();
        match view(cx, &id) {
            Ok(v) => {
                let title = screening::medicine_text(&v.mr);
                let body = prescription_body(cx, &id, &v, None);
                let body = match done.as_deref() {
                    Some("annotated") => html! { (layout::success("Annotation added.")) (body) },
                    _ => body,
                };
                layout::page(cx, &title, Nav::None, body)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn shown_again(cx: &Cx, id: &str, field: &'static str, message: String) -> Response {
    match view(cx, id) {
        Ok(v) => layout::page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            cx,
            &screening::medicine_text(&v.mr),
            Nav::None,
            prescription_body(cx, id, &v, Some((field, message))),
        ),
        Err(e) => refusal(&e),
    }
}

/// `POST /ui/pharmacy/prescriptions/{id}/screen`.
pub(crate) async fn screen_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let note = f.get("note").map(String::as_str);
        match screening::screen(&cx.svc, cx.access(), &id, note, cx.svc.now()) {
            Ok(()) => see_other("/ui/pharmacy?done=screened"),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/pharmacy/prescriptions/{id}/annotate`.
pub(crate) async fn annotate_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let text = f.get("text").map(String::as_str).unwrap_or("");
        match screening::annotate(&cx.svc, cx.access(), &id, text, cx.svc.now()) {
            Ok(()) => see_other(&format!(
                "/ui/pharmacy/prescriptions/{}?done=annotated",
                enc(&id)
            )),
            Err(MedicinesError::Invalid(m)) => shown_again(cx, &id, "text", m),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/pharmacy/prescriptions/{id}/query`.
pub(crate) async fn query_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let question = f.get("question").map(String::as_str).unwrap_or("");
        match screening::query(&cx.svc, cx.access(), &id, question, cx.svc.now()) {
            Ok(_) => see_other("/ui/pharmacy?done=queried"),
            Err(MedicinesError::Invalid(m)) => shown_again(cx, &id, "question", m),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- queries

fn queries_body(cx: &Cx, qs: &[OpenQuery], error: Option<(String, String)>, done: bool) -> Markup {
    html! {
        @if done { (layout::success("Answer sent to the pharmacist.")) }
        h1 { "Pharmacy queries for you" }
        @if let Some((f, m)) = &error {
            (layout::error_summary(&[(format!("answer-{f}"), m.clone())]))
        }
        @if qs.is_empty() {
            p data-testid="queries-empty" { "No open queries." }
        }
        @for q in qs {
            div class="nhsuk-card" data-testid="open-query" data-task=(q.task) {
                div class="nhsuk-card__content" {
                    h2 class="nhsuk-card__heading nhsuk-heading-m" { (q.medicine) }
                    p { strong { "Question: " } (q.question) }
                    p class="nhsuk-body-s" { "Asked by " (q.asked_by.as_deref().unwrap_or("a pharmacist")) " on " (layout::long_date(&q.asked_at)) }
                    form method="post" action={ "/ui/pharmacy/queries/" (enc(&q.task)) "/answer" } novalidate {
                        (layout::csrf(cx))
                        (textarea(&format!("answer-{}", q.task), "Your answer", Some("To change the prescription, change it on the drug chart: the new prescription is screened again."), error.as_ref().filter(|(f, _)| *f == q.task).map(|(_, m)| m.as_str())))
                        button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="answer" { "Send answer" }
                    }
                }
            }
        }
    }
}

fn my_queries(cx: &Cx) -> Result<Vec<OpenQuery>, MedicinesError> {
    match me(cx) {
        Some(w) => screening::open_queries(&cx.svc, cx.access(), Some(&w)),
        None => Ok(Vec::new()),
    }
}

/// `GET /ui/pharmacy/queries`: the signed-in prescriber's open queries.
pub(crate) async fn queries_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| match my_queries(cx) {
        Ok(qs) => layout::page(
            cx,
            "Pharmacy queries",
            Nav::None,
            queries_body(cx, &qs, None, q.contains_key("done")),
        ),
        Err(e) => refusal(&e),
    })
    .await
}

/// `POST /ui/pharmacy/queries/{task}/answer`.
pub(crate) async fn answer_post(
    State(ui): St,
    req: Req,
    Path(task): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let answer = f
            .get(&format!("answer-{task}"))
            .map(String::as_str)
            .unwrap_or("");
        match screening::resolve_query(&cx.svc, cx.access(), &task, answer, cx.svc.now()) {
            Ok(()) => see_other("/ui/pharmacy/queries?done=answered"),
            Err(MedicinesError::Invalid(m)) => match my_queries(cx) {
                Ok(qs) => layout::page_with(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    cx,
                    "Pharmacy queries",
                    Nav::None,
                    queries_body(cx, &qs, Some((task.clone(), m)), false),
                ),
                Err(e) => refusal(&e),
            },
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- discharge medicines

fn change_tag(c: Change) -> Markup {
    let class = match c {
        Change::Started => "nhsuk-tag nhsuk-tag--green",
        Change::Continued => "nhsuk-tag nhsuk-tag--grey",
        Change::Changed => "nhsuk-tag nhsuk-tag--orange",
        Change::Stopped => "nhsuk-tag nhsuk-tag--red",
    };
    html! { strong class=(class) data-testid="change" { (c.label()) } }
}

fn discharge_body(cx: &Cx, d: &DischargeMedicines) -> Markup {
    html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(&d.patient_id)), "Back to the patient"))
        (crate::chart::patient_banner(cx, &d.patient_id))
        h1 { "Discharge medicines" }
        p { a href={ "/ui/encounters/" (enc(&d.encounter)) "/discharge-summary" } data-testid="discharge-summary" { "Discharge summary" } }
        @if d.ready {
            div class="nhsuk-inset-text" data-testid="tto-ready" data-ready="true" {
                p { "Every discharge medicine is screened: ready for the discharge summary." }
            }
        } @else {
            div class="nhsuk-warning-callout" data-testid="tto-ready" data-ready="false" {
                h2 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Not ready" } }
                @if d.lines.iter().all(|l| l.prescription.is_none()) {
                    p { "There is no discharge prescription yet." }
                } @else {
                    p { (d.unscreened) " discharge medicine(s) not yet screened by a pharmacist." }
                }
            }
        }
        @if !d.lines.is_empty() {
            table class="nhsuk-table" data-testid="tto" {
                caption class="nhsuk-table__caption" { "On discharge, against the inpatient chart" }
                thead class="nhsuk-table__head" {
                    tr {
                        th scope="col" { "Medicine" }
                        th scope="col" { "Change" }
                        th scope="col" { "On discharge" }
                        th scope="col" { "On the ward" }
                        th scope="col" { "Reason" }
                        th scope="col" { "Screening" }
                    }
                }
                tbody class="nhsuk-table__body" {
                    @for l in &d.lines {
                        tr class="nhsuk-table__row" data-testid="tto-line" data-change=(serde_json::to_value(l.change).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) {
                            td class="nhsuk-table__cell" { (l.medicine) }
                            td class="nhsuk-table__cell" { (change_tag(l.change)) }
                            td class="nhsuk-table__cell" { (l.dose.as_deref().unwrap_or("—")) }
                            td class="nhsuk-table__cell" { (l.inpatient_dose.as_deref().unwrap_or("—")) }
                            td class="nhsuk-table__cell" {
                                @match (l.change, &l.reason) {
                                    (Change::Changed | Change::Stopped, None) => { strong { "No reason given" } }
                                    (_, Some(r)) => { (r) }
                                    _ => { "" }
                                }
                            }
                            td class="nhsuk-table__cell" {
                                @if let Some(s) = &l.screening {
                                    @if let Some(p) = &l.prescription {
                                        a href={ "/ui/pharmacy/prescriptions/" (enc(p)) } { (screening_tag(s)) }
                                    } @else { (screening_tag(s)) }
                                } @else { "—" }
                            }
                        }
                    }
                }
            }
        }
        @if d.withheld > 0 { p { (d.withheld) " prescriptions not shown: your access does not cover them." } }
    }
}

/// `GET /ui/encounters/{id}/discharge-medicines`.
pub(crate) async fn discharge_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(
        req,
        None,
        move |cx, _| match discharge::discharge_medicines(&cx.svc, cx.access(), &id, cx.svc.now()) {
            Ok(d) => layout::page(cx, "Discharge medicines", Nav::None, discharge_body(cx, &d)),
            Err(e) => refusal(&e),
        },
    )
    .await
}
