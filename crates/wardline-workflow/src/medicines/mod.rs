//! Medicines: the formulary, inpatient prescribing on the drug chart,
//! decision support at the point of prescribing, the pharmacist's clinical
//! screening, the medication administration record (MAR), discharge
//! medicines (TTO) and chemotherapy cycles.
//!
//! # The model (FHIR R4; `shared/notes/fhir-mapping.md`)
//!
//! * **The formulary** ([`formulary`]) is `Medication` resources, id
//!   `med-{code}`, one per dm+d VMP (virtual medicinal product) the trust
//!   stocks. `code.coding[0]` is the VMP (system [`DMD_SYSTEM`], or
//!   [`LOCAL_MEDICINE_SYSTEM`] for a product the file gives no real code for
//!   — such an entry is *local* and shown as such); `form` the dose form;
//!   `ingredient[].itemCodeableConcept` the VTM (virtual therapeutic moiety:
//!   the substance, e.g. paracetamol) with `strength`. The rest of the
//!   dm+d identity and the trust's flags are sub-extensions of
//!   [`FORMULARY_EXT`]: `vtm`, `amp` (0..*), `route` (0..*, SNOMED CT route
//!   codes), `unitOfDose`, `controlledDrug` (the schedule, "2"–"5"),
//!   `highRisk`, `timeCritical`, `class` (0..*, [`CLASS_SYSTEM`] codes: the
//!   therapeutic classes allergy-by-class and duplicate-therapy checks
//!   compare), `defaultDose`, `defaultFrequency`.
//! * **A prescription** on the inpatient drug chart is a
//!   `MedicationRequest` (`intent` `order`, `category` [`CATEGORY_SYSTEM`]
//!   `inpatient`, or `discharge` for a TTO; chemotherapy adds
//!   [`LOCAL_CATEGORY_SYSTEM`] `chemotherapy`), `medicationReference` →
//!   the formulary `Medication`, `subject`, `encounter`, `requester` (the
//!   prescriber), `authoredOn`, `reasonCode[0].text` the indication,
//!   `dispenseRequest.validityPeriod` the start and stop, [`REVIEW_EXT`]
//!   the review date, `priorPrescription` the prescription a change
//!   replaced, and one structured `dosageInstruction` whose shape says its
//!   [`Kind`] (see [`kind`]):
//!   - *regular*: `timing.repeat.timeOfDay` the administration times
//!     (with `frequency`/`period`/`periodUnit` of 1 d, or a longer period
//!     for e.g. weekly), `doseAndRate[0].doseQuantity`;
//!   - *as required* (PRN): `asNeededBoolean` or `asNeededCodeableConcept`,
//!     `doseQuantity`, `maxDosePerPeriod` (per 24 h) and the minimum
//!     interval between doses in [`MIN_INTERVAL_EXT`] (a `Duration`);
//!   - *once only*: `timing.repeat.count` 1 and `timing.event[0]`;
//!   - *variable dose* ([`VARIABLE_DOSE_EXT`] true, e.g. warfarin, an
//!     insulin sliding scale): `doseAndRate[0].doseRange` and the scale or
//!     instruction in `text`; the dose given is recorded at each
//!     administration;
//!   - *infusion*: `doseAndRate[0].rateQuantity` (mL/h), the volume in
//!     [`INFUSION_VOLUME_EXT`] and `timing.repeat.duration`/`durationUnit`.
//!
//!   The prescriber's signature is [`SIGNATURE_EXT`] (`by`, a reference to
//!   the Practitioner; `at`, the instant).
//! * **Decision support** ([`checks`]) at prescribing raises graded
//!   [`checks`] alerts; each alert the prescriber goes past is kept as a
//!   `DetectedIssue` (`implicated` the prescription and what it clashes
//!   with, `mitigation[0].action.text` the override reason, `author`, `date`).
//!   A hard stop cannot be overridden.
//! * **Screening** ([`screening`]): the pharmacist's verdict is
//!   [`SCREENING_EXT`] on the prescription (`status` `screened` |
//!   `queried`, `by`, `at`; none means unscreened); annotations are `note`s;
//!   a query to the prescriber is a `Task` (code [`PHARMACY_QUERY_CODE`]).
//! * **Administration** ([`mar`]): `MedicationAdministration` (`status`
//!   `completed`, or `not-done` with `statusReason` an omission code of
//!   [`OMISSION_SYSTEM`]), `request` → the prescription, `context`,
//!   `effectiveDateTime`, `performer[]` (the nurse, and `function`
//!   `witness` for a controlled drug), `dosage` (dose, route, site, rate),
//!   the batch in [`BATCH_EXT`]. A scheduled dose carries the identifier
//!   [`DOSE_SLOT_SYSTEM`] `{prescription id}/{scheduled instant, UTC}` —
//!   one record per dose, on every channel.
//! * **Chemotherapy** ([`chemo`]): a regimen is a `PlanDefinition`; a cycle
//!   a `CarePlan` (`instantiatesCanonical` the regimen) whose
//!   prescriptions (`basedOn` the CarePlan) stay `draft` until the cycle is
//!   verified and released.
//!
//! # The prescription's status lifecycle (one home: [`allowed`])
//!
//! ```text
//! draft ──► active ◄──► on-hold
//!   │         │  │          │
//!   │         │  └──► completed / stopped ◄──┘
//!   ▼         ▼
//! cancelled ◄─┘                     any ──► entered-in-error
//! ```
//!
//! * `draft`: not signed or not released (a chemotherapy cycle before
//!   verification): never given.
//! * `active`: signed (and released): on the drug round.
//! * `on-hold`: suspended (a delayed cycle, withheld); not due.
//! * `stopped` (discontinued, with `statusReason`), `completed` (a
//!   once-only dose given, a course ended), `cancelled` (never started),
//!   `entered-in-error`: ends. A change is the old prescription `stopped`
//!   (reason "changed") and a new one with `priorPrescription`.
//! * Only an `active` prescription may be given ([`administrable`]).

pub mod checks;
pub mod chemo;
pub mod discharge;
pub mod formulary;
pub mod mar;
pub mod prescribe;
pub mod screening;

use serde::Serialize;
use serde_json::Value;
use wardline_fhir::FhirError;

/// dm+d (NHS Dictionary of Medicines and Devices) codes.
pub const DMD_SYSTEM: &str = "https://dmd.nhs.uk";
/// SNOMED CT (routes, sites, substances in allergies).
pub const SNOMED_SYSTEM: &str = "http://snomed.info/sct";
/// A medicine the formulary file gave no dm+d code for: the trust's own
/// code, shown as local.
pub const LOCAL_MEDICINE_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/local-medicine";
/// Therapeutic classes (e.g. `penicillin`, `nsaid`, `opioid`,
/// `anticoagulant`), the trust's own codes.
pub const CLASS_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/medicine-class";
/// The formulary entry's dm+d identity and flags (on `Medication`).
pub const FORMULARY_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/formulary-entry";
/// FHIR's MedicationRequest categories (`inpatient`, `discharge`, …).
pub const CATEGORY_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/medicationrequest-category";
/// Wardline's own prescription categories (`chemotherapy`).
pub const LOCAL_CATEGORY_SYSTEM: &str =
    "https://fhir.wardline.invalid/CodeSystem/prescription-category";
/// The minimum interval between as-required doses (`valueDuration`, on the
/// Dosage).
pub const MIN_INTERVAL_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/minimum-interval";
/// A variable-dose prescription (`valueBoolean`, on the MedicationRequest).
pub const VARIABLE_DOSE_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/variable-dose";
/// An infusion's volume (`valueQuantity` mL, on the Dosage).
pub const INFUSION_VOLUME_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/infusion-volume";
/// The date a prescription is to be reviewed (`valueDate`).
pub const REVIEW_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/review-date";
/// The prescriber's signature (sub-extensions `by` Reference, `at` dateTime).
pub const SIGNATURE_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/prescriber-signature";
/// The pharmacist's screening (sub-extensions `status` code, `by`, `at`).
pub const SCREENING_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/pharmacy-screening";
/// `Task.code` (system `pmi::TASK_SYSTEM`) of a pharmacist's query to the prescriber.
pub const PHARMACY_QUERY_CODE: &str = "pharmacy-query";
/// The reasons a dose was not given.
pub const OMISSION_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/dose-omission";
/// A dose's batch number (`valueString`, on MedicationAdministration).
pub const BATCH_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/batch";
/// The identifier of a scheduled dose: `{prescription id}/{instant UTC}`.
pub const DOSE_SLOT_SYSTEM: &str = "https://fhir.wardline.invalid/Id/dose-slot";
/// A decision-support alert's grade (`hard-stop` | `override` | `advisory`, on DetectedIssue).
pub const ALERT_GRADE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/alert-grade";
/// Decision-support alert kinds (`DetectedIssue.code`).
pub const ALERT_KIND_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/prescribing-alert";

/// The FHIR R4 MedicationRequest status codes.
pub const STATUSES: [&str; 8] = [
    "active",
    "on-hold",
    "cancelled",
    "completed",
    "entered-in-error",
    "stopped",
    "draft",
    "unknown",
];

/// Whether a prescription may go from `from` to `to` (see the module
/// documentation). Setting the status it has is no change; unknown codes
/// are never allowed.
pub fn allowed(from: &str, to: &str) -> bool {
    if !STATUSES.contains(&from) || !STATUSES.contains(&to) {
        return false;
    }
    if from == to || to == "entered-in-error" || from == "unknown" {
        return from != "entered-in-error" || to == "entered-in-error";
    }
    matches!(
        (from, to),
        ("draft", "active" | "cancelled")
            | ("active", "on-hold" | "completed" | "stopped" | "cancelled")
            | ("on-hold", "active" | "completed" | "stopped")
    )
}

/// Whether a dose of a prescription in this status may be given.
pub fn administrable(status: &str) -> bool {
    status == "active"
}

/// A prescription's pharmacist screening as the chart shows it:
/// `unscreened` (no [`SCREENING_EXT`]), `screened` or `queried` — the one
/// reading of it.
pub fn screening_status(mr: &Value) -> &str {
    mr["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == SCREENING_EXT)
        .and_then(|e| {
            e["extension"]
                .as_array()?
                .iter()
                .find(|s| s["url"] == "status")?["valueCode"]
                .as_str()
        })
        .unwrap_or("unscreened")
}

/// What kind of prescription a `MedicationRequest` is, read from its
/// first `dosageInstruction` (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Regular,
    AsRequired,
    OnceOnly,
    VariableDose,
    Infusion,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Regular => "Regular",
            Kind::AsRequired => "As required",
            Kind::OnceOnly => "Once only",
            Kind::VariableDose => "Variable dose",
            Kind::Infusion => "Infusion",
        }
    }
}

/// The one reading of a prescription's kind.
pub fn kind(mr: &Value) -> Kind {
    let d = &mr["dosageInstruction"][0];
    if d["doseAndRate"][0].get("rateQuantity").is_some() {
        Kind::Infusion
    } else if mr["extension"].as_array().is_some_and(|es| {
        es.iter()
            .any(|e| e["url"] == VARIABLE_DOSE_EXT && e["valueBoolean"] == true)
    }) {
        Kind::VariableDose
    } else if d["asNeededBoolean"] == true || d.get("asNeededCodeableConcept").is_some() {
        Kind::AsRequired
    } else if d["timing"]["repeat"]["count"] == 1 || d["timing"].get("event").is_some() {
        Kind::OnceOnly
    } else {
        Kind::Regular
    }
}

/// What went wrong with a medicines action, in a sentence, with the HTTP
/// status that fits ([`MedicinesError::status`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum MedicinesError {
    /// The request is wrong (400).
    Invalid(String),
    /// 404.
    NotFound(String),
    /// The caller may not (403).
    Forbidden(String),
    /// Decision support raised alerts (409): a hard stop among them refuses
    /// outright; otherwise each alert needing an override needs a reason
    /// ([`checks::Override`]) before the prescription is saved.
    Alerts(Vec<checks::Alert>),
    /// The record's state does not allow it, or someone changed it at the
    /// same moment (409).
    Conflict(String),
    /// Wardline failed (500).
    Store(String),
}

impl MedicinesError {
    pub fn status(&self) -> u16 {
        match self {
            MedicinesError::Invalid(_) => 400,
            MedicinesError::NotFound(_) => 404,
            MedicinesError::Forbidden(_) => 403,
            MedicinesError::Alerts(_) | MedicinesError::Conflict(_) => 409,
            MedicinesError::Store(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            MedicinesError::Invalid(m)
            | MedicinesError::NotFound(m)
            | MedicinesError::Forbidden(m)
            | MedicinesError::Conflict(m)
            | MedicinesError::Store(m) => m.clone(),
            MedicinesError::Alerts(alerts) => checks::summary(alerts),
        }
    }
}

impl std::fmt::Display for MedicinesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for MedicinesError {}

impl From<FhirError> for MedicinesError {
    fn from(e: FhirError) -> MedicinesError {
        use crate::fhir::Refusal as R;
        match R::of(&e, "record") {
            R::Forbidden(m) => MedicinesError::Forbidden(m),
            R::NotFound(m) => MedicinesError::NotFound(m),
            R::Concurrent(m) => MedicinesError::Conflict(m),
            R::Invalid(m) => MedicinesError::Invalid(m),
            R::Store(m) => MedicinesError::Store(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifecycle_moves_forward_only() {
        assert!(allowed("draft", "active"));
        assert!(allowed("active", "stopped"));
        assert!(allowed("on-hold", "active"));
        assert!(!allowed("stopped", "active"));
        assert!(!allowed("completed", "active"));
        assert!(!allowed("cancelled", "draft"));
        assert!(!allowed("entered-in-error", "active"));
        assert!(allowed("stopped", "entered-in-error"));
        assert!(allowed("active", "active"));
        assert!(!allowed("active", "bogus"));
        assert!(administrable("active"));
        assert!(!administrable("draft") && !administrable("stopped"));
    }

    #[test]
    fn kind_is_read_from_the_dosage() {
        let regular =
            json!({"dosageInstruction": [{"timing": {"repeat": {"timeOfDay": ["08:00:00"]}}}]});
        assert_eq!(kind(&regular), Kind::Regular);
        let prn = json!({"dosageInstruction": [{"asNeededBoolean": true}]});
        assert_eq!(kind(&prn), Kind::AsRequired);
        let once = json!({"dosageInstruction": [{"timing": {"event": ["2026-12-02T10:00:00Z"], "repeat": {"count": 1}}}]});
        assert_eq!(kind(&once), Kind::OnceOnly);
        let var = json!({"extension": [{"url": VARIABLE_DOSE_EXT, "valueBoolean": true}], "dosageInstruction": [{}]});
        assert_eq!(kind(&var), Kind::VariableDose);
        let inf = json!({"dosageInstruction": [{"doseAndRate": [{"rateQuantity": {"value": 125, "unit": "mL/h"}}]}]});
        assert_eq!(kind(&inf), Kind::Infusion);
    }

    #[test]
    fn screening_is_read_from_its_extension() {
        assert_eq!(screening_status(&json!({})), "unscreened");
        let s = json!({"extension": [{"url": SCREENING_EXT, "extension": [{"url": "status", "valueCode": "queried"}]}]});
        assert_eq!(screening_status(&s), "queried");
    }
}
