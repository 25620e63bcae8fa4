//! Leases: a connection is run by one holder (a daemon) at a time. The holder renews its
//! lease before it expires; a lease whose holder died expires and another holder takes it.
//!
//! Taking is one atomic upsert, so two daemons racing on PostgreSQL cannot both win. Expiry
//! is judged by the `now` the caller passes, so daemons sharing a database need clocks in
//! step (NTP) to within a small part of the lease's time to live.

use crate::SqlStore;
use crate::backend::with_pool;
use crate::error::StoreError;
use scimsync_core::Timestamp;
use std::time::Duration;

/// A lease as the store holds it: who runs a connection, since when, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub connection: String,
    pub holder: String,
    /// When `holder` took it (renewals keep this).
    pub acquired_at: Timestamp,
    /// Held until then unless renewed; after it, anyone may take it.
    pub expires_at: Timestamp,
}

impl Lease {
    /// Whether the lease still binds others at `now`.
    pub fn is_held_at(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}

impl SqlStore {
    pub(crate) async fn take_lease(
        &self,
        connection: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        // The update happens only when the row is ours or expired; otherwise no row comes back.
        const SQL: &str = "INSERT INTO leases (connection, holder, acquired_at, expires_at) \
                           VALUES ($1, $2, $3, $4) \
                           ON CONFLICT (connection) DO UPDATE SET \
                           holder = excluded.holder, expires_at = excluded.expires_at, \
                           acquired_at = CASE WHEN leases.holder = excluded.holder \
                           THEN leases.acquired_at ELSE excluded.acquired_at END \
                           WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.acquired_at \
                           RETURNING holder";
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_at = now.millis().saturating_add(ttl_ms);
        let taken: Result<Option<String>, sqlx::Error> = with_pool!(&self.backend, |pool| {
            sqlx::query_scalar(SQL)
                .bind(connection)
                .bind(holder)
                .bind(now.millis())
                .bind(expires_at)
                .fetch_optional(pool)
                .await
        });
        let taken = taken
            .map_err(|source| StoreError::AcquireLease {
                connection: connection.to_owned(),
                holder: holder.to_owned(),
                source,
            })?
            .is_some();
        tracing::debug!(connection, holder, taken, expires_at, "Lease asked for.");
        Ok(taken)
    }

    pub(crate) async fn drop_lease(
        &self,
        connection: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM leases WHERE connection = $1 AND holder = $2";
        let result = with_pool!(&self.backend, |pool| {
            sqlx::query(SQL)
                .bind(connection)
                .bind(holder)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        });
        let released = result.map_err(|source| StoreError::ReleaseLease {
            connection: connection.to_owned(),
            holder: holder.to_owned(),
            source,
        })?;
        tracing::debug!(
            connection,
            holder,
            released = released > 0,
            "Lease released."
        );
        Ok(())
    }

    /// Every lease the store holds, expired or not, by connection: which daemon runs what
    /// (for status pages). Compare `expires_at` with the current time to tell live ones.
    pub async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        const SQL: &str =
            "SELECT connection, holder, acquired_at, expires_at FROM leases ORDER BY connection";
        let rows: Result<Vec<(String, String, i64, i64)>, sqlx::Error> =
            with_pool!(&self.backend, |pool| sqlx::query_as(SQL)
                .fetch_all(pool)
                .await);
        Ok(rows
            .map_err(|source| StoreError::ListLeases { source })?
            .into_iter()
            .map(|(connection, holder, acquired_at, expires_at)| Lease {
                connection,
                holder,
                acquired_at: Timestamp(acquired_at),
                expires_at: Timestamp(expires_at),
            })
            .collect())
    }

    pub(crate) async fn select_lease(
        &self,
        connection: &str,
    ) -> Result<Option<scimsync_core::ports::LeaseHolder>, StoreError> {
        const SQL: &str =
            "SELECT holder, acquired_at, expires_at FROM leases WHERE connection = $1";
        let row: Result<Option<(String, i64, i64)>, sqlx::Error> =
            with_pool!(&self.backend, |pool| sqlx::query_as(SQL)
                .bind(connection)
                .fetch_optional(pool)
                .await);
        Ok(row
            .map_err(|source| StoreError::ListLeases { source })?
            .map(
                |(holder, acquired_at, expires_at)| scimsync_core::ports::LeaseHolder {
                    holder,
                    acquired_at: Timestamp(acquired_at),
                    expires_at: Timestamp(expires_at),
                },
            ))
    }

    pub(crate) async fn mark_abandoned(
        &self,
        connection: &str,
        before: Timestamp,
        at: Timestamp,
        message: &str,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "UPDATE runs SET status = 'abandoned', finished_at = $3, message = $4 \
                           WHERE connection = $1 AND status = 'running' AND dry_run = $5 \
                           AND started_at < $2";
        let result = with_pool!(&self.backend, |pool| {
            sqlx::query(SQL)
                .bind(connection)
                .bind(before.millis())
                .bind(at.millis())
                .bind(message)
                .bind(false)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        });
        let abandoned = result.map_err(|source| StoreError::AbandonRuns {
            connection: connection.to_owned(),
            source,
        })?;
        if abandoned > 0 {
            tracing::warn!(
                connection,
                abandoned,
                "Runs left running by a holder that died marked abandoned."
            );
        }
        Ok(abandoned)
    }
}
