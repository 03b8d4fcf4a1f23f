//! Registration: checking a new patient's details and creating the record.

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::{Access, FhirService};
use wardline_fhir::FhirError;

use super::matching::{self, Candidate};
use super::{
    GENDERS, NHS_NUMBER_SYSTEM, NHS_VERIFICATION_EXTENSION, NHS_VERIFICATION_SYSTEM,
    PatientSummary, UK_CORE_PATIENT, canonical_postcode, date_problem, format_nhs_number,
    is_postcode, nhs_number_problem,
};

/// The registration form.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewPatient {
    /// May be empty (not known yet); spaces allowed.
    pub nhs_number: String,
    pub family: String,
    /// One or more given names, space-separated.
    pub given: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// `male`, `female`, `other` or `unknown`.
    pub gender: String,
    pub address_line: String,
    pub city: String,
    pub postcode: String,
    pub phone: String,
    /// NHS Data Dictionary ethnic category code (one of
    /// [`ETHNIC_CATEGORIES`](super::ETHNIC_CATEGORIES): `A`…`Z`, `99`), as
    /// the patient states it; empty when not asked. Recorded as the UK Core
    /// ethnic category extension.
    pub ethnic_category: String,
}

/// A problem with one field of [`NewPatient`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// The [`NewPatient`] field name.
    pub field: &'static str,
    /// A plain-English sentence naming the field.
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum RegisterError {
    /// Fix these fields (an NHS number already registered is one).
    Invalid(Vec<FieldError>),
    /// These existing patients may be the same person; register anyway only
    /// with `confirm_not_duplicate`.
    PossibleDuplicates(Vec<Candidate>),
    Fhir(FhirError),
}

impl From<FhirError> for RegisterError {
    fn from(e: FhirError) -> Self {
        RegisterError::Fhir(e)
    }
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Invalid(errs) => {
                let m: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
                f.write_str(&m.join(" "))
            }
            RegisterError::PossibleDuplicates(c) => write!(
                f,
                "{} existing patient record(s) may be the same person",
                c.len()
            ),
            RegisterError::Fhir(e) => f.write_str(
                &e.issues
                    .iter()
                    .map(|i| i.diagnostics.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
}

impl std::error::Error for RegisterError {}

fn name_problem(label: &str, s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() {
        return Some(format!("{label} is required"));
    }
    if t.chars().count() > 35 {
        return Some(format!("{label} is longer than 35 characters"));
    }
    if !t.chars().any(char::is_alphabetic) {
        return Some(format!("{label} must contain letters"));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '’' | '.')))
    {
        return Some(format!(
            "{label} may contain only letters, spaces, hyphens and apostrophes, not '{c}'"
        ));
    }
    None
}

/// Checks every field; all problems at once.
pub(crate) fn validate(p: &NewPatient, today: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut err = |field: &'static str, message: String| errs.push(FieldError { field, message });
    let nhs = p.nhs_number.trim();
    if !nhs.is_empty()
        && let Some(m) = nhs_number_problem(nhs)
    {
        err("nhs_number", m);
    }
    if let Some(m) = name_problem("Family name", &p.family) {
        err("family", m);
    }
    if let Some(m) = name_problem("Given name", &p.given) {
        err("given", m);
    }
    let dob = p.birth_date.trim();
    if dob.is_empty() {
        err("birth_date", "Date of birth is required".into());
    } else if let Some(m) = date_problem("Date of birth", dob) {
        err("birth_date", m);
    } else if dob > today {
        err(
            "birth_date",
            format!("Date of birth {dob} is in the future"),
        );
    } else if dob < "1880-01-01" {
        err(
            "birth_date",
            format!("Date of birth {dob} is before 1880: check the year"),
        );
    }
    let g = p.gender.trim().to_lowercase();
    if g.is_empty() {
        err(
            "gender",
            "Gender is required (male, female, other or unknown)".into(),
        );
    } else if !GENDERS.contains(&g.as_str()) {
        err(
            "gender",
            format!(
                "Gender must be male, female, other or unknown, not '{}'",
                p.gender.trim()
            ),
        );
    }
    let ethnic = p.ethnic_category.trim();
    if !ethnic.is_empty() && super::ethnic_category_extension(ethnic).is_none() {
        err(
            "ethnic_category",
            format!("Ethnic category '{ethnic}' is not one of the NHS ethnic categories"),
        );
    }
    if p.address_line.trim().chars().count() > 100 {
        err(
            "address_line",
            "Address is longer than 100 characters".into(),
        );
    }
    if p.city.trim().chars().count() > 50 {
        err("city", "Town or city is longer than 50 characters".into());
    }
    let pc = p.postcode.trim();
    if pc.is_empty() {
        err(
            "postcode",
            "Postcode is required (ZZ99 3VZ for no fixed abode)".into(),
        );
    } else if !is_postcode(pc) {
        err(
            "postcode",
            format!("Postcode '{pc}' is not a UK postcode (for example LS1 4AP)"),
        );
    }
    let phone = p.phone.trim();
    if !phone.is_empty() {
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        if phone
            .chars()
            .any(|c| !(c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')')))
        {
            err(
                "phone",
                format!("Phone number '{phone}' may contain only digits, spaces and +"),
            );
        } else if !(10..=13).contains(&digits) {
            err(
                "phone",
                format!("Phone number '{phone}' has {digits} digits; a UK number has 10 or 11"),
            );
        }
    }
    errs
}

/// The UK Core Patient for a validated form (no id, no hospital number yet).
pub(crate) fn patient_resource(p: &NewPatient) -> Value {
    let mut identifier = Vec::new();
    if let Some(n) = wardline_fhir::nhs_number::normalise(p.nhs_number.trim()) {
        identifier.push(json!({
            "extension": [{
                "url": NHS_VERIFICATION_EXTENSION,
                "valueCodeableConcept": {"coding": [{
                    "system": NHS_VERIFICATION_SYSTEM,
                    "code": "02",
                    "display": "Number present but not traced"
                }]}
            }],
            "system": NHS_NUMBER_SYSTEM,
            "value": n
        }));
    }
    let given: Vec<&str> = p.given.split_whitespace().collect();
    let mut address = json!({"use": "home", "postalCode": canonical_postcode(&p.postcode)});
    if !p.address_line.trim().is_empty() {
        address["line"] = json!([p.address_line.trim()]);
    }
    if !p.city.trim().is_empty() {
        address["city"] = json!(p.city.trim());
    }
    let mut v = json!({
        "resourceType": "Patient",
        "meta": {"profile": [UK_CORE_PATIENT]},
        "active": true,
        "name": [{"use": "official", "family": p.family.trim(), "given": given}],
        "gender": p.gender.trim().to_lowercase(),
        "birthDate": p.birth_date.trim(),
        "address": [address],
    });
    if !identifier.is_empty() {
        v["identifier"] = Value::Array(identifier);
    }
    if !p.phone.trim().is_empty() {
        v["telecom"] = json!([{"system": "phone", "value": p.phone.trim(), "use": "home"}]);
    }
    if let Some(e) = super::ethnic_category_extension(p.ethnic_category.trim()) {
        v["extension"] = json!([e]);
    }
    v
}

/// Registers a new patient: checks every field, refuses an NHS number
/// already on the index, returns possible duplicates unless
/// `confirm_not_duplicate`, then creates the Patient with the trust's next
/// hospital number in one transaction. The NHS number is checked again
/// inside that transaction under its database lock (the check of the
/// uniqueness rule, [`super::clash_in`]), so of two clerks registering one
/// number at once — on one server or several — exactly one succeeds.
pub fn register(
    svc: &FhirService,
    access: &dyn Access,
    p: &NewPatient,
    confirm_not_duplicate: bool,
) -> Result<PatientSummary, RegisterError> {
    let today = wardline_fhir::datetime::format_instant(wardline_fhir::datetime::now_ms());
    let errs = validate(p, &today[..10]);
    if !errs.is_empty() {
        return Err(RegisterError::Invalid(errs));
    }
    let mut resource = patient_resource(p);
    // Exact NHS number clash, as the clerk may see it: never a second record.
    if let Some(n) = wardline_fhir::nhs_number::normalise(p.nhs_number.trim()) {
        let same = super::fhir_search(
            svc,
            access,
            "Patient",
            vec![
                ("identifier".into(), format!("{NHS_NUMBER_SYSTEM}|{n}")),
                ("_count".into(), "5".into()),
            ],
        )?;
        if let Some(existing) = same.first() {
            let s = PatientSummary::from_resource(existing);
            return Err(RegisterError::Invalid(vec![FieldError {
                field: "nhs_number",
                message: format!(
                    "NHS number {} is already registered to {} (hospital number {}); find that record instead of registering a new one",
                    format_nhs_number(&n),
                    s.display_name,
                    s.hospital_number.as_deref().unwrap_or("none")
                ),
            }]));
        }
    }
    if !confirm_not_duplicate {
        let candidates = matching::candidates_for(svc, access, &resource, None)?;
        if !candidates.is_empty() {
            return Err(RegisterError::PossibleDuplicates(candidates));
        }
    }
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(wardline_core::audit::WARDLINE_SUBTYPE, "pmi-register", "C");
    // Under the number's lock, past what the clerk may see, and racing
    // registrations included.
    if let Some(c) = super::clash_in(&mut tx, None, &resource, None)? {
        return Err(RegisterError::Invalid(vec![FieldError {
            field: "nhs_number",
            message: c.message(),
        }]));
    }
    let scheme = super::hospital_numbers();
    let number = super::allocate_hospital_number(&mut tx, scheme)?;
    if let Some(o) = resource.as_object_mut()
        && let Some(ids) = o
            .entry("identifier")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
    {
        ids.push(scheme.identifier(&number));
    }
    let saved = tx.save(resource)?;
    tx.commit()?;
    Ok(PatientSummary::from_resource(&saved.resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> NewPatient {
        NewPatient {
            nhs_number: "943 476 5919".into(),
            family: "O'Brien-Smith".into(),
            given: "Mary Ann".into(),
            birth_date: "1970-01-31".into(),
            gender: "female".into(),
            address_line: "1 High Street".into(),
            city: "Leeds".into(),
            postcode: "ls14ap".into(),
            phone: "0113 496 0000".into(),
            ethnic_category: "B".into(),
        }
    }

    #[test]
    fn a_good_form_passes_and_builds_uk_core() {
        assert!(validate(&good(), "2024-06-01").is_empty());
        let v = patient_resource(&good());
        assert_eq!(v["identifier"][0]["value"], "9434765919");
        assert_eq!(
            v["identifier"][0]["extension"][0]["url"],
            NHS_VERIFICATION_EXTENSION
        );
        assert_eq!(v["name"][0]["given"], json!(["Mary", "Ann"]));
        assert_eq!(v["address"][0]["postalCode"], "LS1 4AP");
        assert_eq!(
            v["extension"][0]["url"],
            super::super::ETHNIC_CATEGORY_EXTENSION
        );
        assert_eq!(
            v["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
            "B"
        );
        let mut no_nhs = good();
        no_nhs.nhs_number = " ".into();
        assert!(validate(&no_nhs, "2024-06-01").is_empty());
        assert!(patient_resource(&no_nhs).get("identifier").is_none());
        let mut not_asked = good();
        not_asked.ethnic_category = String::new();
        assert!(validate(&not_asked, "2024-06-01").is_empty());
        assert!(patient_resource(&not_asked).get("extension").is_none());
    }

    #[test]
    fn every_field_is_named() {
        let bad = NewPatient {
            nhs_number: "943 476 5918".into(),
            family: "".into(),
            given: "J0hn".into(),
            birth_date: "2030-01-01".into(),
            gender: "m".into(),
            address_line: "".into(),
            city: "".into(),
            postcode: "12345".into(),
            phone: "12ab".into(),
            ethnic_category: "W".into(),
        };
        let errs = validate(&bad, "2024-06-01");
        let fields: Vec<&str> = errs.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "nhs_number",
                "family",
                "given",
                "birth_date",
                "gender",
                "ethnic_category",
                "postcode",
                "phone"
            ]
        );
        assert_eq!(
            errs[0].message,
            "943 476 5918 is not a valid NHS number: its check digit is wrong"
        );
        assert_eq!(errs[1].message, "Family name is required");
        assert!(errs[3].message.contains("in the future"));
        assert!(errs[6].message.starts_with("Postcode"));
        assert_eq!(
            errs[5].message,
            "Ethnic category 'W' is not one of the NHS ethnic categories"
        );
    }
}
