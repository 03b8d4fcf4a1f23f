//! The bed board: occupancy by site and ward, and a ward's live board.
//!
//! The ward page holds its board in a live region: `wardline.js` listens to
//! `/ui/events` and re-fetches `?fragment=board` whenever the record
//! changes, from whatever source (UI, FHIR API, HL7 v2).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use wardline_workflow::adt::{self, BedState, Occupancy, WardBoard};

use crate::layout::{self, Nav};
use crate::patients::nhs_text;
use crate::{Cx, Req, St, enc, see_other};

/// How often the event stream looks for changes.
const POLL: Duration = Duration::from_millis(250);
/// How often it re-checks that the session is still valid.
const SESSION_CHECK: Duration = Duration::from_secs(60);

/// Occupancy in words: the percentage is of the open beds, and the text
/// says so; closed and blocked beds and the total are said too.
fn meter(o: &Occupancy) -> Markup {
    let open = o.beds.saturating_sub(o.closed + o.blocked);
    html! {
        span class="wl-meter" {
            (o.occupied) " of " (open) " open beds occupied (" (format!("{:.0}", o.percent())) "%)"
            " · " (o.available) " available"
            @if o.cleaning > 0 { " · " (o.cleaning) " being cleaned" }
            @if o.closed > 0 { " · " (o.closed) " closed" }
            @if o.blocked > 0 { " · " (o.blocked) " blocked" }
            @if open != o.beds { " · " (o.beds) " beds in all" }
        }
    }
}

pub(crate) async fn sites_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, |cx, q| {
        let mut sites = match adt::sites(&cx.svc, cx.access()) {
            Ok(s) => s,
            Err(e) => return crate::adt::adt_error(&e),
        };
        // The board opens where the user works: at their ward when their
        // position is on one ward (`?all` shows every ward), with their own
        // site first.
        let own: Vec<&str> = cx
            .principal
            .position
            .as_ref()
            .map(|p| p.locations.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let own_wards: Vec<&str> = sites
            .iter()
            .flat_map(|s| &s.wards)
            .map(|w| w.id.as_str())
            .filter(|w| own.contains(w))
            .collect();
        if let [ward] = own_wards.as_slice()
            && !q.contains_key("all")
        {
            return see_other(&format!("/ui/beds/{}", enc(ward)));
        }
        sites.sort_by_key(|s| {
            !(own.contains(&s.id.as_str()) || s.wards.iter().any(|w| own.contains(&w.id.as_str())))
        });
        let body = html! {
            h1 { "Bed board" }
            @for s in &sites {
                h2 { (s.name) }
                p { (meter(&s.occupancy)) }
                table class="nhsuk-table" data-testid={ "site-" (s.id) } {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "Ward" } th scope="col" { "Occupancy" } } }
                    tbody class="nhsuk-table__body" {
                        @for w in &s.wards {
                            tr class="nhsuk-table__row" {
                                td class="nhsuk-table__cell" { a href={ "/ui/beds/" (enc(&w.id)) } { (w.name) } }
                                td class="nhsuk-table__cell" { (meter(&w.occupancy)) }
                            }
                        }
                    }
                }
            }
        };
        layout::page(cx, "Bed board", Nav::Beds, body)
    })
    .await
}

/// The state changes a bed offers, to those whose position may make them:
/// cleaning done and reopening at once; closing and blocking on a page that
/// asks why and confirms ([`bed_state_page`]).
fn state_actions(cx: &Cx, ward: &str, bed: &adt::Bed) -> Markup {
    if !cx.may(wardline_auth::rbac::Activity::Adt) {
        return html! {};
    }
    let to: &[(&str, &str)] = match bed.state {
        BedState::Occupied => &[],
        BedState::Cleaning => &[("available", "Mark cleaned")],
        BedState::Available => &[("closed", "Close"), ("blocked", "Block")],
        BedState::Closed | BedState::Blocked => &[("available", "Reopen")],
    };
    let action = format!("/ui/beds/{}/{}/state", enc(ward), enc(&bed.id));
    html! {
        @for (state, label) in to {
            @if needs_reason(state) {
                a class="nhsuk-button nhsuk-button--secondary nhsuk-button--small" href={ (action) "?to=" (state) } aria-label={ (label) " " (bed.name) } { (label) }
            } @else {
                form method="post" action=(action) novalidate {
                    (layout::csrf(cx))
                    input type="hidden" name="state" value=(state);
                    button class="nhsuk-button nhsuk-button--secondary nhsuk-button--small" type="submit" aria-label={ (label) " " (bed.name) } { (label) }
                }
            }
        }
    }
}

/// Closing and blocking a bed say why.
fn needs_reason(state: &str) -> bool {
    matches!(state, "closed" | "blocked")
}

/// The state a form or link names.
fn state_named(s: Option<&str>) -> Option<BedState> {
    match s {
        Some("available") => Some(BedState::Available),
        Some("closed") => Some(BedState::Closed),
        Some("blocked") => Some(BedState::Blocked),
        Some("cleaning") => Some(BedState::Cleaning),
        _ => None,
    }
}

/// The confirmation of closing or blocking a bed: its reason asked for.
fn reason_form(
    cx: &Cx,
    ward: &str,
    bed: &str,
    to: BedState,
    reason: &str,
    error: Option<&str>,
) -> Markup {
    let verb = if to == BedState::Closed {
        "Close"
    } else {
        "Block"
    };
    let state = if to == BedState::Closed {
        "closed"
    } else {
        "blocked"
    };
    html! {
        (layout::back_link(&format!("/ui/beds/{}", enc(ward)), "Back to the ward"))
        @if let Some(e) = error { (layout::error_summary(&[("reason".to_owned(), e.to_owned())])) }
        h1 { (verb) " bed " (bed) }
        p { "The bed will not be offered for admissions or transfers until it is reopened. The reason is shown on the bed board." }
        form method="post" action={ "/ui/beds/" (enc(ward)) "/" (enc(bed)) "/state" } novalidate {
            (layout::csrf(cx))
            input type="hidden" name="state" value=(state);
            (layout::input(&layout::Field {
                hint: Some("For example, broken bed rail, infection control, awaiting repair"),
                value: reason,
                error,
                ..layout::Field::new("reason", "Why?")
            }))
            div class="wl-actions" {
                button class="nhsuk-button nhsuk-button--warning" type="submit" { (verb) " bed" }
                a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/beds/" (enc(ward)) } { "Cancel" }
            }
        }
    }
}

/// `GET /ui/beds/{ward}/{bed}/state?to=closed|blocked`: the confirmation.
pub(crate) async fn bed_state_page(
    State(ui): St,
    req: Req,
    Path((ward, bed)): Path<(String, String)>,
) -> Response {
    ui.run(req, None, move |cx, q| {
        let to = match state_named(q.get("to").map(String::as_str)) {
            Some(s @ (BedState::Closed | BedState::Blocked)) => s,
            _ => return see_other(&format!("/ui/beds/{}", enc(&ward))),
        };
        layout::page(
            cx,
            "Close or block a bed",
            Nav::Beds,
            reason_form(cx, &ward, &bed, to, "", None),
        )
    })
    .await
}

/// The board itself (the live region's content).
fn board(cx: &Cx, b: &WardBoard) -> Markup {
    html! {
        p data-testid="ward-occupancy" { (meter(&b.occupancy)) }
        div class="wl-board" {
            @for bay in &b.bays {
                section class="wl-bay" aria-labelledby={ "bay-" (bay.id) } {
                    h3 id={ "bay-" (bay.id) } {
                        (bay.name)
                        @if bay.mixed_sex {
                            " " strong class="nhsuk-tag nhsuk-tag--red" data-testid="mixed-sex" { "Mixed-sex bay" }
                        }
                    }
                    ul class="wl-beds" {
                        @for bed in &bay.beds {
                            li class={ "wl-bed wl-bed--" (bed.state.css()) } data-testid={ "bed-" (bed.id) } data-state=(bed.state.css()) {
                                span class="wl-bed__name" { (bed.name) }
                                span class="wl-bed__state" { (bed.state.label()) }
                                @if let Some(r) = &bed.reason { span class="wl-bed__reason" data-testid="bed-reason" { (r) } }
                                @if let Some(p) = &bed.patient {
                                    span class="wl-bed__patient" {
                                        a href={ "/ui/patients/" (enc(&p.id)) } { (p.name) }
                                        br;
                                        (nhs_text(p.nhs_number.as_deref()))
                                        @if let Some(d) = &p.expected_discharge { br; "Expected discharge " (layout::long_date(d)) }
                                        @if let Some(i) = &p.isolation { br; strong class="nhsuk-tag nhsuk-tag--orange" { "Isolation" } " " (i.trim_start_matches("Isolation:").trim()) }
                                    }
                                } @else if bed.withheld {
                                    span class="wl-bed__patient" { "Patient details not shown" }
                                }
                                @if let Some(c) = &bed.clash {
                                    span class="wl-bed__clash" data-testid="bed-clash" {
                                        strong class="nhsuk-tag nhsuk-tag--red" { "Bed clash" } " " (c)
                                    }
                                }
                                div class="wl-actions" { (state_actions(cx, &b.id, bed)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn ward_page(State(ui): St, req: Req, Path(ward): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let b = match adt::ward_board(&cx.svc, cx.access(), &ward) {
            Ok(b) => b,
            Err(e) => return crate::adt::adt_error(&e),
        };
        if q.get("fragment").map(String::as_str) == Some("board") {
            return layout::fragment(board(cx, &b));
        }
        let body = html! {
            (layout::back_link("/ui/beds?all", "All wards"))
            h1 { span class="nhsuk-caption-l" { (b.site) } (b.name) }
            p class="nhsuk-body-s" { "Updates as patients move. Last updated " span data-updated-at { "when the page loaded" } "." }
            div id="board" data-live={ "/ui/beds/" (enc(&b.id)) "?fragment=board" } aria-live="polite" {
                (board(cx, &b))
            }
        };
        layout::page(cx, &b.name, Nav::Beds, body)
    })
    .await
}

pub(crate) async fn bed_state_post(
    State(ui): St,
    req: Req,
    Path((ward, bed)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let Some(state) = state_named(f.get("state").map(String::as_str)) else {
            return layout::error_page(
                StatusCode::BAD_REQUEST,
                "That could not be done",
                "Choose available, closed, blocked or being cleaned.",
            );
        };
        let reason = f.get("reason").map(String::as_str).unwrap_or_default();
        match adt::set_bed_state(&cx.svc, cx.access(), &bed, state, Some(reason)) {
            Ok(()) => see_other(&format!("/ui/beds/{}", enc(&ward))),
            Err(e)
                if e.kind == adt::AdtErrorKind::Invalid
                    && matches!(state, BedState::Closed | BedState::Blocked) =>
            {
                layout::page_with(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    cx,
                    "Error: Close or block a bed",
                    Nav::Beds,
                    reason_form(cx, &ward, &bed, state, reason, Some(&e.message)),
                )
            }
            Err(e) => crate::adt::adt_error(&e),
        }
    })
    .await
}

/// `GET /ui/events`: a `change` event whenever anything was committed (the
/// page then re-fetches what it shows, through the access gate as usual).
/// The stream carries no patient data: only a counter.
pub(crate) async fn events(State(ui): St, req: Req) -> Response {
    let dir = ui.dir.clone();
    let headers = req.headers.clone();
    let signed_in = tokio::task::spawn_blocking(move || {
        matches!(
            wardline_auth_server::session_user(&dir, &headers),
            Ok(Some(_))
        )
    })
    .await
    .unwrap_or(false);
    if !signed_in {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    }
    let svc = ui.svc.clone();
    let dir = ui.dir.clone();
    let headers = req.headers;
    let start = svc.change_count();
    let stream = futures_util::stream::unfold(
        (start, tokio::time::Instant::now()),
        move |(mut seen, mut checked)| {
            let svc = svc.clone();
            let dir = dir.clone();
            let headers = headers.clone();
            async move {
                loop {
                    tokio::time::sleep(POLL).await;
                    if checked.elapsed() >= SESSION_CHECK {
                        let (d, h) = (dir.clone(), headers.clone());
                        let ok = tokio::task::spawn_blocking(move || {
                            matches!(wardline_auth_server::session_user(&d, &h), Ok(Some(_)))
                        })
                        .await
                        .unwrap_or(false);
                        if !ok {
                            return None;
                        }
                        checked = tokio::time::Instant::now();
                    }
                    let now = svc.change_count();
                    if now != seen {
                        seen = now;
                        let ev = Event::default().event("change").data(now.to_string());
                        return Some((Ok::<_, Infallible>(ev), (seen, checked)));
                    }
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15: "7 of 16 beds occupied (64%)" took the percentage over the
    /// open beds while the words said all beds.
    #[test]
    fn occupancy_says_what_its_percentage_is_of() {
        let o = Occupancy {
            beds: 16,
            occupied: 7,
            available: 4,
            cleaning: 0,
            closed: 3,
            blocked: 2,
        };
        let text = meter(&o).into_string();
        assert!(text.contains("7 of 11 open beds occupied (64%)"), "{text}");
        assert!(
            text.contains("3 closed · 2 blocked · 16 beds in all"),
            "{text}"
        );
        let all_open = Occupancy {
            beds: 4,
            occupied: 1,
            available: 3,
            ..o
        };
        let text = meter(&Occupancy {
            closed: 0,
            blocked: 0,
            ..all_open
        })
        .into_string();
        assert!(text.contains("1 of 4 open beds occupied (25%)"), "{text}");
        assert!(!text.contains("in all"), "{text}");
    }
}
