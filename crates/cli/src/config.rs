//! The configuration file: TOML, with environment overrides; secrets from the environment or
//! files. `config/example.toml` documents every key.
//!
//! Loading goes in two steps: the file is parsed into raw structs that keep unknown keys, then
//! validated into [`Settings`], which cannot be invalid. Validation reports every problem at
//! once, each with its path (`connections[0].governance.group_rules[2].profile: …`).

use scimsync_core::budget::ApiBudget;
use scimsync_core::mapping::parse_target_attribute;
use scimsync_core::policy::{
    Governance, GroupRuleSpec, Mapping, NameSplit, Policy, Problem, RuleSpec, Safety, Scope,
    SourceAttribute, TargetKind,
};
use scimsync_scim::FederationIdPlacement;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Default store: a SQLite file beside the working directory.
pub const DEFAULT_STORE_URL: &str = "sqlite://scimsync.db";
/// Default listener of the daemon: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default cap on the daemon's open connections (`daemon.max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default time a client has to send a request's headers (`daemon.header_timeout_seconds`).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
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
    #[error("configuration file {path} has {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Raw file structure.

type Extra = BTreeMap<String, toml::Value>;

#[derive(Debug, Default, Deserialize)]
struct RawFile {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    connections: Vec<RawConnection>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
struct RawStore {
    url: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
struct RawDaemon {
    listen: Option<String>,
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    max_connections: Option<u64>,
    header_timeout_seconds: Option<u64>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
struct RawConnection {
    name: Option<String>,
    schedule: Option<String>,
    max_concurrency: Option<u64>,
    source: Option<RawSource>,
    target: Option<RawTarget>,
    #[serde(default)]
    scope: RawScope,
    #[serde(default)]
    mapping: BTreeMap<String, String>,
    #[serde(default)]
    governance: RawGovernance,
    #[serde(default)]
    safety: RawSafety,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
struct RawSource {
    kind: Option<String>,
    api_host: Option<String>,
    base_url: Option<String>,
    integration_key: Option<String>,
    secret_key: Option<String>,
    secret_key_env: Option<String>,
    secret_key_file: Option<PathBuf>,
    sig_version: Option<u8>,
    sso_integration_key: Option<String>,
    page_size: Option<u32>,
    path: Option<PathBuf>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
struct RawTarget {
    kind: Option<String>,
    base_url: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    bearer_token_env: Option<String>,
    bearer_token_file: Option<PathBuf>,
    client_auth: Option<String>,
    requests_per_second: Option<u64>,
    max_concurrency: Option<u64>,
    timeout_seconds: Option<u64>,
    member_batch_size: Option<u64>,
    federation_id: Option<String>,
    api_budget: Option<RawBudget>,
    #[serde(flatten)]
    extra: Extra,
}

/// `api_budget = "25%"`, `"5000"` or `5000`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawBudget {
    Calls(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
struct RawScope {
    groups: Option<Vec<String>>,
    sso_access: Option<bool>,
    all: Option<bool>,
    #[serde(default)]
    exclude_groups: bool,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
struct RawRule {
    profile: Option<String>,
    #[serde(default)]
    permission_sets: Vec<String>,
    role: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
struct RawGroupRule {
    #[serde(default)]
    groups: Vec<String>,
    priority: Option<u32>,
    #[serde(flatten)]
    rule: RawRule,
}

#[derive(Debug, Default, Deserialize)]
struct RawGovernance {
    baseline: Option<RawRule>,
    #[serde(default)]
    group_rules: Vec<RawGroupRule>,
    #[serde(default)]
    authoritative_permission_sets: bool,
    #[serde(default)]
    profiles_without_groups: Vec<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
struct RawSafety {
    max_deactivations: Option<u32>,
    max_deactivation_percent: Option<f64>,
    #[serde(flatten)]
    extra: Extra,
}

// ---------------------------------------------------------------------------------------------
// Validated settings.

/// The whole, validated configuration.
#[derive(Debug)]
pub struct Settings {
    pub path: PathBuf,
    pub store_url: String,
    pub listen: SocketAddr,
    /// The bearer token the daemon's write endpoints (and, beyond loopback, its read
    /// endpoints) require (`daemon.token_env`, `daemon.token_file` or `daemon.token`).
    pub daemon_token: Option<SecretString>,
    /// Most connections the daemon keeps open at once; beyond it the oldest is closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (from connecting or from the last
    /// response) before the daemon closes the connection.
    pub header_timeout: Duration,
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
    /// Cron schedule for the daemon (six fields, seconds first); `None`: on demand only.
    pub schedule: Option<String>,
    /// Most operations in flight at once during a run.
    pub max_concurrency: usize,
    pub source: SourceSettings,
    pub target: TargetSettings,
    pub policy: Policy,
}

/// Where the directory comes from.
#[derive(Debug)]
pub enum SourceSettings {
    Duo(DuoSettings),
    File { path: PathBuf },
}

/// Duo Admin API access.
#[derive(Debug)]
pub struct DuoSettings {
    /// `https://{api_host}` or a full base URL (plain HTTP only on loopback).
    pub base_url: Url,
    pub integration_key: String,
    pub secret_key: SecretString,
    /// 2 or 5.
    pub sig_version: u8,
    pub sso_integration_key: Option<String>,
    pub page_size: u32,
}

/// How the target authenticates us.
#[derive(Debug)]
pub enum TargetAuth {
    ClientCredentials {
        token_url: Url,
        client_id: String,
        client_secret: SecretString,
        /// Send the secret by HTTP Basic rather than in the form body.
        basic: bool,
    },
    Bearer(SecretString),
}

/// The SCIM target.
#[derive(Debug)]
pub struct TargetSettings {
    pub kind: TargetKind,
    pub base_url: Url,
    pub auth: TargetAuth,
    pub requests_per_second: u32,
    pub max_concurrency: usize,
    pub timeout: Duration,
    /// Where the SSO identifier (Salesforce's Federation ID) goes (`federation_id`; default
    /// `auto`: wherever discovery finds the Salesforce extension's `federationIdentifier`).
    pub federation_id: FederationIdPlacement,
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
    let raw: RawFile = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    Ok(store_url(env, raw.store.url, &base_dir))
}

/// The store URL: `SCIMSYNC_STORE_URL` as given, else the file's (or the default), whose
/// relative SQLite path is resolved against the configuration file's folder.
fn store_url(
    env: &dyn Fn(&str) -> Option<String>,
    from_file: Option<String>,
    base_dir: &Path,
) -> String {
    env("SCIMSYNC_STORE_URL").unwrap_or_else(|| {
        let url = from_file.unwrap_or_else(|| DEFAULT_STORE_URL.to_owned());
        scimsync_store::resolve_sqlite_path(&url, base_dir)
    })
}

/// Validates configuration text (`path` is for messages and relative file paths).
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let mut v = Validator {
        problems: Vec::new(),
        env,
        base_dir,
        inline_secrets: Vec::new(),
        secret_files: Vec::new(),
    };
    let settings = v.file(raw, path);
    if v.problems.is_empty() {
        let mut settings = settings;
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

struct Validator<'e> {
    problems: Vec<Problem>,
    env: &'e dyn Fn(&str) -> Option<String>,
    base_dir: PathBuf,
    inline_secrets: Vec<String>,
    secret_files: Vec<(String, PathBuf)>,
}

impl Validator<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn unknown(&mut self, path: &str, extra: &Extra, known: &[&str]) {
        for key in extra.keys() {
            let at = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            self.problem(
                at,
                format!("unknown key; the keys here are: {}", known.join(", ")),
            );
        }
    }

    fn file(&mut self, raw: RawFile, path: &Path) -> Settings {
        self.unknown("", &raw.extra, &["store", "daemon", "connections"]);
        self.unknown("store", &raw.store.extra, &["url"]);
        self.unknown(
            "daemon",
            &raw.daemon.extra,
            &[
                "listen",
                "token",
                "token_env",
                "token_file",
                "max_connections",
                "header_timeout_seconds",
            ],
        );
        let daemon_token = if raw.daemon.token.is_some()
            || raw.daemon.token_env.is_some()
            || raw.daemon.token_file.is_some()
        {
            self.secret(
                "daemon",
                "token",
                raw.daemon.token,
                raw.daemon.token_env,
                raw.daemon.token_file,
            )
        } else {
            None
        };
        let max_connections = self.range(
            "daemon.max_connections",
            raw.daemon.max_connections,
            DEFAULT_MAX_CONNECTIONS as u64,
            1..=65_536,
        ) as usize;
        let header_timeout = Duration::from_secs(self.range(
            "daemon.header_timeout_seconds",
            raw.daemon.header_timeout_seconds,
            DEFAULT_HEADER_TIMEOUT.as_secs(),
            1..=3_600,
        ));
        let store_url = store_url(self.env, raw.store.url, &self.base_dir);
        let listen_text = (self.env)("SCIMSYNC_LISTEN")
            .or(raw.daemon.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = match listen_text.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                self.problem(
                    "daemon.listen",
                    format!("{listen_text:?} is not an address:port such as {DEFAULT_LISTEN}"),
                );
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }
        };
        if raw.connections.is_empty() {
            self.problem(
                "connections",
                "no connection is configured; add a [[connections]] table",
            );
        }
        let mut connections = Vec::new();
        let mut names = BTreeMap::new();
        for (i, c) in raw.connections.into_iter().enumerate() {
            let at = format!("connections[{i}]");
            if let Some(conn) = self.connection(c, &at) {
                if let Some(first) = names.insert(conn.name.clone(), i) {
                    self.problem(
                        format!("{at}.name"),
                        format!(
                            "{:?} is already the name of connections[{first}]",
                            conn.name
                        ),
                    );
                }
                connections.push(conn);
            }
        }
        Settings {
            path: path.to_owned(),
            store_url,
            listen,
            daemon_token,
            max_connections,
            header_timeout,
            connections,
            inline_secrets: Vec::new(),
            secret_files: Vec::new(),
        }
    }

    fn connection(&mut self, mut c: RawConnection, at: &str) -> Option<ConnectionSettings> {
        self.unknown(
            at,
            &c.extra,
            &[
                "name",
                "schedule",
                "max_concurrency",
                "source",
                "target",
                "scope",
                "mapping",
                "governance",
                "safety",
            ],
        );
        let name = match c.name {
            Some(n)
                if !n.trim().is_empty()
                    && n.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) =>
            {
                n
            }
            Some(n) => {
                self.problem(
                    format!("{at}.name"),
                    format!("{n:?}: use letters, digits, '-', '_' or '.'"),
                );
                n
            }
            None => {
                self.problem(
                    format!("{at}.name"),
                    "missing; every connection needs a name",
                );
                String::new()
            }
        };
        if let Some(s) = &c.schedule
            && let Err(message) = scimsync_engine::scheduler::check_schedule(s)
        {
            self.problem(format!("{at}.schedule"), message);
        }
        let member_batch_size = self.range(
            &format!("{at}.target.member_batch_size"),
            c.target.as_ref().and_then(|t| t.member_batch_size),
            100,
            1..=1_000,
        ) as usize;
        let api_budget = c.target.as_mut().and_then(|t| t.api_budget.take());
        let source = match c.source {
            Some(s) => self.source(s, &format!("{at}.source")),
            None => {
                self.problem(format!("{at}.source"), "missing; add [connections.source]");
                None
            }
        };
        let target = match c.target {
            Some(t) => self.target(t, &format!("{at}.target")),
            None => {
                self.problem(format!("{at}.target"), "missing; add [connections.target]");
                None
            }
        };
        let kind = target.as_ref().map_or(TargetKind::Salesforce, |t| t.kind);
        let mut policy = self.policy(c.scope, c.mapping, c.governance, c.safety, kind, at);
        policy.member_batch_size = member_batch_size;
        policy.api_budget = match api_budget {
            None => None,
            Some(raw) => {
                let text = match raw {
                    RawBudget::Calls(n) => n.to_string(),
                    RawBudget::Text(t) => t,
                };
                match ApiBudget::parse(&text) {
                    Ok(b) => Some(b),
                    Err(message) => {
                        self.problem(format!("{at}.target.api_budget"), message);
                        None
                    }
                }
            }
        };
        let max_concurrency = self.range(
            &format!("{at}.max_concurrency"),
            c.max_concurrency,
            8,
            1..=MAX_CONCURRENCY_LIMIT,
        ) as usize;
        Some(ConnectionSettings {
            name,
            schedule: c.schedule,
            max_concurrency,
            source: source?,
            target: target?,
            policy,
        })
    }

    /// A whole number within `range` (its default when absent); a problem naming the key
    /// and the range otherwise (then the default stands in, so validation goes on).
    fn range(
        &mut self,
        at: &str,
        value: Option<u64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        match value {
            None => default,
            Some(v) if range.contains(&v) => v,
            Some(v) => {
                self.problem(
                    at,
                    format!(
                        "{v} is out of range: use {} to {} (default {default})",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    fn secret(
        &mut self,
        at: &str,
        key: &str,
        inline: Option<String>,
        env_name: Option<String>,
        file: Option<PathBuf>,
    ) -> Option<SecretString> {
        let given = [inline.is_some(), env_name.is_some(), file.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given > 1 {
            self.problem(
                format!("{at}.{key}"),
                format!("give only one of {key}, {key}_env, {key}_file"),
            );
        }
        if let Some(var) = env_name {
            return match (self.env)(&var) {
                Some(v) if !v.is_empty() => Some(SecretString::from(v)),
                _ => {
                    self.problem(
                        format!("{at}.{key}_env"),
                        format!("environment variable {var} is not set"),
                    );
                    None
                }
            };
        }
        if let Some(file) = file {
            let full = if file.is_absolute() {
                file.clone()
            } else {
                self.base_dir.join(&file)
            };
            return match std::fs::read_to_string(&full) {
                Ok(v) if !v.trim().is_empty() => {
                    self.secret_files
                        .push((format!("{at}.{key}_file"), full.clone()));
                    Some(SecretString::from(v.trim().to_owned()))
                }
                Ok(_) => {
                    self.problem(
                        format!("{at}.{key}_file"),
                        format!("{} is empty", full.display()),
                    );
                    None
                }
                Err(e) => {
                    self.problem(
                        format!("{at}.{key}_file"),
                        format!("cannot read {}: {e}", full.display()),
                    );
                    None
                }
            };
        }
        if let Some(v) = inline {
            self.inline_secrets.push(format!("{at}.{key}"));
            return Some(SecretString::from(v));
        }
        self.problem(
            format!("{at}.{key}_env"),
            format!(
                "missing; give the secret through {key}_env (an environment variable) or {key}_file"
            ),
        );
        None
    }

    fn url(&mut self, at: &str, text: &str) -> Option<Url> {
        match Url::parse(text) {
            Ok(u) if u.scheme() == "https" => Some(u),
            Ok(u) if u.scheme() == "http" && is_loopback(&u) => Some(u),
            Ok(_) => {
                self.problem(
                    at,
                    format!("{text:?}: HTTPS is required (plain HTTP only on loopback)"),
                );
                None
            }
            Err(e) => {
                self.problem(at, format!("{text:?} is not a URL: {e}"));
                None
            }
        }
    }

    fn source(&mut self, s: RawSource, at: &str) -> Option<SourceSettings> {
        self.unknown(
            at,
            &s.extra,
            &[
                "kind",
                "api_host",
                "base_url",
                "integration_key",
                "secret_key",
                "secret_key_env",
                "secret_key_file",
                "sig_version",
                "sso_integration_key",
                "page_size",
                "path",
            ],
        );
        match s.kind.as_deref() {
            Some("file") => match s.path {
                Some(p) => Some(SourceSettings::File {
                    path: if p.is_absolute() {
                        p
                    } else {
                        self.base_dir.join(p)
                    },
                }),
                None => {
                    self.problem(
                        format!("{at}.path"),
                        "missing; the JSON directory file to read",
                    );
                    None
                }
            },
            Some("duo") | None => {
                let base_url = match (&s.api_host, &s.base_url) {
                    (Some(host), None) => {
                        let host = host
                            .trim()
                            .trim_start_matches("https://")
                            .trim_end_matches('/');
                        self.url(&format!("{at}.api_host"), &format!("https://{host}"))
                    }
                    (None, Some(url)) => self.url(&format!("{at}.base_url"), url),
                    (Some(_), Some(_)) => {
                        self.problem(
                            format!("{at}.api_host"),
                            "give api_host or base_url, not both",
                        );
                        None
                    }
                    (None, None) => {
                        self.problem(
                            format!("{at}.api_host"),
                            "missing; the Admin API hostname from the Duo Admin Panel (api-xxxxxxxx.duosecurity.com)",
                        );
                        None
                    }
                };
                let integration_key = s.integration_key.filter(|k| !k.is_empty());
                if integration_key.is_none() {
                    self.problem(
                        format!("{at}.integration_key"),
                        "missing; the Admin API application's integration key",
                    );
                }
                let secret_key = self.secret(
                    at,
                    "secret_key",
                    s.secret_key,
                    s.secret_key_env,
                    s.secret_key_file,
                );
                let sig_version = s.sig_version.unwrap_or(5);
                if sig_version != 2 && sig_version != 5 {
                    self.problem(
                        format!("{at}.sig_version"),
                        format!("{sig_version}: use 5 (default) or 2"),
                    );
                }
                let page_size = s.page_size.unwrap_or(300);
                if !(1..=300).contains(&page_size) {
                    self.problem(
                        format!("{at}.page_size"),
                        format!("{page_size}: Duo allows 1 to 300 users per page"),
                    );
                }
                Some(SourceSettings::Duo(DuoSettings {
                    base_url: base_url?,
                    integration_key: integration_key?,
                    secret_key: secret_key?,
                    sig_version,
                    sso_integration_key: s.sso_integration_key,
                    page_size,
                }))
            }
            Some(other) => {
                self.problem(
                    format!("{at}.kind"),
                    format!("{other:?}: use \"duo\" or \"file\""),
                );
                None
            }
        }
    }

    fn target(&mut self, t: RawTarget, at: &str) -> Option<TargetSettings> {
        self.unknown(
            at,
            &t.extra,
            &[
                "kind",
                "base_url",
                "token_url",
                "client_id",
                "client_secret",
                "client_secret_env",
                "client_secret_file",
                "bearer_token_env",
                "bearer_token_file",
                "client_auth",
                "requests_per_second",
                "max_concurrency",
                "timeout_seconds",
                "member_batch_size",
                "api_budget",
                "federation_id",
            ],
        );
        let federation_id = match t.federation_id.as_deref() {
            None => FederationIdPlacement::Auto,
            Some(text) => FederationIdPlacement::parse(text).unwrap_or_else(|e| {
                self.problem(format!("{at}.federation_id"), e);
                FederationIdPlacement::Auto
            }),
        };
        let kind = match t.kind.as_deref() {
            Some("salesforce") | None => TargetKind::Salesforce,
            Some("generic") => TargetKind::Generic,
            Some(other) => {
                self.problem(
                    format!("{at}.kind"),
                    format!("{other:?}: use \"salesforce\" or \"generic\""),
                );
                TargetKind::Salesforce
            }
        };
        let base_url = match &t.base_url {
            Some(u) => self.url(&format!("{at}.base_url"), u),
            None => {
                self.problem(
                    format!("{at}.base_url"),
                    "missing; Salesforce: https://{My Domain}/services/scim/v2",
                );
                None
            }
        };
        let auth = if t.bearer_token_env.is_some() || t.bearer_token_file.is_some() {
            self.secret(
                at,
                "bearer_token",
                None,
                t.bearer_token_env,
                t.bearer_token_file,
            )
            .map(TargetAuth::Bearer)
        } else {
            let token_url = match &t.token_url {
                Some(u) => {
                    let url = self.url(&format!("{at}.token_url"), u);
                    if let Some(host) = url.as_ref().and_then(|u| u.host_str().map(str::to_owned))
                        && kind == TargetKind::Salesforce
                        && (host.eq_ignore_ascii_case("login.salesforce.com")
                            || host.eq_ignore_ascii_case("test.salesforce.com"))
                    {
                        self.problem(
                            format!("{at}.token_url"),
                            "use your org's My Domain (https://{My Domain}/services/oauth2/token); login.salesforce.com answers client credentials with \"request not supported on this domain\"",
                        );
                    }
                    url
                }
                None => {
                    self.problem(
                        format!("{at}.token_url"),
                        "missing; Salesforce: https://{My Domain}/services/oauth2/token",
                    );
                    None
                }
            };
            let client_id = t.client_id.filter(|c| !c.is_empty());
            if client_id.is_none() {
                self.problem(
                    format!("{at}.client_id"),
                    "missing; the External Client App's Consumer Key",
                );
            }
            let secret = self.secret(
                at,
                "client_secret",
                t.client_secret,
                t.client_secret_env,
                t.client_secret_file,
            );
            let basic = match t.client_auth.as_deref() {
                None | Some("form") => false,
                Some("basic") => true,
                Some(other) => {
                    self.problem(
                        format!("{at}.client_auth"),
                        format!("{other:?}: use \"form\" (Salesforce) or \"basic\""),
                    );
                    false
                }
            };
            match (token_url, client_id, secret) {
                (Some(token_url), Some(client_id), Some(client_secret)) => {
                    Some(TargetAuth::ClientCredentials {
                        token_url,
                        client_id,
                        client_secret,
                        basic,
                    })
                }
                _ => None,
            }
        };
        let rps = self.range(
            &format!("{at}.requests_per_second"),
            t.requests_per_second,
            20,
            1..=10_000,
        ) as u32;
        let max_concurrency = self.range(
            &format!("{at}.max_concurrency"),
            t.max_concurrency,
            8,
            1..=MAX_CONCURRENCY_LIMIT,
        ) as usize;
        let timeout_seconds = self.range(
            &format!("{at}.timeout_seconds"),
            t.timeout_seconds,
            30,
            1..=3_600,
        );
        Some(TargetSettings {
            kind,
            base_url: base_url?,
            auth: auth?,
            requests_per_second: rps,
            max_concurrency,
            timeout: Duration::from_secs(timeout_seconds),
            federation_id,
        })
    }

    fn policy(
        &mut self,
        scope: RawScope,
        mapping: BTreeMap<String, String>,
        governance: RawGovernance,
        safety: RawSafety,
        kind: TargetKind,
        at: &str,
    ) -> Policy {
        self.unknown(
            &format!("{at}.scope"),
            &scope.extra,
            &["groups", "sso_access", "all", "exclude_groups"],
        );
        let chosen = [
            scope.groups.is_some(),
            scope.sso_access == Some(true),
            scope.all == Some(true),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen > 1 {
            self.problem(
                format!("{at}.scope"),
                "choose one of groups, sso_access = true, all = true",
            );
        }
        let scope_value = if let Some(groups) = scope.groups {
            if groups.is_empty() {
                self.problem(
                    format!("{at}.scope.groups"),
                    "empty; name at least one source group",
                );
            }
            Scope::Groups(groups)
        } else if scope.sso_access == Some(true) {
            Scope::SsoAccess
        } else if scope.all == Some(true) {
            Scope::All
        } else {
            self.problem(
                format!("{at}.scope"),
                "missing; choose groups = [\"…\"], sso_access = true or all = true",
            );
            Scope::All
        };

        let mut map = Mapping::default();
        for (target_attr, source_attr) in &mapping {
            let path = format!("{at}.mapping.{target_attr}");
            if target_attr.eq_ignore_ascii_case("name_split") {
                match NameSplit::parse(source_attr) {
                    Some(rule) => map.name_split = rule,
                    None => self.problem(
                        &path,
                        format!(
                            "{source_attr:?} is not a name rule; use \"last_word\" (the default), \"first_word\" or \"none\""
                        ),
                    ),
                }
                continue;
            }
            if target_attr.eq_ignore_ascii_case("user_name_suffix") {
                let suffix = source_attr.trim();
                if suffix.is_empty() || suffix.contains(['@', ' ']) {
                    self.problem(
                        &path,
                        format!(
                            "{source_attr:?} is not a userName suffix; use text without spaces or '@' that is appended to every userName, such as \".acme\""
                        ),
                    );
                } else {
                    map.user_name_suffix = Some(suffix.to_owned());
                }
                continue;
            }
            let Some(source) = SourceAttribute::parse(source_attr) else {
                self.problem(
                    &path,
                    format!(
                        "{source_attr:?} is not a source attribute; use username, email, first_name, last_name, display_name, alias1..alias8, custom.<name> or phone"
                    ),
                );
                continue;
            };
            if target_attr.eq_ignore_ascii_case("userName") {
                map.user_name = source;
                continue;
            }
            if target_attr.eq_ignore_ascii_case("ssoIdentifier")
                || target_attr.eq_ignore_ascii_case("federationId")
            {
                map.sso_identifier = source;
                continue;
            }
            match parse_target_attribute(target_attr, kind) {
                Ok(attr) => map.set(attr, source),
                Err(message) => self.problem(&path, message),
            }
        }

        self.unknown(
            &format!("{at}.governance"),
            &governance.extra,
            &[
                "baseline",
                "group_rules",
                "authoritative_permission_sets",
                "profiles_without_groups",
            ],
        );
        let baseline = governance
            .baseline
            .map(|r| self.rule(r, &format!("{at}.governance.baseline")));
        let mut group_rules = Vec::new();
        for (i, r) in governance.group_rules.into_iter().enumerate() {
            let path = format!("{at}.governance.group_rules[{i}]");
            let priority = r.priority.unwrap_or_else(|| {
                self.problem(
                    format!("{path}.priority"),
                    "missing; 1 is the highest priority",
                );
                0
            });
            group_rules.push(GroupRuleSpec {
                groups: r.groups,
                priority,
                rule: self.rule(r.rule, &path),
            });
        }
        self.unknown(
            &format!("{at}.safety"),
            &safety.extra,
            &["max_deactivations", "max_deactivation_percent"],
        );
        let defaults = Safety::default();
        let policy = Policy {
            target_kind: kind,
            scope: scope_value,
            exclude_groups: scope.exclude_groups,
            mapping: map,
            governance: Governance {
                baseline,
                group_rules,
                authoritative_permission_sets: governance.authoritative_permission_sets,
                profiles_without_groups: governance.profiles_without_groups.clone(),
            },
            safety: Safety {
                max_deactivations: safety.max_deactivations.or(defaults.max_deactivations),
                max_deactivation_percent: safety
                    .max_deactivation_percent
                    .or(defaults.max_deactivation_percent),
            },
            member_batch_size: 100,
            api_budget: None,
        };
        for p in policy.validate() {
            self.problems.push(p.under(at));
        }
        policy
    }

    fn rule(&mut self, r: RawRule, path: &str) -> RuleSpec {
        self.unknown(
            path,
            &r.extra,
            &["groups", "priority", "profile", "permission_sets", "role"],
        );
        RuleSpec {
            profile: r.profile.unwrap_or_default(),
            permission_sets: r.permission_sets,
            role: r.role,
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = r#"
[store]
url = "sqlite://state.db"

[[connections]]
name = "salesforce"
schedule = "0 */15 * * * *"

[connections.source]
kind = "duo"
api_host = "api-12345678.duosecurity.com"
integration_key = "DIXXXXXXXXXXXXXXXXXX"
secret_key_env = "DUO_SKEY"

[connections.target]
kind = "salesforce"
base_url = "https://acme.my.salesforce.com/services/scim/v2"
token_url = "https://acme.my.salesforce.com/services/oauth2/token"
client_id = "3MVG9"
client_secret_env = "SF_SECRET"

[connections.scope]
groups = ["Sales", "Support"]

[connections.mapping]
nickName = "alias1"
department = "custom.department"

[connections.governance.baseline]
profile = "Standard User"

[[connections.governance.group_rules]]
groups = ["Sales"]
priority = 1
profile = "Standard User"
permission_sets = ["Sales Cloud"]
"#;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_good_file_loads_with_secrets_from_the_environment() {
        let s = parse(
            GOOD,
            Path::new("/etc/scimsync.toml"),
            &env(&[("DUO_SKEY", "s3cr3t-duo"), ("SF_SECRET", "s3cr3t-sf")]),
        )
        .unwrap();
        assert_eq!(
            s.store_url, "sqlite:///etc/state.db",
            "relative to the configuration's folder"
        );
        let c = &s.connections[0];
        assert_eq!(c.name, "salesforce");
        assert_eq!(c.policy.mapping.nick_name, Some(SourceAttribute::Alias(1)));
        assert!(
            matches!(&c.source, SourceSettings::Duo(d) if d.base_url.as_str() == "https://api-12345678.duosecurity.com/")
        );
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("s3cr3t"),
            "no secret in Debug output: {debug}"
        );
        assert!(s.inline_secrets.is_empty());
    }

    #[test]
    fn federation_id_placement_defaults_to_auto_and_refuses_matching_keys() {
        let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
        let s = parse(GOOD, Path::new("c.toml"), &vars).unwrap();
        assert_eq!(
            s.connections[0].target.federation_id,
            FederationIdPlacement::Auto
        );
        let with = |value: &str| {
            let text = GOOD.replace(
                "client_secret_env = \"SF_SECRET\"",
                &format!("client_secret_env = \"SF_SECRET\"\nfederation_id = \"{value}\""),
            );
            parse(&text, Path::new("c.toml"), &vars)
        };
        let path = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";
        assert_eq!(
            with(path).unwrap().connections[0].target.federation_id,
            FederationIdPlacement::Path(path.into())
        );
        assert_eq!(
            with("off").unwrap().connections[0].target.federation_id,
            FederationIdPlacement::Off
        );
        for refused in ["externalId", "userName", "emails[type eq work]"] {
            let err = with(refused).unwrap_err().to_string();
            assert!(
                err.contains("connections[0].target.federation_id"),
                "{refused}: {err}"
            );
        }
        let err = with("externalId").unwrap_err().to_string();
        assert!(err.contains("matches accounts on"), "{err}");
    }

    #[test]
    fn environment_overrides_the_store_and_listener() {
        let s = parse(
            GOOD,
            Path::new("c.toml"),
            &env(&[
                ("DUO_SKEY", "a"),
                ("SF_SECRET", "b"),
                ("SCIMSYNC_STORE_URL", "postgres://db/x"),
                ("SCIMSYNC_LISTEN", "127.0.0.1:9999"),
            ]),
        )
        .unwrap();
        assert_eq!(s.store_url, "postgres://db/x");
        assert_eq!(s.listen.port(), 9999);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_path() {
        let text = GOOD
            .replace(
                "nickName = \"alias1\"",
                "nickName = \"alias1\"\nlocale = \"custom.locale\"",
            )
            .replace("profile = \"Standard User\"\n\n[[", "\n[[")
            .replace("priority = 1", "priority = 1\ncolour = \"red\"")
            .replace(
                "token_url = \"https://acme.my.salesforce.com/services/oauth2/token\"",
                "token_url = \"https://login.salesforce.com/services/oauth2/token\"",
            );
        let err = parse(&text, Path::new("c.toml"), &env(&[("DUO_SKEY", "a")])).unwrap_err();
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("{err}");
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "connections[0].mapping.locale",
            "connections[0].governance.group_rules[0].colour",
            "connections[0].target.token_url",
            "connections[0].target.client_secret_env",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with("connections[0].governance.baseline")),
            "{paths:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("Salesforce does not provision locale"),
            "{text}"
        );
        assert!(text.contains("SF_SECRET is not set"), "{text}");
    }

    #[test]
    fn the_name_split_rule_parses_and_a_bad_one_is_reported_with_its_path() {
        let env = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
        let s = parse(GOOD, Path::new("c.toml"), &env).unwrap();
        assert_eq!(
            s.connections[0].policy.mapping.name_split,
            NameSplit::LastWord,
            "the default"
        );
        for (text, want) in [
            ("first_word", NameSplit::FirstWord),
            ("none", NameSplit::None),
            ("last_word", NameSplit::LastWord),
        ] {
            let file = GOOD.replace(
                "nickName = \"alias1\"",
                &format!("nickName = \"alias1\"\nname_split = \"{text}\""),
            );
            let s = parse(&file, Path::new("c.toml"), &env).unwrap();
            let mapping = &s.connections[0].policy.mapping;
            assert_eq!(mapping.name_split, want, "{text}");
            assert_eq!(mapping.nick_name, Some(SourceAttribute::Alias(1)));
        }
        let file = GOOD.replace(
            "nickName = \"alias1\"",
            "nickName = \"alias1\"\nname_split = \"surname\"",
        );
        let err = parse(&file, Path::new("c.toml"), &env).unwrap_err();
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("{err}");
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["connections[0].mapping.name_split"]);
        assert!(
            problems[0]
                .message
                .contains("\"surname\" is not a name rule")
                && problems[0].message.contains("\"first_word\""),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback() {
        let text = GOOD.replace(
            "api_host = \"api-12345678.duosecurity.com\"",
            "base_url = \"http://duo.example.com\"",
        );
        let err = parse(
            &text,
            Path::new("c.toml"),
            &env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("connections[0].source.base_url"),
            "{err}"
        );
        let text = GOOD.replace(
            "api_host = \"api-12345678.duosecurity.com\"",
            "base_url = \"http://127.0.0.1:8443\"",
        );
        assert!(
            parse(
                &text,
                Path::new("c.toml"),
                &env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")])
            )
            .is_ok()
        );
    }

    #[test]
    fn an_inline_secret_in_a_world_readable_file_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = GOOD.replace(
            "secret_key_env = \"DUO_SKEY\"",
            "secret_key = \"inline-secret\"",
        );
        std::fs::write(&path, &text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = load(&path, &env(&[("SF_SECRET", "b")])).unwrap();
        let warning = inline_secret_warning(&s).unwrap();
        assert!(
            warning.contains("connections[0].source.secret_key")
                && !warning.contains("inline-secret"),
            "{warning}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(inline_secret_warning(&s).is_none());
    }

    #[test]
    fn out_of_range_numbers_are_problems_naming_the_key_not_panics() {
        let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
        let text = GOOD.replace(
            "schedule = \"0 */15 * * * *\"",
            "schedule = \"0 */15 * * * *\"\nmax_concurrency = 9223372036854775807",
        );
        let err = parse(&text, Path::new("c.toml"), &vars)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("connections[0].max_concurrency: 9223372036854775807 is out of range"),
            "{err}"
        );
        let text = GOOD.replace(
            "client_secret_env = \"SF_SECRET\"",
            "client_secret_env = \"SF_SECRET\"\nmax_concurrency = 0\nmember_batch_size = 18446744073709551615",
        );
        let err = parse(&text, Path::new("c.toml"), &vars)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("connections[0].target.max_concurrency"),
            "{err}"
        );
        assert!(
            err.contains("connections[0].target.member_batch_size"),
            "{err}"
        );
    }

    #[test]
    fn the_api_budget_is_a_percentage_or_a_number_of_calls_and_a_bad_one_is_named() {
        let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
        let with = |budget: &str| {
            GOOD.replace(
                "client_secret_env = \"SF_SECRET\"",
                &format!("client_secret_env = \"SF_SECRET\"\napi_budget = {budget}"),
            )
        };
        let s = parse(GOOD, Path::new("c.toml"), &vars).unwrap();
        assert_eq!(s.connections[0].policy.api_budget, None);
        let s = parse(&with("\"25%\""), Path::new("c.toml"), &vars).unwrap();
        assert_eq!(
            s.connections[0].policy.api_budget,
            Some(ApiBudget::Percent(25.0))
        );
        let s = parse(&with("5000"), Path::new("c.toml"), &vars).unwrap();
        assert_eq!(
            s.connections[0].policy.api_budget,
            Some(ApiBudget::Calls(5000))
        );
        for bad in ["\"250%\"", "0", "\"some\""] {
            let err = parse(&with(bad), Path::new("c.toml"), &vars)
                .unwrap_err()
                .to_string();
            assert!(err.contains("connections[0].target.api_budget"), "{err}");
        }
    }

    #[test]
    fn the_daemon_token_comes_from_the_environment_or_a_file() {
        let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b"), ("TOK", "t0k3n")]);
        let s = parse(GOOD, Path::new("c.toml"), &vars).unwrap();
        assert!(s.daemon_token.is_none());
        assert_eq!(s.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(s.header_timeout, DEFAULT_HEADER_TIMEOUT);
        let text = format!(
            "[daemon]\ntoken_env = \"TOK\"\nmax_connections = 10\nheader_timeout_seconds = 3\n{GOOD}"
        );
        let s = parse(&text, Path::new("c.toml"), &vars).unwrap();
        use secrecy::ExposeSecret as _;
        assert_eq!(s.daemon_token.as_ref().unwrap().expose_secret(), "t0k3n");
        assert_eq!(s.max_connections, 10);
        assert_eq!(s.header_timeout, Duration::from_secs(3));
        assert!(!format!("{s:?}").contains("t0k3n"));
        let text = format!("[daemon]\ntoken = \"inline\"\n{GOOD}");
        let s = parse(&text, Path::new("c.toml"), &vars).unwrap();
        assert_eq!(s.inline_secrets, ["daemon.token"]);
        let text = format!("[daemon]\ntoken_env = \"NOPE\"\n{GOOD}");
        let err = parse(&text, Path::new("c.toml"), &vars)
            .unwrap_err()
            .to_string();
        assert!(err.contains("daemon.token_env"), "{err}");
    }

    #[test]
    fn a_secret_file_readable_by_others_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("duo_secret");
        std::fs::write(&secret, "file-secret-value").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("c.toml");
        let text = GOOD.replace(
            "secret_key_env = \"DUO_SKEY\"",
            "secret_key_file = \"duo_secret\"",
        );
        std::fs::write(&path, &text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = load(&path, &env(&[("SF_SECRET", "b")])).unwrap();
        let warning = inline_secret_warning(&s).unwrap();
        assert!(
            warning.contains("connections[0].source.secret_key_file")
                && warning.contains("mode 644")
                && !warning.contains("file-secret-value"),
            "{warning}"
        );
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            inline_secret_warning(&s).is_none(),
            "the config file itself holds no secret"
        );
    }

    #[test]
    fn schedules_are_parsed_as_the_scheduler_parses_them() {
        let vars = env(&[("DUO_SKEY", "a"), ("SF_SECRET", "b")]);
        for bad in [
            "0 99 * * * *",
            "0 */15 * * * * * *",
            "every day",
            "0 0 25 * * *",
        ] {
            let text = GOOD.replace("0 */15 * * * *", bad);
            let err = parse(&text, Path::new("c.toml"), &vars)
                .unwrap_err()
                .to_string();
            assert!(err.contains("connections[0].schedule"), "{bad}: {err}");
        }
        for good in ["0 */15 * * * *", "30 0 2 * * Mon-Fri"] {
            let text = GOOD.replace("0 */15 * * * *", good);
            assert!(parse(&text, Path::new("c.toml"), &vars).is_ok(), "{good}");
        }
    }
}
