//! ADT → Patient, Encounter, Location (see the rules in the module doc of
//! `inbound`).

use serde_json::{Map, Value, json};
use wardline_hl7::Message;
use wardline_workflow::adt::beds::{self, Mover};
use wardline_workflow::adt::{AdtError, AdtErrorKind, BedState};

use crate::records::{RETRY, TxRecords, map_err};
use crate::{MapError, MappingConfig, Records, codes};

use super::Applied;
use super::patient::{self, Mode};
use super::ts::Ts;
use super::util::{
    PARTICIPATION_TYPE, Seg, V3_ACT_CODE, event_time, id_of, practitioner, rc, reference,
    table_concept,
};

const PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";

/// A refusal of the bed rules as the ACK's error, at the field the message
/// put the patient with (PV1-3).
fn refused(e: AdtError, location: &str) -> MapError {
    match e.kind {
        // NeedsReason never comes from a feed (placement concerns are asked
        // of a person only); were it to, it is the sender's content.
        AdtErrorKind::Conflict | AdtErrorKind::Invalid | AdtErrorKind::NeedsReason => {
            MapError::content(207, Some(location), e.message)
        }
        AdtErrorKind::NotFound => MapError::content(204, Some(location), e.message),
        AdtErrorKind::Concurrent => MapError::internal(format!("{RETRY}{}", e.message)),
        AdtErrorKind::Forbidden | AdtErrorKind::Store => MapError::internal(e.message),
    }
}

/// A visit in the wrong state for the event (A21 for a patient not in
/// progress, A22 for one not on leave): the sender's content, at PV1-19.
fn state_refused(e: AdtError, visit: &str, event: &str) -> MapError {
    match e.kind {
        AdtErrorKind::Conflict => MapError::content(
            207,
            Some("PV1-19"),
            format!("PV1-19 visit '{visit}' (ADT^{event}): {}", e.message),
        ),
        _ => refused(e, "PV1-19"),
    }
}

pub(crate) fn apply(
    msg: &Message<'_>,
    records: &mut TxRecords<'_, '_>,
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
    records: &mut TxRecords<'_, '_>,
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
    // The PMI's merge: every reference repointed, Provenance, unmerge; its
    // refusals (different NHS numbers, a retired survivor) are the sender's.
    wardline_workflow::pmi::merge_in(records.tx(), &source, &target, false).map_err(|e| {
        if e.status == 422 || e.status == 404 {
            MapError::content(
                if e.status == 404 { 204 } else { 207 },
                Some("MRG-1"),
                e.to_string(),
            )
        } else {
            map_err(e)
        }
    })?;
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
    records: &mut TxRecords<'_, '_>,
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
            "meta": {"profile": [wardline_workflow::adt::UK_CORE_ENCOUNTER]},
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
    let mover = Mover::Feed(cfg.bed_master);
    if let Some(id) = enc["id"].as_str() {
        records
            .tx()
            .lock(&[beds::key("Encounter", id)])
            .map_err(map_err)?;
    }
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
            if let Some((loc_id, path, _)) = location_chain(&pv1, 3, records, cfg)? {
                beds::enter(
                    records.tx(),
                    &mut enc,
                    &loc_id,
                    Some(&path),
                    start.as_deref(),
                    mover,
                )
                .map_err(|e| refused(e, "PV1-3"))?;
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
            let Some((loc_id, path, _)) = location_chain(&pv1, 3, records, cfg)? else {
                return Err(MapError::content(
                    101,
                    Some("PV1-3"),
                    format!(
                        "ADT^A02 for visit '{visit}' needs the new location in PV1-3, which is empty"
                    ),
                ));
            };
            beds::enter(
                records.tx(),
                &mut enc,
                &loc_id,
                Some(&path),
                when_s.as_deref(),
                mover,
            )
            .map_err(|e| refused(e, "PV1-3"))?;
            note = format!(" to {path}");
            visit_fields(&mut enc, &pv1, records, cfg)?;
        }
        "A03" => {
            enc["status"] = json!("finished");
            let end = pv1.ts(45)?.map(|t| t.date_time()).or(when_s.clone());
            if let Some(e) = &end {
                enc["period"]["end"] = json!(e);
            }
            beds::leave(records.tx(), &mut enc, end.as_deref(), BedState::Cleaning)
                .map_err(|e| refused(e, "PV1-3"))?;
            if let Some(r) = pv1.reps(36).first()
                && let Some(d) = table_concept(r, codes::DISCHARGE_DISPOSITION_SYSTEM)
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
            beds::leave(
                records.tx(),
                &mut enc,
                when_s.as_deref(),
                BedState::Available,
            )
            .map_err(|e| refused(e, "PV1-3"))?;
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
                beds::undo_move(records.tx(), &mut enc, mover).map_err(|e| refused(e, "PV1-3"))?;
            }
            note = active_location(&enc)
                .map(|l| format!(" back at {l}"))
                .unwrap_or_default();
        }
        "A06" | "A07" => {
            // Change of class: an outpatient (or emergency) becomes an
            // inpatient, or the reverse. The visit must still be open.
            let st = enc["status"].as_str().unwrap_or_default().to_owned();
            if matches!(st.as_str(), "finished" | "cancelled" | "entered-in-error") {
                return Err(MapError::content(
                    207,
                    Some("PV1-19"),
                    format!(
                        "PV1-19 visit '{visit}' is {st}, so its class cannot change (ADT^{event})"
                    ),
                ));
            }
            enc["class"] = class_coding(&pv1, event)?;
            let mut start = None;
            if st == "planned" {
                enc["status"] = json!("in-progress");
                start = pv1.ts(44)?.map(|t| t.date_time()).or(when_s.clone());
                if let Some(s) = &start {
                    enc["period"]["start"] = json!(s);
                }
            }
            // A PV1-3 other than where the patient is: they move there (an
            // A06 admits them to that bed), through the bed rules.
            if let Some((loc_id, path, _)) = location_chain(&pv1, 3, records, cfg)? {
                let at = start.or(when_s.clone());
                beds::enter(
                    records.tx(),
                    &mut enc,
                    &loc_id,
                    Some(&path),
                    at.as_deref(),
                    mover,
                )
                .map_err(|e| refused(e, "PV1-3"))?;
                note = format!(" at {path}");
            }
            visit_fields(&mut enc, &pv1, records, cfg)?;
        }
        "A21" => {
            beds::go_on_leave(&mut enc).map_err(|e| state_refused(e, &visit, event))?;
        }
        "A22" => {
            // A visit not on leave is refused for its state (PV1-19); one on
            // leave can only be refused for its bed (PV1-3).
            let on_leave = enc["status"] == "onleave";
            beds::back_from_leave(records.tx(), &mut enc, mover).map_err(|e| {
                if on_leave {
                    refused(e, "PV1-3")
                } else {
                    state_refused(e, &visit, event)
                }
            })?;
            note = active_location(&enc)
                .map(|l| format!(" back at {l}"))
                .unwrap_or_default();
        }
        "A38" => {
            // Cancel pre-admit: a planned visit that will not happen. A
            // pre-admission holds no bed (its location entry is only
            // `planned`), so no bed rule is involved.
            match enc["status"].as_str().unwrap_or_default() {
                "planned" => enc["status"] = json!("cancelled"),
                "cancelled" => {}
                other => {
                    return Err(MapError::content(
                        207,
                        Some("PV1-19"),
                        format!(
                            "PV1-19 visit '{visit}' is {other}, not a pre-admission: ADT^A38 cancels only a planned visit (A11 cancels an admission)"
                        ),
                    ));
                }
            }
        }
        "A13" => {
            if enc["status"] == "finished" {
                enc["status"] = json!("in-progress");
                remove(&mut enc["period"], "end");
                remove(&mut enc["hospitalization"], "dischargeDisposition");
                beds::return_to_last(records.tx(), &mut enc, mover)
                    .map_err(|e| refused(e, "PV1-3"))?;
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

/// PV1-2 patient class (table 0004) → Encounter.class (v3 ActCode,
/// [`codes::PATIENT_CLASS`]); empty, `N` and `U` take the event's default
/// (A04 and A07 AMB, A05 PRENC, else IMP).
fn class_coding(pv1: &Seg<'_, '_>, event: &str) -> Result<Value, MapError> {
    let given = pv1.v(2).map(|c| c.to_ascii_uppercase());
    let code = match given.as_deref() {
        Some("N") | Some("U") | None => match event {
            "A04" | "A07" => "AMB",
            "A05" => "PRENC",
            _ => "IMP",
        },
        Some(other) => codes::to_fhir(codes::PATIENT_CLASS, other).ok_or_else(|| {
            MapError::content(
                103,
                Some(&pv1.loc(2)),
                format!(
                    "{} patient class '{other}' is not in HL7 table 0004 ({}, N, U)",
                    pv1.loc(2),
                    codes::v2_codes(codes::PATIENT_CLASS)
                ),
            )
        })?,
    };
    let display = codes::patient_class_display(code);
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
        && let Some(c) = table_concept(r, codes::SERVICE_TYPE_SYSTEM)
    {
        enc["serviceType"] = c;
    }
    if pv1.is_null(14) {
        remove(&mut enc["hospitalization"], "admitSource");
    } else if let Some(r) = pv1.reps(14).first()
        && let Some(c) = table_concept(r, codes::ADMIT_SOURCE_SYSTEM)
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
