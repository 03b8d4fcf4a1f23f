//! Placement checks: what the person allocating a bed must see *before* the
//! patient goes there, and the reason they give to go ahead.
//!
//! Two concerns, each a hazard the bed board would otherwise show only
//! afterwards (hazard log H-030, H-039):
//! * **Mixed-sex accommodation**: a male patient into a bay with a female
//!   patient in it, or the reverse (NHS England's same-sex accommodation
//!   rule; a breach must be justified and reported).
//! * **Isolation**: a patient with an active isolation flag in the bay, or
//!   the patient being placed is in isolation and the bay has others.
//!
//! [`concerns`] is asked inside the transaction that moves the patient, by
//! [`super::admit_at`] and [`super::transfer_at`] (so the UI and every other
//! channel over them get the same check), after the bay is locked: two
//! allocations into one bay at the same moment see each other. With
//! concerns and no reason the move is refused ([`super::AdtErrorKind::NeedsReason`],
//! the concerns attached); with a reason it goes ahead and the concerns and
//! the reason are kept on the Encounter's new `location` entry
//! ([`PLACEMENT_EXT`]), where the audit trail and the chart find them.
//! Messages from another system (HL7 v2 A01/A02) are not asked: the sending
//! PAS allocated the bed, and the board shows the result.
//!
//! The other patients are never named: a concern says "a female patient in
//! Bed 3", so a person who may not see that patient still learns only what
//! they need to place this one.

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::Tx;

use super::codes::{ISOLATION_CODE, SNOMED};
use super::read::{self, Places, ref_id};
use super::{AdtError, beds};

/// The extension on an Encounter's `location` entry recording a placement
/// made despite concerns: sub-extensions `concern` (valueString, one per
/// concern) and `reason` (valueString).
pub const PLACEMENT_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/placement-concerns";

/// What kind of concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConcernKind {
    /// The bay has a patient of the other sex.
    MixedSex,
    /// A patient in the bay is in isolation.
    IsolationInBay,
    /// The patient being placed is in isolation and the bay has others.
    PatientIsolated,
}

/// One thing the person allocating the bed must see first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concern {
    pub kind: ConcernKind,
    /// A sentence to show, naming beds, never other patients.
    pub message: String,
}

/// The concerns of putting `patient` in `bed_id` at `at_ms`, the encounter
/// being moved (`moving`, for a transfer) not counted as a neighbour. Locks
/// the bay. Empty when the bed is not in a bay (a side room, a bed directly
/// under a ward).
pub(crate) fn concerns(
    tx: &mut Tx<'_>,
    patient: &Value,
    bed_id: &str,
    moving: Option<&str>,
    at_ms: i64,
) -> Result<Vec<Concern>, AdtError> {
    let Some(bed) = tx.get("Location", bed_id)? else {
        return Ok(Vec::new());
    };
    let mut places = Places::default();
    places.add(&bed);
    places.load_ancestors(&*tx)?;
    let Some(bay) = places
        .get(bed_id)
        .and_then(|b| b.parent.as_deref())
        .and_then(|p| places.get(p))
        .filter(|p| p.kind == "ro")
        .cloned()
    else {
        return Ok(Vec::new());
    };
    tx.lock(&[beds::key("Location", &bay.id)])?;
    let siblings = read::search_all(
        &*tx,
        "Location",
        &[("partof", format!("Location/{}", bay.id))],
    )?;
    places.add_stored(&siblings)?;
    let neighbours: Vec<String> = siblings
        .iter()
        .filter(|s| !s.deleted && s.id != bed_id)
        .map(|s| s.id.clone())
        .collect();
    let occupants = read::occupants(&*tx, Some(&neighbours), moving)?;
    let this_patient = patient["id"].as_str().unwrap_or_default();
    // (bed name, patient id) of each neighbour, in bed order.
    let mut next_door: Vec<(String, String)> = occupants
        .iter()
        .filter_map(|(bed, o)| {
            let pid = o.patient_id.clone()?;
            let name = places.get(bed)?.name.clone();
            (pid != this_patient).then_some((name, pid))
        })
        .collect();
    next_door.sort_by(|a, b| read::natural_cmp(&a.0, &b.0));

    let mut ids: Vec<&str> = next_door.iter().map(|(_, p)| p.as_str()).collect();
    ids.push(this_patient);
    let isolated = isolation_flags(&*tx, &ids, at_ms)?;
    let sex = |p: &Value| match p["gender"].as_str() {
        Some(g @ ("male" | "female")) => Some(g.to_owned()),
        _ => None,
    };
    let own_sex = sex(patient);

    let mut out = Vec::new();
    for (bed, pid) in &next_door {
        let Some(other) = tx.get("Patient", pid)? else {
            continue;
        };
        if let (Some(mine), Some(theirs)) = (&own_sex, sex(&other))
            && *mine != theirs
        {
            out.push(Concern {
                kind: ConcernKind::MixedSex,
                message: format!(
                    "{} has a {theirs} patient in {bed}: placing this {mine} patient there makes it a mixed-sex bay.",
                    bay.name
                ),
            });
        }
        if let Some(why) = isolated.get(pid.as_str()).map(|w| plain(w)) {
            out.push(Concern {
                kind: ConcernKind::IsolationInBay,
                message: format!(
                    "The patient in {bed} of {} is in isolation ({why}).",
                    bay.name
                ),
            });
        }
    }
    if let Some(why) = isolated.get(this_patient).map(|w| plain(w))
        && !next_door.is_empty()
    {
        let n = next_door.len();
        out.push(Concern {
            kind: ConcernKind::PatientIsolated,
            message: format!(
                "This patient is in isolation ({why}) and {} has {n} other patient{}.",
                bay.name,
                if n == 1 { "" } else { "s" }
            ),
        });
    }
    Ok(out)
}

/// An isolation flag's text without its "Isolation:" lead (the concern
/// says "in isolation" already).
fn plain(why: &str) -> &str {
    why.trim_start_matches("Isolation:").trim()
}

/// Records, on the Encounter's active (just entered) `location` entry, that
/// the patient was placed despite `concerns`, and why.
pub(crate) fn record(enc: &mut Value, concerns: &[Concern], reason: &str) {
    let Some(entry) = enc["location"]
        .as_array_mut()
        .and_then(|l| l.iter_mut().rev().find(|e| e["status"] == "active"))
    else {
        return;
    };
    let mut parts: Vec<Value> = concerns
        .iter()
        .map(|c| json!({"url": "concern", "valueString": c.message}))
        .collect();
    parts.push(json!({"url": "reason", "valueString": reason}));
    let ext = json!({"url": PLACEMENT_EXT, "extension": parts});
    match entry["extension"].as_array_mut() {
        Some(list) => list.push(ext),
        None => entry["extension"] = json!([ext]),
    }
}

/// The reason given to go ahead, trimmed; `None` when blank.
pub(crate) fn reason(given: Option<&str>) -> Option<&str> {
    given.map(str::trim).filter(|r| !r.is_empty())
}

/// Whether a Flag is an isolation flag (SNOMED CT 40174006 in `code`).
pub(crate) fn is_isolation(flag: &Value) -> bool {
    flag["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["system"] == SNOMED && c["code"] == ISOLATION_CODE)
}

/// The active isolation flags among `flags` at `now_ms`, by patient id: the
/// reason (the flag's text), several joined by "; ". The one reading of
/// "this patient is in isolation", for the board and for placement.
pub(crate) fn isolation_by_patient<'a>(
    flags: impl IntoIterator<Item = &'a Value>,
    now_ms: i64,
) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for f in flags {
        if f["status"] != "active" || !is_isolation(f) {
            continue;
        }
        let ended = f["period"]["end"]
            .as_str()
            .and_then(wardline_fhir::datetime::parse_range)
            .is_some_and(|(_, hi)| hi <= now_ms);
        if ended {
            continue;
        }
        let Some(pid) = ref_id(&f["subject"], "Patient") else {
            continue;
        };
        let text = f["code"]["text"]
            .as_str()
            .or_else(|| f["code"]["coding"][0]["display"].as_str())
            .unwrap_or("Isolation")
            .to_owned();
        out.entry(pid.to_owned())
            .and_modify(|t: &mut String| {
                t.push_str("; ");
                t.push_str(&text);
            })
            .or_insert(text);
    }
    out
}

/// The active isolation flags of these patients, read in the transaction.
fn isolation_flags(
    tx: &Tx<'_>,
    patients: &[&str],
    at_ms: i64,
) -> Result<std::collections::HashMap<String, String>, AdtError> {
    let refs: Vec<String> = patients
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| format!("Patient/{p}"))
        .collect();
    if refs.is_empty() {
        return Ok(Default::default());
    }
    let mut flags = Vec::new();
    for chunk in refs.chunks(100) {
        for s in read::search_all(tx, "Flag", &[("patient", chunk.join(","))])? {
            flags.push(read::json_of(&s)?);
        }
    }
    Ok(isolation_by_patient(&flags, at_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(pid: &str, status: &str, code: &str, end: Option<&str>) -> Value {
        let mut f = json!({"resourceType": "Flag", "status": status,
            "code": {"coding": [{"system": SNOMED, "code": code}], "text": "MRSA"},
            "subject": {"reference": format!("Patient/{pid}")}});
        if let Some(e) = end {
            f["period"] = json!({"start": "2026-01-01", "end": e});
        }
        f
    }

    #[test]
    fn only_active_unended_isolation_flags_count() {
        let now = wardline_fhir::datetime::parse_range("2026-06-01T12:00:00Z")
            .unwrap()
            .0;
        let flags = [
            flag("a", "active", ISOLATION_CODE, None),
            flag("b", "inactive", ISOLATION_CODE, None),
            flag("c", "active", "12345", None),
            flag("d", "active", ISOLATION_CODE, Some("2026-05-31")),
            flag("e", "active", ISOLATION_CODE, Some("2026-06-30")),
        ];
        let got = isolation_by_patient(&flags, now);
        let mut ids: Vec<&str> = got.keys().map(String::as_str).collect();
        ids.sort();
        assert_eq!(ids, ["a", "e"]);
        assert_eq!(got["a"], "MRSA");
    }

    #[test]
    fn an_override_is_kept_on_the_active_location_entry() {
        let mut enc = json!({"location": [
            {"location": {"reference": "Location/b1"}, "status": "completed"},
            {"location": {"reference": "Location/b2"}, "status": "active"}]});
        let c = Concern {
            kind: ConcernKind::MixedSex,
            message: "Bay 1 has a female patient in Bed 2".into(),
        };
        record(&mut enc, &[c], "Only bed in the hospital");
        assert!(enc["location"][0].get("extension").is_none());
        let ext = &enc["location"][1]["extension"][0];
        assert_eq!(ext["url"], PLACEMENT_EXT);
        assert_eq!(ext["extension"][0]["url"], "concern");
        assert_eq!(
            ext["extension"][1]["valueString"],
            "Only bed in the hospital"
        );
    }

    #[test]
    fn a_blank_reason_is_no_reason() {
        assert_eq!(reason(Some("  ")), None);
        assert_eq!(reason(None), None);
        assert_eq!(reason(Some(" side room full ")), Some("side room full"));
    }
}
