//! The benchmarks: `ingest`, `read`, `search`, `chart`, `everything`, `export`, `explain`.
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
    /// The chart-opening search mix over an existing store (load one with
    /// `wardline generate` + `wardline import`); req/s, p50, p99 per query.
    Chart(ScaleArgs),
    /// `Patient/ID/$everything` over an existing store: latency of the first
    /// page and of the whole record.
    Everything(EverythingArgs),
    /// System-level export of an existing store to NDJSON: resources/s, peak RSS.
    Export(ScaleArgs),
    /// Print the database's plans for the chart-mix queries.
    Explain(ScaleArgs),
    /// Durable HL7 v2 ingest over MLLP (ADT^A01, ACK after commit) on a
    /// fresh store: messages/s, ACK latency.
    Mllp(crate::mllp::MllpBenchArgs),
    /// The clinical workspace at trust scale: bed board of a 1,000-bed
    /// trust, the chart of a 600-encounter patient and PMI search over a
    /// million patients; service time and page time (min, p50, p99).
    Workspace(crate::workspace::WorkspaceBenchArgs),
    /// Duplicate detection on an external labelled set (FEBRL, exported by
    /// `scripts/bench-matching.sh`): precision, recall and F1 of the scan.
    Matching(crate::matching::MatchingBenchArgs),
    /// The results inbox of a clinician with 10,000 results and the
    /// cumulative view of a patient with 5,000 observations, at scale;
    /// service time and page time (min, p50, p99).
    Results(crate::results::ResultsBenchArgs),
    /// Decision support at the point of prescribing for a patient on 20
    /// medicines (`checks::assess_in`): min, p50, p99.
    Checks(crate::checks::ChecksBenchArgs),
    /// The ward drug round (issue 17): 30 patients × 15 active
    /// prescriptions with two days of doses; the page's workflow call
    /// (min, p50, p99).
    Mar(crate::mar::MarBenchArgs),
    /// Discharge summary assembly (issue 18) for a 600-encounter patient:
    /// the pre-fill, and the sign path (Bundle, PDF, DocumentReference,
    /// delivery queued) on fresh admissions (min, p50, p99).
    Discharge(crate::discharge::DischargeBenchArgs),
    /// MESH sends of queued discharge summaries by `transfers::send::run`
    /// against a running mesh-sandbox: sends per minute, and the MESH
    /// round trip per message (p50, p99).
    Mesh(crate::mesh::MeshBenchArgs),
    /// The patient-targeted list (issue 19) over 100,000 open RTT
    /// pathways: the page's workflow call (min, p50, p99).
    Ptl(crate::ptl::PtlBenchArgs),
    /// The clinic list for a busy day (issue 19): the page's workflow call
    /// among a trust's clinics' slots (min, p50, p99).
    Clinic(crate::clinic::ClinicBenchArgs),
    /// A theatre list page (issue 19): the session with its cases and the
    /// admitted entries offered, among a trust's sessions (min, p50, p99).
    Theatre(crate::theatre::TheatreBenchArgs),
    // issue 20: news2
    /// Remote-monitoring ingest (issue 20): vital-signs readings posted in
    /// transaction Bundles, NEWS2 scored on arrival; readings per second.
    News2(crate::news2::News2BenchArgs),
    // end of issue 20: news2
    // issue 21: bounded work
    /// The cost of one Patient with 1,500 / 3,000 / 12,000 names: index
    /// extraction, a create with the limits lifted, the same under the
    /// default limits.
    Extract(crate::extract::ExtractBenchArgs),
    // end of issue 21: bounded work
    // issue 20: ed
    /// The Emergency Department's tracking board with 150 patients in the
    /// department (issue 20): the page's workflow call (min, p50, p99).
    Ed(crate::ed::EdBenchArgs),
    // end of issue 20: ed
}

#[derive(Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Concurrent HTTP clients (chart).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Total requests (chart).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
}

#[derive(Args)]
pub struct EverythingArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The patient (generated patient 0 has 600+ encounters).
    #[arg(long, default_value = "pat-0")]
    patient: String,
    /// Repetitions.
    #[arg(long, default_value_t = 50)]
    repeat: usize,
}

#[derive(Args)]
pub struct BenchArgs {
    /// A postgres://… URL to benchmark PostgreSQL (the database should be empty).
    #[arg(long)]
    database: Option<String>,
    /// Directory of Synthea transaction bundles (*.json or *.json.gz).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `off` measures what the audit trail costs (benchmarks only: the
    /// server always audits).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    audit: String,
    /// Issue 22: encrypt the benchmark's SQLite database (SQLCipher) and
    /// seal its secrets with this database key (`wardline key init`).
    #[arg(long, value_name = "FILE")]
    db_key_file: Option<PathBuf>,
    /// Issue 21: group commit (SQLite) on or off, to compare in one binary.
    #[arg(long, default_value = "on", value_parser = wardline::parse_on_off, action = clap::ArgAction::Set)]
    group_commit: bool,
    /// Ingest: patient bundles are loaded by this many threads at once
    /// (the support bundles first, by one).
    #[arg(long, default_value_t = 1)]
    ingest_clients: usize,
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
    wardline::set_group_commit(wardline_store::group_commit::GroupCommit {
        enabled: a.group_commit,
        ..Default::default()
    });
    println!(
        "group commit: {}",
        if a.group_commit { "on" } else { "off" }
    );
    let mut svc = StoreArgs {
        data_dir: dir.path().to_owned(),
        database: a.database.clone(),
        time_zone: None,
        db_key_file: a.db_key_file.clone(),
    }
    .service(ServiceConfig::default())?;
    if a.audit == "off" {
        svc = svc.without_audit_for_benchmark();
    }
    println!("audit trail: {}", a.audit);
    Ok((Arc::new(svc), dir))
}

/// Loads support bundles first, then patients (by `clients` threads).
/// Returns (resources, seconds).
fn ingest(service: &FhirService, dir: &std::path::Path, clients: usize) -> Result<(usize, f64)> {
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
            &crate::load::read_text(f)?,
        )?);
    }
    let start = Instant::now();
    let support = files
        .iter()
        .take_while(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with("hospital") || n.starts_with("practitioner")
        })
        .count();
    let patients = bundles.split_off(support);
    let mut n = 0;
    for b in bundles {
        n += crate::load::load_value(service, b).map_err(|e| anyhow::anyhow!(e))?;
    }
    let clients = clients.max(1);
    let mut shares: Vec<Vec<serde_json::Value>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, b) in patients.into_iter().enumerate() {
        shares[i % clients].push(b);
    }
    let loaded = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                scope.spawn(move || -> Result<usize> {
                    let mut n = 0;
                    for b in share {
                        n += crate::load::load_value(service, b).map_err(|e| anyhow::anyhow!(e))?;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("ingest thread panicked"))?
            })
            .sum::<Result<usize>>()
    })?;
    n += loaded;
    Ok((n, start.elapsed().as_secs_f64()))
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Ingest(a) => {
            let (service, _dir) = fresh_service(&a)?;
            let data = a.data.clone().unwrap_or_else(default_data);
            let (n, secs) = ingest(&service, &data, a.ingest_clients)?;
            println!(
                "ingest [{}, {} clients]: {n} resources in {secs:.2} s = {:.0} resources/s",
                service.backend(),
                a.ingest_clients.max(1),
                n as f64 / secs
            );
        }
        BenchCommand::Read(a) => http_bench(a, false)?,
        BenchCommand::Search(a) => http_bench(a, true)?,
        BenchCommand::Chart(a) => chart_bench(a)?,
        BenchCommand::Everything(a) => everything_bench(a)?,
        BenchCommand::Export(a) => export_bench(a)?,
        BenchCommand::Explain(a) => explain_bench(a)?,
        BenchCommand::Mllp(a) => crate::mllp::run(a)?,
        BenchCommand::Workspace(a) => crate::workspace::run(a)?,
        BenchCommand::Matching(a) => crate::matching::run(a)?,
        BenchCommand::Results(a) => crate::results::run(a)?,
        BenchCommand::Checks(a) => crate::checks::run(a)?,
        BenchCommand::Mar(a) => crate::mar::run(a)?,
        BenchCommand::Discharge(a) => crate::discharge::run(a)?,
        BenchCommand::Mesh(a) => crate::mesh::run(a)?,
        BenchCommand::Ptl(a) => crate::ptl::run(a)?,
        BenchCommand::Clinic(a) => crate::clinic::run(a)?,
        BenchCommand::Theatre(a) => crate::theatre::run(a)?,
        // issue 20: news2
        BenchCommand::News2(a) => crate::news2::run(a)?,
        // end of issue 20: news2
        // issue 21: bounded work
        BenchCommand::Extract(a) => crate::extract::run(a)?,
        // end of issue 21: bounded work
        // issue 20: ed
        BenchCommand::Ed(a) => crate::ed::run(a)?,
        // end of issue 20: ed
    }
    Ok(ExitCode::SUCCESS)
}

fn http_bench(a: HttpBenchArgs, search: bool) -> Result<()> {
    let (service, _dir) = fresh_service(&a.base)?;
    let data = a.base.data.clone().unwrap_or_else(default_data);
    let (n, _) = ingest(&service, &data, 1)?;
    let patients: Vec<String> = {
        let q = wardline_fhir::search::parse(
            wardline_fhir::definitions::r4(),
            Some("Patient"),
            &[],
            wardline_fhir::search::Handling::Strict,
        )?;
        let page = service.system_reader().search(
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
    let backend = service.backend();
    let (auth, headers) = bench_access(&service)?;
    let (latencies, secs) = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(wardline_http::serve(listener, service, auth, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .default_headers(headers.clone())
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

fn existing_service(store: &StoreArgs) -> Result<Arc<FhirService>> {
    Ok(Arc::new(store.service(ServiceConfig::default())?))
}

/// Number of Patients in the store.
fn patient_count(service: &FhirService) -> Result<usize> {
    let q = wardline_fhir::search::parse(
        wardline_fhir::definitions::r4(),
        Some("Patient"),
        &[],
        wardline_fhir::search::Handling::Strict,
    )?;
    let page = service.system_reader().search(
        &q,
        &wardline_store::PageRequest {
            count_only: true,
            ..Default::default()
        },
    )?;
    Ok(page.total.unwrap_or(0) as usize)
}

/// The `p` quantile of `sorted`, in milliseconds (0 when empty).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// One request of a benchmark: (query label, latency, HTTP status).
type Sample = (&'static str, Duration, u16);

/// Starts the HTTP server in-process, runs `clients` concurrent keep-alive
/// clients over `urls(i)` for `requests` requests, and returns (label,
/// latency, status) per request and the wall time.
fn drive(
    service: Arc<FhirService>,
    clients: usize,
    requests: usize,
    urls: Arc<dyn Fn(usize) -> (&'static str, String) + Send + Sync>,
) -> Result<(Vec<Sample>, f64)> {
    let rt = tokio::runtime::Runtime::new()?;
    let (auth, headers) = bench_access(&service)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(wardline_http::serve(listener, service, auth, async {
            let _ = rx.await;
        }));
        // Like most FHIR clients on a LAN, no gzip: compressing 2 MB/s of
        // JSON on loopback measures deflate, not Wardline.
        let client = reqwest::Client::builder()
            .default_headers(headers.clone())
            .pool_max_idle_per_host(clients)
            .no_gzip()
            .build()?;
        let per = requests / clients.max(1);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = client.clone();
            let urls = urls.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(per);
                for i in 0..per {
                    let (label, path) = urls(c * per + i);
                    let t = Instant::now();
                    let status = match client
                        .get(format!("http://{addr}/fhir/{path}"))
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            let _ = r.bytes().await;
                            s
                        }
                        Err(_) => 0,
                    };
                    out.push((label, t.elapsed(), status));
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await?);
        }
        let secs = start.elapsed().as_secs_f64();
        let _ = tx.send(());
        let _ = server.await;
        Ok::<_, anyhow::Error>((all, secs))
    })
}

/// The queries of the chart-opening mix.
const CHART: [&str; 5] = [
    "encounters+includes",
    "vital-signs",
    "active-meds+medication",
    "chained-nhs-number",
    "has-heart-rate",
];

/// Query `k` of the chart mix for generated patient `p` (ids and NHS numbers
/// as `wardline generate` makes them).
fn chart_query(k: usize, p: usize) -> (&'static str, String) {
    let path = match k {
        0 => format!(
            "Encounter?patient=pat-{p}&_sort=-date&_count=20&_include=Encounter:location&_include=Encounter:participant"
        ),
        1 => format!("Observation?patient=pat-{p}&category=vital-signs&_sort=-date"),
        2 => format!(
            "MedicationRequest?patient=pat-{p}&status=active&_include=MedicationRequest:medication"
        ),
        3 => format!(
            "Observation?subject:Patient.identifier=https://fhir.nhs.uk/Id/nhs-number%7C{}",
            wardline_demo::population::nhs_number(p)
        ),
        _ => format!("Encounter?patient=pat-{p}&_has:Observation:encounter:code=8867-4"),
    };
    (CHART[k], path)
}

fn explain_bench(a: ScaleArgs) -> Result<()> {
    let service = existing_service(&a.store)?;
    let defs = wardline_fhir::definitions::r4();
    for k in 0..CHART.len() {
        let (label, path) = chart_query(k, 7);
        let (t, qs) = path.split_once('?').expect("query");
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(qs.as_bytes()).into_owned().collect();
        let q = wardline_fhir::search::parse_in(
            defs,
            service.time_zone(),
            Some(t),
            &pairs,
            wardline_fhir::search::Handling::Strict,
        )?;
        let page = wardline_store::PageRequest {
            count: q.count.unwrap_or(20),
            ..Default::default()
        };
        println!("### {label}: `{path}`\n```");
        for line in service.store().explain(&q, &page)? {
            println!("{line}");
        }
        println!("```");
    }
    Ok(())
}

/// The chart-opening mix of issue 3, on patients spread over the population
/// (ids and NHS numbers as `wardline generate` makes them).
fn chart_bench(a: ScaleArgs) -> Result<()> {
    let service = existing_service(&a.store)?;
    let backend = service.backend();
    let patients = patient_count(&service)?;
    anyhow::ensure!(
        patients > 0,
        "the store has no patients; load one with `wardline generate` and `wardline import`"
    );
    let urls: Arc<dyn Fn(usize) -> (&'static str, String) + Send + Sync> = Arc::new(move |i| {
        // A spread of patients (a prime stride), cycling through the queries.
        let p = (i / CHART.len()).wrapping_mul(7919) % patients;
        chart_query(i % CHART.len(), p)
    });
    let (results, secs) = drive(service, a.clients, a.requests, urls)?;
    let failed = results.iter().filter(|(_, _, s)| *s != 200).count();
    let mut all: Vec<Duration> = results.iter().map(|(_, d, _)| *d).collect();
    all.sort();
    println!(
        "chart mix [{backend}, {patients} patients, {} clients]: {} requests in {secs:.2} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {failed} non-200",
        a.clients,
        all.len(),
        all.len() as f64 / secs,
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
    for label in [
        "encounters+includes",
        "vital-signs",
        "active-meds+medication",
        "chained-nhs-number",
        "has-heart-rate",
    ] {
        let mut l: Vec<Duration> = results
            .iter()
            .filter(|(x, _, _)| *x == label)
            .map(|(_, d, _)| *d)
            .collect();
        l.sort();
        println!(
            "  {label:<24} n={:<6} p50 {:>7.2} ms  p99 {:>7.2} ms",
            l.len(),
            percentile(&l, 0.5),
            percentile(&l, 0.99)
        );
    }
    anyhow::ensure!(failed == 0, "{failed} requests did not answer 200");
    Ok(())
}

fn everything_bench(a: EverythingArgs) -> Result<()> {
    use wardline_core::{Body, FhirRequest, Method, RequestHeaders};
    let service = existing_service(&a.store)?;
    let backend = service.backend();
    let call = |query: Vec<(String, String)>| -> Result<serde_json::Value> {
        let r = service.handle(
            FhirRequest {
                method: Method::Get,
                path: vec!["Patient".into(), a.patient.clone(), "$everything".into()],
                query,
                headers: RequestHeaders::default(),
                body: None,
            },
            &wardline_core::Trusted::operator("bench"),
        );
        anyhow::ensure!(r.status == 200, "$everything answered {}", r.status);
        match r.body {
            Body::Json(v) => Ok(v),
            Body::Raw(s) => Ok(serde_json::from_str(&s)?),
            _ => anyhow::bail!("no JSON body"),
        }
    };
    let (mut first, mut whole) = (Vec::new(), Vec::new());
    let (mut first_n, mut whole_n) = (0, 0);
    for _ in 0..a.repeat {
        let t = Instant::now();
        let b = call(vec![])?;
        first.push(t.elapsed());
        first_n = b["entry"].as_array().map_or(0, Vec::len);
        // The whole record, following next links (keyset paging).
        let t = Instant::now();
        let mut n = first_n;
        let mut b = b;
        while let Some(next) = b["link"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["relation"] == "next"))
            .and_then(|x| x["url"].as_str())
            .map(str::to_owned)
        {
            let q: Vec<(String, String)> =
                form_urlencoded::parse(next.split_once('?').map_or("", |x| x.1).as_bytes())
                    .into_owned()
                    .collect();
            b = call(q)?;
            n += b["entry"].as_array().map_or(0, Vec::len);
        }
        whole.push(t.elapsed() + *first.last().expect("pushed"));
        whole_n = n;
    }
    first.sort();
    whole.sort();
    println!(
        "$everything [{backend}] Patient/{}: first page ({first_n} entries) p50 {:.2} ms p99 {:.2} ms; whole record ({whole_n} entries) p50 {:.2} ms p99 {:.2} ms ({} runs)",
        a.patient,
        percentile(&first, 0.5),
        percentile(&first, 0.99),
        percentile(&whole, 0.5),
        percentile(&whole, 0.99),
        a.repeat
    );
    Ok(())
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn export_bench(a: ScaleArgs) -> Result<()> {
    use std::sync::atomic::AtomicBool;
    use wardline_export::{self as export, ExportLevel};
    let service = existing_service(&a.store)?;
    let backend = service.backend();
    let spec = export::parse_spec(&service.bulk_reader(), ExportLevel::System, &[])
        .map_err(|e| anyhow::anyhow!("{}", e.issues[0].diagnostics))?;
    let dir = tempfile::tempdir()?;
    let rss_before = peak_rss_mib().unwrap_or(0.0);
    let t = Instant::now();
    let out = export::export_to_dir(
        &service.bulk_reader(),
        &spec,
        dir.path(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .map_err(|e| anyhow::anyhow!("{}", e.issues[0].diagnostics))?;
    let secs = t.elapsed().as_secs_f64();
    let n: u64 = out.iter().map(|o| o.count).sum();
    let bytes: u64 = out
        .iter()
        .filter_map(|o| std::fs::metadata(dir.path().join(&o.file)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "export [{backend}]: {n} resources ({:.0} MB NDJSON, {} files) in {secs:.2} s = {:.0} resources/s; peak RSS {:.0} MiB (before export {:.0} MiB)",
        bytes as f64 / 1e6,
        out.len(),
        n as f64 / secs,
        peak_rss_mib().unwrap_or(0.0),
        rss_before
    );
    Ok(())
}

/// The benchmarks' requests are a backend service's (`system/*.rs`), so they
/// pay for authentication, the policy and the audit trail like real ones.
fn bench_access(
    service: &Arc<FhirService>,
) -> Result<(
    Arc<dyn wardline_http::Authenticator>,
    reqwest::header::HeaderMap,
)> {
    let dir = Arc::new(
        wardline_auth::directory::Directory::open(service.clone(), "trust")
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let scope: wardline_auth::scopes::ScopeSet =
        "system/*.rs".parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    if dir
        .client("wardline-bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .is_none()
    {
        dir.register_client(
            &wardline_core::Trusted::operator("bench"),
            &wardline_auth::directory::Client {
                client_id: "wardline-bench".into(),
                name: "wardline bench".into(),
                redirect_uris: vec![],
                scope: scope.to_string(),
                jwks: None,
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let token = dir.issue_system_token("wardline-bench", &scope, 24 * 3600);
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    Ok((Arc::new(wardline_http::BearerAuthenticator::new(dir)), h))
}
