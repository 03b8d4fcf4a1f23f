//! Files and streams holding several messages, with or without batch
//! envelopes (FHS/BHS ... BTS/FTS).

use std::borrow::Cow;

use serde_json::Value;

use crate::error::ParseError;
use crate::message::Message;
use crate::segment::{Segment, segment_id, split_lines, split_prefix};
use crate::separators::Separators;

/// One item of a file, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilePart<'a> {
    /// A batch envelope segment: FHS, BHS, BTS or FTS.
    Envelope(Segment<'a>),
    /// A message (MSH and its segments).
    Message(Message<'a>),
}

/// A parsed file: envelope segments and messages in input order, so that
/// [`Hl7File::encode`] gives back the input byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7File<'a> {
    prefix: Cow<'a, str>,
    /// The envelope segments and messages, in order.
    pub parts: Vec<FilePart<'a>>,
}

/// Parses a file or stream of messages: a batch (`FHS`/`BHS` ...
/// `BTS`/`FTS`, possibly several batches in one file), or simply messages one
/// after another. A new message starts at every segment whose id is `MSH`
/// (text such as `MSH` inside a field never splits). Blank lines between
/// messages are tolerated and kept (they are part of the preceding segment's
/// terminator), as are a leading BOM and blank lines.
///
/// Each message and envelope segment uses the separators of its own header;
/// BTS and FTS use those of the most recent FHS/BHS/MSH.
pub fn parse_file(input: &str) -> Result<Hl7File<'_>, ParseError> {
    let (prefix, rest, first_line) = split_prefix(input);
    let lines = split_lines(rest, first_line);
    if lines.is_empty() {
        return Err(ParseError::new(first_line, "empty message"));
    }
    let mut parts: Vec<FilePart<'_>> = Vec::new();
    let mut current: Vec<Segment<'_>> = Vec::new();
    let mut last_seps: Option<Separators> = None;
    for (i, line) in lines.iter().enumerate() {
        let id = match segment_id(line.text, line.line) {
            Ok(id) => id,
            Err(e) if i == 0 => {
                return Err(ParseError {
                    message: "segment 1 does not start with MSH, FHS or BHS".into(),
                    ..e
                });
            }
            Err(e) => return Err(e),
        };
        match id {
            "MSH" | "FHS" | "BHS" => {
                flush(&mut current, &mut parts);
                let seg = Segment::parse_header(line)?;
                last_seps = Some(*seg.separators());
                if id == "MSH" {
                    current.push(seg);
                } else {
                    parts.push(FilePart::Envelope(seg));
                }
            }
            "BTS" | "FTS" => {
                flush(&mut current, &mut parts);
                let Some(seps) = last_seps else {
                    return Err(ParseError::new(
                        line.line,
                        "segment 1 does not start with MSH, FHS or BHS",
                    ));
                };
                parts.push(FilePart::Envelope(Segment::parse_body(line, seps)?));
            }
            _ => {
                let Some(seps) = current.first().map(|m| *m.separators()) else {
                    let msg = if i == 0 {
                        "segment 1 does not start with MSH, FHS or BHS".to_string()
                    } else {
                        format!("segment {id} is outside any message (no MSH before it)")
                    };
                    return Err(ParseError::new(line.line, msg).in_segment(id));
                };
                current.push(Segment::parse_body(line, seps)?);
            }
        }
    }
    flush(&mut current, &mut parts);
    Ok(Hl7File {
        prefix: Cow::Borrowed(prefix),
        parts,
    })
}

fn flush<'a>(current: &mut Vec<Segment<'a>>, parts: &mut Vec<FilePart<'a>>) {
    if !current.is_empty() {
        parts.push(FilePart::Message(Message::from_parts(
            "",
            std::mem::take(current),
        )));
    }
}

/// [`parse_file`] from bytes, which must be UTF-8 (see [`crate::charset`]).
pub fn parse_file_bytes(input: &[u8]) -> Result<Hl7File<'_>, ParseError> {
    parse_file(crate::charset::utf8(input)?)
}

/// The messages of a file or stream, envelopes dropped.
pub fn parse_messages(input: &str) -> Result<Vec<Message<'_>>, ParseError> {
    Ok(parse_file(input)?.into_messages())
}

impl<'a> Hl7File<'a> {
    /// The messages, in order.
    pub fn messages(&self) -> impl Iterator<Item = &Message<'a>> {
        self.parts.iter().filter_map(|p| match p {
            FilePart::Message(m) => Some(m),
            FilePart::Envelope(_) => None,
        })
    }

    /// The envelope segments (FHS, BHS, BTS, FTS), in order.
    pub fn envelopes(&self) -> impl Iterator<Item = &Segment<'a>> {
        self.parts.iter().filter_map(|p| match p {
            FilePart::Envelope(s) => Some(s),
            FilePart::Message(_) => None,
        })
    }

    /// The messages, envelopes dropped.
    pub fn into_messages(self) -> Vec<Message<'a>> {
        self.parts
            .into_iter()
            .filter_map(|p| match p {
                FilePart::Message(m) => Some(m),
                FilePart::Envelope(_) => None,
            })
            .collect()
    }

    /// True if the input started with a UTF-8 byte order mark.
    pub fn has_bom(&self) -> bool {
        self.prefix.starts_with('\u{feff}')
    }

    /// The whole file re-encoded: byte-for-byte the input.
    pub fn encode(&self) -> String {
        let mut out = String::from(&*self.prefix);
        for p in &self.parts {
            match p {
                FilePart::Envelope(s) => s.encode_into(&mut out),
                FilePart::Message(m) => m.encode_into(&mut out),
            }
        }
        out
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> Hl7File<'static> {
        Hl7File {
            prefix: Cow::Owned(self.prefix.into_owned()),
            parts: self
                .parts
                .into_iter()
                .map(|p| match p {
                    FilePart::Envelope(s) => FilePart::Envelope(s.into_owned()),
                    FilePart::Message(m) => FilePart::Message(m.into_owned()),
                })
                .collect(),
        }
    }

    /// JSON view: `{"envelopes": [segments], "messages": [messages]}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "envelopes": self.envelopes().map(Segment::to_json).collect::<Vec<_>>(),
            "messages": self.messages().map(Message::to_json).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch() {
        let input = "FHS|^~\\&|F\nBHS|^~\\&|B\nMSH|^~\\&|A||||||ADT^A01|1|P|2.4\nPID|1\nOBX||||MSH||||MSH\n\
MSH|^~\\&|A||||||ORU^R01|2|P|2.4\nOBX|1\nBTS|2\nFTS|1\n";
        let f = parse_file(input).unwrap();
        assert_eq!(f.messages().count(), 2);
        assert_eq!(
            f.envelopes()
                .map(|s| s.id().to_string())
                .collect::<Vec<_>>(),
            ["FHS", "BHS", "BTS", "FTS"]
        );
        let m: Vec<_> = f.messages().collect();
        assert_eq!(m[0].segments().len(), 3);
        assert_eq!(m[1].control_id().unwrap(), "2");
        assert_eq!(f.encode(), input);
        assert_eq!(f.to_json()["messages"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn stream_with_blank_lines() {
        let input = "\u{feff}MSH|^~\\&|A\rPID|1\n\nMSH|^~}|B\rPID|x}S}y\n\n";
        let f = parse_file(input).unwrap();
        assert!(f.has_bom());
        let ms = parse_messages(input).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[1].text("PID-1").unwrap().unwrap(), "x^y");
        assert_eq!(ms[1].segments()[1].line(), 5);
        assert_eq!(f.encode(), input);
    }

    #[test]
    fn errors() {
        assert_eq!(parse_file("").unwrap_err().message, "empty message");
        let e = parse_file("/*\nMSH|^~\\&").unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (1, "segment 1 does not start with MSH, FHS or BHS")
        );
        let e = parse_file("PID|1").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_file("BHS|^~\\&\nPID|1").unwrap_err();
        assert_eq!((e.line, e.segment.as_deref()), (2, Some("PID")));
        let e = parse_file("MSH|^~\\&\nPID|1\n// comment").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
