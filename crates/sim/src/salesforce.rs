//! An emulator of Salesforce's SCIM 2.0 API and its OAuth2 token endpoint, on 127.0.0.1.
//!
//! It keeps the rules of `shared/docs/salesforce-scim.md` and of Duo's Salesforce provisioning
//! notes. Where the fact sheet marks a behaviour unconfirmed, the choice made here is written
//! next to it (search this crate for "unconfirmed").
//!
//! - **Tokens**: `POST /services/oauth2/token` with `grant_type=client_credentials`, the client
//!   id and secret in the form body or by HTTP Basic. Answers like Salesforce: no `expires_in`,
//!   no refresh token, `issued_at` in milliseconds as a string. Wrong client id → 400
//!   `invalid_client_id`; wrong secret → 400 `invalid_client`; no Run As user → 400
//!   `invalid_grant` "no client credentials user enabled"; asked of the login domain
//!   ([`SalesforceSim::login_domain_token_url`]) → 400 `invalid_grant` "request not supported
//!   on this domain". Tokens can be revoked or expired on demand ([`Knobs`]).
//! - **SCIM** under `/services/scim/v2`: an unknown, revoked or expired token → 401
//!   `INVALID_SESSION_ID`; a client whose app lacks the `api` scope → 403; an execution user
//!   without Manage Users → 401 (as Duo's troubleshooting table says).
//! - **Users**: ids `005…`; userName must be an email, is lower-cased and unique (409
//!   `DUPLICATE_USERNAME`); exactly one profile entitlement on create (409
//!   `REQUIRED_FIELD_MISSING:user_must_have_one_entitlement_which_must_be_a_profileid;`); nickName
//!   ≤ 40 characters, derived from the userName as typed when absent (400 `STRING_TOO_LONG` when
//!   that is over 40), unique (409 `DUPLICATE_COMMUNITY_NICKNAME`), and invented afresh when an
//!   update sets it empty; a profile change to another licence → 400
//!   `FIELD_INTEGRITY_EXCEPTION`; DELETE refused (405, or deactivates by [`SalesforceConfig`]);
//!   an email change is held until verified (GET shows the old address; each update carrying a
//!   new address sends another verification email); preferredLanguage, locale, timezone and
//!   emailEncodingKey are returned with defaults and refused on write (400); one phone per
//!   request, a `work` phone replaces the work phone and a `mobile` one stays; pages of at most
//!   200; filters `eq` on userName (case-insensitive), externalId and id, several clauses
//!   joined by `or` (a reading), answered from indexes.
//! - **Groups**: ids `00G…`; created unless refused by a knob (405, as real orgs may: the
//!   reference lists Groups as Read/Update only); displayName ≤ 40; member PATCH in Salesforce's
//!   shape `{"op":"add","path":"members","value":{"members":[{"value":"005…"}]}}` (remove alike,
//!   or `path: members[value eq "005…"]`); inactive users, and users whose profile allows no
//!   group, refused as members (400).
//! - **Catalogue**: `/Entitlements` (profiles `00e…` type `Profile` with their licence and
//!   whether they allow groups in `urn:salesforce:schemas:extension:1.0:Entitlement`
//!   (`userLicense`, `allowsGroups`: this emulator's spelling, unconfirmed), permission sets
//!   `0PS…` type `PermissionSet`) and `/Roles` (`00E…`), seeded from
//!   `fixtures/salesforce_catalogue.json`.
//! - **Generic mode** ([`SimMode::Generic`]): plain RFC 7644 — PATCH paths, bare member arrays,
//!   `members[value eq "…"]` removal, 204 on member PATCH, ETags with `If-Match` (412 on a
//!   mismatch), string `status` and `scimType` in errors, no profile rule.
//! - **Limits and faults** ([`Knobs`]): latency, fail the next N requests with a status, bursts
//!   of 429 or 403 `REQUEST_LIMIT_EXCEEDED` with `Retry-After`, an enforced requests-per-second
//!   limit, a daily API limit, dropped connections. `Sforce-Limit-Info: api-usage=N/LIMIT` on
//!   every SCIM response (Salesforce mode).
//! - **Readings** ([`Reading`]): where the fact sheet leaves a point unconfirmed, the emulator
//!   plays one reading by default and the other on demand (per instance, or at run time with
//!   [`Knobs::set_reading`]): whether the Federation ID extension exists, whether
//!   `/Entitlements` tells licences and which profiles allow groups, whether a refused member
//!   PATCH names the member, whether a last name is required, a cap on members per PATCH,
//!   usernames held in other orgs, whether `/Entitlements` and `/Roles` exist at all, and
//!   whether filters take clauses joined by `or`.
//! - **Discovery**: `/Schemas` and `/ResourceTypes` (RFC 7643 §7 and §6) describe what this
//!   instance accepts, following its mode and reading.
//! - **Inspection** ([`Inspector`]): the request log, counts by method and path, verification
//!   emails sent, rate rejections, users and groups.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{any, post};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod discovery;
mod errors;
mod groups;
mod handlers;
mod knobs;
mod render;
mod rules;
mod state;
mod users;

pub use knobs::{BurstKind, Knobs};
pub use state::{SimGroup, SimUser};

/// Which dialect the emulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimMode {
    Salesforce,
    /// Plain RFC 7644.
    Generic,
}

/// What a configured OAuth client is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// An External Client App with client credentials, the `api` scope and a Run As user who
    /// has Manage Users.
    Valid,
    /// No Run As (execution) user: the token request fails with `invalid_grant`.
    NoRunAsUser,
    /// The app lacks the `api` scope: tokens are issued, SCIM answers 403.
    NoApiScope,
    /// The execution user lacks Manage Users: tokens are issued, SCIM answers 401.
    NoManageUsers,
}

/// An OAuth client the token endpoint knows.
#[derive(Clone, PartialEq, Eq)]
pub struct SimClient {
    pub client_id: String,
    pub client_secret: String,
    pub kind: ClientKind,
}

impl std::fmt::Debug for SimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("kind", &self.kind)
            .finish()
    }
}

/// A profile of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueProfile {
    pub id: String,
    pub name: String,
    pub licence: String,
    pub allows_groups: bool,
}

/// A permission set or role of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueItem {
    pub id: String,
    pub name: String,
}

/// Profiles, permission sets and roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCatalogue {
    pub profiles: Vec<CatalogueProfile>,
    pub permission_sets: Vec<CatalogueItem>,
    pub roles: Vec<CatalogueItem>,
}

impl SimCatalogue {
    /// The fixture `fixtures/salesforce_catalogue.json`.
    pub fn fixture() -> Self {
        // The fixture is compiled in and checked by a test; an unreadable one is a build bug.
        serde_json::from_str(include_str!("../fixtures/salesforce_catalogue.json")).unwrap_or(
            Self {
                profiles: Vec::new(),
                permission_sets: Vec::new(),
                roles: Vec::new(),
            },
        )
    }
}

/// How a [`SalesforceSim`] runs.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    pub mode: SimMode,
    pub clients: Vec<SimClient>,
    pub catalogue: SimCatalogue,
    /// Whether `POST /Groups` creates groups (true) or is refused as by orgs where SCIM groups
    /// are read/update only (false).
    pub allow_group_creation: bool,
    /// `DELETE /Users/{id}` deactivates instead of being refused (405).
    pub delete_deactivates: bool,
    /// The org's daily API allocation (`Sforce-Limit-Info` and 403 `REQUEST_LIMIT_EXCEEDED`).
    pub daily_api_limit: u64,
    /// Largest page (`count`) served.
    pub max_page_size: usize,
    /// Which reading of the points the public documentation leaves unconfirmed this org
    /// plays; the default is the reading the engine was written against.
    pub reading: Reading,
}

/// One reading of the points that Salesforce's public documentation leaves unconfirmed
/// (`shared/docs/salesforce-scim.md` §1, §2, §8, §9).
///
/// The engine must converge against a Salesforce that reads these points either way, so the
/// emulator can play each one both ways. [`Reading::default`] is the reading the emulator has
/// always played (existing tests rely on it); [`Reading::strict`] plays every other reading at
/// once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The org declares `urn:salesforce:schemas:extension:1.0:User` with
    /// `federationIdentifier` (default true). No source shows how SCIM carries the Federation
    /// ID. When false, `/Schemas` and `/ResourceTypes` do not list the extension, users are
    /// returned without it, a POST carrying it succeeds with the extension ignored, and a
    /// PATCH carrying it is refused whole (400 `INVALID_FIELD` naming `federationIdentifier`).
    pub federation_extension: bool,
    /// `/Entitlements` describes each profile's licence and whether it allows group
    /// membership in `urn:salesforce:schemas:extension:1.0:Entitlement` (default true; the
    /// spelling is this emulator's, unconfirmed). When false the extension is not sent, so a
    /// client cannot know them; the rules still apply.
    pub allows_groups_extension: bool,
    /// A member PATCH refused because of one member (inactive, profile without groups, unknown
    /// id) names that member in its message (default true). When false the message is a
    /// generic `FIELD_INTEGRITY_EXCEPTION` one, and the client cannot tell which member was
    /// refused. Either way nothing of the PATCH is applied.
    pub names_refused_member: bool,
    /// `name.familyName` (User.LastName) is required (default false): a POST without a
    /// non-empty one, or a PATCH clearing it, → 400 `REQUIRED_FIELD_MISSING` naming
    /// `LastName`.
    pub last_name_required: bool,
    /// The most members one group PATCH may add and remove in total (default `None`: no
    /// limit, none is documented). Over it → 400 `LIMIT_EXCEEDED`, nothing applied.
    pub max_members_per_patch: Option<usize>,
    /// Usernames (lower-case) held by users of other orgs. Salesforce usernames are unique
    /// across all orgs, so creating or renaming to one → 409 `DUPLICATE_USERNAME`, though no
    /// GET in this org shows such a user. Default empty; [`Reading::strict`] leaves it empty
    /// too, since which names are taken is data a test supplies
    /// ([`Reading::with_taken_username`], [`Knobs::take_username`]).
    pub taken_usernames: BTreeSet<String>,
    /// `GET /Entitlements` and `GET /Roles` exist (default true). When false they answer 404
    /// as a plain RFC 7644 server would, and `/ResourceTypes` does not list them; entitlements
    /// on users still work.
    pub catalogue_endpoints: bool,
    /// `GET /Users` and `GET /Groups` take filters of `eq` clauses joined by `or` (default
    /// true): `id eq "005…" or id eq "005…"`, `userName eq … or …`, answered from the indexes.
    /// Salesforce's reference says only that `and` does not take precedence over `or` in a
    /// clause, so which attributes and operators it filters on, and whether `or` works, are
    /// unconfirmed. When false, a filter with `or` → 400 `INVALID_QUERY_FILTER_OPERATOR`
    /// (`scimType` `invalidFilter`), and only single `eq` clauses are answered.
    pub filter_or: bool,
}

impl Default for Reading {
    /// The reading the emulator has always played.
    fn default() -> Self {
        Self {
            federation_extension: true,
            allows_groups_extension: true,
            names_refused_member: true,
            last_name_required: false,
            max_members_per_patch: None,
            taken_usernames: BTreeSet::new(),
            catalogue_endpoints: true,
            filter_or: true,
        }
    }
}

impl Reading {
    /// Every other reading at once: no Federation ID extension, no licence or group rule in
    /// `/Entitlements`, refusals that name no member, a required last name, at most 50 members
    /// changed per PATCH, no `/Entitlements` or `/Roles`, no `or` in filters. `taken_usernames`
    /// stays empty.
    pub fn strict() -> Self {
        Self {
            federation_extension: false,
            allows_groups_extension: false,
            names_refused_member: false,
            last_name_required: true,
            max_members_per_patch: Some(50),
            taken_usernames: BTreeSet::new(),
            catalogue_endpoints: false,
            filter_or: false,
        }
    }

    /// Adds a username (lower-cased) held by a user of another org.
    pub fn with_taken_username(mut self, user_name: &str) -> Self {
        self.taken_usernames.insert(user_name.to_lowercase());
        self
    }

    /// Whether `user_name` is held in another org (case-insensitive).
    pub(crate) fn is_taken(&self, user_name: &str) -> bool {
        let lower = user_name.to_lowercase();
        self.taken_usernames
            .iter()
            .any(|t| t.to_lowercase() == lower)
    }
}

/// The demo client's id and secret.
pub const DEMO_CLIENT_ID: &str = "3MVG9scimsyncDemoConsumerKey";
pub const DEMO_CLIENT_SECRET: &str = "scimsync-demo-consumer-secret";

impl SalesforceConfig {
    /// Salesforce mode, one valid client ([`DEMO_CLIENT_ID`]/[`DEMO_CLIENT_SECRET`]), the
    /// fixture catalogue, group creation allowed.
    pub fn demo() -> Self {
        Self {
            port: 0,
            mode: SimMode::Salesforce,
            clients: vec![SimClient {
                client_id: DEMO_CLIENT_ID.to_owned(),
                client_secret: DEMO_CLIENT_SECRET.to_owned(),
                kind: ClientKind::Valid,
            }],
            catalogue: SimCatalogue::fixture(),
            allow_group_creation: true,
            delete_deactivates: false,
            daily_api_limit: 100_000,
            max_page_size: 200,
            reading: Reading::default(),
        }
    }

    /// [`SalesforceConfig::demo`] playing [`Reading::strict`]: every reading other than the
    /// default, to check that the engine converges against an org that reads the
    /// unconfirmed points the other way.
    pub fn strict() -> Self {
        Self {
            reading: Reading::strict(),
            ..Self::demo()
        }
    }

    /// The same in generic RFC 7644 mode.
    pub fn generic() -> Self {
        Self {
            mode: SimMode::Generic,
            ..Self::demo()
        }
    }

    /// Adds a client.
    pub fn with_client(mut self, client_id: &str, client_secret: &str, kind: ClientKind) -> Self {
        self.clients.push(SimClient {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            kind,
        });
        self
    }
}

/// One request as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    /// The path below the host, with the query.
    pub path: String,
    /// The object a SCIM request concerns: the resource id in its path, or for a creation the
    /// `userName` / `displayName` of its body.
    pub object: Option<String>,
    /// The status answered (a dropped request shows the status of the headers it never
    /// completed).
    pub status: u16,
    /// A write (POST, PATCH, PUT, DELETE) the emulator applied: it reached the resources
    /// (no fault, authorized) and was answered 2xx.
    pub applied: bool,
    /// The request body (never a token: tokens travel in headers, secrets only to the token
    /// endpoint, whose body is not logged).
    pub body: String,
    /// When, relative to the emulator's start.
    pub at: Duration,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub config: SalesforceConfig,
    pub started: Instant,
    pub state: Mutex<state::State>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, state::State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running emulator; stops when dropped.
#[derive(Debug)]
pub struct SalesforceSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for SalesforceSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SalesforceSim {
    /// Binds 127.0.0.1:`config.port` and serves until dropped.
    pub async fn start(config: SalesforceConfig) -> std::io::Result<Self> {
        let listener =
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, config.port))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state::State::new(&config)),
            config,
            started: Instant::now(),
        });
        let app = Router::new()
            .route("/services/oauth2/token", post(handlers::token))
            .route(
                "/_login/services/oauth2/token",
                post(handlers::login_domain_token),
            )
            .route("/services/scim/v2/{*path}", any(handlers::scim))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Salesforce emulator stopped.");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The SCIM base URL: `http://127.0.0.1:PORT/services/scim/v2`.
    pub fn base_url(&self) -> String {
        format!("{}/services/scim/v2", self.origin())
    }

    /// The My Domain token URL: `http://127.0.0.1:PORT/services/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/services/oauth2/token", self.origin())
    }

    /// A token URL that behaves like login.salesforce.com for client credentials.
    pub fn login_domain_token_url(&self) -> String {
        format!("{}/_login/services/oauth2/token", self.origin())
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Fault and state knobs.
    pub fn knobs(&self) -> Knobs {
        Knobs(Arc::clone(&self.shared))
    }

    /// What the emulator saw and holds.
    pub fn inspect(&self) -> Inspector {
        Inspector(Arc::clone(&self.shared))
    }

    /// Creates a user directly (an account that existed before provisioning). Returns its id.
    pub fn seed_user(&self, user: SimUser) -> String {
        self.shared.lock().insert_user(user)
    }

    /// Creates a public group directly. Returns its id.
    pub fn seed_group(&self, name: &str) -> String {
        self.shared.lock().insert_group(name)
    }

    /// The catalogue id of a profile, permission set or role by name.
    pub fn catalogue_id(&self, name: &str) -> Option<String> {
        let c = &self.shared.config.catalogue;
        c.profiles
            .iter()
            .map(|p| (&p.id, &p.name))
            .chain(c.permission_sets.iter().map(|p| (&p.id, &p.name)))
            .chain(c.roles.iter().map(|p| (&p.id, &p.name)))
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(id, _)| id.clone())
    }
}

/// Read access to what the emulator saw and holds; a cheap handle.
#[derive(Debug, Clone)]
pub struct Inspector(Arc<Shared>);

impl Inspector {
    /// The [`Reading`] played now (the configured one, or the last [`Knobs::set_reading`]).
    pub fn reading(&self) -> Reading {
        self.0.lock().reading.clone()
    }
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.0.lock().log.clone()
    }
    /// Requests by `METHOD path` (path without query, ids kept).
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.0
            .lock()
            .log
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }
    /// The write requests (POST, PATCH, PUT, DELETE) the SCIM API received, in order, each
    /// with the object it concerns, the status answered and whether it was applied.
    pub fn write_log(&self) -> Vec<LoggedRequest> {
        self.0
            .lock()
            .log
            .iter()
            .filter(|r| r.path.starts_with("/services/scim/") && r.method != "GET")
            .cloned()
            .collect()
    }
    /// Write requests (POST, PATCH, PUT, DELETE) to the SCIM API.
    pub fn writes(&self) -> usize {
        self.0
            .lock()
            .log
            .iter()
            .filter(|r| r.path.starts_with("/services/scim/") && r.method != "GET")
            .count()
    }
    pub fn verification_emails_sent(&self) -> u64 {
        self.0.lock().verification_emails
    }
    /// When each request refused for rate (enforced rps) arrived, since the start.
    pub fn rate_rejections(&self) -> Vec<Duration> {
        self.0.lock().rate_rejections.clone()
    }
    pub fn tokens_issued(&self) -> u64 {
        self.0.lock().tokens_issued
    }
    /// Every user, in id order.
    pub fn users(&self) -> Vec<SimUser> {
        self.0.lock().users().cloned().collect()
    }
    /// The user with this userName (ignoring ASCII case).
    pub fn user_by_name(&self, user_name: &str) -> Option<SimUser> {
        self.0.lock().users_named(user_name).next().cloned()
    }
    /// Every group, in id order.
    pub fn groups(&self) -> Vec<SimGroup> {
        self.0.lock().groups().cloned().collect()
    }
    /// The group with this displayName (ignoring ASCII case).
    pub fn group_by_name(&self, name: &str) -> Option<SimGroup> {
        self.0.lock().groups_named(name).next().cloned()
    }
    /// The names of the groups `user_id` is a member of, in group id order.
    pub fn groups_of(&self, user_id: &str) -> Vec<String> {
        self.0
            .lock()
            .groups_of(user_id)
            .map(|g| g.display_name.clone())
            .collect()
    }
}
