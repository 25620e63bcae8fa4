//! Held refusals: writes the target refused with a non-retryable answer, one row per
//! (connection, object, source id, attribute), kept until the engine clears them or a write of
//! another fingerprint replaces them. They are loaded with the links (`links.rs`).
//!
//! `value` and `reason` are cut to [`crate::columns::MAX_REFUSAL_TEXT`] characters before they
//! are written: the reason is the target's error body, verbatim, and a hostile or broken target
//! must not be able to fill the database with it. Neither holds secrets: the engine records
//! what was sent (a profile, an email) and what the target answered.

use crate::SqlStore;
use crate::backend::with_pool;
use crate::columns::{bounded, object_text};
use crate::error::StoreError;
use scimsync_core::links::HeldRefusal;
use scimsync_core::plan::ObjectKind;

impl SqlStore {
    /// Inserts the refusal, or replaces the one of the same (object, source id, attribute).
    pub(crate) async fn upsert_refusal(
        &self,
        connection: &str,
        refusal: &HeldRefusal,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO refusals \
                           (connection, object, source_id, attribute, fingerprint, value, reason, at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                           ON CONFLICT (connection, object, source_id, attribute) DO UPDATE SET \
                           fingerprint = excluded.fingerprint, value = excluded.value, \
                           reason = excluded.reason, at = excluded.at";
        let object = object_text(refusal.object);
        let result = with_pool!(&self.backend, |pool| {
            sqlx::query(SQL)
                .bind(connection)
                .bind(object)
                .bind(refusal.source_id.as_str())
                .bind(refusal.attribute.as_str())
                .bind(refusal.fingerprint.as_str())
                .bind(bounded(&refusal.value))
                .bind(bounded(&refusal.reason))
                .bind(refusal.at.millis())
                .execute(pool)
                .await
                .map(drop)
        });
        result.map_err(|source| StoreError::SaveRefusal {
            connection: connection.to_owned(),
            object,
            source_id: refusal.source_id.clone(),
            attribute: refusal.attribute.clone(),
            source: Box::new(source),
        })
    }

    /// Deletes the refusal of (object, source id, attribute), if there is one.
    pub(crate) async fn delete_refusal(
        &self,
        connection: &str,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM refusals WHERE connection = $1 AND object = $2 \
                           AND source_id = $3 AND attribute = $4";
        let object = object_text(object);
        let result = with_pool!(&self.backend, |pool| {
            sqlx::query(SQL)
                .bind(connection)
                .bind(object)
                .bind(source_id)
                .bind(attribute)
                .execute(pool)
                .await
                .map(drop)
        });
        result.map_err(|source| StoreError::ClearRefusal {
            connection: connection.to_owned(),
            object,
            source_id: source_id.to_owned(),
            attribute: attribute.to_owned(),
            source: Box::new(source),
        })
    }

    /// Deletes every refusal of the connection, or, given a source id, every refusal of that
    /// source object (of either kind: the port names the object by its id alone). Returns how
    /// many went.
    pub(crate) async fn delete_refusals(
        &self,
        connection: &str,
        source_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        const ALL: &str = "DELETE FROM refusals WHERE connection = $1";
        const ONE: &str = "DELETE FROM refusals WHERE connection = $1 AND source_id = $2";
        let result = with_pool!(&self.backend, |pool| {
            match source_id {
                None => sqlx::query(ALL).bind(connection).execute(pool).await,
                Some(id) => {
                    sqlx::query(ONE)
                        .bind(connection)
                        .bind(id)
                        .execute(pool)
                        .await
                }
            }
            .map(|done| done.rows_affected())
        });
        result.map_err(|source| StoreError::ClearRefusals {
            connection: connection.to_owned(),
            source_id: source_id.map(str::to_owned),
            source,
        })
    }
}
