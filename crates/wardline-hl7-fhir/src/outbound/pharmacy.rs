//! MedicationAdministration → RAS^O17 (pharmacy/treatment administration,
//! HL7 v2.5.1), for destinations configured `;pharmacy=ras`. The mapping
//! is in the module documentation of [`super`] ("MedicationAdministration").

use serde_json::Value;
use wardline_workflow::medicines::{DMD_SYSTEM, LOCAL_MEDICINE_SYSTEM, SNOMED_SYSTEM};

use super::datatypes::{ce, clinician_id, dtm_of, number, system_code, xcn};
use super::{Ctx, Planned, Rep, Seg, arr, describe, identifier_value, patient, str_of, visit};
use crate::MapError;
use crate::inbound::pharmacy::{ROUTES_0162, placer_system};

/// A statused administration a pharmacy system is told of: given
/// (`completed`), not given (`not-done`) or stopped part way (`stopped`).
fn reportable(status: &str) -> bool {
    matches!(status, "completed" | "not-done" | "stopped")
}

/// RXA-21 (table 0323) for a change, or `None` when it gives no message:
/// created reportable → `A`; updated to entered-in-error after having been
/// reported → `D`; updated from unreported to reportable → `A`; any other
/// update that changes what RXA/RXR/ORC carry → `U`.
fn action(
    ctx: &mut Ctx,
    before: Option<&Value>,
    after: &Value,
) -> Result<Option<&'static str>, MapError> {
    let now = str_of(after, "status").unwrap_or("");
    let Some(b) = before else {
        return Ok(reportable(now).then_some("A"));
    };
    let was = str_of(b, "status").unwrap_or("");
    Ok(match (reportable(was), reportable(now)) {
        (true, false) if now == "entered-in-error" => Some("D"),
        (false, true) => Some("A"),
        (true, true) if body(ctx, b)? != body(ctx, after)? => Some("U"),
        _ => None,
    })
}

pub(super) fn plan(
    ctx: &mut Ctx,
    before: Option<&Value>,
    after: &Value,
) -> Result<Option<Planned>, MapError> {
    let Some(code) = action(ctx, before, after)? else {
        return Ok(None);
    };
    // A withdrawal describes the record as it was reported.
    let shown = if code == "D" {
        before.unwrap_or(after)
    } else {
        after
    };
    let patient = ctx.required_patient(shown, shown.get("subject"), "subject")?;
    let mut segments = patient::segments(ctx, &patient)?;
    if let Some(r) = shown.get("context")
        && let Some(enc) = ctx.resolve_as(shown, r, "Encounter")?
    {
        segments.push(visit::pv1(ctx, &enc, None)?);
    }
    let mut rest = body(ctx, shown)?;
    for s in &mut rest {
        if s.id == "RXA" {
            s.text(21, code);
        }
    }
    segments.extend(rest);
    Ok(Some(Planned {
        code: "RAS",
        event: "O17",
        structure: "RAS_O17",
        segments,
        patient_id: str_of(&patient, "id").map(str::to_owned),
    }))
}

/// ORC, RXA (without RXA-21) and RXR of an administration.
fn body(ctx: &mut Ctx, ma: &Value) -> Result<Vec<Seg>, MapError> {
    let me = describe(ma);
    // The prescription: ORC-2/3 and the patient check.
    let Some(request) = ma.get("request") else {
        return Err(MapError::content(
            101,
            Some("ORC-2"),
            format!("{me} has no request: the pharmacy system needs the prescription"),
        ));
    };
    let Some(mr) = ctx.resolve_as(ma, request, "MedicationRequest")? else {
        return Err(MapError::content(
            204,
            Some("ORC-2"),
            format!("{me} request is not a MedicationRequest in the record"),
        ));
    };
    let subject = |v: &Value| {
        v.get("subject")
            .and_then(|s| str_of(s, "reference"))
            .map(str::to_owned)
    };
    if subject(ma) != subject(&mr) {
        return Err(MapError::content(
            207,
            Some("PID-3"),
            format!(
                "{me} is for {} but its prescription {} is for {}: not sent",
                subject(ma).unwrap_or_default(),
                describe(&mr),
                subject(&mr).unwrap_or_default()
            ),
        ));
    }
    let mr_id = str_of(&mr, "id").unwrap_or_default().to_owned();
    let (placer, filler) = match identifier_value(&mr, &placer_system(ctx.cfg)) {
        // Ordered in another system by RDE^O11: its number is the placer's,
        // the prescription on Wardline's chart the filler's.
        Some(p) => (p.to_owned(), Some(mr_id)),
        None => (mr_id, None),
    };
    let requester = match mr.get("requester") {
        Some(r) => match ctx.practitioner(&mr, r)? {
            Some(p) => xcn(&p, clinician_id(ctx.cfg, &p)),
            None => Rep::new().opt(2, str_of(r, "display")),
        },
        None => Rep::new(),
    };
    let mut orc = Seg::new("ORC");
    orc.text(1, "RE")
        .text(2, &placer)
        .opt(3, filler.as_deref())
        .opt(9, dtm_of(&mr, "authoredOn"))
        .rep(12, requester);

    // The medicine given.
    let medicine = match ma.get("medicationReference") {
        Some(r) => ctx
            .resolve_as(ma, r, "Medication")?
            .and_then(|m| m.get("code").cloned()),
        None => ma.get("medicationCodeableConcept").cloned(),
    };
    let Some(medicine) = medicine.map(|m| medicine_ce(&m)).filter(|r| !r.is_empty()) else {
        return Err(MapError::content(
            101,
            Some("RXA-5"),
            format!("{me} names no medicine the record holds"),
        ));
    };
    let (start, end) = match (dtm_of(ma, "effectiveDateTime"), ma.get("effectivePeriod")) {
        (Some(t), _) => (Some(t.clone()), Some(t)),
        (None, Some(p)) => {
            let s = dtm_of(p, "start");
            (s.clone(), dtm_of(p, "end").or(s))
        }
        (None, None) => (None, None),
    };
    let Some(start) = start else {
        return Err(MapError::content(
            101,
            Some("RXA-3"),
            format!("{me} has no time given"),
        ));
    };
    let status = str_of(ma, "status").unwrap_or("");
    let dosage = ma.get("dosage").cloned().unwrap_or(Value::Null);
    let dose = dosage.get("dose");
    let given = status != "not-done";
    let amount = match dose.and_then(|d| d.get("value")).and_then(number) {
        Some(n) if given => n,
        // Nothing was given (or the amount is not recorded: HL7's 999).
        _ if given => "999".to_owned(),
        _ => "0".to_owned(),
    };
    let units = dose
        .filter(|_| given)
        .map(|d| {
            let unit = str_of(d, "unit");
            match (str_of(d, "code"), str_of(d, "system")) {
                (Some(c), s) => Rep::text(c).opt(2, unit).opt(3, s.map(system_code)),
                (None, _) => Rep::new().opt(1, unit),
            }
        })
        .unwrap_or_default();
    let performer = arr(ma, "performer")
        .iter()
        .find(|p| {
            p.get("function")
                .and_then(super::first_code)
                .is_none_or(|c| c == "performer")
        })
        .and_then(|p| p.get("actor"))
        .cloned();
    let provider = match performer {
        Some(a) => match ctx.practitioner(ma, &a)? {
            Some(p) => xcn(&p, clinician_id(ctx.cfg, &p)),
            None => Rep::new().opt(2, str_of(&a, "display")),
        },
        None => Rep::new(),
    };
    let batch = arr(ma, "extension")
        .iter()
        .find(|e| str_of(e, "url") == Some(wardline_workflow::medicines::BATCH_EXT))
        .and_then(|e| str_of(e, "valueString"));
    let reason = arr(ma, "statusReason").first().filter(|_| !given).map(ce);
    let omission = arr(ma, "statusReason")
        .first()
        .and_then(super::first_code)
        .unwrap_or("");
    let completion = match status {
        "completed" => "CP",
        "stopped" => "PA",
        _ if omission == "refused" => "RE",
        _ => "NA",
    };
    let mut rxa = Seg::new("RXA");
    rxa.text(1, "0")
        .text(2, "1")
        .text(3, &start)
        .opt(4, end)
        .rep(5, medicine)
        .text(6, amount)
        .rep(7, units)
        .rep(10, provider)
        .opt(15, batch.filter(|_| given))
        .rep(18, reason.unwrap_or_default())
        .text(20, completion);
    let route = dosage
        .get("route")
        .or_else(|| mr.pointer("/dosageInstruction/0/route"))
        .map(route_ce)
        .unwrap_or_default();
    let mut rxr = Seg::new("RXR");
    rxr.rep(1, route)
        .rep(2, dosage.get("site").map(ce).unwrap_or_default());
    Ok(vec![orc, rxa, rxr])
}

/// RXA-5: the dm+d code (`code^name^DMD`), or a local code (`code^name^L`,
/// table 0396 local general code), else the first coding as CE.
fn medicine_ce(code: &Value) -> Rep {
    let codings = arr(code, "coding");
    let pick = |system: &str| codings.iter().find(|c| str_of(c, "system") == Some(system));
    let text = str_of(code, "text");
    let one = |c: &Value, sys: &str| {
        Rep::new()
            .opt(1, str_of(c, "code"))
            .opt(2, str_of(c, "display").or(text))
            .c(3, sys)
    };
    if let Some(c) = pick(DMD_SYSTEM) {
        one(c, "DMD")
    } else if let Some(c) = pick(LOCAL_MEDICINE_SYSTEM) {
        one(c, "L")
    } else {
        ce(code)
    }
}

/// RXR-1: the table 0162 route when the SNOMED CT route has one (the codes
/// inbound RDE reads), with the SNOMED CT code as the alternate; else the
/// route as CE.
fn route_ce(route: &Value) -> Rep {
    let snomed = arr(route, "coding")
        .iter()
        .find(|c| str_of(c, "system") == Some(SNOMED_SYSTEM));
    if let Some(c) = snomed
        && let Some(code) = str_of(c, "code")
        && let Some((v2, _, name)) = ROUTES_0162.iter().find(|(_, s, _)| *s == code)
    {
        return Rep::text(v2)
            .c(2, str_of(c, "display").unwrap_or(name))
            .c(3, "HL70162")
            .c(4, code)
            .c(5, str_of(c, "display").unwrap_or(name))
            .c(6, "SCT");
    }
    ce(route)
}
