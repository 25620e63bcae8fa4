//! Decision records: why the planner did what it did with one user, for the trace and the
//! explanations.

use super::*;

impl<'a> Planner<'a> {
    /// The decision record of user `i`, once planned.
    pub(super) fn decide(&self, i: usize) -> Decision {
        let s = &self.users[i];
        let user = s.user;
        let mapped = self.evaluate(user);
        let account = match s.account {
            Account::Linked(t, l) => AccountDecision::Linked {
                target_id: t.id.clone(),
                user_name: t.user_name.clone(),
                active: t.active,
                origin: l.origin,
            },
            Account::Adopt(t, matched_by) => AccountDecision::Adopted {
                target_id: t.id.clone(),
                user_name: t.user_name.clone(),
                matched_by,
            },
            Account::Create => AccountDecision::Create,
            Account::CreateAfterRename => AccountDecision::CreateAfterRename,
            Account::Blocked(..) | Account::Nothing => AccountDecision::None,
        };
        let rule = self.rule_for(user).map(|c| RuleDecision {
            priority: match c.by {
                ChosenBy::Baseline => None,
                ChosenBy::GroupRule { priority, .. } => Some(priority),
            },
            group: match c.by {
                ChosenBy::Baseline => None,
                ChosenBy::GroupRule { group, .. } => Some(SourceGroupId::from(group)),
            },
            profile: c.rule.profile.clone(),
            permission_sets: c.rule.permission_sets.clone(),
            role: c.rule.role.clone(),
        });
        Decision {
            source_id: user.id.clone(),
            user_name: mapped.user_name.unwrap_or(&user.username).to_owned(),
            in_scope: self.in_scope(user),
            scope_groups: match &self.scope {
                None => Vec::new(),
                Some(groups) => user
                    .groups
                    .iter()
                    .filter(|g| groups.contains(g.as_str()))
                    .cloned()
                    .collect(),
            },
            enabled: user.status.is_enabled(),
            account,
            rule,
            names: mapped.derivation(),
            profile: s.profile.map(str::to_owned),
            member: s.member,
            rejected: s.rejected,
        }
    }
}
