//! An in-memory [`Records`] for tests and tools.
//!
//! Resources are kept by `(resourceType, id)` in insertion order. [`save`]
//! assigns ids `r1`, `r2`, … (deterministic, one counter for all types) to
//! resources without one, and validates every saved resource against FHIR R4
//! (`wardline_fhir::definitions::r4().validate`): an invalid resource produced
//! by a mapping is a bug, so it is an [`MapError::internal`] naming the
//! validation issues, and tests that save through here catch it.
//!
//! [`Records::find_by_identifier`]: after a merge the source Patient keeps its
//! identifiers and the survivor carries them too (`use` `old`); when several
//! resources match and some of them are Patients merged away (`link` type
//! `replaced-by`), those are ignored, so the survivor is found. More than one
//! remaining match is an error.
//!
//! [`save`]: Records::save

use std::collections::BTreeMap;

use serde_json::{Value, json};
use wardline_fhir::reference;

use crate::{MapError, Records};

/// Resources in memory, keyed by type and id.
#[derive(Debug, Default, Clone)]
pub struct MemoryRecords {
    /// `(type, id)` → resource. A `BTreeMap` keyed by insertion sequence keeps
    /// the order stable for [`MemoryRecords::all`].
    resources: BTreeMap<(String, String), (u64, Value)>,
    next_id: u64,
    next_seq: u64,
}

impl MemoryRecords {
    pub fn new() -> MemoryRecords {
        MemoryRecords::default()
    }

    /// Every resource of the type, in the order they were first saved.
    pub fn all(&self, resource_type: &str) -> Vec<Value> {
        let mut v: Vec<&(u64, Value)> = self
            .resources
            .iter()
            .filter(|((t, _), _)| t == resource_type)
            .map(|(_, r)| r)
            .collect();
        v.sort_by_key(|(seq, _)| *seq);
        v.into_iter().map(|(_, r)| r.clone()).collect()
    }

    /// The resource, if present.
    pub fn get(&self, resource_type: &str, id: &str) -> Option<Value> {
        self.resources
            .get(&(resource_type.to_owned(), id.to_owned()))
            .map(|(_, v)| v.clone())
    }

    /// Stores the resource without validation (test fixtures). Assigns an id
    /// when absent; returns it.
    pub fn insert(&mut self, mut resource: Value) -> String {
        let rt = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let id = match resource.get("id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => {
                self.next_id += 1;
                let id = format!("r{}", self.next_id);
                resource["id"] = Value::String(id.clone());
                id
            }
        };
        let key = (rt, id.clone());
        let seq = match self.resources.get(&key) {
            Some((seq, _)) => *seq,
            None => {
                self.next_seq += 1;
                self.next_seq
            }
        };
        self.resources.insert(key, (seq, resource));
        id
    }

    /// How many resources of the type are stored.
    pub fn count(&self, resource_type: &str) -> usize {
        self.resources
            .keys()
            .filter(|(t, _)| t == resource_type)
            .count()
    }

    /// Total number of stored resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

fn has_identifier(resource: &Value, system: &str, value: &str) -> bool {
    resource["identifier"].as_array().is_some_and(|ids| {
        ids.iter()
            .any(|i| i["system"].as_str() == Some(system) && i["value"].as_str() == Some(value))
    })
}

/// True for a Patient merged into another (`link` of type `replaced-by`).
fn is_replaced(r: &Value) -> bool {
    r["link"]
        .as_array()
        .is_some_and(|l| l.iter().any(|x| x["type"] == "replaced-by"))
}

impl Records for MemoryRecords {
    fn find_by_identifier(
        &mut self,
        resource_type: &str,
        system: &str,
        value: &str,
    ) -> Result<Option<Value>, MapError> {
        let found: Vec<&Value> = self
            .resources
            .iter()
            .filter(|((t, _), (_, r))| t == resource_type && has_identifier(r, system, value))
            .map(|(_, (_, r))| r)
            .collect();
        // A Patient merged away (`link` `replaced-by`) shares its identifiers
        // with the survivor (copied there as `old`): the survivor wins.
        let mut found = found;
        if found.len() > 1 {
            let live: Vec<&Value> = found.iter().copied().filter(|r| !is_replaced(r)).collect();
            if !live.is_empty() {
                found = live;
            }
        }
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            many => Err(MapError::internal(format!(
                "{} {resource_type} resources carry the identifier {system}|{value}",
                many.len()
            ))),
        }
    }

    fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<Value>, MapError> {
        Ok(self.get(resource_type, id))
    }

    fn save(&mut self, resource: Value) -> Result<String, MapError> {
        let rt = resource["resourceType"]
            .as_str()
            .unwrap_or("(none)")
            .to_owned();
        let mut to_check = resource.clone();
        if to_check.get("id").is_none()
            && let Some(o) = to_check.as_object_mut()
        {
            // Validate as it will be stored.
            o.insert("id".into(), Value::String("unsaved".into()));
        }
        wardline_fhir::definitions::r4()
            .validate(&to_check)
            .map_err(|e| MapError::internal(format!("invalid {rt} produced: {e}")))?;
        Ok(self.insert(resource))
    }

    fn merge_patients(&mut self, source_id: &str, target_id: &str) -> Result<(), MapError> {
        if source_id == target_id {
            return Err(MapError::internal(format!(
                "cannot merge Patient/{source_id} into itself"
            )));
        }
        let mut source = self
            .get("Patient", source_id)
            .ok_or_else(|| MapError::internal(format!("Patient/{source_id} not found")))?;
        let mut target = self
            .get("Patient", target_id)
            .ok_or_else(|| MapError::internal(format!("Patient/{target_id} not found")))?;
        let from = format!("Patient/{source_id}");
        let to = format!("Patient/{target_id}");

        // Repoint references in every other resource.
        let keys: Vec<(String, String)> = self.resources.keys().cloned().collect();
        for key in keys {
            if key.0 == "Patient" && (key.1 == source_id || key.1 == target_id) {
                continue;
            }
            let Some((_, r)) = self.resources.get(&key) else {
                continue;
            };
            let mut r = r.clone();
            if reference::rewrite_references(&mut r, |s| (s == from).then(|| to.clone())) > 0 {
                self.save(r)?;
            }
        }

        // Target: source identifiers as "old", a `replaces` link.
        let src_ids: Vec<Value> = source["identifier"].as_array().cloned().unwrap_or_default();
        let mut ids: Vec<Value> = target["identifier"].as_array().cloned().unwrap_or_default();
        for mut i in src_ids {
            let dup = ids
                .iter()
                .any(|t| t["system"] == i["system"] && t["value"] == i["value"]);
            if dup {
                continue;
            }
            i["use"] = json!("old");
            ids.push(i);
        }
        if !ids.is_empty() {
            target["identifier"] = Value::Array(ids);
        }
        push_link(&mut target, &from, "replaces");

        // Source: inactive, `replaced-by` link.
        source["active"] = json!(false);
        if let Some(links) = source["link"].as_array_mut() {
            links.retain(|l| l["type"].as_str() != Some("replaced-by"));
        }
        push_link(&mut source, &to, "replaced-by");

        self.save(target)?;
        self.save(source)?;
        Ok(())
    }
}

fn push_link(patient: &mut Value, other: &str, kind: &str) {
    let link = json!({"other": {"reference": other}, "type": kind});
    match patient["link"].as_array_mut() {
        Some(a) => {
            if !a.contains(&link) {
                a.push(link);
            }
        }
        None => patient["link"] = json!([link]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient(nhs: &str) -> Value {
        json!({"resourceType": "Patient",
               "identifier": [{"system": crate::NHS_NUMBER_SYSTEM, "value": nhs}]})
    }

    #[test]
    fn save_assigns_ids_and_validates() {
        let mut m = MemoryRecords::new();
        assert_eq!(m.save(patient("9434765919")).unwrap(), "r1");
        assert_eq!(m.save(patient("9434765870")).unwrap(), "r2");
        assert_eq!(m.count("Patient"), 2);
        // Update under its id keeps the count.
        let mut p = m.get("Patient", "r1").unwrap();
        p["gender"] = json!("female");
        assert_eq!(m.save(p).unwrap(), "r1");
        assert_eq!(m.count("Patient"), 2);
        assert_eq!(m.get("Patient", "r1").unwrap()["gender"], "female");
        // Invalid: unknown element, bad code type, bad NHS number.
        let e = m
            .save(json!({"resourceType": "Patient", "colour": "blue"}))
            .unwrap_err();
        assert_eq!(e.kind, crate::MapErrorKind::Internal);
        assert!(e.text.contains("colour"), "{}", e.text);
        assert!(m.save(patient("9434765918")).is_err());
        assert!(
            m.save(json!({"resourceType": "Encounter", "status": "in-progress"}))
                .is_err(),
            "Encounter.class is required"
        );
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn all_keeps_insertion_order() {
        let mut m = MemoryRecords::new();
        m.insert(json!({"resourceType": "Patient", "id": "b"}));
        m.insert(json!({"resourceType": "Patient", "id": "a"}));
        m.insert(json!({"resourceType": "Patient", "id": "b", "active": true}));
        let ids: Vec<Value> = m.all("Patient").iter().map(|p| p["id"].clone()).collect();
        assert_eq!(ids, vec![json!("b"), json!("a")]);
        assert_eq!(m.all("Patient")[0]["active"], true);
        assert!(m.all("Encounter").is_empty());
    }

    #[test]
    fn find_by_identifier_matches_system_and_value() {
        let mut m = MemoryRecords::new();
        let id = m.save(patient("9434765919")).unwrap();
        let f = m
            .find_by_identifier("Patient", crate::NHS_NUMBER_SYSTEM, "9434765919")
            .unwrap()
            .unwrap();
        assert_eq!(f["id"], json!(id));
        assert!(
            m.find_by_identifier("Patient", "other", "9434765919")
                .unwrap()
                .is_none()
        );
        assert!(
            m.find_by_identifier("Encounter", crate::NHS_NUMBER_SYSTEM, "9434765919")
                .unwrap()
                .is_none()
        );
        m.save(patient("9434765919")).unwrap();
        let e = m
            .find_by_identifier("Patient", crate::NHS_NUMBER_SYSTEM, "9434765919")
            .unwrap_err();
        assert!(e.text.contains("2 Patient"), "{}", e.text);
    }

    #[test]
    fn merge_repoints_and_links() {
        let mut m = MemoryRecords::new();
        let src = m.save(patient("9434765870")).unwrap();
        let tgt = m.save(patient("9434765919")).unwrap();
        let enc = m
            .save(json!({"resourceType": "Encounter", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": format!("Patient/{src}")}}))
            .unwrap();
        let other = m
            .save(json!({"resourceType": "Encounter", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": "Patient/elsewhere"}}))
            .unwrap();
        m.merge_patients(&src, &tgt).unwrap();
        assert_eq!(
            m.get("Encounter", &enc).unwrap()["subject"]["reference"],
            format!("Patient/{tgt}")
        );
        assert_eq!(
            m.get("Encounter", &other).unwrap()["subject"]["reference"],
            "Patient/elsewhere"
        );
        let s = m.get("Patient", &src).unwrap();
        assert_eq!(s["active"], false);
        assert_eq!(
            s["link"],
            json!([{"other": {"reference": format!("Patient/{tgt}")}, "type": "replaced-by"}])
        );
        let t = m.get("Patient", &tgt).unwrap();
        assert_eq!(
            t["link"],
            json!([{"other": {"reference": format!("Patient/{src}")}, "type": "replaces"}])
        );
        assert_eq!(
            t["identifier"],
            json!([
                {"system": crate::NHS_NUMBER_SYSTEM, "value": "9434765919"},
                {"system": crate::NHS_NUMBER_SYSTEM, "value": "9434765870", "use": "old"}
            ])
        );
        // The source's identifier now finds the survivor only.
        let f = m
            .find_by_identifier("Patient", crate::NHS_NUMBER_SYSTEM, "9434765870")
            .unwrap()
            .unwrap();
        assert_eq!(f["id"], json!(tgt));
        assert!(m.merge_patients(&src, &src).is_err());
        assert!(m.merge_patients("nope", &tgt).is_err());
    }
}
