//! ORM^O01 / OML^O21 → ServiceRequest; ORU^R01 → DiagnosticReport and
//! Observations (see the rules in the module doc of `inbound`).

use serde_json::{Map, Value, json};
use wardline_hl7::{Message, Repetition};

use crate::records::{RETRY, TxRecords};
use crate::{MapError, MappingConfig, Records, codes};
use wardline_workflow::results::{self, ResultsError, unmatched};

use super::Applied;
use super::adt::find_encounter;
use super::matching::{self, PatientMatch};
use super::patient::{self, Mode};
use super::util::{Seg, base64, codeable, formatted_text, id_of, practitioner, rc, reference};

const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

fn placer_system(cfg: &MappingConfig) -> String {
    format!("{}/placer-order", cfg.identifier_base)
}

fn filler_system(cfg: &MappingConfig) -> String {
    format!("{}/filler-order", cfg.identifier_base)
}

fn order_identifier(cfg: &MappingConfig, placer: bool, value: &str) -> Value {
    let (code, system) = if placer {
        ("PLAC", placer_system(cfg))
    } else {
        ("FILL", filler_system(cfg))
    };
    json!({"type": {"coding": [{"system": V2_0203, "code": code}]}, "system": system, "value": value})
}

/// One order of the message: its ORC, OBR, TQ1 and NTE segments.
#[derive(Default)]
struct Order<'m, 'a> {
    orc: Option<Seg<'m, 'a>>,
    obr: Option<Seg<'m, 'a>>,
    tq1: Option<Seg<'m, 'a>>,
    notes: Vec<Seg<'m, 'a>>,
    /// OBX segments with the NTEs that follow each.
    obx: Vec<(Seg<'m, 'a>, Vec<Seg<'m, 'a>>)>,
}

/// Groups ORC/OBR/TQ1/OBX/NTE into orders: an ORC starts one, an OBR joins
/// the ORC just before it (or starts one), OBX and NTE belong to the latest.
fn orders<'m, 'a>(msg: &'m Message<'a>) -> Vec<Order<'m, 'a>> {
    let mut out: Vec<Order<'m, 'a>> = Vec::new();
    for s in Seg::all(msg) {
        match s.id() {
            "ORC" => out.push(Order {
                orc: Some(s),
                ..Order::default()
            }),
            "OBR" => match out.last_mut() {
                Some(o) if o.obr.is_none() && o.obx.is_empty() => o.obr = Some(s),
                _ => {
                    // A later OBR of the same ORC group in ORU: reuse the ORC.
                    let orc = out.last().and_then(|o| o.orc);
                    out.push(Order {
                        orc,
                        obr: Some(s),
                        ..Order::default()
                    })
                }
            },
            "TQ1" => {
                if let Some(o) = out.last_mut()
                    && o.tq1.is_none()
                {
                    o.tq1 = Some(s);
                }
            }
            "OBX" => {
                if let Some(o) = out.last_mut() {
                    o.obx.push((s, Vec::new()));
                }
            }
            "NTE" => {
                if let Some(o) = out.last_mut() {
                    match o.obx.last_mut() {
                        Some((_, n)) => n.push(s),
                        None => o.notes.push(s),
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// First non-empty EI.1 among (segment, field) pairs, with its location.
fn first_id(pairs: &[(Option<Seg<'_, '_>>, usize)]) -> Option<String> {
    pairs
        .iter()
        .find_map(|(s, f)| s.as_ref().and_then(|s| s.v(*f)))
}

fn note_texts(notes: &[Seg<'_, '_>], msg: &Message<'_>) -> Vec<String> {
    notes
        .iter()
        .flat_map(|n| n.reps(3))
        .map(|r| formatted_text(&r.text(), msg))
        .filter(|t| !t.trim().is_empty())
        .collect()
}

// ---------------------------------------------------------------- orders

/// ORC-1 order control (table 0119) and ORC-5 order status (table 0038) →
/// ServiceRequest.status; `None` keeps the stored status.
fn order_status(orc: &Seg<'_, '_>) -> Result<Option<&'static str>, MapError> {
    let control = orc.v(1).map(|c| c.to_ascii_uppercase());
    let from_status = |orc: &Seg<'_, '_>| -> Result<Option<&'static str>, MapError> {
        let Some(st) = orc.v(5) else { return Ok(None) };
        match codes::to_fhir(codes::ORDER_STATUS, &st) {
            Some(s) => Ok(Some(s)),
            None => Err(MapError::content(
                103,
                Some(&orc.loc(5)),
                format!(
                    "{} order status '{st}' is not in HL7 table 0038",
                    orc.loc(5)
                ),
            )),
        }
    };
    Ok(match control.as_deref() {
        None => Some("active"),
        Some("NW") | Some("RL") | Some("OK") | Some("SN") | Some("RO") | Some("RP") => {
            Some("active")
        }
        // A cancel whose ORC-5 says the order was entered in error (as
        // Wardline sends it) withdraws it as such.
        Some("CA") | Some("OC") | Some("DC") | Some("CR") | Some("OD") | Some("DR") => {
            match from_status(orc)? {
                Some("entered-in-error") => Some("entered-in-error"),
                _ => Some("revoked"),
            }
        }
        Some("HD") | Some("OH") => Some("on-hold"),
        Some("XO") | Some("XX") | Some("XR") | Some("SC") | Some("RE") => from_status(orc)?,
        Some(other) => {
            return Err(MapError::content(
                103,
                Some(&orc.loc(1)),
                format!(
                    "{} order control '{other}' is not in HL7 table 0119 (NW, CA, OC, DC, XO, SC, HD, RL …)",
                    orc.loc(1)
                ),
            ));
        }
    })
}

/// OBR-27.6 (TQ priority) or TQ1-9 → ServiceRequest.priority.
fn priority(o: &Order<'_, '_>) -> Result<Option<&'static str>, MapError> {
    let (code, loc) = match (
        o.tq1.as_ref().and_then(|t| t.v(9).map(|v| (v, t.loc(9)))),
        o.obr
            .as_ref()
            .and_then(|b| b.c(27, 6).map(|v| (v, b.loc(27)))),
        o.orc
            .as_ref()
            .and_then(|c| c.c(7, 6).map(|v| (v, c.loc(7)))),
    ) {
        (Some(x), _, _) | (None, Some(x), _) | (None, None, Some(x)) => x,
        _ => return Ok(None),
    };
    match codes::to_fhir(codes::PRIORITY, &code) {
        Some(p) => Ok(Some(p)),
        None => Err(MapError::content(
            103,
            Some(&loc),
            format!(
                "{loc} priority '{code}' is not {}",
                codes::v2_codes(codes::PRIORITY)
            ),
        )),
    }
}

pub(crate) fn apply_order(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    label: &str,
) -> Result<Applied, MapError> {
    let patient_id = patient::upsert(msg, records, cfg, Mode::FindOrCreate)?;
    let encounter = find_encounter(msg, records, cfg)?.map(|e| id_of(&e));
    let groups = orders(msg);
    if groups.is_empty() {
        return Err(MapError::content(
            101,
            Some("ORC-1"),
            format!("{label} has no ORC or OBR segment, so no order"),
        ));
    }
    let mut saved = Vec::new();
    for o in &groups {
        let placer = first_id(&[(o.orc, 2), (o.obr, 2)]);
        let filler = first_id(&[(o.orc, 3), (o.obr, 3)]);
        let loc = o
            .orc
            .as_ref()
            .or(o.obr.as_ref())
            .map_or("ORC-2".into(), |s| s.loc(2));
        if placer.is_none() && filler.is_none() {
            return Err(MapError::content(
                101,
                Some(&loc),
                format!("{loc} placer order number and filler order number are both empty"),
            ));
        }
        let mut found = None;
        if let Some(p) = &placer {
            found = records.find_by_identifier("ServiceRequest", &placer_system(cfg), p)?;
        }
        if found.is_none()
            && let Some(f) = &filler
        {
            found = records.find_by_identifier("ServiceRequest", &filler_system(cfg), f)?;
        }
        let status = match &o.orc {
            Some(orc) => order_status(orc)?,
            None => Some("active"),
        };
        let mut sr = match found {
            Some(sr) => sr,
            None => {
                if status == Some("revoked") {
                    return Err(MapError::content(
                        204,
                        Some(&loc),
                        format!(
                            "{loc} order '{}' to cancel is not known",
                            placer.clone().or(filler.clone()).unwrap_or_default()
                        ),
                    ));
                }
                json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order"})
            }
        };
        // Identifiers: add those not yet stored.
        let mut ids: Vec<Value> = sr["identifier"].as_array().cloned().unwrap_or_default();
        for i in [
            placer.as_ref().map(|p| order_identifier(cfg, true, p)),
            filler.as_ref().map(|f| order_identifier(cfg, false, f)),
        ]
        .into_iter()
        .flatten()
        {
            if !ids
                .iter()
                .any(|s| s["system"] == i["system"] && s["value"] == i["value"])
            {
                ids.push(i);
            }
        }
        sr["identifier"] = Value::Array(ids);
        // ORC-4 placer group number: the requisition the order belongs to.
        if let Some(group) = o.orc.as_ref().and_then(|c| c.v(4)) {
            sr["requisition"] =
                json!({"system": format!("{}/requisition", cfg.identifier_base), "value": group});
        }
        if let Some(s) = status {
            // The order's lifecycle is the orders domain's: a message may not
            // restart a completed or cancelled order.
            let at = o.orc.as_ref().map_or("ORC-1".into(), |s| s.loc(1));
            wardline_workflow::orders::set_status(&mut sr, s)
                .map_err(|e| MapError::content(207, Some(&at), e.message))?;
        }
        if let Some(obr) = &o.obr
            && let Some(r) = obr.reps(4).first()
            && let Some(c) = codeable(r, cfg)
        {
            sr["code"] = c;
        }
        if let Some(p) = priority(o)? {
            sr["priority"] = json!(p);
        }
        sr["subject"] = reference("Patient", &patient_id);
        if let Some(e) = &encounter {
            sr["encounter"] = reference("Encounter", e);
        }
        if let Some(orc) = &o.orc
            && let Some(t) = orc.ts(9)?
        {
            sr["authoredOn"] = json!(t.date_time());
        }
        let requester = match (&o.orc, &o.obr) {
            (Some(orc), _) if !orc.reps(12).is_empty() => orc.reps(12).first().copied(),
            (_, Some(obr)) => obr.reps(16).first().copied(),
            _ => None,
        };
        if let Some(r) = requester
            && let Some(p) = practitioner(&r, records, cfg)?
        {
            sr["requester"] = p;
        }
        if let Some(obr) = &o.obr {
            let reasons: Vec<Value> = obr
                .reps(31)
                .iter()
                .filter_map(|r| codeable(r, cfg))
                .collect();
            if !reasons.is_empty() {
                sr["reasonCode"] = Value::Array(reasons);
            }
        }
        let notes = note_texts(&o.notes, msg);
        if !notes.is_empty() {
            sr["note"] = Value::Array(notes.into_iter().map(|t| json!({"text": t})).collect());
        }
        let st = sr["status"].as_str().unwrap_or_default().to_owned();
        let id = records.save(sr)?;
        saved.push(format!("ServiceRequest/{id} {st}"));
    }
    Ok(Applied {
        summary: format!("{label}: Patient/{patient_id}, {}", saved.join(", ")),
        patient_id: Some(patient_id),
    })
}

// ---------------------------------------------------------------- results

/// OBR-25 result status (table 0123) → DiagnosticReport.status.
fn report_status(obr: &Seg<'_, '_>) -> Result<&'static str, MapError> {
    let Some(s) = obr.v(25) else {
        return Ok("unknown");
    };
    codes::to_fhir(codes::REPORT_STATUS, &s).ok_or_else(|| {
        MapError::content(
            103,
            Some(&obr.loc(25)),
            format!(
                "{} result status '{s}' is not in HL7 table 0123 ({})",
                obr.loc(25),
                codes::v2_codes(codes::REPORT_STATUS)
            ),
        )
    })
}

/// OBX-11 (table 0085) → Observation.status; empty takes the report's.
fn observation_status(obx: &Seg<'_, '_>, report: &str) -> Result<&'static str, MapError> {
    let Some(s) = obx.v(11) else {
        return Ok(match report {
            "registered" => "registered",
            "partial" | "preliminary" => "preliminary",
            "corrected" => "corrected",
            "final" => "final",
            "cancelled" => "cancelled",
            _ => "unknown",
        });
    };
    codes::to_fhir(codes::OBSERVATION_STATUS, &s).ok_or_else(|| {
        MapError::content(
            103,
            Some(&obx.loc(11)),
            format!(
                "{} observation result status '{s}' is not in HL7 table 0085",
                obx.loc(11)
            ),
        )
    })
}

/// A decimal as JSON, or `None`.
fn decimal(s: &str) -> Option<Value> {
    let t = s.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    let ok = !t.is_empty()
        && t.chars().filter(|c| *c == '.').count() <= 1
        && t.trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && t.trim_start_matches('-')
            .chars()
            .any(|c| c.is_ascii_digit());
    if !ok {
        return None;
    }
    let n: serde_json::Number = serde_json::from_str(
        &(if t.starts_with('.') {
            format!("0{t}")
        } else if t.starts_with("-.") {
            format!("-0{}", &t[1..])
        } else if t.ends_with('.') {
            format!("{t}0")
        } else {
            t.to_owned()
        }),
    )
    .ok()?;
    Some(Value::Number(n))
}

/// UCUM when the unit looks like one (declared UCUM, or only UCUM
/// characters and no spaces).
fn quantity(value: Value, units: Option<&Repetition<'_>>) -> Value {
    let mut q = json!({"value": value});
    let Some(u) = units else { return q };
    let code = rc(u, 1);
    let text = rc(u, 2);
    let sys = rc(u, 3).unwrap_or_default().to_ascii_uppercase();
    let Some(unit) = text.clone().or(code.clone()) else {
        return q;
    };
    q["unit"] = json!(unit);
    let looks_ucum = |c: &str| {
        c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "/.*%[]{}()^-_'".contains(ch))
    };
    if let Some(c) = code
        && (sys == "UCUM" || sys == "UCUM1" || (sys.is_empty() && looks_ucum(&c)))
    {
        q["system"] = json!("http://unitsofmeasure.org");
        q["code"] = json!(c);
    }
    q
}

fn bad_value(obx: &Seg<'_, '_>, ty: &str, v: &str) -> MapError {
    MapError::content(
        102,
        Some(&obx.loc(5)),
        format!("{} value '{v}' is not a valid {ty}", obx.loc(5)),
    )
}

/// OBX-5 by OBX-2 → `value[x]` (key, value), or `None` when empty.
fn obx_value(
    obx: &Seg<'_, '_>,
    msg: &Message<'_>,
    cfg: &MappingConfig,
) -> Result<Option<(&'static str, Value)>, MapError> {
    let ty = obx.v(2).unwrap_or_default().to_ascii_uppercase();
    let reps = obx.reps(5);
    let Some(first) = reps.first() else {
        return Ok(None);
    };
    let units = obx.reps(6);
    let units = units.first();
    Ok(Some(match ty.as_str() {
        "NM" => {
            // A leading comparator (`<15`, as many labs send) → comparator.
            let v = first.text().trim().to_owned();
            let (cmp, num) = ["<=", ">=", "<", ">"]
                .iter()
                .find_map(|c| v.strip_prefix(c).map(|rest| (Some(*c), rest)))
                .unwrap_or((None, v.as_str()));
            let n = decimal(num).ok_or_else(|| bad_value(obx, "number (NM)", &v))?;
            let mut q = quantity(n, units);
            if let Some(c) = cmp {
                q["comparator"] = json!(c);
            }
            ("valueQuantity", q)
        }
        "SN" => {
            let cmp = rc(first, 1).unwrap_or_default();
            let n1 = rc(first, 2);
            let sep = rc(first, 3).unwrap_or_default();
            let n2 = rc(first, 4);
            let raw = first.text().into_owned();
            let num = |s: &Option<String>| -> Result<Option<Value>, MapError> {
                match s {
                    Some(s) => decimal(s)
                        .map(Some)
                        .ok_or_else(|| bad_value(obx, "structured numeric (SN)", &raw)),
                    None => Ok(None),
                }
            };
            let (a, b) = (num(&n1)?, num(&n2)?);
            match (sep.as_str(), a, b) {
                ("-", a, Some(b)) if cmp.is_empty() || cmp == "=" => {
                    let mut r = Map::new();
                    if let Some(a) = a {
                        r.insert("low".into(), quantity(a, units));
                    }
                    r.insert("high".into(), quantity(b, units));
                    ("valueRange", Value::Object(r))
                }
                (":" | "/", Some(a), Some(b)) if cmp.is_empty() || cmp == "=" => (
                    "valueRatio",
                    json!({"numerator": {"value": a}, "denominator": {"value": b}}),
                ),
                ("", Some(a), None) => match cmp.as_str() {
                    "" | "=" => ("valueQuantity", quantity(a, units)),
                    "<" | ">" | "<=" | ">=" => {
                        let mut q = quantity(a, units);
                        q["comparator"] = json!(cmp);
                        ("valueQuantity", q)
                    }
                    _ => ("valueString", json!(raw.replace('^', " ").trim())),
                },
                _ => {
                    let text: Vec<String> = [Some(cmp), n1, Some(sep), n2]
                        .into_iter()
                        .flatten()
                        .filter(|s| !s.is_empty())
                        .collect();
                    if text.is_empty() {
                        return Ok(None);
                    }
                    ("valueString", json!(text.join("")))
                }
            }
        }
        "CE" | "CWE" | "CNE" | "CF" | "CV" => match codeable(first, cfg) {
            Some(c) => ("valueCodeableConcept", c),
            None => return Ok(None),
        },
        "DT" | "TS" | "DTM" => {
            let v = first.text().trim().to_owned();
            let t = super::ts::parse(&v).ok_or_else(|| bad_value(obx, "timestamp", &v))?;
            ("valueDateTime", json!(t.date_time()))
        }
        "TM" => {
            let v = first.text().trim().to_owned();
            let d: String = v.chars().take_while(char::is_ascii_digit).collect();
            if !(d.len() == 4 || d.len() == 6) {
                return Err(bad_value(obx, "time (TM)", &v));
            }
            let (h, m) = (&d[..2], &d[2..4]);
            let s = if d.len() == 6 { &d[4..6] } else { "00" };
            let valid = h.parse::<u8>().is_ok_and(|x| x < 24)
                && m.parse::<u8>().is_ok_and(|x| x < 60)
                && s.parse::<u8>().is_ok_and(|x| x < 60);
            if !valid {
                return Err(bad_value(obx, "time (TM)", &v));
            }
            ("valueTime", json!(format!("{h}:{m}:{s}")))
        }
        _ => {
            // ST, TX, FT and anything textual: lines joined.
            let lines: Vec<String> = reps
                .iter()
                .map(|r| formatted_text(&r.text(), msg))
                .collect();
            let t = lines.join("\n");
            if t.trim().is_empty() {
                return Ok(None);
            }
            ("valueString", json!(t))
        }
    }))
}

/// OBX-7 reference range: `a-b`, `<b`, `>a`, else text.
fn reference_range(s: &str, units: Option<&Repetition<'_>>) -> Value {
    let t = s.trim();
    let q = |v: Value| {
        let mut q = quantity(v, units);
        if let Some(o) = q.as_object_mut() {
            o.shift_remove("unit");
        }
        q
    };
    if let Some(x) = t.strip_prefix("<=").or_else(|| t.strip_prefix('<'))
        && let Some(v) = decimal(x)
    {
        return json!({"high": q(v), "text": t});
    }
    if let Some(x) = t.strip_prefix(">=").or_else(|| t.strip_prefix('>'))
        && let Some(v) = decimal(x)
    {
        return json!({"low": q(v), "text": t});
    }
    // Split on the '-' that is not a leading sign.
    if let Some(i) = t.get(1..).and_then(|r| r.find('-')).map(|i| i + 1)
        && let (Some(a), Some(b)) = (decimal(&t[..i]), decimal(&t[i + 1..]))
    {
        return json!({"low": q(a), "high": q(b), "text": t});
    }
    json!({"text": t})
}

/// An ED (source^type^subtype^encoding^data) → Attachment.
/// Standard, padded base64 as FHIR `base64Binary` requires.
fn valid_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    pad <= 2
        && b[..b.len() - pad]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

pub(crate) fn ed_attachment(rep: &Repetition<'_>) -> Option<Value> {
    let ty = rc(rep, 2)
        .unwrap_or_else(|| "application".into())
        .to_ascii_lowercase();
    let sub = rc(rep, 3)
        .unwrap_or_else(|| "octet-stream".into())
        .to_ascii_lowercase();
    let ty = match ty.as_str() {
        "ap" | "application" => "application",
        "tx" | "text" => "text",
        "im" | "image" => "image",
        "au" | "audio" => "audio",
        "video" => "video",
        "multipart" => "multipart",
        _ => "application",
    };
    let encoding = rc(rep, 4).unwrap_or_default().to_ascii_uppercase();
    let data = rc(rep, 5)?;
    let data = match encoding.as_str() {
        "BASE64" | "B64" => {
            let d: String = data.chars().filter(|c| !c.is_whitespace()).collect();
            if !valid_base64(&d) {
                return None;
            }
            d
        }
        "HEX" => {
            let h: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if !h.len().is_multiple_of(2) {
                return None;
            }
            let bytes: Option<Vec<u8>> = h
                .chunks(2)
                .map(|p| {
                    std::str::from_utf8(p)
                        .ok()
                        .and_then(|s| u8::from_str_radix(s, 16).ok())
                })
                .collect();
            base64(&bytes?)
        }
        _ => base64(data.as_bytes()),
    };
    Some(json!({"contentType": format!("{ty}/{sub}"), "data": data}))
}

/// A refusal of the results service as the ACK's error: the status rules'
/// refusals name OBR-25.
fn results_error(e: ResultsError, obr: &Seg<'_, '_>) -> MapError {
    match e {
        ResultsError::Conflict(m) if m.starts_with("Someone else") => {
            MapError::internal(format!("{RETRY}{m}"))
        }
        ResultsError::Conflict(m) => MapError::content(
            207,
            Some(&obr.loc(25)),
            format!(
                "{} result status '{}' (report '{}'): {m}",
                obr.loc(25),
                obr.v(25).unwrap_or_default(),
                obr.v(3).unwrap_or_default()
            ),
        ),
        ResultsError::Invalid(m) | ResultsError::NotFound(m) => MapError::content(207, None, m),
        ResultsError::Forbidden(m) | ResultsError::Store(m) => MapError::internal(m),
    }
}

pub(crate) fn apply_result(
    msg: &Message<'_>,
    records: &mut TxRecords<'_, '_>,
    cfg: &MappingConfig,
    now: time::OffsetDateTime,
) -> Result<Applied, MapError> {
    // Never a Patient made from a result: the patient is found with
    // certainty or the result waits in the worklist.
    let reported = patient::reported(msg, records, cfg)?;
    let who = matching::patient(msg, records, cfg, reported.as_ref())?;
    let patient_id = match &who {
        PatientMatch::Found(p) => Some(id_of(p)),
        PatientMatch::Unmatched(_) => None,
    };
    let encounter = match &patient_id {
        Some(pid) => find_encounter(msg, records, cfg)?
            .filter(|e| e["subject"]["reference"] == format!("Patient/{pid}").as_str())
            .map(|e| id_of(&e)),
        None => None,
    };
    let groups: Vec<Order<'_, '_>> = orders(msg)
        .into_iter()
        .filter(|o| o.obr.is_some())
        .collect();
    if groups.is_empty() {
        return Err(MapError::content(
            101,
            Some("OBR-4"),
            "ORU^R01 has no OBR segment, so no report",
        ));
    }
    let obs_system = format!("{}/observation", cfg.identifier_base);
    let mut saved = Vec::new();
    let mut filed_patient: Option<String> = None;
    for o in &groups {
        let Some(obr) = o.obr else { continue };
        let Some(filler) = first_id(&[(Some(obr), 3), (o.orc, 3)]) else {
            return Err(MapError::content(
                101,
                Some(&obr.loc(3)),
                format!(
                    "{} filler order number is empty (placer '{}'): a result needs it to be updated later",
                    obr.loc(3),
                    first_id(&[(Some(obr), 2), (o.orc, 2)]).unwrap_or_default()
                ),
            ));
        };
        let Some(code) = obr.reps(4).first().and_then(|r| codeable(r, cfg)) else {
            return Err(MapError::content(
                101,
                Some(&obr.loc(4)),
                format!(
                    "{} universal service identifier is empty (report '{filler}')",
                    obr.loc(4)
                ),
            ));
        };
        let status = report_status(&obr)?;
        let mut dr = records
            .find_by_identifier("DiagnosticReport", &filler_system(cfg), &filler)?
            .unwrap_or_else(|| {
                json!({"resourceType": "DiagnosticReport",
                       "identifier": [order_identifier(cfg, false, &filler)]})
            });
        dr["status"] = json!(status);
        let placer = first_id(&[(Some(obr), 2), (o.orc, 2)]);
        let filed = filed_to(&dr, &who, &obr)?;
        let (subject, based_on, why) = match filed {
            Some(f) => f,
            None => match (
                &who,
                matching::order(records, cfg, placer.as_deref(), Some(&filler))?,
            ) {
                (PatientMatch::Unmatched(why), _) => (None, None, Some(why.clone())),
                (PatientMatch::Found(_), Err(why)) => (None, None, Some(why)),
                (PatientMatch::Found(p), Ok(Some(sr))) => {
                    let pid = id_of(p);
                    if sr["subject"]["reference"] == format!("Patient/{pid}").as_str() {
                        (Some(pid), Some(id_of(&sr)), None)
                    } else {
                        (
                            None,
                            None,
                            Some(format!(
                                "order {} is not an order of Patient/{pid}, whose numbers the result carries",
                                placer.clone().unwrap_or_else(|| filler.clone())
                            )),
                        )
                    }
                }
                (PatientMatch::Found(p), Ok(None)) => (
                    None,
                    None,
                    Some(match &placer {
                        Some(n) => format!(
                            "no order with placer number {n} or filler number {filler} (Patient/{} is known)",
                            id_of(p)
                        ),
                        None => format!(
                            "the result quotes no placer order number and no order has filler number {filler} (Patient/{} is known)",
                            id_of(p)
                        ),
                    }),
                ),
            },
        };
        match &why {
            None => {
                dr["subject"] = reference("Patient", subject.as_deref().unwrap_or_default());
                dr["basedOn"] = json!([reference(
                    "ServiceRequest",
                    based_on.as_deref().unwrap_or_default()
                )]);
                unmark(&mut dr);
            }
            Some(reason) => {
                mark_unmatched(
                    &mut dr,
                    cfg,
                    reported.as_ref(),
                    placer.as_deref(),
                    &filler,
                    reason,
                );
            }
        }
        let encounter = if why.is_none() && subject == patient_id {
            encounter.clone()
        } else {
            None
        };
        if let Some(r) = obr.reps(24).first()
            && let Some(c) =
                super::util::table_concept(r, "http://terminology.hl7.org/CodeSystem/v2-0074")
        {
            dr["category"] = json!([c]);
        }
        dr["code"] = code;
        if let Some(e) = &encounter {
            dr["encounter"] = reference("Encounter", e);
        }
        let effective = obr.ts(7)?;
        if let Some(t) = &effective {
            dr["effectiveDateTime"] = json!(t.date_time());
        }
        if let Some(t) = obr.ts(22)? {
            dr["issued"] = json!(t.instant());
        }
        let conclusion = note_texts(&o.notes, msg);
        if !conclusion.is_empty() {
            dr["conclusion"] = json!(conclusion.join("\n"));
        }

        let mut results = Vec::new();
        let mut forms = Vec::new();
        for (obx, notes) in &o.obx {
            if obx.v(2).is_some_and(|t| t.eq_ignore_ascii_case("ED")) {
                if let Some(rep) = obx.reps(5).first() {
                    match ed_attachment(rep) {
                        Some(a) => forms.push(a),
                        // Data present but not decodable: refuse rather
                        // than drop or store it corrupt.
                        None if rc(rep, 5).is_some() => {
                            return Err(bad_value(
                                obx,
                                "encapsulated document (ED data in the encoding ED-4 names)",
                                &rc(rep, 5).unwrap_or_default(),
                            ));
                        }
                        None => {}
                    }
                }
                continue;
            }
            let Some(obs_code) = obx.reps(3).first().and_then(|r| codeable(r, cfg)) else {
                return Err(MapError::content(
                    101,
                    Some(&obx.loc(3)),
                    format!(
                        "{} observation identifier is empty (report '{filler}')",
                        obx.loc(3)
                    ),
                ));
            };
            let key = format!(
                "{filler}-{}-{}-{}",
                obr.occ,
                obx.v(3).or_else(|| obx.c(3, 2)).unwrap_or_default(),
                obx.v(4).unwrap_or_default()
            );
            let mut ob = records
                .find_by_identifier("Observation", &obs_system, &key)?
                .unwrap_or_else(|| {
                    json!({"resourceType": "Observation",
                           "identifier": [{"system": obs_system, "value": key}]})
                });
            // Values and interpretations are replaced as a whole.
            if let Some(m) = ob.as_object_mut() {
                m.retain(|k, _| {
                    matches!(k.as_str(), "resourceType" | "id" | "meta" | "identifier")
                });
            }
            ob["status"] = json!(observation_status(obx, status)?);
            ob["code"] = obs_code;
            if let Some(p) = dr.get("subject") {
                ob["subject"] = p.clone();
            }
            if let Some(e) = &encounter {
                ob["encounter"] = reference("Encounter", e);
            }
            if let Some(b) = dr.get("basedOn") {
                ob["basedOn"] = b.clone();
            }
            match obx.ts(14)? {
                Some(t) => ob["effectiveDateTime"] = json!(t.date_time()),
                None => {
                    if let Some(t) = &effective {
                        ob["effectiveDateTime"] = json!(t.date_time());
                    }
                }
            }
            if let Some((k, v)) = obx_value(obx, msg, cfg)? {
                ob[k] = v;
            }
            let interp: Vec<Value> = obx
                .reps(8)
                .iter()
                .filter_map(|r| {
                    super::util::table_concept(r, "http://terminology.hl7.org/CodeSystem/v2-0078")
                })
                .collect();
            if !interp.is_empty() {
                ob["interpretation"] = Value::Array(interp);
            }
            if let Some(rr) = obx.v(7) {
                let units = obx.reps(6);
                ob["referenceRange"] = json!([reference_range(&rr, units.first())]);
            }
            let n = note_texts(notes, msg);
            if !n.is_empty() {
                ob["note"] = Value::Array(n.into_iter().map(|t| json!({"text": t})).collect());
            }
            results.push(ob);
        }
        // `result` is what the results service makes of the Observations.
        if let Some(m) = dr.as_object_mut() {
            m.shift_remove("result");
        }
        if !forms.is_empty() {
            dr["presentedForm"] = Value::Array(forms);
        }
        let count = results.len();
        // The status rules, matching and notification are the results
        // service's (`results::receive_in`), in this message's transaction.
        let received = results::receive_in(
            records.tx(),
            results::Incoming {
                report: dr,
                observations: results,
                source: results::Source::Hl7 {
                    sender: msg.sending_application().unwrap_or_default().to_owned(),
                },
            },
            now,
        )
        .map_err(|e| results_error(e, &obr))?;
        let id = received.report;
        saved.push(format!(
            "DiagnosticReport/{id} ({filler}) {status} with {count} observations{}",
            match (&why, received.matched) {
                (None, true) => format!(", {} notified", received.notified.len()),
                (Some(w), _) => format!(", unmatched: {w}"),
                (None, false) => ", unmatched: the order names no one to tell".to_owned(),
            }
        ));
        if received.matched && filed_patient.is_none() {
            filed_patient = subject;
        }
    }
    Ok(Applied {
        summary: format!(
            "ORU^R01: {}, {}",
            filed_patient
                .as_deref()
                .map_or("no patient matched".to_owned(), |p| format!("Patient/{p}")),
            saved.join(", ")
        ),
        patient_id: filed_patient,
    })
}

/// The patient and order a stored report was already filed to (by an
/// earlier message or by a person matching it from the worklist): they
/// stand, unless this message names, with certainty, another patient —
/// then it is refused (a result moves between patients only by a person).
#[allow(clippy::type_complexity)]
fn filed_to(
    stored: &Value,
    who: &PatientMatch,
    obr: &Seg<'_, '_>,
) -> Result<Option<(Option<String>, Option<String>, Option<String>)>, MapError> {
    let unmatched = stored["meta"]["tag"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["system"] == unmatched::TAG_SYSTEM));
    let (Some(subject), Some(order)) = (
        stored["subject"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Patient/")),
        stored["basedOn"][0]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("ServiceRequest/")),
    ) else {
        return Ok(None);
    };
    if unmatched {
        return Ok(None);
    }
    if let PatientMatch::Found(p) = who
        && id_of(p) != subject
    {
        return Err(MapError::content(
            207,
            Some("PID-3"),
            format!(
                "report {} is filed to Patient/{subject}, but this message names Patient/{}: a result is moved to another patient only by cancelling it and sending it for the right one",
                obr.v(3).unwrap_or_default(),
                id_of(p)
            ),
        ));
    }
    Ok(Some((
        Some(subject.to_owned()),
        Some(order.to_owned()),
        None,
    )))
}

/// Removes the marks of an unmatched report (it is matched now).
fn unmark(dr: &mut Value) {
    let Some(o) = dr.as_object_mut() else { return };
    if let Some(meta) = o.get_mut("meta").and_then(Value::as_object_mut) {
        if let Some(tags) = meta.get_mut("tag").and_then(Value::as_array_mut) {
            tags.retain(|t| t["system"] != unmatched::TAG_SYSTEM);
        }
        if meta
            .get("tag")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            meta.shift_remove("tag");
        }
    }
    if let Some(ext) = o.get_mut("extension").and_then(Value::as_array_mut) {
        ext.retain(|e| {
            !matches!(
                e["url"].as_str(),
                Some(
                    unmatched::REPORTED_PATIENT_EXT
                        | unmatched::REPORTED_ORDER_EXT
                        | unmatched::UNMATCHED_REASON_EXT
                )
            )
        });
    }
    if let Some(c) = o.get_mut("contained").and_then(Value::as_array_mut) {
        c.retain(|r| r["id"] != unmatched::REPORTED_PATIENT_ID);
    }
    for k in ["extension", "contained"] {
        if o.get(k)
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            o.shift_remove(k);
        }
    }
}

/// The shape of an unmatched report (`wardline_workflow::results::unmatched`):
/// tagged, no subject and no basedOn, what the sender said about the
/// patient as a contained Patient, the order numbers it quoted, and why.
fn mark_unmatched(
    dr: &mut Value,
    cfg: &MappingConfig,
    reported: Option<&Value>,
    placer: Option<&str>,
    filler: &str,
    reason: &str,
) {
    unmark(dr);
    if let Some(o) = dr.as_object_mut() {
        o.shift_remove("subject");
        o.shift_remove("basedOn");
        o.shift_remove("encounter");
    }
    let mut tags = dr
        .pointer("/meta/tag")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    tags.push(json!({"system": unmatched::TAG_SYSTEM, "code": unmatched::TAG_CODE}));
    if !dr.get("meta").is_some_and(Value::is_object) {
        dr["meta"] = json!({});
    }
    dr["meta"]["tag"] = Value::Array(tags);
    let mut ext = dr
        .get("extension")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(p) = reported {
        let mut p = p.clone();
        p["id"] = json!(unmatched::REPORTED_PATIENT_ID);
        let mut contained = dr
            .get("contained")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        contained.push(p);
        dr["contained"] = Value::Array(contained);
        ext.push(json!({"url": unmatched::REPORTED_PATIENT_EXT,
            "valueReference": {"reference": format!("#{}", unmatched::REPORTED_PATIENT_ID)}}));
    }
    for (system, value) in [
        (placer_system(cfg), placer),
        (filler_system(cfg), Some(filler)),
    ] {
        if let Some(v) = value {
            ext.push(json!({"url": unmatched::REPORTED_ORDER_EXT,
                "valueIdentifier": {"system": system, "value": v}}));
        }
    }
    ext.push(json!({"url": unmatched::UNMATCHED_REASON_EXT, "valueString": reason}));
    dr["extension"] = Value::Array(ext);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(decimal("5.4"), Some(json!(5.4)));
        assert_eq!(decimal("-3"), Some(json!(-3)));
        assert_eq!(decimal(".5"), Some(json!(0.5)));
        assert_eq!(decimal("+7"), Some(json!(7)));
        for bad in ["", "abc", "1.2.3", "<5", "5 mg", "-", "."] {
            assert_eq!(decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn reference_ranges() {
        assert_eq!(
            reference_range("3.5-5.0", None),
            json!({"low": {"value": 3.5}, "high": {"value": 5.0}, "text": "3.5-5.0"})
        );
        assert_eq!(
            reference_range("<5", None),
            json!({"high": {"value": 5}, "text": "<5"})
        );
        assert_eq!(
            reference_range("-1-1", None),
            json!({"low": {"value": -1}, "high": {"value": 1}, "text": "-1-1"})
        );
        assert_eq!(
            reference_range("negative", None),
            json!({"text": "negative"})
        );
    }
}
