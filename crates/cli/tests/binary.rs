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
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    assert!(metrics.contains("scimsync_target_api_usage"), "{metrics}");
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
        let r = http
            .post(format!("{base}/connections/salesforce/sync"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let (status, body) = answer;
    assert_eq!(status, 202, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["connection"], "salesforce", "{body}");
    let run_id = json["run_id"].as_i64().expect("a run id");
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
}

/// Issue 12, item 6: `--log-format json` writes one JSON object a line, and the daemon logs
/// when it next runs each connection (at start and after each scheduled run).
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
    // Log lines until the second "Next run scheduled." (the start's, then a run's).
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut next = 0;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            next += usize::from(line.contains("Next run scheduled."));
            lines.push(line);
            if next == 2 {
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
    assert_eq!(next.len(), 2, "{lines:?}");
    for v in next {
        assert_eq!(v["level"], "INFO", "{v}");
        assert_eq!(v["fields"]["connection"], "salesforce", "{v}");
        let at = v["fields"]["next"].as_str().unwrap();
        assert!(at.len() == 20 && at.ends_with('Z'), "RFC 3339 UTC: {at}");
    }
    assert!(
        parsed
            .iter()
            .any(|v| v["fields"]["message"] == "Reconcile finished."),
        "a scheduled run in between: {lines:?}"
    );
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
