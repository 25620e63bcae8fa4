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

/// The first `max` characters of `text` (on a character boundary), with `…` when cut.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
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
