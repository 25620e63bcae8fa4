//! The emulator's state: users, groups, tokens, knobs, the request log; and the rules that
//! change them.

use super::{BurstKind, LoggedRequest, Reading, SalesforceConfig, SimCatalogue, SimMode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A user as the emulator stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimUser {
    pub id: String,
    /// Lower-cased.
    pub user_name: String,
    pub external_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub nick_name: String,
    pub title: Option<String>,
    /// The verified email, what GET shows.
    pub email: String,
    /// An email change waiting for verification.
    pub pending_email: Option<String>,
    /// Verification emails sent for this user.
    pub verification_emails: u32,
    /// `(type, number)`.
    pub phones: Vec<(String, String)>,
    pub active: bool,
    pub profile: Option<String>,
    pub permission_sets: Vec<String>,
    pub role: Option<String>,
    /// Enterprise extension attributes (employeeNumber, department, …; manager as `{value}`).
    pub enterprise: BTreeMap<String, Value>,
    pub federation_id: Option<String>,
    pub version: u64,
}

/// A public group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimGroup {
    pub id: String,
    pub display_name: String,
    pub members: Vec<String>,
    pub version: u64,
}

/// A refusal, rendered as the mode's SCIM error.
#[derive(Debug, Clone)]
pub struct SimError {
    pub status: u16,
    /// Salesforce status code (`DUPLICATE_USERNAME`, …).
    pub code: &'static str,
    pub message: String,
    /// RFC 7644 `scimType` (generic mode).
    pub scim_type: Option<&'static str>,
}

impl SimError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            scim_type: None,
        }
    }
    pub fn scim(mut self, t: &'static str) -> Self {
        self.scim_type = Some(t);
        self
    }
    pub fn body(&self, mode: SimMode) -> Value {
        match mode {
            SimMode::Salesforce => json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "detail": format!("{}:{};", self.code, self.message),
                "status": self.status,
            }),
            SimMode::Generic => {
                let mut v = json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "detail": self.message,
                    "status": self.status.to_string(),
                });
                if let Some(t) = self.scim_type {
                    v["scimType"] = json!(t);
                }
                v
            }
        }
    }
}

/// A token bucket for the enforced requests-per-second limit.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rps: u32) -> Self {
        let rate = f64::from(rps.max(1));
        Self {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default)]
pub struct KnobState {
    pub latency: Duration,
    pub fail_next: Option<(u32, u16)>,
    pub burst: Option<(u32, u64, BurstKind)>,
    pub rps: Option<Bucket>,
    pub drop_next: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    pub kind: super::ClientKind,
    pub valid: bool,
}

#[derive(Debug)]
pub struct State {
    pub mode: SimMode,
    pub catalogue: SimCatalogue,
    pub users: BTreeMap<String, SimUser>,
    pub groups: BTreeMap<String, SimGroup>,
    pub tokens: HashMap<String, TokenInfo>,
    pub tokens_issued: u64,
    pub next_id: u64,
    pub knobs: KnobState,
    pub log: Vec<LoggedRequest>,
    pub verification_emails: u64,
    pub rate_rejections: Vec<Duration>,
    pub api_used: u64,
    pub allow_group_creation: bool,
    pub reading: Reading,
}

/// Fixed 15-character Salesforce id with its 3-character prefix and a counter.
fn sf_id(prefix: &str, n: u64) -> String {
    format!("{prefix}5g{n:010}AAK")
}

pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(|c| c.is_whitespace() || c == ',')
        && !domain.contains('@')
}

impl State {
    pub fn new(config: &SalesforceConfig) -> Self {
        Self {
            mode: config.mode,
            catalogue: config.catalogue.clone(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            tokens: HashMap::new(),
            tokens_issued: 0,
            next_id: 1,
            knobs: KnobState::default(),
            log: Vec::new(),
            verification_emails: 0,
            rate_rejections: Vec::new(),
            api_used: 0,
            allow_group_creation: config.allow_group_creation,
            reading: config.reading.clone(),
        }
    }

    fn next(&mut self, prefix: &str) -> String {
        let id = sf_id(prefix, self.next_id);
        self.next_id += 1;
        id
    }

    pub fn revoke_tokens(&mut self) {
        for t in self.tokens.values_mut() {
            t.valid = false;
        }
    }

    pub fn insert_user(&mut self, mut user: SimUser) -> String {
        if user.id.is_empty() {
            user.id = self.next("005");
        }
        user.user_name = user.user_name.to_lowercase();
        if user.nick_name.is_empty() {
            user.nick_name = user.user_name.clone();
        }
        user.version = 1;
        let id = user.id.clone();
        self.users.insert(id.clone(), user);
        id
    }

    pub fn insert_group(&mut self, name: &str) -> String {
        let id = self.next("00G");
        self.groups.insert(
            id.clone(),
            SimGroup {
                id: id.clone(),
                display_name: name.to_owned(),
                members: Vec::new(),
                version: 1,
            },
        );
        id
    }

    pub fn verify_email(&mut self, user_id: &str) -> bool {
        match self.users.get_mut(user_id) {
            Some(u) => match u.pending_email.take() {
                Some(e) => {
                    u.email = e;
                    u.version += 1;
                    true
                }
                None => false,
            },
            None => false,
        }
    }

    pub fn profile(&self, id: &str) -> Option<&super::CatalogueProfile> {
        self.catalogue.profiles.iter().find(|p| same_id(&p.id, id))
    }

    fn is_permission_set(&self, id: &str) -> bool {
        self.catalogue
            .permission_sets
            .iter()
            .any(|p| same_id(&p.id, id))
    }

    fn role_exists(&self, id: &str) -> bool {
        self.catalogue.roles.iter().any(|p| same_id(&p.id, id))
    }

    fn nick_taken(&self, nick: &str, except: &str) -> bool {
        self.users
            .values()
            .any(|u| u.id != except && u.nick_name.eq_ignore_ascii_case(nick))
    }

    fn random_nick(&mut self) -> String {
        loop {
            let n: u32 = rand::random();
            let nick = format!("User{}", 1_000_000_000 + u64::from(n % 1_000_000_000));
            if !self.nick_taken(&nick, "") {
                return nick;
            }
        }
    }

    /// Applies entitlements (a complete list) to `user`, checking the profile rules.
    fn set_entitlements(
        &self,
        user: &mut SimUser,
        list: &Value,
        creating: bool,
    ) -> Result<(), SimError> {
        let Some(items) = list.as_array() else {
            return Err(
                SimError::new(400, "INVALID_FIELD", "entitlements must be an array")
                    .scim("invalidValue"),
            );
        };
        let mut profiles = Vec::new();
        let mut sets = Vec::new();
        for item in items {
            let Some(id) = item.get("value").and_then(Value::as_str) else {
                return Err(
                    SimError::new(400, "INVALID_FIELD", "an entitlement has no value")
                        .scim("invalidValue"),
                );
            };
            if let Some(p) = self.profile(id) {
                profiles.push(p.id.clone());
            } else if self.is_permission_set(id) {
                let full = self
                    .catalogue
                    .permission_sets
                    .iter()
                    .find(|p| same_id(&p.id, id))
                    .map_or_else(|| id.to_owned(), |p| p.id.clone());
                if !sets.contains(&full) {
                    sets.push(full);
                }
            } else {
                return Err(SimError::new(
                    400,
                    "INVALID_CROSS_REFERENCE_KEY",
                    format!("invalid cross reference id: {id}"),
                )
                .scim("invalidValue"));
            }
        }
        if self.mode == SimMode::Salesforce && profiles.len() != 1 {
            return Err(SimError::new(
                409,
                "REQUIRED_FIELD_MISSING",
                "user_must_have_one_entitlement_which_must_be_a_profileid",
            ));
        }
        if let Some(new) = profiles.first() {
            if !creating
                && let Some(old) = user.profile.as_deref()
                && old != new
            {
                let old_l = self.profile(old).map(|p| p.licence.clone());
                let new_l = self.profile(new).map(|p| p.licence.clone());
                if old_l != new_l {
                    return Err(SimError::new(
                        400,
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!(
                            "The user license doesn't allow the profile: a profile of license {} can't be assigned to a user of license {}",
                            new_l.unwrap_or_default(),
                            old_l.unwrap_or_default()
                        ),
                    ));
                }
            }
            user.profile = Some(new.clone());
        }
        user.permission_sets = sets;
        Ok(())
    }

    fn set_email(
        &mut self,
        user: &mut SimUser,
        value: &str,
        creating: bool,
    ) -> Result<(), SimError> {
        if !is_email(value) {
            return Err(SimError::new(
                400,
                "INVALID_EMAIL_ADDRESS",
                format!("Email: invalid email address: {value}"),
            )
            .scim("invalidValue"));
        }
        if creating || self.mode == SimMode::Generic {
            user.email = value.to_owned();
            user.pending_email = None;
        } else if value.eq_ignore_ascii_case(&user.email) {
            user.pending_email = None;
        } else {
            // Salesforce holds the change until the owner of the new address verifies it, and
            // sends a verification email for each update carrying it.
            user.pending_email = Some(value.to_owned());
            user.verification_emails += 1;
            self.verification_emails += 1;
        }
        Ok(())
    }

    fn set_phones(&self, user: &mut SimUser, list: &Value) -> Result<(), SimError> {
        let Some(items) = list.as_array() else {
            return Err(
                SimError::new(400, "INVALID_FIELD", "phoneNumbers must be an array")
                    .scim("invalidValue"),
            );
        };
        if self.mode == SimMode::Salesforce && items.len() > 1 {
            return Err(SimError::new(
                400,
                "INVALID_FIELD",
                "You can assign only one phone number to each user",
            ));
        }
        for item in items {
            let kind = item
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("work")
                .to_ascii_lowercase();
            let number = item
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            user.phones.retain(|(k, _)| *k != kind);
            if !number.is_empty() {
                user.phones.push((kind, number));
            }
        }
        Ok(())
    }

    /// Sets one attribute from a path-less value object's key, or from a path.
    fn set_attribute(
        &mut self,
        user: &mut SimUser,
        key: &str,
        value: &Value,
        creating: bool,
    ) -> Result<(), SimError> {
        let s = || value.as_str().map(str::to_owned);
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "schemas" | "id" | "meta" | "usertype" | "photos" => {}
            "username" => {
                let name = s().unwrap_or_default();
                if !is_email(&name) {
                    return Err(SimError::new(
                        400,
                        "INVALID_NEW_USERNAME",
                        format!("Username: invalid; it must be in the form of an email address (for example, john@acme.com): {name}"),
                    )
                    .scim("invalidValue"));
                }
                let lowered = name.to_lowercase();
                if self.reading.is_taken(&lowered) {
                    return Err(taken_elsewhere());
                }
                if self
                    .users
                    .values()
                    .any(|u| u.id != user.id && u.user_name == lowered)
                {
                    return Err(SimError::new(
                        409,
                        "DUPLICATE_USERNAME",
                        format!("Duplicate Username: {lowered}"),
                    )
                    .scim("uniqueness"));
                }
                user.user_name = lowered;
            }
            "externalid" => user.external_id = s(),
            "name" => {
                if let Some(g) = value.get("givenName") {
                    user.given_name = g.as_str().map(str::to_owned);
                }
                if let Some(f) = value.get("familyName") {
                    user.family_name = f.as_str().map(str::to_owned);
                }
            }
            "name.givenname" => user.given_name = s(),
            "name.familyname" => user.family_name = s(),
            "displayname" => user.display_name = s(),
            "nickname" => {
                let nick = s().unwrap_or_default();
                if nick.is_empty() {
                    // Mapped but empty: Salesforce invents one, afresh on every update.
                    user.nick_name = self.random_nick();
                } else {
                    check_nick(&nick)?;
                    if self.nick_taken(&nick, &user.id) {
                        return Err(SimError::new(
                            409,
                            "DUPLICATE_COMMUNITY_NICKNAME",
                            format!("Nickname {nick} is already in use"),
                        )
                        .scim("uniqueness"));
                    }
                    user.nick_name = nick;
                }
            }
            "title" => user.title = s(),
            "active" => {
                user.active = value
                    .as_bool()
                    .or_else(|| value.as_str().map(|t| t.eq_ignore_ascii_case("true")))
                    .unwrap_or(user.active);
            }
            "emails" => {
                let list = value.as_array().cloned().unwrap_or_default();
                let pick = list
                    .iter()
                    .find(|e| e.get("type").and_then(Value::as_str) == Some("work"))
                    .or_else(|| {
                        list.iter()
                            .find(|e| e.get("primary").is_some_and(|p| p == true || p == "true"))
                    })
                    .or_else(|| list.first());
                if let Some(email) = pick.and_then(|e| e.get("value")).and_then(Value::as_str) {
                    self.set_email(user, email, creating)?;
                }
            }
            "emails[type eq \"work\"].value" => {
                let v = s().unwrap_or_default();
                self.set_email(user, &v, creating)?;
            }
            "phonenumbers" => self.set_phones(user, value)?,
            "phonenumbers[type eq \"work\"].value" => {
                self.set_phones(user, &json!([{ "type": "work", "value": value }]))?;
            }
            "entitlements" => self.set_entitlements(user, value, creating)?,
            "roles" => {
                let list = value.as_array().cloned().unwrap_or_default();
                if list.len() > 1 {
                    return Err(
                        SimError::new(400, "INVALID_FIELD", "a user has at most one role")
                            .scim("invalidValue"),
                    );
                }
                match list
                    .first()
                    .and_then(|r| r.get("value"))
                    .and_then(Value::as_str)
                {
                    Some(id) if self.role_exists(id) => user.role = Some(id.to_owned()),
                    Some(id) => {
                        return Err(SimError::new(
                            400,
                            "INVALID_CROSS_REFERENCE_KEY",
                            format!("invalid cross reference id: {id}"),
                        )
                        .scim("invalidValue"));
                    }
                    None => user.role = None,
                }
            }
            "preferredlanguage" | "locale" | "timezone" | "emailencodingkey" => {
                if self.mode == SimMode::Salesforce {
                    return Err(SimError::new(
                        400,
                        "INVALID_FIELD",
                        format!(
                            "{key} can't be set over SCIM; Salesforce sets it from the org's defaults"
                        ),
                    ));
                }
            }
            _ if lower == ENTERPRISE.to_ascii_lowercase() => {
                if let Some(map) = value.as_object() {
                    for (k, v) in map {
                        set_enterprise(user, k, v);
                    }
                }
            }
            _ if lower.starts_with(&format!("{}:", ENTERPRISE.to_ascii_lowercase())) => {
                let field = &key[ENTERPRISE.len() + 1..];
                set_enterprise(user, field, value);
            }
            _ if is_sf_user_ext(&lower) && !self.reading.federation_extension => {
                // The org does not declare the extension: ignored on create, refused on update.
                if !creating {
                    return Err(undeclared_federation());
                }
            }
            _ if lower == SF_USER_EXT.to_ascii_lowercase() => {
                if let Some(f) = value.get("federationIdentifier") {
                    user.federation_id = f.as_str().map(str::to_owned);
                }
            }
            _ if lower == format!("{}:federationidentifier", SF_USER_EXT.to_ascii_lowercase()) => {
                user.federation_id = s();
            }
            _ => {
                return Err(SimError::new(
                    400,
                    "INVALID_FIELD",
                    format!("No such column '{key}' on entity 'User'"),
                )
                .scim("invalidPath"));
            }
        }
        Ok(())
    }

    /// Removes (clears) an attribute by path.
    fn remove_attribute(&mut self, user: &mut SimUser, path: &str) -> Result<(), SimError> {
        let lower = path.to_ascii_lowercase();
        match lower.as_str() {
            "title" => user.title = None,
            "displayname" => user.display_name = None,
            "name.givenname" => user.given_name = None,
            "name.familyname" => user.family_name = None,
            "externalid" => user.external_id = None,
            "nickname" => user.nick_name = self.random_nick(),
            "roles" => user.role = None,
            "phonenumbers[type eq \"work\"]" | "phonenumbers[type eq \"work\"].value" => {
                user.phones.retain(|(k, _)| k != "work");
            }
            "phonenumbers" => user.phones.clear(),
            _ if lower.starts_with(&format!("{}:", ENTERPRISE.to_ascii_lowercase())) => {
                user.enterprise.remove(&path[ENTERPRISE.len() + 1..]);
            }
            _ if is_sf_user_ext(&lower) && !self.reading.federation_extension => {
                return Err(undeclared_federation());
            }
            _ if lower == format!("{}:federationidentifier", SF_USER_EXT.to_ascii_lowercase()) => {
                user.federation_id = None
            }
            "username" | "emails" | "entitlements" | "active" => {
                return Err(SimError::new(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    format!("{path} can't be removed"),
                )
                .scim("mutability"));
            }
            _ => {
                return Err(SimError::new(
                    400,
                    "INVALID_FIELD",
                    format!("No such column '{path}' on entity 'User'"),
                )
                .scim("invalidPath"));
            }
        }
        Ok(())
    }

    pub fn create_user(&mut self, body: &Value) -> Result<String, SimError> {
        let Some(obj) = body.as_object() else {
            return Err(
                SimError::new(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
                    .scim("invalidSyntax"),
            );
        };
        let mut user = SimUser {
            id: self.next("005"),
            active: true,
            ..SimUser::default()
        };
        let typed_name = obj
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if typed_name.is_empty() {
            return Err(SimError::new(
                400,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [Username]",
            )
            .scim("invalidValue"));
        }
        if self.mode == SimMode::Salesforce && !obj.contains_key("entitlements") {
            return Err(SimError::new(
                409,
                "REQUIRED_FIELD_MISSING",
                "user_must_have_one_entitlement_which_must_be_a_profileid",
            ));
        }
        for (k, v) in obj {
            self.set_attribute(&mut user, k, v, true)?;
        }
        if self.reading.last_name_required && is_blank(user.family_name.as_deref()) {
            return Err(last_name_missing());
        }
        if user.email.is_empty() {
            if self.mode == SimMode::Salesforce {
                return Err(SimError::new(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    "Required fields are missing: [Email]",
                ));
            }
            user.email = user.user_name.clone();
        }
        if user.nick_name.is_empty() {
            // Derived from the userName as typed.
            check_nick(&typed_name).map_err(|mut e| {
                e.message = format!(
                    "{}; the nickname is derived from the username when none is sent",
                    e.message
                );
                e
            })?;
            if self.nick_taken(&typed_name, &user.id) {
                return Err(SimError::new(
                    409,
                    "DUPLICATE_COMMUNITY_NICKNAME",
                    format!("Nickname {typed_name} is already in use"),
                ));
            }
            user.nick_name = typed_name;
        }
        user.version = 1;
        let id = user.id.clone();
        self.users.insert(id.clone(), user);
        Ok(id)
    }

    /// Applies PATCH operations to a user, all or nothing.
    pub fn patch_user(&mut self, id: &str, ops: &[Value]) -> Result<(), SimError> {
        let Some(mut user) = self.users.get(id).cloned() else {
            return Err(not_found("User", id));
        };
        let verification_before = self.verification_emails;
        let had_last_name = !is_blank(user.family_name.as_deref());
        let result = (|| {
            for op in ops {
                let kind = op
                    .get("op")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let path = op.get("path").and_then(Value::as_str);
                let value = op.get("value").cloned().unwrap_or(Value::Null);
                match (kind.as_str(), path) {
                    ("replace" | "add", None) => {
                        let Some(map) = value.as_object() else {
                            return Err(SimError::new(
                                400,
                                "INVALID_FIELD",
                                "a path-less operation needs an object value",
                            )
                            .scim("invalidValue"));
                        };
                        for (k, v) in map {
                            self.set_attribute(&mut user, k, v, false)?;
                        }
                    }
                    ("replace" | "add", Some(p)) => {
                        self.set_attribute(&mut user, p, &value, false)?
                    }
                    ("remove", Some(p)) => self.remove_attribute(&mut user, p)?,
                    _ => {
                        return Err(SimError::new(
                            400,
                            "INVALID_OPERATION",
                            format!("unsupported operation {kind:?}"),
                        )
                        .scim("invalidSyntax"));
                    }
                }
            }
            Ok(())
        })()
        .and_then(|()| {
            if self.reading.last_name_required
                && had_last_name
                && is_blank(user.family_name.as_deref())
            {
                Err(last_name_missing())
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                user.version += 1;
                if !user.active {
                    // Inactive users keep their memberships; nothing to do here.
                }
                self.users.insert(id.to_owned(), user);
                Ok(())
            }
            Err(e) => {
                self.verification_emails = verification_before;
                Err(e)
            }
        }
    }

    pub fn create_group(&mut self, body: &Value) -> Result<String, SimError> {
        if !self.allow_group_creation {
            return Err(SimError::new(
                405,
                "METHOD_NOT_ALLOWED",
                "Groups can't be created over SCIM in this org; create the public group in Setup",
            ));
        }
        let name = body
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        check_group_name(&name)?;
        if self
            .groups
            .values()
            .any(|g| g.display_name.eq_ignore_ascii_case(&name))
        {
            return Err(SimError::new(
                409,
                "DUPLICATE_DEVELOPER_NAME",
                format!("a group named {name} exists"),
            )
            .scim("uniqueness"));
        }
        let id = self.insert_group(&name);
        if let Some(members) = body.get("members") {
            self.change_members(&id, members, true)?;
        }
        Ok(id)
    }

    fn change_members(&mut self, group_id: &str, value: &Value, add: bool) -> Result<(), SimError> {
        let list = match (self.mode, value) {
            (SimMode::Salesforce, Value::Object(o)) => {
                o.get("members").and_then(Value::as_array).cloned()
            }
            (SimMode::Generic, Value::Array(a)) => Some(a.clone()),
            _ => None,
        };
        let Some(list) = list else {
            return Err(match self.mode {
                SimMode::Salesforce => SimError::new(
                    400,
                    "INVALID_FIELD",
                    "members must be sent as {\"members\":[{\"value\":\"005…\"}]}",
                ),
                SimMode::Generic => {
                    SimError::new(400, "INVALID_FIELD", "members must be an array of {value}")
                        .scim("invalidValue")
                }
            });
        };
        let names_member = self.reading.names_refused_member;
        // One refused member refuses the PATCH; whether the message says which one is a
        // reading.
        let refuse = |specific: SimError| {
            if names_member {
                specific
            } else {
                SimError::new(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "one or more users can't be members of groups",
                )
                .scim("invalidValue")
            }
        };
        let mut ids = Vec::new();
        for m in &list {
            let Some(uid) = m.get("value").and_then(Value::as_str) else {
                return Err(SimError::new(400, "INVALID_FIELD", "a member has no value")
                    .scim("invalidValue"));
            };
            if add {
                let Some(user) = self.users.get(uid) else {
                    return Err(refuse(
                        SimError::new(
                            400,
                            "INVALID_CROSS_REFERENCE_KEY",
                            format!("invalid cross reference id: {uid}"),
                        )
                        .scim("invalidValue"),
                    ));
                };
                if !user.active {
                    return Err(refuse(SimError::new(
                        400,
                        "INACTIVE_OWNER_OR_USER",
                        format!("user {uid} is inactive and can't be a group member"),
                    )));
                }
                if let Some(p) = user.profile.as_deref().and_then(|p| self.profile(p))
                    && !p.allows_groups
                {
                    return Err(refuse(SimError::new(
                        400,
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!(
                            "users with profile {} can't be members of groups: {uid}",
                            p.name
                        ),
                    )));
                }
            }
            ids.push(uid.to_owned());
        }
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or_else(|| not_found("Group", group_id))?;
        for uid in ids {
            if add {
                if !group.members.contains(&uid) {
                    group.members.push(uid);
                }
            } else {
                group.members.retain(|m| *m != uid);
            }
        }
        Ok(())
    }

    pub fn patch_group(&mut self, id: &str, ops: &[Value]) -> Result<(), SimError> {
        let Some(before) = self.groups.get(id).cloned() else {
            return Err(not_found("Group", id));
        };
        if let Some(max) = self.reading.max_members_per_patch {
            let changed = members_changed(ops);
            if changed > max {
                return Err(SimError::new(
                    400,
                    "LIMIT_EXCEEDED",
                    format!(
                        "a request can change at most {max} members; this one changes {changed}"
                    ),
                ));
            }
        }
        let result = (|| {
            for op in ops {
                let kind = op
                    .get("op")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let path = op.get("path").and_then(Value::as_str);
                let value = op.get("value").cloned().unwrap_or(Value::Null);
                match (kind.as_str(), path) {
                    ("replace", None) => {
                        if let Some(name) = value.get("displayName").and_then(Value::as_str) {
                            self.rename_group(id, name)?;
                        }
                    }
                    ("replace", Some(p)) if p.eq_ignore_ascii_case("displayName") => {
                        self.rename_group(id, value.as_str().unwrap_or_default())?;
                    }
                    ("add", Some(p)) if p.eq_ignore_ascii_case("members") => {
                        self.change_members(id, &value, true)?
                    }
                    ("remove", Some(p)) if p.eq_ignore_ascii_case("members") => {
                        self.change_members(id, &value, false)?
                    }
                    ("remove", Some(p))
                        if p.to_ascii_lowercase().starts_with("members[value eq ") =>
                    {
                        let uid = p
                            .split_once('"')
                            .and_then(|(_, rest)| rest.split_once('"'))
                            .map(|(v, _)| v.to_owned())
                            .unwrap_or_default();
                        let arr = json!([{ "value": uid }]);
                        let wrapped = match self.mode {
                            SimMode::Salesforce => json!({ "members": arr }),
                            SimMode::Generic => arr,
                        };
                        self.change_members(id, &wrapped, false)?;
                    }
                    _ => {
                        return Err(SimError::new(
                            400,
                            "INVALID_OPERATION",
                            format!("unsupported group operation {kind:?} {path:?}"),
                        )
                        .scim("invalidPath"));
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                if let Some(g) = self.groups.get_mut(id) {
                    g.version += 1;
                }
                Ok(())
            }
            Err(e) => {
                self.groups.insert(id.to_owned(), before);
                Err(e)
            }
        }
    }

    fn rename_group(&mut self, id: &str, name: &str) -> Result<(), SimError> {
        check_group_name(name)?;
        let group = self
            .groups
            .get_mut(id)
            .ok_or_else(|| not_found("Group", id))?;
        group.display_name = name.to_owned();
        Ok(())
    }

    pub fn user_json(&self, u: &SimUser, base: &str) -> Value {
        let profiles = &self.catalogue.profiles;
        let mut entitlements = Vec::new();
        if let Some(p) = &u.profile {
            let name = profiles.iter().find(|x| x.id == *p).map(|x| x.name.clone());
            entitlements.push(json!({"value": p, "$ref": format!("/Entitlements/{p}"), "display": name, "type": "Profile", "primary": true}));
        }
        for s in &u.permission_sets {
            let name = self
                .catalogue
                .permission_sets
                .iter()
                .find(|x| x.id == *s)
                .map(|x| x.name.clone());
            entitlements.push(json!({"value": s, "$ref": format!("/Entitlements/{s}"), "display": name, "type": "PermissionSet", "primary": false}));
        }
        let roles: Vec<Value> = u
            .role
            .iter()
            .map(|r| {
                let name = self
                    .catalogue
                    .roles
                    .iter()
                    .find(|x| x.id == *r)
                    .map(|x| x.name.clone());
                json!({"value": r, "display": name})
            })
            .collect();
        let formatted = [u.given_name.as_deref(), u.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let mut v = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, SF_USER_EXT],
            "id": u.id,
            "userName": u.user_name,
            "name": {"formatted": formatted, "givenName": u.given_name, "familyName": u.family_name},
            "displayName": u.display_name.clone().unwrap_or(formatted),
            "nickName": u.nick_name,
            "emails": [{"type": "work", "primary": true, "value": u.email}],
            "phoneNumbers": u.phones.iter().map(|(k, n)| json!({"type": k, "value": n})).collect::<Vec<_>>(),
            "userType": "Standard",
            "active": u.active,
            "entitlements": entitlements,
            "roles": roles,
            ENTERPRISE: u.enterprise,
            SF_USER_EXT: {"federationIdentifier": u.federation_id},
            "meta": {
                "resourceType": "User",
                "location": format!("{base}/Users/{}", u.id),
                "version": format!("{:040x}", u.version),
            }
        });
        if !self.reading.federation_extension {
            // An org without the extension neither lists nor returns it.
            if let Some(obj) = v.as_object_mut() {
                obj.remove(SF_USER_EXT);
            }
            v["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]);
        }
        if let Some(e) = &u.external_id {
            v["externalId"] = json!(e);
        }
        if let Some(t) = &u.title {
            v["title"] = json!(t);
        }
        if self.mode == SimMode::Salesforce {
            v["preferredLanguage"] = json!("en_US");
            v["emailEncodingKey"] = json!("UTF-8");
            v["locale"] = json!("en_US");
            v["timezone"] = json!("America/Los_Angeles");
        }
        v
    }

    pub fn group_json(&self, g: &SimGroup, base: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": g.id,
            "displayName": g.display_name,
            "type": "Regular",
            "members": g.members.iter().map(|m| json!({"value": m, "type": "User", "$ref": format!("{base}/Users/{m}")})).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Group",
                "location": format!("{base}/Groups/{}", g.id),
                "version": format!("{:040x}", g.version),
            }
        })
    }
}

/// The enterprise extension URN.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Salesforce's user extension carrying the Federation ID (unconfirmed: no source shows how
/// SCIM carries FederationIdentifier; this emulator and the client agree on this URN).
pub const SF_USER_EXT: &str = "urn:salesforce:schemas:extension:1.0:User";

/// Whether a lower-cased key or path names Salesforce's user extension or an attribute of it.
fn is_sf_user_ext(lower: &str) -> bool {
    let ext = SF_USER_EXT.to_ascii_lowercase();
    lower == ext || lower.strip_prefix(&ext).is_some_and(|r| r.starts_with(':'))
}

/// A PATCH naming the Federation ID extension in an org that does not declare it.
fn undeclared_federation() -> SimError {
    SimError::new(
        400,
        "INVALID_FIELD",
        format!(
            "No such column 'federationIdentifier' on entity 'User': the extension {SF_USER_EXT} is not declared in this org"
        ),
    )
    .scim("invalidPath")
}

/// A username held by a user of another org (Salesforce usernames are unique across orgs).
fn taken_elsewhere() -> SimError {
    SimError::new(
        409,
        "DUPLICATE_USERNAME",
        "Duplicate Username.<br>The username already exists in this or another Salesforce organization. Usernames must be unique across all Salesforce organizations. To resolve, use a unique username (it can include a domain other than your own, as long as it's in the form of an email address).",
    )
    .scim("uniqueness")
}

fn last_name_missing() -> SimError {
    SimError::new(
        400,
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [LastName]",
    )
    .scim("invalidValue")
}

fn is_blank(text: Option<&str>) -> bool {
    text.is_none_or(|t| t.trim().is_empty())
}

/// How many members the operations of one group PATCH add or remove in total.
fn members_changed(ops: &[Value]) -> usize {
    ops.iter()
        .filter_map(|op| {
            let path = op.get("path").and_then(Value::as_str)?.to_ascii_lowercase();
            if path == "members" {
                let value = op.get("value")?;
                let list = value.get("members").unwrap_or(value);
                Some(list.as_array().map_or(0, Vec::len))
            } else if path.starts_with("members[") {
                Some(1)
            } else {
                None
            }
        })
        .sum()
}

fn set_enterprise(user: &mut SimUser, key: &str, value: &Value) {
    if value.is_null() {
        user.enterprise.remove(key);
    } else {
        user.enterprise.insert(key.to_owned(), value.clone());
    }
}

fn check_nick(nick: &str) -> Result<(), SimError> {
    if nick.chars().count() > 40 {
        return Err(SimError::new(
            400,
            "STRING_TOO_LONG",
            format!("Nickname: data value too large: {nick} (max length=40)"),
        )
        .scim("invalidValue"));
    }
    Ok(())
}

fn check_group_name(name: &str) -> Result<(), SimError> {
    if name.trim().is_empty() {
        return Err(SimError::new(
            400,
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Name]",
        )
        .scim("invalidValue"));
    }
    if name.chars().count() > 40 {
        return Err(SimError::new(
            400,
            "STRING_TOO_LONG",
            format!("Label: data value too large: {name} (max length=40)"),
        )
        .scim("invalidValue"));
    }
    Ok(())
}

pub fn not_found(kind: &str, id: &str) -> SimError {
    SimError::new(404, "NOT_FOUND", format!("{kind} {id} not found"))
}

/// Salesforce accepts 15- and 18-character forms of one id.
fn same_id(a: &str, b: &str) -> bool {
    a == b
        || (a.len() == 18 && b.len() == 15 && &a[..15] == b)
        || (b.len() == 18 && a.len() == 15 && &b[..15] == a)
}
