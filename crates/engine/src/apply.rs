//! Applying a plan: in dependency order, with bounded concurrency inside each stage, recording
//! every outcome and updating the links as each operation completes.

use crate::run::{Progress, chain, now, object_name};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use scimsync_core::activity::{ActivityEntry, Outcome, RunId};
use scimsync_core::links::{GroupLink, Links, Origin, PendingEmail, Refusal, UserLink};
use scimsync_core::plan::{GroupRef, ObjectKind, Operation, Plan, UserRef};
use scimsync_core::ports::{Classify, Disposition, Store, Target};
use scimsync_core::target::{TargetSnapshot, TargetUser};
use scimsync_core::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::info;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct ApplyContext<'a, T, St> {
    pub connection: &'a str,
    pub run_id: RunId,
    pub target: &'a T,
    pub store: &'a St,
    /// The target as read at the start of the run (current values for pending emails and refusals).
    pub snapshot: &'a TargetSnapshot,
    pub links: Links,
    /// `Some(reason)`: destructive operations are held back (the guard tripped, unapproved).
    pub hold_destructive: Option<String>,
    pub max_concurrency: usize,
    pub cancel: &'a CancellationToken,
    pub progress: Option<&'a dyn Progress>,
}

/// Counts of what happened.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub applied: u64,
    pub failed: u64,
    pub rejected: u64,
    pub skipped: u64,
    /// The connection broke (credentials, permissions): the rest of the plan was not tried.
    pub fatal: Option<String>,
    /// Cancelled before the plan was done.
    pub interrupted: bool,
}

#[derive(Default)]
struct State {
    users: HashMap<SourceUserId, UserLink>,
    groups: HashMap<SourceGroupId, GroupLink>,
    /// Users and groups whose creation failed in this run: their dependants are skipped.
    missing_users: HashSet<SourceUserId>,
    missing_groups: HashSet<SourceGroupId>,
    counts: Applied,
}

/// The stage of an operation: operations of one stage are independent of each other; a stage
/// starts when the previous one is done.
fn stage(op: &Operation) -> u8 {
    match op {
        Operation::CreateGroup { .. } | Operation::AdoptGroup { .. } => 0,
        Operation::CreateUser { .. } | Operation::AdoptUser { .. } => 1,
        Operation::UpdateUser { .. } | Operation::ReactivateUser { .. } => 2,
        Operation::RenameGroup { .. } => 3,
        Operation::RemoveMembers { .. } => 4,
        Operation::AddMembers { .. } => 5,
        Operation::DeactivateUser { .. } => 6,
    }
}

pub(crate) async fn apply_plan<T: Target, St: Store>(
    ctx: &ApplyContext<'_, T, St>,
    plan: &Plan,
) -> Result<Applied, BoxError> {
    let state = Mutex::new(State {
        users: ctx
            .links
            .users
            .iter()
            .map(|l| (l.source_id.clone(), l.clone()))
            .collect(),
        groups: ctx
            .links
            .groups
            .iter()
            .map(|l| (l.source_id.clone(), l.clone()))
            .collect(),
        ..State::default()
    });
    if let Some(p) = ctx.progress {
        p.planned(plan.operations.len());
    }

    // What the planner refused or held back is part of the log too.
    for r in &plan.rejected {
        let entry = ctx.entry(
            "reject",
            Outcome::Rejected,
            object_name(r.object),
            Some(r.source_id.clone()),
            None,
            &r.name,
            format!("{}: {}", r.field, r.reason),
        );
        ctx.record(&entry).await?;
        lock(&state).counts.rejected += 1;
    }
    for n in &plan.notes {
        let kind = json_str(&n.kind);
        let entry = ctx.entry(
            "note",
            Outcome::Skipped,
            object_name(n.object),
            Some(n.source_id.clone()),
            None,
            &n.name,
            format!("{kind}: {}", n.message),
        );
        ctx.record(&entry).await?;
    }

    let mut rest = &plan.operations[..];
    while let Some(first) = rest.first() {
        let s = stage(first);
        let len = rest.iter().take_while(|op| stage(op) == s).count();
        let (batch, tail) = rest.split_at(len);
        rest = tail;
        if ctx.cancel.is_cancelled() {
            lock(&state).counts.interrupted = true;
            break;
        }
        if lock(&state).counts.fatal.is_some() {
            break;
        }
        // At most `max_concurrency` operations in flight; a store failure stops the run.
        let mut pending = FuturesUnordered::new();
        let mut next = batch.iter();
        loop {
            while pending.len() < ctx.max_concurrency {
                match next.next() {
                    Some(op) => pending.push(ctx.apply_one(op, &state)),
                    None => break,
                }
            }
            match pending.next().await {
                Some(result) => result?,
                None => break,
            }
        }
    }
    let mut st = state
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if ctx.cancel.is_cancelled() && !rest.is_empty() {
        st.counts.interrupted = true;
    }
    Ok(st.counts)
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one call to the target came to.
enum Called {
    Ok,
    Failed(String),
    Refused(String),
    Fatal(String),
}

fn classify<E: Classify>(e: &E) -> Called {
    let message = chain(e);
    match e.disposition() {
        Disposition::Retryable { .. } => Called::Failed(message),
        Disposition::Refused { .. } => Called::Refused(message),
        Disposition::Fatal => Called::Fatal(message),
    }
}

impl<T: Target, St: Store> ApplyContext<'_, T, St> {
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        op: &str,
        outcome: Outcome,
        object: &str,
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
            object: object.to_owned(),
            source_id,
            target_id,
            name: name.to_owned(),
            detail,
        }
    }

    async fn record(&self, entry: &ActivityEntry) -> Result<(), BoxError> {
        self.store
            .record(entry)
            .await
            .map_err(|e| Box::new(e) as BoxError)?;
        if let Some(p) = self.progress {
            p.applied(entry);
        }
        Ok(())
    }

    async fn save_user(&self, link: &UserLink) -> Result<(), BoxError> {
        self.store
            .save_user_link(self.connection, link)
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }

    async fn save_group(&self, link: &GroupLink) -> Result<(), BoxError> {
        self.store
            .save_group_link(self.connection, link)
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }

    /// Records an outcome and counts it; a fatal one stops the run.
    async fn finish(
        &self,
        state: &Mutex<State>,
        mut entry: ActivityEntry,
        called: Called,
    ) -> Result<bool, BoxError> {
        let ok = matches!(called, Called::Ok);
        match called {
            Called::Ok => entry.outcome = Outcome::Ok,
            Called::Failed(m) => {
                entry.outcome = Outcome::Failed;
                entry.detail = join(&entry.detail, &m);
            }
            Called::Refused(m) => {
                entry.outcome = Outcome::Rejected;
                entry.detail = join(&entry.detail, &format!("refused by the target: {m}"));
            }
            Called::Fatal(m) => {
                entry.outcome = Outcome::Failed;
                entry.detail = join(&entry.detail, &m);
                lock(state).counts.fatal = Some(m);
            }
        }
        self.record(&entry).await?;
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
        mut entry: ActivityEntry,
        why: &str,
    ) -> Result<(), BoxError> {
        entry.outcome = Outcome::Skipped;
        entry.detail = join(&entry.detail, why);
        self.record(&entry).await?;
        lock(state).counts.skipped += 1;
        Ok(())
    }

    fn resolve_user(&self, state: &Mutex<State>, r: &UserRef) -> Option<TargetUserId> {
        if let Some(id) = &r.target_id {
            return Some(id.clone());
        }
        let sid = r.source_id.as_ref()?;
        lock(state).users.get(sid).map(|l| l.target_id.clone())
    }

    fn resolve_group(&self, state: &Mutex<State>, g: &GroupRef) -> Option<TargetGroupId> {
        if let Some(id) = &g.target_id {
            return Some(id.clone());
        }
        lock(state)
            .groups
            .get(&g.source_id)
            .map(|l| l.target_id.clone())
    }

    fn snapshot_user(&self, id: &TargetUserId) -> Option<&TargetUser> {
        self.snapshot.users.iter().find(|u| u.id == *id)
    }

    fn current_profile(&self, id: &TargetUserId) -> Option<String> {
        let user = self.snapshot_user(id)?;
        let profiles = &self.snapshot.catalogue.profiles;
        user.entitlements
            .iter()
            .find(|e| {
                profiles.iter().any(|p| p.id == e.value)
                    || e.kind
                        .as_deref()
                        .is_some_and(|k| k.eq_ignore_ascii_case("profile"))
                    || e.value.starts_with("00e")
            })
            .map(|e| e.value.clone())
    }

    async fn apply_one(&self, op: &Operation, state: &Mutex<State>) -> Result<(), BoxError> {
        if self.cancel.is_cancelled() || lock(state).counts.fatal.is_some() {
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
                let entry = self.describe(op);
                let called = match self.target.create_user(attributes).await {
                    Ok(created) => {
                        let link = UserLink {
                            source_id: source_id.clone(),
                            target_id: created.id.clone(),
                            origin: Origin::Created,
                            assigned_permission_sets: attributes
                                .permission_sets
                                .iter()
                                .cloned()
                                .collect(),
                            pending_email: None,
                            refusals: Vec::new(),
                        };
                        self.save_user(&link).await?;
                        lock(state).users.insert(source_id.clone(), link);
                        let mut entry = entry;
                        entry.target_id = Some(created.id.to_string());
                        self.finish(state, entry, Called::Ok).await?;
                        return Ok(());
                    }
                    Err(e) => classify(&e),
                };
                lock(state).missing_users.insert(source_id.clone());
                self.finish(state, entry, called).await?;
            }
            Operation::AdoptUser {
                source_id,
                target_id,
                ..
            } => {
                let link = UserLink {
                    source_id: source_id.clone(),
                    target_id: target_id.clone(),
                    origin: Origin::Adopted,
                    assigned_permission_sets: Default::default(),
                    pending_email: None,
                    refusals: Vec::new(),
                };
                self.save_user(&link).await?;
                lock(state).users.insert(source_id.clone(), link);
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
                let entry = self.describe(op);
                let called = match self.target.update_user(target_id, changes).await {
                    Ok(()) => Called::Ok,
                    Err(e) => classify(&e),
                };
                let link = {
                    let mut st = lock(state);
                    let link = st.users.get_mut(source_id);
                    match (link, &called) {
                        (Some(link), Called::Ok) => {
                            if let Some(ent) = &changes.entitlements {
                                for p in &ent.added {
                                    link.assigned_permission_sets.insert(p.clone());
                                }
                                for p in &ent.removed {
                                    link.assigned_permission_sets.remove(p);
                                }
                                if ent.profile_changed {
                                    link.refusals.retain(|r| r.attribute != "profile");
                                }
                            }
                            if let Some(email) = &changes.email {
                                let previous = self
                                    .snapshot_user(target_id)
                                    .and_then(TargetUser::work_email)
                                    .map(str::to_owned);
                                link.pending_email = Some(PendingEmail {
                                    address: email.clone(),
                                    previous,
                                    requested_at: now(),
                                });
                            }
                            Some(link.clone())
                        }
                        (Some(link), Called::Refused(reason)) => match &changes.entitlements {
                            Some(ent) if ent.profile_changed => {
                                link.refusals.retain(|r| r.attribute != "profile");
                                link.refusals.push(Refusal {
                                    attribute: "profile".to_owned(),
                                    wanted: ent.profile.clone(),
                                    basis: self.current_profile(target_id),
                                    reason: reason.clone(),
                                    at: now(),
                                });
                                Some(link.clone())
                            }
                            _ => None,
                        },
                        _ => None,
                    }
                };
                if let Some(link) = link {
                    self.save_user(&link).await?;
                }
                self.finish(state, entry, called).await?;
            }
            Operation::DeactivateUser { target_id, .. } => {
                let changes = scimsync_core::plan::UserChanges {
                    active: Some(false),
                    ..Default::default()
                };
                let called = match self.target.update_user(target_id, &changes).await {
                    Ok(()) => Called::Ok,
                    Err(e) => classify(&e),
                };
                self.finish(state, self.describe(op), called).await?;
            }
            Operation::CreateGroup { source_id, name } => {
                let entry = self.describe(op);
                match self.target.create_group(name).await {
                    Ok(group) => {
                        let link = GroupLink {
                            source_id: source_id.clone(),
                            target_id: group.id.clone(),
                            origin: Origin::Created,
                        };
                        self.save_group(&link).await?;
                        lock(state).groups.insert(source_id.clone(), link);
                        let mut entry = entry;
                        entry.target_id = Some(group.id.to_string());
                        self.finish(state, entry, Called::Ok).await?;
                    }
                    Err(e) => {
                        lock(state).missing_groups.insert(source_id.clone());
                        let mut called = classify(&e);
                        if let Called::Refused(m) = called {
                            called = Called::Refused(format!(
                                "{m}; create the group {name:?} on the target (Salesforce: a public group) and the next run links it by name"
                            ));
                        }
                        self.finish(state, entry, called).await?;
                    }
                }
            }
            Operation::AdoptGroup {
                source_id,
                target_id,
                ..
            } => {
                let link = GroupLink {
                    source_id: source_id.clone(),
                    target_id: target_id.clone(),
                    origin: Origin::Adopted,
                };
                self.save_group(&link).await?;
                lock(state).groups.insert(source_id.clone(), link);
                self.finish(state, self.describe(op), Called::Ok).await?;
            }
            Operation::RenameGroup { target_id, to, .. } => {
                let called = match self.target.rename_group(target_id, to).await {
                    Ok(()) => Called::Ok,
                    Err(e) => classify(&e),
                };
                self.finish(state, self.describe(op), called).await?;
            }
            Operation::AddMembers { group, members }
            | Operation::RemoveMembers { group, members } => {
                let add = matches!(op, Operation::AddMembers { .. });
                let mut entry = self.describe(op);
                let Some(gid) = self.resolve_group(state, group) else {
                    return self
                        .skip(state, entry, "the group does not exist on the target (its creation failed or was refused)")
                        .await;
                };
                entry.target_id = Some(gid.to_string());
                let mut ids = Vec::with_capacity(members.len());
                let mut unresolved = Vec::new();
                for m in members {
                    match self.resolve_user(state, m) {
                        Some(id) => ids.push(id),
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
                if ids.is_empty() {
                    return self.skip(state, entry, "no member to change").await;
                }
                let result = if add {
                    self.target.add_members(&gid, &ids).await
                } else {
                    self.target.remove_members(&gid, &ids).await
                };
                let called = match result {
                    Ok(()) => Called::Ok,
                    Err(e) => classify(&e),
                };
                self.finish(state, entry, called).await?;
            }
        }
        Ok(())
    }

    /// The activity entry of an operation, before its outcome is known.
    fn describe(&self, op: &Operation) -> ActivityEntry {
        let user = ObjectKind::User;
        let group = ObjectKind::Group;
        let (object, source, target, name, detail) = match op {
            Operation::CreateUser {
                source_id,
                attributes,
            } => (
                user,
                source_id.to_string(),
                None,
                attributes.user_name.clone(),
                format!(
                    "profile {}, {} permission set(s){}",
                    attributes.profile.as_deref().unwrap_or("-"),
                    attributes.permission_sets.len(),
                    attributes
                        .role
                        .as_deref()
                        .map(|r| format!(", role {r}"))
                        .unwrap_or_default()
                ),
            ),
            Operation::AdoptUser {
                source_id,
                target_id,
                user_name,
                matched_by,
            } => (
                user,
                source_id.to_string(),
                Some(target_id.to_string()),
                user_name.clone(),
                format!(
                    "existing account adopted, matched by {}",
                    json_str(matched_by)
                ),
            ),
            Operation::UpdateUser {
                source_id,
                target_id,
                user_name,
                changes,
            }
            | Operation::ReactivateUser {
                source_id,
                target_id,
                user_name,
                changes,
            } => (
                user,
                source_id.to_string(),
                Some(target_id.to_string()),
                user_name.clone(),
                format!(
                    "{}: {}",
                    changes.attribute_names().join(", "),
                    serde_json::to_string(changes).unwrap_or_default()
                ),
            ),
            Operation::DeactivateUser {
                source_id,
                target_id,
                user_name,
                reason,
            } => (
                user,
                source_id.to_string(),
                Some(target_id.to_string()),
                user_name.clone(),
                format!("deactivated: {}", json_str(reason)),
            ),
            Operation::CreateGroup { source_id, name } => (
                group,
                source_id.to_string(),
                None,
                name.clone(),
                String::new(),
            ),
            Operation::AdoptGroup {
                source_id,
                target_id,
                name,
            } => (
                group,
                source_id.to_string(),
                Some(target_id.to_string()),
                name.clone(),
                "existing group adopted, matched by name".to_owned(),
            ),
            Operation::RenameGroup {
                source_id,
                target_id,
                from,
                to,
            } => (
                group,
                source_id.to_string(),
                Some(target_id.to_string()),
                to.clone(),
                format!("renamed from {from:?} to {to:?}"),
            ),
            Operation::AddMembers { group: g, members }
            | Operation::RemoveMembers { group: g, members } => (
                group,
                g.source_id.to_string(),
                g.target_id.as_ref().map(ToString::to_string),
                g.name.clone(),
                format!(
                    "{} member(s): {}",
                    members.len(),
                    members
                        .iter()
                        .map(|m| m.user_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
        self.entry(
            op.kind(),
            Outcome::Skipped,
            object_name(object),
            Some(source),
            target,
            &name,
            detail,
        )
    }
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
