//! Booking from the outpatient waiting list, offers, rebooking and
//! cancellation.
//!
//! # Booking ([`book_in`])
//!
//! An outpatient waiting-list entry (a `ServiceRequest` of
//! [`crate::waiting`], list `outpatient-new` or `outpatient-follow-up`,
//! `active` and not booked) is booked into a free slot of its specialty and
//! kind (a new-patient entry into a new slot, a follow-up into a follow-up
//! slot), in one transaction that locks the Slot and the entry: the
//! `Appointment` (`booked`, `slot`, `start`/`end`, participants patient,
//! consultant and clinic, `basedOn` the entry, `appointmentType`, mode),
//! the Slot `busy` (by [`super::SlotStatus`]), and the entry marked booked (`waiting::book_in`). The
//! write rule [`super::SlotRule`] is asked on the Appointment as on any
//! write, so a slot taken by anyone on any channel is refused.
//!
//! # Offers and the trust's access policy ([`offer_in`], [`answer_in`])
//!
//! An offer of dates is a `Communication` (category [`super::OFFER_CODE`],
//! `basedOn` the entry, `about` each slot offered, `sent` the day offered). It is
//! **reasonable** when it gives at least [`NOTICE_DAYS`] days' notice and a
//! choice of at least two dates ([`reasonable`]); that is recorded on the
//! offer ([`super::OFFER_EXT`] `reasonable`). The patient's answer is
//! recorded on it (`answer` `accepted` | `declined`): accepting books the
//! slot chosen; a patient who has declined two reasonable offers for the
//! same entry is referred for clinical review — a `Task`
//! ([`super::DECLINED_REVIEW_CODE`]) to the entry's consultant.
//!
//! # Cancelling and rebooking ([`cancel_in`], [`rebook_in`])
//!
//! A booked appointment is cancelled by the patient or the hospital with a
//! reason (`cancelationReason`, [`super::CANCELLED_BY_EXT`]); its slot is
//! freed and the entry goes back to waiting (`waiting::unbook_in`) so that
//! no cancellation loses the patient from the list. Rebooking cancels the
//! old appointment with its reason, books the new slot for the same entry
//! (same pathway) and links the two ([`super::REBOOKED_EXT`]).

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::clinics::{SlotView, Template, date_text};
use super::{
    CANCELLED_BY_EXT, DECLINED_REVIEW_CODE, Kind, MODE_EXT, Mode, OFFER_CODE, OFFER_EXT,
    OutpatientsError, REBOOKED_EXT, SPECIALTY_SYSTEM, begin, set_ext, sub,
};
use crate::fhir::{concept_text, reference_id};
use crate::pmi::TASK_SYSTEM;

/// The notice a reasonable offer gives, in days (three weeks).
pub const NOTICE_DAYS: i64 = 21;
use crate::waiting::{self, LIST_SYSTEM as WAITING_LIST_SYSTEM, List};

fn fhir_time(now: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(now)
}

/// A FHIR instant to the millisecond, UTC.
fn sent_time(now: OffsetDateTime) -> String {
    let s = fhir_time(now);
    format!(
        "{}.{:03}Z",
        s.trim_end_matches('Z'),
        now.to_offset(time::UtcOffset::UTC).millisecond()
    )
}

// ---------------------------------------------------------------- the entry

/// An outpatient waiting-list entry, as booking reads it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    pub patient: String,
    pub kind: Kind,
    pub specialty: Option<String>,
    /// `EpisodeOfCare` id of the RTT pathway.
    pub pathway: Option<String>,
    /// `Practitioner` id of the consultant, when named.
    pub consultant: Option<String>,
    /// `Appointment` id it is booked into.
    pub booked: Option<String>,
    pub status: String,
}

/// A treatment function code on a resource (any coding of
/// [`SPECIALTY_SYSTEM`] among its concepts).
pub fn specialty_of(r: &Value) -> Option<String> {
    fn walk(v: &Value) -> Option<String> {
        match v {
            Value::Object(o) => {
                if o.get("system").and_then(Value::as_str) == Some(SPECIALTY_SYSTEM) {
                    return o.get("code").and_then(Value::as_str).map(str::to_owned);
                }
                o.iter()
                    .filter(|(k, _)| k.as_str() != "contained")
                    .find_map(|(_, v)| walk(v))
            }
            Value::Array(a) => a.iter().find_map(walk),
            _ => None,
        }
    }
    walk(r)
}

impl Entry {
    /// The entry a `ServiceRequest` is, if it is an outpatient one.
    pub fn of(sr: &Value) -> Option<Entry> {
        let kind = match waiting::list_of(sr)? {
            List::OutpatientNew => Kind::New,
            List::OutpatientFollowUp => Kind::FollowUp,
            _ => return None,
        };
        Some(Entry {
            id: sr["id"].as_str()?.to_owned(),
            patient: reference_id(&sr["subject"], "Patient")?.to_owned(),
            kind,
            specialty: specialty_of(sr),
            pathway: waiting::pathway_of(sr).map(str::to_owned),
            consultant: sr["performer"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|r| reference_id(r, "Practitioner"))
                .map(str::to_owned),
            booked: waiting::booked(sr).map(str::to_owned),
            status: sr["status"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

/// Locks and reads an outpatient entry in `tx`.
pub(crate) fn entry_in(tx: &mut Tx<'_>, id: &str) -> Result<(Value, Entry), OutpatientsError> {
    let sr = waiting::entry_in(tx, id)?;
    let e = Entry::of(&sr).ok_or_else(|| {
        OutpatientsError::invalid(
            "entry",
            format!("ServiceRequest/{id} is not on an outpatient waiting list."),
        )
    })?;
    Ok((sr, e))
}

// ---------------------------------------------------------------- the lists

/// An outpatient waiting-list entry as the booking page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub entry: Entry,
    pub patient: String,
    pub nhs_number: Option<String>,
    pub what: String,
    pub since: String,
}

/// The outpatient entries still waiting (active and not booked), oldest
/// first, as the caller may see them, and how many were withheld.
pub fn waiting_to_book(
    svc: &FhirService,
    access: &dyn Access,
) -> Result<(Vec<Waiting>, usize), OutpatientsError> {
    let found = crate::fhir::search_as_all(
        svc,
        access,
        "ServiceRequest",
        &[
            (
                "category",
                format!(
                    "{WAITING_LIST_SYSTEM}|outpatient-new,{WAITING_LIST_SYSTEM}|outpatient-follow-up"
                ),
            ),
            ("status", "active".to_owned()),
            ("_include", "ServiceRequest:subject".to_owned()),
        ],
    )?;
    let mut out: Vec<Waiting> = found
        .resources
        .iter()
        .filter_map(|sr| {
            let e = Entry::of(sr)?;
            if e.booked.is_some() {
                return None;
            }
            let p = found
                .included
                .iter()
                .find(|p| p["resourceType"] == "Patient" && p["id"] == e.patient.as_str());
            Some(Waiting {
                patient: p
                    .and_then(crate::orders::request::person_name)
                    .unwrap_or_else(|| e.patient.clone()),
                nhs_number: p.and_then(|p| {
                    p["identifier"]
                        .as_array()?
                        .iter()
                        .find(|i| i["system"] == wardline_fhir::NHS_NUMBER_SYSTEM)?["value"]
                        .as_str()
                        .map(str::to_owned)
                }),
                what: concept_text(&sr["code"]).unwrap_or_else(|| e.kind.label().to_owned()),
                since: sr["authoredOn"].as_str().unwrap_or_default().to_owned(),
                entry: e,
            })
        })
        .collect();
    out.sort_by(|a, b| a.since.cmp(&b.since));
    Ok((out, found.withheld))
}

// ---------------------------------------------------------------- free slots

/// A free slot offered for an entry, with its clinic.
#[derive(Debug, Clone, Serialize)]
pub struct Offerable {
    pub slot: SlotView,
    pub clinic: String,
    pub schedule: String,
}

/// The free slots (from `from` on, at most `limit`) of the entry's
/// specialty and kind, earliest first.
pub fn free_slots(
    svc: &FhirService,
    access: &dyn Access,
    entry: &str,
    from: OffsetDateTime,
    limit: usize,
) -> Result<Vec<Offerable>, OutpatientsError> {
    let sr = svc
        .read_as(access, "ServiceRequest", entry)?
        .ok_or_else(|| {
            OutpatientsError::NotFound(format!("There is no waiting-list entry {entry}."))
        })?;
    let e = Entry::of(&sr).ok_or_else(|| {
        OutpatientsError::invalid("entry", "This entry is not on an outpatient waiting list.")
    })?;
    let mut params = vec![
        ("status", "free".to_owned()),
        ("start", format!("ge{}", fhir_time(from))),
        ("_include", "Slot:schedule".to_owned()),
    ];
    if let Some(sp) = &e.specialty {
        params.push(("service-type", format!("{SPECIALTY_SYSTEM}|{sp}")));
    }
    let found = crate::fhir::search_as_all(svc, access, "Slot", &params)?;
    let mut out: Vec<Offerable> = found
        .resources
        .iter()
        .filter(|s| Kind::of(s) == Some(e.kind))
        .filter_map(|s| {
            let sched = reference_id(&s["schedule"], "Schedule")?;
            let clinic = found
                .included
                .iter()
                .find(|r| r["resourceType"] == "Schedule" && r["id"] == sched)
                .and_then(Template::of)?;
            Some(Offerable {
                slot: SlotView::of(s),
                clinic: clinic.name,
                schedule: sched.to_owned(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.slot.start.cmp(&b.slot.start));
    out.truncate(limit);
    Ok(out)
}

// ---------------------------------------------------------------- booking

/// Books `entry` into `slot` as the person signed in; returns the
/// Appointment id.
pub fn book(
    svc: &FhirService,
    access: &dyn Access,
    entry: &str,
    slot: &str,
    now: OffsetDateTime,
) -> Result<String, OutpatientsError> {
    let mut tx = begin(svc, access, "outpatients-book", "C")?;
    let id = book_in(&mut tx, entry, slot, now)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of booking, in `tx` (see the module documentation).
pub fn book_in(
    tx: &mut Tx<'_>,
    entry: &str,
    slot: &str,
    now: OffsetDateTime,
) -> Result<String, OutpatientsError> {
    tx.lock(&[format!("Slot/{slot}")])?;
    let (_, e) = entry_in(tx, entry)?;
    if e.status != "active" {
        return Err(OutpatientsError::Conflict(format!(
            "This waiting-list entry is {}: only a patient still waiting is booked.",
            e.status
        )));
    }
    if let Some(a) = &e.booked {
        return Err(OutpatientsError::Conflict(format!(
            "This patient is already booked (Appointment/{a}): rebook that appointment instead."
        )));
    }
    let s = tx
        .get("Slot", slot)?
        .ok_or_else(|| OutpatientsError::invalid("slot", format!("There is no slot {slot}.")))?;
    if s["status"] != "free" {
        return Err(OutpatientsError::Conflict(
            "This slot has just been taken by another booking. Choose another slot.".into(),
        ));
    }
    let kind = Kind::of(&s);
    if kind != Some(e.kind) {
        return Err(OutpatientsError::invalid(
            "slot",
            format!(
                "This is a {} slot; the patient is on the {} list.",
                kind.map_or("unmarked", |k| k.label()).to_lowercase(),
                e.kind.label().to_lowercase()
            ),
        ));
    }
    if let (Some(want), Some(has)) = (&e.specialty, specialty_of(&s))
        && *want != has
    {
        return Err(OutpatientsError::invalid(
            "slot",
            format!("This slot is in specialty {has}; the patient waits for {want}."),
        ));
    }
    if s["start"]
        .as_str()
        .is_some_and(|st| st < fhir_time(now).as_str())
    {
        return Err(OutpatientsError::invalid(
            "slot",
            "This slot is in the past: choose one still to come.",
        ));
    }
    let sched_id = reference_id(&s["schedule"], "Schedule")
        .unwrap_or_default()
        .to_owned();
    let sched = tx.get("Schedule", &sched_id)?.ok_or_else(|| {
        OutpatientsError::Conflict(format!("The slot's clinic Schedule/{sched_id} is gone."))
    })?;
    let clinic = Template::of(&sched);
    let mut participants = vec![
        json!({"actor": {"reference": format!("Patient/{}", e.patient)},
        "required": "required", "status": "accepted"}),
    ];
    if let Some(c) = &clinic {
        participants.push(
            json!({"actor": {"reference": format!("Practitioner/{}", c.consultant)},
            "required": "required", "status": "accepted"}),
        );
        participants.push(
            json!({"actor": {"reference": format!("Location/{}", c.location)},
            "required": "required", "status": "accepted"}),
        );
    }
    let mode = Mode::of(&s);
    let appt = json!({
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": format!("Slot/{slot}")}],
        "start": s["start"].clone(),
        "end": s["end"].clone(),
        "created": date_text(tx.time_zone().date_of(now)),
        "serviceType": s["serviceType"].clone(),
        "appointmentType": e.kind.concept(),
        "basedOn": [{"reference": format!("ServiceRequest/{entry}")}],
        "participant": participants,
        "description": clinic.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
        "extension": [{"url": MODE_EXT, "valueCode": mode.code()}],
    });
    let saved = tx.save(appt)?;
    crate::waiting::book_in(tx, entry, &saved.id)?;
    Ok(saved.id)
}

// ---------------------------------------------------------------- cancelling

/// Who cancelled an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancelledBy {
    Patient,
    Hospital,
}

impl CancelledBy {
    pub fn code(self) -> &'static str {
        match self {
            CancelledBy::Patient => "patient",
            CancelledBy::Hospital => "hospital",
        }
    }
    pub fn parse(s: &str) -> Option<CancelledBy> {
        match s {
            "patient" => Some(CancelledBy::Patient),
            "hospital" => Some(CancelledBy::Hospital),
            _ => None,
        }
    }
}

/// Locks and reads a booked appointment.
pub(crate) fn booked_in(tx: &mut Tx<'_>, id: &str) -> Result<Value, OutpatientsError> {
    tx.lock(&[format!("Appointment/{id}")])?;
    let a = tx
        .get("Appointment", id)?
        .ok_or_else(|| OutpatientsError::NotFound(format!("There is no appointment {id}.")))?;
    Ok(a)
}

/// The waiting-list entry an appointment was booked from.
pub fn entry_of(appt: &Value) -> Option<&str> {
    appt["basedOn"]
        .as_array()?
        .iter()
        .find_map(|r| reference_id(r, "ServiceRequest"))
}

/// Cancels a booked appointment, as the person signed in.
pub fn cancel(
    svc: &FhirService,
    access: &dyn Access,
    appointment: &str,
    by: CancelledBy,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), OutpatientsError> {
    let mut tx = begin(svc, access, "outpatients-cancel", "U")?;
    cancel_in(&mut tx, appointment, by, reason, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of cancelling, in `tx` (see the module documentation).
pub fn cancel_in(
    tx: &mut Tx<'_>,
    appointment: &str,
    by: CancelledBy,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), OutpatientsError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(OutpatientsError::invalid(
            "reason",
            "Enter why the appointment is cancelled.",
        ));
    }
    let mut a = booked_in(tx, appointment)?;
    if a["status"] != "booked" {
        return Err(OutpatientsError::Conflict(format!(
            "This appointment is {}: only a booked appointment is cancelled.",
            a["status"].as_str().unwrap_or("of unknown status")
        )));
    }
    a["status"] = json!("cancelled");
    a["cancelationReason"] = json!({"text": reason});
    set_ext(&mut a, CANCELLED_BY_EXT, "valueCode", json!(by.code()));
    a["comment"] = json!(format!(
        "Cancelled by the {} on {}: {reason}",
        by.code(),
        fhir_time(now)
    ));
    let entry = entry_of(&a).map(str::to_owned);
    // The slot is freed by `super::SlotStatus` at commit; the entry now, so
    // a rebook in the same transaction can book it again.
    tx.save(a)?;
    if let Some(e) = entry {
        crate::waiting::release_in(tx, &e, appointment)?;
    }
    Ok(())
}

/// Rebooks an appointment into `slot`; returns the new Appointment id.
pub fn rebook(
    svc: &FhirService,
    access: &dyn Access,
    appointment: &str,
    slot: &str,
    by: CancelledBy,
    reason: &str,
    now: OffsetDateTime,
) -> Result<String, OutpatientsError> {
    let mut tx = begin(svc, access, "outpatients-book", "U")?;
    let id = rebook_in(&mut tx, appointment, slot, by, reason, now)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of rebooking, in `tx`: the old appointment cancelled with its
/// reason, the same entry booked into `slot`, the two linked.
pub fn rebook_in(
    tx: &mut Tx<'_>,
    appointment: &str,
    slot: &str,
    by: CancelledBy,
    reason: &str,
    now: OffsetDateTime,
) -> Result<String, OutpatientsError> {
    let a = booked_in(tx, appointment)?;
    let entry = entry_of(&a).map(str::to_owned).ok_or_else(|| {
        OutpatientsError::Conflict(
            "This appointment was not booked from a waiting list: cancel it and book afresh."
                .into(),
        )
    })?;
    cancel_in(tx, appointment, by, reason, now)?;
    let new = book_in(tx, &entry, slot, now)?;
    let mut old = booked_in(tx, appointment)?;
    set_ext(
        &mut old,
        REBOOKED_EXT,
        "valueReference",
        json!({"reference": format!("Appointment/{new}")}),
    );
    tx.save(old)?;
    Ok(new)
}

// ---------------------------------------------------------------- offers

/// Whether an offer of `starts` (FHIR instants) made at `now` is
/// reasonable: every date at least [`NOTICE_DAYS`] away and at least two
/// different dates.
pub fn reasonable(starts: &[String], now: OffsetDateTime) -> bool {
    let limit = fhir_time(now + time::Duration::days(NOTICE_DAYS));
    let mut days: Vec<&str> = starts.iter().filter_map(|s| s.get(..10)).collect();
    days.sort_unstable();
    days.dedup();
    days.len() >= 2 && starts.iter().all(|s| s.as_str() >= limit.as_str())
}

/// Records an offer of `slots` for `entry`; returns the offer's id and
/// whether it is reasonable.
pub fn offer(
    svc: &FhirService,
    access: &dyn Access,
    entry: &str,
    slots: &[String],
    now: OffsetDateTime,
) -> Result<(String, bool), OutpatientsError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "outpatients-book", "C")?;
    let r = offer_in(&mut tx, entry, slots, who.as_deref(), now)?;
    tx.commit()?;
    Ok(r)
}

/// The rule of offering, in `tx`.
pub fn offer_in(
    tx: &mut Tx<'_>,
    entry: &str,
    slots: &[String],
    by: Option<&str>,
    now: OffsetDateTime,
) -> Result<(String, bool), OutpatientsError> {
    if slots.is_empty() {
        return Err(OutpatientsError::invalid(
            "slots",
            "Choose the dates offered.",
        ));
    }
    let (_, e) = entry_in(tx, entry)?;
    let mut starts = Vec::new();
    let mut about = Vec::new();
    for s in slots {
        let sl = tx
            .get("Slot", s)?
            .ok_or_else(|| OutpatientsError::invalid("slots", format!("There is no slot {s}.")))?;
        if sl["status"] != "free" {
            return Err(OutpatientsError::Conflict(format!(
                "The slot at {} is no longer free.",
                sl["start"].as_str().unwrap_or("?")
            )));
        }
        starts.push(sl["start"].as_str().unwrap_or_default().to_owned());
        about.push(json!({"reference": format!("Slot/{s}")}));
    }
    let ok = reasonable(&starts, now);
    let mut c = json!({
        "resourceType": "Communication",
        "status": "completed",
        "category": [{"coding": [{"system": TASK_SYSTEM, "code": OFFER_CODE,
            "display": "Appointment offer"}]}],
        "subject": {"reference": format!("Patient/{}", e.patient)},
        "basedOn": [{"reference": format!("ServiceRequest/{entry}")}],
        "about": about,
        // To the millisecond: two offers made in one second still have an order.
        "sent": sent_time(now),
        "payload": [{"contentString": format!("Offered: {}", starts.join(", "))}],
        "extension": [{"url": OFFER_EXT, "extension": [
            {"url": "reasonable", "valueBoolean": ok}]}],
    });
    if let Some(b) = by {
        c["sender"] = json!({"reference": b});
    }
    Ok((tx.save(c)?.id, ok))
}

/// The patient's answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Accepted: the slot chosen is booked.
    Accepted(String),
    Declined,
}

/// What answering did: the appointment booked, or the review Task raised
/// after a second reasonable offer declined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Answered {
    pub appointment: Option<String>,
    pub review_task: Option<String>,
}

/// Records the patient's answer to an offer, as the person signed in.
pub fn answer(
    svc: &FhirService,
    access: &dyn Access,
    offer: &str,
    answer: &Answer,
    now: OffsetDateTime,
) -> Result<Answered, OutpatientsError> {
    let mut tx = begin(svc, access, "outpatients-book", "U")?;
    let r = answer_in(&mut tx, offer, answer, now)?;
    tx.commit()?;
    Ok(r)
}

fn offer_part<'a>(c: &'a Value, p: &str) -> Option<&'a Value> {
    sub(c, OFFER_EXT, p)
}

/// The rule of answering an offer, in `tx` (see the module documentation).
pub fn answer_in(
    tx: &mut Tx<'_>,
    offer: &str,
    answer: &Answer,
    now: OffsetDateTime,
) -> Result<Answered, OutpatientsError> {
    tx.lock(&[format!("Communication/{offer}")])?;
    let mut c = tx
        .get("Communication", offer)?
        .ok_or_else(|| OutpatientsError::NotFound(format!("There is no offer {offer}.")))?;
    if offer_part(&c, "answer").is_some() {
        return Err(OutpatientsError::Conflict(
            "This offer has already been answered.".into(),
        ));
    }
    let refs = |t: &str| -> Vec<String> {
        let field = if t == "Slot" { "about" } else { "basedOn" };
        c[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| reference_id(r, t))
            .map(str::to_owned)
            .collect()
    };
    let entry = refs("ServiceRequest").into_iter().next().ok_or_else(|| {
        OutpatientsError::Conflict("The offer names no waiting-list entry.".into())
    })?;
    let offered = refs("Slot");
    let code = match answer {
        Answer::Accepted(_) => "accepted",
        Answer::Declined => "declined",
    };
    if let Some(ext) = c["extension"]
        .as_array_mut()
        .and_then(|es| es.iter_mut().find(|e| e["url"] == OFFER_EXT))
        && let Some(subs) = ext["extension"].as_array_mut()
    {
        subs.push(json!({"url": "answer", "valueCode": code}));
        subs.push(json!({"url": "answered", "valueDateTime": fhir_time(now)}));
    }
    tx.save(c)?;
    let mut out = Answered::default();
    match answer {
        Answer::Accepted(slot) => {
            if !offered.contains(slot) {
                return Err(OutpatientsError::invalid(
                    "slot",
                    "Choose one of the dates offered.",
                ));
            }
            out.appointment = Some(book_in(tx, &entry, slot, now)?);
        }
        Answer::Declined => {
            let declined = declined_reasonable_in(tx, &entry)?;
            if declined >= 2 {
                out.review_task = Some(review_task_in(tx, &entry, declined, now)?);
            }
        }
    }
    Ok(out)
}

/// How many reasonable offers for `entry` the patient has declined.
pub fn declined_reasonable_in(tx: &mut Tx<'_>, entry: &str) -> Result<usize, OutpatientsError> {
    let offers = tx.find(
        "Communication",
        &format!("based-on=ServiceRequest/{entry}&category={TASK_SYSTEM}|{OFFER_CODE}"),
    )?;
    Ok(offers
        .iter()
        .filter(|c| {
            offer_part(c, "reasonable").is_some_and(|v| v["valueBoolean"] == true)
                && offer_part(c, "answer").is_some_and(|v| v["valueCode"] == "declined")
        })
        .count())
}

/// An offer of dates as the booking page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferView {
    /// `Communication` id.
    pub id: String,
    /// When it was made (instant).
    pub sent: String,
    /// The dates offered: (slot id, start), earliest first.
    pub dates: Vec<(String, String)>,
    pub reasonable: bool,
    /// `accepted` or `declined`; none while the patient has not answered.
    pub answer: Option<String>,
}

/// The offers made for `entry`, newest first, and how many reasonable ones
/// the patient has declined (two raise a clinical review), read in one
/// audited transaction (`outpatients-offers`).
pub fn offers(
    svc: &FhirService,
    access: &dyn Access,
    entry: &str,
) -> Result<(Vec<OfferView>, usize), OutpatientsError> {
    let mut tx = begin(svc, access, "outpatients-offers", "R")?;
    tx.audit_reads();
    let found = tx.find(
        "Communication",
        &format!("based-on=ServiceRequest/{entry}&category={TASK_SYSTEM}|{OFFER_CODE}"),
    )?;
    let mut out = Vec::new();
    for c in &found {
        let mut dates = Vec::new();
        for r in c["about"].as_array().into_iter().flatten() {
            if let Some(id) = reference_id(r, "Slot") {
                let start = tx
                    .get("Slot", id)?
                    .and_then(|s| s["start"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                dates.push((id.to_owned(), start));
            }
        }
        dates.sort_by(|a, b| a.1.cmp(&b.1));
        out.push(OfferView {
            id: c["id"].as_str().unwrap_or_default().to_owned(),
            sent: c["sent"].as_str().unwrap_or_default().to_owned(),
            dates,
            reasonable: offer_part(c, "reasonable").is_some_and(|v| v["valueBoolean"] == true),
            answer: offer_part(c, "answer")
                .and_then(|v| v["valueCode"].as_str())
                .map(str::to_owned),
        });
    }
    // Newest first by the instant (any precision); at the same instant an
    // unanswered offer before an answered one.
    let at = |o: &OfferView| wardline_fhir::datetime::parse_range(&o.sent).map(|(ms, _)| ms);
    out.sort_by(|a, b| {
        at(b)
            .cmp(&at(a))
            .then(a.answer.is_some().cmp(&b.answer.is_some()))
            .then(b.id.cmp(&a.id))
    });
    let declined = declined_reasonable_in(&mut tx, entry)?;
    tx.commit()?;
    Ok((out, declined))
}

/// The clinical review Task after two declined reasonable offers
/// ([`crate::tasks::raise_in`]: one open at a time), owned by the
/// entry's consultant.
fn review_task_in(
    tx: &mut Tx<'_>,
    entry: &str,
    declined: usize,
    now: OffsetDateTime,
) -> Result<String, OutpatientsError> {
    let focus = format!("ServiceRequest/{entry}");
    if let Some(t) = crate::tasks::open_in(tx, &focus, TASK_SYSTEM, DECLINED_REVIEW_CODE)?.first() {
        return Ok(t["id"].as_str().unwrap_or_default().to_owned());
    }
    let (sr, e) = entry_in(tx, entry)?;
    let spec = crate::tasks::Spec {
        system: TASK_SYSTEM.to_owned(),
        code: DECLINED_REVIEW_CODE.to_owned(),
        display: Some("Clinical review: patient declined two reasonable offers".to_owned()),
        patient: json!({"reference": format!("Patient/{}", e.patient)}),
        focus: json!({"reference": focus,
            "display": concept_text(&sr["code"]).unwrap_or_else(|| "Outpatient waiting-list entry".into())}),
        owner: e
            .consultant
            .map(|c| json!({"reference": format!("Practitioner/{c}")})),
        priority: "routine".to_owned(),
        due: None,
        description: format!(
            "The patient has declined {declined} reasonable offers of an appointment. Under the trust's access policy, review whether to keep them on the waiting list or discharge them to their GP."
        ),
        requester: None,
        encounter: None,
    };
    Ok(crate::tasks::raise_in(tx, &spec, now)?.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_offer_is_reasonable_with_three_weeks_notice_and_two_dates() {
        let now = datetime!(2026-12-01 10:00 UTC);
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(reasonable(
            &s(&["2026-12-22T10:00:00Z", "2026-12-29T09:00:00Z"]),
            now
        ));
        // Two dates, one of them with less than three weeks' notice.
        assert!(!reasonable(
            &s(&["2026-12-21T09:00:00Z", "2026-12-29T09:00:00Z"]),
            now
        ));
        // Two slots on the same day are one date.
        assert!(!reasonable(
            &s(&["2026-12-29T09:00:00Z", "2026-12-29T10:00:00Z"]),
            now
        ));
    }
}
