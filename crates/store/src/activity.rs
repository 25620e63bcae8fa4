//! The activity log: appended one entry per operation as it completes, searched by operators.

use crate::SqlStore;
use crate::backend::with_pool;
use crate::columns::{ActivityRow, fold_name};
use crate::commit::write_one;
use crate::error::StoreError;
use scimsync_core::activity::{ActivityEntry, ActivityQuery};
use sqlx::{Database, Encode, QueryBuilder, Type};
use std::collections::HashMap;

const ACTIVITY_COLUMNS: &str =
    "id, run_id, connection, at, op, outcome, object, source_id, target_id, name, detail, attempts";

/// Most characters of an activity entry's name that are stored.
pub const MAX_NAME_CHARS: usize = 512;
/// Most characters of an activity entry's detail that are stored.
pub const MAX_DETAIL_CHARS: usize = 4096;

/// `text` cut to `max` characters, saying how much was left out.
pub(crate) fn capped(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => std::borrow::Cow::Owned(format!(
            "{}… ({} more bytes not stored)",
            &text[..cut],
            text.len() - cut
        )),
    }
}

/// Most identifiers an entry is also found by (a membership batch names each member's).
pub const MAX_SUBJECTS: usize = 5_000;
/// Rows of `activity_subjects` per INSERT (two bound values each, well within SQLite's limit).
const SUBJECTS_PER_INSERT: usize = 500;

/// The identifiers of `subjects` that the entry's own columns do not already give, folded,
/// bounded like names, without duplicates, at most [`MAX_SUBJECTS`].
fn folded_subjects(entry: &ActivityEntry, subjects: &[String]) -> Vec<String> {
    let own = [
        Some(fold_name(&entry.name)),
        entry.source_id.as_deref().map(fold_name),
        entry.target_id.as_deref().map(fold_name),
    ];
    let mut out: Vec<String> = subjects
        .iter()
        .map(|s| fold_name(capped(s.trim(), MAX_NAME_CHARS).as_ref()))
        .filter(|s| !s.is_empty() && !own.iter().flatten().any(|o| o == s))
        .collect();
    out.sort_unstable();
    out.dedup();
    out.truncate(MAX_SUBJECTS);
    out
}

impl SqlStore {
    /// Records `entry`, findable also by `subjects` (other identifiers of the users it
    /// concerns), in one transaction when there are any.
    pub(crate) async fn insert_activity(
        &self,
        entry: &ActivityEntry,
        subjects: &[String],
    ) -> Result<i64, StoreError> {
        // Values come from the directory and the target: bounded before they are stored.
        // Owned: on SQLite the statements run in the store's writer task (group commit).
        let name = capped(&entry.name, MAX_NAME_CHARS).into_owned();
        let detail = capped(&entry.detail, MAX_DETAIL_CHARS).into_owned();
        let subjects = folded_subjects(entry, subjects);
        let e = entry.clone();
        const SQL: &str = "INSERT INTO activity \
                           (run_id, connection, at, op, outcome, object, source_id, target_id, name, name_folded, detail, attempts) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";
        let result: Result<i64, sqlx::Error> = write_one!(self, |conn| {
            let insert = sqlx::query_scalar(SQL)
                .bind(e.run_id)
                .bind(e.connection.as_str())
                .bind(e.at.millis())
                .bind(e.op.as_str())
                .bind(e.outcome.as_str())
                .bind(e.object.as_str())
                .bind(e.source_id.as_deref())
                .bind(e.target_id.as_deref())
                .bind(name.as_str())
                .bind(fold_name(&name))
                .bind(detail.as_str())
                .bind(i64::from(e.attempts));
            if subjects.is_empty() {
                return insert.fetch_one(&mut *conn).await;
            }
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let id: i64 = insert.fetch_one(&mut *tx).await?;
            for chunk in subjects.chunks(SUBJECTS_PER_INSERT) {
                let mut rows =
                    QueryBuilder::new("INSERT INTO activity_subjects (activity_id, subject) ");
                rows.push_values(chunk, |mut row, subject| {
                    row.push_bind(id).push_bind(subject.clone());
                });
                rows.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(id)
        });
        result.map_err(|source| match &source {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::ActivityWithoutRun {
                    run_id: entry.run_id,
                    op: entry.op.clone(),
                }
            }
            _ => StoreError::RecordActivity {
                run_id: entry.run_id,
                op: entry.op.clone(),
                source,
            },
        })
    }

    /// Per source id, the detail of the newest `reject` entry of the connection (as stored,
    /// so capped like any detail): what the engine compares a plan's rejections with to log
    /// each one once.
    pub(crate) async fn select_logged_rejections(
        &self,
        connection: &str,
    ) -> Result<HashMap<String, String>, StoreError> {
        // `activity_op (op, id)` narrows it to the rejections; the newest per source id wins.
        const SQL: &str = "SELECT source_id, detail FROM activity WHERE id IN \
                           (SELECT MAX(id) FROM activity WHERE op = 'reject' AND connection = $1 \
                           AND source_id IS NOT NULL GROUP BY source_id)";
        let rows: Result<Vec<(String, String)>, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query_as(SQL).bind(connection).fetch_all(pool).await
        });
        rows.map(|rows| rows.into_iter().collect())
            .map_err(|source| StoreError::ConnectionHistory {
                connection: connection.to_owned(),
                what: "the rejections logged",
                source,
            })
    }

    pub(crate) async fn select_activity(
        &self,
        query: &ActivityQuery,
    ) -> Result<Vec<ActivityEntry>, StoreError> {
        let rows: Result<Vec<ActivityRow>, sqlx::Error> = with_pool!(&self.backend, |pool| {
            let mut sql = activity_search(query);
            sql.build_query_as().fetch_all(pool).await
        });
        rows.map_err(|source| StoreError::QueryActivity { source })?
            .into_iter()
            .map(ActivityRow::into_entry)
            .collect()
    }
}

impl SqlStore {
    /// How many entries `query` matches, its limit aside (`activity` says how many more there
    /// are than it printed).
    pub async fn count_activity(&self, query: &ActivityQuery) -> Result<u64, StoreError> {
        let n: Result<i64, sqlx::Error> = with_pool!(&self.backend, |pool| {
            let mut sql = activity_count(query);
            sql.build_query_scalar().fetch_one(pool).await
        });
        n.map(|n| u64::try_from(n).unwrap_or_default())
            .map_err(|source| StoreError::Count {
                table: "activity",
                source,
            })
    }

    /// Whether any entry has the operation kind `op` (one this version does not write may come
    /// from an earlier one).
    pub async fn has_activity_op(&self, op: &str) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT id FROM activity WHERE op = $1 LIMIT 1";
        let found: Result<Option<i64>, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query_scalar(SQL).bind(op).fetch_optional(pool).await
        });
        found
            .map(|f| f.is_some())
            .map_err(|source| StoreError::Count {
                table: "activity",
                source,
            })
    }
}

/// The search of `query`, composed of only the filters it gives. Results come oldest first
/// (by id, the order of recording); with a limit, the newest `limit` of them.
fn activity_search<DB>(query: &ActivityQuery) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    String: for<'t> Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new(match query.limit {
        None => format!("SELECT {ACTIVITY_COLUMNS} FROM activity"),
        // The newest `limit` in a subquery, turned back to oldest first outside it.
        Some(_) => {
            format!("SELECT {ACTIVITY_COLUMNS} FROM (SELECT {ACTIVITY_COLUMNS} FROM activity")
        }
    });
    push_filters(&mut sql, query);
    match query.limit {
        None => sql.push(" ORDER BY id"),
        Some(limit) => sql
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(") AS newest ORDER BY id"),
    };
    sql
}

/// The count of the entries `query` matches, its limit aside.
fn activity_count<DB>(query: &ActivityQuery) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    String: for<'t> Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::new("SELECT COUNT(*) FROM activity");
    push_filters(&mut sql, query);
    sql
}

/// The `WHERE` clause of the filters `query` gives.
fn push_filters<DB>(sql: &mut QueryBuilder<DB>, query: &ActivityQuery)
where
    DB: Database,
    String: for<'t> Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
{
    let mut joiner = " WHERE ";
    let mut filter = |sql: &mut QueryBuilder<DB>| {
        sql.push(joiner);
        joiner = " AND ";
    };
    if let Some(connection) = &query.connection {
        filter(sql);
        sql.push("connection = ").push_bind(connection.clone());
    }
    if let Some(run_id) = query.run_id {
        filter(sql);
        sql.push("run_id = ").push_bind(run_id);
    }
    if let Some(user) = &query.user {
        filter(sql);
        // One indexed lookup per identifier column, as a set of ids: an OR of them (with the
        // subjects' subquery) makes PostgreSQL scan the whole log.
        sql.push("id IN (SELECT id FROM activity WHERE name_folded = ")
            .push_bind(fold_name(user))
            .push(" UNION SELECT id FROM activity WHERE source_id = ")
            .push_bind(user.clone())
            .push(" UNION SELECT id FROM activity WHERE target_id = ")
            .push_bind(user.clone())
            .push(" UNION SELECT activity_id FROM activity_subjects WHERE subject = ")
            .push_bind(fold_name(user))
            .push(")");
    }
    if let Some(op) = &query.op {
        filter(sql);
        sql.push("op = ").push_bind(op.clone());
    }
    if let Some(outcome) = query.outcome {
        filter(sql);
        sql.push("outcome = ")
            .push_bind(outcome.as_str().to_owned());
    }
    if let Some(since) = query.since {
        filter(sql);
        sql.push("at >= ").push_bind(since.millis());
    }
    if let Some(after_id) = query.after_id {
        filter(sql);
        sql.push("id > ").push_bind(after_id);
    }
    if let Some(before_id) = query.before_id {
        filter(sql);
        sql.push("id < ").push_bind(before_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimsync_core::activity::Outcome;
    use sqlx::{Postgres, Sqlite};

    #[test]
    fn only_the_given_filters_are_composed() {
        let none = activity_search::<Postgres>(&ActivityQuery::default()).into_string();
        assert_eq!(
            none,
            format!("SELECT {ACTIVITY_COLUMNS} FROM activity ORDER BY id")
        );

        let query = ActivityQuery {
            connection: Some("sf".into()),
            outcome: Some(Outcome::Failed),
            limit: Some(5),
            ..ActivityQuery::default()
        };
        let pg = activity_search::<Postgres>(&query).into_string();
        assert!(
            pg.ends_with("FROM activity WHERE connection = $1 AND outcome = $2 ORDER BY id DESC LIMIT $3) AS newest ORDER BY id"),
            "{pg}"
        );
        let lite = activity_search::<Sqlite>(&query).into_string();
        assert!(
            lite.contains("WHERE connection = ? AND outcome = ? ORDER BY id DESC LIMIT ?)"),
            "{lite}"
        );
    }
}
