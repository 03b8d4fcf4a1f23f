//! Activities and roles in the spirit of the NHS national RBAC baseline, and the table of
//! which activity each FHIR interaction needs.
//!
//! A [`Role`] is a set of [`Activity`]s; [`required_activity`] says what a FHIR
//! interaction (`resource type` x [`Op`]) needs; [`Role::permits`] combines the two.
//! This answers only "may this *kind* of user ever do this": whether the user may see
//! *this* patient (legitimate relationship, ward, consent, break-glass) is decided by the
//! policy layer on top.
//!
//! # The table (reference)
//!
//! | resource types | read / search | create / update / delete |
//! |---|---|---|
//! | `Patient` | ViewDemographics | RegisterPatient |
//! | `Encounter`, `EpisodeOfCare` | ViewClinical, Adt or ViewCareSummary | Adt |
//! | `Appointment` | ViewClinical, ManageAppointments or ViewCareSummary | ManageAppointments |
//! | `Slot`, `Schedule` | any staff | ManageAppointments |
//! | `CarePlan`, `CareTeam`, `Flag` | ViewClinical or ViewCareSummary | RecordClinical |
//! | `MedicationRequest` | ViewClinical | Prescribe or ScreenPrescriptions |
//! | `Medication` (the formulary) | any staff | ManageFormulary |
//! | `DetectedIssue` | ViewClinical | Prescribe |
//! | `MedicationAdministration` | ViewClinical | AdministerMedication |
//! | `ServiceRequest` | ViewClinical, LabProcess, LabAuthorise, Radiology or ManageAppointments (waiting-list entries only) | OrderTests (update: or LabAuthorise, laboratory requests only; or ManageAppointments, waiting-list entries only) |
//! | `Specimen` | ViewClinical, LabProcess or LabAuthorise | OrderTests or LabProcess |
//! | `DiagnosticReport`, `Observation` | ViewClinical, LabProcess or LabAuthorise | RecordClinical, LabProcess or LabAuthorise³ |
//! | `QuestionnaireResponse` | ViewClinical or Radiology | RecordClinical or OrderTests |
//! | `Condition`, `AllergyIntolerance`, `ClinicalImpression`, `DocumentReference`, `Composition`, `Procedure` | ViewClinical | RecordClinical |
//! | `ActivityDefinition`, `PlanDefinition`, `SpecimenDefinition`, `ObservationDefinition`, `Questionnaire`, `Measure` (the order catalogue, forms and their KPIs) | any staff | ManageCatalogue |
//! | `Practitioner`, `PractitionerRole` | any staff | ManageUsers |
//! | `Organization`, `Location`, `HealthcareService`, `Endpoint` | any staff | ManageDirectory |
//! | `Group` | ViewClinical | ManageDirectory |
//! | `StructureDefinition`, `ValueSet`, `CodeSystem`, `SearchParameter`, `CapabilityStatement` | any staff | ManageDirectory |
//! | `AuditEvent` | IgAudit | never (written only by the server) |
//! | `Consent` | ViewClinical or RegisterPatient² | RegisterPatient |
//! | `Task` | ViewClinical, IgAudit, RegisterPatient¹, LabProcess¹, LabAuthorise¹ or Radiology¹ | RecordClinical, RegisterPatient¹, LabProcess¹, LabAuthorise¹ or Radiology¹ |
//! | anything else | ViewClinical | RecordClinical |
//!
//! Deliberate additions to the baseline: clerical staff who book appointments or admit
//! patients can read the appointments and encounters they manage without a clinical
//! view, and [`Activity::ViewCareSummary`] is the "limited clinical view" of partner
//! social workers (encounters, appointments, care plans, care teams, flags).
//! [`Activity::ViewClinical`] implies ViewCareSummary and ViewDemographics.
//!
//! ¹ Registration staff work the Patient Master Index's duplicate-record review
//! queue, which is a queue of `Task`s: holders of [`Activity::RegisterPatient`]
//! without the clinical activity may read and write a `Task` only when its code
//! is [`DUPLICATE_REVIEW_CODE`] ([`task_permitted`], applied per resource by the
//! policy); every other task stays clinical.
//!
//! Laboratory staff reach only the result-review tasks releasing a result
//! creates, and radiology staff only IR(ME)R justifications
//! ([`NON_CLINICAL_TASKS`]).
//!
//! ³ The records the laboratory keeps (tagged [`LABORATORY_TAG`]) only by
//! laboratory staff, and once authorised only by those who authorise
//! ([`laboratory_record_permitted`]). Laboratory and radiology staff have a
//! care relationship with a patient through an open request of their
//! department ([`request_relates`]); laboratory staff through a completed
//! laboratory request too (the results history the laboratory keeps).
//!
//! ² Registration staff record patients' consent decisions (dissent from
//! sharing, the national data opt-out), so they read them too: what is
//! already recorded, before recording more. A Consent holds no clinical data.

use std::fmt;

/// Something a user may be entitled to do (an RBAC baseline "activity").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Activity {
    /// Find a patient and see the banner (`view-demographics`).
    ViewDemographics,
    /// See the clinical record (`view-clinical-record`); implies ViewDemographics and
    /// ViewCareSummary.
    ViewClinical,
    /// See the care summary only: encounters, appointments, care plans, care teams,
    /// flags (`view-care-summary`); implies ViewDemographics.
    ViewCareSummary,
    /// Write clinical entries (`record-clinical`).
    RecordClinical,
    Prescribe,
    AdministerMedication,
    OrderTests,
    /// Admit, transfer, discharge (`admit-transfer-discharge`).
    Adt,
    /// Register and update demographics, merge records (`register-patient`).
    RegisterPatient,
    ManageAppointments,
    ManageUsers,
    /// Organisations, locations, services, conformance resources (`manage-directory`).
    ManageDirectory,
    /// Read the audit trail, review break-glass events (`ig-audit`).
    IgAudit,
    /// May invoke emergency ("break-glass") access (`break-glass`).
    BreakGlass,
    /// Bulk and secondary-use extracts (`export`).
    Export,
    /// Keep the order catalogue: tests, panels, examinations, order sets
    /// (`manage-order-catalogue`).
    ManageCatalogue,
    /// Read and acknowledge results in a results inbox (`review-results`).
    ReviewResults,
    /// The pathology laboratory's bench work: receive specimens, enter and
    /// technically validate results (`laboratory-process`).
    LabProcess,
    /// Authorise and release laboratory results (`laboratory-authorise`).
    LabAuthorise,
    /// Radiology department work: vet and justify imaging requests (IR(ME)R),
    /// record examinations and reports (`radiology-process`).
    Radiology,
    /// Clinically screen prescriptions, annotate them and query the
    /// prescriber (`pharmacy-screen`): pharmacists.
    ScreenPrescriptions,
    /// Keep the formulary and the chemotherapy regimens (`manage-formulary`).
    ManageFormulary,
    /// Sign the clinical documents that leave the trust — discharge
    /// summaries, clinic letters (`sign-clinical-documents`): doctors and
    /// registered nurses, not healthcare assistants or clerical staff.
    SignClinicalDocuments,
}

impl Activity {
    pub const ALL: [Activity; 23] = [
        Activity::ViewDemographics,
        Activity::ViewClinical,
        Activity::ViewCareSummary,
        Activity::RecordClinical,
        Activity::Prescribe,
        Activity::AdministerMedication,
        Activity::OrderTests,
        Activity::Adt,
        Activity::RegisterPatient,
        Activity::ManageAppointments,
        Activity::ManageUsers,
        Activity::ManageDirectory,
        Activity::IgAudit,
        Activity::BreakGlass,
        Activity::Export,
        Activity::ManageCatalogue,
        Activity::ReviewResults,
        Activity::LabProcess,
        Activity::LabAuthorise,
        Activity::Radiology,
        Activity::ScreenPrescriptions,
        Activity::ManageFormulary,
        Activity::SignClinicalDocuments,
    ];

    /// The stable kebab-case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::ViewDemographics => "view-demographics",
            Activity::ViewClinical => "view-clinical-record",
            Activity::ViewCareSummary => "view-care-summary",
            Activity::RecordClinical => "record-clinical",
            Activity::Prescribe => "prescribe",
            Activity::AdministerMedication => "administer-medication",
            Activity::OrderTests => "order-tests",
            Activity::Adt => "admit-transfer-discharge",
            Activity::RegisterPatient => "register-patient",
            Activity::ManageAppointments => "manage-appointments",
            Activity::ManageUsers => "manage-users",
            Activity::ManageDirectory => "manage-directory",
            Activity::IgAudit => "ig-audit",
            Activity::BreakGlass => "break-glass",
            Activity::Export => "export",
            Activity::ManageCatalogue => "manage-order-catalogue",
            Activity::ReviewResults => "review-results",
            Activity::LabProcess => "laboratory-process",
            Activity::LabAuthorise => "laboratory-authorise",
            Activity::Radiology => "radiology-process",
            Activity::ScreenPrescriptions => "pharmacy-screen",
            Activity::ManageFormulary => "manage-formulary",
            Activity::SignClinicalDocuments => "sign-clinical-documents",
        }
    }

    pub fn parse(code: &str) -> Option<Activity> {
        Activity::ALL.into_iter().find(|a| a.as_str() == code)
    }

    /// The activities this one includes (not itself).
    pub fn implies(self) -> &'static [Activity] {
        match self {
            Activity::ViewClinical => &[Activity::ViewDemographics, Activity::ViewCareSummary],
            Activity::ViewCareSummary => &[Activity::ViewDemographics],
            _ => &[],
        }
    }
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A FHIR interaction class (the core's, with its SMART letter).
pub use wardline_core::access::Op;

/// What an interaction needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Activity(Activity),
    /// Any one of these activities.
    AnyOf(&'static [Activity]),
    /// Any authenticated member of staff (any role).
    AnyStaff,
    /// Nobody through the API (e.g. writing the audit trail).
    Never,
}

const CLINICAL: Requirement = Requirement::Activity(Activity::ViewClinical);
const CARE_SUMMARY: Requirement =
    Requirement::AnyOf(&[Activity::ViewClinical, Activity::ViewCareSummary]);

/// The activity an interaction of kind `op` on `resource_type` needs. See the table in
/// the [module documentation](self).
pub fn required_activity(resource_type: &str, op: Op) -> Requirement {
    use Activity as A;
    use Requirement as R;
    let read = !op.is_write();
    match resource_type {
        "Patient" if read => R::Activity(A::ViewDemographics),
        "Patient" => R::Activity(A::RegisterPatient),
        "Encounter" | "EpisodeOfCare" if read => {
            R::AnyOf(&[A::ViewClinical, A::Adt, A::ViewCareSummary])
        }
        "Encounter" | "EpisodeOfCare" => R::Activity(A::Adt),
        "Appointment" if read => {
            R::AnyOf(&[A::ViewClinical, A::ManageAppointments, A::ViewCareSummary])
        }
        "Appointment" => R::Activity(A::ManageAppointments),
        "Slot" | "Schedule" if read => R::AnyStaff,
        "Slot" | "Schedule" => R::Activity(A::ManageAppointments),
        "CarePlan" | "CareTeam" | "Flag" if read => CARE_SUMMARY,
        // Issue 17 (medicines): pharmacists' screening is kept on the
        // prescription; the formulary is read by all staff.
        "MedicationRequest" if !read => R::AnyOf(&[A::Prescribe, A::ScreenPrescriptions]),
        "Medication" if read => R::AnyStaff,
        "Medication" => R::Activity(A::ManageFormulary),
        "DetectedIssue" if !read => R::Activity(A::Prescribe),
        "MedicationAdministration" if !read => R::Activity(A::AdministerMedication),
        // Issue 16 (lab): authorising a laboratory result completes its
        // request ([`request_relates`] narrows it to laboratory requests).
        // Issue 19: booking staff keep the waiting lists (entries are
        // `ServiceRequest`s; [`service_request_permitted`] narrows them to those).
        "ServiceRequest" if op == Op::Update => {
            R::AnyOf(&[A::OrderTests, A::LabAuthorise, A::ManageAppointments])
        }
        "ServiceRequest" if !read => R::AnyOf(&[A::OrderTests, A::ManageAppointments]),
        // Requesting (issue 16): the tube of a requisition is written by
        // whoever orders (and updated by the laboratory that receives it);
        // the answers to an order's questions by whoever orders or records.
        "Specimen" if !read => R::AnyOf(&[A::OrderTests, A::LabProcess]),
        "QuestionnaireResponse" if !read => R::AnyOf(&[A::RecordClinical, A::OrderTests]),
        // Bed state (`Location.operationalStatus`) is part of ADT; the
        // policy narrows ADT holders to updating beds
        // ([`location_permitted`]).
        "Location" if op == Op::Update => R::AnyOf(&[A::ManageDirectory, A::Adt]),
        "Practitioner" | "PractitionerRole" if read => R::AnyStaff,
        "Practitioner" | "PractitionerRole" => R::Activity(A::ManageUsers),
        // The order catalogue (issue 16): every member of staff reads what
        // can be ordered; catalogue managers change it.
        "ActivityDefinition"
        | "PlanDefinition"
        | "SpecimenDefinition"
        | "ObservationDefinition"
        | "Questionnaire"
        | "Measure"
            if read =>
        {
            R::AnyStaff
        }
        "ActivityDefinition"
        | "PlanDefinition"
        | "SpecimenDefinition"
        | "ObservationDefinition"
        | "Questionnaire"
        | "Measure" => R::Activity(A::ManageCatalogue),
        "Organization"
        | "Location"
        | "HealthcareService"
        | "Endpoint"
        | "StructureDefinition"
        | "ValueSet"
        | "CodeSystem"
        | "SearchParameter"
        | "CapabilityStatement"
            if read =>
        {
            R::AnyStaff
        }
        "Organization"
        | "Location"
        | "HealthcareService"
        | "Endpoint"
        | "Group"
        | "StructureDefinition"
        | "ValueSet"
        | "CodeSystem"
        | "SearchParameter"
        | "CapabilityStatement"
            if !read =>
        {
            R::Activity(A::ManageDirectory)
        }
        "AuditEvent" if read => R::Activity(A::IgAudit),
        "AuditEvent" => R::Never,
        "Consent" if read => R::AnyOf(&[A::ViewClinical, A::RegisterPatient]),
        "Consent" => R::Activity(A::RegisterPatient),
        // Issue 16, the laboratory and radiology (lab): their staff read the
        // requests, specimens and results they work on, and write the
        // laboratory's records ([`laboratory_record_permitted`] narrows it).
        "ServiceRequest" if read => R::AnyOf(&[
            A::ViewClinical,
            A::ManageAppointments,
            A::LabProcess,
            A::LabAuthorise,
            A::Radiology,
        ]),
        "Specimen" | "DiagnosticReport" | "Observation" if read => {
            R::AnyOf(&[A::ViewClinical, A::LabProcess, A::LabAuthorise])
        }
        // Results: the laboratory's bench and release, and clinicians'
        // own entries (vitals) alike.
        "DiagnosticReport" | "Observation" => {
            R::AnyOf(&[A::RecordClinical, A::LabProcess, A::LabAuthorise])
        }
        "QuestionnaireResponse" if read => R::AnyOf(&[A::ViewClinical, A::Radiology]),
        "Task" if read => R::AnyOf(&[
            A::ViewClinical,
            A::IgAudit,
            A::RegisterPatient,
            A::LabAuthorise,
            A::Radiology,
        ]),
        "Task" => R::AnyOf(&[
            A::RecordClinical,
            A::RegisterPatient,
            A::LabProcess,
            A::LabAuthorise,
            A::Radiology,
        ]),
        _ if read => CLINICAL,
        _ => R::Activity(A::RecordClinical),
    }
}

/// `Task.code` (system [`crate::directory::TASK_SYSTEM`]) of a Patient Master
/// Index duplicate-record review.
pub const DUPLICATE_REVIEW_CODE: &str = "duplicate-review";

/// Whether `role` may do `op` on this `Task` (its JSON; empty for a deletion
/// tombstone), beyond the type-level table: a role that reaches tasks only
/// through [`Activity::RegisterPatient`] is limited to duplicate-record reviews.
/// The pharmacist's screening on a `MedicationRequest` (issue 17,
/// `wardline_workflow::medicines::SCREENING_EXT`).
pub const SCREENING_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/pharmacy-screening";

/// Whether `role` may write this `MedicationRequest` (`new_json`, replacing
/// `current_json` when it exists), beyond the type-level table: its
/// pharmacist screening ([`SCREENING_EXT`]) is added, changed or removed
/// only by those who screen ([`Activity::ScreenPrescriptions`]). A
/// prescriber's other changes keep the screening as it is and pass.
pub fn screening_permitted(role: Role, new_json: &str, current_json: Option<&str>) -> bool {
    if role.has(Activity::ScreenPrescriptions) {
        return true;
    }
    let screening = |json: &str| -> Option<serde_json::Value> {
        if !json.contains(SCREENING_EXT) {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        v.get("extension")?
            .as_array()?
            .iter()
            .find(|e| e.get("url").and_then(serde_json::Value::as_str) == Some(SCREENING_EXT))
            .cloned()
    };
    screening(new_json) == current_json.and_then(screening)
}

/// Whether `role` may write this `Location`: the directory's managers any;
/// ADT staff only an update of a bed (`physicalType` `bd`), which is how
/// the bed's state is kept — they cannot add, remove or rename wards.
pub fn location_permitted(role: Role, op: Op, location_json: &str) -> bool {
    if !op.is_write() || role.has(Activity::ManageDirectory) {
        return true;
    }
    if op != Op::Update || !role.has(Activity::Adt) {
        return false;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(location_json) else {
        return false;
    };
    v.pointer("/physicalType/coding")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("code").and_then(serde_json::Value::as_str) == Some("bd"))
        })
}

pub fn task_permitted(role: Role, op: Op, task_json: &str) -> bool {
    let clinical = if op.is_write() {
        role.has(Activity::RecordClinical)
    } else {
        role.has(Activity::ViewClinical) || role.has(Activity::IgAudit)
    };
    if clinical {
        return true;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(task_json) else {
        return false;
    };
    let code = v
        .pointer("/code/coding")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| {
            c.get("system").and_then(serde_json::Value::as_str)
                == Some(crate::directory::TASK_SYSTEM)
        })
        .and_then(|c| c.get("code").and_then(serde_json::Value::as_str));
    NON_CLINICAL_TASKS
        .iter()
        .any(|(a, c, reads)| Some(*c) == code && role.has(*a) && (*reads || op.is_write()))
}

/// The tasks a role reaches without the clinical activities, by the
/// activity that reaches them: registration staff the duplicate-record
/// reviews; laboratory staff the result-review notifications that
/// releasing a result creates (issue 16, `wardline_workflow::results`); radiology
/// staff the IR(ME)R justification of an imaging request;
/// and whether it also reads them (the laboratory only writes the
/// notifications: the results core reads inboxes in its transaction).
pub const NON_CLINICAL_TASKS: &[(Activity, &str, bool)] = &[
    (Activity::RegisterPatient, DUPLICATE_REVIEW_CODE, true),
    (Activity::LabProcess, RESULT_REVIEW_CODE, false),
    (Activity::LabAuthorise, RESULT_REVIEW_CODE, false),
    (Activity::Radiology, IRMER_JUSTIFICATION_CODE, true),
];

/// The `meta.tag` (system, code) of a result waiting in the unmatched-results
/// worklist (`wardline_workflow::results::unmatched`).
pub const UNMATCHED_RESULT_TAG: (&str, &str) = (
    "https://fhir.wardline.invalid/CodeSystem/result-match",
    "unmatched",
);

/// Whether `role` may do `op` on this `DiagnosticReport` (its JSON), beyond
/// the type-level table: a report in the unmatched-results worklist holds
/// what a sender said about a person Wardline could not identify, with no
/// patient to check a relationship against, so only the laboratory
/// ([`Activity::LabProcess`], who work the worklist) reads it. Writes are
/// not narrowed here (a sender files an unmatched result; matching reads it
/// first, which this check covers).
pub fn diagnostic_report_permitted(role: Role, op: Op, report_json: &str) -> bool {
    if op.is_write()
        || role.has(Activity::LabProcess)
        || !report_json.contains(UNMATCHED_RESULT_TAG.0)
    {
        return true;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(report_json) else {
        return false;
    };
    !v.pointer("/meta/tag")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|tags| {
            tags.iter().any(|t| {
                t.get("system").and_then(serde_json::Value::as_str) == Some(UNMATCHED_RESULT_TAG.0)
                    && t.get("code").and_then(serde_json::Value::as_str)
                        == Some(UNMATCHED_RESULT_TAG.1)
            })
        })
}

/// `Task.code` (system [`crate::directory::TASK_SYSTEM`]) of a result to
/// review: the inbox item a laboratory's release creates.
pub const RESULT_REVIEW_CODE: &str = "result-review";
/// `Task.code` of a radiographer's IR(ME)R justification of a request.
pub const IRMER_JUSTIFICATION_CODE: &str = "irmer-justification";

/// The `meta.tag` (system, code) of the records the pathology laboratory
/// keeps: the `DiagnosticReport`s and `Observation`s its reception and
/// bench create (issue 16, `wardline_workflow::laboratory`).
pub const LABORATORY_TAG: (&str, &str) = (
    "https://fhir.wardline.invalid/CodeSystem/record-keeper",
    "laboratory",
);
/// The extension of a `DiagnosticReport` authorised by the laboratory.
pub const LABORATORY_AUTHORISATION_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/laboratory-authorisation";

/// Whether `role` may write this `DiagnosticReport` or `Observation` (its
/// JSON), beyond the type-level table: a record the laboratory keeps
/// ([`LABORATORY_TAG`]) is written only by laboratory staff
/// ([`Activity::LabProcess`]), and once authorised (a report with
/// [`LABORATORY_AUTHORISATION_EXT`], a final, amended or corrected
/// observation) only by those who authorise ([`Activity::LabAuthorise`]) —
/// so a bench result cannot be made final, nor a released one changed,
/// through a plain write. `Err` names the activity missing.
pub fn laboratory_record_permitted(role: Role, op: Op, json: &str) -> Result<(), Activity> {
    if !op.is_write() {
        return Ok(());
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Ok(());
    };
    let kept = v
        .pointer("/meta/tag")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|ts| {
            ts.iter().any(|t| {
                t.get("system").and_then(serde_json::Value::as_str) == Some(LABORATORY_TAG.0)
                    && t.get("code").and_then(serde_json::Value::as_str) == Some(LABORATORY_TAG.1)
            })
        });
    if !kept {
        return Ok(());
    }
    if !role.has(Activity::LabProcess) {
        return Err(Activity::LabProcess);
    }
    let authorised = match v.get("resourceType").and_then(serde_json::Value::as_str) {
        Some("DiagnosticReport") => v
            .get("extension")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|es| {
                es.iter().any(|e| {
                    e.get("url").and_then(serde_json::Value::as_str)
                        == Some(LABORATORY_AUTHORISATION_EXT)
                })
            }),
        _ => matches!(
            v.get("status").and_then(serde_json::Value::as_str),
            Some("final" | "amended" | "corrected")
        ),
    };
    if authorised && !role.has(Activity::LabAuthorise) {
        return Err(Activity::LabAuthorise);
    }
    Ok(())
}

/// Whether `role` may write this `ServiceRequest` beyond the type-level
/// table: without [`Activity::OrderTests`], those who authorise laboratory
/// results update laboratory requests only (completing them).
pub fn service_request_permitted(role: Role, op: Op, json: &str) -> bool {
    use Activity as A;
    let reads_all = [
        A::ViewClinical,
        A::LabProcess,
        A::LabAuthorise,
        A::Radiology,
    ];
    if role.has(A::OrderTests) || (!op.is_write() && reads_all.iter().any(|a| role.has(*a))) {
        return true;
    }
    if !op.is_write() {
        // Booking staff read the waiting lists only.
        return role.has(A::ManageAppointments)
            && serde_json::from_str::<serde_json::Value>(json)
                .is_ok_and(|v| waiting_list_entry(&v));
    }
    serde_json::from_str::<serde_json::Value>(json).is_ok_and(|v| {
        (role.has(Activity::LabAuthorise) && request_relates(Role::BiomedicalScientist, &v))
            || (role.has(Activity::ManageAppointments) && waiting_list_entry(&v))
    })
}

/// `ServiceRequest.category` of a waiting-list entry (issue 19,
/// `wardline_workflow::waiting`): booking staff with
/// [`Activity::ManageAppointments`] write these and no other requests.
pub const WAITING_LIST_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/waiting-list";

/// Whether a `ServiceRequest` is a waiting-list entry (`intent` `plan`,
/// category [`WAITING_LIST_SYSTEM`]).
pub fn waiting_list_entry(sr: &serde_json::Value) -> bool {
    sr.get("intent").and_then(serde_json::Value::as_str) == Some("plan")
        && sr
            .get("category")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("coding").and_then(serde_json::Value::as_array))
            .flatten()
            .any(|c| {
                c.get("system").and_then(serde_json::Value::as_str) == Some(WAITING_LIST_SYSTEM)
            })
}

/// Whether a position in `role` has a care relationship with a patient
/// through this open `ServiceRequest`: the pathology laboratory's staff
/// with the patient of a laboratory request (SNOMED CT 108252007), the
/// radiology department's with that of an imaging request (363679005) —
/// they work on the patient's specimen or examination while it is open;
/// booking staff ([`Activity::ManageAppointments`]) with the patient of an
/// open waiting-list entry ([`waiting_list_entry`]).
pub fn request_relates(role: Role, service_request: &serde_json::Value) -> bool {
    let has = |code: &str| {
        service_request
            .get("category")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("coding").and_then(serde_json::Value::as_array))
            .flatten()
            .any(|c| c.get("code").and_then(serde_json::Value::as_str) == Some(code))
    };
    (role.has(Activity::LabProcess) && has("108252007"))
        || (role.has(Activity::Radiology) && has("363679005"))
        // Issue 19: booking staff manage the patients on the waiting lists.
        || (role.has(Activity::ManageAppointments) && waiting_list_entry(service_request))
}

/// `Task.code`s of the results inbox (a result to review, an escalation, the
/// follow-ups of an acknowledgement): an open one owned by a clinician is a
/// legitimate relationship with its patient (`policy::relationship`).
pub const RESULT_TASK_CODES: [&str; 4] = [
    RESULT_REVIEW_CODE,
    "result-escalation",
    "result-action",
    "contact-patient",
];

/// A built-in role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Consultant,
    Doctor,
    StaffNurse,
    WardSister,
    HealthcareAssistant,
    Pharmacist,
    WardClerk,
    BedManager,
    Receptionist,
    /// A clinician of a partner organisation (general practice).
    Gp,
    /// A partner organisation's social worker: demographics and the care summary.
    SocialWorker,
    /// Information governance: the audit trail only, no clinical access.
    PrivacyOfficer,
    /// Users and directory only, **no clinical access**.
    SystemAdmin,
    /// Bulk extracts only.
    DataAnalyst,
    /// The integration engine's service identity (HL7 v2 feeds).
    IntegrationEngine,
    /// Pathology laboratory: specimen reception, analysis, technical validation.
    BiomedicalScientist,
    /// Pathology laboratory: authorises and releases results (clinical
    /// scientist or consultant pathologist).
    ClinicalScientist,
    /// Pathology laboratory manager: the bench and authorisation, the order
    /// catalogue, turnaround times.
    LaboratoryManager,
    /// Radiology department staff (radiographer).
    Radiographer,
}

impl Role {
    const ALL: [Role; 19] = [
        Role::Consultant,
        Role::Doctor,
        Role::StaffNurse,
        Role::WardSister,
        Role::HealthcareAssistant,
        Role::Pharmacist,
        Role::WardClerk,
        Role::BedManager,
        Role::Receptionist,
        Role::Gp,
        Role::SocialWorker,
        Role::PrivacyOfficer,
        Role::SystemAdmin,
        Role::DataAnalyst,
        Role::IntegrationEngine,
        Role::BiomedicalScientist,
        Role::ClinicalScientist,
        Role::LaboratoryManager,
        Role::Radiographer,
    ];

    pub fn all() -> &'static [Role] {
        &Role::ALL
    }

    /// The stable kebab-case code.
    pub fn code(self) -> &'static str {
        match self {
            Role::Consultant => "consultant",
            Role::Doctor => "doctor",
            Role::StaffNurse => "staff-nurse",
            Role::WardSister => "ward-sister",
            Role::HealthcareAssistant => "healthcare-assistant",
            Role::Pharmacist => "pharmacist",
            Role::WardClerk => "ward-clerk",
            Role::BedManager => "bed-manager",
            Role::Receptionist => "receptionist",
            Role::Gp => "gp",
            Role::SocialWorker => "social-worker",
            Role::PrivacyOfficer => "privacy-officer",
            Role::SystemAdmin => "system-admin",
            Role::DataAnalyst => "data-analyst",
            Role::IntegrationEngine => "integration-engine",
            Role::BiomedicalScientist => "biomedical-scientist",
            Role::ClinicalScientist => "clinical-scientist",
            Role::LaboratoryManager => "laboratory-manager",
            Role::Radiographer => "radiographer",
        }
    }

    pub fn parse(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn display(self) -> &'static str {
        match self {
            Role::Consultant => "Consultant",
            Role::Doctor => "Doctor",
            Role::StaffNurse => "Staff nurse",
            Role::WardSister => "Ward sister / charge nurse",
            Role::HealthcareAssistant => "Healthcare assistant",
            Role::Pharmacist => "Pharmacist",
            Role::WardClerk => "Ward clerk",
            Role::BedManager => "Bed manager",
            Role::Receptionist => "Receptionist",
            Role::Gp => "GP (partner organisation)",
            Role::SocialWorker => "Social worker (partner organisation)",
            Role::PrivacyOfficer => "Privacy officer",
            Role::SystemAdmin => "System administrator",
            Role::DataAnalyst => "Data analyst",
            Role::IntegrationEngine => "Integration engine",
            Role::BiomedicalScientist => "Biomedical scientist (pathology)",
            Role::ClinicalScientist => "Clinical scientist (pathology)",
            Role::LaboratoryManager => "Laboratory manager (pathology)",
            Role::Radiographer => "Radiographer",
        }
    }

    /// The activities granted explicitly (see [`Role::has`] for implied ones).
    pub fn activities(self) -> &'static [Activity] {
        use Activity::*;
        match self {
            Role::Consultant | Role::Doctor => &[
                ViewClinical,
                RecordClinical,
                Prescribe,
                OrderTests,
                ReviewResults,
                Adt,
                ManageAppointments,
                BreakGlass,
                SignClinicalDocuments,
            ],
            Role::StaffNurse => &[
                ViewClinical,
                RecordClinical,
                AdministerMedication,
                OrderTests,
                Adt,
                BreakGlass,
                SignClinicalDocuments,
            ],
            Role::WardSister => &[
                ViewClinical,
                RecordClinical,
                AdministerMedication,
                OrderTests,
                ReviewResults,
                Adt,
                ManageAppointments,
                BreakGlass,
                SignClinicalDocuments,
            ],
            Role::HealthcareAssistant => &[ViewClinical, RecordClinical],
            Role::Pharmacist => &[
                ViewClinical,
                RecordClinical,
                Prescribe,
                ScreenPrescriptions,
                ManageFormulary,
            ],
            Role::WardClerk => &[ViewDemographics, Adt, RegisterPatient, ManageAppointments],
            Role::BedManager => &[ViewDemographics, Adt],
            Role::Receptionist => &[ViewDemographics, RegisterPatient, ManageAppointments],
            Role::Gp => &[ViewClinical, RecordClinical],
            Role::SocialWorker => &[ViewCareSummary],
            Role::PrivacyOfficer => &[IgAudit],
            Role::SystemAdmin => &[ManageUsers, ManageDirectory, ManageCatalogue],
            Role::DataAnalyst => &[Export],
            Role::IntegrationEngine => &[
                ViewClinical,
                RecordClinical,
                RegisterPatient,
                Adt,
                OrderTests,
                ManageAppointments,
            ],
            Role::BiomedicalScientist => &[ViewDemographics, LabProcess],
            Role::ClinicalScientist => &[ViewDemographics, LabProcess, LabAuthorise],
            Role::LaboratoryManager => {
                &[ViewDemographics, LabProcess, LabAuthorise, ManageCatalogue]
            }
            Role::Radiographer => &[ViewDemographics, Radiology],
        }
    }

    /// Whether the role has `activity`, directly or implied ([`Activity::implies`]).
    pub fn has(self, activity: Activity) -> bool {
        self.activities()
            .iter()
            .any(|a| *a == activity || a.implies().contains(&activity))
    }

    /// Whether the role meets `requirement`.
    pub fn permits(&self, requirement: Requirement) -> bool {
        match requirement {
            Requirement::Activity(a) => self.has(a),
            Requirement::AnyOf(list) => list.iter().any(|a| self.has(*a)),
            Requirement::AnyStaff => true,
            Requirement::Never => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn can(role: Role, ty: &str, op: char) -> bool {
        role.permits(required_activity(ty, Op::from_letter(op).unwrap()))
    }

    #[test]
    fn unmatched_results_are_read_by_the_laboratory_only() {
        let tagged = r#"{"resourceType":"DiagnosticReport","meta":{"tag":[{"system":"https://fhir.wardline.invalid/CodeSystem/result-match","code":"unmatched"}]}}"#;
        let filed = r#"{"resourceType":"DiagnosticReport","subject":{"reference":"Patient/p"}}"#;
        assert!(!diagnostic_report_permitted(
            Role::Consultant,
            Op::Read,
            tagged
        ));
        assert!(!diagnostic_report_permitted(
            Role::Consultant,
            Op::Search,
            tagged
        ));
        assert!(diagnostic_report_permitted(
            Role::Consultant,
            Op::Read,
            filed
        ));
        assert!(diagnostic_report_permitted(
            Role::BiomedicalScientist,
            Op::Read,
            tagged
        ));
        assert!(diagnostic_report_permitted(
            Role::Consultant,
            Op::Create,
            tagged
        ));
    }

    #[test]
    fn codes_roundtrip() {
        for a in Activity::ALL {
            assert_eq!(Activity::parse(a.as_str()), Some(a));
        }
        for r in Role::all() {
            assert_eq!(Role::parse(r.code()), Some(*r));
            assert!(!r.display().is_empty());
        }
        assert_eq!(Activity::parse("Prescribe"), None);
        assert_eq!(Role::parse(""), None);
        for c in "cruds".chars() {
            assert_eq!(Op::from_letter(c).unwrap().letter(), c);
        }
        assert_eq!(Op::from_letter('x'), None);
    }

    #[test]
    fn system_admin_has_no_clinical_access() {
        let r = Role::SystemAdmin;
        for ty in [
            "Observation",
            "Condition",
            "Patient",
            "Encounter",
            "AuditEvent",
            "Consent",
        ] {
            assert!(!can(r, ty, 'r'), "{ty}");
            assert!(!can(r, ty, 's'), "{ty}");
        }
        assert!(can(r, "Practitioner", 'c'));
        assert!(can(r, "PractitionerRole", 'u'));
        assert!(can(r, "Location", 'c'));
        assert!(can(r, "Group", 'u'));
        assert!(can(r, "ValueSet", 'u'));
        assert!(!r.has(Activity::BreakGlass));
    }

    #[test]
    fn laboratory_staff_write_results_and_tell_the_requester() {
        for ty in ["Observation", "DiagnosticReport"] {
            assert_eq!(
                required_activity(ty, Op::Update),
                Requirement::AnyOf(&[
                    Activity::RecordClinical,
                    Activity::LabProcess,
                    Activity::LabAuthorise
                ]),
                "{ty}"
            );
            assert!(!Role::Receptionist.permits(required_activity(ty, Op::Create)));
            assert!(Role::BiomedicalScientist.permits(required_activity(ty, Op::Create)));
        }
        // Laboratory staff write result-review Tasks (the release), nothing else.
        let review = r#"{"resourceType":"Task","code":{"coding":[{"system":"https://fhir.wardline.invalid/CodeSystem/task","code":"result-review"}]}}"#;
        let other = r#"{"resourceType":"Task","code":{"coding":[{"system":"https://fhir.wardline.invalid/CodeSystem/task","code":"result-action"}]}}"#;
        assert!(task_permitted(Role::ClinicalScientist, Op::Create, review));
        assert!(!task_permitted(Role::ClinicalScientist, Op::Create, other));
        assert!(!task_permitted(Role::ClinicalScientist, Op::Read, review));
        assert!(!task_permitted(Role::Receptionist, Op::Create, review));
    }

    #[test]
    fn privacy_officer() {
        let r = Role::PrivacyOfficer;
        assert!(can(r, "AuditEvent", 's'));
        assert!(can(r, "AuditEvent", 'r'));
        assert!(!can(r, "AuditEvent", 'c'));
        assert!(can(r, "Task", 'r'));
        assert!(!can(r, "Task", 'u'));
        assert!(!can(r, "Observation", 'r'));
        assert!(!can(r, "Patient", 'r'));
        assert!(can(r, "Organization", 'r'));
    }

    #[test]
    fn requesters_write_specimens_and_answers() {
        for r in [Role::Consultant, Role::StaffNurse] {
            assert!(can(r, "Specimen", 'c'), "{r}");
            assert!(can(r, "QuestionnaireResponse", 'c'), "{r}");
        }
        assert!(can(Role::BiomedicalScientist, "Specimen", 'u'));
        assert!(!can(
            Role::BiomedicalScientist,
            "QuestionnaireResponse",
            'c'
        ));
        for r in [Role::WardClerk, Role::SystemAdmin, Role::Radiographer] {
            assert!(!can(r, "Specimen", 'c'), "{r}");
            assert!(!can(r, "QuestionnaireResponse", 'u'), "{r}");
        }
        // A healthcare assistant records answers but orders nothing.
        assert!(can(Role::HealthcareAssistant, "QuestionnaireResponse", 'c'));
        assert!(!can(Role::HealthcareAssistant, "Specimen", 'c'));
    }

    #[test]
    fn audit_events_are_never_written() {
        for r in Role::all() {
            for op in "cud".chars() {
                assert!(!can(*r, "AuditEvent", op), "{r} {op}");
            }
        }
    }

    #[test]
    fn ward_clerk() {
        let r = Role::WardClerk;
        assert!(can(r, "Encounter", 'c'));
        assert!(can(r, "Encounter", 'r'));
        assert!(can(r, "Patient", 'r'));
        assert!(can(r, "Patient", 'u'));
        assert!(can(r, "Appointment", 'c'));
        assert!(!can(r, "Observation", 'r'));
        assert!(!can(r, "Condition", 's'));
        // Registration staff record consent decisions, and see what is recorded.
        assert!(can(r, "Consent", 'r'));
        assert!(can(r, "Consent", 'c'));
        assert!(!can(Role::BedManager, "Consent", 'r'));
        assert!(!can(Role::SocialWorker, "Consent", 'r'));
    }

    #[test]
    fn registration_staff_work_the_duplicate_review_queue_only() {
        let review = format!(
            r#"{{"resourceType":"Task","code":{{"coding":[{{"system":"{}","code":"{DUPLICATE_REVIEW_CODE}"}}]}}}}"#,
            crate::directory::TASK_SYSTEM
        );
        let clinical = format!(
            r#"{{"resourceType":"Task","code":{{"coding":[{{"system":"{}","code":"break-glass-review"}}]}}}}"#,
            crate::directory::TASK_SYSTEM
        );
        for r in [Role::WardClerk, Role::Receptionist] {
            assert!(can(r, "Task", 's'), "{r}");
            assert!(can(r, "Task", 'u'), "{r}");
            for op in [Op::Read, Op::Search, Op::Create, Op::Update] {
                assert!(task_permitted(r, op, &review), "{r} {op:?}");
                assert!(!task_permitted(r, op, &clinical), "{r} {op:?}");
            }
            assert!(!task_permitted(r, Op::Delete, ""), "{r}");
            // Demographics stay readable; clinical data does not.
            assert!(can(r, "Patient", 's'));
            assert!(!can(r, "Observation", 's'));
        }
        // A bed manager registers nobody: no tasks at all.
        assert!(!can(Role::BedManager, "Task", 'r'));
        assert!(!task_permitted(Role::BedManager, Op::Read, &review));
        // Clinical roles are unaffected.
        assert!(task_permitted(Role::StaffNurse, Op::Update, &clinical));
        assert!(task_permitted(Role::PrivacyOfficer, Op::Read, &clinical));
        assert!(!task_permitted(Role::PrivacyOfficer, Op::Update, &clinical));
        assert!(!can(Role::PrivacyOfficer, "Task", 'u'));
    }

    #[test]
    fn adt_staff_update_beds_but_not_other_locations() {
        let bed = r#"{"resourceType":"Location","physicalType":{"coding":[{"code":"bd"}]}}"#;
        let ward = r#"{"resourceType":"Location","physicalType":{"coding":[{"code":"wa"}]}}"#;
        for r in [Role::WardClerk, Role::BedManager, Role::StaffNurse] {
            assert!(can(r, "Location", 'u'), "{r}");
            assert!(location_permitted(r, Op::Update, bed), "{r}");
            assert!(!location_permitted(r, Op::Update, ward), "{r}");
            assert!(!can(r, "Location", 'c'), "{r}");
            assert!(!can(r, "Location", 'd'), "{r}");
            assert!(!location_permitted(r, Op::Create, bed), "{r}");
        }
        assert!(!can(Role::Receptionist, "Location", 'u'));
        assert!(!location_permitted(Role::Receptionist, Op::Update, bed));
        assert!(location_permitted(Role::SystemAdmin, Op::Update, ward));
    }

    #[test]
    fn clinical_roles() {
        assert!(!can(Role::Pharmacist, "Encounter", 'c'));
        assert!(can(Role::Pharmacist, "MedicationRequest", 'u'));
        // Issue 17: only pharmacists change the screening of a prescription.
        let plain = r#"{"resourceType":"MedicationRequest","status":"active"}"#;
        let screened = r#"{"resourceType":"MedicationRequest","status":"active","extension":[{"url":"https://fhir.wardline.invalid/StructureDefinition/pharmacy-screening","extension":[{"url":"status","valueCode":"screened"}]}]}"#;
        let stopped = r#"{"resourceType":"MedicationRequest","status":"stopped","extension":[{"url":"https://fhir.wardline.invalid/StructureDefinition/pharmacy-screening","extension":[{"url":"status","valueCode":"screened"}]}]}"#;
        assert!(screening_permitted(Role::Pharmacist, screened, Some(plain)));
        assert!(!screening_permitted(Role::Doctor, screened, Some(plain)));
        assert!(!screening_permitted(Role::StaffNurse, screened, None));
        assert!(!screening_permitted(Role::Doctor, plain, Some(screened)));
        assert!(screening_permitted(Role::Doctor, stopped, Some(screened)));
        assert!(screening_permitted(Role::Doctor, plain, None));
        assert!(!can(Role::Pharmacist, "MedicationAdministration", 'c'));
        assert!(can(Role::StaffNurse, "MedicationAdministration", 'c'));
        assert!(!can(Role::StaffNurse, "MedicationRequest", 'c'));
        assert!(can(Role::Doctor, "MedicationRequest", 'c'));
        assert!(can(Role::Doctor, "ServiceRequest", 'c'));
        assert!(!can(Role::HealthcareAssistant, "ServiceRequest", 'c'));
        assert!(can(Role::HealthcareAssistant, "Observation", 'c'));
        assert!(can(Role::Consultant, "Patient", 'r'));
        assert!(can(Role::Consultant, "Observation", 's'));
        assert!(can(Role::Consultant, "Task", 'r'));
        assert!(!can(Role::Consultant, "Patient", 'c'));
        assert!(can(Role::Gp, "Observation", 'r'));
        assert!(can(Role::Gp, "Consent", 'r'));
        assert!(can(Role::Receptionist, "Consent", 'c'));
        assert!(!can(Role::Gp, "Consent", 'c'));
    }

    #[test]
    fn partner_and_non_clinical_roles() {
        let sw = Role::SocialWorker;
        assert!(can(sw, "Patient", 'r'));
        assert!(can(sw, "CarePlan", 's'));
        assert!(can(sw, "Encounter", 'r'));
        assert!(!can(sw, "Observation", 'r'));
        assert!(!can(sw, "CarePlan", 'u'));
        assert!(can(Role::DataAnalyst, "Location", 'r'));
        assert!(!can(Role::DataAnalyst, "Patient", 'r'));
        assert!(Role::DataAnalyst.has(Activity::Export));
        assert!(can(Role::BedManager, "Encounter", 'u'));
        assert!(!can(Role::BedManager, "Patient", 'u'));
        assert!(can(Role::IntegrationEngine, "Patient", 'u'));
        assert!(can(Role::IntegrationEngine, "Observation", 'c'));
        assert!(!can(Role::IntegrationEngine, "MedicationRequest", 'c'));
    }

    #[test]
    fn table_defaults_and_directory() {
        use Requirement as R;
        assert_eq!(
            required_activity("Immunization", Op::Read),
            R::Activity(Activity::ViewClinical)
        );
        assert_eq!(
            required_activity("Immunization", Op::Delete),
            R::Activity(Activity::RecordClinical)
        );
        assert_eq!(
            required_activity("CapabilityStatement", Op::Search),
            R::AnyStaff
        );
        assert_eq!(required_activity("Slot", Op::Read), R::AnyStaff);
        assert_eq!(
            required_activity("Group", Op::Read),
            R::Activity(Activity::ViewClinical)
        );
        assert_eq!(
            required_activity("", Op::Read),
            R::Activity(Activity::ViewClinical)
        );
        assert_eq!(
            required_activity("EpisodeOfCare", Op::Create),
            R::Activity(Activity::Adt)
        );
        for ty in ["Observation", "DiagnosticReport"] {
            assert_eq!(
                required_activity(ty, Op::Update),
                R::AnyOf(&[
                    Activity::RecordClinical,
                    Activity::LabProcess,
                    Activity::LabAuthorise
                ]),
                "{ty}"
            );
            assert!(!Role::Receptionist.permits(required_activity(ty, Op::Create)));
            assert!(Role::BiomedicalScientist.permits(required_activity(ty, Op::Create)));
        }
        // Laboratory staff write result-review Tasks (the release), nothing else.
        let review = r#"{"resourceType":"Task","code":{"coding":[{"system":"https://fhir.wardline.invalid/CodeSystem/task","code":"result-review"}]}}"#;
        let other = r#"{"resourceType":"Task","code":{"coding":[{"system":"https://fhir.wardline.invalid/CodeSystem/task","code":"result-action"}]}}"#;
        assert!(task_permitted(Role::ClinicalScientist, Op::Create, review));
        assert!(!task_permitted(Role::ClinicalScientist, Op::Create, other));
        assert!(!task_permitted(Role::ClinicalScientist, Op::Read, review));
        assert!(!task_permitted(Role::Receptionist, Op::Create, review));
        for ty in [
            "Condition",
            "AllergyIntolerance",
            "Flag",
            "ClinicalImpression",
            "DocumentReference",
            "Composition",
            "Procedure",
            "CarePlan",
            "CareTeam",
        ] {
            assert_eq!(
                required_activity(ty, Op::Update),
                R::Activity(Activity::RecordClinical),
                "{ty}"
            );
        }
        for role in Role::all() {
            assert!(role.permits(R::AnyStaff));
            assert!(!role.permits(R::Never));
        }
    }

    #[test]
    fn laboratory_staff_work_their_records_only() {
        let bms = Role::BiomedicalScientist;
        let cs = Role::ClinicalScientist;
        for ty in [
            "ServiceRequest",
            "Specimen",
            "DiagnosticReport",
            "Observation",
        ] {
            assert!(can(bms, ty, 'r') && can(bms, ty, 's'), "{ty}");
        }
        assert!(can(bms, "Specimen", 'u'));
        assert!(can(bms, "DiagnosticReport", 'c'));
        assert!(
            !can(bms, "ServiceRequest", 'u'),
            "the request is the requester's"
        );
        assert!(!can(bms, "Condition", 'r'));
        assert!(!can(Role::Radiographer, "Observation", 'r'));
        assert!(can(Role::Radiographer, "QuestionnaireResponse", 'r'));
        // Observations stay clinical writes too (vital signs).
        assert!(can(Role::StaffNurse, "Observation", 'c'));

        let tagged = |extra: &str| {
            format!(
                r#"{{"resourceType": "DiagnosticReport", "status": "preliminary", "meta": {{"tag": [{{"system": "{}", "code": "{}"}}]}}{extra}}}"#,
                LABORATORY_TAG.0, LABORATORY_TAG.1
            )
        };
        let bench = tagged("");
        let released = tagged(&format!(
            r#", "extension": [{{"url": "{LABORATORY_AUTHORISATION_EXT}"}}]"#
        ));
        assert_eq!(laboratory_record_permitted(bms, Op::Update, &bench), Ok(()));
        assert_eq!(
            laboratory_record_permitted(bms, Op::Update, &released),
            Err(Activity::LabAuthorise)
        );
        assert_eq!(
            laboratory_record_permitted(cs, Op::Update, &released),
            Ok(())
        );
        assert_eq!(
            laboratory_record_permitted(Role::Doctor, Op::Update, &bench),
            Err(Activity::LabProcess),
            "a clinician cannot finalise a bench result"
        );
        assert_eq!(
            laboratory_record_permitted(Role::Doctor, Op::Read, &bench),
            Ok(())
        );
        let vitals = r#"{"resourceType": "Observation", "status": "final"}"#;
        assert_eq!(
            laboratory_record_permitted(Role::StaffNurse, Op::Create, vitals),
            Ok(())
        );
        let final_obs = format!(
            r#"{{"resourceType": "Observation", "status": "final", "meta": {{"tag": [{{"system": "{}", "code": "{}"}}]}}}}"#,
            LABORATORY_TAG.0, LABORATORY_TAG.1
        );
        assert_eq!(
            laboratory_record_permitted(bms, Op::Update, &final_obs),
            Err(Activity::LabAuthorise)
        );
    }

    #[test]
    fn tasks_beyond_the_clinical_ones() {
        let task = |code: &str| {
            format!(
                r#"{{"resourceType": "Task", "code": {{"coding": [{{"system": "{}", "code": "{code}"}}]}}}}"#,
                crate::directory::TASK_SYSTEM
            )
        };
        let cs = Role::ClinicalScientist;
        assert!(task_permitted(cs, Op::Create, &task(RESULT_REVIEW_CODE)));
        assert!(!task_permitted(
            cs,
            Op::Create,
            &task(DUPLICATE_REVIEW_CODE)
        ));
        assert!(task_permitted(
            Role::BiomedicalScientist,
            Op::Create,
            &task(RESULT_REVIEW_CODE)
        ));
        assert!(!task_permitted(cs, Op::Read, &task(RESULT_REVIEW_CODE)));
        assert!(task_permitted(
            Role::Radiographer,
            Op::Read,
            &task(IRMER_JUSTIFICATION_CODE)
        ));
        assert!(task_permitted(
            Role::Radiographer,
            Op::Create,
            &task(IRMER_JUSTIFICATION_CODE)
        ));
        assert!(!task_permitted(
            Role::Radiographer,
            Op::Read,
            &task(RESULT_REVIEW_CODE)
        ));
        assert!(task_permitted(
            Role::Receptionist,
            Op::Update,
            &task(DUPLICATE_REVIEW_CODE)
        ));
        assert!(!task_permitted(
            Role::Receptionist,
            Op::Update,
            &task(IRMER_JUSTIFICATION_CODE)
        ));
        assert!(task_permitted(Role::Doctor, Op::Create, &task("anything")));
    }

    #[test]
    fn department_requests_relate() {
        let sr = |code: &str| {
            serde_json::json!({"resourceType": "ServiceRequest",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": code}]}]})
        };
        assert!(request_relates(Role::BiomedicalScientist, &sr("108252007")));
        assert!(!request_relates(
            Role::BiomedicalScientist,
            &sr("363679005")
        ));
        assert!(request_relates(Role::Radiographer, &sr("363679005")));
        assert!(!request_relates(Role::Radiographer, &sr("108252007")));
        assert!(!request_relates(Role::Doctor, &sr("108252007")));
    }

    #[test]
    fn booking_staff_keep_waiting_lists_only() {
        let entry = format!(
            r#"{{"resourceType": "ServiceRequest", "intent": "plan", "category": [{{"coding": [{{"system": "{WAITING_LIST_SYSTEM}", "code": "inpatient"}}]}}]}}"#
        );
        let order = r#"{"resourceType": "ServiceRequest", "intent": "order"}"#;
        for role in [Role::Receptionist, Role::WardClerk] {
            assert!(can(role, "ServiceRequest", 'c') && can(role, "ServiceRequest", 'r'));
            for op in [Op::Create, Op::Update, Op::Read] {
                assert!(service_request_permitted(role, op, &entry), "{role} {op:?}");
                assert!(!service_request_permitted(role, op, order), "{role} {op:?}");
            }
        }
        assert!(service_request_permitted(Role::Doctor, Op::Update, order));
        assert!(service_request_permitted(
            Role::BiomedicalScientist,
            Op::Read,
            order
        ));
        assert!(!can(Role::HealthcareAssistant, "ServiceRequest", 'c'));
        let v: serde_json::Value = serde_json::from_str(&entry).unwrap();
        assert!(request_relates(Role::WardClerk, &v));
        assert!(!request_relates(Role::Pharmacist, &v));
        assert!(!request_relates(
            Role::WardClerk,
            &serde_json::from_str(order).unwrap()
        ));
    }
}
