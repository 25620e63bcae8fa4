//! The planner at scale, against the cost of reading its inputs.
//!
//! Builds a directory of `SCIMSYNC_BENCH_USERS` users (default 1,000,000) in one group per 50
//! users (20,000 groups for a million), 20 memberships per user, and a target in step with it
//! except for a realistic share: 1% new users, 1% gone from the directory, 2% with a changed
//! attribute, 0.5% disabled. It serializes both snapshots to JSON, then measures
//! - the time to deserialize its inputs: the source and target snapshots and the links
//!   (serde_json);
//! - the time to plan, and the ratio plan / deserialize; the same ratio in CPU time (all threads;
//!   steadier on a shared machine);
//! - the planner's peak memory above its inputs, per user (VmHWM from /proc/self/status after
//!   resetting it through /proc/self/clear_refs; Linux only, reported as unknown elsewhere).
//!
//! Deserializing and planning are each measured `SCIMSYNC_BENCH_RUNS` times (default 3) and the
//! median is kept (the memory is the first plan's). `SCIMSYNC_BENCH_REPEAT=N` plans N more
//! times (for profiling).
//!
//! `SCIMSYNC_BENCH_HASHES=1` checks instead that the plans of the generated data (20k and 200k
//! users, four seeds each; see `tests/support/bench_data.rs`) hash as
//! `tests/fixtures/plan_hashes.txt` records (the plans of the planner before it was rewritten
//! with dense integer ids); `SCIMSYNC_BENCH_HASHES=print` prints the hashes.
//!
//! Run: `cargo bench -p scimsync-core --bench planner` (release);
//! quick: `SCIMSYNC_BENCH_USERS=20000 cargo bench -p scimsync-core --bench planner`.

use scimsync_core::Timestamp;
use scimsync_core::links::{Links, fingerprint};
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

/// The median of `times` by wall time (the upper one of an even count), with its CPU time.
fn median(times: &[(std::time::Duration, Option<f64>)]) -> (std::time::Duration, Option<f64>) {
    let mut sorted = times.to_vec();
    sorted.sort_by_key(|(t, _)| *t);
    sorted
        .get(sorted.len() / 2)
        .copied()
        .unwrap_or((std::time::Duration::ZERO, None))
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
    let (source_json, target_json, links_json) = match (
        serde_json::to_string(&source),
        serde_json::to_string(&target),
        serde_json::to_string(&links),
    ) {
        (Ok(s), Ok(t), Ok(l)) => (s, t, l),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("could not serialize the inputs: {e}");
            std::process::exit(1);
        }
    };
    drop((source, target, links));
    println!(
        "built {users} users, {} groups in {:.2?} (source JSON {} MB, target JSON {} MB, links JSON {} MB)",
        data::groups_for(users),
        t.elapsed(),
        source_json.len() / 1_000_000,
        target_json.len() / 1_000_000,
        links_json.len() / 1_000_000
    );

    // Each measured `SCIMSYNC_BENCH_RUNS` times (default 3), the median kept: on a shared
    // machine one deserialize took from 2.1 to 3.5 s between runs of the same binary.
    let runs: usize = std::env::var("SCIMSYNC_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut deserialize_times = Vec::new();
    let mut parsed = None;
    for _ in 0..runs {
        drop(parsed.take());
        let cpu = cpu_seconds();
        let t = Instant::now();
        let result: Result<(SourceSnapshot, TargetSnapshot, Links), serde_json::Error> =
            serde_json::from_str(&source_json).and_then(|s| {
                serde_json::from_str(&target_json)
                    .and_then(|t| serde_json::from_str(&links_json).map(|l| (s, t, l)))
            });
        deserialize_times.push((t.elapsed(), cpu.zip(cpu_seconds()).map(|(a, b)| b - a)));
        match result {
            Ok(p) => parsed = Some(p),
            Err(e) => {
                eprintln!("could not deserialize the inputs: {e}");
                std::process::exit(1);
            }
        }
    }
    let Some((source, target, links)) = parsed else {
        return;
    };
    drop((source_json, target_json, links_json));

    // Reset the peak to the current resident set so VmHWM measures the planner alone (the
    // first plan).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_kb("VmRSS:");
    let mut planning_times = Vec::new();
    let mut hwm = None;
    let mut result = None;
    for _ in 0..runs {
        drop(result.take());
        let cpu = cpu_seconds();
        let t = Instant::now();
        result = Some(plan(&source, &target, &links, &policy, Timestamp(0)));
        planning_times.push((t.elapsed(), cpu.zip(cpu_seconds()).map(|(a, b)| b - a)));
        hwm = hwm.or_else(|| status_kb("VmHWM:"));
    }
    // For profiling: plan again N times so the planner dominates a profile.
    let repeat: usize = std::env::var("SCIMSYNC_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for _ in 0..repeat {
        black_box(plan(&source, &target, &links, &policy, Timestamp(0)).ok());
    }
    let (deserialize, deserialize_cpu) = median(&deserialize_times);
    let (planning, planning_cpu) = median(&planning_times);
    let plan = match result {
        Some(Ok(p)) => black_box(p),
        Some(Err(problems)) => {
            eprintln!("planning failed: {problems:?}");
            std::process::exit(1);
        }
        None => return,
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
    let all = |times: &[(std::time::Duration, Option<f64>)]| {
        times
            .iter()
            .map(|(t, _)| format!("{:.2}", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "deserialize inputs:        {deserialize:.2?} (median of {runs}: {} s)",
        all(&deserialize_times)
    );
    println!(
        "plan:                      {planning:.2?} (median of {runs}: {} s)",
        all(&planning_times)
    );
    println!(
        "ratio plan/deserialize:    {:.2}",
        planning.as_secs_f64() / deserialize.as_secs_f64()
    );
    // The first of each: into memory the process has not used yet (a run's own case: it reads
    // its inputs and plans once); the later ones reuse the memory the earlier ones gave back.
    if let (Some((d, _)), Some((p, _))) = (deserialize_times.first(), planning_times.first()) {
        println!(
            "ratio plan/deserialize, first of each (fresh memory): {:.2} ({:.2}s / {:.2}s)",
            p.as_secs_f64() / d.as_secs_f64(),
            p.as_secs_f64(),
            d.as_secs_f64()
        );
    }
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
