//! Pre-filling a discharge summary from the record: each heading read with
//! the caller's access, and what is absent (or withheld from the caller)
//! said plainly in the section.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use wardline_core::{Access, FhirService};

use super::{DischargeError, Form, HEADINGS, SUMMARY, Section};
use crate::fhir::{concept_text, reference_id, search_as_all};
use crate::medicines::discharge::{Change, discharge_medicines};

/// The ODS organisation code system (a GP practice's code).
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// The patient's identifiers every page of the summary carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Patient {
    pub id: String,
    pub name: String,
    pub nhs_number: Option<String>,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub address: Option<String>,
}

impl Patient {
    pub fn of(p: &Value, id: &str) -> Patient {
        Patient {
            id: id.to_owned(),
            name: crate::orders::request::person_name(p)
                .unwrap_or_else(|| "Unnamed patient".into()),
            nhs_number: p["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["system"] == wardline_fhir::NHS_NUMBER_SYSTEM)
                .and_then(|i| i["value"].as_str().map(str::to_owned)),
            birth_date: p["birthDate"].as_str().map(str::to_owned),
            gender: p["gender"].as_str().map(str::to_owned),
            address: p["address"][0]
                .as_object()
                .map(|_| address_text(&p["address"][0])),
        }
    }

    pub fn unknown(id: &str) -> Patient {
        Patient {
            id: id.to_owned(),
            name: "Patient not shown".into(),
            nhs_number: None,
            birth_date: None,
            gender: None,
            address: None,
        }
    }
}

fn address_text(a: &Value) -> String {
    if let Some(t) = a["text"].as_str() {
        return t.to_owned();
    }
    let mut parts: Vec<String> = a["line"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    for k in ["city", "district", "postalCode"] {
        if let Some(v) = a[k].as_str() {
            parts.push(v.to_owned());
        }
    }
    parts.join(", ")
}

/// What the record says under each pre-filled heading.
#[derive(Debug, Clone, Serialize)]
pub struct Prefill {
    /// The document it is read for.
    #[serde(skip)]
    pub form: &'static Form,
    pub patient_id: String,
    pub encounter_id: String,
    pub patient: Patient,
    pub sections: Vec<Section>,
    /// The GP practice `Organization` id.
    pub gp_practice: Option<String>,
}

impl Prefill {
    pub fn section(&self, key: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.key == key)
    }
}

/// The GP practice `Organization` id the Patient names.
pub fn gp_practice_id(p: &Value) -> Option<String> {
    p["generalPractitioner"]
        .as_array()?
        .iter()
        .find_map(|g| reference_id(g, "Organization"))
        .map(str::to_owned)
}

fn section(key: &str) -> Section {
    let title = HEADINGS
        .iter()
        .find(|h| h.key == key)
        .map_or(key, |h| h.title);
    Section {
        key: key.to_owned(),
        title: title.to_owned(),
        lines: vec![],
        entries: vec![],
        empty: None,
        written: None,
    }
}

fn withheld_line(s: &mut Section, n: usize, what: &str) {
    if n > 0 {
        s.lines.push(format!(
            "{n} {what} withheld: you may not see {}. Ask someone who may before signing.",
            if n == 1 { "it" } else { "them" }
        ));
    }
}

fn finish(mut s: Section, none: &str) -> Section {
    if s.lines.is_empty() {
        s.empty = Some(none.to_owned());
    }
    s
}

fn codings(c: &Value) -> String {
    let mut out = Vec::new();
    for cd in c["coding"].as_array().into_iter().flatten() {
        let sys = cd["system"].as_str().unwrap_or_default();
        let code = cd["code"].as_str().unwrap_or_default();
        let name = if sys == super::SNOMED_SYSTEM {
            "SNOMED CT"
        } else if sys.contains("icd-10") || sys.contains("icd10") {
            "ICD-10"
        } else if sys.contains("opcs") {
            "OPCS-4"
        } else {
            continue;
        };
        out.push(format!("{name} {code}"));
    }
    if out.is_empty() {
        String::new()
    } else {
        format!(" ({})", out.join("; "))
    }
}

fn date_of(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| {
        let x = &v[*k];
        x.as_str()
            .or_else(|| x["start"].as_str())
            .map(|d| d.get(..10).unwrap_or(d).to_owned())
    })
}

/// Reads the record of admission `encounter` as the caller may see it into
/// the pre-filled headings (see the module documentation of
/// [`super`]).
pub fn prefill(
    svc: &FhirService,
    access: &dyn Access,
    encounter: &str,
    now: OffsetDateTime,
) -> Result<Prefill, DischargeError> {
    read(&SUMMARY, svc, access, encounter, now, &|_| true)
}

/// Reads the record of `encounter` as the caller may see it into the
/// pre-filled headings of `form` that `want` names (the demographics and
/// the GP practice always; the admission, discharge, diagnoses,
/// procedures, investigation results, medications on discharge and
/// allergies when wanted). Sentences name the encounter as `form.of`.
pub fn read(
    form: &'static Form,
    svc: &FhirService,
    access: &dyn Access,
    encounter: &str,
    now: OffsetDateTime,
    want: &dyn Fn(&str) -> bool,
) -> Result<Prefill, DischargeError> {
    let of = form.of;
    let enc = svc
        .read_as(access, "Encounter", encounter)?
        .ok_or_else(|| DischargeError::NotFound(format!("There is no {of} {encounter}.")))?;
    let patient_id = reference_id(&enc["subject"], "Patient")
        .ok_or_else(|| DischargeError::Invalid(format!("The {of} names no patient.")))?
        .to_owned();
    let p = svc
        .read_as(access, "Patient", &patient_id)?
        .ok_or_else(|| DischargeError::NotFound(format!("There is no patient {patient_id}.")))?;
    let patient = Patient::of(&p, &patient_id);
    let pref = format!("Patient/{patient_id}");
    let eref = format!("Encounter/{encounter}");
    let mut sections = Vec::new();

    // Person demographics.
    let mut s = section("person-demographics");
    s.lines.push(format!("Name: {}", patient.name));
    s.lines.push(format!(
        "Date of birth: {}",
        patient.birth_date.as_deref().unwrap_or("Not recorded")
    ));
    s.lines.push(format!(
        "NHS number: {}",
        patient.nhs_number.as_deref().unwrap_or("Not recorded")
    ));
    if let Some(g) = &patient.gender {
        s.lines.push(format!("Gender: {g}"));
    }
    s.lines.push(format!(
        "Address: {}",
        patient.address.as_deref().unwrap_or("Not recorded")
    ));
    sections.push(s);

    // GP practice.
    let mut s = section("gp-practice");
    let gp = gp_practice_id(&p);
    if let Some(org) = &gp {
        match svc.read_as(access, "Organization", org) {
            Ok(Some(o)) => {
                s.lines.push(format!(
                    "Practice: {}",
                    o["name"].as_str().unwrap_or("Unnamed practice")
                ));
                let ods = o["identifier"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|i| i["system"] == ODS_SYSTEM)
                    .and_then(|i| i["value"].as_str());
                s.lines.push(format!(
                    "ODS code: {}",
                    ods.unwrap_or("Not recorded: the practice has no ODS code on record")
                ));
                if let Some(a) = o["address"][0]
                    .as_object()
                    .map(|_| address_text(&o["address"][0]))
                {
                    s.lines.push(format!("Address: {a}"));
                }
                s.entries.push(format!("Organization/{org}"));
            }
            Ok(None) => s.lines.push(format!(
                "The record names GP practice Organization/{org}, which is not on record."
            )),
            Err(e) if e.status == 403 => withheld_line(&mut s, 1, "GP practice record"),
            Err(e) => return Err(e.into()),
        }
    }
    for g in p["generalPractitioner"].as_array().into_iter().flatten() {
        if reference_id(g, "Organization").is_none()
            && let Some(d) = g["display"].as_str()
        {
            s.lines.push(format!("GP: {d}"));
        }
    }
    sections.push(finish(
        s,
        "No GP practice is recorded for this patient: check the registration before sending.",
    ));

    // Admission and discharge details.
    if want("admission-details") {
        let stay = crate::adt::stay(svc, access, encounter).ok();
        let mut s = section("admission-details");
        let h = &enc["hospitalization"];
        s.lines.push(format!(
            "Admitted: {}",
            enc["period"]["start"]
                .as_str()
                .map_or("Not recorded".to_owned(), super::display_time)
        ));
        let method = h["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"] == crate::adt::ADMISSION_METHOD_EXT)
            .and_then(|e| concept_text(&e["valueCodeableConcept"]));
        if let Some(m) = method {
            s.lines.push(format!("Admission method: {m}"));
        }
        if let Some(src) = concept_text(&h["admitSource"]) {
            s.lines.push(format!("Source of admission: {src}"));
        }
        if let Some(st) = &stay {
            let mut wards: Vec<String> = Vec::new();
            for m in &st.movements {
                if !m.ward.is_empty() && !wards.contains(&m.ward) {
                    wards.push(m.ward.clone());
                }
            }
            if wards.is_empty() {
                s.lines.push("Wards: Not recorded".into());
            } else {
                s.lines.push(format!("Wards: {}", wards.join(", ")));
            }
            s.lines.push(format!(
                "Consultant: {}",
                st.consultant.as_deref().unwrap_or("Not recorded")
            ));
            if let Some(sp) = &st.specialty {
                s.lines
                    .push(format!("Specialty (treatment function): {sp}"));
            }
        }
        sections.push(s);

        let mut s = section("discharge-details");
        match enc["period"]["end"].as_str() {
            Some(end) => s
                .lines
                .push(format!("Discharged: {}", super::display_time(end))),
            None => s.lines.push(
                "Not yet discharged: the discharge date is recorded when the patient leaves."
                    .into(),
            ),
        }
        if let Some(d) = concept_text(&h["dischargeDisposition"]) {
            s.lines.push(format!("Discharge destination: {d}"));
        }
        sections.push(s);
    }

    // Diagnoses.
    if want("diagnoses") {
        let found = search_as_all(svc, access, "Condition", &[("encounter", eref.clone())])?;
        let mut s = section("diagnoses");
        for c in &found.resources {
            let v = concept_text(&c["verificationStatus"]).unwrap_or_default();
            if v == "entered-in-error" || v == "refuted" {
                continue;
            }
            let mut line = format!(
                "{}{}",
                concept_text(&c["code"]).unwrap_or_else(|| "Unnamed condition".into()),
                codings(&c["code"])
            );
            let mut facts = Vec::new();
            if let Some(st) = concept_text(&c["clinicalStatus"]) {
                facts.push(st);
            }
            if !v.is_empty() {
                facts.push(v);
            }
            if let Some(d) = date_of(c, &["onsetDateTime", "onsetPeriod", "recordedDate"]) {
                facts.push(format!("from {d}"));
            }
            if !facts.is_empty() {
                line.push_str(&format!(": {}", facts.join(", ")));
            }
            s.lines.push(line);
            s.entries.push(format!(
                "Condition/{}",
                c["id"].as_str().unwrap_or_default()
            ));
        }
        withheld_line(&mut s, found.withheld, "diagnosis record(s)");
        sections.push(finish(
            s,
            &format!("No diagnoses are recorded for this {of}."),
        ));
    }

    // Procedures.
    if want("procedures") {
        let found = search_as_all(svc, access, "Procedure", &[("encounter", eref.clone())])?;
        let mut s = section("procedures");
        for pr in &found.resources {
            if pr["status"] == "entered-in-error" {
                continue;
            }
            let mut line = format!(
                "{}{}",
                concept_text(&pr["code"]).unwrap_or_else(|| "Unnamed procedure".into()),
                codings(&pr["code"])
            );
            if let Some(d) = date_of(pr, &["performedDateTime", "performedPeriod"]) {
                line.push_str(&format!(": {d}"));
            }
            if let Some(st) = pr["status"].as_str().filter(|s| *s != "completed") {
                line.push_str(&format!(" ({st})"));
            }
            s.lines.push(line);
            s.entries.push(format!(
                "Procedure/{}",
                pr["id"].as_str().unwrap_or_default()
            ));
        }
        withheld_line(&mut s, found.withheld, "procedure record(s)");
        sections.push(finish(
            s,
            &format!("No procedures are recorded for this {of}."),
        ));
    }

    // Investigation results: the admission's reports with their observations.
    // Every report of the admission, read in full (never a first page
    // only): those recorded against it, and the patient's others dated
    // within it (a result sent without the encounter).
    if want("investigation-results") {
        let start = enc["period"]["start"].as_str().unwrap_or("");
        let end = enc["period"]["end"].as_str();
        let include = ("_include", "DiagnosticReport:result".to_owned());
        let mut found = search_as_all(
            svc,
            access,
            "DiagnosticReport",
            &[("encounter", eref.clone()), include.clone()],
        )?;
        let mut dated = vec![("subject", pref.clone()), include];
        if !start.is_empty() {
            dated.push(("date", format!("ge{start}")));
        }
        if let Some(e) = end {
            dated.push(("date", format!("le{e}")));
        }
        let more = search_as_all(svc, access, "DiagnosticReport", &dated)?;
        found.withheld += more.withheld;
        for r in more.resources {
            if !found.resources.iter().any(|x| x["id"] == r["id"]) {
                found.resources.push(r);
            }
        }
        for i in more.included {
            if !found
                .included
                .iter()
                .any(|x| x["resourceType"] == i["resourceType"] && x["id"] == i["id"])
            {
                found.included.push(i);
            }
        }
        found.resources.sort_by(|a, b| {
            let at = |r: &Value| {
                r["effectiveDateTime"]
                    .as_str()
                    .or_else(|| r["issued"].as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            at(a).cmp(&at(b))
        });
        let mut s = section("investigation-results");
        for r in &found.resources {
            if matches!(
                r["status"].as_str(),
                Some("entered-in-error" | "cancelled" | "registered")
            ) {
                continue;
            }
            let of_admission = match reference_id(&r["encounter"], "Encounter") {
                Some(e) => e == encounter,
                None => {
                    let at = r["effectiveDateTime"]
                        .as_str()
                        .or_else(|| r["issued"].as_str())
                        .unwrap_or("");
                    !at.is_empty() && at >= start && end.is_none_or(|e| at <= e)
                }
            };
            if !of_admission {
                continue;
            }
            let when = date_of(r, &["effectiveDateTime", "effectivePeriod", "issued"])
                .unwrap_or_else(|| "date not recorded".into());
            let mut line = format!(
                "{} ({when}, {})",
                concept_text(&r["code"]).unwrap_or_else(|| "Unnamed investigation".into()),
                r["status"].as_str().unwrap_or("unknown status")
            );
            let obs: Vec<String> = r["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| reference_id(o, "Observation"))
                .filter_map(|oid| {
                    found
                        .included
                        .iter()
                        .find(|x| x["resourceType"] == "Observation" && x["id"] == oid)
                })
                .map(|o| {
                    format!(
                        "{} {}",
                        concept_text(&o["code"]).unwrap_or_default(),
                        crate::results::value_text(o)
                    )
                })
                .collect();
            if !obs.is_empty() {
                line.push_str(&format!(": {}", obs.join("; ")));
            }
            if let Some(c) = r["conclusion"].as_str() {
                line.push_str(&format!(". Conclusion: {c}"));
            }
            s.lines.push(line);
            s.entries.push(format!(
                "DiagnosticReport/{}",
                r["id"].as_str().unwrap_or_default()
            ));
        }
        withheld_line(&mut s, found.withheld, "result record(s)");
        sections.push(finish(
            s,
            &format!("No investigation results are recorded for this {of}."),
        ));
    }

    // Medications on discharge, with changes and reasons.
    if want("medications") {
        let meds = discharge_medicines(svc, access, encounter, now)?;
        let mut s = section("medications");
        let prescribed = meds
            .lines
            .iter()
            .filter(|l| l.change != Change::Stopped)
            .count();
        if prescribed == 0 && !meds.lines.is_empty() {
            // No TTO yet: nothing is decided, so nothing reads as stopped.
            s.lines.push(
            "No discharge prescription (TTO) is recorded yet: nothing below is decided for discharge."
                .into(),
        );
        }
        for l in &meds.lines {
            let reason = || {
                l.reason
                    .clone()
                    .unwrap_or_else(|| "no reason recorded".to_owned())
            };
            let line = match l.change {
                Change::Started => format!(
                    "Started: {}, {}",
                    l.medicine,
                    l.dose.as_deref().unwrap_or("")
                ),
                Change::Continued => format!(
                    "Continued: {}, {}",
                    l.medicine,
                    l.dose.as_deref().unwrap_or("")
                ),
                Change::Changed => format!(
                    "Dose changed: {}, {} (was {}). Reason: {}",
                    l.medicine,
                    l.dose.as_deref().unwrap_or(""),
                    l.inpatient_dose.as_deref().unwrap_or("not recorded"),
                    reason()
                ),
                Change::Stopped if prescribed == 0 => format!(
                    "On the inpatient chart: {}, {}",
                    l.medicine,
                    l.inpatient_dose.as_deref().unwrap_or("dose not recorded")
                ),
                Change::Stopped => format!(
                    "Stopped: {} (was {}). Reason: {}",
                    l.medicine,
                    l.inpatient_dose.as_deref().unwrap_or("not recorded"),
                    reason()
                ),
            };
            s.lines.push(line);
            if let Some(id) = l.prescription.as_ref().or(l.inpatient.as_ref()) {
                s.entries.push(format!("MedicationRequest/{id}"));
            }
        }
        if meds.unscreened > 0 {
            s.lines.push(format!(
                "Not yet screened by a pharmacist: {} discharge prescription(s).",
                meds.unscreened
            ));
        }
        withheld_line(&mut s, meds.withheld, "prescription(s)");
        sections.push(finish(
        s,
        "No medicines are recorded for this admission (no discharge prescriptions and none on the inpatient chart).",
    ));
    }

    // Allergies.
    if want("allergies") {
        let found = search_as_all(
            svc,
            access,
            "AllergyIntolerance",
            &[("patient", pref.clone())],
        )?;
        let mut s = section("allergies");
        for a in &found.resources {
            let v = concept_text(&a["verificationStatus"]).unwrap_or_default();
            if v == "entered-in-error" || v == "refuted" {
                continue;
            }
            let mut line = format!(
                "{}{}",
                concept_text(&a["code"]).unwrap_or_else(|| "Unnamed allergy".into()),
                codings(&a["code"])
            );
            let reactions: Vec<String> = a["reaction"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["manifestation"].as_array().into_iter().flatten())
                .filter_map(concept_text)
                .collect();
            if !reactions.is_empty() {
                line.push_str(&format!(": {}", reactions.join(", ")));
            }
            if let Some(c) = a["criticality"].as_str() {
                line.push_str(&format!(" (criticality {c})"));
            }
            s.lines.push(line);
            s.entries.push(format!(
                "AllergyIntolerance/{}",
                a["id"].as_str().unwrap_or_default()
            ));
        }
        withheld_line(&mut s, found.withheld, "allergy record(s)");
        sections.push(finish(
        s,
        "No allergies or adverse reactions are recorded (this is not a record of no known allergies).",
    ));
    }

    Ok(Prefill {
        form,
        patient_id,
        encounter_id: encounter.to_owned(),
        patient,
        sections,
        gp_practice: gp,
    })
}
