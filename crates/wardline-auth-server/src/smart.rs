//! SMART on FHIR: discovery, the authorization endpoint (authorization code
//! with PKCE, a server-side sign-in form), the token endpoint (authorization
//! code; client credentials with `private_key_jwt`), web sessions for the UI,
//! break-glass, and per-address rate limiting of sign-in attempts.
//!
//! Server-side state lives in the store's system key-value table:
//!
//! | namespace       | key                     | what                                   |
//! |-----------------|-------------------------|----------------------------------------|
//! | `authz-request` | random id               | a sign-in in progress (10 minutes)     |
//! | `auth-code`     | SHA-256 of the code     | an authorization code (60 s, one use)  |
//! | `assertion-jti` | `client/jti`            | a client assertion seen, until its exp |
//! | `session`       | SHA-256 of the cookie   | a web session ([`crate::session`])     |
//!
//! (the system key-value data, `FhirService::system_data`).
//!
//! The parameters of an authorization request are validated on GET and kept
//! in the `authz-request` record; the form only carries the record's id and
//! a CSRF token, which must match the record and the short-lived
//! `wardline_preauth` cookie set with the form.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wardline_auth::directory::{Directory, LoginError, Position};
use wardline_auth::pkce;
use wardline_auth::scopes::ScopeSet;
use wardline_core::access::{Agent, AgentKind};
use wardline_core::audit::{AuditRecord, WARDLINE_SUBTYPE};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::{format_instant, now_ms};

use crate::pages::{self, FieldError, PositionChoice};
use crate::session::{self, SESSION_COOKIE};
use crate::{Peer, Shared, outcome_response, unauthorised};

/// Pre-authentication cookie binding a sign-in form to its browser.
pub const PREAUTH_COOKIE: &str = "wardline_preauth";
/// How long a sign-in form stays usable.
pub const SIGN_IN_MS: i64 = 10 * 60 * 1000;
/// Lifetime of an authorization code.
pub const CODE_MS: i64 = 60 * 1000;
/// Lifetime of a user access token.
pub const USER_TOKEN_SECS: i64 = 3600;
/// Lifetime of a backend-service access token.
pub const SYSTEM_TOKEN_SECS: i64 = 900;
/// Default sign-in attempts per client address per minute.
pub const DEFAULT_ATTEMPTS_PER_MINUTE: u32 = 10;
const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The authorization server's configuration and state.
pub(crate) struct Smart {
    pub dir: Arc<Directory>,
    pub limiter: RateLimiter,
    pub fhir_base: String,
    pub authorize_url: String,
    pub token_url: String,
    pub issuer: String,
    pub secure: bool,
}

impl Smart {
    pub fn new(dir: Arc<Directory>, secure: bool, attempts_per_minute: u32) -> Smart {
        let config = dir.service().config();
        let fhir_base = config.base_url.trim_end_matches('/').to_owned();
        let origin = fhir_base
            .strip_suffix("/fhir")
            .unwrap_or(&fhir_base)
            .to_owned();
        let (authorize_url, token_url) = match &config.oauth {
            Some(o) => (o.authorize.clone(), o.token.clone()),
            None => (
                format!("{origin}/auth/authorize"),
                format!("{origin}/auth/token"),
            ),
        };
        Smart {
            dir,
            limiter: RateLimiter::new(attempts_per_minute),
            fhir_base,
            authorize_url,
            token_url,
            issuer: origin,
            secure,
        }
    }
}

// ---- rate limiting ----------------------------------------------------------

/// At most N attempts per client address per minute (fixed one-minute
/// windows, in memory).
pub(crate) struct RateLimiter {
    per_minute: u32,
    hits: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt; `Err(seconds to wait)` when over the limit.
    fn check(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let ip = ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let now = Instant::now();
        let minute = std::time::Duration::from_secs(60);
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() > 10_000 {
            hits.retain(|_, (start, _)| now.duration_since(*start) < minute);
        }
        let e = hits.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= minute {
            *e = (now, 0);
        }
        if e.1 >= self.per_minute {
            let left = minute.saturating_sub(now.duration_since(e.0)).as_secs() + 1;
            return Err(left);
        }
        e.1 += 1;
        Ok(())
    }
}

fn too_many(retry_after: u64, json_body: bool) -> Response {
    let mut r = if json_body {
        oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request",
            "too many attempts from this address; wait and try again",
        )
    } else {
        pages::too_many()
    };
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

// ---- helpers ------------------------------------------------------------------

/// Runs blocking work (store, password hashing) off the async workers.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| outcome_response(&FhirError::internal("internal error")))
}

fn smart_of(s: &Shared) -> Result<Arc<Smart>, Response> {
    s.clone().ok_or_else(|| {
        outcome_response(&FhirError::new(
            503,
            "not-supported",
            "sign-in is not configured on this server",
        ))
    })
}

fn form(body: &[u8]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        m.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    m
}

/// Form parameters, refusing a repeated one (RFC 6749 §3.1).
fn params_once(text: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut m = HashMap::new();
    for (k, v) in form_urlencoded::parse(text) {
        if m.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("the parameter '{k}' is repeated"));
        }
    }
    Ok(m)
}

fn error_page(status: StatusCode, message: &str) -> Response {
    pages::problem(status, message)
}

fn add_cookie(r: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn redirect(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The authorization response (or error) to a validated redirect URI.
fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut r = redirect(&format!("{redirect_uri}{sep}{}", q.finish()));
    *r.status_mut() = StatusCode::FOUND;
    r
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    token_json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn token_json(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        v.to_string(),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "sign-in failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on the server. Try again later.",
    )
}

// ---- discovery ------------------------------------------------------------------

/// `/.well-known/smart-configuration` (SMART App Launch v2).
pub(crate) fn configuration(smart: &Smart) -> Value {
    json!({
        "issuer": smart.issuer,
        "authorization_endpoint": smart.authorize_url,
        "token_endpoint": smart.token_url,
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": [
            "launch/patient",
            "patient/*.rs", "patient/*.read",
            "user/*.cruds", "user/*.read", "user/*.write",
            "system/*.rs", "system/*.read",
        ],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "permission-v2",
            "permission-patient",
            "permission-user",
        ],
    })
}

pub(crate) async fn smart_configuration(State(s): State<Shared>) -> Response {
    match smart_of(&s) {
        Ok(smart) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            configuration(&smart).to_string(),
        )
            .into_response(),
        Err(r) => r,
    }
}

// ---- sign-in records --------------------------------------------------------------

/// A sign-in in progress (kv `authz-request`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    /// `authorize` (SMART app) or `login` (web session).
    kind: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code_challenge: Option<String>,
    /// Granted scope (requested ∩ the client's).
    #[serde(default)]
    scope: String,
    #[serde(default)]
    launch_patient: bool,
    /// Web sign-in: the page of this server to go back to afterwards.
    #[serde(default)]
    next: Option<String>,
    /// Digest of the pre-auth cookie.
    preauth: String,
    csrf: String,
    expires_ms: i64,
    /// Set once the credentials were accepted.
    #[serde(default)]
    username: Option<String>,
}

const PENDING_NS: &str = "authz-request";
const CODE_NS: &str = "auth-code";
const JTI_NS: &str = "assertion-jti";

/// An authorization code (kv `auth-code`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    username: String,
    position: String,
    scope: String,
    #[serde(default)]
    patient: Option<String>,
    expires_ms: i64,
}

fn put_json(dir: &Directory, ns: &str, key: &str, v: &impl Serialize) -> Result<(), FhirError> {
    let text = serde_json::to_string(v).map_err(|e| FhirError::internal(e.to_string()))?;
    dir.service().system_data().put(ns, key, &text)
}

/// Stores a new sign-in and renders its form with the pre-auth cookie.
fn start_sign_in(smart: &Smart, mut p: Pending, action: &str) -> Response {
    let rid = pkce::random_token(24);
    let preauth = pkce::random_token(24);
    p.preauth = session::digest(&preauth);
    p.csrf = pkce::random_token(24);
    p.expires_ms = now_ms() + SIGN_IN_MS;
    if let Err(e) = put_json(&smart.dir, PENDING_NS, &rid, &p) {
        return internal(e);
    }
    let mut r = sign_in_page(StatusCode::OK, action, &rid, &p, &[], "");
    add_cookie(
        &mut r,
        &session::set_cookie(
            PREAUTH_COOKIE,
            &preauth,
            "/auth",
            SIGN_IN_MS / 1000,
            smart.secure,
        ),
    );
    r
}

fn sign_in_page(
    status: StatusCode,
    action: &str,
    rid: &str,
    p: &Pending,
    errors: &[FieldError],
    username: &str,
) -> Response {
    pages::sign_in(
        status,
        &pages::SignIn {
            action,
            rid,
            csrf: &p.csrf,
            client_name: p.client_name.as_deref(),
            scope: &p.scope,
            cancel: p.kind == "authorize",
            username,
        },
        errors,
    )
}

fn choose_page(
    dir: &Directory,
    status: StatusCode,
    action: &str,
    rid: &str,
    p: &Pending,
    positions: &[Position],
    errors: &[FieldError],
) -> Response {
    let positions: Vec<PositionChoice> = positions
        .iter()
        .map(|pos| PositionChoice {
            id: pos.id.clone(),
            label: dir.position_label(pos),
        })
        .collect();
    pages::choose(
        status,
        &pages::Choose {
            action,
            rid,
            csrf: &p.csrf,
            positions: &positions,
            patient: p.launch_patient,
            cancel: p.kind == "authorize",
        },
        errors,
    )
}

/// The fields of the credentials form left empty, each with what to do.
fn missing_credentials(username: &str, password: &str, code: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if username.is_empty() {
        errors.push(("username", "Enter your user name".to_owned()));
    }
    if password.is_empty() {
        errors.push(("password", "Enter your password".to_owned()));
    }
    if code.is_empty() {
        errors.push((
            "code",
            "Enter the 6-digit security code from your authenticator app".to_owned(),
        ));
    }
    errors
}

/// Loads the sign-in a form was posted for and checks its CSRF token and
/// pre-auth cookie.
fn load_pending(
    dir: &Directory,
    headers: &HeaderMap,
    f: &HashMap<String, String>,
) -> Result<(String, Pending), Response> {
    let rid = f.get("request").cloned().unwrap_or_default();
    let expired = || {
        error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in form has expired. Go back to the application and start again.",
        )
    };
    if rid.is_empty() || rid.len() > 100 {
        return Err(expired());
    }
    let kv = dir.service().system_data();
    let p: Pending = match kv.get(PENDING_NS, &rid) {
        Ok(Some(v)) => serde_json::from_str(&v).map_err(internal)?,
        Ok(None) => return Err(expired()),
        Err(e) => return Err(internal(e)),
    };
    if p.expires_ms <= now_ms() {
        let _ = kv.delete(PENDING_NS, &rid);
        return Err(expired());
    }
    let cookie_ok = session::cookie(headers, PREAUTH_COOKIE).is_some_and(|c| {
        pkce::constant_time_eq(session::digest(&c).as_bytes(), p.preauth.as_bytes())
    });
    let csrf_ok = f
        .get("csrf")
        .is_some_and(|c| pkce::constant_time_eq(c.as_bytes(), p.csrf.as_bytes()));
    if !cookie_ok || !csrf_ok {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "This form could not be checked (it may have come from another site, or cookies are blocked). Go back to the application and start again.",
        ));
    }
    Ok((rid, p))
}

enum Step {
    /// Credentials accepted and nothing to ask: done with this position.
    Done(String, Option<String>),
    Page(Response),
}

/// The shared sign-in state machine of `/auth/authorize` and `/auth/login`.
fn sign_in_step(
    smart: &Smart,
    action: &str,
    rid: &str,
    p: &mut Pending,
    f: &HashMap<String, String>,
    peer: Option<IpAddr>,
) -> Step {
    let dir = &smart.dir;
    match &p.username {
        None => {
            let username = f.get("username").map(|u| u.trim()).unwrap_or_default();
            let password = f.get("password").map(String::as_str).unwrap_or_default();
            let code = f.get("code").map(|c| c.trim()).unwrap_or_default();
            let missing = missing_credentials(username, password, code);
            if !missing.is_empty() {
                return Step::Page(sign_in_page(
                    StatusCode::BAD_REQUEST,
                    action,
                    rid,
                    p,
                    &missing,
                    username,
                ));
            }
            let address = peer.map(|a| a.to_string());
            match dir.login(username, password, code, address.as_deref()) {
                Ok(_) => {}
                Err(LoginError::Store(e)) => return Step::Page(internal(e)),
                Err(e) => {
                    // Which of the three was wrong is not said (that would
                    // tell a guesser which user names exist); the message is
                    // shown at the password, the field most often mistyped.
                    // An account problem is shown at the user name.
                    let (status, field) = match e {
                        LoginError::Invalid => (StatusCode::UNAUTHORIZED, "password"),
                        LoginError::CodeUsed => (StatusCode::UNAUTHORIZED, "code"),
                        _ => (StatusCode::FORBIDDEN, "username"),
                    };
                    return Step::Page(sign_in_page(
                        status,
                        action,
                        rid,
                        p,
                        &[(field, sentence(&e.to_string()))],
                        username,
                    ));
                }
            }
            let positions = match dir.positions(username) {
                Ok(ps) => ps,
                Err(e) => return Step::Page(internal(e)),
            };
            if positions.is_empty() {
                return Step::Page(error_page(
                    StatusCode::FORBIDDEN,
                    "Your account holds no active position, so you cannot use Wardline. Ask your system administrator.",
                ));
            }
            if positions.len() == 1 && !p.launch_patient {
                return Step::Done(positions[0].id.clone(), None);
            }
            p.username = Some(username.to_owned());
            if let Err(e) = put_json(dir, PENDING_NS, rid, p) {
                return Step::Page(internal(e));
            }
            Step::Page(choose_page(
                dir,
                StatusCode::OK,
                action,
                rid,
                p,
                &positions,
                &[],
            ))
        }
        Some(username) => {
            let positions = match dir.positions(username) {
                Ok(ps) => ps,
                Err(e) => return Step::Page(internal(e)),
            };
            let chosen = f.get("position").map(String::as_str).unwrap_or_default();
            let Some(pos) = positions.iter().find(|x| x.id == chosen) else {
                return Step::Page(choose_page(
                    dir,
                    StatusCode::BAD_REQUEST,
                    action,
                    rid,
                    p,
                    &positions,
                    &[("position", "Choose one of your positions".to_owned())],
                ));
            };
            let patient = if p.launch_patient {
                let input = f.get("patient").map(|s| s.trim()).unwrap_or_default();
                match resolve_patient(dir, input) {
                    Ok(id) => Some(id),
                    Err(msg) => {
                        return Step::Page(choose_page(
                            dir,
                            StatusCode::BAD_REQUEST,
                            action,
                            rid,
                            p,
                            &positions,
                            &[("patient", msg)],
                        ));
                    }
                }
            } else {
                None
            };
            Step::Done(pos.id.clone(), patient)
        }
    }
}

/// A patient by 10-digit NHS number or by record id.
fn resolve_patient(dir: &Directory, input: &str) -> Result<String, String> {
    let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err("Enter the patient's NHS number or record id.".into());
    }
    let reader = dir.service().system_reader();
    if compact.len() == 10 && compact.bytes().all(|b| b.is_ascii_digit()) {
        if !wardline_fhir::nhs_number::is_valid(&compact) {
            return Err(format!("{compact} is not a valid NHS number."));
        }
        let found = dir
            .search(
                reader,
                "Patient",
                &[("identifier", format!("{NHS_NUMBER_SYSTEM}|{compact}"))],
            )
            .map_err(|e| e.to_string())?;
        return match found.as_slice() {
            [one] => one
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "the patient record has no id".to_owned()),
            [] => Err(format!("No patient has NHS number {compact}.")),
            _ => Err(format!(
                "More than one record has NHS number {compact}; use the record id."
            )),
        };
    }
    if compact.len() > 64
        || !compact
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err("Enter a 10-digit NHS number or a record id.".into());
    }
    match reader.read("Patient", &compact) {
        Ok(Some(r)) if !r.deleted => Ok(compact),
        Ok(_) => Err(format!("No patient has record id {compact}.")),
        Err(e) => Err(e.to_string()),
    }
}

fn clear_preauth(r: &mut Response, secure: bool) {
    add_cookie(
        r,
        &session::set_cookie(PREAUTH_COOKIE, "", "/auth", 0, secure),
    );
}

// ---- /auth/authorize ------------------------------------------------------------

pub(crate) async fn authorize_get(State(s): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let smart = match smart_of(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    blocking(move || authorize_start(&smart, q.as_deref().unwrap_or(""))).await
}

fn authorize_start(smart: &Smart, query: &str) -> Response {
    let q = match params_once(query.as_bytes()) {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    // Until the client and its redirect URI are known, errors are shown here,
    // never redirected (RFC 6749 §4.1.2.1).
    let Some(client_id) = get("client_id") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The application did not say who it is (client_id is missing).",
        );
    };
    let client = match smart.dir.client(client_id) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This application is not registered with Wardline.",
            );
        }
        Err(e) => return internal(e),
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The application did not give a redirect_uri.",
        );
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The redirect_uri is not one registered for this application.",
        );
    }
    let state = get("state");
    let fail = |error: &str, description: &str| {
        let mut ps = vec![("error", error), ("error_description", description)];
        if let Some(st) = state {
            ps.push(("state", st));
        }
        redirect_with(redirect_uri, &ps)
    };
    if get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    if state.is_none() {
        return fail("invalid_request", "state is required");
    }
    let Some(challenge) = get("code_challenge") else {
        return fail("invalid_request", "code_challenge (PKCE) is required");
    };
    if get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if challenge.len() != 43 {
        return fail(
            "invalid_request",
            "code_challenge must be a base64url SHA-256",
        );
    }
    if get("aud").map(|a| a.trim_end_matches('/')) != Some(smart.fhir_base.as_str()) {
        return fail("invalid_request", "aud must be this server's FHIR base URL");
    }
    let Some(scope) = get("scope") else {
        return fail("invalid_scope", "scope is required");
    };
    let requested = match ScopeSet::parse(scope) {
        Ok(s) => s,
        Err(e) => return fail("invalid_scope", &e.to_string()),
    };
    let allowed = ScopeSet::parse(&client.scope).unwrap_or_default();
    let granted = requested.intersect(&allowed);
    if granted.resources.is_empty() {
        return fail(
            "invalid_scope",
            "none of the requested scopes may be granted to this application",
        );
    }
    let p = Pending {
        kind: "authorize".into(),
        client_id: Some(client.client_id.clone()),
        client_name: Some(client.name.clone()),
        redirect_uri: Some(redirect_uri.to_owned()),
        state: state.map(str::to_owned),
        code_challenge: Some(challenge.to_owned()),
        scope: granted.to_string(),
        launch_patient: granted.has("launch/patient"),
        next: None,
        preauth: String::new(),
        csrf: String::new(),
        expires_ms: 0,
        username: None,
    };
    start_sign_in(smart, p, "/auth/authorize")
}

pub(crate) async fn authorize_post(
    State(s): State<Shared>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let smart = match smart_of(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(wait) = smart.limiter.check(peer) {
        return too_many(wait, false);
    }
    blocking(move || {
        let f = form(&body);
        let (rid, mut p) = match load_pending(&smart.dir, &headers, &f) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let kv = smart.dir.service().system_data();
        let (Some(redirect_uri), Some(client_id)) = (p.redirect_uri.clone(), p.client_id.clone())
        else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This is not an application sign-in.",
            );
        };
        let state = p.state.clone().unwrap_or_default();
        if f.get("action").map(String::as_str) == Some("cancel") {
            let _ = kv.delete(PENDING_NS, &rid);
            let mut r = redirect_with(
                &redirect_uri,
                &[
                    ("error", "access_denied"),
                    ("error_description", "the user cancelled sign-in"),
                    ("state", &state),
                ],
            );
            clear_preauth(&mut r, smart.secure);
            return r;
        }
        let (position, patient) =
            match sign_in_step(&smart, "/auth/authorize", &rid, &mut p, &f, peer) {
                Step::Done(pos, patient) => (pos, patient),
                Step::Page(r) => return r,
            };
        let username = match &p.username {
            Some(u) => u.clone(),
            None => f
                .get("username")
                .map(|u| u.trim().to_owned())
                .unwrap_or_default(),
        };
        let code = pkce::random_token(32);
        let grant = CodeGrant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            code_challenge: p.code_challenge.clone().unwrap_or_default(),
            username,
            position,
            scope: p.scope.clone(),
            patient,
            expires_ms: now_ms() + CODE_MS,
        };
        if let Err(e) = put_json(&smart.dir, CODE_NS, &session::digest(&code), &grant) {
            return internal(e);
        }
        let _ = kv.delete(PENDING_NS, &rid);
        let mut r = redirect_with(&redirect_uri, &[("code", &code), ("state", &state)]);
        clear_preauth(&mut r, smart.secure);
        r
    })
    .await
}

// ---- /auth/token ----------------------------------------------------------------

pub(crate) async fn token(
    State(s): State<Shared>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let smart = match smart_of(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(wait) = smart.limiter.check(peer) {
        return too_many(wait, true);
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| {
            c.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the token request must be application/x-www-form-urlencoded",
        );
    }
    blocking(move || {
        let f = match params_once(&body) {
            Ok(f) => f,
            Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
        };
        let address = peer.map(|a| a.to_string());
        match f.get("grant_type").map(String::as_str) {
            Some("authorization_code") => code_grant(&smart, &f, address),
            Some("client_credentials") => client_credentials(&smart, &f, address),
            Some(_) => oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or client_credentials",
            ),
            None => oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            ),
        }
    })
    .await
}

fn invalid_client(why: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why)
}

fn invalid_grant(why: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
}

/// Verifies a client assertion and records its `jti` until it expires.
fn check_assertion(
    smart: &Smart,
    client: &wardline_auth::directory::Client,
    f: &HashMap<String, String>,
) -> Result<(), Response> {
    if f.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(invalid_client(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    let Some(assertion) = f.get("client_assertion") else {
        return Err(invalid_client("client_assertion is required"));
    };
    let Some(jwks) = &client.jwks else {
        return Err(invalid_client("the client has no registered public key"));
    };
    let now = now_ms() / 1000;
    let claims = wardline_auth::token::verify_client_assertion(
        assertion,
        jwks,
        &client.client_id,
        &smart.token_url,
        now,
    )
    .map_err(|e| invalid_client(&format!("client assertion refused: {e}")))?;
    let kv = smart.dir.service().system_data();
    let key = format!("{}/{}", client.client_id, claims.jti);
    if key.len() > 512 {
        return Err(invalid_client("the assertion's jti is too long"));
    }
    match kv.get(JTI_NS, &key) {
        Ok(Some(v)) if v.parse::<i64>().unwrap_or(i64::MAX) >= now => {
            return Err(invalid_client("this client assertion was already used"));
        }
        Ok(_) => {}
        Err(e) => return Err(internal_json(e)),
    }
    // Forget expired ones of this client.
    if let Ok(seen) = kv.list(JTI_NS, &format!("{}/", client.client_id)) {
        for (k, v) in seen {
            if v.parse::<i64>().unwrap_or(0) + wardline_auth::token::LEEWAY_SECS < now {
                let _ = kv.delete(JTI_NS, &k);
            }
        }
    }
    kv.put(
        JTI_NS,
        &key,
        &(claims.exp + wardline_auth::token::LEEWAY_SECS).to_string(),
    )
    .map_err(internal_json)?;
    Ok(())
}

fn internal_json(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "token endpoint failed");
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal error",
    )
}

fn code_grant(smart: &Smart, f: &HashMap<String, String>, address: Option<String>) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (Some(code), Some(redirect_uri), Some(client_id), Some(verifier)) = (
        get("code"),
        get("redirect_uri"),
        get("client_id"),
        get("code_verifier"),
    ) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code, redirect_uri, client_id and code_verifier are required",
        );
    };
    let kv = smart.dir.service().system_data();
    let key = session::digest(code);
    let grant: CodeGrant = match kv.get(CODE_NS, &key) {
        Ok(Some(v)) => match serde_json::from_str(&v) {
            Ok(g) => g,
            Err(e) => return internal_json(e),
        },
        Ok(None) => return invalid_grant("the code is unknown, used or expired"),
        Err(e) => return internal_json(e),
    };
    // One use: whoever deletes it first has it.
    match kv.delete(CODE_NS, &key) {
        Ok(true) => {}
        Ok(false) => return invalid_grant("the code is unknown, used or expired"),
        Err(e) => return internal_json(e),
    }
    if grant.expires_ms <= now_ms() {
        return invalid_grant("the code has expired");
    }
    let client = match smart.dir.client(client_id) {
        Ok(Some(c)) => c,
        Ok(None) => return invalid_client("unknown client"),
        Err(e) => return internal_json(e),
    };
    if (client.jwks.is_some() || f.contains_key("client_assertion"))
        && let Err(r) = check_assertion(smart, &client, f)
    {
        return r;
    }
    if grant.client_id != client_id {
        return invalid_grant("the code was issued to another client");
    }
    if grant.redirect_uri != redirect_uri {
        return invalid_grant("redirect_uri does not match the authorization request");
    }
    if !pkce::verify_s256(verifier, &grant.code_challenge) {
        return invalid_grant("the code_verifier does not match the code_challenge");
    }
    let scope = match ScopeSet::parse(&grant.scope) {
        Ok(s) => s,
        Err(e) => return internal_json(e),
    };
    let token = match smart.dir.issue_user_token(
        &grant.username,
        &grant.position,
        &scope,
        grant.patient.as_deref(),
        Some(client_id),
        USER_TOKEN_SECS,
    ) {
        Ok(t) => t,
        Err(e) => return invalid_grant(&e.to_string()),
    };
    let who = smart
        .dir
        .account(&grant.username)
        .ok()
        .flatten()
        .map(|a| format!("Practitioner/{}", a.practitioner));
    let agent = Agent {
        kind: AgentKind::User,
        name: grant.username.clone(),
        who,
        position: Some(format!("PractitionerRole/{}", grant.position)),
        client_id: Some(client_id.to_owned()),
        address,
    };
    if let Err(e) = audit_token(smart, &agent, grant.patient.as_deref()) {
        return internal_json(e);
    }
    let mut body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": USER_TOKEN_SECS,
        "scope": scope.to_string(),
    });
    if let Some(p) = &grant.patient {
        body["patient"] = json!(p);
    }
    token_json(StatusCode::OK, &body)
}

fn client_credentials(
    smart: &Smart,
    f: &HashMap<String, String>,
    address: Option<String>,
) -> Response {
    let Some(assertion) = f.get("client_assertion") else {
        return invalid_client("client_assertion is required");
    };
    // Which client: client_id if given, else the assertion's (unverified)
    // issuer, which the verification then checks.
    let client_id = match f.get("client_id") {
        Some(c) => c.clone(),
        None => match unverified_issuer(assertion) {
            Some(c) => c,
            None => return invalid_client("the client assertion names no issuer"),
        },
    };
    let client = match smart.dir.client(&client_id) {
        Ok(Some(c)) => c,
        Ok(None) => return invalid_client("unknown client"),
        Err(e) => return internal_json(e),
    };
    if let Err(r) = check_assertion(smart, &client, f) {
        return r;
    }
    let Some(scope) = f.get("scope").filter(|s| !s.trim().is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope is required",
        );
    };
    let requested = match ScopeSet::parse(scope) {
        Ok(s) => s,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &e.to_string()),
    };
    let allowed = ScopeSet::parse(&client.scope).unwrap_or_default();
    let granted = requested.system_grant(&allowed);
    if granted.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "none of the requested system/ scopes may be granted to this client",
        );
    }
    let token = smart
        .dir
        .issue_system_token(&client.client_id, &granted, SYSTEM_TOKEN_SECS);
    let agent = Agent {
        kind: AgentKind::System,
        name: client.client_id.clone(),
        client_id: Some(client.client_id.clone()),
        address,
        ..Agent::default()
    };
    if let Err(e) = audit_token(smart, &agent, None) {
        return internal_json(e);
    }
    token_json(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": SYSTEM_TOKEN_SECS,
            "scope": granted.to_string(),
        }),
    )
}

fn unverified_issuer(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.trim_end_matches('=').as_bytes())
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

fn audit_token(smart: &Smart, agent: &Agent, patient: Option<&str>) -> Result<(), FhirError> {
    let mut rec = AuditRecord::security(
        ("110114", "User Authentication"),
        (WARDLINE_SUBTYPE, "token-issued"),
        "E",
    );
    if let Some(p) = patient {
        rec.touch("Patient", p, Some(p));
    }
    smart.dir.service().record_audit(agent, &[rec])
}

// ---- /auth/login, /auth/logout, /auth/session ------------------------------------------

/// A `next` page to return to after signing in: a path on this server only
/// (never `//host` or a scheme), so the sign-in cannot be used to redirect
/// somewhere else.
fn local_next(query: Option<&str>) -> Option<String> {
    let q = query?;
    let next = form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())?;
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 512
        && next.chars().all(|c| !c.is_control());
    ok.then_some(next)
}

pub(crate) async fn login_get(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let smart = match smart_of(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let next = local_next(q.as_deref());
    blocking(move || match session::session_user(&smart.dir, &headers) {
        Ok(Some(sess)) => match &next {
            Some(n) => redirect(n),
            None => signed_in_page(&sess),
        },
        Ok(None) => start_sign_in(
            &smart,
            Pending {
                kind: "login".into(),
                client_id: None,
                client_name: None,
                redirect_uri: None,
                state: None,
                code_challenge: None,
                scope: String::new(),
                launch_patient: false,
                next,
                preauth: String::new(),
                csrf: String::new(),
                expires_ms: 0,
                username: None,
            },
            "/auth/login",
        ),
        Err(e) => internal(e),
    })
    .await
}

fn signed_in_page(s: &session::Session) -> Response {
    pages::signed_in(&s.username, &s.csrf)
}

pub(crate) async fn login_post(
    State(s): State<Shared>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let smart = match smart_of(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(wait) = smart.limiter.check(peer) {
        return too_many(wait, false);
    }
    blocking(move || {
        let f = form(&body);
        let (rid, mut p) = match load_pending(&smart.dir, &headers, &f) {
            Ok(x) => x,
            Err(r) => return r,
        };
        if p.kind != "login" {
            return error_page(StatusCode::BAD_REQUEST, "This is not a Wardline sign-in.");
        }
        let (position, _) = match sign_in_step(&smart, "/auth/login", &rid, &mut p, &f, peer) {
            Step::Done(pos, patient) => (pos, patient),
            Step::Page(r) => return r,
        };
        let username = match &p.username {
            Some(u) => u.clone(),
            None => f
                .get("username")
                .map(|u| u.trim().to_owned())
                .unwrap_or_default(),
        };
        let _ = smart.dir.service().system_data().delete(PENDING_NS, &rid);
        let (sid, _) = match session::create(&smart.dir, &username, &position) {
            Ok(x) => x,
            Err(e) => return internal(e),
        };
        let mut r = redirect(p.next.as_deref().unwrap_or("/auth/login"));
        add_cookie(
            &mut r,
            &session::set_cookie(
                SESSION_COOKIE,
                &sid,
                "/",
                session::SESSION_MAX_MS / 1000,
                smart.secure,
            ),
        );
        clear_preauth(&mut r, smart.secure);
        r
    })
    .await
}

pub(crate) async fn logout(
    State(s): State<Shared>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let smart = match smart_of(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    blocking(move || {
        let sess = match session::session_user(&smart.dir, &headers) {
            Ok(Some(x)) => x,
            Ok(None) => {
                return unauthorised(&FhirError::new(401, "login", "you are not signed in"));
            }
            Err(e) => return outcome_response(&e),
        };
        let f = form(&body);
        let token = f
            .get("csrf")
            .map(String::as_str)
            .or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))
            .unwrap_or_default();
        if !pkce::constant_time_eq(token.as_bytes(), sess.csrf.as_bytes()) {
            return outcome_response(&FhirError::new(
                403,
                "forbidden",
                "sign-out needs the session's CSRF token",
            ));
        }
        if let Err(e) = session::delete(&smart.dir, &sess) {
            return outcome_response(&e);
        }
        let who = smart
            .dir
            .account(&sess.username)
            .ok()
            .flatten()
            .map(|a| format!("Practitioner/{}", a.practitioner));
        let agent = Agent {
            kind: AgentKind::User,
            name: sess.username.clone(),
            who,
            position: Some(format!("PractitionerRole/{}", sess.position)),
            client_id: None,
            address: peer.map(|a| a.to_string()),
        };
        let rec = AuditRecord::security(
            ("110114", "User Authentication"),
            ("http://dicom.nema.org/resources/ontology/DCM", "110123"),
            "E",
        );
        if let Err(e) = smart.dir.service().record_audit(&agent, &[rec]) {
            return outcome_response(&e);
        }
        let mut r = redirect("/auth/login");
        add_cookie(
            &mut r,
            &session::set_cookie(SESSION_COOKIE, "", "/", 0, smart.secure),
        );
        r
    })
    .await
}

/// `GET /auth/session`: who the session cookie belongs to, and its CSRF
/// token (for the UI's scripts).
pub(crate) async fn session_info(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let smart = match smart_of(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    blocking(move || match session::session_user(&smart.dir, &headers) {
        Ok(Some(sess)) => token_json(
            StatusCode::OK,
            &json!({
                "username": sess.username,
                "position": sess.position,
                "csrf_token": sess.csrf,
                "expires": format_instant(sess.expires_ms),
            }),
        ),
        Ok(None) => unauthorised(&FhirError::new(401, "login", "you are not signed in")),
        Err(e) => outcome_response(&e),
    })
    .await
}

// ---- /auth/break-glass ------------------------------------------------------------

pub(crate) async fn break_glass(
    State(s): State<Shared>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let smart = match smart_of(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    blocking(move || {
        let principal = match crate::principal_for(&smart.dir, Some(&Method::POST), &headers, peer)
        {
            Ok(p) => p,
            Err(e) => return unauthorised(&e),
        };
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("json"));
        let v: Value = if is_json {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return outcome_response(&FhirError::invalid(format!(
                        "the body is not JSON: {e}"
                    )));
                }
            }
        } else {
            json!(form(&body))
        };
        let text = |k: &str| match v.get(k) {
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let Some(patient) = text("patient").filter(|p| !p.is_empty()) else {
            return outcome_response(&FhirError::invalid("patient is required"));
        };
        let patient = patient
            .strip_prefix("Patient/")
            .unwrap_or(&patient)
            .to_owned();
        let reason = text("reason").unwrap_or_default();
        let minutes = match text("minutes") {
            None => 60,
            Some(m) => match m.parse::<i64>() {
                Ok(m) => m,
                Err(_) => {
                    return outcome_response(&FhirError::invalid("minutes must be a whole number"));
                }
            },
        };
        match smart
            .dir
            .break_glass(&principal, &patient, &reason, minutes)
        {
            Ok(expires) => (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                json!({"patient": patient, "expires": format_instant(expires)}).to_string(),
            )
                .into_response(),
            Err(e) => outcome_response(&e),
        }
    })
    .await
}

/// Starts with a capital and ends with a full stop.
fn sentence(s: &str) -> String {
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
