//! Appointment → SIU^S12..S26.

use serde_json::Value;

use super::datatypes::{ce, ce_of, clinician_id, dtm_of, number, xcn};
use super::{
    Ctx, Planned, Rep, Seg, arr, identifier_value, patient, split_reference, str_of, visit,
};
use crate::{MapError, codes};

fn booked(status: &str) -> bool {
    matches!(status, "booked" | "pending" | "arrived" | "checked-in")
}

pub(super) fn plan(
    ctx: &mut Ctx,
    before: Option<&Value>,
    after: &Value,
) -> Result<Option<Planned>, MapError> {
    let status = str_of(after, "status").unwrap_or("");
    let event = match before {
        None if booked(status) => "S12",
        None => return Ok(None),
        Some(b) => {
            let old = str_of(b, "status").unwrap_or("");
            let void = |s: &str| matches!(s, "cancelled" | "entered-in-error");
            if status == "entered-in-error" && !void(old) {
                // Deleted (recorded in error), as inbound reads S17.
                "S17"
            } else if void(status) && !void(old) {
                "S15"
            } else if status == "noshow" && old != "noshow" {
                "S26"
            } else if matches!(old, "proposed" | "waitlist" | "") && booked(status) {
                "S12"
            } else if !booked(status) && !booked(old) && status != "fulfilled" {
                // Never booked, or already cancelled / no-show: not news.
                return Ok(None);
            } else if b.get("start") != after.get("start") || b.get("end") != after.get("end") {
                "S13"
            } else if body(ctx, b)? == body(ctx, after)? {
                return Ok(None);
            } else {
                "S14"
            }
        }
    };
    let mut segments = body(ctx, after)?;
    // PID/PD1 go after SCH and its NTEs, before the resources (RGS...).
    let at = segments
        .iter()
        .position(|s| s.id == "RGS")
        .unwrap_or(segments.len());
    let mut patient_id = None;
    if let Some(actor) = arr(after, "participant")
        .iter()
        .filter_map(|p| p.get("actor"))
        .find(|a| is_patient_reference(a))
    {
        let patient = ctx.required_patient(after, Some(actor), "patient participant")?;
        patient_id = str_of(&patient, "id").map(str::to_owned);
        let pid = patient::segments(ctx, &patient)?;
        segments.splice(at..at, pid);
    }
    Ok(Some(Planned {
        code: "SIU",
        event,
        structure: "SIU_S12",
        segments,
        patient_id,
    }))
}

/// SCH-6: the cancellation reason of a cancelled appointment, else the
/// first reason (as inbound reads it back).
fn event_reason(appt: &Value) -> Rep {
    let cancelled = str_of(appt, "status") == Some("cancelled");
    match appt.get("cancelationReason") {
        Some(r) if cancelled => ce(r),
        _ => arr(appt, "reasonCode").first().map(ce).unwrap_or_default(),
    }
}

fn is_patient_reference(actor: &Value) -> bool {
    str_of(actor, "type") == Some("Patient")
        || str_of(actor, "reference")
            .and_then(split_reference)
            .is_some_and(|(t, _)| t == "Patient")
}

/// SCH, NTEs, RGS, AIS, AILs and AIPs of an Appointment.
fn body(ctx: &mut Ctx, appt: &Value) -> Result<Vec<Seg>, MapError> {
    let base = &ctx.cfg.identifier_base;
    let id = str_of(appt, "id");
    let placer = identifier_value(appt, &format!("{base}/placer-appointment")).or(id);
    let filler = identifier_value(appt, &format!("{base}/filler-appointment")).or(id);
    let start = dtm_of(appt, "start");
    let end = dtm_of(appt, "end");
    let status = str_of(appt, "status").map(|s| match s {
        "proposed" | "pending" => "Pending",
        "booked" => "Booked",
        "arrived" | "checked-in" => "Started",
        "fulfilled" => "Complete",
        "cancelled" => "Cancelled",
        "noshow" => "Noshow",
        "entered-in-error" => "Deleted",
        "waitlist" => "Waitlist",
        other => other,
    });
    let mut sch = Seg::new("SCH");
    sch.opt(1, placer)
        .opt(2, filler)
        .rep(codes::SCH_REASON, event_reason(appt))
        .rep(codes::SCH_APPOINTMENT_TYPE, ce_of(appt, "appointmentType"));
    if let Some(m) = appt.get("minutesDuration").and_then(number) {
        sch.text(9, m).text(10, "min");
    }
    sch.rep(11, Rep::new().opt(4, start.clone()).opt(5, end))
        .opt(25, status);
    let mut out = vec![sch];
    for (i, text) in ["description", "comment"]
        .iter()
        .filter_map(|k| str_of(appt, k))
        .enumerate()
    {
        let mut nte = Seg::new("NTE");
        nte.text(1, (i + 1).to_string()).text(3, text);
        out.push(nte);
    }
    let mut rgs = Seg::new("RGS");
    rgs.text(1, "1");
    out.push(rgs);
    if let Some(service) = arr(appt, "serviceType").first() {
        let mut ais = Seg::new("AIS");
        ais.text(1, "1").rep(3, ce(service)).opt(4, start.clone());
        out.push(ais);
    }
    // SIU_S12 orders the resource groups: AIS, AIG, AIL..., AIP...
    let (mut ails, mut aips) = (Vec::new(), Vec::new());
    for p in arr(appt, "participant") {
        let Some(actor) = p.get("actor") else {
            continue;
        };
        let kind = str_of(actor, "type").or_else(|| {
            str_of(actor, "reference")
                .and_then(split_reference)
                .map(|(t, _)| t)
        });
        match kind {
            Some("Location") => {
                let mut ail = Seg::new("AIL");
                ail.text(1, (ails.len() + 1).to_string())
                    .rep(3, visit::point_of_care(ctx, appt, actor)?)
                    .opt(6, start.clone());
                ails.push(ail);
            }
            Some("Practitioner" | "PractitionerRole") => {
                let person = match ctx.practitioner(appt, actor)? {
                    Some(pr) => xcn(&pr, clinician_id(ctx.cfg, &pr)),
                    None => Rep::new().opt(2, str_of(actor, "display")),
                };
                let mut aip = Seg::new("AIP");
                aip.text(1, (aips.len() + 1).to_string())
                    .rep(3, person)
                    .rep(4, arr(p, "type").first().map(ce).unwrap_or_default())
                    .opt(6, start.clone());
                aips.push(aip);
            }
            _ => {}
        }
    }
    out.extend(ails);
    out.extend(aips);
    Ok(out)
}
