//! The Care Act notices' timescales: one table ([`Timescales`]) and pure
//! functions over it and an instant the caller passes (the clock is
//! injected; nothing here reads the time).
//!
//! The rules, as the Care and Support (Discharge of Hospital Patients)
//! Regulations 2014 set them (revoked in England from 1 July 2022 with
//! Schedule 3 to the Care Act 2014, by the Health and Care Act 2022; a
//! trust that still works to them sets the table):
//!
//! * a notice given after the **cut-off** (14:00 local time) counts as
//!   given on the next day, and a notice given on a day that does not count
//!   (a Sunday or a bank holiday in England) counts as given on the next
//!   day that does ([`Timescales::given_day`]);
//! * the local authority has at least **2 days** after the day the
//!   assessment notice is given before the discharge can count against it
//!   ([`Timescales::earliest_discharge`]);
//! * the discharge notice is given at least **1 day** before the proposed
//!   discharge day ([`Timescales::latest_discharge_notice`]);
//! * days are counted only when they count ([`Timescales::counts`]).

use jiff::civil::{Date, Weekday, date};
use jiff::tz::TimeZone;
use time::{Duration, OffsetDateTime};

/// The table a trust sets. [`Timescales::default`] is the regulations'.
#[derive(Debug, Clone, PartialEq)]
pub struct Timescales {
    /// The IANA zone of the cut-off's clock.
    pub zone: String,
    /// A notice given after this local time (hour, minute) counts as given
    /// on the next day.
    pub cutoff: (i8, i8),
    /// Days (that count) after the assessment notice's day before the
    /// earliest discharge day.
    pub assessment_min_days: i32,
    /// Days (that count) the discharge notice comes before the discharge day.
    pub discharge_notice_min_days: i32,
    /// Weekdays that do not count.
    pub excluded_weekdays: Vec<Weekday>,
    /// Bank holidays: days that do not count. The trust keeps the list.
    pub holidays: Vec<Date>,
    /// A notice sent and not acknowledged (MESH) or not handed over
    /// (email) within this is overdue: a Task on the ward's worklist.
    pub acknowledge_within: Duration,
    /// How long before the latest time for the discharge notice a missing
    /// one is raised on the ward's worklist.
    pub discharge_notice_warning: Duration,
}

/// Bank holidays in England and Wales, 2025 to 2028 (the published list;
/// the trust extends it).
pub const ENGLAND_BANK_HOLIDAYS: [Date; 32] = [
    date(2025, 1, 1),
    date(2025, 4, 18),
    date(2025, 4, 21),
    date(2025, 5, 5),
    date(2025, 5, 26),
    date(2025, 8, 25),
    date(2025, 12, 25),
    date(2025, 12, 26),
    date(2026, 1, 1),
    date(2026, 4, 3),
    date(2026, 4, 6),
    date(2026, 5, 4),
    date(2026, 5, 25),
    date(2026, 8, 31),
    date(2026, 12, 25),
    date(2026, 12, 28),
    date(2027, 1, 1),
    date(2027, 3, 26),
    date(2027, 3, 29),
    date(2027, 5, 3),
    date(2027, 5, 31),
    date(2027, 8, 30),
    date(2027, 12, 27),
    date(2027, 12, 28),
    date(2028, 1, 3),
    date(2028, 4, 14),
    date(2028, 4, 17),
    date(2028, 5, 1),
    date(2028, 5, 29),
    date(2028, 8, 28),
    date(2028, 12, 25),
    date(2028, 12, 26),
];

impl Default for Timescales {
    fn default() -> Timescales {
        Timescales {
            zone: "Europe/London".to_owned(),
            cutoff: (14, 0),
            assessment_min_days: 2,
            discharge_notice_min_days: 1,
            excluded_weekdays: vec![Weekday::Sunday],
            holidays: ENGLAND_BANK_HOLIDAYS.to_vec(),
            acknowledge_within: Duration::hours(4),
            discharge_notice_warning: Duration::hours(4),
        }
    }
}

/// How far the day loops look (a year of days that do not count would be
/// a table error).
const MAX_STEPS: usize = 400;

impl Timescales {
    fn tz(&self) -> TimeZone {
        TimeZone::get(&self.zone).unwrap_or(TimeZone::UTC)
    }

    fn zoned(&self, at: OffsetDateTime) -> jiff::civil::DateTime {
        let ts = jiff::Timestamp::from_second(at.unix_timestamp())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        self.tz().to_datetime(ts)
    }

    /// The local date of `at`.
    pub fn local_date(&self, at: OffsetDateTime) -> Date {
        self.zoned(at).date()
    }

    /// Whether `d` counts (not an excluded weekday, not a bank holiday).
    pub fn counts(&self, d: Date) -> bool {
        !self.excluded_weekdays.contains(&d.weekday()) && !self.holidays.contains(&d)
    }

    fn next(d: Date) -> Date {
        d.tomorrow().unwrap_or(d)
    }

    /// The day a notice given at `at` counts as given on: the local date,
    /// the next day when after the cut-off, then the first day that counts.
    pub fn given_day(&self, at: OffsetDateTime) -> Date {
        let z = self.zoned(at);
        let (h, m) = self.cutoff;
        let after = (z.hour(), z.minute(), z.second(), z.subsec_nanosecond()) > (h, m, 0, 0);
        let mut d = if after {
            Self::next(z.date())
        } else {
            z.date()
        };
        for _ in 0..MAX_STEPS {
            if self.counts(d) {
                break;
            }
            d = Self::next(d);
        }
        d
    }

    /// The `n`-th day that counts after `d`.
    pub fn add_counted(&self, d: Date, n: i32) -> Date {
        let mut d = d;
        let mut left = n;
        for _ in 0..MAX_STEPS {
            if left <= 0 {
                break;
            }
            d = Self::next(d);
            if self.counts(d) {
                left -= 1;
            }
        }
        d
    }

    /// The earliest discharge day after an assessment notice given at `at`.
    pub fn earliest_discharge(&self, at: OffsetDateTime) -> Date {
        self.add_counted(self.given_day(at), self.assessment_min_days)
    }

    /// The last day a discharge notice for discharge on `day` may count as
    /// given on: the latest day that counts whose minimum notice ends by
    /// `day`.
    pub fn last_notice_day(&self, day: Date) -> Date {
        let mut g = day.yesterday().unwrap_or(day);
        for _ in 0..MAX_STEPS {
            if self.counts(g) && self.add_counted(g, self.discharge_notice_min_days) <= day {
                break;
            }
            g = g.yesterday().unwrap_or(g);
        }
        g
    }

    /// The latest instant a discharge notice for discharge on `day` may be
    /// given: the cut-off on [`Timescales::last_notice_day`].
    pub fn latest_discharge_notice(&self, day: Date) -> OffsetDateTime {
        let (h, m) = self.cutoff;
        let g = self.last_notice_day(day);
        let secs = g.at(h, m, 0, 0);
        let secs = self
            .tz()
            .to_ambiguous_timestamp(secs)
            .compatible()
            .map(|ts| ts.as_second())
            .unwrap_or(0);
        OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Why a discharge notice given at `at` for discharge on `day` falls
    /// short of the timescales (the assessment notice given at
    /// `assessment`), one sentence per shortfall; empty when it meets them.
    pub fn discharge_shortfalls(
        &self,
        at: OffsetDateTime,
        day: Date,
        assessment: Option<OffsetDateTime>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let latest = self.latest_discharge_notice(day);
        if at > latest {
            out.push(format!(
                "A discharge notice for discharge on {day} had to be given by {} ({}:{:02} on the last day that counts); this one is late.",
                display_instant(self, latest),
                self.cutoff.0,
                self.cutoff.1,
            ));
        }
        if let Some(a) = assessment {
            let earliest = self.earliest_discharge(a);
            if day < earliest {
                out.push(format!(
                    "The assessment notice leaves the local authority until {earliest} (the earliest discharge day); {day} is before it."
                ));
            }
        }
        out
    }
}

/// `at` as local time, e.g. `2026-12-05 14:00`.
pub fn display_instant(t: &Timescales, at: OffsetDateTime) -> String {
    let z = t.zoned(at);
    format!("{} {:02}:{:02}", z.date(), z.hour(), z.minute())
}

/// A FHIR instant (`…Z`) as local time, e.g. `2026-12-05 14:00`; the text
/// itself when it is not one.
pub fn local_text(t: &Timescales, fhir: &str) -> String {
    crate::transfers::parse_ms(fhir)
        .and_then(|ms| OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok())
        .map_or_else(|| fhir.to_owned(), |at| display_instant(t, at))
}

/// A local date as FHIR `date` (`YYYY-MM-DD`).
pub fn parse_day(s: &str) -> Option<Date> {
    s.trim().parse::<Date>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn t() -> Timescales {
        Timescales::default()
    }

    #[test]
    fn the_cut_off_moves_a_notice_to_the_next_day() {
        // Monday 30 November 2026 (GMT: local = UTC).
        assert_eq!(
            t().given_day(datetime!(2026-11-30 13:59 UTC)),
            date(2026, 11, 30)
        );
        assert_eq!(
            t().given_day(datetime!(2026-11-30 14:00 UTC)),
            date(2026, 11, 30)
        );
        assert_eq!(
            t().given_day(datetime!(2026-11-30 14:01 UTC)),
            date(2026, 12, 1)
        );
        // British Summer Time: 14:00 local is 13:00 UTC.
        assert_eq!(
            t().given_day(datetime!(2026-06-01 13:30 UTC)),
            date(2026, 6, 2)
        );
        assert_eq!(
            t().given_day(datetime!(2026-06-01 12:59 UTC)),
            date(2026, 6, 1)
        );
    }

    #[test]
    fn sundays_and_bank_holidays_do_not_count() {
        // Saturday 5 December after the cut-off: Sunday does not count, so Monday.
        assert_eq!(
            t().given_day(datetime!(2026-12-05 15:00 UTC)),
            date(2026, 12, 7)
        );
        // Given Monday: the earliest discharge day is Wednesday.
        assert_eq!(
            t().earliest_discharge(datetime!(2026-11-30 09:00 UTC)),
            date(2026, 12, 2)
        );
        // Given Friday 4 December before the cut-off: Saturday, (Sunday), Monday.
        assert_eq!(
            t().earliest_discharge(datetime!(2026-12-04 11:00 UTC)),
            date(2026, 12, 7)
        );
        // Given Thursday 24 December after the cut-off: Friday is Christmas
        // Day, Saturday counts as given; then (Sunday), (Monday 28th, the
        // Boxing Day holiday), Tuesday, Wednesday.
        assert_eq!(
            t().earliest_discharge(datetime!(2026-12-24 16:00 UTC)),
            date(2026, 12, 30)
        );
    }

    #[test]
    fn the_discharge_notice_comes_a_day_that_counts_before() {
        // Discharge Wednesday 2 December: notice by Tuesday 14:00.
        assert_eq!(
            t().latest_discharge_notice(date(2026, 12, 2)),
            datetime!(2026-12-01 14:00 UTC)
        );
        // Discharge Monday 7 December: Sunday does not count, so Saturday 14:00.
        assert_eq!(
            t().latest_discharge_notice(date(2026, 12, 7)),
            datetime!(2026-12-05 14:00 UTC)
        );
        // Discharge Tuesday 7 April 2026 (after Easter): Saturday 4 April 14:00 BST.
        assert_eq!(
            t().latest_discharge_notice(date(2026, 4, 7)),
            datetime!(2026-04-04 13:00 UTC)
        );
        let short =
            t().discharge_shortfalls(datetime!(2026-12-01 14:30 UTC), date(2026, 12, 2), None);
        assert_eq!(short.len(), 1, "{short:?}");
        let fine = t().discharge_shortfalls(
            datetime!(2026-12-01 14:00 UTC),
            date(2026, 12, 2),
            Some(datetime!(2026-11-30 09:00 UTC)),
        );
        assert!(fine.is_empty(), "{fine:?}");
        let early = t().discharge_shortfalls(
            datetime!(2026-11-30 10:00 UTC),
            date(2026, 12, 1),
            Some(datetime!(2026-11-30 09:00 UTC)),
        );
        assert_eq!(early.len(), 1, "{early:?}");
        assert!(early[0].contains("2026-12-02"), "{early:?}");
    }

    #[test]
    fn a_trust_sets_the_table() {
        let mut mine = t();
        mine.excluded_weekdays = vec![Weekday::Saturday, Weekday::Sunday];
        mine.cutoff = (12, 0);
        assert_eq!(
            mine.given_day(datetime!(2026-12-04 12:30 UTC)),
            date(2026, 12, 7)
        );
        assert_eq!(
            mine.latest_discharge_notice(date(2026, 12, 7)),
            datetime!(2026-12-04 12:00 UTC)
        );
    }

    fn instant() -> impl Strategy<Value = OffsetDateTime> {
        // 2025-01-01 .. 2028-12-01, to the minute.
        (1_735_689_600i64..1_859_155_200i64)
            .prop_map(|s| OffsetDateTime::from_unix_timestamp(s - s % 60).unwrap())
    }

    fn day() -> impl Strategy<Value = Date> {
        (0i64..1400).prop_map(|n| {
            date(2025, 1, 1)
                .checked_add(jiff::Span::new().days(n))
                .unwrap()
        })
    }

    proptest! {
        /// The latest time for a discharge notice is exactly the last
        /// instant whose given day leaves the minimum notice.
        #[test]
        fn latest_time_agrees_with_counting(at in instant(), d in day()) {
            let t = t();
            let by_latest = at <= t.latest_discharge_notice(d);
            let by_counting = t.add_counted(t.given_day(at), t.discharge_notice_min_days) <= d;
            prop_assert_eq!(by_latest, by_counting);
            prop_assert_eq!(t.discharge_shortfalls(at, d, None).is_empty(), by_latest);
        }

        /// A notice's given day counts and is never before its local date;
        /// the earliest discharge day leaves exactly the minimum days that
        /// count between them, and itself counts.
        #[test]
        fn given_and_earliest_days_count(at in instant()) {
            let t = t();
            let g = t.given_day(at);
            prop_assert!(t.counts(g));
            prop_assert!(g >= t.local_date(at));
            let e = t.earliest_discharge(at);
            prop_assert!(t.counts(e));
            let mut n = 0;
            let mut d = g;
            while d < e {
                d = d.tomorrow().unwrap();
                if t.counts(d) { n += 1; }
            }
            prop_assert_eq!(n, t.assessment_min_days);
        }
    }
}
