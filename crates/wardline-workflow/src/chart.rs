//! The chart summary behind the patient banner: demographics, alerts and
//! allergies, encounters (newest first, with the total), recent vital signs
//! and results. A handful of bounded searches, whatever the size of the
//! record: a patient with 500 encounters costs the same as one with five.

use serde_json::Value;
use wardline_core::{Access, FhirService};
use wardline_fhir::FhirError;

use crate::fhir::concept_text;
use wardline_core::Found;

/// How many of each list the summary shows.
pub const RECENT: usize = 10;

#[derive(Debug, Clone, Default)]
pub struct Alert {
    /// `Flag` or `AllergyIntolerance`.
    pub kind: &'static str,
    pub text: String,
    /// Criticality or category, when recorded.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct EncounterLine {
    pub id: String,
    pub class: String,
    pub status: String,
    pub kind: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ObservationLine {
    pub id: String,
    pub name: String,
    pub value: String,
    pub when: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ResultLine {
    pub id: String,
    pub name: String,
    pub status: String,
    pub when: Option<String>,
    pub conclusion: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ChartSummary {
    pub alerts: Vec<Alert>,
    pub allergies: Vec<Alert>,
    pub encounters: Vec<EncounterLine>,
    pub encounter_total: Option<u64>,
    pub observations: Vec<ObservationLine>,
    pub results: Vec<ResultLine>,
    /// Entries held back by the access gate or consent, across all lists.
    pub withheld: usize,
    /// Lists the caller's position does not cover ("Observations", …): a
    /// ward clerk sees the banner, alerts and stays, not results.
    pub not_permitted: Vec<&'static str>,
}

/// A search whose refusal (403) leaves its list empty and is noted, so
/// one list the position does not cover does not hide the others.
fn section(
    s: &mut ChartSummary,
    name: &'static str,
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    query: &[(&str, String)],
) -> Result<Found, FhirError> {
    match svc.search_as(access, resource_type, query) {
        Ok(f) => {
            s.withheld += f.withheld;
            Ok(f)
        }
        Err(e) if e.status == 403 => {
            s.not_permitted.push(name);
            Ok(Found::default())
        }
        Err(e) => Err(e),
    }
}

/// The summary of one patient's record as `access` may see it.
pub fn summary(
    svc: &FhirService,
    access: &dyn Access,
    patient_id: &str,
) -> Result<ChartSummary, FhirError> {
    let pat = || patient_id.to_owned();
    let n = RECENT.to_string();
    let mut s = ChartSummary::default();

    let flags = section(
        &mut s,
        "Alerts",
        svc,
        access,
        "Flag",
        // R4 defines no `status` search parameter for Flag: the patient's
        // flags are read and the active ones kept here (a lenient search
        // would silently ignore `status=active` and show ended alerts).
        &[("patient", pat()), ("_count", "100".into())],
    )?;
    s.alerts = flags
        .resources
        .iter()
        .filter(|f| f["status"] == "active")
        .map(|f| Alert {
            kind: "Flag",
            text: concept_text(&f["code"]).unwrap_or_else(|| "Alert".into()),
            detail: f["category"]
                .as_array()
                .and_then(|c| c.first())
                .and_then(concept_text),
        })
        .collect();

    let allergies = section(
        &mut s,
        "Allergies",
        svc,
        access,
        "AllergyIntolerance",
        &[("patient", pat())],
    )?;
    s.allergies = allergies
        .resources
        .iter()
        .filter(|a| {
            a["clinicalStatus"]["coding"]
                .as_array()
                .and_then(|c| c.first())
                .and_then(|c| c["code"].as_str())
                .is_none_or(|c| c == "active")
        })
        .map(|a| Alert {
            kind: "AllergyIntolerance",
            text: concept_text(&a["code"]).unwrap_or_else(|| "Allergy".into()),
            detail: a["criticality"].as_str().map(|c| match c {
                "high" => "high criticality".to_owned(),
                "low" => "low criticality".to_owned(),
                other => other.to_owned(),
            }),
        })
        .collect();

    let encounters = section(
        &mut s,
        "Encounters",
        svc,
        access,
        "Encounter",
        &[
            ("patient", pat()),
            ("_sort", "-date".into()),
            ("_count", n.clone()),
            ("_total", "accurate".into()),
        ],
    )?;
    s.encounter_total = encounters.total;
    s.encounters = encounters.resources.iter().map(encounter_line).collect();

    let obs = section(
        &mut s,
        "Observations",
        svc,
        access,
        "Observation",
        &[
            ("patient", pat()),
            ("category", "vital-signs".into()),
            ("_sort", "-date".into()),
            ("_count", n.clone()),
        ],
    )?;
    s.observations = obs.resources.iter().map(observation_line).collect();

    let reports = section(
        &mut s,
        "Results",
        svc,
        access,
        "DiagnosticReport",
        &[("patient", pat()), ("_sort", "-date".into()), ("_count", n)],
    )?;
    s.results = reports
        .resources
        .iter()
        .map(|r| ResultLine {
            id: r["id"].as_str().unwrap_or_default().to_owned(),
            name: concept_text(&r["code"]).unwrap_or_else(|| "Report".into()),
            status: r["status"].as_str().unwrap_or_default().to_owned(),
            when: r["effectiveDateTime"]
                .as_str()
                .or_else(|| r["issued"].as_str())
                .map(str::to_owned),
            conclusion: r["conclusion"].as_str().map(str::to_owned),
        })
        .collect();
    Ok(s)
}

fn encounter_line(e: &Value) -> EncounterLine {
    EncounterLine {
        id: e["id"].as_str().unwrap_or_default().to_owned(),
        class: e["class"]["display"]
            .as_str()
            .or_else(|| e["class"]["code"].as_str())
            .map(class_label)
            .unwrap_or_default(),
        status: e["status"].as_str().unwrap_or_default().to_owned(),
        kind: e["type"]
            .as_array()
            .and_then(|t| t.first())
            .and_then(concept_text),
        start: e["period"]["start"].as_str().map(str::to_owned),
        end: e["period"]["end"].as_str().map(str::to_owned),
        location: e["location"]
            .as_array()
            .and_then(|l| l.last())
            .and_then(|l| l["location"]["display"].as_str())
            .map(str::to_owned),
    }
}

fn class_label(code: &str) -> String {
    match code {
        "IMP" => "Inpatient",
        "EMER" => "Emergency",
        "AMB" => "Outpatient",
        "HH" => "Home visit",
        "VR" => "Virtual",
        other => other,
    }
    .to_owned()
}

fn observation_line(o: &Value) -> ObservationLine {
    let value = quantity(&o["valueQuantity"])
        .or_else(|| {
            // Blood pressure and other panels: their components.
            let parts: Vec<String> = o["component"]
                .as_array()?
                .iter()
                .filter_map(|c| quantity(&c["valueQuantity"]).map(|q| (c, q)))
                .map(|(c, q)| {
                    let name = concept_text(&c["code"]).unwrap_or_default();
                    format!("{name} {q}")
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        })
        .or_else(|| concept_text(&o["valueCodeableConcept"]))
        .or_else(|| o["valueString"].as_str().map(str::to_owned))
        .unwrap_or_default();
    ObservationLine {
        id: o["id"].as_str().unwrap_or_default().to_owned(),
        name: concept_text(&o["code"]).unwrap_or_else(|| "Observation".into()),
        value,
        when: o["effectiveDateTime"]
            .as_str()
            .or_else(|| o["issued"].as_str())
            .map(str::to_owned),
    }
}

fn quantity(q: &Value) -> Option<String> {
    let v = q["value"].as_f64()?;
    let unit = q["unit"]
        .as_str()
        .or_else(|| q["code"].as_str())
        .unwrap_or("");
    let num = if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    };
    Some(if unit.is_empty() {
        num
    } else {
        format!("{num} {unit}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn observation_values_read_plainly() {
        let hr = json!({"id": "o", "code": {"text": "Heart rate"}, "valueQuantity": {"value": 72.0, "unit": "/min"}});
        assert_eq!(observation_line(&hr).value, "72 /min");
        let bp = json!({"code": {"text": "Blood pressure"}, "component": [
            {"code": {"text": "Systolic"}, "valueQuantity": {"value": 120, "unit": "mm[Hg]"}},
            {"code": {"text": "Diastolic"}, "valueQuantity": {"value": 80.5, "unit": "mm[Hg]"}}]});
        assert_eq!(
            observation_line(&bp).value,
            "Systolic 120 mm[Hg], Diastolic 80.5 mm[Hg]"
        );
    }

    #[test]
    fn encounter_classes_are_named() {
        let e = json!({"id": "e", "status": "finished", "class": {"code": "IMP"}});
        assert_eq!(encounter_line(&e).class, "Inpatient");
    }
}
