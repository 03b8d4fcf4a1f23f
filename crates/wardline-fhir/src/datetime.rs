//! FHIR `date`, `dateTime` and `instant` values as half-open millisecond ranges.
//!
//! A value's precision gives its range: `2013` is all of 2013, `2013-06-01T10:00`
//! is that minute. Values without a time-zone offset are taken as UTC (stated in
//! ARCHITECTURE.md). Ranges are `[lo, hi)` in milliseconds since the Unix epoch.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Parses a FHIR date, dateTime or instant to `[lo, hi)` epoch milliseconds.
/// Returns `None` if it is not a valid FHIR date/time.
pub fn parse_range(s: &str) -> Option<(i64, i64)> {
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
            Some((date_ms(lo), date_ms(hi)))
        }
        (Some(m), None, None) => {
            let month = Month::try_from(m).ok()?;
            let lo = Date::from_calendar_date(y, month, 1).ok()?;
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let hi = Date::from_calendar_date(ny, Month::try_from(nm).ok()?, 1).ok()?;
            Some((date_ms(lo), date_ms(hi)))
        }
        (Some(m), Some(d), None) => {
            let lo = Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()?;
            let lo_ms = date_ms(lo);
            Some((lo_ms, lo_ms + 86_400_000))
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

/// `t` is `hh:mm[:ss[.fff…]][Z|±hh:mm]`.
fn parse_time(date: Date, t: &str) -> Option<(i64, i64)> {
    let (clock, offset) = if let Some(stripped) = t.strip_suffix('Z') {
        (stripped, UtcOffset::UTC)
    } else if let Some(i) = t.rfind(['+', '-']) {
        let off = &t[i..];
        let sign: i8 = if off.starts_with('-') { -1 } else { 1 };
        let mut parts = off[1..].split(':');
        let oh: i8 = parse_fixed(parts.next()?, 2)?;
        let om: i8 = parse_fixed(parts.next()?, 2)?;
        if parts.next().is_some() {
            return None;
        }
        (&t[..i], UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?)
    } else {
        (t, UtcOffset::UTC)
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
    let odt = PrimitiveDateTime::new(date, time).assume_offset(offset);
    let lo = (odt.unix_timestamp_nanos() / 1_000_000) as i64;
    Some((lo, lo + width_ms))
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
}
