//! What the engine learned of a connection's target (the last discovery, the member batch size
//! it accepted, profiles without groups): one row per connection holding the core's
//! `TargetFacts` as JSON text, replaced whole on each save and loaded with the links.

use crate::SqlStore;
use crate::backend::with_pool;
use crate::error::StoreError;
use scimsync_core::links::TargetFacts;
use std::time::{SystemTime, UNIX_EPOCH};

impl SqlStore {
    /// Inserts or replaces the facts of the connection's target.
    pub(crate) async fn upsert_facts(
        &self,
        connection: &str,
        facts: &TargetFacts,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO target_facts (connection, facts, updated_at) \
                           VALUES ($1, $2, $3) \
                           ON CONFLICT (connection) DO UPDATE SET \
                           facts = excluded.facts, updated_at = excluded.updated_at";
        let json = serde_json::to_string(facts).map_err(|source| StoreError::EncodeFacts {
            connection: connection.to_owned(),
            source,
        })?;
        let result = with_pool!(&self.backend, |pool| {
            sqlx::query(SQL)
                .bind(connection)
                .bind(json.as_str())
                .bind(now_millis())
                .execute(pool)
                .await
                .map(drop)
        });
        result.map_err(|source| StoreError::SaveFacts {
            connection: connection.to_owned(),
            source,
        })
    }
}

/// The store's clock, in milliseconds since the epoch, for `target_facts.updated_at` (shown to
/// people, never compared; the port passes no time for facts). 0 if the clock is before 1970.
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}
