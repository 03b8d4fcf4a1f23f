//! Transfers of care pages (issue 18): filled in by the transfers part.
