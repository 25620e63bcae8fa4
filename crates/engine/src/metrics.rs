//! Counters for `/metrics`, in the Prometheus text format.

use scimsync_core::activity::{ActivityEntry, RunStatus};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// What the daemon has done since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    runs: BTreeMap<(String, String), u64>,
    operations: BTreeMap<(String, String, String), u64>,
    last_success: BTreeMap<String, f64>,
    api_usage: BTreeMap<String, (u64, u64)>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a finished run; a successful one (rejections already logged by an earlier run
    /// leave a run successful) sets the connection's last success time.
    pub fn run_finished(&self, connection: &str, status: RunStatus, at_seconds: f64) {
        let status = crate::apply::json_str(&status);
        let mut inner = self.lock();
        *inner
            .runs
            .entry((connection.to_owned(), status.clone()))
            .or_default() += 1;
        if status == "succeeded" {
            inner.last_success.insert(connection.to_owned(), at_seconds);
        }
    }

    /// Sets the connection's last success time from the store (at start, so the gauge
    /// survives restarts); a later run already counted wins.
    pub fn restore_last_success(&self, connection: &str, at_seconds: f64) {
        let mut inner = self.lock();
        let slot = inner
            .last_success
            .entry(connection.to_owned())
            .or_insert(at_seconds);
        if *slot < at_seconds {
            *slot = at_seconds;
        }
    }

    /// Counts one recorded operation.
    pub fn operation(&self, entry: &ActivityEntry) {
        let mut inner = self.lock();
        *inner
            .operations
            .entry((
                entry.connection.clone(),
                entry.op.clone(),
                entry.outcome.as_str().to_owned(),
            ))
            .or_default() += 1;
    }

    /// The target's API usage as it last reported it (Salesforce: `Sforce-Limit-Info`).
    pub fn api_usage(&self, connection: &str, used: u64, limit: u64) {
        self.lock()
            .api_usage
            .insert(connection.to_owned(), (used, limit));
    }

    /// The Prometheus text exposition of every counter.
    pub fn render_prometheus(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        out.push_str("# HELP scimsync_runs_total Reconcile runs by connection and final status.\n# TYPE scimsync_runs_total counter\n");
        for ((c, s), n) in &inner.runs {
            let _ = writeln!(
                out,
                "scimsync_runs_total{{connection=\"{}\",status=\"{}\"}} {n}",
                esc(c),
                esc(s)
            );
        }
        out.push_str("# HELP scimsync_operations_total Operations by connection, kind and outcome.\n# TYPE scimsync_operations_total counter\n");
        for ((c, op, o), n) in &inner.operations {
            let _ = writeln!(
                out,
                "scimsync_operations_total{{connection=\"{}\",op=\"{}\",outcome=\"{}\"}} {n}",
                esc(c),
                esc(op),
                esc(o)
            );
        }
        out.push_str("# HELP scimsync_last_success_timestamp_seconds End of the last successful run.\n# TYPE scimsync_last_success_timestamp_seconds gauge\n");
        for (c, t) in &inner.last_success {
            let _ = writeln!(
                out,
                "scimsync_last_success_timestamp_seconds{{connection=\"{}\"}} {t}",
                esc(c)
            );
        }
        out.push_str("# HELP scimsync_target_api_usage Target API calls used and allowed, as the target reports them.\n# TYPE scimsync_target_api_usage gauge\n");
        for (c, (used, limit)) in &inner.api_usage {
            let _ = writeln!(
                out,
                "scimsync_target_api_usage{{connection=\"{}\",kind=\"used\"}} {used}",
                esc(c)
            );
            let _ = writeln!(
                out,
                "scimsync_target_api_usage{{connection=\"{}\",kind=\"limit\"}} {limit}",
                esc(c)
            );
        }
        out
    }
}

fn esc(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        let m = Metrics::default();
        m.run_finished("sales\"force", RunStatus::Succeeded, 12.5);
        m.run_finished("sales\"force", RunStatus::Succeeded, 13.0);
        m.api_usage("x", 10, 100);
        let text = m.render_prometheus();
        assert!(
            text.contains(
                "scimsync_runs_total{connection=\"sales\\\"force\",status=\"succeeded\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "scimsync_last_success_timestamp_seconds{connection=\"sales\\\"force\"} 13"
            ),
            "{text}"
        );
        assert!(
            text.contains("scimsync_target_api_usage{connection=\"x\",kind=\"limit\"} 100"),
            "{text}"
        );
    }
}
