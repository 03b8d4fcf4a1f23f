//! Decision support at the point of prescribing: allergy and intolerance
//! (by substance and by class), duplicate therapy, maximum daily dose,
//! renal dose rules and interactions, each a graded [`Alert`].
//!
//! CONTRACT (issue 17; the decision-support owner fills in [`assess_in`]
//! and [`record_in`], keeping these types): prescribing calls
//! [`assess_in`] in its transaction with the prescription about to be
//! saved; a [`Grade::HardStop`] refuses it, each [`Grade::Override`] alert
//! needs an [`Override`] with a reason, [`Grade::Advisory`] alerts are shown
//! and kept. [`record_in`] keeps every alert gone past as a
//! `DetectedIssue`.

use serde::Serialize;
use serde_json::Value;
use wardline_core::Tx;

use super::MedicinesError;
use super::formulary::Formulary;

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
/// `patient`) against the patient's record as the transaction sees it.
pub fn assess_in(
    _tx: &mut Tx<'_>,
    _formulary: &Formulary,
    _patient: &str,
    _candidate: &Value,
    _now: time::OffsetDateTime,
) -> Result<Vec<Alert>, MedicinesError> {
    Ok(Vec::new())
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
/// prescription `prescription` (`MedicationRequest/{id}`).
pub fn record_in(
    _tx: &mut Tx<'_>,
    _patient: &str,
    _prescription: &str,
    _alerts: &[Alert],
    _overrides: &[Override],
    _now: time::OffsetDateTime,
) -> Result<(), MedicinesError> {
    Ok(())
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
