//! The audit trail: one FHIR `AuditEvent` per interaction, in the store's
//! hash chain (`wardline_store::audit`).
//!
//! Events follow the IHE Basic Audit Log Patterns: `type` `rest` with the
//! FHIR restful-interaction as `subtype` for API interactions (DICOM codes for
//! logins, security alerts, role changes and exports), `agent` = the person
//! (with their position) and the app acting for them, `source` = Wardline,
//! `entity` = the patients (role 1) and the resources touched (role 4), and
//! the query of a search. Break-glass access carries purpose of use `BTG`
//! and the reason given.
//!
//! When it is written:
//! * a write is audited **in the transaction that makes it** ([`crate::Tx`]
//!   commits the event with the data, or neither);
//! * everything else (reads, searches, refusals, failed writes, logins) goes
//!   through the [`AuditSink`], which commits events in groups and answers
//!   each caller only once its event is durable: the response carrying the
//!   data is sent after that, so no patient data leaves unaudited.
//!
//! Cost is bounded per interaction, not per resource: a search is one event
//! listing at most [`MAX_ENTITIES`] resources (and every patient touched).

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::format_instant;
use wardline_store::Store;
use wardline_store::audit::{AuditAppend, AuditRow};

use crate::access::{Agent, AgentKind};

/// Resources listed per event; more are counted in `outcomeDesc`.
pub const MAX_ENTITIES: usize = 100;

const REST: &str = "http://hl7.org/fhir/restful-interaction";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// Wardline's own event subtypes (break-glass, consent decisions …).
pub const WARDLINE_SUBTYPE: &str = "https://fhir.wardline.invalid/CodeSystem/audit-subtype";

/// One event in the making.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// `AuditEvent.type` (system, code, display).
    pub event_type: (&'static str, &'static str, &'static str),
    /// `AuditEvent.subtype` (system, code); the code is the store's `subtype`.
    pub subtype: (&'static str, String),
    /// C, R, U, D or E.
    pub action: &'static str,
    /// 0 success, 4 minor failure (refused, bad request), 8 serious failure.
    pub outcome: i32,
    pub outcome_desc: Option<String>,
    /// Resources touched, as `Type/id`, in order, at most [`MAX_ENTITIES`].
    pub resources: Vec<String>,
    /// How many more there were.
    pub more_resources: usize,
    pub patients: BTreeSet<String>,
    /// A search's query string.
    pub query: Option<String>,
    /// Break-glass: the reason given.
    pub break_glass: Option<String>,
}

impl AuditRecord {
    /// An API interaction (`read`, `search-type`, `create`, `transaction` …).
    pub fn rest(subtype: &str, action: &'static str) -> AuditRecord {
        AuditRecord {
            event_type: (
                "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "rest",
                "RESTful Operation",
            ),
            subtype: (REST, subtype.to_owned()),
            action,
            outcome: 0,
            outcome_desc: None,
            resources: Vec::new(),
            more_resources: 0,
            patients: BTreeSet::new(),
            query: None,
            break_glass: None,
        }
    }

    /// A DICOM-typed security event: `110114` user authentication
    /// (subtypes `110122` login, `110123` logout), `110113` security alert,
    /// `110136` security roles changed, `110106` export.
    pub fn security(
        event_type: (&'static str, &'static str),
        subtype: (&'static str, &str),
        action: &'static str,
    ) -> AuditRecord {
        AuditRecord {
            event_type: (DCM, event_type.0, event_type.1),
            subtype: (subtype.0, subtype.1.to_owned()),
            ..AuditRecord::rest("", action)
        }
    }

    pub fn touch(&mut self, resource_type: &str, id: &str, patient: Option<&str>) {
        if let Some(p) = patient {
            if !self.patients.contains(p) {
                self.patients.insert(p.to_owned());
            }
        } else if resource_type == "Patient" {
            self.patients.insert(id.to_owned());
        }
        if self.resources.len() < MAX_ENTITIES {
            self.resources.push(format!("{resource_type}/{id}"));
        } else {
            self.more_resources += 1;
        }
    }

    /// The outcome code of an HTTP status.
    pub fn set_status(&mut self, status: u16, desc: Option<String>) {
        self.outcome = match status {
            0..=399 => 0,
            400..=499 => 4,
            _ => 8,
        };
        if self.outcome != 0 {
            self.outcome_desc = desc;
        }
    }

    /// The `AuditEvent` and the row to append.
    pub fn to_append(&self, agent: &Agent, recorded_ms: i64) -> AuditAppend {
        let mut agents = Vec::new();
        let mut person = json!({
            "type": {"coding": [match agent.kind {
                AgentKind::User => json!({"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser", "display": "human user"}),
                AgentKind::System => json!({"system": DCM, "code": "110150", "display": "Application"}),
                AgentKind::Operator => json!({"system": DCM, "code": "110151", "display": "Application Launcher"}),
            }]},
            "altId": agent.name,
            "requestor": true,
        });
        match &agent.who {
            Some(w) => person["who"] = json!({"reference": w, "display": agent.name}),
            None => person["who"] = json!({"display": agent.name}),
        }
        if let Some(p) = &agent.position {
            person["role"] = json!([{"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/position", "code": p}], "text": p}]);
        }
        if let Some(a) = &agent.address {
            person["network"] = json!({"address": a, "type": "2"});
        }
        if let Some(reason) = &self.break_glass {
            person["purposeOfUse"] = json!([{
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG", "display": "break the glass"}],
                "text": reason,
            }]);
        }
        agents.push(person);
        if let Some(c) = &agent.client_id
            && agent.kind == AgentKind::User
        {
            agents.push(json!({
                "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"system": "https://fhir.wardline.invalid/Id/client", "value": c}, "display": c},
                "requestor": false,
            }));
        }
        let mut entities = Vec::new();
        for p in &self.patients {
            entities.push(json!({
                "what": {"reference": format!("Patient/{p}")},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"},
            }));
        }
        for r in &self.resources {
            if r.starts_with("Patient/") && self.patients.contains(&r["Patient/".len()..]) {
                continue;
            }
            entities.push(json!({
                "what": {"reference": r},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource"},
            }));
        }
        if let Some(q) = &self.query {
            entities.push(json!({
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"},
                "query": base64::engine::general_purpose::STANDARD.encode(q),
            }));
        }
        let mut desc = self.outcome_desc.clone();
        if self.more_resources > 0 {
            let more = format!("{} more resources not listed", self.more_resources);
            desc = Some(match desc {
                Some(d) => format!("{d}; {more}"),
                None => more,
            });
        }
        let mut ev = json!({
            "resourceType": "AuditEvent",
            "type": {"system": self.event_type.0, "code": self.event_type.1, "display": self.event_type.2},
            "action": self.action,
            "recorded": format_instant(recorded_ms),
            "outcome": self.outcome.to_string(),
            "agent": agents,
            "source": {
                "observer": {"display": "Wardline"},
                "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
            },
        });
        if !self.subtype.1.is_empty() {
            ev["subtype"] = json!([{"system": self.subtype.0, "code": self.subtype.1}]);
        }
        if let Some(d) = desc {
            ev["outcomeDesc"] = json!(d);
        }
        if self.break_glass.is_some() {
            ev["purposeOfEvent"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG", "display": "break the glass"}]}]);
        }
        if !entities.is_empty() {
            ev["entity"] = Value::Array(entities);
        }
        AuditAppend {
            recorded_ms,
            agent: agent.key().into_owned(),
            action: self.action.to_owned(),
            subtype: self.subtype.1.clone(),
            outcome: self.outcome,
            patients: self.patients.iter().cloned().collect(),
            json: ev.to_string(),
        }
    }
}

/// A stored row as the FHIR `AuditEvent` it is (`id` = its chain `seq`).
pub fn row_to_resource(r: &AuditRow) -> Value {
    let mut v: Value = serde_json::from_str(&r.json).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        let mut out = serde_json::Map::new();
        out.insert("resourceType".into(), json!("AuditEvent"));
        out.insert("id".into(), json!(r.seq.to_string()));
        out.insert(
            "meta".into(),
            json!({"versionId": "1", "lastUpdated": format_instant(r.recorded_ms)}),
        );
        for (k, x) in std::mem::take(o) {
            if k != "resourceType" {
                out.insert(k, x);
            }
        }
        *o = out;
    }
    v
}

type Reply = SyncSender<Result<(), String>>;
type Job = (Vec<AuditAppend>, Reply);

/// Group commit of audit rows that are not part of a write transaction.
pub struct AuditSink {
    tx: Mutex<Option<SyncSender<Job>>>,
}

/// At most this many rows per commit.
const GROUP: usize = 512;

impl AuditSink {
    pub fn start(store: Arc<dyn Store>) -> AuditSink {
        let (tx, rx) = sync_channel::<Job>(4096);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(store, rx))
            .expect("spawn the audit writer thread");
        AuditSink {
            tx: Mutex::new(Some(tx)),
        }
    }

    /// Appends rows and returns once they are durably committed.
    pub fn record(&self, rows: Vec<AuditAppend>) -> Result<(), FhirError> {
        if rows.is_empty() {
            return Ok(());
        }
        let sender = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .cloned();
        let fail = |m: String| {
            FhirError::new(
                503,
                "transient",
                format!("the access could not be audited, so it was not served: {m}"),
            )
        };
        let Some(sender) = sender else {
            return Err(fail("the audit writer has stopped".into()));
        };
        let (reply, wait) = sync_channel(1);
        sender
            .send((rows, reply))
            .map_err(|_| fail("the audit writer has stopped".into()))?;
        match wait.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(fail(e)),
            Err(_) => Err(fail("the audit writer has stopped".into())),
        }
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn writer(store: Arc<dyn Store>, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut rows = first.0;
        let mut replies = vec![first.1];
        while rows.len() < GROUP {
            match rx.try_recv() {
                Ok((r, reply)) => {
                    rows.extend(r);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let result = store.append_audit(&rows).map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, rows = rows.len(), "audit rows could not be written");
            e.to_string()
        });
        for r in replies {
            let _ = r.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_valid_r4_audit_events() {
        let mut r = AuditRecord::rest("search-type", "E");
        r.touch("Observation", "o1", Some("p1"));
        r.touch("Patient", "p1", None);
        r.query = Some("Observation?patient=p1".into());
        r.break_glass = Some("unconscious in ED".into());
        let agent = Agent {
            kind: AgentKind::User,
            name: "alice".into(),
            who: Some("Practitioner/a".into()),
            position: Some("PractitionerRole/r".into()),
            client_id: Some("ward-app".into()),
            address: Some("127.0.0.1".into()),
        };
        let row = r.to_append(&agent, 1_700_000_000_000);
        assert_eq!(row.patients, vec!["p1".to_owned()]);
        assert_eq!(row.agent, "Practitioner/a");
        let v: Value = serde_json::from_str(&row.json).unwrap();
        wardline_fhir::definitions::r4().validate(&v).unwrap();
        let stored = AuditRow {
            seq: 7,
            recorded_ms: row.recorded_ms,
            agent: row.agent.clone(),
            action: row.action.clone(),
            subtype: row.subtype.clone(),
            outcome: 0,
            patients: row.patients.clone(),
            json: row.json.clone(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let res = row_to_resource(&stored);
        assert_eq!(res["id"], "7");
        wardline_fhir::definitions::r4().validate(&res).unwrap();
        let sec = AuditRecord::security(("110114", "User Authentication"), (DCM, "110122"), "E");
        let v: Value =
            serde_json::from_str(&sec.to_append(&Agent::operator("cli"), 1).json).unwrap();
        wardline_fhir::definitions::r4().validate(&v).unwrap();
    }
}
