//! The clock the access policy reads: the system clock in production, a
//! clock a test moves ([`ManualClock`]) in tests.
//!
//! The policy reads the time where a decision depends on it: a recently
//! finished encounter's window ([`crate::policy::relationship`]), a
//! Consent's period, a break-glass grant's expiry. Sign-in (lockout) and
//! token lifetimes keep the system clock: they are checked against it
//! elsewhere too.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of "now", in milliseconds since the Unix epoch.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(wardline_fhir::datetime::now_ms))
    }

    /// A clock that reads `f`.
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now_ms())
    }
}

/// A clock that stands still until it is set or moved (tests).
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `ms`.
    pub fn at(ms: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the clock on by `ms` (back, when negative).
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// The [`Clock`] reading this one.
    pub fn clock(&self) -> Clock {
        let a = self.0.clone();
        Clock::from_fn(move || a.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let m = ManualClock::at(1_000);
        let c = m.clock();
        assert_eq!(c.now_ms(), 1_000);
        m.advance(500);
        assert_eq!(c.now_ms(), 1_500);
        m.set(7);
        assert_eq!(c.now_ms(), 7);
        let s = Clock::system().now_ms();
        assert!(s > 1_700_000_000_000, "{s}");
    }
}
