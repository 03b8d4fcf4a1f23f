//! The Patient Master Index: finding a patient, registering one, finding
//! and reviewing duplicate records, and merging (and unmerging) them.
//!
//! Everything goes through [`FhirService`] with the caller's [`Access`], so it
//! is authorised and audited like a REST interaction: searches are FHIR
//! searches (`GET Patient?…`), registration and merges are transactions.
//!
//! * **Search** ([`search`]): one box takes an NHS number (spaces allowed,
//!   Modulus 11 checked), a hospital number (of the trust's scheme, its
//!   check digit checked) or a name — `smith`, `john smi`,
//!   `Smith, John` — matched by prefix (`name=`) and by sound (`phonetic=`,
//!   Double Metaphone codes indexed by `wardline-fhir`), narrowed by date of
//!   birth, postcode and gender. Prefix matches come before sound-alikes;
//!   active records before retired (merged) ones, which say what replaced them.
//! * **Registration** ([`register`]): every field checked with a message
//!   naming it; a UK Core Patient (claiming the profile; NHS number with its
//!   verification status, official name, gender, birth date, home address,
//!   phone, the ethnic category as UK Core's extension); the trust's
//!   next hospital number ([`allocate_hospital_number`], in the scheme of
//!   [`hospital_numbers`]); an NHS number already on the index refused;
//!   possible duplicates returned for the clerk to look at unless they
//!   confirmed.
//! * **Uniqueness on every channel** ([`UniqueIdentifiers`], a core write
//!   rule registered by [`crate::with_rules`]): no write — REST, Bundle, HL7
//!   v2, import, workflow — gives a Patient an NHS number another active
//!   record holds, or a hospital number another record holds (422
//!   `duplicate`, naming that record); see `unique` for retired records.
//! * **Duplicates** ([`duplicates_of`], [`scan_duplicates`] (in batches of
//!   [`SCAN_BATCH`], each its own transaction), [`review_queue`],
//!   [`dismiss_review`]): candidates found by blocking searches (same NHS
//!   number, birth date, surname sound, postcode), scored by
//!   [`matching::compare`]; pairs in the probable band (score ≥
//!   [`DUPLICATE_THRESHOLD`]) or the possible one (≥ [`POSSIBLE_THRESHOLD`])
//!   become review `Task`s (code `duplicate-review`), read a page at a time
//!   strongest first; dismissed ones are never raised again.
//! * **Merge** ([`merge`], [`unmerge`]): `Patient/$merge` semantics with a
//!   `Provenance` recording exactly what was repointed, so that unmerge puts
//!   back those resources and only those.

pub mod matching;
mod merge;
mod numbers;
mod operation;
mod register;
mod review;
mod unique;

use serde::Serialize;
use serde_json::Value;
use wardline_core::{Access, FhirService};
use wardline_fhir::{FhirError, nhs_number};

pub use matching::{Band, Candidate, DUPLICATE_THRESHOLD, POSSIBLE_THRESHOLD, duplicates_of};
pub use merge::{MergeOutcome, merge, merge_in, unmerge};
pub use numbers::{
    allocate_hospital_number, configure_hospital_numbers, hospital_numbers, lookup_key,
};
pub use operation::{MERGE_DEFINITION, MergeOperation};
pub use register::{FieldError, NewPatient, RegisterError, register};
pub use review::{
    DUPLICATE_SCORE_SYSTEM, LastScan, REVIEW_PAGE_SIZE, Review, ReviewPage, SCAN_BATCH, ScanReport,
    dismiss_review, last_scan, review_queue, scan_duplicates, scan_duplicates_by,
};
pub use unique::{Clash, Kind as ClashKind, UniqueIdentifiers, clash_in};
pub use wardline_fhir::hospital_number::Scheme as HospitalNumberScheme;

/// The NHS number identifier system.
pub const NHS_NUMBER_SYSTEM: &str = wardline_fhir::NHS_NUMBER_SYSTEM;
/// The default scheme's hospital number (MRN) system; the trust's own is
/// `hospital_numbers().system()`, which search, display and allocation use.
pub const HOSPITAL_NUMBER_SYSTEM: &str = wardline_fhir::hospital_number::DEFAULT_SYSTEM;
/// UK Core: how far the NHS number has been verified.
pub const NHS_VERIFICATION_EXTENSION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
pub const NHS_VERIFICATION_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";
/// The UK Core Patient profile. Every Patient Wardline creates claims it,
/// so the core holds it to the profile on every write.
pub const UK_CORE_PATIENT: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
/// NHS Number Status Indicator Code (England): code, display.
pub const NHS_VERIFICATION_STATUSES: &[(&str, &str)] = &[
    ("01", "Number present and verified"),
    ("02", "Number present but not traced"),
    ("03", "Trace required"),
    ("04", "Trace attempted - No match or multiple match found"),
    (
        "05",
        "Trace needs to be resolved - (NHS number or patient detail conflict)",
    ),
    ("06", "Trace in progress"),
    ("07", "Number not present and trace not required"),
    ("08", "Trace postponed (baby under six weeks old)"),
];
/// An NHS number that a newer one replaced. UK Core allows one NHS number
/// per Patient (`identifier:nhsNumber` is `0..1`), so the replaced one is
/// kept under this system, `use` `old`, and lookups by NHS number try it
/// after the current ones.
pub const SUPERSEDED_NHS_NUMBER_SYSTEM: &str =
    "https://fhir.wardline.invalid/Id/superseded-nhs-number";
/// UK Core: the patient's ethnic category (on the Patient, at most once).
pub const ETHNIC_CATEGORY_EXTENSION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory";
/// NHS Data Dictionary ETHNIC CATEGORY (England), as UK Core names it.
pub const ETHNIC_CATEGORY_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland";
/// The ethnic categories of [`ETHNIC_CATEGORY_SYSTEM`]: code, display.
pub const ETHNIC_CATEGORIES: &[(&str, &str)] = &[
    ("A", "White - British"),
    ("B", "White - Irish"),
    ("C", "White - Any other White background"),
    ("D", "Mixed - White and Black Caribbean"),
    ("E", "Mixed - White and Black African"),
    ("F", "Mixed - White and Asian"),
    ("G", "Mixed - Any other mixed background"),
    ("H", "Asian or Asian British - Indian"),
    ("J", "Asian or Asian British - Pakistani"),
    ("K", "Asian or Asian British - Bangladeshi"),
    ("L", "Asian or Asian British - Any other Asian background"),
    ("M", "Black or Black British - Caribbean"),
    ("N", "Black or Black British - African"),
    ("P", "Black or Black British - Any other Black background"),
    ("R", "Other Ethnic Groups - Chinese"),
    ("S", "Other Ethnic Groups - Any other ethnic group"),
    ("Z", "Not stated"),
    ("99", "Not known"),
];

/// The UK Core NHS number verification status extension for `code` (one
/// of [`NHS_VERIFICATION_STATUSES`]).
pub fn nhs_verification_extension(code: &str) -> Option<Value> {
    let (code, display) = NHS_VERIFICATION_STATUSES.iter().find(|(c, _)| *c == code)?;
    Some(serde_json::json!({
        "url": NHS_VERIFICATION_EXTENSION,
        "valueCodeableConcept": {"coding": [{
            "system": NHS_VERIFICATION_SYSTEM, "code": code, "display": display}]}
    }))
}

/// The UK Core ethnic category extension for an England code (one of
/// [`ETHNIC_CATEGORIES`]).
pub fn ethnic_category_extension(code: &str) -> Option<Value> {
    let (code, display) = ETHNIC_CATEGORIES.iter().find(|(c, _)| *c == code)?;
    Some(serde_json::json!({
        "url": ETHNIC_CATEGORY_EXTENSION,
        "valueCodeableConcept": {"coding": [{
            "system": ETHNIC_CATEGORY_SYSTEM, "code": code, "display": display}]}
    }))
}
/// Wardline's task codes (shared with `wardline-auth`, whose policy lets
/// registration staff work [`DUPLICATE_REVIEW_CODE`] tasks).
pub const TASK_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/task";
pub const DUPLICATE_REVIEW_CODE: &str = "duplicate-review";
/// `Task.identifier` of a review: the two patient ids, sorted, joined by `:`.
pub const DUPLICATE_PAIR_SYSTEM: &str = "https://fhir.wardline.invalid/Id/duplicate-pair";

/// `"9434765919"` → `"943 476 5919"`. Input that is not ten digits (after
/// removing spaces and dashes) is returned trimmed, unchanged.
pub fn format_nhs_number(digits: &str) -> String {
    match nhs_number::normalise(digits) {
        Some(n) => format!("{} {} {}", &n[..3], &n[3..6], &n[6..]),
        None => digits.trim().to_owned(),
    }
}

/// Why a typed NHS number is not one, in plain English; `None` when valid.
pub fn nhs_number_problem(input: &str) -> Option<String> {
    let shown = input.trim();
    let Some(n) = nhs_number::normalise(input) else {
        let digits = input.chars().filter(char::is_ascii_digit).count();
        return Some(
            if input
                .chars()
                .any(|c| !c.is_ascii_digit() && c != ' ' && c != '-')
            {
                format!("'{shown}' is not an NHS number: it may contain only digits and spaces")
            } else {
                format!("'{shown}' is not an NHS number: it has {digits} digits, not 10")
            },
        );
    };
    if nhs_number::is_valid(&n) {
        return None;
    }
    let first: [u8; 9] = std::array::from_fn(|i| n.as_bytes()[i] - b'0');
    Some(match nhs_number::check_digit(&first) {
        None => format!(
            "{} is not a valid NHS number: no NHS number can begin with these 9 digits, so one of them is probably wrong",
            format_nhs_number(&n)
        ),
        Some(_) => format!(
            "{} is not a valid NHS number: its check digit is wrong",
            format_nhs_number(&n)
        ),
    })
}

/// What the user typed in the search box, plus the optional narrowing fields.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PatientQuery {
    /// NHS number (spaces allowed), hospital number, or name (partial, phonetic).
    pub text: String,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub postcode: Option<String>,
    pub gender: Option<String>,
}

/// A patient as lists and banners show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientSummary {
    pub id: String,
    /// Formatted `943 476 5919`.
    pub nhs_number: Option<String>,
    pub hospital_number: Option<String>,
    pub family: String,
    pub given: String,
    /// `SMITH, John`.
    pub display_name: String,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub postcode: Option<String>,
    /// Lines, town and postcode, comma-separated.
    pub address: Option<String>,
    pub active: bool,
    /// The patient this record was merged into.
    pub replaced_by: Option<String>,
    /// The clinical alerts the banner shows (issue 20), filled by
    /// [`summary`] (the read every patient page makes); `None` where a
    /// summary is built from a resource alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<crate::alerts::Banner>,
}

impl PatientSummary {
    /// From a Patient resource.
    pub fn from_resource(p: &Value) -> PatientSummary {
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let ident = |system: &str| {
            let ids = p.get("identifier").and_then(Value::as_array);
            let all: Vec<&Value> = ids
                .into_iter()
                .flatten()
                .filter(|i| i.get("system").and_then(Value::as_str) == Some(system))
                .collect();
            all.iter()
                .find(|i| i.get("use").and_then(Value::as_str) != Some("old"))
                .or(all.first())
                .and_then(|i| s(i, "value"))
        };
        let name = official_name(p);
        let family = name.and_then(|n| s(n, "family")).unwrap_or_default();
        let given = name
            .and_then(|n| n.get("given"))
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let display_name = match (family.is_empty(), given.is_empty()) {
            (false, false) => format!("{}, {given}", family.to_uppercase()),
            (false, true) => family.to_uppercase(),
            (true, false) => given.clone(),
            (true, true) => name
                .and_then(|n| s(n, "text"))
                .unwrap_or_else(|| "(no name)".into()),
        };
        let address = home_address(p);
        let postcode = address.and_then(|a| s(a, "postalCode"));
        let address_text = address.map(|a| {
            let mut parts: Vec<String> = a
                .get("line")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            parts.extend(s(a, "city"));
            parts.extend(postcode.clone());
            parts.join(", ")
        });
        let replaced_by = p
            .get("link")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|l| l.get("type").and_then(Value::as_str) == Some("replaced-by"))
            .and_then(|l| l.pointer("/other/reference"))
            .and_then(Value::as_str)
            .map(|r| r.rsplit('/').next().unwrap_or(r).to_owned());
        PatientSummary {
            id: s(p, "id").unwrap_or_default(),
            nhs_number: ident(NHS_NUMBER_SYSTEM).map(|n| format_nhs_number(&n)),
            hospital_number: ident(hospital_numbers().system()),
            family,
            given,
            display_name,
            birth_date: s(p, "birthDate"),
            gender: s(p, "gender"),
            postcode,
            address: address_text.filter(|a| !a.is_empty()),
            active: p.get("active").and_then(Value::as_bool) != Some(false),
            replaced_by,
            alerts: None,
        }
    }
}

/// The official name (else the first one not marked old).
pub(crate) fn official_name(p: &Value) -> Option<&Value> {
    let names = p.get("name").and_then(Value::as_array)?;
    names
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .or_else(|| {
            names
                .iter()
                .find(|n| n.get("use").and_then(Value::as_str) != Some("old"))
        })
        .or(names.first())
}

/// The home address (else the first one not marked old).
pub(crate) fn home_address(p: &Value) -> Option<&Value> {
    let a = p.get("address").and_then(Value::as_array)?;
    a.iter()
        .find(|x| x.get("use").and_then(Value::as_str) == Some("home"))
        .or_else(|| {
            a.iter()
                .find(|x| x.get("use").and_then(Value::as_str) != Some("old"))
        })
        .or(a.first())
}

/// A UK postcode written the usual way: upper case, one space before the
/// last three characters (`sw1a1aa` → `SW1A 1AA`). Other input is returned
/// upper-cased and trimmed.
pub fn canonical_postcode(s: &str) -> String {
    let compact: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    if (5..=7).contains(&compact.len()) && compact.is_ascii() {
        let (out, inw) = compact.split_at(compact.len() - 3);
        format!("{out} {inw}")
    } else {
        compact
    }
}

/// Whether `s` is shaped like a UK postcode (`A9 9AA`, `A99 9AA`, `A9A 9AA`,
/// `AA9 9AA`, `AA99 9AA`, `AA9A 9AA`).
pub fn is_postcode(s: &str) -> bool {
    let c = canonical_postcode(s);
    let Some((out, inw)) = c.split_once(' ') else {
        return false;
    };
    let ib = inw.as_bytes();
    let inward_ok = ib.len() == 3
        && ib[0].is_ascii_digit()
        && ib[1].is_ascii_uppercase()
        && ib[2].is_ascii_uppercase();
    let ob = out.as_bytes();
    let outward_ok = (2..=4).contains(&ob.len())
        && ob[0].is_ascii_uppercase()
        && ob.iter().all(u8::is_ascii_alphanumeric)
        && ob.iter().any(u8::is_ascii_digit);
    inward_ok && outward_ok
}

/// Checks a `YYYY-MM-DD` date: a real calendar date. The message names the field.
pub(crate) fn date_problem(field_label: &str, s: &str) -> Option<String> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Some(format!(
            "{field_label} must be a real date, with the day, month and year in numbers (for example 31 1 1970, or 1970-01-31), not '{s}'"
        ));
    }
    let y: i32 = s[..4].parse().unwrap_or(0);
    let m: u8 = s[5..7].parse().unwrap_or(0);
    let d: u8 = s[8..].parse().unwrap_or(0);
    let ok = time::Month::try_from(m)
        .ok()
        .and_then(|m| time::Date::from_calendar_date(y, m, d).ok())
        .is_some();
    if ok {
        None
    } else {
        Some(format!("{field_label} {s} is not a date in the calendar"))
    }
}

pub(crate) const GENDERS: [&str; 4] = ["male", "female", "other", "unknown"];

/// Runs a FHIR search for the caller (authorised and audited) and returns
/// the matched resources (refused ones are withheld by the service).
pub(crate) fn fhir_search(
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    params: Vec<(String, String)>,
) -> Result<Vec<Value>, FhirError> {
    Ok(svc.search_as(access, resource_type, &params)?.resources)
}

/// The patient with this id, if it exists and the caller may see it, with
/// the banner's clinical alerts as the caller may see them
/// ([`crate::alerts::banner`]: one search per kind, authorised and audited).
pub fn summary(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
) -> Result<Option<PatientSummary>, FhirError> {
    let Some(p) = svc.read_as(access, "Patient", id)? else {
        return Ok(None);
    };
    let mut s = PatientSummary::from_resource(&p);
    s.alerts = Some(crate::alerts::banner(svc, access, id)?);
    Ok(Some(s))
}

/// What the search box holds.
#[derive(Debug, PartialEq)]
enum Key {
    Nothing,
    Nhs(String),
    Hospital(String),
    Name(Vec<String>),
}

fn classify(text: &str) -> Result<Key, FhirError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Key::Nothing);
    }
    if t.chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        let digits: String = t.chars().filter(char::is_ascii_digit).collect();
        if digits.len() == 10 {
            return match nhs_number_problem(t) {
                None => Ok(Key::Nhs(digits)),
                Some(m) => Err(FhirError::invalid(m)),
            };
        }
        return Ok(Key::Hospital(digits));
    }
    if !t.contains(char::is_whitespace) && t.chars().any(|c| c.is_ascii_digit()) {
        return Ok(Key::Hospital(t.to_uppercase()));
    }
    let words: Vec<String> = t
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if words.is_empty() {
        return Ok(Key::Nothing);
    }
    Ok(Key::Name(words))
}

/// Finds patients: by NHS number, hospital number or name (prefix, then
/// sound-alike), narrowed by the optional fields; at most `limit`, active
/// records first.
pub fn search(
    svc: &FhirService,
    access: &dyn Access,
    q: &PatientQuery,
    limit: usize,
) -> Result<Vec<PatientSummary>, FhirError> {
    Ok(search_counted(svc, access, q, limit)?.patients)
}

/// What a patient search found for the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatientSearch {
    pub patients: Vec<PatientSummary>,
    /// Matches the caller's access does not cover (at least this many; not
    /// shown): staff outside the trust see only the patients related to
    /// their organisation, or found by an exact trace (NHS number and date
    /// of birth).
    pub withheld: usize,
}

/// [`search`], saying how many matches were withheld from the caller.
pub fn search_counted(
    svc: &FhirService,
    access: &dyn Access,
    q: &PatientQuery,
    limit: usize,
) -> Result<PatientSearch, FhirError> {
    let limit = limit.clamp(1, 200);
    let mut narrow: Vec<(String, String)> = Vec::new();
    if let Some(d) = q
        .birth_date
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        if let Some(m) = date_problem("Date of birth", d) {
            return Err(FhirError::invalid(m).at("birth_date"));
        }
        narrow.push(("birthdate".into(), d.to_owned()));
    }
    if let Some(p) = q
        .postcode
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        narrow.push(("address-postalcode".into(), canonical_postcode(p)));
    }
    if let Some(g) = q.gender.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        let g = g.to_lowercase();
        if !GENDERS.contains(&g.as_str()) {
            return Err(FhirError::invalid(format!(
                "Gender must be one of male, female, other or unknown, not '{g}'"
            ))
            .at("gender"));
        }
        narrow.push(("gender".into(), g));
    }
    let count = ("_count".to_owned(), limit.to_string());
    let mut runs: Vec<Vec<(String, String)>> = Vec::new();
    match classify(&q.text)? {
        Key::Nothing => {
            if narrow.is_empty() {
                return Err(FhirError::invalid(
                    "Enter an NHS number, a hospital number or a name to search for",
                )
                .at("text"));
            }
            runs.push(Vec::new());
        }
        Key::Nhs(n) => runs.push(vec![(
            "identifier".into(),
            format!("{NHS_NUMBER_SYSTEM}|{n}"),
        )]),
        Key::Hospital(h) => {
            let scheme = hospital_numbers();
            if let Some(m) = scheme.problem(&h) {
                return Err(FhirError::invalid(m).at("text"));
            }
            runs.push(vec![(
                "identifier".into(),
                format!("{}|{h}", scheme.system()),
            )])
        }
        Key::Name(words) => {
            runs.push(words.iter().map(|w| ("name".into(), w.clone())).collect());
            let sounds: Vec<(String, String)> = words
                .iter()
                .filter(|w| !wardline_fhir::phonetic::word_codes(w).is_empty())
                .map(|w| ("phonetic".into(), w.clone()))
                .collect();
            if !sounds.is_empty() {
                runs.push(sounds);
            }
        }
    }
    let mut out: Vec<PatientSummary> = Vec::new();
    let mut withheld = 0;
    for mut params in runs {
        if out.len() >= limit {
            break;
        }
        params.extend(narrow.iter().cloned());
        params.push(count.clone());
        let found = svc.search_as(access, "Patient", &params)?;
        // The runs overlap (prefix, then sound): the most any one withheld.
        withheld = withheld.max(found.withheld);
        for p in found.resources {
            let s = PatientSummary::from_resource(&p);
            if !out.iter().any(|o| o.id == s.id) {
                out.push(s);
            }
        }
    }
    // Stable: prefix matches before sound-alikes, active before retired.
    out.sort_by_key(|s| !s.active);
    out.truncate(limit);
    Ok(PatientSearch {
        patients: out,
        withheld,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_number_formatting_and_messages() {
        assert_eq!(format_nhs_number("9434765919"), "943 476 5919");
        assert_eq!(format_nhs_number("943 476 5919"), "943 476 5919");
        assert_eq!(format_nhs_number(" 12345 "), "12345");
        assert_eq!(nhs_number_problem("943 476 5919"), None);
        assert_eq!(
            nhs_number_problem("9434765918").as_deref(),
            Some("943 476 5918 is not a valid NHS number: its check digit is wrong")
        );
        assert_eq!(
            nhs_number_problem("12345").as_deref(),
            Some("'12345' is not an NHS number: it has 5 digits, not 10")
        );
        assert!(
            nhs_number_problem("94347659A9")
                .unwrap()
                .contains("only digits")
        );
        // Nine digits whose check digit would be 10.
        let bad = (0..1_000_000_000u32)
            .step_by(7919)
            .map(|n| format!("{n:09}"))
            .find(|n| {
                let d: [u8; 9] = std::array::from_fn(|i| n.as_bytes()[i] - b'0');
                nhs_number::check_digit(&d).is_none()
            })
            .unwrap();
        assert!(nhs_number_problem(&format!("{bad}0")).unwrap().contains(
            "no NHS number can begin with these 9 digits, so one of them is probably wrong"
        ));
    }

    #[test]
    fn postcodes() {
        assert_eq!(canonical_postcode("sw1a1aa"), "SW1A 1AA");
        assert_eq!(canonical_postcode(" LS1  4AP "), "LS1 4AP");
        assert!(is_postcode("M1 1AE"));
        assert!(is_postcode("ZZ99 3VZ"));
        assert!(is_postcode("ec1a1bb"));
        assert!(!is_postcode("12345"));
        assert!(!is_postcode("SW1A"));
        assert!(!is_postcode("LS1 AAA"));
    }

    #[test]
    fn dates() {
        assert_eq!(date_problem("Date of birth", "1970-01-31"), None);
        assert!(
            date_problem("Date of birth", "1970-02-30")
                .unwrap()
                .contains("not a date")
        );
        assert!(
            date_problem("Date of birth", "31/01/1970")
                .unwrap()
                .contains("day, month and year in numbers")
        );
    }

    #[test]
    fn search_box() {
        assert_eq!(
            classify("943 476 5919").unwrap(),
            Key::Nhs("9434765919".into())
        );
        assert!(classify("943 476 5918").is_err());
        assert_eq!(
            classify("w0000123").unwrap(),
            Key::Hospital("W0000123".into())
        );
        assert_eq!(classify("123456").unwrap(), Key::Hospital("123456".into()));
        assert_eq!(
            classify("Smith, John").unwrap(),
            Key::Name(vec!["Smith".into(), "John".into()])
        );
        assert_eq!(classify("  ").unwrap(), Key::Nothing);
    }

    #[test]
    fn summaries() {
        let p = serde_json::json!({"resourceType": "Patient", "id": "p1",
            "identifier": [
                {"system": NHS_NUMBER_SYSTEM, "value": "9434765919"},
                {"system": HOSPITAL_NUMBER_SYSTEM, "value": "W00000017"}],
            "name": [{"use": "old", "family": "Jones"}, {"use": "official", "family": "Smith", "given": ["John", "Paul"]}],
            "birthDate": "1970-01-31", "gender": "male",
            "address": [{"use": "home", "line": ["1 High St"], "city": "Leeds", "postalCode": "LS1 4AP"}],
            "active": false,
            "link": [{"type": "replaced-by", "other": {"reference": "Patient/p2"}}]});
        let s = PatientSummary::from_resource(&p);
        assert_eq!(s.display_name, "SMITH, John Paul");
        assert_eq!(s.nhs_number.as_deref(), Some("943 476 5919"));
        assert_eq!(s.hospital_number.as_deref(), Some("W00000017"));
        assert_eq!(s.address.as_deref(), Some("1 High St, Leeds, LS1 4AP"));
        assert_eq!(s.postcode.as_deref(), Some("LS1 4AP"));
        assert!(!s.active);
        assert_eq!(s.replaced_by.as_deref(), Some("p2"));
    }
}
