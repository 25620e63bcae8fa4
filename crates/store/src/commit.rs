//! Group commit for SQLite: the writes a run makes as each operation completes (its activity
//! entry, its link) are funnelled to one writer, which commits those waiting together in one
//! transaction; each caller gets its answer once its write is committed.
//!
//! SQLite has one writer at a time and, with `synchronous = FULL`, syncs the disk at every
//! commit. Written one transaction each by concurrent operations, every write paid a sync (about
//! 1 ms) and the writers queued on the database lock, polling it (SQLite's busy handler sleeps
//! 1, 2, 5, 10 … ms between tries): recording capped a first sync near 300–400 operations a
//! second. Together, the writes that arrive while one batch is committed share the next sync.
//!
//! Nothing changes for the caller: when a write returns `Ok`, it is committed as durably as
//! before (a power cut keeps it); when the process dies before that, its batch is rolled back
//! whole and none of its callers was answered, so the engine has not moved past any of them.
//! Each write runs in a savepoint of its batch: one that fails (a link whose target id is
//! taken, an entry of an unknown run) is undone alone and its caller gets its error; the
//! others of the batch are committed.

use sqlx::{Connection as _, SqliteConnection, SqlitePool};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A write's work: statements on the writer's connection (inside a savepoint), giving back an
/// id (0 where there is none).
pub(crate) type Work = Box<
    dyn for<'c> FnOnce(
            &'c mut SqliteConnection,
        )
            -> Pin<Box<dyn Future<Output = Result<i64, sqlx::Error>> + Send + 'c>>
        + Send,
>;

/// `f` as a [`Work`] (a function, so that the closure is inferred for every lifetime).
pub(crate) fn work<F>(f: F) -> Work
where
    F: for<'c> FnOnce(
            &'c mut SqliteConnection,
        )
            -> Pin<Box<dyn Future<Output = Result<i64, sqlx::Error>> + Send + 'c>>
        + Send
        + 'static,
{
    Box::new(f)
}

/// Runs `$body`, the body of an async block that writes through `$conn` (a `&mut` connection
/// of either dialect) and gives `Result<i64, sqlx::Error>`: on SQLite through the store's
/// group commit (so `$body` must own what it uses: it runs in the writer's task), on
/// PostgreSQL on a pooled connection. A body of several statements makes them one
/// transaction itself (`Connection::begin`; a savepoint in the group commit's batch).
macro_rules! write_one {
    ($store:expr, |$conn:ident| $body:expr) => {
        match (&$store.backend, &$store.writer) {
            ($crate::backend::Backend::Sqlite(_), Some(writer)) => {
                writer
                    .write($crate::commit::work(
                        move |$conn: &mut sqlx::SqliteConnection| Box::pin(async move { $body }),
                    ))
                    .await
            }
            ($crate::backend::Backend::Sqlite(pool), None) => {
                async {
                    let mut held = pool.acquire().await?;
                    let $conn: &mut sqlx::SqliteConnection = &mut held;
                    $body
                }
                .await
            }
            ($crate::backend::Backend::Postgres(pool), _) => {
                async {
                    let mut held = pool.acquire().await?;
                    let $conn: &mut sqlx::PgConnection = &mut held;
                    $body
                }
                .await
            }
        }
    };
}
pub(crate) use write_one;

/// Most writes committed together.
const MAX_BATCH: usize = 512;

struct Job {
    work: Work,
    done: oneshot::Sender<Result<i64, sqlx::Error>>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A writer task is draining the queue.
    writing: bool,
}

/// The writer of one SQLite store.
pub(crate) struct GroupCommit {
    pool: SqlitePool,
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    pub fn new(pool: SqlitePool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            queue: Mutex::new(Queue::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `work` in the next batch and answers once that batch is committed.
    pub async fn write(self: &Arc<Self>, work: Work) -> Result<i64, sqlx::Error> {
        let (done, answer) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.jobs.push(Job { work, done });
            !std::mem::replace(&mut queue.writing, true)
        };
        if start {
            // A task of its own: a caller that stops waiting does not stop the others' batch.
            tokio::spawn(Arc::clone(self).drain());
        }
        answer.await.map_err(|_| {
            sqlx::Error::Io(std::io::Error::other(
                "the store's writer stopped before committing this write",
            ))
        })?
    }

    /// Commits batches until the queue is empty.
    async fn drain(self: Arc<Self>) {
        // Whatever ends this task (a panic included), the next write starts a new writer.
        struct Writing<'a>(&'a GroupCommit, bool);
        impl Drop for Writing<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.lock().writing = false;
                }
            }
        }
        let mut guard = Writing(&self, true);
        loop {
            let batch = {
                let mut queue = self.lock();
                if queue.jobs.is_empty() {
                    queue.writing = false;
                    guard.1 = false;
                    return;
                }
                let n = queue.jobs.len().min(MAX_BATCH);
                queue.jobs.drain(..n).collect::<Vec<_>>()
            };
            self.commit(batch).await;
        }
    }

    /// One transaction for `batch`, a savepoint a write; answers every caller.
    async fn commit(&self, batch: Vec<Job>) {
        let size = batch.len();
        let mut ran: Vec<(oneshot::Sender<_>, Result<i64, sqlx::Error>)> = Vec::with_capacity(size);
        let mut waiting = batch.into_iter();
        let committed: Result<(), sqlx::Error> = async {
            let mut conn = self.pool.acquire().await?;
            // IMMEDIATE: the write lock is taken (or waited for) at BEGIN, not at the first
            // write, where SQLite could not wait for it inside a read transaction.
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            for job in waiting.by_ref() {
                let mut point = sqlx::Connection::begin(&mut *tx).await?;
                let result = (job.work)(&mut point).await;
                match &result {
                    Ok(_) => point.commit().await?,
                    Err(_) => point.rollback().await?,
                }
                ran.push((job.done, result));
            }
            tx.commit().await
        }
        .await;
        match committed {
            Ok(()) => {
                for (done, result) in ran {
                    let _ = done.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(writes = size, error = %e, "A batch of store writes was not committed.");
                let failed = || {
                    Err(sqlx::Error::Io(std::io::Error::other(format!(
                        "the batch of {size} writes it was committed with failed: {e}"
                    ))))
                };
                for (done, _) in ran {
                    let _ = done.send(failed());
                }
                for job in waiting {
                    let _ = job.done.send(failed());
                }
            }
        }
    }
}
