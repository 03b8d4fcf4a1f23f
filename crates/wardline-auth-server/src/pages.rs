//! The sign-in pages, in the NHS design system (`wardline-nhsuk`'s shell;
//! maud escapes every value). No inline style or script: the design
//! system's stylesheet is linked, so the Content-Security-Policy needs
//! neither `'unsafe-inline'` nor a hash. Every control has a label; hints
//! and errors are tied to their field with `aria-describedby`; a form with
//! errors opens with the error summary, each entry linking to its field.
//!
//! The names the forms post (`request`, `csrf`, `username`, `password`,
//! `code`, `action`, `stage`, `position`, `patient`) are an interface:
//! apps, scripts and tests fill these forms.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_nhsuk::{Shell, described_by, error_message, error_summary, html_response};

/// An error to show: the id of the field it is about, and the message.
pub(crate) type FieldError = (&'static str, String);

fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    html_response(
        status,
        wardline_nhsuk::shell(Shell {
            title,
            head: None,
            home: "/ui/",
            header: None,
            navigation: None,
            body,
        }),
    )
}

fn error_for<'a>(errors: &'a [FieldError], id: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|(f, _)| *f == id)
        .map(|(_, m)| m.as_str())
}

fn summary(errors: &[FieldError]) -> Markup {
    let list: Vec<(String, String)> = errors
        .iter()
        .map(|(f, m)| ((*f).to_owned(), m.clone()))
        .collect();
    error_summary(&list)
}

fn hidden(rid: &str, csrf: &str) -> Markup {
    html! {
        input type="hidden" name="request" value=(rid);
        input type="hidden" name="csrf" value=(csrf);
    }
}

fn cancel_button(show: bool) -> Markup {
    html! {
        @if show {
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" name="action" value="cancel" formnovalidate { "Cancel" }
        }
    }
}

/// A text input in its form group, with label, optional hint and error.
struct Input<'a> {
    id: &'static str,
    label: &'a str,
    hint: Option<&'a str>,
    kind: &'a str,
    value: &'a str,
    width: &'a str,
    autocomplete: &'a str,
    inputmode: Option<&'a str>,
    /// User names and codes are not words: no spell check, no capitals.
    verbatim: bool,
}

fn input(f: &Input<'_>, errors: &[FieldError]) -> Markup {
    let error = error_for(errors, f.id);
    let described = described_by(f.id, f.hint.is_some(), error.is_some());
    html! {
        div class={ "nhsuk-form-group" @if error.is_some() { " nhsuk-form-group--error" } } {
            label class="nhsuk-label" for=(f.id) { (f.label) }
            @if let Some(h) = f.hint { div class="nhsuk-hint" id={ (f.id) "-hint" } { (h) } }
            @if let Some(e) = error { (error_message(f.id, e)) }
            input class={ "nhsuk-input" (f.width) @if error.is_some() { " nhsuk-input--error" } }
                id=(f.id) name=(f.id) type=(f.kind) value=(f.value)
                autocomplete=(f.autocomplete)
                inputmode=[f.inputmode]
                autocapitalize=[f.verbatim.then_some("none")]
                spellcheck=[f.verbatim.then_some("false")]
                aria-describedby=[described.as_deref()];
        }
    }
}

/// The credentials form of `/auth/login` and `/auth/authorize`.
pub(crate) struct SignIn<'a> {
    pub action: &'a str,
    pub rid: &'a str,
    pub csrf: &'a str,
    /// The app asking, for `/auth/authorize`.
    pub client_name: Option<&'a str>,
    /// What the app asks for (the granted SMART scopes), shown in words.
    pub scope: &'a str,
    /// An app's sign-in can be cancelled (the app is told `access_denied`).
    pub cancel: bool,
    /// What was typed, shown again after an error (never the password).
    pub username: &'a str,
}

pub(crate) fn sign_in(status: StatusCode, f: &SignIn<'_>, errors: &[FieldError]) -> Response {
    let title = if errors.is_empty() {
        "Sign in"
    } else {
        "Error: Sign in"
    };
    let body = html! {
        div class="nhsuk-grid-row" {
            div class="nhsuk-grid-column-two-thirds" {
                (summary(errors))
                h1 { "Sign in" }
                @if let Some(n) = f.client_name {
                    p { "Sign in to let " strong { (n) } " use Wardline on your behalf." }
                    @let asks = scope_words(f.scope);
                    @if !asks.is_empty() {
                        div class="nhsuk-inset-text" data-testid="app-asks" {
                            span class="nhsuk-u-visually-hidden" { "Information: " }
                            p { "If you sign in, " (n) " will be able to:" }
                            ul class="nhsuk-list nhsuk-list--bullet" {
                                @for a in &asks { li { (a) } }
                            }
                            p { "What you can see and change is never more than your own position allows, and everything the app does is recorded in your name." }
                        }
                    }
                } @else {
                    p { "Sign in with your Wardline account." }
                }
                form method="post" action=(f.action) novalidate {
                    (hidden(f.rid, f.csrf))
                    (input(&Input {
                        id: "username",
                        label: "User name",
                        hint: None,
                        kind: "text",
                        value: f.username,
                        width: " nhsuk-input--width-20",
                        autocomplete: "username",
                        inputmode: None,
                        verbatim: true,
                    }, errors))
                    (input(&Input {
                        id: "password",
                        label: "Password",
                        hint: None,
                        kind: "password",
                        value: "",
                        width: " nhsuk-input--width-20",
                        autocomplete: "current-password",
                        inputmode: None,
                        verbatim: true,
                    }, errors))
                    (input(&Input {
                        id: "code",
                        label: "Security code",
                        hint: Some("The 6-digit code from your authenticator app."),
                        kind: "text",
                        value: "",
                        width: " nhsuk-input--width-5",
                        autocomplete: "one-time-code",
                        inputmode: Some("numeric"),
                        verbatim: true,
                    }, errors))
                    div class="nhsuk-button-group" {
                        button class="nhsuk-button" data-module="nhsuk-button" type="submit" name="action" value="sign-in" { "Sign in" }
                        (cancel_button(f.cancel))
                    }
                }
            }
        }
    };
    page(status, title, body)
}

/// The SMART scopes an app asks for, in words a clinician reads before
/// signing in (SMART App Launch v1 `.read`/`.write`/`.*` and v2
/// `.cruds`): one line per scope, in the order asked, unknown ones as
/// written.
pub(crate) fn scope_words(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split_whitespace() {
        let line = match s {
            "openid" | "fhirUser" | "profile" => {
                "know who you are: your name and position".to_owned()
            }
            "launch" | "launch/patient" => "ask you which patient to work on".to_owned(),
            "launch/encounter" => "ask you which encounter to work on".to_owned(),
            "offline_access" => {
                "keep working after you close it, until you sign out of it".to_owned()
            }
            "online_access" => "work while you are signed in".to_owned(),
            _ => match resource_scope(s) {
                Some(words) => words,
                None => format!("use the permission \u{201c}{s}\u{201d}"),
            },
        };
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

/// `patient/Observation.rs`, `user/*.cruds`, `system/Patient.read` → words.
fn resource_scope(s: &str) -> Option<String> {
    let (context, rest) = s.split_once('/')?;
    let (kind, perms) = rest.split_once('.')?;
    let verbs: Vec<&str> = match perms {
        "read" => vec!["read"],
        "write" => vec!["create", "change", "delete"],
        "*" => vec!["read", "create", "change", "delete"],
        p if !p.is_empty() && p.chars().all(|c| "cruds".contains(c)) => {
            let mut v = Vec::new();
            // `r` and `s` are both reading (one record, or searching).
            if p.contains('r') || p.contains('s') {
                v.push("read");
            }
            if p.contains('c') {
                v.push("create");
            }
            if p.contains('u') {
                v.push("change");
            }
            if p.contains('d') {
                v.push("delete");
            }
            v
        }
        _ => return None,
    };
    let what = if kind == "*" {
        "all kinds of record".to_owned()
    } else {
        format!("{kind} records")
    };
    let whose = match context {
        "patient" => "of the patient you choose",
        "user" => "that you may see",
        "system" => "of any patient",
        _ => return None,
    };
    let verbs = match verbs.as_slice() {
        [] => return None,
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    Some(format!("{verbs} {what} {whose}"))
}

/// A position the user holds: its id and how it reads.
pub(crate) struct PositionChoice {
    pub id: String,
    pub label: String,
}

/// After the credentials: which position (when there are several) and, for
/// an app launched with `launch/patient`, which patient.
pub(crate) struct Choose<'a> {
    pub action: &'a str,
    pub rid: &'a str,
    pub csrf: &'a str,
    pub positions: &'a [PositionChoice],
    pub patient: bool,
    pub cancel: bool,
}

pub(crate) fn choose(status: StatusCode, f: &Choose<'_>, errors: &[FieldError]) -> Response {
    let heading = if f.positions.len() > 1 {
        "Choose your position"
    } else {
        "Choose a patient"
    };
    let title = if errors.is_empty() {
        heading.to_owned()
    } else {
        format!("Error: {heading}")
    };
    let position_error = error_for(errors, "position");
    let body = html! {
        div class="nhsuk-grid-row" {
            div class="nhsuk-grid-column-two-thirds" {
                (summary(errors))
                h1 { (heading) }
                form method="post" action=(f.action) novalidate {
                    (hidden(f.rid, f.csrf))
                    input type="hidden" name="stage" value="choose";
                    @if f.positions.len() > 1 {
                        div class={ "nhsuk-form-group" @if position_error.is_some() { " nhsuk-form-group--error" } } {
                            fieldset class="nhsuk-fieldset" aria-describedby=[position_error.map(|_| "position-error")] {
                                legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Which position are you working in?" }
                                @if let Some(e) = position_error { (error_message("position", e)) }
                                div class="nhsuk-radios" data-module="nhsuk-radios" {
                                    @for (i, pos) in f.positions.iter().enumerate() {
                                        @let id = if i == 0 { "position".to_owned() } else { format!("position-{}", i + 1) };
                                        div class="nhsuk-radios__item" {
                                            input class="nhsuk-radios__input" id=(id) name="position" type="radio" value=(pos.id) checked[i == 0];
                                            label class="nhsuk-label nhsuk-radios__label" for=(id) { (pos.label) }
                                        }
                                    }
                                }
                            }
                        }
                    } @else if let Some(pos) = f.positions.first() {
                        input type="hidden" name="position" value=(pos.id);
                        p { "Position: " (pos.label) }
                    }
                    @if f.patient {
                        (input(&Input {
                            id: "patient",
                            label: "Patient",
                            hint: Some("The 10-digit NHS number or the Wardline record id."),
                            kind: "text",
                            value: "",
                            width: " nhsuk-input--width-20",
                            autocomplete: "off",
                            inputmode: None,
                            verbatim: true,
                        }, errors))
                    }
                    div class="nhsuk-button-group" {
                        button class="nhsuk-button" data-module="nhsuk-button" type="submit" name="action" value="continue" { "Continue" }
                        (cancel_button(f.cancel))
                    }
                }
            }
        }
    };
    page(status, &title, body)
}

/// A sign-in that cannot go on (expired form, unknown app, no position):
/// what happened and what to do.
pub(crate) fn problem(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in problem",
        html! {
            h1 { "There is a problem" }
            div class="nhsuk-error-summary" data-module="nhsuk-error-summary" {
                div role="alert" {
                    h2 class="nhsuk-error-summary__heading" { "Sign-in could not continue" }
                    div class="nhsuk-error-summary__body" {
                        p { (message) }
                    }
                }
            }
        },
    )
}

/// Too many sign-in attempts from one address.
pub(crate) fn too_many() -> Response {
    page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        html! {
            h1 { "Too many attempts" }
            p { "There have been too many sign-in attempts from this device. Wait a minute and try again." }
        },
    )
}

/// `GET /auth/login` with a live session.
pub(crate) fn signed_in(username: &str, csrf: &str) -> Response {
    page(
        StatusCode::OK,
        "Signed in",
        html! {
            h1 { "Signed in" }
            p { "You are signed in as " strong { (username) } "." }
            p { a href="/ui/" { "Go to Wardline" } }
            form method="post" action="/auth/logout" novalidate {
                input type="hidden" name="csrf" value=(csrf);
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Sign out" }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    fn form<'a>() -> SignIn<'a> {
        SignIn {
            action: "/auth/login",
            rid: "r1",
            csrf: "c1",
            client_name: Some("<App>"),
            scope: "launch/patient patient/Observation.rs openid fhirUser",
            cancel: true,
            username: "nurse\"",
        }
    }

    #[test]
    fn scopes_read_as_words() {
        assert_eq!(
            scope_words(
                "patient/*.rs user/Observation.cruds system/Patient.write launch/patient openid fhirUser"
            ),
            [
                "read all kinds of record of the patient you choose",
                "read, create, change and delete Observation records that you may see",
                "create, change and delete Patient records of any patient",
                "ask you which patient to work on",
                "know who you are: your name and position",
            ]
        );
        assert_eq!(
            scope_words("patient/Observation.u"),
            ["change Observation records of the patient you choose"]
        );
        assert_eq!(
            scope_words("weird"),
            ["use the permission \u{201c}weird\u{201d}"]
        );
        assert!(scope_words("").is_empty());
    }

    #[tokio::test]
    async fn the_sign_in_form_keeps_its_interface() {
        let r = sign_in(StatusCode::OK, &form(), &[]);
        assert_eq!(r.status(), StatusCode::OK);
        let html = text(r).await;
        for needle in [
            r#"name="request" value="r1""#,
            r#"name="csrf" value="c1""#,
            r#"name="username""#,
            r#"name="password" type="password""#,
            r#"autocomplete="one-time-code""#,
            r#"value="sign-in""#,
            r#"value="cancel""#,
            r#"<label class="nhsuk-label" for="code">"#,
            r#"aria-describedby="code-hint""#,
            "&lt;App&gt;",
            r#"value="nurse&quot;""#,
            "read Observation records of the patient you choose",
            "ask you which patient to work on",
        ] {
            assert!(html.contains(needle), "{needle} in {html}");
        }
        assert!(!html.contains("nhsuk-error-summary"));
        assert!(!html.contains("<style") && !html.contains("style=\""));
    }

    #[tokio::test]
    async fn errors_are_summarised_and_beside_their_fields() {
        let errs = [(
            "password",
            "The user name, password or security code is not right".to_owned(),
        )];
        let html = text(sign_in(StatusCode::UNAUTHORIZED, &form(), &errs)).await;
        assert!(
            html.contains("<title>Error: Sign in – Wardline</title>"),
            "{html}"
        );
        assert!(
            html.contains(r##"<a href="#password">The user name"##),
            "{html}"
        );
        assert!(html.contains(r#"id="password-error""#), "{html}");
        assert!(
            html.contains(r#"aria-describedby="password-error""#),
            "{html}"
        );
        assert!(html.contains("nhsuk-input--error"), "{html}");
    }

    #[tokio::test]
    async fn positions_are_radios_the_first_chosen() {
        let positions = [
            PositionChoice {
                id: "p1".into(),
                label: "Staff Nurse at trust".into(),
            },
            PositionChoice {
                id: "p2".into(),
                label: "Ward Clerk at trust".into(),
            },
        ];
        let f = Choose {
            action: "/auth/authorize",
            rid: "r",
            csrf: "c",
            positions: &positions,
            patient: true,
            cancel: true,
        };
        let html = text(choose(
            StatusCode::BAD_REQUEST,
            &f,
            &[("patient", "No patient has NHS number 9434765919.".into())],
        ))
        .await;
        assert!(
            html.contains(r#"id="position" name="position" type="radio" value="p1" checked"#),
            "{html}"
        );
        assert!(
            html.contains(r#"id="position-2" name="position" type="radio" value="p2">"#),
            "{html}"
        );
        assert!(html.contains(r#"name="stage" value="choose""#));
        assert!(html.contains(r##"href="#patient""##));
        assert!(
            html.contains(r#"aria-describedby="patient-hint patient-error""#),
            "{html}"
        );
    }
}
