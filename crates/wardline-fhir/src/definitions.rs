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

fn load_embedded() -> Definitions {
    todo!("compile data/ and load it")
}
