//! Test support (feature `test-support`): an ES384 client key pair for minting SMART
//! Backend Services client assertions in tests. The private key lives only in memory.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p384::elliptic_curve::sec1::ToEncodedPoint;
use p384::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

/// Signs a claims object as a client assertion.
pub type Signer = Box<dyn Fn(&Value) -> String + Send + Sync>;

/// A fresh ES384 key pair with key id `kid`: the public JWK Set (JSON text, as a client
/// would register it) and a function signing a claims object with the private key
/// (header `{"alg":"ES384","typ":"JWT","kid":kid}`).
///
/// # Panics
/// If key generation fails (test support only).
pub fn es384_test_client(kid: &str) -> (String, Signer) {
    let secret = loop {
        if let Ok(k) = p384::SecretKey::from_slice(&crate::pkce::random_bytes(48)) {
            break k;
        }
    };
    let point = secret.public_key().to_encoded_point(false);
    let b64 = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        panic!("uncompressed point without coordinates");
    };
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-384", "use": "sig", "alg": "ES384", "kid": kid,
        "x": b64(x), "y": b64(y),
    }]})
    .to_string();
    let der = match secret.to_pkcs8_der() {
        Ok(d) => d,
        Err(e) => panic!("PKCS#8 export failed: {e}"),
    };
    let key = EncodingKey::from_ec_der(der.as_bytes());
    let mut header = Header::new(Algorithm::ES384);
    header.typ = Some("JWT".into());
    header.kid = Some(kid.to_string());
    let sign: Signer =
        Box::new(
            move |claims: &Value| match jsonwebtoken::encode(&header, claims, &key) {
                Ok(t) => t,
                Err(e) => panic!("signing the assertion failed: {e}"),
            },
        );
    (jwks, sign)
}

/// Claims for a valid assertion from `client_id` to `token_url` at `now_secs`, with a
/// random `jti` and a four-minute lifetime.
pub fn assertion_claims(client_id: &str, token_url: &str, now_secs: i64) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now_secs,
        "exp": now_secs + 240,
        "jti": crate::pkce::random_token(16),
    })
}
