//! The engine against an in-memory target and a real SQLite store.
#![allow(clippy::unwrap_used)]

use scimsync_core::activity::{ActivityQuery, Outcome, RunStatus};
use scimsync_core::plan::{NoteKind, Operation, Plan, UserAttributes, UserChanges, UserRef};
use scimsync_core::policy::{GroupRuleSpec, Policy, RuleSpec, Scope};
use scimsync_core::ports::{Classify, Disposition, Lookup, ReadScope, Source, Store, Target};
use scimsync_core::source::{DirectoryStatus, SourceSnapshot};
use scimsync_core::state::{FullReason, RunKind};
use scimsync_core::target::{TargetCapabilities, TargetGroup, TargetSnapshot, TargetUser};
use scimsync_core::testing::{self, catalogue, group, in_groups, user};
use scimsync_core::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId};
use scimsync_core::{Timestamp, links::Links};
use scimsync_engine::{Connection, RunOptions, reconcile_once};
use scimsync_store::SqlStore;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct FakeError {
    message: String,
    disposition: Disposition,
}

impl Classify for FakeError {
    fn disposition(&self) -> Disposition {
        self.disposition.clone()
    }
}

struct FakeSource(Mutex<SourceSnapshot>);

impl Source for FakeSource {
    type Error = FakeError;
    async fn read(&self) -> Result<SourceSnapshot, FakeError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

/// An in-memory target that applies calls the way `scimsync_core::testing::apply` does.
#[derive(Default)]
struct FakeTarget {
    state: Mutex<TargetSnapshot>,
    calls: AtomicUsize,
    /// userNames whose creation or update the target refuses.
    refuse: Mutex<Vec<String>>,
    /// Fail every call with this disposition.
    broken: Mutex<Option<Disposition>>,
    /// Cancel this token after this many write calls.
    cancel_after: Mutex<Option<(usize, CancellationToken)>>,
    /// Reads never end (a target that pages forever, say).
    hang_read: std::sync::atomic::AtomicBool,
    /// Told when a read has begun.
    read_started: tokio::sync::Notify,
    /// Whole reads of the target.
    full_reads: AtomicUsize,
    /// What each targeted read asked for.
    lookups: Mutex<Vec<Lookup>>,
}

impl FakeTarget {
    fn with(snapshot: TargetSnapshot) -> Self {
        Self {
            state: Mutex::new(snapshot),
            ..Self::default()
        }
    }

    fn write(&self, op: Operation, user_name: Option<&str>) -> Result<(), FakeError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((after, token)) = &*self.cancel_after.lock().unwrap()
            && n >= *after
        {
            token.cancel();
        }
        if let Some(d) = self.broken.lock().unwrap().clone() {
            return Err(FakeError {
                message: "the target is broken".into(),
                disposition: d,
            });
        }
        if let Some(name) = user_name
            && self
                .refuse
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
        {
            return Err(FakeError {
                message: "FIELD_INTEGRITY_EXCEPTION:the profile belongs to another licence;".into(),
                disposition: Disposition::Refused { code: None },
            });
        }
        let plan = Plan {
            operations: vec![op],
            ..Plan::default()
        };
        let mut links = Links::default();
        testing::apply(
            &plan,
            &mut self.state.lock().unwrap(),
            &mut links,
            Timestamp(0),
        )
        .map_err(|m| FakeError {
            message: m,
            disposition: Disposition::Refused { code: None },
        })
    }

    fn user(&self, user_name: &str) -> Option<TargetUser> {
        self.state
            .lock()
            .unwrap()
            .users
            .iter()
            .find(|u| u.user_name.eq_ignore_ascii_case(user_name))
            .cloned()
    }
}

fn uref(id: &TargetUserId) -> UserRef {
    UserRef {
        source_id: None,
        target_id: Some(id.clone()),
        user_name: "".into(),
    }
}

impl Target for FakeTarget {
    type Error = FakeError;
    async fn discover(&self) -> Result<TargetCapabilities, FakeError> {
        Ok(TargetCapabilities::default())
    }
    fn use_capabilities(&self, _capabilities: &TargetCapabilities) {}
    async fn read(&self, _scope: ReadScope) -> Result<TargetSnapshot, FakeError> {
        self.full_reads.fetch_add(1, Ordering::SeqCst);
        self.read_started.notify_one();
        if self.hang_read.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(self.state.lock().unwrap().clone())
    }
    async fn read_some(&self, lookup: &Lookup) -> Result<TargetSnapshot, FakeError> {
        self.lookups.lock().unwrap().push(lookup.clone());
        Ok(lookup.keep(self.state.lock().unwrap().clone()))
    }
    async fn create_user(&self, user: &UserAttributes) -> Result<TargetUser, FakeError> {
        self.write(
            Operation::CreateUser {
                source_id: SourceUserId::from(user.external_id.as_str()),
                attributes: user.clone(),
            },
            Some(&user.user_name),
        )?;
        Ok(self.user(&user.user_name).unwrap())
    }
    async fn update_user(&self, id: &TargetUserId, changes: &UserChanges) -> Result<(), FakeError> {
        let name = self
            .state
            .lock()
            .unwrap()
            .users
            .iter()
            .find(|u| u.id == *id)
            .map(|u| u.user_name.clone());
        let refusable = changes
            .entitlements
            .as_ref()
            .is_some_and(|e| e.profile_changed);
        self.write(
            Operation::UpdateUser {
                source_id: SourceUserId::from("fake"),
                target_id: id.clone(),
                user_name: "".into(),
                changes: changes.clone(),
            },
            if refusable { name.as_deref() } else { None },
        )
    }
    async fn create_group(&self, name: &str) -> Result<TargetGroup, FakeError> {
        self.write(
            Operation::CreateGroup {
                source_id: SourceGroupId::from("fake"),
                name: name.into(),
            },
            None,
        )?;
        Ok(self
            .state
            .lock()
            .unwrap()
            .groups
            .iter()
            .find(|g| g.display_name == name)
            .cloned()
            .unwrap())
    }
    async fn rename_group(&self, id: &TargetGroupId, name: &str) -> Result<(), FakeError> {
        self.write(
            Operation::RenameGroup {
                source_id: SourceGroupId::from("fake"),
                target_id: id.clone(),
                from: "".into(),
                to: name.into(),
            },
            None,
        )
    }
    async fn add_members(
        &self,
        group: &TargetGroupId,
        members: &[TargetUserId],
    ) -> Result<(), FakeError> {
        self.write(
            Operation::AddMembers {
                group: scimsync_core::plan::GroupRef {
                    source_id: SourceGroupId::from("fake"),
                    target_id: Some(group.clone()),
                    name: "".into(),
                },
                members: members.iter().map(uref).collect(),
            },
            None,
        )
    }
    async fn remove_members(
        &self,
        group: &TargetGroupId,
        members: &[TargetUserId],
    ) -> Result<(), FakeError> {
        self.write(
            Operation::RemoveMembers {
                group: scimsync_core::plan::GroupRef {
                    source_id: SourceGroupId::from("fake"),
                    target_id: Some(group.clone()),
                    name: "".into(),
                },
                members: members.iter().map(uref).collect(),
            },
            None,
        )
    }
}

fn directory() -> SourceSnapshot {
    SourceSnapshot {
        users: vec![
            in_groups(user("DU1", "ada@example.com"), &["DG1"]),
            in_groups(user("DU2", "bob@example.com"), &["DG1", "DG2"]),
            in_groups(user("DU3", "cy@example.com"), &["DG2"]),
            in_groups(user("DU4", "dee@example.com"), &["DG1"]),
        ],
        groups: vec![group("DG1", "Sales"), group("DG2", "Admins")],
        sso_access: None,
        unreadable: Vec::new(),
        unidentified: Vec::new(),
        problems: Vec::new(),
    }
}

fn policy() -> Policy {
    let mut p = testing::salesforce_policy();
    p.scope = Scope::Groups(vec!["Sales".into(), "Admins".into()]);
    p.governance.group_rules = vec![GroupRuleSpec {
        groups: vec!["Admins".into()],
        priority: 1,
        rule: RuleSpec {
            profile: "System Administrator".into(),
            permission_sets: vec!["Sales Cloud".into()],
            role: Some("CEO".into()),
        },
    }];
    p
}

async fn store() -> (tempfile::TempDir, SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect(dir.path().join("s.db").to_str().unwrap())
        .await
        .unwrap();
    (dir, store)
}

fn connection(
    source: SourceSnapshot,
    target: TargetSnapshot,
) -> Connection<FakeSource, FakeTarget> {
    Connection {
        name: "sf".into(),
        source: FakeSource(Mutex::new(source)),
        target: FakeTarget::with(target),
        policy: policy(),
    }
}

fn empty() -> TargetSnapshot {
    TargetSnapshot {
        catalogue: catalogue(),
        ..TargetSnapshot::default()
    }
}

#[tokio::test]
async fn initial_sync_records_every_operation_and_a_second_run_writes_nothing() {
    let (_d, store) = store().await;
    let conn = connection(directory(), empty());
    let report = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.exit_code(), 0);
    assert_eq!(conn.target.state.lock().unwrap().users.len(), 4);
    let bob = conn.target.user("bob@example.com").unwrap();
    assert!(
        bob.entitlements
            .iter()
            .any(|e| e.value == testing::SYSTEM_ADMINISTRATOR),
        "Admins rule wins: {bob:?}"
    );
    assert_eq!(bob.roles[0].value, testing::CEO_ROLE);
    let groups = conn.target.state.lock().unwrap().groups.clone();
    let sales = groups.iter().find(|g| g.display_name == "Sales").unwrap();
    assert_eq!(sales.members.len(), 3);

    let log = store
        .query_activity(&ActivityQuery {
            run_id: Some(report.run_id),
            ..Default::default()
        })
        .await
        .unwrap();
    let ops: Vec<_> = log
        .iter()
        .filter(|e| e.outcome == Outcome::Ok)
        .map(|e| e.op.as_str())
        .collect();
    assert_eq!(ops.iter().filter(|o| **o == "create_user").count(), 4);
    assert_eq!(ops.iter().filter(|o| **o == "create_group").count(), 2);
    assert_eq!(report.applied as usize, report.plan.operations.len());
    let links = store.load_links("sf").await.unwrap();
    assert_eq!(links.users.len(), 4);
    assert_eq!(links.groups.len(), 2);
    let bob_link = links
        .users
        .iter()
        .find(|l| l.source_id.as_str() == "DU2")
        .unwrap();
    assert!(
        bob_link
            .assigned_permission_sets
            .contains(testing::SALES_CLOUD)
    );

    let calls = conn.target.calls.load(Ordering::SeqCst);
    let again = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert!(
        again.plan.operations.is_empty(),
        "{:?}",
        again.plan.operations
    );
    assert_eq!(
        conn.target.calls.load(Ordering::SeqCst),
        calls,
        "no write on the second run"
    );
}

#[tokio::test]
async fn the_guard_holds_deactivations_back_until_approved() {
    let (_d, store) = store().await;
    let mut conn = connection(directory(), empty());
    conn.policy.safety.max_deactivations = Some(1);
    reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    {
        let mut src = conn.source.0.lock().unwrap();
        src.users.retain(|u| u.id.as_str() == "DU1");
    }
    let report = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Guarded);
    assert_eq!(report.exit_code(), 3);
    let trip = report.guard.clone().unwrap();
    assert!(trip.reason.contains("3 deactivations"), "{}", trip.reason);
    assert!(
        conn.target.user("bob@example.com").unwrap().active,
        "nothing destructive applied"
    );
    let skipped = store
        .query_activity(&ActivityQuery {
            run_id: Some(report.run_id),
            outcome: Some(Outcome::Skipped),
            op: Some("deactivate_user".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(skipped.len(), 3);
    assert!(skipped[0].detail.contains("held back by the guard"));

    let approved = reconcile_once(
        &conn,
        &store,
        &RunOptions {
            approve_destructive: true,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(approved.status, RunStatus::Succeeded, "{approved:?}");
    assert!(!conn.target.user("bob@example.com").unwrap().active);
    let groups = conn.target.state.lock().unwrap().groups.clone();
    let bob = conn.target.user("bob@example.com").unwrap().id;
    assert!(
        groups.iter().all(|g| !g.members.contains(&bob)),
        "a deactivated user is in no group"
    );
}

#[tokio::test]
async fn an_approval_holds_for_the_plan_approved_only() {
    let (_d, store) = store().await;
    let mut conn = connection(directory(), empty());
    conn.policy.safety.max_deactivations = Some(1);
    reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    {
        let mut src = conn.source.0.lock().unwrap();
        src.users.retain(|u| u.id.as_str() == "DU1");
    }
    let shown = reconcile_once(
        &conn,
        &store,
        &RunOptions {
            dry_run: true,
            explain: true,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(shown.guard.is_some());
    let fingerprint = shown.plan.fingerprint();

    // Another plan's fingerprint: nothing at all is applied, and the log says why.
    let refused = reconcile_once(
        &conn,
        &store,
        &RunOptions {
            approve_plan: Some("0123456789abcdef".into()),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(refused.status, RunStatus::Guarded);
    assert_eq!(refused.applied, 0);
    assert_eq!(refused.plan.fingerprint(), fingerprint, "the plan made now");
    assert!(
        refused
            .message
            .as_deref()
            .unwrap_or("")
            .contains("nothing was applied"),
        "{:?}",
        refused.message
    );
    assert!(conn.target.user("bob@example.com").unwrap().active);
    let said = store
        .query_activity(&ActivityQuery {
            run_id: Some(refused.run_id),
            op: Some("approve".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(said.len(), 1);
    assert_eq!(said[0].outcome, Outcome::Rejected);

    // The plan shown: applied whole, deactivations included.
    let approved = reconcile_once(
        &conn,
        &store,
        &RunOptions {
            approve_plan: Some(fingerprint),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(approved.status, RunStatus::Succeeded, "{approved:?}");
    assert!(!conn.target.user("bob@example.com").unwrap().active);
}

#[tokio::test]
async fn a_refused_profile_change_is_recorded_and_not_retried_until_something_changes() {
    let (_d, store) = store().await;
    let conn = connection(directory(), empty());
    reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    // Ada joins Admins: her profile would change; the target refuses.
    conn.target
        .refuse
        .lock()
        .unwrap()
        .push("ada@example.com".into());
    conn.source.0.lock().unwrap().users[0]
        .groups
        .push(SourceGroupId::from("DG2"));
    let report = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(report.rejected, 1, "{report:?}");
    assert_eq!(report.exit_code(), 1);
    let links = store.load_links("sf").await.unwrap();
    let held: Vec<_> = links
        .refusals
        .iter()
        .filter(|r| r.source_id == "DU1")
        .collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].attribute, "profile");
    assert!(
        held[0].reason.contains("FIELD_INTEGRITY_EXCEPTION"),
        "verbatim reason"
    );
    let ada = conn.target.user("ada@example.com").unwrap();
    assert_eq!(
        ada.roles.first().map(|r| r.value.as_str()),
        Some(testing::CEO_ROLE),
        "the rest of the update (the role) landed although the profile was refused"
    );

    let next = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    let profile_retry = next.plan.operations.iter().any(|op| {
        matches!(op, Operation::UpdateUser { changes, .. } if changes.entitlements.as_ref().is_some_and(|e| e.profile_changed))
    });
    assert!(!profile_retry, "not retried: {:?}", next.plan.operations);
    assert!(
        next.plan
            .notes
            .iter()
            .any(|n| n.kind == NoteKind::RefusedEarlier && n.source_id == "DU1"),
        "the held-back change is reported: {:?}",
        next.plan.notes
    );
}

#[tokio::test]
async fn an_interrupted_run_resumes_without_duplicates_and_logs_everything_it_did() {
    let (_d, store) = store().await;
    let mut src = directory();
    for i in 5..40 {
        src.users.push(in_groups(
            user(&format!("DU{i:02}"), &format!("u{i}@example.com")),
            &["DG1"],
        ));
    }
    let conn = connection(src, empty());
    let cancel = CancellationToken::new();
    *conn.target.cancel_after.lock().unwrap() = Some((10, cancel.clone()));
    let first = reconcile_once(
        &conn,
        &store,
        &RunOptions {
            cancel: cancel.clone(),
            max_concurrency: 2,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(first.status, RunStatus::Interrupted, "{first:?}");
    let written = conn.target.calls.load(Ordering::SeqCst);
    let logged_ok = store
        .query_activity(&ActivityQuery {
            run_id: Some(first.run_id),
            outcome: Some(Outcome::Ok),
            ..Default::default()
        })
        .await
        .unwrap();
    let target_writes_logged = logged_ok
        .iter()
        .filter(|e| e.op != "adopt_user" && e.op != "adopt_group")
        .count();
    assert_eq!(
        target_writes_logged, written,
        "every write the target saw is in the log"
    );

    *conn.target.cancel_after.lock().unwrap() = None;
    let second = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    let users = conn.target.state.lock().unwrap().users.clone();
    assert_eq!(users.len(), 39);
    let mut names: Vec<_> = users.iter().map(|u| u.user_name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 39, "no duplicate accounts");
}

#[tokio::test]
async fn a_broken_connection_stops_the_run_and_says_why() {
    let (_d, store) = store().await;
    let conn = connection(directory(), empty());
    *conn.target.broken.lock().unwrap() = Some(Disposition::Fatal);
    let report = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.exit_code(), 2);
    assert!(report.message.unwrap().contains("broken"));
    assert!(
        conn.target.calls.load(Ordering::SeqCst) <= 2,
        "stopped after the first fatal stage"
    );
}

#[tokio::test]
async fn a_single_user_run_touches_only_that_user_and_traces_each_step() {
    let (_d, store) = store().await;
    let conn = connection(directory(), empty());
    let report = reconcile_once(
        &conn,
        &store,
        &RunOptions {
            only_user: Some("bob@example.com".into()),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    let users = conn.target.state.lock().unwrap().users.clone();
    assert_eq!(users.len(), 1, "only bob: {users:?}");
    let trace = report.trace.unwrap();
    let steps: Vec<_> = trace.iter().map(|s| s.step).collect();
    for step in ["read", "scope", "match", "rule", "action"] {
        assert!(steps.contains(&step), "{step} missing from {trace:?}");
    }
    let rule = trace.iter().find(|s| s.step == "rule").unwrap();
    assert!(
        rule.detail.contains("System Administrator")
            && rule.detail.contains("priority 1 (through Admins)"),
        "the rule and the group that chose it: {}",
        rule.detail
    );
    let scope = trace.iter().find(|s| s.step == "scope").unwrap();
    assert!(
        scope.detail.contains("Sales") && scope.detail.contains("Admins"),
        "{}",
        scope.detail
    );
    let groups = conn.target.state.lock().unwrap().groups.clone();
    assert!(groups.iter().all(|g| g.members.len() <= 1));
}

#[tokio::test]
async fn the_trace_explains_the_match_the_planner_made_on_the_mapped_user_name() {
    let (_d, store) = store().await;
    let mut conn = connection(directory(), empty());
    conn.policy.mapping.user_name_suffix = Some(".acme".into());
    let report = reconcile_once(
        &conn,
        &store,
        &RunOptions {
            only_user: Some("ada@example.com".into()),
            dry_run: true,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    let trace = report.trace.unwrap();
    let matched = trace.iter().find(|s| s.step == "match").unwrap();
    assert!(
        matched.detail.contains("ada@example.com.acme") && matched.detail.contains("created"),
        "{}",
        matched.detail
    );
    let rule = trace.iter().find(|s| s.step == "rule").unwrap();
    assert!(rule.detail.starts_with("baseline rule"), "{}", rule.detail);
    // The creation says where each value comes from: the userName with its suffix.
    let created = trace
        .iter()
        .find(|s| s.step == "action" && s.detail.starts_with("create_user"))
        .unwrap();
    assert!(
        created
            .detail
            .contains("userName: ada@example.com.acme ← email + suffix \".acme\"")
            && created.detail.ends_with("(by the baseline rule)"),
        "{}",
        created.detail
    );
}

#[tokio::test]
async fn a_disabled_user_is_deactivated_and_removed_from_every_group() {
    let (_d, store) = store().await;
    let mut conn = connection(directory(), empty());
    // One of four is over the default 10%: this story is not about the guard.
    conn.policy.safety.max_deactivation_percent = None;
    reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    conn.source.0.lock().unwrap().users[1].status = DirectoryStatus::Disabled;
    let report = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let bob = conn.target.user("bob@example.com").unwrap();
    assert!(!bob.active);
    assert!(
        conn.target
            .state
            .lock()
            .unwrap()
            .groups
            .iter()
            .all(|g| !g.members.contains(&bob.id))
    );
    let dry = reconcile_once(
        &conn,
        &store,
        &RunOptions {
            dry_run: true,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.status, RunStatus::DryRun);
    assert!(dry.plan.operations.is_empty());
}

#[tokio::test]
async fn an_unreadable_user_is_not_taken_as_gone() {
    let (_d, store) = store().await;
    let conn = connection(directory(), empty());
    reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    {
        let mut src = conn.source.0.lock().unwrap();
        src.users.retain(|u| u.id.as_str() != "DU2");
        src.unreadable.push(SourceUserId::from("DU2"));
    }
    let report = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert!(
        report.plan.operations.is_empty(),
        "{:?}",
        report.plan.operations
    );
    assert!(conn.target.user("bob@example.com").unwrap().active);
}

struct NeverSource;

impl Source for NeverSource {
    type Error = FakeError;
    async fn read(&self) -> Result<SourceSnapshot, FakeError> {
        // A source backing off from rate limits for a very long time.
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        Ok(SourceSnapshot::default())
    }
}

#[tokio::test]
async fn shutdown_stops_a_run_still_reading_the_source() {
    let (_d, store) = store().await;
    let conn = Connection {
        name: "sf".into(),
        source: NeverSource,
        target: FakeTarget::with(empty()),
        policy: policy(),
    };
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        c.cancel();
    });
    let report = reconcile_once(
        &conn,
        &store,
        &RunOptions {
            cancel,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Interrupted);
    assert_eq!(conn.target.calls.load(Ordering::SeqCst), 0);
    let runs = store.list_runs(Some("sf"), 1).await.unwrap();
    assert_eq!(
        runs[0].status,
        RunStatus::Interrupted,
        "the run is marked interrupted in the store"
    );
}

#[tokio::test]
async fn a_stop_ends_a_run_still_reading_the_target_and_says_why() {
    let (_d, store) = store().await;
    let conn = connection(directory(), empty());
    conn.target.hang_read.store(true, Ordering::SeqCst);
    let cancel = CancellationToken::new();
    let reason = scimsync_engine::StopReason::default();
    // The lease is lost once the target read has begun (not after a fixed delay, which a
    // loaded machine can spend still discovering the target).
    let stop = async {
        conn.target.read_started.notified().await;
        reason.set("the lease of connection sf was taken by elsewhere:1".into());
        cancel.cancel();
    };
    let opts = RunOptions {
        cancel: cancel.clone(),
        stop_reason: reason.clone(),
        ..RunOptions::default()
    };
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reconcile_once(&conn, &store, &opts),
    );
    let (report, ()) = tokio::join!(run, stop);
    let report = report
        .expect("the run ends though the target read does not")
        .unwrap();
    assert_eq!(report.status, RunStatus::Interrupted);
    let message = report.message.unwrap();
    assert!(
        message.contains("stopped: the lease of connection sf was taken")
            && message.contains("while reading the target"),
        "{message}"
    );
    assert_eq!(conn.target.calls.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------
// Incremental and full runs

/// A connection after its first (full) run, with its store.
async fn synced() -> (
    tempfile::TempDir,
    SqlStore,
    Connection<FakeSource, FakeTarget>,
) {
    let (d, store) = store().await;
    let conn = connection(directory(), empty());
    let first = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    assert_eq!(
        first.read,
        Some(RunKind::Full {
            reason: FullReason::NoState
        })
    );
    (d, store, conn)
}

fn full() -> RunOptions {
    RunOptions {
        full: true,
        ..RunOptions::default()
    }
}

async fn activity_of(store: &SqlStore, op: &str) -> Vec<scimsync_core::activity::ActivityEntry> {
    store
        .query_activity(&ActivityQuery {
            op: Some(op.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_normal_run_after_a_sync_reads_nothing_of_the_target_and_writes_nothing() {
    let (_d, store, conn) = synced().await;
    let (reads, calls) = (
        conn.target.full_reads.load(Ordering::SeqCst),
        conn.target.calls.load(Ordering::SeqCst),
    );
    let again = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(again.read, Some(RunKind::Incremental));
    assert!(again.plan.is_empty(), "{:?}", again.plan.operations);
    assert_eq!(conn.target.full_reads.load(Ordering::SeqCst), reads);
    assert!(conn.target.lookups.lock().unwrap().is_empty());
    assert_eq!(conn.target.calls.load(Ordering::SeqCst), calls);
    let runs = store.list_runs(Some("sf"), 2).await.unwrap();
    assert_eq!(runs[0].read.as_deref(), Some("incremental"));
    assert_eq!(
        runs[1].read.as_deref(),
        Some("full (no full read recorded yet)")
    );
}

/// Member batches of one group run at once; the stored group must hold every batch's members
/// (each batch built on the others'), or the next normal run would add them all again.
#[tokio::test]
async fn member_batches_applied_together_all_reach_the_stored_group() {
    let (_d, store) = store().await;
    let mut conn = connection(directory(), empty());
    conn.policy.member_batch_size = 1;
    let many = RunOptions {
        max_concurrency: 8,
        ..RunOptions::default()
    };
    let first = reconcile_once(&conn, &store, &many).await.unwrap();
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    let batches = first
        .plan
        .operations
        .iter()
        .filter(|op| matches!(op, Operation::AddMembers { .. }))
        .count();
    assert!(batches > 1, "{:?}", first.plan.operations);
    let again = reconcile_once(&conn, &store, &many).await.unwrap();
    assert_eq!(again.read, Some(RunKind::Incremental));
    assert!(again.plan.is_empty(), "{:?}", again.plan.operations);
    assert!(conn.target.lookups.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_changed_source_user_is_read_alone_then_written_as_a_full_run_would() {
    let (_d, store, conn) = synced().await;
    conn.source.0.lock().unwrap().users[1].last_name = Some("Builder".into());
    let bob = conn.target.user("bob@example.com").unwrap();
    let dry = |full| RunOptions {
        dry_run: true,
        full,
        ..RunOptions::default()
    };
    let whole = reconcile_once(&conn, &store, &dry(true)).await.unwrap();
    let some = reconcile_once(&conn, &store, &dry(false)).await.unwrap();
    assert_eq!(some.read, Some(RunKind::Incremental));
    assert_eq!(some.plan.operations, whole.plan.operations);
    assert_eq!(some.plan.operations.len(), 1, "{:?}", some.plan.operations);
    assert_eq!(
        conn.target.lookups.lock().unwrap().clone(),
        vec![Lookup {
            user_ids: vec![bob.id.clone()],
            ..Lookup::default()
        }]
    );
    let run = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.applied, 1);
    assert_eq!(
        conn.target
            .user("bob@example.com")
            .unwrap()
            .family_name
            .as_deref(),
        Some("Builder")
    );
    // The stored state follows the write: the next run has nothing to read.
    conn.target.lookups.lock().unwrap().clear();
    let after = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert!(after.plan.is_empty());
    assert!(conn.target.lookups.lock().unwrap().is_empty());
}

#[tokio::test]
async fn drift_is_unseen_by_a_normal_run_and_repaired_and_logged_by_a_full_one() {
    let (_d, store, conn) = synced().await;
    let ada = conn.target.user("ada@example.com").unwrap();
    {
        let mut t = conn.target.state.lock().unwrap();
        let u = t.users.iter_mut().find(|u| u.id == ada.id).unwrap();
        u.title = Some("Boss".into());
        u.entitlements[0].value = testing::SYSTEM_ADMINISTRATOR.into();
    }
    let normal = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert!(normal.plan.is_empty());
    assert_eq!(normal.drifted, 0);
    assert!(activity_of(&store, "drift").await.is_empty());

    let repaired = reconcile_once(&conn, &store, &full()).await.unwrap();
    assert_eq!(
        repaired.read,
        Some(RunKind::Full {
            reason: FullReason::Asked
        })
    );
    assert_eq!(repaired.drifted, 1);
    assert_eq!(repaired.applied, 1, "{:?}", repaired.plan.operations);
    let ada_now = conn.target.user("ada@example.com").unwrap();
    assert_eq!(ada_now.entitlements[0].value, testing::STANDARD_USER);
    let drift = activity_of(&store, "drift").await;
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].target_id.as_deref(), Some(ada.id.as_str()));
    assert_eq!(drift[0].source_id.as_deref(), Some("DU1"));
    assert!(
        drift[0].detail.contains(&format!(
            "profile: \"{}\" → \"{}\"",
            testing::STANDARD_USER,
            testing::SYSTEM_ADMINISTRATOR
        )) && drift[0].detail.contains("title: (none) → \"Boss\""),
        "{}",
        drift[0].detail
    );
    // Repaired and stored: the next full run finds nothing new.
    let again = reconcile_once(&conn, &store, &full()).await.unwrap();
    assert_eq!(again.drifted, 0);
    assert!(again.plan.is_empty());
}

#[tokio::test]
async fn a_run_becomes_full_when_full_every_has_passed_or_the_policy_changed() {
    let (_d, store, mut conn) = synced().await;
    conn.policy.full_every = std::time::Duration::ZERO;
    let due = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(
            due.read,
            Some(RunKind::Full {
                reason: FullReason::Due { .. }
            })
        ),
        "{:?}",
        due.read
    );
    conn.policy.full_every = scimsync_core::policy::DEFAULT_FULL_EVERY;
    let normal = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(normal.read, Some(RunKind::Incremental));
    conn.policy.governance.authoritative_permission_sets = true;
    let changed = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(
        changed.read,
        Some(RunKind::Full {
            reason: FullReason::PolicyChanged
        })
    );
    // A dry run records nothing: the next run is still full for the same reason.
    conn.policy.governance.authoritative_permission_sets = false;
    let dry = RunOptions {
        dry_run: true,
        ..RunOptions::default()
    };
    for _ in 0..2 {
        let r = reconcile_once(&conn, &store, &dry).await.unwrap();
        assert_eq!(
            r.read,
            Some(RunKind::Full {
                reason: FullReason::PolicyChanged
            })
        );
    }
}

#[tokio::test]
async fn a_failed_write_leaves_its_object_doubtful_and_the_next_run_reads_it() {
    let (_d, store, conn) = synced().await;
    conn.source.0.lock().unwrap().users[2].last_name = Some("Young".into());
    let cy = conn.target.user("cy@example.com").unwrap();
    *conn.target.broken.lock().unwrap() = Some(Disposition::Retryable { after: None });
    let failed = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(failed.failed, 1);
    let state = store.load_state("sf").await.unwrap();
    assert!(state.doubtful_users.contains(&cy.id), "{state:?}");
    // The write landed after all (the answer was lost): the next run reads cy, sees it done.
    *conn.target.broken.lock().unwrap() = None;
    conn.target
        .state
        .lock()
        .unwrap()
        .users
        .iter_mut()
        .find(|u| u.id == cy.id)
        .unwrap()
        .family_name = Some("Young".into());
    conn.target.lookups.lock().unwrap().clear();
    let next = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert!(next.plan.is_empty(), "{:?}", next.plan.operations);
    let asked = conn.target.lookups.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].user_ids, vec![cy.id.clone()]);
    // Read, so no longer in doubt (and not drift: its state was unknown).
    assert!(
        store
            .load_state("sf")
            .await
            .unwrap()
            .doubtful_users
            .is_empty()
    );
    assert!(activity_of(&store, "drift").await.is_empty());
}

#[tokio::test]
async fn a_new_user_matching_an_unlinked_account_is_adopted_not_duplicated_incrementally() {
    let (_d, store, conn) = synced().await;
    conn.target
        .state
        .lock()
        .unwrap()
        .users
        .push(testing::account("005HANDMADE", "eve@example.com"));
    conn.source
        .0
        .lock()
        .unwrap()
        .users
        .push(in_groups(user("DU5", "eve@example.com"), &["DG1"]));
    let run = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.read, Some(RunKind::Incremental));
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let kinds: Vec<&str> = run.plan.operations.iter().map(Operation::kind).collect();
    assert!(kinds.contains(&"adopt_user"), "{kinds:?}");
    assert!(!kinds.contains(&"create_user"), "{kinds:?}");
    let asked = conn.target.lookups.lock().unwrap().clone();
    assert_eq!(asked[0].user_names, vec!["eve@example.com".to_owned()]);
    assert_eq!(asked[0].external_ids, vec!["DU5".to_owned()]);
    let eves = conn
        .target
        .state
        .lock()
        .unwrap()
        .users
        .iter()
        .filter(|u| u.user_name == "eve@example.com")
        .count();
    assert_eq!(eves, 1);
    // Adopted and stored: the next run reads nothing.
    conn.target.lookups.lock().unwrap().clear();
    let next = reconcile_once(&conn, &store, &RunOptions::default())
        .await
        .unwrap();
    assert!(next.plan.is_empty(), "{:?}", next.plan.operations);
    assert!(conn.target.lookups.lock().unwrap().is_empty());
}
