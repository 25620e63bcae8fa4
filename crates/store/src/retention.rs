//! Retention: the activity log and the runs older than a cut-off are deleted in small
//! batches, each one short statement, so that pruning never holds the database for long and
//! runs recording beside it are not blocked.
//!
//! What is kept whatever its age:
//! - runs still `running`, and every run an entry still kept belongs to;
//! - per connection, the newest run, the newest succeeded run (`last_success`) and the newest
//!   finished run that read the source (the guard compares the next read with its count);
//! - per connection and source id, the newest `reject` entry (a rejection already logged is
//!   not logged again, and is not counted as new);
//! - links, held refusals, what was learned of the target and leases (never pruned).

use crate::SqlStore;
use crate::backend::with_pool;
use crate::error::StoreError;
use scimsync_core::Timestamp;

/// Rows one pruning statement deletes at most.
pub const PRUNE_BATCH: u32 = 2_000;

/// What a prune deleted (or, counted, would delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub activity: u64,
    pub runs: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.activity + self.runs
    }
}

/// Activity entries older than `$1`, except the newest rejection of each source id.
const OLD_ACTIVITY: &str = "FROM activity WHERE at < $1 AND id NOT IN \
     (SELECT MAX(id) FROM activity WHERE op = 'reject' AND source_id IS NOT NULL \
      GROUP BY connection, source_id)";

/// Runs (`r`) started before `$1` that are over and that a connection no longer needs: a newer
/// run of the connection exists, a newer success if it succeeded, a newer finished read of
/// the source if it read one. "Newer" is by start time, then id.
const OLD_RUNS_NEEDED_NOT: &str = "r.started_at < $1 AND r.status <> 'running' \
     AND EXISTS (SELECT 1 FROM runs n WHERE n.connection = r.connection AND NEWER) \
     AND (r.status <> 'succeeded' OR EXISTS (SELECT 1 FROM runs n \
          WHERE n.connection = r.connection AND NEWER AND n.status = 'succeeded')) \
     AND (r.finished_at IS NULL OR r.source_users IS NULL OR EXISTS (SELECT 1 FROM runs n \
          WHERE n.connection = r.connection AND NEWER \
          AND n.finished_at IS NOT NULL AND n.source_users IS NOT NULL))";

/// `n` started after `r` (or with it, and was recorded after it).
const NEWER: &str =
    "(n.started_at > r.started_at OR (n.started_at = r.started_at AND n.id > r.id))";

/// The runs without entries that no connection needs (see [`OLD_RUNS_NEEDED_NOT`]).
fn old_runs() -> String {
    format!(
        "FROM runs r WHERE {} \
         AND NOT EXISTS (SELECT 1 FROM activity WHERE activity.run_id = r.id)",
        OLD_RUNS_NEEDED_NOT.replace("NEWER", NEWER)
    )
}

impl SqlStore {
    /// Deletes at most `batch` activity entries older than `before` (see the module's list of
    /// what is kept); returns how many it deleted. Call it until it returns less than `batch`.
    pub async fn prune_activity_batch(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM activity WHERE id IN (SELECT id {OLD_ACTIVITY} ORDER BY id LIMIT $2)"
        );
        self.prune_statement(&sql, before, batch, "activity").await
    }

    /// Deletes at most `batch` runs started before `before` that no kept entry needs (see the
    /// module's list); returns how many it deleted. Prune the activity first.
    pub async fn prune_runs_batch(&self, before: Timestamp, batch: u32) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM runs WHERE id IN (SELECT r.id {} ORDER BY r.id LIMIT $2)",
            old_runs()
        );
        self.prune_statement(&sql, before, batch, "runs").await
    }

    /// Everything older than `before`, batch after batch (activity first, then runs).
    pub async fn prune(&self, before: Timestamp, batch: u32) -> Result<Pruned, StoreError> {
        let batch = batch.max(1);
        let mut pruned = Pruned::default();
        loop {
            let n = self.prune_activity_batch(before, batch).await?;
            pruned.activity += n;
            if n < u64::from(batch) {
                break;
            }
            tokio_yield().await;
        }
        loop {
            let n = self.prune_runs_batch(before, batch).await?;
            pruned.runs += n;
            if n < u64::from(batch) {
                break;
            }
            tokio_yield().await;
        }
        Ok(pruned)
    }

    /// What [`SqlStore::prune`] would delete now, counted (`scimsync prune --dry-run`). Runs
    /// whose entries would go in the same prune are counted too.
    pub async fn count_prunable(&self, before: Timestamp) -> Result<Pruned, StoreError> {
        let activity = self
            .count_statement(
                &format!("SELECT COUNT(*) {OLD_ACTIVITY}"),
                before,
                "activity",
            )
            .await?;
        // The runs left without entries once the old entries are gone.
        let runs_after = format!(
            "SELECT COUNT(*) FROM runs r WHERE {} \
             AND NOT EXISTS (SELECT 1 FROM activity WHERE activity.run_id = r.id \
                 AND activity.id NOT IN (SELECT id {OLD_ACTIVITY}))",
            OLD_RUNS_NEEDED_NOT.replace("NEWER", NEWER)
        );
        let runs = self.count_statement(&runs_after, before, "runs").await?;
        Ok(Pruned { activity, runs })
    }

    async fn prune_statement(
        &self,
        sql: &str,
        before: Timestamp,
        batch: u32,
        table: &'static str,
    ) -> Result<u64, StoreError> {
        let done: Result<u64, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .bind(before.millis())
                .bind(i64::from(batch))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        });
        done.map_err(|source| StoreError::Prune { table, source })
    }

    async fn count_statement(
        &self,
        sql: &str,
        before: Timestamp,
        table: &'static str,
    ) -> Result<u64, StoreError> {
        let n: Result<i64, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                .bind(before.millis())
                .fetch_one(pool)
                .await
        });
        n.map(|n| u64::try_from(n).unwrap_or_default())
            .map_err(|source| StoreError::Prune { table, source })
    }
}

/// Lets other tasks (a run recording its operations) go between two batches.
async fn tokio_yield() {
    tokio::task::yield_now().await;
}
