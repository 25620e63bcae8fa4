//! What earlier runs left behind: which target object belongs to which source object, and what
//! the engine did to it. The store keeps these; the planner reads them.

use crate::ids::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId};
use crate::plan::ObjectKind;
use crate::target::TargetCapabilities;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
    /// Boxed: rare, and a link of every user is held through a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_email: Option<Box<PendingEmail>>,
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
    /// scimsync's own calls to the target, per hour, over the last 24 hours: what the API
    /// budget is measured against ([`crate::budget`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_calls: Vec<HourlyCalls>,
    /// The daily API allocation the target last reported (Salesforce's `Sforce-Limit-Info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_allocation: Option<u64>,
    /// When the whole target was last read (a full run): incremental runs believe the stored
    /// state until the connection's `full_every` has passed since then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_read: Option<Timestamp>,
    /// The [`crate::state::policy_fingerprint`] the last full read was made under: another
    /// policy makes the next run full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_read_policy: Option<String>,
    /// How the adapter learned to read only some objects since the last discovery
    /// ([`crate::ports::Target::learned_reads`]): followed by the next runs, forgotten by the
    /// next discovery (a target that changed is asked as it declares again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_reads: Option<String>,
    /// The catalogue (profiles, permission sets, roles) as the last full read found it, for
    /// incremental runs, which do not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<crate::target::Catalogue>,
}

/// The calls made to the target in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourlyCalls {
    /// The start of the hour, in milliseconds since the epoch.
    pub hour: i64,
    pub calls: u64,
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

/// The link ledger: what each outcome of an applied operation changes in the links, the
/// refusals held and the facts learned. The engine applies a plan through it, and so does the
/// in-memory apply of the tests, so both keep the links by the same rules.
///
/// Indexed by source id, so a run of any size updates it in logarithmic time per outcome.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    users: BTreeMap<SourceUserId, UserLink>,
    groups: BTreeMap<SourceGroupId, GroupLink>,
    refusals: BTreeMap<(ObjectKind, String, String), HeldRefusal>,
    facts: TargetFacts,
}

impl Ledger {
    pub fn new(links: Links) -> Self {
        Self {
            users: links
                .users
                .into_iter()
                .map(|l| (l.source_id.clone(), l))
                .collect(),
            groups: links
                .groups
                .into_iter()
                .map(|l| (l.source_id.clone(), l))
                .collect(),
            refusals: links
                .refusals
                .into_iter()
                .map(|r| ((r.object, r.source_id.clone(), r.attribute.clone()), r))
                .collect(),
            facts: links.facts,
        }
    }

    /// The links as they stand, sorted by source id.
    pub fn into_links(self) -> Links {
        Links {
            users: self.users.into_values().collect(),
            groups: self.groups.into_values().collect(),
            refusals: self.refusals.into_values().collect(),
            facts: self.facts,
        }
    }

    pub fn user(&self, source_id: &SourceUserId) -> Option<&UserLink> {
        self.users.get(source_id)
    }

    pub fn group(&self, source_id: &SourceGroupId) -> Option<&GroupLink> {
        self.groups.get(source_id)
    }

    pub fn facts(&self) -> &TargetFacts {
        &self.facts
    }

    /// The refusal held for (`object`, `source_id`, `attribute`), if any.
    pub fn refusal(
        &self,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
    ) -> Option<&HeldRefusal> {
        self.refusals
            .get(&(object, source_id.to_owned(), attribute.to_owned()))
    }

    /// A user was created: linked as created, owning the permission sets it was created with.
    pub fn after_create_user(
        &mut self,
        source_id: &SourceUserId,
        target_id: &TargetUserId,
        permission_sets: &[compact_str::CompactString],
    ) -> &UserLink {
        self.link_user(UserLink {
            source_id: source_id.clone(),
            target_id: target_id.clone(),
            origin: Origin::Created,
            assigned_permission_sets: permission_sets.iter().map(|p| p.to_string()).collect(),
            pending_email: None,
        })
    }

    /// An existing account was adopted: linked, owning no permission set yet.
    pub fn after_adopt_user(
        &mut self,
        source_id: &SourceUserId,
        target_id: &TargetUserId,
    ) -> &UserLink {
        self.link_user(UserLink {
            source_id: source_id.clone(),
            target_id: target_id.clone(),
            origin: Origin::Adopted,
            assigned_permission_sets: BTreeSet::new(),
            pending_email: None,
        })
    }

    fn link_user(&mut self, link: UserLink) -> &UserLink {
        let key = link.source_id.clone();
        self.users.insert(key.clone(), link);
        &self.users[&key]
    }

    /// The target accepted `changes` (all of them; after isolation, the part it accepted):
    /// permission sets added become the engine's, removed ones stop being; an email change is
    /// pending verification from `now`, `previous_email` being what the target showed before;
    /// a refusal held for an attribute now accepted is forgotten. `None` when the user has no
    /// link (nothing to record).
    pub fn after_update_user(
        &mut self,
        source_id: &SourceUserId,
        changes: &crate::plan::UserChanges,
        previous_email: Option<String>,
        now: Timestamp,
    ) -> Option<&UserLink> {
        for name in changes.attribute_names() {
            self.refusals
                .remove(&(ObjectKind::User, source_id.to_string(), name.to_owned()));
        }
        if changes
            .entitlements
            .as_ref()
            .is_some_and(|e| e.profile_changed)
        {
            self.refusals.remove(&(
                ObjectKind::User,
                source_id.to_string(),
                "profile".to_owned(),
            ));
        }
        let link = self.users.get_mut(source_id)?;
        if let Some(e) = &changes.entitlements {
            link.assigned_permission_sets
                .extend(e.added.iter().map(|p| p.to_string()));
            for p in &e.removed {
                link.assigned_permission_sets.remove(p.as_str());
            }
        }
        if let Some(address) = &changes.email {
            link.pending_email = Some(Box::new(PendingEmail {
                address: address.to_string(),
                previous: previous_email,
                requested_at: now,
            }));
        }
        Some(link)
    }

    /// A group was created or adopted.
    pub fn after_link_group(
        &mut self,
        source_id: &SourceGroupId,
        target_id: &TargetGroupId,
        origin: Origin,
    ) -> &GroupLink {
        self.refusals.remove(&(
            ObjectKind::Group,
            source_id.to_string(),
            "create".to_owned(),
        ));
        let key = source_id.clone();
        self.groups.insert(
            key.clone(),
            GroupLink {
                source_id: source_id.clone(),
                target_id: target_id.clone(),
                origin,
            },
        );
        &self.groups[&key]
    }

    /// The target refused a write for a reason of its own: held until its fingerprint changes.
    pub fn after_refusal(&mut self, refusal: HeldRefusal) -> &HeldRefusal {
        let key = (
            refusal.object,
            refusal.source_id.clone(),
            refusal.attribute.clone(),
        );
        self.refusals.insert(key.clone(), refusal);
        &self.refusals[&key]
    }

    /// The target accepted a write held before (a membership, a create): the refusal is
    /// forgotten. Returns whether one was held.
    pub fn after_acceptance(
        &mut self,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
    ) -> bool {
        self.refusals
            .remove(&(object, source_id.to_owned(), attribute.to_owned()))
            .is_some()
    }

    /// The target refused a member batch for its size and accepted one of `size`: later runs
    /// send batches of at most `size`. Returns whether this is news.
    pub fn learn_member_batch_size(&mut self, size: usize) -> bool {
        let size = size.max(1);
        if self.facts.member_batch_size.is_some_and(|s| s <= size) {
            return false;
        }
        self.facts.member_batch_size = Some(size);
        true
    }

    /// The target showed that users of `profile` cannot be group members. Returns whether
    /// this is news.
    pub fn learn_profile_without_groups(&mut self, profile: &str) -> bool {
        self.facts
            .profiles_without_groups
            .insert(profile.to_owned())
    }

    /// What discovery found, and when; what the adapter learned before is forgotten.
    pub fn set_capabilities(&mut self, capabilities: TargetCapabilities, at: Timestamp) {
        self.facts.capabilities = Some(capabilities);
        self.facts.discovered_at = Some(at);
        self.facts.learned_reads = None;
    }
}
