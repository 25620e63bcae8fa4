//! A connection never runs twice at once: in one daemon (a lock) or across daemons sharing a
//! store (a lease that another daemon takes over when its holder dies).
#![allow(clippy::unwrap_used)]

use futures::future::BoxFuture;
use scimsync_core::activity::{RunStatus, Trigger};
use scimsync_core::plan::Plan;
use scimsync_core::ports::Store as _;
use scimsync_engine::{EngineError, Job, Metrics, RunReport, Scheduler, SchedulerError, now};
use scimsync_store::SqlStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct SlowJob {
    runs: AtomicUsize,
}

impl Job for SlowJob {
    fn name(&self) -> &str {
        "sf"
    }
    fn run(
        &self,
        _trigger: Trigger,
        _approve: bool,
        _cancel: CancellationToken,
        _stop_reason: scimsync_engine::StopReason,
    ) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.runs.fetch_add(1, Ordering::SeqCst);
            Ok(RunReport {
                run_id: 1,
                connection: "sf".into(),
                status: RunStatus::Succeeded,
                plan: Plan::default(),
                applied: 0,
                failed: 0,
                rejected: 0,
                known_rejected: 0,
                skipped: 0,
                refused: 0,
                held: 0,
                guard: None,
                trace: None,
                source_users: 0,
                message: None,
                read: None,
                drifted: 0,
                labels: Default::default(),
            })
        })
    }
}

fn scheduler(store: &Arc<SqlStore>, holder: &str, job: &Arc<SlowJob>) -> Arc<Scheduler<SqlStore>> {
    let mut s = Scheduler::new(
        Arc::clone(store),
        holder,
        Arc::new(Metrics::default()),
        CancellationToken::new(),
    )
    .with_lease_ttl(Duration::from_millis(900));
    s.add(Arc::clone(job) as Arc<dyn Job>);
    Arc::new(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_at_a_time_in_a_daemon_and_across_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqlStore::connect(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    let job = Arc::new(SlowJob {
        runs: AtomicUsize::new(0),
    });
    let a = scheduler(&store, "daemon-a", &job);
    let b = scheduler(&store, "daemon-b", &job);

    let first = {
        let a = Arc::clone(&a);
        tokio::spawn(async move { a.run_now("sf", Trigger::Schedule, false).await })
    };
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(matches!(
        a.run_now("sf", Trigger::Api, false).await,
        Err(SchedulerError::Busy(_))
    ));
    assert!(matches!(
        a.trigger("sf", false),
        Err(SchedulerError::Busy(_))
    ));
    assert!(
        matches!(
            b.run_now("sf", Trigger::Schedule, false).await,
            Err(SchedulerError::Leased { .. })
        ),
        "another daemon does not run it while the lease is held"
    );
    first.await.unwrap().unwrap().unwrap();
    assert_eq!(job.runs.load(Ordering::SeqCst), 1);
    // Released at the end of the run: the other daemon may run it now.
    b.run_now("sf", Trigger::Schedule, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.runs.load(Ordering::SeqCst), 2);
    assert!(matches!(
        a.run_now("nope", Trigger::Api, false).await,
        Err(SchedulerError::UnknownConnection(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_of_a_dead_daemon_is_taken_over_when_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqlStore::connect(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    // A daemon took the lease and died without releasing it.
    assert!(
        store
            .acquire_lease("sf", "dead-daemon", now(), Duration::from_millis(400))
            .await
            .unwrap()
    );
    let job = Arc::new(SlowJob {
        runs: AtomicUsize::new(0),
    });
    let b = scheduler(&store, "daemon-b", &job);
    assert!(matches!(
        b.run_now("sf", Trigger::Schedule, false).await,
        Err(SchedulerError::Leased { .. })
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.run_now("sf", Trigger::Schedule, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.runs.load(Ordering::SeqCst), 1);
}

/// Waits for its cancellation (10 s at most) and keeps the stop reason it was given.
struct WaitingJob {
    reason: std::sync::Mutex<Option<Option<String>>>,
}

impl Job for WaitingJob {
    fn name(&self) -> &str {
        "sf"
    }
    fn run(
        &self,
        _trigger: Trigger,
        _approve: bool,
        cancel: CancellationToken,
        stop_reason: scimsync_engine::StopReason,
    ) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        Box::pin(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
            *self.reason.lock().unwrap() = Some(stop_reason.get().map(str::to_owned));
            Err(EngineError::UnknownUser {
                connection: "sf".into(),
                user: "stopped".into(),
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_loses_its_lease_is_cancelled_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqlStore::connect(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    let job = Arc::new(WaitingJob {
        reason: std::sync::Mutex::new(None),
    });
    let ttl = Duration::from_millis(600);
    let mut s = Scheduler::new(
        Arc::clone(&store),
        "daemon-a",
        Arc::new(Metrics::default()),
        CancellationToken::new(),
    )
    .with_lease_ttl(ttl);
    s.add(Arc::clone(&job) as Arc<dyn Job>);
    let s = Arc::new(s);
    let started = std::time::Instant::now();
    let run = {
        let s = Arc::clone(&s);
        tokio::spawn(async move { s.run_now("sf", Trigger::Schedule, false).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Another holder whose clock runs ahead takes the lease as if it had expired.
    let ahead = now().plus_millis(10_000);
    assert!(
        store
            .acquire_lease("sf", "daemon-b", ahead, ttl)
            .await
            .unwrap()
    );
    run.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped at the first renewal, not after the run's 10 s"
    );
    let reason = job.reason.lock().unwrap().clone().unwrap();
    let reason = reason.expect("the run was told why");
    assert!(
        reason.contains("lease of connection sf was taken by daemon-b"),
        "{reason}"
    );
    // The lease is daemon-b's still: the loser does not release it.
    assert_eq!(
        store.lease_holder("sf").await.unwrap().unwrap().holder,
        "daemon-b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_left_running_by_a_dead_holder_are_marked_abandoned_by_the_next_holder() {
    use scimsync_core::ports::NewRun;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqlStore::connect(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    let dead = store
        .start_run(&NewRun {
            connection: "sf".into(),
            trigger: Trigger::Manual,
            dry_run: false,
            started_at: now().plus_millis(-5_000),
        })
        .await
        .unwrap();
    let job = Arc::new(SlowJob {
        runs: AtomicUsize::new(0),
    });
    let b = scheduler(&store, "daemon-b", &job);
    b.run_now("sf", Trigger::Schedule, false)
        .await
        .unwrap()
        .unwrap();
    let run = store
        .list_runs(Some("sf"), 10)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == dead)
        .unwrap();
    assert_eq!(run.status, RunStatus::Abandoned);
    assert!(run.message.unwrap().contains("abandoned"));
}
