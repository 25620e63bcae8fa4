//! Groups: linked, adopted by name or created, renamed; then their memberships.

use super::membership::{member_changes, orphan_ref};
use super::*;
use crate::refusals::{group_create_fingerprint, rename_fingerprint};

impl<'a> Planner<'a> {
    /// Rejects the source group `g` for its name (`displayName`).
    fn reject_name(&mut self, g: &DirectoryGroup, name: &str, reason: String) {
        self.out.reject(
            ObjectKind::Group,
            g.id.as_str(),
            name,
            "displayName",
            reason,
        );
    }

    /// Renames the target group `t` to `name` unless it has it, or the target refused that
    /// very rename before.
    fn rename(&mut self, g: &DirectoryGroup, t: &TargetGroup, name: &str) {
        if t.display_name == name {
            return;
        }
        let sid = g.id.as_str();
        if let Some(r) = self.held(
            ObjectKind::Group,
            sid,
            "displayName",
            &rename_fingerprint(name),
        ) {
            self.out.hold(ObjectKind::Group, sid, name, r);
            return;
        }
        self.out.summary.rename_group += 1;
        self.renames.push(Operation::RenameGroup {
            source_id: g.id.clone(),
            target_id: t.id.clone(),
            from: t.display_name.clone(),
            to: name.into(),
        });
    }

    pub(super) fn provisions_group(&self, id: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(id))
    }

    pub(super) fn plan_groups(&mut self, accounts: &Accounts<'a>, owners: &Owners<'a>) {
        let source = self.source;
        let target = self.target;
        let links = self.links;
        let limit = SALESFORCE_NAME_LIMIT;
        let target_groups: IdMap<&str, &TargetGroup> =
            target.groups.iter().map(|g| (g.id.as_str(), g)).collect();
        let mut link_by_source: IdMap<&str, &TargetGroupId> = IdMap::default();
        let mut linked_targets: IdMap<&str, &SourceGroupId> = IdMap::default();
        for l in &links.groups {
            link_by_source
                .entry(l.source_id.as_str())
                .or_insert(&l.target_id);
            linked_targets
                .entry(l.target_id.as_str())
                .or_insert(&l.source_id);
        }
        let mut by_name: IdMap<Cow<'_, str>, &TargetGroup> = IdMap::default();
        for g in &target.groups {
            by_name.entry(lower(&g.display_name)).or_insert(g);
        }
        let mut sorted: Vec<&DirectoryGroup> = source.groups.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        sorted.dedup_by(|a, b| a.id == b.id);
        let mut states: Vec<GroupState<'_>> = Vec::new();
        let mut handled_targets: IdSet<&str> = IdSet::default();
        let mut claimed: IdSet<&str> = IdSet::default();
        let mut created_names: IdSet<Cow<'_, str>> = IdSet::default();
        for g in &sorted {
            if !self.provisions_group(g.id.as_str()) {
                continue;
            }
            let linked = link_by_source
                .get(g.id.as_str())
                .and_then(|tid| target_groups.get(tid.as_str()).copied());
            if let Some(t) = linked {
                handled_targets.insert(t.id.as_str());
            }
            let name = g.name.trim();
            let too_long = self.salesforce && name.chars().count() > limit;
            if name.is_empty() || too_long {
                let reason = if name.is_empty() {
                    "the group has no name".to_owned()
                } else {
                    format!(
                        "group name {name:?} is {} characters; Salesforce allows at most {limit}. Rename the group in the source directory",
                        name.chars().count()
                    )
                };
                self.reject_name(g, name, reason);
                continue;
            }
            self.out.summary.groups_in_scope += 1;
            let target_group = if let Some(t) = linked {
                self.rename(g, t, name);
                Some(t)
            } else if let Some(t) = by_name.get(&lower(name)).copied() {
                if let Some(owner) = linked_targets
                    .get(t.id.as_str())
                    .filter(|o| o.as_str() != g.id.as_str())
                {
                    let reason = format!(
                        "target group {} named {name:?} belongs to source group {owner}; group names are unique on the target",
                        t.id
                    );
                    self.reject_name(g, name, reason);
                    continue;
                }
                if !claimed.insert(t.id.as_str()) {
                    let reason = format!(
                        "another source group has the name {name:?}; group names are unique on the target"
                    );
                    self.reject_name(g, name, reason);
                    continue;
                }
                self.out.summary.adopt_group += 1;
                self.groups_created.push(Operation::AdoptGroup {
                    source_id: g.id.clone(),
                    target_id: t.id.clone(),
                    name: name.into(),
                });
                self.rename(g, t, name);
                Some(t)
            } else {
                if !created_names.insert(lower(name)) {
                    let reason = format!(
                        "another source group has the name {name:?}; group names are unique on the target"
                    );
                    self.reject_name(g, name, reason);
                    continue;
                }
                if let Some(r) = self.held(
                    ObjectKind::Group,
                    g.id.as_str(),
                    "create",
                    &group_create_fingerprint(name),
                ) {
                    self.out.hold(ObjectKind::Group, g.id.as_str(), name, r);
                    continue;
                }
                self.out.summary.create_group += 1;
                self.groups_created.push(Operation::CreateGroup {
                    source_id: g.id.clone(),
                    name: name.into(),
                });
                None
            };
            states.push(GroupState {
                source: g,
                target: target_group,
            });
        }

        // Each provisioned group's desired members: a counting sort of the users' interned
        // groups per share of the users ([`Desired`]), each group's entries in user order.
        let mut state_of = vec![NONE; self.group_known.len()];
        for (i, s) in states.iter().enumerate() {
            if let Some(gi) = self.group_ids.get(s.source.id.as_str()) {
                state_of[gi as usize] = i as u32;
            }
        }
        let desired = self.desired_members(&state_of, states.len(), owners);
        // The interned memberships are not read again (explanations read the source's).
        self.user_groups = Vec::new();
        self.user_groups_at = Vec::new();
        // Groups are independent: large directories spread them over a few threads. The
        // result is the same, in the same order, whatever the number of threads.
        let users = &self.users;
        let changes: Vec<(Vec<UserRef>, Vec<UserRef>)> =
            on_threads(states.len(), self.threads_for_users(), |part| {
                let first = part.start;
                member_changes(&states[part], first, &desired, users, accounts, owners)
            })
            .into_iter()
            .flatten()
            .collect();
        let batch = self.batch;
        if !self.held.is_empty() {
            self.user_index = self
                .users
                .iter()
                .enumerate()
                .map(|(i, s)| (s.user.id.as_str(), i))
                .collect();
        }
        for (state, (remove, add)) in states.iter().zip(changes) {
            let group = GroupRef {
                source_id: state.source.id.clone(),
                target_id: state.target.map(|t| t.id.clone()),
                name: state.target.map_or_else(
                    || state.source.name.trim().into(),
                    |t| t.display_name.clone(),
                ),
            };
            self.push_batches(&group, remove, add, batch);
        }

        // Linked groups no longer provisioned: take the owned members out.
        let provisioned = |id: &str| {
            self.group_ids
                .get(id)
                .is_some_and(|gi| state_of[gi as usize] != NONE)
        };
        let mut stale: Vec<(&SourceGroupId, &TargetGroup)> =
            links
                .groups
                .iter()
                .filter(|l| !provisioned(l.source_id.as_str()))
                .filter(|l| {
                    !self.out.rejected.iter().any(|r| {
                        r.object == ObjectKind::Group && r.source_id == l.source_id.as_str()
                    })
                })
                .filter_map(|l| {
                    target_groups
                        .get(l.target_id.as_str())
                        .map(|t| (&l.source_id, *t))
                })
                .filter(|(_, t)| !handled_targets.contains(t.id.as_str()))
                .collect();
        stale.sort_by(|a, b| a.0.cmp(b.0));
        stale.dedup_by(|a, b| a.1.id == b.1.id);
        let mut positions = Vec::new();
        for (sid, t) in stale {
            positions.clear();
            accounts
                .index
                .get_all(t.members.iter().map(|m| m.as_str()), &mut positions);
            let remove: Vec<UserRef> = positions
                .iter()
                .filter_map(|&p| owner_ref(p, &self.users, accounts, owners))
                .collect();
            let group = GroupRef {
                source_id: sid.clone(),
                target_id: Some(t.id.clone()),
                name: t.display_name.clone(),
            };
            self.push_batches(&group, remove, Vec::new(), batch);
        }
    }

    /// The desired members of the groups of `states` (by interned group, `state_of`): for
    /// large directories, one counting sort per share of the users, on threads.
    fn desired_members(&self, state_of: &[u32], groups: usize, owners: &Owners<'_>) -> Desired {
        Desired {
            parts: on_threads(self.users.len(), self.threads_for_users(), |share| {
                self.desired_of(share, state_of, groups, owners)
            }),
        }
    }

    /// The desired members of the users in `share`, as `(starts, entries)`: group `g`'s are
    /// `entries[starts[g]..starts[g + 1]]`, in user order (a counting sort of the users'
    /// memberships by group).
    fn desired_of(
        &self,
        share: std::ops::Range<usize>,
        state_of: &[u32],
        groups: usize,
        owners: &Owners<'_>,
    ) -> (Vec<u32>, Vec<u32>) {
        // Each user's groups once each (a group named twice counts once).
        let mut last = vec![NONE; groups];
        let mut starts = vec![0u32; groups + 1];
        self.each_membership(share.clone(), state_of, &mut last, |g, _| {
            starts[g + 1] += 1;
        });
        for g in 0..groups {
            starts[g + 1] += starts[g];
        }
        let mut fill: Vec<u32> = starts[..groups].to_vec();
        let mut entries = vec![0u32; starts[groups] as usize];
        last.fill(NONE);
        self.each_membership(share, state_of, &mut last, |g, ui| {
            let p = owners.account[ui as usize];
            entries[fill[g] as usize] = if p != NONE && !owners.shared.has(p) {
                p
            } else {
                ORPHAN | ui
            };
            fill[g] += 1;
        });
        (starts, entries)
    }

    /// Calls `f(group state, user)` for each provisioned group of each user in `share` who
    /// should be a member, each group once per user (`last`: scratch, the last user seen per
    /// group).
    fn each_membership(
        &self,
        share: std::ops::Range<usize>,
        state_of: &[u32],
        last: &mut [u32],
        mut f: impl FnMut(usize, u32),
    ) {
        for ui in share {
            let s = &self.users[ui];
            if !s.member {
                continue;
            }
            let ui = ui as u32;
            for &gi in self.groups_at(s.src as usize) {
                let Some(&g) = state_of.get(gi as usize) else {
                    continue;
                };
                if g != NONE && last[g as usize] != ui {
                    last[g as usize] = ui;
                    f(g as usize, ui);
                }
            }
        }
    }
}

/// Each provisioned group's desired members: an entry is the position of the member's account,
/// or `ORPHAN | user index` for a user without an account or with an account another user has
/// too. Kept as the shares of the users sorted them ([`Planner::desired_members`]): a group's
/// entries are its entries of each share in turn, so in user order.
#[derive(Debug)]
pub(super) struct Desired {
    parts: Vec<(Vec<u32>, Vec<u32>)>,
}

impl Desired {
    /// The entries of group `g` (a group state's index), in user order.
    pub(super) fn of(&self, g: usize) -> impl Iterator<Item = u32> + Clone + '_ {
        self.parts.iter().flat_map(move |(starts, entries)| {
            let range = starts.get(g).zip(starts.get(g + 1));
            range
                .and_then(|(&a, &b)| entries.get(a as usize..b as usize))
                .unwrap_or(&[])
                .iter()
                .copied()
        })
    }
}

/// The user reference of the owner of the account at position `p`, if the engine owns it.
pub(super) fn owner_ref(
    p: u32,
    users: &[UserState<'_>],
    accounts: &Accounts<'_>,
    owners: &Owners<'_>,
) -> Option<UserRef> {
    let owner = *owners.of.get(p as usize)?;
    if owner == NONE {
        None
    } else if owner & ORPHAN != 0 {
        let link = owners.orphans.get((owner & !ORPHAN) as usize)?;
        Some(orphan_ref(link, accounts.users.get(p as usize)?))
    } else {
        users.get(owner as usize).map(UserState::user_ref)
    }
}
