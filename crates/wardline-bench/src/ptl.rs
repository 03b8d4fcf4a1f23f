//! `wardline-bench ptl`: the patient-targeted list (issue 19) over
//! `--pathways` open RTT pathways (default 100,000; target under 2 s).
//!
//! Seeds (in a fresh store: SQLite in a temporary directory, or
//! `--database`) `--pathways / 5` patients with five pathways each, opened
//! by `rtt::open_in` (the workflow's own shape) with clock starts spread
//! over the last 80 weeks across ten specialties and twenty consultants,
//! then times `rtt::ptl::ptl` — the page's workflow call: every open
//! pathway read, weeks waited, bands, 18-week performance, 52-week
//! breaches by specialty and consultant — `--repeat` times, and the CSV
//! of the whole list once. Prints min, p50 and p99.

use std::time::{Duration as StdDuration, Instant};

use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::json;
use time::{Date, Duration};
use wardline_core::Trusted;
use wardline_workflow::rtt::ptl::{self, Filter};
use wardline_workflow::rtt::{self, NewPathway, SPECIALTIES, Status};

#[derive(Args)]
pub struct PtlBenchArgs {
    /// A postgres://… URL; default: SQLite in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    /// Open pathways on the list.
    #[arg(long, default_value_t = 100_000)]
    pathways: usize,
    /// Timed runs of the PTL.
    #[arg(long, default_value_t = 10)]
    repeat: usize,
}

const TODAY: Date = time::macros::date!(2026 - 12 - 01);

pub fn run(a: PtlBenchArgs) -> Result<()> {
    anyhow::ensure!(
        a.repeat >= 1 && a.pathways >= 5,
        "--repeat ≥ 1, --pathways ≥ 5"
    );
    let (svc, _dir) = crate::discharge::service(a.database.clone())?;
    let op = Trusted::operator("bench-ptl");
    let loading = Instant::now();
    let mut tx = svc.begin(&op).map_err(|e| anyhow!("{e}"))?;
    for c in 0..20 {
        tx.save(
            json!({"resourceType": "Practitioner", "id": format!("bench-cons-{c}"),
            "name": [{"family": format!("Consultant{c}"), "prefix": ["Dr"]}]}),
        )
        .map_err(|e| anyhow!("{e}"))?;
    }
    tx.commit().map_err(|e| anyhow!("{e}"))?;
    let patients = a.pathways / 5;
    let batch = 200;
    for first in (0..patients).step_by(batch) {
        let mut tx = svc.begin(&op).map_err(|e| anyhow!("{e}"))?;
        for p in first..(first + batch).min(patients) {
            let id = format!("bench-p{p}");
            tx.save(json!({"resourceType": "Patient", "id": id, "name": [{"family": format!("Waiting{p}")}]}))
                .map_err(|e| anyhow!("{e}"))?;
            for k in 0..5 {
                let n = p * 5 + k;
                let consultant = format!("bench-cons-{}", n % 20);
                rtt::open_in(
                    &mut tx,
                    &NewPathway {
                        patient: &id,
                        referral: None,
                        specialty: SPECIALTIES[n % 10].0,
                        consultant: Some(&consultant),
                        start: TODAY - Duration::days(((n * 37) % 560) as i64),
                        status: Status::S10,
                        source: "ServiceRequest/bench",
                    },
                )
                .map_err(|e| anyhow!("{e}"))?;
            }
        }
        tx.commit().map_err(|e| anyhow!("{e}"))?;
    }
    let total = patients * 5;
    println!(
        "ptl [{}]: {total} open pathways of {patients} patients loaded in {:.1} s",
        svc.backend(),
        loading.elapsed().as_secs_f64()
    );
    let p = ptl::ptl(&svc, &op, TODAY, Filter::default()).map_err(|e| anyhow!("{e}"))?;
    anyhow::ensure!(
        p.all.total == total,
        "the PTL shows {} of {total}",
        p.all.total
    );
    let mut times: Vec<StdDuration> = Vec::with_capacity(a.repeat);
    for _ in 0..a.repeat {
        let t = Instant::now();
        let p = ptl::ptl(&svc, &op, TODAY, Filter::default()).map_err(|e| anyhow!("{e}"))?;
        times.push(t.elapsed());
        std::hint::black_box(p);
    }
    times.sort();
    let t = Instant::now();
    let csv = ptl::csv(&p, |id| (id.to_owned(), String::new()));
    let csv_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "ptl [{}]: PTL of {total} open pathways ({} runs): min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms; {:.1}% under 18 weeks, {} over 52; CSV ({} lines) {csv_ms:.1} ms",
        svc.backend(),
        a.repeat,
        crate::bench::percentile(&times, 0.0),
        crate::bench::percentile(&times, 0.5),
        crate::bench::percentile(&times, 0.99),
        p.all.performance(),
        p.all.over_52,
        csv.lines().count(),
    );
    Ok(())
}
