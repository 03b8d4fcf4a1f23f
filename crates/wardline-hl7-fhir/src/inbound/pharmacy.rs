//! RDE^O11 (pharmacy/treatment encoded order) → prescriptions on the drug
//! chart, through `wardline_workflow::medicines::prescribe` on the
//! message's transaction. The mapping reference is in the module doc of
//! [`super`] ("RDE^O11 → MedicationRequest").

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_hl7::Message;
use wardline_workflow::medicines::checks::{Grade, Override};
use wardline_workflow::medicines::formulary::{self, Entry, Formulary, Qty};
use wardline_workflow::medicines::prescribe::{self, Prescriber, Prescription};
use wardline_workflow::medicines::{Kind, MedicinesError, SNOMED_SYSTEM};

use crate::records::TxRecords;
use crate::{MapError, MappingConfig};

use super::Applied;
use super::adt::find_encounter;
use super::patient;
use super::util::{Seg, id_of, practitioner, rc};

/// One order of the message: its ORC and the RXE, RXR and TQ1 that follow.
#[derive(Default, Clone, Copy)]
struct Order<'m, 'a> {
    orc: Option<Seg<'m, 'a>>,
    rxe: Option<Seg<'m, 'a>>,
    rxr: Option<Seg<'m, 'a>>,
    tq1: Option<Seg<'m, 'a>>,
    /// A TQ1 after the RXE (the RXE's own timing) wins over one before it.
    tq1_after: bool,
}

fn orders<'m, 'a>(msg: &'m Message<'a>) -> Vec<Order<'m, 'a>> {
    let mut out: Vec<Order<'m, 'a>> = Vec::new();
    for s in Seg::all(msg) {
        match (s.id(), out.last_mut()) {
            ("ORC", _) => out.push(Order {
                orc: Some(s),
                ..Order::default()
            }),
            ("RXE", Some(o)) if o.rxe.is_none() => {
                o.rxe = Some(s);
                // The route that belongs to the RXE follows it (an RXR
                // before it is the RXO's).
                o.rxr = None;
            }
            ("RXR", Some(o)) if o.rxr.is_none() => o.rxr = Some(s),
            ("TQ1", Some(o)) if o.tq1.is_none() || (o.rxe.is_some() && !o.tq1_after) => {
                o.tq1 = Some(s);
                o.tq1_after = o.rxe.is_some();
            }
            _ => {}
        }
    }
    out
}

/// The placer order number's identifier system.
pub fn placer_system(cfg: &MappingConfig) -> String {
    format!("{}/pharmacy-order", cfg.identifier_base)
}

/// HL7 table 0162 route codes → SNOMED CT route codes.
pub const ROUTES_0162: &[(&str, &str, &str)] = &[
    ("PO", "26643006", "Oral"),
    ("IV", "47625008", "Intravenous"),
    ("IM", "78421000", "Intramuscular"),
    ("SC", "34206005", "Subcutaneous"),
    ("PR", "37161004", "Rectal"),
    ("SL", "37839007", "Sublingual"),
    ("TP", "6064005", "Topical"),
];

/// Administration times (HH:MM) of the common frequencies.
pub fn times_of(pattern: &str) -> Option<Vec<String>> {
    let p = pattern.trim().to_ascii_uppercase();
    let t = |hs: &[&str]| Some(hs.iter().map(|h| (*h).to_owned()).collect());
    match p.as_str() {
        "OD" | "QD" | "DAILY" | "QAM" | "OM" => t(&["08:00"]),
        "BD" | "BID" | "Q12H" => t(&["08:00", "20:00"]),
        "TDS" | "TID" | "Q8H" => t(&["06:00", "14:00", "22:00"]),
        "QDS" | "QID" => t(&["08:00", "12:00", "18:00", "22:00"]),
        "Q6H" => t(&["06:00", "12:00", "18:00", "00:00"]),
        "Q4H" => t(&["02:00", "06:00", "10:00", "14:00", "18:00", "22:00"]),
        "ON" | "QHS" | "NOCTE" | "QPM" => t(&["22:00"]),
        _ => None,
    }
}

/// `Q4H` (or `Q4H PRN`) → 4.
pub fn interval_hours(pattern: &str) -> Option<f64> {
    let p = pattern.trim().to_ascii_uppercase();
    let p = p.split_whitespace().next()?;
    let n = p.strip_prefix('Q')?.strip_suffix('H')?;
    n.parse::<f64>().ok().filter(|n| *n > 0.0 && *n <= 24.0)
}

fn bad(code: u16, at: &str, text: impl Into<String>) -> MapError {
    MapError::content(code, Some(at), text)
}

/// The formulary entry RXE-2 names (its dm+d VMP, an AMP of it, or a local code).
pub fn entry_for<'f>(f: &'f Formulary, code: &str) -> Option<&'f Entry> {
    f.entries
        .iter()
        .filter(|e| e.active)
        .find(|e| e.vmp.code == code || e.amps.iter().any(|a| a.code == code))
}

fn unit_matches(entry: &Entry, unit: &str) -> Option<String> {
    let u = unit.trim();
    let mut allowed: Vec<&str> = vec![entry.unit_of_dose.as_str()];
    if let Some((num, _)) = &entry.strength {
        allowed.push(num.unit.as_str());
    }
    allowed
        .into_iter()
        .filter(|a| !a.is_empty())
        .find(|a| {
            a.eq_ignore_ascii_case(u)
                || a.trim_end_matches('s')
                    .eq_ignore_ascii_case(u.trim_end_matches('s'))
        })
        .map(str::to_owned)
}

/// What the order says, as a [`Prescription`] for the workflow.
fn prescription_of(
    o: &Order<'_, '_>,
    formulary: &Formulary,
    patient_id: &str,
    encounter: Option<&str>,
    now: OffsetDateTime,
) -> Result<Prescription, MapError> {
    let rxe = o
        .rxe
        .ok_or_else(|| bad(101, "RXE-2", "the order has no RXE segment, so no medicine"))?;
    // RXE-2 give code.
    let give = rxe.reps(2);
    let Some(code) = give.first().and_then(|r| rc(r, 1)) else {
        return Err(bad(
            101,
            &rxe.loc(2),
            format!("{} (give code) is empty", rxe.loc(2)),
        ));
    };
    let text = give.first().and_then(|r| rc(r, 2)).unwrap_or_default();
    let entry = entry_for(formulary, &code).ok_or_else(|| {
        bad(
            103,
            &rxe.loc(2),
            format!(
                "{} give code '{code}' ({text}) is not in the formulary",
                rxe.loc(2)
            ),
        )
    })?;
    // RXE-3 dose, RXE-5 its unit.
    let amount = rxe.v(3).ok_or_else(|| {
        bad(
            101,
            &rxe.loc(3),
            format!("{} (give amount) is empty", rxe.loc(3)),
        )
    })?;
    let value: f64 = amount
        .parse()
        .ok()
        .filter(|v: &f64| *v > 0.0)
        .ok_or_else(|| {
            bad(
                102,
                &rxe.loc(3),
                format!(
                    "{} give amount '{amount}' is not a positive number",
                    rxe.loc(3)
                ),
            )
        })?;
    let unit_raw = rxe.v(5).ok_or_else(|| {
        bad(
            101,
            &rxe.loc(5),
            format!("{} (give units) is empty", rxe.loc(5)),
        )
    })?;
    let unit = unit_matches(entry, &unit_raw).ok_or_else(|| {
        bad(
            103,
            &rxe.loc(5),
            format!(
                "{} give units '{unit_raw}' are not a unit of {} (its dose is in '{}')",
                rxe.loc(5),
                entry.name(),
                entry.unit_of_dose
            ),
        )
    })?;
    // RXR-1 route.
    let rxr = o
        .rxr
        .ok_or_else(|| bad(101, "RXR-1", "the order has no RXR segment, so no route"))?;
    let route_raw = rxr
        .v(1)
        .ok_or_else(|| bad(101, &rxr.loc(1), format!("{} (route) is empty", rxr.loc(1))))?;
    let snomed = ROUTES_0162
        .iter()
        .find(|(c, _, _)| c.eq_ignore_ascii_case(&route_raw))
        .map(|(_, s, _)| (*s).to_owned())
        .unwrap_or_else(|| route_raw.clone());
    if !entry.routes.is_empty() && !entry.routes.iter().any(|r| r.code == snomed) {
        return Err(bad(
            103,
            &rxr.loc(1),
            format!(
                "{} route '{route_raw}' is not a route of {} ({})",
                rxr.loc(1),
                entry.name(),
                entry
                    .routes
                    .iter()
                    .map(|r| r.display.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if !snomed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            103,
            &rxr.loc(1),
            format!(
                "{} route '{route_raw}' is not a table 0162 or SNOMED CT route",
                rxr.loc(1)
            ),
        ));
    }
    // Timing: TQ1-3 repeat pattern (else RXE-1.2), TQ1-4 explicit times.
    let (pattern, pattern_at) = match o.tq1.and_then(|t| t.v(3)) {
        Some(p) => (p, o.tq1.map_or("TQ1-3".into(), |t| t.loc(3))),
        None => (rxe.c(1, 2).unwrap_or_default(), rxe.loc(1)),
    };
    let upper = pattern.to_ascii_uppercase();
    let prn = upper.split_whitespace().any(|w| w == "PRN")
        || o.tq1
            .and_then(|t| t.v(9))
            .is_some_and(|p| p.eq_ignore_ascii_case("PRN"));
    let once = matches!(upper.trim(), "ONCE" | "STAT")
        || o.tq1.and_then(|t| t.v(14)).is_some_and(|n| n == "1");
    let start = match o.tq1 {
        Some(t) => t.ts(7)?.and_then(|ts| ts.to_offset_date_time()),
        None => None,
    };
    let stop = match o.tq1 {
        Some(t) => t
            .ts(8)?
            .and_then(|ts| ts.to_offset_date_time())
            .map(|d| d.date()),
        None => None,
    };
    let dose = Qty { value, unit };
    let kind = if prn {
        Kind::AsRequired
    } else if once {
        Kind::OnceOnly
    } else {
        Kind::Regular
    };
    let mut p = Prescription::new(patient_id, &entry.id, kind);
    p.encounter = encounter.map(str::to_owned);
    p.route = snomed;
    p.start = start;
    p.stop = stop;
    match kind {
        Kind::AsRequired => {
            let hours = interval_hours(&pattern).ok_or_else(|| {
                bad(
                    101,
                    &pattern_at,
                    format!("{pattern_at} '{pattern}': an as-required order needs its minimum interval (e.g. Q4H PRN)"),
                )
            })?;
            p.min_interval_hours = Some(hours);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let doses = (24.0 / hours).floor().max(1.0);
            p.max_per_24h = Some(Qty {
                value: dose.value * doses,
                unit: dose.unit.clone(),
            });
        }
        Kind::OnceOnly => p.once_at = Some(start.unwrap_or(now)),
        _ => {
            let explicit: Vec<String> = o
                .tq1
                .map(|t| t.reps(4))
                .unwrap_or_default()
                .iter()
                .filter_map(|r| rc(r, 1))
                .map(|t| {
                    let d: String = t.chars().filter(char::is_ascii_digit).collect();
                    match d.len() {
                        4 => Ok(format!("{}:{}", &d[..2], &d[2..])),
                        _ => Err(t),
                    }
                })
                .collect::<Result<_, String>>()
                .map_err(|t| {
                    bad(
                        102,
                        "TQ1-4",
                        format!("TQ1-4 explicit time '{t}' is not HHMM"),
                    )
                })?;
            p.times = if explicit.is_empty() {
                times_of(&pattern).ok_or_else(|| {
                    bad(
                        103,
                        &pattern_at,
                        format!("{pattern_at} repeat pattern '{pattern}' is not one Wardline maps (OD, BD, TDS, QDS, ON, Q{{n}}H, PRN, ONCE)"),
                    )
                })?
            } else {
                explicit
            };
        }
    }
    p.dose = Some(dose);
    // RXE-27 give indication, else ORC-16 order control code reason.
    p.indication = rxe
        .c(27, 2)
        .or_else(|| rxe.v(27))
        .or_else(|| o.orc.and_then(|c| c.c(16, 2).or_else(|| c.v(16))))
        .ok_or_else(|| {
            bad(
                101,
                &rxe.loc(27),
                format!(
                    "{} (give indication) is empty: a prescription needs its indication",
                    rxe.loc(27)
                ),
            )
        })?;
    // RXE-7 provider's administration instructions.
    let instructions: Vec<String> = rxe
        .reps(7)
        .iter()
        .filter_map(|r| rc(r, 2).or_else(|| rc(r, 1)))
        .collect();
    if !instructions.is_empty() {
        p.instructions = Some(instructions.join(" "));
    }
    Ok(p)
}

/// A workflow refusal as an `AE`, naming the field it is about.
fn refusal(e: MedicinesError, rxe_at: &str) -> MapError {
    match e {
        MedicinesError::Alerts(alerts) => MapError::content(
            207,
            Some(rxe_at),
            format!(
                "decision support stopped the prescription: {}",
                alerts
                    .iter()
                    .filter(|a| a.grade == Grade::HardStop)
                    .map(|a| format!("{} ({})", a.message, a.kind.code()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        MedicinesError::Invalid(m) => {
            let l = m.to_ascii_lowercase();
            let at = if l.starts_with("route") {
                "RXR-1"
            } else if l.starts_with("dose") || l.contains("unit") {
                "RXE-5"
            } else if l.starts_with("indication") {
                "RXE-27"
            } else if l.contains("time") || l.contains("interval") {
                "TQ1-3"
            } else {
                rxe_at
            };
            MapError::content(207, Some(at), m)
        }
        MedicinesError::NotFound(m) => MapError::content(204, Some("ORC-2"), m),
        other => MapError::content(207, Some(rxe_at), other.message()),
    }
}

/// Prescribes `p`; override alerts are gone past with the feed's reason
/// (kept as DetectedIssues for the pharmacist's screening), a hard stop
/// refuses it.
fn prescribe_on_feed(
    tx: &mut wardline_core::Tx<'_>,
    formulary: &Formulary,
    prescriber: &Prescriber,
    p: &Prescription,
    old: Option<(&str, &str)>,
    sender: &str,
    now: OffsetDateTime,
) -> Result<String, MedicinesError> {
    let run = |tx: &mut wardline_core::Tx<'_>, ov: &[Override]| match old {
        None => prescribe::prescribe_in(tx, formulary, prescriber, p, ov, now),
        Some((id, reason)) => {
            prescribe::change_in(tx, formulary, prescriber, id, p, reason, ov, now)
        }
    };
    match run(tx, &[]) {
        Ok(done) => Ok(done.id),
        Err(MedicinesError::Alerts(alerts))
            if !alerts.iter().any(|a| a.grade == Grade::HardStop) =>
        {
            let ov: Vec<Override> = alerts
                .iter()
                .filter(|a| a.grade == Grade::Override)
                .map(|a| Override {
                    key: a.key.clone(),
                    reason: format!(
                        "Prescribed in {sender} and signed there (HL7 RDE^O11); Wardline raised this on receipt, for the pharmacist's screening"
                    ),
                })
                .collect();
            run(tx, &ov).map(|d| d.id)
        }
        Err(e) => Err(e),
    }
}

fn current_by_placer(
    tx: &mut wardline_core::Tx<'_>,
    cfg: &MappingConfig,
    placer: &str,
) -> Result<Option<Value>, MapError> {
    let found = tx
        .find(
            "MedicationRequest",
            &format!("identifier={}|{placer}", placer_system(cfg)),
        )
        .map_err(|e| MapError::content(207, Some("ORC-2"), e.to_string()))?;
    Ok(found
        .into_iter()
        .find(|m| matches!(m["status"].as_str(), Some("active" | "on-hold" | "draft"))))
}

fn tag_placer(
    tx: &mut wardline_core::Tx<'_>,
    cfg: &MappingConfig,
    id: &str,
    placer: &str,
) -> Result<(), MapError> {
    let store = |e: wardline_fhir::FhirError| MapError::content(207, Some("ORC-2"), e.to_string());
    let mut mr = tx
        .get("MedicationRequest", id)
        .map_err(store)?
        .ok_or_else(|| {
            MapError::content(207, Some("ORC-2"), "the saved prescription is missing")
        })?;
    let ident = json!({"system": placer_system(cfg), "value": placer,
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]}});
    match mr.get_mut("identifier").and_then(Value::as_array_mut) {
        Some(ids) => ids.push(ident),
        None => mr["identifier"] = json!([ident]),
    }
    tx.save(mr).map_err(store)?;
    Ok(())
}

/// Applies an RDE^O11 (see the module doc of [`super`]).
pub(crate) fn apply_rde(
    msg: &Message<'_>,
    records: &mut TxRecords<'_, '_>,
    cfg: &MappingConfig,
    now: OffsetDateTime,
) -> Result<Applied, MapError> {
    // The patient must be known: a prescription is never filed against a
    // patient a pharmacy message made up.
    let Some(pid) = Seg::first(msg, "PID") else {
        return Err(bad(
            101,
            "PID-3",
            "the message has no PID segment, so no patient identifier (PID-3)",
        ));
    };
    let ids = patient::identifiers(&pid, 3, cfg)?;
    if ids.is_empty() {
        return Err(bad(
            101,
            "PID-3",
            format!(
                "PID-3 (patient identifier list) has no identifier: '{}'",
                pid.raw(3)
            ),
        ));
    }
    let patient_id = patient::find(records, &ids)?
        .map(|p| id_of(&p))
        .ok_or_else(|| {
            bad(
                204,
                "PID-3",
                format!(
                    "PID-3 names no patient Wardline knows ({}): a prescription is only filed for a known patient",
                    ids.iter()
                        .filter_map(|i| i["value"].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    let encounter = find_encounter(msg, records, cfg)?.map(|e| id_of(&e));
    let sender = Seg::first(msg, "MSH")
        .and_then(|m| m.v(3))
        .unwrap_or_else(|| "the sending system".to_owned());
    let groups = orders(msg);
    if groups.is_empty() {
        return Err(bad(101, "ORC-1", "RDE^O11 has no ORC segment, so no order"));
    }
    let formulary = formulary::load_from(records.tx()).map_err(|e| {
        MapError::content(207, None, format!("the formulary could not be read: {e}"))
    })?;
    let mut done = Vec::new();
    for o in &groups {
        let orc = o.orc.ok_or_else(|| bad(101, "ORC-1", "no ORC"))?;
        let control = orc.v(1).unwrap_or_default().to_ascii_uppercase();
        let placer = orc.v(2).ok_or_else(|| {
            bad(
                101,
                &orc.loc(2),
                format!("{} (placer order number) is empty", orc.loc(2)),
            )
        })?;
        let prescriber = match orc.reps(12).first() {
            Some(r) => practitioner(r, records, cfg)?.and_then(|v| {
                Some(Prescriber {
                    reference: v["reference"].as_str()?.to_owned(),
                    display: v["display"].as_str().unwrap_or_default().to_owned(),
                })
            }),
            None => None,
        };
        let rxe_at = o.rxe.map_or("RXE-2".to_owned(), |r| r.loc(2));
        let reason = |default: &str| {
            orc.c(16, 2)
                .or_else(|| orc.v(16))
                .unwrap_or_else(|| format!("{default} by {sender} (HL7 RDE^O11 ORC-1 {control})"))
        };
        match control.as_str() {
            "NW" => {
                let tx = records.tx();
                if current_by_placer(tx, cfg, &placer)?.is_some() {
                    // A resend of an order already applied: nothing to do.
                    done.push(format!("{placer} already on the chart"));
                    continue;
                }
                let prescriber = prescriber.clone().ok_or_else(|| {
                    bad(101, &orc.loc(12), format!("{} (ordering provider) is empty: a prescription is signed by its prescriber", orc.loc(12)))
                })?;
                let p = prescription_of(o, &formulary, &patient_id, encounter.as_deref(), now)?;
                let tx = records.tx();
                let id = prescribe_on_feed(tx, &formulary, &prescriber, &p, None, &sender, now)
                    .map_err(|e| refusal(e, &rxe_at))?;
                tag_placer(tx, cfg, &id, &placer)?;
                done.push(format!("MedicationRequest/{id}"));
            }
            "XO" => {
                let prescriber = prescriber.clone().ok_or_else(|| {
                    bad(101, &orc.loc(12), format!("{} (ordering provider) is empty: a prescription is signed by its prescriber", orc.loc(12)))
                })?;
                let p = prescription_of(o, &formulary, &patient_id, encounter.as_deref(), now)?;
                let tx = records.tx();
                let old = current_by_placer(tx, cfg, &placer)?.ok_or_else(|| {
                    bad(
                        204,
                        &orc.loc(2),
                        format!(
                            "{} order '{placer}' to change is not on the drug chart",
                            orc.loc(2)
                        ),
                    )
                })?;
                let old_id = id_of(&old);
                let why = reason("Changed");
                let id = prescribe_on_feed(
                    tx,
                    &formulary,
                    &prescriber,
                    &p,
                    Some((&old_id, &why)),
                    &sender,
                    now,
                )
                .map_err(|e| refusal(e, &rxe_at))?;
                tag_placer(tx, cfg, &id, &placer)?;
                done.push(format!("MedicationRequest/{id} (replaces {old_id})"));
            }
            "DC" | "CA" | "OC" => {
                let tx = records.tx();
                let old = current_by_placer(tx, cfg, &placer)?.ok_or_else(|| {
                    bad(
                        204,
                        &orc.loc(2),
                        format!(
                            "{} order '{placer}' to discontinue is not on the drug chart",
                            orc.loc(2)
                        ),
                    )
                })?;
                let old_id = id_of(&old);
                prescribe::discontinue_in(
                    tx,
                    &old_id,
                    &reason("Discontinued"),
                    prescriber.as_ref(),
                    now,
                )
                .map_err(|e| refusal(e, &orc.loc(1)))?;
                done.push(format!("MedicationRequest/{old_id} discontinued"));
            }
            "" => {
                return Err(bad(
                    101,
                    &orc.loc(1),
                    format!("{} (order control) is empty", orc.loc(1)),
                ));
            }
            other => {
                return Err(bad(
                    103,
                    &orc.loc(1),
                    format!(
                        "{} order control '{other}' is not mapped for RDE^O11 (NW, XO, DC, CA, OC)",
                        orc.loc(1)
                    ),
                ));
            }
        }
    }
    let _ = SNOMED_SYSTEM;
    Ok(Applied {
        patient_id: Some(patient_id),
        summary: format!("RDE^O11: {}", done.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_map_to_drug_round_times() {
        assert_eq!(times_of("BD").unwrap(), ["08:00", "20:00"]);
        assert_eq!(times_of("qds").unwrap().len(), 4);
        assert_eq!(times_of("TID").unwrap(), ["06:00", "14:00", "22:00"]);
        assert!(times_of("Q5H").is_none());
        assert_eq!(interval_hours("Q4H PRN"), Some(4.0));
        assert_eq!(interval_hours("Q6H"), Some(6.0));
        assert_eq!(interval_hours("Q0H"), None);
        assert_eq!(interval_hours("BID"), None);
    }

    #[test]
    fn table_0162_routes_are_snomed() {
        let oral = ROUTES_0162.iter().find(|r| r.0 == "PO").unwrap();
        assert_eq!(oral.1, "26643006");
    }
}
