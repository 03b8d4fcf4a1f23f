//! The write side of the REST API: create, update, patch, delete, their
//! conditional forms, and the one place a resource is validated, stamped,
//! checked (access, then the registered [`crate::rules`]) and written
//! ([`FhirService::prepare_write`]).

use serde_json::{Map, Value};
use wardline_fhir::datetime::{format_instant, now_ms};
use wardline_fhir::search::Handling;
use wardline_fhir::{FhirError, SearchQuery};
use wardline_store::{PageRequest, Reader, ResourceWrite, StoredResource, WriteMethod};

use crate::access::{Op, ResourceView};
use crate::{
    Body, Ctx, FhirRequest, FhirResponse, FhirService, Fresh, PreferReturn, R, Tx, Written, bundle,
    conflict, etag, etag_version, existing, new_id, operation, prefix, query_string, valid_id,
};

impl FhirService {
    /// The body as JSON, held to the resource limits ([`crate::limits`])
    /// here, before any transaction (and the writer's lock) is taken.
    pub(crate) fn parse_body(&self, req: &FhirRequest) -> R<Value> {
        let v = operation::parse_body(req)?;
        crate::limits::check_body(&v, &self.config.limits)?;
        Ok(v)
    }

    pub(crate) fn create(&self, t: &str, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        let mut resource = self.parse_body(req)?;
        let mut tx = self.begin_in(cx)?;
        if let Some(cond) = &req.headers.if_none_exist {
            let found = self.conditional_match(&tx, t, cond)?;
            match found.len() {
                0 => {}
                1 => {
                    drop(tx);
                    cx.name("read", "R");
                    cx.check_out(Op::Read, &found[0], self.reader())?;
                    return Ok(self.resource_response(200, &found[0], req));
                }
                n => {
                    return Err(FhirError::precondition_failed(format!(
                        "If-None-Exist matched {n} resources"
                    )));
                }
            }
        }
        let id = new_id();
        let w = self.prepare_write(&mut tx, t, &id, &mut resource, Fresh::NewId, "")?;
        tx.commit()?;
        Ok(self.write_response(req, w))
    }

    pub(crate) fn update(
        &self,
        t: &str,
        id: &str,
        req: &FhirRequest,
        cx: &Ctx<'_>,
    ) -> R<FhirResponse> {
        let mut resource = self.parse_body(req)?;
        match resource.get("id").and_then(Value::as_str) {
            Some(bid) if bid == id => {}
            Some(bid) => {
                return Err(FhirError::invalid(format!(
                    "the resource id '{bid}' does not match the URL id '{id}'"
                ))
                .at(format!("{t}.id")));
            }
            None => {
                return Err(FhirError::invalid("an update must carry the resource id")
                    .at(format!("{t}.id")));
            }
        }
        let if_match = match &req.headers.if_match {
            Some(v) => Some(etag_version(v).ok_or_else(|| {
                FhirError::invalid(format!("If-Match '{v}' is not an ETag like W/\"3\""))
            })?),
            None => None,
        };
        let mut tx = self.begin_in(cx)?;
        let w = self.prepare_write(&mut tx, t, id, &mut resource, Fresh::Check(if_match), "")?;
        tx.commit()?;
        Ok(self.write_response(req, w))
    }

    pub(crate) fn conditional_update(
        &self,
        t: &str,
        req: &FhirRequest,
        cx: &Ctx<'_>,
    ) -> R<FhirResponse> {
        let cond = query_string(&req.query);
        if cond.is_empty() {
            return Err(FhirError::new(
                405,
                "not-supported",
                "PUT needs an id or search criteria",
            ));
        }
        let mut resource = self.parse_body(req)?;
        let mut tx = self.begin_in(cx)?;
        let found = self.conditional_match(&tx, t, &cond)?;
        let id = match found.len() {
            0 => resource
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(new_id),
            1 => {
                let existing = found[0].id.clone();
                if let Some(bid) = resource.get("id").and_then(Value::as_str)
                    && bid != existing
                {
                    return Err(FhirError::invalid(format!(
                        "the resource id '{bid}' does not match the matched resource '{existing}'"
                    )));
                }
                existing
            }
            n => {
                return Err(FhirError::precondition_failed(format!(
                    "the conditional update matched {n} resources"
                )));
            }
        };
        let w = self.prepare_write(&mut tx, t, &id, &mut resource, Fresh::Check(None), "")?;
        tx.commit()?;
        Ok(self.write_response(req, w))
    }

    pub(crate) fn patch(
        &self,
        t: &str,
        id: &str,
        req: &FhirRequest,
        cx: &Ctx<'_>,
    ) -> R<FhirResponse> {
        match req.headers.content_type.as_deref() {
            Some("application/json-patch+json") | None => {}
            Some(other) => {
                return Err(FhirError::new(
                    415,
                    "not-supported",
                    format!("PATCH supports application/json-patch+json, not {other}"),
                ));
            }
        }
        let patch_doc = self.parse_body(req)?;
        let patch: json_patch::Patch = serde_json::from_value(patch_doc)
            .map_err(|e| FhirError::invalid(format!("not a JSON Patch document: {e}")))?;
        let mut tx = self.begin_in(cx)?;
        let cur = existing(tx.read(t, id)?, t, id)?;
        if let Some(v) = &req.headers.if_match
            && etag_version(v) != Some(cur.version)
        {
            return Err(FhirError::precondition_failed(format!(
                "If-Match {v} does not match the current version {}",
                cur.version
            )));
        }
        let mut resource: Value = serde_json::from_str(&cur.json)
            .map_err(|e| FhirError::internal(format!("stored JSON unreadable: {e}")))?;
        json_patch::patch(&mut resource, &patch)
            .map_err(|e| FhirError::unprocessable(format!("the patch cannot be applied: {e}")))?;
        if resource.get("id").and_then(Value::as_str) != Some(id)
            || resource.get("resourceType").and_then(Value::as_str) != Some(t)
        {
            return Err(FhirError::unprocessable(
                "a patch may not change id or resourceType",
            ));
        }
        let w = self.prepare_write(
            &mut tx,
            t,
            id,
            &mut resource,
            Fresh::Check(Some(cur.version)),
            "",
        )?;
        tx.commit()?;
        Ok(self.write_response(req, w))
    }

    pub(crate) fn delete(&self, t: &str, id: &str, cx: &Ctx<'_>) -> R<FhirResponse> {
        let mut tx = self.begin_in(cx)?;
        self.delete_in(&mut tx, t, id)?;
        tx.commit()?;
        Ok(FhirResponse::no_content())
    }

    /// Writes a tombstone; deleting a missing or deleted resource succeeds and
    /// writes nothing (delete is idempotent).
    pub(crate) fn delete_in(&self, tx: &mut Tx<'_>, t: &str, id: &str) -> R<()> {
        self.check_writable()?;
        let Some(cur) = tx.read(t, id)? else {
            return Ok(());
        };
        if cur.deleted {
            return Ok(());
        }
        tx.check_write(Op::Delete, None, Some(&cur))?;
        tx.write(ResourceWrite {
            resource_type: t.into(),
            id: id.into(),
            expected_version: Some(cur.version),
            version: cur.version + 1,
            last_updated_ms: now_ms(),
            method: WriteMethod::Delete,
            json: String::new(),
            patient_key: None,
            index: Vec::new(),
        })?;
        Ok(())
    }

    pub(crate) fn conditional_delete(
        &self,
        t: &str,
        req: &FhirRequest,
        cx: &Ctx<'_>,
    ) -> R<FhirResponse> {
        let cond = query_string(&req.query);
        if cond.is_empty() {
            return Err(FhirError::new(
                405,
                "not-supported",
                "DELETE needs an id or search criteria",
            ));
        }
        let mut tx = self.begin_in(cx)?;
        let found = self.conditional_match(&tx, t, &cond)?;
        if found.len() > 1 {
            return Err(FhirError::precondition_failed(format!(
                "the conditional delete matched {} resources",
                found.len()
            )));
        }
        for r in &found {
            self.delete_in(&mut tx, t, &r.id)?;
        }
        tx.commit()?;
        Ok(FhirResponse::no_content())
    }

    /// A query string (`a=1&b=2`) as a search on type `t`, strictly
    /// parsed (an unknown parameter is an error, never ignored).
    pub(crate) fn parse_criteria(&self, t: &str, query: &str) -> R<SearchQuery> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect();
        if pairs.is_empty() {
            return Err(FhirError::invalid("conditional criteria are empty"));
        }
        wardline_fhir::search::parse_in(
            self.defs,
            &self.config.time_zone,
            Some(t),
            &pairs,
            Handling::Strict,
        )
    }

    /// Resources of type `t` matching a query string (`identifier=a|b&...`), at most 2.
    pub(crate) fn conditional_match(
        &self,
        r: &dyn Reader,
        t: &str,
        query: &str,
    ) -> R<Vec<StoredResource>> {
        // A client's criteria (If-None-Exist, conditional update and
        // delete, a Bundle's conditional references): held to the search
        // limits, as a search is.
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect();
        crate::limits::check_search(&pairs, &self.config.limits)?;
        let q = self.parse_criteria(t, query)?;
        let page = r.search(
            &q,
            &PageRequest {
                count: 2,
                ..PageRequest::default()
            },
        )?;
        Ok(page.resources)
    }

    /// Validates (as sent), stamps and writes `resource` as `t/id` inside `tx`.
    /// `fresh` says whether the id was just generated (no read needed: the
    /// store still refuses the write if the id exists) or carries the If-Match
    /// version, if any; `at` prefixes error expressions (e.g.
    /// `Bundle.entry[3].resource`).
    pub(crate) fn prepare_write(
        &self,
        tx: &mut Tx<'_>,
        t: &str,
        id: &str,
        resource: &mut Value,
        fresh: Fresh,
        at: &str,
    ) -> R<Written> {
        // Issue 22: no write while downtime lasts, whatever the channel.
        self.check_writable()?;
        let expected = match fresh {
            Fresh::NewId => None,
            Fresh::Check(e) => e,
        };
        let obj = resource
            .as_object()
            .ok_or_else(|| FhirError::structure("a resource must be a JSON object"))?;
        // Bounded work: checked before the body's transaction began (REST),
        // and here for every other path that writes (a cheap pass).
        crate::limits::check_resource(resource, &self.config.limits).map_err(|e| prefix(e, at))?;
        match obj.get("resourceType").and_then(Value::as_str) {
            Some(rt) if rt == t => {}
            Some(rt) => {
                return Err(prefix(
                    FhirError::invalid(format!(
                        "resourceType '{rt}' does not match the URL type '{t}'"
                    ))
                    .at(format!("{t}.resourceType")),
                    at,
                ));
            }
            None => {
                return Err(prefix(
                    FhirError::new(400, "required", "resourceType is missing").at("resourceType"),
                    at,
                ));
            }
        }
        // The resource as sent, `id` and `meta` included, before they are
        // stamped: a `meta.versionId` of the wrong type is refused, not
        // overwritten.
        self.defs.validate(resource).map_err(|e| prefix(e, at))?;
        // The UK Core profiles it claims (422 when it does not conform).
        wardline_fhir::profile::uk_core()
            .validate(self.defs, resource)
            .map_err(|e| prefix(e, at))?;
        if !valid_id(id) {
            return Err(prefix(
                FhirError::invalid(format!("'{id}' is not a valid FHIR id")).at(format!("{t}.id")),
                at,
            ));
        }
        let Some(obj) = resource.as_object_mut() else {
            return Err(FhirError::structure("a resource must be a JSON object"));
        };
        obj.insert("id".into(), Value::String(id.into()));
        let cur = match fresh {
            Fresh::NewId => None,
            Fresh::Check(_) => tx.read(t, id)?,
        };
        let current_version = cur.as_ref().map(|c| c.version);
        if let Some(e) = expected
            && Some(e) != current_version.filter(|_| !cur.as_ref().is_some_and(|c| c.deleted))
        {
            return Err(FhirError::precondition_failed(format!(
                "If-Match version {e} is not the current version of {t}/{id} ({})",
                current_version.map_or("none".into(), |v| v.to_string())
            )));
        }
        // An update whose content equals the current version's (ignoring
        // `meta.versionId`/`lastUpdated`) writes nothing: the caller must
        // still be allowed to update it, and gets the current version back.
        // Write rules are not run: nothing changes, so no rule can be broken
        // (ARCHITECTURE.md, "no-op update").
        if let Some(c) = cur.as_ref().filter(|c| !c.deleted)
            && same_content(resource, &c.json)
        {
            let view = ResourceView {
                resource_type: t,
                id,
                patient: c.patient_key.as_deref(),
                json: &c.json,
                traced: false,
            };
            tx.check_write(Op::Update, Some(view), Some(c))
                .map_err(|e| prefix(e, at))?;
            return Ok(Written {
                status: 200,
                resource_type: t.into(),
                id: id.into(),
                version: c.version,
                last_updated_ms: c.last_updated_ms,
                json: c.json.clone(),
                unchanged: true,
            });
        }
        let version = current_version.unwrap_or(0) + 1;
        let now = now_ms();
        let Some(obj) = resource.as_object_mut() else {
            return Err(FhirError::structure("a resource must be a JSON object"));
        };
        let meta = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return Err(prefix(
                FhirError::invalid("meta must be an object").at(format!("{t}.meta")),
                at,
            ));
        };
        meta.insert("versionId".into(), Value::String(version.to_string()));
        meta.insert("lastUpdated".into(), Value::String(format_instant(now)));
        let index = self.defs.extract_index(resource, &self.config.time_zone);
        let patient_key = self.defs.patient_key(resource);
        let json = serde_json::to_string(resource)
            .map_err(|e| FhirError::internal(format!("cannot serialise: {e}")))?;
        let op = if current_version.is_some() && !cur.as_ref().is_some_and(|c| c.deleted) {
            Op::Update
        } else {
            Op::Create
        };
        let view = ResourceView {
            resource_type: t,
            id,
            patient: patient_key.as_deref(),
            json: &json,
            traced: false,
        };
        tx.check_write(op, Some(view), cur.as_ref())
            .map_err(|e| prefix(e, at))?;
        if self.has_rules_for(t) {
            let current: Option<Value> = match cur.as_ref().filter(|c| !c.deleted) {
                Some(c) => Some(serde_json::from_str(&c.json).map_err(|e| {
                    FhirError::internal(format!("stored {t}/{id} unreadable: {e}"))
                })?),
                None => None,
            };
            let proposed = crate::ProposedWrite {
                resource_type: t,
                id,
                resource,
                current: current.as_ref(),
            };
            self.check_rules(tx, &proposed).map_err(|e| prefix(e, at))?;
        }
        tx.write(ResourceWrite {
            resource_type: t.into(),
            id: id.into(),
            expected_version: current_version,
            version,
            last_updated_ms: now,
            method: if current_version.is_some() {
                WriteMethod::Update
            } else {
                WriteMethod::Create
            },
            json: json.clone(),
            patient_key,
            index,
        })
        .map_err(|e| conflict(e, expected.is_some()))?;
        Ok(Written {
            status: if current_version.is_some() && !cur.as_ref().is_some_and(|c| c.deleted) {
                200
            } else {
                201
            },
            resource_type: t.into(),
            id: id.into(),
            version,
            last_updated_ms: now,
            json,
            unchanged: false,
        })
    }

    pub(crate) fn write_response(&self, req: &FhirRequest, w: Written) -> FhirResponse {
        let location = format!(
            "{}/{}/{}/_history/{}",
            self.config.base_url, w.resource_type, w.id, w.version
        );
        let body = match req.headers.prefer_return {
            Some(PreferReturn::Minimal) => Body::None,
            Some(PreferReturn::OperationOutcome) => {
                Body::Json(wardline_fhir::error::informational_outcome(format!(
                    "{} {}/{} version {}",
                    if w.status == 201 {
                        "created"
                    } else if w.unchanged {
                        "unchanged (identical content)"
                    } else {
                        "updated"
                    },
                    w.resource_type,
                    w.id,
                    w.version
                )))
            }
            _ => Body::Raw(w.json),
        };
        FhirResponse {
            status: w.status,
            body,
            etag: Some(etag(w.version)),
            last_modified_ms: Some(w.last_updated_ms),
            location: Some(location),
            content_location: None,
            headers: if w.unchanged {
                vec![(UNCHANGED_HEADER, "true".to_owned())]
            } else {
                Vec::new()
            },
        }
    }

    pub(crate) fn bundle(&self, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        let b = self.parse_body(req)?;
        bundle::process(self, cx, b).map(|v| FhirResponse::json(200, v))
    }
}

/// Set (to `true`) on the response to an update that changed nothing, so a
/// batch can report the entry as unchanged; the status (200) and ETag are
/// those of the current version.
pub(crate) const UNCHANGED_HEADER: &str = "X-Wardline-Unchanged";

/// `meta` without the stamps the server sets (`versionId`, `lastUpdated`);
/// `None` when nothing else is left in it.
fn unstamped_meta(v: &Value) -> Option<Map<String, Value>> {
    let mut meta = v.get("meta")?.as_object()?.clone();
    meta.remove("versionId");
    meta.remove("lastUpdated");
    (!meta.is_empty()).then_some(meta)
}

/// Whether `proposed` has the same content as the stored JSON `current`,
/// ignoring the server's stamps. JSON objects compare as maps (member order
/// does not matter); numbers keep the precision they were written with.
pub(crate) fn same_content(proposed: &Value, current: &str) -> bool {
    let Ok(cur) = serde_json::from_str::<Value>(current) else {
        return false;
    };
    let (Some(new), Some(old)) = (proposed.as_object(), cur.as_object()) else {
        return false;
    };
    let members = |m: &Map<String, Value>| m.keys().filter(|k| *k != "meta").count();
    members(new) == members(old)
        && new
            .iter()
            .filter(|(k, _)| *k != "meta")
            .all(|(k, v)| old.get(k) == Some(v))
        && unstamped_meta(proposed) == unstamped_meta(&cur)
}
