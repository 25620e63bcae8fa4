//! The planner at scale, against the cost of reading its inputs.
//!
//! Builds a directory of `SCIMSYNC_BENCH_USERS` users (default 1,000,000) in one group per 50
//! users (20,000 groups for a million), 20 memberships per user, and a target in step with it
//! except for a realistic share: 1% new users, 1% gone from the directory, 2% with a changed
//! attribute, 0.5% disabled. It serializes both snapshots to JSON, then measures
//! - the time to deserialize the source and target snapshots (serde_json);
//! - the time to plan, and the ratio plan / deserialize;
//! - the planner's peak memory above its inputs, per user (VmHWM from /proc/self/status after
//!   resetting it through /proc/self/clear_refs; Linux only, reported as unknown elsewhere).
//!
//! `SCIMSYNC_BENCH_REPEAT=N` plans N more times (for profiling).
//!
//! Run: `cargo bench -p scimsync-core --bench planner` (release);
//! quick: `SCIMSYNC_BENCH_USERS=20000 cargo bench -p scimsync-core --bench planner`.

use scimsync_core::links::{GroupLink, Links, Origin, UserLink};
use scimsync_core::plan::Operation;
use scimsync_core::planner::plan;
use scimsync_core::policy::{Governance, Policy, RuleSpec};
use scimsync_core::source::{DirectoryGroup, DirectoryStatus, DirectoryUser, SourceSnapshot};
use scimsync_core::target::{
    Catalogue, CatalogueEntry, EmailAddress, Entitlement, Profile, TargetGroup, TargetSnapshot,
    TargetUser,
};
use scimsync_core::{SourceGroupId, TargetUserId, Timestamp};
use std::hint::black_box;
use std::time::Instant;

const MEMBERSHIPS: usize = 20;
const PROFILE: &str = "00e000000000001AAA";

fn source_id(i: usize) -> String {
    format!("DU{i:018}")
}
fn target_id(i: usize) -> String {
    format!("005{i:015}")
}
fn group_id(g: usize) -> String {
    format!("DG{g:018}")
}
fn email(i: usize) -> String {
    format!("user{i}@example.com")
}

/// The groups of user `i`: 20 distinct groups spread over all of them.
fn groups_of(i: usize, groups: usize) -> impl Iterator<Item = usize> {
    let per = MEMBERSHIPS.min(groups);
    let stride = groups / per;
    let base = i.wrapping_mul(2_654_435_761) % groups;
    (0..per).map(move |k| (base + k * stride) % groups)
}

fn build(users: usize) -> (SourceSnapshot, TargetSnapshot, Links) {
    let groups = (users / 50).max(MEMBERSHIPS);
    let new = |i: usize| i % 100 == 1;
    let changed = |i: usize| i % 50 == 2;
    let disabled = |i: usize| i % 200 == 3;
    let gone = users / 100;

    let mut source = SourceSnapshot::default();
    let mut target = TargetSnapshot {
        catalogue: Catalogue {
            profiles: vec![Profile {
                id: PROFILE.to_owned(),
                name: "Standard User".to_owned(),
                licence: Some("Salesforce".to_owned()),
                allows_groups: true,
            }],
            permission_sets: vec![CatalogueEntry {
                id: "0PS000000000001AAA".to_owned(),
                name: "Sales Cloud".to_owned(),
            }],
            roles: vec![],
        },
        ..TargetSnapshot::default()
    };
    let mut links = Links::default();
    let mut members: Vec<Vec<TargetUserId>> = vec![Vec::new(); groups];
    let target_user = |i: usize, last: &str| TargetUser {
        id: target_id(i).into(),
        user_name: email(i),
        external_id: Some(source_id(i)),
        given_name: Some(format!("First{i}")),
        family_name: Some(last.to_owned()),
        display_name: Some(format!("First{i} {last}")),
        nick_name: Some(format!("user{i}")),
        title: None,
        emails: vec![EmailAddress {
            value: email(i),
            kind: Some("work".to_owned()),
            primary: true,
        }],
        phone_numbers: vec![],
        active: true,
        entitlements: vec![Entitlement {
            value: PROFILE.to_owned(),
            kind: Some("Profile".to_owned()),
            display: None,
        }],
        roles: vec![],
        enterprise: Default::default(),
        federation_id: Some(email(i)),
    };
    for i in 0..users {
        let user_groups: Vec<SourceGroupId> =
            groups_of(i, groups).map(|g| group_id(g).into()).collect();
        source.users.push(DirectoryUser {
            id: source_id(i).into(),
            username: format!("user{i}"),
            email: Some(email(i)),
            first_name: Some(format!("First{i}")),
            last_name: Some(format!("Last{}", i % 1000)),
            display_name: Some(format!("First{i} Last{}", i % 1000)),
            status: if disabled(i) {
                DirectoryStatus::Disabled
            } else {
                DirectoryStatus::Active
            },
            phones: vec![],
            aliases: vec![],
            custom: Default::default(),
            groups: user_groups,
        });
        if new(i) {
            continue;
        }
        let last = if changed(i) {
            "Before".to_owned()
        } else {
            format!("Last{}", i % 1000)
        };
        target.users.push(target_user(i, &last));
        links.users.push(UserLink {
            source_id: source_id(i).into(),
            target_id: target_id(i).into(),
            origin: Origin::Created,
            assigned_permission_sets: Default::default(),
            pending_email: None,
        });
        for g in groups_of(i, groups) {
            members[g].push(target_id(i).into());
        }
    }
    for i in users..users + gone {
        target.users.push(target_user(i, "Gone"));
        links.users.push(UserLink {
            source_id: source_id(i).into(),
            target_id: target_id(i).into(),
            origin: Origin::Created,
            assigned_permission_sets: Default::default(),
            pending_email: None,
        });
        for g in groups_of(i, groups) {
            members[g].push(target_id(i).into());
        }
    }
    for (g, m) in members.into_iter().enumerate() {
        source.groups.push(DirectoryGroup {
            id: group_id(g).into(),
            name: format!("Group {g}"),
            description: None,
        });
        let tid = format!("00G{g:015}");
        target.groups.push(TargetGroup {
            id: tid.clone().into(),
            display_name: format!("Group {g}"),
            members: m,
        });
        links.groups.push(GroupLink {
            source_id: group_id(g).into(),
            target_id: tid.into(),
            origin: Origin::Created,
        });
    }
    (source, target, links)
}

/// A field of /proc/self/status in kB.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let users: usize = std::env::var("SCIMSYNC_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let policy = Policy {
        governance: Governance {
            baseline: Some(RuleSpec {
                profile: "Standard User".to_owned(),
                permission_sets: vec![],
                role: None,
            }),
            ..Governance::default()
        },
        ..Policy::default()
    };

    let t = Instant::now();
    let (source, target, links) = build(users);
    let (source_json, target_json) = match (
        serde_json::to_string(&source),
        serde_json::to_string(&target),
    ) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("could not serialize the snapshots: {e}");
            std::process::exit(1);
        }
    };
    drop((source, target));
    println!(
        "built {users} users, {} groups in {:.2?} (source JSON {} MB, target JSON {} MB)",
        (users / 50).max(MEMBERSHIPS),
        t.elapsed(),
        source_json.len() / 1_000_000,
        target_json.len() / 1_000_000
    );

    let t = Instant::now();
    let parsed: Result<(SourceSnapshot, TargetSnapshot), serde_json::Error> =
        serde_json::from_str(&source_json)
            .and_then(|s| serde_json::from_str(&target_json).map(|t| (s, t)));
    let deserialize = t.elapsed();
    let (source, target) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("could not deserialize the snapshots: {e}");
            std::process::exit(1);
        }
    };
    drop((source_json, target_json));

    // Reset the peak to the current resident set so VmHWM measures the planner alone.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_kb("VmRSS:");
    let t = Instant::now();
    let result = plan(&source, &target, &links, &policy, Timestamp(0));
    let planning = t.elapsed();
    let hwm = status_kb("VmHWM:");
    // For profiling: plan again N times so the planner dominates a profile.
    let repeat: usize = std::env::var("SCIMSYNC_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for _ in 0..repeat {
        black_box(plan(&source, &target, &links, &policy, Timestamp(0)).ok());
    }
    let plan = match result {
        Ok(p) => black_box(p),
        Err(problems) => {
            eprintln!("planning failed: {problems:?}");
            std::process::exit(1);
        }
    };
    let s = &plan.summary;
    println!(
        "plan: {} operations (create {}, update {}, deactivate {}, +{} -{} members in {} batches), {} unchanged",
        plan.operations.len(),
        s.create_user,
        s.update_user,
        s.deactivate_user,
        s.members_added,
        s.members_removed,
        plan.operations
            .iter()
            .filter(|o| matches!(
                o,
                Operation::AddMembers { .. } | Operation::RemoveMembers { .. }
            ))
            .count(),
        s.unchanged_users
    );
    println!("deserialize source+target: {deserialize:.2?}");
    println!("plan:                      {planning:.2?}");
    println!(
        "ratio plan/deserialize:    {:.2}",
        planning.as_secs_f64() / deserialize.as_secs_f64()
    );
    match (reset, rss_before, hwm) {
        (true, Some(before), Some(peak)) => println!(
            "planner peak memory above inputs: {} MB, {} bytes per user",
            peak.saturating_sub(before) / 1024,
            peak.saturating_sub(before) * 1024 / users.max(1) as u64
        ),
        _ => println!("planner peak memory: unknown (no /proc/self/clear_refs)"),
    }
}
