//! Reading helpers shared by the inbound mappings: segment views that know
//! their own location (`OBX[2]-5`), component text, coded values, and the
//! find-or-create helpers for Practitioner / Organization.

use serde_json::{Map, Value, json};
use wardline_hl7::{Message, Repetition, Segment};

use crate::{MapError, MappingConfig, Records};

use super::ts::{self, Ts};

pub(crate) const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub(crate) const PARTICIPATION_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
pub(crate) const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub(crate) const GMP_SYSTEM: &str = "https://fhir.nhs.uk/Id/gmp-number";
pub(crate) const GMC_SYSTEM: &str = "https://fhir.hl7.org.uk/Id/gmc-number";

/// A segment of the message with its occurrence number (for error locations).
#[derive(Clone, Copy)]
pub(crate) struct Seg<'m, 'a> {
    pub seg: &'m Segment<'a>,
    pub occ: usize,
}

impl<'m, 'a> Seg<'m, 'a> {
    /// The first segment with this id.
    pub fn first(msg: &'m Message<'a>, id: &str) -> Option<Seg<'m, 'a>> {
        msg.segment(id).map(|seg| Seg { seg, occ: 1 })
    }

    /// Every segment of the message with its per-id occurrence number.
    pub fn all(msg: &'m Message<'a>) -> Vec<Seg<'m, 'a>> {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        msg.segments()
            .iter()
            .map(|seg| {
                let occ = match counts.iter_mut().find(|(id, _)| *id == seg.id()) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        counts.push((seg.id(), 1));
                        1
                    }
                };
                Seg { seg, occ }
            })
            .collect()
    }

    pub fn id(&self) -> &'m str {
        self.seg.id()
    }

    /// `PID-3`, or `OBX[2]-5` for a later occurrence.
    pub fn loc(&self, field: usize) -> String {
        if self.occ > 1 {
            format!("{}[{}]-{field}", self.id(), self.occ)
        } else {
            format!("{}-{field}", self.id())
        }
    }

    /// The raw field ("" when absent).
    pub fn raw(&self, n: usize) -> &'m str {
        self.seg.field(n).map(|f| f.raw()).unwrap_or("")
    }

    /// True when the field is the HL7 null `""`.
    pub fn is_null(&self, n: usize) -> bool {
        self.raw(n) == "\"\""
    }

    /// The non-empty, non-null repetitions of the field.
    pub fn reps(&self, n: usize) -> Vec<Repetition<'m>> {
        match self.seg.field(n) {
            Some(f) if !f.is_empty() && !f.is_null() => f
                .repetitions()
                .filter(|r| !r.is_empty() && !r.is_null())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Component `c` of the first non-empty repetition (subcomponent 1,
    /// unescaped, trimmed); `None` when empty or the HL7 null.
    pub fn c(&self, field: usize, c: usize) -> Option<String> {
        self.reps(field).first().and_then(|r| rc(r, c))
    }

    /// Component 1 of the field, the common case for simple values.
    pub fn v(&self, field: usize) -> Option<String> {
        self.c(field, 1)
    }

    /// Field `f` parsed as a timestamp (component 1 of the first
    /// repetition); a bad one is error 102 naming field and value.
    pub fn ts(&self, field: usize) -> Result<Option<Ts>, MapError> {
        let Some(s) = self.v(field) else {
            return Ok(None);
        };
        match ts::parse(&s) {
            Some(t) => Ok(Some(t)),
            None => Err(MapError::content(
                102,
                Some(&self.loc(field)),
                format!(
                    "{} '{s}' is not a valid HL7 timestamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])",
                    self.loc(field)
                ),
            )),
        }
    }
}

/// Component `c`, subcomponent 1, unescaped and trimmed; `None` if empty/null.
pub(crate) fn rc(rep: &Repetition<'_>, c: usize) -> Option<String> {
    rcs(rep, c, 1)
}

/// Subcomponent `s` of component `c`, unescaped and trimmed.
pub(crate) fn rcs(rep: &Repetition<'_>, c: usize, s: usize) -> Option<String> {
    let comp = rep.component(c)?;
    let t = comp.subcomponent_text(s)?;
    let t = t.trim();
    if t.is_empty() || t == "\"\"" {
        None
    } else {
        Some(t.to_owned())
    }
}

/// Three-way value of a field on update: absent/empty → keep the stored
/// value, HL7 null `""` → delete it, otherwise set it.
pub(crate) enum Upd<T> {
    Keep,
    Delete,
    Set(T),
}

impl<T> Upd<T> {
    /// Applies to `obj[key]` with `f` turning the value into JSON.
    pub fn apply_to(self, obj: &mut Value, key: &str, f: impl FnOnce(T) -> Value) {
        match self {
            Upd::Keep => {}
            Upd::Delete => {
                if let Some(o) = obj.as_object_mut() {
                    o.shift_remove(key);
                }
            }
            Upd::Set(v) => obj[key] = f(v),
        }
    }
}

/// The update state of a field, with the value built from its repetitions
/// (`None` from `build` means "nothing usable": keep).
pub(crate) fn upd<T>(
    seg: &Seg<'_, '_>,
    field: usize,
    build: impl FnOnce(&[Repetition<'_>]) -> Result<Option<T>, MapError>,
) -> Result<Upd<T>, MapError> {
    if seg.is_null(field) {
        return Ok(Upd::Delete);
    }
    let reps = seg.reps(field);
    if reps.is_empty() {
        return Ok(Upd::Keep);
    }
    Ok(match build(&reps)? {
        Some(v) => Upd::Set(v),
        None => Upd::Keep,
    })
}

/// The FHIR system for a v2 coding-system name (CE-3 / CWE-3).
pub(crate) fn coding_system(name: &str, cfg: &MappingConfig) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let s = match upper.as_str() {
        "" => return None,
        "LN" | "LOINC" => "http://loinc.org",
        "SCT" | "SNOMED" | "SNOMEDCT" | "SNOMED-CT" | "SNM" => "http://snomed.info/sct",
        "I10" | "ICD10" | "ICD-10" => "http://hl7.org/fhir/sid/icd-10",
        "I9" | "I9C" | "ICD9" => "http://hl7.org/fhir/sid/icd-9-cm",
        "UCUM" => "http://unitsofmeasure.org",
        "OPCS" | "OPCS4" | "OPCS-4" => "http://fhir.nhs.uk/CodeSystem/OPCS-4",
        _ => {
            if let Some(t) = upper.strip_prefix("HL7")
                && !t.is_empty()
                && t.bytes().all(|b| b.is_ascii_digit())
            {
                return Some(format!("http://terminology.hl7.org/CodeSystem/v2-{t}"));
            }
            return Some(local_code_system(cfg, name));
        }
    };
    Some(s.to_owned())
}

/// `https://…/CodeSystem/<slug>` next to the identifier base (`/Id` dropped).
pub(crate) fn local_code_system(cfg: &MappingConfig, name: &str) -> String {
    let base = cfg.identifier_base.trim_end_matches('/');
    let base = base.strip_suffix("/Id").unwrap_or(base);
    let slug: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{base}/CodeSystem/{slug}")
}

/// Whether `s` is a valid FHIR `code` (`[^\s]+( [^\s]+)*`). A v2 value that
/// is not (e.g. `A  B`, found by fuzzing) is kept as `text`, never as a
/// coding: FHIR would reject it, and rewriting it would alter the data.
pub(crate) fn valid_code(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.contains("  ")
        && !s.chars().any(|c| c.is_whitespace() && c != ' ')
}

fn coding(code: Option<String>, display: Option<String>, sys: Option<String>) -> Option<Value> {
    let code = code.filter(|c| valid_code(c))?;
    let mut m = Map::new();
    if let Some(s) = sys {
        m.insert("system".into(), json!(s));
    }
    m.insert("code".into(), json!(code));
    if let Some(d) = display {
        m.insert("display".into(), json!(d));
    }
    Some(Value::Object(m))
}

/// A CE/CWE/CNE repetition as a CodeableConcept (primary and alternate
/// codings, text from the first text component); `None` when empty.
pub(crate) fn codeable(rep: &Repetition<'_>, cfg: &MappingConfig) -> Option<Value> {
    let mut codings = Vec::new();
    let text1 = rc(rep, 2);
    if let Some(c) = coding(
        rc(rep, 1),
        text1.clone(),
        rc(rep, 3).and_then(|s| coding_system(&s, cfg)),
    ) {
        codings.push(c);
    }
    let text2 = rc(rep, 5);
    if let Some(c) = coding(
        rc(rep, 4),
        text2.clone(),
        rc(rep, 6).and_then(|s| coding_system(&s, cfg)),
    ) {
        codings.push(c);
    }
    let not_codes = [rc(rep, 1), rc(rep, 4)]
        .into_iter()
        .flatten()
        .find(|c| !valid_code(c));
    let text = rc(rep, 9).or(text1).or(text2).or(not_codes);
    if codings.is_empty() && text.is_none() {
        return None;
    }
    let mut m = Map::new();
    if !codings.is_empty() {
        m.insert("coding".into(), Value::Array(codings));
    }
    if let Some(t) = text {
        m.insert("text".into(), json!(t));
    }
    Some(Value::Object(m))
}

/// A code from an HL7 table (IS/ID or the code of a CWE) as a CodeableConcept
/// with the given system.
pub(crate) fn table_concept(rep: &Repetition<'_>, system: &str) -> Option<Value> {
    let code = rc(rep, 1)?;
    if !valid_code(&code) {
        return Some(json!({"text": code}));
    }
    let mut c = json!({"system": system, "code": code});
    if let Some(d) = rc(rep, 2) {
        c["display"] = json!(d);
    }
    Some(json!({"coding": [c]}))
}

/// Reference JSON.
pub(crate) fn reference(rt: &str, id: &str) -> Value {
    json!({"reference": format!("{rt}/{id}")})
}

/// The system for a clinician code: `G` + 7 digits → GMP (GP) number,
/// 7 digits → GMC number, else `{base}/consultant`.
pub(crate) fn clinician_system(code: &str, cfg: &MappingConfig) -> String {
    let digits7 = |s: &str| s.len() == 7 && s.bytes().all(|b| b.is_ascii_digit());
    if code.len() == 8 && (code.starts_with('G') || code.starts_with('g')) && digits7(&code[1..]) {
        GMP_SYSTEM.into()
    } else if digits7(code) {
        GMC_SYSTEM.into()
    } else {
        format!("{}/consultant", cfg.identifier_base)
    }
}

/// An XCN repetition → Practitioner found or created by identifier (XCN-1;
/// name from XCN-2.. when created or when the stored one has none).
/// `None` when XCN-1 is empty (a name alone cannot identify anyone).
pub(crate) fn practitioner(
    rep: &Repetition<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
) -> Result<Option<Value>, MapError> {
    let Some(code) = rc(rep, 1) else {
        return Ok(None);
    };
    let system = clinician_system(&code, cfg);
    let name = xcn_name(rep);
    let display = name
        .as_ref()
        .and_then(|n| n["text"].as_str().map(str::to_owned));
    let id = match records.find_by_identifier("Practitioner", &system, &code)? {
        Some(mut p) => {
            let id = p["id"].as_str().unwrap_or_default().to_owned();
            if p.get("name").is_none()
                && let Some(n) = name
            {
                p["name"] = json!([n]);
                records.save(p)?;
            }
            id
        }
        None => {
            let mut p = json!({"resourceType": "Practitioner",
                "identifier": [{"system": system, "value": code}], "active": true});
            if let Some(n) = name {
                p["name"] = json!([n]);
            }
            records.save(p)?
        }
    };
    let mut r = reference("Practitioner", &id);
    if let Some(d) = display {
        r["display"] = json!(d);
    }
    Ok(Some(r))
}

/// XCN-2 family, XCN-3 given, XCN-4 middle, XCN-6 prefix → HumanName.
fn xcn_name(rep: &Repetition<'_>) -> Option<Value> {
    let family = rc(rep, 2);
    let given: Vec<String> = [rc(rep, 3), rc(rep, 4)].into_iter().flatten().collect();
    let prefix = rc(rep, 6);
    if family.is_none() && given.is_empty() {
        return None;
    }
    let mut n = Map::new();
    let mut text = Vec::new();
    if let Some(p) = &prefix {
        text.push(p.clone());
    }
    text.extend(given.iter().cloned());
    if let Some(f) = &family {
        n.insert("family".into(), json!(f));
        text.push(f.clone());
    }
    if !given.is_empty() {
        n.insert("given".into(), json!(given));
    }
    if let Some(p) = prefix {
        n.insert("prefix".into(), json!([p]));
    }
    n.insert("text".into(), json!(text.join(" ")));
    Some(Value::Object(n))
}

/// An XON repetition → Organization by ODS code (XON-10, else XON-3).
pub(crate) fn organization(
    rep: &Repetition<'_>,
    records: &mut dyn Records,
) -> Result<Option<Value>, MapError> {
    let Some(code) = rc(rep, 10).or_else(|| rc(rep, 3)) else {
        return Ok(None);
    };
    let name = rc(rep, 1);
    let id = match records.find_by_identifier("Organization", ODS_SYSTEM, &code)? {
        Some(o) => o["id"].as_str().unwrap_or_default().to_owned(),
        None => {
            let mut o = json!({"resourceType": "Organization",
                "identifier": [{"system": ODS_SYSTEM, "value": code}], "active": true});
            if let Some(n) = &name {
                o["name"] = json!(n);
            }
            records.save(o)?
        }
    };
    let mut r = reference("Organization", &id);
    if let Some(n) = name {
        r["display"] = json!(n);
    }
    Ok(Some(r))
}

/// The id of a stored resource.
pub(crate) fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

/// Base64 (standard alphabet, padded).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Formatted text (FT/TX): `\.br\` and `\.sp\` become line breaks.
pub(crate) fn formatted_text(text: &str, msg: &Message<'_>) -> String {
    match msg.separators().escape {
        Some(e) => text
            .replace(&format!("{e}.br{e}"), "\n")
            .replace(&format!("{e}.sp{e}"), "\n"),
        None => text.to_owned(),
    }
}

/// The time of the event: EVN-6 (occurred), else EVN-2 (recorded), else
/// MSH-7 (message time).
pub(crate) fn event_time(msg: &Message<'_>) -> Result<Option<Ts>, MapError> {
    if let Some(evn) = Seg::first(msg, "EVN") {
        if let Some(t) = evn.ts(6)? {
            return Ok(Some(t));
        }
        if let Some(t) = evn.ts(2)? {
            return Ok(Some(t));
        }
    }
    match Seg::first(msg, "MSH") {
        Some(msh) => msh.ts(7),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_codes_are_kept_as_text() {
        assert!(valid_code("A B") && valid_code("H") && valid_code("8867-4"));
        assert!(!valid_code("A  B") && !valid_code(" A") && !valid_code("A\tB"));
        let msg = Message::parse(
            "MSH|^~\\&|||||||ORU^R01\rOBR|||C|A  B^Full blood count\rOBX|1|ST|X||v|||H  L\r",
        )
        .unwrap();
        let cfg = MappingConfig::default();
        let obr4 = msg.segment("OBR").unwrap().field(4).unwrap();
        let cc = codeable(&obr4.repetition(1).unwrap(), &cfg).unwrap();
        assert!(cc.get("coding").is_none(), "{cc}");
        assert_eq!(cc["text"], "Full blood count");
        let obx8 = msg.segment("OBX").unwrap().field(8).unwrap();
        let t = table_concept(
            &obx8.repetition(1).unwrap(),
            "http://terminology.hl7.org/CodeSystem/v2-0078",
        )
        .unwrap();
        assert_eq!(t, json!({"text": "H  L"}));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn clinician_systems() {
        let cfg = MappingConfig::default();
        assert_eq!(clinician_system("G1234567", &cfg), GMP_SYSTEM);
        assert_eq!(clinician_system("1234567", &cfg), GMC_SYSTEM);
        assert_eq!(
            clinician_system("C123", &cfg),
            "https://fhir.wardline.invalid/Id/consultant"
        );
        assert_eq!(
            clinician_system("12345678", &cfg),
            "https://fhir.wardline.invalid/Id/consultant"
        );
    }

    #[test]
    fn coding_systems() {
        let cfg = MappingConfig::default();
        assert_eq!(
            coding_system("LN", &cfg).as_deref(),
            Some("http://loinc.org")
        );
        assert_eq!(
            coding_system("SCT", &cfg).as_deref(),
            Some("http://snomed.info/sct")
        );
        assert_eq!(
            coding_system("HL70078", &cfg).as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v2-0078")
        );
        assert_eq!(
            coding_system("WinPath Tests", &cfg).as_deref(),
            Some("https://fhir.wardline.invalid/CodeSystem/winpath-tests")
        );
        assert_eq!(coding_system("", &cfg), None);
    }
}
