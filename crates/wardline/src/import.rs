//! `wardline import`: FHIR JSON resources, Bundles and NDJSON into the store.
//!
//! Each file (each NDJSON line, each Bundle) is its own store transaction, so a
//! rejected item never stops the rest and never half-writes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use wardline_core::{FhirService, Method, ServiceConfig};

use crate::StoreArgs;
use wardline::load::{call, load_value, read_text, transaction};

/// NDJSON lines loaded per store transaction. One transaction per line would
/// pay a durable commit (an fsync) per resource.
const CHUNK: usize = 1000;

/// JSON text as the REST API parses a body (`wardline_fhir::json`: a key
/// given twice is refused, decimals keep their precision); the error names
/// the element.
fn parse(text: &str) -> Result<Value, String> {
    wardline_fhir::json::parse(text.as_bytes()).map_err(|e| {
        e.issues
            .iter()
            .map(|i| match i.expression.first() {
                Some(at) => format!("{} (at {at})", i.diagnostics),
                None => i.diagnostics.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Loads NDJSON resources as one transaction; if it fails, line by line, so
/// that every bad line is reported by number and every good one is loaded.
fn load_chunk(
    service: &FhirService,
    name: &str,
    chunk: &mut Vec<(usize, Value)>,
    loaded: &mut usize,
    rejected: &mut Vec<String>,
) {
    if chunk.is_empty() {
        return;
    }
    let bundle = transaction(chunk.iter().map(|(_, r)| r.clone()));
    if call(service, Method::Post, vec![], &bundle).is_ok() {
        *loaded += chunk.len();
    } else {
        for (line, v) in chunk.drain(..) {
            match load_value(service, v) {
                Ok(n) => *loaded += n,
                Err(e) => rejected.push(format!("{name}:{line}: {e}")),
            }
        }
    }
    chunk.clear();
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        children.sort();
        for c in children {
            collect(&c, out);
        }
    } else {
        out.push(p.to_owned());
    }
}

pub fn run(paths: &[PathBuf], store: &StoreArgs) -> Result<ExitCode> {
    let service = store.service(ServiceConfig::default())?;
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
        collect(p, &mut files);
    }
    let bar = ProgressBar::new(files.len() as u64);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut loaded, mut rejected) = (0usize, Vec::new());
    for f in &files {
        bar.set_message(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let name = f.display().to_string();
        let stem = name.trim_end_matches(".gz");
        match read_text(f) {
            Err(e) => rejected.push(format!("{name}: cannot read: {e}")),
            Ok(text) if stem.ends_with(".ndjson") => {
                let mut chunk: Vec<(usize, Value)> = Vec::with_capacity(CHUNK);
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match parse(line) {
                        Err(e) => rejected.push(format!("{name}:{}: {e}", i + 1)),
                        // Bundles in NDJSON are loaded on their own.
                        Ok(v) if v["resourceType"] == "Bundle" => match load_value(&service, v) {
                            Ok(n) => loaded += n,
                            Err(e) => rejected.push(format!("{name}:{}: {e}", i + 1)),
                        },
                        Ok(v) => {
                            chunk.push((i + 1, v));
                            if chunk.len() == CHUNK {
                                load_chunk(&service, &name, &mut chunk, &mut loaded, &mut rejected);
                            }
                        }
                    }
                }
                load_chunk(&service, &name, &mut chunk, &mut loaded, &mut rejected);
            }
            Ok(text) => match parse(&text).and_then(|v| load_value(&service, v)) {
                Ok(n) => loaded += n,
                Err(e) => rejected.push(format!("{name}: {e}")),
            },
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "loaded {} from {}; rejected {}",
        plural(loaded, "resource", "resources"),
        plural(files.len(), "file", "files"),
        rejected.len()
    );
    for r in &rejected {
        println!("  {r}");
    }
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
