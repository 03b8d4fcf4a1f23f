//! PostgreSQL backend of the Wardline store (production).
