//! Turnaround times: from the specimen's receipt in the laboratory to the
//! report's authorisation, per test, for the laboratory's managers.
//!
//! For every report the laboratory authorised (its `issued`) in a period,
//! the time from its specimen's `receivedTime`; per test (the report's
//! code): how many, the median and the 90th percentile in minutes, and the
//! longest. Percentiles are by the **nearest rank**: the p-th percentile
//! of n sorted times is the ⌈p/100 · n⌉-th (from 1) — always one of the
//! actual times ("90% were authorised within this"), never interpolated.
//!
//! The figures carry no patient's identity, so the reports are read with
//! the system reader after the caller's access to reports is checked at
//! type level; the view is audited as the caller's.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Op};
use wardline_fhir::search::Handling;
use wardline_store::PageRequest;

use super::{LABORATORY_TAG, LabError, begin, code_key, stamp};
use crate::fhir::{concept_text, reference_id};

/// One test's turnaround.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TurnaroundRow {
    pub test: String,
    /// `system|code`.
    pub code: String,
    pub count: usize,
    pub median_minutes: f64,
    pub p90_minutes: f64,
    pub max_minutes: f64,
}

/// The `p`-th percentile (0 < p ≤ 100) of `values` by the nearest rank;
/// `None` when there are none.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied()
}

fn ms(s: &str) -> Option<i64> {
    wardline_fhir::datetime::parse_range(s).map(|(lo, _)| lo)
}

/// The turnaround of the reports authorised from `since` until (before)
/// `until`, per test, slowest median first.
pub fn turnaround(
    svc: &FhirService,
    access: &dyn Access,
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<Vec<TurnaroundRow>, LabError> {
    if until <= since {
        return Err(LabError::invalid(
            "Period: the end must be after the start.",
        ));
    }
    access.check_type(Op::Search, Some("DiagnosticReport"))?;
    let mut tx = begin(svc, access, "lab-turnaround", "R")?;
    tx.audit_reads();
    let pairs = vec![
        (
            "_tag".to_owned(),
            format!("{}|{}", LABORATORY_TAG.0, LABORATORY_TAG.1),
        ),
        ("status".to_owned(), "final,amended,corrected".to_owned()),
        ("issued".to_owned(), format!("ge{}", stamp(since))),
        ("issued".to_owned(), format!("lt{}", stamp(until))),
    ];
    let q = wardline_fhir::search::parse(
        wardline_fhir::definitions::r4(),
        Some("DiagnosticReport"),
        &pairs,
        Handling::Strict,
    )?;
    let reader = svc.system_reader();
    let mut page = PageRequest {
        count: 1000,
        ..PageRequest::default()
    };
    // (code key, title, specimen id, issued ms)
    let mut reports: Vec<(String, String, String, i64)> = Vec::new();
    loop {
        let p = reader
            .search(&q, &page)
            .map_err(wardline_fhir::FhirError::from)?;
        page.snapshot_rid = Some(p.snapshot_rid);
        page.after_rid = p.resources.last().map(|r| r.rid);
        for r in &p.resources {
            let Ok(dr) = serde_json::from_str::<serde_json::Value>(&r.json) else {
                continue;
            };
            let (Some(spec), Some(issued)) = (
                dr["specimen"][0]
                    .as_object()
                    .and_then(|_| reference_id(&dr["specimen"][0], "Specimen")),
                dr["issued"].as_str().and_then(ms),
            ) else {
                continue;
            };
            reports.push((
                code_key(&dr["code"]),
                concept_text(&dr["code"]).unwrap_or_else(|| "Test".into()),
                spec.to_owned(),
                issued,
            ));
        }
        if !(p.has_more && page.after_rid.is_some()) {
            break;
        }
    }
    let mut received: HashMap<String, i64> = HashMap::new();
    let ids: Vec<String> = {
        let mut v: Vec<String> = reports.iter().map(|r| r.2.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    for chunk in ids.chunks(500) {
        let keys: Vec<(String, String)> = chunk
            .iter()
            .map(|id| ("Specimen".to_owned(), id.clone()))
            .collect();
        for s in reader
            .read_many(&keys)
            .map_err(wardline_fhir::FhirError::from)?
        {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s.json)
                && let Some(t) = v["receivedTime"].as_str().and_then(ms)
            {
                received.insert(s.id.clone(), t);
            }
        }
    }
    let mut per: BTreeMap<String, (String, Vec<f64>)> = BTreeMap::new();
    for (code, title, spec, issued) in reports {
        if let Some(r) = received.get(&spec) {
            let minutes = (issued - r) as f64 / 60_000.0;
            if minutes >= 0.0 {
                per.entry(code)
                    .or_insert_with(|| (title, Vec::new()))
                    .1
                    .push(minutes);
            }
        }
    }
    let mut rows: Vec<TurnaroundRow> = per
        .into_iter()
        .filter_map(|(code, (test, v))| {
            Some(TurnaroundRow {
                count: v.len(),
                median_minutes: percentile(&v, 50.0)?,
                p90_minutes: percentile(&v, 90.0)?,
                max_minutes: percentile(&v, 100.0)?,
                test,
                code,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.median_minutes
            .total_cmp(&a.median_minutes)
            .then_with(|| a.test.cmp(&b.test))
    });
    tx.commit()?;
    Ok(rows)
}

/// A horizontal bar chart of the rows (median bar, 90th percentile tick),
/// as SVG text.
pub fn turnaround_svg(rows: &[TurnaroundRow]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let max = rows.iter().map(|r| r.p90_minutes).fold(1.0_f64, f64::max);
    let (label_w, bar_w, row_h) = (220.0, 420.0, 28.0);
    let h = 30.0 + row_h * rows.len() as f64;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Turnaround by test: median and 90th percentile, minutes" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="Arial, sans-serif" font-size="13">"#,
        w = label_w + bar_w + 120.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 10.0 + row_h * i as f64;
        let med = r.median_minutes / max * bar_w;
        let p90 = r.p90_minutes / max * bar_w;
        s.push_str(&format!(
            r##"<text x="{tx}" y="{ty}" text-anchor="end">{name}</text><rect x="{x}" y="{y}" width="{med:.1}" height="16" fill="#005eb8"><title>median {m:.0} min</title></rect><line x1="{px:.1}" x2="{px:.1}" y1="{y0}" y2="{y1}" stroke="#d5281b" stroke-width="3"><title>90th percentile {p:.0} min</title></line><text x="{lx:.1}" y="{ty}">{m:.0} / {p:.0} min</text>"##,
            tx = label_w - 8.0,
            ty = y + 13.0,
            name = esc(&r.test),
            x = label_w,
            y = y,
            med = med.max(1.0),
            px = label_w + p90,
            y0 = y - 2.0,
            y1 = y + 18.0,
            m = r.median_minutes,
            p = r.p90_minutes,
            lx = label_w + p90.max(med) + 8.0,
        ));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// By hand: ten turnaround times (minutes) of a day's U&Es,
    /// 35 42 47 51 55 58 63 70 88 140. Sorted already.
    /// Median, nearest rank: ⌈0.5·10⌉ = 5th → 55.
    /// 90th: ⌈0.9·10⌉ = 9th → 88. 100th: 10th → 140.
    /// Eleven values (add 30): median ⌈5.5⌉ = 6th of
    /// 30 35 42 47 51 55 58 … → 55; 90th ⌈9.9⌉ = 10th → 88.
    #[test]
    fn hand_worked_percentiles() {
        let day = [63.0, 35.0, 140.0, 47.0, 55.0, 42.0, 88.0, 51.0, 70.0, 58.0];
        assert_eq!(percentile(&day, 50.0), Some(55.0));
        assert_eq!(percentile(&day, 90.0), Some(88.0));
        assert_eq!(percentile(&day, 100.0), Some(140.0));
        let mut more = day.to_vec();
        more.push(30.0);
        assert_eq!(percentile(&more, 50.0), Some(55.0));
        assert_eq!(percentile(&more, 90.0), Some(88.0));
        assert_eq!(percentile(&[7.0], 90.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&day, 0.0), None);
    }

    #[test]
    fn the_chart_names_each_test() {
        let rows = vec![TurnaroundRow {
            test: "Urea & electrolytes".into(),
            code: "x|ue".into(),
            count: 3,
            median_minutes: 55.0,
            p90_minutes: 88.0,
            max_minutes: 140.0,
        }];
        let svg = turnaround_svg(&rows);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Urea &amp; electrolytes"));
        assert!(svg.contains("55 / 88 min"));
    }

    proptest! {
        /// A percentile is one of the values; at least p% of the values
        /// are at or below it and it grows with p.
        #[test]
        fn percentiles_are_ranks(v in proptest::collection::vec(0f64..10_000.0, 1..200), p in 1f64..100.0, q in 1f64..100.0) {
            let x = percentile(&v, p).unwrap();
            prop_assert!(v.contains(&x));
            let at_or_below = v.iter().filter(|y| **y <= x).count() as f64;
            prop_assert!(at_or_below / v.len() as f64 >= p / 100.0 - 1e-12);
            let (lo, hi) = if p <= q { (p, q) } else { (q, p) };
            prop_assert!(percentile(&v, lo).unwrap() <= percentile(&v, hi).unwrap());
        }
    }
}
