//! [`Message`]: one HL7 v2 message (MSH and the segments after it).

use std::borrow::Cow;

use serde_json::Value;

use crate::error::{ParseError, PathError};
use crate::escape::unescape;
use crate::path::Path;
use crate::segment::{Lines, Segment, split_prefix};
use crate::separators::Separators;

/// One parsed message. See the crate doc for the data model.
///
/// `Message<'a>` borrows from the input it was parsed from;
/// [`Message::into_owned`] gives a `Message<'static>` that owns its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    prefix: Cow<'a, str>,
    segments: Vec<Segment<'a>>,
}

/// Segment ids that belong to batch/file envelopes, not to messages.
pub(crate) const ENVELOPE_IDS: [&str; 4] = ["FHS", "BHS", "BTS", "FTS"];

impl<'a> Message<'a> {
    /// Parses exactly one message. A leading UTF-8 BOM and blank lines before
    /// MSH are tolerated (and kept for re-encoding), as are CR, LF and CRLF
    /// terminators, mixed, and trailing blank lines. Inputs holding several
    /// messages or batch envelopes are rejected: read those with
    /// [`crate::parse_file`].
    pub fn parse(input: &'a str) -> Result<Message<'a>, ParseError> {
        let (prefix, rest, first_line) = split_prefix(input);
        let mut lines = Lines {
            rest,
            line: first_line,
        };
        let Some(first) = lines.next() else {
            return Err(ParseError::new(first_line, "empty message"));
        };
        if !first.text.starts_with("MSH") {
            let found: String = first.text.chars().take(3).collect();
            let hint = if found == "FHS" || found == "BHS" {
                ": a batch file, read it with parse_file"
            } else {
                ""
            };
            return Err(ParseError::new(
                first.line,
                format!("segment 1 does not start with MSH (found {found:?}){hint}"),
            ));
        }
        let header = Segment::parse_header(&first)?;
        let seps = *header.separators();
        // A guess from the length (segments average 60-100 bytes), so that
        // most messages need one allocation and none needs a scan to count.
        let mut segments = Vec::with_capacity((rest.len() / 64).clamp(4, 64));
        segments.push(header);
        for line in lines {
            let id = crate::segment::segment_id(line.text, line.line)?;
            if id == "MSH" {
                return Err(ParseError::new(
                    line.line,
                    "a second MSH starts another message: read inputs with several messages with parse_file",
                )
                .in_segment(id));
            }
            if ENVELOPE_IDS.contains(&id) {
                return Err(ParseError::new(
                    line.line,
                    format!(
                        "batch segment {id} inside a message: read batch files with parse_file"
                    ),
                )
                .in_segment(id));
            }
            segments.push(Segment::parse_body(&line, seps)?);
        }
        Ok(Message {
            prefix: Cow::Borrowed(prefix),
            segments,
        })
    }

    /// Parses one message from bytes, which must be UTF-8 (ASCII is UTF-8).
    /// Other bytes are rejected with the line and byte offset of the first
    /// invalid byte; decode other character sets first, e.g. ISO-8859-1 with
    /// [`crate::charset::latin1_to_string`].
    pub fn parse_bytes(input: &'a [u8]) -> Result<Message<'a>, ParseError> {
        Message::parse(crate::charset::utf8(input)?)
    }

    pub(crate) fn from_parts(prefix: &'a str, segments: Vec<Segment<'a>>) -> Self {
        Message {
            prefix: Cow::Borrowed(prefix),
            segments,
        }
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> Message<'static> {
        Message {
            prefix: Cow::Owned(self.prefix.into_owned()),
            segments: self.segments.into_iter().map(Segment::into_owned).collect(),
        }
    }

    /// The separators, from MSH-1 and MSH-2.
    pub fn separators(&self) -> &Separators {
        self.segments[0].separators()
    }

    /// All segments, MSH first.
    pub fn segments(&self) -> &[Segment<'a>] {
        &self.segments
    }

    /// The MSH segment.
    pub fn header(&self) -> &Segment<'a> {
        &self.segments[0]
    }

    /// The first segment with this id.
    pub fn segment(&self, id: &str) -> Option<&Segment<'a>> {
        self.segments.iter().find(|s| s.id() == id)
    }

    /// All segments with this id, in order.
    pub fn segments_with_id<'m>(&'m self, id: &'m str) -> impl Iterator<Item = &'m Segment<'a>> {
        self.segments.iter().filter(move |s| s.id() == id)
    }

    /// Occurrence `n` (1-based) of the segments with this id.
    pub fn segment_occurrence(&self, id: &str, n: usize) -> Option<&Segment<'a>> {
        self.segments
            .iter()
            .filter(|s| s.id() == id)
            .nth(n.checked_sub(1)?)
    }

    /// True if the input started with a UTF-8 byte order mark.
    pub fn has_bom(&self) -> bool {
        self.prefix.starts_with('\u{feff}')
    }

    /// What preceded MSH in the input: the BOM, if any, and blank lines.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The raw value at `path` (see [`crate::path`]); `Ok(None)` when the
    /// segment or element is absent, `Ok(Some(""))` when present but empty.
    pub fn get(&self, path: &str) -> Result<Option<&str>, PathError> {
        Ok(self.get_path(&Path::parse(path)?))
    }

    /// The unescaped text at `path`; see [`Message::get`].
    pub fn text(&self, path: &str) -> Result<Option<Cow<'_, str>>, PathError> {
        Ok(self.text_path(&Path::parse(path)?))
    }

    /// The raw value at a parsed path.
    pub fn get_path(&self, p: &Path) -> Option<&str> {
        self.resolve(p).map(|(raw, _)| raw)
    }

    /// The unescaped text at a parsed path.
    pub fn text_path(&self, p: &Path) -> Option<Cow<'_, str>> {
        let (raw, literal) = self.resolve(p)?;
        Some(if literal {
            Cow::Borrowed(raw)
        } else {
            unescape(raw, self.separators())
        })
    }

    fn resolve(&self, p: &Path) -> Option<(&str, bool)> {
        let seg = self.segment_occurrence(&p.segment, p.occurrence)?;
        let field = seg.field(p.field)?;
        let literal = seg.is_header() && p.field <= 2;
        if p.repetition.is_none() && p.component.is_none() {
            return Some((field.raw(), literal));
        }
        let rep = field.repetition(p.repetition.unwrap_or(1))?;
        let Some(c) = p.component else {
            return Some((rep.raw(), literal));
        };
        let comp = rep.component(c)?;
        match p.subcomponent {
            None => Some((comp.raw(), literal)),
            Some(s) => Some((comp.subcomponent(s)?, literal)),
        }
    }

    fn header_text(&self, field: usize, component: usize) -> Option<Cow<'_, str>> {
        let c = self.header().field(field)?.component(component)?;
        Some(c.text())
    }

    /// MSH-9.1, the message code (`ADT`, `ORU` ...).
    pub fn message_type(&self) -> Option<Cow<'_, str>> {
        self.header_text(9, 1)
    }

    /// MSH-9.2, the trigger event (`A01`, `R01` ...).
    pub fn trigger_event(&self) -> Option<Cow<'_, str>> {
        self.header_text(9, 2)
    }

    /// MSH-9.3, the message structure (`ADT_A01` ...), v2.3.1+.
    pub fn message_structure(&self) -> Option<Cow<'_, str>> {
        self.header_text(9, 3)
    }

    /// MSH-10, the message control id.
    pub fn control_id(&self) -> Option<Cow<'_, str>> {
        Some(self.header().field(10)?.text())
    }

    /// MSH-11.1, the processing id (`P`, `T`, `D`).
    pub fn processing_id(&self) -> Option<Cow<'_, str>> {
        self.header_text(11, 1)
    }

    /// MSH-12.1, the version id as written (`2.3.1`).
    pub fn version(&self) -> Option<Cow<'_, str>> {
        self.header_text(12, 1)
    }

    /// MSH-12.1 parsed; `None` when absent or not of the form `2.x[.y]`.
    pub fn version_parsed(&self) -> Option<Version> {
        Version::parse(&self.version()?)
    }

    /// MSH-3 raw (an HD: namespace^universal id^type).
    pub fn sending_application(&self) -> Option<&str> {
        Some(self.header().field(3)?.raw())
    }

    /// MSH-4 raw.
    pub fn sending_facility(&self) -> Option<&str> {
        Some(self.header().field(4)?.raw())
    }

    /// MSH-5 raw.
    pub fn receiving_application(&self) -> Option<&str> {
        Some(self.header().field(5)?.raw())
    }

    /// MSH-6 raw.
    pub fn receiving_facility(&self) -> Option<&str> {
        Some(self.header().field(6)?.raw())
    }

    /// Appends the encoded message: prefix, then every segment rebuilt from
    /// its fields with its own terminator.
    pub fn encode_into(&self, out: &mut String) {
        out.push_str(&self.prefix);
        for s in &self.segments {
            s.encode_into(out);
        }
    }

    /// The encoded message. For a parsed message this is byte-for-byte the
    /// input (BOM, separators, terminators and trailing blank lines included).
    pub fn encode(&self) -> String {
        let len = self
            .segments
            .iter()
            .map(|s| s.raw().len() + 2)
            .sum::<usize>();
        let mut out = String::with_capacity(len + self.prefix.len());
        self.encode_into(&mut out);
        out
    }

    /// JSON view for display: `{"separators": "|^~\\&", "segments": [...]}`
    /// with segments as in [`Segment::to_json`] (unescaped text).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "separators": self.separators().to_string(),
            "segments": self.segments.iter().map(Segment::to_json).collect::<Vec<_>>(),
        })
    }
}

/// An HL7 version `major.minor[.patch]`, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version (2).
    pub major: u8,
    /// Minor version (1..=8).
    pub minor: u8,
    /// Patch (the `1` of 2.5.1), 0 when absent.
    pub patch: u8,
}

impl Version {
    /// Parses `2.5`, `2.5.1` ...
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.trim().split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = match it.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if it.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    /// A version from its parts.
    pub const fn new(major: u8, minor: u8, patch: u8) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// True for 2.1 to 2.8.x, the versions this crate is tested against.
    pub fn is_supported(&self) -> bool {
        self.major == 2 && (1..=8).contains(&self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str = "MSH|^~\\&|SEND|SFAC|RECV|RFAC|20240101120000||ADT^A01^ADT_A01|CTRL1|P|2.5.1\r\
EVN|A01|20240101120000\r\
PID|1||111^^^H^MR~9434765919^^^NHS^NH||Smith\\S\\Jones^Ann||19800101|F\r\
OBX|1|ST|A||one\r\
OBX|2|ST|B||two\\T\\three\r\
OBX|3|ST|C||x&y^z\r\
ZNT|custom|data\r";

    #[test]
    fn parse_and_access() {
        let m = Message::parse(ADT).unwrap();
        assert_eq!(m.segments().len(), 7);
        assert_eq!(
            m.get("PID-3").unwrap(),
            Some("111^^^H^MR~9434765919^^^NHS^NH")
        );
        assert_eq!(m.get("PID-3[2]").unwrap(), Some("9434765919^^^NHS^NH"));
        assert_eq!(m.get("PID-3.1").unwrap(), Some("111"));
        assert_eq!(m.get("PID-3[2].4").unwrap(), Some("NHS"));
        assert_eq!(m.get("PID-3[3]").unwrap(), None);
        assert_eq!(m.get("PID-2").unwrap(), Some(""));
        assert_eq!(m.get("PID-30").unwrap(), None);
        assert_eq!(m.get("PID-5.1").unwrap(), Some("Smith\\S\\Jones"));
        assert_eq!(m.text("PID-5.1").unwrap().unwrap(), "Smith^Jones");
        assert_eq!(m.text("OBX[2]-5").unwrap().unwrap(), "two&three");
        assert_eq!(m.get("OBX[3]-5.1.2").unwrap(), Some("y"));
        assert_eq!(m.get("OBX[4]-5").unwrap(), None);
        assert_eq!(m.get("ZNT-2").unwrap(), Some("data"));
        assert_eq!(m.get("MSH-1").unwrap(), Some("|"));
        assert_eq!(m.get("MSH-2").unwrap(), Some("^~\\&"));
        assert_eq!(m.text("MSH-2").unwrap().unwrap(), "^~\\&");
        assert_eq!(m.get("MSH-2.1").unwrap(), Some("^~\\&"));
        assert_eq!(m.get("MSH-2.2").unwrap(), None);
        assert_eq!(m.get("MSH-9.1").unwrap(), Some("ADT"));
        assert!(m.get("PID-x").is_err());
        assert_eq!(m.message_type().unwrap(), "ADT");
        assert_eq!(m.trigger_event().unwrap(), "A01");
        assert_eq!(m.message_structure().unwrap(), "ADT_A01");
        assert_eq!(m.control_id().unwrap(), "CTRL1");
        assert_eq!(m.processing_id().unwrap(), "P");
        assert_eq!(m.version().unwrap(), "2.5.1");
        assert_eq!(m.version_parsed(), Some(Version::new(2, 5, 1)));
        assert_eq!(m.sending_application(), Some("SEND"));
        assert_eq!(m.sending_facility(), Some("SFAC"));
        assert_eq!(m.receiving_application(), Some("RECV"));
        assert_eq!(m.receiving_facility(), Some("RFAC"));
        assert_eq!(m.encode(), ADT);
    }

    #[test]
    fn terminators_bom_and_trailing_lines() {
        let input = "\u{feff}MSH|^~\\&|A\r\nPID|1\nPV1|I\rOBX|1\r\r\n\n";
        let m = Message::parse(input).unwrap();
        assert!(m.has_bom());
        assert_eq!(m.segments().len(), 4);
        assert_eq!(m.segments()[3].terminator(), "\r\r\n\n");
        assert_eq!(m.segments()[2].line(), 3);
        assert_eq!(m.encode(), input);
        let m = Message::parse("MSH|^~\\&").unwrap();
        assert_eq!(m.encode(), "MSH|^~\\&");
    }

    #[test]
    fn other_separators() {
        let input =
            "MSH^~|\\&^SEND^^^^20120918^^ADT~A24^CTRL^T^2.4\r\nPID^1^^11111~~~FOO&&0363|X\r\n";
        let m = Message::parse(input).unwrap();
        assert_eq!(m.separators().to_string(), "^~|\\&");
        assert_eq!(m.message_type().unwrap(), "ADT");
        assert_eq!(m.trigger_event().unwrap(), "A24");
        assert_eq!(m.get("PID-3[2].1").unwrap(), Some("X"));
        assert_eq!(m.get("PID-3.4.3").unwrap(), Some("0363"));
        assert_eq!(m.encode(), input);
    }

    #[test]
    fn errors() {
        let e = Message::parse("").unwrap_err();
        assert_eq!(e.message, "empty message");
        let e = Message::parse("\u{feff}\r\n\r\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (3, "empty message"));
        let e = Message::parse("PID|1\rMSH|^~\\&").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(
            e.message.starts_with("segment 1 does not start with MSH"),
            "{e}"
        );
        let e = Message::parse("MSH||A").unwrap_err();
        assert_eq!(
            (e.line, e.segment.as_deref(), e.field),
            (1, Some("MSH"), Some(2))
        );
        assert_eq!(e.message, "MSH-2 encoding characters missing");
        assert_eq!(
            e.to_string(),
            "line 1 (MSH-2): MSH-2 encoding characters missing"
        );
        let e = Message::parse("MSH").unwrap_err();
        assert_eq!(e.field, Some(1));
        let e = Message::parse("MSH|^~\\&|A\rPID|1\r\rpv1|x").unwrap_err();
        assert_eq!(e.line, 4);
        let e = Message::parse("MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B").unwrap_err();
        assert_eq!((e.line, e.segment.as_deref()), (3, Some("MSH")));
        let e = Message::parse("MSH|^~\\&|A\rBTS|1").unwrap_err();
        assert_eq!(e.segment.as_deref(), Some("BTS"));
        let e = Message::parse("FHS|^~\\&").unwrap_err();
        assert!(e.message.contains("parse_file"));
        let e = Message::parse_bytes(b"MSH|^~\\&|A\rPID|1|\xe9t\xe9").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("byte 17"), "{e}");
    }

    #[test]
    fn json_view() {
        let m = Message::parse("MSH|^~\\&|A\rPID|1||a^b&c~d||x\\S\\y").unwrap();
        let j = m.to_json();
        assert_eq!(j["separators"], "|^~\\&");
        assert_eq!(j["segments"][0]["fields"][0], serde_json::json!([["|"]]));
        assert_eq!(
            j["segments"][0]["fields"][1],
            serde_json::json!([["^~\\&"]])
        );
        let pid = &j["segments"][1];
        assert_eq!(pid["id"], "PID");
        assert_eq!(pid["fields"][1], serde_json::json!([]));
        assert_eq!(
            pid["fields"][2],
            serde_json::json!([["a", ["b", "c"]], ["d"]])
        );
        assert_eq!(pid["fields"][4], serde_json::json!([["x^y"]]));
    }

    #[test]
    fn owned() {
        let s = String::from("MSH|^~\\&|A\rPID|1");
        let m = Message::parse(&s).unwrap().into_owned();
        drop(s);
        assert_eq!(m.get("PID-1").unwrap(), Some("1"));
    }

    #[test]
    fn versions() {
        for v in [
            "2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8",
            "2.8.2",
        ] {
            assert!(Version::parse(v).unwrap().is_supported(), "{v}");
        }
        assert!(Version::parse("2.5.1") > Version::parse("2.5"));
        assert!(Version::parse("3.0").is_some_and(|v| !v.is_supported()));
        assert!(Version::parse("x").is_none());
    }
}
