//! User rules: create, PATCH (all or nothing), deactivate, email verification.

use serde_json::{Value, json};

use super::SimMode;
use super::errors::{
    SimError, duplicate_user_name, invalid_cross_reference, last_name_missing, not_found,
    one_profile_required, taken_elsewhere, undeclared_federation,
};
use super::rules::{ENTERPRISE, SF_USER_EXT, check_nick, is_blank, is_email, is_sf_user_ext};
use super::state::{SimUser, State};

impl State {
    /// The owner of the new address of `user_id` clicks the verification link: the pending
    /// email becomes the email. False when nothing was pending.
    pub fn verify_email(&mut self, user_id: &str) -> bool {
        self.update_user(user_id, |u| match u.pending_email.take() {
            Some(e) => {
                u.email = e;
                u.version += 1;
                true
            }
            None => false,
        })
        .unwrap_or(false)
    }

    /// Deactivates a user (`DELETE` where it deactivates); false when there is none.
    pub fn deactivate_user(&mut self, id: &str) -> bool {
        self.update_user(id, |u| {
            u.active = false;
            u.version += 1;
        })
        .is_some()
    }

    /// A nickName no user has, as Salesforce invents when it is sent empty.
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
            } else if let Some(full) = self.permission_set(id) {
                if !sets.iter().any(|s| s == full) {
                    sets.push(full.to_owned());
                }
            } else {
                return Err(invalid_cross_reference(id));
            }
        }
        if self.mode == SimMode::Salesforce && profiles.len() != 1 {
            return Err(one_profile_required());
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

    /// Sets the work email: at once on create (and in generic mode), else held until verified.
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

    /// Applies phone numbers (one per request in Salesforce mode; each replaces its type).
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
                if self.user_name_held(&lowered, &user.id) {
                    return Err(duplicate_user_name(&lowered));
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
                    Some(id) => return Err(invalid_cross_reference(id)),
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

    /// `POST /Users`: checks the rules and stores the user. Returns its id.
    pub fn create_user(&mut self, body: &Value) -> Result<String, SimError> {
        let Some(obj) = body.as_object() else {
            return Err(
                SimError::new(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
                    .scim("invalidSyntax"),
            );
        };
        let mut user = SimUser {
            id: self.next_id("005"),
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
            return Err(one_profile_required());
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
        self.put_user(user);
        Ok(id)
    }

    /// Applies PATCH operations to a user, all or nothing.
    pub fn patch_user(&mut self, id: &str, ops: &[Value]) -> Result<(), SimError> {
        let Some(mut user) = self.user(id).cloned() else {
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
                // Inactive users keep their memberships.
                user.version += 1;
                self.put_user(user);
                Ok(())
            }
            Err(e) => {
                self.verification_emails = verification_before;
                Err(e)
            }
        }
    }
}

/// Sets (or, with null, removes) one enterprise extension attribute.
fn set_enterprise(user: &mut SimUser, key: &str, value: &Value) {
    if value.is_null() {
        user.enterprise.remove(key);
    } else {
        user.enterprise.insert(key.to_owned(), value.clone());
    }
}
