//! The outbound feed: a durable outbox and its dispatcher.
//!
//! [`OutboxHook`] is a write hook: when a transaction changes a Patient,
//! Encounter, ServiceRequest, DiagnosticReport or Appointment, the v2
//! message announcing it ([`wardline_hl7_fhir::outbound::message_for`]) is
//! written, once per configured [`Destination`], as a `Communication` with
//! status `preparation` **in the same transaction**. So a committed change
//! always has its message queued, and a rolled-back one never does. A change
//! that came from a destination (the transaction's origin is that
//! destination's name or receiving application) is not echoed back to it.
//! A change the outbound mapping cannot express is queued as a dead letter
//! (`stopped`, with the reason) rather than failing the clinical write.
//!
//! [`Dispatcher`] (one thread per destination) delivers queued messages in
//! creation order (the store's default order) over MLLP and waits for each
//! ACK:
//! * `AA`/`CA` → `completed`, with `sent` and the ACK stored;
//! * `AE` → dead letter at once (resending the same content fails again);
//! * `AR`, no ACK in time, or the connection breaking after sending → retry
//!   with exponential back-off; after `max_attempts` → dead letter;
//! * cannot connect → the destination backs off; no message is blamed.
//!
//! **Orders** go to a destination as one OML^O21 per requisition (the
//! default) or as ORM^O01 per order (`;orders=orm`), see
//! [`outbound::messages_for`]. **Doses** (MedicationAdministration) go as
//! RAS^O17 only to destinations configured `;pharmacy=ras`
//! ([`outbound::pharmacy_message_for`]); the hook watches them only then.
//! When the reply to a delivered message is an
//! order reply (ORL^O22, ORR^O02: the filler's application
//! acknowledgement), the dispatcher applies it to the orders it names
//! (filler number; refused or cancelled through the order lifecycle) in a
//! transaction whose origin is the destination, so the change is not
//! echoed back; a reply that cannot be applied is noted on the record.
//!
//! **Order per patient:** a message waiting for a retry, or dead-lettered,
//! holds back every later message for the same patient to the same
//! destination (others flow on). An operator sees dead letters with
//! `Communication?category=…hl7v2-destination|NAME&status=stopped` and
//! releases one with `wardline hl7 retry ID` (status back to `preparation`,
//! its place in the order kept) or by updating its status over the FHIR API.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wardline_core::{Change, FhirService, Tx, WriteHook};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::{format_instant, now_ms};
use wardline_hl7::Message;
use wardline_hl7::mllp::{FrameDecoder, encode_frame};
use wardline_hl7_fhir::outbound::{OrderFormat, PharmacyFeed};
use wardline_hl7_fhir::{MappingConfig, outbound};

use crate::message_store::{
    DESTINATION_SYSTEM, DIRECTION_SYSTEM, EVENT_SYSTEM, MESSAGE_TYPE_SYSTEM, attachment, coding,
    payload_text,
};
use crate::metrics::METRICS;
use wardline_hl7_fhir::records::TxRecords;

/// A downstream system fed over MLLP.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// Short name, used in records and to recognise its own messages.
    pub name: String,
    /// `host:port` of its MLLP listener.
    pub address: String,
    /// MSH-5 / MSH-6 of the messages to it.
    pub receiving_application: String,
    pub receiving_facility: String,
    /// The message orders go to it in: `OML^O21` per requisition (the
    /// default), or `ORM^O01` per order (`;orders=orm`).
    pub orders: OrderFormat,
    /// Pharmacy messages it takes: none (the default), or `RAS^O17` per
    /// dose given or not given (`;pharmacy=ras`).
    pub pharmacy: PharmacyFeed,
}

impl Destination {
    /// Parses `NAME=HOST:PORT` (MSH-5 is NAME, MSH-6 empty) or
    /// `NAME=HOST:PORT/APPLICATION^FACILITY`, either optionally followed by
    /// `;orders=oml` (the default) or `;orders=orm`, and `;pharmacy=ras`
    /// for a pharmacy system told of each dose.
    pub fn parse(spec: &str) -> Result<Destination, String> {
        let (main, options) = match spec.split_once(';') {
            Some((m, o)) => (m, Some(o)),
            None => (spec, None),
        };
        let mut orders = OrderFormat::default();
        let mut pharmacy = PharmacyFeed::default();
        for opt in options.into_iter().flat_map(|o| o.split(';')) {
            match opt.trim().split_once('=') {
                Some(("orders", v)) if v.eq_ignore_ascii_case("oml") => orders = OrderFormat::Oml,
                Some(("orders", v)) if v.eq_ignore_ascii_case("orm") => orders = OrderFormat::Orm,
                Some(("pharmacy", v)) if v.eq_ignore_ascii_case("ras") => {
                    pharmacy = PharmacyFeed::Ras;
                }
                Some(("pharmacy", v)) if v.eq_ignore_ascii_case("rds") => {
                    return Err(format!(
                        "'{spec}': Wardline does not send RDS^O13: a dispense is the pharmacy system's message (use pharmacy=ras)"
                    ));
                }
                _ => {
                    return Err(format!(
                        "'{spec}': unknown option '{opt}' (expected orders=oml, orders=orm or pharmacy=ras)"
                    ));
                }
            }
        }
        let spec = main;
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("'{spec}': expected NAME=HOST:PORT"))?;
        let (address, msh) = match rest.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (rest, None),
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "'{spec}': the destination name must be letters, digits, - or _"
            ));
        }
        if address
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!("'{spec}': '{address}' is not HOST:PORT"));
        }
        let (app, fac) = match msh {
            Some(m) => m.split_once('^').unwrap_or((m, "")),
            None => (name, ""),
        };
        Ok(Destination {
            name: name.to_owned(),
            address: address.to_owned(),
            receiving_application: app.to_owned(),
            receiving_facility: fac.to_owned(),
            orders,
            pharmacy,
        })
    }

    fn is_origin(&self, origin: Option<&str>) -> bool {
        origin.is_some_and(|o| {
            o.eq_ignore_ascii_case(&self.name)
                || o.eq_ignore_ascii_case(&self.receiving_application)
        })
    }
}

/// Queues outbound messages in the transaction of the change.
pub struct OutboxHook {
    destinations: Vec<Destination>,
    mapping: MappingConfig,
}

impl OutboxHook {
    pub fn new(destinations: Vec<Destination>, mapping: MappingConfig) -> OutboxHook {
        OutboxHook {
            destinations,
            mapping,
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A control id unique per process run and increasing: `W`, milliseconds
/// since the epoch, a 4-digit sequence (18 characters; MSH-10 allows 20).
fn control_id() -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed) % 10_000;
    format!("W{}{n:04}", now_ms())
}

/// HL7 DTM for now, UTC.
fn hl7_now() -> String {
    let s = format_instant(now_ms()); // 2026-11-23T10:15:00.123Z
    let digits: String = s.chars().filter(char::is_ascii_digit).take(14).collect();
    format!("{digits}+0000")
}

fn parse(json: Option<&str>) -> Option<Value> {
    json.and_then(|j| serde_json::from_str(j).ok())
}

impl WriteHook for OutboxHook {
    fn watches(&self, resource_type: &str) -> bool {
        (!self.destinations.is_empty() && outbound::TRIGGER_TYPES.contains(&resource_type))
            || (outbound::PHARMACY_TRIGGER_TYPES.contains(&resource_type)
                && self
                    .destinations
                    .iter()
                    .any(|d| d.pharmacy != PharmacyFeed::None))
    }

    fn before_commit(&self, tx: &mut Tx<'_>, changes: &[Change]) -> Result<(), FhirError> {
        let origin = tx.origin().map(str::to_owned);
        let targets: Vec<&Destination> = self
            .destinations
            .iter()
            .filter(|d| !d.is_origin(origin.as_deref()))
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let parsed: Vec<(Option<Value>, Option<Value>)> = changes
            .iter()
            .map(|c| (parse(c.before.as_deref()), parse(c.after.as_deref())))
            .collect();
        let all: Vec<outbound::Change> = changes
            .iter()
            .zip(&parsed)
            .map(|(c, (b, a))| outbound::Change {
                resource_type: &c.resource_type,
                before: b.as_ref(),
                after: a.as_ref(),
            })
            .collect();
        // Pharmacy changes go only to destinations that take them (below).
        let (pharmacy, views): (Vec<outbound::Change>, Vec<outbound::Change>) = all
            .into_iter()
            .partition(|c| outbound::PHARMACY_TRIGGER_TYPES.contains(&c.resource_type));
        for format in [OrderFormat::Oml, OrderFormat::Orm] {
            let these: Vec<&Destination> = targets
                .iter()
                .copied()
                .filter(|d| d.orders == format)
                .collect();
            if these.is_empty() {
                continue;
            }
            let built = {
                let mut records = TxRecords::reading(&mut *tx);
                outbound::messages_for(
                    &views,
                    &mut records,
                    &self.mapping,
                    format,
                    &mut control_id,
                    &hl7_now(),
                )
            };
            for b in built {
                queue(tx, &these, b)?;
            }
        }
        let takers: Vec<&Destination> = targets
            .iter()
            .copied()
            .filter(|d| d.pharmacy == PharmacyFeed::Ras)
            .collect();
        if takers.is_empty() {
            return Ok(());
        }
        for c in &pharmacy {
            let id = c
                .after
                .or(c.before)
                .and_then(|v| v.get("id"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let message = {
                let mut records = TxRecords::reading(&mut *tx);
                outbound::pharmacy_message_for(
                    c,
                    &mut records,
                    &self.mapping,
                    &control_id(),
                    &hl7_now(),
                )
            };
            let b = outbound::Built {
                about: vec![format!("{}/{id}", c.resource_type)],
                message,
            };
            queue(tx, &takers, b)?;
        }
        Ok(())
    }
}

/// Queues one built message (or its dead letter) for each destination.
fn queue(tx: &mut Tx<'_>, targets: &[&Destination], b: outbound::Built) -> Result<(), FhirError> {
    let about: Vec<Value> = b.about.iter().map(|r| json!({"reference": r})).collect();
    let ctrl = match &b.message {
        Ok(Some(m)) => Message::parse(&m.text)
            .ok()
            .and_then(|p| p.control_id().map(|c| c.into_owned()))
            .unwrap_or_else(control_id),
        _ => control_id(),
    };
    for d in targets {
        let mut rec = json!({
            "resourceType": "Communication",
            "identifier": [{"system": format!("urn:wardline:hl7v2:outbound:{}", d.name), "value": ctrl}],
            "category": [coding(DIRECTION_SYSTEM, "outbound"), coding(DESTINATION_SYSTEM, &d.name)],
            "about": about,
        });
        match &b.message {
            Ok(None) => continue,
            Ok(Some(m)) => {
                let text = with_receiver(&m.text, d);
                let (mtype, event) = m
                    .message_type
                    .split_once('^')
                    .unwrap_or((m.message_type.as_str(), ""));
                let cats = rec["category"].as_array_mut().expect("array");
                cats.push(coding(MESSAGE_TYPE_SYSTEM, mtype));
                if !event.is_empty() {
                    cats.push(coding(EVENT_SYSTEM, event.split('^').next().unwrap_or("")));
                }
                rec["status"] = json!("preparation");
                rec["payload"] = json!([attachment(text.as_bytes(), "message")]);
                if let Some(p) = &m.patient_id {
                    rec["subject"] = json!({"reference": format!("Patient/{p}")});
                }
            }
            Err(e) if e.kind == wardline_hl7_fhir::MapErrorKind::Internal => {
                return Err(FhirError::internal(e.text.clone()));
            }
            Err(e) => {
                let why = format!("no message could be built: {e}");
                tracing::warn!(resource = %b.about.join(", "), destination = d.name, "{why}");
                METRICS.dead_letters.fetch_add(1, Ordering::Relaxed);
                rec["status"] = json!("stopped");
                rec["statusReason"] = json!({"text": why});
                rec["note"] = json!([{"text": why}]);
            }
        }
        tx.save(rec)?;
    }
    Ok(())
}

/// The message with MSH-5/MSH-6 set for `d` (outbound messages use the
/// standard `|^~\&` delimiters).
fn with_receiver(text: &str, d: &Destination) -> String {
    let (msh, rest) = text.split_at(text.find('\r').unwrap_or(text.len()));
    let mut fields: Vec<String> = msh.split('|').map(str::to_owned).collect();
    while fields.len() < 6 {
        fields.push(String::new());
    }
    let seps = wardline_hl7::Separators::default();
    fields[4] = wardline_hl7::escape(&d.receiving_application, &seps).into_owned();
    fields[5] = wardline_hl7::escape(&d.receiving_facility, &seps).into_owned();
    format!("{}{rest}", fields.join("|"))
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub ack_timeout: Duration,
    pub poll: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            max_attempts: 8,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(30),
            poll: Duration::from_millis(200),
        }
    }
}

enum SendError {
    /// Could not connect: the destination is down; nobody's fault.
    Connect(String),
    /// Sent, but no usable ACK (timeout, broken connection, AR): retry.
    Retry(String),
    /// `AE`: the destination refused the content; dead letter.
    Refused(String, String),
}

/// Delivers one destination's queue; stops when `stop` is set.
pub struct Dispatcher {
    svc: Arc<FhirService>,
    dest: Destination,
    cfg: DispatchConfig,
    stop: Arc<AtomicBool>,
    conn: Option<(TcpStream, FrameDecoder)>,
    attempts: HashMap<String, (u32, Instant)>,
    dest_backoff: Option<(Duration, Instant)>,
    mapping: MappingConfig,
}

impl Dispatcher {
    pub fn new(
        svc: Arc<FhirService>,
        dest: Destination,
        cfg: DispatchConfig,
        stop: Arc<AtomicBool>,
    ) -> Dispatcher {
        Dispatcher {
            svc,
            dest,
            cfg,
            stop,
            conn: None,
            attempts: HashMap::new(),
            dest_backoff: None,
            mapping: MappingConfig::default(),
        }
    }

    /// The mapping the filler's order replies (ORL^O22 / ORR^O02 as the
    /// application acknowledgement) are read with; the default otherwise.
    pub fn with_mapping(mut self, mapping: MappingConfig) -> Dispatcher {
        self.mapping = mapping;
        self
    }

    /// When the reply to a delivered message is an order reply (ORL^O22,
    /// ORR^O02), applies it to the orders it answers for
    /// (`inbound::apply`: accepted, filler number, refused or cancelled
    /// through the order lifecycle) in one transaction whose origin is
    /// this destination (so the change is not echoed back to it). Returns
    /// a sentence for the record when it could not be applied.
    fn apply_reply(&self, reply: &str) -> Option<String> {
        let msg = Message::parse(reply).ok()?;
        let ty = msg.message_type().unwrap_or_default().into_owned();
        let ev = msg.trigger_event().unwrap_or_default().into_owned();
        // A reply that names no order (a bare refusal of the message) has
        // nothing to apply: the acknowledgement code says it all.
        if !matches!((ty.as_str(), ev.as_str()), ("ORL", "O22") | ("ORR", "O02"))
            || msg.segment("ORC").is_none()
        {
            return None;
        }
        let result = (|| -> Result<Result<String, String>, FhirError> {
            let access = outbox_access();
            let mut tx = self.svc.begin(&access)?;
            tx.set_origin(&self.dest.name);
            match wardline_hl7_fhir::inbound::apply(
                &msg,
                &mut TxRecords::inbound(&mut tx),
                &self.mapping,
            ) {
                Ok(a) => {
                    tx.commit()?;
                    Ok(Ok(a.summary))
                }
                Err(e) => Ok(Err(match &e.location {
                    Some(l) => format!("{l}: {}", e.text),
                    None => e.text,
                })),
            }
        })();
        match result {
            Ok(Ok(summary)) => {
                tracing::info!(
                    destination = self.dest.name,
                    "order reply applied: {summary}"
                );
                None
            }
            Ok(Err(why)) => Some(self.reply_failed(&ty, &ev, &why)),
            Err(e) => Some(self.reply_failed(&ty, &ev, &e.to_string())),
        }
    }

    fn reply_failed(&self, ty: &str, ev: &str, why: &str) -> String {
        let why = format!("the {ty}^{ev} reply could not be applied: {why}");
        tracing::warn!(destination = self.dest.name, "{why}");
        why
    }

    /// Starts the dispatcher on its own thread.
    pub fn spawn(self) -> std::thread::JoinHandle<()> {
        let name = format!("outbox-{}", self.dest.name);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || self.run())
            .expect("spawn outbox thread")
    }

    fn run(mut self) {
        tracing::info!(
            destination = self.dest.name,
            address = self.dest.address,
            "outbound feed started"
        );
        while !self.stop.load(Ordering::Relaxed) {
            let progressed = match self.round() {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(destination = self.dest.name, error = %e, "outbox round failed");
                    false
                }
            };
            if !progressed {
                std::thread::sleep(self.cfg.poll);
            }
        }
    }

    fn query(&self, status: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "category",
                &format!("{DESTINATION_SYSTEM}|{}", self.dest.name),
            )
            .append_pair("status", status)
            .append_pair("_count", "200")
            .finish()
    }

    /// One pass over the queue. Returns whether any message was delivered.
    pub fn round(&mut self) -> Result<bool, FhirError> {
        if let Some((_, until)) = self.dest_backoff
            && Instant::now() < until
        {
            return Ok(false);
        }
        let (pending, dead) = self.svc.transact(&outbox_access(), |tx| {
            Ok((
                tx.find("Communication", &self.query("preparation"))?,
                tx.find("Communication", &self.query("stopped"))?,
            ))
        })?;
        let mut held: HashSet<String> = dead.iter().filter_map(patient_of).collect();
        let mut progressed = false;
        for rec in pending {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let id = rec["id"].as_str().unwrap_or_default().to_owned();
            let patient = patient_of(&rec);
            if let Some(p) = &patient
                && held.contains(p)
            {
                continue;
            }
            if let Some((_, next)) = self.attempts.get(&id)
                && Instant::now() < *next
            {
                if let Some(p) = patient {
                    held.insert(p);
                }
                continue;
            }
            let Some(text) = payload_text(&rec, 0) else {
                self.dead_letter(rec, "the record has no message payload")?;
                continue;
            };
            match self.send(&text) {
                Ok(reply) => {
                    self.attempts.remove(&id);
                    self.dest_backoff = None;
                    let mut rec = rec;
                    rec["status"] = json!("completed");
                    rec["sent"] = json!(format_instant(now_ms()));
                    push_payload(&mut rec, &reply, "ACK");
                    if let Some(why) = self.apply_reply(&reply) {
                        let mut notes = rec["note"].as_array().cloned().unwrap_or_default();
                        notes.push(json!({"text": why, "time": format_instant(now_ms())}));
                        rec["note"] = Value::Array(notes);
                    }
                    self.svc
                        .transact(&outbox_access(), |tx| tx.save(rec).map(|_| ()))?;
                    METRICS.sent.fetch_add(1, Ordering::Relaxed);
                    progressed = true;
                }
                Err(SendError::Connect(why)) => {
                    let next = self.dest_backoff.map_or(self.cfg.first_backoff, |(d, _)| {
                        (d * 2).min(self.cfg.max_backoff)
                    });
                    tracing::warn!(destination = self.dest.name, error = why, retry_in = ?next, "destination unreachable");
                    self.dest_backoff = Some((next, Instant::now() + next));
                    return Ok(progressed);
                }
                Err(SendError::Retry(why)) => {
                    METRICS.send_failures.fetch_add(1, Ordering::Relaxed);
                    let n = self.attempts.get(&id).map_or(0, |a| a.0) + 1;
                    if n >= self.cfg.max_attempts {
                        self.attempts.remove(&id);
                        self.dead_letter(rec, &format!("{n} attempts failed; last: {why}"))?;
                    } else {
                        let wait =
                            (self.cfg.first_backoff * 2u32.pow(n - 1)).min(self.cfg.max_backoff);
                        tracing::warn!(
                            destination = self.dest.name,
                            record = id,
                            attempt = n,
                            error = why,
                            "delivery failed; will retry"
                        );
                        self.attempts.insert(id, (n, Instant::now() + wait));
                    }
                    if let Some(p) = patient {
                        held.insert(p);
                    }
                }
                Err(SendError::Refused(why, reply)) => {
                    self.attempts.remove(&id);
                    // An order the filler refuses (ORL with AE and ORC UA)
                    // is cancelled with its reason, though the message is
                    // a dead letter.
                    let why = match self.apply_reply(&reply) {
                        Some(more) => format!("{why}; {more}"),
                        None => why,
                    };
                    let mut rec = rec;
                    push_payload(&mut rec, &reply, "ACK");
                    self.dead_letter(rec, &format!("refused by {}: {why}", self.dest.name))?;
                    if let Some(p) = patient {
                        held.insert(p);
                    }
                }
            }
        }
        Ok(progressed)
    }

    fn dead_letter(&self, mut rec: Value, why: &str) -> Result<(), FhirError> {
        tracing::error!(
            destination = self.dest.name,
            record = rec["id"].as_str().unwrap_or(""),
            error = why,
            "outbound message dead-lettered"
        );
        METRICS.dead_letters.fetch_add(1, Ordering::Relaxed);
        rec["status"] = json!("stopped");
        rec["statusReason"] = json!({"text": why});
        let mut notes = rec["note"].as_array().cloned().unwrap_or_default();
        notes.push(json!({"text": why, "time": format_instant(now_ms())}));
        rec["note"] = Value::Array(notes);
        self.svc
            .transact(&outbox_access(), |tx| tx.save(rec).map(|_| ()))
    }

    fn send(&mut self, text: &str) -> Result<String, SendError> {
        if self.conn.is_none() {
            let s = connect(&self.dest.address, self.cfg.ack_timeout)
                .map_err(|e| SendError::Connect(format!("{}: {e}", self.dest.address)))?;
            self.conn = Some((s, FrameDecoder::new(16 << 20)));
        }
        let result = self.exchange(text);
        if matches!(result, Err(SendError::Retry(_))) {
            self.conn = None;
        }
        result
    }

    fn exchange(&mut self, text: &str) -> Result<String, SendError> {
        let (stream, decoder) = self.conn.as_mut().expect("connected");
        let sent_id = Message::parse(text)
            .ok()
            .and_then(|m| m.control_id().map(|c| c.into_owned()))
            .unwrap_or_default();
        stream
            .write_all(&encode_frame(text.as_bytes()))
            .map_err(|e| SendError::Retry(format!("write: {e}")))?;
        let deadline = Instant::now() + self.cfg.ack_timeout;
        let mut buf = [0u8; 8192];
        loop {
            while let Some(frame) = decoder.next_frame() {
                let reply = String::from_utf8_lossy(&frame).into_owned();
                let Ok(ack) = Message::parse(&reply) else {
                    return Err(SendError::Retry("the reply is not HL7".into()));
                };
                let about = ack.get("MSA-2").ok().flatten().unwrap_or_default();
                if about != sent_id {
                    // A late ACK of an earlier message: skip it.
                    continue;
                }
                let code = ack
                    .get("MSA-1")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_owned();
                let why = ack
                    .text("ERR-8")
                    .ok()
                    .flatten()
                    .or_else(|| ack.text("MSA-3").ok().flatten())
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                return match code.as_str() {
                    "AA" | "CA" => Ok(reply),
                    "AE" | "CE" => Err(SendError::Refused(format!("{code} {why}"), reply)),
                    _ => Err(SendError::Retry(format!("{code} {why}"))),
                };
            }
            if Instant::now() >= deadline {
                return Err(SendError::Retry("no ACK in time".into()));
            }
            let n = match stream.read(&mut buf) {
                Ok(n) => n,
                // The socket's read timeout is shorter than the ACK
                // timeout, so that `stop` is noticed; wait on to the deadline.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(SendError::Retry(format!("read: {e}"))),
            };
            if n == 0 {
                return Err(SendError::Retry("connection closed before the ACK".into()));
            }
            let _ = decoder.push(&buf[..n]);
        }
    }
}

fn connect(address: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = std::io::Error::other("no address");
    for a in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(s) => {
                s.set_read_timeout(Some(timeout.min(Duration::from_secs(5))))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn patient_of(rec: &Value) -> Option<String> {
    rec.get("subject")?
        .get("reference")?
        .as_str()
        .map(str::to_owned)
}

fn push_payload(rec: &mut Value, text: &str, title: &str) {
    let mut p = rec["payload"].as_array().cloned().unwrap_or_default();
    p.truncate(1);
    p.push(attachment(text.as_bytes(), title));
    rec["payload"] = Value::Array(p);
}

/// Puts a dead-lettered (or any not yet delivered) outbound record back in
/// the queue. Returns an error naming why not.
pub fn retry(svc: &FhirService, id: &str) -> Result<(), String> {
    svc.transact(&outbox_access(), |tx| {
        let Some(mut rec) = tx.get("Communication", id)? else {
            return Err(FhirError::not_found(format!(
                "no record Communication/{id}"
            )));
        };
        let outbound = rec["category"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x == &coding(DIRECTION_SYSTEM, "outbound")));
        if !outbound {
            return Err(FhirError::invalid(format!(
                "Communication/{id} is not an outbound HL7 message"
            )));
        }
        if rec["status"] == "completed" {
            return Err(FhirError::invalid(format!(
                "Communication/{id} was delivered already"
            )));
        }
        if payload_text(&rec, 0).is_none() {
            return Err(FhirError::invalid(format!(
                "Communication/{id} has no message to send (it could not be built)"
            )));
        }
        rec["status"] = json!("preparation");
        if let Some(o) = rec.as_object_mut() {
            o.remove("statusReason");
        }
        tx.save(rec)?;
        Ok(())
    })
    .map_err(|e| e.to_string())
}

/// Who the audit trail says made the outbox's own changes (delivery status).
fn outbox_access() -> wardline_core::Trusted {
    wardline_core::Trusted::new(wardline_core::Agent {
        kind: wardline_core::AgentKind::System,
        name: "hl7-outbox".into(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pharmacy_feeds_only_where_asked() {
        let d = Destination::parse("PHARM=127.0.0.1:2577;pharmacy=ras").unwrap();
        assert_eq!(d.pharmacy, PharmacyFeed::Ras);
        assert_eq!(d.orders, OrderFormat::Oml);
        let d = Destination::parse("LAB=127.0.0.1:2575;orders=orm").unwrap();
        assert_eq!(d.pharmacy, PharmacyFeed::None);
        let d = Destination::parse("P=127.0.0.1:1/JAC^RWG;orders=orm;pharmacy=RAS").unwrap();
        assert_eq!(
            (d.orders, d.pharmacy),
            (OrderFormat::Orm, PharmacyFeed::Ras)
        );
        let e = Destination::parse("P=127.0.0.1:1;pharmacy=rds").unwrap_err();
        assert!(e.contains("RDS^O13"), "{e}");
        let e = Destination::parse("P=127.0.0.1:1;pharmacy=xyz").unwrap_err();
        assert!(e.contains("pharmacy=ras"), "{e}");
        // Administrations are watched only when a destination takes them.
        let lab = OutboxHook::new(
            vec![Destination::parse("LAB=127.0.0.1:2575").unwrap()],
            MappingConfig::default(),
        );
        assert!(!lab.watches("MedicationAdministration"));
        assert!(lab.watches("Patient"));
        let pharm = OutboxHook::new(
            vec![Destination::parse("PHARM=127.0.0.1:2577;pharmacy=ras").unwrap()],
            MappingConfig::default(),
        );
        assert!(pharm.watches("MedicationAdministration"));
    }
}
