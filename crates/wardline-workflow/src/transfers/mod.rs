//! Transfers of care (issue 18): delivery of documents to GP practices over
//! MESH and email, and the 24-hour discharge summary standard.
//!
//! # The model (FHIR R4; no second schema)
//!
//! * **What is sent** is a `DocumentReference` (for a discharge summary:
//!   `type` SNOMED CT 373942005, `subject`, `context.encounter`, one
//!   attachment the signed document `Bundle` (`url` `Bundle/{id}`,
//!   `application/fhir+json`) and one the PDF (`application/pdf`, inline
//!   `data` or `url` `Binary/{id}`)). The discharge step writes it and calls
//!   [`queue_in`]; nothing here depends on how it was made.
//! * **A delivery** is a `Communication`: `category` [`KIND_SYSTEM`] (the
//!   [`Kind`]), `subject`, `encounter`, `recipient` the GP practice
//!   `Organization`, `payload[0].contentReference` the DocumentReference,
//!   `sent` when a route accepted it, `received` when the practice
//!   acknowledged it (MESH), `statusReason` on a final failure. The route
//!   and its progress are sub-extensions of [`DELIVERY_EXT`]: `route`
//!   (`mesh` | `email`), `address` (mailbox id or email address),
//!   `attempts` (on the current route), `nextAttempt`, `meshMessageId`,
//!   `lastError`.
//! * **Routing** ([`routing`]) is the practice's `Organization.endpoint`
//!   list, in order of preference: `Endpoint`s whose `connectionType` is
//!   [`CONNECTION_SYSTEM`] `mesh` (address `mesh://{mailbox id}`: FHIR `url`, a locator form validators accept) or `email`
//!   (address `mailto:{address}`).
//!
//! # The delivery lifecycle (one home: [`set_status`])
//!
//! ```text
//! preparation ──► in-progress ──► completed
//!      │  ▲            │
//!      │  └────────────┘ (MESH reported it undeliverable: next route)
//!      ├──► completed (email: SMTP accepted it; email has no acknowledgement)
//!      └──► stopped (every route failed: a delivery-failure Task; or the
//!                    patient dissented: a delivery-withheld Task, no route tried)
//! any ──► entered-in-error
//! ```
//!
//! * `preparation`: queued or waiting for a retry (`nextAttempt`).
//! * `in-progress`: accepted by MESH (`sent`, `meshMessageId`), waiting for
//!   the practice's acknowledgement.
//! * `completed`: acknowledged by the practice (`received`), or handed to
//!   the practice's mail server.
//! * `stopped`: no route could deliver it; a `Task`
//!   [`DELIVERY_FAILURE_CODE`] is on the delivery-failures worklist.
//!
//! Sending ([`send`]) talks to MESH ([`mesh`]) and SMTP ([`email`]) outside
//! any transaction and records each outcome in a transaction of its own
//! under the Communication's lock. The 24-hour standard is [`standard`].

pub mod care_act;
pub mod email;
pub mod mesh;
pub mod peers;
pub mod routing;
pub mod send;
pub mod standard;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

use crate::fhir::reference_id;

/// What kind of document a delivery carries (`Communication.category`).
pub const KIND_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/transfer-kind";
/// A delivery's route and progress (sub-extensions `route`, `address`,
/// `attempts`, `nextAttempt`, `meshMessageId`, `lastError`).
pub const DELIVERY_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/delivery";
/// `Endpoint.connectionType` codes of the routes (`mesh`, `email`).
pub const CONNECTION_SYSTEM: &str =
    "https://fhir.wardline.invalid/CodeSystem/endpoint-connection-type";
/// `Task.code` (system `pmi::TASK_SYSTEM`) of a delivery that failed on every route.
pub const DELIVERY_FAILURE_CODE: &str = "delivery-failure";
/// `Task.code` (system `pmi::TASK_SYSTEM`) of a delivery withheld because
/// the patient dissented from sharing with the recipient (issue 18: access).
pub const DELIVERY_WITHHELD_CODE: &str = "delivery-withheld";
/// SNOMED CT 373942005 |Discharge summary|.
pub const DISCHARGE_SUMMARY_CODE: &str = "373942005";
/// SNOMED CT.
pub const SNOMED: &str = "http://snomed.info/sct";

/// The kinds of document Wardline delivers: to GP practices, patients and
/// local authorities. One table ([`Kind::ALL`]) names each kind's code,
/// label and MESH workflow id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An inpatient discharge summary (MESH workflow `TOC_FHIR_IP_DISCH`).
    DischargeSummary,
    /// A letter after an outpatient attendance (MESH workflow
    /// `TOC_FHIR_OP_ATTEN`).
    ClinicLetter,
    /// A Care Act assessment notice to a local authority.
    CareActAssessment,
    /// A Care Act discharge notice to a local authority.
    CareActDischarge,
}

impl Kind {
    /// Every kind: (kind, code, label, MESH workflow id).
    pub const ALL: [(Kind, &'static str, &'static str, &'static str); 4] = [
        (
            Kind::DischargeSummary,
            "discharge-summary",
            "Discharge summary",
            "TOC_FHIR_IP_DISCH",
        ),
        (
            Kind::ClinicLetter,
            "clinic-letter",
            "Clinic letter",
            "TOC_FHIR_OP_ATTEN",
        ),
        (
            Kind::CareActAssessment,
            "care-act-assessment",
            "Care Act assessment notice",
            "WARDLINE_CARE_ACT_ASSESS",
        ),
        (
            Kind::CareActDischarge,
            "care-act-discharge",
            "Care Act discharge notice",
            "WARDLINE_CARE_ACT_DISCH",
        ),
    ];

    fn row(self) -> (Kind, &'static str, &'static str, &'static str) {
        Kind::ALL
            .into_iter()
            .find(|r| r.0 == self)
            .unwrap_or(Kind::ALL[0])
    }
    pub fn code(self) -> &'static str {
        self.row().1
    }
    pub fn label(self) -> &'static str {
        self.row().2
    }
    /// The MESH workflow id the message is sent with.
    pub fn mesh_workflow(self) -> &'static str {
        self.row().3
    }
    pub fn of_code(code: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|r| r.1 == code).map(|r| r.0)
    }
}

/// A document to deliver (references as `Type/id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub kind: Kind,
    /// `Patient/{id}`.
    pub patient: String,
    /// `Encounter/{id}`.
    pub encounter: String,
    /// `DocumentReference/{id}`.
    pub document: String,
    /// `Organization/{id}`: the GP practice; or `Patient/{id}`, the same
    /// patient: their own copy, routed to their email address
    /// ([`routing::patient_copy_in`]).
    pub recipient: String,
}

/// The FHIR R4 Communication status codes.
pub const STATUSES: [&str; 8] = [
    "preparation",
    "in-progress",
    "not-done",
    "on-hold",
    "stopped",
    "completed",
    "entered-in-error",
    "unknown",
];

/// Whether a delivery may go from `from` to `to` (see the module
/// documentation).
pub fn allowed(from: &str, to: &str) -> bool {
    if !STATUSES.contains(&from) || !STATUSES.contains(&to) {
        return false;
    }
    if to == "entered-in-error" {
        return true;
    }
    matches!(
        (from, to),
        (
            "preparation",
            "preparation" | "in-progress" | "completed" | "stopped"
        ) | ("in-progress", "preparation" | "completed" | "stopped")
    )
}

/// The one place a delivery's status changes: checks [`allowed`], sets
/// `status` (and `statusReason` when stopping).
pub fn set_status(comm: &mut Value, to: &str, reason: Option<&str>) -> Result<(), TransfersError> {
    let from = comm["status"].as_str().unwrap_or("unknown").to_owned();
    if !allowed(&from, to) {
        return Err(TransfersError::Conflict(format!(
            "A delivery that is {from} cannot become {to}."
        )));
    }
    comm["status"] = json!(to);
    match reason {
        Some(r) => comm["statusReason"] = json!({"text": r}),
        None => {
            if let Some(o) = comm.as_object_mut() {
                o.remove("statusReason");
            }
        }
    }
    Ok(())
}

/// The delivery lifecycle on every write path (registered in
/// `crate::with_rules`): a delivery `Communication` (one with a
/// [`KIND_SYSTEM`] category) written by any channel — FHIR REST included —
/// may only move as [`allowed`] says, and is created only in
/// `preparation` (a delivery is queued, never created as already sent).
pub struct DeliveryRule;

impl wardline_core::WriteRule for DeliveryRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Communication"
    }

    fn check(
        &self,
        _tx: &mut wardline_core::RuleTx<'_, '_>,
        w: &wardline_core::ProposedWrite<'_>,
    ) -> Result<(), FhirError> {
        let is_delivery = |c: &Value| kind_of(c).is_some();
        if !is_delivery(w.resource) && !w.current.is_some_and(is_delivery) {
            return Ok(());
        }
        let to = w.resource["status"].as_str().unwrap_or("unknown");
        let refusal = match w.current {
            None if to != "preparation" && to != "entered-in-error" => Some(format!(
                "A delivery to a GP practice is created in preparation (queued), not {to}."
            )),
            None => None,
            Some(cur) => {
                let from = cur["status"].as_str().unwrap_or("unknown");
                (!allowed(from, to))
                    .then(|| format!("A delivery that is {from} cannot become {to}."))
            }
        };
        match refusal {
            Some(m) => Err(FhirError::new(422, "business-rule", m).at("Communication.status")),
            None => Ok(()),
        }
    }
}

/// `now` as a FHIR instant to the second, UTC.
pub fn fhir_time(now: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(now)
}

pub(crate) fn ms_of(now: OffsetDateTime) -> i64 {
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn parse_ms(s: &str) -> Option<i64> {
    wardline_fhir::datetime::parse_range(s).map(|r| r.0)
}

/// A delivery's sub-extension `part` of [`DELIVERY_EXT`].
pub fn delivery_part<'a>(comm: &'a Value, part: &str) -> Option<&'a Value> {
    comm["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == DELIVERY_EXT)?["extension"]
        .as_array()?
        .iter()
        .find(|s| s["url"] == part)
}

/// A string-valued (string, code, dateTime) sub-extension.
pub fn delivery_text<'a>(comm: &'a Value, part: &str) -> Option<&'a str> {
    let p = delivery_part(comm, part)?;
    p["valueString"]
        .as_str()
        .or_else(|| p["valueCode"].as_str())
        .or_else(|| p["valueDateTime"].as_str())
}

/// Attempts made on the current route.
pub fn attempts(comm: &Value) -> u32 {
    delivery_part(comm, "attempts")
        .and_then(|p| p["valueInteger"].as_u64())
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// Sets (`Some`) or removes (`None`) one sub-extension of [`DELIVERY_EXT`];
/// `value` is the whole `value[x]` member, e.g. `("valueString", "…")`.
pub(crate) fn set_delivery(comm: &mut Value, part: &str, value: Option<(&str, Value)>) {
    if !comm["extension"].is_array() {
        comm["extension"] = json!([]);
    }
    let Some(exts) = comm["extension"].as_array_mut() else {
        return;
    };
    let idx = match exts.iter().position(|e| e["url"] == DELIVERY_EXT) {
        Some(i) => i,
        None => {
            exts.push(json!({"url": DELIVERY_EXT, "extension": []}));
            exts.len() - 1
        }
    };
    let subs = &mut exts[idx]["extension"];
    if !subs.is_array() {
        *subs = json!([]);
    }
    if let Some(list) = subs.as_array_mut() {
        list.retain(|s| s["url"] != part);
        if let Some((key, v)) = value {
            let mut s = json!({"url": part});
            s[key] = v;
            list.push(s);
        }
    }
}

/// The delivery's kind, read from its category.
pub fn kind_of(comm: &Value) -> Option<Kind> {
    comm["category"]
        .as_array()?
        .iter()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .find(|c| c["system"] == KIND_SYSTEM)
        .and_then(|c| Kind::of_code(c["code"].as_str()?))
}

/// Completes the open Tasks `query` finds (a `Task` search: code, focus or
/// encounter), with `outcome`, in `tx`: the one way the transfers
/// worklists' Tasks close.
pub(crate) fn complete_tasks_in(
    tx: &mut Tx<'_>,
    query: &str,
    outcome: &str,
    now: OffsetDateTime,
) -> Result<(), TransfersError> {
    let open = tx.find(
        "Task",
        &format!("{query}&status=requested,received,accepted,ready,in-progress,on-hold"),
    )?;
    for mut t in open {
        let now_s = fhir_time(now);
        t["status"] = json!("completed");
        t["lastModified"] = json!(now_s);
        t["executionPeriod"]["end"] = json!(now_s);
        t["output"] = json!([{"type": {"text": "outcome"}, "valueString": outcome}]);
        tx.save(t)?;
    }
    Ok(())
}

/// The lock key of a delivery.
pub(crate) fn lock_key(id: &str) -> String {
    format!("Communication/{id}")
}

fn typed_ref<'a>(r: &'a str, t: &str, field: &str) -> Result<&'a str, TransfersError> {
    r.strip_prefix(t)
        .and_then(|s| s.strip_prefix('/'))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            TransfersError::Invalid(format!(
                "{field} must be a reference {t}/{{id}}, not {r:?}."
            ))
        })
}

/// Queues `out` for delivery in `tx`: a `Communication` in `preparation`,
/// due now. One delivery per document and recipient: a document already
/// queued to that recipient (and not stopped) returns that delivery's id.
/// Returns the Communication id.
pub fn queue_in(
    tx: &mut Tx<'_>,
    out: &Outgoing,
    now: OffsetDateTime,
) -> Result<String, TransfersError> {
    let patient = typed_ref(&out.patient, "Patient", "patient")?;
    let encounter = typed_ref(&out.encounter, "Encounter", "encounter")?;
    let document = typed_ref(&out.document, "DocumentReference", "document")?;
    let to_patient = out.recipient.starts_with("Patient/");
    let to = if to_patient {
        typed_ref(&out.recipient, "Patient", "recipient")?
    } else {
        typed_ref(&out.recipient, "Organization", "recipient")?
    };
    if to_patient && to != patient {
        return Err(TransfersError::Invalid(format!(
            "recipient: a patient's copy goes to the patient it is about (Patient/{patient}), not {}.",
            out.recipient
        )));
    }
    tx.lock(&[format!("DocumentReference/{document}")])?;
    let doc = tx.get("DocumentReference", document)?.ok_or_else(|| {
        TransfersError::NotFound(format!(
            "There is no document DocumentReference/{document}."
        ))
    })?;
    if reference_id(&doc["subject"], "Patient") != Some(patient) {
        return Err(TransfersError::Invalid(format!(
            "DocumentReference/{document} is not about Patient/{patient}."
        )));
    }
    if !to_patient && tx.get("Organization", to)?.is_none() {
        return Err(TransfersError::NotFound(format!(
            "There is no GP practice Organization/{to}."
        )));
    }
    let existing = tx.find(
        "Communication",
        &format!("encounter=Encounter/{encounter}&status=preparation,in-progress,completed"),
    )?;
    if let Some(c) = existing.iter().find(|c| {
        c["recipient"][0]["reference"] == out.recipient.as_str()
            && c["payload"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["contentReference"]["reference"] == out.document.as_str())
    }) {
        return Ok(c["id"].as_str().unwrap_or_default().to_owned());
    }
    let mut comm = json!({
        "resourceType": "Communication",
        "status": "preparation",
        "category": [{"coding": [{"system": KIND_SYSTEM, "code": out.kind.code(), "display": out.kind.label()}]}],
        "subject": {"reference": out.patient},
        "encounter": {"reference": out.encounter},
        "recipient": [{"reference": out.recipient}],
        "payload": [{"contentReference": {"reference": out.document, "display": out.kind.label()}}],
    });
    set_delivery(&mut comm, "attempts", Some(("valueInteger", json!(0))));
    set_delivery(
        &mut comm,
        "nextAttempt",
        Some(("valueDateTime", json!(fhir_time(now)))),
    );
    Ok(tx.save(comm)?.id)
}

/// [`queue_in`] as one audited transaction (`transfers-queue`).
pub fn queue(
    svc: &FhirService,
    access: &dyn Access,
    out: &Outgoing,
    now: OffsetDateTime,
) -> Result<String, TransfersError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-queue", "C");
    let id = queue_in(&mut tx, out, now)?;
    tx.commit()?;
    Ok(id)
}

/// What went wrong with a transfers action, with the HTTP status that fits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TransfersError {
    /// The request is wrong (400); the field is named in the text.
    Invalid(String),
    /// 404.
    NotFound(String),
    /// 403.
    Forbidden(String),
    /// The record's state does not allow it, or someone changed it (409).
    Conflict(String),
    /// Wardline failed (500).
    Store(String),
}

impl TransfersError {
    pub fn status(&self) -> u16 {
        match self {
            TransfersError::Invalid(_) => 400,
            TransfersError::NotFound(_) => 404,
            TransfersError::Forbidden(_) => 403,
            TransfersError::Conflict(_) => 409,
            TransfersError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            TransfersError::Invalid(m)
            | TransfersError::NotFound(m)
            | TransfersError::Forbidden(m)
            | TransfersError::Conflict(m)
            | TransfersError::Store(m) => m.clone(),
        }
    }
}

impl std::fmt::Display for TransfersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for TransfersError {}

impl From<FhirError> for TransfersError {
    fn from(e: FhirError) -> TransfersError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "record") {
            R::Forbidden(m) => TransfersError::Forbidden(m),
            R::NotFound(m) => TransfersError::NotFound(m),
            R::Concurrent(m) => TransfersError::Conflict(m),
            R::Invalid(m) => TransfersError::Invalid(m),
            R::Store(m) => TransfersError::Store(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_moves_forward_only() {
        assert!(allowed("preparation", "in-progress"));
        assert!(allowed("in-progress", "completed"));
        assert!(allowed("in-progress", "preparation"));
        assert!(allowed("preparation", "stopped"));
        assert!(!allowed("completed", "in-progress"));
        assert!(!allowed("stopped", "preparation"));
        assert!(!allowed("completed", "preparation"));
        assert!(allowed("completed", "entered-in-error"));
        assert!(!allowed("preparation", "bogus"));
        let mut c = json!({"status": "completed"});
        assert!(set_status(&mut c, "in-progress", None).is_err());
        assert_eq!(c["status"], "completed");
    }

    #[test]
    fn delivery_extension_is_read_and_written() {
        let mut c = json!({"resourceType": "Communication"});
        set_delivery(&mut c, "attempts", Some(("valueInteger", json!(2))));
        set_delivery(&mut c, "route", Some(("valueCode", json!("mesh"))));
        set_delivery(&mut c, "attempts", Some(("valueInteger", json!(3))));
        assert_eq!(attempts(&c), 3);
        assert_eq!(delivery_text(&c, "route"), Some("mesh"));
        set_delivery(&mut c, "route", None);
        assert_eq!(delivery_text(&c, "route"), None);
    }
}
