//! SMART App Launch v2 scopes.
//!
//! A scope string is a space-separated list of tokens. Resource scopes have the form
//! `(patient|user|system)/(ResourceType|*).<perms>[?name=value&...]`, where `<perms>` is
//! either the v2 form `c?r?u?d?s?` (at least one letter, in that order) or one of the v1
//! forms `read` (= `rs`), `write` (= `cud`) and `*` (= `cruds`). A granular v2 query
//! suffix (`?category=...`) is kept as name/value pairs; a scope carrying one grants only
//! the matching subset, so [`ScopeSet::permits`] ignores it (the caller has to apply the
//! constraint itself). The non-resource scopes are listed in [`OTHER_SCOPES`].
//!
//! [`ScopeSet`]'s `Display` writes the canonical form: resource scopes first (v2 perms),
//! then the other scopes, each in the order parsed.

use std::fmt;

/// The non-resource scopes Wardline understands.
pub const OTHER_SCOPES: &[&str] = &[
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
];

/// Who the access is on behalf of: `patient/` (one patient's compartment), `user/` (what
/// the user may see), `system/` (a backend service, no user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    Patient,
    User,
    System,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Context> {
        match s {
            "patient" => Some(Context::Patient),
            "user" => Some(Context::User),
            "system" => Some(Context::System),
            _ => None,
        }
    }

    /// Whether a grant in context `self` also covers a request in `other`: a context covers
    /// itself, and `user/` covers `patient/` (a patient's compartment is a subset of what
    /// the user may see). `system/` scopes belong to a different kind of actor (a backend
    /// service) and neither cover nor are covered by the others.
    pub fn covers(self, other: Context) -> bool {
        self == other || (self == Context::User && other == Context::Patient)
    }
}

/// A set of the permissions `c r u d s` (create, read, update, delete, search).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perm(u8);

impl Perm {
    pub const NONE: Perm = Perm(0);
    pub const C: Perm = Perm(1);
    pub const R: Perm = Perm(2);
    pub const U: Perm = Perm(4);
    pub const D: Perm = Perm(8);
    pub const S: Perm = Perm(16);
    pub const ALL: Perm = Perm(31);

    const LETTERS: [(char, Perm); 5] = [
        ('c', Perm::C),
        ('r', Perm::R),
        ('u', Perm::U),
        ('d', Perm::D),
        ('s', Perm::S),
    ];

    /// The permission for one operation letter `c`, `r`, `u`, `d` or `s`.
    pub fn from_char(c: char) -> Option<Perm> {
        Perm::LETTERS.iter().find(|(l, _)| *l == c).map(|(_, p)| *p)
    }

    /// Parses the perms part of a resource scope: v2 `c?r?u?d?s?` (non-empty, in order)
    /// or v1 `read`, `write`, `*`.
    pub fn parse(s: &str) -> Option<Perm> {
        match s {
            "read" => return Some(Perm::R | Perm::S),
            "write" => return Some(Perm::C | Perm::U | Perm::D),
            "*" => return Some(Perm::ALL),
            "" => return None,
            _ => {}
        }
        let mut perm = Perm::NONE;
        let mut next = 0;
        for c in s.chars() {
            let i = Perm::LETTERS[next..].iter().position(|(l, _)| *l == c)?;
            perm = perm | Perm::LETTERS[next + i].1;
            next += i + 1;
        }
        Some(perm)
    }

    /// The permission letter of an interaction.
    pub fn of(op: wardline_core::access::Op) -> Perm {
        use wardline_core::access::Op;
        match op {
            Op::Create => Perm::C,
            Op::Read => Perm::R,
            Op::Update => Perm::U,
            Op::Delete => Perm::D,
            Op::Search => Perm::S,
        }
    }

    pub fn contains(self, other: Perm) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn intersection(self, other: Perm) -> Perm {
        Perm(self.0 & other.0)
    }
}

impl std::ops::BitOr for Perm {
    type Output = Perm;
    fn bitor(self, rhs: Perm) -> Perm {
        Perm(self.0 | rhs.0)
    }
}

impl std::ops::BitAnd for Perm {
    type Output = Perm;
    fn bitand(self, rhs: Perm) -> Perm {
        Perm(self.0 & rhs.0)
    }
}

/// The v2 letters, e.g. `rs`.
impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (l, p) in Perm::LETTERS {
            if self.contains(p) {
                write!(f, "{l}")?;
            }
        }
        Ok(())
    }
}

/// One resource scope, e.g. `patient/Observation.rs?category=laboratory`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    pub context: Context,
    /// `None` for `*`.
    pub resource_type: Option<String>,
    pub perms: Perm,
    /// Granular v2 constraints (`?name=value&...`), in order; empty when unconstrained.
    pub query: Vec<(String, String)>,
}

impl ResourceScope {
    /// Whether this scope, without a query constraint, grants `perm` on `resource_type` in
    /// exactly `context`.
    fn grants(&self, context: Context, resource_type: &str, perm: Perm) -> bool {
        self.query.is_empty()
            && self.context == context
            && self.matches_type(resource_type)
            && self.perms.contains(perm)
    }

    fn matches_type(&self, resource_type: &str) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == resource_type)
    }

    /// Whether `self` (a grant) covers `req` for context, type and query, ignoring perms.
    fn covers_target(&self, req: &ResourceScope) -> bool {
        self.context.covers(req.context)
            && match (&self.resource_type, &req.resource_type) {
                (None, _) => true,
                (Some(a), Some(b)) => a == b,
                (Some(_), None) => false,
            }
            && self.query.iter().all(|q| req.query.contains(q))
    }

    fn parse(token: &str) -> Result<ResourceScope, ScopeError> {
        let err = |reason: &'static str| ScopeError {
            token: token.to_string(),
            reason,
        };
        let (context, rest) = token.split_once('/').ok_or_else(|| err("unknown scope"))?;
        let context = Context::parse(context).ok_or_else(|| err("unknown context"))?;
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (ty, perms) = body
            .split_once('.')
            .ok_or_else(|| err("missing `.permissions`"))?;
        let resource_type = if ty == "*" {
            None
        } else if is_resource_type(ty) {
            Some(ty.to_string())
        } else {
            return Err(err("invalid resource type"));
        };
        let perms = Perm::parse(perms).ok_or_else(|| err("invalid permissions"))?;
        let mut pairs = Vec::new();
        if let Some(q) = query {
            for part in q.split('&') {
                let (name, value) = part
                    .split_once('=')
                    .ok_or_else(|| err("query parameter without `=`"))?;
                if !is_query_name(name) {
                    return Err(err("invalid query parameter name"));
                }
                if value.is_empty() || value.contains(['=', '?']) {
                    return Err(err("invalid query parameter value"));
                }
                pairs.push((name.to_string(), value.to_string()));
            }
        }
        Ok(ResourceScope {
            context,
            resource_type,
            perms,
            query: pairs,
        })
    }
}

fn is_resource_type(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

fn is_query_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

impl fmt::Display for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}.{}",
            self.context.as_str(),
            self.resource_type.as_deref().unwrap_or("*"),
            self.perms
        )?;
        for (i, (n, v)) in self.query.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// A scope token that is unknown or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope `{token}`: {reason}")]
pub struct ScopeError {
    pub token: String,
    pub reason: &'static str,
}

/// A parsed scope string. Exact duplicates are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet {
    pub resources: Vec<ResourceScope>,
    /// Non-resource scopes (members of [`OTHER_SCOPES`]).
    pub other: Vec<String>,
}

impl ScopeSet {
    /// Parses a space-separated scope string; the empty string is the empty set.
    pub fn parse(s: &str) -> Result<ScopeSet, ScopeError> {
        let mut set = ScopeSet::default();
        for token in s.split_ascii_whitespace() {
            if let Some(known) = OTHER_SCOPES.iter().find(|k| **k == token) {
                if !set.other.iter().any(|o| o == known) {
                    set.other.push((*known).to_string());
                }
            } else {
                set.push(ResourceScope::parse(token)?);
            }
        }
        Ok(set)
    }

    fn push(&mut self, scope: ResourceScope) {
        if !self.resources.contains(&scope) {
            self.resources.push(scope);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.other.is_empty()
    }

    /// Whether a non-resource scope such as `openid` or `launch/patient` is present.
    pub fn has(&self, scope: &str) -> bool {
        self.other.iter().any(|o| o == scope)
    }

    /// Whether some scope without a query constraint grants every permission in `perm` on
    /// `resource_type` in exactly `context`.
    pub fn permits(&self, context: Context, resource_type: &str, perm: Perm) -> bool {
        self.resources
            .iter()
            .any(|s| s.grants(context, resource_type, perm))
    }

    /// The widest context (`system`, then `user`, then `patient`) in which
    /// [`permits`](Self::permits) holds, if any.
    pub fn permits_any_context(&self, resource_type: &str, perm: Perm) -> Option<Context> {
        [Context::System, Context::User, Context::Patient]
            .into_iter()
            .find(|c| self.permits(*c, resource_type, perm))
    }

    /// The part of `self` (the requested scopes) that `allowed` covers, scope by scope.
    ///
    /// A requested resource scope is kept if some allowed scope covers its context
    /// ([`Context::covers`]), resource type (`*` covers any) and query (the allowed
    /// scope's query pairs are all present in the request); its perms are narrowed to
    /// the union of the covering scopes' perms, and it is dropped if that leaves none.
    /// Non-resource scopes are kept if `allowed` has them.
    /// What a backend-services client (SMART `client_credentials`) is granted
    /// when it asks for `self` and is registered for `allowed`: the
    /// `system/` resource scopes of [`ScopeSet::intersect`], nothing else.
    /// A narrower request than the registration (`system/Observation.c` of
    /// a client registered for `system/*.cruds`) is granted as asked.
    pub fn system_grant(&self, allowed: &ScopeSet) -> ScopeSet {
        let mut granted = self.intersect(allowed);
        granted.resources.retain(|r| r.context == Context::System);
        granted.other.clear();
        granted
    }

    pub fn intersect(&self, allowed: &ScopeSet) -> ScopeSet {
        let mut out = ScopeSet::default();
        for req in &self.resources {
            let granted = allowed
                .resources
                .iter()
                .filter(|a| a.covers_target(req))
                .fold(Perm::NONE, |p, a| p | a.perms);
            let perms = req.perms & granted;
            if !perms.is_empty() {
                out.push(ResourceScope {
                    perms,
                    ..req.clone()
                });
            }
        }
        out.other = self
            .other
            .iter()
            .filter(|o| allowed.has(o))
            .cloned()
            .collect();
        out
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for r in &self.resources {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{r}")?;
        }
        for o in &self.other {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(o)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ScopeSet {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<ScopeSet, ScopeError> {
        ScopeSet::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    #[test]
    fn parses_v2_v1_and_other() {
        let s = set(
            "patient/Observation.rs user/*.cruds system/Patient.read openid fhirUser launch/patient",
        );
        assert_eq!(s.resources.len(), 3);
        assert_eq!(s.resources[0].perms, Perm::R | Perm::S);
        assert_eq!(s.resources[1].resource_type, None);
        assert_eq!(s.resources[1].perms, Perm::ALL);
        assert_eq!(s.resources[2].perms, Perm::R | Perm::S);
        assert!(s.has("openid") && s.has("launch/patient") && !s.has("launch"));
        assert_eq!(
            s.to_string(),
            "patient/Observation.rs user/*.cruds system/Patient.rs openid fhirUser launch/patient"
        );
        assert_eq!(
            set("user/Patient.write").resources[0].perms,
            Perm::C | Perm::U | Perm::D
        );
        assert_eq!(set("user/Patient.*").resources[0].perms, Perm::ALL);
        assert!(set("").is_empty());
    }

    #[test]
    fn granular_query_kept_and_not_permitting() {
        let s = set(
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&code:in=x",
        );
        assert_eq!(
            s.resources[0].query,
            vec![
                (
                    "category".to_string(),
                    "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
                        .to_string()
                ),
                ("code:in".to_string(), "x".to_string())
            ]
        );
        assert!(!s.permits(Context::Patient, "Observation", Perm::R));
        assert_eq!(ScopeSet::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn rejects_bad_tokens_naming_them() {
        for bad in [
            "patient/Observation.sr",
            "patient/Observation.",
            "patient/Observation.rr",
            "patient/observation.rs",
            "group/Observation.rs",
            "patient/Observation",
            "patient/Observation.rs?category",
            "patient/Observation.rs?=x",
            "launch/practitioner",
            "email",
            "patient/*.x",
        ] {
            let e = ScopeSet::parse(&format!("openid {bad}")).unwrap_err();
            assert_eq!(e.token, bad);
            assert!(e.to_string().contains(bad));
        }
    }

    #[test]
    fn permits_checks_context_type_and_perm() {
        let s = set("patient/Observation.rs user/Patient.r system/*.s");
        assert!(s.permits(Context::Patient, "Observation", Perm::R));
        assert!(s.permits(Context::Patient, "Observation", Perm::R | Perm::S));
        assert!(!s.permits(Context::Patient, "Observation", Perm::C));
        assert!(!s.permits(Context::User, "Observation", Perm::R));
        assert!(!s.permits(Context::User, "Patient", Perm::S));
        assert_eq!(
            s.permits_any_context("Observation", Perm::R),
            Some(Context::Patient)
        );
        assert_eq!(
            s.permits_any_context("Observation", Perm::S),
            Some(Context::System)
        );
        assert_eq!(s.permits_any_context("Encounter", Perm::R), None);
    }

    #[test]
    fn a_backend_client_is_granted_create_only_as_smart_v2_says() {
        // SMART v2: `c` is create. A gateway asks for exactly that.
        let asked = set("system/Observation.c");
        for registered in [
            "system/*.cruds",
            "system/Observation.c",
            "system/Observation.crs",
        ] {
            let g = asked.system_grant(&set(registered));
            assert_eq!(g.to_string(), "system/Observation.c", "{registered}");
            assert!(g.permits(Context::System, "Observation", Perm::C));
            assert!(!g.permits(Context::System, "Observation", Perm::R));
            assert!(!g.permits(Context::System, "Task", Perm::C));
        }
        // Not registered for it: nothing.
        assert!(asked.system_grant(&set("system/Patient.rs")).is_empty());
        // Only system/ scopes are granted to a backend client.
        let g = set("system/Observation.c user/*.rs openid")
            .system_grant(&set("system/*.cruds user/*.rs openid"));
        assert_eq!(g.to_string(), "system/Observation.c");
    }

    #[test]
    fn intersect_narrows() {
        let req = set(
            "patient/Observation.cruds user/Encounter.rs system/Patient.rs patient/Condition.rs?category=x openid offline_access",
        );
        let allowed = set("user/*.rs patient/Condition.r?category=x openid");
        let got = req.intersect(&allowed);
        assert_eq!(
            got.to_string(),
            "patient/Observation.rs user/Encounter.rs patient/Condition.rs?category=x openid"
        );
        // An allowed query constraint does not cover an unconstrained request.
        let got = set("patient/Condition.rs").intersect(&set("patient/Condition.rs?category=x"));
        assert!(got.is_empty());
        // Patient context does not cover user; specific type does not cover `*`.
        assert!(
            set("user/Observation.r")
                .intersect(&set("patient/*.r"))
                .is_empty()
        );
        assert!(
            set("patient/*.r")
                .intersect(&set("patient/Observation.r"))
                .is_empty()
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = ScopeSet::parse(&s);
        }

        #[test]
        fn parse_display_roundtrip(
            tokens in proptest::collection::vec(
                prop_oneof![
                    "(patient|user|system)/(\\*|Observation|Patient|AllergyIntolerance)\\.(c?r?u?d?s?|read|write|\\*)(\\?[a-z:]{1,6}=[a-z|/:]{1,8}(&[a-z]{1,4}=[0-9a-z]{1,3}){0,2})?",
                    proptest::sample::select(OTHER_SCOPES).prop_map(str::to_string),
                ],
                0..8,
            )
        ) {
            if let Ok(x) = ScopeSet::parse(&tokens.join(" ")) {
                prop_assert_eq!(ScopeSet::parse(&x.to_string()).unwrap(), x);
            }
        }
    }
}
