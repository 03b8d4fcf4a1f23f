//! `matching`: the duplicate-record scan measured on an external labelled
//! deduplication set (FEBRL, exported by `scripts/bench-matching.sh`).
//!
//! Each row of the CSV becomes a Patient (no NHS number, as for an
//! unverified or temporary registration) in a fresh store; the product's own
//! scan (`pmi::scan_duplicates_by`: blocking searches, then the scorer) runs
//! over them, and the review Tasks it opens are compared with the labels:
//! two records are the same person when their `cluster` is the same.
//! Printed: precision, recall and F1 of the probable band (the queue's
//! default) and of probable and possible together, the scorer alone on the
//! true pairs (recall without the blocking), and optionally the pairs missed
//! and the false alarms, for whoever tunes the weights.
//!
//! CSV columns (a header row; the FEBRL names): `rec_id`, `given_name`,
//! `surname`, `street_number`, `address_1`, `address_2`, `suburb`,
//! `postcode`, `state`, `date_of_birth` (`YYYYMMDD`) and `cluster`. A date
//! of birth that is no calendar date cannot be stored (registration refuses
//! it) and is left out; how many is printed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};
use wardline_core::{ServiceConfig, Trusted};
use wardline_workflow::pmi;

use crate::StoreArgs;

#[derive(Args)]
pub struct MatchingBenchArgs {
    /// The labelled CSV (see the module documentation).
    #[arg(long)]
    febrl: PathBuf,
    /// A name for the data set, printed with the figures.
    #[arg(long)]
    name: Option<String>,
    /// A postgres://… URL (an empty database) instead of a temporary SQLite store.
    #[arg(long)]
    database: Option<String>,
    /// Print this many missed pairs and false alarms.
    #[arg(long, default_value_t = 0)]
    show: usize,
}

#[derive(Debug, serde::Deserialize)]
struct Row {
    rec_id: String,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    surname: String,
    #[serde(default)]
    street_number: String,
    #[serde(default)]
    address_1: String,
    #[serde(default)]
    address_2: String,
    #[serde(default)]
    suburb: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    date_of_birth: String,
    cluster: String,
}

/// A FHIR id from a record id (`rec-552-dup-3` is one already).
fn fhir_id(rec: &str) -> String {
    rec.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// `YYYYMMDD` → `YYYY-MM-DD` when it is a date in the calendar.
fn birth_date(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d = format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..]);
    let y: i32 = s[..4].parse().ok()?;
    let m: u8 = s[4..6].parse().ok()?;
    let day: u8 = s[6..].parse().ok()?;
    let month = time::Month::try_from(m).ok()?;
    time::Date::from_calendar_date(y, month, day).ok()?;
    Some(d)
}

fn patient(r: &Row) -> (Value, bool) {
    let t = |s: &str| s.trim().to_owned();
    let mut name = json!({"use": "official"});
    if !t(&r.surname).is_empty() {
        name["family"] = json!(t(&r.surname));
    }
    if !t(&r.given_name).is_empty() {
        name["given"] = json!([t(&r.given_name)]);
    }
    let mut p = json!({"resourceType": "Patient", "id": fhir_id(&r.rec_id), "active": true});
    if name.get("family").is_some() || name.get("given").is_some() {
        p["name"] = json!([name]);
    }
    let street = [t(&r.street_number), t(&r.address_1)]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let lines: Vec<String> = [street, t(&r.address_2)]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let mut address = json!({"use": "home"});
    if !lines.is_empty() {
        address["line"] = json!(lines);
    }
    for (k, v) in [
        ("city", t(&r.suburb)),
        ("state", t(&r.state)),
        ("postalCode", t(&r.postcode)),
    ] {
        if !v.is_empty() {
            address[k] = json!(v);
        }
    }
    if address.as_object().is_some_and(|o| o.len() > 1) {
        p["address"] = json!([address]);
    }
    let dob = birth_date(&r.date_of_birth);
    let dropped = dob.is_none() && !r.date_of_birth.trim().is_empty();
    if let Some(d) = dob {
        p["birthDate"] = json!(d);
    }
    (p, dropped)
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

/// Precision, recall, F1 of `predicted` against `truth`.
fn figures(
    predicted: &HashSet<(String, String)>,
    truth: &HashSet<(String, String)>,
) -> (f64, f64, f64) {
    let tp = predicted.intersection(truth).count() as f64;
    let p = if predicted.is_empty() {
        0.0
    } else {
        tp / predicted.len() as f64
    };
    let r = if truth.is_empty() {
        0.0
    } else {
        tp / truth.len() as f64
    };
    let f = if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    };
    (p, r, f)
}

/// One review Task: the pair, its score and its band.
fn review_of(t: &Value) -> Option<((String, String), f64, String)> {
    let id = |r: &Value| {
        r.get("reference")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix("Patient/"))
            .map(str::to_owned)
    };
    let a = id(&t["focus"])?;
    let mut b = None;
    let mut score = 0.0;
    let mut band = None;
    for i in t
        .get("input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match i.pointer("/type/text").and_then(Value::as_str) {
            Some("other patient") => b = id(&i["valueReference"]),
            Some("match score") => score = i["valueDecimal"].as_f64().unwrap_or(0.0),
            Some("match band") => band = i["valueCode"].as_str().map(str::to_owned),
            _ => {}
        }
    }
    let band = band.unwrap_or_else(|| {
        if score >= pmi::DUPLICATE_THRESHOLD {
            "probable".to_owned()
        } else {
            "possible".to_owned()
        }
    });
    Some((pair(&a, &b?), score, band))
}

pub fn run(a: MatchingBenchArgs) -> Result<()> {
    let name = a.name.clone().unwrap_or_else(|| {
        a.febrl
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut reader = csv::Reader::from_path(&a.febrl)
        .with_context(|| format!("cannot read {}", a.febrl.display()))?;
    let mut rows: Vec<Row> = Vec::new();
    for r in reader.deserialize() {
        rows.push(r.with_context(|| format!("a row of {}", a.febrl.display()))?);
    }
    let mut clusters: HashMap<String, Vec<String>> = HashMap::new();
    let mut by_id: HashMap<String, Value> = HashMap::new();
    let mut dropped_dates = 0;
    for r in &rows {
        let (p, dropped) = patient(r);
        dropped_dates += usize::from(dropped);
        let id = fhir_id(&r.rec_id);
        anyhow::ensure!(
            by_id.insert(id.clone(), p).is_none(),
            "two rows have the record id {}",
            r.rec_id
        );
        clusters.entry(r.cluster.clone()).or_default().push(id);
    }
    let mut truth: HashSet<(String, String)> = HashSet::new();
    for ids in clusters.values() {
        for (i, x) in ids.iter().enumerate() {
            for y in &ids[i + 1..] {
                truth.insert(pair(x, y));
            }
        }
    }

    let dir = tempfile::tempdir()?;
    let svc = StoreArgs {
        data_dir: dir.path().to_owned(),
        database: a.database.clone(),
        time_zone: None,
        db_key_file: None,
    }
    .service(ServiceConfig::default())?;
    let access = Trusted::operator("bench");
    let mut ids: Vec<&String> = by_id.keys().collect();
    ids.sort();
    for chunk in ids.chunks(1000) {
        svc.transact(&access, |tx| {
            for id in chunk {
                tx.save(by_id[*id].clone())?;
            }
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("loading the patients: {e}"))?;
    }
    let start = Instant::now();
    let report = pmi::scan_duplicates_by(&svc, &access, pmi::SCAN_BATCH)
        .map_err(|e| anyhow::anyhow!("the scan failed: {e}"))?;
    let scan_secs = start.elapsed().as_secs_f64();

    // Every review Task the scan opened.
    let mut reviews: Vec<((String, String), f64, String)> = Vec::new();
    let mut offset = 0;
    loop {
        let found = svc
            .search_as(
                &access,
                "Task",
                &[
                    (
                        "code".to_owned(),
                        format!("{}|{}", pmi::TASK_SYSTEM, pmi::DUPLICATE_REVIEW_CODE),
                    ),
                    ("_count".to_owned(), "1000".to_owned()),
                    ("_sort".to_owned(), "_id".to_owned()),
                    ("_offset".to_owned(), offset.to_string()),
                ],
            )
            .map_err(|e| anyhow::anyhow!("reading the reviews: {e}"))?;
        offset += found.resources.len();
        reviews.extend(found.resources.iter().filter_map(review_of));
        if !found.more || found.resources.is_empty() {
            break;
        }
    }
    let probable: HashSet<(String, String)> = reviews
        .iter()
        .filter(|r| r.2 == "probable")
        .map(|r| r.0.clone())
        .collect();
    let all: HashSet<(String, String)> = reviews.iter().map(|r| r.0.clone()).collect();
    // The scorer alone on every true pair (no blocking).
    let mut scored: Vec<((String, String), pmi::matching::Match)> = truth
        .iter()
        .map(|k| {
            (
                k.clone(),
                pmi::matching::compare(&by_id[&k.0], &by_id[&k.1]),
            )
        })
        .collect();
    scored.sort_by(|x, y| x.0.cmp(&y.0));
    let scorer_probable = scored
        .iter()
        .filter(|(_, m)| m.band == Some(pmi::Band::Probable))
        .count();
    let scorer_any = scored.iter().filter(|(_, m)| m.band.is_some()).count();

    println!(
        "matching [{}] {name}: {} records, {} true pairs, {} dates of birth not in the calendar left out; \
         scan examined {} and opened {} reviews in {scan_secs:.1} s",
        svc.backend(),
        rows.len(),
        truth.len(),
        dropped_dates,
        report.examined,
        report.opened,
    );
    let (p, r, f) = figures(&probable, &truth);
    println!(
        "RESULT {name} wardline-probable P {p:.3} R {r:.3} F1 {f:.3} ({} pairs)",
        probable.len()
    );
    let (p, r, f) = figures(&all, &truth);
    println!(
        "RESULT {name} wardline-probable+possible P {p:.3} R {r:.3} F1 {f:.3} ({} pairs)",
        all.len()
    );
    println!(
        "scorer alone on the {} true pairs (no blocking): {:.3} probable, {:.3} probable or possible",
        truth.len(),
        scorer_probable as f64 / truth.len().max(1) as f64,
        scorer_any as f64 / truth.len().max(1) as f64,
    );
    if a.show > 0 {
        let brief = |id: &str| {
            let p = &by_id[id];
            let s = pmi::PatientSummary::from_resource(p);
            format!(
                "{} | {} | {}",
                s.display_name,
                s.birth_date.unwrap_or_default(),
                s.address.unwrap_or_default()
            )
        };
        println!("missed (first {}):", a.show);
        for (k, m) in scored.iter().filter(|(k, _)| !all.contains(k)).take(a.show) {
            println!(
                "  {:.3} {:?}\n    {}\n    {}",
                m.score,
                m.reasons,
                brief(&k.0),
                brief(&k.1)
            );
        }
        println!("false alarms (first {}):", a.show);
        for (k, score, band) in reviews
            .iter()
            .filter(|r| !truth.contains(&r.0))
            .take(a.show)
        {
            println!(
                "  {score:.3} {band}\n    {}\n    {}",
                brief(&k.0),
                brief(&k.1)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_patients() {
        let r = Row {
            rec_id: "rec-552-dup-3".into(),
            given_name: "harley".into(),
            surname: "mccarthy".into(),
            street_number: "177".into(),
            address_1: "pridham street".into(),
            address_2: "milton".into(),
            suburb: "marsden".into(),
            postcode: "3165".into(),
            state: "nsw".into(),
            date_of_birth: "19080419".into(),
            cluster: "552".into(),
        };
        let (p, dropped) = patient(&r);
        assert!(!dropped);
        assert_eq!(p["id"], "rec-552-dup-3");
        assert_eq!(p["birthDate"], "1908-04-19");
        assert_eq!(p["address"][0]["line"][0], "177 pridham street");
        assert_eq!(p["address"][0]["postalCode"], "3165");
        let bad = Row {
            date_of_birth: "19081319".into(),
            ..r
        };
        assert_eq!(patient(&bad), (patient(&bad).0, true));
        assert!(patient(&bad).0.get("birthDate").is_none());
    }

    #[test]
    fn precision_recall_f1() {
        let t: HashSet<_> = [pair("a", "b"), pair("c", "d")].into_iter().collect();
        let p: HashSet<_> = [pair("b", "a"), pair("a", "c")].into_iter().collect();
        assert_eq!(figures(&p, &t), (0.5, 0.5, 0.5));
    }
}
