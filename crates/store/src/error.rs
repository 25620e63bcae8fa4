//! What can go wrong in the store, named for the operation that failed.

use scimsync_core::activity::RunId;
use std::path::PathBuf;

/// An error from [`crate::SqlStore`]. The `Display` text names the operation and the object;
/// the underlying database error is the `source`, printed by a chain printer (`{:#}`).
///
/// Connection URLs in these errors have their password removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "unsupported store URL `{url}`: use `sqlite://PATH`, `sqlite::memory:`, a plain file path, \
         or `postgres://USER@HOST:PORT/DATABASE`"
    )]
    UnsupportedUrl { url: String },

    #[error("invalid store URL `{url}`")]
    InvalidUrl {
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "invalid schema `{schema}` in store URL `{url}`: use lower-case letters, digits and `_`, \
         not starting with a digit, at most 63 characters"
    )]
    InvalidSchema { url: String, schema: String },

    #[error("cannot create schema `{schema}` in the store at `{url}`")]
    CreateSchema {
        schema: String,
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot drop schema `{schema}` of the store at `{url}`")]
    DropSchema {
        schema: String,
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot create the directory `{}` for the SQLite store", path.display())]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot open the store at `{url}`")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot apply the {dialect} migrations to the store at `{url}`")]
    Migrate {
        dialect: &'static str,
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    #[error("cannot record the start of a run of connection `{connection}`")]
    StartRun {
        connection: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot record the end of run {run_id}")]
    FinishRun {
        run_id: RunId,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot record the end of run {run_id}: no such run in the store")]
    RunNotFound { run_id: RunId },

    #[error("cannot list runs")]
    ListRuns {
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot read the last source count of connection `{connection}`")]
    LastSourceCount {
        connection: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot read {what} of connection `{connection}`")]
    ConnectionHistory {
        connection: String,
        /// What was being read (for the message).
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot record activity `{op}` of run {run_id}")]
    RecordActivity {
        run_id: RunId,
        op: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot record activity `{op}`: run {run_id} does not exist (start the run first)")]
    ActivityWithoutRun { run_id: RunId, op: String },

    #[error("cannot search the activity log")]
    QueryActivity {
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot load the links of connection `{connection}`")]
    LoadLinks {
        connection: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot load the stored state of the target objects of connection `{connection}`")]
    LoadState {
        connection: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot save the stored state of the target objects of connection `{connection}`")]
    SaveState {
        connection: String,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "the stored state of {kind} `{target_id}` (connection `{connection}`) is not valid JSON of a target {kind}"
    )]
    DecodeState {
        connection: String,
        kind: String,
        target_id: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot encode the state of {kind} `{target_id}` (connection `{connection}`)")]
    EncodeState {
        connection: String,
        kind: String,
        target_id: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot save the link of {object} `{source_id}` (connection `{connection}`)")]
    SaveLink {
        connection: String,
        /// `user` or `group`.
        object: &'static str,
        source_id: String,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "cannot link {object} `{source_id}` to target id `{target_id}` (connection `{connection}`): \
         that target object is already linked to source {object} `{linked_to}`"
    )]
    TargetAlreadyLinked {
        connection: String,
        /// `user` or `group`.
        object: &'static str,
        source_id: String,
        target_id: String,
        /// The source id that holds the link (empty if it vanished meanwhile).
        linked_to: String,
    },

    #[error(
        "cannot encode the {field} of the link of user `{source_id}` (connection `{connection}`)"
    )]
    EncodeLink {
        connection: String,
        source_id: String,
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "cannot save the refusal of {object} `{source_id}`'s {attribute} (connection `{connection}`)"
    )]
    SaveRefusal {
        connection: String,
        /// `user` or `group`.
        object: &'static str,
        source_id: String,
        attribute: String,
        /// Boxed, so that this variant does not make every `StoreError` larger.
        #[source]
        source: Box<sqlx::Error>,
    },

    #[error(
        "cannot clear the refusal of {object} `{source_id}`'s {attribute} (connection `{connection}`)"
    )]
    ClearRefusal {
        connection: String,
        /// `user` or `group`.
        object: &'static str,
        source_id: String,
        attribute: String,
        /// Boxed, so that this variant does not make every `StoreError` larger.
        #[source]
        source: Box<sqlx::Error>,
    },

    #[error("cannot clear the refusals {} (connection `{connection}`)", refusals_of(.source_id.as_deref()))]
    ClearRefusals {
        connection: String,
        /// The source object whose refusals were to go; `None`: all of the connection.
        source_id: Option<String>,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot save what was learned of the target of connection `{connection}`")]
    SaveFacts {
        connection: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot encode what was learned of the target of connection `{connection}`")]
    EncodeFacts {
        connection: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot take the lease of connection `{connection}` for `{holder}`")]
    AcquireLease {
        connection: String,
        holder: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot release the lease of connection `{connection}` held by `{holder}`")]
    ReleaseLease {
        connection: String,
        holder: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot list leases")]
    ListLeases {
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot mark the abandoned runs of connection `{connection}`")]
    AbandonRuns {
        connection: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot prune old rows of table `{table}`")]
    Prune {
        table: &'static str,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot count the rows of table `{table}` that match the search")]
    Count {
        table: &'static str,
        #[source]
        source: sqlx::Error,
    },

    #[error("the store holds an unreadable value in {table}.{column} (row {row}): {problem}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        /// The row's key (an id, or `connection/source_id`).
        row: String,
        problem: String,
    },
}

impl StoreError {
    /// Whether the same call may succeed if tried again later: the database was unreachable,
    /// busy, or the pool had no free connection in time. Everything else (constraint
    /// violations, corrupt rows, bad URLs, failed migrations) needs a person.
    pub fn is_retryable(&self) -> bool {
        let source = match self {
            Self::Connect { source, .. }
            | Self::CreateSchema { source, .. }
            | Self::StartRun { source, .. }
            | Self::FinishRun { source, .. }
            | Self::ListRuns { source }
            | Self::LastSourceCount { source, .. }
            | Self::ConnectionHistory { source, .. }
            | Self::RecordActivity { source, .. }
            | Self::QueryActivity { source }
            | Self::LoadLinks { source, .. }
            | Self::LoadState { source, .. }
            | Self::SaveState { source, .. }
            | Self::SaveLink { source, .. }
            | Self::ClearRefusals { source, .. }
            | Self::SaveFacts { source, .. }
            | Self::AcquireLease { source, .. }
            | Self::ReleaseLease { source, .. }
            | Self::ListLeases { source }
            | Self::AbandonRuns { source, .. }
            | Self::Prune { source, .. }
            | Self::Count { source, .. } => source,
            Self::SaveRefusal { source, .. } | Self::ClearRefusal { source, .. } => &**source,
            _ => return false,
        };
        is_transient(source)
    }
}

/// Which refusals [`StoreError::ClearRefusals`] was clearing, for its message.
fn refusals_of(source_id: Option<&str>) -> String {
    match source_id {
        Some(id) => format!("of source object `{id}`"),
        None => "of every object".to_owned(),
    }
}

/// Errors that say "not now" rather than "not ever".
pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with or without extended bits.
                code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
            } else {
                // PostgreSQL: connection exceptions (08…), serialization failure, deadlock,
                // too many connections, shutdown in progress.
                code.starts_with("08")
                    || matches!(
                        code.as_ref(),
                        "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03"
                    )
            }
        }
        _ => false,
    }
}
