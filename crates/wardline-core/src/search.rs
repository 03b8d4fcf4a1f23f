//! Search interactions: parse, page, include, and build the searchset Bundle.
//!
//! Paging: the default order is by the store's immutable `rid`; a `next` link
//! carries `_after` (the last rid served) and `_snapshot` (the highest rid when
//! the first page ran), so resources created while a client pages are not mixed
//! in and none are skipped. With `_sort` the link carries `_offset` instead,
//! within the same snapshot.

use std::collections::HashMap;

use serde_json::{Value, json};
use wardline_fhir::datetime::LocalZone;
use wardline_fhir::definitions::{Definitions, SearchParamType};
use wardline_fhir::search::{self as fsearch, Summary, Total};
use wardline_fhir::{FhirError, IndexValue};
use wardline_store::PageRequest;

use crate::{FhirService, RequestHeaders, url_with};

const PAGING: [&str; 3] = ["_snapshot", "_after", "_offset"];

/// What `Patient/$everything` adds to a compartment search: its patient,
/// and the care-date range (`start`, `end`; the rule is on
/// `FhirService::everything`).
#[derive(Default)]
pub(crate) struct CareDates {
    /// The start of `start` and the end of `end` (epoch ms), with the value
    /// given.
    start: Option<(i64, String)>,
    end: Option<(i64, String)>,
    /// The patient whose record it is: returned first, on the first page
    /// (a client that reads one page must not get a record without its
    /// patient), and on no other page.
    pub(crate) patient: Option<String>,
}

/// Date search parameters that are no care date.
const NOT_CARE_DATES: [&str; 2] = ["birthdate", "death-date"];

impl CareDates {
    /// Takes `start` or `end`; a value that is not a date, or one given
    /// twice, is 400 naming the parameter.
    pub(crate) fn set(&mut self, k: &str, v: String, zone: &LocalZone) -> Result<(), FhirError> {
        let (lo, hi) = wardline_fhir::datetime::parse_range_in(&v, zone).ok_or_else(|| {
            FhirError::invalid(format!(
                "{k} '{v}' is not a date (YYYY, YYYY-MM or YYYY-MM-DD)"
            ))
            .at(k.to_owned())
        })?;
        let (slot, at) = if k == "start" {
            (&mut self.start, lo)
        } else {
            (&mut self.end, hi)
        };
        if slot.is_some() {
            return Err(
                FhirError::invalid(format!("'{k}' is given more than once")).at(k.to_owned())
            );
        }
        *slot = Some((at, v));
        Ok(())
    }

    /// A start after the end is 400.
    pub(crate) fn check(&self) -> Result<(), FhirError> {
        if let (Some((lo, s)), Some((hi, e))) = (&self.start, &self.end)
            && lo >= hi
        {
            return Err(FhirError::invalid(format!("start '{s}' is after end '{e}'")).at("start"));
        }
        Ok(())
    }

    fn is_set(&self) -> bool {
        self.start.is_some() || self.end.is_some()
    }

    /// `start` and `end` as given, for the links of the Bundle.
    fn params(&self) -> Vec<(String, String)> {
        [("start", &self.start), ("end", &self.end)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|(_, v)| (k.to_owned(), v.clone())))
            .collect()
    }

    /// Whether `r` has a care date in the range, or none at all.
    fn keeps(
        &self,
        defs: &Definitions,
        zone: &LocalZone,
        codes: &mut HashMap<String, Vec<String>>,
        r: &wardline_store::StoredResource,
    ) -> Result<bool, FhirError> {
        let codes = codes.entry(r.resource_type.clone()).or_insert_with(|| {
            defs.search_params
                .get(&r.resource_type)
                .map(|ps| {
                    ps.values()
                        .filter(|p| {
                            p.kind == SearchParamType::Date
                                && !p.code.starts_with('_')
                                && !NOT_CARE_DATES.contains(&p.code.as_str())
                        })
                        .map(|p| p.code.clone())
                        .collect()
                })
                .unwrap_or_default()
        });
        if codes.is_empty() || r.deleted {
            return Ok(true);
        }
        let lo = self.start.as_ref().map_or(i64::MIN, |(t, _)| *t);
        let hi = self.end.as_ref().map_or(i64::MAX, |(t, _)| *t);
        let mut dated = false;
        for e in defs.extract_index(&parse_stored(r)?, zone) {
            if let IndexValue::Date { lo: dlo, hi: dhi } = e.value
                && codes.contains(&e.param)
            {
                if dlo < hi && dhi > lo {
                    return Ok(true);
                }
                dated = true;
            }
        }
        Ok(!dated)
    }
}

/// What a search found, as the requester may see it, before it is rendered
/// (as a searchset Bundle by [`run`], as typed values by
/// [`FhirService::search_as`]).
pub(crate) struct Executed {
    pub query: fsearch::SearchQuery,
    pub page: PageRequest,
    /// The parameters other than paging (with the care dates of
    /// `$everything`, which the links carry).
    pub rest: Vec<(String, String)>,
    /// The matches the requester may see (`result.total` dropped when some
    /// were withheld or filtered out).
    pub result: wardline_store::SearchPage,
    pub last_rid: Option<i64>,
    /// `_include`d resources the requester may see.
    pub included: Vec<wardline_store::StoredResource>,
    /// Matches and includes withheld from the requester.
    pub withheld: usize,
    /// The include limit cut the includes short.
    pub truncated: bool,
}

/// Parses, runs and checks a search (see the module documentation).
pub(crate) fn execute(
    svc: &FhirService,
    cx: &crate::Ctx<'_>,
    t: Option<&str>,
    compartment: Option<(&str, &str)>,
    params: &[(String, String)],
    headers: &RequestHeaders,
    everything: Option<&CareDates>,
) -> Result<Executed, FhirError> {
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
    let mut q = fsearch::parse_in(
        svc.defs(),
        svc.time_zone(),
        t,
        &rest,
        headers.prefer_handling,
    )?;
    let asked = rest.clone();
    // The care dates are no search parameter, but the links carry them.
    let care_dates = everything.filter(|c| c.is_set());
    if let Some(c) = care_dates {
        rest.extend(c.params());
    }
    if let Some((ct, id)) = compartment {
        q.compartment = Some((ct.to_owned(), id.to_owned()));
    }
    let cfg = svc.config();
    page.count = q.count.unwrap_or(cfg.default_count).min(cfg.max_count);
    // What is filtered after the store (care dates, the access policy) is
    // not in the store's count: such a total is counted as the requester
    // sees it (below), so the store is not asked to count for nothing.
    let filtered = care_dates.is_some() || cx.access.restricted();
    let store_counts = everything.is_some() || !filtered;
    page.want_total = q.total == Total::Accurate && store_counts;
    // `_count=0` asks for the total only (as `_summary=count` does).
    page.count_only = q.summary == Summary::Count || q.count == Some(0);
    let mut result = if page.count_only && !store_counts {
        wardline_store::SearchPage::default()
    } else {
        svc.store().search(&q, &page)?
    };
    // Matches the requester may not see are withheld (counted in an
    // OperationOutcome entry).
    let reader = svc.reader();
    let mut withheld = 0usize;
    let mut kept = Vec::with_capacity(result.resources.len());
    let last_rid = result.resources.last().map(|r| r.rid);
    if let Some(c) = care_dates {
        // Filtered after the page is read (the next one starts after the
        // last rid read), so the total, which counts all, is dropped.
        let mut codes = HashMap::new();
        let mut in_range = Vec::with_capacity(result.resources.len());
        for r in std::mem::take(&mut result.resources) {
            if c.keeps(svc.defs(), svc.time_zone(), &mut codes, &r)? {
                in_range.push(r);
            }
        }
        result.resources = in_range;
    }
    // An exact patient trace may find a patient a broader search would not
    // list (the policy decides); it is audited as such.
    let traced = crate::access::is_trace(&q);
    if traced {
        cx.record.borrow_mut().subtype = (
            crate::audit::WARDLINE_SUBTYPE,
            crate::access::TRACE_SUBTYPE.to_owned(),
        );
    }
    for r in std::mem::take(&mut result.resources) {
        match cx.check_out_found(crate::Op::Search, &r, reader, traced) {
            Ok(()) => kept.push(r),
            Err(e) if e.status == 403 => withheld += 1,
            Err(e) => return Err(e),
        }
    }
    result.resources = kept;
    // The total counts what the requester may see. A first page with no
    // next one holds every match: its length is the total, for nothing
    // more. Otherwise the store's count is right only when nothing is
    // filtered after it (no care dates, an unrestricted caller); when a
    // total is asked for (`_total=accurate`, `_summary=count`, `_count=0`)
    // and something is, the matches are counted page by page as the
    // requester would see them.
    let first_page = page.after_rid.is_none() && page.offset == 0;
    if everything.is_some() {
        // `$everything` (its patient first, what they refer to): no total
        // once anything was filtered out.
        if care_dates.is_some() || withheld > 0 {
            result.total = None;
        }
    } else if first_page && !result.has_more && !page.count_only {
        result.total = Some(result.resources.len() as u64);
    } else if (q.total == Total::Accurate || page.count_only) && filtered {
        result.total = Some(visible_total(svc, cx, &q, care_dates, traced)?);
    } else if filtered {
        result.total = None;
    }
    if let Some(pid) = everything.and_then(|c| c.patient.as_deref()) {
        let first_page = page.after_rid.is_none() && page.offset == 0 && !page.count_only;
        let here = result
            .resources
            .iter()
            .position(|r| r.resource_type == "Patient" && r.id == pid);
        match (here, first_page) {
            (Some(i), true) => {
                let p = result.resources.remove(i);
                result.resources.insert(0, p);
            }
            (Some(i), false) => {
                result.resources.remove(i);
            }
            (None, true) => {
                // Written after the rest of its record: fetched, if it
                // matches what was asked (`_type`, `_since`). One more store
                // call, only then.
                let mut one = asked.clone();
                one.retain(|(k, _)| k != "_count" && k != "_sort");
                one.push(("_id".to_owned(), pid.to_owned()));
                let mut pq = fsearch::parse_in(
                    svc.defs(),
                    svc.time_zone(),
                    t,
                    &one,
                    headers.prefer_handling,
                )?;
                pq.compartment = q.compartment.clone();
                let found = svc.store().search(
                    &pq,
                    &PageRequest {
                        count: 10,
                        ..PageRequest::default()
                    },
                )?;
                if let Some(p) = found
                    .resources
                    .into_iter()
                    .find(|r| r.resource_type == "Patient" && r.id == pid)
                {
                    cx.check_out(crate::Op::Search, &p, reader)?;
                    result.resources.insert(0, p);
                }
            }
            (None, false) => {}
        }
    }
    let (mut include, mut revinclude) = (q.include.clone(), q.revinclude.clone());
    if everything.is_some() {
        // `$everything` also returns what the compartment's resources refer to
        // outside it (practitioners, locations, organisations, medications):
        // every reference of every type on the page, in the same round trip.
        let mut types: Vec<&str> = result
            .resources
            .iter()
            .map(|r| r.resource_type.as_str())
            .collect();
        types.sort_unstable();
        types.dedup();
        include = types
            .into_iter()
            .map(|t| fsearch::Include {
                source_type: t.to_owned(),
                param: None,
                target_type: None,
                iterate: false,
            })
            .collect();
        revinclude.clear();
    }
    let (mut included, truncated) = includes(
        svc,
        &include,
        &revinclude,
        &result.resources,
        cfg.max_include,
    )?;
    if everything.is_some() {
        // Another patient's record is never pulled in through a reference.
        let defs = svc.defs();
        included.retain(|r| {
            r.resource_type != "Patient"
                && defs
                    .patient_compartment
                    .get(&r.resource_type)
                    .is_none_or(|params| params.is_empty())
        });
    }
    let mut visible = Vec::with_capacity(included.len());
    for r in included {
        match cx.check_out(crate::Op::Read, &r, reader) {
            Ok(()) => visible.push(r),
            Err(e) if e.status == 403 => withheld += 1,
            Err(e) => return Err(e),
        }
    }
    if withheld > 0 {
        // The audit event says how much the requester was not shown.
        cx.record.borrow_mut().outcome_desc = Some(format!(
            "{withheld} matching resource{} withheld",
            if withheld == 1 { "" } else { "s" }
        ));
    }
    Ok(Executed {
        query: q,
        page,
        rest,
        result,
        last_rid,
        included: visible,
        withheld,
        truncated,
    })
}

/// The number of matches of `q` the requester may see: every page read,
/// each match kept by the care dates and the access policy as a page would
/// keep it (without touching the audit record: only the count is told).
fn visible_total(
    svc: &FhirService,
    cx: &crate::Ctx<'_>,
    q: &fsearch::SearchQuery,
    care_dates: Option<&CareDates>,
    traced: bool,
) -> Result<u64, FhirError> {
    let reader = svc.reader();
    let mut codes = HashMap::new();
    let mut req = PageRequest {
        count: 1000,
        ..PageRequest::default()
    };
    let mut total = 0u64;
    loop {
        let found = svc.store().search(q, &req)?;
        for r in &found.resources {
            if let Some(c) = care_dates
                && !c.keeps(svc.defs(), svc.time_zone(), &mut codes, r)?
            {
                continue;
            }
            if cx.may_see(crate::Op::Search, r, reader, traced) {
                total += 1;
            }
        }
        if !found.has_more || found.resources.is_empty() {
            return Ok(total);
        }
        req.snapshot_rid = Some(found.snapshot_rid);
        if q.sort.is_empty() {
            req.after_rid = found.resources.last().map(|r| r.rid);
        } else {
            req.offset += req.count;
        }
    }
}

/// A search as a searchset Bundle (JSON text), with paging links.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    svc: &FhirService,
    cx: &crate::Ctx<'_>,
    t: Option<&str>,
    compartment: Option<(&str, &str)>,
    params: &[(String, String)],
    headers: &RequestHeaders,
    path: &[String],
    everything: Option<&CareDates>,
) -> Result<String, FhirError> {
    // A client's search (REST, `$everything`) is held to the search limits;
    // the typed record API's callers are code that builds its queries from
    // the record, in chunks of its own.
    crate::limits::check_search(params, &svc.config().limits)?;
    let Executed {
        query: q,
        page,
        rest,
        result,
        last_rid,
        included,
        withheld,
        truncated,
    } = execute(svc, cx, t, compartment, params, headers, everything)?;
    let cfg = svc.config();

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
            if let Some(last) = last_rid {
                next.push(("_after".into(), last.to_string()));
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
    // Entries are JSON text: stored resources are spliced in as written
    // (compact, valid JSON by construction) instead of being parsed and
    // serialised again; only shaped resources (`_summary`, `_elements`) are.
    let mut entries: Vec<String> = Vec::with_capacity(result.resources.len());
    for r in &result.resources {
        match &shape {
            Some(s) => {
                let v = shape_resource(svc.defs(), parse_stored(r)?, s);
                entries.push(raw_entry(base, r, &v.to_string(), "match"));
            }
            None => entries.push(raw_entry(base, r, &r.json, "match")),
        }
    }
    for r in &included {
        entries.push(raw_entry(base, r, &r.json, "include"));
    }
    if withheld > 0 {
        entries.push(crate::withheld_entry(withheld).to_string());
    }
    if truncated {
        entries.push(outcome_entry(json!({
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{
                    "severity": "warning",
                    "code": "too-costly",
                    "diagnostics": format!(
                        "only the first {} included resources are returned; narrow the search or page with a smaller _count",
                        cfg.max_include
                    ),
                }],
            },
            "search": {"mode": "outcome"},
        })));
    }
    if !q.ignored.is_empty() {
        entries.push(outcome_entry(json!({
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
        })));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
    });
    if let Some(total) = result.total {
        bundle["total"] = json!(total);
    }
    let mut text = bundle.to_string();
    if !page.count_only {
        // `{…}` → `{…,"entry":[…]}`
        text.pop();
        text.push_str(",\"entry\":[");
        text.push_str(&entries.join(","));
        text.push_str("]}");
    }
    Ok(text)
}

/// A Bundle entry as JSON text around a resource's JSON text.
fn raw_entry(base: &str, r: &wardline_store::StoredResource, resource: &str, mode: &str) -> String {
    let full_url = Value::String(format!("{base}/{}/{}", r.resource_type, r.id));
    format!(r#"{{"fullUrl":{full_url},"resource":{resource},"search":{{"mode":"{mode}"}}}}"#)
}

fn outcome_entry(v: Value) -> String {
    v.to_string()
}

/// How many rounds of `:iterate` includes run after the first (a bound on
/// round trips and on cycles such as `Patient:link`).
pub(crate) const MAX_ITERATE_ROUNDS: usize = 3;

/// The resources `_include` / `_revinclude` add to `matched`: one store round
/// trip for all of them, plus one per `:iterate` round, whatever their number.
/// Returns the included resources and whether `limit` cut them short.
pub(crate) fn includes(
    svc: &FhirService,
    include: &[fsearch::Include],
    revinclude: &[fsearch::Include],
    matched: &[wardline_store::StoredResource],
    limit: usize,
) -> Result<(Vec<wardline_store::StoredResource>, bool), FhirError> {
    let mut seen: std::collections::HashSet<i64> = matched.iter().map(|r| r.rid).collect();
    let mut frontier: Vec<(i64, String, String)> = matched
        .iter()
        .map(|r| (r.rid, r.resource_type.clone(), r.id.clone()))
        .collect();
    let mut out = Vec::new();
    for round in 0..=MAX_ITERATE_ROUNDS {
        let pick = |v: &[fsearch::Include]| -> Vec<fsearch::Include> {
            v.iter()
                .filter(|i| round == 0 || i.iterate)
                .cloned()
                .collect()
        };
        let (forward, reverse) = (pick(include), pick(revinclude));
        if frontier.is_empty() || (forward.is_empty() && reverse.is_empty()) {
            break;
        }
        let remaining = limit.saturating_sub(out.len());
        let rows = svc.store().include(&wardline_store::IncludeRequest {
            matched: std::mem::take(&mut frontier),
            forward,
            reverse,
            limit: remaining,
        })?;
        let truncated = rows.len() > remaining;
        for r in rows.into_iter().take(remaining) {
            if seen.insert(r.rid) {
                frontier.push((r.rid, r.resource_type.clone(), r.id.clone()));
                out.push(r);
            }
        }
        if truncated {
            return Ok((out, true));
        }
    }
    Ok((out, false))
}

pub(crate) fn parse_stored(r: &wardline_store::StoredResource) -> Result<Value, FhirError> {
    serde_json::from_str(&r.json).map_err(|e| {
        FhirError::internal(format!(
            "stored JSON of {}/{} unreadable: {e}",
            r.resource_type, r.id
        ))
    })
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

/// Whether `Type.name` (or its choice form `Type.name[x]` for `valueQuantity`)
/// is a summary element.
fn is_summary_element(defs: &Definitions, rt: &str, name: &str) -> bool {
    if let Some(e) = defs.element(&format!("{rt}.{name}")) {
        return e.is_summary;
    }
    // A choice element written with its type (`valueQuantity`, `deceasedBoolean`).
    let cut = name
        .char_indices()
        .filter(|(_, c)| c.is_ascii_uppercase())
        .map(|(i, _)| i)
        .next();
    cut.and_then(|i| defs.element(&format!("{rt}.{}[x]", &name[..i])))
        .is_some_and(|e| e.is_summary)
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
            // text, id, meta and the top-level mandatory elements.
            Shape::Text => {
                k == "text"
                    || defs
                        .element(&format!("{rt}.{}", k.trim_start_matches('_')))
                        .is_some_and(|e| e.min > 0)
            }
            Shape::Data => k != "text",
            Shape::True => {
                // The elements the specification marks isSummary.
                let base = k.trim_start_matches('_');
                is_summary_element(defs, &rt, base)
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
