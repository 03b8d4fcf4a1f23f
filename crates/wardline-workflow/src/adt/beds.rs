//! The bed rules: the one place where a patient enters or leaves a bed.
//!
//! Every channel that moves a patient calls these functions inside its own
//! transaction: the ADT actions of this module (the UI and anything else
//! over [`super::admit`] and friends) and the HL7 v2 inbound mapping
//! (`wardline-hl7-fhir`, A01–A03, A06, A07, A11–A13, A21, A22). Each takes
//! its lock on the
//! bed it decides on ([`Tx::lock`], held in the database until commit, so
//! two servers on one PostgreSQL are as safe as one), checks the bed,
//! edits the Encounter's `location[]` (which the caller saves with the rest
//! of its changes) and writes the beds' `operationalStatus`.
//!
//! **When the bed is not free.** A person in Wardline is refused (the bed
//! is named; only an available bed takes a patient). A message from
//! another system is decided by [`BedMaster`]: where Wardline is master of
//! its beds (the default) a bed with another patient in it, or closed or
//! blocked, refuses the message (`AE` naming the bed); a bed marked for
//! cleaning is taken (the PAS saw it cleaned). Where an external PAS is
//! master its admission stands, and the clash becomes a [`BED_CLASH_CODE`]
//! `Task` on the bed manager's list (shown on the ward's board) — never a
//! silent double occupancy.

use std::collections::HashMap;

use serde_json::{Value, json};
use wardline_core::Tx;
use wardline_fhir::FhirError;
use wardline_store::Reader;

use super::read::{self, Places, current_location, ref_id};
use super::{AdtError, BedState};
use crate::pmi::TASK_SYSTEM;

/// The Task code of a bed clash left for the bed manager.
pub const BED_CLASH_CODE: &str = "bed-clash";

/// Why a bed is closed or blocked (`Location.extension`, `valueString`):
/// shown on the board beside the state, removed when the bed reopens.
pub const STATUS_REASON_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/bed-status-reason";

/// The reason a bed's `Location` records for being closed or blocked.
pub(crate) fn status_reason(v: &Value) -> Option<String> {
    v["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == STATUS_REASON_EXT)
        .and_then(|e| e["valueString"].as_str())
        .map(str::to_owned)
}

/// Sets (or with `None` removes) the reason on a bed's `Location`.
fn set_status_reason(v: &mut Value, reason: Option<&str>) {
    let mut ext: Vec<Value> = v["extension"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["url"] != STATUS_REASON_EXT)
        .collect();
    if let Some(r) = reason {
        ext.push(json!({"url": STATUS_REASON_EXT, "valueString": r}));
    }
    v["extension"] = Value::Array(ext);
    super::remove_if_empty(v, "extension");
}

/// Who is master of the beds when a message from another system puts a
/// patient in a bed Wardline holds otherwise (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BedMaster {
    /// Wardline: the message is refused, naming the bed.
    #[default]
    Wardline,
    /// The external PAS: its admission stands and a Task records the clash.
    External,
}

impl std::str::FromStr for BedMaster {
    type Err = String;
    fn from_str(s: &str) -> Result<BedMaster, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wardline" => Ok(BedMaster::Wardline),
            "external" | "pas" => Ok(BedMaster::External),
            other => Err(format!(
                "'{other}' is not a bed master: choose wardline or external"
            )),
        }
    }
}

/// Who is moving the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mover {
    /// A person in Wardline: a bed that is not available is refused.
    Wardline,
    /// A message from another system, decided by the bed master.
    Feed(BedMaster),
}

/// The lock key of a record.
pub fn key(resource_type: &str, id: &str) -> String {
    format!("{resource_type}/{id}")
}

/// A bed (or other place) as a rule sees it, read in the transaction.
struct Spot {
    id: String,
    label: String,
    json: Value,
    is_bed: bool,
    /// The state `operationalStatus` says (not who is in it).
    marked: BedState,
}

fn spot(tx: &mut Tx<'_>, id: &str) -> Result<Option<Spot>, AdtError> {
    let Some(json) = tx.get("Location", id)? else {
        return Ok(None);
    };
    let place = read::Place::of(&json);
    let mut places = Places::default();
    places.add(&json);
    places.load_ancestors(&*tx)?;
    Ok(Some(Spot {
        id: id.to_owned(),
        label: places.label(id),
        is_bed: place.is_bed(),
        marked: BedState::of_status(place.status.as_ref().map(|(s, c)| (s.as_str(), c.as_str()))),
        json,
    }))
}

/// Whether another current encounter (not `except`) is in the bed.
fn occupied(tx: &Tx<'_>, bed_id: &str, except: Option<&str>) -> Result<bool, AdtError> {
    Ok(in_bed(tx, bed_id, except)? > 0)
}

/// What is wrong with putting a patient in the bed, if anything.
fn clash(
    tx: &Tx<'_>,
    bed: &Spot,
    except: Option<&str>,
    mover: Mover,
) -> Result<Option<String>, AdtError> {
    if occupied(tx, &bed.id, except)? {
        return Ok(Some(format!(
            "{} is occupied by another patient",
            bed.label
        )));
    }
    let refused = match (bed.marked, mover) {
        (BedState::Available, _) => false,
        // A feed's system saw the bed cleaned.
        (BedState::Cleaning, Mover::Feed(_)) => false,
        _ => true,
    };
    Ok(refused.then(|| match bed.marked {
        BedState::Occupied => format!("{} is marked occupied", bed.label),
        s => format!("{} is {}", bed.label, s.label().to_lowercase()),
    }))
}

/// Decides a clash: refused for a person and where Wardline is master;
/// recorded as a Task where an external PAS is.
fn settle(
    tx: &mut Tx<'_>,
    bed: &Spot,
    why: String,
    mover: Mover,
    enc: &Value,
) -> Result<(), AdtError> {
    match mover {
        Mover::Wardline => Err(AdtError::conflict(format!(
            "{why}: only an available bed can take a patient. Choose an available bed."
        ))),
        Mover::Feed(BedMaster::Wardline) => Err(AdtError::conflict(format!(
            "{why}; Wardline is master of its beds, so the patient was not put there"
        ))),
        Mover::Feed(BedMaster::External) => {
            let mut task = json!({
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "priority": "urgent",
                "code": {"coding": [{"system": TASK_SYSTEM, "code": BED_CLASH_CODE, "display": "Bed clash"}]},
                "description": format!("{why}, and the patient administration system has put a patient there. Check who is in the bed and whether it can take them, and move the patient if not."),
                "focus": {"reference": format!("Location/{}", bed.id), "display": bed.label},
                "authoredOn": super::now(tx.now_ms()),
                "performerType": [{"text": "Bed manager"}],
            });
            if let Some(p) = ref_id(&enc["subject"], "Patient") {
                task["for"] = json!({"reference": format!("Patient/{p}")});
            }
            tx.save(task)?;
            Ok(())
        }
    }
}

/// Writes a bed's `operationalStatus` when it is a bed and it changes.
fn mark(tx: &mut Tx<'_>, spot: &mut Spot, state: BedState) -> Result<(), AdtError> {
    if spot.is_bed && spot.json["operationalStatus"] != state.coding() {
        spot.json["operationalStatus"] = state.coding();
        set_status_reason(&mut spot.json, None);
        tx.save(spot.json.clone())?;
    }
    Ok(())
}

/// Marks the place `id` (when it is a bed) after a patient left it: `then`
/// unless another patient is in it now. A bed clash on it is resolved once
/// at most one patient is left.
fn vacate(tx: &mut Tx<'_>, id: &str, then: BedState, except: Option<&str>) -> Result<(), AdtError> {
    tx.lock(&[key("Location", id)])?;
    let Some(mut s) = spot(tx, id)? else {
        return Ok(());
    };
    if !s.is_bed {
        return Ok(());
    }
    let left = in_bed(tx, id, except)?;
    if left == 0 {
        mark(tx, &mut s, then)?;
    }
    if left <= 1 {
        resolve_clashes(tx, id)?;
    }
    Ok(())
}

/// How many current encounters are in the bed now (not `except`).
fn in_bed(tx: &Tx<'_>, bed_id: &str, except: Option<&str>) -> Result<usize, AdtError> {
    let found = read::search_all(
        tx,
        "Encounter",
        &[
            ("location", format!("Location/{bed_id}")),
            ("status", read::CURRENT.to_owned()),
        ],
    )?;
    let mut n = 0;
    for r in &found {
        if Some(r.id.as_str()) == except {
            continue;
        }
        if current_location(&read::json_of(r)?).as_deref() == Some(bed_id) {
            n += 1;
        }
    }
    Ok(n)
}

const OPEN: &str = "requested,received,accepted,ready,in-progress,on-hold";

fn clash_query(bed_refs: String) -> [(&'static str, String); 3] {
    [
        ("code", format!("{TASK_SYSTEM}|{BED_CLASH_CODE}")),
        ("status", OPEN.to_owned()),
        ("focus", bed_refs),
    ]
}

/// Completes the open clash tasks of a bed that holds one patient again.
fn resolve_clashes(tx: &mut Tx<'_>, bed_id: &str) -> Result<(), AdtError> {
    let found = read::search_all(&*tx, "Task", &clash_query(format!("Location/{bed_id}")))?;
    for r in &found {
        let mut task = read::json_of(r)?;
        task["status"] = json!("completed");
        task["statusReason"] = json!({"text": "The bed holds one patient again."});
        task["lastModified"] = json!(super::now(tx.now_ms()));
        tx.save(task)?;
    }
    Ok(())
}

/// The open bed clashes of these beds: bed id → the task's description.
pub(crate) fn open_clashes<R: Reader + ?Sized>(
    r: &R,
    bed_ids: &[String],
) -> Result<HashMap<String, String>, AdtError> {
    let mut out = HashMap::new();
    for chunk in bed_ids.chunks(200) {
        let refs = chunk
            .iter()
            .map(|id| format!("Location/{id}"))
            .collect::<Vec<_>>()
            .join(",");
        for s in read::search_all(r, "Task", &clash_query(refs))? {
            let t = read::json_of(&s)?;
            if let Some(bed) = ref_id(&t["focus"], "Location") {
                let text = t["description"].as_str().unwrap_or("Bed clash").to_owned();
                out.insert(bed.to_owned(), text);
            }
        }
    }
    Ok(out)
}

fn encounter_id(enc: &Value) -> Option<&str> {
    enc["id"].as_str()
}

/// Completes the active location entries at `at`.
fn close_active(enc: &mut Value, at: Option<&str>) {
    if let Some(locs) = enc["location"].as_array_mut() {
        for l in locs.iter_mut().filter(|l| l["status"] == "active") {
            l["status"] = json!("completed");
            if let Some(a) = at {
                l["period"]["end"] = json!(a);
            }
        }
    }
}

/// Makes a location entry active again (no end).
fn reopen(entry: &mut Value) {
    entry["status"] = json!("active");
    if let Some(p) = entry.get_mut("period").and_then(Value::as_object_mut) {
        p.shift_remove("end");
        if p.is_empty()
            && let Some(o) = entry.as_object_mut()
        {
            o.shift_remove("period");
        }
    }
}

/// The patient moves into the place `id` (a bed, or a ward or bay) at `at`:
/// the bed is locked and checked (see the module documentation), the active
/// location entry is completed and the bed left goes to cleaning, a new
/// active entry is appended (shown as `display`, else the place's label)
/// and the bed is marked occupied. Nothing changes when the patient is
/// already there. The caller saves `enc`.
pub fn enter(
    tx: &mut Tx<'_>,
    enc: &mut Value,
    id: &str,
    display: Option<&str>,
    at: Option<&str>,
    mover: Mover,
) -> Result<(), AdtError> {
    let reference = format!("Location/{id}");
    let from = current_location(enc);
    if from.as_deref() == Some(id) {
        return Ok(());
    }
    let mut keys = vec![key("Location", id)];
    keys.extend(from.iter().map(|f| key("Location", f)));
    tx.lock(&keys)?;
    let Some(mut here) = spot(tx, id)? else {
        return Err(AdtError::not_found(format!(
            "There is no place with id {id}."
        )));
    };
    if here.is_bed {
        if read::Place::of(&here.json).active {
            if let Some(why) = clash(tx, &here, encounter_id(enc), mover)? {
                settle(tx, &here, why, mover, enc)?;
            }
        } else {
            let why = format!("{} is no longer in use", here.label);
            settle(tx, &here, why, mover, enc)?;
        }
    }
    close_active(enc, at);
    let display = display.unwrap_or(&here.label);
    let mut entry =
        json!({"location": {"reference": reference, "display": display}, "status": "active"});
    if let Some(a) = at {
        entry["period"] = json!({"start": a});
    }
    match enc["location"].as_array_mut() {
        Some(l) => l.push(entry),
        None => enc["location"] = json!([entry]),
    }
    if let Some(f) = &from {
        vacate(tx, f, BedState::Cleaning, encounter_id(enc))?;
    }
    mark(tx, &mut here, BedState::Occupied)
}

/// The patient leaves their current place at `at` (discharge: the bed goes
/// to cleaning; a cancelled admission: available). The caller saves `enc`.
pub fn leave(
    tx: &mut Tx<'_>,
    enc: &mut Value,
    at: Option<&str>,
    then: BedState,
) -> Result<(), AdtError> {
    let from = current_location(enc);
    close_active(enc, at);
    if let Some(f) = &from {
        vacate(tx, f, then, encounter_id(enc))?;
    }
    Ok(())
}

/// Undoes the last move: the latest location entry is removed (its bed
/// available again) and the patient is back in the one before, which must
/// still take them (checked like [`enter`]). Refused when there is no move
/// to undo. The caller saves `enc`.
pub fn undo_move(tx: &mut Tx<'_>, enc: &mut Value, mover: Mover) -> Result<(), AdtError> {
    let locs: Vec<Value> = enc["location"].as_array().cloned().unwrap_or_default();
    let n = locs.len();
    let ids = |i: usize| ref_id(&locs[i]["location"], "Location").map(str::to_owned);
    let (Some(current), Some(previous)) = (
        (n >= 2).then(|| ids(n - 1)).flatten(),
        (n >= 2).then(|| ids(n - 2)).flatten(),
    ) else {
        return Err(AdtError::conflict(
            "This admission has no transfer to cancel.",
        ));
    };
    tx.lock(&[key("Location", &current), key("Location", &previous)])?;
    let mut locs = locs;
    locs.pop();
    if let Some(last) = locs.last_mut() {
        reopen(last);
    }
    enc["location"] = Value::Array(locs);
    back_to(tx, enc, &previous, mover)?;
    vacate(tx, &current, BedState::Available, encounter_id(enc))
}

/// The patient is back in their last place (a cancelled discharge), which
/// must still take them (checked like [`enter`]). The caller saves `enc`.
pub fn return_to_last(tx: &mut Tx<'_>, enc: &mut Value, mover: Mover) -> Result<(), AdtError> {
    let last = enc["location"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| ref_id(&l["location"], "Location"))
        .map(str::to_owned);
    if let Some(l) = enc["location"].as_array_mut().and_then(|l| l.last_mut()) {
        reopen(l);
    }
    match last {
        Some(id) => {
            tx.lock(&[key("Location", &id)])?;
            back_to(tx, enc, &id, mover)
        }
        None => Ok(()),
    }
}

/// The patient goes on leave of absence (HL7 v2 A21: they leave the
/// hospital for a while, their bed kept for them). The encounter becomes
/// `onleave` and its active location entry stays active, so **the bed
/// stays held**: `onleave` is a current status, so the board shows the
/// bed occupied by them and no one else can be put in it, and nothing is
/// written to the bed. Only an encounter `in-progress` can go on leave
/// (one already on leave is left as it is: a resend). The caller saves
/// `enc`.
pub fn go_on_leave(enc: &mut Value) -> Result<(), AdtError> {
    match enc["status"].as_str().unwrap_or_default() {
        "onleave" => Ok(()),
        "in-progress" => {
            enc["status"] = json!("onleave");
            Ok(())
        }
        other => Err(AdtError::conflict(format!(
            "Only a patient whose stay is in progress can go on leave; this one is {}.",
            if other.is_empty() {
                "without a status"
            } else {
                other
            }
        ))),
    }
}

/// The patient is back from leave of absence (HL7 v2 A22): the encounter
/// is `in-progress` again, in the bed held for them, which is checked like
/// [`return_to_last`] (a bed given to someone else, closed or blocked
/// meanwhile refuses a person, and a feed per the bed master) and marked
/// occupied. Only an encounter `onleave` comes back (one already in
/// progress is left as it is: a resend). The caller saves `enc`.
pub fn back_from_leave(tx: &mut Tx<'_>, enc: &mut Value, mover: Mover) -> Result<(), AdtError> {
    match enc["status"].as_str().unwrap_or_default() {
        "in-progress" => return Ok(()),
        "onleave" => {}
        other => {
            return Err(AdtError::conflict(format!(
                "Only a patient on leave can come back from leave; this one is {}.",
                if other.is_empty() {
                    "without a status"
                } else {
                    other
                }
            )));
        }
    }
    enc["status"] = json!("in-progress");
    match current_location(enc) {
        Some(id) => {
            tx.lock(&[key("Location", &id)])?;
            back_to(tx, enc, &id, mover)
        }
        None => Ok(()),
    }
}

/// Checks that the patient can be back in bed `id` and marks it occupied.
fn back_to(tx: &mut Tx<'_>, enc: &Value, id: &str, mover: Mover) -> Result<(), AdtError> {
    let Some(mut bed) = spot(tx, id)? else {
        return Err(AdtError::conflict(format!(
            "The bed the patient was in (Location/{id}) no longer exists."
        )));
    };
    if !bed.is_bed {
        return Ok(());
    }
    let other = occupied(tx, id, encounter_id(enc))?;
    let why = match (other, bed.marked) {
        (true, _) => Some(format!(
            "{} now has another patient in it, so the patient cannot go back there",
            bed.label
        )),
        (false, s @ (BedState::Closed | BedState::Blocked)) => Some(format!(
            "{} has been {} since, so the patient cannot go back there",
            bed.label,
            s.label().to_lowercase()
        )),
        (false, BedState::Occupied) if mover == Mover::Wardline => Some(format!(
            "{} is marked occupied, so the patient cannot go back there",
            bed.label
        )),
        _ => None,
    };
    if let Some(why) = why {
        match mover {
            Mover::Wardline => {
                return Err(AdtError::conflict(format!(
                    "{why}. Transfer them to a free bed instead."
                )));
            }
            _ => settle(tx, &bed, why, mover, enc)?,
        }
    }
    mark(tx, &mut bed, BedState::Occupied)
}

/// Sets a bed's state by hand (cleaned, closed, blocked): refused while a
/// patient is in it; no bed becomes occupied this way.
pub fn set_state(
    tx: &mut Tx<'_>,
    bed_id: &str,
    state: BedState,
    reason: Option<&str>,
) -> Result<(), AdtError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let needs_reason = matches!(state, BedState::Closed | BedState::Blocked);
    if needs_reason && reason.is_none() {
        return Err(AdtError::invalid(format!(
            "Say why the bed is {}: the reason is shown on the board until it reopens.",
            state.label().to_lowercase()
        )));
    }
    if state == BedState::Occupied {
        return Err(AdtError::invalid(
            "A bed becomes occupied only by admitting or transferring a patient into it.",
        ));
    }
    tx.lock(&[key("Location", bed_id)])?;
    let Some(mut bed) = spot(tx, bed_id)? else {
        return Err(AdtError::not_found(format!(
            "There is no bed with id {bed_id}."
        )));
    };
    if !bed.is_bed {
        return Err(AdtError::invalid(format!("{} is not a bed.", bed.label)));
    }
    if occupied(tx, bed_id, None)? {
        return Err(AdtError::conflict(format!(
            "{} has a patient in it: discharge or transfer the patient first.",
            bed.label
        )));
    }
    let before = bed.json.clone();
    bed.json["operationalStatus"] = state.coding();
    set_status_reason(&mut bed.json, reason.filter(|_| needs_reason));
    if bed.json != before {
        tx.save(bed.json.clone())?;
    }
    Ok(())
}

impl From<AdtError> for FhirError {
    fn from(e: AdtError) -> FhirError {
        let code = match e.kind {
            super::AdtErrorKind::Invalid => "invalid",
            super::AdtErrorKind::Conflict | super::AdtErrorKind::NeedsReason => "business-rule",
            super::AdtErrorKind::Concurrent => "conflict",
            super::AdtErrorKind::NotFound => "not-found",
            super::AdtErrorKind::Forbidden => "forbidden",
            super::AdtErrorKind::Store => "exception",
        };
        let status = match e.kind {
            super::AdtErrorKind::Conflict | super::AdtErrorKind::NeedsReason => 422,
            _ => e.status(),
        };
        FhirError::new(status, code, e.message)
    }
}

/// The bed `id`, active, for a person to put a patient in: not found, not a
/// bed and out of use are refused. Returns its Location.
pub fn require_bed(tx: &mut Tx<'_>, id: &str) -> Result<Value, AdtError> {
    let Some(bed) = spot(tx, id)? else {
        return Err(AdtError::not_found(format!(
            "There is no bed with id {id}."
        )));
    };
    if !bed.is_bed {
        return Err(AdtError::invalid(format!("{} is not a bed.", bed.label)));
    }
    if !read::Place::of(&bed.json).active {
        return Err(AdtError::conflict(format!(
            "{} is no longer in use.",
            bed.label
        )));
    }
    Ok(bed.json)
}
