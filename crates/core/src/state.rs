//! The last known state of the target's linked objects, and the rules of incremental runs.
//!
//! A full run reads the whole target and keeps what it found of the objects the engine links
//! (the **stored state**). A normal run believes that state: it plans against it, reads only
//! the objects its plan touches ([`lookup`]) and the ones whose state is in doubt, merges what
//! it found ([`merge`]) and plans again. Each successful write changes the stored state by
//! the same rules the target follows ([`after_update`], [`after_members`], …); a write whose
//! outcome is unknown leaves its object **doubtful**, read on the next run. What a read finds
//! different from the stored state is **drift** ([`drift_of_user`], [`drift_of_group`]).
//!
//! No I/O and no clock: every function is pure.

use crate::ids::{TargetGroupId, TargetUserId};
use crate::links::TargetFacts;
use crate::plan::{EnterpriseChanges, ObjectKind, Operation, Plan, UserChanges};
use crate::policy::Policy;
use crate::ports::Lookup;
use crate::target::{
    Catalogue, EmailAddress, Entitlement, PhoneNumber, RoleAssignment, TargetGroup, TargetSnapshot,
    TargetUser,
};
use crate::time::Timestamp;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The stored state of a connection's linked target objects, as the store loads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredState {
    pub users: Vec<TargetUser>,
    pub groups: Vec<TargetGroup>,
    /// Users whose last write had an unknown outcome: read on the next run.
    pub doubtful_users: BTreeSet<TargetUserId>,
    /// Groups whose last write had an unknown outcome: read on the next run.
    pub doubtful_groups: BTreeSet<TargetGroupId>,
}

impl StoredState {
    /// The snapshot an incremental run believes: these objects, with the catalogue kept at the
    /// last full read (no capabilities: the engine adds them).
    pub fn believed(&self, catalogue: Option<&Catalogue>) -> TargetSnapshot {
        TargetSnapshot {
            users: self.users.clone(),
            groups: self.groups.clone(),
            catalogue: catalogue.cloned().unwrap_or_default(),
            capabilities: None,
        }
    }

    /// The doubtful objects, as a lookup by id.
    pub fn doubtful_lookup(&self) -> Lookup {
        Lookup {
            user_ids: self.doubtful_users.iter().cloned().collect(),
            group_ids: self.doubtful_groups.iter().cloned().collect(),
            ..Lookup::default()
        }
    }

    /// What a full read leaves stored: the objects of `read` that `linked_users` and
    /// `linked_groups` name (nothing doubtful).
    pub fn from_full_read(
        read: &TargetSnapshot,
        linked_users: &HashSet<&str>,
        linked_groups: &HashSet<&str>,
    ) -> Self {
        Self {
            users: read
                .users
                .iter()
                .filter(|u| linked_users.contains(u.id.as_str()))
                .cloned()
                .collect(),
            groups: read
                .groups
                .iter()
                .filter(|g| linked_groups.contains(g.id.as_str()))
                .cloned()
                .collect(),
            ..Self::default()
        }
    }
}

/// Why a run reads the whole target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum FullReason {
    /// Asked for (`reconcile --full`, `RunOptions::full`).
    Asked,
    /// No full read was recorded for this connection yet (its first run, or the first run
    /// since incremental runs exist).
    NoState,
    /// The last full read is older than the connection's `full_every`.
    Due { last: Timestamp },
    /// The policy changed since the last full read (scope, mapping, governance, groups).
    PolicyChanged,
    /// A new discovery found the target's capabilities changed.
    CapabilitiesChanged,
}

impl std::fmt::Display for FullReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Asked => f.write_str("asked for"),
            Self::NoState => f.write_str("no full read recorded yet"),
            Self::Due { last } => write!(f, "the last full read ({last}) is older than full_every"),
            Self::PolicyChanged => f.write_str("the policy changed since the last full read"),
            Self::CapabilitiesChanged => f.write_str("the target's capabilities changed"),
        }
    }
}

/// Which kind of run: the whole target read, or only what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunKind {
    Full {
        #[serde(flatten)]
        reason: FullReason,
    },
    Incremental,
}

impl RunKind {
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full { .. })
    }

    /// `full` or `incremental`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Full { .. } => "full",
            Self::Incremental => "incremental",
        }
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full { reason } => write!(f, "full ({reason})"),
            Self::Incremental => f.write_str("incremental"),
        }
    }
}

/// What decides between a full and an incremental run.
#[derive(Debug, Clone, Copy)]
pub struct KindInput<'a> {
    /// A full run was asked for.
    pub asked: bool,
    pub facts: &'a TargetFacts,
    /// The policy's [`policy_fingerprint`] now.
    pub policy: &'a str,
    /// The connection's full interval, in milliseconds.
    pub full_every_ms: i64,
    /// A discovery of this run found other capabilities than the cached ones.
    pub capabilities_changed: bool,
    pub now: Timestamp,
}

/// Full when asked, when no full read is recorded, when the last one is older than the
/// connection's interval, when the policy or the target's capabilities changed; else
/// incremental.
pub fn choose(input: KindInput<'_>) -> RunKind {
    let full = |reason| RunKind::Full { reason };
    if input.asked {
        return full(FullReason::Asked);
    }
    let Some(last) = input.facts.last_full_read else {
        return full(FullReason::NoState);
    };
    if input.now.millis() - last.millis() >= input.full_every_ms {
        return full(FullReason::Due { last });
    }
    if input.facts.full_read_policy.as_deref() != Some(input.policy) {
        return full(FullReason::PolicyChanged);
    }
    if input.capabilities_changed {
        return full(FullReason::CapabilitiesChanged);
    }
    RunKind::Incremental
}

/// A fingerprint of what in a policy decides the target's desired state and what is read
/// (target kind, scope, group exclusion, mapping, governance); safety limits, batch sizes
/// and the API budget do not count.
pub fn policy_fingerprint(policy: &Policy) -> String {
    let part = |v: serde_json::Result<String>| v.unwrap_or_default();
    let parts = [
        part(serde_json::to_string(&policy.target_kind)),
        part(serde_json::to_string(&policy.scope)),
        policy.exclude_groups.to_string(),
        part(serde_json::to_string(&policy.mapping)),
        part(serde_json::to_string(&policy.governance)),
    ];
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    crate::links::fingerprint(&refs)
}

/// The objects a plan touches, to be read before it is planned again: users updated,
/// reactivated or deactivated (by id; a new userName or externalId also by that value, as
/// another account may hold it), users to create (by userName and externalId: an account
/// there is adopted, not duplicated), groups whose name or members change (by id) and groups
/// to create (by name).
pub fn lookup(plan: &Plan) -> Lookup {
    let mut user_ids = BTreeSet::new();
    let mut user_names = BTreeSet::new();
    let mut external_ids = BTreeSet::new();
    let mut group_ids = BTreeSet::new();
    let mut group_names = BTreeSet::new();
    for op in &plan.operations {
        match op {
            Operation::CreateUser { attributes, .. } => {
                user_names.insert(attributes.user_name.clone());
                external_ids.insert(attributes.external_id.clone());
            }
            Operation::AdoptUser { target_id, .. }
            | Operation::DeactivateUser { target_id, .. } => {
                user_ids.insert(target_id.clone());
            }
            Operation::UpdateUser {
                target_id, changes, ..
            }
            | Operation::ReactivateUser {
                target_id, changes, ..
            } => {
                user_ids.insert(target_id.clone());
                user_names.extend(changes.user_name.clone());
                external_ids.extend(changes.external_id.clone());
            }
            Operation::CreateGroup { name, .. } => {
                group_names.insert(name.clone());
            }
            Operation::AdoptGroup { target_id, .. } => {
                group_ids.insert(target_id.clone());
            }
            Operation::RenameGroup { target_id, to, .. } => {
                group_ids.insert(target_id.clone());
                group_names.insert(to.clone());
            }
            Operation::AddMembers { group, .. } | Operation::RemoveMembers { group, .. } => {
                if let Some(id) = &group.target_id {
                    group_ids.insert(id.clone());
                }
            }
        }
    }
    Lookup {
        user_ids: user_ids.into_iter().collect(),
        user_names: user_names.into_iter().map(String::from).collect(),
        external_ids: external_ids.into_iter().map(String::from).collect(),
        group_ids: group_ids.into_iter().collect(),
        group_names: group_names.into_iter().map(String::from).collect(),
    }
}

/// Adds to `into` what `more` asks for (without repeats).
pub fn extend_lookup(into: &mut Lookup, more: Lookup) {
    fn add<T: Ord + Clone>(a: &mut Vec<T>, b: Vec<T>) {
        let mut all: BTreeSet<T> = std::mem::take(a).into_iter().collect();
        all.extend(b);
        *a = all.into_iter().collect();
    }
    add(&mut into.user_ids, more.user_ids);
    add(&mut into.user_names, more.user_names);
    add(&mut into.external_ids, more.external_ids);
    add(&mut into.group_ids, more.group_ids);
    add(&mut into.group_names, more.group_names);
}

/// Merges a targeted read into the believed snapshot: each object found replaces the one of
/// the same id (or joins); an object asked for by id and not found is gone from the target.
/// Returns the ids that were gone.
pub fn merge(believed: &mut TargetSnapshot, asked: &Lookup, found: TargetSnapshot) -> Gone {
    let found_users: HashSet<&str> = found.users.iter().map(|u| u.id.as_str()).collect();
    let found_groups: HashSet<&str> = found.groups.iter().map(|g| g.id.as_str()).collect();
    let gone = Gone {
        users: asked
            .user_ids
            .iter()
            .filter(|id| !found_users.contains(id.as_str()))
            .cloned()
            .collect(),
        groups: asked
            .group_ids
            .iter()
            .filter(|id| !found_groups.contains(id.as_str()))
            .cloned()
            .collect(),
    };
    let gone_users: HashSet<&str> = gone.users.iter().map(|i| i.as_str()).collect();
    let gone_groups: HashSet<&str> = gone.groups.iter().map(|i| i.as_str()).collect();
    believed
        .users
        .retain(|u| !gone_users.contains(u.id.as_str()) && !found_users.contains(u.id.as_str()));
    believed
        .groups
        .retain(|g| !gone_groups.contains(g.id.as_str()) && !found_groups.contains(g.id.as_str()));
    believed.users.extend(found.users);
    believed.groups.extend(found.groups);
    gone
}

/// Objects asked for by id that the target no longer has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gone {
    pub users: Vec<TargetUserId>,
    pub groups: Vec<TargetGroupId>,
}

/// A user's state after the target accepted `changes` and whether it is now in doubt. An
/// email change is not applied: the target decides when the new address shows (Salesforce
/// holds it until its owner verifies it), so the user is read again on the next run.
pub fn after_update(user: &TargetUser, changes: &UserChanges) -> (TargetUser, bool) {
    let mut next = user.clone();
    let mut rest = changes.clone();
    let email_changed = rest.email.take().is_some();
    apply_changes(&mut next, &rest);
    (next, email_changed)
}

/// A user deactivated.
pub fn after_deactivate(user: &TargetUser) -> TargetUser {
    TargetUser {
        active: false,
        ..user.clone()
    }
}

/// A group renamed.
pub fn after_rename(group: &TargetGroup, to: &str) -> TargetGroup {
    TargetGroup {
        display_name: to.into(),
        ..group.clone()
    }
}

/// A group after the target accepted adding (or removing) `members`.
pub fn after_members(group: &TargetGroup, members: &[TargetUserId], add: bool) -> TargetGroup {
    let mut next = group.clone();
    if add {
        let have: HashSet<TargetUserId> = next.members.iter().cloned().collect();
        let mut seen = HashSet::new();
        next.members.extend(
            members
                .iter()
                .filter(|m| !have.contains(*m) && seen.insert(*m))
                .cloned(),
        );
    } else {
        let gone: HashSet<&TargetUserId> = members.iter().collect();
        next.members.retain(|m| !gone.contains(m));
    }
    next
}

/// Applies `c` to `u` as a SCIM target does: names, the work email first and primary, the
/// work phone (phones of other types stay), the enterprise fields, the complete entitlement
/// list (profile first), the role, `active`; userNames lower-cased as Salesforce keeps them.
pub fn apply_changes(u: &mut TargetUser, c: &UserChanges) {
    fn set(slot: &mut Option<CompactString>, change: &Option<Option<CompactString>>) {
        if let Some(v) = change {
            slot.clone_from(v);
        }
    }
    if let Some(name) = &c.user_name {
        u.user_name = name.to_lowercase();
    }
    if let Some(ext) = &c.external_id {
        u.external_id = Some(ext.clone());
    }
    set(&mut u.given_name, &c.given_name);
    set(&mut u.family_name, &c.family_name);
    set(&mut u.display_name, &c.display_name);
    if let Some(nick) = &c.nick_name {
        u.nick_name = Some(nick.clone());
    }
    set(&mut u.title, &c.title);
    if let Some(email) = &c.email {
        u.emails
            .retain(|e| e.kind.as_deref() != Some("work") && !e.primary);
        u.emails.insert(
            0,
            EmailAddress {
                value: email.clone(),
                kind: Some("work".into()),
                primary: true,
            },
        );
    }
    if let Some(phone) = &c.work_phone {
        u.phone_numbers
            .retain(|p| p.kind.as_deref() != Some("work"));
        if let Some(p) = phone {
            u.phone_numbers.push(PhoneNumber {
                value: p.clone(),
                kind: Some("work".into()),
            });
        }
    }
    set(&mut u.federation_id, &c.federation_id);
    let e = &c.enterprise;
    if *e != EnterpriseChanges::default() {
        let mut fields = (*u.enterprise).clone();
        set(&mut fields.employee_number, &e.employee_number);
        set(&mut fields.department, &e.department);
        set(&mut fields.division, &e.division);
        set(&mut fields.organization, &e.organization);
        set(&mut fields.cost_center, &e.cost_center);
        set(&mut fields.manager, &e.manager);
        u.enterprise = fields.into();
    }
    if let Some(ent) = &c.entitlements {
        u.entitlements = entitlements(Some(&ent.profile), &ent.permission_sets);
    }
    if let Some(role) = &c.role {
        u.roles = role
            .iter()
            .map(|r| RoleAssignment {
                value: r.clone(),
                display: None,
            })
            .collect();
    }
    if let Some(active) = c.active {
        u.active = active;
    }
}

/// A profile and permission sets as a target lists them.
pub(crate) fn entitlements(
    profile: Option<&str>,
    permission_sets: &[CompactString],
) -> Vec<Entitlement> {
    profile
        .map(|p| Entitlement {
            value: p.into(),
            kind: Some("Profile".into()),
            display: None,
        })
        .into_iter()
        .chain(permission_sets.iter().map(|p| Entitlement {
            value: p.clone(),
            kind: Some("PermissionSet".into()),
            display: None,
        }))
        .collect()
}

/// One attribute found different from the stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drifted {
    /// The attribute, by the names of [`crate::plan::USER_ATTRIBUTES`] (`profile` and
    /// `permissionSets` apart), or `displayName` / `members` for a group; `account` /
    /// `group` when the whole object is gone.
    pub attribute: String,
    /// What the stored state said (`None`: nothing).
    pub stored: Option<String>,
    /// What the target has (`None`: nothing).
    pub found: Option<String>,
}

/// What changed on the target behind the engine's back, for one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub object: ObjectKind,
    pub target_id: String,
    /// The userName or group name (as stored).
    pub name: String,
    pub attributes: Vec<Drifted>,
}

impl Drift {
    /// `attribute: stored → found`, separated by `; ` (the activity log's detail).
    pub fn describe(&self) -> String {
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or("(none)".to_owned(), |v| format!("{v:?}"))
        };
        self.attributes
            .iter()
            .map(|d| format!("{}: {} → {}", d.attribute, show(&d.stored), show(&d.found)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A user's attributes as compared for drift: one value each, the order of
/// [`crate::plan::USER_ATTRIBUTES`] (entitlements as the profile and the sorted permission
/// sets; emails and phones by their work value), so equal meaning compares equal whatever
/// order or decoration (`display`, `type`) the target answers with.
fn user_values(u: &TargetUser, catalogue: &Catalogue) -> Vec<(&'static str, Option<String>)> {
    let e = &u.enterprise;
    let profile = catalogue.profile_of(u).map(str::to_owned);
    let mut sets: Vec<&str> = u
        .entitlements
        .iter()
        .filter(|x| !catalogue.is_profile(x))
        .map(|x| x.value.as_str())
        .collect();
    sets.sort_unstable();
    let mut roles: Vec<&str> = u.roles.iter().map(|r| r.value.as_str()).collect();
    roles.sort_unstable();
    let joined = |v: Vec<&str>| (!v.is_empty()).then(|| v.join(", "));
    let own = |v: &Option<CompactString>| v.as_deref().map(str::to_owned);
    vec![
        ("userName", Some(u.user_name.to_lowercase().into())),
        ("externalId", own(&u.external_id)),
        ("name.givenName", own(&u.given_name)),
        ("name.familyName", own(&u.family_name)),
        ("displayName", own(&u.display_name)),
        ("nickName", own(&u.nick_name)),
        ("title", own(&u.title)),
        ("emails", u.work_email().map(str::to_lowercase)),
        ("phoneNumbers", u.work_phone().map(str::to_owned)),
        ("federationId", own(&u.federation_id)),
        ("employeeNumber", own(&e.employee_number)),
        ("department", own(&e.department)),
        ("division", own(&e.division)),
        ("organization", own(&e.organization)),
        ("costCenter", own(&e.cost_center)),
        ("manager", own(&e.manager)),
        ("profile", profile),
        ("permissionSets", joined(sets)),
        ("roles", joined(roles)),
        ("active", Some(u.active.to_string())),
    ]
}

/// How a stored user differs from the one found (`None`: gone from the target); `None` when
/// they agree.
pub fn drift_of_user(
    stored: &TargetUser,
    found: Option<&TargetUser>,
    catalogue: &Catalogue,
) -> Option<Drift> {
    let attributes = match found {
        None => vec![Drifted {
            attribute: "account".to_owned(),
            stored: Some(stored.user_name.to_string()),
            found: None,
        }],
        Some(found) => user_values(stored, catalogue)
            .into_iter()
            .zip(user_values(found, catalogue))
            .filter(|((_, a), (_, b))| a != b)
            .map(|((name, a), (_, b))| Drifted {
                attribute: name.to_owned(),
                stored: a,
                found: b,
            })
            .collect(),
    };
    (!attributes.is_empty()).then(|| Drift {
        object: ObjectKind::User,
        target_id: stored.id.to_string(),
        name: stored.user_name.to_string(),
        attributes,
    })
}

/// How a stored group differs from the one found (`None`: gone from the target): its name,
/// and its members (those only stored, those only found); `None` when they agree.
pub fn drift_of_group(stored: &TargetGroup, found: Option<&TargetGroup>) -> Option<Drift> {
    let mut attributes = Vec::new();
    match found {
        None => attributes.push(Drifted {
            attribute: "group".to_owned(),
            stored: Some(stored.display_name.to_string()),
            found: None,
        }),
        Some(found) => {
            if stored.display_name != found.display_name {
                attributes.push(Drifted {
                    attribute: "displayName".to_owned(),
                    stored: Some(stored.display_name.to_string()),
                    found: Some(found.display_name.to_string()),
                });
            }
            let a: BTreeSet<&str> = stored.members.iter().map(|m| m.as_str()).collect();
            let b: BTreeSet<&str> = found.members.iter().map(|m| m.as_str()).collect();
            if a != b {
                let only = |x: &BTreeSet<&str>, y: &BTreeSet<&str>| {
                    let v: Vec<&str> = x.difference(y).copied().collect();
                    (!v.is_empty()).then(|| v.join(", "))
                };
                attributes.push(Drifted {
                    attribute: "members".to_owned(),
                    stored: only(&a, &b),
                    found: only(&b, &a),
                });
            }
        }
    }
    (!attributes.is_empty()).then(|| Drift {
        object: ObjectKind::Group,
        target_id: stored.id.to_string(),
        name: stored.display_name.to_string(),
        attributes,
    })
}

/// The drift of every stored object that `found` covers: with `whole`, every stored object
/// (one absent from `found` is gone); else only those `asked` by id (a targeted read).
/// Doubtful objects are left out: their state was not known.
pub fn drift(
    stored: &StoredState,
    found: &TargetSnapshot,
    asked: Option<&Lookup>,
    catalogue: &Catalogue,
) -> Vec<Drift> {
    let users: HashMap<&str, &TargetUser> =
        found.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let groups: HashMap<&str, &TargetGroup> =
        found.groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let asked_users: Option<HashSet<&str>> =
        asked.map(|l| l.user_ids.iter().map(|i| i.as_str()).collect());
    let asked_groups: Option<HashSet<&str>> =
        asked.map(|l| l.group_ids.iter().map(|i| i.as_str()).collect());
    let covered =
        |set: &Option<HashSet<&str>>, id: &str| set.as_ref().is_none_or(|s| s.contains(id));
    let mut out = Vec::new();
    for u in &stored.users {
        if stored.doubtful_users.contains(&u.id) || !covered(&asked_users, u.id.as_str()) {
            continue;
        }
        out.extend(drift_of_user(
            u,
            users.get(u.id.as_str()).copied(),
            catalogue,
        ));
    }
    for g in &stored.groups {
        if stored.doubtful_groups.contains(&g.id) || !covered(&asked_groups, g.id.as_str()) {
            continue;
        }
        out.extend(drift_of_group(g, groups.get(g.id.as_str()).copied()));
    }
    out
}

#[cfg(test)]
mod tests;
