//! Clinic letters (issue 18): the letter after an outpatient attendance, to
//! the GP practice and the patient, delivered over the transfers routes.
//!
//! # The model (FHIR R4)
//!
//! * **A letter** is a `Composition` of the form [`LETTER`]: `type` SNOMED
//!   CT [`CLINIC_LETTER`] 371530004 |Clinical consultation report (record
//!   artifact)| — the SNOMED CT record artifact for the report of a
//!   consultation, which is what an outpatient letter is; `encounter` the
//!   attendance (an `Encounter` of class `AMB`), one section per PRSB
//!   outpatient letter heading of [`HEADINGS`] (coded in
//!   [`HEADING_SYSTEM`]). It is the discharge summary's model in every other
//!   respect: the sections' lines, written text, entries and empty reasons,
//!   the lifecycle `preliminary` → `final` (signed) → `amended` (signed
//!   again, a new version; earlier ones stay in the history and their
//!   documents stay), the document `Bundle`, the PDF `Binary` and the
//!   `DocumentReference` stored on signing, and the write rule on every
//!   path: all of it is [`super::discharge`]'s, which holds both forms
//!   ([`super::discharge::Form`]). One letter per attendance.
//! * **Pre-fill** ([`prefill`]) reads, with the caller's access, the
//!   patient's demographics and GP practice, the diagnoses, procedures,
//!   investigation results and allergies (the discharge summary's readers,
//!   [`super::discharge::prefill::read`]), the attendance (date, clinic,
//!   clinicians, status — or "did not attend" for the encounter a
//!   did-not-attend discharge records, [`DNA_EXT`]) and the patient's current medicines (active
//!   `MedicationRequest`s). A letter is written only for an attendance of
//!   class `AMB` that has happened (arrived, in progress or finished; a
//!   did-not-attend encounter is `finished`, [`is_dna`]).
//! * **Delivery** on signing, in the signing transaction: to the registered
//!   GP practice ([`crate::transfers::queue_in`], `Kind::ClinicLetter`), and
//!   the patient's copy ([`copy_to_patient_in`]) as
//!   [`crate::transfers::routing::patient_copy_in`] decides from their
//!   preference ([`crate::transfers::routing::CopyPreference`], a `Basic`)
//!   and `Patient.telecom`: email → a delivery `Communication` whose
//!   `recipient` is the Patient; post → a print-and-post `Task`
//!   ([`PRINT_CODE`]) on the outpatient print worklist ([`print_worklist`],
//!   [`mark_printed`]); no copy → nothing. An amendment sends the amended
//!   letter again the same way and cancels an unprinted earlier copy.
//!
//! Audit subtypes: `clinic-letter-draft`, `-sign`, `-amend`, `-view`,
//! `-pdf`, `-print`.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::discharge::{
    DischargeError, Form, Heading, Prefill, Section, Signed, prefill::read, transfers_error,
};
use crate::fhir::{concept_text, reference_id, search_as_all};
use crate::pmi::TASK_SYSTEM;
use crate::transfers::routing::{CopyPreference, PatientCopy, patient_copy_in, preference_in};
use crate::transfers::{Kind, Outgoing, fhir_time, queue_in};

/// What went wrong with a letter (the documents' one error type).
pub type LetterError = DischargeError;

/// SNOMED CT 371530004 |Clinical consultation report (record artifact)|:
/// the letter's Composition and DocumentReference `type`.
pub const CLINIC_LETTER: &str = "371530004";
/// The PRSB outpatient letter headings, by Wardline's key.
pub const HEADING_SYSTEM: &str =
    "https://fhir.wardline.invalid/CodeSystem/prsb-outpatient-letter-heading";
/// `Task.code` (system `pmi::TASK_SYSTEM`) of a patient's copy to print and post.
pub const PRINT_CODE: &str = "letter-print";

const fn h(k: &'static str, t: &'static str, prefilled: bool, written: bool) -> Heading {
    Heading::new(k, t, prefilled, written)
}

/// The headings of a letter, in the PRSB outpatient letter order.
pub const HEADINGS: [Heading; 12] = [
    h("person-demographics", "Patient demographics", true, false),
    h("gp-practice", "GP practice", true, false),
    h(
        "attendance-details",
        "Clinic and attendance details",
        true,
        false,
    ),
    h("diagnoses", "Diagnoses", true, false),
    h("clinical-summary", "Clinical summary", false, true),
    h("procedures", "Procedures", true, false),
    h(
        "investigation-results",
        "Investigation results",
        true,
        false,
    ),
    h(
        "medications",
        "Medications and medical devices (with changes)",
        true,
        true,
    ),
    h("allergies", "Allergies and adverse reactions", true, false),
    h(
        "information-given",
        "Information given to the patient",
        false,
        true,
    ),
    h(
        "plan",
        "Plan and requested actions (for the GP and the patient)",
        false,
        true,
    ),
    h(
        "person-completing-record",
        "Person completing record",
        false,
        false,
    ),
];

/// The headings a letter is not signed without.
pub const REQUIRED_TO_SIGN: [&str; 2] = ["clinical-summary", "plan"];

/// The clinic letter.
pub static LETTER: Form = Form {
    code: CLINIC_LETTER,
    display: "Clinic letter",
    noun: "clinic letter",
    of: "attendance",
    headings: &HEADINGS,
    heading_system: HEADING_SYSTEM,
    required: &REQUIRED_TO_SIGN,
    audit: "clinic-letter",
    kind: Kind::ClinicLetter,
    prefill,
    copy_to_patient: Some(copy_to_patient_in),
};

/// The Encounter statuses of an attendance that has happened.
const HAPPENED: [&str; 3] = ["arrived", "in-progress", "finished"];

/// Marks an outpatient `Encounter` (class `AMB`, `finished`: the clinic's
/// contact is over) recording that the patient did not attend
/// (`valueBoolean` true): the letter to the GP after a did-not-attend
/// discharge (`crate::outpatients::attendance`) is written for it, its
/// attendance heading saying "did not attend".
pub const DNA_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/did-not-attend";

/// Whether the encounter records a did-not-attend ([`DNA_EXT`]).
pub fn is_dna(enc: &Value) -> bool {
    enc["extension"].as_array().is_some_and(|es| {
        es.iter()
            .any(|e| e["url"] == DNA_EXT && e["valueBoolean"] == true)
    })
}

/// Why no letter is written for this encounter, if none is.
pub fn not_an_attendance(enc: &Value) -> Option<String> {
    let id = enc["id"].as_str().unwrap_or_default();
    let class = enc["class"]["code"].as_str().unwrap_or("unknown");
    if class != "AMB" {
        return Some(format!(
            "A clinic letter follows an outpatient attendance (Encounter class AMB); Encounter/{id} is {class}."
        ));
    }
    let status = enc["status"].as_str().unwrap_or("unknown");
    if !HAPPENED.contains(&status) {
        return Some(format!(
            "Encounter/{id} is {status}: a clinic letter is written once the patient has attended."
        ));
    }
    None
}

fn empty_section(key: &str) -> Section {
    Section {
        key: key.to_owned(),
        title: LETTER.heading(key).map_or(key, |h| h.title).to_owned(),
        lines: vec![],
        entries: vec![],
        empty: None,
        written: None,
    }
}

/// The attendance's details, as a section.
fn attendance(svc: &FhirService, access: &dyn Access, enc: &Value) -> Section {
    let mut s = empty_section("attendance-details");
    s.lines.push(format!(
        "Date: {}",
        enc["period"]["start"]
            .as_str()
            .map_or("Not recorded".to_owned(), super::discharge::display_time)
    ));
    let clinic = concept_text(&enc["serviceType"])
        .or_else(|| enc["type"].as_array()?.iter().find_map(concept_text));
    s.lines.push(format!(
        "Clinic: {}",
        clinic.as_deref().unwrap_or("Not recorded")
    ));
    let mut seen = Vec::new();
    for p in enc["participant"].as_array().into_iter().flatten() {
        let name = match reference_id(&p["individual"], "Practitioner") {
            Some(id) => svc
                .read_as(access, "Practitioner", id)
                .ok()
                .flatten()
                .and_then(|pr| crate::orders::request::person_name(&pr)),
            None => None,
        }
        .or_else(|| p["individual"]["display"].as_str().map(str::to_owned));
        if let Some(n) = name
            && !seen.contains(&n)
        {
            seen.push(n);
        }
    }
    s.lines.push(format!(
        "Seen by: {}",
        if seen.is_empty() {
            "Not recorded".to_owned()
        } else {
            seen.join(", ")
        }
    ));
    s.lines.push(if is_dna(enc) {
        "Attendance: did not attend".to_owned()
    } else {
        format!(
            "Attendance: {}",
            enc["status"].as_str().unwrap_or("unknown")
        )
    });
    s
}

/// The patient's current medicines (active prescriptions), as a section.
fn medicines(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<Section, DischargeError> {
    let found = search_as_all(
        svc,
        access,
        "MedicationRequest",
        &[
            ("subject", format!("Patient/{patient}")),
            ("status", "active".to_owned()),
        ],
    )?;
    let mut s = empty_section("medications");
    for m in &found.resources {
        let name = concept_text(&m["medicationCodeableConcept"])
            .or_else(|| {
                m["medicationReference"]["display"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "Unnamed medicine".into());
        let dose = m["dosageInstruction"][0]["text"].as_str().unwrap_or("");
        let line = if dose.is_empty() {
            format!("{name} (dose not recorded)")
        } else {
            format!("{name}, {dose}")
        };
        s.lines.push(line);
        s.entries.push(format!(
            "MedicationRequest/{}",
            m["id"].as_str().unwrap_or_default()
        ));
    }
    if found.withheld > 0 {
        s.lines.push(format!(
            "{} prescription(s) withheld: you may not see them. Ask someone who may before signing.",
            found.withheld
        ));
    }
    if s.lines.is_empty() {
        s.empty = Some(
            "No current medicines are recorded for this patient: write any changes made in clinic below."
                .into(),
        );
    }
    Ok(s)
}

/// Reads the record of attendance `encounter` as the caller may see it into
/// the letter's pre-filled headings (see the module documentation).
pub fn prefill(
    svc: &FhirService,
    access: &dyn Access,
    encounter: &str,
    now: OffsetDateTime,
) -> Result<Prefill, DischargeError> {
    let enc = svc
        .read_as(access, "Encounter", encounter)?
        .ok_or_else(|| DischargeError::NotFound(format!("There is no attendance {encounter}.")))?;
    if let Some(why) = not_an_attendance(&enc) {
        return Err(DischargeError::Conflict(why));
    }
    let mut p = read(&LETTER, svc, access, encounter, now, &|k| {
        matches!(
            k,
            "diagnoses" | "procedures" | "investigation-results" | "allergies"
        )
    })?;
    p.sections.push(attendance(svc, access, &enc));
    let meds = medicines(svc, access, &p.patient_id)?;
    p.sections.push(meds);
    Ok(p)
}

// ---------------------------------------------------------------- writing

/// The patient's copy of a signed (or amended) letter, in the signing
/// transaction (see the module documentation). An unprinted or unsent copy
/// of an earlier version is cancelled (Task `cancelled`, delivery
/// `stopped`): only the latest letter goes to the patient.
pub fn copy_to_patient_in(
    tx: &mut Tx<'_>,
    signed: &Signed,
    now: OffsetDateTime,
) -> Result<(), DischargeError> {
    let doc = format!("DocumentReference/{}", signed.document_reference);
    let now_s = fhir_time(now);
    for mut t in tx.find(
        "Task",
        &format!(
            "code={TASK_SYSTEM}|{PRINT_CODE}&encounter=Encounter/{}&status=requested",
            signed.encounter
        ),
    )? {
        if t["focus"]["reference"] != doc.as_str() {
            t["status"] = json!("cancelled");
            t["statusReason"] =
                json!({"text": "The letter was amended: the amended letter is posted instead."});
            t["lastModified"] = json!(now_s);
            tx.save(t)?;
        }
    }
    // An emailed copy of an earlier version not yet sent is not sent.
    for mut c in tx.find(
        "Communication",
        &format!(
            "encounter=Encounter/{}&status=preparation&category={}|{}",
            signed.encounter,
            crate::transfers::KIND_SYSTEM,
            Kind::ClinicLetter.code()
        ),
    )? {
        if c["recipient"][0]["reference"] == format!("Patient/{}", signed.patient).as_str()
            && c["payload"][0]["contentReference"]["reference"] != doc.as_str()
        {
            crate::transfers::set_status(
                &mut c,
                "stopped",
                Some("The letter was amended before this copy was sent: the amended letter is sent instead."),
            )
            .map_err(transfers_error)?;
            tx.save(c)?;
        }
    }
    match patient_copy_in(tx, &signed.patient).map_err(transfers_error)? {
        PatientCopy::NoCopy => {}
        PatientCopy::Email(_) => {
            let out = Outgoing {
                kind: Kind::ClinicLetter,
                patient: format!("Patient/{}", signed.patient),
                encounter: format!("Encounter/{}", signed.encounter),
                document: doc,
                recipient: format!("Patient/{}", signed.patient),
            };
            queue_in(tx, &out, now).map_err(transfers_error)?;
        }
        PatientCopy::Post => {
            let address = tx
                .get("Patient", &signed.patient)?
                .map(|p| super::discharge::Patient::of(&p, &signed.patient))
                .and_then(|p| p.address);
            let task = json!({
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "priority": "routine",
                "code": {"coding": [{"system": TASK_SYSTEM, "code": PRINT_CODE,
                    "display": "Print and post the clinic letter to the patient"}]},
                "focus": {"reference": doc},
                "for": {"reference": format!("Patient/{}", signed.patient)},
                "encounter": {"reference": format!("Encounter/{}", signed.encounter)},
                "authoredOn": now_s,
                "lastModified": now_s,
                "description": match address {
                    Some(a) => format!("Print the clinic letter and post it to the patient at: {a}."),
                    None => "Print the clinic letter and post it to the patient: no address is recorded; check it with the patient first.".to_owned(),
                },
            });
            tx.save(task)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- reading

/// One outpatient attendance of a patient, with its letter.
#[derive(Debug, Clone, Serialize)]
pub struct Attendance {
    pub encounter: String,
    pub date: String,
    pub clinic: String,
    pub status: String,
    /// (Composition id, status) of its letter.
    pub letter: Option<(String, String)>,
}

/// The patient's outpatient attendances (newest first), with their letters.
pub fn attendances(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<Vec<Attendance>, LetterError> {
    let encs = search_as_all(
        svc,
        access,
        "Encounter",
        &[
            ("subject", format!("Patient/{patient}")),
            ("class", "AMB".to_owned()),
        ],
    )?;
    let letters = search_as_all(
        svc,
        access,
        "Composition",
        &[
            ("subject", format!("Patient/{patient}")),
            (
                "type",
                format!("{}|{CLINIC_LETTER}", super::discharge::SNOMED_SYSTEM),
            ),
            ("status", "preliminary,final,amended".to_owned()),
        ],
    )?;
    let mut out: Vec<Attendance> = encs
        .resources
        .iter()
        .filter(|e| e["class"]["code"] == "AMB")
        .map(|e| {
            let id = e["id"].as_str().unwrap_or_default().to_owned();
            let letter = letters.resources.iter().find_map(|c| {
                (reference_id(&c["encounter"], "Encounter") == Some(id.as_str())).then(|| {
                    (
                        c["id"].as_str().unwrap_or_default().to_owned(),
                        c["status"].as_str().unwrap_or_default().to_owned(),
                    )
                })
            });
            Attendance {
                date: e["period"]["start"].as_str().unwrap_or_default().to_owned(),
                clinic: concept_text(&e["serviceType"])
                    .or_else(|| e["type"].as_array()?.iter().find_map(concept_text))
                    .unwrap_or_else(|| "Outpatient clinic".into()),
                status: e["status"].as_str().unwrap_or_default().to_owned(),
                encounter: id,
                letter,
            }
        })
        .collect();
    out.sort_by(|a, b| b.date.cmp(&a.date));
    Ok(out)
}

/// Where a letter's copies went: (recipient, route or state) per delivery
/// and print Task, for the letter page.
#[derive(Debug, Clone, Serialize)]
pub struct Copy {
    /// `Organization/…` or `Patient/…`.
    pub recipient: String,
    /// `email`, `mesh`, `post`.
    pub how: String,
    /// The delivery's (Communication) or the print Task's status.
    pub status: String,
    /// `DocumentReference/…` of the version it carries.
    pub document: String,
    /// `Communication/…` or `Task/…`.
    pub record: String,
}

/// The copies of the letter's every signed version.
pub fn copies(
    svc: &FhirService,
    access: &dyn Access,
    encounter: &str,
) -> Result<Vec<Copy>, LetterError> {
    let eref = format!("Encounter/{encounter}");
    let comms = search_as_all(
        svc,
        access,
        "Communication",
        &[
            ("encounter", eref.clone()),
            (
                "category",
                format!(
                    "{}|{}",
                    crate::transfers::KIND_SYSTEM,
                    Kind::ClinicLetter.code()
                ),
            ),
        ],
    )?;
    let mut out: Vec<Copy> = comms
        .resources
        .iter()
        .map(|c| Copy {
            recipient: c["recipient"][0]["reference"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            how: crate::transfers::delivery_text(c, "route")
                .unwrap_or("queued")
                .to_owned(),
            status: c["status"].as_str().unwrap_or_default().to_owned(),
            document: c["payload"][0]["contentReference"]["reference"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            record: format!("Communication/{}", c["id"].as_str().unwrap_or_default()),
        })
        .collect();
    let tasks = search_as_all(
        svc,
        access,
        "Task",
        &[
            ("encounter", eref),
            ("code", format!("{TASK_SYSTEM}|{PRINT_CODE}")),
        ],
    )?;
    for t in &tasks.resources {
        out.push(Copy {
            recipient: t["for"]["reference"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            how: "post".into(),
            status: t["status"].as_str().unwrap_or_default().to_owned(),
            document: t["focus"]["reference"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            record: format!("Task/{}", t["id"].as_str().unwrap_or_default()),
        });
    }
    Ok(out)
}

/// The patient's recorded preference and where their copy would go now
/// (read as the caller, audited `clinic-letter-view`).
pub fn patient_copy(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<(Option<CopyPreference>, PatientCopy), LetterError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "clinic-letter-view", "R");
    tx.audit_reads();
    let pref = preference_in(&mut tx, patient).map_err(transfers_error)?;
    let copy = patient_copy_in(&mut tx, patient).map_err(transfers_error)?;
    tx.commit()?;
    Ok((pref, copy))
}

// ---------------------------------------------------------------- printing

/// A patient's copy waiting to be printed and posted.
#[derive(Debug, Clone, Serialize)]
pub struct ToPrint {
    pub task: String,
    pub patient_id: String,
    pub patient: String,
    pub nhs_number: Option<String>,
    pub instruction: String,
    /// The letter (Composition id), for its PDF.
    pub letter: Option<String>,
    pub since: String,
}

/// The print-and-post worklist: every copy waiting, oldest first.
pub fn print_worklist(svc: &FhirService, access: &dyn Access) -> Result<Vec<ToPrint>, LetterError> {
    let tasks = search_as_all(
        svc,
        access,
        "Task",
        &[
            ("code", format!("{TASK_SYSTEM}|{PRINT_CODE}")),
            ("status", "requested".to_owned()),
        ],
    )?;
    let mut out = Vec::new();
    for t in &tasks.resources {
        let pid = reference_id(&t["for"], "Patient")
            .unwrap_or_default()
            .to_owned();
        let patient = match svc.read_as(access, "Patient", &pid) {
            Ok(Some(p)) => super::discharge::Patient::of(&p, &pid),
            _ => super::discharge::Patient::unknown(&pid),
        };
        let letter = match reference_id(&t["focus"], "DocumentReference") {
            Some(d) => svc.read_as(access, "DocumentReference", d)?.and_then(|dr| {
                reference_id(&dr["context"]["related"][0], "Composition").map(str::to_owned)
            }),
            None => None,
        };
        out.push(ToPrint {
            task: t["id"].as_str().unwrap_or_default().to_owned(),
            patient_id: pid,
            patient: patient.name,
            nhs_number: patient.nhs_number,
            instruction: t["description"].as_str().unwrap_or_default().to_owned(),
            letter,
            since: t["authoredOn"].as_str().unwrap_or_default().to_owned(),
        });
    }
    out.sort_by(|a, b| a.since.cmp(&b.since));
    Ok(out)
}

/// The rule of marking a copy printed and posted, in `tx`: a `requested`
/// print Task becomes `completed`, by the caller, now.
pub fn mark_printed_in(
    tx: &mut Tx<'_>,
    task: &str,
    now: OffsetDateTime,
) -> Result<(), LetterError> {
    tx.lock(&[format!("Task/{task}")])?;
    let mut t = tx
        .get("Task", task)?
        .filter(|t| {
            t["code"]["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["system"] == TASK_SYSTEM && c["code"] == PRINT_CODE)
        })
        .ok_or_else(|| {
            DischargeError::NotFound(format!("There is no letter to print Task/{task}."))
        })?;
    if t["status"] != "requested" {
        return Err(DischargeError::Conflict(format!(
            "This copy is already {}: nothing to print.",
            t["status"].as_str().unwrap_or("closed")
        )));
    }
    let now_s = fhir_time(now);
    t["status"] = json!("completed");
    t["lastModified"] = json!(now_s);
    t["executionPeriod"] = json!({"end": now_s});
    if let Some(who) = tx.access().agent().who.clone() {
        t["owner"] = json!({"reference": who});
    }
    tx.save(t)?;
    Ok(())
}

/// [`mark_printed_in`] as one audited transaction (`clinic-letter-print`).
pub fn mark_printed(
    svc: &FhirService,
    access: &dyn Access,
    task: &str,
    now: OffsetDateTime,
) -> Result<(), LetterError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "clinic-letter-print", "U");
    mark_printed_in(&mut tx, task, now)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_attendance_that_happened_gets_a_letter() {
        let amb = json!({"id": "e1", "class": {"code": "AMB"}, "status": "finished"});
        assert_eq!(not_an_attendance(&amb), None);
        let imp = json!({"id": "e2", "class": {"code": "IMP"}, "status": "finished"});
        assert!(not_an_attendance(&imp).unwrap().contains("class AMB"));
        let planned = json!({"id": "e3", "class": {"code": "AMB"}, "status": "planned"});
        assert!(not_an_attendance(&planned).unwrap().contains("planned"));
    }

    #[test]
    fn headings_have_unique_keys_and_required_ones_are_written() {
        let keys: std::collections::HashSet<_> = HEADINGS.iter().map(|h| h.key).collect();
        assert_eq!(keys.len(), HEADINGS.len());
        for k in REQUIRED_TO_SIGN {
            assert!(LETTER.heading(k).is_some_and(|h| h.written), "{k}");
        }
    }
}
