//! Escape sequences: [`unescape`] (raw → text) and [`escape`] (text → raw).
//!
//! Decoding rules of [`unescape`], with `\` standing for the message's escape
//! character:
//!
//! | sequence | result |
//! | --- | --- |
//! | `\F\` `\S\` `\T\` `\R\` `\E\` `\P\` | the field, component, subcomponent, repetition, escape, truncation delimiter |
//! | `\Xhh..\` | the bytes `hh..`, read as UTF-8 if valid, else as ISO-8859-1 (one char per byte) |
//! | `\H\` `\N\` | removed (start/end highlighting has no plain-text form) |
//! | `\Cxxyy\` `\Mxxyyzz\`, `\Z..\`, formatting (`\.br\` ...), anything else | kept verbatim, delimiters included |
//! | an escape character with no closing one | kept verbatim |
//!
//! A sequence naming a delimiter the message does not define (e.g. `\T\`
//! when MSH-2 has no subcomponent separator) is kept verbatim. Without an
//! escape character (MSH-2 shorter than 3 characters) text is raw.

use std::borrow::Cow;

use crate::separators::Separators;

/// The text of a raw value: escape sequences decoded (see the module doc).
/// Borrows when there is nothing to decode.
pub fn unescape<'s>(raw: &'s str, seps: &Separators) -> Cow<'s, str> {
    let Some(esc) = seps.escape else {
        return Cow::Borrowed(raw);
    };
    if !raw.contains(esc) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find(esc) {
        out.push_str(&rest[..i]);
        // The escape character is ASCII: i + 1 is a char boundary.
        let after = &rest[i + 1..];
        let Some(j) = after.find(esc) else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let seq = &after[..j];
        if !decode_sequence(seq, seps, &mut out) {
            out.push_str(&rest[i..i + j + 2]);
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Appends the decoding of one sequence (without its delimiters) to `out`;
/// false if it is to be kept verbatim.
fn decode_sequence(seq: &str, seps: &Separators, out: &mut String) -> bool {
    let single = |c: Option<char>, out: &mut String| match c {
        Some(c) => {
            out.push(c);
            true
        }
        None => false,
    };
    match seq {
        "F" => single(Some(seps.field), out),
        "S" => single(Some(seps.component), out),
        "T" => single(seps.subcomponent, out),
        "R" => single(seps.repetition, out),
        "E" => single(seps.escape, out),
        "P" => single(seps.truncation, out),
        "H" | "N" => true,
        _ => {
            let Some(hex) = seq.strip_prefix('X') else {
                return false;
            };
            if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return false;
            }
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|k| u8::from_str_radix(&hex[k..k + 2], 16).unwrap_or(0))
                .collect();
            match String::from_utf8(bytes) {
                Ok(s) => out.push_str(&s),
                Err(e) => out.extend(e.into_bytes().into_iter().map(char::from)),
            }
            true
        }
    }
}

/// The raw form of a text value: every delimiter the message defines is
/// escaped (`\F\ \S\ \T\ \R\ \E\ \P\`), and CR and LF become `\X0D\` and
/// `\X0A\` so that the value cannot end a segment. `unescape(escape(t)) == t`
/// for every `t` when the message has an escape character.
///
/// Without an escape character (MSH-2 shorter than 3 characters) nothing can
/// be escaped: delimiters, CR and LF are then replaced by spaces (lossy).
pub fn escape<'s>(text: &'s str, seps: &Separators) -> Cow<'s, str> {
    let needs = |c: char| c == '\r' || c == '\n' || seps.is_delimiter(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let Some(esc) = seps.escape else {
        out.extend(text.chars().map(|c| if needs(c) { ' ' } else { c }));
        return Cow::Owned(out);
    };
    for c in text.chars() {
        let code = if c == seps.field {
            "F"
        } else if c == seps.component {
            "S"
        } else if Some(c) == seps.subcomponent {
            "T"
        } else if Some(c) == seps.repetition {
            "R"
        } else if c == esc {
            "E"
        } else if Some(c) == seps.truncation {
            "P"
        } else if c == '\r' {
            "X0D"
        } else if c == '\n' {
            "X0A"
        } else {
            out.push(c);
            continue;
        };
        out.push(esc);
        out.push_str(code);
        out.push(esc);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> String {
        unescape(s, &Separators::default()).into_owned()
    }

    #[test]
    fn delimiters() {
        assert_eq!(u(r"a\F\b\S\c\T\d\R\e\E\f"), r"a|b^c&d~e\f");
        assert_eq!(u("plain"), "plain");
        assert!(matches!(
            unescape("plain", &Separators::default()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn hex_highlight_and_verbatim() {
        assert_eq!(u(r"line1\X0D0A\line2"), "line1\r\nline2");
        assert_eq!(u(r"caf\XC3A9\"), "café");
        assert_eq!(u(r"caf\XE9\"), "café"); // not UTF-8: ISO-8859-1
        assert_eq!(u(r"\H\bold\N\ text"), "bold text");
        assert_eq!(u(r"x\C2842\y\M2442\z"), r"x\C2842\y\M2442\z");
        assert_eq!(u(r"a\.br\b"), r"a\.br\b");
        assert_eq!(u(r"odd\X0\ \Xzz\"), r"odd\X0\ \Xzz\");
        assert_eq!(u(r"dangling\F"), r"dangling\F");
        assert_eq!(u(r"a\\b"), r"a\\b");
        assert_eq!(u(r"\P\"), r"\P\"); // no truncation character defined
    }

    #[test]
    fn other_escape_character() {
        let s = Separators::new('|', "^~}").unwrap();
        assert_eq!(unescape("a}S}b}T}", &s), "a^b}T}");
        assert_eq!(unescape(r"a\S\b", &s), r"a\S\b");
    }

    #[test]
    fn escape_round_trip() {
        let s = Separators::new('|', "^~\\&#").unwrap();
        let t = "a|b^c~d\\e&f#g\r\nh é";
        let e = escape(t, &s);
        assert_eq!(e, r"a\F\b\S\c\R\d\E\e\T\f\P\g\X0D\\X0A\h é");
        assert_eq!(unescape(&e, &s), t);
    }

    #[test]
    fn escape_without_escape_character_is_lossy() {
        let s = Separators::new('|', "^~").unwrap();
        assert_eq!(escape("a|b^c\\d\re", &s), "a b c\\d e");
    }
}
