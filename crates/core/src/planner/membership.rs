//! Memberships by set difference over the users the engine owns, in batches of the size the target
//! accepts, without the ones it refused.

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn push_batches(
        &mut self,
        group: &GroupRef,
        mut remove: Vec<UserRef>,
        mut add: Vec<UserRef>,
        batch: usize,
    ) {
        remove.sort();
        remove.dedup();
        add.sort();
        add.dedup();
        if !self.held.is_empty() {
            let attribute = member_attribute(group.source_id.as_str());
            for (list, adding) in [(&mut remove, false), (&mut add, true)] {
                let mut kept = Vec::with_capacity(list.len());
                for m in list.drain(..) {
                    let Some(sid) = m.source_id.as_ref().map(|s| s.as_str()) else {
                        kept.push(m);
                        continue;
                    };
                    let profile = self
                        .user_index
                        .get(sid)
                        .and_then(|&i| self.users[i].profile);
                    let fp = member_fingerprint(adding, profile, &self.catalogue_fp);
                    match self.held(ObjectKind::User, sid, &attribute, &fp) {
                        Some(r) => self.hold(ObjectKind::User, sid, &m.user_name, r),
                        None => kept.push(m),
                    }
                }
                *list = kept;
            }
        }
        self.summary.members_removed += remove.len();
        self.summary.members_added += add.len();
        for chunk in remove.chunks(batch) {
            self.removals.push(Operation::RemoveMembers {
                group: group.clone(),
                members: chunk.to_vec(),
            });
        }
        for chunk in add.chunks(batch) {
            self.additions.push(Operation::AddMembers {
                group: group.clone(),
                members: chunk.to_vec(),
            });
        }
    }
}

/// At most this many threads.
pub(super) const MAX_THREADS: usize = 4;

/// From this many source users on, group memberships are compared on several threads.
pub(super) const PARALLEL_FROM_USERS: usize = 50_000;

/// The (removals, additions) of each group of `states`, whose desired members (user indexes,
/// ascending and distinct, in runs laid end to end) are `desired`, in the same order.
///
/// A group's desired members go into a small table of their account ids that stays in cache
/// while the group's current members are checked against it; only members not found there
/// (removals, strangers, long ids) take the big owners table. The ids of a group's members are
/// read in a first loop of independent loads ([`touch`]) so the processor fetches them together
/// rather than one cache miss at a time.
pub(super) fn member_changes<'a>(
    states: &[GroupState<'a>],
    desired: Vec<Vec<Vec<u32>>>,
    users: &[UserState<'a>],
    keys: &[Option<InlineId>],
    owners: &IdIndex<'a, Owner<'a>>,
) -> Vec<(Vec<UserRef>, Vec<UserRef>)> {
    let mut want_mark: Vec<u32> = vec![0; users.len()];
    let mut have_mark: Vec<u32> = vec![0; users.len()];
    let mut local: IdMap<InlineId, u32> = IdMap::default();
    let mut member_keys: Vec<Option<InlineId>> = Vec::new();
    let mut out = Vec::with_capacity(states.len());
    for (gi, (state, runs)) in states.iter().zip(desired).enumerate() {
        let stamp = gi as u32 + 1;
        let list = || runs.iter().flatten().copied();
        debug_assert!(list().zip(list().skip(1)).all(|(a, b)| a < b));
        for ui in list() {
            want_mark[ui as usize] = stamp;
        }
        let mut remove: Vec<UserRef> = Vec::new();
        if let Some(t) = state.target {
            touch(t.members.iter().map(|m| m.as_str()));
            member_keys.clear();
            member_keys.extend(t.members.iter().map(|m| InlineId::new(m.as_str())));
            local.clear();
            local.reserve(runs.iter().map(Vec::len).sum());
            for ui in list() {
                if let Some(k) = keys[ui as usize] {
                    local.insert(k, ui);
                }
            }
            for (m, k) in t.members.iter().zip(&member_keys) {
                if let Some(&ui) = k.as_ref().and_then(|k| local.get(k)) {
                    have_mark[ui as usize] = stamp;
                    continue;
                }
                match owners.get(m.as_str()) {
                    Some(Owner::User(ui)) => {
                        have_mark[*ui] = stamp;
                        if want_mark[*ui] != stamp {
                            remove.push(users[*ui].user_ref());
                        }
                    }
                    Some(Owner::Orphan(link, t)) => remove.push(orphan_ref(link, t)),
                    None => {}
                }
            }
        }
        let add: Vec<UserRef> = list()
            .filter(|&ui| have_mark[ui as usize] != stamp)
            .map(|ui| users[ui as usize].user_ref())
            .collect();
        out.push((remove, add));
    }
    out
}

/// Reads the first byte of each id: independent loads the processor overlaps, so the ids are in
/// cache for the lookups that follow (safe code's stand-in for a prefetch).
pub(super) fn touch<'s>(ids: impl Iterator<Item = &'s str>) {
    let mut acc = 0u8;
    for id in ids {
        acc ^= id.as_bytes().first().copied().unwrap_or(0);
    }
    std::hint::black_box(acc);
}

pub(super) fn orphan_ref(link: &UserLink, t: &TargetUser) -> UserRef {
    UserRef {
        source_id: Some(link.source_id.clone()),
        target_id: Some(t.id.clone()),
        user_name: t.user_name.clone(),
    }
}
