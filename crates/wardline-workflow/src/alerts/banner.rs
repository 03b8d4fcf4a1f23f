//! The alerts every patient page's banner shows, read with the page's
//! patient read ([`crate::pmi::summary`] fills `PatientSummary::alerts`):
//! one search per kind — the patient's Flags, their AllergyIntolerance
//! records, and the open escalation Tasks of the NEWS2 part — each through
//! the caller's `Access` (authorised and audited like any read). A kind the
//! caller's position does not cover is marked hidden, never shown as
//! "none" (H-050, H-271).

use serde::Serialize;
use serde_json::Value;
use wardline_core::{Access, FhirService, Found};
use wardline_fhir::FhirError;

use super::flags::{Cpis, EndOfLife};
use super::mha::Detention;
use super::{FlagKind, allergy_in_force, code_of, is_no_known_allergy};

/// How many of each kind the banner reads (a patient has a handful).
const MAX: &str = "200";

/// A detention as the banner shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MhaAlert {
    pub flag: String,
    /// "Section 5(2)".
    pub section: String,
    pub expiry_ms: i64,
    /// The expiry on the trust's wall clock ("5 March 2026 10:00").
    pub expiry_local: String,
}

/// End-of-life preferences as the banner shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EolAlert {
    pub flag: String,
    pub dnacpr: bool,
    pub respect: bool,
    /// "Do not attempt CPR (DNACPR)".
    pub resuscitation: String,
    pub lpa: bool,
}

/// The patient's active alerts for the banner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Banner {
    /// Allergies in force.
    pub allergies: usize,
    /// Of them, not yet verified.
    pub unconfirmed: usize,
    /// The worst criticality among them (`high` > `unable-to-assess` > `low`).
    pub worst_criticality: Option<String>,
    /// A "no known allergies" statement is in force.
    pub no_known_allergies: bool,
    /// Allergy records hidden from the caller (not covered or withheld).
    pub allergies_hidden: bool,
    pub cpis: Vec<Cpis>,
    pub end_of_life: Option<EolAlert>,
    pub mha: Vec<MhaAlert>,
    /// Other active flags, in words.
    pub other: Vec<String>,
    /// Flags hidden from the caller.
    pub flags_hidden: bool,
    /// Open NEWS2 escalations (their descriptions), when the caller may
    /// see tasks.
    pub escalations: Vec<String>,
    /// When it was read, on the clinical clock (epoch ms): the time left on
    /// a Mental Health Act section is counted from it.
    pub as_of_ms: i64,
}

impl Banner {
    /// Whether the banner has anything to show.
    pub fn is_empty(&self) -> bool {
        self == &Banner {
            as_of_ms: self.as_of_ms,
            ..Banner::default()
        }
    }
}

fn search(
    svc: &FhirService,
    access: &dyn Access,
    t: &str,
    q: &[(&str, String)],
    hidden: &mut bool,
) -> Result<Found, FhirError> {
    match svc.search_as(access, t, q) {
        Ok(f) => {
            *hidden |= f.withheld > 0;
            Ok(f)
        }
        Err(e) if e.status == 403 => {
            *hidden = true;
            Ok(Found::default())
        }
        Err(e) => Err(e),
    }
}

fn rank(c: &str) -> u8 {
    match c {
        "high" => 3,
        "unable-to-assess" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// The banner's alerts for `patient` as `access` may see them.
pub fn banner(svc: &FhirService, access: &dyn Access, patient: &str) -> Result<Banner, FhirError> {
    let mut b = Banner {
        as_of_ms: svc.now_ms(),
        ..Banner::default()
    };
    let zone = super::mha::zone_of(svc.time_zone());
    let flags = search(
        svc,
        access,
        "Flag",
        &[("patient", patient.to_owned()), ("_count", MAX.to_owned())],
        &mut b.flags_hidden,
    )?;
    for f in flags.resources.iter().filter(|f| f["status"] == "active") {
        match FlagKind::of(f) {
            Some(FlagKind::Cpis) => b.cpis.extend(Cpis::of(f)),
            Some(FlagKind::Mha) => b.mha.extend(Detention::of(f).map(|d| MhaAlert {
                flag: d.flag,
                section: d.section.label(),
                expiry_ms: d.expiry_ms,
                expiry_local: super::mha::local_text(d.expiry_ms, &zone),
            })),
            Some(FlagKind::EndOfLife) => {
                if let Some((flag, _, e)) = EndOfLife::of(f) {
                    b.end_of_life = Some(EolAlert {
                        flag,
                        dnacpr: e.resuscitation == "dnacpr",
                        respect: e.respect,
                        resuscitation: e.resuscitation_label().to_owned(),
                        lpa: e.lpa_name.is_some(),
                    });
                }
            }
            None => b
                .other
                .push(crate::fhir::concept_text(&f["code"]).unwrap_or_else(|| "Alert".to_owned())),
        }
    }
    let allergies = search(
        svc,
        access,
        "AllergyIntolerance",
        &[("patient", patient.to_owned()), ("_count", MAX.to_owned())],
        &mut b.allergies_hidden,
    )?;
    for a in &allergies.resources {
        if allergy_in_force(a) {
            b.allergies += 1;
            if code_of(&a["verificationStatus"]) == Some("unconfirmed") {
                b.unconfirmed += 1;
            }
            if let Some(c) = a["criticality"].as_str()
                && b.worst_criticality
                    .as_deref()
                    .is_none_or(|w| rank(c) > rank(w))
            {
                b.worst_criticality = Some(c.to_owned());
            }
        } else if is_no_known_allergy(a) && code_of(&a["clinicalStatus"]) == Some("active") {
            b.no_known_allergies = true;
        }
    }
    let mut tasks_hidden = false;
    let tasks = search(
        svc,
        access,
        "Task",
        &[
            ("patient", patient.to_owned()),
            // Every NEWS2 escalation kind, as the observations module
            // names them (a 3 in one parameter, urgent, emergency).
            ("code", crate::observations::scoring::kinds_query()),
            (
                "status",
                "requested,received,accepted,ready,in-progress,on-hold".to_owned(),
            ),
        ],
        &mut tasks_hidden,
    )?;
    b.escalations = tasks
        .resources
        .iter()
        .map(|t: &Value| {
            t["description"]
                .as_str()
                .unwrap_or("NEWS2 escalation open")
                .to_owned()
        })
        .collect();
    Ok(b)
}
