//! End-to-end stories: the Duo emulator → the engine (with the real Duo reader, SCIM client and
//! store) → the Salesforce emulator. Each story runs with the store on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

use scimsync_core::activity::{ActivityEntry, ActivityQuery, Outcome, RunStatus, Trigger};
use scimsync_core::budget::ApiBudget;
use scimsync_core::policy::{
    Governance, GroupRuleSpec, Policy, RuleSpec, Safety, Scope, SourceAttribute, TargetKind,
};
use scimsync_core::ports::Store as _;
use scimsync_core::state::{FullReason, RunKind};
use scimsync_directory::DuoSource;
use scimsync_engine::{Connection, Progress, RunOptions, RunReport, reconcile_once};
use scimsync_scim::{ScimClient, ScimConfig};
use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator;
use scimsync_sim::salesforce::{Reading, SalesforceConfig, SalesforceSim};
use scimsync_store::SqlStore;
use scimsync_tests::{Backend, duo_config, salesforce_scim_config, store};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SALES: &str = "DGSAMPLE000000000001";
const ENGINEERING: &str = "DGSAMPLE000000000003";

struct World {
    duo: DuoSim,
    sf: SalesforceSim,
    conn: Connection<DuoSource, ScimClient>,
    store: SqlStore,
    _dir: tempfile::TempDir,
}

fn policy() -> Policy {
    let rule = |profile: &str, sets: &[&str], role: Option<&str>| RuleSpec {
        profile: profile.to_owned(),
        permission_sets: sets.iter().map(|s| (*s).to_owned()).collect(),
        role: role.map(str::to_owned),
    };
    let mut policy = Policy {
        target_kind: TargetKind::Salesforce,
        scope: Scope::Groups(
            [
                "Sales",
                "Support",
                "Engineering",
                "Sales Managers",
                "Contractors",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        ),
        governance: Governance {
            baseline: Some(rule("Standard User", &["Knowledge Author"], None)),
            group_rules: vec![
                GroupRuleSpec {
                    groups: vec!["Sales Managers".into()],
                    priority: 1,
                    rule: rule(
                        "Standard User",
                        &["Sales Cloud User", "Reports Builder"],
                        Some("VP Sales"),
                    ),
                },
                GroupRuleSpec {
                    groups: vec!["Sales".into()],
                    priority: 2,
                    rule: rule("Standard User", &["Sales Cloud User"], Some("Sales Rep")),
                },
                GroupRuleSpec {
                    groups: vec!["Engineering".into()],
                    priority: 3,
                    rule: rule("System Administrator", &[], Some("Engineer")),
                },
            ],
            authoritative_permission_sets: false,
            profiles_without_groups: Vec::new(),
        },
        safety: Safety {
            max_deactivations: Some(5),
            max_deactivation_percent: Some(50.0),
        },
        ..Policy::default()
    };
    policy.mapping.title = Some(SourceAttribute::Custom("title".into()));
    policy
}

async fn world(backend: Backend) -> Option<World> {
    let dir = tempfile::tempdir().unwrap();
    let store = store(backend, &dir, "e2e").await?;
    let duo = DuoSim::start(DuoSimConfig::demo(), generator::sample())
        .await
        .unwrap();
    let sf = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let source = DuoSource::new(duo_config(&duo)).unwrap();
    let target = ScimClient::new(ScimConfig {
        requests_per_second: 200,
        backoff_base: Duration::from_millis(10),
        ..salesforce_scim_config(&sf)
    })
    .unwrap();
    Some(World {
        duo,
        sf,
        conn: Connection {
            name: "salesforce".into(),
            source,
            target,
            policy: policy(),
        },
        store,
        _dir: dir,
    })
}

impl World {
    async fn run(&self) -> RunReport {
        self.run_with(RunOptions::default()).await
    }
    async fn run_with(&self, opts: RunOptions) -> RunReport {
        reconcile_once(&self.conn, &self.store, &opts)
            .await
            .unwrap()
    }
    fn duo_id(&self, username: &str) -> String {
        self.duo
            .dataset()
            .snapshot()
            .users
            .iter()
            .find(|u| u.username == username)
            .map(|u| u.user_id.clone())
            .unwrap()
    }
    fn sf_user(&self, email: &str) -> scimsync_sim::salesforce::SimUser {
        self.sf
            .inspect()
            .user_by_name(email)
            .unwrap_or_else(|| panic!("{email} not on Salesforce"))
    }
    async fn log(&self, run: i64) -> Vec<ActivityEntry> {
        self.store
            .query_activity(&ActivityQuery {
                run_id: Some(run),
                ..ActivityQuery::default()
            })
            .await
            .unwrap()
    }
    /// Ends the story: every kind of entry the engine logged is one `activity --op` and the web
    /// view's filter know (`activity::OPS`), so an operator can filter by it.
    async fn finish(self) {
        let logged = self
            .store
            .query_activity(&ActivityQuery::default())
            .await
            .unwrap();
        for entry in &logged {
            assert!(
                scimsync_core::activity::OPS.contains(&entry.op.as_str()),
                "{:?} is logged but not in activity::OPS",
                entry.op
            );
        }
        let _ = self.store.close_and_drop_schema().await;
    }
}

async fn initial_sync_then_a_second_run_writes_nothing(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let first = w.run().await;
    // The sample holds users Salesforce would refuse (no email, a malformed one) and a group
    // name over 40 characters (out of scope here): those are rejected, the rest applied.
    assert_eq!(first.failed, 0, "{:?}", first.message);
    assert!(first.rejected >= 2, "{first:?}");
    assert_eq!(first.exit_code(), 1);
    let alice = w.sf_user("alice.anderson@example.com");
    assert!(alice.active);
    let sales_managers = w.sf.inspect().group_by_name("Sales Managers").unwrap();
    assert!(sales_managers.members.contains(&alice.id));
    assert_eq!(
        alice.role.as_deref(),
        w.sf.catalogue_id("VP Sales").as_deref(),
        "the priority-1 rule, whole"
    );
    assert!(
        w.sf.inspect()
            .user_by_name("erin.evans@example.com")
            .is_none(),
        "a disabled user is not created"
    );
    assert!(
        w.sf.inspect()
            .user_by_name("uma.sharma@example.com")
            .is_none(),
        "a user in no group is out of scope"
    );
    let log = w.log(first.run_id).await;
    let created = log
        .iter()
        .filter(|e| e.op == "create_user" && e.outcome == Outcome::Ok)
        .count();
    let active_on_target = w.sf.inspect().users().len();
    assert_eq!(
        created, active_on_target,
        "every account created is in the log"
    );
    assert!(
        log.iter()
            .any(|e| e.outcome == Outcome::Rejected && e.name.contains("ingrid")),
        "rejections are logged"
    );

    let writes = w.sf.inspect().writes();
    let second = w.run().await;
    assert!(
        second.plan.operations.is_empty(),
        "{:?}",
        second.plan.operations
    );
    assert_eq!(
        w.sf.inspect().writes(),
        writes,
        "a second run writes nothing"
    );
    w.finish().await;
}

async fn a_disabled_user_is_deactivated_and_out_of_every_group(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    w.run().await;
    let jamal = w.sf_user("jamal.johnson@example.com");
    assert!(!w.sf.inspect().groups_of(&jamal.id).is_empty());
    w.duo
        .dataset()
        .disable_user(&w.duo_id("jamal.johnson"))
        .unwrap();
    let report = w.run().await;
    // The sample's bad records were logged by the first run: now only counted.
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.rejected, report.known_rejected, "{report:?}");
    let jamal = w.sf_user("jamal.johnson@example.com");
    assert!(!jamal.active, "deactivated, not deleted");
    assert!(
        w.sf.inspect().groups_of(&jamal.id).is_empty(),
        "in no group"
    );
    assert_eq!(
        w.sf.inspect().count("DELETE", "/services/scim"),
        0,
        "never a DELETE"
    );
    w.finish().await;
}

async fn a_renamed_group_is_renamed(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    w.run().await;
    let before = w.sf.inspect().group_by_name("Engineering").unwrap();
    w.duo
        .dataset()
        .rename_group(ENGINEERING, "Product Engineering")
        .unwrap();
    let mut p = policy();
    // Scope names the group by its old name: scope by id keeps it in scope.
    p.scope = Scope::Groups(vec![
        "Sales".into(),
        "Support".into(),
        ENGINEERING.into(),
        "Sales Managers".into(),
        "Contractors".into(),
    ]);
    p.governance.group_rules[2].groups = vec![ENGINEERING.into()];
    let conn = Connection {
        policy: p,
        ..w.conn
    };
    let w = World { conn, ..w };
    w.run().await;
    let after = w.sf.inspect().group_by_name("Product Engineering").unwrap();
    assert_eq!(after.id, before.id, "the same group, renamed");
    assert_eq!(after.members, before.members);
    w.finish().await;
}

async fn a_user_moving_between_rule_groups_gets_the_new_rule(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    w.run().await;
    let bob = w.sf_user("bob.baker@example.com");
    assert_eq!(bob.role, w.sf.catalogue_id("Sales Rep"));
    w.duo
        .dataset()
        .move_user(&w.duo_id("bob.baker"), SALES, ENGINEERING)
        .unwrap();
    w.run().await;
    let bob = w.sf_user("bob.baker@example.com");
    assert_eq!(bob.profile, w.sf.catalogue_id("System Administrator"));
    assert_eq!(bob.role, w.sf.catalogue_id("Engineer"));
    assert!(
        !bob.permission_sets
            .contains(&w.sf.catalogue_id("Sales Cloud User").unwrap()),
        "the permission set the engine assigned for Sales is removed: {:?}",
        bob.permission_sets
    );
    let groups = w.sf.inspect().groups_of(&bob.id);
    assert_eq!(groups, vec!["Engineering".to_owned()]);
    w.finish().await;
}

async fn an_email_change_sends_one_verification_email_across_three_runs(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    w.run().await;
    w.duo
        .dataset()
        .set_user_email(&w.duo_id("carol.chen"), "carol.chen@new.example.com")
        .unwrap();
    for _ in 0..3 {
        w.run().await;
    }
    assert_eq!(w.sf.inspect().verification_emails_sent(), 1);
    // userName follows the email at once (Salesforce applies username changes immediately);
    // the email itself is held until its owner verifies it.
    let carol = w.sf_user("carol.chen@new.example.com");
    assert_eq!(carol.email, "carol.chen@example.com", "held until verified");
    assert_eq!(
        carol.pending_email.as_deref(),
        Some("carol.chen@new.example.com")
    );
    w.sf.knobs().verify_all_emails();
    let report = w.run().await;
    assert!(
        !report
            .plan
            .operations
            .iter()
            .any(|op| op.kind() == "update_user"),
        "once verified, nothing to send: {:?}",
        report.plan.operations
    );
    w.finish().await;
}

async fn the_guard_trips_and_is_then_approved(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    w.run().await;
    let data = w.duo.dataset();
    let leaving = [
        "alice.anderson",
        "bob.baker",
        "carol.chen",
        "frank.fischer",
        "grace.garcia",
        "hiro.tanaka",
    ];
    for u in leaving {
        data.remove_user(&w.duo_id(u)).unwrap();
    }
    let report = w.run().await;
    assert_eq!(report.status, RunStatus::Guarded);
    assert_eq!(report.exit_code(), 3);
    assert!(
        report
            .guard
            .as_ref()
            .unwrap()
            .reason
            .contains("6 deactivations")
    );
    assert!(
        w.sf_user("alice.anderson@example.com").active,
        "nothing destructive applied"
    );
    let approved = w
        .run_with(RunOptions {
            approve_destructive: true,
            ..RunOptions::default()
        })
        .await;
    assert_ne!(approved.status, RunStatus::Guarded);
    for u in leaving {
        assert!(!w.sf_user(&format!("{u}@example.com")).active, "{u}");
    }
    w.finish().await;
}

struct CancelAfter {
    n: usize,
    seen: AtomicUsize,
    token: CancellationToken,
}

impl Progress for CancelAfter {
    fn planned(&self, _: usize) {}
    fn applied(&self, entry: &ActivityEntry) {
        if entry.op == "create_user" && self.seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.n {
            self.token.cancel();
        }
    }
}

async fn a_run_killed_halfway_resumes_without_duplicates_and_a_complete_log(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let token = CancellationToken::new();
    let first = w
        .run_with(RunOptions {
            trigger: Trigger::Manual,
            max_concurrency: 2,
            cancel: token.clone(),
            progress: Some(Arc::new(CancelAfter {
                n: 5,
                seen: AtomicUsize::new(0),
                token: token.clone(),
            })),
            ..RunOptions::default()
        })
        .await;
    assert_eq!(first.status, RunStatus::Interrupted, "{first:?}");
    let after_first = w.sf.inspect().users().len();
    assert!(
        (5..18).contains(&after_first),
        "stopped part way: {after_first}"
    );
    let logged = w
        .log(first.run_id)
        .await
        .iter()
        .filter(|e| e.op == "create_user" && e.outcome == Outcome::Ok)
        .count();
    assert_eq!(
        logged, after_first,
        "every account created before the stop is in the log"
    );

    let second = w.run().await;
    assert_ne!(second.status, RunStatus::Interrupted);
    let users = w.sf.inspect().users();
    let mut names: Vec<_> = users.iter().map(|u| u.user_name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), users.len(), "no duplicate accounts");
    let all = w
        .store
        .query_activity(&ActivityQuery {
            connection: Some("salesforce".into()),
            op: Some("create_user".into()),
            outcome: Some(Outcome::Ok),
            ..ActivityQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), users.len(), "one logged creation per account");
    w.finish().await;
}

/// `api_budget`: a run stops starting operations once scimsync's calls of the last 24 hours
/// reach the budget (a percentage of the allocation Salesforce reports in `Sforce-Limit-Info`);
/// what it did is recorded, the next run leaves the target alone while the budget is used up,
/// and a larger budget lets the rest go.
async fn the_api_budget_stops_a_run_cleanly_and_the_next_one_waits(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    // 1% of an allocation of 3,000 calls: 30 calls in a rolling day.
    w.sf.knobs().set_daily_api_limit(3_000);
    w.conn.policy.api_budget = Some(ApiBudget::Percent(1.0));
    let one_at_a_time = || RunOptions {
        max_concurrency: 1,
        ..RunOptions::default()
    };
    let first = w.run_with(one_at_a_time()).await;
    assert_eq!(first.status, RunStatus::OverBudget, "{first:?}");
    assert_eq!(first.exit_code(), 1);
    let message = first.message.clone().unwrap();
    assert!(
        message.contains("1% of the daily allocation: 30 calls in a rolling 24 h")
            && message.contains("the rest waits for the first run after"),
        "{message}"
    );
    let scim_calls = |w: &World| {
        w.sf.inspect()
            .request_log()
            .iter()
            .filter(|r| r.path.starts_with("/services/scim/"))
            .count()
    };
    let calls = scim_calls(&w);
    assert!(
        (30..=31).contains(&calls),
        "stopped at the budget, at most the operation in flight beyond it: {calls}"
    );
    let created = w.sf.inspect().users().len();
    assert!(created > 0 && created < 20, "part of the plan: {created}");
    let logged = w
        .log(first.run_id)
        .await
        .iter()
        .filter(|e| e.op == "create_user" && e.outcome == Outcome::Ok)
        .count();
    assert_eq!(logged, created, "every account created is recorded");
    let runs = w.store.list_runs(Some("salesforce"), 1).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::OverBudget);
    assert_eq!(runs[0].message.as_deref(), Some(message.as_str()));

    let second = w.run_with(one_at_a_time()).await;
    assert_eq!(second.status, RunStatus::OverBudget, "{second:?}");
    assert_eq!(
        scim_calls(&w),
        calls,
        "a used-up budget leaves the target alone"
    );

    w.conn.policy.api_budget = Some(ApiBudget::Percent(50.0));
    let third = w.run().await;
    assert_ne!(third.status, RunStatus::OverBudget, "{third:?}");
    assert_eq!(third.failed, 0, "{:?}", third.message);
    let fourth = w.run().await;
    assert!(
        fourth.plan.operations.is_empty(),
        "the rest landed: {:?}",
        fourth.plan.operations
    );
    w.finish().await;
}

async fn after_a_sync_a_normal_run_reads_no_user_pages_and_writes_nothing(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let first = w.run().await;
    assert!(
        first.read.as_ref().is_some_and(|r| r.is_full()),
        "{:?}",
        first.read
    );
    let (pages, writes) = (
        w.sf.inspect().count("GET", "/services/scim/v2/Users"),
        w.sf.inspect().writes(),
    );
    let normal = w.run().await;
    assert_eq!(normal.read, Some(RunKind::Incremental));
    assert!(normal.plan.is_empty(), "{:?}", normal.plan.operations);
    assert_eq!(
        w.sf.inspect().count("GET", "/services/scim/v2/Users"),
        pages,
        "no /Users page read"
    );
    assert_eq!(w.sf.inspect().writes(), writes, "nothing written");
    w.finish().await;
}

/// On both readings of Salesforce: an administrator changes a user's title and profile in
/// Salesforce itself. Normal runs do not see it; `reconcile --full` (and the run after
/// `full_every` has passed) repairs it and lists it as drift, attribute by attribute.
async fn drift_on_salesforce_is_unseen_by_normal_runs_and_repaired_by_a_full_one(backend: Backend) {
    // The strict reading with its catalogue served (governance needs it), as the convergence
    // suite plays it.
    let strict = Reading {
        catalogue_endpoints: true,
        ..Reading::strict()
    };
    for reading in [Reading::default(), strict] {
        let Some(w) = world(backend).await else {
            return;
        };
        w.sf.knobs().set_reading(reading);
        w.run().await;
        let alice = w.sf_user("alice.anderson@example.com");
        let admin = w.sf.catalogue_id("System Administrator").unwrap();
        let plant = |title: &str| {
            let admin = admin.clone();
            let title = title.to_owned();
            assert!(w.sf.knobs().edit_user(&alice.id, move |u| {
                u.title = Some(title);
                u.profile = Some(admin);
            }));
        };
        plant("Intern");
        let writes = w.sf.inspect().writes();
        let normal = w.run().await;
        assert!(normal.plan.is_empty(), "{:?}", normal.plan.operations);
        assert_eq!(w.sf.inspect().writes(), writes);
        assert_eq!(
            w.sf_user("alice.anderson@example.com").title.as_deref(),
            Some("Intern")
        );

        let full = w
            .run_with(RunOptions {
                full: true,
                ..RunOptions::default()
            })
            .await;
        assert_eq!(full.drifted, 1, "{full:?}");
        let repaired = w.sf_user("alice.anderson@example.com");
        assert_eq!(repaired.title, alice.title, "repaired");
        assert_eq!(repaired.profile, alice.profile, "repaired");
        let drift = w
            .store
            .query_activity(&ActivityQuery {
                op: Some("drift".into()),
                ..ActivityQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(drift.len(), 1);
        let detail = &drift[0].detail;
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or_else(|| "(none)".to_owned(), |v| format!("{v:?}"))
        };
        assert!(
            detail.contains(&format!("title: {} → \"Intern\"", show(&alice.title)))
                && detail.contains(&format!("profile: {} → {admin:?}", show(&alice.profile))),
            "{detail}"
        );

        // Once full_every has passed, a scheduled run is full by itself.
        plant("Temp");
        let mut policy = policy();
        policy.full_every = Duration::ZERO;
        let w = World {
            conn: Connection { policy, ..w.conn },
            ..w
        };
        let due = w
            .run_with(RunOptions {
                trigger: Trigger::Schedule,
                ..RunOptions::default()
            })
            .await;
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
        assert_eq!(due.drifted, 1);
        assert_eq!(w.sf_user("alice.anderson@example.com").title, alice.title);
        w.finish().await;
    }
}

macro_rules! both_backends {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    super::$story(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    super::$story(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

both_backends!(
    initial_sync_then_a_second_run_writes_nothing,
    a_disabled_user_is_deactivated_and_out_of_every_group,
    a_renamed_group_is_renamed,
    a_user_moving_between_rule_groups_gets_the_new_rule,
    an_email_change_sends_one_verification_email_across_three_runs,
    the_guard_trips_and_is_then_approved,
    a_run_killed_halfway_resumes_without_duplicates_and_a_complete_log,
    the_api_budget_stops_a_run_cleanly_and_the_next_one_waits,
    after_a_sync_a_normal_run_reads_no_user_pages_and_writes_nothing,
    drift_on_salesforce_is_unseen_by_normal_runs_and_repaired_by_a_full_one,
);
