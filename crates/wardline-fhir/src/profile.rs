//! UK Core profile validation ([`uk_core`], [`UkCore::validate`]).
//!
//! The definitions are `data/uk-core.json`, compiled by
//! `scripts/compile-ukcore.py` from the UK Core package
//! (`UKCore.R4.STU.02.00.00`, Apache-2.0): the profiles `UKCore-Patient` and
//! `UKCore-Encounter`, every extension definition they name, and the value
//! sets those bind `required`. UK Core publishes differentials only; the base
//! R4 structure is [`Definitions::validate`]'s, which runs first. This module
//! checks what the differentials add, which is all these profiles use:
//!
//! * cardinality (`min`/`max`) of elements and of slices, per occurrence of
//!   the parent: slices of `extension` by the extension's URL, other slices
//!   by their `value`/`pattern` discriminators (`Patient.identifier` by
//!   `system`, so at most one NHS number, with a system and a value);
//! * `fixed[x]` and `pattern[x]` values;
//! * the types a choice element may take (`valueCodeableConcept` only);
//! * `required` bindings: a `CodeableConcept` needs one coding in the value
//!   set, a `Coding` or `code` must be in it (BCP 47 tags are checked by
//!   their grammar for `all-languages`); other strengths are guidance, not
//!   checked;
//! * every extension whose URL is one of these definitions, wherever it is
//!   (with or without a profile claim): its context (where it may be used),
//!   how many times it may appear there, its value type and binding and its
//!   sub-extensions.
//!
//! A resource is held to a profile when it claims it in `meta.profile`;
//! claims of profiles not carried here are not checked. Every finding is an
//! error naming the definition and the element (`UKCore-Patient
//! (Patient.identifier:nhsNumber)`) at the instance path, and the write is
//! refused with 422. FHIRPath invariants are not evaluated.
//!
//! Why hand-written: the Rust FHIR validators need profile snapshots and a
//! whole generated model (UK Core ships differentials) or are not under an
//! open-source licence; the constraints these profiles use are few.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::definitions::{Definitions, TypeKind};
use crate::error::{FhirError, Issue};

static DATA: &str = include_str!("../data/uk-core.json");

/// The UK Core definitions carried by Wardline, loaded once.
pub fn uk_core() -> &'static UkCore {
    static SET: OnceLock<UkCore> = OnceLock::new();
    SET.get_or_init(|| UkCore::from_json(DATA).expect("embedded UK Core definitions are valid"))
}

#[derive(Deserialize)]
struct RawFile {
    package: String,
    profiles: Vec<RawSd>,
    extensions: Vec<RawSd>,
    #[serde(rename = "valueSets")]
    value_sets: Vec<RawValueSet>,
}

#[derive(Deserialize)]
struct RawSd {
    url: String,
    name: String,
    #[serde(rename = "type", default)]
    resource_type: Option<String>,
    #[serde(default)]
    context: Vec<String>,
    elements: Vec<RawElement>,
}

#[derive(Deserialize)]
struct RawElement {
    id: String,
    #[serde(default)]
    min: Option<u32>,
    #[serde(default)]
    max: Option<String>,
    #[serde(default)]
    types: Vec<ElementType>,
    #[serde(default)]
    fixed: Option<RawValue>,
    #[serde(default)]
    pattern: Option<RawValue>,
    #[serde(default)]
    binding: Option<Binding>,
    #[serde(default)]
    slicing: Option<Slicing>,
}

#[derive(Deserialize, Clone, Debug)]
struct ElementType {
    code: String,
    #[serde(default)]
    profile: Vec<String>,
}

#[derive(Deserialize)]
struct RawValue {
    #[serde(rename = "type")]
    value_type: String,
    value: String,
}

#[derive(Deserialize, Clone, Debug)]
struct Binding {
    strength: String,
    #[serde(rename = "valueSet")]
    value_set: String,
}

#[derive(Deserialize, Clone, Debug)]
struct Slicing {
    discriminator: Vec<(String, String)>,
    rules: String,
}

#[derive(Deserialize)]
struct RawValueSet {
    url: String,
    name: String,
    #[serde(default)]
    codes: Vec<(String, String)>,
    #[serde(default)]
    grammar: Option<String>,
    #[serde(default)]
    system: Option<String>,
}

/// One element of a differential, with the elements below it.
#[derive(Default, Debug)]
struct Node {
    /// The element id (`Patient.identifier:nhsNumber`), for messages.
    id: String,
    min: Option<u32>,
    /// `Some(None)` is `*`.
    max: Option<Option<u32>>,
    types: Vec<ElementType>,
    fixed: Option<Value>,
    pattern: Option<Value>,
    binding: Option<Binding>,
    slicing: Option<Slicing>,
    /// Constrained child elements by name (`value[x]` for a choice), in order.
    children: Vec<(String, Node)>,
    /// Named slices of this element.
    slices: Vec<(String, Node)>,
}

impl Node {
    fn child_mut(&mut self, name: &str) -> &mut Node {
        let i = match self.children.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.children.push((name.to_owned(), Node::default()));
                self.children.len() - 1
            }
        };
        &mut self.children[i].1
    }

    fn slice_mut(&mut self, name: &str) -> &mut Node {
        let i = match self.slices.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.slices.push((name.to_owned(), Node::default()));
                self.slices.len() - 1
            }
        };
        &mut self.slices[i].1
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    /// The extension definition a slice of `extension` is (its type profile).
    fn extension_profile(&self) -> Option<&str> {
        self.types
            .iter()
            .find(|t| t.code == "Extension")
            .and_then(|t| t.profile.first())
            .map(String::as_str)
    }

    fn is_empty_of_rules(&self) -> bool {
        self.children.is_empty() && self.slices.is_empty()
    }
}

/// A profile or an extension definition.
#[derive(Debug)]
pub struct Definition {
    pub url: String,
    /// `UKCore-Patient`, `Extension-UKCore-EthnicCategory`.
    pub name: String,
    /// The resource type a profile constrains (`None` for an extension).
    pub resource_type: Option<String>,
    /// Where an extension may be used (element paths or type names).
    pub context: Vec<String>,
    root: Node,
}

enum ValueSet {
    Codes(Vec<(String, String)>),
    Bcp47 { system: String },
}

struct ValueSetDef {
    name: String,
    set: ValueSet,
}

/// The UK Core profiles, extensions and required value sets Wardline checks.
pub struct UkCore {
    /// The package the definitions come from (`UKCore.R4.STU.02.00.00`).
    pub package: String,
    profiles: Vec<Definition>,
    extensions: HashMap<String, Definition>,
    value_sets: HashMap<String, ValueSetDef>,
}

fn parse_max(m: &str) -> Option<u32> {
    m.parse().ok()
}

fn typed(v: RawValue) -> Value {
    match v.value_type.as_str() {
        "Boolean" => Value::Bool(v.value == "true"),
        "Integer" | "PositiveInt" | "UnsignedInt" | "Decimal" => v
            .value
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or(Value::String(v.value)),
        _ => Value::String(v.value),
    }
}

fn build(sd: RawSd) -> Definition {
    let mut root = Node::default();
    for el in sd.elements {
        let mut node = &mut root;
        // `Patient.identifier:nhsNumber.system` → identifier, slice, system.
        for step in el.id.split('.').skip(1) {
            let (name, slice) = match step.split_once(':') {
                Some((n, s)) => (n, Some(s)),
                None => (step, None),
            };
            node = node.child_mut(name);
            if let Some(s) = slice {
                node = node.slice_mut(s);
            }
        }
        node.id = el.id;
        node.min = el.min;
        node.max = el.max.as_deref().map(parse_max);
        node.types = el.types;
        node.fixed = el.fixed.map(typed);
        node.pattern = el.pattern.map(typed);
        node.binding = el.binding;
        node.slicing = el.slicing;
    }
    root.id = sd
        .resource_type
        .clone()
        .unwrap_or_else(|| "Extension".into());
    Definition {
        url: sd.url,
        name: sd.name,
        resource_type: sd.resource_type,
        context: sd.context,
        root,
    }
}

impl UkCore {
    fn from_json(text: &str) -> Result<UkCore, serde_json::Error> {
        let raw: RawFile = serde_json::from_str(text)?;
        let value_sets = raw
            .value_sets
            .into_iter()
            .map(|v| {
                let set = match (v.grammar.as_deref(), v.system) {
                    (Some("bcp47"), Some(system)) => ValueSet::Bcp47 { system },
                    _ => ValueSet::Codes(v.codes),
                };
                (v.url, ValueSetDef { name: v.name, set })
            })
            .collect();
        Ok(UkCore {
            package: raw.package,
            profiles: raw.profiles.into_iter().map(build).collect(),
            extensions: raw
                .extensions
                .into_iter()
                .map(|e| (e.url.clone(), build(e)))
                .collect(),
            value_sets,
        })
    }

    /// The canonical URLs of the profiles carried for `resource_type`.
    pub fn profiles_for(&self, resource_type: &str) -> Vec<&str> {
        self.profiles
            .iter()
            .filter(|p| p.resource_type.as_deref() == Some(resource_type))
            .map(|p| p.url.as_str())
            .collect()
    }

    /// The profile with this canonical URL (a `|version` suffix is ignored).
    pub fn profile(&self, url: &str) -> Option<&Definition> {
        let url = url.split('|').next().unwrap_or(url);
        self.profiles.iter().find(|p| p.url == url)
    }

    /// The extension definition with this URL.
    pub fn extension(&self, url: &str) -> Option<&Definition> {
        self.extensions.get(url)
    }

    /// Checks `resource` (already valid against the base R4 model) against
    /// every carried profile it claims in `meta.profile`, and every carried
    /// extension it uses against its definition. Findings are a 422.
    pub fn validate(&self, defs: &Definitions, resource: &Value) -> Result<(), FhirError> {
        let issues = self.issues(defs, resource);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(FhirError::from_issues(422, issues))
        }
    }

    /// Every finding of [`validate`](Self::validate), for tests and reports.
    pub fn issues(&self, defs: &Definitions, resource: &Value) -> Vec<Issue> {
        let mut cx = Cx {
            set: self,
            defs,
            issues: Vec::new(),
        };
        if mentions_profile(self, resource)
            && let Some(obj) = resource.as_object()
        {
            let rt = obj
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            cx.resource(obj, rt);
        }
        cx.issues
    }
}

/// Whether any string in `v` is the URL of a carried profile (a cheap scan,
/// so that a resource claiming none costs no walk).
fn mentions_profile(set: &UkCore, v: &Value) -> bool {
    match v {
        Value::String(s) => set.profile(s).is_some(),
        Value::Object(o) => o.values().any(|x| mentions_profile(set, x)),
        Value::Array(a) => a.iter().any(|x| mentions_profile(set, x)),
        _ => false,
    }
}

/// One occurrence of an element in an instance.
struct Item<'v> {
    /// The JSON value (`None` for a primitive given only by its `_name`).
    value: Option<&'v Value>,
    /// The `_name` sibling of a primitive (its id and extensions).
    ext: Option<&'v Map<String, Value>>,
    at: String,
    /// A choice element's type suffix (`CodeableConcept` of `valueCodeableConcept`).
    suffix: Option<&'v str>,
}

impl Item<'_> {
    fn object(&self) -> Option<&Map<String, Value>> {
        self.value.and_then(Value::as_object).or(self.ext)
    }
}

/// The occurrences of element `name` (`value[x]` for a choice) in `obj`.
fn items<'v>(obj: &'v Map<String, Value>, name: &str, at: &str) -> Vec<Item<'v>> {
    let mut out = Vec::new();
    if let Some(base) = name.strip_suffix("[x]") {
        for (k, v) in obj {
            if let Some(sfx) = k.strip_prefix(base)
                && sfx.starts_with(|c: char| c.is_ascii_uppercase())
            {
                push_items(&mut out, obj, k, Some(v), at, Some(sfx));
            }
        }
    } else {
        push_items(&mut out, obj, name, obj.get(name), at, None);
    }
    out
}

fn push_items<'v>(
    out: &mut Vec<Item<'v>>,
    obj: &'v Map<String, Value>,
    key: &str,
    value: Option<&'v Value>,
    at: &str,
    suffix: Option<&'v str>,
) {
    let ext = obj.get(&format!("_{key}"));
    match (value, ext) {
        (Some(Value::Array(a)), e) => {
            for (i, v) in a.iter().enumerate() {
                out.push(Item {
                    value: (!v.is_null()).then_some(v),
                    ext: e.and_then(|e| e.get(i)).and_then(Value::as_object),
                    at: format!("{at}.{key}[{i}]"),
                    suffix,
                });
            }
        }
        (None, Some(Value::Array(a))) => {
            for (i, e) in a.iter().enumerate() {
                out.push(Item {
                    value: None,
                    ext: e.as_object(),
                    at: format!("{at}.{key}[{i}]"),
                    suffix,
                });
            }
        }
        (None, None) => {}
        (v, e) => out.push(Item {
            value: v,
            ext: e.and_then(Value::as_object),
            at: format!("{at}.{key}"),
            suffix,
        }),
    }
}

fn ucfirst(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn times(n: u32) -> String {
    if n == 1 {
        "once".into()
    } else {
        format!("{n} times")
    }
}

/// Whether `v` holds everything in `pattern` (objects by key, arrays by
/// each pattern item being matched by some item).
fn matches_pattern(v: &Value, pattern: &Value) -> bool {
    match (v, pattern) {
        (Value::Object(o), Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| o.get(k).is_some_and(|ov| matches_pattern(ov, pv))),
        (Value::Array(a), Value::Array(p)) => p
            .iter()
            .all(|pv| a.iter().any(|av| matches_pattern(av, pv))),
        _ => v == pattern,
    }
}

/// The value at a dotted `path` below `v` (the first of each array).
fn value_at<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = v;
    for step in path.split('.') {
        cur = cur.get(step)?;
        if let Value::Array(a) = cur {
            cur = a.first()?;
        }
    }
    Some(cur)
}

/// The fixed or pattern value a slice gives at a dotted `path`.
fn slice_value_at<'n>(slice: &'n Node, path: &str) -> Option<&'n Value> {
    let mut node = slice;
    for step in path.split('.') {
        node = node.child(step)?;
    }
    node.fixed.as_ref().or(node.pattern.as_ref())
}

struct Cx<'a> {
    set: &'a UkCore,
    defs: &'a Definitions,
    issues: Vec<Issue>,
}

impl Cx<'_> {
    fn issue(&mut self, code: &'static str, def: &Definition, node: &Node, msg: String, at: &str) {
        self.issues.push(
            Issue::error(code, format!("{} ({}): {msg}", def.name, node.id)).at(at.to_owned()),
        );
    }

    /// The constrained children of `node` in `obj` (found at `at`).
    fn children(&mut self, def: &Definition, node: &Node, obj: &Map<String, Value>, at: &str) {
        for (name, child) in &node.children {
            let found = items(obj, name, at);
            self.element(def, child, name, &found, at);
        }
    }

    fn element(&mut self, def: &Definition, node: &Node, name: &str, found: &[Item<'_>], at: &str) {
        let where_ = format!("{at}.{}", name.trim_end_matches("[x]"));
        self.cardinality(
            def,
            node,
            node.min,
            node.max.flatten(),
            found.len(),
            &where_,
        );
        for it in found {
            self.item(def, node, it);
        }
        if node.slices.is_empty() {
            return;
        }
        let mut matched = vec![false; found.len()];
        for (_, slice) in &node.slices {
            let members: Vec<&Item<'_>> = found
                .iter()
                .enumerate()
                .filter(|(i, it)| {
                    let m = self.is_member(name, node, slice, it);
                    if m {
                        matched[*i] = true;
                    }
                    m
                })
                .map(|(_, it)| it)
                .collect();
            self.cardinality(
                def,
                slice,
                slice.min,
                slice.max.flatten(),
                members.len(),
                &where_,
            );
            for it in members {
                self.item(def, slice, it);
            }
        }
        if node.slicing.as_ref().is_some_and(|s| s.rules == "closed") {
            for (it, m) in found.iter().zip(matched) {
                if !m {
                    self.issue(
                        "structure",
                        def,
                        node,
                        "matches none of the slices, and the slicing is closed".into(),
                        &it.at,
                    );
                }
            }
        }
    }

    fn cardinality(
        &mut self,
        def: &Definition,
        node: &Node,
        min: Option<u32>,
        max: Option<u32>,
        n: usize,
        at: &str,
    ) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if let Some(min) = min
            && n < min
        {
            let msg = if n == 0 {
                format!("is required (at least {min}), but is missing")
            } else {
                format!("must appear at least {}, found {n}", times(min))
            };
            self.issue("required", def, node, msg, at);
        }
        if let Some(max) = max
            && n > max
        {
            let msg = if max == 0 {
                "is not allowed".into()
            } else {
                format!("may appear at most {}, found {n}", times(max))
            };
            self.issue("structure", def, node, msg, at);
        }
    }

    /// Whether an occurrence of element `name` belongs to `slice`.
    fn is_member(&self, name: &str, sliced: &Node, slice: &Node, it: &Item<'_>) -> bool {
        let Some(v) = it.value else {
            return false;
        };
        if name == "extension" || name == "modifierExtension" {
            let url = slice.extension_profile().map(str::to_owned).or_else(|| {
                slice_value_at(slice, "url")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            return url.is_some_and(|u| v["url"].as_str() == Some(u.as_str()));
        }
        let Some(slicing) = &sliced.slicing else {
            return false;
        };
        !slicing.discriminator.is_empty()
            && slicing.discriminator.iter().all(|(kind, path)| {
                let want = slice_value_at(slice, path);
                match (kind.as_str(), want) {
                    ("value", Some(w)) => value_at(v, path) == Some(w),
                    ("pattern", Some(w)) => {
                        value_at(v, path).is_some_and(|x| matches_pattern(x, w))
                    }
                    _ => false,
                }
            })
    }

    /// One occurrence against `node`: type, fixed and pattern values,
    /// binding, then its own constrained children.
    fn item(&mut self, def: &Definition, node: &Node, it: &Item<'_>) {
        if let Some(sfx) = it.suffix
            && !node.types.is_empty()
            && !node.types.iter().any(|t| ucfirst(&t.code) == sfx)
        {
            let allowed: Vec<String> = node.types.iter().map(|t| ucfirst(&t.code)).collect();
            let base = node.id.rsplit('.').next().unwrap_or_default();
            let base = base.trim_end_matches("[x]");
            self.issue(
                "structure",
                def,
                node,
                format!(
                    "{base}{sfx} is not allowed here: the value must be {}",
                    allowed
                        .iter()
                        .map(|a| format!("{base}{a}"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                &it.at,
            );
            return;
        }
        if let Some(f) = &node.fixed
            && it.value != Some(f)
        {
            self.issue(
                "value",
                def,
                node,
                format!(
                    "must be exactly {f}, not {}",
                    it.value.map_or("missing".into(), Value::to_string)
                ),
                &it.at,
            );
        }
        if let Some(p) = &node.pattern
            && !it.value.is_some_and(|v| matches_pattern(v, p))
        {
            self.issue(
                "value",
                def,
                node,
                format!("must match the pattern {p}"),
                &it.at,
            );
        }
        if let Some(b) = &node.binding
            && b.strength == "required"
            && let Some(v) = it.value
        {
            self.binding(def, node, b, v, &it.at);
        }
        if !node.is_empty_of_rules()
            && let Some(o) = it.object()
        {
            self.children(def, node, o, &it.at);
        }
    }

    fn binding(&mut self, def: &Definition, node: &Node, b: &Binding, v: &Value, at: &str) {
        let Some(vs) = self.set.value_sets.get(&b.value_set) else {
            // A value set the package does not carry (listed as unchecked
            // in data/uk-core.json).
            return;
        };
        let in_set = |system: Option<&str>, code: Option<&str>| -> bool {
            let Some(code) = code else { return false };
            match &vs.set {
                ValueSet::Codes(codes) => codes
                    .iter()
                    .any(|(s, c)| c == code && system.is_none_or(|x| x == s)),
                ValueSet::Bcp47 { system: s } => {
                    system.is_none_or(|x| x == s) && oxilangtag::LanguageTag::parse(code).is_ok()
                }
            }
        };
        let coding_text = |c: &Value| {
            format!(
                "{}#{}",
                c["system"].as_str().unwrap_or("(no system)"),
                c["code"].as_str().unwrap_or("(no code)")
            )
        };
        let (ok, found) = match v {
            Value::String(code) => (in_set(None, Some(code)), format!("'{code}'")),
            Value::Object(o) if o.contains_key("coding") || !o.contains_key("code") => {
                let codings = o
                    .get("coding")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let ok = codings
                    .iter()
                    .any(|c| in_set(Some(c["system"].as_str().unwrap_or("")), c["code"].as_str()));
                let found = if codings.is_empty() {
                    "no coding".to_owned()
                } else {
                    codings
                        .iter()
                        .map(coding_text)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                (ok, found)
            }
            Value::Object(_) => (
                in_set(Some(v["system"].as_str().unwrap_or("")), v["code"].as_str()),
                coding_text(v),
            ),
            _ => (false, v.to_string()),
        };
        if !ok {
            self.issue(
                "code-invalid",
                def,
                node,
                format!(
                    "the code must come from the required value set {} ({}); found {found}",
                    vs.name, b.value_set
                ),
                at,
            );
        }
    }

    // ---- a resource, its claims and the extensions it uses ----

    /// A resource at `at`: held to every carried profile it claims and, when
    /// it claims one, each carried extension in it to its definition; the
    /// resources inside it (contained, Bundle entries) by their own claims.
    fn resource(&mut self, obj: &Map<String, Value>, at: &str) {
        let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
            return;
        };
        let set = self.set;
        let mut claimed = false;
        let claims = obj
            .get("meta")
            .and_then(|m| m.get("profile"))
            .and_then(Value::as_array);
        for claim in claims.into_iter().flatten().filter_map(Value::as_str) {
            let Some(p) = set.profile(claim) else {
                continue;
            };
            claimed = true;
            if p.resource_type.as_deref() != Some(rt) {
                self.issues.push(
                    Issue::error(
                        "structure",
                        format!(
                            "{} is a profile of {}, not of {rt}",
                            p.name,
                            p.resource_type.as_deref().unwrap_or("?")
                        ),
                    )
                    .at(format!("{at}.meta.profile")),
                );
                continue;
            }
            self.children(p, &p.root, obj, at);
        }
        self.walk(obj, at, rt, rt, rt, claimed);
    }

    /// `obj` is an occurrence (at `at`) of the element `elem` (its path from
    /// the resource, `Patient.telecom.system`), defined at `def_path`
    /// (`ContactPoint.system`), of type `type_name`.
    fn walk(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        elem: &str,
        def_path: &str,
        type_name: &str,
        claimed: bool,
    ) {
        let ctx = if matches!(type_name, "BackboneElement" | "Element") {
            def_path
        } else {
            type_name
        };
        for (key, value) in obj {
            if key == "resourceType" {
                continue;
            }
            let name = key.trim_start_matches('_');
            if claimed && (key == "extension" || key == "modifierExtension") {
                self.extensions(value, &format!("{at}.{key}"), elem, def_path, type_name);
            }
            let Some((child_def, child_type)) = self.resolve(ctx, name) else {
                continue;
            };
            let child_elem = format!("{elem}.{name}");
            let resource = child_type == "Resource"
                || self
                    .defs
                    .types
                    .get(&child_type)
                    .is_some_and(|t| t.kind == TypeKind::Resource);
            let mut visit = |v: &Value, at: String| {
                if let Some(o) = v.as_object() {
                    if resource {
                        self.resource(o, &at);
                    } else {
                        self.walk(o, &at, &child_elem, &child_def, &child_type, claimed);
                    }
                }
            };
            match value {
                Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        visit(v, format!("{at}.{key}[{i}]"));
                    }
                }
                v => visit(v, format!("{at}.{key}")),
            }
        }
    }

    /// The definition path and type of property `name` of an object whose
    /// elements are under `ctx` (choice properties by their type suffix).
    fn resolve(&self, ctx: &str, name: &str) -> Option<(String, String)> {
        if let Some(el) = self.defs.element(&format!("{ctx}.{name}")) {
            if let Some(cr) = &el.content_reference {
                return Some((
                    cr.trim_start_matches('#').to_owned(),
                    "BackboneElement".into(),
                ));
            }
            return Some((
                el.path.clone(),
                el.types.first().cloned().unwrap_or_default(),
            ));
        }
        for (i, c) in name.char_indices().skip(1) {
            if c.is_ascii_uppercase()
                && let Some(el) = self.defs.element(&format!("{ctx}.{}[x]", &name[..i]))
            {
                let t = el.types.iter().find(|t| ucfirst(t) == name[i..])?;
                return Some((el.path.clone(), t.clone()));
            }
        }
        None
    }

    /// The `extension` array at `at` of an occurrence of `elem`: each
    /// carried extension in its context, at most as often as it may be, and
    /// valid against its definition.
    fn extensions(&mut self, list: &Value, at: &str, elem: &str, def_path: &str, type_name: &str) {
        let Some(list) = list.as_array() else {
            return;
        };
        let set = self.set;
        let mut counts: Vec<(&Definition, u32)> = Vec::new();
        for (i, e) in list.iter().enumerate() {
            let Some(def) = e["url"].as_str().and_then(|u| set.extensions.get(u)) else {
                continue;
            };
            let here = format!("{at}[{i}]");
            let allowed = def.context.iter().any(|c| {
                c == elem
                    || c == def_path
                    || c == type_name
                    || matches!(c.as_str(), "Element" | "Resource" | "DomainResource")
            });
            if !allowed {
                self.issues.push(
                    Issue::error(
                        "structure",
                        format!(
                            "{} may be used on {}, not on {elem}",
                            def.name,
                            def.context.join(" or ")
                        ),
                    )
                    .at(here.clone()),
                );
            }
            match counts.iter_mut().find(|(d, _)| std::ptr::eq(*d, def)) {
                Some((_, n)) => *n += 1,
                None => counts.push((def, 1)),
            }
            if let Some(o) = e.as_object() {
                self.children(def, &def.root, o, &here);
            }
        }
        for (def, n) in counts {
            if let Some(Some(max)) = def.root.max
                && n > max
            {
                self.issues.push(
                    Issue::error(
                        "structure",
                        format!(
                            "{} may appear at most {} on {elem}, found {n}",
                            def.name,
                            times(max)
                        ),
                    )
                    .at(at.to_owned()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::r4;
    use serde_json::json;

    const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
    const PATIENT: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
    const ENCOUNTER: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter";
    const VERIFICATION: &str =
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
    const ETHNIC: &str =
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory";

    fn found(v: &Value) -> Vec<String> {
        uk_core()
            .issues(r4(), v)
            .into_iter()
            .map(|i| format!("{} @ {}", i.diagnostics, i.expression.join(",")))
            .collect()
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "meta": {"profile": [PATIENT]},
            "extension": [{"url": ETHNIC, "valueCodeableConcept": {"coding": [{
                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland",
                "code": "A"}]}}],
            "identifier": [{
                "extension": [{"url": VERIFICATION, "valueCodeableConcept": {"coding": [{
                    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                    "code": "01"}]}}],
                "system": NHS, "value": "9434765919"}],
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-GB"}]}}],
            "birthDate": "1970-01-01",
            "_birthDate": {"extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1970-01-01T10:00:00+00:00"}]}
        })
    }

    #[test]
    fn the_data_is_loaded() {
        let u = uk_core();
        assert_eq!(u.package, "UKCore.R4.STU.02.00.00");
        assert_eq!(u.profiles_for("Patient"), vec![PATIENT]);
        assert!(u.extension(VERIFICATION).is_some());
    }

    #[test]
    fn a_conforming_patient_passes() {
        r4().validate(&patient()).unwrap();
        assert_eq!(found(&patient()), Vec::<String>::new());
    }

    #[test]
    fn each_constraint_is_named() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|p| {
                    let second = json!({"system": NHS, "value": "9000000009"});
                    p["identifier"].as_array_mut().unwrap().push(second);
                }),
                "UKCore-Patient (Patient.identifier:nhsNumber): may appear at most once, found 2 @ Patient.identifier",
            ),
            (
                Box::new(|p| {
                    p["identifier"][0].as_object_mut().unwrap().remove("value");
                }),
                "UKCore-Patient (Patient.identifier:nhsNumber.value): is required (at least 1), but is missing @ Patient.identifier[0].value",
            ),
            (
                Box::new(|p| {
                    p["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] =
                        json!("99")
                }),
                "Extension-UKCore-NHSNumberVerificationStatus (Extension.value[x]): the code must come from the required value set UKCore-NHSNumberVerificationStatus",
            ),
            (
                Box::new(|p| {
                    let e = p["identifier"][0]["extension"][0].as_object_mut().unwrap();
                    e.remove("valueCodeableConcept");
                    e.insert("valueString".into(), json!("verified"));
                }),
                "Extension-UKCore-NHSNumberVerificationStatus (Extension.value[x]): valueString is not allowed here: the value must be valueCodeableConcept @ Patient.identifier[0].extension[0].valueString",
            ),
            (
                Box::new(|p| {
                    let e = p["extension"][0].clone();
                    p["extension"].as_array_mut().unwrap().push(e);
                }),
                "UKCore-Patient (Patient.extension:ethnicCategory): may appear at most once, found 2 @ Patient.extension",
            ),
            (
                Box::new(|p| {
                    let e = p["identifier"][0]["extension"][0].clone();
                    p["extension"].as_array_mut().unwrap().push(e);
                }),
                "Extension-UKCore-NHSNumberVerificationStatus may be used on Patient.identifier, not on Patient @ Patient.extension[1]",
            ),
            (
                Box::new(|p| {
                    p["communication"][0]["language"]["coding"][0]["code"] = json!("english!")
                }),
                "UKCore-Patient (Patient.communication.language): the code must come from the required value set all-languages",
            ),
            (
                Box::new(|p| {
                    p["_birthDate"]["extension"][0] = json!({
                        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                        "valueTime": "10:00:00"});
                }),
                "patient-birthTime (Extension.value[x]): valueTime is not allowed here",
            ),
        ];
        for (mutate, want) in cases {
            let mut p = patient();
            mutate(&mut p);
            let got = found(&p);
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "expected '{want}', got {got:?}"
            );
        }
    }

    #[test]
    fn only_claims_are_checked_and_nested_resources_by_their_own() {
        // No claim: stored as base R4 allows (two NHS numbers, a code
        // outside the value set), as an external system may send it.
        let mut p = patient();
        p.as_object_mut().unwrap().remove("meta");
        let second = json!({"system": NHS, "value": "9000000009"});
        p["identifier"].as_array_mut().unwrap().push(second);
        p["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] =
            json!("99");
        assert_eq!(found(&p), Vec::<String>::new());
        // A claiming resource inside an unclaimed one is held to its claim.
        let mut inner = patient();
        inner["id"] = json!("p1");
        inner["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] =
            json!("99");
        let bundle = json!({"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": "urn:uuid:1", "resource": p}, {"fullUrl": "urn:uuid:2", "resource": inner}]});
        assert_eq!(
            found(&bundle),
            vec![
                "Extension-UKCore-NHSNumberVerificationStatus (Extension.value[x]): the code must come from the required value set UKCore-NHSNumberVerificationStatus (https://fhir.hl7.org.uk/ValueSet/UKCore-NHSNumberVerificationStatus); found https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland#99 @ Bundle.entry[1].resource.identifier[0].extension[0].valueCodeableConcept"
            ]
        );
    }

    #[test]
    fn a_profile_of_another_type_is_refused() {
        let e = json!({"resourceType": "Encounter", "status": "planned",
            "class": {"code": "IMP"}, "meta": {"profile": [PATIENT]}});
        let err = uk_core().validate(r4(), &e).unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(
            err.issues[0].diagnostics,
            "UKCore-Patient is a profile of Patient, not of Encounter"
        );
    }

    #[test]
    fn discharge_method_belongs_on_the_encounter() {
        let ext = json!({"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DischargeMethod",
            "valueCodeableConcept": {"coding": [{"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeMethodEngland", "code": "1"}]}});
        let good = json!({"resourceType": "Encounter", "status": "finished",
            "meta": {"profile": [ENCOUNTER]},
            "class": {"code": "IMP"}, "extension": [ext.clone()]});
        assert_eq!(found(&good), Vec::<String>::new());
        let bad = json!({"resourceType": "Encounter", "status": "finished",
            "meta": {"profile": [ENCOUNTER]},
            "class": {"code": "IMP"}, "hospitalization": {"extension": [ext]}});
        assert_eq!(
            found(&bad),
            vec![
                "Extension-UKCore-DischargeMethod may be used on Encounter, not on Encounter.hospitalization @ Encounter.hospitalization.extension[0]"
            ]
        );
    }
}
