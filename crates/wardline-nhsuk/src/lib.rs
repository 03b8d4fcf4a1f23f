//! The NHS design system for Wardline's server-rendered pages, shared by the
//! sign-in pages (`wardline-auth-server`) and the clinical workspace
//! (`wardline-web`).
//!
//! Contract: every HTML page Wardline serves is built from this shell and
//! looks like one service. The crate holds
//!
//! * [`assets`]: `nhsuk-frontend`, vendored under `assets/nhsuk` by
//!   `scripts/vendor-nhsuk.sh` (pinned version and integrity) and embedded
//!   at build time, so nothing is fetched at run time; served by the UI
//!   under [`STATIC_BASE`] with a content hash as ETag and `?v=`;
//! * [`shell`]: the page shell (skip link, NHS header with the service name,
//!   main, footer; the design system's stylesheet and favicon linked, never
//!   inline, so the Content-Security-Policy needs no `'unsafe-inline'` nor
//!   a hash) and [`html_response`];
//! * the components both kinds of page use: the error summary and the error
//!   message beside a field (the design system's error pattern).
//!
//! It knows nothing of users, records or the store: callers pass what goes
//! into the header and the body. maud escapes every value.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod assets;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Where the design system's files are served (by `wardline-web`, to anyone:
/// the sign-in pages use them before there is a session).
pub const STATIC_BASE: &str = "/ui/static/nhsuk";

const NHS_LOGO: &str = r#"<svg class="nhsuk-header__logo" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 80" height="40" width="100" focusable="false" role="img" aria-label="NHS"><title>NHS</title><path fill="currentcolor" d="M200 0v80H0V0h200Zm-27.5 5.5c-14.5 0-29 5-29 22 0 10.2 7.7 13.5 14.7 16.3l.7.3c5.4 2 10.1 3.9 10.1 8.4 0 6.5-8.5 7.5-14 7.5s-12.5-1.5-16-3.5L135 70c5.5 2 13.5 3.5 20 3.5 15.5 0 32-4.5 32-22.5 0-19.5-25.5-16.5-25.5-25.5 0-5.5 5.5-6.5 12.5-6.5a35 35 0 0 1 14.5 3l4-13.5c-4.5-2-12-3-20-3Zm-131 2h-22l-14 65H22l9-45h.5l13.5 45h21.5l14-65H64l-9 45h-.5l-13-45Zm63 0h-18l-13 65h17l6-28H117l-5.5 28H129l13.5-65H125L119.5 32h-20l5-24.5Z"/></svg>"#;

/// The URL of one of the design system's files, with its content version.
pub fn asset_url(path: &str) -> String {
    format!(
        "{STATIC_BASE}/{path}?v={}",
        assets::DESIGN_SYSTEM.version(path)
    )
}

/// What goes into the page shell.
pub struct Shell<'a> {
    /// The page's title (`<title>` is "TITLE – Wardline").
    pub title: &'a str,
    /// More of `<head>` after the design system's stylesheet (the UI's own
    /// stylesheet and script).
    pub head: Option<Markup>,
    /// Where the service name in the header links.
    pub home: &'a str,
    /// Inside the header, after the service name (search, account).
    pub header: Option<Markup>,
    /// The header's navigation menu.
    pub navigation: Option<Markup>,
    /// The content of `<main>`.
    pub body: Markup,
}

/// A whole page in the design system.
pub fn shell(s: Shell<'_>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (s.title) " – Wardline" }
                link rel="icon" href=(asset_url("images/favicon.svg")) type="image/svg+xml";
                link rel="stylesheet" href=(asset_url("nhsuk-frontend.min.css"));
                @if let Some(h) = s.head { (h) }
            }
            body {
                a class="nhsuk-skip-link" data-module="nhsuk-skip-link" href="#maincontent" { "Skip to main content" }
                header class="nhsuk-header" data-module="nhsuk-header" role="banner" {
                    div class="nhsuk-header__container nhsuk-width-container" {
                        div class="nhsuk-header__service" {
                            a class="nhsuk-header__service-logo" href=(s.home) aria-label="NHS Wardline homepage" {
                                (PreEscaped(NHS_LOGO))
                                span class="nhsuk-header__service-name" { "Wardline" }
                            }
                        }
                        @if let Some(h) = s.header { (h) }
                    }
                    @if let Some(n) = s.navigation { (n) }
                }
                div class="nhsuk-width-container" {
                    main class="nhsuk-main-wrapper" id="maincontent" role="main" {
                        (s.body)
                    }
                }
                footer class="nhsuk-footer" role="contentinfo" {
                    div class="nhsuk-width-container" {
                        div class="nhsuk-footer__meta" {
                            p class="nhsuk-body-s" { "Wardline – every access to a record is audited." }
                        }
                    }
                }
            }
        }
    }
}

/// An HTML response that is never cached (pages carry personal data or
/// one-use tokens).
pub fn html_response(status: StatusCode, m: Markup) -> Response {
    let mut r = (status, m.into_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The error summary at the top of a form: `(field id, message)` pairs,
/// each linking to its field. Nothing when there are none.
pub fn error_summary(errors: &[(String, String)]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div class="nhsuk-error-summary" data-module="nhsuk-error-summary" {
                div role="alert" {
                    h2 class="nhsuk-error-summary__heading" { "There is a problem" }
                    div class="nhsuk-error-summary__body" {
                        ul class="nhsuk-list nhsuk-error-summary__list" {
                            @for (field, msg) in errors {
                                li { a href={ "#" (field) } { (msg) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The message beside field `id` (its element id is `ID-error`, for the
/// field's `aria-describedby`).
pub fn error_message(id: &str, message: &str) -> Markup {
    html! {
        span class="nhsuk-error-message" id={ (id) "-error" } {
            span class="nhsuk-u-visually-hidden" { "Error: " } (message)
        }
    }
}

/// The value of a field's `aria-describedby`: its hint and its error, when
/// it has them.
pub fn described_by(id: &str, hint: bool, error: bool) -> Option<String> {
    match (hint, error) {
        (true, true) => Some(format!("{id}-hint {id}-error")),
        (true, false) => Some(format!("{id}-hint")),
        (false, true) => Some(format!("{id}-error")),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_links_the_design_system_and_inlines_no_style() {
        let page = shell(Shell {
            title: "A <page>",
            head: None,
            home: "/ui/",
            header: None,
            navigation: None,
            body: html! { h1 { "Hello" } },
        })
        .into_string();
        assert!(page.contains("<title>A &lt;page&gt; – Wardline</title>"));
        assert!(page.contains(&format!("href=\"{STATIC_BASE}/nhsuk-frontend.min.css?v=")));
        assert!(page.contains("class=\"nhsuk-header\""));
        assert!(page.contains("class=\"nhsuk-footer\""));
        assert!(!page.contains("<style") && !page.contains("style=\""));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn errors_link_to_their_fields() {
        let s = error_summary(&[("password".into(), "Enter your <password>".into())]).into_string();
        assert!(s.contains("href=\"#password\""));
        assert!(s.contains("Enter your &lt;password&gt;"));
        assert!(error_summary(&[]).into_string().is_empty());
        assert!(
            error_message("code", "x")
                .into_string()
                .contains("id=\"code-error\"")
        );
        assert_eq!(
            described_by("a", true, true).as_deref(),
            Some("a-hint a-error")
        );
        assert_eq!(described_by("a", false, false), None);
    }
}
