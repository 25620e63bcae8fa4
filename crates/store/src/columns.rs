//! How the core's values are written to and read from columns: enums as short text, counts
//! as BIGINT, timestamps as BIGINT milliseconds, link details as JSON text. Both dialects share
//! these row types; the `FromRow` impls are generic over the row so one impl serves both.

use crate::error::StoreError;
use scimsync_core::activity::{ActivityEntry, Outcome, RunRecord, RunStatus, Trigger};
use scimsync_core::links::{GroupLink, HeldRefusal, Origin, PendingEmail, TargetFacts, UserLink};
use scimsync_core::plan::ObjectKind;
use scimsync_core::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId, Timestamp};
use sqlx::{ColumnIndex, Decode, FromRow, Row, Type};
use std::collections::BTreeSet;

pub(crate) fn trigger_text(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Manual => "manual",
        Trigger::Schedule => "schedule",
        Trigger::Api => "api",
    }
}

fn parse_trigger(text: &str) -> Option<Trigger> {
    Some(match text {
        "manual" => Trigger::Manual,
        "schedule" => Trigger::Schedule,
        "api" => Trigger::Api,
        _ => return None,
    })
}

pub(crate) fn status_text(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Partial => "partial",
        RunStatus::Failed => "failed",
        RunStatus::Guarded => "guarded",
        RunStatus::Interrupted => "interrupted",
        RunStatus::OverBudget => "over_budget",
        RunStatus::DryRun => "dry_run",
        RunStatus::Abandoned => "abandoned",
    }
}

fn parse_status(text: &str) -> Option<RunStatus> {
    Some(match text {
        "running" => RunStatus::Running,
        "succeeded" => RunStatus::Succeeded,
        "partial" => RunStatus::Partial,
        "failed" => RunStatus::Failed,
        "guarded" => RunStatus::Guarded,
        "interrupted" => RunStatus::Interrupted,
        "over_budget" => RunStatus::OverBudget,
        "dry_run" => RunStatus::DryRun,
        "abandoned" => RunStatus::Abandoned,
        _ => return None,
    })
}

pub(crate) fn origin_text(origin: Origin) -> &'static str {
    match origin {
        Origin::Created => "created",
        Origin::Adopted => "adopted",
    }
}

fn parse_origin(text: &str) -> Option<Origin> {
    Some(match text {
        "created" => Origin::Created,
        "adopted" => Origin::Adopted,
        _ => return None,
    })
}

/// The kind of object as `refusals.object` holds it (the core's serde name).
pub(crate) fn object_text(object: ObjectKind) -> &'static str {
    object.as_str()
}

fn parse_object(text: &str) -> Option<ObjectKind> {
    Some(match text {
        "user" => ObjectKind::User,
        "group" => ObjectKind::Group,
        _ => return None,
    })
}

/// The most characters of a refusal's `value` and `reason` the store keeps: a target's error
/// body is its own to choose, and must not bloat the database.
pub(crate) const MAX_REFUSAL_TEXT: usize = scimsync_core::refusals::KEPT_CHARS;

/// `text` cut to at most [`MAX_REFUSAL_TEXT`] characters (the core's rule).
pub(crate) fn bounded(text: &str) -> String {
    scimsync_core::refusals::bounded(text, MAX_REFUSAL_TEXT)
}

/// A count as the database holds it (BIGINT), saturating at `i64::MAX`.
pub(crate) fn count_column(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// The key of the `user` filter and of `activity.name_folded`.
pub(crate) fn fold_name(name: &str) -> String {
    name.to_lowercase()
}

fn corrupt(
    table: &'static str,
    column: &'static str,
    row: impl ToString,
    problem: impl ToString,
) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        row: row.to_string(),
        problem: problem.to_string(),
    }
}

fn count(
    table: &'static str,
    column: &'static str,
    row: i64,
    value: i64,
) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(table, column, row, format!("negative count {value}")))
}

/// Implements `FromRow` for a plain row struct over any row type whose columns decode to
/// `String`, `i64` and their `Option`s (SQLite and PostgreSQL rows both do).
macro_rules! row_struct {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name {
            $(pub(crate) $field: $ty,)*
        }

        impl<'r, R> FromRow<'r, R> for $name
        where
            R: Row,
            &'static str: ColumnIndex<R>,
            String: Decode<'r, R::Database> + Type<R::Database>,
            i64: Decode<'r, R::Database> + Type<R::Database>,
        {
            fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
                Ok(Self {
                    $($field: row.try_get(stringify!($field))?,)*
                })
            }
        }
    };
}

row_struct!(
    /// A row of `runs`.
    RunRow {
        id: i64,
        connection: String,
        triggered_by: String,
        status: String,
        started_at: i64,
        finished_at: Option<i64>,
        source_users: Option<i64>,
        planned: i64,
        applied: i64,
        failed: i64,
        rejected: i64,
        skipped: i64,
        message: Option<String>,
        read: Option<String>,
    }
);

impl RunRow {
    pub(crate) fn into_record(self) -> Result<RunRecord, StoreError> {
        const T: &str = "runs";
        let id = self.id;
        Ok(RunRecord {
            id,
            trigger: parse_trigger(&self.triggered_by).ok_or_else(|| {
                corrupt(
                    T,
                    "triggered_by",
                    id,
                    format!("unknown trigger `{}`", self.triggered_by),
                )
            })?,
            status: parse_status(&self.status).ok_or_else(|| {
                corrupt(T, "status", id, format!("unknown status `{}`", self.status))
            })?,
            connection: self.connection,
            started_at: Timestamp(self.started_at),
            finished_at: self.finished_at.map(Timestamp),
            source_users: self
                .source_users
                .map(|n| count(T, "source_users", id, n))
                .transpose()?,
            planned: count(T, "planned", id, self.planned)?,
            applied: count(T, "applied", id, self.applied)?,
            failed: count(T, "failed", id, self.failed)?,
            rejected: count(T, "rejected", id, self.rejected)?,
            skipped: count(T, "skipped", id, self.skipped)?,
            message: self.message,
            read: self.read,
        })
    }
}

row_struct!(
    /// A row of `activity`.
    ActivityRow {
        id: i64,
        run_id: i64,
        connection: String,
        at: i64,
        op: String,
        outcome: String,
        object: String,
        source_id: Option<String>,
        target_id: Option<String>,
        name: String,
        detail: String,
        attempts: i64,
    }
);

impl ActivityRow {
    pub(crate) fn into_entry(self) -> Result<ActivityEntry, StoreError> {
        Ok(ActivityEntry {
            outcome: Outcome::parse(&self.outcome).ok_or_else(|| {
                corrupt(
                    "activity",
                    "outcome",
                    self.id,
                    format!("unknown outcome `{}`", self.outcome),
                )
            })?,
            id: self.id,
            run_id: self.run_id,
            connection: self.connection,
            at: Timestamp(self.at),
            op: self.op,
            object: self.object,
            source_id: self.source_id,
            target_id: self.target_id,
            name: self.name,
            detail: self.detail,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
        })
    }
}

row_struct!(
    /// A row of `user_links` (without the connection, which the caller knows).
    UserLinkRow {
        source_id: String,
        target_id: String,
        origin: String,
        assigned_permission_sets: String,
        pending_email: Option<String>,
    }
);

impl UserLinkRow {
    pub(crate) fn into_link(self, connection: &str) -> Result<UserLink, StoreError> {
        const T: &str = "user_links";
        let key = format!("{connection}/{}", self.source_id);
        let json_err = |column: &'static str| {
            let key = key.clone();
            move |e: serde_json::Error| corrupt(T, column, key, format!("invalid JSON: {e}"))
        };
        let assigned_permission_sets: BTreeSet<String> =
            serde_json::from_str(&self.assigned_permission_sets)
                .map_err(json_err("assigned_permission_sets"))?;
        let pending_email: Option<Box<PendingEmail>> = self
            .pending_email
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(json_err("pending_email"))?;
        Ok(UserLink {
            origin: parse_origin(&self.origin).ok_or_else(|| {
                corrupt(
                    T,
                    "origin",
                    &key,
                    format!("unknown origin `{}`", self.origin),
                )
            })?,
            source_id: SourceUserId::from(self.source_id),
            target_id: TargetUserId::from(self.target_id),
            assigned_permission_sets,
            pending_email,
        })
    }
}

/// The JSON columns of a user link, encoded for writing.
#[derive(Debug)]
pub(crate) struct UserLinkJson {
    pub(crate) assigned_permission_sets: String,
    pub(crate) pending_email: Option<String>,
}

impl UserLinkJson {
    pub(crate) fn encode(connection: &str, link: &UserLink) -> Result<Self, StoreError> {
        let err = |field: &'static str| {
            move |source| StoreError::EncodeLink {
                connection: connection.to_owned(),
                source_id: link.source_id.to_string(),
                field,
                source,
            }
        };
        Ok(Self {
            assigned_permission_sets: serde_json::to_string(&link.assigned_permission_sets)
                .map_err(err("assigned_permission_sets"))?,
            pending_email: link
                .pending_email
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(err("pending_email"))?,
        })
    }
}

row_struct!(
    /// A row of `group_links` (without the connection).
    GroupLinkRow {
        source_id: String,
        target_id: String,
        origin: String,
    }
);

impl GroupLinkRow {
    pub(crate) fn into_link(self, connection: &str) -> Result<GroupLink, StoreError> {
        Ok(GroupLink {
            origin: parse_origin(&self.origin).ok_or_else(|| {
                corrupt(
                    "group_links",
                    "origin",
                    format!("{connection}/{}", self.source_id),
                    format!("unknown origin `{}`", self.origin),
                )
            })?,
            source_id: SourceGroupId::from(self.source_id),
            target_id: TargetGroupId::from(self.target_id),
        })
    }
}

row_struct!(
    /// A row of `refusals` (without the connection).
    RefusalRow {
        object: String,
        source_id: String,
        attribute: String,
        fingerprint: String,
        value: String,
        reason: String,
        at: i64,
    }
);

impl RefusalRow {
    pub(crate) fn into_refusal(self, connection: &str) -> Result<HeldRefusal, StoreError> {
        Ok(HeldRefusal {
            object: parse_object(&self.object).ok_or_else(|| {
                corrupt(
                    "refusals",
                    "object",
                    format!("{connection}/{}/{}", self.source_id, self.attribute),
                    format!("unknown object `{}`", self.object),
                )
            })?,
            source_id: self.source_id,
            attribute: self.attribute,
            fingerprint: self.fingerprint,
            value: self.value,
            reason: self.reason,
            at: Timestamp(self.at),
        })
    }
}

/// The facts of a connection's target from `target_facts.facts`.
pub(crate) fn parse_facts(connection: &str, json: &str) -> Result<TargetFacts, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        corrupt(
            "target_facts",
            "facts",
            connection,
            format!("invalid JSON: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_texts_round_trip() {
        for t in [Trigger::Manual, Trigger::Schedule, Trigger::Api] {
            assert_eq!(parse_trigger(trigger_text(t)), Some(t));
        }
        for s in [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Partial,
            RunStatus::Failed,
            RunStatus::Guarded,
            RunStatus::Interrupted,
            RunStatus::OverBudget,
            RunStatus::DryRun,
            RunStatus::Abandoned,
        ] {
            assert_eq!(parse_status(status_text(s)), Some(s));
        }
        for o in [Origin::Created, Origin::Adopted] {
            assert_eq!(parse_origin(origin_text(o)), Some(o));
        }
        for o in [ObjectKind::User, ObjectKind::Group] {
            assert_eq!(parse_object(object_text(o)), Some(o));
        }
    }

    #[test]
    fn texts_match_the_core_serde_names() {
        // The CLI prints the core's serde names; the database holds the same words.
        let quoted = |text: &str| format!("\"{text}\"");
        assert_eq!(
            serde_json::to_string(&RunStatus::DryRun).ok(),
            Some(quoted(status_text(RunStatus::DryRun)))
        );
        assert_eq!(
            serde_json::to_string(&Trigger::Schedule).ok(),
            Some(quoted(trigger_text(Trigger::Schedule)))
        );
        assert_eq!(
            serde_json::to_string(&Origin::Adopted).ok(),
            Some(quoted(origin_text(Origin::Adopted)))
        );
        for o in [ObjectKind::User, ObjectKind::Group] {
            assert_eq!(serde_json::to_string(&o).ok(), Some(quoted(object_text(o))));
        }
    }

    #[test]
    fn refusal_texts_are_bounded_on_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let exact = "é".repeat(MAX_REFUSAL_TEXT);
        assert_eq!(bounded(&exact), exact, "at the bound: kept whole");
        let long = format!("{}€tail", "é".repeat(MAX_REFUSAL_TEXT - 2));
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), MAX_REFUSAL_TEXT);
        assert!(cut.starts_with(&"é".repeat(MAX_REFUSAL_TEXT - 2)));
        assert!(cut.ends_with("€…"), "{cut}");
    }

    #[test]
    fn corrupt_refusals_and_facts_are_errors_not_panics() {
        let row = RefusalRow {
            object: "role".into(),
            source_id: "DU1".into(),
            attribute: "profile".into(),
            fingerprint: "0".into(),
            value: String::new(),
            reason: String::new(),
            at: 0,
        };
        let err = row
            .into_refusal("sf")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("refusals.object")
                && err.contains("sf/DU1/profile")
                && err.contains("role"),
            "{err}"
        );
        let err = parse_facts("sf", "{")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("target_facts.facts") && err.contains("sf"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() {
        let row = RunRow {
            id: 7,
            connection: "sf".into(),
            triggered_by: "cron".into(),
            status: "running".into(),
            started_at: 0,
            finished_at: None,
            source_users: None,
            planned: 0,
            applied: 0,
            failed: 0,
            rejected: 0,
            skipped: 0,
            message: None,
            read: None,
        };
        let err = row
            .into_record()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("runs.triggered_by") && err.contains("cron"),
            "{err}"
        );

        let link = UserLinkRow {
            source_id: "DU1".into(),
            target_id: "005A".into(),
            origin: "created".into(),
            assigned_permission_sets: "not json".into(),
            pending_email: None,
        };
        let err = link
            .into_link("sf")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("assigned_permission_sets") && err.contains("sf/DU1"),
            "{err}"
        );
    }
}
