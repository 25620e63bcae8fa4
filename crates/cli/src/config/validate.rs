//! Raw → validated: the [`Validator`] walks the raw structs, collecting every problem with its
//! key path (`connections[0].target.max_concurrency: …`) and standing in defaults so that
//! validation goes on. The sections have modules of their own; here are the file, one
//! connection, and the checks they share (unknown keys, numbers in range, secrets, URLs).

use super::raw::{self, RawConnection, RawFile};
use super::{ConnectionSettings, MAX_CONCURRENCY_LIMIT, Settings};
use scimsync_core::budget::ApiBudget;
use scimsync_core::policy::{Problem, TargetKind};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use url::Url;

pub(super) struct Validator<'e> {
    pub problems: Vec<Problem>,
    pub env: &'e dyn Fn(&str) -> Option<String>,
    /// Reads a `*_file` secret.
    pub read: &'e dyn Fn(&Path) -> std::io::Result<String>,
    pub base_dir: PathBuf,
    pub inline_secrets: Vec<String>,
    pub secret_files: Vec<(String, PathBuf)>,
    /// Paths of the keys no raw struct read, not yet reported.
    unknown: Vec<String>,
}

impl<'e> Validator<'e> {
    pub fn new(
        env: &'e dyn Fn(&str) -> Option<String>,
        read: &'e dyn Fn(&Path) -> std::io::Result<String>,
        base_dir: PathBuf,
        unknown: Vec<String>,
    ) -> Self {
        Validator {
            problems: Vec::new(),
            env,
            read,
            base_dir,
            inline_secrets: Vec::new(),
            secret_files: Vec::new(),
            unknown,
        }
    }

    pub fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// Reports the unknown keys directly under `at`, a table read into `T`, listing the keys
    /// `T` reads.
    pub fn unknown<T: for<'de> Deserialize<'de>>(&mut self, at: &str) {
        let (here, rest) = std::mem::take(&mut self.unknown)
            .into_iter()
            .partition(|key| parent(key) == at);
        self.unknown = rest;
        for key in here {
            self.problem(
                key,
                format!(
                    "unknown key; the keys here are: {}",
                    raw::fields_of::<T>().join(", ")
                ),
            );
        }
    }

    pub fn file(&mut self, raw: RawFile, path: &Path) -> Settings {
        self.unknown::<RawFile>("");
        self.unknown::<raw::RawStore>("store");
        let daemon = self.daemon(raw.daemon);
        let store_url = super::store::store_url(self.env, raw.store.url, &self.base_dir);
        let retention = match super::store::retention(raw.store.retention.as_deref()) {
            Ok(r) => r,
            Err(message) => {
                self.problem("store.retention", message);
                None
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
        // Keys under a table no section read (none expected: every table is read above).
        for key in std::mem::take(&mut self.unknown) {
            self.problem(key, "unknown key");
        }
        Settings {
            path: path.to_owned(),
            store_url,
            retention,
            listen: daemon.listen,
            daemon_token: daemon.token,
            max_connections: daemon.max_connections,
            header_timeout: daemon.header_timeout,
            stuck_after: daemon.stuck_after,
            connections,
            inline_secrets: Vec::new(),
            secret_files: Vec::new(),
        }
    }

    fn connection(&mut self, mut c: RawConnection, at: &str) -> Option<ConnectionSettings> {
        self.unknown::<RawConnection>(at);
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
        let mut policy = self.policy(c.scope, &c.mapping, c.governance, c.safety, kind, at);
        policy.member_batch_size = member_batch_size;
        policy.api_budget = api_budget.and_then(|raw| {
            let text = match raw {
                raw::RawBudget::Calls(n) => n.to_string(),
                raw::RawBudget::Text(t) => t,
            };
            ApiBudget::parse(&text)
                .map_err(|message| self.problem(format!("{at}.target.api_budget"), message))
                .ok()
        });
        if let Some(text) = &c.full_every {
            match full_every(text) {
                Ok(every) => policy.full_every = every,
                Err(message) => self.problem(format!("{at}.full_every"), message),
            }
        }
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
    pub fn range(
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

    /// A secret given inline (`{key}`), by environment variable (`{key}_env`) or by file
    /// (`{key}_file`, relative to the configuration's folder): exactly one of them.
    pub fn secret(
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
            let full = self.relative(file);
            return match (self.read)(&full) {
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

    /// A path of the file, relative to the configuration's folder unless absolute.
    pub fn relative(&self, path: PathBuf) -> PathBuf {
        if path.is_absolute() {
            path
        } else {
            self.base_dir.join(path)
        }
    }

    /// An HTTPS URL (plain HTTP only on loopback).
    pub fn url(&mut self, at: &str, text: &str) -> Option<Url> {
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
}

/// The table a key path is in (`connections[0].source` for `connections[0].source.colour`).
fn parent(key: &str) -> &str {
    key.rfind('.').map_or("", |i| &key[..i])
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `full_every`: a duration of at least a minute ("off" is refused: drift must be repaired
/// some time).
fn full_every(text: &str) -> Result<std::time::Duration, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Err(
            "\"off\" is not accepted: a full reconcile is how drift on the target is found and repaired; use a duration such as 24h or 7d".to_owned(),
        );
    }
    let every = crate::parse_duration(text)?;
    if every < std::time::Duration::from_secs(60) {
        return Err(format!(
            "{text:?} is too short: use at least 1m (default 24h)"
        ));
    }
    Ok(every)
}
