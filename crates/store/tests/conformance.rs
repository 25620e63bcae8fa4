//! One conformance suite for both backends: every story runs against SQLite (a temporary
//! file) and against PostgreSQL (its own schema in the database at
//! `SCIMSYNC_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! When PostgreSQL cannot be reached the PostgreSQL half fails if `CI` is set, and otherwise
//! prints a notice and passes without running.
#![allow(clippy::unwrap_used)]

use scimsync_core::activity::{ActivityEntry, ActivityQuery, Outcome, RunId, RunStatus, Trigger};
use scimsync_core::links::{
    GroupLink, HeldRefusal, HourlyCalls, Origin, PendingEmail, TargetFacts, UserLink, fingerprint,
    member_attribute,
};
use scimsync_core::plan::ObjectKind;
use scimsync_core::ports::{NewRun, RunEnd, Store};
use scimsync_core::target::TargetCapabilities;
use scimsync_core::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId, Timestamp};
use scimsync_store::{SqlStore, StoreError};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// 2026-11-22T10:00:00Z.
const T0: Timestamp = Timestamp::from_millis(1_795_860_000_000);

/// A store under test, with what it takes to open it again, open fresh ones, and clean up.
struct Harness {
    store: SqlStore,
    /// The URL that opened `store` (to open it again).
    url: String,
    place: Place,
}

/// Where a harness keeps its databases.
enum Place {
    /// Files in a temporary directory.
    Sqlite(tempfile::TempDir),
    /// Schemas in the test database, dropped at the end (left behind if a story panicked, for
    /// a look).
    Postgres {
        base: String,
        admin: PgConnection,
        schemas: std::sync::Mutex<Vec<String>>,
    },
}

impl Harness {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = SqlStore::connect(&url).await.unwrap();
        Self {
            store,
            url,
            place: Place::Sqlite(dir),
        }
    }

    /// `None` when PostgreSQL is unreachable outside CI.
    async fn postgres() -> Option<Self> {
        let base = std::env::var("SCIMSYNC_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        // One direct attempt (a pool would retry until its timeout): a refusal answers at once.
        let admin = match PgConnection::connect(&base).await {
            Ok(connection) => connection,
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!(
                    "PostgreSQL at SCIMSYNC_TEST_POSTGRES_URL (default {DEFAULT_POSTGRES_URL}) is unreachable: {e}"
                )
            }
            Err(e) => {
                eprintln!(
                    "notice: PostgreSQL unreachable ({e}); skipping this PostgreSQL story. \
                     Set SCIMSYNC_TEST_POSTGRES_URL to run it (it fails instead when CI is set)."
                );
                return None;
            }
        };
        let place = Place::Postgres {
            base,
            admin,
            schemas: std::sync::Mutex::new(Vec::new()),
        };
        let url = place.fresh_url().await;
        let store = SqlStore::connect(&url).await.unwrap();
        Some(Self { store, url, place })
    }

    /// The URL of a database (file or schema) nobody has opened yet.
    async fn fresh_url(&self) -> String {
        self.place.fresh_url().await
    }

    async fn finish(self) {
        self.store.close().await;
        if let Place::Postgres {
            mut admin, schemas, ..
        } = self.place
        {
            for schema in schemas.into_inner().unwrap() {
                sqlx::query(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut admin)
                .await
                .unwrap();
            }
        }
    }
}

impl Place {
    async fn fresh_url(&self) -> String {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        match self {
            Self::Sqlite(dir) => format!(
                "sqlite://{}",
                dir.path().join(format!("fresh{seq}.db")).display()
            ),
            Self::Postgres { base, schemas, .. } => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos();
                let schema = format!("scimsync_test_{}_{nanos}_{seq}", std::process::id());
                schemas.lock().unwrap().push(schema.clone());
                // The store creates the schema at its first connect.
                let joiner = if base.contains('?') { '&' } else { '?' };
                format!("{base}{joiner}schema={schema}")
            }
        }
    }
}

/// Runs each story once per backend: `sqlite::story` and `postgres::story`.
macro_rules! stories {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let harness = super::Harness::sqlite().await;
                    super::$story(&harness).await;
                    harness.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let Some(harness) = super::Harness::postgres().await else { return };
                    super::$story(&harness).await;
                    harness.finish().await;
                }
            )*
        }
    };
}

stories!(
    runs_lifecycle_order_and_durations,
    last_source_count_uses_the_newest_finished_read,
    activity_filters_each_and_combined,
    activity_limit_keeps_the_newest_oldest_first,
    activity_found_by_any_identifier_of_its_subjects,
    activity_follow_after_id,
    activity_needs_a_started_run,
    concurrent_records_all_land,
    concurrent_writes_that_fail_leave_the_others_saved,
    links_round_trip,
    link_upsert_replaces,
    link_target_id_is_unique_per_connection,
    refusals_save_replace_clear,
    refusals_are_per_connection_and_bounded,
    facts_default_save_replace_per_connection,
    leases_take_refuse_renew_expire_release,
    lease_race_has_one_winner,
    lease_holder_and_abandoned_runs,
    huge_values_are_capped_before_they_are_stored,
    migrations_are_idempotent,
    first_opens_race_safely,
    runs_with_stats_counts_many_runs,
    last_success_and_logged_rejections,
    retention_prunes_old_rows_and_keeps_what_is_needed,
    counts_match_the_searches,
    target_state_upsert_doubtful_forget_replace,
    target_state_of_100k_users_loads_whole,
);

// ---------------------------------------------------------------------------------------------
// Helpers

fn new_run(connection: &str, started_at: Timestamp) -> NewRun {
    NewRun {
        connection: connection.to_owned(),
        trigger: Trigger::Schedule,
        dry_run: false,
        started_at,
    }
}

fn end(status: RunStatus, finished_at: Timestamp, source_users: Option<u64>) -> RunEnd {
    RunEnd {
        status,
        finished_at,
        source_users,
        planned: 0,
        applied: 0,
        failed: 0,
        rejected: 0,
        skipped: 0,
        message: None,
        read: None,
    }
}

fn entry(
    run_id: RunId,
    connection: &str,
    at: Timestamp,
    op: &str,
    outcome: Outcome,
    name: &str,
) -> ActivityEntry {
    ActivityEntry {
        id: 0,
        run_id,
        connection: connection.to_owned(),
        at,
        op: op.to_owned(),
        outcome,
        object: "user".to_owned(),
        source_id: None,
        target_id: None,
        name: name.to_owned(),
        detail: format!("{op} {name}"),
        attempts: 0,
    }
}

fn user_link(source: &str, target: &str) -> UserLink {
    UserLink {
        source_id: SourceUserId::new(source),
        target_id: TargetUserId::new(target),
        origin: Origin::Created,
        assigned_permission_sets: BTreeSet::new(),
        pending_email: None,
    }
}

fn refusal(object: ObjectKind, source: &str, attribute: &str, sent: &str) -> HeldRefusal {
    HeldRefusal {
        object,
        source_id: source.to_owned(),
        attribute: attribute.to_owned(),
        fingerprint: fingerprint(&[source, attribute, sent]),
        value: sent.to_owned(),
        reason: format!("{attribute} refused"),
        at: T0,
    }
}

async fn ids(store: &SqlStore, query: ActivityQuery) -> Vec<i64> {
    store
        .query_activity(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Stories

async fn runs_lifecycle_order_and_durations(h: &Harness) {
    let store = &h.store;
    let first = store.start_run(&new_run("salesforce", T0)).await.unwrap();
    let other = store
        .start_run(&new_run("slack", T0.plus_millis(1_000)))
        .await
        .unwrap();
    let second = store
        .start_run(&NewRun {
            trigger: Trigger::Manual,
            dry_run: true,
            ..new_run("salesforce", T0.plus_millis(60_000))
        })
        .await
        .unwrap();
    assert!(
        first < other && other < second,
        "ids grow: {first} {other} {second}"
    );

    // A run just started is Running, with no end and zero counts.
    let runs = store.list_runs(None, 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [second, other, first],
        "newest first"
    );
    let newest = &runs[0];
    assert_eq!(newest.status, RunStatus::Running);
    assert_eq!(newest.trigger, Trigger::Manual);
    assert_eq!(newest.finished_at, None);
    assert_eq!((newest.planned, newest.applied), (0, 0));

    store
        .finish_run(
            first,
            &RunEnd {
                status: RunStatus::Partial,
                finished_at: T0.plus_millis(42_500),
                source_users: Some(1_200),
                planned: 10,
                applied: 7,
                failed: 1,
                rejected: 1,
                skipped: 1,
                message: Some("1 operation failed".to_owned()),
                read: None,
            },
        )
        .await
        .unwrap();

    let salesforce = store.list_runs(Some("salesforce"), 10).await.unwrap();
    assert_eq!(
        salesforce.iter().map(|r| r.id).collect::<Vec<_>>(),
        [second, first]
    );
    let finished = &salesforce[1];
    assert_eq!(finished.connection, "salesforce");
    assert_eq!(finished.status, RunStatus::Partial);
    assert_eq!(finished.started_at, T0);
    assert_eq!(finished.finished_at, Some(T0.plus_millis(42_500)));
    assert_eq!(finished.source_users, Some(1_200));
    assert_eq!(
        (
            finished.planned,
            finished.applied,
            finished.failed,
            finished.rejected,
            finished.skipped
        ),
        (10, 7, 1, 1, 1)
    );
    assert_eq!(finished.message.as_deref(), Some("1 operation failed"));
    assert_eq!(store.list_runs(None, 1).await.unwrap().len(), 1, "limit");
    assert!(
        store
            .list_runs(Some("nobody"), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // `scimsync runs`: durations, and live counts from the activity log.
    for outcome in [Outcome::Ok, Outcome::Ok, Outcome::Failed] {
        store
            .record(&entry(
                second,
                "salesforce",
                T0.plus_millis(61_000),
                "create_user",
                outcome,
                "a@x.io",
            ))
            .await
            .unwrap();
    }
    let stats = store.runs_with_stats(Some("salesforce"), 10).await.unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].run.id, second);
    assert_eq!(stats[0].duration, None, "still running");
    assert_eq!(
        (
            stats[0].recorded.ok,
            stats[0].recorded.failed,
            stats[0].recorded.total()
        ),
        (2, 1, 3)
    );
    assert_eq!(stats[1].duration, Some(Duration::from_millis(42_500)));
    assert_eq!(stats[1].recorded.total(), 0);

    let missing = store
        .finish_run(9_999_999, &end(RunStatus::Succeeded, T0, None))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::RunNotFound { run_id: 9_999_999 }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("9999999"), "{missing}");
}

async fn last_source_count_uses_the_newest_finished_read(h: &Harness) {
    let store = &h.store;
    assert_eq!(store.last_source_count("salesforce").await.unwrap(), None);

    let read = store.start_run(&new_run("salesforce", T0)).await.unwrap();
    store
        .finish_run(
            read,
            &end(RunStatus::Succeeded, T0.plus_millis(5_000), Some(120)),
        )
        .await
        .unwrap();
    // A later run whose source read failed does not count, nor one still running, nor
    // another connection's.
    let failed = store
        .start_run(&new_run("salesforce", T0.plus_millis(60_000)))
        .await
        .unwrap();
    store
        .finish_run(
            failed,
            &end(RunStatus::Failed, T0.plus_millis(61_000), None),
        )
        .await
        .unwrap();
    store
        .start_run(&new_run("salesforce", T0.plus_millis(120_000)))
        .await
        .unwrap();
    let other = store
        .start_run(&new_run("slack", T0.plus_millis(130_000)))
        .await
        .unwrap();
    store
        .finish_run(
            other,
            &end(RunStatus::Succeeded, T0.plus_millis(131_000), Some(7)),
        )
        .await
        .unwrap();
    assert_eq!(
        store.last_source_count("salesforce").await.unwrap(),
        Some(120)
    );

    let newer = store
        .start_run(&new_run("salesforce", T0.plus_millis(180_000)))
        .await
        .unwrap();
    store
        .finish_run(
            newer,
            &end(RunStatus::Guarded, T0.plus_millis(181_000), Some(0)),
        )
        .await
        .unwrap();
    assert_eq!(
        store.last_source_count("salesforce").await.unwrap(),
        Some(0)
    );
    assert_eq!(store.last_source_count("slack").await.unwrap(), Some(7));
}

async fn activity_filters_each_and_combined(h: &Harness) {
    let store = &h.store;
    let r1 = store.start_run(&new_run("salesforce", T0)).await.unwrap();
    let r2 = store.start_run(&new_run("slack", T0)).await.unwrap();

    let alice = ActivityEntry {
        source_id: Some("DUALICE".into()),
        target_id: Some("005ALICE".into()),
        // Two write requests reached the target (a retry): kept as recorded.
        attempts: 2,
        ..entry(
            r1,
            "salesforce",
            T0.plus_millis(1_000),
            "create_user",
            Outcome::Ok,
            "Alice@Example.com",
        )
    };
    let bob = ActivityEntry {
        source_id: Some("DUBOB".into()),
        ..entry(
            r1,
            "salesforce",
            T0.plus_millis(2_000),
            "create_user",
            Outcome::Failed,
            "bob@example.com",
        )
    };
    let group = ActivityEntry {
        object: "group".into(),
        source_id: Some("DGSALES".into()),
        target_id: Some("00GSALES".into()),
        ..entry(
            r1,
            "salesforce",
            T0.plus_millis(3_000),
            "add_members",
            Outcome::Ok,
            "Sales",
        )
    };
    let alice_slack = ActivityEntry {
        source_id: Some("DUALICE".into()),
        target_id: Some("U0ALICE".into()),
        ..entry(
            r2,
            "slack",
            T0.plus_millis(4_000),
            "update_user",
            Outcome::Rejected,
            "alice@example.com",
        )
    };
    let guard = ActivityEntry {
        object: "user".into(),
        ..entry(
            r1,
            "salesforce",
            T0.plus_millis(5_000),
            "deactivate_user",
            Outcome::Skipped,
            "carol@example.com",
        )
    };

    let mut recorded = Vec::new();
    for e in [&alice, &bob, &group, &alice_slack, &guard] {
        let id = store.record(e).await.unwrap();
        recorded.push(ActivityEntry { id, ..e.clone() });
    }
    let [a, b, g, s, c] = [0, 1, 2, 3, 4].map(|i| recorded[i].id);
    assert!(
        a < b && b < g && g < s && s < c,
        "ids grow in recording order"
    );

    // Everything, oldest first, every field as it was recorded.
    assert_eq!(
        store
            .query_activity(&ActivityQuery::default())
            .await
            .unwrap(),
        recorded
    );

    let q = ActivityQuery::default;
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                connection: Some("slack".into()),
                ..q()
            }
        )
        .await,
        [s]
    );
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                run_id: Some(r1),
                ..q()
            }
        )
        .await,
        [a, b, g, c]
    );
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                op: Some("create_user".into()),
                ..q()
            }
        )
        .await,
        [a, b]
    );
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                outcome: Some(Outcome::Failed),
                ..q()
            }
        )
        .await,
        [b]
    );
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                outcome: Some(Outcome::Skipped),
                ..q()
            }
        )
        .await,
        [c]
    );
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                since: Some(T0.plus_millis(3_000)),
                ..q()
            }
        )
        .await,
        [g, s, c]
    );

    // `user`: the name case-insensitively, the source id, or the target id; whole values only.
    let user = |u: &str| ActivityQuery {
        user: Some(u.to_owned()),
        ..q()
    };
    assert_eq!(ids(store, user("ALICE@example.COM")).await, [a, s]);
    assert_eq!(ids(store, user("DUALICE")).await, [a, s]);
    assert_eq!(ids(store, user("005ALICE")).await, [a]);
    assert_eq!(ids(store, user("00GSALES")).await, [g]);
    assert_eq!(ids(store, user("sales")).await, [g]);
    assert!(
        ids(store, user("alice")).await.is_empty(),
        "no substring match"
    );

    // Combinations narrow.
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                connection: Some("salesforce".into()),
                user: Some("dualice".into()),
                ..q()
            }
        )
        .await,
        Vec::<i64>::new(),
        "ids are matched exactly, not case-insensitively"
    );
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                connection: Some("salesforce".into()),
                user: Some("alice@example.com".into()),
                ..q()
            }
        )
        .await,
        [a]
    );
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                connection: Some("salesforce".into()),
                op: Some("create_user".into()),
                outcome: Some(Outcome::Ok),
                since: Some(T0),
                ..q()
            }
        )
        .await,
        [a]
    );
    assert_eq!(
        ids(
            store,
            ActivityQuery {
                run_id: Some(r1),
                outcome: Some(Outcome::Ok),
                limit: Some(1),
                ..q()
            }
        )
        .await,
        [g]
    );
    assert!(
        ids(
            store,
            ActivityQuery {
                run_id: Some(r2),
                op: Some("create_user".into()),
                ..q()
            }
        )
        .await
        .is_empty()
    );
}

async fn activity_limit_keeps_the_newest_oldest_first(h: &Harness) {
    let store = &h.store;
    let run = store.start_run(&new_run("salesforce", T0)).await.unwrap();
    let mut all = Vec::new();
    for i in 0..10 {
        let name = format!("user{i}@example.com");
        all.push(
            store
                .record(&entry(
                    run,
                    "salesforce",
                    T0.plus_millis(i),
                    "create_user",
                    Outcome::Ok,
                    &name,
                ))
                .await
                .unwrap(),
        );
    }
    let limited = |n| ActivityQuery {
        limit: Some(n),
        ..ActivityQuery::default()
    };
    assert_eq!(ids(store, limited(3)).await, all[7..]);
    assert_eq!(ids(store, limited(100)).await, all);
    assert!(ids(store, limited(0)).await.is_empty());
    // Paging back: the newest 3 under the oldest id of the page before.
    let page = |before| ActivityQuery {
        limit: Some(3),
        before_id: Some(before),
        ..ActivityQuery::default()
    };
    assert_eq!(ids(store, page(all[7])).await, all[4..7]);
    assert_eq!(ids(store, page(all[1])).await, all[..1]);
    assert!(ids(store, page(all[0])).await.is_empty());
}

/// An entry recorded about other identifiers (the Duo username and email of its user, the
/// members of a membership change) is found by any of them, case-insensitively, combined with
/// the other filters; an entry recorded without them is found by its own columns only.
async fn activity_found_by_any_identifier_of_its_subjects(h: &Harness) {
    let store = &h.store;
    let run = store.start_run(&new_run("salesforce", T0)).await.unwrap();
    let created = store
        .record_about(
            &ActivityEntry {
                source_id: Some("DUADA".into()),
                target_id: Some("005ADA".into()),
                ..entry(
                    run,
                    "salesforce",
                    T0,
                    "create_user",
                    Outcome::Ok,
                    "ada@example.com.acme",
                )
            },
            &["ada".into(), "Ada@Example.com".into(), "ADA".into()],
        )
        .await
        .unwrap();
    let members = store
        .record_about(
            &ActivityEntry {
                object: "group".into(),
                source_id: Some("DGSALES".into()),
                ..entry(run, "salesforce", T0, "add_members", Outcome::Ok, "Sales")
            },
            &[
                "DUADA".into(),
                "005ADA".into(),
                "ada@example.com.acme".into(),
                "ada".into(),
                "ada@example.com".into(),
                "grace".into(),
            ],
        )
        .await
        .unwrap();
    let plain = store
        .record(&entry(
            run,
            "salesforce",
            T0,
            "update_user",
            Outcome::Ok,
            "grace@example.com",
        ))
        .await
        .unwrap();
    let by = |user: &str| ActivityQuery {
        user: Some(user.into()),
        ..ActivityQuery::default()
    };
    for user in [
        "ada",
        "ADA@example.com",
        "DUADA",
        "005ADA",
        "Ada@Example.com.acme",
    ] {
        assert_eq!(ids(store, by(user)).await, [created, members], "{user}");
    }
    assert_eq!(ids(store, by("grace")).await, [members]);
    assert_eq!(ids(store, by("grace@example.com")).await, [plain]);
    let members_only = ActivityQuery {
        op: Some("add_members".into()),
        ..by("ada")
    };
    assert_eq!(ids(store, members_only).await, [members]);
    // Everything reads back as recorded (the subjects are an index, not a field).
    let all = store
        .query_activity(&ActivityQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].name, "Sales");
}

async fn activity_follow_after_id(h: &Harness) {
    let store = &h.store;
    let run = store.start_run(&new_run("salesforce", T0)).await.unwrap();
    let other = store.start_run(&new_run("slack", T0)).await.unwrap();
    let mut last = 0;
    for i in 0..3 {
        last = store
            .record(&entry(
                run,
                "salesforce",
                T0.plus_millis(i),
                "create_user",
                Outcome::Ok,
                "a@x.io",
            ))
            .await
            .unwrap();
    }
    let follow = |after| ActivityQuery {
        connection: Some("salesforce".into()),
        after_id: Some(after),
        ..ActivityQuery::default()
    };
    assert!(ids(store, follow(last)).await.is_empty(), "nothing new yet");

    let n1 = store
        .record(&entry(
            run,
            "salesforce",
            T0.plus_millis(10),
            "update_user",
            Outcome::Ok,
            "a@x.io",
        ))
        .await
        .unwrap();
    store
        .record(&entry(
            other,
            "slack",
            T0.plus_millis(11),
            "update_user",
            Outcome::Ok,
            "a@x.io",
        ))
        .await
        .unwrap();
    let n2 = store
        .record(&entry(
            run,
            "salesforce",
            T0.plus_millis(12),
            "deactivate_user",
            Outcome::Failed,
            "a@x.io",
        ))
        .await
        .unwrap();
    assert_eq!(
        ids(store, follow(last)).await,
        [n1, n2],
        "the new entries of this connection, in order"
    );
    assert!(ids(store, follow(n2)).await.is_empty());
}

async fn activity_needs_a_started_run(h: &Harness) {
    let err = h
        .store
        .record(&entry(
            424_242,
            "salesforce",
            T0,
            "create_user",
            Outcome::Ok,
            "a@x.io",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::ActivityWithoutRun {
                run_id: 424_242,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("run 424242 does not exist"),
        "{err}"
    );
}

async fn concurrent_records_all_land(h: &Harness) {
    let run = h.store.start_run(&new_run("salesforce", T0)).await.unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move {
                let name = format!("user{i}@example.com");
                store
                    .record(&entry(
                        run,
                        "salesforce",
                        T0.plus_millis(i),
                        "create_user",
                        Outcome::Ok,
                        &name,
                    ))
                    .await
            })
        })
        .collect();
    let mut returned = BTreeSet::new();
    for task in tasks {
        returned.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(returned.len(), 40, "distinct ids");
    let stored: BTreeSet<i64> = ids(
        &h.store,
        ActivityQuery {
            run_id: Some(run),
            ..ActivityQuery::default()
        },
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(stored, returned);
}

/// Writes made together (on SQLite one batch of the group commit): those that fail are undone
/// alone, each with its own error; every other one is saved.
async fn concurrent_writes_that_fail_leave_the_others_saved(h: &Harness) {
    let run = h.store.start_run(&new_run("salesforce", T0)).await.unwrap();
    h.store
        .save_user_link("salesforce", &user_link("DUHOLDER", "005TAKEN"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..60u32)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move {
                let name = format!("user{i}@example.com");
                match i % 4 {
                    // An entry, found also by a subject (two statements in one write).
                    0 => store
                        .record_about(
                            &entry(run, "salesforce", T0, "create_user", Outcome::Ok, &name),
                            &[format!("alias{i}")],
                        )
                        .await
                        .map(Some),
                    // An entry of a run that does not exist, with a subject: refused whole.
                    1 => store
                        .record_about(
                            &entry(424_242, "salesforce", T0, "create_user", Outcome::Ok, &name),
                            &[format!("alias{i}")],
                        )
                        .await
                        .map(Some),
                    // A link.
                    2 => store
                        .save_user_link(
                            "salesforce",
                            &user_link(&format!("DU{i}"), &format!("005U{i}")),
                        )
                        .await
                        .map(|()| None),
                    // A link to a target id another source user holds.
                    _ => store
                        .save_user_link("salesforce", &user_link(&format!("DU{i}"), "005TAKEN"))
                        .await
                        .map(|()| None),
                }
            })
        })
        .collect();
    let mut recorded = BTreeSet::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        match i % 4 {
            0 => {
                recorded.insert(result.unwrap().unwrap());
            }
            1 => assert!(
                matches!(
                    &result,
                    Err(StoreError::ActivityWithoutRun {
                        run_id: 424_242,
                        ..
                    })
                ),
                "{i}: {result:?}"
            ),
            2 => assert_eq!(result.unwrap(), None, "{i}"),
            _ => assert!(
                matches!(&result, Err(StoreError::TargetAlreadyLinked { linked_to, .. }) if linked_to == "DUHOLDER"),
                "{i}: {result:?}"
            ),
        }
    }
    assert_eq!(recorded.len(), 15);
    let stored: BTreeSet<i64> = ids(&h.store, ActivityQuery::default())
        .await
        .into_iter()
        .collect();
    assert_eq!(stored, recorded, "the good entries, and only them");
    for i in (0..60).step_by(4) {
        let by_alias = ActivityQuery {
            user: Some(format!("alias{i}")),
            ..ActivityQuery::default()
        };
        assert_eq!(ids(&h.store, by_alias).await.len(), 1, "alias{i}");
    }
    let refused_alias = ActivityQuery {
        user: Some("alias1".to_owned()),
        ..ActivityQuery::default()
    };
    assert!(ids(&h.store, refused_alias).await.is_empty());
    let links = h.store.load_links("salesforce").await.unwrap().users;
    let mut sources: Vec<&str> = links.iter().map(|l| l.source_id.as_str()).collect();
    sources.sort_unstable();
    let mut expected: Vec<String> = (0..60)
        .filter(|i| i % 4 == 2)
        .map(|i| format!("DU{i}"))
        .chain(["DUHOLDER".to_owned()])
        .collect();
    expected.sort_unstable();
    assert_eq!(sources, expected);
}

async fn links_round_trip(h: &Harness) {
    let store = &h.store;
    assert_eq!(
        store.load_links("salesforce").await.unwrap(),
        Default::default()
    );

    let alice = UserLink {
        origin: Origin::Adopted,
        assigned_permission_sets: ["0PSSALES".to_owned(), "0PSSUPPORT".to_owned()].into(),
        pending_email: Some(Box::new(PendingEmail {
            address: "alice@new.example.com".into(),
            previous: Some("alice@example.com".into()),
            requested_at: T0,
        })),
        ..user_link("DUALICE", "005ALICE")
    };
    // Alice's refused writes, held beside her link.
    let refused = [
        HeldRefusal {
            object: ObjectKind::User,
            source_id: "DUALICE".into(),
            attribute: member_attribute("DGSALES"),
            fingerprint: fingerprint(&["member", "00GSALES"]),
            value: "00GSALES".into(),
            reason: "profile does not allow group membership".into(),
            at: T0.plus_millis(6),
        },
        HeldRefusal {
            object: ObjectKind::User,
            source_id: "DUALICE".into(),
            attribute: "profile".into(),
            fingerprint: fingerprint(&["profile", "00eSTANDARD", "00eCHATTER"]),
            value: "00eSTANDARD".into(),
            reason: "Cannot change profile to a different license".into(),
            at: T0.plus_millis(5),
        },
    ];
    let bob = user_link("DUBOB", "005BOB");
    let sales = GroupLink {
        source_id: SourceGroupId::new("DGSALES"),
        target_id: TargetGroupId::new("00GSALES"),
        origin: Origin::Created,
    };
    let support = GroupLink {
        source_id: SourceGroupId::new("DGSUPPORT"),
        target_id: TargetGroupId::new("00GSUPPORT"),
        origin: Origin::Adopted,
    };
    store.save_user_link("salesforce", &bob).await.unwrap();
    store.save_user_link("salesforce", &alice).await.unwrap();
    store.save_group_link("salesforce", &support).await.unwrap();
    store.save_group_link("salesforce", &sales).await.unwrap();
    for held in refused.iter().rev() {
        store.save_refusal("salesforce", held).await.unwrap();
    }
    // The same source ids on another connection are other links.
    store
        .save_user_link("slack", &user_link("DUALICE", "U0ALICE"))
        .await
        .unwrap();

    let links = store.load_links("salesforce").await.unwrap();
    assert_eq!(
        links.users,
        [alice.clone(), bob.clone()],
        "every field back, ordered by source id"
    );
    assert_eq!(links.groups, [sales, support]);
    assert_eq!(
        links.refusals, refused,
        "every field back, ordered by attribute (`member:…` before `profile`)"
    );
    let slack = store.load_links("slack").await.unwrap();
    assert_eq!(slack.users, [user_link("DUALICE", "U0ALICE")]);
    assert!(slack.groups.is_empty());
    assert!(slack.refusals.is_empty());

    // A refusal survives a reload of the store, and saving the link again leaves it alone.
    let again = SqlStore::connect(&h.url).await.unwrap();
    again.save_user_link("salesforce", &alice).await.unwrap();
    let reloaded = again.load_links("salesforce").await.unwrap();
    assert_eq!(reloaded.users, [alice, bob]);
    assert_eq!(reloaded.refusals, refused);
    again.close().await;
}

async fn link_upsert_replaces(h: &Harness) {
    let store = &h.store;
    let first = UserLink {
        assigned_permission_sets: ["0PSSALES".to_owned()].into(),
        pending_email: Some(Box::new(PendingEmail {
            address: "alice@new.example.com".into(),
            previous: None,
            requested_at: T0,
        })),
        ..user_link("DUALICE", "005ALICE")
    };
    store.save_user_link("salesforce", &first).await.unwrap();
    // Verified email, one more permission set, recreated on the target.
    let second = UserLink {
        target_id: TargetUserId::new("005ALICE2"),
        origin: Origin::Adopted,
        assigned_permission_sets: ["0PSSALES".to_owned(), "0PSAPI".to_owned()].into(),
        pending_email: None,
        ..first.clone()
    };
    store.save_user_link("salesforce", &second).await.unwrap();
    assert_eq!(
        store.load_links("salesforce").await.unwrap().users,
        [second]
    );

    let group = |target: &str, origin| GroupLink {
        source_id: SourceGroupId::new("DGSALES"),
        target_id: TargetGroupId::new(target),
        origin,
    };
    store
        .save_group_link("salesforce", &group("00GOLD", Origin::Created))
        .await
        .unwrap();
    store
        .save_group_link("salesforce", &group("00GNEW", Origin::Adopted))
        .await
        .unwrap();
    assert_eq!(
        store.load_links("salesforce").await.unwrap().groups,
        [group("00GNEW", Origin::Adopted)]
    );
    // The old target id is free again.
    store
        .save_user_link("salesforce", &user_link("DUBOB", "005ALICE"))
        .await
        .unwrap();
}

async fn link_target_id_is_unique_per_connection(h: &Harness) {
    let store = &h.store;
    store
        .save_user_link("salesforce", &user_link("DUALICE", "005SHARED"))
        .await
        .unwrap();
    let err = store
        .save_user_link("salesforce", &user_link("DUMALLORY", "005SHARED"))
        .await
        .unwrap_err();
    match &err {
        StoreError::TargetAlreadyLinked {
            connection,
            object,
            source_id,
            target_id,
            linked_to,
        } => {
            assert_eq!(
                (
                    connection.as_str(),
                    *object,
                    source_id.as_str(),
                    target_id.as_str(),
                    linked_to.as_str()
                ),
                ("salesforce", "user", "DUMALLORY", "005SHARED", "DUALICE")
            );
        }
        other => panic!("expected TargetAlreadyLinked, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("DUMALLORY")
            && message.contains("005SHARED")
            && message.contains("DUALICE"),
        "{message}"
    );
    assert!(!err.is_retryable());
    // Nothing changed, and the same target id on another connection is fine.
    assert_eq!(
        store.load_links("salesforce").await.unwrap().users,
        [user_link("DUALICE", "005SHARED")]
    );
    store
        .save_user_link("slack", &user_link("DUMALLORY", "005SHARED"))
        .await
        .unwrap();

    let group = |source: &str| GroupLink {
        source_id: SourceGroupId::new(source),
        target_id: TargetGroupId::new("00GSHARED"),
        origin: Origin::Adopted,
    };
    store
        .save_group_link("salesforce", &group("DGA"))
        .await
        .unwrap();
    let err = store
        .save_group_link("salesforce", &group("DGB"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TargetAlreadyLinked { object: "group", linked_to, .. } if linked_to == "DGA"),
        "{err:?}"
    );
}

async fn refusals_save_replace_clear(h: &Harness) {
    let store = &h.store;
    assert!(
        store
            .load_links("salesforce")
            .await
            .unwrap()
            .refusals
            .is_empty()
    );
    let profile = refusal(ObjectKind::User, "DUALICE", "profile", "00eSTANDARD");
    let federation = refusal(ObjectKind::User, "DUALICE", "federationId", "alice@sso");
    let create = refusal(ObjectKind::Group, "DGSALES", "create", "Sales");
    // Saved out of order; a group refusal with the same source id as a user's is another one.
    let group_alice = refusal(ObjectKind::Group, "DUALICE", "create", "Alice's group");
    for held in [&create, &profile, &group_alice, &federation] {
        store.save_refusal("salesforce", held).await.unwrap();
    }
    assert_eq!(
        store.load_links("salesforce").await.unwrap().refusals,
        [
            federation.clone(),
            profile.clone(),
            create.clone(),
            group_alice.clone()
        ],
        "ordered by object (users first), source id, attribute"
    );

    // The same key again replaces: another value, a new fingerprint.
    let profile2 = HeldRefusal {
        fingerprint: fingerprint(&["DUALICE", "profile", "00eADMIN"]),
        value: "00eADMIN".into(),
        reason: "still no".into(),
        at: T0.plus_millis(60_000),
        ..profile.clone()
    };
    assert_ne!(profile2.fingerprint, profile.fingerprint);
    store.save_refusal("salesforce", &profile2).await.unwrap();
    assert_eq!(
        store.load_links("salesforce").await.unwrap().refusals,
        [
            federation.clone(),
            profile2.clone(),
            create.clone(),
            group_alice.clone()
        ]
    );

    // One refusal cleared; clearing one that is not there is no error.
    store
        .clear_refusal("salesforce", ObjectKind::User, "DUALICE", "federationId")
        .await
        .unwrap();
    store
        .clear_refusal("salesforce", ObjectKind::User, "DUALICE", "federationId")
        .await
        .unwrap();
    // The group's refusal of the same attribute name is not the user's.
    store
        .clear_refusal("salesforce", ObjectKind::User, "DGSALES", "create")
        .await
        .unwrap();
    assert_eq!(
        store.load_links("salesforce").await.unwrap().refusals,
        [profile2.clone(), create.clone(), group_alice.clone()]
    );

    // Those of one source object: DGSALES's only.
    assert_eq!(
        store
            .clear_refusals("salesforce", Some("DGSALES"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.load_links("salesforce").await.unwrap().refusals,
        [profile2.clone(), group_alice.clone()]
    );
    assert_eq!(
        store
            .clear_refusals("salesforce", Some("DGNOBODY"))
            .await
            .unwrap(),
        0
    );
    // The source id names the object whatever its kind: both of DUALICE's go.
    assert_eq!(
        store
            .clear_refusals("salesforce", Some("DUALICE"))
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .load_links("salesforce")
            .await
            .unwrap()
            .refusals
            .is_empty()
    );
}

async fn refusals_are_per_connection_and_bounded(h: &Harness) {
    let store = &h.store;
    let profile = refusal(ObjectKind::User, "DUALICE", "profile", "00eSTANDARD");
    let member = refusal(
        ObjectKind::User,
        "DUALICE",
        &member_attribute("DGSALES"),
        "00GSALES",
    );
    let create = refusal(ObjectKind::Group, "DGSALES", "create", "Sales");
    for held in [&profile, &member, &create] {
        store.save_refusal("salesforce", held).await.unwrap();
    }
    // The same keys on another connection are other refusals.
    store.save_refusal("slack", &profile).await.unwrap();

    assert_eq!(store.clear_refusals("salesforce", None).await.unwrap(), 3);
    assert!(
        store
            .load_links("salesforce")
            .await
            .unwrap()
            .refusals
            .is_empty()
    );
    assert_eq!(
        store.load_links("slack").await.unwrap().refusals,
        std::slice::from_ref(&profile)
    );
    assert_eq!(store.clear_refusals("salesforce", None).await.unwrap(), 0);

    // A target's error body of 5,000 characters (multi-byte ones among them) is kept bounded,
    // cut on a character boundary; the value sent too.
    let body = "é€x".repeat(5_000 / 3 + 1);
    assert!(body.chars().count() > 5_000);
    let hostile = HeldRefusal {
        value: "v".repeat(5_000),
        reason: body.clone(),
        ..profile.clone()
    };
    store.save_refusal("salesforce", &hostile).await.unwrap();
    let stored = store.load_links("salesforce").await.unwrap().refusals;
    assert_eq!(stored.len(), 1);
    let stored = &stored[0];
    assert_eq!(stored.reason.chars().count(), 1_000);
    assert!(
        body.starts_with(stored.reason.trim_end_matches('…')),
        "a prefix of the body"
    );
    assert!(stored.reason.ends_with('…'), "marked as cut");
    assert_eq!(stored.value.chars().count(), 1_000);
    assert_eq!(
        (&stored.fingerprint, stored.at),
        (&hostile.fingerprint, hostile.at),
        "the rest is kept as is"
    );
    // At the bound exactly, nothing is cut.
    let exact = HeldRefusal {
        reason: "€".repeat(1_000),
        ..profile.clone()
    };
    store.save_refusal("salesforce", &exact).await.unwrap();
    assert_eq!(
        store.load_links("salesforce").await.unwrap().refusals,
        [exact]
    );
}

async fn facts_default_save_replace_per_connection(h: &Harness) {
    let store = &h.store;
    assert_eq!(
        store.load_links("salesforce").await.unwrap().facts,
        TargetFacts::default()
    );

    let facts = TargetFacts {
        capabilities: Some(TargetCapabilities {
            patch: true,
            filter: true,
            max_results: Some(200),
            user_attributes: Some(["userName", "emails", "title"].map(str::to_owned).into()),
            required_user_attributes: ["userName".to_owned()].into(),
            federation_id_path: Some(
                "urn:salesforce:schemas:extension:2.0:User:federationIdentifier".into(),
            ),
            entitlements: true,
            notes: vec![
                "/Schemas unreadable (403); user attributes taken from /ResourceTypes".into(),
                "no ETags: writes are not conditional".into(),
            ],
            ..TargetCapabilities::default()
        }),
        discovered_at: Some(T0),
        member_batch_size: Some(50),
        profiles_without_groups: ["00eCHATTER".to_owned()].into(),
        api_calls: vec![HourlyCalls {
            hour: 1_764_000_000_000,
            calls: 412,
        }],
        api_allocation: Some(15_000),
        last_full_read: Some(T0),
        full_read_policy: Some("0123456789abcdef".to_owned()),
        learned_reads: Some("single".to_owned()),
        catalogue: Some(scimsync_core::target::Catalogue {
            roles: vec![scimsync_core::target::CatalogueEntry {
                id: "00E1".to_owned(),
                name: "CEO".to_owned(),
            }],
            ..Default::default()
        }),
    };
    store.save_facts("salesforce", &facts).await.unwrap();
    assert_eq!(store.load_links("salesforce").await.unwrap().facts, facts);
    assert_eq!(
        store.load_links("slack").await.unwrap().facts,
        TargetFacts::default(),
        "per connection"
    );

    // Saving again replaces the whole: what is not in the new facts is gone.
    let newer = TargetFacts {
        capabilities: Some(TargetCapabilities {
            user_attributes: Some(["userName".to_owned()].into()),
            notes: vec!["rediscovered".into()],
            ..TargetCapabilities::default()
        }),
        discovered_at: Some(T0.plus_millis(86_400_000)),
        ..TargetFacts::default()
    };
    store.save_facts("salesforce", &newer).await.unwrap();
    assert_eq!(store.load_links("salesforce").await.unwrap().facts, newer);

    let slack = TargetFacts {
        member_batch_size: Some(10),
        ..TargetFacts::default()
    };
    store.save_facts("slack", &slack).await.unwrap();
    assert_eq!(store.load_links("slack").await.unwrap().facts, slack);
    assert_eq!(store.load_links("salesforce").await.unwrap().facts, newer);
}

async fn huge_values_are_capped_before_they_are_stored(h: &Harness) {
    let store = &h.store;
    let run = store.start_run(&new_run("salesforce", T0)).await.unwrap();
    let mut e = entry(run, "salesforce", T0, "create_user", Outcome::Failed, "x");
    e.name = "é".repeat(1_000_000);
    e.detail = "d".repeat(10 * 1024 * 1024);
    store.record(&e).await.unwrap();
    let got = store
        .query_activity(&ActivityQuery {
            run_id: Some(run),
            ..ActivityQuery::default()
        })
        .await
        .unwrap();
    assert!(got[0].name.len() < 2_000, "{}", got[0].name.len());
    assert!(got[0].name.ends_with("more bytes not stored)"));
    assert!(got[0].detail.len() < 5_000);
    store
        .finish_run(
            run,
            &RunEnd {
                message: Some("m".repeat(1_000_000)),
                read: None,
                ..end(RunStatus::Failed, T0, None)
            },
        )
        .await
        .unwrap();
    let runs = store.list_runs(Some("salesforce"), 1).await.unwrap();
    assert!(runs[0].message.as_ref().unwrap().len() < 5_000);
}

async fn lease_holder_and_abandoned_runs(h: &Harness) {
    let store = &h.store;
    let ttl = Duration::from_secs(30);
    let at = |s: i64| T0.plus_millis(s * 1_000);
    assert_eq!(store.lease_holder("salesforce").await.unwrap(), None);
    assert!(
        store
            .acquire_lease("salesforce", "host:1", at(0), ttl)
            .await
            .unwrap()
    );
    assert!(
        store
            .acquire_lease("salesforce", "host:1", at(10), ttl)
            .await
            .unwrap()
    );
    let held = store.lease_holder("salesforce").await.unwrap().unwrap();
    assert_eq!(held.holder, "host:1");
    assert_eq!(
        held.acquired_at,
        at(0),
        "renewals keep the time it was taken"
    );
    assert_eq!(held.expires_at, at(40));

    // host:1 dies with two runs going (one a dry run); slack has a run going too.
    let dead = store
        .start_run(&new_run("salesforce", at(1)))
        .await
        .unwrap();
    let dry = store
        .start_run(&NewRun {
            dry_run: true,
            ..new_run("salesforce", at(2))
        })
        .await
        .unwrap();
    let other = store.start_run(&new_run("slack", at(3))).await.unwrap();
    let done = store
        .start_run(&new_run("salesforce", at(4)))
        .await
        .unwrap();
    store
        .finish_run(done, &end(RunStatus::Succeeded, at(5), Some(1)))
        .await
        .unwrap();
    assert!(
        store
            .acquire_lease("salesforce", "host:2", at(60), ttl)
            .await
            .unwrap()
    );
    let n = store
        .abandon_runs(
            "salesforce",
            at(60),
            at(60),
            "its holder host:1 stopped renewing",
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let runs = store.list_runs(None, 10).await.unwrap();
    let status = |id| runs.iter().find(|r| r.id == id).unwrap();
    assert_eq!(status(dead).status, RunStatus::Abandoned);
    assert_eq!(status(dead).finished_at, Some(at(60)));
    assert_eq!(
        status(dead).message.as_deref(),
        Some("its holder host:1 stopped renewing")
    );
    assert_eq!(
        status(dry).status,
        RunStatus::Running,
        "dry runs take no lease"
    );
    assert_eq!(
        status(other).status,
        RunStatus::Running,
        "another connection"
    );
    assert_eq!(status(done).status, RunStatus::Succeeded);
    // A run started after the cut-off is left alone.
    let live = store
        .start_run(&new_run("salesforce", at(61)))
        .await
        .unwrap();
    assert_eq!(
        store
            .abandon_runs("salesforce", at(61), at(62), "x")
            .await
            .unwrap(),
        0
    );
    let runs = store.list_runs(Some("salesforce"), 10).await.unwrap();
    assert_eq!(
        runs.iter().find(|r| r.id == live).unwrap().status,
        RunStatus::Running
    );
}

async fn leases_take_refuse_renew_expire_release(h: &Harness) {
    let store = &h.store;
    let ttl = Duration::from_secs(30);
    let at = |s: i64| T0.plus_millis(s * 1_000);

    assert!(
        store
            .acquire_lease("salesforce", "daemon-a", at(0), ttl)
            .await
            .unwrap(),
        "A takes a free lease"
    );
    assert!(
        !store
            .acquire_lease("salesforce", "daemon-b", at(1), ttl)
            .await
            .unwrap(),
        "B is refused"
    );
    assert!(
        store
            .acquire_lease("slack", "daemon-b", at(1), ttl)
            .await
            .unwrap(),
        "other connections are separate"
    );
    assert!(
        store
            .acquire_lease("salesforce", "daemon-a", at(20), ttl)
            .await
            .unwrap(),
        "A renews, until 50s"
    );
    assert!(
        !store
            .acquire_lease("salesforce", "daemon-b", at(40), ttl)
            .await
            .unwrap(),
        "renewed: still A's"
    );
    // Releasing someone else's lease does nothing.
    store.release_lease("salesforce", "daemon-b").await.unwrap();
    assert!(
        !store
            .acquire_lease("salesforce", "daemon-b", at(45), ttl)
            .await
            .unwrap()
    );
    // A dies: its lease expires at 50s and B takes over.
    assert!(
        store
            .acquire_lease("salesforce", "daemon-b", at(50), ttl)
            .await
            .unwrap(),
        "B takes the expired lease"
    );
    assert!(
        !store
            .acquire_lease("salesforce", "daemon-a", at(51), ttl)
            .await
            .unwrap(),
        "A came back too late"
    );
    // What a status page shows: B holds salesforce since 50s (renewals keep that), slack's
    // lease has expired.
    assert!(
        store
            .acquire_lease("salesforce", "daemon-b", at(60), ttl)
            .await
            .unwrap(),
        "B renews"
    );
    let leases = store.leases().await.unwrap();
    assert_eq!(
        leases
            .iter()
            .map(|l| (l.connection.as_str(), l.holder.as_str()))
            .collect::<Vec<_>>(),
        [("salesforce", "daemon-b"), ("slack", "daemon-b")]
    );
    assert_eq!(
        (leases[0].acquired_at, leases[0].expires_at),
        (at(50), at(90))
    );
    assert!(leases[0].is_held_at(at(61)) && !leases[1].is_held_at(at(61)));
    store.release_lease("salesforce", "daemon-b").await.unwrap();
    assert!(
        store
            .acquire_lease("salesforce", "daemon-a", at(62), ttl)
            .await
            .unwrap(),
        "free after release"
    );
    // Releasing a lease never taken is not an error.
    store.release_lease("nowhere", "daemon-a").await.unwrap();
}

async fn lease_race_has_one_winner(h: &Harness) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move {
                store
                    .acquire_lease(
                        "salesforce",
                        &format!("daemon-{i}"),
                        T0,
                        Duration::from_secs(30),
                    )
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(winners, 1);
}

async fn migrations_are_idempotent(h: &Harness) {
    let run = h.store.start_run(&new_run("salesforce", T0)).await.unwrap();
    h.store
        .save_user_link("salesforce", &user_link("DUALICE", "005ALICE"))
        .await
        .unwrap();
    for _ in 0..2 {
        let again = SqlStore::connect(&h.url).await.unwrap();
        assert_eq!(again.dialect(), h.store.dialect());
        assert_eq!(
            again.list_runs(None, 10).await.unwrap()[0].id,
            run,
            "data kept"
        );
        assert_eq!(again.load_links("salesforce").await.unwrap().users.len(), 1);
        again.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite only: where the file goes.

/// A store at version 2 with refusals in the old `user_links.refusals` column: migration 3
/// clears them, creates the new tables, and the column is written `'[]'` and never read.
#[tokio::test]
async fn sqlite_upgrade_to_version_3_retires_the_old_refusals_column() {
    use sqlx::SqliteConnection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    store.close().await;

    // Back to version 2, with a link holding an old-style refusal.
    let old_refusal =
        r#"[{"attribute":"profile","wanted":"00eSTANDARD","reason":"licence","at":0}]"#;
    let mut raw = SqliteConnection::connect(&url).await.unwrap();
    for sql in [
        "DELETE FROM _sqlx_migrations WHERE version = 3",
        "DROP TABLE refusals",
        "DROP TABLE target_facts",
    ] {
        sqlx::query(sql).execute(&mut raw).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO user_links (connection, source_id, target_id, origin, refusals) \
         VALUES ('salesforce', 'DUALICE', '005ALICE', 'created', $1)",
    )
    .bind(old_refusal)
    .execute(&mut raw)
    .await
    .unwrap();

    let store = SqlStore::connect(&url).await.unwrap();
    let column = "SELECT refusals FROM user_links WHERE source_id = $1";
    let cleared: String = sqlx::query_scalar(column)
        .bind("DUALICE")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(cleared, "[]", "migration 3 cleared the old refusals");
    let links = store.load_links("salesforce").await.unwrap();
    assert_eq!(links.users, [user_link("DUALICE", "005ALICE")]);
    assert!(links.refusals.is_empty());
    store
        .save_refusal(
            "salesforce",
            &refusal(ObjectKind::User, "DUALICE", "profile", "00eSTANDARD"),
        )
        .await
        .unwrap();

    // Junk in the old column is never read; a save writes '[]' over it.
    sqlx::query("UPDATE user_links SET refusals = 'not json' WHERE source_id = 'DUALICE'")
        .execute(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        store.load_links("salesforce").await.unwrap().refusals.len(),
        1
    );
    store
        .save_user_link("salesforce", &user_link("DUALICE", "005ALICE"))
        .await
        .unwrap();
    let written: String = sqlx::query_scalar(column)
        .bind("DUALICE")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(written, "[]");
    raw.close().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn sqlite_file_and_directories_are_created_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state/nested/scimsync.db");
    assert!(!file.exists());
    let store = SqlStore::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    assert!(file.is_file(), "created with its directories");
    assert_eq!(store.dialect(), "sqlite");
    let run = store.start_run(&new_run("salesforce", T0)).await.unwrap();
    store
        .record(&entry(
            run,
            "salesforce",
            T0,
            "create_user",
            Outcome::Ok,
            "a@x.io",
        ))
        .await
        .unwrap();
    let wal = file.with_file_name("scimsync.db-wal");
    assert!(
        wal.exists(),
        "WAL mode keeps a write-ahead log beside the file"
    );
    store.close().await;

    // A plain path opens the same file.
    let plain = SqlStore::connect(file.to_str().unwrap()).await.unwrap();
    assert_eq!(plain.list_runs(None, 10).await.unwrap().len(), 1);
    plain.close().await;
}

#[tokio::test]
async fn sqlite_in_memory_store_works_across_calls() {
    let store = SqlStore::connect("sqlite::memory:").await.unwrap();
    let run = store.start_run(&new_run("demo", T0)).await.unwrap();
    store
        .record(&entry(
            run,
            "demo",
            T0,
            "create_user",
            Outcome::Ok,
            "a@x.io",
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .query_activity(&ActivityQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_urls_say_what_is_accepted_and_never_show_a_password() {
    let err = SqlStore::connect("mysql://root:hunter2@127.0.0.1/db")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
    assert!(
        text.contains("sqlite://") && text.contains("postgres://"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    // Port 1 on loopback refuses at once.
    let err = SqlStore::connect("postgres://scim:hunter2@127.0.0.1:1/db")
        .await
        .unwrap_err();
    let chain = format!("{err} / {:?}", std::error::Error::source(&err));
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable(), "an unreachable database may come back");
    assert!(
        !chain.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
        "{chain}"
    );
}

async fn first_opens_race_safely(h: &Harness) {
    // Daemons (and a CLI command) opening a new database at the same moment: every open
    // succeeds and the migrations are applied once. `connect` is spawnable (its future is Send).
    for _ in 0..5 {
        let url = h.fresh_url().await;
        let opens: Vec<_> = (0..3)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { SqlStore::connect(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        for open in opens {
            stores.push(open.await.unwrap().unwrap());
        }
        let run = stores[0]
            .start_run(&new_run("salesforce", T0))
            .await
            .unwrap();
        for store in &stores {
            assert_eq!(
                store.list_runs(None, 10).await.unwrap()[0].id,
                run,
                "one database"
            );
            store.close().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only: the `schema=` parameter.

#[tokio::test]
async fn postgres_schema_parameter_creates_isolates_and_drops() {
    let Some(h) = Harness::postgres().await else {
        return;
    };
    // The harness's own store already lives in a `schema=` schema; a second one is separate.
    let other_url = h.fresh_url().await;
    let other = SqlStore::connect(&other_url).await.unwrap();
    h.store.start_run(&new_run("salesforce", T0)).await.unwrap();
    assert!(
        other.list_runs(None, 10).await.unwrap().is_empty(),
        "schemas do not share data"
    );
    other.start_run(&new_run("slack", T0)).await.unwrap();
    assert_eq!(
        h.store.list_runs(None, 10).await.unwrap()[0].connection,
        "salesforce"
    );

    let schema = other_url.rsplit_once("schema=").unwrap().1.to_owned();
    let exists = |schema: String| async move {
        let base = std::env::var("SCIMSYNC_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let mut admin = PgConnection::connect(&base).await.unwrap();
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
        )
        .bind(schema)
        .fetch_one(&mut admin)
        .await
        .unwrap()
    };
    assert!(exists(schema.clone()).await);
    other.close_and_drop_schema().await.unwrap();
    assert!(!exists(schema).await, "dropped");

    let err = SqlStore::connect(&format!("{}&schema=Bad-Name", h.url))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidSchema { .. }), "{err:?}");
    assert!(err.to_string().contains("Bad-Name"), "{err}");
    h.finish().await;
}

async fn runs_with_stats_counts_many_runs(h: &Harness) {
    // More runs than one counting query takes (500).
    let mut ids = Vec::new();
    for i in 0..510 {
        ids.push(
            h.store
                .start_run(&new_run("salesforce", T0.plus_millis(i)))
                .await
                .unwrap(),
        );
    }
    let (oldest, newest) = (ids[0], ids[509]);
    for (run, outcome) in [
        (oldest, Outcome::Failed),
        (newest, Outcome::Ok),
        (newest, Outcome::Skipped),
    ] {
        h.store
            .record(&entry(
                run,
                "salesforce",
                T0,
                "create_user",
                outcome,
                "a@x.io",
            ))
            .await
            .unwrap();
    }
    let stats = h.store.runs_with_stats(None, 1_000).await.unwrap();
    assert_eq!(stats.len(), 510);
    assert_eq!(stats[0].run.id, newest);
    assert_eq!((stats[0].recorded.ok, stats[0].recorded.skipped), (1, 1));
    assert_eq!(stats[509].run.id, oldest);
    assert_eq!(stats[509].recorded.failed, 1);
    assert_eq!(stats.iter().map(|s| s.recorded.total()).sum::<u64>(), 3);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_file_and_its_wal_are_created_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("sub").join("store.db");
    let store = SqlStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.start_run(&new_run("salesforce", T0)).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}: {mode:o}");
    }
    store.close().await;
}

/// The newest succeeded run's end, per connection; the newest `reject` detail per source id,
/// per connection.
async fn last_success_and_logged_rejections(h: &Harness) {
    let store = &h.store;
    assert_eq!(store.last_success("salesforce").await.unwrap(), None);
    assert!(
        store
            .logged_rejections("salesforce")
            .await
            .unwrap()
            .is_empty()
    );

    let ok = store.start_run(&new_run("salesforce", T0)).await.unwrap();
    store
        .finish_run(
            ok,
            &end(RunStatus::Succeeded, T0.plus_millis(5_000), Some(3)),
        )
        .await
        .unwrap();
    let partial = store
        .start_run(&new_run("salesforce", T0.plus_millis(60_000)))
        .await
        .unwrap();
    store
        .finish_run(
            partial,
            &end(RunStatus::Partial, T0.plus_millis(61_000), Some(3)),
        )
        .await
        .unwrap();
    let other = store.start_run(&new_run("other", T0)).await.unwrap();
    store
        .finish_run(
            other,
            &end(RunStatus::Succeeded, T0.plus_millis(90_000), None),
        )
        .await
        .unwrap();
    assert_eq!(
        store.last_success("salesforce").await.unwrap(),
        Some(T0.plus_millis(5_000)),
        "a partial run is not a success; another connection's success is not this one's"
    );

    let reject = |run, conn: &str, source: &str, detail: &str| {
        let mut e = entry(run, conn, T0, "reject", Outcome::Rejected, source);
        e.source_id = Some(source.to_owned());
        e.detail = detail.to_owned();
        e
    };
    for e in [
        reject(ok, "salesforce", "u1", "email: missing"),
        reject(ok, "salesforce", "u2", "email: missing"),
        reject(partial, "salesforce", "u1", "email: no @"),
        reject(other, "other", "u3", "email: missing"),
    ] {
        store.record(&e).await.unwrap();
    }
    let mut create = entry(partial, "salesforce", T0, "create_user", Outcome::Ok, "u4");
    create.source_id = Some("u4".to_owned());
    store.record(&create).await.unwrap();
    let logged = store.logged_rejections("salesforce").await.unwrap();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!(logged["u1"], "email: no @", "the newest reason wins");
    assert_eq!(logged["u2"], "email: missing");
}

const DAY: i64 = 86_400_000;

async fn retention_prunes_old_rows_and_keeps_what_is_needed(h: &Harness) {
    let store = &h.store;
    let cutoff = T0.plus_millis(10 * DAY);
    let finished = |status, at: Timestamp, users| end(status, at.plus_millis(1_000), users);
    let reject = |run, source: &str, at, detail: &str| {
        let mut e = entry(run, "sf", at, "reject", Outcome::Rejected, source);
        e.source_id = Some(source.to_owned());
        e.detail = detail.to_owned();
        e
    };

    // sf: two old finished runs, one still running, one recent.
    let r1 = store.start_run(&new_run("sf", T0)).await.unwrap();
    store
        .finish_run(r1, &finished(RunStatus::Succeeded, T0, Some(5)))
        .await
        .unwrap();
    store
        .record(&entry(r1, "sf", T0, "create_user", Outcome::Ok, "a@x.io"))
        .await
        .unwrap();
    store
        .record(&reject(r1, "u1", T0, "email: missing"))
        .await
        .unwrap();
    store
        .record(&reject(r1, "u1", T0.plus_millis(1_000), "email: no @"))
        .await
        .unwrap();
    let r2 = store
        .start_run(&new_run("sf", T0.plus_millis(DAY)))
        .await
        .unwrap();
    store
        .finish_run(
            r2,
            &finished(RunStatus::Partial, T0.plus_millis(DAY), Some(5)),
        )
        .await
        .unwrap();
    store
        .record(&entry(
            r2,
            "sf",
            T0.plus_millis(DAY),
            "update_user",
            Outcome::Failed,
            "a@x.io",
        ))
        .await
        .unwrap();
    let running = store
        .start_run(&new_run("sf", T0.plus_millis(2 * DAY)))
        .await
        .unwrap();
    let recent_at = T0.plus_millis(20 * DAY);
    let r4 = store.start_run(&new_run("sf", recent_at)).await.unwrap();
    store
        .finish_run(r4, &finished(RunStatus::Succeeded, recent_at, Some(6)))
        .await
        .unwrap();
    store
        .record(&entry(
            r4,
            "sf",
            recent_at,
            "update_user",
            Outcome::Ok,
            "a@x.io",
        ))
        .await
        .unwrap();

    // old: a connection that last ran long ago; its newest read and success are still needed.
    let o1 = store.start_run(&new_run("old", T0)).await.unwrap();
    store
        .finish_run(o1, &finished(RunStatus::Succeeded, T0, Some(3)))
        .await
        .unwrap();
    store
        .record(&entry(o1, "old", T0, "create_user", Outcome::Ok, "b@x.io"))
        .await
        .unwrap();
    let o2 = store
        .start_run(&new_run("old", T0.plus_millis(DAY)))
        .await
        .unwrap();
    store
        .finish_run(o2, &finished(RunStatus::Failed, T0.plus_millis(DAY), None))
        .await
        .unwrap();
    store
        .record(&entry(
            o2,
            "old",
            T0.plus_millis(DAY),
            "read_source",
            Outcome::Failed,
            "old",
        ))
        .await
        .unwrap();
    store
        .save_user_link("old", &user_link("b", "005B"))
        .await
        .unwrap();
    store
        .save_refusal("old", &refusal(ObjectKind::User, "b", "title", "Boss"))
        .await
        .unwrap();

    // Old entries: create (r1), the older rejection of u1, the update (r2), both of `old`.
    let expected = scimsync_store::Pruned {
        activity: 5,
        runs: 1,
    };
    assert_eq!(store.count_prunable(cutoff).await.unwrap(), expected);
    // Batches of two: several statements, the same result.
    assert_eq!(store.prune(cutoff, 2).await.unwrap(), expected);
    assert_eq!(
        store.prune(cutoff, 2).await.unwrap(),
        scimsync_store::Pruned::default(),
        "a second prune finds nothing"
    );

    let left: Vec<(RunId, String)> = store
        .query_activity(&ActivityQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.run_id, e.detail))
        .collect();
    assert_eq!(
        left,
        vec![
            (r1, "email: no @".to_owned()),
            (r4, "update_user a@x.io".to_owned())
        ],
        "the newest rejection of u1 is kept, with what is recent"
    );
    let mut runs: Vec<RunId> = store
        .list_runs(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    runs.sort_unstable();
    assert_eq!(
        runs,
        vec![r1, running, r4, o1, o2],
        "r2 goes; the running run, the runs a kept entry needs and the newest runs of `old` stay"
    );
    assert_eq!(store.last_source_count("old").await.unwrap(), Some(3));
    assert_eq!(
        store.last_success("old").await.unwrap(),
        Some(T0.plus_millis(1_000))
    );
    assert_eq!(
        store.logged_rejections("sf").await.unwrap()["u1"],
        "email: no @"
    );
    let links = store.load_links("old").await.unwrap();
    assert_eq!(links.users.len(), 1);
    assert_eq!(links.refusals.len(), 1);
}

async fn counts_match_the_searches(h: &Harness) {
    let store = &h.store;
    let a = store.start_run(&new_run("sf", T0)).await.unwrap();
    let b = store.start_run(&new_run("other", T0)).await.unwrap();
    for i in 0..5 {
        store
            .record(&entry(
                a,
                "sf",
                T0.plus_millis(i),
                "create_user",
                Outcome::Ok,
                "a@x.io",
            ))
            .await
            .unwrap();
    }
    store
        .record(&entry(b, "other", T0, "note", Outcome::Skipped, "b@x.io"))
        .await
        .unwrap();
    let query = ActivityQuery {
        connection: Some("sf".into()),
        limit: Some(2),
        ..ActivityQuery::default()
    };
    assert_eq!(
        store.count_activity(&query).await.unwrap(),
        5,
        "the limit aside"
    );
    assert_eq!(
        store
            .count_activity(&ActivityQuery {
                since: Some(T0.plus_millis(3)),
                ..query
            })
            .await
            .unwrap(),
        2
    );
    let c = store
        .start_run(&new_run("sf", T0.plus_millis(DAY)))
        .await
        .unwrap();
    assert_eq!(store.count_runs(None, None).await.unwrap(), 3);
    assert_eq!(store.count_runs(Some("sf"), None).await.unwrap(), 2);
    assert_eq!(
        store
            .count_runs(Some("sf"), Some(T0.plus_millis(1)))
            .await
            .unwrap(),
        1
    );
    let since: Vec<RunId> = store
        .runs_with_stats_since(None, Some(T0.plus_millis(1)), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run.id)
        .collect();
    assert_eq!(since, vec![c]);
    assert_eq!(
        store.run_connections().await.unwrap(),
        vec!["other".to_owned(), "sf".to_owned()]
    );
    assert!(store.has_activity_op("note").await.unwrap());
    assert!(!store.has_activity_op("frobnicate").await.unwrap());
}

fn state_user(id: &str, title: &str) -> scimsync_core::target::TargetUser {
    scimsync_core::target::TargetUser {
        id: TargetUserId::from(id),
        user_name: format!("{id}@example.com").into(),
        external_id: Some(format!("S{id}").into()),
        given_name: None,
        family_name: Some("Tester".into()),
        display_name: None,
        nick_name: None,
        title: Some(title.into()),
        emails: Vec::new(),
        phone_numbers: Vec::new(),
        active: true,
        entitlements: Vec::new(),
        roles: Vec::new(),
        enterprise: Default::default(),
        federation_id: None,
    }
}

async fn target_state_upsert_doubtful_forget_replace(h: &Harness) {
    use scimsync_core::state::StoredState;
    use scimsync_core::target::TargetGroup;
    let s = &h.store;
    assert_eq!(s.load_state("c").await.unwrap(), StoredState::default());
    let group = TargetGroup {
        id: TargetGroupId::from("00G1"),
        display_name: "Sales".into(),
        members: vec![TargetUserId::from("005A")],
    };
    s.save_state(
        "c",
        &[state_user("005A", "one"), state_user("005B", "one")],
        std::slice::from_ref(&group),
    )
    .await
    .unwrap();
    // Another connection's objects stay apart.
    s.save_state("other", &[state_user("005A", "theirs")], &[])
        .await
        .unwrap();
    // An upsert replaces; marking doubtful flags only stored objects.
    s.save_state("c", &[state_user("005A", "two")], &[])
        .await
        .unwrap();
    s.mark_doubtful(
        "c",
        &[TargetUserId::from("005B"), TargetUserId::from("005Z")],
        std::slice::from_ref(&group.id),
    )
    .await
    .unwrap();
    let state = s.load_state("c").await.unwrap();
    assert_eq!(
        state.users,
        vec![state_user("005A", "two"), state_user("005B", "one")]
    );
    assert_eq!(state.groups, vec![group.clone()]);
    assert_eq!(
        state
            .doubtful_users
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>(),
        vec!["005B"]
    );
    assert!(state.doubtful_groups.contains(&group.id));
    // Saving an object again clears its doubt.
    s.save_state("c", &[state_user("005B", "read")], &[])
        .await
        .unwrap();
    assert!(s.load_state("c").await.unwrap().doubtful_users.is_empty());
    // Forgotten: gone from the target.
    s.forget_state(
        "c",
        &[TargetUserId::from("005A")],
        std::slice::from_ref(&group.id),
    )
    .await
    .unwrap();
    let state = s.load_state("c").await.unwrap();
    assert_eq!(state.users, vec![state_user("005B", "read")]);
    assert!(state.groups.is_empty() && state.doubtful_groups.is_empty());
    // A full read replaces everything of the connection, in one go.
    let mut full = StoredState {
        users: vec![state_user("005C", "new")],
        ..StoredState::default()
    };
    full.doubtful_users.insert(TargetUserId::from("005C"));
    s.replace_state("c", &full).await.unwrap();
    assert_eq!(s.load_state("c").await.unwrap(), full);
    assert_eq!(
        s.load_state("other").await.unwrap().users,
        vec![state_user("005A", "theirs")]
    );
}

async fn target_state_of_100k_users_loads_whole(h: &Harness) {
    use scimsync_core::state::StoredState;
    let users: Vec<_> = (0..100_000)
        .map(|i| state_user(&format!("005{i:012}"), "Engineer"))
        .collect();
    let state = StoredState {
        users,
        ..StoredState::default()
    };
    h.store.replace_state("big", &state).await.unwrap();
    let loaded = h.store.load_state("big").await.unwrap();
    assert_eq!(loaded.users.len(), 100_000);
    assert_eq!(loaded, state);
}
