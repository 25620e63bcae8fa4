//! Sending one SCIM request: the shared rate limiter and concurrency cap, the token, retries
//! with backoff and jitter honouring `Retry-After`, one token refresh on 401, and the errors.

use crate::config::{Dialect, ScimConfig};
use crate::constants::{SCIM_JSON, SFORCE_LIMIT_INFO};
use crate::error::ScimError;
use crate::pace::Pacer;
use crate::token::{Token, TokenSource, http_failure};
use reqwest::{Method, StatusCode, header};
use scimsync_core::retry::{RetryPolicy, Retryable as _, Waits};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::field::Empty;
use tracing::{Instrument as _, Span, debug, info_span, warn};
use url::Url;

tokio::task_local! {
    /// The write requests sent for the operation being applied ([`counting_writes`]).
    static WRITES: std::sync::Arc<std::sync::atomic::AtomicU32>;
}

/// Runs `work`, adding every write request it sends (POST, PATCH, PUT, DELETE; each attempt)
/// to `writes`.
pub(crate) async fn counting_writes<F: std::future::Future>(
    writes: std::sync::Arc<std::sync::atomic::AtomicU32>,
    work: F,
) -> F::Output {
    WRITES.scope(writes, work).await
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub requests: u64,
    /// Requests sent, by HTTP method ("GET", "PATCH", ...).
    pub requests_by_method: std::collections::BTreeMap<String, u64>,
    pub retries: u64,
    pub rate_limited: u64,
    pub tokens_fetched: u64,
    /// The last `Sforce-Limit-Info` (used, limit).
    pub api_usage: Option<(u64, u64)>,
    /// The pace requests leave at now, per second: the configured rate, or less for a while
    /// after the target rejected requests for rate.
    pub pace_per_s: u32,
}

pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub base: Url,
    pub dialect: Dialect,
    pub tokens: TokenSource,
    /// Spaces the requests evenly at the configured rate, slower after rejections for rate.
    pacer: Pacer,
    permits: Semaphore,
    timeout: Duration,
    /// The retry policy (core's, one for every adapter).
    retry: RetryPolicy,
    /// Where the retry waits go (tokio's sleep; a recorder in tests).
    pub waits: Waits,
    max_body_bytes: usize,
    requests: AtomicU64,
    by_method: Mutex<std::collections::BTreeMap<String, u64>>,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    api_usage: Mutex<Option<(u64, u64)>>,
}

/// A response: status, body (JSON or null), ETag.
#[derive(Debug)]
pub(crate) struct Answer {
    pub body: Value,
    pub etag: Option<String>,
}

impl Transport {
    pub fn new(config: ScimConfig) -> Result<Self, ScimError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            reqwest::Client::builder()
                .timeout(config.timeout)
                .connect_timeout(config.timeout.min(Duration::from_secs(10)))
                .user_agent(concat!("scimsync/", env!("CARGO_PKG_VERSION")))
        };
        let built = |r: reqwest::Result<reqwest::Client>| {
            r.map_err(|e| {
                ScimError::Config(format!(
                    "cannot build the HTTP client: {}",
                    http_failure(&e)
                ))
            })
        };
        // SCIM calls follow redirects within the same origin only; one to another host stops
        // and is reported, so the bearer token and the records never leave the host.
        let http = built(
            builder()
                .redirect(reqwest::redirect::Policy::custom(|attempt| {
                    let same_origin = attempt
                        .previous()
                        .first()
                        .is_some_and(|first| first.origin() == attempt.url().origin());
                    if same_origin && attempt.previous().len() < 5 {
                        attempt.follow()
                    } else {
                        attempt.stop()
                    }
                }))
                .build(),
        )?;
        // The token endpoint is never redirected: the client secret goes to token_url only.
        let token_http = built(
            builder()
                .redirect(reqwest::redirect::Policy::none())
                .build(),
        )?;
        let mut base = config.base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            tokens: TokenSource::new(config.auth, config.dialect, token_http),
            max_body_bytes: config.max_body_bytes,
            http,
            base,
            dialect: config.dialect,
            pacer: Pacer::new(config.requests_per_second),
            permits: Semaphore::new(config.max_concurrency.max(1)),
            timeout: config.timeout,
            retry: RetryPolicy {
                max_attempts: config.max_attempts.max(1),
                base: config.backoff_base,
                max: config.backoff_max,
            },
            waits: Waits::default(),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            by_method: Mutex::new(std::collections::BTreeMap::new()),
            api_usage: Mutex::new(None),
        })
    }

    pub fn stats(&self) -> ClientStats {
        ClientStats {
            requests: self.requests.load(Ordering::Relaxed),
            requests_by_method: self
                .by_method
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            tokens_fetched: self.tokens.fetched.load(Ordering::Relaxed),
            api_usage: *self
                .api_usage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            pace_per_s: self.pacer.rate().round() as u32,
        }
    }

    pub fn url(&self, path: &str) -> Result<Url, ScimError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ScimError::Config(format!("bad SCIM path {path:?}: {e}")))
    }

    /// Sends a request with retries; `what` names the operation in errors ("creating user x").
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        if_match: Option<&str>,
        what: &str,
    ) -> Result<Answer, ScimError> {
        self.send_tries(method, url, body, if_match, what, self.retry.max_attempts)
            .await
    }

    /// [`Transport::send`] with at most `max_attempts` tries (1: no retry, for probes whose
    /// failure has a cheaper answer than waiting).
    pub async fn send_tries(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        if_match: Option<&str>,
        what: &str,
        max_attempts: u32,
    ) -> Result<Answer, ScimError> {
        // One span a request, all its tries: the method, the path (never the query, which
        // may hold a filter with a user's name), the try and the status last answered.
        let span = info_span!(
            "request",
            method = %method,
            path = %url.path(),
            attempt = Empty,
            status = Empty
        );
        self.send_spanned(method, url, body, if_match, what, max_attempts)
            .instrument(span)
            .await
    }

    async fn send_spanned(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        if_match: Option<&str>,
        what: &str,
        max_attempts: u32,
    ) -> Result<Answer, ScimError> {
        let policy = RetryPolicy {
            max_attempts: max_attempts.clamp(1, self.retry.max_attempts),
            ..self.retry
        };
        // The token and the refreshes it took last from one try to the next.
        let held = tokio::sync::Mutex::new((self.token(None, what).await?, 0u32));
        let tries = std::sync::atomic::AtomicU32::new(0);
        let tried = (|| async {
            let mut held = held.lock().await;
            Span::current().record("attempt", tries.fetch_add(1, Ordering::Relaxed) + 1);
            let (token, refreshes) = &mut *held;
            loop {
                let err = match self
                    .once(&method, &url, body, if_match, &token.value, what)
                    .await
                {
                    Ok(a) => return Ok(a),
                    Err(Failure::Error(e)) => return Err(Tried::Failed(e)),
                    Err(Failure::Unauthorized { detail, sent_at }) => {
                        // Judged by age, not by order: a token obtained moments before the
                        // request and refused (after one new token already) is a permission
                        // problem; an older one has likely expired (during a backoff, say), so
                        // a new one is fetched, a bounded number of times, within the same try.
                        let age = sent_at.saturating_duration_since(token.obtained);
                        if age <= FRESH_TOKEN && *refreshes > 0 {
                            ScimError::Unauthorized {
                                detail,
                                dialect: self.dialect,
                            }
                        } else if *refreshes >= MAX_TOKEN_REFRESHES {
                            ScimError::TokensExpireTooFast {
                                lifetime: age,
                                refreshes: *refreshes,
                            }
                        } else {
                            debug!(
                                what,
                                age_ms = age.as_millis() as u64,
                                "401 on a token obtained earlier: fetching a new one."
                            );
                            *token = self
                                .token(Some(token.generation), what)
                                .await
                                .map_err(Tried::Final)?;
                            *refreshes += 1;
                            continue;
                        }
                    }
                };
                return Err(Tried::Final(err));
            }
        })
        .retry(policy.backoff())
        .sleep(self.waits.sleeper(tokio::time::sleep))
        .when(|tried| matches!(tried, Tried::Failed(e) if e.is_retryable()))
        .adjust(|tried, own| {
            let err = tried.error();
            if self.too_long(err, what) {
                return None;
            }
            policy.wait(own, err.retry_after())
        })
        .notify(|tried, wait| {
            self.retries.fetch_add(1, Ordering::Relaxed);
            warn!(what, wait_ms = wait.as_millis() as u64, error = %tried.error(), "Retrying.");
        })
        .await;
        tried.map_err(Tried::into_error)
    }

    /// Makes sure a token is at hand (fetched with the usual retries), so that a following
    /// single-try probe fails only on its own request.
    pub async fn ensure_token(&self, what: &str) -> Result<(), ScimError> {
        self.token(None, what).await.map(|_| ())
    }

    /// A `Retry-After` longer than `backoff_max`: the request is not retried (the target is
    /// not waited on for minutes); the next run tries again. Says so in the log.
    fn too_long(&self, err: &ScimError, what: &str) -> bool {
        let asked = err.retry_after();
        if !self.retry.too_long(asked) {
            return false;
        }
        warn!(
            what,
            retry_after_s = asked.unwrap_or_default().as_secs(),
            backoff_max_s = self.retry.max.as_secs(),
            "The target asks to wait longer than backoff_max: not waiting; the request fails and the next run tries it again."
        );
        true
    }

    /// The shared token (or a new one replacing `stale`), retrying passing failures of the
    /// token endpoint (429, 5xx, timeouts, connection errors) like those of SCIM calls.
    async fn token(&self, stale: Option<u64>, what: &str) -> Result<Token, ScimError> {
        let mut attempt = 0u32;
        (|| async {
            match stale {
                None => self.tokens.get().await,
                Some(generation) => self.tokens.refresh(generation).await,
            }
        })
        .retry(self.retry.backoff())
        .sleep(self.waits.sleeper(tokio::time::sleep))
        .when(ScimError::is_retryable)
        .adjust(|err, own| {
            if self.too_long(err, what) {
                return None;
            }
            self.retry.wait(own, err.retry_after())
        })
        .notify(|err, wait| {
            attempt += 1;
            self.retries.fetch_add(1, Ordering::Relaxed);
            if matches!(err, ScimError::RateLimited { .. }) {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            warn!(what, attempt, wait_ms = wait.as_millis() as u64, error = %err, "Retrying the token request.");
        })
        .await
    }

    /// A request sent at `sent_at` was rejected for rate: counted, and the pace slowed.
    fn rate_limited_at(&self, sent_at: tokio::time::Instant, what: &str) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        if self.pacer.rejected(sent_at, tokio::time::Instant::now()) {
            warn!(
                what,
                pace_per_s = self.pacer.rate().round() as u32,
                "The target rejected a request for rate: pacing requests slower for a while."
            );
        }
    }

    async fn once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        if_match: Option<&str>,
        token: &secrecy::SecretString,
        what: &str,
    ) -> Result<Answer, Failure> {
        // The permit first, then the pace: a request leaves at its slot, not some time after
        // it (waiting for a permit), which would bunch requests up at the target.
        let _permit =
            self.permits.acquire().await.map_err(|_| {
                Failure::Error(ScimError::Config("the client is shutting down".into()))
            })?;
        self.pacer.ready().await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        if method != Method::GET {
            // The operation's count of writes sent, when the engine asked for one.
            let _ = WRITES.try_with(|w| w.fetch_add(1, Ordering::Relaxed));
        }
        *self
            .by_method
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(method.as_str().to_owned())
            .or_default() += 1;
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose_secret())
            .header(header::ACCEPT, format!("{SCIM_JSON}, application/json"))
            .timeout(self.timeout);
        if let Some(b) = body {
            req = req
                .header(header::CONTENT_TYPE, SCIM_JSON)
                .body(serde_json::to_vec(b).unwrap_or_default());
        }
        if let Some(tag) = if_match {
            req = req.header(header::IF_MATCH, tag);
        }
        let sent_at = tokio::time::Instant::now() + self.waits.skipped();
        let resp = req.send().await.map_err(|e| {
            Failure::Error(ScimError::Transport {
                what: what.to_owned(),
                message: http_failure(&e),
            })
        })?;
        let status = resp.status();
        Span::current().record("status", status.as_u16());
        let headers = resp.headers().clone();
        if status.is_redirection() {
            let location = headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            return Err(Failure::Error(ScimError::Redirect {
                what: what.to_owned(),
                status: status.as_u16(),
                to_host: redirect_host(resp.url(), location),
            }));
        }
        if let Some(info) = headers.get(SFORCE_LIMIT_INFO).and_then(|v| v.to_str().ok())
            && let Some(usage) = parse_limit_info(info)
        {
            *self
                .api_usage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(usage);
        }
        let answered = resp
            .url()
            .as_str()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let bytes = read_capped(resp, self.max_body_bytes).await.map_err(|e| {
            Failure::Error(match e {
                CapError::Read(e) => ScimError::Transport {
                    what: what.to_owned(),
                    message: http_failure(&e),
                },
                CapError::TooLarge(seen) => ScimError::TooLarge {
                    what: what.to_owned(),
                    url: answered,
                    seen,
                    max: self.max_body_bytes as u64,
                },
            })
        })?;
        let json = decode_body(status, &bytes, what).map_err(Failure::Error)?;
        if status.is_success() {
            let etag = headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Ok(Answer { body: json, etag });
        }
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let (code, detail) = error_summary(&json);
        Err(match status {
            StatusCode::UNAUTHORIZED => Failure::Unauthorized { detail, sent_at },
            StatusCode::FORBIDDEN if code.as_deref() == Some("REQUEST_LIMIT_EXCEEDED") => {
                self.rate_limited_at(sent_at, what);
                Failure::Error(ScimError::RequestLimit {
                    detail,
                    retry_after,
                })
            }
            StatusCode::FORBIDDEN => Failure::Error(ScimError::Forbidden {
                detail,
                dialect: self.dialect,
            }),
            StatusCode::TOO_MANY_REQUESTS => {
                self.rate_limited_at(sent_at, what);
                Failure::Error(ScimError::RateLimited { retry_after })
            }
            s if s.is_server_error() => {
                // Some services report their rate limit as a 5xx with REQUEST_LIMIT_EXCEEDED.
                Failure::Error(ScimError::Server {
                    status: s.as_u16(),
                    detail,
                    retry_after,
                })
            }
            s => Failure::Error(ScimError::Refused {
                what: what.to_owned(),
                status: s.as_u16(),
                code,
                detail,
            }),
        })
    }
}

/// A try's failure: one worth retrying if passing, or one that ends the request (the token
/// could not be had, the token is refused).
enum Tried {
    Failed(ScimError),
    Final(ScimError),
}

impl Tried {
    fn error(&self) -> &ScimError {
        match self {
            Tried::Failed(e) | Tried::Final(e) => e,
        }
    }

    fn into_error(self) -> ScimError {
        match self {
            Tried::Failed(e) | Tried::Final(e) => e,
        }
    }
}

enum Failure {
    /// A 401, with when the request was sent (to judge the token's age).
    Unauthorized {
        detail: String,
        sent_at: tokio::time::Instant,
    },
    Error(ScimError),
}

/// A token this young that is refused is taken as a permission problem, not an expiry.
const FRESH_TOKEN: Duration = Duration::from_secs(2);
/// New tokens fetched for one request after 401s on older ones, before giving up.
const MAX_TOKEN_REFRESHES: u32 = 3;

/// Why a body was not read.
pub(crate) enum CapError {
    Read(reqwest::Error),
    /// Larger than allowed: the bytes seen (declared or read) so far.
    TooLarge(u64),
}

/// Reads a body of at most `max` bytes: refused by its Content-Length first, else read in
/// chunks and stopped as soon as it passes `max`, before it fills memory.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, CapError> {
    if let Some(length) = resp.content_length()
        && length > max as u64
    {
        return Err(CapError::TooLarge(length));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(CapError::Read)? {
        if body.len() + chunk.len() > max {
            return Err(CapError::TooLarge((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The host a redirect points to (`Location` resolved against `from`), for messages.
pub(crate) fn redirect_host(from: &Url, location: &str) -> String {
    match from.join(location) {
        Ok(u) => u.host_str().unwrap_or("?").to_owned(),
        Err(_) => "an unreadable Location".to_owned(),
    }
}

/// An answer's body as JSON: empty is `null`; a success that is not JSON is an error, and a
/// failure's text that is not JSON is kept summarised ([`summarise_text`]) as a JSON string.
pub(crate) fn decode_body(
    status: StatusCode,
    bytes: &[u8],
    what: &str,
) -> Result<Value, ScimError> {
    let text = String::from_utf8_lossy(bytes);
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    match serde_json::from_str(&text) {
        Ok(v) => Ok(v),
        Err(e) if status.is_success() => Err(ScimError::InvalidResponse {
            what: what.to_owned(),
            message: format!("the body is not JSON: {e}"),
        }),
        Err(_) => Ok(Value::String(summarise_text(&text))),
    }
}

/// The code and the one-line detail (at most [`DETAIL_MAX`] characters) of an error answer.
pub(crate) fn error_summary(body: &Value) -> (Option<String>, String) {
    let (code, detail) = error_detail(body);
    (code, one_line(&detail, DETAIL_MAX))
}

/// `(code, detail)` from a SCIM error body: Salesforce's `"CODE:message;"` detail (numeric
/// status, no scimType), RFC 7644's `detail` and `scimType`, or Salesforce REST's array.
pub(crate) fn error_detail(body: &Value) -> (Option<String>, String) {
    if let Some(detail) = body.get("detail").and_then(Value::as_str) {
        if let Some((code, message)) = detail.split_once(':')
            && !code.is_empty()
            && code.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            return (
                Some(code.to_owned()),
                format!("{code}: {}", message.trim_end_matches(';')),
            );
        }
        let code = body
            .get("scimType")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return (code, detail.to_owned());
    }
    if let Some(first) = body.as_array().and_then(|a| a.first())
        && let (Some(code), Some(message)) = (
            first.get("errorCode").and_then(Value::as_str),
            first.get("message").and_then(Value::as_str),
        )
    {
        return (Some(code.to_owned()), format!("{code}: {message}"));
    }
    match body {
        Value::Null => (None, "no detail".to_owned()),
        Value::String(s) => (None, s.clone()),
        other => (None, other.to_string().chars().take(300).collect()),
    }
}

/// The longest error detail kept, in characters (logs, the activity log and `runs` show it).
pub(crate) const DETAIL_MAX: usize = 200;

/// `text` on one line (whitespace runs collapsed) and at most `max` characters, cut with `…`.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A body that is not JSON, summarised: an HTML page by its `<title>` (else its text without
/// tags), anything else as its text; on one line, at most [`DETAIL_MAX`] characters.
pub(crate) fn summarise_text(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let html = lower.contains("<html") || lower.contains("<!doctype") || lower.contains("<title");
    if !html {
        return one_line(text, DETAIL_MAX);
    }
    let inner = |tag: &str| -> Option<String> {
        let open = lower.find(&format!("<{tag}"))?;
        let start = open + lower[open..].find('>')? + 1;
        let end = start + lower[start..].find(&format!("</{tag}"))?;
        let t = one_line(&strip_tags(&text[start..end]), DETAIL_MAX);
        (!t.is_empty()).then_some(t)
    };
    let summary = inner("title")
        .or_else(|| inner("h1"))
        .unwrap_or_else(|| strip_tags(text));
    one_line(&format!("HTML page: {summary}"), DETAIL_MAX)
}

/// The text of an HTML fragment: tags dropped, a few entities decoded.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// `api-usage=10018/100000` (possibly followed by `; api-bursts=…`).
pub(crate) fn parse_limit_info(text: &str) -> Option<(u64, u64)> {
    let usage = text
        .split(';')
        .find_map(|p| p.trim().strip_prefix("api-usage="))?;
    let (used, limit) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
}

/// `Retry-After`: seconds, or an HTTP date.
pub(crate) fn parse_retry_after(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(text.trim()).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_details_in_every_shape() {
        let sf = json!({"detail": "REQUIRED_FIELD_MISSING:user_must_have_one_entitlement_which_must_be_a_profileid;", "status": 409});
        assert_eq!(
            error_detail(&sf),
            (
                Some("REQUIRED_FIELD_MISSING".into()),
                "REQUIRED_FIELD_MISSING: user_must_have_one_entitlement_which_must_be_a_profileid"
                    .into()
            )
        );
        let rfc = json!({"detail": "userName taken", "status": "409", "scimType": "uniqueness"});
        assert_eq!(
            error_detail(&rfc),
            (Some("uniqueness".into()), "userName taken".into())
        );
        let rest =
            json!([{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]);
        assert_eq!(error_detail(&rest).0.as_deref(), Some("INVALID_SESSION_ID"));
    }

    #[test]
    fn html_and_long_bodies_become_one_short_line() {
        let page = "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>\n";
        assert_eq!(summarise_text(page), "HTML page: 500 Internal Server Error");
        let untitled = "<html><body>\n<h1>Bad   Gateway</h1></body></html>";
        assert_eq!(summarise_text(untitled), "HTML page: Bad Gateway");
        let long = "x ".repeat(400);
        let line = summarise_text(&long);
        assert!(
            line.chars().count() <= DETAIL_MAX && !line.contains('\n'),
            "{line}"
        );
        assert!(line.ends_with('…'));
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
    }

    #[test]
    fn limit_info_and_retry_after() {
        assert_eq!(
            parse_limit_info("api-usage=10018/100000"),
            Some((10018, 100000))
        );
        assert_eq!(
            parse_limit_info("api-usage=1/750; api-bursts=1/750"),
            Some((1, 750))
        );
        assert_eq!(parse_limit_info("nonsense"), None);
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
