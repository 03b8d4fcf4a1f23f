//! `wardline export`: the Bulk Data export of the server, straight from the
//! store to a directory (one NDJSON file per type), with a progress bar:
//! the engine of `wardline-export`, reading through the core's
//! `BulkReader` (so the national data opt-out applies here too).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use wardline_core::ServiceConfig;
use wardline_export::{self as export, ExportLevel};

use crate::StoreArgs;

#[derive(Args)]
pub struct ExportArgs {
    /// Directory to write the NDJSON files to (created; must not hold .ndjson files).
    #[arg(long)]
    out: PathBuf,
    /// Only these resource types (comma-separated), as `_type`.
    #[arg(long = "type", value_name = "TYPES")]
    types: Option<String>,
    /// Only resources changed at or after this instant, as `_since`.
    #[arg(long, value_name = "INSTANT")]
    since: Option<String>,
    /// A search restricting one type, e.g. `Observation?category=vital-signs`
    /// (repeatable; as `_typeFilter`).
    #[arg(long = "type-filter", value_name = "TYPE?QUERY")]
    type_filters: Vec<String>,
    /// Only the resources in patient compartments (as `Patient/$export`).
    #[arg(long, conflicts_with = "group")]
    patients: bool,
    /// Only the compartments of this Group's member patients (as `Group/ID/$export`).
    #[arg(long, value_name = "ID")]
    group: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(a: ExportArgs) -> Result<ExitCode> {
    let level = match (&a.group, a.patients) {
        (Some(g), _) => ExportLevel::Group(g.clone()),
        (None, true) => ExportLevel::Patient,
        (None, false) => ExportLevel::System,
    };
    let mut params = Vec::new();
    if let Some(t) = &a.types {
        params.push(("_type".to_owned(), t.clone()));
    }
    if let Some(s) = &a.since {
        params.push(("_since".to_owned(), s.clone()));
    }
    for f in &a.type_filters {
        params.push(("_typeFilter".to_owned(), f.clone()));
    }
    let reader = a
        .store
        .existing_service(ServiceConfig::default())?
        .bulk_reader();
    let spec = export::parse_spec(&reader, level, &params)
        .map_err(|e| anyhow::anyhow!("{}", e.issues[0].diagnostics))?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let occupied = std::fs::read_dir(&a.out)
        .with_context(|| format!("cannot read {}", a.out.display()))?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".ndjson"));
    if occupied {
        bail!(
            "{} already holds .ndjson files; export to an empty directory",
            a.out.display()
        );
    }
    let total = export::count(&reader, &spec)
        .map_err(|e| anyhow::anyhow!("{}", e.issues[0].diagnostics))?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} exporting [{bar:40}] {pos}/{len} resources ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let outputs = export::export_to_dir(
        &reader,
        &spec,
        &a.out,
        &mut |n| bar.set_position(n),
        &AtomicBool::new(false),
    )
    .map_err(|e| anyhow::anyhow!("{}", e.issues[0].diagnostics))?;
    bar.finish_and_clear();
    let n: u64 = outputs.iter().map(|o| o.count).sum();
    let secs = started.elapsed().as_secs_f64();
    for o in &outputs {
        println!("{:>10}  {}", o.count, a.out.join(&o.file).display());
    }
    println!(
        "exported {n} resources in {} files to {} in {secs:.1} s ({:.0} resources/s)",
        outputs.len(),
        a.out.display(),
        n as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
