//! One booked appointment per slot, on every channel.
//!
//! [`SlotRule`] is a core [`WriteRule`] on `Appointment`, registered by
//! [`crate::with_rules`], so the core asks it on every write path (the
//! booking pages' transactions, REST create/update, Bundles, the HL7 v2
//! SIU mapping, imports). For each `slot` an appointment in a status that
//! holds it ([`super::HOLDING`]) newly takes (a create, a cancelled
//! appointment restored, a slot changed):
//!
//! * the rule locks the Slot (`Slot/{id}`, the key booking takes too), so
//!   of sixteen bookers of one slot at one moment — on any channel, on any
//!   server sharing the database — the first is written and the others see
//!   it;
//! * a slot that is not there, or is `entered-in-error` or
//!   `busy-unavailable`, is refused: 422 `not-found` / `business-rule` at
//!   `Appointment.slot[i]`;
//! * a slot another current appointment holds is refused: 422 `duplicate`
//!   at `Appointment.slot[i]`, naming that `Appointment/{id}`;
//! * an appointment whose kind (new / follow-up, [`super::KIND_SYSTEM`] in
//!   `appointmentType`) differs from the slot's is refused: 422
//!   `business-rule` at `Appointment.appointmentType` (a follow-up patient
//!   in a new-patient slot takes a new patient's place).

use serde_json::Value;
use wardline_core::{ProposedWrite, RuleTx, WriteRule};
use wardline_fhir::FhirError;

use super::{HOLDING, Kind};

/// The rule (see the module documentation).
pub struct SlotRule;

/// The slots `appt` holds: (index in `slot`, Slot id); none unless its
/// status holds them.
pub fn held_slots(appt: &Value) -> Vec<(usize, String)> {
    if !HOLDING.contains(&appt["status"].as_str().unwrap_or_default()) {
        return vec![];
    }
    appt["slot"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(n, r)| Some((n, crate::fhir::reference_id(r, "Slot")?.to_owned())))
        .collect()
}

impl WriteRule for SlotRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Appointment"
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        let before: Vec<String> = w
            .current
            .map(held_slots)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        let kind_changed = w
            .current
            .is_some_and(|c| Kind::of(c) != Kind::of(w.resource));
        let wanted: Vec<(usize, String)> = held_slots(w.resource)
            .into_iter()
            .filter(|(_, s)| kind_changed || !before.contains(s))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = wanted.iter().map(|(_, s)| format!("Slot/{s}")).collect();
        tx.lock(&keys)?;
        for (n, id) in wanted {
            let at = format!("Appointment.slot[{n}]");
            let Some(slot) = tx.get("Slot", &id)? else {
                return Err(
                    FhirError::new(422, "not-found", format!("there is no Slot/{id}")).at(at),
                );
            };
            let status = slot["status"].as_str().unwrap_or("unknown");
            if matches!(status, "entered-in-error" | "busy-unavailable") {
                return Err(FhirError::new(
                    422,
                    "business-rule",
                    format!("Slot/{id} is {status}: nothing may be booked into it"),
                )
                .at(at));
            }
            if let (Some(want), Some(has)) = (Kind::of(w.resource), Kind::of(&slot))
                && want != has
            {
                return Err(FhirError::new(
                    422,
                    "business-rule",
                    format!(
                        "Slot/{id} is a {} slot; this is a {} appointment",
                        has.label().to_lowercase(),
                        want.label().to_lowercase()
                    ),
                )
                .at("Appointment.appointmentType"));
            }
            let holder = tx
                .find(
                    "Appointment",
                    &format!("slot=Slot/{id}&status={}", HOLDING.join(",")),
                    20,
                )?
                .into_iter()
                .find(|a| a["id"].as_str() != Some(w.id));
            if let Some(h) = holder {
                return Err(FhirError::new(
                    422,
                    "duplicate",
                    format!(
                        "Slot/{id} is already booked (Appointment/{}): one appointment per slot",
                        h["id"].as_str().unwrap_or("?")
                    ),
                )
                .at(at));
            }
        }
        Ok(())
    }
}

/// A slot is `busy` while an appointment holds it and `free` when none
/// does — on every channel: a core `WriteHook` on `Appointment` (registered
/// by [`crate::with_rules`]), so a booking on the pages, a REST write and
/// an HL7 SIU message all keep the slots true, in the same transaction. A
/// slot closed by hand (`busy-unavailable`, `entered-in-error`) is left
/// as it is. A hook never refuses.
pub struct SlotStatus;

impl wardline_core::WriteHook for SlotStatus {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Appointment"
    }

    fn before_commit(
        &self,
        tx: &mut wardline_core::Tx<'_>,
        changes: &[wardline_core::Change],
    ) -> Result<(), FhirError> {
        let mut touched: Vec<String> = Vec::new();
        for c in changes {
            for side in [&c.before, &c.after] {
                let Some(v) = side
                    .as_deref()
                    .and_then(|j| serde_json::from_str::<Value>(j).ok())
                else {
                    continue;
                };
                for r in v["slot"].as_array().into_iter().flatten() {
                    if let Some(id) = crate::fhir::reference_id(r, "Slot")
                        && !touched.iter().any(|t| t == id)
                    {
                        touched.push(id.to_owned());
                    }
                }
            }
        }
        for id in touched {
            tx.lock(&[format!("Slot/{id}")])?;
            let Some(mut slot) = tx.get("Slot", &id)? else {
                continue;
            };
            let held = !tx
                .find(
                    "Appointment",
                    &format!("slot=Slot/{id}&status={}&_count=1", HOLDING.join(",")),
                )?
                .is_empty();
            let want = if held { "busy" } else { "free" };
            if matches!(slot["status"].as_str(), Some("free" | "busy")) && slot["status"] != want {
                slot["status"] = serde_json::json!(want);
                tx.save(slot)?;
            }
        }
        Ok(())
    }
}
