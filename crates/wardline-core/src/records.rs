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
//!
//! [`FhirService::bulk_reader`] is the population-level read of bulk
//! extracts (Bulk Data `$export`, in `wardline-export`): every current
//! resource of a query, page by page in `rid` order, pinned to one
//! snapshot, with the resources of patients under the national data
//! opt-out left out by the core (see [`crate::consent`]) so that no extract
//! can forget them. It checks no caller's access and records no audit
//! event per page: whoever starts an extract checks
//! [`crate::Operation::Export`] first and is audited then (the REST
//! kick-off is an interaction), or is the operator (`wardline export`).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;
use wardline_fhir::definitions::Definitions;
use wardline_fhir::{FhirError, SearchQuery};
use wardline_store::{PageRequest, Reader, Store};

use crate::access::{Access, Op};
use crate::search::{self, Shape, parse_stored, shape_resource};
use crate::{FhirService, R, RequestHeaders, existing};

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

/// The reads of one page, audited together ([`FhirService::reads_as`]).
pub struct Reads<'a> {
    svc: &'a FhirService,
    access: &'a dyn Access,
    events: std::cell::RefCell<Vec<crate::audit::AuditRecord>>,
}

impl Reads<'_> {
    /// [`FhirService::search_as`], its audit event committed with the
    /// page's others.
    pub fn search<K: AsRef<str>, V: AsRef<str>>(&self, t: &str, params: &[(K, V)]) -> R<Found> {
        self.svc
            .search_into(self.access, t, params, Some(&self.events))
    }
}

impl FhirService {
    /// `GET [type]/[id]` for `access`: the current resource, or `None` when
    /// there is none (or it was deleted). A refusal is an error; every call
    /// is audited.
    pub fn read_as(&self, access: &dyn Access, t: &str, id: &str) -> R<Option<Value>> {
        self.interaction(access, true, None, |cx| {
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
        self.search_into(access, t, params, None)
    }

    /// Several reads that make one page, audited together: each search in
    /// `f` is checked, withheld and recorded exactly as [`Self::search_as`]
    /// does — one audit event per search, with its query — but the events
    /// are committed in one durable write when `f` ends, before its result
    /// is returned (so a page of twenty searches waits for one commit, not
    /// twenty). If the events cannot be recorded the result is withheld and
    /// the error returned; they are recorded even when `f` fails.
    pub fn reads_as<T>(&self, access: &dyn Access, f: impl FnOnce(&Reads<'_>) -> R<T>) -> R<T> {
        let reads = Reads {
            svc: self,
            access,
            events: std::cell::RefCell::new(Vec::new()),
        };
        let result = f(&reads);
        let events = reads.events.into_inner();
        if let Err(e) = self.record_audit(access.agent(), &events) {
            tracing::error!(error = %e, "audit failed; the response is withheld");
            return Err(e);
        }
        result
    }

    fn search_into<K: AsRef<str>, V: AsRef<str>>(
        &self,
        access: &dyn Access,
        t: &str,
        params: &[(K, V)],
        deferred: Option<&std::cell::RefCell<Vec<crate::audit::AuditRecord>>>,
    ) -> R<Found> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        self.interaction_into(access, true, Some(query), deferred, |cx| {
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

impl FhirService {
    /// The population-level reader of bulk extracts (see the module
    /// documentation). It is owned (`Clone`, `Send`, `'static`), so an
    /// extract can run on a worker thread of its own.
    pub fn bulk_reader(&self) -> BulkReader {
        BulkReader {
            store: self.store.clone(),
            defs: self.defs,
            zone: self.config.time_zone.clone(),
        }
    }
}

/// Reads for bulk extracts: see [`FhirService::bulk_reader`]. Unchecked
/// and unaudited; the national data opt-out is applied by [`BulkScan`].
#[derive(Clone)]
pub struct BulkReader {
    store: Arc<dyn Store>,
    defs: &'static Definitions,
    zone: wardline_fhir::datetime::LocalZone,
}

impl std::fmt::Debug for BulkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkReader")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl BulkReader {
    /// The FHIR definitions the service validates and searches with.
    pub fn definitions(&self) -> &'static Definitions {
        self.defs
    }

    /// The trust's local time zone, in which the service reads zone-less
    /// dates (an extract's `_typeFilter` and `_since` are read in it).
    pub fn time_zone(&self) -> &wardline_fhir::datetime::LocalZone {
        &self.zone
    }

    /// The current version of `t/id`, for the extract's own decisions (the
    /// members of a Group): 404 when there is none, 410 when it was deleted.
    pub fn read(&self, t: &str, id: &str) -> R<Value> {
        parse_stored(&existing(self.store.read(t, id)?, t, id)?)
    }

    /// How many current resources match `q` (the opt-out not subtracted:
    /// for progress bars).
    pub fn count(&self, q: &SearchQuery) -> R<u64> {
        let page = self.store.search(
            q,
            &PageRequest {
                count_only: true,
                ..PageRequest::default()
            },
        )?;
        Ok(page.total.unwrap_or(0))
    }

    /// Starts a scan: reads, once and now, which patients are under the
    /// national data opt-out.
    pub fn scan(&self) -> R<BulkScan> {
        let opted_out = crate::consent::secondary_use_opt_outs(
            self.defs,
            &*self.store,
            wardline_fhir::datetime::now_ms(),
        )?;
        Ok(BulkScan {
            reader: self.clone(),
            opted_out,
            snapshot: None,
            withheld: 0,
        })
    }
}

/// One extract's reads: pages of any number of queries, all pinned to the
/// snapshot of the first page (rows created after it are not seen; updates
/// to existing rows are), with opted-out patients' resources left out.
#[derive(Debug)]
pub struct BulkScan {
    reader: BulkReader,
    opted_out: HashSet<String>,
    snapshot: Option<i64>,
    withheld: u64,
}

/// One page of a [`BulkScan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkPage {
    /// The matches that may leave, in `rid` order.
    pub resources: Vec<BulkEntry>,
    /// How many matches the page read, those left out included.
    pub read: usize,
    /// Where the next page starts (the `after` of [`BulkScan::page`]), when
    /// there are more matches.
    pub next: Option<i64>,
}

/// A current resource in a [`BulkPage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkEntry {
    /// The store's immutable row id: unique, and the order of the pages.
    pub rid: i64,
    pub resource_type: String,
    pub id: String,
    /// The stored JSON, compact (one line) by construction.
    pub json: String,
}

impl BulkScan {
    /// Up to `count` current resources matching `q` whose `rid` is above
    /// `after` (from the start with `None`), in `rid` order. `q` may hold
    /// filters and a patient scope only: no `_sort`, `_include` or
    /// `_revinclude`.
    pub fn page(&mut self, q: &SearchQuery, after: Option<i64>, count: usize) -> R<BulkPage> {
        if !q.sort.is_empty() || !q.include.is_empty() || !q.revinclude.is_empty() {
            return Err(FhirError::invalid(
                "a bulk read takes filters only (no _sort, _include or _revinclude)",
            ));
        }
        let page = self.reader.store.search(
            q,
            &PageRequest {
                count,
                after_rid: after,
                snapshot_rid: self.snapshot,
                ..PageRequest::default()
            },
        )?;
        self.snapshot.get_or_insert(page.snapshot_rid);
        let next = match (page.has_more, page.resources.last()) {
            (true, Some(last)) => Some(last.rid),
            _ => None,
        };
        let read = page.resources.len();
        let mut resources = Vec::with_capacity(read);
        for r in page.resources {
            if r.patient_key
                .as_ref()
                .is_some_and(|p| self.opted_out.contains(p))
            {
                self.withheld += 1;
                continue;
            }
            resources.push(BulkEntry {
                rid: r.rid,
                resource_type: r.resource_type,
                id: r.id,
                json: r.json,
            });
        }
        Ok(BulkPage {
            resources,
            read,
            next,
        })
    }

    /// Resources left out so far because their patient is under the
    /// national data opt-out.
    pub fn withheld(&self) -> u64 {
        self.withheld
    }

    /// How many patients are under the national data opt-out.
    pub fn opted_out_patients(&self) -> usize {
        self.opted_out.len()
    }
}
