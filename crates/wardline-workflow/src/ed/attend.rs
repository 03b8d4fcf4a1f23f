//! An attendance from arrival to departure: each step an `_in` function
//! over a `Tx` (for a channel that must apply it in its own transaction)
//! and an audited entry over the service and the caller's access.

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::{
    ACT_CODE, ACUITY, ARRIVAL_MODES, COMPLAINTS, DESTINATIONS, DIAGNOSES, ED_EXT, EdError,
    INVESTIGATIONS, REFERRAL_CATEGORY, REVIEW_DUE_MS, SNOMED, Stream, TASK_KIND_SYSTEM,
    TEAM_SYSTEM, TO_WARD, TREATMENTS, TRIAGE_SYSTEM, WaitingFor, audited, board, category_label,
    fhir_time, in_department, is_ambulance, item, label, may_record_in, ms, ms_of, set_items,
};
use crate::fhir::reference_id;

/// A patient arriving.
#[derive(Debug, Clone, Default)]
pub struct Arrival {
    pub patient_id: String,
    /// The site (its id) whose department the patient arrives at.
    pub site: String,
    /// ECDS arrival mode (SNOMED CT, [`ARRIVAL_MODES`]).
    pub mode: String,
    /// The ambulance service's incident reference.
    pub ambulance_incident: String,
    /// When the ambulance crew handed the patient over.
    pub handover: Option<OffsetDateTime>,
    /// When the patient arrived (`None`: now).
    pub arrived: Option<OffsetDateTime>,
    /// ECDS chief complaint (SNOMED CT, [`COMPLAINTS`]); may be empty.
    pub complaint: String,
}

/// The caller as a reference with their name (`None` for a caller acting
/// as no practitioner).
fn caller_in(tx: &mut Tx<'_>) -> Result<Option<Value>, EdError> {
    let Some(who) = tx.access().agent().who.clone() else {
        return Ok(None);
    };
    let name = match who.strip_prefix("Practitioner/") {
        Some(id) => tx
            .get("Practitioner", id)?
            .and_then(|p| crate::orders::request::person_name(&p)),
        None => None,
    };
    let mut r = json!({"reference": who});
    if let Some(n) = name {
        r["display"] = json!(n);
    }
    Ok(Some(r))
}

fn snomed(code: &str, display: &str) -> Value {
    json!({"system": SNOMED, "code": code, "display": display})
}

/// The attendance, locked and read again after the lock.
pub fn attendance_in(tx: &mut Tx<'_>, id: &str) -> Result<Value, EdError> {
    tx.lock(&[format!("Encounter/{id}")])?;
    tx.get("Encounter", id)?
        .filter(super::is_attendance)
        .ok_or_else(|| EdError::NotFound(format!("There is no attendance with id {id}.")))
}

/// The attendance still in the department, or why it is not.
fn current_in(tx: &mut Tx<'_>, id: &str, what: &str) -> Result<Value, EdError> {
    let enc = attendance_in(tx, id)?;
    if in_department(&enc) {
        return Ok(enc);
    }
    Err(EdError::Conflict(
        None,
        match enc["status"].as_str() {
            Some("finished") => {
                format!("The patient has left the department: they cannot be {what}.")
            }
            Some("planned") => format!("The patient has not arrived yet: they cannot be {what}."),
            _ => format!("This attendance was cancelled: it cannot be {what}."),
        },
    ))
}

/// The patient's attendance still in the department, if any.
pub fn open_attendance_in(tx: &mut Tx<'_>, patient: &str) -> Result<Option<Value>, EdError> {
    Ok(tx
        .find(
            "Encounter",
            &format!("patient=Patient/{patient}&class=EMER&status=arrived,triaged,in-progress"),
        )?
        .into_iter()
        .next())
}

/// Records an arrival; returns the attendance's id.
pub fn arrive_in(tx: &mut Tx<'_>, a: &Arrival, now: OffsetDateTime) -> Result<String, EdError> {
    let patient_id = a.patient_id.trim();
    if patient_id.is_empty() {
        return Err(EdError::Field(
            "patient",
            "Choose the patient who has arrived, or register an unknown patient.".into(),
        ));
    }
    let mode = a.mode.trim();
    let Some(mode_label) = super::label(&ARRIVAL_MODES, mode) else {
        return Err(EdError::Field(
            "mode",
            "Choose how the patient arrived.".into(),
        ));
    };
    let complaint = a.complaint.trim();
    let complaint_label = if complaint.is_empty() {
        None
    } else {
        Some(label(&COMPLAINTS, complaint).ok_or_else(|| {
            EdError::Field(
                "complaint",
                format!("'{complaint}' is not a chief complaint Wardline offers."),
            )
        })?)
    };
    let arrived = a.arrived.unwrap_or(now);
    if ms_of(arrived) > ms_of(now) + 5 * 60_000 {
        return Err(EdError::Field(
            "arrived",
            "The arrival time is in the future.".into(),
        ));
    }
    if let Some(h) = a.handover
        && h < arrived
    {
        return Err(EdError::Field(
            "handover",
            "The ambulance handover cannot be before the arrival.".into(),
        ));
    }
    let ambulance = is_ambulance(mode);
    if ambulance && a.ambulance_incident.trim().is_empty() {
        return Err(EdError::Field(
            "ambulance_incident",
            "Enter the ambulance incident reference for an ambulance arrival.".into(),
        ));
    }
    let dept = board::departments_in(tx)?
        .into_iter()
        .find(|d| d.site == a.site.trim())
        .ok_or_else(|| {
            EdError::Field(
                "site",
                format!("'{}' has no Emergency Department.", a.site.trim()),
            )
        })?;
    tx.lock(&[format!("Patient/{patient_id}")])?;
    let patient = tx
        .get("Patient", patient_id)?
        .ok_or_else(|| EdError::NotFound(format!("There is no patient with id {patient_id}.")))?;
    if patient["active"] == false {
        return Err(EdError::Conflict(
            Some("patient"),
            "This patient record is inactive (merged into another record): use their current record.".into(),
        ));
    }
    if let Some(open) = open_attendance_in(tx, patient_id)? {
        return Err(EdError::Conflict(
            Some("patient"),
            format!(
                "This patient is already in the department (attendance {}, arrived {}).",
                open["id"].as_str().unwrap_or(""),
                open["period"]["start"].as_str().unwrap_or("")
            ),
        ));
    }
    let at = fhir_time(arrived);
    let mut subs = vec![json!({"url": "arrival-mode", "valueCoding": snomed(mode, mode_label)})];
    if !a.ambulance_incident.trim().is_empty() {
        subs.push(json!({"url": "ambulance-incident", "valueString": a.ambulance_incident.trim()}));
    }
    if let Some(h) = a.handover {
        subs.push(json!({"url": "handover", "valueDateTime": fhir_time(h)}));
    }
    let mut enc = json!({
        "resourceType": "Encounter",
        "status": "arrived",
        "class": {"system": ACT_CODE, "code": "EMER", "display": "emergency"},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "period": {"start": at},
        "location": [{"location": {"reference": format!("Location/{}", dept.id), "display": dept.name},
            "status": "active", "period": {"start": at}}],
        "extension": [{"url": ED_EXT, "extension": subs}],
    });
    if let Some(l) = complaint_label {
        enc["reasonCode"] = json!([{"coding": [snomed(complaint, l)], "text": l}]);
    }
    if let Some(org) = dept.organization {
        enc["serviceProvider"] = json!({"reference": org});
    }
    Ok(tx.save(enc)?.id)
}

/// [`arrive_in`], audited `ed-arrive`.
pub fn arrive(
    svc: &FhirService,
    access: &dyn Access,
    a: &Arrival,
    now: OffsetDateTime,
) -> Result<String, EdError> {
    audited(svc, access, "ed-arrive", "C", |tx| arrive_in(tx, a, now))
}

/// Triage: category 1–5 with its discriminator, at `now`, by the caller.
pub fn triage_in(
    tx: &mut Tx<'_>,
    id: &str,
    category: u8,
    discriminator: &str,
    now: OffsetDateTime,
) -> Result<(), EdError> {
    may_record_in(tx)?;
    let Some((_, code, display)) = ACUITY.iter().find(|(c, _, _)| *c == category) else {
        return Err(EdError::Field(
            "category",
            "Choose the triage category, 1 (immediate) to 5 (non-urgent).".into(),
        ));
    };
    let discriminator = discriminator.trim();
    if discriminator.is_empty() {
        return Err(EdError::Field(
            "discriminator",
            "Enter the discriminator that decided the category (for example, severe pain).".into(),
        ));
    }
    let mut enc = current_in(tx, id, "triaged")?;
    let by = caller_in(tx)?;
    enc["priority"] = json!({"coding": [
        snomed(code, display),
        {"system": TRIAGE_SYSTEM, "code": category.to_string(), "display": category_label(category)}],
        "text": category_label(category)});
    set_items(
        &mut enc,
        "triage-discriminator",
        vec![json!({"valueString": discriminator})],
    );
    set_items(
        &mut enc,
        "triage-time",
        vec![json!({"valueDateTime": fhir_time(now)})],
    );
    set_items(
        &mut enc,
        "triaged-by",
        by.into_iter()
            .map(|r| json!({"valueReference": r}))
            .collect(),
    );
    if enc["status"] == "arrived" {
        enc["status"] = json!("triaged");
    }
    tx.save(enc)?;
    Ok(())
}

/// [`triage_in`], audited `ed-triage`.
pub fn triage(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    category: u8,
    discriminator: &str,
    now: OffsetDateTime,
) -> Result<(), EdError> {
    audited(svc, access, "ed-triage", "U", |tx| {
        triage_in(tx, id, category, discriminator, now)
    })
}

/// Closes the current place of `enc` at `at` and opens `to`.
fn move_to(enc: &mut Value, to: &board::Place, at: &str) {
    if let Some(ls) = enc["location"].as_array_mut() {
        for l in ls.iter_mut().filter(|l| l["status"] == "active") {
            l["status"] = json!("completed");
            l["period"]["end"] = json!(at);
        }
        ls.push(
            json!({"location": {"reference": format!("Location/{}", to.id), "display": to.name},
            "status": "active", "period": {"start": at}}),
        );
    }
}

/// Streams the patient to an area of their department.
pub fn stream_in(
    tx: &mut Tx<'_>,
    id: &str,
    stream: Stream,
    now: OffsetDateTime,
) -> Result<(), EdError> {
    may_record_in(tx)?;
    let mut enc = current_in(tx, id, "streamed")?;
    let depts = board::departments_in(tx)?;
    let dept = board::department_of(&depts, &enc).ok_or_else(|| {
        EdError::Conflict(
            None,
            "This attendance is not in a department Wardline knows.".into(),
        )
    })?;
    let area = dept
        .areas
        .iter()
        .find(|p| p.stream == Some(stream))
        .ok_or_else(|| {
            EdError::Field(
                "stream",
                format!("{} has no {} area.", dept.name, stream.label()),
            )
        })?
        .clone();
    if board::current_place(&enc).as_deref() == Some(area.id.as_str()) {
        return Ok(());
    }
    move_to(&mut enc, &area, &fhir_time(now));
    tx.save(enc)?;
    Ok(())
}

/// [`stream_in`], audited `ed-stream`.
pub fn stream(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    stream: Stream,
    now: OffsetDateTime,
) -> Result<(), EdError> {
    audited(svc, access, "ed-stream", "U", |tx| {
        stream_in(tx, id, stream, now)
    })
}

/// The caller takes the patient: responsible clinician, seen (in progress).
pub fn see_in(tx: &mut Tx<'_>, id: &str, now: OffsetDateTime) -> Result<(), EdError> {
    may_record_in(tx)?;
    let mut enc = current_in(tx, id, "seen")?;
    let Some(by) = caller_in(tx)? else {
        return Err(EdError::Forbidden(
            "Only a clinician signed in as themselves can take a patient.".into(),
        ));
    };
    enc["participant"] = json!([{
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "PPRF", "display": "primary performer"}]}],
        "period": {"start": fhir_time(now)},
        "individual": by}]);
    enc["status"] = json!("in-progress");
    tx.save(enc)?;
    Ok(())
}

/// [`see_in`], audited `ed-see`.
pub fn see(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), EdError> {
    audited(svc, access, "ed-see", "U", |tx| see_in(tx, id, now))
}

/// What the patient is waiting for (replacing what was recorded).
pub fn waiting_in(tx: &mut Tx<'_>, id: &str, what: &[WaitingFor]) -> Result<(), EdError> {
    may_record_in(tx)?;
    let mut enc = current_in(tx, id, "marked as waiting")?;
    set_items(
        &mut enc,
        "waiting-for",
        what.iter()
            .map(|w| json!({"valueCode": w.code()}))
            .collect(),
    );
    tx.save(enc)?;
    Ok(())
}

/// [`waiting_in`], audited `ed-waiting`.
pub fn waiting(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    what: &[WaitingFor],
) -> Result<(), EdError> {
    audited(svc, access, "ed-waiting", "U", |tx| {
        waiting_in(tx, id, what)
    })
}

/// The specialty's team at the site (a `CareTeam`, made the first time a
/// patient is referred to it): its id.
fn team_in(tx: &mut Tx<'_>, site: &str, specialty: &str, name: &str) -> Result<String, EdError> {
    let key = format!("{site}-{specialty}");
    tx.lock(&[format!("CareTeam/{TEAM_SYSTEM}|{key}")])?;
    if let Some(t) = tx
        .find("CareTeam", &format!("identifier={TEAM_SYSTEM}|{key}"))?
        .into_iter()
        .next()
    {
        return Ok(t["id"].as_str().unwrap_or_default().to_owned());
    }
    let team = json!({
        "resourceType": "CareTeam", "status": "active",
        "identifier": [{"system": TEAM_SYSTEM, "value": key}],
        "name": name,
        "category": [{"coding": [{"system": "http://loinc.org", "code": "LA28865-6",
            "display": "Longitudinal care-coordination focused care team"}]}],
    });
    Ok(tx.save(team)?.id)
}

/// A referral made: the `ServiceRequest` and its review `Task`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Referral {
    pub request: String,
    pub task: String,
    pub team: String,
}

/// Refers the patient to a specialty (treatment function code): a
/// `ServiceRequest` to the specialty's team, a review `Task` owned by it
/// (due in an hour), and "specialty review" added to what they wait for.
pub fn refer_in(
    tx: &mut Tx<'_>,
    id: &str,
    specialty: &str,
    note: &str,
    now: OffsetDateTime,
) -> Result<Referral, EdError> {
    may_record_in(tx)?;
    let specialty = specialty.trim();
    let Some((_, sname)) = crate::rtt::SPECIALTIES
        .iter()
        .find(|(c, _)| *c == specialty)
    else {
        return Err(EdError::Field(
            "specialty",
            "Choose the specialty to refer to.".into(),
        ));
    };
    let mut enc = current_in(tx, id, "referred")?;
    let depts = board::departments_in(tx)?;
    let dept = board::department_of(&depts, &enc)
        .ok_or_else(|| {
            EdError::Conflict(
                None,
                "This attendance is not in a department Wardline knows.".into(),
            )
        })?
        .clone();
    let patient = reference_id(&enc["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let team_name = format!("{sname} team, {}", dept.site_name);
    let team = team_in(tx, &dept.site, specialty, &team_name)?;
    let by = caller_in(tx)?;
    let at = fhir_time(now);
    let code = json!({"coding": [{"system": crate::adt::TREATMENT_FUNCTION, "code": specialty, "display": sname}], "text": sname});
    let mut sr = json!({
        "resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "urgent",
        "category": [{"coding": [{"system": REFERRAL_CATEGORY, "code": "specialty-review",
            "display": "Referral to a specialty from the Emergency Department"}]}],
        "code": code,
        "subject": {"reference": format!("Patient/{patient}")},
        "encounter": {"reference": format!("Encounter/{id}")},
        "authoredOn": at,
        "performer": [{"reference": format!("CareTeam/{team}"), "display": team_name}],
    });
    if !note.trim().is_empty() {
        sr["note"] = json!([{"text": note.trim()}]);
    }
    if let Some(b) = &by {
        sr["requester"] = b.clone();
    }
    let request = tx.save(sr)?.id;
    let due = fhir_time(now + time::Duration::milliseconds(REVIEW_DUE_MS));
    let mut task = json!({
        "resourceType": "Task", "status": "requested", "intent": "order", "priority": "urgent",
        "code": {"coding": [{"system": TASK_KIND_SYSTEM, "code": "ed-specialty-review",
            "display": "Specialty review in the Emergency Department"}]},
        "description": format!("Review this patient in the Emergency Department for {sname} (referred at {}).", &at[11..16]),
        "for": {"reference": format!("Patient/{patient}")},
        "focus": {"reference": format!("ServiceRequest/{request}")},
        "encounter": {"reference": format!("Encounter/{id}")},
        "authoredOn": at,
        "owner": {"reference": format!("CareTeam/{team}"), "display": team_name},
        "restriction": {"period": {"end": due}},
    });
    if let Some(b) = by {
        task["requester"] = b;
    }
    let task = tx.save(task)?.id;
    let mut waits: Vec<Value> = super::items(&enc, "waiting-for").cloned().collect();
    if !waits.iter().any(|w| w["valueCode"] == "specialty-review") {
        waits.push(json!({"valueCode": "specialty-review"}));
        set_items(&mut enc, "waiting-for", waits);
        tx.save(enc)?;
    }
    Ok(Referral {
        request,
        task,
        team,
    })
}

/// [`refer_in`], audited `ed-refer`.
pub fn refer(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    specialty: &str,
    note: &str,
    now: OffsetDateTime,
) -> Result<Referral, EdError> {
    audited(svc, access, "ed-refer", "C", |tx| {
        refer_in(tx, id, specialty, note, now)
    })
}

/// The ECDS clinical coding of an attendance (also after departure, as
/// coders do): a diagnosis added, the investigations and treatments done.
#[derive(Debug, Clone, Default)]
pub struct Coding {
    pub complaint: String,
    pub diagnosis: String,
    pub investigations: Vec<String>,
    pub treatments: Vec<String>,
}

/// Records [`Coding`] on the attendance.
pub fn code_in(tx: &mut Tx<'_>, id: &str, c: &Coding) -> Result<(), EdError> {
    may_record_in(tx)?;
    let mut enc = attendance_in(tx, id)?;
    fn pick(
        list: &[(&'static str, &'static str)],
        code: &str,
        field: &'static str,
    ) -> Result<(String, &'static str), EdError> {
        list.iter()
            .find(|(c, _)| *c == code.trim())
            .map(|(c, l)| ((*c).to_owned(), *l))
            .ok_or_else(|| {
                EdError::Field(
                    field,
                    format!("'{}' is not a code Wardline offers here.", code.trim()),
                )
            })
    }
    let inv = c
        .investigations
        .iter()
        .map(|x| pick(&INVESTIGATIONS, x, "investigations"))
        .collect::<Result<Vec<_>, _>>()?;
    let trt = c
        .treatments
        .iter()
        .map(|x| pick(&TREATMENTS, x, "treatments"))
        .collect::<Result<Vec<_>, _>>()?;
    if !c.complaint.trim().is_empty() {
        let (code, l) = pick(&COMPLAINTS, &c.complaint, "complaint")?;
        enc["reasonCode"] = json!([{"coding": [snomed(&code, l)], "text": l}]);
    }
    set_items(
        &mut enc,
        "investigation",
        inv.iter()
            .map(|(c, l)| json!({"valueCoding": snomed(c, l)}))
            .collect(),
    );
    set_items(
        &mut enc,
        "treatment",
        trt.iter()
            .map(|(c, l)| json!({"valueCoding": snomed(c, l)}))
            .collect(),
    );
    if !c.diagnosis.trim().is_empty() {
        let (code, l) = pick(&DIAGNOSES, &c.diagnosis, "diagnosis")?;
        let already = super::board::diagnoses(tx, &enc)?
            .iter()
            .any(|(dc, _)| *dc == code);
        if !already {
            let cond = json!({
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "provisional"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
                "code": {"coding": [snomed(&code, l)], "text": l},
                "subject": enc["subject"].clone(),
                "encounter": {"reference": format!("Encounter/{id}")},
            });
            let cid = tx.save(cond)?.id;
            if !enc["diagnosis"].is_array() {
                enc["diagnosis"] = json!([]);
            }
            if let Some(d) = enc["diagnosis"].as_array_mut() {
                d.push(
                    json!({"condition": {"reference": format!("Condition/{cid}"), "display": l}}),
                );
            }
        }
    }
    tx.save(enc)?;
    Ok(())
}

/// [`code_in`], audited `ed-code`.
pub fn code(svc: &FhirService, access: &dyn Access, id: &str, c: &Coding) -> Result<(), EdError> {
    audited(svc, access, "ed-code", "U", |tx| code_in(tx, id, c))
}

/// A decision to admit.
#[derive(Debug, Clone, Default)]
pub struct Admit {
    pub bed: String,
    pub consultant: Option<String>,
    /// Treatment function code.
    pub specialty: Option<String>,
    pub placement_reason: Option<String>,
}

fn finish(enc: &mut Value, destination: &str, at: &str) {
    let d = label(&DESTINATIONS, destination).unwrap_or(destination);
    enc["status"] = json!("finished");
    enc["period"]["end"] = json!(at);
    enc["hospitalization"]["dischargeDisposition"] =
        json!({"coding": [snomed(destination, d)], "text": d});
    if let Some(ls) = enc["location"].as_array_mut() {
        for l in ls.iter_mut().filter(|l| l["status"] == "active") {
            l["status"] = json!("completed");
            l["period"]["end"] = json!(at);
        }
    }
    set_items(enc, "waiting-for", vec![]);
}

/// Decision to admit: only from the department. The inpatient admission
/// is made by [`crate::adt::admit_in`] (emergency admission from the
/// department) and the attendance finished (destination: ward), the
/// 4-hour clock stopping at that moment, in one transaction. Returns the
/// admission's id.
pub fn admit_in(
    tx: &mut Tx<'_>,
    id: &str,
    a: &Admit,
    now: OffsetDateTime,
) -> Result<String, EdError> {
    may_record_in(tx)?;
    let mut enc = current_in(tx, id, "admitted from the department")?;
    let patient = reference_id(&enc["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let at = fhir_time(now);
    let admission = crate::adt::admit_in(
        tx,
        &crate::adt::Admission {
            patient_id: patient,
            bed_id: a.bed.clone(),
            kind: crate::adt::AdmissionKind::Emergency,
            consultant_id: a.consultant.clone(),
            specialty: a.specialty.clone(),
            expected_discharge: None,
            placement_reason: a.placement_reason.clone(),
        },
        &at,
    )?;
    set_items(
        &mut enc,
        "decision-to-admit",
        vec![json!({"valueDateTime": at})],
    );
    set_items(
        &mut enc,
        "admission",
        vec![json!({"valueReference": {"reference": format!("Encounter/{admission}")}})],
    );
    finish(&mut enc, TO_WARD, &at);
    tx.save(enc)?;
    Ok(admission)
}

/// [`admit_in`], audited `ed-admit`.
pub fn admit(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    a: &Admit,
    now: OffsetDateTime,
) -> Result<String, EdError> {
    audited(svc, access, "ed-admit", "C", |tx| admit_in(tx, id, a, now))
}

/// Discharge from the department with its ECDS destination (not the
/// ward: that is the decision to admit).
pub fn discharge_in(
    tx: &mut Tx<'_>,
    id: &str,
    destination: &str,
    now: OffsetDateTime,
) -> Result<(), EdError> {
    may_record_in(tx)?;
    let destination = destination.trim();
    if destination == TO_WARD {
        return Err(EdError::Field(
            "destination",
            "To admit the patient to a ward, use Decision to admit (it admits them through ADT)."
                .into(),
        ));
    }
    if label(&DESTINATIONS, destination).is_none() {
        return Err(EdError::Field(
            "destination",
            "Choose where the patient goes on leaving the department.".into(),
        ));
    }
    let mut enc = current_in(tx, id, "discharged")?;
    if let Some(a) = enc["period"]["start"].as_str().and_then(ms)
        && ms_of(now) < a
    {
        return Err(EdError::Field(
            "destination",
            "The departure would be before the arrival.".into(),
        ));
    }
    finish(&mut enc, destination, &fhir_time(now));
    tx.save(enc)?;
    Ok(())
}

/// [`discharge_in`], audited `ed-discharge`.
pub fn discharge(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    destination: &str,
    now: OffsetDateTime,
) -> Result<(), EdError> {
    audited(svc, access, "ed-discharge", "U", |tx| {
        discharge_in(tx, id, destination, now)
    })
}

/// The admission the attendance led to, if any.
pub fn admission_of(enc: &Value) -> Option<String> {
    item(enc, "admission")
        .and_then(|v| reference_id(&v["valueReference"], "Encounter"))
        .map(str::to_owned)
}
