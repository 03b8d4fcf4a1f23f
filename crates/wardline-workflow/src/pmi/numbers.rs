//! Hospital numbers: the trust's scheme, and handing out the next one.
//!
//! A deployment serves one trust, so the scheme (system, prefix, width; see
//! [`wardline_fhir::hospital_number`]) is set once per process by the
//! composition root ([`configure_hospital_numbers`], from `wardline
//! --hospital-number-*`) before anything reads it, and read everywhere
//! ([`hospital_numbers`]): registration's allocation, the demo and the
//! generator, search and display, the uniqueness rule. Unset, it is the
//! default scheme.
//!
//! [`allocate_hospital_number`] never hands out a number a record already
//! holds (in any `use`, retired records included) nor one handed out before:
//! under a lock on the scheme's sequence, it starts after the last number it
//! allocated (kept in the transaction, in system data), skips numbers that
//! records hold (written by the demo, an import, another channel) by a
//! galloping then binary search — a few lookups even after a million numbers
//! loaded from elsewhere — and locks the number it picks (the key the
//! uniqueness rule takes) before checking it once more. Concurrent
//! registrations, on one server or several on one database, take turns.

use std::sync::OnceLock;

use wardline_core::Tx;
use wardline_fhir::FhirError;
use wardline_fhir::definitions::r4;
use wardline_fhir::hospital_number::Scheme;
use wardline_fhir::search::{Handling, escape_value};
use wardline_store::{PageRequest, Reader};

static SCHEME: OnceLock<Scheme> = OnceLock::new();

/// Sets this process's hospital-number scheme. Call it once, before anything
/// reads the scheme; setting the same scheme again is harmless, a different
/// one is refused.
pub fn configure_hospital_numbers(scheme: Scheme) -> Result<(), String> {
    let set = SCHEME.get_or_init(|| scheme.clone());
    if *set == scheme {
        Ok(())
    } else {
        Err(format!(
            "the hospital-number scheme is already {} {}…; it cannot change while running",
            set.system(),
            set.prefix()
        ))
    }
}

/// This process's hospital-number scheme (the default unless configured).
pub fn hospital_numbers() -> &'static Scheme {
    SCHEME.get_or_init(Scheme::default)
}

/// The database lock taken before deciding on an identifier (`system|value`)
/// of a Patient: the same key as the HL7 v2 mapping's lookups, so a message,
/// a registration and a REST write about one number take turns.
pub(crate) fn identifier_key(system: &str, value: &str) -> String {
    lookup_key("Patient", system, value)
}

/// The lock key of a lookup of a resource by identifier
/// (`identifier:{type}|{system}|{value}`), for every channel that decides
/// on one (the HL7 v2 inbound mapping's lookups, the PMI's rules).
pub fn lookup_key(resource_type: &str, system: &str, value: &str) -> String {
    format!("identifier:{resource_type}|{system}|{value}")
}

/// The current Patients holding `system|value` (any `use`), at most `limit`,
/// whoever may see them: rules decide past the caller's access.
pub(crate) fn holders(
    reader: &dyn Reader,
    system: &str,
    value: &str,
    limit: usize,
) -> Result<Vec<serde_json::Value>, FhirError> {
    let q = wardline_fhir::search::parse(
        r4(),
        Some("Patient"),
        &[(
            "identifier".to_owned(),
            format!("{}|{}", escape_value(system), escape_value(value)),
        )],
        Handling::Strict,
    )?;
    let page = reader.search(
        &q,
        &PageRequest {
            count: limit,
            ..PageRequest::default()
        },
    )?;
    page.resources
        .iter()
        .map(|r| {
            serde_json::from_str(&r.json).map_err(|e| {
                FhirError::internal(format!("stored Patient/{} unreadable: {e}", r.id))
            })
        })
        .collect()
}

const SEQUENCE_NAMESPACE: &str = "pmi";

/// The next hospital number of `scheme` nobody holds, recorded as allocated
/// in `tx` (see the module documentation). Lock the records the caller
/// decides on (an NHS number) before calling this, so that locks are taken
/// in one order.
pub fn allocate_hospital_number(tx: &mut Tx<'_>, scheme: &Scheme) -> Result<String, FhirError> {
    let sequence = format!(
        "hospital-number-last|{}|{}",
        scheme.system(),
        scheme.prefix()
    );
    tx.lock(&[format!("pmi:{sequence}")])?;
    let last: u64 = tx
        .kv_get(SEQUENCE_NAMESPACE, &sequence)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut n = next_unused(tx, scheme, last)?;
    loop {
        let value = scheme.format(n);
        tx.lock(&[identifier_key(scheme.system(), &value)])?;
        // Written by another channel between the search and the lock?
        if !used(tx, scheme, n)? {
            break;
        }
        n = next_unused(tx, scheme, n)?;
    }
    tx.kv_put(SEQUENCE_NAMESPACE, &sequence, &n.to_string())?;
    Ok(scheme.format(n))
}

fn used(tx: &Tx<'_>, scheme: &Scheme, serial: u64) -> Result<bool, FhirError> {
    Ok(!holders(tx, scheme.system(), &scheme.format(serial), 1)?.is_empty())
}

/// An unused serial after `after`: the first one when `after + 1` is free,
/// otherwise the end of the run of used serials found by galloping
/// (`after + 1, 2, 4, …`) and then halving the gap.
fn next_unused(tx: &Tx<'_>, scheme: &Scheme, after: u64) -> Result<u64, FhirError> {
    let (mut lo, mut step) = (after, 1u64);
    let mut hi = loop {
        let candidate = after.saturating_add(step);
        if !used(tx, scheme, candidate)? {
            break candidate;
        }
        lo = candidate;
        step = step.saturating_mul(2);
        if candidate == u64::MAX {
            return Err(FhirError::internal(
                "no hospital number is left to allocate",
            ));
        }
    };
    // `lo` is used (or `after`), `hi` is not: narrow to a boundary.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if used(tx, scheme, mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}
