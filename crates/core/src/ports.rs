//! The ports: what the engine needs of a source, a target and a store. The adapters
//! (`scimsync-directory`, `scimsync-scim`, `scimsync-store`) implement them; the engine is
//! generic over them. No async runtime is named here: the futures are plain `Future + Send`.

use crate::activity::{ActivityEntry, ActivityQuery, RunId, RunRecord, RunStatus, Trigger};
use crate::ids::{TargetGroupId, TargetUserId};
use crate::links::{GroupLink, HeldRefusal, Links, TargetFacts, UserLink};
use crate::plan::ObjectKind;
use crate::plan::{UserAttributes, UserChanges};
use crate::source::SourceSnapshot;
use crate::target::{TargetCapabilities, TargetGroup, TargetSnapshot, TargetUser};
use crate::time::Timestamp;
use std::future::Future;
use std::time::Duration;

/// What the engine should do about a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// A passing condition (rate limit, 5xx, timeout): the same call may succeed later.
    Retryable { after: Option<Duration> },
    /// The target refused this object's change for a reason of its own (validation, licence,
    /// duplicate): record it for this object and go on with the rest.
    Refused { code: Option<String> },
    /// The connection itself is broken (credentials, permissions, configuration): stop the run.
    Fatal,
}

/// Errors from adapters say what the engine should do about them.
pub trait Classify: std::error::Error + Send + Sync + 'static {
    fn disposition(&self) -> Disposition;
}

/// A source directory.
pub trait Source: Send + Sync {
    type Error: Classify;

    /// Reads every user and group. A failed or partial read is an error, never a smaller
    /// directory.
    fn read(&self) -> impl Future<Output = Result<SourceSnapshot, Self::Error>> + Send;
}

/// What a read of the target covers besides its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadScope {
    /// Groups with their members (not when the policy excludes group information).
    pub groups: bool,
    /// The catalogue (`/Entitlements`, `/Roles`): only when governance needs it.
    pub catalogue: bool,
}

/// Which target objects a targeted read asks for (an incremental run reads only the objects
/// whose desired state changed, and looks for adoption candidates by filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// Users by target id.
    pub user_ids: Vec<TargetUserId>,
    /// Users by userName, compared case-insensitively (adoption candidates).
    pub user_names: Vec<String>,
    /// Users by externalId (adoption candidates).
    pub external_ids: Vec<String>,
    /// Groups, with their members, by target id.
    pub group_ids: Vec<TargetGroupId>,
    /// Groups by displayName (adoption candidates).
    pub group_names: Vec<String>,
}

impl Lookup {
    /// Nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.user_ids.is_empty()
            && self.user_names.is_empty()
            && self.external_ids.is_empty()
            && self.group_ids.is_empty()
            && self.group_names.is_empty()
    }

    /// Whether groups are asked for.
    pub fn wants_groups(&self) -> bool {
        !self.group_ids.is_empty() || !self.group_names.is_empty()
    }

    /// Keeps, of a whole read, what this lookup asks for (no catalogue, no capabilities).
    pub fn keep(&self, all: TargetSnapshot) -> TargetSnapshot {
        use std::collections::HashSet;
        let users = UserKeys::new(
            self.user_ids.iter().map(|i| i.as_str()),
            self.user_names.iter().map(String::as_str),
            self.external_ids.iter().map(String::as_str),
        );
        let group_ids: HashSet<&str> = self.group_ids.iter().map(|i| i.as_str()).collect();
        let group_names: HashSet<&str> = self.group_names.iter().map(String::as_str).collect();
        TargetSnapshot {
            users: all
                .users
                .into_iter()
                .filter(|u| users.asks_for(u))
                .collect(),
            groups: all
                .groups
                .into_iter()
                .filter(|g| {
                    group_ids.contains(g.id.as_str())
                        || group_names.contains(g.display_name.as_str())
                })
                .collect(),
            ..TargetSnapshot::default()
        }
    }
}

/// The user keys a read asks for, to tell the users an answer holds that were asked for: ids
/// and externalIds exactly, userNames case-insensitively (the one rule of a targeted read and
/// of the whole read a lookup falls back on).
#[derive(Debug, Clone, Default)]
pub struct UserKeys<'a> {
    ids: std::collections::HashSet<&'a str>,
    names: std::collections::HashSet<String>,
    external: std::collections::HashSet<&'a str>,
}

impl<'a> UserKeys<'a> {
    pub fn new(
        ids: impl IntoIterator<Item = &'a str>,
        user_names: impl IntoIterator<Item = &'a str>,
        external_ids: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Self {
            ids: ids.into_iter().collect(),
            names: user_names.into_iter().map(str::to_lowercase).collect(),
            external: external_ids.into_iter().collect(),
        }
    }

    /// Whether `user` is one of the users asked for.
    pub fn asks_for(&self, user: &TargetUser) -> bool {
        self.ids.contains(user.id.as_str())
            || self.names.contains(user.user_name.to_lowercase().as_str())
            || user
                .external_id
                .as_deref()
                .is_some_and(|e| self.external.contains(e))
    }
}

/// The target's API use as its adapter has seen it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiUsage {
    /// Requests sent to the target since the adapter was made (retries included: each one
    /// counts against an allocation).
    pub requests: u64,
    /// The calls the target counts for the day and its daily allocation, as it last reported
    /// them (Salesforce's `Sforce-Limit-Info: api-usage=N/M`), when it does.
    pub reported: Option<(u64, u64)>,
}

/// A SCIM target.
pub trait Target: Send + Sync {
    type Error: Classify;

    /// What this adapter has used of the target's API (nothing known by default).
    fn api_usage(&self) -> ApiUsage {
        ApiUsage::default()
    }

    /// Reads what the target declares it supports (service provider configuration, resource
    /// types, schemas) and follows it from then on.
    fn discover(&self) -> impl Future<Output = Result<TargetCapabilities, Self::Error>> + Send;

    /// Follows a capabilities record discovered earlier (cached by the engine).
    fn use_capabilities(&self, capabilities: &TargetCapabilities);

    /// How the adapter learned, from the target's answers, to read only some objects when the
    /// target would not be asked as its capabilities say (the SCIM client's mode of targeted
    /// reads: `single`, `by_id`); `None` when it learned nothing. The engine keeps it in the
    /// target facts until the next discovery, so a later run (another process) does not send
    /// again what the target refused.
    fn learned_reads(&self) -> Option<&'static str> {
        None
    }

    /// Follows what an earlier run learned ([`Target::learned_reads`]); a name the adapter does
    /// not know is ignored.
    fn follow_learned_reads(&self, _learned: &str) {}

    /// Reads users and what `scope` asks for.
    fn read(
        &self,
        scope: ReadScope,
    ) -> impl Future<Output = Result<TargetSnapshot, Self::Error>> + Send;

    /// Reads the objects `lookup` names; an object not found is absent from the answer (no
    /// catalogue, no capabilities). The default reads everything and keeps what was asked:
    /// correct, not cheap; adapters read by id or by filter.
    fn read_some(
        &self,
        lookup: &Lookup,
    ) -> impl Future<Output = Result<TargetSnapshot, Self::Error>> + Send {
        async move {
            let all = self
                .read(ReadScope {
                    groups: lookup.wants_groups(),
                    catalogue: false,
                })
                .await?;
            Ok(lookup.keep(all))
        }
    }

    fn create_user(
        &self,
        user: &UserAttributes,
    ) -> impl Future<Output = Result<TargetUser, Self::Error>> + Send;

    /// Sends all of a user's changes in one request.
    fn update_user(
        &self,
        id: &TargetUserId,
        changes: &UserChanges,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    fn create_group(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<TargetGroup, Self::Error>> + Send;

    fn rename_group(
        &self,
        id: &TargetGroupId,
        name: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    fn add_members(
        &self,
        group: &TargetGroupId,
        members: &[TargetUserId],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    fn remove_members(
        &self,
        group: &TargetGroupId,
        members: &[TargetUserId],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Runs `work` (calls to this target for one operation), adding to `writes` each write
    /// request it sends, first attempts and retries alike, so the activity log can say how
    /// many requests the target received for each entry. A target that cannot tell runs
    /// `work` as it is (and `writes` stays 0).
    fn count_writes<F>(
        &self,
        writes: std::sync::Arc<std::sync::atomic::AtomicU32>,
        work: F,
    ) -> impl Future<Output = F::Output> + Send
    where
        F: Future + Send,
    {
        let _ = writes;
        work
    }
}

/// A new run, as the engine starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub connection: String,
    pub trigger: Trigger,
    pub dry_run: bool,
    pub started_at: Timestamp,
}

/// How a run ended, as the engine finishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub status: RunStatus,
    pub finished_at: Timestamp,
    pub source_users: Option<u64>,
    pub planned: u64,
    pub applied: u64,
    pub failed: u64,
    pub rejected: u64,
    pub skipped: u64,
    pub message: Option<String>,
    /// How the target was read ([`crate::state::RunKind`]'s text), when it was.
    pub read: Option<String>,
}

/// Who holds a connection's lease, since when and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub holder: String,
    /// When `holder` took it (renewals keep this).
    pub acquired_at: Timestamp,
    /// Held until then unless renewed.
    pub expires_at: Timestamp,
}

/// Persistence: runs, the activity log, links and leases.
pub trait Store: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    fn start_run(&self, run: &NewRun) -> impl Future<Output = Result<RunId, Self::Error>> + Send;
    fn finish_run(
        &self,
        id: RunId,
        end: &RunEnd,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Runs, newest first, optionally of one connection.
    fn list_runs(
        &self,
        connection: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RunRecord>, Self::Error>> + Send;
    /// The newest finished run of a connection that read the source successfully.
    fn last_source_count(
        &self,
        connection: &str,
    ) -> impl Future<Output = Result<Option<u64>, Self::Error>> + Send;

    /// When the connection's newest `succeeded` run finished, if it has one.
    fn last_success(
        &self,
        connection: &str,
    ) -> impl Future<Output = Result<Option<Timestamp>, Self::Error>> + Send;

    /// Appends to the activity log; returns the entry's id.
    fn record(
        &self,
        entry: &ActivityEntry,
    ) -> impl Future<Output = Result<i64, Self::Error>> + Send;
    /// [`Store::record`] for an entry that also concerns `subjects`: other identifiers of the
    /// users it is about (a source username, an email; each member of a membership change),
    /// so that a search of the log by any of them ([`ActivityQuery::user`]) finds it. A store
    /// without such an index records the entry alone.
    fn record_about(
        &self,
        entry: &ActivityEntry,
        subjects: &[String],
    ) -> impl Future<Output = Result<i64, Self::Error>> + Send {
        let _ = subjects;
        self.record(entry)
    }
    fn query_activity(
        &self,
        query: &ActivityQuery,
    ) -> impl Future<Output = Result<Vec<ActivityEntry>, Self::Error>> + Send;

    /// Per source id, the detail of the newest `reject` entry logged for the connection (as
    /// stored: details are capped at the store's length): the engine logs a plan's rejection
    /// only when it is new or its reason changed.
    fn logged_rejections(
        &self,
        connection: &str,
    ) -> impl Future<Output = Result<std::collections::HashMap<String, String>, Self::Error>> + Send;

    /// The links of a connection, with its held refusals and the facts learned of its target.
    fn load_links(
        &self,
        connection: &str,
    ) -> impl Future<Output = Result<Links, Self::Error>> + Send;
    /// Inserts or replaces the refusal of (`object`, `source_id`, `attribute`).
    fn save_refusal(
        &self,
        connection: &str,
        refusal: &HeldRefusal,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Forgets the refusal of (`object`, `source_id`, `attribute`), if any.
    fn clear_refusal(
        &self,
        connection: &str,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Forgets every refusal of a connection, or those of one source object; returns how many.
    fn clear_refusals(
        &self,
        connection: &str,
        source_id: Option<&str>,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;
    /// Replaces what is known of the connection's target.
    fn save_facts(
        &self,
        connection: &str,
        facts: &TargetFacts,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Inserts or replaces the link of `link.source_id`.
    fn save_user_link(
        &self,
        connection: &str,
        link: &UserLink,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    fn save_group_link(
        &self,
        connection: &str,
        link: &GroupLink,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The stored state of the connection's linked target objects (the last known state of
    /// each, and which are doubtful). Loaded row by row: 100,000 objects stay one pass.
    fn load_state(
        &self,
        connection: &str,
    ) -> impl Future<Output = Result<crate::state::StoredState, Self::Error>> + Send;
    /// Inserts or replaces the stored state of these objects (no longer doubtful).
    fn save_state(
        &self,
        connection: &str,
        users: &[TargetUser],
        groups: &[TargetGroup],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Forgets the stored state of these objects (gone from the target).
    fn forget_state(
        &self,
        connection: &str,
        users: &[TargetUserId],
        groups: &[TargetGroupId],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Marks these stored objects doubtful (a write's outcome is unknown): the next run reads
    /// them. Objects without a stored state are left alone.
    fn mark_doubtful(
        &self,
        connection: &str,
        users: &[TargetUserId],
        groups: &[TargetGroupId],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Replaces the whole stored state of the connection in one transaction (a full read).
    fn replace_state(
        &self,
        connection: &str,
        state: &crate::state::StoredState,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Takes the lease of a connection for `holder` until `now + ttl`, if it is free, expired or
    /// already `holder`'s. Returns whether `holder` holds it.
    fn acquire_lease(
        &self,
        connection: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
    fn release_lease(
        &self,
        connection: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// The lease of a connection as the store holds it (expired or not), if any.
    fn lease_holder(
        &self,
        connection: &str,
    ) -> impl Future<Output = Result<Option<LeaseHolder>, Self::Error>> + Send;
    /// Marks the runs of a connection still `running` that started before `before` (dry runs
    /// aside) as abandoned at `at`, with `message`: called by whoever has just taken the lease,
    /// so no live run can be among them. Returns how many.
    fn abandon_runs(
        &self,
        connection: &str,
        before: Timestamp,
        at: Timestamp,
        message: &str,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;
}
