//! Transfers of care pages (issue 18): the 24-hour discharge summary
//! compliance dashboard (`/ui/transfers`: by ward and specialty, the
//! overdue list, your team's overdue summaries, deliveries that failed) and
//! the GP practices' delivery routes (`/ui/transfers/routing`, set by
//! administrators with `ManageDirectory`). Every rule is
//! `wardline_workflow::transfers`'.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use time::Duration;
use wardline_auth::rbac::Activity;
use wardline_workflow::transfers::TransfersError;
use wardline_workflow::transfers::routing::{self, Channel, Practice, Route};
use wardline_workflow::transfers::standard::{self, Compliance, Group, State as Standard};

use crate::layout::{self, Nav};
use crate::{Cx, Req, St, enc, see_other};

fn refusal(e: &TransfersError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "transfers")
}

fn manages(cx: &Cx) -> bool {
    cx.role.is_some_and(|r| r.has(Activity::ManageDirectory))
}

fn state_tag(s: Standard) -> Markup {
    let class = match s {
        Standard::Met => "nhsuk-tag nhsuk-tag--green",
        Standard::Late => "nhsuk-tag nhsuk-tag--orange",
        Standard::Overdue => "nhsuk-tag nhsuk-tag--red",
        Standard::Pending => "nhsuk-tag nhsuk-tag--grey",
    };
    html! { strong class=(class) data-testid="standard" { (s.label()) } }
}

/// Horizontal bars (inline SVG): percent sent within 24 hours per group.
fn bars(title: &str, testid: &str, groups: &[Group]) -> Markup {
    let row = 28;
    let height = row * groups.len().max(1) + 8;
    html! {
        figure class="nhsuk-u-margin-bottom-5" data-testid=(testid) {
            figcaption class="nhsuk-heading-s" { (title) }
            svg xmlns="http://www.w3.org/2000/svg" width="640" height=(height) role="img"
                aria-label={ (title) ": percentage of discharge summaries sent within 24 hours" } {
                @for (i, g) in groups.iter().enumerate() {
                    @let y = i * row + 4;
                    @let pct = g.percent();
                    text x="0" y=(y + 17) font-size="14" { (g.name) }
                    rect x="230" y=(y) width="300" height="20" fill="#e8edee" {}
                    @if let Some(p) = pct {
                        rect x="230" y=(y) width=(p * 3) height="20"
                            fill=(if p >= 90 { "#007f3b" } else if p >= 70 { "#ffb81c" } else { "#d5281b" }) {}
                    }
                    text x="540" y=(y + 17) font-size="14" data-testid="bar-value" {
                        @match pct { Some(p) => { (p) "% of " (g.due) }, None => { "none due" } }
                    }
                }
            }
        }
    }
}

fn groups_table(caption: &str, testid: &str, groups: &[Group]) -> Markup {
    html! {
        table class="nhsuk-table" data-testid=(testid) {
            caption class="nhsuk-table__caption" { (caption) }
            thead class="nhsuk-table__head" { tr {
                th scope="col" { "Name" } th scope="col" { "Discharges" } th scope="col" { "Due" }
                th scope="col" { "Sent within 24 h" } th scope="col" { "Overdue" } th scope="col" { "Within 24 h" }
            } }
            tbody class="nhsuk-table__body" {
                @for g in groups {
                    tr class="nhsuk-table__row" data-name=(g.name) {
                        td class="nhsuk-table__cell" { (g.name) }
                        td class="nhsuk-table__cell" { (g.discharges) }
                        td class="nhsuk-table__cell" { (g.due) }
                        td class="nhsuk-table__cell" { (g.met) }
                        td class="nhsuk-table__cell" data-testid="group-overdue" { (g.overdue) }
                        td class="nhsuk-table__cell" { @match g.percent() { Some(p) => { (p) "%" }, None => { "—" } } }
                    }
                }
            }
        }
    }
}

fn dashboard_body(c: &Compliance, days: i64, team: &[serde_json::Value]) -> Markup {
    let overdue: Vec<_> = c
        .discharges
        .iter()
        .filter(|d| d.state == Standard::Overdue)
        .collect();
    html! {
        h1 { "Discharge summaries: the 24-hour standard" }
        p { "Every inpatient discharge's summary sent to the GP practice within 24 hours. Discharges of the last " (days) " days." }
        form method="get" action="/ui/transfers" class="nhsuk-u-margin-bottom-4" {
            (layout::select("days", "Period", &[("1".into(), "Last day".into()), ("7".into(), "Last 7 days".into()), ("30".into(), "Last 30 days".into())], &days.to_string(), None))
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Show" }
        }
        div class="nhsuk-card" { div class="nhsuk-card__content" data-testid="total" {
            h2 class="nhsuk-card__heading" {
                @match c.total.percent() { Some(p) => { (p) "% sent within 24 hours" }, None => { "No discharge summary due yet" } }
            }
            p class="nhsuk-card__description" {
                (c.total.discharges) " discharges, " (c.total.due) " due, " (c.total.met) " sent within 24 hours, "
                strong data-testid="total-overdue" { (c.total.overdue) " overdue" } "."
            }
        } }
        @if !team.is_empty() {
            h2 { "Your team's overdue summaries" }
            ul class="nhsuk-list nhsuk-list--bullet" data-testid="team-tasks" {
                @for t in team { li { (t["description"].as_str().unwrap_or("Discharge summary overdue")) } }
            }
        }
        h2 { "Overdue" }
        @if overdue.is_empty() {
            p data-testid="overdue-none" { "No discharge summary is overdue." }
        } @else {
            table class="nhsuk-table" data-testid="overdue" {
                caption class="nhsuk-table__caption" { (overdue.len()) " discharges past 24 hours without a summary sent, oldest first" }
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Patient" } th scope="col" { "Ward" } th scope="col" { "Specialty" }
                    th scope="col" { "Discharged" } th scope="col" { "Hours" } th scope="col" { "Summary" }
                } }
                tbody class="nhsuk-table__body" {
                    @for d in &overdue {
                        tr class="nhsuk-table__row" data-testid="overdue-row" data-encounter=(d.encounter) {
                            td class="nhsuk-table__cell" { (d.patient_name) }
                            td class="nhsuk-table__cell" { (d.ward) }
                            td class="nhsuk-table__cell" { (d.specialty) }
                            td class="nhsuk-table__cell" { (layout::long_date(&d.discharged)) }
                            td class="nhsuk-table__cell" { (d.hours) }
                            td class="nhsuk-table__cell" {
                                @match (&d.signed, &d.delivery) {
                                    (_, Some(s)) => { "Delivery " (s) }
                                    (Some(_), None) => { "Signed, not sent" }
                                    (None, None) => { "Not signed" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (bars("By ward", "chart-ward", &c.by_ward))
        (groups_table("By ward", "by-ward", &c.by_ward))
        (bars("By specialty", "chart-specialty", &c.by_specialty))
        (groups_table("By specialty", "by-specialty", &c.by_specialty))
        h2 { "All discharges" }
        table class="nhsuk-table" data-testid="discharges" {
            thead class="nhsuk-table__head" { tr {
                th scope="col" { "Patient" } th scope="col" { "Ward" } th scope="col" { "Discharged" }
                th scope="col" { "Signed" } th scope="col" { "Sent" } th scope="col" { "Acknowledged" } th scope="col" { "Standard" }
            } }
            tbody class="nhsuk-table__body" {
                @for d in &c.discharges {
                    tr class="nhsuk-table__row" data-encounter=(d.encounter) {
                        td class="nhsuk-table__cell" { (d.patient_name) }
                        td class="nhsuk-table__cell" { (d.ward) }
                        td class="nhsuk-table__cell" { (layout::long_date(&d.discharged)) }
                        td class="nhsuk-table__cell" { (d.signed.as_deref().map(layout::long_date).unwrap_or_else(|| "—".into())) }
                        td class="nhsuk-table__cell" { (d.sent.as_deref().map(layout::long_date).unwrap_or_else(|| "—".into())) }
                        td class="nhsuk-table__cell" { (d.acknowledged.as_deref().map(layout::long_date).unwrap_or_else(|| "—".into())) }
                        td class="nhsuk-table__cell" { (state_tag(d.state)) }
                    }
                }
            }
        }
        h2 { "Deliveries that failed" }
        @if c.failures.is_empty() {
            p data-testid="failures-none" { "No delivery has failed on every route." }
        } @else {
            ul class="nhsuk-list nhsuk-list--bullet" data-testid="failures" {
                @for t in &c.failures { li { (t["description"].as_str().unwrap_or("Not delivered")) } }
            }
        }
        // issue 18: access — deliveries the patient's dissent stopped.
        h2 { "Deliveries withheld (patient dissented from sharing)" }
        @if c.withheld.is_empty() {
            p data-testid="withheld-none" { "No delivery has been withheld." }
        } @else {
            p data-testid="withheld-count" { strong { (c.withheld.len()) " withheld" } ": nothing was sent; each is on the team's list to review." }
            ul class="nhsuk-list nhsuk-list--bullet" data-testid="withheld" {
                @for t in &c.withheld { li { (t["description"].as_str().unwrap_or("Withheld")) } }
            }
        }
    }
}

/// `GET /ui/transfers`: the compliance dashboard.
pub(crate) async fn dashboard_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let days = q
            .get("days")
            .and_then(|d| d.parse::<i64>().ok())
            .filter(|d| (1..=30).contains(d))
            .unwrap_or(7);
        let now = cx.svc.now();
        let me = cx
            .access()
            .agent()
            .who
            .clone()
            .filter(|w| w.starts_with("Practitioner/"));
        let team = match me {
            Some(m) => standard::team_overdue(&cx.svc, cx.access(), &m).unwrap_or_default(),
            None => Vec::new(),
        };
        match standard::compliance(&cx.svc, cx.access(), now - Duration::days(days), now) {
            Ok(c) => layout::page(
                cx,
                "Discharge summaries",
                Nav::None,
                dashboard_body(&c, days, &team),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- routing

fn address_of(p: &Practice, ch: Channel) -> &str {
    p.routes
        .iter()
        .find(|r| r.channel == ch)
        .map_or("", |r| r.address.as_str())
}

fn routes_text(p: &Practice) -> Markup {
    html! {
        @if p.routes.is_empty() { "No route: summaries to this practice cannot be delivered." }
        @for (i, r) in p.routes.iter().enumerate() {
            @if i > 0 { ", then " }
            (r.channel.label()) " " (r.address)
        }
    }
}

fn routing_body(cx: &Cx, ps: &[Practice], done: bool) -> Markup {
    html! {
        @if done { (layout::success("Delivery routes saved.")) }
        h1 { "GP practices: delivery routes" }
        p { "How discharge summaries reach each practice, in order of preference: a MESH mailbox, an email address (e.g. nhs.net), or both. If the first route fails after its retries, the next is used." }
        table class="nhsuk-table" data-testid="practices" {
            thead class="nhsuk-table__head" { tr {
                th scope="col" { "Practice" } th scope="col" { "Routes, in order" } th scope="col" { span class="nhsuk-u-visually-hidden" { "Change" } }
            } }
            tbody class="nhsuk-table__body" {
                @for p in ps {
                    tr class="nhsuk-table__row" data-testid="practice" data-practice=(p.id) {
                        td class="nhsuk-table__cell" { (p.name) @if let Some(o) = &p.ods { " (" (o) ")" } }
                        td class="nhsuk-table__cell" data-testid="routes" { (routes_text(p)) }
                        td class="nhsuk-table__cell" {
                            @if manages(cx) {
                                a href={ "/ui/transfers/routing/" (enc(&p.id)) } data-testid="change-routes" { "Change" span class="nhsuk-u-visually-hidden" { " routes of " (p.name) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the form shows: (mesh, email, first, error (field, message)).
struct Entered<'a> {
    mesh: &'a str,
    email: &'a str,
    first: &'a str,
    error: Option<(String, String)>,
}

fn edit_body(cx: &Cx, p: &Practice, e: &Entered<'_>) -> Markup {
    let err = |k: &str| {
        e.error
            .as_ref()
            .filter(|(f, _)| f == k)
            .map(|(_, m)| m.as_str())
    };
    html! {
        (layout::back_link("/ui/transfers/routing", "Back to the practices"))
        @if let Some((f, m)) = &e.error {
            (layout::error_summary(&[(f.clone(), m.clone())]))
        }
        h1 { "Delivery routes: " (p.name) }
        p { "Now: " (routes_text(p)) }
        form method="post" action={ "/ui/transfers/routing/" (enc(&p.id)) } novalidate {
            (layout::csrf(cx))
            (layout::input(&layout::Field { hint: Some("The practice's MESH mailbox, e.g. X26ABC2. Leave empty for none."), value: e.mesh, error: err("mesh"), width: "nhsuk-input--width-10", ..layout::Field::new("mesh", "MESH mailbox id") }))
            (layout::input(&layout::Field { hint: Some("e.g. the practice's nhs.net address. Leave empty for none."), value: e.email, error: err("email"), kind: "email", ..layout::Field::new("email", "Email address") }))
            (layout::radios("first", "Try first", &[("mesh", "MESH"), ("email", "Email")], e.first, None))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="save-routes" { "Save routes" }
        }
    }
}

/// `GET /ui/transfers/routing`.
pub(crate) async fn routing_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = q.contains_key("done");
        match routing::practices(&cx.svc, cx.access()) {
            Ok(ps) => layout::page(
                cx,
                "GP practices: delivery routes",
                Nav::None,
                routing_body(cx, &ps, done),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn practice(cx: &Cx, org: &str) -> Result<Practice, TransfersError> {
    routing::practices(&cx.svc, cx.access())?
        .into_iter()
        .find(|p| p.id == org)
        .ok_or_else(|| TransfersError::NotFound(format!("There is no GP practice with id {org}.")))
}

/// `GET /ui/transfers/routing/{org}`: the form.
pub(crate) async fn routing_edit_page(
    State(ui): St,
    req: Req,
    Path(org): Path<String>,
) -> Response {
    ui.run(req, None, move |cx, _| match practice(cx, &org) {
        Ok(p) => {
            let e = Entered {
                mesh: address_of(&p, Channel::Mesh),
                email: address_of(&p, Channel::Email),
                first: p.routes.first().map_or("mesh", |r| r.channel.code()),
                error: None,
            };
            let title = format!("Delivery routes: {}", p.name);
            layout::page(cx, &title, Nav::None, edit_body(cx, &p, &e))
        }
        Err(e) => refusal(&e),
    })
    .await
}

/// `POST /ui/transfers/routing/{org}`: `mesh`, `email`, `first`.
pub(crate) async fn routing_post(
    State(ui): St,
    req: Req,
    Path(org): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let get = |k: &str| f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        let (mesh, email, first) = (get("mesh"), get("email"), get("first"));
        let mut routes = Vec::new();
        if !mesh.is_empty() {
            routes.push(Route {
                channel: Channel::Mesh,
                address: mesh.clone(),
            });
        }
        if !email.is_empty() {
            routes.push(Route {
                channel: Channel::Email,
                address: email.clone(),
            });
        }
        if first == "email" {
            routes.reverse();
        }
        match routing::set_routes(&cx.svc, cx.access(), &org, &routes) {
            Ok(()) => see_other("/ui/transfers/routing?done=1"),
            Err(TransfersError::Invalid(m)) => {
                let field = if m.starts_with("mesh") {
                    "mesh"
                } else {
                    "email"
                };
                match practice(cx, &org) {
                    Ok(p) => {
                        let e = Entered {
                            mesh: &mesh,
                            email: &email,
                            first: &first,
                            error: Some((field.to_owned(), m)),
                        };
                        let title = format!("Delivery routes: {}", p.name);
                        layout::page_with(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            cx,
                            &title,
                            Nav::None,
                            edit_body(cx, &p, &e),
                        )
                    }
                    Err(e) => refusal(&e),
                }
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}
