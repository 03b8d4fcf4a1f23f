//! `wardline import`: FHIR JSON resources, Bundles and NDJSON into the store.
//!
//! Each file (each NDJSON line, each Bundle) is its own store transaction, so a
//! rejected item never stops the rest and never half-writes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use wardline_core::{Body, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig};

use crate::StoreArgs;

/// Loads `resource` (a plain resource or a Bundle) through the core. Returns
/// the number of resources written.
pub fn load_value(service: &FhirService, v: Value) -> Result<usize, String> {
    let rt = v
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or("not a FHIR resource (no resourceType)")?
        .to_owned();
    if rt == "Bundle" {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind == "transaction" || kind == "batch" {
            let n = v.get("entry").and_then(Value::as_array).map_or(0, Vec::len);
            let resp = call(service, Method::Post, vec![], &v)?;
            if kind == "batch"
                && let Body::Json(b) = &resp
            {
                let failed: Vec<String> = b["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .filter(|(_, e)| {
                        !e["response"]["status"]
                            .as_str()
                            .unwrap_or("")
                            .starts_with('2')
                    })
                    .map(|(i, e)| {
                        format!(
                            "entry {i}: {}",
                            e["response"]["outcome"]["issue"][0]["diagnostics"]
                        )
                    })
                    .collect();
                if !failed.is_empty() {
                    return Err(format!("batch entries failed: {}", failed.join("; ")));
                }
            }
            return Ok(n);
        }
        // Other Bundles: load each entry's resource as a transaction of PUTs/POSTs.
        let resources: Vec<Value> = v
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("resource").cloned())
            .collect();
        let n = resources.len();
        call(service, Method::Post, vec![], &transaction(resources))?;
        return Ok(n);
    }
    match v.get("id").and_then(Value::as_str) {
        Some(id) => call(service, Method::Put, vec![rt.clone(), id.to_owned()], &v)?,
        None => call(service, Method::Post, vec![rt], &v)?,
    };
    Ok(1)
}

/// A transaction Bundle writing `resources`: each a PUT to its id, or a
/// POST when it has none.
pub fn transaction(resources: impl IntoIterator<Item = Value>) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let t = r["resourceType"].as_str().unwrap_or_default().to_owned();
            match r.get("id").and_then(Value::as_str).map(str::to_owned) {
                Some(id) => serde_json::json!({"resource": r, "request": {"method": "PUT", "url": format!("{t}/{id}")}}),
                None => serde_json::json!({"resource": r, "request": {"method": "POST", "url": t}}),
            }
        })
        .collect();
    serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// NDJSON lines loaded per store transaction. One transaction per line would
/// pay a durable commit (an fsync) per resource.
const CHUNK: usize = 1000;

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

fn call(
    service: &FhirService,
    method: Method,
    path: Vec<String>,
    v: &Value,
) -> Result<Body, String> {
    let resp = service.handle(
        FhirRequest {
            method,
            path,
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(serde_json::to_vec(v).map_err(|e| e.to_string())?),
        },
        &wardline_core::Trusted::operator("import"),
    );
    if resp.status >= 400 {
        let why = match &resp.body {
            Body::Json(oo) => oo["issue"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| {
                    let at = i["expression"]
                        .as_array()
                        .and_then(|a| a.first())
                        .and_then(Value::as_str);
                    match at {
                        Some(at) => {
                            format!("{} (at {at})", i["diagnostics"].as_str().unwrap_or(""))
                        }
                        None => i["diagnostics"].as_str().unwrap_or("").to_owned(),
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::new(),
        };
        return Err(format!("HTTP {}: {why}", resp.status));
    }
    Ok(resp.body)
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

pub fn read_text(p: &Path) -> std::io::Result<String> {
    let raw = std::fs::read(p)?;
    if p.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_string(&mut s)?;
        Ok(s)
    } else {
        String::from_utf8(raw).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

pub fn run(paths: &[PathBuf], store: &StoreArgs) -> Result<ExitCode> {
    let service = FhirService::new(store.open()?, ServiceConfig::default());
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
                    match serde_json::from_str::<Value>(line) {
                        Err(e) => rejected.push(format!("{name}:{}: invalid JSON: {e}", i + 1)),
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
            Ok(text) => match serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("invalid JSON at line {}: {e}", e.line()))
                .and_then(|v| load_value(&service, v))
            {
                Ok(n) => loaded += n,
                Err(e) => rejected.push(format!("{name}: {e}")),
            },
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "loaded {loaded} resources from {} files; rejected {}",
        files.len(),
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
