//! The `scimsync` binary: configuration, commands, daemon wiring, the HTTP status listener and
//! the demo. Library crates know nothing of it; it knows them all.
//!
//! Exit codes: 0 all applied (source records rejected for a reason an earlier run already
//! logged are warnings: counted, not logged again); 1 some operations failed, something was
//! rejected for the first time or for a new reason, or the run was interrupted; 2 configuration or connection error; 3 the guard stopped the run; 4 another
//! run of the connection holds its lease (`reconcile --wait` waits for it).
#![forbid(unsafe_code)]

pub mod config;
mod daemon;
pub mod demo;
mod listen;
pub mod output;
mod prune;
mod session;
mod web;
mod wiring;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use config::Settings;
use scimsync_core::Timestamp;
use scimsync_core::activity::{ActivityEntry, ActivityQuery, Outcome, Trigger};
use scimsync_core::ports::Store as _;
use scimsync_engine::lease::{self, DEFAULT_LEASE_TTL, HeldLease};
use scimsync_engine::{Progress, RetryRefused, RunOptions, RunReport, StopReason, chain};
use scimsync_store::SqlStore;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Exit code: configuration or connection error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: another run of the connection (a daemon or another `reconcile`) holds its lease.
pub const EXIT_LEASED: u8 = 4;

/// scimsync keeps a SaaS application's accounts in step with an identity directory (Duo →
/// Salesforce or any SCIM 2.0 service).
#[derive(Debug, Parser)]
#[command(name = "scimsync", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `scimsync_engine=debug`.
    #[arg(long, global = true, env = "SCIMSYNC_LOG")]
    pub log: Option<String>,
    /// Log lines (on stderr) as text, or as one JSON object a line (`timestamp`, `level`,
    /// `fields` with the `message`, `target`) for log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SCIMSYNC_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people (coloured on a terminal).
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One reconcile run (or a dry-run plan).
    Reconcile(ReconcileArgs),
    /// Run every connection on its schedule, with an HTTP status listener.
    Daemon(ConfigArg),
    /// Search the activity log.
    Activity(ActivityArgs),
    /// List runs with their counts and durations.
    Runs(RunsArgs),
    /// Validate the configuration and walk each connection step by step.
    Check(ConfigArg),
    /// List the profiles, permission sets and roles each target offers (the names governance
    /// rules may use).
    Catalogue(ListArgs),
    /// List the groups each source offers (the names scope and governance rules may use), with
    /// their member counts.
    Groups(ListArgs),
    /// Start the emulators with a sample directory, reconcile, change the directory, reconcile
    /// again and show the activity log.
    Demo(DemoArgs),
    /// Run the Duo and Salesforce emulators in the foreground.
    Sim(SimArgs),
    /// Delete the activity entries and runs older than the retention (`[store] retention`,
    /// 90 days by default); the daemon does it by itself every hour.
    Prune(PruneArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `scimsync man > scimsync.1`, or write it with a page
    /// per subcommand into a folder (`--dir`).
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The configuration file.
    #[arg(long, short, env = "SCIMSYNC_CONFIG")]
    pub config: PathBuf,
    /// Count what would be deleted, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write scimsync.1 and scimsync-SUBCOMMAND.1 into this folder instead.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(long, short, env = "SCIMSYNC_CONFIG")]
    pub config: PathBuf,
}

/// How `reconcile` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// For people.
    Text,
    /// One JSON array: an object per connection, with `connection` and `run_id`.
    Json,
    /// The same objects, one a line.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The configuration file.
    #[arg(long, short, env = "SCIMSYNC_CONFIG")]
    pub config: PathBuf,
    /// Only this connection (default: all).
    #[arg(long)]
    pub connection: Option<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Reconcile only this user (username, email or source id) and show each step.
    #[arg(long)]
    pub user: Option<String>,
    /// Apply deactivations even when the guard trips (after reviewing the plan).
    #[arg(long)]
    pub approve_deactivations: bool,
    /// Send again the writes the target refused before (all, or one user's: username, email
    /// or source id), instead of holding them until something relevant changes.
    #[arg(long, value_name = "USER", num_args = 0..=1, default_missing_value = "")]
    pub retry_refused: Option<String>,
    /// Read the target's capabilities again (service provider configuration, resource types,
    /// schemas) instead of the ones discovered within the last day.
    #[arg(long)]
    pub rediscover: bool,
    /// Read the whole target (a full reconcile): objects changed on the target behind
    /// scimsync's back are found, repaired and listed as `drift` in the activity log. Normal
    /// runs read only the objects whose desired state changed; a run is full anyway once the
    /// connection's `full_every` (default 24h) has passed since the last full read.
    #[arg(long)]
    pub full: bool,
    /// When another run of the connection holds its lease, wait this long for it (`90s`,
    /// `10m`, `1h`) instead of exiting with code 4.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct ActivityArgs {
    /// The configuration file.
    #[arg(long, short, env = "SCIMSYNC_CONFIG")]
    pub config: PathBuf,
    /// Only this connection (a configured one, or one the store has runs of).
    #[arg(long)]
    pub connection: Option<String>,
    /// Only the entries of this run.
    #[arg(long)]
    pub run: Option<i64>,
    /// A username, source id or target id.
    #[arg(long)]
    pub user: Option<String>,
    /// An operation kind: create_user, update_user, deactivate_user, add_members, …, or
    /// `refuse` (writes the target refused, held since), `reject`, `note`; an unknown kind is
    /// refused with the list of the known ones.
    #[arg(long)]
    pub op: Option<String>,
    /// ok, failed, rejected or skipped.
    #[arg(long, value_parser = parse_outcome)]
    pub outcome: Option<Outcome>,
    /// `24h`, `7d`, `30m`, `90s` ago, or an RFC 3339 time.
    #[arg(long, value_parser = parse_since_now)]
    pub since: Option<Timestamp>,
    /// At most N entries, the newest (default 100). With `--follow`: the N newest before
    /// following (without `--limit` or `--since`, following starts at the end of the log).
    #[arg(long)]
    pub limit: Option<u32>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: output::Format,
    /// Keep printing new entries as they are recorded, from the end of the log (or from
    /// `--since`); Ctrl-C stops it. Not with `--format json` (use `jsonl`).
    #[arg(long)]
    pub follow: bool,
}

/// Entries `activity` prints without `--limit`.
const DEFAULT_ACTIVITY_LIMIT: u32 = 100;

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// The configuration file.
    #[arg(long, short, env = "SCIMSYNC_CONFIG")]
    pub config: PathBuf,
    /// Only this connection (a configured one, or one the store has runs of).
    #[arg(long)]
    pub connection: Option<String>,
    /// Runs started `24h`, `7d`, `30m`, `90s` ago or later, or since an RFC 3339 time.
    #[arg(long, value_parser = parse_since_now)]
    pub since: Option<Timestamp>,
    /// At most N runs, the newest.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[arg(long, value_enum, default_value = "table")]
    pub format: output::Format,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, short, env = "SCIMSYNC_CONFIG")]
    pub config: PathBuf,
    /// Only this connection (default: all).
    #[arg(long)]
    pub connection: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: output::Format,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo writes its configuration, secrets and store.
    #[arg(long, default_value = ".scimsync-demo")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    #[arg(long, default_value_t = 0)]
    pub duo_port: u16,
    #[arg(long, default_value_t = 0)]
    pub salesforce_port: u16,
    /// A Duo dataset (JSON) to serve.
    #[arg(long, conflicts_with = "generate")]
    pub directory: Option<PathBuf>,
    /// Serve a generated directory of this many users.
    #[arg(long)]
    pub generate: Option<usize>,
}

fn parse_outcome(text: &str) -> Result<Outcome, String> {
    Outcome::parse(text).ok_or_else(|| format!("{text:?}: use ok, failed, rejected or skipped"))
}

/// `90s`, `10m`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: use a duration such as 90s, 10m or 1h"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

fn parse_since_now(text: &str) -> Result<Timestamp, String> {
    parse_since(text, scimsync_engine::now())
}

/// `24h`, `7d`, `30m`, `90s` before `now`, or an RFC 3339 instant.
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Some(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = digits.parse().map_err(|_| {
        format!("{text:?}: use a duration such as 24h, 7d, 30m, or an RFC 3339 time")
    })?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    Ok(now.plus_millis(-n.saturating_mul(ms)))
}

/// Runs a command; the exit code says how it went.
pub async fn run(cli: Cli) -> ExitCode {
    init_logging(
        cli.log.as_deref(),
        matches!(cli.command, Command::Daemon(_) | Command::Sim(_)),
        cli.log_format,
    );
    let result = match cli.command {
        Command::Reconcile(args) => reconcile(args).await,
        Command::Daemon(args) => daemon::run(&args.config).await,
        Command::Activity(args) => activity(args).await,
        Command::Runs(args) => runs(args).await,
        Command::Check(args) => check(&args.config).await,
        Command::Catalogue(args) => catalogue(args).await,
        Command::Groups(args) => groups(args).await,
        Command::Demo(args) => demo::run(&args.dir).await,
        Command::Sim(args) => demo::sim(args).await,
        Command::Prune(args) => prune::command(&args.config, args.dry_run).await,
        Command::Completions(args) => completions(args.shell),
        Command::Man(args) => man(args.dir.as_deref()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Prints the completion script of `shell`.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    use clap::CommandFactory as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "scimsync", &mut script);
    write_stdout(&script)
}

/// Prints the manual page scimsync(1), or writes it and a page per subcommand
/// (scimsync-reconcile(1), …) into `dir`.
fn man(dir: Option<&Path>) -> anyhow::Result<u8> {
    use clap::CommandFactory as _;
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating folder {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("writing the manual pages into {}", dir.display()))?;
            println!(
                "Wrote scimsync.1 and a page per subcommand into {}",
                dir.display()
            );
            Ok(0)
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            write_stdout(&page)
        }
    }
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<u8> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}

/// Crates whose own log lines are noise to an operator: kept at `warn` unless the filter names
/// them.
const QUIET_BY_DEFAULT: [&str; 9] = [
    "hyper",
    "h2",
    "reqwest",
    "sqlx",
    "tower",
    "rustls",
    "axum",
    "tokio_cron_scheduler",
    "tokio_util",
];

/// The log filter: the one given (`--log`, `SCIMSYNC_LOG`) or `info` for services and `warn`
/// otherwise (progress lines included), with `QUIET_BY_DEFAULT` kept at `warn`.
pub fn log_filter(given: Option<&str>, service: bool) -> String {
    let mut filter = match given {
        Some(f) => f.trim().to_owned(),
        None if service => "info".to_owned(),
        None => "warn,scimsync::progress=info".to_owned(),
    };
    for noisy in QUIET_BY_DEFAULT {
        if !filter.contains(noisy) {
            filter.push_str(&format!(",{noisy}=warn"));
        }
    }
    filter
}

fn init_logging(filter: Option<&str>, service: bool, format: LogFormat) {
    let default = log_filter(None, service);
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(filter, service))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => {
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            builder.json().with_ansi(false).try_init()
        }
    };
}

/// Whether log lines are JSON (`--log-format json`): warnings then go through the log.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Loads the configuration (every problem at once) and warns about inline secrets.
pub fn load_settings(path: &Path) -> anyhow::Result<Settings> {
    let settings = config::load(path, &|k| std::env::var(k).ok())?;
    if let Some(w) = config::inline_secret_warning(&settings) {
        if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
            // Every stderr line is a JSON object then.
            tracing::warn!("{}", w.trim_start_matches("warning: "));
        } else {
            eprintln!("{w}");
        }
    }
    Ok(settings)
}

async fn open_store(settings: &Settings) -> anyhow::Result<SqlStore> {
    open_store_at(&settings.store_url).await
}

async fn open_store_at(url: &str) -> anyhow::Result<SqlStore> {
    SqlStore::connect(url)
        .await
        .with_context(|| "opening the store (store.url or SCIMSYNC_STORE_URL)")
}

/// A progress bar on a terminal. Elsewhere (a pipe, a log collector) a line every
/// [`progress_interval`] with the counts done of each kind and an estimate of the time left;
/// each operation is then logged at debug level only (a failed one as a warning), under the
/// target `scimsync::progress`.
struct Bar {
    bar: Option<indicatif::ProgressBar>,
    tally: Arc<std::sync::Mutex<Tally>>,
}

/// The operations of a run done so far, by kind.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// When the plan was known.
    started: Option<std::time::Instant>,
    total: usize,
    planned: std::collections::BTreeMap<&'static str, usize>,
    done: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    /// The plan is known: `total` operations, counted by kind.
    pub(crate) fn planned(&mut self, total: usize) {
        self.total = total;
        self.started = Some(std::time::Instant::now());
    }

    /// The plan's operations by kind.
    pub(crate) fn planned_kinds(
        &mut self,
        kinds: &std::collections::BTreeMap<&'static str, usize>,
    ) {
        self.planned = kinds.clone();
    }

    /// One activity entry recorded; only the plan's operations count.
    pub(crate) fn applied(&mut self, op: &str) {
        if !matches!(op, "reject" | "note" | "refuse") {
            *self.done.entry(op.to_owned()).or_default() += 1;
        }
    }

    fn done(&self) -> usize {
        self.done.values().sum()
    }

    /// `done/total operations (kind done/planned, …); Ns elapsed, about Ms left`, while the
    /// run applies; `None` before the plan is known and once everything is done.
    fn line(&self, elapsed: Duration) -> Option<(usize, Option<u64>, String)> {
        self.started?;
        let done = self.done();
        if self.total == 0 || done >= self.total {
            return None;
        }
        let kinds = self
            .planned
            .iter()
            .map(|(k, n)| format!("{k} {}/{n}", self.done.get(*k).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ");
        let left = (done > 0).then(|| {
            (elapsed.as_secs_f64() * (self.total - done) as f64 / done as f64).ceil() as u64
        });
        let eta = match left {
            Some(s) => format!("about {s}s left"),
            None => "time left unknown".to_owned(),
        };
        Some((
            done,
            left,
            format!(
                "progress: {done}/{} operations ({kinds}); {}s elapsed, {eta}",
                self.total,
                elapsed.as_secs()
            ),
        ))
    }
}

impl Bar {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Progress for Bar {
    fn planned(&self, total: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
        }
        self.tally().planned(total);
    }
    fn planned_kinds(&self, kinds: &std::collections::BTreeMap<&'static str, usize>) {
        self.tally().planned_kinds(kinds);
    }
    fn applied(&self, entry: &ActivityEntry) {
        // Rejections, notes and refusals are not operations of the plan.
        let planned = !matches!(entry.op.as_str(), "reject" | "note" | "refuse");
        self.tally().applied(&entry.op);
        match &self.bar {
            Some(b) => {
                if planned {
                    b.inc(1);
                }
                b.set_message(format!("{} {}", entry.op, output::clean(&entry.name)));
            }
            None if entry.outcome == Outcome::Failed => tracing::warn!(
                target: "scimsync::progress",
                op = %entry.op,
                name = %output::clean(&entry.name),
                detail = %output::clean(&entry.detail),
                "Operation failed."
            ),
            None => tracing::debug!(
                target: "scimsync::progress",
                outcome = entry.outcome.as_str(),
                op = %entry.op,
                name = %output::clean(&entry.name),
                detail = %output::clean(&entry.detail),
                "Operation recorded."
            ),
        }
    }
}

/// How often a progress line is written when stderr is not a terminal:
/// `SCIMSYNC_PROGRESS_INTERVAL` seconds (default 10).
fn progress_interval() -> Duration {
    let secs = std::env::var("SCIMSYNC_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(10);
    Duration::from_secs(secs)
}

/// Writes a progress line of `tally` every [`progress_interval`] while operations are applied,
/// until `tally` is dropped: on stderr, or as a log event (`connection` named) in the daemon
/// or with JSON logs.
pub(crate) fn progress_lines(tally: &Arc<std::sync::Mutex<Tally>>, connection: Option<String>) {
    let weak = Arc::downgrade(tally);
    let every = progress_interval();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(tally) = weak.upgrade() else { return };
            let line = {
                let t = tally
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                t.started.and_then(|s| t.line(s.elapsed()))
            };
            let Some((done, left, line)) = line else {
                continue;
            };
            match &connection {
                Some(c) => {
                    tracing::info!(target: "scimsync::progress", connection = %c, done, eta_seconds = left, "{line}")
                }
                None if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) => {
                    tracing::info!(target: "scimsync::progress", done, eta_seconds = left, "{line}")
                }
                None => eprintln!("{line}"),
            }
        }
    });
}

fn progress(quiet: bool) -> Option<Arc<dyn Progress>> {
    if quiet {
        return None;
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
            b.set_style(style);
        }
        b
    });
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    if bar.is_none() {
        progress_lines(&tally, None);
    }
    Some(Arc::new(Bar { bar, tally }))
}

async fn reconcile(args: ReconcileArgs) -> anyhow::Result<u8> {
    let settings = load_settings(&args.config)?;
    let store = Arc::new(open_store(&settings).await?);
    let selected: Vec<_> = settings
        .connections
        .iter()
        .filter(|c| args.connection.as_deref().is_none_or(|n| n == c.name))
        .collect();
    if selected.is_empty() {
        anyhow::bail!(
            "no connection named {:?}; the configuration has: {}",
            args.connection.unwrap_or_default(),
            settings
                .connections
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let shutdown = shutdown_token();
    let holder = format!("{}:reconcile", holder_name());
    let mut worst = 0u8;
    // JSON: one object per connection, printed together at the end.
    let mut documents = Vec::new();
    for conn in selected {
        let connection = wiring::connection(conn)?;
        // A dry run changes nothing on the target: it takes no lease.
        let lease = if args.dry_run {
            None
        } else {
            match take_lease(&store, &conn.name, &holder, args.wait, &shutdown).await? {
                Some(lease) => Some(lease),
                None if shutdown.is_cancelled() => return Ok(worst.max(1)),
                None => {
                    worst = worst.max(EXIT_LEASED);
                    documents.push(serde_json::json!({
                        "connection": conn.name,
                        "error": "the connection is being run elsewhere (its lease is held): nothing was done",
                    }));
                    continue;
                }
            }
        };
        let (cancel, stop_reason) = match &lease {
            Some(l) => (l.cancel(), l.reason()),
            None => (shutdown.clone(), StopReason::default()),
        };
        let opts = RunOptions {
            trigger: Trigger::Manual,
            dry_run: args.dry_run,
            approve_destructive: args.approve_deactivations,
            approve_plan: None,
            only_user: args.user.clone(),
            max_concurrency: conn.max_concurrency,
            cancel,
            stop_reason,
            progress: progress(args.dry_run || args.format != ReportFormat::Text),
            retry_refused: args.retry_refused.as_deref().map(|u| match u.trim() {
                "" => RetryRefused::All,
                user => RetryRefused::User(user.to_owned()),
            }),
            rediscover: args.rediscover,
            full: args.full,
            // A plan shown as a table says which rule chose each user's entitlements.
            explain: args.dry_run && args.format == ReportFormat::Text,
        };
        let result = scimsync_engine::reconcile_once(&connection, &*store, &opts).await;
        if let Some(lease) = lease {
            if let Some(lost) = lease.lost() {
                eprintln!("error: {lost}; this run stopped applying");
            }
            lease.release().await;
        }
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                let message = chain(&e);
                eprintln!("error: {message}");
                worst = worst.max(EXIT_CONFIG);
                documents.push(serde_json::json!({
                    "connection": conn.name,
                    "error": message,
                }));
                continue;
            }
        };
        match args.format {
            ReportFormat::Text => print_report(&report, args.dry_run),
            ReportFormat::Json | ReportFormat::Jsonl => {
                documents.push(report_document(&report, args.dry_run)?);
            }
        }
        worst = worst.max(report.exit_code());
    }
    match args.format {
        ReportFormat::Text => {}
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&documents)?),
        ReportFormat::Jsonl => {
            for d in &documents {
                println!("{d}");
            }
        }
    }
    Ok(worst)
}

/// A connection's run as JSON: the plan (dry run) or the report, with `connection` and
/// `run_id` at the top.
pub(crate) fn report_document(
    report: &RunReport,
    dry_run: bool,
) -> anyhow::Result<serde_json::Value> {
    let mut doc = if dry_run {
        serde_json::to_value(&report.plan)?
    } else {
        serde_json::to_value(report)?
    };
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("connection".into(), report.connection.clone().into());
        obj.insert("run_id".into(), report.run_id.into());
    }
    Ok(doc)
}

/// This process in leases: the host and the process id.
fn holder_name() -> String {
    format!(
        "{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "scimsync".into()),
        std::process::id()
    )
}

/// Takes the lease of a connection for a one-shot run, waiting up to `wait` for its holder;
/// `None` (after saying who holds it) when it stays held or shutdown came first.
async fn take_lease(
    store: &Arc<SqlStore>,
    connection: &str,
    holder: &str,
    wait: Option<Duration>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<HeldLease<SqlStore>>> {
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    let mut told = false;
    loop {
        let taken = lease::take(store, connection, holder, DEFAULT_LEASE_TTL, shutdown)
            .await
            .with_context(|| format!("taking the lease of connection {connection}"))?;
        let busy = match taken {
            Ok(held) => return Ok(Some(held)),
            Err(busy) => busy,
        };
        let now = tokio::time::Instant::now();
        match deadline {
            Some(d) if now < d => {
                if !told {
                    eprintln!(
                        "Connection {connection} is being run elsewhere: its lease is {busy}; waiting up to {}s…",
                        wait.unwrap_or_default().as_secs()
                    );
                    told = true;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(Duration::from_secs(1).min(d - now)) => {}
                }
            }
            _ => {
                eprintln!(
                    "error: connection {connection} is being run elsewhere: its lease is {busy}. \
                     Nothing was done; try again later or wait for it with --wait 10m (exit code {EXIT_LEASED})."
                );
                return Ok(None);
            }
        }
    }
}

/// A token cancelled on SIGINT/SIGTERM.
pub fn shutdown_token() -> CancellationToken {
    signal_token(Some(
        "Stopping: the operations in flight finish and are recorded…",
    ))
}

/// A token cancelled on SIGINT/SIGTERM, printing `message` (if any) to stderr when it is.
fn signal_token(message: Option<&'static str>) -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        if let Some(m) = message {
            eprintln!("{m}");
        }
        t.cancel();
    });
    token
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn print_report(report: &RunReport, dry_run: bool) {
    println!("== {} (run {})", report.connection, report.run_id);
    if let Some(read) = &report.read {
        println!("  target read: {read}");
    }
    if report.drifted > 0 {
        println!(
            "  {} object(s) changed on the target since last read (drift; `scimsync activity --op drift` lists them)",
            report.drifted
        );
    }
    if let Some(trace) = &report.trace {
        for step in trace {
            println!("  {:<7} {}", step.step, output::clean(&step.detail));
        }
        println!();
    }
    if dry_run {
        // The plan's table escapes the values it shows.
        print!("{}", report.plan.to_table_with(&report.labels));
    }
    if let Some(trip) = &report.guard {
        println!("GUARD: {}", output::clean(&trip.reason));
        println!("  to approve: {}", output::clean(&trip.how_to_approve));
    }
    if !dry_run {
        println!(
            "{:?}: {} applied, {} failed, {} rejected ({} already logged), {} skipped (of {} planned)",
            report.status,
            report.applied,
            report.failed,
            report.rejected,
            report.known_rejected,
            report.skipped,
            report.plan.operations.len()
        );
        if report.refused > 0 || report.held > 0 {
            println!(
                "  {} write(s) refused by the target in this run and held; {} refused earlier and not sent again \
                 (`scimsync activity --op refuse` lists them; `--retry-refused` sends them again)",
                report.refused, report.held
            );
        }
        if let Some(m) = &report.message {
            println!("  {}", output::clean(m));
        }
    }
}

async fn activity(args: ActivityArgs) -> anyhow::Result<u8> {
    if args.follow && args.format == output::Format::Json {
        anyhow::bail!(
            "--follow prints entries as they are recorded, which one JSON array cannot: use --format jsonl (or table, csv)"
        );
    }
    let (store, config) = open_store_for_reading(&args.config).await?;
    check_connection(&store, &config, args.connection.as_deref()).await?;
    if let Some(op) = &args.op {
        check_op(&store, op).await?;
    }
    // Following starts at the end: the newest id of the whole log now (read before the first
    // batch, so nothing recorded in between is missed).
    let end = if args.follow {
        store
            .query_activity(&ActivityQuery {
                limit: Some(1),
                ..ActivityQuery::default()
            })
            .await?
            .last()
            .map_or(0, |e| e.id)
    } else {
        0
    };
    let mut query = ActivityQuery {
        connection: args.connection,
        run_id: args.run,
        user: args.user,
        op: args.op,
        outcome: args.outcome,
        since: args.since,
        after_id: None,
        before_id: None,
        limit: Some(args.limit.unwrap_or(DEFAULT_ACTIVITY_LIMIT)),
    };
    let from_the_end = args.follow && args.since.is_none() && args.limit.is_none();
    let entries = if from_the_end {
        Vec::new()
    } else {
        store.query_activity(&query).await?
    };
    let layout = if args.follow {
        output::Layout::Follow
    } else {
        output::Layout::Fit
    };
    print!(
        "{}",
        output::activity_laid_out(&entries, args.format, true, layout)
    );
    if !args.follow {
        let shown = entries.len() as u64;
        if query.limit.is_some_and(|l| u64::from(l) <= shown) {
            let all = store.count_activity(&query).await?;
            print_more(all.saturating_sub(shown), args.format);
        }
        return Ok(0);
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // Follow: poll for entries after `end`. Entries committed out of id order (PostgreSQL) are
    // caught by re-reading with an overlap and skipping ids already printed.
    let mut seen: std::collections::BTreeSet<i64> = entries.iter().map(|e| e.id).collect();
    // Ctrl-C ends it quietly: nothing is in flight.
    let cancel = signal_token(None);
    query.limit = None;
    query.since = None;
    loop {
        let last = seen.iter().next_back().copied().unwrap_or(end).max(end);
        query.after_id = Some((last - 100).max(end));
        let fresh: Vec<_> = store
            .query_activity(&query)
            .await?
            .into_iter()
            .filter(|e| e.id > end && !seen.contains(&e.id))
            .collect();
        if !fresh.is_empty() {
            print!(
                "{}",
                output::activity_laid_out(&fresh, args.format, false, layout)
            );
            let _ = std::io::stdout().flush();
            seen.extend(fresh.iter().map(|e| e.id));
            while seen.len() > 10_000 {
                seen.pop_first();
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(0),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn runs(args: RunsArgs) -> anyhow::Result<u8> {
    let (store, config) = open_store_for_reading(&args.config).await?;
    let connection = args.connection.as_deref();
    check_connection(&store, &config, connection).await?;
    let runs = store
        .runs_with_stats_since(connection, args.since, args.limit)
        .await?;
    print!("{}", output::runs(&runs, args.format));
    let shown = runs.len() as u64;
    if u64::from(args.limit) <= shown {
        let all = store.count_runs(connection, args.since).await?;
        print_more(all.saturating_sub(shown), args.format);
    }
    if args.format == output::Format::Table {
        // When each connection runs next (the daemon's schedule, in UTC).
        let at = scimsync_engine::now();
        for (name, schedule) in config::load_schedules(&args.config)? {
            if args.connection.as_deref().is_some_and(|c| c != name) {
                continue;
            }
            match schedule.as_deref().map(|s| (s, web::next_run(s, at))) {
                Some((s, Some(next))) => {
                    println!("next run of {name}: {next} (schedule \"{s}\", if a daemon runs it)")
                }
                Some((s, None)) => println!("{name}: schedule \"{s}\" is not valid"),
                None => println!("{name} runs on demand only (no schedule)"),
            }
        }
    }
    Ok(0)
}

/// Says how many more rows the limit left out: after a table, or on stderr beside a machine
/// format (its stdout stays parseable).
fn print_more(more: u64, format: output::Format) {
    if more == 0 {
        return;
    }
    let line = output::more_line(more);
    match format {
        output::Format::Table => println!("{line}"),
        _ => eprintln!("{line}"),
    }
}

/// The store and what the configuration says of it, for the read-only commands (no
/// connection's secrets are needed).
async fn open_store_for_reading(config: &Path) -> anyhow::Result<(SqlStore, config::StoreConfig)> {
    let settings = config::load_store_config(config, &|k| std::env::var(k).ok())?;
    let store = open_store_at(&settings.url).await?;
    Ok((store, settings))
}

/// `--connection NAME` names a configured connection, or one the store has runs of.
async fn check_connection(
    store: &SqlStore,
    config: &config::StoreConfig,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let Some(name) = name else { return Ok(()) };
    if config.connections.iter().any(|c| c == name) {
        return Ok(());
    }
    let recorded = store.run_connections().await?;
    if recorded.iter().any(|c| c == name) {
        return Ok(());
    }
    let mut known: Vec<&str> = config.connections.iter().map(String::as_str).collect();
    let mut earlier: Vec<&str> = recorded
        .iter()
        .map(String::as_str)
        .filter(|r| !known.contains(r))
        .collect();
    let mut message = format!(
        "--connection {}: no such connection; the configuration has: {}",
        output::clean(name),
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.sort_unstable();
            known.join(", ")
        }
    );
    if !earlier.is_empty() {
        earlier.sort_unstable();
        message.push_str(&format!(
            " (and the store has runs of: {})",
            earlier.join(", ")
        ));
    }
    anyhow::bail!(message)
}

/// `--op KIND` names an operation kind the engine writes, or one the log holds.
async fn check_op(store: &SqlStore, op: &str) -> anyhow::Result<()> {
    if scimsync_core::activity::OPS.contains(&op) || store.has_activity_op(op).await? {
        return Ok(());
    }
    anyhow::bail!(
        "--op {}: no such operation kind; use one of: {}",
        output::clean(op),
        scimsync_core::activity::OPS.join(", ")
    )
}

async fn check(path: &Path) -> anyhow::Result<u8> {
    let settings = match config::load(path, &|k| std::env::var(k).ok()) {
        Ok(s) => {
            println!(
                "✓ configuration {} is valid ({} connection(s))",
                path.display(),
                s.connections.len()
            );
            s
        }
        Err(e) => {
            println!("✗ {e}");
            return Ok(EXIT_CONFIG);
        }
    };
    if let Some(w) = config::inline_secret_warning(&settings) {
        println!("! {w}");
    }
    let mut ok = true;
    match open_store(&settings).await {
        Ok(_) => println!("✓ store {}", redact_url(&settings.store_url)),
        Err(e) => {
            ok = false;
            println!("✗ store: {e:#}");
        }
    }
    match settings.retention {
        Some(r) => println!(
            "✓ retention: activity entries and runs older than {} days are pruned (store.retention)",
            r.as_secs() / 86_400
        ),
        None => println!("✓ retention: off, the activity log and runs are kept for ever"),
    }
    for conn in &settings.connections {
        println!("== {}", conn.name);
        if let Some(schedule) = &conn.schedule {
            println!(
                "✓ schedule: {schedule:?}, read in {} ({} fields)",
                scimsync_engine::scheduler::SCHEDULE_TIMEZONE,
                schedule.split_whitespace().count()
            );
        }
        for step in wiring::check(conn).await {
            let mark = match (step.ok, step.warning) {
                (false, _) => "✗",
                (true, true) => "!",
                (true, false) => "✓",
            };
            println!("{mark} {}: {}", step.name, step.detail);
            ok &= step.ok;
        }
    }
    Ok(if ok { 0 } else { EXIT_CONFIG })
}

/// The connections a listing asks for (all, or the one named).
fn selected_connections<'a>(
    settings: &'a Settings,
    name: Option<&str>,
) -> anyhow::Result<Vec<&'a config::ConnectionSettings>> {
    let selected: Vec<_> = settings
        .connections
        .iter()
        .filter(|c| name.is_none_or(|n| n == c.name))
        .collect();
    if selected.is_empty() {
        anyhow::bail!(
            "no connection named {:?}; the configuration has: {}",
            name.unwrap_or_default(),
            settings
                .connections
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(selected)
}

/// `scimsync catalogue`: what each target offers governance rules, read as a run reads it
/// (after discovery).
async fn catalogue(args: ListArgs) -> anyhow::Result<u8> {
    let settings = load_settings(&args.config)?;
    let mut rows = Vec::new();
    let mut code = 0;
    for conn in selected_connections(&settings, args.connection.as_deref())? {
        let read = async {
            let target = wiring::target(&conn.target, conn.policy.member_batch_size)?;
            let caps = target
                .discover()
                .await
                .map_err(|e| anyhow::anyhow!(chain(&e)))?;
            target.use_capabilities(&caps);
            target
                .catalogue()
                .await
                .map_err(|e| anyhow::anyhow!(chain(&e)))
        };
        let catalogue = match read.await {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "error: reading the catalogue of connection {}: {e:#}",
                    conn.name
                );
                code = EXIT_CONFIG;
                continue;
            }
        };
        let name = serde_json::Value::from(conn.name.as_str());
        for p in &catalogue.profiles {
            rows.push(vec![
                name.clone(),
                "profile".into(),
                p.name.as_str().into(),
                p.id.as_str().into(),
                p.licence.as_deref().into(),
                p.allows_groups.into(),
            ]);
        }
        for (kind, entries) in [
            ("permission_set", &catalogue.permission_sets),
            ("role", &catalogue.roles),
        ] {
            for e in entries {
                rows.push(vec![
                    name.clone(),
                    kind.into(),
                    e.name.as_str().into(),
                    e.id.as_str().into(),
                    serde_json::Value::Null,
                    serde_json::Value::Null,
                ]);
            }
        }
    }
    let header = [
        "CONNECTION",
        "KIND",
        "NAME",
        "ID",
        "LICENCE",
        "GROUPS_ALLOWED",
    ];
    print!("{}", output::listing(&header, &rows, args.format));
    Ok(code)
}

/// `scimsync groups`: the groups each source offers, read whole as a run reads it.
async fn groups(args: ListArgs) -> anyhow::Result<u8> {
    use scimsync_core::ports::Source as _;
    let settings = load_settings(&args.config)?;
    let mut rows = Vec::new();
    let mut code = 0;
    for conn in selected_connections(&settings, args.connection.as_deref())? {
        let read = async {
            let source = wiring::source(&conn.source)?;
            source.read().await.map_err(|e| anyhow::anyhow!(chain(&e)))
        };
        let snapshot = match read.await {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "error: reading the source of connection {}: {e:#}",
                    conn.name
                );
                code = EXIT_CONFIG;
                continue;
            }
        };
        let mut members: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for u in &snapshot.users {
            for g in &u.groups {
                *members.entry(g.as_str()).or_default() += 1;
            }
        }
        for g in &snapshot.groups {
            rows.push(vec![
                conn.name.as_str().into(),
                g.name.as_str().into(),
                g.id.as_str().into(),
                members.get(g.id.as_str()).copied().unwrap_or(0).into(),
                g.description.as_deref().into(),
            ]);
        }
    }
    let header = ["CONNECTION", "NAME", "ID", "MEMBERS", "DESCRIPTION"];
    print!("{}", output::listing(&header, &rows, args.format));
    Ok(code)
}

/// A URL with its password replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_durations_and_times() {
        let now = Timestamp::from_millis(10 * 86_400_000);
        assert_eq!(
            parse_since("24h", now).unwrap(),
            Timestamp::from_millis(9 * 86_400_000)
        );
        assert_eq!(
            parse_since("2d", now).unwrap(),
            Timestamp::from_millis(8 * 86_400_000)
        );
        assert_eq!(
            parse_since("30m", now).unwrap().millis(),
            10 * 86_400_000 - 1_800_000
        );
        assert_eq!(
            parse_since("1970-01-02T00:00:00Z", now).unwrap(),
            Timestamp::from_millis(86_400_000)
        );
        assert!(parse_since("3 weeks", now).unwrap_err().contains("unit"));
        assert!(parse_since("yesterday", now).is_err());
    }

    #[test]
    fn the_log_filter_quiets_other_crates_unless_named() {
        assert_eq!(
            log_filter(None, false),
            "warn,scimsync::progress=info,hyper=warn,h2=warn,reqwest=warn,sqlx=warn,tower=warn,\
             rustls=warn,axum=warn,tokio_cron_scheduler=warn,tokio_util=warn"
        );
        let f = log_filter(Some("debug,sqlx=debug"), true);
        assert!(f.starts_with("debug,sqlx=debug,hyper=warn,"), "{f}");
        assert!(!f.contains("sqlx=warn"), "{f}");
    }

    #[test]
    fn progress_lines_count_each_kind_and_estimate_the_time_left() {
        let mut t = Tally::default();
        assert_eq!(t.line(Duration::from_secs(5)), None, "no plan yet");
        t.started = Some(std::time::Instant::now());
        t.total = 40;
        t.planned = [("create_user", 30), ("add_members", 10)].into();
        t.done.insert("create_user".into(), 10);
        let (done, left, line) = t.line(Duration::from_secs(20)).unwrap();
        assert_eq!((done, left), (10, Some(60)));
        assert_eq!(
            line,
            "progress: 10/40 operations (add_members 0/10, create_user 10/30); 20s elapsed, about 60s left"
        );
        t.done.insert("add_members".into(), 10);
        t.done.insert("create_user".into(), 30);
        assert_eq!(t.line(Duration::from_secs(30)), None, "all done");
    }

    #[test]
    fn store_urls_are_printed_without_passwords() {
        assert_eq!(
            redact_url("postgres://u:hunter2@db/x"),
            "postgres://u:REDACTED@db/x"
        );
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
