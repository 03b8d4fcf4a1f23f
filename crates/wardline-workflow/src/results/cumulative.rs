//! The cumulative view of a patient's results: every analyte the patient
//! has had measured, as a table (rows = analytes, columns = the times the
//! specimens were taken, newest first) and, per analyte, a series of values
//! drawn as a trend chart ([`trend_svg`]) — creatinine over a year.
//!
//! # Model
//!
//! A result value is an `Observation` of the patient (`subject`) that is
//! not a vital sign, social history, survey, exam or activity
//! (`category:not=…`: results received over HL7 often carry no category at
//! all, so the view names what it leaves out rather than what it keeps),
//! with `status` `preliminary`, `final`, `amended` or `corrected`: a
//! cancelled or entered-in-error value is never shown, and one only
//! registered has no value yet. The store keeps the **current version** of
//! each Observation, which is what a search returns: a corrected result
//! (a new version of the same Observation, see `results::receive_in`)
//! replaces the earlier value in the table and the chart; the earlier value
//! stays in the resource's history (the result page shows it).
//!
//! * **Analyte** (a row, a [`Series`]): the first coding of
//!   `Observation.code` as `system|code` (its text when there is no
//!   coding). Rows are ordered by their display name (case-insensitive,
//!   then by key), so a given analyte is always in the same place.
//! * **When**: `effectiveDateTime` (the specimen's collection time), else
//!   the start of `effectivePeriod`, else `issued`. A value with none of
//!   them cannot be placed in time and is left out (counted in
//!   [`Cumulative::undated`]).
//! * **Columns**: the distinct times, newest first, at most
//!   [`MAX_COLUMNS`] in the overview table (the chart of each analyte shows
//!   all its points read).
//! * **Flag**: `Observation.interpretation` as the laboratory sent it (the
//!   HL7 v2 table 0078 codes `H`, `L`, `HH`, `LL`, `A`, `AA`, `N` and the
//!   FHIR equivalents), else, for a number with a reference range on the
//!   Observation, `H`/`L` computed from the range; see [`ValueFlag`].
//! * **Reference range**: the `referenceRange` of the newest value that has
//!   one (ranges change when a laboratory changes its method; the band drawn
//!   is the current one).
//!
//! # Bounds (5,000 observations must stay fast)
//!
//! One search of the newest [`OVERVIEW_LIMIT`] values (or, for one analyte,
//! `code=system|code`, the newest [`SERIES_LIMIT`]), from `since` when
//! given: never a read per observation. When more values exist than were
//! read, [`Cumulative::more`] says so and the page offers a narrower view
//! (one analyte, or a later `since`).
//!
//! # Access
//!
//! The search is the caller's (`svc.search_as`): checked and audited like
//! `GET Observation?patient=…`; values the caller may not see are counted
//! in [`Cumulative::withheld`] and never drawn.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use wardline_core::{Access, FhirService};
use wardline_fhir::datetime::parse_range;

use super::ResultsError;
use crate::fhir::{concept_text, unit_text};

/// How many values the overview reads (the newest).
pub const OVERVIEW_LIMIT: usize = 500;
/// How many values of one analyte its own view reads (the newest).
pub const SERIES_LIMIT: usize = 1000;
/// How many specimen times the overview table shows as columns.
pub const MAX_COLUMNS: usize = 10;

/// The statuses of a value that is shown.
const SHOWN_STATUSES: &str = "preliminary,final,amended,corrected";
/// The categories of Observation that are not results.
const NOT_RESULTS: &str = "vital-signs,social-history,survey,exam,activity";

/// How a value stands against its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ValueFlag {
    /// Critically high (`HH`).
    CriticalHigh,
    /// Critically low (`LL`).
    CriticalLow,
    /// Critically abnormal, direction not said (`AA`).
    Critical,
    High,
    Low,
    /// Abnormal, direction not said (`A`, a non-numeric abnormal result).
    Abnormal,
    Normal,
    /// Nothing said and nothing to compute from.
    Unknown,
}

impl ValueFlag {
    /// The code the laboratory uses (`HH`, `H`…); empty for normal/unknown.
    pub fn code(self) -> &'static str {
        match self {
            ValueFlag::CriticalHigh => "HH",
            ValueFlag::CriticalLow => "LL",
            ValueFlag::Critical => "AA",
            ValueFlag::High => "H",
            ValueFlag::Low => "L",
            ValueFlag::Abnormal => "A",
            ValueFlag::Normal | ValueFlag::Unknown => "",
        }
    }

    /// In words, for people (never only a colour or a letter).
    pub fn words(self) -> &'static str {
        match self {
            ValueFlag::CriticalHigh => "critically high",
            ValueFlag::CriticalLow => "critically low",
            ValueFlag::Critical => "critical",
            ValueFlag::High => "high",
            ValueFlag::Low => "low",
            ValueFlag::Abnormal => "abnormal",
            ValueFlag::Normal => "normal",
            ValueFlag::Unknown => "",
        }
    }

    pub fn is_critical(self) -> bool {
        matches!(
            self,
            ValueFlag::CriticalHigh | ValueFlag::CriticalLow | ValueFlag::Critical
        )
    }

    /// The inbox's coarser flag (`results::Flag`) this falls under.
    pub fn severity(self) -> super::Flag {
        if self.is_critical() {
            super::Flag::Critical
        } else if self.is_abnormal() {
            super::Flag::Abnormal
        } else {
            super::Flag::Normal
        }
    }

    pub fn is_abnormal(self) -> bool {
        !matches!(self, ValueFlag::Normal | ValueFlag::Unknown)
    }

    /// The flag an `Observation.interpretation` code says (HL7 v2 table
    /// 0078 / FHIR v3 ObservationInterpretation).
    pub fn of_code(code: &str) -> Option<ValueFlag> {
        Some(match code {
            "HH" | "HU" => ValueFlag::CriticalHigh,
            "LL" | "LU" => ValueFlag::CriticalLow,
            "AA" | "critical" => ValueFlag::Critical,
            "H" | "HX" | ">" => ValueFlag::High,
            "L" | "LX" | "<" => ValueFlag::Low,
            "A" | "POS" | "DET" | "R" => ValueFlag::Abnormal,
            "N" | "NEG" | "ND" | "S" => ValueFlag::Normal,
            _ => return None,
        })
    }
}

/// One value of an analyte.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// The Observation's id.
    pub observation: String,
    /// When the specimen was taken, as recorded.
    pub at: String,
    /// [`Point::at`] in epoch milliseconds (the start of its range).
    pub at_ms: i64,
    /// The number, when the value is one.
    pub value: Option<f64>,
    /// The value as people read it (`132 µmol/L`, `Positive`).
    pub text: String,
    pub flag: ValueFlag,
    /// The Observation's status (`final`, `corrected`…).
    pub status: String,
}

/// One analyte: a row of the table and a chart.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Series {
    /// `system|code` of the first coding (the `code` to ask for one analyte).
    pub key: String,
    /// The analyte as people name it.
    pub display: String,
    /// Its unit as people write it.
    pub unit: Option<String>,
    /// The current reference range.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// The values read, oldest first.
    pub points: Vec<Point>,
}

impl Series {
    /// The value taken at `at` (a column of the table); the last read when a
    /// laboratory reported two at the same moment.
    pub fn at(&self, at: &str) -> Option<&Point> {
        self.points.iter().rev().find(|p| p.at == at)
    }

    /// The newest value.
    pub fn latest(&self) -> Option<&Point> {
        self.points.last()
    }

    /// The reference range as people read it (`59–104`, `≤ 5`, `≥ 60`:
    /// the limits themselves are within range), as the catalogue writes it.
    pub fn range_text(&self) -> Option<String> {
        crate::orders::catalogue::range_text(self.low, self.high, None)
    }
}

/// A patient's results, cumulatively.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Cumulative {
    pub patient: String,
    /// The analytes (rows), ordered by name.
    pub series: Vec<Series>,
    /// The specimen times of the table's columns, newest first (at most
    /// [`MAX_COLUMNS`]).
    pub columns: Vec<String>,
    /// More values exist than were read (older ones are not shown).
    pub more: bool,
    /// How many values were read.
    pub read: usize,
    /// Values withheld from the caller (consent, relationship): not shown.
    pub withheld: usize,
    /// Values with no time (left out).
    pub undated: usize,
}

/// The cumulative view of `patient` (its id): all analytes, or only `code`
/// (`system|code`); only values taken at or after `since` when given. See
/// the module documentation for what is read and shown.
pub fn cumulative(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    code: Option<&str>,
    since: Option<OffsetDateTime>,
) -> Result<Cumulative, ResultsError> {
    let patient = patient.trim();
    if patient.is_empty() || patient.contains('/') {
        return Err(ResultsError::Invalid(
            "Choose the patient whose results to show.".into(),
        ));
    }
    if svc.read_as(access, "Patient", patient)?.is_none() {
        return Err(ResultsError::NotFound(format!(
            "There is no patient with id {patient}."
        )));
    }
    let limit = if code.is_some() {
        SERIES_LIMIT
    } else {
        OVERVIEW_LIMIT
    };
    let mut params: Vec<(&str, String)> = vec![
        ("subject", format!("Patient/{patient}")),
        ("status", SHOWN_STATUSES.into()),
        ("category:not", NOT_RESULTS.into()),
        ("_sort", "-date".into()),
        ("_count", limit.to_string()),
    ];
    if let Some(c) = code.map(str::trim).filter(|c| !c.is_empty()) {
        let Some((system, code)) = c.split_once('|').filter(|(_, k)| !k.is_empty()) else {
            return Err(ResultsError::Invalid(format!(
                "The analyte '{c}' is not a code of the form system|code."
            )));
        };
        let e = wardline_fhir::search::escape_value;
        params.push(("code", format!("{}|{}", e(system), e(code))));
    }
    if let Some(s) = since {
        let s = s
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| ResultsError::Invalid(format!("The date 'since' is not valid: {e}.")))?;
        params.push(("date", format!("ge{s}")));
    }
    let found = svc.search_as(access, "Observation", &params)?;
    let mut c = build(patient, &found.resources);
    c.more = found.more;
    c.withheld = found.withheld;
    Ok(c)
}

/// The table and series of `observations` (any order).
pub fn build(patient: &str, observations: &[Value]) -> Cumulative {
    let mut c = Cumulative {
        patient: patient.to_owned(),
        read: observations.len(),
        ..Cumulative::default()
    };
    // Each series with the time and limits of its newest reference range.
    type Range = Option<(i64, Option<f64>, Option<f64>)>;
    let mut series: Vec<(Series, Range)> = Vec::new();
    let mut times: Vec<(i64, String)> = Vec::new();
    for o in observations {
        let Some(at) = o["effectiveDateTime"]
            .as_str()
            .or_else(|| o["effectivePeriod"]["start"].as_str())
            .or_else(|| o["issued"].as_str())
        else {
            c.undated += 1;
            continue;
        };
        let Some((at_ms, _)) = parse_range(at) else {
            c.undated += 1;
            continue;
        };
        let (key, display) = analyte(&o["code"]);
        let idx = match series.iter().position(|(s, _)| s.key == key) {
            Some(i) => i,
            None => {
                series.push((
                    Series {
                        key,
                        display,
                        unit: None,
                        low: None,
                        high: None,
                        points: Vec::new(),
                    },
                    None,
                ));
                series.len() - 1
            }
        };
        let (s, range) = &mut series[idx];
        let q = &o["valueQuantity"];
        let value = q["value"].as_f64();
        if s.unit.is_none() {
            s.unit = unit_text(q);
        }
        let (low, high) = reference_range(o);
        if (low.is_some() || high.is_some()) && range.is_none_or(|(ms, _, _)| ms < at_ms) {
            *range = Some((at_ms, low, high));
        }
        s.points.push(Point {
            observation: o["id"].as_str().unwrap_or_default().to_owned(),
            at: at.to_owned(),
            at_ms,
            value,
            text: super::value_only(o),
            flag: flag(o, value, low, high),
            status: o["status"].as_str().unwrap_or_default().to_owned(),
        });
        times.push((at_ms, at.to_owned()));
    }
    for (s, range) in &mut series {
        if let Some((_, l, h)) = range {
            s.low = *l;
            s.high = *h;
        }
        s.points
            .sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.at.cmp(&b.at)));
    }
    let mut series: Vec<Series> = series.into_iter().map(|(s, _)| s).collect();
    series.sort_by(|a, b| {
        a.display
            .to_lowercase()
            .cmp(&b.display.to_lowercase())
            .then_with(|| a.key.cmp(&b.key))
    });
    times.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    times.dedup_by(|a, b| a.1 == b.1);
    c.columns = times
        .into_iter()
        .take(MAX_COLUMNS)
        .map(|(_, t)| t)
        .collect();
    c.series = series;
    c
}

/// The row key (`system|code`, else the text) and the name of an analyte.
fn analyte(code: &Value) -> (String, String) {
    let first = code["coding"].as_array().and_then(|c| c.first());
    let key = match first {
        Some(c) => format!(
            "{}|{}",
            c["system"].as_str().unwrap_or_default(),
            c["code"].as_str().unwrap_or_default()
        ),
        None => code["text"].as_str().unwrap_or("(no code)").to_owned(),
    };
    let display = concept_text(code).unwrap_or_else(|| key.clone());
    (key, display)
}

fn reference_range(o: &Value) -> (Option<f64>, Option<f64>) {
    let r = &o["referenceRange"][0];
    (r["low"]["value"].as_f64(), r["high"]["value"].as_f64())
}

/// The flag of a value: what the laboratory said, else computed from the
/// Observation's own range.
fn flag(o: &Value, value: Option<f64>, low: Option<f64>, high: Option<f64>) -> ValueFlag {
    let said = o["interpretation"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["coding"].as_array().into_iter().flatten())
        .find_map(|c| c["code"].as_str().and_then(ValueFlag::of_code));
    if let Some(f) = said {
        return f;
    }
    match value {
        Some(v) if low.is_some_and(|l| v < l) => ValueFlag::Low,
        Some(v) if high.is_some_and(|h| v > h) => ValueFlag::High,
        Some(_) if low.is_some() || high.is_some() => ValueFlag::Normal,
        _ => ValueFlag::Unknown,
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

// ------------------------------------------------------------------ chart

/// The chart's size (SVG user units; it scales to its container).
pub const CHART_WIDTH: f64 = 640.0;
pub const CHART_HEIGHT: f64 = 240.0;
/// The plotting area inside the chart: left, top, right, bottom margins.
const MARGIN: (f64, f64, f64, f64) = (56.0, 16.0, 16.0, 40.0);

/// Where values and times land on the chart: a linear map of the times
/// (x) and of the values with the reference range (y, up is more) into
/// the plotting area inside the viewBox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub t0: i64,
    pub t1: i64,
    pub v0: f64,
    pub v1: f64,
}

impl Scale {
    /// The scale that fits every numeric point of `s` and its reference
    /// range, with a tenth of the span spare above and below. `None` when
    /// the series has no number to draw.
    pub fn of(s: &Series) -> Option<Scale> {
        let pts: Vec<&Point> = s
            .points
            .iter()
            .filter(|p| p.value.is_some_and(f64::is_finite))
            .collect();
        let first = pts.first()?;
        let (mut t0, mut t1) = (first.at_ms, first.at_ms);
        let (mut v0, mut v1) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in &pts {
            t0 = t0.min(p.at_ms);
            t1 = t1.max(p.at_ms);
            let v = p.value.unwrap_or_default();
            v0 = v0.min(v);
            v1 = v1.max(v);
        }
        for r in [s.low, s.high]
            .into_iter()
            .flatten()
            .filter(|r| r.is_finite())
        {
            v0 = v0.min(r);
            v1 = v1.max(r);
        }
        let span = v1 - v0;
        let pad = if span > 0.0 && span.is_finite() {
            span / 10.0
        } else {
            v0.abs().max(1.0) / 10.0
        };
        Some(Scale {
            t0,
            t1,
            v0: v0 - pad,
            v1: v1 + pad,
        })
    }

    /// The x of a time (a single time is in the middle).
    pub fn x(&self, t: i64) -> f64 {
        let (l, _, r, _) = MARGIN;
        let w = CHART_WIDTH - l - r;
        if self.t1 <= self.t0 {
            return l + w / 2.0;
        }
        let f = (t.saturating_sub(self.t0)) as f64 / (self.t1 - self.t0) as f64;
        l + w * f.clamp(0.0, 1.0)
    }

    /// The y of a value (larger values higher up).
    pub fn y(&self, v: f64) -> f64 {
        let (_, t, _, b) = MARGIN;
        let h = CHART_HEIGHT - t - b;
        let span = self.v1 - self.v0;
        let f = if span > 0.0 && span.is_finite() {
            ((v - self.v0) / span).clamp(0.0, 1.0)
        } else {
            0.5
        };
        let y = t + h * (1.0 - f);
        if y.is_finite() { y } else { t + h / 2.0 }
    }
}

/// An SVG line chart of `s`: the values over time joined by a line, the
/// reference range as a shaded band, each value a point (`data-flag` its
/// flag; abnormal points amber, critical ones red and larger, each with a
/// `<title>` giving the value, its flag in words and its time), the value
/// axis with its range and the first and last dates. Drawn by hand rather
/// than with `plotters`: its SVG backend needs a font stack (`ab_glyph` or
/// system fonts) to lay out text, which a server rendering a handful of
/// shapes does not need, and a hand-drawn chart keeps every element
/// addressable (`data-testid`) and accessible (`role="img"`, a title and a
/// description) for the page and its tests. Returns an empty string when
/// nothing is numeric.
pub fn trend_svg(s: &Series) -> String {
    let Some(sc) = Scale::of(s) else {
        return String::new();
    };
    let (ml, mt, mr, mb) = MARGIN;
    let (x0, x1) = (ml, CHART_WIDTH - mr);
    let (y_top, y_bottom) = (mt, CHART_HEIGHT - mb);
    let unit = s.unit.as_deref().unwrap_or("");
    let mut out = String::with_capacity(4096);
    let title = esc(&format!("{} over time", s.display));
    let numeric: Vec<&Point> = s
        .points
        .iter()
        .filter(|p| p.value.is_some_and(f64::is_finite))
        .collect();
    let desc = esc(&format!(
        "{} values from {} to {}{}",
        numeric.len(),
        numeric.first().map(|p| p.at.as_str()).unwrap_or(""),
        numeric.last().map(|p| p.at.as_str()).unwrap_or(""),
        s.range_text()
            .map(|r| format!("; reference range {r} {unit}"))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="wl-trend" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="{title}" data-testid="trend-chart" data-analyte="{key}"><title>{title}</title><desc>{desc}</desc>"#,
        key = esc(&s.key)
    ));
    // The reference band.
    if s.low.is_some() || s.high.is_some() {
        let top = s.high.map(|h| sc.y(h)).unwrap_or(y_top);
        let bottom = s.low.map(|l| sc.y(l)).unwrap_or(y_bottom);
        out.push_str(&format!(
            r##"<rect class="wl-trend__range" data-testid="trend-range" x="{x0:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}" fill="#e8f5e9" stroke="#007f3b" stroke-dasharray="4 3" stroke-width="1"/>"##,
            w = x1 - x0,
            h = (bottom - top).max(0.0)
        ));
    }
    // Axes.
    out.push_str(&format!(
        r##"<g class="wl-trend__axes" stroke="#4c6272" stroke-width="1"><line x1="{x0}" y1="{y_bottom}" x2="{x1}" y2="{y_bottom}"/><line x1="{x0}" y1="{y_top}" x2="{x0}" y2="{y_bottom}"/></g>"##
    ));
    // Value ticks: the ends of the scale and the range limits.
    let mut ticks: Vec<f64> = vec![sc.v0, sc.v1];
    ticks.extend([s.low, s.high].into_iter().flatten());
    out.push_str(
        r##"<g class="wl-trend__ticks" font-size="11" fill="#212b32" text-anchor="end">"##,
    );
    for v in ticks {
        let y = sc.y(v);
        out.push_str(&format!(
            r#"<text x="{tx:.1}" y="{ty:.1}">{label}</text>"#,
            tx = x0 - 6.0,
            ty = y + 4.0,
            label = esc(&num(v))
        ));
    }
    out.push_str("</g>");
    if let (Some(a), Some(b)) = (numeric.first(), numeric.last()) {
        out.push_str(&format!(
            r##"<g font-size="11" fill="#212b32"><text x="{x0}" y="{ty}" text-anchor="start">{d0}</text><text x="{x1}" y="{ty}" text-anchor="end">{d1}</text><text x="{xm:.1}" y="{tu}" text-anchor="middle">{u}</text></g>"##,
            ty = y_bottom + 16.0,
            tu = y_bottom + 32.0,
            xm = (x0 + x1) / 2.0,
            d0 = esc(date_part(&a.at)),
            d1 = esc(date_part(&b.at)),
            u = esc(unit),
        ));
    }
    // The line.
    if numeric.len() > 1 {
        let pts: Vec<String> = numeric
            .iter()
            .map(|p| {
                format!(
                    "{:.1},{:.1}",
                    sc.x(p.at_ms),
                    sc.y(p.value.unwrap_or_default())
                )
            })
            .collect();
        out.push_str(&format!(
            r##"<polyline class="wl-trend__line" fill="none" stroke="#005eb8" stroke-width="2" points="{}"/>"##,
            pts.join(" ")
        ));
    }
    // The points.
    for p in &numeric {
        let v = p.value.unwrap_or_default();
        let (fill, r) = if p.flag.is_critical() {
            ("#d5281b", 6.0)
        } else if p.flag.is_abnormal() {
            ("#ffb81c", 5.0)
        } else {
            ("#005eb8", 4.0)
        };
        let words = p.flag.words();
        out.push_str(&format!(
            r##"<circle class="wl-trend__point" data-testid="trend-point" data-flag="{code}" data-observation="{obs}" cx="{cx:.1}" cy="{cy:.1}" r="{r}" fill="{fill}" stroke="#212b32" stroke-width="1"><title>{t}</title></circle>"##,
            code = p.flag.code(),
            obs = esc(&p.observation),
            cx = sc.x(p.at_ms),
            cy = sc.y(v),
            t = esc(&format!(
                "{}{}, {}",
                p.text,
                if words.is_empty() { String::new() } else { format!(" ({words})") },
                p.at
            )),
        ));
    }
    out.push_str("</svg>");
    out
}

/// The date of a FHIR dateTime (`2026-03-01T09:00:00Z` → `2026-03-01`).
fn date_part(s: &str) -> &str {
    s.get(..10).unwrap_or(s)
}

/// Escapes text for SVG (XML) content and attributes.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obs(id: &str, code: &str, name: &str, at: &str, v: f64, interp: Option<&str>) -> Value {
        let mut o = json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}]},
            "effectiveDateTime": at,
            "valueQuantity": {"value": v, "unit": "umol/L", "system": "http://unitsofmeasure.org", "code": "umol/L"},
            "referenceRange": [{"low": {"value": 59.0}, "high": {"value": 104.0}}],
        });
        if let Some(i) = interp {
            o["interpretation"] = json!([{"coding": [{"code": i}]}]);
        }
        o
    }

    #[test]
    fn rows_are_ordered_by_name_and_columns_newest_first() {
        let o = vec![
            obs(
                "1",
                "2160-0",
                "Creatinine",
                "2026-01-01T09:00:00Z",
                80.0,
                None,
            ),
            obs(
                "2",
                "2823-3",
                "Potassium",
                "2026-03-01T09:00:00Z",
                4.1,
                None,
            ),
            obs("3", "2951-2", "Sodium", "2026-02-01T09:00:00Z", 140.0, None),
            obs(
                "4",
                "2160-0",
                "Creatinine",
                "2026-03-01T09:00:00Z",
                120.0,
                None,
            ),
            obs(
                "5",
                "1742-6",
                "alanine aminotransferase",
                "2026-02-01T09:00:00Z",
                20.0,
                None,
            ),
        ];
        let c = build("p", &o);
        let names: Vec<&str> = c.series.iter().map(|s| s.display.as_str()).collect();
        assert_eq!(
            names,
            [
                "alanine aminotransferase",
                "Creatinine",
                "Potassium",
                "Sodium"
            ]
        );
        assert_eq!(
            c.columns,
            [
                "2026-03-01T09:00:00Z",
                "2026-02-01T09:00:00Z",
                "2026-01-01T09:00:00Z"
            ]
        );
        let creat = &c.series[1];
        assert_eq!(creat.points.len(), 2);
        assert_eq!(creat.points[0].value, Some(80.0), "oldest first");
        assert_eq!(
            creat.at("2026-03-01T09:00:00Z").map(|p| p.flag),
            Some(ValueFlag::High)
        );
        assert_eq!(
            creat.at("2026-01-01T09:00:00Z").map(|p| p.flag),
            Some(ValueFlag::Normal)
        );
        assert!(creat.at("2026-02-01T09:00:00Z").is_none());
        assert_eq!(creat.unit.as_deref(), Some("µmol/L"));
        assert_eq!(creat.range_text().as_deref(), Some("59–104"));
        // One-sided ranges include their limit, as the catalogue writes them.
        let egfr = Series {
            low: Some(60.0),
            high: None,
            ..creat.clone()
        };
        assert_eq!(egfr.range_text().as_deref(), Some("≥ 60"));
    }

    #[test]
    fn the_laboratory_flag_wins_and_undated_values_are_counted() {
        let mut o = vec![obs(
            "1",
            "2823-3",
            "Potassium",
            "2026-01-01T09:00:00Z",
            6.8,
            Some("HH"),
        )];
        let mut undated = obs("2", "2823-3", "Potassium", "x", 4.0, None);
        undated
            .as_object_mut()
            .map(|m| m.remove("effectiveDateTime"));
        o.push(undated);
        let c = build("p", &o);
        assert_eq!(c.undated, 1);
        assert_eq!(c.series[0].points[0].flag, ValueFlag::CriticalHigh);
    }

    #[test]
    fn columns_are_limited() {
        let o: Vec<Value> = (0..30)
            .map(|d| {
                obs(
                    &d.to_string(),
                    "2160-0",
                    "Creatinine",
                    &format!("2026-01-{:02}T09:00:00Z", d + 1),
                    80.0,
                    None,
                )
            })
            .collect();
        let c = build("p", &o);
        assert_eq!(c.columns.len(), MAX_COLUMNS);
        assert_eq!(c.columns[0], "2026-01-30T09:00:00Z");
        assert_eq!(c.series[0].points.len(), 30, "the chart keeps every point");
    }

    #[test]
    fn the_chart_has_a_point_per_value_and_marks_flags() {
        let o = vec![
            obs(
                "1",
                "2160-0",
                "Creatinine",
                "2026-01-01T09:00:00Z",
                80.0,
                None,
            ),
            obs(
                "2",
                "2160-0",
                "Creatinine",
                "2026-02-01T09:00:00Z",
                150.0,
                Some("H"),
            ),
            obs(
                "3",
                "2160-0",
                "Creatinine",
                "2026-03-01T09:00:00Z",
                600.0,
                Some("HH"),
            ),
        ];
        let c = build("p", &o);
        let svg = trend_svg(&c.series[0]);
        assert_eq!(svg.matches("data-testid=\"trend-point\"").count(), 3);
        assert!(svg.contains("data-flag=\"HH\""));
        assert!(svg.contains("data-flag=\"H\""));
        assert!(svg.contains("data-testid=\"trend-range\""));
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("(critically high)"));
    }

    #[test]
    fn text_is_escaped() {
        let mut o = obs("1", "x", "A<b>&\"c", "2026-01-01T09:00:00Z", 1.0, None);
        o["code"]["coding"][0]["display"] = json!("A<b>&\"c");
        let svg = trend_svg(&build("p", &[o]).series[0]);
        assert!(!svg.contains("A<b>"));
        assert!(svg.contains("A&lt;b&gt;&amp;&quot;c"));
    }

    #[test]
    fn nothing_numeric_draws_nothing() {
        let mut o = obs("1", "x", "Culture", "2026-01-01T09:00:00Z", 1.0, None);
        o.as_object_mut().map(|m| m.remove("valueQuantity"));
        o["valueString"] = json!("No growth");
        let c = build("p", &[o]);
        assert_eq!(c.series[0].points[0].text, "No growth");
        assert_eq!(trend_svg(&c.series[0]), "");
    }

    fn series_of(values: &[(i64, f64)], low: Option<f64>, high: Option<f64>) -> Series {
        Series {
            key: "k".into(),
            display: "d".into(),
            unit: None,
            low,
            high,
            points: values
                .iter()
                .enumerate()
                .map(|(i, (t, v))| Point {
                    observation: i.to_string(),
                    at: t.to_string(),
                    at_ms: *t,
                    value: Some(*v),
                    text: v.to_string(),
                    flag: ValueFlag::Unknown,
                    status: "final".into(),
                })
                .collect(),
        }
    }

    proptest! {
        /// Every value and every range limit lands inside the plotting
        /// area, which is inside the viewBox; later times are further
        /// right and larger values higher up.
        #[test]
        fn values_map_inside_the_viewbox(
            values in prop::collection::vec((0i64..4_000_000_000_000, -1e6f64..1e6), 1..60),
            low in prop::option::of(-1e6f64..1e6),
            high in prop::option::of(-1e6f64..1e6),
        ) {
            let s = series_of(&values, low, high);
            let sc = Scale::of(&s).expect("numeric");
            let (ml, mt, mr, mb) = MARGIN;
            for (t, v) in &values {
                let (x, y) = (sc.x(*t), sc.y(*v));
                prop_assert!(x >= ml - 1e-9 && x <= CHART_WIDTH - mr + 1e-9, "x {x}");
                prop_assert!(y >= mt - 1e-9 && y <= CHART_HEIGHT - mb + 1e-9, "y {y}");
                prop_assert!((0.0..=CHART_WIDTH).contains(&x) && (0.0..=CHART_HEIGHT).contains(&y));
            }
            for r in [low, high].into_iter().flatten() {
                let y = sc.y(r);
                prop_assert!(y >= mt - 1e-9 && y <= CHART_HEIGHT - mb + 1e-9);
            }
            for w in values.windows(2) {
                let ((ta, va), (tb, vb)) = (w[0], w[1]);
                if ta < tb { prop_assert!(sc.x(ta) <= sc.x(tb)); }
                if va < vb { prop_assert!(sc.y(va) >= sc.y(vb)); }
            }
            let svg = trend_svg(&s);
            prop_assert_eq!(svg.matches("data-testid=\"trend-point\"").count(), values.len());
        }

        /// The table never loses a value: every dated observation is a
        /// point of exactly one series, each series' points are oldest
        /// first, and the columns are distinct, newest first, bounded.
        #[test]
        fn the_table_keeps_every_value_in_order(
            rows in prop::collection::vec((0usize..5, 0i64..400, -100f64..100.0), 0..80)
        ) {
            let names = ["Urea", "sodium", "Potassium", "creatinine", "Albumin"];
            let o: Vec<Value> = rows.iter().enumerate().map(|(i, (a, day, v))| {
                let at = wardline_fhir::datetime::format_instant(day * 86_400_000 + 1_700_000_000_000);
                obs(&i.to_string(), &a.to_string(), names[*a], &at, *v, None)
            }).collect();
            let c = build("p", &o);
            let total: usize = c.series.iter().map(|s| s.points.len()).sum();
            prop_assert_eq!(total, rows.len());
            for s in &c.series {
                prop_assert!(s.points.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            }
            prop_assert!(c.series.windows(2).all(|w| w[0].display.to_lowercase() <= w[1].display.to_lowercase()));
            prop_assert!(c.columns.len() <= MAX_COLUMNS);
            let ms: Vec<i64> = c.columns.iter().map(|t| parse_range(t).expect("time").0).collect();
            prop_assert!(ms.windows(2).all(|w| w[0] > w[1]));
        }
    }
}
