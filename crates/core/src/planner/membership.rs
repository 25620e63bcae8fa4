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

/// The (removals, additions) of each group of `states`, whose desired members (user indexes)
/// are `desired`, in the same order.
pub(super) fn member_changes<'a>(
    states: &[GroupState<'a>],
    desired: Vec<Vec<u32>>,
    users: &[UserState<'a>],
    keys: &[Option<InlineId>],
    owners: &IdIndex<'a, Owner<'a>>,
) -> Vec<(Vec<UserRef>, Vec<UserRef>)> {
    let mut want_mark: Vec<u32> = vec![0; users.len()];
    let mut have_mark: Vec<u32> = vec![0; users.len()];
    let mut local: IdMap<InlineId, u32> = IdMap::default();
    let mut out = Vec::with_capacity(states.len());
    for (gi, (state, mut list)) in states.iter().zip(desired).enumerate() {
        let stamp = gi as u32 + 1;
        list.sort_unstable();
        list.dedup();
        for &ui in &list {
            want_mark[ui as usize] = stamp;
        }
        let mut remove: Vec<UserRef> = Vec::new();
        if let Some(t) = state.target {
            local.clear();
            local.extend(
                list.iter()
                    .filter_map(|&ui| keys[ui as usize].map(|k| (k, ui))),
            );
            for m in &t.members {
                if let Some(&ui) = InlineId::new(m.as_str()).and_then(|k| local.get(&k)) {
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
        let add: Vec<UserRef> = list
            .iter()
            .filter(|&&ui| have_mark[ui as usize] != stamp)
            .map(|&ui| users[ui as usize].user_ref())
            .collect();
        out.push((remove, add));
    }
    out
}

pub(super) fn orphan_ref(link: &UserLink, t: &TargetUser) -> UserRef {
    UserRef {
        source_id: Some(link.source_id.clone()),
        target_id: Some(t.id.clone()),
        user_name: t.user_name.clone(),
    }
}
