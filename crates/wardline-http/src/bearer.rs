//! Authentication of API requests: bearer tokens, or the UI's session
//! cookie, as the authorization server checks them
//! ([`wardline_auth_server::principal_for`]).

use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use wardline_auth::directory::Directory;
use wardline_auth::policy::Policy;
use wardline_auth_server::principal_for;
use wardline_core::Access;
use wardline_fhir::FhirError;

use crate::Authenticator;

/// `Authorization: Bearer <token>`: a Wardline access token (from the SMART
/// token endpoint or `wardline token`), checked against the directory on
/// every request (so a revoked position stops working at once). Without an
/// `Authorization` header, a valid `wardline_session` cookie is accepted as
/// its user in the session's position with scope
/// [`wardline_auth_server::SESSION_SCOPE`]; a request other than GET or
/// HEAD made with the cookie must carry the session's CSRF token in
/// `X-CSRF-Token` (403 otherwise). The access of a request is the
/// directory's [`Policy`] for that principal.
pub struct BearerAuthenticator {
    directory: Arc<Directory>,
}

impl BearerAuthenticator {
    pub fn new(directory: Arc<Directory>) -> BearerAuthenticator {
        BearerAuthenticator { directory }
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }
}

impl Authenticator for BearerAuthenticator {
    fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Box<dyn Access>, FhirError> {
        let p = principal_for(&self.directory, None, headers, peer)?;
        Ok(Box::new(Policy::new(p, self.directory.clone())))
    }

    fn authenticate_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Box<dyn Access>, FhirError> {
        let p = principal_for(&self.directory, Some(method), headers, peer)?;
        Ok(Box::new(Policy::new(p, self.directory.clone())))
    }
}
