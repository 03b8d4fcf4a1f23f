//! Generates Wardline's demo trust: sites, wards, beds, staff and patients with histories, as FHIR resources.
