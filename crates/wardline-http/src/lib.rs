//! HTTP adapter: axum routes for the FHIR API, content negotiation, headers, /healthz, /metrics.
