//! The formulary: the medicines the trust stocks, as `Medication`
//! resources with their dm+d identity and the trust's flags (see the
//! [module documentation](super) for the shape). [`load`] reads it;
//! [`Formulary::entry`] and [`Formulary::search`] are what prescribing,
//! decision support, the drug round and chemotherapy look a medicine up by.
//!
//! The formulary is changed by importing a file ([`import`]; the format is
//! `docs/formulary-format.md`, read by [`parse()`]): the whole file is
//! checked before anything is written, entries are created or updated as
//! `Medication/med-{vmp_code}`, and entries no longer in the file are marked
//! `inactive` — never deleted, since charts name them. [`FormularyRule`]
//! refuses a malformed formulary `Medication` on every channel.
//!
//! Tests of other modules get the demo's starter formulary with
//! `formulary::parse(wardline_demo::FORMULARY)` (the file is
//! `crates/wardline-demo/data/formulary.csv`) and
//! [`Formulary::from_entries`], or import it into a store with
//! [`import_in`].

mod import;
pub mod parse;

pub use import::{FormularyRule, ImportError, ImportReport, Reported, import, import_in};
pub use parse::{CLASSES, ParseError, ROUTES, parse, write};

use serde::Serialize;
use serde_json::Value;
use serde_json::json;
use wardline_core::FhirService;
use wardline_fhir::FhirError;
use wardline_store::Reader;

use super::{CLASS_SYSTEM, DMD_SYSTEM, FORMULARY_EXT, LOCAL_MEDICINE_SYSTEM};
use crate::fhir::json_all;

/// A code with its system and display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Code {
    pub system: String,
    pub code: String,
    pub display: String,
}

impl Code {
    fn of(c: &Value) -> Option<Code> {
        Some(Code {
            system: c["system"].as_str().unwrap_or_default().to_owned(),
            code: c["code"].as_str()?.to_owned(),
            display: c["display"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Whether this is the trust's own code rather than dm+d's.
    pub fn is_local(&self) -> bool {
        self.system == LOCAL_MEDICINE_SYSTEM
    }
}

/// A quantity: a value with its UCUM-ish unit as written (`mg`, `mL`).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Qty {
    pub value: f64,
    pub unit: String,
}

impl Qty {
    fn of(q: &Value) -> Option<Qty> {
        Some(Qty {
            value: q["value"].as_f64()?,
            unit: q["unit"]
                .as_str()
                .or_else(|| q["code"].as_str())
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

/// A JSON number: whole values as integers (`500`, not `500.0`).
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation)]
        let i = v as i64;
        json!(i)
    } else {
        json!(v)
    }
}

impl Qty {
    fn to_json(&self) -> Value {
        json!({"value": number(self.value), "unit": self.unit})
    }
}

impl Code {
    fn to_json(&self) -> Value {
        json!({"system": self.system, "code": self.code, "display": self.display})
    }
}

/// One formulary medicine (a VMP).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Entry {
    /// The `Medication` id (`med-{code}`).
    pub id: String,
    /// The VMP: `DMD_SYSTEM` or `LOCAL_MEDICINE_SYSTEM`.
    pub vmp: Code,
    /// The VTM (the substance).
    pub vtm: Code,
    pub amps: Vec<Code>,
    /// The dose form (`Tablet`, `Solution for injection`).
    pub form: String,
    /// Strength per unit of dose (500 mg per tablet), where it has one.
    pub strength: Option<(Qty, Qty)>,
    /// SNOMED CT route codes it may be given by.
    pub routes: Vec<Code>,
    /// What one dose is counted in (`tablet`, `mL`, `mg`).
    pub unit_of_dose: String,
    /// Controlled-drug schedule ("2"–"5").
    pub controlled_drug: Option<String>,
    pub high_risk: bool,
    pub time_critical: bool,
    /// Therapeutic classes (`CLASS_SYSTEM` codes).
    pub classes: Vec<String>,
    pub default_dose: Option<Qty>,
    pub default_frequency: Option<String>,
    /// Whether the `Medication` is `active` (withdrawn entries are kept for
    /// the charts that name them, but not offered).
    pub active: bool,
}

impl Entry {
    /// The name people prescribe by (the VMP's display).
    pub fn name(&self) -> &str {
        &self.vmp.display
    }

    /// Whether the entry's VMP is a local code.
    pub fn is_local(&self) -> bool {
        self.vmp.is_local()
    }

    /// Whether it is a controlled drug needing a witness (schedule 2 or 3).
    pub fn needs_witness(&self) -> bool {
        matches!(self.controlled_drug.as_deref(), Some("2" | "3"))
    }

    /// The names of its flags, as the screens tag it: `CD2`, `high risk`,
    /// `time critical`, `local code`.
    pub fn tags(&self) -> Vec<String> {
        let mut t = Vec::new();
        if let Some(s) = &self.controlled_drug {
            t.push(format!("CD{s}"));
        }
        if self.high_risk {
            t.push("high risk".to_owned());
        }
        if self.time_critical {
            t.push("time critical".to_owned());
        }
        if self.is_local() {
            t.push("local code".to_owned());
        }
        t
    }

    /// The strength as written (`500 mg/1 tablet`).
    pub fn strength_text(&self) -> Option<String> {
        self.strength
            .as_ref()
            .map(|(n, d)| format!("{}/{}", parse::qty_text(n), parse::qty_text(d)))
    }

    /// The `Medication` of this entry (see the [module documentation](super)).
    pub fn to_medication(&self) -> Value {
        let mut subs = vec![json!({"url": "vtm", "valueCoding": self.vtm.to_json()})];
        subs.extend(
            self.amps
                .iter()
                .map(|a| json!({"url": "amp", "valueCoding": a.to_json()})),
        );
        subs.extend(
            self.routes
                .iter()
                .map(|r| json!({"url": "route", "valueCoding": r.to_json()})),
        );
        subs.push(json!({"url": "unitOfDose", "valueString": self.unit_of_dose}));
        if let Some(s) = &self.controlled_drug {
            subs.push(json!({"url": "controlledDrug", "valueString": s}));
        }
        subs.push(json!({"url": "highRisk", "valueBoolean": self.high_risk}));
        subs.push(json!({"url": "timeCritical", "valueBoolean": self.time_critical}));
        subs.extend(
            self.classes.iter().map(
                |c| json!({"url": "class", "valueCoding": {"system": CLASS_SYSTEM, "code": c}}),
            ),
        );
        if let Some(q) = &self.default_dose {
            subs.push(json!({"url": "defaultDose", "valueQuantity": q.to_json()}));
        }
        if let Some(f) = &self.default_frequency {
            subs.push(json!({"url": "defaultFrequency", "valueString": f}));
        }
        let mut ingredient = json!({
            "itemCodeableConcept": {"coding": [self.vtm.to_json()], "text": self.vtm.display},
            "isActive": true,
        });
        if let Some((n, d)) = &self.strength {
            ingredient["strength"] = json!({"numerator": n.to_json(), "denominator": d.to_json()});
        }
        json!({
            "resourceType": "Medication",
            "id": self.id,
            "extension": [{"url": FORMULARY_EXT, "extension": subs}],
            "code": {"coding": [self.vmp.to_json()], "text": self.vmp.display},
            "status": if self.active { "active" } else { "inactive" },
            "form": {"text": self.form},
            "ingredient": [ingredient],
        })
    }

    /// Reads a `Medication` carrying [`FORMULARY_EXT`]; `None` for one that
    /// is not a formulary entry.
    pub fn from_medication(m: &Value) -> Option<Entry> {
        let ext = m["extension"]
            .as_array()?
            .iter()
            .find(|e| e["url"] == FORMULARY_EXT)?;
        let subs: &[Value] = ext["extension"].as_array().map_or(&[], Vec::as_slice);
        fn sub<'a>(subs: &'a [Value], name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
            subs.iter().filter(move |e| e["url"] == name)
        }
        let one = |name: &'static str| sub(subs, name).next();
        let vmp = m["code"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["system"] == DMD_SYSTEM || c["system"] == LOCAL_MEDICINE_SYSTEM)
            .and_then(Code::of)?;
        let strength = m["ingredient"][0]["strength"].as_object().and_then(|_| {
            let s = &m["ingredient"][0]["strength"];
            Some((Qty::of(&s["numerator"])?, Qty::of(&s["denominator"])?))
        });
        Some(Entry {
            id: m["id"].as_str()?.to_owned(),
            vtm: one("vtm")
                .and_then(|e| Code::of(&e["valueCoding"]))
                .unwrap_or_default(),
            amps: sub(subs, "amp")
                .filter_map(|e| Code::of(&e["valueCoding"]))
                .collect(),
            form: crate::fhir::concept_text(&m["form"]).unwrap_or_default(),
            strength,
            routes: sub(subs, "route")
                .filter_map(|e| Code::of(&e["valueCoding"]))
                .collect(),
            unit_of_dose: one("unitOfDose")
                .and_then(|e| e["valueString"].as_str())
                .unwrap_or_default()
                .to_owned(),
            controlled_drug: one("controlledDrug")
                .and_then(|e| e["valueString"].as_str())
                .map(str::to_owned),
            high_risk: one("highRisk").is_some_and(|e| e["valueBoolean"] == true),
            time_critical: one("timeCritical").is_some_and(|e| e["valueBoolean"] == true),
            classes: sub(subs, "class")
                .filter_map(|e| e["valueCoding"]["code"].as_str().map(str::to_owned))
                .collect(),
            default_dose: one("defaultDose").and_then(|e| Qty::of(&e["valueQuantity"])),
            default_frequency: one("defaultFrequency")
                .and_then(|e| e["valueString"].as_str())
                .map(str::to_owned),
            vmp,
            active: m["status"].as_str().unwrap_or("active") == "active",
        })
    }
}

/// The formulary, in name order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Formulary {
    pub entries: Vec<Entry>,
}

impl Formulary {
    pub fn from_medications(ms: &[Value]) -> Formulary {
        Formulary::from_entries(ms.iter().filter_map(Entry::from_medication).collect())
    }

    /// The formulary of these entries (e.g. [`parse()`]'s), in name order.
    pub fn from_entries(mut entries: Vec<Entry>) -> Formulary {
        entries.sort_by_key(|e| e.name().to_lowercase());
        Formulary { entries }
    }

    /// The entry of a `Medication` id (or a `Medication/{id}` reference).
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        let id = id.strip_prefix("Medication/").unwrap_or(id);
        self.entries.iter().find(|e| e.id == id)
    }

    /// Active entries matching `text`: every word of it is found in the
    /// entry's name, VTM name, a brand (AMP) name, a class, or is its VMP
    /// or VTM code (case-insensitive; `amox 500` finds amoxicillin 500mg
    /// capsules). Best first: entries whose name starts with the text, then
    /// whose substance (VTM) or a word of the name starts with it, then
    /// the rest; in name order within each. Withdrawn entries are never
    /// offered. An empty text finds nothing.
    pub fn search(&self, text: &str) -> Vec<&Entry> {
        self.search_all(text, false)
    }

    /// [`Formulary::search`], withdrawn entries included (the formulary
    /// pages list them, marked).
    pub fn search_all(&self, text: &str, withdrawn: bool) -> Vec<&Entry> {
        let q = text.trim().to_lowercase();
        let words: Vec<&str> = q.split_whitespace().collect();
        if words.is_empty() {
            return Vec::new();
        }
        let mut found: Vec<(u8, &Entry)> = self
            .entries
            .iter()
            .filter(|e| e.active || withdrawn)
            .filter_map(|e| {
                let name = e.name().to_lowercase();
                let vtm = e.vtm.display.to_lowercase();
                let amps: Vec<String> = e.amps.iter().map(|a| a.display.to_lowercase()).collect();
                let all = words.iter().all(|w| {
                    name.contains(w)
                        || vtm.contains(w)
                        || amps.iter().any(|a| a.contains(w))
                        || e.classes.iter().any(|c| c.contains(w))
                        || e.vmp.code.to_lowercase() == *w
                        || e.vtm.code.to_lowercase() == *w
                });
                if !all {
                    return None;
                }
                let rank = if name.starts_with(&q) {
                    0
                } else if vtm.starts_with(&q)
                    || name.split([' ', '-', '(']).any(|x| x.starts_with(words[0]))
                {
                    1
                } else {
                    2
                };
                Some((rank, e))
            })
            .collect();
        found.sort_by_key(|(rank, _)| *rank);
        found.into_iter().map(|(_, e)| e).collect()
    }

    /// Every entry of a substance (VTM code).
    pub fn of_vtm<'a>(&'a self, vtm: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.vtm.code == vtm)
    }
}

/// The formulary, read as the system (it is not patient data). Kept in
/// memory between calls while its generation ([`FormularyChanged`]) stands:
/// one key read instead of reading and parsing every `Medication` on each
/// prescription, chart and drug round.
pub fn load(svc: &FhirService) -> Result<Formulary, FhirError> {
    Ok(Formulary::clone(&*load_shared(svc)?))
}

/// The system-data namespace and key of the formulary's generation.
const GENERATION: (&str, &str) = ("formulary", "generation");

/// The formularies read lately, by generation (a few: tests open many
/// stores in one process; a server has one).
static CACHE: std::sync::Mutex<Vec<(String, std::sync::Arc<Formulary>)>> =
    std::sync::Mutex::new(Vec::new());

/// [`load`], shared rather than copied.
///
/// The generation is read **before** the medicines, so a change committed
/// between the two reads is at worst read once more next time, never
/// cached under the older generation and missed. A store without one yet
/// gets a fresh one, so two stores never share an entry.
pub fn load_shared(svc: &FhirService) -> Result<std::sync::Arc<Formulary>, FhirError> {
    let data = svc.system_data();
    let generation = match data.get(GENERATION.0, GENERATION.1)? {
        Some(g) => g,
        None => {
            let g = uuid::Uuid::new_v4().to_string();
            data.put(GENERATION.0, GENERATION.1, &g)?;
            g
        }
    };
    let cache = |c: &mut Vec<(String, std::sync::Arc<Formulary>)>| {
        c.iter()
            .find(|(g, _)| *g == generation)
            .map(|(_, f)| f.clone())
    };
    if let Some(f) = cache(&mut CACHE.lock().unwrap_or_else(|p| p.into_inner())) {
        return Ok(f);
    }
    let f = std::sync::Arc::new(load_from(svc.system_reader())?);
    let mut c = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    c.retain(|(g, _)| *g != generation);
    if c.len() >= 8 {
        c.remove(0);
    }
    c.push((generation, f.clone()));
    Ok(f)
}

/// Any write of a `Medication`, on any channel (a formulary import, REST, a
/// Bundle, the HL7 pharmacy feed's local medicines), gives the formulary a
/// new generation in the same transaction, so every server reading it
/// ([`load_shared`]) reads it again. Registered by `crate::with_rules`.
pub struct FormularyChanged;

impl wardline_core::WriteHook for FormularyChanged {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Medication"
    }

    fn before_commit(
        &self,
        tx: &mut wardline_core::Tx<'_>,
        changes: &[wardline_core::Change],
    ) -> Result<(), FhirError> {
        if !changes.is_empty() {
            tx.kv_put(
                GENERATION.0,
                GENERATION.1,
                &uuid::Uuid::new_v4().to_string(),
            )?;
        }
        Ok(())
    }
}

/// [`load`] from any reader (a transaction sees its own writes).
pub fn load_from<Rd: Reader + ?Sized>(r: &Rd) -> Result<Formulary, FhirError> {
    Ok(Formulary::from_medications(&json_all(r, "Medication")?))
}

/// The formulary as `access` may read it (checked and audited like a REST
/// search; any member of staff may): what the formulary pages show a
/// person. Withdrawn entries included.
pub fn load_as(
    svc: &FhirService,
    access: &dyn wardline_core::Access,
) -> Result<Formulary, super::MedicinesError> {
    let max = svc.config().max_count.to_string();
    let mut all = Vec::new();
    let mut offset = 0usize;
    loop {
        let off = offset.to_string();
        let mut params = vec![("_count", max.as_str()), ("_sort", "_id")];
        if offset > 0 {
            params.push(("_offset", off.as_str()));
        }
        let found = svc.search_as(access, "Medication", &params)?;
        let n = found.resources.len();
        all.extend(found.resources);
        if !found.more || n == 0 {
            break;
        }
        offset += n;
    }
    Ok(Formulary::from_medications(&all))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starter() -> Formulary {
        Formulary::from_entries(parse(wardline_demo::FORMULARY).unwrap_or_default())
    }

    #[test]
    fn search_finds_by_prefix_substance_brand_and_class_best_first() {
        let f = starter();
        let names =
            |q: &str| -> Vec<String> { f.search(q).iter().map(|e| e.name().to_owned()).collect() };
        // A name starting with the text comes first.
        assert!(names("para")[0].starts_with("Paracetamol"));
        assert!(names("amox 500")[0].starts_with("Amoxicillin 500mg"));
        // Words in any order; case ignored.
        let mut both = names("TABLETS 500MG paracetamol");
        both.sort();
        assert_eq!(
            both,
            [
                "Paracetamol 500mg soluble tablets",
                "Paracetamol 500mg tablets"
            ]
        );
        // By brand (AMP) and by class.
        assert!(names("lantus")[0].starts_with("Insulin glargine"));
        assert!(
            names("penicillin")
                .iter()
                .any(|n| n.starts_with("Flucloxacillin"))
        );
        // By code, exactly.
        assert_eq!(names("42109611000001109"), ["Paracetamol 500mg tablets"]);
        assert!(names("").is_empty() && names("   ").is_empty());
        assert!(names("no such medicine").is_empty());
    }

    #[test]
    fn withdrawn_entries_are_never_offered() {
        let mut f = starter();
        for e in &mut f.entries {
            if e.vtm.display == "Warfarin" {
                e.active = false;
            }
        }
        assert!(f.search("warfarin").is_empty());
        assert_eq!(f.search_all("warfarin", true).len(), 4);
        assert!(f.entry("Medication/med-42109611000001109").is_some());
    }

    #[test]
    fn tags_name_the_flags() {
        let f = starter();
        let m = f.search("morphine 10mg/1ml injection")[0];
        assert_eq!(m.tags(), ["CD2", "high risk", "local code"]);
        assert_eq!(m.strength_text().as_deref(), Some("10 mg/1 mL"));
    }
}
