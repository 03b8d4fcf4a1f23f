//! Patient → PID/PD1, and the Patient events A28, A31, A40.

use serde_json::Value;

use super::datatypes::{clinician_id, dtm_of, joined, main_name, xcn};
use super::{Ctx, Planned, Rep, Seg, arr, concept_code, str_of, system_is};
use crate::{MapError, MappingConfig, NHS_NUMBER_SYSTEM, codes};
use wardline_workflow::pmi::{
    ETHNIC_CATEGORY_EXTENSION, ETHNIC_CATEGORY_SYSTEM, NHS_VERIFICATION_EXTENSION,
    NHS_VERIFICATION_SYSTEM,
};

/// HL7 table 0203 identifier type codes, to read a one-slug local system
/// (`{identifier_base}/mr`) as a type rather than an authority.
const IDENTIFIER_TYPES: &[&str] = &[
    "AM", "AN", "BR", "DL", "EI", "EN", "FI", "GI", "GN", "LN", "LR", "MA", "MC", "MR", "NE", "NH",
    "NI", "NPI", "PEN", "PI", "PN", "PRN", "PT", "RR", "RRI", "SL", "SR", "SS", "U", "UPIN", "VN",
    "VS", "WC", "XX",
];

pub(super) fn plan(
    ctx: &mut Ctx,
    before: Option<&Value>,
    after: &Value,
) -> Result<Option<Planned>, MapError> {
    let Some(before) = before else {
        return Ok(Some(with_patient(
            ctx,
            after,
            "A28",
            "ADT_A05",
            vec![pv1_not_applicable()],
        )?));
    };
    if let Some(survivor) = new_link(before, after, "replaced-by")
        && after.get("active") == Some(&Value::Bool(false))
    {
        return merge(ctx, before, after, survivor).map(Some);
    }
    if new_link(before, after, "replaces").is_some() {
        // The survivor of a merge: the merged patient's A40 announces it.
        return Ok(None);
    }
    let old = segments(ctx, before)?;
    let new = segments(ctx, after)?;
    if old == new {
        return Ok(None);
    }
    Ok(Some(with_patient(
        ctx,
        after,
        "A31",
        "ADT_A05",
        vec![pv1_not_applicable()],
    )?))
}

/// An ADT message about `patient`: PID, PD1, then `rest`.
fn with_patient(
    ctx: &mut Ctx,
    patient: &Value,
    event: &'static str,
    structure: &'static str,
    rest: Vec<Seg>,
) -> Result<Planned, MapError> {
    let mut segs = segments(ctx, patient)?;
    segs.extend(rest);
    Ok(Planned {
        code: "ADT",
        event,
        structure,
        segments: segs,
        patient_id: str_of(patient, "id").map(str::to_owned),
    })
}

/// `PV1|1|N`: the PV1 that ADT_A05 requires, for a message with no visit.
fn pv1_not_applicable() -> Seg {
    let mut s = Seg::new("PV1");
    s.text(1, "1").text(2, "N");
    s
}

/// The `other` reference of a `link` of `kind` that `after` has and
/// `before` had not.
fn new_link<'v>(before: &Value, after: &'v Value, kind: &str) -> Option<&'v Value> {
    let links_of = |p: &Value| -> Vec<Option<String>> {
        arr(p, "link")
            .iter()
            .filter(|l| str_of(l, "type") == Some(kind))
            .map(|l| {
                l.get("other")
                    .and_then(|o| str_of(o, "reference"))
                    .map(str::to_owned)
            })
            .collect()
    };
    let old = links_of(before);
    arr(after, "link")
        .iter()
        .filter(|l| str_of(l, "type") == Some(kind))
        .find(|l| {
            let r = l
                .get("other")
                .and_then(|o| str_of(o, "reference"))
                .map(str::to_owned);
            !old.contains(&r)
        })
        .and_then(|l| l.get("other"))
}

fn merge(
    ctx: &mut Ctx,
    before: &Value,
    after: &Value,
    survivor_ref: &Value,
) -> Result<Planned, MapError> {
    let Some(survivor) = ctx.resolve_as(after, survivor_ref, "Patient")? else {
        return Err(MapError::content(
            204,
            Some("PID-3"),
            format!(
                "{} is merged into {}, which is not a Patient in the record",
                super::describe(after),
                str_of(survivor_ref, "reference").unwrap_or("(no reference)")
            ),
        ));
    };
    let mut mrg = Seg::new("MRG");
    let mut ids = identifiers(ctx.cfg, after, false);
    if ids.is_empty() {
        ids = identifiers(ctx.cfg, before, false);
    }
    mrg.reps(1, ids);
    let name_source = if main_name(after).is_some() {
        after
    } else {
        before
    };
    if let Some(n) = main_name(name_source) {
        mrg.rep(7, xpn(n));
    }
    with_patient(ctx, &survivor, "A40", "ADT_A39", vec![mrg])
}

/// PID and, when it has data, PD1.
pub(crate) fn segments(ctx: &mut Ctx, patient: &Value) -> Result<Vec<Seg>, MapError> {
    let mut out = vec![pid(ctx.cfg, patient)];
    let pd1 = pd1(ctx, patient)?;
    if pd1.has_data() {
        out.push(pd1);
    }
    Ok(out)
}

/// PID-3 repetitions (also MRG-1): NHS number first, then the others.
fn identifiers(cfg: &MappingConfig, patient: &Value, skip_old: bool) -> Vec<Rep> {
    let ids: Vec<&Value> = arr(patient, "identifier")
        .iter()
        .filter(|i| !(skip_old && str_of(i, "use") == Some("old")))
        .collect();
    let is_nhs = |i: &Value| str_of(i, "system") == Some(NHS_NUMBER_SYSTEM);
    let mut out = Vec::new();
    for i in ids.iter().filter(|i| is_nhs(i)) {
        if let Some(v) = str_of(i, "value") {
            out.push(Rep::text(v).c(4, "NHS").c(5, "NH"));
        }
    }
    for i in ids.iter().filter(|i| !is_nhs(i)) {
        let Some(v) = str_of(i, "value") else {
            continue;
        };
        let (authority, kind) = match str_of(i, "system").and_then(|s| local_authority_type(cfg, s))
        {
            Some(at) => at,
            None => (String::new(), "PI".to_string()),
        };
        out.push(Rep::text(v).c(4, authority).c(5, kind));
    }
    out
}

/// Assigning authority and identifier type of a local system built by
/// [`MappingConfig::local_system`], upper-cased; `None` for other systems.
pub(crate) fn local_authority_type(cfg: &MappingConfig, system: &str) -> Option<(String, String)> {
    let rest = system
        .strip_prefix(cfg.identifier_base.as_str())?
        .strip_prefix('/')?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    if rest == "local" {
        return Some((String::new(), String::new()));
    }
    let up = |s: &str| s.to_ascii_uppercase();
    Some(match rest.rsplit_once('-') {
        Some((a, t)) if !a.is_empty() && !t.is_empty() => (up(a), up(t)),
        _ if IDENTIFIER_TYPES.contains(&up(rest).as_str()) => (String::new(), up(rest)),
        _ => (up(rest.trim_matches('-')), String::new()),
    })
}

/// A HumanName as XPN: `family^given^middle^suffix^prefix^^type`.
fn xpn(n: &Value) -> Rep {
    let kind = match str_of(n, "use") {
        Some("official") => "L",
        Some("usual") => "D",
        Some("nickname") => "N",
        Some("maiden") => "M",
        Some("anonymous") => "S",
        _ => "",
    };
    let mut rep = Rep::new()
        .opt(1, str_of(n, "family"))
        .opt(2, arr(n, "given").first().and_then(Value::as_str))
        .opt(3, joined(n, "given", 1))
        .opt(4, joined(n, "suffix", 0))
        .opt(5, joined(n, "prefix", 0));
    if rep.get(1).is_none() && rep.get(2).is_none() {
        rep = rep.opt(1, str_of(n, "text"));
    }
    if rep.is_empty() { rep } else { rep.c(7, kind) }
}

fn xad(a: &Value) -> Rep {
    let lines: Vec<&str> = arr(a, "line")
        .iter()
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    let kind = match str_of(a, "use") {
        Some("home") => "H",
        Some("work") => "O",
        Some("temp") => "C",
        _ if str_of(a, "type") == Some("postal") => "M",
        _ => "",
    };
    let mut rep = Rep::new()
        .opt(1, lines.first())
        .opt(2, lines.get(1))
        .opt(3, str_of(a, "city"))
        .opt(4, str_of(a, "district").or_else(|| str_of(a, "state")))
        .opt(5, str_of(a, "postalCode"))
        .opt(6, str_of(a, "country"))
        .opt(8, (lines.len() > 2).then(|| lines[2..].join(", ")));
    if rep.is_empty() {
        rep = rep.opt(1, str_of(a, "text"));
    }
    if rep.is_empty() { rep } else { rep.c(7, kind) }
}

/// A ContactPoint as XTN, or None when it has no v2 form (URLs, old ones).
fn xtn(t: &Value) -> Option<Rep> {
    let value = str_of(t, "value")?;
    let usage = match str_of(t, "use") {
        Some("old") => return None,
        Some("work") => "WPN",
        Some("temp") => "ORN",
        _ => "PRN",
    };
    Some(match str_of(t, "system") {
        Some("email") => Rep::new().c(2, "NET").c(3, "Internet").c(4, value),
        Some("fax") => Rep::text(value).c(2, usage).c(3, "FX"),
        Some("pager") => Rep::text(value).c(2, "BPN").c(3, "BP"),
        Some("sms") => Rep::text(value).c(2, usage).c(3, "CP"),
        Some("phone") if str_of(t, "use") == Some("mobile") => {
            Rep::text(value).c(2, usage).c(3, "CP")
        }
        Some("phone") | None => Rep::text(value).c(2, usage).c(3, "PH"),
        _ => return None,
    })
}

pub(crate) fn pid(cfg: &MappingConfig, patient: &Value) -> Seg {
    let mut s = Seg::new("PID");
    s.text(1, "1");
    s.reps(3, identifiers(cfg, patient, true));
    let names = arr(patient, "name");
    let official = names
        .iter()
        .filter(|n| str_of(n, "use") == Some("official"));
    let others = names
        .iter()
        .filter(|n| str_of(n, "use") != Some("official"));
    s.reps(5, official.chain(others).map(xpn));
    s.opt(7, dtm_of(patient, "birthDate"));
    s.opt(
        8,
        str_of(patient, "gender").map(|g| match g {
            "male" => "M",
            "female" => "F",
            "other" => "O",
            _ => "U",
        }),
    );
    s.reps(
        11,
        arr(patient, "address")
            .iter()
            .filter(|a| str_of(a, "use") != Some("old"))
            .map(xad),
    );
    for t in arr(patient, "telecom") {
        let field = if str_of(t, "use") == Some("work") {
            14
        } else {
            13
        };
        if let Some(rep) = xtn(t) {
            s.rep(field, rep);
        }
    }
    s.opt(16, concept_code(patient, "maritalStatus"));
    // PID-22: the UK Core ethnic category, when coded in the England code
    // system (sent without a coding system, as inbound reads it back).
    if let Some(c) = extension_codings(patient, ETHNIC_CATEGORY_EXTENSION)
        .find(|c| str_of(c, "system") == Some(ETHNIC_CATEGORY_SYSTEM))
        && let Some(code) = str_of(c, "code")
    {
        s.rep(22, Rep::text(code).opt(2, str_of(c, "display")));
    }
    // PID-32: the verification status of the current NHS number (NSTS0n).
    let nhs = arr(patient, "identifier").iter().find(|i| {
        str_of(i, "system") == Some(NHS_NUMBER_SYSTEM) && str_of(i, "use") != Some("old")
    });
    if let Some(status) = nhs
        .and_then(|i| {
            extension_codings(i, NHS_VERIFICATION_EXTENSION)
                .find(|c| str_of(c, "system") == Some(NHS_VERIFICATION_SYSTEM))
        })
        .and_then(|c| str_of(c, "code"))
        .and_then(|code| codes::to_v2(codes::NHS_NUMBER_STATUS, code))
    {
        s.text(32, status);
    }
    if let Some(d) = dtm_of(patient, "deceasedDateTime") {
        s.text(29, d).text(30, "Y");
    } else {
        match patient.get("deceasedBoolean") {
            Some(Value::Bool(true)) => {
                s.text(30, "Y");
            }
            Some(Value::Bool(false)) => {
                s.text(30, "N");
            }
            _ => {}
        }
    }
    s
}

/// The codings of the `valueCodeableConcept` of `v`'s extensions with `url`.
fn extension_codings<'v>(v: &'v Value, url: &'v str) -> impl Iterator<Item = &'v Value> {
    arr(v, "extension")
        .iter()
        .filter(move |e| str_of(e, "url") == Some(url))
        .flat_map(|e| {
            e.get("valueCodeableConcept")
                .map(|cc| arr(cc, "coding").iter())
                .into_iter()
                .flatten()
        })
}

/// PD1-3 (GP practice) and PD1-4 (GP) from `generalPractitioner`.
fn pd1(ctx: &mut Ctx, patient: &Value) -> Result<Seg, MapError> {
    let mut s = Seg::new("PD1");
    for gp in arr(patient, "generalPractitioner") {
        let resolved = ctx.resolve(patient, gp)?;
        let kind = resolved
            .as_ref()
            .and_then(|r| str_of(r, "resourceType"))
            .or_else(|| str_of(gp, "type"))
            .or_else(|| {
                str_of(gp, "reference")
                    .and_then(super::split_reference)
                    .map(|(t, _)| t)
            });
        match kind {
            Some("Organization") => {
                let (name, ods) = match &resolved {
                    Some(o) => (str_of(o, "name"), ods_code(o)),
                    None => (
                        str_of(gp, "display"),
                        gp.get("identifier").and_then(|i| str_of(i, "value")),
                    ),
                };
                s.rep(3, Rep::new().opt(1, name).opt(3, ods));
            }
            Some("Practitioner") | Some("PractitionerRole") => {
                let practitioner = match &resolved {
                    Some(r) if str_of(r, "resourceType") == Some("PractitionerRole") => {
                        ctx.practitioner(patient, gp)?
                    }
                    other => other.clone(),
                };
                let rep = match &practitioner {
                    Some(p) => {
                        let gmp = arr(p, "identifier")
                            .iter()
                            .find(|i| system_is(str_of(i, "system"), "gmp-number"))
                            .and_then(|i| str_of(i, "value"));
                        xcn(p, gmp.or_else(|| clinician_id(ctx.cfg, p)))
                    }
                    None => Rep::new()
                        .opt(1, gp.get("identifier").and_then(|i| str_of(i, "value")))
                        .opt(2, str_of(gp, "display")),
                };
                s.rep(4, rep);
            }
            _ => {}
        }
    }
    Ok(s)
}

fn ods_code(org: &Value) -> Option<&str> {
    arr(org, "identifier")
        .iter()
        .find(|i| {
            system_is(str_of(i, "system"), "ods-organization-code")
                || system_is(str_of(i, "system"), "ods-organisation-code")
        })
        .and_then(|i| str_of(i, "value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_systems_reverse() {
        let cfg = MappingConfig::default();
        let back = |a: &str, t: &str| local_authority_type(&cfg, &cfg.local_system(a, t));
        assert_eq!(back("RFH", "MR"), Some(("RFH".into(), "MR".into())));
        assert_eq!(back("RF-H", "MR"), Some(("RF-H".into(), "MR".into())));
        assert_eq!(back("", "MR"), Some(("".into(), "MR".into())));
        assert_eq!(back("RFH", ""), Some(("RFH".into(), "".into())));
        assert_eq!(back("", ""), Some(("".into(), "".into())));
        assert_eq!(
            local_authority_type(&cfg, "https://other.example/Id/rfh-mr"),
            None
        );
        assert_eq!(
            local_authority_type(&cfg, &format!("{}/a/b", cfg.identifier_base)),
            None
        );
    }
}
