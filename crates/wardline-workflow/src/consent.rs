//! Patients' consent decisions as people record and read them: dissent
//! from sharing with organisations outside the trust, and the national data
//! opt-out.
//!
//! What a decision means, and how it is written as a FHIR `Consent`, is
//! the core's (`wardline_core::consent`: [`consent::resource`] writes what
//! the access policy and every export honour, [`consent::decision_of`]
//! reads it back). Here: [`record`] writes one for a patient in one audited
//! transaction (subtype `consent-record`), [`withdraw`] ends one
//! (`consent-withdraw`: status `inactive`, the history keeps what it was),
//! and [`decisions`] lists a patient's decisions for the chart. Who may do
//! each is the policy's (`Consent`: read with the clinical view or
//! registration, written by registration staff), applied by the core.

use serde_json::Value;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::consent::{self, Decision};
use wardline_core::{Access, FhirService};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::now_ms;

/// One of a patient's consent decisions, as the chart shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentLine {
    /// The Consent's id.
    pub id: String,
    pub decision: Decision,
    /// When it was made (`Consent.dateTime`), as recorded.
    pub made: Option<String>,
    /// Honoured now (active, within its period).
    pub in_force: bool,
    /// `active`, `inactive`, …
    pub status: String,
    /// The names of the organisations a dissent names (their ids when a
    /// name is not known), in the decision's order.
    pub organisations: Vec<String>,
}

impl ConsentLine {
    /// The decision in a sentence, naming the organisations.
    pub fn text(&self) -> String {
        match &self.decision {
            Decision::NationalOptOut => {
                "National data opt-out: not to be used for research or planning".to_owned()
            }
            Decision::NoSharing(orgs) if orgs.is_empty() => {
                "Does not want their record shared with any organisation outside the trust"
                    .to_owned()
            }
            Decision::NoSharing(_) => format!(
                "Does not want their record shared with {}",
                self.organisations.join(", ")
            ),
        }
    }
}

/// A patient's consent decisions as the caller may see them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decisions {
    /// Newest first.
    pub lines: Vec<ConsentLine>,
    /// Consents the caller's access does not cover (not shown, counted):
    /// "none recorded" must not be said when some are withheld.
    pub withheld: usize,
}

/// The patient's consent decisions the caller may see (newest first);
/// Consents Wardline does not act on (permits, other scopes) are left out.
/// The caller's access applies: a refusal is the core's 403.
pub fn decisions(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<Decisions, FhirError> {
    let found = svc.search_as(
        access,
        "Consent",
        &[
            ("patient", format!("Patient/{patient}").as_str()),
            ("_sort", "-_lastUpdated"),
            ("_count", "100"),
        ],
    )?;
    let now = now_ms();
    let mut lines: Vec<ConsentLine> = found
        .resources
        .iter()
        .filter_map(|c| {
            Some(ConsentLine {
                id: c.get("id")?.as_str()?.to_owned(),
                decision: consent::decision_of(c)?,
                made: c.get("dateTime").and_then(Value::as_str).map(str::to_owned),
                in_force: consent::is_in_force(c, now),
                status: c
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                organisations: Vec::new(),
            })
        })
        .collect();
    // The organisations' names, in one search.
    let mut ids: Vec<&str> = lines
        .iter()
        .flat_map(|l| match &l.decision {
            Decision::NoSharing(o) => o.iter().map(String::as_str).collect(),
            Decision::NationalOptOut => Vec::new(),
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let names: Vec<(String, String)> = if ids.is_empty() {
        Vec::new()
    } else {
        svc.search_as(access, "Organization", &[("_id", ids.join(","))])?
            .resources
            .iter()
            .filter_map(|o| {
                Some((
                    o.get("id")?.as_str()?.to_owned(),
                    o.get("name")?.as_str()?.to_owned(),
                ))
            })
            .collect()
    };
    for l in &mut lines {
        if let Decision::NoSharing(orgs) = &l.decision {
            l.organisations = orgs
                .iter()
                .map(|o| {
                    names
                        .iter()
                        .find(|(id, _)| id == o)
                        .map_or_else(|| o.clone(), |(_, n)| n.clone())
                })
                .collect();
        }
    }
    Ok(Decisions {
        lines,
        withheld: found.withheld,
    })
}

/// Organisations outside the trust a patient may refuse sharing with: every
/// active Organization that is not the trust or a department of it
/// (`is_trust` decides), as (id, name), by name.
pub fn partner_organisations(
    svc: &FhirService,
    access: &dyn Access,
    is_trust: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, FhirError> {
    let found = svc.search_as(
        access,
        "Organization",
        &[("active", "true"), ("_count", "200")],
    )?;
    let mut out: Vec<(String, String)> = found
        .resources
        .iter()
        .filter_map(|o| {
            let id = o.get("id")?.as_str()?;
            let name = o.get("name").and_then(Value::as_str).unwrap_or(id);
            (!is_trust(id)).then(|| (id.to_owned(), name.to_owned()))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Records `decision` for `patient`: the patient and every organisation
/// named must exist. Returns the new Consent's id.
pub fn record(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    decision: &Decision,
) -> Result<String, FhirError> {
    svc.transact(access, |tx| {
        tx.set_audit_subtype(WARDLINE_SUBTYPE, "consent-record", "C");
        if tx.get("Patient", patient)?.is_none() {
            return Err(FhirError::not_found(format!(
                "there is no patient record {patient}"
            )));
        }
        if let Decision::NoSharing(orgs) = decision {
            for o in orgs {
                if tx.get("Organization", o)?.is_none() {
                    return Err(FhirError::invalid(format!(
                        "there is no organisation {o} to refuse sharing with"
                    ))
                    .at("organisation"));
                }
            }
        }
        Ok(tx.save(consent::resource(patient, decision, now_ms()))?.id)
    })
}

/// Ends patient `patient`'s consent decision `id` (the patient changed
/// their mind): the Consent becomes `inactive`; its earlier version stays in
/// the history. A decision of another patient is not found.
pub fn withdraw(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    id: &str,
) -> Result<(), FhirError> {
    svc.transact(access, |tx| {
        tx.set_audit_subtype(WARDLINE_SUBTYPE, "consent-withdraw", "U");
        let not_found = || FhirError::not_found(format!("this patient has no consent record {id}"));
        let Some(mut c) = tx.get("Consent", id)? else {
            return Err(not_found());
        };
        if c.pointer("/patient/reference").and_then(Value::as_str)
            != Some(format!("Patient/{patient}").as_str())
        {
            return Err(not_found());
        }
        if c.get("status").and_then(Value::as_str) != Some("active") {
            return Err(FhirError::new(
                409,
                "business-rule",
                "this consent decision is no longer in force",
            ));
        }
        c["status"] = Value::String("inactive".into());
        tx.save(c)?;
        Ok(())
    })
}
