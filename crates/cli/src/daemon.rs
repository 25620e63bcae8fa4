//! `scimsync daemon`: every connection on its schedule, and an HTTP listener for status and
//! the web view (see [`crate::web`]).

use crate::config::Settings;
use crate::{load_settings, web, wiring};
use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use futures::future::BoxFuture;
use scimsync_core::activity::{ActivityEntry, Trigger};
use scimsync_engine::{
    EngineError, Job, Metrics, Progress, RunOptions, RunReport, Scheduler, SchedulerError,
    reconcile_once,
};
use scimsync_store::SqlStore;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::info;

struct CountingProgress(Arc<Metrics>);

impl Progress for CountingProgress {
    fn planned(&self, _total: usize) {}
    fn applied(&self, entry: &ActivityEntry) {
        self.0.operation(entry);
    }
}

struct ConnectionJob {
    name: String,
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
                progress: Some(Arc::new(CountingProgress(Arc::clone(&self.metrics)))),
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
    ) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        self.run_with(RunOptions {
            trigger,
            approve_destructive: approve,
            cancel,
            ..RunOptions::default()
        })
    }

    fn run_approving_plan(
        &self,
        trigger: Trigger,
        plan: String,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<RunReport, EngineError>> {
        // Explained, so that a refused approval shows the new plan with its reasons.
        self.run_with(RunOptions {
            trigger,
            approve_plan: Some(plan),
            explain: true,
            cancel,
            ..RunOptions::default()
        })
    }
}

#[derive(Clone)]
struct App {
    scheduler: Arc<Scheduler<SqlStore>>,
    metrics: Arc<Metrics>,
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(config: &Path) -> anyhow::Result<u8> {
    let settings: Settings = load_settings(config)?;
    let store = Arc::new(
        SqlStore::connect(&settings.store_url)
            .await
            .context("opening the store")?,
    );
    let metrics = Arc::new(Metrics::default());
    let cancel = crate::shutdown_token();
    let holder = format!(
        "{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "scimsync".into()),
        std::process::id()
    );
    let mut scheduler = Scheduler::new(
        Arc::clone(&store),
        holder,
        Arc::clone(&metrics),
        cancel.clone(),
    );
    let mut schedules = Vec::new();
    let mut pages = BTreeMap::new();
    for c in &settings.connections {
        let conn = wiring::connection(c)?;
        let job = Arc::new(ConnectionJob {
            name: c.name.clone(),
            conn,
            store: Arc::clone(&store),
            max_concurrency: c.max_concurrency,
            metrics: Arc::clone(&metrics),
        });
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
    let web = web::router(web::Web {
        store: Arc::clone(&store),
        scheduler: Arc::clone(&scheduler),
        connections: Arc::new(pages),
        token: settings.token.map(Arc::new),
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_page))
        .route("/connections/{name}/sync", post(sync))
        .with_state(App {
            scheduler: Arc::clone(&scheduler),
            metrics,
        })
        .merge(web);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {} (daemon.listen)", settings.listen))?;
    info!(listen = %settings.listen, connections = settings.connections.len(), "Daemon started.");
    let shutdown = cancel.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    scheduler.shutdown().await;
    info!("Daemon stopped.");
    Ok(0)
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
    match app.scheduler.trigger(&name, approve) {
        Ok(()) => (StatusCode::ACCEPTED, format!("run of {name} started\n")),
        Err(SchedulerError::UnknownConnection(_)) => (
            StatusCode::NOT_FOUND,
            format!("no connection named {name}\n"),
        ),
        Err(SchedulerError::Busy(_)) => {
            (StatusCode::CONFLICT, format!("{name} is already running\n"))
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}
