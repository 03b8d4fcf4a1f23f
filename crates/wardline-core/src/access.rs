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
//! The policy itself (SMART scopes, positions and activities, legitimate
//! relationships, break-glass, consent) lives in `wardline-auth`; the core
//! only guarantees it is asked everywhere. [`Trusted`] is the operator's and
//! the integration engine's access: everything allowed, still audited under
//! its own name.

use std::borrow::Cow;

use wardline_fhir::FhirError;
use wardline_store::Reader;

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
