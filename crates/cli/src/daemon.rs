//! `scimsync daemon`: every connection on its schedule, and an HTTP listener for status and
//! the web view (see [`crate::web`]).
//!
//! Who may do what on the listener:
//! - `GET /healthz`: anyone (`ok`, or 503 `stuck` when a run of this daemon has gone on longer
//!   than its bound, naming nothing);
//! - `GET /readyz`: anyone gets the status (200 ready, 503 not); the reasons, naming the
//!   connections, are given to clients on loopback or with the token, like `/metrics`;
//! - `GET /metrics`, the web view's pages (and any other read): clients on loopback, or with
//!   the bearer token;
//! - `POST /ui/connections/{name}/approve`: the web view's approve form, which carries the
//!   token in a field the operator types it into (or the header); its handler checks it with
//!   [`same_secret`] like the header is checked here;
//! - `POST /connections/{name}/sync`: only with the bearer token (`Authorization: Bearer …`,
//!   from `daemon.token_env` or `daemon.token_file`); without a configured token, writes are
//!   refused. A browser page cannot send the header without the token, so a page an admin
//!   visits cannot start or approve a run.
//!
//! The daemon refuses to listen beyond loopback without a token.

use crate::config::Settings;
use crate::listen::{GuardedListener, Peer};
use crate::{Tally, load_settings, web, wiring};
use anyhow::Context as _;
use axum::Router;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use scimsync_core::activity::{ActivityEntry, ActivityQuery, Outcome, RunId, RunStatus, Trigger};
use scimsync_core::ports::Store as _;
use scimsync_engine::{
    Concern, EngineError, FinishedRun, Job, Metrics, Progress, RunOptions, RunReport, RunRequest,
    Scheduler, SchedulerError, StopReason, reconcile_once,
};
use scimsync_store::SqlStore;
use secrecy::{ExposeSecret as _, SecretString};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Counts a run's operations in the metrics, logs a progress line every 10 s while it applies,
/// and tells whoever triggered it its run id.
struct CountingProgress {
    metrics: Arc<Metrics>,
    /// The `POST …/sync` waiting for the run id, if this run is the one it triggered.
    started: std::sync::Mutex<Option<oneshot::Sender<RunId>>>,
    tally: Arc<std::sync::Mutex<Tally>>,
}

impl CountingProgress {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Progress for CountingProgress {
    fn started(&self, run_id: RunId) {
        if let Some(tx) = take(&self.started) {
            let _ = tx.send(run_id);
        }
    }
    fn planned(&self, total: usize) {
        self.tally().planned(total);
    }
    fn planned_kinds(&self, kinds: &std::collections::BTreeMap<&'static str, usize>) {
        self.tally().planned_kinds(kinds);
    }
    fn applied(&self, entry: &ActivityEntry) {
        self.metrics.operation(entry);
        self.tally().applied(&entry.op);
    }
}

/// Takes what a mutex holds (a poisoned one too).
fn take<T>(slot: &std::sync::Mutex<Option<T>>) -> Option<T> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// How long `POST …/sync` waits for the run it started to be recorded (the lease may be held
/// briefly by a run that is ending) before answering without its id.
const RUN_ID_WAIT: Duration = Duration::from_secs(10);

struct ConnectionJob {
    name: String,
    /// Set by `POST …/sync` before it triggers a run: the run it starts sends its id there.
    waiting: std::sync::Mutex<Option<oneshot::Sender<RunId>>>,
    conn: wiring::Conn,
    store: Arc<SqlStore>,
    max_concurrency: usize,
    metrics: Arc<Metrics>,
}

impl ConnectionJob {
    fn run_with(&self, opts: RunOptions) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        Box::pin(async move {
            let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
            crate::progress_lines(&tally, Some(self.name.clone()));
            let opts = RunOptions {
                max_concurrency: self.max_concurrency,
                progress: Some(Arc::new(CountingProgress {
                    metrics: Arc::clone(&self.metrics),
                    started: std::sync::Mutex::new(take(&self.waiting)),
                    tally,
                })),
                ..opts
            };
            let report = reconcile_once(&self.conn, &*self.store, &opts).await;
            if let Some((used, limit)) = self.conn.target.stats().api_usage {
                self.metrics.api_usage(&self.name, used, limit);
            }
            report
        })
    }
}

impl web::Preview for ConnectionJob {
    fn preview(&self) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        Box::pin(async move {
            let opts = RunOptions {
                trigger: Trigger::Api,
                dry_run: true,
                explain: true,
                max_concurrency: self.max_concurrency,
                ..RunOptions::default()
            };
            reconcile_once(&self.conn, &*self.store, &opts).await
        })
    }
}

impl Job for ConnectionJob {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(
        &self,
        trigger: Trigger,
        request: RunRequest,
        cancel: CancellationToken,
        stop_reason: StopReason,
    ) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        self.run_with(RunOptions {
            trigger,
            approve_destructive: request.approve,
            full: request.full,
            cancel,
            stop_reason,
            ..RunOptions::default()
        })
    }

    fn run_approving_plan(
        &self,
        trigger: Trigger,
        plan: String,
        cancel: CancellationToken,
        stop_reason: StopReason,
    ) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        // Explained, so that a refused approval shows the new plan with its reasons.
        self.run_with(RunOptions {
            trigger,
            approve_plan: Some(plan),
            explain: true,
            cancel,
            stop_reason,
            ..RunOptions::default()
        })
    }
}

#[derive(Clone)]
struct App {
    scheduler: Arc<Scheduler<SqlStore>>,
    /// The jobs by connection name (a triggered run's id comes back through them).
    jobs: Arc<HashMap<String, Arc<ConnectionJob>>>,
    metrics: Arc<Metrics>,
    /// How long a run of each connection may go before it is called stuck.
    stuck_after: Arc<HashMap<String, Duration>>,
    /// The bearer token of `daemon.token_*`; `None`: writes are refused.
    token: Option<Arc<SecretString>>,
    /// The web view's sign-in cookies.
    sessions: Arc<crate::session::Sessions>,
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(config: &Path) -> anyhow::Result<u8> {
    let settings: Settings = load_settings(config)?;
    if !settings.listen.ip().is_loopback() && settings.daemon_token.is_none() {
        anyhow::bail!(
            "daemon.listen is {}, beyond loopback, and no token is configured: set daemon.token_env \
             or daemon.token_file (clients send it as `Authorization: Bearer …`), or listen on 127.0.0.1",
            settings.listen
        );
    }
    let store = Arc::new(
        SqlStore::connect(&settings.store_url)
            .await
            .context("opening the store")?,
    );
    let metrics = Arc::new(Metrics::default());
    for c in &settings.connections {
        // The last success and the last run survive restarts: an alert on the success's age
        // does not fire after a deploy, and a guard holding deactivations still holds.
        match store.last_success(&c.name).await {
            Ok(Some(at)) => metrics.restore_last_success(&c.name, seconds(at)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(connection = %c.name, error = %e, "Cannot read the last successful run.")
            }
        }
        if let Err(e) = restore_last_run(&store, &metrics, &c.name).await {
            tracing::warn!(connection = %c.name, error = %e, "Cannot read the last run.");
        }
    }
    let cancel = crate::shutdown_token();
    let holder = crate::holder_name();
    let mut scheduler = Scheduler::new(
        Arc::clone(&store),
        holder,
        Arc::clone(&metrics),
        cancel.clone(),
    );
    let mut schedules = Vec::new();
    let mut pages = BTreeMap::new();
    let mut jobs = HashMap::new();
    for c in &settings.connections {
        let conn = wiring::connection(c)?;
        let job = Arc::new(ConnectionJob {
            name: c.name.clone(),
            waiting: std::sync::Mutex::new(None),
            conn,
            store: Arc::clone(&store),
            max_concurrency: c.max_concurrency,
            metrics: Arc::clone(&metrics),
        });
        jobs.insert(c.name.clone(), Arc::clone(&job));
        scheduler.add(Arc::clone(&job) as Arc<dyn Job>);
        pages.insert(
            c.name.clone(),
            web::WebConnection {
                schedule: c.schedule.clone(),
                preview: job,
            },
        );
        if let Some(s) = &c.schedule {
            schedules.push((c.name.clone(), s.clone()));
        }
    }
    let scheduler = Arc::new(scheduler);
    scheduler.start(&schedules).await?;
    if let Some(retention) = settings.retention {
        crate::prune::spawn_daemon_pruning(Arc::clone(&store), retention, cancel.clone());
    }
    let stuck_after: HashMap<String, Duration> = settings
        .connections
        .iter()
        .map(|c| {
            let bound = settings.stuck_after.unwrap_or_else(|| {
                default_stuck_after(c.schedule.as_deref(), scimsync_engine::now())
            });
            (c.name.clone(), bound)
        })
        .collect();
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_page))
        .route("/connections/{name}/sync", post(sync));
    let state = App {
        scheduler: Arc::clone(&scheduler),
        jobs: Arc::new(jobs),
        metrics,
        stuck_after: Arc::new(stuck_after),
        token: settings.daemon_token.map(Arc::new),
        sessions: Arc::new(crate::session::Sessions::new()),
    };
    // The web view, under the same access rules (merged before the layer is added).
    let app = app.merge(web::router(web::Web {
        store: Arc::clone(&store),
        scheduler: Arc::clone(&scheduler),
        connections: Arc::new(pages),
        token: state.token.clone(),
        sessions: Arc::clone(&state.sessions),
    }));
    if state.token.is_none() {
        info!(
            "No daemon token is configured (daemon.token_env or daemon.token_file): POST /connections/{{name}}/sync is refused."
        );
    }
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .with_state(state);
    let tcp = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {} (daemon.listen)", settings.listen))?;
    let listener = GuardedListener::new(tcp, settings.max_connections, settings.header_timeout);
    info!(listen = %settings.listen, connections = settings.connections.len(), "Daemon started.");
    let shutdown = cancel.clone();
    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    scheduler.shutdown().await;
    info!("Daemon stopped.");
    Ok(0)
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request carries the configured bearer token.
fn has_token(app: &App, req: &Request) -> bool {
    headers_have_token(app, req.headers())
}

/// Whether headers carry the configured bearer token.
fn headers_have_token(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = &app.token else {
        return false;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(given.trim().as_bytes(), token.expose_secret().as_bytes()))
}

/// Whether the Host header names loopback (a page loaded from another name, rebound to
/// 127.0.0.1, does not).
fn loopback_host(req: &Request) -> bool {
    loopback_host_header(req.headers())
}

/// Whether the Host header (if any) names loopback.
fn loopback_host_header(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The listener's access rules (see the module documentation).
async fn authorize(
    State(app): State<App>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    // Probes: open to anyone (`/readyz` names connections only to those who may read).
    if matches!(req.uri().path(), "/healthz" | "/readyz") && read {
        return next.run(req).await;
    }
    // The web view's approve form carries the token in its body; its handler checks it.
    if req.method() == Method::POST && web::is_approve_path(req.uri().path()) {
        return next.run(req).await;
    }
    // Signing in and out check the token themselves and open nothing else.
    if web::is_sign_in_path(req.uri().path()) {
        return next.run(req).await;
    }
    let allowed = has_token(&app, &req)
        || (read
            && ((peer.ip().is_loopback() && loopback_host(&req))
                || app.sessions.signed_in(app.token.as_deref(), req.headers())));
    if allowed {
        return next.run(req).await;
    }
    // A browser asking for a page is sent to the sign-in form, and back afterwards.
    if read && app.token.is_some() && req.uri().path().starts_with("/ui") {
        let back = req
            .uri()
            .path_and_query()
            .map_or("/ui", |p| p.as_str())
            .to_owned();
        let to = format!(
            "{}?next={}",
            web::SIGN_IN,
            url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
        );
        return axum::response::Redirect::to(&to).into_response();
    }
    let message = if !read && app.token.is_none() {
        return (
            StatusCode::FORBIDDEN,
            "writes need a token: configure daemon.token_env or daemon.token_file and send it as `Authorization: Bearer …`\n",
        )
            .into_response();
    } else if read {
        "beyond loopback, reads need the daemon token (`Authorization: Bearer …`)\n"
    } else {
        "this endpoint needs the daemon token (`Authorization: Bearer …`)\n"
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        message,
    )
        .into_response()
}

async fn metrics_page(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, scimsync_engine::metrics::CONTENT_TYPE)],
        app.metrics.render_prometheus(),
    )
}

/// Seconds since the Unix epoch, as the metrics count time.
fn seconds(at: scimsync_core::Timestamp) -> f64 {
    at.millis() as f64 / 1000.0
}

/// The connections' concerns now (see [`Metrics::health`]).
fn concerns(app: &App) -> Vec<(String, Vec<Concern>)> {
    app.metrics
        .health(seconds(scimsync_engine::now()), &|name| {
            app.stuck_after
                .get(name)
                .copied()
                .unwrap_or(DEFAULT_STUCK_AFTER_ON_DEMAND)
                .as_secs_f64()
        })
}

/// Liveness: `ok` while the process serves, 503 `stuck` when one of its runs has gone on
/// longer than its bound (a restart marks it abandoned and the next run picks up).
async fn healthz(State(app): State<App>) -> Response {
    let stuck = concerns(&app)
        .iter()
        .any(|(_, c)| c.iter().any(|c| matches!(c, Concern::Stuck { .. })));
    if stuck {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "stuck: a run has gone on longer than daemon.stuck_after_seconds (see /readyz)\n",
        )
            .into_response()
    } else {
        "ok\n".into_response()
    }
}

/// Readiness: 200 when no connection's last run failed, no guard holds deactivations back and
/// no run is stuck or failing to renew its lease; 503 otherwise. The JSON body names the
/// connections and why, for clients that may read (loopback or the token); others get the
/// status alone.
async fn readyz(
    State(app): State<App>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    let now = seconds(scimsync_engine::now());
    let found = concerns(&app);
    let status = if found.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let may_read = headers_have_token(&app, &headers)
        || (peer.ip().is_loopback() && loopback_host_header(&headers));
    if !may_read {
        let text = if found.is_empty() {
            "ready\n"
        } else {
            "not ready\n"
        };
        return (status, text).into_response();
    }
    let problems: Vec<serde_json::Value> = found
        .iter()
        .flat_map(|(name, concerns)| {
            concerns.iter().map(move |c| {
                serde_json::json!({
                    "connection": name,
                    "problem": c.kind(),
                    "detail": c.describe(now),
                })
            })
        })
        .collect();
    let body = serde_json::json!({
        "ready": found.is_empty(),
        "problems": problems,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

/// The bound of a connection without a schedule (nor `daemon.stuck_after_seconds`).
const DEFAULT_STUCK_AFTER_ON_DEMAND: Duration = Duration::from_secs(3_600);
/// The least default bound of a scheduled connection.
const DEFAULT_STUCK_AFTER_MIN: Duration = Duration::from_secs(1_800);

/// Three times the schedule's interval (between its next two times after `now`), at least 30
/// minutes; an hour without a schedule.
fn default_stuck_after(schedule: Option<&str>, now: scimsync_core::Timestamp) -> Duration {
    let interval = schedule.and_then(|s| {
        let first = web::next_run(s, now)?;
        let second = web::next_run(s, first)?;
        u64::try_from(second.millis() - first.millis()).ok()
    });
    match interval {
        Some(ms) => Duration::from_millis(ms.saturating_mul(3)).max(DEFAULT_STUCK_AFTER_MIN),
        None => DEFAULT_STUCK_AFTER_ON_DEMAND,
    }
}

/// Restores a connection's last finished run (not a dry run) from the store: its status,
/// duration and, when the guard stopped it, the deactivations it held back.
async fn restore_last_run(
    store: &SqlStore,
    metrics: &Metrics,
    connection: &str,
) -> Result<(), scimsync_store::StoreError> {
    let runs = store.list_runs(Some(connection), 20).await?;
    let Some(last) = runs.into_iter().find(|r| {
        !matches!(
            r.status,
            RunStatus::DryRun | RunStatus::Running | RunStatus::Abandoned
        )
    }) else {
        return Ok(());
    };
    let guard_held = if last.status == RunStatus::Guarded {
        store
            .count_activity(&ActivityQuery {
                run_id: Some(last.id),
                op: Some("deactivate_user".to_owned()),
                outcome: Some(Outcome::Skipped),
                ..ActivityQuery::default()
            })
            .await?
    } else {
        0
    };
    let end = last.finished_at.unwrap_or(last.started_at);
    metrics.restore_last_run(
        connection,
        &FinishedRun {
            status: last.status,
            at_seconds: seconds(end),
            duration_seconds: Some((seconds(end) - seconds(last.started_at)).max(0.0)),
            guard_held: Some(guard_held),
            held_refusals: None,
        },
    );
    Ok(())
}

async fn sync(
    State(app): State<App>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let yes = |key: &str| q.get(key).is_some_and(|v| v == "true" || v == "1");
    let request = RunRequest {
        approve: yes("approve"),
        full: yes("full"),
    };
    let (tx, rx) = oneshot::channel();
    let job = app.jobs.get(&name);
    if let Some(job) = job {
        *job.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
    }
    let triggered = app.scheduler.trigger(&name, request);
    if triggered.is_err()
        && let Some(job) = job
    {
        take(&job.waiting);
    }
    match triggered {
        Ok(()) => {
            // The run's id, once it is recorded (`null` if it waits for the lease longer).
            let run_id = tokio::time::timeout(RUN_ID_WAIT, rx)
                .await
                .ok()
                .and_then(Result::ok);
            let body = serde_json::json!({
                "connection": name,
                "run_id": run_id,
                "status": "started",
            });
            return (
                StatusCode::ACCEPTED,
                [(header::CONTENT_TYPE, "application/json")],
                format!("{body}\n"),
            )
                .into_response();
        }
        Err(SchedulerError::UnknownConnection(_)) => (
            StatusCode::NOT_FOUND,
            format!("no connection named {name}\n"),
        ),
        Err(SchedulerError::Busy(_)) => {
            (StatusCode::CONFLICT, format!("{name} is already running\n"))
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_stuck_after_three_schedule_intervals_at_least_half_an_hour() {
        let now = scimsync_core::Timestamp::from_millis(1_700_000_000_000);
        assert_eq!(
            default_stuck_after(Some("0 0 * * * *"), now),
            Duration::from_secs(3 * 3_600),
            "hourly"
        );
        assert_eq!(
            default_stuck_after(Some("0 */5 * * * *"), now),
            DEFAULT_STUCK_AFTER_MIN,
            "every five minutes: at least half an hour"
        );
        assert_eq!(
            default_stuck_after(None, now),
            DEFAULT_STUCK_AFTER_ON_DEMAND
        );
    }
}
