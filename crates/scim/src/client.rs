//! The SCIM client: resources over the transport, and the core's `Target` port.

use crate::config::{Dialect, FederationIdPlacement, ScimConfig};
use crate::discovery::{Fetched, capabilities};
use crate::error::ScimError;
use crate::resources::{
    AttrPath, CatalogueItem, create_group_body, create_user_body, entitlement_from_json,
    group_from_json, members_body, patch_user_body, quote, rename_body, role_from_json,
    user_from_json,
};
use crate::transport::{Answer, ClientStats, Transport};
use reqwest::Method;
use scimsync_core::plan::{UserAttributes, UserChanges};
use scimsync_core::ports::{ReadScope, Target};
use scimsync_core::target::{
    Catalogue, TargetCapabilities, TargetGroup, TargetSnapshot, TargetUser,
};
use scimsync_core::{TargetGroupId, TargetUserId};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use tracing::{debug, info, warn};

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
    /// Where the Federation ID goes, as configured.
    placement: FederationIdPlacement,
    /// ETags seen, by resource path (generic targets that advertise ETags).
    etags: Mutex<HashMap<String, String>>,
    /// What the client follows: the configuration's assumptions until capabilities are used.
    follow: RwLock<Follow>,
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

impl ScimClient {
    /// A client for the target `config` describes; refuses a Federation ID path that is not
    /// a SCIM attribute path or that names `userName`/`externalId`.
    pub fn new(config: ScimConfig) -> Result<Self, ScimError> {
        let page_size = config.page_size.clamp(1, 1000);
        let member_batch_size = config.member_batch_size.max(1);
        let placement = config.federation_id.clone();
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
            placement,
            etags: Mutex::new(HashMap::new()),
            follow: RwLock::new(Follow {
                federation,
                etag: None,
                page_size,
                filter: true,
                entitlements: None,
                roles: None,
                capabilities: None,
            }),
        })
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
    /// `max_results`, lookups by listing when filters are not supported, and `/Entitlements` and
    /// `/Roles` read only when declared.
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
    /// `notes`) and follows the result ([`ScimClient::use_capabilities`]).
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
        Ok(caps)
    }

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
        let url = self.transport.url(path)?;
        let etags = self.follow().etag != Some(false);
        let if_match = if etags && (method == Method::PATCH || method == Method::PUT) {
            self.etag(path)
        } else {
            None
        };
        let answer = match self
            .transport
            .send(method.clone(), url.clone(), body, if_match.as_deref(), what)
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

    fn etag(&self, path: &str) -> Option<String> {
        self.etags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    /// Every resource of a list endpoint, page by page (`startIndex`/`count`).
    async fn list_all(
        &self,
        path: &str,
        filter: Option<&str>,
        what: &str,
    ) -> Result<Vec<Value>, ScimError> {
        let mut out = Vec::new();
        let mut start = 1usize;
        let page_size = self.follow().page_size;
        loop {
            let mut url = self.transport.url(path)?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("startIndex", &start.to_string());
                q.append_pair("count", &page_size.to_string());
                if let Some(f) = filter {
                    q.append_pair("filter", f);
                }
            }
            let page = self
                .transport
                .send(
                    Method::GET,
                    url,
                    None,
                    None,
                    &format!("{what} (from {start})"),
                )
                .await?
                .body;
            let resources = page
                .get("Resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = page
                .get("totalResults")
                .and_then(Value::as_u64)
                .map(|t| t as usize);
            let got = resources.len();
            out.extend(resources);
            start += got;
            let done =
                got == 0 || total.is_none_or(|t| start > t) || filter.is_some() && total.is_none();
            if done {
                return Ok(out);
            }
        }
    }

    /// Every user.
    pub async fn list_users(&self) -> Result<Vec<TargetUser>, ScimError> {
        let raw = self.list_all("Users", None, "listing users").await?;
        let federation = self.federation();
        let mut users = Vec::with_capacity(raw.len());
        for (i, v) in raw.iter().enumerate() {
            match user_from_json(v, federation.as_ref()) {
                Ok(u) => users.push(u),
                Err(e) => {
                    warn!(index = i, error = %e, "A user from the target is unreadable; left out of this run.")
                }
            }
        }
        Ok(users)
    }

    /// Every group with its members.
    pub async fn list_groups(&self) -> Result<Vec<TargetGroup>, ScimError> {
        let raw = self.list_all("Groups", None, "listing groups").await?;
        let mut groups = Vec::with_capacity(raw.len());
        for (i, v) in raw.iter().enumerate() {
            match group_from_json(v) {
                Ok(g) => groups.push(g),
                Err(e) => {
                    warn!(index = i, error = %e, "A group from the target is unreadable; left out of this run.")
                }
            }
        }
        Ok(groups)
    }

    /// Profiles, permission sets (`/Entitlements`) and roles (`/Roles`), each read unless the
    /// capabilities followed say the target does not serve it. A 404 on `/Roles` gives no
    /// roles (with a warning), not an error.
    pub async fn catalogue(&self) -> Result<Catalogue, ScimError> {
        let follow = self.follow();
        let mut catalogue = Catalogue::default();
        if follow.entitlements != Some(false) {
            for v in self
                .list_all("Entitlements", None, "listing entitlements")
                .await?
            {
                match entitlement_from_json(&v) {
                    Some(CatalogueItem::Profile(p)) => catalogue.profiles.push(p),
                    Some(CatalogueItem::PermissionSet(p)) => catalogue.permission_sets.push(p),
                    None => warn!("An entitlement without an id was left out."),
                }
            }
        }
        if follow.roles != Some(false) {
            catalogue.roles = match self.list_all("Roles", None, "listing roles").await {
                Ok(raw) => raw.iter().filter_map(role_from_json).collect(),
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
        let raw = self
            .list_all(
                "Users",
                Some(&filter),
                &format!("finding users by {attribute}"),
            )
            .await?;
        let federation = self.federation();
        Ok(raw
            .iter()
            .filter_map(|v| user_from_json(v, federation.as_ref()).ok())
            .collect())
    }

    /// Adds or removes members in batches of `member_batch_size`, one PATCH each.
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
            let body = members_body(batch, add, self.transport.dialect);
            let what = format!("{verb} {} member(s) {prep} group {group}", batch.len());
            self.call(
                Method::PATCH,
                &resource_path("Groups", group.as_str())?,
                Some(&body),
                &what,
            )
            .await?;
        }
        Ok(())
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
        let mut url = match self.transport.url("Users") {
            Ok(u) => u,
            Err(e) => {
                step("users", Err(e));
                return steps;
            }
        };
        url.query_pairs_mut()
            .append_pair("startIndex", "1")
            .append_pair("count", "1");
        let users = self
            .transport
            .send(Method::GET, url, None, None, "reading one page of users")
            .await
            .map(|a| format!("{} users on the target", a.body["totalResults"]));
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

impl Target for ScimClient {
    type Error = ScimError;

    async fn read(&self, scope: ReadScope) -> Result<TargetSnapshot, ScimError> {
        let users = self.list_users().await?;
        let catalogue = if scope.catalogue {
            self.catalogue().await?
        } else {
            Catalogue::default()
        };
        let groups = if scope.groups {
            self.list_groups().await?
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

    fn use_capabilities(&self, caps: &TargetCapabilities) {
        ScimClient::use_capabilities(self, caps);
    }

    async fn find_user(
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

    async fn create_user(&self, user: &UserAttributes) -> Result<TargetUser, ScimError> {
        let what = format!("creating user {}", user.user_name);
        let federation = self.federation();
        let body = create_user_body(user, federation.as_ref());
        let answer = self.call(Method::POST, "Users", Some(&body), &what).await?;
        user_from_json(&answer.body, federation.as_ref())
            .map_err(|message| ScimError::InvalidResponse { what, message })
    }

    async fn update_user(&self, id: &TargetUserId, changes: &UserChanges) -> Result<(), ScimError> {
        if changes.is_empty() {
            return Ok(());
        }
        let body = patch_user_body(changes, self.transport.dialect, self.federation().as_ref());
        let what = format!(
            "updating user {id} ({})",
            changes.attribute_names().join(", ")
        );
        self.call(
            Method::PATCH,
            &resource_path("Users", id.as_str())?,
            Some(&body),
            &what,
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
                Some(&create_group_body(name)),
                &what,
            )
            .await?;
        group_from_json(&answer.body)
            .map_err(|message| ScimError::InvalidResponse { what, message })
    }

    async fn rename_group(&self, id: &TargetGroupId, name: &str) -> Result<(), ScimError> {
        let body = rename_body(name, self.transport.dialect);
        self.call(
            Method::PATCH,
            &resource_path("Groups", id.as_str())?,
            Some(&body),
            &format!("renaming group {id} to {name:?}"),
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
