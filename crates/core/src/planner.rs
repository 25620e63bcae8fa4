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
//! The rules live in modules named for them: `validation` (what the target would refuse),
//! `matching`, `attributes` (creation and diff, email verification), `entitlements`, `groups`,
//! `membership`, `refused` (held writes, undeclared attributes) and `decisions` (the records
//! the explanations are views of). This file holds the planner's state and the two passes.
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
    AccountDecision, AttributeWhy, DeactivationReason, Decision, EnterpriseChanges,
    EntitlementChange, Explain, GroupRef, MatchedBy, Note, NoteKind, ObjectKind, Operation, Plan,
    Rejection, RuleDecision, Summary, USER_ATTRIBUTES, UserAttributes, UserChanges, UserRef,
};
use crate::policy::{NameSplit, Policy, Problem, TargetKind};
use crate::refusals::{
    catalogue_fingerprint, create_fingerprint, member_fingerprint, profile_fingerprint,
    split_update, user_name_fingerprint,
};
use crate::source::{DirectoryGroup, DirectoryStatus, DirectoryUser, SourceSnapshot};
use crate::target::{EnterpriseFields, Profile, TargetGroup, TargetSnapshot, TargetUser};
use crate::time::Timestamp;
use compact_str::CompactString;
use index::{Dense, IdMap, IdSet, InlineId, NONE, SmallIndex};
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
        planner.decisions = planner.decide_all(explain);
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
    /// The user's position in the source's users (where its interned groups are).
    src: u32,
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

/// What a source user is, independent of every other user: found for all users on threads
/// before the matching, which goes user by user.
#[derive(Debug)]
struct Looked<'a> {
    /// A later record with an id already seen (the first one counts).
    duplicate: bool,
    /// The mapped userName.
    user_name: Option<&'a str>,
    /// In scope and enabled.
    wanted: bool,
    /// Why the target would refuse the user (wanted users only), as (field, message).
    invalid: Option<Box<(&'static str, String)>>,
    /// Whether matching looks the userName up on the target: a new user's, or a linked user's
    /// new one.
    asks: bool,
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
                .into(),
        }
    }
}

/// The target's accounts interned to dense positions (in `target.users`, the first account of
/// each id), with the link to each.
struct Accounts<'a> {
    users: &'a [TargetUser],
    index: Dense<'a>,
    /// Position → the position of the first account with the same id.
    first: Vec<u32>,
    /// (First) position → the first link to that account (its index in `links.users`).
    link_of: Vec<u32>,
    links: &'a [UserLink],
}

impl std::fmt::Debug for Accounts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Accounts<'a> {
    /// The position of the account `t` (one of the target's users), the first of its id.
    fn position(&self, t: &TargetUser) -> u32 {
        let size = std::mem::size_of::<TargetUser>().max(1);
        let offset =
            (std::ptr::from_ref(t) as usize).wrapping_sub(self.users.as_ptr() as usize) / size;
        match self.users.get(offset) {
            Some(u) if std::ptr::eq(u, t) => self.first[offset],
            _ => self.index.get(t.id.as_str()),
        }
    }

    /// The link to the account `t`, if any (the first one).
    fn link(&self, t: &TargetUser) -> Option<&'a UserLink> {
        let p = self.position(t);
        let n = *self.link_of.get(p as usize)?;
        self.links.get(n as usize)
    }
}

/// Who owns each account, for membership removals: by position, a user (index in `users`),
/// an orphan (`ORPHAN` | index in `orphans`: linked to a source user no longer in the
/// directory) or [`NONE`].
#[derive(Debug)]
struct Owners<'a> {
    of: Vec<u32>,
    orphans: Vec<&'a UserLink>,
    /// Each user's account position, or [`NONE`].
    account: Vec<u32>,
    /// Accounts more than one user has (links that disagree): compared user by user.
    shared: index::Bits,
}

/// The tag of an orphan in [`Owners::of`], and of a user index in a group's desired entries.
const ORPHAN: u32 = 1 << 31;

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
    /// Group ids interned: the source's groups, then the scope's and the rules' others.
    group_ids: SmallIndex<'a>,
    /// By interned group: among the source's groups, in scope, its rule.
    group_known: Vec<bool>,
    group_scoped: Vec<bool>,
    group_rule: Vec<Option<(u32, &'a ResolvedRule)>>,
    /// Each source user's groups interned (or [`NONE`]), by source position:
    /// `user_groups[user_groups_at[n]..user_groups_at[n + 1]]`.
    user_groups: Vec<u32>,
    user_groups_at: Vec<u32>,
    users: Vec<UserState<'a>>,
    groups_created: Vec<Operation>,
    renames: Vec<Operation>,
    removals: Vec<Operation>,
    additions: Vec<Operation>,
    /// The users' operations, the rejections, notes and counts.
    out: Out,
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

/// What planning yields besides the groups' operations: the users' operations in their buckets,
/// rejections, notes and counts. Threads planning shares of the users each fill their own, and
/// [`Out::append`] joins them in the users' order, so the plan is the same on any number of
/// threads.
#[derive(Debug, Default)]
struct Out {
    users_created: Vec<Operation>,
    updates: Vec<Operation>,
    late: Vec<Operation>,
    deactivations: Vec<Operation>,
    rejected: Vec<Rejection>,
    notes: Vec<Note>,
    summary: Summary,
}

impl Out {
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

    /// Appends what a later share of the users yielded: its operations, rejections and notes
    /// after these, its counts added to these.
    fn append(&mut self, part: Out) {
        let Out {
            users_created,
            updates,
            late,
            deactivations,
            rejected,
            notes,
            summary,
        } = part;
        join(&mut self.users_created, users_created);
        join(&mut self.updates, updates);
        join(&mut self.late, late);
        join(&mut self.deactivations, deactivations);
        join(&mut self.rejected, rejected);
        join(&mut self.notes, notes);
        self.summary.add(&summary);
    }
}

impl std::fmt::Debug for Planner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else if s.chars().any(char::is_uppercase) {
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
fn change(want: Option<&str>, have: Option<&str>) -> Option<Option<CompactString>> {
    (want != have).then(|| want.map(CompactString::from))
}

/// `Some(Some(new))` when `want` is set and differs from `have`; never clears.
fn set_only(want: Option<&str>, have: Option<&str>) -> Option<Option<CompactString>> {
    want.filter(|w| Some(*w) != have).map(|w| Some(w.into()))
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
            group_ids: SmallIndex::with_capacity(0),
            group_known: Vec::new(),
            group_scoped: Vec::new(),
            group_rule: Vec::new(),
            user_groups: Vec::new(),
            user_groups_at: Vec::new(),
            users: Vec::with_capacity(source.users.len()),
            groups_created: Vec::new(),
            renames: Vec::new(),
            removals: Vec::new(),
            additions: Vec::new(),
            out: Out::default(),
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

    /// Threads for the work spread over users and groups: by directory size and available
    /// cores unless forced (tests of determinism).
    fn threads_for_users(&self) -> usize {
        if let Some(n) = self.threads {
            n.max(1)
        } else if self.source.users.len() >= membership::PARALLEL_FROM_USERS {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, membership::MAX_THREADS)
        } else {
            1
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

    /// What is wrong with the source's records, one note per object: what the reader reported
    /// (duplicates), and memberships of groups the directory's groups do not contain.
    fn note_source_data(&mut self) {
        let source = self.source;
        for p in &source.problems {
            self.out.note(
                NoteKind::SourceProblem,
                p.object,
                &p.source_id,
                &p.name,
                p.message.clone(),
            );
        }
        for (n, user) in source.users.iter().enumerate() {
            for (k, group) in user.groups.iter().enumerate() {
                let gi = self.groups_at(n).get(k).copied().unwrap_or(NONE);
                if gi == NONE || !self.group_known[gi as usize] {
                    self.out.note(
                        NoteKind::UnknownGroup,
                        ObjectKind::User,
                        user.id.as_str(),
                        &user.username,
                        format!(
                            "member of group {group}, which is not among the directory's groups; that membership is ignored"
                        ),
                    );
                }
            }
        }
    }

    fn in_scope(&self, user: &DirectoryUser) -> bool {
        match &self.scope {
            None => true,
            Some(groups) => user.groups.iter().any(|g| groups.contains(g.as_str())),
        }
    }

    /// Interns the group ids (the source's, then the scope's and the rules' others) and each
    /// source user's groups: one lookup per membership, after which scope, rules and
    /// memberships are read from arrays.
    fn intern_groups(&mut self) {
        let source = self.source;
        let gov = self.gov;
        let scope_ids: Vec<&'a str> = self.scope.iter().flatten().copied().collect();
        let rule_ids = gov
            .group_rules
            .iter()
            .flat_map(|r| r.groups.iter().map(SourceGroupId::as_str));
        let mut ids = SmallIndex::with_capacity(source.groups.len());
        let mut count = 0u32;
        for id in source
            .groups
            .iter()
            .map(|g| g.id.as_str())
            .chain(scope_ids.iter().copied())
            .chain(rule_ids)
        {
            if ids.get(id).is_none() {
                ids.insert_first(id, count);
                count += 1;
            }
        }
        let n = count as usize;
        let mut known = vec![false; n];
        for g in &source.groups {
            if let Some(gi) = ids.get(g.id.as_str()) {
                known[gi as usize] = true;
            }
        }
        let mut scoped = vec![false; n];
        for id in &scope_ids {
            if let Some(gi) = ids.get(id) {
                scoped[gi as usize] = true;
            }
        }
        let mut rule = vec![None; n];
        for r in &gov.group_rules {
            for g in &r.groups {
                if let Some(gi) = ids.get(g.as_str()) {
                    rule[gi as usize].get_or_insert((r.priority, &r.rule));
                }
            }
        }
        // Each user's groups interned, written in place: the users split between the threads
        // for large directories (the result is the same in any case), each thread filling its
        // own part of the one list.
        let mut at = Vec::with_capacity(source.users.len() + 1);
        at.push(0u32);
        let mut total = 0usize;
        for u in &source.users {
            total += u.groups.len();
            at.push(u32::try_from(total).unwrap_or(u32::MAX));
        }
        let mut flat = vec![NONE; total];
        let intern = |users: &[DirectoryUser], out: &mut [u32]| {
            let interned = users
                .iter()
                .flat_map(|u| &u.groups)
                .map(|g| ids.get(g.as_str()).unwrap_or(NONE));
            for (slot, gi) in out.iter_mut().zip(interned) {
                *slot = gi;
            }
        };
        let threads = self.threads_for_users();
        if threads <= 1 {
            intern(&source.users, &mut flat);
        } else {
            let chunk = source.users.len().div_ceil(threads).max(1);
            std::thread::scope(|scope| {
                let mut rest: &mut [u32] = &mut flat;
                let mut handles = Vec::new();
                for part in source.users.chunks(chunk) {
                    let len: usize = part.iter().map(|u| u.groups.len()).sum();
                    let (mine, others) = std::mem::take(&mut rest).split_at_mut(len);
                    rest = others;
                    handles.push(scope.spawn(move || intern(part, mine)));
                }
                for h in handles {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                }
            });
        }
        self.group_ids = ids;
        self.group_known = known;
        self.group_scoped = scoped;
        self.group_rule = rule;
        self.user_groups = flat;
        self.user_groups_at = at;
    }

    /// The interned groups of the source user at position `n`.
    fn groups_at(&self, n: usize) -> &[u32] {
        match (self.user_groups_at.get(n), self.user_groups_at.get(n + 1)) {
            (Some(&a), Some(&b)) => self.user_groups.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// What the source user at position `src` is, `linked` to this account (if any).
    fn look(
        &self,
        user: &'a DirectoryUser,
        src: u32,
        duplicate: bool,
        linked: Option<&'a TargetUser>,
    ) -> Looked<'a> {
        let mut looked = Looked {
            duplicate,
            user_name: None,
            wanted: false,
            invalid: None,
            asks: false,
        };
        if duplicate {
            return looked;
        }
        let mapped = self.evaluate(user);
        looked.user_name = mapped.user_name;
        looked.wanted = self.in_scope_at(src as usize) && user.status.is_enabled();
        if !looked.wanted {
            return looked;
        }
        looked.invalid = self.validate_user(&mapped, linked.is_none()).map(Box::new);
        looked.asks = looked.invalid.is_none()
            && mapped
                .user_name
                .is_some_and(|name| linked.is_none_or(|t| !same_ci(name, &t.user_name)));
        looked
    }

    /// [`Self::in_scope`] from the interned groups.
    fn in_scope_at(&self, n: usize) -> bool {
        self.scope.is_none()
            || self
                .groups_at(n)
                .iter()
                .any(|&gi| gi != NONE && self.group_scoped[gi as usize])
    }

    /// [`Self::rule_for`] from the interned groups.
    fn rule_for_at(&self, n: usize, user: &'a DirectoryUser) -> Option<RuleChoice<'a>> {
        let matches = user
            .groups
            .iter()
            .zip(self.groups_at(n))
            .filter_map(|(g, &gi)| {
                let (priority, rule) = (*self.group_rule.get(gi as usize)?)?;
                Some((priority, g.as_str(), rule))
            });
        choose(matches, self.gov.baseline.as_ref())
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
        self.out.summary.source_users = source.users.len();
        self.out.summary.source_groups = source.groups.len();
        self.out.summary.target_users = target.users.len();
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
            self.out.note(
                NoteKind::NotDeclared,
                ObjectKind::Connection,
                "",
                "mapping",
                message,
            );
        }

        self.intern_groups();
        self.note_source_data();

        // The target's accounts interned to positions with the links to them, and the source
        // users in the order of their ids with the link of each: two independent strands, on
        // two threads for large directories (each the same either way).
        let interned = || {
            let (index, first) = Dense::build(target.users.iter().map(|u| u.id.as_str()));
            let mut link_targets = Vec::with_capacity(links.users.len());
            index.get_all(
                links.users.iter().map(|l| l.target_id.as_str()),
                &mut link_targets,
            );
            let mut link_of = vec![NONE; target.users.len()];
            for (n, &p) in link_targets.iter().enumerate() {
                if p != NONE && link_of[p as usize] == NONE {
                    link_of[p as usize] = n as u32;
                }
            }
            let accounts = Accounts {
                users: &target.users,
                index,
                first,
                link_of,
                links: &links.users,
            };
            (accounts, link_targets)
        };
        let ordered = || {
            // Source id → position in `links.users` (the first link of each source user);
            // `seen_link` marks links whose source user is in the directory, the others are
            // orphans.
            let (link_index, link_first) =
                Dense::build(links.users.iter().map(|l| l.source_id.as_str()));
            // Sorted by id through inline keys, so comparisons do not chase each id's string.
            let mut order: Vec<(Option<InlineId>, u32)> = source
                .users
                .iter()
                .enumerate()
                .map(|(n, u)| (InlineId::new(u.id.as_str()), n as u32))
                .collect();
            let users_of = &source.users;
            order.sort_unstable_by(|(ka, a), (kb, b)| {
                // Equal ids (duplicates in the source) in source order: the first one counts.
                let by_id = || {
                    users_of[*a as usize]
                        .id
                        .cmp(&users_of[*b as usize].id)
                        .then(a.cmp(b))
                };
                match (ka, kb) {
                    (Some(ka), Some(kb)) => ka.cmp_bytes(kb).then_with(by_id),
                    _ => by_id(),
                }
            });
            // Each user's link, looked up in sorted order in one batch.
            let mut user_links: Vec<u32> = Vec::with_capacity(order.len());
            link_index.get_all(
                order
                    .iter()
                    .map(|&(_, src)| source.users[src as usize].id.as_str()),
                &mut user_links,
            );
            let order: Vec<(u32, u32)> = order
                .into_iter()
                .zip(user_links)
                .map(|((_, src), n)| (src, n))
                .collect();
            (order, link_first)
        };
        let threads = self.threads_for_users();
        let ((accounts, link_targets), (order, link_first)) = if threads > 1 {
            std::thread::scope(|scope| {
                let handle = scope.spawn(ordered);
                let interned = interned();
                let ordered = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (interned, ordered)
            })
        } else {
            (interned(), ordered())
        };
        let mut by_external_id: IdMap<&str, &TargetUser> = IdMap::default();
        for (u, &p) in target.users.iter().zip(&accounts.first) {
            if accounts.link_of[p as usize] != NONE {
                self.out.summary.managed_active_users += usize::from(u.active);
            } else if let Some(ext) = u.external_id.as_deref() {
                by_external_id.entry(ext).or_insert(u);
            }
        }

        // What each user is, independent of the others (mapping, scope, validation), on
        // threads; then the target's accounts holding the userNames that matching asks for.
        // (Kept as each thread's share: flattening would copy them.)
        let looked: Vec<Vec<Looked<'a>>> = {
            let this = &*self;
            let look = |from: usize, to: usize| -> Vec<Looked<'a>> {
                (from..to)
                    .map(|k| {
                        let (src, n) = order[k];
                        let user = &source.users[src as usize];
                        let duplicate = k > 0
                            && source.users[order[k - 1].0 as usize].id.as_str()
                                == user.id.as_str();
                        let linked = (n != NONE)
                            .then(|| target.users.get(link_targets[n as usize] as usize))
                            .flatten();
                        this.look(user, src, duplicate, linked)
                    })
                    .collect()
            };
            on_threads(order.len(), threads, |share| look(share.start, share.end))
        };
        let by_user_name: IdMap<Cow<'_, str>, &TargetUser> = {
            let asked: IdSet<Cow<'_, str>> = looked
                .iter()
                .flatten()
                .filter(|l| l.asks)
                .filter_map(|l| l.user_name.map(lower))
                .collect();
            let mut found: IdMap<Cow<'_, str>, &TargetUser> = IdMap::default();
            if !asked.is_empty() {
                for u in &target.users {
                    let key = lower(&u.user_name);
                    if asked.contains(key.as_ref()) {
                        found.entry(key).or_insert(u);
                    }
                }
            }
            found
        };

        let mut seen_link: Vec<bool> = vec![false; links.users.len()];
        let mut claimed: IdSet<&str> = IdSet::default();
        let mut wanted_names: IdMap<Cow<'_, str>, &str> = IdMap::default();

        // Pass 1: scope, validation, matching, in the order of the users' ids.
        for (&(src, n), looked) in order.iter().zip(looked.into_iter().flatten()) {
            if looked.duplicate {
                continue; // a duplicate id in the source: the first one counts
            }
            let user = &source.users[src as usize];
            let wanted = looked.wanted;
            let link = (n != NONE).then(|| {
                seen_link[n as usize] = true;
                &links.users[n as usize]
            });
            let linked = link.and_then(|l| {
                let p = link_targets[n as usize];
                target.users.get(p as usize).map(|t| (t, l))
            });
            let mut state = UserState {
                user,
                src,
                user_name: looked.user_name,
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
                self.out.summary.users_in_scope += 1;
                let creating = linked.is_none();
                if let Some((field, reason)) = looked.invalid.map(|b| *b) {
                    let name = looked.user_name.unwrap_or(&user.username);
                    self.out
                        .reject(ObjectKind::User, user.id.as_str(), name, field, reason);
                    state.rejected = true;
                } else if creating {
                    // Validation guarantees a userName.
                    let name = looked.user_name.unwrap_or_default();
                    let key = lower(name);
                    if let Some(other) = wanted_names.get(&key) {
                        let reason = format!(
                            "source user {other} already has userName {name:?}; a userName is unique on the target"
                        );
                        self.out.reject(
                            ObjectKind::User,
                            user.id.as_str(),
                            name,
                            "userName",
                            reason,
                        );
                        state.rejected = true;
                    } else {
                        state.account = self.match_account(
                            user,
                            name,
                            &key,
                            &by_external_id,
                            &by_user_name,
                            &accounts,
                            &mut claimed,
                        );
                        if matches!(state.account, Account::Nothing) {
                            state.rejected = true;
                        }
                        wanted_names.insert(key, user.id.as_str());
                    }
                } else if let (true, Some(name), Some((t, _))) =
                    (looked.asks, looked.user_name, linked)
                {
                    let key = lower(name);
                    // A linked user renamed: the new name must be free, and no new user may
                    // take it. (Unchanged names are found through the target's userName index.)
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

        drop((by_user_name, by_external_id, claimed, wanted_names));
        self.settle_blocked(&accounts);

        // Managers: source id → target id, for users whose account exists now.
        let manager_ids: IdMap<&str, Option<&str>> = if self.policy.mapping.manager.is_some() {
            self.users
                .iter()
                .map(|s| (s.user.id.as_str(), s.target().map(|t| t.id.as_str())))
                .collect()
        } else {
            IdMap::default()
        };

        // Pass 2: operations per user, on threads for large directories: each plans a share
        // of the users in order into its own output, joined in the users' order.
        // (The users are taken out while their shares are planned: each thread writes what
        // its users end with in place.)
        let mut users = std::mem::take(&mut self.users);
        let outs = {
            let this = &*self;
            let manager_ids = &manager_ids;
            on_chunks(&mut users, threads, |_, share| {
                let mut out = Out::default();
                for state in share {
                    this.plan_user(state, manager_ids, &mut out);
                }
                out
            })
        };
        self.users = users;
        for out in outs {
            self.out.append(out);
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
                    && link_first[*n] as usize == *n
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
                let name = target
                    .users
                    .get(accounts.index.get(link.target_id.as_str()) as usize)
                    .map(|t| t.user_name.clone())
                    .unwrap_or_default();
                self.out.note(
                    NoteKind::SourceUnidentified,
                    ObjectKind::User,
                    link.source_id.as_str(),
                    &name,
                    message.clone(),
                );
            }
        }
        // Who owns each account: the first user whose account it is, else the orphan link.
        let mut owners = Owners {
            of: vec![NONE; target.users.len()],
            orphans: Vec::new(),
            account: Vec::with_capacity(self.users.len()),
            shared: index::Bits::new(target.users.len()),
        };
        for (i, s) in self.users.iter().enumerate() {
            let p = s.target().map_or(NONE, |t| accounts.position(t));
            owners.account.push(p);
            if p != NONE {
                if owners.of[p as usize] == NONE {
                    owners.of[p as usize] = i as u32;
                } else {
                    owners.shared.set(p);
                }
            }
        }
        owners.orphans = orphans;
        for (k, link) in owners.orphans.iter().enumerate() {
            let p = accounts.index.get(link.target_id.as_str());
            if let Some(t) = target.users.get(p as usize) {
                if owners.of[p as usize] == NONE {
                    owners.of[p as usize] = ORPHAN | k as u32;
                }
                if t.active {
                    self.out.deactivations.push(Operation::DeactivateUser {
                        source_id: link.source_id.clone(),
                        target_id: t.id.clone(),
                        user_name: t.user_name.clone(),
                        reason: DeactivationReason::LeftDirectory,
                    });
                }
            }
        }

        if !self.policy.exclude_groups {
            self.plan_groups(&accounts, &owners);
        }
    }

    /// The operations of the user of `state`, into `out`; the profile the account ends with and
    /// whether the user should be a member of their groups, into `state`.
    fn plan_user(
        &self,
        state: &mut UserState<'a>,
        manager_ids: &IdMap<&str, Option<&str>>,
        out: &mut Out,
    ) {
        let (user, src) = (state.user, state.src as usize);
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
                out.deactivations.push(Operation::DeactivateUser {
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
        let rule = self.rule_for_at(src, user).map(|c| c.rule);
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
                let held = self.held_creation(sid, &mut attributes, out);
                if let Some(r) = held {
                    let name = attributes.user_name.clone();
                    out.hold(ObjectKind::User, sid, &name, r);
                    return;
                }
                member_profile = rule.map(|r| r.profile.as_str());
                out.summary.create_user += 1;
                let op = Operation::CreateUser {
                    source_id: user.id.clone(),
                    attributes,
                };
                if matches!(account, Account::CreateAfterRename) {
                    out.late.push(op);
                } else {
                    out.users_created.push(op);
                }
            }
            Account::Adopt(t, _) | Account::Linked(t, _) => {
                let link = match account {
                    Account::Linked(_, l) => Some(l),
                    _ => None,
                };
                if let Account::Adopt(_, matched_by) = account {
                    out.summary.adopt_user += 1;
                    out.users_created.push(Operation::AdoptUser {
                        source_id: user.id.clone(),
                        target_id: t.id.clone(),
                        user_name: t.user_name.clone(),
                        matched_by,
                    });
                }
                let (mut changes, profile) =
                    self.changes(user, &mapped, t, link, rule, manager, out);
                member_profile = profile;
                self.leave_out_held(user.id.as_str(), t, &mut changes, out);
                let late = match &state.rename {
                    Rename::Late => true,
                    Rename::Conflict(reason) => {
                        let reason = reason.clone();
                        let name = mapped.user_name.unwrap_or(&user.username);
                        changes.user_name = None;
                        out.note(
                            NoteKind::Conflict,
                            ObjectKind::User,
                            user.id.as_str(),
                            name,
                            reason.clone(),
                        );
                        out.reject(ObjectKind::User, user.id.as_str(), name, "userName", reason);
                        false
                    }
                    Rename::Free | Rename::Blocked(_) => false,
                };
                let bucket = if late {
                    &mut out.late
                } else {
                    &mut out.updates
                };
                if !t.active {
                    changes.active = Some(true);
                    out.summary.reactivate_user += 1;
                    bucket.push(Operation::ReactivateUser {
                        source_id: user.id.clone(),
                        target_id: t.id.clone(),
                        user_name: t.user_name.clone(),
                        changes,
                    });
                } else if changes.is_empty() {
                    out.summary.unchanged_users += 1;
                } else {
                    out.summary.update_user += 1;
                    bucket.push(Operation::UpdateUser {
                        source_id: user.id.clone(),
                        target_id: t.id.clone(),
                        user_name: t.user_name.clone(),
                        changes,
                    });
                }
            }
        }
        let allows = member_profile.is_none_or(|p| !self.no_groups.contains(p));
        if !allows
            && !self.policy.exclude_groups
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
            out.note(
                NoteKind::ProfileForbidsGroups,
                ObjectKind::User,
                user.id.as_str(),
                name,
                message,
            );
        }
        state.profile = member_profile;
        state.member = allows;
    }

    fn finish(mut self) -> Plan {
        self.out.summary.deactivate_user = self.out.deactivations.len();
        let mut operations = Vec::with_capacity(
            self.groups_created.len()
                + self.out.users_created.len()
                + self.out.updates.len()
                + self.out.late.len()
                + self.renames.len()
                + self.removals.len()
                + self.additions.len()
                + self.out.deactivations.len(),
        );
        self.out
            .deactivations
            .sort_by(|a, b| deactivation_key(a).cmp(deactivation_key(b)));
        for bucket in [
            self.groups_created,
            self.out.users_created,
            self.out.updates,
            self.out.late,
            self.renames,
            self.removals,
            self.additions,
            self.out.deactivations,
        ] {
            operations.extend(bucket);
        }
        self.out.summary.rejected = self.out.rejected.len();
        self.out.summary.notes = self.out.notes.len();
        Plan {
            operations,
            rejected: self.out.rejected,
            notes: self.out.notes,
            summary: self.out.summary,
            decisions: self.decisions,
        }
    }
}

/// `f` of each of `threads` consecutive shares of `0..len`, in order: on as many scoped threads
/// (one share, on this thread, when `threads` is 1).
fn on_threads<T: Send>(
    len: usize,
    threads: usize,
    f: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    // (Shares of a list of `len` nothings, which takes no memory.)
    on_chunks(&mut vec![(); len], threads, |start, share| {
        f(start..start + share.len())
    })
}

/// `f(start, share)` of each of `threads` consecutive shares of `items`, in order: on as many
/// scoped threads (one share, on this thread, when `threads` is 1).
fn on_chunks<T: Send, R: Send>(
    items: &mut [T],
    threads: usize,
    f: impl Fn(usize, &mut [T]) -> R + Sync,
) -> Vec<R> {
    let share = items.len().div_ceil(threads.max(1)).max(1);
    if threads <= 1 || items.len() <= share {
        return vec![f(0, items)];
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks_mut(share)
            .enumerate()
            .map(|(n, chunk)| scope.spawn(move || f(n * share, chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// `later` after `list`: moved when `list` is empty (no copy).
fn join<T>(list: &mut Vec<T>, later: Vec<T>) {
    if list.is_empty() {
        *list = later;
    } else {
        list.extend(later);
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

mod attributes;
mod decisions;
mod entitlements;
mod groups;
#[cfg(test)]
mod held;
mod index;
mod matching;
mod membership;
#[cfg(test)]
mod properties;
mod refused;
#[cfg(test)]
mod tests;
mod validation;
