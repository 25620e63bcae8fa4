//! What a run costs against the emulators, side by side in one process:
//! `cargo bench -p scimsync-engine --bench sync`.
//!
//! Duo emulator → the real Duo reader → the engine → the real SCIM client → the Salesforce
//! emulator, the store on SQLite in a temporary folder. Sizes from `SCIMSYNC_BENCH_USERS`
//! (default 100000) and `SCIMSYNC_BENCH_GROUPS` (default 2000); `SCIMSYNC_BENCH_QUICK=1` is
//! 2,000 users and 40 groups. The throttled initial sync runs at `SCIMSYNC_BENCH_RPS`
//! (default 250) requests a second with 20 ms of latency on every answer.
//!
//! One `key=value` line per figure, grouped by scenario:
//!
//! - `initial_throttled_*`: a first sync into an empty org whose emulator enforces R requests a
//!   second (rejecting the rest with 403 `REQUEST_LIMIT_EXCEEDED`) while the client is set to
//!   R: `ratio_to_limit` = wall time / (SCIM requests / R), the goal ≤ 1.05;
//!   `rate_rejections_after_1s` the rejections after the run's first second (goal 0).
//! - `initial_*`: the same without throttling or latency: operations a second, and the
//!   emulators' share of the process's CPU time (they run on threads of their own).
//! - `noop_*`: the next (incremental) run, nothing changed in the directory, in a child process
//!   (this binary again) so its memory is its own: target requests (goal ≤ 10), writes (goal
//!   0), and the peak resident memory the run added (`VmHWM` at the end − `VmRSS` before it)
//!   per source user.
//! - `churn_*`: 1% of the users changed in the directory (a third disabled, a third renamed,
//!   a third moved to another group), an incremental run: target requests over the minimal
//!   requests (one per planned operation; goal ≤ 1.1).
//! - `full_*`: another 1% changed, a full run (`RunOptions::full`): requests, pages read and
//!   changes written (goal: requests = pages + changes).
//!
//! The planner at 1,000,000 users is measured by `cargo bench -p scimsync-core --bench
//! planner`, not here.
//!
//! `SCIMSYNC_BENCH_ONLY=noop` (a comma-separated list of `throttled`, `initial`, `noop`,
//! `churn`, `full`) runs only those scenarios; `noop`, `churn` and `full` need the initial sync and
//! run it (and print its figures) whether named or not.
//!
//! The no-op child also prints where its memory goes, phase by phase (`noop_phase_<phase>_*`,
//! in phase order: `source` the Duo read, `links` loading the links, `target` discovery and
//! the target read or the stored state loaded (an incremental run also plans once and reads
//! what that plan touches here), `plan` the plan and what the engine builds to apply it, up to its first
//! record or the run's end, `apply` the rest): `rss_kb` the resident memory at the phase's
//! end and `peak_kb` the highest resident memory during the phase (`VmHWM`, reset at each
//! phase's start through `/proc/self/clear_refs`), both above the resident memory before
//! the run. The phases are told apart by wrapping the run's source and store.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use scimsync_core::Timestamp;
use scimsync_core::activity::{ActivityEntry, ActivityQuery, RunId, RunRecord};
use scimsync_core::links::{GroupLink, HeldRefusal, Links, TargetFacts, UserLink};
use scimsync_core::plan::ObjectKind;
use scimsync_core::policy::{Governance, Policy, RuleSpec};
use scimsync_core::ports::{LeaseHolder, NewRun, RunEnd, Source, Store};
use scimsync_core::source::SourceSnapshot;
use scimsync_core::state::StoredState;
use scimsync_core::target::{TargetGroup, TargetUser};
use scimsync_core::{TargetGroupId, TargetUserId};
use scimsync_directory::{DuoConfig, DuoEndpoint, DuoSource};
use scimsync_engine::{Connection, RunOptions, RunReport, reconcile_once};
use scimsync_scim::{Auth, ClientAuthMethod, Dialect, ScimClient, ScimConfig};
use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator;
use scimsync_sim::salesforce::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, LoggedRequest, SalesforceConfig, SalesforceSim,
};
use scimsync_store::SqlStore;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SEED: u64 = 11;
const CHILD: &str = "SCIMSYNC_BENCH_CHILD";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn policy() -> Policy {
    Policy {
        governance: Governance {
            baseline: Some(RuleSpec {
                profile: "Standard User".to_owned(),
                permission_sets: Vec::new(),
                role: None,
            }),
            ..Governance::default()
        },
        ..Policy::default()
    }
}

/// What the child process needs to run against the parent's emulators and store.
struct Endpoints {
    duo_url: String,
    duo_ikey: String,
    duo_skey: String,
    sf_base: String,
    sf_token: String,
    store: String,
}

impl Endpoints {
    fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).unwrap();
        Self {
            duo_url: var("BENCH_DUO_URL"),
            duo_ikey: var("BENCH_DUO_IKEY"),
            duo_skey: var("BENCH_DUO_SKEY"),
            sf_base: var("BENCH_SF_BASE"),
            sf_token: var("BENCH_SF_TOKEN"),
            store: var("BENCH_STORE"),
        }
    }

    fn to_env(&self, cmd: &mut std::process::Command) {
        cmd.env("BENCH_DUO_URL", &self.duo_url)
            .env("BENCH_DUO_IKEY", &self.duo_ikey)
            .env("BENCH_DUO_SKEY", &self.duo_skey)
            .env("BENCH_SF_BASE", &self.sf_base)
            .env("BENCH_SF_TOKEN", &self.sf_token)
            .env("BENCH_STORE", &self.store);
    }

    async fn connection(&self, rps: u32, concurrency: usize) -> Connection<DuoSource, ScimClient> {
        let mut duo = DuoConfig::new(
            DuoEndpoint::BaseUrl(url::Url::parse(&self.duo_url).unwrap()),
            self.duo_ikey.clone(),
            SecretString::from(self.duo_skey.clone()),
        );
        duo.backoff_base = Duration::from_millis(50);
        let target = ScimClient::new(ScimConfig {
            requests_per_second: rps,
            max_concurrency: concurrency,
            backoff_base: Duration::from_millis(50),
            ..ScimConfig::new(
                url::Url::parse(&self.sf_base).unwrap(),
                Auth::ClientCredentials {
                    token_url: url::Url::parse(&self.sf_token).unwrap(),
                    client_id: DEMO_CLIENT_ID.to_owned(),
                    client_secret: SecretString::from(DEMO_CLIENT_SECRET.to_owned()),
                    method: ClientAuthMethod::Form,
                },
                Dialect::Salesforce,
            )
        })
        .unwrap();
        Connection {
            name: "salesforce".into(),
            source: DuoSource::new(duo).unwrap(),
            target,
            policy: policy(),
        }
    }
}

/// Emulators on a runtime (and threads) of their own, so their CPU time can be told apart.
struct World {
    sim_rt: tokio::runtime::Runtime,
    duo: DuoSim,
    sf: SalesforceSim,
    endpoints: Endpoints,
    _dir: tempfile::TempDir,
}

impl World {
    fn start(users: usize, groups: usize) -> Self {
        let sim_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-sim")
            .enable_all()
            .build()
            .unwrap();
        let dataset = generator::generate(users, groups, SEED);
        let (duo, sf) = sim_rt.block_on(async {
            let duo = DuoSim::start(DuoSimConfig::demo(), dataset).await.unwrap();
            let sf = SalesforceSim::start(SalesforceConfig {
                daily_api_limit: u64::MAX,
                ..SalesforceConfig::demo()
            })
            .await
            .unwrap();
            (duo, sf)
        });
        let dir = tempfile::tempdir().unwrap();
        let endpoints = Endpoints {
            duo_url: duo.base_url(),
            duo_ikey: duo.integration_key().to_owned(),
            duo_skey: duo.secret_key().to_owned(),
            sf_base: sf.base_url(),
            sf_token: sf.token_url(),
            store: dir.path().join("store.db").to_str().unwrap().to_owned(),
        };
        Self {
            sim_rt,
            duo,
            sf,
            endpoints,
            _dir: dir,
        }
    }

    fn scim_log(&self) -> Vec<LoggedRequest> {
        self.sf
            .inspect()
            .request_log()
            .into_iter()
            .filter(|r| r.path.starts_with("/services/scim/"))
            .collect()
    }
}

async fn run(conn: &Connection<DuoSource, ScimClient>, store: &SqlStore) -> RunReport {
    run_with(conn, store, false).await
}

async fn run_with(
    conn: &Connection<DuoSource, ScimClient>,
    store: &SqlStore,
    full: bool,
) -> RunReport {
    let report = reconcile_once(
        conn,
        store,
        &RunOptions {
            max_concurrency: conn_concurrency(),
            approve_destructive: true,
            full,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 0, "{:?}", report.message);
    report
}

fn conn_concurrency() -> usize {
    16
}

/// CPU time (user + system) of this process's threads, split into the emulators' and the rest.
fn cpu_split() -> (Duration, Duration) {
    let tick = Duration::from_secs(1) / 100;
    let (mut sim, mut rest) = (Duration::ZERO, Duration::ZERO);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (sim, rest);
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: u32 = f.get(11).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        if comm.starts_with("bench-sim") {
            sim += tick * ticks;
        } else {
            rest += tick * ticks;
        }
    }
    (sim, rest)
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The resident memory of the run's phases, each taken once, in the order they end.
#[derive(Debug, Default)]
struct Phases {
    /// `VmRSS` before the run (kB).
    base: u64,
    /// (phase, `VmRSS` at its end, `VmHWM` during it), in kB.
    ended: Mutex<Vec<(&'static str, u64, u64)>>,
}

impl Phases {
    /// Starts measuring: the resident memory now is the base, the high-water mark is reset.
    fn start() -> Self {
        reset_hwm();
        Self {
            base: status_kb("VmRSS:"),
            ended: Mutex::default(),
        }
    }

    /// Ends `phase` (once; later calls are ignored) and starts the next one.
    fn end(&self, phase: &'static str) {
        let mut ended = self.ended.lock().unwrap();
        if ended.iter().any(|(p, ..)| *p == phase) {
            return;
        }
        ended.push((phase, status_kb("VmRSS:"), status_kb("VmHWM:")));
        reset_hwm();
    }

    fn ended(&self, phase: &str) -> bool {
        self.ended.lock().unwrap().iter().any(|(p, ..)| *p == phase)
    }

    /// `noop_phase_<phase>_rss_kb=… noop_phase_<phase>_peak_kb=…`, above the base.
    fn line(&self) -> String {
        self.ended
            .lock()
            .unwrap()
            .iter()
            .map(|(p, rss, hwm)| {
                format!(
                    "noop_phase_{p}_rss_kb={} noop_phase_{p}_peak_kb={}",
                    rss.saturating_sub(self.base),
                    hwm.saturating_sub(self.base)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Resets `VmHWM` to the current resident memory (Linux's `clear_refs`, value 5).
fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The run's source, ending the `source` phase when its read returns.
struct MarkedSource<S> {
    inner: S,
    phases: Arc<Phases>,
}

impl<S: Source> Source for MarkedSource<S> {
    type Error = S::Error;

    async fn read(&self) -> Result<SourceSnapshot, S::Error> {
        let read = self.inner.read().await;
        self.phases.end("source");
        read
    }
}

/// The run's store, ending phases as the engine reaches it: `links` when the links are
/// loaded; `target` when the engine asks for the last run's source count (right after the
/// target read); `plan` at the first record, save or the run's end after that; `apply` at the
/// run's end.
struct MarkedStore<'a> {
    inner: &'a SqlStore,
    phases: Arc<Phases>,
}

impl MarkedStore<'_> {
    fn writing(&self) {
        if self.phases.ended("target") {
            self.phases.end("plan");
        }
    }
}

type StoreResult<T> = Result<T, scimsync_store::StoreError>;

impl Store for MarkedStore<'_> {
    type Error = scimsync_store::StoreError;

    async fn start_run(&self, run: &NewRun) -> StoreResult<RunId> {
        self.inner.start_run(run).await
    }
    async fn finish_run(&self, id: RunId, end: &RunEnd) -> StoreResult<()> {
        self.writing();
        self.phases.end("apply");
        self.inner.finish_run(id, end).await
    }
    async fn list_runs(&self, connection: Option<&str>, limit: u32) -> StoreResult<Vec<RunRecord>> {
        self.inner.list_runs(connection, limit).await
    }
    async fn last_source_count(&self, connection: &str) -> StoreResult<Option<u64>> {
        self.phases.end("target");
        self.inner.last_source_count(connection).await
    }
    async fn last_success(&self, connection: &str) -> StoreResult<Option<Timestamp>> {
        self.inner.last_success(connection).await
    }
    async fn record(&self, entry: &ActivityEntry) -> StoreResult<i64> {
        self.writing();
        self.inner.record(entry).await
    }
    async fn record_about(&self, entry: &ActivityEntry, subjects: &[String]) -> StoreResult<i64> {
        self.writing();
        self.inner.record_about(entry, subjects).await
    }
    async fn query_activity(&self, query: &ActivityQuery) -> StoreResult<Vec<ActivityEntry>> {
        self.inner.query_activity(query).await
    }
    async fn logged_rejections(&self, connection: &str) -> StoreResult<HashMap<String, String>> {
        self.writing();
        self.inner.logged_rejections(connection).await
    }
    async fn load_links(&self, connection: &str) -> StoreResult<Links> {
        let links = self.inner.load_links(connection).await;
        self.phases.end("links");
        links
    }
    async fn save_refusal(&self, connection: &str, refusal: &HeldRefusal) -> StoreResult<()> {
        self.writing();
        self.inner.save_refusal(connection, refusal).await
    }
    async fn clear_refusal(
        &self,
        connection: &str,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
    ) -> StoreResult<()> {
        self.inner
            .clear_refusal(connection, object, source_id, attribute)
            .await
    }
    async fn clear_refusals(&self, connection: &str, source_id: Option<&str>) -> StoreResult<u64> {
        self.inner.clear_refusals(connection, source_id).await
    }
    async fn save_facts(&self, connection: &str, facts: &TargetFacts) -> StoreResult<()> {
        self.writing();
        self.inner.save_facts(connection, facts).await
    }
    async fn save_user_link(&self, connection: &str, link: &UserLink) -> StoreResult<()> {
        self.writing();
        self.inner.save_user_link(connection, link).await
    }
    async fn save_group_link(&self, connection: &str, link: &GroupLink) -> StoreResult<()> {
        self.writing();
        self.inner.save_group_link(connection, link).await
    }
    async fn load_state(&self, connection: &str) -> StoreResult<StoredState> {
        self.inner.load_state(connection).await
    }
    async fn save_state(
        &self,
        connection: &str,
        users: &[TargetUser],
        groups: &[TargetGroup],
    ) -> StoreResult<()> {
        self.writing();
        self.inner.save_state(connection, users, groups).await
    }
    async fn forget_state(
        &self,
        connection: &str,
        users: &[TargetUserId],
        groups: &[TargetGroupId],
    ) -> StoreResult<()> {
        self.writing();
        self.inner.forget_state(connection, users, groups).await
    }
    async fn mark_doubtful(
        &self,
        connection: &str,
        users: &[TargetUserId],
        groups: &[TargetGroupId],
    ) -> StoreResult<()> {
        self.writing();
        self.inner.mark_doubtful(connection, users, groups).await
    }
    async fn replace_state(&self, connection: &str, state: &StoredState) -> StoreResult<()> {
        self.inner.replace_state(connection, state).await
    }
    async fn acquire_lease(
        &self,
        connection: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<bool> {
        self.inner.acquire_lease(connection, holder, now, ttl).await
    }
    async fn release_lease(&self, connection: &str, holder: &str) -> StoreResult<()> {
        self.inner.release_lease(connection, holder).await
    }
    async fn lease_holder(&self, connection: &str) -> StoreResult<Option<LeaseHolder>> {
        self.inner.lease_holder(connection).await
    }
    async fn abandon_runs(
        &self,
        connection: &str,
        before: Timestamp,
        at: Timestamp,
        message: &str,
    ) -> StoreResult<u64> {
        self.inner
            .abandon_runs(connection, before, at, message)
            .await
    }
}

/// The child: one run against the parent's emulators; prints its memory, in all and by phase.
fn child() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let endpoints = Endpoints::from_env();
    rt.block_on(async {
        let store = SqlStore::connect(&endpoints.store).await.unwrap();
        let conn = endpoints.connection(10_000, conn_concurrency()).await;
        let before = status_kb("VmRSS:");
        let phases = Arc::new(Phases::start());
        let conn = Connection {
            name: conn.name,
            source: MarkedSource {
                inner: conn.source,
                phases: phases.clone(),
            },
            target: conn.target,
            policy: conn.policy,
        };
        let marked = MarkedStore {
            inner: &store,
            phases: phases.clone(),
        };
        let report = reconcile_once(
            &conn,
            &marked,
            &RunOptions {
                max_concurrency: conn_concurrency(),
                approve_destructive: true,
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(report.failed, 0, "{:?}", report.message);
        // The whole run's high-water mark: the highest of its phases'.
        let hwm = phases
            .ended
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, hwm)| *hwm)
            .max()
            .unwrap_or(0)
            .max(status_kb("VmHWM:"));
        println!(
            "child_rss_before_kb={before} child_hwm_kb={hwm} child_operations={} child_source_users={} {}",
            report.plan.operations.len(),
            report.source_users,
            phases.line()
        );
    });
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let quick = std::env::var_os("SCIMSYNC_BENCH_QUICK").is_some();
    let users = env_usize("SCIMSYNC_BENCH_USERS", if quick { 2_000 } else { 100_000 });
    let groups = env_usize("SCIMSYNC_BENCH_GROUPS", if quick { 40 } else { 2_000 });
    let rps = env_usize("SCIMSYNC_BENCH_RPS", 250).max(1);
    let only = std::env::var("SCIMSYNC_BENCH_ONLY").unwrap_or_default();
    let wanted =
        |scenario: &str| only.trim().is_empty() || only.split(',').any(|s| s.trim() == scenario);
    println!("users={users} groups={groups} rps={rps}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-engine")
        .enable_all()
        .build()
        .unwrap();

    // initial, throttled: the emulator enforces R requests a second with 20 ms latency.
    if wanted("throttled") {
        let w = World::start(users, groups);
        w.sf.knobs()
            .enforce_rps(Some(u32::try_from(rps).unwrap_or(u32::MAX)));
        w.sf.knobs().set_latency(Duration::from_millis(20));
        rt.block_on(async {
            let store = SqlStore::connect(&w.endpoints.store).await.unwrap();
            let conn = w
                .endpoints
                .connection(u32::try_from(rps).unwrap_or(u32::MAX), conn_concurrency())
                .await;
            let started = Instant::now();
            let report = run(&conn, &store).await;
            let wall = started.elapsed();
            let log = w.scim_log();
            let first = log.first().map_or(Duration::ZERO, |r| r.at);
            let requests = log.len();
            let rejections = w
                .sf
                .inspect()
                .rate_rejections()
                .iter()
                .filter(|at| at.saturating_sub(first) > Duration::from_secs(1))
                .count();
            let ideal = requests as f64 / rps as f64;
            println!(
                "initial_throttled_operations={} initial_throttled_requests={requests} initial_throttled_wall_s={:.2} initial_throttled_ratio_to_limit={:.3} initial_throttled_rate_rejections_after_1s={rejections}",
                report.plan.operations.len(),
                wall.as_secs_f64(),
                wall.as_secs_f64() / ideal
            );
        });
        drop(w.sim_rt);
    }

    // initial (unthrottled), noop (child process), churn 1% = full.
    if !["initial", "noop", "churn", "full"]
        .into_iter()
        .any(&wanted)
    {
        return;
    }
    let w = World::start(users, groups);
    rt.block_on(async {
        let store = SqlStore::connect(&w.endpoints.store).await.unwrap();
        let conn = w.endpoints.connection(10_000, conn_concurrency()).await;
        let (sim0, rest0) = cpu_split();
        let started = Instant::now();
        let report = run(&conn, &store).await;
        let wall = started.elapsed();
        let (sim1, rest1) = cpu_split();
        let (sim, rest) = (sim1 - sim0, rest1 - rest0);
        let ops = report.applied;
        println!(
            "initial_operations={ops} initial_requests={} initial_wall_s={:.2} initial_ops_per_s={:.0} initial_emulator_cpu_share={:.2}",
            w.scim_log().len(),
            wall.as_secs_f64(),
            ops as f64 / wall.as_secs_f64(),
            sim.as_secs_f64() / (sim + rest).as_secs_f64().max(1e-9)
        );
        store.close().await;
    });

    if wanted("noop") {
        noop(&w, users);
    }
    if wanted("churn") || wanted("full") {
        churn(&rt, &w);
    }
}

/// The no-op run, in a child process.
fn noop(w: &World, users: usize) {
    let before = w.scim_log().len();
    let writes_before = w.sf.inspect().writes();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD, "1");
    w.endpoints.to_env(&mut cmd);
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> u64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (rss, hwm) = (field("child_rss_before_kb"), field("child_hwm_kb"));
    println!(
        "noop_requests={} noop_writes={} noop_operations={} noop_wall_s={:.2} noop_peak_rss_added_kb={} noop_peak_rss_bytes_per_user={:.0}",
        w.scim_log().len() - before,
        w.sf.inspect().writes() - writes_before,
        field("child_operations"),
        wall.as_secs_f64(),
        hwm.saturating_sub(rss),
        (hwm.saturating_sub(rss) * 1024) as f64 / users as f64
    );
    let phases: Vec<&str> = text
        .split_whitespace()
        .filter(|kv| kv.starts_with("noop_phase_"))
        .collect();
    println!("{}", phases.join(" "));
}

/// 1% of the users change in the directory; an incremental run, then another 1% and a full
/// run.
fn churn(rt: &tokio::runtime::Runtime, w: &World) {
    // churn: 1% of the users change in the directory; an incremental run.
    let snapshot = w.duo.dataset().snapshot();
    let step = 100usize;
    change(w, &snapshot, 0, step);
    rt.block_on(async {
        let store = SqlStore::connect(&w.endpoints.store).await.unwrap();
        let conn = w.endpoints.connection(10_000, conn_concurrency()).await;
        let before = w.scim_log().len();
        let started = Instant::now();
        let report = run(&conn, &store).await;
        let wall = started.elapsed();
        let requests = w.scim_log().len() - before;
        let minimal = report.plan.operations.len().max(1);
        println!(
            "churn_read={} churn_changed_users={} churn_operations={} churn_requests={requests} churn_requests_over_minimal={:.2} churn_wall_s={:.2}",
            report.read.as_ref().map_or("-", |r| r.name()),
            snapshot.users.len().div_ceil(step),
            report.plan.operations.len(),
            requests as f64 / minimal as f64,
            wall.as_secs_f64()
        );
        store.close().await;
    });

    // full: another 1% changes; a full run reads every page and writes the changes.
    change(w, &snapshot, step / 2, step);
    rt.block_on(async {
        let store = SqlStore::connect(&w.endpoints.store).await.unwrap();
        let conn = w.endpoints.connection(10_000, conn_concurrency()).await;
        let before = w.scim_log();
        let started = Instant::now();
        let report = run_with(&conn, &store, true).await;
        let wall = started.elapsed();
        let log = w.scim_log();
        let new = &log[before.len()..];
        let reads = new.iter().filter(|r| r.method == "GET").count();
        let writes = new.len() - reads;
        println!(
            "full_operations={} full_requests={} full_pages={reads} full_changes={writes} full_requests_over_pages_plus_changes={:.2} full_drifted={} full_wall_s={:.2}",
            report.plan.operations.len(),
            new.len(),
            new.len() as f64 / (reads + writes).max(1) as f64,
            report.drifted,
            wall.as_secs_f64()
        );
        store.close().await;
    });
}

/// Changes every `step`-th user of `snapshot` from `offset` on: a third disabled, a third
/// renamed, a third moved to another group.
fn change(w: &World, snapshot: &generator::DuoDataset, offset: usize, step: usize) {
    let dataset = w.duo.dataset();
    let group_ids: Vec<String> = snapshot.groups.iter().map(|g| g.group_id.clone()).collect();
    for (n, u) in snapshot.users.iter().skip(offset).step_by(step).enumerate() {
        match n % 3 {
            0 => {
                let _ = dataset.disable_user(&u.user_id);
            }
            1 => {
                let _ = dataset.set_user_names(&u.user_id, "Renamed", "Person");
            }
            _ => {
                if let Some(from) = u.groups.first() {
                    let to = &group_ids[(n * 7) % group_ids.len()];
                    let _ = dataset.move_user(&u.user_id, from, to);
                }
            }
        }
    }
}
