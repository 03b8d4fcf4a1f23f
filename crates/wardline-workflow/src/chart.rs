//! The chart summary behind the patient banner: alerts and allergies,
//! problems, medicines, encounters (newest first, with the total), recent
//! vital signs and results. A handful of bounded searches, whatever the size
//! of the record: a patient with 500 encounters costs the same as one with
//! five.
//!
//! Every list is a [`Section`]: what the caller may see, and what was
//! hidden from them ([`Hidden`]: a list their position does not cover at
//! all, entries withheld for want of a care relationship or by the
//! patient's consent). An empty list is "none recorded" only when nothing
//! was hidden ([`Section::none_recorded`]): a clerk who may not see
//! allergies must never read "no allergies" (hazard H-050).
//!
//! Ages are measured against `now`, which the caller passes (the clock is
//! injected): an observation is shown with how long ago it was taken, and a
//! vital sign older than [`OBSERVATION_OLD_AFTER_MS`] is marked old
//! (H-052).
//!
//! To add a section: a [`Section`] field on [`ChartSummary`], filled in
//! [`summary`] by [`read`]ing one or more searches into it (each adds what
//! it hid), and the web page renders it with its notices like the others.

use serde_json::Value;
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Found};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::parse_range;

use crate::alerts::code_of;
use crate::fhir::{concept_text, quantity_text, reference_id};

/// How many of each list of recent entries the summary shows.
pub const RECENT: usize = 10;

/// How many current problems and current medicines are read (of each kind):
/// all of them for any real record; beyond it the section says more exist.
pub const CURRENT_MAX: usize = 100;

/// A vital sign taken longer ago than this (24 hours) is marked old: ward
/// observations are repeated at least twice a day (NEWS2's minimum is every
/// 12 hours), so an older one is not the patient's current state.
pub const OBSERVATION_OLD_AFTER_MS: i64 = 24 * 60 * 60 * 1000;

/// What a section may not show its reader. Nothing hidden is the only state
/// in which an empty section means that nothing is recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hidden {
    /// The caller's position does not cover (some of) the section's
    /// records: nothing of them was read, so nothing is known of them.
    pub not_covered: bool,
    /// Entries found but withheld from the caller (no care relationship,
    /// the patient's consent), among those read.
    pub withheld: usize,
    /// More entries matched than were read, so more may be withheld than
    /// [`Hidden::withheld`] counts (it is a lower bound).
    pub at_least: bool,
}

impl Hidden {
    /// Nothing of the section was hidden from the caller.
    pub fn nothing(&self) -> bool {
        !self.not_covered && self.withheld == 0
    }
}

/// One list of the chart as the caller may see it.
#[derive(Debug, Clone)]
pub struct Section<T> {
    /// What the caller may see, in the order to show it.
    pub entries: Vec<T>,
    /// What was hidden from the caller.
    pub hidden: Hidden,
    /// More entries are recorded than are listed (the list is the newest,
    /// or the first [`CURRENT_MAX`] current ones).
    pub more: bool,
    /// How many entries are recorded in all, when asked for and nothing was
    /// withheld (encounters).
    pub total: Option<u64>,
}

impl<T> Default for Section<T> {
    fn default() -> Self {
        Section {
            entries: Vec::new(),
            hidden: Hidden::default(),
            more: false,
            total: None,
        }
    }
}

impl<T> Section<T> {
    /// Whether the section may say "none recorded": it lists nothing and
    /// hid nothing. An empty section that hid something says what it hid
    /// instead, never "none" (H-050).
    pub fn none_recorded(&self) -> bool {
        self.entries.is_empty() && self.hidden.nothing()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Alert {
    /// `Flag` or `AllergyIntolerance`.
    pub kind: &'static str,
    pub text: String,
    /// Criticality or category, when recorded.
    pub detail: Option<String>,
}

/// A problem (`Condition`).
#[derive(Debug, Clone, Default)]
pub struct ProblemLine {
    pub id: String,
    /// The code's display ("Type 2 diabetes mellitus").
    pub text: String,
    /// Clinical status in words ("Active", "Resolved"), when recorded.
    pub clinical_status: Option<String>,
    /// Verification status in words ("Confirmed", "Provisional"), when recorded.
    pub verification: Option<String>,
    /// Onset: a FHIR date/time, or words ("childhood", "age 45 years").
    pub onset: Option<String>,
    /// When it ended (abatement), for ended problems.
    pub ended: Option<String>,
    /// Current (active, recurrence or relapse, and neither refuted nor
    /// entered in error); listed before the ended ones.
    pub current: bool,
}

/// A medicine: a prescription (`MedicationRequest`) or what the patient
/// takes as reported (`MedicationStatement`).
#[derive(Debug, Clone, Default)]
pub struct MedicineLine {
    pub id: String,
    /// `MedicationRequest` or `MedicationStatement`.
    pub kind: &'static str,
    /// The medicine's name.
    pub medication: String,
    /// The status code (`active`, `stopped`, …) and in words.
    pub status: String,
    pub status_text: String,
    /// Dosage instructions as written.
    pub dosage: Option<String>,
    /// From (authored, or the period's start) and to (the period's end):
    /// FHIR dates.
    pub start: Option<String>,
    pub end: Option<String>,
    /// In force (active or on hold; intended, for a statement); listed
    /// before the ended ones.
    pub current: bool,
}

#[derive(Debug, Clone, Default)]
pub struct EncounterLine {
    pub id: String,
    /// The class in words (`Inpatient`, `Outpatient`, …).
    pub class: String,
    /// The class code (`IMP`, `AMB`, `EMER`, …), for what depends on it.
    pub class_code: String,
    /// The status code; [`status_label`] says it in words.
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
    /// When it was taken (effective), or issued when that is all there is.
    pub when: Option<String>,
    /// How long before `now` ("1 year 10 months ago").
    pub age: Option<String>,
    /// Older than [`OBSERVATION_OLD_AFTER_MS`]: not the patient's current state.
    pub old: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ResultLine {
    pub id: String,
    pub name: String,
    pub status: String,
    pub when: Option<String>,
    /// How long before `now`.
    pub age: Option<String>,
    pub conclusion: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ChartSummary {
    pub alerts: Section<Alert>,
    pub allergies: Section<Alert>,
    /// Current problems first, then the most recent ended ones.
    pub problems: Section<ProblemLine>,
    /// Current medicines first, then the most recent ended ones.
    pub medicines: Section<MedicineLine>,
    /// Newest first; `total` counts them all when nothing was withheld.
    pub encounters: Section<EncounterLine>,
    pub observations: Section<ObservationLine>,
    pub results: Section<ResultLine>,
}

impl ChartSummary {
    /// How many entries were withheld from the caller, over all sections (a
    /// lower bound where a section read only the first page).
    pub fn withheld(&self) -> usize {
        [
            self.alerts.hidden,
            self.allergies.hidden,
            self.problems.hidden,
            self.medicines.hidden,
            self.encounters.hidden,
            self.observations.hidden,
            self.results.hidden,
        ]
        .iter()
        .map(|h| h.withheld)
        .sum()
    }

    /// Whether any section hid entries from the caller (withheld, not
    /// covered).
    pub fn hides_anything(&self) -> bool {
        [
            self.alerts.hidden,
            self.allergies.hidden,
            self.problems.hidden,
            self.medicines.hidden,
            self.encounters.hidden,
            self.observations.hidden,
            self.results.hidden,
        ]
        .iter()
        .any(|h| !h.nothing())
    }
}

/// One search for a section, with what it hid added to the section: a
/// refusal (403: the position does not cover the type) leaves it empty and
/// marked not covered, so one list the position does not cover hides
/// neither the others nor the fact that it is hidden.
pub fn read<T>(
    section: &mut Section<T>,
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    query: &[(&str, String)],
) -> Result<Found, FhirError> {
    match svc.search_as(access, resource_type, query) {
        Ok(f) => {
            section.hidden.withheld += f.withheld;
            if f.withheld > 0 && f.more {
                section.hidden.at_least = true;
            }
            Ok(f)
        }
        Err(e) if e.status == 403 => {
            section.hidden.not_covered = true;
            Ok(Found::default())
        }
        Err(e) => Err(e),
    }
}

/// The summary of one patient's record as `access` may see it, with ages
/// measured at `now_ms` (milliseconds since the Unix epoch).
pub fn summary(
    svc: &FhirService,
    access: &dyn Access,
    patient_id: &str,
    now_ms: i64,
) -> Result<ChartSummary, FhirError> {
    let pat = || patient_id.to_owned();
    let n = RECENT.to_string();
    let max = CURRENT_MAX.to_string();
    let mut s = ChartSummary::default();

    let flags = read(
        &mut s.alerts,
        svc,
        access,
        "Flag",
        // R4 defines no `status` search parameter for Flag: the patient's
        // flags are read and the active ones kept here (a lenient search
        // would silently ignore `status=active` and show ended alerts).
        &[("patient", pat()), ("_count", max.clone())],
    )?;
    s.alerts.more = flags.more;
    s.alerts.entries = flags
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

    let allergies = read(
        &mut s.allergies,
        svc,
        access,
        "AllergyIntolerance",
        &[("patient", pat()), ("_count", max.clone())],
    )?;
    s.allergies.more = allergies.more;
    s.allergies.entries = allergies
        .resources
        .iter()
        .filter(|a| crate::alerts::allergy_in_force(a))
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

    problems(&mut s.problems, svc, access, patient_id)?;
    medicines(&mut s.medicines, svc, access, patient_id)?;

    let encounters = read(
        &mut s.encounters,
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
    // "N in all" beside a note of what was withheld would read as if the
    // withheld ones did not exist: the total only when nothing was.
    s.encounters.total = encounters.total.filter(|_| encounters.withheld == 0);
    s.encounters.more = encounters.more;
    s.encounters.entries = encounters.resources.iter().map(encounter_line).collect();

    let obs = read(
        &mut s.observations,
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
    s.observations.more = obs.more;
    s.observations.entries = obs
        .resources
        .iter()
        .map(|o| observation_line(o, now_ms))
        .collect();

    let reports = read(
        &mut s.results,
        svc,
        access,
        "DiagnosticReport",
        &[("patient", pat()), ("_sort", "-date".into()), ("_count", n)],
    )?;
    s.results.more = reports.more;
    s.results.entries = reports
        .resources
        .iter()
        .map(|r| {
            let when = r["effectiveDateTime"]
                .as_str()
                .or_else(|| r["effectivePeriod"]["start"].as_str())
                .or_else(|| r["issued"].as_str())
                .map(str::to_owned);
            ResultLine {
                id: r["id"].as_str().unwrap_or_default().to_owned(),
                name: concept_text(&r["code"]).unwrap_or_else(|| "Report".into()),
                status: r["status"].as_str().unwrap_or_default().to_owned(),
                age: when
                    .as_deref()
                    .and_then(parse_range)
                    .map(|(lo, _)| ago(lo, now_ms)),
                when,
                conclusion: r["conclusion"].as_str().map(str::to_owned),
            }
        })
        .collect();
    Ok(s)
}

/// Clinical statuses of a current problem (FHIR condition-clinical).
const PROBLEM_CURRENT: &str = "active,recurrence,relapse";

/// The patient's problems: every current one (up to [`CURRENT_MAX`]), then
/// the [`RECENT`] most recently recorded others. A problem whose
/// verification is `refuted` or `entered-in-error` is not current, whatever
/// its clinical status.
fn problems(
    s: &mut Section<ProblemLine>,
    svc: &FhirService,
    access: &dyn Access,
    patient_id: &str,
) -> Result<(), FhirError> {
    let query = |status: (&'static str, &'static str), count: usize| {
        vec![
            ("patient", patient_id.to_owned()),
            (status.0, status.1.to_owned()),
            ("_sort", "-recorded-date".to_owned()),
            ("_count", count.to_string()),
        ]
    };
    let current = read(
        s,
        svc,
        access,
        "Condition",
        &query(("clinical-status", PROBLEM_CURRENT), CURRENT_MAX),
    )?;
    s.more = current.more;
    // `:not` also finds the problems with no clinical status.
    let others = read(
        s,
        svc,
        access,
        "Condition",
        &query(("clinical-status:not", PROBLEM_CURRENT), RECENT),
    )?;
    let mut lines: Vec<ProblemLine> = current
        .resources
        .iter()
        .chain(&others.resources)
        .map(problem_line)
        .collect();
    // Current first (stable: each group keeps its newest-first order).
    lines.sort_by_key(|p| !p.current);
    s.entries = lines;
    Ok(())
}

fn problem_line(c: &Value) -> ProblemLine {
    let clinical = code_of(&c["clinicalStatus"]);
    let verification = code_of(&c["verificationStatus"]);
    let current = clinical.is_some_and(|s| PROBLEM_CURRENT.split(',').any(|x| x == s))
        && !matches!(verification, Some("refuted" | "entered-in-error"));
    let words = |code: &str| -> String {
        match code {
            "entered-in-error" => "Entered in error".to_owned(),
            other => {
                let mut w = other.replace('-', " ");
                if let Some(first) = w.get(..1) {
                    w.replace_range(..1, &first.to_uppercase());
                }
                w
            }
        }
    };
    let onset = c["onsetDateTime"]
        .as_str()
        .or_else(|| c["onsetPeriod"]["start"].as_str())
        .or_else(|| c["onsetString"].as_str())
        .map(str::to_owned)
        .or_else(|| quantity_text(&c["onsetAge"]).map(|a| format!("age {a}")));
    let ended = c["abatementDateTime"]
        .as_str()
        .or_else(|| c["abatementPeriod"]["end"].as_str())
        .or_else(|| c["abatementString"].as_str())
        .map(str::to_owned)
        .or_else(|| quantity_text(&c["abatementAge"]).map(|a| format!("age {a}")));
    ProblemLine {
        id: c["id"].as_str().unwrap_or_default().to_owned(),
        text: concept_text(&c["code"]).unwrap_or_else(|| "Problem (not described)".into()),
        clinical_status: clinical.map(words),
        verification: verification.map(words),
        onset,
        ended,
        current,
    }
}

/// The patient's medicines: prescriptions (`MedicationRequest`) and
/// reported medicines (`MedicationStatement`), every current one (up to
/// [`CURRENT_MAX`] of each) and then the [`RECENT`] most recent others of
/// each. A medicine named by reference is named from the `Medication`
/// included with it.
fn medicines(
    s: &mut Section<MedicineLine>,
    svc: &FhirService,
    access: &dyn Access,
    patient_id: &str,
) -> Result<(), FhirError> {
    // (type, its statuses in force, newest first by, the include naming it)
    let kinds: [(&'static str, &str, &str, &str); 2] = [
        (
            "MedicationRequest",
            "active,on-hold",
            "-authoredon",
            "MedicationRequest:medication",
        ),
        (
            "MedicationStatement",
            "active,intended,on-hold",
            "-effective",
            "MedicationStatement:medication",
        ),
    ];
    let mut current = Vec::new();
    let mut ended = Vec::new();
    for (t, in_force, sort, include) in kinds {
        let query = |status: &'static str, values: &str, count: usize| {
            vec![
                ("patient", patient_id.to_owned()),
                (status, values.to_owned()),
                ("_sort", sort.to_owned()),
                ("_count", count.to_string()),
                ("_include", include.to_owned()),
            ]
        };
        let now = read(s, svc, access, t, &query("status", in_force, CURRENT_MAX))?;
        s.more |= now.more;
        let before = read(s, svc, access, t, &query("status:not", in_force, RECENT))?;
        for (found, into) in [(&now, &mut current), (&before, &mut ended)] {
            into.extend(
                found
                    .resources
                    .iter()
                    .map(|m| medicine_line(t, m, &found.included)),
            );
        }
    }
    current.extend(ended);
    current.sort_by_key(|m| !m.current);
    s.entries = current;
    Ok(())
}

fn medicine_line(kind: &'static str, m: &Value, included: &[Value]) -> MedicineLine {
    let medication = concept_text(&m["medicationCodeableConcept"])
        .or_else(|| {
            m["medicationReference"]["display"]
                .as_str()
                .map(str::to_owned)
        })
        .or_else(|| {
            let id = reference_id(&m["medicationReference"], "Medication")?;
            included
                .iter()
                .find(|r| r["resourceType"] == "Medication" && r["id"] == id)
                .and_then(|r| concept_text(&r["code"]))
        })
        .unwrap_or_else(|| "Medicine (not named)".into());
    let status = m["status"].as_str().unwrap_or_default().to_owned();
    let current = match kind {
        "MedicationStatement" => matches!(status.as_str(), "active" | "intended" | "on-hold"),
        _ => matches!(status.as_str(), "active" | "on-hold"),
    };
    let status_text = match status.as_str() {
        "active" if kind == "MedicationStatement" => "Taking",
        "active" => "Active",
        "on-hold" => "On hold",
        "intended" => "Intended",
        "completed" => "Completed",
        "stopped" => "Stopped",
        "cancelled" => "Cancelled",
        "entered-in-error" => "Entered in error",
        "not-taken" => "Not taken",
        "draft" => "Draft",
        "unknown" => "Status not known",
        other => other,
    }
    .to_owned();
    let dosage_list = match kind {
        "MedicationStatement" => &m["dosage"],
        _ => &m["dosageInstruction"],
    };
    let dosage: Vec<String> = dosage_list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            d["text"]
                .as_str()
                .or_else(|| d["patientInstruction"].as_str())
                .map(str::to_owned)
        })
        .collect();
    let (start, end) = match kind {
        "MedicationStatement" => (
            m["effectivePeriod"]["start"]
                .as_str()
                .or_else(|| m["effectiveDateTime"].as_str())
                .or_else(|| m["dateAsserted"].as_str()),
            m["effectivePeriod"]["end"].as_str(),
        ),
        _ => (
            m["dispenseRequest"]["validityPeriod"]["start"]
                .as_str()
                .or_else(|| m["authoredOn"].as_str()),
            m["dispenseRequest"]["validityPeriod"]["end"].as_str(),
        ),
    };
    MedicineLine {
        id: m["id"].as_str().unwrap_or_default().to_owned(),
        kind,
        medication,
        status,
        status_text,
        dosage: (!dosage.is_empty()).then(|| dosage.join("; ")),
        start: start.map(str::to_owned),
        end: end.map(str::to_owned),
        current,
    }
}

fn encounter_line(e: &Value) -> EncounterLine {
    EncounterLine {
        id: e["id"].as_str().unwrap_or_default().to_owned(),
        class: e["class"]["code"]
            .as_str()
            .and_then(class_label)
            .or_else(|| e["class"]["display"].as_str().map(sentence_case))
            .or_else(|| e["class"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        class_code: e["class"]["code"].as_str().unwrap_or_default().to_owned(),
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

/// `Encounter.status` (the code) in words.
pub fn status_label(code: &str) -> String {
    match code {
        "planned" => "Planned",
        "arrived" => "Arrived",
        "triaged" => "Triaged",
        "in-progress" => "In progress",
        "onleave" => "On leave",
        "finished" => "Finished",
        "cancelled" => "Cancelled",
        "entered-in-error" => "Entered in error",
        "unknown" => "Status unknown",
        other => other,
    }
    .to_owned()
}

/// The v3 ActCode encounter classes in words (`None`: one Wardline does
/// not name).
fn class_label(code: &str) -> Option<String> {
    let words = match code {
        "IMP" | "ACUTE" | "NONAC" => "Inpatient",
        "EMER" => "Emergency",
        "AMB" => "Outpatient",
        "HH" => "Home visit",
        "VR" => "Virtual",
        "OBSENC" => "Observation",
        "PRENC" => "Pre-admission",
        "SS" => "Day case",
        "FLD" => "Field visit",
        _ => return None,
    };
    Some(words.to_owned())
}

/// A display such as "inpatient encounter" as a label: its first letter
/// capitalised.
fn sentence_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn observation_line(o: &Value, now_ms: i64) -> ObservationLine {
    let value = quantity_text(&o["valueQuantity"])
        .or_else(|| {
            // Blood pressure and other panels: their components.
            let parts: Vec<String> = o["component"]
                .as_array()?
                .iter()
                .filter_map(|c| quantity_text(&c["valueQuantity"]).map(|q| (c, q)))
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
    // When it was taken: the end of a period (the latest moment it
    // describes), else its time, else when it was issued.
    let when = o["effectiveDateTime"]
        .as_str()
        .or_else(|| o["effectiveInstant"].as_str())
        .or_else(|| o["effectivePeriod"]["end"].as_str())
        .or_else(|| o["effectivePeriod"]["start"].as_str())
        .or_else(|| o["issued"].as_str())
        .map(str::to_owned);
    // A date without a time is taken as its start (the oldest it can be
    // is what matters for "old": 2025-01 is at least as old as 1 January).
    let taken = when.as_deref().and_then(parse_range).map(|(lo, _)| lo);
    ObservationLine {
        id: o["id"].as_str().unwrap_or_default().to_owned(),
        name: concept_text(&o["code"]).unwrap_or_else(|| "Observation".into()),
        value,
        age: taken.map(|t| ago(t, now_ms)),
        // Without a date an observation cannot be shown as current.
        old: taken.is_none_or(|t| now_ms - t > OBSERVATION_OLD_AFTER_MS),
        when,
    }
}

/// How long before `now_ms` the moment `then_ms` was, in the words of a
/// chart: "just now", "40 minutes ago", "5 hours ago", "3 days ago",
/// "2 months ago", "1 year 10 months ago"; "in the future" for a moment
/// after `now_ms` (a clock out of step, a planned time). Months and years
/// are calendar months in UTC.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    const MIN: i64 = 60_000;
    let diff = now_ms - then_ms;
    let plural = |n: i64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    if diff < -5 * MIN {
        return "in the future".to_owned();
    }
    if diff < MIN {
        return "just now".to_owned();
    }
    if diff < 60 * MIN {
        return format!("{} ago", plural(diff / MIN, "minute"));
    }
    if diff < 24 * 60 * MIN {
        return format!("{} ago", plural(diff / (60 * MIN), "hour"));
    }
    let at = |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok();
    let months = match (at(then_ms), at(now_ms)) {
        (Some(a), Some(b)) => {
            let mut m = (i64::from(b.year()) - i64::from(a.year())) * 12
                + i64::from(u8::from(b.month()))
                - i64::from(u8::from(a.month()));
            if (b.day(), b.time()) < (a.day(), a.time()) {
                m -= 1;
            }
            m
        }
        _ => 0,
    };
    if months < 1 {
        return format!("{} ago", plural(diff / (24 * 60 * MIN), "day"));
    }
    if months < 12 {
        return format!("{} ago", plural(months, "month"));
    }
    let (y, m) = (months / 12, months % 12);
    if m == 0 {
        format!("{} ago", plural(y, "year"))
    } else {
        format!("{} {} ago", plural(y, "year"), plural(m, "month"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(s: &str) -> i64 {
        parse_range(s).unwrap().0
    }

    #[test]
    fn observation_values_read_plainly() {
        let now = ms("2026-11-20T10:00:00Z");
        let hr = json!({"id": "o", "code": {"text": "Heart rate"}, "valueQuantity": {"value": 72.0, "unit": "/min"}});
        assert_eq!(observation_line(&hr, now).value, "72 /min");
        let bp = json!({"code": {"text": "Blood pressure"}, "component": [
            {"code": {"text": "Systolic"}, "valueQuantity": {"value": 120, "unit": "mm[Hg]"}},
            {"code": {"text": "Diastolic"}, "valueQuantity": {"value": 80.5, "code": "mm[Hg]", "system": "http://unitsofmeasure.org"}}]});
        assert_eq!(
            observation_line(&bp, now).value,
            "Systolic 120 mmHg, Diastolic 80.5 mmHg"
        );
    }

    #[test]
    fn a_temperature_reads_in_degrees_celsius_with_its_age() {
        // The demo trust's and many feeds' shape: the UCUM code in `unit`.
        let t = json!({"id": "t", "code": {"coding": [{"display": "Body temperature"}]},
            "effectiveDateTime": "2025-01-14T09:30:00Z",
            "valueQuantity": {"value": 37.8, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"}});
        let line = observation_line(&t, ms("2026-11-20T10:00:00Z"));
        assert_eq!(line.value, "37.8 °C");
        assert_eq!(line.when.as_deref(), Some("2025-01-14T09:30:00Z"));
        assert_eq!(line.age.as_deref(), Some("1 year 10 months ago"));
        assert!(line.old);
        // Taken this morning: current, not old.
        let line = observation_line(&t, ms("2025-01-14T15:00:00Z"));
        assert_eq!(line.age.as_deref(), Some("5 hours ago"));
        assert!(!line.old);
        // A day and a minute later it is old.
        assert!(observation_line(&t, ms("2025-01-15T09:31:00Z")).old);
        // No date at all: never shown as current.
        let undated = json!({"code": {"text": "Pulse"}, "valueQuantity": {"value": 70}});
        let line = observation_line(&undated, ms("2025-01-15T09:31:00Z"));
        assert!(line.old && line.age.is_none());
    }

    #[test]
    fn ages_read_like_a_chart() {
        let now = ms("2026-11-20T10:00:00Z");
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(ms("2026-11-20T09:59:30Z"), now), "just now");
        assert_eq!(ago(ms("2026-11-20T09:59:00Z"), now), "1 minute ago");
        assert_eq!(ago(ms("2026-11-20T09:20:00Z"), now), "40 minutes ago");
        assert_eq!(ago(ms("2026-11-20T09:00:00Z"), now), "1 hour ago");
        assert_eq!(ago(ms("2026-11-19T10:00:00Z"), now), "1 day ago");
        assert_eq!(ago(ms("2026-10-21T10:00:00Z"), now), "30 days ago");
        assert_eq!(ago(ms("2026-10-20T10:00:00Z"), now), "1 month ago");
        assert_eq!(ago(ms("2026-01-20T10:00:01Z"), now), "9 months ago");
        assert_eq!(ago(ms("2025-11-20T10:00:00Z"), now), "1 year ago");
        assert_eq!(
            ago(ms("2024-01-01T00:00:00Z"), now),
            "2 years 10 months ago"
        );
        assert_eq!(ago(ms("2026-11-20T11:00:00Z"), now), "in the future");
    }

    #[test]
    fn problems_current_first_refuted_is_not_current() {
        let active = json!({"id": "c1", "clinicalStatus": {"coding": [{"code": "active"}]},
            "verificationStatus": {"coding": [{"code": "confirmed"}]},
            "code": {"coding": [{"display": "Asthma"}]}, "onsetDateTime": "2001-05-01"});
        let p = problem_line(&active);
        assert!(p.current);
        assert_eq!(p.clinical_status.as_deref(), Some("Active"));
        assert_eq!(p.verification.as_deref(), Some("Confirmed"));
        assert_eq!(p.onset.as_deref(), Some("2001-05-01"));
        let refuted = json!({"id": "c2", "clinicalStatus": {"coding": [{"code": "active"}]},
            "verificationStatus": {"coding": [{"code": "entered-in-error"}]}, "code": {"text": "Gout"}});
        let p = problem_line(&refuted);
        assert!(!p.current);
        assert_eq!(p.verification.as_deref(), Some("Entered in error"));
        let resolved = json!({"id": "c3", "clinicalStatus": {"coding": [{"code": "resolved"}]},
            "code": {"text": "Fracture"}, "onsetAge": {"value": 45, "code": "a", "system": "http://unitsofmeasure.org"},
            "abatementDateTime": "2020-02-02"});
        let p = problem_line(&resolved);
        assert!(!p.current);
        assert_eq!(p.onset.as_deref(), Some("age 45 years"));
        assert_eq!(p.ended.as_deref(), Some("2020-02-02"));
    }

    #[test]
    fn medicines_are_named_dosed_and_dated() {
        let included = [json!({"resourceType": "Medication", "id": "m1",
            "code": {"coding": [{"display": "Amlodipine 5mg tablets"}]}})];
        let mr = json!({"id": "r1", "status": "active", "authoredOn": "2026-11-01",
            "medicationReference": {"reference": "Medication/m1"},
            "dosageInstruction": [{"text": "5 mg once a day"}, {"patientInstruction": "with food"}]});
        let m = medicine_line("MedicationRequest", &mr, &included);
        assert_eq!(m.medication, "Amlodipine 5mg tablets");
        assert_eq!(m.dosage.as_deref(), Some("5 mg once a day; with food"));
        assert_eq!(m.start.as_deref(), Some("2026-11-01"));
        assert!(m.current);
        assert_eq!(m.status_text, "Active");
        let ms = json!({"id": "s1", "status": "stopped",
            "medicationCodeableConcept": {"text": "Ibuprofen 400mg"},
            "effectivePeriod": {"start": "2025-01-01", "end": "2025-02-01"}});
        let m = medicine_line("MedicationStatement", &ms, &[]);
        assert!(!m.current);
        assert_eq!(m.status_text, "Stopped");
        assert_eq!(
            (m.start.as_deref(), m.end.as_deref()),
            (Some("2025-01-01"), Some("2025-02-01"))
        );
        let unnamed = medicine_line("MedicationRequest", &json!({"status": "active"}), &[]);
        assert_eq!(unnamed.medication, "Medicine (not named)");
    }

    #[test]
    fn none_recorded_only_when_nothing_is_hidden() {
        let mut s: Section<Alert> = Section::default();
        assert!(s.none_recorded());
        s.hidden.withheld = 2;
        assert!(!s.none_recorded());
        let mut s: Section<Alert> = Section::default();
        s.hidden.not_covered = true;
        assert!(!s.none_recorded());
    }

    #[test]
    fn encounter_classes_and_statuses_are_words() {
        let e = json!({"id": "e", "status": "finished", "class": {"code": "IMP"}});
        assert_eq!(encounter_line(&e).class, "Inpatient");
        // The code decides over a sender's display; the code is kept.
        let e = json!({"id": "e", "status": "in-progress",
            "class": {"code": "AMB", "display": "ambulatory"}});
        let line = encounter_line(&e);
        assert_eq!(
            (line.class.as_str(), line.class_code.as_str()),
            ("Outpatient", "AMB")
        );
        assert_eq!(status_label(&line.status), "In progress");
        // An unknown code: the display as a label, else the code.
        let e = json!({"class": {"code": "XYZ", "display": "community clinic"}});
        assert_eq!(encounter_line(&e).class, "Community clinic");
        let e = json!({"class": {"code": "XYZ"}});
        assert_eq!(encounter_line(&e).class, "XYZ");
        for (code, words) in [
            ("onleave", "On leave"),
            ("entered-in-error", "Entered in error"),
            ("finished", "Finished"),
        ] {
            assert_eq!(status_label(code), words);
        }
    }

    #[test]
    fn specialties_are_named_not_numbered() {
        use crate::adt::specialty_words;
        let code_only = json!({"coding": [{"code": "300"}]});
        assert_eq!(
            specialty_words(&code_only).as_deref(),
            Some("General Internal Medicine")
        );
        let displayed = json!({"coding": [{"code": "300", "display": "General Medicine"}]});
        assert_eq!(
            specialty_words(&displayed).as_deref(),
            Some("General Medicine")
        );
        let unknown = json!({"coding": [{"code": "999"}]});
        assert_eq!(specialty_words(&unknown).as_deref(), Some("999"));
        assert_eq!(specialty_words(&json!(null)), None);
    }
}
