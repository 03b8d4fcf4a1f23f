//! Hospital numbers: the trust's own record numbers (medical record numbers,
//! `MR`), in one identifier system and one numbering scheme per trust.
//!
//! A number is the trust's prefix (one to six letters), a serial
//! zero-padded to the scheme's width, and a Luhn check digit over the
//! serial's digits: prefix `W`, width 7, serial 1 → `W00000018`. A serial
//! wider than the width keeps all its digits (never truncated). This module
//! only formats and checks; handing out the next unused number is the
//! PMI's (`wardline-workflow`, `pmi::allocate_hospital_number`), and which
//! scheme a deployment uses is configuration (`wardline serve
//! --hospital-number-system/-prefix/-digits`).

/// The system of the default scheme.
pub const DEFAULT_SYSTEM: &str = "https://fhir.wardline.invalid/Id/hospital-number";

/// One trust's hospital-number scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    system: String,
    prefix: String,
    digits: usize,
}

impl Default for Scheme {
    /// [`DEFAULT_SYSTEM`], prefix `W`, seven digits (`W00000018`).
    fn default() -> Scheme {
        Scheme {
            system: DEFAULT_SYSTEM.to_owned(),
            prefix: "W".to_owned(),
            digits: 7,
        }
    }
}

impl Scheme {
    /// A scheme; the error says what is wrong with which part. The system
    /// must be an absolute `http(s)://` or `urn:` URI, the prefix one to six
    /// letters (upper-cased here), the width 4 to 12 digits.
    pub fn new(system: &str, prefix: &str, digits: usize) -> Result<Scheme, String> {
        let system = system.trim();
        let absolute = ["http://", "https://", "urn:"]
            .iter()
            .any(|s| system.len() > s.len() && system.starts_with(s));
        if !absolute || system.chars().any(|c| c.is_whitespace() || c == '|') {
            return Err(format!(
                "the hospital-number system must be an absolute URI such as https://fhir.example.nhs.uk/Id/hospital-number, not '{system}'"
            ));
        }
        let prefix = prefix.trim().to_ascii_uppercase();
        if !(1..=6).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "the hospital-number prefix must be one to six letters, not '{prefix}'"
            ));
        }
        if !(4..=12).contains(&digits) {
            return Err(format!(
                "a hospital number must have 4 to 12 digits before its check digit, not {digits}"
            ));
        }
        Ok(Scheme {
            system: system.to_owned(),
            prefix,
            digits,
        })
    }

    /// The identifier system.
    pub fn system(&self) -> &str {
        &self.system
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The width of the serial (before the check digit).
    pub fn digits(&self) -> usize {
        self.digits
    }

    /// The hospital number with this serial.
    pub fn format(&self, serial: u64) -> String {
        let body = format!("{serial:0width$}", width = self.digits);
        format!("{}{body}{}", self.prefix, luhn(&body))
    }

    /// A Patient `identifier` holding `value`, as registration records one
    /// (`use` usual, type `MR`, this scheme's system).
    pub fn identifier(&self, value: &str) -> serde_json::Value {
        serde_json::json!({
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical record number"}]},
            "system": self.system,
            "value": value,
        })
    }

    /// The serial of a hospital number of this scheme (prefix in any case,
    /// check digit right); `None` for anything else.
    pub fn serial(&self, value: &str) -> Option<u64> {
        let (body, check) = self.parts(value)?;
        (luhn(body) == check).then(|| body.parse().ok()).flatten()
    }

    /// Why `value`, shaped like a number of this scheme, is not one (its
    /// check digit is wrong), in plain English; `None` when it is one or is
    /// not shaped like one (another system's number, a partial number).
    pub fn problem(&self, value: &str) -> Option<String> {
        let (body, check) = self.parts(value)?;
        (luhn(body) != check).then(|| {
            format!(
                "{} is not a valid hospital number: its check digit is wrong",
                value.trim().to_ascii_uppercase()
            )
        })
    }

    /// The serial's digits and the check digit of a value shaped like this
    /// scheme's numbers.
    fn parts<'v>(&self, value: &'v str) -> Option<(&'v str, u8)> {
        let v = value.trim();
        let head = v.get(..self.prefix.len())?;
        if !head.eq_ignore_ascii_case(&self.prefix) {
            return None;
        }
        let rest = &v[self.prefix.len()..];
        if rest.len() < self.digits + 1 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (body, check) = rest.split_at(rest.len() - 1);
        Some((body, check.as_bytes()[0] - b'0'))
    }
}

/// The Luhn check digit of a string of ASCII digits.
fn luhn(body: &str) -> u8 {
    let mut sum = 0u32;
    for (i, c) in body.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_scheme() {
        let s = Scheme::default();
        assert_eq!(s.format(1), "W00000018");
        assert_eq!(s.serial("W00000018"), Some(1));
        assert_eq!(s.serial("w00000018"), Some(1));
        assert_eq!(s.serial("W00000019"), None);
        assert_eq!(
            s.problem("w00000019").as_deref(),
            Some("W00000019 is not a valid hospital number: its check digit is wrong")
        );
        assert_eq!(s.problem("W00000018"), None);
        // Not shaped like one: not for this scheme to judge.
        assert_eq!(s.problem("RWG123"), None);
        assert_eq!(s.problem("W123"), None);
        // Wider serials keep their digits.
        assert_eq!(s.format(12_345_678).len(), 1 + 8 + 1);
        assert_eq!(s.serial(&s.format(12_345_678)), Some(12_345_678));
        // Luhn's own example: 7992739871 has check digit 3.
        assert_eq!(luhn("7992739871"), 3);
    }

    #[test]
    fn a_trust_scheme_and_bad_configuration() {
        let s = Scheme::new("https://fhir.example.nhs.uk/Id/mrn", "rwg", 6).unwrap();
        assert_eq!(s.prefix(), "RWG");
        assert_eq!(s.format(42), format!("RWG000042{}", luhn("000042")));
        assert!(
            Scheme::new("not a uri", "W", 7)
                .unwrap_err()
                .contains("absolute URI")
        );
        assert!(Scheme::new("https://x/y|z", "W", 7).is_err());
        assert!(
            Scheme::new("https://x/y", "", 7)
                .unwrap_err()
                .contains("prefix")
        );
        assert!(Scheme::new("https://x/y", "W1", 7).is_err());
        assert!(
            Scheme::new("https://x/y", "W", 3)
                .unwrap_err()
                .contains("4 to 12")
        );
        assert!(Scheme::new("urn:oid:1.2.3", "ABCDEF", 12).is_ok());
    }

    proptest! {
        #[test]
        fn every_number_reads_back_and_every_single_digit_error_is_caught(
            serial in 0u64..100_000_000, at in 0usize..8, delta in 1u8..10
        ) {
            let s = Scheme::default();
            let v = s.format(serial);
            prop_assert_eq!(s.serial(&v), Some(serial));
            prop_assert!(s.problem(&v).is_none());
            let mut b = v.into_bytes();
            let i = 1 + at.min(b.len() - 2);
            b[i] = b'0' + (b[i] - b'0' + delta) % 10;
            let typo = String::from_utf8(b).unwrap();
            prop_assert_eq!(s.serial(&typo), None);
            prop_assert!(s.problem(&typo).is_some());
        }
    }
}
