//! Decision records: why the planner did what it did with one user, for the trace and the
//! explanations (the rule, where each attribute's value comes from and what the target had,
//! the scope groups a deactivated user left).

use super::*;
use std::collections::HashMap;

impl<'a> Planner<'a> {
    /// The decisions `explain` asks for, once planned (in the order of the source ids).
    pub(super) fn decide_all(&self, explain: &Explain) -> Vec<Decision> {
        // The operation that creates or updates each user: what its attributes are explained by.
        let mut operations: HashMap<&str, &Operation> = HashMap::new();
        let mut changed: IdSet<&str> = IdSet::default();
        for op in self
            .out
            .users_created
            .iter()
            .chain(&self.out.updates)
            .chain(&self.out.late)
        {
            if let Operation::CreateUser { source_id, .. }
            | Operation::UpdateUser { source_id, .. }
            | Operation::ReactivateUser { source_id, .. } = op
            {
                operations.insert(source_id.as_str(), op);
                changed.insert(source_id.as_str());
            }
        }
        for op in self.out.deactivations.iter().chain(&self.out.users_created) {
            if let Operation::DeactivateUser { source_id, .. }
            | Operation::AdoptUser { source_id, .. } = op
            {
                changed.insert(source_id.as_str());
            }
        }
        for op in self.removals.iter().chain(&self.additions) {
            if let Operation::AddMembers { members, .. }
            | Operation::RemoveMembers { members, .. } = op
            {
                changed.extend(
                    members
                        .iter()
                        .filter_map(|m| m.source_id.as_ref().map(|id| id.as_str())),
                );
            }
        }
        let chosen: Vec<usize> = (0..self.users.len())
            .filter(|&i| {
                let id = &self.users[i].user.id;
                explain.covers(id)
                    && (*explain != Explain::Changed || changed.contains(id.as_str()))
            })
            .collect();
        let left = self.scope_groups_left(&chosen);
        chosen
            .into_iter()
            .map(|i| {
                let id = self.users[i].user.id.as_str();
                let mut d = self.decide(i, operations.get(id).copied());
                d.left_groups = left.get(id).cloned().unwrap_or_default();
                d
            })
            .collect()
    }

    /// For the users of `chosen` whose linked account is not in scope any more: the scope
    /// groups (source ids) the account is still a member of on the target but the user is no
    /// longer in, by source user id. One pass over the target's groups.
    fn scope_groups_left(&self, chosen: &[usize]) -> HashMap<&'a str, Vec<SourceGroupId>> {
        let Some(scope) = &self.scope else {
            return HashMap::new();
        };
        let mut out_of_scope: HashMap<&str, usize> = HashMap::new();
        for &i in chosen {
            let s = &self.users[i];
            if let Account::Linked(t, _) = s.account
                && !self.in_scope(s.user)
            {
                out_of_scope.insert(t.id.as_str(), i);
            }
        }
        let mut left: HashMap<&'a str, Vec<SourceGroupId>> = HashMap::new();
        if out_of_scope.is_empty() {
            return left;
        }
        let scoped_group_of: HashMap<&str, &SourceGroupId> = self
            .links
            .groups
            .iter()
            .filter(|g| scope.contains(g.source_id.as_str()))
            .map(|g| (g.target_id.as_str(), &g.source_id))
            .collect();
        for g in &self.target.groups {
            let Some(source_group) = scoped_group_of.get(g.id.as_str()) else {
                continue;
            };
            for m in &g.members {
                if let Some(&i) = out_of_scope.get(m.as_str()) {
                    let user = self.users[i].user;
                    if !user.groups.contains(source_group) {
                        left.entry(user.id.as_str())
                            .or_default()
                            .push((*source_group).clone());
                    }
                }
            }
        }
        for groups in left.values_mut() {
            groups.sort();
            groups.dedup();
        }
        left
    }

    /// The decision record of user `i`, once planned; `op` is the creation or update of the
    /// user's account in the plan, if any.
    pub(super) fn decide(&self, i: usize, op: Option<&Operation>) -> Decision {
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
            attributes: op.map_or_else(Vec::new, |op| self.attribute_whys(&mapped, op, s.target())),
            left_groups: Vec::new(),
        }
    }

    /// Each attribute `op` sets, with its source and the value the account `had`.
    fn attribute_whys(
        &self,
        mapped: &MappedUser<'_>,
        op: &Operation,
        had: Option<&TargetUser>,
    ) -> Vec<AttributeWhy> {
        let (changes, had) = match op {
            Operation::CreateUser { attributes, .. } => (attributes.as_changes(), None),
            Operation::UpdateUser { changes, .. } | Operation::ReactivateUser { changes, .. } => {
                (changes.clone(), had)
            }
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        for name in changes.attribute_names() {
            if name == "entitlements" {
                let Some(e) = &changes.entitlements else {
                    continue;
                };
                let (mut profile, mut sets) = (None, Vec::new());
                for ent in had.map_or(&[][..], |t| &t.entitlements[..]) {
                    if self.is_profile(ent) {
                        profile = Some(ent.value.to_string());
                    } else {
                        sets.push(ent.value.as_str());
                    }
                }
                if e.profile_changed {
                    out.push(AttributeWhy {
                        attribute: "profile".to_owned(),
                        from: "rule".to_owned(),
                        old: profile,
                        new: Some(e.profile.to_string()),
                    });
                }
                if !e.added.is_empty() || !e.removed.is_empty() {
                    sets.sort_unstable();
                    let list = |l: Vec<&str>| (!l.is_empty()).then(|| l.join(", "));
                    out.push(AttributeWhy {
                        attribute: "permissionSets".to_owned(),
                        from: "rule".to_owned(),
                        old: list(sets),
                        new: list(e.permission_sets.iter().map(|p| p.as_str()).collect()),
                    });
                }
                continue;
            }
            out.push(AttributeWhy {
                attribute: match name {
                    "emails" => "emails[work].value",
                    "phoneNumbers" => "phoneNumbers[work].value",
                    other => other,
                }
                .to_owned(),
                from: self.source_of(name, mapped),
                old: had.and_then(|t| had_value(t, name)),
                new: changes.value_of(name).map(String::from),
            });
        }
        out
    }

    /// Where the value of attribute `name` comes from, by Duo's names of source attributes.
    fn source_of(&self, name: &str, mapped: &MappedUser<'_>) -> String {
        let m = &self.policy.mapping;
        let slot = |a: &Option<crate::policy::SourceAttribute>| {
            a.as_ref().map_or_else(String::new, ToString::to_string)
        };
        let derived = |family: bool| {
            let d = mapped.derived_names?;
            if !family && !d.given_name {
                return None;
            }
            let origin = match d.from {
                crate::mapping::NameOrigin::FullName => "realname",
                crate::mapping::NameOrigin::Username => "username (before the @)",
            };
            let part = match (d.rule, family) {
                (NameSplit::FirstWord, true) => "first word",
                (NameSplit::FirstWord, false) => "words after the first",
                (_, true) => "last word",
                (_, false) => "words before the last",
            };
            Some(format!("{origin} ({part})"))
        };
        match name {
            "userName" => match &m.user_name_suffix {
                Some(suffix) => format!("{} + suffix {suffix:?}", m.user_name),
                None => m.user_name.to_string(),
            },
            "externalId" => "user_id".to_owned(),
            "name.givenName" => derived(false).unwrap_or_else(|| "firstname".to_owned()),
            "name.familyName" => derived(true).unwrap_or_else(|| "lastname".to_owned()),
            "displayName" => "realname".to_owned(),
            "emails" => "email".to_owned(),
            "nickName" => slot(&m.nick_name),
            "title" => slot(&m.title),
            "phoneNumbers" => slot(&m.work_phone),
            "federationId" => m.sso_identifier.to_string(),
            "employeeNumber" => slot(&m.employee_number),
            "department" => slot(&m.department),
            "division" => slot(&m.division),
            "organization" => slot(&m.organization),
            "costCenter" => slot(&m.cost_center),
            "manager" => format!("{} (the manager's account)", slot(&m.manager)),
            "roles" => "rule".to_owned(),
            "active" => "status".to_owned(),
            _ => String::new(),
        }
    }
}

/// The value the account `t` has for attribute `name` (the names of [`USER_ATTRIBUTES`]).
fn had_value(t: &TargetUser, name: &str) -> Option<String> {
    let e = &t.enterprise;
    let v = match name {
        "userName" => Some(t.user_name.as_str()),
        "externalId" => t.external_id.as_deref(),
        "name.givenName" => t.given_name.as_deref(),
        "name.familyName" => t.family_name.as_deref(),
        "displayName" => t.display_name.as_deref(),
        "nickName" => t.nick_name.as_deref(),
        "title" => t.title.as_deref(),
        "emails" => t.work_email(),
        "phoneNumbers" => t.work_phone(),
        "federationId" => t.federation_id.as_deref(),
        "employeeNumber" => e.employee_number.as_deref(),
        "department" => e.department.as_deref(),
        "division" => e.division.as_deref(),
        "organization" => e.organization.as_deref(),
        "costCenter" => e.cost_center.as_deref(),
        "manager" => e.manager.as_deref(),
        "roles" => t.roles.first().map(|r| r.value.as_str()),
        "active" => return Some(t.active.to_string()),
        _ => None,
    };
    v.map(str::to_owned)
}
