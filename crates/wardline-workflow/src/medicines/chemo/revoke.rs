//! Revoking a cycle: the prescriber stops a cycle that will not be given
//! (the patient is too unwell, the plan changed), with a reason.
//!
//! The CarePlan becomes `revoked` with a [`REVOKE_EXT`] (reason, by, at),
//! and every prescription of it ends through
//! `medicines::prescribe::set_status_in` (so `medicines::allowed`
//! decides): a `draft` one (not yet released) is `cancelled`, an `active`
//! or `on-hold` one `stopped` — none can be given again
//! (`medicines::administrable`). A revoked cycle is never verified,
//! released or delayed again; a new cycle of the same number may then be
//! prescribed. Only a prescriber (Prescribe) revokes.

use serde_json::json;
use time::OffsetDateTime;
use wardline_auth::rbac::Activity;
use wardline_core::{Access, FhirService, Tx};

use super::cycle::{actor, add_step, begin, lock_cycle, locked_prescriptions, role_in};
use crate::medicines::MedicinesError;

/// Why and by whom a cycle was revoked (on CarePlan; `reason`, `by`, `at`).
pub const REVOKE_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/chemotherapy-revocation";

type R<T> = Result<T, MedicinesError>;

/// Revokes cycle `careplan` with `reason`, in the caller's transaction.
pub fn revoke_in(tx: &mut Tx<'_>, careplan: &str, reason: &str, now: OffsetDateTime) -> R<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(MedicinesError::Invalid(
            "Give the reason the cycle is revoked.".into(),
        ));
    }
    if !role_in(tx)?.is_some_and(|r| r.has(Activity::Prescribe)) {
        return Err(MedicinesError::Forbidden(
            "Only a prescriber may revoke a chemotherapy cycle.".into(),
        ));
    }
    let mut cp = lock_cycle(tx, careplan)?;
    let status = cp["status"].as_str().unwrap_or("unknown").to_owned();
    if !matches!(status.as_str(), "draft" | "active" | "on-hold") {
        return Err(MedicinesError::Conflict(format!(
            "This cycle is {status}: it cannot be revoked."
        )));
    }
    let ids = locked_prescriptions(tx, &cp)?;
    for id in &ids {
        let Some(mr) = tx.get("MedicationRequest", id)? else {
            continue;
        };
        let to = match mr["status"].as_str() {
            Some("draft") => "cancelled",
            Some("active" | "on-hold") => "stopped",
            _ => continue,
        };
        crate::medicines::prescribe::set_status_in(tx, id, to, reason)?;
    }
    let (me, _) = actor(tx.access());
    add_step(
        &mut cp,
        REVOKE_EXT,
        vec![json!({"url": "reason", "valueString": reason})],
        me,
        now,
    );
    cp["status"] = json!("revoked");
    tx.save(cp)?;
    Ok(())
}

/// [`revoke_in`] in one audited transaction (`chemo-revoke`).
pub fn revoke(
    svc: &FhirService,
    access: &dyn Access,
    careplan: &str,
    reason: &str,
    now: OffsetDateTime,
) -> R<()> {
    let mut tx = begin(svc, access, "chemo-revoke", "U")?;
    revoke_in(&mut tx, careplan, reason, now)?;
    tx.commit()?;
    Ok(())
}
