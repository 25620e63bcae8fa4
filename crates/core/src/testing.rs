//! Test support (cargo feature `testing`): builders for source users and groups, a Salesforce-like
//! catalogue and policy, and [`apply`], which applies a plan to an in-memory target and links
//! the way the engine does, so tests can check that applying a plan and planning again gives
//! an empty plan.
//!
//! The in-memory target behaves like Salesforce where the planner cares: it lower-cases
//! userNames, invents a nickName when none is sent, and keeps phones of other types.

use crate::ids::{SourceGroupId, SourceUserId, TargetGroupId, TargetUserId};
use crate::links::{Ledger, Links, Origin};
use crate::plan::{GroupRef, Operation, Plan, UserAttributes, UserRef};
use crate::policy::{Governance, Policy, RuleSpec};
use crate::source::{DirectoryGroup, DirectoryStatus, DirectoryUser};
use crate::target::{
    Catalogue, CatalogueEntry, EmailAddress, PhoneNumber, Profile, RoleAssignment, TargetGroup,
    TargetSnapshot, TargetUser,
};
use crate::time::Timestamp;

/// Profile ids of [`catalogue`].
pub const STANDARD_USER: &str = "00e000000000001AAA";
pub const SYSTEM_ADMINISTRATOR: &str = "00e000000000002AAA";
/// A profile of another licence that does not allow groups.
pub const CHATTER_FREE: &str = "00e000000000003AAA";
/// Permission set ids of [`catalogue`].
pub const SALES_CLOUD: &str = "0PS000000000001AAA";
pub const SERVICE_CLOUD: &str = "0PS000000000002AAA";
/// Role id of [`catalogue`].
pub const CEO_ROLE: &str = "00E000000000001AAA";

/// An active user `id` with `email` as email, first name from the local part.
pub fn user(id: &str, email: &str) -> DirectoryUser {
    let local = email.split('@').next().unwrap_or(email);
    DirectoryUser {
        id: SourceUserId::from(id),
        username: local.into(),
        email: Some(email.into()),
        first_name: Some(local.into()),
        last_name: Some("Tester".into()),
        display_name: Some(format!("{local} Tester").into()),
        status: DirectoryStatus::Active,
        phones: Vec::new(),
        aliases: Vec::new(),
        custom: Default::default(),
        groups: Vec::new(),
    }
}

/// The same user, member of `groups`.
pub fn in_groups(mut user: DirectoryUser, groups: &[&str]) -> DirectoryUser {
    user.groups = groups.iter().map(|g| SourceGroupId::from(*g)).collect();
    user
}

/// A group.
pub fn group(id: &str, name: &str) -> DirectoryGroup {
    DirectoryGroup {
        id: SourceGroupId::from(id),
        name: name.into(),
        description: None,
    }
}

/// A Salesforce-like catalogue: Standard User and System Administrator (licence "Salesforce"),
/// Chatter Free User (licence "Chatter Free", no groups), two permission sets and a role.
pub fn catalogue() -> Catalogue {
    let profile = |id: &str, name: &str, licence: &str, allows_groups| Profile {
        id: id.to_owned(),
        name: name.to_owned(),
        licence: Some(licence.to_owned()),
        allows_groups,
    };
    let entry = |id: &str, name: &str| CatalogueEntry {
        id: id.to_owned(),
        name: name.to_owned(),
    };
    Catalogue {
        profiles: vec![
            profile(STANDARD_USER, "Standard User", "Salesforce", true),
            profile(
                SYSTEM_ADMINISTRATOR,
                "System Administrator",
                "Salesforce",
                true,
            ),
            profile(CHATTER_FREE, "Chatter Free User", "Chatter Free", false),
        ],
        permission_sets: vec![
            entry(SALES_CLOUD, "Sales Cloud"),
            entry(SERVICE_CLOUD, "Service Cloud"),
        ],
        roles: vec![entry(CEO_ROLE, "CEO")],
    }
}

/// A target with [`catalogue`] and nothing else.
pub fn empty_target() -> TargetSnapshot {
    TargetSnapshot {
        catalogue: catalogue(),
        ..TargetSnapshot::default()
    }
}

/// The default Salesforce policy with baseline "Standard User".
pub fn salesforce_policy() -> Policy {
    Policy {
        governance: Governance {
            baseline: Some(RuleSpec {
                profile: "Standard User".to_owned(),
                permission_sets: Vec::new(),
                role: None,
            }),
            ..Governance::default()
        },
        ..Policy::default()
    }
}

/// Applies `plan` to `target` and `links` as the engine would, through the same link
/// [`Ledger`]: creates get fresh ids, adoptions and creations are linked, entitlement changes
/// update the engine's permission sets, email changes are recorded as pending. `Err` names an
/// operation whose references do not resolve (a plan in the wrong order, or naming objects
/// that do not exist).
pub fn apply(
    plan: &Plan,
    target: &mut TargetSnapshot,
    links: &mut Links,
    now: Timestamp,
) -> Result<(), String> {
    let mut ledger = Ledger::new(std::mem::take(links));
    let mut result = Ok(());
    for (n, op) in plan.operations.iter().enumerate() {
        if let Err(e) = apply_one(op, target, &mut ledger, now) {
            result = Err(format!("operation {n} ({}): {e}", op.kind()));
            break;
        }
    }
    *links = ledger.into_links();
    result
}

fn apply_one(
    op: &Operation,
    target: &mut TargetSnapshot,
    links: &mut Ledger,
    now: Timestamp,
) -> Result<(), String> {
    match op {
        Operation::CreateUser {
            source_id,
            attributes,
        } => {
            let id = TargetUserId::from(format!("005SIM{:012}", target.users.len() + 1));
            if target
                .users
                .iter()
                .any(|u| u.user_name.eq_ignore_ascii_case(&attributes.user_name))
            {
                return Err(format!("duplicate userName {}", attributes.user_name));
            }
            target.users.push(created_user(&id, attributes));
            links.after_create_user(source_id, &id, &attributes.permission_sets);
        }
        Operation::AdoptUser {
            source_id,
            target_id,
            ..
        } => {
            if !target.users.iter().any(|u| u.id == *target_id) {
                return Err(format!("no target user {target_id}"));
            }
            links.after_adopt_user(source_id, target_id);
        }
        Operation::UpdateUser {
            source_id,
            target_id,
            changes,
            ..
        }
        | Operation::ReactivateUser {
            source_id,
            target_id,
            changes,
            ..
        } => {
            if let Some(name) = &changes.user_name
                && target
                    .users
                    .iter()
                    .any(|u| u.id != *target_id && u.user_name.eq_ignore_ascii_case(name))
            {
                return Err(format!("duplicate userName {name}"));
            }
            let user = target
                .users
                .iter_mut()
                .find(|u| u.id == *target_id)
                .ok_or_else(|| format!("no target user {target_id}"))?;
            let previous = user.work_email().map(str::to_owned);
            apply_changes(user, changes);
            links.after_update_user(source_id, changes, previous, now);
        }
        Operation::DeactivateUser { target_id, .. } => {
            let user = target
                .users
                .iter_mut()
                .find(|u| u.id == *target_id)
                .ok_or_else(|| format!("no target user {target_id}"))?;
            user.active = false;
        }
        Operation::CreateGroup { source_id, name } => {
            let id = TargetGroupId::from(format!("00GSIM{:012}", target.groups.len() + 1));
            target.groups.push(TargetGroup {
                id: id.clone(),
                display_name: name.clone(),
                members: Vec::new(),
            });
            links.after_link_group(source_id, &id, Origin::Created);
        }
        Operation::AdoptGroup {
            source_id,
            target_id,
            ..
        } => {
            links.after_link_group(source_id, target_id, Origin::Adopted);
        }
        Operation::RenameGroup { target_id, to, .. } => {
            let group = target
                .groups
                .iter_mut()
                .find(|g| g.id == *target_id)
                .ok_or_else(|| format!("no target group {target_id}"))?;
            group.display_name = to.clone();
        }
        Operation::AddMembers { group, members } | Operation::RemoveMembers { group, members } => {
            let adding = matches!(op, Operation::AddMembers { .. });
            let ids = members
                .iter()
                .map(|m| resolve_user(m, links))
                .collect::<Result<Vec<_>, _>>()?;
            let gid = resolve_group(group, links)?;
            let g = target
                .groups
                .iter_mut()
                .find(|g| g.id == gid)
                .ok_or_else(|| format!("no target group {gid}"))?;
            for id in ids {
                if adding {
                    if !g.members.contains(&id) {
                        g.members.push(id);
                    }
                } else {
                    g.members.retain(|m| *m != id);
                }
            }
        }
    }
    Ok(())
}

fn resolve_user(user: &UserRef, links: &Ledger) -> Result<TargetUserId, String> {
    if let Some(id) = &user.target_id {
        return Ok(id.clone());
    }
    let sid = user
        .source_id
        .as_ref()
        .ok_or_else(|| format!("user {} has neither id", user.user_name))?;
    links
        .user(sid)
        .map(|l| l.target_id.clone())
        .ok_or_else(|| format!("source user {sid} has no link yet"))
}

fn resolve_group(group: &GroupRef, links: &Ledger) -> Result<TargetGroupId, String> {
    if let Some(id) = &group.target_id {
        return Ok(id.clone());
    }
    links
        .group(&group.source_id)
        .map(|l| l.target_id.clone())
        .ok_or_else(|| format!("source group {} has no link yet", group.source_id))
}

use crate::state::{apply_changes, entitlements};

fn created_user(id: &TargetUserId, a: &UserAttributes) -> TargetUser {
    TargetUser {
        id: id.clone(),
        user_name: a.user_name.to_lowercase(),
        external_id: Some(a.external_id.clone()),
        given_name: a.given_name.clone(),
        family_name: a.family_name.clone(),
        display_name: a.display_name.clone(),
        // Salesforce derives or invents one when none is sent.
        nick_name: Some(
            a.nick_name
                .clone()
                .unwrap_or_else(|| format!("user.{id}").into()),
        ),
        title: a.title.clone(),
        emails: vec![EmailAddress {
            value: a.email.clone(),
            kind: Some("work".into()),
            primary: true,
        }],
        phone_numbers: a
            .work_phone
            .iter()
            .map(|p| PhoneNumber {
                value: p.clone(),
                kind: Some("work".into()),
            })
            .collect(),
        active: true,
        entitlements: entitlements(a.profile.as_deref(), &a.permission_sets),
        roles: a
            .role
            .iter()
            .map(|r| RoleAssignment {
                value: r.clone(),
                display: None,
            })
            .collect(),
        enterprise: a.enterprise.clone().into(),
        federation_id: a.federation_id.clone(),
    }
}

/// An existing account on the target that the engine did not create: active, Standard User,
/// no externalId.
pub fn account(id: &str, user_name: &str) -> TargetUser {
    TargetUser {
        id: TargetUserId::from(id),
        user_name: user_name.into(),
        external_id: None,
        given_name: None,
        family_name: None,
        display_name: None,
        nick_name: None,
        title: None,
        emails: vec![EmailAddress {
            value: user_name.into(),
            kind: Some("work".into()),
            primary: true,
        }],
        phone_numbers: Vec::new(),
        active: true,
        entitlements: entitlements(Some(STANDARD_USER), &[]),
        roles: Vec::new(),
        enterprise: Default::default(),
        federation_id: None,
    }
}
