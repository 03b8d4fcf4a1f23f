//! Duplicate detection: blocking searches, then a scored comparison.
//!
//! **Blocking.** The candidates for a patient are those sharing at least one
//! of: the NHS number, the date of birth, a sound of the surname
//! (`phonetic=`), the postcode — four indexed FHIR searches, so scoring never
//! walks the whole index.
//!
//! **Scoring** ([`compare`]) is Fellegi–Sunter in spirit: each field adds a
//! weight (in bits, log₂ of how much likelier the observation is for the
//! same person than for two different people) when it agrees, partially
//! agrees, or disagrees; a missing field adds nothing. The sum `W` becomes a
//! score in 0..1 as `1 / (1 + 2^-(W - 8))`. The weights were set by hand from
//! what the fields mean, then checked against the labelled near-duplicate
//! generator of the integration tests (precision and recall printed there):
//!
//! | field | agree | partial | disagree |
//! |---|---|---|---|
//! | NHS number | +12 | — | −12 |
//! | hospital number | +10 | — | 0 |
//! | date of birth | +7 | +4 day/month transposed, +3.5 one digit off, +3 two adjacent digits swapped | −8 |
//! | surname (any current or old) | +5 | +3.5 Jaro–Winkler ≥ 0.92, +3 sounds alike | −2 (names change on marriage) |
//! | first name | +4 | +3 known short form (Bill/William), +2.5 similar or sounds alike, +1.5 initial | −7 |
//! | sex (male/female) | +0.5 | — | −4 |
//! | postcode | +3 | +1 same district | −0.5 (people move) |
//!
//! Twins share surname, birth date and address but not first names; a woman
//! who married shares first name and birth date but not surname: the first
//! name's disagreement weighs more than the surname's, so the second scores
//! above [`DUPLICATE_THRESHOLD`] and the first below.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use strsim::jaro_winkler;
use wardline_core::{Access, FhirService};
use wardline_fhir::FhirError;
use wardline_fhir::phonetic::{fold_name, sounds_alike};

use super::{
    HOSPITAL_NUMBER_SYSTEM, NHS_NUMBER_SYSTEM, PatientSummary, canonical_postcode, home_address,
    official_name,
};

/// Pairs scoring at least this are possible duplicates (W ≥ 10 bits).
pub const DUPLICATE_THRESHOLD: f64 = 0.8;

/// An existing patient who may be the same person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub patient: PatientSummary,
    /// 0..1.
    pub score: f64,
    /// Plain-English reasons, strongest first ("same date of birth").
    pub reasons: Vec<String>,
}

/// The outcome of comparing two records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub score: f64,
    /// Total weight in bits.
    pub weight: f64,
    pub reasons: Vec<String>,
}

/// The fields compared, folded.
#[derive(Debug, Clone, Default)]
struct Person {
    nhs: Option<String>,
    hospital: Vec<String>,
    /// Current (official) surname first, then other and old ones.
    families: Vec<String>,
    /// First given names of every name (official first).
    firsts: Vec<String>,
    /// `YYYYMMDD`.
    birth: Option<String>,
    sex: Option<String>,
    postcode: Option<String>,
}

fn person(p: &Value) -> Person {
    let mut out = Person::default();
    for i in p
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let value = i.get("value").and_then(Value::as_str).unwrap_or_default();
        match i.get("system").and_then(Value::as_str) {
            Some(NHS_NUMBER_SYSTEM) if out.nhs.is_none() => {
                out.nhs = wardline_fhir::nhs_number::normalise(value);
            }
            Some(HOSPITAL_NUMBER_SYSTEM) if !value.is_empty() => {
                out.hospital.push(value.to_uppercase())
            }
            _ => {}
        }
    }
    let mut names: Vec<&Value> = official_name(p).into_iter().collect();
    for n in p
        .get("name")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !names.iter().any(|x| std::ptr::eq(*x, n)) {
            names.push(n);
        }
    }
    for n in names {
        if let Some(f) = n.get("family").and_then(Value::as_str) {
            let f = fold_name(f);
            if !f.is_empty() && !out.families.contains(&f) {
                out.families.push(f);
            }
        }
        if let Some(g) = n
            .get("given")
            .and_then(Value::as_array)
            .and_then(|g| g.first())
            .and_then(Value::as_str)
        {
            let g = fold_name(g);
            if !g.is_empty() && !out.firsts.contains(&g) {
                out.firsts.push(g);
            }
        }
    }
    out.birth = p
        .get("birthDate")
        .and_then(Value::as_str)
        .filter(|d| d.len() == 10)
        .map(|d| d.replace('-', ""));
    out.sex = p
        .get("gender")
        .and_then(Value::as_str)
        .filter(|g| matches!(*g, "male" | "female"))
        .map(str::to_owned);
    out.postcode = home_address(p)
        .and_then(|a| a.get("postalCode"))
        .and_then(Value::as_str)
        .map(canonical_postcode)
        .filter(|c| !c.is_empty());
    out
}

/// Common English short forms, each group one name.
const NICKNAMES: &[&[&str]] = &[
    &["WILLIAM", "BILL", "BILLY", "WILL", "WILLIE", "LIAM"],
    &["ROBERT", "BOB", "BOBBY", "ROB", "ROBBIE", "BERT"],
    &["RICHARD", "DICK", "RICK", "RICKY", "RICHIE"],
    &[
        "ELIZABETH",
        "LIZ",
        "LIZZIE",
        "BETH",
        "BETTY",
        "ELIZA",
        "LIBBY",
        "BESS",
    ],
    &["MARGARET", "MAGGIE", "MEG", "PEGGY", "MARGE", "MAISIE"],
    &["JAMES", "JIM", "JIMMY", "JAMIE"],
    &["JOHN", "JACK", "JOHNNY", "JON"],
    &[
        "KATHERINE",
        "CATHERINE",
        "KATHRYN",
        "KATE",
        "KATIE",
        "KATHY",
        "CATH",
        "KAT",
    ],
    &["MICHAEL", "MIKE", "MICK", "MICKY", "MIKEY"],
    &["THOMAS", "TOM", "TOMMY"],
    &["ANTHONY", "TONY"],
    &["EDWARD", "ED", "EDDIE", "TED", "TEDDY", "NED"],
    &["CHRISTOPHER", "CHRIS", "KIT"],
    &["CHRISTINE", "CHRISTINA", "CHRIS", "TINA"],
    &["ALEXANDER", "ALEX", "SANDY", "ALEC", "XANDER"],
    &["ALEXANDRA", "ALEX", "SANDRA", "LEXI"],
    &["SUSAN", "SUE", "SUSIE", "SUZANNE"],
    &["JENNIFER", "JEN", "JENNY"],
    &["PATRICIA", "PAT", "TRISH", "PATSY"],
    &["PATRICK", "PAT", "PADDY"],
    &["DANIEL", "DAN", "DANNY"],
    &["DAVID", "DAVE", "DAVY"],
    &["JOSEPH", "JOE", "JOEY"],
    &["SAMUEL", "SAM", "SAMMY"],
    &["SAMANTHA", "SAM", "SAMMY"],
    &["BENJAMIN", "BEN", "BENNY"],
    &["MATTHEW", "MATT"],
    &["ANDREW", "ANDY", "DREW"],
    &["STEPHEN", "STEVEN", "STEVE"],
    &["PETER", "PETE"],
    &["NICHOLAS", "NICK", "NICKY"],
    &["REBECCA", "BECKY", "BECCA"],
    &["DEBORAH", "DEBBIE", "DEB"],
    &["VICTORIA", "VICKY", "TORI"],
    &["CHARLOTTE", "CHARLIE", "LOTTIE"],
    &["CHARLES", "CHARLIE", "CHAS", "CHUCK"],
    &["HENRY", "HARRY", "HAL"],
    &["FREDERICK", "FRED", "FREDDIE"],
    &["ALFRED", "ALF", "ALFIE"],
    &["ABIGAIL", "ABBY", "ABBIE"],
    &["JACQUELINE", "JACKIE"],
    &["GERALD", "GERRY"],
    &["TERENCE", "TERRY"],
    &["LAWRENCE", "LARRY", "LAURIE"],
    &["LEONARD", "LEN", "LENNY"],
    &["RONALD", "RON", "RONNIE"],
    &["DONALD", "DON", "DONNIE"],
    &["ELEANOR", "ELLIE", "NELL", "NELLIE"],
    &["HELEN", "NELL"],
    &["ANNE", "ANN", "ANNIE", "ANNA"],
    &["MARY", "MOLLY", "POLLY"],
    &["SARAH", "SARA", "SALLY"],
    &["JOSEPHINE", "JO", "JOSIE"],
    &["GEORGE", "GEORDIE"],
    &["ARTHUR", "ART", "ARTIE"],
];

fn nicknames(a: &str, b: &str) -> bool {
    NICKNAMES.iter().any(|g| g.contains(&a) && g.contains(&b))
}

/// How two dates of birth (`YYYYMMDD`) relate.
fn birth_relation(a: &str, b: &str) -> Option<(&'static str, f64)> {
    if a == b {
        return Some(("same date of birth", 7.0));
    }
    if a.len() != 8 || b.len() != 8 {
        return None;
    }
    if a[..4] == b[..4] && a[4..6] == b[6..8] && a[6..8] == b[4..6] {
        return Some(("day and month of birth transposed", 4.0));
    }
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let diffs: Vec<usize> = (0..8).filter(|&i| ab[i] != bb[i]).collect();
    if diffs.len() == 1 {
        return Some(("date of birth differs by one digit", 3.5));
    }
    if diffs.len() == 2 && diffs[1] == diffs[0] + 1 {
        let i = diffs[0];
        if ab[i] == bb[i + 1] && ab[i + 1] == bb[i] {
            return Some(("date of birth has two digits swapped", 3.0));
        }
    }
    None
}

/// Compares two Patient resources: the score in 0..1 and why.
pub fn compare(a: &Value, b: &Value) -> Match {
    compare_people(&person(a), &person(b))
}

fn compare_people(a: &Person, b: &Person) -> Match {
    let mut w = 0.0;
    // (weight, reason): reasons listed strongest evidence first.
    let mut why: Vec<(f64, String)> = Vec::new();
    let mut add = |weight: f64, reason: &str| {
        w += weight;
        if !reason.is_empty() {
            why.push((weight, reason.to_owned()));
        }
    };
    if let (Some(x), Some(y)) = (&a.nhs, &b.nhs) {
        if x == y {
            add(12.0, "same NHS number");
        } else {
            add(-12.0, "different NHS numbers");
        }
    }
    if a.hospital.iter().any(|h| b.hospital.contains(h)) {
        add(10.0, "same hospital number");
    }
    if let (Some(x), Some(y)) = (&a.birth, &b.birth) {
        match birth_relation(x, y) {
            Some((reason, weight)) => add(weight, reason),
            None => add(-8.0, "different date of birth"),
        }
    }
    if !a.families.is_empty() && !b.families.is_empty() {
        let best = best_pair(
            &a.families,
            &b.families,
            (-2.0, "different surname"),
            |i, x, j, y| {
                let current = i == 0 && j == 0;
                Some(if x == y {
                    (
                        5.0,
                        if current {
                            "same surname"
                        } else {
                            "same surname as a previous name"
                        },
                    )
                } else if jaro_winkler(x, y) >= 0.92 {
                    (3.5, "surname spelled similarly")
                } else if sounds_alike(x, y) {
                    (3.0, "surname sounds alike")
                } else {
                    return None;
                })
            },
        );
        add(best.0, best.1);
    }
    if !a.firsts.is_empty() && !b.firsts.is_empty() {
        let best = best_pair(
            &a.firsts,
            &b.firsts,
            (-7.0, "different first name"),
            |_, x, _, y| {
                Some(if x == y {
                    (4.0, "same first name")
                } else if nicknames(x, y) {
                    (3.0, "first name is a short form of the other")
                } else if jaro_winkler(x, y) >= 0.9 {
                    (2.5, "first name spelled similarly")
                } else if sounds_alike(x, y) {
                    (2.5, "first name sounds alike")
                } else if (x.len() == 1 || y.len() == 1) && x[..1] == y[..1] {
                    (1.5, "same first initial")
                } else {
                    return None;
                })
            },
        );
        add(best.0, best.1);
    }
    if let (Some(x), Some(y)) = (&a.sex, &b.sex) {
        if x == y {
            add(0.5, "");
        } else {
            add(-4.0, "different sex");
        }
    }
    if let (Some(x), Some(y)) = (&a.postcode, &b.postcode) {
        if x == y {
            add(3.0, "same postcode");
        } else if x.split(' ').next() == y.split(' ').next() {
            add(1.0, "same postcode district");
        } else {
            add(-0.5, "different postcode");
        }
    }
    why.sort_by(|x, y| y.0.abs().total_cmp(&x.0.abs()));
    let score = 1.0 / (1.0 + (-(w - 8.0_f64)).exp2());
    Match {
        score,
        weight: w,
        reasons: why.into_iter().map(|(_, r)| r).collect(),
    }
}

/// The blocking searches for a patient: (param, value) pairs, each one search.
pub(crate) fn blocking_keys(p: &Value) -> Vec<Vec<(String, String)>> {
    let who = person(p);
    let mut keys = Vec::new();
    if let Some(n) = &who.nhs {
        keys.push(vec![(
            "identifier".into(),
            format!("{NHS_NUMBER_SYSTEM}|{n}"),
        )]);
    }
    let birth = p
        .get("birthDate")
        .and_then(Value::as_str)
        .filter(|d| d.len() == 10);
    if let Some(d) = birth {
        keys.push(vec![("birthdate".into(), d.to_owned())]);
    }
    for f in &who.families {
        if !wardline_fhir::phonetic::word_codes(f).is_empty() {
            // A common surname's sound alone matches thousands of records
            // in a large index, more than a block brings back: narrowed to
            // the birth year (a wrong day or month is still found; a wrong
            // year is left to the birth-date and postcode blocks).
            let mut key = vec![("phonetic".to_owned(), f.clone())];
            if let Some(d) = birth {
                key.push(("birthdate".into(), d[..4].to_owned()));
            }
            keys.push(key);
        }
    }
    if let Some(pc) = &who.postcode {
        keys.push(vec![("address-postalcode".into(), pc.clone())]);
    }
    keys
}

/// How many patients one blocking search brings back at most.
pub(crate) const BLOCK_SIZE: usize = 200;

/// Scores the candidates a `find` (one search per blocking key) brings back
/// for `p`: active records other than `p` itself, at or above the
/// threshold, best first.
pub(crate) fn score_candidates(
    p: &Value,
    self_id: Option<&str>,
    mut find: impl FnMut(Vec<(String, String)>) -> Result<Vec<Value>, FhirError>,
) -> Result<Vec<(Value, Match)>, FhirError> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for mut key in blocking_keys(p) {
        key.push(("_count".into(), BLOCK_SIZE.to_string()));
        for other in find(key)? {
            let Some(id) = other.get("id").and_then(Value::as_str) else {
                continue;
            };
            if Some(id) == self_id || !seen.insert(id.to_owned()) {
                continue;
            }
            if other.get("active").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let m = compare(p, &other);
            if m.score >= DUPLICATE_THRESHOLD {
                out.push((other, m));
            }
        }
    }
    out.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    Ok(out)
}

/// Candidates for a (possibly not yet stored) Patient, through searches for the caller.
pub(crate) fn candidates_for(
    svc: &FhirService,
    access: &dyn Access,
    p: &Value,
    self_id: Option<&str>,
) -> Result<Vec<Candidate>, FhirError> {
    Ok(score_candidates(p, self_id, |params| {
        super::fhir_search(svc, access, "Patient", params)
    })?
    .into_iter()
    .map(|(v, m)| Candidate {
        patient: PatientSummary::from_resource(&v),
        score: m.score,
        reasons: m.reasons,
    })
    .collect())
}

/// Existing active patients who may be the same person as patient `id`, best first.
pub fn duplicates_of(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
) -> Result<Vec<Candidate>, FhirError> {
    let p = svc
        .read_as(access, "Patient", id)?
        .ok_or_else(|| FhirError::not_found(format!("Patient/{id} does not exist")))?;
    candidates_for(svc, access, &p, Some(id))
}

/// The best grade of any pair of names (`grade` gets each name's index and
/// text, `None` when the pair says nothing), or `worst` when no pair grades
/// higher.
fn best_pair(
    xs: &[String],
    ys: &[String],
    worst: (f64, &'static str),
    grade: impl Fn(usize, &str, usize, &str) -> Option<(f64, &'static str)>,
) -> (f64, &'static str) {
    let mut best = worst;
    for (i, x) in xs.iter().enumerate() {
        for (j, y) in ys.iter().enumerate() {
            if let Some(g) = grade(i, x, j, y)
                && g.0 > best.0
            {
                best = g;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn pat(nhs: Option<&str>, family: &str, given: &str, dob: &str, sex: &str, pc: &str) -> Value {
        let mut v = json!({"resourceType": "Patient",
            "name": [{"use": "official", "family": family, "given": [given]}],
            "birthDate": dob, "gender": sex,
            "address": [{"use": "home", "postalCode": pc}]});
        if let Some(n) = nhs {
            v["identifier"] = json!([{"system": NHS_NUMBER_SYSTEM, "value": n}]);
        }
        v
    }

    #[test]
    fn dates_of_birth() {
        assert_eq!(birth_relation("19700131", "19700131").unwrap().1, 7.0);
        assert_eq!(
            birth_relation("19700203", "19700302").unwrap().0,
            "day and month of birth transposed"
        );
        assert_eq!(birth_relation("19700131", "19700121").unwrap().1, 3.5);
        assert_eq!(birth_relation("19780131", "19870131").unwrap().1, 3.0);
        assert!(birth_relation("19700131", "19821105").is_none());
    }

    #[test]
    fn the_same_person_scores_high_with_reasons() {
        let a = pat(
            Some("9434765919"),
            "Smith",
            "John",
            "1970-01-31",
            "male",
            "LS1 4AP",
        );
        let b = pat(None, "Smyth", "Jon", "1970-01-31", "male", "LS1 4AP");
        let m = compare(&a, &b);
        assert!(m.score > 0.99, "{m:?}");
        assert_eq!(m.reasons[0], "same date of birth");
        assert!(
            m.reasons.contains(&"surname sounds alike".to_owned())
                || m.reasons.contains(&"surname spelled similarly".to_owned()),
            "{m:?}"
        );
        // Symmetric.
        assert_eq!(compare(&b, &a).score, m.score);
    }

    #[test]
    fn different_nhs_numbers_and_twins_score_low() {
        let a = pat(
            Some("9434765919"),
            "Smith",
            "John",
            "1970-01-31",
            "male",
            "LS1 4AP",
        );
        let b = pat(
            Some("4010232137"),
            "Smith",
            "John",
            "1970-01-31",
            "male",
            "LS1 4AP",
        );
        let m = compare(&a, &b);
        assert!(m.score < DUPLICATE_THRESHOLD, "{m:?}");
        assert!(m.reasons.contains(&"different NHS numbers".to_owned()));
        let twin1 = pat(None, "Patel", "Ravi", "2001-05-05", "male", "M1 1AE");
        let twin2 = pat(None, "Patel", "Arjun", "2001-05-05", "male", "M1 1AE");
        let m = compare(&twin1, &twin2);
        assert!(m.score < DUPLICATE_THRESHOLD, "{m:?}");
        assert!(m.reasons.contains(&"different first name".to_owned()));
    }

    #[test]
    fn married_name_change_is_still_found() {
        let mut a = pat(None, "Jones", "Sarah", "1985-07-14", "female", "CF10 1AA");
        let b = pat(
            None,
            "Williams",
            "Sarah",
            "1985-07-14",
            "female",
            "CF10 1AA",
        );
        assert!(compare(&a, &b).score >= DUPLICATE_THRESHOLD);
        // With the maiden name on record as an old name, stronger still.
        a["name"]
            .as_array_mut()
            .unwrap()
            .push(json!({"use": "maiden", "family": "Williams"}));
        let m = compare(&a, &b);
        assert!(
            m.reasons
                .contains(&"same surname as a previous name".to_owned()),
            "{m:?}"
        );
    }

    #[test]
    fn nicknames_and_initials() {
        assert!(nicknames("BILL", "WILLIAM"));
        assert!(!nicknames("BILL", "ROBERT"));
        let a = pat(None, "Brown", "William", "1950-03-03", "male", "SW1A 1AA");
        let b = pat(None, "Brown", "Bill", "1950-03-03", "male", "SW1A 2AA");
        let m = compare(&a, &b);
        assert!(
            m.reasons
                .contains(&"first name is a short form of the other".to_owned()),
            "{m:?}"
        );
        assert!(
            m.reasons.contains(&"same postcode district".to_owned()),
            "{m:?}"
        );
        assert!(m.score >= DUPLICATE_THRESHOLD);
    }

    #[test]
    fn blocking_keys_cover_the_four_blocks() {
        let a = pat(
            Some("9434765919"),
            "Smith",
            "John",
            "1970-01-31",
            "male",
            "ls1 4ap",
        );
        let keys: Vec<Vec<String>> = blocking_keys(&a)
            .into_iter()
            .map(|k| k.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
            .collect();
        assert_eq!(
            keys,
            vec![
                vec!["identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919".to_owned()],
                vec!["birthdate=1970-01-31".to_owned()],
                vec!["phonetic=SMITH".to_owned(), "birthdate=1970".to_owned()],
                vec!["address-postalcode=LS1 4AP".to_owned()],
            ]
        );
    }

    proptest! {
        /// Arbitrary names and dates: no panic, a score in 0..1, symmetric.
        #[test]
        fn compare_is_total(f1 in "\\PC{0,12}", f2 in "\\PC{0,12}", g1 in "\\PC{0,8}", g2 in "\\PC{0,8}",
                            d1 in "[0-9-]{0,10}", d2 in "[0-9-]{0,10}") {
            let a = pat(None, &f1, &g1, &d1, "male", &f2);
            let b = pat(None, &f2, &g2, &d2, "female", &g1);
            let m = compare(&a, &b);
            prop_assert!((0.0..=1.0).contains(&m.score));
            prop_assert!((compare(&b, &a).score - m.score).abs() < 1e-12);
        }
    }
}
