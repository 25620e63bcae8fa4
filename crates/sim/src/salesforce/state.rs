//! The emulator's state: users, groups, tokens, knobs, the request log; and the indexes that
//! keep every request's lookups off a scan of the users.
//!
//! Users and groups are private to this module: they are read through lookups that use
//! the [`index`] and written only through the storing methods here ([`State::put_user`],
//! [`State::update_user`], [`State::put_group`], [`State::add_member`], …), each of which
//! keeps the indexes in step. The rules that decide what to store are in `users.rs` and
//! `groups.rs`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use super::knobs::KnobState;
use super::rules::sf_id;
use super::{ClientKind, LoggedRequest, Reading, SalesforceConfig, SimCatalogue, SimMode};

mod index;

use index::{Index, fold};

/// A user as the emulator stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimUser {
    pub id: String,
    /// Lower-cased.
    pub user_name: String,
    pub external_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub nick_name: String,
    pub title: Option<String>,
    /// The verified email, what GET shows.
    pub email: String,
    /// An email change waiting for verification.
    pub pending_email: Option<String>,
    /// Verification emails sent for this user.
    pub verification_emails: u32,
    /// `(type, number)`.
    pub phones: Vec<(String, String)>,
    pub active: bool,
    pub profile: Option<String>,
    pub permission_sets: Vec<String>,
    pub role: Option<String>,
    /// Enterprise extension attributes (employeeNumber, department, …; manager as `{value}`).
    pub enterprise: BTreeMap<String, Value>,
    pub federation_id: Option<String>,
    pub version: u64,
}

/// A public group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimGroup {
    pub id: String,
    pub display_name: String,
    pub members: Vec<String>,
    pub version: u64,
}

/// What an issued token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    pub kind: ClientKind,
    /// False once revoked or expired.
    pub valid: bool,
}

/// Everything the emulator holds.
#[derive(Debug)]
pub struct State {
    pub mode: SimMode,
    pub catalogue: SimCatalogue,
    pub tokens: HashMap<String, TokenInfo>,
    pub tokens_issued: u64,
    pub knobs: KnobState,
    pub log: Vec<LoggedRequest>,
    pub verification_emails: u64,
    pub rate_rejections: Vec<Duration>,
    pub api_used: u64,
    /// The org's daily API allocation (from [`SalesforceConfig::daily_api_limit`]; a knob).
    pub api_limit: u64,
    pub allow_group_creation: bool,
    pub reading: Reading,
    /// The counter behind new user and group ids.
    next_id: u64,
    /// Users by id.
    users: BTreeMap<String, SimUser>,
    /// Groups by id.
    groups: BTreeMap<String, SimGroup>,
    /// Lookups over `users` and `groups`, in step with them.
    index: Index,
}

impl State {
    /// An org with no users or groups.
    pub fn new(config: &SalesforceConfig) -> Self {
        Self {
            mode: config.mode,
            catalogue: config.catalogue.clone(),
            tokens: HashMap::new(),
            tokens_issued: 0,
            knobs: KnobState::default(),
            log: Vec::new(),
            verification_emails: 0,
            rate_rejections: Vec::new(),
            api_used: 0,
            api_limit: config.daily_api_limit,
            allow_group_creation: config.allow_group_creation,
            reading: config.reading.clone(),
            next_id: 1,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            index: Index::default(),
        }
    }

    /// A new id with this 3-character prefix (`005` users, `00G` groups).
    pub fn next_id(&mut self, prefix: &str) -> String {
        let id = sf_id(prefix, self.next_id);
        self.next_id += 1;
        id
    }

    /// Every token issued so far stops working.
    pub fn revoke_tokens(&mut self) {
        for t in self.tokens.values_mut() {
            t.valid = false;
        }
    }

    // Users: lookups.

    /// The user with this id.
    pub fn user(&self, id: &str) -> Option<&SimUser> {
        self.users.get(id)
    }

    /// Every user, in id order.
    pub fn users(&self) -> impl Iterator<Item = &SimUser> {
        self.users.values()
    }

    /// How many users there are.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Up to `count` users from position `skip` (0-based) in id order.
    pub fn users_page(&self, skip: usize, count: usize) -> impl Iterator<Item = &SimUser> {
        self.index
            .user_order
            .page(skip, count)
            .iter()
            .filter_map(|id| self.users.get(id))
    }

    /// The users whose userName is `name` ignoring ASCII case, in id order.
    pub fn users_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a SimUser> + use<'a> {
        self.index
            .user_names
            .get(&fold(name))
            .filter_map(|id| self.users.get(id))
    }

    /// The users with this externalId (case-sensitive), in id order.
    pub fn users_with_external_id<'a>(
        &'a self,
        external_id: &str,
    ) -> impl Iterator<Item = &'a SimUser> + use<'a> {
        self.index
            .external_ids
            .get(external_id)
            .filter_map(|id| self.users.get(id))
    }

    /// Whether a user other than `except` (an id) has exactly this (lower-cased) userName.
    pub fn user_name_held(&self, lowered: &str, except: &str) -> bool {
        self.users_named(lowered)
            .any(|u| u.id != except && u.user_name == lowered)
    }

    /// Whether a user other than `except` (an id) has this nickName, ignoring ASCII case.
    pub fn nick_taken(&self, nick: &str, except: &str) -> bool {
        self.index
            .nick_names
            .get(&fold(nick))
            .any(|id| id != except)
    }

    // Users: storing.

    /// Stores `user` under its id, replacing any user with that id.
    pub fn put_user(&mut self, user: SimUser) {
        if let Some(old) = self.users.get(&user.id) {
            self.index.drop_user(old);
        }
        self.index.add_user(&user);
        self.users.insert(user.id.clone(), user);
    }

    /// Changes the user with this id in place (not its id); `None` when there is none.
    pub fn update_user<R>(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut SimUser) -> R,
    ) -> Option<R> {
        let user = self.users.get_mut(id)?;
        self.index.drop_user(user);
        let result = change(user);
        debug_assert_eq!(user.id, id, "update_user must not change the id");
        user.id = id.to_owned();
        self.index.add_user(user);
        Some(result)
    }

    /// Creates a user directly (a seeded account: no rule is checked). Returns its id.
    pub fn insert_user(&mut self, mut user: SimUser) -> String {
        if user.id.is_empty() {
            user.id = self.next_id("005");
        }
        user.user_name = user.user_name.to_lowercase();
        if user.nick_name.is_empty() {
            user.nick_name = user.user_name.clone();
        }
        user.version = 1;
        let id = user.id.clone();
        self.put_user(user);
        id
    }

    // Groups: lookups.

    /// The group with this id.
    pub fn group(&self, id: &str) -> Option<&SimGroup> {
        self.groups.get(id)
    }

    /// Every group, in id order.
    pub fn groups(&self) -> impl Iterator<Item = &SimGroup> {
        self.groups.values()
    }

    /// How many groups there are.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Up to `count` groups from position `skip` (0-based) in id order.
    pub fn groups_page(&self, skip: usize, count: usize) -> impl Iterator<Item = &SimGroup> {
        self.index
            .group_order
            .page(skip, count)
            .iter()
            .filter_map(|id| self.groups.get(id))
    }

    /// The groups whose displayName is `name` ignoring ASCII case, in id order.
    pub fn groups_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a SimGroup> + use<'a> {
        self.index
            .group_names
            .get(&fold(name))
            .filter_map(|id| self.groups.get(id))
    }

    /// The groups `user_id` is a member of, in id order.
    pub fn groups_of<'a>(&'a self, user_id: &str) -> impl Iterator<Item = &'a SimGroup> + use<'a> {
        self.index
            .groups_of_user
            .get(user_id)
            .filter_map(|id| self.groups.get(id))
    }

    // Groups: storing.

    /// Stores `group` under its id, replacing any group with that id (and its members).
    pub fn put_group(&mut self, group: SimGroup) {
        if let Some(old) = self.groups.get(&group.id) {
            self.index.drop_group(old);
        }
        self.index.add_group(&group);
        self.groups.insert(group.id.clone(), group);
    }

    /// Creates an empty group directly. Returns its id.
    pub fn insert_group(&mut self, name: &str) -> String {
        let id = self.next_id("00G");
        self.put_group(SimGroup {
            id: id.clone(),
            display_name: name.to_owned(),
            members: Vec::new(),
            version: 1,
        });
        id
    }

    /// Renames a group; false when there is none.
    pub fn set_group_name(&mut self, id: &str, name: &str) -> bool {
        let Some(group) = self.groups.get_mut(id) else {
            return false;
        };
        self.index
            .group_names
            .remove(&fold(&group.display_name), id);
        group.display_name = name.to_owned();
        self.index.group_names.insert(fold(name), id);
        true
    }

    /// Adds `user_id` to the members of a group (last) unless it is one; false when there is
    /// no such group.
    pub fn add_member(&mut self, group_id: &str, user_id: &str) -> bool {
        let Some(group) = self.groups.get_mut(group_id) else {
            return false;
        };
        if !self.index.groups_of_user.contains(user_id, group_id) {
            group.members.push(user_id.to_owned());
            self.index
                .groups_of_user
                .insert(user_id.to_owned(), group_id);
        }
        true
    }

    /// Takes `user_id` from the members of a group; false when there is no such group.
    pub fn remove_member(&mut self, group_id: &str, user_id: &str) -> bool {
        let Some(group) = self.groups.get_mut(group_id) else {
            return false;
        };
        if self.index.groups_of_user.contains(user_id, group_id) {
            group.members.retain(|m| m != user_id);
            self.index.groups_of_user.remove(user_id, group_id);
        }
        true
    }

    /// Counts a change of the group (its version, which ETags show).
    pub fn bump_group_version(&mut self, id: &str) {
        if let Some(g) = self.groups.get_mut(id) {
            g.version += 1;
        }
    }
}

#[cfg(test)]
mod tests;
