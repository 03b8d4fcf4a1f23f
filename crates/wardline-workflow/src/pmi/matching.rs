//! Duplicate detection: blocking searches, then a scored comparison.
//!
//! **Blocking.** The candidates for a patient are those sharing at least one
//! of: the NHS number, the date of birth, a sound of the surname
//! (`phonetic=`), the postcode — four indexed FHIR searches, so scoring never
//! walks the whole index.
//!
//! **Scoring** ([`compare`]) is Fellegi–Sunter in spirit: each field adds a
//! weight (in bits, log₂ of how much likelier the observation is for the
//! same person than for two different people) graded by how closely it
//! agrees; a missing field adds nothing. The sum `W` becomes a score in 0..1
//! as `1 / (1 + 2^-(W - 8))`. The weights were set from what the fields mean,
//! then checked against two labelled sets: the near-duplicate and look-alike
//! generator of the integration tests (twins, parent and child, namesakes),
//! and the external FEBRL sets (`scripts/bench-matching.sh`, BENCHMARKS.md).
//! "Spelled similarly" is one edit apart (a letter changed, dropped, added,
//! or two swapped: `osa_distance`), or Jaro–Winkler ≥ 0.92; "partly alike"
//! is Jaro–Winkler ≥ 0.85.
//!
//! | field | agree | partial | disagree |
//! |---|---|---|---|
//! | NHS number | +12 | — | −12 |
//! | hospital number | +10 | — | 0 |
//! | date of birth | +7 | +4.5 day/month transposed, +3.5 one digit off, +3 two adjacent digits swapped | −5.5 |
//! | surname (any current or old) | +5 | +4 one edit, +3.5 Jaro–Winkler ≥ 0.92, +3 sounds alike, +1 partly alike | −2 (names change on marriage) |
//! | first name (any given name) | +4 | +3 short form (Bill/William) or one edit, +2.5 sounds alike, +2 Jaro–Winkler ≥ 0.92, +2.5 a middle name, +1.5 initial, −2 partly alike | −8 |
//! | sex (male/female) | +0.5 | — | −4 |
//! | postcode | +3 | +1 same district (UK), else +1.5 one character | −0.5 (people move) |
//! | address lines | +3 | +2 spelled similarly, +0.5 same street and another house number | 0 |
//! | town | +1 | +0.5 spelled similarly | 0 |
//!
//! The three parts of the address count together for at most +5 (a
//! household shares all three). Given name and surname are also compared
//! crosswise (each part graded against the other record's other part, +4.5
//! the same, +3.5 one edit, +3 sounds alike, less 1 for the swap), and the
//! better of the two readings counts.
//!
//! **Bands.** `W ≥ 10` (score ≥ [`DUPLICATE_THRESHOLD`]) is a *probable*
//! duplicate; `W ≥ 6` (score ≥ [`POSSIBLE_THRESHOLD`]) a *possible* one
//! when at least three of surname, first name, date of birth and address
//! agree; both are queued for review, probable first. Twins share surname, birth
//! date and address but not first names; a parent and child of the same name
//! share the address but not the birth date: the clear disagreement of a
//! first name (−8) or a birth date (−5.5) keeps both below *probable* even
//! at the same address, where a record whose first name or birth date was
//! replaced by a keying error scores the same and is queued as *possible*
//! for a person to decide. Namesakes elsewhere (same name and birth year,
//! or same surname and birth date, another address) stay below both bands.
//! A woman who married shares first name and birth date but not surname:
//! the first name's disagreement weighs more than the surname's.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use strsim::{jaro_winkler, osa_distance};
use wardline_core::{Access, FhirService};
use wardline_fhir::FhirError;
use wardline_fhir::phonetic::{fold_name, sounds_alike};

use super::{NHS_NUMBER_SYSTEM, PatientSummary, canonical_postcode, home_address, official_name};

/// Pairs scoring at least this are probable duplicates (W ≥ 10 bits).
pub const DUPLICATE_THRESHOLD: f64 = 0.8;
/// Pairs scoring at least this (W ≥ 6 bits) and below
/// [`DUPLICATE_THRESHOLD`] are possible duplicates.
pub const POSSIBLE_THRESHOLD: f64 = 0.2;
/// The weights (bits) of the two thresholds.
const PROBABLE_WEIGHT: f64 = 10.0;
const POSSIBLE_WEIGHT: f64 = 6.0;

/// How strongly a pair looks like one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// Below [`DUPLICATE_THRESHOLD`], at or above [`POSSIBLE_THRESHOLD`].
    Possible,
    /// At or above [`DUPLICATE_THRESHOLD`].
    Probable,
}

impl Band {
    /// The band of a score, `None` below [`POSSIBLE_THRESHOLD`] (a score
    /// read back rounded to thousandths is taken at its word).
    pub fn of(score: f64) -> Option<Band> {
        if score >= DUPLICATE_THRESHOLD - 5e-4 {
            Some(Band::Probable)
        } else if score >= POSSIBLE_THRESHOLD - 5e-4 {
            Some(Band::Possible)
        } else {
            None
        }
    }

    /// The band of a comparison: its total weight in bits, and how many of
    /// surname, first name, date of birth and address agree. A possible
    /// duplicate agrees on at least three: a name and a birth date alone, a
    /// first name and a birth date alone, are shared by too many strangers
    /// in a large index to be worth a person's time.
    fn of_evidence(w: f64, agreements: usize) -> Option<Band> {
        if w >= PROBABLE_WEIGHT {
            Some(Band::Probable)
        } else if w >= POSSIBLE_WEIGHT && agreements >= 3 {
            Some(Band::Possible)
        } else {
            None
        }
    }

    /// `probable` or `possible` (as stored in a review Task).
    pub fn code(self) -> &'static str {
        match self {
            Band::Probable => "probable",
            Band::Possible => "possible",
        }
    }

    /// From [`Band::code`].
    pub fn from_code(code: &str) -> Option<Band> {
        match code {
            "probable" => Some(Band::Probable),
            "possible" => Some(Band::Possible),
            _ => None,
        }
    }

    /// "Probable duplicate" or "Possible duplicate".
    pub fn label(self) -> &'static str {
        match self {
            Band::Probable => "Probable duplicate",
            Band::Possible => "Possible duplicate",
        }
    }
}

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
    /// Probable, possible, or neither.
    pub band: Option<Band>,
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
    /// The other given names (middle names).
    middles: Vec<String>,
    /// `YYYYMMDD`.
    birth: Option<String>,
    sex: Option<String>,
    postcode: Option<String>,
    address: Option<Address>,
}

/// The home address's lines and town, folded.
#[derive(Debug, Clone, Default, PartialEq)]
struct Address {
    /// The words of the lines that hold a digit (house and flat numbers), sorted.
    numbers: Vec<String>,
    /// The other words of the lines, upper case, without spaces.
    street: String,
    /// The town, upper case, without spaces.
    town: String,
}

fn address(a: &Value) -> Option<Address> {
    let mut words: Vec<String> = Vec::new();
    for l in a
        .get("line")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        words.extend(
            wardline_fhir::index::normalise_string(l)
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_uppercase),
        );
    }
    let (mut numbers, street): (Vec<String>, Vec<String>) = words
        .into_iter()
        .partition(|w| w.chars().any(|c| c.is_ascii_digit()));
    numbers.sort();
    numbers.dedup();
    let town = a
        .get("city")
        .and_then(Value::as_str)
        .map(|c| {
            wardline_fhir::index::normalise_string(c)
                .replace(' ', "")
                .to_uppercase()
        })
        .unwrap_or_default();
    let out = Address {
        numbers,
        street: street.concat(),
        town,
    };
    (out != Address::default()).then_some(out)
}

fn person(p: &Value) -> Person {
    let mut out = Person::default();
    // The trust's hospital numbers, whatever its scheme's system.
    let hospital_system = super::hospital_numbers().system();
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
            Some(system) if system == hospital_system && !value.is_empty() => {
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
        let givens = n.get("given").and_then(Value::as_array);
        for (i, g) in givens
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .enumerate()
        {
            let g = fold_name(g);
            let list = if i == 0 {
                &mut out.firsts
            } else {
                &mut out.middles
            };
            if !g.is_empty() && !list.contains(&g) {
                list.push(g);
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
    let home = home_address(p);
    out.postcode = home
        .and_then(|a| a.get("postalCode"))
        .and_then(Value::as_str)
        .map(canonical_postcode)
        .filter(|c| !c.is_empty());
    out.address = home.and_then(address);
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

/// How two dates of birth (`YYYYMMDD`) relate: (reason, weight).
fn birth_relation(a: &str, b: &str) -> (&'static str, f64) {
    const DIFFERENT: (&str, f64) = ("different date of birth", -5.5);
    if a == b {
        return ("same date of birth", 7.0);
    }
    if a.len() != 8 || b.len() != 8 {
        return DIFFERENT;
    }
    if a[..4] == b[..4] && a[4..6] == b[6..8] && a[6..8] == b[4..6] {
        return ("day and month of birth transposed", 4.5);
    }
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let diffs: Vec<usize> = (0..8).filter(|&i| ab[i] != bb[i]).collect();
    if diffs.len() == 1 {
        return ("date of birth differs by one digit", 3.5);
    }
    if diffs.len() == 2 && diffs[1] == diffs[0] + 1 {
        let i = diffs[0];
        if ab[i] == bb[i + 1] && ab[i + 1] == bb[i] {
            return ("date of birth has two digits swapped", 3.0);
        }
    }
    DIFFERENT
}

/// One keying error apart: a letter changed, dropped or added, or two
/// neighbours swapped (names of at least three letters).
fn one_edit(x: &str, y: &str) -> bool {
    x.len().min(y.len()) >= 3 && osa_distance(x, y) == 1
}

/// A surname against a surname: `None` when they say nothing for the pair.
fn surname_grade(x: &str, y: &str, current: bool) -> Option<(f64, &'static str)> {
    Some(if x == y {
        (
            5.0,
            if current {
                "same surname"
            } else {
                "same surname as a previous name"
            },
        )
    } else if one_edit(x, y) {
        (4.0, "surname spelled similarly")
    } else if jaro_winkler(x, y) >= 0.92 {
        (3.5, "surname spelled similarly")
    } else if sounds_alike(x, y) {
        (3.0, "surname sounds alike")
    } else if jaro_winkler(x, y) >= 0.85 {
        (1.0, "surname partly alike")
    } else {
        return None;
    })
}

/// A first name against a first name.
fn first_name_grade(x: &str, y: &str) -> Option<(f64, &'static str)> {
    Some(if x == y {
        (4.0, "same first name")
    } else if nicknames(x, y) {
        (3.0, "first name is a short form of the other")
    } else if one_edit(x, y) {
        (3.0, "first name spelled similarly")
    } else if sounds_alike(x, y) {
        (2.5, "first name sounds alike")
    } else if jaro_winkler(x, y) >= 0.92 {
        (2.0, "first name spelled similarly")
    } else if (x.len() == 1 || y.len() == 1) && x[..1] == y[..1] {
        (1.5, "same first initial")
    } else if jaro_winkler(x, y) >= 0.85 {
        (-2.0, "first name partly alike")
    } else {
        return None;
    })
}

/// A name part against the other record's other part (given name and
/// surname swapped): the same scale both ways, so the comparison is symmetric.
fn crossed_grade(x: &str, y: &str) -> Option<f64> {
    Some(if x == y {
        4.5
    } else if one_edit(x, y) {
        3.5
    } else if sounds_alike(x, y) {
        3.0
    } else {
        return None;
    })
}

/// Weights from which a name part counts as agreeing (for the possible band).
const NAME_AGREES: f64 = 1.5;

/// The names: surname and first name read straight, or crosswise when that
/// reads better. Each entry is (weight, reason), empty when a side has no
/// name; and how many of the two parts agree.
fn names(a: &Person, b: &Person) -> (Vec<(f64, &'static str)>, usize) {
    let mut straight = Vec::new();
    if !a.families.is_empty() && !b.families.is_empty() {
        straight.push(best_pair(
            &a.families,
            &b.families,
            (-2.0, "different surname"),
            |i, x, j, y| surname_grade(x, y, i == 0 && j == 0),
        ));
    }
    if !a.firsts.is_empty() && !b.firsts.is_empty() {
        let mut best = best_pair(
            &a.firsts,
            &b.firsts,
            (-8.0, "different first name"),
            |_, x, _, y| first_name_grade(x, y),
        );
        // A first name that is the other record's middle name.
        for (xs, ys) in [(&a.firsts, &b.middles), (&b.firsts, &a.middles)] {
            if best.0 < 2.5 && xs.iter().any(|x| ys.contains(x)) {
                best = (2.5, "first name is a middle name of the other");
            }
        }
        straight.push(best);
    }
    let total = |v: &[(f64, &str)]| v.iter().map(|x| x.0).sum::<f64>();
    if let (Some(fa), Some(ga), Some(fb), Some(gb)) = (
        a.families.first(),
        a.firsts.first(),
        b.families.first(),
        b.firsts.first(),
    ) {
        // Both parts swapped, or one part found in the other's other place
        // (the other part then counts as a different first name).
        let (x, y) = (crossed_grade(fa, gb), crossed_grade(ga, fb));
        if x.is_some() || y.is_some() {
            let crossed = x.unwrap_or(-8.0) + y.unwrap_or(-8.0) - 1.0;
            if crossed > total(&straight) {
                let agree = usize::from(x.is_some()) + usize::from(y.is_some());
                let reason = if agree == 2 {
                    "given name and surname swapped"
                } else {
                    "a given name is the other's surname"
                };
                return (vec![(crossed, reason)], agree);
            }
        }
    }
    let agree = straight.iter().filter(|p| p.0 >= NAME_AGREES).count();
    (straight, agree)
}

/// Postcode, address lines and town: (weight, reason) each, for at most +5
/// together; and whether they agree (the same postcode, or near enough in
/// two of the three, for the possible band).
fn location(a: &Person, b: &Person) -> (Vec<(f64, &'static str)>, bool) {
    let mut out = Vec::new();
    if let (Some(x), Some(y)) = (&a.postcode, &b.postcode) {
        out.push(if x == y {
            (3.0, "same postcode")
        } else if x.contains(' ') && x.split(' ').next() == y.split(' ').next() {
            (1.0, "same postcode district")
        } else if osa_distance(x, y) == 1 {
            // A keying error, whatever the shape (4-digit postcodes too).
            (1.5, "postcode differs by one character")
        } else {
            (-0.5, "different postcode")
        });
    }
    if let (Some(x), Some(y)) = (&a.address, &b.address) {
        if !x.street.is_empty() && !y.street.is_empty() {
            let numbers_differ = !x.numbers.is_empty()
                && !y.numbers.is_empty()
                && !x.numbers.iter().any(|n| y.numbers.contains(n));
            let similar = x.street == y.street
                || one_edit(&x.street, &y.street)
                || jaro_winkler(&x.street, &y.street) >= 0.92;
            if similar && numbers_differ {
                out.push((0.5, "same street, another house number"));
            } else if x.street == y.street && x.numbers == y.numbers {
                out.push((3.0, "same address"));
            } else if similar {
                out.push((2.0, "address spelled similarly"));
            }
        }
        if !x.town.is_empty() && !y.town.is_empty() {
            if x.town == y.town {
                out.push((1.0, "same town"));
            } else if one_edit(&x.town, &y.town) || jaro_winkler(&x.town, &y.town) >= 0.92 {
                out.push((0.5, "town spelled similarly"));
            }
        }
    }
    let sum: f64 = out.iter().map(|x| x.0).sum();
    if sum > 5.0 {
        // Scaled so that the parts still say which weighed most.
        for x in &mut out {
            x.0 *= 5.0 / sum;
        }
    }
    (out, sum >= 2.5)
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
    // Of surname, first name, date of birth and address, how many agree.
    let mut agreements = 0;
    if let (Some(x), Some(y)) = (&a.birth, &b.birth) {
        let (reason, weight) = birth_relation(x, y);
        agreements += usize::from(weight > 0.0);
        add(weight, reason);
    }
    let (parts, agree) = names(a, b);
    agreements += agree;
    for (weight, reason) in parts {
        add(weight, reason);
    }
    if let (Some(x), Some(y)) = (&a.sex, &b.sex) {
        if x == y {
            add(0.5, "");
        } else {
            add(-4.0, "different sex");
        }
    }
    let (parts, agree) = location(a, b);
    agreements += usize::from(agree);
    for (weight, reason) in parts {
        add(weight, reason);
    }
    why.sort_by(|x, y| y.0.abs().total_cmp(&x.0.abs()));
    let score = 1.0 / (1.0 + (-(w - 8.0_f64)).exp2());
    Match {
        score,
        weight: w,
        band: Band::of_evidence(w, agreements),
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
/// for `p`: active records other than `p` itself, in band `least` or a
/// stronger one, best first.
pub(crate) fn score_candidates(
    p: &Value,
    self_id: Option<&str>,
    least: Band,
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
            if m.band.is_some_and(|b| b >= least) {
                out.push((other, m));
            }
        }
    }
    out.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    Ok(out)
}

/// Probable duplicates of a (possibly not yet stored) Patient, through
/// searches for the caller.
pub(crate) fn candidates_for(
    svc: &FhirService,
    access: &dyn Access,
    p: &Value,
    self_id: Option<&str>,
) -> Result<Vec<Candidate>, FhirError> {
    Ok(score_candidates(p, self_id, Band::Probable, |params| {
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

/// Existing active patients who are probably the same person as patient
/// `id`, best first.
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
        assert_eq!(birth_relation("19700131", "19700131").1, 7.0);
        assert_eq!(
            birth_relation("19700203", "19700302").0,
            "day and month of birth transposed"
        );
        assert_eq!(birth_relation("19700131", "19700121").1, 3.5);
        assert_eq!(birth_relation("19780131", "19870131").1, 3.0);
        assert_eq!(
            birth_relation("19700131", "19821105"),
            ("different date of birth", -5.5)
        );
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

    /// A fuller record: any given names, address lines and town.
    fn full(
        family: &str,
        given: &[&str],
        dob: &str,
        lines: &[&str],
        town: &str,
        pc: &str,
    ) -> Value {
        let mut v = json!({"resourceType": "Patient",
            "name": [{"use": "official", "family": family, "given": given}],
            "address": [{"use": "home", "line": lines, "city": town, "postalCode": pc}]});
        if !dob.is_empty() {
            v["birthDate"] = json!(dob);
        }
        v
    }

    #[test]
    fn given_name_and_surname_swapped_are_compared_crosswise() {
        // Registered "Luchetti Tiana" by a clerk who took the first word for
        // the surname.
        let a = full(
            "Tiana",
            &["Luchetti"],
            "1905-01-27",
            &["112 Totterdell Street"],
            "Toowoomba",
            "2008",
        );
        let b = full(
            "Luchetti",
            &["Tiana"],
            "1905-01-27",
            &["112 Totterdell Street"],
            "Toowoomba",
            "2008",
        );
        let m = compare(&a, &b);
        assert!(m.score >= DUPLICATE_THRESHOLD, "{m:?}");
        assert!(
            m.reasons
                .contains(&"given name and surname swapped".to_owned()),
            "{m:?}"
        );
        assert_eq!(compare(&b, &a).score, m.score);
    }

    #[test]
    fn a_keying_error_in_the_first_name_is_graded_not_a_veto() {
        // "Jadk" for "Jack": one letter, no sound-alike, Jaro–Winkler below 0.9.
        let a = pat(None, "Rees", "Jack", "1989-11-10", "male", "");
        let b = pat(None, "Rees", "Jadk", "1989-11-10", "male", "");
        let m = compare(&a, &b);
        assert!(m.score >= DUPLICATE_THRESHOLD, "{m:?}");
        assert!(
            m.reasons
                .contains(&"first name spelled similarly".to_owned()),
            "{m:?}"
        );
    }

    #[test]
    fn address_lines_and_town_are_evidence() {
        // No date of birth (not known at the time), no postcode: the same
        // name at the same address is still found.
        let a = full(
            "Woodbury",
            &["Isabella"],
            "",
            &["134 Shara Place", "Byron Arcade"],
            "Parkside",
            "",
        );
        let b = full(
            "Woodbury",
            &["Isabella"],
            "",
            &["134 Shara Place", "Byron Arcade"],
            "Parkside",
            "",
        );
        let m = compare(&a, &b);
        assert!(m.score >= DUPLICATE_THRESHOLD, "{m:?}");
        assert!(m.reasons.contains(&"same address".to_owned()), "{m:?}");
        assert!(m.reasons.contains(&"same town".to_owned()), "{m:?}");
        // A keying error in the street still counts, less; another house
        // number on the same street counts little.
        let typo = full(
            "Woodbury",
            &["Isabella"],
            "",
            &["134 Shara Plcae", "Byron Arcade"],
            "Parkside",
            "",
        );
        assert!(
            compare(&a, &typo)
                .reasons
                .contains(&"address spelled similarly".to_owned()),
            "{:?}",
            compare(&a, &typo)
        );
        let next_door = full(
            "Woodbury",
            &["Isabella"],
            "",
            &["136 Shara Place", "Byron Arcade"],
            "Parkside",
            "",
        );
        let n = compare(&a, &next_door);
        assert!(
            n.reasons
                .contains(&"same street, another house number".to_owned()),
            "{n:?}"
        );
        assert!(n.weight < m.weight);
    }

    #[test]
    fn postcodes_of_any_shape_get_partial_credit_for_one_keying_error() {
        let a = full("Rokobaro", &["Thomas"], "1972-08-12", &[], "", "2272");
        let b = full("Rokobaro", &["Thomas"], "1972-08-12", &[], "", "2227");
        let m = compare(&a, &b);
        assert!(
            m.reasons
                .contains(&"postcode differs by one character".to_owned()),
            "{m:?}"
        );
        // UK postcodes keep their district credit.
        let c = full("Rokobaro", &["Thomas"], "1972-08-12", &[], "", "LS1 4AP");
        let d = full("Rokobaro", &["Thomas"], "1972-08-12", &[], "", "LS1 9ZZ");
        assert!(
            compare(&c, &d)
                .reasons
                .contains(&"same postcode district".to_owned())
        );
    }

    #[test]
    fn middle_names_count() {
        // Known by the middle name at one registration.
        let a = full("Owen", &["John", "Michael"], "1960-04-02", &[], "", "");
        let b = full("Owen", &["Michael"], "1960-04-02", &[], "", "");
        let m = compare(&a, &b);
        assert!(
            m.reasons
                .contains(&"first name is a middle name of the other".to_owned()),
            "{m:?}"
        );
        assert!(m.score >= DUPLICATE_THRESHOLD, "{m:?}");
    }

    #[test]
    fn bands_probable_possible_and_neither() {
        let home = |family: &str, given: &str, dob: &str| {
            full(
                family,
                &[given],
                dob,
                &["12 Herschell Circuit"],
                "Lawrence",
                "LS1 4AP",
            )
        };
        let a = home("Campbell", "Matthew", "1943-06-07");
        // The same person with a keying error: probable.
        let m = compare(&a, &home("Campbel", "Matthew", "1943-06-07"));
        assert_eq!(m.band, Some(Band::Probable), "{m:?}");
        // Twins (or a first name replaced by mistake): possible, never probable.
        let twin = compare(&a, &home("Campbell", "Samuel", "1943-06-07"));
        assert_eq!(twin.band, Some(Band::Possible), "{twin:?}");
        assert!(twin.score < DUPLICATE_THRESHOLD);
        // Parent and child of the same name at one address: possible.
        let child = compare(&a, &home("Campbell", "Matthew", "1971-02-19"));
        assert_eq!(child.band, Some(Band::Possible), "{child:?}");
        // Namesakes elsewhere: neither.
        let elsewhere = |family: &str, given: &str, dob: &str| {
            full(family, &[given], dob, &["3 Mill Lane"], "Leeds", "LS6 2AA")
        };
        for other in [
            elsewhere("Campbell", "Samuel", "1943-06-07"),
            elsewhere("Campbell", "Matthew", "1943-11-23"),
        ] {
            let m = compare(&a, &other);
            assert_eq!(m.band, None, "{m:?}");
        }
        assert_eq!(Band::of(0.95), Some(Band::Probable));
        assert_eq!(Band::of(0.2), Some(Band::Possible));
        assert_eq!(Band::of(0.1), None);
        assert!(Band::Probable > Band::Possible);
        for b in [Band::Probable, Band::Possible] {
            assert_eq!(Band::from_code(b.code()), Some(b));
        }
    }

    /// A name made of letters, as a person's name is.
    fn name() -> impl Strategy<Value = String> {
        "[A-Z][a-z]{2,9}"
    }

    /// A calendar date from 1900 to 2023.
    fn date() -> impl Strategy<Value = String> {
        (1900u32..2024, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y}-{m:02}-{d:02}"))
    }

    proptest! {
        /// Any two full records: a score in 0..1, the same both ways, and
        /// the band the weight says.
        #[test]
        fn compare_is_symmetric(f1 in name(), f2 in name(), g1 in name(), g2 in name(),
                                m1 in name(), d1 in date(), d2 in date(),
                                n1 in 1u32..200, n2 in 1u32..200, street in name(), town in name()) {
            let a = full(&f1, &[&g1, &m1], &d1, &[&format!("{n1} {street} Road")], &town, "LS1 4AP");
            let b = full(&f2, &[&g2], &d2, &[&format!("{n2} {street} Road")], &town, "LS1 4AQ");
            let m = compare(&a, &b);
            prop_assert!((0.0..=1.0).contains(&m.score));
            let back = compare(&b, &a);
            prop_assert!((back.weight - m.weight).abs() < 1e-9, "{:?} {:?}", m, back);
            prop_assert_eq!(m.band == Some(Band::Probable), m.weight >= PROBABLE_WEIGHT);
            prop_assert!(m.band.is_none() || m.weight >= POSSIBLE_WEIGHT);
            prop_assert_eq!(back.band, m.band);
        }

        /// A record against its own copy with given name and surname swapped
        /// scores as the copy against the record, and is a probable duplicate.
        #[test]
        fn swapping_given_name_and_surname_still_matches(f in name(), g in name(), d in date(),
                                                          street in name(), town in name()) {
            let lines = [format!("1 {street} Street")];
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let a = full(&f, &[&g], &d, &lines, &town, "2008");
            let b = full(&g, &[&f], &d, &lines, &town, "2008");
            let m = compare(&a, &b);
            prop_assert_eq!(m.band, Some(Band::Probable), "{:?}", m);
            prop_assert!((compare(&b, &a).weight - m.weight).abs() < 1e-9);
        }

        /// Twins: same surname, birth date, sex and address, first names that
        /// are clearly different. Never a probable duplicate, whatever else.
        #[test]
        fn twins_are_never_probable(f in name(), g1 in name(), g2 in name(), d in date(),
                                    street in name(), town in name(), sex in prop::bool::ANY) {
            let (x, y) = (fold_name(&g1), fold_name(&g2));
            prop_assume!(first_name_grade(&x, &y).is_none());
            let sex = if sex { "male" } else { "female" };
            let lines = [format!("7 {street} Close")];
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let mut a = full(&f, &[&g1], &d, &lines, &town, "M1 1AE");
            let mut b = full(&f, &[&g2], &d, &lines, &town, "M1 1AE");
            a["gender"] = json!(sex);
            b["gender"] = json!(sex);
            let m = compare(&a, &b);
            prop_assert!(m.score < DUPLICATE_THRESHOLD, "{:?}", m);
        }

        /// A parent and child of the same name at one address (birth dates
        /// that are not a keying error of each other): never probable.
        #[test]
        fn parent_and_child_are_never_probable(f in name(), g in name(), d1 in date(), d2 in date(),
                                               street in name(), town in name()) {
            let (x, y) = (d1.replace('-', ""), d2.replace('-', ""));
            prop_assume!(birth_relation(&x, &y).1 < 0.0);
            let lines = [format!("7 {street} Close")];
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let a = full(&f, &[&g], &d1, &lines, &town, "M1 1AE");
            let b = full(&f, &[&g], &d2, &lines, &town, "M1 1AE");
            let m = compare(&a, &b);
            prop_assert!(m.score < DUPLICATE_THRESHOLD, "{:?}", m);
        }

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
