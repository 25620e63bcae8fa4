//! The SCIM client: resources over the transport, and the core's `Target` port.

use crate::config::{Dialect, FederationIdPlacement, ScimConfig};
use crate::discovery::{Fetched, capabilities};
use crate::error::ScimError;
use crate::put;
use crate::resources::{
    AttrPath, CatalogueItem, create_group_body, create_user_body, entitlement_from_json,
    generic_members_body, group_from_json, members_body, patch_user_body, plain_multi_values,
    quote, rename_body, role_from_json, user_from_json,
};
use crate::transport::{Answer, ClientStats, Transport};
use reqwest::Method;
use scimsync_core::plan::{UserAttributes, UserChanges};
use scimsync_core::ports::{ApiUsage, Lookup, ReadScope, Target};
use scimsync_core::retry::Waits;
use scimsync_core::target::{
    Catalogue, TargetCapabilities, TargetGroup, TargetSnapshot, TargetUser,
};
use scimsync_core::{TargetGroupId, TargetUserId};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, RwLock};
use tracing::{debug, info, warn};

mod some;

pub use some::{MAX_CLAUSES, MAX_FILTER_BYTES, TargetedReads};

/// Whether list requests carry `count`: not yet known, accepted, or refused (then paging goes
/// by `startIndex` alone).
const COUNT_UNKNOWN: u8 = 0;
const COUNT_WORKS: u8 = 1;
const COUNT_REFUSED: u8 = 2;

/// One step of [`ScimClient::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStep {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// A SCIM 2.0 client for one target.
pub struct ScimClient {
    transport: Transport,
    /// The configured page size (capped by the target's maxResults once known).
    page_size: u32,
    member_batch_size: usize,
    /// The most pages one listing reads ([`ScimConfig::max_pages`]).
    max_pages: usize,
    /// How many requests of one targeted read are in flight at once
    /// ([`ScimConfig::max_concurrency`]; the transport caps them all the same).
    concurrency: usize,
    /// Where the Federation ID goes, as configured.
    placement: FederationIdPlacement,
    /// ETags seen, by resource path (generic targets that advertise ETags).
    etags: Mutex<HashMap<String, String>>,
    /// What the client follows: the configuration's assumptions until capabilities are used.
    follow: RwLock<Follow>,
    /// Whether `count` is sent on list requests ([`COUNT_UNKNOWN`], …).
    count: AtomicU8,
    /// Group member values as the target lists them, by user id, where they are not the id
    /// (servers that list members by userName): what a member removal filters on.
    member_values: Mutex<HashMap<String, String>>,
    /// How targeted reads ask the target ([`TargetedReads`], as its code): only ever lowered.
    targeted: AtomicU8,
    /// How a generic target lists group members: by id, by another value (userName), or not
    /// yet known (`some::MEMBERS_*`).
    members_listed: AtomicU8,
}

/// How the client behaves towards the target, from the configuration and, once known, the
/// target's capabilities.
#[derive(Debug, Clone)]
struct Follow {
    /// Where the Federation ID is read and written; `None`: nowhere.
    federation: Option<AttrPath>,
    /// Send `If-Match`: `None` (not discovered) when the target sent an ETag, else as declared.
    etag: Option<bool>,
    page_size: u32,
    /// Filters work; without them `find_user` lists and matches.
    filter: bool,
    /// `/Entitlements` and `/Roles` exist: `None` when not known.
    entitlements: Option<bool>,
    /// `emails` and `phoneNumbers` take only `value`.
    plain: bool,
    /// A group's displayName cannot change.
    group_name_immutable: bool,
    /// PATCH is supported; without it updates go by PUT of the whole resource.
    patch: bool,
    roles: Option<bool>,
    capabilities: Option<TargetCapabilities>,
}

impl std::fmt::Debug for ScimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimClient")
            .field("base", &self.transport.base.as_str())
            .field("dialect", &self.transport.dialect)
            .finish_non_exhaustive()
    }
}

/// The Salesforce SCIM base URL on the host of `base`.
fn salesforce_base(base: &url::Url) -> String {
    let mut shown = format!(
        "{}://{}",
        base.scheme(),
        base.host_str().unwrap_or_default()
    );
    if let Some(port) = base.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str("/services/scim/v2");
    shown
}

impl ScimClient {
    /// Looks a user up by externalId, then by userName case-insensitively (single-user lookups;
    /// filtered answers are checked, and without filter support the listing is searched).
    pub async fn find_user(
        &self,
        user_name: &str,
        external_id: &str,
    ) -> Result<Option<TargetUser>, ScimError> {
        if !self.follow().filter {
            // No filters: list everyone and match here (externalId first, like the filters).
            let mut users = self.list_users().await?;
            let by_external = users.iter().position(|u| {
                u.external_id
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(external_id))
            });
            let found = by_external.or_else(|| {
                users
                    .iter()
                    .position(|u| u.user_name.eq_ignore_ascii_case(user_name))
            });
            return Ok(found.map(|i| users.swap_remove(i)));
        }
        if let Some(u) = self
            .filter_users("externalId", external_id)
            .await?
            .into_iter()
            .next()
        {
            return Ok(Some(u));
        }
        Ok(self
            .filter_users("userName", user_name)
            .await?
            .into_iter()
            .next())
    }

    /// A client for the target `config` describes; refuses a Federation ID path that is not
    /// a SCIM attribute path or that names `userName`/`externalId`.
    pub fn new(config: ScimConfig) -> Result<Self, ScimError> {
        let page_size = config.page_size.clamp(1, 1000);
        let member_batch_size = config.member_batch_size.max(1);
        let max_pages = config.max_pages.max(1);
        let concurrency = config.max_concurrency.max(1);
        let placement = config.federation_id.clone();
        let config_dialect = config.dialect;
        let federation = match &placement {
            FederationIdPlacement::Auto => {
                (config.dialect == Dialect::Salesforce).then(AttrPath::salesforce)
            }
            FederationIdPlacement::Path(p) => Some(
                AttrPath::parse(p).map_err(|e| ScimError::Config(format!("federation_id: {e}")))?,
            ),
            FederationIdPlacement::Off => None,
        };
        Ok(Self {
            transport: Transport::new(config)?,
            page_size,
            member_batch_size,
            max_pages,
            concurrency,
            placement,
            etags: Mutex::new(HashMap::new()),
            follow: RwLock::new(Follow {
                federation,
                etag: None,
                page_size,
                filter: true,
                plain: false,
                group_name_immutable: false,
                patch: true,
                entitlements: None,
                roles: None,
                capabilities: None,
            }),
            // Salesforce takes `count` (and serves 200 at most): sent from the start.
            count: AtomicU8::new(if config_dialect == Dialect::Salesforce {
                COUNT_WORKS
            } else {
                COUNT_UNKNOWN
            }),
            member_values: Mutex::new(HashMap::new()),
            targeted: AtomicU8::new(0),
            members_listed: AtomicU8::new(some::MEMBERS_UNKNOWN),
        })
    }

    /// The client with its retry waits (of SCIM and token requests) sent to `waits` (tests:
    /// [`Waits::recording`], so that they assert the waits asked instead of waiting for them;
    /// a token's age then counts the waits skipped too).
    pub fn with_waits(mut self, waits: Waits) -> Self {
        self.transport.tokens.waits = waits.clone();
        self.transport.waits = waits;
        self
    }

    fn follow(&self) -> Follow {
        self.follow
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn federation(&self) -> Option<AttrPath> {
        self.follow
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .federation
            .clone()
    }

    /// Makes the client follow `caps` (a discovery, possibly cached from an earlier run): the
    /// Federation ID at `caps.federation_id_path` (unless the configuration says `off` or names
    /// a path, which wins), `If-Match` only when ETags are declared, pages no larger than
    /// `max_results`, lookups by listing when filters are not supported, updates by PUT when
    /// PATCH is not, and `/Entitlements` and `/Roles` read only when declared.
    pub fn use_capabilities(&self, caps: &TargetCapabilities) {
        let federation = match &self.placement {
            FederationIdPlacement::Off => None,
            FederationIdPlacement::Path(p) => AttrPath::parse(p).ok(),
            FederationIdPlacement::Auto => caps
                .federation_id_path
                .as_deref()
                .and_then(|p| AttrPath::parse(p).ok()),
        };
        let page_size = caps
            .max_results
            .filter(|m| *m > 0)
            .map_or(self.page_size, |m| self.page_size.min(m));
        let mut follow = self
            .follow
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *follow = Follow {
            federation,
            etag: Some(caps.etag),
            page_size,
            filter: caps.filter,
            plain: caps.plain_multi_values,
            group_name_immutable: caps.group_name_immutable,
            patch: caps.patch,
            entitlements: Some(caps.entitlements),
            roles: Some(caps.roles),
            capabilities: Some(caps.clone()),
        };
    }

    /// The capabilities the client follows, when discovered or given.
    pub fn capabilities(&self) -> Option<TargetCapabilities> {
        self.follow().capabilities
    }

    /// Reads one discovery document; a refusal (404 and the like) or a body that is not JSON
    /// is `Missing`, while credentials, permissions, rate limits and server failures stay
    /// errors.
    async fn fetch_document(&self, path: &str, what: &str) -> Result<Fetched, ScimError> {
        let url = self.transport.url(path)?;
        match self
            .transport
            .send(Method::GET, url, None, None, what)
            .await
        {
            Ok(answer) => Ok(Fetched::Body(answer.body)),
            Err(ScimError::Refused { status, .. }) => {
                Ok(Fetched::Missing(format!("/{path} answered {status}")))
            }
            Err(ScimError::InvalidResponse { message, .. }) => {
                Ok(Fetched::Missing(format!("/{path}: {message}")))
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the target what it supports: the service provider config (Salesforce's plural
    /// `/ServiceProviderConfigs` first, then the singular; the other way round for generic
    /// targets), `/ResourceTypes` and `/Schemas`; fills the gaps with safe fallbacks (listed in
    /// `notes`) and follows the result ([`ScimClient::use_capabilities`]); the mode of targeted
    /// reads learned before ([`ScimClient::learned_targeted_reads`]) is learned again.
    pub async fn discover(&self) -> Result<TargetCapabilities, ScimError> {
        let (first, second) = match self.transport.dialect {
            Dialect::Salesforce => ("ServiceProviderConfigs", "ServiceProviderConfig"),
            Dialect::Generic => ("ServiceProviderConfig", "ServiceProviderConfigs"),
        };
        let what = "reading the service provider config";
        let spc = match self.fetch_document(first, what).await? {
            Fetched::Missing(why) => match self.fetch_document(second, what).await? {
                Fetched::Missing(also) => Fetched::Missing(format!("{why}, {also}")),
                found => found,
            },
            found => found,
        };
        let types = self
            .fetch_document("ResourceTypes", "reading the resource types")
            .await?;
        let schemas = self
            .fetch_document("Schemas", "reading the schemas")
            .await?;
        // Salesforce serves every discovery document: nothing under the base URL at all is a
        // wrong base URL, said now rather than as a 404 on every read later. (A generic target
        // may serve none of them; it gets the fallbacks.)
        let answered_404 =
            |f: &Fetched| matches!(f, Fetched::Missing(why) if why.contains("answered 404"));
        if self.transport.dialect == Dialect::Salesforce
            && [&spc, &types, &schemas].into_iter().all(answered_404)
        {
            let base = self.transport.url("")?;
            return Err(ScimError::NotScim {
                base_url: crate::token::shown_url(&base),
                hint: format!(
                    "Salesforce serves SCIM at https://{{My Domain}}/services/scim/v2 (here: {})",
                    salesforce_base(&base)
                ),
            });
        }
        let caps = capabilities(
            self.transport.dialect,
            &self.placement,
            &spc,
            &types,
            &schemas,
        );
        for note in &caps.notes {
            info!(note = note.as_str(), "Discovery.");
        }
        self.use_capabilities(&caps);
        // What the target showed of its filters before is learned again from its answers.
        self.targeted
            .store(TargetedReads::Or.code(), Ordering::Relaxed);
        Ok(caps)
    }

    /// The dialect the client speaks.
    pub fn dialect(&self) -> Dialect {
        self.transport.dialect
    }

    /// Requests, retries, rate limiting, tokens and the last reported API usage.
    pub fn stats(&self) -> ClientStats {
        self.transport.stats()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Answer, ScimError> {
        self.call_tries(method, path, body, what, u32::MAX).await
    }

    /// [`ScimClient::call`] with at most `tries` tries (capped by the configured attempts).
    async fn call_tries(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
        tries: u32,
    ) -> Result<Answer, ScimError> {
        let url = self.transport.url(path)?;
        let etags = self.follow().etag != Some(false);
        let if_match = if etags && (method == Method::PATCH || method == Method::PUT) {
            self.etag(path)
        } else {
            None
        };
        let answer = match self
            .transport
            .send_tries(
                method.clone(),
                url.clone(),
                body,
                if_match.as_deref(),
                what,
                tries,
            )
            .await
        {
            // Changed elsewhere since we saw it: our PATCH operations are relative (per
            // attribute, per member), so read the resource's current ETag and apply them once
            // more. A second 412 is the error.
            Err(ScimError::Refused { status: 412, .. }) if if_match.is_some() => {
                debug!(what, "412: reading the current ETag and trying once more.");
                self.etags
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(path);
                let fresh = self
                    .transport
                    .send(Method::GET, url.clone(), None, None, what)
                    .await?;
                self.transport
                    .send(method, url, body, fresh.etag.as_deref(), what)
                    .await?
            }
            other => other?,
        };
        if let Some(tag) = &answer.etag {
            self.etags
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(path.to_owned(), tag.clone());
        }
        Ok(answer)
    }

    /// Changes the resource at `path` by PUT, for targets without PATCH: reads it, applies the
    /// PATCH body `patch` to the document read ([`put::apply_patch`]: every attribute it does
    /// not change is sent back as read), drops `id`, `meta` and the attributes the target's
    /// schema marks read-only (`group`: the Group schema's, else the User schema's), and sends
    /// it whole with `If-Match` and the ETag just read when ETags are in use. A 412 (changed in
    /// between) reads it again and tries once more. A change that cannot be applied to the
    /// document is refused before sending (status 0).
    async fn put_patched(
        &self,
        path: &str,
        patch: &Value,
        group: bool,
        what: &str,
        tries: u32,
    ) -> Result<Answer, ScimError> {
        let url = self.transport.url(path)?;
        let follow = self.follow();
        let read_only: BTreeSet<String> = follow
            .capabilities
            .map(|c| {
                if group {
                    c.group_read_only
                } else {
                    c.user_read_only
                }
            })
            .unwrap_or_default();
        let etags = follow.etag != Some(false);
        let mut first = true;
        loop {
            let current = self
                .transport
                .send(Method::GET, url.clone(), None, None, what)
                .await?;
            let mut doc = current.body;
            if !doc.is_object() {
                return Err(ScimError::InvalidResponse {
                    what: what.to_owned(),
                    message: format!("the resource read is {}, not an object", kind_of(&doc)),
                });
            }
            put::apply_patch(&mut doc, patch).map_err(|detail| ScimError::Refused {
                what: what.to_owned(),
                status: 0,
                code: None,
                detail,
            })?;
            put::strip_read_only(&mut doc, &read_only);
            let if_match = current.etag.as_deref().filter(|_| etags);
            match self
                .transport
                .send_tries(Method::PUT, url.clone(), Some(&doc), if_match, what, tries)
                .await
            {
                Err(ScimError::Refused { status: 412, .. }) if first && if_match.is_some() => {
                    debug!(
                        what,
                        "412: reading the resource again and trying once more."
                    );
                    first = false;
                }
                Err(e) => return Err(e),
                Ok(answer) => {
                    if let Some(tag) = &answer.etag {
                        self.etags
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(path.to_owned(), tag.clone());
                    }
                    return Ok(answer);
                }
            }
        }
    }

    /// Sends the PATCH body `patch` for the resource at `path`: as a PATCH, or as a PUT of the
    /// whole resource ([`ScimClient::put_patched`]) when the target does not support PATCH.
    async fn change(
        &self,
        path: &str,
        patch: &Value,
        group: bool,
        what: &str,
        tries: u32,
    ) -> Result<Answer, ScimError> {
        if self.follow().patch {
            self.call_tries(Method::PATCH, path, Some(patch), what, tries)
                .await
        } else {
            self.put_patched(path, patch, group, what, tries).await
        }
    }

    fn etag(&self, path: &str) -> Option<String> {
        self.etags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    /// One try of a list request with `count` (the token fetched first, with its retries).
    async fn probe(&self, url: url::Url, what: &str) -> Result<Answer, ScimError> {
        self.transport.ensure_token(what).await?;
        self.transport
            .send_tries(Method::GET, url, None, None, what, 1)
            .await
    }

    /// One page of a list endpoint from `start`, with `count` when the target takes it: the
    /// first request with `count` (generic targets) is tried once, and a failure (5xx, 400) is
    /// tried again without it, after which `count` is never sent again (paging goes by
    /// `startIndex`); other failures of that first request are retried as usual, with `count`.
    async fn page(
        &self,
        path: &str,
        filter: Option<&str>,
        start: usize,
        page_size: u32,
        what: &str,
    ) -> Result<Value, ScimError> {
        let url = |count: bool| -> Result<url::Url, ScimError> {
            let mut url = self.transport.url(path)?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("startIndex", &start.to_string());
                if count {
                    q.append_pair("count", &page_size.to_string());
                }
                if let Some(f) = filter {
                    q.append_pair("filter", f);
                }
            }
            Ok(url)
        };
        let what = format!("{what} (from {start})");
        match self.count.load(Ordering::Relaxed) {
            COUNT_REFUSED => Ok(self
                .transport
                .send(Method::GET, url(false)?, None, None, &what)
                .await?
                .body),
            COUNT_WORKS => Ok(self
                .transport
                .send(Method::GET, url(true)?, None, None, &what)
                .await?
                .body),
            _ => match self.probe(url(true)?, &what).await {
                Ok(answer) => {
                    self.count.store(COUNT_WORKS, Ordering::Relaxed);
                    Ok(answer.body)
                }
                Err(
                    e @ (ScimError::Server { .. }
                    | ScimError::Refused {
                        status: 400 | 422, ..
                    }),
                ) => {
                    warn!(error = %e, "The target failed on a list request with `count`; paging by startIndex alone from now on.");
                    let body = self
                        .transport
                        .send(Method::GET, url(false)?, None, None, &what)
                        .await?
                        .body;
                    self.count.store(COUNT_REFUSED, Ordering::Relaxed);
                    Ok(body)
                }
                Err(e) if e.is_retryable() => Ok(self
                    .transport
                    .send(Method::GET, url(true)?, None, None, &what)
                    .await?
                    .body),
                Err(e) => Err(e),
            },
        }
    }

    /// Every resource of a list endpoint, page by page (`startIndex`, and `count` when the
    /// target takes it), each handed to `each` as its page is read (the page is then dropped:
    /// no raw JSON outlives its page). Paging ends on `totalResults`, a short page, an empty
    /// page or a page whose ids were all seen already (a server that ignores `startIndex`);
    /// resources seen twice are handed over once. A page that is not a list answer is an
    /// error, never an empty target, and so is paging beyond [`ScimConfig::max_pages`].
    async fn list_each(
        &self,
        path: &str,
        filter: Option<&str>,
        what: &str,
        mut each: impl FnMut(&Value),
    ) -> Result<(), ScimError> {
        let mut seen: HashSet<Box<str>> = HashSet::new();
        let mut start = 1usize;
        let page_size = self.follow().page_size;
        for _ in 0..self.max_pages {
            let counted = self.count.load(Ordering::Relaxed) != COUNT_REFUSED;
            let page = self.page(path, filter, start, page_size, what).await?;
            let counted = counted && self.count.load(Ordering::Relaxed) == COUNT_WORKS;
            let end = take_page(
                &page,
                &mut Paging {
                    start: &mut start,
                    seen: &mut seen,
                    take: &mut each,
                },
                counted.then_some(page_size),
                filter.is_some(),
                what,
            )?;
            drop(page);
            if end == PageEnd::Done {
                return Ok(());
            }
        }
        Err(ScimError::InvalidResponse {
            what: what.to_owned(),
            message: format!(
                "paging did not end after {} pages ({} resources); the target's totalResults or startIndex handling is broken",
                self.max_pages,
                seen.len()
            ),
        })
    }

    /// A user read from the target, with the first email and phone taken as the work ones
    /// when the target's values carry no type.
    fn read_user(&self, v: &Value, federation: Option<&AttrPath>) -> Result<TargetUser, String> {
        let mut u = user_from_json(v, federation)?;
        if self.follow().plain
            && let Some(p) = u.phone_numbers.first_mut()
            && p.kind.is_none()
        {
            p.kind = Some("work".into());
        }
        Ok(u)
    }

    /// Every user, each read from its page as the page arrives.
    pub async fn list_users(&self) -> Result<Vec<TargetUser>, ScimError> {
        let federation = self.federation();
        let mut users = Vec::new();
        let mut index = 0usize;
        self.list_each("Users", None, "listing users", |v| {
            match self.read_user(v, federation.as_ref()) {
                Ok(u) => users.push(u),
                Err(e) => {
                    warn!(index, error = %e, "A user from the target is unreadable; left out of this run.");
                }
            }
            index += 1;
        })
        .await?;
        users.shrink_to_fit();
        Ok(users)
    }

    /// Every group with its members, each read from its page as the page arrives.
    pub async fn list_groups(&self) -> Result<Vec<TargetGroup>, ScimError> {
        let mut groups = Vec::new();
        let mut index = 0usize;
        self.list_each("Groups", None, "listing groups", |v| {
            match group_from_json(v) {
                Ok(g) => groups.push(g),
                Err(e) => {
                    warn!(index, error = %e, "A group from the target is unreadable; left out of this run.");
                }
            }
            index += 1;
        })
        .await?;
        groups.shrink_to_fit();
        Ok(groups)
    }

    /// Profiles, permission sets (`/Entitlements`) and roles (`/Roles`), each read unless the
    /// capabilities followed say the target does not serve it. A 404 on `/Roles` gives no
    /// roles (with a warning), not an error.
    pub async fn catalogue(&self) -> Result<Catalogue, ScimError> {
        let follow = self.follow();
        let mut catalogue = Catalogue::default();
        if follow.entitlements != Some(false) {
            self.list_each("Entitlements", None, "listing entitlements", |v| {
                match entitlement_from_json(v) {
                    Some(CatalogueItem::Profile(p)) => catalogue.profiles.push(p),
                    Some(CatalogueItem::PermissionSet(p)) => catalogue.permission_sets.push(p),
                    None => warn!("An entitlement without an id was left out."),
                }
            })
            .await?;
        }
        if follow.roles != Some(false) {
            let mut roles = Vec::new();
            catalogue.roles = match self
                .list_each("Roles", None, "listing roles", |v| {
                    roles.extend(role_from_json(v));
                })
                .await
            {
                Ok(()) => roles,
                Err(ScimError::Refused { status: 404, .. }) => {
                    warn!("The target answered 404 to /Roles: no roles are read.");
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
        }
        Ok(catalogue)
    }

    pub async fn get_user(&self, id: &TargetUserId) -> Result<TargetUser, ScimError> {
        let what = format!("reading user {id}");
        let body = self
            .call(
                Method::GET,
                &resource_path("Users", id.as_str())?,
                None,
                &what,
            )
            .await?
            .body;
        user_from_json(&body, self.federation().as_ref())
            .map_err(|message| ScimError::InvalidResponse { what, message })
    }

    /// Users matching `attribute eq "value"` (quotes and backslashes escaped).
    pub async fn filter_users(
        &self,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<TargetUser>, ScimError> {
        let filter = format!("{attribute} eq {}", quote(value));
        let federation = self.federation();
        // Never trust the filter: a server may ignore it (and answer everyone) or match
        // differently; keep only what matches here.
        let mut found = Vec::new();
        self.list_each(
            "Users",
            Some(&filter),
            &format!("finding users by {attribute}"),
            |v| {
                found.extend(self.read_user(v, federation.as_ref()).ok().filter(
                    |u| match attribute {
                        "userName" => u.user_name.eq_ignore_ascii_case(value),
                        "externalId" => u.external_id.as_deref() == Some(value),
                        _ => true,
                    },
                ));
            },
        )
        .await?;
        Ok(found)
    }

    /// Adds or removes members in batches of `member_batch_size`, one PATCH each (or one PUT of
    /// the group, read first, when the target does not support PATCH).
    ///
    /// A generic removal is tried once first: some servers (Canaille 0.3.6) cannot hold a
    /// group without members and fail with a 500 when asked to remove its last ones. When the
    /// group, read after such a 500, holds only members this removal takes out, the failure is
    /// reported as a refusal saying so (the engine holds it) instead of being retried; any
    /// other failure is retried as usual.
    async fn change_members(
        &self,
        group: &TargetGroupId,
        members: &[TargetUserId],
        add: bool,
    ) -> Result<(), ScimError> {
        let (verb, prep) = if add {
            ("adding", "to")
        } else {
            ("removing", "from")
        };
        for batch in members.chunks(self.member_batch_size) {
            let body = match self.transport.dialect {
                Dialect::Salesforce => members_body(batch, add, Dialect::Salesforce),
                Dialect::Generic if add => {
                    let adds = batch
                        .iter()
                        .map(|m| {
                            let reference = self
                                .transport
                                .url(&format!("Users/{m}"))
                                .map(String::from)?;
                            Ok((m.to_string(), reference))
                        })
                        .collect::<Result<Vec<_>, ScimError>>()?;
                    generic_members_body(&adds, &[])
                }
                Dialect::Generic => {
                    let listed = self
                        .member_values
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let removes: Vec<String> = batch
                        .iter()
                        .map(|m| {
                            listed
                                .get(m.as_str())
                                .cloned()
                                .unwrap_or_else(|| m.to_string())
                        })
                        .collect();
                    generic_members_body(&[], &removes)
                }
            };
            let what = format!("{verb} {} member(s) {prep} group {group}", batch.len());
            let path = resource_path("Groups", group.as_str())?;
            if add || self.transport.dialect == Dialect::Salesforce {
                self.change(&path, &body, true, &what, u32::MAX).await?;
                continue;
            }
            match self.change(&path, &body, true, &what, 1).await {
                Ok(_) => {}
                Err(ScimError::Server {
                    status: 500,
                    detail,
                    ..
                }) if self.only_members(&path, batch, &what).await? => {
                    return Err(ScimError::Refused {
                        what,
                        status: 500,
                        code: Some("emptyGroup".into()),
                        detail: format!(
                            "{detail}; this removal would leave the group without members, which this SCIM server fails on (some, like Canaille, cannot hold an empty group); the member(s) stay until another member is added to the group, or remove them (or the group) on the target"
                        ),
                    });
                }
                Err(e) if e.is_retryable() => {
                    self.change(&path, &body, true, &what, u32::MAX).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether the group at `path` has members and every one of them is in `members` (by id,
    /// or by the value the target lists them by), read now.
    async fn only_members(
        &self,
        path: &str,
        members: &[TargetUserId],
        what: &str,
    ) -> Result<bool, ScimError> {
        let current = self.call(Method::GET, path, None, what).await?.body;
        let listed: Vec<String> = {
            let values = self
                .member_values
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            members
                .iter()
                .flat_map(|m| {
                    let id = m.to_string();
                    let shown = values.get(m.as_str()).cloned();
                    std::iter::once(id).chain(shown)
                })
                .collect()
        };
        let now: Vec<&str> = current
            .get("members")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.get("value").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        Ok(!now.is_empty()
            && now
                .iter()
                .all(|v| listed.iter().any(|l| l.eq_ignore_ascii_case(v))))
    }

    /// Walks the connection step by step, for `scimsync check`: the token, discovery (the
    /// `service provider config` step, then the declared extensions and discovery's notes),
    /// one page of users, the catalogue. The client follows what discovery found afterwards
    /// ([`ScimClient::capabilities`]).
    pub async fn check(&self) -> Vec<CheckStep> {
        let mut steps = Vec::new();
        let mut step = |name: &str, result: Result<String, ScimError>| {
            let ok = result.is_ok();
            steps.push(CheckStep {
                name: name.to_owned(),
                ok,
                detail: result.unwrap_or_else(|e| e.to_string()),
            });
            ok
        };
        let token = self
            .transport
            .tokens
            .get()
            .await
            .map(|_| "token obtained".to_owned());
        if !step("token", token) {
            return steps;
        }
        let caps = self.discover().await;
        let extensions = caps.as_ref().ok().map(|c| {
            if c.user_extensions.is_empty() {
                "no user extension declared".to_owned()
            } else {
                let list: Vec<&str> = c.user_extensions.iter().map(String::as_str).collect();
                format!("user extensions: {}", list.join(", "))
            }
        });
        let notes = caps
            .as_ref()
            .ok()
            .map(|c| c.notes.clone())
            .unwrap_or_default();
        let spc = caps.map(|c| {
            format!(
                "patch {}, filter {}, etag {}, sort {}, maxResults {}",
                c.patch,
                c.filter,
                c.etag,
                c.sort,
                c.max_results
                    .map_or_else(|| "not stated".to_owned(), |m| m.to_string())
            )
        });
        if !step("service provider config", spc) {
            return steps;
        }
        if let Some(extensions) = extensions {
            step("schemas", Ok(extensions));
        }
        if !notes.is_empty() {
            step("discovery", Ok(notes.join(" ")));
        }
        let users = self
            .page("Users", None, 1, 1, "reading one page of users")
            .await
            .map(|body| format!("{} users on the target", body["totalResults"]));
        if !step("users", users) {
            return steps;
        }
        let catalogue = self.catalogue().await.map(|c| {
            format!(
                "{} profiles, {} permission sets, {} roles",
                c.profiles.len(),
                c.permission_sets.len(),
                c.roles.len()
            )
        });
        step("catalogue", catalogue);
        steps
    }
}

impl ScimClient {
    /// Members listed by a value that is not a user id but a user's userName (some servers
    /// list members so) are read as that user's id; the listed value is kept for removals.
    fn members_by_id(&self, users: &[TargetUser], groups: &mut [TargetGroup]) {
        let ids: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
        // Servers that list members by id (most) need no table of userNames.
        if groups
            .iter()
            .all(|g| g.members.iter().all(|m| ids.contains(m.as_str())))
        {
            return;
        }
        let by_name: HashMap<String, &TargetUserId> = users
            .iter()
            .map(|u| (u.user_name.as_str().to_lowercase(), &u.id))
            .collect();
        let mut listed = self
            .member_values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in groups {
            for m in &mut g.members {
                if ids.contains(m.as_str()) {
                    continue;
                }
                if let Some(id) = by_name.get(&m.as_str().to_lowercase()) {
                    listed.insert(id.to_string(), m.to_string());
                    *m = (*id).clone();
                }
            }
        }
    }
}

/// Where paging through a list endpoint stands.
pub(crate) struct Paging<'a> {
    /// The `startIndex` of the next page.
    pub start: &'a mut usize,
    /// Ids of the resources taken so far.
    pub seen: &'a mut HashSet<Box<str>>,
    /// Takes each resource not seen before, as its page is read.
    pub take: &'a mut dyn FnMut(&Value),
}

/// Whether paging goes on after a page.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PageEnd {
    More,
    Done,
}

/// Takes one list answer (`page`) into `paging`: its new resources handed to `take`, `start`
/// advanced.
/// `counted` is the page size asked for when the target takes `count`; `filtered` says a
/// filter was sent (such answers are one page). A page that is not a list answer is an error.
pub(crate) fn take_page(
    page: &Value,
    paging: &mut Paging<'_>,
    counted: Option<u32>,
    filtered: bool,
    what: &str,
) -> Result<PageEnd, ScimError> {
    let start = *paging.start;
    let invalid = |message: String| ScimError::InvalidResponse {
        what: format!("{what} (from {start})"),
        message,
    };
    if !page.is_object() {
        return Err(invalid(format!(
            "a list answer must be a JSON object, not {}",
            kind_of(page)
        )));
    }
    let total = match page.get("totalResults") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            t.as_u64()
                .or_else(|| t.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| invalid(format!("totalResults is {t}, not a number")))?
                as usize,
        ),
    };
    let resources = match page.get("Resources") {
        Some(Value::Array(a)) => a.as_slice(),
        None | Some(Value::Null) if total.is_none_or(|t| t < start) => &[],
        None | Some(Value::Null) => {
            return Err(invalid(format!(
                "Resources is missing although totalResults is {}",
                total.unwrap_or_default()
            )));
        }
        Some(other) => {
            return Err(invalid(format!(
                "Resources is {}, not a list",
                kind_of(other)
            )));
        }
    };
    let got = resources.len();
    let mut fresh = 0usize;
    for r in resources {
        match r.get("id").and_then(Value::as_str) {
            Some(id) if !paging.seen.insert(Box::from(id)) => {}
            _ => {
                fresh += 1;
                (paging.take)(r);
            }
        }
    }
    if got > 0 && fresh == 0 {
        warn!(
            what,
            start, "The target answered a page of resources already seen; paging stops."
        );
        return Ok(PageEnd::Done);
    }
    *paging.start = start.saturating_add(got);
    // A short page ends paging only without totalResults: servers may serve fewer
    // than `count` while more remain (RFC 7644 §3.4.2.4).
    let short = counted.is_some_and(|size| got < size as usize);
    let done = got == 0
        || match total {
            Some(t) => *paging.start > t,
            None => short || filtered,
        };
    Ok(if done { PageEnd::Done } else { PageEnd::More })
}

/// What kind of JSON value `v` is, for messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Target for ScimClient {
    type Error = ScimError;

    fn learned_reads(&self) -> Option<&'static str> {
        self.learned_targeted_reads().map(TargetedReads::as_str)
    }

    fn follow_learned_reads(&self, learned: &str) {
        match TargetedReads::parse(learned) {
            Some(mode) => self.follow_targeted_reads(mode),
            None => warn!(
                learned,
                "A learned mode of targeted reads this version does not know is ignored."
            ),
        }
    }

    fn api_usage(&self) -> ApiUsage {
        let stats = self.stats();
        ApiUsage {
            requests: stats.requests,
            reported: stats.api_usage,
        }
    }

    async fn read(&self, scope: ReadScope) -> Result<TargetSnapshot, ScimError> {
        let users = self.list_users().await?;
        let catalogue = if scope.catalogue {
            self.catalogue().await?
        } else {
            Catalogue::default()
        };
        let groups = if scope.groups {
            let mut groups = self.list_groups().await?;
            self.members_by_id(&users, &mut groups);
            groups
        } else {
            Vec::new()
        };
        info!(users = users.len(), groups = groups.len(), "Target read.");
        Ok(TargetSnapshot {
            users,
            groups,
            catalogue,
            capabilities: self.capabilities(),
        })
    }

    async fn discover(&self) -> Result<TargetCapabilities, ScimError> {
        ScimClient::discover(self).await
    }

    async fn read_some(&self, lookup: &Lookup) -> Result<TargetSnapshot, ScimError> {
        ScimClient::read_some(self, lookup).await
    }

    fn use_capabilities(&self, caps: &TargetCapabilities) {
        ScimClient::use_capabilities(self, caps);
    }

    fn count_writes<F>(
        &self,
        writes: std::sync::Arc<std::sync::atomic::AtomicU32>,
        work: F,
    ) -> impl std::future::Future<Output = F::Output> + Send
    where
        F: std::future::Future + Send,
    {
        crate::transport::counting_writes(writes, work)
    }

    async fn create_user(&self, user: &UserAttributes) -> Result<TargetUser, ScimError> {
        let what = format!("creating user {}", user.user_name);
        let federation = self.federation();
        let mut body = create_user_body(user, federation.as_ref(), self.transport.dialect);
        if self.follow().plain {
            plain_multi_values(&mut body);
        }
        let answer = self.call(Method::POST, "Users", Some(&body), &what).await?;
        self.read_user(&answer.body, federation.as_ref())
            .map_err(|message| ScimError::InvalidResponse { what, message })
    }

    async fn update_user(&self, id: &TargetUserId, changes: &UserChanges) -> Result<(), ScimError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut body = patch_user_body(changes, self.transport.dialect, self.federation().as_ref());
        if self.follow().plain {
            plain_multi_values(&mut body);
        }
        let what = format!(
            "updating user {id} ({})",
            changes.attribute_names().join(", ")
        );
        self.change(
            &resource_path("Users", id.as_str())?,
            &body,
            false,
            &what,
            u32::MAX,
        )
        .await?;
        Ok(())
    }

    async fn create_group(&self, name: &str) -> Result<TargetGroup, ScimError> {
        let what = format!("creating group {name:?}");
        let answer = self
            .call(
                Method::POST,
                "Groups",
                Some(&create_group_body(name, self.transport.dialect)),
                &what,
            )
            .await?;
        group_from_json(&answer.body)
            .map_err(|message| ScimError::InvalidResponse { what, message })
    }

    async fn rename_group(&self, id: &TargetGroupId, name: &str) -> Result<(), ScimError> {
        if self.follow().group_name_immutable {
            return Err(ScimError::Refused {
                what: format!("renaming group {id} to {name:?}"),
                status: 0,
                code: Some("mutability".into()),
                detail: "the target's Group schema declares displayName immutable (RFC 7643 §7), so it cannot be renamed over SCIM; rename it on the target, or recreate it there with the new name".into(),
            });
        }
        let body = rename_body(name, self.transport.dialect);
        self.change(
            &resource_path("Groups", id.as_str())?,
            &body,
            true,
            &format!("renaming group {id} to {name:?}"),
            u32::MAX,
        )
        .await?;
        Ok(())
    }

    async fn add_members(
        &self,
        group: &TargetGroupId,
        members: &[TargetUserId],
    ) -> Result<(), ScimError> {
        self.change_members(group, members, true).await
    }

    async fn remove_members(
        &self,
        group: &TargetGroupId,
        members: &[TargetUserId],
    ) -> Result<(), ScimError> {
        self.change_members(group, members, false).await
    }
}

/// Characters kept as they are in a path segment: RFC 3986's unreserved ones.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `{collection}/{id}` with the id percent-encoded as one path segment: an id the target
/// returned (`../Groups/x`, `a?b`, `a/b`) cannot reach another resource. `.` and `..` (path
/// steps however they are encoded) are refused.
fn resource_path(collection: &str, id: &str) -> Result<String, ScimError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(ScimError::InvalidResponse {
            what: format!("an id of {collection}"),
            message: format!("{id:?} cannot name a resource in a URL path"),
        });
    }
    let encoded = percent_encoding::utf8_percent_encode(id, SEGMENT);
    Ok(format!("{collection}/{encoded}"))
}
