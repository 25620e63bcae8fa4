//! Where the store lives: a store URL parsed into the options of one backend.
//!
//! Accepted forms: `sqlite://PATH` or `sqlite:PATH` (with sqlx's query options), a plain file
//! path (SQLite), `sqlite::memory:`, and `postgres://…` / `postgresql://…` (with sqlx's query
//! options, and our own `schema=NAME`: the tables live in schema `NAME`, created if missing).

use crate::error::StoreError;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// How long a SQLite writer waits for another connection's write lock before giving up.
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows per index that `ANALYZE` / `PRAGMA optimize` look at (SQLite's recommended value).
pub(crate) const ANALYSIS_LIMIT: u32 = 400;

/// A store URL, parsed.
#[derive(Debug)]
pub(crate) enum Location {
    Sqlite {
        options: SqliteConnectOptions,
        /// An in-memory database lives only while a connection is open: the pool must keep one.
        in_memory: bool,
    },
    Postgres {
        options: PgConnectOptions,
        /// The `schema=` parameter: the store's tables live there (the connections'
        /// `search_path`), and it is created at connect if missing.
        schema: Option<String>,
    },
}

impl Location {
    /// Parses a store URL. `shown` is the URL with any password removed, for messages.
    pub(crate) fn parse(url: &str, shown: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        let invalid = |source| StoreError::InvalidUrl {
            url: shown.to_owned(),
            source,
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (url, schema) = take_schema(url, shown)?;
            let options = PgConnectOptions::from_str(&url).map_err(invalid)?;
            // Named in `pg_stat_activity` unless the URL names it otherwise.
            let options = match options.get_application_name() {
                Some(_) => options,
                None => options.application_name("scimsync"),
            };
            let options = match &schema {
                Some(name) => options.options([("search_path", name.as_str())]),
                None => options,
            };
            return Ok(Self::Postgres { options, schema });
        }
        let (options, in_memory) = if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            (
                SqliteConnectOptions::from_str(url).map_err(invalid)?,
                in_memory,
            )
        } else if url.is_empty() || url.contains("://") {
            return Err(StoreError::UnsupportedUrl {
                url: shown.to_owned(),
            });
        } else {
            (SqliteConnectOptions::new().filename(url), false)
        };
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            // Every outcome is committed as it happens so an interrupted run resumes without
            // duplicates: FULL makes each commit survive a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            // SQLite never gathers planner statistics by itself; without them a search of one
            // connection since a time sorts its whole log. `PRAGMA optimize` as each pooled
            // connection closes (they are recycled) keeps them fresh at a bounded cost.
            .analysis_limit(ANALYSIS_LIMIT)
            .optimize_on_close(true, ANALYSIS_LIMIT);
        let options = if in_memory {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        };
        Ok(Self::Sqlite { options, in_memory })
    }
}

/// `url` with a relative SQLite file path made absolute against `base` (the configuration
/// file's folder, so the store does not follow the shell's current folder; `base` itself is
/// made absolute against the current folder). PostgreSQL URLs, in-memory databases and
/// absolute paths are returned as they are; `sqlite://`, `sqlite:` and plain paths keep their
/// form and their query options.
pub fn resolve_sqlite_path(url: &str, base: &std::path::Path) -> String {
    let trimmed = url.trim();
    if trimmed.starts_with("postgres://")
        || trimmed.starts_with("postgresql://")
        || trimmed.contains(":memory:")
        || trimmed.contains("mode=memory")
    {
        return url.to_owned();
    }
    let (prefix, rest) = if let Some(rest) = trimmed.strip_prefix("sqlite://") {
        ("sqlite://", rest)
    } else if let Some(rest) = trimmed.strip_prefix("sqlite:") {
        ("sqlite:", rest)
    } else if trimmed.contains("://") {
        // Not ours: `Location::parse` reports it.
        return url.to_owned();
    } else {
        ("", trimmed)
    };
    let (file, query) = match rest.split_once('?') {
        Some((file, query)) => (file, Some(query)),
        None => (rest, None),
    };
    let path = std::path::Path::new(file);
    if file.is_empty() || path.is_absolute() {
        return url.to_owned();
    }
    let joined = base.join(path);
    let absolute = std::path::absolute(&joined).unwrap_or(joined);
    let mut out = format!("{prefix}{}", absolute.display());
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Takes our `schema=NAME` parameter out of a PostgreSQL URL (sqlx does not know it).
fn take_schema(url: &str, shown: &str) -> Result<(String, Option<String>), StoreError> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Left for sqlx to report.
        return Ok((url.to_owned(), None));
    };
    let mut schema = None;
    let mut rest: Vec<(String, String)> = Vec::new();
    for (key, value) in parsed.query_pairs() {
        if key == "schema" {
            schema = Some(value.into_owned());
        } else {
            rest.push((key.into_owned(), value.into_owned()));
        }
    }
    let Some(schema) = schema else {
        return Ok((url.to_owned(), None));
    };
    if !is_schema_name(&schema) {
        return Err(StoreError::InvalidSchema {
            url: shown.to_owned(),
            schema,
        });
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    Ok((parsed.into(), Some(schema)))
}

/// A schema name we can put in SQL unquoted and mean the same thing everywhere: lower-case
/// letters, digits and `_`, not starting with a digit, at most 63 bytes (PostgreSQL's limit).
pub(crate) fn is_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

/// The URL as it may be shown: any password (in the user-info part or a `password=` query
/// parameter) replaced by `REDACTED`.
pub(crate) fn redact(url: &str) -> String {
    const MASK: &str = "REDACTED";
    let Ok(mut parsed) = url::Url::parse(url.trim()) else {
        // A plain path or something unparseable: only a password-shaped part is worth hiding.
        return if url.contains('@') && url.contains("://") {
            "<store URL not shown: it cannot be parsed and may hold a password>".to_owned()
        } else {
            url.to_owned()
        };
    };
    if parsed.password().is_some() {
        // Fails only for URLs that cannot have a user-info part, which then has no password.
        let _ = parsed.set_password(Some(MASK));
    }
    if parsed
        .query_pairs()
        .any(|(key, _)| key.eq_ignore_ascii_case("password"))
    {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if key.eq_ignore_ascii_case("password") {
                    MASK.to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_are_resolved_against_the_base() {
        let base = std::path::Path::new("/etc/scimsync");
        assert_eq!(
            resolve_sqlite_path("sqlite://state.db", base),
            "sqlite:///etc/scimsync/state.db"
        );
        assert_eq!(
            resolve_sqlite_path("sqlite:data/s.db?mode=rwc", base),
            "sqlite:/etc/scimsync/data/s.db?mode=rwc"
        );
        assert_eq!(resolve_sqlite_path("s.db", base), "/etc/scimsync/s.db");
        for kept in [
            "sqlite:///var/lib/s.db",
            "/var/lib/s.db",
            "sqlite::memory:",
            "postgres://db/x",
        ] {
            assert_eq!(resolve_sqlite_path(kept, base), kept);
        }
    }

    #[test]
    fn redact_hides_passwords_and_keeps_the_rest() {
        assert_eq!(
            redact("postgres://scim:hunter2@db.internal:5432/scimsync"),
            "postgres://scim:REDACTED@db.internal:5432/scimsync"
        );
        let shown = redact("postgres://scim@db/scimsync?password=hunter2&sslmode=require");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact("/var/lib/scimsync/store.db"),
            "/var/lib/scimsync/store.db"
        );
        assert_eq!(redact("sqlite://data/store.db"), "sqlite://data/store.db");
    }

    #[test]
    fn parse_picks_the_backend_from_the_url() {
        let sqlite = |url: &str| match Location::parse(url, url) {
            Ok(Location::Sqlite { options, in_memory }) => {
                (options.get_filename().to_path_buf(), in_memory)
            }
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(
            sqlite("data/store.db").0,
            std::path::Path::new("data/store.db")
        );
        assert_eq!(
            sqlite("sqlite://data/store.db").0,
            std::path::Path::new("data/store.db")
        );
        assert!(sqlite("sqlite::memory:").1);
        assert!(matches!(
            Location::parse("postgres://u@h/db", "postgres://u@h/db"),
            Ok(Location::Postgres { schema: None, .. })
        ));
        match Location::parse("postgres://u@h/db?schema=tenant_a&sslmode=disable", "") {
            Ok(Location::Postgres { schema, options }) => {
                assert_eq!(schema.as_deref(), Some("tenant_a"));
                assert_eq!(options.get_options(), Some("-c search_path=tenant_a"));
            }
            other => panic!("{other:?}"),
        }
        for bad in ["Tenant", "1st", "a-b", "x; DROP TABLE runs", ""] {
            let url = format!("postgres://u@h/db?schema={bad}");
            assert!(
                matches!(
                    Location::parse(&url, &url),
                    Err(StoreError::InvalidSchema { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Location::parse("mysql://u@h/db", "mysql://u@h/db"),
            Err(StoreError::UnsupportedUrl { .. })
        ));
        assert!(matches!(
            Location::parse("  ", ""),
            Err(StoreError::UnsupportedUrl { .. })
        ));
    }
}
