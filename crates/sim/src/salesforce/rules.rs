//! Validation rules several resources share: ids, emails, name lengths, the catalogue.

use super::CatalogueProfile;
use super::errors::SimError;
use super::state::State;
use serde_json::Value;

/// The enterprise extension URN.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Salesforce's user extension carrying the Federation ID (unconfirmed: no source shows how
/// SCIM carries FederationIdentifier; this emulator and the client agree on this URN).
pub const SF_USER_EXT: &str = "urn:salesforce:schemas:extension:1.0:User";

/// Fixed 15-character Salesforce id with its 3-character prefix and a counter.
pub fn sf_id(prefix: &str, n: u64) -> String {
    format!("{prefix}5g{n:010}AAK")
}

/// Salesforce accepts 15- and 18-character forms of one id.
pub fn same_id(a: &str, b: &str) -> bool {
    a == b
        || (a.len() == 18 && b.len() == 15 && &a[..15] == b)
        || (b.len() == 18 && a.len() == 15 && &b[..15] == a)
}

/// Whether `text` has the form of an email address (Salesforce's check for usernames and
/// emails).
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

/// Absent, empty or only white space.
pub fn is_blank(text: Option<&str>) -> bool {
    text.is_none_or(|t| t.trim().is_empty())
}

/// Whether a lower-cased key or path names Salesforce's user extension or an attribute of it.
pub fn is_sf_user_ext(lower: &str) -> bool {
    let ext = SF_USER_EXT.to_ascii_lowercase();
    lower == ext || lower.strip_prefix(&ext).is_some_and(|r| r.starts_with(':'))
}

/// A nickName is at most 40 characters.
pub fn check_nick(nick: &str) -> Result<(), SimError> {
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

/// A group's displayName is not blank and at most 40 characters.
pub fn check_group_name(name: &str) -> Result<(), SimError> {
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

/// How many members the operations of one group PATCH add or remove in total.
pub fn members_changed(ops: &[Value]) -> usize {
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

impl State {
    /// The catalogue's profile with this id (15 or 18 characters).
    pub fn profile(&self, id: &str) -> Option<&CatalogueProfile> {
        self.catalogue.profiles.iter().find(|p| same_id(&p.id, id))
    }

    /// The catalogue's permission set id (its full form) for this id, if it is one.
    pub fn permission_set(&self, id: &str) -> Option<&str> {
        self.catalogue
            .permission_sets
            .iter()
            .find(|p| same_id(&p.id, id))
            .map(|p| p.id.as_str())
    }

    /// Whether the catalogue has this role.
    pub fn role_exists(&self, id: &str) -> bool {
        self.catalogue.roles.iter().any(|p| same_id(&p.id, id))
    }
}
