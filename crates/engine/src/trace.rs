//! Single-user runs: narrow a plan to one user and explain each step, like an on-demand
//! provisioning (read → scope → match → rule → action).

use scimsync_core::SourceUserId;
use scimsync_core::governance::{resolve, resolve_scope};
use scimsync_core::links::Links;
use scimsync_core::plan::{Operation, Plan};
use scimsync_core::policy::Policy;
use scimsync_core::source::{DirectoryUser, SourceSnapshot};
use scimsync_core::target::TargetSnapshot;
use serde::Serialize;
use std::collections::BTreeSet;

/// One step of a single-user run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    /// `read`, `scope`, `match`, `rule` or `action`.
    pub step: &'static str,
    pub detail: String,
}

/// Finds a user by username or email (case-insensitively) or source id.
pub(crate) fn find_user<'a>(source: &'a SourceSnapshot, wanted: &str) -> Option<&'a DirectoryUser> {
    let wanted = wanted.trim();
    source.users.iter().find(|u| {
        u.id.as_str() == wanted
            || u.username.eq_ignore_ascii_case(wanted)
            || u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(wanted))
    })
}

/// Keeps only what concerns `user`: its own operations, its memberships, and the group
/// operations those memberships need. The order of the plan is kept.
pub(crate) fn narrow(plan: Plan, user: &SourceUserId) -> Plan {
    let sid = user.as_str();
    let mine = |m: &scimsync_core::plan::UserRef| m.source_id.as_ref() == Some(user);
    let needed_groups: BTreeSet<_> = plan
        .operations
        .iter()
        .filter_map(|op| match op {
            Operation::AddMembers { group, members }
            | Operation::RemoveMembers { group, members }
                if members.iter().any(mine) =>
            {
                Some(group.source_id.clone())
            }
            _ => None,
        })
        .collect();
    let operations = plan
        .operations
        .into_iter()
        .filter_map(|op| match op {
            Operation::AddMembers { group, members } => {
                let members: Vec<_> = members.into_iter().filter(|m| mine(m)).collect();
                (!members.is_empty()).then_some(Operation::AddMembers { group, members })
            }
            Operation::RemoveMembers { group, members } => {
                let members: Vec<_> = members.into_iter().filter(|m| mine(m)).collect();
                (!members.is_empty()).then_some(Operation::RemoveMembers { group, members })
            }
            Operation::CreateUser { ref source_id, .. }
            | Operation::AdoptUser { ref source_id, .. }
            | Operation::UpdateUser { ref source_id, .. }
            | Operation::ReactivateUser { ref source_id, .. }
            | Operation::DeactivateUser { ref source_id, .. } => (source_id == user).then_some(op),
            Operation::CreateGroup { ref source_id, .. }
            | Operation::AdoptGroup { ref source_id, .. }
            | Operation::RenameGroup { ref source_id, .. } => {
                needed_groups.contains(source_id).then_some(op)
            }
        })
        .collect();
    let rejected = plan
        .rejected
        .into_iter()
        .filter(|r| r.source_id == sid)
        .collect();
    let notes = plan
        .notes
        .into_iter()
        .filter(|n| n.source_id == sid)
        .collect();
    Plan {
        operations,
        rejected,
        notes,
        summary: plan.summary,
    }
}

/// Explains, step by step, what the run does with `user`.
pub(crate) fn explain(
    user: &DirectoryUser,
    source: &SourceSnapshot,
    target: &TargetSnapshot,
    links: &Links,
    policy: &Policy,
    plan: &Plan,
) -> Vec<TraceStep> {
    let mut steps = Vec::new();
    let status = crate::apply::json_str(&user.status);
    let group_name = |id: &scimsync_core::SourceGroupId| {
        source
            .groups
            .iter()
            .find(|g| g.id == *id)
            .map_or_else(|| id.to_string(), |g| g.name.clone())
    };
    let groups: Vec<String> = user.groups.iter().map(group_name).collect();
    let derived = policy
        .mapping
        .evaluate(user)
        .derivation()
        .map(|d| format!("; {d}"))
        .unwrap_or_default();
    steps.push(TraceStep {
        step: "read",
        detail: format!(
            "found {} (id {}, email {}, status {status}, groups: {}){derived}",
            user.username,
            user.id,
            user.email.as_deref().unwrap_or("none"),
            if groups.is_empty() {
                "none".to_owned()
            } else {
                groups.join(", ")
            }
        ),
    });

    let scope = match resolve_scope(&policy.scope, source) {
        Ok(None) => "in scope: every user is provisioned".to_owned(),
        Ok(Some(scoped)) => {
            let hits: Vec<String> = user
                .groups
                .iter()
                .filter(|g| scoped.contains(*g))
                .map(group_name)
                .collect();
            if hits.is_empty() {
                "out of scope: in none of the provisioned groups".to_owned()
            } else {
                format!("in scope through {}", hits.join(", "))
            }
        }
        Err(problems) => format!(
            "scope cannot be resolved: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let enabled = if user.status.is_enabled() {
        String::new()
    } else {
        format!("; status {status} means the account is deactivated")
    };
    steps.push(TraceStep {
        step: "scope",
        detail: format!("{scope}{enabled}"),
    });

    let link = links.users.iter().find(|l| l.source_id == user.id);
    let matched = match link {
        Some(l) => match target.users.iter().find(|t| t.id == l.target_id) {
            Some(t) => format!(
                "linked to account {} ({}, {}) by an earlier run ({})",
                t.id,
                t.user_name,
                if t.active { "active" } else { "inactive" },
                crate::apply::json_str(&l.origin)
            ),
            None => format!(
                "linked to account {}, which no longer exists on the target",
                l.target_id
            ),
        },
        None => {
            let wanted = user.email.as_deref().unwrap_or(&user.username);
            if let Some(t) = target
                .users
                .iter()
                .find(|t| t.external_id.as_deref() == Some(user.id.as_str()))
            {
                format!(
                    "not linked; account {} ({}) has externalId {}",
                    t.id, t.user_name, user.id
                )
            } else if let Some(t) = target
                .users
                .iter()
                .find(|t| t.user_name.eq_ignore_ascii_case(wanted))
            {
                format!("not linked; account {} has userName {}", t.id, t.user_name)
            } else {
                "no account on the target: one is created".to_owned()
            }
        }
    };
    steps.push(TraceStep {
        step: "match",
        detail: matched,
    });

    let rule = match resolve(&policy.governance, &target.catalogue, &source.groups) {
        Ok(gov) => {
            let name_of = |id: &str, list: &[(String, String)]| {
                list.iter()
                    .find(|(i, _)| i == id)
                    .map_or_else(|| id.to_owned(), |(_, n)| n.clone())
            };
            let profiles: Vec<(String, String)> = target
                .catalogue
                .profiles
                .iter()
                .map(|p| (p.id.clone(), p.name.clone()))
                .collect();
            let sets: Vec<(String, String)> = target
                .catalogue
                .permission_sets
                .iter()
                .map(|p| (p.id.clone(), p.name.clone()))
                .collect();
            let roles: Vec<(String, String)> = target
                .catalogue
                .roles
                .iter()
                .map(|p| (p.id.clone(), p.name.clone()))
                .collect();
            let which = gov
                .group_rules
                .iter()
                .find(|r| r.groups.iter().any(|g| user.groups.contains(g)))
                .map(|r| format!("group rule of priority {}", r.priority))
                .unwrap_or_else(|| "baseline rule".to_owned());
            match gov.rule_for(&user.groups) {
                Some(r) => format!(
                    "{which}: profile {}, permission sets [{}], role {}",
                    name_of(&r.profile, &profiles),
                    r.permission_sets
                        .iter()
                        .map(|p| name_of(p, &sets))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.role
                        .as_deref()
                        .map_or_else(|| "unchanged".to_owned(), |x| name_of(x, &roles))
                ),
                None => "no governance rule applies".to_owned(),
            }
        }
        Err(problems) => format!(
            "governance cannot be resolved: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    steps.push(TraceStep {
        step: "rule",
        detail: rule,
    });

    if plan.operations.is_empty() && plan.rejected.is_empty() && plan.notes.is_empty() {
        steps.push(TraceStep {
            step: "action",
            detail: "none: the account is in step".to_owned(),
        });
    }
    for op in &plan.operations {
        let detail = match op {
            Operation::UpdateUser { changes, .. } | Operation::ReactivateUser { changes, .. } => {
                format!("{}: {}", op.kind(), changes.attribute_names().join(", "))
            }
            Operation::AddMembers { group, .. } => format!("add_members: into {}", group.name),
            Operation::RemoveMembers { group, .. } => {
                format!("remove_members: from {}", group.name)
            }
            Operation::DeactivateUser { reason, .. } => {
                format!("deactivate_user: {}", crate::apply::json_str(&reason))
            }
            other => other.kind().to_owned(),
        };
        steps.push(TraceStep {
            step: "action",
            detail,
        });
    }
    for r in &plan.rejected {
        steps.push(TraceStep {
            step: "action",
            detail: format!("rejected: {}: {}", r.field, r.reason),
        });
    }
    for n in &plan.notes {
        steps.push(TraceStep {
            step: "action",
            detail: format!("held back: {}", n.message),
        });
    }
    steps
}
