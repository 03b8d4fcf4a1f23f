//! The operations table: every FHIR operation the service answers, at the
//! three levels of the specification.
//!
//! * system: `[base]/$name`;
//! * type: `[base]/[type]/$name`;
//! * instance: `[base]/[type]/[id]/$name`.
//!
//! Each entry is an [`OperationSpec`]: the level (with the resource type),
//! the name without `$`, the canonical URL of its OperationDefinition, the
//! HTTP methods it accepts and an [`OperationHandler`]. POST is always
//! accepted (with a `Parameters` body); [`OperationSpec::with_get`] also
//! accepts GET (and HEAD) with the parameters in the URL, which the
//! specification allows only for an operation that changes nothing and
//! whose parameters are all primitive. A module registers an operation on
//! the service, without touching the router:
//!
//! ```ignore
//! svc.with_operation(
//!     OperationSpec::instance("MedicationRequest", "cancel", CANCEL_DEFINITION, CancelOperation),
//! )
//! ```
//!
//! The handler receives an [`OperationRequest`]: the method, the resource
//! type and id, the URL parameters, the headers that matter (such as
//! `Prefer: respond-async`), the caller's access, and the parameters
//! ([`OperationRequest::parameters`] for the `Parameters` resource,
//! [`OperationRequest::primitive_parameters`] for name/value strings). The
//! body is read when the handler first asks for it, so that an operation
//! can check access before it looks at what was sent. A handler is a type
//! implementing [`OperationHandler`] or a function
//! `Fn(&FhirService, &OperationRequest<'_>) -> Result<FhirResponse, FhirError>`.
//!
//! The core registers its own operation, `$everything` on `Patient/[id]`,
//! when the service is built. An operation defined above the core is
//! registered by the composition root with [`FhirService::with_operation`],
//! through a function of its crate: `wardline_workflow::with_operations`
//! adds `Patient/$merge`, `wardline_export::with_exports` adds Bulk Data
//! `$export` at its three levels. So the core depends on no workflow and
//! no export, and the workflow on no web layer. The CapabilityStatement
//! lists every operation: system operations under `rest.operation`, the
//! others under their resource type's `operation`.
//!
//! **Operation URLs.** Some operations hand out URLs of their own that are
//! not operations: an asynchronous `$export` answers with a status URL
//! (`$export-poll-status?_jobId=…`, polled with GET, cancelled with
//! DELETE) whose manifest lists file URLs (`$export-file/[job]/[file]`).
//! They live in the same table as [`OperationUrl`] entries, registered with
//! [`FhirService::with_operation_url`]: a first segment `$name`, a fixed
//! number of further segments, the methods accepted (GET, and DELETE with
//! [`OperationUrl::with_delete`]) and an [`OperationHandler`], which reads
//! the further segments with [`OperationRequest::tail`]. The choice, and
//! why: the router already sends every `$`-path to the table (no resource
//! type begins with `$`, so these paths can never be taken from a FHIR
//! interaction), the handler API is the operations' own, and the module
//! that owns the operation owns its URLs, so `route()` stays free of any
//! module's knowledge. A separate entry type rather than an operation
//! flag, because these URLs are not operations: they take DELETE and
//! further path segments, which no operation does, and the
//! CapabilityStatement does not list them.
//!
//! Routing: a path whose last segment starts with `$` is an operation. An
//! unknown name at that level is 404 `not-supported`, a known one with a
//! method it does not accept is 405. The resource type must be a FHIR R4
//! type; whether the instance exists is for the handler to say (after its
//! access checks), as `$everything` does with 404 for an unknown patient.
//!
//! **Audit.** An operation that changes the record writes through
//! [`FhirService::transact`], whose commit records the audit event of what
//! it did (and reads through [`FhirService::handle`] or the typed record
//! API, each read audited as one); the interaction then records nothing
//! more. An operation that writes nothing through a transaction (a read,
//! or work kept outside the record, such as an export job) is registered
//! [`OperationSpec::audited_by_interaction`]: the interaction records one
//! event, as for a read, which the handler names with
//! [`OperationRequest::audit_as`] (`$export` under the subtype `export`,
//! `$everything` under `operation`). Operation URLs are always audited
//! that way (`export-status`, `export-file`). A request that fails records
//! one event for the attempt, with its status and reason, as any failed
//! interaction does.

use std::cell::OnceCell;
use std::sync::Arc;

use serde_json::{Value, json};
use wardline_fhir::FhirError;

use crate::{Access, Ctx, FhirRequest, FhirResponse, FhirService, Method, RequestHeaders};

/// Where an operation is invoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Level {
    /// `[base]/$name`.
    System,
    /// `[base]/[type]/$name`.
    Type(String),
    /// `[base]/[type]/[id]/$name`.
    Instance(String),
}

impl Level {
    /// The resource type of a type or instance operation.
    pub fn resource_type(&self) -> Option<&str> {
        match self {
            Level::System => None,
            Level::Type(t) | Level::Instance(t) => Some(t),
        }
    }

    /// The URL pattern of operation `name` at this level, for messages.
    fn pattern(&self, name: &str) -> String {
        match self {
            Level::System => format!("${name}"),
            Level::Type(t) => format!("{t}/${name}"),
            Level::Instance(t) => format!("{t}/[id]/${name}"),
        }
    }
}

/// What runs an operation.
pub trait OperationHandler: Send + Sync {
    /// Runs it. Refusals and bad parameters are errors with the status to
    /// answer.
    fn invoke(
        &self,
        svc: &FhirService,
        req: &OperationRequest<'_>,
    ) -> Result<FhirResponse, FhirError>;
}

impl<F> OperationHandler for F
where
    F: Fn(&FhirService, &OperationRequest<'_>) -> Result<FhirResponse, FhirError> + Send + Sync,
{
    fn invoke(
        &self,
        svc: &FhirService,
        req: &OperationRequest<'_>,
    ) -> Result<FhirResponse, FhirError> {
        self(svc, req)
    }
}

/// Who records the audit event of a successful call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Audit {
    /// The operation's own transactions (an operation that changes the
    /// record).
    ByOperation,
    /// The interaction, as for a read (an operation that writes nothing
    /// through a transaction).
    ByInteraction,
}

/// One entry of the operations table.
#[derive(Clone)]
pub struct OperationSpec {
    level: Level,
    name: String,
    definition: String,
    get: bool,
    audit: Audit,
    instantiates: Option<String>,
    handler: Arc<dyn OperationHandler>,
}

impl std::fmt::Debug for OperationSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationSpec")
            .field("level", &self.level)
            .field("name", &self.name)
            .field("definition", &self.definition)
            .field("methods", &self.methods())
            .finish_non_exhaustive()
    }
}

impl OperationSpec {
    /// An operation at `level`, accepting POST only. `name` is given
    /// without the `$` (one is taken off if present); `definition` is the
    /// canonical URL of its OperationDefinition.
    pub fn new(
        level: Level,
        name: &str,
        definition: &str,
        handler: impl OperationHandler + 'static,
    ) -> OperationSpec {
        OperationSpec {
            level,
            name: name.trim_start_matches('$').to_owned(),
            definition: definition.to_owned(),
            get: false,
            audit: Audit::ByOperation,
            instantiates: None,
            handler: Arc::new(handler),
        }
    }

    /// `[base]/$name`.
    pub fn system(
        name: &str,
        definition: &str,
        handler: impl OperationHandler + 'static,
    ) -> OperationSpec {
        OperationSpec::new(Level::System, name, definition, handler)
    }

    /// `[base]/[resource_type]/$name`.
    pub fn type_level(
        resource_type: &str,
        name: &str,
        definition: &str,
        handler: impl OperationHandler + 'static,
    ) -> OperationSpec {
        OperationSpec::new(
            Level::Type(resource_type.to_owned()),
            name,
            definition,
            handler,
        )
    }

    /// `[base]/[resource_type]/[id]/$name`.
    pub fn instance(
        resource_type: &str,
        name: &str,
        definition: &str,
        handler: impl OperationHandler + 'static,
    ) -> OperationSpec {
        OperationSpec::new(
            Level::Instance(resource_type.to_owned()),
            name,
            definition,
            handler,
        )
    }

    /// Also accepts GET (and HEAD), with the parameters in the URL: for an
    /// operation that changes nothing and whose parameters are primitive.
    pub fn with_get(mut self) -> OperationSpec {
        self.get = true;
        self
    }

    /// The interaction records the audit event, as for a read: for an
    /// operation that writes nothing through [`FhirService::transact`]
    /// (whose commit would record it). Its handler names the event with
    /// [`OperationRequest::audit_as`].
    pub fn audited_by_interaction(mut self) -> OperationSpec {
        self.audit = Audit::ByInteraction;
        self
    }

    /// The canonical URL of the CapabilityStatement of the implementation
    /// guide this operation is part of (Bulk Data's for `$export`): the
    /// server's CapabilityStatement lists it in `instantiates`.
    pub fn instantiating(mut self, capability_statement: &str) -> OperationSpec {
        self.instantiates = Some(capability_statement.to_owned());
        self
    }

    /// See [`instantiating`](Self::instantiating).
    pub fn instantiates(&self) -> Option<&str> {
        self.instantiates.as_deref()
    }

    pub fn level(&self) -> &Level {
        &self.level
    }

    /// The name, without `$`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The canonical URL of its OperationDefinition.
    pub fn definition(&self) -> &str {
        &self.definition
    }

    /// The methods it accepts (HEAD goes with GET).
    pub fn methods(&self) -> &'static [Method] {
        if self.get {
            &[Method::Get, Method::Post]
        } else {
            &[Method::Post]
        }
    }

    /// Whether it may be invoked with `m`.
    pub fn accepts(&self, m: Method) -> bool {
        match m {
            Method::Post => true,
            Method::Get | Method::Head => self.get,
            _ => false,
        }
    }

    pub(crate) fn audit(&self) -> Audit {
        self.audit
    }

    pub(crate) fn handler(&self) -> &dyn OperationHandler {
        &*self.handler
    }

    /// The 405 for a method it does not accept.
    pub(crate) fn wrong_method(&self, m: Method) -> FhirError {
        let accepted = if self.get { "GET or POST" } else { "POST only" };
        FhirError::new(
            405,
            "not-supported",
            format!(
                "{} is invoked with {accepted}, not {}",
                self.level.pattern(&self.name),
                method_name(m)
            ),
        )
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

/// A URL an operation hands out that is not itself an operation (see the
/// module documentation): `[base]/$name` followed by a fixed number of
/// further segments, answered by a handler. GET (and HEAD) is accepted;
/// DELETE with [`OperationUrl::with_delete`]. Not listed in the
/// CapabilityStatement; audited by the interaction, under the subtype the
/// handler gives with [`OperationRequest::audit_as`].
#[derive(Clone)]
pub struct OperationUrl {
    name: String,
    segments: usize,
    delete: bool,
    handler: Arc<dyn OperationHandler>,
}

impl std::fmt::Debug for OperationUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationUrl")
            .field("name", &self.name)
            .field("segments", &self.segments)
            .field("delete", &self.delete)
            .finish_non_exhaustive()
    }
}

impl OperationUrl {
    /// `[base]/$name` (the `$` is taken off `name` if present), GET only,
    /// no further segments.
    pub fn new(name: &str, handler: impl OperationHandler + 'static) -> OperationUrl {
        OperationUrl {
            name: name.trim_start_matches('$').to_owned(),
            segments: 0,
            delete: false,
            handler: Arc::new(handler),
        }
    }

    /// `[base]/$name/[1]/…/[n]`: exactly `n` further segments, which the
    /// handler reads with [`OperationRequest::tail`].
    pub fn with_segments(mut self, n: usize) -> OperationUrl {
        self.segments = n;
        self
    }

    /// Also accepts DELETE.
    pub fn with_delete(mut self) -> OperationUrl {
        self.delete = true;
        self
    }

    /// The name of the first segment, without `$`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many segments follow `$name`.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Whether it may be requested with `m`.
    pub fn accepts(&self, m: Method) -> bool {
        match m {
            Method::Get | Method::Head => true,
            Method::Delete => self.delete,
            _ => false,
        }
    }

    pub(crate) fn handler(&self) -> &dyn OperationHandler {
        &*self.handler
    }

    /// The 405 for a method it does not accept.
    pub(crate) fn wrong_method(&self, m: Method) -> FhirError {
        let accepted = if self.delete {
            "GET or DELETE"
        } else {
            "GET only"
        };
        FhirError::new(
            405,
            "not-supported",
            format!(
                "${} is requested with {accepted}, not {}",
                self.name,
                method_name(m)
            ),
        )
    }
}

/// The table: at most one operation per level, resource type and name, and
/// at most one operation URL per name and number of segments.
#[derive(Default, Clone)]
pub(crate) struct Operations {
    entries: Vec<OperationSpec>,
    urls: Vec<OperationUrl>,
}

impl Operations {
    /// Adds `spec`, replacing an operation of the same level and name.
    pub(crate) fn add(&mut self, spec: OperationSpec) {
        self.entries
            .retain(|e| !(e.level == spec.level && e.name == spec.name));
        self.entries.push(spec);
    }

    /// The operation `name` on the system (`t` None), on type `t`, or on an
    /// instance of `t`.
    pub(crate) fn find(
        &self,
        t: Option<&str>,
        instance: bool,
        name: &str,
    ) -> Option<&OperationSpec> {
        self.entries.iter().find(|e| {
            e.name == name
                && match (&e.level, t) {
                    (Level::System, None) => true,
                    (Level::Type(et), Some(t)) => !instance && et == t,
                    (Level::Instance(et), Some(t)) => instance && et == t,
                    _ => false,
                }
        })
    }

    /// Every operation, in the order registered.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &OperationSpec> {
        self.entries.iter()
    }

    /// Adds `url`, replacing one of the same name and number of segments.
    pub(crate) fn add_url(&mut self, url: OperationUrl) {
        self.urls
            .retain(|u| !(u.name == url.name && u.segments == url.segments));
        self.urls.push(url);
    }

    /// The operation URL `$name` followed by `segments` segments.
    pub(crate) fn find_url(&self, name: &str, segments: usize) -> Option<&OperationUrl> {
        self.urls
            .iter()
            .find(|u| u.name == name && u.segments == segments)
    }
}

/// One call of an operation, as its handler sees it.
pub struct OperationRequest<'a> {
    req: &'a FhirRequest,
    resource_type: Option<&'a str>,
    id: Option<&'a str>,
    tail: &'a [String],
    pub(crate) cx: &'a Ctx<'a>,
    parameters: OnceCell<Result<Value, FhirError>>,
}

impl<'a> OperationRequest<'a> {
    pub(crate) fn new(
        req: &'a FhirRequest,
        resource_type: Option<&'a str>,
        id: Option<&'a str>,
        tail: &'a [String],
        cx: &'a Ctx<'a>,
    ) -> OperationRequest<'a> {
        OperationRequest {
            req,
            resource_type,
            id,
            tail,
            cx,
            parameters: OnceCell::new(),
        }
    }

    /// GET, HEAD or POST (and DELETE for an [`OperationUrl`] that takes it).
    pub fn method(&self) -> Method {
        self.req.method
    }

    /// The resource type of a type or instance operation.
    pub fn resource_type(&self) -> Option<&str> {
        self.resource_type
    }

    /// The id of an instance operation.
    pub fn id(&self) -> Option<&str> {
        self.id
    }

    /// The URL parameters, as given.
    pub fn query(&self) -> &[(String, String)] {
        &self.req.query
    }

    pub fn headers(&self) -> &RequestHeaders {
        &self.req.headers
    }

    /// The path below the FHIR base (for links to the call itself).
    pub fn path(&self) -> &[String] {
        &self.req.path
    }

    /// The segments after `$name` of an [`OperationUrl`] (`[job, file]` of
    /// `$export-file/[job]/[file]`); empty for an operation.
    pub fn tail(&self) -> &[String] {
        self.tail
    }

    /// Who asks.
    pub fn access(&self) -> &dyn Access {
        self.cx.access
    }

    /// Names the audit event the interaction records (for an operation
    /// [`OperationSpec::audited_by_interaction`] and an [`OperationUrl`]):
    /// its Wardline subtype and its FHIR action code (`C`, `R`, `U`, `D`
    /// or `E`). Call it first, so that a refusal is recorded under the name
    /// too.
    pub fn audit_as(&self, subtype: &str, action: &'static str) {
        self.cx.name(subtype, action);
    }

    /// The POST body as a resource, for an operation whose one input is a
    /// resource (FHIR allows that resource as the body itself, e.g. a
    /// Bundle), without the `Parameters` check of [`Self::parameters`].
    pub fn body(&self) -> Result<Value, FhirError> {
        parse_body(self.req)
    }

    /// The `Parameters` resource: with POST the body (it must be one, each
    /// parameter with a name), with GET one made of the URL parameters,
    /// each a `valueString`. The body is read on the first call.
    pub fn parameters(&self) -> Result<&Value, FhirError> {
        self.parameters
            .get_or_init(|| match self.req.method {
                Method::Post => {
                    let body = parse_body(self.req)?;
                    check_parameters(&body)?;
                    Ok(body)
                }
                _ => Ok(json!({
                    "resourceType": "Parameters",
                    "parameter": self
                        .req
                        .query
                        .iter()
                        .map(|(k, v)| json!({"name": k, "valueString": v}))
                        .collect::<Vec<_>>(),
                })),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The parameters as name/value strings: the URL parameters, then (with
    /// POST) those of the body, each of which must have a `value[x]`
    /// (a parameter holding a resource or parts is refused).
    pub fn primitive_parameters(&self) -> Result<Vec<(String, String)>, FhirError> {
        let mut out = self.req.query.clone();
        if self.req.method != Method::Post {
            return Ok(out);
        }
        for p in self
            .parameters()?
            .get("parameter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let value = p.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.starts_with("value"))
                    .map(|(_, v)| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
            });
            match value {
                Some(v) => out.push((name.to_owned(), v)),
                None => {
                    return Err(FhirError::invalid(format!(
                        "parameter '{name}' has no primitive value"
                    ))
                    .at(name.to_owned()));
                }
            }
        }
        Ok(out)
    }
}

pub(crate) fn parse_body(req: &FhirRequest) -> Result<Value, FhirError> {
    let body = req
        .body
        .as_deref()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| FhirError::invalid("the request has no body"))?;
    wardline_fhir::json::parse(body)
}

/// Checks that a body is a `Parameters` resource with a `parameter` list
/// whose entries each have a name.
pub(crate) fn check_parameters(v: &Value) -> Result<(), FhirError> {
    if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(FhirError::invalid(
            "an operation's body must be a Parameters resource",
        ));
    }
    match v.get("parameter") {
        None => Ok(()),
        Some(Value::Array(ps)) => {
            for (i, p) in ps.iter().enumerate() {
                if p.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(FhirError::invalid(format!(
                        "Parameters.parameter[{i}] has no name"
                    )));
                }
            }
            Ok(())
        }
        Some(_) => Err(FhirError::invalid("Parameters.parameter must be a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_checked() {
        assert!(check_parameters(&json!({"resourceType": "Parameters"})).is_ok());
        assert!(
            check_parameters(&json!({"resourceType": "Parameters", "parameter": [{"name": "a"}]}))
                .is_ok()
        );
        let e = check_parameters(&json!({"resourceType": "Patient"})).unwrap_err();
        assert!(e.to_string().contains("Parameters resource"), "{e}");
        let e = check_parameters(&json!({"resourceType": "Parameters", "parameter": [{}]}))
            .unwrap_err();
        assert!(e.to_string().contains("parameter[0]"), "{e}");
        assert!(check_parameters(&json!({"resourceType": "Parameters", "parameter": 1})).is_err());
    }

    fn nothing(_: &FhirService, _: &OperationRequest<'_>) -> Result<FhirResponse, FhirError> {
        Ok(FhirResponse::no_content())
    }

    #[test]
    fn the_table_finds_by_level_and_replaces() {
        let mut ops = Operations::default();
        ops.add(OperationSpec::system("$export", "urn:a", nothing).with_get());
        ops.add(OperationSpec::type_level(
            "Patient", "export", "urn:b", nothing,
        ));
        ops.add(OperationSpec::instance("Group", "export", "urn:c", nothing));
        assert_eq!(
            ops.find(None, false, "export").unwrap().definition(),
            "urn:a"
        );
        assert_eq!(
            ops.find(Some("Patient"), false, "export")
                .unwrap()
                .definition(),
            "urn:b"
        );
        assert!(ops.find(Some("Patient"), true, "export").is_none());
        assert!(ops.find(Some("Group"), false, "export").is_none());
        assert_eq!(
            ops.find(Some("Group"), true, "export")
                .unwrap()
                .definition(),
            "urn:c"
        );
        ops.add(OperationSpec::instance("Group", "export", "urn:d", nothing));
        assert_eq!(ops.iter().count(), 3);
        assert_eq!(
            ops.find(Some("Group"), true, "export")
                .unwrap()
                .definition(),
            "urn:d"
        );
        let sys = ops.find(None, false, "export").unwrap();
        assert!(sys.accepts(Method::Get) && sys.accepts(Method::Head));
        assert!(!sys.accepts(Method::Delete));
        let group = ops.find(Some("Group"), true, "export").unwrap();
        assert!(group.accepts(Method::Post) && !group.accepts(Method::Get));
        let e = group.wrong_method(Method::Get);
        assert_eq!(e.status, 405);
        assert!(e.to_string().contains("Group/[id]/$export"), "{e}");
    }
}
