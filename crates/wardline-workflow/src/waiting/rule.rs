//! The waiting-list entry's state rules on every channel
//! ([`EntryRule`], registered in `with_rules`): the module's `_in`
//! functions keep them by construction; this holds a plain REST write (or
//! any other channel) to the same rules.

use serde_json::Value;
use wardline_core::{ProposedWrite, RuleTx, WriteRule};
use wardline_fhir::FhirError;

use super::{
    BOOKED_EXT, OUTCOME_EXT, PRIORITY_EXT, Priority, SUSPENSION_EXT, State, booked, ext, list_of,
    state_of,
};

/// Refuses, with the element named, a write that would:
/// * move an entry to another list (`ServiceRequest.category`): a new
///   entry is added instead, so each list's dates stay true;
/// * change an entry that has left its list (completed or removed:
///   `ServiceRequest.status`): leaving is final, its pathway event recorded;
/// * take an entry off its list without the reason (`ServiceRequest.extension`);
/// * suspend without a reason (`ServiceRequest.extension`);
/// * book into an appointment that does not exist or is another patient's;
/// * carry a priority that is not one of the list's.
pub struct EntryRule;

fn refuse(at: &str, m: impl Into<String>) -> FhirError {
    FhirError::new(422, "business-rule", m.into()).at(at)
}

impl WriteRule for EntryRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "ServiceRequest"
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        let new = w.resource;
        let was = w.current.and_then(|c| list_of(c).map(|l| (c, l)));
        let Some(list) = list_of(new) else {
            if let Some((_, l)) = was {
                return Err(refuse(
                    "ServiceRequest.category",
                    format!(
                        "ServiceRequest/{} is an entry on the {} list: it stays one (close or remove it instead)",
                        w.id,
                        l.label().to_lowercase()
                    ),
                ));
            }
            return Ok(());
        };
        if let Some((current, l)) = was {
            if l != list {
                return Err(refuse(
                    "ServiceRequest.category",
                    format!(
                        "an entry stays on its list ({}): add a new entry to the {} list instead",
                        l.label().to_lowercase(),
                        list.label().to_lowercase()
                    ),
                ));
            }
            if matches!(state_of(current), State::Completed | State::Removed)
                && (new["status"] != current["status"] || booked(new) != booked(current))
            {
                return Err(refuse(
                    "ServiceRequest.status",
                    format!(
                        "the entry has left the list ({}): it cannot change again",
                        current["status"].as_str().unwrap_or("closed")
                    ),
                ));
            }
        }
        let leaving = matches!(state_of(new), State::Completed | State::Removed)
            && !w.current.is_some_and(|c| c["status"] == new["status"]);
        if leaving
            && ext(new, OUTCOME_EXT)
                .and_then(|o| o["valueString"].as_str())
                .is_none_or(|r| r.trim().is_empty())
        {
            return Err(refuse(
                "ServiceRequest.extension",
                format!("an entry leaves its list with the reason ({OUTCOME_EXT})"),
            ));
        }
        if new["status"] == "on-hold" {
            let reason = ext(new, SUSPENSION_EXT)
                .and_then(|s| s["extension"].as_array())
                .and_then(|subs| subs.iter().find(|x| x["url"] == "reason"))
                .and_then(|r| r["valueString"].as_str())
                .is_some_and(|r| !r.trim().is_empty());
            if !reason {
                return Err(refuse(
                    "ServiceRequest.extension",
                    format!("a suspended entry gives its reason ({SUSPENSION_EXT}, reason)"),
                ));
            }
        }
        if let Some(p) = ext(new, PRIORITY_EXT) {
            let code = p["valueCoding"]["code"].as_str().unwrap_or_default();
            if Priority::parse(code).is_none_or(|p| p.admitted() != list.admitted()) {
                return Err(refuse(
                    "ServiceRequest.extension",
                    format!(
                        "'{code}' is not a priority of the {} list",
                        list.label().to_lowercase()
                    ),
                ));
            }
        }
        if let Some(appt) = booked(new)
            && w.current.and_then(booked) != Some(appt)
        {
            check_booking(tx, new, appt)?;
        }
        Ok(())
    }
}

fn check_booking(tx: &mut RuleTx<'_, '_>, entry: &Value, appt: &str) -> Result<(), FhirError> {
    let at = "ServiceRequest.extension";
    let Some(a) = tx.get("Appointment", appt)? else {
        return Err(refuse(
            at,
            format!(
                "the entry is booked into Appointment/{appt}, which does not exist ({BOOKED_EXT})"
            ),
        ));
    };
    let patient = crate::fhir::reference_id(&entry["subject"], "Patient");
    let other = a["participant"].as_array().is_some_and(|ps| {
        ps.iter().any(|p| {
            crate::fhir::reference_id(&p["actor"], "Patient").is_some_and(|id| Some(id) != patient)
        })
    });
    if other {
        return Err(refuse(
            at,
            format!("Appointment/{appt} is another patient's"),
        ));
    }
    Ok(())
}
