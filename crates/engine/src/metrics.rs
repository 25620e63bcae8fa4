//! What the daemon knows of each connection: the counters and gauges of `/metrics` (Prometheus
//! text, rendered by `prometheus-client`), and the state `/readyz` and `/healthz` judge
//! ([`Metrics::health`]).
//!
//! One metric per quantity: every metric has a `connection` label and at most the labels that
//! split one quantity (`status`, `op`, `outcome`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use scimsync_core::activity::{ActivityEntry, RunStatus};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];
type Labels3 = [(&'static str, String); 3];
type Seconds = Gauge<f64, AtomicU64>;

/// The statuses a finished run can have (the values of `scimsync_last_run_status`).
const FINISHED: [RunStatus; 5] = [
    RunStatus::Succeeded,
    RunStatus::Partial,
    RunStatus::Failed,
    RunStatus::Guarded,
    RunStatus::Interrupted,
];

/// How a run of the scheduler ended, for the metrics and the health of its connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinishedRun {
    pub status: RunStatus,
    /// When it ended (seconds since the Unix epoch).
    pub at_seconds: f64,
    /// How long it took (seconds); `None` when unknown (restored from the store).
    pub duration_seconds: Option<f64>,
    /// Deactivations the guard held back (0 when it did not trip); `None`: unknown (the run
    /// failed before planning), the last known count stays.
    pub guard_held: Option<u64>,
    /// Writes the target refused, in this run or earlier, held and not sent again; `None`:
    /// unknown, the last known count stays.
    pub held_refusals: Option<u64>,
}

/// What the daemon counts and knows of its connections.
pub struct Metrics {
    registry: Registry,
    runs: Family<Labels2, Counter>,
    operations: Family<Labels3, Counter>,
    last_status: Family<Labels2, Gauge>,
    last_success: Family<Labels1, Seconds>,
    last_duration: Family<Labels1, Seconds>,
    guard_held: Family<Labels1, Gauge>,
    held_refusals: Family<Labels1, Gauge>,
    next_run: Family<Labels1, Seconds>,
    running_since: Family<Labels1, Seconds>,
    api_used: Family<Labels1, Gauge>,
    api_limit: Family<Labels1, Gauge>,
    state: Mutex<BTreeMap<String, ConnectionState>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What `/readyz` judges a connection on.
#[derive(Debug, Clone, Default, PartialEq)]
struct ConnectionState {
    /// The last finished run: its status and end.
    last: Option<(RunStatus, f64)>,
    guard_held: u64,
    /// Since when a run of this process has been going.
    running_since: Option<f64>,
    /// Consecutive failed lease renewals, and since when.
    renewal_failures: u32,
    renewal_failing_since: Option<f64>,
}

/// Why a connection is not ready.
#[derive(Debug, Clone, PartialEq)]
pub enum Concern {
    /// Its last run failed (nothing could be done).
    LastRunFailed { at_seconds: f64 },
    /// Its last run was stopped by the guard, holding deactivations back.
    GuardHolds { deactivations: u64 },
    /// A run has been going for longer than the bound.
    Stuck {
        since_seconds: f64,
        bound_seconds: f64,
    },
    /// The lease of the run in flight could not be renewed, `failures` times in a row.
    LeaseRenewalFailing { since_seconds: f64, failures: u32 },
}

impl Concern {
    /// A short name: `failed`, `guarded`, `stuck`, `lease`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LastRunFailed { .. } => "failed",
            Self::GuardHolds { .. } => "guarded",
            Self::Stuck { .. } => "stuck",
            Self::LeaseRenewalFailing { .. } => "lease",
        }
    }

    /// One line for people, given the time now (seconds since the epoch).
    pub fn describe(&self, now_seconds: f64) -> String {
        let ago = |t: f64| (now_seconds - t).max(0.0).round() as u64;
        match self {
            Self::LastRunFailed { at_seconds } => {
                format!("the last run failed ({}s ago)", ago(*at_seconds))
            }
            Self::GuardHolds { deactivations } => format!(
                "the guard holds {deactivations} deactivation(s) back: review the plan and approve it"
            ),
            Self::Stuck {
                since_seconds,
                bound_seconds,
            } => format!(
                "a run has been going for {}s, longer than {}s",
                ago(*since_seconds),
                bound_seconds.round() as u64
            ),
            Self::LeaseRenewalFailing {
                since_seconds,
                failures,
            } => format!(
                "renewing the run's lease failed {failures} time(s) in a row (for {}s)",
                ago(*since_seconds)
            ),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(env!("CARGO_PKG_VERSION"))
    }
}

fn conn(connection: &str) -> Labels1 {
    [("connection", connection.to_owned())]
}

impl Metrics {
    /// Metrics of a daemon of this version (`scimsync_build_info{version=…} 1`).
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::default();
        let runs = Family::<Labels2, Counter>::default();
        registry.register(
            "scimsync_runs",
            "Runs finished since the daemon started, by connection and final status",
            runs.clone(),
        );
        let operations = Family::<Labels3, Counter>::default();
        registry.register(
            "scimsync_operations",
            "Operations recorded since the daemon started, by connection, kind and outcome",
            operations.clone(),
        );
        let last_status = Family::<Labels2, Gauge>::default();
        registry.register(
            "scimsync_last_run_status",
            "1 for the status of the connection's last finished run, 0 for the others",
            last_status.clone(),
        );
        let last_success = Family::<Labels1, Seconds>::default();
        registry.register_with_unit(
            "scimsync_last_success_timestamp",
            "End of the connection's last succeeded run (Unix time)",
            Unit::Seconds,
            last_success.clone(),
        );
        let last_duration = Family::<Labels1, Seconds>::default();
        registry.register_with_unit(
            "scimsync_last_run_duration",
            "How long the connection's last finished run took",
            Unit::Seconds,
            last_duration.clone(),
        );
        let guard_held = Family::<Labels1, Gauge>::default();
        registry.register(
            "scimsync_guard_held_deactivations",
            "Deactivations the guard held back in the connection's last run (0: none)",
            guard_held.clone(),
        );
        let held_refusals = Family::<Labels1, Gauge>::default();
        registry.register(
            "scimsync_held_refusals",
            "Writes the target refused, held and not sent again, as of the last run",
            held_refusals.clone(),
        );
        let next_run = Family::<Labels1, Seconds>::default();
        registry.register_with_unit(
            "scimsync_next_run_timestamp",
            "When the scheduler next runs the connection (Unix time)",
            Unit::Seconds,
            next_run.clone(),
        );
        let running_since = Family::<Labels1, Seconds>::default();
        registry.register_with_unit(
            "scimsync_run_started_timestamp",
            "Start of the connection's run in flight in this daemon (Unix time; 0: none)",
            Unit::Seconds,
            running_since.clone(),
        );
        let api_used = Family::<Labels1, Gauge>::default();
        registry.register(
            "scimsync_target_api_calls_used",
            "Target API calls used, as the target last reported them",
            api_used.clone(),
        );
        let api_limit = Family::<Labels1, Gauge>::default();
        registry.register(
            "scimsync_target_api_calls_limit",
            "Target API calls allowed, as the target last reported them",
            api_limit.clone(),
        );
        registry.register(
            "scimsync_build",
            "The running scimsync's version",
            Info::new([("version", version.to_owned())]),
        );
        Self {
            registry,
            runs,
            operations,
            last_status,
            last_success,
            last_duration,
            guard_held,
            held_refusals,
            next_run,
            running_since,
            api_used,
            api_limit,
            state: Mutex::new(BTreeMap::new()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ConnectionState>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the connection known: its gauges are shown (at 0) before its first run.
    pub fn add_connection(&self, connection: &str) {
        self.state().entry(connection.to_owned()).or_default();
        let labels = conn(connection);
        self.running_since.get_or_create(&labels).set(0.0);
        self.guard_held.get_or_create(&labels).set(0);
    }

    /// A run of the connection started in this daemon (after its lease was taken).
    pub fn run_started(&self, connection: &str, at_seconds: f64) {
        let mut state = self.state();
        let s = state.entry(connection.to_owned()).or_default();
        s.running_since = Some(at_seconds);
        s.renewal_failures = 0;
        s.renewal_failing_since = None;
        self.running_since
            .get_or_create(&conn(connection))
            .set(at_seconds);
    }

    /// Counts a finished run and keeps its status, duration, guard and refusal counts; a
    /// succeeded one (rejections already logged by an earlier run leave a run succeeded) sets
    /// the connection's last success time.
    pub fn run_finished(&self, connection: &str, run: &FinishedRun) {
        let status = crate::apply::json_str(&run.status);
        self.runs
            .get_or_create(&[
                ("connection", connection.to_owned()),
                ("status", status.clone()),
            ])
            .inc();
        self.set_last(connection, run);
        let mut state = self.state();
        let s = state.entry(connection.to_owned()).or_default();
        s.running_since = None;
        s.renewal_failures = 0;
        s.renewal_failing_since = None;
        self.running_since.get_or_create(&conn(connection)).set(0.0);
    }

    /// The connection's last run as the store has it (at start, so the gauges and `/readyz`
    /// survive restarts); a run counted since wins.
    pub fn restore_last_run(&self, connection: &str, run: &FinishedRun) {
        let known = self.state().get(connection).and_then(|s| s.last);
        if known.is_none_or(|(_, at)| at < run.at_seconds) {
            self.set_last(connection, run);
        }
    }

    fn set_last(&self, connection: &str, run: &FinishedRun) {
        let labels = conn(connection);
        for s in FINISHED {
            let name = crate::apply::json_str(&s);
            self.last_status
                .get_or_create(&[("connection", connection.to_owned()), ("status", name)])
                .set(i64::from(s == run.status));
        }
        if run.status == RunStatus::Succeeded {
            self.restore_last_success(connection, run.at_seconds);
        }
        if let Some(d) = run.duration_seconds {
            self.last_duration.get_or_create(&labels).set(d);
        }
        if let Some(n) = run.held_refusals {
            self.held_refusals
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut state = self.state();
        let s = state.entry(connection.to_owned()).or_default();
        s.last = Some((run.status, run.at_seconds));
        if let Some(n) = run.guard_held {
            s.guard_held = n;
            self.guard_held
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Sets the connection's last success time (from the store at start, so the gauge
    /// survives restarts); a later one already known wins.
    pub fn restore_last_success(&self, connection: &str, at_seconds: f64) {
        let gauge = self.last_success.get_or_create(&conn(connection));
        if gauge.get() < at_seconds {
            gauge.set(at_seconds);
        }
    }

    /// When the scheduler next runs the connection.
    pub fn next_run(&self, connection: &str, at_seconds: f64) {
        self.next_run
            .get_or_create(&conn(connection))
            .set(at_seconds);
    }

    /// A renewal of the lease of the connection's run in flight succeeded (`ok`) or failed.
    pub fn lease_renewal(&self, connection: &str, ok: bool, at_seconds: f64) {
        let mut state = self.state();
        let s = state.entry(connection.to_owned()).or_default();
        if ok {
            s.renewal_failures = 0;
            s.renewal_failing_since = None;
        } else {
            s.renewal_failures += 1;
            s.renewal_failing_since.get_or_insert(at_seconds);
        }
    }

    /// Counts one recorded operation.
    pub fn operation(&self, entry: &ActivityEntry) {
        self.operations
            .get_or_create(&[
                ("connection", entry.connection.clone()),
                ("op", entry.op.clone()),
                ("outcome", entry.outcome.as_str().to_owned()),
            ])
            .inc();
    }

    /// The target's API usage as it last reported it (Salesforce: `Sforce-Limit-Info`).
    pub fn api_usage(&self, connection: &str, used: u64, limit: u64) {
        let labels = conn(connection);
        self.api_used
            .get_or_create(&labels)
            .set(i64::try_from(used).unwrap_or(i64::MAX));
        self.api_limit
            .get_or_create(&labels)
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// What keeps each connection from being ready, at `now_seconds`; `stuck_after` gives a
    /// connection's bound on a run's length (seconds). Connections without concern are left
    /// out.
    pub fn health(
        &self,
        now_seconds: f64,
        stuck_after: &dyn Fn(&str) -> f64,
    ) -> Vec<(String, Vec<Concern>)> {
        let state = self.state();
        let mut out = Vec::new();
        for (name, s) in state.iter() {
            let mut concerns = Vec::new();
            // A run in flight says nothing yet of the last one's failure being fixed, but its
            // guard verdict is replaced by the run's own.
            match s.last {
                Some((RunStatus::Failed, at)) => {
                    concerns.push(Concern::LastRunFailed { at_seconds: at })
                }
                Some((RunStatus::Guarded, _)) if s.guard_held > 0 => {
                    concerns.push(Concern::GuardHolds {
                        deactivations: s.guard_held,
                    })
                }
                _ => {}
            }
            if let Some(since) = s.running_since {
                let bound = stuck_after(name);
                if now_seconds - since > bound {
                    concerns.push(Concern::Stuck {
                        since_seconds: since,
                        bound_seconds: bound,
                    });
                }
                if let (Some(since), n) = (s.renewal_failing_since, s.renewal_failures)
                    && n > 0
                {
                    concerns.push(Concern::LeaseRenewalFailing {
                        since_seconds: since,
                        failures: n,
                    });
                }
            }
            if !concerns.is_empty() {
                out.push((name.clone(), concerns));
            }
        }
        out
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The `Content-Type` of [`Metrics::render_prometheus`].
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(status: RunStatus, at: f64) -> FinishedRun {
        FinishedRun {
            status,
            at_seconds: at,
            duration_seconds: Some(2.5),
            guard_held: Some(0),
            held_refusals: Some(3),
        }
    }

    #[test]
    fn renders_one_metric_per_quantity_with_escaped_labels() {
        let m = Metrics::new("1.2.3");
        m.run_finished("sales\"force", &finished(RunStatus::Succeeded, 12.5));
        m.run_finished("sales\"force", &finished(RunStatus::Succeeded, 13.0));
        m.api_usage("x", 10, 100);
        m.next_run("x", 1_800.0);
        let text = m.render_prometheus();
        for line in [
            "scimsync_runs_total{connection=\"sales\\\"force\",status=\"succeeded\"} 2",
            "scimsync_last_success_timestamp_seconds{connection=\"sales\\\"force\"} 13.0",
            "scimsync_last_run_status{connection=\"sales\\\"force\",status=\"succeeded\"} 1",
            "scimsync_last_run_status{connection=\"sales\\\"force\",status=\"failed\"} 0",
            "scimsync_last_run_duration_seconds{connection=\"sales\\\"force\"} 2.5",
            "scimsync_held_refusals{connection=\"sales\\\"force\"} 3",
            "scimsync_target_api_calls_used{connection=\"x\"} 10",
            "scimsync_target_api_calls_limit{connection=\"x\"} 100",
            "scimsync_next_run_timestamp_seconds{connection=\"x\"} 1800.0",
            "scimsync_build_info{version=\"1.2.3\"} 1",
            "# TYPE scimsync_runs_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn health_names_failed_guarded_stuck_and_lease_troubles() {
        let m = Metrics::default();
        for c in ["ok", "failed", "guarded", "stuck"] {
            m.add_connection(c);
        }
        m.run_finished("ok", &finished(RunStatus::Succeeded, 100.0));
        m.run_finished("failed", &finished(RunStatus::Failed, 100.0));
        m.run_finished(
            "guarded",
            &FinishedRun {
                guard_held: Some(7),
                ..finished(RunStatus::Guarded, 100.0)
            },
        );
        m.run_started("stuck", 100.0);
        m.lease_renewal("stuck", false, 140.0);
        m.lease_renewal("stuck", false, 180.0);
        let health = m.health(200.0, &|_| 60.0);
        let names: Vec<&str> = health.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["failed", "guarded", "stuck"]);
        assert_eq!(health[1].1, [Concern::GuardHolds { deactivations: 7 }]);
        assert_eq!(
            health[2].1,
            [
                Concern::Stuck {
                    since_seconds: 100.0,
                    bound_seconds: 60.0
                },
                Concern::LeaseRenewalFailing {
                    since_seconds: 140.0,
                    failures: 2
                }
            ]
        );
        assert_eq!(
            health[2].1[0].describe(200.0),
            "a run has been going for 100s, longer than 60s"
        );
        // Within the bound, a run is not stuck; a renewal that works again clears the lease.
        m.lease_renewal("stuck", true, 190.0);
        assert!(m.health(150.0, &|_| 60.0).iter().all(|(n, _)| n != "stuck"));
        // A later success clears a failure; a restored older run does not undo it.
        m.run_finished("failed", &finished(RunStatus::Succeeded, 300.0));
        m.restore_last_run("failed", &finished(RunStatus::Failed, 50.0));
        assert!(
            m.health(400.0, &|_| 60.0)
                .iter()
                .all(|(n, _)| n != "failed")
        );
    }
}
