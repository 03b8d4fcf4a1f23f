//! Each alert gone past, kept as a `DetectedIssue`; and read back for a
//! prescription's page.

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::{Access, FhirService, Tx};

use super::{Alert, Grade, Override, gate};
use crate::medicines::{ALERT_GRADE_EXT, ALERT_KIND_SYSTEM, MedicinesError};

/// The identifier of a kept alert: `{prescription id}/{alert key}`, so the
/// same alert of the same prescription is kept once.
pub const ALERT_ID_SYSTEM: &str = "https://fhir.wardline.invalid/Id/prescribing-alert";

fn severity(g: Grade) -> &'static str {
    match g {
        Grade::HardStop => "high",
        Grade::Override => "moderate",
        Grade::Advisory => "low",
    }
}

pub(super) fn record_in(
    tx: &mut Tx<'_>,
    patient: &str,
    prescription: &str,
    alerts: &[Alert],
    overrides: &[Override],
    now: time::OffsetDateTime,
) -> Result<(), MedicinesError> {
    gate(alerts, overrides)?;
    let patient = patient.strip_prefix("Patient/").unwrap_or(patient);
    let id = prescription
        .strip_prefix("MedicationRequest/")
        .unwrap_or(prescription);
    let mr = tx
        .get("MedicationRequest", id)?
        .ok_or_else(|| MedicinesError::NotFound(format!("No prescription {id}.")))?;
    let author = mr["requester"]["reference"].as_str().map(str::to_owned);
    let at = now
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| MedicinesError::Store(format!("The time could not be written: {e}")))?;
    for a in alerts {
        let reason = overrides
            .iter()
            .find(|o| o.key == a.key)
            .map(|o| o.reason.trim())
            .filter(|r| !r.is_empty());
        let mut implicated = vec![json!({"reference": format!("MedicationRequest/{id}")})];
        implicated.extend(a.implicated.iter().map(|r| json!({"reference": r})));
        let mut di = json!({
            "resourceType": "DetectedIssue",
            "status": "final",
            "extension": [{"url": ALERT_GRADE_EXT, "valueCode": a.grade.code()}],
            "identifier": [{"system": ALERT_ID_SYSTEM, "value": format!("{id}/{}", a.key)}],
            "code": {"coding": [{"system": ALERT_KIND_SYSTEM, "code": a.kind.code()}]},
            "severity": severity(a.grade),
            "patient": {"reference": format!("Patient/{patient}")},
            "identifiedDateTime": at,
            "implicated": implicated,
            "detail": a.message,
        });
        if let Some(r) = &author {
            di["author"] = json!({"reference": r});
        }
        if let Some(reason) = reason {
            let mut m = json!({"action": {"text": reason}, "date": at});
            if let Some(r) = &author {
                m["author"] = json!({"reference": r});
            }
            di["mitigation"] = json!([m]);
        }
        tx.save(di)?;
    }
    Ok(())
}

/// A kept alert as a prescription's page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedAlert {
    pub id: String,
    /// The alert's key (`allergy:AllergyIntolerance/…`).
    pub key: String,
    /// The kind's code (`allergy`, `maximum-dose`, …).
    pub kind: String,
    /// The grade's code (`advisory`, `override`).
    pub grade: String,
    pub message: String,
    /// The prescriber's reason, where one was given.
    pub reason: Option<String>,
    /// `Practitioner/…`.
    pub author: Option<String>,
    pub at: Option<String>,
    /// What the prescription clashed with.
    pub implicated: Vec<String>,
}

impl RecordedAlert {
    pub fn of(di: &Value) -> Option<RecordedAlert> {
        let id = di["id"].as_str()?.to_owned();
        let key = di["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"] == ALERT_ID_SYSTEM)
            .and_then(|i| i["value"].as_str())
            .and_then(|v| v.split_once('/'))
            .map(|(_, k)| k.to_owned())
            .unwrap_or_default();
        Some(RecordedAlert {
            id,
            key,
            kind: di["code"]["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["system"] == ALERT_KIND_SYSTEM)
                .and_then(|c| c["code"].as_str())
                .unwrap_or_default()
                .to_owned(),
            grade: di["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["url"] == ALERT_GRADE_EXT)
                .and_then(|e| e["valueCode"].as_str())
                .unwrap_or_default()
                .to_owned(),
            message: di["detail"].as_str().unwrap_or_default().to_owned(),
            reason: di["mitigation"][0]["action"]["text"]
                .as_str()
                .map(str::to_owned),
            author: di["author"]["reference"].as_str().map(str::to_owned),
            at: di["identifiedDateTime"].as_str().map(str::to_owned),
            implicated: di["implicated"]
                .as_array()
                .into_iter()
                .flatten()
                .skip(1)
                .filter_map(|r| r["reference"].as_str().map(str::to_owned))
                .collect(),
        })
    }
}

/// The alerts kept for a prescription (`MedicationRequest/{id}` or the id),
/// read with the caller's access (audited), most severe first.
pub fn alerts_of(
    svc: &FhirService,
    access: &dyn Access,
    prescription: &str,
) -> Result<Vec<RecordedAlert>, MedicinesError> {
    let id = prescription
        .strip_prefix("MedicationRequest/")
        .unwrap_or(prescription);
    let found = svc.search_as(
        access,
        "DetectedIssue",
        &[
            ("implicated", format!("MedicationRequest/{id}")),
            ("_count", "100".to_owned()),
        ],
    )?;
    Ok(alerts_among(&found.resources, id))
}

/// The alerts kept for prescription `id` among DetectedIssues read by the
/// caller (those whose first `implicated` is it), most severe first: the
/// one reading of a kept alert, for [`alerts_of`] and the prescription's
/// detail page, which reads them in its own audited transaction.
pub fn alerts_among(found: &[Value], id: &str) -> Vec<RecordedAlert> {
    let mut out: Vec<RecordedAlert> = found
        .iter()
        .filter(|d| {
            d["implicated"][0]["reference"].as_str() == Some(&format!("MedicationRequest/{id}"))
        })
        .filter_map(RecordedAlert::of)
        .collect();
    let rank = |g: &str| match g {
        "hard-stop" => 0,
        "override" => 1,
        _ => 2,
    };
    out.sort_by(|a, b| rank(&a.grade).cmp(&rank(&b.grade)).then(a.key.cmp(&b.key)));
    out
}
