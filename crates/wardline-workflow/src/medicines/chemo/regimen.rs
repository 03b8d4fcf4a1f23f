//! Regimens: chemotherapy protocols as `PlanDefinition`s (`type`
//! `clinical-protocol`, `url` `https://fhir.wardline.invalid/PlanDefinition/{id}`,
//! `identifier` [`super::REGIMEN_SYSTEM`]), read into [`Regimen`].
//!
//! The regimen's cycle length and number of cycles are sub-extensions of
//! [`super::REGIMEN_EXT`]; each drug is one `action` (`title` the drug)
//! with the sub-extensions of [`super::DRUG_EXT`]: `vtm` (the formulary
//! substance, a dm+d VTM `valueCoding`), `basis` (`mg/m2` | `mg/kg` |
//! `auc` | `flat`), `dose` (decimal), `day` (one per day of the cycle it
//! is given), `timesPerDay` (default 1), `route` (SNOMED CT), `infusion`
//! (text: diluent, volume, duration), `bandTable` (the national dose-band
//! table's id when the drug is banded), `roundTo` (mg, when not banded),
//! `maxDose` (mg), `cumulativeClass` (a [`super::dose::LIMITS`] class),
//! `fromCycle`/`toCycle` (a sequential regimen such as FEC-T).

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::{Access, FhirService};
use wardline_store::Reader;

use super::banding;
use super::dose::Basis;
use super::{DRUG_EXT, PROTOCOL_TYPE_SYSTEM, REGIMEN_EXT, REGIMEN_SYSTEM, REGIMEN_URL_BASE};
use crate::fhir::json_all;
use crate::medicines::MedicinesError;
use crate::medicines::formulary::{Code, Entry, Formulary};

/// One drug of a regimen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drug {
    pub name: String,
    pub vtm: Code,
    pub basis: Basis,
    pub dose: f64,
    pub days: Vec<u32>,
    pub times_per_day: u32,
    pub route: Code,
    pub infusion: Option<String>,
    pub band_table: Option<String>,
    pub round_to: Option<f64>,
    pub max_dose: Option<f64>,
    pub cumulative_class: Option<String>,
    pub from_cycle: u32,
    pub to_cycle: Option<u32>,
}

impl Drug {
    /// Whether the drug is given in cycle `n`.
    pub fn in_cycle(&self, n: u32) -> bool {
        n >= self.from_cycle && self.to_cycle.is_none_or(|t| n <= t)
    }

    /// Days as written (`1`, `1–5`, `1–14`, `1, 8`).
    pub fn days_text(&self) -> String {
        days_text(&self.days)
    }

    /// The formulary medicine: an active entry of the VTM (by code, or by
    /// name when the regimen's code is not the formulary's), preferring one
    /// given by the route.
    pub fn medicine<'a>(&self, f: &'a Formulary) -> Option<&'a Entry> {
        let name = self.vtm.display.to_lowercase();
        let candidates: Vec<&Entry> = f
            .entries
            .iter()
            .filter(|e| e.active)
            .filter(|e| {
                (!self.vtm.code.is_empty() && e.vtm.code == self.vtm.code)
                    || (!name.is_empty() && e.vtm.display.to_lowercase() == name)
            })
            .collect();
        candidates
            .iter()
            .find(|e| e.routes.iter().any(|r| r.code == self.route.code))
            .or(candidates.first())
            .copied()
    }
}

/// Days as ranges (`1–5`, `1, 8`).
pub fn days_text(days: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < days.len() {
        let mut j = i;
        while j + 1 < days.len() && days[j + 1] == days[j] + 1 {
            j += 1;
        }
        if j > i {
            out.push(format!("{}–{}", days[i], days[j]));
        } else {
            out.push(days[i].to_string());
        }
        i = j + 1;
    }
    out.join(", ")
}

/// A regimen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regimen {
    pub id: String,
    pub url: String,
    pub code: String,
    pub title: String,
    pub description: String,
    pub cycle_days: u32,
    pub cycles: u32,
    pub drugs: Vec<Drug>,
    pub active: bool,
}

impl Regimen {
    /// The drugs of cycle `n`.
    pub fn drugs_in(&self, n: u32) -> impl Iterator<Item = &Drug> {
        self.drugs.iter().filter(move |d| d.in_cycle(n))
    }
}

/// Whether a `PlanDefinition`'s type is `clinical-protocol` (the order
/// catalogue leaves these out).
pub fn is_protocol_type(pd: &Value) -> bool {
    pd["type"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["system"] == PROTOCOL_TYPE_SYSTEM && c["code"] == "clinical-protocol")
}

/// Whether a `PlanDefinition` is a chemotherapy protocol.
pub fn is_regimen(pd: &Value) -> bool {
    is_protocol_type(pd)
        && pd["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["url"] == REGIMEN_EXT)
}

fn subs<'a>(v: &'a Value, url: &str) -> &'a [Value] {
    v["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == url)
        .and_then(|e| e["extension"].as_array())
        .map_or(&[], Vec::as_slice)
}

fn sub<'a>(s: &'a [Value], name: &str) -> Option<&'a Value> {
    s.iter().find(|e| e["url"] == name)
}

fn int(s: &[Value], name: &str) -> Option<u32> {
    sub(s, name)
        .and_then(|e| e["valueInteger"].as_u64())
        .and_then(|n| u32::try_from(n).ok())
}

fn dec(s: &[Value], name: &str) -> Option<f64> {
    sub(s, name).and_then(|e| e["valueDecimal"].as_f64())
}

fn text(s: &[Value], name: &str) -> Option<String> {
    sub(s, name).and_then(|e| {
        e["valueString"]
            .as_str()
            .or_else(|| e["valueCode"].as_str())
            .map(str::to_owned)
    })
}

fn coding(s: &[Value], name: &str) -> Option<Code> {
    let c = &sub(s, name)?["valueCoding"];
    Some(Code {
        system: c["system"].as_str().unwrap_or_default().to_owned(),
        code: c["code"].as_str().unwrap_or_default().to_owned(),
        display: c["display"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Reads a protocol, naming what is wrong.
pub fn parse(pd: &Value) -> Result<Regimen, String> {
    let id = pd["id"].as_str().ok_or("the PlanDefinition has no id")?;
    let r = subs(pd, REGIMEN_EXT);
    let cycle_days = int(r, "cycleLengthDays")
        .filter(|d| *d > 0)
        .ok_or_else(|| format!("PlanDefinition/{id}: cycleLengthDays is missing"))?;
    let cycles = int(r, "cycles")
        .filter(|d| *d > 0)
        .ok_or_else(|| format!("PlanDefinition/{id}: cycles is missing"))?;
    let mut drugs = Vec::new();
    for (i, a) in pd["action"].as_array().into_iter().flatten().enumerate() {
        let s = subs(a, DRUG_EXT);
        let at = |what: &str| format!("PlanDefinition/{id} action[{i}]: {what}");
        let vtm = coding(s, "vtm").ok_or_else(|| at("vtm is missing"))?;
        let basis = text(s, "basis")
            .and_then(|b| Basis::parse(&b))
            .ok_or_else(|| at("basis must be mg/m2, mg/kg, auc or flat"))?;
        let dose = dec(s, "dose")
            .filter(|d| *d > 0.0)
            .ok_or_else(|| at("dose must be above zero"))?;
        let mut days: Vec<u32> = s
            .iter()
            .filter(|e| e["url"] == "day")
            .filter_map(|e| e["valueInteger"].as_u64())
            .filter_map(|n| u32::try_from(n).ok())
            .collect();
        days.sort_unstable();
        days.dedup();
        if days.is_empty() || days.iter().any(|d| *d == 0 || *d > cycle_days) {
            return Err(at(&format!("each day must be 1 to {cycle_days}")));
        }
        let band_table = text(s, "bandTable");
        if let Some(t) = &band_table
            && banding::table(t).is_none()
        {
            return Err(at(&format!("no national dose-band table '{t}' is loaded")));
        }
        let cumulative_class = text(s, "cumulativeClass");
        if let Some(c) = &cumulative_class
            && super::dose::limit_of(c).is_none()
        {
            return Err(at(&format!("no cumulative limit is known for '{c}'")));
        }
        drugs.push(Drug {
            name: a["title"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| vtm.display.clone()),
            vtm,
            basis,
            dose,
            days,
            times_per_day: int(s, "timesPerDay").unwrap_or(1).max(1),
            route: coding(s, "route").unwrap_or_default(),
            infusion: text(s, "infusion"),
            band_table,
            round_to: dec(s, "roundTo"),
            max_dose: dec(s, "maxDose"),
            cumulative_class,
            from_cycle: int(s, "fromCycle").unwrap_or(1).max(1),
            to_cycle: int(s, "toCycle"),
        });
    }
    if drugs.is_empty() {
        return Err(format!("PlanDefinition/{id}: the regimen has no drugs"));
    }
    Ok(Regimen {
        id: id.to_owned(),
        url: pd["url"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{REGIMEN_URL_BASE}{id}")),
        code: pd["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"] == REGIMEN_SYSTEM)
            .and_then(|i| i["value"].as_str())
            .unwrap_or(id)
            .to_owned(),
        title: pd["title"].as_str().unwrap_or(id).to_owned(),
        description: pd["description"].as_str().unwrap_or_default().to_owned(),
        cycle_days,
        cycles,
        drugs,
        active: pd["status"] == "active",
    })
}

/// Every regimen in the store (read as the system: protocols are not
/// patient data), in title order; protocols that do not parse are left out
/// and listed in the second value.
pub fn load_from<Rd: Reader + ?Sized>(
    r: &Rd,
) -> Result<(Vec<Regimen>, Vec<String>), MedicinesError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for pd in json_all(r, "PlanDefinition")?
        .iter()
        .filter(|p| is_regimen(p))
    {
        match parse(pd) {
            Ok(r) => out.push(r),
            Err(e) => problems.push(e),
        }
    }
    out.sort_by_key(|r| r.title.to_lowercase());
    Ok((out, problems))
}

/// [`load_from`] the service.
pub fn load(svc: &FhirService) -> Result<Vec<Regimen>, MedicinesError> {
    Ok(load_from(svc.system_reader())?.0)
}

/// Imports a Bundle of protocol `PlanDefinition`s (e.g. the demo's
/// `chemotherapy-regimens.json`): each is checked first, then all are
/// written in one audited transaction. Returns their ids.
pub fn import(
    svc: &FhirService,
    access: &dyn Access,
    bundle: &Value,
) -> Result<Vec<String>, MedicinesError> {
    let mut pds = Vec::new();
    for (i, e) in bundle["entry"].as_array().into_iter().flatten().enumerate() {
        let pd = &e["resource"];
        if !is_regimen(pd) {
            return Err(MedicinesError::Invalid(format!(
                "Bundle.entry[{i}]: not a chemotherapy protocol PlanDefinition (type clinical-protocol with the regimen extension)"
            )));
        }
        parse(pd).map_err(MedicinesError::Invalid)?;
        pds.push(pd.clone());
    }
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        "chemo-regimens-import",
        "U",
    );
    let mut ids = Vec::new();
    for pd in pds {
        ids.push(tx.save(pd)?.id);
    }
    tx.commit()?;
    Ok(ids)
}

/// A `Coding` of a code, leaving out empty parts (FHIR allows no empty strings).
pub fn coding_json(c: &Code) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("system", &c.system),
        ("code", &c.code),
        ("display", &c.display),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// A protocol `PlanDefinition` from its parts (the demo file's and the
/// tests' builder; the shape is documented in the module).
pub fn plan_definition(r: &Regimen, source: &str) -> Value {
    let actions: Vec<Value> = r
        .drugs
        .iter()
        .map(|d| {
            let mut s = vec![
                json!({"url": "vtm", "valueCoding": coding_json(&d.vtm)}),
                json!({"url": "basis", "valueCode": d.basis.code()}),
                json!({"url": "dose", "valueDecimal": d.dose}),
            ];
            for day in &d.days {
                s.push(json!({"url": "day", "valueInteger": day}));
            }
            if d.times_per_day > 1 {
                s.push(json!({"url": "timesPerDay", "valueInteger": d.times_per_day}));
            }
            s.push(json!({"url": "route", "valueCoding": coding_json(&d.route)}));
            if let Some(i) = &d.infusion {
                s.push(json!({"url": "infusion", "valueString": i}));
            }
            if let Some(t) = &d.band_table {
                s.push(json!({"url": "bandTable", "valueString": t}));
            }
            if let Some(x) = d.round_to {
                s.push(json!({"url": "roundTo", "valueDecimal": x}));
            }
            if let Some(x) = d.max_dose {
                s.push(json!({"url": "maxDose", "valueDecimal": x}));
            }
            if let Some(c) = &d.cumulative_class {
                s.push(json!({"url": "cumulativeClass", "valueCode": c}));
            }
            if d.from_cycle > 1 {
                s.push(json!({"url": "fromCycle", "valueInteger": d.from_cycle}));
            }
            if let Some(t) = d.to_cycle {
                s.push(json!({"url": "toCycle", "valueInteger": t}));
            }
            json!({
                "title": d.name,
                "description": format!("{} {} day {}", d.name, d.basis.describe(d.dose), d.days_text()),
                "extension": [{"url": DRUG_EXT, "extension": s}],
            })
        })
        .collect();
    json!({
        "resourceType": "PlanDefinition",
        "id": r.id,
        "url": format!("{REGIMEN_URL_BASE}{}", r.id),
        "identifier": [{"system": REGIMEN_SYSTEM, "value": r.code}],
        "version": "1",
        "name": r.code.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        "title": r.title,
        "type": {"coding": [{"system": PROTOCOL_TYPE_SYSTEM, "code": "clinical-protocol", "display": "Clinical Protocol"}]},
        "status": if r.active { "active" } else { "retired" },
        "description": r.description,
        "extension": [{"url": REGIMEN_EXT, "extension": [
            {"url": "cycleLengthDays", "valueInteger": r.cycle_days},
            {"url": "cycles", "valueInteger": r.cycles},
            {"url": "source", "valueString": source},
        ]}],
        "action": actions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_written_as_ranges() {
        assert_eq!(days_text(&[1]), "1");
        assert_eq!(days_text(&[1, 2, 3, 4, 5]), "1–5");
        assert_eq!(days_text(&[1, 8]), "1, 8");
        assert_eq!(days_text(&[1, 2, 8, 15, 16]), "1–2, 8, 15–16");
    }

    #[test]
    fn the_demo_regimens_parse() {
        let b: Value = serde_json::from_str(include_str!(
            "../../../../wardline-demo/data/chemotherapy-regimens.json"
        ))
        .unwrap();
        let rs: Vec<Regimen> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| parse(&e["resource"]).unwrap())
            .collect();
        let codes: Vec<&str> = rs.iter().map(|r| r.code.as_str()).collect();
        for want in [
            "R-CHOP-21",
            "FEC-T",
            "AC",
            "DOCETAXEL-21",
            "CAPECITABINE",
            "CARBOPLATIN-AUC5",
        ] {
            assert!(codes.contains(&want), "{want} in {codes:?}");
        }
        let rchop = rs.iter().find(|r| r.code == "R-CHOP-21").unwrap();
        assert_eq!((rchop.cycle_days, rchop.cycles), (21, 6));
        let vcr = rchop
            .drugs
            .iter()
            .find(|d| d.name == "Vincristine")
            .unwrap();
        assert_eq!(vcr.max_dose, Some(2.0));
        assert!(vcr.band_table.is_some());
        let pred = rchop
            .drugs
            .iter()
            .find(|d| d.name == "Prednisolone")
            .unwrap();
        assert_eq!(
            (pred.basis, pred.days_text().as_str()),
            (Basis::Flat, "1–5")
        );
        let fect = rs.iter().find(|r| r.code == "FEC-T").unwrap();
        assert_eq!(fect.drugs_in(1).count(), 3);
        assert_eq!(
            fect.drugs_in(4)
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>(),
            ["Docetaxel"]
        );
        // Round trip through the builder.
        let again = parse(&plan_definition(rchop, "x")).unwrap();
        assert_eq!(&again, rchop);
    }

    #[test]
    fn a_broken_protocol_is_named() {
        let pd = json!({"resourceType": "PlanDefinition", "id": "x",
            "extension": [{"url": REGIMEN_EXT, "extension": [{"url": "cycleLengthDays", "valueInteger": 21}, {"url": "cycles", "valueInteger": 4}]}],
            "action": [{"title": "A", "extension": [{"url": DRUG_EXT, "extension": [
                {"url": "vtm", "valueCoding": {"code": "1"}}, {"url": "basis", "valueCode": "mg/m2"},
                {"url": "dose", "valueDecimal": 60}, {"url": "day", "valueInteger": 22}]}]}]});
        assert!(parse(&pd).unwrap_err().contains("each day must be 1 to 21"));
    }
}
