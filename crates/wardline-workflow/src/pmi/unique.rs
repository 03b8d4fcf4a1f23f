//! The PMI's uniqueness, on every channel: one active record per NHS number,
//! one record per hospital number.
//!
//! [`UniqueIdentifiers`] is a core [`WriteRule`] on Patient, registered by
//! the composition root ([`crate::with_rules`]), so the core asks it on
//! every write path: REST create, update, patch and the conditional
//! interactions, transaction and batch entries, the workflows' and the HL7 v2
//! engine's transactions, `wardline import`. Registration asks the same
//! question first ([`clash_in`]) to answer the clerk at the field.
//!
//! **What is a clash.** A write that gives a Patient an NHS number (an
//! identifier of the NHS number system not marked `old`) or a hospital
//! number (of the trust's system, any `use`) that another current record
//! holds. Refused with 422, issue `duplicate`, at `Patient.identifier[i]`,
//! naming the record that holds it (`Patient/{id}`, nothing of its content):
//! FHIR's status for a write that breaks a business rule; 409 is left to
//! version and lock conflicts, which a client may simply retry (and the HL7
//! engine does), whereas this one stays refused until someone decides.
//!
//! * **Retired (merged) records** neither block in their own name nor are
//!   checked: a retired record's numbers stand for the record it was merged
//!   into (`replaced-by`, followed a few steps), which may take them (a
//!   survivor adopting the number is how a merge is finished), while a new
//!   or another record holding them would duplicate that person and is
//!   refused naming the survivor. Reactivating a retired record (an unmerge)
//!   is checked like a create: an unmerge that would leave two active
//!   records with one NHS number is refused until one of them is corrected.
//!   A hospital number is never given to a second record, retired or not.
//! * **Legacy duplicates.** A write that keeps a number its record already
//!   held (and the record was not retired) is not checked, so two records
//!   that shared a number before this rule can still be corrected, and
//!   merged; the rule stops new clashes, the duplicate scan finds old ones.
//! * **Concurrency.** The rule locks each number it checks (the key the HL7
//!   mapping's lookups and the hospital-number allocation take) before
//!   reading, so of two transactions writing the same number exactly one
//!   commits it; the other waits, sees it, and is refused.

use serde_json::Value;
use wardline_core::{ProposedWrite, RuleTx, Tx, WriteRule};
use wardline_fhir::FhirError;
use wardline_store::Reader;

use super::numbers::{hospital_numbers, identifier_key};
use super::{NHS_NUMBER_SYSTEM, format_nhs_number};

/// The PMI's uniqueness rule (see the module documentation).
pub struct UniqueIdentifiers;

impl WriteRule for UniqueIdentifiers {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Patient"
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        let mut lookup = RuleLookup(tx);
        match clash(&mut lookup, w.id, w.resource, w.current)? {
            Some(c) => Err(c.into_error()),
            None => Ok(()),
        }
    }
}

/// A record already holding a number the write would give a Patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Clash {
    /// Index in `Patient.identifier` of the written resource.
    pub element: usize,
    pub kind: Kind,
    /// The number as written (an NHS number without spaces).
    pub value: String,
    /// The record holding it (for a retired holder, its survivor).
    pub holder: String,
    /// The retired record that holds it, when `holder` is its survivor.
    pub retired: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NhsNumber,
    HospitalNumber,
}

impl Clash {
    /// The refusal, in a sentence naming the holder.
    pub fn message(&self) -> String {
        let via = match &self.retired {
            Some(r) => format!(" (it is on Patient/{r}, which was merged into that record)"),
            None => String::new(),
        };
        match self.kind {
            Kind::NhsNumber => format!(
                "NHS number {} is already held by Patient/{}{via}: one person has one record, so find and update that record (or merge the two) instead of giving the number to another",
                format_nhs_number(&self.value),
                self.holder
            ),
            Kind::HospitalNumber => format!(
                "Hospital number {} is already held by Patient/{}{via}: a hospital number identifies one record",
                self.value, self.holder
            ),
        }
    }

    pub fn into_error(self) -> FhirError {
        FhirError::new(422, "duplicate", self.message())
            .at(format!("Patient.identifier[{}]", self.element))
    }
}

/// What the check needs of a transaction: database locks and reads past
/// the caller's access.
trait Lookup {
    fn lock(&mut self, key: String) -> Result<(), FhirError>;
    fn reader(&self) -> &dyn Reader;
    fn patient(&self, id: &str) -> Result<Option<Value>, FhirError>;
}

struct RuleLookup<'r, 't, 'a>(&'r mut RuleTx<'t, 'a>);

impl Lookup for RuleLookup<'_, '_, '_> {
    fn lock(&mut self, key: String) -> Result<(), FhirError> {
        self.0.lock(&[key])
    }
    fn reader(&self) -> &dyn Reader {
        self.0.reader()
    }
    fn patient(&self, id: &str) -> Result<Option<Value>, FhirError> {
        self.0.get("Patient", id)
    }
}

struct TxLookup<'r, 'a>(&'r mut Tx<'a>);

impl Lookup for TxLookup<'_, '_> {
    fn lock(&mut self, key: String) -> Result<(), FhirError> {
        self.0.lock(&[key])
    }
    fn reader(&self) -> &dyn Reader {
        &*self.0
    }
    fn patient(&self, id: &str) -> Result<Option<Value>, FhirError> {
        match self.0.read("Patient", id)? {
            Some(r) if !r.deleted => serde_json::from_str(&r.json)
                .map(Some)
                .map_err(|e| FhirError::internal(format!("stored Patient/{id} unreadable: {e}"))),
            _ => Ok(None),
        }
    }
}

/// Whether writing `resource` (a Patient without an id yet, or `id`, whose
/// current version is `current`) inside `tx` would clash; takes the locks.
/// What registration asks before it writes; the rule asks the same.
pub fn clash_in(
    tx: &mut Tx<'_>,
    id: Option<&str>,
    resource: &Value,
    current: Option<&Value>,
) -> Result<Option<Clash>, FhirError> {
    clash(&mut TxLookup(tx), id.unwrap_or_default(), resource, current)
}

fn identifiers(p: &Value) -> impl Iterator<Item = (usize, &Value)> {
    p.get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

fn system_value(i: &Value) -> Option<(&str, &str)> {
    Some((i.get("system")?.as_str()?, i.get("value")?.as_str()?))
}

/// The survivor a retired record was merged into (`link` `replaced-by`).
fn replaced_by(p: &Value) -> Option<String> {
    p.get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("type").and_then(Value::as_str) == Some("replaced-by"))?
        .pointer("/other/reference")?
        .as_str()
        .map(|r| r.rsplit('/').next().unwrap_or(r).to_owned())
}

/// The NHS numbers `p` holds (not marked `old`), normalised.
fn nhs_numbers(p: &Value) -> Vec<(usize, String)> {
    identifiers(p)
        .filter(|(_, i)| i.get("use").and_then(Value::as_str) != Some("old"))
        .filter_map(|(n, i)| match system_value(i) {
            Some((NHS_NUMBER_SYSTEM, v)) => Some((
                n,
                wardline_fhir::nhs_number::normalise(v).unwrap_or(v.to_owned()),
            )),
            _ => None,
        })
        .collect()
}

/// The hospital numbers of `system` that `p` holds (any `use`).
fn hospital_numbers_of(p: &Value, system: &str) -> Vec<(usize, String)> {
    identifiers(p)
        .filter_map(|(n, i)| match system_value(i) {
            Some((s, v)) if s == system => Some((n, v.trim().to_owned())),
            _ => None,
        })
        .collect()
}

fn clash(
    lk: &mut dyn Lookup,
    id: &str,
    resource: &Value,
    current: Option<&Value>,
) -> Result<Option<Clash>, FhirError> {
    if replaced_by(resource).is_some() {
        return Ok(None);
    }
    let live_current = current.filter(|c| replaced_by(c).is_none());
    let scheme = hospital_numbers();
    let mut wanted: Vec<(usize, Kind, String, String)> = Vec::new();
    let held_nhs = live_current.map(nhs_numbers).unwrap_or_default();
    for (n, v) in nhs_numbers(resource) {
        if !held_nhs.iter().any(|(_, h)| *h == v) {
            wanted.push((n, Kind::NhsNumber, NHS_NUMBER_SYSTEM.to_owned(), v));
        }
    }
    let held_hn = live_current
        .map(|c| hospital_numbers_of(c, scheme.system()))
        .unwrap_or_default();
    for (n, v) in hospital_numbers_of(resource, scheme.system()) {
        if !held_hn.iter().any(|(_, h)| *h == v) {
            wanted.push((n, Kind::HospitalNumber, scheme.system().to_owned(), v));
        }
    }
    if wanted.is_empty() {
        return Ok(None);
    }
    // All at once, sorted: two writers of the same numbers never wait in a circle.
    let mut keys: Vec<String> = wanted
        .iter()
        .map(|(_, _, s, v)| identifier_key(s, v))
        .collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        lk.lock(k)?;
    }
    for (element, kind, system, value) in wanted {
        for other in super::numbers::holders(lk.reader(), &system, &value, 20)? {
            let other_id = other.get("id").and_then(Value::as_str).unwrap_or_default();
            if other_id == id {
                continue;
            }
            let holds = match kind {
                Kind::NhsNumber => nhs_numbers(&other).iter().any(|(_, v)| *v == value),
                Kind::HospitalNumber => hospital_numbers_of(&other, &system)
                    .iter()
                    .any(|(_, v)| *v == value),
            };
            if !holds {
                continue;
            }
            let (holder, retired) = match survivor(lk, &other)? {
                None => (other_id.to_owned(), None),
                Some(s) if s == id => continue,
                Some(s) => (s, Some(other_id.to_owned())),
            };
            return Ok(Some(Clash {
                element,
                kind,
                value,
                holder,
                retired,
            }));
        }
    }
    Ok(None)
}

/// For a retired record, the live record it was merged into (following
/// `replaced-by` at most five steps); `None` for a record that is not
/// retired, or whose survivor is gone (then it stands for itself).
fn survivor(lk: &dyn Lookup, p: &Value) -> Result<Option<String>, FhirError> {
    let mut next = replaced_by(p);
    let mut found = None;
    for _ in 0..5 {
        let Some(id) = next else { break };
        let Some(s) = lk.patient(&id)? else { break };
        found = Some(id);
        next = replaced_by(&s);
        if next.is_none() {
            return Ok(found);
        }
    }
    Ok(found)
}
