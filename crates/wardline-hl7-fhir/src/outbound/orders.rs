//! ServiceRequest → ORM^O01 or (a requisition) OML^O21, DiagnosticReport
//! (+ Observations) → ORU^R01.

use serde_json::Value;

use super::datatypes::{ce, ce_of, clinician_id, dtm, dtm_of, number, xcn};

use super::{Ctx, Planned, Rep, Seg, arr, first_code, identifier_value, patient, str_of, visit};
use crate::{MapError, codes};

/// PID, PD1 of the subject (required) and PV1 of the encounter (when it
/// resolves).
fn patient_and_visit(
    ctx: &mut Ctx,
    resource: &Value,
) -> Result<(Vec<Seg>, Option<String>), MapError> {
    let patient = ctx.required_patient(resource, resource.get("subject"), "subject")?;
    let mut segs = patient::segments(ctx, &patient)?;
    if let Some(r) = resource.get("encounter")
        && let Some(enc) = ctx.resolve_as(resource, r, "Encounter")?
    {
        segs.push(visit::pv1(ctx, &enc, None)?);
    }
    Ok((segs, str_of(&patient, "id").map(str::to_owned)))
}

fn notes(resource: &Value) -> Vec<Seg> {
    arr(resource, "note")
        .iter()
        .filter_map(|n| str_of(n, "text"))
        .enumerate()
        .map(|(i, t)| {
            let mut s = Seg::new("NTE");
            s.text(1, (i + 1).to_string()).text(3, t);
            s
        })
        .collect()
}

/// Placer order number of a ServiceRequest: its placer identifier, else its id.
fn placer(ctx: &Ctx, sr: &Value) -> Option<String> {
    let system = format!("{}/placer-order", ctx.cfg.identifier_base);
    identifier_value(sr, &system)
        .or_else(|| str_of(sr, "id"))
        .map(str::to_owned)
}

fn filler(ctx: &Ctx, resource: &Value) -> Option<String> {
    let system = format!("{}/filler-order", ctx.cfg.identifier_base);
    identifier_value(resource, &system).map(str::to_owned)
}

// ---- ServiceRequest → ORM^O01 / OML^O21 ----

/// ORC-1 for a change of a ServiceRequest, or `None` when the change is
/// not worth a message (see the module documentation of `outbound`).
fn order_control(
    ctx: &mut Ctx,
    before: Option<&Value>,
    after: &Value,
) -> Result<Option<&'static str>, MapError> {
    let status = str_of(after, "status").unwrap_or("");
    let voided = |s: &str| matches!(s, "revoked" | "entered-in-error");
    Ok(Some(match before {
        None if status == "draft" || voided(status) => return Ok(None),
        None => "NW",
        Some(b) => {
            let old = str_of(b, "status").unwrap_or("");
            if old == "draft" && status == "draft" {
                return Ok(None);
            } else if old == "draft" && !voided(status) {
                "NW"
            } else if old == "draft" {
                // Withdrawn before it was ever placed.
                return Ok(None);
            } else if voided(status) && !voided(old) {
                "CA"
            } else if old != status {
                "SC"
            } else if order_segments(ctx, b)? == order_segments(ctx, after)? {
                return Ok(None);
            } else {
                "XO"
            }
        }
    }))
}

pub(super) fn plan_order(
    ctx: &mut Ctx,
    before: Option<&Value>,
    after: &Value,
) -> Result<Option<Planned>, MapError> {
    let Some(control) = order_control(ctx, before, after)? else {
        return Ok(None);
    };
    let (mut segments, patient_id) = patient_and_visit(ctx, after)?;
    let mut body = order_segments(ctx, after)?;
    if let Some(orc) = body.first_mut() {
        orc.text(1, control);
    }
    segments.extend(body);
    Ok(Some(Planned {
        code: "ORM",
        event: "O01",
        structure: "ORM_O01",
        segments,
        patient_id,
    }))
}

/// The requisition (placer group number) of a ServiceRequest:
/// `{identifier_base}/requisition` in `requisition`, else in `identifier`.
pub(super) fn requisition(ctx: &Ctx, sr: &Value) -> Option<String> {
    let system = format!("{}/requisition", ctx.cfg.identifier_base);
    sr.get("requisition")
        .filter(|r| str_of(r, "system") == Some(system.as_str()))
        .and_then(|r| str_of(r, "value"))
        .or_else(|| identifier_value(sr, &system))
        .map(str::to_owned)
}

/// One OML^O21 for the changed ServiceRequests of one requisition (each
/// `(before, after)`), in the order given: an ORC (with its own ORC-1),
/// TQ1, OBR, NTEs, an OBX per answered question and an SPM per specimen of
/// each order that gives a message. `None` when none does.
pub(super) fn plan_oml(
    ctx: &mut Ctx,
    items: &[(Option<&Value>, &Value)],
) -> Result<Option<Planned>, MapError> {
    let mut body = Vec::new();
    let mut first: Option<&Value> = None;
    for (before, after) in items {
        let Some(control) = order_control(ctx, *before, after)? else {
            continue;
        };
        if first.is_none() {
            first = Some(after);
        }
        body.extend(oml_order(ctx, after, control)?);
    }
    let Some(first) = first else {
        return Ok(None);
    };
    let (mut segments, patient_id) = patient_and_visit(ctx, first)?;
    segments.extend(body);
    Ok(Some(Planned {
        code: "OML",
        event: "O21",
        structure: "OML_O21",
        segments,
        patient_id,
    }))
}

/// The order group of an OML^O21 (HL7 v2.5.1): ORC, TQ1, OBR, NTE, OBX
/// (questionnaire answers), SPM.
fn oml_order(ctx: &mut Ctx, sr: &Value, control: &str) -> Result<Vec<Seg>, MapError> {
    let mut segs = order_segments(ctx, sr)?;
    let group = requisition(ctx, sr);
    let priority = str_of(sr, "priority").and_then(|p| codes::to_v2(codes::PRIORITY, p));
    let start = dtm_of(sr, "occurrenceDateTime")
        .or_else(|| sr.get("occurrencePeriod").and_then(|p| dtm_of(p, "start")));
    let timed = priority.is_some() || start.is_some();
    let mut tq1 = Seg::new("TQ1");
    tq1.text(1, "1").opt(7, start).opt(9, priority);
    let mut out = Vec::new();
    for mut s in segs.drain(..) {
        match s.id {
            "ORC" => {
                s.text(1, control).opt(4, group.as_deref());
                // v2.5: timing is TQ1, not ORC-7/OBR-27.
                s.clear(7);
                out.push(s);
                if timed {
                    out.push(tq1.clone());
                }
            }
            "OBR" => {
                s.clear(27);
                out.push(s);
            }
            _ => out.push(s),
        }
    }
    out.extend(answers(ctx, sr)?);
    let mut n = 0;
    for r in arr(sr, "specimen") {
        if let Some(sp) = ctx.resolve_as(sr, r, "Specimen")? {
            n += 1;
            out.push(spm(ctx, n, &sp));
        }
    }
    Ok(out)
}

/// OBX per answered item of the QuestionnaireResponses in `supportingInfo`
/// (the questions the department asks: OBX-3 `linkId^question^L`).
fn answers(ctx: &mut Ctx, sr: &Value) -> Result<Vec<Seg>, MapError> {
    let mut out = Vec::new();
    for r in arr(sr, "supportingInfo") {
        let Some(qr) = ctx.resolve_as(sr, r, "QuestionnaireResponse")? else {
            continue;
        };
        for item in arr(&qr, "item") {
            let Some(link) = str_of(item, "linkId") else {
                continue;
            };
            let Some(answer) = arr(item, "answer").first() else {
                continue;
            };
            let (dt, value) = if let Some(s) = str_of(answer, "valueString") {
                ("ST", Rep::text(s))
            } else if let Some(b) = answer.get("valueBoolean").and_then(Value::as_bool) {
                ("ID", Rep::text(if b { "Y" } else { "N" }))
            } else if let Some(n) = answer.get("valueDecimal").and_then(number) {
                ("NM", Rep::text(n))
            } else if let Some(n) = answer.get("valueInteger").and_then(number) {
                ("NM", Rep::text(n))
            } else if let Some(c) = answer.get("valueCoding") {
                ("CWE", ce(c))
            } else {
                continue;
            };
            let mut obx = Seg::new("OBX");
            obx.text(1, (out.len() + 1).to_string())
                .text(2, dt)
                .rep(3, Rep::text(link).opt(2, str_of(item, "text")).c(3, "L"))
                .rep(5, value)
                .text(11, "F");
            out.push(obx);
        }
    }
    Ok(out)
}

/// SPM of a Specimen: SPM-2 its `{identifier_base}/specimen` identifier
/// (the label's barcode), else its id; SPM-4 type; SPM-17 collected;
/// SPM-18 received; SPM-27 container.
fn spm(ctx: &Ctx, n: usize, sp: &Value) -> Seg {
    let system = format!("{}/specimen", ctx.cfg.identifier_base);
    let id = identifier_value(sp, &system).or_else(|| str_of(sp, "id"));
    let collected = sp
        .get("collection")
        .and_then(|c| dtm_of(c, "collectedDateTime"));
    let container = arr(sp, "container")
        .first()
        .and_then(|c| c.get("type"))
        .map(ce)
        .unwrap_or_default();
    let mut s = Seg::new("SPM");
    s.text(1, n.to_string())
        .opt(2, id)
        .rep(4, ce_of(sp, "type"))
        .opt(17, collected)
        .opt(18, dtm_of(sp, "receivedTime"))
        .rep(27, container);
    s
}

/// ORC (without ORC-1), OBR and NTEs of a ServiceRequest.
fn order_segments(ctx: &mut Ctx, sr: &Value) -> Result<Vec<Seg>, MapError> {
    let placer = placer(ctx, sr);
    let filler = filler(ctx, sr);
    let status = str_of(sr, "status").and_then(|s| codes::to_v2(codes::ORDER_STATUS, s));
    let priority = str_of(sr, "priority").and_then(|p| codes::to_v2(codes::PRIORITY, p));
    let start = dtm_of(sr, "occurrenceDateTime")
        .or_else(|| sr.get("occurrencePeriod").and_then(|p| dtm_of(p, "start")));
    let timing = Rep::new().opt(4, start).opt(6, priority);
    let requester = match sr.get("requester") {
        Some(r) => match ctx.practitioner(sr, r)? {
            Some(p) => xcn(&p, clinician_id(ctx.cfg, &p)),
            None => Rep::new().opt(2, str_of(r, "display")),
        },
        None => Rep::new(),
    };
    let mut orc = Seg::new("ORC");
    orc.opt(2, placer.as_deref())
        .opt(3, filler.as_deref())
        .opt(5, status)
        .rep(7, timing.clone())
        .opt(9, dtm_of(sr, "authoredOn"))
        .rep(12, requester.clone());
    let mut obr = Seg::new("OBR");
    obr.text(1, "1")
        .opt(2, placer.as_deref())
        .opt(3, filler.as_deref())
        .rep(4, ce_of(sr, "code"))
        .rep(16, requester)
        .rep(27, timing)
        .reps(31, arr(sr, "reasonCode").iter().map(ce));
    let mut out = vec![orc, obr];
    out.extend(notes(sr));
    Ok(out)
}

// ---- DiagnosticReport → ORU^R01 ----

fn reportable(status: &str) -> bool {
    matches!(
        status,
        "final" | "corrected" | "amended" | "appended" | "preliminary" | "partial"
    )
}

pub(super) fn plan_report(
    ctx: &mut Ctx,
    before: Option<&Value>,
    after: &Value,
) -> Result<Option<Planned>, MapError> {
    let status = str_of(after, "status").unwrap_or("");
    let old = before.and_then(|b| str_of(b, "status")).unwrap_or("");
    let send = if reportable(status) {
        match before {
            Some(b) if reportable(old) && old == status => {
                report_segments(ctx, b)? != report_segments(ctx, after)?
            }
            _ => true,
        }
    } else {
        // A withdrawal is news only to systems that had the report.
        matches!(status, "cancelled" | "entered-in-error") && reportable(old)
    };
    if !send {
        return Ok(None);
    }
    let (mut segments, patient_id) = patient_and_visit(ctx, after)?;
    segments.extend(report_segments(ctx, after)?);
    Ok(Some(Planned {
        code: "ORU",
        event: "R01",
        structure: "ORU_R01",
        segments,
        patient_id,
    }))
}

/// OBR, NTE (conclusion) and the OBX/NTE of every result.
fn report_segments(ctx: &mut Ctx, dr: &Value) -> Result<Vec<Seg>, MapError> {
    let mut placer_number = None;
    for based_on in arr(dr, "basedOn") {
        if let Some(sr) = ctx.resolve_as(dr, based_on, "ServiceRequest")? {
            placer_number = placer(ctx, &sr);
            break;
        }
    }
    let filler_number = filler(ctx, dr).or_else(|| str_of(dr, "id").map(str::to_owned));
    let status = str_of(dr, "status").and_then(|s| codes::to_v2(codes::REPORT_STATUS, s));
    let (start, end) = effective(dr);
    let mut obr = Seg::new("OBR");
    obr.text(1, "1")
        .opt(2, placer_number)
        .opt(3, filler_number)
        .rep(4, ce_of(dr, "code"))
        .opt(7, start)
        .opt(8, end)
        .opt(22, dtm_of(dr, "issued"))
        .opt(24, arr(dr, "category").iter().find_map(first_code))
        .opt(25, status);
    let mut out = vec![obr];
    if let Some(c) = str_of(dr, "conclusion") {
        let mut nte = Seg::new("NTE");
        nte.text(1, "1").text(3, c);
        out.push(nte);
    }
    let mut set_id = 0;
    for (i, result) in arr(dr, "result").iter().enumerate() {
        let Some(obs) = ctx.resolve_as(dr, result, "Observation")? else {
            return Err(MapError::content(
                204,
                Some("OBX-3"),
                format!(
                    "{} result {} is not an Observation in the record",
                    super::describe(dr),
                    str_of(result, "reference").unwrap_or("(no reference)")
                ),
            ));
        };
        let has_value = value_of(&obs).is_some();
        let components: Vec<&Value> = arr(&obs, "component")
            .iter()
            .filter(|c| value_of(c).is_some())
            .collect();
        if has_value || components.is_empty() {
            set_id += 1;
            out.push(obx(set_id, &obs, &obs, None));
        } else {
            let sub_id = (i + 1).to_string();
            for c in components {
                set_id += 1;
                out.push(obx(set_id, &obs, c, Some(&sub_id)));
            }
        }
        out.extend(notes(&obs));
    }
    Ok(out)
}

/// Start and end of an `effective[x]`.
fn effective(v: &Value) -> (Option<String>, Option<String>) {
    if let Some(p) = v.get("effectivePeriod") {
        return (dtm_of(p, "start"), dtm_of(p, "end"));
    }
    (
        dtm_of(v, "effectiveDateTime").or_else(|| dtm_of(v, "effectiveInstant")),
        None,
    )
}

/// The `value[x]` member of an Observation or component: (name suffix, value).
fn value_of(v: &Value) -> Option<(&str, &Value)> {
    v.as_object()?.iter().find_map(|(k, val)| {
        k.strip_prefix("value")
            .filter(|s| !s.is_empty())
            .map(|s| (s, val))
    })
}

/// One OBX from `item` (the Observation, or one of its components); status
/// and times come from `obs`.
fn obx(set_id: usize, obs: &Value, item: &Value, sub_id: Option<&str>) -> Seg {
    let mut s = Seg::new("OBX");
    s.text(1, set_id.to_string());
    s.rep(3, ce_of(item, "code"));
    s.opt(4, sub_id);
    if let Some((kind, value)) = value_of(item) {
        let (dt, rep, units) = value_rep(kind, value);
        s.opt(2, dt);
        s.rep(5, rep);
        s.rep(6, units);
    }
    if let Some(range) = arr(item, "referenceRange").first() {
        let low = range
            .get("low")
            .and_then(|q| q.get("value"))
            .and_then(number);
        let high = range
            .get("high")
            .and_then(|q| q.get("value"))
            .and_then(number);
        let text = match (low, high) {
            (Some(l), Some(h)) => Some(format!("{l}-{h}")),
            (Some(l), None) => Some(format!(">{l}")),
            (None, Some(h)) => Some(format!("<{h}")),
            (None, None) => str_of(range, "text").map(str::to_owned),
        };
        s.opt(7, text);
    }
    s.reps(
        8,
        arr(item, "interpretation")
            .iter()
            .filter_map(first_code)
            .map(Rep::text),
    );
    s.opt(
        11,
        str_of(obs, "status").and_then(|s| codes::to_v2(codes::OBSERVATION_STATUS, s)),
    );
    s.opt(14, effective(obs).0);
    s
}

/// OBX-2 type, OBX-5 value and OBX-6 units of a `value[x]`.
fn value_rep(kind: &str, v: &Value) -> (Option<&'static str>, Rep, Rep) {
    let none = (None, Rep::new(), Rep::new());
    match kind {
        "Quantity" => {
            let Some(n) = v.get("value").and_then(number) else {
                return none;
            };
            let units = units(v);
            match str_of(v, "comparator") {
                Some(c) => (Some("SN"), Rep::text(c).c(2, n), units),
                None => (Some("NM"), Rep::text(n), units),
            }
        }
        "Integer" => match number(v) {
            Some(n) => (Some("NM"), Rep::text(n), Rep::new()),
            None => none,
        },
        "String" => match v.as_str() {
            Some(t) => (Some("ST"), Rep::text(t), Rep::new()),
            None => none,
        },
        "Boolean" => match v.as_bool() {
            Some(b) => (Some("ID"), Rep::text(if b { "Y" } else { "N" }), Rep::new()),
            None => none,
        },
        "CodeableConcept" => (Some("CWE"), ce(v), Rep::new()),
        "DateTime" => match v.as_str().and_then(dtm) {
            Some(d) if d.len() <= 8 => (Some("DT"), Rep::text(d), Rep::new()),
            Some(d) => (Some("TS"), Rep::text(d), Rep::new()),
            None => none,
        },
        "Time" => match v.as_str().and_then(dtm) {
            Some(d) => (Some("TM"), Rep::text(d), Rep::new()),
            None => none,
        },
        "Range" => {
            let low = v.get("low").and_then(|q| q.get("value")).and_then(number);
            let high = v.get("high").and_then(|q| q.get("value")).and_then(number);
            let units = v
                .get("low")
                .or_else(|| v.get("high"))
                .map(units)
                .unwrap_or_default();
            (
                Some("SN"),
                Rep::new().opt(2, low).c(3, "-").opt(4, high),
                units,
            )
        }
        "Ratio" => {
            let n = v
                .get("numerator")
                .and_then(|q| q.get("value"))
                .and_then(number);
            let d = v
                .get("denominator")
                .and_then(|q| q.get("value"))
                .and_then(number);
            (
                Some("SN"),
                Rep::new().opt(2, n).c(3, ":").opt(4, d),
                Rep::new(),
            )
        }
        _ => none,
    }
}

/// OBX-6 units: `code^unit^UCUM` for UCUM quantities, else `code^unit`.
fn units(q: &Value) -> Rep {
    let code = str_of(q, "code");
    let unit = str_of(q, "unit").or(code);
    let ucum = str_of(q, "system") == Some("http://unitsofmeasure.org");
    Rep::new()
        .opt(1, code.or(unit))
        .opt(2, unit)
        .opt(3, (ucum && code.is_some()).then_some("UCUM"))
}
