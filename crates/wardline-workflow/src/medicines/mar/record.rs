//! Recording a dose given or not given (see the [module documentation](super)
//! for the rules). [`give_in`] and [`omit_in`] are the rules over a
//! caller's transaction; [`give`] and [`omit`] the entries for people and
//! REST, one audited transaction each.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Op, Tx};

use super::schedule::{self, Timeliness};
use super::{
    PERFORM_FUNCTION_SYSTEM, administrations_of, amount_text, dose_range, instant_text,
    omission_display, prescribed_dose, slot_id, slot_lock, slot_of, stored, witness_key,
};
use crate::medicines::formulary::Entry;
use crate::medicines::{
    BATCH_EXT, DOSE_SLOT_SYSTEM, Kind, MedicinesError, OMISSION_SYSTEM, administrable, kind,
};

/// A dose given.
#[derive(Debug, Clone, Default)]
pub struct Give {
    /// The prescription (`MedicationRequest` id).
    pub request: String,
    /// The scheduled time of the dose (regular, variable-dose with times,
    /// once only); `None` for an as-required dose or an infusion.
    pub slot: Option<OffsetDateTime>,
    /// The dose given, in the prescription's unit; `None` for the
    /// prescribed dose (a variable dose must say).
    pub dose: Option<f64>,
    /// The route, if not the prescribed one's text.
    pub route: Option<String>,
    pub site: Option<String>,
    pub batch: Option<String>,
    /// When it was given; `None` for now.
    pub given_at: Option<OffsetDateTime>,
    pub note: Option<String>,
}

/// A dose not given.
#[derive(Debug, Clone)]
pub struct Omit {
    pub request: String,
    pub slot: OffsetDateTime,
    /// A code of [`super::OMISSION_REASONS`].
    pub reason: String,
    pub note: Option<String>,
}

fn invalid(m: impl Into<String>) -> MedicinesError {
    MedicinesError::Invalid(m.into())
}

fn status_words(status: &str) -> &str {
    match status {
        "stopped" => "discontinued",
        "draft" => "not yet signed or released",
        "on-hold" => "on hold",
        "completed" => "completed",
        "cancelled" => "cancelled",
        "entered-in-error" => "entered in error",
        other => other,
    }
}

/// The prescription, locked with `extra` keys and read in the transaction,
/// refused unless it may be given.
fn locked_request(tx: &mut Tx<'_>, id: &str, extra: Option<&str>) -> Result<Value, MedicinesError> {
    let mut keys = vec![format!("MedicationRequest/{id}")];
    keys.extend(extra.map(slot_lock));
    tx.lock(&keys)?;
    // Read through the transaction: checked against the caller and audited.
    let mr = tx
        .get("MedicationRequest", id)?
        .ok_or_else(|| MedicinesError::NotFound(format!("There is no prescription {id}.")))?;
    let status = mr["status"].as_str().unwrap_or("unknown");
    if !administrable(status) {
        return Err(MedicinesError::Conflict(format!(
            "This prescription is {}: only an active prescription may be given or omitted.",
            status_words(status)
        )));
    }
    Ok(mr)
}

fn entry_of(tx: &Tx<'_>, mr: &Value) -> Result<Option<Entry>, MedicinesError> {
    let Some(id) = crate::fhir::reference_id(&mr["medicationReference"], "Medication") else {
        return Ok(None);
    };
    Ok(stored(tx, "Medication", id)?.and_then(|m| Entry::from_medication(&m)))
}

fn medicine_name(mr: &Value, entry: Option<&Entry>) -> String {
    entry
        .map(|e| e.name().to_owned())
        .or_else(|| {
            mr["medicationReference"]["display"]
                .as_str()
                .map(str::to_owned)
        })
        .or_else(|| crate::fhir::concept_text(&mr["medicationCodeableConcept"]))
        .unwrap_or_else(|| "this medicine".to_owned())
}

/// The person acting: their `Practitioner/…` reference with a display.
fn person(tx: &Tx<'_>, access: &dyn Access) -> Result<Value, MedicinesError> {
    let who = access
        .agent()
        .who
        .clone()
        .filter(|w| w.starts_with("Practitioner/"))
        .ok_or_else(|| {
            MedicinesError::Forbidden(
            "A dose is recorded by a member of staff on record; this sign-in is not linked to one."
                .to_owned(),
        )
        })?;
    let display = crate::fhir::reference_id(&json!({"reference": who}), "Practitioner")
        .and_then(|id| stored(tx, "Practitioner", id).ok().flatten())
        .and_then(|p| {
            let n = &p["name"][0];
            let given = n["given"][0].as_str().unwrap_or_default();
            let family = n["family"].as_str()?;
            Some(format!("{given} {family}").trim().to_owned())
        })
        .unwrap_or_else(|| access.agent().name.clone());
    Ok(json!({"reference": who, "display": display}))
}

/// Checks a scheduled slot: the prescription's, due, not yet recorded.
fn check_slot(
    tx: &Tx<'_>,
    mr: &Value,
    id: &str,
    at: OffsetDateTime,
    when: OffsetDateTime,
) -> Result<String, MedicinesError> {
    let zone = tx.time_zone();
    let slots = schedule::slots(
        mr,
        zone,
        at - Duration::seconds(1),
        at + Duration::seconds(1),
    );
    if !slots.iter().any(|s| s.at == at) {
        return Err(invalid(format!(
            "No dose of this prescription is due at {}: choose one of its dose times.",
            schedule::local_text(zone, at)
        )));
    }
    if schedule::timeliness(at, when, false) == Timeliness::NotYetDue {
        return Err(MedicinesError::Conflict(format!(
            "The {} dose is not due yet: it may be given from {}.",
            schedule::local_text(zone, at),
            schedule::local_text(zone, at - schedule::EARLY)
        )));
    }
    let slot = slot_id(id, at);
    if let Some(done) = administrations_of(tx, id)?
        .iter()
        .find(|m| slot_of(m) == Some(slot.as_str()))
    {
        return Err(MedicinesError::Conflict(format!(
            "The {} dose is already recorded ({} as MedicationAdministration/{}): one record per dose.",
            schedule::local_text(zone, at),
            if done["status"] == "not-done" {
                "not given"
            } else {
                "given"
            },
            done["id"].as_str().unwrap_or("?")
        )));
    }
    Ok(slot)
}

/// The witness of a controlled drug: someone who may give medicines, and
/// not the giver.
fn check_witness(
    tx: &Tx<'_>,
    giver: &Value,
    witness: Option<&dyn Access>,
    entry: Option<&Entry>,
    name: &str,
) -> Result<Option<Value>, MedicinesError> {
    let needs = entry.is_some_and(Entry::needs_witness);
    let Some(w) = witness else {
        if needs {
            return Err(invalid(format!(
                "{name} is a controlled drug (schedule {}): a second member of staff who may give medicines must witness the dose.",
                entry
                    .and_then(|e| e.controlled_drug.as_deref())
                    .unwrap_or("2")
            )));
        }
        return Ok(None);
    };
    let wp =
        person(tx, w).map_err(|_| invalid("The witness must be a member of staff on record."))?;
    if wp["reference"] == giver["reference"] {
        return Err(invalid(
            "The witness must be a second person, not the one giving the dose.",
        ));
    }
    if w.check_type(Op::Create, Some("MedicationAdministration"))
        .is_err()
    {
        return Err(MedicinesError::Forbidden(format!(
            "{} may not give medicines, so may not witness a controlled drug.",
            wp["display"].as_str().unwrap_or("The witness")
        )));
    }
    Ok(Some(json!({
        "function": {"coding": [{"system": PERFORM_FUNCTION_SYSTEM, "code": "witness", "display": "Witness"}]},
        "actor": wp,
    })))
}

fn base(mr: &Value, id: &str, status: &str) -> Value {
    let mut ma = json!({
        "resourceType": "MedicationAdministration",
        "status": status,
        "medicationReference": mr["medicationReference"],
        "subject": mr["subject"],
        "request": {"reference": format!("MedicationRequest/{id}")},
    });
    if mr["medicationReference"].is_null() {
        ma.as_object_mut().map(|o| o.remove("medicationReference"));
        ma["medicationCodeableConcept"] = mr["medicationCodeableConcept"].clone();
    }
    if mr["encounter"].is_object() {
        ma["context"] = mr["encounter"].clone();
    }
    ma
}

/// Records a dose given, in the caller's transaction; `witness` is the
/// authenticated second person for a controlled drug. Returns the
/// `MedicationAdministration` id.
pub fn give_in(
    tx: &mut Tx<'_>,
    g: &Give,
    witness: Option<&dyn Access>,
    now: OffsetDateTime,
) -> Result<String, MedicinesError> {
    let id = g.request.trim();
    let when = g.given_at.unwrap_or(now);
    if when > now + Duration::minutes(1) {
        return Err(invalid("The time given cannot be in the future."));
    }
    let slot_key = g.slot.map(|s| slot_id(id, s));
    let mr = locked_request(tx, id, slot_key.as_deref())?;
    let zone = tx.time_zone().clone();
    let entry = entry_of(tx, &mr)?;
    let name = medicine_name(&mr, entry.as_ref());
    let giver = person(tx, tx.access())?;
    let k = kind(&mr);

    // The slot.
    let slot = match (k, g.slot) {
        (Kind::AsRequired, Some(_)) => {
            return Err(invalid("An as-required dose has no scheduled time."));
        }
        (Kind::AsRequired | Kind::Infusion, None) => None,
        (_, Some(at)) => Some(check_slot(tx, &mr, id, at, when)?),
        (_, None) => {
            return Err(invalid(
                "Say which scheduled dose this is (its time on the chart).",
            ));
        }
    };

    // The dose.
    let prescribed = prescribed_dose(&mr);
    let range = dose_range(&mr);
    let (amount, unit) = match (k, g.dose, &prescribed, &range) {
        (Kind::VariableDose, None, None, _) => {
            return Err(invalid(
                "Enter the dose given: this is a variable-dose prescription.",
            ));
        }
        (_, Some(d), _, _) if !(d.is_finite() && d > 0.0) => {
            return Err(invalid("The dose must be a number greater than zero."));
        }
        (_, Some(d), _, Some((lo, hi, unit))) => {
            if lo.is_some_and(|l| d < l - 1e-9) || hi.is_some_and(|h| d > h + 1e-9) {
                return Err(invalid(format!(
                    "{} {unit} is outside the prescribed range of {} to {} {unit}.",
                    amount_text(d),
                    lo.map_or("—".to_owned(), amount_text),
                    hi.map_or("—".to_owned(), amount_text),
                )));
            }
            (Some(d), unit.clone())
        }
        (_, Some(d), Some((p, unit)), None) => {
            if (d - p).abs() > 1e-9 {
                return Err(invalid(format!(
                    "The prescribed dose is {} {unit}: a different dose needs the prescription changed.",
                    amount_text(*p)
                )));
            }
            (Some(d), unit.clone())
        }
        (_, Some(d), None, None) => (Some(d), String::new()),
        (_, None, Some((p, unit)), _) => (Some(*p), unit.clone()),
        (_, None, None, _) => (None, String::new()),
    };

    // As required: the minimum interval and the 24-hour maximum.
    if k == Kind::AsRequired {
        let amount = amount.ok_or_else(|| invalid("Enter the dose given."))?;
        if let Some(words) = super::prn_refusal(&*tx, &zone, &mr, None, when, amount, &unit)? {
            return Err(MedicinesError::Conflict(words));
        }
    }

    let witness = check_witness(tx, &giver, witness, entry.as_ref(), &name)?;
    if let Some(w) = witness
        .as_ref()
        .and_then(|w| w["actor"]["reference"].as_str())
    {
        // The witness signed in and was checked here: the one-dose rule may
        // let this controlled drug's dose through (see `rule`).
        tx.vouch(witness_key(id, w));
    }

    let mut ma = base(&mr, id, "completed");
    ma["effectiveDateTime"] = json!(instant_text(when));
    let mut performers = vec![json!({
        "function": {"coding": [{"system": PERFORM_FUNCTION_SYSTEM, "code": "performer", "display": "Performer"}]},
        "actor": giver,
    })];
    performers.extend(witness);
    ma["performer"] = json!(performers);
    if let Some(s) = &slot {
        ma["identifier"] = json!([{"system": DOSE_SLOT_SYSTEM, "value": s}]);
    }
    let mut dosage = json!({});
    if let Some(a) = amount {
        dosage["dose"] = json!({"value": a, "unit": unit});
    }
    let route = g
        .route
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| json!({"text": r}))
        .unwrap_or_else(|| mr["dosageInstruction"][0]["route"].clone());
    if route.is_object() {
        dosage["route"] = route;
    }
    if let Some(site) = g.site.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        dosage["site"] = json!({"text": site});
    }
    if let Some(rate) = mr["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"].as_object() {
        dosage["rateQuantity"] = json!(rate);
    }
    if dosage.as_object().is_some_and(|o| !o.is_empty()) {
        ma["dosage"] = dosage;
    }
    if let Some(b) = g.batch.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        ma["extension"] = json!([{"url": BATCH_EXT, "valueString": b}]);
    }
    let mut note = json!({"time": instant_text(now), "authorReference": {"reference": ma["performer"][0]["actor"]["reference"]}});
    if let Some(n) = g.note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        note["text"] = json!(n);
    } else {
        note["text"] = json!("Recorded");
    }
    ma["note"] = json!([note]);
    let saved = tx.save(ma)?;

    // A once-only prescription is completed by `rule::OnceOnlyDone` at
    // commit (the nurse may not write prescriptions; the system does).
    Ok(saved.id)
}

/// Records a dose not given, with its reason, in the caller's transaction.
pub fn omit_in(tx: &mut Tx<'_>, o: &Omit, now: OffsetDateTime) -> Result<String, MedicinesError> {
    let id = o.request.trim();
    let reason = o.reason.trim();
    let Some(display) = omission_display(reason) else {
        return Err(invalid("Choose why the dose was not given."));
    };
    let note = o.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if reason == "other" && note.is_none() {
        return Err(invalid("Say why the dose was not given."));
    }
    let slot_key = slot_id(id, o.slot);
    let mr = locked_request(tx, id, Some(&slot_key))?;
    if kind(&mr) == Kind::AsRequired {
        return Err(invalid(
            "An as-required medicine has no scheduled dose to omit.",
        ));
    }
    let giver = person(tx, tx.access())?;
    let slot = check_slot(tx, &mr, id, o.slot, now)?;
    let mut ma = base(&mr, id, "not-done");
    ma["identifier"] = json!([{"system": DOSE_SLOT_SYSTEM, "value": slot}]);
    let mut sr =
        json!({"coding": [{"system": OMISSION_SYSTEM, "code": reason, "display": display}]});
    if let Some(n) = note {
        sr["text"] = json!(n);
    }
    ma["statusReason"] = json!([sr]);
    ma["effectiveDateTime"] = json!(instant_text(o.slot));
    ma["performer"] = json!([{
        "function": {"coding": [{"system": PERFORM_FUNCTION_SYSTEM, "code": "performer", "display": "Performer"}]},
        "actor": giver,
    }]);
    ma["note"] = json!([{"time": instant_text(now), "authorReference": {"reference": giver["reference"]},
        "text": note.unwrap_or(display)}]);
    Ok(tx.save(ma)?.id)
}

/// [`give_in`] as one audited transaction for `access`.
pub fn give(
    svc: &FhirService,
    access: &dyn Access,
    g: &Give,
    witness: Option<&dyn Access>,
    now: OffsetDateTime,
) -> Result<String, MedicinesError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "medicines-administer", "C");
    let id = give_in(&mut tx, g, witness, now)?;
    tx.commit()?;
    Ok(id)
}

/// [`omit_in`] as one audited transaction for `access`.
pub fn omit(
    svc: &FhirService,
    access: &dyn Access,
    o: &Omit,
    now: OffsetDateTime,
) -> Result<String, MedicinesError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "medicines-omit", "C");
    let id = omit_in(&mut tx, o, now)?;
    tx.commit()?;
    Ok(id)
}
