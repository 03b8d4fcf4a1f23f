//! Referrals in and their triage (issue 19): a referral received — from a
//! GP over BaRS ([`super::inbound`]) or a plain FHIR `POST ServiceRequest`
//! ([`IntakeHook`]), from another consultant of the trust, or typed in from
//! a letter ([`intake_in`]) — is a received referral (state `sent`,
//! direction `in`) with the date it was received (sub-extension
//! `received` of [`super::REFERRAL_EXT`], `valueDate`) and a triage Task.
//!
//! The consultant triages it:
//!
//! * **accept** with a priority ([`accept_in`]): the referral is accepted
//!   (the response to the referrer as [`super::respond_in`] sends it), an
//!   RTT pathway opens with its clock started on the date the referral was
//!   **received** (status 10: the rules suite's Rule 1) and an
//!   outpatient-new waiting-list entry is added;
//! * **reject** with a reason back to the referrer: [`super::respond_in`];
//! * **redirect** to another service ([`redirect_in`]): within the trust
//!   the referral waits for the other consultant's triage with its
//!   received date kept (the clock, when the pathway opens, still starts
//!   then: it continues); to another provider the referral is closed here
//!   with the reason and a pathway records the transfer (10 then 21: the
//!   clock continues at the other provider and leaves this trust's PTL).

use serde::Serialize;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

use super::{
    CATEGORY_SYSTEM, REFERRAL_EXT, REFERRAL_ID_SYSTEM, ReferralError, State, TRIAGE_CODE, begin,
    close_tasks_in, is_inbound, load, part, raise_task_in, respond_in, set_part, state_of,
};
use crate::fhir::reference_id;
use crate::rtt::{self, NewPathway, Status, TREATMENT_FUNCTION_EXT, TREATMENT_FUNCTION_SYSTEM};
use crate::transfers::fhir_time;
use crate::waiting::{self, List, NewEntry, Priority};

/// The date a received referral was received: its `received` part, else
/// the date it was stored, else its `authoredOn`.
pub fn received(sr: &Value) -> Option<Date> {
    let part = sr["extension"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["url"] == REFERRAL_EXT))
        .and_then(|e| e["extension"].as_array())
        .and_then(|ps| ps.iter().find(|p| p["url"] == "received"))
        .and_then(|p| p["valueDate"].as_str().or(p["valueDateTime"].as_str()));
    part.or(sr["meta"]["lastUpdated"].as_str())
        .or(sr["authoredOn"].as_str())
        .and_then(rtt::parse_date)
}

/// The specialty a referral is addressed to (treatment function code).
pub fn specialty(sr: &Value) -> Option<&str> {
    sr["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == TREATMENT_FUNCTION_EXT)?["valueCoding"]["code"]
        .as_str()
}

fn set_specialty(sr: &mut Value, code: &str) {
    if !sr["extension"].is_array() {
        sr["extension"] = json!([]);
    }
    if let Some(es) = sr["extension"].as_array_mut() {
        es.retain(|e| e["url"] != TREATMENT_FUNCTION_EXT);
        es.push(json!({"url": TREATMENT_FUNCTION_EXT,
            "valueCoding": {"system": TREATMENT_FUNCTION_SYSTEM, "code": code}}));
    }
}

fn check_specialty(code: &str) -> Result<(), ReferralError> {
    if rtt::valid_specialty(code) {
        Ok(())
    } else {
        Err(ReferralError::Field(
            "specialty".into(),
            "Choose the specialty (a three-digit treatment function code).".into(),
        ))
    }
}

fn check_consultant(tx: &mut Tx<'_>, id: Option<&str>) -> Result<(), ReferralError> {
    if let Some(c) = id
        && tx.get("Practitioner", c)?.is_none()
    {
        return Err(ReferralError::Field(
            "consultant".into(),
            format!("There is no consultant Practitioner/{c}."),
        ));
    }
    Ok(())
}

/// Where a referral typed in came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Source {
    /// Another consultant of the trust (from the chart).
    Consultant,
    /// A letter, typed in (its scan attached).
    Letter,
}

/// A referral received other than over BaRS.
#[derive(Debug, Clone, PartialEq)]
pub struct Intake<'a> {
    /// Patient id.
    pub patient: &'a str,
    pub source: Source,
    /// Who referred, as written (a GP and practice on a letter); the
    /// requester's name when empty.
    pub from: &'a str,
    /// The referring `Practitioner` id (a consultant of the trust).
    pub requester: Option<&'a str>,
    /// Treatment function code of the service referred to.
    pub specialty: &'a str,
    /// The consultant referred to (`Practitioner` id).
    pub consultant: Option<&'a str>,
    /// `routine` | `urgent` | `asap` (BaRS priorities).
    pub priority: &'a str,
    pub reason: &'a str,
    /// The date the referral was received (the letter's date of receipt).
    pub received: Date,
    /// `DocumentReference` ids attached (a letter's scan).
    pub attachments: &'a [String],
}

/// Records a referral received from another consultant or typed in from
/// a letter, in `tx`: a received referral awaiting triage; its id.
pub fn intake_in(
    tx: &mut Tx<'_>,
    i: &Intake,
    now: OffsetDateTime,
) -> Result<String, ReferralError> {
    if tx.get("Patient", i.patient)?.is_none() {
        return Err(ReferralError::NotFound(format!(
            "There is no patient Patient/{}.",
            i.patient
        )));
    }
    check_specialty(i.specialty)?;
    check_consultant(tx, i.consultant)?;
    if !super::PRIORITIES.iter().any(|p| p.0 == i.priority) {
        return Err(ReferralError::Field(
            "priority".into(),
            "Choose the referral's priority.".into(),
        ));
    }
    if i.reason.trim().is_empty() {
        return Err(ReferralError::Field(
            "reason".into(),
            "Enter the reason for the referral.".into(),
        ));
    }
    if i.received > now.date() {
        return Err(ReferralError::Field(
            "received".into(),
            "The date received cannot be in the future.".into(),
        ));
    }
    let mut from = i.from.trim().to_owned();
    if let Some(r) = i.requester {
        let p = tx.get("Practitioner", r)?.ok_or_else(|| {
            ReferralError::Field("requester".into(), format!("There is no Practitioner/{r}."))
        })?;
        if from.is_empty() {
            from = crate::orders::request::person_name(&p).unwrap_or_default();
        }
    }
    if from.is_empty() {
        return Err(ReferralError::Field(
            "from".into(),
            "Enter who made the referral.".into(),
        ));
    }
    let mut docs = Vec::new();
    for a in i.attachments {
        let title = super::check_attachment(tx, &format!("DocumentReference/{a}"), i.patient)?;
        docs.push(json!({"reference": format!("DocumentReference/{a}"), "display": title}));
    }
    let mut requester = json!({"display": from});
    if let Some(r) = i.requester {
        requester["reference"] = json!(format!("Practitioner/{r}"));
    }
    let mut sr = json!({
        "resourceType": "ServiceRequest",
        "identifier": [{"system": REFERRAL_ID_SYSTEM, "value": uuid::Uuid::new_v4().to_string()}],
        "status": State::Sent.status(),
        "intent": "order",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "referral", "display": "Transfer of Care"}]}],
        "priority": i.priority,
        "code": {"text": match i.source { Source::Consultant => "Consultant referral", Source::Letter => "Referral letter" }},
        "subject": {"reference": format!("Patient/{}", i.patient)},
        "authoredOn": fhir_time(now),
        "requester": requester,
        "reasonCode": [{"text": i.reason.trim()}],
    });
    if let Some(c) = i.consultant {
        sr["performer"] = json!([{"reference": format!("Practitioner/{c}")}]);
    }
    if !docs.is_empty() {
        sr["supportingInfo"] = json!(docs);
    }
    set_specialty(&mut sr, i.specialty);
    set_part(&mut sr, "state", Some(("valueCode", State::Sent.code())));
    set_part(&mut sr, "direction", Some(("valueCode", "in")));
    set_part(
        &mut sr,
        "received",
        Some(("valueDate", &rtt_date(i.received))),
    );
    let saved = tx.save(sr)?;
    raise_task_in(
        tx,
        &saved.resource,
        TRIAGE_CODE,
        "Triage a referral received",
        &format!("A referral from {from} to triage: accept, reject or redirect it."),
        now,
    )?;
    Ok(saved.id)
}

fn rtt_date(d: Date) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    d.format(&f).unwrap_or_default()
}

/// The consultant's decision to accept.
#[derive(Debug, Clone, PartialEq)]
pub struct Accept<'a> {
    /// Routine, urgent or two-week wait.
    pub priority: Priority,
    /// Treatment function code.
    pub specialty: &'a str,
    /// The consultant whose list it goes on (`Practitioner` id).
    pub consultant: Option<&'a str>,
    pub note: Option<&'a str>,
}

/// What accepting made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// `EpisodeOfCare` id.
    pub pathway: String,
    /// The outpatient-new entry (`ServiceRequest` id).
    pub entry: String,
}

fn awaiting_triage(tx: &mut Tx<'_>, id: &str) -> Result<Value, ReferralError> {
    let sr = load(tx, id)?;
    if !is_inbound(&sr) || state_of(&sr) != Some(State::Sent) {
        return Err(ReferralError::Conflict(format!(
            "The referral is not awaiting triage (it is {}).",
            state_of(&sr).map_or("not a referral", |s| s.inbound_label())
        )));
    }
    Ok(sr)
}

/// Accepts a received referral with a priority, in `tx` (see the module
/// documentation).
pub fn accept_in(
    tx: &mut Tx<'_>,
    id: &str,
    a: &Accept,
    now: OffsetDateTime,
) -> Result<Accepted, ReferralError> {
    if a.priority.admitted() {
        return Err(ReferralError::Field(
            "priority".into(),
            "A referral is accepted as routine, urgent or two-week wait.".into(),
        ));
    }
    check_specialty(a.specialty)?;
    let sr = awaiting_triage(tx, id)?;
    let patient = reference_id(&sr["subject"], "Patient")
        .ok_or_else(|| ReferralError::Invalid("The referral names no patient.".into()))?
        .to_owned();
    let start = received(&sr).unwrap_or(now.date());
    respond_in(tx, id, true, "", now)?;
    let source = format!("ServiceRequest/{id}");
    let pathway = rtt::open_in(
        tx,
        &NewPathway {
            patient: &patient,
            referral: Some(id),
            specialty: a.specialty,
            consultant: a.consultant,
            start,
            status: Status::S10,
            source: &source,
        },
    )?;
    let entry = waiting::add_in(
        tx,
        &NewEntry {
            patient: &patient,
            list: List::OutpatientNew,
            pathway: Some(&pathway),
            specialty: a.specialty,
            consultant: a.consultant,
            procedure: None,
            priority: a.priority,
            decided: now.date(),
            note: a.note,
        },
    )?;
    Ok(Accepted { pathway, entry })
}

/// Where a referral is redirected.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirect<'a> {
    /// Treatment function code of the service it goes to.
    pub specialty: &'a str,
    /// The consultant it goes to (`Practitioner` id), within the trust.
    pub consultant: Option<&'a str>,
    /// Another provider (`Organization` id): the referral leaves the trust.
    pub provider: Option<&'a str>,
    pub reason: &'a str,
}

/// Redirects a received referral (see the module documentation); within
/// the trust it stays awaiting triage, by the other service; to another
/// provider, the pathway's id.
pub fn redirect_in(
    tx: &mut Tx<'_>,
    id: &str,
    r: &Redirect,
    now: OffsetDateTime,
) -> Result<Option<String>, ReferralError> {
    let reason = r.reason.trim();
    if reason.is_empty() {
        return Err(ReferralError::Field(
            "reason".into(),
            "Enter why the referral is redirected.".into(),
        ));
    }
    check_specialty(r.specialty)?;
    check_consultant(tx, r.consultant)?;
    let mut sr = awaiting_triage(tx, id)?;
    let start = received(&sr).unwrap_or(now.date());
    if let Some(org) = r.provider {
        let o = tx.get("Organization", org)?.ok_or_else(|| {
            ReferralError::Field(
                "provider".into(),
                format!("There is no Organization/{org}."),
            )
        })?;
        let name = o["name"].as_str().unwrap_or(org).to_owned();
        let patient = reference_id(&sr["subject"], "Patient")
            .unwrap_or_default()
            .to_owned();
        respond_in(
            tx,
            id,
            false,
            &format!("Redirected to {name}: {reason}"),
            now,
        )?;
        let source = format!("ServiceRequest/{id}");
        let pathway = rtt::open_in(
            tx,
            &NewPathway {
                patient: &patient,
                referral: Some(id),
                specialty: r.specialty,
                consultant: None,
                start,
                status: Status::S10,
                source: &source,
            },
        )?;
        rtt::record_in(
            tx,
            &pathway,
            Status::S21,
            now.date().max(start),
            &format!("Organization/{org}"),
        )?;
        return Ok(Some(pathway));
    }
    // Within the trust: to the other service's triage, the received date kept.
    set_specialty(&mut sr, r.specialty);
    match r.consultant {
        Some(c) => sr["performer"] = json!([{"reference": format!("Practitioner/{c}")}]),
        None => {
            if let Some(o) = sr.as_object_mut() {
                o.retain(|k, _| k != "performer");
            }
        }
    }
    let note =
        json!({"text": format!("Redirected to {}: {reason}", r.specialty), "time": fhir_time(now)});
    match sr["note"].as_array_mut() {
        Some(n) => n.push(note),
        None => sr["note"] = json!([note]),
    }
    if part(&sr, "received").is_none() {
        set_part(&mut sr, "received", Some(("valueDate", &rtt_date(start))));
    }
    let saved = tx.save(sr)?;
    close_tasks_in(tx, id, TRIAGE_CODE, now)?;
    raise_task_in(
        tx,
        &saved.resource,
        TRIAGE_CODE,
        "Triage a referral received",
        &format!("A referral redirected to this service: {reason}"),
        now,
    )?;
    Ok(None)
}

/// A referral awaiting triage, as the worklist shows it.
#[derive(Debug, Clone)]
pub struct Awaiting {
    pub id: String,
    /// `Patient/{id}`.
    pub patient: String,
    pub from: String,
    pub priority: String,
    pub reason: String,
    pub specialty: Option<String>,
    /// Practitioner id.
    pub consultant: Option<String>,
    pub received: Option<Date>,
}

/// The referrals awaiting triage, oldest received first; those of one
/// consultant (`Practitioner` id) or specialty when given (a referral to
/// the trust as a whole is on every consultant's list).
pub fn awaiting(
    svc: &FhirService,
    access: &dyn Access,
    consultant: Option<&str>,
    specialty: Option<&str>,
) -> Result<Vec<Awaiting>, ReferralError> {
    // A worklist of the service's incoming referrals: the caller must be
    // allowed to search requests; each referral is opened (and triaged)
    // under their own access.
    access.check_type(wardline_core::Op::Search, Some("ServiceRequest"))?;
    let mut tx = begin(svc, access, "referrals-triage-list", "R")?;
    tx.audit_reads();
    let found = crate::fhir::search_all(
        &tx,
        "ServiceRequest",
        &[
            ("category", format!("{CATEGORY_SYSTEM}|referral")),
            ("status", "active".to_owned()),
        ],
    )?;
    tx.commit()?;
    let mut out: Vec<Awaiting> = found
        .iter()
        .filter(|s| is_inbound(s) && state_of(s) == Some(State::Sent))
        .filter_map(|s| {
            Some(Awaiting {
                id: s["id"].as_str()?.to_owned(),
                patient: s["subject"]["reference"].as_str()?.to_owned(),
                from: s["requester"]["display"].as_str().unwrap_or("").to_owned(),
                priority: s["priority"].as_str().unwrap_or("routine").to_owned(),
                reason: crate::fhir::concept_text(&s["reasonCode"][0]).unwrap_or_default(),
                specialty: specialty_of(s),
                consultant: reference_id(&s["performer"][0], "Practitioner").map(str::to_owned),
                received: received(s),
            })
        })
        .filter(|a| {
            consultant.is_none_or(|c| a.consultant.as_deref().is_none_or(|x| x == c))
                && specialty.is_none_or(|sp| a.specialty.as_deref().is_none_or(|x| x == sp))
        })
        .collect();
    out.sort_by_key(|a| (a.priority == "routine", a.received));
    Ok(out)
}

fn specialty_of(s: &Value) -> Option<String> {
    specialty(s).map(str::to_owned)
}

/// Only a consultant triages (a caller acting in no position — a system
/// integration — is not refused here: its access decides).
pub fn may_triage_in(tx: &mut Tx<'_>) -> Result<(), ReferralError> {
    match crate::fhir::caller_role_in(tx)? {
        None | Some(wardline_auth::rbac::Role::Consultant) => Ok(()),
        Some(r) => Err(ReferralError::Forbidden(format!(
            "Only a consultant triages referrals; your position is {}.",
            r.display()
        ))),
    }
}

fn run<T>(
    svc: &FhirService,
    access: &dyn Access,
    what: &str,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, ReferralError>,
) -> Result<T, ReferralError> {
    let mut tx = begin(svc, access, what, "U")?;
    if what == "referrals-triage" {
        may_triage_in(&mut tx)?;
    }
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// [`intake_in`] in one audited transaction (`referrals-intake`).
pub fn intake(
    svc: &FhirService,
    access: &dyn Access,
    i: &Intake,
    now: OffsetDateTime,
) -> Result<String, ReferralError> {
    run(svc, access, "referrals-intake", |tx| intake_in(tx, i, now))
}

/// [`intake_in`] with a letter's scan (`title`, the PDF) stored first
/// ([`super::upload_in`]) and attached, in one audited transaction.
pub fn intake_with_letter(
    svc: &FhirService,
    access: &dyn Access,
    i: &Intake,
    letter: Option<(&str, &[u8])>,
    now: OffsetDateTime,
) -> Result<String, ReferralError> {
    run(svc, access, "referrals-intake", |tx| {
        let mut docs = i.attachments.to_vec();
        if let Some((title, pdf)) = letter {
            docs.push(super::upload_in(tx, i.patient, title, pdf, now)?);
        }
        intake_in(
            tx,
            &Intake {
                attachments: &docs,
                ..i.clone()
            },
            now,
        )
    })
}

/// [`accept_in`] in one audited transaction (`referrals-triage`).
pub fn accept(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    a: &Accept,
    now: OffsetDateTime,
) -> Result<Accepted, ReferralError> {
    run(svc, access, "referrals-triage", |tx| {
        accept_in(tx, id, a, now)
    })
}

/// [`redirect_in`] in one audited transaction (`referrals-triage`).
pub fn redirect(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    r: &Redirect,
    now: OffsetDateTime,
) -> Result<Option<String>, ReferralError> {
    run(svc, access, "referrals-triage", |tx| {
        redirect_in(tx, id, r, now)
    })
}

/// A GP system's plain `POST ServiceRequest` of the e-Referral shape (BaRS
/// category `referral`, `intent` `order`, no Wardline referral state)
/// becomes a received referral awaiting triage on every write path: the
/// same transaction marks it received (the date it was stored) and raises
/// its triage Task. Registered in `crate::with_rules`.
pub struct IntakeHook;

/// Whether a stored ServiceRequest is a plain e-Referral to take in.
pub(crate) fn plain_referral(sr: &Value) -> bool {
    sr["resourceType"] == "ServiceRequest"
        && matches!(sr["intent"].as_str(), Some("order" | "plan" | "proposal"))
        && state_of(sr).is_none()
        && sr["status"] == "active"
        && sr["category"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["coding"].as_array().is_some_and(|cd| {
                    cd.iter()
                        .any(|x| x["system"] == CATEGORY_SYSTEM && x["code"] == "referral")
                })
            })
        })
}

impl wardline_core::WriteHook for IntakeHook {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "ServiceRequest"
    }

    fn before_commit(
        &self,
        tx: &mut Tx<'_>,
        changes: &[wardline_core::Change],
    ) -> Result<(), FhirError> {
        for c in changes {
            if c.before.is_some() {
                continue;
            }
            let Some(mut sr) = c
                .after
                .as_deref()
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
            else {
                continue;
            };
            if !plain_referral(&sr) {
                continue;
            }
            let stored = sr["meta"]["lastUpdated"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let now =
                OffsetDateTime::parse(&stored, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        FhirError::internal(format!(
                            "ServiceRequest/{}: meta.lastUpdated: {e}",
                            c.id
                        ))
                    })?;
            if !sr["identifier"]
                .as_array()
                .is_some_and(|is| is.iter().any(|i| i["system"] == REFERRAL_ID_SYSTEM))
            {
                let id = json!({"system": REFERRAL_ID_SYSTEM, "value": uuid::Uuid::new_v4().to_string()});
                match sr["identifier"].as_array_mut() {
                    Some(is) => is.push(id),
                    None => sr["identifier"] = json!([id]),
                }
            }
            set_part(&mut sr, "state", Some(("valueCode", State::Sent.code())));
            set_part(&mut sr, "direction", Some(("valueCode", "in")));
            set_part(
                &mut sr,
                "received",
                Some(("valueDate", &rtt_date(now.date()))),
            );
            let saved = tx.save(sr)?;
            raise_task_in(
                tx,
                &saved.resource,
                TRIAGE_CODE,
                "Triage a referral received",
                "A referral received over FHIR to triage: accept, reject or redirect it.",
                now,
            )
            .map_err(|e| e.to_fhir())?;
        }
        Ok(())
    }
}
