//! Runs: one row per reconcile, opened by `start_run` and closed by `finish_run`.

use crate::SqlStore;
use crate::backend::with_pool;
use crate::columns::{RunRow, count_column, status_text, trigger_text};
use crate::error::StoreError;
use scimsync_core::activity::{Outcome, RunId, RunRecord, RunStatus};
use scimsync_core::ports::{NewRun, RunEnd};
use scimsync_core::time::Timestamp;
use std::collections::HashMap;
use std::time::Duration;

macro_rules! select_runs {
    () => {
        "SELECT id, connection, triggered_by, status, started_at, finished_at, source_users, \
         planned, applied, failed, rejected, skipped, message, read FROM runs"
    };
}

/// Runs whose activity `runs_with_stats` counts in one query.
const RUNS_PER_COUNT_QUERY: usize = 500;

/// A run with what `scimsync runs` shows beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStats {
    pub run: RunRecord,
    /// From start to finish; `None` while the run is going (or if the clock went backwards).
    pub duration: Option<Duration>,
    /// The run's entries in the activity log, by outcome. Unlike the counts in [`RunRecord`]
    /// (written at the end), these move while the run is going.
    pub recorded: OutcomeCounts,
}

/// Activity entries counted by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub ok: u64,
    pub failed: u64,
    pub rejected: u64,
    pub skipped: u64,
}

impl OutcomeCounts {
    pub fn total(&self) -> u64 {
        self.ok + self.failed + self.rejected + self.skipped
    }

    fn add(&mut self, outcome: Outcome, n: u64) {
        let slot = match outcome {
            Outcome::Ok => &mut self.ok,
            Outcome::Failed => &mut self.failed,
            Outcome::Rejected => &mut self.rejected,
            Outcome::Skipped => &mut self.skipped,
        };
        *slot += n;
    }
}

impl SqlStore {
    pub(crate) async fn insert_run(&self, run: &NewRun) -> Result<RunId, StoreError> {
        const SQL: &str = "INSERT INTO runs (connection, triggered_by, dry_run, status, started_at) \
                           VALUES ($1, $2, $3, $4, $5) RETURNING id";
        let result: Result<i64, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query_scalar(SQL)
                .bind(&run.connection)
                .bind(trigger_text(run.trigger))
                .bind(run.dry_run)
                .bind(status_text(RunStatus::Running))
                .bind(run.started_at.millis())
                .fetch_one(pool)
                .await
        });
        let id = result.map_err(|source| StoreError::StartRun {
            connection: run.connection.clone(),
            source,
        })?;
        tracing::debug!(run_id = id, connection = %run.connection, "Run started.");
        Ok(id)
    }

    pub(crate) async fn update_run(&self, id: RunId, end: &RunEnd) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE runs SET status = $2, finished_at = $3, source_users = $4, planned = $5, \
                           applied = $6, failed = $7, rejected = $8, skipped = $9, message = $10, read = $11 WHERE id = $1";
        let result = with_pool!(&self.backend, |pool| {
            sqlx::query(SQL)
                .bind(id)
                .bind(status_text(end.status))
                .bind(end.finished_at.millis())
                .bind(end.source_users.map(count_column))
                .bind(count_column(end.planned))
                .bind(count_column(end.applied))
                .bind(count_column(end.failed))
                .bind(count_column(end.rejected))
                .bind(count_column(end.skipped))
                .bind(
                    end.message
                        .as_deref()
                        .map(|m| crate::activity::capped(m, crate::activity::MAX_DETAIL_CHARS)),
                )
                .bind(end.read.as_deref())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        });
        match result {
            Ok(0) => Err(StoreError::RunNotFound { run_id: id }),
            Ok(_) => Ok(()),
            Err(source) => Err(StoreError::FinishRun { run_id: id, source }),
        }
    }

    pub(crate) async fn select_runs(
        &self,
        connection: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.select_runs_since(connection, None, limit).await
    }

    /// Runs newest first, of one connection or all, started at or after `since` if given.
    async fn select_runs_since(
        &self,
        connection: Option<&str>,
        since: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows: Result<Vec<RunRow>, sqlx::Error> = with_pool!(&self.backend, |pool| {
            let mut sql = sqlx::QueryBuilder::new(select_runs!());
            push_run_filters(&mut sql, connection, since);
            sql.push(" ORDER BY started_at DESC, id DESC LIMIT ")
                .push_bind(i64::from(limit));
            sql.build_query_as().fetch_all(pool).await
        });
        rows.map_err(|source| StoreError::ListRuns { source })?
            .into_iter()
            .map(RunRow::into_record)
            .collect()
    }

    pub(crate) async fn select_last_source_count(
        &self,
        connection: &str,
    ) -> Result<Option<u64>, StoreError> {
        const SQL: &str = "SELECT source_users FROM runs \
                           WHERE connection = $1 AND finished_at IS NOT NULL AND source_users IS NOT NULL \
                           ORDER BY started_at DESC, id DESC LIMIT 1";
        let found: Result<Option<i64>, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query_scalar(SQL)
                .bind(connection)
                .fetch_optional(pool)
                .await
        });
        let found = found.map_err(|source| StoreError::LastSourceCount {
            connection: connection.to_owned(),
            source,
        })?;
        found
            .map(|n| {
                u64::try_from(n).map_err(|_| StoreError::Corrupt {
                    table: "runs",
                    column: "source_users",
                    row: format!("newest finished run of `{connection}`"),
                    problem: format!("negative count {n}"),
                })
            })
            .transpose()
    }

    /// When the newest succeeded run of a connection (dry runs aside) finished.
    pub(crate) async fn select_last_success(
        &self,
        connection: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        const SQL: &str = "SELECT MAX(finished_at) FROM runs \
                           WHERE connection = $1 AND status = 'succeeded' AND finished_at IS NOT NULL";
        let found: Result<Option<i64>, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query_scalar(SQL)
                .bind(connection)
                .fetch_one(pool)
                .await
        });
        found
            .map(|ms| ms.map(Timestamp::from_millis))
            .map_err(|source| StoreError::ConnectionHistory {
                connection: connection.to_owned(),
                what: "the last successful run",
                source,
            })
    }

    /// How many runs there are (of one connection, or of all; started at or after `since`).
    pub async fn count_runs(
        &self,
        connection: Option<&str>,
        since: Option<Timestamp>,
    ) -> Result<u64, StoreError> {
        let n: Result<i64, sqlx::Error> = with_pool!(&self.backend, |pool| {
            let mut sql = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM runs");
            push_run_filters(&mut sql, connection, since);
            sql.build_query_scalar().fetch_one(pool).await
        });
        n.map(|n| u64::try_from(n).unwrap_or_default())
            .map_err(|source| StoreError::Count {
                table: "runs",
                source,
            })
    }

    /// The connections the store has runs of, by name.
    pub async fn run_connections(&self) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT DISTINCT connection FROM runs ORDER BY connection";
        let names: Result<Vec<String>, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query_scalar(SQL).fetch_all(pool).await
        });
        names.map_err(|source| StoreError::Count {
            table: "runs",
            source,
        })
    }

    /// Runs, newest first (optionally of one connection), each with its duration and its
    /// activity entries counted by outcome: what `scimsync runs` prints.
    pub async fn runs_with_stats(
        &self,
        connection: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunStats>, StoreError> {
        self.runs_with_stats_since(connection, None, limit).await
    }

    /// [`SqlStore::runs_with_stats`] of the runs started at or after `since`.
    pub async fn runs_with_stats_since(
        &self,
        connection: Option<&str>,
        since: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<RunStats>, StoreError> {
        let runs = self.select_runs_since(connection, since, limit).await?;
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        // In chunks, to stay far below the databases' limits on bound parameters.
        let mut counted: Vec<(i64, String, i64)> = Vec::new();
        for chunk in runs.chunks(RUNS_PER_COUNT_QUERY) {
            let rows: Result<Vec<(i64, String, i64)>, sqlx::Error> =
                with_pool!(&self.backend, |pool| {
                    let mut query = sqlx::QueryBuilder::new(
                        "SELECT run_id, outcome, COUNT(*) FROM activity WHERE run_id IN (",
                    );
                    let mut ids = query.separated(", ");
                    for run in chunk {
                        ids.push_bind(run.id);
                    }
                    query.push(") GROUP BY run_id, outcome");
                    query.build_query_as().fetch_all(pool).await
                });
            counted.extend(rows.map_err(|source| StoreError::ListRuns { source })?);
        }
        let mut by_run: HashMap<i64, OutcomeCounts> = HashMap::new();
        for (run_id, outcome, n) in counted {
            let outcome = Outcome::parse(&outcome).ok_or_else(|| StoreError::Corrupt {
                table: "activity",
                column: "outcome",
                row: format!("an entry of run {run_id}"),
                problem: format!("unknown outcome `{outcome}`"),
            })?;
            by_run
                .entry(run_id)
                .or_default()
                .add(outcome, u64::try_from(n).unwrap_or_default());
        }
        Ok(runs
            .into_iter()
            .map(|run| {
                let duration = run
                    .finished_at
                    .and_then(|end| u64::try_from(end.millis() - run.started_at.millis()).ok())
                    .map(Duration::from_millis);
                let recorded = by_run.get(&run.id).copied().unwrap_or_default();
                RunStats {
                    run,
                    duration,
                    recorded,
                }
            })
            .collect())
    }
}

/// The `WHERE` clause of a search of runs.
fn push_run_filters<DB>(
    sql: &mut sqlx::QueryBuilder<DB>,
    connection: Option<&str>,
    since: Option<Timestamp>,
) where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut joiner = " WHERE ";
    if let Some(name) = connection {
        sql.push(joiner)
            .push("connection = ")
            .push_bind(name.to_owned());
        joiner = " AND ";
    }
    if let Some(since) = since {
        sql.push(joiner)
            .push("started_at >= ")
            .push_bind(since.millis());
    }
}
