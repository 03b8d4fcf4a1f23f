//! What people do to a task: assign or reassign it, claim it, complete it
//! with an outcome, cancel it, change its due time or priority. Each is an
//! `_in` function over a `Tx` (the rule) and a function over the service
//! and the caller's `Access` that runs one audited transaction (see the
//! module documentation of [`super`] for who may do what).

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::lists::{Caller, covers_in};
use super::{PRIORITIES, TasksError, begin, fhir_time, is_open};

/// Locks and reads an open task.
pub(crate) fn open_task(tx: &mut Tx<'_>, id: &str) -> Result<Value, TasksError> {
    tx.lock(&[format!("Task/{id}")])?;
    let t = tx
        .get("Task", id)?
        .ok_or_else(|| TasksError::NotFound(format!("There is no task with id {id}.")))?;
    let status = t["status"].as_str().unwrap_or_default();
    if !is_open(status) {
        return Err(TasksError::Conflict(format!(
            "This task is {status}: there is nothing more to do on it."
        )));
    }
    Ok(t)
}

/// Adds a note (the task's own history) by `by` at `now`.
pub(crate) fn push_note(t: &mut Value, text: &str, by: Option<&str>, now: OffsetDateTime) {
    let mut n = json!({"time": fhir_time(now), "text": text});
    if let Some(b) = by {
        n["authorReference"] = json!({"reference": b});
    }
    match t["note"].as_array_mut() {
        Some(a) => a.push(n),
        None => t["note"] = json!([n]),
    }
}

const OWNER_TYPES: [&str; 4] = ["Practitioner", "PractitionerRole", "CareTeam", "Location"];

/// Checks an owner reference: one of the owner types, and on record.
fn owner_in(tx: &mut Tx<'_>, owner: &str) -> Result<Value, TasksError> {
    let bad = || {
        TasksError::Field(
            "owner".into(),
            "Choose who the task is for: a person, a team or a ward.".into(),
        )
    };
    let (t, id) = owner.trim().split_once('/').ok_or_else(bad)?;
    if !OWNER_TYPES.contains(&t) || id.is_empty() || id.contains('/') {
        return Err(bad());
    }
    let found = tx.get(t, id)?.ok_or_else(|| {
        TasksError::Field(
            "owner".into(),
            format!("There is no {t} {id} to give the task to."),
        )
    })?;
    let display = crate::tasks::lists::name_of(&found);
    let mut r = json!({"reference": format!("{t}/{id}")});
    if let Some(d) = display {
        r["display"] = json!(d);
    }
    Ok(r)
}

/// Gives the task to `owner` (`Practitioner/…`, `PractitionerRole/…`,
/// `CareTeam/…`, `Location/…`); a claimed task goes back to `requested`
/// for its new owner to accept.
pub fn assign_in(
    tx: &mut Tx<'_>,
    id: &str,
    owner: &str,
    by: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let mut t = open_task(tx, id)?;
    let r = owner_in(tx, owner)?;
    if t["owner"]["reference"] == r["reference"] {
        return Ok(());
    }
    let verb = if t["owner"].is_object() {
        "Reassigned"
    } else {
        "Assigned"
    };
    let label = r["display"]
        .as_str()
        .or(r["reference"].as_str())
        .unwrap_or_default()
        .to_owned();
    t["owner"] = r;
    if t["status"] == "accepted" || t["status"] == "in-progress" {
        t["status"] = json!("requested");
    }
    t["lastModified"] = json!(fhir_time(now));
    push_note(&mut t, &format!("{verb} to {label}."), by, now);
    tx.save(t)?;
    Ok(())
}

/// [`assign_in`] as one audited transaction (`tasks-assign`).
pub fn assign(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    owner: &str,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "tasks-assign", "U")?;
    assign_in(&mut tx, id, owner, who.as_deref(), now)?;
    tx.commit()?;
    Ok(())
}

/// The caller (`Practitioner/…`) takes the task: owner, `accepted`.
pub fn claim_in(
    tx: &mut Tx<'_>,
    id: &str,
    who: &str,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let mut t = open_task(tx, id)?;
    if !who.starts_with("Practitioner/") {
        return Err(TasksError::Forbidden(
            "Only a member of staff signed in as themselves can claim a task.".into(),
        ));
    }
    let r = owner_in(tx, who)?;
    t["owner"] = r;
    if t["status"] != "in-progress" {
        t["status"] = json!("accepted");
    }
    t["lastModified"] = json!(fhir_time(now));
    push_note(&mut t, "Claimed.", Some(who), now);
    tx.save(t)?;
    Ok(())
}

/// [`claim_in`] for the person signed in (`tasks-claim`).
pub fn claim(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let who = access
        .agent()
        .who
        .clone()
        .ok_or_else(|| TasksError::Forbidden("Sign in as yourself to claim a task.".into()))?;
    let mut tx = begin(svc, access, "tasks-claim", "U")?;
    claim_in(&mut tx, id, &who, now)?;
    tx.commit()?;
    Ok(())
}

/// Refuses a caller who does not own the task (see [`super`]).
fn may_close(tx: &mut Tx<'_>, t: &Value, caller: &Caller, what: &str) -> Result<(), TasksError> {
    let Some(owner) = t["owner"]["reference"].as_str() else {
        return Ok(());
    };
    if caller.who.is_none() && caller.position.is_none() {
        // A background job acting for the trust.
        return Ok(());
    }
    if covers_in(tx, caller, owner)? {
        return Ok(());
    }
    let label = match t["owner"]["display"].as_str() {
        Some(d) => d.to_owned(),
        None => match owner.split_once('/') {
            Some((ty, id)) => tx
                .get(ty, id)
                .ok()
                .flatten()
                .and_then(|r| super::lists::name_of(&r))
                .unwrap_or_else(|| owner.to_owned()),
            None => owner.to_owned(),
        },
    };
    Err(TasksError::Forbidden(format!(
        "This task belongs to {label}: only they can {what} it. Claim it first, or ask them."
    )))
}

/// Completes the task with its outcome (the caller must own it).
pub fn complete_in(
    tx: &mut Tx<'_>,
    id: &str,
    outcome: &str,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let outcome = outcome.trim();
    if outcome.is_empty() {
        return Err(TasksError::Field(
            "outcome".into(),
            "Enter the outcome: what was done.".into(),
        ));
    }
    let mut t = open_task(tx, id)?;
    may_close(tx, &t, caller, "complete")?;
    t["status"] = json!("completed");
    t["output"] = json!([{"type": {"text": "Outcome"}, "valueString": outcome}]);
    t["lastModified"] = json!(fhir_time(now));
    if let Some(w) = &caller.who {
        t["executionPeriod"]["end"] = json!(fhir_time(now));
        if !t["owner"].is_object() {
            t["owner"] = json!({"reference": w});
        }
    }
    push_note(
        &mut t,
        &format!("Completed: {outcome}"),
        caller.who.as_deref(),
        now,
    );
    tx.save(t)?;
    Ok(())
}

/// [`complete_in`] for the person signed in (`tasks-complete`).
pub fn complete(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    outcome: &str,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let caller = Caller::of(access);
    let mut tx = begin(svc, access, "tasks-complete", "U")?;
    complete_in(&mut tx, id, outcome, &caller, now)?;
    tx.commit()?;
    Ok(())
}

/// The caller starts work on the task (an escalation's "acknowledge"):
/// `in-progress` from now, owned by the caller when nobody owned it. The
/// owner rule is [`complete_in`]'s: a member of the owning ward or team,
/// or the owner.
pub fn start_in(
    tx: &mut Tx<'_>,
    id: &str,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let mut t = open_task(tx, id)?;
    if t["status"] == "in-progress" {
        return Err(TasksError::Conflict(
            "This task is already in progress (acknowledged).".into(),
        ));
    }
    may_close(tx, &t, caller, "acknowledge")?;
    t["status"] = json!("in-progress");
    t["executionPeriod"] = json!({"start": fhir_time(now)});
    t["lastModified"] = json!(fhir_time(now));
    if let Some(w) = &caller.who
        && !t["owner"].is_object()
    {
        t["owner"] = json!({"reference": w});
    }
    push_note(&mut t, "Acknowledged.", caller.who.as_deref(), now);
    tx.save(t)?;
    Ok(())
}

/// [`start_in`] for the person signed in (`tasks-start`).
pub fn start(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let caller = Caller::of(access);
    let mut tx = begin(svc, access, "tasks-start", "U")?;
    start_in(&mut tx, id, &caller, now)?;
    tx.commit()?;
    Ok(())
}

/// Cancels the task with a reason (the caller must own it).
pub fn cancel_in(
    tx: &mut Tx<'_>,
    id: &str,
    reason: &str,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(TasksError::Field(
            "reason".into(),
            "Enter why the task is no longer needed.".into(),
        ));
    }
    let mut t = open_task(tx, id)?;
    may_close(tx, &t, caller, "cancel")?;
    t["status"] = json!("cancelled");
    t["statusReason"] = json!({"text": reason});
    t["lastModified"] = json!(fhir_time(now));
    push_note(
        &mut t,
        &format!("Cancelled: {reason}"),
        caller.who.as_deref(),
        now,
    );
    tx.save(t)?;
    Ok(())
}

/// [`cancel_in`] for the caller (`tasks-cancel`).
pub fn cancel(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let caller = Caller::of(access);
    let mut tx = begin(svc, access, "tasks-cancel", "U")?;
    cancel_in(&mut tx, id, reason, &caller, now)?;
    tx.commit()?;
    Ok(())
}

/// A change of due time and/or priority.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub due: Option<OffsetDateTime>,
    pub priority: Option<String>,
}

/// Changes the task's due time and/or priority. A new due time opens a new
/// overdue period (a reminder is sent again if that one passes too).
pub fn change_in(
    tx: &mut Tx<'_>,
    id: &str,
    change: &Change,
    by: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let mut t = open_task(tx, id)?;
    let mut said = Vec::new();
    if let Some(p) = &change.priority {
        if !PRIORITIES.contains(&p.as_str()) {
            return Err(TasksError::Field(
                "priority".into(),
                "Choose a priority: routine, urgent, asap or stat.".into(),
            ));
        }
        if t["priority"] != p.as_str() {
            said.push(format!(
                "Priority {} → {p}.",
                t["priority"].as_str().unwrap_or("routine")
            ));
            t["priority"] = json!(p);
        }
    }
    if let Some(d) = change.due {
        let s = fhir_time(d);
        if t["restriction"]["period"]["end"] != s.as_str() {
            said.push(format!("Due {s}."));
            t["restriction"]["period"]["end"] = json!(s);
        }
    }
    if said.is_empty() {
        return Ok(());
    }
    t["lastModified"] = json!(fhir_time(now));
    push_note(&mut t, &said.join(" "), by, now);
    tx.save(t)?;
    Ok(())
}

/// [`change_in`] as one audited transaction (`tasks-change`).
pub fn change(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    change: &Change,
    now: OffsetDateTime,
) -> Result<(), TasksError> {
    let who = access.agent().who.clone();
    let mut tx = begin(svc, access, "tasks-change", "U")?;
    change_in(&mut tx, id, change, who.as_deref(), now)?;
    tx.commit()?;
    Ok(())
}
