//! PID / PD1 → Patient (see the rules in the module doc of `inbound`).

use serde_json::{Map, Value, json};
use wardline_fhir::nhs_number;
use wardline_hl7::{Message, Repetition};
use wardline_workflow::pmi::{
    ETHNIC_CATEGORY_EXTENSION, NHS_VERIFICATION_EXTENSION, SUPERSEDED_NHS_NUMBER_SYSTEM,
    UK_CORE_PATIENT, ethnic_category_extension, nhs_verification_extension,
};

use crate::codes::{self, NHS_NUMBER_STATUS};
use crate::{MapError, MappingConfig, NHS_NUMBER_SYSTEM, Records};

use super::util::{Seg, Upd, codeable, id_of, organization, practitioner, rc, rcs, upd};

/// How the demographics of a found patient are treated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// ADT: elements present in the message replace the stored ones.
    Update,
    /// Orders, results, appointments, documents: find the patient, create it
    /// (with the message's demographics) when unknown, never change it.
    FindOrCreate,
}

/// CX repetitions of `field` → FHIR identifiers (NHS number validated).
pub(crate) fn identifiers(
    seg: &Seg<'_, '_>,
    field: usize,
    cfg: &MappingConfig,
) -> Result<Vec<Value>, MapError> {
    let mut out: Vec<Value> = Vec::new();
    for rep in seg.reps(field) {
        let Some(value) = rc(&rep, 1) else { continue };
        let authority = rc(&rep, 4).unwrap_or_default();
        let type_code = rc(&rep, 5).unwrap_or_default();
        let is_nhs = authority.eq_ignore_ascii_case("NHS") || type_code.eq_ignore_ascii_case("NH");
        let ident = if is_nhs {
            let n = nhs_number::normalise(&value)
                .filter(|n| nhs_number::is_valid(n))
                .ok_or_else(|| {
                    MapError::content(
                        102,
                        Some(&seg.loc(field)),
                        format!(
                            "{} NHS number '{value}' is not valid (ten digits with a Modulus 11 check digit)",
                            seg.loc(field)
                        ),
                    )
                })?;
            json!({"system": NHS_NUMBER_SYSTEM, "value": n})
        } else {
            let mut i = json!({"use": "usual"});
            if crate::inbound::util::valid_code(&type_code) {
                i["type"] = json!({"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": type_code}]});
            } else if !type_code.is_empty() {
                i["type"] = json!({"text": type_code});
            }
            i["system"] = json!(cfg.local_system(&authority, &type_code));
            i["value"] = json!(value);
            i
        };
        if !out.iter().any(|o| same_identifier(o, &ident)) {
            out.push(ident);
        }
    }
    Ok(out)
}

pub(crate) fn same_identifier(a: &Value, b: &Value) -> bool {
    a["system"] == b["system"] && a["value"] == b["value"]
}

/// The stored patient carrying one of the identifiers: the NHS number as a
/// current one, then as a superseded one, then the local numbers.
pub(crate) fn find(records: &mut dyn Records, ids: &[Value]) -> Result<Option<Value>, MapError> {
    let nhs = ids.iter().filter(|i| i["system"] == NHS_NUMBER_SYSTEM);
    let lookups = nhs
        .clone()
        .map(|i| (NHS_NUMBER_SYSTEM, &i["value"]))
        .chain(nhs.map(|i| (SUPERSEDED_NHS_NUMBER_SYSTEM, &i["value"])))
        .chain(
            ids.iter()
                .filter(|i| i["system"] != NHS_NUMBER_SYSTEM)
                .filter_map(|i| Some((i["system"].as_str()?, &i["value"]))),
        );
    for (s, v) in lookups {
        let Some(v) = v.as_str() else {
            continue;
        };
        if let Some(p) = records.find_by_identifier("Patient", s, v)? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// PID-32 → the verification status of the message's NHS number (the
/// first repetition with an NHS number status; other table 0445 codes are
/// not about it). An `NSTS` code outside the table is 103.
fn nhs_number_status(pid: &Seg<'_, '_>) -> Result<Option<Value>, MapError> {
    for rep in pid.reps(32) {
        let Some(code) = rc(&rep, 1) else { continue };
        if let Some(status) = codes::to_fhir(NHS_NUMBER_STATUS, &code) {
            return Ok(nhs_verification_extension(status));
        }
        if code.to_ascii_uppercase().starts_with("NSTS") {
            return Err(content(
                103,
                &pid.loc(32),
                format!(
                    "{} NHS number status '{code}' is not one of NSTS01 to NSTS08",
                    pid.loc(32)
                ),
            ));
        }
    }
    Ok(None)
}

/// Finds or creates the patient of the message's PID; returns its id.
pub(crate) fn upsert(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    mode: Mode,
) -> Result<String, MapError> {
    let Some(pid) = Seg::first(msg, "PID") else {
        return Err(MapError::content(
            101,
            Some("PID-3"),
            "the message has no PID segment, so no patient identifier (PID-3)",
        ));
    };
    let mut ids = identifiers(&pid, 3, cfg)?;
    if let Some(status) = nhs_number_status(&pid)?
        && let Some(n) = ids.iter_mut().find(|i| i["system"] == NHS_NUMBER_SYSTEM)
    {
        n["extension"] = json!([status]);
    }
    if ids.is_empty() {
        return Err(MapError::content(
            101,
            Some("PID-3"),
            format!(
                "PID-3 (patient identifier list) has no identifier: '{}'",
                pid.raw(3)
            ),
        ));
    }
    let existing = find(records, &ids)?;
    let pd1 = Seg::first(msg, "PD1");
    match existing {
        Some(p) if mode == Mode::FindOrCreate => Ok(id_of(&p)),
        Some(mut p) => {
            merge_identifiers(&mut p, &ids);
            demographics(&mut p, &pid, pd1.as_ref(), msg, records, cfg)?;
            records.save(p)
        }
        None => {
            let mut p = json!({"resourceType": "Patient", "meta": {"profile": [UK_CORE_PATIENT]},
                "identifier": ids, "active": true});
            demographics(&mut p, &pid, pd1.as_ref(), msg, records, cfg)?;
            records.save(p)
        }
    }
}

/// What the message's PID says about the patient, as a Patient that is
/// not saved (identifiers, names, birth date, sex, address, telecom; no
/// GP): for a result that cannot be matched, kept as what the sender said.
/// `None` when there is no PID.
pub(crate) fn reported(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
) -> Result<Option<Value>, MapError> {
    let Some(pid) = Seg::first(msg, "PID") else {
        return Ok(None);
    };
    let ids = identifiers(&pid, 3, cfg)?;
    let mut p = json!({"resourceType": "Patient"});
    if !ids.is_empty() {
        p["identifier"] = Value::Array(ids);
    }
    demographics(&mut p, &pid, None, msg, records, cfg)?;
    Ok(Some(p))
}

/// Adds the message's identifiers to the stored ones. A different NHS
/// number replaces the stored one, which is kept under
/// [`SUPERSEDED_NHS_NUMBER_SYSTEM`] with `use` `old` (UK Core allows one NHS
/// number); an NHS number that had been superseded is current again. The
/// message's NHS number status (PID-32) replaces the stored one; without
/// one the stored status stays.
fn merge_identifiers(p: &mut Value, ids: &[Value]) {
    let mut stored: Vec<Value> = p["identifier"].as_array().cloned().unwrap_or_default();
    // Replaced numbers stored before issue 15 (NHS system, `use` `old`).
    for s in stored.iter_mut() {
        if s["system"] == NHS_NUMBER_SYSTEM && s["use"] == "old" {
            *s = json!({"use": "old", "system": SUPERSEDED_NHS_NUMBER_SYSTEM, "value": s["value"]});
        }
    }
    if let Some(n) = ids.iter().find(|i| i["system"] == NHS_NUMBER_SYSTEM) {
        stored
            .retain(|s| !(s["system"] == SUPERSEDED_NHS_NUMBER_SYSTEM && s["value"] == n["value"]));
        for s in stored.iter_mut() {
            if s["system"] == NHS_NUMBER_SYSTEM && s["value"] != n["value"] {
                *s = json!({"use": "old", "system": SUPERSEDED_NHS_NUMBER_SYSTEM, "value": s["value"]});
            }
        }
        let mut seen = Vec::new();
        stored.retain(|s| {
            let key = (s["system"].clone(), s["value"].clone());
            let first = !seen.contains(&key);
            seen.push(key);
            first
        });
    }
    for i in ids {
        match stored.iter_mut().find(|s| same_identifier(s, i)) {
            Some(s) => {
                if let Some(status) = i["extension"].as_array().and_then(|e| e.first()) {
                    let mut exts: Vec<Value> =
                        s["extension"].as_array().cloned().unwrap_or_default();
                    exts.retain(|e| e["url"] != NHS_VERIFICATION_EXTENSION);
                    exts.push(status.clone());
                    s["extension"] = Value::Array(exts);
                }
            }
            None => stored.push(i.clone()),
        }
    }
    p["identifier"] = Value::Array(stored);
}

fn content(code: u16, loc: &str, text: String) -> MapError {
    MapError::content(code, Some(loc), text)
}

/// PID/PD1 demographics into `p`: present elements replace, `""` deletes,
/// empty leaves unchanged.
fn demographics(
    p: &mut Value,
    pid: &Seg<'_, '_>,
    pd1: Option<&Seg<'_, '_>>,
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
) -> Result<(), MapError> {
    upd(pid, 5, |reps| {
        let names: Vec<Value> = reps.iter().filter_map(name).collect();
        Ok((!names.is_empty()).then_some(names))
    })?
    .apply_to(p, "name", Value::Array);

    if pid.is_null(7) {
        Upd::<()>::Delete.apply_to(p, "birthDate", |_| Value::Null);
    } else if let Some(t) = pid.ts(7)? {
        p["birthDate"] = json!(t.date());
    }

    upd(pid, 8, |reps| {
        let Some(code) = rc(&reps[0], 1) else {
            return Ok(None);
        };
        let g = match code.to_ascii_uppercase().as_str() {
            "M" => "male",
            "F" => "female",
            "U" | "N" => "unknown",
            "O" | "A" => "other",
            _ => {
                return Err(content(
                    103,
                    &pid.loc(8),
                    format!(
                        "{} administrative sex '{code}' is not in HL7 table 0001 (M, F, U, O, A, N)",
                        pid.loc(8)
                    ),
                ));
            }
        };
        Ok(Some(g))
    })?
    .apply_to(p, "gender", |g| json!(g));

    upd(pid, 11, |reps| {
        let a: Vec<Value> = reps.iter().filter_map(address).collect();
        Ok((!a.is_empty()).then_some(a))
    })?
    .apply_to(p, "address", Value::Array);

    // Telecom: PID-13 (home: every use but work) and PID-14 (work).
    let home = upd(pid, 13, |reps| Ok(Some(telecoms(reps, false))))?;
    let work = upd(pid, 14, |reps| Ok(Some(telecoms(reps, true))))?;
    if !(matches!(home, Upd::Keep) && matches!(work, Upd::Keep)) {
        let stored: Vec<Value> = p["telecom"].as_array().cloned().unwrap_or_default();
        let (stored_work, stored_home): (Vec<Value>, Vec<Value>) =
            stored.into_iter().partition(|t| t["use"] == "work");
        let mut all = match home {
            Upd::Keep => stored_home,
            Upd::Delete => vec![],
            Upd::Set(v) => v,
        };
        all.extend(match work {
            Upd::Keep => stored_work,
            Upd::Delete => vec![],
            Upd::Set(v) => v,
        });
        if all.is_empty() {
            Upd::<()>::Delete.apply_to(p, "telecom", |_| Value::Null);
        } else {
            p["telecom"] = Value::Array(all);
        }
    }

    upd(pid, 16, |reps| Ok(marital(&reps[0])))?.apply_to(p, "maritalStatus", |v| v);

    // PID-22 → the UK Core ethnic category (one, on the Patient).
    let ethnic = upd(pid, 22, |reps| Ok(ethnic_category(&reps[0], cfg)))?;
    if !matches!(ethnic, Upd::Keep) {
        let mut exts: Vec<Value> = p["extension"].as_array().cloned().unwrap_or_default();
        exts.retain(|e| e["url"] != ETHNIC_CATEGORY_EXTENSION);
        if let Upd::Set(e) = ethnic {
            exts.push(e);
        }
        if exts.is_empty() {
            if let Some(o) = p.as_object_mut() {
                o.shift_remove("extension");
            }
        } else {
            p["extension"] = Value::Array(exts);
        }
    }

    // Death: PID-29 date/time, PID-30 indicator.
    let remove = |p: &mut Value, k: &str| {
        if let Some(o) = p.as_object_mut() {
            o.shift_remove(k);
        }
    };
    if pid.is_null(29) || pid.is_null(30) {
        remove(p, "deceasedDateTime");
        remove(p, "deceasedBoolean");
    }
    if let Some(t) = pid.ts(29)? {
        remove(p, "deceasedBoolean");
        p["deceasedDateTime"] = json!(t.date_time());
    } else if let Some(ind) = pid.v(30) {
        match ind.to_ascii_uppercase().as_str() {
            "Y" | "YES" => {
                if p.get("deceasedDateTime").is_none() {
                    p["deceasedBoolean"] = json!(true);
                }
            }
            "N" | "NO" => {
                remove(p, "deceasedDateTime");
                p["deceasedBoolean"] = json!(false);
            }
            _ => {
                return Err(content(
                    103,
                    &pid.loc(30),
                    format!(
                        "{} patient death indicator '{ind}' is not Y or N",
                        pid.loc(30)
                    ),
                ));
            }
        }
    }

    if let Some(pd1) = pd1 {
        general_practitioner(p, pd1, records, cfg)?;
    }
    let _ = msg;
    Ok(())
}

/// PD1-3 practice (Organization) and PD1-4 GP (Practitioner).
fn general_practitioner(
    p: &mut Value,
    pd1: &Seg<'_, '_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
) -> Result<(), MapError> {
    let org = if pd1.is_null(3) {
        Upd::Delete
    } else {
        match pd1.reps(3).first() {
            Some(r) => match organization(r, records)? {
                Some(o) => Upd::Set(o),
                None => Upd::Keep,
            },
            None => Upd::Keep,
        }
    };
    let gp = if pd1.is_null(4) {
        Upd::Delete
    } else {
        match pd1.reps(4).first() {
            Some(r) => match practitioner(r, records, cfg)? {
                Some(o) => Upd::Set(o),
                None => Upd::Keep,
            },
            None => Upd::Keep,
        }
    };
    if matches!(org, Upd::Keep) && matches!(gp, Upd::Keep) {
        return Ok(());
    }
    let stored: Vec<Value> = p["generalPractitioner"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let of = |prefix: &str| -> Vec<Value> {
        stored
            .iter()
            .filter(|r| {
                r["reference"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(prefix))
            })
            .cloned()
            .collect()
    };
    let mut all = match org {
        Upd::Keep => of("Organization/"),
        Upd::Delete => vec![],
        Upd::Set(v) => vec![v],
    };
    all.extend(match gp {
        Upd::Keep => of("Practitioner/"),
        Upd::Delete => vec![],
        Upd::Set(v) => vec![v],
    });
    if all.is_empty() {
        if let Some(o) = p.as_object_mut() {
            o.shift_remove("generalPractitioner");
        }
    } else {
        p["generalPractitioner"] = Value::Array(all);
    }
    Ok(())
}

/// XPN → HumanName.
pub(crate) fn name(rep: &Repetition<'_>) -> Option<Value> {
    let family = rcs(rep, 1, 1);
    let given: Vec<String> = [rc(rep, 2), rc(rep, 3)]
        .into_iter()
        .flatten()
        .flat_map(|g| g.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    if family.is_none() && given.is_empty() {
        return None;
    }
    let mut n = Map::new();
    if let Some(u) = rc(rep, 7).and_then(|t| match t.to_ascii_uppercase().as_str() {
        "L" => Some("official"),
        "D" | "A" => Some("usual"),
        "M" | "B" => Some("maiden"),
        "N" => Some("nickname"),
        "S" => Some("anonymous"),
        "NOUSE" | "BAD" => Some("old"),
        _ => None,
    }) {
        n.insert("use".into(), json!(u));
    }
    if let Some(f) = family {
        n.insert("family".into(), json!(f));
    }
    if !given.is_empty() {
        n.insert("given".into(), json!(given));
    }
    if let Some(pfx) = rc(rep, 5) {
        n.insert("prefix".into(), json!([pfx]));
    }
    let suffix: Vec<String> = [rc(rep, 4), rc(rep, 6)].into_iter().flatten().collect();
    if !suffix.is_empty() {
        n.insert("suffix".into(), json!(suffix));
    }
    Some(Value::Object(n))
}

/// A UK postcode in its canonical form (`NW3 2QG`); other values trimmed.
pub(crate) fn postcode(s: &str) -> String {
    let compact: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let b = compact.as_bytes();
    let uk = (5..=7).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 3].is_ascii_digit()
        && b[b.len() - 2].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphabetic()
        && b[..b.len() - 3].iter().all(u8::is_ascii_alphanumeric)
        && b[1..b.len() - 3].iter().any(u8::is_ascii_digit);
    if uk {
        format!("{} {}", &compact[..b.len() - 3], &compact[b.len() - 3..])
    } else {
        s.trim().to_owned()
    }
}

/// XAD → Address.
fn address(rep: &Repetition<'_>) -> Option<Value> {
    let lines: Vec<String> = [rcs(rep, 1, 1), rc(rep, 2), rc(rep, 8)]
        .into_iter()
        .flatten()
        .collect();
    let city = rc(rep, 3);
    let district = rc(rep, 4);
    let pc = rc(rep, 5).map(|p| postcode(&p));
    let country = rc(rep, 6);
    if lines.is_empty() && city.is_none() && district.is_none() && pc.is_none() {
        return None;
    }
    let mut a = Map::new();
    match rc(rep, 7).map(|t| t.to_ascii_uppercase()).as_deref() {
        Some("H") => {
            a.insert("use".into(), json!("home"));
        }
        Some("B") | Some("O") => {
            a.insert("use".into(), json!("work"));
        }
        Some("C") => {
            a.insert("use".into(), json!("temp"));
        }
        Some("BA") => {
            a.insert("use".into(), json!("old"));
        }
        Some("M") => {
            a.insert("type".into(), json!("postal"));
        }
        _ => {}
    }
    if !lines.is_empty() {
        a.insert("line".into(), json!(lines));
    }
    if let Some(c) = city {
        a.insert("city".into(), json!(c));
    }
    if let Some(d) = district {
        a.insert("district".into(), json!(d));
    }
    if let Some(p) = pc {
        a.insert("postalCode".into(), json!(p));
    }
    if let Some(c) = country {
        a.insert("country".into(), json!(c));
    }
    Some(Value::Object(a))
}

/// XTN repetitions → ContactPoints (`work` for PID-14).
fn telecoms(reps: &[Repetition<'_>], work: bool) -> Vec<Value> {
    reps.iter()
        .filter_map(|rep| {
            let use_code = rc(rep, 2).unwrap_or_default().to_ascii_uppercase();
            let equip = rc(rep, 3).unwrap_or_default().to_ascii_uppercase();
            let email = equip == "INTERNET" || equip == "X.400" || use_code == "NET";
            let value = if email {
                rc(rep, 4).or_else(|| rc(rep, 1))
            } else {
                rc(rep, 12).or_else(|| rc(rep, 1)).or_else(|| {
                    let parts: Vec<String> = [rc(rep, 5), rc(rep, 6), rc(rep, 7)]
                        .into_iter()
                        .flatten()
                        .collect();
                    (!parts.is_empty()).then(|| parts.join(" "))
                })
            }?;
            let system = if email {
                "email"
            } else {
                match equip.as_str() {
                    "FX" => "fax",
                    "BP" => "pager",
                    _ => "phone",
                }
            };
            let u = if work || use_code == "WPN" {
                Some("work")
            } else if equip == "CP" || use_code == "PRS" {
                Some("mobile")
            } else if use_code == "ORN" || use_code == "VHN" {
                Some("temp")
            } else if system == "email" {
                None
            } else {
                Some("home")
            };
            let mut t = json!({"system": system, "value": value});
            if let Some(u) = u {
                t["use"] = json!(u);
            }
            Some(t)
        })
        .collect()
}

/// PID-22 (CE) → the UK Core ethnic category extension: an NHS Data
/// Dictionary code (`A`–`Z`, `99`) sent without a coding system (or as
/// `NHS`) in the England code system; any other value as the general CE
/// rule maps it (a local system, or text).
fn ethnic_category(rep: &Repetition<'_>, cfg: &MappingConfig) -> Option<Value> {
    let code = rc(rep, 1);
    let system = rc(rep, 3).unwrap_or_default();
    if (system.is_empty() || system.eq_ignore_ascii_case("NHS"))
        && let Some(e) = code.as_deref().and_then(ethnic_category_extension)
    {
        return Some(e);
    }
    let value = codeable(rep, cfg)?;
    Some(json!({"url": ETHNIC_CATEGORY_EXTENSION, "valueCodeableConcept": value}))
}

/// PID-16 (table 0002) → maritalStatus (v3-MaritalStatus where it has the
/// concept, else the v2 table).
fn marital(rep: &Repetition<'_>) -> Option<Value> {
    let code = rc(rep, 1)?;
    let v3 = match code.to_ascii_uppercase().as_str() {
        "A" | "E" => Some(("L", "Legally Separated")),
        "D" => Some(("D", "Divorced")),
        "M" => Some(("M", "Married")),
        "S" => Some(("S", "Never Married")),
        "W" => Some(("W", "Widowed")),
        "N" => Some(("A", "Annulled")),
        "I" => Some(("I", "Interlocutory")),
        "P" | "R" | "C" | "G" => Some(("T", "Domestic partner")),
        "B" => Some(("U", "unmarried")),
        "U" => Some(("UNK", "unknown")),
        _ => None,
    };
    let coding = match v3 {
        Some(("UNK", d)) => json!({"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
            "code": "UNK", "display": d}),
        Some((c, d)) => json!({"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
            "code": c, "display": d}),
        None if !crate::inbound::util::valid_code(&code) => return Some(json!({"text": code})),
        None => json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0002", "code": code}),
    };
    let mut cc = json!({"coding": [coding]});
    if let Some(t) = rc(rep, 2) {
        cc["text"] = json!(t);
    }
    Some(cc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcodes() {
        assert_eq!(postcode("nw32qg"), "NW3 2QG");
        assert_eq!(postcode("NW3  2QG"), "NW3 2QG");
        assert_eq!(postcode("SW1A1AA"), "SW1A 1AA");
        assert_eq!(postcode("M1 1AE"), "M1 1AE");
        assert_eq!(postcode("B338TH"), "B33 8TH");
        assert_eq!(postcode("50112"), "50112");
        assert_eq!(postcode(" 90210-1234 "), "90210-1234");
    }
}
