//! FHIR `date`, `dateTime` and `instant` values as half-open millisecond ranges.
//!
//! A value's precision gives its range: `2013` is all of 2013, `2013-06-01T10:00`
//! is that minute. Ranges are `[lo, hi)` in milliseconds since the Unix epoch.
//!
//! A value with a time-zone offset (`Z`, `+10:00`) is an instant: its range
//! is the same wherever it is read. A value without one (a date, a year, a
//! month) is read in the trust's local time zone, a [`LocalZone`]
//! (Europe/London unless configured), as the R4 search page says ("the
//! server's local time zone"): `2024-07-01` is 1 July from midnight BST to
//! midnight BST, `[2024-06-30T23:00Z, 2024-07-01T23:00Z)`. Both the index
//! (stored values) and searches read zone-less values so, so a date-only
//! search finds a date-only value of the same day in every season. Where a
//! local time is ambiguous (a gap or a fold at a clock change), the range
//! runs from the earliest instant its start may mean to the latest its end
//! may mean, so that a search never misses what the value may mean.
//! [`parse_range`] reads zone-less values as UTC, for callers that mean no
//! local day.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The trust's local time zone: an IANA zone from the database compiled
/// into the binary (nothing is read or fetched at run time).
#[derive(Clone, PartialEq, Eq)]
pub struct LocalZone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl LocalZone {
    /// The default: the zone of an NHS trust in England.
    pub const DEFAULT: &'static str = "Europe/London";

    /// The zone with this IANA name (`Europe/London`, `UTC`,
    /// `Australia/Brisbane`); an error naming it when there is none.
    pub fn named(name: &str) -> Result<LocalZone, String> {
        let name = name.trim();
        jiff::tz::db()
            .get(name)
            .map(|tz| LocalZone {
                name: name.to_owned(),
                tz,
            })
            .map_err(|_| {
                format!("'{name}' is not a time zone (an IANA name such as Europe/London or UTC)")
            })
    }

    /// Europe/London.
    pub fn london() -> LocalZone {
        LocalZone::named(LocalZone::DEFAULT)
            .expect("the compiled-in time zone database has Europe/London")
    }

    /// UTC (zone-less values read as UTC, as [`parse_range`] does).
    pub fn utc() -> LocalZone {
        LocalZone {
            name: "UTC".to_owned(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// The IANA name, as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local calendar date at the instant `at`: the trust's "today" (at
    /// 00:30 on a summer night in London it is already tomorrow in UTC's
    /// terms, and an RTT clock, a decision to treat, a clinic day all count
    /// in local dates).
    pub fn date_of(&self, at: time::OffsetDateTime) -> time::Date {
        let local = jiff::Timestamp::from_second(at.unix_timestamp())
            .map(|ts| self.tz.to_datetime(ts).date())
            .ok()
            .and_then(|d| {
                let m = time::Month::try_from(u8::try_from(d.month()).ok()?).ok()?;
                time::Date::from_calendar_date(i32::from(d.year()), m, u8::try_from(d.day()).ok()?)
                    .ok()
            });
        local.unwrap_or_else(|| at.date())
    }

    /// The local wall-clock reading of the instant `ms`, as
    /// `YYYY-MM-DD HH:MM` (issue 22: downtime banners and reports say when
    /// in the trust's time). `None` outside the supported years.
    pub fn local_minute(&self, ms: i64) -> Option<String> {
        let dt = self
            .tz
            .to_datetime(jiff::Timestamp::from_millisecond(ms).ok()?);
        Some(format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute()
        ))
    }

    /// The local clock time of `ms`, `HH:MM` ([`LocalZone::local_minute`]
    /// without the date).
    pub fn clock_time(&self, ms: i64) -> String {
        self.local_minute(ms)
            .map(|s| s[11..].to_owned())
            .unwrap_or_else(|| "--:--".to_owned())
    }

    /// The instant at which the local clock reads what `ms` reads on a UTC
    /// clock: the earliest such instant, or with `latest` the latest (they
    /// differ only in a gap or a fold; in a gap no instant reads it, and both
    /// readings, on the clocks before and after the change, are covered).
    /// Except that the earliest never reads the previous day: where a gap
    /// spans midnight it is the transition, the first instant of the date.
    /// `None` outside the supported years.
    fn local(&self, ms: i64, latest: bool) -> Option<i64> {
        let civil =
            jiff::tz::TimeZone::UTC.to_datetime(jiff::Timestamp::from_millisecond(ms).ok()?);
        let amb = self.tz.to_ambiguous_timestamp(civil);
        if latest {
            return Some(amb.later().ok()?.as_millisecond());
        }
        let earlier = amb.earlier().ok()?;
        if self.tz.to_datetime(earlier).date() != civil.date() {
            // A gap spanning midnight: begin where the date begins.
            let transition = self.tz.following(earlier).next()?;
            return Some(transition.timestamp().as_millisecond());
        }
        Some(earlier.as_millisecond())
    }
}

impl Default for LocalZone {
    fn default() -> LocalZone {
        LocalZone::london()
    }
}

impl std::fmt::Debug for LocalZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalZone({})", self.name)
    }
}

impl std::fmt::Display for LocalZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A valid FHIR date, dateTime or instant, parsed: its range as if its clock
/// were UTC, and whether it carries its own offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FhirDate {
    lo: i64,
    hi: i64,
    offset: bool,
}

impl FhirDate {
    /// `None` if `s` is not a valid FHIR date/time.
    pub fn parse(s: &str) -> Option<FhirDate> {
        let (lo, hi, offset) = parse_utc(s)?;
        Some(FhirDate { lo, hi, offset })
    }

    /// Whether the value has a time-zone offset (so is the same instant
    /// wherever it is read).
    pub fn has_offset(&self) -> bool {
        self.offset
    }

    /// `[lo, hi)`, a zone-less value read in `zone` (see the module
    /// documentation).
    pub fn range_in(&self, zone: &LocalZone) -> (i64, i64) {
        if self.offset || zone.tz == jiff::tz::TimeZone::UTC {
            return (self.lo, self.hi);
        }
        // Out of the supported years (only near 0000 and 9999): as UTC.
        let lo = zone.local(self.lo, false).unwrap_or(self.lo);
        let hi = zone.local(self.hi, true).unwrap_or(self.hi);
        (lo, hi.max(lo))
    }
}

/// Parses a FHIR date, dateTime or instant to `[lo, hi)` epoch milliseconds,
/// a value without an offset read in `zone`. `None` if it is not a valid
/// FHIR date/time.
pub fn parse_range_in(s: &str, zone: &LocalZone) -> Option<(i64, i64)> {
    FhirDate::parse(s).map(|d| d.range_in(zone))
}

/// Parses a FHIR date, dateTime or instant to `[lo, hi)` epoch milliseconds,
/// a value without an offset read as UTC (for values that carry their
/// offset, or where no local day is meant; searches and the index use
/// [`parse_range_in`]). Returns `None` if it is not a valid FHIR date/time.
pub fn parse_range(s: &str) -> Option<(i64, i64)> {
    parse_utc(s).map(|(lo, hi, _)| (lo, hi))
}

/// `[lo, hi)` with zone-less values as UTC, and whether the value had an offset.
fn parse_utc(s: &str) -> Option<(i64, i64, bool)> {
    let s = s.trim();
    let (date_part, time_part) = match s.find('T') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut it = date_part.split('-');
    let y: i32 = parse_fixed(it.next()?, 4)?;
    let m = match it.next() {
        Some(p) => Some(parse_fixed::<u8>(p, 2)?),
        None => None,
    };
    let d = match it.next() {
        Some(p) => Some(parse_fixed::<u8>(p, 2)?),
        None => None,
    };
    if it.next().is_some() {
        return None;
    }
    match (m, d, time_part) {
        (None, None, None) => {
            let lo = Date::from_calendar_date(y, Month::January, 1).ok()?;
            let hi = Date::from_calendar_date(y + 1, Month::January, 1).ok()?;
            Some((date_ms(lo), date_ms(hi), false))
        }
        (Some(m), None, None) => {
            let month = Month::try_from(m).ok()?;
            let lo = Date::from_calendar_date(y, month, 1).ok()?;
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let hi = Date::from_calendar_date(ny, Month::try_from(nm).ok()?, 1).ok()?;
            Some((date_ms(lo), date_ms(hi), false))
        }
        (Some(m), Some(d), None) => {
            let lo = Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()?;
            let lo_ms = date_ms(lo);
            Some((lo_ms, lo_ms + 86_400_000, false))
        }
        (Some(m), Some(d), Some(t)) => {
            let date = Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()?;
            parse_time(date, t)
        }
        _ => None,
    }
}

fn parse_fixed<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn date_ms(d: Date) -> i64 {
    let dt = PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc();
    (dt.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `t` is `hh:mm[:ss[.fff…]][Z|±hh:mm]`; the flag says an offset was given.
fn parse_time(date: Date, t: &str) -> Option<(i64, i64, bool)> {
    let (clock, offset) = if let Some(stripped) = t.strip_suffix('Z') {
        (stripped, Some(UtcOffset::UTC))
    } else if let Some(i) = t.rfind(['+', '-']) {
        let off = &t[i..];
        let sign: i8 = if off.starts_with('-') { -1 } else { 1 };
        let mut parts = off[1..].split(':');
        let oh: i8 = parse_fixed(parts.next()?, 2)?;
        let om: i8 = parse_fixed(parts.next()?, 2)?;
        if parts.next().is_some() {
            return None;
        }
        (
            &t[..i],
            Some(UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?),
        )
    } else {
        (t, None)
    };
    let mut parts = clock.split(':');
    let h: u8 = parse_fixed(parts.next()?, 2)?;
    let mi: u8 = parse_fixed(parts.next()?, 2)?;
    let (sec, frac, width_ms) = match parts.next() {
        None => (0u8, 0u32, 60_000i64),
        Some(sp) => {
            let (whole, frac) = match sp.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (sp, None),
            };
            let s: u8 = parse_fixed(whole, 2)?;
            match frac {
                None => (s, 0, 1_000),
                Some(f) => {
                    if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    let mut ms = f.chars().take(3).collect::<String>();
                    while ms.len() < 3 {
                        ms.push('0');
                    }
                    (s, ms.parse().ok()?, 1)
                }
            }
        }
    };
    if parts.next().is_some() {
        return None;
    }
    // FHIR allows a leap second 60 in instants; clamp it.
    let time = Time::from_hms_milli(h, mi, sec.min(59), frac as u16).ok()?;
    let odt = PrimitiveDateTime::new(date, time).assume_offset(offset.unwrap_or(UtcOffset::UTC));
    let lo = (odt.unix_timestamp_nanos() / 1_000_000) as i64;
    Some((lo, lo + width_ms, offset.is_some()))
}

/// Formats epoch milliseconds as a FHIR instant (`2024-01-02T03:04:05.678Z`).
pub fn format_instant(ms: i64) -> String {
    let odt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        odt.year(),
        u8::from(odt.month()),
        odt.day(),
        odt.hour(),
        odt.minute(),
        odt.second(),
        odt.millisecond()
    )
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn london() -> LocalZone {
        LocalZone::london()
    }

    fn fmt((lo, hi): (i64, i64)) -> (String, String) {
        (format_instant(lo), format_instant(hi))
    }

    fn s(a: &str, b: &str) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }

    #[test]
    fn the_local_date_of_an_instant() {
        use time::macros::{date, datetime};
        let z = london();
        // Summer time: 23:30 UTC is 00:30 the next day in London.
        assert_eq!(
            z.date_of(datetime!(2026-06-30 23:30 UTC)),
            date!(2026 - 07 - 01)
        );
        assert_eq!(
            z.date_of(datetime!(2026-06-30 22:59:59 UTC)),
            date!(2026 - 06 - 30)
        );
        // Winter: London is UTC.
        assert_eq!(
            z.date_of(datetime!(2026-12-31 23:59:59 UTC)),
            date!(2026 - 12 - 31)
        );
        assert_eq!(
            LocalZone::utc().date_of(datetime!(2026-06-30 23:30 UTC)),
            date!(2026 - 06 - 30)
        );
        // Whatever offset the instant is written in.
        assert_eq!(
            z.date_of(datetime!(2026-07-01 01:30 +02:00)),
            date!(2026 - 07 - 01)
        );
        assert_eq!(
            z.date_of(datetime!(2026-07-01 00:30 +02:00)),
            date!(2026 - 06 - 30)
        );
    }

    #[test]
    fn precision_ranges() {
        let (lo, hi) = parse_range("2013").unwrap();
        assert_eq!(format_instant(lo), "2013-01-01T00:00:00.000Z");
        assert_eq!(format_instant(hi), "2014-01-01T00:00:00.000Z");
        let (lo, hi) = parse_range("2013-12").unwrap();
        assert_eq!(format_instant(lo), "2013-12-01T00:00:00.000Z");
        assert_eq!(format_instant(hi), "2014-01-01T00:00:00.000Z");
        let (lo, hi) = parse_range("2013-06-30").unwrap();
        assert_eq!(hi - lo, 86_400_000);
        let (lo, hi) = parse_range("2013-06-30T10:00:00+01:00").unwrap();
        assert_eq!(format_instant(lo), "2013-06-30T09:00:00.000Z");
        assert_eq!(hi - lo, 1000);
        let (lo, hi) = parse_range("2013-06-30T10:00:00.123Z").unwrap();
        assert_eq!(format_instant(lo), "2013-06-30T10:00:00.123Z");
        assert_eq!(hi - lo, 1);
        assert!(parse_range("2013-13").is_none());
        assert!(parse_range("2013-02-30").is_none());
        assert!(parse_range("13-02-01").is_none());
        assert!(parse_range("2013-02-01T25:00:00Z").is_none());
    }

    /// Issue 15: a date-only value was the UTC day, so in summer the first
    /// hour of a UK day belonged to the day before.
    #[test]
    fn zone_less_values_are_read_in_the_local_zone() {
        let z = london();
        // BST: 1 July runs from 23:00Z the day before.
        assert_eq!(
            fmt(parse_range_in("2024-07-01", &z).unwrap()),
            s("2024-06-30T23:00:00.000Z", "2024-07-01T23:00:00.000Z")
        );
        // GMT: as UTC.
        assert_eq!(
            fmt(parse_range_in("2024-01-15", &z).unwrap()),
            s("2024-01-15T00:00:00.000Z", "2024-01-16T00:00:00.000Z")
        );
        // The clock changes: 31 March 2024 has 23 hours, 27 October 25.
        assert_eq!(
            fmt(parse_range_in("2024-03-31", &z).unwrap()),
            s("2024-03-31T00:00:00.000Z", "2024-03-31T23:00:00.000Z")
        );
        assert_eq!(
            fmt(parse_range_in("2024-10-27", &z).unwrap()),
            s("2024-10-26T23:00:00.000Z", "2024-10-28T00:00:00.000Z")
        );
        // Months and years: from local midnight to local midnight.
        assert_eq!(
            fmt(parse_range_in("2024-07", &z).unwrap()),
            s("2024-06-30T23:00:00.000Z", "2024-07-31T23:00:00.000Z")
        );
        assert_eq!(
            fmt(parse_range_in("2024-04", &z).unwrap()),
            s("2024-03-31T23:00:00.000Z", "2024-04-30T23:00:00.000Z")
        );
        assert_eq!(
            fmt(parse_range_in("2024", &z).unwrap()),
            s("2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z")
        );
        // 1970 was British Standard Time (UTC+1) all year.
        assert_eq!(
            fmt(parse_range_in("1970-01-01", &z).unwrap()),
            s("1969-12-31T23:00:00.000Z", "1970-01-01T23:00:00.000Z")
        );
        // A zone-less time is a local clock reading.
        assert_eq!(
            fmt(parse_range_in("2024-07-01T00:30", &z).unwrap()),
            s("2024-06-30T23:30:00.000Z", "2024-06-30T23:31:00.000Z")
        );
        // Values with an offset keep their instant, whatever the zone.
        for v in ["2024-07-01T00:30:00Z", "2016-10-31T08:45:05+10:00"] {
            assert_eq!(parse_range_in(v, &z), parse_range(v));
        }
        let brisbane = LocalZone::named("Australia/Brisbane").unwrap();
        let task = parse_range_in("2016-10-31T08:45:05+10:00", &z).unwrap();
        let (lo, hi) = parse_range_in("2016-10-31", &brisbane).unwrap();
        assert!(lo <= task.0 && task.1 <= hi, "in Brisbane's 31 October");
        let (lo, _) = parse_range_in("2016-10-31", &z).unwrap();
        assert!(task.1 <= lo, "before London's 31 October");
        // UTC reads as parse_range does.
        assert_eq!(
            parse_range_in("2024-07-01", &LocalZone::utc()),
            parse_range("2024-07-01")
        );
    }

    #[test]
    fn ambiguous_local_times_cover_every_instant_they_may_mean() {
        let z = london();
        // 01:30 on 27 October 2024 happened twice (BST, then GMT).
        assert_eq!(
            fmt(parse_range_in("2024-10-27T01:30", &z).unwrap()),
            s("2024-10-27T00:30:00.000Z", "2024-10-27T01:31:00.000Z")
        );
        // 01:30 on 31 March 2024 never happened: both readings.
        assert_eq!(
            fmt(parse_range_in("2024-03-31T01:30", &z).unwrap()),
            s("2024-03-31T00:30:00.000Z", "2024-03-31T01:31:00.000Z")
        );
    }

    #[test]
    fn zones_by_name() {
        assert_eq!(LocalZone::default().name(), "Europe/London");
        assert_eq!(LocalZone::named(" UTC ").unwrap().name(), "UTC");
        let e = LocalZone::named("Europe/Londn").unwrap_err();
        assert!(e.contains("'Europe/Londn' is not a time zone"), "{e}");
        assert!(LocalZone::named("").is_err());
        assert_eq!(format!("{}", london()), "Europe/London");
        assert_ne!(london(), LocalZone::utc());
        assert_eq!(london(), LocalZone::named("Europe/London").unwrap());
    }

    fn day(y: i32, m: u8, d: u8) -> String {
        format!("{y:04}-{m:02}-{d:02}")
    }

    fn zone() -> impl Strategy<Value = LocalZone> {
        prop::sample::select(vec![
            "Europe/London",
            "UTC",
            "Australia/Brisbane",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
        ])
        .prop_map(|n| LocalZone::named(n).unwrap())
    }

    /// Kolkata's clocks went from 00:00 to 01:00 on 1 October 1941 (a gap
    /// at midnight): that day begins at the transition, read as 01:00 on the
    /// day, not at an instant reading the day before.
    #[test]
    fn a_day_whose_midnight_is_in_a_gap_begins_at_the_transition() {
        let z = LocalZone::named("Asia/Kolkata").unwrap();
        let (lo, _) = parse_range_in("1941-10-01", &z).unwrap();
        let start =
            z.tz.to_datetime(jiff::Timestamp::from_millisecond(lo).unwrap());
        assert_eq!(start.date(), jiff::civil::date(1941, 10, 1));
        let before =
            z.tz.to_datetime(jiff::Timestamp::from_millisecond(lo - 1).unwrap());
        assert_eq!(before.date(), jiff::civil::date(1941, 9, 30));
    }

    proptest! {
        /// The days of a month, in any zone, tile it: each starts where the
        /// one before ends (at a clock change too), and lasts 23 to 25 hours
        /// (Lord Howe: half an hour either way); the month is the union.
        #[test]
        fn days_tile_their_month(z in zone(), y in 1900i32..2100, m in 1u8..=12) {
            let (mlo, mhi) = parse_range_in(&format!("{y:04}-{m:02}"), &z).unwrap();
            let mut at = mlo;
            let mut d = 1u8;
            while let Some((lo, hi)) = parse_range_in(&day(y, m, d), &z) {
                prop_assert_eq!(lo, at, "day {} starts where the day before ended", d);
                let h = hi - lo;
                prop_assert!((23 * 3_600_000..=25 * 3_600_000).contains(&h), "day {} lasts {} ms", d, h);
                at = hi;
                d += 1;
            }
            prop_assert!(d >= 29);
            prop_assert_eq!(at, mhi);
        }

        /// A local date's range holds exactly the instants whose local
        /// date it is: its start is the first instant reading that date (at
        /// 00:00, or where a gap spanning midnight ends), and the instant
        /// before it reads the day before.
        #[test]
        fn a_day_is_the_instants_of_that_local_date(z in zone(), y in 1900i32..2100, m in 1u8..=12, d in 1u8..=28) {
            let (lo, hi) = parse_range_in(&day(y, m, d), &z).unwrap();
            let local = |ms: i64| z.tz.to_datetime(jiff::Timestamp::from_millisecond(ms).unwrap());
            let start = local(lo);
            prop_assert_eq!((start.year() as i32, start.month() as u8, start.day() as u8), (y, m, d));
            // Only where midnight falls in a gap does the day start later.
            let midnight = jiff::civil::date(y as i16, m as i8, d as i8).at(0, 0, 0, 0);
            let gap = matches!(z.tz.to_ambiguous_timestamp(midnight).offset(), jiff::tz::AmbiguousOffset::Gap { .. });
            prop_assert!(gap || (start.hour(), start.minute()) == (0, 0), "the day starts at {} without a gap", start);
            let before = local(lo - 1);
            prop_assert_ne!((before.year() as i32, before.month() as u8, before.day() as u8), (y, m, d));
            let last = local(hi - 1);
            prop_assert_eq!((last.year() as i32, last.month() as u8, last.day() as u8), (y, m, d));
        }

        /// A value with an offset is one instant wherever it is read; a
        /// zone-less one is its UTC reading shifted by the zone's offset
        /// (outside clock changes), never by more than a day.
        #[test]
        fn offsets_win_and_zones_shift(z in zone(), y in 1900i32..2100, m in 1u8..=12, d in 1u8..=28,
                                      h in 0u8..24, mi in 0u8..60, off in -12i8..=14) {
            let t = format!("{}T{h:02}:{mi:02}:00", day(y, m, d));
            let zoned = format!("{t}{}{:02}:00", if off < 0 { '-' } else { '+' }, off.unsigned_abs());
            prop_assert_eq!(parse_range_in(&zoned, &z), parse_range(&zoned));
            prop_assert_eq!(parse_range_in(&format!("{t}Z"), &z), parse_range(&format!("{t}Z")));
            let (ulo, uhi) = parse_range(&t).unwrap();
            let (lo, hi) = parse_range_in(&t, &z).unwrap();
            prop_assert!(lo <= hi);
            prop_assert!((lo - ulo).abs() <= 86_400_000 && (hi - uhi).abs() <= 86_400_000);
        }
    }
}
