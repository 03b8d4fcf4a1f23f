//! The lists as people read them, and the administrators' validation of
//! them: every entry still on a list checked for what national waiting-list
//! validation looks for —
//!
//! * no pathway (an entry not on an RTT pathway);
//! * two entries on one pathway and list;
//! * a patient who has died;
//! * a booked appointment in the past with no outcome recorded;
//! * not validated for 12 weeks (since it was added, or last validated).
//!
//! An administrator marks an entry validated ([`validate_in`]:
//! [`VALIDATED_EXT`], the date and who); the other problems go when they
//! are put right (the entry removed with a reason, the outcome recorded).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use time::Date;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::{
    List, Priority, State, WaitingError, booked, entry_in, list_of, pathway_of, priority_of,
    set_ext, state_of,
};
use crate::fhir::reference_id;
use crate::rtt::{self, Pathway, parse_date};

/// The last validation (sub-extensions `date` `valueDate`, `by`
/// `valueReference`).
pub const VALIDATED_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/waiting-validated";
/// How long an entry goes unvalidated before it is on the worklist.
pub const VALIDATE_EVERY_DAYS: i64 = 84;

/// What validation found wrong with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Problem {
    NoPathway,
    TwoOnPathway,
    Deceased,
    PastBookingNoOutcome,
    NotValidated,
}

impl Problem {
    pub fn code(self) -> &'static str {
        match self {
            Problem::NoPathway => "no-pathway",
            Problem::TwoOnPathway => "two-on-pathway",
            Problem::Deceased => "deceased",
            Problem::PastBookingNoOutcome => "past-booking",
            Problem::NotValidated => "not-validated",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Problem::NoPathway => "Not on an RTT pathway",
            Problem::TwoOnPathway => "Two entries on one pathway and list",
            Problem::Deceased => "The patient has died",
            Problem::PastBookingNoOutcome => "Booked appointment in the past with no outcome",
            Problem::NotValidated => "Not validated for 12 weeks",
        }
    }
}

/// An entry as the lists show it.
#[derive(Debug, Clone)]
pub struct Row {
    /// ServiceRequest id.
    pub id: String,
    /// Patient id.
    pub patient: String,
    pub list: List,
    pub specialty: String,
    /// Practitioner id.
    pub consultant: Option<String>,
    pub priority: Option<Priority>,
    pub procedure: String,
    pub decided: Option<Date>,
    pub state: State,
    /// Appointment id.
    pub booked: Option<String>,
    /// EpisodeOfCare id.
    pub pathway: Option<String>,
    /// Weeks waited on the pathway's clock (none: no running clock).
    pub weeks: Option<i64>,
    /// The suspension's reason and until-date.
    pub suspended: Option<(String, String)>,
    pub last_validated: Option<Date>,
    pub problems: Vec<Problem>,
}

fn sub<'a>(e: &'a Value, name: &str) -> Option<&'a Value> {
    e["extension"].as_array()?.iter().find(|s| s["url"] == name)
}

fn ext<'a>(sr: &'a Value, url: &str) -> Option<&'a Value> {
    sr["extension"].as_array()?.iter().find(|e| e["url"] == url)
}

/// The date an entry was last validated.
pub fn last_validated(sr: &Value) -> Option<Date> {
    ext(sr, VALIDATED_EXT)
        .and_then(|e| sub(e, "date"))
        .and_then(|d| d["valueDate"].as_str())
        .and_then(parse_date)
}

fn row(sr: &Value, pathways: &HashMap<String, Pathway>, today: Date) -> Option<Row> {
    let pathway = pathway_of(sr).map(str::to_owned);
    let suspended = ext(sr, super::SUSPENSION_EXT).map(|e| {
        let t = |n: &str| {
            sub(e, n)
                .and_then(|v| v["valueString"].as_str().or(v["valueDate"].as_str()))
                .unwrap_or("")
                .to_owned()
        };
        (t("reason"), t("until"))
    });
    Some(Row {
        id: sr["id"].as_str()?.to_owned(),
        patient: reference_id(&sr["subject"], "Patient")?.to_owned(),
        list: list_of(sr)?,
        specialty: ext(sr, rtt::TREATMENT_FUNCTION_EXT)
            .and_then(|e| e["valueCoding"]["code"].as_str())
            .unwrap_or("")
            .to_owned(),
        consultant: reference_id(&sr["performer"][0], "Practitioner").map(str::to_owned),
        priority: priority_of(sr),
        procedure: crate::fhir::concept_text(&sr["code"]).unwrap_or_default(),
        decided: sr["authoredOn"].as_str().and_then(parse_date),
        state: state_of(sr),
        booked: booked(sr).map(str::to_owned),
        weeks: pathway
            .as_ref()
            .and_then(|p| pathways.get(p))
            .filter(|p| p.clock == rtt::Clock::Running)
            .and_then(|p| p.weeks_waited(today)),
        pathway,
        suspended,
        last_validated: last_validated(sr),
        problems: Vec::new(),
    })
}

/// Which entries to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter<'a> {
    pub list: Option<List>,
    /// Treatment function code.
    pub specialty: Option<&'a str>,
    /// Patient id.
    pub patient: Option<&'a str>,
}

/// A current resource read for the list itself (a population list: the
/// caller's type-level permission was checked, each patient's record is
/// opened under their own access).
fn list_read(tx: &Tx<'_>, t: &str, id: &str) -> Result<Option<Value>, WaitingError> {
    use wardline_store::Reader;
    let Some(r) = Reader::read(tx, t, id).map_err(wardline_fhir::FhirError::from)? else {
        return Ok(None);
    };
    if r.deleted {
        return Ok(None);
    }
    Ok(serde_json::from_str(&r.json).ok())
}

fn read_rows(
    tx: &mut Tx<'_>,
    f: Filter,
    today: Date,
) -> Result<(Vec<Row>, Vec<Value>), WaitingError> {
    let mut q = "intent=plan&status=active,on-hold".to_owned();
    if let Some(l) = f.list {
        q.push_str(&format!("&category={}|{}", super::LIST_SYSTEM, l.code()));
    }
    if let Some(p) = f.patient {
        q.push_str(&format!("&subject=Patient/{p}"));
    }
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for kv in q.split('&') {
        if let Some((k, v)) = kv.split_once('=') {
            pairs.push((k, v.to_owned()));
        }
    }
    let stored: Vec<Value> = crate::fhir::search_all(&*tx, "ServiceRequest", &pairs)?
        .into_iter()
        .filter(super::is_entry)
        .collect();
    let mut pathways = HashMap::new();
    for sr in &stored {
        if let Some(pw) = pathway_of(sr)
            && !pathways.contains_key(pw)
            && let Some(p) = list_read(tx, "EpisodeOfCare", pw)?
                .as_ref()
                .and_then(Pathway::of)
        {
            pathways.insert(pw.to_owned(), p);
        }
    }
    let rows = stored
        .iter()
        .filter_map(|sr| row(sr, &pathways, today))
        .filter(|r| f.specialty.is_none_or(|s| r.specialty == s))
        .collect();
    Ok((rows, stored))
}

/// The entries still on the lists (waiting, booked, suspended), longest
/// wait first, then the earliest decided.
pub fn entries(
    svc: &FhirService,
    access: &dyn Access,
    f: Filter,
    today: Date,
) -> Result<Vec<Row>, WaitingError> {
    access.check_type(wardline_core::Op::Search, Some("ServiceRequest"))?;
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "waiting-list", "R");
    tx.audit_reads();
    let (mut rows, _) = read_rows(&mut tx, f, today)?;
    tx.commit()?;
    rows.sort_by(|a, b| b.weeks.cmp(&a.weeks).then(a.decided.cmp(&b.decided)));
    Ok(rows)
}

/// The problems of each entry on the lists (see the module docs), in `tx`.
pub fn problems_in(tx: &mut Tx<'_>, today: Date) -> Result<Vec<Row>, WaitingError> {
    let (mut rows, _) = read_rows(tx, Filter::default(), today)?;
    let mut per: HashMap<(String, List), usize> = HashMap::new();
    for r in &rows {
        if let Some(p) = &r.pathway {
            *per.entry((p.clone(), r.list)).or_default() += 1;
        }
    }
    let mut deceased: HashMap<String, bool> = HashMap::new();
    for r in &mut rows {
        if r.pathway.is_none() {
            r.problems.push(Problem::NoPathway);
        }
        if r.pathway
            .as_ref()
            .is_some_and(|p| per.get(&(p.clone(), r.list)).copied().unwrap_or(0) > 1)
        {
            r.problems.push(Problem::TwoOnPathway);
        }
        let dead = match deceased.get(&r.patient) {
            Some(d) => *d,
            None => {
                let d = list_read(tx, "Patient", &r.patient)?.is_some_and(|p| {
                    p.get("deceasedDateTime").is_some() || p["deceasedBoolean"] == true
                });
                deceased.insert(r.patient.clone(), d);
                d
            }
        };
        if dead {
            r.problems.push(Problem::Deceased);
        }
        if let Some(a) = &r.booked
            && let Some(appt) = list_read(tx, "Appointment", a)?
            && appt["status"] == "booked"
            && appt["start"]
                .as_str()
                .and_then(parse_date)
                .is_some_and(|d| d < today)
        {
            r.problems.push(Problem::PastBookingNoOutcome);
        }
        let since = r.last_validated.or(r.decided);
        if since.is_none_or(|d| (today - d).whole_days() >= VALIDATE_EVERY_DAYS) {
            r.problems.push(Problem::NotValidated);
        }
    }
    rows.retain(|r| !r.problems.is_empty());
    rows.sort_by(|a, b| {
        b.problems
            .len()
            .cmp(&a.problems.len())
            .then(a.decided.cmp(&b.decided))
    });
    Ok(rows)
}

/// The validation worklist (`waiting-validation`, audited).
pub fn worklist(
    svc: &FhirService,
    access: &dyn Access,
    today: Date,
) -> Result<Vec<Row>, WaitingError> {
    access.check_type(wardline_core::Op::Search, Some("ServiceRequest"))?;
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "waiting-validation", "R");
    tx.audit_reads();
    let rows = problems_in(&mut tx, today)?;
    tx.commit()?;
    Ok(rows)
}

/// Marks an entry validated on `today` by `by` (`Practitioner/…`).
pub fn validate_in(
    tx: &mut Tx<'_>,
    entry: &str,
    by: Option<&str>,
    today: Date,
) -> Result<(), WaitingError> {
    let mut sr = entry_in(tx, entry)?;
    if !matches!(
        state_of(&sr),
        State::Waiting | State::Booked | State::Suspended
    ) {
        return Err(WaitingError::State(
            "The entry is no longer on a list: there is nothing to validate.".into(),
        ));
    }
    let mut parts = vec![json!({"url": "date", "valueDate": rtt::fhir_date(today)})];
    if let Some(b) = by {
        parts.push(json!({"url": "by", "valueReference": {"reference": b}}));
    }
    set_ext(&mut sr, VALIDATED_EXT, Some(json!({"extension": parts})));
    tx.save(sr)?;
    Ok(())
}

/// [`validate_in`] by the person signed in (`waiting-validate`).
pub fn validate(
    svc: &FhirService,
    access: &dyn Access,
    entry: &str,
    today: Date,
) -> Result<(), WaitingError> {
    let who = access.agent().who.clone();
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "waiting-validate", "U");
    validate_in(&mut tx, entry, who.as_deref(), today)?;
    tx.commit()?;
    Ok(())
}
