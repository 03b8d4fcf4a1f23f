//! Routing: which interaction a FHIR path and method are.
//!
//! [`FhirService::route`] maps `[base]/…` to the interactions of the
//! specification (the read side in `reads`, the write side in `writes`,
//! Bundles in `bundle`) and hands every `$name` to the operations table
//! (see [`crate::operation`]); it knows no operation by name.

use wardline_fhir::FhirError;
use wardline_store::HistoryScope;

use crate::access::{Op, Operation};
use crate::method_not_allowed;
use crate::operation;
use crate::{Ctx, FhirRequest, FhirResponse, FhirService, Method, OperationRequest, R};

impl FhirService {
    pub(crate) fn route(&self, req: &FhirRequest, cx: &Ctx<'_>) -> R<FhirResponse> {
        use Op::*;
        let p: Vec<&str> = req.path.iter().map(String::as_str).collect();
        let m = req.method;
        let get = matches!(m, Method::Get | Method::Head);
        match p.as_slice() {
            [] if m == Method::Post => self.bundle(req, cx),
            [] if get => {
                cx.start("search-system", Search, None)?;
                cx.access.check_operation(Operation::SystemWide)?;
                self.search(None, None, req, cx)
            }
            ["metadata"] if get => Ok(FhirResponse::json(200, self.capability_statement())),
            ["_history"] if get => {
                cx.start("history-system", Read, None)?;
                cx.access.check_operation(Operation::SystemWide)?;
                self.history(HistoryScope::System, req, cx)
            }
            ["_search"] if m == Method::Post => {
                cx.start("search-system", Search, None)?;
                cx.access.check_operation(Operation::SystemWide)?;
                self.search(None, None, req, cx)
            }
            // A system operation, a URL an operation handed out (`$name/…`,
            // see `operation`), or neither (404).
            [op, rest @ ..] if op.starts_with('$') => {
                let name = &op[1..];
                if rest.is_empty() && self.operations.find(None, false, name).is_some() {
                    self.operation(req, cx, None, None, name)
                } else {
                    self.operation_url(req, cx, name, rest)
                }
            }
            ["AuditEvent", rest @ ..] => {
                if !get {
                    cx.name("update", "U");
                    return Err(FhirError::new(
                        405,
                        "not-supported",
                        "the audit trail is written by the server only",
                    ));
                }
                cx.start(
                    if rest.is_empty() {
                        "search-type"
                    } else {
                        "read"
                    },
                    Search,
                    Some("AuditEvent"),
                )?;
                cx.access.check_operation(Operation::AuditTrail)?;
                self.audit_trail(rest, req)
            }
            [t] => {
                self.check_type(t)?;
                match m {
                    Method::Get | Method::Head => {
                        cx.start("search-type", Search, Some(t))?;
                        self.search(Some(t), None, req, cx)
                    }
                    Method::Post => {
                        cx.start("create", Create, Some(t))?;
                        self.create(t, req, cx)
                    }
                    Method::Put => {
                        cx.start("update", Update, Some(t))?;
                        self.conditional_update(t, req, cx)
                    }
                    Method::Delete => {
                        cx.start("delete", Delete, Some(t))?;
                        self.conditional_delete(t, req, cx)
                    }
                    Method::Patch => Err(method_not_allowed()),
                }
            }
            [t, "_search"] if m == Method::Post => {
                self.check_type(t)?;
                cx.start("search-type", Search, Some(t))?;
                self.search(Some(t), None, req, cx)
            }
            [t, "_history"] if get => {
                self.check_type(t)?;
                cx.start("history-type", Read, Some(t))?;
                self.history(HistoryScope::Type((*t).into()), req, cx)
            }
            [t, op] if op.starts_with('$') => {
                self.check_type(t)?;
                self.operation(req, cx, Some(t), None, &op[1..])
            }
            [t, id] => {
                self.check_type(t)?;
                match m {
                    Method::Get | Method::Head => {
                        cx.start("read", Read, Some(t))?;
                        self.read(t, id, req, cx)
                    }
                    Method::Put => {
                        cx.start("update", Update, Some(t))?;
                        self.update(t, id, req, cx)
                    }
                    Method::Patch => {
                        cx.start("patch", Update, Some(t))?;
                        self.patch(t, id, req, cx)
                    }
                    Method::Delete => {
                        cx.start("delete", Delete, Some(t))?;
                        self.delete(t, id, cx)
                    }
                    Method::Post => Err(method_not_allowed()),
                }
            }
            [t, id, "_history"] if get => {
                self.check_type(t)?;
                cx.start("history-instance", Read, Some(t))?;
                self.history(HistoryScope::Instance((*t).into(), (*id).into()), req, cx)
            }
            [t, id, "_history", v] if get => {
                self.check_type(t)?;
                cx.start("vread", Read, Some(t))?;
                self.vread(t, id, v, cx)
            }
            [t, id, op] if op.starts_with('$') => {
                self.check_type(t)?;
                self.operation(req, cx, Some(t), Some(id), &op[1..])
            }
            ["Patient", id, ct] if get => {
                if *ct != "*" {
                    self.check_type(ct)?;
                }
                let ct = if *ct == "*" { None } else { Some(*ct) };
                cx.start("search-type", Search, ct)?;
                self.search(ct, Some(("Patient", id)), req, cx)
            }
            _ => Err(FhirError::new(
                404,
                "not-found",
                format!("no FHIR interaction at /{}", req.path.join("/")),
            )),
        }
    }

    /// Runs operation `name` from the operations table: on the system (`t`
    /// None), on type `t`, or on instance `t/id`.
    pub(crate) fn operation(
        &self,
        req: &FhirRequest,
        cx: &Ctx<'_>,
        t: Option<&str>,
        id: Option<&str>,
        name: &str,
    ) -> R<FhirResponse> {
        let Some(spec) = self.operations.find(t, id.is_some(), name) else {
            let on = match (t, id) {
                (None, _) => String::new(),
                (Some(t), None) => format!(" on {t}"),
                (Some(t), Some(id)) => format!(" on {t}/{id}"),
            };
            return Err(FhirError::new(
                404,
                "not-supported",
                format!("there is no operation ${name}{on}"),
            ));
        };
        if !spec.accepts(req.method) {
            return Err(spec.wrong_method(req.method));
        }
        let call = OperationRequest::new(req, t, id, &[], cx);
        let r = spec.handler().invoke(self, &call)?;
        if spec.audit() == operation::Audit::ByOperation {
            // Its transaction recorded the audit event (see `operation`).
            cx.audited.set(true);
        }
        Ok(r)
    }

    /// Runs the handler of the operation URL `$name/rest…` (see
    /// [`crate::OperationUrl`]); a name that is neither a system operation
    /// nor such a URL is 404, as an unknown operation is.
    fn operation_url(
        &self,
        req: &FhirRequest,
        cx: &Ctx<'_>,
        name: &str,
        rest: &[&str],
    ) -> R<FhirResponse> {
        let Some(url) = self.operations.find_url(name, rest.len()) else {
            return Err(if rest.is_empty() {
                FhirError::new(
                    404,
                    "not-supported",
                    format!("there is no operation ${name}"),
                )
            } else {
                FhirError::new(
                    404,
                    "not-found",
                    format!("no FHIR interaction at /{}", req.path.join("/")),
                )
            });
        };
        if !url.accepts(req.method) {
            return Err(url.wrong_method(req.method));
        }
        let call = OperationRequest::new(req, None, None, &req.path[1..], cx);
        // The interaction records the audit event, as for a read: the
        // handler names it (`OperationRequest::audit_as`).
        url.handler().invoke(self, &call)
    }
}
