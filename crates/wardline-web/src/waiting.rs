//! Waiting-list pages (issue 19): the lists by list and specialty
//! (`/ui/waiting-lists`), one entry to suspend (reason and date), resume,
//! remove (with the reason) or mark validated
//! (`/ui/waiting-lists/entries/{id}`), adding a patient from the chart
//! (`/ui/patients/{id}/waiting-lists/new`: an admitted entry with its
//! intended procedure, P1–P4 and the date decided) and the administrators'
//! validation worklist (`/ui/waiting-lists/validation`). Every rule is
//! `wardline_workflow::waiting`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_workflow::rtt::{self, specialty_name};
use wardline_workflow::waiting::validation::{self, Filter, Row};
use wardline_workflow::waiting::{self, List, NewEntry, Priority, State as Entry, WaitingError};

use crate::layout::{self, Nav};
use crate::referrals::patient_name;
use crate::rtt::{consultant_name, consultant_options, specialty_options, today};
use crate::{Cx, Form, Req, St, enc, see_other};

fn refusal(e: &WaitingError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "waiting-list entry")
}

fn state_tag(s: Entry) -> Markup {
    let class = match s {
        Entry::Waiting => "nhsuk-tag nhsuk-tag--blue",
        Entry::Booked => "nhsuk-tag nhsuk-tag--green",
        Entry::Suspended => "nhsuk-tag nhsuk-tag--orange",
        Entry::Completed => "nhsuk-tag nhsuk-tag--grey",
        Entry::Removed => "nhsuk-tag nhsuk-tag--red",
    };
    html! { strong class=(class) data-testid="entry-state" { (s.label()) } }
}

fn list_options(first: &str) -> Vec<(String, String)> {
    let mut o = vec![(String::new(), first.to_owned())];
    o.extend(
        List::ALL
            .iter()
            .map(|l| (l.code().to_owned(), l.label().to_owned())),
    );
    o
}

fn rows_table(cx: &Cx, rows: &[Row], with_patient: bool, testid: &str) -> Markup {
    html! {
        @if rows.is_empty() { p data-testid={ (testid) "-empty" } { "No one is on this list." } } @else {
            table class="nhsuk-table" data-testid=(testid) {
                thead class="nhsuk-table__head" { tr {
                    @if with_patient { th scope="col" { "Patient" } }
                    th scope="col" { "List" } th scope="col" { "Specialty" } th scope="col" { "Priority" } th scope="col" { "Procedure" }
                    th scope="col" { "Decided" } th scope="col" { "Weeks (RTT)" } th scope="col" { "State" }
                } }
                tbody class="nhsuk-table__body" {
                    @for r in rows {
                        tr class="nhsuk-table__row" data-testid="entry-row" data-entry=(r.id) data-priority=(r.priority.map_or("", Priority::code)) {
                            @if with_patient { td class="nhsuk-table__cell" { (patient_name(cx, &format!("Patient/{}", r.patient))) } }
                            td class="nhsuk-table__cell" { a href={ "/ui/waiting-lists/entries/" (enc(&r.id)) } data-testid="open-entry" { (r.list.label()) } }
                            td class="nhsuk-table__cell" { (specialty_name(&r.specialty)) }
                            td class="nhsuk-table__cell" { (r.priority.map_or("—", Priority::label)) }
                            td class="nhsuk-table__cell" { (r.procedure) }
                            td class="nhsuk-table__cell" { (r.decided.map(|d| layout::long_date(&d.to_string())).unwrap_or_default()) }
                            td class="nhsuk-table__cell" data-testid="entry-weeks" { @match r.weeks { Some(w) => (w), None => "—" } }
                            td class="nhsuk-table__cell" { (state_tag(r.state)) }
                        }
                    }
                }
            }
        }
    }
}

/// A patient's entries still on a list (on the patient's pathways page).
pub(crate) fn patient_entries(cx: &Cx, patient: &str) -> Markup {
    let f = Filter {
        patient: Some(patient),
        ..Filter::default()
    };
    match validation::entries(&cx.svc, cx.access(), f, today()) {
        Ok(rows) => rows_table(cx, &rows, false, "patient-entries"),
        Err(e) => html! { p class="nhsuk-error-message" { (e.message()) } },
    }
}

/// `GET /ui/waiting-lists?list=&specialty=`.
pub(crate) async fn lists_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let list = q.get("list").and_then(|l| List::parse(l));
        let specialty = q.get("specialty").filter(|s| !s.is_empty()).cloned();
        let f = Filter { list, specialty: specialty.as_deref(), patient: None };
        match validation::entries(&cx.svc, cx.access(), f, today()) {
            Ok(rows) => layout::page(cx, "Waiting lists", Nav::None, html! {
                h1 { "Waiting lists" }
                p { a href="/ui/waiting-lists/validation" data-testid="validation-link" { "Validation worklist" } " · " a href="/ui/rtt/ptl" { "Patient-targeted list (PTL)" } " · " a href="/ui/referrals/triage" { "Referrals to triage" } }
                form method="get" action="/ui/waiting-lists" class="nhsuk-u-margin-bottom-4" {
                    (layout::select("list", "List", &list_options("All lists"), list.map_or("", List::code), None))
                    (layout::select("specialty", "Specialty", &specialty_options("All specialties"), specialty.as_deref().unwrap_or(""), None))
                    button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Show" }
                }
                p data-testid="entry-count" { (rows.len()) " on the list" }
                (rows_table(cx, &rows, true, "entries"))
            }),
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn entry_body(cx: &Cx, r: &Row, error: Option<&WaitingError>, done: Option<&str>) -> Markup {
    let base = format!("/ui/waiting-lists/entries/{}", enc(&r.id));
    let err = |field: &str| {
        error
            .filter(|e| e.field() == Some(field))
            .map(|e| e.message())
    };
    let on_list = matches!(r.state, Entry::Waiting | Entry::Booked | Entry::Suspended);
    html! {
        (layout::back_link("/ui/waiting-lists", "Back to the waiting lists"))
        span class="nhsuk-caption-l" { (patient_name(cx, &format!("Patient/{}", r.patient))) }
        h1 { (r.list.label()) " waiting list" }
        @if let Some(d) = done { (layout::success(match d { "suspended" => "Suspended.", "resumed" => "Waiting again.", "validated" => "Marked validated.", _ => "Saved." })) }
        @if let Some(e) = error { (layout::error_summary(&[(e.field().unwrap_or("reason").to_owned(), e.message())])) }
        dl class="nhsuk-summary-list" data-testid="entry" data-entry=(r.id) {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "State" } dd class="nhsuk-summary-list__value" { (state_tag(r.state)) } }
            @if let Some((why, until)) = &r.suspended {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Suspended" } dd class="nhsuk-summary-list__value" data-testid="suspension" { (why) " until " (layout::long_date(until)) } }
            }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Priority" } dd class="nhsuk-summary-list__value" { (r.priority.map_or("—", Priority::label)) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Specialty" } dd class="nhsuk-summary-list__value" { (specialty_name(&r.specialty)) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Consultant" } dd class="nhsuk-summary-list__value" { (consultant_name(cx, r.consultant.as_deref())) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Procedure" } dd class="nhsuk-summary-list__value" { (r.procedure) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Date decided" } dd class="nhsuk-summary-list__value" { (r.decided.map(|d| layout::long_date(&d.to_string())).unwrap_or_default()) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "RTT pathway" } dd class="nhsuk-summary-list__value" {
                @match &r.pathway { Some(p) => { a href={ "/ui/rtt/pathways/" (enc(p)) } { "Open the pathway" } @if let Some(w) = r.weeks { " (" (w) " weeks waited)" } }, None => "None" }
            } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Last validated" } dd class="nhsuk-summary-list__value" { (r.last_validated.map(|d| layout::long_date(&d.to_string())).unwrap_or_else(|| "Never".into())) } }
        }
        @if r.state == Entry::Waiting {
            h2 { "Suspend" }
            form method="post" action={ (base) "/suspend" } novalidate {
                (layout::csrf(cx))
                (layout::input(&layout::Field { error: err("reason").as_deref(), ..layout::Field::new("reason", "Reason") }))
                (layout::input(&layout::Field { kind: "date", error: err("until").as_deref(), ..layout::Field::new("until", "Until") }))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="suspend" { "Suspend" }
            }
        }
        @if r.state == Entry::Suspended {
            (layout::action_button(cx, &format!("{base}/resume"), "Resume: waiting again", "nhsuk-button--secondary"))
        }
        @if on_list {
            (layout::action_button(cx, &format!("{base}/validate"), "Mark validated", "nhsuk-button--secondary"))
            h2 { "Remove from the list" }
            form method="post" action={ (base) "/remove" } novalidate {
                (layout::csrf(cx))
                (layout::input(&layout::Field { error: err("remove-reason").as_deref(), ..layout::Field::new("remove-reason", "Why is the patient removed?") }))
                button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" data-testid="remove" { "Remove" }
            }
        }
    }
}

fn find(cx: &Cx, id: &str) -> Result<Row, WaitingError> {
    let sr = cx
        .svc
        .read_as(cx.access(), "ServiceRequest", id)?
        .filter(waiting::is_entry)
        .ok_or_else(|| WaitingError::NotFound(format!("There is no waiting-list entry {id}.")))?;
    let patient = wardline_workflow::fhir::reference_id(&sr["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    // Entries that left the list are read by their patient's list too.
    let f = Filter {
        patient: Some(&patient),
        ..Filter::default()
    };
    if let Some(r) = validation::entries(&cx.svc, cx.access(), f, today())?
        .into_iter()
        .find(|r| r.id == id)
    {
        return Ok(r);
    }
    Ok(Row {
        id: id.to_owned(),
        patient,
        list: waiting::list_of(&sr).unwrap_or(List::OutpatientNew),
        specialty: String::new(),
        consultant: None,
        priority: waiting::priority_of(&sr),
        procedure: wardline_workflow::fhir::concept_text(&sr["code"]).unwrap_or_default(),
        decided: sr["authoredOn"].as_str().and_then(rtt::parse_date),
        state: waiting::state_of(&sr),
        booked: None,
        pathway: waiting::pathway_of(&sr).map(str::to_owned),
        weeks: None,
        suspended: None,
        last_validated: validation::last_validated(&sr),
        problems: Vec::new(),
    })
}

fn show(cx: &Cx, id: &str, error: Option<&WaitingError>, done: Option<&str>) -> Response {
    match find(cx, id) {
        Ok(r) => {
            let mut resp = layout::page(
                cx,
                "Waiting-list entry",
                Nav::None,
                entry_body(cx, &r, error, done),
            );
            if error.is_some() {
                *resp.status_mut() = StatusCode::BAD_REQUEST;
            }
            resp
        }
        Err(e) => refusal(&e),
    }
}

/// `GET /ui/waiting-lists/entries/{id}`.
pub(crate) async fn entry_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        show(cx, &id, None, q.get("done").map(String::as_str))
    })
    .await
}

enum Act {
    Suspend,
    Resume,
    Remove,
    Validate,
}

async fn act(ui: St, req: Req, id: String, body: Bytes, a: Act) -> Response {
    let State(ui) = ui;
    ui.run(req, Some(&body), move |cx, f| {
        let (svc, access) = (&cx.svc, cx.access());
        let text = |k: &str| f.get(k).cloned().unwrap_or_default();
        let (r, done) = match a {
            Act::Suspend => match rtt::parse_date(&text("until")) {
                Some(until) if until > today() => (
                    waiting::suspend(svc, access, &id, &text("reason"), until),
                    "suspended",
                ),
                Some(_) => (
                    Err(WaitingError::Field(
                        "until",
                        "The suspension ends on a date in the future.".into(),
                    )),
                    "",
                ),
                None => (
                    Err(WaitingError::Field(
                        "until",
                        "Enter the date the suspension ends as day, month and year.".into(),
                    )),
                    "",
                ),
            },
            Act::Resume => (waiting::resume(svc, access, &id), "resumed"),
            Act::Remove => (
                waiting::remove(svc, access, &id, &text("remove-reason")).map_err(|e| match e {
                    WaitingError::Field("reason", m) => WaitingError::Field("remove-reason", m),
                    e => e,
                }),
                "removed",
            ),
            Act::Validate => (validation::validate(svc, access, &id, today()), "validated"),
        };
        match r {
            Ok(()) if done == "removed" => see_other("/ui/waiting-lists?done=removed"),
            Ok(()) => see_other(&format!(
                "/ui/waiting-lists/entries/{}?done={done}",
                enc(&id)
            )),
            Err(e @ (WaitingError::Field(..) | WaitingError::State(_))) => {
                show(cx, &id, Some(&e), None)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/waiting-lists/entries/{id}/suspend`.
pub(crate) async fn suspend_post(
    ui: St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(ui, req, id, body, Act::Suspend).await
}

/// `POST /ui/waiting-lists/entries/{id}/resume`.
pub(crate) async fn resume_post(ui: St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    act(ui, req, id, body, Act::Resume).await
}

/// `POST /ui/waiting-lists/entries/{id}/remove`.
pub(crate) async fn remove_post(ui: St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    act(ui, req, id, body, Act::Remove).await
}

/// `POST /ui/waiting-lists/entries/{id}/validate`.
pub(crate) async fn validate_post(
    ui: St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(ui, req, id, body, Act::Validate).await
}

// ---------------------------------------------------------------- add from the chart

fn add_body(cx: &Cx, patient: &str, f: &Form, error: Option<&WaitingError>) -> Markup {
    let err = |field: &str| {
        error
            .filter(|e| e.field() == Some(field))
            .map(|e| e.message())
    };
    let val = |k: &str| f.get(k).cloned().unwrap_or_default();
    let lists: Vec<(&str, &str)> = List::ALL.iter().map(|l| (l.code(), l.label())).collect();
    let priorities: Vec<(String, String)> =
        std::iter::once((String::new(), "Choose a priority".to_owned()))
            .chain(
                Priority::ALL
                    .iter()
                    .map(|p| (p.code().to_owned(), p.label().to_owned())),
            )
            .collect();
    let pathways: Vec<(String, String)> = std::iter::once((String::new(), "None".to_owned()))
        .chain(
            cx.svc
                .search_as(
                    cx.access(),
                    "EpisodeOfCare",
                    &[
                        ("patient", format!("Patient/{patient}")),
                        ("status", "active".to_owned()),
                    ],
                )
                .map(|f| f.resources)
                .unwrap_or_default()
                .iter()
                .filter_map(rtt::Pathway::of)
                .map(|p| {
                    (
                        p.id.clone(),
                        format!(
                            "{} from {}",
                            specialty_name(&p.specialty),
                            layout::long_date(&p.start.to_string())
                        ),
                    )
                }),
        )
        .collect();
    html! {
        (layout::back_link(&format!("/ui/patients/{}/pathways", enc(patient)), "Back to the patient's pathways"))
        span class="nhsuk-caption-l" { (patient_name(cx, &format!("Patient/{patient}"))) }
        h1 { "Add to a waiting list" }
        @if let Some(e) = error { (layout::error_summary(&[(e.field().unwrap_or("list").to_owned(), e.message())])) }
        form method="post" action={ "/ui/patients/" (enc(patient)) "/waiting-lists" } novalidate {
            (layout::csrf(cx))
            (layout::radios("list", "List", &lists, &val("list"), err("list").as_deref()))
            (layout::select("pathway", "RTT pathway", &pathways, &val("pathway"), err("pathway").as_deref()))
            (layout::select("specialty", "Specialty", &specialty_options("Choose a specialty"), &val("specialty"), err("specialty").as_deref()))
            (layout::select("consultant", "Consultant", &consultant_options(cx, "Choose a consultant"), &val("consultant"), err("consultant").as_deref()))
            (layout::input(&layout::Field { hint: Some("SNOMED CT code of the intended procedure (admitted lists)"), value: &val("procedure"), error: err("procedure").as_deref(), ..layout::Field::new("procedure", "Procedure code") }))
            (layout::input(&layout::Field { value: &val("procedure-name"), ..layout::Field::new("procedure-name", "Procedure") }))
            (layout::select("priority", "Priority (admitted lists: P1 to P4)", &priorities, &val("priority"), err("priority").as_deref()))
            (layout::input(&layout::Field { kind: "date", value: &val("decided"), error: err("decided").as_deref(), ..layout::Field::new("decided", "Date decided") }))
            (layout::input(&layout::Field { value: &val("note"), ..layout::Field::new("note", "Note (optional)") }))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="add-entry" { "Add to the list" }
        }
    }
}

/// `GET /ui/patients/{id}/waiting-lists/new`.
pub(crate) async fn add_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        layout::page(
            cx,
            "Add to a waiting list",
            Nav::Patients,
            add_body(cx, &id, &q, None),
        )
    })
    .await
}

fn some(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// `POST /ui/patients/{id}/waiting-lists`.
pub(crate) async fn add_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let text = |k: &str| f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        let fail = |e: WaitingError| {
            let mut r = layout::page(
                cx,
                "Add to a waiting list",
                Nav::Patients,
                add_body(cx, &id, &f, Some(&e)),
            );
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        };
        let Some(list) = List::parse(&text("list")) else {
            return fail(WaitingError::Field("list", "Choose the list.".into()));
        };
        let Some(priority) = Priority::parse(&text("priority")) else {
            return fail(WaitingError::Field(
                "priority",
                "Choose the priority.".into(),
            ));
        };
        let Some(decided) = rtt::parse_date(&text("decided")).filter(|d| *d <= today()) else {
            return fail(WaitingError::Field(
                "decided",
                "Enter the date decided (today or before) as day, month and year.".into(),
            ));
        };
        let (pathway, consultant, code, name, note) = (
            text("pathway"),
            text("consultant"),
            text("procedure"),
            text("procedure-name"),
            text("note"),
        );
        let specialty = text("specialty");
        let e = NewEntry {
            patient: &id,
            list,
            pathway: some(&pathway),
            specialty: &specialty,
            consultant: some(&consultant),
            procedure: some(&code).map(|c| (c, name.as_str())),
            priority,
            decided,
            note: some(&note),
        };
        match waiting::add(&cx.svc, cx.access(), &e) {
            Ok(entry) => see_other(&format!(
                "/ui/waiting-lists/entries/{}?done=added",
                enc(&entry)
            )),
            Err(e @ (WaitingError::Field(..) | WaitingError::State(_))) => fail(e),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- validation

/// `GET /ui/waiting-lists/validation`.
pub(crate) async fn validation_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, _| match validation::worklist(&cx.svc, cx.access(), today()) {
        Ok(rows) => layout::page(cx, "Validation", Nav::None, html! {
            (layout::back_link("/ui/waiting-lists", "Back to the waiting lists"))
            h1 { "Waiting-list validation" }
            p { "Entries still on a list with something to check: no RTT pathway, two entries on one pathway and list, a patient who has died, a booked appointment in the past with no outcome, or not validated for 12 weeks." }
            @if rows.is_empty() { p data-testid="validation-empty" { "Nothing to validate." } } @else {
                table class="nhsuk-table" data-testid="validation" {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "Patient" } th scope="col" { "List" } th scope="col" { "To check" } th scope="col" { "" } } }
                    tbody class="nhsuk-table__body" {
                        @for r in &rows {
                            tr class="nhsuk-table__row" data-testid="validation-row" data-entry=(r.id) {
                                td class="nhsuk-table__cell" { (patient_name(cx, &format!("Patient/{}", r.patient))) }
                                td class="nhsuk-table__cell" { a href={ "/ui/waiting-lists/entries/" (enc(&r.id)) } { (r.list.label()) " – " (specialty_name(&r.specialty)) } }
                                td class="nhsuk-table__cell" { ul class="nhsuk-list" { @for p in &r.problems { li data-problem=(p.code()) { (p.label()) } } } }
                                td class="nhsuk-table__cell" {
                                    form method="post" action={ "/ui/waiting-lists/entries/" (enc(&r.id)) "/validate" } novalidate {
                                        (layout::csrf(cx))
                                        button class="nhsuk-button nhsuk-button--secondary nhsuk-u-margin-bottom-0" data-module="nhsuk-button" type="submit" data-testid="validate" { "Validated" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }),
        Err(e) => refusal(&e),
    })
    .await
}
