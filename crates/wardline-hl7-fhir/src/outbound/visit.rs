//! Encounter → PV1 and the ADT visit events (A01..A38).

use serde_json::Value;

use super::datatypes::{clinician_id, dtm, xcn};
use super::{Ctx, Planned, Rep, Seg, arr, concept_code, first_code, patient, str_of};
use crate::{MapError, codes};

/// Statuses in which the patient is (or is about to be) in the visit.
fn is_current(status: &str) -> bool {
    matches!(status, "arrived" | "triaged" | "in-progress" | "onleave")
}

fn is_void(status: &str) -> bool {
    matches!(status, "cancelled" | "entered-in-error")
}

/// PV1-2 patient class from Encounter.class ([`codes::PATIENT_CLASS`];
/// `U` when it has no v2 class).
fn patient_class(enc: &Value) -> &'static str {
    enc.get("class")
        .and_then(first_code)
        .and_then(|c| codes::to_v2(codes::PATIENT_CLASS, c))
        .unwrap_or("U")
}

/// Admission (A01) for inpatients, registration (A04) otherwise.
fn admission(enc: &Value) -> (&'static str, &'static str) {
    if patient_class(enc) == "I" {
        ("A01", "ADT_A01")
    } else {
        ("A04", "ADT_A01")
    }
}

pub(super) fn plan(
    ctx: &mut Ctx,
    before: Option<&Value>,
    after: &Value,
) -> Result<Option<Planned>, MapError> {
    let status = str_of(after, "status").unwrap_or("");
    let event = match before {
        None => match status {
            "planned" => Some(("A05", "ADT_A05")),
            s if is_current(s) => Some(admission(after)),
            _ => None,
        },
        Some(before) => update_event(ctx, before, after)?,
    };
    let Some((event, structure)) = event else {
        return Ok(None);
    };
    let patient = ctx.required_patient(after, after.get("subject"), "subject")?;
    let mut segments = patient::segments(ctx, &patient)?;
    let prior = if event == "A02" { before } else { None };
    segments.push(pv1(ctx, after, prior)?);
    Ok(Some(Planned {
        code: "ADT",
        event,
        structure,
        segments,
        patient_id: str_of(&patient, "id").map(str::to_owned),
    }))
}

fn update_event(
    ctx: &mut Ctx,
    before: &Value,
    after: &Value,
) -> Result<Option<(&'static str, &'static str)>, MapError> {
    let old = str_of(before, "status").unwrap_or("");
    let new = str_of(after, "status").unwrap_or("");
    let (old_class, new_class) = (patient_class(before), patient_class(after));
    Ok(Some(if new == "finished" && old != "finished" {
        ("A03", "ADT_A03")
    } else if old == "finished" && is_current(new) {
        ("A13", "ADT_A01")
    } else if is_void(new) && !is_void(old) {
        if old == "planned" {
            ("A38", "ADT_A38")
        } else {
            ("A11", "ADT_A09")
        }
    } else if is_void(new) {
        // Already cancelled: nothing to announce.
        return Ok(None);
    } else if old == "planned" && is_current(new) {
        admission(after)
    } else if old == "in-progress" && new == "onleave" {
        ("A21", "ADT_A21")
    } else if old == "onleave" && new == "in-progress" {
        ("A22", "ADT_A21")
    } else if is_current(new) && new_class == "I" && !matches!(old_class, "I" | "U") {
        ("A06", "ADT_A06")
    } else if is_current(new) && old_class == "I" && !matches!(new_class, "I" | "U") {
        ("A07", "ADT_A06")
    } else if is_current(new) && is_cancelled_transfer(before, after) {
        ("A12", "ADT_A12")
    } else if let (Some(a), Some(b)) = (location_key(before), location_key(after))
        && a != b
    {
        ("A02", "ADT_A02")
    } else {
        let same_patient = before.get("subject") == after.get("subject");
        if same_patient && pv1(ctx, before, None)? == pv1(ctx, after, None)? {
            return Ok(None);
        }
        ("A08", "ADT_A01")
    }))
}

/// Whether `after` undoes the last transfer of `before`: the last location
/// entry removed and the one before it active again, earlier entries
/// unchanged.
fn is_cancelled_transfer(before: &Value, after: &Value) -> bool {
    let (b, a) = (arr(before, "location"), arr(after, "location"));
    let n = b.len();
    if n < 2 || a.len() != n - 1 {
        return false;
    }
    fn reference(l: &Value) -> Option<&str> {
        l.get("location").and_then(|r| str_of(r, "reference"))
    }
    let reopened = &a[n - 2];
    str_of(&b[n - 1], "status") == Some("active")
        && str_of(&b[n - 2], "status") == Some("completed")
        && str_of(reopened, "status") == Some("active")
        && reference(reopened).is_some()
        && reference(reopened) == reference(&b[n - 2])
        && a[..n - 2] == b[..n - 2]
}

/// The Encounter's current `location` element: the last `active` one, else
/// the last without status or end, else the last `planned` one.
fn current_location(enc: &Value) -> Option<&Value> {
    let locs = arr(enc, "location");
    fn status(l: &Value) -> Option<&str> {
        str_of(l, "status")
    }
    locs.iter()
        .rev()
        .find(|l| status(l) == Some("active"))
        .or_else(|| {
            locs.iter().rev().find(|l| {
                status(l).is_none() && l.get("period").and_then(|p| str_of(p, "end")).is_none()
            })
        })
        .or_else(|| locs.iter().rev().find(|l| status(l) == Some("planned")))
        .and_then(|l| l.get("location"))
}

fn location_key(enc: &Value) -> Option<&str> {
    current_location(enc).and_then(|r| str_of(r, "reference").or_else(|| str_of(r, "display")))
}

/// PV1 for `enc`; `prior` (the version before a transfer) fills PV1-6.
pub(crate) fn pv1(ctx: &mut Ctx, enc: &Value, prior: Option<&Value>) -> Result<Seg, MapError> {
    let mut s = Seg::new("PV1");
    s.text(1, "1").text(2, patient_class(enc));
    if let Some(l) = current_location(enc) {
        s.rep(3, point_of_care(ctx, enc, l)?);
    }
    if let Some(prior) = prior
        && let Some(l) = current_location(prior)
    {
        s.rep(6, point_of_care(ctx, prior, l)?);
    }
    for p in arr(enc, "participant") {
        let roles: Vec<&str> = arr(p, "type").iter().filter_map(first_code).collect();
        let field = |code: &str| match code {
            "ATND" => Some(7),
            "REF" => Some(8),
            "ADM" => Some(17),
            _ => None,
        };
        let fields: Vec<usize> = roles.iter().filter_map(|r| field(r)).collect();
        if fields.is_empty() {
            continue;
        }
        let Some(individual) = p.get("individual") else {
            continue;
        };
        let rep = match ctx.practitioner(enc, individual)? {
            Some(pr) => xcn(&pr, clinician_id(ctx.cfg, &pr)),
            None => Rep::new().opt(2, str_of(individual, "display")),
        };
        for f in fields {
            s.rep(f, rep.clone());
        }
    }
    s.opt(10, concept_code(enc, "serviceType"));
    if let Some(h) = enc.get("hospitalization") {
        s.opt(14, concept_code(h, "admitSource"));
        s.opt(36, concept_code(h, "dischargeDisposition"));
    }
    let visit_system = format!("{}/visit", ctx.cfg.identifier_base);
    let visit = super::identifier_value(enc, &visit_system).or_else(|| str_of(enc, "id"));
    s.opt(19, visit);
    if let Some(period) = enc.get("period") {
        s.opt(44, str_of(period, "start").and_then(dtm));
        s.opt(45, str_of(period, "end").and_then(dtm));
    }
    Ok(s)
}

/// A Location reference as PL `ward^room^bed^facility^^^building^floor`,
/// walking the `partOf` chain (see the module documentation).
pub(crate) fn point_of_care(
    ctx: &mut Ctx,
    owner: &Value,
    reference: &Value,
) -> Result<Rep, MapError> {
    let mut rep = Rep::new();
    let Some(mut loc) = ctx.resolve_as(owner, reference, "Location")? else {
        return Ok(rep.opt(1, str_of(reference, "display")));
    };
    let location_system = format!("{}/location", ctx.cfg.identifier_base);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let parent = loc.get("partOf");
        let name = super::identifier_value(&loc, &location_system)
            .map(|v| v.trim_end_matches('/').rsplit('/').next().unwrap_or(v))
            .filter(|v| !v.is_empty())
            .or_else(|| str_of(&loc, "name"));
        let slot = match loc.get("physicalType").and_then(first_code) {
            Some("bd") => Some(3),
            Some("ro") => Some(2),
            Some("wa") => Some(1),
            Some("si") => Some(4),
            Some("bu") => Some(7),
            Some("lvl") => Some(8),
            _ if seen.is_empty() => Some(1),
            _ if parent.is_none() => Some(4),
            _ => None,
        };
        if let (Some(slot), Some(name)) = (slot, name)
            && rep.get(slot).is_none()
        {
            rep = rep.c(slot, name);
        }
        seen.push(str_of(&loc, "id").unwrap_or("").to_string());
        let Some(parent) = parent else { break };
        let Some(next) = ctx.resolve_as(&loc, parent, "Location")? else {
            break;
        };
        let next_id = str_of(&next, "id").unwrap_or("").to_string();
        if seen.contains(&next_id) || seen.len() >= 16 {
            break;
        }
        loc = next;
    }
    Ok(rep)
}
