//! Wardline's own access tokens (compact JWS, HS256 with a server key) and SMART Backend
//! Services client assertions (`private_key_jwt`, verified against the client's JWKS).
//!
//! Nothing here reads the clock: every check takes `now_secs` (Unix seconds). Expiry
//! allows [`LEEWAY_SECS`] of clock skew.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Clock skew tolerated on `exp`, `iat` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;
/// How far ahead a client assertion's `exp` may be (SMART Backend Services: five
/// minutes), before [`LEEWAY_SECS`].
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;
/// Tokens and assertions longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token or assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS, or its header or claims are not what we expect.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not verify, or the algorithm is not the one the key is for.
    #[error("bad token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    /// The signing algorithm is not one we accept.
    #[error("unsupported token algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// No key in the JWKS has the assertion's `kid` (and a usable type).
    #[error("no usable key with kid `{0}` in the client's JWKS")]
    UnknownKey(String),
    /// Signed correctly but a claim is wrong (issuer, audience, lifetime, ...).
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// A refused token as the FHIR API reports it: 401 with issue code `expired` or `login`.
impl From<TokenError> for wardline_fhir::FhirError {
    fn from(e: TokenError) -> wardline_fhir::FhirError {
        let code = if e == TokenError::Expired {
            "expired"
        } else {
            "login"
        };
        wardline_fhir::FhirError::new(401, code, e.to_string())
    }
}

/// The server key for Wardline's own tokens.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Keys {
    /// Keys from the server secret, which should be 32 random bytes (see
    /// [`crate::pkce::random_bytes`]).
    pub fn new(secret: &[u8]) -> Keys {
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// The claims of a Wardline access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// Username, or client id for a backend service.
    pub sub: String,
    /// SMART `fhirUser`, e.g. `Practitioner/123`.
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// The `PractitionerRole` id the user is acting in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// The granted SMART scopes, space-separated.
    pub scope: String,
    /// Launch patient id (for `patient/` scopes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The login session, so that logging out revokes the session's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Signs `claims` as an HS256 compact JWS.
pub fn issue(keys: &Keys, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("JWT".into());
    // Serialising these claims and HMAC signing cannot fail; an empty string never
    // verifies should they ever do so.
    jsonwebtoken::encode(&header, claims, &keys.encoding).unwrap_or_default()
}

/// Verifies an access token issued by [`issue`] and checks its lifetime at `now_secs`.
pub fn verify(keys: &Keys, token: &str, now_secs: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long".into()));
    }
    let header = jsonwebtoken::decode_header(token).map_err(map_error)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::BadSignature);
    }
    let claims: Claims = jsonwebtoken::decode(token, &keys.decoding, &validation(Algorithm::HS256))
        .map_err(map_error)?
        .claims;
    if now_secs > claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    if claims.iat > now_secs.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Invalid("issued in the future".into()));
    }
    Ok(claims)
}

/// What a verified client assertion tells the token endpoint. The caller must refuse a
/// `jti` it has already seen before `exp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionClaims {
    pub client_id: String,
    pub jti: String,
    pub exp: i64,
}

#[derive(Deserialize)]
struct RawAssertion {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
}

/// Verifies a SMART Backend Services client assertion (RFC 7523 `private_key_jwt`).
///
/// The key is the one in `jwks_json` (a JWK Set, as registered for or fetched from the
/// client) whose `kid` equals the assertion header's `kid` and whose type, curve and
/// (if given) `alg` fit the header's algorithm; ES256, ES384, RS256 and RS384 are
/// accepted. Then `iss` and `sub` must both be `expected_client_id`, `aud` must be (or
/// contain) `token_endpoint_url`, `exp` must not have passed and be at most
/// [`MAX_ASSERTION_LIFETIME_SECS`] ahead (each with [`LEEWAY_SECS`]), `nbf` if present
/// must have been reached, and `jti` must be present.
pub fn verify_client_assertion(
    assertion: &str,
    jwks_json: &str,
    expected_client_id: &str,
    token_endpoint_url: &str,
    now_secs: i64,
) -> Result<AssertionClaims, TokenError> {
    if assertion.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long".into()));
    }
    let header = jsonwebtoken::decode_header(assertion).map_err(map_error)?;
    let alg = header.alg;
    if !matches!(
        alg,
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::RS256 | Algorithm::RS384
    ) {
        return Err(TokenError::UnsupportedAlgorithm(format!("{alg:?}")));
    }
    let kid = header
        .kid
        .ok_or_else(|| TokenError::Malformed("the header has no kid".into()))?;
    let jwks: Value = serde_json::from_str(jwks_json)
        .map_err(|_| TokenError::Invalid("the client's JWKS is not JSON".into()))?;
    let candidates: Vec<DecodingKey> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
                .filter_map(|k| decoding_key(k, alg))
                .collect()
        })
        .unwrap_or_default();
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey(kid));
    }
    let mut result = Err(TokenError::BadSignature);
    for key in &candidates {
        result = jsonwebtoken::decode::<RawAssertion>(assertion, key, &validation(alg))
            .map(|t| t.claims)
            .map_err(map_error);
        if result.is_ok() {
            break;
        }
    }
    let claims = result?;

    if claims.iss.as_deref() != Some(expected_client_id) {
        return Err(TokenError::Invalid("iss is not the client id".into()));
    }
    if claims.sub.as_deref() != Some(expected_client_id) {
        return Err(TokenError::Invalid("sub is not the client id".into()));
    }
    let aud_ok = match &claims.aud {
        Some(Value::String(a)) => a == token_endpoint_url,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(token_endpoint_url)),
        _ => false,
    };
    if !aud_ok {
        return Err(TokenError::Invalid("aud is not the token endpoint".into()));
    }
    let exp = claims
        .exp
        .ok_or_else(|| TokenError::Invalid("no exp".into()))?;
    if now_secs > exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    if exp > now_secs.saturating_add(MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS) {
        return Err(TokenError::Invalid(
            "exp is more than five minutes ahead".into(),
        ));
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now_secs.saturating_add(LEEWAY_SECS))
    {
        return Err(TokenError::Invalid("not yet valid (nbf)".into()));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| TokenError::Invalid("no jti".into()))?;
    Ok(AssertionClaims {
        client_id: expected_client_id.to_string(),
        jti,
        exp,
    })
}

/// A decoding key from one JWK, if its type (and curve, and `alg` if present) fits `alg`.
fn decoding_key(jwk: &Value, alg: Algorithm) -> Option<DecodingKey> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if let Some(key_alg) = field("alg")
        && key_alg != format!("{alg:?}")
    {
        return None;
    }
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    match (field("kty")?, alg) {
        ("EC", Algorithm::ES256 | Algorithm::ES384) => {
            let curve = if alg == Algorithm::ES256 {
                "P-256"
            } else {
                "P-384"
            };
            if field("crv")? != curve {
                return None;
            }
            DecodingKey::from_ec_components(field("x")?, field("y")?).ok()
        }
        ("RSA", Algorithm::RS256 | Algorithm::RS384) => {
            DecodingKey::from_rsa_components(field("n")?, field("e")?).ok()
        }
        _ => None,
    }
}

/// Signature and algorithm checks only; the claims are checked here against `now_secs`.
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.leeway = 0;
    v
}

fn map_error(e: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature | K::InvalidAlgorithm | K::InvalidEcdsaKey | K::InvalidRsaKey(_) => {
            TokenError::BadSignature
        }
        K::ExpiredSignature => TokenError::Expired,
        K::InvalidAlgorithmName | K::UnsupportedAlgorithm | K::MissingAlgorithm => {
            TokenError::UnsupportedAlgorithm(e.to_string())
        }
        _ => TokenError::Malformed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const TOKEN_URL: &str = "https://ehr.example.nhs.uk/auth/token";

    fn claims() -> Claims {
        Claims {
            iss: "https://ehr.example.nhs.uk".into(),
            sub: "jsmith".into(),
            fhir_user: Some("Practitioner/123".into()),
            position: Some("pr-7".into()),
            scope: "user/*.rs openid fhirUser".into(),
            patient: None,
            client_id: Some("wardline-web".into()),
            sid: Some("s1".into()),
            iat: NOW,
            exp: NOW + 900,
            jti: "j1".into(),
        }
    }

    #[test]
    fn access_token_roundtrip_and_failures() {
        let keys = Keys::new(&[7u8; 32]);
        let token = issue(&keys, &claims());
        assert_eq!(verify(&keys, &token, NOW + 10), Ok(claims()));
        // None fields are omitted.
        let payload = token.split('.').nth(1).unwrap();
        let payload = data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert!(payload.get("patient").is_none());
        assert_eq!(payload["fhirUser"], "Practitioner/123");

        assert_eq!(verify(&keys, &token, NOW + 900 + 30), Ok(claims()));
        assert_eq!(verify(&keys, &token, NOW + 931), Err(TokenError::Expired));
        assert_eq!(
            verify(&Keys::new(&[8u8; 32]), &token, NOW),
            Err(TokenError::BadSignature)
        );
        let mut tampered = token.clone().into_bytes();
        let i = token.find('.').unwrap() + 5;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(verify(&keys, &tampered, NOW).is_err());
        assert!(matches!(
            verify(&keys, "not a token", NOW),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            verify(&keys, "", NOW),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            verify(&keys, "a.b.c", NOW),
            Err(TokenError::Malformed(_))
        ));
        // alg=none is refused.
        let none = format!(
            "{}.{}.",
            data_encoding::BASE64URL_NOPAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            token.split('.').nth(1).unwrap()
        );
        assert!(verify(&keys, &none, NOW).is_err());
    }

    proptest::proptest! {
        #[test]
        fn verifiers_never_panic(s in ".{0,300}", jwks in ".{0,100}") {
            let keys = Keys::new(b"k");
            let _ = verify(&keys, &s, NOW);
            let _ = verify_client_assertion(&s, &jwks, "c", TOKEN_URL, NOW);
            let dotted = format!("{s}.{s}.{s}");
            let _ = verify(&keys, &dotted, NOW);
            let _ = verify_client_assertion(&dotted, r#"{"keys":[{"kid":"k"}]}"#, "c", TOKEN_URL, NOW);
        }
    }

    #[test]
    fn fhir_error_mapping() {
        let e = wardline_fhir::FhirError::from(TokenError::Expired);
        assert_eq!(e.status, 401);
        assert_eq!(e.issues[0].code, "expired");
    }

    fn assertion_claims() -> Value {
        json!({
            "iss": "client-1",
            "sub": "client-1",
            "aud": TOKEN_URL,
            "exp": NOW + 240,
            "iat": NOW,
            "jti": "jti-1",
        })
    }

    #[test]
    fn es384_client_assertion() {
        let (jwks, sign) = testkit::es384_test_client("k1");
        let ok = sign(&assertion_claims());
        assert_eq!(
            verify_client_assertion(&ok, &jwks, "client-1", TOKEN_URL, NOW),
            Ok(AssertionClaims {
                client_id: "client-1".into(),
                jti: "jti-1".into(),
                exp: NOW + 240
            })
        );
        let with = |k: &str, v: Value| {
            let mut c = assertion_claims();
            c[k] = v;
            sign(&c)
        };
        let check = |a: &str| verify_client_assertion(a, &jwks, "client-1", TOKEN_URL, NOW);
        assert!(matches!(
            check(&with("aud", json!("https://elsewhere/token"))),
            Err(TokenError::Invalid(_))
        ));
        assert!(check(&with("aud", json!(["x", TOKEN_URL]))).is_ok());
        assert!(matches!(
            check(&with("iss", json!("client-2"))),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            check(&with("sub", json!("client-2"))),
            Err(TokenError::Invalid(_))
        ));
        assert_eq!(
            check(&with("exp", json!(NOW - 31))),
            Err(TokenError::Expired)
        );
        assert!(matches!(
            check(&with("exp", json!(NOW + 3600))),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            check(&with("jti", json!(null))),
            Err(TokenError::Invalid(_))
        ));
        // Wrong client id expected by the caller.
        assert!(verify_client_assertion(&ok, &jwks, "client-2", TOKEN_URL, NOW).is_err());
        // Unknown kid.
        let (other_jwks, other_sign) = testkit::es384_test_client("k2");
        assert_eq!(
            verify_client_assertion(
                &other_sign(&assertion_claims()),
                &jwks,
                "client-1",
                TOKEN_URL,
                NOW
            ),
            Err(TokenError::UnknownKey("k2".into()))
        );
        // Same kid, different key.
        let (_, impostor) = testkit::es384_test_client("k1");
        assert_eq!(
            check(&impostor(&assertion_claims())),
            Err(TokenError::BadSignature)
        );
        let _ = other_jwks;
        // Tampered payload.
        let parts: Vec<&str> = ok.split('.').collect();
        let mut evil = assertion_claims();
        evil["jti"] = json!("jti-2");
        let evil_payload = data_encoding::BASE64URL_NOPAD.encode(evil.to_string().as_bytes());
        let tampered = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
        assert_eq!(check(&tampered), Err(TokenError::BadSignature));
        // Garbage in, errors out.
        assert!(check("").is_err());
        assert!(verify_client_assertion(&ok, "not json", "client-1", TOKEN_URL, NOW).is_err());
        assert!(verify_client_assertion(&ok, "{}", "client-1", TOKEN_URL, NOW).is_err());
        // An HS256 token is not an acceptable assertion.
        let hs = issue(&Keys::new(b"k"), &claims());
        assert!(matches!(
            check(&hs),
            Err(TokenError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn es256_client_assertion() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::EncodePrivateKey;
        let secret = loop {
            if let Ok(k) = p256::SecretKey::from_slice(&crate::pkce::random_bytes(32)) {
                break k;
            }
        };
        let point = secret.public_key().to_encoded_point(false);
        let b64 = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "e256", "use": "sig",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        }]})
        .to_string();
        let der = secret.to_pkcs8_der().unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("e256".into());
        let a = jsonwebtoken::encode(
            &header,
            &assertion_claims(),
            &EncodingKey::from_ec_der(der.as_bytes()),
        )
        .unwrap();
        assert!(verify_client_assertion(&a, &jwks, "client-1", TOKEN_URL, NOW).is_ok());
    }

    #[test]
    fn rs384_and_rs256_client_assertions() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        // A small key keeps the debug-mode test fast; size is irrelevant to the checks.
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let b64 = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-384", "kid": "other", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "r1", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())},
        ]})
        .to_string();
        let der = key.to_pkcs1_der().unwrap();
        for alg in [Algorithm::RS384, Algorithm::RS256] {
            let mut header = Header::new(alg);
            header.kid = Some("r1".into());
            let a = jsonwebtoken::encode(
                &header,
                &assertion_claims(),
                &EncodingKey::from_rsa_der(der.as_bytes()),
            )
            .unwrap();
            assert!(
                verify_client_assertion(&a, &jwks, "client-1", TOKEN_URL, NOW).is_ok(),
                "{alg:?}"
            );
        }
        // A JWK pinned to another algorithm is not used.
        let pinned = jwks.replace(r#""kid":"r1""#, r#""kid":"r1","alg":"RS512""#);
        let mut header = Header::new(Algorithm::RS384);
        header.kid = Some("r1".into());
        let a = jsonwebtoken::encode(
            &header,
            &assertion_claims(),
            &EncodingKey::from_rsa_der(der.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verify_client_assertion(&a, &pinned, "client-1", TOKEN_URL, NOW),
            Err(TokenError::UnknownKey("r1".into()))
        );
    }
}
