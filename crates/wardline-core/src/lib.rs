//! Transport-free FHIR service: interactions, conditional logic, bundles, paging, CapabilityStatement.
