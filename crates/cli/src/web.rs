//! The daemon's web view: server-rendered pages of the connections, the runs, the activity log,
//! one person's history and dry-run plan previews, with an approve action for deactivations the
//! guard held back.
//!
//! # Pages (all under `/ui`, GET unless said)
//! - `/ui`: every connection with its schedule and next run, last run, lease holder and guard
//!   state (the held deactivations, with a link to review and approve them);
//! - `/ui/runs?connection=&limit=`: runs with their counts and durations;
//! - `/ui/activity?connection=&run=&user=&op=&outcome=&since=&limit=&before=`: the activity
//!   log with the filters of `scimsync activity`, newest first, a page at a time (`before` is
//!   the id the next page starts under);
//! - `/ui/users/{user}`: one person's history across runs and connections (by any identifier:
//!   Duo username, email, userName, source id or target id; their membership changes
//!   included), with the same filters;
//! - `/ui/connections/{name}/plan`: a dry run of the connection, its plan with catalogue names
//!   and the rule behind each user's entitlements, the guard's verdict and the plan's
//!   fingerprint;
//! - POST `/ui/connections/{name}/approve` (form fields `plan`, the fingerprint shown, and
//!   `token`, or an `Authorization: Bearer` header): runs the connection approving its held
//!   deactivations only if the plan made now has that fingerprint; otherwise nothing is applied
//!   and the new plan is shown.
//!
//! `?format=csv` and `?format=json` on the runs, activity and user pages download what the page
//! shows in the formats of `scimsync runs` and `scimsync activity` (JSON: one array);
//! `?format=json` on a plan page gives the connection's object of
//! `scimsync reconcile --dry-run --format json` (the plan with `connection` and `run_id`).
//!
//! # Rendering
//! Plain functions write HTML into a `String`: the pages are few and small, and a template
//! crate would add a proc-macro and a parser to every clean build for no gain. Every value that
//! comes from the directory, the target, the store or the request goes through [`esc`] (text
//! and attribute values alike, quotes included); links are built with [`href`], whose query
//! values and path segments are percent-encoded before escaping. There is no JavaScript:
//! filters are GET forms and the approval a POST form, so every page works without it. A
//! strict Content-Security-Policy forbids scripts altogether.
//!
//! # Authentication
//! GET pages are readable like `/metrics`: from loopback, or with the daemon's token — as a
//! header, or, for a browser, through the sign-in form (`/ui/sign-in`, which sets a session
//! cookie: see [`crate::session`]; a page asked for without either redirects there, and
//! `/ui/sign-out` clears it). The approve POST needs the token typed into the form (or the
//! header), checked by [`token_matches`] in constant time, or a signed-in browser's cookie with
//! the approval code its plan page embeds; without a configured token the web view approves
//! nothing. Tokens never appear in pages, cookies or logs.

use crate::listen::Peer;
use crate::output;
use crate::session::Sessions;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use scimsync_core::Timestamp;
use scimsync_core::activity::{ActivityEntry, ActivityQuery, Outcome, RunStatus};
use scimsync_core::plan::Plan;
use scimsync_core::ports::Store as _;
use scimsync_engine::{EngineError, RunReport, Scheduler, SchedulerError, chain, now};
use scimsync_store::{RunStats, SqlStore};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

/// Plan rows shown on a page at most (the JSON download has them all).
const PLAN_ROWS_SHOWN: usize = 1000;
/// Activity entries on a page unless `limit` says otherwise, and the most it may say.
const ACTIVITY_PAGE: u32 = 100;
const ACTIVITY_PAGE_MAX: u32 = 1000;
/// Held deactivations listed on the connections page.
const HELD_LISTED: u32 = 200;

/// A dry run of one connection, for plan previews.
pub(crate) trait Preview: Send + Sync {
    /// Plans the connection without changing anything, recording each user's decision.
    fn preview(&self) -> BoxFuture<'_, Result<RunReport, EngineError>>;
}

/// One connection as the web view knows it.
pub(crate) struct WebConnection {
    /// Its cron schedule (six fields, seconds first), if it runs on one.
    pub schedule: Option<String>,
    pub preview: Arc<dyn Preview>,
}

/// What the web view's handlers share.
#[derive(Clone)]
pub(crate) struct Web {
    pub store: Arc<SqlStore>,
    pub scheduler: Arc<Scheduler<SqlStore>>,
    /// By name.
    pub connections: Arc<BTreeMap<String, WebConnection>>,
    /// The daemon's token; `None`: nothing can be approved from the web view.
    pub token: Option<Arc<SecretString>>,
    /// Sign-in cookies and approval codes (shared with the daemon's access layer).
    pub sessions: Arc<Sessions>,
}

/// The web view's routes, to merge into the daemon's router (before its access layer).
pub(crate) fn router<S: Clone + Send + Sync + 'static>(web: Web) -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(connections_page))
        .route("/ui/style.css", get(style))
        .route("/ui/runs", get(runs_page))
        .route("/ui/activity", get(activity_page))
        .route("/ui/users/{user}", get(user_page))
        .route("/ui/connections/{name}/plan", get(plan_page))
        .route("/ui/connections/{name}/approve", post(approve))
        .route(SIGN_IN, get(sign_in_page).post(sign_in))
        .route(SIGN_OUT, post(sign_out))
        .with_state(web)
}

// ---------------------------------------------------------------------------------------------
// Escaping and links

/// `text` escaped for HTML text and quoted attribute values (`&`, `<`, `>`, `"`, `'`).
pub(crate) fn esc(text: &str) -> Esc<'_> {
    Esc(text)
}

/// Text escaped for HTML when displayed (see [`esc`]).
pub(crate) struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// `text` percent-encoded for a path segment or a query value (all but `A-Za-z0-9-._~`).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A link: `path` followed by the non-empty `query` pairs, percent-encoded. Escape it with
/// [`esc`] when writing it into a page.
fn href(path: &str, query: &[(&str, &str)]) -> String {
    let mut out = path.to_owned();
    let mut sep = '?';
    for (k, v) in query.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(out, "{sep}{k}={}", encode(v));
        sep = '&';
    }
    out
}

/// The page of one person's history.
fn user_href(user: &str) -> String {
    format!("/ui/users/{}", encode(user))
}

/// The activity of one run.
fn run_href(run_id: i64) -> String {
    href("/ui/activity", &[("run", &run_id.to_string())])
}

// ---------------------------------------------------------------------------------------------
// Responses

/// Headers of every page: no scripts, no framing, no sniffing, no caching, no referrer.
fn secure(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An HTML page.
fn html(status: StatusCode, page: String) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response();
    secure(&mut resp);
    resp
}

/// A download named `filename`.
fn download(content_type: &'static str, filename: &str, body: String) -> Response {
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    secure(&mut resp);
    resp
}

/// A page saying what went wrong.
fn problem(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!("<p class=\"error\">{}</p>", esc(text));
    html(status, layout(title, Nav::None, &body))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Nav {
    Connections,
    Runs,
    Activity,
    None,
}

/// A whole page: header with navigation, then `body` (already HTML).
fn layout(title: &str, nav: Nav, body: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · scimsync</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head><body>\
         <header><a class=\"brand\" href=\"/ui\">scimsync</a><nav>",
        esc(title)
    );
    for (which, link, label) in [
        (Nav::Connections, "/ui", "Connections"),
        (Nav::Runs, "/ui/runs", "Runs"),
        (Nav::Activity, "/ui/activity", "Activity"),
    ] {
        let current = if which == nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(out, "<a href=\"{link}\"{current}>{label}</a>");
    }
    let _ = write!(
        out,
        "<a class=\"session\" href=\"{SIGN_IN}\">Sign in / out</a>"
    );
    let _ = writeln!(
        out,
        "</nav></header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    );
    out
}

async fn style() -> Response {
    let mut resp = (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response();
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

const STYLE: &str = r#":root { color-scheme: light; --fg: #1d2330; --muted: #5b6475; --line: #d9dde5;
  --bg: #f6f7f9; --ok: #17683a; --bad: #a3221b; --warn: #8a5a00; --accent: #2457c5; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; gap: 2rem; align-items: center; padding: .6rem 1.5rem;
  background: #1d2330; }
header a { color: #dfe5f2; text-decoration: none; }
header .brand { font-weight: 700; color: #fff; }
header nav { display: flex; gap: 1.2rem; }
header nav a[aria-current] { color: #fff; border-bottom: 2px solid #8fb0ff; }
main { max-width: 1280px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.4rem; margin: .6rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
a { color: var(--accent); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1rem 1.2rem;
  margin-bottom: 1rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1.2rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #eef0f4; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nowrap, td.op { white-space: nowrap; }
td.detail { overflow-wrap: anywhere; }
table.activity td.detail, table.runs td.detail { width: 38%; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 3px; font-size: .85em;
  font-weight: 600; background: #e5e8ee; }
.s-ok, .s-succeeded { background: #dcf1e3; color: var(--ok); }
.s-failed { background: #f8dddb; color: var(--bad); }
.s-rejected, .s-guarded, .s-partial, .s-interrupted { background: #fbeccd; color: var(--warn); }
.s-skipped, .s-dry_run, .s-running { background: #e3e9f7; color: #2a4a8f; }
tr.destructive td.op { color: var(--bad); font-weight: 600; }
.error { color: var(--bad); font-weight: 600; }
.notice { border-left: 4px solid var(--warn); background: #fff8e8; padding: .6rem .9rem;
  margin: .8rem 0; }
.notice.good { border-color: var(--ok); background: #eef8f1; }
.notice.bad { border-color: var(--bad); background: #fdf0ef; }
.muted { color: var(--muted); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
form.filters { display: flex; flex-wrap: wrap; gap: .6rem 1rem; align-items: end;
  background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem;
  margin-bottom: 1rem; }
form.filters label, form.approve label { display: flex; flex-direction: column; font-size: .85rem;
  color: var(--muted); gap: .15rem; }
input, select, button { font: inherit; padding: .25rem .4rem; }
button { background: var(--accent); color: #fff; border: 0; border-radius: 4px; padding: .35rem .9rem;
  cursor: pointer; }
button.danger { background: var(--bad); }
form.approve { display: flex; gap: 1rem; align-items: end; flex-wrap: wrap; margin-top: .6rem; }
.toolbar { display: flex; gap: 1rem; align-items: center; margin: .6rem 0; flex-wrap: wrap; }
.pager { display: flex; gap: 1rem; margin: .8rem 0; }
"#;

// ---------------------------------------------------------------------------------------------
// Small formatting helpers

/// The serde name of a unit enum variant (`dry_run`, `schedule`).
fn snake<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `2026-11-22 10:00:00 UTC`.
fn when(t: Timestamp) -> String {
    let mut text = t.to_string();
    text.truncate(19);
    format!("{} UTC", text.replace('T', " "))
}

/// `3 min ago`, `in 12 min`.
fn relative(t: Timestamp, now: Timestamp) -> String {
    let delta = t.millis() - now.millis();
    let secs = delta.unsigned_abs() / 1000;
    let amount = match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    };
    if delta >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn duration(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} s", d.as_secs_f64()))
        .unwrap_or_else(|| "–".to_owned())
}

fn badge(class: &str, text: &str) -> String {
    format!(
        "<span class=\"badge s-{}\">{}</span>",
        esc(class),
        esc(text)
    )
}

/// The next time a cron schedule (five fields, or six with seconds first, read as the
/// scheduler reads it) fires after `now`, in UTC like the scheduler.
pub(crate) fn next_run(schedule: &str, now: Timestamp) -> Option<Timestamp> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(&scimsync_engine::scheduler::cron_expression(schedule))
        .ok()?;
    let start = chrono::DateTime::from_timestamp_millis(now.millis())?;
    let next = cron.find_next_occurrence(&start, false).ok()?;
    // croner keeps the start's fraction of a second; the scheduler fires on the second.
    Some(Timestamp::from_millis(
        next.timestamp().saturating_mul(1000),
    ))
}

/// Whether `given` is the configured token, compared like the daemon compares the header
/// ([`crate::daemon::same_secret`], in constant time). No configured token, or an empty one
/// given: never.
pub(crate) fn token_matches(configured: Option<&SecretString>, given: &str) -> bool {
    configured.is_some_and(|token| {
        !given.is_empty()
            && crate::daemon::same_secret(given.as_bytes(), token.expose_secret().as_bytes())
    })
}

/// Whether `path` is the approve action of a connection (`/ui/connections/{name}/approve`),
/// which checks the token itself.
pub(crate) fn is_approve_path(path: &str) -> bool {
    path.strip_prefix("/ui/connections/")
        .and_then(|rest| rest.strip_suffix("/approve"))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The sign-in page (GET: the form; POST: the token typed in, answered with the cookie).
pub(crate) const SIGN_IN: &str = "/ui/sign-in";
/// Signing out (POST): the cookie is cleared.
pub(crate) const SIGN_OUT: &str = "/ui/sign-out";

/// Whether `path` is the sign-in or sign-out action, which the access layer lets through
/// (they check the token themselves, and give access to nothing).
pub(crate) fn is_sign_in_path(path: &str) -> bool {
    path == SIGN_IN || path == SIGN_OUT
}

/// Where to go after signing in: a page of the web view, else `/ui` (never another site).
fn after_sign_in(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/ui")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with(SIGN_IN) =>
        {
            n
        }
        _ => "/ui",
    }
}

/// The sign-in form, with `message` above it when there is one.
fn sign_in_html(web: &Web, next: &str, message: Option<&str>, signed_in: bool) -> String {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"error\">{}</p>", esc(m));
    }
    if web.token.is_none() {
        body.push_str(
            "<p>No daemon token is configured (<code>daemon.token_env</code> or \
             <code>daemon.token_file</code>): there is nothing to sign in with. The pages are \
             readable from loopback only.</p>",
        );
        return body;
    }
    if signed_in {
        let _ = write!(
            body,
            "<p class=\"signed-in\">This browser is signed in.</p>\
             <form class=\"sign-out\" method=\"post\" action=\"{SIGN_OUT}\">\
             <button type=\"submit\">Sign out</button></form>"
        );
        return body;
    }
    let _ = write!(
        body,
        "<p>Beyond loopback the pages need the daemon's token. Signing in keeps it for this \
         browser in a cookie (not the token itself) until you sign out or the daemon restarts.</p>\
         <form class=\"sign-in\" method=\"post\" action=\"{SIGN_IN}\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Daemon token<input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form>",
        esc(next)
    );
    body
}

#[derive(Debug, Default, Deserialize)]
struct SignInParams {
    next: Option<String>,
}

async fn sign_in_page(
    State(web): State<Web>,
    headers: HeaderMap,
    Query(p): Query<SignInParams>,
) -> Response {
    let signed_in = web.sessions.signed_in(web.token.as_deref(), &headers);
    let next = after_sign_in(p.next.as_deref());
    html(
        StatusCode::OK,
        layout(
            "Sign in",
            Nav::None,
            &sign_in_html(&web, next, None, signed_in),
        ),
    )
}

#[derive(Debug, Default, Deserialize)]
struct SignInForm {
    token: Option<String>,
    next: Option<String>,
}

async fn sign_in(
    State(web): State<Web>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = after_sign_in(form.next.as_deref()).to_owned();
    let Some(token) = web
        .token
        .as_deref()
        .filter(|t| token_matches(Some(t), form.token.as_deref().unwrap_or_default()))
    else {
        tracing::warn!(peer = %peer.ip(), "Web sign-in refused: missing or wrong token.");
        return html(
            StatusCode::UNAUTHORIZED,
            layout(
                "Sign in",
                Nav::None,
                &sign_in_html(&web, &next, Some("the token is missing or wrong"), false),
            ),
        );
    };
    let mut resp = Redirect::to(&next).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        web.sessions
            .cookie(token, crate::session::over_https(peer, &headers)),
    );
    resp
}

async fn sign_out(ConnectInfo(Peer(peer)): ConnectInfo<Peer>, headers: HeaderMap) -> Response {
    let mut resp = Redirect::to(SIGN_IN).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        Sessions::cleared(crate::session::over_https(peer, &headers)),
    );
    resp
}

/// The token of a request: the form's `token` field, else an `Authorization: Bearer` header.
fn given_token<'a>(form: Option<&'a str>, headers: &'a HeaderMap) -> &'a str {
    match form {
        Some(t) if !t.is_empty() => t,
        _ => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map_or("", str::trim),
    }
}

/// Text of a store error, for a page.
fn store_problem(e: &scimsync_store::StoreError) -> Response {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The store failed",
        &chain(e),
    )
}

// ---------------------------------------------------------------------------------------------
// Connections

async fn connections_page(State(web): State<Web>) -> Response {
    let at = now();
    let leases = match web.store.leases().await {
        Ok(l) => l,
        Err(e) => return store_problem(&e),
    };
    let mut body = String::new();
    if web.connections.is_empty() {
        body.push_str("<p>No connection is configured.</p>");
    }
    for (name, conn) in web.connections.iter() {
        let runs = match web.store.runs_with_stats(Some(name), 20).await {
            Ok(r) => r,
            Err(e) => return store_problem(&e),
        };
        let last = runs.iter().find(|r| r.run.status != RunStatus::DryRun);
        let held = match last {
            Some(r) if r.run.status == RunStatus::Guarded => {
                let query = ActivityQuery {
                    run_id: Some(r.run.id),
                    op: Some("deactivate_user".to_owned()),
                    outcome: Some(Outcome::Skipped),
                    limit: Some(HELD_LISTED),
                    ..ActivityQuery::default()
                };
                match web.store.query_activity(&query).await {
                    Ok(e) => Some(e),
                    Err(e) => return store_problem(&e),
                }
            }
            _ => None,
        };
        let lease = leases
            .iter()
            .find(|l| &l.connection == name && l.is_held_at(at));
        let _ = write!(
            body,
            "<section class=\"card\" id=\"conn-{}\"><h2>{}</h2><dl class=\"facts\">",
            esc(&encode(name)),
            esc(name)
        );
        // Schedule and next run.
        let _ = write!(body, "<dt>Schedule</dt><dd>");
        match &conn.schedule {
            Some(s) => {
                let _ = write!(body, "<code>{}</code>", esc(s));
                match next_run(s, at) {
                    Some(next) => {
                        let _ = write!(
                            body,
                            " — next run <span class=\"next-run\">{}</span> ({})",
                            esc(&when(next)),
                            esc(&relative(next, at))
                        );
                    }
                    None => body.push_str(" — <span class=\"error\">not a valid schedule</span>"),
                }
            }
            None => body.push_str("on demand only (no schedule)"),
        }
        body.push_str("</dd><dt>Last run</dt><dd class=\"last-run\">");
        match last {
            Some(r) => {
                let _ = write!(
                    body,
                    "<a href=\"{}\">#{}</a> {} {} · started {} ({}) · took {} · {} planned, {} applied, {} failed, {} rejected, {} skipped",
                    esc(&run_href(r.run.id)),
                    r.run.id,
                    badge(&snake(r.run.status), &snake(r.run.status)),
                    esc(&snake(r.run.trigger)),
                    esc(&when(r.run.started_at)),
                    esc(&relative(r.run.started_at, at)),
                    esc(&duration(r.duration)),
                    r.run.planned,
                    r.run.applied,
                    r.run.failed,
                    r.run.rejected,
                    r.run.skipped
                );
            }
            None => body.push_str("<span class=\"muted\">never run</span>"),
        }
        body.push_str("</dd><dt>Lease</dt><dd class=\"lease\">");
        match lease {
            Some(l) => {
                let _ = write!(
                    body,
                    "held by <code>{}</code> since {}, until {}",
                    esc(&l.holder),
                    esc(&when(l.acquired_at)),
                    esc(&when(l.expires_at))
                );
            }
            None => body.push_str("<span class=\"muted\">free (no run in progress)</span>"),
        }
        body.push_str("</dd><dt>Guard</dt><dd class=\"guard\">");
        match (last, &held) {
            (Some(r), Some(held)) => {
                let _ = write!(
                    body,
                    "{} <span>{}</span>",
                    badge("guarded", "holding deactivations"),
                    esc(r.run.message.as_deref().unwrap_or(""))
                );
                if !held.is_empty() {
                    let _ = write!(
                        body,
                        "<table class=\"held\"><thead><tr><th>Held deactivation</th><th>Detail</th></tr></thead><tbody>"
                    );
                    for e in held {
                        let who = e.source_id.as_deref().unwrap_or(&e.name);
                        // The guard's reason is said once above.
                        let detail = e
                            .detail
                            .split_once("; held back by the guard")
                            .map_or(e.detail.as_str(), |(why, _)| why);
                        let _ = write!(
                            body,
                            "<tr><td><a href=\"{}\">{}</a></td><td class=\"detail\">{}</td></tr>",
                            esc(&user_href(who)),
                            esc(&e.name),
                            esc(detail)
                        );
                    }
                    body.push_str("</tbody></table>");
                }
                let _ = write!(
                    body,
                    "<p><a class=\"review\" href=\"/ui/connections/{}/plan\">Review the plan and approve it</a></p>",
                    esc(&encode(name))
                );
            }
            _ => body.push_str("<span class=\"muted\">nothing held</span>"),
        }
        let _ = write!(
            body,
            "</dd></dl><p class=\"toolbar\"><a href=\"/ui/connections/{}/plan\">Preview the plan (dry run)</a>\
             <a href=\"{}\">Runs</a><a href=\"{}\">Activity</a></p></section>",
            esc(&encode(name)),
            esc(&href("/ui/runs", &[("connection", name)])),
            esc(&href("/ui/activity", &[("connection", name)])),
        );
    }
    html(
        StatusCode::OK,
        layout("Connections", Nav::Connections, &body),
    )
}

// ---------------------------------------------------------------------------------------------
// Runs

/// The query of the runs page.
#[derive(Debug, Default, Deserialize)]
struct RunsParams {
    connection: Option<String>,
    limit: Option<String>,
    format: Option<String>,
}

async fn runs_page(State(web): State<Web>, Query(p): Query<RunsParams>) -> Response {
    let connection = p.connection.as_deref().filter(|c| !c.is_empty());
    let limit = p
        .limit
        .as_deref()
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(20)
        .clamp(1, 500);
    let runs = match web.store.runs_with_stats(connection, limit).await {
        Ok(r) => r,
        Err(e) => return store_problem(&e),
    };
    match p.format.as_deref() {
        Some("csv") => {
            return download(
                "text/csv; charset=utf-8",
                "runs.csv",
                output::runs(&runs, output::Format::Csv),
            );
        }
        Some("json") => {
            return download(
                "application/x-ndjson",
                "runs.jsonl",
                output::runs(&runs, output::Format::Json),
            );
        }
        _ => {}
    }
    let limit_text = limit.to_string();
    let query = [
        ("connection", connection.unwrap_or("")),
        ("limit", limit_text.as_str()),
    ];
    let mut body = String::new();
    body.push_str("<form class=\"filters\" method=\"get\" action=\"/ui/runs\">");
    connection_select(&mut body, &web, connection);
    let _ = write!(
        body,
        "<label>Runs shown<input type=\"number\" name=\"limit\" min=\"1\" max=\"500\" value=\"{limit}\"></label>\
         <button type=\"submit\">Show</button></form>"
    );
    downloads(&mut body, "/ui/runs", &query);
    body.push_str(&runs_table(&runs));
    html(StatusCode::OK, layout("Runs", Nav::Runs, &body))
}

fn runs_table(runs: &[RunStats]) -> String {
    let mut out = String::from(
        "<table class=\"runs\"><thead><tr><th>Run</th><th>Connection</th><th>Trigger</th><th>Status</th>\
         <th>Started</th><th>Duration</th><th>Planned</th><th>Applied</th><th>Failed</th><th>Rejected</th>\
         <th>Skipped</th><th>Message</th></tr></thead><tbody>",
    );
    if runs.is_empty() {
        out.push_str("<tr><td colspan=\"12\" class=\"muted\">No runs.</td></tr>");
    }
    for r in runs {
        let status = snake(r.run.status);
        let _ = write!(
            out,
            "<tr><td><a href=\"{}\">#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"nowrap\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"detail\">{}</td></tr>",
            esc(&run_href(r.run.id)),
            r.run.id,
            esc(&r.run.connection),
            esc(&snake(r.run.trigger)),
            badge(&status, &status),
            esc(&when(r.run.started_at)),
            esc(&duration(r.duration)),
            r.run.planned,
            r.run.applied,
            r.run.failed,
            r.run.rejected,
            r.run.skipped,
            esc(r.run.message.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A select of the configured connections (and "any").
fn connection_select(out: &mut String, web: &Web, selected: Option<&str>) {
    out.push_str("<label>Connection<select name=\"connection\"><option value=\"\">any</option>");
    for name in web.connections.keys() {
        let sel = if selected == Some(name.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{}\"{sel}>{}</option>",
            esc(name),
            esc(name)
        );
    }
    out.push_str("</select></label>");
}

/// CSV and JSON links for what a page shows.
fn downloads(out: &mut String, path: &str, query: &[(&str, &str)]) {
    let with = |format: &'static str| {
        let mut q = query.to_vec();
        q.push(("format", format));
        href(path, &q)
    };
    let _ = write!(
        out,
        "<p class=\"toolbar\">Download: <a class=\"csv\" href=\"{}\">CSV</a><a class=\"json\" href=\"{}\">JSON</a></p>",
        esc(&with("csv")),
        esc(&with("json"))
    );
}

// ---------------------------------------------------------------------------------------------
// Activity

/// The query of the activity and user pages: the filters of `scimsync activity`, as text so
/// that a bad value is reported on the page rather than refused.
#[derive(Debug, Default, Clone, Deserialize)]
struct ActivityParams {
    connection: Option<String>,
    run: Option<String>,
    user: Option<String>,
    op: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    before: Option<String>,
    format: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl ActivityParams {
    /// The store's query, or what is wrong with the filters.
    fn query(&self) -> Result<ActivityQuery, String> {
        let run_id = given(&self.run)
            .map(|r| {
                r.trim_start_matches('#')
                    .parse::<i64>()
                    .map_err(|_| format!("run {r:?} is not a run number"))
            })
            .transpose()?;
        let outcome = given(&self.outcome)
            .map(|o| {
                Outcome::parse(o)
                    .ok_or_else(|| format!("outcome {o:?}: use ok, failed, rejected or skipped"))
            })
            .transpose()?;
        let since = given(&self.since)
            .map(|s| crate::parse_since(s, now()))
            .transpose()?;
        let before_id = given(&self.before)
            .map(|b| {
                b.parse::<i64>()
                    .map_err(|_| format!("before {b:?} is not an entry id"))
            })
            .transpose()?;
        Ok(ActivityQuery {
            connection: given(&self.connection).map(str::to_owned),
            run_id,
            user: given(&self.user).map(str::to_owned),
            op: given(&self.op).map(str::to_owned),
            outcome,
            since,
            after_id: None,
            before_id,
            limit: Some(self.limit()),
        })
    }

    fn limit(&self) -> u32 {
        given(&self.limit)
            .and_then(|l| l.parse::<u32>().ok())
            .unwrap_or(ACTIVITY_PAGE)
            .clamp(1, ACTIVITY_PAGE_MAX)
    }

    /// The filters as query pairs (without `before` and `format`).
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (k, v) in [
            ("connection", &self.connection),
            ("run", &self.run),
            ("user", &self.user),
            ("op", &self.op),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("limit", &self.limit),
        ] {
            if let Some(v) = given(v) {
                out.push((k, v.to_owned()));
            }
        }
        out
    }
}

async fn activity_page(State(web): State<Web>, Query(p): Query<ActivityParams>) -> Response {
    activity_view(&web, p, None).await
}

async fn user_page(
    State(web): State<Web>,
    UrlPath(user): UrlPath<String>,
    Query(mut p): Query<ActivityParams>,
) -> Response {
    p.user = Some(user.clone());
    activity_view(&web, p, Some(user)).await
}

/// The activity page, or one person's history when `person` is given.
async fn activity_view(web: &Web, p: ActivityParams, person: Option<String>) -> Response {
    let (query, error) = match p.query() {
        Ok(q) => (Some(q), None),
        Err(e) => (None, Some(e)),
    };
    let entries = match &query {
        Some(q) => match web.store.query_activity(q).await {
            Ok(e) => e,
            Err(e) => return store_problem(&e),
        },
        None => Vec::new(),
    };
    let path = match &person {
        Some(u) => user_href(u),
        None => "/ui/activity".to_owned(),
    };
    let pairs = p.pairs();
    let mut query_pairs: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| person.is_none() || *k != "user")
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    if let Some(before) = given(&p.before) {
        query_pairs.push(("before", before));
    }
    let stem = match &person {
        Some(_) => "history",
        None => "activity",
    };
    match p.format.as_deref() {
        Some("csv") => {
            return download(
                "text/csv; charset=utf-8",
                &format!("{stem}.csv"),
                output::activity(&entries, output::Format::Csv, true),
            );
        }
        Some("json") => {
            return download(
                "application/x-ndjson",
                &format!("{stem}.jsonl"),
                output::activity(&entries, output::Format::Json, true),
            );
        }
        _ => {}
    }
    let mut body = String::new();
    if let Some(user) = &person {
        person_summary(&mut body, user, &entries);
    }
    filters_form(&mut body, web, &p, &path, person.is_some());
    if let Some(e) = &error {
        let _ = write!(body, "<p class=\"error\">{}</p>", esc(e));
    }
    downloads(&mut body, &path, &query_pairs);
    body.push_str(&activity_table(&entries, person.is_none()));
    // Newest first on the page; the next page holds older entries.
    let limit = p.limit() as usize;
    let mut pager = Vec::new();
    if given(&p.before).is_some() {
        let newest: Vec<(&str, &str)> = query_pairs
            .iter()
            .copied()
            .filter(|(k, _)| *k != "before")
            .collect();
        pager.push(format!(
            "<a class=\"newest\" href=\"{}\">« Newest</a>",
            esc(&href(&path, &newest))
        ));
    }
    if entries.len() >= limit
        && let Some(oldest) = entries.first()
    {
        let before = oldest.id.to_string();
        let mut older: Vec<(&str, &str)> = query_pairs
            .iter()
            .copied()
            .filter(|(k, _)| *k != "before")
            .collect();
        older.push(("before", &before));
        pager.push(format!(
            "<a class=\"older\" href=\"{}\">Older »</a>",
            esc(&href(&path, &older))
        ));
    }
    if !pager.is_empty() {
        let _ = write!(body, "<p class=\"pager\">{}</p>", pager.join(""));
    }
    // A person is titled by the name the log gives them last.
    let title = match &person {
        Some(u) => match entries.iter().rev().find(|e| e.object == "user") {
            Some(e) if !e.name.eq_ignore_ascii_case(u) => format!("History of {} ({u})", e.name),
            _ => format!("History of {u}"),
        },
        None => "Activity".to_owned(),
    };
    html(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        layout(&title, Nav::Activity, &body),
    )
}

/// Who the entries are about: the names, source ids and target ids seen, by connection.
fn person_summary(out: &mut String, user: &str, entries: &[ActivityEntry]) {
    // By connection: the names, source ids and target ids seen.
    type Seen<'a> = (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>);
    let mut seen: BTreeMap<&str, Seen<'_>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.object == "user") {
        let s = seen.entry(e.connection.as_str()).or_default();
        for (list, v) in [
            (&mut s.0, Some(e.name.as_str())),
            (&mut s.1, e.source_id.as_deref()),
            (&mut s.2, e.target_id.as_deref()),
        ] {
            if let Some(v) = v
                && !list.contains(&v)
            {
                list.push(v);
            }
        }
    }
    let _ = write!(
        out,
        "<section class=\"card person\"><p>Everything the log holds about <strong>{}</strong> \
         (found by any of their identifiers: Duo username, email, userName, source id or target id; \
         memberships included), newest first.</p>",
        esc(user)
    );
    if !seen.is_empty() {
        out.push_str(
            "<table><thead><tr><th>Connection</th><th>Names</th><th>Source id</th><th>Target id</th></tr></thead><tbody>",
        );
        let join = |v: &[&str]| {
            v.iter()
                .map(|s| esc(s).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (conn, (names, sources, targets)) in &seen {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
                esc(conn),
                join(names),
                join(sources),
                join(targets)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

fn filters_form(out: &mut String, web: &Web, p: &ActivityParams, path: &str, person: bool) {
    let v = |f: &Option<String>| esc(given(f).unwrap_or("")).to_string();
    let _ = write!(
        out,
        "<form class=\"filters\" method=\"get\" action=\"{}\">",
        esc(path)
    );
    connection_select(out, web, given(&p.connection));
    let _ = write!(
        out,
        "<label>Run<input name=\"run\" inputmode=\"numeric\" size=\"6\" value=\"{}\"></label>",
        v(&p.run)
    );
    if !person {
        let _ = write!(
            out,
            "<label>User<input name=\"user\" size=\"24\" placeholder=\"username, source or target id\" value=\"{}\"></label>",
            v(&p.user)
        );
    }
    let _ = write!(
        out,
        "<label>Operation<input name=\"op\" list=\"ops\" size=\"16\" value=\"{}\"></label><datalist id=\"ops\">",
        v(&p.op)
    );
    for op in scimsync_core::activity::OPS {
        let _ = write!(out, "<option value=\"{op}\">");
    }
    out.push_str(
        "</datalist><label>Outcome<select name=\"outcome\"><option value=\"\">any</option>",
    );
    for o in ["ok", "failed", "rejected", "skipped"] {
        let sel = if given(&p.outcome) == Some(o) {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option value=\"{o}\"{sel}>{o}</option>");
    }
    let _ = write!(
        out,
        "</select></label><label>Since<input name=\"since\" size=\"10\" placeholder=\"24h, 7d, RFC 3339\" value=\"{}\"></label>\
         <label>Per page<input type=\"number\" name=\"limit\" min=\"1\" max=\"{ACTIVITY_PAGE_MAX}\" value=\"{}\"></label>\
         <button type=\"submit\">Filter</button></form>",
        v(&p.since),
        p.limit()
    );
}

fn activity_table(entries: &[ActivityEntry], link_users: bool) -> String {
    let mut out = String::from(
        "<table class=\"activity\"><thead><tr><th>ID</th><th>At</th><th>Connection</th><th>Run</th>\
         <th>Operation</th><th>Outcome</th><th>Object</th><th>Name</th><th>Detail</th></tr></thead><tbody>",
    );
    if entries.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"muted\">No entries match.</td></tr>");
    }
    for e in entries.iter().rev() {
        let name = if link_users && e.object == "user" {
            let who = e.source_id.as_deref().unwrap_or(&e.name);
            format!(
                "<a class=\"user\" href=\"{}\">{}</a>",
                esc(&user_href(who)),
                esc(&e.name)
            )
        } else {
            esc(&e.name).to_string()
        };
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"nowrap\">{}</td><td>{}</td><td><a href=\"{}\">#{}</a></td>\
             <td class=\"op\">{}</td><td>{}</td><td>{}</td><td>{name}</td><td class=\"detail\">{}</td></tr>",
            e.id,
            esc(&when(e.at)),
            esc(&e.connection),
            esc(&run_href(e.run_id)),
            e.run_id,
            esc(&e.op),
            badge(e.outcome.as_str(), e.outcome.as_str()),
            esc(&e.object),
            esc(&e.detail)
        );
    }
    out.push_str("</tbody></table>");
    out
}

// ---------------------------------------------------------------------------------------------
// Plans and approval

#[derive(Debug, Default, Deserialize)]
struct PlanParams {
    format: Option<String>,
}

async fn plan_page(
    State(web): State<Web>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    Query(p): Query<PlanParams>,
) -> Response {
    let signed_in = web.sessions.signed_in(web.token.as_deref(), &headers);
    let Some(conn) = web.connections.get(&name) else {
        return problem(
            StatusCode::NOT_FOUND,
            "No such connection",
            &format!("no connection is named {name:?}"),
        );
    };
    // In a task of its own: a browser that goes away does not cut the run short.
    let preview = Arc::clone(&conn.preview);
    let report = match tokio::spawn(async move { preview.preview().await }).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return problem(StatusCode::BAD_GATEWAY, "The dry run failed", &chain(&e));
        }
        Err(e) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The dry run failed",
                &e.to_string(),
            );
        }
    };
    if p.format.as_deref() == Some("json") {
        return download(
            "application/json",
            &format!("plan-{name}.json"),
            crate::report_document(&report, true)
                .and_then(|doc| Ok(serde_json::to_string_pretty(&doc)?))
                .unwrap_or_default()
                + "\n",
        );
    }
    let mut body = String::new();
    plan_html(&mut body, &web, &name, &report, signed_in);
    html(
        StatusCode::OK,
        layout(&format!("Plan of {name}"), Nav::Connections, &body),
    )
}

/// A plan as HTML: the guard's verdict and the approve form, the operations with names and
/// reasons, the rejected objects, the notes and the summary.
fn plan_html(out: &mut String, web: &Web, name: &str, report: &RunReport, signed_in: bool) {
    let plan = &report.plan;
    let fingerprint = plan.fingerprint();
    let _ = write!(
        out,
        "<p class=\"muted\">Dry run #{} read {} users from the source. Plan fingerprint \
         <code class=\"fingerprint\">{}</code>. <a href=\"{}\">JSON</a></p>",
        report.run_id,
        report.source_users,
        esc(&fingerprint),
        esc(&href(
            &format!("/ui/connections/{}/plan", encode(name)),
            &[("format", "json")]
        )),
    );
    match &report.guard {
        Some(trip) => {
            let _ = write!(
                out,
                "<div class=\"notice bad guard\"><strong>The guard holds this plan's deactivations back:</strong> {}",
                esc(&trip.reason)
            );
            if let Some(token) = &web.token {
                // Signed in: the form carries the approval code (which a page on another site
                // cannot know) instead of the token typed in.
                let proof = if signed_in {
                    format!(
                        "<input type=\"hidden\" name=\"code\" value=\"{}\">",
                        esc(&web.sessions.approval_code(token))
                    )
                } else {
                    "<label>Daemon token<input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label>".to_owned()
                };
                let _ = write!(
                    out,
                    "<form class=\"approve\" method=\"post\" action=\"/ui/connections/{}/approve\">\
                     <input type=\"hidden\" name=\"plan\" value=\"{}\">{proof}\
                     <button class=\"danger\" type=\"submit\">Approve and apply exactly this plan</button></form>\
                     <p class=\"muted\">The daemon plans again and applies only if the plan is still this one \
                     (fingerprint {}); if anything changed, nothing is applied and the new plan is shown.</p>",
                    esc(&encode(name)),
                    esc(&fingerprint),
                    esc(&fingerprint)
                );
            } else {
                out.push_str(
                    "<p>Approving from the web view needs the daemon's token (<code>daemon.token_env</code> or \
                     <code>daemon.token_file</code>); or run <code>scimsync reconcile --approve-deactivations</code>.</p>",
                );
            }
            out.push_str("</div>");
        }
        None if plan.is_empty() => {
            out.push_str("<div class=\"notice good\">Nothing to do: the target is in step.</div>");
        }
        None => out.push_str(
            "<div class=\"notice good\">Within the safety limits: the next run applies this plan.</div>",
        ),
    }
    let rows = plan.rows_with(&report.labels);
    let _ = write!(
        out,
        "<h2>Operations ({})</h2><table class=\"plan\"><thead><tr><th>Operation</th><th>Object</th>\
         <th>Details</th></tr></thead><tbody>",
        rows.len()
    );
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"3\" class=\"muted\">Nothing to do.</td></tr>");
    }
    for [op, object, details] in rows.iter().take(PLAN_ROWS_SHOWN) {
        let class = if matches!(op.as_str(), "deactivate_user" | "remove_members") {
            " class=\"destructive\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{class}><td class=\"op\">{}</td><td>{}</td><td class=\"detail\">{}</td></tr>",
            esc(op),
            esc(object),
            esc(details)
        );
    }
    if rows.len() > PLAN_ROWS_SHOWN {
        let _ = write!(
            out,
            "<tr><td colspan=\"3\" class=\"muted\">… {} more (download the JSON for all of them)</td></tr>",
            rows.len() - PLAN_ROWS_SHOWN
        );
    }
    out.push_str("</tbody></table>");
    if !plan.rejected.is_empty() {
        let _ = write!(
            out,
            "<h3>Rejected ({})</h3><table class=\"rejected\"><thead><tr><th>Object</th><th>Name</th>\
             <th>Source id</th><th>Field</th><th>Reason</th></tr></thead><tbody>",
            plan.rejected.len()
        );
        for r in &plan.rejected {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"detail\">{}</td></tr>",
                esc(r.object.as_str()),
                esc(&r.name),
                esc(&r.source_id),
                esc(&r.field),
                esc(&r.reason)
            );
        }
        out.push_str("</tbody></table>");
    }
    if !plan.notes.is_empty() {
        let _ = write!(
            out,
            "<h3>Notes ({})</h3><table class=\"notes\"><thead><tr><th>Kind</th><th>Name</th><th>Source id</th>\
             <th>Message</th></tr></thead><tbody>",
            plan.notes.len()
        );
        for n in &plan.notes {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"detail\">{}</td></tr>",
                esc(&snake(n.kind)),
                esc(&n.name),
                esc(&n.source_id),
                esc(&n.message)
            );
        }
        out.push_str("</tbody></table>");
    }
    let _ = write!(out, "<p class=\"summary\">{}</p>", esc(&summary(plan)));
}

/// The summary line of a plan, as the dry-run table ends.
fn summary(plan: &Plan) -> String {
    plan.summary.line()
}

/// The approve form.
#[derive(Debug, Default, Deserialize)]
struct ApproveForm {
    /// The fingerprint of the plan shown.
    plan: Option<String>,
    token: Option<String>,
    /// The approval code of a signed-in browser's form.
    code: Option<String>,
}

async fn approve(
    State(web): State<Web>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    Form(form): Form<ApproveForm>,
) -> Response {
    if !web.connections.contains_key(&name) {
        return problem(
            StatusCode::NOT_FOUND,
            "No such connection",
            &format!("no connection is named {name:?}"),
        );
    }
    if web.token.is_none() {
        return problem(
            StatusCode::FORBIDDEN,
            "Approval refused",
            "approving from the web view needs the daemon's token: set daemon.token_env or daemon.token_file",
        );
    }
    let signed_in = web.sessions.signed_in(web.token.as_deref(), &headers);
    let by_session = signed_in
        && web.sessions.approval_code_matches(
            web.token.as_deref(),
            form.code.as_deref().unwrap_or_default(),
        );
    if !by_session
        && !token_matches(
            web.token.as_deref(),
            given_token(form.token.as_deref(), &headers),
        )
    {
        tracing::warn!(connection = %name, "Web approval refused: missing or wrong token.");
        let mut resp = problem(
            StatusCode::UNAUTHORIZED,
            "Approval refused",
            "the token is missing or wrong; nothing was applied",
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"scimsync\""),
        );
        return resp;
    }
    let Some(fingerprint) = form
        .plan
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Approval refused",
            "the form names no plan (its fingerprint); open the plan preview and approve from there",
        );
    };
    tracing::info!(connection = %name, plan = %fingerprint, "Web approval: running with the plan approved.");
    // In a task of its own: a browser that goes away does not cut the run short (the daemon's
    // shutdown still waits for it, as for any run).
    let run = {
        let (scheduler, name, plan) = (
            Arc::clone(&web.scheduler),
            name.clone(),
            fingerprint.to_owned(),
        );
        tokio::spawn(async move {
            scheduler
                .run_now_approving_plan(&name, scimsync_core::activity::Trigger::Api, plan)
                .await
        })
    };
    let report = match run.await {
        Err(e) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The run failed",
                &e.to_string(),
            );
        }
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                "The run failed",
                "the run did not finish (the daemon is stopping, or the run failed: see the runs page)",
            );
        }
        Ok(Err(e @ (SchedulerError::Busy(_) | SchedulerError::Leased { .. }))) => {
            return problem(
                StatusCode::CONFLICT,
                "Not now",
                &format!("{e}; nothing was applied, try again when it has finished"),
            );
        }
        Ok(Err(e)) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The run failed",
                &chain(&e),
            );
        }
    };
    let mut body = String::new();
    if report.plan.fingerprint() != fingerprint {
        let _ = write!(
            body,
            "<div class=\"notice bad refused\"><strong>Nothing was applied:</strong> the plan changed since it was \
             shown (approved {}, now {}). Review the plan as it is now below.</div>",
            esc(fingerprint),
            esc(&report.plan.fingerprint())
        );
        plan_html(&mut body, &web, &name, &report, signed_in);
        return html(
            StatusCode::CONFLICT,
            layout(&format!("Plan of {name} changed"), Nav::Connections, &body),
        );
    }
    let status = snake(report.status);
    let _ = write!(
        body,
        "<div class=\"notice good applied\"><strong>Approved plan <code>{}</code>.</strong> Run <a href=\"{}\">#{}</a> {}: \
         {} applied, {} failed, {} rejected, {} skipped.</div><p><a href=\"/ui\">Back to the connections</a></p>",
        esc(fingerprint),
        esc(&run_href(report.run_id)),
        report.run_id,
        badge(&status, &status),
        report.applied,
        report.failed,
        report.rejected,
        report.skipped
    );
    if let Some(m) = &report.message {
        let _ = write!(body, "<p>{}</p>", esc(m));
    }
    html(
        StatusCode::OK,
        layout(&format!("Applied: {name}"), Nav::Connections, &body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc("<img src=x onerror='a(\"b\")'>&").to_string(),
            "&lt;img src=x onerror=&#39;a(&quot;b&quot;)&#39;&gt;&amp;"
        );
        assert_eq!(esc("plain ünïcode").to_string(), "plain ünïcode");
    }

    #[test]
    fn links_encode_values_and_segments() {
        assert_eq!(
            href(
                "/ui/activity",
                &[("user", "a&b=c d/é"), ("op", ""), ("run", "3")]
            ),
            "/ui/activity?user=a%26b%3Dc%20d%2F%C3%A9&run=3"
        );
        assert_eq!(user_href("x/<y>"), "/ui/users/x%2F%3Cy%3E");
    }

    #[test]
    fn tokens_match_only_when_equal_and_configured() {
        let t = SecretString::from("s3cret-token".to_owned());
        assert!(token_matches(Some(&t), "s3cret-token"));
        assert!(!token_matches(Some(&t), "s3cret-tokeN"));
        assert!(!token_matches(Some(&t), "s3cret-token2"));
        assert!(!token_matches(Some(&t), "s3cret"));
        assert!(!token_matches(Some(&t), ""));
        assert!(!token_matches(None, "anything"));
        let empty_headers = HeaderMap::new();
        assert_eq!(given_token(Some("a"), &empty_headers), "a");
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-token"),
        );
        assert_eq!(given_token(None, &h), "s3cret-token");
        assert_eq!(given_token(Some(""), &h), "s3cret-token");
    }

    #[test]
    fn only_the_approve_action_checks_its_own_token() {
        assert!(is_approve_path("/ui/connections/salesforce/approve"));
        assert!(!is_approve_path("/ui/connections//approve"));
        assert!(!is_approve_path("/ui/connections/a/b/approve"));
        assert!(!is_approve_path("/connections/salesforce/sync"));
        assert!(!is_approve_path("/ui/connections/salesforce/plan"));
    }

    #[test]
    fn next_run_follows_six_field_schedules_in_utc() {
        // 1970-01-01T00:07:30Z; every 15 minutes → 00:15:00.
        let at = Timestamp::from_millis(450_000);
        assert_eq!(
            next_run("0 */15 * * * *", at),
            Some(Timestamp::from_millis(900_000))
        );
        assert_eq!(
            next_run("*/15 * * * *", at),
            Some(Timestamp::from_millis(900_000)),
            "five fields read as the scheduler reads them"
        );
        // On the second, whatever the fraction of the start; strictly after it.
        assert_eq!(
            next_run("0 */15 * * * *", Timestamp::from_millis(450_843)),
            Some(Timestamp::from_millis(900_000))
        );
        assert_eq!(
            next_run("0 */15 * * * *", Timestamp::from_millis(900_500)),
            Some(Timestamp::from_millis(1_800_000))
        );
        assert_eq!(next_run("not a schedule", at), None);
    }

    #[test]
    fn activity_filters_are_checked_and_composed() {
        let p = ActivityParams {
            connection: Some("sf".into()),
            run: Some("#12".into()),
            user: Some("  ".into()),
            outcome: Some("skipped".into()),
            before: Some("90".into()),
            ..ActivityParams::default()
        };
        let q = p.query().expect("valid");
        assert_eq!(q.connection.as_deref(), Some("sf"));
        assert_eq!(q.run_id, Some(12));
        assert_eq!(q.user, None, "blank filters are no filters");
        assert_eq!(q.outcome, Some(Outcome::Skipped));
        assert_eq!(q.before_id, Some(90));
        assert_eq!(q.limit, Some(ACTIVITY_PAGE));
        let bad = ActivityParams {
            outcome: Some("great".into()),
            ..ActivityParams::default()
        };
        assert!(bad.query().unwrap_err().contains("outcome"));
        let bad = ActivityParams {
            since: Some("yesterday".into()),
            ..ActivityParams::default()
        };
        assert!(bad.query().is_err());
    }

    #[test]
    fn activity_rows_escape_hostile_names() {
        let e = ActivityEntry {
            id: 1,
            run_id: 2,
            connection: "sf".into(),
            at: Timestamp(0),
            op: "create_user".into(),
            outcome: Outcome::Ok,
            object: "user".into(),
            source_id: Some("DU<1>".into()),
            target_id: None,
            name: "<script>alert(1)</script>@example.com".into(),
            detail: "title=\"><b>".into(),
            attempts: 0,
        };
        let table = activity_table(&[e], true);
        assert!(!table.contains("<script>"), "{table}");
        assert!(!table.contains("\"><b>"), "{table}");
        assert!(table.contains("&lt;script&gt;alert(1)&lt;/script&gt;@example.com"));
        assert!(table.contains("href=\"/ui/users/DU%3C1%3E\""), "{table}");
    }
}
