//! On the day: the steps of a case (sent for … returned to ward), the WHO
//! checklist ticked item by item with who and when, and the operation
//! recorded as a `Procedure` — when it is the first definitive treatment,
//! RTT 30 on the pathway on the day of the operation and the entry closed,
//! in the same transaction. The progression rules are [`super::TheatreRule`]'s,
//! asked by the core on the save of every case; these functions hold no
//! second copy of them.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::list::{Session, case_entry, case_in, case_patient, case_session, session_in};
use super::{
    CASE_EXT, CHECKLIST_EXT, ITEMS, Part, Step, TheatreError, audited, ext, fhir_time, set_sub,
    step_time, sub, ticked,
};
use crate::rtt::{self, Status};
use crate::waiting;

/// A write rule's refusal as the page shows it.
fn refused(e: TheatreError) -> TheatreError {
    match e {
        TheatreError::Fhir(f) if f.status == 422 => TheatreError::Refused(
            Some("step"),
            f.to_string().trim_start_matches("Appointment: ").to_owned(),
        ),
        other => other,
    }
}

fn save(tx: &mut Tx<'_>, a: Value) -> Result<(), TheatreError> {
    tx.save(a)
        .map(|_| ())
        .map_err(|e| refused(TheatreError::Fhir(e)))
}

/// Records `step` at `at` on a case (the rule refuses it out of order or
/// ahead of the checklist). Back on the ward, the appointment is fulfilled.
pub fn step_in(
    tx: &mut Tx<'_>,
    case: &str,
    step: Step,
    at: OffsetDateTime,
) -> Result<(), TheatreError> {
    super::may_record_in(tx)?;
    let mut a = case_in(tx, case)?;
    if a["status"] == "cancelled" {
        return Err(TheatreError::Refused(None, "The case is cancelled.".into()));
    }
    if step_time(&a, step).is_some() {
        return Err(TheatreError::Refused(
            Some("step"),
            format!("{} is already recorded.", step.label()),
        ));
    }
    set_sub(
        &mut a,
        CASE_EXT,
        step.code(),
        Some(json!({"valueDateTime": fhir_time(at)})),
    );
    if step == Step::ReturnedToWard {
        a["status"] = json!("fulfilled");
    }
    save(tx, a)
}

/// Records a step (`theatres-case`).
pub fn step(
    svc: &FhirService,
    access: &dyn Access,
    case: &str,
    s: Step,
    at: OffsetDateTime,
) -> Result<(), TheatreError> {
    audited(svc, access, "theatres-case", "U", |tx| {
        step_in(tx, case, s, at)
    })
}

/// Ticks checklist items on a case, by `who` (a reference, e.g.
/// `Practitioner/x`, with a display name) at `at`.
pub fn tick_in(
    tx: &mut Tx<'_>,
    case: &str,
    items: &[&str],
    who: (&str, &str),
    at: OffsetDateTime,
) -> Result<(), TheatreError> {
    if items.is_empty() {
        return Err(TheatreError::Field(
            "items",
            "Tick at least one item.".into(),
        ));
    }
    super::may_record_in(tx)?;
    let mut a = case_in(tx, case)?;
    if a["status"] == "cancelled" {
        return Err(TheatreError::Refused(None, "The case is cancelled.".into()));
    }
    let already: Vec<String> = ticked(&a).into_iter().map(|t| t.0).collect();
    for item in items {
        if !ITEMS.iter().any(|i| i.1 == *item) {
            return Err(TheatreError::Field(
                "items",
                format!("{item} is not a checklist item."),
            ));
        }
        if already.iter().any(|c| c == item) {
            continue;
        }
        set_sub(
            &mut a,
            CHECKLIST_EXT,
            item,
            Some(json!({"extension": [
                {"url": "by", "valueReference": {"reference": who.0, "display": who.1}},
                {"url": "at", "valueDateTime": fhir_time(at)},
            ]})),
        );
    }
    save(tx, a)
}

/// Ticks items (`theatres-checklist`).
pub fn tick(
    svc: &FhirService,
    access: &dyn Access,
    case: &str,
    items: &[&str],
    who: (&str, &str),
    at: OffsetDateTime,
) -> Result<(), TheatreError> {
    audited(svc, access, "theatres-checklist", "U", |tx| {
        tick_in(tx, case, items, who, at)
    })
}

/// The operation recorded on a case.
pub fn procedure_of(a: &Value) -> Option<&str> {
    ext(a, CASE_EXT)
        .and_then(|c| sub(c, "procedure"))
        .and_then(|p| crate::fhir::reference_id(&p["valueReference"], "Procedure"))
}

/// What recording the operation did to the pathway.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    pub procedure: String,
    /// The RTT status recorded on the pathway (30 or 20), if there is one.
    pub rtt: Option<&'static str>,
    /// The date it was recorded on (the day of the operation).
    pub on: String,
}

/// Records the operation of a closed case as a `Procedure` (the case's
/// intended procedure unless `code` names another: system, code, display).
/// When `definitive` (the first definitive treatment) and the pathway's
/// clock runs: RTT 30 on the day of the operation (knife to skin); when
/// not, RTT 20 (the clock continues). The waiting-list entry is closed.
pub fn record_operation_in(
    tx: &mut Tx<'_>,
    case: &str,
    code: Option<(&str, &str, &str)>,
    definitive: bool,
) -> Result<Recorded, TheatreError> {
    super::may_record_in(tx)?;
    let mut a = case_in(tx, case)?;
    if let Some(p) = procedure_of(&a) {
        return Err(TheatreError::Refused(
            None,
            format!("The operation is already recorded (Procedure/{p})."),
        ));
    }
    let (Some(start), Some(end)) = (
        step_time(&a, Step::KnifeToSkin),
        step_time(&a, Step::Closed),
    ) else {
        return Err(TheatreError::Refused(
            Some("step"),
            "Record knife to skin and closed before recording the operation.".into(),
        ));
    };
    let session: Session = session_in(tx, case_session(&a).unwrap_or_default())?;
    let patient = case_patient(&a).unwrap_or_default().to_owned();
    let entry = case_entry(&a).map(str::to_owned);
    let concept = match code {
        Some((system, c, display)) => {
            if c.trim().is_empty() {
                return Err(TheatreError::Field(
                    "code",
                    "Give the procedure's code.".into(),
                ));
            }
            json!({"coding": [{"system": system, "code": c.trim(), "display": display}], "text": display})
        }
        None => a["reasonCode"][0].clone(),
    };
    if concept["coding"][0]["code"].as_str().is_none() {
        return Err(TheatreError::Field(
            "code",
            "The case names no coded procedure: give the procedure's code.".into(),
        ));
    }
    let mut p = json!({"resourceType": "Procedure", "status": "completed",
        "code": concept,
        "subject": {"reference": format!("Patient/{patient}")},
        "performedPeriod": {"start": fhir_time(start), "end": fhir_time(end)},
        "performer": [{"actor": {"reference": format!("Practitioner/{}", session.surgeon)},
            "function": {"text": "Surgeon"}}],
        "location": {"reference": format!("Location/{}", session.theatre)}});
    if let Some(e) = &entry {
        p["basedOn"] = json!([{"reference": format!("ServiceRequest/{e}")}]);
    }
    let pid = tx.save(p)?.id;
    set_sub(
        &mut a,
        CASE_EXT,
        "procedure",
        Some(json!({"valueReference": {"reference": format!("Procedure/{pid}")}})),
    );
    save(tx, a)?;
    let on = start.date();
    let mut rtt_code = None;
    if let Some(e) = &entry {
        let sr = waiting::entry_in(tx, e)?;
        if let Some(pw) = waiting::pathway_of(&sr).map(str::to_owned) {
            let (_, pathway) = rtt::pathway_in(tx, &pw)?;
            if pathway.clock == rtt::Clock::Running {
                let status = if definitive { Status::S30 } else { Status::S20 };
                rtt::record_in(tx, &pw, status, on, &format!("Procedure/{pid}"))?;
                rtt_code = Some(status.code());
            }
        }
        if matches!(
            waiting::state_of(&sr),
            waiting::State::Booked | waiting::State::Waiting
        ) {
            waiting::close_in(
                tx,
                e,
                if definitive {
                    "Treated: operation (first definitive treatment)"
                } else {
                    "Operated: not the first definitive treatment"
                },
            )?;
        }
    }
    Ok(Recorded {
        procedure: pid,
        rtt: rtt_code,
        on: super::list::date_text(on),
    })
}

/// Records the operation (`theatres-operation`).
pub fn record_operation(
    svc: &FhirService,
    access: &dyn Access,
    case: &str,
    code: Option<(&str, &str, &str)>,
    definitive: bool,
) -> Result<Recorded, TheatreError> {
    audited(svc, access, "theatres-operation", "C", |tx| {
        record_operation_in(tx, case, code, definitive)
    })
}

/// A checklist item as the page shows it: code, text, (ticked by, at).
pub type ChecklistItem = (String, String, Option<(String, String)>);
/// A checklist part: the part, complete, its items.
pub type ChecklistPart = (Part, bool, Vec<ChecklistItem>);

/// A case as its page shows it: the appointment, its session, the steps
/// with their times, the checklist with who and when, the operation.
#[derive(Debug, Clone)]
pub struct CaseDetail {
    pub case: Value,
    pub session: Session,
    pub patient_name: String,
    pub steps: Vec<(Step, Option<String>)>,
    /// Per part: complete, and each item (code, text, ticked by, at).
    pub checklist: Vec<ChecklistPart>,
    pub procedure: Option<String>,
}

/// Reads a case for its page.
pub fn detail_in(tx: &mut Tx<'_>, case: &str) -> Result<CaseDetail, TheatreError> {
    let a = tx
        .get("Appointment", case)?
        .filter(super::is_case)
        .ok_or_else(|| TheatreError::NotFound(format!("There is no theatre case {case}.")))?;
    let session = session_in(tx, case_session(&a).unwrap_or_default())?;
    let patient = case_patient(&a).unwrap_or_default().to_owned();
    let patient_name = tx
        .get("Patient", &patient)?
        .and_then(|p| crate::orders::request::person_name(&p))
        .unwrap_or_else(|| format!("Patient/{patient}"));
    let steps = Step::ALL
        .into_iter()
        .map(|s| {
            (
                s,
                ext(&a, CASE_EXT)
                    .and_then(|c| sub(c, s.code()))
                    .and_then(|v| v["valueDateTime"].as_str().map(str::to_owned)),
            )
        })
        .collect();
    let t = ticked(&a);
    let checklist = Part::ALL
        .into_iter()
        .map(|p| {
            (
                p,
                super::complete(&a, p),
                p.items()
                    .map(|(_, code, text)| {
                        (
                            (*code).to_owned(),
                            (*text).to_owned(),
                            t.iter()
                                .find(|(c, _, _)| c == code)
                                .map(|(_, by, at)| (by.clone(), at.clone())),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let procedure = procedure_of(&a).map(str::to_owned);
    Ok(CaseDetail {
        case: a,
        session,
        patient_name,
        steps,
        checklist,
        procedure,
    })
}

/// Reads a case (`theatres-case`).
pub fn detail(
    svc: &FhirService,
    access: &dyn Access,
    case: &str,
) -> Result<CaseDetail, TheatreError> {
    audited(svc, access, "theatres-case", "R", |tx| detail_in(tx, case))
}
