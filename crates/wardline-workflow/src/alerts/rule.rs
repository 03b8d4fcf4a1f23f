//! The alerts' write rule: who may record each kind, and the data rules a
//! plain REST write must obey as the workflow's do (see [`super`]).
//!
//! * **Who** (a person acting in a position; backend systems, operators
//!   and the engine are not asked): a CP-IS, end-of-life or MHA `Flag` is written only by a
//!   position whose role holds `sign-clinical-documents` (registered
//!   professionals); an `AllergyIntolerance` made `confirmed` or `refuted`
//!   (created so, or changed to it) only by one holding
//!   `sign-clinical-documents` or `prescribe`. The role is read from the
//!   caller's `PractitionerRole` in the writing transaction.
//! * **MHA**: an active detention Flag names a known section, its start,
//!   and exactly the expiry [`super::mha::legal_expiry`] computes (H-273).
//! * **CP-IS**: an active flag names its plan type and the local
//!   authority's ODS code (H-270: the responsible authority can always be
//!   called).
//! * **Allergies**: a `refuted` or `entered-in-error` record has no
//!   clinical status (FHIR ait-1, ait-2), so none can read as active.

use serde_json::Value;
use wardline_auth::rbac::{Activity, Role};
use wardline_core::{AgentKind, ProposedWrite, RuleTx, WriteRule};
use wardline_fhir::FhirError;

use super::mha::{Detention, Section, legal_expiry, zone_of};
use super::{CPIS_EXT, FlagKind, MHA_EXT, code_of, sub, sub_text};

pub struct AlertRule;

fn refuse(at: &str, m: impl Into<String>) -> FhirError {
    FhirError::new(422, "business-rule", m.into()).at(at)
}

/// The role of the position the caller acts in, read in the writing
/// transaction (`None`: no position, or no Wardline role on it).
fn role_of(tx: &RuleTx<'_, '_>) -> Result<Option<Role>, FhirError> {
    crate::fhir::caller_role_of(tx)
}

/// Whether the caller may: a person (a user acting in a position) only
/// when their role holds one of `any_of`; backend systems (their SMART
/// scopes decide), operators and the engine are not asked.
fn may(tx: &RuleTx<'_, '_>, any_of: &[Activity]) -> Result<bool, FhirError> {
    if !tx.access().restricted() || tx.access().agent().kind != AgentKind::User {
        return Ok(true);
    }
    Ok(role_of(tx)?.is_some_and(|r| any_of.iter().any(|a| r.has(*a))))
}

impl WriteRule for AlertRule {
    fn watches(&self, resource_type: &str) -> bool {
        matches!(resource_type, "Flag" | "AllergyIntolerance")
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
        if w.resource_type == "Flag" {
            flag(tx, w)
        } else {
            allergy(tx, w)
        }
    }
}

fn flag(tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
    let kind = FlagKind::of(w.resource).or_else(|| w.current.and_then(FlagKind::of));
    let Some(kind) = kind else { return Ok(()) };
    if !may(tx, &[Activity::SignClinicalDocuments])? {
        return Err(FhirError::new(
            403,
            "forbidden",
            "Only a registered professional (a doctor or registered nurse) records CP-IS, end-of-life and Mental Health Act alerts.",
        )
        .at("Flag.code"));
    }
    let f = w.resource;
    if f["status"] != "active" {
        return Ok(());
    }
    match kind {
        FlagKind::Mha => {
            let section = sub(f, MHA_EXT, "section")
                .and_then(|s| s["valueCoding"]["code"].as_str())
                .and_then(Section::parse)
                .ok_or_else(|| {
                    refuse("Flag.extension", "A detention names its Mental Health Act section (2, 3, 4, 5(2), 5(4), 135 or 136).")
                })?;
            let d = Detention::of(f).ok_or_else(|| {
                refuse("Flag.extension", "A detention gives its start and expiry.")
            })?;
            let zone = zone_of(tx.time_zone());
            let legal = legal_expiry(section, d.start_ms, d.renewals, &zone);
            if legal != Some(d.expiry_ms) {
                return Err(refuse(
                    "Flag.extension",
                    format!(
                        "The expiry of {} starting {} is {}, not {}.",
                        section.label().to_lowercase(),
                        sub_text(f, MHA_EXT, "start").unwrap_or_default(),
                        legal.map(super::instant).unwrap_or_default(),
                        sub_text(f, MHA_EXT, "expiry").unwrap_or_default()
                    ),
                ));
            }
        }
        FlagKind::Cpis => {
            let plan = sub(f, CPIS_EXT, "planType")
                .and_then(|p| p["valueCoding"]["code"].as_str())
                .and_then(super::flags::PlanType::parse);
            if plan.is_none() {
                return Err(refuse(
                    "Flag.extension",
                    "A CP-IS flag names its plan type (CPP, LAC or UCPP).",
                ));
            }
            if sub_text(f, CPIS_EXT, "localAuthorityOds").is_none_or(|o| o.trim().is_empty()) {
                return Err(refuse(
                    "Flag.extension",
                    "A CP-IS flag names the responsible local authority's ODS code.",
                ));
            }
        }
        FlagKind::EndOfLife => {}
    }
    Ok(())
}

fn verification(a: Option<&Value>) -> Option<&str> {
    a.and_then(|a| code_of(&a["verificationStatus"]))
}

fn allergy(tx: &mut RuleTx<'_, '_>, w: &ProposedWrite<'_>) -> Result<(), FhirError> {
    let to = verification(Some(w.resource));
    let from = verification(w.current);
    if matches!(to, Some("confirmed" | "refuted"))
        && to != from
        && !may(tx, &[Activity::SignClinicalDocuments, Activity::Prescribe])?
    {
        return Err(FhirError::new(
            403,
            "forbidden",
            "Only a doctor, registered nurse or pharmacist confirms or refutes an allergy; record it unconfirmed.",
        )
        .at("AllergyIntolerance.verificationStatus"));
    }
    if matches!(to, Some("refuted" | "entered-in-error"))
        && w.resource.get("clinicalStatus").is_some()
    {
        return Err(refuse(
            "AllergyIntolerance.clinicalStatus",
            "A refuted or entered-in-error allergy has no clinical status.",
        ));
    }
    Ok(())
}
