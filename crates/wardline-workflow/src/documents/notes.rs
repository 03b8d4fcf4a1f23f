//! Clinical notes (issue 18): filled in by the notes part.
