//! The task lists (issue 20): **my tasks**, **my teams' tasks** and **a
//! ward's tasks** (`/ui/tasks`), filtered by kind, priority and overdue,
//! overdue first; a task with its history and its actions
//! (`/ui/tasks/{id}`: claim, assign or reassign to a person, team or ward,
//! complete with an outcome, change the due time or priority). Every rule
//! is `wardline_workflow::tasks`'s; a refusal naming a field comes back as
//! the error summary linking to it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use time::OffsetDateTime;
use wardline_workflow::tasks::actions::Change;
use wardline_workflow::tasks::lists::{self, Filter, Page, Row, Scope};
use wardline_workflow::tasks::{self, PRIORITIES, TasksError};

use crate::layout::{self, Field, Nav};
use crate::outpatients::{clock, error_for, f, summary};
use crate::{Cx, Form, Req, St, enc, see_other};

fn refusal(e: &TasksError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "task")
}

/// "3 Dec 14:05" in the trust's zone.
fn when(cx: &Cx, instant: &str) -> String {
    format!(
        "{} {}",
        layout::long_date(instant.get(..10).unwrap_or(instant)),
        clock(cx, instant)
    )
}

fn priority_tag(p: &str) -> Markup {
    let class = match p {
        "stat" | "asap" => "nhsuk-tag nhsuk-tag--red",
        "urgent" => "nhsuk-tag nhsuk-tag--orange",
        _ => "nhsuk-tag nhsuk-tag--grey",
    };
    html! { strong class=(class) data-testid="priority" { (p) } }
}

/// Where a task's focus is seen in the workspace.
fn focus_href(focus: &str, patient: Option<&str>) -> Option<String> {
    let (t, id) = focus.split_once('/')?;
    let chart = patient
        .and_then(|p| p.strip_prefix("Patient/"))
        .map(|p| format!("/ui/patients/{}", enc(p)));
    match t {
        "MedicationRequest" => Some(format!("/ui/pharmacy/prescriptions/{}", enc(id))),
        "Patient" => Some(format!("/ui/patients/{}", enc(id))),
        _ => chart,
    }
}

fn scope_of(q: &Form) -> Scope {
    match f(q, "list") {
        "teams" => Scope::Teams,
        "ward" if !f(q, "ward").is_empty() => Scope::Ward(f(q, "ward").to_owned()),
        _ => Scope::Mine,
    }
}

fn query_of(scope: &Scope, filter: &Filter, page: usize) -> String {
    let mut q = match scope {
        Scope::Mine => "list=mine".to_owned(),
        Scope::Teams => "list=teams".to_owned(),
        Scope::Ward(w) => format!("list=ward&ward={}", enc(w)),
    };
    if let Some(k) = &filter.kind {
        q.push_str(&format!("&kind={}", enc(k)));
    }
    if let Some(p) = &filter.priority {
        q.push_str(&format!("&priority={}", enc(p)));
    }
    if filter.overdue_only {
        q.push_str("&overdue=1");
    }
    format!("{q}&page={page}")
}

fn wards(cx: &Cx) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), "Choose a ward…".to_owned())];
    if let Ok(sites) = wardline_workflow::adt::sites(&cx.svc, cx.access()) {
        for s in sites {
            for w in s.wards {
                out.push((w.id.clone(), format!("{} ({})", w.name, s.name)));
            }
        }
    }
    out
}

fn row_markup(cx: &Cx, r: &Row, back: &str) -> Markup {
    let task_href = format!("/ui/tasks/{}", enc(&r.id));
    html! {
        tr class="nhsuk-table__row" data-testid="task-row" data-task=(r.id) data-kind=(r.kind)
            data-overdue=(r.overdue) {
            td class="nhsuk-table__cell" {
                (priority_tag(&r.priority))
                @if r.overdue { " " strong class="nhsuk-tag nhsuk-tag--red" data-testid="overdue" { "Overdue" } }
                @if r.escalated { " " strong class="nhsuk-tag nhsuk-tag--purple" data-testid="escalated" { "Escalated" } }
            }
            td class="nhsuk-table__cell" {
                a href=(task_href) data-testid="open-task" { (r.description) }
                br; span class="nhsuk-body-s" { (r.kind_label) }
            }
            td class="nhsuk-table__cell" {
                @if let (Some(p), Some(name)) = (&r.patient, &r.patient_name) {
                    a href={ "/ui/patients/" (enc(p.strip_prefix("Patient/").unwrap_or(p))) } data-testid="patient" { (name) }
                    @if let Some(n) = &r.nhs_number { br; span class="nhsuk-body-s" { (n) } }
                } @else { "—" }
                @if let Some(href) = r.focus.as_deref().and_then(|fo| focus_href(fo, r.patient.as_deref())) {
                    br; a href=(href) class="nhsuk-body-s" data-testid="focus" { (r.focus_label.as_deref().unwrap_or("What it is about")) }
                }
            }
            td class="nhsuk-table__cell" data-testid="owner" { (r.owner_label.as_deref().unwrap_or("Nobody yet")) }
            td class="nhsuk-table__cell" data-testid="due" {
                @if let Some(d) = &r.due { (when(cx, d)) } @else { "—" }
            }
            td class="nhsuk-table__cell" data-testid="status" { (r.status) }
            td class="nhsuk-table__cell" {
                @if r.status == "requested" || r.status == "received" || r.status == "ready" {
                    form method="post" action={ (task_href) "/claim" } novalidate {
                        (layout::csrf(cx))
                        input type="hidden" name="back" value=(back);
                        button class="nhsuk-button nhsuk-button--secondary nhsuk-button--small" data-module="nhsuk-button" type="submit" data-testid="claim" { "Claim" }
                    }
                }
                a href=(task_href) data-testid="act" { "Assign or complete" }
            }
        }
    }
}

fn list_body(cx: &Cx, scope: &Scope, filter: &Filter, p: &Page, done: Option<&str>) -> Markup {
    let tab = |s: &Scope, label: &str, href: String| {
        let current = std::mem::discriminant(s) == std::mem::discriminant(scope);
        html! {
            li class={ "nhsuk-tabs__list-item" @if current { " nhsuk-tabs__list-item--selected" } } {
                a class="nhsuk-tabs__tab" href=(href) aria-current=[current.then_some("page")] { (label) }
            }
        }
    };
    let ward = match scope {
        Scope::Ward(w) => w.clone(),
        _ => String::new(),
    };
    let back = format!("/ui/tasks?{}", query_of(scope, filter, p.page));
    let mut priorities = vec![(String::new(), "Any priority".to_owned())];
    priorities.extend(
        PRIORITIES
            .iter()
            .rev()
            .map(|p| ((*p).to_owned(), (*p).to_owned())),
    );
    html! {
        h1 { "Tasks" }
        @if let Some(d) = done { (layout::success(d)) }
        div class="nhsuk-tabs" {
            ul class="nhsuk-tabs__list" data-testid="task-tabs" {
                (tab(&Scope::Mine, "My tasks", "/ui/tasks?list=mine".into()))
                (tab(&Scope::Teams, "My teams' tasks", "/ui/tasks?list=teams".into()))
                (tab(&Scope::Ward(String::new()), "A ward's tasks", format!("/ui/tasks?list=ward&ward={}", enc(&ward))))
            }
        }
        form method="get" action="/ui/tasks" class="nhsuk-u-margin-bottom-4" data-testid="filters" {
            @match scope {
                Scope::Mine => input type="hidden" name="list" value="mine";,
                Scope::Teams => input type="hidden" name="list" value="teams";,
                Scope::Ward(_) => {
                    input type="hidden" name="list" value="ward";
                    (layout::select("ward", "Ward", &wards(cx), &ward, None))
                }
            }
            (layout::input(&Field { value: filter.kind.as_deref().unwrap_or(""), hint: Some("For example news2-urgent"), width: "nhsuk-input--width-20", ..Field::new("kind", "Kind") }))
            (layout::select("priority", "Priority", &priorities, filter.priority.as_deref().unwrap_or(""), None))
            div class="nhsuk-checkboxes__item nhsuk-u-margin-bottom-3" {
                input class="nhsuk-checkboxes__input" id="overdue" name="overdue" type="checkbox" value="1" checked[filter.overdue_only];
                label class="nhsuk-label nhsuk-checkboxes__label" for="overdue" { "Overdue only" }
            }
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="filter" { "Show" }
        }
        p data-testid="task-count" {
            (p.total) " open " @if p.total == 1 { "task" } @else { "tasks" }
            ", " strong data-testid="overdue-count" { (p.overdue) " overdue" }
            @if p.withheld > 0 { " (" (p.withheld) " you may not see)" }
        }
        @if p.rows.is_empty() {
            p data-testid="no-tasks" {
                @if matches!(scope, Scope::Ward(w) if w.is_empty()) { "Choose a ward." } @else { "No open tasks." }
            }
        } @else {
            table class="nhsuk-table" data-testid="tasks" {
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Priority" } th scope="col" { "Task" } th scope="col" { "Patient" }
                    th scope="col" { "Owner" } th scope="col" { "Due" } th scope="col" { "Status" } th scope="col" { "Action" }
                } }
                tbody class="nhsuk-table__body" {
                    @for r in &p.rows { (row_markup(cx, r, &back)) }
                }
            }
            @if p.pages > 1 {
                nav class="nhsuk-pagination" role="navigation" aria-label="Pages" {
                    ul class="nhsuk-list nhsuk-pagination__list" {
                        @if p.page > 1 {
                            li class="nhsuk-pagination-item--previous" {
                                a class="nhsuk-pagination__link nhsuk-pagination__link--prev" data-testid="previous-page"
                                    href={ "/ui/tasks?" (query_of(scope, filter, p.page - 1)) } {
                                    span class="nhsuk-pagination__title" { "Previous" }
                                }
                            }
                        }
                        @if p.page < p.pages {
                            li class="nhsuk-pagination-item--next" {
                                a class="nhsuk-pagination__link nhsuk-pagination__link--next" data-testid="next-page"
                                    href={ "/ui/tasks?" (query_of(scope, filter, p.page + 1)) } {
                                    span class="nhsuk-pagination__title" { "Next" }
                                    span class="nhsuk-u-visually-hidden" { ":" }
                                    span class="nhsuk-pagination__page" { "Page " (p.page + 1) " of " (p.pages) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/tasks?list=mine|teams|ward&ward=&kind=&priority=&overdue=1&page=`.
pub(crate) async fn list_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let scope = scope_of(&q);
        let filter = Filter {
            kind: Some(f(&q, "kind").trim().to_owned()).filter(|k| !k.is_empty()),
            priority: Some(f(&q, "priority").to_owned())
                .filter(|p| PRIORITIES.contains(&p.as_str())),
            overdue_only: f(&q, "overdue") == "1",
        };
        let page = f(&q, "page").parse().unwrap_or(1);
        let done = match f(&q, "done") {
            "claimed" => Some("You have claimed the task."),
            _ => None,
        };
        match lists::list(&cx.svc, cx.access(), &scope, &filter, page, cx.svc.now()) {
            Ok(p) => layout::page(
                cx,
                "Tasks",
                Nav::Tasks,
                list_body(cx, &scope, &filter, &p, done),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- one task

fn owners(cx: &Cx) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), "Choose…".to_owned())];
    for (t, label) in [
        ("CareTeam", "Team"),
        ("Location", "Ward"),
        ("Practitioner", "Person"),
    ] {
        let params = [("_count", "200".to_owned())];
        let found = cx
            .svc
            .search_as(cx.access(), t, &params)
            .map(|f| f.resources)
            .unwrap_or_default();
        let mut v: Vec<(String, String)> = found
            .iter()
            .filter(|r| t != "Location" || r["physicalType"]["coding"][0]["code"] == "wa")
            .filter_map(|r| {
                let id = r["id"].as_str()?;
                let name = lists::name_of(r).unwrap_or_else(|| id.to_owned());
                Some((format!("{t}/{id}"), format!("{label}: {name}")))
            })
            .collect();
        v.sort_by(|a, b| a.1.cmp(&b.1));
        out.extend(v);
    }
    out
}

fn text_area(id: &str, label: &str, value: &str, error: Option<&str>) -> Markup {
    html! {
        div class={ "nhsuk-form-group" @if error.is_some() { " nhsuk-form-group--error" } } {
            label class="nhsuk-label" for=(id) { (label) }
            @if let Some(e) = error {
                span class="nhsuk-error-message" id={ (id) "-error" } { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
            }
            textarea class={ "nhsuk-textarea" @if error.is_some() { " nhsuk-textarea--error" } } id=(id) name=(id) rows="2"
                aria-describedby=[error.map(|_| format!("{id}-error"))] { (value) }
        }
    }
}

fn task_body(
    cx: &Cx,
    t: &Value,
    form: &Form,
    error: &Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    let id = t["id"].as_str().unwrap_or_default();
    let base = format!("/ui/tasks/{}", enc(id));
    let status = t["status"].as_str().unwrap_or_default();
    let open = tasks::is_open(status);
    let overdue = tasks::overdue(t, cx.svc.now());
    let patient = t["for"]["reference"].as_str();
    let due = t["restriction"]["period"]["end"].as_str();
    let mut priorities: Vec<(String, String)> = PRIORITIES
        .iter()
        .map(|p| ((*p).to_owned(), (*p).to_owned()))
        .collect();
    priorities.reverse();
    let field = |k: &'static str, label: &'static str| Field {
        value: f(form, k),
        error: error_for(error, k),
        ..Field::new(k, label)
    };
    html! {
        (layout::back_link("/ui/tasks?list=teams", "Tasks"))
        @if let Some(d) = done { (layout::success(d)) }
        (summary(error))
        h1 data-testid="task-title" { (t["description"].as_str().unwrap_or("Task")) }
        dl class="nhsuk-summary-list" {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Kind" }
                dd class="nhsuk-summary-list__value" { (t["code"]["coding"][0]["display"].as_str().or(t["code"]["coding"][0]["code"].as_str()).unwrap_or("—")) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Status" }
                dd class="nhsuk-summary-list__value" data-testid="task-status" { (status) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Priority" }
                dd class="nhsuk-summary-list__value" { (priority_tag(t["priority"].as_str().unwrap_or("routine"))) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Owner" }
                dd class="nhsuk-summary-list__value" data-testid="task-owner" { (t["owner"]["display"].as_str().or(t["owner"]["reference"].as_str()).unwrap_or("Nobody yet")) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Due" }
                dd class="nhsuk-summary-list__value" {
                    @if let Some(d) = due { (when(cx, d)) } @else { "—" }
                    @if overdue { " " strong class="nhsuk-tag nhsuk-tag--red" data-testid="overdue" { "Overdue" } }
                } }
            @if let Some(p) = patient.and_then(|p| p.strip_prefix("Patient/")) {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Patient" }
                    dd class="nhsuk-summary-list__value" { a href={ "/ui/patients/" (enc(p)) } data-testid="patient" { "Open the chart" } } }
            }
            @if let Some(href) = t["focus"]["reference"].as_str().and_then(|fo| focus_href(fo, patient)) {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "About" }
                    dd class="nhsuk-summary-list__value" { a href=(href) data-testid="focus" { (t["focus"]["display"].as_str().or(t["focus"]["reference"].as_str()).unwrap_or("")) } } }
            }
            @if let Some(o) = t["output"][0]["valueString"].as_str() {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Outcome" }
                    dd class="nhsuk-summary-list__value" data-testid="outcome" { (o) } }
            }
        }
        h2 { "History" }
        ul class="nhsuk-list nhsuk-list--bullet" data-testid="history" {
            li { "Raised " (t["authoredOn"].as_str().map(|a| when(cx, a)).unwrap_or_default()) }
            @for n in t["note"].as_array().into_iter().flatten() {
                li { (n["time"].as_str().map(|a| when(cx, a)).unwrap_or_default()) ": " (n["text"].as_str().unwrap_or("")) }
            }
        }
        @if open {
            @if status == "requested" || status == "received" || status == "ready" {
                form method="post" action={ (base) "/claim" } novalidate {
                    (layout::csrf(cx))
                    button class="nhsuk-button" data-module="nhsuk-button" type="submit" id="claim" data-testid="claim" { "Claim this task" }
                }
            }
            h2 id="assign-heading" { "Assign or reassign" }
            form method="post" action={ (base) "/assign" } novalidate {
                (layout::csrf(cx))
                (layout::select("owner", "Give it to", &owners(cx), f(form, "owner"), error_for(error, "owner")))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="assign" { "Assign" }
            }
            h2 { "Complete" }
            form method="post" action={ (base) "/complete" } novalidate {
                (layout::csrf(cx))
                (text_area("outcome", "Outcome: what was done", f(form, "outcome"), error_for(error, "outcome")))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="complete" { "Complete task" }
            }
            h2 { "Due time and priority" }
            form method="post" action={ (base) "/change" } novalidate {
                (layout::csrf(cx))
                (layout::input(&Field { kind: "datetime-local", ..field("due", "Due") }))
                (layout::select("priority", "Priority", &priorities, t["priority"].as_str().unwrap_or("routine"), error_for(error, "priority")))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="change" { "Save changes" }
            }
        }
    }
}

fn task_response(
    cx: &Cx,
    id: &str,
    form: &Form,
    error: Option<(String, String)>,
    done: Option<&str>,
) -> Response {
    match lists::detail(&cx.svc, cx.access(), id) {
        Ok(t) => {
            let body = task_body(cx, &t, form, &error, done);
            if error.is_some() {
                layout::page_with(
                    axum::http::StatusCode::BAD_REQUEST,
                    cx,
                    "Task",
                    Nav::Tasks,
                    body,
                )
            } else {
                layout::page(cx, "Task", Nav::Tasks, body)
            }
        }
        Err(e) => refusal(&e),
    }
}

/// `GET /ui/tasks/{id}`.
pub(crate) async fn task_page(State(ui): St, Path(id): Path<String>, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match f(&q, "done") {
            "claimed" => Some("You have claimed the task."),
            "assigned" => Some("The task has been assigned."),
            "completed" => Some("The task is complete."),
            "changed" => Some("The task has been changed."),
            _ => None,
        };
        task_response(cx, &id, &Form::new(), None, done)
    })
    .await
}

/// What a POST did: back to the page (or the list it came from) with a
/// message, or the page again with the error summary.
fn after(
    cx: &Cx,
    id: &str,
    form: &Form,
    r: Result<(), TasksError>,
    done: &str,
    field: &str,
) -> Response {
    match r {
        Ok(()) => {
            let back = f(form, "back");
            if back.starts_with("/ui/tasks?") {
                see_other(&format!("{back}&done={done}"))
            } else {
                see_other(&format!("/ui/tasks/{}?done={done}", enc(id)))
            }
        }
        Err(TasksError::Field(field, m)) => task_response(cx, id, form, Some((field, m)), None),
        Err(e @ (TasksError::Forbidden(_) | TasksError::Conflict(_))) => {
            task_response(cx, id, form, Some((field.to_owned(), e.message())), None)
        }
        Err(e) => refusal(&e),
    }
}

/// One POST on a task: `f` does it, [`after`] answers.
async fn act(
    ui: crate::Ui,
    id: String,
    req: Req,
    body: Bytes,
    (done, field): (&'static str, &'static str),
    f: fn(&Cx, &str, &Form) -> Result<(), TasksError>,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let r = f(cx, &id, &form);
        after(cx, &id, &form, r, done, field)
    })
    .await
}

/// `POST /ui/tasks/{id}/claim`.
pub(crate) async fn claim_post(
    State(ui): St,
    Path(id): Path<String>,
    req: Req,
    body: Bytes,
) -> Response {
    act(ui, id, req, body, ("claimed", "claim"), |cx, id, _| {
        tasks::claim(&cx.svc, cx.access(), id, cx.svc.now())
    })
    .await
}

/// `POST /ui/tasks/{id}/assign`.
pub(crate) async fn assign_post(
    State(ui): St,
    Path(id): Path<String>,
    req: Req,
    body: Bytes,
) -> Response {
    act(ui, id, req, body, ("assigned", "owner"), |cx, id, form| {
        tasks::assign(&cx.svc, cx.access(), id, f(form, "owner"), cx.svc.now())
    })
    .await
}

/// `POST /ui/tasks/{id}/complete`.
pub(crate) async fn complete_post(
    State(ui): St,
    Path(id): Path<String>,
    req: Req,
    body: Bytes,
) -> Response {
    act(
        ui,
        id,
        req,
        body,
        ("completed", "outcome"),
        |cx, id, form| tasks::complete(&cx.svc, cx.access(), id, f(form, "outcome"), cx.svc.now()),
    )
    .await
}

/// `POST /ui/tasks/{id}/change`: due time (local, `YYYY-MM-DDTHH:MM`)
/// and priority.
pub(crate) async fn change_post(
    State(ui): St,
    Path(id): Path<String>,
    req: Req,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let due_text = f(&form, "due").trim().to_owned();
        let due = if due_text.is_empty() {
            None
        } else {
            let parsed = wardline_fhir::datetime::parse_range_in(
                &format!("{}:00", due_text.get(..16).unwrap_or(&due_text)),
                cx.svc.time_zone(),
            )
            .and_then(|(ms, _)| OffsetDateTime::from_unix_timestamp(ms / 1000).ok());
            match parsed {
                Some(d) => Some(d),
                None => {
                    return after(
                        cx,
                        &id,
                        &form,
                        Err(TasksError::Field(
                            "due".into(),
                            "Enter the due date and time, for example 03/12/2026 14:00.".into(),
                        )),
                        "",
                        "due",
                    );
                }
            }
        };
        let change = Change {
            due,
            priority: Some(f(&form, "priority").to_owned()).filter(|p| !p.is_empty()),
        };
        let r = tasks::change(&cx.svc, cx.access(), &id, &change, cx.svc.now());
        after(cx, &id, &form, r, "changed", "due")
    })
    .await
}

/// The header's "Tasks (3 overdue)": the caller's and their teams' open
/// tasks past their due time.
pub(crate) fn overdue_badge(cx: &Cx) -> Option<usize> {
    lists::overdue_count(&cx.svc, cx.access(), cx.svc.now()).ok()
}

pub(crate) fn routes() -> axum::Router<crate::Ui> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/tasks", get(list_page))
        .route("/tasks/{id}", get(task_page))
        .route("/tasks/{id}/claim", post(claim_post))
        .route("/tasks/{id}/assign", post(assign_post))
        .route("/tasks/{id}/complete", post(complete_post))
        .route("/tasks/{id}/change", post(change_post))
}
