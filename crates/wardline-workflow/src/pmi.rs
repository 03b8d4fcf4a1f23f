//! The Patient Master Index.
