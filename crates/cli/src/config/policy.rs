//! The policy sections of a connection: `scope` (who is provisioned), `governance` (each
//! account's profile, permission sets and role) and `safety` (limits on deactivations); the
//! `mapping` has a module of its own. The rules themselves are checked by
//! [`Policy::validate`] in core.

use super::raw::{RawGovernance, RawGroupRule, RawRule, RawSafety, RawScope};
use super::validate::Validator;
use scimsync_core::policy::{
    Governance, GroupRuleSpec, Policy, RuleSpec, Safety, Scope, TargetKind,
};
use std::collections::BTreeMap;

impl Validator<'_> {
    pub(super) fn policy(
        &mut self,
        scope: RawScope,
        mapping: &BTreeMap<String, String>,
        governance: RawGovernance,
        safety: RawSafety,
        kind: TargetKind,
        at: &str,
    ) -> Policy {
        self.unknown::<RawScope>(&format!("{at}.scope"));
        let chosen = [
            scope.groups.is_some(),
            scope.sso_access == Some(true),
            scope.all == Some(true),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen > 1 {
            self.problem(
                format!("{at}.scope"),
                "choose one of groups, sso_access = true, all = true",
            );
        }
        let scope_value = if let Some(groups) = scope.groups {
            if groups.is_empty() {
                self.problem(
                    format!("{at}.scope.groups"),
                    "empty; name at least one source group",
                );
            }
            Scope::Groups(groups)
        } else if scope.sso_access == Some(true) {
            Scope::SsoAccess
        } else if scope.all == Some(true) {
            Scope::All
        } else {
            self.problem(
                format!("{at}.scope"),
                "missing; choose groups = [\"…\"], sso_access = true or all = true",
            );
            Scope::All
        };

        let map = self.mapping(mapping, kind, at);

        self.unknown::<RawGovernance>(&format!("{at}.governance"));
        let baseline = governance.baseline.map(|r| {
            self.unknown::<RawRule>(&format!("{at}.governance.baseline"));
            rule(r)
        });
        let mut group_rules = Vec::new();
        for (i, r) in governance.group_rules.into_iter().enumerate() {
            let path = format!("{at}.governance.group_rules[{i}]");
            self.unknown::<RawGroupRule>(&path);
            let priority = r.priority.unwrap_or_else(|| {
                self.problem(
                    format!("{path}.priority"),
                    "missing; 1 is the highest priority",
                );
                0
            });
            group_rules.push(GroupRuleSpec {
                groups: r.groups,
                priority,
                rule: RuleSpec {
                    profile: r.profile.unwrap_or_default(),
                    permission_sets: r.permission_sets,
                    role: r.role,
                },
            });
        }
        self.unknown::<RawSafety>(&format!("{at}.safety"));
        let defaults = Safety::default();
        let policy = Policy {
            target_kind: kind,
            scope: scope_value,
            exclude_groups: scope.exclude_groups,
            mapping: map,
            governance: Governance {
                baseline,
                group_rules,
                authoritative_permission_sets: governance.authoritative_permission_sets,
                profiles_without_groups: governance.profiles_without_groups.clone(),
            },
            safety: Safety {
                max_deactivations: safety.max_deactivations.or(defaults.max_deactivations),
                max_deactivation_percent: safety
                    .max_deactivation_percent
                    .or(defaults.max_deactivation_percent),
            },
            member_batch_size: 100,
            api_budget: None,
            full_every: scimsync_core::policy::DEFAULT_FULL_EVERY,
        };
        for p in policy.validate() {
            self.problems.push(p.under(at));
        }
        policy
    }
}

fn rule(r: RawRule) -> RuleSpec {
    RuleSpec {
        profile: r.profile.unwrap_or_default(),
        permission_sets: r.permission_sets,
        role: r.role,
    }
}
