//! Clinical documents (issue 18): clinical notes ([`notes`]) and discharge
//! summaries ([`discharge`]), each a FHIR `Composition` in the one store.

pub mod discharge;
pub mod letters;
pub mod notes;
