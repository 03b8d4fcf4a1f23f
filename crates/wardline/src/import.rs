//! `wardline import`: FHIR JSON resources, Bundles and NDJSON into the store.
//!
//! Order-independent, idempotent and visible:
//! * Every file is read first. A file that provides what another file's
//!   references need (`Type?identifier=system|value` conditional references,
//!   `Type/id` literal ones) is loaded before it; a Bundle or resource that
//!   still fails is retried after all the others, round after round while a
//!   round loads something, so that no order of files (or of lines) matters.
//! * A POST whose resource carries the source's id is written as a PUT to
//!   that id (as a resource in a file is), so a second run finds the same
//!   resources instead of creating copies; the core makes no new version
//!   when the content is identical, and a conditional create
//!   (`ifNoneExist`) finds what the first run created.
//! * Progress is shown on any output (a bar on a terminal, a line every few
//!   files or seconds otherwise); files that are not FHIR are skipped with a
//!   note; the run ends with a reconciliation report (per resource type:
//!   read, created, updated, unchanged, rejected, and each rejection's file
//!   and line or Bundle entry), printed and written to a file.
//!
//! Each Bundle (and each chunk of NDJSON lines) is its own store
//! transaction, so a rejected item never stops the rest and never
//! half-writes.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use wardline_core::{Body, FhirService, Method, ServiceConfig};

use crate::StoreArgs;
use wardline::load::{call, outcome_text, read_text};

/// NDJSON lines loaded per store transaction. One transaction per line would
/// pay a durable commit (an fsync) per resource.
const CHUNK: usize = 1000;

/// Without a terminal, a progress line at least every this many files...
const LINE_EVERY_FILES: usize = 10;
/// ... or this often.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// JSON text as the REST API parses a body (`wardline_fhir::json`: a key
/// given twice is refused, decimals keep their precision); the error names
/// the element.
fn parse(text: &str) -> Result<Value, String> {
    wardline_fhir::json::parse(text.as_bytes()).map_err(|e| wardline::load::plain(&e))
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

/// One resource of the input, as a Bundle entry (`request`, `resource`,
/// maybe `fullUrl`), with where it came from.
struct Item {
    file: usize,
    /// `line 12` (NDJSON), `entry 3` (a Bundle's entry), or empty (a file
    /// holding one resource).
    at: String,
    rtype: String,
    entry: Value,
    /// The last refusal, while it is deferred.
    why: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// All items in one store transaction (a transaction Bundle, a file's
    /// resources, a chunk of NDJSON lines).
    Transaction,
    /// Each item on its own (a batch Bundle).
    Batch,
}

/// What is posted to the core at once.
struct Unit {
    kind: Kind,
    items: Vec<Item>,
    /// On failure, try each item on its own (NDJSON chunks: a bad line must
    /// not take its 999 neighbours with it).
    split: bool,
}

/// A file as read: its units and what it provides to and needs from others.
#[derive(Default)]
struct File {
    name: String,
    units: Vec<Unit>,
    provides: BTreeSet<String>,
    needs: BTreeSet<String>,
    /// Not skipped as not FHIR.
    fhir: bool,
}

/// Per resource type.
#[derive(Default, Clone, Copy)]
struct Tally {
    read: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
    rejected: usize,
}

const UNREADABLE: &str = "(unreadable)";

struct Rejection {
    file: String,
    at: String,
    why: String,
}

#[derive(Default)]
struct Report {
    types: BTreeMap<String, Tally>,
    rejections: Vec<Rejection>,
    skipped: Vec<String>,
    files: usize,
}

impl Report {
    fn tally(&mut self, rtype: &str) -> &mut Tally {
        self.types.entry(rtype.to_owned()).or_default()
    }
    /// A refused item; one that could not be read as a resource counts
    /// under `(unreadable)`, read and rejected.
    fn reject(&mut self, file: &str, at: &str, rtype: Option<&str>, why: String) {
        match rtype {
            Some(t) => self.tally(t).rejected += 1,
            None => {
                let t = self.tally(UNREADABLE);
                t.read += 1;
                t.rejected += 1;
            }
        }
        self.rejections.push(Rejection {
            file: file.to_owned(),
            at: at.to_owned(),
            why,
        });
    }
}

/// `Type?a=1&b=2` with its parameters decoded and sorted, so that two ways of
/// writing the same criteria meet.
fn criteria_key(t: &str, query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    pairs.sort();
    let q: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{t}?{}", q.join("&"))
}

/// The keys a resource answers to: `Type/id`, `Type` and
/// `Type?identifier=system|value` for each identifier.
fn provided(r: &Value, id: Option<&str>, out: &mut BTreeSet<String>) {
    let t = r["resourceType"].as_str().unwrap_or_default();
    out.insert(t.to_owned());
    if let Some(id) = id {
        out.insert(format!("{t}/{id}"));
    }
    for i in r["identifier"].as_array().into_iter().flatten() {
        if let (Some(s), Some(v)) = (i["system"].as_str(), i["value"].as_str()) {
            out.insert(criteria_key(t, &format!("identifier={s}|{v}")));
            out.insert(criteria_key(t, &format!("identifier={v}")));
        }
    }
}

/// The keys a resource's references need from elsewhere: a conditional
/// reference by identifier needs that identifier, any other criteria need a
/// resource of the type; a literal `Type/id` needs that resource.
fn needed(r: &Value, out: &mut BTreeSet<String>) {
    for s in wardline_fhir::reference::references(r) {
        if s.starts_with('#')
            || s.starts_with("urn:")
            || s.starts_with("http://")
            || s.starts_with("https://")
        {
            continue;
        }
        match s.split_once('?') {
            Some((t, q)) if !t.contains('/') => {
                let key = criteria_key(t, q);
                if key.starts_with(&format!("{t}?identifier=")) && !key.contains('&') {
                    out.insert(key);
                } else {
                    out.insert(t.to_owned());
                }
            }
            Some(_) => {}
            None => {
                let parts: Vec<&str> = s.split('/').collect();
                if parts.len() == 2 || (parts.len() == 4 && parts[2] == "_history") {
                    out.insert(format!("{}/{}", parts[0], parts[1]));
                }
            }
        }
    }
}

/// A resource as a transaction entry: a PUT to its id, or a POST without one.
fn as_entry(r: Value) -> Value {
    let t = r["resourceType"].as_str().unwrap_or_default().to_owned();
    match r.get("id").and_then(Value::as_str).map(str::to_owned) {
        Some(id) => {
            json!({"resource": r, "request": {"method": "PUT", "url": format!("{t}/{id}")}})
        }
        None => json!({"resource": r, "request": {"method": "POST", "url": t}}),
    }
}

/// A Bundle entry as the import writes it: a plain POST (no `ifNoneExist`)
/// whose resource carries an id becomes a PUT to that id, so that the
/// source's identity is kept and a second import finds it.
fn keep_source_id(mut e: Value) -> Value {
    let req = &e["request"];
    if req["method"] == "POST" && req.get("ifNoneExist").is_none() {
        let t = e["resource"]["resourceType"].as_str().map(str::to_owned);
        let id = e["resource"]["id"].as_str().map(str::to_owned);
        let plain_url = req["url"].as_str().is_some_and(|u| Some(u) == t.as_deref());
        if let (Some(t), Some(id), true) = (t, id, plain_url)
            && wardline_core::valid_id(&id)
        {
            e["request"] = json!({"method": "PUT", "url": format!("{t}/{id}")});
        }
    }
    e
}

fn note_entry(f: &mut File, e: &Value) {
    let r = &e["resource"];
    let put_id = (e["request"]["method"] == "PUT")
        .then(|| e["request"]["url"].as_str())
        .flatten()
        .and_then(|u| u.split_once('/'))
        .map(|(_, id)| id);
    provided(r, put_id, &mut f.provides);
    if let Some(c) = e["request"]["ifNoneExist"].as_str()
        && let Some(t) = r["resourceType"].as_str()
    {
        f.provides.insert(criteria_key(t, c));
    }
    needed(r, &mut f.needs);
}

/// The units of one parsed JSON document (a resource or a Bundle).
fn units_of(f: &mut File, file: usize, v: Value) {
    let rt = v["resourceType"].as_str().unwrap_or_default().to_owned();
    if rt != "Bundle" {
        let e = as_entry(v);
        note_entry(f, &e);
        f.units.push(Unit {
            kind: Kind::Transaction,
            items: vec![Item {
                file,
                at: String::new(),
                rtype: rt,
                entry: e,
                why: None,
            }],
            split: false,
        });
        return;
    }
    let btype = v["type"].as_str().unwrap_or_default().to_owned();
    let Some(list) = v.get("entry").and_then(Value::as_array).cloned() else {
        return;
    };
    let kind = match btype.as_str() {
        "transaction" => Kind::Transaction,
        "batch" => Kind::Batch,
        // Other Bundles (a collection, a searchset): their resources, as
        // one transaction.
        _ => Kind::Transaction,
    };
    let mut items = Vec::with_capacity(list.len());
    for (i, e) in list.into_iter().enumerate() {
        let e = if btype == "transaction" || btype == "batch" {
            keep_source_id(e)
        } else {
            match e.get("resource").cloned() {
                Some(r) => as_entry(r),
                None => continue,
            }
        };
        let rtype = e["resource"]["resourceType"]
            .as_str()
            .unwrap_or("(no resource)")
            .to_owned();
        note_entry(f, &e);
        items.push(Item {
            file,
            at: format!("entry {i}"),
            rtype,
            entry: e,
            why: None,
        });
    }
    if !items.is_empty() {
        f.units.push(Unit {
            kind,
            items,
            split: false,
        });
    }
}

/// The name without `.gz`, lower case.
fn stem(p: &Path) -> String {
    let n = p
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    n.strip_suffix(".gz").map(str::to_owned).unwrap_or(n)
}

/// Reads one file into `f`; `false` when it is not FHIR (skipped).
fn read_file(path: &Path, index: usize, f: &mut File, report: &mut Report) -> bool {
    let stem = stem(path);
    let ndjson = stem.ends_with(".ndjson") || stem.ends_with(".jsonl");
    if !ndjson && !stem.ends_with(".json") {
        report
            .skipped
            .push(format!("{}: not a .json or .ndjson file", f.name));
        return false;
    }
    let text = match read_text(path) {
        Ok(t) => t,
        Err(e) => {
            report.reject(&f.name, "", None, format!("cannot read: {e}"));
            return true;
        }
    };
    if ndjson {
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("line {}", i + 1);
            match parse(line) {
                Err(e) => report.reject(&f.name, &at, None, e),
                Ok(v) => match v["resourceType"].as_str().map(str::to_owned) {
                    None => report.reject(&f.name, &at, None, "no resourceType".into()),
                    // A Bundle in NDJSON is loaded on its own.
                    Some(rt) if rt == "Bundle" => {
                        let before = f.units.len();
                        units_of(f, index, v);
                        for u in &mut f.units[before..] {
                            for it in &mut u.items {
                                it.at = format!("{at} {}", it.at).trim().to_owned();
                            }
                        }
                    }
                    Some(rt) => {
                        let e = as_entry(v);
                        note_entry(f, &e);
                        items.push(Item {
                            file: index,
                            at,
                            rtype: rt,
                            entry: e,
                            why: None,
                        });
                    }
                },
            }
        }
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            f.units.push(Unit {
                kind: Kind::Transaction,
                items: items.by_ref().take(CHUNK).collect(),
                split: true,
            });
        }
        return true;
    }
    let v = match parse(&text) {
        Ok(v) => v,
        Err(e) => {
            report.reject(&f.name, "", None, format!("not valid JSON: {e}"));
            return true;
        }
    };
    if v.get("resourceType").and_then(Value::as_str).is_none() {
        report.skipped.push(format!(
            "{}: JSON without a resourceType (not a FHIR resource)",
            f.name
        ));
        return false;
    }
    units_of(f, index, v);
    true
}

/// The order to load files in: a file before those whose references it
/// provides (first in the given order among those free to go; a cycle is
/// broken at its first file).
fn order(files: &[File]) -> Vec<usize> {
    let mut providers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        for k in &f.provides {
            providers.entry(k.as_str()).or_default().push(i);
        }
    }
    let mut after: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); files.len()];
    let mut waits = vec![0usize; files.len()];
    for (i, f) in files.iter().enumerate() {
        let mut from = BTreeSet::new();
        for k in f.needs.iter().filter(|k| !f.provides.contains(*k)) {
            for &p in providers.get(k.as_str()).into_iter().flatten() {
                if p != i {
                    from.insert(p);
                }
            }
        }
        for p in from {
            if after[p].insert(i) {
                waits[i] += 1;
            }
        }
    }
    let mut ready: BinaryHeap<std::cmp::Reverse<usize>> = (0..files.len())
        .filter(|&i| waits[i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut done = vec![false; files.len()];
    let mut out = Vec::with_capacity(files.len());
    while out.len() < files.len() {
        let next = match ready.pop() {
            Some(std::cmp::Reverse(i)) => i,
            // A cycle: the first file not yet loaded goes next.
            None => match (0..files.len()).find(|&i| !done[i]) {
                Some(i) => i,
                None => break,
            },
        };
        if done[next] {
            continue;
        }
        done[next] = true;
        out.push(next);
        for &j in &after[next] {
            waits[j] = waits[j].saturating_sub(1);
            if waits[j] == 0 && !done[j] {
                ready.push(std::cmp::Reverse(j));
            }
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Class {
    Created,
    Updated,
    Unchanged,
}

/// What a response entry says happened to a written entry.
fn classify(request: &Value, response: &Value) -> Option<Class> {
    let status = response["status"].as_str().unwrap_or_default();
    if status.starts_with("201") {
        return Some(Class::Created);
    }
    if !status.starts_with("200") {
        // A DELETE's 204: written.
        return status.starts_with('2').then_some(Class::Updated);
    }
    let unchanged = response["outcome"]["issue"][0]["diagnostics"]
        .as_str()
        .is_some_and(|d| d.starts_with("unchanged"));
    // A POST answered 200 is a conditional create that found its resource.
    Some(if unchanged || request["method"] == "POST" {
        Class::Unchanged
    } else {
        Class::Updated
    })
}

fn count(report: &mut Report, item: &Item, c: Class) {
    let t = report.tally(&item.rtype);
    match c {
        Class::Created => t.created += 1,
        Class::Updated => t.updated += 1,
        Class::Unchanged => t.unchanged += 1,
    }
}

/// Posts a unit; the items written are counted, those refused are returned
/// (with why) to be retried or reported.
fn submit(service: &FhirService, unit: Unit, report: &mut Report) -> Vec<Item> {
    let kind = unit.kind;
    let bundle = json!({
        "resourceType": "Bundle",
        "type": if kind == Kind::Batch { "batch" } else { "transaction" },
        "entry": unit.items.iter().map(|i| i.entry.clone()).collect::<Vec<_>>(),
    });
    let answered = match call(service, Method::Post, vec![], &bundle) {
        Ok(Body::Json(b)) => Ok(b),
        Ok(Body::Raw(s)) => serde_json::from_str::<Value>(&s).map_err(|e| e.to_string()),
        Ok(_) => Err("no response Bundle".to_owned()),
        Err(e) => Err(e),
    };
    match answered {
        Ok(b) => {
            let resp = b["entry"].as_array().cloned().unwrap_or_default();
            let mut failed = Vec::new();
            for (i, mut item) in unit.items.into_iter().enumerate() {
                let r = &resp.get(i).map_or(Value::Null, |e| e["response"].clone());
                match classify(&item.entry["request"], r) {
                    Some(c) => count(report, &item, c),
                    None => {
                        item.why = Some(if r["outcome"].is_object() {
                            outcome_text(&r["outcome"])
                        } else {
                            format!("answered {}", r["status"])
                        });
                        failed.push(item);
                    }
                }
            }
            failed
        }
        Err(why) if unit.split && unit.items.len() > 1 => unit
            .items
            .into_iter()
            .flat_map(|it| {
                submit(
                    service,
                    Unit {
                        kind: Kind::Transaction,
                        items: vec![it],
                        split: false,
                    },
                    report,
                )
            })
            .map(|mut it| {
                if it.why.is_none() {
                    it.why = Some(why.clone());
                }
                it
            })
            .collect(),
        Err(why) => {
            // One transaction: nothing of it was written. The error names
            // the entry (`Bundle.entry[3]…`) in the submitted Bundle; for a
            // lone resource or an NDJSON line that Bundle is the import's
            // own, so the element is named from the resource.
            let mut items = unit.items;
            let why = match items.as_slice() {
                [one] if !one.at.starts_with("entry") => {
                    let ours = "Bundle.entry[0].resource";
                    why.replace(&format!("{ours}."), &format!("{}.", one.rtype))
                        .replace(ours, &one.rtype)
                }
                _ => why,
            };
            for it in &mut items {
                it.why = Some(why.clone());
            }
            items
        }
    }
}

/// Progress on stderr: the bar on a terminal, otherwise a line every few
/// files or seconds (and at the end of the first pass).
struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    last_line: Instant,
    last_n: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Progress {
            bar,
            total,
            last_line: Instant::now(),
            last_n: 0,
        }
    }

    fn set(&mut self, n: usize, name: &str, report: &Report) {
        if let Some(b) = &self.bar {
            b.set_position(n as u64);
            b.set_message(name.to_owned());
            return;
        }
        if n == self.last_n {
            return;
        }
        if n == self.total
            || n - self.last_n >= LINE_EVERY_FILES
            || self.last_line.elapsed() >= LINE_EVERY
        {
            let written: usize = report
                .types
                .values()
                .map(|t| t.created + t.updated + t.unchanged)
                .sum();
            eprintln!(
                "imported {n}/{} files ({written} resources written or unchanged)",
                self.total
            );
            self.last_line = Instant::now();
            self.last_n = n;
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The reconciliation report as text.
fn render(report: &Report, inputs: &[PathBuf], started: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "wardline import, started {started}");
    for p in inputs {
        let _ = writeln!(s, "  from {}", p.display());
    }
    let total = report.types.values().fold(Tally::default(), |a, t| Tally {
        read: a.read + t.read,
        created: a.created + t.created,
        updated: a.updated + t.updated,
        unchanged: a.unchanged + t.unchanged,
        rejected: a.rejected + t.rejected,
    });
    let _ = writeln!(
        s,
        "loaded {} from {}; rejected {}; skipped {} (not FHIR)",
        plural(
            total.created + total.updated + total.unchanged,
            "resource",
            "resources"
        ),
        plural(report.files, "file", "files"),
        total.rejected,
        plural(report.skipped.len(), "file", "files"),
    );
    let _ = writeln!(s);
    let w = report
        .types
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(13);
    let _ = writeln!(
        s,
        "{:<w$} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "resource type", "read", "created", "updated", "unchanged", "rejected"
    );
    for (t, c) in report.types.iter().chain([(&"total".to_owned(), &total)]) {
        let _ = writeln!(
            s,
            "{t:<w$} {:>9} {:>9} {:>9} {:>9} {:>9}",
            c.read, c.created, c.updated, c.unchanged, c.rejected
        );
    }
    if !report.skipped.is_empty() {
        let _ = writeln!(s, "\nskipped (not FHIR):");
        for n in &report.skipped {
            let _ = writeln!(s, "  {n}");
        }
    }
    if !report.rejections.is_empty() {
        let _ = writeln!(s, "\nrejected:");
        for r in &report.rejections {
            if r.at.is_empty() {
                let _ = writeln!(s, "  {}: {}", r.file, r.why);
            } else {
                let _ = writeln!(s, "  {} ({}): {}", r.file, r.at, r.why);
            }
        }
    }
    s
}

pub fn run(paths: &[PathBuf], report_path: Option<&Path>, store: &StoreArgs) -> Result<ExitCode> {
    let mut paths_found = Vec::new();
    for p in paths {
        if !p.exists() {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
        collect(p, &mut paths_found);
    }
    let service = store.service(ServiceConfig::default())?;
    let started_ms = wardline_fhir::datetime::now_ms();
    let started = wardline_fhir::datetime::format_instant(started_ms);
    let mut report = Report::default();

    // Read everything first: what each file provides and needs.
    let mut files: Vec<File> = Vec::with_capacity(paths_found.len());
    for (i, p) in paths_found.iter().enumerate() {
        let mut f = File {
            name: p.display().to_string(),
            ..File::default()
        };
        f.fhir = read_file(p, i, &mut f, &mut report);
        report.files += usize::from(f.fhir);
        for u in &f.units {
            for it in &u.items {
                report.tally(&it.rtype).read += 1;
            }
        }
        files.push(f);
    }
    let fhir_files = report.files;
    let order = order(&files);
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();

    // First pass, in dependency order.
    let mut progress = Progress::new(fhir_files);
    let mut deferred: Vec<Unit> = Vec::new();
    let mut done_files = 0usize;
    for i in order {
        if !files[i].fhir {
            continue;
        }
        for unit in std::mem::take(&mut files[i].units) {
            let kind = unit.kind;
            let failed = submit(&service, unit, &mut report);
            defer(&mut deferred, kind, failed);
        }
        done_files += 1;
        progress.set(done_files, &names[i], &report);
    }
    progress.set(fhir_files, "", &report);
    progress.finish();

    // Retry what failed while a round loads something.
    let mut round = 1;
    while !deferred.is_empty() {
        let before: usize = deferred.iter().map(|u| u.items.len()).sum();
        round += 1;
        eprintln!(
            "retrying {} refused on the first try (round {round})",
            plural(before, "resource", "resources")
        );
        let mut again = Vec::new();
        for unit in std::mem::take(&mut deferred) {
            let kind = unit.kind;
            let failed = submit(&service, unit, &mut report);
            defer(&mut again, kind, failed);
        }
        let after: usize = again.iter().map(|u| u.items.len()).sum();
        deferred = again;
        if after >= before {
            break;
        }
    }
    for unit in deferred {
        reject_unit(&mut report, &names, unit);
    }

    let text = render(&report, paths, &started);
    print!("{text}");
    let out = match report_path {
        Some(p) => p.to_owned(),
        None => {
            let stamp: String = started
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            store
                .data_dir
                .join("import-reports")
                .join(format!("import-{stamp}.txt"))
        }
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&out, &text).with_context(|| format!("cannot write {}", out.display()))?;
    println!("report written to {}", out.display());
    Ok(if report.rejections.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Keeps refused items for the next round: a transaction's as one unit again
/// (it must be all or nothing), a batch's as a batch of those entries.
fn defer(deferred: &mut Vec<Unit>, kind: Kind, failed: Vec<Item>) {
    if failed.is_empty() {
        return;
    }
    let split = kind == Kind::Transaction && failed.iter().all(|i| i.at.starts_with("line"));
    if split {
        // NDJSON lines: each on its own.
        for it in failed {
            deferred.push(Unit {
                kind: Kind::Transaction,
                items: vec![it],
                split: false,
            });
        }
    } else {
        deferred.push(Unit {
            kind,
            items: failed,
            split: false,
        });
    }
}

/// Reports a unit still refused after the last round: every item counts as
/// rejected under its type; a transaction's refusal is one line (its error
/// names the entry), a batch's or NDJSON's one line per item.
fn reject_unit(report: &mut Report, names: &[String], unit: Unit) {
    if unit.kind == Kind::Transaction && unit.items.len() > 1 {
        let why = unit.items[0].why.clone().unwrap_or_default();
        let file = names[unit.items[0].file].clone();
        let n = unit.items.len();
        for it in &unit.items {
            report.tally(&it.rtype).rejected += 1;
        }
        report.rejections.push(Rejection {
            file,
            at: format!("{} entries", n),
            why: format!("{why} (the transaction was not written)"),
        });
        return;
    }
    for it in unit.items {
        let why = it.why.clone().unwrap_or_default();
        report.reject(&names[it.file], &it.at, Some(&it.rtype), why);
    }
}
