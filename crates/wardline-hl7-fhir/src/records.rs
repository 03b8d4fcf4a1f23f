//! [`Records`] over a service transaction: what the inbound mapping (and the
//! outbox, for outbound) reads and writes through.
//!
//! Find-or-create by identifier (a patient by NHS number, a ward by its
//! code, a consultant by GMC number) is a read then a write: two messages
//! about the same new patient must not both create it. So every identifier
//! looked up is locked in the database ([`Tx::lock`], key
//! `identifier:{type}|{system}|{value}`) until the transaction ends: on
//! PostgreSQL the second message waits, then finds what the first created,
//! whichever server it arrived at; on SQLite the transaction is the only
//! writer anyway. Lookups lock as they go, so two messages can wait for
//! each other; the database then fails one with a 409 and the engine runs
//! it again.

use serde_json::Value;
use wardline_core::Tx;
use wardline_fhir::FhirError;

use crate::{MapError, Records};

/// Prefix of the internal errors after which a whole message is tried again
/// (a version or lock conflict with a concurrent writer).
pub const RETRY: &str = "retry: ";

/// The [`MapError`] of a service error: conflicts are retried, server
/// failures are internal, anything else means the mapping produced
/// something the record refuses (invalid FHIR).
pub fn map_err(e: FhirError) -> MapError {
    if e.status == 409 || e.status == 412 {
        MapError::internal(format!("{RETRY}{e}"))
    } else if e.status >= 500 {
        MapError::internal(e.to_string())
    } else {
        MapError::content(
            207,
            None,
            format!("the mapped resource is not valid FHIR: {e}"),
        )
    }
}

/// [`Records`] over a [`Tx`]; `locking` takes the identifier locks (inbound
/// messages; the outbox only reads).
pub struct TxRecords<'t, 'a> {
    tx: &'t mut Tx<'a>,
    locking: bool,
}

impl<'t, 'a> TxRecords<'t, 'a> {
    /// For an inbound message: identifiers looked up are locked.
    pub fn inbound(tx: &'t mut Tx<'a>) -> TxRecords<'t, 'a> {
        TxRecords { tx, locking: true }
    }

    /// For reading only (the outbox).
    pub fn reading(tx: &'t mut Tx<'a>) -> TxRecords<'t, 'a> {
        TxRecords { tx, locking: false }
    }

    /// The transaction, for calls on the domain services.
    pub fn tx(&mut self) -> &mut Tx<'a> {
        self.tx
    }
}

/// Whether two versions of a resource say the same, `meta` aside.
fn same_content(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            a.len() - usize::from(a.contains_key("meta"))
                == b.len() - usize::from(b.contains_key("meta"))
                && a.iter().all(|(k, v)| k == "meta" || b.get(k) == Some(v))
        }
        _ => a == b,
    }
}

/// The Patient a merged-away record was merged into (`link` `replaced-by`).
fn replaced_by(r: &Value) -> Option<String> {
    r.get("link")?
        .as_array()?
        .iter()
        .find(|l| l["type"] == "replaced-by")?
        .pointer("/other/reference")?
        .as_str()?
        .rsplit_once("Patient/")
        .map(|(_, id)| id.to_owned())
}

impl Records for TxRecords<'_, '_> {
    /// After a merge the retired record keeps its identifiers: a lookup that
    /// finds it follows `replaced-by` to the survivor (a few steps at most),
    /// and when both carry the identifier the survivor is the match.
    fn find_by_identifier(
        &mut self,
        resource_type: &str,
        system: &str,
        value: &str,
    ) -> Result<Option<Value>, MapError> {
        if self.locking {
            self.tx
                .lock(&[wardline_workflow::pmi::lookup_key(
                    resource_type,
                    system,
                    value,
                )])
                .map_err(map_err)?;
        }
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "identifier",
                &format!(
                    "{}|{}",
                    wardline_fhir::search::escape_value(system),
                    wardline_fhir::search::escape_value(value)
                ),
            )
            .finish();
        let mut found = self.tx.find(resource_type, &q).map_err(map_err)?;
        if found.len() > 1 {
            found.retain(|r| replaced_by(r).is_none());
        }
        let mut one = match found.len() {
            0 => return Ok(None),
            1 => found.pop(),
            n => {
                return Err(MapError::content(
                    205,
                    None,
                    format!("{n} {resource_type} resources carry the identifier {system}|{value}"),
                ));
            }
        };
        for _ in 0..5 {
            let Some(next) = one.as_ref().and_then(replaced_by) else {
                break;
            };
            match self.tx.get("Patient", &next).map_err(map_err)? {
                Some(p) => one = Some(p),
                None => break,
            }
        }
        Ok(one)
    }

    fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<Value>, MapError> {
        self.tx.get(resource_type, id).map_err(map_err)
    }

    /// A resource saved exactly as it is stored (a message sent again with
    /// another control id) is not written again: no new version, nothing
    /// announced downstream.
    fn save(&mut self, resource: Value) -> Result<String, MapError> {
        if let (Some(t), Some(id)) = (
            resource.get("resourceType").and_then(Value::as_str),
            resource.get("id").and_then(Value::as_str),
        ) && let Some(current) = self.tx.get(t, id).map_err(map_err)?
            && same_content(&current, &resource)
        {
            return Ok(id.to_owned());
        }
        self.tx.save(resource).map(|s| s.id).map_err(map_err)
    }
}
