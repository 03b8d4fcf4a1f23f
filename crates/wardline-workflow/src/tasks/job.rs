//! The tasks job ([`run`]; `wardline serve` every minute and `wardline
//! tasks run --now …` call it with the clock injected): overdue reminders
//! and escalation rules.
//!
//! Both act on tasks of the shared kinds ([`KIND_SYSTEM`]); the older
//! worklists (results, referrals, transfers: `pmi::TASK_SYSTEM`) keep
//! their own escalations and chases, and a stored rule reaches one of
//! their kinds only by naming it.
//!
//! **Reminders.** Each open task past its due time whose owner is a person
//! (a `Practitioner`, or a `PractitionerRole`'s practitioner) is reminded
//! once per overdue period: [`REMINDER_EXT`] records the due time and the
//! person it was sent for. The send is claimed first (one transaction
//! under the task's lock: the extension with outcome `sending`, and the
//! message as a `Communication` in `preparation`), then the email goes
//! through the transfers' SMTP sender ([`crate::transfers::email::Mailer`],
//! outside any transaction), then the outcome is recorded (`sent` and the
//! Communication `completed`, or `failed` and `stopped` with the reason).
//! A failed send is tried again at the next run; a claim whose runner died
//! mid-send is not (a reminder is never sent twice). A new due time or a
//! new owner opens a new period. An owner with no email address (or a
//! team, or a ward) gets no email: the outcome `no-email` is recorded and
//! the task is shown overdue in the lists and counted in the header.
//! Emails name no patient (the address may be wrong): the kind, priority,
//! due time and the task's address in Wardline.
//!
//! **Escalations.** Each rule of the table ([`super::rules`]) that applies
//! to an open task and whose time has come fires once per task (the
//! task's [`ESCALATION_EXT`] with the rule's name): the priority raised,
//! the person to tell resolved (a team's lead, a ward's senior nurse) and
//! named on the task, or made its owner, a note added; then the person is
//! emailed as a reminder is. Each escalation is its own audited
//! transaction (`tasks-escalate`), each reminder's claim and outcome
//! (`tasks-remind`).

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::actions::push_note;
use super::lists::{in_role, ward_teams_in};
use super::rules::{EscalationRule, Trigger};
use super::{
    ESCALATION_EXT, KIND_SYSTEM, LEAD_ROLE, OPEN, REMINDER_CODE, REMINDER_EXT, TEAM_WARD_EXT,
    TasksError, begin, due_ms, fhir_time, kind, ms_of, rank,
};

/// Where reminders go: the transfers' SMTP sender in service.
pub trait Outbox {
    /// Sends one message to `to`; `Err` says why it was not accepted.
    fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String>;
}

impl Outbox for crate::transfers::email::Mailer {
    fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        crate::transfers::email::Mailer::send(self, to, subject, body, Vec::new())
    }
}

/// What one run did (Task ids).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Reminders emailed.
    pub reminded: Vec<String>,
    /// Overdue, nobody to email.
    pub unreachable: Vec<String>,
    /// Emails not accepted (tried again next run).
    pub failed: Vec<String>,
    /// `(task, rule)` escalations.
    pub escalated: Vec<(String, String)>,
}

fn ext_parts(t: &Value, url: &str) -> Vec<Vec<(String, Value)>> {
    t["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == url)
        .map(|e| {
            e["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let k = s["url"].as_str()?.to_owned();
                    let v = s
                        .as_object()?
                        .iter()
                        .find(|(k, _)| k.starts_with("value"))?
                        .1
                        .clone();
                    Some((k, v))
                })
                .collect()
        })
        .collect()
}

fn part<'a>(p: &'a [(String, Value)], k: &str) -> Option<&'a Value> {
    p.iter().find(|(x, _)| x == k).map(|(_, v)| v)
}

/// The person a reference names (`Practitioner/…`), through a
/// PractitionerRole or a user-name identifier.
fn person_in(tx: &mut Tx<'_>, r: &Value) -> Result<Option<Value>, TasksError> {
    if let Some(id) = crate::fhir::reference_id(r, "Practitioner") {
        return Ok(tx.get("Practitioner", id)?);
    }
    if let Some(id) = crate::fhir::reference_id(r, "PractitionerRole") {
        let Some(pr) = tx.get("PractitionerRole", id)? else {
            return Ok(None);
        };
        return match crate::fhir::reference_id(&pr["practitioner"], "Practitioner") {
            Some(p) => Ok(tx.get("Practitioner", p)?),
            None => Ok(None),
        };
    }
    if let (Some(sys), Some(v)) = (
        r["identifier"]["system"].as_str(),
        r["identifier"]["value"].as_str(),
    ) {
        return Ok(tx
            .find("Practitioner", &format!("identifier={sys}|{v}"))?
            .into_iter()
            .next());
    }
    Ok(None)
}

fn email_of(p: &Value) -> Option<String> {
    p["telecom"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["system"] == "email" && t["value"].is_string())
        .and_then(|t| t["value"].as_str())
        .map(str::to_owned)
}

struct Claimed {
    task: String,
    communication: String,
    to: String,
    subject: String,
    body: String,
}

fn message(t: &Value, why: &str) -> (String, String) {
    let label = t["code"]["coding"][0]["display"]
        .as_str()
        .unwrap_or(kind(t))
        .to_owned();
    let due = t["restriction"]["period"]["end"]
        .as_str()
        .unwrap_or("(no due time)");
    let id = t["id"].as_str().unwrap_or_default();
    (
        format!("Wardline: {why} ({label})"),
        format!(
            "{why}: {label}, priority {}, due {due}.\n\nOpen it in Wardline: /ui/tasks/{id}\nThis email names no patient; if it is not for you, tell the sender and delete it.\n",
            t["priority"].as_str().unwrap_or("routine")
        ),
    )
}

/// Claims the email to `person` about task `t` (see the module
/// documentation); `None` when they have no address.
fn claim_mail(
    tx: &mut Tx<'_>,
    t: &Value,
    person: &Value,
    why: &str,
) -> Result<Option<Claimed>, TasksError> {
    let Some(to) = email_of(person) else {
        return Ok(None);
    };
    let (subject, body) = message(t, why);
    let pid = person["id"].as_str().unwrap_or_default();
    let task = t["id"].as_str().unwrap_or_default().to_owned();
    let comm = tx.save(json!({
        "resourceType": "Communication",
        "status": "preparation",
        "category": [{"coding": [{"system": KIND_SYSTEM, "code": REMINDER_CODE}]}],
        "about": [{"reference": format!("Task/{task}")}],
        "recipient": [{"reference": format!("Practitioner/{pid}")}],
        "payload": [{"contentString": body}],
        "topic": {"text": subject},
    }))?;
    Ok(Some(Claimed {
        task,
        communication: comm.id,
        to,
        subject,
        body,
    }))
}

fn set_reminder(t: &mut Value, due: &str, to: &str, outcome: &str, now: OffsetDateTime) {
    let mut exts: Vec<Value> = t["extension"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["url"] != REMINDER_EXT)
        .collect();
    exts.push(json!({"url": REMINDER_EXT, "extension": [
        {"url": "due", "valueDateTime": due},
        {"url": "to", "valueString": to},
        {"url": "at", "valueDateTime": fhir_time(now)},
        {"url": "outcome", "valueCode": outcome},
    ]}));
    t["extension"] = json!(exts);
}

/// Whether a reminder for this due time and owner was sent, is being sent,
/// or cannot be (a failed one is tried again).
fn reminded(t: &Value, due: &str, to: &str) -> bool {
    ext_parts(t, REMINDER_EXT).iter().any(|p| {
        part(p, "due").and_then(Value::as_str) == Some(due)
            && part(p, "to").and_then(Value::as_str) == Some(to)
            && part(p, "outcome").and_then(Value::as_str) != Some("failed")
    })
}

fn owner_key(t: &Value) -> String {
    t["owner"]["reference"]
        .as_str()
        .unwrap_or("(none)")
        .to_owned()
}

/// Sends the claimed email and records its outcome on the task under
/// `outcome_to` (the reminder's `to`, or `None` for an escalation).
fn deliver(
    svc: &FhirService,
    access: &dyn Access,
    outbox: Option<&dyn Outbox>,
    c: Claimed,
    reminder: Option<(&str, &str)>,
    now: OffsetDateTime,
) -> Result<bool, TasksError> {
    let sent = match outbox {
        Some(o) => o.send(&c.to, &c.subject, &c.body),
        None => Err("no SMTP server is configured".to_owned()),
    };
    let mut tx = begin(svc, access, "tasks-remind", "U")?;
    tx.lock(&[format!("Task/{}", c.task)])?;
    if let Some(mut comm) = tx.get("Communication", &c.communication)? {
        match &sent {
            Ok(()) => {
                comm["status"] = json!("completed");
                comm["sent"] = json!(fhir_time(now));
            }
            Err(e) => {
                comm["status"] = json!("stopped");
                comm["statusReason"] = json!({"text": e});
            }
        }
        tx.save(comm)?;
    }
    if let Some((due, to)) = reminder
        && let Some(mut t) = tx.get("Task", &c.task)?
    {
        let outcome = if sent.is_ok() { "sent" } else { "failed" };
        set_reminder(&mut t, due, to, outcome, now);
        tx.save(t)?;
    }
    tx.commit()?;
    Ok(sent.is_ok())
}

/// Reminds the owner of one overdue task (see the module documentation).
fn remind_one(
    svc: &FhirService,
    access: &dyn Access,
    outbox: Option<&dyn Outbox>,
    id: &str,
    now: OffsetDateTime,
    report: &mut RunReport,
) -> Result<(), TasksError> {
    let mut tx = begin(svc, access, "tasks-remind", "U")?;
    tx.lock(&[format!("Task/{id}")])?;
    let Some(mut t) = tx.get("Task", id)? else {
        return Ok(());
    };
    if !super::overdue(&t, now) {
        return Ok(());
    }
    let due = t["restriction"]["period"]["end"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let to = owner_key(&t);
    if reminded(&t, &due, &to) {
        return Ok(());
    }
    let person = person_in(&mut tx, &t["owner"])?;
    let claimed = match &person {
        Some(p) => claim_mail(&mut tx, &t, p, "A task of yours is overdue")?,
        None => None,
    };
    let outcome = if claimed.is_some() {
        "sending"
    } else {
        "no-email"
    };
    set_reminder(&mut t, &due, &to, outcome, now);
    tx.save(t)?;
    tx.commit()?;
    match claimed {
        None => report.unreachable.push(id.to_owned()),
        Some(c) => {
            if deliver(svc, access, outbox, c, Some((&due, &to)), now)? {
                report.reminded.push(id.to_owned());
            } else {
                report.failed.push(id.to_owned());
            }
        }
    }
    Ok(())
}

/// Whether a task is of the shared kinds ([`KIND_SYSTEM`]): the older
/// worklists (`pmi::TASK_SYSTEM`) keep their own escalations and chases.
fn shared(t: &Value) -> bool {
    t["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["system"] == KIND_SYSTEM)
}

fn fires(rule: &EscalationRule, t: &Value, now: OffsetDateTime) -> bool {
    let status = t["status"].as_str().unwrap_or_default();
    if (rule.kind.is_none() && !shared(t))
        || rule.kind.as_deref().is_some_and(|k| k != kind(t))
        || rule
            .min_priority
            .as_deref()
            .is_some_and(|p| rank(t["priority"].as_str().unwrap_or("routine")) < rank(p))
        || ext_parts(t, ESCALATION_EXT)
            .iter()
            .any(|p| part(p, "rule").and_then(Value::as_str) == Some(rule.name.as_str()))
    {
        return false;
    }
    let from = match rule.trigger {
        Trigger::NotAccepted => {
            if !["requested", "received", "ready"].contains(&status) {
                return false;
            }
            t["authoredOn"]
                .as_str()
                .and_then(wardline_fhir::datetime::parse_range)
                .map(|r| r.0)
        }
        Trigger::Overdue => due_ms(t),
    };
    from.is_some_and(|f| f + rule.after.whole_milliseconds() as i64 <= ms_of(now))
}

/// The ward a task belongs to: its owning ward, or the ward of its owning
/// team.
fn ward_of(tx: &mut Tx<'_>, t: &Value) -> Result<Option<String>, TasksError> {
    if let Some(w) = crate::fhir::reference_id(&t["owner"], "Location") {
        return Ok(Some(w.to_owned()));
    }
    if let Some(c) = crate::fhir::reference_id(&t["owner"], "CareTeam")
        && let Some(team) = tx.get("CareTeam", c)?
    {
        return Ok(team["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"] == TEAM_WARD_EXT)
            .and_then(|e| crate::fhir::reference_id(&e["valueReference"], "Location"))
            .map(str::to_owned));
    }
    Ok(None)
}

/// Whom a rule tells about task `t` (a participant reference).
fn target_in(
    tx: &mut Tx<'_>,
    t: &Value,
    rule: &EscalationRule,
) -> Result<Option<Value>, TasksError> {
    if rule.target == LEAD_ROLE
        && let Some(c) = crate::fhir::reference_id(&t["owner"], "CareTeam")
        && let Some(team) = tx.get("CareTeam", c)?
        && let Some(lead) = in_role(&team, LEAD_ROLE)
    {
        return Ok(Some(lead));
    }
    let Some(ward) = ward_of(tx, t)? else {
        return Ok(None);
    };
    Ok(ward_teams_in(tx, &ward)?
        .iter()
        .find_map(|team| in_role(team, &rule.target)))
}

/// Fires one rule on one task (see the module documentation).
fn escalate_one(
    svc: &FhirService,
    access: &dyn Access,
    outbox: Option<&dyn Outbox>,
    id: &str,
    rule: &EscalationRule,
    now: OffsetDateTime,
    report: &mut RunReport,
) -> Result<(), TasksError> {
    let mut tx = begin(svc, access, "tasks-escalate", "U")?;
    tx.lock(&[format!("Task/{id}")])?;
    let Some(mut t) = tx.get("Task", id)? else {
        return Ok(());
    };
    if !super::is_open(t["status"].as_str().unwrap_or_default()) || !fires(rule, &t, now) {
        return Ok(());
    }
    let target = target_in(&mut tx, &t, rule)?;
    let person = match &target {
        Some(r) => person_in(&mut tx, r)?,
        None => None,
    };
    let target_ref = person.as_ref().and_then(|p| {
        Some(
            json!({"reference": format!("Practitioner/{}", p["id"].as_str()?),
            "display": super::lists::name_of(p).unwrap_or_default()}),
        )
    });
    let mut said = vec![format!("Escalated ({})", rule.name)];
    if let Some(p) = &rule.raise_to
        && rank(p) > rank(t["priority"].as_str().unwrap_or("routine"))
    {
        said.push(format!(
            "priority {} → {p}",
            t["priority"].as_str().unwrap_or("routine")
        ));
        t["priority"] = json!(p);
    }
    match &target_ref {
        Some(r) => {
            let name = r["display"].as_str().unwrap_or_default().to_owned();
            if rule.reassign {
                said.push(format!("reassigned to {name}"));
                t["owner"] = r.clone();
                t["status"] = json!("requested");
            } else {
                said.push(format!("{name} told"));
            }
        }
        None => said.push(format!("no {} on record to tell", rule.target)),
    }
    let mut exts = t["extension"].as_array().cloned().unwrap_or_default();
    let mut e = json!({"url": ESCALATION_EXT, "extension": [
        {"url": "rule", "valueString": rule.name},
        {"url": "at", "valueDateTime": fhir_time(now)},
    ]});
    if let (Some(r), Some(a)) = (&target_ref, e["extension"].as_array_mut()) {
        a.push(json!({"url": "to", "valueReference": r}));
    }
    exts.push(e);
    t["extension"] = json!(exts);
    t["lastModified"] = json!(fhir_time(now));
    push_note(&mut t, &format!("{}.", said.join("; ")), None, now);
    let saved = tx.save(t.clone())?;
    t["id"] = json!(saved.id);
    let claimed = match &person {
        Some(p) => claim_mail(&mut tx, &t, p, "A task has been escalated to you")?,
        None => None,
    };
    tx.commit()?;
    report.escalated.push((id.to_owned(), rule.name.clone()));
    if let Some(c) = claimed {
        deliver(svc, access, outbox, c, None, now)?;
    }
    Ok(())
}

/// One run at `now`: escalations first (a raised priority is in the
/// reminder), then reminders. A task that fails is reported in the log
/// and the run goes on to the next.
pub fn run(
    svc: &FhirService,
    access: &dyn Access,
    outbox: Option<&dyn Outbox>,
    now: OffsetDateTime,
) -> Result<RunReport, TasksError> {
    let (open, rules) = {
        let mut tx = svc.begin(access)?;
        let rules = super::rules::load_in(&mut tx)?;
        let open = crate::fhir::search_all(&tx, "Task", &[("status", OPEN.to_owned())])?;
        (open, rules)
    };
    let mut report = RunReport::default();
    for t in &open {
        let id = t["id"].as_str().unwrap_or_default();
        for rule in rules.iter().filter(|r| fires(r, t, now)) {
            if let Err(e) = escalate_one(svc, access, outbox, id, rule, now, &mut report) {
                tracing::warn!(task = id, error = %e, "task escalation failed");
            }
        }
    }
    for t in open.iter().filter(|t| shared(t) && super::overdue(t, now)) {
        let id = t["id"].as_str().unwrap_or_default();
        if let Err(e) = remind_one(svc, access, outbox, id, now, &mut report) {
            tracing::warn!(task = id, error = %e, "task reminder failed");
        }
    }
    Ok(report)
}
