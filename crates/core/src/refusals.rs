//! What a refused write is held under: the key (object, source id, attribute) and the
//! fingerprint of what was sent and what it depended on. The planner computes fingerprints to
//! leave out writes refused before; the engine computes the same ones to record a refusal. One
//! home for both, so they cannot disagree.
//!
//! A held write is sent again as soon as its fingerprint changes: another wanted value, a
//! profile change from another current profile, a changed catalogue (for entitlements, roles
//! and memberships, which the catalogue decides), or another profile for a membership.

use crate::links::fingerprint;
use crate::plan::{UserAttributes, UserChanges};
use crate::target::Catalogue;

/// At most this many characters of a value or a reason are kept with a refusal.
pub const KEPT_CHARS: usize = 1_000;

/// `text` cut to at most `max` characters on a character boundary; a cut text ends with `…`
/// (within the bound) so people can tell.
pub fn bounded(text: &str, max: usize) -> String {
    if text.char_indices().nth(max).is_none() {
        return text.to_owned();
    }
    let end = text
        .char_indices()
        .nth(max.saturating_sub(1))
        .map_or(text.len(), |(i, _)| i);
    format!("{}…", &text[..end])
}

/// A fingerprint of the catalogue's ids and the facts the rules read (licence, groups).
pub fn catalogue_fingerprint(catalogue: &Catalogue) -> String {
    let mut parts: Vec<String> = catalogue
        .profiles
        .iter()
        .map(|p| {
            format!(
                "p:{}:{}:{}",
                p.id,
                p.licence.as_deref().unwrap_or_default(),
                p.allows_groups
            )
        })
        .chain(
            catalogue
                .permission_sets
                .iter()
                .map(|p| format!("s:{}", p.id)),
        )
        .chain(catalogue.roles.iter().map(|r| format!("r:{}", r.id)))
        .collect();
    parts.sort_unstable();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    fingerprint(&refs)
}

/// Whether the catalogue decides whether a write of `attribute` is accepted.
fn depends_on_catalogue(attribute: &str) -> bool {
    matches!(attribute, "entitlements" | "roles" | "profile")
}

/// A profile change from `current` to `wanted`, held under attribute `profile`.
pub fn profile_fingerprint(wanted: &str, current: &str, catalogue: &str) -> String {
    fingerprint(&["profile", wanted, current, catalogue])
}

/// A creation refused for its userName (taken, possibly in another organisation), held under
/// attribute `userName` of an unlinked user.
pub fn user_name_fingerprint(user_name: &str) -> String {
    fingerprint(&["userName", &user_name.to_lowercase()])
}

/// A user creation refused as a whole, held under attribute `create`.
pub fn create_fingerprint(attributes: &UserAttributes, catalogue: &str) -> String {
    let json = serde_json::to_string(attributes).unwrap_or_default();
    fingerprint(&["create", &json, catalogue])
}

/// A group creation refused, held under attribute `create` of the group.
pub fn group_create_fingerprint(name: &str) -> String {
    fingerprint(&["create group", name])
}

/// A group rename refused, held under attribute `displayName` of the group.
pub fn rename_fingerprint(name: &str) -> String {
    fingerprint(&["rename group", name])
}

/// A membership change refused for one user, held under `member:<group>` of the user: it
/// depends on the user's profile and the catalogue.
pub fn member_fingerprint(add: bool, profile: Option<&str>, catalogue: &str) -> String {
    let op = if add { "add" } else { "remove" };
    fingerprint(&["member", op, profile.unwrap_or_default(), catalogue])
}

/// One write of a user update: one attribute, as the target receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The key of its refusal: one of [`crate::plan::USER_ATTRIBUTES`], or `profile` for an
    /// entitlement change that changes the profile.
    pub attribute: &'static str,
    /// The changes of this attribute alone.
    pub changes: UserChanges,
    pub fingerprint: String,
    /// What is sent, short, for people.
    pub value: String,
}

/// The writes of `changes`, one per attribute, in the order of
/// [`UserChanges::attribute_names`]. `current_profile` is the profile the account holds now.
pub fn split_update(
    changes: &UserChanges,
    current_profile: Option<&str>,
    catalogue: &str,
) -> Vec<Write> {
    changes
        .attribute_names()
        .into_iter()
        .map(|name| {
            let single = changes.only(name);
            let value = serde_json::to_string(&single).unwrap_or_default();
            let (attribute, fp) = match &single.entitlements {
                Some(e) if e.profile_changed => (
                    "profile",
                    profile_fingerprint(&e.profile, current_profile.unwrap_or_default(), catalogue),
                ),
                _ => {
                    let cat = if depends_on_catalogue(name) {
                        catalogue
                    } else {
                        ""
                    };
                    (name, fingerprint(&[name, &value, cat]))
                }
            };
            Write {
                attribute,
                changes: single,
                fingerprint: fp,
                value: bounded(&value, 200),
            }
        })
        .collect()
}

/// Words by which a target's reason names an attribute (Salesforce names its fields, RFC 7644
/// servers their attribute paths).
fn names_of(attribute: &str) -> &'static [&'static str] {
    match attribute {
        "userName" => &["username"],
        "name.givenName" => &["givenname", "firstname"],
        "name.familyName" => &["familyname", "lastname"],
        "displayName" => &["displayname"],
        "nickName" => &["nickname"],
        "title" => &["title"],
        "emails" => &["email"],
        "phoneNumbers" => &["phone"],
        "federationId" => &["federationidentifier", "federation"],
        "employeeNumber" => &["employeenumber"],
        "department" => &["department"],
        "division" => &["division"],
        "organization" => &["organization"],
        "costCenter" => &["costcenter"],
        "manager" => &["manager"],
        "entitlements" => &["entitlement", "permissionset", "permission set"],
        "profile" => &["profile", "licen"],
        "roles" => &["role"],
        "active" => &["active", "inactive"],
        _ => &[],
    }
}

/// Whether the target's `reason` names `attribute` (one of [`crate::plan::USER_ATTRIBUTES`]
/// or `profile`): the refused write is then isolated without bisecting.
pub fn names_attribute(reason: &str, attribute: &str) -> bool {
    // Words start after a non-letter: `INVALID_EMAIL_ADDRESS` names emails, `entitlements`
    // does not name the title.
    let folded: String = reason
        .chars()
        .map(|c| if matches!(c, '_' | '-') { ' ' } else { c })
        .flat_map(char::to_lowercase)
        .collect();
    names_of(attribute).iter().any(|n| {
        folded.match_indices(n).any(|(at, _)| {
            !folded[..at]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
        })
    })
}

/// Whether a refused member write was refused for its size (too many members at once), not
/// for one of its members: Salesforce's `LIMIT_EXCEEDED`, RFC 7644's `tooMany`, or a 413.
pub fn is_size_refusal(code: Option<&str>, reason: &str) -> bool {
    let code_says = code.is_some_and(|c| {
        c.eq_ignore_ascii_case("LIMIT_EXCEEDED") || c.eq_ignore_ascii_case("tooMany")
    });
    let lower = reason.to_ascii_lowercase();
    code_says
        || lower.contains("limit_exceeded")
        || lower.contains("toomany")
        || lower.contains("too many")
        || lower.contains("(413)")
}

/// Whether a member refused alone was refused for its profile (then the profile is learned
/// to forbid groups).
pub fn blames_profile(reason: &str) -> bool {
    names_attribute(reason, "profile")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::UserChanges;

    #[test]
    fn reasons_name_attributes_in_either_spelling() {
        assert!(names_attribute(
            "INVALID_FIELD:No such column 'federationIdentifier';",
            "federationId"
        ));
        assert!(names_attribute(
            "REQUIRED_FIELD_MISSING:LastName;",
            "name.familyName"
        ));
        assert!(names_attribute(
            "Attribute 'name.familyName' is required",
            "name.familyName"
        ));
        assert!(!names_attribute("INVALID_FIELD:title too long", "emails"));
        assert!(names_attribute("INVALID_EMAIL_ADDRESS: bad", "emails"));
        assert!(names_attribute(
            "FIELD_INTEGRITY_EXCEPTION:ProfileId",
            "profile"
        ));
        assert!(
            !names_attribute("INVALID_CROSS_REFERENCE_KEY:entitlements", "title"),
            "a word inside another is not named"
        );
        assert!(names_attribute("INACTIVE_OWNER_OR_USER", "active"));
        assert!(is_size_refusal(Some("LIMIT_EXCEEDED"), ""));
        assert!(is_size_refusal(None, "the target refused x (400): tooMany"));
        assert!(!is_size_refusal(
            Some("FIELD_INTEGRITY_EXCEPTION"),
            "profile"
        ));
    }

    #[test]
    fn an_update_splits_into_one_write_per_attribute_with_stable_fingerprints() {
        let c = UserChanges {
            title: Some(Some("CTO".into())),
            federation_id: Some(Some("a@b.c".into())),
            ..UserChanges::default()
        };
        let writes = split_update(&c, None, "cat");
        assert_eq!(
            writes.iter().map(|w| w.attribute).collect::<Vec<_>>(),
            ["title", "federationId"]
        );
        assert_eq!(writes, split_update(&c, None, "cat"));
        let mut other = c.clone();
        other.title = Some(Some("CEO".into()));
        assert_ne!(
            split_update(&other, None, "cat")[0].fingerprint,
            writes[0].fingerprint,
            "another value, another fingerprint"
        );
        assert_eq!(
            split_update(&other, None, "cat")[1].fingerprint,
            writes[1].fingerprint
        );
        assert_eq!(bounded("abcdef", 3), "ab…");
        assert_eq!(bounded("abc", 3), "abc");
    }
}
