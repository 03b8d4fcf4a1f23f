//! Segments and the views into them: [`Segment`], [`Field`], [`Repetition`],
//! [`Component`].

use std::borrow::Cow;

use serde_json::Value;

use crate::error::ParseError;
use crate::escape::unescape;
use crate::separators::Separators;

/// One line of input: its text (no CR/LF), its terminator (the whole run of
/// CR/LF characters after it, so blank lines belong to the line before) and
/// its 1-based line number.
pub(crate) struct RawLine<'a> {
    pub text: &'a str,
    pub term: &'a str,
    pub line: usize,
}

/// Number of line breaks in a run of CR/LF characters (CRLF counts once).
pub(crate) fn count_breaks(run: &str) -> usize {
    let b = run.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 2;
        } else {
            i += 1;
        }
        n += 1;
    }
    n
}

/// Splits off the prefix (an optional UTF-8 BOM, then any leading CR/LF) and
/// returns `(prefix, rest, line number of the first line of rest)`.
pub(crate) fn split_prefix(input: &str) -> (&str, &str, usize) {
    let bom = if input.starts_with('\u{feff}') { 3 } else { 0 };
    let lead = input[bom..]
        .bytes()
        .take_while(|&b| b == b'\r' || b == b'\n')
        .count();
    let end = bom + lead;
    (
        &input[..end],
        &input[end..],
        1 + count_breaks(&input[bom..end]),
    )
}

/// Splits text that starts with a non-empty line into lines.
pub(crate) fn split_lines(rest: &str, line: usize) -> Vec<RawLine<'_>> {
    Lines { rest, line }.collect()
}

/// The lines of text that starts with a non-empty line, lazily (what
/// [`split_lines`] collects).
pub(crate) struct Lines<'a> {
    pub rest: &'a str,
    pub line: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = RawLine<'a>;

    fn next(&mut self) -> Option<RawLine<'a>> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        // CR and LF are ASCII, so their byte offsets are char boundaries.
        let t = line_end(rest.as_bytes());
        let after = &rest[t..];
        let r = after
            .bytes()
            .take_while(|&b| b == b'\r' || b == b'\n')
            .count();
        let line = RawLine {
            text: &rest[..t],
            term: &after[..r],
            line: self.line,
        };
        self.line += count_breaks(&after[..r]);
        self.rest = &after[r..];
        Some(line)
    }
}

/// A segment: its text, its terminator and the byte ranges of its fields.
///
/// The text borrows from the parsed input (`Cow::Borrowed`) unless the
/// segment was made owned with [`Segment::into_owned`]. Field 0 is the
/// segment id; in MSH, FHS and BHS, field 1 is the field separator itself and
/// field 2 the encoding characters, as HL7 numbers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    text: Cow<'a, str>,
    terminator: Cow<'a, str>,
    fields: Vec<(usize, usize)>,
    seps: Separators,
    line: usize,
    header: bool,
}

/// Checks the 3-character segment id at the start of a line.
pub(crate) fn segment_id(text: &str, line: usize) -> Result<&str, ParseError> {
    let b = text.as_bytes();
    let ok = b.len() >= 3
        && b[0].is_ascii_uppercase()
        && (b[1].is_ascii_uppercase() || b[1].is_ascii_digit())
        && (b[2].is_ascii_uppercase() || b[2].is_ascii_digit());
    if ok {
        Ok(&text[..3])
    } else {
        let shown: String = text.chars().take(12).collect();
        Err(ParseError::new(
            line,
            format!(
                "invalid segment id at the start of {shown:?}: expected 3 upper-case letters or digits"
            ),
        ))
    }
}

impl<'a> Segment<'a> {
    /// Parses a header segment (MSH, FHS or BHS), reading its separators.
    pub(crate) fn parse_header(line: &RawLine<'a>) -> Result<Self, ParseError> {
        let text = line.text;
        let id = segment_id(text, line.line)?;
        let Some(field) = text[3..].chars().next() else {
            return Err(
                ParseError::new(line.line, format!("{id}-1 field separator missing"))
                    .in_segment(id)
                    .in_field(1),
            );
        };
        if !field.is_ascii() {
            return Err(ParseError::new(
                line.line,
                format!("{id}-1 field separator {field:?} invalid: it must be printable ASCII punctuation"),
            )
            .in_segment(id)
            .in_field(1));
        }
        let enc_end = text[4..].find(field).map_or(text.len(), |i| i + 4);
        let seps = Separators::validate(field, &text[4..enc_end], id, line.line)?;
        let fields = split_fields(text, &[(0, 3), (3, 4)], field);
        Ok(Segment {
            text: Cow::Borrowed(text),
            terminator: Cow::Borrowed(line.term),
            fields,
            seps,
            line: line.line,
            header: true,
        })
    }

    /// Parses any other segment with the separators of its message.
    pub(crate) fn parse_body(line: &RawLine<'a>, seps: Separators) -> Result<Self, ParseError> {
        let text = line.text;
        let id = segment_id(text, line.line)?;
        let next = text[3..].chars().next();
        if let Some(c) = next.filter(|&c| c != seps.field) {
            return Err(ParseError::new(
                line.line,
                format!(
                    "segment id {id} is followed by {c:?}, not the field separator {:?}",
                    seps.field
                ),
            )
            .in_segment(id));
        }
        let fields = if text.len() > 3 {
            split_fields(text, &[(0, 3)], seps.field)
        } else {
            vec![(0, 3)]
        };
        Ok(Segment {
            text: Cow::Borrowed(text),
            terminator: Cow::Borrowed(line.term),
            fields,
            seps,
            line: line.line,
            header: false,
        })
    }

    /// The segment id (`MSH`, `PID`, `ZNT` ...).
    pub fn id(&self) -> &str {
        &self.text[..3]
    }

    /// The whole segment text, without its terminator.
    pub fn raw(&self) -> &str {
        &self.text
    }

    /// What ended the segment in the input: `"\r"`, `"\n"`, `"\r\n"`, any
    /// longer run of CR/LF when blank lines followed, or `""` at the end of
    /// input.
    pub fn terminator(&self) -> &str {
        &self.terminator
    }

    /// The 1-based line number of the segment in the parsed input.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The separators this segment was parsed with.
    pub fn separators(&self) -> &Separators {
        &self.seps
    }

    /// True for MSH, FHS and BHS, whose fields 1 and 2 are the separators.
    pub fn is_header(&self) -> bool {
        self.header
    }

    /// Number of the last field present (0 for a segment with only an id).
    pub fn field_count(&self) -> usize {
        self.fields.len() - 1
    }

    /// Field `n` (1-based, HL7 numbering), or `None` beyond the last field.
    /// `MSH-1` and `MSH-2` are returned as literal fields: never split, never
    /// unescaped.
    pub fn field(&self, n: usize) -> Option<Field<'_>> {
        if n == 0 {
            return None;
        }
        let &(s, e) = self.fields.get(n)?;
        Some(Field {
            raw: &self.text[s..e],
            seps: &self.seps,
            literal: self.header && n <= 2,
        })
    }

    /// All fields from 1 on.
    pub fn fields(&self) -> impl Iterator<Item = Field<'_>> {
        (1..self.fields.len()).filter_map(|n| self.field(n))
    }

    /// Appends the segment, rebuilt from its fields, and its terminator.
    pub fn encode_into(&self, out: &mut String) {
        let sep = self.seps.field;
        let first = if self.header {
            out.push_str(self.id());
            out.push(sep);
            2
        } else {
            0
        };
        for (k, &(s, e)) in self.fields.iter().enumerate().skip(first) {
            if k > first {
                out.push(sep);
            }
            out.push_str(&self.text[s..e]);
        }
        out.push_str(&self.terminator);
    }

    /// The segment rebuilt from its fields, with its terminator.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(self.text.len() + self.terminator.len());
        self.encode_into(&mut s);
        s
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> Segment<'static> {
        Segment {
            text: Cow::Owned(self.text.into_owned()),
            terminator: Cow::Owned(self.terminator.into_owned()),
            fields: self.fields,
            seps: self.seps,
            line: self.line,
            header: self.header,
        }
    }

    /// JSON view: `{"id": "PID", "fields": [...]}` where each field is an
    /// array of repetitions, each repetition an array of components, and each
    /// component a string, or an array of subcomponent strings when it has a
    /// subcomponent separator. Text is unescaped. An empty field is `[]`.
    pub fn to_json(&self) -> Value {
        let fields: Vec<Value> = self.fields().map(|f| f.to_json()).collect();
        serde_json::json!({ "id": self.id(), "fields": fields })
    }
}

// Byte scanning, eight bytes at a time in a `u64` (SWAR), in safe and
// portable code. The parser only ever looks for ASCII bytes (separators, CR,
// LF), and an ASCII byte never occurs inside a multi-byte UTF-8 sequence, so
// every offset found is a char boundary.

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ONES: u64 = 0x0101_0101_0101_0101;

/// The word of the eight bytes of `c`, byte 0 in the lowest bits.
#[inline]
fn word(c: &[u8]) -> u64 {
    u64::from_le_bytes(c.try_into().expect("chunks of 8 bytes"))
}

/// The high bit of every byte of `w` that equals `b`, and no other bit
/// (exact: no carry crosses a byte).
#[inline]
fn eq_mask(w: u64, b: u8) -> u64 {
    let x = w ^ (u64::from(b) * ONES);
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Offset of the first CR or LF in `bytes`, or its length.
fn line_end(bytes: &[u8]) -> usize {
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let w = word(c);
        let m = eq_mask(w, b'\r') | eq_mask(w, b'\n');
        if m != 0 {
            return base + (m.trailing_zeros() / 8) as usize;
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map_or(bytes.len(), |i| base + i)
}

/// How many times `b` occurs in `bytes`.
fn count_byte(bytes: &[u8], b: u8) -> usize {
    let mut chunks = bytes.chunks_exact(8);
    let mut n = 0;
    for c in &mut chunks {
        // One bit per match, at the bottom of its byte; the multiplication
        // adds all eight bytes into the top one.
        n += (((eq_mask(word(c), b) >> 7).wrapping_mul(ONES)) >> 56) as usize;
    }
    n + chunks.remainder().iter().filter(|&&x| x == b).count()
}

/// The byte ranges of the fields of `text` from byte 4 on (after the id and
/// the first field separator), after the ranges in `head`.
fn split_fields(text: &str, head: &[(usize, usize)], sep: char) -> Vec<(usize, usize)> {
    const FROM: usize = 4;
    let mut out;
    if text.len() < FROM {
        out = head.to_vec();
    } else if sep.is_ascii() {
        // Scanned as bytes (see `eq_mask`). Counting first sizes the vector
        // exactly: one allocation per segment.
        let sep = sep as u8;
        let bytes = &text.as_bytes()[FROM..];
        out = Vec::with_capacity(head.len() + count_byte(bytes, sep) + 1);
        out.extend_from_slice(head);
        let mut start = FROM;
        let mut chunks = bytes.chunks_exact(8);
        let mut base = FROM;
        for c in &mut chunks {
            let mut m = eq_mask(word(c), sep);
            while m != 0 {
                let i = base + (m.trailing_zeros() / 8) as usize;
                out.push((start, i));
                start = i + 1;
                m &= m - 1;
            }
            base += 8;
        }
        for (k, &b) in chunks.remainder().iter().enumerate() {
            if b == sep {
                out.push((start, base + k));
                start = base + k + 1;
            }
        }
        out.push((start, text.len()));
    } else {
        out = head.to_vec();
        let mut start = FROM;
        for (i, c) in text[FROM..].char_indices() {
            if c == sep {
                out.push((start, FROM + i));
                start = FROM + i + 1;
            }
        }
        out.push((start, text.len()));
    }
    out
}

/// Splits `raw` on `sep`; when `sep` is `None` or the value is literal, the
/// whole value is the only item. (CR never occurs inside parsed values, so it
/// serves as a separator that never matches.)
fn split_on(raw: &str, sep: Option<char>, literal: bool) -> std::str::Split<'_, char> {
    let sep = if literal { None } else { sep };
    raw.split(sep.unwrap_or('\r'))
}

macro_rules! common_view {
    ($t:ident) => {
        impl<'s> $t<'s> {
            /// The raw (still escaped) text.
            pub fn raw(&self) -> &'s str {
                self.raw
            }

            /// The text with escape sequences decoded (see [`crate::escape`]);
            /// delimiters of lower levels are kept as they are.
            pub fn text(&self) -> Cow<'s, str> {
                if self.literal {
                    Cow::Borrowed(self.raw)
                } else {
                    unescape(self.raw, self.seps)
                }
            }

            /// True if the value is empty (not present).
            pub fn is_empty(&self) -> bool {
                self.raw.is_empty()
            }

            /// True if the value is the HL7 explicit null `""`.
            pub fn is_null(&self) -> bool {
                self.raw == "\"\""
            }
        }
    };
}

/// A field: one or more repetitions.
#[derive(Debug, Clone, Copy)]
pub struct Field<'s> {
    raw: &'s str,
    seps: &'s Separators,
    literal: bool,
}

/// One repetition of a field: one or more components.
#[derive(Debug, Clone, Copy)]
pub struct Repetition<'s> {
    raw: &'s str,
    seps: &'s Separators,
    literal: bool,
}

/// One component: one or more subcomponents.
#[derive(Debug, Clone, Copy)]
pub struct Component<'s> {
    raw: &'s str,
    seps: &'s Separators,
    literal: bool,
}

common_view!(Field);
common_view!(Repetition);
common_view!(Component);

impl<'s> Field<'s> {
    /// The repetitions (an empty field has one, empty, repetition).
    pub fn repetitions(&self) -> impl Iterator<Item = Repetition<'s>> + use<'s> {
        let (seps, literal) = (self.seps, self.literal);
        split_on(self.raw, seps.repetition, literal).map(move |raw| Repetition {
            raw,
            seps,
            literal,
        })
    }

    /// Repetition `n` (1-based).
    pub fn repetition(&self, n: usize) -> Option<Repetition<'s>> {
        self.repetitions().nth(n.checked_sub(1)?)
    }

    /// Component `n` (1-based) of the first repetition.
    pub fn component(&self, n: usize) -> Option<Component<'s>> {
        self.repetition(1)?.component(n)
    }

    pub(crate) fn to_json(self) -> Value {
        if self.raw.is_empty() {
            return Value::Array(vec![]);
        }
        Value::Array(self.repetitions().map(|r| r.to_json()).collect())
    }
}

impl<'s> Repetition<'s> {
    /// The components.
    pub fn components(&self) -> impl Iterator<Item = Component<'s>> + use<'s> {
        let (seps, literal) = (self.seps, self.literal);
        split_on(self.raw, Some(seps.component), literal).map(move |raw| Component {
            raw,
            seps,
            literal,
        })
    }

    /// Component `n` (1-based).
    pub fn component(&self, n: usize) -> Option<Component<'s>> {
        self.components().nth(n.checked_sub(1)?)
    }

    fn to_json(self) -> Value {
        Value::Array(self.components().map(|c| c.to_json()).collect())
    }
}

impl<'s> Component<'s> {
    /// The raw subcomponents.
    pub fn subcomponents(&self) -> impl Iterator<Item = &'s str> + use<'s> {
        split_on(self.raw, self.seps.subcomponent, self.literal)
    }

    /// Subcomponent `n` (1-based), raw.
    pub fn subcomponent(&self, n: usize) -> Option<&'s str> {
        self.subcomponents().nth(n.checked_sub(1)?)
    }

    /// Subcomponent `n` (1-based), unescaped.
    pub fn subcomponent_text(&self, n: usize) -> Option<Cow<'s, str>> {
        let raw = self.subcomponent(n)?;
        Some(if self.literal {
            Cow::Borrowed(raw)
        } else {
            unescape(raw, self.seps)
        })
    }

    fn to_json(self) -> Value {
        let subs: Vec<&str> = self.subcomponents().collect();
        if subs.len() == 1 {
            Value::String(self.text().into_owned())
        } else {
            Value::Array(
                subs.iter()
                    .map(|s| Value::String(unescape(s, self.seps).into_owned()))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_breaks() {
        assert_eq!(count_breaks("\r\r\n"), 2);
        assert_eq!(count_breaks("\n\r"), 2);
        assert_eq!(count_breaks("\r\n\r\n"), 2);
        let (p, rest, line) = split_prefix("\u{feff}\n\r\nMSH|x");
        assert_eq!(p, "\u{feff}\n\r\n");
        assert_eq!(rest, "MSH|x");
        assert_eq!(line, 3);
        let lines = split_lines("A\rB\r\n\nC", 1);
        let v: Vec<_> = lines.iter().map(|l| (l.text, l.term, l.line)).collect();
        assert_eq!(v, [("A", "\r", 1), ("B", "\r\n\n", 2), ("C", "", 4)]);
    }

    #[test]
    fn byte_scans_match_naive_scans() {
        let samples = [
            "",
            "|",
            "PID|",
            "PID|1||A^B~C|é|ü€😀|x\u{7f}|\u{80}\u{ff}|||",
            "OBX|1|ST|||a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q|r|s|t|u|v|w|x|y|z|",
            "PV1|1|I|RAL7W^BAY2^BED05^RFH||||||||||||||||||||||||||||||||||||RFH",
        ];
        for text in samples {
            let b = text.as_bytes();
            for sep in [b'|', b'^', b'\r', 0x7f] {
                let naive = b.iter().filter(|&&x| x == sep).count();
                assert_eq!(count_byte(b, sep), naive, "{text:?} {sep}");
            }
            for cut in 0..=b.len() {
                let mut with_end = b[..cut].to_vec();
                with_end.extend_from_slice(b"\n|\r");
                assert_eq!(line_end(&with_end), cut, "{text:?} {cut}");
            }
            let mut naive = vec![(0, 3)];
            if text.len() >= 4 {
                let mut start = 4;
                for (i, c) in text[4..].char_indices() {
                    if c == '|' {
                        naive.push((start, 4 + i));
                        start = 4 + i + 1;
                    }
                }
                naive.push((start, text.len()));
            }
            assert_eq!(split_fields(text, &[(0, 3)], '|'), naive, "{text:?}");
            assert!(split_fields(text, &[(0, 3)], '§').len() <= 2);
        }
    }

    #[test]
    fn header_fields() {
        let l = RawLine {
            text: "MSH|^~\\&|APP|FAC",
            term: "\r",
            line: 1,
        };
        let s = Segment::parse_header(&l).unwrap();
        assert_eq!(s.field(1).unwrap().raw(), "|");
        assert_eq!(s.field(2).unwrap().raw(), "^~\\&");
        assert_eq!(s.field(2).unwrap().repetitions().count(), 1);
        assert_eq!(s.field(3).unwrap().raw(), "APP");
        assert_eq!(s.field_count(), 4);
        assert_eq!(s.encode(), "MSH|^~\\&|APP|FAC\r");
        let l = RawLine {
            text: "MSH|^~\\&",
            term: "",
            line: 1,
        };
        let s = Segment::parse_header(&l).unwrap();
        assert_eq!(s.field_count(), 2);
        assert_eq!(s.encode(), "MSH|^~\\&");
    }

    #[test]
    fn body_fields() {
        let seps = Separators::default();
        let l = RawLine {
            text: "PID|1||A^B&C~D",
            term: "\n",
            line: 2,
        };
        let s = Segment::parse_body(&l, seps).unwrap();
        let f = s.field(3).unwrap();
        assert_eq!(f.repetitions().count(), 2);
        assert_eq!(f.component(2).unwrap().subcomponent(2), Some("C"));
        assert_eq!(f.repetition(2).unwrap().raw(), "D");
        assert!(s.field(2).unwrap().is_empty());
        assert!(s.field(4).is_none());
        assert_eq!(s.encode(), "PID|1||A^B&C~D\n");
        let l = RawLine {
            text: "DSC",
            term: "",
            line: 2,
        };
        assert_eq!(Segment::parse_body(&l, seps).unwrap().field_count(), 0);
        let l = RawLine {
            text: "PID^1",
            term: "",
            line: 2,
        };
        let e = Segment::parse_body(&l, seps).unwrap_err();
        assert_eq!(e.segment.as_deref(), Some("PID"));
        let l = RawLine {
            text: "pid|1",
            term: "",
            line: 7,
        };
        assert_eq!(Segment::parse_body(&l, seps).unwrap_err().line, 7);
    }
}
