//! Transaction and batch Bundles.
//!
//! A transaction runs in ONE store transaction: entries are processed in the
//! order the spec gives (DELETE, POST, PUT/PATCH, GET), `urn:uuid:` fullUrls of
//! created resources get ids up front and every reference to them is rewritten
//! in one pass over the bundle, conditional references are resolved by search
//! inside the transaction, and any failure fails the whole Bundle with nothing
//! written. A batch runs each entry in its own transaction.

use std::collections::HashMap;

use serde_json::{Value, json};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::format_instant;
use wardline_fhir::reference;
use wardline_store::Reader;

use crate::{Ctx, FhirService, Fresh, etag, etag_version, existing, new_id};

type R<T> = Result<T, FhirError>;

pub(crate) fn process(svc: &FhirService, cx: &Ctx<'_>, bundle: Value) -> R<Value> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(FhirError::invalid("POST to the base must carry a Bundle").at("resourceType"));
    }
    match bundle.get("type").and_then(Value::as_str) {
        Some("transaction") => {
            cx.name("transaction", "E");
            transaction(svc, cx, bundle)
        }
        Some("batch") => {
            cx.name("batch", "E");
            batch(svc, cx, bundle)
        }
        other => Err(FhirError::invalid(format!(
            "Bundle.type must be transaction or batch, not {}",
            other.unwrap_or("(missing)")
        ))
        .at("Bundle.type")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Delete,
    Post,
    Put,
    Patch,
    Get,
}

struct Entry {
    index: usize,
    kind: Kind,
    url: String,
    resource: Option<Value>,
    if_none_exist: Option<String>,
    if_match: Option<String>,
    full_url: Option<String>,
}

fn entries(bundle: &mut Value) -> R<Vec<Entry>> {
    let Some(list) = bundle.get_mut("entry") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array_mut()
        .ok_or_else(|| FhirError::invalid("Bundle.entry must be an array").at("Bundle.entry"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, e) in list.iter_mut().enumerate() {
        let at = format!("Bundle.entry[{i}]");
        let req = e.get("request").ok_or_else(|| {
            FhirError::invalid("entry has no request").at(format!("{at}.request"))
        })?;
        let method = req.get("method").and_then(Value::as_str).unwrap_or("");
        let kind = match method {
            "DELETE" => Kind::Delete,
            "POST" => Kind::Post,
            "PUT" => Kind::Put,
            "PATCH" => Kind::Patch,
            "GET" | "HEAD" => Kind::Get,
            other => {
                return Err(
                    FhirError::invalid(format!("unknown request.method '{other}'"))
                        .at(format!("{at}.request.method")),
                );
            }
        };
        let url = req
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                FhirError::invalid("entry has no request.url").at(format!("{at}.request.url"))
            })?
            .trim_start_matches('/')
            .to_owned();
        let if_none_exist = req
            .get("ifNoneExist")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let if_match = req
            .get("ifMatch")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let full_url = e.get("fullUrl").and_then(Value::as_str).map(str::to_owned);
        let resource = e.get_mut("resource").map(Value::take);
        out.push(Entry {
            index: i,
            kind,
            url,
            resource,
            if_none_exist,
            if_match,
            full_url,
        });
    }
    Ok(out)
}

fn transaction(svc: &FhirService, cx: &Ctx<'_>, mut bundle: Value) -> R<Value> {
    let mut entries = entries(&mut bundle)?;
    // Assign ids to created resources and map their fullUrls.
    let mut map: HashMap<String, String> = HashMap::new();
    let mut ids: HashMap<usize, String> = HashMap::new();
    for e in &entries {
        if e.kind == Kind::Post {
            let t = e
                .url
                .split(['?', '/'])
                .next()
                .unwrap_or_default()
                .to_owned();
            let id = new_id();
            if let Some(f) = &e.full_url {
                map.insert(f.clone(), format!("{t}/{id}"));
            }
            ids.insert(e.index, id);
        } else if e.kind == Kind::Put
            && let Some(f) = &e.full_url
            && (f.starts_with("urn:uuid:") || f.starts_with("urn:oid:"))
            && !e.url.contains('?')
        {
            map.insert(f.clone(), e.url.clone());
        }
    }
    let mut tx = svc.begin_in(cx)?;
    // Conditional PUT targets and conditional creates are resolved before
    // references are rewritten, so that references to them resolve too.
    let mut existing_for_create: HashMap<usize, String> = HashMap::new();
    for e in &entries {
        let at = format!("Bundle.entry[{}]", e.index);
        if e.kind == Kind::Post
            && let Some(cond) = &e.if_none_exist
        {
            let t = e.url.split(['?', '/']).next().unwrap_or_default();
            let found = svc
                .conditional_match(&tx, t, cond)
                .map_err(|x| x.at(at.clone()))?;
            match found.len() {
                0 => {}
                1 => {
                    if let Some(f) = &e.full_url {
                        map.insert(f.clone(), format!("{t}/{}", found[0].id));
                    }
                    existing_for_create.insert(e.index, found[0].id.clone());
                }
                n => {
                    return Err(FhirError::precondition_failed(format!(
                        "ifNoneExist matched {n} resources"
                    ))
                    .at(at));
                }
            }
        }
    }
    // One pass over every resource: rewrite urn: and conditional references.
    let mut cond_cache: HashMap<String, String> = HashMap::new();
    for e in &mut entries {
        if let Some(r) = &mut e.resource {
            reference::try_rewrite_references(r, |s| {
                rewrite_ref(svc, &tx, s, &map, &mut cond_cache, e.index)
            })?;
        }
    }
    entries.sort_by_key(|e| (e.kind, e.index));
    let mut responses: Vec<(usize, Value)> = Vec::with_capacity(entries.len());
    for e in entries {
        let at = format!("Bundle.entry[{}].resource", e.index);
        let resp = match e.kind {
            Kind::Delete => {
                let (t, id) = split_url(&e.url, e.index)?;
                match id {
                    Some(id) => svc.delete_in(&mut tx, &t, &id)?,
                    None => {
                        let q = e.url.split_once('?').map_or("", |x| x.1);
                        let found = svc.conditional_match(&tx, &t, q)?;
                        if found.len() > 1 {
                            return Err(FhirError::precondition_failed(
                                "conditional delete matched several resources",
                            )
                            .at(format!("Bundle.entry[{}]", e.index)));
                        }
                        for r in found {
                            svc.delete_in(&mut tx, &t, &r.id)?;
                        }
                    }
                }
                json!({"status": "204 No Content"})
            }
            Kind::Post => {
                if let Some(id) = existing_for_create.get(&e.index) {
                    let t = e.url.split(['?', '/']).next().unwrap_or_default();
                    let r = existing(tx.read(t, id)?, t, id)?;
                    tx.check_read(&r).map_err(|x| x.at(at.clone()))?;
                    json!({"status": "200 OK", "location": format!("{t}/{id}/_history/{}", r.version), "etag": etag(r.version), "lastModified": format_instant(r.last_updated_ms)})
                } else {
                    let t = e
                        .url
                        .split(['?', '/'])
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let mut r = e.resource.ok_or_else(|| {
                        FhirError::invalid("POST entry has no resource").at(at.clone())
                    })?;
                    let id = ids.get(&e.index).cloned().unwrap_or_else(new_id);
                    let w = svc.prepare_write(&mut tx, &t, &id, &mut r, Fresh::NewId, &at)?;
                    created(&w)
                }
            }
            Kind::Put => {
                let mut r = e.resource.ok_or_else(|| {
                    FhirError::invalid("PUT entry has no resource").at(at.clone())
                })?;
                let (t, id) = split_url(&e.url, e.index)?;
                let id = match id {
                    Some(id) => id,
                    None => {
                        let q = e.url.split_once('?').map_or("", |x| x.1);
                        let found = svc.conditional_match(&tx, &t, q)?;
                        match found.len() {
                            0 => r
                                .get("id")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                                .unwrap_or_else(new_id),
                            1 => found[0].id.clone(),
                            n => {
                                return Err(FhirError::precondition_failed(format!(
                                    "conditional update matched {n} resources"
                                ))
                                .at(format!("Bundle.entry[{}]", e.index)));
                            }
                        }
                    }
                };
                let expected = e.if_match.as_deref().and_then(etag_version);
                let w = svc.prepare_write(&mut tx, &t, &id, &mut r, Fresh::Check(expected), &at)?;
                created(&w)
            }
            Kind::Patch => {
                return Err(FhirError::not_supported(
                    "PATCH entries in transactions are not supported yet",
                )
                .at(format!("Bundle.entry[{}]", e.index)));
            }
            Kind::Get => {
                let (t, id) = split_url(&e.url, e.index)?;
                match id {
                    Some(id) => {
                        let r = existing(tx.read(&t, &id)?, &t, &id)?;
                        tx.check_read(&r)
                            .map_err(|x| x.at(format!("Bundle.entry[{}]", e.index)))?;
                        json!({"status": "200 OK", "etag": etag(r.version), "resource": serde_json::from_str::<Value>(&r.json).unwrap_or(Value::Null)})
                    }
                    None => {
                        return Err(FhirError::not_supported(
                            "searches inside transactions are not supported; use a batch",
                        )
                        .at(format!("Bundle.entry[{}]", e.index)));
                    }
                }
            }
        };
        responses.push((e.index, resp));
    }
    tx.commit()?;
    responses.sort_by_key(|(i, _)| *i);
    Ok(json!({
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": responses.into_iter().map(|(_, r)| {
            let mut e = json!({"response": r});
            if let Some(res) = e["response"].as_object_mut().and_then(|o| o.remove("resource")) {
                e["resource"] = res;
            }
            e
        }).collect::<Vec<_>>(),
    }))
}

fn created(w: &crate::Written) -> Value {
    let mut r = json!({
        "status": if w.status == 201 { "201 Created" } else { "200 OK" },
        "location": format!("{}/{}/_history/{}", w.resource_type, w.id, w.version),
        "etag": etag(w.version),
        "lastModified": format_instant(w.last_updated_ms),
    });
    if w.unchanged {
        r["outcome"] = unchanged_outcome(&w.resource_type, &w.id, w.version);
    }
    r
}

/// The informational outcome of an entry whose update changed nothing.
fn unchanged_outcome(t: &str, id: &str, version: i64) -> Value {
    wardline_fhir::error::informational_outcome(format!(
        "unchanged: the content equals {t}/{id} version {version}; no new version was made"
    ))
}

fn split_url(url: &str, index: usize) -> R<(String, Option<String>)> {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (parts.as_slice(), query) {
        ([t], Some(_)) => Ok(((*t).to_owned(), None)),
        ([t, id], None) => Ok(((*t).to_owned(), Some((*id).to_owned()))),
        _ => Err(FhirError::invalid(format!(
            "request.url '{url}' is not Type/id or Type?criteria"
        ))
        .at(format!("Bundle.entry[{index}].request.url"))),
    }
}

/// What one `reference` of an entry's resource becomes in a transaction:
/// a `urn:uuid:`/`urn:oid:` fullUrl through `map` (one matching no fullUrl is
/// an error), a conditional reference (`Type?criteria`) by search (exactly
/// one match, remembered in `cache`); anything else stays.
fn rewrite_ref(
    svc: &FhirService,
    tx: &dyn Reader,
    s: &str,
    map: &HashMap<String, String>,
    cache: &mut HashMap<String, String>,
    index: usize,
) -> R<Option<String>> {
    if let Some(to) = map.get(s) {
        return Ok(Some(to.clone()));
    }
    if s.starts_with("urn:uuid:") || s.starts_with("urn:oid:") {
        return Err(FhirError::invalid(format!(
            "reference '{s}' matches no fullUrl in the transaction"
        ))
        .at(format!("Bundle.entry[{index}].resource")));
    }
    let Some((t, q)) = s.split_once('?').filter(|(t, _)| !t.contains('/')) else {
        return Ok(None);
    };
    if let Some(hit) = cache.get(s) {
        return Ok(Some(hit.clone()));
    }
    let found = svc
        .conditional_match(tx, t, q)
        .map_err(|e| e.at(format!("Bundle.entry[{index}].resource")))?;
    if found.len() != 1 {
        return Err(FhirError::new(
            if found.is_empty() { 400 } else { 412 },
            "not-found",
            format!(
                "conditional reference '{s}' matched {} resources; it must match exactly one",
                found.len()
            ),
        )
        .at(format!("Bundle.entry[{index}].resource")));
    }
    let to = format!("{t}/{}", found[0].id);
    cache.insert(s.to_owned(), to.clone());
    Ok(Some(to))
}

fn batch(svc: &FhirService, cx: &Ctx<'_>, mut bundle: Value) -> R<Value> {
    let entries = entries(&mut bundle)?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let result = batch_entry(svc, cx, e);
        out.push(match result {
            Ok(v) => v,
            Err(err) => json!({"response": {
                "status": format!("{} {}", err.status, reason(err.status)),
                "outcome": err.to_operation_outcome(),
            }}),
        });
    }
    Ok(json!({"resourceType": "Bundle", "type": "batch-response", "entry": out}))
}

fn batch_entry(svc: &FhirService, cx: &Ctx<'_>, e: Entry) -> R<Value> {
    use crate::{FhirRequest, Method, RequestHeaders};
    let (path, query) = match e.url.split_once('?') {
        Some((p, q)) => (
            p.to_owned(),
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ),
        None => (e.url.clone(), Vec::new()),
    };
    let req = FhirRequest {
        method: match e.kind {
            Kind::Delete => Method::Delete,
            Kind::Post => Method::Post,
            Kind::Put => Method::Put,
            Kind::Patch => Method::Patch,
            Kind::Get => Method::Get,
        },
        path: path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        query,
        headers: RequestHeaders {
            if_match: e.if_match,
            if_none_exist: e.if_none_exist,
            ..RequestHeaders::default()
        },
        body: e
            .resource
            .map(|r| serde_json::to_vec(&r).unwrap_or_default()),
    };
    if req.path.is_empty() {
        return Err(FhirError::invalid("a batch entry cannot target the base"));
    }
    let (req_type, req_id) = (req.path.first().cloned(), req.path.get(1).cloned());
    // Each entry is an interaction of its own: checked and audited alone.
    let resp = svc.handle(req, cx.access);
    let mut out =
        json!({"response": {"status": format!("{} {}", resp.status, reason(resp.status))}});
    if let Some(l) = resp.location {
        out["response"]["location"] = json!(l);
    }
    let unchanged = resp
        .headers
        .iter()
        .any(|(h, _)| *h == crate::writes::UNCHANGED_HEADER);
    if unchanged
        && let (Some(t), Some(id)) = (req_type, req_id)
        && let Some(v) = resp.etag.as_deref().and_then(etag_version)
    {
        out["response"]["outcome"] = unchanged_outcome(&t, &id, v);
    }
    if let Some(t) = resp.etag {
        out["response"]["etag"] = json!(t);
    }
    let body = match resp.body {
        crate::Body::Json(v) => Some(v),
        crate::Body::Raw(s) => serde_json::from_str(&s).ok(),
        // A batch entry never downloads an export file.
        crate::Body::None | crate::Body::File { .. } => None,
    };
    if let Some(b) = body {
        if resp.status >= 400 {
            out["response"]["outcome"] = b;
        } else {
            out["resource"] = b;
        }
    }
    Ok(out)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "",
    }
}
