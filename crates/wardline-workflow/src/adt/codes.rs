//! Code systems and the code lists the ADT screens offer.

/// `Location.physicalType`.
pub const PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";
/// HL7 v2 table 0116, bed status: the system of `Location.operationalStatus`
/// (the element's preferred binding), as the HL7 v2 inbound mapping writes it.
pub const BED_STATUS: &str = "http://terminology.hl7.org/CodeSystem/v2-0116";
/// Wardline's bed states that table 0116 lacks: `blocked` (a bed that is
/// physically there and open but must not be used for now, e.g. kept for an
/// expected transfer or next to a patient in isolation).
pub const WARDLINE_BED_STATUS: &str = "https://fhir.wardline.invalid/CodeSystem/bed-status";
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// NHS Data Dictionary ADMISSION METHOD (England), as UK Core names it.
pub const ADMISSION_METHOD: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland";
/// FHIR's own admit-source codes, given beside the NHS admission method.
pub const ADMIT_SOURCE: &str = "http://terminology.hl7.org/CodeSystem/admit-source";
/// NHS Data Dictionary DISCHARGE DESTINATION (England).
pub const DISCHARGE_DESTINATION: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeDestinationEngland";
/// NHS Data Dictionary DISCHARGE METHOD (England).
pub const DISCHARGE_METHOD: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeMethodEngland";
/// The UK Core extension carrying the discharge method: on the
/// `Encounter` itself (its context in UK Core).
pub const DISCHARGE_METHOD_EXT: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DischargeMethod";
/// The UK Core extension carrying the admission method: on
/// `Encounter.hospitalization`.
pub const ADMISSION_METHOD_EXT: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod";
/// The UK Core Encounter profile. Every Encounter Wardline creates claims
/// it, so the core holds it to the profile on every write.
pub const UK_CORE_ENCOUNTER: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter";
/// NHS Data Dictionary TREATMENT FUNCTION CODE: `Encounter.serviceType`.
pub const TREATMENT_FUNCTION: &str =
    "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function";
/// The expected date of discharge (HL7 v2 PV2-9). FHIR R4 and UK Core have
/// no element for it, so Wardline's own extension on the Encounter, `valueDate`.
pub const EXPECTED_DISCHARGE_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/expected-discharge-date";
pub const SNOMED: &str = "http://snomed.info/sct";
/// SNOMED CT 40174006 |Isolation procedure|: `Flag.code` of an isolation
/// alert on the patient (the reason in `code.text`).
pub const ISOLATION_CODE: &str = "40174006";

/// NHS discharge destinations (code, label).
pub fn discharge_destinations() -> &'static [(&'static str, &'static str)] {
    &[
        ("19", "Usual place of residence"),
        ("29", "Temporary place of residence"),
        ("51", "Other NHS hospital: general ward"),
        ("52", "Other NHS hospital: maternity"),
        ("53", "Other NHS hospital: mental health"),
        ("54", "NHS-run care home"),
        ("65", "Local authority residential care"),
        ("85", "Non-NHS care home"),
        ("87", "Non-NHS hospital"),
        ("88", "Non-NHS hospice"),
        ("79", "Not applicable: patient died"),
    ]
}

/// NHS discharge methods (code, label).
pub fn discharge_methods() -> &'static [(&'static str, &'static str)] {
    &[
        (
            "1",
            "Discharged on clinical advice or with clinical consent",
        ),
        (
            "2",
            "Self-discharged, or discharged by a relative or advocate",
        ),
        (
            "3",
            "Discharged by a mental health review tribunal, the Home Secretary or a court",
        ),
        ("4", "Patient died"),
    ]
}

/// A specialty as people name it: `Encounter.serviceType` (a treatment
/// function code) by its display, else by the label Wardline gives the
/// code, else its text, else the code as written.
pub fn specialty_words(service_type: &serde_json::Value) -> Option<String> {
    let coding = &service_type["coding"][0];
    coding["display"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            let code = coding["code"].as_str()?;
            specialties()
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, label)| (*label).to_owned())
        })
        .or_else(|| service_type["text"].as_str().map(str::to_owned))
        .or_else(|| coding["code"].as_str().map(str::to_owned))
}

/// Treatment function codes offered as specialties (code, label).
pub fn specialties() -> &'static [(&'static str, &'static str)] {
    &[
        ("100", "General Surgery"),
        ("101", "Urology"),
        ("110", "Trauma and Orthopaedics"),
        ("120", "Ear, Nose and Throat"),
        ("130", "Ophthalmology"),
        ("170", "Cardiothoracic Surgery"),
        ("180", "Emergency Medicine"),
        ("192", "Critical Care Medicine"),
        ("300", "General Internal Medicine"),
        ("301", "Gastroenterology"),
        ("320", "Cardiology"),
        ("328", "Stroke Medicine"),
        ("340", "Respiratory Medicine"),
        ("361", "Nephrology"),
        ("370", "Medical Oncology"),
        ("400", "Neurology"),
        ("420", "Paediatrics"),
        ("430", "Elderly Medicine"),
        ("501", "Obstetrics"),
        ("502", "Gynaecology"),
        ("800", "Clinical Oncology"),
    ]
}

pub(crate) fn label_of(list: &[(&'static str, &'static str)], code: &str) -> Option<&'static str> {
    list.iter().find(|(c, _)| *c == code).map(|(_, l)| *l)
}
