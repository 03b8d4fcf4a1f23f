//! `GET|POST [base]/Composition/{id}/$document` (FHIR R4's standard
//! operation): the signed document `Bundle` of a discharge summary's
//! current version, exactly as it was stored when it was signed (or
//! amended), read as the caller and audited (`discharge-summary-view`). A
//! summary not yet signed has no document (409); a Composition that is not
//! a discharge summary is 404.

use wardline_core::{FhirResponse, FhirService, OperationHandler, OperationRequest, OperationSpec};
use wardline_fhir::FhirError;

use super::DischargeError;

/// The canonical URL of the operation's definition (FHIR's own).
pub const DOCUMENT_DEFINITION: &str =
    "http://hl7.org/fhir/OperationDefinition/Composition-document";

/// `Composition/{id}/$document`; registered by
/// `wardline_workflow::with_operations`.
pub struct DocumentOperation;

impl DocumentOperation {
    pub fn spec() -> OperationSpec {
        OperationSpec::instance(
            "Composition",
            "document",
            DOCUMENT_DEFINITION,
            DocumentOperation,
        )
        .with_get()
    }
}

/// A discharge summary refusal as a FHIR error.
pub fn to_fhir(e: &DischargeError) -> FhirError {
    let code = match e {
        DischargeError::Invalid(_) | DischargeError::Field(..) => "invalid",
        DischargeError::NotFound(_) => "not-found",
        DischargeError::Forbidden(_) => "forbidden",
        DischargeError::Conflict(_) => "conflict",
        DischargeError::Store(_) => "exception",
    };
    FhirError::new(e.status(), code, e.message())
}

impl OperationHandler for DocumentOperation {
    fn invoke(
        &self,
        svc: &FhirService,
        req: &OperationRequest<'_>,
    ) -> Result<FhirResponse, FhirError> {
        let id = req
            .id()
            .ok_or_else(|| FhirError::invalid("$document is invoked on a Composition"))?;
        let bundle = super::document(svc, req.access(), id).map_err(|e| to_fhir(&e))?;
        Ok(FhirResponse::json(200, bundle))
    }
}
