//! A connection never runs twice at once: in one daemon (a lock) or across daemons sharing a
//! store (a lease that another daemon takes over when its holder dies).
//!
//! These tests run on tokio's paused time with the engine's clock following it
//! (`scimsync_engine::clock::follow_tokio_time`): leases live their real two minutes and runs
//! last their minutes, yet each test takes milliseconds and no wait depends on how busy the
//! machine is. The store is [`MemoryStore`], an in-memory keeper of runs and leases below:
//! SQLite answers from a thread of its own, and while tokio waits for that thread with nothing
//! else to do it jumps paused time ahead to the next timer (a lease renewal, the pool's acquire
//! timeout), so a test on SQLite would move through time by how fast queries return. The
//! stores' own lease rules are checked by the store conformance suite.
#![allow(clippy::unwrap_used)]

use futures::future::BoxFuture;
use scimsync_core::Timestamp;
use scimsync_core::activity::{ActivityEntry, ActivityQuery, RunId, RunRecord, RunStatus, Trigger};
use scimsync_core::links::{GroupLink, HeldRefusal, Links, TargetFacts, UserLink};
use scimsync_core::plan::{ObjectKind, Plan};
use scimsync_core::ports::{LeaseHolder, NewRun, RunEnd, Store};
use scimsync_core::state::StoredState;
use scimsync_core::target::{TargetGroup, TargetUser};
use scimsync_core::{TargetGroupId, TargetUserId};
use scimsync_engine::clock::{self, FollowingTokioTime};
use scimsync_engine::lease::DEFAULT_LEASE_TTL;
use scimsync_engine::{
    Concern, EngineError, Job, Metrics, RunReport, RunRequest, Scheduler, SchedulerError,
    StopReason, now,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// 2026-11-26T12:00:00Z, where every test's clock starts.
const START: Timestamp = Timestamp::from_millis(1_795_694_400_000);

fn paused_clock() -> FollowingTokioTime {
    clock::follow_tokio_time(START)
}

/// What [`MemoryStore`] does not keep.
#[derive(Debug, thiserror::Error)]
enum MemoryError {
    #[error("the scheduler tests' store keeps runs and leases only, not {0}")]
    NotKept(&'static str),
    #[error("the store is unreachable (the test said so)")]
    Unreachable,
}

#[derive(Default)]
struct Kept {
    runs: Vec<RunRecord>,
    dry: Vec<bool>,
    leases: BTreeMap<String, LeaseHolder>,
}

/// Runs and leases in memory, by the rules of the `Store` port (as the SQL stores keep them):
/// a lease is taken when free, expired (`expires_at <= now`) or already the holder's, and a
/// renewal keeps when it was first taken.
#[derive(Default)]
struct MemoryStore {
    kept: Mutex<Kept>,
    /// Lease requests fail while set (a store the daemon cannot reach).
    unreachable: AtomicBool,
}

impl Store for MemoryStore {
    type Error = MemoryError;

    async fn start_run(&self, run: &NewRun) -> Result<RunId, MemoryError> {
        let mut kept = self.kept.lock().unwrap();
        let id = kept.runs.len() as RunId + 1;
        kept.runs.push(RunRecord {
            id,
            connection: run.connection.clone(),
            trigger: run.trigger,
            status: RunStatus::Running,
            started_at: run.started_at,
            finished_at: None,
            source_users: None,
            read: None,
            planned: 0,
            applied: 0,
            failed: 0,
            rejected: 0,
            skipped: 0,
            message: None,
        });
        kept.dry.push(run.dry_run);
        Ok(id)
    }

    async fn finish_run(&self, id: RunId, end: &RunEnd) -> Result<(), MemoryError> {
        let mut kept = self.kept.lock().unwrap();
        if let Some(run) = kept.runs.iter_mut().find(|r| r.id == id) {
            run.status = end.status;
            run.finished_at = Some(end.finished_at);
            run.source_users = end.source_users;
            run.planned = end.planned;
            run.applied = end.applied;
            run.failed = end.failed;
            run.rejected = end.rejected;
            run.skipped = end.skipped;
            run.message.clone_from(&end.message);
        }
        Ok(())
    }

    async fn list_runs(
        &self,
        connection: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, MemoryError> {
        let kept = self.kept.lock().unwrap();
        Ok(kept
            .runs
            .iter()
            .rev()
            .filter(|r| connection.is_none_or(|c| r.connection == c))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn last_source_count(&self, _: &str) -> Result<Option<u64>, MemoryError> {
        Err(MemoryError::NotKept("source counts"))
    }

    async fn last_success(&self, _: &str) -> Result<Option<Timestamp>, MemoryError> {
        Err(MemoryError::NotKept("last successes"))
    }

    async fn record(&self, _: &ActivityEntry) -> Result<i64, MemoryError> {
        Err(MemoryError::NotKept("the activity log"))
    }

    async fn query_activity(&self, _: &ActivityQuery) -> Result<Vec<ActivityEntry>, MemoryError> {
        Err(MemoryError::NotKept("the activity log"))
    }

    async fn logged_rejections(&self, _: &str) -> Result<HashMap<String, String>, MemoryError> {
        Err(MemoryError::NotKept("the activity log"))
    }

    async fn load_links(&self, _: &str) -> Result<Links, MemoryError> {
        Err(MemoryError::NotKept("links"))
    }

    async fn save_refusal(&self, _: &str, _: &HeldRefusal) -> Result<(), MemoryError> {
        Err(MemoryError::NotKept("refusals"))
    }

    async fn clear_refusal(
        &self,
        _: &str,
        _: ObjectKind,
        _: &str,
        _: &str,
    ) -> Result<(), MemoryError> {
        Err(MemoryError::NotKept("refusals"))
    }

    async fn clear_refusals(&self, _: &str, _: Option<&str>) -> Result<u64, MemoryError> {
        Err(MemoryError::NotKept("refusals"))
    }

    async fn save_facts(&self, _: &str, _: &TargetFacts) -> Result<(), MemoryError> {
        Err(MemoryError::NotKept("target facts"))
    }

    async fn load_state(&self, _: &str) -> Result<StoredState, MemoryError> {
        Err(MemoryError::NotKept("target state"))
    }

    async fn save_state(
        &self,
        _: &str,
        _: &[TargetUser],
        _: &[TargetGroup],
    ) -> Result<(), MemoryError> {
        Err(MemoryError::NotKept("target state"))
    }

    async fn forget_state(
        &self,
        _: &str,
        _: &[TargetUserId],
        _: &[TargetGroupId],
    ) -> Result<(), MemoryError> {
        Err(MemoryError::NotKept("target state"))
    }

    async fn mark_doubtful(
        &self,
        _: &str,
        _: &[TargetUserId],
        _: &[TargetGroupId],
    ) -> Result<(), MemoryError> {
        Err(MemoryError::NotKept("target state"))
    }

    async fn replace_state(&self, _: &str, _: &StoredState) -> Result<(), MemoryError> {
        Err(MemoryError::NotKept("target state"))
    }

    async fn save_user_link(&self, _: &str, _: &UserLink) -> Result<(), MemoryError> {
        Err(MemoryError::NotKept("links"))
    }

    async fn save_group_link(&self, _: &str, _: &GroupLink) -> Result<(), MemoryError> {
        Err(MemoryError::NotKept("links"))
    }

    async fn acquire_lease(
        &self,
        connection: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, MemoryError> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(MemoryError::Unreachable);
        }
        let mut kept = self.kept.lock().unwrap();
        let expires_at = now.plus_millis(i64::try_from(ttl.as_millis()).unwrap());
        let acquired_at = match kept.leases.get(connection) {
            Some(held) if held.holder == holder => held.acquired_at,
            Some(held) if held.expires_at > now => return Ok(false),
            _ => now,
        };
        kept.leases.insert(
            connection.to_owned(),
            LeaseHolder {
                holder: holder.to_owned(),
                acquired_at,
                expires_at,
            },
        );
        Ok(true)
    }

    async fn release_lease(&self, connection: &str, holder: &str) -> Result<(), MemoryError> {
        let mut kept = self.kept.lock().unwrap();
        if kept
            .leases
            .get(connection)
            .is_some_and(|l| l.holder == holder)
        {
            kept.leases.remove(connection);
        }
        Ok(())
    }

    async fn lease_holder(&self, connection: &str) -> Result<Option<LeaseHolder>, MemoryError> {
        Ok(self.kept.lock().unwrap().leases.get(connection).cloned())
    }

    async fn abandon_runs(
        &self,
        connection: &str,
        before: Timestamp,
        at: Timestamp,
        message: &str,
    ) -> Result<u64, MemoryError> {
        let mut kept = self.kept.lock().unwrap();
        let Kept { runs, dry, .. } = &mut *kept;
        let mut abandoned = 0;
        for (run, dry) in runs.iter_mut().zip(dry.iter()) {
            if run.connection == connection
                && run.status == RunStatus::Running
                && !dry
                && run.started_at < before
            {
                run.status = RunStatus::Abandoned;
                run.finished_at = Some(at);
                run.message = Some(message.to_owned());
                abandoned += 1;
            }
        }
        Ok(abandoned)
    }
}

fn report() -> RunReport {
    RunReport {
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
        labels: Default::default(),
        read: None,
        drifted: 0,
    }
}

/// A run that lasts `length` unless cancelled; counts its runs and keeps the stop reason of
/// the last one.
struct SlowJob {
    length: Duration,
    runs: AtomicUsize,
    reason: Mutex<Option<String>>,
}

impl SlowJob {
    fn lasting(length: Duration) -> Arc<Self> {
        Arc::new(Self {
            length,
            runs: AtomicUsize::new(0),
            reason: Mutex::new(None),
        })
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

impl Job for SlowJob {
    fn name(&self) -> &str {
        "sf"
    }
    fn run(
        &self,
        _trigger: Trigger,
        _request: RunRequest,
        cancel: CancellationToken,
        stop_reason: StopReason,
    ) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(self.length) => {}
            }
            *self.reason.lock().unwrap() = stop_reason.get().map(str::to_owned);
            if cancel.is_cancelled() {
                return Err(EngineError::UnknownUser {
                    connection: "sf".into(),
                    user: "stopped".into(),
                });
            }
            Ok(report())
        })
    }
}

fn scheduler(
    store: &Arc<MemoryStore>,
    holder: &str,
    job: &Arc<SlowJob>,
) -> Arc<Scheduler<MemoryStore>> {
    let mut s = Scheduler::new(
        Arc::clone(store),
        holder,
        Arc::new(Metrics::default()),
        CancellationToken::new(),
    );
    s.add(Arc::clone(job) as Arc<dyn Job>);
    Arc::new(s)
}

/// Lets the tasks spawned so far run until they wait on time.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn one_run_at_a_time_in_a_daemon_and_across_daemons() {
    let _clock = paused_clock();
    let store = Arc::new(MemoryStore::default());
    // Five minutes: longer than the lease's two, so only its renewals keep it.
    let job = SlowJob::lasting(Duration::from_secs(300));
    let a = scheduler(&store, "daemon-a", &job);
    let b = scheduler(&store, "daemon-b", &job);

    let started = Instant::now();
    let first = {
        let a = Arc::clone(&a);
        tokio::spawn(async move {
            a.run_now("sf", Trigger::Schedule, RunRequest::default())
                .await
        })
    };
    for seconds in [60, 250] {
        tokio::time::sleep_until(started + Duration::from_secs(seconds)).await;
        assert_eq!(job.runs(), 1);
        assert!(matches!(
            a.run_now("sf", Trigger::Api, RunRequest::default()).await,
            Err(SchedulerError::Busy(_))
        ));
        assert!(matches!(
            a.trigger("sf", RunRequest::default()),
            Err(SchedulerError::Busy(_))
        ));
        let refused = b
            .run_now("sf", Trigger::Schedule, RunRequest::default())
            .await;
        assert!(
            matches!(&refused, Err(SchedulerError::Leased { holder_note, .. }) if holder_note.contains("daemon-a")),
            "another daemon does not run it while the lease is held ({seconds} s in): {refused:?}"
        );
        let lease = store.lease_holder("sf").await.unwrap().unwrap();
        assert_eq!(lease.acquired_at, START, "renewals keep when it was taken");
        assert!(
            lease.expires_at > now(),
            "renewed ahead of its expiry ({seconds} s in)"
        );
    }
    first.await.unwrap().unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(300));
    assert_eq!(job.runs(), 1);
    assert_eq!(store.lease_holder("sf").await.unwrap(), None, "released");
    // Released at the end of the run: the other daemon may run it now.
    b.run_now("sf", Trigger::Schedule, RunRequest::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.runs(), 2);
    assert!(matches!(
        a.run_now("nope", Trigger::Api, RunRequest::default()).await,
        Err(SchedulerError::UnknownConnection(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn the_lease_of_a_dead_daemon_is_taken_over_when_it_expires() {
    let _clock = paused_clock();
    let store = Arc::new(MemoryStore::default());
    // A daemon took the lease and died without releasing it.
    assert!(
        store
            .acquire_lease("sf", "dead-daemon", now(), DEFAULT_LEASE_TTL)
            .await
            .unwrap()
    );
    let job = SlowJob::lasting(Duration::from_secs(1));
    let b = scheduler(&store, "daemon-b", &job);
    assert!(matches!(
        b.run_now("sf", Trigger::Schedule, RunRequest::default())
            .await,
        Err(SchedulerError::Leased { .. })
    ));
    tokio::time::sleep(DEFAULT_LEASE_TTL - Duration::from_millis(1)).await;
    assert!(
        matches!(
            b.run_now("sf", Trigger::Schedule, RunRequest::default())
                .await,
            Err(SchedulerError::Leased { .. })
        ),
        "a millisecond before it expires, the lease is still the dead daemon's"
    );
    assert_eq!(job.runs(), 0);
    tokio::time::sleep(Duration::from_millis(1)).await;
    b.run_now("sf", Trigger::Schedule, RunRequest::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.runs(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_run_that_loses_its_lease_is_cancelled_and_says_why() {
    let _clock = paused_clock();
    let store = Arc::new(MemoryStore::default());
    let job = SlowJob::lasting(Duration::from_secs(600));
    let s = scheduler(&store, "daemon-a", &job);
    let started = Instant::now();
    let run = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            s.run_now("sf", Trigger::Schedule, RunRequest::default())
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Another holder whose clock runs ahead takes the lease as if it had expired.
    let ahead = now().plus_millis(10 * 60_000);
    assert!(
        store
            .acquire_lease("sf", "daemon-b", ahead, DEFAULT_LEASE_TTL)
            .await
            .unwrap()
    );
    assert!(
        run.await.unwrap().unwrap().is_none(),
        "the run ended without a report"
    );
    let stopped = started.elapsed();
    assert!(
        stopped >= DEFAULT_LEASE_TTL / 3
            && stopped < DEFAULT_LEASE_TTL / 3 + Duration::from_secs(1),
        "stopped at the first renewal (every third of the lease's time to live), not after the run's 10 minutes: {stopped:?}"
    );
    let reason = job.reason.lock().unwrap().clone();
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

#[tokio::test(start_paused = true)]
async fn a_run_whose_store_fails_its_renewals_stops_before_the_lease_may_expire() {
    let _clock = paused_clock();
    let store = Arc::new(MemoryStore::default());
    let job = SlowJob::lasting(Duration::from_secs(600));
    let s = scheduler(&store, "daemon-a", &job);
    let started = Instant::now();
    let run = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            s.run_now("sf", Trigger::Schedule, RunRequest::default())
                .await
        })
    };
    settle().await;
    assert_eq!(job.runs(), 1, "the lease was taken and the run began");
    store.unreachable.store(true, Ordering::SeqCst);
    // The renewal at 40 s failed; 40 s without one is less than two thirds of the lease's
    // 120 s, so the run goes on, and /readyz says the renewals fail.
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(job.reason.lock().unwrap().clone(), None);
    let now_seconds = now().millis() as f64 / 1000.0;
    let health = s.metrics().health(now_seconds, &|_| 3600.0);
    let first_failure = START.plus_millis(40_000).millis() as f64 / 1000.0;
    assert_eq!(
        health,
        [(
            "sf".to_owned(),
            vec![Concern::LeaseRenewalFailing {
                since_seconds: first_failure,
                failures: 1
            }]
        )]
    );
    // The renewal at 80 s fails too: the lease may expire before the next, so the run stops.
    assert!(run.await.unwrap().unwrap().is_none());
    assert_eq!(started.elapsed(), Duration::from_secs(80));
    let reason = job.reason.lock().unwrap().clone().expect("told why");
    assert!(
        reason.contains("lease of connection sf could not be renewed for 80s")
            && reason.contains("the test said so"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn runs_left_running_by_a_dead_holder_are_marked_abandoned_by_the_next_holder() {
    let _clock = paused_clock();
    let store = Arc::new(MemoryStore::default());
    let dead = store
        .start_run(&NewRun {
            connection: "sf".into(),
            trigger: Trigger::Manual,
            dry_run: false,
            started_at: now().plus_millis(-5_000),
        })
        .await
        .unwrap();
    let job = SlowJob::lasting(Duration::from_secs(1));
    let b = scheduler(&store, "daemon-b", &job);
    b.run_now("sf", Trigger::Schedule, RunRequest::default())
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
    assert_eq!(run.finished_at, Some(START), "when the lease was taken");
    assert!(run.message.unwrap().contains("abandoned"));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_stops_the_run_in_flight_waits_for_it_and_starts_no_other() {
    let _clock = paused_clock();
    let store = Arc::new(MemoryStore::default());
    let job = SlowJob::lasting(Duration::from_secs(600));
    let s = scheduler(&store, "daemon-a", &job);
    let started = Instant::now();
    s.trigger("sf", RunRequest::default()).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(job.runs(), 1);
    s.shutdown().await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "the run stopped when told, not after its 10 minutes"
    );
    assert_eq!(
        job.reason.lock().unwrap().clone(),
        None,
        "a shutdown is no lost lease"
    );
    assert_eq!(
        store.lease_holder("sf").await.unwrap(),
        None,
        "released on the way out"
    );
    assert!(
        s.run_now("sf", Trigger::Api, RunRequest::default())
            .await
            .unwrap()
            .is_none(),
        "no run starts after a shutdown"
    );
    assert_eq!(job.runs(), 1);
}
