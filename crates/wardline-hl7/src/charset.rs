//! Character sets. The parser works on UTF-8 text (`&str`; ASCII is UTF-8).
//!
//! Decision: bytes that are not valid UTF-8 are **rejected** with the line
//! and byte offset of the first invalid byte, never guessed. A caller who
//! knows the input is ISO-8859-1 (MSH-18 `8859/1`, or by agreement with the
//! sender) converts it first with [`latin1_to_string`], which is lossless
//! (every byte maps to the char of the same number), and converts an encoded
//! message back with [`string_to_latin1`], so the byte-for-byte round trip
//! holds for Latin-1 input too.

use crate::error::ParseError;
use crate::segment::count_breaks;

/// `input` as UTF-8, or a [`ParseError`] locating the first invalid byte.
pub(crate) fn utf8(input: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(input).map_err(|e| {
        let at = e.valid_up_to();
        let before = &input[..at];
        // Lines end at CR, LF or CRLF; the valid prefix is UTF-8.
        let text = std::str::from_utf8(before).unwrap_or("");
        let line_start = text.rfind(['\r', '\n']).map_or(0, |i| i + 1);
        let line = 1 + count_breaks_in(text);
        let mut err = ParseError::new(
            line,
            format!(
                "invalid UTF-8 at byte {at} (0x{:02X}): HL7 v2 input must be UTF-8 or ASCII; \
                 convert other character sets first (ISO-8859-1: charset::latin1_to_string)",
                input[at]
            ),
        );
        let seg = &text[line_start..];
        if let Ok(id) = crate::segment::segment_id(seg, line) {
            err = err.in_segment(id);
        }
        err
    })
}

fn count_breaks_in(text: &str) -> usize {
    // Count breaks over all CR/LF runs.
    let mut n = 0;
    let mut rest = text;
    while let Some(i) = rest.find(['\r', '\n']) {
        let run = rest[i..]
            .bytes()
            .take_while(|&b| b == b'\r' || b == b'\n')
            .count();
        n += count_breaks(&rest[i..i + run]);
        rest = &rest[i + run..];
    }
    n
}

/// Decodes ISO-8859-1 (Latin-1): each byte becomes the char with that code.
pub fn latin1_to_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Encodes text as ISO-8859-1; `None` if a char is above U+00FF.
pub fn string_to_latin1(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn latin1_round_trip() {
        let bytes = b"MSH|^~\\&|A||||||ADT^A01|1|P|2.3|||||||8859/1\rPID|1||||M\xfcller\r";
        let err = Message::parse_bytes(bytes).unwrap_err();
        assert_eq!((err.line, err.segment.as_deref()), (2, Some("PID")));
        let text = latin1_to_string(bytes);
        let m = Message::parse(&text).unwrap();
        assert_eq!(m.get("PID-5").unwrap(), Some("Müller"));
        assert_eq!(string_to_latin1(&m.encode()).unwrap(), bytes);
        assert_eq!(string_to_latin1("€"), None);
    }
}
