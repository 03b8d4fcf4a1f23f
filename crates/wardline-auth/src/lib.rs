//! Wardline's information-governance layer: identities, authentication and the
//! access policy.
//!
//! Two halves. The **primitives** are pure (no IO, no store, no clock: every
//! function that needs the time takes it as an argument):
//!
//! * [`scopes`]: SMART App Launch v2 scopes ([`scopes::ScopeSet`]): parse, check,
//!   intersect, print canonically.
//! * [`password`]: argon2id password hashes (PHC strings) and the password policy.
//! * [`totp`]: RFC 6238 one-time codes, the second factor standing in for the NHS
//!   smartcard.
//! * [`token`]: Wardline's own access tokens (HS256 JWS) and SMART Backend Services
//!   client assertions (`private_key_jwt`, ES/RS 256/384 keys from a JWKS).
//! * [`pkce`]: RFC 7636 S256 code challenges, random tokens (codes, session ids, CSRF
//!   tokens) and constant-time comparison.
//! * [`rbac`]: activities and roles in the spirit of the NHS national RBAC baseline, and
//!   the table of which activity each FHIR interaction needs.
//! * `testkit` (feature `test-support`): mint client assertions in other crates' tests.
//!
//!
//! No input makes a primitive panic; bad input is an error value.
//!
//! The **policy** half combines them with the record:
//!
//! * [`directory`]: users (`Practitioner`), positions (`PractitionerRole`),
//!   credentials and lockout, SMART clients, the token signing key,
//!   break-glass grants; every change audited.
//! * [`policy`]: [`policy::Policy`], the `Access` of one request — scopes,
//!   position activities, patient context, legitimate relationships,
//!   break-glass, consent — asked by `wardline-core` at every read and write.
//! * [`clock`]: the clock the policy reads (the directory's; the system
//!   clock unless a test injects one it can move).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod clock;
pub mod directory;
pub mod password;
pub mod pkce;
pub mod policy;
pub mod rbac;
pub mod scopes;
#[cfg(any(test, feature = "test-support"))]
pub mod testkit;
pub mod token;
pub mod totp;
