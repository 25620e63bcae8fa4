//! Refusals: [`SimError`] and the ones several rules share. Their JSON is in `render.rs`.

use super::rules::SF_USER_EXT;

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
    /// A refusal with no `scimType`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            scim_type: None,
        }
    }

    /// The same with an RFC 7644 `scimType`.
    pub fn scim(mut self, t: &'static str) -> Self {
        self.scim_type = Some(t);
        self
    }
}

/// No `kind` (User, Group, …) with this id.
pub fn not_found(kind: &str, id: &str) -> SimError {
    SimError::new(404, "NOT_FOUND", format!("{kind} {id} not found"))
}

/// A PATCH naming the Federation ID extension in an org that does not declare it.
pub fn undeclared_federation() -> SimError {
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
pub fn taken_elsewhere() -> SimError {
    SimError::new(
        409,
        "DUPLICATE_USERNAME",
        "Duplicate Username.<br>The username already exists in this or another Salesforce organization. Usernames must be unique across all Salesforce organizations. To resolve, use a unique username (it can include a domain other than your own, as long as it's in the form of an email address).",
    )
    .scim("uniqueness")
}

/// A last name required by the reading and missing or cleared.
pub fn last_name_missing() -> SimError {
    SimError::new(
        400,
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [LastName]",
    )
    .scim("invalidValue")
}

/// A userName held by another user of this org.
pub fn duplicate_user_name(lowered: &str) -> SimError {
    SimError::new(
        409,
        "DUPLICATE_USERNAME",
        format!("Duplicate Username: {lowered}"),
    )
    .scim("uniqueness")
}

/// An unknown profile, permission set, role or member id.
pub fn invalid_cross_reference(id: &str) -> SimError {
    SimError::new(
        400,
        "INVALID_CROSS_REFERENCE_KEY",
        format!("invalid cross reference id: {id}"),
    )
    .scim("invalidValue")
}

/// A Salesforce-mode user without exactly one profile entitlement.
pub fn one_profile_required() -> SimError {
    SimError::new(
        409,
        "REQUIRED_FIELD_MISSING",
        "user_must_have_one_entitlement_which_must_be_a_profileid",
    )
}
