//! Theatre sessions and their lists: planning a session (no surgeon or
//! theatre in two overlapping sessions), adding cases from the admitted
//! waiting list in order with durations estimated from the procedure's
//! history, reordering, cancelling, the over-run and the conflicts shown.

use serde::Serialize;
use serde_json::{Value, json};
use time::{Date, Duration, OffsetDateTime};
use wardline_core::{Access, FhirService, Tx};

use super::{
    CASE_EXT, CATEGORY_SYSTEM, DEFAULT_MINUTES, LOCATION_KIND_SYSTEM, SESSION_EXT, Step,
    TheatreError, audited, coded, ext, fhir_time, is_case, parse_time, rid, set_sub, step_time,
    sub,
};
use crate::orders::request::person_name;
use crate::rtt::{TREATMENT_FUNCTION_SYSTEM, specialty_name, valid_specialty};
use crate::waiting::{self, State};

/// A theatre (a Location of kind `theatre`).
#[derive(Debug, Clone, Serialize)]
pub struct Theatre {
    pub id: String,
    pub name: String,
}

/// A session to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession<'a> {
    /// Location id.
    pub theatre: &'a str,
    /// Treatment function code.
    pub specialty: &'a str,
    /// Practitioner ids.
    pub surgeon: &'a str,
    pub anaesthetist: Option<&'a str>,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// A case on a list, as the list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub id: String,
    pub order: i64,
    pub entry: String,
    pub patient: String,
    pub patient_name: String,
    pub procedure_code: Option<String>,
    pub procedure: String,
    pub minutes: i64,
    /// The estimate is the default (no past operation with that code).
    pub default_estimate: bool,
    pub start: String,
    pub end: String,
    /// `booked`, `fulfilled`, `cancelled`.
    pub status: String,
    /// The last step recorded.
    pub step: Option<Step>,
    pub cancel_reason: Option<String>,
}

/// A session with its list.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub theatre: String,
    pub theatre_name: String,
    pub specialty: String,
    pub specialty_name: String,
    pub surgeon: String,
    pub surgeon_name: String,
    pub anaesthetist: Option<String>,
    pub anaesthetist_name: Option<String>,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// Cases not cancelled, in order, then the cancelled ones.
    pub cases: Vec<Case>,
    /// Estimated minutes of the cases not cancelled.
    pub booked_minutes: i64,
    /// The session's length in minutes.
    pub length_minutes: i64,
    /// Sentences naming each conflict (the surgeon in another session at
    /// an overlapping time).
    pub conflicts: Vec<String>,
}

impl Session {
    /// Minutes by which the estimated list over-runs the session (0: none).
    pub fn overrun_minutes(&self) -> i64 {
        (self.booked_minutes - self.length_minutes).max(0)
    }
}

fn name_of(tx: &mut Tx<'_>, t: &str, id: &str) -> Result<String, TheatreError> {
    Ok(tx
        .get(t, id)?
        .map(|v| {
            person_name(&v)
                .or_else(|| v["name"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{t}/{id}"))
        })
        .unwrap_or_else(|| format!("{t}/{id}")))
}

/// The trust's theatres.
pub fn theatres_in(tx: &mut Tx<'_>) -> Result<Vec<Theatre>, TheatreError> {
    let mut v: Vec<Theatre> = tx
        .find("Location", &format!("type={LOCATION_KIND_SYSTEM}|theatre"))?
        .into_iter()
        .map(|l| Theatre {
            id: l["id"].as_str().unwrap_or_default().to_owned(),
            name: l["name"].as_str().unwrap_or("Theatre").to_owned(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

fn schedule_in(tx: &mut Tx<'_>, theatre: &str) -> Result<String, TheatreError> {
    tx.lock(&[format!("theatre-schedule/{theatre}")])?;
    let found = tx.find(
        "Schedule",
        &format!("actor=Location/{theatre}&service-category={CATEGORY_SYSTEM}|theatre"),
    )?;
    if let Some(s) = found.first().and_then(|s| s["id"].as_str()) {
        return Ok(s.to_owned());
    }
    let s = json!({"resourceType": "Schedule", "active": true,
        "serviceCategory": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "theatre"}]}],
        "actor": [{"reference": format!("Location/{theatre}")}],
        "comment": "Theatre sessions"});
    Ok(tx.save(s)?.id)
}

fn session_on<'a>(slot: &'a Value, name: &str) -> Option<&'a str> {
    ext(slot, SESSION_EXT)
        .and_then(|e| sub(e, name))
        .and_then(|s| s["valueReference"]["reference"].as_str())
        .and_then(|r| r.split_once('/').map(|(_, id)| id))
}

/// Sessions overlapping [start, end) (any theatre).
fn overlapping_in(
    tx: &mut Tx<'_>,
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> Result<Vec<Value>, TheatreError> {
    let day0 = start.date() - Duration::days(1);
    let day1 = end.date() + Duration::days(1);
    Ok(tx
        .find(
            "Slot",
            &format!(
                "service-category={CATEGORY_SYSTEM}|theatre-session&start=ge{}&start=le{}",
                date_text(day0),
                date_text(day1)
            ),
        )?
        .into_iter()
        .filter(|s| {
            let (Some(a), Some(b)) = (
                s["start"].as_str().and_then(parse_time),
                s["end"].as_str().and_then(parse_time),
            ) else {
                return false;
            };
            s["status"] != "entered-in-error" && a < end && start < b
        })
        .collect())
}

pub fn date_text(d: Date) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    d.format(&f).unwrap_or_default()
}

/// Plans a session; refuses a surgeon, anaesthetist or theatre already in
/// an overlapping session. Its Slot id.
pub fn plan_session_in(tx: &mut Tx<'_>, s: &NewSession) -> Result<String, TheatreError> {
    if !valid_specialty(s.specialty) {
        return Err(TheatreError::Field(
            "specialty",
            format!(
                "The specialty must be a treatment function code, not {:?}.",
                s.specialty
            ),
        ));
    }
    if s.end <= s.start {
        return Err(TheatreError::Field(
            "end",
            "The session must end after it starts.".into(),
        ));
    }
    if s.surgeon.trim().is_empty() {
        return Err(TheatreError::Field("surgeon", "Choose the surgeon.".into()));
    }
    let Some(theatre) = tx.get("Location", s.theatre)? else {
        return Err(TheatreError::Field(
            "theatre",
            format!("There is no theatre {}.", s.theatre),
        ));
    };
    if !coded(&theatre, "type", LOCATION_KIND_SYSTEM, "theatre") {
        return Err(TheatreError::Field(
            "theatre",
            format!("Location/{} is not a theatre.", s.theatre),
        ));
    }
    for (field, id) in [
        ("surgeon", Some(s.surgeon)),
        ("anaesthetist", s.anaesthetist),
    ] {
        if let Some(id) = id
            && tx.get("Practitioner", id)?.is_none()
        {
            return Err(TheatreError::Field(
                field,
                format!("There is no Practitioner/{id}."),
            ));
        }
    }
    // One planner of sessions at a time per person and theatre: the checks
    // below see every session committed before.
    let mut keys = vec![
        format!("theatre-people/{}", s.surgeon),
        format!("theatre-room/{}", s.theatre),
    ];
    if let Some(a) = s.anaesthetist {
        keys.push(format!("theatre-people/{a}"));
    }
    keys.sort();
    tx.lock(&keys)?;
    for other in overlapping_in(tx, s.start, s.end)? {
        let when = format!(
            "{} to {}",
            other["start"].as_str().unwrap_or(""),
            other["end"].as_str().unwrap_or("")
        );
        if session_on(&other, "theatre") == Some(s.theatre) {
            return Err(TheatreError::Refused(
                Some("start"),
                format!(
                    "{} already has a session from {when}.",
                    theatre["name"].as_str().unwrap_or("The theatre")
                ),
            ));
        }
        for (field, id) in [
            ("surgeon", Some(s.surgeon)),
            ("anaesthetist", s.anaesthetist),
        ] {
            let Some(id) = id else { continue };
            if session_on(&other, "surgeon") == Some(id)
                || session_on(&other, "anaesthetist") == Some(id)
            {
                let name = name_of(tx, "Practitioner", id)?;
                return Err(TheatreError::Refused(
                    Some(field),
                    format!(
                        "{name} is already in another theatre session from {when}: one person cannot be in two theatres at once."
                    ),
                ));
            }
        }
    }
    let schedule = schedule_in(tx, s.theatre)?;
    let mut sub_ext = vec![
        json!({"url": "theatre", "valueReference": {"reference": format!("Location/{}", s.theatre)}}),
        json!({"url": "surgeon", "valueReference": {"reference": format!("Practitioner/{}", s.surgeon)}}),
    ];
    if let Some(a) = s.anaesthetist {
        sub_ext.push(json!({"url": "anaesthetist", "valueReference": {"reference": format!("Practitioner/{a}")}}));
    }
    let slot = json!({"resourceType": "Slot", "status": "busy",
        "schedule": {"reference": format!("Schedule/{schedule}")},
        "serviceCategory": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "theatre-session"}]}],
        "serviceType": [{"coding": [{"system": TREATMENT_FUNCTION_SYSTEM, "code": s.specialty,
            "display": specialty_name(s.specialty)}]}],
        "start": fhir_time(s.start), "end": fhir_time(s.end),
        "extension": [{"url": SESSION_EXT, "extension": sub_ext}]});
    Ok(tx.save(slot)?.id)
}

/// Plans a session (`theatres-session`).
pub fn plan_session(
    svc: &FhirService,
    access: &dyn Access,
    s: &NewSession,
) -> Result<String, TheatreError> {
    audited(svc, access, "theatres-session", "C", |tx| {
        plan_session_in(tx, s)
    })
}

/// The sessions starting on `day`, by start then theatre.
pub fn sessions_on_in(tx: &mut Tx<'_>, day: Date) -> Result<Vec<Session>, TheatreError> {
    let slots = tx.find(
        "Slot",
        &format!(
            "service-category={CATEGORY_SYSTEM}|theatre-session&start={}",
            date_text(day)
        ),
    )?;
    let mut out = Vec::new();
    for s in slots {
        out.push(view_in(tx, &s)?);
    }
    out.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(a.theatre_name.cmp(&b.theatre_name))
    });
    Ok(out)
}

/// The sessions of a day (`theatres-list`).
pub fn sessions_on(
    svc: &FhirService,
    access: &dyn Access,
    day: Date,
) -> Result<Vec<Session>, TheatreError> {
    audited(svc, access, "theatres-list", "R", |tx| {
        sessions_on_in(tx, day)
    })
}

fn session_slot_in(tx: &mut Tx<'_>, id: &str) -> Result<Value, TheatreError> {
    tx.get("Slot", id)?
        .filter(|s| coded(s, "serviceCategory", CATEGORY_SYSTEM, "theatre-session"))
        .ok_or_else(|| TheatreError::NotFound(format!("There is no theatre session {id}.")))
}

/// A session with its list.
pub fn session_in(tx: &mut Tx<'_>, id: &str) -> Result<Session, TheatreError> {
    let s = session_slot_in(tx, id)?;
    view_in(tx, &s)
}

/// A session with its list (`theatres-list`).
pub fn session(svc: &FhirService, access: &dyn Access, id: &str) -> Result<Session, TheatreError> {
    audited(svc, access, "theatres-list", "R", |tx| session_in(tx, id))
}

/// The cases of a session (all statuses), in order.
pub fn cases_in(tx: &mut Tx<'_>, session: &str) -> Result<Vec<Value>, TheatreError> {
    // The cases of a session are found by their theatre (participant) and
    // date, then by the session named in the case extension.
    let slot = session_slot_in(tx, session)?;
    let theatre = session_on(&slot, "theatre").unwrap_or_default().to_owned();
    let day = slot["start"].as_str().and_then(crate::rtt::parse_date);
    let mut q = format!("actor=Location/{theatre}&service-category={CATEGORY_SYSTEM}|theatre-case");
    if let Some(d) = day {
        q.push_str(&format!("&date={}", date_text(d)));
    }
    let mut v: Vec<Value> = tx
        .find("Appointment", &q)?
        .into_iter()
        .filter(|a| is_case(a) && case_session(a) == Some(session))
        .collect();
    v.sort_by_key(order_of);
    Ok(v)
}

/// The session (Slot id) a case is on.
pub fn case_session(a: &Value) -> Option<&str> {
    ext(a, CASE_EXT)
        .and_then(|c| sub(c, "session"))
        .and_then(|s| rid(&s["valueReference"], "Slot"))
}

fn int_of(a: &Value, name: &str) -> Option<i64> {
    ext(a, CASE_EXT)
        .and_then(|c| sub(c, name))
        .and_then(|s| s["valueInteger"].as_i64())
}

fn order_of(a: &Value) -> i64 {
    int_of(a, "order").unwrap_or(i64::MAX)
}

/// The entry (ServiceRequest id) a case is for.
pub fn case_entry(a: &Value) -> Option<&str> {
    a["basedOn"]
        .as_array()?
        .iter()
        .find_map(|r| rid(r, "ServiceRequest"))
}

/// The patient of a case.
pub fn case_patient(a: &Value) -> Option<&str> {
    a["participant"]
        .as_array()?
        .iter()
        .find_map(|p| rid(&p["actor"], "Patient"))
}

fn view_in(tx: &mut Tx<'_>, slot: &Value) -> Result<Session, TheatreError> {
    let id = slot["id"].as_str().unwrap_or_default().to_owned();
    let start = slot["start"]
        .as_str()
        .and_then(parse_time)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let end = slot["end"].as_str().and_then(parse_time).unwrap_or(start);
    let theatre = session_on(slot, "theatre").unwrap_or_default().to_owned();
    let surgeon = session_on(slot, "surgeon").unwrap_or_default().to_owned();
    let anaesthetist = session_on(slot, "anaesthetist").map(str::to_owned);
    let specialty = slot["serviceType"][0]["coding"][0]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let theatre_name = tx
        .get("Location", &theatre)?
        .and_then(|l| l["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("Location/{theatre}"));
    let surgeon_name = name_of(tx, "Practitioner", &surgeon)?;
    let anaesthetist_name = match &anaesthetist {
        Some(a) => Some(name_of(tx, "Practitioner", a)?),
        None => None,
    };
    let mut cases = Vec::new();
    for a in cases_in(tx, &id)? {
        let patient = case_patient(&a).unwrap_or_default().to_owned();
        let patient_name = name_of(tx, "Patient", &patient)?;
        let coding = &a["reasonCode"][0]["coding"][0];
        let step = Step::ALL
            .into_iter()
            .rev()
            .find(|s| step_time(&a, *s).is_some());
        cases.push(Case {
            id: a["id"].as_str().unwrap_or_default().to_owned(),
            order: order_of(&a),
            entry: case_entry(&a).unwrap_or_default().to_owned(),
            patient,
            patient_name,
            procedure_code: coding["code"].as_str().map(str::to_owned),
            procedure: crate::fhir::concept_text(&a["reasonCode"][0])
                .unwrap_or_else(|| "Procedure not named".into()),
            minutes: int_of(&a, "minutes").unwrap_or(DEFAULT_MINUTES),
            default_estimate: ext(&a, CASE_EXT)
                .and_then(|c| sub(c, "estimate"))
                .is_some_and(|e| e["valueCode"] == "default"),
            start: a["start"].as_str().unwrap_or("").to_owned(),
            end: a["end"].as_str().unwrap_or("").to_owned(),
            status: a["status"].as_str().unwrap_or("").to_owned(),
            step,
            cancel_reason: a["cancelationReason"]["text"].as_str().map(str::to_owned),
        });
    }
    cases.sort_by_key(|c| (c.status == "cancelled", c.order));
    let booked_minutes = cases
        .iter()
        .filter(|c| c.status != "cancelled")
        .map(|c| c.minutes)
        .sum();
    let mut conflicts = Vec::new();
    for other in overlapping_in(tx, start, end)? {
        if other["id"] == slot["id"] {
            continue;
        }
        for person in std::iter::once(&surgeon).chain(anaesthetist.iter()) {
            if session_on(&other, "surgeon") == Some(person)
                || session_on(&other, "anaesthetist") == Some(person)
            {
                let name = name_of(tx, "Practitioner", person)?;
                let where_ = session_on(&other, "theatre")
                    .map(str::to_owned)
                    .unwrap_or_default();
                let where_ = tx
                    .get("Location", &where_)?
                    .and_then(|l| l["name"].as_str().map(str::to_owned))
                    .unwrap_or(where_);
                conflicts.push(format!(
                    "{name} is also booked in {where_} from {} to {}.",
                    other["start"].as_str().unwrap_or(""),
                    other["end"].as_str().unwrap_or("")
                ));
            }
        }
    }
    Ok(Session {
        id,
        length_minutes: (end - start).whole_minutes(),
        theatre,
        theatre_name,
        specialty_name: specialty_name(&specialty),
        specialty,
        surgeon,
        surgeon_name,
        anaesthetist,
        anaesthetist_name,
        start,
        end,
        cases,
        booked_minutes,
        conflicts,
    })
}

/// The estimated duration of a procedure: the median of the past durations
/// (`Procedure.performedPeriod`) of completed operations with that code,
/// with how many; `None` when there are none (the default applies).
pub fn estimate_in(
    tx: &mut Tx<'_>,
    system: &str,
    code: &str,
) -> Result<Option<(i64, usize)>, TheatreError> {
    let mut minutes: Vec<i64> = tx
        .find(
            "Procedure",
            &format!("code={system}|{code}&status=completed"),
        )?
        .into_iter()
        .filter_map(|p| {
            let a = parse_time(p["performedPeriod"]["start"].as_str()?)?;
            let b = parse_time(p["performedPeriod"]["end"].as_str()?)?;
            let m = (b - a).whole_minutes();
            (m > 0).then_some(m)
        })
        .collect();
    if minutes.is_empty() {
        return Ok(None);
    }
    minutes.sort_unstable();
    let n = minutes.len();
    let median = if n % 2 == 1 {
        minutes[n / 2]
    } else {
        (minutes[n / 2 - 1] + minutes[n / 2] + 1) / 2
    };
    Ok(Some((median, n)))
}

/// An entry offered to a list: entry id, patient id, patient name,
/// procedure, estimated minutes, whether the estimate is the default.
pub type Offered = (String, String, String, String, i64, bool);

/// The admitted waiting-list entries of a specialty waiting to be booked,
/// as the list builder offers them: (entry id, patient id, patient name,
/// procedure text, estimated minutes, default estimate).
pub fn waiting_in(tx: &mut Tx<'_>, specialty: &str) -> Result<Vec<Offered>, TheatreError> {
    let mut out = Vec::new();
    // One estimate per procedure code, however many entries share it.
    let mut estimates: std::collections::HashMap<String, (i64, bool)> =
        std::collections::HashMap::new();
    for list in [waiting::List::Inpatient, waiting::List::DayCase] {
        let found = tx.find(
            "ServiceRequest",
            &format!(
                "intent=plan&status=active&category={}|{}",
                waiting::LIST_SYSTEM,
                list.code()
            ),
        )?;
        for sr in found {
            if waiting::state_of(&sr) != State::Waiting {
                continue;
            }
            let sp = ext(&sr, crate::rtt::TREATMENT_FUNCTION_EXT)
                .and_then(|e| e["valueCoding"]["code"].as_str())
                .unwrap_or("");
            if !specialty.is_empty() && sp != specialty {
                continue;
            }
            let patient = rid(&sr["subject"], "Patient")
                .unwrap_or_default()
                .to_owned();
            let name = name_of(tx, "Patient", &patient)?;
            let key = sr["code"]["coding"][0].to_string();
            let (mins, default) = match estimates.get(&key) {
                Some(v) => *v,
                None => {
                    let v = entry_estimate_in(tx, &sr)?;
                    estimates.insert(key, v);
                    v
                }
            };
            out.push((
                sr["id"].as_str().unwrap_or_default().to_owned(),
                patient,
                name,
                crate::fhir::concept_text(&sr["code"])
                    .unwrap_or_else(|| "Procedure not named".into()),
                mins,
                default,
            ));
        }
    }
    Ok(out)
}

fn entry_estimate_in(tx: &mut Tx<'_>, sr: &Value) -> Result<(i64, bool), TheatreError> {
    let coding = &sr["code"]["coding"][0];
    if let (Some(system), Some(code)) = (coding["system"].as_str(), coding["code"].as_str())
        && let Some((m, _)) = estimate_in(tx, system, code)?
    {
        return Ok((m, false));
    }
    Ok((DEFAULT_MINUTES, true))
}

/// Places the cases of a session one after another from its start, in
/// order, and saves those whose place moved.
fn replan_in(tx: &mut Tx<'_>, session: &str, start: OffsetDateTime) -> Result<(), TheatreError> {
    let mut at = start;
    let mut order = 1;
    for mut a in cases_in(tx, session)? {
        if a["status"] == "cancelled" {
            continue;
        }
        let mins = int_of(&a, "minutes").unwrap_or(DEFAULT_MINUTES);
        let (s, e) = (fhir_time(at), fhir_time(at + Duration::minutes(mins)));
        if a["start"] != s.as_str() || a["end"] != e.as_str() || int_of(&a, "order") != Some(order)
        {
            a["start"] = json!(s);
            a["end"] = json!(e);
            set_sub(
                &mut a,
                CASE_EXT,
                "order",
                Some(json!({"valueInteger": order})),
            );
            tx.save(a)?;
        }
        at += Duration::minutes(mins);
        order += 1;
    }
    Ok(())
}

/// Adds the admitted waiting-list `entry` to the end of a session's list
/// (booked into it with `waiting::book_in`); refuses an entry not waiting,
/// an outpatient entry, and — unless `accept_overrun` — a case whose
/// estimate would make the list over-run the session. The case's id.
pub fn add_case_in(
    tx: &mut Tx<'_>,
    session: &str,
    entry: &str,
    accept_overrun: bool,
) -> Result<String, TheatreError> {
    tx.lock(&[format!("theatre-list/{session}")])?;
    let view = session_in(tx, session)?;
    let sr = waiting::entry_in(tx, entry)?;
    if !waiting::list_of(&sr).is_some_and(|l| l.admitted()) {
        return Err(TheatreError::Field(
            "entry",
            "Only inpatient and day-case entries go on a theatre list.".into(),
        ));
    }
    if waiting::state_of(&sr) != State::Waiting {
        return Err(TheatreError::Refused(
            Some("entry"),
            format!(
                "The entry is {}: only a waiting entry can be put on a list.",
                waiting::state_of(&sr).label().to_lowercase()
            ),
        ));
    }
    let (minutes, default) = entry_estimate_in(tx, &sr)?;
    let total = view.booked_minutes + minutes;
    if total > view.length_minutes && !accept_overrun {
        return Err(TheatreError::Refused(
            Some("accept-overrun"),
            format!(
                "The list would over-run the session by {} minutes ({} minutes estimated in a {}-minute session): accept the over-run to add the case.",
                total - view.length_minutes,
                total,
                view.length_minutes
            ),
        ));
    }
    let patient = rid(&sr["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let order = view
        .cases
        .iter()
        .filter(|c| c.status != "cancelled")
        .count() as i64
        + 1;
    let at = view.start + Duration::minutes(view.booked_minutes);
    let mut participants = vec![
        json!({"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"}),
        json!({"actor": {"reference": format!("Practitioner/{}", view.surgeon)}, "status": "accepted",
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}]}),
        json!({"actor": {"reference": format!("Location/{}", view.theatre)}, "status": "accepted"}),
    ];
    if let Some(a) = &view.anaesthetist {
        participants.push(json!({"actor": {"reference": format!("Practitioner/{a}")}, "status": "accepted",
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "SPRF"}]}]}));
    }
    let mut reason = sr["code"].clone();
    if reason.is_null() {
        reason = json!({"text": "Procedure not named"});
    }
    let appt = json!({"resourceType": "Appointment", "status": "booked",
    "serviceCategory": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "theatre-case"}]}],
    "serviceType": [{"coding": [{"system": TREATMENT_FUNCTION_SYSTEM, "code": view.specialty}]}],
    "reasonCode": [reason],
    "basedOn": [{"reference": format!("ServiceRequest/{entry}")}],
    "start": fhir_time(at), "end": fhir_time(at + Duration::minutes(minutes)),
    "minutesDuration": minutes,
    "participant": participants,
    "extension": [{"url": CASE_EXT, "extension": [
        {"url": "session", "valueReference": {"reference": format!("Slot/{session}")}},
        {"url": "order", "valueInteger": order},
        {"url": "minutes", "valueInteger": minutes},
        {"url": "estimate", "valueCode": if default { "default" } else { "history" }},
    ]}]});
    let id = tx.save(appt)?.id;
    waiting::book_in(tx, entry, &id)?;
    Ok(id)
}

/// Adds a case (`theatres-list`).
pub fn add_case(
    svc: &FhirService,
    access: &dyn Access,
    session: &str,
    entry: &str,
    accept_overrun: bool,
) -> Result<String, TheatreError> {
    audited(svc, access, "theatres-list", "C", |tx| {
        add_case_in(tx, session, entry, accept_overrun)
    })
}

/// Locks and reads a case.
pub fn case_in(tx: &mut Tx<'_>, id: &str) -> Result<Value, TheatreError> {
    tx.lock(&[format!("Appointment/{id}")])?;
    tx.get("Appointment", id)?
        .filter(is_case)
        .ok_or_else(|| TheatreError::NotFound(format!("There is no theatre case {id}.")))
}

/// Moves a case one place up (`up`) or down its list; a case already
/// started keeps its place.
pub fn move_in(tx: &mut Tx<'_>, case: &str, up: bool) -> Result<(), TheatreError> {
    let a = case_in(tx, case)?;
    let session = case_session(&a).unwrap_or_default().to_owned();
    tx.lock(&[format!("theatre-list/{session}")])?;
    let view = session_in(tx, &session)?;
    let live: Vec<&Case> = view
        .cases
        .iter()
        .filter(|c| c.status != "cancelled")
        .collect();
    let Some(i) = live.iter().position(|c| c.id == case) else {
        return Err(TheatreError::Refused(
            None,
            "A cancelled case has no place on the list.".into(),
        ));
    };
    let j = if up {
        i.checked_sub(1)
    } else {
        Some(i + 1).filter(|j| *j < live.len())
    };
    let Some(j) = j else {
        return Ok(());
    };
    if live[i].step.is_some() || live[j].step.is_some() {
        return Err(TheatreError::Refused(
            None,
            "A case already sent for keeps its place on the list.".into(),
        ));
    }
    let (oi, oj) = (live[i].order, live[j].order);
    for (id, order) in [(live[i].id.clone(), oj), (live[j].id.clone(), oi)] {
        let mut c = case_in(tx, &id)?;
        set_sub(
            &mut c,
            CASE_EXT,
            "order",
            Some(json!({"valueInteger": order})),
        );
        tx.save(c)?;
    }
    replan_in(tx, &session, view.start)
}

/// Reorders a case (`theatres-list`).
pub fn move_case(
    svc: &FhirService,
    access: &dyn Access,
    case: &str,
    up: bool,
) -> Result<(), TheatreError> {
    audited(svc, access, "theatres-list", "U", |tx| {
        move_in(tx, case, up)
    })
}

/// Cancels a case with the reason (an on-the-day cancellation when on the
/// session's day): the entry goes back to waiting, so the patient is not
/// lost from the list; the cases after it move up.
pub fn cancel_in(
    tx: &mut Tx<'_>,
    case: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), TheatreError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(TheatreError::Field(
            "reason",
            "Give the reason for the cancellation.".into(),
        ));
    }
    let mut a = case_in(tx, case)?;
    if a["status"] != "booked" || step_time(&a, Step::KnifeToSkin).is_some() {
        return Err(TheatreError::Refused(
            None,
            "Only a booked case not yet operated on can be cancelled.".into(),
        ));
    }
    let session = case_session(&a).unwrap_or_default().to_owned();
    a["status"] = json!("cancelled");
    a["cancelationReason"] = json!({"text": reason});
    set_sub(
        &mut a,
        CASE_EXT,
        "cancelled",
        Some(json!({"valueDateTime": fhir_time(now)})),
    );
    tx.save(a.clone())?;
    if let Some(entry) = case_entry(&a) {
        let sr = waiting::entry_in(tx, entry)?;
        if waiting::booked(&sr) == Some(case) {
            waiting::unbook_in(tx, entry)?;
        }
    }
    let start = session_in(tx, &session)?.start;
    replan_in(tx, &session, start)
}

/// Cancels a case (`theatres-case`).
pub fn cancel(
    svc: &FhirService,
    access: &dyn Access,
    case: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), TheatreError> {
    audited(svc, access, "theatres-case", "U", |tx| {
        cancel_in(tx, case, reason, now)
    })
}

/// The sessions (Slot ids) a conflict check would name for a surgeon between
/// two times: the same person in another session.
pub fn conflicts_in(tx: &mut Tx<'_>, session: &str) -> Result<Vec<String>, TheatreError> {
    Ok(session_in(tx, session)?.conflicts)
}
