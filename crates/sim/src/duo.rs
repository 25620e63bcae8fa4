//! An emulator of Duo's Admin API (users, groups, integrations; read side) on 127.0.0.1.
//!
//! It serves a [`DuoDataset`] with Duo's envelopes and paging (fact sheet
//! `shared/docs/duo-admin-api.md` §2–§7), verifies the signature of every request (v2 with
//! HMAC-SHA1 or HMAC-SHA512, and v5), refuses a stale `Date`, records every request, and has
//! fault knobs ([`DuoKnobs`]) and live dataset edits ([`DatasetHandle`]).
//!
//! Error codes (all HTTP 401 unless said): 40101 unknown integration key, 40102 missing or
//! malformed `Authorization`, 40103 bad signature (Duo's, confirmed), 40105 missing or
//! unparsable `Date`, 40106 `Date` further than `max_clock_skew` from the emulator's clock;
//! 40003 (HTTP 400) a bad `limit`/`offset`/id list; 40401 (404) unknown object or path; 40501
//! (405) a method other than GET. Only 40103, 40401, 42901 and 50001 are Duo's confirmed
//! codes; the rest, and the 300 s default skew, are this emulator's choices (unconfirmed).
//!
//! The emulator reads; it does not implement Duo's POST/DELETE writes (tests change data
//! through [`DuoSim::dataset`] instead).
//!
//! ```no_run
//! use scimsync_sim::duo::{DuoSim, DuoSimConfig};
//! use scimsync_sim::generator::{generate, sample};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let sim = DuoSim::start(DuoSimConfig::demo(), sample()).await?;
//! // Point a reader at sim.base_url(), signing as sim.host() with sim.integration_key()
//! // and sim.secret_key(). Then make its life hard:
//! sim.knobs().short_pages(7).rate_limit_next(2).fail_next(1, 503);
//! sim.knobs().edit_after_users_page(1, |d| d.users.swap(0, 1));
//! let bob = sim.dataset().snapshot().users[1].user_id.clone();
//! sim.dataset().disable_user(&bob).expect("bob exists");
//! assert_eq!(sim.count("/admin/v1/users"), 0);
//!
//! // A large directory for benchmarks: 100,000 users in 2,000 groups.
//! let big = DuoSim::start(DuoSimConfig::demo(), generate(100_000, 2_000, 1)).await?;
//! # drop(big);
//! # Ok(())
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::generator::DuoDataset;

mod directory;
mod knobs;
mod render;
mod request_log;
mod signing;

pub use directory::{DatasetHandle, EditDatasetError};
pub use knobs::DuoKnobs;
pub use request_log::LoggedRequest;
pub use signing::SignatureScheme;

use directory::Directory;
use knobs::{KnobState, PagedList};
use signing::{AuthFailure, SignedRequest};

/// How a [`DuoSim`] runs.
#[derive(Clone)]
pub struct DuoSimConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The Admin API integration key clients sign with (`DI` + 18 characters).
    pub integration_key: String,
    /// The secret key (never logged or shown by `Debug`).
    pub secret_key: String,
    /// The host name clients sign, when it differs from the `Host` header they send (as
    /// behind a proxy). `None`: the `Host` header, i.e. [`DuoSim::host`].
    pub api_host: Option<String>,
    /// Largest accepted distance between the request's `Date` and the emulator's clock.
    pub max_clock_skew: Duration,
}

impl std::fmt::Debug for DuoSimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoSimConfig")
            .field("port", &self.port)
            .field("integration_key", &self.integration_key)
            .field("secret_key", &"[redacted]")
            .field("api_host", &self.api_host)
            .field("max_clock_skew", &self.max_clock_skew)
            .finish()
    }
}

impl DuoSimConfig {
    /// A free port, fixed demo credentials, 300 s clock skew.
    pub fn demo() -> Self {
        Self {
            port: 0,
            integration_key: "DISCIMSYNCDEMO000001".to_owned(),
            secret_key: "scimsyncDemoSecretKeyNotARealDuoKey00001".to_owned(),
            api_host: None,
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

impl Default for DuoSimConfig {
    fn default() -> Self {
        Self::demo()
    }
}

/// State shared by the server task and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    config: DuoSimConfig,
    directory: RwLock<Directory>,
    knobs: Mutex<KnobState>,
    log: Mutex<Vec<LoggedRequest>>,
}

impl Shared {
    // A panic while holding one of these locks cannot leave the data half-edited in a way
    // that matters to an emulator, so poisoning is ignored.
    pub(crate) fn read_directory(&self) -> RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_directory(&self) -> RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn knobs(&self) -> MutexGuard<'_, KnobState> {
        self.knobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self) -> MutexGuard<'_, Vec<LoggedRequest>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running Duo Admin API emulator. Stops when dropped.
#[derive(Debug)]
pub struct DuoSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for DuoSim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl DuoSim {
    /// Binds 127.0.0.1:`config.port` and serves `dataset` until dropped.
    pub async fn start(config: DuoSimConfig, dataset: DuoDataset) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            directory: RwLock::new(Directory::new(dataset)),
            knobs: Mutex::new(KnobState::default()),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "Duo emulator stopped serving.");
            }
        });
        tracing::debug!(%addr, "Duo emulator listening.");
        Ok(Self {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The host clients must sign: `127.0.0.1:PORT` (what they send as `Host`), or the
    /// configured `api_host`.
    pub fn host(&self) -> String {
        self.shared
            .config
            .api_host
            .clone()
            .unwrap_or_else(|| self.addr.to_string())
    }

    pub fn integration_key(&self) -> &str {
        &self.shared.config.integration_key
    }

    pub fn secret_key(&self) -> &str {
        &self.shared.config.secret_key
    }

    /// Fault knobs.
    pub fn knobs(&self) -> DuoKnobs {
        DuoKnobs {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Live dataset edits.
    pub fn dataset(&self) -> DatasetHandle {
        DatasetHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Every request answered so far, oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.log().clone()
    }

    /// How many requests were made to exactly this path (any method, any status).
    pub fn count(&self, path: &str) -> usize {
        self.shared.log().iter().filter(|r| r.path == path).count()
    }

    /// Forgets the request log.
    pub fn clear_request_log(&self) {
        self.shared.log().clear();
    }
}

/// A JSON answer with a status.
struct Answer {
    status: StatusCode,
    /// The scheme the request was signed with, once verified.
    signature: Option<SignatureScheme>,
    /// Serialised JSON.
    body: String,
}

impl Answer {
    fn ok(body: String) -> Self {
        Self {
            status: StatusCode::OK,
            signature: None,
            body,
        }
    }

    fn fail(status: StatusCode, code: u32, message: &str, detail: Option<&str>) -> Self {
        Self {
            status,
            signature: None,
            body: render::fail(code, message, detail),
        }
    }

    fn not_found(detail: &str) -> Self {
        Self::fail(
            StatusCode::NOT_FOUND,
            40401,
            "Resource not found",
            Some(detail),
        )
    }

    fn bad_param(name: &str) -> Self {
        Self::fail(
            StatusCode::BAD_REQUEST,
            40003,
            "Invalid request parameters",
            Some(name),
        )
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = shared.knobs().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let answer = answer(&shared, &method, &path, &query, &headers, &body);
    let status = answer.status;
    tracing::debug!(%method, path, status = status.as_u16(), "Duo emulator answered.");
    shared.log().push(LoggedRequest {
        method: method.to_string(),
        path,
        query,
        status: status.as_u16(),
        signature: answer.signature,
        at: SystemTime::now(),
    });
    let mut response = (status, answer.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json_body = content_type.starts_with("application/json");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        params.extend(url::form_urlencoded::parse(body).into_owned());
    }
    let scheme = match authenticate(shared, method, path, &params, headers, body, json_body) {
        Ok(scheme) => scheme,
        Err(failure) => {
            tracing::debug!(
                path,
                code = failure.code(),
                "Duo emulator refused credentials."
            );
            return Answer::fail(
                StatusCode::UNAUTHORIZED,
                failure.code(),
                failure.message(),
                None,
            );
        }
    };
    Answer {
        signature: Some(scheme),
        ..served(shared, method, path, &params)
    }
}

/// The answer to an authenticated request: a knob's fault or the resource.
fn served(shared: &Shared, method: &Method, path: &str, params: &[(String, String)]) -> Answer {
    {
        let mut knobs = shared.knobs();
        if knobs.rate_limited > 0 {
            knobs.rate_limited -= 1;
            return Answer::fail(
                StatusCode::TOO_MANY_REQUESTS,
                42901,
                "Too Many Requests",
                None,
            );
        }
        if knobs.failing > 0 {
            knobs.failing -= 1;
            let status = StatusCode::from_u16(knobs.fail_status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
                "Unknown internal server error"
            } else {
                status.canonical_reason().unwrap_or("Server error")
            };
            return Answer::fail(status, u32::from(status.as_u16()) * 100 + 1, message, None);
        }
    }
    if method != Method::GET {
        return Answer::fail(
            StatusCode::METHOD_NOT_ALLOWED,
            40501,
            "Method not allowed",
            Some("this emulator serves GET only"),
        );
    }
    route(shared, path, params)
}

fn authenticate(
    shared: &Shared,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
    json_body: bool,
) -> Result<SignatureScheme, AuthFailure> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthFailure::MalformedAuthorization)?;
    let (ikey, signature) = signing::parse_authorization(authorization)?;
    if ikey != shared.config.integration_key {
        return Err(AuthFailure::UnknownIntegrationKey);
    }
    let date = headers.get(header::DATE).and_then(|v| v.to_str().ok());
    signing::check_date(date, SystemTime::now(), shared.config.max_clock_skew)?;
    let date = date.unwrap_or_default();
    let host = match &shared.config.api_host {
        Some(host) => host.as_str(),
        None => headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    };
    let x_duo_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-duo-"))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let request = SignedRequest {
        method: method.as_str(),
        host,
        path,
        params,
        body,
        x_duo_headers: &x_duo_headers,
        json_body,
    };
    signing::matching_scheme(&shared.config.secret_key, date, &request, &signature)
        .ok_or(AuthFailure::BadSignature)
}

/// `limit` and `offset` of a list call, checked against the endpoint's default and maximum.
struct Paging {
    limit: usize,
    offset: usize,
}

impl Paging {
    fn parse(params: &[(String, String)], default: usize, max: usize) -> Result<Self, Answer> {
        let number = |name: &str| -> Result<Option<usize>, Answer> {
            match params.iter().find(|(k, _)| k == name) {
                None => Ok(None),
                Some((_, v)) => v
                    .trim()
                    .parse::<usize>()
                    .map(Some)
                    .map_err(|_| Answer::bad_param(name)),
            }
        };
        let limit = number("limit")?.unwrap_or(default);
        let offset = number("offset")?.unwrap_or(0);
        Ok(Self {
            limit: limit.clamp(1, max),
            offset,
        })
    }

    /// Rows to serve from a list of `total`, honouring the short-page knob; and the next
    /// offset when rows remain.
    fn window(
        &self,
        total: usize,
        short_page: Option<usize>,
    ) -> (std::ops::Range<usize>, Option<usize>) {
        let rows = short_page.map_or(self.limit, |cap| self.limit.min(cap));
        let start = self.offset.min(total);
        let end = start.saturating_add(rows).min(total);
        (start..end, (end < total).then_some(end))
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn route(shared: &Shared, path: &str, params: &[(String, String)]) -> Answer {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let result = match segments.as_slice() {
        ["admin", "v1", "users"] => list_users(shared, params),
        ["admin", "v1", "users", id] => {
            let directory = shared.read_directory();
            match directory.user(id) {
                Some(user) => Ok(Answer::ok(render::ok(render::user(user, &directory)))),
                None => Err(Answer::not_found("user_id")),
            }
        }
        ["admin", "v1", "users", id, "groups"] => user_groups(shared, id, params),
        ["admin", "v1", "users", id, "phones"] => user_phones(shared, id, params),
        ["admin", "v1", "groups"] => list_groups(shared, params),
        ["admin", "v1" | "v2", "groups", id] => {
            let directory = shared.read_directory();
            match directory.group(id) {
                Some(group) => Ok(Answer::ok(render::ok(render::group(group)))),
                None => Err(Answer::not_found("group_id")),
            }
        }
        ["admin", "v2", "groups", id, "users"] => group_users(shared, id, params),
        ["admin", "v1", "integrations", ikey] => {
            let directory = shared.read_directory();
            match directory
                .data
                .integrations
                .iter()
                .find(|i| i.integration_key == *ikey)
            {
                Some(integration) => Ok(Answer::ok(render::ok(render::integration(integration)))),
                None => Err(Answer::not_found("integration_key")),
            }
        }
        _ => Err(Answer::not_found(path)),
    };
    result.unwrap_or_else(|answer| answer)
}

/// Parses a JSON list parameter (`username_list`, `user_id_list`, `group_id_list`).
fn json_list(params: &[(String, String)], name: &str) -> Result<Option<Vec<String>>, Answer> {
    param(params, name)
        .map(|v| serde_json::from_str::<Vec<String>>(v).map_err(|_| Answer::bad_param(name)))
        .transpose()
}

fn list_users(shared: &Shared, params: &[(String, String)]) -> Result<Answer, Answer> {
    let paging = Paging::parse(params, 100, 300)?;
    let short_page = shared.knobs().short_page;
    let username = param(params, "username");
    let email = param(params, "email");
    let usernames = json_list(params, "username_list")?;
    let user_ids = json_list(params, "user_id_list")?;
    let filtered =
        username.is_some() || email.is_some() || usernames.is_some() || user_ids.is_some();
    let body = {
        let directory = shared.read_directory();
        let users = &directory.data.users;
        if filtered {
            let matches: Vec<usize> = users
                .iter()
                .enumerate()
                .filter(|(_, u)| {
                    let known_as =
                        |name: &str| u.username == name || u.aliases.values().any(|a| a == name);
                    username.is_none_or(known_as)
                        && email.is_none_or(|e| u.email.eq_ignore_ascii_case(e))
                        && usernames
                            .as_ref()
                            .is_none_or(|names| names.iter().any(|n| known_as(n)))
                        && user_ids.as_ref().is_none_or(|ids| ids.contains(&u.user_id))
                })
                .map(|(i, _)| i)
                .collect();
            let (range, next) = paging.window(matches.len(), short_page);
            let rows = matches[range]
                .iter()
                .map(|&i| render::user(&users[i], &directory))
                .collect();
            render::paged(rows, matches.len(), paging.offset, paging.limit, next)
        } else {
            let (range, next) = paging.window(users.len(), short_page);
            let rows = users[range]
                .iter()
                .map(|u| render::user(u, &directory))
                .collect();
            render::paged(rows, users.len(), paging.offset, paging.limit, next)
        }
    };
    if !filtered {
        run_scheduled_edits(shared, PagedList::Users);
    }
    Ok(Answer::ok(body))
}

/// Counts a full page of `list` and applies the edits scheduled for it.
fn run_scheduled_edits(shared: &Shared, list: PagedList) {
    let due = {
        let mut knobs = shared.knobs();
        let served = match list {
            PagedList::Users => {
                knobs.users_pages_served += 1;
                knobs.users_pages_served
            }
            PagedList::Groups => {
                knobs.groups_pages_served += 1;
                knobs.groups_pages_served
            }
        };
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut knobs.scheduled)
            .into_iter()
            .partition(|(kind, at, _)| *kind == list && *at <= served);
        knobs.scheduled = later;
        due
    };
    if due.is_empty() {
        return;
    }
    let mut directory = shared.write_directory();
    for (kind, page, edit) in due {
        tracing::debug!(list = ?kind, page, "Duo emulator applying a scheduled dataset edit.");
        edit(&mut directory.data);
    }
    directory.reindex();
}

fn user_groups(
    shared: &Shared,
    user_id: &str,
    params: &[(String, String)],
) -> Result<Answer, Answer> {
    let paging = Paging::parse(params, 100, 500)?;
    let short_page = shared.knobs().short_page;
    let directory = shared.read_directory();
    let user = directory
        .user(user_id)
        .ok_or_else(|| Answer::not_found("user_id"))?;
    let groups: Vec<_> = user
        .groups
        .iter()
        .filter_map(|g| directory.group(g))
        .collect();
    let (range, next) = paging.window(groups.len(), short_page);
    let rows = groups[range].iter().map(|g| render::group(g)).collect();
    Ok(Answer::ok(render::paged(
        rows,
        groups.len(),
        paging.offset,
        paging.limit,
        next,
    )))
}

fn user_phones(
    shared: &Shared,
    user_id: &str,
    params: &[(String, String)],
) -> Result<Answer, Answer> {
    let paging = Paging::parse(params, 100, 500)?;
    let short_page = shared.knobs().short_page;
    let directory = shared.read_directory();
    let user = directory
        .user(user_id)
        .ok_or_else(|| Answer::not_found("user_id"))?;
    let (range, next) = paging.window(user.phones.len(), short_page);
    let rows = user.phones[range].iter().map(render::phone).collect();
    Ok(Answer::ok(render::paged(
        rows,
        user.phones.len(),
        paging.offset,
        paging.limit,
        next,
    )))
}

fn list_groups(shared: &Shared, params: &[(String, String)]) -> Result<Answer, Answer> {
    let paging = Paging::parse(params, 100, 100)?;
    let short_page = shared.knobs().short_page;
    let ids = json_list(params, "group_id_list")?;
    let body = {
        let directory = shared.read_directory();
        let groups: Vec<_> = match &ids {
            Some(ids) => directory
                .data
                .groups
                .iter()
                .filter(|g| ids.contains(&g.group_id))
                .collect(),
            None => directory.data.groups.iter().collect(),
        };
        let (range, next) = paging.window(groups.len(), short_page);
        let rows = groups[range].iter().map(|g| render::group(g)).collect();
        render::paged(rows, groups.len(), paging.offset, paging.limit, next)
    };
    if ids.is_none() {
        run_scheduled_edits(shared, PagedList::Groups);
    }
    Ok(Answer::ok(body))
}

fn group_users(
    shared: &Shared,
    group_id: &str,
    params: &[(String, String)],
) -> Result<Answer, Answer> {
    let paging = Paging::parse(params, 100, 500)?;
    let short_page = shared.knobs().short_page;
    let directory = shared.read_directory();
    if directory.group(group_id).is_none() {
        return Err(Answer::not_found("group_id"));
    }
    let members = directory.members(group_id);
    let (range, next) = paging.window(members.len(), short_page);
    let rows = members[range]
        .iter()
        .map(|&i| render::member(&directory.data.users[i]))
        .collect();
    Ok(Answer::ok(render::paged(
        rows,
        members.len(),
        paging.offset,
        paging.limit,
        next,
    )))
}
