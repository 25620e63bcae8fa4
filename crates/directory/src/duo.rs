//! The Duo Admin API reader: signed requests, paging by `metadata.next_offset`, backoff on 429
//! and 5xx, and the mapping of Duo's users and groups into the core model, page by page.

use crate::error::DirectoryError;
use crate::signing::{SigVersion, authorization, canonicalize, rfc2822, sign};
use scimsync_core::plan::ObjectKind;
use scimsync_core::ports::Source;
use scimsync_core::retry::{RetryPolicy, Retryable as _, Waits};
use scimsync_core::source::{
    DirectoryGroup, DirectoryStatus, DirectoryUser, Phone, PhoneKind, SourceProblem,
    SourceSnapshot, SsoAccess,
};
use scimsync_core::{Attributes, CompactString, SourceGroupId, SourceUserId};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::{Instrument as _, info, info_span, warn};
use url::Url;

/// Where the Admin API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuoEndpoint {
    /// The API hostname Duo gives (`api-xxxxxxxx.duosecurity.com`), reached over HTTPS.
    ApiHost(String),
    /// A full base URL (emulators and tests); plain HTTP only on loopback.
    BaseUrl(Url),
}

/// How to read a Duo account.
pub struct DuoConfig {
    pub endpoint: DuoEndpoint,
    pub integration_key: String,
    pub secret_key: SecretString,
    pub sig_version: SigVersion,
    /// Users per page (Duo's maximum is 300).
    pub page_size: u32,
    /// Tries per request on 429, 5xx and transport errors.
    pub max_attempts: u32,
    /// First wait on 429/5xx, doubled each time up to 32 times it (Duo's client: 1 s up to
    /// 32 s), with jitter (core's retry policy).
    pub backoff_base: Duration,
    /// The Duo application whose "User access" setting the `sso_access` scope reads.
    pub sso_integration_key: Option<String>,
    /// Accept a read with no users (a directory that is really empty).
    pub allow_empty: bool,
    /// Most pages one listing may take (a bound on a server that never stops paging).
    pub max_pages: u32,
    /// Most bytes one answer may have; a larger one fails the read, naming the URL.
    pub max_body_bytes: usize,
}

/// Default [`DuoConfig::max_pages`]: 10,000 pages (3 million users at 300 a page).
pub const DEFAULT_MAX_PAGES: u32 = 10_000;
/// Default [`DuoConfig::max_body_bytes`]: 32 MiB (a page of 300 users is well under 1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

impl std::fmt::Debug for DuoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoConfig")
            .field("endpoint", &self.endpoint)
            .field("integration_key", &self.integration_key)
            .field("secret_key", &"[redacted]")
            .field("sig_version", &self.sig_version)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl DuoConfig {
    /// v5 signing, pages of 300, 7 attempts from 1 s (as Duo's own client).
    pub fn new(endpoint: DuoEndpoint, integration_key: String, secret_key: SecretString) -> Self {
        Self {
            endpoint,
            integration_key,
            secret_key,
            sig_version: SigVersion::V5,
            page_size: 300,
            max_attempts: 7,
            backoff_base: Duration::from_secs(1),
            sso_integration_key: None,
            allow_empty: false,
            max_pages: DEFAULT_MAX_PAGES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// What `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub total_users: Option<u64>,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.total_users {
            Some(n) => write!(f, "signed request accepted; {n} users in the directory"),
            None => write!(f, "signed request accepted"),
        }
    }
}

/// Reads users and groups from Duo's Admin API.
pub struct DuoSource {
    config: DuoConfig,
    base: Url,
    /// What is signed as the host: the host, with the port when it is not the scheme's default.
    host: String,
    http: reqwest::Client,
    /// Where the retry waits go (tokio's sleep; a recorder in tests).
    waits: Waits,
}

impl std::fmt::Debug for DuoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoSource")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
pub(crate) struct Envelope<T> {
    stat: String,
    response: Option<T>,
    #[serde(default)]
    metadata: Option<Metadata>,
    code: Option<serde_json::Value>,
    message: Option<String>,
    message_detail: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct Metadata {
    next_offset: Option<serde_json::Value>,
    total_objects: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct DuoUserRow {
    user_id: Option<String>,
    username: Option<String>,
    email: Option<String>,
    firstname: Option<String>,
    lastname: Option<String>,
    realname: Option<String>,
    status: Option<String>,
    #[serde(default)]
    phones: Vec<DuoPhoneRow>,
    #[serde(default)]
    aliases: Option<BTreeMap<String, Option<String>>>,
    alias1: Option<String>,
    alias2: Option<String>,
    alias3: Option<String>,
    alias4: Option<String>,
    #[serde(default)]
    custom_attributes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    groups: Vec<DuoGroupRef>,
}

#[derive(Deserialize)]
struct DuoPhoneRow {
    number: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    extension: Option<String>,
}

#[derive(Deserialize)]
struct DuoGroupRef {
    group_id: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct DuoGroupRow {
    group_id: Option<String>,
    name: Option<String>,
    desc: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct DuoIntegration {
    #[serde(default)]
    groups_allowed: Vec<serde_json::Value>,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl DuoSource {
    pub fn new(config: DuoConfig) -> Result<Self, DirectoryError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = match &config.endpoint {
            DuoEndpoint::ApiHost(host) => {
                Url::parse(&format!("https://{}", host.trim().trim_end_matches('/'))).map_err(
                    |e| {
                        DirectoryError::Config(format!("api_host {host:?} is not a host name: {e}"))
                    },
                )?
            }
            DuoEndpoint::BaseUrl(url) => url.clone(),
        };
        if base.scheme() != "https" && !(base.scheme() == "http" && is_loopback(&base)) {
            return Err(DirectoryError::Config(format!(
                "{base}: Duo is reached over HTTPS (plain HTTP only on loopback)"
            )));
        }
        let host_name = base.host_str().unwrap_or_default().to_ascii_lowercase();
        let host = match base.port() {
            Some(p) => format!("{host_name}:{p}"),
            None => host_name,
        };
        // Duo's Admin API does not redirect: a redirect is refused (the signed Authorization
        // header never goes to another host) and reported.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("scimsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DirectoryError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            config,
            base,
            host,
            http,
            waits: Waits::default(),
        })
    }

    /// The reader with its retry waits sent to `waits` (tests: [`Waits::recording`], so that
    /// they assert the waits asked instead of waiting for them).
    pub fn with_waits(mut self, waits: Waits) -> Self {
        self.waits = waits;
        self
    }

    /// One signed GET with retries on 429, 5xx and transport errors.
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
        what: &str,
    ) -> Result<(T, Metadata), DirectoryError> {
        let base = self.config.backoff_base;
        let policy = RetryPolicy {
            max_attempts: self.config.max_attempts.max(1),
            base,
            // Duo's own client waits 1 s doubling up to 32 s.
            max: base.saturating_mul(32),
        };
        let mut attempt = 0u32;
        (|| self.get_once(path, params, what))
            .retry(policy.backoff())
            .sleep(self.waits.sleeper(tokio::time::sleep))
            .when(DirectoryError::is_retryable)
            .adjust(|_, own| policy.wait(own, None))
            .notify(|err, wait| {
                attempt += 1;
                warn!(what, attempt, wait_ms = wait.as_millis() as u64, error = %err, "Duo request failed; retrying.");
            })
            .await
    }

    async fn get_once<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
        what: &str,
    ) -> Result<(T, Metadata), DirectoryError> {
        let date = rfc2822(std::time::SystemTime::now());
        let canonical = canonicalize(
            "GET",
            &self.host,
            path,
            params,
            &date,
            self.config.sig_version,
            b"",
            &[],
        );
        let signature = sign(
            self.config.secret_key.expose_secret(),
            &canonical,
            self.config.sig_version,
        );
        let mut url = self
            .base
            .join(path)
            .map_err(|e| DirectoryError::Config(format!("bad path {path}: {e}")))?;
        url.query_pairs_mut().extend_pairs(params);
        let resp = self
            .http
            .get(url)
            .header("Date", &date)
            .header(
                "Authorization",
                authorization(&self.config.integration_key, &signature),
            )
            .send()
            .await
            .map_err(|e| DirectoryError::Transport {
                what: what.to_owned(),
                message: transport_message(&e),
            })?;
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            return Err(DirectoryError::Redirect {
                what: what.to_owned(),
                status,
                to_host: redirect_host(resp.url(), location),
            });
        }
        let bytes = read_body(resp, self.config.max_body_bytes, what).await?;
        decode(status, &bytes, what)
    }

    /// Pages through a list endpoint following `next_offset` only, handing each page over.
    async fn pages<T: DeserializeOwned>(
        &self,
        path: &str,
        limit: u32,
        what: &str,
        mut each: impl FnMut(Vec<T>),
    ) -> Result<(), DirectoryError> {
        let mut offset: u64 = 0;
        let mut pages: u32 = 0;
        loop {
            pages += 1;
            if pages > self.config.max_pages {
                return Err(DirectoryError::InvalidResponse {
                    what: what.to_owned(),
                    message: format!(
                        "more than {} pages (offset {offset}); stopped: the listing does not end",
                        self.config.max_pages
                    ),
                });
            }
            let params = vec![
                ("limit".to_owned(), limit.to_string()),
                ("offset".to_owned(), offset.to_string()),
            ];
            let (rows, meta): (Vec<T>, Metadata) = self
                .get(path, &params, &format!("{what} (offset {offset})"))
                .instrument(info_span!("page", path, offset))
                .await?;
            each(rows);
            let Some(next) = next_offset(&meta, offset, what)? else {
                return Ok(());
            };
            offset = next;
        }
    }

    /// One signed request, for `scimsync check`.
    pub async fn check(&self) -> Result<CheckReport, DirectoryError> {
        let params = vec![
            ("limit".to_owned(), "1".to_owned()),
            ("offset".to_owned(), "0".to_owned()),
        ];
        // One attempt: a check reports what is wrong at once rather than backing off.
        let (_rows, meta): (Vec<serde_json::Value>, Metadata) = self
            .get_once("/admin/v1/users", &params, "reading one user")
            .await?;
        Ok(CheckReport {
            total_users: meta.total_objects,
        })
    }
}

/// An answer's envelope: the response and its metadata when `stat` is OK, else the error it
/// reports (Duo's code and message, or the status and the start of a body that is not JSON).
pub(crate) fn decode<T: DeserializeOwned>(
    status: u16,
    bytes: &[u8],
    what: &str,
) -> Result<(T, Metadata), DirectoryError> {
    let envelope: Envelope<T> = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) if status == 200 => {
            return Err(DirectoryError::InvalidResponse {
                what: what.to_owned(),
                message: e.to_string(),
            });
        }
        Err(_) => {
            return Err(DirectoryError::Api {
                what: what.to_owned(),
                status,
                code: i64::from(status) * 100,
                message: String::from_utf8_lossy(bytes).chars().take(200).collect(),
                message_detail: None,
            });
        }
    };
    if status == 200 && envelope.stat == "OK" {
        let response = envelope
            .response
            .ok_or_else(|| DirectoryError::InvalidResponse {
                what: what.to_owned(),
                message: "stat is OK but there is no response".into(),
            })?;
        return Ok((response, envelope.metadata.unwrap_or_default()));
    }
    let code = match &envelope.code {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or_default(),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or_default(),
        _ => i64::from(status) * 100,
    };
    let message = envelope.message.unwrap_or_default();
    if status == 401 && (code == 40103 || code == 40101 || code == 40102) {
        return Err(DirectoryError::Signature { code, message });
    }
    Err(DirectoryError::Api {
        what: what.to_owned(),
        status,
        code,
        message,
        message_detail: envelope.message_detail,
    })
}

/// The offset of the next page (`None`: the last page), which must advance past `offset`.
pub(crate) fn next_offset(
    meta: &Metadata,
    offset: u64,
    what: &str,
) -> Result<Option<u64>, DirectoryError> {
    let next = match &meta.next_offset {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    };
    let Some(next) = next else {
        return Err(DirectoryError::InvalidResponse {
            what: what.to_owned(),
            message: "metadata.next_offset is not a whole number".to_owned(),
        });
    };
    // Offsets only grow: one that stays or goes back would read the same pages forever.
    if next <= offset {
        return Err(DirectoryError::InvalidResponse {
            what: what.to_owned(),
            message: format!(
                "metadata.next_offset {next} does not advance past offset {offset}; stopped rather than read the same pages again"
            ),
        });
    }
    Ok(Some(next))
}

/// The host a redirect points to (`Location` resolved against `from`), for messages.
fn redirect_host(from: &Url, location: &str) -> String {
    match from.join(location) {
        Ok(u) => u.host_str().unwrap_or("?").to_owned(),
        Err(_) => "an unreadable Location".to_owned(),
    }
}

/// Reads an answer's body, at most `max` bytes (by its Content-Length first, then as it
/// arrives): a larger one is an error naming the URL, before it fills memory.
async fn read_body(
    mut resp: reqwest::Response,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, DirectoryError> {
    let url = resp
        .url()
        .as_str()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let too_big = |seen: u64| DirectoryError::TooLarge {
        what: what.to_owned(),
        url: url.clone(),
        seen,
        max: max as u64,
    };
    if let Some(length) = resp.content_length()
        && length > max as u64
    {
        return Err(too_big(length));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| DirectoryError::Transport {
        what: what.to_owned(),
        message: transport_message(&e),
    })? {
        if body.len() + chunk.len() > max {
            return Err(too_big((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn transport_message(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The trimmed text, `None` when empty; held inline when short (most of a user's values are).
fn nonempty(v: Option<String>) -> Option<CompactString> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(CompactString::from)
}

/// Maps one Duo user row; `Err` names the field that makes it unreadable, with the row's id
/// and username when it has them.
#[allow(clippy::type_complexity)]
fn map_user(row: DuoUserRow) -> Result<DirectoryUser, (Option<String>, String, Option<String>)> {
    let Some(id) = nonempty(row.user_id) else {
        return Err((
            None,
            "user_id is missing".into(),
            nonempty(row.username).map(String::from),
        ));
    };
    let status_text = row.status.unwrap_or_default();
    let Some(status) = DirectoryStatus::parse(&status_text) else {
        return Err((
            Some(id.to_string()),
            format!("status {status_text:?} is not a Duo status"),
            None,
        ));
    };
    let Some(username) = nonempty(row.username) else {
        return Err((Some(id.to_string()), "username is missing".into(), None));
    };
    let mut aliases: Vec<(String, CompactString)> = Vec::new();
    if let Some(map) = row.aliases {
        for (k, v) in map {
            if let Some(v) = nonempty(v) {
                aliases.push((k, v));
            }
        }
    }
    for (k, v) in [
        ("alias1", row.alias1),
        ("alias2", row.alias2),
        ("alias3", row.alias3),
        ("alias4", row.alias4),
    ] {
        if let Some(v) = nonempty(v)
            && !aliases.iter().any(|(n, _)| n == k)
        {
            aliases.push((k.to_owned(), v));
        }
    }
    aliases.sort_by_key(|(k, _)| {
        k.trim_start_matches("alias")
            .parse::<u32>()
            .unwrap_or(u32::MAX)
    });
    let mut phones: Vec<Phone> = row
        .phones
        .into_iter()
        .filter_map(|p| {
            let number = nonempty(p.number)?;
            let kind = match p.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("mobile") => PhoneKind::Mobile,
                Some("landline") => PhoneKind::Landline,
                _ => PhoneKind::Unknown,
            };
            Some(Phone {
                number,
                kind,
                extension: nonempty(p.extension),
            })
        })
        .collect();
    // A snapshot holds every user: no room left over in its lists (collecting from a filter
    // leaves room for four).
    phones.shrink_to_fit();
    let mut groups: Vec<SourceGroupId> = row
        .groups
        .into_iter()
        .filter_map(|g| nonempty(g.group_id).map(SourceGroupId::from))
        .collect();
    groups.shrink_to_fit();
    let custom: Attributes = row
        .custom_attributes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Null => None,
            other => Some((k, other.to_string())),
        })
        .collect();
    Ok(DirectoryUser {
        id: SourceUserId::from(id),
        username,
        email: nonempty(row.email),
        first_name: nonempty(row.firstname),
        last_name: nonempty(row.lastname),
        display_name: nonempty(row.realname),
        status,
        phones,
        aliases: aliases.into_iter().map(|(_, v)| v).collect(),
        custom,
        groups,
    })
}

/// Takes one page of user rows into `snapshot`; returns how many were unreadable.
pub(crate) fn take_users(rows: Vec<DuoUserRow>, snapshot: &mut SourceSnapshot) -> usize {
    let mut bad = 0;
    snapshot.users.reserve(rows.len());
    for row in rows {
        match map_user(row) {
            Ok(u) => snapshot.users.push(u),
            Err((id, problem, username)) => {
                bad += 1;
                warn!(user_id = id.as_deref().unwrap_or("?"), problem = %problem, "A Duo user is unreadable; its account is left as it is.");
                match id {
                    Some(id) => snapshot.unreadable.push(SourceUserId::from(id)),
                    // No id: which account is theirs cannot be told; the planner
                    // deactivates no account while there are any.
                    None => snapshot.unidentified.push(match username {
                        Some(u) => format!("a Duo user without user_id (username {u:?})"),
                        None => "a Duo user without user_id or username".to_owned(),
                    }),
                }
            }
        }
    }
    bad
}

/// Takes one page of group rows into `snapshot` (a group without an id or name is left out).
pub(crate) fn take_groups(rows: Vec<DuoGroupRow>, snapshot: &mut SourceSnapshot) {
    for row in rows {
        match (nonempty(row.group_id), nonempty(row.name)) {
            (Some(id), Some(name)) => snapshot.groups.push(DirectoryGroup {
                id: SourceGroupId::from(id),
                name,
                description: nonempty(row.desc),
            }),
            (id, _) => warn!(
                group_id = id.as_deref().unwrap_or("?"),
                "A Duo group without an id or name is left out."
            ),
        }
    }
}

/// Users and groups Duo listed twice (paging by offset while the directory changes can show a
/// record on two pages), each reported as a source problem: a user listed twice with the same
/// record is kept once; with different records both are set apart (`unreadable`: the account
/// is left as it is) since which one is true cannot be told. A group id listed twice keeps its
/// first listing.
pub(crate) fn set_apart_duplicates(snapshot: &mut SourceSnapshot) {
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    // Index of each duplicate's first record, and whether a listing differed from it.
    let mut twice: BTreeMap<usize, bool> = BTreeMap::new();
    let mut drop = vec![false; snapshot.users.len()];
    for (i, u) in snapshot.users.iter().enumerate() {
        match first.get(u.id.as_str()) {
            Some(&f) => {
                drop[i] = true;
                *twice.entry(f).or_default() |= snapshot.users[f] != *u;
            }
            None => {
                first.insert(u.id.as_str(), i);
            }
        }
    }
    let mut problems = Vec::new();
    let mut set_apart = Vec::new();
    for (&f, &differ) in &twice {
        let u = &snapshot.users[f];
        let message = if differ {
            drop[f] = true;
            set_apart.push(u.id.clone());
            "Duo listed this user id more than once with different records; all are set apart and the account is left as it is until Duo lists it once".to_owned()
        } else {
            "Duo listed this user more than once (the same record); it is read once".to_owned()
        };
        warn!(
            user_id = u.id.as_str(),
            username = u.username.as_str(),
            differ,
            "A Duo user id was listed more than once."
        );
        problems.push(SourceProblem {
            object: ObjectKind::User,
            source_id: u.id.as_str().to_owned(),
            name: u.username.to_string(),
            message,
        });
    }
    if !twice.is_empty() {
        let mut i = 0;
        snapshot.users.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
        snapshot.unreadable.extend(set_apart);
    }
    let mut groups: std::collections::HashMap<&str, &DirectoryGroup> =
        std::collections::HashMap::new();
    let mut reported: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut keep = vec![true; snapshot.groups.len()];
    for (i, g) in snapshot.groups.iter().enumerate() {
        match groups.get(g.id.as_str()) {
            Some(kept) => {
                keep[i] = false;
                if reported.insert(g.id.as_str()) {
                    warn!(
                        group_id = g.id.as_str(),
                        "A Duo group id was listed more than once."
                    );
                    problems.push(SourceProblem {
                        object: ObjectKind::Group,
                        source_id: g.id.as_str().to_owned(),
                        name: kept.name.to_string(),
                        message: format!(
                            "Duo listed this group id more than once (as {:?} and {:?}); the first listing is used",
                            kept.name, g.name
                        ),
                    });
                }
            }
            None => {
                groups.insert(g.id.as_str(), g);
            }
        }
    }
    if !reported.is_empty() {
        let mut i = 0;
        snapshot.groups.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
    snapshot.problems.extend(problems);
}

/// The application's user access: the groups allowed, or everyone when it names none.
pub(crate) fn sso_access(integration: &DuoIntegration) -> SsoAccess {
    let groups: Vec<SourceGroupId> = integration
        .groups_allowed
        .iter()
        .filter_map(|g| match g {
            serde_json::Value::String(s) => Some(SourceGroupId::from(s.as_str())),
            other => other
                .get("group_id")
                .and_then(|v| v.as_str())
                .map(SourceGroupId::from),
        })
        .collect();
    if groups.is_empty() {
        SsoAccess::AllUsers
    } else {
        SsoAccess::Groups(groups)
    }
}

impl Source for DuoSource {
    type Error = DirectoryError;

    async fn read(&self) -> Result<SourceSnapshot, DirectoryError> {
        let mut snapshot = SourceSnapshot::default();
        let limit = self.config.page_size.clamp(1, 300);
        let mut bad = 0usize;
        self.pages::<DuoUserRow>("/admin/v1/users", limit, "reading users", |rows| {
            bad += take_users(rows, &mut snapshot);
        })
        .await?;
        self.pages::<DuoGroupRow>("/admin/v1/groups", 100, "reading groups", |rows| {
            take_groups(rows, &mut snapshot);
        })
        .await?;
        set_apart_duplicates(&mut snapshot);
        snapshot.users.shrink_to_fit();
        snapshot.groups.shrink_to_fit();
        if let Some(ikey) = &self.config.sso_integration_key {
            let (integration, _): (DuoIntegration, Metadata) = self
                .get(
                    &format!("/admin/v1/integrations/{ikey}"),
                    &[],
                    "reading the application's user access",
                )
                .await?;
            snapshot.sso_access = Some(sso_access(&integration));
        }
        if snapshot.users.is_empty() && snapshot.unreadable.is_empty() && !self.config.allow_empty {
            return Err(DirectoryError::Empty);
        }
        info!(
            users = snapshot.users.len(),
            unreadable = bad,
            groups = snapshot.groups.len(),
            "Duo directory read."
        );
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn page(rows: serde_json::Value) -> Vec<DuoUserRow> {
        serde_json::from_value(rows).unwrap()
    }

    fn row(id: &str, username: &str, email: &str) -> serde_json::Value {
        serde_json::json!({"user_id": id, "username": username, "email": email,
                           "status": "active", "groups": [{"group_id": "DG1"}]})
    }

    #[test]
    fn every_field_of_a_duo_user_is_read_and_its_lists_keep_no_spare_room() {
        let rows = page(serde_json::json!([
            {"user_id": "DU1", "username": " ada ", "email": "ada@example.com",
             "firstname": "Ada", "lastname": "Lovelace", "realname": "Ada Lovelace",
             "status": "bypass",
             "phones": [{"number": "+1555", "type": "Mobile", "extension": "12"},
                        {"number": "", "type": "landline"},
                        {"number": "+1666", "type": "landline"}],
             "aliases": {"alias2": "al", "alias1": "ada.l"}, "alias3": "a3",
             "custom_attributes": {"team": "R&D", "level": 3, "none": null},
             "groups": [{"group_id": "DG1"}, {"group_id": ""}, {"group_id": "DG2"}]},
            {"user_id": "DU2", "username": "bob", "status": "not a status"},
            {"username": "cy", "status": "active"}
        ]));
        let mut snapshot = SourceSnapshot::default();
        assert_eq!(
            take_users(rows, &mut snapshot),
            2,
            "two rows are unreadable"
        );
        let u = &snapshot.users[0];
        assert_eq!(
            (u.id.as_str(), u.username.as_str(), u.email.as_deref()),
            ("DU1", "ada", Some("ada@example.com"))
        );
        assert_eq!(
            (
                u.first_name.as_deref(),
                u.last_name.as_deref(),
                u.display_name.as_deref()
            ),
            (Some("Ada"), Some("Lovelace"), Some("Ada Lovelace"))
        );
        assert_eq!(u.status, DirectoryStatus::Bypass);
        assert_eq!(
            u.phones,
            [
                Phone {
                    number: "+1555".into(),
                    kind: PhoneKind::Mobile,
                    extension: Some("12".into())
                },
                Phone {
                    number: "+1666".into(),
                    kind: PhoneKind::Landline,
                    extension: None
                }
            ]
        );
        assert_eq!(u.aliases, ["ada.l", "al", "a3"]);
        assert_eq!(u.custom.get("team"), Some("R&D"));
        assert_eq!(u.custom.get("level"), Some("3"));
        assert!(!u.custom.contains_key("none"));
        assert_eq!(
            u.groups,
            [SourceGroupId::from("DG1"), SourceGroupId::from("DG2")]
        );
        // The snapshot holds every user: its lists keep no room for more.
        assert_eq!(u.phones.capacity(), 2);
        assert_eq!(u.groups.capacity(), 2);
        // Bad records are still set apart: by id when they have one, else by what is known.
        assert_eq!(snapshot.unreadable, [SourceUserId::from("DU2")]);
        assert_eq!(snapshot.unidentified.len(), 1);
        assert!(snapshot.unidentified[0].contains("\"cy\""));
    }

    #[test]
    fn users_and_groups_listed_twice_across_pages_are_reported_per_object() {
        let mut snapshot = SourceSnapshot::default();
        // Page 1, then page 2 repeating DU2 unchanged and DU3 with another email.
        take_users(
            page(serde_json::json!([
                row("DU1", "ada", "ada@example.com"),
                row("DU2", "bob", "bob@example.com"),
                row("DU3", "cy", "cy@example.com")
            ])),
            &mut snapshot,
        );
        take_users(
            page(serde_json::json!([
                row("DU2", "bob", "bob@example.com"),
                row("DU3", "cy", "cy@other.example")
            ])),
            &mut snapshot,
        );
        let groups: Vec<DuoGroupRow> = serde_json::from_value(serde_json::json!([
            {"group_id": "DG1", "name": "Sales"},
            {"group_id": "DG1", "name": "Sales (renamed)"}
        ]))
        .unwrap();
        take_groups(groups, &mut snapshot);
        set_apart_duplicates(&mut snapshot);

        let ids: Vec<&str> = snapshot.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["DU1", "DU2"], "DU2 read once, DU3 set apart");
        assert_eq!(snapshot.unreadable, [SourceUserId::from("DU3")]);
        assert_eq!(snapshot.groups.len(), 1);
        assert_eq!(
            snapshot.groups[0].name, "Sales",
            "the first listing is used"
        );
        let reported: Vec<(ObjectKind, &str, &str)> = snapshot
            .problems
            .iter()
            .map(|p| (p.object, p.source_id.as_str(), p.name.as_str()))
            .collect();
        assert_eq!(
            reported,
            [
                (ObjectKind::User, "DU2", "bob"),
                (ObjectKind::User, "DU3", "cy"),
                (ObjectKind::Group, "DG1", "Sales"),
            ]
        );
        assert!(snapshot.problems[0].message.contains("read once"));
        assert!(snapshot.problems[1].message.contains("set apart"));
        assert!(snapshot.problems[2].message.contains("Sales (renamed)"));
    }
}
