//! Discharge summaries (issue 18): filled in by the discharge part.
