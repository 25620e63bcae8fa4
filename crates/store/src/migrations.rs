//! The schema migrations, embedded in the binary and applied at connect.
//!
//! The SQL lives in the repository's `migrations/<dialect>/NNNN_description.sql`; each file is
//! listed here with `include_str!`, and a [`Migrator`] is built at runtime from the list. This
//! avoids sqlx's `macros` feature (and its compile time) for a handful of files; the test below
//! fails when a file on disk is missing from the list. Once merged, a migration is never
//! edited (sqlx refuses to start on a changed checksum): add a new file and a new line.

use crate::backend::Backend;
use sqlx::SqlSafeStr;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// One migration: version, description, SQL.
type Embedded = (i64, &'static str, &'static str);

const SQLITE: &[Embedded] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "activity_connection_id",
        include_str!("../../../migrations/sqlite/0002_activity_connection_id.sql"),
    ),
    (
        3,
        "refusals_and_target_facts",
        include_str!("../../../migrations/sqlite/0003_refusals_and_target_facts.sql"),
    ),
    (
        4,
        "activity_subjects",
        include_str!("../../../migrations/sqlite/0004_activity_subjects.sql"),
    ),
    (
        5,
        "activity_attempts",
        include_str!("../../../migrations/sqlite/0005_activity_attempts.sql"),
    ),
    (
        6,
        "target_state",
        include_str!("../../../migrations/sqlite/0006_target_state.sql"),
    ),
];

const POSTGRES: &[Embedded] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "activity_connection_id",
        include_str!("../../../migrations/postgres/0002_activity_connection_id.sql"),
    ),
    (
        3,
        "refusals_and_target_facts",
        include_str!("../../../migrations/postgres/0003_refusals_and_target_facts.sql"),
    ),
    (
        4,
        "activity_subjects",
        include_str!("../../../migrations/postgres/0004_activity_subjects.sql"),
    ),
    (
        5,
        "activity_attempts",
        include_str!("../../../migrations/postgres/0005_activity_attempts.sql"),
    ),
    (
        6,
        "target_state",
        include_str!("../../../migrations/postgres/0006_target_state.sql"),
    ),
];

/// The SQL dialects the store speaks; one folder of migrations each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    fn embedded(self) -> &'static [Embedded] {
        match self {
            Self::Sqlite => SQLITE,
            Self::Postgres => POSTGRES,
        }
    }

    /// Applies the pending migrations of this dialect, once even when several processes open
    /// the same database together.
    ///
    /// PostgreSQL: sqlx takes an advisory lock and runs each migration in its own transaction.
    /// SQLite has no such lock, so all pending migrations run in one `BEGIN IMMEDIATE`
    /// transaction: a second process waits for the write lock (busy timeout), then finds them
    /// applied.
    pub(crate) async fn migrate(self, backend: &Backend) -> Result<(), MigrateError> {
        match backend {
            // `run_direct` on an acquired connection rather than `run(pool)`: the latter's
            // `Acquire` bound makes the future not `Send` for every lifetime, so `connect`
            // could not be spawned.
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                self.migrator().run_direct(None, &mut *conn, false).await
            }
            Backend::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                let result = self.migrator().run_direct(None, &mut *conn, false).await;
                let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
                match sqlx::query(end).execute(&mut *conn).await {
                    Ok(_) => result,
                    Err(e) => {
                        // The connection's transaction state is unknown: never reuse it.
                        drop(conn.detach());
                        result.and(Err(e.into()))
                    }
                }
            }
        }
    }

    /// The migrator of this dialect. SQLite's migrations carry `no_tx` because [`Self::migrate`]
    /// wraps them all in one transaction.
    fn migrator(self) -> Migrator {
        Migrator::with_migrations(
            self.embedded()
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        self == Self::Sqlite,
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every `NNNN_name.sql` file on disk is embedded with its version and name, and nothing
    /// else is.
    #[test]
    fn every_migration_file_is_embedded() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../migrations")
                .join(dialect.name());
            let mut on_disk: Vec<(i64, String)> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter_map(|name| {
                    let stem = name.strip_suffix(".sql")?;
                    let (version, description) = stem.split_once('_')?;
                    Some((version.parse().ok()?, description.to_owned()))
                })
                .collect();
            on_disk.sort();
            let embedded: Vec<(i64, String)> = dialect
                .embedded()
                .iter()
                .map(|&(v, d, _)| (v, d.to_owned()))
                .collect();
            assert_eq!(embedded, on_disk, "{} migrations", dialect.name());
        }
    }

    #[test]
    fn dialects_have_the_same_versions() {
        let versions = |d: Dialect| d.embedded().iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(versions(Dialect::Sqlite), versions(Dialect::Postgres));
    }
}
