//! In-process emulators of the services scimsync talks to, for tests, benchmarks and the demo:
//! Duo's Admin API ([`duo`]), Salesforce's SCIM API and OAuth2 token endpoint ([`salesforce`]),
//! and a generator of large synthetic directories ([`generator`]).
//!
//! They keep the real services' rules, limits and errors (see `shared/docs`), and bind to
//! loopback only. They are not mocks: they answer what the real service would.
#![forbid(unsafe_code)]

pub mod duo;
pub mod generator;
pub mod salesforce;
