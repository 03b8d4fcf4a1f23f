//! Write rules: refusals that every write path applies.
//!
//! Some rules are about the record as a whole and can be broken by a single
//! write on any channel — one active Patient per NHS number is the first.
//! They belong to the domain (the PMI's lives in `wardline-workflow`), which
//! the core does not depend on, so the composition root registers them with
//! [`FhirService::with_rule`] (through a function of the domain's crate,
//! `wardline_workflow::with_rules`), and the core's one write path asks
//! each rule that [`WriteRule::watches`] the type. That path is
//! `prepare_write`: REST create, update and patch, the conditional
//! interactions, every entry of a transaction or batch Bundle, and every
//! [`Tx::save`] — the workflows', the HL7 v2 engine's, `wardline import`'s.
//! A rule is asked after the write was validated, stamped and authorised,
//! and before it is written, inside the writing transaction:
//!
//! * it [`RuleTx::lock`]s the records or keys it decides on (an identifier,
//!   the same keys every writer of them takes), so that two transactions
//!   writing records that would clash run one after the other and the second
//!   sees what the first committed — across connections and servers;
//! * it reads what it needs ([`RuleTx::find`], [`RuleTx::get`]) past the
//!   caller's access and unaudited: a clash with a record the caller may not
//!   see is still a clash. What it read is never shown as it is; a refusal
//!   names the record (`Patient/{id}`), nothing of its content;
//! * it refuses with a 4xx [`FhirError`] whose expression names the element
//!   of the written resource (`Patient.identifier[1]`; inside a Bundle the
//!   core prefixes it with the entry, `Bundle.entry[3].resource.identifier[1]`),
//!   which fails the interaction, the Bundle or the workflow's transaction;
//! * it writes nothing.
//!
//! Contrast [`WriteHook`](crate::WriteHook): hooks see changes at commit,
//! may write, and must never refuse.

use serde_json::Value;
use wardline_fhir::FhirError;
use wardline_store::{PageRequest, Reader};

use crate::{R, Tx};

/// A write about to be made, as a [`WriteRule`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct ProposedWrite<'a> {
    pub resource_type: &'a str,
    pub id: &'a str,
    /// The new version as it will be stored (valid, with `id` and `meta`).
    pub resource: &'a Value,
    /// The current version it replaces; `None` for a create (or the revival
    /// of a deleted resource).
    pub current: Option<&'a Value>,
}

/// A rule every write of the types it watches must pass (see the module
/// documentation).
pub trait WriteRule: Send + Sync {
    /// Whether writes of this resource type are checked.
    fn watches(&self, resource_type: &str) -> bool;
    /// `Ok` to let the write through; a 4xx error naming the element to
    /// refuse it.
    fn check(&self, tx: &mut RuleTx<'_, '_>, write: &ProposedWrite<'_>) -> R<()>;
}

/// What a [`WriteRule`] may do in the writing transaction: lock and read.
pub struct RuleTx<'t, 'a> {
    tx: &'t mut Tx<'a>,
}

impl RuleTx<'_, '_> {
    /// [`Tx::lock`]: held until the writing transaction ends.
    pub fn lock<S: AsRef<str>>(&mut self, keys: &[S]) -> R<()> {
        self.tx.lock(keys)
    }

    /// The writing transaction's reads (its own writes included),
    /// unchecked and unaudited, for rules that search with a parsed query.
    pub fn reader(&self) -> &dyn Reader {
        &*self.tx
    }

    /// Whether the workflow writing in this transaction vouched for `key`
    /// ([`Tx::vouch`]): what only a workflow in this process can attest.
    pub fn vouched(&self, key: &str) -> bool {
        self.tx.vouched(key)
    }

    /// The trust's time zone ([`Tx::time_zone`]).
    pub fn time_zone(&self) -> &wardline_fhir::datetime::LocalZone {
        self.tx.time_zone()
    }

    /// The requester the writing transaction acts for: for a rule about
    /// who may write what (only a note's author signs it).
    pub fn access(&self) -> &dyn crate::Access {
        self.tx.access()
    }

    /// The current resource (the transaction's own writes included),
    /// unchecked and unaudited.
    pub fn get(&self, resource_type: &str, id: &str) -> R<Option<Value>> {
        match self.tx.read(resource_type, id)? {
            Some(r) if !r.deleted => parse(&r.json, resource_type, &r.id).map(Some),
            _ => Ok(None),
        }
    }

    /// Current resources of `resource_type` matching a FHIR search query
    /// string (strictly parsed), in creation order, at most `limit`;
    /// unchecked and unaudited.
    pub fn find(&self, resource_type: &str, query: &str, limit: usize) -> R<Vec<Value>> {
        let svc = self.tx.service();
        let q = svc.parse_criteria(resource_type, query)?;
        let page = self.tx.search(
            &q,
            &PageRequest {
                count: limit.min(svc.config().max_count),
                ..PageRequest::default()
            },
        )?;
        page.resources
            .iter()
            .map(|r| parse(&r.json, resource_type, &r.id))
            .collect()
    }
}

fn parse(json: &str, t: &str, id: &str) -> R<Value> {
    serde_json::from_str(json)
        .map_err(|e| FhirError::internal(format!("stored {t}/{id} unreadable: {e}")))
}

impl crate::FhirService {
    /// Registers a rule every write of the types it watches must pass, on
    /// every write path (see [`crate::rules`]).
    pub fn with_rule(mut self, rule: std::sync::Arc<dyn WriteRule>) -> crate::FhirService {
        self.rules.push(rule);
        self
    }

    /// Asks every rule watching `write.resource_type`; the first refusal wins.
    pub(crate) fn check_rules(&self, tx: &mut Tx<'_>, write: &ProposedWrite<'_>) -> R<()> {
        let mut rtx = RuleTx { tx };
        for rule in self.rules.iter().filter(|r| r.watches(write.resource_type)) {
            rule.check(&mut rtx, write)?;
        }
        Ok(())
    }

    pub(crate) fn has_rules_for(&self, resource_type: &str) -> bool {
        self.rules.iter().any(|r| r.watches(resource_type))
    }
}
