//! Single-user runs: narrow a plan to one user and explain each step, like an on-demand
//! provisioning (read → scope → match → rule → action).

use scimsync_core::SourceUserId;
use scimsync_core::plan::{AccountDecision, Decision, Operation, Plan};
use scimsync_core::render::Labels;
use scimsync_core::source::{DirectoryUser, SourceSnapshot};
use scimsync_core::target::Catalogue;
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
        decisions: plan.decisions,
    }
}

/// Explains, step by step, what the run does with `user`: a view of the planner's
/// [`Decision`] (nothing is derived again here), with catalogue names for people.
pub(crate) fn explain(
    user: &DirectoryUser,
    source: &SourceSnapshot,
    catalogue: &Catalogue,
    decision: Option<&Decision>,
    plan: &Plan,
) -> Vec<TraceStep> {
    let mut steps = Vec::new();
    let status = crate::apply::json_str(&user.status);
    let group_name = |id: &scimsync_core::SourceGroupId| {
        source
            .groups
            .iter()
            .find(|g| g.id == *id)
            .map_or_else(|| id.to_string(), |g| g.name.to_string())
    };
    let groups: Vec<String> = user.groups.iter().map(group_name).collect();
    let derived = decision
        .and_then(|d| d.names.as_deref())
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
    let Some(d) = decision else {
        return steps;
    };

    let scope = if !d.in_scope {
        "out of scope: in none of the provisioned groups".to_owned()
    } else if d.scope_groups.is_empty() {
        "in scope: every user is provisioned".to_owned()
    } else {
        let through: Vec<String> = d.scope_groups.iter().map(group_name).collect();
        format!("in scope through {}", through.join(", "))
    };
    let enabled = if d.enabled {
        String::new()
    } else {
        format!("; status {status} means the account is deactivated")
    };
    steps.push(TraceStep {
        step: "scope",
        detail: format!("{scope}{enabled}"),
    });

    let matched = match &d.account {
        AccountDecision::Linked {
            target_id,
            user_name,
            active,
            origin,
        } => format!(
            "linked to account {target_id} ({user_name}, {}) by an earlier run ({})",
            if *active { "active" } else { "inactive" },
            crate::apply::json_str(origin)
        ),
        AccountDecision::Adopted {
            target_id,
            user_name,
            matched_by,
        } => format!(
            "not linked; account {target_id} ({user_name}) is adopted, matched by {}",
            crate::apply::json_str(matched_by)
        ),
        AccountDecision::Create => format!(
            "no account on the target with userName {}: one is created",
            d.user_name
        ),
        AccountDecision::CreateAfterRename => format!(
            "userName {} is freed by another account's rename in this run: the account is created after it",
            d.user_name
        ),
        AccountDecision::None if d.rejected => {
            format!(
                "no account is matched or made for userName {} (rejected)",
                d.user_name
            )
        }
        AccountDecision::None => "no account on the target, and none is wanted".to_owned(),
    };
    steps.push(TraceStep {
        step: "match",
        detail: matched,
    });

    let rule = match &d.rule {
        Some(r) => {
            let labels = Labels::new(catalogue, &[]);
            let name_of = |id: &str| labels.name(id).to_owned();
            let profile = name_of(&r.profile);
            let sets: Vec<String> = r.permission_sets.iter().map(|p| name_of(p)).collect();
            let role = r
                .role
                .as_deref()
                .map_or_else(|| "unchanged".to_owned(), name_of);
            let which = match (r.priority, &r.group) {
                (Some(p), Some(g)) => {
                    format!("group rule of priority {p} (through {})", group_name(g))
                }
                _ => "baseline rule".to_owned(),
            };
            format!(
                "{which}: profile {profile}, permission sets [{}], role {role}",
                sets.join(", ")
            )
        }
        None => "no governance rule applies".to_owned(),
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
    // Each operation as the plan table and the activity log show it (one text, from the
    // decision): attributes as `attribute: old → new ← source`, the rule, the group left.
    let labels = Labels::new(catalogue, &source.groups);
    for op in &plan.operations {
        let detail = match op {
            Operation::AddMembers { group, .. } => format!("add_members: into {}", group.name),
            Operation::RemoveMembers { group, .. } => {
                format!("remove_members: from {}", group.name)
            }
            other => {
                let text = scimsync_core::render::details(other, &labels, Some(d));
                if text.is_empty() {
                    other.kind().to_owned()
                } else {
                    format!("{}: {text}", other.kind())
                }
            }
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
