//! ADT → Patient, Encounter, Location (see the rules in the module doc of
//! `inbound`).

use serde_json::{Map, Value, json};
use wardline_hl7::Message;

use crate::{MapError, MappingConfig, Records};

use super::Applied;
use super::patient::{self, Mode};
use super::ts::Ts;
use super::util::{
    PARTICIPATION_TYPE, Seg, V3_ACT_CODE, event_time, id_of, practitioner, rc, reference,
    table_concept,
};

const PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";
const BED_STATUS: &str = "http://terminology.hl7.org/CodeSystem/v2-0116";

pub(crate) fn apply(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    event: &str,
) -> Result<Applied, MapError> {
    match event {
        "A28" | "A31" => {
            let pid = patient::upsert(msg, records, cfg, Mode::Update)?;
            Ok(Applied {
                summary: format!("ADT^{event}: Patient/{pid} saved"),
                patient_id: Some(pid),
            })
        }
        "A40" => merge(msg, records, cfg),
        _ => visit_event(msg, records, cfg, event),
    }
}

/// A40: PID is the surviving patient, MRG-1 the identifiers of the one
/// merged into it.
fn merge(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
) -> Result<Applied, MapError> {
    let Some(mrg) = Seg::first(msg, "MRG") else {
        return Err(MapError::content(
            101,
            Some("MRG-1"),
            "ADT^A40 has no MRG segment, so no prior patient identifier (MRG-1)",
        ));
    };
    let prior = patient::identifiers(&mrg, 1, cfg)?;
    if prior.is_empty() {
        return Err(MapError::content(
            101,
            Some("MRG-1"),
            format!(
                "MRG-1 (prior patient identifier list) has no identifier: '{}'",
                mrg.raw(1)
            ),
        ));
    }
    let target = patient::upsert(msg, records, cfg, Mode::Update)?;
    let Some(source) = patient::find(records, &prior)? else {
        return Err(MapError::content(
            204,
            Some("MRG-1"),
            format!(
                "MRG-1 prior patient identifier '{}' is not known",
                mrg.reps(1)
                    .iter()
                    .map(|r| r.text().into_owned())
                    .collect::<Vec<_>>()
                    .join("~")
            ),
        ));
    };
    let source = id_of(&source);
    if source == target {
        return Ok(Applied {
            summary: format!("ADT^A40: Patient/{target} already holds the prior identifiers"),
            patient_id: Some(target),
        });
    }
    records.merge_patients(&source, &target)?;
    Ok(Applied {
        summary: format!("ADT^A40: Patient/{source} merged into Patient/{target}"),
        patient_id: Some(target),
    })
}

/// The visit number (PV1-19.1).
fn visit_number(pv1: Option<&Seg<'_, '_>>) -> Option<String> {
    pv1.and_then(|p| p.v(19))
}

pub(crate) fn visit_system(cfg: &MappingConfig) -> String {
    format!("{}/visit", cfg.identifier_base)
}

/// The stored encounter of PV1-19, if any (message without a visit: `None`).
pub(crate) fn find_encounter(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
) -> Result<Option<Value>, MapError> {
    let pv1 = Seg::first(msg, "PV1");
    match visit_number(pv1.as_ref()) {
        Some(v) => records.find_by_identifier("Encounter", &visit_system(cfg), &v),
        None => Ok(None),
    }
}

fn visit_event(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    event: &str,
) -> Result<Applied, MapError> {
    let pv1 = Seg::first(msg, "PV1");
    let visit = visit_number(pv1.as_ref());
    let patient_id = patient::upsert(msg, records, cfg, Mode::Update)?;
    let (pv1, visit) = match (pv1, visit) {
        (Some(p), Some(v)) => (p, v),
        (pv1, _) => {
            if event == "A08" {
                return Ok(Applied {
                    summary: format!("ADT^A08: Patient/{patient_id} updated (no visit number)"),
                    patient_id: Some(patient_id),
                });
            }
            return Err(MapError::content(
                101,
                Some("PV1-19"),
                format!(
                    "ADT^{event} needs the visit number in PV1-19, which is empty ('{}')",
                    pv1.map(|p| p.raw(19)).unwrap_or("")
                ),
            ));
        }
    };
    let existing = records.find_by_identifier("Encounter", &visit_system(cfg), &visit)?;
    let creates = matches!(event, "A01" | "A04" | "A05");
    let mut enc = match existing {
        Some(e) => e,
        None if creates => json!({
            "resourceType": "Encounter",
            "identifier": [{"system": visit_system(cfg), "value": visit}],
            "status": "planned",
            "class": class_coding(&pv1, event)?,
            "subject": reference("Patient", &patient_id),
        }),
        None => {
            return Err(MapError::content(
                204,
                Some("PV1-19"),
                format!(
                    "PV1-19 visit number '{visit}' is not known (ADT^{event} needs an existing encounter)"
                ),
            ));
        }
    };
    enc["subject"] = reference("Patient", &patient_id);
    let when = event_time(msg)?;
    let when_s = when.as_ref().map(Ts::date_time);
    let mut note = String::new();

    match event {
        "A01" | "A04" => {
            enc["status"] = json!("in-progress");
            enc["class"] = class_coding(&pv1, event)?;
            let start = pv1.ts(44)?.map(|t| t.date_time()).or(when_s.clone());
            if let Some(s) = &start {
                enc["period"]["start"] = json!(s);
            }
            if let Some((loc_id, path, is_bed)) = location_chain(&pv1, 3, records, cfg)? {
                move_to(
                    &mut enc,
                    &loc_id,
                    &path,
                    start.as_deref(),
                    "active",
                    records,
                )?;
                if is_bed {
                    set_bed_status(records, &loc_id, "O")?;
                }
                note = format!(" at {path}");
            }
            visit_fields(&mut enc, &pv1, records, cfg)?;
        }
        "A05" => {
            if enc["status"] == "planned" {
                enc["class"] = class_coding(&pv1, event)?;
                let pv2 = Seg::first(msg, "PV2");
                let expected = match pv2 {
                    Some(p) => p.ts(8)?,
                    None => None,
                };
                let start = match expected {
                    Some(t) => Some(t.date_time()),
                    None => pv1.ts(44)?.map(|t| t.date_time()),
                };
                if let Some(s) = start {
                    enc["period"]["start"] = json!(s);
                }
                if let Some((loc_id, path, _)) = location_chain(&pv1, 3, records, cfg)? {
                    enc["location"] = json!([{
                        "location": {"reference": format!("Location/{loc_id}"), "display": path},
                        "status": "planned"}]);
                    note = format!(" for {path}");
                }
            }
            visit_fields(&mut enc, &pv1, records, cfg)?;
        }
        "A02" => {
            let Some((loc_id, path, is_bed)) = location_chain(&pv1, 3, records, cfg)? else {
                return Err(MapError::content(
                    101,
                    Some("PV1-3"),
                    format!(
                        "ADT^A02 for visit '{visit}' needs the new location in PV1-3, which is empty"
                    ),
                ));
            };
            let previous = active_location(&enc);
            if previous.as_deref() != Some(&format!("Location/{loc_id}")) {
                move_to(
                    &mut enc,
                    &loc_id,
                    &path,
                    when_s.as_deref(),
                    "active",
                    records,
                )?;
                if is_bed {
                    set_bed_status(records, &loc_id, "O")?;
                }
            }
            note = format!(" to {path}");
            visit_fields(&mut enc, &pv1, records, cfg)?;
        }
        "A03" => {
            enc["status"] = json!("finished");
            let end = pv1.ts(45)?.map(|t| t.date_time()).or(when_s.clone());
            if let Some(e) = &end {
                enc["period"]["end"] = json!(e);
            }
            if let Some(prev) = active_location(&enc) {
                close_active(&mut enc, end.as_deref());
                free_bed(records, &prev, "H")?;
            }
            if let Some(r) = pv1.reps(36).first()
                && let Some(d) = table_concept(r, "http://terminology.hl7.org/CodeSystem/v2-0112")
            {
                enc["hospitalization"]["dischargeDisposition"] = d;
            }
            visit_fields(&mut enc, &pv1, records, cfg)?;
        }
        "A08" => {
            if pv1.v(2).is_some() {
                enc["class"] = class_coding(&pv1, event)?;
            }
            visit_fields(&mut enc, &pv1, records, cfg)?;
        }
        "A11" => {
            enc["status"] = json!("entered-in-error");
            if let Some(prev) = active_location(&enc) {
                close_active(&mut enc, when_s.as_deref());
                free_bed(records, &prev, "U")?;
            }
        }
        "A12" => {
            let here = location_chain(&pv1, 3, records, cfg)?;
            let current = active_location(&enc);
            let already = match (&here, &current) {
                (Some((id, _, _)), Some(c)) => c == &format!("Location/{id}"),
                _ => false,
            };
            if !already {
                let entries = enc["location"].as_array().map_or(0, Vec::len);
                if entries < 2 {
                    return Err(MapError::content(
                        204,
                        Some("PV1-19"),
                        format!("PV1-19 visit '{visit}' has no transfer to cancel"),
                    ));
                }
                let mut locs = enc["location"].as_array().cloned().unwrap_or_default();
                let cancelled = locs.pop();
                if let Some(c) = cancelled
                    .as_ref()
                    .and_then(|c| c["location"]["reference"].as_str())
                {
                    free_bed(records, c, "U")?;
                }
                if let Some(last) = locs.last_mut() {
                    reopen(last);
                    if let Some(r) = last["location"]["reference"].as_str() {
                        occupy_bed(records, r)?;
                    }
                }
                enc["location"] = Value::Array(locs);
            }
            note = active_location(&enc)
                .map(|l| format!(" back at {l}"))
                .unwrap_or_default();
        }
        "A13" => {
            if enc["status"] == "finished" {
                enc["status"] = json!("in-progress");
                remove(&mut enc["period"], "end");
                remove(&mut enc["hospitalization"], "dischargeDisposition");
                if let Some(last) = enc["location"].as_array_mut().and_then(|l| l.last_mut()) {
                    reopen(last);
                    if let Some(r) = last["location"]["reference"].as_str() {
                        let r = r.to_owned();
                        occupy_bed(records, &r)?;
                    }
                }
            }
        }
        _ => {
            return Err(MapError::unsupported(
                201,
                format!("MSH-9 ADT^{event} is not mapped"),
            ));
        }
    }
    tidy(&mut enc);
    let status = enc["status"].as_str().unwrap_or_default().to_owned();
    let enc_id = records.save(enc)?;
    Ok(Applied {
        summary: format!(
            "ADT^{event}: Patient/{patient_id}, Encounter/{enc_id} ({visit}) {status}{note}"
        ),
        patient_id: Some(patient_id),
    })
}

fn remove(v: &mut Value, key: &str) {
    if let Some(o) = v.as_object_mut() {
        o.shift_remove(key);
    }
}

/// Drops empty objects left behind (`period`, `hospitalization`).
fn tidy(enc: &mut Value) {
    for k in ["period", "hospitalization"] {
        if enc[k].as_object().is_some_and(Map::is_empty) || enc[k].is_null() {
            remove(enc, k);
        }
    }
}

/// PV1-2 patient class (table 0004) → Encounter.class (v3 ActCode); empty,
/// `N` and `U` take the event's default.
fn class_coding(pv1: &Seg<'_, '_>, event: &str) -> Result<Value, MapError> {
    let given = pv1.v(2).map(|c| c.to_ascii_uppercase());
    let code = match given.as_deref() {
        Some("I") | Some("B") => "IMP",
        Some("E") => "EMER",
        Some("O") | Some("R") | Some("C") => "AMB",
        Some("P") => "PRENC",
        Some("N") | Some("U") | None => match event {
            "A04" => "AMB",
            "A05" => "PRENC",
            _ => "IMP",
        },
        Some(other) => {
            return Err(MapError::content(
                103,
                Some(&pv1.loc(2)),
                format!(
                    "{} patient class '{other}' is not in HL7 table 0004 (E, I, O, P, R, B, C, N, U)",
                    pv1.loc(2)
                ),
            ));
        }
    };
    let display = match code {
        "IMP" => "inpatient encounter",
        "EMER" => "emergency",
        "AMB" => "ambulatory",
        _ => "pre-admission",
    };
    Ok(json!({"system": V3_ACT_CODE, "code": code, "display": display}))
}

/// Consultants, hospital service, admit source: present fields replace.
fn visit_fields(
    enc: &mut Value,
    pv1: &Seg<'_, '_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
) -> Result<(), MapError> {
    for (field, code, display) in [
        (7, "ATND", "attender"),
        (8, "REF", "referrer"),
        (17, "ADM", "admitter"),
    ] {
        let reps = pv1.reps(field);
        if !pv1.is_null(field) && reps.is_empty() {
            continue;
        }
        let mut refs = Vec::new();
        for r in &reps {
            if let Some(p) = practitioner(r, records, cfg)? {
                refs.push(p);
            }
        }
        if refs.is_empty() && !pv1.is_null(field) {
            continue;
        }
        let mut parts: Vec<Value> = enc["participant"].as_array().cloned().unwrap_or_default();
        parts.retain(|p| p["type"][0]["coding"][0]["code"] != code);
        for r in refs {
            parts.push(json!({
                "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": code, "display": display}]}],
                "individual": r}));
        }
        if parts.is_empty() {
            remove(enc, "participant");
        } else {
            enc["participant"] = Value::Array(parts);
        }
    }
    if pv1.is_null(10) {
        remove(enc, "serviceType");
    } else if let Some(r) = pv1.reps(10).first()
        && let Some(c) = table_concept(r, "http://terminology.hl7.org/CodeSystem/v2-0069")
    {
        enc["serviceType"] = c;
    }
    if pv1.is_null(14) {
        remove(&mut enc["hospitalization"], "admitSource");
    } else if let Some(r) = pv1.reps(14).first()
        && let Some(c) = table_concept(r, "http://terminology.hl7.org/CodeSystem/v2-0023")
    {
        enc["hospitalization"]["admitSource"] = c;
    }
    Ok(())
}

/// The reference of the active location entry.
fn active_location(enc: &Value) -> Option<String> {
    enc["location"]
        .as_array()?
        .iter()
        .rev()
        .find(|l| l["status"] == "active")
        .and_then(|l| l["location"]["reference"].as_str())
        .map(str::to_owned)
}

/// Completes the active location entries at `end`.
fn close_active(enc: &mut Value, end: Option<&str>) {
    if let Some(locs) = enc["location"].as_array_mut() {
        for l in locs.iter_mut().filter(|l| l["status"] == "active") {
            l["status"] = json!("completed");
            if let Some(e) = end {
                l["period"]["end"] = json!(e);
            }
        }
    }
}

/// Makes a location entry active again (no end).
fn reopen(entry: &mut Value) {
    entry["status"] = json!("active");
    if let Some(p) = entry.get_mut("period") {
        remove(p, "end");
        if p.as_object().is_some_and(Map::is_empty) {
            remove(entry, "period");
        }
    }
}

/// Moves the encounter to a location: the active entry is completed at
/// `at` and a new entry with `status` is appended (no change when the patient
/// is already there).
fn move_to(
    enc: &mut Value,
    loc_id: &str,
    path: &str,
    at: Option<&str>,
    status: &str,
    records: &mut dyn Records,
) -> Result<(), MapError> {
    let reference = format!("Location/{loc_id}");
    let current = active_location(enc);
    if current.as_deref() == Some(reference.as_str()) {
        return Ok(());
    }
    if let Some(prev) = current {
        close_active(enc, at);
        free_bed(records, &prev, "H")?;
    }
    let mut entry =
        json!({"location": {"reference": reference, "display": path}, "status": status});
    if let Some(a) = at {
        entry["period"] = json!({"start": a});
    }
    match enc["location"].as_array_mut() {
        Some(l) => l.push(entry),
        None => enc["location"] = json!([entry]),
    }
    Ok(())
}

/// Sets a bed's operationalStatus (table 0116) when the location is a bed.
fn set_bed_status(records: &mut dyn Records, loc_id: &str, code: &str) -> Result<(), MapError> {
    let Some(mut loc) = records.read("Location", loc_id)? else {
        return Ok(());
    };
    if loc["physicalType"]["coding"][0]["code"] != "bd" {
        return Ok(());
    }
    let display = match code {
        "O" => "Occupied",
        "H" => "Housekeeping",
        "U" => "Unoccupied",
        "C" => "Closed",
        "I" => "Isolated",
        _ => "Contaminated",
    };
    let new = json!({"system": BED_STATUS, "code": code, "display": display});
    if loc["operationalStatus"] != new {
        loc["operationalStatus"] = new;
        records.save(loc)?;
    }
    Ok(())
}

fn loc_id_of(reference: &str) -> Option<&str> {
    reference.strip_prefix("Location/")
}

fn free_bed(records: &mut dyn Records, reference: &str, code: &str) -> Result<(), MapError> {
    match loc_id_of(reference) {
        Some(id) => set_bed_status(records, id, code),
        None => Ok(()),
    }
}

fn occupy_bed(records: &mut dyn Records, reference: &str) -> Result<(), MapError> {
    free_bed(records, reference, "O")
}

/// PL (ward^room^bed^facility) → the Location hierarchy site → ward → room
/// → bed, each found or created by `{base}/location|<path>`. Returns the most
/// specific level: (id, path, is a bed).
pub(crate) fn location_chain(
    seg: &Seg<'_, '_>,
    field: usize,
    records: &mut dyn Records,
    cfg: &MappingConfig,
) -> Result<Option<(String, String, bool)>, MapError> {
    let Some(rep) = seg.reps(field).into_iter().next() else {
        return Ok(None);
    };
    let levels = [
        (rc(&rep, 4), "si", "Site"),
        (rc(&rep, 1), "wa", "Ward"),
        (rc(&rep, 2), "ro", "Room"),
        (rc(&rep, 3), "bd", "Bed"),
    ];
    let system = format!("{}/location", cfg.identifier_base);
    let mut path = String::new();
    let mut parent: Option<(String, String)> = None;
    let mut last: Option<(String, String, bool)> = None;
    for (name, code, display) in levels {
        let Some(name) = name else { continue };
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&name);
        let id = match records.find_by_identifier("Location", &system, &path)? {
            Some(l) => id_of(&l),
            None => {
                let mut l = json!({
                    "resourceType": "Location",
                    "identifier": [{"system": system, "value": path}],
                    "status": "active",
                    "name": name,
                    "mode": "instance",
                    "physicalType": {"coding": [{"system": PHYSICAL_TYPE, "code": code, "display": display}]},
                });
                if let Some((pid, ppath)) = &parent {
                    l["partOf"] = json!({"reference": format!("Location/{pid}"), "display": ppath});
                }
                records.save(l)?
            }
        };
        parent = Some((id.clone(), path.clone()));
        last = Some((id, path.clone(), code == "bd"));
    }
    Ok(last)
}
