//! The R4 model Wardline works from: resource and data-type element definitions,
//! search parameters and the patient compartment, compiled from the official
//! definition bundles into `data/` (see `data/README.md`) and embedded in the binary.
//!
//! [`r4`] returns the process-wide instance, loaded on first use.

use std::collections::HashMap;

/// Kind of a StructureDefinition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    PrimitiveType,
    ComplexType,
    Resource,
}

/// One element of a type's snapshot, e.g. `Patient.name` or `Observation.value[x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementDef {
    /// Full path as in the snapshot (`Patient.contact.name`, `Observation.value[x]`).
    pub path: String,
    pub min: u32,
    /// `None` for `*`.
    pub max: Option<u32>,
    /// Type codes (`string`, `CodeableConcept`, `Reference`, `BackboneElement`, ...).
    pub types: Vec<String>,
    /// `#Questionnaire.item`-style reuse of another element's children.
    pub content_reference: Option<String>,
    /// Part of the summary view (`_summary=true`).
    pub is_summary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypeDef {
    pub name: String,
    pub kind: TypeKind,
    pub is_abstract: bool,
    /// Snapshot elements in order, the root element first.
    pub elements: Vec<ElementDef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchParamDef {
    /// The code used in URLs (`birthdate`).
    pub code: String,
    /// The resource type this entry applies to (a SearchParameter with several
    /// bases appears once per base).
    pub resource_type: String,
    pub kind: SearchParamType,
    /// FHIRPath expression, restricted to the parts that apply to `resource_type`.
    pub expression: Option<String>,
    /// Reference targets.
    pub targets: Vec<String>,
    /// For composite parameters: (component parameter code, expression) pairs.
    pub components: Vec<(String, String)>,
}

/// The compiled R4 model.
#[derive(Debug, Default)]
pub struct Definitions {
    pub types: HashMap<String, TypeDef>,
    /// resource type → code → definition. Includes the `Resource`/`DomainResource`
    /// common parameters (`_id`, `_lastUpdated`, `_tag`, `_profile`, `_security`, `_source`)
    /// copied onto each concrete resource type.
    pub search_params: HashMap<String, HashMap<String, SearchParamDef>>,
    /// Patient compartment: resource type → the parameter codes that link it to a
    /// Patient (e.g. Observation → [subject, performer]). `Patient` maps to `[]`
    /// (a Patient is in its own compartment).
    pub patient_compartment: HashMap<String, Vec<String>>,
    /// Full element path → (type name, index into its elements). Looked up
    /// for every element validated: foldhash, not SipHash (the keys are the
    /// model's own paths, not attacker-chosen).
    pub element_index: HashMap<String, (String, usize), foldhash::fast::RandomState>,
    /// Primitive type → the regex its value must match.
    pub primitive_regex: HashMap<String, String>,
    /// The search-parameter expressions compiled for index extraction, built on
    /// first use (see [`crate::extract`]).
    pub extract_cache: crate::extract::ExtractCache,
    /// Required bindings the server can check: full element path
    /// (`Patient.gender`, `HumanName.use`) → index into `value_sets`.
    pub required_bindings: HashMap<String, usize, foldhash::fast::RandomState>,
    /// The value sets of `required_bindings`, their codes listed.
    pub value_sets: Vec<ValueSetCodes>,
}

/// The codes of a value set, by code system (compiled into
/// `data/r4-bindings.json.gz` by `scripts/compile-bindings.py`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValueSetCodes {
    /// Canonical URL, without version.
    pub url: String,
    /// (system, its codes sorted).
    pub systems: Vec<(String, Vec<String>)>,
}

impl ValueSetCodes {
    /// Whether `code` is in the value set from any system (a `code` element,
    /// whose system is implied by the binding).
    pub fn has_code(&self, code: &str) -> bool {
        self.systems
            .iter()
            .any(|(_, codes)| codes.binary_search_by(|c| c.as_str().cmp(code)).is_ok())
    }

    /// Whether `system|code` is in the value set (a Coding).
    pub fn has(&self, system: &str, code: &str) -> bool {
        self.systems.iter().any(|(s, codes)| {
            s == system && codes.binary_search_by(|c| c.as_str().cmp(code)).is_ok()
        })
    }

    /// Every code, in system order (for messages).
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.systems
            .iter()
            .flat_map(|(_, c)| c.iter().map(String::as_str))
    }
}

impl Definitions {
    pub fn is_resource_type(&self, name: &str) -> bool {
        self.types
            .get(name)
            .is_some_and(|t| t.kind == TypeKind::Resource && !t.is_abstract)
    }

    pub fn search_param(&self, resource_type: &str, code: &str) -> Option<&SearchParamDef> {
        self.search_params.get(resource_type)?.get(code)
    }

    /// Concrete resource type names, sorted.
    pub fn resource_types(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .types
            .values()
            .filter(|t| t.kind == TypeKind::Resource && !t.is_abstract)
            .map(|t| t.name.as_str())
            .collect();
        v.sort_unstable();
        v
    }
}

/// The process-wide R4 definitions.
pub fn r4() -> &'static Definitions {
    static DEFS: std::sync::OnceLock<Definitions> = std::sync::OnceLock::new();
    DEFS.get_or_init(load_embedded)
}

static MODEL: &[u8] = include_bytes!("../data/r4-model.json.gz");
static BINDINGS: &[u8] = include_bytes!("../data/r4-bindings.json.gz");

#[derive(serde::Deserialize)]
struct RawBindings {
    /// element path → value set url
    b: HashMap<String, String>,
    /// value set url → [(system, [code])]
    v: HashMap<String, Vec<(String, Vec<String>)>>,
}

#[derive(serde::Deserialize)]
struct RawModel {
    types: HashMap<String, RawType>,
    params: Vec<RawParam>,
    patient_compartment: HashMap<String, Vec<String>>,
}

#[derive(serde::Deserialize)]
struct RawType {
    k: String,
    a: bool,
    e: Vec<serde_json::Value>,
    #[serde(default)]
    r: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawParam {
    c: String,
    b: Vec<String>,
    t: String,
    x: Option<String>,
    g: Vec<String>,
    u: Option<String>,
    m: Vec<(String, String)>,
}

fn load_embedded() -> Definitions {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(MODEL)
        .read_to_string(&mut text)
        .expect("embedded R4 model is valid gzip");
    let raw: RawModel = serde_json::from_str(&text).expect("embedded R4 model is valid JSON");
    let mut defs = Definitions::default();
    for (name, t) in raw.types {
        let kind = match t.k.as_str() {
            "p" => TypeKind::PrimitiveType,
            "c" => TypeKind::ComplexType,
            _ => TypeKind::Resource,
        };
        let elements =
            t.e.iter()
                .map(|e| ElementDef {
                    path: e[0].as_str().unwrap_or_default().to_owned(),
                    min: e[1].as_u64().unwrap_or(0) as u32,
                    max: e[2].as_str().and_then(|m| m.parse().ok()),
                    types: e[3]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|t| t.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    content_reference: e.get(4).and_then(|c| c.as_str()).map(str::to_owned),
                    is_summary: e.get(5).and_then(|s| s.as_u64()) == Some(1),
                })
                .collect();
        if let Some(r) = t.r {
            defs.primitive_regex.insert(name.clone(), r);
        }
        defs.types.insert(
            name.clone(),
            TypeDef {
                name,
                kind,
                is_abstract: t.a,
                elements,
            },
        );
    }
    // url → code, for composite components.
    let by_url: HashMap<&str, &str> = raw
        .params
        .iter()
        .filter_map(|p| Some((p.u.as_deref()?, p.c.as_str())))
        .collect();
    let concrete: Vec<String> = defs
        .resource_types()
        .into_iter()
        .map(str::to_owned)
        .collect();
    for p in &raw.params {
        let kind = match p.t.as_str() {
            "number" => SearchParamType::Number,
            "date" => SearchParamType::Date,
            "string" => SearchParamType::String,
            "token" => SearchParamType::Token,
            "reference" => SearchParamType::Reference,
            "composite" => SearchParamType::Composite,
            "quantity" => SearchParamType::Quantity,
            "uri" => SearchParamType::Uri,
            _ => SearchParamType::Special,
        };
        let bases: Vec<String> = if p.b.iter().any(|b| b == "Resource" || b == "DomainResource") {
            concrete.clone()
        } else {
            p.b.clone()
        };
        for base in bases {
            let expression = p.x.as_deref().and_then(|x| restrict_expression(x, &base));
            let def = SearchParamDef {
                code: p.c.clone(),
                resource_type: base.clone(),
                kind,
                expression,
                targets: p.g.clone(),
                components: p
                    .m
                    .iter()
                    .map(|(url, expr)| {
                        (
                            by_url.get(url.as_str()).copied().unwrap_or(url).to_owned(),
                            expr.clone(),
                        )
                    })
                    .collect(),
            };
            defs.search_params
                .entry(base)
                .or_default()
                .insert(p.c.clone(), def);
        }
    }
    defs.patient_compartment = raw.patient_compartment;
    defs.build_index();
    load_bindings(&mut defs);
    defs
}

fn load_bindings(defs: &mut Definitions) {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(BINDINGS)
        .read_to_string(&mut text)
        .expect("embedded R4 bindings are valid gzip");
    let raw: RawBindings =
        serde_json::from_str(&text).expect("embedded R4 bindings are valid JSON");
    let mut by_url: HashMap<String, usize> = HashMap::new();
    for (url, mut systems) in raw.v {
        for (_, codes) in &mut systems {
            codes.sort_unstable();
        }
        by_url.insert(url.clone(), defs.value_sets.len());
        defs.value_sets.push(ValueSetCodes { url, systems });
    }
    for (path, url) in raw.b {
        if let Some(&i) = by_url.get(&url) {
            defs.required_bindings.insert(path, i);
        }
    }
}

/// Keeps the `|`-separated alternatives of a shared expression that are about
/// `base` (`Patient.x`, `(Patient.x as T)`); common (`Resource.`) expressions are
/// rewritten onto `base`. Returns `None` if nothing applies.
fn restrict_expression(expr: &str, base: &str) -> Option<String> {
    let parts = split_top_level(expr, '|');
    let mut keep = Vec::new();
    for part in parts {
        let t = part.trim();
        let inner = t.trim_start_matches('(');
        let head = inner.split(['.', ' ', ')']).next().unwrap_or("");
        if head == base {
            keep.push(t.to_owned());
        } else if head == "Resource" || head == "DomainResource" {
            keep.push(t.replacen(head, base, 1));
        }
    }
    if keep.is_empty() {
        None
    } else {
        Some(keep.join(" | "))
    }
}

/// Splits on `sep` outside parentheses and quotes.
pub fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, false, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quote = !quote,
            '(' if !quote => depth += 1,
            ')' if !quote => depth -= 1,
            c if c == sep && !quote && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl Definitions {
    fn build_index(&mut self) {
        let mut index = HashMap::default();
        for (tname, t) in &self.types {
            for (i, e) in t.elements.iter().enumerate() {
                index.insert(e.path.clone(), (tname.clone(), i));
            }
        }
        self.element_index = index;
    }

    /// The element at a full snapshot path (`Patient.name`, `Observation.value[x]`).
    pub fn element(&self, path: &str) -> Option<&ElementDef> {
        let (t, i) = self.element_index.get(path)?;
        self.types.get(t)?.elements.get(*i)
    }

    /// The value set an element (full snapshot path) is bound to with
    /// strength `required`, when the server knows its codes.
    pub fn required_binding(&self, path: &str) -> Option<&ValueSetCodes> {
        self.value_sets.get(*self.required_bindings.get(path)?)
    }

    /// The regex a primitive type's value must match, if the spec gives one.
    pub fn primitive_regex(&self, type_name: &str) -> Option<&str> {
        self.primitive_regex.get(type_name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_loads_with_expected_facts() {
        let d = r4();
        assert!(d.is_resource_type("Patient"));
        assert!(!d.is_resource_type("DomainResource"));
        let bd = d.element("Patient.birthDate").unwrap();
        assert_eq!((bd.min, bd.max), (0, Some(1)));
        assert_eq!(bd.types, vec!["date"]);
        assert!(
            d.element("Observation.value[x]")
                .unwrap()
                .types
                .iter()
                .any(|t| t == "Quantity")
        );
        let p = d.search_param("Patient", "birthdate").unwrap();
        assert_eq!(p.kind, SearchParamType::Date);
        assert_eq!(p.expression.as_deref(), Some("Patient.birthDate"));
        let p = d.search_param("Observation", "patient").unwrap();
        assert_eq!(
            p.expression.as_deref(),
            Some("Observation.subject.where(resolve() is Patient)")
        );
        assert!(d.search_param("Observation", "_lastUpdated").is_some());
        assert!(
            d.patient_compartment["Observation"]
                .iter()
                .any(|p| p == "subject")
        );
        assert!(d.resource_types().len() > 140);
    }

    #[test]
    fn required_bindings_load() {
        let d = r4();
        let g = d.required_binding("Patient.gender").unwrap();
        assert_eq!(g.url, "http://hl7.org/fhir/ValueSet/administrative-gender");
        assert_eq!(
            g.codes().collect::<Vec<_>>(),
            ["female", "male", "other", "unknown"]
        );
        assert!(g.has_code("male") && !g.has_code("m") && !g.has_code("Male"));
        // A data type's element, and a CodeableConcept with its system.
        assert!(
            d.required_binding("HumanName.use")
                .unwrap()
                .has_code("maiden")
        );
        let cs = d.required_binding("Condition.clinicalStatus").unwrap();
        assert!(cs.has(
            "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "active"
        ));
        assert!(!cs.has("http://example.org", "active"));
        // Value sets from whole code systems, nested concepts included.
        let os = d.required_binding("Observation.status").unwrap();
        assert!(os.has_code("final") && os.has_code("corrected"));
        // Preferred and extensible bindings are not checked; nor are value
        // sets whose codes the server cannot list (MIME types).
        assert!(d.required_binding("Patient.maritalStatus").is_none());
        assert!(d.required_binding("Attachment.contentType").is_none());
        assert!(d.required_bindings.len() > 300);
    }
}
