//! The patient-targeted list (PTL): every open RTT pathway (clock running,
//! not transferred to another provider: last event 21) with its weeks
//! waited, in weeks-waiting bands, the 18-week performance (the share of
//! incomplete pathways waiting under 18 weeks) and the 52-week breaches,
//! overall, by specialty and by consultant.
//!
//! It is read in one audited transaction (`rtt-ptl`) by a caller who may
//! search pathways (`EpisodeOfCare`); the rows carry ids, and the page
//! names the patients it shows.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::Date;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Op};

use super::{Clock, EPISODE_TYPE_RTT, EPISODE_TYPE_SYSTEM, Pathway, RttError, Status};

/// The PTL's weeks-waiting bands: `(from, to)` weeks, `to` excluded
/// (`None`: and over).
pub const BANDS: [(i64, Option<i64>); 9] = [
    (0, Some(6)),
    (6, Some(12)),
    (12, Some(18)),
    (18, Some(26)),
    (26, Some(40)),
    (40, Some(52)),
    (52, Some(65)),
    (65, Some(78)),
    (78, None),
];

/// A band's label, e.g. "18 to under 26 weeks".
pub fn band_label(b: (i64, Option<i64>)) -> String {
    match b.1 {
        Some(to) => format!("{} to under {to} weeks", b.0),
        None => format!("{} weeks and over", b.0),
    }
}

/// Which narrowing of the PTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter<'a> {
    /// Treatment function code.
    pub specialty: Option<&'a str>,
    /// `Practitioner` id.
    pub consultant: Option<&'a str>,
}

/// One open pathway on the PTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `EpisodeOfCare` id.
    pub pathway: String,
    pub ppid: String,
    /// Patient id.
    pub patient: String,
    pub specialty: String,
    /// Practitioner id.
    pub consultant: Option<String>,
    pub start: Date,
    pub weeks: i64,
    pub last: Option<Status>,
}

/// Counts of a group of open pathways.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// The specialty code or consultant id (empty for the whole list, or
    /// for pathways with no consultant).
    pub key: String,
    pub total: usize,
    /// Under 18 weeks.
    pub under_18: usize,
    /// 18 to under 52 weeks.
    pub from_18_to_52: usize,
    /// 52 weeks and over: breaches.
    pub over_52: usize,
    /// Per [`BANDS`].
    pub bands: [usize; 9],
}

impl Tally {
    fn add(&mut self, weeks: i64) {
        self.total += 1;
        match weeks {
            w if w < 18 => self.under_18 += 1,
            w if w < 52 => self.from_18_to_52 += 1,
            _ => self.over_52 += 1,
        }
        if let Some(i) = BANDS
            .iter()
            .position(|(from, to)| weeks >= *from && to.is_none_or(|t| weeks < t))
        {
            self.bands[i] += 1;
        }
    }

    /// The 18-week performance: % of the pathways under 18 weeks (100 for
    /// none).
    pub fn performance(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            self.under_18 as f64 * 100.0 / self.total as f64
        }
    }
}

/// The PTL on a day.
#[derive(Debug, Clone, PartialEq)]
pub struct Ptl {
    pub today: Date,
    /// Longest wait first.
    pub rows: Vec<Row>,
    pub all: Tally,
    /// By specialty code, in code order.
    pub by_specialty: Vec<Tally>,
    /// By consultant id, in id order (no consultant: key "").
    pub by_consultant: Vec<Tally>,
}

/// Whether a pathway is on the PTL: its clock runs and it has not moved to
/// another provider (last event 21).
pub fn on_ptl(p: &Pathway) -> bool {
    p.clock == Clock::Running && p.last_status() != Some(Status::S21)
}

/// The PTL of the stored pathways `stored` (the JSON of open
/// `EpisodeOfCare`s) on `today`.
pub fn build<'a>(stored: impl IntoIterator<Item = &'a Value>, today: Date, f: Filter) -> Ptl {
    let mut rows: Vec<Row> = stored
        .into_iter()
        .filter_map(Pathway::of)
        .filter(on_ptl)
        .filter(|p| f.specialty.is_none_or(|s| p.specialty == s))
        .filter(|p| {
            f.consultant
                .is_none_or(|c| p.consultant.as_deref() == Some(c))
        })
        .map(|p| Row {
            weeks: p.weeks_waited(today).unwrap_or(0),
            last: p.last_status(),
            pathway: p.id,
            ppid: p.ppid,
            patient: p.patient,
            specialty: p.specialty,
            consultant: p.consultant,
            start: p.start,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.weeks
            .cmp(&a.weeks)
            .then(a.start.cmp(&b.start))
            .then(a.pathway.cmp(&b.pathway))
    });
    let mut all = Tally::default();
    let mut spec: BTreeMap<String, Tally> = BTreeMap::new();
    let mut cons: BTreeMap<String, Tally> = BTreeMap::new();
    for r in &rows {
        all.add(r.weeks);
        spec.entry(r.specialty.clone()).or_default().add(r.weeks);
        cons.entry(r.consultant.clone().unwrap_or_default())
            .or_default()
            .add(r.weeks);
    }
    let keyed = |m: BTreeMap<String, Tally>| {
        m.into_iter()
            .map(|(k, mut t)| {
                t.key = k;
                t
            })
            .collect()
    };
    Ptl {
        today,
        rows,
        all,
        by_specialty: keyed(spec),
        by_consultant: keyed(cons),
    }
}

/// Reads the PTL on `today` in one audited transaction (`rtt-ptl`); the
/// caller must be allowed to search pathways.
pub fn ptl(
    svc: &FhirService,
    access: &dyn Access,
    today: Date,
    f: Filter,
) -> Result<Ptl, RttError> {
    access.check_type(Op::Search, Some("EpisodeOfCare"))?;
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "rtt-ptl", "R");
    tx.audit_reads();
    let mut pairs = vec![
        ("type", format!("{EPISODE_TYPE_SYSTEM}|{EPISODE_TYPE_RTT}")),
        ("status", "active".to_owned()),
    ];
    if let Some(c) = f.consultant {
        pairs.push(("care-manager", format!("Practitioner/{c}")));
    }
    let stored = crate::fhir::search_all(&tx, "EpisodeOfCare", &pairs)?;
    tx.commit()?;
    Ok(build(&stored, today, f))
}

/// The PTL as CSV (one row a pathway, longest wait first); `name` gives a
/// patient's name and NHS number from their id.
pub fn csv(p: &Ptl, name: impl Fn(&str) -> (String, String)) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "PPID",
        "Pathway",
        "Patient",
        "NHS number",
        "Specialty",
        "Consultant",
        "Clock start",
        "Weeks waited",
        "Band",
        "Last RTT status",
    ]);
    for r in &p.rows {
        let (n, nhs) = name(&r.patient);
        let band = BANDS
            .iter()
            .find(|(from, to)| r.weeks >= *from && to.is_none_or(|t| r.weeks < t))
            .map(|b| band_label(*b))
            .unwrap_or_default();
        let _ = w.write_record([
            r.ppid.as_str(),
            &r.pathway,
            &n,
            &nhs,
            &r.specialty,
            r.consultant.as_deref().unwrap_or(""),
            &super::fhir_date(r.start),
            &r.weeks.to_string(),
            &band,
            r.last.map_or("", Status::code),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_every_week_once() {
        for w in 0..200 {
            let n = BANDS
                .iter()
                .filter(|(from, to)| w >= *from && to.is_none_or(|t| w < t))
                .count();
            assert_eq!(n, 1, "week {w}");
        }
        let mut t = Tally::default();
        for w in [0, 17, 18, 51, 52, 100] {
            t.add(w);
        }
        assert_eq!((t.under_18, t.from_18_to_52, t.over_52), (2, 2, 2));
        assert!((t.performance() - 33.333).abs() < 0.01);
        assert_eq!(Tally::default().performance(), 100.0);
        assert_eq!(band_label(BANDS[8]), "78 weeks and over");
    }
}
