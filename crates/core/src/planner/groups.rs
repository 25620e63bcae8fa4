//! Groups: linked, adopted by name or created, renamed; then their memberships.

use super::membership::{member_changes, orphan_ref, touch};
use super::*;
use crate::refusals::{group_create_fingerprint, rename_fingerprint};

impl<'a> Planner<'a> {
    /// Rejects the source group `g` for its name (`displayName`).
    fn reject_name(&mut self, g: &DirectoryGroup, name: &str, reason: String) {
        self.reject(
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
            self.hold(ObjectKind::Group, sid, name, r);
            return;
        }
        self.summary.rename_group += 1;
        self.renames.push(Operation::RenameGroup {
            source_id: g.id.clone(),
            target_id: t.id.clone(),
            from: t.display_name.clone(),
            to: name.to_owned(),
        });
    }

    pub(super) fn provisions_group(&self, id: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(id))
    }

    pub(super) fn plan_groups(&mut self, owners: &IdIndex<'a, Owner<'a>>) {
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
            self.summary.groups_in_scope += 1;
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
                self.summary.adopt_group += 1;
                self.groups_created.push(Operation::AdoptGroup {
                    source_id: g.id.clone(),
                    target_id: t.id.clone(),
                    name: name.to_owned(),
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
                    self.hold(ObjectKind::Group, g.id.as_str(), name, r);
                    continue;
                }
                self.summary.create_group += 1;
                self.groups_created.push(Operation::CreateGroup {
                    source_id: g.id.clone(),
                    name: name.to_owned(),
                });
                None
            };
            states.push(GroupState {
                source: g,
                target: target_group,
            });
        }

        // Desired members per provisioned group, as user indexes.
        let mut group_index = SmallIndex::with_capacity(states.len());
        for (i, s) in states.iter().enumerate() {
            group_index.insert_first(s.source.id.as_str(), i as u32);
        }
        // Groups are independent, and so are users: large directories spread both over a few
        // threads. The result is the same, in the same order, whatever the number of threads.
        let threads = self.threads_for_users();
        // Desired members per provisioned group (user indexes, ascending), and each user's
        // account id inline: a group's desired members go into a small table that stays in
        // cache while the group's current members are checked against it; only members not
        // found there (removals, strangers, long ids) take the big owners table.
        let users = &self.users;
        let groups = states.len();
        // Each group's desired members as the runs the threads found (in user order: the
        // runs end to end are ascending), moved rather than copied into one list.
        let mut keys: Vec<Option<InlineId>> = vec![None; users.len()];
        let desired: Vec<Vec<Vec<u32>>> = if threads <= 1 {
            let lists = desired_members(users, 0, &mut keys, &group_index, groups);
            lists.into_iter().map(|l| vec![l]).collect()
        } else {
            let per = users.len().div_ceil(threads).max(1);
            let parts: Vec<Vec<Vec<u32>>> = std::thread::scope(|scope| {
                let group_index = &group_index;
                let handles: Vec<_> = users
                    .chunks(per)
                    .zip(keys.chunks_mut(per))
                    .enumerate()
                    .map(|(n, (part, keys))| {
                        scope.spawn(move || {
                            desired_members(part, n * per, keys, group_index, groups)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            });
            let mut desired: Vec<Vec<Vec<u32>>> = (0..groups)
                .map(|_| Vec::with_capacity(parts.len()))
                .collect();
            for lists in parts {
                for (runs, list) in desired.iter_mut().zip(lists) {
                    runs.push(list);
                }
            }
            desired
        };
        let chunk = states.len().div_ceil(threads).max(1);
        let changes: Vec<(Vec<UserRef>, Vec<UserRef>)> = if threads <= 1 {
            member_changes(&states, desired, users, &keys, owners)
        } else {
            let mut lists = desired.into_iter();
            let parts: Vec<Vec<Vec<Vec<u32>>>> = states
                .chunks(chunk)
                .map(|c| lists.by_ref().take(c.len()).collect())
                .collect();
            std::thread::scope(|scope| {
                let handles: Vec<_> = states
                    .chunks(chunk)
                    .zip(parts)
                    .map(|(part, lists)| {
                        let keys = &keys;
                        scope.spawn(move || member_changes(part, lists, users, keys, owners))
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| {
                        h.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            })
        };
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
                    || state.source.name.trim().to_owned(),
                    |t| t.display_name.clone(),
                ),
            };
            self.push_batches(&group, remove, add, batch);
        }

        // Linked groups no longer provisioned: take the owned members out.
        let mut stale: Vec<(&SourceGroupId, &TargetGroup)> = links
            .groups
            .iter()
            .filter(|l| group_index.get(l.source_id.as_str()).is_none())
            .filter(|l| {
                !self
                    .rejected
                    .iter()
                    .any(|r| r.object == ObjectKind::Group && r.source_id == l.source_id.as_str())
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
        for (sid, t) in stale {
            let remove: Vec<UserRef> = t
                .members
                .iter()
                .filter_map(|m| match owners.get(m.as_str()) {
                    Some(Owner::User(ui)) => Some(self.users[*ui].user_ref()),
                    Some(Owner::Orphan(link, t)) => Some(orphan_ref(link, t)),
                    None => None,
                })
                .collect();
            let group = GroupRef {
                source_id: sid.clone(),
                target_id: Some(t.id.clone()),
                name: t.display_name.clone(),
            };
            self.push_batches(&group, remove, Vec::new(), batch);
        }
    }
}

/// The desired members of each of `groups` groups among `users` (the users from index `first`
/// on), ascending; sets `keys` to each member's account id inline.
fn desired_members(
    users: &[UserState<'_>],
    first: usize,
    keys: &mut [Option<InlineId>],
    group_index: &SmallIndex<'_>,
    groups: usize,
) -> Vec<Vec<u32>> {
    let mut desired: Vec<Vec<u32>> = vec![Vec::new(); groups];
    for (n, (s, key)) in users.iter().zip(keys.iter_mut()).enumerate() {
        if !s.member {
            continue;
        }
        *key = s.target().and_then(|t| InlineId::new(t.id.as_str()));
        let ui = (first + n) as u32;
        touch(s.user.groups.iter().map(|g| g.as_str()));
        for g in &s.user.groups {
            if let Some(gi) = group_index.get(g.as_str()) {
                // Users in order: each list ascending, a group named twice pushed once.
                let list = &mut desired[gi as usize];
                if list.last() != Some(&ui) {
                    list.push(ui);
                }
            }
        }
    }
    desired
}
