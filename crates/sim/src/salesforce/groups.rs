//! Group rules: create, PATCH (rename, members; all or nothing).

use serde_json::{Value, json};

use super::SimMode;
use super::errors::{SimError, invalid_cross_reference, not_found};
use super::rules::{check_group_name, members_changed};
use super::state::State;

impl State {
    /// `POST /Groups`: checks the rules and stores the group. Returns its id.
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
        if self.groups_named(&name).next().is_some() {
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

    /// Adds or removes the members in `value` (the mode's shape); refuses the whole change if
    /// one member may not be added.
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
                let Some(user) = self.user(uid) else {
                    return Err(refuse(invalid_cross_reference(uid)));
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
        if self.group(group_id).is_none() {
            return Err(not_found("Group", group_id));
        }
        for uid in ids {
            if add {
                self.add_member(group_id, &uid);
            } else {
                self.remove_member(group_id, &uid);
            }
        }
        Ok(())
    }

    /// Applies PATCH operations to a group, all or nothing.
    pub fn patch_group(&mut self, id: &str, ops: &[Value]) -> Result<(), SimError> {
        let Some(before) = self.group(id).cloned() else {
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
                self.bump_group_version(id);
                Ok(())
            }
            Err(e) => {
                self.put_group(before);
                Err(e)
            }
        }
    }

    /// Renames a group (displayName rules; uniqueness is checked on create only).
    fn rename_group(&mut self, id: &str, name: &str) -> Result<(), SimError> {
        check_group_name(name)?;
        if self.set_group_name(id, name) {
            Ok(())
        } else {
            Err(not_found("Group", id))
        }
    }
}
