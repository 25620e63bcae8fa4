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
                skipped: 0,
                refused: 0,
                held: 0,
                guard: None,
                trace: None,
                source_users: 0,
                message: None,
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
