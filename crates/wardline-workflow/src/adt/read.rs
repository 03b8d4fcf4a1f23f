//! Reading for the ADT module: store-level searches (for facts that carry no
//! patient identity: the location tree, which beds are taken) and searches
//! through the service with the caller's access (for anything about a
//! patient), which the gate checks, withholds and audits.

use std::collections::HashMap;

use serde_json::Value;
use wardline_core::{Access, FhirService};
use wardline_fhir::SearchQuery;
use wardline_fhir::search::Handling;
use wardline_store::{PageRequest, Reader, StoredResource};

use super::AdtError;
use super::codes::PHYSICAL_TYPE;

/// Statuses of an Encounter in which the patient is in (or about to leave)
/// their bed.
pub(crate) const CURRENT: &str = "in-progress,arrived,triaged,onleave";

pub(crate) fn is_current(status: &str) -> bool {
    matches!(status, "in-progress" | "arrived" | "triaged" | "onleave")
}

/// Inpatient classes (v3 ActCode): an encounter of one of these in a current
/// status is an active admission.
pub(crate) fn is_inpatient(enc: &Value) -> bool {
    matches!(
        enc["class"]["code"].as_str(),
        Some("IMP" | "ACUTE" | "NONAC" | "SS")
    )
}

pub(crate) fn query(t: &str, pairs: &[(&str, String)]) -> Result<SearchQuery, AdtError> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Ok(wardline_fhir::search::parse(
        wardline_fhir::definitions::r4(),
        Some(t),
        &pairs,
        Handling::Strict,
    )?)
}

/// Every current resource matching, paging by `rid` (one statement per
/// thousand).
pub(crate) fn search_all<R: Reader + ?Sized>(
    r: &R,
    t: &str,
    pairs: &[(&str, String)],
) -> Result<Vec<StoredResource>, AdtError> {
    let q = query(t, pairs)?;
    let mut out = Vec::new();
    let mut page = PageRequest {
        count: 1000,
        ..PageRequest::default()
    };
    loop {
        let p = r
            .search(&q, &page)
            .map_err(wardline_fhir::FhirError::from)?;
        page.snapshot_rid = Some(p.snapshot_rid);
        page.after_rid = p.resources.last().map(|r| r.rid);
        let more = p.has_more && page.after_rid.is_some();
        out.extend(p.resources);
        if !more {
            return Ok(out);
        }
    }
}

pub(crate) fn json_of(r: &StoredResource) -> Result<Value, AdtError> {
    serde_json::from_str(&r.json).map_err(|e| {
        AdtError::store(format!(
            "stored {}/{} is unreadable: {e}",
            r.resource_type, r.id
        ))
    })
}

pub(crate) use crate::fhir::reference_id as ref_id;

/// What a search through the service returned.
#[derive(Default)]
pub(crate) struct Found {
    pub matches: Vec<Value>,
    pub included: Vec<Value>,
    /// Matches the caller may not see.
    pub withheld: usize,
    /// The caller may not search this type at all.
    pub refused: bool,
}

/// A search through the service with the caller's access: authorised, the
/// refused matches withheld (counted) and audited. A type-level refusal (401/403) is `refused`, not an error.
pub(crate) fn search_as(
    svc: &FhirService,
    access: &dyn Access,
    t: &str,
    pairs: &[(&str, String)],
) -> Result<Found, AdtError> {
    match svc.search_as(access, t, pairs) {
        Ok(f) => Ok(Found {
            matches: f.resources,
            included: f.included,
            withheld: f.withheld,
            refused: false,
        }),
        Err(e) if e.status == 401 || e.status == 403 => Ok(Found {
            refused: true,
            ..Found::default()
        }),
        Err(e) => Err(e.into()),
    }
}

/// A read through the service with the caller's access (`None` when it does
/// not exist; a refusal is an error).
pub(crate) fn read_as(
    svc: &FhirService,
    access: &dyn Access,
    t: &str,
    id: &str,
) -> Result<Option<Value>, AdtError> {
    Ok(svc.read_as(access, t, id)?)
}

/// One Location as the board needs it.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub id: String,
    pub name: String,
    /// `physicalType` code: `si`, `wa`, `ro`, `bd`, … (empty when untyped).
    pub kind: String,
    pub parent: Option<String>,
    /// `operationalStatus` (system, code).
    pub status: Option<(String, String)>,
    /// Why a bed is closed or blocked ([`super::beds::STATUS_REASON_EXT`]).
    pub status_reason: Option<String>,
    pub active: bool,
}

impl Place {
    pub fn of(v: &Value) -> Place {
        let kind = v["physicalType"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["system"] == PHYSICAL_TYPE || c["system"].is_null())
            .and_then(|c| c["code"].as_str())
            .unwrap_or_default()
            .to_owned();
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        Place {
            name: v["name"].as_str().map(str::to_owned).unwrap_or(id.clone()),
            id,
            kind,
            parent: ref_id(&v["partOf"], "Location").map(str::to_owned),
            status: v["operationalStatus"]["code"].as_str().map(|c| {
                (
                    v["operationalStatus"]["system"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    c.to_owned(),
                )
            }),
            status_reason: super::beds::status_reason(v),
            active: v["status"] != "inactive",
        }
    }

    pub fn is_bed(&self) -> bool {
        self.kind == "bd"
    }
}

/// The name of the ward a location (a bed, a bay, the ward itself) lies
/// in, read past any access; `None` when it is in no ward.
pub(crate) fn ward_name<R: Reader + ?Sized>(
    r: &R,
    location: &str,
) -> Result<Option<String>, AdtError> {
    Ok(ward_of(r, location)?.map(|w| w.1))
}

/// The ward (`Location` id, name) a location lies in (itself when it is one).
pub(crate) fn ward_of<R: Reader + ?Sized>(
    r: &R,
    location: &str,
) -> Result<Option<(String, String)>, AdtError> {
    let mut places = Places::default();
    let found = r
        .read_many(&[("Location".to_owned(), location.to_owned())])
        .map_err(wardline_fhir::FhirError::from)?;
    places.add_stored(&found)?;
    places.load_ancestors(r)?;
    Ok(places
        .ancestor(location, "wa")
        .map(|p| (p.id.clone(), p.name.clone())))
}

/// Locations by id, with their ancestors.
#[derive(Default)]
pub(crate) struct Places {
    pub map: HashMap<String, Place>,
}

impl Places {
    pub fn add(&mut self, v: &Value) {
        let p = Place::of(v);
        self.map.insert(p.id.clone(), p);
    }

    pub fn add_stored(&mut self, rs: &[StoredResource]) -> Result<(), AdtError> {
        for r in rs.iter().filter(|r| !r.deleted) {
            self.add(&json_of(r)?);
        }
        Ok(())
    }

    /// Reads the ancestors of the known places that are not loaded yet (one
    /// round trip per level).
    pub fn load_ancestors<R: Reader + ?Sized>(&mut self, r: &R) -> Result<(), AdtError> {
        for _ in 0..8 {
            let mut missing: Vec<(String, String)> = self
                .map
                .values()
                .filter_map(|p| p.parent.as_ref())
                .filter(|id| !self.map.contains_key(*id))
                .map(|id| ("Location".to_owned(), id.clone()))
                .collect();
            missing.sort();
            missing.dedup();
            if missing.is_empty() {
                return Ok(());
            }
            let found = r
                .read_many(&missing)
                .map_err(wardline_fhir::FhirError::from)?;
            if found.is_empty() {
                return Ok(());
            }
            self.add_stored(&found)?;
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Place> {
        self.map.get(id)
    }

    /// The nearest ancestor (or the place itself) of physical type `kind`.
    pub fn ancestor(&self, id: &str, kind: &str) -> Option<&Place> {
        let mut cur = self.map.get(id);
        for _ in 0..10 {
            let p = cur?;
            if p.kind == kind {
                return Some(p);
            }
            cur = p.parent.as_deref().and_then(|x| self.map.get(x));
        }
        None
    }

    /// "Site · Ward · Bay · Bed": the names from the top of the chain down.
    pub fn label(&self, id: &str) -> String {
        let mut names = Vec::new();
        let mut cur = self.map.get(id);
        while let Some(p) = cur {
            names.push(p.name.as_str());
            if names.len() > 10 {
                break;
            }
            cur = p.parent.as_deref().and_then(|x| self.map.get(x));
        }
        if names.is_empty() {
            return format!("Location/{id}");
        }
        names.reverse();
        names.join(" · ")
    }
}

/// The Location an Encounter is at now: the last `active` entry, else the
/// last one without status and end (never a `planned` one).
pub(crate) fn current_location(enc: &Value) -> Option<String> {
    let locs = enc["location"].as_array()?;
    locs.iter()
        .rev()
        .find(|l| l["status"] == "active")
        .or_else(|| {
            locs.iter()
                .rev()
                .find(|l| l["status"].is_null() && l["period"]["end"].is_null())
        })
        .and_then(|l| ref_id(&l["location"], "Location"))
        .map(str::to_owned)
}

/// Who is in a bed.
#[derive(Debug, Clone)]
pub(crate) struct Occupant {
    pub encounter_id: String,
    pub patient_id: Option<String>,
}

/// The current encounters by the bed (or other Location) they are in now,
/// for the given locations (all when `None`). One statement per 200
/// locations, or per thousand encounters for all.
pub(crate) fn occupants<R: Reader + ?Sized>(
    r: &R,
    locations: Option<&[String]>,
    except_encounter: Option<&str>,
) -> Result<HashMap<String, Occupant>, AdtError> {
    let mut found = Vec::new();
    match locations {
        Some(ids) => {
            for chunk in ids.chunks(200) {
                let refs = chunk
                    .iter()
                    .map(|id| format!("Location/{id}"))
                    .collect::<Vec<_>>()
                    .join(",");
                found.extend(search_all(
                    r,
                    "Encounter",
                    &[("location", refs), ("status", CURRENT.to_owned())],
                )?);
            }
        }
        None => found = search_all(r, "Encounter", &[("status", CURRENT.to_owned())])?,
    }
    let wanted: Option<std::collections::HashSet<&String>> = locations.map(|l| l.iter().collect());
    let mut out: HashMap<String, Occupant> = HashMap::new();
    for s in &found {
        if Some(s.id.as_str()) == except_encounter {
            continue;
        }
        let enc = json_of(s)?;
        if !enc["status"].as_str().is_some_and(is_current) {
            continue;
        }
        let Some(loc) = current_location(&enc) else {
            continue;
        };
        if wanted.as_ref().is_some_and(|w| !w.contains(&loc)) {
            continue;
        }
        let occ = Occupant {
            encounter_id: s.id.clone(),
            patient_id: ref_id(&enc["subject"], "Patient").map(str::to_owned),
        };
        if let Some(prev) = out.get(&loc) {
            tracing::warn!(
                location = %loc,
                first = %prev.encounter_id,
                second = %occ.encounter_id,
                "two current encounters in one location"
            );
            continue;
        }
        out.insert(loc, occ);
    }
    Ok(out)
}

/// Orders "Bed 2" before "Bed 10".
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match out.last_mut() {
                Some((ld, cur)) if *ld == d => cur.push(c),
                _ => out.push((d, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = match (x.0, y.0) {
            (true, true) => {
                let (tx, ty) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
            }
            _ => x.1.to_lowercase().cmp(&y.1.to_lowercase()),
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn natural_order() {
        let mut v = vec!["Bed 10", "Bed 2", "bed 1", "Bay 1", "Bed 02a"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["Bay 1", "bed 1", "Bed 2", "Bed 02a", "Bed 10"]);
    }

    #[test]
    fn current_location_is_the_active_entry_never_a_planned_one() {
        let e = json!({"location": [
            {"location": {"reference": "Location/a"}, "status": "completed"},
            {"location": {"reference": "Location/b"}, "status": "active"},
            {"location": {"reference": "Location/c"}, "status": "planned"}]});
        assert_eq!(current_location(&e).as_deref(), Some("b"));
        let e = json!({"location": [
            {"location": {"reference": "Location/a"}, "period": {"end": "2025-01-01"}},
            {"location": {"reference": "Location/b"}}]});
        assert_eq!(current_location(&e).as_deref(), Some("b"));
        let e =
            json!({"location": [{"location": {"reference": "Location/c"}, "status": "planned"}]});
        assert_eq!(current_location(&e), None);
    }

    #[test]
    fn references() {
        assert_eq!(
            ref_id(&json!({"reference": "Location/x-1"}), "Location"),
            Some("x-1")
        );
        assert_eq!(
            ref_id(&json!({"reference": "http://h/fhir/Patient/p"}), "Patient"),
            Some("p")
        );
        assert_eq!(ref_id(&json!({"reference": "Patient/p"}), "Location"), None);
        assert_eq!(ref_id(&json!({}), "Location"), None);
    }
}
