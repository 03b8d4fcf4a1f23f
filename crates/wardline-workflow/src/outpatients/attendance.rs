//! Arrival, the attendance outcome and did-not-attend.
//!
//! * **Arrival** ([`arrive_in`]): a `booked` appointment becomes `arrived`
//!   and an attendance `Encounter` opens (class `AMB`, `in-progress`,
//!   `appointment` the Appointment, `basedOn` the entry, `period.start` the
//!   arrival, the consultant and the clinic) — the encounter the clinic
//!   letters are written for.
//! * **The outcome** ([`outcome_in`]) of an arrived appointment: it becomes
//!   `fulfilled`, the encounter `finished`, [`super::OUTCOME_EXT`] records
//!   what was decided, by whom and when, and the waiting list and the RTT
//!   pathway follow:
//!   - *seen and discharged*: the entry closed; RTT 30 (first definitive
//!     treatment given in clinic) or 34 (decision not to treat), as the
//!     clinician says, 34 when they do not ([`Outcome::rtt_status`]);
//!   - *follow-up*: the entry closed and a new `outpatient-follow-up`
//!     entry on the same pathway, due by the date given (partial booking:
//!     booked later from the follow-up list); RTT 20 (clock still running);
//!   - *added to the admitted list*: the entry closed and an `inpatient` or
//!     `day-case` entry with the intended procedure and priority P1–P4;
//!     RTT 20.
//! * **Did not attend** ([`did_not_attend_in`]): a `booked` appointment
//!   becomes `noshow`. On a **new** (first) appointment the trust's access
//!   policy discharges the patient back to their GP: RTT 33, the entry
//!   closed, a DNA attendance `Encounter` (`finished`, marked
//!   [`crate::documents::letters::DNA_EXT`]) and a clinic letter to the GP
//!   drafted from it ([`did_not_attend`]) for the consultant to sign, which
//!   sends it — **unless a clinician overrides the policy with a reason**,
//!   recorded on the outcome; the entry then goes back to waiting. A
//!   follow-up DNA puts the entry back on the list.
//!
//! Audit subtypes `outpatients-arrive`, `outpatients-outcome`.

use serde::Serialize;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};
use wardline_core::{Access, FhirService, Tx};

use super::booking::{Entry, booked_in, entry_in, entry_of};
use super::{Kind, OUTCOME_EXT, OutpatientsError, begin, set_ext};
use crate::fhir::reference_id;
use crate::rtt::{self, Status};
use crate::waiting::{self, List, NewEntry, Priority};

fn fhir_time(now: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(now)
}

fn participant(appt: &Value, t: &str) -> Option<String> {
    appt["participant"]
        .as_array()?
        .iter()
        .find_map(|p| reference_id(&p["actor"], t))
        .map(str::to_owned)
}

// ---------------------------------------------------------------- arrival

/// Checks the patient in, now; returns the attendance Encounter's id.
pub fn arrive(
    svc: &FhirService,
    access: &dyn Access,
    appointment: &str,
    now: OffsetDateTime,
) -> Result<String, OutpatientsError> {
    let mut tx = begin(svc, access, "outpatients-arrive", "U")?;
    let id = arrive_in(&mut tx, appointment, now)?;
    tx.commit()?;
    Ok(id)
}

fn encounter_for(appt: &Value, id: &str, status: &str, start: String) -> Value {
    let mut enc = json!({
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB", "display": "ambulatory"},
        "subject": {"reference": format!("Patient/{}", participant(appt, "Patient").unwrap_or_default())},
        "appointment": [{"reference": format!("Appointment/{id}")}],
        "period": {"start": start},
    });
    if let Some(st) = appt["serviceType"].as_array().and_then(|s| s.first()) {
        enc["serviceType"] = st.clone();
    }
    if let Some(e) = entry_of(appt) {
        enc["basedOn"] = json!([{"reference": format!("ServiceRequest/{e}")}]);
    }
    if let Some(c) = participant(appt, "Practitioner") {
        enc["participant"] = json!([{"individual": {"reference": format!("Practitioner/{c}")}}]);
    }
    if let Some(l) = participant(appt, "Location") {
        enc["location"] = json!([{"location": {"reference": format!("Location/{l}")}}]);
    }
    enc
}

/// The rule of arrival, in `tx` (see the module documentation).
pub fn arrive_in(
    tx: &mut Tx<'_>,
    appointment: &str,
    now: OffsetDateTime,
) -> Result<String, OutpatientsError> {
    let mut a = booked_in(tx, appointment)?;
    if a["status"] != "booked" {
        return Err(OutpatientsError::Conflict(format!(
            "This appointment is {}: only a booked patient is checked in.",
            a["status"].as_str().unwrap_or("of unknown status")
        )));
    }
    a["status"] = json!("arrived");
    let enc = encounter_for(&a, appointment, "in-progress", fhir_time(now));
    tx.save(a)?;
    Ok(tx.save(enc)?.id)
}

/// The attendance Encounter of an appointment, if one was opened.
pub fn attendance_in(
    tx: &mut Tx<'_>,
    appointment: &str,
) -> Result<Option<Value>, OutpatientsError> {
    Ok(tx
        .find(
            "Encounter",
            &format!("appointment=Appointment/{appointment}"),
        )?
        .into_iter()
        .next())
}

// ---------------------------------------------------------------- outcome

/// What the clinician decided at the attendance.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Seen and discharged; `treated` when first definitive treatment was
    /// given in clinic (RTT 30), otherwise a decision not to treat (34);
    /// `None` takes the default (34).
    Discharged { treated: Option<bool> },
    /// A follow-up appointment, due by `due` (booked later from the list).
    FollowUp { due: Date },
    /// Added to the admitted (inpatient or day-case) waiting list.
    Admitted {
        day_case: bool,
        procedure: (String, String),
        priority: Priority,
    },
}

impl Outcome {
    /// The RTT status the outcome records.
    pub fn rtt_status(&self) -> Status {
        match self {
            Outcome::Discharged {
                treated: Some(true),
            } => Status::S30,
            Outcome::Discharged { .. } => Status::S34,
            Outcome::FollowUp { .. } | Outcome::Admitted { .. } => Status::S20,
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Discharged { .. } => "discharged",
            Outcome::FollowUp { .. } => "follow-up",
            Outcome::Admitted { .. } => "admitted-list",
        }
    }
    pub fn label(&self) -> String {
        match self {
            Outcome::Discharged { .. } => "Seen and discharged".into(),
            Outcome::FollowUp { due } => {
                format!("Follow-up due by {}", super::clinics::date_text(*due))
            }
            Outcome::Admitted {
                day_case,
                procedure,
                priority,
            } => format!(
                "Added to the {} list: {} ({})",
                if *day_case { "day-case" } else { "inpatient" },
                procedure.1,
                priority.label()
            ),
        }
    }
}

/// What recording an outcome made: the new waiting-list entry, if any.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recorded {
    pub new_entry: Option<String>,
}

/// Records the attendance outcome, as the person signed in.
pub fn outcome(
    svc: &FhirService,
    access: &dyn Access,
    appointment: &str,
    what: &Outcome,
    now: OffsetDateTime,
) -> Result<Recorded, OutpatientsError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "outpatients-outcome", "U")?;
    let r = outcome_in(&mut tx, appointment, what, who.as_deref(), now)?;
    tx.commit()?;
    Ok(r)
}

fn set_outcome(
    a: &mut Value,
    code: &str,
    label: &str,
    rtt: Option<Status>,
    by: Option<&str>,
    reason: Option<&str>,
    now: OffsetDateTime,
) {
    let mut subs = vec![
        json!({"url": "outcome", "valueCode": code}),
        json!({"url": "label", "valueString": label}),
        json!({"url": "at", "valueDateTime": fhir_time(now)}),
    ];
    if let Some(s) = rtt {
        subs.push(json!({"url": "rttStatus", "valueCode": s.code()}));
    }
    if let Some(b) = by {
        subs.push(json!({"url": "by", "valueReference": {"reference": b}}));
    }
    if let Some(r) = reason {
        subs.push(json!({"url": "reason", "valueString": r}));
    }
    set_ext(a, OUTCOME_EXT, "extension", json!(subs));
}

fn source(appointment: &str) -> String {
    format!("Appointment/{appointment}")
}

/// The rule of the attendance outcome, in `tx` (see the module documentation).
pub fn outcome_in(
    tx: &mut Tx<'_>,
    appointment: &str,
    what: &Outcome,
    by: Option<&str>,
    now: OffsetDateTime,
) -> Result<Recorded, OutpatientsError> {
    let mut a = booked_in(tx, appointment)?;
    if a["status"] != "arrived" {
        return Err(OutpatientsError::Conflict(format!(
            "This appointment is {}: an outcome is recorded once the patient has arrived.",
            a["status"].as_str().unwrap_or("of unknown status")
        )));
    }
    let entry_id = entry_of(&a).map(str::to_owned);
    let entry: Option<Entry> = match &entry_id {
        Some(e) => Some(entry_in(tx, e)?.1),
        None => None,
    };
    let today = now.date();
    let status = what.rtt_status();
    let mut out = Recorded::default();
    if let Some(e) = &entry {
        let specialty = e.specialty.clone().unwrap_or_default();
        let consultant = e.consultant.clone();
        match what {
            Outcome::Discharged { .. } => {
                waiting::close_in(tx, &e.id, "Seen in clinic and discharged")?;
            }
            Outcome::FollowUp { due } => {
                if *due < today {
                    return Err(OutpatientsError::invalid(
                        "due",
                        "The follow-up must be due on or after today.",
                    ));
                }
                waiting::close_in(tx, &e.id, "Seen in clinic: follow-up")?;
                let note = format!("Follow-up due by {}", super::clinics::date_text(*due));
                out.new_entry = Some(waiting::add_in(
                    tx,
                    &NewEntry {
                        patient: &e.patient,
                        list: List::OutpatientFollowUp,
                        pathway: e.pathway.as_deref(),
                        specialty: &specialty,
                        consultant: consultant.as_deref(),
                        procedure: None,
                        priority: Priority::Routine,
                        decided: today,
                        note: Some(&note),
                    },
                )?);
            }
            Outcome::Admitted {
                day_case,
                procedure,
                priority,
            } => {
                if procedure.0.trim().is_empty() {
                    return Err(OutpatientsError::invalid(
                        "procedure",
                        "Enter the intended procedure.",
                    ));
                }
                waiting::close_in(tx, &e.id, "Seen in clinic: added to the admitted list")?;
                out.new_entry = Some(waiting::add_in(
                    tx,
                    &NewEntry {
                        patient: &e.patient,
                        list: if *day_case {
                            List::DayCase
                        } else {
                            List::Inpatient
                        },
                        pathway: e.pathway.as_deref(),
                        specialty: &specialty,
                        consultant: consultant.as_deref(),
                        procedure: Some((procedure.0.trim(), procedure.1.trim())),
                        priority: *priority,
                        decided: today,
                        note: None,
                    },
                )?);
            }
        }
        if let Some(p) = &e.pathway {
            rtt::record_in(tx, p, status, today, &source(appointment))?;
        }
    }
    a["status"] = json!("fulfilled");
    set_outcome(
        &mut a,
        what.code(),
        &what.label(),
        Some(status),
        by,
        None,
        now,
    );
    tx.save(a)?;
    if let Some(mut enc) = attendance_in(tx, appointment)? {
        enc["status"] = json!("finished");
        enc["period"]["end"] = json!(fhir_time(now));
        tx.save(enc)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------- did not attend

/// What recording a DNA did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dna {
    /// Discharged back to the GP under the access policy.
    pub discharged: bool,
    /// The DNA attendance Encounter (a discharge only).
    pub encounter: Option<String>,
    /// The draft letter to the GP (a discharge only).
    pub letter: Option<String>,
}

/// Records that the patient did not attend, as the person signed in; on a
/// discharge, drafts the letter to the GP (see the module documentation).
/// `override_reason`: a clinician keeps the patient on the list.
pub fn did_not_attend(
    svc: &FhirService,
    access: &dyn Access,
    appointment: &str,
    override_reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<Dna, OutpatientsError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "outpatients-outcome", "U")?;
    let mut dna = did_not_attend_in(&mut tx, appointment, override_reason, who.as_deref(), now)?;
    tx.commit()?;
    if let Some(enc) = &dna.encounter {
        use crate::documents::letters::LETTER;
        let letter = LETTER
            .start(svc, access, enc, now)
            .map_err(|e| OutpatientsError::Conflict(e.message().to_owned()))?;
        LETTER
            .save_draft(
                svc,
                access,
                &letter,
                &[
                    (
                        "clinical-summary".to_owned(),
                        "Your patient did not attend their first outpatient appointment and did not tell us beforehand.".to_owned(),
                    ),
                    (
                        "plan".to_owned(),
                        "Under the trust's access policy we have discharged them back to your care. Please refer again if you still think they need to be seen.".to_owned(),
                    ),
                ],
                now,
            )
            .map_err(|e| OutpatientsError::Conflict(e.message().to_owned()))?;
        dna.letter = Some(letter);
    }
    Ok(dna)
}

/// The rule of did-not-attend, in `tx` (see the module documentation).
pub fn did_not_attend_in(
    tx: &mut Tx<'_>,
    appointment: &str,
    override_reason: Option<&str>,
    by: Option<&str>,
    now: OffsetDateTime,
) -> Result<Dna, OutpatientsError> {
    let override_reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
    let mut a = booked_in(tx, appointment)?;
    if a["status"] != "booked" {
        return Err(OutpatientsError::Conflict(format!(
            "This appointment is {}: only a booked appointment is marked did not attend.",
            a["status"].as_str().unwrap_or("of unknown status")
        )));
    }
    if a["start"]
        .as_str()
        .is_some_and(|s| s > fhir_time(now).as_str())
    {
        return Err(OutpatientsError::Conflict(
            "This appointment has not started yet: a patient is marked did not attend once it is due.".into(),
        ));
    }
    let first = Kind::of(&a) == Some(Kind::New);
    let entry = match entry_of(&a).map(str::to_owned) {
        Some(e) => Some(entry_in(tx, &e)?.1),
        None => None,
    };
    let discharge = first && override_reason.is_none();
    let mut out = Dna {
        discharged: discharge && entry.is_some(),
        ..Dna::default()
    };
    a["status"] = json!("noshow");
    let (label, rtt_status) = if discharge {
        (
            "Did not attend: discharged to the GP".to_owned(),
            Some(Status::S33),
        )
    } else if first {
        (
            "Did not attend: kept on the waiting list (clinical override)".to_owned(),
            None,
        )
    } else {
        (
            "Did not attend: back on the follow-up list".to_owned(),
            None,
        )
    };
    set_outcome(
        &mut a,
        "did-not-attend",
        &label,
        rtt_status,
        by,
        override_reason,
        now,
    );
    if let Some(e) = &entry {
        if out.discharged {
            if let Some(p) = &e.pathway {
                rtt::record_in(tx, p, Status::S33, now.date(), &source(appointment))?;
            }
            waiting::close_in(
                tx,
                &e.id,
                "Did not attend the first appointment: discharged to the GP",
            )?;
            // `finished` (the clinic's contact is over), so the treating
            // consultant keeps the recent-encounter relationship needed to
            // read and sign the letter.
            let mut enc = encounter_for(
                &a,
                appointment,
                "finished",
                a["start"]
                    .as_str()
                    .map_or_else(|| fhir_time(now), str::to_owned),
            );
            enc["period"]["end"] = json!(fhir_time(now));
            enc["extension"] =
                json!([{"url": crate::documents::letters::DNA_EXT, "valueBoolean": true}]);
            tx.save(a)?;
            out.encounter = Some(tx.save(enc)?.id);
            return Ok(out);
        }
        waiting::unbook_in(tx, &e.id)?;
    }
    tx.save(a)?;
    Ok(out)
}
