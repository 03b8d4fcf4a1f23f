//! Results (issue 16: being built).

pub mod cumulative;
pub mod escalation;
pub mod inbox;
pub mod unmatched;
