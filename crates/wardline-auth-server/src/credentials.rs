//! What a request's credentials stand for: an access token this server
//! issued, or the cookie of a web session it started.

use axum::http::{HeaderMap, Method, header};
use wardline_auth::directory::Directory;
use wardline_auth::policy::Principal;
use wardline_auth::token::Claims;
use wardline_fhir::FhirError;

use crate::session;

/// The scope of a web session: whatever the user's position allows.
pub const SESSION_SCOPE: &str = "user/*.cruds";

fn unauthenticated(msg: &str) -> FhirError {
    FhirError::new(401, "login", msg.to_owned())
}

/// The principal a request's credentials stand for.
///
/// `Authorization: Bearer <token>`: a Wardline access token (from the token
/// endpoint or `wardline token`), checked against the directory on every
/// request (so a revoked position stops working at once). Without an
/// `Authorization` header, a live `wardline_session` cookie stands for its
/// user in the session's position with scope [`SESSION_SCOPE`]; a request
/// other than GET or HEAD made with the cookie must carry the session's
/// CSRF token in `X-CSRF-Token` (403 otherwise). `method` `None` is treated
/// as state-changing. No credentials, or bad ones: 401.
pub fn principal_for(
    directory: &Directory,
    method: Option<&Method>,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
) -> Result<Principal, FhirError> {
    let address = peer.map(|p| p.to_string());
    let now = wardline_fhir::datetime::now_ms() / 1000;
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| unauthenticated("the Authorization header must be 'Bearer <token>'"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header must be 'Bearer <token>'"))?
            .trim();
        let claims = wardline_auth::token::verify(directory.keys(), token, now)?;
        return directory.principal(&claims, address.as_deref());
    }
    let Some(s) = session::session_user(directory, headers)? else {
        return Err(unauthenticated(
            "this request needs an access token (Authorization: Bearer …) or a signed-in session",
        ));
    };
    let safe = matches!(method, Some(m) if *m == Method::GET || *m == Method::HEAD);
    if !safe && !session::csrf_header_ok(headers, &s) {
        return Err(FhirError::new(
            403,
            "forbidden",
            "a request made with the session cookie must carry the session's X-CSRF-Token",
        ));
    }
    let claims = Claims {
        iss: "wardline".into(),
        sub: s.username.clone(),
        fhir_user: None,
        position: Some(s.position.clone()),
        scope: SESSION_SCOPE.into(),
        patient: None,
        client_id: None,
        sid: Some(s.key.clone()),
        iat: s.created_ms / 1000,
        exp: s.expires_ms / 1000,
        jti: String::new(),
    };
    directory.principal(&claims, address.as_deref())
}
