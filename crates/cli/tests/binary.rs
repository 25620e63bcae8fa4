//! The real `scimsync` binary, against emulators started in the test.
#![allow(clippy::unwrap_used)]

use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator;
use scimsync_sim::salesforce::{DEMO_CLIENT_SECRET, Reading, SalesforceConfig, SalesforceSim};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn scimsync(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(args)
        .current_dir(dir)
        .env_remove("SCIMSYNC_STORE_URL")
        .env_remove("SCIMSYNC_LISTEN")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Setup {
    _duo: DuoSim,
    sf: SalesforceSim,
    dir: tempfile::TempDir,
    config: PathBuf,
}

async fn setup() -> Setup {
    let duo = DuoSim::start(DuoSimConfig::demo(), generator::sample())
        .await
        .unwrap();
    let sf = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("duo_secret_key"), duo.secret_key()).unwrap();
    std::fs::write(
        dir.path().join("salesforce_client_secret"),
        DEMO_CLIENT_SECRET,
    )
    .unwrap();
    let config = dir.path().join("scimsync.toml");
    let store = format!("sqlite://{}", dir.path().join("store.db").display());
    std::fs::write(
        &config,
        scimsync::demo::demo_config(&duo.base_url(), &sf.token_url(), &sf.base_url(), &store),
    )
    .unwrap();
    Setup {
        _duo: duo,
        sf,
        dir,
        config,
    }
}

#[test]
fn the_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = scimsync(&["demo", "--dir", "demo"], dir.path());
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for expected in [
        "1. The plan (dry run)",
        "create_user",
        "writes sent to Salesforce: 0",
        "deactivate_user",
        "verification emails sent by Salesforce: 1",
        "6. The activity log",
    ] {
        assert!(all.contains(expected), "{expected:?} missing from:\n{all}");
    }
    assert!(
        !all.contains(DEMO_CLIENT_SECRET),
        "the client secret is never printed"
    );
}

#[test]
fn check_reports_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        r#"
[[connections]]
name = "sf"
[connections.source]
api_host = "api-1.duosecurity.com"
integration_key = "DI1"
secret_key_env = "SCIMSYNC_TEST_UNSET_VARIABLE"
[connections.target]
base_url = "https://acme.my.salesforce.com/services/scim/v2"
token_url = "https://login.salesforce.com/services/oauth2/token"
client_id = "x"
client_secret_file = "missing-file"
[connections.scope]
groups = ["Sales"]
[connections.mapping]
timezone = "custom.tz"
[[connections.governance.group_rules]]
groups = ["Sales"]
priority = 1
profile = "Standard User"
"#,
    )
    .unwrap();
    let out = scimsync(&["check", "--config", config.to_str().unwrap()], dir.path());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    for path in [
        "connections[0].source.secret_key_env",
        "connections[0].target.token_url",
        "connections[0].target.client_secret_file",
        "connections[0].mapping.timezone",
        "connections[0].governance.baseline",
    ] {
        assert!(all.contains(path), "{path} missing from:\n{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_json_reconcile_and_activity_csv() {
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let c = config.clone();
    let d = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        scimsync(
            &["reconcile", "--config", &c, "--dry-run", "--format", "json"],
            &d,
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // One array, an object per connection.
    let plan = &plans[0];
    assert_eq!(plan["connection"], "salesforce");
    for field in ["operations", "rejected", "notes", "summary"] {
        assert!(plan.get(field).is_some(), "{field} missing");
    }
    assert_eq!(plan["operations"][0]["op"], "create_group");
    assert_eq!(s.sf.inspect().writes(), 0, "a dry run changes nothing");

    let (c, d) = (config.clone(), dir.clone());
    let out = tokio::task::spawn_blocking(move || scimsync(&["reconcile", "--config", &c], &d))
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejected users make it 1: {}",
        text(&out)
    );
    assert!(s.sf.inspect().users().len() > 10);

    let (c, d) = (config.clone(), dir.clone());
    let out = tokio::task::spawn_blocking(move || {
        scimsync(
            &[
                "activity",
                "--config",
                &c,
                "--op",
                "create_user",
                "--format",
                "csv",
                "--limit",
                "500",
            ],
            &d,
        )
    })
    .await
    .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,at,connection,run,op,outcome,object,name,target_id,detail"
    );
    assert_eq!(
        lines.count(),
        s.sf.inspect().users().len(),
        "one row per created account"
    );

    let (c, d) = (config.clone(), dir.clone());
    let out = tokio::task::spawn_blocking(move || {
        scimsync(
            &[
                "reconcile",
                "--config",
                &c,
                "--user",
                "bob.baker@example.com",
            ],
            &d,
        )
    })
    .await
    .unwrap();
    let all = text(&out);
    for step in ["read", "scope", "match", "rule", "action"] {
        assert!(all.contains(&format!("  {step}")), "{step} missing:\n{all}");
    }

    let (c, d) = (config, dir);
    let out = tokio::task::spawn_blocking(move || scimsync(&["runs", "--config", &c], &d))
        .await
        .unwrap();
    let runs = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        runs.contains("dry_run") && runs.contains("partial"),
        "{runs}"
    );
}

/// The environment variable and value of the daemon token in tests.
const TOKEN_VAR: &str = "SCIMSYNC_TEST_DAEMON_TOKEN";
const TOKEN: &str = "test-daemon-token-0123456789";

/// Adds a `[daemon]` table with the token (and `extra` keys) to a configuration.
fn with_daemon_token(config: &Path, extra: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        config,
        format!("[daemon]\ntoken_env = \"{TOKEN_VAR}\"\n{extra}\n{text}"),
    )
    .unwrap();
}

async fn wait_healthy(http: &reqwest::Client, base: &str) -> bool {
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_requires_its_token_for_writes_and_survives_half_open_connections() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = setup().await;
    let port = free_port();
    with_daemon_token(
        &s.config,
        "max_connections = 64\nheader_timeout_seconds = 2",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["daemon", "--config", s.config.to_str().unwrap()])
        .env("SCIMSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env(TOKEN_VAR, TOKEN)
        .current_dir(s.dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_healthy(&http, &base).await,
        "the daemon answers /healthz"
    );
    let sync = format!("{base}/connections/salesforce/sync?approve=true");
    let r = http.post(&sync).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");
    let r = http.post(&sync).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401, "a wrong token");
    let r = http
        .post(&sync)
        .bearer_auth(format!("{TOKEN}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a longer token");
    // A page loaded from another name and rebound to loopback reads nothing.
    let r = http
        .get(format!("{base}/metrics"))
        .header("host", "attacker.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200, "reads are open on loopback");
    assert!(s.sf.inspect().users().is_empty(), "nothing ran");

    // 1,100 connections that send nothing (and one that sends a byte at a time) do not
    // starve /healthz.
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    let started = std::time::Instant::now();
    let fresh = reqwest::Client::new();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        fresh.get(format!("{base}/healthz")).send(),
    )
    .await
    .expect("healthz answers while 1,100 connections are idle")
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    // A connection that sends part of a request is closed after the header timeout.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "closed after the header timeout");
    drop(idle);
    let r = http.post(&sync).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 202, "the token is accepted");

    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_to_listen_beyond_loopback_without_a_token() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = setup().await;
    let out = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["daemon", "--config", s.config.to_str().unwrap()])
        .env("SCIMSYNC_LISTEN", format!("0.0.0.0:{}", free_port()))
        .env_remove("SCIMSYNC_STORE_URL")
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("daemon.token_env"), "{}", text(&out));
    // Writes without a configured token are refused, on loopback too.
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["daemon", "--config", s.config.to_str().unwrap()])
        .env("SCIMSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("SCIMSYNC_STORE_URL")
        .current_dir(s.dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert!(wait_healthy(&http, &base).await);
    let r = http
        .post(format!("{base}/connections/salesforce/sync"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("daemon.token_env"));
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_health_metrics_and_on_demand_syncs_then_stops_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = setup().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    with_daemon_token(&s.config, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["daemon", "--config", s.config.to_str().unwrap()])
        .env("SCIMSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env(TOKEN_VAR, TOKEN)
        .current_dir(s.dir.path())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_healthy(&http, &base).await,
        "the daemon answers /healthz"
    );
    let r = http
        .post(format!("{base}/connections/nope/sync"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(format!("{base}/connections/salesforce/sync"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("scimsync_runs_total{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("scimsync_runs_total{connection=\"salesforce\""),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "scimsync_operations_total{connection=\"salesforce\",op=\"create_user\",outcome=\"ok\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("scimsync_target_api_calls_used{"),
        "{metrics}"
    );
    assert!(s.sf.inspect().users().len() > 10);
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
}

/// The setup's store, with a run of the demo connection started (entries need one).
async fn store_with_a_run(s: &Setup) -> (scimsync_store::SqlStore, i64) {
    use scimsync_core::activity::Trigger;
    use scimsync_core::ports::{NewRun, Store as _};
    let store = scimsync_store::SqlStore::connect(&format!(
        "sqlite://{}",
        s.dir.path().join("store.db").display()
    ))
    .await
    .unwrap();
    let run = store
        .start_run(&NewRun {
            connection: "salesforce".into(),
            trigger: Trigger::Manual,
            dry_run: false,
            started_at: scimsync_engine::now(),
        })
        .await
        .unwrap();
    (store, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_follow_prints_entries_as_they_are_recorded() {
    use scimsync_core::activity::{ActivityEntry, Outcome};
    use scimsync_core::ports::Store as _;
    use std::io::{BufRead, BufReader};
    let s = setup().await;
    let (store, run) = store_with_a_run(&s).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args([
            "activity",
            "--config",
            s.config.to_str().unwrap(),
            "--follow",
            "--format",
            "csv",
        ])
        .current_dir(s.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("followed.user@example.com");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store
        .record(&ActivityEntry {
            id: 0,
            run_id: run,
            connection: "salesforce".into(),
            at: scimsync_engine::now(),
            op: "create_user".into(),
            outcome: Outcome::Ok,
            object: "user".into(),
            source_id: Some("DU1".into()),
            target_id: Some("005X".into()),
            name: "followed.user@example.com".into(),
            detail: "created".into(),
            attempts: 0,
        })
        .await
        .unwrap();
    let joined = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || reader.join().unwrap()),
    )
    .await;
    // Killing the child closes its stdout, which also ends the reader if it is still waiting.
    child.kill().unwrap();
    let _ = child.wait();
    let lines = joined
        .expect("the followed entry was printed within 20 s")
        .unwrap();
    assert_eq!(
        lines[0],
        "id,at,connection,run,op,outcome,object,name,target_id,detail"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .contains("followed.user@example.com,005X,created"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_what_the_target_supports_and_what_sso_matches_on() {
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let check = move || {
        let (config, dir) = (config.clone(), dir.clone());
        tokio::task::spawn_blocking(move || scimsync(&["check", "--config", &config], &dir))
    };
    // The reading our emulator plays by default: the org declares the Federation ID extension.
    let out = check().await.unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("✓ target service provider config: patch true, filter true, etag false"),
        "{all}"
    );
    assert!(all.contains("target attributes:"), "{all}");
    assert!(
        all.contains(
            "SSO matches on: Federation ID at urn:salesforce:schemas:extension:1.0:User:federationIdentifier"
        ),
        "{all}"
    );
    eprintln!("check, default reading:\n{all}");
    // The other reading: no such extension. SSO can only match on the userName, and check says
    // how to set Salesforce up for that.
    s.sf.knobs().set_reading(Reading {
        catalogue_endpoints: true,
        ..Reading::strict()
    });
    let out = check().await.unwrap();
    let all = text(&out);
    let sso = all
        .lines()
        .find(|l| l.contains("SSO matches on: "))
        .unwrap_or_default();
    assert!(
        sso.contains("userName") && sso.contains("federation_id"),
        "the line names the fallback and the setting: {all}"
    );
    assert!(!all.contains("Federation ID at urn:salesforce"), "{all}");
    eprintln!("check, strict reading:\n{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_takes_the_lease_waits_for_it_or_says_who_holds_it() {
    use scimsync_core::ports::{NewRun, Store as _};
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let store =
        scimsync_store::SqlStore::connect(&format!("sqlite://{}", dir.join("store.db").display()))
            .await
            .unwrap();
    // A reconcile that was killed: its run stays `running` and its lease expires.
    let dead = store
        .start_run(&NewRun {
            connection: "salesforce".into(),
            trigger: scimsync_core::activity::Trigger::Manual,
            dry_run: false,
            started_at: scimsync_engine::now().plus_millis(-60_000),
        })
        .await
        .unwrap();
    // A daemon elsewhere holds the lease.
    assert!(
        store
            .acquire_lease(
                "salesforce",
                "other-host:4242",
                scimsync_engine::now(),
                Duration::from_secs(60)
            )
            .await
            .unwrap()
    );
    let (c, d) = (config.clone(), dir.clone());
    let out = tokio::task::spawn_blocking(move || scimsync(&["reconcile", "--config", &c], &d))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("held by other-host:4242 since 20"),
        "who and since when: {said}"
    );
    assert!(said.contains("--wait"), "{said}");
    assert_eq!(s.sf.inspect().writes(), 0, "nothing was applied");

    // With --wait, the run starts once the holder releases the lease.
    let (c, d) = (config.clone(), dir.clone());
    let waiting = tokio::task::spawn_blocking(move || {
        scimsync(&["reconcile", "--config", &c, "--wait", "30s"], &d)
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(s.sf.inspect().writes(), 0, "still waiting");
    store
        .release_lease("salesforce", "other-host:4242")
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "ran: {}", text(&out));
    assert!(text(&out).contains("waiting up to 30s"), "{}", text(&out));
    assert!(s.sf.inspect().users().len() > 10);
    let runs = store.list_runs(Some("salesforce"), 10).await.unwrap();
    let dead = runs.iter().find(|r| r.id == dead).unwrap();
    assert_eq!(
        dead.status,
        scimsync_core::activity::RunStatus::Abandoned,
        "{dead:?}"
    );
    assert!(
        store.lease_holder("salesforce").await.unwrap().is_none(),
        "released"
    );
    let (c, d) = (config.clone(), dir.clone());
    let out = tokio::task::spawn_blocking(move || scimsync(&["runs", "--config", &c], &d))
        .await
        .unwrap();
    assert!(text(&out).contains("abandoned"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reconciles_started_together_do_not_both_apply() {
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let start = |c: String, d: PathBuf| {
        Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(["reconcile", "--config", &c])
            .current_dir(d)
            .env_remove("SCIMSYNC_STORE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = start(config.clone(), dir.clone());
    let b = start(config.clone(), dir.clone());
    let (a, b) = tokio::task::spawn_blocking(move || {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    let codes = [a.status.code(), b.status.code()];
    assert!(
        codes.contains(&Some(1)),
        "one ran: {}\n{}",
        text(&a),
        text(&b)
    );
    for o in [&a, &b] {
        assert!(
            matches!(o.status.code(), Some(1) | Some(4)),
            "ran or found the lease held: {}",
            text(o)
        );
    }
    // Whether the second waited its turn or found the lease held, no account was created twice.
    let users = s.sf.inspect().users().len();
    assert!(users > 10);
    assert_eq!(
        s.sf.inspect().count("POST", "/services/scim/v2/Users"),
        users,
        "one POST /Users per account: none sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_activity_need_no_connection_secrets() {
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let (c, d) = (config.clone(), dir.clone());
    let out = tokio::task::spawn_blocking(move || scimsync(&["reconcile", "--config", &c], &d))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The secrets are gone (another operator's machine): the log is still readable.
    std::fs::remove_file(dir.join("duo_secret_key")).unwrap();
    std::fs::remove_file(dir.join("salesforce_client_secret")).unwrap();
    for args in [
        vec!["runs", "--config", config.as_str()],
        vec!["activity", "--config", config.as_str(), "--limit", "3"],
    ] {
        let d = dir.clone();
        let a: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let out = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            scimsync(&a, &d)
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("salesforce"),
            "{}",
            text(&out)
        );
    }
}

/// Issue 12, item 1: users the plan rejects for the same reason run after run are logged once
/// and fail only the run that first rejects them; the last success survives a daemon restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_rejections_are_logged_once_and_do_not_fail_every_run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let run = |args: Vec<String>| {
        let d = dir.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            scimsync(&args, &d)
        })
    };
    let reconcile = vec![
        "reconcile".to_owned(),
        "--config".to_owned(),
        config.clone(),
    ];
    let rejects = vec![
        "activity".to_owned(),
        "--config".to_owned(),
        config.clone(),
        "--op".to_owned(),
        "reject".to_owned(),
        "--format".to_owned(),
        "csv".to_owned(),
        "--limit".to_owned(),
        "1000".to_owned(),
    ];
    let first = run(reconcile.clone()).await.unwrap();
    assert_eq!(
        first.status.code(),
        Some(1),
        "new rejections: {}",
        text(&first)
    );
    let logged = run(rejects.clone()).await.unwrap();
    let logged = String::from_utf8_lossy(&logged.stdout).lines().count() - 1;
    assert!(logged > 0, "the sample has users without a usable email");

    for _ in 0..2 {
        let again = run(reconcile.clone()).await.unwrap();
        let all = text(&again);
        assert_eq!(again.status.code(), Some(0), "known rejections only: {all}");
        assert!(all.contains("Succeeded"), "{all}");
        assert!(
            all.contains(&format!("({logged} already logged)")),
            "counted in the summary: {all}"
        );
    }
    let out = run(rejects).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count() - 1,
        logged,
        "each rejection is logged once"
    );
    let runs = run(vec![
        "runs".to_owned(),
        "--config".to_owned(),
        config.clone(),
    ])
    .await
    .unwrap();
    let runs = String::from_utf8_lossy(&runs.stdout).into_owned();
    assert_eq!(runs.matches("succeeded").count(), 2, "{runs}");
    assert_eq!(runs.matches("partial").count(), 1, "{runs}");

    // A daemon started afterwards reports the last success before it runs anything.
    let port = free_port();
    with_daemon_token(&s.config, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["daemon", "--config", &config])
        .env("SCIMSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env(TOKEN_VAR, TOKEN)
        .current_dir(s.dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let healthy = wait_healthy(&http, &base).await;
    let metrics = if healthy {
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    } else {
        String::new()
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy, "the daemon answers /healthz");
    assert!(
        metrics.contains("scimsync_last_success_timestamp_seconds{connection=\"salesforce\"} 1"),
        "restored from the store: {metrics}"
    );
}

/// Issue 12, item 2: a group name the source lacks, in the scope or in a rule, fails `check` as
/// it would fail `reconcile`, with its path and the groups that exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_a_scope_or_rule_group_the_source_lacks() {
    let s = setup().await;
    let text_of = std::fs::read_to_string(&s.config).unwrap();
    let typo = text_of
        .replacen("\"Support\", ", "\"Suport\", ", 1)
        .replacen("groups = [\"Engineering\"]", "groups = [\"Enginering\"]", 1);
    assert_ne!(typo, text_of);
    std::fs::write(&s.config, typo).unwrap();
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || scimsync(&["check", "--config", &config], &dir))
        .await
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let scope = all
        .lines()
        .find(|l| l.starts_with("✗ scope:"))
        .unwrap_or_default();
    assert!(
        scope.contains("scope.groups[1]")
            && scope.contains("\"Suport\"")
            && scope.contains("Support"),
        "the path, the typo and the groups that exist: {all}"
    );
    let rules = all
        .lines()
        .find(|l| l.starts_with("✗ rule groups:"))
        .unwrap_or_default();
    assert!(
        rules.contains("governance.group_rules[2].groups[0]")
            && rules.contains("\"Enginering\"")
            && rules.contains("Engineering"),
        "{all}"
    );
}

/// Issue 12, item 3: a relative SQLite path is the configuration folder's, wherever the command
/// is started; `check` prints the absolute path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_sqlite_store_is_found_from_any_folder() {
    let s = setup().await;
    let configured = std::fs::read_to_string(&s.config).unwrap();
    let absolute = format!("sqlite://{}", s.dir.path().join("store.db").display());
    assert!(configured.contains(&absolute));
    std::fs::write(
        &s.config,
        configured.replace(&absolute, "sqlite://store.db"),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = s.config.to_str().unwrap().to_owned();
    let run = |args: Vec<String>, from: PathBuf| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            scimsync(&args, &from)
        })
    };
    let args = |cmd: &str| vec![cmd.to_owned(), "--config".to_owned(), config.clone()];
    let out = run(args("reconcile"), elsewhere.path().to_owned())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        s.dir.path().join("store.db").exists(),
        "beside the configuration"
    );
    assert!(
        !elsewhere.path().join("store.db").exists(),
        "not in the current folder"
    );
    let out = run(args("check"), elsewhere.path().to_owned())
        .await
        .unwrap();
    let all = text(&out);
    assert!(all.contains(&format!("✓ store {absolute}")), "{all}");
    let out = run(args("runs"), s.dir.path().to_owned()).await.unwrap();
    let runs = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        runs.contains("partial"),
        "the same store from its own folder: {runs}"
    );
}

/// Issue 12, item 4: `activity --follow` starts at the end of the log (or gives the `--limit`
/// newest first), keeps its table aligned with a header printed over an empty batch, and
/// stops quietly on Ctrl-C.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_follow_starts_at_the_end_honours_limit_and_stops_quietly() {
    use scimsync_core::activity::{ActivityEntry, Outcome};
    use scimsync_core::ports::Store as _;
    use std::io::{BufRead, BufReader, Read as _};
    let s = setup().await;
    let (store, run) = store_with_a_run(&s).await;
    let entry = |name: &str| ActivityEntry {
        id: 0,
        run_id: run,
        connection: "salesforce".into(),
        at: scimsync_engine::now(),
        op: "create_user".into(),
        outcome: Outcome::Ok,
        object: "user".into(),
        source_id: Some(format!("S-{name}")),
        target_id: Some("005X".into()),
        name: name.into(),
        detail: "created".into(),
        attempts: 0,
    };
    for i in 0..5 {
        store
            .record(&entry(&format!("old{i}@example.com")))
            .await
            .unwrap();
    }
    let follow = |extra: &[&str]| {
        let mut args = vec![
            "activity",
            "--config",
            s.config.to_str().unwrap(),
            "--follow",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(&args)
            .current_dir(s.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Lines until the one naming new@example.com (or the end of the output).
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let done = line.contains("new@example.com");
                lines.push(line);
                if done {
                    break;
                }
            }
            lines
        });
        (child, reader)
    };
    let csv = follow(&["--format", "csv"]);
    let limited = follow(&["--format", "csv", "--limit", "2"]);
    let table = follow(&[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.record(&entry("new@example.com")).await.unwrap();
    let mut outputs = Vec::new();
    for (mut child, reader) in [csv, limited, table] {
        let lines = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::task::spawn_blocking(move || reader.join().unwrap()),
        )
        .await;
        // Ctrl-C: a clean exit, and nothing on stderr.
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        let lines = lines.expect("the new entry within 20 s").unwrap();
        assert!(status.success(), "{status:?} {stderr}");
        assert_eq!(stderr, "", "Ctrl-C is quiet");
        outputs.push(lines);
    }
    let names = |lines: &[String]| -> Vec<String> {
        lines[1..]
            .iter()
            .map(|l| l.split(',').nth(7).unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        names(&outputs[0]),
        ["new@example.com"],
        "from the end: {:?}",
        outputs[0]
    );
    assert_eq!(
        names(&outputs[1]),
        ["old3@example.com", "old4@example.com", "new@example.com"],
        "the --limit newest first: {:?}",
        outputs[1]
    );
    let table = &outputs[2];
    assert_eq!(table.len(), 2, "{table:?}");
    for column in ["AT", "OP", "NAME", "DETAIL"] {
        let at = table[0].find(column).unwrap();
        let cell = &table[1][at..];
        assert!(
            at > 0 && table[1].as_bytes()[at - 1] == b' ' && !cell.starts_with(' '),
            "{column} lines up with its cells:\n{}\n{}",
            table[0],
            table[1]
        );
    }
}

/// Issue 12, item 5: a refused connection names the URL; a base URL without
/// `/services/scim/v2` gets the expected one; the 202 of `POST …/sync` carries the run id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_url_and_the_sync_answer_names_the_run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = setup().await;
    let configured = std::fs::read_to_string(&s.config).unwrap();
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let reconcile = || {
        let (c, d) = (config.clone(), dir.clone());
        tokio::task::spawn_blocking(move || scimsync(&["reconcile", "--config", &c], &d))
    };

    // Nothing listens on the token URL's port.
    let closed = free_port();
    let token_url = s.sf.token_url();
    let nowhere = format!("http://127.0.0.1:{closed}/services/oauth2/token");
    std::fs::write(&s.config, configured.replace(&token_url, &nowhere)).unwrap();
    let out = reconcile().await.unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains(&nowhere), "the URL refused: {all}");

    // The My Domain without the SCIM path: discovery finds nothing there.
    let origin = s.sf.base_url().replace("/services/scim/v2", "");
    std::fs::write(
        &s.config,
        configured.replace(
            &format!("\"{}\"", s.sf.base_url()),
            &format!("\"{origin}\""),
        ),
    )
    .unwrap();
    let out = reconcile().await.unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains(&format!("{origin}/services/scim/v2")),
        "the expected base URL: {all}"
    );
    assert_eq!(s.sf.inspect().writes(), 0);

    // The daemon's 202 names the run it started.
    std::fs::write(&s.config, &configured).unwrap();
    with_daemon_token(&s.config, "");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["daemon", "--config", &config])
        .env("SCIMSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env(TOKEN_VAR, TOKEN)
        .current_dir(s.dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let answer = async {
        assert!(
            wait_healthy(&http, &base).await,
            "the daemon answers /healthz"
        );
        let sync = |query: &str| {
            let request = http
                .post(format!("{base}/connections/salesforce/sync{query}"))
                .bearer_auth(TOKEN);
            async move {
                let r = request.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        // Asked again every 200 ms while the connection is busy (409).
        let sync_when_free = |query: &'static str| async move {
            let mut answer = sync(query).await;
            for _ in 0..100 {
                if answer.0 != 409 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                answer = sync(query).await;
            }
            answer
        };
        let first = sync("").await;
        // `?full=true` asks for a whole read of the target (as `reconcile --full`), once the
        // first run is over.
        let full = sync_when_free("?full=true").await;
        // The full run is over once another request is no longer refused as busy (that one
        // is stopped with the daemon).
        sync_when_free("").await;
        (first, full)
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let ((status, body), (full_status, full_body)) = answer;
    assert_eq!(status, 202, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["connection"], "salesforce", "{body}");
    let run_id = json["run_id"].as_i64().expect("a run id");
    assert_eq!(full_status, 202, "{full_body}");
    let json: serde_json::Value = serde_json::from_str(&full_body).unwrap();
    let full_id = json["run_id"].as_i64().expect("a run id");
    let runs = tokio::task::spawn_blocking(move || {
        scimsync(&["runs", "--config", &config, "--format", "csv"], &dir)
    })
    .await
    .unwrap();
    let runs = String::from_utf8_lossy(&runs.stdout).into_owned();
    assert!(
        runs.lines()
            .any(|l| l.starts_with(&format!("{run_id},")) && l.contains("api")),
        "the id of the run the daemon started: {runs}"
    );
    assert!(
        runs.lines().any(|l| l.starts_with(&format!("{full_id},"))
            && l.contains("api")
            && l.contains("full (asked for)")),
        "the run started with ?full=true read the whole target: {runs}"
    );
}

/// Issue 12, item 6: `--log-format json` writes one JSON object a line, and the daemon logs
/// when it next runs each connection (at start and after each scheduled run), and a run's
/// progress while it applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_and_the_daemon_logs_the_next_run() {
    use std::io::{BufRead, BufReader};
    let s = setup().await;
    let configured = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        configured.replace(
            "schedule = \"0 */15 * * * *\"",
            "schedule = \"*/2 * * * * *\"",
        ),
    )
    .unwrap();
    with_daemon_token(&s.config, "");
    // Slow enough writes for a progress line (every second here) during the scheduled run.
    s.sf.knobs().set_latency(Duration::from_millis(300));
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args([
            "daemon",
            "--config",
            s.config.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .env("SCIMSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env(TOKEN_VAR, TOKEN)
        .env("SCIMSYNC_PROGRESS_INTERVAL", "1")
        .env_remove("SCIMSYNC_LOG")
        .current_dir(s.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Log lines until the "Next run scheduled." after a finished run (the start logs one first).
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut next = 0;
        let mut finished = false;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            finished |= line.contains("Reconcile finished.");
            next += usize::from(line.contains("Next run scheduled."));
            lines.push(line);
            if finished
                && next >= 2
                && lines
                    .last()
                    .is_some_and(|l| l.contains("Next run scheduled."))
            {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || reader.join().unwrap()),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.expect("two next-run lines within 30 s").unwrap();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let next: Vec<&serde_json::Value> = parsed
        .iter()
        .filter(|v| v["fields"]["message"] == "Next run scheduled.")
        .collect();
    assert!(next.len() >= 2, "{lines:?}");
    for v in next {
        assert_eq!(v["level"], "INFO", "{v}");
        assert_eq!(v["fields"]["connection"], "salesforce", "{v}");
        let at = v["fields"]["next"].as_str().unwrap();
        assert!(at.len() == 20 && at.ends_with('Z'), "RFC 3339 UTC: {at}");
    }
    let finished = parsed
        .iter()
        .find(|v| v["fields"]["message"] == "Reconcile finished.")
        .unwrap_or_else(|| panic!("a scheduled run in between: {lines:?}"));
    // The run's span carries the connection and the run id into each of its lines.
    assert_eq!(finished["span"]["name"], "run", "{finished}");
    assert_eq!(finished["span"]["connection"], "salesforce", "{finished}");
    assert!(
        finished["span"]["run_id"].as_i64().is_some_and(|id| id > 0),
        "{finished}"
    );
    assert!(
        parsed.iter().any(|v| v["target"] == "scimsync::progress"
            && v["fields"]["connection"] == "salesforce"
            && v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("progress: ") && m.contains("create_user"))),
        "the run's progress in the daemon's log: {lines:?}"
    );
}

/// GETs a page of the daemon: status and body.
async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let r = http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls `url` until `done` holds for its answer (30 s at most); the last answer.
async fn poll(
    http: &reqwest::Client,
    url: &str,
    done: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..300 {
        last = get(http, url).await;
        if done(last.0, &last.1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// A daemon killed when dropped (a failed assertion leaves none behind).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the daemon of a setup on `port`, with the token.
fn start_daemon(s: &Setup, port: u16) -> Daemon {
    Daemon(
        Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(["daemon", "--config", s.config.to_str().unwrap()])
            .env("SCIMSYNC_LISTEN", format!("127.0.0.1:{port}"))
            .env(TOKEN_VAR, TOKEN)
            .env_remove("SCIMSYNC_STORE_URL")
            .current_dir(s.dir.path())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Issue 12, items 1 and 2: `/metrics` has one metric per quantity (last status, duration,
/// guard holds, held refusals, next run, build); `/readyz` says 503 naming the connection
/// whose guard holds deactivations (also after a restart) or whose run is stuck, and
/// `/healthz` says 503 while this daemon's run is stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reports_readiness_stuck_runs_and_every_metric() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = setup().await;
    with_daemon_token(&s.config, "stuck_after_seconds = 3");
    let port = free_port();
    let child = start_daemon(&s, port);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert!(wait_healthy(&http, &base).await);
    let (status, body) = get(&http, &format!("{base}/readyz")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"problems\":[],\"ready\":true}\n")
    );
    let (_, metrics) = get(&http, &format!("{base}/metrics")).await;
    for expected in [
        format!(
            "scimsync_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        "scimsync_next_run_timestamp_seconds{connection=\"salesforce\"} ".to_owned(),
        "scimsync_guard_held_deactivations{connection=\"salesforce\"} 0".to_owned(),
    ] {
        assert!(metrics.contains(&expected), "{expected} in {metrics}");
    }
    let next: f64 = metric_value(&metrics, "scimsync_next_run_timestamp_seconds{");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        next > now && next <= now + 900.0,
        "within 15 minutes: {next}"
    );

    let sync = format!("{base}/connections/salesforce/sync");
    let r = http.post(&sync).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let (_, metrics) = poll(&http, &format!("{base}/metrics"), |_, m| {
        m.contains("scimsync_runs_total{")
    })
    .await;
    for expected in [
        // The sample directory has records the plan rejects.
        "scimsync_last_run_status{connection=\"salesforce\",status=\"partial\"} 1",
        "scimsync_last_run_status{connection=\"salesforce\",status=\"succeeded\"} 0",
        "scimsync_last_run_status{connection=\"salesforce\",status=\"failed\"} 0",
        "scimsync_held_refusals{connection=\"salesforce\"} 0",
        "scimsync_run_started_timestamp_seconds{connection=\"salesforce\"} 0.0",
    ] {
        assert!(
            metrics.lines().any(|l| l == expected),
            "{expected} in {metrics}"
        );
    }
    assert!(metric_value(&metrics, "scimsync_last_run_duration_seconds{") > 0.0);
    assert!(
        !metrics.contains("kind=\"used\""),
        "used and limit are two metrics: {metrics}"
    );
    assert!(metrics.contains("scimsync_target_api_calls_limit{connection=\"salesforce\"}"));

    // Eight people leave: over the guard's 20%, the deactivations are held.
    s._duo.dataset().edit(|d| {
        let keep = d.users.len() - 8;
        d.users.truncate(keep);
    });
    let r = http.post(&sync).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let (status, body) = poll(&http, &format!("{base}/readyz"), |s, _| s == 503).await;
    assert_eq!(status, 503, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["ready"], false);
    assert_eq!(json["problems"][0]["connection"], "salesforce", "{body}");
    assert_eq!(json["problems"][0]["problem"], "guarded", "{body}");
    let (_, metrics) = get(&http, &format!("{base}/metrics")).await;
    let held = metric_value(&metrics, "scimsync_guard_held_deactivations{");
    assert!(held >= 1.0, "{metrics}");
    assert!(
        json["problems"][0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("holds {held} deactivation")),
        "{body}"
    );
    assert_eq!(get(&http, &format!("{base}/healthz")).await.0, 200);
    drop(child);

    // After a restart the guard still holds: not ready. Beyond loopback, the status alone.
    let child = start_daemon(&s, port);
    assert!(wait_healthy(&http, &base).await);
    let (status, body) = get(&http, &format!("{base}/readyz")).await;
    assert_eq!(status, 503, "restored from the store: {body}");
    assert!(body.contains("\"guarded\""), "{body}");
    let r = http
        .get(format!("{base}/readyz"))
        .header("host", "scimsync.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.text().await.unwrap(),
        "not ready\n",
        "no names without the token"
    );

    // A run slower than the bound (3 s): stuck, for /readyz and /healthz.
    s._duo.knobs().latency(Duration::from_secs(3));
    let r = http
        .post(format!("{sync}?approve=true"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (status, body) = poll(&http, &format!("{base}/healthz"), |s, _| s == 503).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("stuck"), "{body}");
    let (_, body) = get(&http, &format!("{base}/readyz")).await;
    assert!(body.contains("\"stuck\""), "{body}");
    s._duo.knobs().reset();
    let (status, body) = poll(&http, &format!("{base}/readyz"), |s, _| s == 200).await;
    assert_eq!(
        status, 200,
        "the approved run ends the guard's hold: {body}"
    );
    assert_eq!(get(&http, &format!("{base}/healthz")).await.0, 200);
    drop(child);
}

/// The value of the first sample whose line starts with `prefix`.
fn metric_value(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
}

/// Issue 12, item 3: off a terminal, `reconcile` writes a progress line every interval (counts
/// by kind, time left) instead of a line per operation; with `--log debug --log-format json`
/// every stderr line is a JSON object, the operations are there at debug level, and the
/// libraries' own chatter (hyper, reqwest, sqlx…) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_a_terminal_progress_is_a_line_every_interval_and_logs_skip_library_noise() {
    let s = setup().await;
    s.sf.knobs().set_latency(Duration::from_millis(300));
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(["reconcile", "--config", &config])
            .env("SCIMSYNC_PROGRESS_INTERVAL", "1")
            .env_remove("SCIMSYNC_LOG")
            .env_remove("SCIMSYNC_STORE_URL")
            .current_dir(&dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "rejections: {}", text(&out));
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(!progress.is_empty(), "{stderr}");
    assert!(
        progress[0].contains(" operations (") && progress[0].contains("create_user "),
        "{stderr}"
    );
    assert!(
        progress.iter().any(|l| l.contains("s left")),
        "an estimate once something is done: {stderr}"
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with("ok create_user")),
        "no line per operation: {stderr}"
    );

    // Debug logs as JSON: the operations, none of the libraries' lines.
    s.sf.knobs().set_latency(Duration::ZERO);
    s._duo.dataset().edit(|d| {
        for u in &mut d.users {
            u.lastname.push('x');
            u.realname.push('x');
        }
    });
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args([
                "reconcile",
                "--config",
                &config,
                "--log",
                "debug",
                "--log-format",
                "json",
            ])
            .env_remove("SCIMSYNC_LOG")
            .env_remove("SCIMSYNC_STORE_URL")
            .current_dir(&dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|v| v["target"] == "scimsync::progress"
            && v["level"] == "DEBUG"
            && v["fields"]["op"] == "update_user"),
        "{stderr}"
    );
    for v in &lines {
        let target = v["target"].as_str().unwrap_or_default();
        assert!(
            !["hyper", "h2", "reqwest", "sqlx", "tower", "rustls"]
                .iter()
                .any(|noisy| target.starts_with(noisy)),
            "{v}"
        );
    }
}

/// Issue 12, item 3: `runs` ends with when each connection next runs on its schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_shows_when_each_connection_runs_next() {
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || scimsync(&["runs", "--config", &config], &dir))
        .await
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let line = all
        .lines()
        .find(|l| l.starts_with("next run of salesforce: "))
        .unwrap_or_else(|| panic!("{all}"));
    // Every 15 minutes: the next quarter hour, in UTC.
    let at = line["next run of salesforce: ".len()..]
        .split(' ')
        .next()
        .unwrap();
    assert!(at.ends_with('Z') && at.contains(":00.000Z"), "{line}");
    let minute: u32 = at[14..16].parse().unwrap();
    assert_eq!(minute % 15, 0, "{line}");
}

/// Issue 12, item 4: a profile, permission set or role the target lacks fails `check` with its
/// configuration path and what the target offers; `catalogue` and `groups` list what the
/// target and the source offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_resolves_catalogue_names_and_catalogue_and_groups_list_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let run = |args: Vec<String>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            scimsync(&args, &dir)
        })
    };
    let args = |cmd: &str, rest: &[&str]| {
        let mut a = vec![cmd.to_owned(), "--config".to_owned(), config.clone()];
        a.extend(rest.iter().map(|s| (*s).to_owned()));
        a
    };

    let out = run(args("catalogue", &["--format", "json"])).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = |kind: &str| -> Vec<String> {
        listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind && e["connection"] == "salesforce")
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        names("profile").contains(&"Standard User".to_owned()),
        "{listed}"
    );
    assert!(
        names("permission_set").contains(&"Sales Cloud User".to_owned()),
        "{listed}"
    );
    assert!(names("role").contains(&"VP Sales".to_owned()), "{listed}");
    let out = run(args("catalogue", &[])).await.unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.starts_with("CONNECTION  KIND"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("role") && l.contains("Sales Rep")),
        "{table}"
    );

    let out = run(args("groups", &["--format", "csv"])).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        csv.starts_with("connection,name,id,members,description\n"),
        "{csv}"
    );
    let sales = csv
        .lines()
        .find(|l| l.starts_with("salesforce,Sales,"))
        .unwrap_or_else(|| panic!("{csv}"));
    let members: u64 = sales.split(',').nth(3).unwrap().parse().unwrap();
    assert!(members > 0, "{sales}");

    // Typos in a profile, a permission set and a role: check fails naming each path.
    let configured = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        configured
            .replacen(
                "profile = \"System Administrator\"",
                "profile = \"System Admin\"",
                1,
            )
            .replacen(
                "[\"Sales Cloud User\", \"Reports Builder\"]",
                "[\"Sales Cloud User\", \"Report Builder\"]",
                1,
            )
            .replacen("role = \"Sales Rep\"", "role = \"Sales Representative\"", 1),
    )
    .unwrap();
    let out = run(args("check", &[])).await.unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let governance = all
        .lines()
        .find(|l| l.starts_with("✗ governance:"))
        .unwrap_or_else(|| panic!("{all}"));
    for expected in [
        "governance.group_rules[2].profile",
        "\"System Admin\"",
        "System Administrator",
        "governance.group_rules[0].permission_sets[1]",
        "Reports Builder",
        "governance.group_rules[1].role",
        "Sales Rep",
    ] {
        assert!(governance.contains(expected), "{expected} in {governance}");
    }
    assert_eq!(
        s.sf.inspect().writes(),
        0,
        "listing and checking write nothing"
    );
}

/// `scimsync ARGS` in `dir`, off the test's runtime.
async fn scimsync_async(args: &[&str], dir: &Path) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        scimsync(&args, &dir)
    })
    .await
    .unwrap()
}

/// Whether `text` is an RFC 3339 UTC time as scimsync prints them: `2026-11-22T10:00:00.000Z`.
fn is_utc_time(text: &str) -> bool {
    text.len() == 24
        && text.ends_with('Z')
        && chrono::DateTime::parse_from_rfc3339(text)
            .is_ok_and(|t| t.offset().local_minus_utc() == 0)
}

/// Issue 12: one time format (RFC 3339 UTC with `Z`) in every format; `json` one array,
/// `jsonl` one object a line; a cut listing says how many more; documents name their
/// connection and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_output_is_consistent_across_commands() {
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path();
    // A second connection, a copy of the first.
    let configured = std::fs::read_to_string(&s.config).unwrap();
    let first = configured.find("[[connections]]").unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{configured}\n{}",
            configured[first..].replace("name = \"salesforce\"", "name = \"second\"")
        ),
    )
    .unwrap();

    let out = scimsync_async(
        &[
            "reconcile",
            "--config",
            &config,
            "--dry-run",
            "--format",
            "json",
        ],
        dir,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plans = plans.as_array().expect("one JSON array");
    assert_eq!(plans.len(), 2, "{plans:?}");
    for (plan, name) in plans.iter().zip(["salesforce", "second"]) {
        assert_eq!(plan["connection"], name);
        assert!(plan["run_id"].as_i64().is_some(), "{plan}");
        assert_eq!(plan["operations"][0]["op"], "create_group");
    }
    let out = scimsync_async(
        &[
            "reconcile",
            "--config",
            &config,
            "--dry-run",
            "--format",
            "jsonl",
        ],
        dir,
    )
    .await;
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["connection"], "second");

    let out = scimsync_async(
        &[
            "reconcile",
            "--config",
            &config,
            "--connection",
            "salesforce",
        ],
        dir,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // activity: JSON array, JSON lines, CSV and table, all with the same time format.
    let out = scimsync_async(
        &[
            "activity", "--config", &config, "--format", "json", "--limit", "2",
        ],
        dir,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries.len(), 2);
    for e in &entries {
        assert!(is_utc_time(e["at"].as_str().unwrap()), "{e}");
        assert_eq!(e["connection"], "salesforce");
        assert!(e["run_id"].as_i64().is_some());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(" more — use --limit or --since"),
        "the cut is said on stderr beside JSON: {stderr}"
    );
    let out = scimsync_async(
        &[
            "activity", "--config", &config, "--format", "jsonl", "--limit", "3",
        ],
        dir,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    for line in stdout.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(is_utc_time(e["at"].as_str().unwrap()), "{e}");
    }
    let out = scimsync_async(
        &[
            "activity", "--config", &config, "--format", "csv", "--limit", "1",
        ],
        dir,
    )
    .await;
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = csv.lines().nth(1).unwrap();
    assert!(is_utc_time(row.split(',').nth(1).unwrap()), "{row}");
    let all = scimsync_async(&["activity", "--config", &config, "--limit", "100000"], dir).await;
    let total = String::from_utf8_lossy(&all.stdout).lines().count() - 1;
    assert!(total > 5, "{}", text(&all));
    let out = scimsync_async(&["activity", "--config", &config, "--limit", "5"], dir).await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 7, "header, 5 rows, the cut: {table}");
    assert!(
        is_utc_time(lines[1].split_whitespace().nth(1).unwrap()),
        "{table}"
    );
    assert_eq!(
        lines[6],
        format!("{} more — use --limit or --since", total - 5)
    );
    assert!(
        !String::from_utf8_lossy(&all.stdout).contains(" more — "),
        "nothing cut, nothing said"
    );

    // runs: the same.
    let out = scimsync_async(&["runs", "--config", &config, "--format", "json"], dir).await;
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        runs.len(),
        5,
        "two dry runs of each connection, a run: {runs:?}"
    );
    for r in &runs {
        assert!(is_utc_time(r["started_at"].as_str().unwrap()), "{r}");
        assert!(r["id"].as_i64().is_some() && r["connection"].is_string());
    }
    let out = scimsync_async(&["runs", "--config", &config, "--limit", "1"], dir).await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        is_utc_time(lines[1].split_whitespace().nth(4).unwrap()),
        "{table}"
    );
    assert_eq!(
        lines.get(2).copied(),
        Some("4 more — use --limit or --since"),
        "the cut is said right after the rows: {table}"
    );
    let out = scimsync_async(
        &[
            "runs", "--config", &config, "--format", "jsonl", "--since", "1h",
        ],
        dir,
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
}

/// Issue 12: a filter value that matches nothing because it is misspelt is refused with the
/// valid ones, exit code 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_filter_values_are_refused_with_the_valid_ones() {
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path();
    for (args, expected) in [
        (
            vec!["activity", "--op", "frobnicate"],
            vec!["frobnicate", "create_user", "deactivate_user", "refuse"],
        ),
        (
            vec!["activity", "--outcome", "great"],
            vec!["great", "ok, failed, rejected or skipped"],
        ),
        (
            vec!["activity", "--connection", "nosuch"],
            vec!["nosuch", "the configuration has: salesforce"],
        ),
        (
            vec!["runs", "--connection", "nosuch"],
            vec!["nosuch", "the configuration has: salesforce"],
        ),
        (
            vec!["activity", "--follow", "--format", "json"],
            vec!["--format jsonl"],
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--config", config.as_str()]);
        let out = scimsync_async(&all, dir).await;
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        for e in expected {
            assert!(said.contains(e), "{args:?}: {e:?} missing from {said}");
        }
    }
    // Known values pass, even with nothing logged yet.
    for args in [
        vec!["activity", "--op", "refuse"],
        vec!["activity", "--connection", "salesforce"],
        vec!["runs", "--connection", "salesforce"],
    ] {
        let mut all = args.clone();
        all.extend(["--config", config.as_str()]);
        let out = scimsync_async(&all, dir).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
}

/// Issue 12: `scimsync completions SHELL` and `scimsync man` come from the command definitions.
#[test]
fn completions_and_the_manual_page_know_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let subcommands = [
        "reconcile",
        "daemon",
        "activity",
        "runs",
        "check",
        "prune",
        "catalogue",
        "groups",
        "completions",
        "man",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let out = scimsync(&["completions", shell], dir.path());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for sub in subcommands {
            assert!(script.contains(sub), "{shell}: {sub} missing");
        }
        assert!(script.contains("dry-run"), "{shell}: options too");
    }
    let out = scimsync(&["completions", "tcsh"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let out = scimsync(&["man"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH scimsync 1"), "{page}");
    for sub in subcommands {
        assert!(
            page.contains(&format!("scimsync\\-{}(1)", sub.replace('-', "\\-"))),
            "{sub} missing from the page"
        );
    }
    let out = scimsync(&["man", "--dir", "pages"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let prune = std::fs::read_to_string(dir.path().join("pages/scimsync-prune.1")).unwrap();
    assert!(prune.contains("\\-\\-dry\\-run"), "{prune}");
    assert!(dir.path().join("pages/scimsync.1").is_file());
}

/// Old history in the setup's store: a finished run of the demo connection 100 days ago with
/// two entries, then a run started now with one.
async fn store_with_old_history(s: &Setup) {
    use scimsync_core::activity::{ActivityEntry, Outcome, RunStatus, Trigger};
    use scimsync_core::ports::{NewRun, RunEnd, Store as _};
    let (store, recent) = store_with_a_run(s).await;
    let long_ago = scimsync_engine::now().plus_millis(-100 * 86_400_000);
    let old = store
        .start_run(&NewRun {
            connection: "salesforce".into(),
            trigger: Trigger::Schedule,
            dry_run: false,
            started_at: long_ago,
        })
        .await
        .unwrap();
    store
        .finish_run(
            old,
            &RunEnd {
                status: RunStatus::Partial,
                finished_at: long_ago.plus_millis(1_000),
                source_users: None,
                planned: 2,
                applied: 2,
                failed: 0,
                rejected: 0,
                skipped: 0,
                message: None,
                read: None,
            },
        )
        .await
        .unwrap();
    for (run, at, name) in [
        (old, long_ago, "old.one@example.com"),
        (old, long_ago, "old.two@example.com"),
        (recent, scimsync_engine::now(), "recent@example.com"),
    ] {
        store
            .record(&ActivityEntry {
                id: 0,
                run_id: run,
                connection: "salesforce".into(),
                at,
                op: "create_user".into(),
                outcome: Outcome::Ok,
                object: "user".into(),
                source_id: None,
                target_id: None,
                name: name.into(),
                detail: "created".into(),
                attempts: 0,
            })
            .await
            .unwrap();
    }
    store.close().await;
}

/// Issue 12: `scimsync prune [--dry-run]` deletes what is older than `store.retention`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_the_history_older_than_the_retention() {
    let s = setup().await;
    store_with_old_history(&s).await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path();
    let out = scimsync_async(&["prune", "--config", &config, "--dry-run"], dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Would prune 2 activity entries and 1 run older than 90 days"),
        "{}",
        text(&out)
    );
    let listed = scimsync_async(&["activity", "--config", &config], dir).await;
    assert!(
        text(&listed).contains("old.one@example.com"),
        "the dry run deleted nothing"
    );

    let out = scimsync_async(&["prune", "--config", &config], dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Pruned 2 activity entries and 1 run older than 90 days"),
        "{}",
        text(&out)
    );
    let listed = text(&scimsync_async(&["activity", "--config", &config], dir).await);
    assert!(
        !listed.contains("old.one@example.com") && listed.contains("recent@example.com"),
        "{listed}"
    );
    let runs = text(&scimsync_async(&["runs", "--config", &config], dir).await);
    let rows: Vec<&str> = runs
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 1, "{runs}");
    assert!(
        rows[0].contains(" running "),
        "the running run stays: {runs}"
    );

    // A retention shorter than a day is refused (a typo must not empty the log); off is off.
    let configured = std::fs::read_to_string(&s.config).unwrap();
    for (retention, code, said) in [
        ("30s", 2, "store.retention: \"30s\" is shorter than a day"),
        ("off", 0, "Retention is off"),
    ] {
        std::fs::write(
            &s.config,
            configured.replacen(
                "[store]\n",
                &format!("[store]\nretention = \"{retention}\"\n"),
                1,
            ),
        )
        .unwrap();
        let out = scimsync_async(&["prune", "--config", &config], dir).await;
        assert_eq!(out.status.code(), Some(code), "{}", text(&out));
        assert!(text(&out).contains(said), "{}", text(&out));
    }
}

/// Issue 12: the daemon prunes by itself (soon after it starts), and reads a five-field
/// (crontab) schedule in UTC, at second 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_prunes_old_history_and_reads_five_field_schedules() {
    use std::io::{BufRead, BufReader};
    let s = setup().await;
    store_with_old_history(&s).await;
    let configured = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        configured.replace(
            "schedule = \"0 */15 * * * *\"",
            "schedule = \"*/5 * * * *\"",
        ),
    )
    .unwrap();
    let checked = scimsync_async(
        &["check", "--config", s.config.to_str().unwrap()],
        s.dir.path(),
    )
    .await;
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    for said in [
        "✓ schedule: \"*/5 * * * *\", read in UTC (5 fields)",
        "✓ retention: activity entries and runs older than 90 days are pruned",
    ] {
        assert!(
            text(&checked).contains(said),
            "{said:?}: {}",
            text(&checked)
        );
    }
    with_daemon_token(&s.config, "");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args([
            "daemon",
            "--config",
            s.config.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .env("SCIMSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env(TOKEN_VAR, TOKEN)
        .env_remove("SCIMSYNC_LOG")
        .current_dir(s.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let done = line.contains("Pruned the activity entries");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || reader.join().unwrap()),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.expect("a prune within 30 s").unwrap();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let next = parsed
        .iter()
        .find(|v| v["fields"]["message"] == "Next run scheduled.")
        .expect("the schedule was accepted");
    let at = next["fields"]["next"].as_str().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    use chrono::Timelike as _;
    assert_eq!((at.second(), at.minute() % 5), (0, 0), "{at}");
    let pruned = parsed.last().unwrap();
    assert_eq!(pruned["fields"]["activity"], 2, "{pruned}");
    assert_eq!(pruned["fields"]["runs"], 1, "{pruned}");
    let listed = text(
        &scimsync_async(
            &["activity", "--config", s.config.to_str().unwrap()],
            s.dir.path(),
        )
        .await,
    );
    assert!(!listed.contains("old.one@example.com"), "{listed}");
}

/// Issue 10: a membership of a group the directory's groups do not contain is reported per
/// user, in the dry-run plan and in the activity log, and the rest of the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_of_a_missing_group_is_reported_per_user() {
    let s = setup().await;
    // The sample directory as a file source, its first user also in a group it does not list.
    let data = s._duo.dataset().snapshot();
    let users: Vec<serde_json::Value> = data
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut groups = u.groups.clone();
            if i == 0 {
                groups.push("DGGONE00000000000000".to_owned());
            }
            serde_json::json!({"id": u.user_id, "username": u.username, "email": u.email,
                "first_name": u.firstname, "last_name": u.lastname,
                "status": u.status.replace(' ', "_"), "groups": groups})
        })
        .collect();
    let groups: Vec<serde_json::Value> = data
        .groups
        .iter()
        .map(|g| serde_json::json!({"id": g.group_id, "name": g.name}))
        .collect();
    std::fs::write(
        s.dir.path().join("directory.json"),
        serde_json::json!({"users": users, "groups": groups}).to_string(),
    )
    .unwrap();
    let (user_id, username) = (
        data.users[0].user_id.clone(),
        data.users[0].username.clone(),
    );
    let text_of = std::fs::read_to_string(&s.config).unwrap();
    let start = text_of.find("[connections.source]").unwrap();
    let end = text_of.find("[connections.target]").unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{}[connections.source]\nkind = \"file\"\npath = \"directory.json\"\n\n{}",
            &text_of[..start],
            &text_of[end..]
        ),
    )
    .unwrap();
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let (c, d) = (config.clone(), dir.clone());
    let out = tokio::task::spawn_blocking(move || {
        scimsync(&["reconcile", "--config", &c, "--dry-run"], &d)
    })
    .await
    .unwrap();
    let all = text(&out);
    let line = all
        .lines()
        .find(|l| l.contains("[unknown_group]"))
        .unwrap_or_else(|| panic!("a note in the plan: {all}"));
    assert!(
        line.contains(&user_id)
            && line.contains(&username)
            && line.contains("DGGONE00000000000000"),
        "names the user and the missing group: {line}"
    );

    let (c, d) = (config.clone(), dir.clone());
    let out = tokio::task::spawn_blocking(move || scimsync(&["reconcile", "--config", &c], &d))
        .await
        .unwrap();
    assert!(
        s.sf.inspect().writes() > 0,
        "the run goes on: {}",
        text(&out)
    );
    let (c, d) = (config.clone(), dir.clone());
    let out = tokio::task::spawn_blocking(move || {
        scimsync(
            &[
                "activity", "--config", &c, "--op", "note", "--format", "csv", "--limit", "1000",
            ],
            &d,
        )
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        log.lines().any(|l| l.contains(&username)
            && l.contains("unknown_group")
            && l.contains("DGGONE00000000000000")),
        "in the activity log: {log}"
    );
}

/// Issue 12: the activity log answers "why" in one command. After a run, the directory
/// changes (a move to another rule's group, a new last name, a user leaving the scope group);
/// `activity --user` with any identifier shows the entries with catalogue names, each changed
/// attribute as `attribute: old → new ← source`, the membership rows, the rule that chose the
/// entitlements and a deactivation naming the group left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_by_any_identifier_answers_why() {
    let s = setup().await;
    let config = s.config.to_str().unwrap().to_owned();
    let dir = s.dir.path().to_owned();
    let run = |args: Vec<String>| {
        let d = dir.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            scimsync(&args, &d)
        })
    };
    let reconcile = vec![
        "reconcile".to_owned(),
        "--config".to_owned(),
        config.clone(),
    ];
    let out = run(reconcile.clone()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let data = s._duo.dataset();
    let id = |username: &str| {
        data.snapshot()
            .users
            .iter()
            .find(|u| u.username == username)
            .map(|u| u.user_id.clone())
            .unwrap()
    };
    let group = |name: &str| {
        data.snapshot()
            .groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.group_id.clone())
            .unwrap()
    };
    let (bob, carol, maria) = (id("bob.baker"), id("carol.chen"), id("maria.rossi"));
    data.move_user(&bob, &group("Sales"), &group("Sales Managers"))
        .unwrap();
    data.set_user_names(&carol, "Carol", "Chen-Whitfield")
        .unwrap();
    data.remove_user_from_group(&maria, &group("Sales"))
        .unwrap();
    let out = run(reconcile).await.unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));

    let activity = |user: &str| {
        run(vec![
            "activity".into(),
            "--config".into(),
            config.clone(),
            "--user".into(),
            user.into(),
        ])
    };
    // Bob by his Duo username: created by the Sales rule, moved to the Sales Managers rule.
    let out = activity("bob.baker").await.unwrap();
    let bob_log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    let line = |log: &str, op: &str, needle: &str| {
        log.lines()
            .find(|l| l.contains(op) && l.contains(needle))
            .unwrap_or_else(|| panic!("no {op} row with {needle:?} in:\n{log}"))
            .to_owned()
    };
    let created = line(&bob_log, "create_user", "bob.baker@example.com");
    assert!(
        created.contains("emails[work].value: bob.baker@example.com ← email")
            && created.contains("roles: Sales Rep")
            && created.contains("(by group rule 2 (member of Sales))"),
        "{created}"
    );
    let moved = line(&bob_log, "update_user", "bob.baker@example.com");
    assert!(
        moved.contains("permissionSets: Sales Cloud User → ")
            && moved.contains("Reports Builder")
            && moved.contains("roles: Sales Rep → VP Sales")
            && moved.ends_with("(by group rule 1 (member of Sales Managers))"),
        "{moved}"
    );
    line(&bob_log, "remove_members", "Sales ");
    line(&bob_log, "add_members", "Sales Managers");
    assert!(
        !bob_log.contains("00e") && !bob_log.contains("0PS"),
        "catalogue names, not ids:\n{bob_log}"
    );
    // The same history by Duo user id, by email and by the userName.
    for other in [bob.as_str(), "BOB.BAKER@example.com"] {
        let out = activity(other).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            bob_log,
            "{other} finds the same entries"
        );
    }

    // Carol's new last name, with what the account had and where it comes from.
    let out = activity("carol.chen").await.unwrap();
    let carol_log = String::from_utf8_lossy(&out.stdout).into_owned();
    let renamed = line(&carol_log, "update_user", "carol.chen");
    assert!(
        renamed.contains("name.familyName: Chen → Chen-Whitfield ← lastname"),
        "{renamed}"
    );

    // Maria left Sales, her only scope group: the deactivation says so.
    let out = activity("maria.rossi@example.com").await.unwrap();
    let maria_log = String::from_utf8_lossy(&out.stdout).into_owned();
    let deactivated = line(&maria_log, "deactivate_user", "maria.rossi");
    assert!(
        deactivated.contains("out of scope: left group Sales"),
        "{deactivated}"
    );
    line(&maria_log, "remove_members", "Sales");
}
