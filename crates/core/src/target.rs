//! The target side: users, groups and the catalogue as a SCIM target reports them.

use crate::ids::{TargetGroupId, TargetUserId};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// An email address on a target user (`emails[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAddress {
    pub value: CompactString,
    /// SCIM `type` (`work`, `home`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CompactString>,
    #[serde(default)]
    pub primary: bool,
}

/// A phone number on a target user (`phoneNumbers[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    pub value: CompactString,
    /// SCIM `type` (`work`, `mobile`, `fax`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CompactString>,
}

/// An entitlement on a target user: on Salesforce a profile (`00e…`, `type: "Profile"`) or a
/// permission set (`0PS…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlement {
    /// The catalogue id.
    pub value: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<CompactString>,
}

/// A role on a target user (`roles[]`; Salesforce: a UserRole, `00E…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub value: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<CompactString>,
}

/// The enterprise extension (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<CompactString>,
    /// The manager's id on the target (`manager.value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<CompactString>,
}

impl EnterpriseFields {
    /// No field set.
    pub const EMPTY: Self = Self {
        employee_number: None,
        department: None,
        division: None,
        organization: None,
        cost_center: None,
        manager: None,
    };

    pub fn is_empty(&self) -> bool {
        *self == Self::EMPTY
    }
}

/// A target user's [`EnterpriseFields`], held on the heap only when one is set: most accounts
/// of most organisations have none, and six empty fields inline are 144 bytes of every stored
/// account. Reads go through `Deref` (an account without them reads as
/// [`EnterpriseFields::EMPTY`]); it is made from the fields (`From`), so empty ones are never
/// boxed. Serialized as the fields themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enterprise(Option<Box<EnterpriseFields>>);

impl std::ops::Deref for Enterprise {
    type Target = EnterpriseFields;
    fn deref(&self) -> &EnterpriseFields {
        self.0.as_deref().unwrap_or(&EnterpriseFields::EMPTY)
    }
}

impl From<EnterpriseFields> for Enterprise {
    fn from(fields: EnterpriseFields) -> Self {
        Self((!fields.is_empty()).then(|| Box::new(fields)))
    }
}

impl Serialize for Enterprise {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Enterprise {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EnterpriseFields::deserialize(deserializer).map(Self::from)
    }
}

/// A user as the target reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetUser {
    pub id: TargetUserId,
    /// Salesforce lower-cases it; compare case-insensitively.
    pub user_name: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<EmailAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<PhoneNumber>,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<Entitlement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleAssignment>,
    #[serde(default)]
    pub enterprise: Enterprise,
    /// The SSO / Federation identifier (Salesforce `FederationIdentifier`): the address the
    /// SAML assertion carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_id: Option<CompactString>,
}

impl TargetUser {
    /// The work email (or the primary one, or the first one).
    pub fn work_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.kind.as_deref() == Some("work"))
            .or_else(|| self.emails.iter().find(|e| e.primary))
            .or_else(|| self.emails.first())
            .map(|e| e.value.as_str())
    }

    /// The work phone, if any.
    pub fn work_phone(&self) -> Option<&str> {
        self.phone_numbers
            .iter()
            .find(|p| p.kind.as_deref() == Some("work"))
            .map(|p| p.value.as_str())
    }
}

/// A group as the target reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub id: TargetGroupId,
    pub display_name: CompactString,
    #[serde(default)]
    pub members: Vec<TargetUserId>,
}

/// A profile in the target's catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub name: String,
    /// The user licence the profile belongs to, when the target says; a user's profile cannot
    /// change to one of another licence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    /// Whether users with this profile may be members of groups.
    #[serde(default = "yes")]
    pub allows_groups: bool,
}

fn yes() -> bool {
    true
}

/// Whether an entitlement on a user is a profile (else a permission set): the target says so
/// (`type: "Profile"`), or the catalogue lists its id as a profile, or — when the catalogue
/// does not know it as a permission set either — its id has Salesforce's profile prefix `00e`.
/// The one rule every crate uses.
pub fn is_profile(e: &Entitlement, known_profile: bool, known_permission_set: bool) -> bool {
    e.kind
        .as_deref()
        .is_some_and(|k| k.eq_ignore_ascii_case("profile"))
        || known_profile
        || (!known_permission_set && e.value.starts_with("00e"))
}

impl Catalogue {
    /// [`is_profile`] against this catalogue.
    pub fn is_profile(&self, e: &Entitlement) -> bool {
        is_profile(
            e,
            self.profiles.iter().any(|p| p.id == e.value),
            self.permission_sets.iter().any(|p| p.id == e.value),
        )
    }

    /// The profile `user` holds, if any.
    pub fn profile_of<'a>(&self, user: &'a TargetUser) -> Option<&'a str> {
        user.entitlements
            .iter()
            .find(|e| self.is_profile(e))
            .map(|e| e.value.as_str())
    }
}

/// A permission set or a role in the target's catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueEntry {
    pub id: String,
    pub name: String,
}

/// What the target offers for governance rules to assign.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogue {
    pub profiles: Vec<Profile>,
    pub permission_sets: Vec<CatalogueEntry>,
    pub roles: Vec<CatalogueEntry>,
}

/// Everything one read of the target returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSnapshot {
    pub users: Vec<TargetUser>,
    /// Empty when groups were not read (the policy excludes group information).
    #[serde(default)]
    pub groups: Vec<TargetGroup>,
    #[serde(default)]
    pub catalogue: Catalogue,
    /// What the target declares it supports (discovery); `None` when not discovered, and then
    /// every mapped attribute is planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<TargetCapabilities>,
}

/// What a target says about itself: RFC 7644 §5 (`/ServiceProviderConfig`, Salesforce's plural
/// `/ServiceProviderConfigs`), §6 (`/ResourceTypes`, `/Schemas`). Discovery reads it at the
/// start of a run (cached per connection) so the engine plans only what the target declares
/// instead of assuming one reading of the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCapabilities {
    /// PATCH is supported (else writes would need PUT).
    pub patch: bool,
    /// Filters (`userName eq "…"`) are supported.
    pub filter: bool,
    /// ETags (`If-Match`) are supported.
    pub etag: bool,
    /// Sorting is supported.
    pub sort: bool,
    /// The largest page or filter result the target serves, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    /// The user attributes the target declares, by the names of
    /// [`crate::plan::USER_ATTRIBUTES`]; `None` when the schema could not be read (then
    /// everything mapped is planned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attributes: Option<BTreeSet<String>>,
    /// User attributes the target marks required, by the same names.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub required_user_attributes: BTreeSet<String>,
    /// Schema URNs of the User extensions the target declares.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub user_extensions: BTreeSet<String>,
    /// Where the SSO identifier (Salesforce's Federation ID) is written, as a SCIM attribute
    /// path (`urn:…:User:federationIdentifier`); `None`: it is not sent, and SSO must match on
    /// the userName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_id_path: Option<String>,
    /// The target's `emails` and `phoneNumbers` take only `value` (its schema declares no
    /// `type` or `primary` sub-attribute): they are written without them, and the first one read
    /// is the work one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain_multi_values: bool,
    /// The target's Group schema makes `displayName` immutable: a rename is not sent (it is
    /// refused here, and held like a refusal of the target).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group_name_immutable: bool,
    /// User attributes the target's schemas mark `readOnly` (core names, `urn:…:attr` for an
    /// extension's): left out of a PUT (with `id` and `meta`), when updates go by PUT.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub user_read_only: BTreeSet<String>,
    /// Group attributes the target's Group schema marks `readOnly`, likewise.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub group_read_only: BTreeSet<String>,
    /// The target serves `/Entitlements` (Salesforce profiles and permission sets).
    pub entitlements: bool,
    /// The target serves `/Roles`.
    pub roles: bool,
    /// What discovery could not read and which fallback it took, for `check` and the run's notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl TargetCapabilities {
    /// Whether the target declares the user attribute `name` (one of
    /// [`crate::plan::USER_ATTRIBUTES`]); `true` when the schema is unknown.
    pub fn declares(&self, name: &str) -> bool {
        self.user_attributes
            .as_ref()
            .is_none_or(|a| a.contains(name))
    }
}
