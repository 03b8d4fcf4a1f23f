//! Clinical notes pages (issue 18): filled in by the notes part.
