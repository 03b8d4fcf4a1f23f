//! The delimiters of a message, read from MSH-1 and MSH-2 (or FHS/BHS).

use std::fmt;

use crate::error::ParseError;

/// The delimiters of one message (or batch header).
///
/// They are always read from the header segment (MSH-1 is the field
/// separator, MSH-2 the encoding characters in the order component,
/// repetition, escape, subcomponent and, from v2.7, truncation). MSH-2 may be
/// shorter than four characters; the missing delimiters are then simply not
/// used (`None`), as HL7 allows. Every delimiter must be printable ASCII
/// punctuation and all must be distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Separators {
    /// Field separator (MSH-1), usually `|`.
    pub field: char,
    /// Component separator (MSH-2, 1st character), usually `^`.
    pub component: char,
    /// Repetition separator (MSH-2, 2nd character), usually `~`.
    pub repetition: Option<char>,
    /// Escape character (MSH-2, 3rd character), usually `\`.
    pub escape: Option<char>,
    /// Subcomponent separator (MSH-2, 4th character), usually `&`.
    pub subcomponent: Option<char>,
    /// Truncation character (MSH-2, 5th character, v2.7+), usually `#`.
    pub truncation: Option<char>,
}

const ROLES: [&str; 5] = [
    "component separator",
    "repetition separator",
    "escape character",
    "subcomponent separator",
    "truncation character",
];

impl Default for Separators {
    /// The standard `|^~\&`.
    fn default() -> Self {
        Separators {
            field: '|',
            component: '^',
            repetition: Some('~'),
            escape: Some('\\'),
            subcomponent: Some('&'),
            truncation: None,
        }
    }
}

impl Separators {
    /// Separators from a field separator and the MSH-2 encoding characters,
    /// validated as the parser validates them.
    pub fn new(field: char, encoding: &str) -> Result<Self, ParseError> {
        Self::validate(field, encoding, "MSH", 1)
    }

    /// Validates MSH-1/MSH-2 (or FHS/BHS) of the segment `id` on `line`.
    pub(crate) fn validate(
        field: char,
        encoding: &str,
        id: &str,
        line: usize,
    ) -> Result<Self, ParseError> {
        let err1 = |m: String| ParseError::new(line, m).in_segment(id).in_field(1);
        let err2 = |m: String| ParseError::new(line, m).in_segment(id).in_field(2);
        if !field.is_ascii_punctuation() {
            return Err(err1(format!(
                "{id}-1 field separator {field:?} invalid: it must be printable ASCII punctuation"
            )));
        }
        if encoding.is_empty() {
            return Err(err2(format!("{id}-2 encoding characters missing")));
        }
        if encoding.chars().nth(5).is_some() {
            return Err(err2(format!(
                "{id}-2 encoding characters {encoding:?} invalid: more than 5 characters"
            )));
        }
        // At most 5: kept on the stack (this runs once per message).
        let mut buf = ['\0'; 5];
        let mut len = 0;
        for (slot, c) in buf.iter_mut().zip(encoding.chars()) {
            *slot = c;
            len += 1;
        }
        let chars = &buf[..len];
        for (i, &c) in chars.iter().enumerate() {
            let role = ROLES[i];
            if !c.is_ascii_punctuation() {
                let shown = if c == ' ' {
                    "a space".to_string()
                } else {
                    format!("{c:?}")
                };
                return Err(err2(format!(
                    "{id}-2 encoding characters {encoding:?} invalid: the {role} (character {}) is {shown}, not printable ASCII punctuation",
                    i + 1
                )));
            }
            if c == field {
                return Err(err2(format!(
                    "{id}-2 encoding characters {encoding:?} invalid: the {role} is the field separator {field:?}"
                )));
            }
            if chars[..i].contains(&c) {
                return Err(err2(format!(
                    "{id}-2 encoding characters {encoding:?} invalid: the {role} {c:?} is used twice"
                )));
            }
        }
        Ok(Separators {
            field,
            component: chars[0],
            repetition: chars.get(1).copied(),
            escape: chars.get(2).copied(),
            subcomponent: chars.get(3).copied(),
            truncation: chars.get(4).copied(),
        })
    }

    /// The MSH-2 text: the encoding characters in order (`^~\&`).
    pub fn encoding_characters(&self) -> String {
        let mut s = String::with_capacity(5);
        s.push(self.component);
        for c in [
            self.repetition,
            self.escape,
            self.subcomponent,
            self.truncation,
        ]
        .into_iter()
        .map_while(|c| c)
        {
            s.push(c);
        }
        s
    }

    /// True if `c` is one of the delimiters (field, component, repetition,
    /// escape, subcomponent or truncation).
    pub fn is_delimiter(&self, c: char) -> bool {
        c == self.field
            || c == self.component
            || Some(c) == self.repetition
            || Some(c) == self.escape
            || Some(c) == self.subcomponent
            || Some(c) == self.truncation
    }
}

impl fmt::Display for Separators {
    /// MSH-1 followed by MSH-2, e.g. `|^~\&`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.field, self.encoding_characters())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_standard() {
        assert_eq!(Separators::default().to_string(), "|^~\\&");
    }

    #[test]
    fn short_and_long_encoding_characters() {
        let s = Separators::new('|', "^~}").unwrap();
        assert_eq!(s.escape, Some('}'));
        assert_eq!(s.subcomponent, None);
        let s = Separators::new('|', "^~\\&#").unwrap();
        assert_eq!(s.truncation, Some('#'));
        assert_eq!(s.encoding_characters(), "^~\\&#");
        let s = Separators::new('|', "^").unwrap();
        assert_eq!(s.repetition, None);
    }

    #[test]
    fn invalid_encoding_characters() {
        let e = Separators::new('|', "^~ &").unwrap_err();
        assert_eq!(e.field, Some(2));
        assert!(
            e.message
                .contains("escape character (character 3) is a space"),
            "{e}"
        );
        assert!(Separators::new('|', "^~|&").is_err());
        assert!(Separators::new('|', "^^\\&").is_err());
        assert!(Separators::new('|', "^~\\&#!").is_err());
        assert!(Separators::new('a', "^~\\&").is_err());
        assert!(
            Separators::new('|', "")
                .unwrap_err()
                .message
                .contains("missing")
        );
    }
}
