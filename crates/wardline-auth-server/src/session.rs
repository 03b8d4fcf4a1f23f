//! Web sessions for the UI: a random session id in the `wardline_session`
//! cookie, the session itself in the system key-value data
//! (`FhirService::system_data`, namespace `session`, keyed by the SHA-256
//! of the id, so a copy of the table holds no usable cookie).
//!
//! A session lasts at most [`SESSION_MAX_MS`] (a shift) and ends sooner
//! after [`SESSION_IDLE_MS`] without a request.

use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wardline_auth::directory::Directory;
use wardline_auth::pkce;
use wardline_fhir::FhirError;
use wardline_fhir::datetime::now_ms;

/// The session cookie.
pub const SESSION_COOKIE: &str = "wardline_session";
/// The longest a session lasts (8 hours).
pub const SESSION_MAX_MS: i64 = 8 * 3600 * 1000;
/// A session unused for this long (30 minutes) has ended.
pub const SESSION_IDLE_MS: i64 = 30 * 60 * 1000;
/// Key-value namespace of sessions.
pub const SESSION_NS: &str = "session";

/// A signed-in user of the web UI.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub username: String,
    /// The `PractitionerRole` id acted in.
    pub position: String,
    /// The token every state-changing request must carry (`X-CSRF-Token` or
    /// a `csrf` form field).
    pub csrf: String,
    pub created_ms: i64,
    /// When the session ends if unused (slides forward with use, never past
    /// `created_ms + SESSION_MAX_MS`).
    pub expires_ms: i64,
    /// The store key (hash of the cookie value).
    #[serde(skip)]
    pub key: String,
}

/// SHA-256, lower-case hex: how secrets (session ids, codes) are keyed in
/// the store.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of cookie `name` in the request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// A `Set-Cookie` value (HttpOnly, SameSite=Strict; Secure over TLS).
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Starts a session for `username` in `position`; returns the cookie value
/// and the session.
pub fn create(
    dir: &Directory,
    username: &str,
    position: &str,
) -> Result<(String, Session), FhirError> {
    let sid = pkce::random_token(32);
    let now = now_ms();
    let s = Session {
        username: username.to_owned(),
        position: position.to_owned(),
        csrf: pkce::random_token(24),
        created_ms: now,
        expires_ms: now + SESSION_IDLE_MS,
        key: digest(&sid),
    };
    put(dir, &s)?;
    Ok((sid, s))
}

fn put(dir: &Directory, s: &Session) -> Result<(), FhirError> {
    let v = serde_json::to_string(s).map_err(|e| FhirError::internal(e.to_string()))?;
    dir.service().system_data().put(SESSION_NS, &s.key, &v)
}

/// The live session of the request's `wardline_session` cookie, if any
/// (sliding its idle expiry forward). An ended session is deleted.
pub fn session_user(dir: &Directory, headers: &HeaderMap) -> Result<Option<Session>, FhirError> {
    let Some(sid) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    if sid.is_empty() || sid.len() > 128 {
        return Ok(None);
    }
    let key = digest(&sid);
    let kv = dir.service().system_data();
    let Some(v) = kv.get(SESSION_NS, &key)? else {
        return Ok(None);
    };
    let Ok(mut s) = serde_json::from_str::<Session>(&v) else {
        kv.delete(SESSION_NS, &key)?;
        return Ok(None);
    };
    s.key = key;
    let now = now_ms();
    if s.expires_ms <= now || s.created_ms + SESSION_MAX_MS <= now {
        kv.delete(SESSION_NS, &s.key)?;
        return Ok(None);
    }
    // Slide the idle expiry, writing at most once a minute.
    let slid = (now + SESSION_IDLE_MS).min(s.created_ms + SESSION_MAX_MS);
    if slid - s.expires_ms > 60_000 {
        s.expires_ms = slid;
        put(dir, &s)?;
    }
    Ok(Some(s))
}

/// Ends a session.
pub fn delete(dir: &Directory, s: &Session) -> Result<(), FhirError> {
    dir.service().system_data().delete(SESSION_NS, &s.key)?;
    Ok(())
}

/// Whether the request carries the session's CSRF token in `X-CSRF-Token`.
pub fn csrf_header_ok(headers: &HeaderMap, s: &Session) -> bool {
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| pkce::constant_time_eq(t.trim().as_bytes(), s.csrf.as_bytes()))
}
