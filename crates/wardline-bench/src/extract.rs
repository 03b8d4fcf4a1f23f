//! `wardline-bench extract` (issue 21, bounded work): the cost of one large
//! Patient, `n` names each with text, family, three given names, prefix and
//! suffix (1,500 / 3,000 / 12,000 by default). Per size: index extraction
//! alone (`Definitions::extract_index`, the fastest of `--repeat` runs), a
//! create through the service (`FhirService::handle`, validation, index,
//! durable commit) with the resource limits lifted so it is accepted, and
//! the same create under the default limits (accepted or refused, and how
//! fast). Before issue 21, extraction was quadratic in the names and the
//! whole create ran under the writer's lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use wardline_core::{FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Trusted};

use crate::StoreArgs;

#[derive(Args)]
pub struct ExtractBenchArgs {
    /// A postgres://… URL to benchmark PostgreSQL (the database should be empty).
    #[arg(long)]
    database: Option<String>,
    /// Patient sizes, in names.
    #[arg(long, value_delimiter = ',', default_values_t = [1500usize, 3000, 12000])]
    names: Vec<usize>,
    /// Extraction runs per size (the fastest is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

fn patient(n: usize) -> Value {
    let names: Vec<Value> = (0..n)
        .map(|i| {
            json!({"text": format!("Dr Jo{i} Ann Sue Bloggs{i} PhD"), "family": format!("Bloggs{i}"),
                "given": [format!("Jo{i}"), "Ann", "Sue"], "prefix": ["Dr"], "suffix": ["PhD"]})
        })
        .collect();
    json!({"resourceType": "Patient", "name": names})
}

fn service(
    a: &ExtractBenchArgs,
    dir: &std::path::Path,
    config: ServiceConfig,
) -> Result<Arc<FhirService>> {
    Ok(Arc::new(
        StoreArgs {
            data_dir: dir.to_owned(),
            database: a.database.clone(),
            time_zone: None,
            db_key_file: None,
        }
        .service(config)?,
    ))
}

/// One POST of `body`; (status, time).
fn create(svc: &FhirService, body: &[u8]) -> (u16, Duration) {
    let t = Instant::now();
    let r = svc.handle(
        FhirRequest {
            method: Method::Post,
            path: vec!["Patient".into()],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(body.to_vec()),
        },
        &Trusted::operator("bench"),
    );
    (r.status, t.elapsed())
}

pub fn run(a: ExtractBenchArgs) -> Result<()> {
    let defs = wardline_fhir::definitions::r4();
    let zone = wardline_fhir::datetime::LocalZone::default();
    let lifted_dir = tempfile::tempdir()?;
    let lifted = service(
        &a,
        lifted_dir.path(),
        ServiceConfig {
            // limits: lifted, to measure the write itself
            limits: wardline_core::limits::Limits {
                max_elements: usize::MAX,
                max_repeats: usize::MAX,
                ..Default::default()
            },
            ..ServiceConfig::default()
        },
    )?;
    let default_dir = tempfile::tempdir()?;
    let limited = service(&a, default_dir.path(), ServiceConfig::default())?;
    println!(
        "extract [{}]: names | entries | extraction (best of {}) | create, limits lifted | create, default limits",
        lifted.backend(),
        a.repeat
    );
    for &n in &a.names {
        let p = patient(n);
        let body = serde_json::to_vec(&p)?;
        let mut best = Duration::MAX;
        let mut entries = 0;
        for _ in 0..a.repeat.max(1) {
            let t = Instant::now();
            entries = defs.extract_index(&p, &zone).len();
            best = best.min(t.elapsed());
        }
        let (s1, t1) = create(&lifted, &body);
        let (s2, t2) = create(&limited, &body);
        println!(
            "extract: {n:>6} | {entries:>7} | {:>9.1} ms | {s1} in {:>9.1} ms | {s2} in {:>7.1} ms",
            best.as_secs_f64() * 1e3,
            t1.as_secs_f64() * 1e3,
            t2.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
