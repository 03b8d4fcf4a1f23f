//! The task lists: **my tasks** (owned by me or my position), **my teams'
//! tasks** (owned by a CareTeam I am a member of or a ward my position
//! covers) and **a ward's tasks** (owned by the ward or its teams). Open
//! tasks only, read as the caller may see them (each search authorised and
//! audited), filtered by kind, priority and overdue, sorted overdue first,
//! then the most urgent, then the soonest due, and cut into pages.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::{ESCALATION_EXT, OPEN, TEAM_WARD_EXT, TasksError, due_ms, ms_of, overdue, rank};
use crate::pmi::PatientSummary;

/// Who is asking: the person, their position and their user name.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub who: Option<String>,
    pub position: Option<String>,
    pub username: String,
}

impl Caller {
    pub fn of(access: &dyn Access) -> Caller {
        let a = access.agent();
        Caller {
            who: a.who.clone(),
            position: a.position.clone(),
            username: a.name.clone(),
        }
    }
}

/// A person's, team's or place's name as lists show it.
pub fn name_of(r: &Value) -> Option<String> {
    if let Some(n) = r["name"].as_str() {
        return Some(n.to_owned());
    }
    let n = r["name"].as_array()?.first()?;
    if let Some(t) = n["text"].as_str() {
        return Some(t.to_owned());
    }
    let parts: Vec<&str> = n["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .chain(n["family"].as_str())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Whether a CareTeam participant is the caller (by Practitioner,
/// PractitionerRole or user name).
fn is_member(p: &Value, c: &Caller) -> bool {
    let m = &p["member"];
    let r = m["reference"].as_str();
    (r.is_some() && (r == c.who.as_deref() || r == c.position.as_deref()))
        || (m["identifier"]["system"] == wardline_auth::directory::USERNAME_SYSTEM
            && m["identifier"]["value"] == c.username.as_str()
            && !c.username.is_empty())
}

/// The trust's active CareTeams; none for a caller who may not read teams.
fn active_teams(tx: &mut Tx<'_>) -> Result<Vec<Value>, TasksError> {
    match tx.find("CareTeam", "status=active") {
        Ok(v) => Ok(v),
        Err(e) if e.status == 403 => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The ward ids the caller's position covers (as written on it).
fn position_locations(tx: &mut Tx<'_>, c: &Caller) -> Vec<String> {
    let Some(id) = c
        .position
        .as_deref()
        .and_then(|p| p.strip_prefix("PractitionerRole/"))
    else {
        return Vec::new();
    };
    match tx.get("PractitionerRole", id) {
        Ok(Some(pr)) => pr["location"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| crate::fhir::reference_id(l, "Location").map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The caller's teams: `CareTeam/…` they are members of, and `Location/…`
/// each ward their position covers.
pub fn teams_in(tx: &mut Tx<'_>, c: &Caller) -> Result<Vec<String>, TasksError> {
    let mut out: Vec<String> = active_teams(tx)?
        .iter()
        .filter(|t| {
            t["participant"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| is_member(p, c))
        })
        .filter_map(|t| Some(format!("CareTeam/{}", t["id"].as_str()?)))
        .collect();
    out.extend(
        position_locations(tx, c)
            .into_iter()
            .map(|l| format!("Location/{l}")),
    );
    Ok(out)
}

/// Whether `owner` is the caller or one of the caller's teams or wards (a
/// ward within a site the position covers counts).
pub fn covers_in(tx: &mut Tx<'_>, c: &Caller, owner: &str) -> Result<bool, TasksError> {
    if Some(owner) == c.who.as_deref() || Some(owner) == c.position.as_deref() {
        return Ok(true);
    }
    let (t, id) = owner.split_once('/').unwrap_or(("", ""));
    match t {
        "PractitionerRole" => Ok(tx
            .get("PractitionerRole", id)?
            .is_some_and(|pr| pr["practitioner"]["reference"].as_str() == c.who.as_deref())),
        "CareTeam" => Ok(tx.get("CareTeam", id)?.is_some_and(|team| {
            team["participant"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| is_member(p, c))
        })),
        "Location" => {
            let mine = position_locations(tx, c);
            let mut at = Some(id.to_owned());
            for _ in 0..4 {
                let Some(l) = at else { break };
                if mine.contains(&l) {
                    return Ok(true);
                }
                at = tx.get("Location", &l)?.and_then(|loc| {
                    crate::fhir::reference_id(&loc["partOf"], "Location").map(str::to_owned)
                });
            }
            Ok(false)
        }
        _ => Ok(false),
    }
}

/// The teams looking after a ward (CareTeams with [`TEAM_WARD_EXT`]).
pub fn ward_teams_in(tx: &mut Tx<'_>, ward: &str) -> Result<Vec<Value>, TasksError> {
    let target = format!("Location/{ward}");
    Ok(active_teams(tx)?
        .into_iter()
        .filter(|t| {
            t["extension"].as_array().into_iter().flatten().any(|e| {
                e["url"] == TEAM_WARD_EXT && e["valueReference"]["reference"] == target.as_str()
            })
        })
        .collect())
}

/// A team's participant in a role ([`LEAD_ROLE`], …): their reference.
pub fn in_role(team: &Value, role: &str) -> Option<Value> {
    team["participant"]
        .as_array()?
        .iter()
        .find(|p| {
            p["role"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["coding"][0]["code"] == role)
        })
        .map(|p| p["member"].clone())
}

/// Which list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Mine,
    Teams,
    /// A ward (`Location` id).
    Ward(String),
}

/// What the list is cut down to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub kind: Option<String>,
    pub priority: Option<String>,
    pub overdue_only: bool,
}

/// One task as the lists show it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub kind: String,
    pub kind_label: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub owner: Option<String>,
    pub owner_label: Option<String>,
    /// `Patient/…`, and the name as shown.
    pub patient: Option<String>,
    pub patient_name: Option<String>,
    pub nhs_number: Option<String>,
    /// `Type/id` of what the task is about.
    pub focus: Option<String>,
    pub focus_label: Option<String>,
    pub due: Option<String>,
    pub overdue: bool,
    pub escalated: bool,
    pub authored: String,
}

/// A page of a list.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub rows: Vec<Row>,
    /// Matches across all pages (after the filters).
    pub total: usize,
    pub overdue: usize,
    pub page: usize,
    pub pages: usize,
    /// Tasks the caller may not see.
    pub withheld: usize,
    /// The owners listed (`Type/id`).
    pub owners: Vec<String>,
}

/// Rows per page.
pub const PAGE_SIZE: usize = 25;

/// The owners a scope lists.
pub fn owners_of(
    svc: &FhirService,
    access: &dyn Access,
    scope: &Scope,
) -> Result<Vec<String>, TasksError> {
    let c = Caller::of(access);
    let mut tx = svc.begin(access)?;
    let owners = match scope {
        Scope::Mine => c.who.iter().chain(c.position.iter()).cloned().collect(),
        Scope::Teams => teams_in(&mut tx, &c)?,
        Scope::Ward(w) => std::iter::once(format!("Location/{w}"))
            .chain(
                ward_teams_in(&mut tx, w)?
                    .iter()
                    .filter_map(|t| Some(format!("CareTeam/{}", t["id"].as_str()?))),
            )
            .collect(),
    };
    drop(tx);
    Ok(owners)
}

fn row(t: &Value, patients: &HashMap<String, &Value>, now: OffsetDateTime) -> Row {
    let patient = t["for"]["reference"].as_str().map(str::to_owned);
    let p = patient
        .as_ref()
        .and_then(|r| patients.get(r))
        .map(|p| PatientSummary::from_resource(p));
    let coding = &t["code"]["coding"][0];
    Row {
        id: t["id"].as_str().unwrap_or_default().to_owned(),
        kind: coding["code"].as_str().unwrap_or_default().to_owned(),
        kind_label: coding["display"]
            .as_str()
            .or(coding["code"].as_str())
            .unwrap_or("Task")
            .to_owned(),
        description: t["description"].as_str().unwrap_or_default().to_owned(),
        status: t["status"].as_str().unwrap_or_default().to_owned(),
        priority: t["priority"].as_str().unwrap_or("routine").to_owned(),
        owner: t["owner"]["reference"].as_str().map(str::to_owned),
        owner_label: t["owner"]["display"]
            .as_str()
            .or(t["owner"]["reference"].as_str())
            .map(str::to_owned),
        patient_name: p.as_ref().map(|p| p.display_name.clone()),
        nhs_number: p.and_then(|p| p.nhs_number),
        patient,
        focus: t["focus"]["reference"].as_str().map(str::to_owned),
        focus_label: t["focus"]["display"].as_str().map(str::to_owned),
        due: t["restriction"]["period"]["end"]
            .as_str()
            .map(str::to_owned),
        overdue: overdue(t, now),
        escalated: t["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["url"] == ESCALATION_EXT),
        authored: t["authoredOn"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Sorts overdue first, then the most urgent, then the soonest due (no due
/// time last), then the oldest.
pub fn sort_rows(rows: &mut [(Row, Option<i64>)]) {
    rows.sort_by(|(a, da), (b, db)| {
        b.overdue
            .cmp(&a.overdue)
            .then(rank(&b.priority).cmp(&rank(&a.priority)))
            .then(match (da, db) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then(a.authored.cmp(&b.authored))
    });
}

/// Page `page` (1-based) of a list at `now`.
pub fn list(
    svc: &FhirService,
    access: &dyn Access,
    scope: &Scope,
    filter: &Filter,
    page: usize,
    now: OffsetDateTime,
) -> Result<Page, TasksError> {
    let owners = owners_of(svc, access, scope)?;
    let mut page_out = Page {
        rows: Vec::new(),
        total: 0,
        overdue: 0,
        page: page.max(1),
        pages: 1,
        withheld: 0,
        owners: owners.clone(),
    };
    if owners.is_empty() {
        return Ok(page_out);
    }
    let mut params = vec![
        ("owner", owners.join(",")),
        ("status", OPEN.to_owned()),
        ("_include", "Task:patient".to_owned()),
    ];
    if let Some(p) = &filter.priority {
        params.push(("priority", p.clone()));
    }
    let found = crate::fhir::search_as_all(svc, access, "Task", &params)?;
    let patients: HashMap<String, &Value> = found
        .included
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .filter_map(|p| Some((format!("Patient/{}", p["id"].as_str()?), p)))
        .collect();
    let mut rows: Vec<(Row, Option<i64>)> = found
        .resources
        .iter()
        .filter(|t| filter.kind.as_deref().is_none_or(|k| super::kind(t) == k))
        .map(|t| (row(t, &patients, now), due_ms(t)))
        .filter(|(r, _)| !filter.overdue_only || r.overdue)
        .collect();
    sort_rows(&mut rows);
    page_out.total = rows.len();
    page_out.overdue = rows.iter().filter(|(r, _)| r.overdue).count();
    page_out.pages = rows.len().div_ceil(PAGE_SIZE).max(1);
    page_out.withheld = found.withheld;
    let page = page.clamp(1, page_out.pages);
    page_out.page = page;
    page_out.rows = rows
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|(r, _)| r)
        .collect();
    Ok(page_out)
}

/// How many of the caller's and their teams' open tasks are overdue at
/// `now` (the header's badge).
pub fn overdue_count(
    svc: &FhirService,
    access: &dyn Access,
    now: OffsetDateTime,
) -> Result<usize, TasksError> {
    let mut owners = owners_of(svc, access, &Scope::Mine)?;
    owners.extend(owners_of(svc, access, &Scope::Teams)?);
    if owners.is_empty() {
        return Ok(0);
    }
    let found = crate::fhir::search_as_all(
        svc,
        access,
        "Task",
        &[("owner", owners.join(",")), ("status", OPEN.to_owned())],
    )?;
    let at = ms_of(now);
    Ok(found
        .resources
        .iter()
        .filter(|t| due_ms(t).is_some_and(|d| d < at))
        .count())
}

/// One task with its history (notes, escalations), as the caller may see it.
pub fn detail(svc: &FhirService, access: &dyn Access, id: &str) -> Result<Value, TasksError> {
    svc.read_as(access, "Task", id)?
        .ok_or_else(|| TasksError::NotFound(format!("There is no task with id {id}.")))
}
