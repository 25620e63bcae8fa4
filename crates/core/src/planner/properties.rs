//! Properties of the planner on generated directories: applying a plan and planning again gives
//! nothing to do; no plan deactivates an account the engine does not own; every managed user
//! ends with exactly one profile; a deactivated user is in no group.

use super::plan;
use crate::links::Links;
use crate::plan::Operation;
use crate::policy::{GroupRuleSpec, Policy, RuleSpec, Scope};
use crate::source::{DirectoryStatus, DirectoryUser, SourceSnapshot};
use crate::target::{TargetSnapshot, TargetUser};
use crate::testing::*;
use crate::time::Timestamp;
use proptest::prelude::*;
use std::collections::HashSet;

const NOW: Timestamp = Timestamp(1_795_000_000_000);
const GROUPS: [&str; 5] = ["DG0", "DG1", "DG2", "DG3", "DG4"];

fn status() -> impl Strategy<Value = DirectoryStatus> {
    prop_oneof![
        6 => Just(DirectoryStatus::Active),
        1 => Just(DirectoryStatus::Bypass),
        1 => Just(DirectoryStatus::LockedOut),
        1 => Just(DirectoryStatus::Disabled),
        1 => Just(DirectoryStatus::PendingDeletion),
    ]
}

prop_compose! {
    fn directory_user(id: usize)(
        status in status(),
        groups in proptest::sample::subsequence(GROUPS.to_vec(), 0..=3),
        name in 0usize..6,
        upper in any::<bool>(),
        last in prop_oneof![Just(None), Just(Some("Smith".to_owned())), Just(Some("Jones".to_owned()))],
    ) -> DirectoryUser {
        // Some users share a name: only one may hold it.
        let email = if name == 0 { "shared@example.com".to_owned() } else { format!("user{id}.{name}@example.com") };
        let email = if upper { email.to_uppercase() } else { email };
        let mut u = in_groups(user(&format!("DU{id:03}"), &email), &groups);
        u.status = status;
        u.last_name = last.map(Into::into);
        u
    }
}

fn directory() -> impl Strategy<Value = SourceSnapshot> {
    (0usize..12)
        .prop_flat_map(|n| (0..n).map(directory_user).collect::<Vec<_>>())
        .prop_map(|users| SourceSnapshot {
            users,
            groups: GROUPS
                .iter()
                .enumerate()
                .map(|(i, g)| group(g, &format!("Group {i}")))
                .collect(),
            sso_access: None,
            unreadable: Vec::new(),
            unidentified: Vec::new(),
            problems: Vec::new(),
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    (any::<bool>(), any::<bool>(), 0usize..3, any::<bool>()).prop_map(
        |(scoped, exclude, rules, authoritative)| {
            let mut p = salesforce_policy();
            if scoped {
                p.scope = Scope::Groups(vec!["DG0".into(), "group 1".into(), "DG2".into()]);
            }
            p.exclude_groups = exclude;
            p.member_batch_size = 3;
            p.governance.authoritative_permission_sets = authoritative;
            p.governance.baseline = Some(RuleSpec {
                profile: "Standard User".into(),
                permission_sets: vec!["Sales Cloud".into()],
                role: None,
            });
            let specs = [
                (
                    "DG1",
                    "System Administrator",
                    vec![],
                    Some("CEO".to_owned()),
                ),
                ("DG3", "Chatter Free User", vec![], None),
            ];
            p.governance.group_rules = specs
                .into_iter()
                .take(rules)
                .enumerate()
                .map(|(i, (g, profile, sets, role))| GroupRuleSpec {
                    groups: vec![g.into()],
                    priority: i as u32 + 1,
                    rule: RuleSpec {
                        profile: profile.into(),
                        permission_sets: sets,
                        role,
                    },
                })
                .collect();
            p
        },
    )
}

fn profiles(u: &TargetUser) -> usize {
    u.entitlements
        .iter()
        .filter(|e| e.value.starts_with("00e"))
        .count()
}

fn check_state(target: &TargetSnapshot, links: &Links) {
    let owned: HashSet<&str> = links.users.iter().map(|l| l.target_id.as_str()).collect();
    for u in &target.users {
        if owned.contains(u.id.as_str()) {
            assert_eq!(
                profiles(u),
                1,
                "{} has {} profiles",
                u.user_name,
                profiles(u)
            );
            if !u.active {
                assert!(
                    target.groups.iter().all(|g| !g.members.contains(&u.id)),
                    "deactivated {} is still in a group",
                    u.user_name
                );
            }
        }
    }
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=5000 for a longer hunt.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn apply_then_plan_again_is_empty(
        first in directory(),
        second in directory(),
        policy in policy(),
        strangers in 0usize..3,
    ) {
        let mut target = empty_target();
        for i in 0..strangers {
            let mut t = account(&format!("005EXT{i}"), &format!("stranger{i}@example.com"));
            t.user_name = if i == 0 { "shared@example.com".into() } else { t.user_name };
            target.users.push(t);
        }
        let strangers_before: Vec<TargetUser> = target.users.clone();
        let mut links = Links::default();
        for source in [&first, &second] {
            let p = plan(source, &target, &links, &policy, NOW).unwrap();
            let owned: HashSet<String> = links.users.iter().map(|l| l.target_id.to_string()).collect();
            for op in &p.operations {
                if let Operation::DeactivateUser { target_id, .. } = op {
                    prop_assert!(owned.contains(target_id.as_str()), "deactivates unowned {}", target_id);
                }
            }
            // Same inputs, same plan.
            prop_assert_eq!(&p, &plan(source, &target, &links, &policy, NOW).unwrap());
            apply(&p, &mut target, &mut links, NOW).unwrap();
            let again = plan(source, &target, &links, &policy, NOW).unwrap();
            prop_assert!(again.is_empty(), "not converged: {:#?}", again.operations);
            check_state(&target, &links);
        }
        // Strangers not adopted are untouched.
        let owned: HashSet<&str> = links.users.iter().map(|l| l.target_id.as_str()).collect();
        for s in &strangers_before {
            if !owned.contains(s.id.as_str()) {
                let now = target.users.iter().find(|u| u.id == s.id).unwrap();
                prop_assert_eq!(now, s);
            }
        }
    }
}
