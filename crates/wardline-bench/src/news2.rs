//! `wardline-bench news2`: ingest of remote-monitoring readings with NEWS2
//! computed on arrival (issue 20).
//!
//! In a fresh store (SQLite in a temporary directory, or `--database`),
//! `--patients` patients at home, each under a community `CareTeam`; then
//! `--sets` sets of the seven NEWS2 readings, round-robin over the
//! patients, posted as transaction Bundles of `--per-bundle` sets through
//! the FHIR API (`FhirService::handle`, as a backend client), the way a
//! device gateway posts them. Every reading is scored by the write hook in
//! its transaction; one set in `--escalate-every` scores 7 and raises or
//! links an escalation Task. Prints readings per second and checks that
//! every set has its score.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Value, json};
use wardline::StoreArgs;
use wardline_core::{Body, FhirRequest, Method, RequestHeaders, ServiceConfig, Trusted};
use wardline_workflow::observations::news2::{Acvpu, Parameter, Vitals};
use wardline_workflow::observations::record::reading;

#[derive(Args)]
pub struct News2BenchArgs {
    /// A postgres://… URL; default: SQLite in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    #[arg(long, default_value_t = 200)]
    patients: usize,
    /// Sets of seven readings.
    #[arg(long, default_value_t = 3000)]
    sets: usize,
    #[arg(long, default_value_t = 20)]
    per_bundle: usize,
    #[arg(long, default_value_t = 10)]
    escalate_every: usize,
}

fn post(svc: &wardline_core::FhirService, who: &Trusted, body: Value) -> Result<Value> {
    let r = svc.handle(
        FhirRequest {
            method: Method::Post,
            path: vec![],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(body.to_string().into_bytes()),
        },
        who,
    );
    if r.status != 200 {
        bail!("Bundle refused: {}", r.status);
    }
    Ok(match r.body {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s)?,
        _ => Value::Null,
    })
}

pub fn run(a: News2BenchArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let svc = StoreArgs {
        data_dir: dir.path().to_owned(),
        database: a.database.clone(),
        time_zone: None,
        db_key_file: None,
    }
    .service(ServiceConfig::default())?;
    let op = Trusted::operator("bench-gateway");
    let mut seed = Vec::new();
    for p in 0..a.patients {
        seed.push(
            json!({"resourceType": "Patient", "id": format!("rm-{p}"), "active": true,
            "name": [{"family": format!("Remote{p}")}]}),
        );
        seed.push(json!({"resourceType": "CareTeam", "id": format!("ct-{p}"), "status": "active",
            "name": "Community respiratory team", "subject": {"reference": format!("Patient/rm-{p}")}}));
    }
    let entries: Vec<Value> = seed
        .into_iter()
        .map(|r| {
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            );
            json!({"resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    post(
        &svc,
        &op,
        json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
    )?;
    let normal = Vitals {
        respiration_rate: Some(16.0),
        spo2: Some(97.0),
        oxygen: Some(false),
        systolic_bp: Some(122.0),
        pulse: Some(74.0),
        consciousness: Some(Acvpu::Alert),
        temperature: Some(36.9),
    };
    let high = Vitals {
        respiration_rate: Some(25.0),
        spo2: Some(93.0),
        systolic_bp: Some(105.0),
        pulse: Some(95.0),
        ..normal
    };
    // Taken over the last hours: only recent readings are scored (the
    // hook's 24-hour window), as a gateway's live feed is.
    let start = time::OffsetDateTime::now_utc().replace_nanosecond(0)?
        - time::Duration::hours(((a.sets / a.patients.max(1)) as i64 / 4) + 1);
    let mut bundles = Vec::new();
    let mut batch = Vec::new();
    for i in 0..a.sets {
        let patient = format!("Patient/rm-{}", i % a.patients);
        let at = wardline_fhir::datetime::format_instant(
            ((start + time::Duration::minutes((i / a.patients) as i64 * 15)).unix_timestamp())
                * 1000,
        );
        let v = if a.escalate_every > 0 && i % a.escalate_every == 0 {
            &high
        } else {
            &normal
        };
        for p in Parameter::ALL {
            if let Some(o) = reading(p, v, &patient, &at) {
                batch.push(
                    json!({"resource": o, "request": {"method": "POST", "url": "Observation"}}),
                );
            }
        }
        if (i + 1) % a.per_bundle == 0 || i + 1 == a.sets {
            bundles.push(json!({"resourceType": "Bundle", "type": "transaction", "entry": std::mem::take(&mut batch)}));
        }
    }
    let readings = a.sets * 7;
    let t0 = Instant::now();
    for b in bundles {
        post(&svc, &op, b)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    // Every set scored.
    let counted = svc.handle(
        FhirRequest {
            method: Method::Get,
            path: vec!["Observation".into()],
            query: vec![
                (
                    "code".into(),
                    "https://fhir.wardline.invalid/CodeSystem/observation|news2".into(),
                ),
                ("_summary".into(), "count".into()),
            ],
            headers: RequestHeaders::default(),
            body: None,
        },
        &op,
    );
    let total = match counted.body {
        Body::Json(v) => v["total"].as_u64().unwrap_or(0),
        Body::Raw(s) => serde_json::from_str::<Value>(&s)?["total"]
            .as_u64()
            .unwrap_or(0),
        _ => 0,
    };
    println!(
        "news2 ingest ({}): {readings} readings in {} sets, {} Bundles, {:.2} s: {:.0} readings/s; scores stored {total}",
        if a.database.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        a.sets,
        a.sets.div_ceil(a.per_bundle),
        secs,
        readings as f64 / secs
    );
    if total as usize != a.sets {
        bail!("{} sets but {total} scores", a.sets);
    }
    Ok(())
}
