//! The clinical clock: what "now" is for the domain services, the pages and
//! the background jobs (an ED attendance's 4-hour clock, a Mental Health Act
//! section's expiry, a task's due date, the day a clinic list shows).
//!
//! It is injected ([`crate::FhirService::with_clock`]) so that tests and
//! training can move time instead of waiting for it. The store's own times
//! (`meta.lastUpdated`, the audit trail's `recorded`) and credentials
//! (token expiry, TOTP) stay on the system clock: a moved clinical clock
//! never back- or forward-dates the legal record of who did what when.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use wardline_fhir::datetime::now_ms;

/// A source of "now", in milliseconds since the Unix epoch.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now_ms())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(now_ms))
    }

    /// Any source of epoch milliseconds (a test's manual clock).
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// The system clock moved by the whole number of seconds written in
    /// `path` (signed; `14400` is four hours ahead). The file is read at each
    /// use, so whoever may write it moves the clock of a running server:
    /// `wardline serve --demo --clock-offset-file` (demonstration and
    /// training stores only) and the browser tests. An absent or empty file
    /// is no offset; one that does not hold a number is reported in the log
    /// and ignored (the system clock, never a guessed one).
    pub fn offset_file(path: PathBuf) -> Clock {
        Clock(Arc::new(move || {
            now_ms().saturating_add(offset_of(&path).saturating_mul(1000))
        }))
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }

    /// Now, in UTC.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.now_ms()) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
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

fn offset_of(path: &std::path::Path) -> i64 {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let text = text.trim();
    if text.is_empty() {
        return 0;
    }
    match text.trim_start_matches('+').parse::<i64>() {
        Ok(s) => s,
        Err(_) => {
            tracing::warn!(
                file = %path.display(),
                "the clock offset file does not hold a whole number of seconds; ignored"
            );
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_file_moves_the_clock_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let clock = Clock::offset_file(path.clone());
        let drift = |c: &Clock| c.now_ms() - now_ms();
        // Absent: the system clock (within a generous second of it).
        assert!(drift(&clock).abs() < 1_000);
        std::fs::write(&path, "14400\n").unwrap();
        assert!((drift(&clock) - 14_400_000).abs() < 1_000);
        std::fs::write(&path, "-60").unwrap();
        assert!((drift(&clock) + 60_000).abs() < 1_000);
        // Not a number: ignored, never guessed.
        std::fs::write(&path, "four hours").unwrap();
        assert!(drift(&clock).abs() < 1_000);
    }

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

    #[test]
    fn a_function_clock_is_what_it_says() {
        let c = Clock::from_fn(|| 1_767_225_600_000);
        assert_eq!(c.now().unix_timestamp(), 1_767_225_600);
    }
}
