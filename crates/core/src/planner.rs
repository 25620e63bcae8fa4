//! The planner: a pure function from (source, target, links, policy) to a [`Plan`].
//!
//! The rules, in the order a user meets them:
//! - **Scope and status.** A user should hold an active account when in scope (`Scope::All`, or
//!   a member of a scoped group) and enabled ([`DirectoryStatus::is_enabled`]). Users are never
//!   deleted: a linked active account of a user who is not wanted is deactivated (after being
//!   removed from the provisioned groups); a linked inactive account of a wanted user is
//!   reactivated with its other changes in the same request.
//! - **Matching.** The link first (when its target account still exists); else an unlinked
//!   account whose externalId is the source id, then one whose userName equals the wanted
//!   userName case-insensitively (adopted unless its externalId names someone else: a
//!   conflict). Accounts neither linked nor adopted are never touched.
//! - **Validation.** A user whose attributes the target would refuse is rejected, with the field
//!   and what to do; a rejected user gets no operation and no membership.
//! - **Diff.** An update carries exactly the attributes that differ. Unmapped optional
//!   attributes are left alone; mapped ones that are empty in the source are cleared (except
//!   nickName, which is then not sent). Names (given, family, display) are set, never cleared.
//!   userName and email compare case-insensitively.
//! - **Governance.** The highest-priority group rule of the user's groups, whole, else the
//!   baseline: one profile, the permission sets (removing only those the engine assigned unless
//!   authoritative), the role when the rule names one.
//! - **Groups.** Provisioned groups are linked, adopted by name or created, renamed when their
//!   source name changes; memberships change by set difference over the users the engine owns,
//!   in batches.
//!
//!
//! **Order.** Group creations and adoptions; user creations and adoptions; updates and
//! reactivations; then the creations and updates of users whose userName an update in this
//! plan frees (a rename held back by another account's rename, one level deep); group
//! renames; membership removals; membership additions; deactivations last (after the removals
//! that take the deactivated users out of their groups). Within each step, by source id. The
//! same inputs always give the same plan, in the same order.

use crate::governance::{
    ChosenBy, ResolvedGovernance, ResolvedRule, RuleChoice, choose, resolve, resolve_scope,
};
use crate::ids::{SourceGroupId, TargetGroupId};
use crate::links::{HeldRefusal, Links, UserLink, member_attribute};
use crate::mapping::{MappedUser, is_email};
use crate::plan::{
    AccountDecision, DeactivationReason, Decision, EnterpriseChanges, EntitlementChange, Explain,
    GroupRef, MatchedBy, Note, NoteKind, ObjectKind, Operation, Plan, Rejection, RuleDecision,
    Summary, USER_ATTRIBUTES, UserAttributes, UserChanges, UserRef,
};
use crate::policy::{NameSplit, Policy, Problem, TargetKind};
use crate::refusals::{
    catalogue_fingerprint, create_fingerprint, member_fingerprint, profile_fingerprint,
    split_update, user_name_fingerprint,
};
use crate::source::{DirectoryGroup, DirectoryStatus, DirectoryUser, SourceSnapshot};
use crate::target::{EnterpriseFields, Profile, TargetGroup, TargetSnapshot, TargetUser};
use crate::time::Timestamp;
use index::{IdIndex, IdMap, IdSet, InlineId, map_with_capacity};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// Salesforce's limit on nickName and group names, in characters.
pub const SALESFORCE_NAME_LIMIT: usize = 40;

/// Computes the plan that brings `target` in step with `source` under `policy`.
///
/// `Err` only when the policy cannot be planned with: invalid, or naming profiles, permission
/// sets, roles or groups that do not exist (every problem at once). Objects the target would
/// refuse are not errors: they are [`Plan::rejected`]. `now` is the instant of the plan: it only
/// dates notes (how long an email change has waited); no rule depends on the clock.
pub fn plan(
    source: &SourceSnapshot,
    target: &TargetSnapshot,
    links: &Links,
    policy: &Policy,
    now: Timestamp,
) -> Result<Plan, Vec<Problem>> {
    plan_on_threads(source, target, links, policy, now, None, &Explain::Nobody)
}

/// [`plan`], recording the [`Decision`]s of the users `explain` names.
pub fn plan_explained(
    source: &SourceSnapshot,
    target: &TargetSnapshot,
    links: &Links,
    policy: &Policy,
    now: Timestamp,
    explain: &Explain,
) -> Result<Plan, Vec<Problem>> {
    plan_on_threads(source, target, links, policy, now, None, explain)
}

/// [`plan`] with the number of threads for group memberships forced (tests of determinism).
fn plan_on_threads(
    source: &SourceSnapshot,
    target: &TargetSnapshot,
    links: &Links,
    policy: &Policy,
    now: Timestamp,
    threads: Option<usize>,
    explain: &Explain,
) -> Result<Plan, Vec<Problem>> {
    let mut problems = policy.validate();
    let scope = resolve_scope(&policy.scope, source)
        .map_err(|p| problems.extend(p))
        .ok();
    let governance = resolve(&policy.governance, &target.catalogue, &source.groups)
        .map_err(|p| problems.extend(p))
        .ok();
    let (Some(scope), Some(governance), true) = (scope, governance, problems.is_empty()) else {
        return Err(problems);
    };
    let scope: Option<IdSet<&str>> = scope
        .as_ref()
        .map(|s| s.iter().map(SourceGroupId::as_str).collect());
    let suffixed = suffixed_user_names(source, policy);
    let mut planner = Planner::new(source, target, links, policy, &governance, scope);
    planner.suffixed = &suffixed;
    planner.now = now;
    planner.threads = threads;
    planner.run();
    if *explain != Explain::Nobody {
        for i in 0..planner.users.len() {
            if explain.covers(&planner.users[i].user.id) {
                let decision = planner.decide(i);
                planner.decisions.push(decision);
            }
        }
    }
    Ok(planner.finish())
}

/// How a source user is matched to a target account.
#[derive(Debug, Clone, Copy)]
enum Account<'a> {
    Linked(&'a TargetUser, &'a UserLink),
    Adopt(&'a TargetUser, MatchedBy),
    Create,
    /// The wanted userName is held by an account of another source user; the account may be
    /// renamed away in this plan (then the user is created after the updates).
    Blocked(&'a TargetUser, &'a UserLink),
    /// Created after the updates, which free its userName.
    CreateAfterRename,
    Nothing,
}

#[derive(Debug)]
struct UserState<'a> {
    user: &'a DirectoryUser,
    /// The mapped userName (kept rather than the whole mapping, to keep the state small).
    user_name: Option<&'a str>,
    wanted: bool,
    rejected: bool,
    account: Account<'a>,
    /// Whether the user should be a member of their provisioned groups.
    member: bool,
    /// For a linked user whose userName changes: whether the new one is free.
    rename: Rename<'a>,
    /// The profile the account ends with (what its memberships depend on).
    profile: Option<&'a str>,
}

/// Whether a linked user's new userName can be sent.
#[derive(Debug, Clone)]
enum Rename<'a> {
    /// No change, or the new name is free.
    Free,
    /// Another account holds the new name; settled after matching.
    Blocked(&'a TargetUser),
    /// The holder is renamed away in this plan: update after the other updates.
    Late,
    /// The name stays; the reason goes to the notes and rejections.
    Conflict(String),
}

impl<'a> UserState<'a> {
    fn target(&self) -> Option<&'a TargetUser> {
        match self.account {
            Account::Linked(t, _) | Account::Adopt(t, _) => Some(t),
            Account::Create
            | Account::CreateAfterRename
            | Account::Blocked(..)
            | Account::Nothing => None,
        }
    }

    fn user_ref(&self) -> UserRef {
        let t = self.target();
        UserRef {
            source_id: Some(self.user.id.clone()),
            target_id: t.map(|t| t.id.clone()),
            user_name: t
                .map(|t| t.user_name.as_str())
                .or(self.user_name)
                .unwrap_or(self.user.username.as_str())
                .to_owned(),
        }
    }
}

/// Who owns a target account, for membership removals.
#[derive(Debug, Clone, Copy)]
enum Owner<'a> {
    User(usize),
    /// Linked to a source user who is no longer in the directory.
    Orphan(&'a UserLink, &'a TargetUser),
}

#[derive(Debug)]
struct GroupState<'a> {
    source: &'a DirectoryGroup,
    target: Option<&'a TargetGroup>,
}

struct Planner<'a> {
    source: &'a SourceSnapshot,
    target: &'a TargetSnapshot,
    links: &'a Links,
    policy: &'a Policy,
    gov: &'a ResolvedGovernance,
    scope: Option<IdSet<&'a str>>,
    salesforce: bool,
    /// The instant of the plan (for ages in notes).
    now: Timestamp,
    /// Threads for group memberships; `None`: by directory size and available cores.
    threads: Option<usize>,
    profiles: IdMap<&'a str, &'a Profile>,
    permission_sets: IdSet<&'a str>,
    /// Group id → priority of the rule naming it, and the rule.
    rule_of_group: IdMap<&'a str, (u32, &'a ResolvedRule)>,
    users: Vec<UserState<'a>>,
    groups_created: Vec<Operation>,
    users_created: Vec<Operation>,
    updates: Vec<Operation>,
    late: Vec<Operation>,
    renames: Vec<Operation>,
    removals: Vec<Operation>,
    additions: Vec<Operation>,
    deactivations: Vec<Operation>,
    rejected: Vec<Rejection>,
    notes: Vec<Note>,
    summary: Summary,
    /// The refusals held, by (object, source id, attribute).
    held: IdMap<(ObjectKind, &'a str, &'a str), &'a HeldRefusal>,
    /// [`catalogue_fingerprint`] of the target's catalogue.
    catalogue_fp: String,
    /// User attributes the target does not declare (discovery): never planned.
    undeclared: Vec<&'static str>,
    /// Profiles whose users may not be group members: the catalogue's, the learned ones and
    /// the declared ones.
    no_groups: IdSet<&'a str>,
    /// Members per membership operation.
    batch: usize,
    /// Source user id → index in `users` (built only when refusals are held).
    user_index: IdMap<&'a str, usize>,
    /// Source user id → userName with the configured suffix (empty without one).
    suffixed: &'a IdMap<&'a str, String>,
    decisions: Vec<Decision>,
}

impl std::fmt::Debug for Planner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

fn same_ci(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || (!a.is_ascii() || !b.is_ascii()) && a.to_lowercase() == b.to_lowercase()
}

/// `Some(new)` when `want` differs from `have`.
fn change(want: Option<&str>, have: Option<&str>) -> Option<Option<String>> {
    (want != have).then(|| want.map(str::to_owned))
}

/// `Some(Some(new))` when `want` is set and differs from `have`; never clears.
fn set_only(want: Option<&str>, have: Option<&str>) -> Option<Option<String>> {
    want.filter(|w| Some(*w) != have)
        .map(|w| Some(w.to_owned()))
}

impl<'a> Planner<'a> {
    fn new(
        source: &'a SourceSnapshot,
        target: &'a TargetSnapshot,
        links: &'a Links,
        policy: &'a Policy,
        gov: &'a ResolvedGovernance,
        scope: Option<IdSet<&'a str>>,
    ) -> Self {
        let cat = &target.catalogue;
        let mut rule_of_group: IdMap<&str, (u32, &ResolvedRule)> = IdMap::default();
        for rule in &gov.group_rules {
            for g in &rule.groups {
                rule_of_group
                    .entry(g.as_str())
                    .or_insert((rule.priority, &rule.rule));
            }
        }
        Self {
            source,
            target,
            links,
            policy,
            gov,
            scope,
            salesforce: policy.target_kind == TargetKind::Salesforce,
            now: Timestamp::default(),
            threads: None,
            profiles: cat.profiles.iter().map(|p| (p.id.as_str(), p)).collect(),
            permission_sets: cat.permission_sets.iter().map(|p| p.id.as_str()).collect(),
            rule_of_group,
            users: Vec::with_capacity(source.users.len()),
            groups_created: Vec::new(),
            users_created: Vec::new(),
            updates: Vec::new(),
            late: Vec::new(),
            renames: Vec::new(),
            removals: Vec::new(),
            additions: Vec::new(),
            deactivations: Vec::new(),
            rejected: Vec::new(),
            notes: Vec::new(),
            summary: Summary::default(),
            held: links
                .refusals
                .iter()
                .map(|r| ((r.object, r.source_id.as_str(), r.attribute.as_str()), r))
                .collect(),
            catalogue_fp: catalogue_fingerprint(cat),
            undeclared: target.capabilities.as_ref().map_or_else(Vec::new, |c| {
                USER_ATTRIBUTES
                    .iter()
                    .copied()
                    .filter(|a| !c.declares(a))
                    .collect()
            }),
            no_groups: cat
                .profiles
                .iter()
                .filter(|p| !p.allows_groups)
                .map(|p| p.id.as_str())
                .chain(
                    links
                        .facts
                        .profiles_without_groups
                        .iter()
                        .map(String::as_str),
                )
                .chain(gov.profiles_without_groups.iter().map(String::as_str))
                .collect(),
            batch: links
                .facts
                .member_batch_size
                .map_or(policy.member_batch_size, |learned| {
                    learned.min(policy.member_batch_size)
                })
                .max(1),
            user_index: IdMap::default(),
            suffixed: empty_names(),
            decisions: Vec::new(),
        }
    }

    /// The decision record of user `i`, once planned.
    fn decide(&self, i: usize) -> Decision {
        let s = &self.users[i];
        let user = s.user;
        let mapped = self.evaluate(user);
        let account = match s.account {
            Account::Linked(t, l) => AccountDecision::Linked {
                target_id: t.id.clone(),
                user_name: t.user_name.clone(),
                active: t.active,
                origin: l.origin,
            },
            Account::Adopt(t, matched_by) => AccountDecision::Adopted {
                target_id: t.id.clone(),
                user_name: t.user_name.clone(),
                matched_by,
            },
            Account::Create => AccountDecision::Create,
            Account::CreateAfterRename => AccountDecision::CreateAfterRename,
            Account::Blocked(..) | Account::Nothing => AccountDecision::None,
        };
        let rule = self.rule_for(user).map(|c| RuleDecision {
            priority: match c.by {
                ChosenBy::Baseline => None,
                ChosenBy::GroupRule { priority, .. } => Some(priority),
            },
            group: match c.by {
                ChosenBy::Baseline => None,
                ChosenBy::GroupRule { group, .. } => Some(SourceGroupId::from(group)),
            },
            profile: c.rule.profile.clone(),
            permission_sets: c.rule.permission_sets.clone(),
            role: c.rule.role.clone(),
        });
        Decision {
            source_id: user.id.clone(),
            user_name: mapped.user_name.unwrap_or(&user.username).to_owned(),
            in_scope: self.in_scope(user),
            scope_groups: match &self.scope {
                None => Vec::new(),
                Some(groups) => user
                    .groups
                    .iter()
                    .filter(|g| groups.contains(g.as_str()))
                    .cloned()
                    .collect(),
            },
            enabled: user.status.is_enabled(),
            account,
            rule,
            names: mapped.derivation(),
            profile: s.profile.map(str::to_owned),
            member: s.member,
            rejected: s.rejected,
        }
    }

    /// The mapping of `user`, with the userName suffix applied.
    fn evaluate(&self, user: &'a DirectoryUser) -> MappedUser<'a> {
        let mut mapped = self.policy.mapping.evaluate(user);
        if let Some(name) = self.suffixed.get(user.id.as_str()) {
            mapped.user_name = Some(name.as_str());
        }
        mapped
    }

    fn reject(
        &mut self,
        object: ObjectKind,
        source_id: &str,
        name: &str,
        field: &str,
        reason: String,
    ) {
        self.rejected.push(Rejection {
            object,
            source_id: source_id.to_owned(),
            name: name.to_owned(),
            field: field.to_owned(),
            reason,
        });
    }

    fn note(
        &mut self,
        kind: NoteKind,
        object: ObjectKind,
        source_id: &str,
        name: &str,
        message: String,
    ) {
        self.notes.push(Note {
            kind,
            object,
            source_id: source_id.to_owned(),
            name: name.to_owned(),
            message,
        });
    }

    fn is_profile(&self, e: &crate::target::Entitlement) -> bool {
        crate::target::is_profile(
            e,
            self.profiles.contains_key(e.value.as_str()),
            self.permission_sets.contains(e.value.as_str()),
        )
    }

    /// The refusal of this very write (same fingerprint), when the target refused it before.
    fn held(
        &self,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
        fp: &str,
    ) -> Option<&'a HeldRefusal> {
        if self.held.is_empty() {
            return None;
        }
        self.held
            .get(&(object, source_id, attribute))
            .copied()
            .filter(|r| r.fingerprint == fp)
    }

    /// Leaves a write refused before out of the plan: counted as held, with a note.
    fn hold(&mut self, object: ObjectKind, source_id: &str, name: &str, r: &HeldRefusal) {
        self.summary.held += 1;
        let message = format!(
            "{} ({}) was refused by the target at {}: {}; not sent again until the value, the rule or the catalogue changes \
             (`scimsync reconcile --retry-refused` sends it again)",
            r.attribute, r.value, r.at, r.reason
        );
        self.note(NoteKind::RefusedEarlier, object, source_id, name, message);
    }

    fn in_scope(&self, user: &DirectoryUser) -> bool {
        match &self.scope {
            None => true,
            Some(groups) => user.groups.iter().any(|g| groups.contains(g.as_str())),
        }
    }

    fn rule_for(&self, user: &'a DirectoryUser) -> Option<RuleChoice<'a>> {
        let matches = user.groups.iter().filter_map(|g| {
            self.rule_of_group
                .get(g.as_str())
                .map(|(priority, rule)| (*priority, g.as_str(), *rule))
        });
        choose(matches, self.gov.baseline.as_ref())
    }

    fn run(&mut self) {
        let source = self.source;
        let target = self.target;
        let links = self.links;
        self.summary.source_users = source.users.len();
        self.summary.source_groups = source.groups.len();
        self.summary.target_users = target.users.len();
        let unsent: Vec<&str> = mapped_attributes(self.policy)
            .into_iter()
            .filter(|a| self.undeclared.contains(a))
            .collect();
        if !unsent.is_empty() {
            let message = format!(
                "the target does not declare {}, so {} not sent (`scimsync check` shows what the target declares)",
                unsent.join(", "),
                if unsent.len() == 1 {
                    "it is"
                } else {
                    "they are"
                }
            );
            self.note(
                NoteKind::NotDeclared,
                ObjectKind::Connection,
                "",
                "mapping",
                message,
            );
        }

        let mut target_by_id: IdIndex<'_, &TargetUser> = IdIndex::with_capacity(target.users.len());
        for u in &target.users {
            target_by_id.insert_first(u.id.as_str(), u);
        }
        // Source id → position in `links.users`; `seen_link` marks links whose source user is
        // in the directory, the others are orphans.
        let mut link_by_source: IdIndex<'_, usize> = IdIndex::with_capacity(links.users.len());
        let mut seen_link: Vec<bool> = vec![false; links.users.len()];
        let mut linked_targets: IdIndex<'_, &UserLink> = IdIndex::with_capacity(links.users.len());
        for (n, link) in links.users.iter().enumerate() {
            link_by_source.insert_first(link.source_id.as_str(), n);
            linked_targets.insert_first(link.target_id.as_str(), link);
        }
        let mut by_external_id: IdMap<&str, &TargetUser> = IdMap::default();
        let mut by_user_name: IdMap<Cow<'_, str>, &TargetUser> =
            map_with_capacity(target.users.len());
        for u in &target.users {
            if linked_targets.get(u.id.as_str()).is_some() {
                self.summary.managed_active_users += usize::from(u.active);
            } else if let Some(ext) = u.external_id.as_deref() {
                by_external_id.entry(ext).or_insert(u);
            }
            by_user_name.entry(lower(&u.user_name)).or_insert(u);
        }

        // Sorted by id through inline keys, so comparisons do not chase each id's string.
        let mut order: Vec<(Option<InlineId>, &DirectoryUser)> = source
            .users
            .iter()
            .map(|u| (InlineId::new(u.id.as_str()), u))
            .collect();
        order.sort_unstable_by(|(ka, a), (kb, b)| match (ka, kb) {
            (Some(ka), Some(kb)) => ka.cmp_bytes(kb).then_with(|| a.id.cmp(&b.id)),
            _ => a.id.cmp(&b.id),
        });
        let mut previous: Option<&str> = None;
        let mut claimed: IdSet<&str> = IdSet::default();
        let mut wanted_names: IdMap<Cow<'_, str>, &str> = IdMap::default();

        // Pass 1: scope, validation, matching.
        for (_, user) in order {
            if previous.replace(user.id.as_str()) == Some(user.id.as_str()) {
                continue; // a duplicate id in the source: the first one counts
            }
            let mapped = self.evaluate(user);
            let wanted = self.in_scope(user) && user.status.is_enabled();
            let link = link_by_source.get(user.id.as_str()).map(|&n| {
                seen_link[n] = true;
                &links.users[n]
            });
            let linked = link.and_then(|l| target_by_id.get(l.target_id.as_str()).map(|t| (*t, l)));
            let mut state = UserState {
                user,
                user_name: mapped.user_name,
                wanted,
                rejected: false,
                account: Account::Nothing,
                member: false,
                rename: Rename::Free,
                profile: None,
            };
            if let Some((t, l)) = linked {
                state.account = Account::Linked(t, l);
            }
            if wanted {
                self.summary.users_in_scope += 1;
                let creating = linked.is_none();
                if let Some((field, reason)) = self.validate_user(&mapped, creating) {
                    let name = mapped.user_name.unwrap_or(&user.username);
                    self.reject(ObjectKind::User, user.id.as_str(), name, field, reason);
                    state.rejected = true;
                } else if creating {
                    // Validation guarantees a userName.
                    let name = mapped.user_name.unwrap_or_default();
                    let key = lower(name);
                    if let Some(other) = wanted_names.get(&key) {
                        let reason = format!(
                            "source user {other} already has userName {name:?}; a userName is unique on the target"
                        );
                        self.reject(ObjectKind::User, user.id.as_str(), name, "userName", reason);
                        state.rejected = true;
                    } else {
                        state.account = self.match_account(
                            user,
                            name,
                            &key,
                            &by_external_id,
                            &by_user_name,
                            &linked_targets,
                            &mut claimed,
                        );
                        if matches!(state.account, Account::Nothing) {
                            state.rejected = true;
                        }
                        wanted_names.insert(key, user.id.as_str());
                    }
                } else if let (Some(name), Some((t, _))) = (mapped.user_name, linked)
                    && !same_ci(name, &t.user_name)
                {
                    // A linked user renamed: the new name must be free, and no new user may
                    // take it. (Unchanged names are found through the target's userName index.)
                    let key = lower(name);
                    if let Some(other) = wanted_names.get(&key) {
                        state.rename = Rename::Conflict(format!(
                            "source user {other} also wants userName {name:?}; the userName is not changed"
                        ));
                    } else {
                        if let Some(holder) = by_user_name.get(&key).filter(|h| h.id != t.id) {
                            state.rename = Rename::Blocked(holder);
                        }
                        wanted_names.insert(key, user.id.as_str());
                    }
                }
            }
            self.users.push(state);
        }

        self.settle_blocked(&linked_targets);

        // Managers: source id → target id, for users whose account exists now.
        let manager_ids: IdMap<&str, Option<&str>> = if self.policy.mapping.manager.is_some() {
            self.users
                .iter()
                .map(|s| (s.user.id.as_str(), s.target().map(|t| t.id.as_str())))
                .collect()
        } else {
            IdMap::default()
        };

        // Pass 2: operations per user.
        for i in 0..self.users.len() {
            self.plan_user(i, &manager_ids);
        }

        // Accounts linked to users who left the directory. Users the source returned but
        // could not read are not gone: their accounts are left as they are.
        let unreadable: std::collections::HashSet<&str> =
            source.unreadable.iter().map(|id| id.as_str()).collect();
        let mut orphans: Vec<&UserLink> = links
            .users
            .iter()
            .enumerate()
            .filter(|(n, l)| {
                !seen_link[*n]
                    && link_by_source.get(l.source_id.as_str()) == Some(n)
                    && !unreadable.contains(l.source_id.as_str())
            })
            .map(|(_, l)| l)
            .collect();
        orphans.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        orphans.dedup_by(|a, b| a.source_id == b.source_id);
        // Records without a usable id may be any of these users: bad data never deletes.
        if !source.unidentified.is_empty() {
            let shown: Vec<&str> = source
                .unidentified
                .iter()
                .take(3)
                .map(String::as_str)
                .collect();
            let message = format!(
                "not deactivated: the directory returned {} record(s) without a usable id ({}{}), and one may be this user's; fix them and the next run decides",
                source.unidentified.len(),
                shown.join("; "),
                if source.unidentified.len() > 3 {
                    "; …"
                } else {
                    ""
                }
            );
            for link in std::mem::take(&mut orphans) {
                let name = target_by_id
                    .get(link.target_id.as_str())
                    .map(|t| t.user_name.clone())
                    .unwrap_or_default();
                self.note(
                    NoteKind::SourceUnidentified,
                    ObjectKind::User,
                    link.source_id.as_str(),
                    &name,
                    message.clone(),
                );
            }
        }
        let mut owners: IdIndex<'_, Owner<'_>> = IdIndex::with_capacity(self.users.len());
        for (i, s) in self.users.iter().enumerate() {
            if let Some(t) = s.target() {
                owners.insert_first(t.id.as_str(), Owner::User(i));
            }
        }
        for link in &orphans {
            if let Some(t) = target_by_id.get(link.target_id.as_str()) {
                owners.insert_first(t.id.as_str(), Owner::Orphan(link, t));
                if t.active {
                    self.deactivations.push(Operation::DeactivateUser {
                        source_id: link.source_id.clone(),
                        target_id: t.id.clone(),
                        user_name: t.user_name.clone(),
                        reason: DeactivationReason::LeftDirectory,
                    });
                }
            }
        }

        if !self.policy.exclude_groups {
            self.plan_groups(&owners);
        }
    }

    /// The first reason the target would refuse this user, as (field, message).
    fn validate_user(
        &self,
        mapped: &MappedUser<'_>,
        creating: bool,
    ) -> Option<(&'static str, String)> {
        let Some(email) = mapped.email else {
            return Some(("email", "the source directory has no email address for this user; the target needs a work email".to_owned()));
        };
        if !is_email(email) {
            return Some(("email", format!("{email:?} is not an email address")));
        }
        let Some(name) = mapped.user_name else {
            return Some((
                "userName",
                format!(
                    "the source attribute mapped to userName ({:?}) is empty for this user",
                    self.policy.mapping.user_name
                ),
            ));
        };
        if !is_email(name) {
            return Some((
                "userName",
                format!(
                    "userName {name:?} is not an email address; map userName to a source attribute that holds one"
                ),
            ));
        }
        if self.salesforce {
            let mapping = &self.policy.mapping;
            if creating && mapped.family_name.is_none() {
                let reason = if mapping.name_split == NameSplit::None {
                    "Salesforce requires a last name and this user has none: Duo's \"lastname\" is empty, \
                     and the connection's mapping sets name_split = \"none\", so none is derived from \"realname\"; \
                     fill \"lastname\" in Duo, or set name_split = \"last_word\" (or \"first_word\") in the mapping"
                } else {
                    "Salesforce requires a last name and none can be derived for this user: Duo's \"lastname\", \
                     \"realname\" and \"username\" are all empty; fill \"lastname\" (or \"realname\") in Duo"
                };
                return Some(("name.familyName", reason.to_owned()));
            }
            let limit = SALESFORCE_NAME_LIMIT;
            if let Some(nick) = mapped.nick_name
                && nick.chars().count() > limit
            {
                return Some((
                    "nickName",
                    format!(
                        "nickName {nick:?} is {} characters; Salesforce allows at most {limit}",
                        nick.chars().count()
                    ),
                ));
            }
            let length = name.chars().count();
            if creating && length > limit {
                match &mapping.nick_name {
                    None => {
                        return Some((
                            "nickName",
                            format!(
                                "userName {name:?} is {length} characters and nickName is not mapped, so Salesforce derives nickName from it \
                                 and refuses it over {limit}; map nickName to a source attribute of at most {limit} characters"
                            ),
                        ));
                    }
                    Some(source) if mapped.nick_name.is_none() => {
                        return Some((
                            "nickName",
                            format!(
                                "nickName is mapped to Duo attribute \"{source}\", which is empty for this user, and userName {name:?} \
                                 is {length} characters: Salesforce would derive nickName from it and refuse it over {limit}; \
                                 fill \"{source}\" in Duo (at most {limit} characters)"
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        None
    }

    /// Users whose userName is held by another source user's account: created after the
    /// updates when that account is renamed away in this plan, else rejected as a conflict.
    fn settle_blocked(&mut self, linked_targets: &IdIndex<'a, &'a UserLink>) {
        let blocked: Vec<usize> = (0..self.users.len())
            .filter(|&i| {
                matches!(self.users[i].account, Account::Blocked(..))
                    || matches!(self.users[i].rename, Rename::Blocked(_))
            })
            .collect();
        if blocked.is_empty() {
            return;
        }
        let index: IdMap<&str, usize> = self
            .users
            .iter()
            .enumerate()
            .map(|(i, s)| (s.user.id.as_str(), i))
            .collect();
        let renamed_away = |users: &[UserState<'a>], owner: &str, t: &TargetUser| {
            index.get(owner).is_some_and(|&o| {
                let o = &users[o];
                o.wanted
                    && !o.rejected
                    && matches!(o.account, Account::Linked(ot, _) if ot.id == t.id)
                    && o.user_name.is_some_and(|n| !same_ci(n, &t.user_name))
            })
        };
        for &i in &blocked {
            let Rename::Blocked(holder) = self.users[i].rename else {
                continue;
            };
            let owner = linked_targets
                .get(holder.id.as_str())
                .map(|l| l.source_id.as_str());
            self.users[i].rename = if owner.is_some_and(|o| renamed_away(&self.users, o, holder)) {
                Rename::Late
            } else {
                Rename::Conflict(format!(
                    "userName {:?} is held by target account {}{}; the userName is not changed",
                    holder.user_name,
                    holder.id,
                    owner
                        .map(|o| format!(" of source user {o}"))
                        .unwrap_or_default()
                ))
            };
        }
        for i in blocked {
            let Account::Blocked(t, owner) = self.users[i].account else {
                continue;
            };
            if renamed_away(&self.users, owner.source_id.as_str(), t) {
                self.users[i].account = Account::CreateAfterRename;
                continue;
            }
            let state = &self.users[i];
            let sid = state.user.id.as_str();
            let name = state.user_name.unwrap_or(&state.user.username);
            let reason = format!(
                "userName {name:?} is taken by target account {} which belongs to source user {}; a userName is unique on the target",
                t.id, owner.source_id
            );
            self.note(
                NoteKind::Conflict,
                ObjectKind::User,
                sid,
                name,
                reason.clone(),
            );
            self.reject(ObjectKind::User, sid, name, "userName", reason);
            self.users[i].account = Account::Nothing;
            self.users[i].rejected = true;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn match_account(
        &mut self,
        user: &'a DirectoryUser,
        name: &str,
        key: &str,
        by_external_id: &IdMap<&'a str, &'a TargetUser>,
        by_user_name: &IdMap<Cow<'a, str>, &'a TargetUser>,
        linked_targets: &IdIndex<'a, &'a UserLink>,
        claimed: &mut IdSet<&'a str>,
    ) -> Account<'a> {
        if let Some(t) = by_external_id.get(user.id.as_str())
            && claimed.insert(t.id.as_str())
        {
            return Account::Adopt(t, MatchedBy::ExternalId);
        }
        let Some(t) = by_user_name.get(key) else {
            return Account::Create;
        };
        let sid = user.id.as_str();
        if let Some(owner) = linked_targets.get(t.id.as_str()) {
            return Account::Blocked(t, owner);
        }
        if let Some(ext) = t.external_id.as_deref().filter(|e| *e != sid) {
            let reason = format!(
                "target account {} has userName {name:?} but externalId {ext:?}, not this user's id; it is not adopted. \
                 Clear or correct its externalId on the target to let scimsync manage it",
                t.id
            );
            self.note(
                NoteKind::Conflict,
                ObjectKind::User,
                sid,
                name,
                reason.clone(),
            );
            self.reject(ObjectKind::User, sid, name, "userName", reason);
            return Account::Nothing;
        }
        if !claimed.insert(t.id.as_str()) {
            let reason = format!(
                "target account {} with userName {name:?} is already matched to another source user",
                t.id
            );
            self.reject(ObjectKind::User, sid, name, "userName", reason);
            return Account::Nothing;
        }
        Account::Adopt(t, MatchedBy::UserName)
    }

    fn plan_user(&mut self, i: usize, manager_ids: &IdMap<&str, Option<&str>>) {
        let state = &self.users[i];
        let user = state.user;
        let (wanted, rejected, account) = (state.wanted, state.rejected, state.account);
        if !wanted {
            if let Account::Linked(t, _) = account
                && t.active
            {
                let reason = match user.status {
                    DirectoryStatus::Disabled => DeactivationReason::Disabled,
                    DirectoryStatus::PendingDeletion => DeactivationReason::PendingDeletion,
                    _ => DeactivationReason::OutOfScope,
                };
                self.deactivations.push(Operation::DeactivateUser {
                    source_id: user.id.clone(),
                    target_id: t.id.clone(),
                    user_name: t.user_name.clone(),
                    reason,
                });
            }
            return;
        }
        if rejected {
            return;
        }
        let mapped = self.evaluate(user);
        let rule = self.rule_for(user).map(|c| c.rule);
        let manager = self.manager_of(&mapped, manager_ids);
        let member_profile: Option<&str>;
        match account {
            Account::Nothing | Account::Blocked(..) => return,
            Account::Create | Account::CreateAfterRename => {
                let mut attributes = self.attributes(user, &mapped, rule, manager);
                for name in &self.undeclared {
                    attributes.remove(name);
                }
                let sid = user.id.as_str();
                let held = self
                    .held(
                        ObjectKind::User,
                        sid,
                        "userName",
                        &user_name_fingerprint(&attributes.user_name),
                    )
                    .or_else(|| {
                        self.held(
                            ObjectKind::User,
                            sid,
                            "create",
                            &create_fingerprint(&attributes, &self.catalogue_fp),
                        )
                    });
                if let Some(r) = held {
                    let name = attributes.user_name.clone();
                    self.hold(ObjectKind::User, sid, &name, r);
                    return;
                }
                for (attribute, single) in attributes.optional_writes() {
                    let write = split_update(&single, None, &self.catalogue_fp);
                    if let Some(r) = write
                        .first()
                        .and_then(|w| self.held(ObjectKind::User, sid, attribute, &w.fingerprint))
                    {
                        attributes.remove(attribute);
                        let name = attributes.user_name.clone();
                        self.hold(ObjectKind::User, sid, &name, r);
                    }
                }
                member_profile = rule.map(|r| r.profile.as_str());
                self.summary.create_user += 1;
                let op = Operation::CreateUser {
                    source_id: user.id.clone(),
                    attributes,
                };
                if matches!(account, Account::CreateAfterRename) {
                    self.late.push(op);
                } else {
                    self.users_created.push(op);
                }
            }
            Account::Adopt(t, _) | Account::Linked(t, _) => {
                let link = match account {
                    Account::Linked(_, l) => Some(l),
                    _ => None,
                };
                if let Account::Adopt(_, matched_by) = account {
                    self.summary.adopt_user += 1;
                    self.users_created.push(Operation::AdoptUser {
                        source_id: user.id.clone(),
                        target_id: t.id.clone(),
                        user_name: t.user_name.clone(),
                        matched_by,
                    });
                }
                let (mut changes, profile) = self.changes(user, &mapped, t, link, rule, manager);
                member_profile = profile;
                self.leave_out_held(user.id.as_str(), t, &mut changes);
                let late = match &self.users[i].rename {
                    Rename::Late => true,
                    Rename::Conflict(reason) => {
                        let reason = reason.clone();
                        let name = mapped.user_name.unwrap_or(&user.username);
                        changes.user_name = None;
                        self.note(
                            NoteKind::Conflict,
                            ObjectKind::User,
                            user.id.as_str(),
                            name,
                            reason.clone(),
                        );
                        self.reject(ObjectKind::User, user.id.as_str(), name, "userName", reason);
                        false
                    }
                    Rename::Free | Rename::Blocked(_) => false,
                };
                let bucket = if late {
                    &mut self.late
                } else {
                    &mut self.updates
                };
                if !t.active {
                    changes.active = Some(true);
                    self.summary.reactivate_user += 1;
                    bucket.push(Operation::ReactivateUser {
                        source_id: user.id.clone(),
                        target_id: t.id.clone(),
                        user_name: t.user_name.clone(),
                        changes,
                    });
                } else if changes.is_empty() {
                    self.summary.unchanged_users += 1;
                } else {
                    self.summary.update_user += 1;
                    bucket.push(Operation::UpdateUser {
                        source_id: user.id.clone(),
                        target_id: t.id.clone(),
                        user_name: t.user_name.clone(),
                        changes,
                    });
                }
            }
        }
        self.users[i].profile = member_profile;
        let allows = member_profile.is_none_or(|p| !self.no_groups.contains(p));
        if allows {
            self.users[i].member = true;
        } else if !self.policy.exclude_groups
            && user
                .groups
                .iter()
                .any(|g| self.provisions_group(g.as_str()))
        {
            let name = mapped.user_name.unwrap_or(&user.username);
            let message = format!(
                "profile {} does not allow group membership; the user is kept out of its groups",
                member_profile
                    .map(|p| self.profile_label(p))
                    .unwrap_or_default()
            );
            self.note(
                NoteKind::ProfileForbidsGroups,
                ObjectKind::User,
                user.id.as_str(),
                name,
                message,
            );
        }
    }

    /// Takes out of `changes` what the target does not declare and what it refused before.
    fn leave_out_held(&mut self, sid: &str, t: &TargetUser, changes: &mut UserChanges) {
        for name in &self.undeclared {
            changes.remove(name);
        }
        if self.held.is_empty() || changes.is_empty() {
            return;
        }
        let current = t
            .entitlements
            .iter()
            .find(|e| self.is_profile(e))
            .map(|e| e.value.as_str());
        for write in split_update(changes, current, &self.catalogue_fp) {
            if let Some(r) = self.held(ObjectKind::User, sid, write.attribute, &write.fingerprint) {
                changes.remove(write.attribute);
                self.hold(ObjectKind::User, sid, &t.user_name, r);
            }
        }
    }

    fn profile_label(&self, id: &str) -> String {
        match self.profiles.get(id) {
            Some(p) => format!("{:?} ({id})", p.name),
            None => id.to_owned(),
        }
    }

    fn provisions_group(&self, id: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(id))
    }

    /// The manager's target id: `Ok(Some)` resolved, `Ok(None)` clear, `Err(())` leave alone
    /// (the manager's account is created in this plan; the next run sets it).
    fn manager_of(
        &self,
        mapped: &MappedUser<'_>,
        manager_ids: &IdMap<&str, Option<&'a str>>,
    ) -> Result<Option<&'a str>, ()> {
        if self.policy.mapping.manager.is_none() {
            return Err(());
        }
        match mapped.manager_source_id {
            None => Ok(None),
            Some(sid) => match manager_ids.get(sid) {
                Some(Some(t)) => Ok(Some(*t)),
                Some(None) => Err(()),
                None => Ok(None),
            },
        }
    }

    fn attributes(
        &self,
        user: &DirectoryUser,
        m: &MappedUser<'_>,
        rule: Option<&ResolvedRule>,
        manager: Result<Option<&str>, ()>,
    ) -> UserAttributes {
        let s = |v: Option<&str>| v.map(str::to_owned);
        UserAttributes {
            user_name: m.user_name.unwrap_or_default().to_owned(),
            external_id: user.id.as_str().to_owned(),
            given_name: s(m.given_name),
            family_name: s(m.family_name),
            display_name: s(m.display_name),
            nick_name: s(m.nick_name),
            title: s(m.title),
            email: m.email.unwrap_or_default().to_owned(),
            work_phone: s(m.work_phone),
            federation_id: s(m.federation_id),
            enterprise: EnterpriseFields {
                employee_number: s(m.employee_number),
                department: s(m.department),
                division: s(m.division),
                organization: s(m.organization),
                cost_center: s(m.cost_center),
                manager: manager.ok().flatten().map(str::to_owned),
            },
            profile: rule.map(|r| r.profile.clone()),
            permission_sets: rule.map(|r| r.permission_sets.clone()).unwrap_or_default(),
            role: rule.and_then(|r| r.role.clone()),
        }
    }

    /// The changes an existing account needs, and the profile it ends with.
    fn changes(
        &mut self,
        user: &DirectoryUser,
        m: &MappedUser<'_>,
        t: &'a TargetUser,
        link: Option<&UserLink>,
        rule: Option<&'a ResolvedRule>,
        manager: Result<Option<&str>, ()>,
    ) -> (UserChanges, Option<&'a str>) {
        let mapping = &self.policy.mapping;
        let mut c = UserChanges::default();
        let sid = user.id.as_str();
        if let Some(name) = m.user_name
            && !same_ci(name, &t.user_name)
        {
            c.user_name = Some(name.to_owned());
        }
        if t.external_id.as_deref() != Some(sid) {
            c.external_id = Some(sid.to_owned());
        }
        c.given_name = set_only(m.given_name, t.given_name.as_deref());
        c.family_name = set_only(m.family_name, t.family_name.as_deref());
        c.display_name = set_only(m.display_name, t.display_name.as_deref());
        if let Some(nick) = m.nick_name
            && t.nick_name.as_deref() != Some(nick)
        {
            c.nick_name = Some(nick.to_owned());
        }
        if mapping.title.is_some() {
            c.title = change(m.title, t.title.as_deref());
        }
        if let Some(email) = m.email
            && !t.work_email().is_some_and(|have| same_ci(have, email))
        {
            let pending = link
                .and_then(|l| l.pending_email.as_ref())
                .filter(|p| same_ci(&p.address, email));
            if let Some(p) = pending {
                let name = m.user_name.unwrap_or(&user.username);
                let message = format!(
                    "email change to {:?} was sent at {} ({} days ago) and awaits verification by its owner; not sent again",
                    p.address,
                    p.requested_at,
                    (self.now.millis() - p.requested_at.millis()).max(0) / 86_400_000
                );
                self.note(
                    NoteKind::EmailPendingVerification,
                    ObjectKind::User,
                    sid,
                    name,
                    message,
                );
            } else {
                c.email = Some(email.to_owned());
            }
        }
        if mapping.work_phone.is_some() {
            c.work_phone = change(m.work_phone, t.work_phone());
        }
        c.federation_id = set_only(m.federation_id, t.federation_id.as_deref());
        let e = &t.enterprise;
        let ent = |mapped: bool, want: Option<&str>, have: &Option<String>| {
            if mapped {
                change(want, have.as_deref())
            } else {
                None
            }
        };
        c.enterprise = EnterpriseChanges {
            employee_number: ent(
                mapping.employee_number.is_some(),
                m.employee_number,
                &e.employee_number,
            ),
            department: ent(mapping.department.is_some(), m.department, &e.department),
            division: ent(mapping.division.is_some(), m.division, &e.division),
            organization: ent(
                mapping.organization.is_some(),
                m.organization,
                &e.organization,
            ),
            cost_center: ent(mapping.cost_center.is_some(), m.cost_center, &e.cost_center),
            manager: manager
                .ok()
                .and_then(|want| change(want, e.manager.as_deref())),
        };
        let mut profile = t
            .entitlements
            .iter()
            .find(|e| self.is_profile(e))
            .map(|e| e.value.as_str());
        if let Some(rule) = rule {
            let (change, end_profile) = self.entitlements(user, m, t, link, rule);
            c.entitlements = change;
            profile = end_profile;
            if let Some(role) = rule.role.as_deref()
                && !(t.roles.len() == 1 && t.roles[0].value == role)
            {
                c.role = Some(Some(role.to_owned()));
            }
        }
        (c, profile)
    }

    fn entitlements(
        &mut self,
        user: &DirectoryUser,
        m: &MappedUser<'_>,
        t: &'a TargetUser,
        link: Option<&UserLink>,
        rule: &'a ResolvedRule,
    ) -> (Option<EntitlementChange>, Option<&'a str>) {
        let wanted = rule.profile.as_str();
        if self.entitlements_in_step(t, link, rule) {
            return (None, Some(wanted));
        }
        let mut current_profiles: Vec<&'a str> = Vec::new();
        let mut current_sets: BTreeSet<&'a str> = BTreeSet::new();
        for e in &t.entitlements {
            if self.is_profile(e) {
                current_profiles.push(e.value.as_str());
            } else {
                current_sets.insert(e.value.as_str());
            }
        }
        let sid = user.id.as_str();
        let name = m.user_name.unwrap_or(&user.username);
        let mut keep: Option<&'a str> = None;
        if let [current] = current_profiles[..]
            && current != wanted
        {
            let refused = self
                .held(
                    ObjectKind::User,
                    sid,
                    "profile",
                    &profile_fingerprint(wanted, current, &self.catalogue_fp),
                )
                .is_some();
            let licences = (
                self.profiles
                    .get(current)
                    .and_then(|p| p.licence.as_deref()),
                self.profiles.get(wanted).and_then(|p| p.licence.as_deref()),
            );
            if refused {
                let message = format!(
                    "the target refused the profile change from {} to {} before; not tried again until the rule or the account's profile changes",
                    self.profile_label(current),
                    self.profile_label(wanted)
                );
                self.note(
                    NoteKind::RefusedEarlier,
                    ObjectKind::User,
                    sid,
                    name,
                    message,
                );
                self.summary.held += 1;
                keep = Some(current);
            } else if let (Some(have), Some(want)) = licences
                && have != want
            {
                let reason = format!(
                    "the rule assigns profile {} (licence {want:?}) but the account has {} (licence {have:?}); \
                     a profile cannot change licence, so the profile is left as it is. Change the rule or the user's licence on the target",
                    self.profile_label(wanted),
                    self.profile_label(current)
                );
                self.reject(ObjectKind::User, sid, name, "profile", reason);
                keep = Some(current);
            }
        }
        let end_profile: &'a str = keep.unwrap_or(wanted);
        let profile_changed = keep.is_none() && current_profiles[..] != [wanted];
        let wanted_sets: BTreeSet<&str> = rule.permission_sets.iter().map(String::as_str).collect();
        let added: Vec<String> = wanted_sets
            .iter()
            .filter(|p| !current_sets.contains(*p))
            .map(|p| (*p).to_owned())
            .collect();
        let assigned = link.map(|l| &l.assigned_permission_sets);
        let removed: Vec<&str> = current_sets
            .iter()
            .copied()
            .filter(|p| !wanted_sets.contains(p))
            .filter(|p| {
                self.gov.authoritative_permission_sets || assigned.is_some_and(|a| a.contains(*p))
            })
            .collect();
        if !profile_changed && added.is_empty() && removed.is_empty() {
            return (None, Some(end_profile));
        }
        let mut permission_sets: Vec<String> = current_sets
            .iter()
            .filter(|p| !removed.contains(p))
            .map(|p| (*p).to_owned())
            .chain(added.iter().cloned())
            .collect();
        permission_sets.sort();
        permission_sets.dedup();
        let change = EntitlementChange {
            profile: end_profile.to_owned(),
            profile_changed,
            permission_sets,
            added,
            removed: removed.into_iter().map(str::to_owned).collect(),
        };
        (Some(change), Some(end_profile))
    }

    /// Whether the account already holds exactly the rule's profile, all its permission sets
    /// and nothing the engine would remove: the common case, checked without allocating.
    fn entitlements_in_step(
        &self,
        t: &TargetUser,
        link: Option<&UserLink>,
        rule: &ResolvedRule,
    ) -> bool {
        let mut wanted_profile = 0;
        for e in &t.entitlements {
            if self.is_profile(e) {
                if e.value != rule.profile {
                    return false;
                }
                wanted_profile += 1;
            } else if rule.permission_sets.binary_search(&e.value).is_err()
                && (self.gov.authoritative_permission_sets
                    || link.is_some_and(|l| l.assigned_permission_sets.contains(&e.value)))
            {
                return false;
            }
        }
        wanted_profile == 1
            && rule
                .permission_sets
                .iter()
                .all(|p| t.entitlements.iter().any(|e| e.value == *p))
    }

    fn plan_groups(&mut self, owners: &IdIndex<'a, Owner<'a>>) {
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
                self.reject(
                    ObjectKind::Group,
                    g.id.as_str(),
                    name,
                    "displayName",
                    reason,
                );
                continue;
            }
            self.summary.groups_in_scope += 1;
            let target_group = if let Some(t) = linked {
                if t.display_name != name {
                    self.summary.rename_group += 1;
                    self.renames.push(Operation::RenameGroup {
                        source_id: g.id.clone(),
                        target_id: t.id.clone(),
                        from: t.display_name.clone(),
                        to: name.to_owned(),
                    });
                }
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
                    self.reject(
                        ObjectKind::Group,
                        g.id.as_str(),
                        name,
                        "displayName",
                        reason,
                    );
                    continue;
                }
                if !claimed.insert(t.id.as_str()) {
                    let reason = format!(
                        "another source group has the name {name:?}; group names are unique on the target"
                    );
                    self.reject(
                        ObjectKind::Group,
                        g.id.as_str(),
                        name,
                        "displayName",
                        reason,
                    );
                    continue;
                }
                self.summary.adopt_group += 1;
                self.groups_created.push(Operation::AdoptGroup {
                    source_id: g.id.clone(),
                    target_id: t.id.clone(),
                    name: name.to_owned(),
                });
                if t.display_name != name {
                    self.summary.rename_group += 1;
                    self.renames.push(Operation::RenameGroup {
                        source_id: g.id.clone(),
                        target_id: t.id.clone(),
                        from: t.display_name.clone(),
                        to: name.to_owned(),
                    });
                }
                Some(t)
            } else {
                if !created_names.insert(lower(name)) {
                    let reason = format!(
                        "another source group has the name {name:?}; group names are unique on the target"
                    );
                    self.reject(
                        ObjectKind::Group,
                        g.id.as_str(),
                        name,
                        "displayName",
                        reason,
                    );
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
        let mut group_index: IdIndex<'_, usize> = IdIndex::with_capacity(states.len());
        for (i, s) in states.iter().enumerate() {
            group_index.insert_first(s.source.id.as_str(), i);
        }
        let mut desired: Vec<Vec<u32>> = vec![Vec::new(); states.len()];
        for (ui, s) in self.users.iter().enumerate() {
            if !s.member {
                continue;
            }
            for g in &s.user.groups {
                if let Some(&gi) = group_index.get(g.as_str()) {
                    desired[gi].push(ui as u32);
                }
            }
        }
        // Each user's account id, inline: a group's desired members go into a small table that
        // stays in cache while the group's current members are checked against it; only
        // members not found there (removals, strangers, long ids) take the big owners table.
        let keys: Vec<Option<InlineId>> = self
            .users
            .iter()
            .map(|s| {
                if s.member {
                    s.target().and_then(|t| InlineId::new(t.id.as_str()))
                } else {
                    None
                }
            })
            .collect();
        // Groups are independent: large directories spread them over a few threads. The result
        // is the same, in the same order, whatever the number of threads.
        let threads = if let Some(n) = self.threads {
            n.max(1)
        } else if self.users.len() >= PARALLEL_FROM_USERS {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, MAX_THREADS)
        } else {
            1
        };
        let chunk = states.len().div_ceil(threads).max(1);
        let users = &self.users;
        let changes: Vec<(Vec<UserRef>, Vec<UserRef>)> = if threads <= 1 {
            member_changes(&states, desired, users, &keys, owners)
        } else {
            let mut lists = desired.into_iter();
            let parts: Vec<Vec<Vec<u32>>> = states
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

    fn push_batches(
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

    fn finish(mut self) -> Plan {
        self.summary.deactivate_user = self.deactivations.len();
        let mut operations = Vec::with_capacity(
            self.groups_created.len()
                + self.users_created.len()
                + self.updates.len()
                + self.late.len()
                + self.renames.len()
                + self.removals.len()
                + self.additions.len()
                + self.deactivations.len(),
        );
        self.deactivations
            .sort_by(|a, b| deactivation_key(a).cmp(deactivation_key(b)));
        for bucket in [
            self.groups_created,
            self.users_created,
            self.updates,
            self.late,
            self.renames,
            self.removals,
            self.additions,
            self.deactivations,
        ] {
            operations.extend(bucket);
        }
        self.summary.rejected = self.rejected.len();
        self.summary.notes = self.notes.len();
        Plan {
            operations,
            rejected: self.rejected,
            notes: self.notes,
            summary: self.summary,
            decisions: self.decisions,
        }
    }
}

/// userNames with the configured suffix, by source id (none without a suffix).
fn suffixed_user_names<'a>(source: &'a SourceSnapshot, policy: &Policy) -> IdMap<&'a str, String> {
    let Some(suffix) = policy.mapping.user_name_suffix.as_deref() else {
        return IdMap::default();
    };
    source
        .users
        .iter()
        .filter_map(|u| {
            let name = policy.mapping.user_name.read(u)?;
            Some((u.id.as_str(), format!("{name}{suffix}")))
        })
        .collect()
}

fn empty_names<'a>() -> &'a IdMap<&'a str, String> {
    static EMPTY: std::sync::OnceLock<IdMap<&'static str, String>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(IdMap::default)
}

/// The user attributes the policy has the planner send, by the names of [`USER_ATTRIBUTES`].
pub fn mapped_attributes(policy: &Policy) -> Vec<&'static str> {
    let m = &policy.mapping;
    let g = &policy.governance;
    let governed = g.baseline.is_some() || !g.group_rules.is_empty();
    let roles = g.baseline.iter().any(|r| r.role.is_some())
        || g.group_rules.iter().any(|r| r.rule.role.is_some());
    [
        ("userName", true),
        ("externalId", true),
        ("name.givenName", true),
        ("name.familyName", true),
        ("displayName", true),
        ("nickName", m.nick_name.is_some()),
        ("title", m.title.is_some()),
        ("emails", true),
        ("phoneNumbers", m.work_phone.is_some()),
        ("federationId", true),
        ("employeeNumber", m.employee_number.is_some()),
        ("department", m.department.is_some()),
        ("division", m.division.is_some()),
        ("organization", m.organization.is_some()),
        ("costCenter", m.cost_center.is_some()),
        ("manager", m.manager.is_some()),
        ("entitlements", governed),
        ("roles", roles),
        ("active", true),
    ]
    .into_iter()
    .filter_map(|(a, on)| on.then_some(a))
    .collect()
}

fn deactivation_key(op: &Operation) -> &str {
    match op {
        Operation::DeactivateUser { source_id, .. } => source_id.as_str(),
        _ => "",
    }
}

/// From this many source users on, group memberships are compared on several threads.
const PARALLEL_FROM_USERS: usize = 50_000;
/// At most this many threads.
const MAX_THREADS: usize = 4;

/// The (removals, additions) of each group of `states`, whose desired members (user indexes)
/// are `desired`, in the same order.
fn member_changes<'a>(
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

fn orphan_ref(link: &UserLink, t: &TargetUser) -> UserRef {
    UserRef {
        source_id: Some(link.source_id.clone()),
        target_id: Some(t.id.clone()),
        user_name: t.user_name.clone(),
    }
}

#[cfg(test)]
mod held;
mod index;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
