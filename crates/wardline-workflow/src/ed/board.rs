//! The department's places, the tracking board and the ECDS-shaped
//! extract. Places carry no patient data and are read in the store; every
//! attendance and patient is read through the service with the caller's
//! access (withheld ones are counted, never shown).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::{
    AREA_SYSTEM, Clock, EdError, REFERRAL_CATEGORY, Stream, WaitingFor, arrival_ms, category_label,
    fhir_time, in_department, item, items, ms_of, time_in_department, triage_category,
};
use crate::fhir::{concept_text, reference_id};
use crate::theatres::LOCATION_KIND_SYSTEM;

/// A place of a department: the department itself (no stream) or an area.
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    pub id: String,
    pub name: String,
    pub stream: Option<Stream>,
}

/// A site's Emergency Department.
#[derive(Debug, Clone, Serialize)]
pub struct Department {
    /// The department's Location id.
    pub id: String,
    pub name: String,
    pub site: String,
    pub site_name: String,
    pub organization: Option<String>,
    pub areas: Vec<Place>,
}

impl Department {
    /// Whether `location` is the department or one of its areas.
    pub fn holds(&self, location: &str) -> bool {
        self.id == location || self.areas.iter().any(|a| a.id == location)
    }
    /// The name of `location` in the department.
    pub fn place_name(&self, location: &str) -> String {
        self.areas
            .iter()
            .find(|a| a.id == location)
            .map(|a| a.name.clone())
            .unwrap_or_else(|| "Waiting (not yet streamed)".to_owned())
    }
}

fn kind_query(kind: &str) -> String {
    format!("type={LOCATION_KIND_SYSTEM}|{kind}&_count=1000")
}

/// The trust's departments (Locations typed `ed`) with their areas
/// (`ed-area`, part of the department), by site name.
pub fn departments_in(tx: &mut Tx<'_>) -> Result<Vec<Department>, EdError> {
    let depts = tx.find("Location", &kind_query("ed"))?;
    let areas = tx.find("Location", &kind_query("ed-area"))?;
    let mut out = Vec::new();
    for d in depts {
        let id = d["id"].as_str().unwrap_or_default().to_owned();
        let site = reference_id(&d["partOf"], "Location")
            .unwrap_or_default()
            .to_owned();
        let site_name = match tx.get("Location", &site)? {
            Some(s) => s["name"].as_str().unwrap_or(&site).to_owned(),
            None => site.clone(),
        };
        let mut mine: Vec<Place> = areas
            .iter()
            .filter(|a| reference_id(&a["partOf"], "Location") == Some(id.as_str()))
            .map(|a| Place {
                id: a["id"].as_str().unwrap_or_default().to_owned(),
                name: a["name"].as_str().unwrap_or_default().to_owned(),
                stream: a["identifier"].as_array().and_then(|is| {
                    is.iter()
                        .filter(|i| i["system"] == AREA_SYSTEM)
                        .find_map(|i| Stream::parse(i["value"].as_str()?))
                }),
            })
            .collect();
        mine.sort_by_key(|p| {
            p.stream
                .and_then(|s| Stream::ALL.iter().position(|x| *x == s))
                .unwrap_or(99)
        });
        out.push(Department {
            name: d["name"].as_str().unwrap_or(&id).to_owned(),
            id,
            site,
            site_name,
            organization: d["managingOrganization"]["reference"]
                .as_str()
                .map(str::to_owned),
            areas: mine,
        });
    }
    out.sort_by(|a, b| a.site_name.cmp(&b.site_name));
    Ok(out)
}

/// The departments, for the caller (any member of staff may see places).
pub fn departments(svc: &FhirService, access: &dyn Access) -> Result<Vec<Department>, EdError> {
    let mut tx = svc.begin(access)?;
    let d = departments_in(&mut tx)?;
    tx.commit()?;
    Ok(d)
}

/// The attendance's current place (Location id).
pub fn current_place(enc: &Value) -> Option<String> {
    let ls = enc["location"].as_array()?;
    ls.iter()
        .rev()
        .find(|l| l["status"] == "active")
        .or_else(|| ls.last())
        .and_then(|l| reference_id(&l["location"], "Location"))
        .map(str::to_owned)
}

/// The department the attendance is (or was last) in.
pub fn department_of<'a>(depts: &'a [Department], enc: &Value) -> Option<&'a Department> {
    let ids: Vec<&str> = enc["location"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| reference_id(&l["location"], "Location"))
        .collect();
    depts.iter().find(|d| ids.iter().any(|id| d.holds(id)))
}

/// The attendance's diagnoses: (SNOMED CT code, text).
pub fn diagnoses(tx: &mut Tx<'_>, enc: &Value) -> Result<Vec<(String, String)>, EdError> {
    let mut out = Vec::new();
    for d in enc["diagnosis"].as_array().into_iter().flatten() {
        // A caller who may not read diagnoses (a clerk) sees none.
        if let Some(id) = reference_id(&d["condition"], "Condition")
            && let Ok(Some(c)) = tx.get("Condition", id)
        {
            out.push(coded(&c["code"]));
        }
    }
    Ok(out)
}

fn coded(c: &Value) -> (String, String) {
    (
        c["coding"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        concept_text(c).unwrap_or_default(),
    )
}

fn codings(enc: &Value, name: &str) -> Vec<(String, String)> {
    items(enc, name)
        .map(|v| {
            (
                v["valueCoding"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                v["valueCoding"]["display"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn text(enc: &Value, name: &str, key: &str) -> Option<String> {
    item(enc, name)
        .and_then(|v| v[key].as_str())
        .map(str::to_owned)
}

/// A patient on the board.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub attendance: String,
    pub patient: String,
    pub name: String,
    pub nhs_number: Option<String>,
    pub arrived: String,
    pub arrival_mode: Option<String>,
    pub place: String,
    pub stream: Option<Stream>,
    pub status: String,
    pub triage: Option<u8>,
    pub discriminator: Option<String>,
    pub complaint: Option<String>,
    pub clinician: Option<String>,
    pub waiting_for: Vec<WaitingFor>,
    /// Open referrals: the specialties.
    pub referrals: Vec<String>,
    /// Time in the department (ms) by the clock given.
    pub in_department_ms: i64,
    pub clock: Clock,
}

impl Row {
    pub fn triage_label(&self) -> String {
        self.triage
            .map(|c| category_label(c).to_owned())
            .unwrap_or_else(|| "Not triaged".to_owned())
    }
}

/// A department's board at `now`.
#[derive(Debug, Clone, Serialize)]
pub struct Board {
    pub department: Department,
    /// Longest in the department first.
    pub rows: Vec<Row>,
    /// Attendances the caller may not see (counted, not shown).
    pub withheld: usize,
    /// How many are at or past amber / 4 hours / 12 hours.
    pub amber: usize,
    pub breached: usize,
    pub twelve_hours: usize,
}

fn patient_name(p: &Value) -> String {
    let n = p["name"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["use"] == "official").or(ns.first()));
    match n {
        Some(n) => {
            let given: Vec<&str> = n["given"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "{}, {}",
                n["family"].as_str().unwrap_or("").to_uppercase(),
                given.join(" ")
            )
        }
        None => "Name not known".to_owned(),
    }
}

fn nhs_number(p: &Value) -> Option<String> {
    p["identifier"].as_array()?.iter().find_map(|i| {
        (i["system"] == crate::pmi::NHS_NUMBER_SYSTEM)
            .then(|| i["value"].as_str().map(str::to_owned))
            .flatten()
    })
}

/// The board of the department of `site` at `now` (the injected clock):
/// every attendance still in it, its place, clinician, clocks, triage,
/// what it waits for and its open referrals.
pub fn board(
    svc: &FhirService,
    access: &dyn Access,
    site: &str,
    now: OffsetDateTime,
) -> Result<Board, EdError> {
    let depts = departments(svc, access)?;
    let dept = depts
        .into_iter()
        .find(|d| d.site == site || d.id == site)
        .ok_or_else(|| EdError::NotFound(format!("'{site}' has no Emergency Department.")))?;
    let found = crate::fhir::search_as_all(
        svc,
        access,
        "Encounter",
        &[
            ("class", "EMER".to_owned()),
            ("status", "arrived,triaged,in-progress".to_owned()),
            ("_include", "Encounter:subject".to_owned()),
        ],
    )?;
    let patients: HashMap<String, &Value> = found
        .included
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .filter_map(|p| Some((p["id"].as_str()?.to_owned(), p)))
        .collect();
    // A caller who may not read requests (a clerk) sees no referrals.
    let refs = crate::fhir::search_as_all(
        svc,
        access,
        "ServiceRequest",
        &[
            ("category", format!("{REFERRAL_CATEGORY}|specialty-review")),
            ("status", "active".to_owned()),
        ],
    )
    .unwrap_or_default();
    let mut referrals: HashMap<String, Vec<String>> = HashMap::new();
    for r in &refs.resources {
        if let Some(e) = reference_id(&r["encounter"], "Encounter") {
            referrals
                .entry(e.to_owned())
                .or_default()
                .push(concept_text(&r["code"]).unwrap_or_default());
        }
    }
    let now_ms = ms_of(now);
    let mut rows = Vec::new();
    for enc in &found.resources {
        if !in_department(enc) {
            continue;
        }
        let Some(place) = current_place(enc).filter(|p| dept.holds(p)) else {
            continue;
        };
        let id = enc["id"].as_str().unwrap_or_default().to_owned();
        let pid = reference_id(&enc["subject"], "Patient")
            .unwrap_or_default()
            .to_owned();
        let p = patients.get(&pid);
        let in_ms = time_in_department(enc, now_ms).unwrap_or(0);
        rows.push(Row {
            attendance: id.clone(),
            name: p.map_or_else(
                || "Patient details not shown".to_owned(),
                |p| patient_name(p),
            ),
            nhs_number: p.and_then(|p| nhs_number(p)),
            patient: pid,
            arrived: enc["period"]["start"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            arrival_mode: item(enc, "arrival-mode")
                .and_then(|v| v["valueCoding"]["display"].as_str())
                .map(str::to_owned),
            stream: dept
                .areas
                .iter()
                .find(|a| a.id == place)
                .and_then(|a| a.stream),
            place: dept.place_name(&place),
            status: enc["status"].as_str().unwrap_or_default().to_owned(),
            triage: triage_category(enc),
            discriminator: text(enc, "triage-discriminator", "valueString"),
            complaint: enc["reasonCode"]
                .as_array()
                .and_then(|r| r.first())
                .and_then(concept_text),
            clinician: enc["participant"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|p| p["individual"]["display"].as_str().map(str::to_owned)),
            waiting_for: items(enc, "waiting-for")
                .filter_map(|w| WaitingFor::parse(w["valueCode"].as_str()?))
                .collect(),
            referrals: referrals.remove(&id).unwrap_or_default(),
            in_department_ms: in_ms,
            clock: Clock::after(in_ms),
        });
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.in_department_ms));
    let count = |c: Clock| rows.iter().filter(|r| r.clock >= c).count();
    Ok(Board {
        amber: count(Clock::Amber),
        breached: count(Clock::Breached),
        twelve_hours: count(Clock::TwelveHours),
        department: dept,
        withheld: found.withheld,
        rows,
    })
}

/// One attendance as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub encounter: Value,
    pub department: Option<Department>,
    pub place: String,
    pub diagnoses: Vec<(String, String)>,
    pub investigations: Vec<(String, String)>,
    pub treatments: Vec<(String, String)>,
    pub in_department_ms: i64,
    pub clock: Clock,
}

/// The attendance `id` as the caller may read it, at `now`.
pub fn detail(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<Detail, EdError> {
    super::audited(svc, access, "ed-board", "R", |tx| {
        let enc = tx
            .get("Encounter", id)?
            .filter(super::is_attendance)
            .ok_or_else(|| EdError::NotFound(format!("There is no attendance with id {id}.")))?;
        let depts = departments_in(tx)?;
        let dept = department_of(&depts, &enc).cloned();
        let place = match (&dept, current_place(&enc)) {
            (Some(d), Some(p)) => d.place_name(&p),
            _ => String::new(),
        };
        let in_ms = time_in_department(&enc, ms_of(now)).unwrap_or(0);
        Ok(Detail {
            diagnoses: diagnoses(tx, &enc)?,
            investigations: codings(&enc, "investigation"),
            treatments: codings(&enc, "treatment"),
            department: dept,
            place,
            in_department_ms: in_ms,
            clock: Clock::after(in_ms),
            encounter: enc,
        })
    })
}

// ---------------------------------------------------------------- the extract

/// One attendance of the ECDS-shaped extract: the columns of
/// [`super::ECDS`], codes as SNOMED CT (several joined by `;`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EcdsRow {
    pub attendance_id: String,
    pub nhs_number: String,
    pub site: String,
    pub arrival: String,
    pub arrival_mode: String,
    pub ambulance_incident: String,
    pub handover: String,
    pub chief_complaint: String,
    pub acuity: String,
    pub triage_time: String,
    pub investigations: String,
    pub treatments: String,
    pub diagnoses: String,
    pub decision_to_admit: String,
    pub departure: String,
    pub discharge_destination: String,
}

fn joined(v: &[(String, String)]) -> String {
    v.iter()
        .map(|(c, _)| c.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

fn snomed_of(c: &Value) -> String {
    c["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["system"] == super::SNOMED)
        .and_then(|x| x["code"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The attendances that arrived in `[from, to)`, as the caller may read
/// them, oldest first (audited `ed-export`).
pub fn extract(
    svc: &FhirService,
    access: &dyn Access,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<EcdsRow>, EdError> {
    if to <= from {
        return Err(EdError::Field(
            "to",
            "The end of the period must be after its start.".into(),
        ));
    }
    let found = crate::fhir::search_as_all(
        svc,
        access,
        "Encounter",
        &[
            ("class", "EMER".to_owned()),
            ("date", format!("ge{}", fhir_time(from))),
            ("_include", "Encounter:subject".to_owned()),
            ("_include", "Encounter:diagnosis".to_owned()),
        ],
    )?;
    let by_ref: HashMap<String, &Value> = found
        .included
        .iter()
        .filter_map(|r| {
            Some((
                format!("{}/{}", r["resourceType"].as_str()?, r["id"].as_str()?),
                r,
            ))
        })
        .collect();
    let (from_ms, to_ms) = (ms_of(from), ms_of(to));
    let mut depts = Vec::new();
    {
        let mut tx = svc.begin(access)?;
        tx.set_audit_subtype(wardline_core::audit::WARDLINE_SUBTYPE, "ed-export", "R");
        depts.extend(departments_in(&mut tx)?);
        tx.commit()?;
    }
    let mut out: Vec<(i64, EcdsRow)> = Vec::new();
    for enc in &found.resources {
        let Some(a) = arrival_ms(enc).filter(|a| *a >= from_ms && *a < to_ms) else {
            continue;
        };
        if enc["status"] == "entered-in-error" || enc["status"] == "cancelled" {
            continue;
        }
        let patient = enc["subject"]["reference"]
            .as_str()
            .and_then(|r| by_ref.get(r));
        let diagnoses: Vec<(String, String)> = enc["diagnosis"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| by_ref.get(d["condition"]["reference"].as_str()?))
            .map(|c| coded(&c["code"]))
            .collect();
        let dt = |name: &str| text(enc, name, "valueDateTime").unwrap_or_default();
        out.push((
            a,
            EcdsRow {
                attendance_id: enc["id"].as_str().unwrap_or_default().to_owned(),
                nhs_number: patient.and_then(|p| nhs_number(p)).unwrap_or_default(),
                site: department_of(&depts, enc)
                    .map(|d| d.site.clone())
                    .unwrap_or_default(),
                arrival: enc["period"]["start"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                arrival_mode: item(enc, "arrival-mode")
                    .and_then(|v| v["valueCoding"]["code"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                ambulance_incident: text(enc, "ambulance-incident", "valueString")
                    .unwrap_or_default(),
                handover: dt("handover"),
                chief_complaint: enc["reasonCode"]
                    .as_array()
                    .and_then(|r| r.first())
                    .map(snomed_of)
                    .unwrap_or_default(),
                acuity: snomed_of(&enc["priority"]),
                triage_time: dt("triage-time"),
                investigations: joined(&codings(enc, "investigation")),
                treatments: joined(&codings(enc, "treatment")),
                diagnoses: joined(&diagnoses),
                decision_to_admit: dt("decision-to-admit"),
                departure: enc["period"]["end"].as_str().unwrap_or_default().to_owned(),
                discharge_destination: snomed_of(&enc["hospitalization"]["dischargeDisposition"]),
            },
        ));
    }
    out.sort_by_key(|a| a.0);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// The extract as CSV: a header row of the column names, then one row per
/// attendance.
pub fn to_csv(rows: &[EcdsRow]) -> Result<String, EdError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        w.write_record(super::ECDS.iter().map(|(c, _, _)| *c))
            .map_err(|e| EdError::Fhir(wardline_fhir::FhirError::internal(e.to_string())))?;
    }
    for r in rows {
        w.serialize(r)
            .map_err(|e| EdError::Fhir(wardline_fhir::FhirError::internal(e.to_string())))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| EdError::Fhir(wardline_fhir::FhirError::internal(e.to_string())))?;
    String::from_utf8(bytes)
        .map_err(|e| EdError::Fhir(wardline_fhir::FhirError::internal(e.to_string())))
}
