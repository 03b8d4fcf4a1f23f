//! A parsed, typed FHIR search ([`SearchQuery`]), independent of any database.
//!
//! [`parse`] turns URL query pairs into a [`SearchQuery`] using the search
//! parameters in [`crate::definitions`]; the store compiles it to SQL.
//! A compartment search (`Patient/ID/Observation`) is answered from the
//! patient key every stored resource carries (see the store). Within a
//! [`Filter`] the predicates are OR-ed (comma-separated values); the filters of a
//! query are AND-ed (repeated parameters).

use crate::definitions::SearchParamType;

/// Search prefixes for ordered types (date, number, quantity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMatch {
    /// Default: case- and accent-insensitive starts-with on the normalised value.
    StartsWith,
    /// `:exact`: case-sensitive whole-value match on the value as written.
    Exact,
    /// `:contains`: case-insensitive substring match on the normalised value.
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMatch {
    Exact,
    /// `:below`: the indexed URI starts with the value.
    Below,
    /// `:above`: the value starts with the indexed URI.
    Above,
}

/// The system part of a token search value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `code` is `None` for `system|`.
    Token {
        system: TokenSystem,
        code: Option<String>,
    },
    /// `:text` on a token: starts-with on the normalised display/text.
    TokenText(String),
    /// `value` is already normalised for StartsWith/Contains (see
    /// [`crate::index::normalise_string`]) and as written for Exact.
    String { value: String, mode: StringMatch },
    /// The search value's own range `[lo, hi)` in epoch milliseconds, from its precision.
    Date { prefix: Prefix, lo: i64, hi: i64 },
    /// `[lo, hi)` is the implicit range from the value's significant figures;
    /// `value` is the number as written.
    Number {
        prefix: Prefix,
        value: f64,
        lo: f64,
        hi: f64,
    },
    Quantity {
        prefix: Prefix,
        value: f64,
        lo: f64,
        hi: f64,
        system: Option<String>,
        code: Option<String>,
    },
    /// A reference: `Patient/123`, `123` (with `target_type` from a `:Type`
    /// modifier or the parameter's single target, else `None`), or an absolute URL.
    Reference {
        target_type: Option<String>,
        target_id: Option<String>,
        url: Option<String>,
    },
    Uri { value: String, mode: UriMatch },
}

/// What a filter tests.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterKind {
    /// The resource has at least one index entry of `param` matching any predicate.
    Match(Vec<Predicate>),
    /// `:not`: the resource has no index entry of `param` matching any predicate.
    Not(Vec<Predicate>),
    /// `:missing=true` (`true`) / `:missing=false` (`false`).
    Missing(bool),
    /// `_id`: any of these ids.
    Id(Vec<String>),
    /// `_lastUpdated` with prefixes (OR-ed).
    LastUpdated(Vec<(Prefix, i64, i64)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The search parameter code (`birthdate`, `identifier`, ...); `_id` and
    /// `_lastUpdated` for those kinds.
    pub param: String,
    /// The parameter's type (tells the store which index table to use);
    /// `None` for `_id` and `_lastUpdated`.
    pub param_type: Option<SearchParamType>,
    pub kind: FilterKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// A search parameter code, or `_id` / `_lastUpdated`.
    pub param: String,
    /// `None` for `_id` and `_lastUpdated`.
    pub param_type: Option<SearchParamType>,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Total {
    #[default]
    None,
    Estimate,
    Accurate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Summary {
    #[default]
    False,
    True,
    Text,
    Data,
    Count,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchQuery {
    /// `None` for a system-level search over all types.
    pub resource_type: Option<String>,
    /// `Patient/ID/Observation`: (compartment type, compartment id).
    pub compartment: Option<(String, String)>,
    pub filters: Vec<Filter>,
    pub sort: Vec<SortKey>,
    /// `_count`; the service applies its default and maximum.
    pub count: Option<usize>,
    pub total: Total,
    pub summary: Summary,
    /// `_elements`, if given.
    pub elements: Vec<String>,
    /// `_include` / `_revinclude` values as written (resolved by the service).
    pub include: Vec<String>,
    pub revinclude: Vec<String>,
    /// Parameters ignored under `Prefer: handling=lenient`, reported in the Bundle.
    pub ignored: Vec<String>,
}

/// How unknown or unsupported parameters are treated (`Prefer: handling=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handling {
    #[default]
    Lenient,
    Strict,
}
