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
    /// Whole-value equality on the normalised value. Not a FHIR modifier:
    /// what `phonetic` searches compile to (its index values are codes).
    Equal,
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
    String {
        value: String,
        mode: StringMatch,
    },
    /// The search value's own range `[lo, hi)` in epoch milliseconds, from its precision.
    Date {
        prefix: Prefix,
        lo: i64,
        hi: i64,
    },
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
    Uri {
        value: String,
        mode: UriMatch,
    },
    /// A canonical reference (`url` or `url|version`), for a reference
    /// parameter whose elements hold canonical URLs: the indexed URL equals
    /// `url` (any version, or `version` when given). With `below` (the
    /// `:below` modifier): the indexed URL starts with `url` when no version
    /// is given; with one, the URL is `url` and the version is `version` or
    /// below it (`1.2` finds `1.2` and `1.2.3`).
    Canonical {
        url: String,
        version: Option<String>,
        below: bool,
    },
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
    /// A chained parameter (`subject:Patient.identifier=...`): the reference
    /// `param` points at a resource of one of these types matching its filter
    /// (several types when the chain does not name one; OR-ed).
    Chain(Vec<(String, Filter)>),
    /// A composite parameter (`code-value-quantity=loinc|8480-6$gt140`):
    /// alternatives (OR-ed), each the component predicates (with their
    /// types) that must all hold on the same element (one
    /// `Observation.component`, say).
    Composite(Vec<Vec<(SearchParamType, Predicate)>>),
    /// Reverse chaining (`_has:Observation:patient:code=...`): some
    /// `source_type` resource refers to this one by `reference_param` and
    /// matches `inner` (which may itself be a chain or `_has`).
    Has {
        source_type: String,
        reference_param: String,
        inner: Box<Filter>,
    },
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

/// Which patients' compartments a query is limited to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientScope {
    Any,
    Of(Vec<String>),
}

/// One `_include` (`Source:param[:Target]`) or `_revinclude`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The type holding the reference (`Encounter` in `Encounter:location`).
    pub source_type: String,
    /// The reference parameter, or `None` for `Source:*` (every reference).
    pub param: Option<String>,
    /// `Source:param:Target`: only references to this type.
    pub target_type: Option<String>,
    /// `:iterate` (or R4's `:recurse`): also applies to resources that were
    /// themselves included.
    pub iterate: bool,
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
    /// `_type` (system search, `$everything`): only these types.
    pub types: Vec<String>,
    /// Bulk export: only resources in some patient's compartment (`Any`) or
    /// in one of these patients' compartments.
    pub patient_scope: Option<PatientScope>,
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
    /// `_include` / `_revinclude`, in the order given.
    pub include: Vec<Include>,
    pub revinclude: Vec<Include>,
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

// ---- parsing ---------------------------------------------------------------

use crate::datetime::{FhirDate, LocalZone};
use crate::definitions::{Definitions, SearchParamDef};
use crate::error::FhirError;

const RESULT_PARAMS: [&str; 9] = [
    "_count",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_include",
    "_revinclude",
    "_format",
    "_pretty",
];

/// Parses URL query pairs into a [`SearchQuery`] for `resource_type` (`None`:
/// a system-level search, which allows only the common parameters), with
/// date values that have no time-zone offset read in `zone`, the trust's
/// local time zone (see [`crate::datetime`]). What a user or another system
/// asked is parsed so.
pub fn parse_in(
    defs: &Definitions,
    zone: &LocalZone,
    resource_type: Option<&str>,
    params: &[(String, String)],
    handling: Handling,
) -> Result<SearchQuery, FhirError> {
    parse_with(
        Cx {
            defs,
            zone: Some(zone),
        },
        resource_type,
        params,
        handling,
    )
}

/// [`parse_in`] without a time zone, for the queries code builds itself: a
/// date value without a time-zone offset is refused (400) rather than read
/// in a zone the caller did not choose.
pub fn parse(
    defs: &Definitions,
    resource_type: Option<&str>,
    params: &[(String, String)],
    handling: Handling,
) -> Result<SearchQuery, FhirError> {
    parse_with(Cx { defs, zone: None }, resource_type, params, handling)
}

/// What parsing reads values with.
#[derive(Clone, Copy)]
struct Cx<'a> {
    defs: &'a Definitions,
    zone: Option<&'a LocalZone>,
}

impl Cx<'_> {
    /// The range of date search value `v` (`shown` as written, with its
    /// prefix, for the error) of parameter `code`.
    fn date(&self, v: &str, shown: &str, code: &str) -> Result<(i64, i64), String> {
        let d = FhirDate::parse(v)
            .ok_or_else(|| format!("'{shown}' is not a valid date for {code}"))?;
        match self.zone {
            Some(z) => Ok(d.range_in(z)),
            None if d.has_offset() => Ok(d.range_in(&LocalZone::utc())),
            None => Err(format!(
                "'{shown}' for {code} has no time-zone offset, and this query is not read in the trust's time zone"
            )),
        }
    }
}

fn parse_with(
    cx: Cx<'_>,
    resource_type: Option<&str>,
    params: &[(String, String)],
    handling: Handling,
) -> Result<SearchQuery, FhirError> {
    let defs = cx.defs;
    let mut q = SearchQuery {
        resource_type: resource_type.map(str::to_owned),
        ..SearchQuery::default()
    };
    for (key, value) in params {
        // Unknown parameters and invalid modifiers (`invalid`) and features not
        // implemented yet (`not-supported`): refused under strict handling,
        // reported in `ignored` under lenient handling.
        let skip = |q: &mut SearchQuery, err: FhirError| -> Result<(), FhirError> {
            match handling {
                Handling::Strict => Err(err.at(key.clone())),
                Handling::Lenient => {
                    q.ignored.push(key.clone());
                    Ok(())
                }
            }
        };
        let bad = |why: String| FhirError::invalid(why).at(key.clone());
        match key.as_str() {
            "_format" | "_pretty" => continue,
            "_count" => {
                q.count =
                    Some(value.parse().map_err(|_| {
                        bad(format!("_count '{value}' is not a non-negative integer"))
                    })?);
                continue;
            }
            "_total" => {
                q.total = match value.as_str() {
                    "none" => Total::None,
                    "estimate" => Total::Estimate,
                    "accurate" => Total::Accurate,
                    _ => {
                        return Err(bad(format!(
                            "_total '{value}' must be none, estimate or accurate"
                        )));
                    }
                };
                continue;
            }
            "_summary" => {
                q.summary = match value.as_str() {
                    "true" => Summary::True,
                    "false" => Summary::False,
                    "text" => Summary::Text,
                    "data" => Summary::Data,
                    "count" => Summary::Count,
                    _ => {
                        return Err(bad(format!(
                            "_summary '{value}' is not one of true, false, text, data, count"
                        )));
                    }
                };
                continue;
            }
            "_elements" => {
                q.elements = value.split(',').map(|s| s.trim().to_owned()).collect();
                continue;
            }
            k if k == "_include"
                || k.starts_with("_include:")
                || k == "_revinclude"
                || k.starts_with("_revinclude:") =>
            {
                let (name, modifier) = k.split_once(':').unwrap_or((k, ""));
                let iterate = match modifier {
                    "" => false,
                    "iterate" | "recurse" => true,
                    m => return Err(bad(format!("'{name}:{m}' is not valid (use :iterate)"))),
                };
                for v in value.split(',').filter(|v| !v.is_empty()) {
                    let inc = parse_include(defs, v, iterate).map_err(&bad)?;
                    if name == "_include" {
                        q.include.push(inc);
                    } else {
                        q.revinclude.push(inc);
                    }
                }
                continue;
            }
            "_type" if resource_type.is_none() => {
                for t in value.split(',').filter(|t| !t.is_empty()) {
                    if !defs.is_resource_type(t) {
                        return Err(bad(format!("_type '{t}' is not a resource type")));
                    }
                    q.types.push(t.to_owned());
                }
                continue;
            }
            "_sort" => {
                for k in value.split(',').filter(|s| !s.is_empty()) {
                    let (desc, code) = match k.strip_prefix('-') {
                        Some(c) => (true, c),
                        None => (false, k),
                    };
                    let param_type = match code {
                        "_id" | "_lastUpdated" => None,
                        c => match lookup(defs, resource_type, c) {
                            Some(p) => Some(p.kind),
                            None => {
                                return Err(bad(format!("cannot sort by unknown parameter '{c}'")));
                            }
                        },
                    };
                    q.sort.push(SortKey {
                        param: code.to_owned(),
                        param_type,
                        descending: desc,
                    });
                }
                continue;
            }
            _ => {}
        }
        debug_assert!(!RESULT_PARAMS.contains(&key.as_str()));
        match param_filter(cx, resource_type, key, value, 0)? {
            Ok(f) => q.filters.push(f),
            Err(e) => skip(&mut q, e)?,
        }
    }
    Ok(q)
}

/// `Source:param[:Target]` or `Source:*`.
fn parse_include(defs: &Definitions, v: &str, iterate: bool) -> Result<Include, String> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, param, target) = match parts.as_slice() {
        [s, p] => (*s, *p, None),
        [s, p, t] => (*s, *p, Some(*t)),
        _ => {
            return Err(format!(
                "'{v}' must be Type:parameter or Type:parameter:TargetType"
            ));
        }
    };
    if !defs.is_resource_type(src) {
        return Err(format!("'{src}' in '{v}' is not a resource type"));
    }
    if let Some(t) = target
        && !defs.is_resource_type(t)
    {
        return Err(format!("'{t}' in '{v}' is not a resource type"));
    }
    let param = if param == "*" {
        None
    } else {
        match defs.search_param(src, param) {
            Some(d) if d.kind == SearchParamType::Reference => Some(param.to_owned()),
            Some(_) => return Err(format!("'{param}' of {src} is not a reference parameter")),
            None => return Err(format!("unknown search parameter '{param}' for {src}")),
        }
    };
    Ok(Include {
        source_type: src.to_owned(),
        param,
        target_type: target.map(str::to_owned),
        iterate,
    })
}

/// How deep chains and `_has` may nest (a guard against pathological URLs;
/// real queries use two or three levels).
pub const MAX_CHAIN_DEPTH: usize = 8;

/// A search parameter whose definition Wardline indexes.
fn lookup<'d>(
    defs: &'d Definitions,
    rtype: Option<&str>,
    code: &str,
) -> Option<&'d SearchParamDef> {
    known(defs, rtype, code).filter(|_| defs.is_indexed(rtype.unwrap_or("Patient"), code))
}

/// A search parameter defined for `rtype` (a system-level search allows only
/// the common `_` parameters, which every type defines; Patient stands in).
fn known<'d>(defs: &'d Definitions, rtype: Option<&str>, code: &str) -> Option<&'d SearchParamDef> {
    if rtype.is_none() && !code.starts_with('_') {
        return None;
    }
    defs.search_param(rtype.unwrap_or("Patient"), code)
}

/// One filter parameter (`key=value`) for `rtype`. The outer error is a bad
/// request whatever the handling (an unparsable value); the inner error is a
/// parameter Wardline does not know or support, which lenient handling ignores.
fn param_filter(
    cx: Cx<'_>,
    resource_type: Option<&str>,
    key: &str,
    value: &str,
    depth: usize,
) -> Result<Result<Filter, FhirError>, FhirError> {
    let defs = cx.defs;
    let bad = |why: String| FhirError::invalid(why).at(key);
    if depth > MAX_CHAIN_DEPTH {
        return Err(bad(format!(
            "'{key}' nests chains or _has more than {MAX_CHAIN_DEPTH} deep"
        )));
    }
    if key == "_has" || key.starts_with("_has:") {
        return has_filter(cx, resource_type, key, value, depth);
    }
    let (code, modifier) = match key.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (key, None),
    };
    if let Some((head, rest)) = key.split_once('.') {
        return chain_filter(cx, resource_type, key, head, rest, value, depth);
    }
    let values = split_values(value);
    if code == "_id" {
        return Ok(match modifier {
            None => Ok(Filter {
                param: "_id".into(),
                param_type: None,
                kind: FilterKind::Id(values),
            }),
            Some(m) => Err(FhirError::invalid(format!(
                "modifier ':{m}' is not valid on _id"
            ))),
        });
    }
    if code == "_lastUpdated" {
        if let Some(m) = modifier {
            return Ok(Err(FhirError::invalid(format!(
                "modifier ':{m}' is not valid on _lastUpdated"
            ))));
        }
        let mut ranges = Vec::new();
        for v in &values {
            let (p, rest) = prefix(v);
            let (lo, hi) = cx.date(rest, v, "_lastUpdated").map_err(bad)?;
            ranges.push((p, lo, hi));
        }
        return Ok(Ok(Filter {
            param: "_lastUpdated".into(),
            param_type: None,
            kind: FilterKind::LastUpdated(ranges),
        }));
    }
    let Some(def) = lookup(defs, resource_type, code) else {
        return Ok(Err(if known(defs, resource_type, code).is_some() {
            FhirError::not_supported(format!(
                "search parameter '{code}' is not supported yet (special, \
                 or an expression Wardline does not evaluate)"
            ))
        } else {
            FhirError::invalid(format!(
                "unknown search parameter '{code}' for {}",
                resource_type.unwrap_or("a system search")
            ))
        }));
    };
    let kind = def.kind;
    if modifier == Some("missing") {
        let b = match value {
            "true" => true,
            "false" => false,
            _ => return Err(bad(format!(":missing takes true or false, not '{value}'"))),
        };
        return Ok(Ok(Filter {
            param: code.into(),
            param_type: Some(kind),
            kind: FilterKind::Missing(b),
        }));
    }
    if kind == SearchParamType::Composite {
        if let Some(m) = modifier {
            return Ok(Err(FhirError::invalid(format!(
                "modifier ':{m}' is not valid on {code}"
            ))));
        }
        return composite_filter(cx, def, &split_raw(value, ','))
            .map(Ok)
            .map_err(bad);
    }
    let mut preds = Vec::new();
    let mut negate = false;
    // `phonetic`: each value's codes (any of them matches), compared whole
    // with the indexed codes (see `crate::phonetic`); `:exact` and
    // `:contains` mean the same.
    if kind == SearchParamType::String
        && code == "phonetic"
        && matches!(modifier, None | Some("exact") | Some("contains"))
    {
        for v in &values {
            let codes = crate::phonetic::query_codes(v);
            if codes.is_empty() {
                return Err(bad(format!("'{v}' has no letters to match by sound")));
            }
            preds.extend(codes.into_iter().map(|c| Predicate::String {
                value: c.to_ascii_lowercase(),
                mode: StringMatch::Equal,
            }));
        }
        return Ok(Ok(Filter {
            param: code.into(),
            param_type: Some(kind),
            kind: FilterKind::Match(preds),
        }));
    }
    for v in &values {
        if kind == SearchParamType::Reference {
            match reference_predicates(cx, def, modifier, v) {
                Ok(Ok(p)) => preds.extend(p),
                Ok(Err(e)) => return Ok(Err(e)),
                Err(why) => return Err(bad(why)),
            }
            continue;
        }
        let p = match value_predicate(cx, def, modifier, v) {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Ok(Err(e)),
            Err(why) => return Err(bad(why)),
        };
        negate = modifier == Some("not");
        preds.push(p);
    }
    Ok(Ok(Filter {
        param: code.into(),
        param_type: Some(kind),
        kind: if negate {
            FilterKind::Not(preds)
        } else {
            FilterKind::Match(preds)
        },
    }))
}

/// The predicate for one value of a (non-composite) parameter. Outer error: a
/// bad value (the message); inner error: an unsupported or invalid modifier.
fn value_predicate(
    cx: Cx<'_>,
    def: &SearchParamDef,
    modifier: Option<&str>,
    v: &str,
) -> Result<Result<Predicate, FhirError>, String> {
    let defs = cx.defs;
    let code = &def.code;
    Ok(Ok(match (def.kind, modifier) {
        (SearchParamType::String, None | Some("contains") | Some("exact")) => {
            let mode = match modifier {
                Some("exact") => StringMatch::Exact,
                Some("contains") => StringMatch::Contains,
                _ => StringMatch::StartsWith,
            };
            let value = if mode == StringMatch::Exact {
                v.to_owned()
            } else {
                crate::index::normalise_string(v)
            };
            Predicate::String { value, mode }
        }
        (SearchParamType::Token, None | Some("not")) => token(v),
        (SearchParamType::Token, Some("text")) => {
            Predicate::TokenText(crate::index::normalise_string(v))
        }
        (SearchParamType::Date, None) => {
            let (p, rest) = prefix(v);
            let (lo, hi) = cx.date(rest, v, code)?;
            Predicate::Date { prefix: p, lo, hi }
        }
        (SearchParamType::Number, None) => {
            let (p, rest) = prefix(v);
            let (value, lo, hi) =
                number(rest).ok_or_else(|| format!("'{v}' is not a number for {code}"))?;
            Predicate::Number {
                prefix: p,
                value,
                lo,
                hi,
            }
        }
        (SearchParamType::Quantity, None) => {
            let mut parts = v.splitn(3, '|');
            let (p, rest) = prefix(parts.next().unwrap_or_default());
            let (value, lo, hi) =
                number(rest).ok_or_else(|| format!("'{v}' is not a quantity for {code}"))?;
            let system = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
            let unit = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
            Predicate::Quantity {
                prefix: p,
                value,
                lo,
                hi,
                system,
                code: unit,
            }
        }
        (SearchParamType::Reference, m) => {
            let type_mod = match m {
                None => None,
                Some(t) if defs.is_resource_type(t) => Some(t.to_owned()),
                Some("identifier") => {
                    return Ok(Err(FhirError::not_supported(format!(
                        "modifier ':identifier' on {code} is not supported yet"
                    ))));
                }
                Some(m) => {
                    return Ok(Err(FhirError::invalid(format!(
                        "modifier ':{m}' is not valid on {code}"
                    ))));
                }
            };
            reference(defs, v, type_mod, def)?
        }
        (SearchParamType::Uri, None | Some("below") | Some("above")) => Predicate::Uri {
            value: v.to_owned(),
            mode: match modifier {
                Some("below") => UriMatch::Below,
                Some("above") => UriMatch::Above,
                _ => UriMatch::Exact,
            },
        },
        (SearchParamType::Composite | SearchParamType::Special, _) => {
            return Ok(Err(FhirError::not_supported(format!(
                "{code} is a special parameter, not supported yet"
            ))));
        }
        (_, Some(m)) => {
            return Ok(Err(FhirError::invalid(format!(
                "modifier ':{m}' is not valid on {code}"
            ))));
        }
    }))
}

/// The predicates for one value of a reference parameter, OR-ed: a literal
/// reference (type and id, or a URL) where the parameter's elements are
/// References, and the value as a canonical URL (`url|version`) where they
/// are canonicals; both for a parameter that has both. `:below` is for
/// canonicals only. Outer error: a bad value; inner: a bad modifier.
fn reference_predicates(
    cx: Cx<'_>,
    def: &SearchParamDef,
    modifier: Option<&str>,
    v: &str,
) -> Result<Result<Vec<Predicate>, FhirError>, String> {
    let kinds = cx.defs.reference_kinds(&def.resource_type, &def.code);
    let below = modifier == Some("below");
    let typed = modifier.is_some_and(|m| cx.defs.is_resource_type(m));
    if !kinds.canonical || !(modifier.is_none() || below || typed) {
        return Ok(value_predicate(cx, def, modifier, v)?.map(|p| vec![p]));
    }
    let mut out = Vec::new();
    if kinds.literal && !below && !v.contains('|') {
        match value_predicate(cx, def, modifier, v)? {
            Ok(p) => out.push(p),
            Err(e) => return Ok(Err(e)),
        }
    }
    let (url, version) = match v.split_once('|') {
        Some((u, ver)) => (u, Some(ver).filter(|x| !x.is_empty())),
        None => (v, None),
    };
    if url.is_empty() {
        return Err(format!(
            "'{v}' is not a canonical URL for {} (url or url|version)",
            def.code
        ));
    }
    out.push(Predicate::Canonical {
        url: url.to_owned(),
        version: version.map(str::to_owned),
        below,
    });
    Ok(Ok(out))
}

/// Points an error from a link of a chain at the whole parameter as written.
fn whole_key(mut e: FhirError, key: &str) -> FhirError {
    if let Some(i) = e.issues.first_mut() {
        i.expression = vec![key.to_owned()];
    }
    e
}

/// A chained parameter: `head` is `param` or `param:Type`, `rest` the
/// parameter (possibly chained again) of the referenced resource.
fn chain_filter(
    cx: Cx<'_>,
    resource_type: Option<&str>,
    key: &str,
    head: &str,
    rest: &str,
    value: &str,
    depth: usize,
) -> Result<Result<Filter, FhirError>, FhirError> {
    let defs = cx.defs;
    let (code, modifier) = match head.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (head, None),
    };
    let Some(def) = lookup(defs, resource_type, code) else {
        return Ok(Err(FhirError::invalid(format!(
            "unknown search parameter '{code}' in chain '{key}'"
        ))));
    };
    if def.kind != SearchParamType::Reference {
        return Err(FhirError::invalid(format!(
            "'{code}' is not a reference parameter, so '{key}' cannot chain through it"
        ))
        .at(key));
    }
    let rest_code = rest.split(['.', ':']).next().unwrap_or_default().to_owned();
    let candidates: Vec<String> = match modifier {
        Some(t) if defs.is_resource_type(t) => vec![t.to_owned()],
        Some(m) => {
            return Ok(Err(FhirError::invalid(format!(
                "':{m}' in chain '{key}' is not a resource type"
            ))));
        }
        None => match single_target(def) {
            Some(t) => vec![t],
            None => def
                .targets
                .iter()
                .filter(|t| {
                    rest_code == "_has"
                        || rest_code.starts_with('_')
                        || known(defs, Some(t), &rest_code).is_some()
                })
                .cloned()
                .collect(),
        },
    };
    if candidates.is_empty() {
        return Err(FhirError::invalid(format!(
            "no resource type that '{code}' can refer to has a search parameter '{rest_code}'"
        ))
        .at(key));
    }
    let mut targets = Vec::with_capacity(candidates.len());
    for t in candidates {
        match param_filter(cx, Some(&t), rest, value, depth + 1).map_err(|e| whole_key(e, key))? {
            Ok(inner) => targets.push((t, inner)),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(Filter {
        param: code.into(),
        param_type: Some(SearchParamType::Reference),
        kind: FilterKind::Chain(targets),
    }))
}

/// `_has:Source:param:rest=value`: resources that some `Source` refers to by
/// `param`, where that `Source` matches `rest=value` (which may be another `_has`).
fn has_filter(
    cx: Cx<'_>,
    resource_type: Option<&str>,
    key: &str,
    value: &str,
    depth: usize,
) -> Result<Result<Filter, FhirError>, FhirError> {
    let defs = cx.defs;
    let bad = |why: String| FhirError::invalid(why).at(key);
    let Some(target) = resource_type else {
        return Err(bad(
            "_has needs a resource type (it is not allowed in a system-level search)".into(),
        ));
    };
    let mut parts = key.splitn(4, ':');
    parts.next();
    let (Some(source), Some(param), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(format!(
            "'{key}' must have the form _has:Type:reference-parameter:parameter"
        )));
    };
    if !defs.is_resource_type(source) {
        return Err(bad(format!("'{source}' in '{key}' is not a resource type")));
    }
    let Some(def) = lookup(defs, Some(source), param) else {
        return Ok(Err(FhirError::invalid(format!(
            "unknown search parameter '{param}' for {source} in '{key}'"
        ))));
    };
    if def.kind != SearchParamType::Reference {
        return Err(bad(format!(
            "'{param}' of {source} is not a reference parameter"
        )));
    }
    if !def.targets.is_empty() && !def.targets.iter().any(|t| t == target || t == "Resource") {
        return Err(bad(format!("{source}.{param} cannot refer to a {target}")));
    }
    match param_filter(cx, Some(source), rest, value, depth + 1).map_err(|e| whole_key(e, key))? {
        Ok(inner) => Ok(Ok(Filter {
            param: "_has".into(),
            param_type: None,
            kind: FilterKind::Has {
                source_type: source.to_owned(),
                reference_param: param.to_owned(),
                inner: Box::new(inner),
            },
        })),
        Err(e) => Ok(Err(e)),
    }
}

/// A composite parameter (`code-value-quantity=http://loinc.org|8480-6$gt100`):
/// each comma-separated value is `$`-separated component values, each parsed
/// by its component's own parameter type.
fn composite_filter(cx: Cx<'_>, def: &SearchParamDef, values: &[String]) -> Result<Filter, String> {
    let defs = cx.defs;
    // `values` are raw (escapes kept): `$` separates components first.
    let comps: Vec<&SearchParamDef> = def
        .components
        .iter()
        .map(|(c, _)| {
            defs.search_param(&def.resource_type, c)
                .ok_or_else(|| format!("composite {} has an unknown component '{c}'", def.code))
        })
        .collect::<Result<_, _>>()?;
    let mut alts = Vec::new();
    for v in values {
        let parts: Vec<String> = split_raw(v, '$')
            .iter()
            .map(|p| split_values(p).concat())
            .collect();
        if parts.len() != comps.len() {
            return Err(format!(
                "'{v}' must have {} '$'-separated parts for {}",
                comps.len(),
                def.code
            ));
        }
        let mut preds = Vec::new();
        for (c, part) in comps.iter().zip(&parts) {
            match value_predicate(cx, c, None, part)? {
                Ok(p) => preds.push((c.kind, p)),
                Err(e) => return Err(e.to_string()),
            }
        }
        alts.push(preds);
    }
    Ok(Filter {
        param: def.code.clone(),
        param_type: Some(SearchParamType::Composite),
        kind: FilterKind::Composite(alts),
    })
}

/// Splits on unescaped `sep`, keeping every escape as written (for the
/// composite parser, whose parts are unescaped by [`split_values`] later).
fn split_raw(v: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        let last = out.last_mut().expect("non-empty");
        if c == '\\' {
            last.push(c);
            if let Some(n) = chars.next() {
                last.push(n);
            }
        } else if c == sep {
            out.push(String::new());
        } else {
            last.push(c);
        }
    }
    out
}

/// A value as a search parameter must carry it: `\`, `|`, `,` and `$`
/// escaped with `\` (R4 search, "Escaping search parameters"), so that a
/// system or code holding them is one value; what [`parse`] reads back.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '|' | ',' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on unescaped commas and unescapes `\,` `\|` `\$` `\\`.
fn split_values(v: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ (',' | '$' | '\\')) => out.last_mut().expect("non-empty").push(n),
                Some('|') => out.last_mut().expect("non-empty").push_str("\\|"),
                Some(n) => {
                    let last = out.last_mut().expect("non-empty");
                    last.push('\\');
                    last.push(n);
                }
                None => out.last_mut().expect("non-empty").push('\\'),
            },
            ',' => out.push(String::new()),
            c => out.last_mut().expect("non-empty").push(c),
        }
    }
    out
}

fn prefix(v: &str) -> (Prefix, &str) {
    let p = match v.get(..2) {
        Some("eq") => Prefix::Eq,
        Some("ne") => Prefix::Ne,
        Some("gt") => Prefix::Gt,
        Some("lt") => Prefix::Lt,
        Some("ge") => Prefix::Ge,
        Some("le") => Prefix::Le,
        Some("sa") => Prefix::Sa,
        Some("eb") => Prefix::Eb,
        Some("ap") => Prefix::Ap,
        _ => return (Prefix::Eq, v),
    };
    (p, &v[2..])
}

/// A number and its implicit range from its significant figures: `100` is
/// `[99.5, 100.5)`, `100.0` is `[99.95, 100.05)`, and `1e2` (one significant
/// figure) is `[50, 150)`. (The R4 search page's table gives `[95, 105)` for
/// `1e2`, which no significant-figure rule yields; Wardline keeps the rule.)
fn number(s: &str) -> Option<(f64, f64, f64)> {
    let value: f64 = s.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len() as i32);
    let half = 0.5 * 10f64.powi(exp - decimals);
    // A value written more precisely than an f64 holds (20 significant
    // digits) has a range narrower than one f64 step: keep at least the
    // value itself in it, or nothing would ever match.
    let lo = (value - half).min(value.next_down());
    let hi = (value + half).max(value.next_up());
    Some((value, lo, hi))
}

fn token(v: &str) -> Predicate {
    // `\|` was kept escaped by split_values; split on unescaped `|`.
    let mut idx = None;
    let b = v.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'|' && (i == 0 || b[i - 1] != b'\\') {
            idx = Some(i);
            break;
        }
    }
    let un = |s: &str| s.replace("\\|", "|");
    match idx {
        None => Predicate::Token {
            system: TokenSystem::Any,
            code: Some(un(v)),
        },
        Some(i) => {
            let (sys, code) = (&v[..i], &v[i + 1..]);
            Predicate::Token {
                system: if sys.is_empty() {
                    TokenSystem::None
                } else {
                    TokenSystem::Is(un(sys))
                },
                code: if code.is_empty() {
                    None
                } else {
                    Some(un(code))
                },
            }
        }
    }
}

fn reference(
    defs: &Definitions,
    v: &str,
    type_mod: Option<String>,
    def: &SearchParamDef,
) -> Result<Predicate, String> {
    if v.contains("://") {
        if let Some((Some(t), Some(id))) = crate::extract::split_reference(v)
            && defs.is_resource_type(&t)
        {
            return Ok(Predicate::Reference {
                target_type: Some(t),
                target_id: Some(id),
                url: Some(v.to_owned()),
            });
        }
        return Ok(Predicate::Reference {
            target_type: None,
            target_id: None,
            url: Some(v.to_owned()),
        });
    }
    if v.starts_with("urn:") {
        return Ok(Predicate::Reference {
            target_type: None,
            target_id: None,
            url: Some(v.to_owned()),
        });
    }
    let bad = || {
        format!(
            "'{v}' is not a reference for {} (Type/id, id or URL)",
            def.code
        )
    };
    match v.split_once('/') {
        Some((t, rest)) => {
            let mut parts = rest.split('/');
            let id = parts.next().unwrap_or_default();
            // Only `Type/id` or `Type/id/_history/version`.
            let tail: Vec<&str> = parts.collect();
            if !defs.is_resource_type(t)
                || id.is_empty()
                || !(tail.is_empty() || (tail.len() == 2 && tail[0] == "_history"))
            {
                return Err(bad());
            }
            if type_mod.as_deref().is_some_and(|m| m != t) {
                return Err(format!(
                    "'{v}' does not match the :{} modifier on {}",
                    type_mod.unwrap_or_default(),
                    def.code
                ));
            }
            Ok(Predicate::Reference {
                target_type: Some(t.to_owned()),
                target_id: Some(id.to_owned()),
                url: None,
            })
        }
        None if v.is_empty() => Err(bad()),
        None => Ok(Predicate::Reference {
            target_type: type_mod.or_else(|| single_target(def)),
            target_id: Some(v.to_owned()),
            url: None,
        }),
    }
}

/// The one resource type a reference parameter can point at: its single
/// declared target, or the type every alternative of its expression restricts
/// to with `where(resolve() is T)` (a shared `patient` parameter declares
/// Patient and Group but `Observation.subject.where(resolve() is Patient)`).
fn single_target(def: &SearchParamDef) -> Option<String> {
    if def.targets.len() == 1 {
        return Some(def.targets[0].clone());
    }
    let expr = def.expression.as_deref()?;
    let mut found: Option<&str> = None;
    for alt in crate::definitions::split_top_level(expr, '|') {
        let (_, rest) = alt.split_once("where(resolve() is ")?;
        let t = rest.split(')').next()?.trim();
        if found.is_some_and(|f| f != t) {
            return None;
        }
        found = Some(t);
    }
    found.map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::r4;
    use proptest::prelude::*;

    fn p(t: &str, q: &[(&str, &str)], h: Handling) -> Result<SearchQuery, FhirError> {
        let v: Vec<(String, String)> = q
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        parse_in(r4(), &LocalZone::utc(), Some(t), &v, h)
    }

    #[test]
    fn types_modifiers_prefixes() {
        let q = p(
            "Patient",
            &[
                ("family:exact", "Smith"),
                ("birthdate", "ge1970-01"),
                (
                    "identifier",
                    "https://fhir.nhs.uk/Id/nhs-number|9434765919,|x",
                ),
                ("gender:not", "male"),
            ],
            Handling::Strict,
        )
        .unwrap();
        assert_eq!(q.filters.len(), 4);
        assert!(
            matches!(&q.filters[0].kind, FilterKind::Match(v) if v[0] == Predicate::String { value: "Smith".into(), mode: StringMatch::Exact })
        );
        assert!(
            matches!(&q.filters[1].kind, FilterKind::Match(v) if matches!(v[0], Predicate::Date { prefix: Prefix::Ge, .. }))
        );
        assert!(
            matches!(&q.filters[2].kind, FilterKind::Match(v) if v.len() == 2 && v[1] == Predicate::Token { system: TokenSystem::None, code: Some("x".into()) })
        );
        assert!(matches!(&q.filters[3].kind, FilterKind::Not(_)));
        let q = p(
            "Observation",
            &[
                ("value-quantity", "lt5.4|http://unitsofmeasure.org|mg"),
                ("subject", "Patient/1"),
                ("_sort", "-date,_id"),
                ("_count", "5"),
            ],
            Handling::Strict,
        )
        .unwrap();
        assert!(
            matches!(&q.filters[0].kind, FilterKind::Match(v) if matches!(&v[0], Predicate::Quantity { prefix: Prefix::Lt, lo, hi, .. } if (*lo - 5.35).abs() < 1e-9 && (*hi - 5.45).abs() < 1e-9))
        );
        assert_eq!(q.sort.len(), 2);
        assert!(q.sort[0].descending);
        assert_eq!(q.count, Some(5));
    }

    #[test]
    fn unknown_and_bad_values() {
        let e = p("Patient", &[("nonsense", "1")], Handling::Strict).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.issues[0].expression, vec!["nonsense"]);
        let q = p("Patient", &[("nonsense", "1")], Handling::Lenient).unwrap();
        assert_eq!(q.ignored, vec!["nonsense"]);
        assert_eq!(
            p("Patient", &[("birthdate", "1970-99")], Handling::Lenient)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            p("Patient", &[("_count", "x")], Handling::Lenient)
                .unwrap_err()
                .status,
            400
        );
        assert!(
            p(
                "Observation",
                &[("subject:Patient.name:nope", "x")],
                Handling::Strict
            )
            .is_err()
        );
    }

    #[test]
    fn composites() {
        let q = p(
            "Observation",
            &[(
                "component-code-value-quantity",
                "http://loinc.org|8480-6$gt140|http://unitsofmeasure.org|mm[Hg],8462-4$ge90",
            )],
            Handling::Strict,
        )
        .unwrap();
        let FilterKind::Composite(alts) = &q.filters[0].kind else {
            panic!("{q:?}")
        };
        assert_eq!(alts.len(), 2);
        assert_eq!(
            alts[0][0],
            (
                SearchParamType::Token,
                Predicate::Token {
                    system: TokenSystem::Is("http://loinc.org".into()),
                    code: Some("8480-6".into())
                }
            )
        );
        let (
            kind,
            Predicate::Quantity {
                prefix,
                value,
                system,
                code,
                ..
            },
        ) = &alts[0][1]
        else {
            panic!("{alts:?}")
        };
        assert_eq!(*kind, SearchParamType::Quantity);
        assert_eq!((*prefix, *value), (Prefix::Gt, 140.0));
        assert_eq!(system.as_deref(), Some("http://unitsofmeasure.org"));
        assert_eq!(code.as_deref(), Some("mm[Hg]"));
        // An escaped `$` belongs to the component value.
        let q = p(
            "Observation",
            &[("code-value-string", "c$a\\$b")],
            Handling::Strict,
        )
        .unwrap();
        let FilterKind::Composite(alts) = &q.filters[0].kind else {
            panic!()
        };
        assert_eq!(
            alts[0][1].1,
            Predicate::String {
                value: crate::index::normalise_string("a$b"),
                mode: StringMatch::StartsWith
            }
        );
    }

    #[test]
    fn chains_and_reverse_chains() {
        let q = p(
            "Observation",
            &[(
                "subject:Patient.general-practitioner:Organization.identifier",
                "https://fhir.nhs.uk/Id/ods-organization-code|F81001",
            )],
            Handling::Strict,
        )
        .unwrap();
        let FilterKind::Chain(targets) = &q.filters[0].kind else {
            panic!("{q:?}")
        };
        assert_eq!(q.filters[0].param, "subject");
        assert_eq!(targets[0].0, "Patient");
        let FilterKind::Chain(inner) = &targets[0].1.kind else {
            panic!("{targets:?}")
        };
        assert_eq!(inner[0].0, "Organization");
        assert_eq!(inner[0].1.param, "identifier");
        // Without a type, every target that has the parameter.
        let q = p("Observation", &[("subject.name", "x")], Handling::Strict).unwrap();
        let FilterKind::Chain(targets) = &q.filters[0].kind else {
            panic!()
        };
        let types: Vec<&str> = targets.iter().map(|(t, _)| t.as_str()).collect();
        assert!(
            types.contains(&"Patient") && types.contains(&"Location"),
            "{types:?}"
        );
        assert!(!types.contains(&"Device"), "Device has no name parameter");
        // Nested _has, with the innermost parameter a chain.
        let q = p(
            "Patient",
            &[(
                "_has:Encounter:patient:_has:Observation:encounter:code",
                "8867-4",
            )],
            Handling::Strict,
        )
        .unwrap();
        let FilterKind::Has {
            source_type,
            reference_param,
            inner,
        } = &q.filters[0].kind
        else {
            panic!()
        };
        assert_eq!(
            (source_type.as_str(), reference_param.as_str()),
            ("Encounter", "patient")
        );
        assert!(
            matches!(&inner.kind, FilterKind::Has { source_type, .. } if source_type == "Observation")
        );
        // A bad value deep in a chain is a 400 naming the whole parameter.
        let e = p(
            "Observation",
            &[("subject:Patient.birthdate", "notadate")],
            Handling::Lenient,
        )
        .unwrap_err();
        assert_eq!(e.issues[0].expression, vec!["subject:Patient.birthdate"]);
        // Depth is bounded.
        let deep = format!(
            "subject:Patient{}.name",
            ".link:Patient".repeat(MAX_CHAIN_DEPTH + 1)
        );
        assert!(p("Observation", &[(&deep, "x")], Handling::Strict).is_err());
    }

    #[test]
    fn not_supported_and_invalid_modifiers() {
        let code = |t: &str, k: &str, v: &str| {
            p(t, &[(k, v)], Handling::Strict)
                .map(|_| "ok")
                .unwrap_or_else(|e| {
                    assert_eq!(e.status, 400);
                    assert_eq!(e.issues[0].expression, vec![k.to_owned()]);
                    e.issues[0].code
                })
        };
        assert_eq!(code("Observation", "subject.name", "x"), "ok");
        assert_eq!(code("Observation", "subject:Patient.name", "x"), "ok");
        assert_eq!(code("Patient", "_has:Observation:patient:code", "x"), "ok");
        assert_eq!(code("Observation", "subject:Patient.nope", "x"), "invalid");
        assert_eq!(code("Observation", "code.name", "x"), "invalid");
        assert_eq!(
            code("Patient", "_has:Observation:code:code", "x"),
            "invalid"
        );
        assert_eq!(code("Patient", "_has:Nope:patient:code", "x"), "invalid");
        assert_eq!(code("Patient", "_has:Observation:patient", "x"), "invalid");
        assert_eq!(
            code("Patient", "_has:Encounter:location:status", "x"),
            "invalid"
        );
        assert_eq!(
            code("Observation", "subject:identifier", "a|b"),
            "not-supported"
        );
        assert_eq!(code("Observation", "code-value-quantity", "x$5"), "ok");
        assert_eq!(code("Observation", "_text", "x"), "not-supported");
        // A composite value needs one part per component, each valid.
        assert_eq!(code("Observation", "code-value-quantity", "x"), "invalid");
        assert_eq!(code("Observation", "code-value-quantity", "x$y"), "invalid");
        assert_eq!(
            code("Observation", "code-value-quantity:exact", "x$1"),
            "invalid"
        );
        assert_eq!(code("Patient", "_id:missing", "true"), "invalid");
        assert_eq!(code("Patient", "_lastUpdated:exact", "2020"), "invalid");
        assert_eq!(code("Patient", "family:not", "x"), "invalid");
        assert_eq!(code("Patient", "birthdate:exact", "2020"), "invalid");
        assert_eq!(code("Observation", "subject:Nonsense", "1"), "invalid");
        let q = p(
            "Observation",
            &[
                ("_text", "x"),
                ("subject:Patient.foo:bar", "x"),
                ("_has:Observation:has-member:nope", "1"),
                ("foo", "1"),
            ],
            Handling::Lenient,
        )
        .unwrap();
        assert_eq!(
            q.ignored,
            vec![
                "_text",
                "subject:Patient.foo:bar",
                "_has:Observation:has-member:nope",
                "foo"
            ]
        );
        assert!(q.filters.is_empty());
        // System-level search: only the common parameters.
        let sys = |k: &str, v: &str| {
            parse_in(
                r4(),
                &LocalZone::utc(),
                None,
                &[(k.to_owned(), v.to_owned())],
                Handling::Strict,
            )
        };
        assert!(sys("_id", "a,b").is_ok());
        assert!(sys("_lastUpdated", "gt2020").is_ok());
        assert_eq!(sys("family", "x").unwrap_err().issues[0].code, "invalid");
    }

    #[test]
    fn values_of_each_type() {
        let one = |t: &str, k: &str, v: &str| -> Filter {
            let mut q = p(t, &[(k, v)], Handling::Strict).unwrap();
            assert_eq!(q.filters.len(), 1, "{k}={v}");
            q.filters.remove(0)
        };
        let preds = |f: Filter| match f.kind {
            FilterKind::Match(v) | FilterKind::Not(v) => v,
            other => panic!("{other:?}"),
        };
        // string
        assert_eq!(
            preds(one("Patient", "family", "Zoë")),
            vec![Predicate::String {
                value: "zoe".into(),
                mode: StringMatch::StartsWith
            }]
        );
        assert_eq!(
            preds(one("Patient", "name:contains", "AL")),
            vec![Predicate::String {
                value: "al".into(),
                mode: StringMatch::Contains
            }]
        );
        // token forms and escaping
        assert_eq!(
            preds(one("Observation", "code", "http://loinc.org|,|x,y,s|")),
            vec![
                Predicate::Token {
                    system: TokenSystem::Is("http://loinc.org".into()),
                    code: None
                },
                Predicate::Token {
                    system: TokenSystem::None,
                    code: Some("x".into())
                },
                Predicate::Token {
                    system: TokenSystem::Any,
                    code: Some("y".into())
                },
                Predicate::Token {
                    system: TokenSystem::Is("s".into()),
                    code: None
                },
            ]
        );
        assert_eq!(
            preds(one("Observation", "code", "a\\|b\\,c")),
            vec![Predicate::Token {
                system: TokenSystem::Any,
                code: Some("a|b,c".into())
            }]
        );
        assert_eq!(
            preds(one("Observation", "code:text", "Heart Rate")),
            vec![Predicate::TokenText("heart rate".into())]
        );
        // date prefixes and precision
        for (pre, want) in [
            ("eq", Prefix::Eq),
            ("ne", Prefix::Ne),
            ("gt", Prefix::Gt),
            ("lt", Prefix::Lt),
            ("ge", Prefix::Ge),
            ("le", Prefix::Le),
            ("sa", Prefix::Sa),
            ("eb", Prefix::Eb),
            ("ap", Prefix::Ap),
        ] {
            let v = format!("{pre}2020-02");
            match &preds(one("Patient", "birthdate", &v))[0] {
                Predicate::Date { prefix, lo, hi } => {
                    assert_eq!(*prefix, want);
                    assert_eq!(hi - lo, 29 * 86_400_000);
                }
                other => panic!("{other:?}"),
            }
        }
        // number
        match &preds(one("RiskAssessment", "probability", "gt0.25"))[0] {
            Predicate::Number {
                prefix: Prefix::Gt,
                value,
                lo,
                hi,
            } => {
                assert_eq!(*value, 0.25);
                assert!((lo - 0.245).abs() < 1e-12 && (hi - 0.255).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
        // quantity `value||code`
        match &preds(one("Observation", "value-quantity", "5.4||mg"))[0] {
            Predicate::Quantity {
                prefix: Prefix::Eq,
                value,
                system: None,
                code: Some(c),
                ..
            } => {
                assert_eq!((*value, c.as_str()), (5.4, "mg"));
            }
            other => panic!("{other:?}"),
        }
        // reference forms
        assert_eq!(
            preds(one("Observation", "subject:Patient", "123")),
            vec![Predicate::Reference {
                target_type: Some("Patient".into()),
                target_id: Some("123".into()),
                url: None
            }]
        );
        assert_eq!(
            preds(one("Observation", "patient", "123")),
            vec![Predicate::Reference {
                target_type: Some("Patient".into()),
                target_id: Some("123".into()),
                url: None
            }]
        );
        assert_eq!(
            preds(one(
                "Observation",
                "subject",
                "http://ex.org/fhir/Patient/9"
            )),
            vec![Predicate::Reference {
                target_type: Some("Patient".into()),
                target_id: Some("9".into()),
                url: Some("http://ex.org/fhir/Patient/9".into())
            }]
        );
        for bad in ["Nonsense/1", "Patient/", "Patient/1/2", ""] {
            let e = p("Observation", &[("subject", bad)], Handling::Lenient).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert_eq!(e.issues[0].expression, vec!["subject"]);
        }
        assert!(
            p(
                "Observation",
                &[("subject:Group", "Patient/1")],
                Handling::Lenient
            )
            .is_err()
        );
        assert_eq!(
            preds(one("Observation", "subject", "Patient/1/_history/2")),
            vec![Predicate::Reference {
                target_type: Some("Patient".into()),
                target_id: Some("1".into()),
                url: None
            }]
        );
        assert_eq!(
            preds(one("Observation", "subject", "urn:uuid:abc")),
            vec![Predicate::Reference {
                target_type: None,
                target_id: None,
                url: Some("urn:uuid:abc".into())
            }]
        );
        assert!(
            p(
                "Patient",
                &[("_include:iterate", "Patient:link")],
                Handling::Strict
            )
            .unwrap()
            .include[0]
                .iterate
        );
        // uri
        assert_eq!(
            preds(one("ValueSet", "url:below", "http://ex.org/vs")),
            vec![Predicate::Uri {
                value: "http://ex.org/vs".into(),
                mode: UriMatch::Below
            }]
        );
        // :missing, _id, _lastUpdated
        assert_eq!(
            one("Patient", "birthdate:missing", "true").kind,
            FilterKind::Missing(true)
        );
        assert_eq!(
            one("Patient", "_id", "a,b").kind,
            FilterKind::Id(vec!["a".into(), "b".into()])
        );
        assert!(matches!(
            one("Patient", "_lastUpdated", "le2021-01-01T10:00:00Z").kind,
            FilterKind::LastUpdated(v) if v[0].0 == Prefix::Le && v[0].2 - v[0].1 == 1000
        ));
        // bad values always 400, naming the parameter and the value
        for (k, v) in [
            ("birthdate", "xx2020"),
            ("birthdate", "2020-13"),
            ("_lastUpdated", "yesterday"),
            ("birthdate:missing", "maybe"),
            ("_total", "some"),
            ("_summary", "yes"),
            ("_count", "-1"),
            ("_sort", "nonsense"),
        ] {
            let e = p("Patient", &[(k, v)], Handling::Lenient).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.issues[0].expression, vec![k.to_owned()], "{k}");
            assert!(
                e.issues[0].diagnostics.contains(v.trim_start_matches('-')),
                "{e}"
            );
        }
        let e = p(
            "RiskAssessment",
            &[("probability", "zz1")],
            Handling::Lenient,
        )
        .unwrap_err();
        assert!(e.issues[0].diagnostics.contains("zz1"));
        let q = p(
            "Patient",
            &[
                ("_total", "accurate"),
                ("_summary", "count"),
                ("_elements", "id,name"),
                ("_include", "Patient:organization"),
                ("_revinclude", "Observation:subject"),
                ("_format", "json"),
                ("_pretty", "true"),
            ],
            Handling::Strict,
        )
        .unwrap();
        assert_eq!((q.total, q.summary), (Total::Accurate, Summary::Count));
        assert_eq!(q.elements, vec!["id", "name"]);
        let inc = |s: &str, p: Option<&str>, t: Option<&str>, iterate| Include {
            source_type: s.into(),
            param: p.map(Into::into),
            target_type: t.map(Into::into),
            iterate,
        };
        assert_eq!(
            q.include,
            vec![inc("Patient", Some("organization"), None, false)]
        );
        assert_eq!(
            q.revinclude,
            vec![inc("Observation", Some("subject"), None, false)]
        );
        let q = p(
            "MedicationRequest",
            &[
                (
                    "_include",
                    "MedicationRequest:medication,MedicationRequest:subject:Patient",
                ),
                ("_include:iterate", "Patient:general-practitioner"),
                ("_revinclude:recurse", "Provenance:*"),
            ],
            Handling::Strict,
        )
        .unwrap();
        assert_eq!(
            q.include,
            vec![
                inc("MedicationRequest", Some("medication"), None, false),
                inc("MedicationRequest", Some("subject"), Some("Patient"), false),
                inc("Patient", Some("general-practitioner"), None, true),
            ]
        );
        assert_eq!(q.revinclude, vec![inc("Provenance", None, None, true)]);
        for (k, v) in [
            ("_include", "Patient"),
            ("_include", "Nope:subject"),
            ("_include", "Patient:family"),
            ("_include", "Patient:nope"),
            ("_include", "Patient:organization:Nope"),
            ("_include:deep", "Patient:organization"),
        ] {
            let e = p("Patient", &[(k, v)], Handling::Lenient).unwrap_err();
            assert_eq!((e.status, e.issues[0].code), (400, "invalid"), "{k}={v}");
        }
        let q = p(
            "Patient",
            &[("_sort", "birthdate,-_lastUpdated")],
            Handling::Strict,
        )
        .unwrap();
        assert_eq!(q.sort[0].param_type, Some(SearchParamType::Date));
        assert!(q.sort[1].descending && q.sort[1].param_type.is_none());
    }

    /// Issue 15: a canonical was indexed without type and id while a
    /// `Type/id` query compared ids, so `MeasureReport?measure=Measure/CMS146`
    /// found nothing. Canonical-typed reference parameters match by URL.
    #[test]
    fn canonical_parameters_match_by_url_and_version() {
        let preds = |t: &str, k: &str, v: &str| -> Vec<Predicate> {
            let q = p(t, &[(k, v)], Handling::Strict).unwrap();
            match &q.filters[0].kind {
                FilterKind::Match(v) => v.clone(),
                other => panic!("{other:?}"),
            }
        };
        let canon = |url: &str, version: Option<&str>, below: bool| Predicate::Canonical {
            url: url.into(),
            version: version.map(str::to_owned),
            below,
        };
        assert_eq!(
            preds("MeasureReport", "measure", "Measure/CMS146"),
            vec![canon("Measure/CMS146", None, false)]
        );
        assert_eq!(
            preds("Procedure", "instantiates-canonical", "PlanDefinition/KDN5"),
            vec![canon("PlanDefinition/KDN5", None, false)]
        );
        assert_eq!(
            preds(
                "QuestionnaireResponse",
                "questionnaire",
                "http://example.org/Questionnaire/gcs|2.0"
            ),
            vec![canon(
                "http://example.org/Questionnaire/gcs",
                Some("2.0"),
                false
            )]
        );
        assert_eq!(
            preds(
                "QuestionnaireResponse",
                "questionnaire",
                "Questionnaire/gcs|"
            ),
            vec![canon("Questionnaire/gcs", None, false)]
        );
        assert_eq!(
            preds(
                "QuestionnaireResponse",
                "questionnaire:below",
                "http://example.org/Questionnaire/gcs|2"
            ),
            vec![canon(
                "http://example.org/Questionnaire/gcs",
                Some("2"),
                true
            )]
        );
        // Two values: OR-ed.
        assert_eq!(
            preds("MeasureReport", "measure", "Measure/a,Measure/b").len(),
            2
        );
        // A literal reference parameter is unchanged, and takes no :below.
        assert_eq!(
            preds("Observation", "subject", "Patient/1"),
            vec![Predicate::Reference {
                target_type: Some("Patient".into()),
                target_id: Some("1".into()),
                url: None
            }]
        );
        let e = p(
            "Observation",
            &[("subject:below", "Patient/1")],
            Handling::Strict,
        )
        .unwrap_err();
        assert_eq!(
            (e.status, e.issues[0].expression.clone()),
            (400, vec!["subject:below".to_owned()])
        );
        // No URL: a bad value, whatever the handling.
        let e = p("MeasureReport", &[("measure", "|1.0")], Handling::Lenient).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.issues[0].expression, vec!["measure"]);
        // What the definitions say of the parameters.
        let d = r4();
        let k = d.reference_kinds("QuestionnaireResponse", "questionnaire");
        assert!(k.canonical && !k.literal);
        let k = d.reference_kinds("Observation", "subject");
        assert!(k.literal && !k.canonical);
        assert!(d.reference_kinds("PlanDefinition", "definition").canonical);
    }

    /// Issue 15: zone-less date values were the UTC day; they are read in
    /// the zone given (the trust's), and refused where none is.
    #[test]
    fn dates_without_an_offset_are_read_in_the_zone() {
        let london = LocalZone::london();
        let pin = |t: &str, k: &str, v: &str| {
            parse_in(
                r4(),
                &london,
                Some(t),
                &[(k.to_owned(), v.to_owned())],
                Handling::Strict,
            )
        };
        let range = |q: SearchQuery| -> (i64, i64) {
            fn find(f: &Filter) -> (i64, i64) {
                match &f.kind {
                    FilterKind::Match(v) => match v[0] {
                        Predicate::Date { lo, hi, .. } => (lo, hi),
                        ref other => panic!("{other:?}"),
                    },
                    FilterKind::LastUpdated(r) => (r[0].1, r[0].2),
                    FilterKind::Chain(t) => find(&t[0].1),
                    other => panic!("{other:?}"),
                }
            }
            find(&q.filters[0])
        };
        let july = crate::datetime::parse_range_in("2024-07-01", &london).unwrap();
        assert_eq!(
            crate::datetime::format_instant(july.0),
            "2024-06-30T23:00:00.000Z"
        );
        assert_eq!(
            range(pin("Patient", "birthdate", "2024-07-01").unwrap()),
            july
        );
        assert_eq!(
            range(pin("Patient", "birthdate", "ge2024-07-01").unwrap()),
            july
        );
        assert_eq!(
            range(pin("Patient", "_lastUpdated", "2024-07-01").unwrap()),
            july
        );
        assert_eq!(
            range(pin("Observation", "subject:Patient.birthdate", "2024-07-01").unwrap()),
            july
        );
        // An offset wins over the zone.
        let utc = crate::datetime::parse_range("2024-07-01T00:00:00Z").unwrap();
        assert_eq!(
            range(pin("Patient", "birthdate", "2024-07-01T00:00:00Z").unwrap()),
            utc
        );
        // Without a zone: an instant is fine, a zone-less date is refused.
        let none = |v: &str| {
            parse(
                r4(),
                Some("Patient"),
                &[("birthdate".to_owned(), v.to_owned())],
                Handling::Strict,
            )
        };
        assert_eq!(range(none("lt2024-07-01T00:00:00Z").unwrap()).0, utc.0);
        let e = none("2024-07-01").unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.issues[0].expression, vec!["birthdate"]);
        assert!(e.issues[0].diagnostics.contains("no time-zone offset"));
        assert!(
            none("2024-13-01").unwrap_err().issues[0]
                .diagnostics
                .contains("not a valid date")
        );
    }

    #[test]
    fn implicit_ranges() {
        assert_eq!(number("100"), Some((100.0, 99.5, 100.5)));
        let (_, lo, hi) = number("100.0").unwrap();
        assert!((lo - 99.95).abs() < 1e-9 && (hi - 100.05).abs() < 1e-9);
        let (_, lo, hi) = number("1e2").unwrap();
        assert!((lo - 50.0).abs() < 1e-9 && (hi - 150.0).abs() < 1e-9);
        assert_eq!(split_values("a\\,b,c"), vec!["a,b", "c"]);
        // More digits than an f64 holds: the range still holds the value.
        let (v, lo, hi) = number("12345678901234567890.123").unwrap();
        assert!(lo < v && v < hi, "{lo} {v} {hi}");
        assert_eq!((lo.next_up(), hi.next_down()), (v, v));
    }

    proptest! {
        /// The value parsed from a decimal's text (what the index holds) is
        /// always inside the implicit range of that same text.
        #[test]
        fn a_decimal_matches_itself(int in "-?[1-9][0-9]{0,24}", frac in "(\\.[0-9]{1,12})?") {
            let text = format!("{int}{frac}");
            let (v, lo, hi) = number(&text).unwrap();
            prop_assert!(lo <= v && v < hi, "{} {} {} {}", text, lo, v, hi);
        }
    }

    proptest! {
        #[test]
        fn never_panics(k in "[_a-z:.\\-]{0,20}", v in "\\PC{0,30}") {
            let _ = parse(r4(), Some("Observation"), &[(k.clone(), v.clone())], Handling::Lenient);
            let _ = parse(r4(), None, &[(k, v)], Handling::Strict);
        }

        #[test]
        fn never_panics_on_real_params(
            code in prop::sample::select(vec![
                "code", "subject", "date", "value-quantity", "value-string", "status",
                "patient", "_id", "_lastUpdated", "_sort", "_count", "_total", "_summary",
                "combo-code-value-quantity", "identifier", "based-on", "_profile", "_tag",
            ]),
            modifier in prop::sample::select(vec![
                "", ":exact", ":contains", ":missing", ":not", ":text", ":below", ":above",
                ":Patient", ":identifier", ":Patient.name", ".name", ":", "::",
            ]),
            v in "[0-9a-zA-Z|,$\\\\/:.+\\-]{0,24}",
            strict in any::<bool>(),
        ) {
            let h = if strict { Handling::Strict } else { Handling::Lenient };
            let k = format!("{code}{modifier}");
            if let Err(e) = parse(r4(), Some("Observation"), &[(k.clone(), v.clone())], h) {
                prop_assert_eq!(e.status, 400);
                prop_assert!(!e.issues[0].expression.is_empty());
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn an_escaped_value_reads_back_as_one_value(v in "[a-z0-9|,$\\\\ ]{0,12}") {
            let got = split_values(&escape_value(&v));
            // `|` stays escaped for the token parser; nothing else is left.
            proptest::prop_assert_eq!(got, vec![v.replace('|', "\\|")]);
        }
    }
}
