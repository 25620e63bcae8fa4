//! Links: which target object belongs to which source object, per connection. Each save is
//! one upsert keyed by (connection, source id); a target id belongs to one source object.
//! Loading them also brings the connection's held refusals and target facts (saved by
//! `refusals.rs` and `facts.rs`), which the planner reads with them.

use crate::SqlStore;
use crate::backend::with_pool;
use crate::columns::{
    GroupLinkRow, RefusalRow, UserLinkJson, UserLinkRow, origin_text, parse_facts,
};
use crate::commit::write_one;
use crate::error::StoreError;
use futures::TryStreamExt as _;
use scimsync_core::links::{GroupLink, HeldRefusal, Links, UserLink};

impl SqlStore {
    /// The links, held refusals and target facts of a connection. Refusals come ordered by
    /// object (users, then groups: the core's order of `ObjectKind`), source id and attribute,
    /// sorted here rather than by the database, whose text collation differs between dialects
    /// and installations. Facts are the default when none were saved.
    pub(crate) async fn select_links(&self, connection: &str) -> Result<Links, StoreError> {
        // `user_links.refusals` is no longer read (migration 3).
        const USERS: &str = "SELECT source_id, target_id, origin, assigned_permission_sets, pending_email \
                             FROM user_links WHERE connection = $1 ORDER BY source_id";
        const GROUPS: &str = "SELECT source_id, target_id, origin FROM group_links \
                              WHERE connection = $1 ORDER BY source_id";
        const REFUSALS: &str = "SELECT object, source_id, attribute, fingerprint, value, reason, at \
                                FROM refusals WHERE connection = $1";
        const FACTS: &str = "SELECT facts FROM target_facts WHERE connection = $1";
        let load = |source| StoreError::LoadLinks {
            connection: connection.to_owned(),
            source,
        };
        // Links are taken row by row as the database streams them (a connection's links are
        // one per user: no list of raw rows is held beside the links).
        let loaded: Result<(Links, Vec<RefusalRow>, Option<String>), StoreError> =
            with_pool!(&self.backend, |pool| {
                async {
                    let mut links = Links::default();
                    let mut rows = sqlx::query_as::<_, UserLinkRow>(USERS)
                        .bind(connection)
                        .fetch(pool);
                    while let Some(row) = rows.try_next().await.map_err(load)? {
                        links.users.push(row.into_link(connection)?);
                    }
                    drop(rows);
                    let mut rows = sqlx::query_as::<_, GroupLinkRow>(GROUPS)
                        .bind(connection)
                        .fetch(pool);
                    while let Some(row) = rows.try_next().await.map_err(load)? {
                        links.groups.push(row.into_link(connection)?);
                    }
                    drop(rows);
                    let refusals = sqlx::query_as(REFUSALS)
                        .bind(connection)
                        .fetch_all(pool)
                        .await
                        .map_err(load)?;
                    let facts = sqlx::query_scalar(FACTS)
                        .bind(connection)
                        .fetch_optional(pool)
                        .await
                        .map_err(load)?;
                    Ok((links, refusals, facts))
                }
                .await
            });
        let (mut links, refusals, facts) = loaded?;
        links.users.shrink_to_fit();
        links.groups.shrink_to_fit();
        let mut refusals: Vec<HeldRefusal> = refusals
            .into_iter()
            .map(|row| row.into_refusal(connection))
            .collect::<Result<_, _>>()?;
        refusals.sort_unstable_by(|a, b| {
            (a.object, &a.source_id, &a.attribute).cmp(&(b.object, &b.source_id, &b.attribute))
        });
        links.refusals = refusals;
        links.facts = facts
            .map(|json| parse_facts(connection, &json))
            .transpose()?
            .unwrap_or_default();
        Ok(links)
    }

    pub(crate) async fn upsert_user_link(
        &self,
        connection: &str,
        link: &UserLink,
    ) -> Result<(), StoreError> {
        // `refusals` is a column no longer read (migration 3): always '[]'.
        const SQL: &str = "INSERT INTO user_links \
                           (connection, source_id, target_id, origin, assigned_permission_sets, pending_email, refusals) \
                           VALUES ($1, $2, $3, $4, $5, $6, '[]') \
                           ON CONFLICT (connection, source_id) DO UPDATE SET \
                           target_id = excluded.target_id, origin = excluded.origin, \
                           assigned_permission_sets = excluded.assigned_permission_sets, \
                           pending_email = excluded.pending_email, refusals = '[]'";
        let json = UserLinkJson::encode(connection, link)?;
        let (conn_name, link_row) = (connection.to_owned(), link.clone());
        let result = write_one!(self, |conn| {
            sqlx::query(SQL)
                .bind(conn_name.as_str())
                .bind(link_row.source_id.as_str())
                .bind(link_row.target_id.as_str())
                .bind(origin_text(link_row.origin))
                .bind(json.assigned_permission_sets)
                .bind(json.pending_email)
                .execute(&mut *conn)
                .await
                .map(|_| 0)
        })
        .map(drop);
        self.link_saved(
            result,
            connection,
            "user",
            link.source_id.as_str(),
            link.target_id.as_str(),
        )
        .await
    }

    pub(crate) async fn upsert_group_link(
        &self,
        connection: &str,
        link: &GroupLink,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO group_links (connection, source_id, target_id, origin) \
                           VALUES ($1, $2, $3, $4) \
                           ON CONFLICT (connection, source_id) DO UPDATE SET \
                           target_id = excluded.target_id, origin = excluded.origin";
        let (conn_name, link_row) = (connection.to_owned(), link.clone());
        let result = write_one!(self, |conn| {
            sqlx::query(SQL)
                .bind(conn_name.as_str())
                .bind(link_row.source_id.as_str())
                .bind(link_row.target_id.as_str())
                .bind(origin_text(link_row.origin))
                .execute(&mut *conn)
                .await
                .map(|_| 0)
        })
        .map(drop);
        self.link_saved(
            result,
            connection,
            "group",
            link.source_id.as_str(),
            link.target_id.as_str(),
        )
        .await
    }

    /// Turns the result of an upsert into the store's answer. The upsert handles a conflict on
    /// the source id, so a unique violation can only be the target id, held by another source
    /// object: say which.
    async fn link_saved(
        &self,
        result: Result<(), sqlx::Error>,
        connection: &str,
        object: &'static str,
        source_id: &str,
        target_id: &str,
    ) -> Result<(), StoreError> {
        let source = match result {
            Ok(()) => return Ok(()),
            Err(source) => source,
        };
        let save_error = |source| StoreError::SaveLink {
            connection: connection.to_owned(),
            object,
            source_id: source_id.to_owned(),
            source,
        };
        let is_unique = matches!(&source, sqlx::Error::Database(db) if db.is_unique_violation());
        if !is_unique {
            return Err(save_error(source));
        }
        let holder_sql = match object {
            "user" => "SELECT source_id FROM user_links WHERE connection = $1 AND target_id = $2",
            _ => "SELECT source_id FROM group_links WHERE connection = $1 AND target_id = $2",
        };
        let holder: Result<Option<String>, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query_scalar(holder_sql)
                .bind(connection)
                .bind(target_id)
                .fetch_optional(pool)
                .await
        });
        let linked_to = holder.map_err(save_error)?.unwrap_or_default();
        tracing::warn!(connection, object, source_id, target_id, linked_to = %linked_to, "Link refused: target id already linked.");
        Err(StoreError::TargetAlreadyLinked {
            connection: connection.to_owned(),
            object,
            source_id: source_id.to_owned(),
            target_id: target_id.to_owned(),
            linked_to,
        })
    }
}
