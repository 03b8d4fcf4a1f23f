//! NHS numbers: ten digits, the last a Modulus 11 check digit.
//!
//! Policy on formats: spaces and dashes between digit groups are accepted and
//! removed ([`normalise`]); anything else (letters, wrong length) is refused.

/// Strips spaces and dashes. Returns `None` unless exactly ten digits remain.
pub fn normalise(input: &str) -> Option<String> {
    let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(digits)
    } else {
        None
    }
}

/// The check digit for the first nine digits, or `None` when the weighted sum
/// gives 10 (no valid NHS number has those nine digits).
pub fn check_digit(first_nine: &[u8; 9]) -> Option<u8> {
    let sum: u32 = first_nine
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * (10 - i as u32))
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        d => Some(d as u8),
    }
}

/// True if `input` (after [`normalise`]) is a valid NHS number.
pub fn is_valid(input: &str) -> bool {
    let Some(n) = normalise(input) else {
        return false;
    };
    let d: Vec<u8> = n.bytes().map(|b| b - b'0').collect();
    let first: [u8; 9] = d[..9].try_into().expect("ten digits");
    check_digit(&first) == Some(d[9])
}

/// Formats as `943 476 5919`. Returns `None` for an invalid number.
pub fn format(input: &str) -> Option<String> {
    let n = normalise(input)?;
    if !is_valid(&n) {
        return None;
    }
    Some(format!("{} {} {}", &n[..3], &n[3..6], &n[6..]))
}

/// Builds a valid NHS number from nine leading digits, or `None` if they admit
/// no check digit. Used by the demo-data generator.
pub fn complete(first_nine: [u8; 9]) -> Option<String> {
    let c = check_digit(&first_nine)?;
    let mut s: String = first_nine.iter().map(|d| char::from(b'0' + d)).collect();
    s.push(char::from(b'0' + c));
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_numbers() {
        assert!(is_valid("9434765919"));
        assert!(is_valid("943 476 5919"));
        assert!(is_valid("943-476-5919"));
        assert!(!is_valid("9434765918"));
        assert!(!is_valid("9000000015"));
        assert!(is_valid("9000000009"));
        assert!(!is_valid("94347659"));
        assert!(!is_valid("94347659A9"));
        assert_eq!(format("9434765919").as_deref(), Some("943 476 5919"));
    }

    /// Reads the uk-fci language-agnostic vectors when the shared test data is present.
    #[test]
    fn uk_fci_vectors() {
        let root = std::env::var("WARDLINE_TESTDATA").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata").into()
        });
        let path =
            format!("{root}/nhs-numbers/uk-fci-nhs-number/tests/vectors/nhs_number_cases.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("SKIPPED: {path} is absent");
            return;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut n = 0;
        // Check-digit vectors are ground truth for us.
        for case in v["calculate_checksum"]
            .as_array()
            .expect("calculate_checksum")
        {
            let ident = case["identifier"].as_str().unwrap_or_default();
            if ident.len() != 9 || !ident.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let digits: Vec<u8> = ident.bytes().map(|b| b - b'0').collect();
            let got = check_digit(&digits[..].try_into().unwrap());
            let want = case["checksum"].as_u64().map(|c| c as u8);
            let want = if want == Some(10) { None } else { want };
            assert_eq!(got, want, "{ident}");
            n += 1;
        }
        // is_valid vectors, except those uk-fci rejects for a Scottish CHI date
        // (a regional rule, not the check digit; see its notes).
        for case in v["is_valid"].as_array().expect("is_valid cases") {
            let Some(input) = case["input"].as_str() else {
                continue;
            };
            let note = case["note"].as_str().unwrap_or_default();
            if note.contains("date") {
                continue;
            }
            let bare = input.len() == 10 && input.bytes().all(|b| b.is_ascii_digit());
            if bare {
                assert_eq!(is_valid(input), case["valid"].as_bool().unwrap(), "{input}");
                n += 1;
            }
        }
        assert!(n > 0, "no bare vectors found in {path}");
    }

    proptest! {
        #[test]
        fn completed_numbers_validate(d in proptest::array::uniform9(0u8..10)) {
            if let Some(n) = complete(d) {
                prop_assert!(is_valid(&n));
                let f = format(&n).unwrap();
                prop_assert!(is_valid(&f));
            }
        }
    }
}
