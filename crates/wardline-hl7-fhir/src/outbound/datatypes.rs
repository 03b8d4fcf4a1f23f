//! Segments under construction and the v2 data types built from FHIR
//! elements (DTM, CE/CWE, XCN, EI, numbers).

use std::collections::BTreeMap;

use serde_json::Value;
use wardline_hl7::MessageBuilder;

use super::{arr, str_of, system_is};
use crate::MappingConfig;

/// One repetition of a field: `(component, subcomponent, text)` triples,
/// 1-based. Empty texts are not stored, so an element with no data is an
/// empty `Rep` and is not written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rep(Vec<(usize, usize, String)>);

impl Rep {
    pub fn new() -> Rep {
        Rep(Vec::new())
    }

    /// A repetition holding one text in component 1.
    pub fn text(text: impl AsRef<str>) -> Rep {
        Rep::new().c(1, text)
    }

    /// Sets component `comp`.
    pub fn c(self, comp: usize, text: impl AsRef<str>) -> Rep {
        self.sub(comp, 1, text)
    }

    /// Sets component `comp` when `text` is `Some`.
    pub fn opt(self, comp: usize, text: Option<impl AsRef<str>>) -> Rep {
        match text {
            Some(t) => self.c(comp, t),
            None => self,
        }
    }

    /// Sets subcomponent `sub` of component `comp`.
    pub fn sub(mut self, comp: usize, sub: usize, text: impl AsRef<str>) -> Rep {
        let t = text.as_ref();
        if !t.is_empty() {
            self.0.retain(|(c, s, _)| (*c, *s) != (comp, sub));
            self.0.push((comp, sub, t.to_string()));
        }
        self
    }

    /// Copies `other`'s components to positions `offset + n` (for the
    /// alternate triplet of a CE, or a CE inside a TQ).
    pub fn shifted_into(mut self, other: &Rep, offset: usize) -> Rep {
        for (c, s, t) in &other.0 {
            self = self.sub(c + offset, *s, t);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text of component `comp` (subcomponent 1), if set.
    pub fn get(&self, comp: usize) -> Option<&str> {
        self.0
            .iter()
            .find(|(c, s, _)| *c == comp && *s == 1)
            .map(|(_, _, t)| t.as_str())
    }
}

/// A segment under construction: field number → repetitions. Comparable,
/// so that a mapping can tell whether an update changed what it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seg {
    pub id: &'static str,
    fields: BTreeMap<usize, Vec<Rep>>,
}

impl Seg {
    pub fn new(id: &'static str) -> Seg {
        Seg {
            id,
            fields: BTreeMap::new(),
        }
    }

    /// Sets `field` to one text (replacing what it held).
    pub fn text(&mut self, field: usize, text: impl AsRef<str>) -> &mut Seg {
        self.fields.remove(&field);
        self.rep(field, Rep::text(text))
    }

    /// Sets `field` to `text` when it is `Some`.
    pub fn opt(&mut self, field: usize, text: Option<impl AsRef<str>>) -> &mut Seg {
        match text {
            Some(t) => self.text(field, t),
            None => self,
        }
    }

    /// Appends a repetition to `field` (ignored when empty).
    pub fn rep(&mut self, field: usize, rep: Rep) -> &mut Seg {
        if !rep.is_empty() {
            self.fields.entry(field).or_default().push(rep);
        }
        self
    }

    /// Appends repetitions to `field`.
    pub fn reps(&mut self, field: usize, reps: impl IntoIterator<Item = Rep>) -> &mut Seg {
        for r in reps {
            self.rep(field, r);
        }
        self
    }

    /// Empties `field`.
    pub fn clear(&mut self, field: usize) -> &mut Seg {
        self.fields.remove(&field);
        self
    }

    /// Does the segment hold any field?
    pub fn has_data(&self) -> bool {
        !self.fields.is_empty()
    }

    /// Appends the segment to a message (escaping every text).
    pub fn emit(&self, b: &mut MessageBuilder) {
        let seg = b.segment(self.id);
        for (field, reps) in &self.fields {
            for (i, rep) in reps.iter().enumerate() {
                for (c, s, t) in &rep.0 {
                    seg.set_at(*field, i + 1, *c, *s, t);
                }
            }
        }
    }
}

/// A FHIR date, dateTime, instant or time as HL7 DTM (or TM):
/// `2026-11-23T10:15:00.5+01:00` → `20261123101500.5+0100`. `None` when
/// the text is not a FHIR date/time.
pub(crate) fn dtm(fhir: &str) -> Option<String> {
    let (date, time) = match fhir.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None if fhir.contains(':') => ("", Some(fhir)),
        None => (fhir, None),
    };
    let mut out = String::new();
    for part in date.split('-').filter(|p| !p.is_empty()) {
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        out.push_str(part);
    }
    if let Some(time) = time {
        let (clock, zone) = match time.find(['Z', '+', '-']) {
            Some(i) => (&time[..i], &time[i..]),
            None => (time, ""),
        };
        let (hms, frac) = match clock.split_once('.') {
            Some((h, f)) => (h, Some(f)),
            None => (clock, None),
        };
        for part in hms.split(':') {
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            out.push_str(part);
        }
        if let Some(f) = frac {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            out.push('.');
            out.push_str(&f[..f.len().min(4)]);
        }
        match zone {
            "" => {}
            "Z" => out.push_str("+0000"),
            z => {
                let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
                if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                out.push_str(&z[..1]);
                out.push_str(&digits);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// DTM of a string member.
pub(crate) fn dtm_of(v: &Value, key: &str) -> Option<String> {
    str_of(v, key).and_then(dtm)
}

/// A JSON number as HL7 NM text (never in exponent form): as written in the
/// record when that has no exponent (`1.50` stays `1.50`: a decimal's
/// precision is part of its value), else its value in full.
pub(crate) fn number(v: &Value) -> Option<String> {
    let n = v.as_number()?;
    let written = n.to_string();
    if !written.contains(['e', 'E']) {
        return Some(written);
    }
    if let Some(i) = n.as_i64() {
        return Some(i.to_string());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.to_string());
    }
    n.as_f64().filter(|f| f.is_finite()).map(|f| f.to_string())
}

/// The v2 name of a code system: LOINC `LN`, SNOMED CT `SCT`, UCUM `UCUM`,
/// a v2 table `HL7nnnn`, otherwise the system's last path segment.
pub(crate) fn system_code(system: &str) -> String {
    match system {
        "http://loinc.org" => return "LN".into(),
        "http://snomed.info/sct" => return "SCT".into(),
        "http://unitsofmeasure.org" => return "UCUM".into(),
        _ => {}
    }
    let last = system
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(system);
    if let Some(table) = last.strip_prefix("v2-")
        && system.contains("terminology.hl7.org")
    {
        return format!("HL7{table}");
    }
    if let Some(rest) = last.strip_prefix("urn:") {
        return rest.rsplit(':').next().unwrap_or(rest).to_string();
    }
    last.to_string()
}

/// One coding as `code^display^system`.
fn coding_triplet(coding: &Value) -> Rep {
    Rep::new()
        .opt(1, str_of(coding, "code"))
        .opt(2, str_of(coding, "display"))
        .opt(3, str_of(coding, "system").map(system_code))
}

/// A CodeableConcept (or a Coding) as CE/CWE: the first coding, the second
/// as the alternate triplet; only text → component 2.
pub(crate) fn ce(cc: &Value) -> Rep {
    if str_of(cc, "code").is_some() {
        return coding_triplet(cc);
    }
    let codings = arr(cc, "coding");
    let mut rep = match codings.first() {
        Some(c) => coding_triplet(c),
        None => Rep::new(),
    };
    if let Some(alt) = codings.get(1) {
        rep = rep.shifted_into(&coding_triplet(alt), 3);
    }
    if rep.get(2).is_none()
        && let Some(t) = str_of(cc, "text")
    {
        rep = rep.c(2, t);
    }
    rep
}

/// CE of a member (empty when absent).
pub(crate) fn ce_of(v: &Value, key: &str) -> Rep {
    v.get(key).map(ce).unwrap_or_default()
}

/// The first HumanName with use `official`, else `usual`, else the first.
pub(crate) fn main_name(resource: &Value) -> Option<&Value> {
    let names = arr(resource, "name");
    names
        .iter()
        .find(|n| str_of(n, "use") == Some("official"))
        .or_else(|| names.iter().find(|n| str_of(n, "use") == Some("usual")))
        .or_else(|| names.first())
}

/// Strings of an array member joined with spaces (`given[1..]`).
pub(crate) fn joined(v: &Value, key: &str, skip: usize) -> Option<String> {
    let parts: Vec<&str> = arr(v, key)
        .iter()
        .skip(skip)
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The identifier that names a clinician in XCN-1: GMC number, else the
/// local consultant code, else the GMP code, else the first identifier.
pub(crate) fn clinician_id<'v>(cfg: &MappingConfig, practitioner: &'v Value) -> Option<&'v str> {
    let ids = arr(practitioner, "identifier");
    let consultant = format!("{}/consultant", cfg.identifier_base);
    let by = |pred: &dyn Fn(Option<&str>) -> bool| {
        ids.iter()
            .find(|i| pred(str_of(i, "system")))
            .and_then(|i| str_of(i, "value"))
    };
    by(&|s| system_is(s, "gmc-number"))
        .or_else(|| by(&|s| s == Some(consultant.as_str())))
        .or_else(|| by(&|s| system_is(s, "gmp-number")))
        .or_else(|| ids.iter().find_map(|i| str_of(i, "value")))
}

/// A Practitioner as XCN: `id^family^given^middle^suffix^prefix`.
pub(crate) fn xcn(practitioner: &Value, id: Option<&str>) -> Rep {
    let mut rep = Rep::new().opt(1, id);
    if let Some(n) = main_name(practitioner) {
        rep = rep
            .opt(2, str_of(n, "family"))
            .opt(3, arr(n, "given").first().and_then(Value::as_str))
            .opt(4, joined(n, "given", 1))
            .opt(5, joined(n, "suffix", 0))
            .opt(6, joined(n, "prefix", 0));
        if rep.get(2).is_none() && rep.get(3).is_none() {
            rep = rep.opt(2, str_of(n, "text"));
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_and_times() {
        assert_eq!(dtm("2026-11-23").as_deref(), Some("20261123"));
        assert_eq!(dtm("1980-03").as_deref(), Some("198003"));
        assert_eq!(dtm("1980").as_deref(), Some("1980"));
        assert_eq!(
            dtm("2026-11-23T10:15:00+01:00").as_deref(),
            Some("20261123101500+0100")
        );
        assert_eq!(
            dtm("2026-11-23T10:15:00.123456Z").as_deref(),
            Some("20261123101500.1234+0000")
        );
        assert_eq!(
            dtm("2026-11-23T10:15:00-05:00").as_deref(),
            Some("20261123101500-0500")
        );
        assert_eq!(dtm("10:15:00").as_deref(), Some("101500"));
        assert_eq!(dtm("yesterday"), None);
        assert_eq!(dtm(""), None);
        assert_eq!(dtm("2026-11-23T10:1"), None);
        assert_eq!(dtm("2026-11-23T10:15:00+1"), None);
    }

    #[test]
    fn numbers_never_use_exponents() {
        assert_eq!(number(&json!(5)).as_deref(), Some("5"));
        assert_eq!(number(&json!(-5)).as_deref(), Some("-5"));
        assert_eq!(number(&json!(0.00001)).as_deref(), Some("0.00001"));
        assert_eq!(number(&json!(4.5)).as_deref(), Some("4.5"));
        assert_eq!(number(&json!("4.5")), None);
        // Decimals as written in the record, every digit kept.
        for text in ["1.50", "-0.10", "12345678901234567890.123", "0.000010"] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(number(&v).as_deref(), Some(text));
        }
        let v: Value = serde_json::from_str("1.5e2").unwrap();
        assert_eq!(number(&v).as_deref(), Some("150"));
    }

    #[test]
    fn code_systems() {
        assert_eq!(system_code("http://loinc.org"), "LN");
        assert_eq!(system_code("http://snomed.info/sct"), "SCT");
        assert_eq!(
            system_code("http://terminology.hl7.org/CodeSystem/v2-0074"),
            "HL70074"
        );
        assert_eq!(
            system_code("https://fhir.rfh.nhs.uk/CodeSystem/tests/"),
            "tests"
        );
        assert_eq!(
            system_code("urn:oid:2.16.840.1.113883.6.1"),
            "2.16.840.1.113883.6.1"
        );
    }

    #[test]
    fn concepts() {
        let cc = json!({"coding": [
            {"system": "http://loinc.org", "code": "718-7", "display": "Haemoglobin"},
            {"system": "http://snomed.info/sct", "code": "271026005"}]});
        let r = ce(&cc);
        assert_eq!(r.get(1), Some("718-7"));
        assert_eq!(r.get(3), Some("LN"));
        assert_eq!(r.get(4), Some("271026005"));
        assert_eq!(r.get(6), Some("SCT"));
        assert_eq!(
            ce(&json!({"text": "Full blood count"})).get(2),
            Some("Full blood count")
        );
        assert!(ce(&json!({})).is_empty());
    }
}
