//! Memberships by set difference over the users the engine owns, in batches of the size the target
//! accepts, without the ones it refused.

use super::groups::Desired;
use super::index::{Bits, SWEEP, Sweep};
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
                        Some(r) => self.out.hold(ObjectKind::User, sid, &m.user_name, r),
                        None => kept.push(m),
                    }
                }
                *list = kept;
            }
        }
        self.out.summary.members_removed += remove.len();
        self.out.summary.members_added += add.len();
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

/// The (removals, additions) of each group of `states` (the groups from `first` on), whose
/// desired members are `desired.of(g)`.
///
/// Both sides are compared as account positions: the current members of a run of groups are
/// interned together in the order of their slots ([`Dense::get_swept`]), the desired accounts set
/// in a bitmap of all positions (small enough to stay in cache), so a membership costs a bit
/// test and no string is hashed twice.
pub(super) fn member_changes<'a>(
    states: &[GroupState<'a>],
    first: usize,
    desired: &Desired,
    users: &[UserState<'a>],
    accounts: &Accounts<'a>,
    owners: &Owners<'a>,
) -> Vec<(Vec<UserRef>, Vec<UserRef>)> {
    let positions = accounts.users.len();
    let mut want = Bits::new(positions);
    let mut have = Bits::new(positions);
    // The current members of a run of groups, looked up together in the order of their slots.
    let mut ids: Vec<&str> = Vec::new();
    let mut found: Vec<u32> = Vec::new();
    let mut sweep = Sweep::default();
    let mut starts: Vec<usize> = Vec::new();
    // For users compared one by one (no account, or one shared with another user): the last
    // desired user of each shared account, who is the one its membership counts for.
    let mut winner: IdMap<u32, u32> = IdMap::default();
    let mut out = Vec::with_capacity(states.len());
    let members = |s: &GroupState<'_>| s.target.map_or(0, |t| t.members.len());
    let mut run = 0;
    while run < states.len() {
        ids.clear();
        found.clear();
        starts.clear();
        let mut end = run;
        while end < states.len() && (end == run || ids.len() + members(&states[end]) <= SWEEP) {
            starts.push(ids.len());
            if let Some(t) = states[end].target {
                ids.extend(t.members.iter().map(|m| m.as_str()));
            }
            end += 1;
        }
        starts.push(ids.len());
        accounts.index.get_swept(&ids, &mut found, &mut sweep);
        for i in 0..end - run {
            let current = &found[starts[i]..starts[i + 1]];
            out.push(group_changes(
                desired.of(first + run + i),
                current,
                (&mut want, &mut have, &mut winner),
                users,
                accounts,
                owners,
            ));
        }
        run = end;
    }
    out
}

/// The (removals, additions) of one group: its desired `entries` (of [`Desired`]) against the account positions of its `current` members. The
/// bitmaps and the table of shared accounts are scratch space, left empty.
fn group_changes<'a>(
    entries: impl Iterator<Item = u32> + Clone,
    current: &[u32],
    (want, have, winner): (&mut Bits, &mut Bits, &mut IdMap<u32, u32>),
    users: &[UserState<'a>],
    accounts: &Accounts<'a>,
    owners: &Owners<'a>,
) -> (Vec<UserRef>, Vec<UserRef>) {
    winner.clear();
    for e in entries.clone() {
        if e & ORPHAN == 0 {
            want.set(e);
        } else {
            let ui = e & !ORPHAN;
            let p = owners.account[ui as usize];
            if p != NONE {
                want.set(p);
                winner.insert(p, ui);
            }
        }
    }
    let mut remove: Vec<UserRef> = Vec::new();
    for &p in current {
        if p == NONE {
            continue;
        }
        have.set(p);
        if !want.has(p)
            && let Some(r) = super::groups::owner_ref(p, users, accounts, owners)
        {
            remove.push(r);
        }
    }
    let mut add: Vec<UserRef> = Vec::new();
    for e in entries.clone() {
        let ui = if e & ORPHAN == 0 {
            if have.has(e) {
                continue;
            }
            owners.of[e as usize]
        } else {
            let ui = e & !ORPHAN;
            let p = owners.account[ui as usize];
            if p != NONE && have.has(p) && winner.get(&p) == Some(&ui) {
                continue;
            }
            ui
        };
        add.push(users[ui as usize].user_ref());
    }
    for e in entries {
        let p = if e & ORPHAN == 0 {
            e
        } else {
            owners.account[(e & !ORPHAN) as usize]
        };
        if p != NONE {
            want.clear(p);
        }
    }
    for &p in current {
        if p != NONE {
            have.clear(p);
        }
    }
    (remove, add)
}

pub(super) fn orphan_ref(link: &UserLink, t: &TargetUser) -> UserRef {
    UserRef {
        source_id: Some(link.source_id.clone()),
        target_id: Some(t.id.clone()),
        user_name: t.user_name.clone(),
    }
}
