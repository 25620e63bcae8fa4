//! Persistence for scimsync: runs, the activity log, links (with held refusals and what was
//! learned of each target) and leases, on SQLite (the embedded default, one file created on
//! first use) or PostgreSQL (shared by several daemons).
//!
//! [`SqlStore`] implements the core's [`Store`] port. Open one with [`SqlStore::connect`]:
//! the URL picks the backend, and the migrations of that dialect (the repository's
//! `migrations/sqlite` and `migrations/postgres`, embedded at build time) are applied before
//! it returns.
//!
//! Every write is one small statement in its own transaction, so the engine can record each
//! operation's outcome and link as it completes, and an interrupted run loses nothing that was
//! recorded. The activity log is append-only; the store keeps what it is given and never adds
//! secrets (the engine guarantees `detail` holds none).
//!
//! ```no_run
//! use scimsync_core::ports::{NewRun, Store};
//! use scimsync_core::activity::{ActivityQuery, Trigger};
//! use scimsync_core::Timestamp;
//! use scimsync_store::SqlStore;
//!
//! # async fn demo() -> Result<(), scimsync_store::StoreError> {
//! let store = SqlStore::connect("sqlite://state/scimsync.db").await?;
//! let run = store
//!     .start_run(&NewRun {
//!         connection: "salesforce".into(),
//!         trigger: Trigger::Manual,
//!         dry_run: false,
//!         started_at: Timestamp::from_millis(1_795_860_000_000),
//!     })
//!     .await?;
//! let entries = store
//!     .query_activity(&ActivityQuery { run_id: Some(run), ..ActivityQuery::default() })
//!     .await?;
//! # let _ = entries;
//! # Ok(())
//! # }
//! ```
//!
//! This crate knows nothing of the source, the target or the CLI; it must not depend on the
//! other adapters.
#![forbid(unsafe_code)]

mod activity;
mod backend;
mod columns;
mod commit;
mod error;
mod facts;
mod leases;
mod links;
mod location;
mod migrations;
mod refusals;
mod retention;
mod runs;
mod state;

pub use error::StoreError;
pub use leases::Lease;
pub use location::resolve_sqlite_path;
pub use retention::{PRUNE_BATCH, Pruned};
pub use runs::{OutcomeCounts, RunStats};

use backend::{Backend, with_pool};
use location::Location;
use scimsync_core::Timestamp;
use scimsync_core::activity::{ActivityEntry, ActivityQuery, RunId, RunRecord};
use scimsync_core::links::{GroupLink, HeldRefusal, Links, TargetFacts, UserLink};
use scimsync_core::plan::ObjectKind;
use scimsync_core::ports::{NewRun, RunEnd, Store};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::fmt;
use std::time::Duration;

/// Connections a SQLite store keeps open. SQLite has one writer at a time (the others wait up
/// to the busy timeout); WAL lets readers run beside it.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
/// Connections a PostgreSQL store keeps open, per daemon.
const POSTGRES_MAX_CONNECTIONS: u32 = 8;
/// Opens of a SQLite file tried before a busy database is reported.
const SQLITE_OPEN_ATTEMPTS: u32 = 5;
/// How long a call waits for a free connection (or for the server to answer at connect).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The store: runs, the activity log, links and leases in SQLite or PostgreSQL.
///
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct SqlStore {
    backend: Backend,
    /// The URL it was opened with, password removed: for logs and `Debug`.
    shown: String,
    /// PostgreSQL: the schema named by the URL's `schema=`, if any.
    schema: Option<String>,
    /// SQLite: the one writer that commits the writes of a run's operations together
    /// ([`commit`]).
    writer: Option<std::sync::Arc<commit::GroupCommit>>,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &self.backend.dialect().name())
            .field("url", &self.shown)
            .finish()
    }
}

impl SqlStore {
    /// Opens the store at `url` and applies the migrations of its dialect.
    ///
    /// - `sqlite://PATH`, `sqlite:PATH` or a plain file path: a SQLite file, created with its
    ///   parent directories on first use, in WAL mode with a busy timeout and foreign keys on.
    /// - `sqlite::memory:`: a SQLite database that lives as long as this store (tests, demos).
    /// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]`: PostgreSQL. sqlx's query
    ///   options apply (`sslmode=require`, …), and `schema=NAME` keeps the tables in schema
    ///   `NAME` (lower-case letters, digits, `_`), created if missing: several stores in one
    ///   database, or one per test.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = location::redact(url);
        let (backend, schema) = match Location::parse(url, &shown)? {
            Location::Sqlite { options, in_memory } => {
                (open_sqlite(options, in_memory, &shown).await?, None)
            }
            Location::Postgres { options, schema } => (
                open_postgres(options, schema.as_deref(), &shown).await?,
                schema,
            ),
        };
        let dialect = backend.dialect();
        dialect
            .migrate(&backend)
            .await
            .map_err(|source| StoreError::Migrate {
                dialect: dialect.name(),
                url: shown.clone(),
                source,
            })?;
        if let Backend::Sqlite(pool) = &backend {
            // Statistics for tables that changed a lot since they were last analysed (cheap
            // when nothing did): SQLite's advice for long-lived connections.
            if let Err(error) = sqlx::query("PRAGMA optimize=0x10002").execute(pool).await {
                tracing::warn!(store = %shown, %error, "SQLite statistics not refreshed; searches may be slower.");
            }
        }
        tracing::info!(store = %shown, dialect = dialect.name(), "Store opened.");
        let writer = match &backend {
            Backend::Sqlite(pool) => Some(commit::GroupCommit::new(pool.clone())),
            Backend::Postgres(_) => None,
        };
        Ok(Self {
            backend,
            shown,
            schema,
            writer,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn dialect(&self) -> &'static str {
        self.backend.dialect().name()
    }

    /// Drops the schema named by the URL's `schema=` parameter, with everything the store kept
    /// in it, then closes the store. Meant for tests that give each case its own schema; a
    /// store opened without `schema=` (or on SQLite) is only closed.
    pub async fn close_and_drop_schema(self) -> Result<(), StoreError> {
        if let (Backend::Postgres(pool), Some(schema)) = (&self.backend, &self.schema) {
            // The name was checked by `is_schema_name`: safe to put in the statement.
            let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(pool)
                .await
                .map_err(|source| StoreError::DropSchema {
                    schema: schema.clone(),
                    url: self.shown.clone(),
                    source,
                })?;
        }
        self.close().await;
        Ok(())
    }

    /// Closes the pool, waiting for calls in flight to finish. Later calls fail.
    pub async fn close(&self) {
        with_pool!(&self.backend, |pool| pool.close().await);
    }
}

/// Opens the pool of a SQLite database (its file and directories created if missing).
async fn open_sqlite(
    options: SqliteConnectOptions,
    in_memory: bool,
    shown: &str,
) -> Result<Backend, StoreError> {
    let pool = if in_memory {
        // One connection that never closes: the database dies with its last one.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        create_parent(options.get_filename())?;
        create_private(options.get_filename(), shown);
        SqlitePoolOptions::new().max_connections(SQLITE_MAX_CONNECTIONS)
    }
    .acquire_timeout(ACQUIRE_TIMEOUT);
    // Two processes creating the same file at once can meet SQLITE_BUSY while one switches it
    // to WAL (SQLite does not wait on that lock): try again briefly.
    let mut attempt = 1;
    loop {
        match pool.clone().connect_with(options.clone()).await {
            Ok(pool) => return Ok(Backend::Sqlite(pool)),
            Err(source) if attempt < SQLITE_OPEN_ATTEMPTS && error::is_transient(&source) => {
                tracing::debug!(store = %shown, attempt, error = %source, "SQLite busy at open; retrying.");
                tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(source) => {
                return Err(StoreError::Connect {
                    url: shown.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Opens the pool of a PostgreSQL database, creating `schema` if it is given and missing.
async fn open_postgres(
    options: PgConnectOptions,
    schema: Option<&str>,
    shown: &str,
) -> Result<Backend, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            url: shown.to_owned(),
            source,
        })?;
    if let Some(schema) = schema {
        create_schema(&pool, schema, shown).await?;
    }
    Ok(Backend::Postgres(pool))
}

/// Creates the schema of a `schema=` URL if it is missing. Two daemons doing this at once can
/// collide in PostgreSQL's catalogue (a unique violation) even with `IF NOT EXISTS`: then the
/// other one created it, which is all we wanted.
async fn create_schema(pool: &PgPool, schema: &str, shown: &str) -> Result<(), StoreError> {
    debug_assert!(location::is_schema_name(schema));
    let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
    match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(()),
        Err(source) => Err(StoreError::CreateSchema {
            schema: schema.to_owned(),
            url: shown.to_owned(),
            source,
        }),
    }
}

/// Creates a missing SQLite file empty with mode 0600 before SQLite opens it: SQLite gives its
/// WAL and shared-memory files the database file's mode, so the log of who was provisioned
/// is readable by its owner only. An existing file readable by others is warned about.
fn create_private(file: &std::path::Path, shown: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
        {
            Ok(_) => tracing::debug!(store = %shown, "SQLite file created with mode 600."),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Ok(meta) = std::fs::metadata(file)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        store = %shown,
                        mode = format!("{:o}", meta.permissions().mode() & 0o777),
                        "The store file is readable by other users; `chmod 600` it (and its -wal and -shm files)."
                    );
                }
            }
            // Left for SQLite to report when it opens the file.
            Err(_) => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, shown);
    }
}

/// Creates the directories a SQLite file will live in.
fn create_parent(file: &std::path::Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDirectory {
                path: dir.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

impl Store for SqlStore {
    type Error = StoreError;

    async fn start_run(&self, run: &NewRun) -> Result<RunId, StoreError> {
        self.insert_run(run).await
    }

    async fn finish_run(&self, id: RunId, end: &RunEnd) -> Result<(), StoreError> {
        self.update_run(id, end).await
    }

    async fn list_runs(
        &self,
        connection: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.select_runs(connection, limit).await
    }

    async fn last_source_count(&self, connection: &str) -> Result<Option<u64>, StoreError> {
        self.select_last_source_count(connection).await
    }

    async fn last_success(&self, connection: &str) -> Result<Option<Timestamp>, StoreError> {
        self.select_last_success(connection).await
    }

    async fn logged_rejections(
        &self,
        connection: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        self.select_logged_rejections(connection).await
    }

    async fn record(&self, entry: &ActivityEntry) -> Result<i64, StoreError> {
        self.insert_activity(entry, &[]).await
    }

    async fn record_about(
        &self,
        entry: &ActivityEntry,
        subjects: &[String],
    ) -> Result<i64, StoreError> {
        self.insert_activity(entry, subjects).await
    }

    async fn query_activity(
        &self,
        query: &ActivityQuery,
    ) -> Result<Vec<ActivityEntry>, StoreError> {
        self.select_activity(query).await
    }

    async fn load_links(&self, connection: &str) -> Result<Links, StoreError> {
        self.select_links(connection).await
    }

    async fn save_refusal(
        &self,
        connection: &str,
        refusal: &HeldRefusal,
    ) -> Result<(), StoreError> {
        self.upsert_refusal(connection, refusal).await
    }

    async fn clear_refusal(
        &self,
        connection: &str,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
    ) -> Result<(), StoreError> {
        self.delete_refusal(connection, object, source_id, attribute)
            .await
    }

    async fn clear_refusals(
        &self,
        connection: &str,
        source_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.delete_refusals(connection, source_id).await
    }

    async fn save_facts(&self, connection: &str, facts: &TargetFacts) -> Result<(), StoreError> {
        self.upsert_facts(connection, facts).await
    }

    async fn save_user_link(&self, connection: &str, link: &UserLink) -> Result<(), StoreError> {
        self.upsert_user_link(connection, link).await
    }

    async fn save_group_link(&self, connection: &str, link: &GroupLink) -> Result<(), StoreError> {
        self.upsert_group_link(connection, link).await
    }

    async fn load_state(
        &self,
        connection: &str,
    ) -> Result<scimsync_core::state::StoredState, StoreError> {
        self.select_state(connection).await
    }

    async fn save_state(
        &self,
        connection: &str,
        users: &[scimsync_core::target::TargetUser],
        groups: &[scimsync_core::target::TargetGroup],
    ) -> Result<(), StoreError> {
        self.upsert_state(connection, users, groups).await
    }

    async fn forget_state(
        &self,
        connection: &str,
        users: &[scimsync_core::TargetUserId],
        groups: &[scimsync_core::TargetGroupId],
    ) -> Result<(), StoreError> {
        self.change_state(connection, users, groups, false).await
    }

    async fn mark_doubtful(
        &self,
        connection: &str,
        users: &[scimsync_core::TargetUserId],
        groups: &[scimsync_core::TargetGroupId],
    ) -> Result<(), StoreError> {
        self.change_state(connection, users, groups, true).await
    }

    async fn replace_state(
        &self,
        connection: &str,
        state: &scimsync_core::state::StoredState,
    ) -> Result<(), StoreError> {
        self.replace_all_state(connection, state).await
    }

    async fn acquire_lease(
        &self,
        connection: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.take_lease(connection, holder, now, ttl).await
    }

    async fn release_lease(&self, connection: &str, holder: &str) -> Result<(), StoreError> {
        self.drop_lease(connection, holder).await
    }

    async fn lease_holder(
        &self,
        connection: &str,
    ) -> Result<Option<scimsync_core::ports::LeaseHolder>, StoreError> {
        self.select_lease(connection).await
    }

    async fn abandon_runs(
        &self,
        connection: &str,
        before: Timestamp,
        at: Timestamp,
        message: &str,
    ) -> Result<u64, StoreError> {
        self.mark_abandoned(connection, before, at, message).await
    }
}
