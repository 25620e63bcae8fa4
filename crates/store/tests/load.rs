//! Figures, not checks: how long a recorded outcome and the `scimsync activity` searches take
//! on each backend. Ignored by default; run with
//! `cargo nextest run -p scimsync-store --run-ignored only --no-capture load`.
#![allow(clippy::unwrap_used)]

use scimsync_core::Timestamp;
use scimsync_core::activity::{ActivityEntry, ActivityQuery, Outcome, Trigger};
use scimsync_core::links::{Origin, UserLink};
use scimsync_core::ports::{NewRun, Store};
use scimsync_core::{SourceUserId, TargetUserId};
use scimsync_store::SqlStore;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::time::{Duration, Instant};

const RECORDS: i64 = 1_000;
const FILL: i64 = 200_000;

/// INSERT statements of `FILL` entries: users 0..5000 across 4 connections, one in 50 failed.
fn fill_statements() -> Vec<String> {
    (0..FILL)
        .collect::<Vec<_>>()
        .chunks(1_000)
        .map(|chunk| {
            let rows: Vec<String> = chunk
                .iter()
                .map(|&i| {
                    let user = i % 5_000;
                    format!(
                        "(1, 'conn{}', {}, '{}', '{}', 'user', 'DU{user:018}', '005{user:015}', \
                         'User{user}@Example.com', 'user{user}@example.com', 'title: a -> b')",
                        i % 4,
                        1_795_000_000_000_i64 + i * 1_000,
                        if i % 7 == 0 { "update_user" } else { "add_members" },
                        if i % 50 == 0 { "failed" } else { "ok" },
                    )
                })
                .collect();
            format!(
                "INSERT INTO activity (run_id, connection, at, op, outcome, object, source_id, target_id, \
                 name, name_folded, detail) VALUES {}",
                rows.join(", ")
            )
        })
        .collect()
}

/// Fills the activity log in one transaction on connection `$c`.
macro_rules! bulk_fill {
    ($c:expr) => {{
        let mut tx = $c.begin().await.unwrap();
        for statement in fill_statements() {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        // Each entry also found by its user's source username (as the engine records them).
        sqlx::query(
            "INSERT INTO activity_subjects (activity_id, subject) \
             SELECT id, 'duo' || substr(source_id, 3) FROM activity",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        // Fresh statistics, as autovacuum (PostgreSQL) or `PRAGMA optimize` would leave them.
        sqlx::query("ANALYZE").execute(&mut $c).await.unwrap();
    }};
}

#[tokio::test]
#[ignore = "a measurement; run on demand"]
async fn load_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("load.db");
    let url = format!("sqlite://{}", file.display());
    let store = SqlStore::connect(&url).await.unwrap();
    let fill = format!("sqlite://{}", file.display());
    measure("sqlite", &store, || async move {
        let mut c = sqlx::SqliteConnection::connect(&fill).await.unwrap();
        bulk_fill!(c);
    })
    .await;
}

#[tokio::test]
#[ignore = "a measurement; run on demand"]
async fn load_postgres() {
    let base = std::env::var("SCIMSYNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut admin = PgConnection::connect(&base).await.unwrap();
    let schema = format!("scimsync_load_{}", std::process::id());
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let joiner = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{joiner}options[search_path]={schema}");
    let store = SqlStore::connect(&url).await.unwrap();
    let fill = url.clone();
    measure("postgres", &store, || async move {
        let mut c = PgConnection::connect(&fill).await.unwrap();
        bulk_fill!(c);
    })
    .await;
    store.close().await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
}

async fn measure<F, Fut>(backend: &str, store: &SqlStore, fill: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let run = store
        .start_run(&NewRun {
            connection: "conn0".into(),
            trigger: Trigger::Manual,
            dry_run: false,
            started_at: Timestamp(1_795_000_000_000),
        })
        .await
        .unwrap();
    assert_eq!(run, 1);

    let started = Instant::now();
    for i in 0..RECORDS {
        store
            .record(&ActivityEntry {
                id: 0,
                run_id: run,
                connection: "conn0".into(),
                at: Timestamp(1_795_000_000_000 + i),
                op: "create_user".into(),
                outcome: Outcome::Ok,
                object: "user".into(),
                source_id: Some(format!("DUREC{i}")),
                target_id: Some(format!("005REC{i}")),
                name: format!("rec{i}@example.com"),
                detail: "created".into(),
                attempts: 0,
            })
            .await
            .unwrap();
    }
    let per_record = started.elapsed() / RECORDS as u32;

    // The engine records from several tasks at once (bounded concurrency).
    let started = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..RECORDS / 8 {
                    store
                        .record(&ActivityEntry {
                            id: 0,
                            run_id: run,
                            connection: "conn0".into(),
                            at: Timestamp(1_795_000_000_000 + i),
                            op: "update_user".into(),
                            outcome: Outcome::Ok,
                            object: "user".into(),
                            source_id: Some(format!("DUW{w}")),
                            target_id: None,
                            name: format!("w{w}@example.com"),
                            detail: "title".into(),
                            attempts: 0,
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let concurrent_rate = (RECORDS / 8 * 8) as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for i in 0..RECORDS {
        let link = UserLink {
            source_id: SourceUserId(format!("DUREC{i}").into()),
            target_id: TargetUserId(format!("005REC{i}").into()),
            origin: Origin::Created,
            assigned_permission_sets: ["0PSA".to_owned()].into(),
            pending_email: None,
        };
        store.save_user_link("conn0", &link).await.unwrap();
    }
    let per_link = started.elapsed() / RECORDS as u32;
    let started = Instant::now();
    let links = store.load_links("conn0").await.unwrap();
    let load_links = started.elapsed();
    assert_eq!(links.users.len(), RECORDS as usize);

    let started = Instant::now();
    fill().await;
    let fill_time = started.elapsed();

    let q = ActivityQuery::default;
    let searches: Vec<(&str, ActivityQuery)> = vec![
        (
            "user by name",
            ActivityQuery {
                user: Some("USER4242@example.com".into()),
                ..q()
            },
        ),
        (
            "user by source id",
            ActivityQuery {
                user: Some(format!("DU{:018}", 4242)),
                ..q()
            },
        ),
        (
            "user by source username",
            ActivityQuery {
                user: Some(format!("duo{:018}", 4242)),
                ..q()
            },
        ),
        (
            "connection, last 100",
            ActivityQuery {
                connection: Some("conn2".into()),
                limit: Some(100),
                ..q()
            },
        ),
        (
            "failed, last 50",
            ActivityQuery {
                outcome: Some(Outcome::Failed),
                limit: Some(50),
                ..q()
            },
        ),
        (
            "connection since, last 100",
            ActivityQuery {
                connection: Some("conn1".into()),
                since: Some(Timestamp(1_795_000_000_000 + 150_000_000)),
                limit: Some(100),
                ..q()
            },
        ),
        (
            "follow after id",
            ActivityQuery {
                after_id: Some(FILL + 2 * RECORDS - 10),
                ..q()
            },
        ),
        (
            "op, last 100",
            ActivityQuery {
                op: Some("update_user".into()),
                limit: Some(100),
                ..q()
            },
        ),
    ];
    println!(
        "{backend}: record {per_record:?}/entry (8 writers: {concurrent_rate:.0} entries/s), save_user_link {per_link:?}/link, load {RECORDS} links {load_links:?}, \
         bulk fill {FILL} entries {fill_time:?}"
    );
    for (label, query) in searches {
        // Warm once, then time the median of 5.
        store.query_activity(&query).await.unwrap();
        let mut times: Vec<Duration> = Vec::new();
        let mut found = 0;
        for _ in 0..5 {
            let started = Instant::now();
            found = store.query_activity(&query).await.unwrap().len();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{backend}:   {label:<28} {:>10?} ({found} entries)",
            times[2]
        );
    }
}
