//! HL7 v2 TS/DTM/DT → FHIR date, dateTime and instant.
//!
//! `YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`. Precision is kept: a year, a
//! month or a day stays a FHIR date (`2024`, `2024-03`, `2024-03-05`); once a
//! time is present FHIR needs seconds and an offset, so missing minutes and
//! seconds are zero-filled and, when the timestamp has no offset, it is read
//! as Europe/London local time and given the UK offset of that moment (GMT
//! `+00:00`, BST `+01:00` from 01:00 GMT on the last Sunday of March to
//! 01:00 GMT on the last Sunday of October; the current rules are applied to
//! every year). Ambiguous local times (the repeated hour in October) take BST
//! (the first occurrence); local times in the skipped hour in March are read
//! as BST. An `instant` zero-fills the missing time of a date-only value
//! (midnight local time).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ts {
    pub y: i32,
    pub mo: u8,
    pub d: u8,
    pub h: u8,
    pub mi: u8,
    pub s: u8,
    /// Fraction digits after the decimal point, without the point.
    pub frac: String,
    /// 1 year, 2 month, 3 day, 4 hour, 5 minute, 6 second.
    pub prec: u8,
    /// Offset in minutes, when written.
    pub offset: Option<i32>,
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an HL7 timestamp; `None` when it is not one.
pub(crate) fn parse(s: &str) -> Option<Ts> {
    let s = s.trim();
    let (body, offset) = match s.find(['+', '-']) {
        Some(i) => {
            let z = &s[i + 1..];
            if z.len() != 4 || !z.is_ascii() {
                return None;
            }
            let hh = num(&z[..2])?;
            let mm = num(&z[2..])?;
            if hh > 14 || mm > 59 {
                return None;
            }
            let sign = if s.as_bytes()[i] == b'-' { -1 } else { 1 };
            (&s[..i], Some(sign * (hh * 60 + mm) as i32))
        }
        None => (s, None),
    };
    let (main, frac) = match body.split_once('.') {
        Some((m, f)) => {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (m, f.to_owned())
        }
        None => (body, String::new()),
    };
    if !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prec = match main.len() {
        4 => 1,
        6 => 2,
        8 => 3,
        10 => 4,
        12 => 5,
        14 => 6,
        _ => return None,
    };
    if !frac.is_empty() && prec != 6 {
        return None;
    }
    let part = |a: usize, b: usize| -> Option<u32> { main.get(a..b).map_or(Some(0), num) };
    let y = num(&main[..4])? as i32;
    let mo = if prec >= 2 { part(4, 6)? } else { 1 };
    let d = if prec >= 3 { part(6, 8)? } else { 1 };
    let h = if prec >= 4 { part(8, 10)? } else { 0 };
    let mi = if prec >= 5 { part(10, 12)? } else { 0 };
    let sec = if prec >= 6 { part(12, 14)? } else { 0 };
    if y < 1 || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let month = Month::try_from(u8::try_from(mo).ok()?).ok()?;
    Date::from_calendar_date(y, month, u8::try_from(d).ok()?).ok()?;
    Some(Ts {
        y,
        mo: mo as u8,
        d: d as u8,
        h: h as u8,
        mi: mi as u8,
        s: sec as u8,
        frac,
        prec,
        offset,
    })
}

fn last_sunday(y: i32, m: Month) -> u8 {
    let last = m.length(y);
    match Date::from_calendar_date(y, m, last) {
        Ok(d) => last - d.weekday().number_days_from_sunday(),
        Err(_) => last,
    }
}

/// Whether British Summer Time applies at day `d` hour `h` of month `mo`:
/// from 01:00 on the last Sunday of March to `october_end_hour` on the last
/// Sunday of October (02:00 on the local clock, 01:00 UTC).
fn is_bst(y: i32, mo: u8, d: u8, h: u8, october_end_hour: u8) -> bool {
    match mo {
        4..=9 => true,
        3 => {
            let ls = last_sunday(y, Month::March);
            d > ls || (d == ls && h >= 1)
        }
        10 => {
            let ls = last_sunday(y, Month::October);
            d < ls || (d == ls && h < october_end_hour)
        }
        _ => false,
    }
}

/// The Europe/London offset (minutes) of a local date and time.
pub(crate) fn london_offset(y: i32, mo: u8, d: u8, h: u8) -> i32 {
    if is_bst(y, mo, d, h, 2) { 60 } else { 0 }
}

/// The Europe/London offset (minutes) at a UTC moment.
fn london_offset_utc(utc: OffsetDateTime) -> i32 {
    let (y, mo, d, h) = (utc.year(), utc.month() as u8, utc.day(), utc.hour());
    if is_bst(y, mo, d, h, 1) { 60 } else { 0 }
}

fn fmt_offset(min: i32) -> String {
    if min == 0 {
        return "+00:00".into();
    }
    let sign = if min < 0 { '-' } else { '+' };
    let a = min.abs();
    format!("{sign}{:02}:{:02}", a / 60, a % 60)
}

impl Ts {
    /// The offset: as written, else Europe/London.
    pub fn offset_minutes(&self) -> i32 {
        self.offset
            .unwrap_or_else(|| london_offset(self.y, self.mo, self.d, self.h))
    }

    /// FHIR `date` (time dropped).
    pub fn date(&self) -> String {
        match self.prec {
            1 => format!("{:04}", self.y),
            2 => format!("{:04}-{:02}", self.y, self.mo),
            _ => format!("{:04}-{:02}-{:02}", self.y, self.mo, self.d),
        }
    }

    fn full(&self) -> String {
        let frac = if self.frac.is_empty() {
            String::new()
        } else {
            format!(".{}", self.frac)
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{}",
            self.y,
            self.mo,
            self.d,
            self.h,
            self.mi,
            self.s,
            fmt_offset(self.offset_minutes())
        )
    }

    /// FHIR `dateTime` with the precision of the value.
    pub fn date_time(&self) -> String {
        if self.prec <= 3 {
            self.date()
        } else {
            self.full()
        }
    }

    /// FHIR `instant` (always to the second, with an offset).
    pub fn instant(&self) -> String {
        self.full()
    }

    /// The moment (date-only values: local midnight).
    pub fn to_offset_date_time(&self) -> Option<OffsetDateTime> {
        let month = Month::try_from(self.mo).ok()?;
        let date = Date::from_calendar_date(self.y, month, self.d).ok()?;
        let time = Time::from_hms(self.h, self.mi, self.s).ok()?;
        let off = UtcOffset::from_whole_seconds(self.offset_minutes() * 60).ok()?;
        Some(PrimitiveDateTime::new(date, time).assume_offset(off))
    }

    /// The instant `minutes` later, in the UK offset of that moment (or the
    /// written offset when one was given).
    pub fn plus_minutes(&self, minutes: i64) -> Option<Ts> {
        let t = self.to_offset_date_time()? + time::Duration::minutes(minutes);
        let utc = t.to_offset(UtcOffset::UTC);
        let offset = match self.offset {
            Some(o) => o,
            None => london_offset_utc(utc),
        };
        let local = utc.to_offset(UtcOffset::from_whole_seconds(offset * 60).ok()?);
        Some(Ts {
            y: local.year(),
            mo: local.month() as u8,
            d: local.day(),
            h: local.hour(),
            mi: local.minute(),
            s: local.second(),
            frac: String::new(),
            prec: 6,
            offset: Some(offset),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> String {
        parse(s)
            .map(|t| t.date_time())
            .unwrap_or_else(|| "BAD".into())
    }

    #[test]
    fn non_ascii_offsets_are_not_timestamps() {
        // A four-byte character after the sign (found by the property test).
        assert!(parse("2024+\u{1e2a4}").is_none());
        assert!(parse("20240101-0\u{e9}0").is_none());
    }

    #[test]
    fn precision_is_kept() {
        assert_eq!(dt("2024"), "2024");
        assert_eq!(dt("202403"), "2024-03");
        assert_eq!(dt("20240305"), "2024-03-05");
        assert_eq!(dt("2024030509"), "2024-03-05T09:00:00+00:00");
        assert_eq!(dt("202403050930"), "2024-03-05T09:30:00+00:00");
        assert_eq!(dt("20240305093015"), "2024-03-05T09:30:15+00:00");
        assert_eq!(dt("20240305093015.123"), "2024-03-05T09:30:15.123+00:00");
        assert_eq!(dt("20240705093015-0500"), "2024-07-05T09:30:15-05:00");
        assert_eq!(dt("20240705093015+0000"), "2024-07-05T09:30:15+00:00");
    }

    #[test]
    fn london_summer_time() {
        assert_eq!(dt("20240705093015"), "2024-07-05T09:30:15+01:00");
        // 2024: BST from Sunday 31 March 01:00 GMT to Sunday 27 October 01:00 GMT.
        assert_eq!(dt("202403310059"), "2024-03-31T00:59:00+00:00");
        assert_eq!(dt("202403310200"), "2024-03-31T02:00:00+01:00");
        assert_eq!(dt("202403301200"), "2024-03-30T12:00:00+00:00");
        assert_eq!(dt("202410270059"), "2024-10-27T00:59:00+01:00");
        assert_eq!(dt("202410270130"), "2024-10-27T01:30:00+01:00");
        assert_eq!(dt("202410270200"), "2024-10-27T02:00:00+00:00");
        assert_eq!(dt("202410281200"), "2024-10-28T12:00:00+00:00");
        // 2023: 26 March and 29 October.
        assert_eq!(dt("202303261200"), "2023-03-26T12:00:00+01:00");
        assert_eq!(dt("202303251200"), "2023-03-25T12:00:00+00:00");
        assert_eq!(dt("202310291200"), "2023-10-29T12:00:00+00:00");
        assert_eq!(dt("202310281200"), "2023-10-28T12:00:00+01:00");
    }

    #[test]
    fn bad_values_are_refused() {
        for s in [
            "",
            "20241",
            "2024-03-05",
            "20241305",
            "20240230",
            "2024030525",
            "202403052461",
            "20240305093060",
            "20240305+01",
            "2024030509.5",
            "20240305093015.",
            "abcd",
            "20240305093015+2500",
            "0000",
        ] {
            assert!(parse(s).is_none(), "{s:?} accepted");
        }
        assert!(parse("20240229").is_some());
        assert!(parse("20230229").is_none());
    }

    #[test]
    fn instants_and_dates() {
        let t = parse("20240705").unwrap();
        assert_eq!(t.instant(), "2024-07-05T00:00:00+01:00");
        assert_eq!(parse("19800101120000").unwrap().date(), "1980-01-01");
    }

    #[test]
    fn adding_minutes_crosses_dst() {
        let t = parse("202410270030").unwrap(); // BST
        assert_eq!(
            t.plus_minutes(30).unwrap().date_time(),
            "2024-10-27T01:00:00+01:00"
        );
        assert_eq!(
            t.plus_minutes(150).unwrap().date_time(),
            "2024-10-27T02:00:00+00:00"
        );
        let t = parse("202407051030").unwrap();
        assert_eq!(
            t.plus_minutes(45).unwrap().date_time(),
            "2024-07-05T11:15:00+01:00"
        );
    }
}
