//! e-Referrals out (issue 18): a referral to another provider as a
//! BaRS-shaped `ServiceRequest` with its attachments, sent and tracked to
//! acceptance.
//!
//! # The model (FHIR R4; no second schema)
//!
//! * **A referral** is a `ServiceRequest` shaped as the Booking and Referral
//!   Standard's: `identifier` ([`REFERRAL_ID_SYSTEM`], a UUID the sender
//!   and receiver share), `intent` `order`, `category` BaRS
//!   [`CATEGORY_SYSTEM`] `referral`, `priority`, `reasonCode` (text),
//!   `subject`, `encounter`, `requester` the referring `Practitioner`,
//!   `performer` the receiving provider's `Organization` (and its
//!   `HealthcareService` when named), `supportingInfo` its attachments
//!   (`DocumentReference`s: a signed letter, a discharge summary, a PDF
//!   uploaded on the page).
//! * Its **state** and the reason for it are sub-extensions of
//!   [`REFERRAL_EXT`]: `state`, `reason`, `direction` (`out`: ours, sent;
//!   `in`: received from another provider), `messageId` (the message that
//!   carried it), `replyTo` (on a received referral: the referrer's
//!   `$process-message`).
//! * **Delivery** of its messages (the referral, or on a received one the
//!   response) is the transfers delivery extension
//!   ([`crate::transfers::DELIVERY_EXT`]: `address`, `attempts`,
//!   `nextAttempt`, `lastError`, and `delivered`), written and read by
//!   the transfers helpers; [`send`] delivers it.
//!
//! # The lifecycle (one home: [`set_state`]; every channel: [`ReferralRule`])
//!
//! ```text
//! draft ──► sent ──► accepted
//!   │        ├─────► rejected
//!   └────────┴─────► cancelled
//! ```
//!
//! `status` follows the state: draft `draft`; sent and accepted `active`;
//! rejected and cancelled `revoked`. A received referral is created `sent`
//! (awaiting triage) and the receiving clinician accepts or rejects it.
//!
//! [`message`] builds and reads the BaRS `$process-message` Bundles;
//! [`send`] posts them (outside any transaction, the outcome recorded in a
//! transaction of its own, retried with back-off, a failure Task at the
//! end) and raises chase Tasks; [`inbound`] takes received messages.

pub mod inbound;
pub mod message;
pub mod send;
// issue 19: referrals in from every channel, triage.
pub mod triage;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

use crate::fhir::reference_id;
use crate::transfers::{delivery_text, fhir_time, set_delivery};

/// A referral's state and its reason (sub-extensions `state`, `reason`,
/// `direction`, `messageId`, `replyTo`).
pub const REFERRAL_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/referral";
/// The referral's identifier, shared by sender and receiver.
pub const REFERRAL_ID_SYSTEM: &str = "https://fhir.wardline.invalid/Id/referral";
/// BaRS `ServiceRequest.category`.
pub const CATEGORY_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest";
/// `Endpoint.connectionType` of a BaRS receiver (FHIR's own code
/// `hl7-fhir-msg`; `address` the http(s) URL of its `$process-message`).
pub const ENDPOINT_CONNECTION_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/endpoint-connection-type";
pub const ENDPOINT_CONNECTION_CODE: &str = "hl7-fhir-msg";
/// `Task.code` (system `pmi::TASK_SYSTEM`) of a received referral to triage.
pub const TRIAGE_CODE: &str = "referral-triage";
/// `Task.code` of a referral (or response) that could not be delivered.
pub const FAILURE_CODE: &str = "referral-failure";
/// `Task.code` of a referral not accepted in time.
pub const CHASE_CODE: &str = "referral-chase";
/// ODS organisation codes.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// An organisation's ODS code.
pub fn ods_code(org: &Value) -> Option<&str> {
    org["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == ODS_SYSTEM)?["value"]
        .as_str()
}

/// A referral's state (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Draft,
    Sent,
    Accepted,
    Rejected,
    Cancelled,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Draft,
        State::Sent,
        State::Accepted,
        State::Rejected,
        State::Cancelled,
    ];
    pub fn code(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Sent => "sent",
            State::Accepted => "accepted",
            State::Rejected => "rejected",
            State::Cancelled => "cancelled",
        }
    }
    pub fn of_code(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.code() == s)
    }
    /// The `ServiceRequest.status` of the state.
    pub fn status(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Sent | State::Accepted => "active",
            State::Rejected | State::Cancelled => "revoked",
        }
    }
    /// The label on a received referral's pages.
    pub fn inbound_label(self) -> &'static str {
        match self {
            State::Sent => "Awaiting triage",
            other => other.label(),
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            State::Draft => "Draft",
            State::Sent => "Sent, awaiting acceptance",
            State::Accepted => "Accepted",
            State::Rejected => "Rejected",
            State::Cancelled => "Cancelled",
        }
    }
}

/// Whether a referral may go from `from` to `to`.
pub fn allowed(from: State, to: State) -> bool {
    matches!(
        (from, to),
        (State::Draft, State::Sent | State::Cancelled)
            | (
                State::Sent,
                State::Accepted | State::Rejected | State::Cancelled
            )
    )
}

/// A sub-extension of [`REFERRAL_EXT`] as text.
pub fn part<'a>(sr: &'a Value, name: &str) -> Option<&'a str> {
    let p = sr["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == REFERRAL_EXT)?["extension"]
        .as_array()?
        .iter()
        .find(|s| s["url"] == name)?;
    p["valueCode"]
        .as_str()
        .or_else(|| p["valueString"].as_str())
        .or_else(|| p["valueUrl"].as_str())
}

/// Sets (`Some`) or removes one sub-extension of [`REFERRAL_EXT`]; `value`
/// is the `value[x]` member, e.g. `("valueCode", "sent")`.
pub(crate) fn set_part(sr: &mut Value, name: &str, value: Option<(&str, &str)>) {
    if !sr["extension"].is_array() {
        sr["extension"] = json!([]);
    }
    let Some(exts) = sr["extension"].as_array_mut() else {
        return;
    };
    let idx = match exts.iter().position(|e| e["url"] == REFERRAL_EXT) {
        Some(i) => i,
        None => {
            exts.push(json!({"url": REFERRAL_EXT, "extension": []}));
            exts.len() - 1
        }
    };
    if !exts[idx]["extension"].is_array() {
        exts[idx]["extension"] = json!([]);
    }
    if let Some(list) = exts[idx]["extension"].as_array_mut() {
        list.retain(|s| s["url"] != name);
        if let Some((key, v)) = value {
            let mut s = json!({"url": name});
            s[key] = json!(v);
            list.push(s);
        }
    }
}

/// The referral's state (`None`: not a referral).
pub fn state_of(sr: &Value) -> Option<State> {
    part(sr, "state").and_then(State::of_code)
}

/// Whether the referral was received from another provider.
pub fn is_inbound(sr: &Value) -> bool {
    part(sr, "direction") == Some("in")
}

/// The referral's shared identifier.
pub fn identifier(sr: &Value) -> Option<&str> {
    sr["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == REFERRAL_ID_SYSTEM)?["value"]
        .as_str()
}

/// The one place a referral's state changes: checks [`allowed`], sets the
/// state, `status` and the reason (kept; `None` removes it).
pub fn set_state(sr: &mut Value, to: State, reason: Option<&str>) -> Result<(), ReferralError> {
    let from = state_of(sr).ok_or_else(|| ReferralError::Invalid("Not a referral.".into()))?;
    if !allowed(from, to) {
        return Err(ReferralError::Conflict(format!(
            "A referral that is {} cannot become {}.",
            from.code(),
            to.code()
        )));
    }
    set_part(sr, "state", Some(("valueCode", to.code())));
    set_part(sr, "reason", reason.map(|r| ("valueString", r)));
    sr["status"] = json!(to.status());
    Ok(())
}

/// The referral lifecycle on every write path (registered in
/// `crate::with_rules`): a referral `ServiceRequest` (one with a
/// [`REFERRAL_EXT`] state) written by any channel — FHIR REST included — is
/// created `draft` (ours) or `sent` (received), moves only as [`allowed`]
/// says, and its `status` is the state's.
pub struct ReferralRule;

impl wardline_core::WriteRule for ReferralRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "ServiceRequest"
    }

    fn check(
        &self,
        _tx: &mut wardline_core::RuleTx<'_, '_>,
        w: &wardline_core::ProposedWrite<'_>,
    ) -> Result<(), FhirError> {
        let cur = w.current.and_then(state_of);
        let new = state_of(w.resource);
        let refusal = match (cur, new) {
            (None, None) => None,
            (Some(_), None) => Some("A referral's state cannot be removed.".to_owned()),
            (None, Some(s)) => {
                let first = if is_inbound(w.resource) {
                    State::Sent
                } else {
                    State::Draft
                };
                // A plain e-Referral POSTed over FHIR is taken in as received
                // (`triage::IntakeHook`).
                let taken_in = w.current.is_some_and(triage::plain_referral) && s == State::Sent;
                ((w.current.is_some() && !taken_in) || s != first)
                    .then(|| format!("A referral is created {} (not {}).", first.code(), s.code()))
            }
            (Some(f), Some(t)) => (f != t && !allowed(f, t)).then(|| {
                format!(
                    "A referral that is {} cannot become {}.",
                    f.code(),
                    t.code()
                )
            }),
        };
        if let Some(m) = refusal {
            return Err(FhirError::new(422, "business-rule", m).at("ServiceRequest.extension"));
        }
        if let Some(s) = new
            && w.resource["status"] != s.status()
        {
            return Err(FhirError::new(
                422,
                "business-rule",
                format!("A {} referral's status is {}.", s.code(), s.status()),
            )
            .at("ServiceRequest.status"));
        }
        Ok(())
    }
}

/// A referral to draft (references as `Type/id`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    /// `Patient/{id}`.
    pub patient: String,
    /// `Encounter/{id}`, when the referral is made from an encounter.
    pub encounter: Option<String>,
    /// `Organization/{id}`: the receiving provider.
    pub receiver: String,
    /// `HealthcareService/{id}` of the receiver, when named.
    pub service: Option<String>,
    /// `routine` | `urgent` | `asap` | `stat`.
    pub priority: String,
    /// Why the patient is referred.
    pub reason: String,
    /// `DocumentReference/{id}`s to send with it.
    pub attachments: Vec<String>,
}

pub const PRIORITIES: [(&str, &str); 3] = [
    ("routine", "Routine"),
    ("urgent", "Urgent"),
    ("asap", "As soon as possible"),
];

fn typed<'a>(r: &'a str, t: &str, field: &str) -> Result<&'a str, ReferralError> {
    r.strip_prefix(t)
        .and_then(|s| s.strip_prefix('/'))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            ReferralError::Field(
                field.into(),
                format!("{field} must be a reference {t}/{{id}}, not {r:?}."),
            )
        })
}

/// The receiving provider's BaRS endpoint (`$process-message` URL): the
/// first active `Organization.endpoint` whose `connectionType` is
/// [`ENDPOINT_CONNECTION_CODE`].
pub fn endpoint_in(tx: &mut Tx<'_>, organization: &str) -> Result<Option<String>, ReferralError> {
    let Some(org) = tx.get("Organization", organization)? else {
        return Ok(None);
    };
    for r in org["endpoint"].as_array().into_iter().flatten() {
        if let Some(id) = reference_id(r, "Endpoint")
            && let Some(ep) = tx.get("Endpoint", id)?
            && ep["status"] == "active"
            && ep["connectionType"]["system"] == ENDPOINT_CONNECTION_SYSTEM
            && ep["connectionType"]["code"] == ENDPOINT_CONNECTION_CODE
            && let Some(a) = ep["address"].as_str()
            && (a.starts_with("http://") || a.starts_with("https://"))
        {
            return Ok(Some(a.to_owned()));
        }
    }
    Ok(None)
}

/// Checks an attachment: a DocumentReference about the patient, current,
/// with content to send.
pub(crate) fn check_attachment(
    tx: &mut Tx<'_>,
    doc: &str,
    patient: &str,
) -> Result<String, ReferralError> {
    let id = typed(doc, "DocumentReference", "attachments")?;
    let d = tx.get("DocumentReference", id)?.ok_or_else(|| {
        ReferralError::Field(
            "attachments".into(),
            format!("The attachment {doc} does not exist."),
        )
    })?;
    if reference_id(&d["subject"], "Patient") != Some(patient) {
        return Err(ReferralError::Field(
            "attachments".into(),
            format!("The attachment {doc} is not about this patient."),
        ));
    }
    if d["status"] != "current" || d["content"].as_array().is_none_or(|c| c.is_empty()) {
        return Err(ReferralError::Field(
            "attachments".into(),
            format!("The attachment {doc} is not a current document with content."),
        ));
    }
    Ok(doc_title(&d))
}

/// A document's title as lists show it.
pub fn doc_title(d: &Value) -> String {
    crate::fhir::concept_text(&d["type"])
        .or_else(|| d["description"].as_str().map(str::to_owned))
        .or_else(|| {
            d["content"][0]["attachment"]["title"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Document".into())
}

/// Drafts a referral in `tx` as `requester` (`Practitioner/{id}`); its id.
pub fn draft_in(
    tx: &mut Tx<'_>,
    d: &Draft,
    requester: &str,
    now: OffsetDateTime,
) -> Result<String, ReferralError> {
    let patient = typed(&d.patient, "Patient", "patient")?;
    if tx.get("Patient", patient)?.is_none() {
        return Err(ReferralError::NotFound(format!(
            "There is no patient {}.",
            d.patient
        )));
    }
    if let Some(e) = &d.encounter {
        let id = typed(e, "Encounter", "encounter")?;
        let enc = tx.get("Encounter", id)?;
        if enc
            .as_ref()
            .and_then(|e| reference_id(&e["subject"], "Patient"))
            != Some(patient)
        {
            return Err(ReferralError::Field(
                "encounter".into(),
                format!("{e} is not an encounter of this patient."),
            ));
        }
    }
    let org = typed(&d.receiver, "Organization", "receiver")?;
    let Some(receiver) = tx.get("Organization", org)? else {
        return Err(ReferralError::Field(
            "receiver".into(),
            "Choose the provider to refer to.".into(),
        ));
    };
    if endpoint_in(tx, org)?.is_none() {
        return Err(ReferralError::Field(
            "receiver".into(),
            "That provider has no e-Referral (BaRS) endpoint: refer by another means.".into(),
        ));
    }
    if let Some(s) = &d.service {
        let id = typed(s, "HealthcareService", "service")?;
        let hs = tx.get("HealthcareService", id)?;
        if hs
            .as_ref()
            .and_then(|h| reference_id(&h["providedBy"], "Organization"))
            != Some(org)
        {
            return Err(ReferralError::Field(
                "service".into(),
                "That service is not one of the chosen provider's.".into(),
            ));
        }
    }
    if !PRIORITIES.iter().any(|p| p.0 == d.priority) {
        return Err(ReferralError::Field(
            "priority".into(),
            "Choose the referral's priority.".into(),
        ));
    }
    if d.reason.trim().is_empty() {
        return Err(ReferralError::Field(
            "reason".into(),
            "Enter the reason for the referral.".into(),
        ));
    }
    let mut titles = Vec::new();
    for a in &d.attachments {
        titles.push(check_attachment(tx, a, patient)?);
    }
    let mut performer = vec![json!({"reference": d.receiver, "display": receiver["name"]})];
    if let Some(s) = &d.service {
        performer.push(json!({"reference": s}));
    }
    let mut sr = json!({
        "resourceType": "ServiceRequest",
        "identifier": [{"system": REFERRAL_ID_SYSTEM, "value": uuid::Uuid::new_v4().to_string()}],
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "referral", "display": "Transfer of Care"}]}],
        "priority": d.priority,
        "code": {"text": "Referral"},
        "subject": {"reference": d.patient},
        "authoredOn": fhir_time(now),
        "requester": {"reference": requester},
        "performer": performer,
        "reasonCode": [{"text": d.reason.trim()}],
        "supportingInfo": d.attachments.iter().zip(&titles).map(|(a, t)| json!({"reference": a, "display": t})).collect::<Vec<_>>(),
    });
    if let Some(e) = &d.encounter {
        sr["encounter"] = json!({"reference": e});
    }
    if d.attachments.is_empty()
        && let Some(o) = sr.as_object_mut()
    {
        o.remove("supportingInfo");
    }
    set_part(&mut sr, "state", Some(("valueCode", "draft")));
    set_part(&mut sr, "direction", Some(("valueCode", "out")));
    Ok(tx.save(sr)?.id)
}

pub(crate) fn load(tx: &mut Tx<'_>, id: &str) -> Result<Value, ReferralError> {
    tx.lock(&[lock_key(id)])?;
    tx.get("ServiceRequest", id)?
        .filter(|s| state_of(s).is_some())
        .ok_or_else(|| ReferralError::NotFound(format!("There is no referral {id}.")))
}

pub(crate) fn lock_key(id: &str) -> String {
    format!("ServiceRequest/{id}")
}

/// Queues a message about the referral for delivery to `address`, due now.
pub(crate) fn queue_delivery(sr: &mut Value, address: &str, now: OffsetDateTime) {
    set_delivery(sr, "address", Some(("valueString", json!(address))));
    set_delivery(sr, "attempts", Some(("valueInteger", json!(0))));
    set_delivery(
        sr,
        "nextAttempt",
        Some(("valueDateTime", json!(fhir_time(now)))),
    );
    set_delivery(sr, "lastError", None);
    set_delivery(sr, "delivered", None);
}

/// Sends a drafted referral (ours) in `tx`: checks its attachments are
/// still there, moves it to `sent` and queues its message to the
/// receiver's endpoint; [`send::run`] delivers it.
pub fn send_in(tx: &mut Tx<'_>, id: &str, now: OffsetDateTime) -> Result<(), ReferralError> {
    let mut sr = load(tx, id)?;
    if is_inbound(&sr) {
        return Err(ReferralError::Conflict(
            "A received referral is accepted or rejected, not sent.".into(),
        ));
    }
    if let Some(s) = state_of(&sr).filter(|s| *s != State::Draft) {
        return Err(ReferralError::Conflict(format!(
            "The referral is {}: only a draft is sent.",
            s.code()
        )));
    }
    let patient = reference_id(&sr["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let docs: Vec<String> = sr["supportingInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["reference"].as_str().map(str::to_owned))
        .collect();
    for d in &docs {
        check_attachment(tx, d, &patient)?;
    }
    let org = reference_id(&sr["performer"][0], "Organization")
        .unwrap_or_default()
        .to_owned();
    let address = endpoint_in(tx, &org)?.ok_or_else(|| {
        ReferralError::Field(
            "receiver".into(),
            "The provider has no e-Referral (BaRS) endpoint now: refer by another means.".into(),
        )
    })?;
    set_state(&mut sr, State::Sent, None)?;
    sr["authoredOn"] = json!(fhir_time(now));
    queue_delivery(&mut sr, &address, now);
    tx.save(sr)?;
    Ok(())
}

/// Cancels a referral (ours, draft or sent) in `tx`, with the reason.
pub fn cancel_in(tx: &mut Tx<'_>, id: &str, reason: &str) -> Result<(), ReferralError> {
    if reason.trim().is_empty() {
        return Err(ReferralError::Field(
            "reason".into(),
            "Enter why the referral is cancelled.".into(),
        ));
    }
    let mut sr = load(tx, id)?;
    if is_inbound(&sr) {
        return Err(ReferralError::Conflict(
            "A received referral is accepted or rejected, not cancelled.".into(),
        ));
    }
    set_state(&mut sr, State::Cancelled, Some(reason.trim()))?;
    if delivery_text(&sr, "nextAttempt").is_some() {
        set_delivery(&mut sr, "nextAttempt", None);
    }
    tx.save(sr)?;
    Ok(())
}

/// Accepts (`accept`) or rejects a received referral in `tx`, with the
/// reason (required to reject): closes its triage Task and queues the
/// response message to the referrer.
pub fn respond_in(
    tx: &mut Tx<'_>,
    id: &str,
    accept: bool,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), ReferralError> {
    let reason = reason.trim();
    if !accept && reason.is_empty() {
        return Err(ReferralError::Field(
            "reason".into(),
            "Enter why the referral is rejected.".into(),
        ));
    }
    let mut sr = load(tx, id)?;
    if !is_inbound(&sr) {
        return Err(ReferralError::Conflict(
            "Only a received referral is accepted or rejected here.".into(),
        ));
    }
    let to = if accept {
        State::Accepted
    } else {
        State::Rejected
    };
    set_state(&mut sr, to, (!reason.is_empty()).then_some(reason))?;
    if let Some(reply) = part(&sr, "replyTo").map(str::to_owned) {
        queue_delivery(&mut sr, &reply, now);
    }
    tx.save(sr)?;
    close_tasks_in(tx, id, TRIAGE_CODE, now)?;
    Ok(())
}

/// Completes the open Tasks of `code` about referral `id`.
pub(crate) fn close_tasks_in(
    tx: &mut Tx<'_>,
    id: &str,
    code: &str,
    now: OffsetDateTime,
) -> Result<(), ReferralError> {
    let tasks = tx.find(
        "Task",
        &format!(
            "focus=ServiceRequest/{id}&code={}|{code}&status=requested,in-progress",
            crate::pmi::TASK_SYSTEM
        ),
    )?;
    for mut t in tasks {
        t["status"] = json!("completed");
        t["lastModified"] = json!(fhir_time(now));
        tx.save(t)?;
    }
    Ok(())
}

/// A Task about referral `sr` (code `code`), unless one is already open.
pub(crate) fn raise_task_in(
    tx: &mut Tx<'_>,
    sr: &Value,
    code: &str,
    display: &str,
    description: &str,
    now: OffsetDateTime,
) -> Result<bool, ReferralError> {
    let id = sr["id"].as_str().unwrap_or_default();
    let open = tx.find(
        "Task",
        &format!(
            "focus=ServiceRequest/{id}&code={}|{code}&status=requested,in-progress",
            crate::pmi::TASK_SYSTEM
        ),
    )?;
    if !open.is_empty() {
        return Ok(false);
    }
    let now_s = fhir_time(now);
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": if sr["priority"] == "routine" { "routine" } else { "urgent" },
        "code": {"coding": [{"system": crate::pmi::TASK_SYSTEM, "code": code, "display": display}]},
        "focus": {"reference": format!("ServiceRequest/{id}")},
        "for": sr["subject"],
        "authoredOn": now_s,
        "lastModified": now_s,
        "description": description,
    });
    if sr["encounter"].is_object() {
        task["encounter"] = sr["encounter"].clone();
    }
    let owner = if is_inbound(sr) {
        &sr["performer"][0]
    } else {
        &sr["requester"]
    };
    if owner.is_object() {
        task["owner"] = owner.clone();
    }
    tx.save(task)?;
    Ok(true)
}

/// A referral as the lists show it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub patient: String,
    pub receiver: String,
    pub priority: String,
    pub reason: String,
    pub state: State,
    pub state_reason: Option<String>,
    pub authored: String,
    /// Delivery: `None` nothing to deliver; else e.g. "Delivered", "Retrying: …".
    pub delivery: Option<String>,
    pub attachments: usize,
}

/// The delivery's progress as a sentence.
pub fn delivery_label(sr: &Value) -> Option<String> {
    if let Some(at) = delivery_text(sr, "delivered") {
        return Some(format!("Delivered {at}"));
    }
    let err = delivery_text(sr, "lastError");
    match (delivery_text(sr, "nextAttempt"), err) {
        (Some(_), None) => Some("Waiting to be delivered".into()),
        (Some(_), Some(e)) => Some(format!("Retrying: {e}")),
        (None, Some(e)) => Some(format!("Not delivered: {e}")),
        (None, None) => None,
    }
}

fn summary(sr: &Value) -> Option<Summary> {
    Some(Summary {
        id: sr["id"].as_str()?.to_owned(),
        patient: sr["subject"]["reference"].as_str().unwrap_or("").to_owned(),
        receiver: sr["performer"][0]["display"]
            .as_str()
            .or_else(|| sr["performer"][0]["reference"].as_str())
            .unwrap_or("")
            .to_owned(),
        priority: sr["priority"].as_str().unwrap_or("routine").to_owned(),
        reason: crate::fhir::concept_text(&sr["reasonCode"][0]).unwrap_or_default(),
        state: state_of(sr)?,
        state_reason: part(sr, "reason").map(str::to_owned),
        authored: sr["authoredOn"].as_str().unwrap_or("").to_owned(),
        delivery: delivery_label(sr),
        attachments: sr["supportingInfo"].as_array().map_or(0, Vec::len),
    })
}

/// Referrals out (`inbound` false) or received (`inbound` true), newest
/// first; of one patient when `patient` is given.
pub fn list(
    svc: &FhirService,
    access: &dyn Access,
    inbound: bool,
    patient: Option<&str>,
) -> Result<Vec<Summary>, ReferralError> {
    let mut tx = begin(svc, access, "referrals-list", "R")?;
    let mut q = format!("category={CATEGORY_SYSTEM}|referral&_count=500&_sort=-_lastUpdated");
    if let Some(p) = patient {
        q.push_str(&format!("&subject={p}"));
    }
    let mut found = tx.find("ServiceRequest", &q)?;
    tx.commit()?;
    found.retain(|s| state_of(s).is_some() && is_inbound(s) == inbound);
    let mut out: Vec<Summary> = found.iter().filter_map(summary).collect();
    out.sort_by(|a, b| b.authored.cmp(&a.authored));
    Ok(out)
}

/// One referral (as the caller may read it).
pub fn get(svc: &FhirService, access: &dyn Access, id: &str) -> Result<Value, ReferralError> {
    let mut tx = begin(svc, access, "referrals-view", "R")?;
    let sr = tx
        .get("ServiceRequest", id)?
        .filter(|s| state_of(s).is_some())
        .ok_or_else(|| ReferralError::NotFound(format!("There is no referral {id}.")))?;
    tx.commit()?;
    Ok(sr)
}

pub(crate) fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, ReferralError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

fn me(access: &dyn Access) -> Result<String, ReferralError> {
    access
        .agent()
        .who
        .clone()
        .filter(|w| w.starts_with("Practitioner/"))
        .ok_or_else(|| {
            ReferralError::Forbidden("Only a practitioner on record makes a referral.".into())
        })
}

/// [`draft_in`] as the practitioner signed in (`referrals-draft`).
pub fn draft(
    svc: &FhirService,
    access: &dyn Access,
    d: &Draft,
    now: OffsetDateTime,
) -> Result<String, ReferralError> {
    let who = me(access)?;
    let mut tx = begin(svc, access, "referrals-draft", "C")?;
    let id = draft_in(&mut tx, d, &who, now)?;
    tx.commit()?;
    Ok(id)
}

/// [`send_in`] as one audited transaction (`referrals-send`).
pub fn send(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), ReferralError> {
    me(access)?;
    let mut tx = begin(svc, access, "referrals-send", "U")?;
    send_in(&mut tx, id, now)?;
    tx.commit()?;
    Ok(())
}

/// [`cancel_in`] as one audited transaction (`referrals-cancel`).
pub fn cancel(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    reason: &str,
) -> Result<(), ReferralError> {
    me(access)?;
    let mut tx = begin(svc, access, "referrals-cancel", "U")?;
    cancel_in(&mut tx, id, reason)?;
    tx.commit()?;
    Ok(())
}

/// [`respond_in`] as one audited transaction (`referrals-triage`).
pub fn respond(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    accept: bool,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), ReferralError> {
    me(access)?;
    let mut tx = begin(svc, access, "referrals-triage", "U")?;
    respond_in(&mut tx, id, accept, reason, now)?;
    tx.commit()?;
    Ok(())
}

/// The largest PDF uploaded to attach to a referral.
pub const MAX_UPLOAD: usize = 10 * 1024 * 1024;

/// Stores a PDF uploaded to attach to a referral, in `tx`: a `Binary` and a
/// current `DocumentReference` of the patient (`type` text the title)
/// pointing at it. Refuses what is not a PDF, or too large (field `pdf`).
pub fn upload_in(
    tx: &mut Tx<'_>,
    patient: &str,
    title: &str,
    pdf: &[u8],
    now: OffsetDateTime,
) -> Result<String, ReferralError> {
    let field = |m: &str| ReferralError::Field("pdf".into(), m.into());
    if pdf.is_empty() {
        return Err(field("Choose the PDF to attach."));
    }
    if pdf.len() > MAX_UPLOAD {
        return Err(field("The PDF is larger than 10 MB."));
    }
    if !pdf.starts_with(b"%PDF-") {
        return Err(field("The file is not a PDF."));
    }
    if tx.get("Patient", patient)?.is_none() {
        return Err(ReferralError::NotFound(format!(
            "There is no patient Patient/{patient}."
        )));
    }
    let title = match title.trim() {
        "" => "Uploaded document",
        t => t,
    };
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(pdf);
    let bin = tx
        .save(json!({"resourceType": "Binary", "contentType": "application/pdf", "data": data}))?
        .id;
    let doc = json!({
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"text": title},
        "subject": {"reference": format!("Patient/{patient}")},
        "date": fhir_time(now),
        "content": [{"attachment": {"contentType": "application/pdf", "url": format!("Binary/{bin}"),
            "size": pdf.len(), "title": title, "creation": fhir_time(now)}}],
    });
    Ok(tx.save(doc)?.id)
}

/// [`upload_in`] as one audited transaction (`referrals-upload`).
pub fn upload(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    title: &str,
    pdf: &[u8],
    now: OffsetDateTime,
) -> Result<String, ReferralError> {
    me(access)?;
    let mut tx = begin(svc, access, "referrals-upload", "C")?;
    let id = upload_in(&mut tx, patient, title, pdf, now)?;
    tx.commit()?;
    Ok(id)
}

/// A provider referrals can be sent to.
#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub ods: Option<String>,
}

/// The providers with an e-Referral (BaRS) endpoint, by name.
pub fn providers(svc: &FhirService, access: &dyn Access) -> Result<Vec<Provider>, ReferralError> {
    let mut tx = begin(svc, access, "referrals-providers", "R")?;
    let orgs = tx.find("Organization", "active=true&_count=1000")?;
    let mut out = Vec::new();
    for o in orgs {
        let Some(id) = o["id"].as_str() else { continue };
        if endpoint_in(&mut tx, id)?.is_some() {
            out.push(Provider {
                id: id.to_owned(),
                name: o["name"].as_str().unwrap_or(id).to_owned(),
                ods: ods_code(&o).map(str::to_owned),
            });
        }
    }
    tx.commit()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The patient's current documents that can be attached: (id, title, date).
pub fn documents(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<Vec<(String, String, String)>, ReferralError> {
    let mut tx = begin(svc, access, "referrals-documents", "R")?;
    let docs = tx.find(
        "DocumentReference",
        &format!("subject=Patient/{patient}&status=current&_count=200&_sort=-_lastUpdated"),
    )?;
    tx.commit()?;
    Ok(docs
        .iter()
        .filter(|d| d["content"].as_array().is_some_and(|c| !c.is_empty()))
        .filter_map(|d| {
            let title = doc_title(d);
            Some((
                d["id"].as_str()?.to_owned(),
                title,
                d["date"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect())
}

/// What went wrong with a referral action, with the HTTP status that fits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ReferralError {
    /// The request is wrong (400).
    Invalid(String),
    /// A field is wrong (400): the field and the message.
    Field(String, String),
    NotFound(String),
    Forbidden(String),
    /// The referral's state does not allow it, or someone changed it (409).
    Conflict(String),
    Store(String),
}

impl ReferralError {
    pub fn status(&self) -> u16 {
        match self {
            ReferralError::Invalid(_) | ReferralError::Field(..) => 400,
            ReferralError::NotFound(_) => 404,
            ReferralError::Forbidden(_) => 403,
            ReferralError::Conflict(_) => 409,
            ReferralError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ReferralError::Invalid(m)
            | ReferralError::Field(_, m)
            | ReferralError::NotFound(m)
            | ReferralError::Forbidden(m)
            | ReferralError::Conflict(m)
            | ReferralError::Store(m) => m.clone(),
        }
    }

    /// The form field the error is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            ReferralError::Field(f, _) => Some(f),
            _ => None,
        }
    }

    /// As a FHIR error (OperationOutcome).
    pub fn to_fhir(&self) -> FhirError {
        let code = match self {
            ReferralError::Invalid(_) | ReferralError::Field(..) => "invalid",
            ReferralError::NotFound(_) => "not-found",
            ReferralError::Forbidden(_) => "forbidden",
            ReferralError::Conflict(_) => "conflict",
            ReferralError::Store(_) => "exception",
        };
        let e = FhirError::new(self.status(), code, self.message());
        match self.field() {
            Some(f) => e.at(f),
            None => e,
        }
    }
}

impl std::fmt::Display for ReferralError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ReferralError {}

impl From<FhirError> for ReferralError {
    fn from(e: FhirError) -> ReferralError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "referral") {
            R::Forbidden(m) => ReferralError::Forbidden(m),
            R::NotFound(m) => ReferralError::NotFound(m),
            R::Concurrent(m) => ReferralError::Conflict(m),
            R::Invalid(m) => ReferralError::Invalid(m),
            R::Store(m) => ReferralError::Store(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_moves_forward_only() {
        assert!(allowed(State::Draft, State::Sent));
        assert!(allowed(State::Sent, State::Accepted));
        assert!(allowed(State::Sent, State::Rejected));
        assert!(!allowed(State::Accepted, State::Rejected));
        assert!(!allowed(State::Draft, State::Accepted));
        assert!(!allowed(State::Cancelled, State::Sent));
        let mut sr = json!({"resourceType": "ServiceRequest", "status": "draft"});
        set_part(&mut sr, "state", Some(("valueCode", "draft")));
        set_state(&mut sr, State::Sent, None).unwrap();
        assert_eq!(sr["status"], "active");
        set_state(&mut sr, State::Rejected, Some("No capacity")).unwrap();
        assert_eq!(sr["status"], "revoked");
        assert_eq!(part(&sr, "reason"), Some("No capacity"));
        assert!(set_state(&mut sr, State::Accepted, None).is_err());
    }
}
