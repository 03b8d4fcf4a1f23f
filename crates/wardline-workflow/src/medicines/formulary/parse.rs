//! The formulary file (`docs/formulary-format.md`): CSV, one row per VMP,
//! read by [`parse`] into [`Entry`]s and written back by [`write`]. Every
//! problem names its line and column ([`ParseError`]); the same field
//! checks ([`check_entry`]) guard a `Medication` written on any channel.

use std::collections::HashMap;

use super::{Code, Entry, Qty};
use crate::medicines::{DMD_SYSTEM, LOCAL_MEDICINE_SYSTEM, SNOMED_SYSTEM};

/// The columns, in the order [`write`] writes them.
pub const COLUMNS: [&str; 16] = [
    "code_system",
    "vtm_code",
    "vtm_name",
    "vmp_code",
    "vmp_name",
    "amps",
    "form",
    "strength",
    "routes",
    "unit_of_dose",
    "controlled_drug",
    "high_risk",
    "time_critical",
    "classes",
    "default_dose",
    "default_frequency",
];

/// The SNOMED CT routes of administration the formulary knows (code,
/// display).
pub const ROUTES: [(&str, &str); 17] = [
    ("26643006", "Oral"),
    ("37839007", "Sublingual"),
    ("54471007", "Buccal"),
    ("47625008", "Intravenous"),
    ("78421000", "Intramuscular"),
    ("34206005", "Subcutaneous"),
    ("37161004", "Rectal"),
    ("16857009", "Vaginal"),
    ("45890007", "Transdermal"),
    ("6064005", "Topical"),
    ("448598008", "Cutaneous"),
    ("46713006", "Nasal"),
    ("54485002", "Ophthalmic"),
    ("10547007", "Otic"),
    ("447694001", "Inhalation"),
    ("72607000", "Intrathecal"),
    ("404820008", "Epidural"),
];

/// The therapeutic classes (`CLASS_SYSTEM` codes) the formulary knows:
/// allergy-by-class and duplicate-therapy checks compare these, so a
/// misspelt class would silently miss an alert — an unknown one is refused.
pub const CLASSES: &[&str] = &[
    "ace-inhibitor",
    "alpha-blocker",
    "aminoglycoside",
    "analgesic",
    "antacid",
    "antiarrhythmic",
    "antibacterial",
    "anticholinergic",
    "anticoagulant",
    "antidepressant",
    "antidiarrhoeal",
    "antidiabetic",
    "antiemetic",
    "antifibrinolytic",
    "antiepileptic",
    "antifungal",
    "antihistamine",
    "antiparkinson",
    "antiplatelet",
    "antipsychotic",
    "antispasmodic",
    "antiviral",
    "arb",
    "benzodiazepine",
    "beta-blocker",
    "bisphosphonate",
    "bronchodilator",
    "calcium-channel-blocker",
    "carbapenem",
    "cardiac-glycoside",
    "cephalosporin",
    "chemotherapy",
    "corticosteroid",
    "dmard",
    "dopamine-agonist",
    "electrolyte",
    "glycopeptide",
    "h2-antagonist",
    "heparin",
    "hypnotic",
    "insulin",
    "intravenous-fluid",
    "iron",
    "laxative",
    "lincosamide",
    "local-anaesthetic",
    "loop-diuretic",
    "macrolide",
    "mao-b-inhibitor",
    "monoclonal-antibody",
    "mood-stabiliser",
    "muscarinic-antagonist",
    "nitrate",
    "nicotine-replacement",
    "nitroimidazole",
    "nsaid",
    "opioid",
    "opioid-antagonist",
    "penicillin",
    "potassium-sparing-diuretic",
    "ppi",
    "quinolone",
    "snri",
    "ssri",
    "statin",
    "sulfonylurea",
    "sympathomimetic",
    "tetracycline",
    "thiazide-diuretic",
    "thyroid-hormone",
    "tricyclic-antidepressant",
    "urinary-antiseptic",
    "vitamin",
    "xanthine-oxidase-inhibitor",
];

/// One problem of a formulary file: its line (from 1, the header is line
/// 1), the column where one is to blame, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParseError {
    pub line: u64,
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    /// `line 42: routes: '1234' is not a known route code` (prefix it with
    /// the file name).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(c) => write!(f, "line {}: {c}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// At most this many problems are reported (a wrong file is usually wrong
/// on every line).
pub const MAX_ERRORS: usize = 50;

/// Reads a formulary file. Either every row is a valid, distinct entry
/// (active, id `med-{vmp_code}`, in file order), or the problems, each
/// naming its line and column (at most [`MAX_ERRORS`]). A file without
/// rows is refused: importing it would withdraw the whole formulary.
pub fn parse(text: &str) -> Result<Vec<Entry>, Vec<ParseError>> {
    let mut errors = Vec::new();
    let err = |line: u64, field: Option<&str>, message: String| ParseError {
        line,
        field: field.map(str::to_owned),
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut records = rdr.records();
    // The header.
    let header = loop {
        match records.next() {
            None => {
                return Err(vec![err(
                    1,
                    None,
                    "the file is empty: it needs a header row and one row per medicine".to_owned(),
                )]);
            }
            Some(Err(e)) => return Err(vec![err(csv_line(&e), None, csv_message(&e))]),
            Some(Ok(r)) if r.iter().all(|f| f.trim().is_empty()) => continue,
            Some(Ok(r)) => break r,
        }
    };
    let header_line = header.position().map_or(1, csv::Position::line);
    let names: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        match COLUMNS.iter().find(|c| **c == n.as_str()) {
            None => errors.push(err(
                header_line,
                None,
                format!(
                    "the header names an unknown column '{n}' (the columns are {})",
                    COLUMNS.join(", ")
                ),
            )),
            Some(c) => {
                if index.insert(c, i).is_some() {
                    errors.push(err(
                        header_line,
                        None,
                        format!("the header names the column '{c}' twice"),
                    ));
                }
            }
        }
    }
    for c in COLUMNS {
        if !index.contains_key(c) {
            errors.push(err(
                header_line,
                None,
                format!("the header has no column '{c}'"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    let mut by_vmp: HashMap<String, u64> = HashMap::new();
    let mut by_name: HashMap<String, u64> = HashMap::new();
    let mut vtm_names: HashMap<String, (String, u64)> = HashMap::new();
    for rec in records {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(err(csv_line(&e), None, csv_message(&e)));
                continue;
            }
        };
        let line = rec.position().map_or(0, csv::Position::line);
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if rec.len() != names.len() {
            errors.push(err(
                line,
                None,
                format!(
                    "the row has {} fields where the header has {}",
                    rec.len(),
                    names.len()
                ),
            ));
            continue;
        }
        let get = |c: &str| index.get(c).and_then(|i| rec.get(*i)).unwrap_or("").trim();
        let fields: Vec<(&str, &str)> = COLUMNS.iter().map(|c| (*c, get(c))).collect();
        match entry_of(&fields) {
            Err((field, message)) => errors.push(err(line, Some(field), message)),
            Ok(e) => {
                if let Some(first) = by_vmp.insert(e.vmp.code.clone(), line) {
                    errors.push(err(
                        line,
                        Some("vmp_code"),
                        format!("{} is also on line {first}", e.vmp.code),
                    ));
                    continue;
                }
                if let Some(first) = by_name.insert(e.vmp.display.to_lowercase(), line) {
                    errors.push(err(
                        line,
                        Some("vmp_name"),
                        format!(
                            "'{}' is also the name on line {first}: two products must not share a name",
                            e.vmp.display
                        ),
                    ));
                    continue;
                }
                match vtm_names.get(&e.vtm.code) {
                    Some((name, first)) if *name != e.vtm.display => {
                        errors.push(err(
                            line,
                            Some("vtm_name"),
                            format!(
                                "'{}' differs from line {first}'s '{name}' for the VTM {}",
                                e.vtm.display, e.vtm.code
                            ),
                        ));
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        vtm_names.insert(e.vtm.code.clone(), (e.vtm.display.clone(), line));
                    }
                }
                entries.push(e);
                lines.push(line);
            }
        }
    }
    if errors.is_empty() && entries.is_empty() {
        errors.push(err(
            header_line,
            None,
            "the file has no medicines (importing it would withdraw the whole formulary)"
                .to_owned(),
        ));
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        errors.truncate(MAX_ERRORS);
        Err(errors)
    }
}

fn csv_line(e: &csv::Error) -> u64 {
    e.position().map_or(0, csv::Position::line)
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "the line is not valid UTF-8 text".to_owned(),
        _ => format!("the line is not valid CSV ({e})"),
    }
}

/// Writes entries as a formulary file (header and one row each) that
/// [`parse`] reads back to the same entries (as active ones).
pub fn write(entries: &[Entry]) -> String {
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    let mut rows: Vec<Vec<String>> = vec![COLUMNS.iter().map(|c| (*c).to_owned()).collect()];
    for e in entries {
        rows.push(row_of(e));
    }
    for r in rows {
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&r);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// One entry as the file's fields, in [`COLUMNS`] order.
pub fn row_of(e: &Entry) -> Vec<String> {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
    vec![
        if e.is_local() { "local" } else { "dmd" }.to_owned(),
        e.vtm.code.clone(),
        e.vtm.display.clone(),
        e.vmp.code.clone(),
        e.vmp.display.clone(),
        e.amps
            .iter()
            .map(|a| format!("{}={}", a.code, a.display))
            .collect::<Vec<_>>()
            .join("|"),
        e.form.clone(),
        e.strength
            .as_ref()
            .map(|(n, d)| format!("{}/{}", qty_text(n), qty_text(d)))
            .unwrap_or_default(),
        e.routes
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>()
            .join("|"),
        e.unit_of_dose.clone(),
        e.controlled_drug.clone().unwrap_or_default(),
        yes(e.high_risk),
        yes(e.time_critical),
        e.classes.join("|"),
        e.default_dose.as_ref().map(qty_text).unwrap_or_default(),
        e.default_frequency.clone().unwrap_or_default(),
    ]
}

/// `500 mg` (the value as Rust writes an `f64`: shortest, never with an
/// exponent).
pub fn qty_text(q: &Qty) -> String {
    format!("{} {}", q.value, q.unit)
}

type FieldResult<T> = Result<T, (&'static str, String)>;

fn entry_of(fields: &[(&'static str, &str)]) -> FieldResult<Entry> {
    let f = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| *v)
    };
    let system = match f("code_system") {
        "dmd" => DMD_SYSTEM,
        "local" => LOCAL_MEDICINE_SYSTEM,
        other => {
            return Err(("code_system", format!("'{other}' is neither dmd nor local")));
        }
    };
    let vtm = Code {
        system: code_system_of(f("vtm_code"))
            .map_err(|m| ("vtm_code", m))?
            .to_owned(),
        code: f("vtm_code").to_owned(),
        display: name(f("vtm_name")).map_err(|m| ("vtm_name", m))?,
    };
    let vmp_system = code_system_of(f("vmp_code")).map_err(|m| ("vmp_code", m))?;
    if vmp_system != system {
        return Err((
            "vmp_code",
            if system == DMD_SYSTEM {
                format!(
                    "'{}' is a local code but code_system says dmd",
                    f("vmp_code")
                )
            } else {
                format!(
                    "'{}' is a dm+d (SNOMED CT) code but code_system says local",
                    f("vmp_code")
                )
            },
        ));
    }
    let vmp = Code {
        system: system.to_owned(),
        code: f("vmp_code").to_owned(),
        display: name(f("vmp_name")).map_err(|m| ("vmp_name", m))?,
    };
    let mut amps = Vec::new();
    for a in split_list(f("amps")) {
        let (code, n) = a.split_once('=').ok_or((
            "amps",
            format!("'{a}' is not code=name (AMPs are separated by |)"),
        ))?;
        let (code, n) = (code.trim(), n.trim());
        amps.push(Code {
            system: code_system_of(code).map_err(|m| ("amps", m))?.to_owned(),
            code: code.to_owned(),
            display: name(n).map_err(|m| ("amps", format!("{code}: {m}")))?,
        });
    }
    let form = name(f("form")).map_err(|m| ("form", m))?;
    let strength = match f("strength") {
        "" => None,
        s => Some(strength(s).map_err(|m| ("strength", m))?),
    };
    let mut routes = Vec::new();
    for r in split_list(f("routes")) {
        routes.push(route(r).ok_or((
            "routes",
            format!("'{r}' is not a known route code (SNOMED CT; see docs/formulary-format.md)"),
        ))?);
    }
    if routes.is_empty() {
        return Err((
            "routes",
            "a medicine needs at least one route (SNOMED CT codes separated by |)".to_owned(),
        ));
    }
    let unit_of_dose = unit(f("unit_of_dose")).map_err(|m| ("unit_of_dose", m))?;
    let controlled_drug = match f("controlled_drug") {
        "" => None,
        s @ ("2" | "3" | "4" | "5") => Some(s.to_owned()),
        s => {
            return Err((
                "controlled_drug",
                format!("'{s}' is not a controlled-drug schedule (2, 3, 4, 5 or empty)"),
            ));
        }
    };
    let high_risk = flag(f("high_risk")).map_err(|m| ("high_risk", m))?;
    let time_critical = flag(f("time_critical")).map_err(|m| ("time_critical", m))?;
    let mut classes: Vec<String> = Vec::new();
    for c in split_list(f("classes")) {
        if !CLASSES.contains(&c) {
            return Err((
                "classes",
                format!("'{c}' is not a known therapeutic class (see docs/formulary-format.md)"),
            ));
        }
        if !classes.iter().any(|x| x == c) {
            classes.push(c.to_owned());
        }
    }
    let default_dose = match f("default_dose") {
        "" => None,
        s => Some(quantity(s).map_err(|m| ("default_dose", m))?),
    };
    let default_frequency = match f("default_frequency") {
        "" => None,
        s => Some(text(s, 100).map_err(|m| ("default_frequency", m))?),
    };
    Ok(Entry {
        id: format!("med-{}", vmp.code),
        vmp,
        vtm,
        amps,
        form,
        strength,
        routes,
        unit_of_dose,
        controlled_drug,
        high_risk,
        time_critical,
        classes,
        default_dose,
        default_frequency,
        active: true,
    })
}

/// Checks an entry read from a stored `Medication` the way [`parse`]
/// checks a row: the element to blame (`vmp`, `vtm`, `route`…, the
/// sub-extension names of `FORMULARY_EXT`) and what is wrong.
pub fn check_entry(e: &Entry) -> FieldResult<()> {
    let code_ok = |c: &Code, what: &'static str| -> FieldResult<()> {
        let sys = code_system_of(&c.code).map_err(|m| (what, m))?;
        if sys != c.system {
            return Err((
                what,
                format!(
                    "the code {} does not belong to the system {}",
                    c.code, c.system
                ),
            ));
        }
        name(&c.display).map_err(|m| (what, m))?;
        Ok(())
    };
    code_ok(&e.vmp, "code")?;
    if e.id != format!("med-{}", e.vmp.code) {
        return Err((
            "id",
            format!(
                "a formulary Medication's id is med-{} (its VMP code), not {}",
                e.vmp.code, e.id
            ),
        ));
    }
    if e.vtm.code.is_empty() {
        return Err((
            "vtm",
            "a formulary entry needs its VTM (the substance)".to_owned(),
        ));
    }
    code_ok(&e.vtm, "vtm")?;
    for a in &e.amps {
        code_ok(a, "amp")?;
    }
    name(&e.form).map_err(|m| ("form", m))?;
    if e.routes.is_empty() {
        return Err((
            "route",
            "a formulary entry needs at least one route".to_owned(),
        ));
    }
    for r in &e.routes {
        if r.system != SNOMED_SYSTEM || route(&r.code).is_none() {
            return Err((
                "route",
                format!("'{}' is not a known route code (SNOMED CT)", r.code),
            ));
        }
    }
    unit(&e.unit_of_dose).map_err(|m| ("unitOfDose", m))?;
    if let Some(s) = &e.controlled_drug
        && !matches!(s.as_str(), "2" | "3" | "4" | "5")
    {
        return Err((
            "controlledDrug",
            format!("'{s}' is not a controlled-drug schedule (2, 3, 4 or 5)"),
        ));
    }
    for c in &e.classes {
        if !CLASSES.contains(&c.as_str()) {
            return Err(("class", format!("'{c}' is not a known therapeutic class")));
        }
    }
    for (what, q) in e
        .strength
        .iter()
        .flat_map(|(n, d)| [("strength", n), ("strength", d)])
        .chain(e.default_dose.iter().map(|q| ("defaultDose", q)))
    {
        if !(q.value.is_finite() && q.value > 0.0) || unit(&q.unit).is_err() {
            return Err((
                what,
                format!("'{}' is not a positive amount with a unit", qty_text(q)),
            ));
        }
    }
    Ok(())
}

/// The route of a SNOMED CT code the formulary knows.
pub fn route(code: &str) -> Option<Code> {
    ROUTES.iter().find(|(c, _)| *c == code).map(|(c, d)| Code {
        system: SNOMED_SYSTEM.to_owned(),
        code: (*c).to_owned(),
        display: (*d).to_owned(),
    })
}

/// The system of a code by its shape: a SNOMED CT identifier (digits with a
/// valid Verhoeff check digit and a concept partition) is dm+d's; `L`
/// followed by letters, digits and hyphens is a local code.
pub fn code_system_of(code: &str) -> Result<&'static str, String> {
    if code.is_empty() {
        return Err("the code is empty".to_owned());
    }
    if code.bytes().all(|b| b.is_ascii_digit()) {
        if !(6..=18).contains(&code.len()) {
            return Err(format!(
                "'{code}' is not a SNOMED CT identifier (6 to 18 digits)"
            ));
        }
        if !verhoeff_valid(code) {
            return Err(format!(
                "'{code}' is not a SNOMED CT identifier (its check digit is wrong)"
            ));
        }
        let partition = &code[code.len() - 3..code.len() - 1];
        if !matches!(partition, "00" | "10") {
            return Err(format!(
                "'{code}' is a SNOMED CT identifier but not of a concept (partition {partition})"
            ));
        }
        return Ok(DMD_SYSTEM);
    }
    if let Some(rest) = code.strip_prefix('L')
        && !rest.is_empty()
        && code.len() <= 30
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Ok(LOCAL_MEDICINE_SYSTEM);
    }
    Err(format!(
        "'{code}' is neither a dm+d code (a SNOMED CT identifier) nor a local code (L then letters, digits or hyphens, up to 30 characters)"
    ))
}

/// The Verhoeff check SNOMED CT identifiers carry in their last digit.
pub fn verhoeff_valid(digits: &str) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut c = 0u8;
    for (i, b) in digits.bytes().rev().enumerate() {
        c = D[usize::from(c)][usize::from(P[i % 8][usize::from(b - b'0')])];
    }
    c == 0
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split('|').map(str::trim).filter(|x| !x.is_empty())
}

fn text(s: &str, max: usize) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("it is empty".to_owned());
    }
    if s.chars().count() > max {
        return Err(format!("it is longer than {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("it holds a control character".to_owned());
    }
    Ok(s.to_owned())
}

fn name(s: &str) -> Result<String, String> {
    let t = text(s, 255)?;
    if t.contains('|') {
        return Err(format!("'{t}' holds a '|'"));
    }
    Ok(t)
}

/// A unit as written (`mg`, `mL`, `tablet`, `unit`): no spaces, `/`, `|`
/// or `=`.
fn unit(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the unit is empty".to_owned());
    }
    if s.chars().count() > 30
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '|' | '='))
    {
        return Err(format!(
            "'{s}' is not a unit (one word, e.g. mg, mL, tablet)"
        ));
    }
    Ok(s.to_owned())
}

fn flag(s: &str) -> Result<bool, String> {
    match s.to_lowercase().as_str() {
        "" | "no" | "n" | "false" => Ok(false),
        "yes" | "y" | "true" => Ok(true),
        _ => Err(format!("'{s}' is neither yes nor no")),
    }
}

/// `500 mg`: a positive decimal (digits, at most one point), a space, a unit.
pub fn quantity(s: &str) -> Result<Qty, String> {
    let s = s.trim();
    let (v, u) = s
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("'{s}' is not an amount with a unit (e.g. 500 mg)"))?;
    let (v, u) = (v.trim(), u.trim());
    let well_formed = !v.is_empty()
        && v.len() <= 20
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|b| *b == b'.').count() <= 1
        && !v.starts_with('.')
        && !v.ends_with('.');
    let value: f64 = if well_formed {
        v.parse().map_err(|_| format!("'{v}' is not a number"))?
    } else {
        return Err(format!("'{v}' is not a number (e.g. 500 or 0.5)"));
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("'{v}' is not above zero"));
    }
    Ok(Qty {
        value,
        unit: unit(u)?,
    })
}

/// `500 mg/1 tablet`, `120 mg/5 mL`.
pub fn strength(s: &str) -> Result<(Qty, Qty), String> {
    let (n, d) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}' is not amount/per (e.g. 500 mg/1 tablet, 120 mg/5 mL)"))?;
    Ok((quantity(n)?, quantity(d)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str = "code_system,vtm_code,vtm_name,vmp_code,vmp_name,amps,form,strength,routes,unit_of_dose,controlled_drug,high_risk,time_critical,classes,default_dose,default_frequency\n";

    fn one(row: &str) -> Result<Vec<Entry>, Vec<ParseError>> {
        parse(&format!("{HEADER}{row}\n"))
    }

    #[test]
    fn the_starter_formulary_parses() {
        let es = parse(wardline_demo::FORMULARY).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(es.len() >= 150, "{} medicines", es.len());
        let para: Vec<&Entry> = es.iter().filter(|e| e.vtm.code == "90332006").collect();
        let routes: std::collections::HashSet<&str> = para
            .iter()
            .flat_map(|e| e.routes.iter().map(|r| r.display.as_str()))
            .collect();
        assert!(
            routes.contains("Oral") && routes.contains("Intravenous") && routes.contains("Rectal")
        );
        let named = |n: &str| {
            es.iter()
                .find(|e| e.name() == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert_eq!(named("Paracetamol 500mg tablets").vmp.system, DMD_SYSTEM);
        let morphine = named("Morphine sulfate 10mg/1ml solution for injection ampoules");
        assert_eq!(morphine.controlled_drug.as_deref(), Some("2"));
        assert!(morphine.needs_witness());
        let glargine =
            named("Insulin glargine 100units/ml solution for injection 3ml pre-filled pens");
        assert!(glargine.high_risk && glargine.time_critical);
        assert!(
            es.iter()
                .filter(|e| e.classes.iter().any(|c| c == "chemotherapy"))
                .count()
                >= 10
        );
        // Written back, it reads the same.
        assert_eq!(parse(&write(&es)), Ok(es));
    }

    #[test]
    fn a_real_dmd_row_is_read() {
        let es = one("dmd,90332006,Paracetamol,42109611000001109,Paracetamol 500mg tablets,,Tablet,500 mg/1 tablet,26643006,tablet,,no,no,analgesic,1 g,four times a day").unwrap();
        let e = &es[0];
        assert_eq!(e.id, "med-42109611000001109");
        assert_eq!(e.vmp.system, DMD_SYSTEM);
        assert_eq!(e.vtm.system, DMD_SYSTEM);
        assert!(!e.is_local());
        assert_eq!(e.routes[0].display, "Oral");
        let (n, d) = e.strength.clone().unwrap();
        assert_eq!(
            (n.value, n.unit.as_str(), d.value, d.unit.as_str()),
            (500.0, "mg", 1.0, "tablet")
        );
        assert_eq!(e.default_dose.as_ref().unwrap().unit, "g");
    }

    #[test]
    fn snomed_identifiers_are_checked() {
        // Published identifiers: the paracetamol VTM, the 500 mg tablet VMP,
        // the oral route.
        for c in ["90332006", "42109611000001109", "26643006", "447694001"] {
            assert_eq!(code_system_of(c), Ok(DMD_SYSTEM), "{c}");
        }
        // One digit changed: the check digit catches it.
        assert!(code_system_of("90332007").is_err());
        assert!(code_system_of("42109611000001108").is_err());
        assert_eq!(code_system_of("L0001"), Ok(LOCAL_MEDICINE_SYSTEM));
        assert!(code_system_of("X12").is_err());
        assert!(code_system_of("L").is_err());
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let text = format!(
            "{HEADER}local,L1,Thing,L2,Thing 1mg tablets,,Tablet,1 mg/1 tablet,26643006,tablet,,no,no,,,\nlocal,L1,Thing,L3,Thing 2mg tablets,,Tablet,2 mg/1 tablet,1234,tablet,,no,no,,,\n"
        );
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            format!("formulary.csv {}", errs[0]),
            "formulary.csv line 3: routes: '1234' is not a known route code (SNOMED CT; see docs/formulary-format.md)"
        );
    }

    #[test]
    fn each_wrong_field_is_named() {
        let ok = "local,L1,Thing,L2,Thing 1mg tablets,L3=Brand,Tablet,1 mg/1 tablet,26643006,tablet,2,yes,no,opioid,1 mg,daily";
        assert!(one(ok).is_ok());
        let cases = [
            (0, "nhs", "code_system"),
            (1, "123", "vtm_code"),
            (2, "", "vtm_name"),
            (3, "42109611000001109", "vmp_code"),
            (5, "L3", "amps"),
            (6, "", "form"),
            (7, "1 mg", "strength"),
            (7, "-1 mg/1 tablet", "strength"),
            (8, "", "routes"),
            (9, "", "unit_of_dose"),
            (10, "1", "controlled_drug"),
            (11, "maybe", "high_risk"),
            (12, "sometimes", "time_critical"),
            (13, "penicilin", "classes"),
            (14, "1e3 mg", "default_dose"),
        ];
        for (i, value, field) in cases {
            let mut fs: Vec<&str> = ok.split(',').collect();
            fs[i] = value;
            let errs = one(&fs.join(",")).unwrap_err();
            assert_eq!(errs[0].field.as_deref(), Some(field), "{value}: {errs:?}");
            assert_eq!(errs[0].line, 2);
        }
    }

    #[test]
    fn duplicates_and_alike_names_are_refused() {
        let a = "local,L1,Thing,L2,Thing 1mg tablets,,Tablet,,26643006,tablet,,,,,,";
        let same_code = "local,L1,Thing,L2,Thing 2mg tablets,,Tablet,,26643006,tablet,,,,,,";
        let same_name = "local,L1,Thing,L4,thing 1mg TABLETS,,Tablet,,26643006,tablet,,,,,,";
        let other_vtm_name = "local,L1,Other,L5,Thing 5mg tablets,,Tablet,,26643006,tablet,,,,,,";
        for (row, field) in [
            (same_code, "vmp_code"),
            (same_name, "vmp_name"),
            (other_vtm_name, "vtm_name"),
        ] {
            let errs = parse(&format!("{HEADER}{a}\n{row}\n")).unwrap_err();
            assert_eq!(errs[0].field.as_deref(), Some(field));
            assert_eq!(errs[0].line, 3);
            assert!(errs[0].message.contains("line 2"), "{}", errs[0].message);
        }
    }

    #[test]
    fn headers_and_empty_files_are_checked() {
        assert!(parse("").unwrap_err()[0].message.contains("empty"));
        assert!(
            parse(HEADER).unwrap_err()[0]
                .message
                .contains("no medicines")
        );
        let errs = parse("code_system,vtm_code\n").unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.message.contains("no column 'routes'"))
        );
        let errs = parse(&format!("{HEADER}local,L1\n")).unwrap_err();
        assert!(errs[0].message.contains("fields"));
    }

    #[test]
    fn columns_may_come_in_any_order_and_comments_are_skipped() {
        let mut cols: Vec<&str> = COLUMNS.to_vec();
        cols.reverse();
        let row = ",,,,,no,no,,tablet,26643006,,Tablet,,Thing 1mg tablets,L2,Thing,L1,local";
        let row: Vec<&str> = row.split(',').skip(2).collect();
        let text = format!("# a comment\n{}\n{}\n", cols.join(","), row.join(","));
        let es = parse(&text).unwrap();
        assert_eq!(es[0].vmp.code, "L2");
    }

    fn code() -> impl Strategy<Value = String> {
        prop_oneof![
            "L[A-Z0-9]{1,8}",
            Just("90332006".to_owned()),
            Just("42109611000001109".to_owned()),
        ]
    }

    prop_compose! {
        fn qty()(v in 1u32..100_000, scale in 0u32..4, u in "[a-zA-Z%µ]{1,6}") -> Qty {
            Qty { value: f64::from(v) / f64::from(10u32.pow(scale)), unit: u }
        }
    }

    prop_compose! {
        fn entry()(
            vtm in code(), vtm_name in "[A-Za-z][A-Za-z ,()=\"'-]{0,20}[a-z]",
            vmp in "L[0-9]{1,6}", vmp_name in "[A-Za-z][A-Za-z0-9 ,.\"/-]{0,30}[a-z]",
            amps in proptest::collection::vec(("L[0-9]{1,4}", "[A-Za-z][a-z ,]{0,10}[a-z]"), 0..3),
            form in "[A-Z][a-z ]{0,15}[a-z]",
            strength in proptest::option::of((qty(), qty())),
            routes in proptest::sample::subsequence(ROUTES.to_vec(), 1..4),
            unit in "[a-z]{1,8}",
            cd in proptest::option::of(prop_oneof![Just("2"), Just("3"), Just("4"), Just("5")]),
            high_risk in any::<bool>(), time_critical in any::<bool>(),
            classes in proptest::sample::subsequence(CLASSES.to_vec(), 0..3),
            default_dose in proptest::option::of(qty()),
            freq in proptest::option::of("[a-z][a-z ,]{0,20}[a-z]"),
        ) -> Entry {
            let system = |c: &str| code_system_of(c).unwrap_or_default().to_owned();
            Entry {
                id: format!("med-{vmp}"),
                vtm: Code { system: system(&vtm), code: vtm, display: vtm_name },
                vmp: Code { system: LOCAL_MEDICINE_SYSTEM.to_owned(), code: vmp, display: vmp_name },
                amps: amps.into_iter().map(|(c, n)| Code { system: system(&c), code: c, display: n }).collect(),
                form,
                strength,
                routes: routes.iter().filter_map(|(c, _)| route(c)).collect(),
                unit_of_dose: unit,
                controlled_drug: cd.map(str::to_owned),
                high_risk,
                time_critical,
                classes: classes.iter().map(|c| (*c).to_owned()).collect(),
                default_dose,
                default_frequency: freq,
                active: true,
            }
        }
    }

    proptest! {
        /// Whatever the text, the parser answers (entries or errors naming
        /// a line), never panics.
        #[test]
        fn never_panics(text in "\\PC{0,400}") {
            if let Err(errs) = parse(&text) {
                prop_assert!(!errs.is_empty() && errs.len() <= MAX_ERRORS);
            }
        }

        /// Nor on text that looks like the file, with fields mangled.
        #[test]
        fn never_panics_on_near_misses(rows in proptest::collection::vec(proptest::collection::vec("[a-zA-Z0-9 |=/.\"-]{0,12}", 16), 0..5)) {
            let text = format!("{HEADER}{}", rows.iter().map(|r| r.join(",")).collect::<Vec<_>>().join("\n"));
            let _ = parse(&text);
        }

        /// What [`write`] writes, [`parse`] reads back the same.
        #[test]
        fn round_trips(mut es in proptest::collection::vec(entry(), 1..6)) {
            // Distinct codes and names, one name per VTM (the file's rules).
            let mut seen = std::collections::HashSet::new();
            es.retain(|e| seen.insert(e.vmp.code.clone()) && seen.insert(e.vmp.display.to_lowercase()));
            let mut vtm: HashMap<String, String> = HashMap::new();
            for e in &mut es {
                e.vtm.display = vtm.entry(e.vtm.code.clone()).or_insert_with(|| e.vtm.display.clone()).clone();
            }
            let text = write(&es);
            prop_assert_eq!(parse(&text).map_err(|e| format!("{e:?}\n{text}")), Ok(es.clone()));
            // And a Medication says the same.
            for e in &es {
                let back = Entry::from_medication(&e.to_medication());
                prop_assert_eq!(back.as_ref(), Some(e));
                prop_assert_eq!(check_entry(e), Ok(()));
            }
        }
    }
}
