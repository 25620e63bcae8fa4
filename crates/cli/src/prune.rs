//! Retention: `scimsync prune [--dry-run]`, and the daemon's hourly prune.
//!
//! Activity entries and runs older than `store.retention` (default 90 days) are deleted in
//! batches of [`PRUNE_BATCH`] rows, each batch one short statement; the daemon pauses between
//! batches so that the runs recording beside it are never held up. What a connection still
//! needs is kept (see `scimsync_store`'s retention: running runs, the newest read and success
//! of each connection, the newest rejection of each user), and links and held refusals are
//! never pruned.

use crate::config;
use scimsync_core::Timestamp;
use scimsync_store::{PRUNE_BATCH, Pruned, SqlStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the daemon prunes.
const DAEMON_EVERY: Duration = Duration::from_secs(3_600);
/// The daemon's wait before its first prune (a few seconds after it starts).
const DAEMON_FIRST: Duration = Duration::from_secs(5);
/// The daemon's pause between two batches.
const DAEMON_PAUSE: Duration = Duration::from_millis(200);

/// The cut-off of a retention: entries and runs before it go.
fn cutoff(retention: Duration, now: Timestamp) -> Timestamp {
    let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millis(now.millis().saturating_sub(ms))
}

fn days(retention: Duration) -> u64 {
    retention.as_secs() / 86_400
}

/// `scimsync prune [--dry-run]`.
pub(crate) async fn command(path: &Path, dry_run: bool) -> anyhow::Result<u8> {
    let settings = config::load_store_config(path, &|k| std::env::var(k).ok())?;
    let Some(retention) = settings.retention else {
        println!("Retention is off (store.retention = \"off\"): nothing is pruned.");
        return Ok(0);
    };
    let store = crate::open_store_at(&settings.url).await?;
    let before = cutoff(retention, scimsync_engine::now());
    let what = |p: Pruned| {
        format!(
            "{} activity entr{} and {} run{} older than {} days (before {before})",
            p.activity,
            if p.activity == 1 { "y" } else { "ies" },
            p.runs,
            if p.runs == 1 { "" } else { "s" },
            days(retention)
        )
    };
    if dry_run {
        let counted = store.count_prunable(before).await?;
        println!("Would prune {}; nothing was deleted.", what(counted));
    } else {
        let pruned = store.prune(before, PRUNE_BATCH).await?;
        println!("Pruned {}.", what(pruned));
    }
    Ok(0)
}

/// The daemon's prune: a task that deletes what is older than `retention` every hour, a batch
/// at a time with pauses between, until `cancel`.
pub(crate) fn spawn_daemon_pruning(
    store: Arc<SqlStore>,
    retention: Duration,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let mut wait = DAEMON_FIRST;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = DAEMON_EVERY;
            let before = cutoff(retention, scimsync_engine::now());
            match prune_gently(&store, before, &cancel).await {
                Ok(p) if p.total() > 0 => info!(
                    activity = p.activity,
                    runs = p.runs,
                    before = %before,
                    "Pruned the activity entries and runs older than the retention ({} days).",
                    days(retention)
                ),
                Ok(_) => {}
                Err(e) => warn!(
                    error = %scimsync_engine::chain(&e),
                    "Pruning old activity entries and runs failed; trying again in an hour."
                ),
            }
        }
    });
}

/// Batch after batch (activity, then runs), pausing between them; stops early on `cancel`.
async fn prune_gently(
    store: &SqlStore,
    before: Timestamp,
    cancel: &CancellationToken,
) -> Result<Pruned, scimsync_store::StoreError> {
    let mut pruned = Pruned::default();
    let full = u64::from(PRUNE_BATCH);
    for table in [Table::Activity, Table::Runs] {
        loop {
            let n = match table {
                Table::Activity => store.prune_activity_batch(before, PRUNE_BATCH).await?,
                Table::Runs => store.prune_runs_batch(before, PRUNE_BATCH).await?,
            };
            match table {
                Table::Activity => pruned.activity += n,
                Table::Runs => pruned.runs += n,
            }
            if n < full {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(pruned),
                () = tokio::time::sleep(DAEMON_PAUSE) => {}
            }
        }
    }
    Ok(pruned)
}

#[derive(Clone, Copy)]
enum Table {
    Activity,
    Runs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_the_retention_before_now() {
        let now = Timestamp::from_millis(100 * 86_400_000);
        assert_eq!(
            cutoff(Duration::from_secs(90 * 86_400), now),
            Timestamp::from_millis(10 * 86_400_000)
        );
        // A retention beyond any date prunes nothing, and does not overflow.
        assert!(cutoff(Duration::MAX, now) < Timestamp::from_millis(0));
    }
}
