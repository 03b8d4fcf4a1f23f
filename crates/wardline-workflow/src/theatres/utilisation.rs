//! Theatre utilisation over a range of days, per session and in total:
//!
//! * **touch time** — the minutes from knife to skin to closed of every
//!   case, as a percentage of the session's planned length;
//! * **late start** — the first patient entered the anaesthetic room after
//!   the session's start (minutes late);
//! * **early finish** — the last patient left theatre (into recovery) more
//!   than [`EARLY_FINISH_MINUTES`] before the session's end;
//! * **on-the-day cancellations** — cases cancelled on the session's day,
//!   with their reasons.

use serde::Serialize;
use time::Date;
use wardline_core::{Access, FhirService, Tx};

use super::list::{cases_in, sessions_on_in};
use super::{CASE_EXT, Step, TheatreError, audited, ext, parse_time, step_time, sub};

/// The minutes before the end of a session that a finish counts as early.
pub const EARLY_FINISH_MINUTES: i64 = 30;

/// One session's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SessionFigures {
    pub session: String,
    pub date: String,
    pub theatre: String,
    pub specialty: String,
    pub surgeon: String,
    pub length_minutes: i64,
    pub touch_minutes: i64,
    /// Touch time as a whole percentage of the session's length.
    pub touch_percent: i64,
    /// Minutes late, when the first patient went in after the start.
    pub late_start_minutes: Option<i64>,
    /// Minutes early, when the list finished early.
    pub early_finish_minutes: Option<i64>,
    pub cases_done: usize,
    /// (patient, reason) of each on-the-day cancellation.
    pub cancellations: Vec<(String, String)>,
}

/// The figures of a range of days.
#[derive(Debug, Clone, Serialize)]
pub struct Utilisation {
    pub from: String,
    pub to: String,
    pub sessions: Vec<SessionFigures>,
    pub touch_percent: i64,
    pub late_starts: usize,
    pub early_finishes: usize,
    pub cancellations: usize,
}

/// The figures for the sessions from `from` to `to` inclusive (at most 92
/// days).
pub fn figures_in(tx: &mut Tx<'_>, from: Date, to: Date) -> Result<Utilisation, TheatreError> {
    if to < from || (to - from).whole_days() > 92 {
        return Err(TheatreError::Field(
            "to",
            "Choose a range of at most 92 days, ending on or after its start.".into(),
        ));
    }
    let mut sessions = Vec::new();
    let mut day = from;
    while day <= to {
        for s in sessions_on_in(tx, day)? {
            let cases = cases_in(tx, &s.id)?;
            let mut touch = 0;
            let mut first_in = None;
            let mut last_out = None;
            let mut done = 0;
            let mut cancellations = Vec::new();
            for a in &cases {
                if a["status"] == "cancelled" {
                    let on_day = ext(a, CASE_EXT)
                        .and_then(|c| sub(c, "cancelled"))
                        .and_then(|c| c["valueDateTime"].as_str())
                        .and_then(parse_time)
                        .is_some_and(|t| t.date() == s.start.date());
                    if on_day {
                        let patient = s
                            .cases
                            .iter()
                            .find(|c| a["id"] == c.id.as_str())
                            .map(|c| c.patient_name.clone())
                            .unwrap_or_default();
                        cancellations.push((
                            patient,
                            a["cancelationReason"]["text"]
                                .as_str()
                                .unwrap_or("")
                                .to_owned(),
                        ));
                    }
                    continue;
                }
                if let (Some(k), Some(c)) =
                    (step_time(a, Step::KnifeToSkin), step_time(a, Step::Closed))
                {
                    touch += (c - k).whole_minutes();
                    done += 1;
                }
                if let Some(t) = step_time(a, Step::AnaestheticRoom) {
                    first_in = Some(first_in.map_or(t, |f: time::OffsetDateTime| f.min(t)));
                }
                if let Some(t) = step_time(a, Step::Recovery) {
                    last_out = Some(last_out.map_or(t, |f: time::OffsetDateTime| f.max(t)));
                }
            }
            let length = s.length_minutes.max(1);
            sessions.push(SessionFigures {
                session: s.id.clone(),
                date: super::list::date_text(s.start.date()),
                theatre: s.theatre_name.clone(),
                specialty: s.specialty_name.clone(),
                surgeon: s.surgeon_name.clone(),
                length_minutes: s.length_minutes,
                touch_minutes: touch,
                touch_percent: touch * 100 / length,
                late_start_minutes: first_in
                    .map(|t| (t - s.start).whole_minutes())
                    .filter(|m| *m > 0),
                early_finish_minutes: last_out
                    .map(|t| (s.end - t).whole_minutes())
                    .filter(|m| *m > EARLY_FINISH_MINUTES),
                cases_done: done,
                cancellations,
            });
        }
        match day.next_day() {
            Some(d) => day = d,
            None => break,
        }
    }
    let total_len: i64 = sessions.iter().map(|s| s.length_minutes).sum();
    let total_touch: i64 = sessions.iter().map(|s| s.touch_minutes).sum();
    Ok(Utilisation {
        from: super::list::date_text(from),
        to: super::list::date_text(to),
        touch_percent: if total_len > 0 {
            total_touch * 100 / total_len
        } else {
            0
        },
        late_starts: sessions
            .iter()
            .filter(|s| s.late_start_minutes.is_some())
            .count(),
        early_finishes: sessions
            .iter()
            .filter(|s| s.early_finish_minutes.is_some())
            .count(),
        cancellations: sessions.iter().map(|s| s.cancellations.len()).sum(),
        sessions,
    })
}

/// The figures (`theatres-utilisation`).
pub fn figures(
    svc: &FhirService,
    access: &dyn Access,
    from: Date,
    to: Date,
) -> Result<Utilisation, TheatreError> {
    audited(svc, access, "theatres-utilisation", "R", |tx| {
        figures_in(tx, from, to)
    })
}
