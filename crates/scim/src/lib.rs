//! The SCIM 2.0 client: how scimsync changes a target.
//!
//! - **Authentication** ([`Auth`]): OAuth2 client credentials with the `oauth2` crate over the
//!   client's own reqwest stack (the secret in the form body for Salesforce, or HTTP Basic), or
//!   a static bearer token. One cached token is shared by all requests; Salesforce sends no
//!   `expires_in` and no refresh token, so a 401 fetches one new token (once, for all requests
//!   that saw the same stale token) and retries; a second 401 is an error saying the execution
//!   user lacks Manage Users.
//! - **Transport**: a shared `governor` limiter (requests per second; requests wait, they are
//!   not refused), a concurrency cap, a per-request timeout, retries with exponential backoff
//!   and jitter on 429, 503 and other 5xx, Salesforce's 403 `REQUEST_LIMIT_EXCEEDED`, timeouts
//!   and connection errors, honouring `Retry-After`; no retry on other 4xx.
//! - **Resources**: users (paged list, get, `eq` filters, create, one PATCH with all of a
//!   user's changes, deactivation by PATCH `active=false` — never DELETE), groups (list with
//!   members, create, rename, members in batches), `/Entitlements` and `/Roles`. Where the
//!   target does not support PATCH, the same changes go as a PUT of the whole resource, read
//!   just before (`put.rs`).
//! - **Dialects** ([`Dialect`]): `salesforce` (path-less replace, member PATCH
//!   `value: {members: [...]}`, `/ServiceProviderConfigs`, `CODE:message;` details) and
//!   `generic` RFC 7644 (paths, bare member arrays, `members[value eq "…"]` removal, 204
//!   answers, `If-Match` with the ETags the server sent).
//! - **Discovery** ([`ScimClient::discover`]): `/ServiceProviderConfigs` (Salesforce; the
//!   singular first for generic targets), `/ResourceTypes` and `/Schemas` into a
//!   `TargetCapabilities` record, with a safe fallback noted for each document that is missing,
//!   empty or unreadable. The client then follows it ([`ScimClient::use_capabilities`], also
//!   for a cached record): the Federation ID where declared ([`FederationIdPlacement`]),
//!   `If-Match` only when ETags are declared, pages within `maxResults`, lookups by listing
//!   when filters are unsupported, `/Entitlements` and `/Roles` only when they exist.
//! - **Targeted reads** ([`ScimClient::read_some`], `client/some.rs`): the users and groups an
//!   incremental run names, by filters joined by `or` in batches ([`MAX_CLAUSES`],
//!   [`MAX_FILTER_BYTES`]), every answer checked against the keys asked; one clause a request,
//!   or no filters at all (by id, and by listing), once the target shows it cannot be asked so
//!   ([`TargetedReads`], kept for the client's life).
//! - **Errors** ([`ScimError`]) say whether to retry and what to do.
//!
//! Wire decisions where Salesforce's documentation is silent (see
//! `shared/docs/salesforce-scim.md`): until discovery says otherwise, the Federation ID travels
//! in `urn:salesforce:schemas:extension:1.0:User` as `federationIdentifier` (Salesforce dialect
//! only; after discovery only where the target declares it, or where `federation_id` says);
//! entitlements are
//! always sent as the complete list (profile first); the role as `roles: [{value}]`; the one
//! phone as `phoneNumbers: [{type: "work"}]`, which leaves phones of other types in place.
//!
//! Secrets never reach logs, errors or `Debug` output.
#![forbid(unsafe_code)]

mod client;
mod config;
pub mod constants;
mod discovery;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod pace;
mod put;
mod resources;
mod token;
mod transport;

pub use client::{CheckStep, MAX_CLAUSES, MAX_FILTER_BYTES, ScimClient, TargetedReads};
pub use config::{Auth, ClientAuthMethod, Dialect, FederationIdPlacement, MAX_PAGES, ScimConfig};
pub use error::{ScimError, TokenFailure};
pub use resources::quote;
pub use transport::ClientStats;
