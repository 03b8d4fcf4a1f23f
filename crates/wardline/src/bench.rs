//! `wardline bench`: benchmarks run on demand (never in the test suite).
//!
//! * `ingest`: loads the Synthea transaction bundles through the core into a
//!   fresh store and reports resources/s.
//! * `read` / `search`: starts the server in-process on 127.0.0.1, loads data,
//!   then drives it with concurrent keep-alive HTTP clients for a bounded number
//!   of requests and reports req/s, p50 and p99.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wardline_core::{FhirService, ServiceConfig};

use crate::StoreArgs;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Ingest the Synthea transaction bundles; report resources/s.
    Ingest(BenchArgs),
    /// Read resources by id over HTTP; report req/s, p50, p99.
    Read(HttpBenchArgs),
    /// Search over HTTP; report req/s, p50, p99.
    Search(HttpBenchArgs),
}

#[derive(Args)]
pub struct BenchArgs {
    /// A postgres://… URL to benchmark PostgreSQL (the database should be empty).
    #[arg(long)]
    database: Option<String>,
    /// Directory of Synthea transaction bundles (*.json or *.json.gz).
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Args)]
pub struct HttpBenchArgs {
    #[command(flatten)]
    base: BenchArgs,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Total requests.
    #[arg(long, default_value_t = 40_000)]
    requests: usize,
}

fn default_data() -> PathBuf {
    let root = std::env::var("WARDLINE_TESTDATA").unwrap_or_else(|_| "../shared/testdata".into());
    PathBuf::from(root).join("synthea-r4/bundles")
}

fn fresh_service(a: &BenchArgs) -> Result<(Arc<FhirService>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let store = StoreArgs {
        data_dir: dir.path().to_owned(),
        database: a.database.clone(),
    }
    .open()?;
    Ok((
        Arc::new(FhirService::new(store, ServiceConfig::default())),
        dir,
    ))
}

/// Loads support bundles first, then patients. Returns (resources, seconds).
fn ingest(service: &FhirService, dir: &std::path::Path) -> Result<(usize, f64)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".json"))
        .collect();
    files.sort_by_key(|p| {
        let n = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        (
            !(n.starts_with("hospital") || n.starts_with("practitioner")),
            n,
        )
    });
    let mut bundles = Vec::new();
    for f in &files {
        bundles.push(serde_json::from_str::<serde_json::Value>(
            &crate::import::read_text(f)?,
        )?);
    }
    let start = Instant::now();
    let mut n = 0;
    for b in bundles {
        n += crate::import::load_value(service, b).map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Ingest(a) => {
            let (service, _dir) = fresh_service(&a)?;
            let data = a.data.clone().unwrap_or_else(default_data);
            let (n, secs) = ingest(&service, &data)?;
            println!(
                "ingest [{}]: {n} resources in {secs:.2} s = {:.0} resources/s",
                service.store().backend(),
                n as f64 / secs
            );
        }
        BenchCommand::Read(a) => http_bench(a, false)?,
        BenchCommand::Search(a) => http_bench(a, true)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn http_bench(a: HttpBenchArgs, search: bool) -> Result<()> {
    let (service, _dir) = fresh_service(&a.base)?;
    let data = a.base.data.clone().unwrap_or_else(default_data);
    let (n, _) = ingest(&service, &data)?;
    let patients: Vec<String> = {
        let q = wardline_fhir::search::parse(
            wardline_fhir::definitions::r4(),
            Some("Patient"),
            &[],
            wardline_fhir::search::Handling::Strict,
        )?;
        let page = service.store().search(
            &q,
            &wardline_store::PageRequest {
                count: 1000,
                ..Default::default()
            },
        )?;
        page.resources.into_iter().map(|r| r.id).collect()
    };
    anyhow::ensure!(!patients.is_empty(), "no patients loaded");
    let rt = tokio::runtime::Runtime::new()?;
    let backend = service.store().backend();
    let (latencies, secs) = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(wardline_http::serve(listener, service, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(a.clients)
            .build()?;
        let per = a.requests / a.clients.max(1);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..a.clients {
            let client = client.clone();
            let patients = patients.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let p = &patients[(c * per + i) % patients.len()];
                    let url = if search {
                        format!("http://{addr}/fhir/Observation?subject=Patient/{p}&_count=20")
                    } else {
                        format!("http://{addr}/fhir/Patient/{p}")
                    };
                    let t = Instant::now();
                    let r = client.get(&url).send().await;
                    if let Ok(r) = r {
                        let _ = r.bytes().await;
                    }
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut all: Vec<Duration> = Vec::new();
        for t in tasks {
            all.extend(t.await?);
        }
        let secs = start.elapsed().as_secs_f64();
        let _ = tx.send(());
        let _ = server.await;
        Ok::<_, anyhow::Error>((all, secs))
    })?;
    let mut l = latencies;
    l.sort();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "{} [{backend}, {n} resources loaded, {} clients]: {} requests in {secs:.2} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        if search { "search" } else { "read" },
        a.clients,
        l.len(),
        l.len() as f64 / secs,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
