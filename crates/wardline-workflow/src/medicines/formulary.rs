//! The formulary: the medicines the trust stocks, as `Medication`
//! resources with their dm+d identity and the trust's flags (see the
//! [module documentation](super) for the shape). [`load`] reads it;
//! [`Formulary::entry`] and [`Formulary::search`] are what prescribing,
//! decision support, the drug round and chemotherapy look a medicine up by.

use serde::Serialize;
use serde_json::Value;
use wardline_core::FhirService;
use wardline_fhir::FhirError;
use wardline_store::Reader;

use super::{DMD_SYSTEM, FORMULARY_EXT, LOCAL_MEDICINE_SYSTEM};
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
        let mut entries: Vec<Entry> = ms.iter().filter_map(Entry::from_medication).collect();
        entries.sort_by_key(|e| e.name().to_lowercase());
        Formulary { entries }
    }

    /// The entry of a `Medication` id (or a `Medication/{id}` reference).
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        let id = id.strip_prefix("Medication/").unwrap_or(id);
        self.entries.iter().find(|e| e.id == id)
    }

    /// Active entries whose name, VTM or code contains every word of `text`
    /// (case-insensitive).
    pub fn search(&self, text: &str) -> Vec<&Entry> {
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        self.entries
            .iter()
            .filter(|e| e.active)
            .filter(|e| {
                let hay = format!("{} {} {}", e.name(), e.vtm.display, e.vmp.code).to_lowercase();
                words.iter().all(|w| hay.contains(w))
            })
            .collect()
    }

    /// Every entry of a substance (VTM code).
    pub fn of_vtm<'a>(&'a self, vtm: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.vtm.code == vtm)
    }
}

/// The formulary, read as the system (it is not patient data).
pub fn load(svc: &FhirService) -> Result<Formulary, FhirError> {
    load_from(svc.system_reader())
}

/// [`load`] from any reader (a transaction sees its own writes).
pub fn load_from<Rd: Reader + ?Sized>(r: &Rd) -> Result<Formulary, FhirError> {
    Ok(Formulary::from_medications(&json_all(r, "Medication")?))
}
