//! The escalation rule table, kept as FHIR: the `PlanDefinition`
//! [`RULES_ID`] (status `active`), one `action` per rule; the trust edits it
//! over REST (`PUT PlanDefinition/task-escalation`), and [`defaults`] apply
//! while none is stored. An action:
//!
//! * `title` — the rule's name (what the task's history shows; a rule
//!   fires once per task);
//! * `code[0].coding[0].code` — the task kind it applies to (absent: any);
//! * `priority` — the least urgent priority it applies to (absent: any);
//! * `trigger[0].name` — `not-accepted` (still `requested`, `received` or
//!   `ready` — nobody has claimed it) or `overdue` (past
//!   `restriction.period.end`), and `timingDuration` the delay after
//!   `authoredOn` or the due time (`min` or `h`);
//! * `participant[0].role.coding[0].code` — whom to tell: [`LEAD_ROLE`]
//!   (the lead of the owning team, or of the owning ward's team) or
//!   [`SENIOR_NURSE_ROLE`] (the senior nurse of the ward's team);
//! * `type.coding[0].code` of [`ACTION_SYSTEM`] — `notify` (they are named
//!   on the task and emailed) or `reassign` (they become its owner);
//! * `dynamicValue` with `path` `priority` — the priority the task is
//!   raised to (`expression.expression`, a FHIRPath string literal such
//!   as `'urgent'`; never lowered).

use serde_json::{Value, json};
use time::Duration;
use wardline_core::Tx;

use super::{KIND_SYSTEM, LEAD_ROLE, PRIORITIES, SENIOR_NURSE_ROLE, TEAM_ROLE_SYSTEM, TasksError};

/// The PlanDefinition's id.
pub const RULES_ID: &str = "task-escalation";
/// `action.type` codes: `notify`, `reassign`.
pub const ACTION_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/escalation-action";

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Nobody has accepted the task `after` its raising.
    NotAccepted,
    /// Still open `after` its due time.
    Overdue,
}

/// One rule (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationRule {
    pub name: String,
    pub kind: Option<String>,
    pub min_priority: Option<String>,
    pub trigger: Trigger,
    pub after: Duration,
    /// [`LEAD_ROLE`] or [`SENIOR_NURSE_ROLE`].
    pub target: String,
    pub reassign: bool,
    pub raise_to: Option<String>,
}

/// The rules while the trust has stored none: an urgent task nobody
/// accepted within 30 minutes goes to the team's lead; a task overdue by 4
/// hours is raised to urgent and its ward's senior nurse told.
pub fn defaults() -> Vec<EscalationRule> {
    vec![
        EscalationRule {
            name: "Urgent task not accepted within 30 minutes".into(),
            kind: None,
            min_priority: Some("urgent".into()),
            trigger: Trigger::NotAccepted,
            after: Duration::minutes(30),
            target: LEAD_ROLE.into(),
            reassign: false,
            raise_to: None,
        },
        EscalationRule {
            name: "Overdue by 4 hours".into(),
            kind: None,
            min_priority: None,
            trigger: Trigger::Overdue,
            after: Duration::hours(4),
            target: SENIOR_NURSE_ROLE.into(),
            reassign: false,
            raise_to: Some("urgent".into()),
        },
    ]
}

fn duration_of(d: &Value) -> Option<Duration> {
    let v = d["value"].as_f64()?;
    let minutes = match d["code"].as_str().or(d["unit"].as_str())? {
        "min" => v,
        "h" => v * 60.0,
        "d" => v * 1440.0,
        _ => return None,
    };
    Some(Duration::seconds((minutes * 60.0) as i64))
}

/// A rule from a PlanDefinition action; `Err` names what is wrong.
pub fn from_action(a: &Value) -> Result<EscalationRule, String> {
    let name = a["title"].as_str().ok_or("an action has no title")?;
    let trigger = match a["trigger"][0]["name"].as_str() {
        Some("not-accepted") => Trigger::NotAccepted,
        Some("overdue") => Trigger::Overdue,
        _ => return Err(format!("{name}: trigger is not-accepted or overdue")),
    };
    let after = duration_of(&a["timingDuration"])
        .ok_or_else(|| format!("{name}: timingDuration in min, h or d"))?;
    let target = a["participant"][0]["role"]["coding"][0]["code"]
        .as_str()
        .filter(|r| [LEAD_ROLE, SENIOR_NURSE_ROLE].contains(r))
        .ok_or_else(|| format!("{name}: participant role is {LEAD_ROLE} or {SENIOR_NURSE_ROLE}"))?;
    let raise_to = a["dynamicValue"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["path"] == "priority")
        .and_then(|d| d["expression"]["expression"].as_str())
        .map(|e| e.trim_matches('\'').to_owned());
    if let Some(p) = &raise_to
        && !PRIORITIES.contains(&p.as_str())
    {
        return Err(format!("{name}: the priority {p} is not a task priority"));
    }
    Ok(EscalationRule {
        name: name.to_owned(),
        kind: a["code"][0]["coding"][0]["code"]
            .as_str()
            .map(str::to_owned),
        min_priority: a["priority"].as_str().map(str::to_owned),
        trigger,
        after,
        target: target.to_owned(),
        reassign: a["type"]["coding"][0]["code"] == "reassign",
        raise_to,
    })
}

/// The rule table as the PlanDefinition that stores it.
pub fn to_plan_definition(rules: &[EscalationRule]) -> Value {
    let actions: Vec<Value> = rules
        .iter()
        .map(|r| {
            let mut a = json!({
                "title": r.name,
                "trigger": [{"type": "named-event", "name": match r.trigger {
                    Trigger::NotAccepted => "not-accepted",
                    Trigger::Overdue => "overdue",
                }}],
                "timingDuration": {"value": r.after.whole_minutes(), "unit": "min",
                    "system": "http://unitsofmeasure.org", "code": "min"},
                "participant": [{"type": "practitioner", "role": {"coding": [{
                    "system": TEAM_ROLE_SYSTEM, "code": r.target}]}}],
                "type": {"coding": [{"system": ACTION_SYSTEM,
                    "code": if r.reassign { "reassign" } else { "notify" }}]},
            });
            if let Some(k) = &r.kind {
                a["code"] = json!([{"coding": [{"system": KIND_SYSTEM, "code": k}]}]);
            }
            if let Some(p) = &r.min_priority {
                a["priority"] = json!(p);
            }
            if let Some(p) = &r.raise_to {
                a["dynamicValue"] = json!([{"path": "priority",
                    "expression": {"language": "text/fhirpath", "expression": format!("'{p}'")}}]);
            }
            a
        })
        .collect();
    json!({
        "resourceType": "PlanDefinition",
        "id": RULES_ID,
        "status": "active",
        "name": "TaskEscalation",
        "title": "Task escalation rules",
        "action": actions,
    })
}

/// The trust's rules: the stored PlanDefinition's when it is active,
/// else [`defaults`]. A stored table with a wrong action is refused here
/// (the job reports it) rather than half applied.
pub fn load_in(tx: &mut Tx<'_>) -> Result<Vec<EscalationRule>, TasksError> {
    match tx.get("PlanDefinition", RULES_ID)? {
        Some(pd) if pd["status"] == "active" => pd["action"]
            .as_array()
            .into_iter()
            .flatten()
            .map(from_action)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TasksError::Invalid(format!("PlanDefinition/{RULES_ID}: {e}"))),
        _ => Ok(defaults()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_round_trips_through_its_plan_definition() {
        let pd = to_plan_definition(&defaults());
        let back: Vec<EscalationRule> = pd["action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| from_action(a).unwrap())
            .collect();
        assert_eq!(back, defaults());
    }

    #[test]
    fn a_wrong_action_is_named() {
        let e = from_action(&json!({"title": "x", "trigger": [{"name": "soon"}]})).unwrap_err();
        assert!(e.contains("trigger"), "{e}");
    }
}
