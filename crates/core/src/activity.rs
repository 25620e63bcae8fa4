//! Runs and the activity log: what the engine did, kept by the store, searched by operators.
//!
//! Entries never hold secrets or whole request bodies.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A run's id, assigned by the store.
pub type RunId = i64;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `scimsync reconcile`.
    Manual,
    /// The daemon's schedule.
    Schedule,
    /// `POST /connections/{name}/sync` on the daemon.
    Api,
}

/// How a run ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Every planned operation was applied.
    Succeeded,
    /// Some operations failed or were rejected; the rest was applied.
    Partial,
    /// Nothing could be done (source or target unreachable, configuration error).
    Failed,
    /// The guard held destructive operations back.
    Guarded,
    /// Stopped by shutdown; the operations done are recorded.
    Interrupted,
    /// Stopped because the connection's API budget was used up; the operations done are
    /// recorded, the rest waits for the budget to free up.
    OverBudget,
    /// A dry run: planned, nothing applied.
    DryRun,
    /// Left `running` by a holder that died (its process was killed): found when the next run
    /// of the connection took its lease.
    Abandoned,
}

/// A run as the store records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub connection: String,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Users the source read returned (used to refuse a later read that returns none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_users: Option<u64>,
    pub planned: u64,
    pub applied: u64,
    pub failed: u64,
    pub rejected: u64,
    pub skipped: u64,
    /// A one-line account of the run's end (the guard's reason, the error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How the target was read: `full (why)` or `incremental` (absent for runs that ended
    /// before reading it, and for runs recorded before incremental runs existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
}

/// The outcome of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Applied.
    Ok,
    /// The target or the network failed it.
    Failed,
    /// Refused by a rule (planner or target) for this object.
    Rejected,
    /// Deliberately not done (guard, pending verification, dry run).
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ok" => Self::Ok,
            "failed" => Self::Failed,
            "rejected" => Self::Rejected,
            "skipped" => Self::Skipped,
            _ => return None,
        })
    }
}

/// Every operation kind the engine writes to the activity log: the operations of a plan
/// ([`crate::plan::Operation::kind`]), the rejections, notes and refusals of a run, and its own
/// events (`read_source`, `read_target`, `discover`, `approve`), and the drift a read found
/// (`drift`: an object changed on the target behind the engine's back). `activity --op` accepts these
/// (and any kind the log holds from another version).
pub const OPS: &[&str] = &[
    "create_user",
    "adopt_user",
    "update_user",
    "reactivate_user",
    "deactivate_user",
    "create_group",
    "adopt_group",
    "rename_group",
    "add_members",
    "remove_members",
    "reject",
    "note",
    "refuse",
    "read_source",
    "read_target",
    "discover",
    "approve",
    "drift",
];

/// One line of the activity log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityEntry {
    /// Assigned by the store (0 before it is recorded).
    #[serde(default)]
    pub id: i64,
    pub run_id: RunId,
    pub connection: String,
    pub at: Timestamp,
    /// The operation kind (`create_user`, … see [`crate::plan::Operation::kind`]) or a run-level
    /// event (`guard`, `read_source`, `read_target`).
    pub op: String,
    pub outcome: Outcome,
    /// `user` or `group`.
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// The userName or group name.
    pub name: String,
    /// What changed (attribute names and values, members) or why it failed; never secrets.
    pub detail: String,
    /// The write requests sent to the target for this entry, first attempts and retries
    /// alike (0 when it sent none, or the target cannot tell). Over a run they add up to the
    /// writes the target received.
    #[serde(default)]
    pub attempts: u32,
}

/// A search of the activity log; every field narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityQuery {
    pub connection: Option<String>,
    pub run_id: Option<RunId>,
    /// Matches the name (case-insensitively), the source id or the target id, or any other
    /// identifier the entry was recorded about ([`crate::ports::Store::record_about`]: a
    /// source username or email, the members of a membership change), case-insensitively.
    pub user: Option<String>,
    pub op: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<Timestamp>,
    /// Only entries with an id greater than this (for `--follow`).
    pub after_id: Option<i64>,
    /// Only entries with an id less than this (paging back through the log).
    pub before_id: Option<i64>,
    /// Results come oldest first; with a limit, the newest `limit` entries (still oldest first).
    pub limit: Option<u32>,
}
