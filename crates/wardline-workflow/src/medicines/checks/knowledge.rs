//! The prescribing knowledge decision support reads: maximum daily doses,
//! renal dose rules, interaction pairs, allergy classes and their
//! cross-sensitivities, and the classes where two at once is duplicate
//! therapy. It is `medicines/knowledge.json`, compiled in and parsed once;
//! its source and limits are in `docs/medicines-knowledge.md` (written by
//! the project from general published guidance, not a complete or licensed
//! knowledge base: a trust loads a licensed one in its place).
//!
//! Medicines are named by the formulary's VTM codes (`Entry::vtm`) and
//! class codes (`CLASS_SYSTEM`, `Entry::classes`).

use std::sync::LazyLock;

use serde::Deserialize;

use super::super::formulary::Entry;

/// The knowledge file as compiled in.
pub const SOURCE_JSON: &str = include_str!("../knowledge.json");

/// What a knowledge entry applies to: a substance (VTM code) or a class.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub vtm: Option<String>,
    #[serde(default)]
    pub class: Option<String>,
    /// What people call it (for messages and the documentation).
    pub name: String,
}

impl Target {
    /// Whether the medicine `m` is this substance or of this class.
    pub fn covers(&self, m: &Med) -> bool {
        self.vtm.as_deref().is_some_and(|v| v == m.vtm)
            || self
                .class
                .as_deref()
                .is_some_and(|c| m.classes.iter().any(|k| k == c))
    }
}

/// The maximum of a substance in any 24 hours, across all routes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaxDose {
    pub vtm: String,
    pub name: String,
    pub mg_per24h: f64,
    /// Below this weight the maximum is by weight (e.g. paracetamol under
    /// 50 kg: 60 mg/kg in 24 hours).
    #[serde(default)]
    pub weight_band: Option<WeightBand>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightBand {
    pub below_kg: f64,
    pub mg_per_kg_per24h: f64,
}

impl MaxDose {
    /// The maximum in mg per 24 hours for a patient of `weight_kg` (the
    /// adult maximum when the weight is unknown or not below the band).
    pub fn limit_mg(&self, weight_kg: Option<f64>) -> f64 {
        match (self.weight_band, weight_kg) {
            (Some(b), Some(w)) if w > 0.0 && w < b.below_kg => {
                self.mg_per24h.min(b.mg_per_kg_per24h * w)
            }
            _ => self.mg_per24h,
        }
    }
}

/// Which measure of renal function a rule is written against.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// eGFR, mL/min/1.73 m².
    Egfr,
    /// Creatinine clearance by Cockcroft–Gault, mL/min.
    Crcl,
}

impl Measure {
    pub fn label(self) -> &'static str {
        match self {
            Measure::Egfr => "eGFR",
            Measure::Crcl => "creatinine clearance",
        }
    }
}

/// What a renal band asks of the prescriber.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Monitor,
    Reduce,
    Avoid,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenalBand {
    /// The band applies when the measure is below this.
    pub below: f64,
    pub action: Action,
    pub advice: String,
    /// The most in 24 hours in this band, where the guidance gives one.
    #[serde(default)]
    pub max_mg_per24h: Option<f64>,
    #[serde(default)]
    pub max_mg_per_kg_per24h: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenalRule {
    pub on: Target,
    pub measure: Measure,
    pub bands: Vec<RenalBand>,
}

impl RenalRule {
    /// The band a value falls in: the narrowest whose threshold it is
    /// below.
    pub fn band(&self, value: f64) -> Option<&RenalBand> {
        self.bands
            .iter()
            .filter(|b| value < b.below)
            .min_by(|a, b| a.below.total_cmp(&b.below))
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Moderate,
    Severe,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interaction {
    pub a: Target,
    pub b: Target,
    pub severity: Severity,
    pub message: String,
}

impl Interaction {
    pub fn between(&self, x: &Med, y: &Med) -> bool {
        (self.a.covers(x) && self.b.covers(y)) || (self.a.covers(y) && self.b.covers(x))
    }
}

/// A class people are allergic to as a whole (penicillins), with the
/// names and codes an allergy record may use for the group itself.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllergyClass {
    pub class: String,
    pub name: String,
    /// Lower-case names of the group (`penicillin`, `penicillins`).
    pub names: Vec<String>,
    /// SNOMED CT substance codes of the group.
    #[serde(default)]
    pub codes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossSensitivity {
    pub allergy_class: String,
    pub medicine_class: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DuplicateClass {
    pub class: String,
    pub name: String,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Knowledge {
    pub source: String,
    pub version: String,
    /// A renal result older than this is stale (an advisory).
    pub renal_result_max_age_hours: i64,
    pub maximum_doses: Vec<MaxDose>,
    pub renal_rules: Vec<RenalRule>,
    pub interactions: Vec<Interaction>,
    pub allergy_classes: Vec<AllergyClass>,
    pub cross_sensitivities: Vec<CrossSensitivity>,
    pub duplicate_classes: Vec<DuplicateClass>,
}

impl Knowledge {
    pub fn parse(s: &str) -> Result<Knowledge, String> {
        let k: Knowledge = serde_json::from_str(s).map_err(|e| format!("knowledge.json: {e}"))?;
        for r in &k.renal_rules {
            if r.on.vtm.is_none() && r.on.class.is_none() {
                return Err(format!(
                    "knowledge.json: renal rule '{}' names no vtm or class",
                    r.on.name
                ));
            }
        }
        for i in &k.interactions {
            for t in [&i.a, &i.b] {
                if t.vtm.is_none() && t.class.is_none() {
                    return Err(format!(
                        "knowledge.json: interaction side '{}' names no vtm or class",
                        t.name
                    ));
                }
            }
        }
        Ok(k)
    }

    pub fn max_dose(&self, vtm: &str) -> Option<&MaxDose> {
        self.maximum_doses.iter().find(|m| m.vtm == vtm)
    }

    pub fn renal_rules_for<'a>(&'a self, m: &'a Med) -> impl Iterator<Item = &'a RenalRule> + 'a {
        self.renal_rules.iter().filter(move |r| r.on.covers(m))
    }

    pub fn allergy_class(&self, class: &str) -> Option<&AllergyClass> {
        self.allergy_classes.iter().find(|c| c.class == class)
    }

    pub fn duplicate_class(&self, class: &str) -> Option<&DuplicateClass> {
        self.duplicate_classes.iter().find(|c| c.class == class)
    }
}

static KNOWLEDGE: LazyLock<Result<Knowledge, String>> =
    LazyLock::new(|| Knowledge::parse(SOURCE_JSON));

/// The compiled-in knowledge (a unit test proves it parses, so the error
/// is only ever seen by a build that edited the file and ran no tests).
pub fn get() -> Result<&'static Knowledge, String> {
    KNOWLEDGE.as_ref().map_err(Clone::clone)
}

/// A medicine as the checks compare it: its substance and classes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Med {
    pub vtm: String,
    /// The substance's name (the VTM display).
    pub name: String,
    pub classes: Vec<String>,
}

impl Med {
    pub fn of(e: &Entry) -> Med {
        Med {
            vtm: e.vtm.code.clone(),
            name: if e.vtm.display.is_empty() {
                e.name().to_owned()
            } else {
                e.vtm.display.clone()
            },
            classes: e.classes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_knowledge_parses() {
        let k = get().expect("knowledge.json parses");
        assert!(!k.maximum_doses.is_empty());
        assert!(!k.renal_rules.is_empty());
        assert!(!k.interactions.is_empty());
        for r in &k.renal_rules {
            assert!(!r.bands.is_empty(), "{} has bands", r.on.name);
        }
    }

    #[test]
    fn the_weight_band_lowers_the_maximum() {
        let m = MaxDose {
            vtm: "x".into(),
            name: "paracetamol".into(),
            mg_per24h: 4000.0,
            weight_band: Some(WeightBand {
                below_kg: 50.0,
                mg_per_kg_per24h: 60.0,
            }),
        };
        assert!((m.limit_mg(Some(45.0)) - 2700.0).abs() < 1e-9);
        assert_eq!(m.limit_mg(Some(50.0)), 4000.0);
        assert_eq!(m.limit_mg(None), 4000.0);
        assert_eq!(m.limit_mg(Some(80.0)), 4000.0);
    }

    #[test]
    fn the_narrowest_band_applies() {
        let band = |below, action| RenalBand {
            below,
            action,
            advice: String::new(),
            max_mg_per24h: None,
            max_mg_per_kg_per24h: None,
        };
        let r = RenalRule {
            on: Target {
                vtm: Some("m".into()),
                class: None,
                name: "metformin".into(),
            },
            measure: Measure::Egfr,
            bands: vec![band(45.0, Action::Reduce), band(30.0, Action::Avoid)],
        };
        assert_eq!(r.band(25.0).map(|b| b.action), Some(Action::Avoid));
        assert_eq!(r.band(30.0).map(|b| b.action), Some(Action::Reduce));
        assert_eq!(r.band(44.9).map(|b| b.action), Some(Action::Reduce));
        assert_eq!(r.band(45.0), None);
    }
}
