//! Acknowledgements: [`ack`] builds the ACK of a parsed message.
//!
//! The ACK uses the original's separators; MSH-3/4 and MSH-5/6 are the
//! original's MSH-5/6 and MSH-3/4 (copied raw), MSH-11 and MSH-12 are copied,
//! MSH-9 is `ACK^<trigger>^ACK` (the structure only from v2.3.1, the trigger
//! only when the original has one), and MSA-2 is the original MSH-10.
//!
//! Each [`ErrorDetail`] becomes one ERR segment:
//! * v2.5 and later (and when MSH-12 is missing or unreadable): ERR-2 the
//!   location (ERL: segment^sequence^field^repetition^component^subcomponent),
//!   ERR-3 the HL7 error code (table 0357), ERR-4 the severity, ERR-8 the
//!   human text;
//! * before v2.5: ERR-1 (ELD: segment^sequence^field^code&text&HL70357) with
//!   the human text as the code text, and MSA-3 the first error's text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::builder::MessageBuilder;
use crate::error::ParseError;
use crate::message::{Message, Version};
use crate::path::Path;

/// MSA-1 acknowledgement code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
    /// Commit accept (enhanced mode).
    CA,
    /// Commit error (enhanced mode).
    CE,
    /// Commit reject (enhanced mode).
    CR,
}

impl AckCode {
    /// The code as written in MSA-1.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }
}

impl AckCode {
    /// The code of an MSA-1 value, or `None`.
    pub fn parse(s: &str) -> Option<AckCode> {
        Some(match s.trim() {
            "AA" => AckCode::AA,
            "AE" => AckCode::AE,
            "AR" => AckCode::AR,
            "CA" => AckCode::CA,
            "CE" => AckCode::CE,
            "CR" => AckCode::CR,
            _ => return None,
        })
    }

    /// The enhanced-mode commit code of an outcome: accepted `CA`, error
    /// `CE`, reject `CR` (a commit code is returned as it is).
    pub fn commit(self) -> AckCode {
        match self {
            AckCode::AA | AckCode::CA => AckCode::CA,
            AckCode::AE | AckCode::CE => AckCode::CE,
            AckCode::AR | AckCode::CR => AckCode::CR,
        }
    }

    /// Whether the code says the message was accepted (`AA` or `CA`).
    pub fn is_accept(self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }
}

/// When an acknowledgement is wanted (table 0155, MSH-15 and MSH-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCondition {
    /// `AL`, and an empty or unknown value (HL7's default: always).
    Always,
    /// `NE`
    Never,
    /// `ER`: only on an error or reject.
    ErrorOnly,
    /// `SU`: only on success.
    SuccessOnly,
}

impl AckCondition {
    pub fn parse(s: &str) -> AckCondition {
        match s.trim().to_ascii_uppercase().as_str() {
            "NE" => AckCondition::Never,
            "ER" => AckCondition::ErrorOnly,
            "SU" => AckCondition::SuccessOnly,
            _ => AckCondition::Always,
        }
    }

    /// Whether an acknowledgement is sent for an outcome.
    pub fn wants(self, accepted: bool) -> bool {
        match self {
            AckCondition::Always => true,
            AckCondition::Never => false,
            AckCondition::ErrorOnly => !accepted,
            AckCondition::SuccessOnly => accepted,
        }
    }
}

/// The acknowledgement mode a message asks for: original when MSH-15 and
/// MSH-16 are both empty, else enhanced (an empty one of the two is `AL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    Original,
    Enhanced {
        /// MSH-15: the commit (accept) acknowledgement.
        accept: AckCondition,
        /// MSH-16: the application acknowledgement.
        application: AckCondition,
    },
}

impl AckMode {
    pub fn of(msg: &Message<'_>) -> AckMode {
        let field = |n: usize| {
            msg.header()
                .field(n)
                .map(|f| f.raw().trim().to_owned())
                .unwrap_or_default()
        };
        let (accept, application) = (field(15), field(16));
        if accept.is_empty() && application.is_empty() {
            AckMode::Original
        } else {
            AckMode::Enhanced {
                accept: AckCondition::parse(&accept),
                application: AckCondition::parse(&application),
            }
        }
    }
}

/// The enhanced-mode commit acknowledgement of an acknowledgement built by
/// [`ack`]: the same ACK (header, MSA-2, ERR segments) with MSA-1 the commit
/// code ([`AckCode::commit`]) and its own MSH-10 (the application ACK's
/// with `C` appended). `None` when `application_ack` has no MSH or MSA.
pub fn commit_ack(application_ack: &str) -> Option<String> {
    let sep = application_ack.get(3..4)?;
    let mut saw_msa = false;
    let mut out = Vec::new();
    for seg in application_ack.split('\r') {
        let mut fields: Vec<String> = seg.split(sep).map(str::to_owned).collect();
        match fields.first().map(String::as_str) {
            // MSH-1 is the separator itself, so MSH-n is fields[n - 1].
            Some("MSH") if fields.len() > 9 => fields[9].push('C'),
            Some("MSA") if fields.len() > 1 => {
                fields[1] = AckCode::parse(&fields[1])?.commit().as_str().to_owned();
                saw_msa = true;
            }
            _ => {}
        }
        out.push(fields.join(sep));
    }
    saw_msa.then(|| out.join("\r"))
}

/// ERR-4 severity (table 0516).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Severity {
    /// `E`
    #[default]
    Error,
    /// `W`
    Warning,
    /// `I`
    Information,
}

impl Severity {
    /// The code as written in ERR-4.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "E",
            Severity::Warning => "W",
            Severity::Information => "I",
        }
    }
}

/// HL7 table 0357 (message error condition codes).
pub mod error_code {
    /// Message accepted.
    pub const ACCEPTED: u16 = 0;
    /// Segment sequence error.
    pub const SEGMENT_SEQUENCE_ERROR: u16 = 100;
    /// Required field missing.
    pub const REQUIRED_FIELD_MISSING: u16 = 101;
    /// Data type error.
    pub const DATA_TYPE_ERROR: u16 = 102;
    /// Table value not found.
    pub const TABLE_VALUE_NOT_FOUND: u16 = 103;
    /// Unsupported message type.
    pub const UNSUPPORTED_MESSAGE_TYPE: u16 = 200;
    /// Unsupported event code.
    pub const UNSUPPORTED_EVENT_CODE: u16 = 201;
    /// Unsupported processing id.
    pub const UNSUPPORTED_PROCESSING_ID: u16 = 202;
    /// Unsupported version id.
    pub const UNSUPPORTED_VERSION_ID: u16 = 203;
    /// Unknown key identifier.
    pub const UNKNOWN_KEY_IDENTIFIER: u16 = 204;
    /// Duplicate key identifier.
    pub const DUPLICATE_KEY_IDENTIFIER: u16 = 205;
    /// Application record locked.
    pub const APPLICATION_RECORD_LOCKED: u16 = 206;
    /// Application internal error.
    pub const APPLICATION_INTERNAL_ERROR: u16 = 207;

    /// The table's text for a code.
    pub fn text(code: u16) -> &'static str {
        match code {
            0 => "Message accepted",
            100 => "Segment sequence error",
            101 => "Required field missing",
            102 => "Data type error",
            103 => "Table value not found",
            200 => "Unsupported message type",
            201 => "Unsupported event code",
            202 => "Unsupported processing id",
            203 => "Unsupported version id",
            204 => "Unknown key identifier",
            205 => "Duplicate key identifier",
            206 => "Application record locked",
            207 => "Application internal error",
            _ => "Error",
        }
    }
}

/// Where an error is: all numbers 1-based, `None` when not known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorLocation {
    /// Segment id.
    pub segment: String,
    /// Occurrence of that segment in the message (ERL-2 "segment sequence").
    pub sequence: Option<usize>,
    /// Field number.
    pub field: Option<usize>,
    /// Field repetition.
    pub repetition: Option<usize>,
    /// Component.
    pub component: Option<usize>,
    /// Subcomponent.
    pub subcomponent: Option<usize>,
}

impl From<&Path> for ErrorLocation {
    fn from(p: &Path) -> Self {
        ErrorLocation {
            segment: p.segment.clone(),
            sequence: Some(p.occurrence),
            field: Some(p.field),
            repetition: p.repetition,
            component: p.component,
            subcomponent: p.subcomponent,
        }
    }
}

/// One error to report in an ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Where, if known.
    pub location: Option<ErrorLocation>,
    /// HL7 table 0357 code (see [`error_code`]).
    pub code: u16,
    /// Severity.
    pub severity: Severity,
    /// Human-readable text (ERR-8, or the ELD code text before v2.5).
    pub text: String,
}

impl ErrorDetail {
    /// An error with a table 0357 code and a text, severity E, no location.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        ErrorDetail {
            location: None,
            code,
            severity: Severity::Error,
            text: text.into(),
        }
    }

    /// The same error located at `location`.
    pub fn at(mut self, location: impl Into<ErrorLocation>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// The same error with another severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

impl From<&ParseError> for ErrorDetail {
    /// Code 100 when no field is known, 102 otherwise; the location is the
    /// segment (sequence unknown) and field of the parse error.
    fn from(e: &ParseError) -> Self {
        let code = if e.field.is_some() {
            error_code::DATA_TYPE_ERROR
        } else {
            error_code::SEGMENT_SEQUENCE_ERROR
        };
        ErrorDetail {
            location: e.segment.as_ref().map(|s| ErrorLocation {
                segment: s.clone(),
                field: e.field,
                ..ErrorLocation::default()
            }),
            code,
            severity: Severity::Error,
            text: e.to_string(),
        }
    }
}

/// What [`ack_with`] cannot take from the original message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckOptions {
    /// MSH-10 of the ACK; default: the UTC time and a process-wide counter
    /// (20 characters, unique within the process).
    pub control_id: Option<String>,
    /// MSH-7 of the ACK; default: now, UTC, `YYYYMMDDHHMMSS+0000`.
    pub timestamp: Option<String>,
}

/// The ACK of `msg` with `code` and one ERR segment per error (see the
/// module doc); MSH-7 is now and MSH-10 generated.
pub fn ack(msg: &Message<'_>, code: AckCode, errors: &[ErrorDetail]) -> Message<'static> {
    ack_with(msg, code, errors, &AckOptions::default())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// [`ack`] with the ACK's own control id and timestamp given.
pub fn ack_with(
    msg: &Message<'_>,
    code: AckCode,
    errors: &[ErrorDetail],
    opts: &AckOptions,
) -> Message<'static> {
    let seps = *msg.separators();
    let now = utc_timestamp();
    let timestamp = opts
        .timestamp
        .clone()
        .unwrap_or_else(|| format!("{now}+0000"));
    let control_id = opts.control_id.clone().unwrap_or_else(|| {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        format!("{now}{n:06}")
    });
    let version = msg.version_parsed();
    let new_style = version.is_none_or(|v| v >= Version::new(2, 5, 0));
    let header_raw = |n: usize| msg.header().field(n).map_or("", |f| f.raw());

    let mut b = MessageBuilder::new(seps);
    let msh = b.msh();
    msh.set_raw(3, header_raw(5))
        .set_raw(4, header_raw(6))
        .set_raw(5, header_raw(3))
        .set_raw(6, header_raw(4))
        .set(7, &timestamp)
        .set_component(9, 1, "ACK");
    let trigger = msg.trigger_event().unwrap_or_default();
    if !trigger.is_empty() {
        msh.set_component(9, 2, &trigger);
    }
    if version.is_none_or(|v| v >= Version::new(2, 3, 1)) && !trigger.is_empty() {
        msh.set_component(9, 3, "ACK");
    }
    msh.set(10, &control_id)
        .set_raw(11, header_raw(11))
        .set_raw(12, header_raw(12));

    let msa = b.segment("MSA");
    msa.set(1, code.as_str())
        .set(2, &msg.control_id().unwrap_or_default());
    if let Some(first) = errors.first().filter(|_| !new_style) {
        msa.set(3, &first.text);
    }

    for e in errors {
        let err = b.segment("ERR");
        let loc = e.location.as_ref();
        if new_style {
            if let Some(l) = loc {
                err.set_component(2, 1, &l.segment);
                let parts = [
                    l.sequence.or(Some(1)),
                    l.field,
                    l.repetition,
                    l.component,
                    l.subcomponent,
                ];
                for (k, n) in parts.into_iter().enumerate() {
                    if let Some(n) = n {
                        err.set_component(2, k + 2, &n.to_string());
                    }
                }
            }
            err.set_component(3, 1, &e.code.to_string())
                .set_component(3, 2, error_code::text(e.code))
                .set_component(3, 3, "HL70357")
                .set(4, e.severity.as_str())
                .set(8, &e.text);
        } else {
            if let Some(l) = loc {
                err.set_component(1, 1, &l.segment).set_component(
                    1,
                    2,
                    &l.sequence.unwrap_or(1).to_string(),
                );
                if let Some(f) = l.field {
                    err.set_component(1, 3, &f.to_string());
                }
            }
            err.set_at(1, 1, 4, 1, &e.code.to_string())
                .set_at(1, 1, 4, 2, &e.text)
                .set_at(1, 1, 4, 3, "HL70357");
        }
    }
    b.build()
        .expect("an ACK is well-formed by construction: fixed segment ids, escaped values")
}

/// The ACK for an input that could not be parsed as a [`Message`] (for an
/// MLLP listener that must still answer): when the first line is a readable
/// MSH, the ACK is built from it as by [`ack`] (its separators, swapped
/// applications, MSA-2 = its MSH-10); otherwise from an empty MSH with the
/// standard separators `|^~\&` (MSA-2 empty). One ERR segment carries the
/// parse error (see `From<&ParseError> for ErrorDetail`). Use
/// [`AckCode::AR`] (or `AE`) as `code`.
pub fn ack_unparsed(input: &[u8], code: AckCode, error: &ParseError) -> Message<'static> {
    let errors = [ErrorDetail::from(error)];
    match salvage_header(input) {
        Some(m) => ack(&m, code, &errors),
        None => {
            let empty = Message::parse("MSH|^~\\&").expect("a valid MSH");
            ack(&empty, code, &errors)
        }
    }
}

/// The first segment of input that did not parse as a whole, as a message
/// of its own, when it is a readable MSH (so that its sender, type and
/// control id can still be used).
pub fn salvage_header(input: &[u8]) -> Option<Message<'static>> {
    let text = String::from_utf8_lossy(input);
    let text = text
        .trim_start_matches('\u{feff}')
        .trim_start_matches(['\r', '\n']);
    let first = text.split(['\r', '\n']).next().unwrap_or("");
    Message::parse(first).ok().map(Message::into_owned)
}

/// Now, UTC, as `YYYYMMDDHHMMSS`.
fn utc_timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> AckOptions {
        AckOptions {
            control_id: Some("ACK1".into()),
            timestamp: Some("20240102030405".into()),
        }
    }

    #[test]
    fn clock_format() {
        assert_eq!(format_utc(0), "19700101000000");
        assert_eq!(format_utc(951_782_400), "20000229000000");
        assert_eq!(format_utc(1_704_164_645), "20240102030405");
        assert_eq!(utc_timestamp().len(), 14);
    }

    #[test]
    fn accept_v25() {
        let m = Message::parse(
            "MSH|^~\\&|SEND^1.2^ISO|SF|RECV|RF|2024||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1",
        )
        .unwrap();
        let a = ack_with(&m, AckCode::AA, &[], &opts());
        assert_eq!(
            a.encode(),
            "MSH|^~\\&|RECV|RF|SEND^1.2^ISO|SF|20240102030405||ACK^A01^ACK|ACK1|P|2.5.1\rMSA|AA|C1\r"
        );
        let generated = ack(&m, AckCode::AA, &[]);
        assert_eq!(generated.control_id().unwrap().len(), 20);
    }

    #[test]
    fn errors_v25_and_v23() {
        let m = Message::parse("MSH|^~\\&|S|SF|R|RF|2024||ORU^R01|C9|T|2.5\rPID|1").unwrap();
        let e = ErrorDetail::new(error_code::REQUIRED_FIELD_MISSING, "PID-3 missing: a|b")
            .at(&Path::parse("PID-3").unwrap());
        let a = ack_with(&m, AckCode::AE, std::slice::from_ref(&e), &opts());
        assert_eq!(
            a.segments()[2].raw(),
            "ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 missing: a\\F\\b"
        );
        assert_eq!(a.text("ERR-8").unwrap().unwrap(), "PID-3 missing: a|b");
        assert_eq!(a.get("MSA-2").unwrap(), Some("C9"));

        let m = Message::parse("MSH|^~\\&|S|SF|R|RF|2024||ORU^R01|C9|T|2.3\rPID|1").unwrap();
        let a = ack_with(&m, AckCode::AR, &[e], &opts());
        assert_eq!(a.get("MSH-9").unwrap(), Some("ACK^R01"));
        assert_eq!(a.text("MSA-3").unwrap().unwrap(), "PID-3 missing: a|b");
        assert_eq!(
            a.segments()[2].raw(),
            "ERR|PID^1^3^101&PID-3 missing: a\\F\\b&HL70357"
        );
    }

    #[test]
    fn unparsed_inputs() {
        let input = b"MSH^~|\\&^S^SF^R^RF^2024^^ADT~A01^C7^P^2.5\rPID^1\rpv1^x";
        let err = Message::parse_bytes(input).unwrap_err();
        let a = ack_unparsed(input, AckCode::AR, &err);
        assert_eq!(a.separators().field, '^');
        assert_eq!(a.get("MSA-1").unwrap(), Some("AR"));
        assert_eq!(a.get("MSA-2").unwrap(), Some("C7"));
        assert_eq!(a.get("MSH-5").unwrap(), Some("S"));
        assert!(
            a.text("ERR-8")
                .unwrap()
                .unwrap()
                .starts_with("line 3: invalid segment id")
        );
        let junk = b"\xff\xfegarbage";
        let err = Message::parse_bytes(junk).unwrap_err();
        let a = ack_unparsed(junk, AckCode::AR, &err);
        assert_eq!(a.separators(), &crate::Separators::default());
        assert_eq!(a.get("MSA-2").unwrap(), Some(""));
        assert!(a.text("ERR-8").unwrap().unwrap().contains("invalid UTF-8"));
    }

    #[test]
    fn keeps_original_separators() {
        let m = Message::parse("MSH^~|\\&^S^SF^R^RF^2024^^ADT~A24^C2^T^2.4\r\n").unwrap();
        let e = ErrorDetail::from(&ParseError::new(3, "bad").in_segment("PID").in_field(3));
        let a = ack_with(&m, AckCode::AE, &[e], &opts());
        assert_eq!(a.separators(), m.separators());
        assert!(
            a.encode()
                .starts_with("MSH^~|\\&^R^RF^S^SF^20240102030405^^ACK~A24~ACK^ACK1^T^2.4\r")
        );
        assert_eq!(a.get("ERR-1.4.1").unwrap(), Some("102"));
    }
}
