//! SQLite backend of the Wardline store (the embedded default).
