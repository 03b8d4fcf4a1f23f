//! SIU^S12–S15 (and S17, S26) → Appointment (see the rules in the module
//! doc of `inbound`).

use serde_json::{Value, json};
use wardline_hl7::Message;

use crate::{MapError, MappingConfig, Records, codes};

use super::Applied;
use super::adt::location_chain;
use super::patient::{self, Mode};
use super::ts::Ts;
use super::util::{Seg, codeable, practitioner, rc, reference};

fn minutes_per(unit: &str) -> Option<i64> {
    Some(match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "min" | "mins" | "minute" | "minutes" => 1,
        "h" | "hr" | "hrs" | "hour" | "hours" => 60,
        "d" | "day" | "days" => 1440,
        "s" | "sec" | "secs" | "second" | "seconds" => 0,
        _ => return None,
    })
}

/// Duration (minutes) from a number field and a units (CE) field.
fn duration(seg: &Seg<'_, '_>, num: usize, units: usize) -> Result<Option<i64>, MapError> {
    let Some(n) = seg.v(num) else { return Ok(None) };
    let value: f64 = n.parse().map_err(|_| {
        MapError::content(
            102,
            Some(&seg.loc(num)),
            format!("{} duration '{n}' is not a number", seg.loc(num)),
        )
    })?;
    let unit = seg.v(units).or_else(|| seg.c(units, 2)).unwrap_or_default();
    let per = minutes_per(&unit).ok_or_else(|| {
        MapError::content(
            103,
            Some(&seg.loc(units)),
            format!(
                "{} duration unit '{unit}' is not minutes, hours, days or seconds",
                seg.loc(units)
            ),
        )
    })?;
    if per == 0 {
        return Ok(Some((value / 60.0).round() as i64));
    }
    Ok(Some((value * per as f64).round() as i64))
}

pub(crate) fn apply(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    event: &str,
) -> Result<Applied, MapError> {
    let Some(sch) = Seg::first(msg, "SCH") else {
        return Err(MapError::content(
            101,
            Some("SCH-1"),
            format!("SIU^{event} has no SCH segment, so no appointment id (SCH-1/SCH-2)"),
        ));
    };
    let placer = sch.v(1);
    let filler = sch.v(2);
    let placer_sys = format!("{}/placer-appointment", cfg.identifier_base);
    let filler_sys = format!("{}/filler-appointment", cfg.identifier_base);
    if placer.is_none() && filler.is_none() {
        return Err(MapError::content(
            101,
            Some("SCH-1"),
            "SCH-1 placer and SCH-2 filler appointment ids are both empty".to_string(),
        ));
    }
    let patient_id = patient::upsert(msg, records, cfg, Mode::FindOrCreate)?;
    let mut found = None;
    if let Some(f) = &filler {
        found = records.find_by_identifier("Appointment", &filler_sys, f)?;
    }
    if found.is_none()
        && let Some(p) = &placer
    {
        found = records.find_by_identifier("Appointment", &placer_sys, p)?;
    }
    let mut appt = match found {
        Some(a) => a,
        None if event == "S12" => json!({"resourceType": "Appointment", "status": "booked"}),
        None => {
            let (loc, v) = match (&filler, &placer) {
                (Some(f), _) => ("SCH-2", f.clone()),
                (None, Some(p)) => ("SCH-1", p.clone()),
                _ => ("SCH-2", String::new()),
            };
            return Err(MapError::content(
                204,
                Some(loc),
                format!("{loc} appointment '{v}' is not known (SIU^{event} needs an existing one)"),
            ));
        }
    };
    let mut ids: Vec<Value> = appt["identifier"].as_array().cloned().unwrap_or_default();
    for (sys, v) in [(&placer_sys, &placer), (&filler_sys, &filler)] {
        if let Some(v) = v
            && !ids.iter().any(|i| i["system"] == *sys && i["value"] == *v)
        {
            ids.push(json!({"system": sys, "value": v}));
        }
    }
    appt["identifier"] = Value::Array(ids);
    match event {
        "S12" | "S13" => appt["status"] = json!("booked"),
        "S15" => appt["status"] = json!("cancelled"),
        "S17" => appt["status"] = json!("entered-in-error"),
        "S26" => appt["status"] = json!("noshow"),
        _ => {}
    }
    // SCH-6 is the reason (the cancellation reason of a cancellation),
    // SCH-7 the appointment type (see `codes::SCH_APPOINTMENT_TYPE`).
    let reason = sch
        .reps(codes::SCH_REASON)
        .first()
        .and_then(|r| codeable(r, cfg));
    match (event, reason) {
        ("S15", Some(r)) => appt["cancelationReason"] = r,
        (_, Some(r)) => appt["reasonCode"] = json!([r]),
        _ => {}
    }
    if let Some(t) = sch
        .reps(codes::SCH_APPOINTMENT_TYPE)
        .first()
        .or(sch.reps(codes::SCH_TYPE_0277).first())
        .and_then(|r| codeable(r, cfg))
    {
        appt["appointmentType"] = t;
    }

    // Resources and times.
    let all = Seg::all(msg);
    let ais: Vec<Seg<'_, '_>> = all.iter().filter(|s| s.id() == "AIS").copied().collect();
    let mut start: Option<Ts> = None;
    let mut end: Option<Ts> = None;
    // Where the start was read (an S12 onto a booked slot is refused there).
    let mut start_at = String::new();
    if let Some(r) = sch.reps(11).first() {
        let ts_of = |c: usize| -> Result<Option<Ts>, MapError> {
            match rc(r, c) {
                Some(v) => super::ts::parse(&v).map(Some).ok_or_else(|| {
                    MapError::content(
                        102,
                        Some(&sch.loc(11)),
                        format!("{} timing '{v}' is not a valid HL7 timestamp", sch.loc(11)),
                    )
                }),
                None => Ok(None),
            }
        };
        start = ts_of(4)?;
        end = ts_of(5)?;
        start_at = sch.loc(11);
    }
    let mut minutes = None;
    for s in &ais {
        if start.is_none() {
            start = s.ts(4)?;
            start_at = s.loc(4);
        }
        if minutes.is_none() {
            minutes = duration(s, 7, 8)?;
        }
        if let Some(c) = s.reps(3).first().and_then(|r| codeable(r, cfg)) {
            appt["serviceType"] = json!([c]);
        }
    }
    if minutes.is_none() {
        minutes = duration(&sch, 9, 10)?;
    }
    let mut participants = vec![json!({
        "actor": reference("Patient", &patient_id), "required": "required", "status": "accepted"})];
    for s in all
        .iter()
        .filter(|s| matches!(s.id(), "AIG" | "AIL" | "AIP"))
    {
        let (start_field, actor) = match s.id() {
            "AIP" => (
                6,
                match s.reps(3).first() {
                    Some(r) => practitioner(r, records, cfg)?,
                    None => None,
                },
            ),
            "AIL" => (
                6,
                location_chain(s, 3, records, cfg)?.map(
                    |(id, path, _)| json!({"reference": format!("Location/{id}"), "display": path}),
                ),
            ),
            _ => (
                8,
                s.reps(3)
                    .first()
                    .and_then(|r| rc(r, 2).or_else(|| rc(r, 1)))
                    .map(|d| json!({"display": d})),
            ),
        };
        if start.is_none() {
            start = s.ts(start_field)?;
            start_at = s.loc(start_field);
        }
        if let Some(a) = actor {
            let mut p = json!({"actor": a, "required": "required", "status": "accepted"});
            let role = s.reps(4).first().and_then(|r| codeable(r, cfg));
            if let Some(role) = role {
                p["type"] = json!([role]);
            }
            participants.push(p);
        }
    }
    appt["participant"] = Value::Array(participants);
    if end.is_none()
        && let (Some(s), Some(m)) = (&start, minutes)
    {
        end = s.plus_minutes(m);
    }
    if let Some(o) = appt.as_object_mut() {
        o.shift_remove("requestedPeriod");
    }
    match (&start, &end) {
        (Some(s), Some(e)) => {
            appt["start"] = json!(s.instant());
            appt["end"] = json!(e.instant());
            if let (Some(a), Some(b)) = (s.to_offset_date_time(), e.to_offset_date_time()) {
                let mins = (b - a).whole_minutes();
                if mins > 0 {
                    appt["minutesDuration"] = json!(mins);
                }
            }
        }
        (Some(s), None) => {
            if let Some(o) = appt.as_object_mut() {
                o.shift_remove("start");
                o.shift_remove("end");
            }
            appt["requestedPeriod"] = json!([{"start": s.date_time()}]);
        }
        _ => {}
    }
    if matches!(event, "S12" | "S13" | "S14") {
        link_slot(&mut appt, records)?;
    }
    let status = appt["status"].as_str().unwrap_or_default().to_owned();
    let id = records.save(appt).map_err(|e| slot_refused(e, &start_at))?;
    Ok(Applied {
        summary: format!("SIU^{event}: Patient/{patient_id}, Appointment/{id} {status}"),
        patient_id: Some(patient_id),
    })
}

/// Books the appointment into the clinic slot at its place (the AIL
/// Location) and start, when Wardline has one there
/// (`wardline_workflow::outpatients::SLOT_AT_SYSTEM`): the booking rules of
/// the clinics (`outpatients::SlotRule`: one appointment per slot) then
/// hold for the message as for a booking made on the pages. A time with no
/// slot leaves the appointment outside the clinics, as before.
fn link_slot(appt: &mut Value, records: &mut dyn Records) -> Result<(), MapError> {
    use wardline_workflow::outpatients::{SLOT_AT_SYSTEM, slot_at_key};
    let location = appt["participant"].as_array().and_then(|ps| {
        ps.iter()
            .find_map(|p| wardline_workflow::fhir::reference_id(&p["actor"], "Location"))
    });
    let key = match (location, appt["start"].as_str()) {
        (Some(l), Some(s)) => slot_at_key(l, s),
        _ => None,
    };
    let slot = match key {
        Some(k) => records.find_by_identifier("Slot", SLOT_AT_SYSTEM, &k)?,
        None => None,
    };
    match slot.as_ref().and_then(|s| s["id"].as_str()) {
        Some(id) => appt["slot"] = json!([{"reference": format!("Slot/{id}")}]),
        None => {
            if let Some(o) = appt.as_object_mut() {
                o.shift_remove("slot");
            }
        }
    }
    Ok(())
}

/// The clinics' refusal of a booked slot, named at the field the start was
/// read from (`SCH-11`, `AIS-4`, …): HL7 table 0357 code 205, duplicate key.
fn slot_refused(e: MapError, start_at: &str) -> MapError {
    if e.kind == crate::MapErrorKind::Content && e.text.contains("Appointment.slot") {
        let why = e
            .text
            .split_once("duplicate: ")
            .or_else(|| e.text.split_once("business-rule: "))
            .or_else(|| e.text.split_once("not-found: "))
            .map_or(e.text.as_str(), |(_, w)| w);
        let at = if start_at.is_empty() {
            "SCH-11"
        } else {
            start_at
        };
        return MapError::content(
            205,
            Some(at),
            format!("{at}: the clinic slot at this time is refused: {why}"),
        );
    }
    e
}
