//! Read-only downtime (issue 22: business continuity): the one home of
//! "writes are switched off".
//!
//! Three causes put the service in downtime, and one check refuses every
//! write while it lasts:
//! * the operator's switch, `wardline downtime on|off`
//!   ([`FhirService::set_downtime`]): system data `downtime/switch` in the
//!   database, so every server on the database sees it; switching is
//!   audited (subtype `downtime-on` / `downtime-off`);
//! * `wardline serve --read-only` ([`FhirService::with_read_only`]): this
//!   process only, from its start;
//! * the database refusing writes while reads still work (a read-only
//!   replica, `default_transaction_read_only`, a read-only SQLite file):
//!   the first refused write turns downtime on by itself
//!   ([`FhirService::classify_refusal`]); after [`AUTO_RETRY`] the next
//!   write tries the database again, and downtime ends when one commits.
//!
//! The check ([`FhirService::check_writable`]) runs in `prepare_write` and
//! `delete_in` — the one write path every channel takes (REST, transaction
//! Bundles, the workflows' `Tx`, the HL7 v2 engine) — and again at commit
//! for a transaction that wrote resources. The refusal is
//! [`FhirError::downtime`]: 503 `no-store` saying since when and that
//! nothing was stored (REST adds `Retry-After`; the HL7 engine answers `AR`
//! "not stored, downtime"). Reads, sign-ins and audit events go on.
//!
//! The switch is read from the database at most once per
//! [`REFRESH_EVERY`] (when a transaction begins, outside it, and by the
//! pages through [`FhirService::downtime`]'s cache), so a switch made on one
//! server reaches the others within about a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wardline_fhir::FhirError;

use crate::{FhirService, R};

/// System-data namespace and key of the operator's switch.
pub const NAMESPACE: &str = "downtime";
pub const KEY: &str = "switch";

/// How stale the cached switch may be.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// How long a downtime the database caused lasts before a write tries the
/// database again.
pub const AUTO_RETRY: Duration = Duration::from_secs(30);

/// Why writes are off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// `wardline downtime on`.
    Operator,
    /// `wardline serve --read-only`.
    ReadOnlyServer,
    /// The database refused a write.
    DatabaseRefusesWrites,
}

impl Cause {
    pub fn code(self) -> &'static str {
        match self {
            Cause::Operator => "operator",
            Cause::ReadOnlyServer => "read-only-server",
            Cause::DatabaseRefusesWrites => "database-refuses-writes",
        }
    }
}

/// A downtime in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downtime {
    /// When it began (epoch ms, system clock).
    pub since_ms: i64,
    pub cause: Cause,
    /// Who switched it on (the operator's name), when known.
    pub by: Option<String>,
    pub reason: Option<String>,
}

#[derive(Default)]
pub(crate) struct State {
    read_only: Option<Downtime>,
    switch: Mutex<Switch>,
    auto: Mutex<Option<(Downtime, Instant)>>,
}

#[derive(Default)]
struct Switch {
    current: Option<Downtime>,
    refreshed: Option<Instant>,
}

/// The switch's stored form.
fn to_json(d: Option<&Downtime>, at_ms: i64, by: &str, reason: Option<&str>) -> String {
    match d {
        Some(d) => json!({"on": true, "since": d.since_ms, "by": by, "reason": reason}),
        None => json!({"on": false, "changed": at_ms, "by": by}),
    }
    .to_string()
}

fn from_json(text: &str) -> Option<Downtime> {
    let v: Value = serde_json::from_str(text).ok()?;
    if v["on"].as_bool() != Some(true) {
        return None;
    }
    Some(Downtime {
        since_ms: v["since"].as_i64()?,
        cause: Cause::Operator,
        by: v["by"].as_str().map(str::to_owned),
        reason: v["reason"].as_str().map(str::to_owned),
    })
}

/// Whether a store error's text is a database refusing writes (PostgreSQL
/// SQLSTATE 25006 "cannot execute … in a read-only transaction"; SQLite
/// "attempt to write a readonly database").
pub fn is_write_refusal(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("read-only transaction") || t.contains("readonly database")
}

impl FhirService {
    /// `wardline serve --read-only`: this process writes nothing from now
    /// on (reads, sign-ins and audit events go on).
    pub fn with_read_only(mut self) -> FhirService {
        self.downtime.read_only = Some(Downtime {
            since_ms: wardline_fhir::datetime::now_ms(),
            cause: Cause::ReadOnlyServer,
            by: None,
            reason: Some("the server was started with --read-only".into()),
        });
        self
    }

    /// [`FhirService::with_read_only`] when `on`.
    pub fn with_read_only_if(self, on: bool) -> FhirService {
        if on { self.with_read_only() } else { self }
    }

    /// The downtime in progress, if any, as last read (no I/O: the pages
    /// call it for their banner; [`FhirService::refresh_downtime`] reads the
    /// switch again).
    pub fn downtime(&self) -> Option<Downtime> {
        if let Some(d) = &self.downtime.read_only {
            return Some(d.clone());
        }
        if let Some(d) = self.switch().current.clone() {
            return Some(d);
        }
        self.auto_downtime()
    }

    fn switch(&self) -> std::sync::MutexGuard<'_, Switch> {
        self.downtime
            .switch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn auto_downtime(&self) -> Option<Downtime> {
        let auto = self
            .downtime
            .auto
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        auto.as_ref()
            .filter(|(_, at)| at.elapsed() < AUTO_RETRY)
            .map(|(d, _)| d.clone())
    }

    /// Reads the operator's switch from the database now.
    pub fn refresh_downtime(&self) -> R<Option<Downtime>> {
        let text = self.store.kv_get(NAMESPACE, KEY)?;
        let current = text.as_deref().and_then(from_json);
        let mut s = self.switch();
        s.current = current.clone();
        s.refreshed = Some(Instant::now());
        Ok(current)
    }

    /// Whether the cached switch is older than [`REFRESH_EVERY`] (no I/O:
    /// an async caller moves the refresh to a blocking thread only then).
    pub fn downtime_is_stale(&self) -> bool {
        self.switch()
            .refreshed
            .is_none_or(|at| at.elapsed() >= REFRESH_EVERY)
    }

    /// [`FhirService::refresh_downtime`] when the cached switch is older
    /// than [`REFRESH_EVERY`]; a failed read keeps what was known.
    pub fn refresh_downtime_if_stale(&self) {
        if self.downtime_is_stale()
            && let Err(e) = self.refresh_downtime()
        {
            tracing::debug!(error = %e, "the downtime switch could not be read");
        }
    }

    /// Turns the operator's downtime on (with `reason`) or off, durably and
    /// audited (subtype `downtime-on` / `downtime-off`) in the name of
    /// `access`. Turning it on when it is on keeps the time it began.
    pub fn set_downtime(
        &self,
        access: &dyn crate::Access,
        on: bool,
        reason: Option<&str>,
    ) -> R<Option<Downtime>> {
        let now = wardline_fhir::datetime::now_ms();
        let by = access.agent().name.clone();
        let state = self.transact(access, |tx| {
            let before = tx.kv_get(NAMESPACE, KEY)?.as_deref().and_then(from_json);
            let state = on.then(|| Downtime {
                since_ms: before.as_ref().map_or(now, |b| b.since_ms),
                cause: Cause::Operator,
                by: Some(by.clone()),
                reason: reason.map(str::to_owned),
            });
            tx.set_audit_subtype(
                crate::audit::WARDLINE_SUBTYPE,
                if on { "downtime-on" } else { "downtime-off" },
                "E",
            );
            tx.audit_record().query = Some(match reason {
                Some(r) => format!("downtime={}&reason={r}", if on { "on" } else { "off" }),
                None => format!("downtime={}", if on { "on" } else { "off" }),
            });
            tx.kv_put(NAMESPACE, KEY, &to_json(state.as_ref(), now, &by, reason))?;
            Ok(state)
        })?;
        let mut s = self.switch();
        s.current = state.clone();
        s.refreshed = Some(Instant::now());
        Ok(state)
    }

    /// Refuses a write while downtime lasts ([`FhirError::downtime`]).
    pub fn check_writable(&self) -> R<()> {
        match self.downtime() {
            Some(d) => Err(self.downtime_error(&d)),
            None => Ok(()),
        }
    }

    /// The refusal for `d`, naming the local time it began.
    pub fn downtime_error(&self, d: &Downtime) -> FhirError {
        FhirError::downtime(&self.config.time_zone.clock_time(d.since_ms))
    }

    /// A write's failure, looked at once: a database refusing writes turns
    /// downtime on by itself and is answered as downtime; a commit that
    /// succeeds ends such a downtime ([`FhirService::note_write_worked`]).
    pub fn classify_refusal(&self, e: FhirError) -> FhirError {
        if e.is_downtime() {
            return e;
        }
        let refused = e.status == 500 && e.issues.iter().any(|i| is_write_refusal(&i.diagnostics));
        if !refused {
            return e;
        }
        let d = {
            let mut auto = self
                .downtime
                .auto
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let since = auto
                .as_ref()
                .map_or_else(wardline_fhir::datetime::now_ms, |(d, _)| d.since_ms);
            let d = Downtime {
                since_ms: since,
                cause: Cause::DatabaseRefusesWrites,
                by: None,
                reason: Some("the database refuses writes".into()),
            };
            if auto.is_none() {
                tracing::warn!(
                    "the database refuses writes: read-only downtime until it accepts them again"
                );
            }
            *auto = Some((d.clone(), Instant::now()));
            d
        };
        self.downtime_error(&d)
    }

    /// A write committed: a downtime the database caused is over.
    pub(crate) fn note_write_worked(&self) {
        let mut auto = self
            .downtime
            .auto
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if auto.take().is_some() {
            tracing::info!("the database accepts writes again: downtime over");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_round_trips_and_off_is_none() {
        let d = Downtime {
            since_ms: 1_700_000_000_000,
            cause: Cause::Operator,
            by: Some("cli:downtime".into()),
            reason: Some("planned upgrade".into()),
        };
        let text = to_json(Some(&d), 0, "cli:downtime", Some("planned upgrade"));
        assert_eq!(from_json(&text), Some(d));
        assert_eq!(from_json(&to_json(None, 5, "x", None)), None);
        assert_eq!(from_json("not json"), None);
    }

    #[test]
    fn database_write_refusals_are_recognised() {
        assert!(is_write_refusal(
            "database error: db error: ERROR: cannot execute INSERT in a read-only transaction"
        ));
        assert!(is_write_refusal("attempt to write a readonly database"));
        assert!(!is_write_refusal(
            "duplicate key value violates unique constraint"
        ));
    }

    #[test]
    fn a_refusal_says_downtime_since_and_nothing_stored() {
        let e = FhirError::downtime("14:05");
        assert!(e.is_downtime());
        assert_eq!(e.status, 503);
        let text = &e.issues[0].diagnostics;
        assert!(
            text.starts_with("Read-only: downtime since 14:05"),
            "{text}"
        );
        assert!(text.contains("nothing was stored"), "{text}");
        assert!(!FhirError::unavailable("x").is_downtime());
    }
}
