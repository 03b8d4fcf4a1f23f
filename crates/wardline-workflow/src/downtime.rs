//! The downtime report (issue 22: business continuity): per ward, what a
//! nurse needs on paper when Wardline cannot be used — the current patients
//! (bed, name, NHS number, age, consultant), their alerts (allergies,
//! CP-IS, Mental Health Act, DNACPR and other flags) and the medicines due
//! in the next hours (from the drug round's dose slots, overdue ones too).
//!
//! Read through the caller's access like any page (the server's job reads
//! as the system agent `downtime-report`, allowed and audited): the ward
//! board ([`crate::adt::ward_board`]), each patient's banner
//! ([`crate::alerts::banner`]) and the drug round
//! ([`crate::medicines::mar::drug_round`]). Rendering (printable HTML, CSV)
//! and writing the files belong to the callers.

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use wardline_core::{Access, FhirService};

use crate::medicines::mar::round::DoseState;

/// How far back an outstanding (overdue) dose is still listed.
pub const OVERDUE_LOOKBACK_HOURS: i64 = 12;

/// One ward's report.
#[derive(Debug, Clone, Serialize)]
pub struct WardReport {
    pub ward_id: String,
    pub ward: String,
    pub site: String,
    /// When it was made (clinical clock, epoch ms) and the same in the
    /// trust's time, `YYYY-MM-DD HH:MM` — printed on every page, so a stale
    /// report is never taken for a current one.
    pub generated_ms: i64,
    pub generated_local: String,
    /// The end of the due-medicines window, local.
    pub due_until_local: String,
    pub patients: Vec<ReportPatient>,
    /// Occupied beds whose patient the reader may not see.
    pub withheld: usize,
}

/// A patient in a bed.
#[derive(Debug, Clone, Serialize)]
pub struct ReportPatient {
    pub bed: String,
    pub patient_id: String,
    /// "SMITH, John".
    pub name: String,
    pub nhs_number: Option<String>,
    /// Whole years at the report's time.
    pub age: Option<i32>,
    pub consultant: Option<String>,
    /// The alerts in words ("Allergies: 2 (high criticality)", "DNACPR").
    pub alerts: Vec<String>,
    pub due: Vec<DueDose>,
}

/// A dose due (or overdue) in the window.
#[derive(Debug, Clone, Serialize)]
pub struct DueDose {
    /// Local `YYYY-MM-DD HH:MM`.
    pub at_local: String,
    pub medicine: String,
    pub dose: String,
    /// "Overdue", "Due", "Not yet due".
    pub state: String,
    pub time_critical: bool,
}

fn age_at(
    birth: &str,
    now: OffsetDateTime,
    zone: &wardline_fhir::datetime::LocalZone,
) -> Option<i32> {
    let mut parts = birth.get(..10)?.split('-');
    let (y, m, d): (i32, u8, u8) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    let today = zone.date_of(now);
    let mut age = today.year() - y;
    if (u8::from(today.month()), today.day()) < (m, d) {
        age -= 1;
    }
    (age >= 0).then_some(age)
}

/// The banner's alerts, in words.
fn alert_words(b: &crate::alerts::Banner) -> Vec<String> {
    let mut out = Vec::new();
    if b.allergies > 0 {
        let mut s = format!("Allergies: {}", b.allergies);
        if let Some(c) = &b.worst_criticality {
            s.push_str(&format!(" ({c} criticality)"));
        }
        if b.unconfirmed > 0 {
            s.push_str(&format!(", {} unconfirmed", b.unconfirmed));
        }
        out.push(s);
    } else if b.no_known_allergies {
        out.push("No known allergies".into());
    } else if !b.allergies_hidden {
        out.push("Allergies not recorded".into());
    }
    if b.allergies_hidden {
        out.push("Allergies: not all visible to this report".into());
    }
    for c in b.cpis.iter().filter(|c| c.active) {
        out.push(format!("CP-IS: {} ({})", c.plan, c.la_name));
    }
    if let Some(e) = &b.end_of_life {
        out.push(e.resuscitation.clone());
    }
    for m in &b.mha {
        out.push(format!(
            "Mental Health Act: {} until {}",
            m.section, m.expiry_local
        ));
    }
    out.extend(b.other.iter().cloned());
    if b.flags_hidden {
        out.push("Flags: not all visible to this report".into());
    }
    out
}

/// The report of one ward at `now`, with the doses due in the next `hours`.
pub fn ward_report(
    svc: &FhirService,
    access: &dyn Access,
    ward: &str,
    now: OffsetDateTime,
    hours: i64,
) -> Result<WardReport, String> {
    let zone = svc.time_zone().clone();
    let round = crate::medicines::mar::drug_round(
        svc,
        access,
        ward,
        now,
        Duration::hours(OVERDUE_LOOKBACK_HOURS),
        Duration::hours(hours),
    )
    .map_err(|e| e.to_string())?;
    let board = crate::adt::ward_board(svc, access, ward).map_err(|e| e.to_string())?;
    let encounter_of = |patient: &str| {
        board
            .bays
            .iter()
            .flat_map(|b| &b.beds)
            .filter_map(|b| b.patient.as_ref())
            .find(|p| p.id == patient)
            .map(|p| p.encounter_id.clone())
    };
    let mut patients = Vec::new();
    for p in round.patients {
        let patient = svc
            .read_as(access, "Patient", &p.id)
            .map_err(|e| e.to_string())?;
        let age = patient
            .as_ref()
            .and_then(|r| r["birthDate"].as_str())
            .and_then(|b| age_at(b, now, &zone));
        let consultant = match encounter_of(&p.id) {
            Some(enc) => match svc
                .read_as(access, "Encounter", &enc)
                .map_err(|e| e.to_string())?
            {
                Some(e) => crate::adt::consultant_of(svc, &e).map_err(|e| e.to_string())?,
                None => None,
            },
            None => None,
        };
        let banner = crate::alerts::banner(svc, access, &p.id).map_err(|e| e.to_string())?;
        let mut due: Vec<DueDose> = p
            .prescriptions
            .iter()
            .flat_map(|rx| {
                rx.doses
                    .iter()
                    .filter(|d| {
                        matches!(
                            d.state,
                            DoseState::Due | DoseState::Overdue | DoseState::NotYetDue
                        ) && d.record.is_none()
                    })
                    .map(move |d| DueDose {
                        at_local: format!("{} {}", d.slot.day, d.slot.time),
                        medicine: rx.medicine.clone(),
                        dose: rx.dose.clone(),
                        state: d.state.label().to_owned(),
                        time_critical: rx.time_critical,
                    })
            })
            .collect();
        due.sort_by(|a, b| {
            a.at_local
                .cmp(&b.at_local)
                .then(a.medicine.cmp(&b.medicine))
        });
        patients.push(ReportPatient {
            bed: p.bed,
            patient_id: p.id,
            name: p.name,
            nhs_number: p.nhs_number,
            age,
            consultant,
            alerts: alert_words(&banner),
            due,
        });
    }
    let ms = now.unix_timestamp_nanos() / 1_000_000;
    let generated_ms = i64::try_from(ms).unwrap_or_default();
    Ok(WardReport {
        ward_id: round.ward_id,
        ward: round.ward,
        site: round.site,
        generated_ms,
        generated_local: round.now,
        due_until_local: round.to,
        patients,
        withheld: round.withheld,
    })
}

/// Every ward's report (every site's wards, as [`crate::adt::sites`] lists
/// them).
pub fn all_wards(
    svc: &FhirService,
    access: &dyn Access,
    now: OffsetDateTime,
    hours: i64,
) -> Result<Vec<WardReport>, String> {
    let sites = crate::adt::sites(svc, access).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for site in sites {
        for w in site.wards {
            out.push(ward_report(svc, access, &w.id, now, hours)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_whole_years_on_the_local_date() {
        let zone = wardline_fhir::datetime::LocalZone::london();
        let now = time::macros::datetime!(2026-03-02 12:00 UTC);
        assert_eq!(age_at("1950-03-02", now, &zone), Some(76));
        assert_eq!(age_at("1950-03-03", now, &zone), Some(75));
        assert_eq!(age_at("2030-01-01", now, &zone), None);
        assert_eq!(age_at("1950", now, &zone), None);
    }
}
