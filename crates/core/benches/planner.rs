//! The planner at scale, against the cost of reading its inputs.
//!
//! Builds a directory of `SCIMSYNC_BENCH_USERS` users (default 1,000,000) in one group per 50
//! users (20,000 groups for a million), 20 memberships per user, and a target in step with it
//! except for a realistic share: 1% new users, 1% gone from the directory, 2% with a changed
//! attribute, 0.5% disabled. It serializes both snapshots to JSON, then measures
//! - the time to deserialize the source and target snapshots (serde_json);
//! - the time to plan, and the ratio plan / deserialize; the same ratio in CPU time (all threads;
//!   steadier on a shared machine);
//! - the planner's peak memory above its inputs, per user (VmHWM from /proc/self/status after
//!   resetting it through /proc/self/clear_refs; Linux only, reported as unknown elsewhere).
//!
//! `SCIMSYNC_BENCH_REPEAT=N` plans N more times (for profiling).
//!
//! `SCIMSYNC_BENCH_HASHES=1` checks instead that the plans of the generated data (20k and 200k
//! users, four seeds each; see `tests/support/bench_data.rs`) hash as
//! `tests/fixtures/plan_hashes.txt` records (the plans of the planner before it was rewritten
//! with dense integer ids); `SCIMSYNC_BENCH_HASHES=print` prints the hashes.
//!
//! Run: `cargo bench -p scimsync-core --bench planner` (release);
//! quick: `SCIMSYNC_BENCH_USERS=20000 cargo bench -p scimsync-core --bench planner`.

use scimsync_core::Timestamp;
use scimsync_core::links::fingerprint;
use scimsync_core::plan::Operation;
use scimsync_core::planner::plan;
use scimsync_core::source::SourceSnapshot;
use scimsync_core::target::TargetSnapshot;
use std::hint::black_box;
use std::time::Instant;

#[path = "../tests/support/bench_data.rs"]
mod data;

/// The plans' hashes, as `tests/fixtures/plan_hashes.txt` records them: one line per
/// (users, seed), the FNV hash of the plan's JSON.
fn hashes(sizes: &[usize]) -> Vec<String> {
    let mut lines = Vec::new();
    for &users in sizes {
        for seed in 0..4 {
            let (source, target, links) = data::build(users, seed);
            let policy = data::policy(users, seed);
            let line = match plan(&source, &target, &links, &policy, Timestamp(0)) {
                Ok(p) => match serde_json::to_string(&p) {
                    Ok(json) => format!(
                        "users={users} seed={seed} operations={} adopted={} rejected={} notes={} groups+={} groups~={} hash={}",
                        p.operations.len(),
                        p.summary.adopt_user + p.summary.adopt_group,
                        p.summary.rejected,
                        p.summary.notes,
                        p.summary.create_group,
                        p.summary.rename_group,
                        fingerprint(&[&json])
                    ),
                    Err(e) => format!("users={users} seed={seed} error={e}"),
                },
                Err(problems) => format!("users={users} seed={seed} problems={problems:?}"),
            };
            println!("{line}");
            lines.push(line);
        }
    }
    lines
}

/// The CPU time of the process (all threads, user and system) from /proc/self/stat, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (in parentheses, which may hold spaces): utime and stime
    // are the 12th and 13th, in clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
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
    if let Some(mode) = std::env::var_os("SCIMSYNC_BENCH_HASHES") {
        // The plan-equality check: the hashes of the plans of the generated data at 20k and
        // 200k users, against the fixture recorded before the planner was rewritten
        // (`SCIMSYNC_BENCH_HASHES=print` only prints them).
        let lines = hashes(&[20_000, 200_000]);
        if mode == "print" {
            return;
        }
        let fixture = include_str!("../tests/fixtures/plan_hashes.txt");
        let expected: Vec<&str> = fixture.lines().filter(|l| !l.starts_with('#')).collect();
        if lines
            .iter()
            .map(String::as_str)
            .eq(expected.iter().copied())
        {
            println!("plan hashes: identical to tests/fixtures/plan_hashes.txt");
        } else {
            println!("plan hashes: DIFFERENT from tests/fixtures/plan_hashes.txt");
            std::process::exit(1);
        }
        return;
    }
    let policy = data::policy(users, 0);

    let t = Instant::now();
    let (source, target, links) = data::build(users, 0);
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
        data::groups_for(users),
        t.elapsed(),
        source_json.len() / 1_000_000,
        target_json.len() / 1_000_000
    );

    let cpu = cpu_seconds();
    let t = Instant::now();
    let parsed: Result<(SourceSnapshot, TargetSnapshot), serde_json::Error> =
        serde_json::from_str(&source_json)
            .and_then(|s| serde_json::from_str(&target_json).map(|t| (s, t)));
    let deserialize = t.elapsed();
    let deserialize_cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
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
    let cpu = cpu_seconds();
    let t = Instant::now();
    let result = plan(&source, &target, &links, &policy, Timestamp(0));
    let planning = t.elapsed();
    let planning_cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
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
    // CPU time, all threads: steadier than wall time on a shared machine, and it does not
    // count the planner's threads as a gain.
    if let (Some(d), Some(p)) = (deserialize_cpu, planning_cpu) {
        println!("CPU deserialize / plan:    {d:.2}s / {p:.2}s");
        println!("ratio plan/deserialize CPU: {:.2}", p / d.max(0.01));
    }
    match (reset, rss_before, hwm) {
        (true, Some(before), Some(peak)) => println!(
            "planner peak memory above inputs: {} MB, {} bytes per user",
            peak.saturating_sub(before) / 1024,
            peak.saturating_sub(before) * 1024 / users.max(1) as u64
        ),
        _ => println!("planner peak memory: unknown (no /proc/self/clear_refs)"),
    }
}
