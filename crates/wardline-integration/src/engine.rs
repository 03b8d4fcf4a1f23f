//! Inbound processing: one message in, one ACK out, the ACK only after the
//! message, its effects and its record are durably committed.
//!
//! [`Engine::receive`] is synchronous (the store is) and transport-free; the
//! MLLP listener calls it on a blocking thread, `wardline hl7 reprocess`
//! directly.
//!
//! 1. Parse. Unparsable input is recorded (`not-done`, the raw bytes kept)
//!    and answered `AR` with an ERR naming the segment and field
//!    (`ack_unparsed`). A message without MSH-10 is refused the same way.
//! 2. Duplicate check: the record id is a hash of sender and control id
//!    ([`message_store::inbound_id`]); an existing record that was applied
//!    (`completed`) or stored (`on-hold`) means a resend: its stored ACK is
//!    sent again and nothing is applied. A record that was refused
//!    (`not-done`) is processed again: the sender may have corrected it.
//!    Check and apply run under a per-id lock and in one store transaction;
//!    a concurrent writer elsewhere loses on the record's primary key.
//! 3. Map and apply ([`wardline_hl7_fhir::inbound::apply`]) through a
//!    [`Tx`]; the record (`completed`, `about` = every resource written,
//!    `subject` = the patient, payload = message and ACK) is saved in the
//!    same transaction. Write hooks (the outbound outbox) run in it too,
//!    with the sender as origin so it is not echoed back.
//! 4. On a content error the transaction is rolled back and the message is
//!    recorded `not-done` with the error; `AE` names the field. An unmapped
//!    type is recorded `on-hold` and answered `AA`, or recorded `not-done`
//!    and answered `AR`, per [`UnsupportedPolicy`]. A store failure is
//!    answered `AR` (resend later), never `AA`.
//! 5. Acknowledgement mode ([`Receipt::replies`]). Original mode (MSH-15
//!    and MSH-16 both empty): the one reply is the ACK above, exactly as
//!    before. Enhanced mode (either present; table 0155 AL always, NE
//!    never, ER only on error or reject, SU only on success; an empty one
//!    of the two counts as AL): the commit ACK when MSH-15 wants it — `CA`
//!    applied and committed, `CE` refused for its content, `CR` rejected
//!    (unparsable, unmapped under the reject policy, not stored) — the same
//!    ACK with the commit code and its own MSH-10, then the application ACK
//!    (`AA`/`AE`/`AR`, the one recorded) when MSH-16 wants it. Both are made
//!    once the outcome is committed, so a `CA` always means committed. A
//!    resend gets the same replies for its mode.

use std::sync::Arc;

use serde_json::{Value, json};
use wardline_core::FhirService;
use wardline_fhir::FhirError;
use wardline_fhir::datetime::{format_instant, now_ms};
use wardline_hl7::{AckCode, AckMode, ErrorDetail, Message, ack, ack_unparsed, commit_ack};
use wardline_hl7_fhir::records::{RETRY, TxRecords};
use wardline_hl7_fhir::{MapError, MapErrorKind, MappingConfig, inbound};

use crate::message_store::{
    DIRECTION_SYSTEM, EVENT_SYSTEM, MESSAGE_TYPE_SYSTEM, attachment, coding, inbound_id,
    payload_text, sender_system, status,
};

/// What to do with a well-formed message whose type or event is not mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnsupportedPolicy {
    /// Record it (`not-done`, kept for `reprocess` once a mapping exists) and
    /// answer `AR` with error 200 (unsupported message type) or 201
    /// (unsupported event) at MSH-9: nothing was applied, and the sender
    /// knows. The default: a message Wardline cannot apply is never
    /// acknowledged as accepted (hazard H-014).
    #[default]
    Reject,
    /// Park it (`on-hold`, for `reprocess` once a mapping exists) and answer
    /// `AE` with the same error at MSH-9 and a text saying it is held, not
    /// applied: for a deployment that wants such messages kept rather than
    /// resent. Still never `AA`.
    Hold,
}

#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub mapping: MappingConfig,
    pub unsupported: UnsupportedPolicy,
}

/// The outcome of one inbound message.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The (application) ACK of the outcome (ER7 text), `AA`/`AE`/`AR`:
    /// the one kept in the message's record and sent again for a resend.
    /// In original mode it is the reply.
    pub ack: String,
    /// Its MSA-1 code.
    pub code: AckCode,
    /// The id of the `Communication` recording the message, when recorded.
    pub record_id: Option<String>,
    /// The message had been received before; nothing was applied.
    pub duplicate: bool,
    /// What goes back over the connection, in order: in original mode
    /// `[ack]`; in enhanced mode the commit ACK (`CA`/`CE`/`CR`) when MSH-15
    /// asks for it, then the application ACK (`ack`) when MSH-16 does.
    /// Possibly empty (`NE`, or `ER` on success / `SU` on failure).
    pub replies: Vec<String>,
}

/// The first field of `msg` repeated more than `max` times, as a content
/// error naming it (`PID-5`, `OBX[3]-5`): one pass over the fields.
fn over_repeated(msg: &Message<'_>, max: usize) -> Option<MapError> {
    let sep = msg.separators().repetition?;
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for seg in msg.segments() {
        let occurrence = {
            let n = seen.entry(seg.id()).or_default();
            *n += 1;
            *n
        };
        if seg.is_header() {
            continue;
        }
        for (i, f) in seg.fields().enumerate() {
            // The repetition separator never appears escaped in raw text.
            let n = f.raw().matches(sep).count() + 1;
            if n > max {
                let field = i + 1;
                let at = if occurrence == 1 {
                    format!("{}-{field}", seg.id())
                } else {
                    format!("{}[{occurrence}]-{field}", seg.id())
                };
                return Some(MapError::content(
                    wardline_hl7::ack::error_code::DATA_TYPE_ERROR,
                    Some(&at),
                    format!(
                        "{at} repeats {n} times; at most {max} repetitions of one field are accepted"
                    ),
                ));
            }
        }
    }
    None
}

/// The acknowledgement mode of raw input: from its MSH when it parses (or
/// its MSH line can be salvaged), else original.
fn ack_mode_of(raw: &[u8]) -> AckMode {
    match Message::parse_bytes(raw) {
        Ok(m) => AckMode::of(&m),
        Err(_) => wardline_hl7::salvage_header(raw)
            .map(|m| AckMode::of(&m))
            .unwrap_or(AckMode::Original),
    }
}

/// The replies of a receipt in an acknowledgement mode (see
/// [`Receipt::replies`]). Called only once the outcome is durably
/// committed (or refused), so a `CA` always means committed.
fn replies(mode: AckMode, r: &Receipt) -> Vec<String> {
    match mode {
        AckMode::Original => vec![r.ack.clone()],
        AckMode::Enhanced {
            accept,
            application,
        } => {
            let accepted = r.code.is_accept();
            let mut out = Vec::new();
            if accept.wants(accepted)
                && let Some(c) = commit_ack(&r.ack)
            {
                out.push(c);
            }
            if application.wants(accepted) {
                out.push(r.ack.clone());
            }
            out
        }
    }
}

pub struct Engine {
    svc: Arc<FhirService>,
    cfg: EngineConfig,
    /// Who the audit trail says made the engine's changes.
    access: wardline_core::Trusted,
}

const ATTEMPTS: usize = 5;

impl Engine {
    pub fn new(svc: Arc<FhirService>, cfg: EngineConfig) -> Engine {
        Engine {
            svc,
            cfg,
            access: wardline_core::Trusted::new(wardline_core::Agent {
                kind: wardline_core::AgentKind::System,
                name: "hl7-engine".into(),
                ..Default::default()
            }),
        }
    }

    pub fn service(&self) -> &Arc<FhirService> {
        &self.svc
    }

    /// Processes one message (the bytes of one MLLP frame). The receipt's
    /// [`Receipt::replies`] are what goes back to the sender, in order (see
    /// the module documentation on acknowledgement modes).
    pub fn receive(&self, raw: &[u8]) -> Receipt {
        let mut r = self.receive_applied(raw);
        r.replies = replies(ack_mode_of(raw), &r);
        r
    }

    fn receive_applied(&self, raw: &[u8]) -> Receipt {
        let msg = match Message::parse_bytes(raw) {
            Ok(m) => m,
            Err(e) => {
                let reply = ack_unparsed(raw, AckCode::AR, &e).encode();
                let record_id = self.record_unparsed(raw, &e.to_string(), &reply);
                return Receipt {
                    ack: reply,
                    code: AckCode::AR,
                    record_id,
                    duplicate: false,
                    replies: Vec::new(),
                };
            }
        };
        let control_id = msg.control_id().unwrap_or_default().into_owned();
        if control_id.trim().is_empty() {
            let detail =
                ErrorDetail::new(101, "MSH-10 (message control id) is empty").at(&"MSH-10"
                    .parse::<wardline_hl7::Path>()
                    .expect("literal path"));
            let reply = ack(&msg, AckCode::AR, &[detail]).encode();
            let record_id = self.record_unparsed(raw, "MSH-10 is empty", &reply);
            return Receipt {
                ack: reply,
                code: AckCode::AR,
                record_id,
                duplicate: false,
                replies: Vec::new(),
            };
        }
        let app = msg.sending_application().unwrap_or_default().to_owned();
        let facility = msg.sending_facility().unwrap_or_default().to_owned();
        let id = inbound_id(&app, &facility, &control_id);
        let mut last_err = None;
        for _ in 0..ATTEMPTS {
            match self.try_receive(&msg, raw, &id, &app, &facility, &control_id, false) {
                Ok(r) => return r,
                // A version conflict: someone else wrote the record or a
                // resource concurrently; look again.
                Err(e) if e.status == 409 || e.status == 412 => last_err = Some(e),
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            }
        }
        let e = last_err.unwrap_or_else(|| FhirError::internal("unknown failure"));
        let e = self.svc.classify_refusal(e);
        tracing::error!(control_id, error = %e, "HL7 message could not be stored");
        // Whether it was stored is said only when it is known: a commit
        // whose connection was lost may have landed, and a resend with the
        // same control id is recognised rather than applied twice.
        let detail = if e.is_outcome_unknown() {
            ErrorDetail::new(
                207,
                format!(
                    "outcome unknown (it may have been stored): send it again with the same control id, which is recognised and not applied twice: {e}"
                ),
            )
        } else if e.is_downtime()
            || e.to_string()
                .contains(wardline_fhir::error::DOWNTIME_PREFIX)
        {
            // Issue 22: writes are switched off; the sender keeps the
            // message and sends it again when the downtime ends.
            ErrorDetail::new(
                207,
                format!(
                    "not stored, downtime: {}",
                    e.issues.first().map_or("", |i| i.diagnostics.as_str())
                ),
            )
        } else {
            ErrorDetail::new(207, format!("not stored, send again later: {e}"))
        };
        Receipt {
            ack: ack(&msg, AckCode::AR, &[detail]).encode(),
            code: AckCode::AR,
            record_id: None,
            duplicate: false,
            replies: Vec::new(),
        }
    }

    /// Applies a stored message again (after a mapping fix), or a corrected
    /// text in its place. The record gets a new version with the outcome;
    /// no ACK is sent anywhere. A message already applied is refused
    /// (it would apply twice).
    pub fn reprocess(&self, record_id: &str, corrected: Option<&[u8]>) -> Result<Receipt, String> {
        let record = self
            .svc
            .transact(&self.access, |tx| tx.get("Communication", record_id))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no HL7 message record Communication/{record_id}"))?;
        if status(&record) == "completed" {
            return Err(format!(
                "Communication/{record_id} was applied already; reprocessing would apply it twice"
            ));
        }
        let direction_in = record
            .get("category")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|x| x == &coding(DIRECTION_SYSTEM, "inbound")));
        if !direction_in {
            return Err(format!(
                "Communication/{record_id} is not an inbound HL7 message"
            ));
        }
        let raw: Vec<u8> = match corrected {
            Some(b) => b.to_vec(),
            None => payload_text(&record, 0)
                .ok_or_else(|| format!("Communication/{record_id} has no message payload"))?
                .into_bytes(),
        };
        let msg =
            Message::parse_bytes(&raw).map_err(|e| format!("the message does not parse: {e}"))?;
        let control_id = msg.control_id().unwrap_or_default().into_owned();
        let app = msg.sending_application().unwrap_or_default().to_owned();
        let facility = msg.sending_facility().unwrap_or_default().to_owned();
        self.try_receive(&msg, &raw, record_id, &app, &facility, &control_id, true)
            .map_err(|e| e.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn try_receive(
        &self,
        msg: &Message<'_>,
        raw: &[u8],
        id: &str,
        app: &str,
        facility: &str,
        control_id: &str,
        reprocess: bool,
    ) -> Result<Receipt, FhirError> {
        let mut tx = self.svc.begin(&self.access)?;
        // One message at a time per sender and control id, in the database:
        // a resend arriving at another connection or server waits, then
        // finds this one's record.
        tx.lock(&[format!("hl7-message:{id}")])?;
        let existing = tx.get("Communication", id)?;
        if !reprocess
            && let Some(rec) = &existing
            && matches!(status(rec), "completed" | "on-hold")
        {
            // Committed (nothing written), not dropped: with group commit
            // the record may be an earlier member's of the open group, and
            // the commit returns only once that group is durable — or
            // fails with it, and then no ACK is given (issue 21).
            tx.commit()?;
            let reply = payload_text(rec, 1).unwrap_or_else(|| ack(msg, AckCode::AA, &[]).encode());
            tracing::info!(
                control_id,
                sender = app,
                "duplicate HL7 message acknowledged again"
            );
            return Ok(Receipt {
                code: ack_code_of(&reply),
                ack: reply,
                record_id: Some(id.to_owned()),
                duplicate: true,
                replies: Vec::new(),
            });
        }
        let mtype = msg.message_type().unwrap_or_default().into_owned();
        let event = msg.trigger_event().unwrap_or_default().into_owned();
        let base = RecordBase {
            id,
            raw,
            app,
            facility,
            control_id,
            mtype: &mtype,
            event: &event,
        };
        if !inbound::is_supported(&mtype, &event) {
            let (code, st, held) = match self.cfg.unsupported {
                UnsupportedPolicy::Reject => (AckCode::AR, "not-done", ""),
                UnsupportedPolicy::Hold => (
                    AckCode::AE,
                    "on-hold",
                    ": kept on hold, not applied; it is applied when reprocessed once a mapping exists",
                ),
            };
            let mut err = MapError::unsupported(
                if inbound::is_known_type(&mtype) {
                    201
                } else {
                    200
                },
                format!("MSH-9 {mtype}^{event} is not mapped by this system{held}"),
            );
            err.location = Some("MSH-9".to_owned());
            let reply = ack(msg, code, &[err.to_detail()]).encode();
            let note = err.text.clone();
            let rec = base.record(st, &reply, Some(&note), None, &[]);
            tx.save(rec)?;
            tx.commit()?;
            return Ok(Receipt {
                ack: reply,
                code,
                record_id: Some(id.to_owned()),
                duplicate: false,
                replies: Vec::new(),
            });
        }
        tx.set_origin(app);
        // Bounded work (issue 21): a field repeated past the limit is
        // refused (`AE` naming it) before anything is mapped, so no write
        // is attempted and the writer is not held building it.
        let applied = match over_repeated(msg, self.svc.config().limits.max_repeats) {
            Some(e) => Err(e),
            None => inbound::apply(msg, &mut TxRecords::inbound(&mut tx), &self.cfg.mapping),
        };
        match applied {
            Ok(applied) => {
                let reply = ack(msg, AckCode::AA, &[]).encode();
                let about: Vec<(String, String)> = tx.written().to_vec();
                let rec = base.record(
                    "completed",
                    &reply,
                    None,
                    applied.patient_id.as_deref(),
                    &about,
                );
                tx.save(rec)?;
                tx.commit()?;
                Ok(Receipt {
                    ack: reply,
                    code: AckCode::AA,
                    record_id: Some(id.to_owned()),
                    duplicate: false,
                    replies: Vec::new(),
                })
            }
            Err(e) if e.kind == MapErrorKind::Internal && e.text.starts_with(RETRY) => {
                drop(tx);
                // Let the other message finish, then start again.
                std::thread::sleep(std::time::Duration::from_millis(
                    5 + (lock_index(control_id) as u64 % 20),
                ));
                Err(FhirError::conflict(e.text))
            }
            Err(e) if e.kind == MapErrorKind::Internal => {
                drop(tx);
                Err(FhirError::internal(e.text))
            }
            Err(e) => {
                drop(tx);
                let code = if e.kind == MapErrorKind::Unsupported {
                    AckCode::AR
                } else {
                    AckCode::AE
                };
                let reply = ack(msg, code, &[e.to_detail()]).encode();
                let note = match &e.location {
                    Some(l) => format!("{l}: {}", e.text),
                    None => e.text.clone(),
                };
                let mut tx = self.svc.begin(&self.access)?;
                tx.save(base.record("not-done", &reply, Some(&note), None, &[]))?;
                tx.commit()?;
                tracing::warn!(control_id, sender = app, error = %note, "HL7 message refused");
                Ok(Receipt {
                    ack: reply,
                    code,
                    record_id: Some(id.to_owned()),
                    duplicate: false,
                    replies: Vec::new(),
                })
            }
        }
    }

    /// Records input that could not be parsed (or has no control id). When
    /// its MSH line is readable the record is keyed like any other message
    /// (sender and control id: findable, and a corrected resend replaces
    /// it); otherwise it gets a fresh id. A record of an applied message is
    /// never overwritten. Best effort: a store failure is logged.
    fn record_unparsed(&self, raw: &[u8], error: &str, reply: &str) -> Option<String> {
        let header = wardline_hl7::salvage_header(raw).and_then(|m| {
            let ctrl = m.control_id()?.into_owned();
            (!ctrl.trim().is_empty()).then(|| {
                (
                    m.sending_application().unwrap_or_default().to_owned(),
                    m.sending_facility().unwrap_or_default().to_owned(),
                    ctrl,
                    m.message_type().unwrap_or_default().into_owned(),
                    m.trigger_event().unwrap_or_default().into_owned(),
                )
            })
        });
        let result = self.svc.transact(&self.access, |tx| {
            let rec = match &header {
                Some((app, fac, ctrl, mtype, event)) => {
                    let id = inbound_id(app, fac, ctrl);
                    if let Some(existing) = tx.get("Communication", &id)?
                        && status(&existing) != "not-done"
                    {
                        return Ok(id);
                    }
                    RecordBase {
                        id: &id,
                        raw,
                        app,
                        facility: fac,
                        control_id: ctrl,
                        mtype,
                        event,
                    }
                    .record("not-done", reply, Some(error), None, &[])
                }
                None => json!({
                    "resourceType": "Communication",
                    "status": "not-done",
                    "statusReason": {"text": error},
                    "category": [coding(DIRECTION_SYSTEM, "inbound")],
                    "received": format_instant(now_ms()),
                    "payload": [attachment(raw, "message"), attachment(reply.as_bytes(), "ACK")],
                    "note": [{"text": error}],
                }),
            };
            tx.save(rec).map(|s| s.id)
        });
        match result {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(error = %e, "could not record an unparsable HL7 message");
                None
            }
        }
    }
}

struct RecordBase<'a> {
    id: &'a str,
    raw: &'a [u8],
    app: &'a str,
    facility: &'a str,
    control_id: &'a str,
    mtype: &'a str,
    event: &'a str,
}

impl RecordBase<'_> {
    fn record(
        &self,
        st: &str,
        reply: &str,
        error: Option<&str>,
        patient: Option<&str>,
        about: &[(String, String)],
    ) -> Value {
        let mut category = vec![coding(DIRECTION_SYSTEM, "inbound")];
        if !self.mtype.is_empty() {
            category.push(coding(MESSAGE_TYPE_SYSTEM, self.mtype));
        }
        if !self.event.is_empty() {
            category.push(coding(EVENT_SYSTEM, self.event));
        }
        let mut rec = json!({
            "resourceType": "Communication",
            "id": self.id,
            "identifier": [{"system": sender_system(self.app, self.facility), "value": self.control_id}],
            "status": st,
            "category": category,
            "received": format_instant(now_ms()),
            "payload": [attachment(self.raw, "message"), attachment(reply.as_bytes(), "ACK")],
        });
        if let Some(e) = error {
            rec["statusReason"] = json!({"text": e});
            rec["note"] = json!([{"text": e}]);
        }
        if let Some(p) = patient {
            rec["subject"] = json!({"reference": format!("Patient/{p}")});
        }
        let about: Vec<Value> = about
            .iter()
            .filter(|(t, _)| t != "Communication")
            .map(|(t, i)| json!({"reference": format!("{t}/{i}")}))
            .collect();
        if !about.is_empty() {
            rec["about"] = Value::Array(about);
        }
        rec
    }
}

fn lock_index(id: &str) -> usize {
    id.bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % 64
}

fn ack_code_of(reply: &str) -> AckCode {
    Message::parse(reply)
        .ok()
        .and_then(|m| m.get("MSA-1").ok().flatten().and_then(AckCode::parse))
        .unwrap_or(AckCode::AA)
}
