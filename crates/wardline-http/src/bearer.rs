//! Bearer-token authentication of API requests.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use wardline_auth::directory::Directory;
use wardline_auth::policy::Policy;
use wardline_core::Access;
use wardline_fhir::FhirError;

use crate::Authenticator;

/// `Authorization: Bearer <token>`: a Wardline access token (from the SMART
/// token endpoint or `wardline token`), checked against the directory on
/// every request (so a revoked position stops working at once).
pub struct BearerAuthenticator {
    directory: Arc<Directory>,
}

impl BearerAuthenticator {
    pub fn new(directory: Arc<Directory>) -> BearerAuthenticator {
        BearerAuthenticator { directory }
    }
}

fn unauthenticated(msg: &str) -> FhirError {
    FhirError::new(401, "login", msg.to_owned())
}

impl Authenticator for BearerAuthenticator {
    fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Box<dyn Access>, FhirError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                unauthenticated("this request needs an access token (Authorization: Bearer …)")
            })?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header must be 'Bearer <token>'"))?
            .trim();
        let now = wardline_fhir::datetime::now_ms() / 1000;
        let claims = wardline_auth::token::verify(self.directory.keys(), token, now)?;
        let address = peer.map(|p| p.to_string());
        let principal = self.directory.principal(&claims, address.as_deref())?;
        Ok(Box::new(Policy::new(principal, self.directory.clone())))
    }
}
