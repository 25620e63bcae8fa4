//! A process killed while it records: every write it was told was saved is in the SQLite file
//! afterwards (the group commit answers a write only once its batch is committed, and a batch
//! cut short by the kill is rolled back whole).
//!
//! The test runs this binary again as the child (`child_records_until_killed`, which does
//! nothing unless `SCIMSYNC_CRASH_STORE` is set), reads what it was told was saved from its
//! output, and kills it with SIGKILL while 32 writers are recording.
#![allow(clippy::unwrap_used)]

use scimsync_core::activity::{ActivityEntry, ActivityQuery, Outcome, Trigger};
use scimsync_core::links::{Origin, UserLink};
use scimsync_core::ports::{NewRun, Store};
use scimsync_core::{SourceUserId, TargetUserId, Timestamp};
use scimsync_store::SqlStore;
use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

const STORE: &str = "SCIMSYNC_CRASH_STORE";
const T0: Timestamp = Timestamp::from_millis(1_795_860_000_000);

fn entry(run_id: i64, n: u64) -> ActivityEntry {
    ActivityEntry {
        id: 0,
        run_id,
        connection: "salesforce".to_owned(),
        at: T0.plus_millis(i64::try_from(n).unwrap_or(i64::MAX)),
        op: "create_user".to_owned(),
        outcome: Outcome::Ok,
        object: "user".to_owned(),
        source_id: Some(format!("DU{n}")),
        target_id: Some(format!("005U{n}")),
        name: format!("user{n}@example.com"),
        detail: String::new(),
        attempts: 1,
    }
}

/// The child: 32 writers, each recording an entry and saving a link, over and over, printing
/// each write once it returned `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_records_until_killed() {
    let Some(url) = std::env::var_os(STORE) else {
        return;
    };
    let store = SqlStore::connect(url.to_str().unwrap()).await.unwrap();
    let run = store
        .start_run(&NewRun {
            connection: "salesforce".to_owned(),
            trigger: Trigger::Manual,
            dry_run: false,
            started_at: T0,
        })
        .await
        .unwrap();
    let writers: Vec<_> = (0..32u64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for k in 0.. {
                    let n = k * 32 + w;
                    let id = store.record(&entry(run, n)).await.unwrap();
                    let link = UserLink {
                        source_id: SourceUserId::new(format!("DU{n}")),
                        target_id: TargetUserId::new(format!("005U{n}")),
                        origin: Origin::Created,
                        assigned_permission_sets: BTreeSet::new(),
                        pending_email: None,
                    };
                    store.save_user_link("salesforce", &link).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "saved {id} DU{n}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
}

#[test]
fn every_write_acknowledged_before_a_kill_is_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_records_until_killed", "--exact", "--nocapture"])
        .env(STORE, &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged: Vec<(i64, String)> = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("saved ") {
            let (id, source) = rest.split_once(' ').unwrap();
            acknowledged.push((id.parse().unwrap(), source.to_owned()));
            if acknowledged.len() == 2_000 {
                break;
            }
        }
    }
    child.kill().unwrap();
    // What it printed before it died was acknowledged too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("saved ") {
            let (id, source) = rest.split_once(' ').unwrap();
            acknowledged.push((id.parse().unwrap(), source.to_owned()));
        }
    }
    child.wait().unwrap();
    assert!(acknowledged.len() >= 2_000, "{}", acknowledged.len());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqlStore::connect(&url).await.unwrap();
        let stored: BTreeSet<i64> = store
            .query_activity(&ActivityQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        let linked: BTreeSet<String> = store
            .load_links("salesforce")
            .await
            .unwrap()
            .users
            .into_iter()
            .map(|l| l.source_id.as_str().to_owned())
            .collect();
        for (id, source) in &acknowledged {
            assert!(
                stored.contains(id),
                "entry {id} was acknowledged, then lost"
            );
            assert!(
                linked.contains(source),
                "link {source} was acknowledged, then lost"
            );
        }
        store.close().await;
    });
}
