//! One reconcile run: read → plan → guard → apply → record.

use crate::apply::{Applied, ApplyContext, Why, apply_plan};
use crate::budget::Budget;
use crate::guard::{self, GuardInput, GuardTrip};
use crate::trace::{self, TraceStep};
use scimsync_core::activity::{ActivityEntry, Outcome, RunId, RunStatus, Trigger};
use scimsync_core::links::Ledger;
use scimsync_core::links::Links;
use scimsync_core::plan::ObjectKind;
use scimsync_core::plan::{Explain, Plan};
use scimsync_core::planner;
use scimsync_core::policy::{Policy, Problem};
use scimsync_core::ports::{NewRun, ReadScope, RunEnd, Source, Store, Target};
use scimsync_core::refusals::bounded;
use scimsync_core::render::Labels;
use scimsync_core::source::SourceSnapshot;
use scimsync_core::state::{self, KindInput, RunKind, StoredState};
use scimsync_core::target::TargetSnapshot;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info, warn};

pub(crate) use crate::clock::now;

/// A named pairing of a source and a target under a policy.
#[derive(Debug)]
pub struct Connection<S, T> {
    pub name: String,
    pub source: S,
    pub target: T,
    pub policy: Policy,
}

/// Told of a run's progress (the CLI draws a bar from it).
pub trait Progress: Send + Sync {
    /// The run was recorded in the store under `run_id` (before anything is read).
    fn started(&self, run_id: RunId) {
        let _ = run_id;
    }
    /// The number of operations about to be applied.
    fn planned(&self, total: usize);
    /// The operations about to be applied, counted by kind (`create_user`, …; the kinds of
    /// [`ActivityEntry::op`]), told right after [`Progress::planned`].
    fn planned_kinds(&self, kinds: &std::collections::BTreeMap<&'static str, usize>) {
        let _ = kinds;
    }
    /// One operation's outcome, as recorded.
    fn applied(&self, entry: &ActivityEntry);
}

/// Why a run's cancellation token was cancelled, when not by shutdown (the lease was lost):
/// set once by whoever cancels, read by the run for its message.
#[derive(Debug, Clone, Default)]
pub struct StopReason(Arc<std::sync::OnceLock<String>>);

impl StopReason {
    /// Records the reason (the first one set stands).
    pub fn set(&self, reason: String) {
        let _ = self.0.set(reason);
    }

    /// The reason, if one was set.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// What a cancelled run says of its stop.
    fn describe(&self) -> String {
        self.get().map_or_else(
            || "stopped by shutdown".to_owned(),
            |r| format!("stopped: {r}"),
        )
    }
}

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    pub trigger: Trigger,
    /// Plan only: record the run, change nothing.
    pub dry_run: bool,
    /// Apply destructive operations even when the guard trips.
    pub approve_destructive: bool,
    /// Apply destructive operations even when the guard trips, but only if the plan made now
    /// has this [`Plan::fingerprint`] (the plan an operator was shown and approved); if it
    /// differs, nothing is applied and the run ends guarded, saying so.
    pub approve_plan: Option<String>,
    /// Reconcile only this user (username, email or source id) and trace each step.
    pub only_user: Option<String>,
    /// Most operations in flight at once.
    pub max_concurrency: usize,
    /// Cancelled on shutdown: operations in flight finish and are recorded, no new one starts.
    pub cancel: CancellationToken,
    pub progress: Option<Arc<dyn Progress>>,
    /// Forget held refusals before planning, so the writes are sent again.
    pub retry_refused: Option<RetryRefused>,
    /// Discover the target's capabilities again even when the cached ones are fresh.
    pub rediscover: bool,
    /// Record every user's decision in the plan (a dry run shown to people says which rule
    /// chose each user's entitlements).
    pub explain: bool,
    /// Why `cancel` was cancelled, when it was not shutdown (a lost lease).
    pub stop_reason: StopReason,
    /// Read the whole target (a full run: drift found, logged and repaired) even when the
    /// stored state is fresh (`reconcile --full`).
    pub full: bool,
}

/// Which held refusals to forget before a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryRefused {
    All,
    /// One user, by username, email or source id.
    User(String),
}

/// How long a discovery of the target's capabilities is trusted.
pub const DISCOVERY_MAX_AGE_MS: i64 = 24 * 60 * 60 * 1000;

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("trigger", &self.trigger)
            .field("dry_run", &self.dry_run)
            .field("approve_destructive", &self.approve_destructive)
            .field("approve_plan", &self.approve_plan)
            .field("only_user", &self.only_user)
            .field("max_concurrency", &self.max_concurrency)
            .field("retry_refused", &self.retry_refused)
            .field("rediscover", &self.rediscover)
            .field("full", &self.full)
            .finish_non_exhaustive()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            trigger: Trigger::Manual,
            dry_run: false,
            approve_destructive: false,
            approve_plan: None,
            only_user: None,
            max_concurrency: 8,
            cancel: CancellationToken::new(),
            progress: None,
            retry_refused: None,
            rediscover: false,
            explain: false,
            stop_reason: StopReason::default(),
            full: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: RunId,
    pub connection: String,
    pub status: RunStatus,
    pub plan: Plan,
    pub applied: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Of `rejected`: source records rejected for the reason already logged in an earlier
    /// run. They are counted, not logged again, and alone leave the run `succeeded` (exit 0).
    pub known_rejected: u64,
    pub skipped: u64,
    /// Writes the target refused in this run (held from now on; counted in `rejected` too).
    pub refused: u64,
    /// Writes refused in earlier runs and not sent again.
    pub held: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardTrip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<TraceStep>>,
    pub source_users: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How the target was read (full, and why; or incremental); `None` when the run ended
    /// before reading it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<RunKind>,
    /// Objects found changed on the target behind the engine's back (logged as `drift`).
    pub drifted: u64,
    /// The names of the catalogue entries and groups the plan names by id, for tables.
    #[serde(skip)]
    pub labels: Labels,
}

impl RunReport {
    /// A run that applied nothing (stopped, guarded or dry): every count zero, no plan.
    fn unapplied(run_id: RunId, connection: &str, status: RunStatus) -> Self {
        Self {
            run_id,
            connection: connection.to_owned(),
            status,
            plan: Plan::default(),
            applied: 0,
            failed: 0,
            rejected: 0,
            known_rejected: 0,
            skipped: 0,
            refused: 0,
            held: 0,
            guard: None,
            trace: None,
            source_users: 0,
            message: None,
            read: None,
            drifted: 0,
            labels: Labels::default(),
        }
    }

    /// 0 all applied (rejections already logged by an earlier run aside); 1 some operations
    /// failed, or something was rejected for the first time (or for a new reason); 2 the
    /// connection failed mid-run; 3 the guard stopped the run.
    /// A dry run gives 0, or 3 when the guard would stop the real run.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            RunStatus::DryRun if self.guard.is_some() => 3,
            RunStatus::DryRun => 0,
            RunStatus::Guarded => 3,
            RunStatus::Failed => 2,
            _ if self.failed > 0 || self.rejected > self.known_rejected => 1,
            RunStatus::Interrupted | RunStatus::OverBudget => 1,
            _ => 0,
        }
    }
}

/// A run that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("reading the source directory of connection {connection} failed")]
    ReadSource {
        connection: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading the target of connection {connection} failed")]
    ReadTarget {
        connection: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the policy of connection {connection} cannot be applied to this directory and target:\n{}", Problem::list(.problems))]
    Policy {
        connection: String,
        problems: Vec<Problem>,
    },
    #[error("the store failed during a run of connection {connection}")]
    Store {
        connection: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "user {user:?} is not in the source directory of connection {connection} (looked up by username, email and id)"
    )]
    UnknownUser { connection: String, user: String },
}

fn store_err<E: std::error::Error + Send + Sync + 'static>(
    connection: &str,
) -> impl FnOnce(E) -> EngineError + '_ {
    move |e| EngineError::Store {
        connection: connection.to_owned(),
        source: Box::new(e),
    }
}

/// Runs one reconcile of `conn`, recording it in `store`.
pub async fn reconcile_once<S, T, St>(
    conn: &Connection<S, T>,
    store: &St,
    opts: &RunOptions,
) -> Result<RunReport, EngineError>
where
    S: Source,
    T: Target,
    St: Store,
{
    let name = conn.name.as_str();
    let run_id = store
        .start_run(&NewRun {
            connection: name.to_owned(),
            trigger: opts.trigger,
            dry_run: opts.dry_run,
            started_at: now(),
        })
        .await
        .map_err(store_err(name))?;
    if let Some(p) = &opts.progress {
        p.started(run_id);
    }
    // Every event of the run (the adapters' too) carries the connection and the run id.
    let span = tracing::info_span!("run", connection = %name, run_id);
    run(conn, store, opts, run_id).instrument(span).await
}

/// The run recorded as `run_id`, from reading the source to recording the outcome.
async fn run<S, T, St>(
    conn: &Connection<S, T>,
    store: &St,
    opts: &RunOptions,
    run_id: RunId,
) -> Result<RunReport, EngineError>
where
    S: Source,
    T: Target,
    St: Store,
{
    let name = conn.name.as_str();
    let fail = failed_run;

    // Read.
    // Shutdown stops a read at once, even while it backs off from a rate limit.
    let read = tokio::select! {
        biased;
        () = opts.cancel.cancelled() => None,
        read = conn.source.read() => Some(read),
    };
    let Some(read) = read else {
        return interrupted_before_apply(store, run_id, name, opts, "reading the source").await;
    };
    let mut source = match read {
        Ok(s) => s,
        Err(e) => {
            let message = format!("reading the source failed: {}", chain(&e));
            record_run_event(
                store,
                run_id,
                name,
                "read_source",
                Outcome::Failed,
                &message,
            )
            .await;
            let _ = store.finish_run(run_id, &fail(message)).await;
            return Err(EngineError::ReadSource {
                connection: name.to_owned(),
                source: Box::new(e),
            });
        }
    };
    // The run holds the source to its end: only what the mapping reads.
    conn.policy.mapping.keep_only_what_it_reads(&mut source);
    let mut links = store.load_links(name).await.map_err(store_err(name))?;
    if let Some(retry) = &opts.retry_refused {
        let only = match retry {
            RetryRefused::All => None,
            RetryRefused::User(wanted) => match trace::find_user(&source, wanted) {
                Some(u) => Some(u.id.to_string()),
                None => {
                    let message = format!("user {wanted:?} is not in the source directory");
                    let _ = store.finish_run(run_id, &fail(message)).await;
                    return Err(EngineError::UnknownUser {
                        connection: name.to_owned(),
                        user: wanted.clone(),
                    });
                }
            },
        };
        let cleared = store
            .clear_refusals(name, only.as_deref())
            .await
            .map_err(store_err(name))?;
        links
            .refusals
            .retain(|r| only.as_deref().is_some_and(|o| r.source_id != o));
        info!(
            cleared,
            "Held refusals cleared: their writes are sent again."
        );
    }
    // The API budget: a run that finds it used up leaves the target alone.
    let budget = Budget::new(
        conn.policy.api_budget,
        &links.facts,
        now(),
        conn.target.api_usage(),
    );
    if !opts.dry_run && budget.exhausted(conn.target.api_usage()) {
        let message = budget.stop_message(name, conn.target.api_usage(), now());
        return stopped_before_apply(store, run_id, name, RunStatus::OverBudget, message).await;
    }
    // Shutdown (or a lost lease) stops discovery and the target read at once too.
    let cached_capabilities = links.facts.capabilities.clone();
    let discovered = tokio::select! {
        biased;
        () = opts.cancel.cancelled() => None,
        d = discover(conn, store, &mut links, opts, run_id) => Some(d),
    };
    let Some(capabilities) = discovered else {
        return interrupted_before_apply(store, run_id, name, opts, "discovering the target").await;
    };
    let capabilities = capabilities?;
    let capabilities_changed = cached_capabilities.is_some() && cached_capabilities != capabilities;
    let governed =
        conn.policy.governance.baseline.is_some() || !conn.policy.governance.group_rules.is_empty();
    let scope = ReadScope {
        groups: !conn.policy.exclude_groups,
        catalogue: governed,
    };
    let last_source_users = store
        .last_source_count(name)
        .await
        .map_err(store_err(name))?;
    let source_users = source.users.len() as u64;

    // Plan (a single-user run asks the planner to record that user's decision).
    let only = match &opts.only_user {
        Some(wanted) => match trace::find_user(&source, wanted) {
            Some(user) => Some(user),
            None => {
                let message = format!("user {wanted:?} is not in the source directory");
                let _ = store.finish_run(run_id, &fail(message)).await;
                return Err(EngineError::UnknownUser {
                    connection: name.to_owned(),
                    user: wanted.clone(),
                });
            }
        },
        None => None,
    };
    let explain = match only {
        Some(u) => Explain::User(u.id.clone()),
        None if opts.explain => Explain::Everyone,
        // The activity log explains each change by its user's decision.
        None => Explain::Changed,
    };

    // Full or incremental: read the whole target, or believe the stored state and read only
    // what the plan touches.
    let policy_fingerprint = state::policy_fingerprint(&conn.policy);
    let kind = state::choose(KindInput {
        asked: opts.full,
        facts: &links.facts,
        policy: &policy_fingerprint,
        full_every_ms: i64::try_from(conn.policy.full_every.as_millis()).unwrap_or(i64::MAX),
        capabilities_changed,
        now: now(),
    });
    info!(read = %kind, "Reading the target.");
    let reading = Reading {
        conn,
        store,
        opts,
        run_id,
        source: &source,
        explain: &explain,
        only_user: only.map(|u| &u.id),
        scope,
        governed,
    };
    let read = match &kind {
        RunKind::Full { .. } => {
            reading
                .full(&mut links, capabilities, &policy_fingerprint)
                .await?
        }
        RunKind::Incremental => reading.incremental(&links, capabilities).await?,
    };
    let Some(Planned {
        target,
        mut plan,
        drifted,
    }) = read
    else {
        return interrupted_before_apply(store, run_id, name, opts, "reading the target").await;
    };
    let labels = Labels::new(&target.catalogue, &source.groups);
    let mut trace = None;
    if let Some(user) = only {
        plan = trace::narrow(plan, &user.id);
        trace = Some(trace::explain(
            user,
            &source,
            &target.catalogue,
            plan.decisions.first(),
            &plan,
        ));
    }
    info!(
        connection = %name,
        run_id,
        operations = plan.operations.len(),
        rejected = plan.rejected.len(),
        "Reconcile planned."
    );

    // Guard (a single-user run deactivates at most one user: the guard still applies).
    let trip = guard::check(GuardInput {
        plan: &plan,
        safety: &conn.policy.safety,
        source_users: source.users.len(),
        last_source_users,
    });
    if let Some(trip) = &trip {
        warn!(reason = %trip.reason, approved = opts.approve_destructive, "Guard tripped.");
    }

    if opts.dry_run {
        store
            .finish_run(
                run_id,
                &RunEnd {
                    status: RunStatus::DryRun,
                    finished_at: now(),
                    source_users: Some(source_users),
                    planned: plan.operations.len() as u64,
                    applied: 0,
                    failed: 0,
                    rejected: plan.rejected.len() as u64,
                    skipped: 0,
                    message: trip.as_ref().map(|t| t.reason.clone()),
                    read: Some(kind.to_string()),
                },
            )
            .await
            .map_err(store_err(name))?;
        return Ok(RunReport {
            rejected: plan.rejected.len() as u64,
            held: plan.summary.held as u64,
            guard: trip,
            trace,
            source_users,
            plan,
            labels,
            read: Some(kind),
            ..RunReport::unapplied(run_id, name, RunStatus::DryRun)
        });
    }

    // An approval of a plan shown earlier holds for that plan only.
    if let Some(approved) = &opts.approve_plan
        && *approved != plan.fingerprint()
    {
        return refuse_changed_plan(
            store,
            name,
            run_id,
            approved,
            plan,
            trip,
            source_users,
            labels,
            kind,
        )
        .await;
    }

    // Apply.
    let approved = opts.approve_destructive || opts.approve_plan.is_some();
    let hold_destructive = trip.is_some() && !approved;
    let why = Why::new(&plan, &source);
    let ctx = ApplyContext {
        connection: name,
        run_id,
        target: &conn.target,
        store,
        snapshot: &target,
        hold_destructive: hold_destructive
            .then(|| trip.as_ref().map(|t| t.reason.clone()).unwrap_or_default()),
        max_concurrency: opts.max_concurrency.max(1),
        member_batch_size: conn.policy.member_batch_size.max(1),
        cancel: &opts.cancel,
        progress: opts.progress.as_deref(),
        labels: &labels,
        why: &why,
        budget: &budget,
        state_writes: tokio::sync::Mutex::new(()),
    };
    let Applied {
        applied,
        failed,
        rejected,
        known_rejected,
        skipped,
        refused,
        fatal,
        interrupted,
        over_budget,
        facts,
    } = apply_plan(&ctx, &plan, links)
        .await
        .map_err(|e| EngineError::Store {
            connection: name.to_owned(),
            source: e,
        })?;
    save_run_facts(conn, store, &budget, facts).await?;

    let (status, message) = if let Some(fatal) = fatal {
        (RunStatus::Failed, Some(fatal))
    } else if over_budget {
        (
            RunStatus::OverBudget,
            Some(budget.stop_message(name, conn.target.api_usage(), now())),
        )
    } else if interrupted {
        (
            RunStatus::Interrupted,
            Some(format!("{}; re-run to finish", opts.stop_reason.describe())),
        )
    } else if hold_destructive {
        (
            RunStatus::Guarded,
            trip.as_ref()
                .map(|t| format!("{}; to approve: {}", t.reason, t.how_to_approve)),
        )
    } else if failed > 0 || rejected > known_rejected {
        (RunStatus::Partial, None)
    } else {
        (
            RunStatus::Succeeded,
            (known_rejected > 0).then(|| {
                format!(
                    "{known_rejected} source record(s) still rejected for the reason already logged (see `scimsync activity --op reject`)"
                )
            }),
        )
    };
    store
        .finish_run(
            run_id,
            &RunEnd {
                status,
                finished_at: now(),
                source_users: Some(source_users),
                planned: plan.operations.len() as u64,
                applied,
                failed,
                rejected,
                skipped,
                message: message.clone(),
                read: Some(kind.to_string()),
            },
        )
        .await
        .map_err(store_err(name))?;
    let held = plan.summary.held as u64;
    info!(
        ?status,
        applied, failed, rejected, skipped, refused, held, "Reconcile finished."
    );
    Ok(RunReport {
        run_id,
        connection: name.to_owned(),
        status,
        plan,
        applied,
        failed,
        rejected,
        known_rejected,
        skipped,
        refused,
        held,
        guard: trip,
        trace,
        source_users,
        message,
        read: Some(kind),
        drifted,
        labels,
    })
}

/// What reading the target came to (`None` from a read: stopped by shutdown or a lost lease
/// while reading): the target as the run believes it, the plan made against it, and how many
/// objects were found drifted.
struct Planned {
    target: TargetSnapshot,
    plan: Plan,
    drifted: u64,
}

type Read = Option<Planned>;

/// What reading the target and planning need of the run.
struct Reading<'a, S, T, St> {
    conn: &'a Connection<S, T>,
    store: &'a St,
    opts: &'a RunOptions,
    run_id: RunId,
    source: &'a SourceSnapshot,
    explain: &'a Explain,
    only_user: Option<&'a scimsync_core::SourceUserId>,
    scope: ReadScope,
    governed: bool,
}

impl<S: Source, T: Target, St: Store> Reading<'_, S, T, St> {
    fn name(&self) -> &str {
        &self.conn.name
    }

    /// The plan against `target`; a policy that cannot be applied fails the run.
    async fn plan(&self, target: &TargetSnapshot, links: &Links) -> Result<Plan, EngineError> {
        match planner::plan_explained(
            self.source,
            target,
            links,
            &self.conn.policy,
            now(),
            self.explain,
        ) {
            Ok(p) => Ok(p),
            Err(problems) => {
                let message = format!("the policy cannot be applied: {}", Problem::list(&problems));
                let _ = self
                    .store
                    .finish_run(self.run_id, &failed_run(message))
                    .await;
                Err(EngineError::Policy {
                    connection: self.name().to_owned(),
                    problems,
                })
            }
        }
    }

    /// A failed read of the target: logged, the run failed.
    async fn read_failed<E: std::error::Error + Send + Sync + 'static>(&self, e: E) -> EngineError {
        let message = format!("reading the target failed: {}", chain(&e));
        record_run_event(
            self.store,
            self.run_id,
            self.name(),
            "read_target",
            Outcome::Failed,
            &message,
        )
        .await;
        let _ = self
            .store
            .finish_run(self.run_id, &failed_run(message))
            .await;
        EngineError::ReadTarget {
            connection: self.name().to_owned(),
            source: Box::new(e),
        }
    }

    /// A full run: the whole target read; the drift of the stored objects logged and the
    /// stored state replaced by what was read (not on a dry run).
    async fn full(
        &self,
        links: &mut Links,
        capabilities: Option<scimsync_core::target::TargetCapabilities>,
        policy_fingerprint: &str,
    ) -> Result<Read, EngineError> {
        let read = tokio::select! {
            biased;
            () = self.opts.cancel.cancelled() => None,
            read = self.conn.target.read(self.scope) => Some(read),
        };
        let Some(read) = read else {
            return Ok(None);
        };
        let mut target = match read {
            Ok(t) => t,
            Err(e) => return Err(self.read_failed(e).await),
        };
        target.capabilities = capabilities;
        let drifted = if self.opts.dry_run {
            0
        } else {
            self.keep_full_read(links, &target, policy_fingerprint)
                .await?
        };
        let plan = self.plan(&target, links).await?;
        Ok(Some(Planned {
            target,
            plan,
            drifted,
        }))
    }

    /// Logs the drift of the stored objects against a whole read, replaces the stored state
    /// with the linked objects read, and records when and under which policy (with the
    /// catalogue read). Returns how many objects drifted.
    async fn keep_full_read(
        &self,
        links: &mut Links,
        target: &TargetSnapshot,
        policy_fingerprint: &str,
    ) -> Result<u64, EngineError> {
        let name = self.name();
        let mut stored = self.store.load_state(name).await.map_err(store_err(name))?;
        if !self.scope.groups {
            stored.groups.clear();
            stored.doubtful_groups.clear();
        }
        let drift = if links.facts.last_full_read.is_some() {
            state::drift(&stored, target, None, &target.catalogue)
        } else {
            Vec::new()
        };
        self.record_drift(links, &drift).await?;
        let users: HashSet<&str> = links.users.iter().map(|l| l.target_id.as_str()).collect();
        let groups: HashSet<&str> = links.groups.iter().map(|l| l.target_id.as_str()).collect();
        self.store
            .replace_state(name, &StoredState::from_full_read(target, &users, &groups))
            .await
            .map_err(store_err(name))?;
        links.facts.last_full_read = Some(now());
        links.facts.full_read_policy = Some(policy_fingerprint.to_owned());
        links.facts.catalogue = self.governed.then(|| target.catalogue.clone());
        self.store
            .save_facts(name, &links.facts)
            .await
            .map_err(store_err(name))?;
        Ok(drift.len() as u64)
    }

    /// One `drift` entry per object: `attribute: stored → found`.
    async fn record_drift(&self, links: &Links, drift: &[state::Drift]) -> Result<(), EngineError> {
        if drift.is_empty() {
            return Ok(());
        }
        let name = self.name();
        let users: HashMap<&str, &str> = links
            .users
            .iter()
            .map(|l| (l.target_id.as_str(), l.source_id.as_str()))
            .collect();
        let groups: HashMap<&str, &str> = links
            .groups
            .iter()
            .map(|l| (l.target_id.as_str(), l.source_id.as_str()))
            .collect();
        for d in drift {
            let linked = match d.object {
                ObjectKind::Group => &groups,
                _ => &users,
            };
            let entry = ActivityEntry {
                id: 0,
                run_id: self.run_id,
                connection: name.to_owned(),
                at: now(),
                op: "drift".to_owned(),
                outcome: Outcome::Skipped,
                object: d.object.as_str().to_owned(),
                source_id: linked.get(d.target_id.as_str()).map(|s| (*s).to_owned()),
                target_id: Some(d.target_id.clone()),
                name: d.name.clone(),
                detail: bounded(
                    &format!(
                        "changed on the target since it was last read: {}",
                        d.describe()
                    ),
                    MAX_DRIFT_DETAIL,
                ),
                attempts: 0,
            };
            self.store.record(&entry).await.map_err(store_err(name))?;
        }
        warn!(
            objects = drift.len(),
            "Drift: objects changed on the target since they were last read (see `scimsync activity --op drift`)."
        );
        Ok(())
    }

    /// An incremental run: the stored state believed, a first plan against it; the objects
    /// it touches and the doubtful ones read (nothing when there are none), merged, the
    /// drift of those read by id logged, their stored state refreshed, and the plan made
    /// again against what was found.
    async fn incremental(
        &self,
        links: &Links,
        capabilities: Option<scimsync_core::target::TargetCapabilities>,
    ) -> Result<Read, EngineError> {
        let name = self.name();
        let mut stored = self.store.load_state(name).await.map_err(store_err(name))?;
        let catalogue = if self.governed {
            links.facts.catalogue.clone().unwrap_or_default()
        } else {
            Default::default()
        };
        // The stored objects move into the believed snapshot (one copy of 100,000 users, not
        // two); `stored` keeps which are doubtful.
        let mut believed = TargetSnapshot {
            users: std::mem::take(&mut stored.users),
            groups: std::mem::take(&mut stored.groups),
            catalogue,
            capabilities,
        };
        if !self.scope.groups {
            believed.groups.clear();
        }
        let first = self.plan(&believed, links).await?;
        let mut lookup = match self.only_user {
            Some(id) => state::lookup(&trace::narrow(first.clone(), id)),
            None => state::lookup(&first),
        };
        state::extend_lookup(&mut lookup, stored.doubtful_lookup());
        if !self.scope.groups {
            lookup.group_ids.clear();
            lookup.group_names.clear();
        }
        if lookup.is_empty() {
            return Ok(Some(Planned {
                target: believed,
                plan: first,
                drifted: 0,
            }));
        }
        info!(
            users = lookup.user_ids.len(),
            user_names = lookup.user_names.len(),
            groups = lookup.group_ids.len() + lookup.group_names.len(),
            "Reading the objects the plan touches."
        );
        let read = tokio::select! {
            biased;
            () = self.opts.cancel.cancelled() => None,
            read = self.conn.target.read_some(&lookup) => Some(read),
        };
        let Some(read) = read else {
            return Ok(None);
        };
        let found = match read {
            Ok(f) => f,
            Err(e) => return Err(self.read_failed(e).await),
        };
        let mut drifted = 0;
        let mut keep = (Vec::new(), Vec::new());
        if !self.opts.dry_run {
            // The stored objects asked for by id, as they were believed.
            let asked_users: HashSet<&str> = lookup.user_ids.iter().map(|i| i.as_str()).collect();
            let asked_groups: HashSet<&str> = lookup.group_ids.iter().map(|i| i.as_str()).collect();
            let asked = StoredState {
                users: believed
                    .users
                    .iter()
                    .filter(|u| asked_users.contains(u.id.as_str()))
                    .cloned()
                    .collect(),
                groups: believed
                    .groups
                    .iter()
                    .filter(|g| asked_groups.contains(g.id.as_str()))
                    .cloned()
                    .collect(),
                doubtful_users: std::mem::take(&mut stored.doubtful_users),
                doubtful_groups: std::mem::take(&mut stored.doubtful_groups),
            };
            let drift = state::drift(&asked, &found, Some(&lookup), &believed.catalogue);
            self.record_drift(links, &drift).await?;
            drifted = drift.len() as u64;
            let users: HashSet<&str> = believed
                .users
                .iter()
                .map(|u| u.id.as_str())
                .chain(links.users.iter().map(|l| l.target_id.as_str()))
                .collect();
            let groups: HashSet<&str> = believed
                .groups
                .iter()
                .map(|g| g.id.as_str())
                .chain(links.groups.iter().map(|l| l.target_id.as_str()))
                .collect();
            keep = (
                found
                    .users
                    .iter()
                    .filter(|u| users.contains(u.id.as_str()))
                    .cloned()
                    .collect::<Vec<_>>(),
                found
                    .groups
                    .iter()
                    .filter(|g| groups.contains(g.id.as_str()))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        let gone = state::merge(&mut believed, &lookup, found);
        if !self.opts.dry_run {
            self.store
                .save_state(name, &keep.0, &keep.1)
                .await
                .map_err(store_err(name))?;
            self.store
                .forget_state(name, &gone.users, &gone.groups)
                .await
                .map_err(store_err(name))?;
        }
        let plan = self.plan(&believed, links).await?;
        Ok(Some(Planned {
            target: believed,
            plan,
            drifted,
        }))
    }
}

/// Most characters of a drift entry's detail (the store caps the whole).
const MAX_DRIFT_DETAIL: usize = 3_000;

/// Counts this run's calls to the target in the connection's facts (`facts`: as the run
/// leaves them), with what the adapter learned of how to read only some objects, and saves
/// them: the API budget of the next runs includes the calls, and they read as learned.
async fn save_run_facts<S, T, St>(
    conn: &Connection<S, T>,
    store: &St,
    budget: &Budget,
    mut facts: scimsync_core::links::TargetFacts,
) -> Result<(), EngineError>
where
    S: Source,
    T: Target,
    St: Store,
{
    let before = facts.clone();
    budget.account(&mut facts, conn.target.api_usage(), now());
    if let Some(learned) = conn.target.learned_reads() {
        facts.learned_reads = Some(learned.to_owned());
    }
    if facts != before {
        store
            .save_facts(&conn.name, &facts)
            .await
            .map_err(store_err(&conn.name))?;
    }
    Ok(())
}

/// Ends a run stopped (by shutdown or a lost lease) before anything was applied.
async fn interrupted_before_apply<St: Store>(
    store: &St,
    run_id: RunId,
    name: &str,
    opts: &RunOptions,
    during: &str,
) -> Result<RunReport, EngineError> {
    let message = format!(
        "{} while {during}; nothing was changed",
        opts.stop_reason.describe()
    );
    stopped_before_apply(store, run_id, name, RunStatus::Interrupted, message).await
}

/// Ends a run stopped before anything was applied, with `status` and `message`.
async fn stopped_before_apply<St: Store>(
    store: &St,
    run_id: RunId,
    name: &str,
    status: RunStatus,
    message: String,
) -> Result<RunReport, EngineError> {
    warn!("{message}");
    store
        .finish_run(
            run_id,
            &RunEnd {
                status,
                ..failed_run(message.clone())
            },
        )
        .await
        .map_err(store_err(name))?;
    Ok(RunReport {
        message: Some(message),
        ..RunReport::unapplied(run_id, name, status)
    })
}

/// The target's capabilities: the cached discovery while it is fresh (the client is told to
/// follow it), else a new one, saved with the connection's facts. A discovery that fails for
/// a passing reason falls back on the cached one (or on none: then every mapped attribute is
/// planned); a broken connection fails the run.
async fn discover<S, T, St>(
    conn: &Connection<S, T>,
    store: &St,
    links: &mut scimsync_core::links::Links,
    opts: &RunOptions,
    run_id: RunId,
) -> Result<Option<scimsync_core::target::TargetCapabilities>, EngineError>
where
    S: Source,
    T: Target,
    St: Store,
{
    use scimsync_core::ports::{Classify, Disposition};
    let name = conn.name.as_str();
    let at = now();
    let fresh = links
        .facts
        .discovered_at
        .is_some_and(|d| at.millis() - d.millis() < DISCOVERY_MAX_AGE_MS);
    if let (Some(caps), true, false) = (&links.facts.capabilities, fresh, opts.rediscover) {
        conn.target.use_capabilities(caps);
        follow_learned_reads(conn, links);
        return Ok(Some(caps.clone()));
    }
    match conn.target.discover().await {
        Ok(caps) => {
            let mut ledger = Ledger::new(std::mem::take(links));
            ledger.set_capabilities(caps.clone(), at);
            *links = ledger.into_links();
            store
                .save_facts(name, &links.facts)
                .await
                .map_err(store_err(name))?;
            info!("Target capabilities discovered.");
            Ok(Some(caps))
        }
        Err(e) if e.disposition() == Disposition::Fatal => {
            let message = format!("reading the target failed: {}", chain(&e));
            record_run_event(store, run_id, name, "discover", Outcome::Failed, &message).await;
            let _ = store.finish_run(run_id, &failed_run(message)).await;
            Err(EngineError::ReadTarget {
                connection: name.to_owned(),
                source: Box::new(e),
            })
        }
        Err(e) => {
            warn!(error = %chain(&e), "Discovering the target's capabilities failed; going on with what was known.");
            if let Some(caps) = &links.facts.capabilities {
                conn.target.use_capabilities(caps);
                follow_learned_reads(conn, links);
            }
            Ok(links.facts.capabilities.clone())
        }
    }
}

/// Has the target adapter follow what earlier runs learned of how to read only some objects
/// (kept in the facts until the next discovery).
fn follow_learned_reads<S, T>(conn: &Connection<S, T>, links: &scimsync_core::links::Links)
where
    S: Source,
    T: Target,
{
    if let Some(learned) = &links.facts.learned_reads {
        conn.target.follow_learned_reads(learned);
    }
}

/// The end of a run that failed before applying anything.
fn failed_run(message: String) -> RunEnd {
    RunEnd {
        status: RunStatus::Failed,
        finished_at: now(),
        source_users: None,
        planned: 0,
        applied: 0,
        failed: 0,
        rejected: 0,
        skipped: 0,
        message: Some(message),
        read: None,
    }
}

/// An error and its sources, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

async fn record_run_event<St: Store>(
    store: &St,
    run_id: RunId,
    connection: &str,
    op: &str,
    outcome: Outcome,
    detail: &str,
) {
    let entry = ActivityEntry {
        id: 0,
        run_id,
        connection: connection.to_owned(),
        at: now(),
        op: op.to_owned(),
        outcome,
        object: "run".to_owned(),
        source_id: None,
        target_id: None,
        name: connection.to_owned(),
        detail: detail.to_owned(),
        attempts: 0,
    };
    if let Err(e) = store.record(&entry).await {
        warn!(error = %e, "Recording a run event failed.");
    }
}

/// The end of a run whose approval named another plan than the one made now: nothing is
/// applied, the run ends guarded and the activity log says why.
#[allow(clippy::too_many_arguments)]
async fn refuse_changed_plan<St: Store>(
    store: &St,
    name: &str,
    run_id: RunId,
    approved: &str,
    plan: Plan,
    trip: Option<GuardTrip>,
    source_users: u64,
    labels: Labels,
    kind: RunKind,
) -> Result<RunReport, EngineError> {
    let message = format!(
        "the approval was for plan {approved}, but the plan is now {}; nothing was applied \
         (review the new plan and approve it)",
        plan.fingerprint()
    );
    warn!(%message, "Approval refused.");
    record_run_event(store, run_id, name, "approve", Outcome::Rejected, &message).await;
    store
        .finish_run(
            run_id,
            &RunEnd {
                status: RunStatus::Guarded,
                finished_at: now(),
                source_users: Some(source_users),
                planned: plan.operations.len() as u64,
                applied: 0,
                failed: 0,
                rejected: 0,
                skipped: 0,
                message: Some(message.clone()),
                read: Some(kind.to_string()),
            },
        )
        .await
        .map_err(store_err(name))?;
    Ok(RunReport {
        held: plan.summary.held as u64,
        guard: trip,
        source_users,
        message: Some(message),
        plan,
        labels,
        read: Some(kind),
        ..RunReport::unapplied(run_id, name, RunStatus::Guarded)
    })
}
