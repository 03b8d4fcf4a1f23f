//! RFC 7636 PKCE (S256 only), random tokens and constant-time comparison.

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};

/// Whether `code_verifier` is well formed (43 to 128 characters of the unreserved set
/// `A-Z a-z 0-9 - . _ ~`) and its S256 transform equals `code_challenge`. The `plain`
/// method is not supported.
pub fn verify_s256(code_verifier: &str, code_challenge: &str) -> bool {
    if !(43..=128).contains(&code_verifier.len())
        || !code_verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return false;
    }
    let expected = BASE64URL_NOPAD.encode(&Sha256::digest(code_verifier.as_bytes()));
    constant_time_eq(expected.as_bytes(), code_challenge.as_bytes())
}

/// The S256 challenge for a verifier (for clients and tests).
pub fn challenge_s256(code_verifier: &str) -> String {
    BASE64URL_NOPAD.encode(&Sha256::digest(code_verifier.as_bytes()))
}

/// `bytes` bytes of OS randomness as URL-safe base64 without padding: authorisation
/// codes, session ids, CSRF tokens, `jti`s. 32 bytes gives 43 characters.
pub fn random_token(bytes: usize) -> String {
    BASE64URL_NOPAD.encode(&random_bytes(bytes))
}

/// `n` bytes from the operating system's random number generator.
///
/// # Panics
/// Only if the operating system cannot provide randomness; nothing secure can be done
/// without it.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("the operating system's random number generator failed: {e}");
    }
    buf
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(challenge_s256(verifier), challenge);
        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        // `plain` is not accepted: the verifier as its own challenge fails.
        assert!(!verify_s256(verifier, verifier));
    }

    #[test]
    fn verifier_shape_enforced() {
        let short = "a".repeat(42);
        assert!(!verify_s256(&short, &challenge_s256(&short)));
        let long = "a".repeat(129);
        assert!(!verify_s256(&long, &challenge_s256(&long)));
        let bad = format!("{}+", "a".repeat(50));
        assert!(!verify_s256(&bad, &challenge_s256(&bad)));
        let ok = "a".repeat(128);
        assert!(verify_s256(&ok, &challenge_s256(&ok)));
        assert!(!verify_s256("", ""));
    }

    #[test]
    fn random_tokens() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, random_token(32));
        assert_eq!(random_token(0), "");
    }

    #[test]
    fn constant_time() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
