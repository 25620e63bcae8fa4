//! The SCIM client: resources over the transport, and the core's `Target` port.

use crate::config::{Dialect, ScimConfig};
use crate::error::ScimError;
use crate::resources::{
    CatalogueItem, create_group_body, create_user_body, entitlement_from_json, group_from_json,
    members_body, patch_user_body, quote, rename_body, role_from_json, user_from_json,
};
use crate::transport::{Answer, ClientStats, Transport};
use reqwest::Method;
use scimsync_core::plan::{UserAttributes, UserChanges};
use scimsync_core::ports::Target;
use scimsync_core::target::{Catalogue, TargetGroup, TargetSnapshot, TargetUser};
use scimsync_core::{TargetGroupId, TargetUserId};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
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
    page_size: u32,
    member_batch_size: usize,
    /// ETags seen, by resource path (generic targets that advertise ETags).
    etags: Mutex<HashMap<String, String>>,
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
    pub fn new(config: ScimConfig) -> Result<Self, ScimError> {
        let page_size = config.page_size.clamp(1, 1000);
        let member_batch_size = config.member_batch_size.max(1);
        Ok(Self {
            transport: Transport::new(config)?,
            page_size,
            member_batch_size,
            etags: Mutex::new(HashMap::new()),
        })
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
        let if_match = if method == Method::PATCH || method == Method::PUT {
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
        loop {
            let mut url = self.transport.url(path)?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("startIndex", &start.to_string());
                q.append_pair("count", &self.page_size.to_string());
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
        let mut users = Vec::with_capacity(raw.len());
        for (i, v) in raw.iter().enumerate() {
            match user_from_json(v) {
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

    /// Profiles, permission sets (`/Entitlements`) and roles (`/Roles`).
    pub async fn catalogue(&self) -> Result<Catalogue, ScimError> {
        let mut catalogue = Catalogue::default();
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
        catalogue.roles = self
            .list_all("Roles", None, "listing roles")
            .await?
            .iter()
            .filter_map(role_from_json)
            .collect();
        Ok(catalogue)
    }

    pub async fn get_user(&self, id: &TargetUserId) -> Result<TargetUser, ScimError> {
        let what = format!("reading user {id}");
        let body = self
            .call(Method::GET, &format!("Users/{id}"), None, &what)
            .await?
            .body;
        user_from_json(&body).map_err(|message| ScimError::InvalidResponse { what, message })
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
        Ok(raw.iter().filter_map(|v| user_from_json(v).ok()).collect())
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
                &format!("Groups/{group}"),
                Some(&body),
                &what,
            )
            .await?;
        }
        Ok(())
    }

    /// Walks the connection step by step, for `scimsync check`.
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
        let spc_path = match self.transport.dialect {
            Dialect::Salesforce => "ServiceProviderConfigs",
            Dialect::Generic => "ServiceProviderConfig",
        };
        let spc = self
            .call(
                Method::GET,
                spc_path,
                None,
                "reading the service provider config",
            )
            .await;
        let spc = spc.map(|a| {
            format!(
                "patch {}, filter {}, etag {}",
                a.body["patch"]["supported"],
                a.body["filter"]["supported"],
                a.body["etag"]["supported"]
            )
        });
        if !step("service provider config", spc) {
            return steps;
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

    // Placeholder until discovery lands: nothing declared is known.
    async fn discover(&self) -> Result<scimsync_core::target::TargetCapabilities, ScimError> {
        Ok(scimsync_core::target::TargetCapabilities {
            patch: true,
            filter: true,
            entitlements: true,
            roles: true,
            ..Default::default()
        })
    }

    fn use_capabilities(&self, _capabilities: &scimsync_core::target::TargetCapabilities) {}

    async fn read(
        &self,
        scope: scimsync_core::ports::ReadScope,
    ) -> Result<TargetSnapshot, ScimError> {
        let users = self.list_users().await?;
        let catalogue = if scope.catalogue {
            self.catalogue().await?
        } else {
            Default::default()
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
            capabilities: None,
        })
    }

    async fn find_user(
        &self,
        user_name: &str,
        external_id: &str,
    ) -> Result<Option<TargetUser>, ScimError> {
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
        let body = create_user_body(user, self.transport.dialect);
        let answer = self.call(Method::POST, "Users", Some(&body), &what).await?;
        user_from_json(&answer.body).map_err(|message| ScimError::InvalidResponse { what, message })
    }

    async fn update_user(&self, id: &TargetUserId, changes: &UserChanges) -> Result<(), ScimError> {
        if changes.is_empty() {
            return Ok(());
        }
        let body = patch_user_body(changes, self.transport.dialect);
        let what = format!(
            "updating user {id} ({})",
            changes.attribute_names().join(", ")
        );
        self.call(Method::PATCH, &format!("Users/{id}"), Some(&body), &what)
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
            &format!("Groups/{id}"),
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
