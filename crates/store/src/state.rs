//! The stored state of each connection's linked target objects (`target_state`, migration 6):
//! one row per user or group, the core's `TargetUser` / `TargetGroup` as compact JSON, and
//! whether it is doubtful. Loaded as a stream of rows (a connection of 100,000 users is one
//! pass, without holding every raw row at once); a full read replaces the rows in one
//! transaction; writes go in chunks of [`ROWS_PER_INSERT`].

use crate::SqlStore;
use crate::backend::with_pool;
use crate::error::StoreError;
use futures::TryStreamExt;
use scimsync_core::state::StoredState;
use scimsync_core::target::{TargetGroup, TargetUser};
use scimsync_core::{TargetGroupId, TargetUserId};
use sqlx::{QueryBuilder, Row};

/// `INSERT` of `rows` (not doubtful) into a query builder of the pool's dialect; with
/// `upsert`, a row already there is replaced. A macro, as `with_pool!` types one body per
/// backend.
macro_rules! insert_rows {
    ($connection:expr, $rows:expr, $upsert:expr) => {{
        let mut q = QueryBuilder::new(
            "INSERT INTO target_state (connection, kind, target_id, state, doubtful) ",
        );
        q.push_values($rows, |mut row, (kind, id, json)| {
            row.push_bind($connection.to_owned())
                .push_bind(kind.to_owned())
                .push_bind(id.clone())
                .push_bind(json.clone())
                .push_bind(false);
        });
        if $upsert {
            q.push(
                " ON CONFLICT (connection, kind, target_id) DO UPDATE SET \
                 state = excluded.state, doubtful = excluded.doubtful",
            );
        }
        q
    }};
}

/// Rows per multi-row statement (5 binds each: well under SQLite's and PostgreSQL's limits).
const ROWS_PER_INSERT: usize = 500;

/// Marks one object's row doubtful (binds: connection, kind, target id).
const MARK_DOUBTFUL: &str = "UPDATE target_state SET doubtful = TRUE \
                             WHERE connection = $1 AND kind = $2 AND target_id = $3";

/// The (kind, target id) keys of these users and groups, as the rows name them.
fn keys<'k>(
    users: impl IntoIterator<Item = &'k TargetUserId>,
    groups: impl IntoIterator<Item = &'k TargetGroupId>,
) -> Vec<(&'static str, &'k str)> {
    users
        .into_iter()
        .map(|u| ("user", u.as_str()))
        .chain(groups.into_iter().map(|g| ("group", g.as_str())))
        .collect()
}

/// One row to write: kind, target id, JSON.
type StateRow = (&'static str, String, String);

impl SqlStore {
    pub(crate) async fn select_state(&self, connection: &str) -> Result<StoredState, StoreError> {
        const SQL: &str = "SELECT kind, target_id, state, doubtful FROM target_state \
                           WHERE connection = $1 ORDER BY kind DESC, target_id";
        let load_err = |source| StoreError::LoadState {
            connection: connection.to_owned(),
            source,
        };
        let mut state = StoredState::default();
        let mut decode_error = None;
        let result: Result<(), sqlx::Error> = with_pool!(&self.backend, |pool| {
            async {
                let mut rows = sqlx::query(SQL).bind(connection).fetch(pool);
                while let Some(row) = rows.try_next().await? {
                    let kind: String = row.try_get(0)?;
                    let id: String = row.try_get(1)?;
                    let json: String = row.try_get(2)?;
                    let doubtful: bool = row.try_get(3)?;
                    let decoded = if kind == "group" {
                        serde_json::from_str::<TargetGroup>(&json).map(|g| {
                            if doubtful {
                                state.doubtful_groups.insert(g.id.clone());
                            }
                            state.groups.push(g);
                        })
                    } else {
                        serde_json::from_str::<TargetUser>(&json).map(|u| {
                            if doubtful {
                                state.doubtful_users.insert(u.id.clone());
                            }
                            state.users.push(u);
                        })
                    };
                    if let Err(source) = decoded {
                        decode_error = Some(StoreError::DecodeState {
                            connection: connection.to_owned(),
                            kind,
                            target_id: id,
                            source,
                        });
                        break;
                    }
                }
                Ok(())
            }
            .await
        });
        result.map_err(load_err)?;
        match decode_error {
            Some(e) => Err(e),
            None => Ok(state),
        }
    }

    fn state_rows(
        connection: &str,
        users: &[TargetUser],
        groups: &[TargetGroup],
    ) -> Result<Vec<StateRow>, StoreError> {
        let encode = |kind: &'static str, id: &str, r: serde_json::Result<String>| {
            r.map(|json| (kind, id.to_owned(), json))
                .map_err(|source| StoreError::EncodeState {
                    connection: connection.to_owned(),
                    kind: kind.to_owned(),
                    target_id: id.to_owned(),
                    source,
                })
        };
        let mut rows = Vec::with_capacity(users.len() + groups.len());
        for u in users {
            rows.push(encode("user", u.id.as_str(), serde_json::to_string(u))?);
        }
        for g in groups {
            rows.push(encode("group", g.id.as_str(), serde_json::to_string(g))?);
        }
        Ok(rows)
    }

    pub(crate) async fn upsert_state(
        &self,
        connection: &str,
        users: &[TargetUser],
        groups: &[TargetGroup],
    ) -> Result<(), StoreError> {
        let rows = Self::state_rows(connection, users, groups)?;
        if rows.is_empty() {
            return Ok(());
        }
        let result: Result<(), sqlx::Error> = with_pool!(&self.backend, |pool| {
            async {
                let mut tx = pool.begin().await?;
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    insert_rows!(connection, chunk, true)
                        .build()
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            .await
        });
        result.map_err(|source| StoreError::SaveState {
            connection: connection.to_owned(),
            source,
        })
    }

    /// Sets `doubtful` (`Some(true)`) or deletes (`None`) the rows of these objects.
    pub(crate) async fn change_state(
        &self,
        connection: &str,
        users: &[TargetUserId],
        groups: &[TargetGroupId],
        doubtful: bool,
    ) -> Result<(), StoreError> {
        let keys = keys(users, groups);
        if keys.is_empty() {
            return Ok(());
        }
        let sql = if doubtful {
            MARK_DOUBTFUL
        } else {
            "DELETE FROM target_state WHERE connection = $1 AND kind = $2 AND target_id = $3"
        };
        let result: Result<(), sqlx::Error> = with_pool!(&self.backend, |pool| {
            async {
                let mut tx = pool.begin().await?;
                for (kind, id) in &keys {
                    sqlx::query(sql)
                        .bind(connection)
                        .bind(*kind)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            .await
        });
        result.map_err(|source| StoreError::SaveState {
            connection: connection.to_owned(),
            source,
        })
    }

    pub(crate) async fn replace_all_state(
        &self,
        connection: &str,
        state: &StoredState,
    ) -> Result<(), StoreError> {
        let rows = Self::state_rows(connection, &state.users, &state.groups)?;
        let doubtful = keys(&state.doubtful_users, &state.doubtful_groups);
        let result: Result<(), sqlx::Error> = with_pool!(&self.backend, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM target_state WHERE connection = $1")
                    .bind(connection)
                    .execute(&mut *tx)
                    .await?;
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    insert_rows!(connection, chunk, false)
                        .build()
                        .execute(&mut *tx)
                        .await?;
                }
                for (kind, id) in &doubtful {
                    sqlx::query(MARK_DOUBTFUL)
                        .bind(connection)
                        .bind(*kind)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            .await
        });
        result.map_err(|source| StoreError::SaveState {
            connection: connection.to_owned(),
            source,
        })
    }
}
