//! Runs connections on cron schedules; a connection never runs twice at once.
//!
//! Two locks guard a connection: an in-process one (a second trigger while a run is in flight
//! is refused), and the store's lease, so that several daemons sharing one PostgreSQL database
//! never run the same connection together. The lease has a time to live and is renewed while
//! the run lasts; when its holder dies, the lease expires and another daemon takes over.
//!
//! Schedules are cron expressions read in UTC: five fields, minute first, as in crontab
//! (`*/15 * * * *` = every 15 minutes), or six with seconds first as tokio-cron-scheduler reads
//! them (`0 */15 * * * *`). A five-field expression runs at second 0 ([`cron_expression`]).

use crate::clock::now;
use crate::lease::{self, DEFAULT_LEASE_TTL};
use crate::metrics::{FinishedRun, Metrics};
use crate::run::{EngineError, RunReport, StopReason};
use futures::future::BoxFuture;
use scimsync_core::Timestamp;
use scimsync_core::activity::Trigger;
use scimsync_core::plan::Operation;
use scimsync_core::ports::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// What a run started by hand (or by the API) asks for beyond its connection's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// Apply the destructive operations the guard would hold back.
    pub approve: bool,
    /// Read the whole target, repair and report drift (`reconcile --full`), whatever the
    /// connection's `full_every` says.
    pub full: bool,
}

/// One connection's run, type-erased so connections with different sources and targets share a
/// scheduler.
pub trait Job: Send + Sync {
    fn name(&self) -> &str;
    /// Runs once; `cancel` stops it (shutdown, or a lost lease: then `stop_reason` says so and
    /// belongs in the run's options).
    fn run(
        &self,
        trigger: Trigger,
        request: RunRequest,
        cancel: CancellationToken,
        stop_reason: StopReason,
    ) -> BoxFuture<'_, Result<RunReport, EngineError>>;

    /// Runs applying destructive operations only if the plan made now has the fingerprint
    /// `plan` (see [`crate::RunOptions::approve_plan`]). Jobs that cannot check a plan run
    /// unapproved.
    fn run_approving_plan(
        &self,
        trigger: Trigger,
        plan: String,
        cancel: CancellationToken,
        stop_reason: StopReason,
    ) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        let _ = plan;
        self.run(trigger, RunRequest::default(), cancel, stop_reason)
    }
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("no connection named {0:?}")]
    UnknownConnection(String),
    #[error("connection {0:?} is already running")]
    Busy(String),
    #[error("connection {connection:?} is being run by another daemon ({holder_note})")]
    Leased {
        connection: String,
        holder_note: String,
    },
    #[error("the lease of connection {connection:?} could not be taken")]
    Lease {
        connection: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "schedule {schedule:?} of connection {connection:?} is not valid (five fields as in crontab, \"*/15 * * * *\", or six with seconds first, \"0 */15 * * * *\")"
    )]
    Schedule {
        connection: String,
        schedule: String,
        #[source]
        source: tokio_cron_scheduler::JobSchedulerError,
    },
    #[error("the scheduler failed")]
    Scheduler(#[source] tokio_cron_scheduler::JobSchedulerError),
}

/// The timezone schedules are read in.
pub const SCHEDULE_TIMEZONE: &str = "UTC";

/// A schedule as the scheduler's parser reads it: six fields, seconds first. A five-field
/// (crontab) expression gets second 0 in front; anything else is left as it is.
pub fn cron_expression(schedule: &str) -> std::borrow::Cow<'_, str> {
    if schedule.split_whitespace().count() == 5 {
        std::borrow::Cow::Owned(format!("0 {}", schedule.trim()))
    } else {
        std::borrow::Cow::Borrowed(schedule)
    }
}

/// Checks a schedule with the very parser the scheduler uses (for `check` and configuration
/// validation): five fields (minute first) or six (seconds first).
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    tokio_cron_scheduler::Job::new_async(cron_expression(schedule).as_ref(), |_id, _lock| {
        Box::pin(async {})
    })
    .map(|_| ())
    .map_err(|e| {
        format!(
            "{schedule:?} is not a cron schedule the scheduler accepts (five fields as in crontab, such as \"*/15 * * * *\", or six with seconds first, such as \"0 */15 * * * *\"): {e}"
        )
    })
}

/// Logs when the scheduler `$cron` next runs connection `$connection` (job `$id`), in UTC
/// (RFC 3339 with `Z`). A macro, so the cron crate's id and time types need no naming here.
/// The time is also the metric `scimsync_next_run_timestamp_seconds` of `$metrics`.
macro_rules! log_next_run {
    ($cron:expr, $id:expr, $connection:expr, $metrics:expr) => {
        match $cron.next_tick_for_job($id).await {
            Ok(Some(next)) => {
                $metrics.next_run(&$connection, next.timestamp_millis() as f64 / 1000.0);
                info!(
                    connection = %$connection,
                    next = %next.format("%Y-%m-%dT%H:%M:%SZ"),
                    "Next run scheduled."
                )
            }
            Ok(None) => info!(connection = %$connection, "No further run scheduled."),
            Err(e) => warn!(connection = %$connection, error = %e, "Cannot tell the next run time."),
        }
    };
}

/// Seconds since the Unix epoch, as the metrics count time.
fn seconds(at: Timestamp) -> f64 {
    at.millis() as f64 / 1000.0
}

struct Entry {
    job: Arc<dyn Job>,
    running: AsyncMutex<()>,
}

/// The daemon's scheduler.
pub struct Scheduler<St> {
    store: Arc<St>,
    holder: String,
    lease_ttl: Duration,
    jobs: BTreeMap<String, Arc<Entry>>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    cron: AsyncMutex<Option<tokio_cron_scheduler::JobScheduler>>,
}

impl<St> std::fmt::Debug for Scheduler<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("holder", &self.holder)
            .field("jobs", &self.jobs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<St: Store + 'static> Scheduler<St> {
    /// `holder` names this daemon in leases (host and process id, say).
    pub fn new(
        store: Arc<St>,
        holder: impl Into<String>,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            store,
            holder: holder.into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            jobs: BTreeMap::new(),
            metrics,
            cancel,
            tracker: TaskTracker::new(),
            cron: AsyncMutex::new(None),
        }
    }

    /// How long a lease lasts without renewal (renewed every third of it during a run).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Adds a connection, run on `schedule` once [`Scheduler::start`] is called (`None`: only on
    /// demand).
    pub fn add(&mut self, job: Arc<dyn Job>) {
        let name = job.name().to_owned();
        self.metrics.add_connection(&name);
        self.jobs.insert(
            name,
            Arc::new(Entry {
                job,
                running: AsyncMutex::new(()),
            }),
        );
    }

    /// Starts the cron schedules: `(connection, schedule)` pairs.
    pub async fn start(
        self: &Arc<Self>,
        schedules: &[(String, String)],
    ) -> Result<(), SchedulerError>
    where
        St: Send + Sync,
    {
        let cron = tokio_cron_scheduler::JobScheduler::new()
            .await
            .map_err(SchedulerError::Scheduler)?;
        let mut ids = Vec::new();
        for (name, schedule) in schedules {
            if !self.jobs.contains_key(name) {
                return Err(SchedulerError::UnknownConnection(name.clone()));
            }
            let me = Arc::clone(self);
            let conn = name.clone();
            let job = tokio_cron_scheduler::Job::new_async(cron_expression(schedule).as_ref(), move |id, mut cron| {
                let me = Arc::clone(&me);
                let conn = conn.clone();
                Box::pin(async move {
                    let ran = me
                        .run_now(&conn, Trigger::Schedule, RunRequest::default())
                        .await;
                    match ran {
                        Ok(_) => {}
                        Err(SchedulerError::Busy(_)) | Err(SchedulerError::Leased { .. }) => {
                            info!(connection = %conn, "Scheduled run skipped: the connection is running elsewhere.");
                        }
                        Err(e) => warn!(connection = %conn, error = %e, "Scheduled run not started."),
                    }
                    log_next_run!(cron, id, conn, me.metrics);
                })
            })
            .map_err(|source| SchedulerError::Schedule {
                connection: name.clone(),
                schedule: schedule.clone(),
                source,
            })?;
            let id = cron.add(job).await.map_err(SchedulerError::Scheduler)?;
            ids.push((id, name.clone()));
        }
        cron.start().await.map_err(SchedulerError::Scheduler)?;
        let mut cron = cron;
        for (id, name) in &ids {
            log_next_run!(cron, *id, name, self.metrics);
        }
        *self.cron.lock().await = Some(cron);
        Ok(())
    }

    /// Starts a run in the background (for `POST /connections/{name}/sync`); refuses when the
    /// connection is running here.
    pub fn trigger(self: &Arc<Self>, name: &str, request: RunRequest) -> Result<(), SchedulerError>
    where
        St: Send + Sync,
    {
        let entry = self
            .jobs
            .get(name)
            .ok_or_else(|| SchedulerError::UnknownConnection(name.to_owned()))?;
        if entry.running.try_lock().is_err() {
            return Err(SchedulerError::Busy(name.to_owned()));
        }
        let me = Arc::clone(self);
        let name = name.to_owned();
        self.tracker.spawn(async move {
            if let Err(e) = me.run_now(&name, Trigger::Api, request).await {
                warn!(connection = %name, error = %e, "Triggered run not started.");
            }
        });
        Ok(())
    }

    /// Runs a connection now and waits for the report.
    pub async fn run_now(
        &self,
        name: &str,
        trigger: Trigger,
        request: RunRequest,
    ) -> Result<Option<RunReport>, SchedulerError> {
        self.run_job(name, trigger, request, None).await
    }

    /// Runs a connection now approving its destructive operations only if the plan made has
    /// the fingerprint `plan` (the plan an operator was shown), and waits for the report.
    pub async fn run_now_approving_plan(
        &self,
        name: &str,
        trigger: Trigger,
        plan: String,
    ) -> Result<Option<RunReport>, SchedulerError> {
        self.run_job(name, trigger, RunRequest::default(), Some(plan))
            .await
    }

    async fn run_job(
        &self,
        name: &str,
        trigger: Trigger,
        request: RunRequest,
        plan: Option<String>,
    ) -> Result<Option<RunReport>, SchedulerError> {
        let entry = self
            .jobs
            .get(name)
            .ok_or_else(|| SchedulerError::UnknownConnection(name.to_owned()))?;
        let Ok(_running) = entry.running.try_lock() else {
            return Err(SchedulerError::Busy(name.to_owned()));
        };
        if self.cancel.is_cancelled() {
            return Ok(None);
        }
        let metrics = Arc::clone(&self.metrics);
        let conn = name.to_owned();
        let hook: lease::RenewalHook = Arc::new(move |ok| {
            metrics.lease_renewal(&conn, ok, seconds(now()));
        });
        let lease = lease::take_watched(
            &self.store,
            name,
            &self.holder,
            self.lease_ttl,
            &self.cancel,
            Some(hook),
        )
        .await
        .map_err(|e| SchedulerError::Lease {
            connection: name.to_owned(),
            source: Box::new(e),
        })?;
        let lease = match lease {
            Ok(held) => held,
            Err(busy) => {
                return Err(SchedulerError::Leased {
                    connection: name.to_owned(),
                    holder_note: busy.to_string(),
                });
            }
        };
        let started = tokio::time::Instant::now();
        self.metrics.run_started(name, seconds(now()));
        let result = match plan {
            Some(plan) => {
                entry
                    .job
                    .run_approving_plan(trigger, plan, lease.cancel(), lease.reason())
                    .await
            }
            None => {
                entry
                    .job
                    .run(trigger, request, lease.cancel(), lease.reason())
                    .await
            }
        };
        lease.release().await;
        let duration_seconds = Some(started.elapsed().as_secs_f64());
        match result {
            Ok(report) => {
                // An approved run may report the guard's verdict yet apply what it held.
                let guard_held = if report.status == scimsync_core::activity::RunStatus::Guarded {
                    report
                        .plan
                        .operations
                        .iter()
                        .filter(|op| matches!(op, Operation::DeactivateUser { .. }))
                        .count() as u64
                } else {
                    0
                };
                self.metrics.run_finished(
                    name,
                    &FinishedRun {
                        status: report.status,
                        at_seconds: seconds(now()),
                        duration_seconds,
                        guard_held: Some(guard_held),
                        held_refusals: Some(report.held + report.refused),
                    },
                );
                Ok(Some(report))
            }
            Err(e) => {
                self.metrics.run_finished(
                    name,
                    &FinishedRun {
                        status: scimsync_core::activity::RunStatus::Failed,
                        at_seconds: seconds(now()),
                        duration_seconds,
                        guard_held: None,
                        held_refusals: None,
                    },
                );
                error!(connection = %name, error = %crate::run::chain(&e), "Run failed.");
                Ok(None)
            }
        }
    }

    /// Stops starting runs and waits for those in flight (they finish their current operation,
    /// record it and mark the run interrupted).
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        if let Some(mut cron) = self.cron.lock().await.take()
            && let Err(e) = cron.shutdown().await
        {
            warn!(error = %e, "Stopping the cron schedules failed.");
        }
        self.tracker.close();
        self.tracker.wait().await;
        for entry in self.jobs.values() {
            let _ = entry.running.lock().await;
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn connections(&self) -> impl Iterator<Item = &str> {
        self.jobs.keys().map(String::as_str)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod schedule_tests {
    use super::*;

    #[test]
    fn five_field_schedules_run_at_second_zero_and_six_fields_are_kept() {
        assert_eq!(cron_expression("*/15 * * * *"), "0 */15 * * * *");
        assert_eq!(cron_expression(" 0 2 * * Mon-Fri "), "0 0 2 * * Mon-Fri");
        assert_eq!(cron_expression("30 0 2 * * Mon-Fri"), "30 0 2 * * Mon-Fri");
        assert!(check_schedule("*/15 * * * *").is_ok());
        assert!(check_schedule("0 */15 * * * *").is_ok());
        let err = check_schedule("99 * * * *").unwrap_err();
        assert!(err.contains("five fields as in crontab"), "{err}");
    }
}
