//! What earlier runs left behind: which target object belongs to which source object, and what
//! the engine did to it. The store keeps these; the planner reads them.

use crate::ids::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId};
use crate::plan::ObjectKind;
use crate::target::TargetCapabilities;
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
}

/// The link between a source group and a target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLink {
    pub source_id: SourceGroupId,
    pub target_id: TargetGroupId,
    pub origin: Origin,
}

/// A write the target refused with a non-retryable answer, remembered so that it is not sent
/// again until something relevant changes.
///
/// One per object and attribute: a user's `federationId`, a user's `profile`, a user's
/// `create`, a user's membership of one group (`member:<source group id>`), a group's `create`.
/// It holds while the planner would send a write of the same [`fingerprint`]: a different
/// wanted value, another rule, a changed catalogue or a changed basis on the target makes a
/// different fingerprint, and the write is tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRefusal {
    pub object: ObjectKind,
    /// The source object's id.
    pub source_id: String,
    /// Which write: one of [`crate::plan::USER_ATTRIBUTES`], `profile`, `create`, or
    /// `member:<source group id>`.
    pub attribute: String,
    /// [`fingerprint`] of what was sent and what it depended on.
    pub fingerprint: String,
    /// What was sent, short, for people.
    pub value: String,
    /// The target's reason, verbatim (bounded).
    pub reason: String,
    pub at: Timestamp,
}

impl HeldRefusal {
    /// Whether this refusal is about `object`/`source_id`/`attribute`.
    pub fn is(&self, object: ObjectKind, source_id: &str, attribute: &str) -> bool {
        self.object == object && self.source_id == source_id && self.attribute == attribute
    }
}

/// The attribute name of a refused membership of the group `group` (its source id).
pub fn member_attribute(group: &str) -> String {
    format!("member:{group}")
}

/// A stable fingerprint of a write: FNV-1a (64 bits) over its parts, each ended by a 0 byte,
/// as 16 hex digits. The same parts always give the same fingerprint, across runs and builds.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// What the engine learned about a connection's target, kept between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFacts {
    /// The last discovery, and when it ran (refreshed daily and on demand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<TargetCapabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_at: Option<Timestamp>,
    /// The largest member batch the target accepted after refusing a larger one for its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_batch_size: Option<usize>,
    /// Profiles (catalogue ids) the target showed to forbid group membership.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub profiles_without_groups: BTreeSet<String>,
}

/// All links of one connection, with the refusals held and what was learned of the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    pub users: Vec<UserLink>,
    pub groups: Vec<GroupLink>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<HeldRefusal>,
    #[serde(default)]
    pub facts: TargetFacts,
}
