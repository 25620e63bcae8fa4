//! Applying a plan: in dependency order, with bounded concurrency inside each stage, recording
//! every outcome and updating the links (through the core's [`Ledger`]) as each operation
//! completes.
//!
//! A refusal is contained to the object and attribute it concerns: a user update refused as a
//! whole is split into its attributes (the one the target names, else by halves) so the other
//! changes land; a member batch refused for one member is split until the refusing members are
//! found; a batch refused for its size is split and the size that worked is remembered. Each
//! refused write is held (by the ledger, in the store) until its fingerprint changes.

use crate::budget::Budget;
use crate::run::{Progress, chain, now};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use scimsync_core::activity::{ActivityEntry, Outcome, RunId};
use scimsync_core::links::{HeldRefusal, Ledger, Links, Origin, TargetFacts, member_attribute};
use scimsync_core::plan::{
    Decision, EntitlementChange, GroupRef, NoteKind, ObjectKind, Operation, Plan, UserChanges,
    UserRef,
};
use scimsync_core::ports::{Classify, Disposition, Store, Target};
use scimsync_core::refusals::{
    self, Write, blames_profile, bounded, catalogue_fingerprint, create_fingerprint,
    group_create_fingerprint, is_size_refusal, member_fingerprint, names_attribute,
    rename_fingerprint, split_update, user_name_fingerprint,
};
use scimsync_core::render::Labels;
use scimsync_core::source::SourceSnapshot;
use scimsync_core::state;
use scimsync_core::target::{TargetGroup, TargetSnapshot, TargetUser};
use scimsync_core::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::info;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most characters of an operation's explanation in its activity entry (outcomes and reasons
/// are added after it; the store caps the whole).
const MAX_DETAIL: usize = 3_000;

pub(crate) struct ApplyContext<'a, T, St> {
    pub connection: &'a str,
    pub run_id: RunId,
    pub target: &'a T,
    pub store: &'a St,
    /// The target as read at the start of the run (current values for pending emails,
    /// profiles and fingerprints).
    pub snapshot: &'a TargetSnapshot,
    /// `Some(reason)`: destructive operations are held back (the guard tripped, unapproved).
    pub hold_destructive: Option<String>,
    pub max_concurrency: usize,
    /// Members per PATCH as configured (a smaller size learned from the target wins).
    pub member_batch_size: usize,
    pub cancel: &'a CancellationToken,
    pub progress: Option<&'a dyn Progress>,
    /// Catalogue names for the activity log's text.
    pub labels: &'a Labels,
    /// The planner's decisions and the users' other identifiers, for the activity log.
    pub why: &'a Why<'a>,
    /// The connection's API budget: once used up, no new operation starts.
    pub budget: &'a Budget,
    /// Serializes writes of the stored state, so that the newest state of an object changed
    /// by operations running side by side (member batches of one group) is the one stored.
    pub state_writes: tokio::sync::Mutex<()>,
}

/// What the activity log says of the users beyond their operations: the planner's decision of
/// each user the plan changes (the rule, each attribute's source and old value, the scope
/// group left) and the identifiers the log is searched by besides userName and ids (the
/// source username and email).
#[derive(Debug, Default)]
pub(crate) struct Why<'a> {
    /// Borrowed from the plan: a first run of many users has as many decisions.
    decisions: HashMap<&'a SourceUserId, &'a Decision>,
    aliases: HashMap<SourceUserId, Vec<String>>,
}

impl<'a> Why<'a> {
    /// From a plan (its decisions) and the source it was made from (the usernames and emails
    /// of the users its operations, rejections and notes name).
    pub(crate) fn new(plan: &'a Plan, source: &SourceSnapshot) -> Self {
        let mut named: HashSet<&str> = HashSet::new();
        for op in &plan.operations {
            match op {
                Operation::AddMembers { members, .. }
                | Operation::RemoveMembers { members, .. } => {
                    named.extend(
                        members
                            .iter()
                            .filter_map(|m| m.source_id.as_ref().map(|s| s.as_str())),
                    );
                }
                Operation::CreateUser { source_id, .. }
                | Operation::AdoptUser { source_id, .. }
                | Operation::UpdateUser { source_id, .. }
                | Operation::ReactivateUser { source_id, .. }
                | Operation::DeactivateUser { source_id, .. } => {
                    named.insert(source_id.as_str());
                }
                _ => {}
            }
        }
        named.extend(plan.rejected.iter().map(|r| r.source_id.as_str()));
        named.extend(plan.notes.iter().map(|n| n.source_id.as_str()));
        let aliases = source
            .users
            .iter()
            .filter(|u| named.contains(u.id.as_str()))
            .map(|u| {
                let mut names = vec![u.username.to_string()];
                names.extend(u.email.as_deref().map(str::to_owned));
                (u.id.clone(), names)
            })
            .collect();
        Self {
            decisions: plan.decisions.iter().map(|d| (&d.source_id, d)).collect(),
            aliases,
        }
    }

    fn decision(&self, id: &SourceUserId) -> Option<&'a Decision> {
        self.decisions.get(id).copied()
    }

    fn aliases(&self, id: &str) -> &[String] {
        self.aliases
            .get(&SourceUserId::from(id))
            .map_or(&[], Vec::as_slice)
    }
}

/// An operation's activity entry, with the other identifiers it is found by (each member of
/// a membership change).
struct Described {
    entry: ActivityEntry,
    subjects: Vec<String>,
}

impl std::ops::Deref for Described {
    type Target = ActivityEntry;
    fn deref(&self) -> &ActivityEntry {
        &self.entry
    }
}

impl std::ops::DerefMut for Described {
    fn deref_mut(&mut self) -> &mut ActivityEntry {
        &mut self.entry
    }
}

/// Counts of what happened.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub applied: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Of `rejected`: source records the plan rejected for the reason already logged for them
    /// (not logged again; they alone do not make the run partial).
    pub known_rejected: u64,
    pub skipped: u64,
    /// Writes refused in this run and held from now on.
    pub refused: u64,
    /// The connection broke (credentials, permissions): the rest of the plan was not tried.
    pub fatal: Option<String>,
    /// Cancelled before the plan was done.
    pub interrupted: bool,
    /// The API budget was used up before the plan was done.
    pub over_budget: bool,
    /// The target's facts as the run leaves them (what it learned included).
    pub facts: TargetFacts,
}

struct State {
    ledger: Ledger,
    /// Users and groups whose creation failed in this run: their dependants are skipped.
    missing_users: HashSet<SourceUserId>,
    missing_groups: HashSet<SourceGroupId>,
    /// Users whose profile change the target refused in this run: the profile they keep
    /// (what a membership refusal depends on, as the next plan will see it).
    kept_profiles: HashMap<SourceUserId, Option<String>>,
    /// Per profile: members added in this run, and members refused alone.
    member_profiles: HashMap<String, (u32, u32)>,
    /// The state of the objects this run changed, as the accepted writes left them (the
    /// others are as the snapshot has them).
    users_now: HashMap<TargetUserId, TargetUser>,
    groups_now: HashMap<TargetGroupId, TargetGroup>,
    counts: Applied,
}

/// What the refusal rules need of the run, computed once.
struct Basis<'a> {
    catalogue_fp: String,
    /// Target user id → the account as read.
    accounts: HashMap<&'a str, &'a TargetUser>,
    /// Target group id → the group as read.
    groups: HashMap<&'a str, &'a TargetGroup>,
    /// Source user id → the profile the account ends with under this plan (what a membership
    /// refusal depends on), as the planner decided it: for the users the plan's membership
    /// changes name (the only ones asked about).
    profiles: HashMap<&'a str, Option<&'a str>>,
}

impl<'a> Basis<'a> {
    /// `links` is read here only (the users' profiles are keyed by the plan's own ids), so
    /// the ledger can take the links without a copy being kept.
    fn new(snapshot: &'a TargetSnapshot, links: &Links, plan: &'a Plan) -> Self {
        let accounts: HashMap<&str, &TargetUser> =
            snapshot.users.iter().map(|u| (u.id.as_str(), u)).collect();
        let members: HashSet<&'a str> = plan
            .operations
            .iter()
            .flat_map(|op| match op {
                Operation::AddMembers { members, .. }
                | Operation::RemoveMembers { members, .. } => members.as_slice(),
                _ => &[],
            })
            .filter_map(|m| m.source_id.as_ref().map(SourceUserId::as_str))
            .collect();
        let mut profiles: HashMap<&str, Option<&str>> = HashMap::new();
        let mut current = |sid: &'a str, tid: &str| {
            let p = accounts
                .get(tid)
                .and_then(|u| snapshot.catalogue.profile_of(u));
            profiles.entry(sid).or_insert(p);
        };
        for l in &links.users {
            if let Some(sid) = members.get(l.source_id.as_str()) {
                current(sid, l.target_id.as_str());
            }
        }
        for op in &plan.operations {
            if let Operation::AdoptUser {
                source_id,
                target_id,
                ..
            } = op
            {
                current(source_id.as_str(), target_id.as_str());
            }
        }
        for op in &plan.operations {
            match op {
                Operation::CreateUser {
                    source_id,
                    attributes,
                } => {
                    profiles.insert(source_id.as_str(), attributes.profile.as_deref());
                }
                Operation::UpdateUser {
                    source_id, changes, ..
                }
                | Operation::ReactivateUser {
                    source_id, changes, ..
                } => {
                    if let Some(e) = &changes.entitlements {
                        profiles.insert(source_id.as_str(), Some(e.profile.as_str()));
                    }
                }
                _ => {}
            }
        }
        Self {
            catalogue_fp: catalogue_fingerprint(&snapshot.catalogue),
            accounts,
            groups: snapshot.groups.iter().map(|g| (g.id.as_str(), g)).collect(),
            profiles,
        }
    }

    fn current_profile(
        &self,
        catalogue: &scimsync_core::target::Catalogue,
        id: &TargetUserId,
    ) -> Option<&'a str> {
        self.accounts
            .get(id.as_str())
            .and_then(|u| catalogue.profile_of(u))
    }
}

/// Applies `plan`, the ledger starting from `links` (the links the plan was made with).
pub(crate) async fn apply_plan<T: Target, St: Store>(
    ctx: &ApplyContext<'_, T, St>,
    plan: &Plan,
    links: Links,
) -> Result<Applied, BoxError> {
    let basis = Basis::new(ctx.snapshot, &links, plan);
    let state = Mutex::new(State {
        ledger: Ledger::new(links),
        missing_users: HashSet::new(),
        missing_groups: HashSet::new(),
        kept_profiles: HashMap::new(),
        member_profiles: HashMap::new(),
        users_now: HashMap::new(),
        groups_now: HashMap::new(),
        counts: Applied::default(),
    });
    if let Some(p) = ctx.progress {
        p.planned(plan.operations.len());
        let mut kinds = std::collections::BTreeMap::new();
        for op in &plan.operations {
            *kinds.entry(op.kind()).or_default() += 1;
        }
        p.planned_kinds(&kinds);
    }

    // What the planner refused or held back is part of the log too; writes held from an
    // earlier refusal were logged when refused, and are only counted in the summary.
    // A rejection is logged when it first appears or its reason changes; one unchanged since
    // it was logged is only counted (as known), so bad source data does not fill the log.
    let logged = if plan.rejected.is_empty() {
        HashMap::new()
    } else {
        ctx.store
            .logged_rejections(ctx.connection)
            .await
            .map_err(|e| Box::new(e) as BoxError)?
    };
    for r in &plan.rejected {
        let detail = format!("{}: {}", r.field, r.reason);
        if logged.get(r.source_id.as_str()) == Some(&detail) {
            let mut st = lock(&state);
            st.counts.rejected += 1;
            st.counts.known_rejected += 1;
            continue;
        }
        let entry = ctx.entry(
            "reject",
            Outcome::Rejected,
            r.object,
            Some(r.source_id.clone()),
            None,
            &r.name,
            detail,
        );
        ctx.record(&entry, &[]).await?;
        lock(&state).counts.rejected += 1;
    }
    for n in plan
        .notes
        .iter()
        .filter(|n| n.kind != NoteKind::RefusedEarlier)
    {
        let kind = json_str(&n.kind);
        let entry = ctx.entry(
            "note",
            Outcome::Skipped,
            n.object,
            (!n.source_id.is_empty()).then(|| n.source_id.clone()),
            None,
            &n.name,
            format!("{kind}: {}", n.message),
        );
        ctx.record(&entry, &[]).await?;
    }

    let mut rest = &plan.operations[..];
    while let Some(first) = rest.first() {
        let s = first.stage();
        let len = rest.iter().take_while(|op| op.stage() == s).count();
        let (batch, tail) = rest.split_at(len);
        rest = tail;
        if ctx.cancel.is_cancelled() {
            lock(&state).counts.interrupted = true;
            break;
        }
        {
            let st = lock(&state);
            if st.counts.fatal.is_some() || st.counts.over_budget {
                break;
            }
        }
        // At most `max_concurrency` operations in flight; a store failure stops the run.
        let mut pending = FuturesUnordered::new();
        let mut next = batch.iter();
        loop {
            while pending.len() < ctx.max_concurrency {
                match next.next() {
                    Some(op) => pending.push(ctx.apply_counted(op, &state, &basis)),
                    None => break,
                }
            }
            match pending.next().await {
                Some(result) => result?,
                None => break,
            }
        }
    }
    // A profile whose users were all refused membership, one by one, at least twice and never
    // accepted, forbids groups: learned, so its users are kept out of groups from the next
    // run on instead of being bisected out of every batch.
    // A profile held by a current member of any group on the target is not one of them.
    let mut candidates: Vec<String> = lock(&state)
        .member_profiles
        .iter()
        .filter(|(_, (accepted, refused))| *accepted == 0 && *refused >= 2)
        .map(|(p, _)| p.clone())
        .collect();
    if !candidates.is_empty() {
        let members: HashSet<&str> = ctx
            .snapshot
            .groups
            .iter()
            .flat_map(|g| g.members.iter().map(|m| m.as_str()))
            .collect();
        let member_profiles: HashSet<&str> = members
            .iter()
            .filter_map(|m| basis.accounts.get(m))
            .filter_map(|u| ctx.snapshot.catalogue.profile_of(u))
            .collect();
        candidates.retain(|p| !member_profiles.contains(p.as_str()));
    }
    let learned = candidates;
    if !learned.is_empty() {
        let mut news = false;
        for p in &learned {
            news |= lock(&state).ledger.learn_profile_without_groups(p);
        }
        if news {
            info!(profiles = ?learned, "Every member of these profiles was refused: they are taken to forbid groups from now on.");
            ctx.save_facts(&state).await?;
        }
    }
    let mut st = state
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if ctx.cancel.is_cancelled() && !rest.is_empty() {
        st.counts.interrupted = true;
    }
    st.counts.facts = st.ledger.facts().clone();
    Ok(st.counts)
}

tokio::task_local! {
    /// The write requests the target received for the operation being applied, not yet
    /// carried by an entry.
    static OP_WRITES: Arc<AtomicU32>;
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one call to the target came to.
#[derive(Debug, Clone)]
enum Called {
    Ok,
    Failed(String),
    Refused {
        code: Option<String>,
        reason: String,
    },
    Fatal(String),
}

fn classify<E: Classify>(e: &E) -> Called {
    let message = chain(e);
    match e.disposition() {
        Disposition::Retryable { .. } => Called::Failed(message),
        Disposition::Refused { code } => Called::Refused {
            code,
            reason: message,
        },
        Disposition::Fatal => Called::Fatal(message),
    }
}

fn called<E: Classify>(result: Result<(), E>) -> Called {
    match result {
        Ok(()) => Called::Ok,
        Err(e) => classify(&e),
    }
}

/// The outcome of an isolated write: what the target took, what it refused (with its
/// reason), and the failure that stopped the isolation, if any.
struct Isolated<W> {
    accepted: Vec<W>,
    refused: Vec<(W, String)>,
    stopped: Option<Called>,
    /// Member writes only: the size the target accepted after refusing a larger batch.
    learned_size: Option<usize>,
}

impl<W> Default for Isolated<W> {
    fn default() -> Self {
        Self {
            accepted: Vec::new(),
            refused: Vec::new(),
            stopped: None,
            learned_size: None,
        }
    }
}

/// A member of a membership change, resolved.
#[derive(Debug, Clone)]
struct Member {
    source_id: Option<SourceUserId>,
    target_id: TargetUserId,
    user_name: String,
}

impl<T: Target, St: Store> ApplyContext<'_, T, St> {
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        op: &str,
        outcome: Outcome,
        object: ObjectKind,
        source_id: Option<String>,
        target_id: Option<String>,
        name: &str,
        detail: String,
    ) -> ActivityEntry {
        ActivityEntry {
            id: 0,
            run_id: self.run_id,
            connection: self.connection.to_owned(),
            at: now(),
            op: op.to_owned(),
            outcome,
            object: object.as_str().to_owned(),
            source_id,
            target_id,
            name: name.to_owned(),
            detail,
            attempts: 0,
        }
    }

    /// Records `entry`, found also by the source username and email of the user it is about
    /// and by `subjects`.
    async fn record(&self, entry: &ActivityEntry, subjects: &[String]) -> Result<(), BoxError> {
        let mut all: Vec<String> = subjects.to_vec();
        if entry.object == ObjectKind::User.as_str()
            && let Some(sid) = &entry.source_id
        {
            all.extend(self.why.aliases(sid).iter().cloned());
        }
        // The writes the operation sent since its previous entry are this entry's.
        let sent = OP_WRITES
            .try_with(|w| w.swap(0, AtomicOrdering::Relaxed))
            .unwrap_or(0);
        let counted;
        let entry = if sent == entry.attempts {
            entry
        } else {
            counted = ActivityEntry {
                attempts: sent,
                ..entry.clone()
            };
            &counted
        };
        self.store
            .record_about(entry, &all)
            .await
            .map_err(|e| Box::new(e) as BoxError)?;
        if let Some(p) = self.progress {
            p.applied(entry);
        }
        Ok(())
    }

    async fn saved<E: std::error::Error + Send + Sync + 'static>(
        result: Result<(), E>,
    ) -> Result<(), BoxError> {
        result.map_err(|e| Box::new(e) as BoxError)
    }

    /// Holds a refused write (ledger and store) and logs it once, as rejected.
    async fn hold(
        &self,
        state: &Mutex<State>,
        refusal: HeldRefusal,
        name: &str,
        target_id: Option<String>,
    ) -> Result<(), BoxError> {
        let refusal = lock(state).ledger.after_refusal(refusal).clone();
        Self::saved(self.store.save_refusal(self.connection, &refusal).await).await?;
        let entry = self.entry(
            "refuse",
            Outcome::Rejected,
            refusal.object,
            Some(refusal.source_id.clone()),
            target_id,
            name,
            format!(
                "{} ({}) refused by the target: {}; held, not sent again until the value, the rule or the catalogue changes",
                refusal.attribute, refusal.value, refusal.reason
            ),
        );
        self.record(&entry, &[]).await?;
        let mut st = lock(state);
        st.counts.refused += 1;
        st.counts.rejected += 1;
        Ok(())
    }

    fn refusal(
        &self,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
        fingerprint: String,
        value: &str,
        reason: &str,
    ) -> HeldRefusal {
        HeldRefusal {
            object,
            source_id: source_id.to_owned(),
            attribute: attribute.to_owned(),
            fingerprint,
            value: bounded(value, refusals::KEPT_CHARS),
            reason: bounded(reason, refusals::KEPT_CHARS),
            at: now(),
        }
    }

    /// Forgets a held refusal the target now accepted.
    async fn accepted(
        &self,
        state: &Mutex<State>,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
    ) -> Result<(), BoxError> {
        let was_held = lock(state)
            .ledger
            .after_acceptance(object, source_id, attribute);
        if was_held {
            Self::saved(
                self.store
                    .clear_refusal(self.connection, object, source_id, attribute)
                    .await,
            )
            .await?;
        }
        Ok(())
    }

    /// A user as this run last left it (else as read), if known.
    fn user_now(
        &self,
        state: &Mutex<State>,
        basis: &Basis<'_>,
        id: &TargetUserId,
    ) -> Option<TargetUser> {
        let known = lock(state).users_now.get(id).cloned();
        known.or_else(|| basis.accounts.get(id.as_str()).map(|u| (*u).clone()))
    }

    /// A group as this run last left it (else as read), if known.
    fn group_now(
        &self,
        state: &Mutex<State>,
        basis: &Basis<'_>,
        id: &TargetGroupId,
    ) -> Option<TargetGroup> {
        let known = lock(state).groups_now.get(id).cloned();
        known.or_else(|| basis.groups.get(id.as_str()).map(|g| (*g).clone()))
    }

    /// Stores what an accepted write left of a user (at once, like the links, so an
    /// interrupted run resumes from the truth); `doubtful`: the target decides part of it
    /// (an email change), read it next run.
    async fn keep_user(
        &self,
        state: &Mutex<State>,
        user: TargetUser,
        doubtful: bool,
    ) -> Result<(), BoxError> {
        let _writing = self.state_writes.lock().await;
        let id = user.id.clone();
        lock(state).users_now.insert(id.clone(), user);
        let now = lock(state).users_now.get(&id).cloned();
        if let Some(user) = now {
            Self::saved(self.store.save_state(self.connection, &[user], &[]).await).await?;
        }
        if doubtful {
            Self::saved(self.store.mark_doubtful(self.connection, &[id], &[]).await).await?;
        }
        Ok(())
    }

    /// Stores what an accepted write left of a group.
    async fn keep_group(&self, state: &Mutex<State>, group: TargetGroup) -> Result<(), BoxError> {
        let _writing = self.state_writes.lock().await;
        lock(state)
            .groups_now
            .insert(group.id.clone(), group.clone());
        Self::saved(self.store.save_state(self.connection, &[], &[group]).await).await
    }

    /// Stores a group's members after accepted additions or removals. The group as it stands
    /// is read and written under the one state-writing lock: batches of one group run
    /// concurrently, and each must build on the others' members, not on the group as it was
    /// when it started.
    async fn keep_members(
        &self,
        state: &Mutex<State>,
        basis: &Basis<'_>,
        id: &TargetGroupId,
        members: &[TargetUserId],
        add: bool,
    ) -> Result<(), BoxError> {
        let _writing = self.state_writes.lock().await;
        let Some(now) = self.group_now(state, basis, id) else {
            return Ok(());
        };
        let group = state::after_members(&now, members, add);
        lock(state)
            .groups_now
            .insert(group.id.clone(), group.clone());
        Self::saved(self.store.save_state(self.connection, &[], &[group]).await).await
    }

    /// A write's outcome is unknown (failed, timed out, stopped): its object is read on the
    /// next run.
    async fn doubt(
        &self,
        users: &[TargetUserId],
        groups: &[TargetGroupId],
    ) -> Result<(), BoxError> {
        let _writing = self.state_writes.lock().await;
        Self::saved(
            self.store
                .mark_doubtful(self.connection, users, groups)
                .await,
        )
        .await
    }

    async fn save_facts(&self, state: &Mutex<State>) -> Result<(), BoxError> {
        let facts = lock(state).ledger.facts().clone();
        Self::saved(self.store.save_facts(self.connection, &facts).await).await
    }

    /// Records an outcome and counts it; a fatal one stops the run.
    async fn finish(
        &self,
        state: &Mutex<State>,
        mut entry: Described,
        called: Called,
    ) -> Result<bool, BoxError> {
        let ok = matches!(called, Called::Ok);
        match called {
            Called::Ok => entry.outcome = Outcome::Ok,
            Called::Failed(m) => {
                entry.outcome = Outcome::Failed;
                entry.detail = join(&entry.detail, &m);
            }
            Called::Refused { reason, .. } => {
                entry.outcome = Outcome::Rejected;
                entry.detail = join(&entry.detail, &format!("refused by the target: {reason}"));
            }
            Called::Fatal(m) => {
                entry.outcome = Outcome::Failed;
                entry.detail = join(&entry.detail, &m);
                lock(state).counts.fatal = Some(m);
            }
        }
        self.record(&entry.entry, &entry.subjects).await?;
        let mut st = lock(state);
        match entry.outcome {
            Outcome::Ok => st.counts.applied += 1,
            Outcome::Failed => st.counts.failed += 1,
            Outcome::Rejected => st.counts.rejected += 1,
            Outcome::Skipped => st.counts.skipped += 1,
        }
        if entry.outcome != Outcome::Ok {
            info!(op = %entry.op, name = %entry.name, outcome = entry.outcome.as_str(), detail = %entry.detail, "Operation not applied.");
        }
        Ok(ok)
    }

    async fn skip(
        &self,
        state: &Mutex<State>,
        mut entry: Described,
        why: &str,
    ) -> Result<(), BoxError> {
        entry.outcome = Outcome::Skipped;
        entry.detail = join(&entry.detail, why);
        self.record(&entry.entry, &entry.subjects).await?;
        lock(state).counts.skipped += 1;
        Ok(())
    }

    fn resolve_user(&self, state: &Mutex<State>, r: &UserRef) -> Option<TargetUserId> {
        if let Some(id) = &r.target_id {
            return Some(id.clone());
        }
        let sid = r.source_id.as_ref()?;
        lock(state).ledger.user(sid).map(|l| l.target_id.clone())
    }

    fn resolve_group(&self, state: &Mutex<State>, g: &GroupRef) -> Option<TargetGroupId> {
        if let Some(id) = &g.target_id {
            return Some(id.clone());
        }
        lock(state)
            .ledger
            .group(&g.source_id)
            .map(|l| l.target_id.clone())
    }

    /// [`Self::apply_one`], counting the write requests the target receives for it: each
    /// entry it records carries those sent since its previous one (`attempts`).
    async fn apply_counted(
        &self,
        op: &Operation,
        state: &Mutex<State>,
        basis: &Basis<'_>,
    ) -> Result<(), BoxError> {
        let writes = Arc::new(AtomicU32::new(0));
        OP_WRITES
            .scope(
                writes.clone(),
                self.target
                    .count_writes(writes, self.apply_one(op, state, basis)),
            )
            .await
    }

    async fn apply_one(
        &self,
        op: &Operation,
        state: &Mutex<State>,
        basis: &Basis<'_>,
    ) -> Result<(), BoxError> {
        if self.cancel.is_cancelled() {
            // Not started: the run says it was interrupted, so a re-run finishes it.
            lock(state).counts.interrupted = true;
            return Ok(());
        }
        if lock(state).counts.fatal.is_some() {
            return Ok(());
        }
        if self.budget.exhausted(self.target.api_usage()) {
            // Not started: the run says the budget stopped it; the next run goes on.
            lock(state).counts.over_budget = true;
            return Ok(());
        }
        if let Some(reason) = &self.hold_destructive
            && op.is_destructive()
        {
            let entry = self.describe(op);
            return self
                .skip(state, entry, &format!("held back by the guard: {reason}"))
                .await;
        }
        match op {
            Operation::CreateUser {
                source_id,
                attributes,
            } => {
                self.create_user(state, basis, op, source_id, attributes)
                    .await?
            }
            Operation::AdoptUser {
                source_id,
                target_id,
                ..
            } => {
                let link = lock(state)
                    .ledger
                    .after_adopt_user(source_id, target_id)
                    .clone();
                Self::saved(self.store.save_user_link(self.connection, &link).await).await?;
                if let Some(user) = self.user_now(state, basis, target_id) {
                    self.keep_user(state, user, false).await?;
                }
                self.finish(state, self.describe(op), Called::Ok).await?;
            }
            Operation::UpdateUser {
                source_id,
                target_id,
                changes,
                ..
            }
            | Operation::ReactivateUser {
                source_id,
                target_id,
                changes,
                ..
            } => {
                self.update_user(state, basis, op, source_id, target_id, changes)
                    .await?;
            }
            Operation::DeactivateUser { target_id, .. } => {
                let changes = UserChanges {
                    active: Some(false),
                    ..Default::default()
                };
                let called = called(self.target.update_user(target_id, &changes).await);
                match &called {
                    Called::Ok => {
                        if let Some(user) = self.user_now(state, basis, target_id) {
                            self.keep_user(state, state::after_deactivate(&user), false)
                                .await?;
                        }
                    }
                    Called::Failed(_) | Called::Fatal(_) => {
                        self.doubt(std::slice::from_ref(target_id), &[]).await?;
                    }
                    Called::Refused { .. } => {}
                }
                self.finish(state, self.describe(op), called).await?;
            }
            Operation::CreateGroup { source_id, name } => {
                let entry = self.describe(op);
                match self.target.create_group(name).await {
                    Ok(group) => {
                        self.keep_group(state, group.clone()).await?;
                        let link = lock(state)
                            .ledger
                            .after_link_group(source_id, &group.id, Origin::Created)
                            .clone();
                        Self::saved(self.store.save_group_link(self.connection, &link).await)
                            .await?;
                        Self::saved(
                            self.store
                                .clear_refusal(
                                    self.connection,
                                    ObjectKind::Group,
                                    source_id.as_str(),
                                    "create",
                                )
                                .await,
                        )
                        .await?;
                        let mut entry = entry;
                        entry.target_id = Some(group.id.to_string());
                        self.finish(state, entry, Called::Ok).await?;
                    }
                    Err(e) => {
                        lock(state).missing_groups.insert(source_id.clone());
                        match classify(&e) {
                            Called::Refused { reason, .. } => {
                                let reason = format!(
                                    "{reason}; create the group {name:?} on the target (Salesforce: a public group) and the next run links it by name"
                                );
                                let r = self.refusal(
                                    ObjectKind::Group,
                                    source_id.as_str(),
                                    "create",
                                    group_create_fingerprint(name),
                                    name,
                                    &reason,
                                );
                                self.hold(state, r, name, None).await?;
                            }
                            other => {
                                self.finish(state, entry, other).await?;
                            }
                        }
                    }
                }
            }
            Operation::AdoptGroup {
                source_id,
                target_id,
                ..
            } => {
                let link = lock(state)
                    .ledger
                    .after_link_group(source_id, target_id, Origin::Adopted)
                    .clone();
                Self::saved(self.store.save_group_link(self.connection, &link).await).await?;
                if let Some(group) = self.group_now(state, basis, target_id) {
                    self.keep_group(state, group).await?;
                }
                self.finish(state, self.describe(op), Called::Ok).await?;
            }
            Operation::RenameGroup {
                source_id,
                target_id,
                to,
                ..
            } => match called(self.target.rename_group(target_id, to).await) {
                // Some targets cannot rename groups (an immutable displayName): held, not
                // tried again every run.
                Called::Refused { reason, .. } => {
                    let r = self.refusal(
                        ObjectKind::Group,
                        source_id.as_str(),
                        "displayName",
                        rename_fingerprint(to),
                        to,
                        &reason,
                    );
                    self.hold(state, r, to, Some(target_id.to_string())).await?;
                }
                other => {
                    if matches!(other, Called::Ok) {
                        self.accepted(state, ObjectKind::Group, source_id.as_str(), "displayName")
                            .await?;
                        if let Some(group) = self.group_now(state, basis, target_id) {
                            self.keep_group(state, state::after_rename(&group, to))
                                .await?;
                        }
                    } else {
                        self.doubt(&[], std::slice::from_ref(target_id)).await?;
                    }
                    self.finish(state, self.describe(op), other).await?;
                }
            },
            Operation::AddMembers { group, members }
            | Operation::RemoveMembers { group, members } => {
                let add = matches!(op, Operation::AddMembers { .. });
                self.change_members(state, basis, op, group, members, add)
                    .await?;
            }
        }
        Ok(())
    }

    /// Creates a user. A refusal naming one optional attribute is retried without it (the
    /// attribute is held); a taken userName is held with the fix; any other refusal holds the
    /// creation until what would be sent changes.
    async fn create_user(
        &self,
        state: &Mutex<State>,
        basis: &Basis<'_>,
        op: &Operation,
        source_id: &SourceUserId,
        attributes: &scimsync_core::plan::UserAttributes,
    ) -> Result<(), BoxError> {
        let sid = source_id.as_str();
        let mut entry = self.describe(op);
        let mut sending = attributes.clone();
        let mut left_out: Vec<&'static str> = Vec::new();
        loop {
            let result = self.target.create_user(&sending).await;
            let e = match result {
                Ok(created) => {
                    self.keep_user(state, created.clone(), false).await?;
                    let link = lock(state)
                        .ledger
                        .after_create_user(source_id, &created.id, &sending.permission_sets)
                        .clone();
                    Self::saved(self.store.save_user_link(self.connection, &link).await).await?;
                    for attribute in ["create", "userName"] {
                        self.accepted(state, ObjectKind::User, sid, attribute)
                            .await?;
                    }
                    entry.target_id = Some(created.id.to_string());
                    if !left_out.is_empty() {
                        entry.detail = join(
                            &entry.detail,
                            &format!("created without {} (refused)", left_out.join(", ")),
                        );
                    }
                    self.finish(state, entry, Called::Ok).await?;
                    return Ok(());
                }
                Err(e) => e,
            };
            let (code, reason) = match classify(&e) {
                Called::Refused { code, reason } => (code, reason),
                other => {
                    lock(state).missing_users.insert(source_id.clone());
                    self.finish(state, entry, other).await?;
                    return Ok(());
                }
            };
            let taken = code
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("DUPLICATE_USERNAME"));
            // One optional attribute named by the reason: retry without it. (Not for a taken
            // userName, whose message may name other words: "another … organization".)
            let named: Vec<(&'static str, UserChanges)> = if taken {
                Vec::new()
            } else {
                sending
                    .optional_writes()
                    .into_iter()
                    .filter(|(a, _)| names_attribute(&reason, a))
                    .collect()
            };
            if let [(attribute, single)] = &named[..] {
                let write = split_update(single, None, &basis.catalogue_fp);
                if let Some(w) = write.first() {
                    let r = self.refusal(
                        ObjectKind::User,
                        sid,
                        attribute,
                        w.fingerprint.clone(),
                        &w.value,
                        &reason,
                    );
                    self.hold(state, r, &sending.user_name, None).await?;
                }
                sending.remove(attribute);
                left_out.push(attribute);
                continue;
            }
            lock(state).missing_users.insert(source_id.clone());
            let r = if taken {
                self.refusal(
                    ObjectKind::User,
                    sid,
                    "userName",
                    user_name_fingerprint(&sending.user_name),
                    &sending.user_name,
                    &reason,
                )
            } else {
                let value = serde_json::to_string(&sending).unwrap_or_default();
                self.refusal(
                    ObjectKind::User,
                    sid,
                    "create",
                    create_fingerprint(&sending, &basis.catalogue_fp),
                    &value,
                    &reason,
                )
            };
            self.hold(state, r, &sending.user_name, None).await?;
            return Ok(());
        }
    }

    /// Updates a user; a refusal is isolated to the attributes that caused it.
    async fn update_user(
        &self,
        state: &Mutex<State>,
        basis: &Basis<'_>,
        op: &Operation,
        source_id: &SourceUserId,
        target_id: &TargetUserId,
        changes: &UserChanges,
    ) -> Result<(), BoxError> {
        let sid = source_id.as_str();
        let current = basis.current_profile(&self.snapshot.catalogue, target_id);
        let writes = split_update(changes, current, &basis.catalogue_fp);
        let mut result = self.isolate_update(target_id, writes).await;
        // A refused profile change took the permission-set changes down with it: they are
        // sent again with the current profile, as the next plan would send them (same write,
        // same fingerprint), so they land, or are held, in this run.
        let kept = result
            .refused
            .iter()
            .find(|(w, _)| w.attribute == "profile")
            .and_then(|(w, _)| keeping_profile(&w.changes, current?));
        if let (None, Some(kept)) = (&result.stopped, kept) {
            let writes = split_update(&kept, current, &basis.catalogue_fp);
            let more = self.isolate_update(target_id, writes).await;
            result.accepted.extend(more.accepted);
            result.refused.extend(more.refused);
            result.stopped = more.stopped;
        }
        let mut accepted = UserChanges::default();
        for w in &result.accepted {
            accepted.merge(w.changes.clone());
        }
        if !accepted.is_empty()
            && let Some(user) = self.user_now(state, basis, target_id)
        {
            let (next, doubtful) = state::after_update(&user, &accepted);
            self.keep_user(state, next, doubtful).await?;
        }
        if matches!(result.stopped, Some(Called::Failed(_) | Called::Fatal(_))) {
            self.doubt(std::slice::from_ref(target_id), &[]).await?;
        }
        if !accepted.is_empty() {
            let previous = accepted.email.as_ref().and_then(|_| {
                basis
                    .accounts
                    .get(target_id.as_str())
                    .and_then(|u| u.work_email())
                    .map(str::to_owned)
            });
            let link = lock(state)
                .ledger
                .after_update_user(source_id, &accepted, previous, now())
                .cloned();
            if let Some(link) = link {
                Self::saved(self.store.save_user_link(self.connection, &link).await).await?;
            }
            for w in &result.accepted {
                self.accepted(state, ObjectKind::User, sid, w.attribute)
                    .await?;
            }
        }
        let user_name = match op {
            Operation::UpdateUser { user_name, .. }
            | Operation::ReactivateUser { user_name, .. } => user_name.as_str(),
            _ => "",
        };
        if result.refused.iter().any(|(w, _)| w.attribute == "profile") {
            lock(state)
                .kept_profiles
                .insert(source_id.clone(), current.map(str::to_owned));
        }
        for (w, reason) in &result.refused {
            let r = self.refusal(
                ObjectKind::User,
                sid,
                w.attribute,
                w.fingerprint.clone(),
                &w.value,
                reason,
            );
            self.hold(state, r, user_name, Some(target_id.to_string()))
                .await?;
        }
        let mut entry = self.describe(op);
        let refused: Vec<&str> = result.refused.iter().map(|(w, _)| w.attribute).collect();
        let outcome = match result.stopped {
            Some(stop) => stop,
            None if accepted.is_empty() && !refused.is_empty() => {
                // Every attribute was refused: logged and counted by `hold`, one per attribute.
                return Ok(());
            }
            None => Called::Ok,
        };
        if !refused.is_empty() {
            entry.detail = join(
                &entry.detail,
                &format!(
                    "applied {}; refused {}",
                    accepted.attribute_names().join(", "),
                    refused.join(", ")
                ),
            );
        }
        self.finish(state, entry, outcome).await?;
        Ok(())
    }

    /// Sends `writes` as one update; on a refusal, the attributes the reason names are tried
    /// apart from the rest, else the writes are halved, until each refused write stands alone.
    async fn isolate_update(
        &self,
        target_id: &TargetUserId,
        writes: Vec<Write>,
    ) -> Isolated<Write> {
        let mut out = Isolated::default();
        let mut queue: Vec<Vec<Write>> = vec![writes];
        while let Some(group) = queue.pop() {
            if group.is_empty() {
                continue;
            }
            let mut combined = UserChanges::default();
            for w in &group {
                combined.merge(w.changes.clone());
            }
            match called(self.target.update_user(target_id, &combined).await) {
                Called::Ok => out.accepted.extend(group),
                Called::Refused { reason, .. } if group.len() == 1 => {
                    out.refused
                        .extend(group.into_iter().map(|w| (w, reason.clone())));
                }
                Called::Refused { reason, .. } => {
                    let (named, rest): (Vec<Write>, Vec<Write>) = group
                        .into_iter()
                        .partition(|w| names_attribute(&reason, w.attribute));
                    if !named.is_empty() && !rest.is_empty() {
                        if let [_] = &named[..] {
                            // The reason names exactly one attribute: it is the refused one.
                            out.refused
                                .extend(named.into_iter().map(|w| (w, reason.clone())));
                        } else {
                            queue.extend(named.into_iter().map(|w| vec![w]));
                        }
                        queue.push(rest);
                    } else {
                        let mut all: Vec<Write> = named.into_iter().chain(rest).collect();
                        let second = all.split_off(all.len() / 2);
                        queue.push(second);
                        queue.push(all);
                    }
                }
                stop => {
                    out.stopped = Some(stop);
                    break;
                }
            }
        }
        out
    }

    /// Adds or removes members in batches of the size the target accepts; a refusal is
    /// isolated to the members that caused it.
    async fn change_members(
        &self,
        state: &Mutex<State>,
        basis: &Basis<'_>,
        op: &Operation,
        group: &GroupRef,
        members: &[UserRef],
        add: bool,
    ) -> Result<(), BoxError> {
        let mut entry = self.describe(op);
        let Some(gid) = self.resolve_group(state, group) else {
            return self
                .skip(
                    state,
                    entry,
                    "the group does not exist on the target (its creation failed or was refused)",
                )
                .await;
        };
        entry.target_id = Some(gid.to_string());
        let mut resolved = Vec::with_capacity(members.len());
        let mut unresolved = Vec::new();
        for m in members {
            match self.resolve_user(state, m) {
                Some(id) => resolved.push(Member {
                    source_id: m.source_id.clone(),
                    target_id: id,
                    user_name: m.user_name.to_string(),
                }),
                None => unresolved.push(m.user_name.as_str()),
            }
        }
        if !unresolved.is_empty() {
            entry.detail = join(
                &entry.detail,
                &format!(
                    "{} left out, their accounts were not created: {}",
                    unresolved.len(),
                    unresolved.join(", ")
                ),
            );
        }
        if resolved.is_empty() {
            return self.skip(state, entry, "no member to change").await;
        }
        let size = lock(state)
            .ledger
            .facts()
            .member_batch_size
            .map_or(self.member_batch_size, |s| s.min(self.member_batch_size))
            .max(1);
        let result = self.isolate_members(&gid, resolved, add, size).await;
        if let Some(size) = result.learned_size {
            let news = lock(state).ledger.learn_member_batch_size(size);
            if news {
                self.save_facts(state).await?;
                info!(
                    size,
                    "The target accepts at most this many members per request; remembered."
                );
            }
        }
        if !result.accepted.is_empty() {
            let ids: Vec<TargetUserId> = result
                .accepted
                .iter()
                .map(|m| m.target_id.clone())
                .collect();
            self.keep_members(state, basis, &gid, &ids, add).await?;
        }
        if matches!(result.stopped, Some(Called::Failed(_) | Called::Fatal(_))) {
            self.doubt(&[], std::slice::from_ref(&gid)).await?;
        }
        let attribute = member_attribute(group.source_id.as_str());
        for m in &result.accepted {
            if let Some(sid) = &m.source_id {
                self.accepted(state, ObjectKind::User, sid.as_str(), &attribute)
                    .await?;
                if add && let Some(Some(p)) = basis.profiles.get(sid.as_str()) {
                    lock(state)
                        .member_profiles
                        .entry((*p).to_owned())
                        .or_default()
                        .0 += 1;
                }
            }
        }
        let mut learned = false;
        for (m, reason) in &result.refused {
            let Some(sid) = &m.source_id else { continue };
            let kept = lock(state).kept_profiles.get(sid).cloned();
            let profile = match &kept {
                Some(p) => p.as_deref(),
                None => basis.profiles.get(sid.as_str()).copied().flatten(),
            };
            if add && let Some(p) = profile {
                if blames_profile(reason) {
                    learned |= lock(state).ledger.learn_profile_without_groups(p);
                }
                lock(state)
                    .member_profiles
                    .entry(p.to_owned())
                    .or_default()
                    .1 += 1;
            }
            let r = self.refusal(
                ObjectKind::User,
                sid.as_str(),
                &attribute,
                member_fingerprint(add, profile, &basis.catalogue_fp),
                &format!(
                    "{} group {:?}",
                    if add { "add to" } else { "remove from" },
                    group.name
                ),
                reason,
            );
            self.hold(state, r, &m.user_name, Some(m.target_id.to_string()))
                .await?;
        }
        if learned {
            self.save_facts(state).await?;
        }
        let outcome = match result.stopped {
            Some(stop) => stop,
            None if result.accepted.is_empty() => return Ok(()),
            None => Called::Ok,
        };
        if !result.refused.is_empty() {
            entry.detail = join(
                &entry.detail,
                &format!(
                    "{} applied, {} refused (held)",
                    result.accepted.len(),
                    result.refused.len()
                ),
            );
        }
        self.finish(state, entry, outcome).await?;
        Ok(())
    }

    async fn isolate_members(
        &self,
        gid: &TargetGroupId,
        members: Vec<Member>,
        add: bool,
        size: usize,
    ) -> Isolated<Member> {
        let mut out = Isolated::default();
        let mut size = size;
        let mut shrunk = false;
        let mut queue: Vec<Vec<Member>> = Vec::new();
        for chunk in members.chunks(size).rev() {
            queue.push(chunk.to_vec());
        }
        while let Some(batch) = queue.pop() {
            if batch.len() > size {
                for chunk in batch.chunks(size).rev() {
                    queue.push(chunk.to_vec());
                }
                continue;
            }
            let ids: Vec<TargetUserId> = batch.iter().map(|m| m.target_id.clone()).collect();
            let result = if add {
                self.target.add_members(gid, &ids).await
            } else {
                self.target.remove_members(gid, &ids).await
            };
            match called(result) {
                Called::Ok => {
                    if shrunk {
                        out.learned_size = Some(size);
                    }
                    out.accepted.extend(batch);
                }
                Called::Refused { code, reason }
                    if batch.len() > 1 && is_size_refusal(code.as_deref(), &reason) =>
                {
                    size = (batch.len() / 2).max(1);
                    shrunk = true;
                    for chunk in batch.chunks(size).rev() {
                        queue.push(chunk.to_vec());
                    }
                }
                Called::Refused { reason, .. } if batch.len() == 1 => {
                    out.refused
                        .extend(batch.into_iter().map(|m| (m, reason.clone())));
                }
                Called::Refused { .. } => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    queue.push(second);
                    queue.push(first);
                }
                stop => {
                    out.stopped = Some(stop);
                    break;
                }
            }
        }
        out
    }

    /// The activity entry of an operation, before its outcome is known: its detail is the
    /// plan table's (`render::details`, with the user's decision), bounded.
    fn describe(&self, op: &Operation) -> Described {
        let object = match op {
            Operation::CreateGroup { .. }
            | Operation::AdoptGroup { .. }
            | Operation::RenameGroup { .. }
            | Operation::AddMembers { .. }
            | Operation::RemoveMembers { .. } => ObjectKind::Group,
            _ => ObjectKind::User,
        };
        let (source, target, name) = match op {
            Operation::CreateUser {
                source_id,
                attributes,
            } => (source_id.to_string(), None, attributes.user_name.clone()),
            Operation::AdoptUser {
                source_id,
                target_id,
                user_name,
                ..
            }
            | Operation::UpdateUser {
                source_id,
                target_id,
                user_name,
                ..
            }
            | Operation::ReactivateUser {
                source_id,
                target_id,
                user_name,
                ..
            }
            | Operation::DeactivateUser {
                source_id,
                target_id,
                user_name,
                ..
            } => (
                source_id.to_string(),
                Some(target_id.to_string()),
                user_name.clone(),
            ),
            Operation::CreateGroup { source_id, name } => {
                (source_id.to_string(), None, name.clone())
            }
            Operation::AdoptGroup {
                source_id,
                target_id,
                name,
            } => (
                source_id.to_string(),
                Some(target_id.to_string()),
                name.clone(),
            ),
            Operation::RenameGroup {
                source_id,
                target_id,
                to,
                ..
            } => (
                source_id.to_string(),
                Some(target_id.to_string()),
                to.clone(),
            ),
            Operation::AddMembers { group: g, .. } | Operation::RemoveMembers { group: g, .. } => (
                g.source_id.to_string(),
                g.target_id.as_ref().map(ToString::to_string),
                g.name.clone(),
            ),
        };
        let decision = match op {
            Operation::CreateUser { source_id, .. }
            | Operation::UpdateUser { source_id, .. }
            | Operation::ReactivateUser { source_id, .. }
            | Operation::DeactivateUser { source_id, .. } => self.why.decision(source_id),
            _ => None,
        };
        let mut subjects = Vec::new();
        if let Operation::AddMembers { members, .. } | Operation::RemoveMembers { members, .. } = op
        {
            for m in members {
                subjects.push(m.user_name.to_string());
                subjects.extend(m.target_id.as_ref().map(ToString::to_string));
                if let Some(sid) = &m.source_id {
                    subjects.push(sid.to_string());
                    subjects.extend(self.why.aliases(sid.as_str()).iter().cloned());
                }
            }
        }
        let detail = bounded(
            &scimsync_core::render::details(op, self.labels, decision),
            MAX_DETAIL,
        );
        Described {
            entry: self.entry(
                op.kind(),
                Outcome::Skipped,
                object,
                Some(source),
                target,
                &name,
                detail,
            ),
            subjects,
        }
    }
}

/// The permission-set part of a refused profile change, with the account's `current` profile
/// kept: what the planner plans once the profile change is held. `None` when the change moves
/// no permission set.
fn keeping_profile(refused: &UserChanges, current: &str) -> Option<UserChanges> {
    let e = refused.entitlements.as_ref()?;
    if e.added.is_empty() && e.removed.is_empty() {
        return None;
    }
    Some(UserChanges {
        entitlements: Some(EntitlementChange {
            profile: current.into(),
            profile_changed: false,
            ..e.clone()
        }),
        ..UserChanges::default()
    })
}

/// The serde name of a unit variant (`disabled`, `left_directory`, …).
pub(crate) fn json_str<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a}; {b}")
    }
}
