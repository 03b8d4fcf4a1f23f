//! The arithmetic of the drug round, with no store: the dose slots a
//! prescription's timing gives in a window (in the trust's time zone), the
//! state of a slot at a moment, and the as-required (PRN) limits — the
//! minimum interval and the maximum in any 24 hours.
//!
//! **Slots.** A regular (or variable-dose) prescription's
//! `timing.repeat.timeOfDay` are wall-clock times in the trust's zone: 08:00
//! is 08:00 GMT in winter and 08:00 BST in summer, so the instants move by
//! an hour across a clock change and the day of the change has the same
//! doses as any other. A time the clock skips (01:30 on the spring change)
//! is given at the same moment an hour later by the clock (02:30 BST); a
//! time the clock passes twice (01:30 on the autumn change) is one dose, at
//! the first (jiff's `compatible` disambiguation). `period`/`periodUnit`
//! of `d` (N days) or `wk` (N weeks) count from the start day; a period
//! under a day is not a drug-round schedule (those are infusions) and
//! gives no slots. `dayOfWeek` keeps only those days. A once-only
//! prescription's slot is `timing.event[0]`. Start and stop are
//! `dispenseRequest.validityPeriod`: a slot is due from the start (or
//! `authoredOn`) and before the stop — a stop given as a date keeps that
//! whole day, one with a time ends at that instant.

use serde_json::Value;
use time::{Duration, OffsetDateTime};
use wardline_fhir::datetime::{LocalZone, parse_range_in};

/// A scheduled dose may be given from this long before its time.
pub const EARLY: Duration = Duration::minutes(60);
/// A scheduled dose is late (overdue) this long after its time.
pub const GRACE: Duration = Duration::minutes(60);
/// A time-critical medicine's dose is late this long after its time.
pub const TIME_CRITICAL_GRACE: Duration = Duration::minutes(30);

/// One scheduled dose time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Slot {
    /// The instant (UTC).
    #[serde(skip)]
    pub at: OffsetDateTime,
    /// The local day, `YYYY-MM-DD`.
    pub day: String,
    /// The local clock time, `HH:MM`.
    pub time: String,
}

fn tz_of(zone: &LocalZone) -> jiff::tz::TimeZone {
    jiff::tz::db()
        .get(zone.name())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

fn to_ts(t: OffsetDateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_second(t.unix_timestamp()).ok()
}

fn from_ts(ts: jiff::Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(ts.as_second()).ok()
}

/// An instant as the trust's clock shows it: (`YYYY-MM-DD`, `HH:MM`).
pub fn local(zone: &LocalZone, t: OffsetDateTime) -> (String, String) {
    match to_ts(t) {
        Some(ts) => {
            let dt = tz_of(zone).to_datetime(ts);
            (
                format!("{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day()),
                format!("{:02}:{:02}", dt.hour(), dt.minute()),
            )
        }
        None => (String::new(), String::new()),
    }
}

/// `YYYY-MM-DD HH:MM` on the trust's clock.
pub fn local_text(zone: &LocalZone, t: OffsetDateTime) -> String {
    let (d, h) = local(zone, t);
    format!("{d} {h}")
}

fn slot(zone: &LocalZone, at: OffsetDateTime) -> Slot {
    let (day, time) = local(zone, at);
    Slot { at, day, time }
}

/// A FHIR date/dateTime as an instant: its start (`end` false) or, for a
/// value without a time, the end of its day (`end` true).
pub fn instant_of(s: &str, zone: &LocalZone, end: bool) -> Option<OffsetDateTime> {
    let (lo, hi) = parse_range_in(s, zone)?;
    let ms = if end && !s.contains('T') { hi } else { lo };
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `[start, stop)` of a prescription (see the module documentation).
pub fn validity(mr: &Value, zone: &LocalZone) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
    let vp = &mr["dispenseRequest"]["validityPeriod"];
    let start = vp["start"]
        .as_str()
        .or_else(|| mr["authoredOn"].as_str())
        .and_then(|s| instant_of(s, zone, false));
    let stop = vp["end"].as_str().and_then(|s| instant_of(s, zone, true));
    (start, stop)
}

fn time_of_day(s: &str) -> Option<(i8, i8, i8)> {
    let mut it = s.split(':');
    let h: i8 = it.next()?.parse().ok()?;
    let m: i8 = it.next()?.parse().ok()?;
    let sec: i8 = it.next().map_or(Some(0), |x| {
        x.split('.').next().and_then(|w| w.parse().ok())
    })?;
    ((0..24).contains(&h) && (0..60).contains(&m) && (0..60).contains(&sec)).then_some((h, m, sec))
}

/// The period of a repeat in whole days (`None`: under a day, or a unit the
/// drug round does not schedule).
fn period_days(repeat: &Value) -> Option<i64> {
    let period = repeat["period"].as_f64().unwrap_or(1.0);
    let days = match repeat["periodUnit"].as_str().unwrap_or("d") {
        "d" => period,
        "wk" => period * 7.0,
        _ => return None,
    };
    (days >= 1.0 && days.fract() == 0.0).then_some(days as i64)
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The scheduled dose slots of a prescription in `[from, to)`, in time
/// order, whatever its status (the caller decides what is due). Empty for
/// an as-required prescription, an infusion, or a timing the drug round
/// cannot schedule.
pub fn slots(mr: &Value, zone: &LocalZone, from: OffsetDateTime, to: OffsetDateTime) -> Vec<Slot> {
    use super::super::{Kind, kind};
    let (start, stop) = validity(mr, zone);
    let within = |t: OffsetDateTime| {
        t >= from && t < to && start.is_none_or(|s| t >= s) && stop.is_none_or(|e| t < e)
    };
    let timing = &mr["dosageInstruction"][0]["timing"];
    match kind(mr) {
        Kind::AsRequired | Kind::Infusion => Vec::new(),
        Kind::OnceOnly => timing["event"][0]
            .as_str()
            .and_then(|e| instant_of(e, zone, false))
            // A once-only dose is due at its time whatever the validity.
            .filter(|t| *t >= from && *t < to)
            .map(|t| vec![slot(zone, t)])
            .unwrap_or_default(),
        Kind::Regular | Kind::VariableDose => {
            let repeat = &timing["repeat"];
            let times: Vec<(i8, i8, i8)> = repeat["timeOfDay"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().and_then(time_of_day))
                .collect();
            let Some(every) = period_days(repeat) else {
                return Vec::new();
            };
            let days: Vec<&str> = repeat["dayOfWeek"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let tz = tz_of(zone);
            let (Some(f), Some(t)) = (to_ts(from), to_ts(to)) else {
                return Vec::new();
            };
            let anchor = start.and_then(to_ts).map(|s| tz.to_datetime(s).date());
            let mut day = tz
                .to_datetime(f)
                .date()
                .yesterday()
                .unwrap_or(jiff::civil::Date::MIN);
            let last = tz
                .to_datetime(t)
                .date()
                .tomorrow()
                .unwrap_or(jiff::civil::Date::MAX);
            let mut out = Vec::new();
            while day <= last {
                let on_period = anchor.is_none_or(|a| {
                    let n = (day - a).get_days() as i64;
                    // `day - a` is calendar days; negative days are before the start.
                    n >= 0 && n % every == 0
                });
                let weekday = WEEKDAYS[day.weekday().to_monday_zero_offset() as usize];
                if on_period && (days.is_empty() || days.contains(&weekday)) {
                    for (h, m, s) in &times {
                        let civil = day.at(*h, *m, *s, 0);
                        if let Some(at) = tz
                            .to_ambiguous_timestamp(civil)
                            .compatible()
                            .ok()
                            .and_then(from_ts)
                            .filter(|at| within(*at))
                        {
                            out.push(slot(zone, at));
                        }
                    }
                }
                match day.tomorrow() {
                    Ok(d) => day = d,
                    Err(_) => break,
                }
            }
            out.sort_by_key(|s| s.at);
            out.dedup_by_key(|s| s.at);
            out
        }
    }
}

/// The state of a slot nobody has recorded, at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timeliness {
    /// More than [`EARLY`] before its time.
    NotYetDue,
    /// From [`EARLY`] before its time to the grace after it.
    Due,
    /// Past its time and the grace.
    Overdue,
}

/// The grace after a slot's time before it is late.
pub fn grace(time_critical: bool) -> Duration {
    if time_critical {
        TIME_CRITICAL_GRACE
    } else {
        GRACE
    }
}

/// Whether an unrecorded slot is not yet due, due or overdue at `now`.
pub fn timeliness(at: OffsetDateTime, now: OffsetDateTime, time_critical: bool) -> Timeliness {
    if now < at - EARLY {
        Timeliness::NotYetDue
    } else if now <= at + grace(time_critical) {
        Timeliness::Due
    } else {
        Timeliness::Overdue
    }
}

// ───────────────────────── as-required (PRN) limits ─────────────────────────

/// An as-required prescription's limits, in the unit of its dose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrnLimits {
    /// The minimum interval between doses.
    pub interval: Option<Duration>,
    /// The most that may be given in any 24 hours.
    pub max_24h: Option<f64>,
}

/// Why an as-required dose may not be given now, with when it may.
#[derive(Debug, Clone, PartialEq)]
pub enum PrnRefusal {
    /// Sooner than the minimum interval after (or before) another dose.
    TooSoon {
        last: OffsetDateTime,
        next: Option<OffsetDateTime>,
    },
    /// It would take the doses in some 24 hours past the maximum.
    OverMax {
        given: f64,
        next: Option<OffsetDateTime>,
    },
}

const DAY: Duration = Duration::hours(24);

fn sum_in(
    doses: &[(OffsetDateTime, f64)],
    lo_excl: OffsetDateTime,
    hi_incl: OffsetDateTime,
) -> f64 {
    doses
        .iter()
        .filter(|(t, _)| *t > lo_excl && *t <= hi_incl)
        .map(|(_, a)| a)
        .sum()
}

/// The earliest moment from `from` at which `amount` may be given after
/// the `doses` given (each `(when, how much)`), looking only at doses up to
/// that moment; `None` when `amount` alone is over the maximum.
pub fn next_allowed(
    doses: &[(OffsetDateTime, f64)],
    amount: f64,
    limits: PrnLimits,
    from: OffsetDateTime,
) -> Option<OffsetDateTime> {
    const EPS: f64 = 1e-9;
    if limits.max_24h.is_some_and(|m| amount > m + EPS) {
        return None;
    }
    let mut t = from;
    // Each step moves t forward past one dose; bounded by the doses' count.
    for _ in 0..=(2 * doses.len() + 2) {
        let mut moved = false;
        if let Some(iv) = limits.interval
            && let Some(last) = doses
                .iter()
                .map(|(d, _)| *d)
                .filter(|d| *d <= t && t - *d < iv)
                .max()
        {
            t = last + iv;
            moved = true;
        }
        if let Some(max) = limits.max_24h {
            let mut window: Vec<(OffsetDateTime, f64)> = doses
                .iter()
                .copied()
                .filter(|(d, _)| *d > t - DAY && *d <= t)
                .collect();
            window.sort_by_key(|(d, _)| *d);
            let mut sum: f64 = window.iter().map(|(_, a)| a).sum();
            if sum + amount > max + EPS {
                for (d, a) in &window {
                    sum -= a;
                    if sum + amount <= max + EPS {
                        t = *d + DAY;
                        moved = true;
                        break;
                    }
                }
            }
        }
        if !moved {
            return Some(t);
        }
    }
    Some(t)
}

/// Whether `amount` may be given at `at` after (and among) `doses`: no
/// other dose within the minimum interval either side, and no 24 hours
/// holding more than the maximum with it.
pub fn prn_check(
    doses: &[(OffsetDateTime, f64)],
    at: OffsetDateTime,
    amount: f64,
    limits: PrnLimits,
) -> Result<(), PrnRefusal> {
    const EPS: f64 = 1e-9;
    if let Some(iv) = limits.interval
        && let Some(clash) = doses
            .iter()
            .map(|(d, _)| *d)
            .filter(|d| (*d - at).abs() < iv)
            .max()
    {
        return Err(PrnRefusal::TooSoon {
            last: clash,
            next: next_allowed(doses, amount, limits, at),
        });
    }
    if let Some(max) = limits.max_24h {
        // Every 24 hours holding `at` ends at `at` or at a later dose.
        let ends = std::iter::once(at).chain(
            doses
                .iter()
                .map(|(d, _)| *d)
                .filter(|d| *d > at && *d < at + DAY),
        );
        for end in ends {
            let given = sum_in(doses, end - DAY, end);
            if given + amount > max + EPS {
                return Err(PrnRefusal::OverMax {
                    given: sum_in(doses, at - DAY, at),
                    next: next_allowed(doses, amount, limits, at),
                });
            }
        }
    }
    Ok(())
}

/// A quantity in `to`'s unit, where the units are the same or both units of
/// mass; `None` when they cannot be compared.
pub fn convert(value: f64, from: &str, to: &str) -> Option<f64> {
    fn norm(u: &str) -> String {
        let u = u.trim().to_lowercase();
        u.strip_suffix('s')
            .filter(|s| !s.is_empty() && *s != "m")
            .map(str::to_owned)
            .unwrap_or(u)
    }
    fn grams(u: &str) -> Option<f64> {
        Some(match u {
            "kg" => 1e3,
            "g" | "gram" => 1.0,
            "mg" | "milligram" => 1e-3,
            "ug" | "mcg" | "µg" | "microgram" => 1e-6,
            "ng" | "nanogram" => 1e-9,
            _ => return None,
        })
    }
    let (f, t) = (norm(from), norm(to));
    if f == t {
        return Some(value);
    }
    Some(value * grams(&f)? / grams(&t)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use time::macros::datetime;

    fn regular(times: &[&str], start: &str, end: Option<&str>) -> Value {
        let mut mr = json!({"resourceType": "MedicationRequest", "status": "active",
            "dosageInstruction": [{"timing": {"repeat": {"timeOfDay": times, "frequency": times.len(), "period": 1, "periodUnit": "d"}}}],
            "dispenseRequest": {"validityPeriod": {"start": start}}});
        if let Some(e) = end {
            mr["dispenseRequest"]["validityPeriod"]["end"] = json!(e);
        }
        mr
    }

    fn times(s: &[Slot]) -> Vec<String> {
        s.iter().map(|s| format!("{} {}", s.day, s.time)).collect()
    }

    #[test]
    fn regular_times_are_the_trusts_clock_in_winter_and_summer() {
        let z = LocalZone::london();
        let mr = regular(&["08:00:00", "20:00:00"], "2026-01-01T00:00:00Z", None);
        let w = slots(
            &mr,
            &z,
            datetime!(2026-01-10 00:00 UTC),
            datetime!(2026-01-11 00:00 UTC),
        );
        assert_eq!(
            w.iter().map(|s| s.at).collect::<Vec<_>>(),
            vec![
                datetime!(2026-01-10 08:00 UTC),
                datetime!(2026-01-10 20:00 UTC)
            ]
        );
        // Summer: 08:00 BST is 07:00 UTC.
        let s = slots(
            &mr,
            &z,
            datetime!(2026-07-10 00:00 UTC),
            datetime!(2026-07-11 00:00 UTC),
        );
        assert_eq!(s[0].at, datetime!(2026-07-10 07:00 UTC));
        assert_eq!(s[0].time, "08:00");
        // The same prescription in UTC.
        let u = slots(
            &mr,
            &LocalZone::utc(),
            datetime!(2026-07-10 00:00 UTC),
            datetime!(2026-07-11 00:00 UTC),
        );
        assert_eq!(u[0].at, datetime!(2026-07-10 08:00 UTC));
    }

    #[test]
    fn clock_change_days_have_every_dose_once() {
        let z = LocalZone::london();
        // 29 March 2026: 01:00 GMT → 02:00 BST. 01:30 does not exist.
        let mr = regular(
            &["01:30:00", "08:00:00", "22:00:00"],
            "2026-03-01T00:00:00Z",
            None,
        );
        let s = slots(
            &mr,
            &z,
            datetime!(2026-03-28 23:00 UTC),
            datetime!(2026-03-29 23:00 UTC),
        );
        assert_eq!(
            times(&s),
            vec!["2026-03-29 02:30", "2026-03-29 08:00", "2026-03-29 22:00"]
        );
        assert_eq!(s[0].at, datetime!(2026-03-29 01:30 UTC));
        assert_eq!(s[1].at, datetime!(2026-03-29 07:00 UTC));
        // 25 October 2026: 02:00 BST → 01:00 GMT. 01:30 happens twice: one dose.
        let s = slots(
            &mr,
            &z,
            datetime!(2026-10-24 23:00 UTC),
            datetime!(2026-10-26 00:00 UTC),
        );
        assert_eq!(
            times(&s),
            vec!["2026-10-25 01:30", "2026-10-25 08:00", "2026-10-25 22:00"]
        );
        assert_eq!(s[0].at, datetime!(2026-10-25 00:30 UTC));
        assert_eq!(s[1].at, datetime!(2026-10-25 08:00 UTC));
    }

    #[test]
    fn start_and_stop_bound_the_slots() {
        let z = LocalZone::london();
        let mr = regular(
            &["08:00:00", "20:00:00"],
            "2026-01-10T12:00:00Z",
            Some("2026-01-12"),
        );
        let s = slots(
            &mr,
            &z,
            datetime!(2026-01-09 00:00 UTC),
            datetime!(2026-01-20 00:00 UTC),
        );
        assert_eq!(
            times(&s),
            vec![
                "2026-01-10 20:00",
                "2026-01-11 08:00",
                "2026-01-11 20:00",
                "2026-01-12 08:00",
                "2026-01-12 20:00"
            ]
        );
        let mr = regular(
            &["08:00:00", "20:00:00"],
            "2026-01-10T12:00:00Z",
            Some("2026-01-11T12:00:00Z"),
        );
        let s = slots(
            &mr,
            &z,
            datetime!(2026-01-09 00:00 UTC),
            datetime!(2026-01-20 00:00 UTC),
        );
        assert_eq!(times(&s), vec!["2026-01-10 20:00", "2026-01-11 08:00"]);
    }

    #[test]
    fn weekly_and_every_other_day_count_from_the_start() {
        let z = LocalZone::london();
        let mut mr = regular(&["09:00:00"], "2026-01-05", None); // a Monday
        mr["dosageInstruction"][0]["timing"]["repeat"]["period"] = json!(1);
        mr["dosageInstruction"][0]["timing"]["repeat"]["periodUnit"] = json!("wk");
        let s = slots(
            &mr,
            &z,
            datetime!(2026-01-01 00:00 UTC),
            datetime!(2026-01-31 00:00 UTC),
        );
        assert_eq!(
            times(&s),
            vec![
                "2026-01-05 09:00",
                "2026-01-12 09:00",
                "2026-01-19 09:00",
                "2026-01-26 09:00"
            ]
        );
        mr["dosageInstruction"][0]["timing"]["repeat"]["period"] = json!(2);
        mr["dosageInstruction"][0]["timing"]["repeat"]["periodUnit"] = json!("d");
        let s = slots(
            &mr,
            &z,
            datetime!(2026-01-05 00:00 UTC),
            datetime!(2026-01-10 00:00 UTC),
        );
        assert_eq!(
            times(&s),
            vec!["2026-01-05 09:00", "2026-01-07 09:00", "2026-01-09 09:00"]
        );
        // Hourly is not a drug-round schedule.
        mr["dosageInstruction"][0]["timing"]["repeat"]["periodUnit"] = json!("h");
        assert!(
            slots(
                &mr,
                &z,
                datetime!(2026-01-05 00:00 UTC),
                datetime!(2026-01-10 00:00 UTC)
            )
            .is_empty()
        );
    }

    #[test]
    fn once_only_and_as_required() {
        let z = LocalZone::london();
        let once = json!({"dosageInstruction": [{"timing": {"event": ["2026-06-01T14:00:00+01:00"], "repeat": {"count": 1}}}]});
        let s = slots(
            &once,
            &z,
            datetime!(2026-06-01 00:00 UTC),
            datetime!(2026-06-02 00:00 UTC),
        );
        assert_eq!(times(&s), vec!["2026-06-01 14:00"]);
        let prn = json!({"dosageInstruction": [{"asNeededBoolean": true, "timing": {"repeat": {"timeOfDay": ["08:00:00"]}}}]});
        assert!(
            slots(
                &prn,
                &z,
                datetime!(2026-06-01 00:00 UTC),
                datetime!(2026-06-02 00:00 UTC)
            )
            .is_empty()
        );
    }

    #[test]
    fn a_slot_is_due_then_late() {
        let at = datetime!(2026-01-10 08:00 UTC);
        assert_eq!(
            timeliness(at, at - Duration::minutes(61), false),
            Timeliness::NotYetDue
        );
        assert_eq!(
            timeliness(at, at - Duration::minutes(60), false),
            Timeliness::Due
        );
        assert_eq!(
            timeliness(at, at + Duration::minutes(45), false),
            Timeliness::Due
        );
        assert_eq!(
            timeliness(at, at + Duration::minutes(45), true),
            Timeliness::Overdue
        );
        assert_eq!(
            timeliness(at, at + Duration::minutes(61), false),
            Timeliness::Overdue
        );
    }

    #[test]
    fn paracetamol_prn_four_hourly_max_four_grams() {
        // 1 g at most 4-hourly, at most 4 g in 24 hours.
        let l = PrnLimits {
            interval: Some(Duration::hours(4)),
            max_24h: Some(4.0),
        };
        let t0 = datetime!(2026-01-10 06:00 UTC);
        let doses: Vec<(OffsetDateTime, f64)> =
            (0..4).map(|i| (t0 + Duration::hours(4 * i), 1.0)).collect(); // 06, 10, 14, 18
        // 20:00: too soon after 18:00; next at 22:00 by interval, but the
        // fifth gram waits until 06:00 drops out (06:00 next day).
        match prn_check(&doses, t0 + Duration::hours(14), 1.0, l) {
            Err(PrnRefusal::TooSoon { last, next }) => {
                assert_eq!(last, t0 + Duration::hours(12));
                assert_eq!(next, Some(t0 + Duration::hours(24)));
            }
            other => panic!("{other:?}"),
        }
        match prn_check(&doses, t0 + Duration::hours(17), 1.0, l) {
            Err(PrnRefusal::OverMax { given, next }) => {
                assert_eq!(given, 4.0);
                assert_eq!(next, Some(t0 + Duration::hours(24)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(prn_check(&doses, t0 + Duration::hours(24), 1.0, l), Ok(()));
        assert_eq!(next_allowed(&doses, 5.0, l, t0), None);
    }

    #[test]
    fn units_of_mass_convert() {
        assert_eq!(convert(500.0, "mg", "g"), Some(0.5));
        assert_eq!(convert(2.0, "tablets", "tablet"), Some(2.0));
        assert_eq!(convert(1.0, "tablet", "mg"), None);
        assert_eq!(convert(1.0, "mL", "ml"), Some(1.0));
    }

    fn limits() -> impl Strategy<Value = PrnLimits> {
        (
            proptest::option::of(1i64..=12),
            proptest::option::of(1u32..=8),
        )
            .prop_map(|(h, m)| PrnLimits {
                interval: h.map(Duration::hours),
                max_24h: m.map(f64::from),
            })
    }

    proptest! {
        /// Whatever is asked for and when, the doses accepted never break
        /// the interval nor any 24 hours' maximum.
        #[test]
        fn accepted_doses_keep_the_limits(
            l in limits(),
            asks in proptest::collection::vec((0i64..(5 * 24 * 60), 1u32..=3), 1..40),
        ) {
            let t0 = datetime!(2026-03-28 00:00 UTC);
            let mut asks: Vec<(OffsetDateTime, f64)> = asks.into_iter()
                .map(|(m, a)| (t0 + Duration::minutes(m), f64::from(a))).collect();
            asks.sort_by_key(|a| a.0);
            let mut given: Vec<(OffsetDateTime, f64)> = Vec::new();
            for (at, a) in asks {
                if prn_check(&given, at, a, l).is_ok() {
                    given.push((at, a));
                }
            }
            for (i, (a, _)) in given.iter().enumerate() {
                for (b, _) in &given[i + 1..] {
                    if let Some(iv) = l.interval { prop_assert!((*b - *a).abs() >= iv); }
                }
                if let Some(m) = l.max_24h {
                    prop_assert!(sum_in(&given, *a - DAY, *a) <= m + 1e-9);
                }
            }
        }

        /// The next time offered is allowed, and nothing before it is.
        #[test]
        fn next_allowed_is_the_earliest(
            l in limits(),
            doses in proptest::collection::vec((0i64..(2 * 24 * 60), 1u32..=2), 0..12),
            amount in 1u32..=3,
            probe in 0i64..(3 * 24 * 60),
        ) {
            let t0 = datetime!(2026-10-24 00:00 UTC);
            let mut given: Vec<(OffsetDateTime, f64)> = Vec::new();
            let mut ds: Vec<(OffsetDateTime, f64)> = doses.into_iter()
                .map(|(m, a)| (t0 + Duration::minutes(m), f64::from(a))).collect();
            ds.sort_by_key(|d| d.0);
            for (at, a) in ds { if prn_check(&given, at, a, l).is_ok() { given.push((at, a)); } }
            let from = given.last().map_or(t0, |d| d.0);
            let amount = f64::from(amount);
            match next_allowed(&given, amount, l, from) {
                None => prop_assert!(l.max_24h.is_some_and(|m| amount > m)),
                Some(n) => {
                    prop_assert!(n >= from);
                    prop_assert_eq!(prn_check(&given, n, amount, l), Ok(()));
                    let p = from + Duration::minutes(probe);
                    if p < n { prop_assert!(prn_check(&given, p, amount, l).is_err()); }
                }
            }
        }

        /// Every day in any zone has each time of day once, in order.
        #[test]
        fn each_day_has_each_time_once(day in 0i64..730, h in 0i8..24, m in 0i8..60) {
            let z = LocalZone::london();
            let tod = format!("{h:02}:{m:02}:00");
            let mr = regular(&[tod.as_str()], "2025-01-01", None);
            let d0 = datetime!(2025-06-01 00:00 UTC) + Duration::days(day);
            let s = slots(&mr, &z, d0 - Duration::days(2), d0 + Duration::days(2));
            let days: Vec<&str> = s.iter().map(|x| x.day.as_str()).collect();
            let mut uniq = days.clone();
            uniq.dedup();
            prop_assert_eq!(days.len(), uniq.len());
            prop_assert!(s.windows(2).all(|w| w[0].at < w[1].at));
        }
    }
}
