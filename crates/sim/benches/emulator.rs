//! Does the Salesforce emulator's cost per request stay flat as its org grows?
//!
//! `cargo bench -p scimsync-sim --bench emulator` (sizes from `SCIMSYNC_BENCH_USERS`, default
//! `1000,10000,50000`). For each size it starts a fresh emulator and, over loopback HTTP on one
//! keep-alive connection (one thread runs both client and emulator), creates that many users
//! one by one the way an initial sync does (`POST /Users` with a profile, an email and an
//! externalId: each create passes the userName and nickName uniqueness checks). It then times,
//! against the full org, `userName eq` and `externalId eq` filters, 50 `id eq` clauses joined
//! by `or` (a targeted read's filter), the last page of
//! `GET /Users`, renames (userName and nickName changes) and group member adds.
//!
//! Times are wall-clock, and for the creates also the CPU time of the one thread
//! (`/proc/thread-self/schedstat`, Linux): on a shared machine the CPU figures are the steady
//! ones, since they leave out waiting for a core. A throwaway round of 1,000 runs first.
//! Output is `key=value` lines: per size `n<N>_create_mean_us` (mean over the whole fill),
//! `n<N>_create_last_window_us` (mean over its last 1,000 creates: the cost at size N), the
//! same in CPU time (`…_cpu_us`),
//! and the other operations' mean in µs; then `ratio_<key>_<N>_over_<smallest>` for each
//! key and size. A flat emulator keeps the ratios near 1 (HTTP and JSON work per request are
//! the same at every size); one that scans its users per request grows them with N.
#![allow(clippy::unwrap_used)]

use scimsync_sim::salesforce::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SalesforceConfig, SalesforceSim,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Creates timed at the end of each fill: the per-create cost at that size.
const WINDOW: usize = 1_000;
/// Repetitions of each operation measured against the full org.
const PROBES: usize = 200;

/// An emulator with a token and a client.
struct Org {
    sim: SalesforceSim,
    http: reqwest::Client,
    token: String,
    profile: String,
}

impl Org {
    async fn start() -> Self {
        let sim = SalesforceSim::start(SalesforceConfig {
            daily_api_limit: u64::MAX,
            ..SalesforceConfig::demo()
        })
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let body: Value = http
            .post(sim.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEMO_CLIENT_ID),
                ("client_secret", DEMO_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        let profile = sim.catalogue_id("Standard User").unwrap();
        Self {
            sim,
            http,
            token,
            profile,
        }
    }

    /// Sends one request; panics unless it answers `want`. Returns the body.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, want, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn user_body(&self, i: usize) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("user{i}@bench.example.com"),
            "externalId": format!("ext-{i}"),
            "name": {"givenName": "Bench", "familyName": format!("User{i}")},
            "emails": [{"type": "work", "primary": true, "value": format!("user{i}@bench.example.com")}],
            "entitlements": [{"value": self.profile}],
        })
    }
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// CPU time this thread has run (user and system), where Linux tells it.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn micros(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// Measures one size; returns `(key, µs)` pairs and the fill's seconds.
async fn measure(n: usize) -> (Vec<(&'static str, f64)>, f64) {
    let org = Org::start().await;
    let mut ids = Vec::with_capacity(n);
    let fill = Instant::now();
    let fill_cpu = thread_cpu();
    let mut window = Duration::ZERO;
    let mut window_cpu = None;
    for i in 0..n {
        if i + WINDOW == n.max(WINDOW) {
            window_cpu = thread_cpu();
        }
        let t = Instant::now();
        let body = org
            .call(reqwest::Method::POST, "/Users", Some(org.user_body(i)), 201)
            .await;
        if i + WINDOW >= n {
            window += t.elapsed();
        }
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let fill = fill.elapsed();
    let end_cpu = thread_cpu();
    let cpu_since = |from: Option<Duration>| Some(end_cpu?.saturating_sub(from?));
    let fill_cpu = cpu_since(fill_cpu);
    let window_cpu = cpu_since(window_cpu);

    let probe = |k: usize| (k * 7919) % n;
    let t = Instant::now();
    for k in 0..PROBES {
        let name = format!("USER{}@Bench.Example.com", probe(k));
        let body = org
            .call(
                reqwest::Method::GET,
                &format!("/Users?filter=userName%20eq%20%22{name}%22"),
                None,
                200,
            )
            .await;
        assert_eq!(body["totalResults"], 1);
    }
    let filter_user_name = t.elapsed();

    let t = Instant::now();
    for k in 0..PROBES {
        let body = org
            .call(
                reqwest::Method::GET,
                &format!("/Users?filter=externalId%20eq%20%22ext-{}%22", probe(k)),
                None,
                200,
            )
            .await;
        assert_eq!(body["totalResults"], 1);
    }
    let filter_external_id = t.elapsed();

    // 50 ids joined by `or`, as a targeted read asks (answered from the index of ids).
    let t = Instant::now();
    for k in 0..PROBES / 4 {
        let filter: Vec<String> = (0..50)
            .map(|j| format!("id eq \"{}\"", ids[probe(k * 50 + j)]))
            .collect();
        let encoded: String =
            url::form_urlencoded::byte_serialize(filter.join(" or ").as_bytes()).collect();
        let body = org
            .call(
                reqwest::Method::GET,
                &format!("/Users?filter={encoded}"),
                None,
                200,
            )
            .await;
        assert!(body["totalResults"].as_u64().unwrap() >= 1);
    }
    let filter_or_50_ids = t.elapsed();

    let page = 50;
    let t = Instant::now();
    for _ in 0..PROBES / 4 {
        let body = org
            .call(
                reqwest::Method::GET,
                &format!("/Users?startIndex={}&count={page}", n - page + 1),
                None,
                200,
            )
            .await;
        assert_eq!(body["itemsPerPage"], page);
    }
    let last_page = t.elapsed();

    let t = Instant::now();
    for k in 0..PROBES {
        let i = probe(k);
        org.call(
            reqwest::Method::PATCH,
            &format!("/Users/{}", ids[i]),
            Some(patch(json!([
                {"op": "replace", "path": "userName", "value": format!("renamed{k}-{i}@bench.example.com")},
                {"op": "replace", "path": "nickName", "value": format!("nick{k}-{i}")},
            ]))),
            200,
        )
        .await;
    }
    let rename = t.elapsed();

    let group = org
        .call(
            reqwest::Method::POST,
            "/Groups",
            Some(json!({"displayName": "Bench group"})),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = Instant::now();
    for k in 0..PROBES {
        org.call(
            reqwest::Method::PATCH,
            &format!("/Groups/{group}"),
            Some(patch(json!([{"op": "add", "path": "members",
                "value": {"members": [{"value": ids[(k * 104_729) % n]}]}}]))),
            200,
        )
        .await;
    }
    let member_add = t.elapsed();
    assert_eq!(org.sim.inspect().users().len(), n);

    let mut figures = vec![
        ("create_mean_us", micros(fill, n)),
        ("create_last_window_us", micros(window, WINDOW.min(n))),
        ("filter_user_name_us", micros(filter_user_name, PROBES)),
        ("filter_external_id_us", micros(filter_external_id, PROBES)),
        ("filter_or_50_ids_us", micros(filter_or_50_ids, PROBES / 4)),
        ("last_page_50_us", micros(last_page, PROBES / 4)),
        ("rename_us", micros(rename, PROBES)),
        ("member_add_us", micros(member_add, PROBES)),
    ];
    if let (Some(fill_cpu), Some(window_cpu)) = (fill_cpu, window_cpu) {
        figures.push(("create_mean_cpu_us", micros(fill_cpu, n)));
        figures.push((
            "create_last_window_cpu_us",
            micros(window_cpu, WINDOW.min(n)),
        ));
    }
    (figures, fill.as_secs_f64())
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes: Vec<usize> = std::env::var("SCIMSYNC_BENCH_USERS")
        .unwrap_or_else(|_| "1000,10000,50000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .filter(|n| *n > 0)
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A throwaway round first, so the smallest size is not charged with warming up (the
    // allocator, the connection, the first token).
    rt.block_on(measure(WINDOW));
    let mut results = Vec::new();
    for &n in &sizes {
        let (figures, fill_s) = rt.block_on(measure(n));
        println!("n{n}_fill_s={fill_s:.2}");
        for (key, value) in &figures {
            println!("n{n}_{key}={value:.1}");
        }
        results.push((n, figures));
    }
    let Some((base_n, base)) = results.first() else {
        return;
    };
    for (n, figures) in results.iter().skip(1) {
        for ((key, value), (_, base_value)) in figures.iter().zip(base) {
            println!("ratio_{key}_{n}_over_{base_n}={:.2}", value / base_value);
        }
    }
}
