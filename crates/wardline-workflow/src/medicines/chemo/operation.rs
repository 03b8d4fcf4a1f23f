//! `GET|POST [base]/CarePlan/{id}/$chemotherapy-cycle`: a chemotherapy
//! cycle as a `collection` Bundle for the cancer centre — the CarePlan,
//! its MedicationRequests and their Medications, the regimen's
//! PlanDefinition, the Patient and the Observations its doses were
//! calculated from — built by one function ([`super::cycle::share_bundle`]),
//! read as the caller and audited (`chemo-share`). A CarePlan that is not
//! a chemotherapy cycle is 404.

use wardline_core::{FhirResponse, FhirService, OperationHandler, OperationRequest, OperationSpec};
use wardline_fhir::FhirError;

use crate::medicines::MedicinesError;

/// The canonical URL of the operation's definition.
pub const CYCLE_DEFINITION: &str =
    "https://fhir.wardline.invalid/OperationDefinition/CarePlan-chemotherapy-cycle";

/// `CarePlan/{id}/$chemotherapy-cycle`; registered by
/// `wardline_workflow::with_operations`.
pub struct CycleOperation;

impl CycleOperation {
    pub fn spec() -> OperationSpec {
        OperationSpec::instance(
            "CarePlan",
            "chemotherapy-cycle",
            CYCLE_DEFINITION,
            CycleOperation,
        )
        .with_get()
    }
}

/// A medicines refusal as a FHIR error (an OperationOutcome with the status).
pub fn to_fhir(e: &MedicinesError) -> FhirError {
    let code = match e {
        MedicinesError::Invalid(_) => "invalid",
        MedicinesError::NotFound(_) => "not-found",
        MedicinesError::Forbidden(_) => "forbidden",
        MedicinesError::Alerts(_) | MedicinesError::Conflict(_) => "conflict",
        MedicinesError::Store(_) => "exception",
    };
    FhirError::new(e.status(), code, e.message())
}

impl OperationHandler for CycleOperation {
    fn invoke(
        &self,
        svc: &FhirService,
        req: &OperationRequest<'_>,
    ) -> Result<FhirResponse, FhirError> {
        let id = req
            .id()
            .ok_or_else(|| FhirError::invalid("$chemotherapy-cycle is invoked on a CarePlan"))?;
        let bundle = super::cycle::share_bundle(svc, req.access(), id, &svc.config().base_url)
            .map_err(|e| to_fhir(&e))?;
        Ok(FhirResponse::json(200, bundle))
    }
}
