//! Messages received at `POST [base]/$process-message` (BaRS; callers are
//! system clients with a SMART Backend Services token — the FHIR API's own
//! authentication — and [`ProcessMessageOperation`] refuses anyone else):
//!
//! * a **referral** (`servicerequest-request`) addressed to an
//!   organisation of this server (its ODS code; an unknown one is refused,
//!   409) becomes a received `ServiceRequest` (state `sent`, direction `in`,
//!   `replyTo` the referrer's `MessageHeader.source.endpoint`) for the
//!   patient matched by NHS number (else registered from the message), its
//!   attachments stored as `DocumentReference`s (one that the referral
//!   names but the message lacks refuses the whole message, 400), and a
//!   triage `Task` ([`super::TRIAGE_CODE`]) for the receiving service. The
//!   same referral sent again is taken once (the shared identifier).
//! * a **response** (`servicerequest-response`) to one of our referrals
//!   moves it to accepted or rejected with the reason, if it comes from the
//!   organisation it was sent to (by ODS code; else 403).

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{
    AgentKind, FhirResponse, FhirService, OperationHandler, OperationRequest, OperationSpec, Tx,
};
use wardline_fhir::FhirError;

use super::message::{EVENT_REQUEST, EVENT_RESPONSE, Parsed, parse, response_state};
use super::{
    CHASE_CODE, ODS_SYSTEM, REFERRAL_ID_SYSTEM, ReferralError, State, TRIAGE_CODE, begin,
    close_tasks_in, identifier, is_inbound, ods_code as ods, raise_task_in, set_part, set_state,
    state_of,
};
use crate::fhir::reference_id;
use crate::pmi::NHS_NUMBER_SYSTEM;
use crate::transfers::{fhir_time, set_delivery};

/// What a received message did (the local `ServiceRequest` id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A new referral, waiting for triage.
    Referral(String),
    /// A referral received before (the message sent again).
    Duplicate(String),
    /// Our referral, now accepted or rejected (or already so).
    Response(String),
}

impl Received {
    pub fn id(&self) -> &str {
        match self {
            Received::Referral(i) | Received::Duplicate(i) | Received::Response(i) => i,
        }
    }
}

fn field(f: &str, m: impl Into<String>) -> ReferralError {
    ReferralError::Field(f.into(), m.into())
}

/// Takes one message in `tx` (see the module documentation).
pub fn receive_in(
    tx: &mut Tx<'_>,
    bundle: &Value,
    now: OffsetDateTime,
) -> Result<Received, ReferralError> {
    let msg = parse(bundle)?;
    let focus = msg.header["focus"]
        .get(0)
        .and_then(|f| msg.resolve(f))
        .filter(|f| f["resourceType"] == "ServiceRequest")
        .ok_or_else(|| {
            field(
                "MessageHeader.focus",
                "The message's focus is not a ServiceRequest in it.",
            )
        })?;
    let shared = identifier(focus)
        .ok_or_else(|| {
            field(
                "ServiceRequest.identifier",
                "The referral has no identifier.",
            )
        })?
        .to_owned();
    tx.lock(&[format!("referral:{shared}")])?;
    let existing = tx.find(
        "ServiceRequest",
        &format!("identifier={REFERRAL_ID_SYSTEM}|{shared}"),
    )?;
    match msg.event {
        EVENT_REQUEST => {
            if let Some(sr) = existing.iter().find(|s| is_inbound(s)) {
                return Ok(Received::Duplicate(
                    sr["id"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            take_referral(tx, &msg, focus, bundle, now).map(Received::Referral)
        }
        EVENT_RESPONSE => {
            let sr = existing
                .into_iter()
                .find(|s| !is_inbound(s) && state_of(s).is_some())
                .ok_or_else(|| {
                    ReferralError::NotFound(format!(
                        "There is no referral {shared} sent from here."
                    ))
                })?;
            take_response(tx, &msg, focus, sr, now).map(Received::Response)
        }
        other => Err(field(
            "MessageHeader.eventCoding",
            format!(
                "The event {other:?} is not taken here (only {EVENT_REQUEST} and {EVENT_RESPONSE})."
            ),
        )),
    }
}

fn take_referral(
    tx: &mut Tx<'_>,
    msg: &Parsed<'_>,
    focus: &Value,
    bundle: &Value,
    now: OffsetDateTime,
) -> Result<String, ReferralError> {
    // Addressed to us?
    let to = msg.header["destination"][0]["receiver"].clone();
    let to_org = msg
        .resolve(&to)
        .or_else(|| msg.resolve(&focus["performer"][0]))
        .filter(|o| o["resourceType"] == "Organization")
        .ok_or_else(|| {
            field(
                "MessageHeader.destination.receiver",
                "The message names no receiving organisation.",
            )
        })?;
    let code = ods(to_org).ok_or_else(|| {
        field(
            "MessageHeader.destination.receiver",
            "The receiving organisation has no ODS code.",
        )
    })?;
    let ours = tx
        .find("Organization", &format!("identifier={ODS_SYSTEM}|{code}&active=true"))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ReferralError::Conflict(format!(
                "This server is not the provider {code}: the referral was sent to the wrong provider."
            ))
        })?;
    let our_id = ours["id"].as_str().unwrap_or_default().to_owned();
    let reply = msg.header["source"]["endpoint"]
        .as_str()
        .filter(|e| e.starts_with("http://") || e.starts_with("https://"))
        .ok_or_else(|| {
            field(
                "MessageHeader.source.endpoint",
                "The sender's endpoint must be an http(s) URL to reply to.",
            )
        })?;
    let patient = msg
        .resolve(&focus["subject"])
        .filter(|p| p["resourceType"] == "Patient")
        .ok_or_else(|| {
            field(
                "ServiceRequest.subject",
                "The referral's patient is not in the message.",
            )
        })?;
    let patient_id = match_patient_in(tx, patient)?;
    // Every attachment the referral names must have come with it.
    let mut docs = Vec::new();
    for s in focus["supportingInfo"].as_array().into_iter().flatten() {
        let d = msg
            .resolve(s)
            .filter(|d| d["resourceType"] == "DocumentReference")
            .ok_or_else(|| {
                field(
                    "ServiceRequest.supportingInfo",
                    format!(
                        "The attachment {} is missing from the message.",
                        s["reference"]
                    ),
                )
            })?;
        let mut d = d.clone();
        if !d["content"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c["attachment"]["data"].is_string()))
        {
            return Err(field(
                "DocumentReference.content",
                "An attachment came without its content.",
            ));
        }
        d["subject"] = json!({"reference": format!("Patient/{patient_id}")});
        for k in [
            "context",
            "author",
            "authenticator",
            "custodian",
            "relatesTo",
        ] {
            if let Some(o) = d.as_object_mut() {
                o.remove(k);
            }
        }
        d["status"] = json!("current");
        let title = super::doc_title(&d);
        docs.push((tx.save(d)?.id, title));
    }
    let requester = msg.resolve(&focus["requester"]);
    let sender = msg.resolve(&msg.header["sender"]);
    let who = requester
        .and_then(crate::orders::request::person_name)
        .unwrap_or_default();
    let from = sender
        .and_then(|s| s["name"].as_str())
        .unwrap_or("another provider");
    let mut sr = json!({
        "resourceType": "ServiceRequest",
        "identifier": [{"system": REFERRAL_ID_SYSTEM, "value": identifier(focus)}],
        "status": "active",
        "intent": focus["intent"].as_str().unwrap_or("order"),
        "category": focus["category"],
        "priority": focus["priority"].as_str().unwrap_or("routine"),
        "code": focus["code"],
        "subject": {"reference": format!("Patient/{patient_id}")},
        "authoredOn": focus["authoredOn"].as_str().map_or_else(|| fhir_time(now), str::to_owned),
        "requester": {"display": if who.is_empty() { from.to_owned() } else { format!("{who} ({from})") }},
        "performer": [{"reference": format!("Organization/{our_id}"), "display": ours["name"]}],
        "reasonCode": focus["reasonCode"],
        "supportingInfo": docs.iter().map(|(d, t)| json!({"reference": format!("DocumentReference/{d}"), "display": t})).collect::<Vec<_>>(),
    });
    if let Some(o) = sr.as_object_mut() {
        o.retain(|_, v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
    }
    set_part(&mut sr, "state", Some(("valueCode", State::Sent.code())));
    set_part(&mut sr, "direction", Some(("valueCode", "in")));
    set_part(&mut sr, "replyTo", Some(("valueUrl", reply)));
    // issue 19: the RTT clock starts on the date the referral was received.
    set_part(
        &mut sr,
        "received",
        Some(("valueDateTime", &fhir_time(now))),
    );
    if let Some(m) = msg.header["id"].as_str().or_else(|| bundle["id"].as_str()) {
        set_part(&mut sr, "messageId", Some(("valueString", m)));
    }
    let saved = tx.save(sr)?;
    raise_task_in(
        tx,
        &saved.resource,
        TRIAGE_CODE,
        "Triage a referral received",
        &format!("A referral from {from} to triage: accept or reject it."),
        now,
    )?;
    Ok(saved.id)
}

/// The local patient for the message's: matched by NHS number, else
/// registered from the message (NHS number, name, birth date, gender,
/// address only).
fn match_patient_in(tx: &mut Tx<'_>, p: &Value) -> Result<String, ReferralError> {
    let nhs = p["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == NHS_NUMBER_SYSTEM)
        .and_then(|i| i["value"].as_str());
    if let Some(n) = nhs
        && let Some(found) = tx
            .find(
                "Patient",
                &format!("identifier={NHS_NUMBER_SYSTEM}|{n}&active:not=false"),
            )?
            .into_iter()
            .next()
    {
        return Ok(found["id"].as_str().unwrap_or_default().to_owned());
    }
    let mut new = json!({"resourceType": "Patient", "active": true});
    for k in ["name", "birthDate", "gender", "address", "telecom"] {
        if !p[k].is_null() {
            new[k] = p[k].clone();
        }
    }
    if let Some(n) = nhs {
        new["identifier"] = json!([{"system": NHS_NUMBER_SYSTEM, "value": n}]);
    }
    Ok(tx.save(new)?.id)
}

fn take_response(
    tx: &mut Tx<'_>,
    msg: &Parsed<'_>,
    focus: &Value,
    mut sr: Value,
    now: OffsetDateTime,
) -> Result<String, ReferralError> {
    let id = sr["id"].as_str().unwrap_or_default().to_owned();
    // From the provider it was sent to?
    let sent_to = reference_id(&sr["performer"][0], "Organization").map(str::to_owned);
    let ours = match sent_to {
        Some(o) => tx.get("Organization", &o)?,
        None => None,
    };
    let theirs = msg.resolve(&msg.header["sender"]);
    match (ours.as_ref().and_then(ods), theirs.and_then(ods)) {
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {}
        (Some(a), b) => {
            return Err(ReferralError::Forbidden(format!(
                "The response came from {} but the referral was sent to {a}.",
                b.unwrap_or("an organisation without an ODS code")
            )));
        }
        (None, _) => {}
    }
    let (state, reason) = response_state(focus).ok_or_else(|| {
        field(
            "ServiceRequest.extension",
            "The response does not say whether the referral was accepted.",
        )
    })?;
    let to = match state {
        "accepted" => State::Accepted,
        "rejected" => State::Rejected,
        s => {
            return Err(field(
                "ServiceRequest.extension",
                format!("A response accepts or rejects a referral, not {s:?}."),
            ));
        }
    };
    if state_of(&sr) == Some(to) {
        return Ok(id);
    }
    set_state(&mut sr, to, reason)?;
    if crate::transfers::delivery_text(&sr, "nextAttempt").is_some() {
        set_delivery(&mut sr, "nextAttempt", None);
    }
    tx.save(sr)?;
    close_tasks_in(tx, &id, CHASE_CODE, now)?;
    Ok(id)
}

/// [`receive_in`] as one audited transaction (`referrals-receive`).
pub fn receive(
    svc: &FhirService,
    access: &dyn wardline_core::Access,
    bundle: &Value,
    now: OffsetDateTime,
) -> Result<Received, ReferralError> {
    let mut tx = begin(svc, access, "referrals-receive", "C")?;
    let r = receive_in(&mut tx, bundle, now)?;
    tx.commit()?;
    Ok(r)
}

/// The canonical URL of the operation (FHIR's own).
pub const PROCESS_MESSAGE_DEFINITION: &str =
    "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message";

/// `POST [base]/$process-message`: registered by
/// `wardline_workflow::with_operations`; the clock is the service's.
pub struct ProcessMessageOperation;

impl ProcessMessageOperation {
    pub fn spec() -> OperationSpec {
        OperationSpec::system(
            "process-message",
            PROCESS_MESSAGE_DEFINITION,
            ProcessMessageOperation,
        )
    }
}

impl OperationHandler for ProcessMessageOperation {
    fn invoke(
        &self,
        svc: &FhirService,
        req: &OperationRequest<'_>,
    ) -> Result<FhirResponse, FhirError> {
        if req.access().agent().kind != AgentKind::System {
            return Err(FhirError::new(
                403,
                "forbidden",
                "$process-message takes messages from other providers' systems (SMART Backend Services clients) only.",
            ));
        }
        let body = req.body()?;
        let now = svc.now();
        let r = receive(svc, req.access(), &body, now).map_err(|e| e.to_fhir())?;
        let status = if matches!(r, Received::Referral(_)) {
            201
        } else {
            200
        };
        Ok(FhirResponse::json(
            status,
            json!({"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational",
                "diagnostics": format!("Taken: ServiceRequest/{}", r.id())}]}),
        ))
    }
}
