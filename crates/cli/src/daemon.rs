//! `scimsync daemon`: every connection on its schedule, and an HTTP listener for status and
//! the web view (see [`crate::web`]).
//!
//! Who may do what on the listener:
//! - `GET /healthz`: anyone (it says `ok` and nothing else);
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
use crate::{load_settings, web, wiring};
use anyhow::Context as _;
use axum::Router;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use scimsync_core::activity::{ActivityEntry, RunId, Trigger};
use scimsync_core::ports::Store as _;
use scimsync_engine::{
    EngineError, Job, Metrics, Progress, RunOptions, RunReport, Scheduler, SchedulerError,
    StopReason, reconcile_once,
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

/// Counts a run's operations in the metrics, and tells whoever triggered it its run id.
struct CountingProgress {
    metrics: Arc<Metrics>,
    /// The `POST …/sync` waiting for the run id, if this run is the one it triggered.
    started: std::sync::Mutex<Option<oneshot::Sender<RunId>>>,
}

impl Progress for CountingProgress {
    fn started(&self, run_id: RunId) {
        if let Some(tx) = take(&self.started) {
            let _ = tx.send(run_id);
        }
    }
    fn planned(&self, _total: usize) {}
    fn applied(&self, entry: &ActivityEntry) {
        self.metrics.operation(entry);
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
            let opts = RunOptions {
                max_concurrency: self.max_concurrency,
                progress: Some(Arc::new(CountingProgress {
                    metrics: Arc::clone(&self.metrics),
                    started: std::sync::Mutex::new(take(&self.waiting)),
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
        approve: bool,
        cancel: CancellationToken,
        stop_reason: StopReason,
    ) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        self.run_with(RunOptions {
            trigger,
            approve_destructive: approve,
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
        // The last success survives restarts: an alert on its age does not fire after a deploy.
        match store.last_success(&c.name).await {
            Ok(Some(at)) => metrics.restore_last_success(&c.name, at.millis() as f64 / 1000.0),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(connection = %c.name, error = %e, "Cannot read the last successful run.")
            }
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
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_page))
        .route("/connections/{name}/sync", post(sync));
    let state = App {
        scheduler: Arc::clone(&scheduler),
        jobs: Arc::new(jobs),
        metrics,
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
    let Some(token) = &app.token else {
        return false;
    };
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(given.trim().as_bytes(), token.expose_secret().as_bytes()))
}

/// Whether the Host header names loopback (a page loaded from another name, rebound to
/// 127.0.0.1, does not).
fn loopback_host(req: &Request) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
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
    if req.uri().path() == "/healthz" && read {
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
        [("content-type", "text/plain; version=0.0.4")],
        app.metrics.render_prometheus(),
    )
}

async fn sync(
    State(app): State<App>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let approve = q.get("approve").is_some_and(|v| v == "true" || v == "1");
    let (tx, rx) = oneshot::channel();
    let job = app.jobs.get(&name);
    if let Some(job) = job {
        *job.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
    }
    let triggered = app.scheduler.trigger(&name, approve);
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
