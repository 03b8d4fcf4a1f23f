//! (issue 16: being built — the contract's types, until the catalogue
//! branch lands; the requesting code is written against them.)

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Catalogue {
    pub orderables: Vec<Orderable>,
    pub sets: Vec<OrderSet>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Orderable {
    pub id: String,
    pub url: String,
    pub title: String,
    pub code: serde_json::Value,
    pub local_code: bool,
    pub department: String,
    pub imaging: bool,
    pub modality: Option<String>,
    pub ionising: bool,
    pub specimen: Option<SpecimenRequirement>,
    pub preparation: Option<String>,
    pub timing: Option<String>,
    pub retest_interval_hours: Option<u32>,
    pub questionnaire: Option<Questionnaire>,
    pub analytes: Vec<Analyte>,
    pub active: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SpecimenRequirement {
    pub specimen_type: serde_json::Value,
    pub container: String,
    pub colour: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Question {
    pub link_id: String,
    pub text: String,
    pub kind: String,
    pub required: bool,
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Questionnaire {
    pub url: String,
    pub items: Vec<Question>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Analyte {
    pub code: serde_json::Value,
    pub display: String,
    pub unit: Option<String>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub critical_low: Option<f64>,
    pub critical_high: Option<f64>,
    pub delta_absolute: Option<f64>,
    pub delta_percent: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OrderSet {
    pub id: String,
    pub url: String,
    pub title: String,
    pub orderables: Vec<String>,
}

impl Catalogue {
    pub fn orderable(&self, id: &str) -> Option<&Orderable> {
        self.orderables.iter().find(|o| o.id == id)
    }
    pub fn by_url(&self, url: &str) -> Option<&Orderable> {
        self.orderables.iter().find(|o| o.url == url)
    }
    pub fn set(&self, id: &str) -> Option<&OrderSet> {
        self.sets.iter().find(|s| s.id == id)
    }
}
