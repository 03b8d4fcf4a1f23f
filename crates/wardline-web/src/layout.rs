//! The page shell (NHS header with the user's position, navigation, footer)
//! and the design-system components the pages share. maud escapes every
//! value, so nothing a user typed can become markup.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use wardline_fhir::FhirError;
use wardline_nhsuk::{Shell, html_response};

use crate::Cx;
use crate::assets::version;

/// The section of the menu a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Nav {
    Patients,
    Register,
    Beds,
    Duplicates,
    /// Break-glass uses to review (information governance only).
    Reviews,
    /// The results inbox (those who review results).
    Results,
    /// The pathology laboratory: reception, bench, authorisation.
    Laboratory,
    /// The radiology department's requests.
    Radiology,
    /// The order catalogue (its managers).
    Catalogue,
    /// Task lists (issue 20: tasks).
    Tasks,
    None,
}

fn head() -> Markup {
    html! {
        link rel="stylesheet" href={ "/ui/static/wardline.css?v=" (version("wardline.css")) };
        script type="module" src={ "/ui/static/wardline.js?v=" (version("wardline.js")) } {}
    }
}

/// The header's search and account menu, for a signed-in user.
fn account(cx: &Cx) -> Markup {
    html! {
        search class="nhsuk-header__search" {
            form class="nhsuk-header__search-form" id="search" action="/ui/patients" method="get" novalidate {
                div class="nhsuk-form-group" {
                    label class="nhsuk-label nhsuk-u-visually-hidden" for="search-field" { "Find a patient by name, NHS number or hospital number" }
                    div class="nhsuk-input-wrapper" {
                        input class="nhsuk-input" id="search-field" name="q" type="search" autocomplete="off" placeholder="Name or NHS number";
                        button class="nhsuk-button nhsuk-button--icon nhsuk-button--small" data-module="nhsuk-button" type="submit" aria-label="Search" {
                            (PreEscaped(r#"<svg class="nhsuk-icon nhsuk-icon--search" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16" focusable="false" aria-hidden="true"><path d="m20.7 18.9-4.1-4.1a7 7 0 1 0-1.4 1.4l4 4.1a1 1 0 0 0 1.5 0c.4-.4.4-1 0-1.4ZM6 10.6a5 5 0 1 1 10 0 5 5 0 0 1-10 0Z"/></svg>"#))
                        }
                    }
                }
            }
        }
        nav class="nhsuk-header__account" aria-label="Account" {
            ul class="nhsuk-header__account-list" {
                // One line for who and where (two would make a phone's
                // header twice as tall).
                li class="nhsuk-header__account-item" {
                    span class="wl-account-who" {
                        span data-testid="signed-in-user" { (cx.session.username) }
                        span class="wl-account-position" { ", " (cx.position) }
                    }
                }
                li class="nhsuk-header__account-item" {
                    form class="nhsuk-header__account-form" action="/auth/logout" method="post" novalidate {
                        input type="hidden" name="csrf" value=(cx.session.csrf);
                        button class="nhsuk-header__account-button" { "Sign out" }
                    }
                }
            }
        }
    }
}

/// The menu, for a signed-in user (the break-glass reviews only for
/// those who review them).
fn navigation(cx: &Cx, active: Nav) -> Markup {
    use wardline_auth::rbac::Activity as A;
    let mut items = vec![(Nav::Patients, "/ui/patients", "Find a patient")];
    // Registering and merging records: registration staff only.
    if cx.may(A::RegisterPatient) {
        items.push((Nav::Register, "/ui/patients/new", "Register a patient"));
    }
    items.push((Nav::Beds, "/ui/beds", "Bed board"));
    if cx.may(A::RegisterPatient) {
        items.push((Nav::Duplicates, "/ui/duplicates", "Possible duplicates"));
    }
    if cx
        .role
        .is_some_and(|r| r.has(wardline_auth::rbac::Activity::IgAudit))
    {
        items.push((Nav::Reviews, "/ui/break-glass", "Break-glass reviews"));
    }
    let has = |a| cx.may(a);
    if has(A::ReviewResults) {
        items.push((Nav::Results, "/ui/results", "Results inbox"));
    }
    if has(A::LabProcess) {
        items.push((Nav::Laboratory, "/ui/lab", "Laboratory"));
    }
    if has(A::Radiology) {
        items.push((Nav::Radiology, "/ui/radiology", "Radiology"));
    }
    if has(A::ManageCatalogue) {
        items.push((Nav::Catalogue, "/ui/catalogue", "Order catalogue"));
    }
    let tasks = has(A::ViewClinical)
        .then(|| crate::tasks::overdue_badge(cx))
        .flatten();
    html! {
        nav class="nhsuk-header__navigation" aria-label="Menu" {
            div class="nhsuk-header__navigation-container nhsuk-width-container" {
                ul class="nhsuk-header__navigation-list" {
                    @for (nav, href, label) in items {
                        li class={ "nhsuk-header__navigation-item" @if nav == active { " nhsuk-header__navigation-item--current" } } {
                            @if nav == active {
                                a class="nhsuk-header__navigation-link" href=(href) aria-current="page" { (label) }
                            } @else {
                                a class="nhsuk-header__navigation-link" href=(href) { (label) }
                            }
                        }
                    }
                    // Issue 20: tasks, with the overdue count.
                    @if let Some(n) = tasks {
                        li class={ "nhsuk-header__navigation-item" @if active == Nav::Tasks { " nhsuk-header__navigation-item--current" } } {
                            a class="nhsuk-header__navigation-link" href="/ui/tasks?list=teams" data-testid="tasks-badge" data-overdue=(n)
                                aria-current=[(active == Nav::Tasks).then_some("page")] {
                                "Tasks" @if n > 0 { " (" (n) " overdue)" }
                            }
                        }
                    }
                    // The design system's "More" menu: on a narrow screen its
                    // script moves the items that do not fit into it.
                    li class="nhsuk-header__menu" hidden {
                        button class="nhsuk-header__menu-toggle nhsuk-header__navigation-link" id="toggle-menu" aria-expanded="false" {
                            span class="nhsuk-u-visually-hidden" { "Browse " }
                            "More"
                        }
                    }
                }
            }
        }
    }
}

/// The design system's page shell (`wardline-nhsuk`) with the UI's own
/// stylesheet and script, and, for a signed-in user, search, account menu
/// and navigation.
fn shell(cx: Option<&Cx>, title: &str, active: Nav, body: Markup) -> Markup {
    // Issue 22: downtime. Every page says so first; the page's own write
    // forms are hidden (`.wl-downtime form[method=post]` in wardline.css)
    // and any post is refused anyway ([`crate::downtime_guard`], the core).
    let body = match cx.and_then(|c| c.svc.downtime().map(|d| (c, d))) {
        Some((c, d)) => html! {
            (downtime_banner(&c.svc, &d))
            div class="wl-downtime" data-testid="downtime" { (body) }
        },
        None => body,
    };
    wardline_nhsuk::shell(Shell {
        title,
        head: Some(head()),
        home: "/ui/",
        header: cx.map(account),
        navigation: cx.map(|c| navigation(c, active)),
        body,
    })
}

/// Issue 22: the downtime banner (the design system's warning callout):
/// since when, in the trust's time, and to record on paper.
pub(crate) fn downtime_banner(
    svc: &wardline_core::FhirService,
    d: &wardline_core::downtime::Downtime,
) -> Markup {
    let since = svc.time_zone().clock_time(d.since_ms);
    let day = svc.time_zone().local_minute(d.since_ms).unwrap_or_default();
    html! {
        div class="nhsuk-warning-callout wl-downtime-banner" data-testid="downtime-banner" role="alert" {
            h2 class="nhsuk-warning-callout__label" {
                span role="text" {
                    span class="nhsuk-u-visually-hidden" { "Important: " }
                    "Read-only: downtime since " (since) " — record on paper"
                }
            }
            p {
                "Wardline cannot save anything now (since " (day) "). You can still view and print "
                "bed boards, patient lists and charts. Record care on the paper downtime forms, and "
                "enter it when the downtime ends."
            }
        }
    }
}

/// Issue 22: a write attempted during downtime, as a page (503): nothing
/// was saved, record on paper.
pub(crate) fn downtime_page(svc: &wardline_core::FhirService) -> Response {
    let since = svc
        .downtime()
        .map(|d| svc.time_zone().clock_time(d.since_ms))
        .unwrap_or_else(|| "--:--".into());
    let mut r = html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        shell(
            None,
            "Nothing was saved: read-only downtime",
            Nav::None,
            html! {
                div class="nhsuk-warning-callout" data-testid="downtime-refused" {
                    h1 class="nhsuk-warning-callout__label" {
                        span role="text" {
                            span class="nhsuk-u-visually-hidden" { "Important: " }
                            "Nothing was saved: read-only downtime since " (since)
                        }
                    }
                    p { "Wardline is in read-only downtime. What you entered was not saved. Record it on paper, and enter it when the downtime ends." }
                }
                p { a href="/ui/beds" { "Go to the bed board" } }
            },
        ),
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("60"),
    );
    r
}

/// A full page for a signed-in user.
pub(crate) fn page(cx: &Cx, title: &str, active: Nav, body: Markup) -> Response {
    html_response(StatusCode::OK, shell(Some(cx), title, active, body))
}

/// A full page with another status (a form shown again with its errors).
pub(crate) fn page_with(
    status: StatusCode,
    cx: &Cx,
    title: &str,
    active: Nav,
    body: Markup,
) -> Response {
    html_response(status, shell(Some(cx), title, active, body))
}

/// A fragment (a live region's content): no shell.
pub(crate) fn fragment(m: Markup) -> Response {
    html_response(StatusCode::OK, m)
}

/// A workflow's refusal as a page (every module's error type says its
/// status and sentence): the rule that stopped it, in words; a server error
/// is logged (`what` names the module) and shown without its details.
pub(crate) fn refusal_page(status: u16, message: &str, what: &str) -> Response {
    if message.contains(wardline_fhir::error::DOWNTIME_PREFIX) {
        return downtime_refusal(message);
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %message, "{what} request failed");
        return error_page(
            status,
            "Something went wrong",
            "Wardline could not finish this request. Try again; if it keeps happening, tell the service desk.",
        );
    }
    let title = match status.as_u16() {
        403 => "You do not have access",
        404 => "Not found",
        _ => "That could not be done",
    };
    error_page(status, title, &sentence(message))
}

/// A workflow's refusal that is the core's downtime refusal: 503, saying
/// nothing was saved (the refusal's own words name since when).
fn downtime_refusal(message: &str) -> Response {
    let mut r = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Nothing was saved: read-only downtime",
        &sentence(message),
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("60"),
    );
    r
}

/// An error page: what happened and what to do, never internals.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html_response(
        status,
        shell(
            None,
            title,
            Nav::None,
            html! {
                h1 { (title) }
                p { (message) }
                p { a href="/ui/patients" { "Go to patient search" } }
            },
        ),
    )
}

/// What a FHIR error says, for people: its issues' diagnostics, without the
/// status and issue codes that `Display` adds for logs.
pub(crate) fn what_happened(e: &FhirError) -> String {
    let text: Vec<&str> = e
        .issues
        .iter()
        .map(|i| i.diagnostics.trim().trim_end_matches('.'))
        .filter(|d| !d.is_empty())
        .collect();
    if text.is_empty() {
        "the request could not be completed".to_owned()
    } else {
        text.join("; ")
    }
}

/// A FHIR error (refused, not found, conflict…) as an error page.
pub(crate) fn fhir_error_page(e: &FhirError) -> Response {
    if e.is_downtime() {
        return downtime_refusal(&what_happened(e));
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (title, message) = match e.status {
        401 => (
            "Sign in again",
            "Your session has ended. Sign in again.".to_owned(),
        ),
        403 => (
            "You do not have access",
            format!(
                "{} Access to records is limited to staff with a legitimate relationship with the patient.",
                sentence(&what_happened(e))
            ),
        ),
        404 | 410 => ("Not found", sentence(&what_happened(e))),
        409 | 412 => (
            "That could not be done",
            format!(
                "{} Reload the page to see the latest state.",
                sentence(&what_happened(e))
            ),
        ),
        s if s < 500 => ("That could not be done", sentence(&what_happened(e))),
        _ => {
            tracing::error!(error = %e, "UI request failed");
            (
                "Something went wrong",
                "Wardline could not finish this request. Try again; if it keeps happening, tell the service desk.".to_owned(),
            )
        }
    };
    error_page(status, title, &message)
}

/// Starts with a capital and ends with a full stop.
pub(crate) fn sentence(s: &str) -> String {
    let s = s.trim();
    let mut out: String = s
        .chars()
        .next()
        .map(|c| c.to_uppercase().chain(s.chars().skip(1)).collect())
        .unwrap_or_default();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

// ---- components -------------------------------------------------------------

/// The error summary at the top of a form: each error links to its field.
pub(crate) use wardline_nhsuk::error_summary;

pub(crate) struct Field<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub hint: Option<&'a str>,
    pub value: &'a str,
    pub error: Option<&'a str>,
    /// `text`, `date`, `tel`, …
    pub kind: &'a str,
    /// e.g. `nhsuk-input--width-10`.
    pub width: &'a str,
    pub autocomplete: &'a str,
}

impl<'a> Field<'a> {
    pub fn new(id: &'a str, label: &'a str) -> Field<'a> {
        Field {
            id,
            label,
            hint: None,
            value: "",
            error: None,
            kind: "text",
            width: "",
            autocomplete: "off",
        }
    }
}

pub(crate) fn input(f: &Field) -> Markup {
    if f.kind == "date" {
        return date_input(f);
    }
    let described = match (f.hint.is_some(), f.error.is_some()) {
        (true, true) => format!("{0}-hint {0}-error", f.id),
        (true, false) => format!("{}-hint", f.id),
        (false, true) => format!("{}-error", f.id),
        (false, false) => String::new(),
    };
    html! {
        div class={ "nhsuk-form-group" @if f.error.is_some() { " nhsuk-form-group--error" } } {
            label class="nhsuk-label" for=(f.id) { (f.label) }
            @if let Some(h) = f.hint { div class="nhsuk-hint" id={ (f.id) "-hint" } { (h) } }
            @if let Some(e) = f.error {
                span class="nhsuk-error-message" id={ (f.id) "-error" } {
                    span class="nhsuk-u-visually-hidden" { "Error: " } (e)
                }
            }
            input class={ "nhsuk-input " (f.width) @if f.error.is_some() { " nhsuk-input--error" } }
                id=(f.id) name=(f.id) type=(f.kind) value=(f.value) autocomplete=(f.autocomplete)
                aria-describedby=[(!described.is_empty()).then_some(described.as_str())];
        }
    }
}

/// The NHS design system's date input: day, month and year as three
/// numeric fields in a fieldset (`{id}-day`, `{id}-month`, `{id}-year`; the
/// form is read back as `{id}`, `YYYY-MM-DD`, by `parse_form`). The error
/// summary's link `#{id}` reaches the group.
fn date_input(f: &Field) -> Markup {
    let mut parts = f.value.splitn(3, '-');
    let (y, m, d) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let shown = |s: &'static str, v: &str| -> (&'static str, String) {
        // A day or month as typed, "07" shown as "7"; anything else (a
        // year, what was typed wrongly) exactly as it is.
        let numeric = s != "year" && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        let t = if numeric {
            v.trim_start_matches('0')
        } else {
            v
        };
        (
            s,
            if t.is_empty() {
                v.to_owned()
            } else {
                t.to_owned()
            },
        )
    };
    let hint = f.hint.unwrap_or("For example, 15 3 1984");
    let described = if f.error.is_some() {
        format!("{0}-hint {0}-error", f.id)
    } else {
        format!("{}-hint", f.id)
    };
    html! {
        div class={ "nhsuk-form-group" @if f.error.is_some() { " nhsuk-form-group--error" } } {
            fieldset class="nhsuk-fieldset" role="group" aria-describedby=(described) {
                legend class="nhsuk-fieldset__legend nhsuk-label" { (f.label) }
                div class="nhsuk-hint" id={ (f.id) "-hint" } { (hint) }
                @if let Some(e) = f.error {
                    span class="nhsuk-error-message" id={ (f.id) "-error" } {
                        span class="nhsuk-u-visually-hidden" { "Error: " } (e)
                    }
                }
                div class="nhsuk-date-input" id=(f.id) tabindex="-1" {
                    @for (part, value) in [shown("day", d), shown("month", m), shown("year", y)] {
                        div class="nhsuk-date-input__item" {
                            div class="nhsuk-form-group" {
                                label class="nhsuk-label nhsuk-date-input__label" for={ (f.id) "-" (part) } {
                                    @match part { "day" => "Day", "month" => "Month", _ => "Year" }
                                }
                                input class={ "nhsuk-input nhsuk-date-input__input "
                                        @if part == "year" { "nhsuk-input--width-4" } @else { "nhsuk-input--width-2" }
                                        @if f.error.is_some() { " nhsuk-input--error" } }
                                    id={ (f.id) "-" (part) } name={ (f.id) "-" (part) } type="text"
                                    inputmode="numeric" value=(value)
                                    autocomplete=[(f.autocomplete == "bday").then_some(match part { "day" => "bday-day", "month" => "bday-month", _ => "bday-year" })];
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn select(
    id: &str,
    label: &str,
    options: &[(String, String)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        div class={ "nhsuk-form-group" @if error.is_some() { " nhsuk-form-group--error" } } {
            label class="nhsuk-label" for=(id) { (label) }
            @if let Some(e) = error {
                span class="nhsuk-error-message" id={ (id) "-error" } {
                    span class="nhsuk-u-visually-hidden" { "Error: " } (e)
                }
            }
            select class={ "nhsuk-select" @if error.is_some() { " nhsuk-select--error" } } id=(id) name=(id)
                aria-describedby=[error.is_some().then(|| format!("{id}-error"))] {
                @for (value, text) in options {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
        }
    }
}

pub(crate) fn radios(
    name: &str,
    legend: &str,
    options: &[(&str, &str)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        div class={ "nhsuk-form-group" @if error.is_some() { " nhsuk-form-group--error" } } {
            fieldset class="nhsuk-fieldset" {
                legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { (legend) }
                @if let Some(e) = error {
                    span class="nhsuk-error-message" id={ (name) "-error" } {
                        span class="nhsuk-u-visually-hidden" { "Error: " } (e)
                    }
                }
                div class="nhsuk-radios nhsuk-radios--inline" data-module="nhsuk-radios" {
                    @for (i, (value, text)) in options.iter().enumerate() {
                        @let id = if i == 0 { name.to_owned() } else { format!("{name}-{}", i + 1) };
                        div class="nhsuk-radios__item" {
                            input class="nhsuk-radios__input" id=(id) name=(name) type="radio" value=(value) checked[*value == selected];
                            label class="nhsuk-label nhsuk-radios__label" for=(id) { (text) }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn csrf(cx: &Cx) -> Markup {
    html! { input type="hidden" name="csrf" value=(cx.session.csrf); }
}

/// A one-button form (post an action).
pub(crate) fn action_button(cx: &Cx, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(action) novalidate {
            (csrf(cx))
            button class={ "nhsuk-button " (class) } data-module="nhsuk-button" type="submit" { (label) }
        }
    }
}

/// The green banner after something was done.
pub(crate) fn success(message: &str) -> Markup {
    html! {
        div class="nhsuk-notification-banner nhsuk-notification-banner--success" data-module="nhsuk-notification-banner" role="alert" aria-labelledby="success-title" {
            div class="nhsuk-notification-banner__header" {
                h2 class="nhsuk-notification-banner__title" id="success-title" { "Success" }
            }
            div class="nhsuk-notification-banner__content" {
                p class="nhsuk-notification-banner__heading" { (message) }
            }
        }
    }
}

pub(crate) fn back_link(href: &str, text: &str) -> Markup {
    html! {
        div class="nhsuk-back-link" {
            a class="nhsuk-back-link__link" href=(href) { (text) }
        }
    }
}

/// "1986-03-04" → "4 March 1986"; anything else as given.
pub(crate) fn long_date(d: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let date = &d[..d.len().min(10)];
    let parts: Vec<&str> = date.split('-').collect();
    if let [y, m, day] = parts.as_slice()
        && let (Ok(m), Ok(day)) = (m.parse::<usize>(), day.parse::<u32>())
        && (1..=12).contains(&m)
    {
        let mut s = format!("{day} {} {y}", MONTHS[m - 1]);
        if d.len() > 15 && d.as_bytes().get(10) == Some(&b'T') {
            s.push_str(&format!(" {}", &d[11..16]));
        }
        return s;
    }
    d.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_the_nhs_way() {
        assert_eq!(long_date("1986-03-04"), "4 March 1986");
        assert_eq!(long_date("2026-11-23T09:05:00Z"), "23 November 2026 09:05");
        assert_eq!(long_date("1986"), "1986");
    }

    #[test]
    fn error_pages_speak_plainly() {
        let e = FhirError::new(403, "forbidden", "your position does not include this.");
        assert_eq!(what_happened(&e), "your position does not include this");
        let page = fhir_error_page(&e);
        assert_eq!(page.status(), StatusCode::FORBIDDEN);
        let e = FhirError::from_issues(404, Vec::new());
        assert_eq!(what_happened(&e), "the request could not be completed");
    }

    #[test]
    fn sentences() {
        assert_eq!(sentence("bed is taken"), "Bed is taken.");
        assert_eq!(sentence("Done!"), "Done!");
    }

    #[test]
    fn inputs_escape_values_and_link_errors() {
        let mut f = Field::new("family", "Surname");
        f.value = "<script>";
        f.error = Some("Enter the surname");
        let s = input(&f).into_string();
        assert!(s.contains("&lt;script&gt;"));
        assert!(s.contains(r#"aria-describedby="family-error""#));
        assert!(s.contains("nhsuk-form-group--error"));
    }
}
