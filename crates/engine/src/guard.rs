//! The guard: safety rules that hold destructive operations back before anything is sent.

use scimsync_core::plan::{Operation, Plan};
use scimsync_core::policy::Safety;
use serde::Serialize;

/// Why the guard stopped the destructive part of a run, and how to approve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardTrip {
    pub reason: String,
    pub how_to_approve: String,
}

/// What the guard looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardInput<'a> {
    pub plan: &'a Plan,
    pub safety: &'a Safety,
    /// Users the source returned this time.
    pub source_users: usize,
    /// Users the last successful read returned, when there was one.
    pub last_source_users: Option<u64>,
}

/// Checks the safety rules; `None` when the plan may be applied whole.
pub(crate) fn check(input: GuardInput<'_>) -> Option<GuardTrip> {
    let how =
        "review the plan (scimsync reconcile --dry-run), then re-run with --approve-deactivations \
               (or POST /connections/{name}/sync?approve=true on the daemon)"
            .to_owned();
    if input.source_users == 0 && input.last_source_users.is_some_and(|n| n > 0) {
        return Some(GuardTrip {
            reason: format!(
                "the source returned no users where the last run saw {}; an empty read is not taken as everyone leaving",
                input.last_source_users.unwrap_or_default()
            ),
            how_to_approve: how,
        });
    }
    let deactivations = input
        .plan
        .operations
        .iter()
        .filter(|op| matches!(op, Operation::DeactivateUser { .. }))
        .count();
    if deactivations == 0 {
        return None;
    }
    if let Some(max) = input.safety.max_deactivations
        && deactivations > max as usize
    {
        return Some(GuardTrip {
            reason: format!(
                "{deactivations} deactivations planned, over the limit of {max} per run (safety.max_deactivations)"
            ),
            how_to_approve: how,
        });
    }
    if let Some(max_pct) = input.safety.max_deactivation_percent {
        let base = input.plan.summary.managed_active_users;
        if base > 0 {
            let pct = deactivations as f64 * 100.0 / base as f64;
            if pct > max_pct {
                return Some(GuardTrip {
                    reason: format!(
                        "{deactivations} deactivations planned, {pct:.1}% of the {base} active users the engine manages, \
                         over the limit of {max_pct}% per run (safety.max_deactivation_percent)"
                    ),
                    how_to_approve: how,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimsync_core::SourceUserId;
    use scimsync_core::TargetUserId;
    use scimsync_core::plan::DeactivationReason;

    fn plan_with(deactivations: usize, managed: usize) -> Plan {
        let mut plan = Plan::default();
        for i in 0..deactivations {
            plan.operations.push(Operation::DeactivateUser {
                source_id: SourceUserId::from(format!("DU{i}")),
                target_id: TargetUserId::from(format!("005{i}")),
                user_name: format!("u{i}@example.com").into(),
                reason: DeactivationReason::LeftDirectory,
            });
        }
        plan.summary.managed_active_users = managed;
        plan
    }

    #[test]
    fn trips_over_the_count_and_the_percentage_but_not_at_the_limit() {
        let safety = Safety {
            max_deactivations: Some(3),
            max_deactivation_percent: Some(10.0),
        };
        let run = |plan: Plan| {
            check(GuardInput {
                plan: &plan,
                safety: &safety,
                source_users: 100,
                last_source_users: Some(100),
            })
        };
        assert!(
            run(plan_with(3, 100)).is_none(),
            "3 of 100 is within both limits"
        );
        let trip = run(plan_with(4, 100)).expect("4 > 3");
        assert!(trip.reason.contains("max_deactivations"), "{}", trip.reason);
        let trip = run(plan_with(3, 20)).expect("15% > 10%");
        assert!(trip.reason.contains("15.0%"), "{}", trip.reason);
        assert!(trip.how_to_approve.contains("--approve-deactivations"));
    }

    #[test]
    fn an_empty_source_read_trips_when_the_last_run_saw_users() {
        let safety = Safety::default();
        let plan = plan_with(0, 0);
        let trip = check(GuardInput {
            plan: &plan,
            safety: &safety,
            source_users: 0,
            last_source_users: Some(42),
        })
        .expect("empty read after 42 users");
        assert!(trip.reason.contains("no users"), "{}", trip.reason);
        assert!(
            check(GuardInput {
                plan: &plan,
                safety: &safety,
                source_users: 0,
                last_source_users: None,
            })
            .is_none(),
            "a first run on an empty directory is not a trip"
        );
    }
}
