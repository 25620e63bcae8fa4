//! What earlier runs left behind: which target object belongs to which source object, and what
//! the engine did to it. The store keeps these; the planner reads them.

use crate::ids::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How the engine came to own a target object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The engine created it.
    Created,
    /// It existed and the engine matched it to a source object (by externalId or userName for
    /// users, by name for groups).
    Adopted,
}

/// An email change sent to the target and not yet visible there (Salesforce holds it until the
/// owner of the new address verifies it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEmail {
    /// The address the engine asked for.
    pub address: String,
    /// The address the target showed when the change was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub requested_at: Timestamp,
}

/// A change the target refused, kept so it is not retried every run.
///
/// It stands while `attribute` is still wanted at `wanted` and the target still shows `basis`;
/// when either changes, the change is tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The attribute refused (`profile`, `groups`, …).
    pub attribute: String,
    /// The value the engine asked for.
    pub wanted: String,
    /// The value the target held when it refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// The target's reason, verbatim.
    pub reason: String,
    pub at: Timestamp,
}

/// The link between a source user and a target user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLink {
    pub source_id: SourceUserId,
    pub target_id: TargetUserId,
    pub origin: Origin,
    /// Permission sets the engine assigned itself: the only ones it may remove (unless the
    /// policy makes it authoritative).
    #[serde(default)]
    pub assigned_permission_sets: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_email: Option<PendingEmail>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<Refusal>,
}

/// The link between a source group and a target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLink {
    pub source_id: SourceGroupId,
    pub target_id: TargetGroupId,
    pub origin: Origin,
}

/// All links of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    pub users: Vec<UserLink>,
    pub groups: Vec<GroupLink>,
}
