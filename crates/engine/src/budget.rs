//! The connection's API budget during a run: the calls scimsync made to the target in the
//! last 24 hours (kept with the target's facts, [`scimsync_core::budget`]) plus those of this
//! run (the adapter's request count) against the cap the policy sets.

use scimsync_core::Timestamp;
use scimsync_core::budget::{self, ApiBudget};
use scimsync_core::links::TargetFacts;
use scimsync_core::ports::ApiUsage;

/// The budget of one run.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    spec: Option<ApiBudget>,
    /// The connection's facts as the run found them (the calls of the window before it).
    facts: TargetFacts,
    /// Calls in the window before this run.
    before: u64,
    /// The adapter's request count when the run started.
    start: u64,
}

impl Budget {
    pub fn new(
        spec: Option<ApiBudget>,
        facts: &TargetFacts,
        at: Timestamp,
        usage: ApiUsage,
    ) -> Self {
        Self {
            spec,
            facts: facts.clone(),
            before: budget::used(facts, at),
            start: usage.requests,
        }
    }

    /// The calls this run made so far.
    pub fn this_run(&self, usage: ApiUsage) -> u64 {
        usage.requests.saturating_sub(self.start)
    }

    /// The cap in calls, when one applies and can be computed (a percentage needs the daily
    /// allocation the target reported, now or in an earlier run).
    fn cap(&self, usage: ApiUsage) -> Option<u64> {
        let allocation = usage.reported.map(|r| r.1).or(self.facts.api_allocation);
        self.spec?.calls(allocation)
    }

    /// Whether the budget is used up: no new operation may start.
    pub fn exhausted(&self, usage: ApiUsage) -> bool {
        self.cap(usage)
            .is_some_and(|cap| self.before + self.this_run(usage) >= cap)
    }

    /// What a run stopped by the budget says: the cap, the calls made and when the rest goes.
    pub fn stop_message(&self, connection: &str, usage: ApiUsage, at: Timestamp) -> String {
        let cap = self.cap(usage).unwrap_or_default();
        let used = self.before + self.this_run(usage);
        let mut facts = self.facts.clone();
        budget::record(&mut facts, at, self.this_run(usage));
        let resume = budget::resumes_at(&facts, at, cap);
        let spec = self.spec.map(|s| s.to_string()).unwrap_or_default();
        format!(
            "stopped: the API budget of connection {connection} ({spec}: {cap} calls in a rolling \
             24 h) is used up ({used} calls in the last 24 h); the rest waits for the first run \
             after {resume}"
        )
    }

    /// `facts` with this run's calls counted and the allocation the target reported.
    pub fn account(&self, facts: &mut TargetFacts, usage: ApiUsage, at: Timestamp) {
        budget::record(facts, at, self.this_run(usage));
        if let Some((_, allocation)) = usage.reported {
            facts.api_allocation = Some(allocation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_764_000_000_000);

    fn usage(requests: u64, reported: Option<(u64, u64)>) -> ApiUsage {
        ApiUsage { requests, reported }
    }

    #[test]
    fn the_window_before_the_run_and_the_runs_own_calls_count_against_the_cap() {
        let mut facts = TargetFacts::default();
        budget::record(&mut facts, T0, 90);
        let b = Budget::new(Some(ApiBudget::Calls(100)), &facts, T0, usage(1_000, None));
        assert!(!b.exhausted(usage(1_009, None)));
        assert!(b.exhausted(usage(1_010, None)));
        let message = b.stop_message("sf", usage(1_010, None), T0);
        assert!(message.contains("100 calls in a rolling 24 h"), "{message}");
        assert!(
            message.contains("(100 calls in the last 24 h)"),
            "{message}"
        );
        assert!(
            message.contains("first run after 2025-11-25T17:00:00.000Z"),
            "{message}"
        );

        // A percentage waits for the allocation; the one reported now wins over the stored one.
        facts.api_allocation = Some(10_000);
        let b = Budget::new(Some(ApiBudget::Percent(1.0)), &facts, T0, usage(0, None));
        assert!(b.exhausted(usage(10, None)), "1% of the stored 10,000");
        assert!(!b.exhausted(usage(10, Some((5, 100_000)))), "1% of 100,000");
        let unknown = Budget::new(
            Some(ApiBudget::Percent(1.0)),
            &TargetFacts::default(),
            T0,
            usage(0, None),
        );
        assert!(!unknown.exhausted(usage(1_000_000, None)));
        let none = Budget::new(None, &facts, T0, usage(0, None));
        assert!(!none.exhausted(usage(1_000_000, Some((1, 2)))));

        let mut after = TargetFacts::default();
        b.account(&mut after, usage(7, Some((7, 15_000))), T0);
        assert_eq!(budget::used(&after, T0), 7);
        assert_eq!(after.api_allocation, Some(15_000));
    }
}
