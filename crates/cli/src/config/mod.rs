//! The configuration file: TOML, with environment overrides; secrets from the environment or
//! files. `config/example.toml` documents every key.
//!
//! Loading goes in two steps: the file is parsed into the raw structs of `raw` (serde finds
//! the keys no struct reads), then validated (`validate`) into [`Settings`], which cannot be
//! invalid. Validation reports every problem at once, each with its path
//! (`connections[0].governance.group_rules[2].profile: …`). Each section has its module:
//! `daemon`, `store`, `source`, `target`, `policy` (scope, governance, safety) and `mapping`.

mod daemon;
mod mapping;
mod policy;
mod raw;
mod source;
mod store;
mod target;
#[cfg(test)]
mod tests;
mod validate;

pub use daemon::{DEFAULT_HEADER_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS};
pub use source::{DuoSettings, SourceSettings};
pub use store::{DEFAULT_RETENTION, DEFAULT_STORE_URL, MIN_RETENTION};
pub use target::{TargetAuth, TargetSettings};

use raw::RawFile;
use scimsync_core::policy::{Policy, Problem};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use validate::Validator;

/// The most operations in flight at once a connection or target may ask for.
pub const MAX_CONCURRENCY_LIMIT: u64 = 256;

/// A configuration that could not be loaded: every problem, with its path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("configuration file {path} has {} problem(s):\n{}", problems.len(), Problem::list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// The whole, validated configuration.
#[derive(Debug)]
pub struct Settings {
    pub path: PathBuf,
    pub store_url: String,
    /// How long activity entries and runs are kept (`store.retention`); `None`: for ever.
    pub retention: Option<Duration>,
    pub listen: SocketAddr,
    /// The bearer token the daemon's write endpoints (and, beyond loopback, its read
    /// endpoints) require (`daemon.token_env`, `daemon.token_file` or `daemon.token`).
    pub daemon_token: Option<SecretString>,
    /// Most connections the daemon keeps open at once; beyond it the oldest is closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (from connecting or from the last
    /// response) before the daemon closes the connection.
    pub header_timeout: Duration,
    /// How long a run may go before `/readyz` and `/healthz` call its connection stuck
    /// (`daemon.stuck_after_seconds`); `None`: three times the schedule's interval, at least
    /// 30 minutes (an hour for a connection without schedule).
    pub stuck_after: Option<Duration>,
    pub connections: Vec<ConnectionSettings>,
    /// Files or keys holding secrets inline (warned about when the file is readable by others).
    pub inline_secrets: Vec<String>,
    /// The `*_file` secrets: (key, file), warned about when the file is readable by others.
    pub secret_files: Vec<(String, PathBuf)>,
}

/// One connection.
#[derive(Debug)]
pub struct ConnectionSettings {
    pub name: String,
    /// Cron schedule for the daemon, in UTC (five fields as in crontab, or six with seconds
    /// first); `None`: on demand only.
    pub schedule: Option<String>,
    /// Most operations in flight at once during a run.
    pub max_concurrency: usize,
    pub source: SourceSettings,
    pub target: TargetSettings,
    pub policy: Policy,
}

/// Reads and validates a configuration file, with environment overrides from `env`.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, env)
}

/// The store URL of a configuration file alone (with its environment override), for the
/// read-only commands (`runs`, `activity`): no connection is validated, so they need none of
/// the connections' secrets.
pub fn load_store_url(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let (raw, _unknown) = read(&text, path)?;
    Ok(store::store_url(env, raw.store.url, &base_dir(path)))
}

/// The connections' names and schedules as written (`None`: on demand only), for `runs`:
/// nothing else is validated, so it needs none of the connections' secrets.
pub fn load_schedules(path: &Path) -> Result<Vec<(String, Option<String>)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let (raw, _unknown) = read(&text, path)?;
    Ok(raw
        .connections
        .into_iter()
        .filter_map(|c| Some((c.name?, c.schedule)))
        .collect())
}

/// What the store-only commands (`runs`, `activity`, `prune`) read of a configuration file:
/// no connection is validated, so they need none of the connections' secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub url: String,
    /// `store.retention` (`None`: `"off"`, kept for ever).
    pub retention: Option<Duration>,
    /// The names of the connections the file configures.
    pub connections: Vec<String>,
}

/// [`StoreConfig`] of a configuration file, with its environment override.
pub fn load_store_config(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let (raw, _unknown) = read(&text, path)?;
    let retention = store::retention(raw.store.retention.as_deref()).map_err(|message| {
        ConfigError::Invalid {
            path: path.to_owned(),
            problems: vec![Problem::new("store.retention", message)],
        }
    })?;
    Ok(StoreConfig {
        url: store::store_url(env, raw.store.url, &base_dir(path)),
        retention,
        connections: raw.connections.into_iter().filter_map(|c| c.name).collect(),
    })
}

/// Validates configuration text (`path` is for messages and relative file paths).
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    parse_with(text, path, env, &|p| std::fs::read_to_string(p))
}

/// [`parse`], reading `*_file` secrets with `read` (the fuzz harness reads no files).
#[doc(hidden)]
pub fn parse_with(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Settings, ConfigError> {
    let (raw, unknown) = read(text, path)?;
    let mut v = Validator::new(env, read_file, base_dir(path), unknown);
    let mut settings = v.file(raw, path);
    if v.problems.is_empty() {
        settings.inline_secrets = v.inline_secrets;
        settings.secret_files = v.secret_files;
        Ok(settings)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems: v.problems,
        })
    }
}

fn read(text: &str, path: &Path) -> Result<(RawFile, Vec<String>), ConfigError> {
    raw::read(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn base_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_owned).unwrap_or_default()
}

/// Warns when a configuration file holding inline secrets, or a `*_file` secret, can be read
/// by other users (one line each).
pub fn inline_secret_warning(settings: &Settings) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode_of = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .map(|m| m.permissions().mode())
                .filter(|mode| mode & 0o044 != 0)
        };
        let mut lines = Vec::new();
        if !settings.inline_secrets.is_empty()
            && let Some(mode) = mode_of(&settings.path)
        {
            lines.push(format!(
                "warning: {} holds secrets inline ({}) and is readable by other users (mode {:o}); \
                 use *_env or *_file keys, or chmod 600 it",
                settings.path.display(),
                settings.inline_secrets.join(", "),
                mode & 0o777
            ));
        }
        for (key, file) in &settings.secret_files {
            if let Some(mode) = mode_of(file) {
                lines.push(format!(
                    "warning: {} (the secret of {key}) is readable by other users (mode {:o}); chmod 600 it",
                    file.display(),
                    mode & 0o777
                ));
            }
        }
        if !lines.is_empty() {
            return Some(lines.join("\n"));
        }
    }
    None
}
