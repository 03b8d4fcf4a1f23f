//! Tasks: the one home of the FHIR `Task` lifecycle — raising work for
//! people, assigning it to a person, a team or a ward, claiming, completing,
//! due dates and priorities, the lists people work from, overdue reminders
//! and escalation rules.
//!
//! # The model (the shared Task convention)
//!
//! A piece of work is a `Task`: `status` (see the lifecycle), `intent`
//! `order`, `priority` (`routine` | `urgent` | `asap` | `stat`), `for` the
//! Patient, `focus` the resource it is about, `authoredOn`, `requester`,
//! `description` (a sentence a nurse understands), `code.coding[0]` the
//! kind — system [`KIND_SYSTEM`] for the kinds raised since issue 20
//! (`news2-urgent`, `mha-expiry`, …), `pmi::TASK_SYSTEM` for the older
//! worklists (results inbox, referral triage, …), which keep their codes —
//! `owner` the responsible person or team (`Practitioner/…`,
//! `PractitionerRole/…`, `CareTeam/…`, or `Location/…`: a ward's team) and
//! the due time in `restriction.period.end` (an instant). Each action adds
//! a `note` (author, time, what was done), so the task carries its own
//! history besides its versions; a completion's outcome is `output[0]`
//! (`type.text` "Outcome", `valueString`).
//!
//! * **Teams** are `CareTeam`s: `participant[].member` a `Practitioner`,
//!   `PractitionerRole`, or a reference by identifier of the user name
//!   (`wardline_auth` user names, what the demo trust uses since its staff
//!   are created at start-up); `participant[].role[0].coding[0].code`
//!   [`LEAD_ROLE`] marks the team's lead and [`SENIOR_NURSE_ROLE`] the
//!   ward's senior nurse. A ward's team carries [`TEAM_WARD_EXT`] (the
//!   ward `Location`). A user's teams ([`lists::teams_in`]) are the
//!   CareTeams they are a member of and the wards their position covers.
//! * **Reminders** ([`job`]): [`REMINDER_EXT`] on the Task records the due
//!   time a reminder was sent for (sub-extensions `due`, `at`, `to`,
//!   `outcome`), which is what makes it once per overdue period; the
//!   message itself is a `Communication` (`about` the Task, category
//!   [`KIND_SYSTEM`] `task-reminder`).
//! * **Escalations** ([`job`], rules in [`rules`]): [`ESCALATION_EXT`], one
//!   per rule that fired (`rule`, `at`, `to`), and a note.
//!
//! # The lifecycle (one home: [`allowed`])
//!
//! ```text
//! draft ─► requested ─► received ─► accepted ─► in-progress ─► completed
//!              │            │           │   ▲        │
//!              └────────────┴───────────┴─► ready / on-hold
//!   any open ──► cancelled | rejected | failed      any ──► entered-in-error
//! ```
//!
//! Open statuses are [`OPEN`]; `completed`, `cancelled`, `rejected`,
//! `failed` and `entered-in-error` end a task and never reopen (a new task
//! is raised instead). [`TaskRule`] holds this on every write (REST, Bundle,
//! workflows), and refuses an open urgent (or more) task of the shared
//! kinds without an `owner`, and the removal of the owner of any open
//! urgent task: urgent work is always someone's.
//!
//! # Who may do what ([`actions`])
//!
//! Anyone who may write Tasks raises, assigns and changes due dates and
//! priorities; **claiming** makes the caller the owner (`accepted`);
//! **completing** or **cancelling** is for the owner — the person, a
//! member of the owning team, or someone whose position covers the owning
//! ward — or anyone when the task has no owner; a background job (no
//! person) may cancel. Each action is one audited transaction
//! (`tasks-raise`, `tasks-assign`, `tasks-claim`, `tasks-complete`,
//! `tasks-cancel`, `tasks-change`, `tasks-remind`, `tasks-escalate`).

pub mod actions;
pub mod job;
pub mod lists;
pub mod rules;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

pub use actions::{
    assign, assign_in, cancel, cancel_in, change, change_in, claim, claim_in, complete,
    complete_in, start, start_in,
};

/// `Task.code` system of the kinds raised under the shared convention.
pub const KIND_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/task-kind";
/// The due time a reminder was sent for (on the Task).
pub const REMINDER_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/task-reminder";
/// An escalation rule that fired (on the Task, one per rule).
pub const ESCALATION_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/task-escalation";
/// The ward a team looks after (`valueReference` Location, on CareTeam).
pub const TEAM_WARD_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/team-ward";
/// `CareTeam.participant.role` codes (system [`TEAM_ROLE_SYSTEM`]).
pub const TEAM_ROLE_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/team-role";
pub const LEAD_ROLE: &str = "lead";
pub const SENIOR_NURSE_ROLE: &str = "senior-nurse";
/// A reminder's `Communication.category` code (system [`KIND_SYSTEM`]).
pub const REMINDER_CODE: &str = "task-reminder";

/// Open Task statuses, as a search value.
pub const OPEN: &str = "requested,received,accepted,ready,in-progress,on-hold";
/// The priorities, least urgent first.
pub const PRIORITIES: [&str; 4] = ["routine", "urgent", "asap", "stat"];

const STATUSES: [&str; 12] = [
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
];

/// Whether a status is open (work still to do).
pub fn is_open(status: &str) -> bool {
    OPEN.split(',').any(|s| s == status)
}

/// Whether a Task may go from `from` to `to` (see the module
/// documentation). Staying put is no change.
pub fn allowed(from: &str, to: &str) -> bool {
    if !STATUSES.contains(&from) || !STATUSES.contains(&to) {
        return false;
    }
    if from == to || to == "entered-in-error" {
        return true;
    }
    match from {
        "draft" => to != "completed",
        f if is_open(f) => to != "draft",
        _ => false,
    }
}

/// A priority's rank (routine 0 … stat 3); unknown is routine.
pub fn rank(priority: &str) -> usize {
    PRIORITIES.iter().position(|p| *p == priority).unwrap_or(0)
}

/// Whether a priority is urgent or more.
pub fn is_urgent(priority: &str) -> bool {
    rank(priority) >= 1
}

/// The due instant (`restriction.period.end`), in ms.
pub fn due_ms(task: &Value) -> Option<i64> {
    task["restriction"]["period"]["end"]
        .as_str()
        .and_then(wardline_fhir::datetime::parse_range)
        .map(|r| r.0)
}

/// Whether the task is open and past its due time at `now`.
pub fn overdue(task: &Value, now: OffsetDateTime) -> bool {
    is_open(task["status"].as_str().unwrap_or_default())
        && due_ms(task).is_some_and(|d| d < ms_of(now))
}

/// The task's kind code (first coding).
pub fn kind(task: &Value) -> &str {
    task["code"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

/// `now` as a FHIR instant to the second, UTC.
pub fn fhir_time(now: OffsetDateTime) -> String {
    crate::orders::request::fhir_time(now)
}

pub(crate) fn ms_of(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// What went wrong with a task action, in a sentence, with the HTTP status
/// that fits ([`TasksError::status`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TasksError {
    /// The request is wrong (400).
    Invalid(String),
    /// A field is wrong (400): the field and the message.
    Field(String, String),
    NotFound(String),
    Forbidden(String),
    /// The task's state does not allow it, or someone changed it (409).
    Conflict(String),
    Store(String),
}

impl TasksError {
    pub fn status(&self) -> u16 {
        match self {
            TasksError::Invalid(_) | TasksError::Field(..) => 400,
            TasksError::NotFound(_) => 404,
            TasksError::Forbidden(_) => 403,
            TasksError::Conflict(_) => 409,
            TasksError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            TasksError::Invalid(m)
            | TasksError::Field(_, m)
            | TasksError::NotFound(m)
            | TasksError::Forbidden(m)
            | TasksError::Conflict(m)
            | TasksError::Store(m) => m.clone(),
        }
    }

    /// The form field the error is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            TasksError::Field(f, _) => Some(f),
            _ => None,
        }
    }
}

impl std::fmt::Display for TasksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for TasksError {}

impl From<FhirError> for TasksError {
    fn from(e: FhirError) -> TasksError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "task") {
            R::Forbidden(m) => TasksError::Forbidden(m),
            R::NotFound(m) => TasksError::NotFound(m),
            R::Concurrent(m) => TasksError::Conflict(m),
            R::Invalid(m) => TasksError::Invalid(m),
            R::Store(m) => TasksError::Store(m),
        }
    }
}

pub(crate) fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, TasksError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

// ---------------------------------------------------------------- raising

/// What a new task is (see the module documentation). References are
/// FHIR `Reference` values, kept as the caller gives them.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The kind's code system: [`KIND_SYSTEM`], or `pmi::TASK_SYSTEM` for
    /// the older worklists.
    pub system: String,
    pub code: String,
    pub display: Option<String>,
    /// `for`: the patient.
    pub patient: Value,
    pub focus: Value,
    pub owner: Option<Value>,
    pub priority: String,
    pub due: Option<OffsetDateTime>,
    pub description: String,
    pub requester: Option<Value>,
    pub encounter: Option<Value>,
}

impl Spec {
    /// A task of the shared kinds ([`KIND_SYSTEM`]), routine, unowned, with
    /// no due time: set the rest with the fields.
    pub fn new(code: &str, patient: &str, focus: &str, description: &str) -> Spec {
        Spec {
            system: KIND_SYSTEM.to_owned(),
            code: code.to_owned(),
            display: None,
            patient: json!({"reference": patient}),
            focus: json!({"reference": focus}),
            owner: None,
            priority: "routine".to_owned(),
            due: None,
            description: description.to_owned(),
            requester: None,
            encounter: None,
        }
    }
}

/// What [`raise_in`] did: the task's id, and whether it is new (an open
/// task of the same kind about the same focus is not raised twice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Raised {
    pub id: String,
    pub created: bool,
}

/// The open tasks of a kind about a focus (`Type/id`).
pub fn open_in(
    tx: &mut Tx<'_>,
    focus: &str,
    system: &str,
    code: &str,
) -> Result<Vec<Value>, TasksError> {
    Ok(tx.find(
        "Task",
        &format!("focus={focus}&code={system}|{code}&status={OPEN}"),
    )?)
}

/// Raises a task (see [`Spec`]) in `tx`, unless one of the same kind about
/// the same focus is open: then that one's id, `created` false.
pub fn raise_in(tx: &mut Tx<'_>, spec: &Spec, now: OffsetDateTime) -> Result<Raised, TasksError> {
    if !PRIORITIES.contains(&spec.priority.as_str()) {
        return Err(TasksError::Field(
            "priority".into(),
            "Choose a priority: routine, urgent, asap or stat.".into(),
        ));
    }
    if spec.description.trim().is_empty() {
        return Err(TasksError::Field(
            "description".into(),
            "Enter what is to be done.".into(),
        ));
    }
    if spec.system == KIND_SYSTEM
        && is_urgent(&spec.priority)
        && !spec.owner.as_ref().is_some_and(Value::is_object)
    {
        return Err(TasksError::Field(
            "owner".into(),
            "An urgent task must have an owner: choose a person, a team or a ward.".into(),
        ));
    }
    let focus = spec.focus["reference"].as_str().unwrap_or_default();
    if let Some(t) = open_in(tx, focus, &spec.system, &spec.code)?.first() {
        return Ok(Raised {
            id: t["id"].as_str().unwrap_or_default().to_owned(),
            created: false,
        });
    }
    let now_s = fhir_time(now);
    let mut coding = json!({"system": spec.system, "code": spec.code});
    if let Some(d) = &spec.display {
        coding["display"] = json!(d);
    }
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": spec.priority,
        "code": {"coding": [coding]},
        "focus": spec.focus,
        "for": spec.patient,
        "authoredOn": now_s,
        "lastModified": now_s,
        "description": spec.description.trim(),
    });
    if let Some(e) = spec.encounter.as_ref().filter(|e| e.is_object()) {
        task["encounter"] = e.clone();
    }
    if let Some(o) = spec.owner.as_ref().filter(|o| o.is_object()) {
        task["owner"] = o.clone();
    }
    if let Some(r) = spec.requester.as_ref().filter(|r| r.is_object()) {
        task["requester"] = r.clone();
    }
    if let Some(d) = spec.due {
        task["restriction"] = json!({"period": {"end": fhir_time(d)}});
    }
    let saved = tx.save(task)?;
    Ok(Raised {
        id: saved.id,
        created: true,
    })
}

/// [`raise_in`] as one audited transaction (`tasks-raise`) of the caller.
pub fn raise(
    svc: &FhirService,
    access: &dyn Access,
    spec: &Spec,
    now: OffsetDateTime,
) -> Result<Raised, TasksError> {
    let mut tx = begin(svc, access, "tasks-raise", "C")?;
    let r = raise_in(&mut tx, spec, now)?;
    tx.commit()?;
    Ok(r)
}

/// Ends the open tasks of a kind about a focus (`Type/id`) as `status`
/// (`completed` or `cancelled`, with `reason` as `statusReason`); returns
/// their ids. What a workflow does when the work was done another way.
pub fn close_in(
    tx: &mut Tx<'_>,
    focus: &str,
    system: &str,
    code: &str,
    status: &str,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<String>, TasksError> {
    let mut out = Vec::new();
    for mut t in open_in(tx, focus, system, code)? {
        t["status"] = json!(status);
        if let Some(r) = reason {
            t["statusReason"] = json!({"text": r});
        }
        t["lastModified"] = json!(fhir_time(now));
        out.push(tx.save(t)?.id);
    }
    Ok(out)
}

// ---------------------------------------------------------------- the rule

/// The lifecycle and ownership on every write (see the module
/// documentation).
pub struct TaskRule;

fn owner_required(t: &Value) -> bool {
    is_open(t["status"].as_str().unwrap_or_default())
        && is_urgent(t["priority"].as_str().unwrap_or("routine"))
        && !t["owner"].is_object()
}

impl wardline_core::WriteRule for TaskRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Task"
    }

    fn check(
        &self,
        _tx: &mut wardline_core::RuleTx<'_, '_>,
        w: &wardline_core::ProposedWrite<'_>,
    ) -> Result<(), FhirError> {
        let to = w.resource["status"].as_str().unwrap_or_default();
        if let Some(cur) = w.current {
            let from = cur["status"].as_str().unwrap_or_default();
            if !allowed(from, to) {
                return Err(FhirError::new(
                    422,
                    "business-rule",
                    format!("A task that is {from} cannot become {to}: raise a new task instead."),
                )
                .at("Task.status"));
            }
            if cur["owner"].is_object() && owner_required(w.resource) {
                return Err(FhirError::new(
                    422,
                    "business-rule",
                    "An urgent task cannot be left without an owner: assign it to someone else instead.",
                )
                .at("Task.owner"));
            }
        }
        let shared = w.resource["code"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["system"] == KIND_SYSTEM);
        if shared && owner_required(w.resource) {
            return Err(FhirError::new(
                422,
                "business-rule",
                "An urgent task must have an owner (a person, a team or a ward).",
            )
            .at("Task.owner"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_never_reopens() {
        assert!(allowed("requested", "accepted"));
        assert!(allowed("accepted", "in-progress"));
        assert!(allowed("in-progress", "completed"));
        assert!(allowed("requested", "cancelled"));
        assert!(allowed("completed", "entered-in-error"));
        assert!(!allowed("completed", "requested"));
        assert!(!allowed("cancelled", "in-progress"));
        assert!(!allowed("requested", "draft"));
        assert!(!allowed("requested", "bogus"));
        assert!(allowed("completed", "completed"));
    }

    #[test]
    fn urgency_and_overdue_are_read_from_the_task() {
        assert!(is_urgent("asap") && !is_urgent("routine"));
        assert!(rank("stat") > rank("urgent"));
        let t = json!({"status": "requested", "restriction": {"period": {"end": "2026-12-01T10:00:00Z"}}});
        assert!(overdue(
            &t,
            time::macros::datetime!(2026-12-01 10:00:01 UTC)
        ));
        assert!(!overdue(&t, time::macros::datetime!(2026-12-01 09:59 UTC)));
        let done = json!({"status": "completed", "restriction": {"period": {"end": "2026-12-01T10:00:00Z"}}});
        assert!(!overdue(
            &done,
            time::macros::datetime!(2026-12-02 00:00 UTC)
        ));
    }
}
