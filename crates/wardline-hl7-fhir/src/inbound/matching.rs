//! Strict matching of a result to its patient and order (see the module
//! doc of `inbound`, "ORU^R01"): certain or not at all, never a best guess.

use serde_json::Value;
use wardline_fhir::nhs_number;
use wardline_hl7::Message;

use crate::{MapError, MappingConfig, NHS_NUMBER_SYSTEM, Records};

use super::util::{Seg, id_of, rc};

/// The patient of a result, or why there is none for certain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PatientMatch {
    Found(Value),
    Unmatched(String),
}

/// One PID-3 number that can identify a patient: the NHS number, or a
/// local number whose assigning authority (CX-4) is given. `(system,
/// value, words for a sentence)`.
fn qualifying(pid: &Seg<'_, '_>, cfg: &MappingConfig) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rep in pid.reps(3) {
        let Some(value) = rc(&rep, 1) else { continue };
        let authority = rc(&rep, 4).unwrap_or_default();
        let type_code = rc(&rep, 5).unwrap_or_default();
        if authority.eq_ignore_ascii_case("NHS") || type_code.eq_ignore_ascii_case("NH") {
            if let Some(n) = nhs_number::normalise(&value).filter(|n| nhs_number::is_valid(n)) {
                out.push((
                    NHS_NUMBER_SYSTEM.to_owned(),
                    n.clone(),
                    format!("NHS number {n}"),
                ));
            }
        } else if !authority.is_empty() {
            out.push((
                cfg.local_system(&authority, &type_code),
                value.clone(),
                format!("{authority} number {value}"),
            ));
        }
    }
    out
}

/// The patient PID-3 names with certainty: every qualifying number (the
/// NHS number; local numbers of a named assigner) that is in the record
/// leads to the same patient, at least one does, none is carried by two
/// patients, and the date of birth (PID-7), when both have one, agrees.
pub(crate) fn patient(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    reported: Option<&Value>,
) -> Result<PatientMatch, MapError> {
    let Some(pid) = Seg::first(msg, "PID") else {
        return Ok(PatientMatch::Unmatched(
            "the message has no PID segment".into(),
        ));
    };
    let numbers = qualifying(&pid, cfg);
    if numbers.is_empty() {
        return Ok(PatientMatch::Unmatched(format!(
            "PID-3 '{}' has no NHS number and no number of a named assigning authority",
            pid.raw(3)
        )));
    }
    let mut found: Option<(Value, String)> = None;
    let mut missing = Vec::new();
    for (system, value, words) in &numbers {
        let p = match records.find_by_identifier("Patient", system, value) {
            Ok(p) => p,
            Err(e) if e.code == 205 => {
                return Ok(PatientMatch::Unmatched(format!(
                    "{words} is carried by more than one patient"
                )));
            }
            Err(e) => return Err(e),
        };
        match (p, &found) {
            (None, _) => missing.push(words.clone()),
            (Some(p), None) => found = Some((p, words.clone())),
            (Some(p), Some((q, first))) => {
                if id_of(&p) != id_of(q) {
                    return Ok(PatientMatch::Unmatched(format!(
                        "{first} and {words} are different patients' numbers"
                    )));
                }
            }
        }
    }
    let Some((p, _)) = found else {
        return Ok(PatientMatch::Unmatched(format!(
            "no patient with {}",
            missing.join(" or ")
        )));
    };
    if let (Some(sent), Some(stored)) = (
        reported.and_then(|r| r["birthDate"].as_str()),
        p["birthDate"].as_str(),
    ) && sent != stored
    {
        return Ok(PatientMatch::Unmatched(format!(
            "the date of birth sent ({sent}) is not the date of birth of Patient/{} with that number",
            id_of(&p)
        )));
    }
    Ok(PatientMatch::Found(p))
}

/// The order a result is for: the ServiceRequest with the placer number,
/// else the one with the filler number (as the filler's reply recorded
/// it). `Err` sentence when a number is carried by two orders.
pub(crate) fn order(
    records: &mut dyn Records,
    cfg: &MappingConfig,
    placer: Option<&str>,
    filler: Option<&str>,
) -> Result<Result<Option<Value>, String>, MapError> {
    for (kind, number) in [("placer-order", placer), ("filler-order", filler)] {
        let Some(n) = number else { continue };
        let system = format!("{}/{kind}", cfg.identifier_base);
        match records.find_by_identifier("ServiceRequest", &system, n) {
            Ok(Some(sr)) => return Ok(Ok(Some(sr))),
            Ok(None) => {}
            Err(e) if e.code == 205 => {
                return Ok(Err(format!(
                    "{} {n} is carried by more than one order",
                    kind.replace('-', " ")
                )));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryRecords;
    use proptest::prelude::*;
    use serde_json::json;

    const NHS: [&str; 3] = ["9434765919", "9434765870", "9434765838"];
    const DOB: [&str; 3] = ["1980-02-14", "1975-05-05", "1990-12-31"];

    fn record() -> (MemoryRecords, Vec<String>) {
        let cfg = MappingConfig::default();
        let mut r = MemoryRecords::new();
        let ids = (0..3)
            .map(|i| {
                r.save(json!({"resourceType": "Patient",
                    "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": NHS[i]},
                                   {"system": cfg.local_system("RWG", "MR"), "value": format!("H{i}")}],
                    "birthDate": DOB[i]}))
                    .expect("saves")
            })
            .collect();
        (r, ids)
    }

    /// A PID-3 repetition: (kind, patient) — 0 NHS number, 1 RWG hospital
    /// number, 2 a hospital number without an assigner, 3 an NHS number
    /// no one has.
    fn rep(kind: usize, i: usize) -> String {
        match kind {
            0 => format!("{}^^^NHS^NH", NHS[i]),
            1 => format!("H{i}^^^RWG^MR"),
            2 => format!("H{i}^^^^MR"),
            _ => "9434765846^^^NHS^NH".to_owned(),
        }
    }

    proptest! {
        /// A patient is found only when every identifying number the
        /// record knows is theirs, at least one is, and the date of birth
        /// does not disagree; and then it is always found.
        #[test]
        fn found_exactly_when_certain(
            reps in proptest::collection::vec((0usize..4, 0usize..3), 0..4),
            dob in proptest::option::of(0usize..3),
        ) {
            let (mut r, ids) = record();
            let pid3: Vec<String> = reps.iter().map(|(k, i)| rep(*k, *i)).collect();
            let pid7 = dob.map(|d| DOB[d].replace('-', "")).unwrap_or_default();
            let text = format!(
                "MSH|^~\\&|LAB|RWG|WL|RWG|20261123||ORU^R01|1|P|2.5.1\rPID|1||{}||X^Y||{pid7}\r",
                pid3.join("~")
            );
            let msg = Message::parse(&text).expect("parses");
            let reported = dob.map(|d| json!({"birthDate": DOB[d]}));
            let out = patient(&msg, &mut r, &MappingConfig::default(), reported.as_ref())
                .expect("no store error");
            // Who the identifying, known numbers point at.
            let named: std::collections::BTreeSet<usize> = reps
                .iter()
                .filter(|(k, _)| *k == 0 || *k == 1)
                .map(|(_, i)| *i)
                .collect();
            let certain = named.len() == 1
                && dob.is_none_or(|d| Some(&d) == named.iter().next());
            match out {
                PatientMatch::Found(p) => {
                    prop_assert!(certain, "{text:?} found {p}");
                    let i = *named.iter().next().expect("one");
                    prop_assert_eq!(id_of(&p), ids[i].clone());
                }
                PatientMatch::Unmatched(why) => {
                    prop_assert!(!certain, "{text:?} not found: {why}");
                    prop_assert!(!why.is_empty());
                }
            }
        }
    }
}
