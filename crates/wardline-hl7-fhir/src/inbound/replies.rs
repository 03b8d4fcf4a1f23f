//! ORL^O22 / ORR^O02: the filler's answer to an order Wardline sent (see
//! the rules in the module doc of `inbound`, "Order replies").

use serde_json::{Value, json};
use wardline_hl7::Message;

use crate::{MapError, MappingConfig, Records};

use super::Applied;
use super::util::{Seg, event_time, formatted_text, id_of, rc};

/// What an ORC-1 of a reply asks of the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// OK / NA: accepted (a filler number may be assigned); status kept.
    Accepted,
    /// UA: the filler cannot accept it: cancelled, with the reason.
    Refused,
    /// CR / OC: cancelled (as requested, or by the filler).
    Cancelled,
    /// UC: the filler could not cancel it: a note, the status kept.
    NotCancelled,
}

/// ORC-1 of a reply (table 0119) → its outcome; `None` for a code replies
/// do not use.
pub(crate) fn outcome(control: &str) -> Option<Outcome> {
    Some(match control.trim().to_ascii_uppercase().as_str() {
        "OK" | "NA" => Outcome::Accepted,
        "UA" => Outcome::Refused,
        "CR" | "OC" => Outcome::Cancelled,
        "UC" => Outcome::NotCancelled,
        _ => return None,
    })
}

fn placer_system(cfg: &MappingConfig) -> String {
    format!("{}/placer-order", cfg.identifier_base)
}

fn filler_system(cfg: &MappingConfig) -> String {
    format!("{}/filler-order", cfg.identifier_base)
}

/// The reason a reply gives for an order: ORC-16 (text, else code), else
/// the NTEs after the ORC (until the next ORC), else ERR-8, else MSA-3.
fn reason(msg: &Message<'_>, all: &[Seg<'_, '_>], at: usize) -> Option<String> {
    let orc = all[at];
    if let Some(r) = orc.reps(16).first() {
        let text = rc(r, 2).or_else(|| rc(r, 9)).or_else(|| rc(r, 1));
        if text.is_some() {
            return text;
        }
    }
    let notes: Vec<String> = all[at + 1..]
        .iter()
        .take_while(|s| s.id() != "ORC")
        .filter(|s| s.id() == "NTE")
        .flat_map(|n| n.reps(3))
        .map(|r| formatted_text(&r.text(), msg))
        .filter(|t| !t.trim().is_empty())
        .collect();
    if !notes.is_empty() {
        return Some(notes.join("\n"));
    }
    all.iter()
        .find(|s| s.id() == "ERR")
        .and_then(|e| e.v(8))
        .or_else(|| all.iter().find(|s| s.id() == "MSA").and_then(|m| m.v(3)))
}

pub(crate) fn apply_reply(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    label: &str,
) -> Result<Applied, MapError> {
    let all = Seg::all(msg);
    let orcs: Vec<usize> = (0..all.len()).filter(|&i| all[i].id() == "ORC").collect();
    if orcs.is_empty() {
        return Err(MapError::content(
            101,
            Some("ORC-1"),
            format!("{label} has no ORC segment, so it answers for no order"),
        ));
    }
    let when = event_time(msg)?.map(|t| t.date_time());
    let filler = msg.sending_application().unwrap_or_default().to_owned();
    let mut patient = None;
    let mut saved = Vec::new();
    for &i in &orcs {
        let orc = all[i];
        // The OBR of this order group, for numbers the ORC leaves empty.
        let obr = all[i + 1..]
            .iter()
            .take_while(|s| s.id() != "ORC")
            .find(|s| s.id() == "OBR")
            .copied();
        let control = orc.v(1).unwrap_or_default();
        let Some(what) = outcome(&control) else {
            return Err(MapError::content(
                103,
                Some(&orc.loc(1)),
                format!(
                    "{} order control '{control}' is not an answer to an order (OK, NA, UA, CR, OC, UC)",
                    orc.loc(1)
                ),
            ));
        };
        let placer = orc.v(2).or_else(|| obr.and_then(|b| b.v(2)));
        let filler_no = orc.v(3).or_else(|| obr.and_then(|b| b.v(3)));
        let mut sr = None;
        if let Some(p) = &placer {
            sr = records.find_by_identifier("ServiceRequest", &placer_system(cfg), p)?;
        }
        if sr.is_none()
            && let Some(f) = &filler_no
        {
            sr = records.find_by_identifier("ServiceRequest", &filler_system(cfg), f)?;
        }
        let Some(original) = sr else {
            return Err(MapError::content(
                204,
                Some(&orc.loc(2)),
                format!(
                    "{} order '{}' is not an order Wardline placed",
                    orc.loc(2),
                    placer.or(filler_no).unwrap_or_default()
                ),
            ));
        };
        let mut sr = original.clone();
        if let Some(f) = &filler_no {
            let mut ids = sr["identifier"].as_array().cloned().unwrap_or_default();
            if !ids
                .iter()
                .any(|x| x["system"] == filler_system(cfg).as_str() && x["value"] == f.as_str())
            {
                ids.push(json!({
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "FILL"}]},
                    "system": filler_system(cfg), "value": f}));
                sr["identifier"] = Value::Array(ids);
            }
        }
        let why = reason(msg, &all, i);
        let who = if filler.is_empty() {
            "The filler".to_owned()
        } else {
            filler.clone()
        };
        let note = match what {
            Outcome::Accepted => None,
            Outcome::Refused | Outcome::Cancelled => {
                // The order's lifecycle is the orders domain's.
                let changed = wardline_workflow::orders::set_status(&mut sr, "revoked")
                    .map_err(|e| MapError::content(207, Some(&orc.loc(1)), e.message))?;
                changed.then(|| {
                    let verb = if what == Outcome::Refused {
                        "could not accept the order"
                    } else {
                        "cancelled the order"
                    };
                    format!("{who} {verb} ({control})")
                })
            }
            Outcome::NotCancelled => Some(format!("{who} could not cancel the order (UC)")),
        };
        if let Some(n) = note {
            let text = match &why {
                Some(w) => format!("{n}: {w}"),
                None => format!("{n}."),
            };
            let mut notes = sr["note"].as_array().cloned().unwrap_or_default();
            let mut entry = json!({"text": text});
            if let Some(t) = &when {
                entry["time"] = json!(t);
            }
            notes.push(entry);
            sr["note"] = Value::Array(notes);
        }
        if patient.is_none() {
            patient = sr["subject"]["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix("Patient/"))
                .map(str::to_owned);
        }
        let status = sr["status"].as_str().unwrap_or_default().to_owned();
        let id = id_of(&sr);
        // A reply sent again changes nothing.
        if sr != original {
            records.save(sr)?;
        }
        saved.push(format!("ServiceRequest/{id} {control} {status}"));
    }
    Ok(Applied {
        summary: format!("{label}: {}", saved.join(", ")),
        patient_id: patient,
    })
}
