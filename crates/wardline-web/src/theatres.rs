//! The theatre pages (issue 19): the day's sessions and planning one
//! (`/ui/theatres`), a session's list built from the admitted waiting list
//! (`/ui/theatres/sessions/{id}`), a case on the day with its steps, the
//! WHO surgical safety checklist and the operation
//! (`/ui/theatres/cases/{id}`), and utilisation
//! (`/ui/theatres/utilisation`). Every rule is
//! `wardline_workflow::theatres`'s: a step the checklist does not allow yet
//! comes back from the write rule and is shown as the error summary.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use time::{Date, OffsetDateTime};
use wardline_auth::rbac::Activity;
use wardline_workflow::outpatients::clinics::{date_text, parse_date, parse_time};
use wardline_workflow::rtt::SPECIALTIES;
use wardline_workflow::theatres::day::{self, CaseDetail};
use wardline_workflow::theatres::list::{self, NewSession, Session};
use wardline_workflow::theatres::utilisation::{self, Utilisation};
use wardline_workflow::theatres::{Part, Step, TheatreError};

use crate::layout::{self, Field, Nav};
use crate::outpatients::{clock, error_for, f, options, summary};
use crate::{Cx, Form, Req, St, enc, see_other};

fn refusal(e: &TheatreError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "theatre record")
}

/// A local date and "HH:MM" in the trust's zone, as an instant.
fn local(cx: &Cx, day: Date, hm: &str) -> Option<OffsetDateTime> {
    let t = parse_time(hm)?;
    let (ms, _) = wardline_fhir::datetime::parse_range_in(
        &format!("{}T{:02}:{:02}:00", date_text(day), t.hour(), t.minute()),
        cx.svc.time_zone(),
    )?;
    OffsetDateTime::from_unix_timestamp(ms / 1000).ok()
}

fn hm(cx: &Cx, t: OffsetDateTime) -> String {
    clock(cx, &wardline_workflow::orders::request::fhir_time(t))
}

fn may_act(cx: &Cx) -> bool {
    cx.may(Activity::RecordClinical)
}

// ---------------------------------------------------------------- the day's sessions

fn day_body(
    cx: &Cx,
    day: Date,
    sessions: &[Session],
    form: &Form,
    error: &Option<(String, String)>,
) -> Markup {
    let theatres: Vec<(String, String)> = {
        let mut v = vec![(String::new(), "Choose…".to_owned())];
        if let Ok(mut tx) = cx.svc.begin(cx.access())
            && let Ok(ts) = list::theatres_in(&mut tx)
        {
            v.extend(ts.into_iter().map(|t| (t.id, t.name)));
        }
        v
    };
    let mut specialties = vec![(String::new(), "Choose…".to_owned())];
    specialties.extend(
        SPECIALTIES
            .iter()
            .map(|(c, n)| ((*c).to_owned(), format!("{c} {n}"))),
    );
    let people = options(cx, "Practitioner");
    let field = |id: &'static str, label: &'static str| Field {
        value: f(form, id),
        error: error_for(error, id),
        ..Field::new(id, label)
    };
    let day_s = date_text(day);
    html! {
        h1 { "Theatres" }
        p { a href="/ui/theatres/utilisation" data-testid="to-utilisation" { "Theatre utilisation" } }
        form method="get" action="/ui/theatres" class="nhsuk-u-margin-bottom-4" {
            (layout::input(&Field { kind: "date", value: &day_s, ..Field::new("date", "Day") }))
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="show-day" { "Show" }
        }
        h2 { "Sessions on " (layout::long_date(&day_s)) }
        @if sessions.is_empty() {
            p data-testid="no-sessions" { "No theatre sessions on this day." }
        } @else {
            table class="nhsuk-table" data-testid="sessions" {
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Theatre" } th scope="col" { "Time" } th scope="col" { "Specialty" }
                    th scope="col" { "Surgeon" } th scope="col" { "Cases" } th scope="col" { "Booked" }
                } }
                tbody class="nhsuk-table__body" {
                    @for s in sessions {
                        tr class="nhsuk-table__row" data-testid="session-row" data-session=(s.id) {
                            td class="nhsuk-table__cell" { a href={ "/ui/theatres/sessions/" (enc(&s.id)) } data-testid="open-session" { (s.theatre_name) } }
                            td class="nhsuk-table__cell" { (hm(cx, s.start)) " to " (hm(cx, s.end)) }
                            td class="nhsuk-table__cell" { (s.specialty_name) }
                            td class="nhsuk-table__cell" { (s.surgeon_name) }
                            td class="nhsuk-table__cell" { (s.cases.iter().filter(|c| c.status != "cancelled").count()) }
                            td class="nhsuk-table__cell" {
                                (s.booked_minutes) " of " (s.length_minutes) " min"
                                @if s.overrun_minutes() > 0 { " " strong class="nhsuk-tag nhsuk-tag--red" { "Over-runs" } }
                                @if !s.conflicts.is_empty() { " " strong class="nhsuk-tag nhsuk-tag--red" { "Conflict" } }
                            }
                        }
                    }
                }
            }
        }
        @if may_act(cx) {
            h2 id="plan" { "Plan a session" }
            (summary(error))
            form method="post" action="/ui/theatres" novalidate {
                (layout::csrf(cx))
                (layout::select("theatre", "Theatre", &theatres, f(form, "theatre"), error_for(error, "theatre")))
                (layout::select("specialty", "Specialty", &specialties, f(form, "specialty"), error_for(error, "specialty")))
                (layout::select("surgeon", "Surgeon", &people, f(form, "surgeon"), error_for(error, "surgeon")))
                (layout::select("anaesthetist", "Anaesthetist", &people, f(form, "anaesthetist"), error_for(error, "anaesthetist")))
                (layout::input(&Field { kind: "date", ..field("day", "Date") }))
                (layout::input(&Field { hint: Some("24-hour clock, for example 08:00"), width: "nhsuk-input--width-5", ..field("start", "Start") }))
                (layout::input(&Field { hint: Some("For example 13:00"), width: "nhsuk-input--width-5", ..field("end", "End") }))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="plan-session" { "Plan session" }
            }
        }
    }
}

/// `GET /ui/theatres?date=`.
pub(crate) async fn day_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let day = q
            .get("date")
            .and_then(|d| parse_date(d))
            .unwrap_or_else(|| cx.svc.now().date());
        match list::sessions_on(&cx.svc, cx.access(), day) {
            Ok(s) => layout::page(
                cx,
                "Theatres",
                Nav::None,
                day_body(cx, day, &s, &Form::new(), &None),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/theatres`: plan a session.
pub(crate) async fn day_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let back = |day: Date, e: TheatreError| {
            let error = Some((e.field().unwrap_or("theatre").to_owned(), e.message()));
            match list::sessions_on(&cx.svc, cx.access(), day) {
                Ok(s) => layout::page(
                    cx,
                    "Theatres",
                    Nav::None,
                    day_body(cx, day, &s, &form, &error),
                ),
                Err(e) => refusal(&e),
            }
        };
        let Some(day) = parse_date(f(&form, "day")) else {
            return back(
                cx.svc.now().date(),
                TheatreError::Field("day", "Enter the session's date as a real date.".into()),
            );
        };
        let (Some(start), Some(end)) = (
            local(cx, day, f(&form, "start")),
            local(cx, day, f(&form, "end")),
        ) else {
            let field = if local(cx, day, f(&form, "start")).is_none() {
                "start"
            } else {
                "end"
            };
            return back(
                day,
                TheatreError::Field(
                    field,
                    "Enter the time as hours and minutes, for example 08:00.".into(),
                ),
            );
        };
        let anaesthetist = Some(f(&form, "anaesthetist")).filter(|a| !a.is_empty());
        let s = NewSession {
            theatre: f(&form, "theatre"),
            specialty: f(&form, "specialty"),
            surgeon: f(&form, "surgeon"),
            anaesthetist,
            start,
            end,
        };
        match list::plan_session(&cx.svc, cx.access(), &s) {
            Ok(id) => see_other(&format!("/ui/theatres/sessions/{}?done=planned", enc(&id))),
            Err(e @ (TheatreError::Field(..) | TheatreError::Refused(..))) => back(day, e),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- a session's list

fn session_body(
    cx: &Cx,
    s: &Session,
    error: &Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    let base = format!("/ui/theatres/sessions/{}", enc(&s.id));
    let waiting = cx
        .svc
        .begin(cx.access())
        .ok()
        .and_then(|mut tx| list::waiting_in(&mut tx, &s.specialty).ok())
        .unwrap_or_default();
    html! {
        (layout::back_link(&format!("/ui/theatres?date={}", date_text(s.start.date())), "All sessions that day"))
        @if let Some(d) = done { (layout::success(d)) }
        (summary(error))
        span class="nhsuk-caption-l" { (s.specialty_name) " · " (layout::long_date(&date_text(s.start.date()))) }
        h1 data-testid="session-title" { (s.theatre_name) ", " (hm(cx, s.start)) " to " (hm(cx, s.end)) }
        p { "Surgeon: " strong data-testid="surgeon" { (s.surgeon_name) }
            @if let Some(a) = &s.anaesthetist_name { " · Anaesthetist: " strong { (a) } } }
        @for c in &s.conflicts {
            div class="nhsuk-warning-callout" data-testid="conflict" {
                h3 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Conflict" } }
                p { (c) }
            }
        }
        p data-testid="booked-minutes" { "Estimated " (s.booked_minutes) " minutes of " (s.length_minutes) "." }
        @if s.overrun_minutes() > 0 {
            div class="nhsuk-warning-callout" data-testid="overrun" {
                h3 class="nhsuk-warning-callout__label" { span role="text" { "The list over-runs" } }
                p { "The estimated list over-runs the session by " (s.overrun_minutes()) " minutes." }
            }
        }
        h2 { "The list" }
        @if s.cases.is_empty() {
            p data-testid="no-cases" { "No cases on this list yet." }
        } @else {
            table class="nhsuk-table" data-testid="cases" {
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Order" } th scope="col" { "Planned" } th scope="col" { "Patient" } th scope="col" { "Procedure" }
                    th scope="col" { "Estimate" } th scope="col" { "Status" } th scope="col" { span class="nhsuk-u-visually-hidden" { "Move" } }
                } }
                tbody class="nhsuk-table__body" {
                    @for c in &s.cases {
                        tr class="nhsuk-table__row" data-testid="case-row" data-case=(c.id) data-status=(c.status) {
                            td class="nhsuk-table__cell" { @if c.status != "cancelled" { (c.order) } }
                            td class="nhsuk-table__cell" data-testid="planned" { (clock(cx, &c.start)) }
                            td class="nhsuk-table__cell" { a href={ "/ui/theatres/cases/" (enc(&c.id)) } data-testid="open-case" { (c.patient_name) } }
                            td class="nhsuk-table__cell" { (c.procedure) }
                            td class="nhsuk-table__cell" data-testid="estimate" {
                                (c.minutes) " min"
                                @if c.default_estimate { br; span class="nhsuk-body-s" { "default: no past operations with this code" } }
                                @else { br; span class="nhsuk-body-s" { "from past operations" } }
                            }
                            td class="nhsuk-table__cell" data-testid="case-status" {
                                @if c.status == "cancelled" { "Cancelled: " (c.cancel_reason.as_deref().unwrap_or("")) }
                                @else { (c.step.map_or("Booked", |s| s.label())) }
                            }
                            td class="nhsuk-table__cell" {
                                @if may_act(cx) && c.status == "booked" && c.step.is_none() {
                                    form method="post" action={ "/ui/theatres/cases/" (enc(&c.id)) "/move" } novalidate {
                                        (layout::csrf(cx))
                                        button class="nhsuk-button nhsuk-button--secondary nhsuk-u-margin-bottom-0" name="dir" value="up" type="submit" data-testid="move-up" { "Up" }
                                        " "
                                        button class="nhsuk-button nhsuk-button--secondary nhsuk-u-margin-bottom-0" name="dir" value="down" type="submit" data-testid="move-down" { "Down" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_act(cx) {
            h2 id="add" { "Add from the admitted waiting list" }
            @if waiting.is_empty() {
                p data-testid="none-waiting" { "No inpatient or day-case entries of this specialty are waiting." }
            } @else {
                form method="post" action={ (base) "/add" } novalidate {
                    (layout::csrf(cx))
                    div class={ "nhsuk-form-group" @if error_for(error, "entry").is_some() { " nhsuk-form-group--error" } } {
                        fieldset class="nhsuk-fieldset" {
                            legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Patient waiting" }
                            @if let Some(e) = error_for(error, "entry") { span class="nhsuk-error-message" id="entry-error" { (e) } }
                            div class="nhsuk-radios" id="entry" {
                                @for (i, w) in waiting.iter().enumerate() {
                                    div class="nhsuk-radios__item" {
                                        input class="nhsuk-radios__input" id={ "entry-" (i) } name="entry" type="radio" value=(w.0) data-testid="waiting-entry" data-patient=(w.1);
                                        label class="nhsuk-label nhsuk-radios__label" for={ "entry-" (i) } {
                                            (w.2) ": " (w.3) " (" (w.4) " min" @if w.5 { ", default estimate" } ")"
                                        }
                                    }
                                }
                            }
                        }
                    }
                    div class={ "nhsuk-form-group" @if error_for(error, "accept-overrun").is_some() { " nhsuk-form-group--error" } } {
                        @if let Some(e) = error_for(error, "accept-overrun") { span class="nhsuk-error-message" id="accept-overrun-error" { (e) } }
                        div class="nhsuk-checkboxes" {
                            div class="nhsuk-checkboxes__item" {
                                input class="nhsuk-checkboxes__input" id="accept-overrun" name="accept-overrun" type="checkbox" value="yes";
                                label class="nhsuk-label nhsuk-checkboxes__label" for="accept-overrun" { "I accept that the list will over-run the session" }
                            }
                        }
                    }
                    button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="add-case" { "Add to the list" }
                }
            }
        }
    }
}

fn show_session(
    cx: &Cx,
    id: &str,
    error: Option<(String, String)>,
    done: Option<&str>,
) -> Response {
    match list::session(&cx.svc, cx.access(), id) {
        Ok(s) => layout::page(
            cx,
            &s.theatre_name,
            Nav::None,
            session_body(cx, &s, &error, done),
        ),
        Err(e) => refusal(&e),
    }
}

/// `GET /ui/theatres/sessions/{id}`.
pub(crate) async fn session_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match q.get("done").map(String::as_str) {
            Some("planned") => Some("Session planned. Add cases from the waiting list below."),
            Some("added") => Some("Case added to the list."),
            Some("moved") => Some("List reordered."),
            Some("cancelled") => Some("Case cancelled: the patient is back on the waiting list."),
            _ => None,
        };
        show_session(cx, &id, None, done)
    })
    .await
}

/// `POST /ui/theatres/sessions/{id}/add`.
pub(crate) async fn add_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let entry = f(&form, "entry");
        if entry.is_empty() {
            return show_session(
                cx,
                &id,
                Some(("entry".into(), "Choose the patient to add.".into())),
                None,
            );
        }
        match list::add_case(
            &cx.svc,
            cx.access(),
            &id,
            entry,
            f(&form, "accept-overrun") == "yes",
        ) {
            Ok(_) => see_other(&format!("/ui/theatres/sessions/{}?done=added", enc(&id))),
            Err(e @ (TheatreError::Field(..) | TheatreError::Refused(..))) => show_session(
                cx,
                &id,
                Some((e.field().unwrap_or("entry").to_owned(), e.message())),
                None,
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/theatres/cases/{id}/move` (`dir` up or down).
pub(crate) async fn move_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let session = match day::detail(&cx.svc, cx.access(), &id) {
            Ok(d) => d.session.id,
            Err(e) => return refusal(&e),
        };
        match list::move_case(&cx.svc, cx.access(), &id, f(&form, "dir") == "up") {
            Ok(()) => see_other(&format!(
                "/ui/theatres/sessions/{}?done=moved",
                enc(&session)
            )),
            Err(e @ TheatreError::Refused(..)) => {
                show_session(cx, &session, Some(("entry".into(), e.message())), None)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- a case on the day

fn case_body(
    cx: &Cx,
    d: &CaseDetail,
    error: &Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    let base = format!(
        "/ui/theatres/cases/{}",
        enc(d.case["id"].as_str().unwrap_or(""))
    );
    let status = d.case["status"].as_str().unwrap_or("");
    let next = d.steps.iter().find(|(_, t)| t.is_none()).map(|(s, _)| *s);
    let procedure =
        wardline_workflow::fhir::concept_text(&d.case["reasonCode"][0]).unwrap_or_default();
    html! {
        (layout::back_link(&format!("/ui/theatres/sessions/{}", enc(&d.session.id)), "The list"))
        @if let Some(m) = done { (layout::success(m)) }
        (summary(error))
        span class="nhsuk-caption-l" { (d.session.theatre_name) " · " (d.session.surgeon_name) }
        h1 data-testid="case-title" { (d.patient_name) }
        p { "Procedure: " strong data-testid="procedure" { (procedure) } }
        @if status == "cancelled" {
            p data-testid="cancelled" { "Cancelled: " (d.case["cancelationReason"]["text"].as_str().unwrap_or("")) }
        }
        h2 { "On the day" }
        table class="nhsuk-table" data-testid="steps" {
            tbody class="nhsuk-table__body" {
                @for (s, t) in &d.steps {
                    tr class="nhsuk-table__row" data-testid="step-row" data-step=(s.code()) {
                        th scope="row" class="nhsuk-table__header" { (s.label()) }
                        td class="nhsuk-table__cell" data-testid="step-time" { (t.as_deref().map(|t| clock(cx, t)).unwrap_or_else(|| "—".into())) }
                    }
                }
            }
        }
        @if may_act(cx) && status == "booked" {
            @if let Some(n) = next {
                form method="post" action={ (base) "/step" } novalidate id="step" {
                    (layout::csrf(cx))
                    input type="hidden" name="step" value=(n.code());
                    button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="next-step" data-step=(n.code()) { "Record: " (n.label().to_lowercase()) }
                }
            }
        }
        h2 { "WHO surgical safety checklist" }
        @for (part, complete, items) in &d.checklist {
            section data-testid="checklist-part" data-part=(part.code()) data-complete=(complete) {
                h3 { (part.label()) @if *complete { " " strong class="nhsuk-tag nhsuk-tag--green" { "Complete" } } }
                form method="post" action={ (base) "/checklist" } novalidate id=(part.code()) {
                    (layout::csrf(cx))
                    input type="hidden" name="part" value=(part.code());
                    div class="nhsuk-checkboxes" {
                        @for (code, text, by) in items {
                            div class="nhsuk-checkboxes__item" {
                                input class="nhsuk-checkboxes__input" id=(code) name={ "item-" (code) } type="checkbox" value="yes"
                                    checked[by.is_some()] disabled[by.is_some()] data-testid="checklist-item";
                                label class="nhsuk-label nhsuk-checkboxes__label" for=(code) {
                                    (text)
                                    @if let Some((who, at)) = by { br; span class="nhsuk-body-s" data-testid="ticked-by" { "Ticked by " (who) " at " (clock(cx, at)) } }
                                }
                            }
                        }
                    }
                    @if !*complete && may_act(cx) && status == "booked" {
                        button class="nhsuk-button nhsuk-button--secondary nhsuk-u-margin-top-3" data-module="nhsuk-button" type="submit" data-testid="tick" { "Confirm ticked items" }
                    }
                }
            }
        }
        h2 id="operation" { "The operation" }
        @if let Some(p) = &d.procedure {
            p data-testid="operation-recorded" { "Recorded as Procedure/" (p) "." }
        } @else if may_act(cx) && d.steps.iter().any(|(s, t)| *s == Step::Closed && t.is_some()) {
            form method="post" action={ (base) "/operation" } novalidate {
                (layout::csrf(cx))
                div class="nhsuk-checkboxes nhsuk-u-margin-bottom-3" {
                    div class="nhsuk-checkboxes__item" {
                        input class="nhsuk-checkboxes__input" id="definitive" name="definitive" type="checkbox" value="yes" checked;
                        label class="nhsuk-label nhsuk-checkboxes__label" for="definitive" { "This is the first definitive treatment (stops the RTT clock on the day of the operation)" }
                    }
                }
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="record-operation" { "Record the operation" }
            }
        } @else {
            p { "Recorded after the wound is closed." }
        }
        @if may_act(cx) && status == "booked" && next.is_some_and(|n| n <= Step::KnifeToSkin) {
            h2 id="cancel" { "Cancel the case" }
            form method="post" action={ (base) "/cancel" } novalidate {
                (layout::csrf(cx))
                (layout::input(&Field { error: error_for(error, "reason"), ..Field::new("reason", "Reason") }))
                button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" data-testid="cancel-case" { "Cancel the case" }
            }
        }
    }
}

fn show_case(cx: &Cx, id: &str, error: Option<(String, String)>, done: Option<&str>) -> Response {
    match day::detail(&cx.svc, cx.access(), id) {
        Ok(d) => layout::page(
            cx,
            &d.patient_name,
            Nav::None,
            case_body(cx, &d, &error, done),
        ),
        Err(e) => refusal(&e),
    }
}

fn after(cx: &Cx, id: &str, r: Result<String, TheatreError>, field: &str) -> Response {
    match r {
        Ok(to) => see_other(&to),
        Err(e @ (TheatreError::Field(..) | TheatreError::Refused(..))) => show_case(
            cx,
            id,
            Some((e.field().unwrap_or(field).to_owned(), e.message())),
            None,
        ),
        Err(e) => refusal(&e),
    }
}

/// `GET /ui/theatres/cases/{id}`.
pub(crate) async fn case_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match q.get("done").map(String::as_str) {
            Some("step") => Some("Time recorded."),
            Some("ticked") => Some("Checklist items recorded."),
            Some("operation") => Some("Operation recorded."),
            _ => None,
        };
        show_case(cx, &id, None, done)
    })
    .await
}

/// `POST /ui/theatres/cases/{id}/step`.
pub(crate) async fn step_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let r = match Step::parse(f(&form, "step")) {
            None => Err(TheatreError::Field("step", "Choose the step.".into())),
            Some(s) => day::step(&cx.svc, cx.access(), &id, s, cx.svc.now()),
        }
        .map(|()| format!("/ui/theatres/cases/{}?done=step", enc(&id)));
        after(cx, &id, r, "step")
    })
    .await
}

/// `POST /ui/theatres/cases/{id}/checklist`.
pub(crate) async fn checklist_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let part = Part::parse(f(&form, "part"));
        let items: Vec<&str> = form
            .iter()
            .filter(|(k, v)| k.starts_with("item-") && v.as_str() == "yes")
            .map(|(k, _)| &k[5..])
            .filter(|c| part.is_none_or(|p| c.starts_with(p.code())))
            .collect();
        let who = cx
            .principal
            .agent
            .who
            .clone()
            .unwrap_or_else(|| cx.principal.agent.name.clone());
        let name = format!("{} ({})", cx.principal.agent.name, cx.position);
        let field = part.map_or("step", |p| p.code());
        let r = day::tick(
            &cx.svc,
            cx.access(),
            &id,
            &items,
            (&who, &name),
            cx.svc.now(),
        )
        .map(|()| format!("/ui/theatres/cases/{}?done=ticked", enc(&id)));
        after(cx, &id, r, field)
    })
    .await
}

/// `POST /ui/theatres/cases/{id}/operation`.
pub(crate) async fn operation_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let r = day::record_operation(
            &cx.svc,
            cx.access(),
            &id,
            None,
            f(&form, "definitive") == "yes",
        )
        .map(|_| format!("/ui/theatres/cases/{}?done=operation", enc(&id)));
        after(cx, &id, r, "operation")
    })
    .await
}

/// `POST /ui/theatres/cases/{id}/cancel`.
pub(crate) async fn cancel_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let session = match day::detail(&cx.svc, cx.access(), &id) {
            Ok(d) => d.session.id,
            Err(e) => return refusal(&e),
        };
        let r = list::cancel(&cx.svc, cx.access(), &id, f(&form, "reason"), cx.svc.now())
            .map(|()| format!("/ui/theatres/sessions/{}?done=cancelled", enc(&session)));
        after(cx, &id, r, "reason")
    })
    .await
}

// ---------------------------------------------------------------- utilisation

fn chart(u: &Utilisation) -> Markup {
    let bar_h = 22;
    let height = (u.sessions.len() as i64 * (bar_h + 8)).max(bar_h) + 10;
    html! {
        svg width="640" height=(height) role="img" aria-label="Touch time per session, per cent of the session" data-testid="chart" {
            @for (i, s) in u.sessions.iter().enumerate() {
                @let y = i as i64 * (bar_h + 8) + 5;
                @let w = (s.touch_percent.clamp(0, 100) * 4).max(1);
                text x="0" y=(y + 16) font-size="13" { (s.date) " " (s.theatre) }
                rect x="200" y=(y) width=(w) height=(bar_h) fill="#005eb8" {}
                text x=(205 + w) y=(y + 16) font-size="13" { (s.touch_percent) "%" }
            }
        }
    }
}

/// `GET /ui/theatres/utilisation?from=&to=`.
pub(crate) async fn utilisation_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let today = cx.svc.now().date();
        let from = q.get("from").and_then(|d| parse_date(d)).unwrap_or(today - time::Duration::days(27));
        let to = q.get("to").and_then(|d| parse_date(d)).unwrap_or(today);
        match utilisation::figures(&cx.svc, cx.access(), from, to) {
            Ok(u) => {
                let body = html! {
                    (layout::back_link("/ui/theatres", "Theatres"))
                    h1 { "Theatre utilisation" }
                    form method="get" action="/ui/theatres/utilisation" class="nhsuk-u-margin-bottom-4" {
                        (layout::input(&Field { kind: "date", value: &u.from, ..Field::new("from", "From") }))
                        (layout::input(&Field { kind: "date", value: &u.to, ..Field::new("to", "To") }))
                        button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Show" }
                    }
                    dl class="nhsuk-summary-list" data-testid="totals" {
                        div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Touch time" } dd class="nhsuk-summary-list__value" data-testid="touch-percent" { (u.touch_percent) "% of session time" } }
                        div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Sessions" } dd class="nhsuk-summary-list__value" { (u.sessions.len()) } }
                        div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Late starts" } dd class="nhsuk-summary-list__value" data-testid="late-starts" { (u.late_starts) } }
                        div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Early finishes" } dd class="nhsuk-summary-list__value" data-testid="early-finishes" { (u.early_finishes) } }
                        div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "On-the-day cancellations" } dd class="nhsuk-summary-list__value" data-testid="cancellations" { (u.cancellations) } }
                    }
                    @if !u.sessions.is_empty() {
                        h2 { "Touch time per session" }
                        (chart(&u))
                        table class="nhsuk-table" data-testid="figures" {
                            thead class="nhsuk-table__head" { tr {
                                th scope="col" { "Date" } th scope="col" { "Theatre" } th scope="col" { "Surgeon" } th scope="col" { "Touch time" }
                                th scope="col" { "Late start" } th scope="col" { "Early finish" } th scope="col" { "Cancelled on the day" }
                            } }
                            tbody class="nhsuk-table__body" {
                                @for s in &u.sessions {
                                    tr class="nhsuk-table__row" data-testid="figure-row" {
                                        td class="nhsuk-table__cell" { a href={ "/ui/theatres/sessions/" (enc(&s.session)) } { (layout::long_date(&s.date)) } }
                                        td class="nhsuk-table__cell" { (s.theatre) }
                                        td class="nhsuk-table__cell" { (s.surgeon) }
                                        td class="nhsuk-table__cell" { (s.touch_minutes) " of " (s.length_minutes) " min (" (s.touch_percent) "%)" }
                                        td class="nhsuk-table__cell" { (s.late_start_minutes.map(|m| format!("{m} min late")).unwrap_or_else(|| "—".into())) }
                                        td class="nhsuk-table__cell" { (s.early_finish_minutes.map(|m| format!("{m} min early")).unwrap_or_else(|| "—".into())) }
                                        td class="nhsuk-table__cell" {
                                            @for (p, r) in &s.cancellations { (p) ": " (r) br; }
                                            @if s.cancellations.is_empty() { "—" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                };
                layout::page(cx, "Theatre utilisation", Nav::None, body)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// The pages' routes (listed in `crate::ROUTES`), merged into the UI router.
pub(crate) fn routes() -> axum::Router<crate::Ui> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/theatres", get(day_page).post(day_post))
        .route("/theatres/utilisation", get(utilisation_page))
        .route("/theatres/sessions/{id}", get(session_page))
        .route("/theatres/sessions/{id}/add", post(add_post))
        .route("/theatres/cases/{id}", get(case_page))
        .route("/theatres/cases/{id}/move", post(move_post))
        .route("/theatres/cases/{id}/step", post(step_post))
        .route("/theatres/cases/{id}/checklist", post(checklist_post))
        .route("/theatres/cases/{id}/operation", post(operation_post))
        .route("/theatres/cases/{id}/cancel", post(cancel_post))
}
