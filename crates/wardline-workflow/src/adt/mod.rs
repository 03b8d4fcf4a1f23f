//! Admission, transfer and discharge; the bed board.
//!
//! # The model (FHIR R4, the same whatever wrote it)
//!
//! * **Places** are `Location`s in a `partOf` tree: site (`physicalType`
//!   `si`) → ward (`wa`) → bay (`ro`) → bed (`bd`), as the demo trust and
//!   the HL7 v2 inbound mapping (PV1-3) create them. A bed directly under a
//!   ward is shown in a bay named after the ward.
//! * **Bed state** is derived, not trusted blindly: a bed is *occupied* when
//!   a current Encounter (status in-progress, arrived, triaged, on leave) has
//!   it as its active `location` — so an admission written through FHIR REST
//!   or HL7 v2 shows up exactly like one made here. Otherwise the bed's
//!   `Location.operationalStatus` decides, in HL7 v2 table 0116
//!   ([`BED_STATUS`]): `U` (or none) available, `H` housekeeping or `K`
//!   contaminated → cleaning, `C` closed, `I` isolated → blocked; Wardline's
//!   own code `blocked` ([`WARDLINE_BED_STATUS`]) for a bed held back that
//!   table 0116 has no code for; `O` without a current encounter is still
//!   shown occupied (nobody should be put there until someone looks). The
//!   workflow keeps `operationalStatus` consistent when it writes: `O` on
//!   admission and transfer in, `H` after discharge and transfer out (the
//!   HL7 inbound mapping does the same), `U` after a cancelled admission or
//!   transfer.
//! * **An admission** is a UK Core `Encounter` (claiming
//!   [`UK_CORE_ENCOUNTER`]): class `IMP`, status `in-progress`, `subject`,
//!   `period.start`; the UK Core admission-method extension on
//!   `hospitalization` carries the NHS admission method (11 elective, 21
//!   emergency, 81 transfer from another hospital) and
//!   `hospitalization.admitSource` the FHIR admit-source code;
//!   `participant` type `ATND` is the consultant (what PV1-7 carries);
//!   `serviceType` the treatment function code; the expected date of
//!   discharge is the extension [`EXPECTED_DISCHARGE_EXT`] (R4 and UK Core
//!   have no element for it). `location[]` is the bed history: one entry per
//!   bed, `active` for the current one, `completed` with `period.end` for
//!   the earlier ones. A discharge sets status `finished`, `period.end`,
//!   `hospitalization.dischargeDisposition` (NHS discharge destination) and
//!   the UK Core discharge-method extension on the Encounter (its UK Core
//!   context; before issue 15 it was written on `hospitalization`, where a
//!   cancelled discharge still removes it).
//! * **Isolation** is a `Flag` on the patient (code SNOMED CT 40174006
//!   |Isolation procedure|, the organism or reason in `code.text`), not a
//!   bed state: it belongs to the patient, follows them through transfers,
//!   and is seen by every other module (alerts) in the same way.
//! * Cancellations: a cancelled admission is `entered-in-error` (it should
//!   never have been recorded; as HL7 A11 maps it) with its bed freed; a
//!   cancelled transfer removes the last `location` entry and reopens the
//!   previous one; a cancelled discharge puts the encounter back in progress
//!   in its last bed. Each restores the Encounter exactly as it was.
//!
//! # Rules, and why they hold under concurrency
//!
//! Every action is one transaction through [`FhirService::begin`] with the
//! caller's [`Access`] (authorised, validated, audited, and announced by the
//! HL7 outbox in the same transaction). Before reading anything it decides
//! on, an action takes **locks** on the beds, the patient and the encounter
//! it is about ([`Tx::lock`]: transaction-scoped advisory locks on
//! PostgreSQL, taken in sorted key order so two actions never wait for each
//! other in a circle; a deadlock that happens anyway is a 409 to retry).
//! A second transaction locking the same key waits until the first commits, and its reads after
//! that (READ COMMITTED: each statement sees what is committed) see the
//! first one's admission; on SQLite write transactions are serial anyway
//! (`BEGIN IMMEDIATE`). The bed's own version check is a second line: every
//! action that changes who is in a bed also writes the bed. Placing a
//! person's patient also locks the bay and checks it first ([`placement`]:
//! mixed-sex and isolation concerns need a reason to go ahead).
//!
//! Reads that decide a rule look at the store directly inside the
//! transaction (the caller may not be allowed to see the other patient in a
//! bed; they must still be stopped from admitting into it, and the message
//! names the bed, never that patient). Everything shown about a patient is
//! read through the service with the caller's access: a bed whose patient
//! the caller may not see is shown occupied and `withheld`.

pub mod beds;
mod board;
mod codes;
pub mod placement;
mod read;
pub(crate) use read::{ward_name, ward_of};
// issue 20: forms (the KPIs count admissions as ADT reads them)
pub(crate) use read::{is_inpatient, json_of, search_all};

use std::str::FromStr;

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

// Issue 22: the downtime report names each patient's consultant.
pub(crate) use board::consultant_of;
pub use board::{
    Bay, Bed, BoardPatient, Occupancy, SiteSummary, WardBoard, WardSummary, available_beds,
    consultants, sites, ward_board,
};
pub use codes::{
    ADMISSION_METHOD, ADMISSION_METHOD_EXT, ADMIT_SOURCE, BED_STATUS, DISCHARGE_DESTINATION,
    DISCHARGE_METHOD, DISCHARGE_METHOD_EXT, EXPECTED_DISCHARGE_EXT, ISOLATION_CODE, SNOMED,
    TREATMENT_FUNCTION, UK_CORE_ENCOUNTER, WARDLINE_BED_STATUS, discharge_destinations,
    discharge_methods, specialties, specialty_words,
};

use beds::Mover;
pub use beds::{BED_CLASH_CODE, BedMaster};
use codes::{ACT_CODE, PARTICIPATION_TYPE, label_of};
pub use placement::{Concern, ConcernKind, PLACEMENT_EXT};
use read::{Places, current_location, is_current, ref_id};

// ---------------------------------------------------------------- types

/// How a patient comes to be admitted (NHS admission method, in short).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AdmissionKind {
    Elective,
    Emergency,
    TransferIn,
}

impl Stay {
    /// Where the patient is, as people say it: site · ward · bay · bed (the
    /// parts known; a bed directly in a ward has no bay).
    pub fn place(&self) -> String {
        [&self.site, &self.ward, &self.bay, &self.bed]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

impl Movement {
    /// Ward · bay · bed.
    pub fn place(&self) -> String {
        [&self.ward, &self.bay, &self.bed]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

impl AdmissionKind {
    pub const ALL: [AdmissionKind; 3] = [
        AdmissionKind::Elective,
        AdmissionKind::Emergency,
        AdmissionKind::TransferIn,
    ];

    /// `elective`, `emergency`, `transfer-in`.
    pub fn code(self) -> &'static str {
        match self {
            AdmissionKind::Elective => "elective",
            AdmissionKind::Emergency => "emergency",
            AdmissionKind::TransferIn => "transfer-in",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AdmissionKind::Elective => "Elective",
            AdmissionKind::Emergency => "Emergency",
            AdmissionKind::TransferIn => "Transfer in",
        }
    }

    /// NHS Data Dictionary admission method (code, display).
    pub fn admission_method(self) -> (&'static str, &'static str) {
        match self {
            AdmissionKind::Elective => ("11", "Elective admission: waiting list"),
            AdmissionKind::Emergency => ("21", "Emergency admission: emergency care department"),
            AdmissionKind::TransferIn => (
                "81",
                "Transfer of an admitted patient from another hospital provider",
            ),
        }
    }

    fn admit_source(self) -> (&'static str, &'static str) {
        match self {
            AdmissionKind::Elective => ("outp", "From outpatient department"),
            AdmissionKind::Emergency => ("emd", "From accident/emergency department"),
            AdmissionKind::TransferIn => ("hosp-trans", "Transferred from other hospital"),
        }
    }

    /// From an Encounter's UK Core admission-method extension (or, as
    /// written before issue 15, an admission-method coding in
    /// `hospitalization.admitSource`): NHS admission methods 11–13 elective,
    /// 2x emergency, 81 transfer; then FHIR admit-source `emd` emergency,
    /// `hosp-trans` transfer; HL7 v2-0023 as sent by a PAS is not
    /// interpreted. Anything else reads as emergency when the encounter's
    /// class is `EMER`, else elective.
    pub fn of_encounter(enc: &Value) -> AdmissionKind {
        let h = &enc["hospitalization"];
        let method = h["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["url"] == ADMISSION_METHOD_EXT)
            .flat_map(|e| {
                e["valueCodeableConcept"]["coding"]
                    .as_array()
                    .into_iter()
                    .flatten()
            });
        let source = h["admitSource"]["coding"].as_array().into_iter().flatten();
        for c in method.chain(source) {
            let code = c["code"].as_str().unwrap_or_default();
            let sys = c["system"].as_str().unwrap_or_default();
            if sys == ADMISSION_METHOD {
                match code.chars().next() {
                    Some('1') => return AdmissionKind::Elective,
                    Some('2') => return AdmissionKind::Emergency,
                    _ if code == "81" => return AdmissionKind::TransferIn,
                    _ => {}
                }
            }
            if sys == ADMIT_SOURCE {
                match code {
                    "emd" => return AdmissionKind::Emergency,
                    "hosp-trans" => return AdmissionKind::TransferIn,
                    _ => {}
                }
            }
        }
        if enc["class"]["code"] == "EMER" {
            AdmissionKind::Emergency
        } else {
            AdmissionKind::Elective
        }
    }
}

impl std::fmt::Display for AdmissionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for AdmissionKind {
    type Err = AdtError;
    /// The code, the label or the NHS admission method code.
    fn from_str(s: &str) -> Result<Self, AdtError> {
        let s = s.trim();
        AdmissionKind::ALL
            .into_iter()
            .find(|k| {
                k.code().eq_ignore_ascii_case(s)
                    || k.label().eq_ignore_ascii_case(s)
                    || k.admission_method().0 == s
            })
            .ok_or_else(|| {
                AdtError::invalid(format!(
                    "'{s}' is not a kind of admission: choose elective, emergency or transfer-in"
                ))
            })
    }
}

/// What a bed is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum BedState {
    Occupied,
    Available,
    Cleaning,
    Closed,
    Blocked,
}

impl BedState {
    pub const ALL: [BedState; 5] = [
        BedState::Occupied,
        BedState::Available,
        BedState::Cleaning,
        BedState::Closed,
        BedState::Blocked,
    ];

    pub fn label(self) -> &'static str {
        match self {
            BedState::Occupied => "Occupied",
            BedState::Available => "Available",
            BedState::Cleaning => "Being cleaned",
            BedState::Closed => "Closed",
            BedState::Blocked => "Blocked",
        }
    }

    /// `occupied`, `available`, `cleaning`, `closed`, `blocked`.
    pub fn css(self) -> &'static str {
        match self {
            BedState::Occupied => "occupied",
            BedState::Available => "available",
            BedState::Cleaning => "cleaning",
            BedState::Closed => "closed",
            BedState::Blocked => "blocked",
        }
    }

    /// The `Location.operationalStatus` written for this state.
    pub fn coding(self) -> Value {
        let (system, code, display) = match self {
            BedState::Occupied => (BED_STATUS, "O", "Occupied"),
            BedState::Available => (BED_STATUS, "U", "Unoccupied"),
            BedState::Cleaning => (BED_STATUS, "H", "Housekeeping"),
            BedState::Closed => (BED_STATUS, "C", "Closed"),
            BedState::Blocked => (WARDLINE_BED_STATUS, "blocked", "Blocked"),
        };
        json!({"system": system, "code": code, "display": display})
    }

    /// The state `operationalStatus` (system, code) says, ignoring who is
    /// in the bed (see the module documentation).
    pub fn of_status(status: Option<(&str, &str)>) -> BedState {
        match status {
            None => BedState::Available,
            Some((sys, code)) if sys == WARDLINE_BED_STATUS => match code {
                "blocked" => BedState::Blocked,
                "closed" => BedState::Closed,
                "cleaning" => BedState::Cleaning,
                "occupied" => BedState::Occupied,
                _ => BedState::Available,
            },
            Some((_, code)) => match code {
                "O" => BedState::Occupied,
                "H" | "K" => BedState::Cleaning,
                "C" => BedState::Closed,
                "I" => BedState::Blocked,
                _ => BedState::Available,
            },
        }
    }
}

impl std::fmt::Display for BedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for BedState {
    type Err = AdtError;
    /// The css name or the label.
    fn from_str(s: &str) -> Result<Self, AdtError> {
        let s = s.trim();
        BedState::ALL
            .into_iter()
            .find(|b| b.css().eq_ignore_ascii_case(s) || b.label().eq_ignore_ascii_case(s))
            .ok_or_else(|| AdtError::invalid(format!("'{s}' is not a bed state")))
    }
}

/// An admission to make.
#[derive(Debug, Clone, Serialize)]
pub struct Admission {
    pub patient_id: String,
    pub bed_id: String,
    pub kind: AdmissionKind,
    /// Practitioner id of the consultant.
    pub consultant_id: Option<String>,
    /// Treatment function code (see [`specialties`]).
    pub specialty: Option<String>,
    /// `YYYY-MM-DD`.
    pub expected_discharge: Option<String>,
    /// Why the patient goes to this bed despite the placement concerns
    /// (mixed-sex bay, isolation; see [`placement`]); without one an
    /// admission with concerns is refused with them attached.
    pub placement_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AdtErrorKind {
    /// The request is wrong (400).
    Invalid,
    /// The record's state does not allow it (409).
    Conflict,
    /// 404.
    NotFound,
    /// The caller may not (403).
    Forbidden,
    /// Another transaction changed the same record at the same moment
    /// (409): nothing was saved, and trying again may succeed.
    Concurrent,
    /// The bed raises placement concerns ([`AdtError::concerns`]): the
    /// person must see them and give a reason to go ahead (409).
    NeedsReason,
    /// Wardline failed (500).
    Store,
}

/// A refusal or failure, with a sentence to show.
#[derive(Debug, Clone, Serialize)]
pub struct AdtError {
    pub kind: AdtErrorKind,
    pub message: String,
    /// The placement concerns, for [`AdtErrorKind::NeedsReason`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub concerns: Vec<Concern>,
}

impl AdtError {
    pub fn invalid(m: impl Into<String>) -> AdtError {
        AdtError {
            kind: AdtErrorKind::Invalid,
            message: m.into(),
            concerns: Vec::new(),
        }
    }
    pub fn conflict(m: impl Into<String>) -> AdtError {
        AdtError {
            kind: AdtErrorKind::Conflict,
            message: m.into(),
            concerns: Vec::new(),
        }
    }
    pub fn not_found(m: impl Into<String>) -> AdtError {
        AdtError {
            kind: AdtErrorKind::NotFound,
            message: m.into(),
            concerns: Vec::new(),
        }
    }
    pub fn forbidden(m: impl Into<String>) -> AdtError {
        AdtError {
            kind: AdtErrorKind::Forbidden,
            message: m.into(),
            concerns: Vec::new(),
        }
    }
    /// Placement concerns and no reason given: the move is refused with
    /// the concerns attached.
    pub fn needs_reason(concerns: Vec<Concern>) -> AdtError {
        AdtError {
            kind: AdtErrorKind::NeedsReason,
            message: format!(
                "Check before placing the patient: {} Give a reason to go ahead.",
                concerns
                    .iter()
                    .map(|c| c.message.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            concerns,
        }
    }
    pub fn store(m: impl Into<String>) -> AdtError {
        AdtError {
            kind: AdtErrorKind::Store,
            message: m.into(),
            concerns: Vec::new(),
        }
    }

    /// The HTTP status that fits.
    pub fn status(&self) -> u16 {
        match self.kind {
            AdtErrorKind::Invalid => 400,
            AdtErrorKind::Conflict => 409,
            AdtErrorKind::NotFound => 404,
            AdtErrorKind::Forbidden => 403,
            AdtErrorKind::Concurrent => 409,
            AdtErrorKind::NeedsReason => 409,
            AdtErrorKind::Store => 500,
        }
    }
}

impl std::fmt::Display for AdtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AdtError {}

impl From<FhirError> for AdtError {
    fn from(e: FhirError) -> AdtError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "record") {
            R::Forbidden(m) => AdtError::forbidden(m),
            R::NotFound(m) => AdtError::not_found(m),
            R::Concurrent(message) => AdtError {
                kind: AdtErrorKind::Concurrent,
                message,
                concerns: Vec::new(),
            },
            R::Invalid(m) => AdtError::invalid(m),
            R::Store(m) => AdtError::store(m),
        }
    }
}

/// One bed (or other place) the patient was in.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Movement {
    pub bed: String,
    /// The bay (room) the bed is in; empty for a bed directly in a ward.
    pub bay: String,
    pub ward: String,
    pub from: String,
    pub to: Option<String>,
}

/// An admission as the screens show it.
#[derive(Debug, Clone, Serialize)]
pub struct Stay {
    pub encounter_id: String,
    pub patient_id: String,
    pub status: String,
    pub kind: AdmissionKind,
    pub bed_id: Option<String>,
    pub bed: Option<String>,
    /// The bay (room) of the bed, when it is in one.
    pub bay: Option<String>,
    pub ward_id: Option<String>,
    pub ward: Option<String>,
    pub site: Option<String>,
    pub admitted: String,
    pub discharged: Option<String>,
    pub expected_discharge: Option<String>,
    pub consultant: Option<String>,
    /// Treatment function code.
    pub specialty: Option<String>,
    pub movements: Vec<Movement>,
}

// ---------------------------------------------------------------- helpers

/// Now on the clinical clock (epoch ms) as a FHIR dateTime to the second, UTC.
fn now(ms: i64) -> String {
    let s = wardline_fhir::datetime::format_instant(ms);
    match s.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => s,
    }
}

/// A dateTime with a time and a zone, not more than five minutes ahead.
fn check_time(at: &str, what: &str, now_ms: i64) -> Result<i64, AdtError> {
    let bad = || {
        AdtError::invalid(format!(
            "The {what} time '{at}' is not a date and time with a time zone (for example 2026-03-05T14:30:00Z)."
        ))
    };
    if !at.contains('T') {
        return Err(bad());
    }
    let (lo, _) = wardline_fhir::datetime::parse_range(at).ok_or_else(bad)?;
    if lo > now_ms + 5 * 60 * 1000 {
        return Err(AdtError::invalid(format!(
            "The {what} time {at} is in the future."
        )));
    }
    Ok(lo)
}

fn start_ms(v: &Value) -> Option<i64> {
    v["period"]["start"]
        .as_str()
        .and_then(wardline_fhir::datetime::parse_range)
        .map(|r| r.0)
}

/// Takes the database locks on `keys` (see the module documentation).
fn lock(tx: &mut Tx<'_>, keys: &[String]) -> Result<(), AdtError> {
    Ok(tx.lock(keys)?)
}

fn begin<'a>(
    svc: &'a FhirService,
    access: &'a dyn Access,
    what: &str,
    action: &'static str,
) -> Result<Tx<'a>, AdtError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, what, action);
    Ok(tx)
}

/// The Encounter, locked, read again after the lock.
fn locked_encounter(tx: &mut Tx<'_>, id: &str) -> Result<Value, AdtError> {
    lock(tx, &[format!("Encounter/{id}")])?;
    tx.get("Encounter", id)?
        .ok_or_else(|| AdtError::not_found(format!("There is no admission with id {id}.")))
}

fn patient_of(enc: &Value) -> Result<String, AdtError> {
    ref_id(&enc["subject"], "Patient")
        .map(str::to_owned)
        .ok_or_else(|| AdtError::invalid("The admission does not name its patient."))
}

/// The patient's current inpatient admission other than `except`, if any:
/// (encounter id, where).
fn active_admission(
    tx: &Tx<'_>,
    patient_id: &str,
    except: Option<&str>,
) -> Result<Option<(String, Option<String>)>, AdtError> {
    let found = read::search_all(
        tx,
        "Encounter",
        &[
            ("patient", format!("Patient/{patient_id}")),
            ("status", read::CURRENT.to_owned()),
        ],
    )?;
    for s in &found {
        if Some(s.id.as_str()) == except {
            continue;
        }
        let e = json_of(s)?;
        if is_inpatient(&e) && e["status"].as_str().is_some_and(is_current) {
            return Ok(Some((s.id.clone(), current_location(&e))));
        }
    }
    Ok(None)
}

fn place_label(tx: &Tx<'_>, id: &str) -> Result<String, AdtError> {
    let mut places = Places::default();
    if let Some(r) = wardline_store::Reader::read(tx, "Location", id)
        .map_err(FhirError::from)?
        .filter(|r| !r.deleted)
    {
        places.add(&json_of(&r)?);
    }
    places.load_ancestors(tx)?;
    Ok(places.label(id))
}

fn already_admitted(tx: &Tx<'_>, found: (String, Option<String>)) -> Result<AdtError, AdtError> {
    let place = match &found.1 {
        Some(l) => format!(" in {}", place_label(tx, l)?),
        None => String::new(),
    };
    Ok(AdtError::conflict(format!(
        "This patient already has an admission in progress{place}. Transfer or discharge that admission instead."
    )))
}

fn status_of(enc: &Value) -> &str {
    enc["status"].as_str().unwrap_or("unknown")
}

fn not_in_progress(enc: &Value, what: &str) -> AdtError {
    let s = status_of(enc);
    let why = match s {
        "finished" => "the patient has been discharged",
        "entered-in-error" | "cancelled" => "the admission was cancelled",
        "planned" => "the admission has not started",
        other => other,
    };
    AdtError::conflict(format!(
        "Only an admission in progress can be {what}: {why}."
    ))
}

fn remove(v: &mut Value, key: &str) {
    if let Some(o) = v.as_object_mut() {
        o.shift_remove(key);
    }
}

pub(super) fn remove_if_empty(v: &mut Value, key: &str) {
    let empty = match &v[key] {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if empty {
        remove(v, key);
    }
}

/// The later of the admission start and the current location's start.
fn latest_start(enc: &Value) -> Option<(i64, String)> {
    let mut best: Option<(i64, String)> = enc["period"]["start"]
        .as_str()
        .and_then(|s| start_ms(enc).map(|ms| (ms, s.to_owned())));
    if let Some(l) = enc["location"]
        .as_array()
        .and_then(|l| l.iter().rev().find(|l| l["status"] == "active"))
        && let (Some(ms), Some(s)) = (start_ms(l), l["period"]["start"].as_str())
        && best.as_ref().is_none_or(|(b, _)| ms > *b)
    {
        best = Some((ms, s.to_owned()));
    }
    best
}

fn check_after_start(enc: &Value, at_ms: i64, at: &str, what: &str) -> Result<(), AdtError> {
    if let Some((ms, s)) = latest_start(enc)
        && at_ms < ms
    {
        return Err(AdtError::invalid(format!(
            "The {what} time {at} is before the patient arrived in their current bed ({s})."
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- actions

/// Admits a patient to a bed now; returns the Encounter id.
pub fn admit(svc: &FhirService, access: &dyn Access, a: &Admission) -> Result<String, AdtError> {
    admit_at(svc, access, a, &now(svc.now_ms()))
}

/// [`admit`] at a given time (a FHIR dateTime with a zone; recording an
/// admission late). Refused when the bed is not available, or the patient
/// already has an admission in progress.
pub fn admit_at(
    svc: &FhirService,
    access: &dyn Access,
    a: &Admission,
    at: &str,
) -> Result<String, AdtError> {
    let mut tx = begin(svc, access, "adt-admit", "C")?;
    let id = admit_in(&mut tx, a, at)?;
    tx.commit()?;
    Ok(id)
}

/// [`admit_at`] inside the caller's transaction (the Emergency Department's
/// decision to admit, `crate::ed`, finishes the attendance in the same
/// one); the caller commits.
pub fn admit_in(tx: &mut Tx<'_>, a: &Admission, at: &str) -> Result<String, AdtError> {
    let at_ms = check_time(at, "admission", tx.now_ms())?;
    if a.patient_id.trim().is_empty() {
        return Err(AdtError::invalid("Choose the patient to admit."));
    }
    if a.bed_id.trim().is_empty() {
        return Err(AdtError::invalid("Choose the bed to admit the patient to."));
    }
    let specialty = match a
        .specialty
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(code) => Some((
            code,
            label_of(specialties(), code).ok_or_else(|| {
                AdtError::invalid(format!(
                    "'{code}' is not a treatment function code Wardline offers."
                ))
            })?,
        )),
        None => None,
    };
    let expected = match a
        .expected_discharge
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(d) => {
            let range = wardline_fhir::datetime::parse_range(d).filter(|_| d.len() == 10);
            let Some((_, end_of_day)) = range else {
                return Err(AdtError::invalid(format!(
                    "The expected discharge date '{d}' is not a date (YYYY-MM-DD)."
                )));
            };
            if end_of_day <= at_ms {
                return Err(AdtError::invalid(format!(
                    "The expected discharge date {d} is before the admission."
                )));
            }
            Some(d.to_owned())
        }
        None => None,
    };

    lock(
        tx,
        &[
            format!("Location/{}", a.bed_id),
            format!("Patient/{}", a.patient_id),
        ],
    )?;
    let patient = tx.get("Patient", &a.patient_id)?.ok_or_else(|| {
        AdtError::not_found(format!("There is no patient with id {}.", a.patient_id))
    })?;
    if patient["active"] == false {
        return Err(AdtError::conflict(
            "This patient record is inactive (merged into another record): admit the patient on their current record.",
        ));
    }
    let bed = beds::require_bed(tx, &a.bed_id)?;
    if let Some(found) = active_admission(tx, &a.patient_id, None)? {
        return Err(already_admitted(tx, found)?);
    }
    let consultant = match a
        .consultant_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(id) => {
            let p = tx.get("Practitioner", id)?.ok_or_else(|| {
                AdtError::not_found(format!("There is no consultant with id {id}."))
            })?;
            Some((id.to_owned(), board::person_name(&p)))
        }
        None => None,
    };
    let kind = a.kind;
    let (m_code, m_display) = kind.admission_method();
    let (s_code, s_display) = kind.admit_source();
    let mut enc = json!({
        "resourceType": "Encounter",
        "meta": {"profile": [UK_CORE_ENCOUNTER]},
        "status": "in-progress",
        "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
        "subject": {"reference": format!("Patient/{}", a.patient_id)},
        "period": {"start": at},
        "hospitalization": {
            "extension": [{"url": ADMISSION_METHOD_EXT, "valueCodeableConcept": {"coding": [
                {"system": ADMISSION_METHOD, "code": m_code, "display": m_display}]}}],
            "admitSource": {"coding": [
                {"system": ADMIT_SOURCE, "code": s_code, "display": s_display}],
                "text": kind.label()}},
    });
    if let Some(d) = &expected {
        enc["extension"] = json!([{"url": EXPECTED_DISCHARGE_EXT, "valueDate": d}]);
    }
    if let Some((id, name)) = consultant {
        enc["participant"] = json!([{
            "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": "ATND", "display": "attender"}]}],
            "individual": {"reference": format!("Practitioner/{id}"), "display": name}}]);
    }
    if let Some((code, label)) = specialty {
        enc["serviceType"] =
            json!({"coding": [{"system": TREATMENT_FUNCTION, "code": code, "display": label}]});
    }
    if bed["managingOrganization"]["reference"].is_string() {
        enc["serviceProvider"] = json!({"reference": bed["managingOrganization"]["reference"]});
    }
    // The bed rules first (a bed that cannot take the patient is refused
    // as such), then the placement concerns; nothing is kept on a refusal.
    beds::enter(tx, &mut enc, &a.bed_id, None, Some(at), Mover::Wardline)?;
    let concerns = placement::concerns(tx, &patient, &a.bed_id, None, at_ms)?;
    let reason = placement::reason(a.placement_reason.as_deref());
    if !concerns.is_empty() && reason.is_none() {
        return Err(AdtError::needs_reason(concerns));
    }
    if let Some(r) = reason.filter(|_| !concerns.is_empty()) {
        placement::record(&mut enc, &concerns, r);
    }
    let saved = tx.save(enc)?;
    Ok(saved.id)
}

/// Moves an admitted patient to another bed now. `reason` is why the
/// patient goes there despite placement concerns, as
/// [`Admission::placement_reason`].
pub fn transfer(
    svc: &FhirService,
    access: &dyn Access,
    encounter_id: &str,
    to_bed_id: &str,
    reason: Option<&str>,
) -> Result<(), AdtError> {
    transfer_at_with_reason(
        svc,
        access,
        encounter_id,
        to_bed_id,
        &now(svc.now_ms()),
        reason,
    )
}

/// [`transfer`] at a given time, with no reason for placement concerns.
/// The bed left goes to cleaning.
pub fn transfer_at(
    svc: &FhirService,
    access: &dyn Access,
    encounter_id: &str,
    to_bed_id: &str,
    at: &str,
) -> Result<(), AdtError> {
    transfer_at_with_reason(svc, access, encounter_id, to_bed_id, at, None)
}

/// [`transfer`] at a given time.
pub fn transfer_at_with_reason(
    svc: &FhirService,
    access: &dyn Access,
    encounter_id: &str,
    to_bed_id: &str,
    at: &str,
    reason: Option<&str>,
) -> Result<(), AdtError> {
    let at_ms = check_time(at, "transfer", svc.now_ms())?;
    let mut tx = begin(svc, access, "adt-transfer", "U")?;
    let mut enc = locked_encounter(&mut tx, encounter_id)?;
    if status_of(&enc) != "in-progress" {
        return Err(not_in_progress(&enc, "transferred"));
    }
    let patient = patient_of(&enc)?;
    let from = current_location(&enc);
    let mut keys = vec![
        format!("Location/{to_bed_id}"),
        format!("Patient/{patient}"),
    ];
    keys.extend(from.iter().map(|f| format!("Location/{f}")));
    lock(&mut tx, &keys)?;
    if from.as_deref() == Some(to_bed_id) {
        return Err(AdtError::invalid("The patient is already in that bed."));
    }
    beds::require_bed(&mut tx, to_bed_id)?;
    check_after_start(&enc, at_ms, at, "transfer")?;
    let person = tx
        .get("Patient", &patient)?
        .ok_or_else(|| AdtError::not_found(format!("There is no patient with id {patient}.")))?;
    beds::enter(
        &mut tx,
        &mut enc,
        to_bed_id,
        None,
        Some(at),
        Mover::Wardline,
    )?;
    let concerns = placement::concerns(&mut tx, &person, to_bed_id, Some(encounter_id), at_ms)?;
    let reason = placement::reason(reason);
    if !concerns.is_empty() && reason.is_none() {
        return Err(AdtError::needs_reason(concerns));
    }
    if let Some(r) = reason.filter(|_| !concerns.is_empty()) {
        placement::record(&mut enc, &concerns, r);
    }
    tx.save(enc)?;
    tx.commit()?;
    Ok(())
}

/// Discharges an admitted patient now. `destination` and `method` are codes
/// of [`discharge_destinations`] and [`discharge_methods`].
pub fn discharge(
    svc: &FhirService,
    access: &dyn Access,
    encounter_id: &str,
    destination: &str,
    method: &str,
) -> Result<(), AdtError> {
    discharge_at(
        svc,
        access,
        encounter_id,
        destination,
        method,
        &now(svc.now_ms()),
    )
}

/// [`discharge`] at a given time, which must not be before the admission
/// (nor before the patient came to their current bed). The bed goes to
/// cleaning.
pub fn discharge_at(
    svc: &FhirService,
    access: &dyn Access,
    encounter_id: &str,
    destination: &str,
    method: &str,
    at: &str,
) -> Result<(), AdtError> {
    let at_ms = check_time(at, "discharge", svc.now_ms())?;
    let dest_label = label_of(discharge_destinations(), destination).ok_or_else(|| {
        AdtError::invalid(format!(
            "'{destination}' is not a discharge destination: choose one from the list."
        ))
    })?;
    let method_label = label_of(discharge_methods(), method).ok_or_else(|| {
        AdtError::invalid(format!(
            "'{method}' is not a discharge method: choose one from the list."
        ))
    })?;
    let mut tx = begin(svc, access, "adt-discharge", "U")?;
    let mut enc = locked_encounter(&mut tx, encounter_id)?;
    if status_of(&enc) != "in-progress" {
        return Err(not_in_progress(&enc, "discharged"));
    }
    let patient = patient_of(&enc)?;
    let from = current_location(&enc);
    let mut keys = vec![format!("Patient/{patient}")];
    keys.extend(from.iter().map(|f| format!("Location/{f}")));
    lock(&mut tx, &keys)?;
    check_after_start(&enc, at_ms, at, "discharge")?;
    enc["status"] = json!("finished");
    enc["period"]["end"] = json!(at);
    beds::leave(&mut tx, &mut enc, Some(at), BedState::Cleaning)?;
    enc["hospitalization"]["dischargeDisposition"] = json!({"coding": [
        {"system": DISCHARGE_DESTINATION, "code": destination, "display": dest_label}]});
    let ext = json!({"url": DISCHARGE_METHOD_EXT, "valueCodeableConcept": {"coding": [
        {"system": DISCHARGE_METHOD, "code": method, "display": method_label}]}});
    match enc["extension"].as_array_mut() {
        Some(a) => {
            a.retain(|e| e["url"] != DISCHARGE_METHOD_EXT);
            a.push(ext);
        }
        None => enc["extension"] = json!([ext]),
    }
    tx.save(enc)?;
    tx.commit()?;
    Ok(())
}

/// Cancels an admission recorded in error: the Encounter becomes
/// `entered-in-error` and its bed available again. A discharged admission
/// must have its discharge cancelled first.
pub fn cancel_admission(
    svc: &FhirService,
    access: &dyn Access,
    encounter_id: &str,
) -> Result<(), AdtError> {
    let at = now(svc.now_ms());
    let mut tx = begin(svc, access, "adt-cancel-admission", "U")?;
    let mut enc = locked_encounter(&mut tx, encounter_id)?;
    if status_of(&enc) == "finished" {
        return Err(AdtError::conflict(
            "The patient has been discharged: cancel the discharge first, then the admission.",
        ));
    }
    if status_of(&enc) != "in-progress" {
        return Err(not_in_progress(&enc, "cancelled"));
    }
    let patient = patient_of(&enc)?;
    let from = current_location(&enc);
    let mut keys = vec![format!("Patient/{patient}")];
    keys.extend(from.iter().map(|f| format!("Location/{f}")));
    lock(&mut tx, &keys)?;
    enc["status"] = json!("entered-in-error");
    beds::leave(&mut tx, &mut enc, Some(&at), BedState::Available)?;
    tx.save(enc)?;
    tx.commit()?;
    Ok(())
}

/// Cancels the last transfer: the patient is back in the bed they came
/// from (which must still be free: no other patient, not closed or
/// blocked), and the bed they were moved to is available again.
pub fn cancel_transfer(
    svc: &FhirService,
    access: &dyn Access,
    encounter_id: &str,
) -> Result<(), AdtError> {
    let mut tx = begin(svc, access, "adt-cancel-transfer", "U")?;
    let mut enc = locked_encounter(&mut tx, encounter_id)?;
    if status_of(&enc) != "in-progress" {
        return Err(not_in_progress(&enc, "moved back"));
    }
    let patient = patient_of(&enc)?;
    let locs: Vec<Value> = enc["location"].as_array().cloned().unwrap_or_default();
    let n = locs.len();
    let valid = n >= 2 && locs[n - 1]["status"] == "active" && locs[n - 2]["status"] == "completed";
    if !valid {
        return Err(AdtError::conflict(
            "This admission has no transfer to cancel.",
        ));
    }
    lock(&mut tx, &[format!("Patient/{patient}")])?;
    beds::undo_move(&mut tx, &mut enc, Mover::Wardline)?;
    tx.save(enc)?;
    tx.commit()?;
    Ok(())
}

/// Cancels a discharge recorded in error: the admission is in progress
/// again, in the bed it ended in, which must still be free.
pub fn cancel_discharge(
    svc: &FhirService,
    access: &dyn Access,
    encounter_id: &str,
) -> Result<(), AdtError> {
    let mut tx = begin(svc, access, "adt-cancel-discharge", "U")?;
    let mut enc = locked_encounter(&mut tx, encounter_id)?;
    if status_of(&enc) != "finished" {
        return Err(AdtError::conflict(format!(
            "Only a discharge can be cancelled, and this admission is {}.",
            match status_of(&enc) {
                "in-progress" => "still in progress",
                "entered-in-error" | "cancelled" => "cancelled",
                s => s,
            }
        )));
    }
    let patient = patient_of(&enc)?;
    let last = enc["location"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| ref_id(&l["location"], "Location"))
        .map(str::to_owned);
    let mut keys = vec![format!("Patient/{patient}")];
    keys.extend(last.iter().map(|f| format!("Location/{f}")));
    lock(&mut tx, &keys)?;
    if let Some(found) = active_admission(&tx, &patient, Some(encounter_id))? {
        return Err(already_admitted(&tx, found)?);
    }
    beds::return_to_last(&mut tx, &mut enc, Mover::Wardline)?;
    enc["status"] = json!("in-progress");
    remove(&mut enc["period"], "end");
    remove_if_empty(&mut enc, "period");
    // The discharge method is on the Encounter (on `hospitalization` in
    // records discharged before issue 15).
    if let Some(a) = enc["extension"].as_array_mut() {
        a.retain(|e| e["url"] != DISCHARGE_METHOD_EXT);
    }
    remove_if_empty(&mut enc, "extension");
    let h = &mut enc["hospitalization"];
    remove(h, "dischargeDisposition");
    if let Some(a) = h["extension"].as_array_mut() {
        a.retain(|e| e["url"] != DISCHARGE_METHOD_EXT);
    }
    remove_if_empty(h, "extension");
    remove_if_empty(&mut enc, "hospitalization");
    tx.save(enc)?;
    tx.commit()?;
    Ok(())
}

/// Marks a bed cleaned (available), being cleaned, closed or blocked. A bed
/// with a patient in it cannot change state this way, and no bed becomes
/// occupied except by admitting or transferring a patient into it. Closing
/// or blocking a bed needs a `reason`, kept on the bed and shown on the
/// board until it reopens.
pub fn set_bed_state(
    svc: &FhirService,
    access: &dyn Access,
    bed_id: &str,
    state: BedState,
    reason: Option<&str>,
) -> Result<(), AdtError> {
    let mut tx = begin(svc, access, "adt-bed-state", "U")?;
    beds::set_state(&mut tx, bed_id, state, reason)?;
    tx.commit()?;
    Ok(())
}

// ---------------------------------------------------------------- stays

/// The patient's admission in progress, if any.
pub fn current_stay(
    svc: &FhirService,
    access: &dyn Access,
    patient_id: &str,
) -> Result<Option<Stay>, AdtError> {
    let found = read::search_as(
        svc,
        access,
        "Encounter",
        &[
            ("patient", format!("Patient/{patient_id}")),
            ("status", read::CURRENT.to_owned()),
            ("_count", "100".to_owned()),
        ],
    )?;
    if found.refused {
        return Err(AdtError::forbidden(
            "You are not allowed to see this patient's admissions.",
        ));
    }
    let best = found
        .matches
        .iter()
        .filter(|e| is_inpatient(e))
        .max_by_key(|e| start_ms(e).unwrap_or(i64::MIN));
    match best {
        Some(e) => Ok(Some(stay_of(svc, e)?)),
        None if found.withheld > 0 => Err(AdtError::forbidden(
            "You are not allowed to see this patient's admissions.",
        )),
        None => Ok(None),
    }
}

/// One admission, with its bed history.
pub fn stay(svc: &FhirService, access: &dyn Access, encounter_id: &str) -> Result<Stay, AdtError> {
    let enc = read::read_as(svc, access, "Encounter", encounter_id)?.ok_or_else(|| {
        AdtError::not_found(format!("There is no admission with id {encounter_id}."))
    })?;
    stay_of(svc, &enc)
}

fn stay_of(svc: &FhirService, enc: &Value) -> Result<Stay, AdtError> {
    let store = svc.system_reader();
    let mut places = Places::default();
    let locs: Vec<&Value> = enc["location"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["status"] != "planned")
        .collect();
    let ids: Vec<(String, String)> = locs
        .iter()
        .filter_map(|l| ref_id(&l["location"], "Location"))
        .map(|id| ("Location".to_owned(), id.to_owned()))
        .collect();
    if !ids.is_empty() {
        let found = store.read_many(&ids).map_err(FhirError::from)?;
        places.add_stored(&found)?;
        places.load_ancestors(store)?;
    }
    let name_of = |id: &str, kind: &str| places.ancestor(id, kind).map(|p| p.name.clone());
    let movements = locs
        .iter()
        .filter_map(|l| {
            let id = ref_id(&l["location"], "Location")?;
            Some(Movement {
                bed: name_of(id, "bd")
                    .or_else(|| places.get(id).map(|p| p.name.clone()))
                    .or_else(|| l["location"]["display"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| id.to_owned()),
                bay: name_of(id, "ro").unwrap_or_default(),
                ward: name_of(id, "wa").unwrap_or_default(),
                from: l["period"]["start"].as_str().unwrap_or_default().to_owned(),
                to: l["period"]["end"].as_str().map(str::to_owned),
            })
        })
        .collect();
    let cur = if enc["status"] == "finished" {
        enc["location"]
            .as_array()
            .and_then(|l| l.last())
            .and_then(|l| ref_id(&l["location"], "Location"))
            .map(str::to_owned)
    } else {
        current_location(enc)
    };
    let bed = cur.as_deref().and_then(|c| places.ancestor(c, "bd"));
    let bay = cur.as_deref().and_then(|c| places.ancestor(c, "ro"));
    let ward = cur.as_deref().and_then(|c| places.ancestor(c, "wa"));
    let site = cur.as_deref().and_then(|c| places.ancestor(c, "si"));
    let consultant = board::consultant_of(svc, enc)?;
    Ok(Stay {
        encounter_id: enc["id"].as_str().unwrap_or_default().to_owned(),
        patient_id: ref_id(&enc["subject"], "Patient")
            .unwrap_or_default()
            .to_owned(),
        status: status_of(enc).to_owned(),
        kind: AdmissionKind::of_encounter(enc),
        bed_id: bed.map(|b| b.id.clone()),
        bed: bed.map(|b| b.name.clone()),
        ward_id: ward.map(|w| w.id.clone()),
        bay: bay.map(|b| b.name.clone()),
        ward: ward.map(|w| w.name.clone()),
        site: site.map(|s| s.name.clone()),
        admitted: enc["period"]["start"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        discharged: enc["period"]["end"].as_str().map(str::to_owned),
        expected_discharge: board::expected_discharge(enc),
        consultant,
        specialty: codes::specialty_words(&enc["serviceType"]),
        movements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bed_states_round_trip_through_operational_status() {
        for s in BedState::ALL {
            let c = s.coding();
            let got = BedState::of_status(Some((
                c["system"].as_str().unwrap(),
                c["code"].as_str().unwrap(),
            )));
            assert_eq!(got, s);
            assert_eq!(s.css().parse::<BedState>().unwrap(), s);
        }
        assert_eq!(BedState::of_status(None), BedState::Available);
        assert_eq!(
            BedState::of_status(Some((BED_STATUS, "K"))),
            BedState::Cleaning
        );
        assert_eq!(
            BedState::of_status(Some((BED_STATUS, "I"))),
            BedState::Blocked
        );
        assert!("nope".parse::<BedState>().is_err());
    }

    #[test]
    fn admission_kinds_parse_and_read_back() {
        for k in AdmissionKind::ALL {
            assert_eq!(k.code().parse::<AdmissionKind>().unwrap(), k);
            assert_eq!(k.admission_method().0.parse::<AdmissionKind>().unwrap(), k);
            let (m, _) = k.admission_method();
            // As UK Core carries it, and as it was written before issue 15.
            let enc = json!({"hospitalization": {"extension": [{"url": ADMISSION_METHOD_EXT,
                "valueCodeableConcept": {"coding": [{"system": ADMISSION_METHOD, "code": m}]}}]}});
            assert_eq!(AdmissionKind::of_encounter(&enc), k);
            let enc = json!({"hospitalization": {"admitSource": {"coding": [
                {"system": ADMISSION_METHOD, "code": m}]}}});
            assert_eq!(AdmissionKind::of_encounter(&enc), k);
        }
        let e = "sideways".parse::<AdmissionKind>().unwrap_err();
        assert_eq!(e.kind, AdtErrorKind::Invalid);
        assert_eq!(
            AdmissionKind::of_encounter(&json!({"class": {"code": "EMER"}})),
            AdmissionKind::Emergency
        );
    }

    #[test]
    fn errors_are_sentences_with_a_status() {
        let e = AdtError::from(FhirError::not_found("Patient/x does not exist"));
        assert_eq!(
            (e.status(), e.message.as_str()),
            (404, "Patient/x does not exist.")
        );
        let e = AdtError::from(FhirError::conflict("version conflict on Location/b"));
        assert_eq!(e.kind, AdtErrorKind::Concurrent);
        assert_eq!(e.status(), 409);
        assert!(!e.message.contains("version"), "{e}");
        let e = AdtError::from(wardline_core::access::forbidden("no relationship"));
        assert_eq!(e.status(), 403);
        assert_eq!(AdtError::from(FhirError::internal("boom")).status(), 500);
    }

    #[test]
    fn times_need_a_zone_and_not_the_future() {
        assert!(
            check_time(
                "2025-01-01T10:00:00Z",
                "x",
                wardline_fhir::datetime::now_ms()
            )
            .is_ok()
        );
        assert!(check_time("2025-01-01", "x", wardline_fhir::datetime::now_ms()).is_err());
        assert!(check_time("yesterday", "x", wardline_fhir::datetime::now_ms()).is_err());
        assert!(
            check_time(
                "2999-01-01T10:00:00Z",
                "x",
                wardline_fhir::datetime::now_ms()
            )
            .is_err()
        );
    }

    #[test]
    fn latest_start_takes_the_current_bed() {
        let e = json!({"period": {"start": "2025-01-01T10:00:00Z"}, "location": [
            {"status": "completed", "period": {"start": "2025-01-01T10:00:00Z", "end": "2025-01-02T10:00:00Z"}},
            {"status": "active", "period": {"start": "2025-01-02T10:00:00Z"}}]});
        assert_eq!(latest_start(&e).unwrap().1, "2025-01-02T10:00:00Z");
        assert!(
            check_after_start(
                &e,
                start_ms(&json!({"period": {"start": "2025-01-02T09:00:00Z"}})).unwrap(),
                "t",
                "discharge"
            )
            .is_err()
        );
    }
}
