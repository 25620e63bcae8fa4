//! The fault suite: the Duo emulator → the engine → the Salesforce emulator with faults on the
//! target side (a fifth of requests failing with 5xx, 429 storms with and without
//! `Retry-After`, 403 `REQUEST_LIMIT_EXCEEDED`, tokens revoked mid-run, dropped connections)
//! and on the source side (Duo 429s). Each converges within three runs: the third plans
//! nothing, and no account is created twice. And the activity log accounts for every write the
//! target received: the `attempts` of the entries add up to the emulator's write log, object by
//! object, and every write the emulator applied has an `ok` entry.
#![allow(clippy::unwrap_used)]

use scimsync_core::activity::{ActivityEntry, ActivityQuery, Outcome};
use scimsync_core::policy::{Governance, Policy, RuleSpec, Scope, TargetKind};
use scimsync_core::ports::Store;
use scimsync_directory::{DuoConfig, DuoSource};
use scimsync_engine::{Connection, RunOptions, RunReport, reconcile_once};
use scimsync_scim::{ScimClient, ScimConfig};
use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator;
use scimsync_sim::salesforce::{BurstKind, Inspector, Knobs, SalesforceConfig, SalesforceSim};
use scimsync_store::SqlStore;
use scimsync_tests::{duo_config, salesforce_scim_config};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct World {
    duo: DuoSim,
    sf: SalesforceSim,
    conn: Connection<DuoSource, ScimClient>,
    store: SqlStore,
    _dir: tempfile::TempDir,
}

fn policy() -> Policy {
    Policy {
        target_kind: TargetKind::Salesforce,
        scope: Scope::Groups(vec!["Sales".into(), "Support".into(), "Engineering".into()]),
        governance: Governance {
            baseline: Some(RuleSpec {
                profile: "Standard User".into(),
                permission_sets: Vec::new(),
                role: None,
            }),
            ..Governance::default()
        },
        ..Policy::default()
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect(dir.path().join("store.db").to_str().unwrap())
        .await
        .unwrap();
    let duo = DuoSim::start(DuoSimConfig::demo(), generator::sample())
        .await
        .unwrap();
    let sf = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let source = DuoSource::new(DuoConfig {
        backoff_base: Duration::from_millis(20),
        ..duo_config(&duo)
    })
    .unwrap();
    let target = ScimClient::new(ScimConfig {
        requests_per_second: 200,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        ..salesforce_scim_config(&sf)
    })
    .unwrap();
    World {
        duo,
        sf,
        conn: Connection {
            name: "salesforce".into(),
            source,
            target,
            policy: policy(),
        },
        store,
        _dir: dir,
    }
}

impl World {
    /// A run; an error (the connection failed mid-run) counts as a run too.
    async fn run(&self) -> Option<RunReport> {
        let report = tokio::time::timeout(
            Duration::from_secs(60),
            reconcile_once(&self.conn, &self.store, &RunOptions::default()),
        )
        .await
        .expect("a run ends in bounded time");
        report.ok()
    }

    /// Runs with `fault` applied before each of the first two runs (and kept up by
    /// `during` while they last), then a third: the third must plan nothing.
    async fn converges(
        &self,
        fault: impl Fn(&Knobs),
        during: impl Fn(Knobs, Inspector, CancellationToken),
        faulted_with: &[u16],
    ) {
        for _ in 0..2 {
            fault(&self.sf.knobs());
            let stop = CancellationToken::new();
            during(self.sf.knobs(), self.sf.inspect(), stop.clone());
            let _ = self.run().await;
            stop.cancel();
        }
        if !faulted_with.is_empty() {
            let faulted = self
                .sf
                .inspect()
                .request_log()
                .iter()
                .filter(|r| faulted_with.contains(&r.status))
                .count();
            assert!(faulted > 0, "the fault happened ({faulted_with:?})");
        }
        let third = self
            .run()
            .await
            .expect("the third run (no faults) reads both sides");
        assert!(
            third.plan.operations.is_empty(),
            "converged within 3 runs; still planned: {:#?}",
            third.plan.operations
        );
        let users = self.sf.inspect().users();
        assert!(users.len() > 10);
        let mut names: Vec<&str> = users.iter().map(|u| u.user_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), users.len(), "no account created twice");
        let created = self
            .sf
            .inspect()
            .request_log()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path.starts_with("/services/scim/v2/Users")
                    && r.status == 201
            })
            .count();
        assert_eq!(created, users.len(), "one successful creation per account");
        self.writes_match_the_log().await;
    }

    /// Every write request the target received is one attempt the activity log counts, on
    /// the entry of the object it concerns; every write the target applied has an `ok` entry.
    async fn writes_match_the_log(&self) {
        let entries = self
            .store
            .query_activity(&ActivityQuery {
                connection: Some("salesforce".into()),
                ..ActivityQuery::default()
            })
            .await
            .unwrap();
        let writes = self.sf.inspect().write_log();
        let logged: u64 = entries.iter().map(|e| u64::from(e.attempts)).sum();
        assert_eq!(
            logged,
            writes.len() as u64,
            "the attempts logged add up to the writes the target received"
        );
        // By object: a creation by the name it sends, anything else by the target id.
        let key = |e: &ActivityEntry| -> Option<String> {
            if e.op.starts_with("create_") {
                Some(e.name.clone())
            } else {
                e.target_id.clone()
            }
        };
        let mut received: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for w in &writes {
            let object = w.object.clone().expect("every write names its object");
            let at = received.entry(object).or_default();
            at.0 += 1;
            at.1 += u32::from(w.applied);
        }
        let mut counted: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for e in entries.iter().filter(|e| e.attempts > 0) {
            let object =
                key(e).unwrap_or_else(|| panic!("an entry that wrote names its object: {e:?}"));
            let at = counted.entry(object).or_default();
            at.0 += e.attempts;
            at.1 += u32::from(e.outcome == Outcome::Ok);
        }
        assert_eq!(
            received, counted,
            "per object: (writes received, applied) = (attempts logged, entries ok)"
        );
    }
}

/// Fails every fifth request the target receives with 503 while the run lasts.
fn five_xx(knobs: Knobs, inspect: Inspector, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut armed_at = usize::MAX;
        loop {
            let seen = inspect.request_log().len();
            if seen % 5 == 4 && armed_at != seen {
                knobs.fail_next(1, 503);
                armed_at = seen;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
    });
}

/// Nothing during the run.
fn calm(_: Knobs, _: Inspector, _: CancellationToken) {}

/// Rejects every request for rate (`kind`, with `Retry-After: retry_after`) for `lasting`
/// from the start of the run, then lets them through.
fn storm(
    kind: BurstKind,
    retry_after: u64,
    lasting: Duration,
) -> impl Fn(Knobs, Inspector, CancellationToken) {
    move |knobs, _, stop| {
        knobs.rate_limit_burst(1_000_000, retry_after, kind);
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(lasting) => {}
            }
            // One last rejection, then none (the knob counts down).
            knobs.rate_limit_burst(1, retry_after, kind);
        });
    }
}

/// Revokes every token once the target has answered ten more requests in this run.
fn revoke_midway(knobs: Knobs, inspect: Inspector, stop: CancellationToken) {
    let from = inspect.request_log().len();
    tokio::spawn(async move {
        loop {
            if inspect.request_log().len() >= from + 10 {
                knobs.revoke_tokens();
                return;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_of_requests_failing_with_5xx() {
    let w = world().await;
    w.converges(|_| {}, five_xx, &[503]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_with_retry_after() {
    let w = world().await;
    w.converges(
        |_| {},
        storm(BurstKind::TooManyRequests, 1, Duration::from_millis(1_500)),
        &[429],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_without_retry_after() {
    let w = world().await;
    // The emulator always sends a Retry-After; 0 is as good as none: the client's own
    // backoff applies.
    w.converges(
        |_| {},
        storm(BurstKind::TooManyRequests, 0, Duration::from_millis(300)),
        &[429],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limit_exceeded_403s() {
    let w = world().await;
    w.converges(
        |_| {},
        storm(
            BurstKind::RequestLimitExceeded,
            1,
            Duration::from_millis(1_500),
        ),
        &[403],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_revoked_mid_run() {
    let w = world().await;
    w.converges(|_| {}, revoke_midway, &[401]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections() {
    let w = world().await;
    w.converges(|k| k.drop_next(8), calm, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duo_rate_limits_and_target_5xx_together() {
    let w = world().await;
    w.converges(|_| {}, five_xx, &[503]).await;
    // The source side: Duo answers 429 a few times; the read backs off and the run plans nothing.
    w.duo.knobs().rate_limit_next(3);
    let report = w.run().await.expect("the read absorbs Duo's 429s");
    assert!(report.plan.operations.is_empty());
}
