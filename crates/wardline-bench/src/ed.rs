//! `wardline-bench ed`: the Emergency Department's tracking board with
//! 150 patients in the department (issue 20; target under 100 ms p99).
//!
//! Seeds (in a fresh store: SQLite in a temporary directory, or
//! `--database`) a site with its department and areas, `--past` finished
//! attendances (arrived, triaged, discharged home over the past weeks)
//! and `--patients` patients in the department now — arrived by
//! `ed::attend::arrive_in`, most triaged and streamed, a tenth referred to
//! a specialty (the workflow's own paths). Times what the board page asks
//! of the workflow, `ed::board::board` (every attendance in the
//! department, the patients, the open referrals and the clocks),
//! `--repeat` times, and prints min, p50 and p99.

use std::time::{Duration as StdDuration, Instant};

use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::json;
use time::Duration;
use time::macros::datetime;
use wardline_core::Trusted;
use wardline_workflow::ed::attend::{self, Arrival};
use wardline_workflow::ed::{AREA_SYSTEM, Stream, board};
use wardline_workflow::theatres::LOCATION_KIND_SYSTEM;

#[derive(Args)]
pub struct EdBenchArgs {
    /// A postgres://… URL; default: SQLite in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    /// Patients in the department.
    #[arg(long, default_value_t = 150)]
    patients: usize,
    /// Finished attendances in the store.
    #[arg(long, default_value_t = 5000)]
    past: usize,
    /// Timed runs of the board.
    #[arg(long, default_value_t = 200)]
    repeat: usize,
}

fn e(x: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{x}")
}

pub fn run(a: EdBenchArgs) -> Result<()> {
    anyhow::ensure!(a.repeat >= 1, "--repeat must be at least 1");
    let (svc, _dir) = crate::discharge::service(a.database.clone())?;
    let op = Trusted::operator("bench-ed");
    let now = datetime!(2026-12-07 18:00 UTC);
    let loading = Instant::now();
    let kind = |c: &str| json!([{"coding": [{"system": LOCATION_KIND_SYSTEM, "code": c}]}]);
    let mut tx = svc.begin(&op).map_err(e)?;
    tx.save(json!({"resourceType": "Location", "id": "bench-site", "status": "active", "name": "Bench General"}))
        .map_err(e)?;
    tx.save(json!({"resourceType": "Location", "id": "bench-ed", "status": "active", "name": "Emergency Department",
        "partOf": {"reference": "Location/bench-site"}, "type": kind("ed")}))
        .map_err(e)?;
    for s in Stream::ALL {
        tx.save(json!({"resourceType": "Location", "id": format!("bench-ed-{}", s.code()), "status": "active",
            "name": s.label(), "partOf": {"reference": "Location/bench-ed"}, "type": kind("ed-area"),
            "identifier": [{"system": AREA_SYSTEM, "value": s.code()}]}))
            .map_err(e)?;
    }
    tx.commit().map_err(e)?;
    let total = a.past + a.patients;
    for chunk in (0..total).collect::<Vec<_>>().chunks(200) {
        let mut tx = svc.begin(&op).map_err(e)?;
        for &n in chunk {
            let p = format!("bench-ep-{n}");
            tx.save(json!({"resourceType": "Patient", "id": p,
                "name": [{"family": format!("Emergency{n}"), "given": ["Bench"]}]}))
                .map_err(e)?;
            let past = n < a.past;
            let arrived = if past {
                now - Duration::hours(24 + (n as i64 % 500) * 3)
            } else {
                now - Duration::minutes((n - a.past) as i64 * 5 % 900)
            };
            let id = attend::arrive_in(
                &mut tx,
                &Arrival {
                    patient_id: p,
                    site: "bench-site".into(),
                    mode: if n % 3 == 0 {
                        "1048031000000100"
                    } else {
                        "1048061000000105"
                    }
                    .into(),
                    ambulance_incident: if n % 3 == 0 {
                        format!("INC-{n}")
                    } else {
                        String::new()
                    },
                    handover: None,
                    arrived: Some(arrived),
                    complaint: "29857009".into(),
                },
                arrived,
            )
            .map_err(e)?;
            if n % 8 != 0 || past {
                let t = arrived + Duration::minutes(10);
                attend::triage_in(&mut tx, &id, (n % 5) as u8 + 1, "Bench discriminator", t)
                    .map_err(e)?;
                let s = Stream::ALL[n % Stream::ALL.len()];
                attend::stream_in(&mut tx, &id, s, t + Duration::minutes(5)).map_err(e)?;
            }
            if past {
                attend::discharge_in(&mut tx, &id, "306689006", arrived + Duration::hours(3))
                    .map_err(e)?;
            } else if n % 10 == 0 {
                attend::refer_in(&mut tx, &id, "320", "", now).map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
    }
    println!(
        "ed [{}]: {} in the department, {} past attendances; loaded in {:.1} s",
        svc.backend(),
        a.patients,
        a.past,
        loading.elapsed().as_secs_f64()
    );
    let b = board::board(&svc, &op, "bench-site", now).map_err(e)?;
    anyhow::ensure!(
        b.rows.len() == a.patients,
        "the board shows {} of {} patients",
        b.rows.len(),
        a.patients
    );
    let mut times: Vec<StdDuration> = Vec::with_capacity(a.repeat);
    for _ in 0..a.repeat {
        let t = Instant::now();
        let b = board::board(&svc, &op, "bench-site", now).map_err(e)?;
        times.push(t.elapsed());
        std::hint::black_box(b);
    }
    times.sort();
    println!(
        "ed [{}]: the board of {} patients ({} runs): min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms",
        svc.backend(),
        a.patients,
        a.repeat,
        crate::bench::percentile(&times, 0.0),
        crate::bench::percentile(&times, 0.5),
        crate::bench::percentile(&times, 0.99),
    );
    Ok(())
}
