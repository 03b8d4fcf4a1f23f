//! `wardline-bench theatre`: a theatre list page (issue 19; target under
//! 100 ms p99).
//!
//! Seeds (in a fresh store: SQLite in a temporary directory, or
//! `--database`) `--theatres` theatres with two sessions every weekday for
//! `--weeks` weeks (planned by `list::plan_session_in`, the workflow's own
//! path), `--history` past operations (`Procedure` with a performed period,
//! over 20 procedure codes: the history estimates are read from) and
//! `--waiting` inpatient waiting-list entries of the specialty; then fills
//! one session's list with 8 cases by `list::add_case_in`. Times what the
//! list page asks of the workflow — `list::session` (the session, its
//! cases, patients, estimates and conflicts) and `list::waiting_in` (the
//! admitted entries offered, each with its estimate) — `--repeat` times,
//! and prints min, p50 and p99.

use std::time::{Duration as StdDuration, Instant};

use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::json;
use time::macros::{date, datetime};
use time::{Duration, Weekday};
use wardline_core::Trusted;
use wardline_workflow::theatres::LOCATION_KIND_SYSTEM;
use wardline_workflow::theatres::list::{self, NewSession};
use wardline_workflow::waiting::{self, List, NewEntry, Priority};

#[derive(Args)]
pub struct TheatreBenchArgs {
    /// A postgres://… URL; default: SQLite in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    /// Theatres of the trust.
    #[arg(long, default_value_t = 12)]
    theatres: usize,
    /// Weeks of sessions planned in each.
    #[arg(long, default_value_t = 8)]
    weeks: i64,
    /// Past operations in the store.
    #[arg(long, default_value_t = 5000)]
    history: usize,
    /// Inpatient entries waiting, of the list's specialty.
    #[arg(long, default_value_t = 300)]
    waiting: usize,
    /// Timed runs of the list page's workflow calls.
    #[arg(long, default_value_t = 200)]
    repeat: usize,
}

fn e(x: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{x}")
}

const SNOMED: &str = "http://snomed.info/sct";

fn code(n: usize) -> String {
    format!("{}", 100_000 + n % 20)
}

pub fn run(a: TheatreBenchArgs) -> Result<()> {
    anyhow::ensure!(
        a.repeat >= 1 && a.theatres >= 1 && a.weeks >= 1,
        "--repeat, --theatres, --weeks ≥ 1"
    );
    let (svc, _dir) = crate::discharge::service(a.database.clone())?;
    let op = Trusted::operator("bench-theatre");
    let first = date!(2026 - 12 - 07);
    let loading = Instant::now();
    let mut busy = None;
    for t in 0..a.theatres {
        let mut tx = svc.begin(&op).map_err(e)?;
        tx.save(
            json!({"resourceType": "Practitioner", "id": format!("bench-surg-{t}"),
            "name": [{"family": format!("Surgeon{t}"), "prefix": ["Mr"]}]}),
        )
        .map_err(e)?;
        tx.save(
            json!({"resourceType": "Location", "id": format!("bench-th-{t}"), "status": "active",
            "name": format!("Theatre {t}"),
            "type": [{"coding": [{"system": LOCATION_KIND_SYSTEM, "code": "theatre"}]}]}),
        )
        .map_err(e)?;
        for d in 0..a.weeks * 7 {
            let day = first + Duration::days(d);
            if matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
                continue;
            }
            for (h0, h1) in [(8, 12), (13, 17)] {
                let start = day.with_hms(h0, 0, 0).map_err(e)?.assume_utc();
                let end = day.with_hms(h1, 0, 0).map_err(e)?.assume_utc();
                let (th, su) = (format!("bench-th-{t}"), format!("bench-surg-{t}"));
                let id = list::plan_session_in(
                    &mut tx,
                    &NewSession {
                        theatre: &th,
                        specialty: "110",
                        surgeon: &su,
                        anaesthetist: None,
                        start,
                        end,
                    },
                )
                .map_err(e)?;
                if t == 0 && d == 0 && h0 == 8 {
                    busy = Some(id);
                }
            }
        }
        tx.commit().map_err(e)?;
    }
    let busy = busy.ok_or_else(|| anyhow!("no session planned"))?;
    let mut tx = svc.begin(&op).map_err(e)?;
    for n in 0..a.history {
        let start = datetime!(2026-01-05 09:00 UTC) + Duration::hours(n as i64);
        tx.save(json!({"resourceType": "Procedure", "status": "completed",
            "code": {"coding": [{"system": SNOMED, "code": code(n)}]},
            "subject": {"reference": "Patient/bench-tp-0"},
            "performedPeriod": {"start": wardline_workflow::orders::request::fhir_time(start),
                "end": wardline_workflow::orders::request::fhir_time(start + Duration::minutes(30 + (n % 7) as i64 * 10))}}))
            .map_err(e)?;
    }
    let mut entries = Vec::new();
    for n in 0..a.waiting.max(8) {
        let p = format!("bench-tp-{n}");
        tx.save(json!({"resourceType": "Patient", "id": p,
            "name": [{"family": format!("Surgical{n}"), "given": ["Bench"]}]}))
            .map_err(e)?;
        let c = code(n);
        entries.push(
            waiting::add_in(
                &mut tx,
                &NewEntry {
                    patient: &p,
                    list: List::Inpatient,
                    pathway: None,
                    specialty: "110",
                    consultant: Some("bench-surg-0"),
                    procedure: Some((&c, "Bench procedure")),
                    priority: Priority::P3,
                    decided: date!(2026 - 11 - 02),
                    note: None,
                },
            )
            .map_err(e)?,
        );
    }
    for entry in entries.iter().take(8) {
        list::add_case_in(&mut tx, &busy, entry, true).map_err(e)?;
    }
    tx.commit().map_err(e)?;
    println!(
        "theatre [{}]: {} theatres × {} weeks of sessions, {} past operations, {} entries waiting; loaded in {:.1} s",
        svc.backend(),
        a.theatres,
        a.weeks,
        a.history,
        a.waiting.max(8) - 8,
        loading.elapsed().as_secs_f64()
    );
    let s = list::session(&svc, &op, &busy).map_err(e)?;
    anyhow::ensure!(s.cases.len() == 8, "the list shows its 8 cases");
    let mut times: Vec<StdDuration> = Vec::with_capacity(a.repeat);
    for _ in 0..a.repeat {
        let t = Instant::now();
        let s = list::session(&svc, &op, &busy).map_err(e)?;
        let w = {
            let mut tx = svc.begin(&op).map_err(e)?;
            list::waiting_in(&mut tx, &s.specialty).map_err(e)?
        };
        times.push(t.elapsed());
        std::hint::black_box((s, w));
    }
    times.sort();
    println!(
        "theatre [{}]: theatre list page of 8 cases and {} waiting ({} runs): min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms",
        svc.backend(),
        a.waiting.max(8) - 8,
        a.repeat,
        crate::bench::percentile(&times, 0.0),
        crate::bench::percentile(&times, 0.5),
        crate::bench::percentile(&times, 0.99),
    );
    Ok(())
}
