//! Error types: [`ParseError`] for malformed input, [`PathError`] for malformed
//! accessor paths.

use std::fmt;

/// Why an input was rejected, and where.
///
/// `line` is the 1-based number of the line (segment) in the input given to
/// the parser, counting every line ended by CR, LF or CRLF, blank ones
/// included; for a message whose segments have no blank lines between them it
/// is the segment number. `segment` is the segment id when it could be read,
/// `field` the field number (HL7 numbering: `MSH-2` is `Some(2)`) when the
/// problem is inside one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based line (segment) number in the input.
    pub line: usize,
    /// The segment id, if it could be read.
    pub segment: Option<String>,
    /// The field number, if the problem is inside one field.
    pub field: Option<usize>,
    /// Human-readable description.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            segment: None,
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn in_segment(mut self, id: &str) -> Self {
        self.segment = Some(id.to_string());
        self
    }

    pub(crate) fn in_field(mut self, field: usize) -> Self {
        self.field = Some(field);
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        match (&self.segment, self.field) {
            (Some(s), Some(n)) => write!(f, " ({s}-{n})")?,
            (Some(s), None) => write!(f, " ({s})")?,
            (None, Some(n)) => write!(f, " (field {n})")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// A path such as `PID-3[2].4` that does not follow the grammar described in
/// [`crate::path`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HL7 path {path:?}: {message}")]
pub struct PathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}
