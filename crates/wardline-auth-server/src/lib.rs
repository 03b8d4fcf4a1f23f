//! The authorization server: Wardline's one place where people and
//! applications obtain credentials, and where those credentials are checked.
//!
//! Contract: a request carries either an access token this server issued
//! or the cookie of a web session this server started, and
//! [`principal_for`] turns either into the directory's `Principal` (or
//! refuses it); nothing else in Wardline issues, stores or reads a
//! credential. Around that:
//!
//! * SMART App Launch v2 discovery (`/.well-known/smart-configuration`, also
//!   below `/fhir`), the authorization endpoint (`/auth/authorize`:
//!   authorization code with S256 PKCE, a server-side sign-in with password
//!   and TOTP code, then position and patient) and the token endpoint
//!   (`/auth/token`: that code; client credentials with `private_key_jwt`);
//! * web sessions for the UI ([`session`]: `/auth/login`, `/auth/logout`,
//!   `/auth/session`), CSRF-checked;
//! * break-glass (`/auth/break-glass`, through `Directory::break_glass`);
//! * the per-address limit on sign-in attempts.
//!
//! The sign-in pages are rendered with maud in the NHS design system
//! (`wardline-nhsuk`): no inline style or script, errors in the design
//! system's error summary and beside their fields. Server-side state is the
//! store's system key-value data (`FhirService::system_data`), never FHIR.
//!
//! [`router`] serves [`ROUTES`]; `wardline-http` mounts it beside the FHIR
//! API and adds the security headers every response carries.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
// Early returns carry the finished HTTP response; it is built once per request.
#![allow(clippy::result_large_err)]

mod credentials;
mod pages;
pub mod session;
mod smart;

pub use credentials::{SESSION_SCOPE, principal_for};
pub use session::{Session, session_user};
pub use smart::DEFAULT_ATTEMPTS_PER_MINUTE;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use wardline_auth::directory::Directory;
use wardline_fhir::FhirError;

/// The client's address, when the server was started with connect info
/// (`wardline_http::serve_app` does).
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// One route of the HTTP surface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    /// `GET`, `POST`, … or `ANY`.
    pub method: &'static str,
    /// axum path pattern.
    pub path: &'static str,
    /// Answers without credentials. Every other route answers 401 without them.
    pub open: bool,
    pub what: &'static str,
}

impl RouteInfo {
    pub const fn new(
        method: &'static str,
        path: &'static str,
        open: bool,
        what: &'static str,
    ) -> RouteInfo {
        RouteInfo {
            method,
            path,
            open,
            what,
        }
    }
}

const fn route(
    method: &'static str,
    path: &'static str,
    open: bool,
    what: &'static str,
) -> RouteInfo {
    RouteInfo::new(method, path, open, what)
}

/// Every route of the authorization server.
pub const ROUTES: &[RouteInfo] = &[
    route(
        "GET",
        "/.well-known/smart-configuration",
        true,
        "SMART App Launch v2 discovery",
    ),
    route(
        "GET",
        "/fhir/.well-known/smart-configuration",
        true,
        "SMART App Launch v2 discovery (below the FHIR base)",
    ),
    route(
        "GET",
        "/auth/authorize",
        true,
        "OAuth 2.0 authorization endpoint: validates the request, sign-in form",
    ),
    route(
        "POST",
        "/auth/authorize",
        true,
        "sign-in form (credentials, then position and patient) → redirect with code",
    ),
    route(
        "POST",
        "/auth/token",
        true,
        "OAuth 2.0 token endpoint: authorization_code + PKCE, client_credentials",
    ),
    route("GET", "/auth/login", true, "web sign-in form (session)"),
    route(
        "POST",
        "/auth/login",
        true,
        "web sign-in → wardline_session cookie",
    ),
    route(
        "POST",
        "/auth/logout",
        false,
        "ends the web session (CSRF-checked)",
    ),
    route(
        "GET",
        "/auth/session",
        false,
        "the web session's user, position and CSRF token",
    ),
    route(
        "POST",
        "/auth/break-glass",
        false,
        "emergency access to a patient's record (reason, minutes)",
    ),
];

fn method_router(r: &RouteInfo) -> Option<MethodRouter<Shared>> {
    Some(match (r.method, r.path) {
        ("GET", "/.well-known/smart-configuration" | "/fhir/.well-known/smart-configuration") => {
            get(smart::smart_configuration)
        }
        ("GET", "/auth/authorize") => get(smart::authorize_get),
        ("POST", "/auth/authorize") => post(smart::authorize_post),
        ("POST", "/auth/token") => post(smart::token),
        ("GET", "/auth/login") => get(smart::login_get),
        ("POST", "/auth/login") => post(smart::login_post),
        ("POST", "/auth/logout") => post(smart::logout),
        ("GET", "/auth/session") => get(smart::session_info),
        ("POST", "/auth/break-glass") => post(smart::break_glass),
        _ => return None,
    })
}

/// How the authorization server is set up.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Served over TLS: cookies are `Secure`.
    pub tls: bool,
    /// Sign-in attempts (`/auth/login`, `/auth/authorize` POST,
    /// `/auth/token`) per client address per minute.
    pub attempts_per_minute: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls: false,
            attempts_per_minute: DEFAULT_ATTEMPTS_PER_MINUTE,
        }
    }
}

/// The handlers' state: the server, when there is a directory to sign in
/// against.
pub(crate) type Shared = Option<Arc<smart::Smart>>;

/// The router of [`ROUTES`]. Without a directory every route answers 503
/// (sign-in is not configured).
pub fn router(directory: Option<Arc<Directory>>, opts: Options) -> Router {
    let state: Shared =
        directory.map(|d| Arc::new(smart::Smart::new(d, opts.tls, opts.attempts_per_minute)));
    let mut router: Router<Shared> = Router::new();
    let mut paths: Vec<&str> = Vec::new();
    for r in ROUTES {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    for path in paths {
        let mut mr: Option<MethodRouter<Shared>> = None;
        for r in ROUTES.iter().filter(|r| r.path == path) {
            if let Some(m) = method_router(r) {
                mr = Some(match mr {
                    Some(prev) => prev.merge(m),
                    None => m,
                });
            }
        }
        if let Some(mr) = mr {
            router = router.route(path, mr);
        }
    }
    router.with_state(state)
}

/// A FHIR `OperationOutcome` response (the JSON endpoints' errors).
pub(crate) fn outcome_response(e: &FhirError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
        e.to_operation_outcome().to_string(),
    )
        .into_response()
}

/// [`outcome_response`], with `WWW-Authenticate` on a 401.
pub(crate) fn unauthorised(e: &FhirError) -> Response {
    let mut r = outcome_response(e);
    if e.status == 401 {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"wardline\""),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_handler() {
        for r in ROUTES {
            assert!(method_router(r).is_some(), "{r:?}");
        }
        let open: Vec<_> = ROUTES.iter().filter(|r| r.open).map(|r| r.path).collect();
        assert!(open.contains(&"/auth/token") && !open.contains(&"/auth/break-glass"));
    }
}
