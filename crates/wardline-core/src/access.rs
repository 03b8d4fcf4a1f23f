//! Who is asking, and may they: the one gate every interaction passes.
//!
//! [`FhirService::handle`](crate::FhirService::handle) and
//! [`FhirService::begin`](crate::FhirService::begin) take an [`Access`]: the
//! requester's identity (for the audit trail) and their policy. The core asks
//! it, at fixed points that every path goes through:
//!
//! * [`Access::check_type`] before an interaction does any IO (a cheap,
//!   type-level refusal: scopes, role activities);
//! * [`Access::check_resource`] for **every resource that would leave** (a
//!   read, each search match and `_include`, each history entry, each entry of
//!   a transaction or batch, `$everything`) and **every resource written**
//!   (the new content, and for updates and deletions the current one too —
//!   so nobody moves a record out of reach or into another patient's). A
//!   search drops what is refused and says how many it withheld; a read or a
//!   write fails with the refusal;
//! * [`Access::check_operation`] for system-level operations (`$export`,
//!   whole-system search and history, the audit trail).
//!
//! A search match carries [`ResourceView::traced`] when the search was an
//! exact patient trace ([`is_trace`]: a `Patient` search by one NHS number
//! and one whole date of birth, as a PDS trace is), so that a policy can let
//! a trace find a patient it would not list in a broader search. Such a
//! search is audited with the subtype [`TRACE_SUBTYPE`].
//!
//! The policy itself (SMART scopes, positions and activities, legitimate
//! relationships, break-glass, consent) lives in `wardline-auth`; the core
//! only guarantees it is asked everywhere. [`Trusted`] is the operator's and
//! the integration engine's access: everything allowed, still audited under
//! its own name.

use std::borrow::Cow;

use wardline_fhir::FhirError;
use wardline_fhir::search::{FilterKind, Predicate, Prefix, SearchQuery, TokenSystem};
use wardline_store::Reader;

/// The audit subtype (system [`crate::audit::WARDLINE_SUBTYPE`]) of a search
/// that is an exact patient trace ([`is_trace`]).
pub const TRACE_SUBTYPE: &str = "patient-trace";

/// The SMART v2 interaction letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Op {
    /// `c`, `r`, `u`, `d`, `s`.
    pub fn letter(self) -> char {
        match self {
            Op::Create => 'c',
            Op::Read => 'r',
            Op::Update => 'u',
            Op::Delete => 'd',
            Op::Search => 's',
        }
    }

    /// From a SMART permission letter `c`, `r`, `u`, `d`, `s`.
    pub fn from_letter(c: char) -> Option<Op> {
        match c {
            'c' => Some(Op::Create),
            'r' => Some(Op::Read),
            'u' => Some(Op::Update),
            'd' => Some(Op::Delete),
            's' => Some(Op::Search),
            _ => None,
        }
    }

    pub fn is_write(self) -> bool {
        matches!(self, Op::Create | Op::Update | Op::Delete)
    }

    /// FHIR `AuditEvent.action`.
    pub fn audit_action(self) -> &'static str {
        match self {
            Op::Create => "C",
            Op::Read | Op::Search => "R",
            Op::Update => "U",
            Op::Delete => "D",
        }
    }
}

/// System-level operations, checked with [`Access::check_operation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Bulk Data `$export` (any level), its status and its files.
    Export,
    /// Search or history across every resource type.
    SystemWide,
    /// Searching and reading the audit trail (`AuditEvent`).
    AuditTrail,
}

/// What kind of requester an [`Agent`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AgentKind {
    /// A member of staff (or a patient) through an app or the web UI.
    #[default]
    User,
    /// A backend service (SMART client credentials).
    System,
    /// An operator command on the data directory, or an internal service
    /// (the HL7 v2 engine, imports).
    Operator,
}

/// The requester as the audit trail names them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Agent {
    pub kind: AgentKind,
    /// Login name, client id, or the operator command (`import`, `hl7:PAS`).
    pub name: String,
    /// `Practitioner/…` (or `Patient/…`) when the agent is a person on record.
    pub who: Option<String>,
    /// `PractitionerRole/…`: the position acted in.
    pub position: Option<String>,
    /// The SMART client (app) acting for the user, if any.
    pub client_id: Option<String>,
    /// The network address of the request.
    pub address: Option<String>,
}

impl Agent {
    pub fn operator(name: impl Into<String>) -> Agent {
        Agent {
            kind: AgentKind::Operator,
            name: name.into(),
            ..Agent::default()
        }
    }

    /// The one string the audit log is searched by (`agent`): the person's
    /// reference when there is one, else the name.
    pub fn key(&self) -> Cow<'_, str> {
        match &self.who {
            Some(w) => Cow::Borrowed(w),
            None => Cow::Borrowed(&self.name),
        }
    }
}

/// A resource as the policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct ResourceView<'a> {
    pub resource_type: &'a str,
    pub id: &'a str,
    /// The Patient whose compartment it is in (its own id for a Patient).
    pub patient: Option<&'a str>,
    /// Its JSON (empty for a deletion tombstone).
    pub json: &'a str,
    /// A match of an exact patient trace ([`is_trace`]); `false` for
    /// everything else (reads by id, broader searches, includes, writes).
    pub traced: bool,
}

/// Whether a search is an **exact patient trace**: a `Patient` search with
/// exactly one NHS number (`identifier=https://fhir.nhs.uk/Id/nhs-number|N`,
/// one value, no modifier) and exactly one whole date of birth
/// (`birthdate=YYYY-MM-DD`, no prefix other than `eq`), like a PDS trace.
/// Other parameters are allowed: the filters of a query are AND-ed, so they
/// can only narrow it. A comma-separated list, a partial date, a prefix, a
/// `:not` or `:missing` is no trace (each finds more than the one person).
pub fn is_trace(q: &SearchQuery) -> bool {
    if q.resource_type.as_deref() != Some("Patient") || q.compartment.is_some() {
        return false;
    }
    const DAY_MS: i64 = 86_400_000;
    let nhs = q.filters.iter().any(|f| {
        f.param == "identifier"
            && matches!(&f.kind, FilterKind::Match(p) if matches!(p.as_slice(), [Predicate::Token {
                system: TokenSystem::Is(sys),
                code: Some(code),
            }] if sys == wardline_fhir::NHS_NUMBER_SYSTEM
                && code.len() == 10
                && code.bytes().all(|b| b.is_ascii_digit())))
    });
    let born = q.filters.iter().any(|f| {
        f.param == "birthdate"
            && matches!(&f.kind, FilterKind::Match(p) if matches!(p.as_slice(), [Predicate::Date {
                prefix: Prefix::Eq,
                lo,
                hi,
            }] if hi - lo == DAY_MS))
    });
    nhs && born
}

/// A requester's identity and policy. One value per request (it may cache
/// decisions, e.g. relationships, for the request's lifetime).
pub trait Access: Send + Sync {
    fn agent(&self) -> &Agent;

    /// `false` when nothing is ever refused (operators, the engine): the core
    /// then skips the per-resource work.
    fn restricted(&self) -> bool {
        true
    }

    /// May `op` on `resource_type` be attempted at all? (`None`: across all types.)
    fn check_type(&self, op: Op, resource_type: Option<&str>) -> Result<(), FhirError>;

    /// May this resource be read (`Read`/`Search`) or written (`Create`,
    /// `Update`, `Delete`: called with the new content and with the current
    /// one)? `reader` sees the data as the interaction does (inside its
    /// transaction for writes), for relationship and consent look-ups.
    fn check_resource(
        &self,
        op: Op,
        r: &ResourceView<'_>,
        reader: &dyn Reader,
    ) -> Result<(), FhirError>;

    fn check_operation(&self, op: Operation) -> Result<(), FhirError>;

    /// The reason given for emergency ("break-glass") access to this
    /// patient, when that is what lets the requester in; it goes into the
    /// audit event as purpose of use `BTG`.
    fn break_glass(&self, _patient: &str) -> Option<String> {
        None
    }
}

/// Everything allowed; audited under the agent's name.
pub struct Trusted {
    agent: Agent,
}

impl Trusted {
    pub fn new(agent: Agent) -> Trusted {
        Trusted { agent }
    }

    /// An operator command or internal service called `name`.
    pub fn operator(name: impl Into<String>) -> Trusted {
        Trusted {
            agent: Agent::operator(name),
        }
    }
}

impl Access for Trusted {
    fn agent(&self) -> &Agent {
        &self.agent
    }
    fn restricted(&self) -> bool {
        false
    }
    fn check_type(&self, _: Op, _: Option<&str>) -> Result<(), FhirError> {
        Ok(())
    }
    fn check_resource(&self, _: Op, _: &ResourceView<'_>, _: &dyn Reader) -> Result<(), FhirError> {
        Ok(())
    }
    fn check_operation(&self, _: Operation) -> Result<(), FhirError> {
        Ok(())
    }
}

/// The standard refusal.
pub fn forbidden(msg: impl Into<String>) -> FhirError {
    FhirError::new(403, "forbidden", msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(t: &str, query: &str) -> bool {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let q = wardline_fhir::search::parse_in(
            wardline_fhir::definitions::r4(),
            &wardline_fhir::datetime::LocalZone::default(),
            Some(t),
            &pairs,
            wardline_fhir::search::Handling::Strict,
        )
        .unwrap();
        is_trace(&q)
    }

    #[test]
    fn an_exact_trace_is_one_nhs_number_and_one_whole_birth_date() {
        let nhs = "identifier=https://fhir.nhs.uk/Id/nhs-number%7C9434765919";
        assert!(trace("Patient", &format!("{nhs}&birthdate=1970-01-01")));
        assert!(trace("Patient", &format!("{nhs}&birthdate=eq1970-01-01")));
        // Narrowed further: still a trace.
        assert!(trace(
            "Patient",
            &format!("{nhs}&birthdate=1970-01-01&family=Smith")
        ));
        // Not a trace: one key alone, a broader date, a list, a prefix, a
        // modifier, another identifier system, another type.
        assert!(!trace("Patient", nhs));
        assert!(!trace("Patient", "birthdate=1970-01-01"));
        assert!(!trace("Patient", &format!("{nhs}&birthdate=1970")));
        assert!(!trace("Patient", &format!("{nhs}&birthdate=1970-01")));
        assert!(!trace("Patient", &format!("{nhs}&birthdate=ge1970-01-01")));
        assert!(!trace(
            "Patient",
            &format!("{nhs}&birthdate=1970-01-01,1971-01-01")
        ));
        assert!(!trace(
            "Patient",
            "identifier=https://fhir.nhs.uk/Id/nhs-number%7C9434765919,https://fhir.nhs.uk/Id/nhs-number%7C9990000018&birthdate=1970-01-01"
        ));
        assert!(!trace(
            "Patient",
            "identifier:not=https://fhir.nhs.uk/Id/nhs-number%7C9434765919&birthdate=1970-01-01"
        ));
        assert!(!trace(
            "Patient",
            "identifier=9434765919&birthdate=1970-01-01"
        ));
        assert!(!trace(
            "Patient",
            "identifier=https://example.org/mrn%7C9434765919&birthdate=1970-01-01"
        ));
        assert!(!trace(
            "Patient",
            "identifier=https://fhir.nhs.uk/Id/nhs-number%7C&birthdate=1970-01-01"
        ));
        assert!(!trace(
            "RelatedPerson",
            "identifier=https://fhir.nhs.uk/Id/nhs-number%7C9434765919&birthdate=1970-01-01"
        ));
    }
}
