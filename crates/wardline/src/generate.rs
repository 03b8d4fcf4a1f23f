//! `wardline generate`: a synthetic population as NDJSON, one file per resource
//! type, for benchmarks (see `wardline_demo::population`), with hospital
//! numbers of the trust's scheme (`--hospital-number-*`).
//!
//! The shared resources (trust, sites, wards, beds, GP practices, staff,
//! medicines) come first in each file, then patients in index order. Patients
//! are generated on scoped worker threads a chunk at a time and written in
//! order, so memory stays bounded by one chunk and the output is byte-identical
//! for the same seed whatever the number of threads.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use wardline_demo::population;

#[derive(Args)]
pub struct GenerateArgs {
    /// Number of patients (about 100 resources each; patient 0 has 600+ encounters).
    #[arg(long)]
    pub patients: usize,
    /// Seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory, created if missing; it must not already hold .ndjson files.
    #[arg(long)]
    pub out: PathBuf,
}

/// Patients generated per worker before the chunk is written out.
const PER_WORKER: usize = 64;

/// One NDJSON file per resource type, opened on first use.
struct Output<'a> {
    dir: &'a Path,
    files: BTreeMap<String, BufWriter<File>>,
    written: usize,
}

impl Output<'_> {
    fn write(&mut self, resource_type: &str, line: &[u8]) -> Result<()> {
        if !self.files.contains_key(resource_type) {
            let path = self.dir.join(format!("{resource_type}.ndjson"));
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            self.files.insert(
                resource_type.to_owned(),
                BufWriter::with_capacity(1 << 16, f),
            );
        }
        let w = self
            .files
            .get_mut(resource_type)
            .expect("opened just above");
        w.write_all(line)
            .and_then(|()| w.write_all(b"\n"))
            .with_context(|| format!("cannot write {resource_type}.ndjson"))?;
        self.written += 1;
        Ok(())
    }

    fn finish(self) -> Result<usize> {
        for (rt, w) in self.files {
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {rt}.ndjson"))?;
        }
        Ok(self.written)
    }
}

/// One patient's resources, serialised.
type Serialised = Vec<(String, Vec<u8>)>;

/// A resource as (resourceType, one line of JSON).
fn serialise(v: &Value) -> Result<(String, Vec<u8>)> {
    let rt = v["resourceType"]
        .as_str()
        .context("generated resource without resourceType")?
        .to_owned();
    Ok((rt, serde_json::to_vec(v)?))
}

/// Refuses a directory that already holds NDJSON (a previous run's output, or
/// anything else `wardline import` would pick up alongside).
fn check_out_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            anyhow::bail!("{} exists and is not a directory", dir.display());
        }
        let existing = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "ndjson"));
        if existing {
            anyhow::bail!(
                "{} already contains .ndjson files; choose an empty or new directory",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

pub fn run(a: &GenerateArgs) -> Result<ExitCode> {
    if a.patients > population::MAX_PATIENTS {
        anyhow::bail!("--patients must be at most {}", population::MAX_PATIENTS);
    }
    check_out_dir(&a.out)?;
    let mut out = Output {
        dir: &a.out,
        files: BTreeMap::new(),
        written: 0,
    };
    for r in population::shared_resources(a.seed) {
        let (rt, line) = serialise(&r)?;
        out.write(&rt, &line)?;
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 16);
    let bar = ProgressBar::new(a.patients as u64);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} patients {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let chunk = workers * PER_WORKER;
    let seed = a.seed;
    // The trust's hospital numbers (`--hospital-number-*`), as a demo server's.
    let numbers = wardline_workflow::pmi::hospital_numbers();
    let mut start = 0;
    while start < a.patients {
        let end = (start + chunk).min(a.patients);
        // Worker w takes patients start+w, start+w+workers, … so the heavy
        // patient 0 does not leave the other workers idle.
        let parts: Vec<Result<Vec<Serialised>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    s.spawn(move || {
                        (start + w..end)
                            .step_by(workers)
                            .map(|i| {
                                population::patient_resources(seed, i, numbers)
                                    .iter()
                                    .map(serialise)
                                    .collect::<Result<Vec<_>>>()
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("generator thread panicked"))
                .collect()
        });
        let mut parts = parts
            .into_iter()
            .map(|p| p.map(Vec::into_iter))
            .collect::<Result<Vec<_>>>()?;
        for i in start..end {
            let patient = parts[(i - start) % workers]
                .next()
                .expect("every worker yields its patients in order");
            for (rt, line) in patient {
                out.write(&rt, &line)?;
            }
        }
        bar.inc((end - start) as u64);
        start = end;
    }
    bar.finish_and_clear();
    let total = out.finish()?;
    println!(
        "generated {total} resources for {} patients in {}",
        a.patients,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
