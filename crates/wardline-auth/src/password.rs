//! Password hashes (argon2id, PHC strings) and the password policy.
//!
//! [`hash`] uses [`Cost::DEFAULT`] (the OWASP argon2id baseline: 19 MiB, 2 passes, 1
//! lane). [`verify`] reads the parameters from the stored PHC string, so the cost can be
//! raised later without invalidating existing hashes; [`needs_rehash`] tells the caller
//! when to re-hash at the next successful login. Tests elsewhere can use
//! [`hash_with`]`(pw, Cost::TESTING)` to stay fast.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl Cost {
    /// The OWASP baseline for argon2id.
    pub const DEFAULT: Cost = Cost {
        memory_kib: 19 * 1024,
        passes: 2,
        lanes: 1,
    };
    /// Cheap parameters for tests only.
    pub const TESTING: Cost = Cost {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };
    /// The most [`verify`] will spend on a stored hash (guards against a tampered or
    /// corrupt PHC string asking for gigabytes).
    pub const MAX: Cost = Cost {
        memory_kib: 256 * 1024,
        passes: 16,
        lanes: 8,
    };
}

/// Hashes `password` with [`Cost::DEFAULT`] and a fresh random salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub fn hash(password: &str) -> String {
    hash_with(password, Cost::DEFAULT)
}

/// Hashes `password` with the given cost (clamped to the range argon2 accepts and
/// [`Cost::MAX`]).
///
/// # Panics
/// Only if the operating system cannot provide randomness for the salt.
pub fn hash_with(password: &str, cost: Cost) -> String {
    let params = Params::new(
        cost.memory_kib
            .clamp(Params::MIN_M_COST, Cost::MAX.memory_kib),
        cost.passes.clamp(Params::MIN_T_COST, Cost::MAX.passes),
        cost.lanes.clamp(Params::MIN_P_COST, Cost::MAX.lanes),
        None,
    )
    .unwrap_or_default();
    // m must be at least 8 blocks per lane.
    let params = if params.m_cost() < 8 * params.p_cost() {
        Params::default()
    } else {
        params
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = crate::pkce::random_bytes(16);
    match argon2.hash_password_with_salt(password.as_bytes(), &salt) {
        Ok(h) => h.to_string(),
        // Only a password longer than 4 GiB gets here; it matches nothing.
        Err(_) => String::new(),
    }
}

/// Whether `password` matches the PHC string `phc`. A malformed string, another
/// algorithm than argon2id, or a cost above [`Cost::MAX`] is `false`.
pub fn verify(password: &str, phc: &str) -> bool {
    let Some((parsed, params)) = parse(phc) else {
        return false;
    };
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Whether a stored hash was made with other parameters than `cost` (or is unreadable)
/// and should be replaced after the next successful [`verify`].
pub fn needs_rehash(phc: &str, cost: Cost) -> bool {
    match parse(phc) {
        Some((_, p)) => {
            p.m_cost() != cost.memory_kib || p.t_cost() != cost.passes || p.p_cost() != cost.lanes
        }
        None => true,
    }
}

fn parse(phc: &str) -> Option<(PasswordHash, Params)> {
    let parsed = PasswordHash::new(phc).ok()?;
    if parsed.algorithm.as_str() != "argon2id" {
        return None;
    }
    let params = Params::try_from(&parsed).ok()?;
    (params.m_cost() <= Cost::MAX.memory_kib
        && params.t_cost() <= Cost::MAX.passes
        && params.p_cost() <= Cost::MAX.lanes)
        .then_some((parsed, params))
}

/// The shortest password accepted, in characters.
pub const MIN_LENGTH: usize = 12;
/// The longest password accepted, in characters.
pub const MAX_LENGTH: usize = 256;

/// Checks a new password in the spirit of the NCSC guidance (length over complexity
/// rules): at least [`MIN_LENGTH`] characters (at most [`MAX_LENGTH`]), not containing
/// the username (ignoring case), not one character or a short pattern repeated
/// (`aaaaaaaaaaaa`, `abcabcabcabc`), not a run of consecutive characters
/// (`123456789012`, `abcdefghijkl`) and not on a short list of the commonest passwords.
/// The error is a sentence for the user.
pub fn check_policy(password: &str, username: &str) -> Result<(), String> {
    let chars: Vec<char> = password.chars().collect();
    if chars.len() < MIN_LENGTH {
        return Err(format!(
            "The password must be at least {MIN_LENGTH} characters long."
        ));
    }
    if chars.len() > MAX_LENGTH {
        return Err(format!(
            "The password must be at most {MAX_LENGTH} characters long."
        ));
    }
    let lower = password.to_lowercase();
    let user = username.trim().to_lowercase();
    if user.chars().count() >= 3 && lower.contains(&user) {
        return Err("The password must not contain the username.".to_string());
    }
    if (1..=4).any(|period| chars.iter().skip(period).zip(&chars).all(|(a, b)| a == b)) {
        return Err("The password must not be a character or short pattern repeated.".into());
    }
    // `a` then `b` ascending (digits wrap: `...890123`).
    let next = |a: char, b: char| u32::from(b) == u32::from(a) + 1 || (a == '9' && b == '0');
    if chars.windows(2).all(|w| next(w[0], w[1])) || chars.windows(2).all(|w| next(w[1], w[0])) {
        return Err("The password must not be a run of consecutive characters.".into());
    }
    const COMMON: &[&str] = &[
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "qwertyuiopasdfgh",
        "qwertyuiop123",
        "qwerty123456",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "changeme1234",
        "administrator",
        "1q2w3e4r5t6y",
        "abc123abc123",
    ];
    if COMMON.contains(&lower.as_str()) {
        return Err("The password is too common.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_with("correct horse battery", Cost::TESTING);
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("", &h));
        assert_ne!(h, hash_with("correct horse battery", Cost::TESTING));
        assert!(needs_rehash(&h, Cost::DEFAULT));
        assert!(!needs_rehash(&h, Cost::TESTING));
    }

    #[test]
    fn malformed_or_foreign_hashes_do_not_verify() {
        for bad in [
            "",
            "$",
            "plaintext",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(!verify("x", bad), "{bad}");
            assert!(needs_rehash(bad, Cost::TESTING));
        }
    }

    #[test]
    fn default_cost_is_the_owasp_baseline() {
        assert_eq!(
            (
                Cost::DEFAULT.memory_kib,
                Cost::DEFAULT.passes,
                Cost::DEFAULT.lanes
            ),
            (19456, 2, 1)
        );
    }

    proptest::proptest! {
        #[test]
        fn policy_and_verify_never_panic(pw in ".{0,40}", user in ".{0,10}", phc in "\\$?.{0,60}") {
            let _ = check_policy(&pw, &user);
            let _ = verify(&pw, &phc);
            let _ = needs_rehash(&phc, Cost::TESTING);
        }
    }

    #[test]
    fn policy() {
        assert!(check_policy("purple-otter-tuesday", "jsmith").is_ok());
        assert!(check_policy("short", "jsmith").is_err());
        assert!(check_policy("my-JSmith-password", "jsmith").is_err());
        assert!(check_policy("aaaaaaaaaaaaaaa", "x").is_err());
        assert!(check_policy("abcabcabcabcabc", "x").is_err());
        assert!(check_policy("123456789012", "x").is_err());
        assert!(check_policy("lkjihgfedcba", "x").is_err());
        assert!(check_policy("Password1234", "x").is_err());
        assert!(check_policy(&"x1".repeat(200), "x").is_err());
        // Short usernames are not matched (they would reject too much).
        assert!(check_policy("purple-otter-tuesday", "ot").is_ok());
        // Counts characters, not bytes.
        assert!(check_policy("ééééééééééé", "x").is_err());
    }
}
