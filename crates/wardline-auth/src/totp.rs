//! RFC 6238 time-based one-time passwords (HMAC-SHA-1, 30-second steps), the second
//! factor standing in for the NHS smartcard.
//!
//! [`verify`] returns the time step that matched; the caller stores the last step used
//! per user and refuses a code whose step is not later (replay protection).

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;

/// The time step in seconds.
pub const STEP_SECS: i64 = 30;
/// The number of digits in the codes Wardline issues.
pub const DIGITS: u32 = 6;
/// The largest skew [`verify`] honours, in steps either side.
pub const MAX_SKEW_STEPS: u32 = 10;

/// A new 160-bit shared secret from the operating system's random number generator.
pub fn new_secret() -> Vec<u8> {
    crate::pkce::random_bytes(20)
}

/// RFC 4648 base32, upper case, without padding (the form authenticator apps expect).
pub fn base32_encode(bytes: &[u8]) -> String {
    BASE32_NOPAD.encode(bytes)
}

/// Decodes base32 as users type it: case-insensitive, ignoring spaces, hyphens and
/// trailing `=` padding. `None` if it is not base32.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let cleaned: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    BASE32_NOPAD
        .decode(cleaned.trim_end_matches('=').as_bytes())
        .ok()
}

/// The `otpauth://` URI for enrolment (usually shown as a QR code).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = utf8_percent_encode(issuer, NON_ALPHANUMERIC).to_string();
    let account = utf8_percent_encode(account, NON_ALPHANUMERIC);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        base32_encode(secret)
    )
}

/// The time step containing `unix_secs`.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The code for the time `unix_secs` with `digits` digits (clamped to 6..=9).
pub fn code_at(secret: &[u8], unix_secs: i64, digits: u32) -> String {
    code_for_step(secret, step_at(unix_secs), digits)
}

/// RFC 4226 HOTP for the counter `step` (a negative step is taken as its two's
/// complement, as a `u64` counter).
pub fn code_for_step(secret: &[u8], step: i64, digits: u32) -> String {
    let digits = digits.clamp(6, 9);
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) else {
        return String::new(); // unreachable: HMAC takes keys of any length
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    let code = bin % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// Checks `code` (its length gives the number of digits, 6 to 9) against the steps
/// within `skew_steps` (at most [`MAX_SKEW_STEPS`]) of `unix_secs`; the matching step,
/// or `None`. Every candidate is compared in constant time.
pub fn verify(secret: &[u8], code: &str, unix_secs: i64, skew_steps: u32) -> Option<i64> {
    let digits = u32::try_from(code.len()).ok()?;
    if !(6..=9).contains(&digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_secs);
    let skew = i64::from(skew_steps.min(MAX_SKEW_STEPS));
    let mut matched = None;
    for step in now.saturating_sub(skew)..=now.saturating_add(skew) {
        let candidate = code_for_step(secret, step, digits);
        if crate::pkce::constant_time_eq(candidate.as_bytes(), code.as_bytes()) && matched.is_none()
        {
            matched = Some(step);
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_appendix_b_sha1() {
        for (t, code) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at(RFC_SECRET, t, 8), code, "t={t}");
            assert_eq!(verify(RFC_SECRET, code, t, 0), Some(t / 30));
        }
    }

    #[test]
    fn rfc4226_six_digits() {
        // RFC 4226 Appendix D, counters 0 and 1.
        assert_eq!(code_for_step(RFC_SECRET, 0, 6), "755224");
        assert_eq!(code_for_step(RFC_SECRET, 1, 6), "287082");
    }

    #[test]
    fn skew_and_rejections() {
        let secret = new_secret();
        assert_eq!(secret.len(), 20);
        let t = 1_700_000_000;
        let prev = code_at(&secret, t - 30, 6);
        assert_eq!(verify(&secret, &prev, t, 1), Some(step_at(t) - 1));
        assert_eq!(verify(&secret, &code_at(&secret, t - 90, 6), t, 1), None);
        assert_eq!(verify(&secret, "12345", t, 1), None);
        assert_eq!(verify(&secret, "12345a", t, 1), None);
        assert_eq!(verify(&secret, "", t, 1), None);
        assert_eq!(verify(&secret, "１２３４５６", t, 1), None);
        // Extreme inputs do not panic.
        let _ = verify(&secret, "123456", i64::MIN, u32::MAX);
        let _ = verify(&secret, "123456", i64::MAX, u32::MAX);
        let _ = code_at(&[], -1, 0);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,40}", t in proptest::num::i64::ANY, skew in 0u32..20) {
            let _ = base32_decode(&s);
            let _ = verify(s.as_bytes(), &s, t, skew);
            let _ = code_at(s.as_bytes(), t, skew);
        }
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("not base32!"), None);
        let s = new_secret();
        assert_eq!(base32_decode(&base32_encode(&s)).unwrap(), s);
        assert_eq!(
            otpauth_uri("Wardline NHS", "j.smith@example.nhs.uk", b"foobar"),
            "otpauth://totp/Wardline%20NHS:j%2Esmith%40example%2Enhs%2Euk?secret=MZXW6YTBOI&issuer=Wardline%20NHS&algorithm=SHA1&digits=6&period=30"
        );
    }
}
