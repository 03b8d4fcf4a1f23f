//! The read side of the REST API: read, vread, history, search, the
//! `Patient/[id]/$everything` operation and the audit trail (`GET
//! AuditEvent`).

use serde_json::{Value, json};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::{format_instant, parse_range_in};
use wardline_fhir::search::Handling;
use wardline_store::{HistoryRequest, HistoryScope, StoredResource, WriteMethod};

use crate::access::Op;
use crate::{
    Body, Ctx, FhirRequest, FhirResponse, FhirService, Method, OperationRequest, R, etag,
    etag_version, existing, parse_count, summary_elements, url_with, withheld_entry,
};
use crate::{audit, search};

impl FhirService {
    // ---- reads -------------------------------------------------------------

    pub(crate) fn read(
        &self,
        t: &str,
        id: &str,
        req: &FhirRequest,
        cx: &Ctx<'_>,
    ) -> R<FhirResponse> {
        let r = self.store.read(t, id)?;
        let r = existing(r, t, id)?;
        cx.check_out(Op::Read, &r, self.reader())?;
        if let Some(inm) = &req.headers.if_none_match
            && etag_version(inm) == Some(r.version)
        {
            return Ok(FhirResponse {
                status: 304,
                body: Body::None,
                etag: Some(etag(r.version)),
                last_modified_ms: Some(r.last_updated_ms),
                location: None,
                content_location: None,
                headers: Vec::new(),
            });
        }
        Ok(self.resource_response(200, &r, req))
    }

    pub(crate) fn vread(&self, t: &str, id: &str, v: &str, cx: &Ctx<'_>) -> R<FhirResponse> {
        let version: i64 = v
            .parse()
            .map_err(|_| FhirError::invalid(format!("'{v}' is not a version id")))?;
        let r = self
            .store
            .vread(t, id, version)?
            .ok_or_else(|| FhirError::not_found(format!("{t}/{id}/_history/{v} is not known")))?;
        if r.deleted {
            return Err(FhirError::gone(format!(
                "{t}/{id} version {v} is a deletion"
            )));
        }
        cx.check_out(Op::Read, &r, self.reader())?;
        Ok(FhirResponse {
            status: 200,
            body: Body::Raw(r.json.clone()),
            etag: Some(etag(r.version)),
            last_modified_ms: Some(r.last_updated_ms),
            location: None,
            content_location: None,
            headers: Vec::new(),
        })
    }

    pub(crate) fn resource_response(
        &self,
        status: u16,
        r: &StoredResource,
        req: &FhirRequest,
    ) -> FhirResponse {
        let body = match summary_elements(&req.query) {
            Some(shape) => match serde_json::from_str::<Value>(&r.json) {
                Ok(v) => Body::Json(search::shape_resource(self.defs, v, &shape)),
                Err(_) => Body::Raw(r.json.clone()),
            },
            None => Body::Raw(r.json.clone()),
        };
        FhirResponse {
            status,
            body,
            etag: Some(etag(r.version)),
            last_modified_ms: Some(r.last_updated_ms),
            location: None,
            content_location: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn history(
        &self,
        scope: HistoryScope,
        req: &FhirRequest,
        cx: &Ctx<'_>,
    ) -> R<FhirResponse> {
        let mut since = None;
        let mut before_seq = None;
        let mut count = self.config.default_count;
        for (k, v) in &req.query {
            match k.as_str() {
                "_since" => {
                    since = Some(
                        parse_range_in(v, &self.config.time_zone)
                            .ok_or_else(|| {
                                FhirError::invalid(format!("_since '{v}' is not a date"))
                            })?
                            .0,
                    )
                }
                "_count" => count = parse_count(v)?.min(self.config.max_count),
                "_before_seq" => {
                    before_seq = Some(
                        v.parse()
                            .map_err(|_| FhirError::invalid("bad _before_seq"))?,
                    )
                }
                "_format" | "_pretty" => {}
                other => {
                    if req.headers.prefer_handling == Handling::Strict {
                        return Err(FhirError::invalid(format!(
                            "unknown _history parameter '{other}'"
                        ))
                        .at(other.to_owned()));
                    }
                }
            }
        }
        if let HistoryScope::Instance(t, id) = &scope
            && self.store.read(t, id)?.is_none()
        {
            return Err(FhirError::not_found(format!("{t}/{id} is not known")));
        }
        let rows = self.store.history(&HistoryRequest {
            scope: scope.clone(),
            since_ms: since,
            before_ms: None,
            before_seq,
            count: count + 1,
        })?;
        let has_more = rows.len() > count;
        let rows = &rows[..rows.len().min(count)];
        // Versions the requester may not see are left out (and counted).
        let mut withheld = 0usize;
        let mut visible = Vec::with_capacity(rows.len());
        for r in rows {
            match cx.check_out(Op::Read, r, self.reader()) {
                Ok(()) => visible.push(r),
                Err(e) if e.status == 403 => withheld += 1,
                Err(e) => return Err(e),
            }
        }
        let path = match &scope {
            HistoryScope::System => "_history".to_owned(),
            HistoryScope::Type(t) => format!("{t}/_history"),
            HistoryScope::Instance(t, id) => format!("{t}/{id}/_history"),
        };
        let base = &self.config.base_url;
        let mut keep: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != "_before_seq")
            .cloned()
            .collect();
        let mut links = vec![json!({"relation": "self", "url": url_with(base, &path, &req.query)})];
        if has_more && let Some(last) = rows.last() {
            keep.push(("_before_seq".into(), last.seq.to_string()));
            links.push(json!({"relation": "next", "url": url_with(base, &path, &keep)}));
        }
        let mut entries: Vec<Value> = visible
            .iter()
            .map(|r| {
                let full = format!("{base}/{}/{}", r.resource_type, r.id);
                let mut e = json!({
                    "fullUrl": full,
                    "request": {
                        "method": r.method.http_method(),
                        "url": if r.method == WriteMethod::Create { r.resource_type.clone() } else { format!("{}/{}", r.resource_type, r.id) },
                    },
                    "response": {
                        "status": match r.method { WriteMethod::Create => "201 Created", WriteMethod::Update => "200 OK", WriteMethod::Delete => "204 No Content" },
                        "etag": etag(r.version),
                        "lastModified": format_instant(r.last_updated_ms),
                    },
                });
                if !r.deleted
                    && let Ok(v) = serde_json::from_str::<Value>(&r.json)
                {
                    e["resource"] = v;
                }
                e
            })
            .collect();
        if withheld > 0 {
            entries.push(withheld_entry(withheld));
        }
        Ok(FhirResponse::json(
            200,
            json!({
                "resourceType": "Bundle",
                "type": "history",
                "link": links,
                "entry": entries,
            }),
        ))
    }

    pub(crate) fn search(
        &self,
        t: Option<&str>,
        compartment: Option<(&str, &str)>,
        req: &FhirRequest,
        cx: &Ctx<'_>,
    ) -> R<FhirResponse> {
        let mut params = req.query.clone();
        if req.method == Method::Post
            && let Some(body) = &req.body
            && !body.is_empty()
        {
            params.extend(form_urlencoded::parse(body).into_owned());
        }
        let bundle = search::run(
            self,
            cx,
            t,
            compartment,
            &params,
            &req.headers,
            &req.path,
            None,
        )?;
        Ok(FhirResponse::raw(200, bundle))
    }

    /// `Patient/[id]/$everything` (`start`, `end`, `_since`, `_type`,
    /// `_count`, paging): the patient, every resource in their compartment,
    /// and the resources those refer to outside any patient's compartment.
    ///
    /// `start` and `end` are the care dates of the specification ("all
    /// records relating to care provided in a certain date range"; without
    /// `start` everything before `end`, without `end` everything after
    /// `start`), taken inclusively to the precision given (`end=2023`
    /// reaches the end of 2023). A resource's care dates are the values of
    /// every date search parameter of its type, except the record-keeping
    /// `_lastUpdated` and the people's `birthdate` and `death-date`
    /// (Observation `date`, Encounter `date`, Condition `onset-date`,
    /// `abatement-date` and `recorded-date`, MedicationRequest
    /// `authoredon` …): it is returned when any of them overlaps the
    /// range. A resource without any such date (none in its type, or none
    /// filled in) is returned whatever the range, since nothing says it
    /// lies outside, and so is the patient. Resources referred to are
    /// those of the resources returned. A date that cannot be read is 400
    /// naming the parameter.
    pub(crate) fn everything(&self, req: &OperationRequest<'_>) -> R<FhirResponse> {
        let cx = req.cx;
        cx.start("operation", Op::Search, None)?;
        let id = req.id().unwrap_or_default();
        let p = self.store.read("Patient", id)?;
        let p = existing(p, "Patient", id)?;
        cx.check_out(Op::Read, &p, self.reader())?;
        let given = req.primitive_parameters()?;
        let mut params = Vec::new();
        let mut has_count = false;
        let mut range = search::CareDates::default();
        for (k, v) in given {
            match k.as_str() {
                "_since" => {
                    if wardline_fhir::datetime::parse_range(&v).is_none() {
                        return Err(
                            FhirError::invalid(format!("_since '{v}' is not an instant"))
                                .at("_since"),
                        );
                    }
                    params.push(("_lastUpdated".to_owned(), format!("ge{v}")));
                }
                "_count" => {
                    has_count = true;
                    params.push((k, v));
                }
                "_type" | "_snapshot" | "_after" | "_format" | "_pretty" | "_lastUpdated" => {
                    params.push((k, v))
                }
                "start" | "end" => range.set(&k, v, &self.config.time_zone)?,
                _ => {
                    return Err(FhirError::invalid(format!(
                        "'{k}' is not a parameter of Patient/$everything"
                    ))
                    .at(k));
                }
            }
        }
        range.check()?;
        range.patient = Some(id.to_owned());
        if !has_count {
            params.push(("_count".to_owned(), self.config.max_count.to_string()));
        }
        let bundle = search::run(
            self,
            cx,
            None,
            Some(("Patient", id)),
            &params,
            req.headers(),
            req.path(),
            Some(&range),
        )?;
        Ok(FhirResponse::raw(200, bundle))
    }

    /// `GET AuditEvent[?…]` and `GET AuditEvent/SEQ`: the audit trail, from
    /// the store's chain (searchable by `patient`, `agent`, `action`,
    /// `subtype`, `outcome`, `date`; newest first).
    pub(crate) fn audit_trail(&self, rest: &[&str], req: &FhirRequest) -> R<FhirResponse> {
        match rest {
            [] => {}
            [id] => {
                let seq: i64 = id
                    .parse()
                    .map_err(|_| FhirError::not_found(format!("AuditEvent/{id} is not known")))?;
                let row = self
                    .store
                    .scan_audit(seq - 1, 1)?
                    .into_iter()
                    .find(|r| r.seq == seq)
                    .ok_or_else(|| FhirError::not_found(format!("AuditEvent/{id} is not known")))?;
                return Ok(FhirResponse::json(200, audit::row_to_resource(&row)));
            }
            _ => {
                return Err(FhirError::not_found(format!(
                    "no FHIR interaction at /{}",
                    req.path.join("/")
                )));
            }
        }
        let mut q = wardline_store::audit::AuditQuery {
            count: self.config.default_count,
            ..Default::default()
        };
        for (k, v) in &req.query {
            let reference =
                |v: &str, t: &str| v.strip_prefix(&format!("{t}/")).unwrap_or(v).to_owned();
            match k.as_str() {
                "patient" => q.patient = Some(reference(v, "Patient")),
                "agent" | "who" => q.agent = Some(v.clone()),
                "action" => q.action = Some(v.clone()),
                "subtype" => q.subtype = Some(v.rsplit('|').next().unwrap_or(v).to_owned()),
                "outcome" => {
                    q.outcome = Some(v.parse().map_err(|_| {
                        FhirError::invalid(format!("outcome '{v}' is not 0, 4, 8 or 12"))
                            .at("outcome")
                    })?)
                }
                "date" => {
                    let (prefix, value) = match v.get(..2) {
                        Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &v[2..]),
                        _ => ("eq", v.as_str()),
                    };
                    let (lo, hi) =
                        parse_range_in(value, &self.config.time_zone).ok_or_else(|| {
                            FhirError::invalid(format!("date '{v}' is not a date")).at("date")
                        })?;
                    match prefix {
                        "ge" => q.since_ms = Some(lo),
                        "gt" => q.since_ms = Some(hi),
                        "lt" => q.before_ms = Some(lo),
                        "le" => q.before_ms = Some(hi),
                        _ => {
                            q.since_ms = Some(lo);
                            q.before_ms = Some(hi);
                        }
                    }
                }
                "_count" => q.count = parse_count(v)?.min(self.config.max_count),
                "_before_seq" => {
                    q.before_seq = Some(
                        v.parse()
                            .map_err(|_| FhirError::invalid("bad _before_seq"))?,
                    )
                }
                "_format" | "_pretty" => {}
                other => {
                    return Err(FhirError::invalid(format!(
                        "'{other}' is not a supported AuditEvent search parameter (patient, agent, action, subtype, outcome, date, _count)"
                    ))
                    .at(other.to_owned()));
                }
            }
        }
        let want = q.count;
        q.count = want + 1;
        let rows = self.store.search_audit(&q)?;
        let has_more = rows.len() > want;
        let rows = &rows[..rows.len().min(want)];
        let base = &self.config.base_url;
        let mut links =
            vec![json!({"relation": "self", "url": url_with(base, "AuditEvent", &req.query)})];
        if has_more && let Some(last) = rows.last() {
            let mut next: Vec<(String, String)> = req
                .query
                .iter()
                .filter(|(k, _)| k != "_before_seq")
                .cloned()
                .collect();
            next.push(("_before_seq".into(), last.seq.to_string()));
            links.push(json!({"relation": "next", "url": url_with(base, "AuditEvent", &next)}));
        }
        let entries: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "fullUrl": format!("{base}/AuditEvent/{}", r.seq),
                    "resource": audit::row_to_resource(r),
                    "search": {"mode": "match"},
                })
            })
            .collect();
        Ok(FhirResponse::json(
            200,
            json!({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}),
        ))
    }
}
