//! Outbound: FHIR change → v2 message. (Being written.)
