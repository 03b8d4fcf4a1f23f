//! The medication administration record (MAR) and the ward drug round.
//!
//! # The model
//!
//! A dose given or not given is a `MedicationAdministration` (see the
//! [medicines model](super)): `status` `completed` (given) or `not-done`
//! (omitted: `statusReason[0]` a code of [`OMISSION_SYSTEM`] with the
//! nurse's words as its `text`), `request` → the prescription,
//! `medicationReference` and `subject` copied from it, `context` its
//! encounter, `effectiveDateTime` when it was given (for an omission, the
//! dose's scheduled time), `performer[0]` the nurse and, for a controlled
//! drug, a `performer` with `function` `witness`
//! (`http://terminology.hl7.org/CodeSystem/med-admin-perform-function`),
//! `dosage` (`dose`, `route`, `site`), the batch in [`BATCH_EXT`], and
//! `note[0]` (`time` the moment it was recorded, `text` a comment). A
//! scheduled dose (regular, variable-dose with times, once only) carries
//! the identifier [`DOSE_SLOT_SYSTEM`] `{prescription id}/{instant UTC}`
//! ([`slot_id`]); an as-required dose or an infusion has none.
//!
//! # The rules (each in one place)
//!
//! * **When a dose is due** — [`schedule`] (pure: slots from the timing in
//!   the trust's zone, the grace, the as-required limits).
//! * **Recording** — [`record::give_in`] / [`record::omit_in`] (entries
//!   [`record::give`], [`record::omit`], audit subtypes
//!   `medicines-administer`, `medicines-omit`): in one transaction they lock
//!   the prescription (and the slot), read it and its administrations in the
//!   transaction, and refuse a prescription that is not `active`
//!   ([`super::administrable`]); a slot that is not the prescription's, not
//!   yet due, or already recorded; a dose other than the prescribed one (a
//!   variable dose outside its `doseRange`); a controlled drug
//!   (`Entry::needs_witness`) without a witness who holds
//!   AdministerMedication and is not the giver; an as-required dose sooner
//!   than its minimum interval or past its 24-hour maximum (saying when
//!   the next dose may be given); an omission without one of
//!   [`OMISSION_REASONS`]. A once-only prescription becomes `completed`
//!   when its dose is given ([`rule::OnceOnlyDone`], a write hook, so on
//!   every channel and as the system's consequence of the dose).
//! * **One record per dose, on every channel** — [`rule::DoseSlotRule`], a
//!   core write rule (registered by `with_rules`): no second
//!   MedicationAdministration with a dose-slot identifier another current
//!   record (not `entered-in-error`) holds, and none for a prescription that
//!   is not `active`, whoever writes it (the drug round, REST, an import);
//!   and with it the as-required limits ([`prn_refusal`], the one reading
//!   of them) and the controlled-drug witness, whom only a channel that
//!   authenticated them can vouch for (see *Witnesses*).
//! * **Late time-critical doses** — [`escalate::escalate_late_in`]: a
//!   time-critical medicine's dose not recorded by its time plus the grace
//!   raises one `Task` (`late-time-critical-dose`) for the ward's nurse in
//!   charge; run by the `serve` job and `wardline medicines escalate`.
//! * **What the round and the chart show** — [`round::drug_round`] (a
//!   ward) and [`round::patient_mar`] (a patient), read with the caller's
//!   access.
//!
//! # Witnesses
//!
//! The witness of a controlled drug proves who they are on the same form
//! as the giver: the web layer checks their username and password against
//! the directory and builds their `Access` (the same policy as any
//! request of theirs), which [`record::give_in`] asks whether they may give
//! medicines (the policy's AdministerMedication) and compares with the
//! giver. A channel that cannot authenticate a second person cannot record
//! a controlled drug.

pub mod escalate;
pub mod record;
pub mod round;
pub mod rule;
pub mod schedule;

use serde_json::Value;
use time::OffsetDateTime;
use wardline_fhir::FhirError;
use wardline_store::Reader;

use super::{DOSE_SLOT_SYSTEM, OMISSION_SYSTEM};

pub use escalate::{LATE_DOSE_CODE, escalate_late, escalate_late_in};
pub use record::{Give, Omit, give, give_in, omit, omit_in};
pub use round::{DrugRound, PatientMar, drug_round, patient_mar};
pub use rule::{DoseSlotRule, OnceOnlyDone};

/// `performer.function` codes (FHIR's med-admin-perform-function).
pub const PERFORM_FUNCTION_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/med-admin-perform-function";

/// The reasons a dose was not given ([`OMISSION_SYSTEM`]): the trust's
/// list, local codes, after the omission codes printed on UK inpatient drug
/// charts (the numbered key most NHS charts carry: refused, nil by mouth,
/// away from the ward, unavailable, unable to administer, withheld on
/// clinical grounds, self-administering). A trust with another list
/// replaces this one; `other` needs the nurse's words.
pub const OMISSION_REASONS: [(&str, &str); 8] = [
    ("refused", "Patient refused"),
    ("nil-by-mouth", "Nil by mouth"),
    ("away", "Patient away from ward"),
    ("unavailable", "Medicine unavailable"),
    (
        "unable",
        "Unable to administer (no access, vomiting, unable to swallow)",
    ),
    (
        "withheld",
        "Clinical reason: withheld on the prescriber's instruction",
    ),
    ("self-administering", "Patient self-administering"),
    ("other", "Other (say why)"),
];

/// The display of an omission code, if it is one.
pub fn omission_display(code: &str) -> Option<&'static str> {
    OMISSION_REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, d)| *d)
}

/// An instant as the identifier writes it: `2026-01-10T08:00:00Z`.
pub fn instant_text(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The identifier value of a scheduled dose: `{prescription id}/{instant UTC}`.
pub fn slot_id(request: &str, at: OffsetDateTime) -> String {
    format!("{request}/{}", instant_text(at))
}

/// The lock every writer of a dose slot takes.
pub(crate) fn slot_lock(slot: &str) -> String {
    format!("dose-slot|{slot}")
}

/// The dose-slot identifier of an administration, if it has one.
pub fn slot_of(ma: &Value) -> Option<&str> {
    ma["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == DOSE_SLOT_SYSTEM)?["value"]
        .as_str()
}

/// The omission code of a `not-done` administration.
pub fn omission_of(ma: &Value) -> Option<&str> {
    ma["statusReason"]
        .as_array()?
        .iter()
        .flat_map(|r| r["coding"].as_array().into_iter().flatten())
        .find(|c| c["system"] == OMISSION_SYSTEM)?["code"]
        .as_str()
}

/// Every current resource of `t` matching `pairs`, read past any access
/// (the workflows' one paged search, [`crate::fhir::search_all`]).
pub(crate) use crate::fhir::search_all;

/// A current resource read past any access (for deciding a rule).
pub(crate) fn stored<Rd: Reader + ?Sized>(
    r: &Rd,
    t: &str,
    id: &str,
) -> Result<Option<Value>, FhirError> {
    match r.read(t, id)? {
        Some(s) if !s.deleted => serde_json::from_str(&s.json)
            .map(Some)
            .map_err(|e| FhirError::internal(format!("stored {t}/{id} is unreadable: {e}"))),
        _ => Ok(None),
    }
}

/// The administrations of a prescription that stand (not
/// `entered-in-error`), read past any access.
pub(crate) fn administrations_of<Rd: Reader + ?Sized>(
    r: &Rd,
    request: &str,
) -> Result<Vec<Value>, FhirError> {
    Ok(search_all(
        r,
        "MedicationAdministration",
        &[("request", format!("MedicationRequest/{request}"))],
    )?
    .into_iter()
    .filter(|m| m["status"] != "entered-in-error")
    .collect())
}

/// The prescribed dose (`doseQuantity`): value and unit.
pub fn prescribed_dose(mr: &Value) -> Option<(f64, String)> {
    let q = &mr["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"];
    Some((q["value"].as_f64()?, unit_of(q)))
}

/// A variable dose's range (`doseRange`): low, high, unit.
pub fn dose_range(mr: &Value) -> Option<(Option<f64>, Option<f64>, String)> {
    let r = &mr["dosageInstruction"][0]["doseAndRate"][0]["doseRange"];
    if !r.is_object() {
        return None;
    }
    let unit = if r["low"].is_object() {
        unit_of(&r["low"])
    } else {
        unit_of(&r["high"])
    };
    Some((
        r["low"]["value"].as_f64(),
        r["high"]["value"].as_f64(),
        unit,
    ))
}

pub(crate) fn unit_of(q: &Value) -> String {
    q["unit"]
        .as_str()
        .or_else(|| q["code"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A number as people write a dose: `1`, `0.5`, `2.25`.
pub fn amount_text(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// An as-required prescription's limits in its dose's unit: the minimum
/// interval ([`super::MIN_INTERVAL_EXT`]) and the maximum per 24 hours
/// (`maxDosePerPeriod`, its period scaled to 24 hours).
pub fn prn_limits(mr: &Value) -> schedule::PrnLimits {
    let d = &mr["dosageInstruction"][0];
    let interval = d["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == super::MIN_INTERVAL_EXT)
        .and_then(|e| duration_of(&e["valueDuration"]));
    let dose_unit = prescribed_dose(mr)
        .map(|(_, u)| u)
        .or_else(|| dose_range(mr).map(|(_, _, u)| u))
        .unwrap_or_default();
    let max_24h = (|| {
        let m = &d["maxDosePerPeriod"];
        let num = m["numerator"]["value"].as_f64()?;
        let per = duration_of(&m["denominator"]).unwrap_or(time::Duration::hours(24));
        if per <= time::Duration::ZERO {
            return None;
        }
        let num = schedule::convert(num, &unit_of(&m["numerator"]), &dose_unit)?;
        Some(num * (86_400.0 / per.as_seconds_f64()))
    })();
    schedule::PrnLimits { interval, max_24h }
}

/// What [`record::give_in`] vouches for ([`wardline_core::Tx::vouch`]) once
/// the witness of a controlled drug has signed in and been checked:
/// `witness|{prescription id}|{Practitioner/…}`. [`rule::DoseSlotRule`]
/// lets a controlled drug's dose through only with it.
pub(crate) fn witness_key(request: &str, witness: &str) -> String {
    format!("witness|{request}|{witness}")
}

/// The as-required rules for `amount` (in `unit`) given at `when`: the
/// minimum interval and the 24-hour maximum over the prescription's doses
/// given (read past any access, `except` the record being rewritten) of
/// the prescription `mr` (as stored, with its `id`).
/// The one reading of the limits: [`record::give_in`] and
/// [`rule::DoseSlotRule`] both ask it. `Ok(None)` lets the dose through;
/// `Ok(Some(words))` says why not and when the next dose may be given.
pub(crate) fn prn_refusal<Rd: Reader + ?Sized>(
    r: &Rd,
    zone: &wardline_fhir::datetime::LocalZone,
    mr: &Value,
    except: Option<&str>,
    when: OffsetDateTime,
    amount: f64,
    unit: &str,
) -> Result<Option<String>, FhirError> {
    let request = mr["id"].as_str().unwrap_or_default();
    let doses: Vec<(OffsetDateTime, f64)> = administrations_of(r, request)?
        .iter()
        .filter(|m| m["status"] == "completed" && except.is_none_or(|id| m["id"] != id))
        .filter_map(|m| {
            let t = schedule::instant_of(m["effectiveDateTime"].as_str()?, zone, false)?;
            let q = &m["dosage"]["dose"];
            let v = schedule::convert(q["value"].as_f64()?, &unit_of(q), unit)?;
            Some((t, v))
        })
        .collect();
    Ok(schedule::prn_check(&doses, when, amount, prn_limits(mr))
        .err()
        .map(|r| prn_refusal_text(zone, &r, unit)))
}

fn prn_refusal_text(
    zone: &wardline_fhir::datetime::LocalZone,
    r: &schedule::PrnRefusal,
    unit: &str,
) -> String {
    let next = |n: &Option<OffsetDateTime>| match n {
        Some(t) => format!(
            " The next dose may be given from {}.",
            schedule::local_text(zone, *t)
        ),
        None => " This dose is more than the 24-hour maximum on its own.".to_owned(),
    };
    match r {
        schedule::PrnRefusal::TooSoon { last, next: n } => format!(
            "Too soon: a dose was given at {}, within the minimum interval.{}",
            schedule::local_text(zone, *last),
            next(n)
        ),
        schedule::PrnRefusal::OverMax { given, next: n } => format!(
            "Over the 24-hour maximum: {} {unit} already given in the last 24 hours.{}",
            amount_text(*given),
            next(n)
        ),
    }
}

/// A FHIR Duration / Quantity of time (`h`, `min`, `d`, `wk`) as a duration.
pub(crate) fn duration_of(q: &Value) -> Option<time::Duration> {
    let v = q["value"].as_f64()?;
    let unit = q["code"].as_str().or_else(|| q["unit"].as_str())?;
    let secs = match unit {
        "s" => 1.0,
        "min" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "wk" => 604_800.0,
        _ => return None,
    };
    Some(time::Duration::seconds_f64(v * secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn the_slot_identifier_names_the_prescription_and_the_instant() {
        assert_eq!(
            slot_id("mr1", datetime!(2026-07-10 08:00 +01:00)),
            "mr1/2026-07-10T07:00:00Z"
        );
        let ma = json!({"identifier": [{"system": DOSE_SLOT_SYSTEM, "value": "mr1/x"}],
            "statusReason": [{"coding": [{"system": OMISSION_SYSTEM, "code": "refused"}]}]});
        assert_eq!(slot_of(&ma), Some("mr1/x"));
        assert_eq!(omission_of(&ma), Some("refused"));
        assert_eq!(omission_display("away"), Some("Patient away from ward"));
        assert_eq!(omission_display("bogus"), None);
    }

    #[test]
    fn prn_limits_are_read_in_the_doses_unit() {
        let mr = json!({"dosageInstruction": [{"asNeededBoolean": true,
            "extension": [{"url": crate::medicines::MIN_INTERVAL_EXT, "valueDuration": {"value": 4, "unit": "hours", "code": "h"}}],
            "doseAndRate": [{"doseQuantity": {"value": 500, "unit": "mg"}}],
            "maxDosePerPeriod": {"numerator": {"value": 4, "unit": "g"}, "denominator": {"value": 1, "code": "d"}}}]});
        let l = prn_limits(&mr);
        assert_eq!(l.interval, Some(time::Duration::hours(4)));
        assert_eq!(l.max_24h, Some(4000.0));
        assert_eq!(amount_text(0.5), "0.5");
        assert_eq!(amount_text(4000.0), "4000");
    }
}
