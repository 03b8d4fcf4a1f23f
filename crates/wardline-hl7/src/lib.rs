//! HL7 v2 parsing and encoding for Wardline: the foundation of the HL7 v2
//! integration engine. No IO, no FHIR mapping.
//!
//! # Data model
//!
//! * A [`Message`] is a list of [`Segment`]s, the first being MSH. A file or
//!   stream ([`parse_file`]) is an [`Hl7File`]: messages and batch envelope
//!   segments (FHS, BHS, BTS, FTS) in input order.
//! * A [`Segment`] keeps its text (without terminator), its terminator and the
//!   byte ranges of its fields. Fields are numbered as HL7 numbers them:
//!   `MSH-1` is the field separator itself and `MSH-2` the encoding
//!   characters (likewise FHS and BHS); for other segments field 1 is the
//!   first after the id.
//! * Below fields, [`Field`] → [`Repetition`] → [`Component`] → subcomponent
//!   are zero-copy views split on demand. Every level has `raw()` (the text as
//!   written, escapes included) and `text()` (escape sequences decoded, see
//!   [`escape`]). `MSH-1`/`MSH-2` are literal: never split nor unescaped.
//! * Paths in HL7 notation (`PID-3[2].4.2`, `OBX[3]-5`, see [`path`]) address
//!   any element: [`Message::get`] (raw) and [`Message::text`] (unescaped).
//! * **Zero-copy:** `Message<'a>` borrows `&'a str` slices of the input
//!   (`Cow::Borrowed`); [`Message::into_owned`] gives a `Message<'static>`.
//!   Messages built with [`MessageBuilder`] or [`ack`] are owned.
//!
//! # Invariants
//!
//! * **Separators are read from MSH-1 and MSH-2** (FHS/BHS for envelopes), in
//!   the order component, repetition, escape, subcomponent, truncation (2.7+);
//!   never assumed. MSH-2 may have 1 to 5 characters; all delimiters must be
//!   distinct printable ASCII punctuation, otherwise the input is rejected
//!   (e.g. `^~ &`).
//! * **Byte-for-byte round trip:** for any accepted input, `encode()` of the
//!   parsed [`Message`] or [`Hl7File`] returns exactly the input: the BOM and
//!   blank lines before MSH are kept as the message's prefix, and each
//!   segment keeps its own terminator: the whole run of CR/LF after it (CR,
//!   LF, CRLF, mixed, and any blank lines that follow). Encoding rebuilds
//!   each segment from its fields. Nothing is normalised.
//! * Segments are ended by CR, LF or CRLF. A segment id is 3 upper-case
//!   letters or digits followed by the field separator or the end of line;
//!   anything else (comments, junk) is rejected with its line number.
//!   Z-segments are ordinary segments.
//! * **Text is UTF-8.** Bytes that are not UTF-8 are rejected with the line
//!   and byte offset ([`Message::parse_bytes`]); ISO-8859-1 input is decoded
//!   losslessly by the caller with [`charset::latin1_to_string`] (see
//!   [`charset`]).
//! * Errors are [`ParseError`]s: 1-based line (segment) number, segment id
//!   and field number when known, and a message such as
//!   `segment 1 does not start with MSH` or `MSH-2 encoding characters missing`.
//! * Versions are not restricted: 2.1 to 2.8 (and others) parse alike;
//!   [`Message::version_parsed`] reads MSH-12.
//!
//! # Example
//!
//! ```
//! use wardline_hl7::{AckCode, Message, ack};
//!
//! let input = "MSH|^~\\&|LAB|RFH|EPR|RFH|20240101||ORU^R01^ORU_R01|42|P|2.5.1\r\
//!              PID|1||123^^^RFH^MR~9434765919^^^NHS^NH||Smith^Ann\r";
//! let msg = Message::parse(input).unwrap();
//! assert_eq!(msg.get("PID-3[2].1").unwrap(), Some("9434765919"));
//! assert_eq!(msg.message_type().unwrap(), "ORU");
//! assert_eq!(msg.encode(), input);
//! let reply = ack(&msg, AckCode::AA, &[]);
//! assert_eq!(reply.get("MSA-2").unwrap(), Some("42"));
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod ack;
pub mod builder;
pub mod charset;
pub mod error;
pub mod escape;
pub mod file;
pub mod message;
pub mod mllp;
pub mod path;
pub mod segment;
pub mod separators;
pub mod tree;

pub use ack::{
    AckCode, AckCondition, AckMode, AckOptions, ErrorDetail, ErrorLocation, Severity, ack,
    ack_unparsed, ack_with, commit_ack, salvage_header,
};
pub use builder::{MessageBuilder, SegmentBuilder};
pub use error::{ParseError, PathError};
pub use escape::{escape, unescape};
pub use file::{FilePart, Hl7File, parse_file, parse_file_bytes, parse_messages};
pub use message::{Message, Version};
pub use path::Path;
pub use segment::{Component, Field, Repetition, Segment};
pub use separators::Separators;
