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
//! * a dose newly given of a controlled drug (`Entry::needs_witness`) needs
//!   a `witness` performer, not the giver, whom the drug round checked at
//!   their own sign-in and vouched for in the transaction
//!   ([`super::witness_key`], `Tx::vouch`): a witness merely named by a
//!   REST write, a Bundle or an import is refused (422 `business-rule` at
//!   `MedicationAdministration.performer`);
//! * an as-required dose given (or moved, or changed in amount) must keep
//!   the minimum interval and the 24-hour maximum over the prescription's
//!   other doses ([`super::prn_refusal`], the reading `give_in` asks too):
//!   422 `business-rule` at `MedicationAdministration.effectiveDateTime`
//!   saying when the next dose may be given.

use serde_json::Value;
use wardline_core::{ProposedWrite, RuleTx, WriteRule};
use wardline_fhir::FhirError;

use super::{slot_lock, witness_key};
use crate::medicines::formulary::Entry;
use crate::medicines::{DOSE_SLOT_SYSTEM, Kind, administrable, kind};

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
        let given = w.resource["status"] == "completed";
        let newly_given = given && live_current.is_none_or(|c| c["status"] != "completed");
        let moved = |c: &Value| {
            c["effectiveDateTime"] != w.resource["effectiveDateTime"]
                || c["dosage"]["dose"] != w.resource["dosage"]["dose"]
        };
        let regiven = given && !newly_given && live_current.is_some_and(moved);
        if (live_current.is_none() || newly_given || regiven)
            && let Some(mr_id) =
                crate::fhir::reference_id(&w.resource["request"], "MedicationRequest")
        {
            tx.lock(&[format!("MedicationRequest/{mr_id}")])?;
            if let Some(mr) = tx.get("MedicationRequest", mr_id)? {
                let status = mr["status"].as_str().unwrap_or("unknown");
                if live_current.is_none() && !administrable(status) {
                    return Err(FhirError::new(
                        422,
                        "business-rule",
                        format!(
                            "MedicationRequest/{mr_id} is {status}: only an active prescription may be given or omitted"
                        ),
                    )
                    .at("MedicationAdministration.request"));
                }
                if newly_given {
                    witnessed(tx, w, &mr, mr_id)?;
                }
                if (newly_given || regiven) && kind(&mr) == Kind::AsRequired {
                    within_prn_limits(tx, w, &mr)?;
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

/// A controlled drug's dose stands only with a witness who signed in
/// themselves: the drug round checks them and vouches for them in the
/// transaction ([`super::witness_key`]); a witness merely named in a write
/// (REST, a Bundle, an import) proves nothing, so such a write is refused.
fn witnessed(
    tx: &RuleTx<'_, '_>,
    w: &ProposedWrite<'_>,
    mr: &Value,
    mr_id: &str,
) -> Result<(), FhirError> {
    let Some(med_id) = crate::fhir::reference_id(&mr["medicationReference"], "Medication") else {
        return Ok(());
    };
    let Some(entry) = tx
        .get("Medication", med_id)?
        .and_then(|m| Entry::from_medication(&m))
    else {
        return Ok(());
    };
    if !entry.needs_witness() {
        return Ok(());
    }
    let performers = w.resource["performer"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let function = |p: &Value| {
        p["function"]["coding"][0]["code"]
            .as_str()
            .map(str::to_owned)
    };
    let witness = performers
        .iter()
        .find(|p| function(p).as_deref() == Some("witness"))
        .and_then(|p| p["actor"]["reference"].as_str());
    let giver = performers
        .iter()
        .find(|p| function(p).as_deref() != Some("witness"))
        .and_then(|p| p["actor"]["reference"].as_str());
    match witness {
        Some(wit) if Some(wit) != giver && tx.vouched(&witness_key(mr_id, wit)) => Ok(()),
        _ => Err(FhirError::new(
            422,
            "business-rule",
            format!(
                "{} is a controlled drug (schedule {}): its dose is recorded on the drug round, where a second member of staff who may give medicines signs in to witness it; a witness named in a write is not proof",
                entry.name(),
                entry.controlled_drug.as_deref().unwrap_or("2")
            ),
        )
        .at("MedicationAdministration.performer")),
    }
}

/// An as-required dose within its minimum interval and 24-hour maximum
/// ([`super::prn_refusal`], the one reading of them), whoever writes it.
fn within_prn_limits(
    tx: &RuleTx<'_, '_>,
    w: &ProposedWrite<'_>,
    mr: &Value,
) -> Result<(), FhirError> {
    let zone = tx.time_zone().clone();
    let unit = super::prescribed_dose(mr)
        .map(|(_, u)| u)
        .or_else(|| super::dose_range(mr).map(|(_, _, u)| u))
        .unwrap_or_default();
    let q = &w.resource["dosage"]["dose"];
    let amount = q["value"]
        .as_f64()
        .and_then(|v| super::schedule::convert(v, &super::unit_of(q), &unit))
        .ok_or_else(|| {
            FhirError::new(
                422,
                "required",
                format!("an as-required dose states its amount in a unit comparable with {unit:?}, so its limits can be checked"),
            )
            .at("MedicationAdministration.dosage.dose")
        })?;
    let when = w.resource["effectiveDateTime"]
        .as_str()
        .and_then(|t| super::schedule::instant_of(t, &zone, false))
        .ok_or_else(|| {
            FhirError::new(
                422,
                "required",
                "an as-required dose states when it was given",
            )
            .at("MedicationAdministration.effectiveDateTime")
        })?;
    match super::prn_refusal(tx.reader(), &zone, mr, Some(w.id), when, amount, &unit)? {
        None => Ok(()),
        Some(words) => Err(FhirError::new(422, "business-rule", words)
            .at("MedicationAdministration.effectiveDateTime")),
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
