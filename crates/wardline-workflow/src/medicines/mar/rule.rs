//! One record per dose, on every channel.
//!
//! [`DoseSlotRule`] is a core [`WriteRule`] on `MedicationAdministration`,
//! registered by [`crate::with_rules`], so the core asks it on every write
//! path (the drug round's transactions, REST create/update, Bundles,
//! imports):
//!
//! * a write giving an administration (not `entered-in-error`) a
//!   [`DOSE_SLOT_SYSTEM`] identifier that another current administration
//!   (not `entered-in-error`) holds is refused, 422 `duplicate` at
//!   `MedicationAdministration.identifier[i]` naming the record that holds
//!   it. The rule locks the slot (`dose-slot|{value}`, the key the drug
//!   round takes too) before it looks, so of two nurses recording the same
//!   dose at the same moment — on any channel, on any server sharing the
//!   database — exactly one is saved;
//! * a new administration (given or not given) of a prescription that is
//!   not `active` ([`crate::medicines::administrable`]) is refused, 422
//!   `business-rule` at `MedicationAdministration.request`: a
//!   discontinued, completed, on-hold or unreleased (`draft`) prescription
//!   is never given, whoever writes it. (Corrections of an existing record
//!   are not refused: marking an earlier record `entered-in-error` after
//!   the prescription stopped must stay possible.)

use serde_json::Value;
use wardline_core::{ProposedWrite, RuleTx, WriteRule};
use wardline_fhir::FhirError;

use super::slot_lock;
use crate::medicines::{DOSE_SLOT_SYSTEM, administrable};

/// The rule (see the module documentation).
pub struct DoseSlotRule;

fn slots(ma: &Value) -> Vec<(usize, String)> {
    ma["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, i)| i["system"] == DOSE_SLOT_SYSTEM)
        .filter_map(|(n, i)| Some((n, i["value"].as_str()?.to_owned())))
        .collect()
}

impl WriteRule for DoseSlotRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "MedicationAdministration"
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        if w.resource["status"] == "entered-in-error" {
            return Ok(());
        }
        let live_current = w.current.filter(|c| c["status"] != "entered-in-error");
        if live_current.is_none()
            && let Some(mr_id) =
                crate::fhir::reference_id(&w.resource["request"], "MedicationRequest")
        {
            tx.lock(&[format!("MedicationRequest/{mr_id}")])?;
            if let Some(mr) = tx.get("MedicationRequest", mr_id)? {
                let status = mr["status"].as_str().unwrap_or("unknown");
                if !administrable(status) {
                    return Err(FhirError::new(
                        422,
                        "business-rule",
                        format!(
                            "MedicationRequest/{mr_id} is {status}: only an active prescription may be given or omitted"
                        ),
                    )
                    .at("MedicationAdministration.request"));
                }
            }
        }
        let held: Vec<String> = live_current
            .map(slots)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let wanted: Vec<(usize, String)> = slots(w.resource)
            .into_iter()
            .filter(|(_, v)| !held.contains(v))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = wanted.iter().map(|(_, v)| slot_lock(v)).collect();
        tx.lock(&keys)?;
        for (n, value) in wanted {
            let query = format!(
                "identifier={}",
                form_urlencoded::byte_serialize(format!("{DOSE_SLOT_SYSTEM}|{value}").as_bytes())
                    .collect::<String>()
            );
            let holder = tx
                .find("MedicationAdministration", &query, 20)?
                .into_iter()
                .find(|m| m["id"].as_str() != Some(w.id) && m["status"] != "entered-in-error");
            if let Some(h) = holder {
                return Err(FhirError::new(
                    422,
                    "duplicate",
                    format!(
                        "the dose {value} is already recorded as MedicationAdministration/{} ({}): one record per dose",
                        h["id"].as_str().unwrap_or("?"),
                        if h["status"] == "not-done" { "not given" } else { "given" }
                    ),
                )
                .at(format!("MedicationAdministration.identifier[{n}]")));
            }
        }
        Ok(())
    }
}

/// A once-only prescription is `completed` when its dose is given — on
/// every channel, and whoever gives it: a core `WriteHook` on
/// `MedicationAdministration` (registered by [`crate::with_rules`]), so the
/// change is the system's consequence of the dose, made in the same
/// transaction through the one place a prescription's status changes
/// (`prescribe::set_status_in`), not a prescribing act of the nurse's (who
/// may not write prescriptions). A hook never refuses: a prescription that
/// cannot be completed is left as it is.
pub struct OnceOnlyDone;

impl wardline_core::WriteHook for OnceOnlyDone {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "MedicationAdministration"
    }

    fn before_commit(
        &self,
        tx: &mut wardline_core::Tx<'_>,
        changes: &[wardline_core::Change],
    ) -> Result<(), FhirError> {
        use crate::medicines::{Kind, MedicinesError, kind};
        for c in changes {
            let Some(after) = c.after.as_deref() else {
                continue;
            };
            let Ok(ma) = serde_json::from_str::<Value>(after) else {
                continue;
            };
            let was_given = c
                .before
                .as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .is_some_and(|b| b["status"] == "completed");
            if ma["status"] != "completed" || was_given {
                continue;
            }
            let Some(mr_id) = crate::fhir::reference_id(&ma["request"], "MedicationRequest") else {
                continue;
            };
            let Some(mr) = super::stored(&*tx, "MedicationRequest", mr_id)? else {
                continue;
            };
            if mr["status"] != "active" || kind(&mr) != Kind::OnceOnly {
                continue;
            }
            match crate::medicines::prescribe::set_status_in(tx, mr_id, "completed", "") {
                Ok(_) => {}
                Err(MedicinesError::Store(m)) => return Err(FhirError::internal(m)),
                Err(e) => {
                    tracing::warn!(prescription = mr_id, error = %e, "a once-only prescription given was not completed");
                }
            }
        }
        Ok(())
    }
}
