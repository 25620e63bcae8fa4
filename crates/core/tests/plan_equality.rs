//! The planner makes the same plans as before it was rewritten with dense integer ids: the plans
//! of the bench's generated data at 20,000 users (four seeds) hash as the fixture recorded with
//! the old planner. The bench checks 200,000 users too (`SCIMSYNC_BENCH_HASHES=1`).

#[path = "support/bench_data.rs"]
mod bench_data;

use scimsync_core::Timestamp;
use scimsync_core::links::fingerprint;
use scimsync_core::planner::plan;

#[test]
fn plans_of_the_bench_data_are_unchanged() {
    let fixture = include_str!("fixtures/plan_hashes.txt");
    let users = 20_000;
    for seed in 0..4 {
        let (source, target, links) = bench_data::build(users, seed);
        let policy = bench_data::policy(users, seed);
        let p = plan(&source, &target, &links, &policy, Timestamp(0)).expect("a plan");
        let json = serde_json::to_string(&p).expect("JSON");
        let line = format!(
            "users={users} seed={seed} operations={} adopted={} rejected={} notes={} groups+={} groups~={} hash={}",
            p.operations.len(),
            p.summary.adopt_user + p.summary.adopt_group,
            p.summary.rejected,
            p.summary.notes,
            p.summary.create_group,
            p.summary.rename_group,
            fingerprint(&[&json])
        );
        assert!(
            fixture.lines().any(|l| l == line),
            "seed {seed}: {line} is not in tests/fixtures/plan_hashes.txt"
        );
    }
}
