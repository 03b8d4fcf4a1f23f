//! Decision support at the point of prescribing: allergy and intolerance
//! (by substance and by class), duplicate therapy, maximum daily dose
//! (across all routes, weight-adjusted), renal dose rules (eGFR or
//! Cockcroft–Gault creatinine clearance) and interactions, each a graded
//! [`Alert`].
//!
//! Prescribing calls [`assess_in`] in its transaction with the
//! prescription about to be saved; a [`Grade::HardStop`] refuses it, each
//! [`Grade::Override`] alert needs an [`Override`] with a reason
//! ([`gate`]), [`Grade::Advisory`] alerts are shown and kept. [`record_in`]
//! keeps every alert gone past as a `DetectedIssue`; [`alerts_of`] reads
//! them back for a prescription's page.
//!
//! * [`knowledge`]: the curated data (`medicines/knowledge.json`, compiled
//!   in) — its source, limits and the **grade of each alert** are in
//!   `docs/medicines-knowledge.md`;
//! * [`dose`]: the arithmetic (the most of a prescription in 24 hours in
//!   mg, Cockcroft–Gault), pure and property-tested;
//! * `assess`: the checks over the record in the transaction;
//! * `record`: the `DetectedIssue`s.

use serde::Serialize;
use serde_json::Value;
use wardline_core::Tx;

use super::MedicinesError;
use super::formulary::Formulary;

mod assess;
pub mod dose;
pub mod knowledge;
mod record;

pub use record::{RecordedAlert, alerts_among, alerts_of};

/// How strongly an alert stands in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grade {
    /// Shown; the prescription is saved without a reason.
    Advisory,
    /// Needs the prescriber's reason to go ahead.
    Override,
    /// Cannot be overridden.
    HardStop,
}

impl Grade {
    /// The code kept in `ALERT_GRADE_EXT`.
    pub fn code(self) -> &'static str {
        match self {
            Grade::Advisory => "advisory",
            Grade::Override => "override",
            Grade::HardStop => "hard-stop",
        }
    }
}

/// What an alert is about (`ALERT_KIND_SYSTEM` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    Allergy,
    DuplicateTherapy,
    MaximumDose,
    Renal,
    Interaction,
}

impl AlertKind {
    pub fn code(self) -> &'static str {
        match self {
            AlertKind::Allergy => "allergy",
            AlertKind::DuplicateTherapy => "duplicate-therapy",
            AlertKind::MaximumDose => "maximum-dose",
            AlertKind::Renal => "renal",
            AlertKind::Interaction => "interaction",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Stable within one prescribing attempt (`{kind}:{what it clashes
    /// with}`), so a form can post the reason for each alert by its key.
    pub key: String,
    pub kind: AlertKind,
    pub grade: Grade,
    /// A sentence for the prescriber.
    pub message: String,
    /// References of what the prescription clashes with
    /// (`AllergyIntolerance/…`, `MedicationRequest/…`, `Observation/…`).
    pub implicated: Vec<String>,
}

/// The prescriber's reason for going past an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Override {
    pub key: String,
    pub reason: String,
}

/// The alerts for `candidate` (a MedicationRequest not yet saved, for
/// `patient`) against the patient's record as the transaction sees it,
/// hard stops first. A change names the prescription it replaces in
/// `priorPrescription`, which is then not counted (nor is `candidate`'s
/// own id). The caller holds the lock it prescribes under (the patient's
/// medicines), so two prescriptions racing are assessed one after the
/// other. See the [module documentation](self) for the checks and grades.
pub fn assess_in(
    tx: &mut Tx<'_>,
    formulary: &Formulary,
    patient: &str,
    candidate: &Value,
    now: time::OffsetDateTime,
) -> Result<Vec<Alert>, MedicinesError> {
    assess::assess_in(tx, formulary, patient, candidate, now)
}

/// Checks the overrides against the alerts: `Err(Alerts)` when a hard stop
/// is among them or an override alert has no reason.
pub fn gate(alerts: &[Alert], overrides: &[Override]) -> Result<(), MedicinesError> {
    let blocked = alerts.iter().any(|a| {
        a.grade == Grade::HardStop
            || (a.grade == Grade::Override
                && !overrides
                    .iter()
                    .any(|o| o.key == a.key && !o.reason.trim().is_empty()))
    });
    if blocked {
        Err(MedicinesError::Alerts(alerts.to_vec()))
    } else {
        Ok(())
    }
}

/// Keeps each alert gone past as a `DetectedIssue` implicating the saved
/// prescription `prescription` (`MedicationRequest/{id}` or the id):
/// status `final`, `code` the kind ([`ALERT_KIND_SYSTEM`](super::ALERT_KIND_SYSTEM)), `severity`
/// (hard stop high, override moderate, advisory low), the grade
/// ([`ALERT_GRADE_EXT`](super::ALERT_GRADE_EXT)), `patient`, `implicated` the prescription and what
/// it clashes with, `detail` the message, `identifiedDateTime` `now`,
/// `author` the prescription's requester, and `mitigation[0].action.text`
/// the prescriber's reason. Refuses (as [`gate`] does) when a hard stop is
/// among the alerts or an override alert has no reason: nothing is kept
/// for a prescription that should not have been saved.
pub fn record_in(
    tx: &mut Tx<'_>,
    patient: &str,
    prescription: &str,
    alerts: &[Alert],
    overrides: &[Override],
    now: time::OffsetDateTime,
) -> Result<(), MedicinesError> {
    record::record_in(tx, patient, prescription, alerts, overrides, now)
}

/// The alerts in a sentence or two.
pub fn summary(alerts: &[Alert]) -> String {
    let hard = alerts.iter().any(|a| a.grade == Grade::HardStop);
    let lead = if hard {
        "This cannot be prescribed:"
    } else {
        "Give a reason to go past each alert:"
    };
    let mut s = lead.to_owned();
    for a in alerts {
        s.push(' ');
        s.push_str(&a.message);
    }
    s
}
