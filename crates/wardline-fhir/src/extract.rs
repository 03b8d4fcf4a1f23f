//! Turning a resource into search-index entries ([`Definitions::extract_index`])
//! and finding its patient ([`Definitions::patient_key`]).
//!
//! Each search parameter's expression is compiled once (cached per process) and
//! evaluated with [`crate::fhirpath`]; the nodes found are converted by their
//! FHIR type into [`IndexValue`]s.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use serde_json::Value;

use crate::datetime::{LocalZone, parse_range_in};
use crate::definitions::{Definitions, SearchParamType};
use crate::fhirpath::{self, Expr, Node};
use crate::index::{IndexEntry, IndexValue, normalise_string};

/// The version of what [`Definitions::extract_index`] computes. It goes up
/// whenever the same resource would be indexed differently, so that a
/// database indexed before is reindexed (the core keeps which version, and
/// which time zone, built a store's index). 1: zone-less dates as UTC, a
/// canonical's version kept in its URL. 2: zone-less dates in the trust's
/// time zone, a canonical's version apart.
pub const INDEX_FORMAT: u32 = 2;

/// Compiled expressions per resource type: (code, type, expression), sorted
/// by code; and the composite parameters.
#[derive(Default)]
struct Compiled {
    simple: HashMap<String, Vec<(String, SearchParamType, Expr)>>,
    composite: HashMap<String, Vec<Composite>>,
    /// Reference parameters whose expression can reach a canonical (or
    /// other URL) element: type → code → what its values can be.
    reference_kinds: HashMap<String, HashMap<String, ReferenceKinds>>,
}

/// What the values of a reference parameter can be, from the types of the
/// elements its expression reaches: `Reference` (or an embedded resource)
/// gives literal references, matched by type and id; `canonical` (and
/// `uri`, `url`) gives URLs, matched by URL and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferenceKinds {
    pub literal: bool,
    pub canonical: bool,
}

impl ReferenceKinds {
    fn of(types: &[String]) -> ReferenceKinds {
        let url = |t: &str| matches!(t, "canonical" | "uri" | "url");
        ReferenceKinds {
            literal: types.is_empty() || types.iter().any(|t| !url(t)),
            canonical: types.iter().any(|t| url(t)),
        }
    }
}

/// Whether a node holds a canonical URL (`url|version`, the version
/// indexed apart).
fn is_canonical(n: &Node<'_>) -> bool {
    n.type_name == "canonical"
}

/// A composite parameter: the base expression selects elements; each
/// component's expression is evaluated relative to one element.
struct Composite {
    code: String,
    base: Expr,
    parts: Vec<(SearchParamType, Expr)>,
}

/// Per-[`Definitions`] cache of compiled expressions per resource type:
/// (code, type, expression), sorted by code.
#[derive(Default)]
pub struct ExtractCache(OnceLock<Compiled>);

impl std::fmt::Debug for ExtractCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ExtractCache(built)"
        } else {
            "ExtractCache(empty)"
        })
    }
}

fn compiled(defs: &Definitions) -> &Compiled {
    defs.extract_cache.0.get_or_init(|| {
        let mut m: Compiled = Compiled::default();
        for (t, ps) in &defs.search_params {
            let mut v = Vec::new();
            let mut composites = Vec::new();
            for p in ps.values() {
                if p.kind == SearchParamType::Composite {
                    if let Some(c) = compile_composite(defs, t, p) {
                        composites.push(c);
                    }
                    continue;
                }
                if matches!(
                    p.kind,
                    SearchParamType::Composite | SearchParamType::Special
                ) || p.code == "_id"
                    || p.code == "_lastUpdated"
                {
                    continue;
                }
                if let Some(e) = p.expression.as_deref().and_then(fhirpath::compile) {
                    if p.kind == SearchParamType::Reference {
                        let kinds = ReferenceKinds::of(&fhirpath::result_types(defs, &e));
                        m.reference_kinds
                            .entry(t.clone())
                            .or_default()
                            .insert(p.code.clone(), kinds);
                    }
                    v.push((p.code.clone(), p.kind, e));
                }
            }
            v.sort_by(|a, b| a.0.cmp(&b.0));
            composites.sort_by(|a, b| a.code.cmp(&b.code));
            m.simple.insert(t.clone(), v);
            m.composite.insert(t.clone(), composites);
        }
        m
    })
}

/// `None` when the base or a component uses FHIRPath outside the subset (the
/// parameter is then neither indexed nor advertised).
fn compile_composite(
    defs: &Definitions,
    t: &str,
    p: &crate::definitions::SearchParamDef,
) -> Option<Composite> {
    let base = fhirpath::compile(p.expression.as_deref()?)?;
    let mut parts = Vec::new();
    for (code, expr) in &p.components {
        let kind = defs.search_param(t, code)?.kind;
        if matches!(kind, SearchParamType::Composite | SearchParamType::Special) {
            return None;
        }
        parts.push((kind, fhirpath::compile_relative(expr)?));
    }
    (!parts.is_empty()).then(|| Composite {
        code: p.code.clone(),
        base,
        parts,
    })
}

/// The index code of component `i` of composite parameter `code`.
pub fn component_param(code: &str, i: usize) -> String {
    format!("{code}${i}")
}

impl Definitions {
    /// Whether the search parameter `code` of `resource_type` is indexed.
    pub fn is_indexed(&self, resource_type: &str, code: &str) -> bool {
        code == "_id"
            || code == "_lastUpdated"
            || compiled(self)
                .simple
                .get(resource_type)
                .is_some_and(|v| v.iter().any(|(c, _, _)| c == code))
            || compiled(self)
                .composite
                .get(resource_type)
                .is_some_and(|v| v.iter().any(|c| c.code == code))
    }

    /// What the values of reference parameter `code` of `resource_type` can
    /// be (literal references only, for a parameter that is not indexed).
    pub fn reference_kinds(&self, resource_type: &str, code: &str) -> ReferenceKinds {
        compiled(self)
            .reference_kinds
            .get(resource_type)
            .and_then(|m| m.get(code))
            .copied()
            .unwrap_or(ReferenceKinds {
                literal: true,
                canonical: false,
            })
    }

    /// The index entries of `resource`; its date values without an offset
    /// are read in `zone`, the trust's local time zone (see
    /// [`crate::datetime`]).
    pub fn extract_index(&self, resource: &Value, zone: &LocalZone) -> Vec<IndexEntry> {
        let rt = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut out = Vec::new();
        let Some(params) = compiled(self).simple.get(rt) else {
            return out;
        };
        for (code, kind, expr) in params {
            let start = out.len();
            for n in fhirpath::evaluate(self, expr, resource) {
                convert(self, zone, code, *kind, &n, &mut out);
            }
            dedup_from(&mut out, start);
        }
        // Composite parameters: every component value of one element carries
        // that element's group number.
        for c in compiled(self).composite.get(rt).into_iter().flatten() {
            for (g, element) in fhirpath::evaluate(self, &c.base, resource)
                .iter()
                .enumerate()
            {
                let start = out.len();
                for (i, (kind, expr)) in c.parts.iter().enumerate() {
                    let code = component_param(&c.code, i);
                    for n in fhirpath::evaluate_from(self, expr, element) {
                        convert(self, zone, &code, *kind, &n, &mut out);
                    }
                }
                for e in &mut out[start..] {
                    e.group = Some(g as u32);
                }
            }
        }
        out
    }

    /// The id of the Patient whose compartment `resource` is in.
    pub fn patient_key(&self, resource: &Value) -> Option<String> {
        let rt = resource.get("resourceType")?.as_str()?;
        if rt == "Patient" {
            return resource.get("id")?.as_str().map(str::to_owned);
        }
        let params = self.patient_compartment.get(rt)?;
        let compiled = compiled(self).simple.get(rt)?;
        for p in params {
            let Some((_, _, expr)) = compiled.iter().find(|(c, _, _)| c == p) else {
                continue;
            };
            for n in fhirpath::evaluate(self, expr, resource) {
                if let Some(r) = n.value.get("reference").and_then(Value::as_str)
                    && let Some((Some(t), Some(id))) = split_reference(r)
                    && t == "Patient"
                {
                    return Some(id);
                }
            }
        }
        None
    }
}

/// Removes from `out[start..]` every entry equal to an earlier one of that
/// range, keeping the first of each in order: one pass with a hash set
/// (linear; a scan of the earlier entries for each one was quadratic, and a
/// Patient with 12,000 names held the writer for seconds).
fn dedup_from(out: &mut Vec<IndexEntry>, start: usize) {
    if out.len() - start < 2 {
        return;
    }
    let tail = out.split_off(start);
    let keep: Vec<bool> = {
        // foldhash with a per-process random seed: entries come from the
        // request, so the seed keeps collisions unpredictable, and it hashes
        // several times faster than SipHash (which showed in the profile).
        let mut seen: HashSet<Key<'_>, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(tail.len(), Default::default());
        // An entry holding NaN equals nothing, itself included (as
        // `PartialEq` says): it is always kept.
        tail.iter()
            .map(|e| has_nan(&e.value) || seen.insert(Key(e)))
            .collect()
    };
    out.extend(
        tail.into_iter()
            .zip(keep)
            .filter_map(|(e, k)| k.then_some(e)),
    );
}

fn has_nan(v: &IndexValue) -> bool {
    match v {
        IndexValue::Number { value } | IndexValue::Quantity { value, .. } => value.is_nan(),
        _ => false,
    }
}

/// An entry compared by `PartialEq`, hashed consistently with it (`0.0` and
/// `-0.0` are equal, so hash alike); never built for an entry holding NaN.
struct Key<'a>(&'a IndexEntry);

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Key<'_> {}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        fn f64_bits(x: f64) -> u64 {
            if x == 0.0 { 0 } else { x.to_bits() }
        }
        let e = self.0;
        e.param.hash(h);
        e.group.hash(h);
        std::mem::discriminant(&e.value).hash(h);
        match &e.value {
            IndexValue::Token { system, code, text } => (system, code, text).hash(h),
            IndexValue::String { norm, exact } => (norm, exact).hash(h),
            IndexValue::Date { lo, hi } => (lo, hi).hash(h),
            IndexValue::Number { value } => f64_bits(*value).hash(h),
            IndexValue::Quantity {
                value,
                system,
                code,
                unit,
            } => (f64_bits(*value), system, code, unit).hash(h),
            IndexValue::Reference {
                target_type,
                target_id,
                url,
                version,
            } => (target_type, target_id, url, version).hash(h),
            IndexValue::Uri { value } => value.hash(h),
        }
    }
}

/// `Type/id`, `Type/id/_history/v` or an absolute URL ending so → (type, id).
pub fn split_reference(r: &str) -> Option<(Option<String>, Option<String>)> {
    if r.starts_with('#') || r.starts_with("urn:") {
        return None;
    }
    let parts: Vec<&str> = r.split('/').collect();
    let n = parts.len();
    let (t, id) = if n >= 4 && parts[n - 2] == "_history" {
        (parts[n - 4], parts[n - 3])
    } else if n >= 2 {
        (parts[n - 2], parts[n - 1])
    } else {
        return None;
    };
    if t.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && !id.is_empty() {
        Some((Some(t.to_owned()), Some(id.to_owned())))
    } else {
        None
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

fn push_string(code: &str, v: &str, out: &mut Vec<IndexEntry>) {
    if v.is_empty() {
        return;
    }
    out.push(IndexEntry {
        param: code.to_owned(),
        value: IndexValue::String {
            norm: normalise_string(v),
            exact: v.to_owned(),
        },
        group: None,
    });
}

fn convert(
    defs: &Definitions,
    zone: &LocalZone,
    code: &str,
    kind: SearchParamType,
    n: &Node<'_>,
    out: &mut Vec<IndexEntry>,
) {
    let v = n.value;
    let e = |value| IndexEntry {
        param: code.to_owned(),
        value,
        group: None,
    };
    match kind {
        SearchParamType::Token => match v {
            Value::String(x) => out.push(e(IndexValue::Token {
                system: None,
                code: Some(x.clone()),
                text: None,
            })),
            Value::Bool(b) => out.push(e(IndexValue::Token {
                system: None,
                code: Some(b.to_string()),
                text: None,
            })),
            // An integer-typed token path (e.g. a sequence number).
            Value::Number(x) => out.push(e(IndexValue::Token {
                system: None,
                code: Some(x.to_string()),
                text: None,
            })),
            Value::Object(o) => {
                if let Some(codings) = o.get("coding").and_then(Value::as_array) {
                    // One entry per coding, its text the display (else the
                    // concept's text); the concept's text gets its own entry when
                    // no coding carries it, so `:text` finds either.
                    let text = s(v, "text");
                    let mut text_used = false;
                    for c in codings {
                        let t = s(c, "display").or_else(|| text.clone());
                        text_used |= t.is_some() && t == text;
                        out.push(e(IndexValue::Token {
                            system: s(c, "system"),
                            code: s(c, "code"),
                            text: t,
                        }));
                    }
                    if !text_used && text.is_some() {
                        out.push(e(IndexValue::Token {
                            system: None,
                            code: None,
                            text,
                        }));
                    }
                } else if o.contains_key("value")
                    && (o.contains_key("system")
                        || n.type_name == "Identifier"
                        || n.type_name == "ContactPoint")
                {
                    let text = v.get("type").and_then(|t| s(t, "text"));
                    let system = if n.type_name == "ContactPoint" {
                        None
                    } else {
                        s(v, "system")
                    };
                    out.push(e(IndexValue::Token {
                        system,
                        code: v.get("value").map(|x| match x {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        }),
                        text,
                    }));
                } else if o.contains_key("code") || o.contains_key("system") {
                    out.push(e(IndexValue::Token {
                        system: s(v, "system"),
                        code: s(v, "code"),
                        text: s(v, "display"),
                    }));
                } else if let Some(t) = s(v, "text") {
                    out.push(e(IndexValue::Token {
                        system: None,
                        code: None,
                        text: Some(t),
                    }));
                }
            }
            _ => {}
        },
        // `phonetic` (Patient, Person, Practitioner, RelatedPerson: `.name`):
        // the names' phonetic codes, matched by equality (see `crate::phonetic`).
        SearchParamType::String if code == "phonetic" => {
            for c in crate::phonetic::name_codes(v) {
                out.push(e(IndexValue::String {
                    norm: c.to_ascii_lowercase(),
                    exact: c,
                }));
            }
        }
        SearchParamType::String => match v {
            Value::String(x) => push_string(code, x, out),
            Value::Object(_) => {
                for k in [
                    "family",
                    "text",
                    "city",
                    "district",
                    "state",
                    "postalCode",
                    "country",
                ] {
                    if let Some(x) = v.get(k).and_then(Value::as_str) {
                        push_string(code, x, out);
                    }
                }
                for k in ["given", "prefix", "suffix", "line"] {
                    if let Some(a) = v.get(k).and_then(Value::as_array) {
                        for x in a.iter().filter_map(Value::as_str) {
                            push_string(code, x, out);
                        }
                    }
                }
            }
            _ => {}
        },
        SearchParamType::Date => match v {
            Value::String(x) => {
                if let Some((lo, hi)) = parse_range_in(x, zone) {
                    out.push(e(IndexValue::Date { lo, hi }));
                }
            }
            Value::Object(_) => {
                if v.get("start").is_some() || v.get("end").is_some() {
                    let lo = v
                        .get("start")
                        .and_then(Value::as_str)
                        .and_then(|x| parse_range_in(x, zone))
                        .map_or(i64::MIN, |r| r.0);
                    let hi = v
                        .get("end")
                        .and_then(Value::as_str)
                        .and_then(|x| parse_range_in(x, zone))
                        .map_or(i64::MAX, |r| r.1);
                    out.push(e(IndexValue::Date { lo, hi }));
                } else if let Some(ev) = v.get("event").and_then(Value::as_array) {
                    for x in ev.iter().filter_map(Value::as_str) {
                        if let Some((lo, hi)) = parse_range_in(x, zone) {
                            out.push(e(IndexValue::Date { lo, hi }));
                        }
                    }
                }
            }
            _ => {}
        },
        SearchParamType::Number => {
            if let Some(x) = v.as_f64() {
                out.push(e(IndexValue::Number { value: x }));
            }
        }
        SearchParamType::Quantity => {
            if let Some(x) = v.get("value").and_then(Value::as_f64) {
                out.push(e(IndexValue::Quantity {
                    value: x,
                    system: s(v, "system"),
                    code: s(v, "code").or_else(|| s(v, "currency")),
                    unit: s(v, "unit"),
                }));
            }
        }
        SearchParamType::Reference => match v {
            // An embedded resource (`Bundle.entry[0].resource`): its own identity.
            Value::Object(o) if o.contains_key("resourceType") => {
                if let (Some(t), Some(id)) = (s(v, "resourceType"), s(v, "id")) {
                    out.push(e(IndexValue::Reference {
                        url: format!("{t}/{id}"),
                        target_type: Some(t),
                        target_id: Some(id),
                        version: None,
                    }));
                }
            }
            Value::Object(_) => {
                if let Some(r) = s(v, "reference") {
                    if r.starts_with('#') {
                        return;
                    }
                    let (target_type, target_id) = match split_reference(&r) {
                        Some((Some(t), id))
                            if defs.types.is_empty() || defs.is_resource_type(&t) =>
                        {
                            (Some(t), id)
                        }
                        _ => (None, None),
                    };
                    out.push(e(IndexValue::Reference {
                        target_type,
                        target_id,
                        url: r,
                        version: None,
                    }));
                }
            }
            // A canonical (`url|version`) or another URL: matched by URL.
            Value::String(x) => {
                let (url, version) = match x.split_once('|') {
                    Some((u, v)) if is_canonical(n) => (u.to_owned(), Some(v.to_owned())),
                    _ => (x.clone(), None),
                };
                out.push(e(IndexValue::Reference {
                    target_type: None,
                    target_id: None,
                    url,
                    version,
                }))
            }
            _ => {}
        },
        SearchParamType::Uri => {
            if let Some(x) = v.as_str() {
                out.push(e(IndexValue::Uri {
                    value: x.to_owned(),
                }));
            }
        }
        SearchParamType::Composite | SearchParamType::Special => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::r4;
    use serde_json::json;

    /// The de-duplication before the hash set: for each entry, a scan of
    /// the earlier ones (the oracle).
    fn dedup_quadratic(out: &mut Vec<IndexEntry>, start: usize) {
        let mut i = start;
        while i < out.len() {
            if out[start..i].contains(&out[i]) {
                out.remove(i);
            } else {
                i += 1;
            }
        }
    }

    #[test]
    fn dedup_keeps_the_first_of_each_in_order_like_the_scan() {
        let s = |p: &str, v: &str| {
            IndexEntry::new(
                p,
                IndexValue::String {
                    norm: v.to_lowercase(),
                    exact: v.into(),
                },
            )
        };
        let n = |v: f64| IndexEntry::new("n", IndexValue::Number { value: v });
        let q = |v: f64| {
            IndexEntry::new(
                "q",
                IndexValue::Quantity {
                    value: v,
                    system: None,
                    code: Some("kg".into()),
                    unit: None,
                },
            )
        };
        let mut grouped = s("c", "x");
        grouped.group = Some(1);
        let mut entries = vec![
            s("before", "a"),
            s("before", "a"),
            s("name", "Bloggs"),
            s("name", "bloggs"),
            s("name", "Bloggs"),
            s("given", "Bloggs"),
            n(0.0),
            n(-0.0),
            n(f64::NAN),
            n(f64::NAN),
            n(1.5),
            q(2.0),
            q(2.0),
            q(-0.0),
            q(0.0),
            s("c", "x"),
            grouped.clone(),
            grouped,
        ];
        for i in 0..2000 {
            entries.push(s("many", &format!("v{}", i % 700)));
        }
        for start in [0, 1, 2, 10] {
            let mut fast = entries.clone();
            let mut slow = entries.clone();
            dedup_from(&mut fast, start);
            dedup_quadratic(&mut slow, start);
            // NaN is not equal to itself: compare by Debug text.
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "start {start}");
        }
        let mut one = vec![s("a", "b")];
        dedup_from(&mut one, 0);
        assert_eq!(one.len(), 1);
        dedup_from(&mut one, 1);
        assert_eq!(one.len(), 1);
    }

    /// A Patient whose names repeat extracts exactly what the Patient with
    /// each name once does (the first of each kept, in order), however many
    /// repeats.
    #[test]
    fn many_duplicate_names_extract_the_same_set_as_the_unique_ones() {
        let name = |i: usize| {
            json!({"text": format!("Dr Jo{i} Bloggs{i}"), "family": format!("Bloggs{i}"),
                "given": [format!("Jo{i}"), "Ann", format!("Sue{}", i % 7)],
                "prefix": ["Dr"], "suffix": [format!("PhD{}", i % 3)]})
        };
        let unique: Vec<_> = (0..300).map(name).collect();
        let mut repeated = unique.clone();
        repeated.extend((0..1200).map(|i| name(i % 300)));
        let d = r4();
        let utc = LocalZone::utc();
        let a = d.extract_index(&json!({"resourceType": "Patient", "name": unique}), &utc);
        let b = d.extract_index(&json!({"resourceType": "Patient", "name": repeated}), &utc);
        assert_eq!(a, b);
        assert!(a.iter().filter(|e| e.param == "given").count() == 300 + 1 + 7);
    }

    #[test]
    fn patient_entries() {
        let p = json!({
            "resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
            "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
            "birthDate": "1974-12-25",
            "gender": "male",
            "generalPractitioner": [{"reference": "Organization/gp1"}]
        });
        let d = r4();
        let idx = d.extract_index(&p, &LocalZone::utc());
        let has = |param: &str, f: &dyn Fn(&IndexValue) -> bool| {
            idx.iter().any(|e| e.param == param && f(&e.value))
        };
        assert!(has(
            "family",
            &|v| matches!(v, IndexValue::String { norm, .. } if norm == "chalmers")
        ));
        assert!(has(
            "given",
            &|v| matches!(v, IndexValue::String { norm, .. } if norm == "james")
        ));
        assert!(has(
            "identifier",
            &|v| matches!(v, IndexValue::Token { code: Some(c), .. } if c == "9434765919")
        ));
        assert!(has(
            "gender",
            &|v| matches!(v, IndexValue::Token { code: Some(c), .. } if c == "male")
        ));
        assert!(has(
            "birthdate",
            &|v| matches!(v, IndexValue::Date { lo, hi } if hi - lo == 86_400_000)
        ));
        assert!(has(
            "general-practitioner",
            &|v| matches!(v, IndexValue::Reference { target_id: Some(i), .. } if i == "gp1")
        ));
        assert_eq!(d.patient_key(&p).as_deref(), Some("p1"));
    }

    #[test]
    fn phonetic_entries_are_codes() {
        let p = json!({"resourceType": "Patient", "name": [{"family": "Smyth", "given": ["Jon"]}]});
        let idx = r4().extract_index(&p, &LocalZone::utc());
        let codes: Vec<&str> = idx
            .iter()
            .filter(|e| e.param == "phonetic")
            .filter_map(|e| match &e.value {
                IndexValue::String { norm, .. } => Some(norm.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(codes, vec!["sm0", "xmt", "jn", "an"]);
        // The query side encodes the same way: `phonetic=Smith` asks for these.
        let q = crate::search::parse(
            r4(),
            Some("Patient"),
            &[("phonetic".into(), "Smith".into())],
            crate::search::Handling::Strict,
        )
        .unwrap();
        assert!(matches!(
            &q.filters[0].kind,
            crate::search::FilterKind::Match(v) if v == &vec![
                crate::search::Predicate::String { value: "sm0".into(), mode: crate::search::StringMatch::Equal },
                crate::search::Predicate::String { value: "xmt".into(), mode: crate::search::StringMatch::Equal },
            ]
        ));
        assert!(
            crate::search::parse(
                r4(),
                Some("Patient"),
                &[("phonetic".into(), "123".into())],
                crate::search::Handling::Strict,
            )
            .is_err()
        );
    }

    #[test]
    fn observation_entries() {
        let o = json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": "Patient/p9"},
            "effectiveDateTime": "2024-01-02T10:00:00Z",
            "valueQuantity": {"value": 72, "unit": "beats/min", "system": "http://unitsofmeasure.org", "code": "/min"}
        });
        let d = r4();
        let idx = d.extract_index(&o, &LocalZone::utc());
        assert!(idx.iter().any(|e| e.param == "code" && matches!(&e.value, IndexValue::Token { code: Some(c), system: Some(s), .. } if c == "8867-4" && s == "http://loinc.org")));
        assert!(idx.iter().any(|e| e.param == "value-quantity"
            && matches!(&e.value, IndexValue::Quantity { value, .. } if *value == 72.0)));
        assert!(idx.iter().any(|e| e.param == "patient"));
        assert!(idx.iter().any(|e| e.param == "date"));
        assert_eq!(d.patient_key(&o).as_deref(), Some("p9"));
    }

    fn testdata() -> Option<std::path::PathBuf> {
        let root = std::env::var("WARDLINE_TESTDATA").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata").to_owned()
        });
        let dir = std::path::PathBuf::from(root).join("fhir-r4-examples");
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!("SKIPPED: no test data at {}", dir.display());
            None
        }
    }

    fn load(dir: &std::path::Path, name: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    }

    fn values<'a>(idx: &'a [IndexEntry], param: &str) -> Vec<&'a IndexValue> {
        idx.iter()
            .filter(|e| e.param == param)
            .map(|e| &e.value)
            .collect()
    }

    #[test]
    fn official_patient_example() {
        let Some(dir) = testdata() else { return };
        let p = load(&dir, "Patient-example.json");
        let d = r4();
        let idx = d.extract_index(&p, &LocalZone::utc());
        let family = values(&idx, "family");
        assert!(family.contains(&&IndexValue::String {
            norm: "chalmers".into(),
            exact: "Chalmers".into()
        }));
        assert!(
            family
                .iter()
                .any(|v| matches!(v, IndexValue::String { norm, .. } if norm == "windsor"))
        );
        // 1974-12-25 is day 1819 after the epoch; a date covers that whole day.
        let day = 1819 * 86_400_000i64;
        assert_eq!(
            values(&idx, "birthdate"),
            vec![&IndexValue::Date {
                lo: day,
                hi: day + 86_400_000
            }]
        );
        assert!(values(&idx, "identifier").contains(&&IndexValue::Token {
            system: Some("urn:oid:1.2.36.146.595.217.0.1".into()),
            code: Some("12345".into()),
            text: None,
        }));
        assert!(values(&idx, "phone").contains(&&IndexValue::Token {
            system: None,
            code: Some("(03) 5555 6473".into()),
            text: None,
        }));
        // `deceased.exists() and deceased != false` over deceasedBoolean false.
        assert_eq!(
            values(&idx, "deceased"),
            vec![&IndexValue::Token {
                system: None,
                code: Some("false".into()),
                text: None
            }]
        );
        // "Peter" and "James" appear in two names: indexed once each.
        let peters = values(&idx, "given")
            .into_iter()
            .filter(|v| matches!(v, IndexValue::String { norm, .. } if norm == "peter"))
            .count();
        assert_eq!(peters, 1);
        assert!(
            !idx.iter()
                .any(|e| e.param == "_id" || e.param == "_lastUpdated")
        );
        assert_eq!(d.patient_key(&p).as_deref(), Some("example"));
    }

    #[test]
    fn official_observation_example() {
        let Some(dir) = testdata() else { return };
        let o = load(&dir, "Observation-example.json");
        let d = r4();
        let idx = d.extract_index(&o, &LocalZone::utc());
        let codes = values(&idx, "code");
        assert_eq!(codes.len(), 4);
        assert!(codes.contains(&&IndexValue::Token {
            system: Some("http://loinc.org".into()),
            code: Some("29463-7".into()),
            text: Some("Body Weight".into()),
        }));
        assert_eq!(
            values(&idx, "value-quantity"),
            vec![&IndexValue::Quantity {
                value: 185.0,
                system: Some("http://unitsofmeasure.org".into()),
                code: Some("[lb_av]".into()),
                unit: Some("lbs".into()),
            }]
        );
        let subject = IndexValue::Reference {
            target_type: Some("Patient".into()),
            target_id: Some("example".into()),
            url: "Patient/example".into(),
            version: None,
        };
        assert_eq!(values(&idx, "subject"), vec![&subject]);
        assert_eq!(values(&idx, "patient"), vec![&subject]);
        assert_eq!(values(&idx, "date").len(), 1);
        assert_eq!(d.patient_key(&o).as_deref(), Some("example"));
    }

    #[test]
    fn every_official_example_extracts() {
        let Some(dir) = testdata() else { return };
        let d = r4();
        let (mut files, mut entries, mut keyed) = (0, 0, 0);
        for f in std::fs::read_dir(&dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&std::fs::read_to_string(&path).unwrap())
            else {
                continue;
            };
            files += 1;
            let idx = d.extract_index(&v, &LocalZone::utc());
            entries += idx.len();
            for (i, e) in idx.iter().enumerate() {
                assert!(!idx[..i].contains(e), "{}: duplicate {e:?}", path.display());
                if let IndexValue::Date { lo, hi } = e.value {
                    assert!(lo < hi, "{}: {e:?}", path.display());
                }
            }
            let key = d.patient_key(&v);
            let rt = v["resourceType"].as_str().unwrap_or_default();
            if rt == "Patient" {
                assert_eq!(key.as_deref(), v["id"].as_str());
            }
            if matches!(rt, "Observation" | "Condition" | "Encounter")
                && v["subject"]["reference"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("Patient/"))
            {
                assert!(key.is_some(), "{}: no patient key", path.display());
            }
            keyed += usize::from(key.is_some());
        }
        eprintln!("{files} examples, {entries} index entries, {keyed} with a patient key");
        // Cost per resource (informational; run with --release for real figures).
        let docs: Vec<Value> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|f| std::fs::read_to_string(f.ok()?.path()).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .filter(|v: &Value| v["resourceType"] != "Bundle")
            .collect();
        let t = std::time::Instant::now();
        let mut n = 0;
        for _ in 0..5 {
            for v in &docs {
                n += d.extract_index(v, &LocalZone::utc()).len()
                    + usize::from(d.patient_key(v).is_some());
            }
        }
        eprintln!(
            "extract_index + patient_key: {:.1} µs per resource ({n})",
            t.elapsed().as_secs_f64() * 1e6 / (5 * docs.len()) as f64
        );
        assert!(files > 100 && entries > files * 5 && keyed > 50);
    }

    /// A small hand-built model: one resource type `Thing` with an element of
    /// each datatype the converter handles, and a parameter over each.
    fn hand_defs() -> Definitions {
        use crate::definitions::{ElementDef, SearchParamDef, TypeDef, TypeKind};
        let el = |path: &str, types: &[&str]| ElementDef {
            path: path.into(),
            min: 0,
            max: None,
            types: types.iter().map(|t| t.to_string()).collect(),
            content_reference: None,
            is_summary: false,
        };
        let thing = TypeDef {
            name: "Thing".into(),
            kind: TypeKind::Resource,
            is_abstract: false,
            elements: vec![
                el("Thing", &[]),
                el("Thing.period", &["Period"]),
                el("Thing.timing", &["Timing"]),
                el("Thing.cost", &["Money"]),
                el("Thing.telecom", &["ContactPoint"]),
                el("Thing.ident", &["Identifier"]),
                el("Thing.concept", &["CodeableConcept"]),
                el("Thing.ref", &["Reference"]),
                el("Thing.name", &["HumanName"]),
                el("Thing.address", &["Address"]),
                el("Thing.count", &["integer"]),
                el("Thing.url", &["uri"]),
                el("Thing.when[x]", &["dateTime", "Period", "string"]),
            ],
        };
        let patient = TypeDef {
            name: "Patient".into(),
            kind: TypeKind::Resource,
            is_abstract: false,
            elements: vec![el("Patient", &[])],
        };
        let mut d = Definitions::default();
        for t in [thing, patient] {
            for (i, e) in t.elements.iter().enumerate() {
                d.element_index.insert(e.path.clone(), (t.name.clone(), i));
            }
            d.types.insert(t.name.clone(), t);
        }
        let params = [
            ("period", SearchParamType::Date, "Thing.period"),
            ("timing", SearchParamType::Date, "Thing.timing"),
            ("when", SearchParamType::Date, "Thing.when"),
            ("cost", SearchParamType::Quantity, "Thing.cost"),
            ("telecom", SearchParamType::Token, "Thing.telecom"),
            ("ident", SearchParamType::Token, "Thing.ident"),
            ("concept", SearchParamType::Token, "Thing.concept"),
            ("ref", SearchParamType::Reference, "Thing.ref"),
            ("name", SearchParamType::String, "Thing.name"),
            ("address", SearchParamType::String, "Thing.address"),
            ("count", SearchParamType::Number, "Thing.count"),
            ("url", SearchParamType::Uri, "Thing.url"),
            ("_id", SearchParamType::Token, "Thing.id"),
            ("odd", SearchParamType::Token, "Thing.ident.select(value)"),
        ];
        for (code, kind, x) in params {
            d.search_params.entry("Thing".into()).or_default().insert(
                code.into(),
                SearchParamDef {
                    code: code.into(),
                    resource_type: "Thing".into(),
                    kind,
                    expression: Some(x.into()),
                    targets: vec![],
                    components: vec![],
                },
            );
        }
        d.patient_compartment
            .insert("Thing".into(), vec!["ref".into()]);
        d
    }

    #[test]
    fn converts_each_datatype() {
        let d = hand_defs();
        let ms = |x: &str| crate::datetime::parse_range(x).unwrap();
        let thing = json!({
            "resourceType": "Thing", "id": "t1",
            "period": [{"start": "2020-01-01"}, {"end": "2021"}, {"start": "2020", "end": "2020-06"}],
            "timing": {"event": ["2020-03-04T10:00:00Z", "not a date"]},
            "whenString": "2020-01-01",
            "cost": {"value": 12.5, "currency": "GBP"},
            "telecom": [{"system": "email", "value": "a@b.uk"}],
            "ident": {"system": "urn:x", "value": "42", "type": {"text": "Local"}},
            "concept": [
                {"coding": [{"system": "s", "code": "c1", "display": "One"}], "text": "Uno"},
                {"text": "free text only"},
                {"coding": [{"system": "s", "code": "c1", "display": "One"}], "text": "Uno"}
            ],
            "ref": [
                {"reference": "Patient/p1/_history/3"},
                {"reference": "#contained"},
                {"reference": "urn:uuid:0f5e2c48-8c4a-4d3e-9a8e-000000000001"},
                {"reference": "https://ex.org/fhir/Patient/p2"},
                {"reference": "https://ex.org/fhir/NotAType/p3"}
            ],
            "name": {"text": "Dr Jo Bloggs", "family": "Bloggs", "given": ["Jo"], "prefix": ["Dr"], "suffix": ["PhD"]},
            "address": {"line": ["1 High St"], "city": "Leeds", "district": "W Yorks", "state": "England", "postalCode": "LS1 1AA", "country": "UK", "text": "1 High St, Leeds"},
            "count": 3,
            "url": "http://ex.org/x"
        });
        let idx = d.extract_index(&thing, &LocalZone::utc());
        assert_eq!(
            values(&idx, "period"),
            vec![
                &IndexValue::Date {
                    lo: ms("2020-01-01").0,
                    hi: i64::MAX
                },
                &IndexValue::Date {
                    lo: i64::MIN,
                    hi: ms("2021").1
                },
                &IndexValue::Date {
                    lo: ms("2020").0,
                    hi: ms("2020-06").1
                },
            ]
        );
        assert_eq!(
            values(&idx, "timing"),
            vec![&IndexValue::Date {
                lo: ms("2020-03-04T10:00:00Z").0,
                hi: ms("2020-03-04T10:00:00Z").1
            }]
        );
        // A string-typed choice in a date parameter is a date only if it parses.
        assert_eq!(values(&idx, "when").len(), 1);
        assert_eq!(
            values(&idx, "cost"),
            vec![&IndexValue::Quantity {
                value: 12.5,
                system: None,
                code: Some("GBP".into()),
                unit: None
            }]
        );
        assert_eq!(
            values(&idx, "telecom"),
            vec![&IndexValue::Token {
                system: None,
                code: Some("a@b.uk".into()),
                text: None
            }]
        );
        assert_eq!(
            values(&idx, "ident"),
            vec![&IndexValue::Token {
                system: Some("urn:x".into()),
                code: Some("42".into()),
                text: Some("Local".into())
            }]
        );
        assert_eq!(
            values(&idx, "concept"),
            vec![
                &IndexValue::Token {
                    system: Some("s".into()),
                    code: Some("c1".into()),
                    text: Some("One".into())
                },
                &IndexValue::Token {
                    system: None,
                    code: None,
                    text: Some("Uno".into())
                },
                &IndexValue::Token {
                    system: None,
                    code: None,
                    text: Some("free text only".into())
                },
            ]
        );
        assert_eq!(
            values(&idx, "ref"),
            vec![
                &IndexValue::Reference {
                    target_type: Some("Patient".into()),
                    target_id: Some("p1".into()),
                    url: "Patient/p1/_history/3".into(),
                    version: None
                },
                &IndexValue::Reference {
                    target_type: None,
                    target_id: None,
                    url: "urn:uuid:0f5e2c48-8c4a-4d3e-9a8e-000000000001".into(),
                    version: None
                },
                &IndexValue::Reference {
                    target_type: Some("Patient".into()),
                    target_id: Some("p2".into()),
                    url: "https://ex.org/fhir/Patient/p2".into(),
                    version: None
                },
                &IndexValue::Reference {
                    target_type: None,
                    target_id: None,
                    url: "https://ex.org/fhir/NotAType/p3".into(),
                    version: None
                },
            ]
        );
        let strings = |p: &str| -> Vec<String> {
            values(&idx, p)
                .into_iter()
                .map(|v| match v {
                    IndexValue::String { exact, .. } => exact.clone(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let mut names = strings("name");
        names.sort();
        assert_eq!(names, vec!["Bloggs", "Dr", "Dr Jo Bloggs", "Jo", "PhD"]);
        let mut addr = strings("address");
        addr.sort();
        assert_eq!(
            addr,
            vec![
                "1 High St",
                "1 High St, Leeds",
                "England",
                "LS1 1AA",
                "Leeds",
                "UK",
                "W Yorks"
            ]
        );
        assert_eq!(
            values(&idx, "count"),
            vec![&IndexValue::Number { value: 3.0 }]
        );
        assert_eq!(
            values(&idx, "url"),
            vec![&IndexValue::Uri {
                value: "http://ex.org/x".into()
            }]
        );
        // `_id` is the store's; an expression outside the subset is not evaluated.
        assert!(values(&idx, "_id").is_empty() && values(&idx, "odd").is_empty());
        assert!(
            crate::fhirpath::unsupported_params(&d)
                .iter()
                .any(|p| p.starts_with("Thing.odd"))
        );
        assert_eq!(d.patient_key(&thing).as_deref(), Some("p1"));
        let orphan = json!({"resourceType": "Thing", "ref": {"reference": "Group/g"}});
        assert_eq!(d.patient_key(&orphan), None);
        assert_eq!(d.patient_key(&json!({"resourceType": "Unknown"})), None);
        assert!(
            d.extract_index(&json!({"no": "type"}), &LocalZone::utc())
                .is_empty()
        );
    }
}

#[cfg(test)]
mod canonical_and_zone_tests {
    use crate::datetime::{LocalZone, parse_range_in};
    use crate::definitions::r4;
    use crate::fhirpath;
    use crate::index::IndexValue;
    use serde_json::json;

    fn values(v: &serde_json::Value, param: &str, zone: &LocalZone) -> Vec<IndexValue> {
        r4().extract_index(v, zone)
            .into_iter()
            .filter(|e| e.param == param)
            .map(|e| e.value)
            .collect()
    }

    fn url(url: &str, version: Option<&str>) -> IndexValue {
        IndexValue::Reference {
            target_type: None,
            target_id: None,
            url: url.into(),
            version: version.map(str::to_owned),
        }
    }

    #[test]
    fn a_canonical_keeps_its_version_apart() {
        let utc = LocalZone::utc();
        let qr = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": "http://example.org/Questionnaire/gcs|2.0"});
        assert_eq!(
            values(&qr, "questionnaire", &utc),
            vec![url("http://example.org/Questionnaire/gcs", Some("2.0"))]
        );
        let mr = json!({"resourceType": "MeasureReport", "status": "complete", "type": "individual",
            "measure": "Measure/CMS146", "period": {"start": "2014-01-01", "end": "2014-03-31"}});
        assert_eq!(
            values(&mr, "measure", &utc),
            vec![url("Measure/CMS146", None)]
        );
        // A uri is a URL as written: `|` is no version separator there.
        let cm = json!({"resourceType": "ConceptMap", "status": "draft", "sourceUri": "http://a.org/x|1"});
        assert_eq!(
            values(&cm, "source-uri", &utc),
            vec![url("http://a.org/x|1", None)]
        );
    }

    #[test]
    fn result_types_come_from_the_definitions() {
        let d = r4();
        let types = |e: &str| fhirpath::result_types(d, &fhirpath::compile(e).unwrap());
        assert_eq!(
            types("PlanDefinition.action.definition"),
            vec!["canonical", "uri"]
        );
        assert_eq!(
            types("Observation.subject.where(resolve() is Patient)"),
            vec!["Reference"]
        );
        assert_eq!(types("(ConceptMap.source as uri)"), vec!["uri"]);
        assert_eq!(
            types(
                "ActivityDefinition.relatedArtifact.where(type='depends-on').resource | ActivityDefinition.library"
            ),
            vec!["canonical"]
        );
        assert_eq!(types("Patient.birthDate"), vec!["date"]);
    }

    /// Issue 15: stored zone-less dates are read in the trust's zone, like
    /// the searches for them; instants keep theirs.
    #[test]
    fn stored_dates_are_read_in_the_zone() {
        let london = LocalZone::london();
        let p = json!({"resourceType": "Patient", "birthDate": "2024-07-01"});
        let (lo, hi) = parse_range_in("2024-07-01", &london).unwrap();
        assert_eq!(
            values(&p, "birthdate", &london),
            vec![IndexValue::Date { lo, hi }]
        );
        let e = json!({"resourceType": "Encounter", "status": "finished",
            "class": {"code": "IMP"},
            "period": {"start": "2024-07-01", "end": "2024-07-02T10:00:00+01:00"}});
        let end = crate::datetime::parse_range("2024-07-02T10:00:00+01:00")
            .unwrap()
            .1;
        assert_eq!(
            values(&e, "date", &london),
            vec![IndexValue::Date { lo, hi: end }]
        );
    }
}

#[cfg(test)]
mod composite_tests {
    use crate::datetime::LocalZone;
    use crate::definitions::r4;
    use crate::index::IndexValue;
    use serde_json::json;

    #[test]
    fn components_of_one_element_share_a_group() {
        let bp = json!({
            "resourceType": "Observation", "id": "bp", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "component": [
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                 "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                 "valueQuantity": {"value": 150, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
            ]
        });
        let entries = r4().extract_index(&bp, &LocalZone::utc());
        let comp: Vec<_> = entries
            .iter()
            .filter(|e| e.param.starts_with("component-code-value-quantity$"))
            .collect();
        assert_eq!(comp.len(), 4, "{comp:?}");
        let systolic_group = comp
            .iter()
            .find(|e| matches!(&e.value, IndexValue::Token { code: Some(c), .. } if c == "8480-6"))
            .and_then(|e| e.group)
            .unwrap();
        let value_120 = comp
            .iter()
            .find(|e| matches!(&e.value, IndexValue::Quantity { value, .. } if *value == 120.0))
            .unwrap();
        assert_eq!(value_120.param, "component-code-value-quantity$1");
        assert_eq!(value_120.group, Some(systolic_group));
        let value_150 = comp
            .iter()
            .find(|e| matches!(&e.value, IndexValue::Quantity { value, .. } if *value == 150.0))
            .unwrap();
        assert_ne!(value_150.group, Some(systolic_group));
        // combo-: the Observation itself is group 0, each component one more.
        let combo_groups: std::collections::BTreeSet<_> = entries
            .iter()
            .filter(|e| e.param.starts_with("combo-code-value-quantity$"))
            .filter_map(|e| e.group)
            .collect();
        assert_eq!(combo_groups.len(), 3, "{entries:?}");
        // Ordinary parameters carry no group.
        assert!(
            entries
                .iter()
                .filter(|e| !e.param.contains('$'))
                .all(|e| e.group.is_none())
        );
        assert!(r4().is_indexed("Observation", "code-value-quantity"));
    }
}
