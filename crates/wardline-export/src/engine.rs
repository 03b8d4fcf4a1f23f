//! The export engine: which resources an export selects, and writing them
//! to one NDJSON file per type, page by page.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use wardline_core::BulkReader;
use wardline_fhir::FhirError;
use wardline_fhir::definitions::Definitions;
use wardline_fhir::search::{
    self as fsearch, Filter, FilterKind, Handling, PatientScope, Prefix, SearchQuery,
};

use crate::R;

/// Resources read per store round trip while exporting.
pub const EXPORT_PAGE: usize = 5000;

/// `[base]/$export`, `[base]/Patient/$export` or `[base]/Group/ID/$export`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLevel {
    System,
    Patient,
    Group(String),
}

impl ExportLevel {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            ExportLevel::System => json!({"level": "system"}),
            ExportLevel::Patient => json!({"level": "patient"}),
            ExportLevel::Group(id) => json!({"level": "group", "group": id}),
        }
    }

    pub(crate) fn from_json(v: &Value) -> Option<ExportLevel> {
        Some(match v["level"].as_str()? {
            "system" => ExportLevel::System,
            "patient" => ExportLevel::Patient,
            "group" => ExportLevel::Group(v["group"].as_str()?.to_owned()),
            _ => return None,
        })
    }
}

/// A validated export request.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub level: ExportLevel,
    /// `_type`; empty means every type the level allows.
    pub types: Vec<String>,
    /// `_since`, in epoch milliseconds.
    pub since_ms: Option<i64>,
    /// `_typeFilter`: per type, queries that are OR-ed.
    pub type_filters: HashMap<String, Vec<SearchQuery>>,
    /// The kick-off parameters as given (kept to re-run after a restart).
    pub params: Vec<(String, String)>,
}

/// One NDJSON file of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOutput {
    pub resource_type: String,
    /// File name within the export directory (`Observation.ndjson`).
    pub file: String,
    pub count: u64,
}

const FORMATS: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// Validates the kick-off parameters (dates without a time-zone offset are
/// read in the reader's time zone).
pub fn parse_spec(
    reader: &BulkReader,
    level: ExportLevel,
    params: &[(String, String)],
) -> R<ExportSpec> {
    let (defs, zone) = (reader.definitions(), reader.time_zone());
    let mut spec = ExportSpec {
        level,
        types: Vec::new(),
        since_ms: None,
        type_filters: HashMap::new(),
        params: params.to_vec(),
    };
    let bad = |k: &str, why: String| FhirError::invalid(why).at(k);
    for (k, v) in params {
        match k.as_str() {
            "_outputFormat" => {
                if !FORMATS.contains(&v.as_str()) {
                    return Err(bad(
                        k,
                        format!(
                            "_outputFormat '{v}' is not supported; use application/fhir+ndjson"
                        ),
                    ));
                }
            }
            "_type" => {
                for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !defs.is_resource_type(t) {
                        return Err(bad(k, format!("_type '{t}' is not a resource type")));
                    }
                    spec.types.push(t.to_owned());
                }
            }
            "_since" => {
                let (lo, _) = wardline_fhir::datetime::parse_range_in(v, zone)
                    .ok_or_else(|| bad(k, format!("_since '{v}' is not an instant")))?;
                spec.since_ms = Some(lo);
            }
            "_typeFilter" => {
                for f in v.split(',').filter(|f| !f.is_empty()) {
                    let (t, query) = f.split_once('?').ok_or_else(|| {
                        bad(
                            k,
                            format!("_typeFilter '{f}' must be Type?search-parameters"),
                        )
                    })?;
                    if !defs.is_resource_type(t) {
                        return Err(bad(
                            k,
                            format!("_typeFilter '{f}': '{t}' is not a resource type"),
                        ));
                    }
                    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                        .into_owned()
                        .collect();
                    let q = fsearch::parse_in(defs, zone, Some(t), &pairs, Handling::Strict)
                        .map_err(|e| {
                            bad(k, format!("_typeFilter '{f}': {}", e.issues[0].diagnostics))
                        })?;
                    if !q.include.is_empty() || !q.revinclude.is_empty() || !q.sort.is_empty() {
                        return Err(bad(
                            k,
                            format!("_typeFilter '{f}' may only hold search filters"),
                        ));
                    }
                    spec.type_filters.entry(t.to_owned()).or_default().push(q);
                }
            }
            "_format" | "_pretty" => {}
            "patient" | "includeAssociatedData" | "_elements" => {
                return Err(FhirError::not_supported(format!(
                    "$export parameter '{k}' is not supported"
                ))
                .at(k.as_str()));
            }
            _ => return Err(bad(k, format!("'{k}' is not a parameter of $export"))),
        }
    }
    // A _typeFilter type not in an explicit _type list would never be exported.
    if !spec.types.is_empty() {
        for t in spec.type_filters.keys() {
            if !spec.types.contains(t) {
                return Err(bad(
                    "_typeFilter",
                    format!("_typeFilter names {t}, which _type leaves out"),
                ));
            }
        }
    }
    Ok(spec)
}

/// The resource types an export visits, in a stable order.
fn export_types(defs: &Definitions, spec: &ExportSpec) -> Vec<String> {
    let in_compartment = |t: &str| {
        t == "Patient"
            || defs
                .patient_compartment
                .get(t)
                .is_some_and(|p| !p.is_empty())
    };
    let mut types: Vec<String> = if spec.types.is_empty() {
        let mut all: Vec<String> = defs
            .types
            .keys()
            .filter(|t| defs.is_resource_type(t))
            .cloned()
            .collect();
        all.sort();
        all
    } else {
        spec.types.clone()
    };
    if spec.level != ExportLevel::System {
        types.retain(|t| in_compartment(t));
    }
    types
}

/// The patients a Group export covers: the Group's `member.entity` references
/// to Patients.
fn group_patients(reader: &BulkReader, id: &str) -> R<Vec<String>> {
    let v = reader.read("Group", id).map_err(|e| {
        if e.status == 410 {
            FhirError::not_found(format!("Group/{id} is not known"))
        } else {
            e
        }
    })?;
    let mut out = Vec::new();
    for m in v["member"].as_array().into_iter().flatten() {
        if m["inactive"] == json!(true) {
            continue;
        }
        if let Some(r) = m.pointer("/entity/reference").and_then(Value::as_str)
            && let Some(id) = r.strip_prefix("Patient/")
        {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

/// The queries for one type (OR-ed), each restricted by `_since` and the level.
fn type_queries(spec: &ExportSpec, t: &str, scope: &Option<PatientScope>) -> Vec<SearchQuery> {
    let base = SearchQuery {
        resource_type: Some(t.to_owned()),
        ..SearchQuery::default()
    };
    let mut qs = spec
        .type_filters
        .get(t)
        .cloned()
        .unwrap_or_else(|| vec![base]);
    for q in &mut qs {
        q.patient_scope = scope.clone();
        if let Some(since) = spec.since_ms {
            q.filters.push(Filter {
                param: "_lastUpdated".into(),
                param_type: None,
                kind: FilterKind::LastUpdated(vec![(Prefix::Ge, since, since + 1)]),
            });
        }
    }
    qs
}

fn scope(reader: &BulkReader, spec: &ExportSpec) -> R<Option<PatientScope>> {
    Ok(match &spec.level {
        ExportLevel::System => None,
        ExportLevel::Patient => Some(PatientScope::Any),
        ExportLevel::Group(id) => Some(PatientScope::Of(group_patients(reader, id)?)),
    })
}

/// How many resources the export will write (for progress bars); filters that
/// overlap may make this an overestimate.
pub fn count(reader: &BulkReader, spec: &ExportSpec) -> R<u64> {
    let scope = scope(reader, spec)?;
    let mut n = 0;
    for t in export_types(reader.definitions(), spec) {
        for q in type_queries(spec, &t, &scope) {
            n += reader.count(&q)?;
        }
    }
    Ok(n)
}

/// Writes the export into `dir` (which must exist): one `Type.ndjson` per type
/// with at least one resource, fsynced. `progress` is called with the number of
/// resources read so far; `cancel` stops the export between pages.
///
/// The resources of patients under the national data opt-out are left out,
/// with their whole compartment: the core's [`BulkReader`] applies it.
pub fn export_to_dir(
    reader: &BulkReader,
    spec: &ExportSpec,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
    cancel: &AtomicBool,
) -> R<Vec<ExportOutput>> {
    let io = |e: std::io::Error| FhirError::internal(format!("writing the export failed: {e}"));
    let scope = scope(reader, spec)?;
    // One scan for the whole export: one snapshot (later pages never see
    // rows created after the first page; updates to existing rows are
    // still seen) and one reading of the opt-outs.
    let mut scan = reader.scan()?;
    let mut outputs = Vec::new();
    let mut written = 0u64;
    for t in export_types(reader.definitions(), spec) {
        let queries = type_queries(spec, &t, &scope);
        let dedupe = queries.len() > 1;
        let mut seen: HashSet<i64> = HashSet::new();
        let mut file: Option<BufWriter<fs::File>> = None;
        let name = format!("{t}.ndjson");
        let mut n = 0u64;
        for q in queries {
            let mut after = None;
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return Err(FhirError::new(499, "processing", "export cancelled"));
                }
                let page = scan.page(&q, after, EXPORT_PAGE)?;
                for r in &page.resources {
                    if dedupe && !seen.insert(r.rid) {
                        continue;
                    }
                    let f = match &mut file {
                        Some(f) => f,
                        None => file.insert(BufWriter::with_capacity(
                            1 << 20,
                            fs::File::create(dir.join(&name)).map_err(io)?,
                        )),
                    };
                    // Stored JSON is compact (one line) by construction.
                    f.write_all(r.json.as_bytes()).map_err(io)?;
                    f.write_all(b"\n").map_err(io)?;
                    n += 1;
                }
                written += page.read as u64;
                progress(written);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        if let Some(f) = file {
            let f = f.into_inner().map_err(|e| io(e.into_error()))?;
            f.sync_all().map_err(io)?;
            outputs.push(ExportOutput {
                resource_type: t.clone(),
                file: name,
                count: n,
            });
        }
    }
    fsync_dir(dir).map_err(io)?;
    if scan.withheld() > 0 {
        tracing::info!(
            withheld = scan.withheld(),
            patients = scan.opted_out_patients(),
            "export: resources of patients under the national data opt-out left out"
        );
    }
    Ok(outputs)
}

pub(crate) fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::service;
    use wardline_core::{FhirRequest, Method, RequestHeaders};

    #[test]
    fn memory_is_bounded_by_pages() {
        // More resources than one page: the export pages through them and
        // every one is written once.
        let svc = service();
        let n = EXPORT_PAGE + 17;
        let mut entries = Vec::new();
        for i in 0..n {
            entries.push(json!({"resource": {"resourceType": "Basic", "id": format!("b{i}"), "code": {"text": "x"}},
                "request": {"method": "PUT", "url": format!("Basic/b{i}")}}));
        }
        let r = svc.handle(
            FhirRequest {
                method: Method::Post,
                path: vec![],
                query: vec![],
                headers: RequestHeaders::default(),
                body: Some(
                    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
                        .to_string()
                        .into_bytes(),
                ),
            },
            &wardline_core::Trusted::operator("test"),
        );
        assert_eq!(r.status, 200);
        let dir = tempfile::tempdir().unwrap();
        let reader = svc.bulk_reader();
        let spec = parse_spec(
            &reader,
            ExportLevel::System,
            &[("_type".into(), "Basic".into())],
        )
        .unwrap();
        let mut calls = 0;
        let out = export_to_dir(
            &reader,
            &spec,
            dir.path(),
            &mut |_| calls += 1,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(out[0].count, n as u64);
        assert_eq!(calls, 2, "two pages");
        let text = fs::read_to_string(dir.path().join("Basic.ndjson")).unwrap();
        let ids: HashSet<&str> = text
            .lines()
            .map(|l| &l[l.find("\"id\":\"").unwrap() + 6..])
            .collect();
        assert_eq!(ids.len(), n);
        // Cancelled before it starts: an error, not a partial success.
        let dir2 = tempfile::tempdir().unwrap();
        assert!(
            export_to_dir(
                &reader,
                &spec,
                dir2.path(),
                &mut |_| {},
                &AtomicBool::new(true)
            )
            .is_err()
        );
    }
}
