//! The planner's rules, one test (or table) per rule.

use super::plan;
use crate::links::{HeldRefusal, Links, PendingEmail};
use crate::plan::{
    DeactivationReason, MatchedBy, NoteKind, ObjectKind, Operation, Plan, UserChanges,
};
use crate::policy::{GroupRuleSpec, Policy, RuleSpec, Scope, SourceAttribute, TargetKind};
use crate::refusals::{catalogue_fingerprint, profile_fingerprint};
use crate::source::{DirectoryStatus, Phone, PhoneKind, SourceSnapshot, SsoAccess};
use crate::target::{Entitlement, PhoneNumber, TargetGroup, TargetSnapshot, TargetUser};
use crate::testing::*;
use crate::time::Timestamp;
use compact_str::CompactString;

const NOW: Timestamp = Timestamp(1_795_000_000_000);

fn plan_of(
    source: &SourceSnapshot,
    target: &TargetSnapshot,
    links: &Links,
    policy: &Policy,
) -> Plan {
    plan(source, target, links, policy, NOW).unwrap()
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.operations.iter().map(Operation::kind).collect()
}

/// Plans and applies until the plan is empty; the second plan must be empty already.
fn converge(
    source: &SourceSnapshot,
    target: &mut TargetSnapshot,
    links: &mut Links,
    policy: &Policy,
) {
    let first = plan_of(source, target, links, policy);
    apply(&first, target, links, NOW).unwrap();
    let second = plan_of(source, target, links, policy);
    assert!(
        second.is_empty(),
        "not converged after one apply: {:#?}",
        second.operations
    );
}

fn source(
    users: Vec<crate::source::DirectoryUser>,
    groups: Vec<crate::source::DirectoryGroup>,
) -> SourceSnapshot {
    SourceSnapshot {
        users,
        groups,
        sso_access: None,
        unreadable: Vec::new(),
        unidentified: Vec::new(),
        problems: Vec::new(),
    }
}

fn changes_of<'p>(plan: &'p Plan, source_id: &str) -> &'p UserChanges {
    plan.operations
        .iter()
        .find_map(|op| match op {
            Operation::UpdateUser {
                source_id: s,
                changes,
                ..
            }
            | Operation::ReactivateUser {
                source_id: s,
                changes,
                ..
            } if s.as_str() == source_id => Some(changes),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no update for {source_id}"))
}

fn target_user<'t>(target: &'t TargetSnapshot, email: &str) -> &'t TargetUser {
    target.users.iter().find(|u| u.user_name == email).unwrap()
}

fn members_of(target: &TargetSnapshot, name: &str) -> Vec<String> {
    let g = target
        .groups
        .iter()
        .find(|g| g.display_name == name)
        .unwrap();
    let mut names: Vec<String> = g
        .members
        .iter()
        .map(|m| {
            target
                .users
                .iter()
                .find(|u| u.id == *m)
                .unwrap()
                .user_name
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// A stranger: an account on the target the engine neither created nor adopted.
fn stranger(id: &str, email: &str) -> TargetUser {
    TargetUser {
        id: id.into(),
        user_name: email.into(),
        external_id: None,
        given_name: None,
        family_name: None,
        display_name: None,
        nick_name: None,
        title: None,
        emails: vec![],
        phone_numbers: vec![],
        active: true,
        entitlements: vec![Entitlement {
            value: STANDARD_USER.into(),
            kind: Some("Profile".into()),
            display: None,
        }],
        roles: vec![],
        enterprise: Default::default(),
        federation_id: None,
    }
}

#[test]
fn first_run_creates_groups_then_users_then_memberships_and_converges() {
    let s = source(
        vec![
            in_groups(user("DU2", "bob@example.com"), &["DG1"]),
            in_groups(user("DU1", "Ada@Example.com"), &["DG1"]),
        ],
        vec![group("DG1", "Sales")],
    );
    let policy = salesforce_policy();
    let (mut target, mut links) = (empty_target(), Links::default());
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(
        kinds(&p),
        ["create_group", "create_user", "create_user", "add_members"]
    );
    let Operation::CreateUser {
        source_id,
        attributes,
    } = &p.operations[1]
    else {
        panic!()
    };
    assert_eq!(source_id.as_str(), "DU1");
    assert_eq!(attributes.user_name, "Ada@Example.com");
    assert_eq!(attributes.external_id, "DU1");
    assert_eq!(attributes.profile.as_deref(), Some(STANDARD_USER));
    assert_eq!(attributes.federation_id.as_deref(), Some("Ada@Example.com"));
    assert_eq!(p.summary.create_user, 2);
    assert_eq!(p.summary.members_added, 2);
    converge(&s, &mut target, &mut links, &policy);
    assert_eq!(
        members_of(&target, "Sales"),
        ["ada@example.com", "bob@example.com"]
    );
    // Same inputs, same plan.
    let again = plan_of(&s, &empty_target(), &Links::default(), &policy);
    assert_eq!(again, p);
}

#[test]
fn scope_decides_who_is_provisioned() {
    let users = vec![
        in_groups(user("DU1", "a@example.com"), &["DG1"]),
        in_groups(user("DU2", "b@example.com"), &["DG2"]),
        user("DU3", "c@example.com"),
    ];
    let groups = vec![group("DG1", "Sales"), group("DG2", "Support")];
    let mut s = source(users, groups);
    let created = |p: &Plan| -> Vec<String> {
        p.operations
            .iter()
            .filter_map(|op| match op {
                Operation::CreateUser { source_id, .. } => Some(source_id.to_string()),
                _ => None,
            })
            .collect()
    };
    let groups_created = |p: &Plan| {
        p.operations
            .iter()
            .filter(|op| op.kind() == "create_group")
            .count()
    };
    let t = empty_target();
    let l = Links::default();
    let mut policy = salesforce_policy();
    policy.scope = Scope::All;
    let p = plan_of(&s, &t, &l, &policy);
    assert_eq!(
        (created(&p), groups_created(&p)),
        (vec!["DU1".into(), "DU2".into(), "DU3".into()], 2)
    );
    policy.scope = Scope::Groups(vec!["sales".into()]);
    let p = plan_of(&s, &t, &l, &policy);
    assert_eq!((created(&p), groups_created(&p)), (vec!["DU1".into()], 1));
    policy.scope = Scope::SsoAccess;
    let err = plan(&s, &t, &l, &policy, NOW).unwrap_err();
    assert_eq!(err[0].path, "scope");
    s.sso_access = Some(SsoAccess::AllUsers);
    let p = plan_of(&s, &t, &l, &policy);
    assert_eq!(
        (created(&p), groups_created(&p)),
        (vec!["DU1".into(), "DU2".into()], 2),
        "users in no group are out"
    );
    s.sso_access = Some(SsoAccess::Groups(vec!["DG2".into()]));
    let p = plan_of(&s, &t, &l, &policy);
    assert_eq!((created(&p), groups_created(&p)), (vec!["DU2".into()], 1));
    policy.exclude_groups = true;
    let p = plan_of(&s, &t, &l, &policy);
    assert_eq!(
        kinds(&p),
        ["create_user"],
        "exclude_groups: users still scoped by groups, no group operation"
    );
}

#[test]
fn status_decides_active_and_deactivation_comes_last_after_removals() {
    let policy = salesforce_policy();
    let g = vec![group("DG1", "Sales")];
    let all = |statuses: &[(&str, DirectoryStatus)]| {
        statuses
            .iter()
            .map(|(id, st)| {
                let mut u = in_groups(
                    user(id, &format!("{}@example.com", id.to_lowercase())),
                    &["DG1"],
                );
                u.status = *st;
                u
            })
            .collect::<Vec<_>>()
    };
    let ids = [
        ("DU1", DirectoryStatus::Active),
        ("DU2", DirectoryStatus::Bypass),
        ("DU3", DirectoryStatus::LockedOut),
        ("DU4", DirectoryStatus::Active),
        ("DU5", DirectoryStatus::Active),
        ("DU6", DirectoryStatus::Active),
    ];
    let s = source(all(&ids), g.clone());
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    // DU4 disabled, DU5 pending deletion, DU6 leaves the directory.
    let mut users = all(&ids[..5]);
    users[3].status = DirectoryStatus::Disabled;
    users[4].status = DirectoryStatus::PendingDeletion;
    let s2 = source(users, g.clone());
    let p = plan_of(&s2, &target, &links, &policy);
    assert_eq!(
        kinds(&p),
        [
            "remove_members",
            "deactivate_user",
            "deactivate_user",
            "deactivate_user"
        ]
    );
    let reasons: Vec<_> = p
        .operations
        .iter()
        .filter_map(|op| match op {
            Operation::DeactivateUser {
                source_id, reason, ..
            } => Some((source_id.to_string(), *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("DU4".into(), DeactivationReason::Disabled),
            ("DU5".into(), DeactivationReason::PendingDeletion),
            ("DU6".into(), DeactivationReason::LeftDirectory)
        ]
    );
    let Operation::RemoveMembers { members, .. } = &p.operations[0] else {
        panic!()
    };
    assert_eq!(members.len(), 3);
    assert_eq!(p.summary.managed_active_users, 6);
    apply(&p, &mut target, &mut links, NOW).unwrap();
    assert!(plan_of(&s2, &target, &links, &policy).is_empty());
    assert_eq!(
        members_of(&target, "Sales"),
        ["du1@example.com", "du2@example.com", "du3@example.com"]
    );
    // DU4 comes back with a new title: one request reactivates and updates.
    let mut users = all(&ids[..5]);
    users[4].status = DirectoryStatus::PendingDeletion;
    users[3].last_name = Some("Returned".into());
    let s3 = source(users, g);
    let p = plan_of(&s3, &target, &links, &policy);
    assert_eq!(kinds(&p), ["reactivate_user", "add_members"]);
    let c = changes_of(&p, "DU4");
    assert_eq!(c.active, Some(true));
    assert_eq!(c.family_name, Some(Some("Returned".into())));
    let Operation::ReactivateUser { target_id, .. } = &p.operations[0] else {
        panic!()
    };
    assert_eq!(
        target_user(&target, "du4@example.com").id,
        *target_id,
        "the same account comes back"
    );
}

#[test]
fn matching_adopts_by_external_id_then_user_name_and_never_touches_strangers() {
    let policy = salesforce_policy();
    let mut target = empty_target();
    let mut by_ext = stranger("005A", "old-name@example.com");
    by_ext.external_id = Some("DU1".into());
    let by_name = stranger("005B", "bob@example.com");
    let mut conflict = stranger("005C", "carol@example.com");
    conflict.external_id = Some("SOMEONE-ELSE".into());
    let outsider = stranger("005D", "dave@example.com");
    target.users = vec![by_ext, by_name, conflict, outsider];
    target.groups = vec![TargetGroup {
        id: "00GX".into(),
        display_name: "sales".into(),
        members: vec!["005D".into()],
    }];
    let s = source(
        vec![
            in_groups(user("DU1", "ada@example.com"), &["DG1"]),
            in_groups(user("DU2", "BOB@example.com"), &["DG1"]),
            in_groups(user("DU3", "carol@example.com"), &["DG1"]),
        ],
        vec![group("DG1", "Sales")],
    );
    let mut links = Links::default();
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(
        kinds(&p),
        [
            "adopt_group",
            "adopt_user",
            "adopt_user",
            "update_user",
            "update_user",
            "rename_group",
            "add_members"
        ]
    );
    assert!(matches!(
        &p.operations[1],
        Operation::AdoptUser {
            matched_by: MatchedBy::ExternalId,
            ..
        }
    ));
    assert!(matches!(
        &p.operations[2],
        Operation::AdoptUser {
            matched_by: MatchedBy::UserName,
            ..
        }
    ));
    assert_eq!(
        changes_of(&p, "DU1").user_name.as_deref(),
        Some("ada@example.com")
    );
    let bob = changes_of(&p, "DU2");
    assert_eq!(
        (bob.user_name.as_deref(), bob.external_id.as_deref()),
        (None, Some("DU2"))
    );
    assert_eq!(p.notes.len(), 1);
    assert_eq!(
        (p.notes[0].kind, p.notes[0].source_id.as_str()),
        (NoteKind::Conflict, "DU3")
    );
    assert_eq!(
        (
            p.rejected[0].source_id.as_str(),
            p.rejected[0].field.as_str()
        ),
        ("DU3", "userName")
    );
    apply(&p, &mut target, &mut links, NOW).unwrap();
    assert!(plan_of(&s, &target, &links, &policy).is_empty());
    // The outsider is still in the group, still active; everyone leaves: only owned ones go.
    let p = plan_of(
        &source(vec![], vec![group("DG1", "Sales")]),
        &target,
        &links,
        &policy,
    );
    assert!(p.operations.iter().all(|op| {
        match op {
            Operation::DeactivateUser { target_id, .. } => {
                target_id.as_str() == "005A" || target_id.as_str() == "005B"
            }
            Operation::RemoveMembers { members, .. } => members
                .iter()
                .all(|m| m.target_id.as_ref().unwrap().as_str() != "005D"),
            _ => false,
        }
    }));
    assert_eq!(p.summary.deactivate_user, 2);
    // A link whose account vanished: create again.
    target.users.retain(|u| u.id.as_str() != "005A");
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(kinds(&p), ["create_user", "add_members"]);
}

#[test]
fn validation_rejects_what_the_target_would_refuse() {
    let long_local = "a.very.long.name.indeed.for.sure@example.com"; // 45 characters
    let mut no_email = user("DU3", "x@example.com");
    no_email.email = None;
    let mut bad_name = user("DU4", "y@example.com");
    bad_name.email = Some("not-an-email".into());
    let users = vec![
        in_groups(user("DU1", "ok@example.com"), &["DG2"]),
        user("DU2", long_local),
        no_email,
        bad_name,
    ];
    let long_group = "A group name that is longer than forty chars";
    let s = source(users, vec![group("DG1", "Sales"), group("DG2", long_group)]);
    let policy = salesforce_policy();
    let p = plan_of(&s, &empty_target(), &Links::default(), &policy);
    let rejected: Vec<(&str, &str)> = p
        .rejected
        .iter()
        .map(|r| (r.source_id.as_str(), r.field.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            ("DU2", "nickName"),
            ("DU3", "email"),
            ("DU4", "email"),
            ("DG2", "displayName")
        ]
    );
    assert!(
        p.rejected[0]
            .reason
            .contains("map nickName to a source attribute of at most 40 characters"),
        "{}",
        p.rejected[0].reason
    );
    assert!(p.rejected[3].reason.contains("at most 40"));
    assert_eq!(
        kinds(&p),
        ["create_group", "create_user"],
        "DU1 is created though its group is rejected"
    );

    // Generic targets: no 40-character rules.
    let generic = Policy {
        target_kind: TargetKind::Generic,
        ..salesforce_policy()
    };
    let p = plan_of(&s, &empty_target(), &Links::default(), &generic);
    let rejected: Vec<&str> = p.rejected.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(rejected, ["DU3", "DU4"]);

    // nickName mapped: too long is rejected; empty is not sent and the target's is not drift
    // (with a userName of at most 40 characters: see the test below for a longer one).
    let mut policy = salesforce_policy();
    policy.mapping.nick_name = Some(SourceAttribute::Custom("nick".into()));
    let mut long_nick = user("DU5", "l@example.com");
    long_nick.custom.insert("nick", "n".repeat(41));
    let mut s = source(vec![user("DU2", "no.nick@example.com"), long_nick], vec![]);
    let p = plan_of(&s, &empty_target(), &Links::default(), &policy);
    assert_eq!(
        p.rejected
            .iter()
            .map(|r| r.source_id.as_str())
            .collect::<Vec<_>>(),
        ["DU5"]
    );
    let Operation::CreateUser { attributes, .. } = &p.operations[0] else {
        panic!()
    };
    assert_eq!(attributes.nick_name, None);
    s.users.truncate(1);
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
}

#[test]
fn updates_carry_exactly_the_changed_attributes() {
    let mut policy = salesforce_policy();
    policy.mapping.work_phone = Some(SourceAttribute::Phone);
    policy.mapping.title = Some(SourceAttribute::Custom("title".into()));
    let mut u = user("DU1", "ada@example.com");
    u.phones = vec![Phone {
        number: "+15550100".into(),
        kind: PhoneKind::Mobile,
        extension: None,
    }];
    u.custom.insert("title", "Engineer");
    let mut s = source(vec![u], vec![]);
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    // The target upper-cases nothing but shows a mobile phone too: not drift.
    target.users[0].phone_numbers.push(PhoneNumber {
        value: "+1999".into(),
        kind: Some("mobile".into()),
    });
    target.users[0].user_name = "ADA@example.com".into();
    assert!(plan_of(&s, &target, &links, &policy).is_empty());
    // Title and phone change; title cleared when the source value goes.
    s.users[0].phones[0].number = "+15550111".into();
    s.users[0].custom.remove("title");
    let p = plan_of(&s, &target, &links, &policy);
    let c = changes_of(&p, "DU1");
    assert_eq!(c.attribute_names(), ["title", "phoneNumbers"]);
    assert_eq!(c.title, Some(None));
    assert_eq!(c.work_phone, Some(Some("+15550111".into())));
    apply(&p, &mut target, &mut links, NOW).unwrap();
    assert!(
        target.users[0]
            .phone_numbers
            .iter()
            .any(|p| p.value == "+1999"),
        "the mobile phone stays"
    );
}

#[test]
fn an_email_change_is_sent_once_while_it_awaits_verification() {
    let policy = salesforce_policy();
    let mut s = source(vec![user("DU1", "ada@example.com")], vec![]);
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    s.users[0].email = Some("ada@new.example.com".into());
    let p = plan_of(&s, &target, &links, &policy);
    let c = changes_of(&p, "DU1");
    assert_eq!(c.email.as_deref(), Some("ada@new.example.com"));
    // The target holds the change: the engine recorded it as pending.
    links.users[0].pending_email = Some(Box::new(PendingEmail {
        address: "ada@new.example.com".into(),
        previous: Some("ada@example.com".into()),
        requested_at: NOW,
    }));
    let mut s2 = s.clone();
    s2.users[0].email = Some("ada@new.example.com".into());
    // userName follows email, so only userName and federation id change; the email is not resent.
    let p = plan_of(&s2, &target, &links, &policy);
    let c = changes_of(&p, "DU1");
    assert_eq!(c.email, None);
    assert_eq!(p.notes[0].kind, NoteKind::EmailPendingVerification);
    // Another address: sent.
    s2.users[0].email = Some("ada@third.example.com".into());
    let p = plan_of(&s2, &target, &links, &policy);
    assert_eq!(
        changes_of(&p, "DU1").email.as_deref(),
        Some("ada@third.example.com")
    );
    assert!(p.notes.is_empty());
}

fn rules_policy() -> Policy {
    let mut policy = salesforce_policy();
    policy.governance.baseline = Some(RuleSpec {
        profile: "Standard User".into(),
        permission_sets: vec!["Sales Cloud".into()],
        role: None,
    });
    policy.governance.group_rules = vec![
        GroupRuleSpec {
            groups: vec!["Admins".into()],
            priority: 1,
            rule: RuleSpec {
                profile: "System Administrator".into(),
                permission_sets: vec![],
                role: Some("CEO".into()),
            },
        },
        GroupRuleSpec {
            groups: vec!["Support".into()],
            priority: 2,
            rule: RuleSpec {
                profile: "Standard User".into(),
                permission_sets: vec!["Service Cloud".into()],
                role: None,
            },
        },
        GroupRuleSpec {
            groups: vec!["Chatter".into()],
            priority: 3,
            rule: RuleSpec {
                profile: "Chatter Free User".into(),
                permission_sets: vec![],
                role: None,
            },
        },
    ];
    policy
}

fn rule_groups() -> Vec<crate::source::DirectoryGroup> {
    vec![
        group("DG1", "Admins"),
        group("DG2", "Support"),
        group("DG3", "Chatter"),
        group("DG4", "Sales"),
    ]
}

#[test]
fn governance_takes_the_highest_priority_rule_whole() {
    let policy = rules_policy();
    let s = source(
        vec![
            in_groups(user("DU1", "a@example.com"), &["DG2", "DG1"]),
            in_groups(user("DU2", "b@example.com"), &["DG2", "DG4"]),
            in_groups(user("DU3", "c@example.com"), &["DG4"]),
            in_groups(user("DU4", "d@example.com"), &["DG3", "DG4"]),
        ],
        rule_groups(),
    );
    let p = plan_of(&s, &empty_target(), &Links::default(), &policy);
    let attrs: Vec<_> = p
        .operations
        .iter()
        .filter_map(|op| match op {
            Operation::CreateUser { attributes, .. } => Some((
                attributes.profile.as_deref().unwrap().to_owned(),
                attributes
                    .permission_sets
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
                attributes.role.as_deref().map(str::to_owned),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        attrs,
        [
            (
                SYSTEM_ADMINISTRATOR.to_owned(),
                vec![],
                Some(CEO_ROLE.to_owned())
            ),
            (
                STANDARD_USER.to_owned(),
                vec![SERVICE_CLOUD.to_owned()],
                None
            ),
            (STANDARD_USER.to_owned(), vec![SALES_CLOUD.to_owned()], None),
            (CHATTER_FREE.to_owned(), vec![], None),
        ]
    );
    // DU4's profile forbids groups: a note, and no membership.
    assert_eq!(
        p.notes
            .iter()
            .map(|n| (n.kind, n.source_id.as_str()))
            .collect::<Vec<_>>(),
        [(NoteKind::ProfileForbidsGroups, "DU4")]
    );
    let in_any_group = p.operations.iter().any(|op| match op {
        Operation::AddMembers { members, .. } => members
            .iter()
            .any(|m| m.source_id.as_ref().unwrap().as_str() == "DU4"),
        _ => false,
    });
    assert!(!in_any_group);
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
}

#[test]
fn permission_sets_removed_only_when_the_engine_assigned_them_unless_authoritative() {
    let mut policy = rules_policy();
    let mut s = source(
        vec![in_groups(user("DU1", "a@example.com"), &["DG2"])],
        rule_groups(),
    );
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    // An admin adds Sales Cloud by hand.
    target.users[0].entitlements.push(Entitlement {
        value: SALES_CLOUD.into(),
        kind: None,
        display: None,
    });
    assert!(
        plan_of(&s, &target, &links, &policy).is_empty(),
        "not ours: left alone"
    );
    // The user moves to the baseline: Service Cloud (ours) goes, Sales Cloud is kept.
    s.users[0].groups = vec!["DG4".into()];
    let p = plan_of(&s, &target, &links, &policy);
    let e = changes_of(&p, "DU1").entitlements.clone().unwrap();
    assert_eq!(
        (e.profile.as_str(), e.profile_changed),
        (STANDARD_USER, false)
    );
    assert_eq!(e.permission_sets, [SALES_CLOUD]);
    assert_eq!(
        (e.added.len(), e.removed.clone()),
        (0, vec![CompactString::from(SERVICE_CLOUD)])
    );
    // Authoritative: whatever the rule does not name goes.
    policy.governance.authoritative_permission_sets = true;
    s.users[0].groups = vec!["DG1".into()];
    let p = plan_of(&s, &target, &links, &policy);
    let c = changes_of(&p, "DU1");
    let e = c.entitlements.clone().unwrap();
    assert_eq!(
        (e.profile.as_str(), e.profile_changed),
        (SYSTEM_ADMINISTRATOR, true)
    );
    assert!(e.permission_sets.is_empty());
    assert_eq!(e.removed, [SALES_CLOUD, SERVICE_CLOUD]);
    assert_eq!(c.role, Some(Some(CEO_ROLE.into())));
    apply(&p, &mut target, &mut links, NOW).unwrap();
    assert!(plan_of(&s, &target, &links, &policy).is_empty());
}

#[test]
fn profile_changes_across_licences_and_refused_ones_are_not_planned() {
    let policy = rules_policy();
    let mut s = source(
        vec![in_groups(user("DU1", "a@example.com"), &["DG4"])],
        rule_groups(),
    );
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    // Into the Chatter rule: another licence.
    s.users[0].groups = vec!["DG3".into()];
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(p.rejected.len(), 1);
    assert_eq!(p.rejected[0].field, "profile");
    assert!(
        p.rejected[0].reason.contains("cannot change licence"),
        "{}",
        p.rejected[0].reason
    );
    let e = changes_of(&p, "DU1").entitlements.clone().unwrap();
    assert_eq!(
        (e.profile.as_str(), e.profile_changed),
        (STANDARD_USER, false),
        "Sales Cloud goes, the profile stays"
    );
    // A refusal recorded by the engine: not tried again while wanted and basis hold.
    s.users[0].groups = vec!["DG1".into()];
    links.refusals.push(HeldRefusal {
        object: ObjectKind::User,
        source_id: "DU1".into(),
        attribute: "profile".into(),
        fingerprint: profile_fingerprint(
            SYSTEM_ADMINISTRATOR,
            STANDARD_USER,
            &catalogue_fingerprint(&target.catalogue),
        ),
        value: SYSTEM_ADMINISTRATOR.into(),
        reason: "FIELD_INTEGRITY_EXCEPTION".into(),
        at: NOW,
    });
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(p.notes[0].kind, NoteKind::RefusedEarlier);
    let c = changes_of(&p, "DU1");
    assert!(!c.entitlements.as_ref().unwrap().profile_changed);
    // The basis changes (someone set another profile by hand): tried again.
    target.users[0].entitlements[0].value = CHATTER_FREE.into();
    let p = plan_of(&s, &target, &links, &policy);
    assert!(p.notes.iter().all(|n| n.kind != NoteKind::RefusedEarlier));
    assert_eq!(
        p.rejected[0].field, "profile",
        "Chatter Free → System Administrator crosses licences"
    );
}

#[test]
fn groups_are_adopted_renamed_and_members_changed_in_batches() {
    let mut policy = salesforce_policy();
    policy.member_batch_size = 2;
    let users: Vec<_> = (1..=5)
        .map(|i| {
            in_groups(
                user(&format!("DU{i}"), &format!("u{i}@example.com")),
                &["DG1"],
            )
        })
        .collect();
    let mut s = source(users, vec![group("DG1", "Sales")]);
    let mut target = empty_target();
    target.groups = vec![TargetGroup {
        id: "00G1".into(),
        display_name: "SALES".into(),
        members: vec![],
    }];
    let mut links = Links::default();
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(&kinds(&p)[..1], ["adopt_group"]);
    assert!(kinds(&p).contains(&"rename_group"));
    let batches: Vec<usize> = p
        .operations
        .iter()
        .filter_map(|op| match op {
            Operation::AddMembers { members, .. } => Some(members.len()),
            _ => None,
        })
        .collect();
    assert_eq!(batches, [2, 2, 1]);
    apply(&p, &mut target, &mut links, NOW).unwrap();
    assert!(plan_of(&s, &target, &links, &policy).is_empty());
    // The group leaves the scope: owned members come out, the group stays.
    s.groups[0].name = "Sales EMEA".into();
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(kinds(&p), ["rename_group"]);
    let mut s2 = s.clone();
    s2.groups.push(group("DG2", "Other"));
    for u in &mut s2.users {
        u.groups.push("DG2".into());
    }
    policy.scope = Scope::Groups(vec!["Other".into()]);
    let p = plan_of(&s2, &target, &links, &policy);
    assert_eq!(p.summary.members_removed, 5);
    assert_eq!(p.summary.deactivate_user, 0);
    assert!(kinds(&p).contains(&"create_group"));
}

#[test]
fn the_plan_does_not_depend_on_input_order() {
    let policy = rules_policy();
    let users: Vec<_> = (1..=20)
        .map(|i| {
            in_groups(
                user(&format!("DU{i:02}"), &format!("u{i}@example.com")),
                &[["DG1", "DG2", "DG4"][i % 3]],
            )
        })
        .collect();
    let s = source(users.clone(), rule_groups());
    let mut reversed = s.clone();
    reversed.users.reverse();
    reversed.groups.reverse();
    let t = empty_target();
    let l = Links::default();
    assert_eq!(
        plan_of(&s, &t, &l, &policy),
        plan_of(&reversed, &t, &l, &policy)
    );
}

#[test]
fn invalid_policies_are_errors_with_every_problem() {
    let mut policy = rules_policy();
    policy.governance.baseline = Some(RuleSpec {
        profile: "Sales Usr".into(),
        permission_sets: vec![],
        role: None,
    });
    policy.member_batch_size = 0;
    let s = source(vec![], rule_groups());
    let err = plan(&s, &empty_target(), &Links::default(), &policy, NOW).unwrap_err();
    let paths: Vec<&str> = err.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["member_batch_size", "governance.baseline.profile"]);
}

#[test]
fn summary_counts_what_the_plan_does() {
    let policy = salesforce_policy();
    let s = source(
        vec![user("DU1", "a@example.com"), user("DU2", "b@example.com")],
        vec![],
    );
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(p.summary.unchanged_users, 2);
    assert_eq!(p.summary.managed_active_users, 2);
    assert_eq!(p.summary.users_in_scope, 2);
    assert_eq!(p.summary.target_users, 2);
    assert_eq!(object_kinds(&p), 0);
}

fn object_kinds(p: &Plan) -> usize {
    p.rejected
        .iter()
        .filter(|r| r.object == ObjectKind::Group)
        .count()
}

#[test]
fn the_manager_is_set_once_the_managers_account_exists() {
    let mut policy = salesforce_policy();
    policy.mapping.manager = Some(SourceAttribute::Custom("manager".into()));
    let mut report = user("DU2", "bob@example.com");
    report.custom.insert("manager", "DU1");
    let s = source(vec![user("DU1", "ada@example.com"), report], vec![]);
    let (mut target, mut links) = (empty_target(), Links::default());
    let p = plan_of(&s, &target, &links, &policy);
    let Operation::CreateUser { attributes, .. } = &p.operations[1] else {
        panic!()
    };
    assert_eq!(
        attributes.enterprise.manager, None,
        "the manager's account is created in the same plan"
    );
    apply(&p, &mut target, &mut links, NOW).unwrap();
    let p = plan_of(&s, &target, &links, &policy);
    let ada = target_user(&target, "ada@example.com").id.0.clone();
    assert_eq!(changes_of(&p, "DU2").enterprise.manager, Some(Some(ada)));
    apply(&p, &mut target, &mut links, NOW).unwrap();
    assert!(plan_of(&s, &target, &links, &policy).is_empty());
    // The manager leaves the directory: the reference is cleared.
    let mut s2 = s.clone();
    s2.users.remove(0);
    let p = plan_of(&s2, &target, &links, &policy);
    assert_eq!(changes_of(&p, "DU2").enterprise.manager, Some(None));
}

#[test]
fn generic_targets_without_governance_get_no_entitlements() {
    let policy = Policy {
        target_kind: TargetKind::Generic,
        ..Policy::default()
    };
    let s = source(vec![user("DU1", "ada@example.com")], vec![]);
    let (mut target, mut links) = (TargetSnapshot::default(), Links::default());
    let p = plan_of(&s, &target, &links, &policy);
    let Operation::CreateUser { attributes, .. } = &p.operations[0] else {
        panic!()
    };
    assert_eq!(
        (
            attributes.profile.as_deref(),
            attributes.permission_sets.len()
        ),
        (None, 0)
    );
    apply(&p, &mut target, &mut links, NOW).unwrap();
    target.users[0].entitlements.push(Entitlement {
        value: "anything".into(),
        kind: None,
        display: None,
    });
    assert!(
        plan_of(&s, &target, &links, &policy).is_empty(),
        "entitlements are not managed"
    );
}

#[test]
fn a_plan_computed_on_several_threads_is_the_same_plan() {
    let mut policy = rules_policy();
    policy.member_batch_size = 7;
    let users: Vec<_> = (0..300)
        .map(|i| {
            let groups = [
                ["DG1", "DG2"],
                ["DG2", "DG4"],
                ["DG4", "DG3"],
                ["DG1", "DG4"],
            ][i % 4];
            let mut u = in_groups(
                user(&format!("DU{i:03}"), &format!("u{i}@example.com")),
                &groups,
            );
            if i % 13 == 0 {
                u.status = DirectoryStatus::Disabled;
            }
            u
        })
        .collect();
    let s = source(users, rule_groups());
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    let mut s2 = s.clone();
    for u in s2.users.iter_mut().step_by(5) {
        u.groups.rotate_left(1);
        u.groups[0] = "DG2".into();
    }
    s2.users.truncate(250);
    // Updates and rejections among the users too, which the threads plan in shares.
    for (i, u) in s2.users.iter_mut().enumerate() {
        if i % 7 == 3 {
            u.email = Some(format!("changed{i}@example.com").into());
        } else if i % 11 == 5 {
            u.email = Some("not an address".into());
        }
    }
    let one = super::plan_on_threads(
        &s2,
        &target,
        &links,
        &policy,
        NOW,
        Some(1),
        &crate::plan::Explain::Nobody,
    )
    .unwrap();
    assert!(one.summary.members_added > 0 && one.summary.members_removed > 0);
    assert!(one.summary.update_user > 0 && one.summary.deactivate_user > 0);
    assert!(one.rejected.iter().any(|r| r.field == "email"));
    for threads in [2, 3, 8] {
        let many = super::plan_on_threads(
            &s2,
            &target,
            &links,
            &policy,
            NOW,
            Some(threads),
            &crate::plan::Explain::Nobody,
        )
        .unwrap();
        assert_eq!(many, one, "{threads} threads");
    }
}

/// A user with neither first nor last name, only a full name (Duo's `realname`).
fn full_name_only(id: &str, email: &str, full: Option<&str>) -> crate::source::DirectoryUser {
    let mut u = user(id, email);
    u.first_name = None;
    u.last_name = None;
    u.display_name = full.map(Into::into);
    u
}

fn rejected_fields(p: &Plan) -> Vec<(&str, &str)> {
    p.rejected
        .iter()
        .map(|r| (r.source_id.as_str(), r.field.as_str()))
        .collect()
}

#[test]
fn a_missing_family_name_is_derived_from_the_full_name_and_converges() {
    let policy = salesforce_policy();
    let s = source(
        vec![
            full_name_only("DU1", "cher@example.com", Some("Cher")),
            full_name_only("DU2", "ada@example.com", Some("Ada Lovelace")),
            // No full name either: the username's local part.
            full_name_only("DU3", "backup@example.com", None),
        ],
        vec![],
    );
    let (mut target, mut links) = (empty_target(), Links::default());
    let p = plan_of(&s, &target, &links, &policy);
    assert!(p.rejected.is_empty(), "{:#?}", p.rejected);
    let names: Vec<(Option<&str>, Option<&str>, Option<&str>)> = p
        .operations
        .iter()
        .map(|op| match op {
            Operation::CreateUser { attributes: a, .. } => (
                a.given_name.as_deref(),
                a.family_name.as_deref(),
                a.display_name.as_deref(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            (None, Some("Cher"), Some("Cher")),
            (Some("Ada"), Some("Lovelace"), Some("Ada Lovelace")),
            (None, Some("backup"), None),
        ]
    );
    // The derived names are the same on every run: no flip-flop.
    apply(&p, &mut target, &mut links, NOW).unwrap();
    assert!(plan_of(&s, &target, &links, &policy).is_empty());
    assert!(plan_of(&s, &target, &links, &policy).is_empty());

    // first_word: the family name comes first.
    let mut policy = salesforce_policy();
    policy.mapping.name_split = crate::policy::NameSplit::FirstWord;
    let s = source(
        vec![full_name_only(
            "DU4",
            "t@example.com",
            Some("Tanaka Hanako"),
        )],
        vec![],
    );
    let p = plan_of(&s, &empty_target(), &Links::default(), &policy);
    let Operation::CreateUser { attributes: a, .. } = &p.operations[0] else {
        panic!("{p:#?}")
    };
    assert_eq!(
        (a.given_name.as_deref(), a.family_name.as_deref()),
        (Some("Hanako"), Some("Tanaka"))
    );
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
}

#[test]
fn derived_names_change_hand_set_names_only_by_the_set_never_cleared_rule() {
    let policy = salesforce_policy();
    let mut s = source(
        vec![full_name_only("DU1", "cher@example.com", Some("Cher"))],
        vec![],
    );
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    // An administrator sets both names by hand.
    target.users[0].given_name = Some("Cherilyn".into());
    target.users[0].family_name = Some("Sarkisian".into());
    let p = plan_of(&s, &target, &links, &policy);
    let c = changes_of(&p, "DU1");
    assert_eq!(c.attribute_names(), ["name.familyName"]);
    assert_eq!(c.family_name, Some(Some("Cher".into())));
    assert_eq!(c.given_name, None, "never cleared");
    apply(&p, &mut target, &mut links, NOW).unwrap();
    assert!(plan_of(&s, &target, &links, &policy).is_empty());
    assert_eq!(
        target.users[0].given_name.as_deref(),
        Some("Cherilyn"),
        "the hand-set given name stays"
    );
    // The source gains a last name: it wins over the derived one.
    s.users[0].last_name = Some("Bono".into());
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(changes_of(&p, "DU1").family_name, Some(Some("Bono".into())));
    // With no derivation and no last name, the account's name is kept and the linked user
    // is not rejected: Salesforce only needs a last name to create.
    let mut none = salesforce_policy();
    none.mapping.name_split = crate::policy::NameSplit::None;
    s.users[0].last_name = None;
    let p = plan_of(&s, &target, &links, &none);
    assert!(p.rejected.is_empty(), "{:#?}", p.rejected);
    assert!(p.is_empty(), "{:#?}", p.operations);
}

#[test]
fn a_user_without_any_family_name_is_rejected_on_salesforce_only() {
    let mut no_username = full_name_only("DU1", "x@example.com", None);
    no_username.username = "  ".into();
    let s = source(
        vec![
            no_username,
            full_name_only("DU2", "ada@example.com", Some("Ada Lovelace")),
        ],
        vec![],
    );
    let policy = salesforce_policy();
    let p = plan_of(&s, &empty_target(), &Links::default(), &policy);
    assert_eq!(rejected_fields(&p), [("DU1", "name.familyName")]);
    let reason = &p.rejected[0].reason;
    assert!(
        reason.contains("Salesforce requires a last name") && reason.contains("fill \"lastname\""),
        "{reason}"
    );
    assert_eq!(kinds(&p), ["create_user"], "DU2 is created");

    // name_split = "none": both are rejected, the reason names the mapping to set.
    let mut none = salesforce_policy();
    none.mapping.name_split = crate::policy::NameSplit::None;
    let p = plan_of(&s, &empty_target(), &Links::default(), &none);
    assert_eq!(
        rejected_fields(&p),
        [("DU1", "name.familyName"), ("DU2", "name.familyName")]
    );
    let reason = &p.rejected[1].reason;
    assert!(
        reason.contains("name_split = \"none\"") && reason.contains("name_split = \"last_word\""),
        "{reason}"
    );
    assert!(p.operations.is_empty());

    // Generic targets do not require a family name.
    let generic = Policy {
        target_kind: TargetKind::Generic,
        ..none
    };
    let p = plan_of(&s, &empty_target(), &Links::default(), &generic);
    assert!(p.rejected.is_empty(), "{:#?}", p.rejected);
    assert_eq!(kinds(&p), ["create_user", "create_user"]);
}

#[test]
fn a_mapped_but_empty_nick_name_with_a_long_user_name_is_rejected_naming_the_attribute() {
    let long = "a.very.long.name.indeed.for.sure@example.com"; // 44 characters
    let mut policy = salesforce_policy();
    policy.mapping.nick_name = Some(SourceAttribute::Alias(1));
    let mut with_alias = user("DU2", "b.very.long.name.indeed.for.sure@example.com");
    with_alias.aliases = vec!["bvl".into()];
    let s = source(
        vec![
            user("DU1", long),
            with_alias,
            user("DU3", "short@example.com"),
        ],
        vec![],
    );
    let (mut target, mut links) = (empty_target(), Links::default());
    let p = plan_of(&s, &target, &links, &policy);
    assert_eq!(rejected_fields(&p), [("DU1", "nickName")]);
    let reason = &p.rejected[0].reason;
    assert!(
        reason.contains(
            "nickName is mapped to Duo attribute \"alias1\", which is empty for this user"
        ) && reason.contains(&format!("userName {long:?} is 44 characters"))
            && reason.contains("fill \"alias1\" in Duo (at most 40 characters)"),
        "{reason}"
    );
    assert_eq!(kinds(&p), ["create_user", "create_user"], "DU2 and DU3");
    apply(&p, &mut target, &mut links, NOW).unwrap();

    // Creates only: once linked, an emptied alias is not sent and not a rejection.
    let mut s2 = s.clone();
    s2.users[1].aliases.clear();
    let p = plan_of(&s2, &target, &links, &policy);
    assert!(
        p.rejected.iter().all(|r| r.source_id != "DU2"),
        "{:#?}",
        p.rejected
    );
    assert!(p.operations.is_empty(), "{:#?}", p.operations);

    // Generic targets have no 40-character rule.
    let generic = Policy {
        target_kind: TargetKind::Generic,
        ..policy
    };
    let p = plan_of(&s, &empty_target(), &Links::default(), &generic);
    assert!(p.rejected.is_empty(), "{:#?}", p.rejected);
}

#[test]
fn a_record_without_a_usable_id_deactivates_nobody() {
    let policy = salesforce_policy();
    let g = vec![group("DG1", "Sales")];
    let users = |ids: &[&str]| {
        ids.iter()
            .map(|id| {
                in_groups(
                    user(id, &format!("{}@example.com", id.to_lowercase())),
                    &["DG1"],
                )
            })
            .collect::<Vec<_>>()
    };
    let s = source(users(&["DU1", "DU2"]), g.clone());
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    // DU2's record comes back without its id.
    let mut s2 = source(users(&["DU1"]), g.clone());
    s2.unidentified = vec!["users[1] (username \"du2\")".into()];
    let p = plan_of(&s2, &target, &links, &policy);
    assert!(p.is_empty(), "{:#?}", p.operations);
    let note = p
        .notes
        .iter()
        .find(|n| n.kind == NoteKind::SourceUnidentified)
        .expect("a note says why DU2 is kept");
    assert_eq!(note.source_id, "DU2");
    assert!(
        note.message.contains("without a usable id"),
        "{}",
        note.message
    );
    // Once the record reads again without it, DU2 leaves as usual.
    let p = plan_of(&source(users(&["DU1"]), g), &target, &links, &policy);
    assert!(kinds(&p).contains(&"deactivate_user"), "{:?}", kinds(&p));
}

#[test]
fn a_membership_of_a_group_the_directory_lacks_and_reader_problems_are_noted_per_object() {
    let policy = salesforce_policy();
    let g = vec![group("DG1", "Sales")];
    let mut s = source(
        vec![
            in_groups(user("DU1", "du1@example.com"), &["DG1", "DG404"]),
            in_groups(user("DU2", "du2@example.com"), &["DG1"]),
        ],
        g,
    );
    s.problems.push(crate::source::SourceProblem {
        object: ObjectKind::Group,
        source_id: "DG1".into(),
        name: "Sales".into(),
        message: "Duo listed this group id more than once".into(),
    });
    let p = plan_of(&s, &empty_target(), &Links::default(), &policy);
    let noted: Vec<(NoteKind, ObjectKind, &str, &str)> = p
        .notes
        .iter()
        .map(|n| (n.kind, n.object, n.source_id.as_str(), n.name.as_str()))
        .collect();
    assert_eq!(
        noted,
        [
            (NoteKind::SourceProblem, ObjectKind::Group, "DG1", "Sales"),
            (NoteKind::UnknownGroup, ObjectKind::User, "DU1", "du1"),
        ]
    );
    assert!(
        p.notes[1].message.contains("DG404"),
        "{}",
        p.notes[1].message
    );
    // The rest of the user's memberships and the user's account are planned as usual.
    assert_eq!(
        kinds(&p).iter().filter(|k| **k == "create_user").count(),
        2,
        "{:?}",
        kinds(&p)
    );
}

#[test]
fn memberships_compare_the_same_whatever_the_length_of_the_target_ids() {
    // The same directory and target twice: with the target's own short ids, and with every
    // account id lengthened past what the planner's indexes hold inline (a UUID-like id, as
    // generic SCIM servers give). The plans must be the same, ids aside.
    let mut policy = rules_policy();
    policy.member_batch_size = 5;
    let users: Vec<_> = (0..120)
        .map(|i| {
            let groups = [["DG1", "DG2"], ["DG2", "DG4"], ["DG4", "DG3"]][i % 3];
            in_groups(
                user(&format!("DU{i:03}"), &format!("u{i}@example.com")),
                &groups,
            )
        })
        .collect();
    let s = source(users, rule_groups());
    let (mut target, mut links) = (empty_target(), Links::default());
    converge(&s, &mut target, &mut links, &policy);
    // Changes: users moved between groups, some gone (orphans), some new; a stranger and a
    // member missing on the target.
    let mut s2 = s.clone();
    for u in s2.users.iter_mut().step_by(7) {
        u.groups.rotate_left(1);
        u.groups[0] = "DG3".into();
    }
    s2.users.truncate(100);
    s2.users
        .push(in_groups(user("DU900", "new@example.com"), &["DG1", "DG4"]));
    let mut stranger = target.users[0].clone();
    stranger.id = "005stranger".into();
    stranger.user_name = "stranger@example.com".into();
    stranger.external_id = None;
    target.users.push(stranger);
    target.groups[0].members.push("005stranger".into());
    target.groups[1].members.pop();
    let short = plan_of(&s2, &target, &links, &policy);
    assert!(short.summary.members_added > 0 && short.summary.members_removed > 0);

    let ids: Vec<String> = target.users.iter().map(|u| u.id.to_string()).collect();
    let long = |id: &str| format!("{id}-0000-4000-8000-000000000000");
    let mut target_json = serde_json::to_string(&target).expect("JSON");
    let mut links_json = serde_json::to_string(&links).expect("JSON");
    for id in &ids {
        let (from, to) = (format!("\"{id}\""), format!("\"{}\"", long(id)));
        target_json = target_json.replace(&from, &to);
        links_json = links_json.replace(&from, &to);
    }
    let long_target: TargetSnapshot = serde_json::from_str(&target_json).expect("target");
    let long_links: Links = serde_json::from_str(&links_json).expect("links");
    assert!(long_target.users.iter().all(|u| u.id.as_str().len() > 30));
    let lengthened = plan_of(&s2, &long_target, &long_links, &policy);
    let mut plan_json = serde_json::to_string(&lengthened).expect("JSON");
    for id in &ids {
        plan_json = plan_json.replace(&format!("\"{}\"", long(id)), &format!("\"{id}\""));
    }
    assert_eq!(
        plan_json,
        serde_json::to_string(&short).expect("JSON"),
        "the plan with long ids differs"
    );
}
