//! Search interactions: parse, page, include, and build the searchset Bundle.
//!
//! Paging: the default order is by the store's immutable `rid`; a `next` link
//! carries `_after` (the last rid served) and `_snapshot` (the highest rid when
//! the first page ran), so resources created while a client pages are not mixed
//! in and none are skipped. With `_sort` the link carries `_offset` instead,
//! within the same snapshot.

use serde_json::{Value, json};
use wardline_fhir::FhirError;
use wardline_fhir::definitions::Definitions;
use wardline_fhir::search::{self as fsearch, Summary, Total};
use wardline_store::PageRequest;

use crate::{FhirService, RequestHeaders, url_with};

const PAGING: [&str; 3] = ["_snapshot", "_after", "_offset"];

pub(crate) fn run(
    svc: &FhirService,
    t: Option<&str>,
    compartment: Option<(&str, &str)>,
    params: &[(String, String)],
    headers: &RequestHeaders,
    path: &[String],
) -> Result<Value, FhirError> {
    let mut page = PageRequest::default();
    let mut rest = Vec::new();
    for (k, v) in params {
        let num = || {
            v.parse::<i64>().map_err(|_| {
                FhirError::invalid(format!("paging parameter {k}='{v}' is not a number"))
            })
        };
        match k.as_str() {
            "_snapshot" => page.snapshot_rid = Some(num()?),
            "_after" => page.after_rid = Some(num()?),
            "_offset" => page.offset = num()?.max(0) as usize,
            _ => rest.push((k.clone(), v.clone())),
        }
    }
    let mut q = fsearch::parse(svc.defs(), t, &rest, headers.prefer_handling)?;
    if let Some((ct, id)) = compartment {
        q.compartment = Some((ct.to_owned(), id.to_owned()));
    }
    let cfg = svc.config();
    page.count = q.count.unwrap_or(cfg.default_count).min(cfg.max_count);
    page.want_total = q.total == Total::Accurate;
    // `_count=0` asks for the total only (as `_summary=count` does).
    page.count_only = q.summary == Summary::Count || q.count == Some(0);
    let result = svc.store().search(&q, &page)?;

    let base = &cfg.base_url;
    let path_s = if path.is_empty() || path.last().is_some_and(|p| p == "_search") {
        path.iter()
            .filter(|p| *p != "_search")
            .cloned()
            .collect::<Vec<_>>()
            .join("/")
    } else {
        path.join("/")
    };
    let mut self_q: Vec<(String, String)> = rest.clone();
    self_q.extend(
        params
            .iter()
            .filter(|(k, _)| PAGING.contains(&k.as_str()))
            .cloned(),
    );
    let mut links = vec![json!({"relation": "self", "url": url_with(base, &path_s, &self_q)})];
    if result.has_more {
        let mut next = rest.clone();
        next.push(("_snapshot".into(), result.snapshot_rid.to_string()));
        if q.sort.is_empty() {
            if let Some(last) = result.resources.last() {
                next.push(("_after".into(), last.rid.to_string()));
            }
        } else {
            next.push(("_offset".into(), (page.offset + page.count).to_string()));
        }
        links.push(json!({"relation": "next", "url": url_with(base, &path_s, &next)}));
    }
    if page.after_rid.is_some() || page.offset > 0 {
        links.push(json!({"relation": "first", "url": url_with(base, &path_s, &rest)}));
    }

    let shape = Shape::from_query(&rest);
    let mut entries = Vec::with_capacity(result.resources.len());
    let mut matched_keys = Vec::new();
    for r in &result.resources {
        let v: Value = serde_json::from_str(&r.json)
            .map_err(|e| FhirError::internal(format!("stored JSON unreadable: {e}")))?;
        matched_keys.push((r.resource_type.clone(), r.id.clone(), v.clone()));
        let v = match &shape {
            Some(s) => shape_resource(svc.defs(), v, s),
            None => v,
        };
        entries.push(json!({
            "fullUrl": format!("{base}/{}/{}", r.resource_type, r.id),
            "resource": v,
            "search": {"mode": "match"},
        }));
    }
    entries.extend(includes(svc, &q.include, &q.revinclude, &matched_keys)?);
    if !q.ignored.is_empty() {
        entries.push(json!({
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{
                    "severity": "warning",
                    "code": "not-supported",
                    "diagnostics": format!("ignored search parameters: {}", q.ignored.join(", ")),
                    "expression": q.ignored,
                }],
            },
            "search": {"mode": "outcome"},
        }));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
    });
    if let Some(total) = result.total {
        bundle["total"] = json!(total);
    }
    if !page.count_only {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(bundle)
}

/// `_include` (`Type:param[:Target]`) and `_revinclude`, one store round trip
/// per include value.
fn includes(
    svc: &FhirService,
    include: &[String],
    revinclude: &[String],
    matched: &[(String, String, Value)],
) -> Result<Vec<Value>, FhirError> {
    let base = &svc.config().base_url;
    let mut out = Vec::new();
    let mut seen: std::collections::HashSet<(String, String)> = matched
        .iter()
        .map(|(t, i, _)| (t.clone(), i.clone()))
        .collect();
    let entry = |r: &wardline_store::StoredResource| -> Result<Value, FhirError> {
        Ok(json!({
            "fullUrl": format!("{base}/{}/{}", r.resource_type, r.id),
            "resource": serde_json::from_str::<Value>(&r.json).map_err(|e| FhirError::internal(e.to_string()))?,
            "search": {"mode": "include"},
        }))
    };
    for inc in include {
        let parts: Vec<&str> = inc.split(':').collect();
        let (src, param, target) = match parts.as_slice() {
            [s, p] => (*s, *p, None),
            [s, p, t] if *t != "iterate" => (*s, *p, Some(*t)),
            _ => {
                return Err(FhirError::not_supported(format!(
                    "_include '{inc}' is not supported"
                )));
            }
        };
        let mut keys = Vec::new();
        for (t, _, v) in matched.iter().filter(|(t, _, _)| t == src) {
            for e in svc.defs().extract_index(v) {
                if e.param != param {
                    continue;
                }
                if let wardline_fhir::IndexValue::Reference {
                    target_type: Some(tt),
                    target_id: Some(ti),
                    ..
                } = e.value
                    && target.is_none_or(|x| x == tt)
                    && seen.insert((tt.clone(), ti.clone()))
                {
                    keys.push((tt, ti));
                }
            }
            let _ = t;
        }
        if !keys.is_empty() {
            for r in svc.store().read_many(&keys)? {
                if !r.deleted {
                    out.push(entry(&r)?);
                }
            }
        }
    }
    for rev in revinclude {
        let parts: Vec<&str> = rev.split(':').collect();
        let (src, param) = match parts.as_slice() {
            [s, p] | [s, p, _] => (*s, *p),
            _ => {
                return Err(FhirError::not_supported(format!(
                    "_revinclude '{rev}' is not supported"
                )));
            }
        };
        if matched.is_empty() {
            continue;
        }
        let refs = matched
            .iter()
            .map(|(t, i, _)| format!("{t}/{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let q = fsearch::parse(
            svc.defs(),
            Some(src),
            &[(param.to_owned(), refs)],
            wardline_fhir::search::Handling::Strict,
        )?;
        let page = svc.store().search(
            &q,
            &PageRequest {
                count: svc.config().max_count,
                ..PageRequest::default()
            },
        )?;
        for r in page.resources {
            if seen.insert((r.resource_type.clone(), r.id.clone())) {
                out.push(entry(&r)?);
            }
        }
    }
    Ok(out)
}

/// `_summary` / `_elements` applied to a returned resource.
pub(crate) enum Shape {
    Elements(Vec<String>),
    Text,
    Data,
    True,
}

impl Shape {
    pub(crate) fn from_query(q: &[(String, String)]) -> Option<Shape> {
        for (k, v) in q {
            match (k.as_str(), v.as_str()) {
                ("_summary", "true") => return Some(Shape::True),
                ("_summary", "text") => return Some(Shape::Text),
                ("_summary", "data") => return Some(Shape::Data),
                ("_elements", els) => {
                    return Some(Shape::Elements(
                        els.split(',').map(|s| s.trim().to_owned()).collect(),
                    ));
                }
                _ => {}
            }
        }
        None
    }
}

/// Keeps the elements `shape` asks for, plus the mandatory ones, and marks the
/// resource `SUBSETTED`.
pub(crate) fn shape_resource(defs: &Definitions, v: Value, shape: &Shape) -> Value {
    let Value::Object(mut obj) = v else { return v };
    let rt = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let keep = |k: &str| -> bool {
        if matches!(k, "resourceType" | "id" | "meta") {
            return true;
        }
        match shape {
            Shape::Elements(els) => els.iter().any(|e| e == k),
            Shape::Text => k == "text",
            Shape::Data => k != "text",
            Shape::True => {
                // Summary elements: required elements stand in for isSummary,
                // which the compact model does not carry.
                let base = k.trim_start_matches('_');
                defs.element(&format!("{rt}.{base}"))
                    .is_some_and(|e| e.min > 0)
                    || matches!(
                        base,
                        "identifier" | "status" | "name" | "code" | "subject" | "patient"
                    )
            }
        }
    };
    obj.retain(|k, _| keep(k));
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        let tags = m.entry("tag").or_insert_with(|| json!([]));
        if let Some(a) = tags.as_array_mut() {
            a.push(json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}));
        }
    }
    Value::Object(obj)
}
