//! `wardline-bench results`: the results inbox and the cumulative view at
//! trust scale.
//!
//! Builds (or reuses, in `--data-dir`) a store holding:
//! * `--patients` Patients of the Patient Master Index (the population of
//!   `wardline-bench workspace`, shared with it when both use one store);
//! * a clinician (the bench consultant) with `--inbox` results in their
//!   inbox: each a `DiagnosticReport` with its `Observation`s, answering a
//!   `ServiceRequest` the consultant placed, received through
//!   `wardline_workflow::results::receive_in` (so each has its inbox
//!   `Task`, its flags and its sort key exactly as in production), about
//!   1 % critical and 10 % abnormal, spread over many patients;
//! * among them, one patient (`res-heavy`) with `--observations`
//!   observations: daily urea and electrolytes (five analytes a report)
//!   going back years.
//!
//! Then, signed in as the consultant through the real sign-in form, it times
//! each operation `--repeat` times, sequentially: the workflow call alone
//! (service time, with the same access policy) and the page over HTTP. It
//! prints min, p50 and p99.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_auth::directory::Directory;
use wardline_core::{FhirService, ServiceConfig, Trusted};
use wardline_workflow::results::{self, Incoming, Source, cumulative};

use crate::StoreArgs;

#[derive(Args)]
pub struct ResultsBenchArgs {
    /// Where the store is: reused when it already holds the data, built
    /// when not.
    #[command(flatten)]
    store: StoreArgs,
    /// Patients in the Patient Master Index.
    #[arg(long, default_value_t = 1_000_000)]
    patients: usize,
    /// Results in the clinician's inbox (the heavy patient's included).
    #[arg(long, default_value_t = 10_000)]
    inbox: usize,
    /// Observations of the heavy patient (five a report).
    #[arg(long, default_value_t = 5_000)]
    observations: usize,
    /// Timed repetitions of each operation.
    #[arg(long, default_value_t = 50)]
    repeat: usize,
}

const HEAVY: &str = "res-heavy";
/// Reports received per transaction while loading.
const BATCH: usize = 50;
/// Other patients' reports share a patient this many at a time.
const PER_PATIENT: usize = 3;
const LOINC: &str = "http://loinc.org";
/// The urea and electrolytes panel: code, name, unit, low, high, typical.
const UE: [(&str, &str, &str, f64, f64, f64); 5] = [
    ("2951-2", "Sodium", "mmol/L", 133.0, 146.0, 139.0),
    ("2823-3", "Potassium", "mmol/L", 3.5, 5.3, 4.3),
    ("3094-0", "Urea", "mmol/L", 2.5, 7.8, 5.5),
    ("2160-0", "Creatinine", "umol/L", 59.0, 104.0, 85.0),
    ("33914-3", "eGFR", "mL/min/{1.73_m2}", 90.0, 200.0, 80.0),
];

pub fn run(a: ResultsBenchArgs) -> Result<()> {
    let service = Arc::new(a.store.service(ServiceConfig {
        base_url: "http://127.0.0.1/fhir".into(),
        ..ServiceConfig::default()
    })?);
    let backend = service.backend();
    crate::workspace::load_pmi(&service, a.patients)?;
    // The trust the bench consultant works for (the workspace bench's bed
    // model holds the same one).
    if service
        .system_reader()
        .read("Organization", "trust")?
        .is_none()
    {
        crate::load::load_value(
            &service,
            json!({"resourceType": "Organization", "id": "trust", "active": true,
                "name": "Wardline NHS Trust (bench)"}),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
    }
    let dir =
        Arc::new(Directory::open(service.clone(), "trust").map_err(|e| anyhow::anyhow!("{e}"))?);
    crate::workspace::ensure_user(&dir, &[])?;
    let practitioner = dir
        .account(crate::workspace::BENCH_USER)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("bench user")?
        .practitioner;
    let owner = format!("Practitioner/{practitioner}");
    load_results(&service, &owner, &a)?;

    let rt = tokio::runtime::Runtime::new()?;
    let timings = rt.block_on(measure(service.clone(), dir, owner, a.repeat))?;
    println!(
        "results [{backend}]: {} PMI patients, an inbox of {} results, a patient with {} observations, {} repetitions",
        a.patients, a.inbox, a.observations, a.repeat
    );
    crate::workspace::print_timings(&timings);
    Ok(())
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Value `k` of analyte `a` in report `r`, with its interpretation code:
/// about 1 % of reports critical, 10 % abnormal.
fn value(r: usize, k: usize) -> (f64, Option<&'static str>) {
    let (_, _, _, low, high, typical) = UE[k];
    let z = mix((r as u64) << 4 | k as u64);
    let roll = z % 1000;
    let jitter = ((z >> 20) % 1000) as f64 / 1000.0 - 0.5;
    if k == 1 && roll < 10 {
        return (6.8 + jitter.abs(), Some("HH"));
    }
    if roll < 100 && k != 4 {
        return ((high * 1.15 + jitter).max(0.0), Some("H"));
    }
    let v = typical + jitter * (high - low) * 0.4;
    let code = if v > high {
        Some("H")
    } else if v < low {
        Some("L")
    } else {
        Some("N")
    };
    ((v * 10.0).round() / 10.0, code)
}

fn report_of(
    r: usize,
    patient: &str,
    order: &str,
    at: &str,
    analytes: usize,
) -> (Value, Vec<Value>) {
    let report = json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "identifier": [{"system": "https://fhir.wardline.invalid/Id/filler-order", "value": format!("BENCH{r:07}")}],
        "code": {"coding": [{"system": LOINC, "code": "24326-1", "display": "Electrolytes and urea panel"}], "text": "Urea and electrolytes"},
        "subject": {"reference": format!("Patient/{patient}")},
        "basedOn": [{"reference": format!("ServiceRequest/{order}")}],
        "effectiveDateTime": at,
        "issued": at,
    });
    let obs = (0..analytes)
        .map(|k| {
            let (code, name, unit, low, high, _) = UE[k];
            let (v, interp) = value(r, k);
            let mut o = json!({
                "resourceType": "Observation",
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
                "effectiveDateTime": at,
                "valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
                "referenceRange": [{"low": {"value": low, "unit": unit}, "high": {"value": high, "unit": unit}}],
            });
            if let Some(i) = interp {
                o["interpretation"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": i}]}]);
            }
            o
        })
        .collect();
    (report, obs)
}

fn order_of(id: &str, patient: &str, owner: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1000971000000104", "display": "Urea and electrolytes"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "requester": {"reference": owner},
        "authoredOn": "2020-01-01T09:00:00Z"})
}

/// Loads the inbox and the heavy patient unless done before (the last
/// batch's report is the marker: batches commit whole and in order).
fn load_results(service: &FhirService, owner: &str, a: &ResultsBenchArgs) -> Result<()> {
    let heavy_reports = a.observations.div_ceil(UE.len());
    let others = a.inbox.saturating_sub(heavy_reports);
    let op = Trusted::operator("bench");
    let total = heavy_reports + others;
    let done = |r: usize| -> Result<bool> {
        let found = service.search_as(
            &op,
            "DiagnosticReport",
            &[(
                "identifier",
                format!("https://fhir.wardline.invalid/Id/filler-order|BENCH{r:07}"),
            )],
        )?;
        Ok(!found.resources.is_empty())
    };
    if total == 0 || done(total - 1)? {
        println!("{total} results already loaded");
        return Ok(());
    }
    let t = Instant::now();
    let now = OffsetDateTime::now_utc();
    let now_ms = wardline_fhir::datetime::now_ms();
    service.transact(&op, |tx| {
        tx.save(json!({"resourceType": "Patient", "id": HEAVY, "active": true,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": wardline_demo::population::nhs_number(90_000)}],
            "name": [{"use": "official", "family": "Heavy", "given": ["Renal"]}],
            "gender": "female", "birthDate": "1948-05-06"}))?;
        tx.save(order_of("bench-sr-heavy", HEAVY, owner))?;
        Ok(())
    })?;
    let bar = crate::workspace::progress(total as u64, "receiving results");
    let mut r = 0;
    // Find where an interrupted load stopped (whole batches only).
    while r + BATCH < total && done(r + BATCH - 1)? {
        r += BATCH;
    }
    bar.set_position(r as u64);
    while r < total {
        let end = (r + BATCH).min(total);
        service.transact(&op, |tx| {
            for i in r..end {
                let (report, obs) = if i < heavy_reports {
                    // Daily, newest first, going back.
                    let at = wardline_fhir::datetime::format_instant(
                        now_ms - (i as i64) * 86_400_000 - 3_600_000,
                    );
                    let n = (a.observations - i * UE.len()).min(UE.len());
                    report_of(i, HEAVY, "bench-sr-heavy", &at, n)
                } else {
                    let j = i - heavy_reports;
                    let p = j / PER_PATIENT;
                    let patient = format!("pmi-{}", p % a.patients.max(1));
                    let order = format!("bench-sr-{p}");
                    if j.is_multiple_of(PER_PATIENT) {
                        tx.save(order_of(&order, &patient, owner))?;
                    }
                    let at = wardline_fhir::datetime::format_instant(
                        now_ms - (j as i64 % 365) * 86_400_000 - 7_200_000,
                    );
                    report_of(i, &patient, &order, &at, 1 + j % 3)
                };
                results::receive_in(
                    tx,
                    Incoming {
                        report,
                        observations: obs,
                        source: Source::Laboratory,
                    },
                    now,
                )
                .map_err(|e| e.to_fhir())?;
            }
            Ok(())
        })?;
        bar.inc((end - r) as u64);
        r = end;
    }
    bar.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "received {total} results in {secs:.0} s ({:.0}/s)",
        total as f64 / secs
    );
    Ok(())
}

async fn measure(
    service: Arc<FhirService>,
    dir: Arc<Directory>,
    owner: String,
    repeat: usize,
) -> Result<crate::workspace::Timings> {
    let server = crate::workspace::Server::start(service.clone(), dir.clone()).await?;
    let access = server.access.clone();
    let mut out = crate::workspace::Timings::new();
    let creatinine = format!("{LOINC}|2160-0");
    let year_ago = OffsetDateTime::now_utc() - time::Duration::days(366);
    for _ in 0..repeat {
        let (s, a, o) = (service.clone(), access.clone(), owner.clone());
        let d = crate::workspace::svc_time(move || {
            let p = results::inbox(&s, &*a, &o, 1).map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::ensure!(!p.items.is_empty(), "empty inbox");
            Ok(())
        })
        .await?;
        let p = server
            .page("/ui/results".into(), "data-testid=\"inbox\"")
            .await?;
        crate::workspace::push(&mut out, "inbox: first page (/ui/results)", d, p);

        let (s, a) = (service.clone(), access.clone());
        let d = crate::workspace::svc_time(move || {
            let c = cumulative::cumulative(&s, &*a, HEAVY, None, None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::ensure!(c.series.len() >= 5, "{} analytes", c.series.len());
            Ok(())
        })
        .await?;
        let p = server
            .page(
                format!("/ui/patients/{HEAVY}/results"),
                "data-testid=\"cumulative-table\"",
            )
            .await?;
        crate::workspace::push(&mut out, "cumulative: all tests (newest 500)", d, p);

        let (s, a, c) = (service.clone(), access.clone(), creatinine.clone());
        let d = crate::workspace::svc_time(move || {
            let r = cumulative::cumulative(&s, &*a, HEAVY, Some(&c), Some(year_ago))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::ensure!(
                r.series.first().is_some_and(|s| !s.points.is_empty()),
                "no creatinine in the last year"
            );
            Ok(())
        })
        .await?;
        let q: String = form_urlencoded::byte_serialize(creatinine.as_bytes()).collect();
        let p = server
            .page(
                format!("/ui/patients/{HEAVY}/results?code={q}&period=1y"),
                "data-testid=\"trend-chart\"",
            )
            .await?;
        crate::workspace::push(&mut out, "cumulative: creatinine over a year", d, p);

        let (s, a, c) = (service.clone(), access.clone(), creatinine.clone());
        let d = crate::workspace::svc_time(move || {
            cumulative::cumulative(&s, &*a, HEAVY, Some(&c), None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        })
        .await?;
        let p = server
            .page(
                format!("/ui/patients/{HEAVY}/results?code={q}&period=all"),
                "data-testid=\"trend-chart\"",
            )
            .await?;
        crate::workspace::push(&mut out, "cumulative: creatinine, every value", d, p);
    }
    server.stop().await;
    Ok(out)
}
