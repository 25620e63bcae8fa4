//! Indexes over the users and groups, so that no request scans them.
//!
//! [`Index`] is written only by [`State`](super::State)'s storing methods, which drop a
//! record's entries before it changes and add them after; every lookup the rules and the
//! handlers make goes through it.

use std::collections::{BTreeSet, HashMap};

use super::{SimGroup, SimUser};

/// The key of a case-insensitive lookup: the text with ASCII letters lower-cased. Two texts
/// are `eq_ignore_ascii_case` exactly when their keys are equal, so a lookup by key finds the
/// records the old scans found.
pub fn fold(text: &str) -> String {
    text.to_ascii_lowercase()
}

/// Record ids under a key, each set in id order. Several records may share a key: seeded
/// users and groups are not checked for uniqueness, nor are externalIds.
#[derive(Debug, Default)]
pub struct Keyed(HashMap<String, BTreeSet<String>>);

impl Keyed {
    /// Files `id` under `key`.
    pub fn insert(&mut self, key: String, id: &str) {
        self.0.entry(key).or_default().insert(id.to_owned());
    }

    /// Takes `id` from under `key`, dropping the key when nothing is left under it.
    pub fn remove(&mut self, key: &str, id: &str) {
        if let Some(ids) = self.0.get_mut(key) {
            ids.remove(id);
            if ids.is_empty() {
                self.0.remove(key);
            }
        }
    }

    /// The ids under `key`, in id order.
    pub fn get<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        self.0.get(key).into_iter().flatten().map(String::as_str)
    }

    /// Whether `id` is under `key`.
    pub fn contains(&self, key: &str, id: &str) -> bool {
        self.0.get(key).is_some_and(|ids| ids.contains(id))
    }

    /// Every `(key, id)` pair, sorted (for checking the index against the data).
    #[cfg(test)]
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .0
            .iter()
            .flat_map(|(k, ids)| ids.iter().map(move |id| (k.clone(), id.clone())))
            .collect();
        pairs.sort();
        pairs
    }
}

/// Ids in ascending order, for serving list pages by position (the order `GET /Users` and
/// `GET /Groups` have always listed in). Records are never deleted, so ids only arrive; new
/// ids are the greatest so far unless a test seeds one of its own.
#[derive(Debug, Default)]
pub struct Ordered(Vec<String>);

impl Ordered {
    /// Adds `id` in its place, unless it is there already.
    pub fn insert(&mut self, id: &str) {
        if self.0.last().is_none_or(|last| last.as_str() < id) {
            self.0.push(id.to_owned());
        } else if let Err(at) = self.0.binary_search_by(|x| x.as_str().cmp(id)) {
            self.0.insert(at, id.to_owned());
        }
    }

    /// Up to `count` ids from position `skip` (0-based) on.
    pub fn page(&self, skip: usize, count: usize) -> &[String] {
        let from = skip.min(self.0.len());
        let to = from.saturating_add(count).min(self.0.len());
        &self.0[from..to]
    }

    /// Every id, in order.
    #[cfg(test)]
    pub fn all(&self) -> &[String] {
        &self.0
    }
}

/// The indexes.
#[derive(Debug, Default)]
pub struct Index {
    /// User ids in id order.
    pub user_order: Ordered,
    /// User ids by [`fold`]ed userName (unique in the org, case-insensitively).
    pub user_names: Keyed,
    /// User ids by [`fold`]ed nickName (communityNickname, unique case-insensitively).
    pub nick_names: Keyed,
    /// User ids by externalId as stored (case-sensitive).
    pub external_ids: Keyed,
    /// Group ids in id order.
    pub group_order: Ordered,
    /// Group ids by [`fold`]ed displayName.
    pub group_names: Keyed,
    /// Group ids by member (user id): the groups of a user.
    pub groups_of_user: Keyed,
}

impl Index {
    /// Files a stored user.
    pub fn add_user(&mut self, u: &SimUser) {
        self.user_order.insert(&u.id);
        self.user_names.insert(fold(&u.user_name), &u.id);
        self.nick_names.insert(fold(&u.nick_name), &u.id);
        if let Some(e) = &u.external_id {
            self.external_ids.insert(e.clone(), &u.id);
        }
    }

    /// Unfiles a user about to change (its id stays in the order: users are never deleted).
    pub fn drop_user(&mut self, u: &SimUser) {
        self.user_names.remove(&fold(&u.user_name), &u.id);
        self.nick_names.remove(&fold(&u.nick_name), &u.id);
        if let Some(e) = &u.external_id {
            self.external_ids.remove(e, &u.id);
        }
    }

    /// Files a stored group and its memberships.
    pub fn add_group(&mut self, g: &SimGroup) {
        self.group_order.insert(&g.id);
        self.group_names.insert(fold(&g.display_name), &g.id);
        for m in &g.members {
            self.groups_of_user.insert(m.clone(), &g.id);
        }
    }

    /// Unfiles a group about to change, with its memberships.
    pub fn drop_group(&mut self, g: &SimGroup) {
        self.group_names.remove(&fold(&g.display_name), &g.id);
        for m in &g.members {
            self.groups_of_user.remove(m, &g.id);
        }
    }
}
