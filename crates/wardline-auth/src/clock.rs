//! The clock the access policy reads: the system clock in production, a
//! clock a test moves ([`ManualClock`]) in tests. The type is the core's
//! one clock ([`wardline_core::clock`]); the server gives the policy the
//! same clinical clock as the domain services.
//!
//! The policy reads the time where a decision depends on it: a recently
//! finished encounter's window ([`crate::policy::relationship`]), a
//! Consent's period, a break-glass grant's expiry. Sign-in (lockout) and
//! token lifetimes keep the system clock: they are checked against it
//! elsewhere too.

pub use wardline_core::clock::{Clock, ManualClock};
