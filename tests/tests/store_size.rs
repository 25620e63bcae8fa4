//! The README's figure for the store's size: a SQLite store after the first sync of 10,000
//! users and 1,000 no-op runs, and what retention gives back. A measurement, run once by hand
//! (it is `#[ignore]`d; nothing in it can fail but the runs themselves):
//!
//! ```sh
//! cargo nextest run -p scimsync-tests --test store_size --run-ignored only --no-capture
//! ```
//!
//! The first sync and the first no-op runs are real (Duo emulator → engine → Salesforce
//! emulator). A no-op run records the same rows every time (its run row, and the activity
//! entries of the notes its plan repeats); the rest of the 1,000 are those rows recorded
//! again through the store, as the engine records them, which takes seconds instead of the
//! better part of an hour.
#![allow(clippy::unwrap_used)]

use scimsync_core::activity::{ActivityQuery, Trigger};
use scimsync_core::policy::{Governance, Policy, RuleSpec, Safety, Scope, TargetKind};
use scimsync_core::ports::{NewRun, RunEnd, Store as _};
use scimsync_directory::{DuoConfig, DuoEndpoint, DuoSource};
use scimsync_engine::{Connection, RunOptions, reconcile_once};
use scimsync_scim::{Auth, ClientAuthMethod, Dialect, ScimClient, ScimConfig};
use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator;
use scimsync_sim::salesforce::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SalesforceConfig, SalesforceSim,
};
use scimsync_store::SqlStore;
use secrecy::SecretString;
use std::path::Path;
use std::time::{Duration, Instant};

const USERS: usize = 10_000;
const RUNS: usize = 1_000;
/// No-op runs done for real before the rest are recorded again.
const REAL_RUNS: usize = 3;

fn policy() -> Policy {
    Policy {
        target_kind: TargetKind::Salesforce,
        scope: Scope::All,
        governance: Governance {
            baseline: Some(RuleSpec {
                profile: "Standard User".into(),
                permission_sets: Vec::new(),
                role: None,
            }),
            group_rules: Vec::new(),
            authoritative_permission_sets: false,
            profiles_without_groups: Vec::new(),
        },
        safety: Safety {
            max_deactivations: None,
            max_deactivation_percent: None,
        },
        ..Policy::default()
    }
}

/// The store's size on disk once closed (SQLite checkpoints its WAL into the file then).
async fn closed_size(store: SqlStore, file: &Path) -> (u64, SqlStore) {
    store.close().await;
    let size = std::fs::metadata(file).unwrap().len();
    let reopened = SqlStore::connect(file.to_str().unwrap()).await.unwrap();
    (size, reopened)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for the README, run by hand"]
async fn store_size_after_a_thousand_no_op_runs() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.db");
    let mut store = SqlStore::connect(file.to_str().unwrap()).await.unwrap();
    let data = generator::generate(USERS, 40, 7);
    let duo = DuoSim::start(DuoSimConfig::demo(), data).await.unwrap();
    let sf = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let conn = Connection {
        name: "salesforce".into(),
        source: DuoSource::new(DuoConfig::new(
            DuoEndpoint::BaseUrl(url::Url::parse(&duo.base_url()).unwrap()),
            duo.integration_key().to_owned(),
            SecretString::from(duo.secret_key().to_owned()),
        ))
        .unwrap(),
        target: ScimClient::new(ScimConfig {
            requests_per_second: 10_000,
            backoff_base: Duration::from_millis(10),
            ..ScimConfig::new(
                url::Url::parse(&sf.base_url()).unwrap(),
                Auth::ClientCredentials {
                    token_url: url::Url::parse(&sf.token_url()).unwrap(),
                    client_id: DEMO_CLIENT_ID.to_owned(),
                    client_secret: SecretString::from(DEMO_CLIENT_SECRET.to_owned()),
                    method: ClientAuthMethod::Form,
                },
                Dialect::Salesforce,
            )
        })
        .unwrap(),
        policy: policy(),
    };
    let opts = RunOptions {
        max_concurrency: 16,
        ..RunOptions::default()
    };

    let first = reconcile_once(&conn, &store, &opts).await.unwrap();
    eprintln!(
        "first sync: {} applied, {} failed, {} rejected",
        first.applied, first.failed, first.rejected
    );
    let (after_first, reopened) = closed_size(store, &file).await;
    store = reopened;

    let mut last = first;
    let started = Instant::now();
    for _ in 0..REAL_RUNS {
        last = reconcile_once(&conn, &store, &opts).await.unwrap();
        assert_eq!(last.applied, 0, "a no-op run writes nothing");
    }
    let per_real_run = started.elapsed() / REAL_RUNS as u32;
    let entries = store
        .query_activity(&ActivityQuery {
            run_id: Some(last.run_id),
            ..ActivityQuery::default()
        })
        .await
        .unwrap();
    let run = store
        .list_runs(Some("salesforce"), 1)
        .await
        .unwrap()
        .remove(0);
    eprintln!(
        "a no-op run: {per_real_run:?} for real, {} activity entries",
        entries.len()
    );
    for _ in REAL_RUNS..RUNS {
        let now = scimsync_engine::now();
        let id = store
            .start_run(&NewRun {
                connection: "salesforce".into(),
                trigger: Trigger::Schedule,
                dry_run: false,
                started_at: now,
            })
            .await
            .unwrap();
        for e in &entries {
            let mut e = e.clone();
            e.id = 0;
            e.run_id = id;
            e.at = now;
            store.record(&e).await.unwrap();
        }
        store
            .finish_run(
                id,
                &RunEnd {
                    status: run.status,
                    finished_at: now,
                    source_users: run.source_users,
                    planned: run.planned,
                    applied: run.applied,
                    failed: run.failed,
                    rejected: run.rejected,
                    skipped: run.skipped,
                    message: run.message.clone(),
                    read: None,
                },
            )
            .await
            .unwrap();
    }
    let (after_runs, reopened) = closed_size(store, &file).await;
    store = reopened;

    // Retention: everything a connection does not need, pruned (a cut-off in the future).
    let pruned = store
        .prune(
            scimsync_engine::now().plus_millis(60_000),
            scimsync_store::PRUNE_BATCH,
        )
        .await
        .unwrap();
    let (after_prune, _store) = closed_size(store, &file).await;
    let kib = |b: u64| b as f64 / 1024.0;
    eprintln!(
        "figures: {USERS} users; after the first sync {:.0} KiB; after {RUNS} no-op runs {:.0} KiB \
         ({:.0} bytes a run); pruned {} entries and {} runs, file then {:.0} KiB",
        kib(after_first),
        kib(after_runs),
        (after_runs - after_first) as f64 / RUNS as f64,
        pruned.activity,
        pruned.runs,
        kib(after_prune)
    );
}
