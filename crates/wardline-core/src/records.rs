//! The typed record API: how code above the core reads the record for a
//! person or a system.
//!
//! [`FhirService::read_as`] and [`FhirService::search_as`] are `GET
//! [type]/[id]` and `GET [type]?query` without the HTTP shape: the same
//! type-level permission, the same check of every resource that would
//! leave (consent, legitimate relationship, break-glass), the same audit
//! event — and typed results and [`FhirError`]s instead of a Bundle to
//! parse and an OperationOutcome to read back. Writes go through a
//! transaction ([`FhirService::transact`], [`crate::Tx`]), whose `get`,
//! `find`, `vread`, `save`, `delete` and `lock` are checked and audited in
//! the same way.
//!
//! [`FhirService::system_reader`] is for the system's own decisions that
//! must see past the caller's access (a bed is occupied whoever's patient is
//! in it; a duplicate scan reads every record; the directory resolving
//! positions and relationships for a policy decision): unchecked and
//! unaudited, so nothing read through it is shown to a person as it is.

use serde_json::Value;
use wardline_fhir::FhirError;
use wardline_store::Reader;

use crate::access::{Access, Op};
use crate::search::{self, Shape, parse_stored, shape_resource};
use crate::{Ctx, FhirService, R, RequestHeaders, existing};

/// The matches of a search that the caller may see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// The matches (shaped by `_summary`/`_elements` when asked).
    pub resources: Vec<Value>,
    /// What `_include`/`_revinclude` added.
    pub included: Vec<Value>,
    /// Matches and includes the caller may not see (not shown, counted).
    pub withheld: usize,
    /// The number of matches, when asked for (`_total=accurate`) and nothing
    /// was withheld.
    pub total: Option<u64>,
    /// More matches follow this page (`_count`).
    pub more: bool,
}

impl FhirService {
    /// One interaction run for `access` outside HTTP, audited as
    /// [`FhirService::handle`] audits it (status and reason included).
    fn interaction<T>(
        &self,
        access: &dyn Access,
        query: Option<String>,
        f: impl FnOnce(&Ctx<'_>) -> R<(T, u16)>,
    ) -> R<T> {
        let cx = Ctx::new(access);
        let result = f(&cx);
        let (status, desc) = match &result {
            Ok((_, s)) => (*s, None),
            Err(e) => (e.status, Some(e.to_string())),
        };
        if !cx.audited.get() {
            let mut rec = cx.record.into_inner();
            rec.set_status(status, desc);
            if rec.action == "R" {
                rec.query = query;
            }
            self.record_audit(access.agent(), &[rec])?;
        }
        result.map(|(v, _)| v)
    }

    /// `GET [type]/[id]` for `access`: the current resource, or `None` when
    /// there is none (or it was deleted). A refusal is an error; every call
    /// is audited.
    pub fn read_as(&self, access: &dyn Access, t: &str, id: &str) -> R<Option<Value>> {
        self.interaction(access, None, |cx| {
            cx.start("read", Op::Read, Some(t))?;
            let found = match existing(self.store.read(t, id)?, t, id) {
                Ok(r) => r,
                Err(e) if e.status == 404 || e.status == 410 => return Ok((None, e.status)),
                Err(e) => return Err(e),
            };
            cx.check_out(Op::Read, &found, self.reader())?;
            Ok((Some(parse_stored(&found)?), 200))
        })
    }

    /// `GET [type]?params` for `access`: one page of matches (`_count`,
    /// default the service's page size), includes, and how many were
    /// withheld. Bad or unknown parameters are a 400 (strict handling); every
    /// call is audited with its query.
    pub fn search_as<K: AsRef<str>, V: AsRef<str>>(
        &self,
        access: &dyn Access,
        t: &str,
        params: &[(K, V)],
    ) -> R<Found> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        self.interaction(access, Some(query), |cx| {
            cx.start("search-type", Op::Search, Some(t))?;
            if t == "AuditEvent" {
                return Err(FhirError::new(
                    400,
                    "not-supported",
                    "the audit trail is searched with GET AuditEvent, not as records",
                ));
            }
            let ex = search::execute(
                self,
                cx,
                Some(t),
                None,
                &params,
                // Code asks exactly: an unknown parameter is an error.
                &RequestHeaders {
                    prefer_handling: wardline_fhir::search::Handling::Strict,
                    ..RequestHeaders::default()
                },
                None,
            )?;
            let shape = Shape::from_query(&ex.rest);
            let shaped = |v: Value| match &shape {
                Some(s) => shape_resource(self.defs(), v, s),
                None => v,
            };
            let mut found = Found {
                withheld: ex.withheld,
                total: ex.result.total,
                more: ex.result.has_more,
                ..Found::default()
            };
            for r in &ex.result.resources {
                found.resources.push(shaped(parse_stored(r)?));
            }
            for r in &ex.included {
                found.included.push(parse_stored(r)?);
            }
            Ok((found, 200))
        })
    }

    /// Reads for the system's own decisions (see the module documentation):
    /// not checked against any access policy and not audited. Never show
    /// what it returns to a person as it is.
    pub fn system_reader(&self) -> &dyn Reader {
        self.reader()
    }
}
