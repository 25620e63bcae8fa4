//! The source side: users and groups as a source directory (Duo, a JSON file) reports them.

use crate::attributes::Attributes;
use crate::ids::{SourceGroupId, SourceUserId};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A user's status in the source directory, with the outcome each one has on the target.
///
/// | status | outcome |
/// | --- | --- |
/// | `active` | provisioned and active (when in scope) |
/// | `bypass` | provisioned and active: Duo only skips second-factor prompts for this user; the person is still a member of staff |
/// | `locked_out` | provisioned and active: a lock-out is a temporary, system-set security state, and Duo SSO itself refuses the login while it lasts; deactivating would churn the account (and its group memberships) on every lock-out |
/// | `disabled` | deactivated on the target and removed from every provisioned group |
/// | `pending_deletion` | deactivated like `disabled` (the user is in Duo's trash; a restore brings the account back) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryStatus {
    Active,
    Bypass,
    Disabled,
    LockedOut,
    PendingDeletion,
}

impl DirectoryStatus {
    /// Parses Duo's spelling (`active`, `bypass`, `disabled`, `locked out`, `pending deletion`),
    /// case-insensitively, also accepting `_` for the space.
    pub fn parse(text: &str) -> Option<Self> {
        let norm = text.trim().to_ascii_lowercase().replace('_', " ");
        Some(match norm.as_str() {
            "active" => Self::Active,
            "bypass" => Self::Bypass,
            "disabled" => Self::Disabled,
            "locked out" => Self::LockedOut,
            "pending deletion" => Self::PendingDeletion,
            _ => return None,
        })
    }

    /// Whether a user with this status should hold an active account on the target.
    pub fn is_enabled(self) -> bool {
        matches!(self, Self::Active | Self::Bypass | Self::LockedOut)
    }
}

/// The kind of a phone in the source directory (Duo: `Mobile`, `Landline`, `Unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneKind {
    Mobile,
    Landline,
    Unknown,
}

/// One phone of a directory user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone {
    /// The number as the directory holds it (Duo: E.164-ish, `+15555550100`).
    pub number: CompactString,
    /// Duo's phone type.
    pub kind: PhoneKind,
    /// An extension, when the directory has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<CompactString>,
}

/// A user as the source directory reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    /// Stable id; it never changes when the user is renamed.
    pub id: SourceUserId,
    /// The directory's primary username (Duo: `username`), not necessarily an email.
    pub username: CompactString,
    /// The user's email address; `None` when the directory has none (Duo sends `""`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<CompactString>,
    /// Full name (Duo: `realname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<CompactString>,
    pub status: DirectoryStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<Phone>,
    /// Aliases in order (Duo: `alias1`..`alias4` / `aliases`); index 0 is `alias1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<CompactString>,
    /// Custom attributes by name.
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub custom: Attributes,
    /// The groups the user belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<SourceGroupId>,
}

/// A group as the source directory reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryGroup {
    pub id: SourceGroupId,
    pub name: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<CompactString>,
}

/// Who may use the application through SSO (Duo's "User access" setting of the application).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "groups")]
pub enum SsoAccess {
    /// "Enable for all users": with the `sso_access` scope, users in no group are not provisioned.
    AllUsers,
    /// "Enable only for permitted groups".
    Groups(Vec<SourceGroupId>),
}

/// Everything one read of the source directory returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    pub users: Vec<DirectoryUser>,
    pub groups: Vec<DirectoryGroup>,
    /// The application's SSO access setting, when the source knows it (needed by the
    /// `sso_access` scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_access: Option<SsoAccess>,
    /// Users the source returned but could not read (a bad record: an unknown status, say).
    /// They are not taken as gone: their accounts are left as they are until they read again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<SourceUserId>,
    /// Records the source returned without a usable id, each described for the operator
    /// (`users[3] (username "ada")`). Which account is theirs cannot be told, so while there
    /// are any, no account is deactivated (nor changed) as gone from the directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unidentified: Vec<String>,
    /// What the reader found wrong with records it did read or set apart (a user id or group id
    /// given twice, an email shared by two users), one per object; the planner reports each as
    /// a note (`NoteKind::SourceProblem`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<SourceProblem>,
}

/// One problem with one source record, as the reader found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceProblem {
    pub object: crate::plan::ObjectKind,
    /// The record's id.
    pub source_id: String,
    /// The record's username or group name, when it has one.
    pub name: String,
    /// What is wrong and what is done about it.
    pub message: String,
}
