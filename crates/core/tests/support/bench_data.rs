//! The planner bench's generated directory, shared by the bench (`benches/planner.rs`) and the
//! plan-equality test (`tests/plan_equality.rs`).
//!
//! `build(users, 0)` is the bench's data: a directory of `users` users in one group per 50
//! users, 20 memberships per user, and a target in step with it except for a realistic share:
//! 1% new users, 1% gone from the directory, 2% with a changed attribute, 0.5% disabled.
//!
//! Other seeds shift those shares and the memberships, and add what the bench does not
//! exercise, so the plan-equality check covers more of the planner: accounts adopted by
//! externalId and by userName, an account whose externalId names someone else, renamed users
//! (some into a name another account holds, some swapping), upper-case userNames, duplicate
//! source ids, memberships missing and extra on the target, strangers in groups, groups adopted
//! by name, renamed, created, unlinked or out of scope, group rules with permission sets, a
//! profile without groups, and a scope of groups (seed 3).

#![allow(dead_code)]

use scimsync_core::links::{GroupLink, Links, Origin, UserLink};
use scimsync_core::policy::{Governance, GroupRuleSpec, Policy, RuleSpec, Scope};
use scimsync_core::source::{DirectoryGroup, DirectoryStatus, DirectoryUser, SourceSnapshot};
use scimsync_core::target::{
    Catalogue, CatalogueEntry, EmailAddress, Entitlement, Profile, TargetGroup, TargetSnapshot,
    TargetUser,
};
use scimsync_core::{SourceGroupId, TargetUserId};

pub const MEMBERSHIPS: usize = 20;
const PROFILE: &str = "00e000000000001AAA";
const LIMITED: &str = "00e000000000002AAA";
const PERMISSION_SET: &str = "0PS000000000001AAA";
const PERMISSION_SET_2: &str = "0PS000000000002AAA";

fn source_id(i: usize) -> String {
    format!("DU{i:018}")
}
fn target_id(i: usize) -> String {
    format!("005{i:015}")
}
fn group_id(g: usize) -> String {
    format!("DG{g:018}")
}
fn email(i: usize) -> String {
    format!("user{i}@example.com")
}

/// The number of groups for `users` users.
pub fn groups_for(users: usize) -> usize {
    (users / 50).max(MEMBERSHIPS)
}

/// A cheap hash of (i, seed) for choosing what varies.
fn mix(i: usize, seed: u64) -> u64 {
    let mut h = (i as u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_add(seed);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The groups of user `i`: 20 distinct groups spread over all of them.
fn groups_of(i: usize, groups: usize, seed: u64) -> impl Iterator<Item = usize> {
    let per = MEMBERSHIPS.min(groups);
    let stride = groups / per;
    let base = (i.wrapping_mul(2_654_435_761) + seed as usize * 7919) % groups;
    (0..per).map(move |k| (base + k * stride) % groups)
}

/// The policy the plans are made with.
pub fn policy(users: usize, seed: u64) -> Policy {
    let baseline = Some(RuleSpec {
        profile: "Standard User".to_owned(),
        permission_sets: vec![],
        role: None,
    });
    if seed == 0 {
        return Policy {
            governance: Governance {
                baseline,
                ..Governance::default()
            },
            ..Policy::default()
        };
    }
    let groups = groups_for(users);
    let rule = |priority: u32, g: &[usize], profile: &str, sets: &[&str]| GroupRuleSpec {
        groups: g.iter().map(|&g| group_id(g)).collect(),
        priority,
        rule: RuleSpec {
            profile: profile.to_owned(),
            permission_sets: sets.iter().map(|s| (*s).to_owned()).collect(),
            role: None,
        },
    };
    let scope = if seed == 3 {
        Scope::Groups((0..groups).filter(|g| g % 3 != 0).map(group_id).collect())
    } else {
        Scope::All
    };
    Policy {
        scope,
        governance: Governance {
            baseline,
            group_rules: vec![
                rule(2, &[1, 5], "Standard User", &["Sales Cloud"]),
                rule(1, &[7], "Standard User", &["Sales Cloud", "Service Cloud"]),
                rule(3, &[11], "Limited User", &[]),
            ],
            authoritative_permission_sets: seed.is_multiple_of(2),
            ..Governance::default()
        },
        member_batch_size: 37 + seed as usize,
        ..Policy::default()
    }
}

/// The source, target and links for `users` users; seed 0 is the bench's data.
pub fn build(users: usize, seed: u64) -> (SourceSnapshot, TargetSnapshot, Links) {
    let groups = groups_for(users);
    let s = seed as usize;
    let new = |i: usize| (i + s) % 100 == 1;
    let changed = |i: usize| (i + 2 * s) % 50 == 2;
    let disabled = |i: usize| (i + 3 * s) % 200 == 3;
    let gone = users / 100;
    // What only seeds other than 0 vary, by (i, seed).
    let roll = |i: usize| {
        if seed == 0 {
            u64::MAX
        } else {
            mix(i, seed) % 1000
        }
    };

    let mut source = SourceSnapshot::default();
    let mut target = TargetSnapshot {
        catalogue: Catalogue {
            profiles: vec![
                Profile {
                    id: PROFILE.to_owned(),
                    name: "Standard User".to_owned(),
                    licence: Some("Salesforce".to_owned()),
                    allows_groups: true,
                },
                Profile {
                    id: LIMITED.to_owned(),
                    name: "Limited User".to_owned(),
                    licence: Some("Salesforce".to_owned()),
                    allows_groups: false,
                },
            ],
            permission_sets: vec![
                CatalogueEntry {
                    id: PERMISSION_SET.to_owned(),
                    name: "Sales Cloud".to_owned(),
                },
                CatalogueEntry {
                    id: PERMISSION_SET_2.to_owned(),
                    name: "Service Cloud".to_owned(),
                },
            ],
            roles: vec![],
        },
        ..TargetSnapshot::default()
    };
    if seed == 0 {
        target.catalogue.profiles.truncate(1);
        target.catalogue.permission_sets.truncate(1);
    }
    let mut links = Links::default();
    let mut members: Vec<Vec<TargetUserId>> = vec![Vec::new(); groups];
    let target_user = |i: usize, last: &str| TargetUser {
        id: target_id(i).into(),
        user_name: email(i).into(),
        external_id: Some(source_id(i).into()),
        given_name: Some(format!("First{i}").into()),
        family_name: Some(last.into()),
        display_name: Some(format!("First{i} {last}").into()),
        nick_name: Some(format!("user{i}").into()),
        title: None,
        emails: vec![EmailAddress {
            value: email(i).into(),
            kind: Some("work".into()),
            primary: true,
        }],
        phone_numbers: vec![],
        active: true,
        entitlements: vec![Entitlement {
            value: PROFILE.into(),
            kind: Some("Profile".into()),
            display: None,
        }],
        roles: vec![],
        enterprise: Default::default(),
        federation_id: Some(email(i).into()),
    };
    let link = |i: usize| UserLink {
        source_id: source_id(i).into(),
        target_id: target_id(i).into(),
        origin: Origin::Created,
        assigned_permission_sets: Default::default(),
        pending_email: None,
    };
    for i in 0..users {
        let r = roll(i);
        let user_groups: Vec<SourceGroupId> = groups_of(i, groups, seed)
            .map(|g| group_id(g).into())
            .collect();
        // Renamed in the source: to a fresh name, to the name of user i + 1 (held by its
        // account; free when that one is renamed too), or only in case.
        let source_email = match r {
            0..=4 => format!("renamed{i}@example.com"),
            5..=7 => email(i + 1),
            8..=9 => email(i).to_uppercase(),
            _ => email(i),
        };
        let user = DirectoryUser {
            id: source_id(i).into(),
            username: format!("user{i}").into(),
            email: Some(source_email.into()),
            first_name: Some(format!("First{i}").into()),
            last_name: Some(format!("Last{}", i % 1000).into()),
            display_name: Some(format!("First{i} Last{}", i % 1000).into()),
            status: if disabled(i) {
                DirectoryStatus::Disabled
            } else {
                DirectoryStatus::Active
            },
            phones: vec![],
            aliases: vec![],
            custom: Default::default(),
            groups: user_groups,
        };
        if r == 10 {
            // A duplicate id: the first one counts.
            let mut twin = user.clone();
            twin.last_name = Some("Twin".into());
            source.users.push(twin);
        }
        source.users.push(user);
        if new(i) {
            continue;
        }
        let last = if changed(i) {
            "Before".to_owned()
        } else {
            format!("Last{}", i % 1000)
        };
        let mut t = target_user(i, &last);
        match r {
            // Unlinked accounts: adopted by externalId, by userName, or not at all.
            11..=14 => {}
            15..=17 => t.external_id = None,
            18 => t.external_id = Some("someone-else".into()),
            19..=21 => t.active = false,
            22..=23 => {
                t.entitlements.push(Entitlement {
                    value: PERMISSION_SET.into(),
                    kind: Some("PermissionSet".into()),
                    display: None,
                });
            }
            _ => {}
        }
        target.users.push(t);
        if !(11..=18).contains(&r) {
            let mut l = link(i);
            if r == 22 {
                l.assigned_permission_sets.insert(PERMISSION_SET.to_owned());
            }
            links.users.push(l);
        }
        for (k, g) in groups_of(i, groups, seed).enumerate() {
            // Memberships missing on the target, and extra ones.
            if (30..=39).contains(&r) && k == 3 {
                continue;
            }
            members[g].push(target_id(i).into());
            if (40..=49).contains(&r) && k == 5 {
                members[(g + 1) % groups].push(target_id(i).into());
            }
        }
    }
    for i in users..users + gone {
        target.users.push(target_user(i, "Gone"));
        links.users.push(link(i));
        for g in groups_of(i, groups, seed) {
            members[g].push(target_id(i).into());
        }
    }
    if seed != 0 {
        // Strangers: accounts nobody links, some in groups.
        for i in users + gone..users + gone + 50 {
            let mut t = target_user(i, "Stranger");
            t.external_id = None;
            target.users.push(t);
            members[i % groups].push(target_id(i).into());
        }
    }
    for (g, m) in members.into_iter().enumerate() {
        let r = roll(g + 7_000_000);
        let name = format!("Group {g}");
        source.groups.push(DirectoryGroup {
            id: group_id(g).into(),
            name: if (0..=20).contains(&r) {
                format!("Renamed group {g}").into()
            } else {
                name.clone().into()
            },
            description: None,
        });
        let tid = format!("00G{g:015}");
        if (21..=40).contains(&r) {
            // Not on the target: created.
            continue;
        }
        target.groups.push(TargetGroup {
            id: tid.clone().into(),
            display_name: if (41..=50).contains(&r) {
                name.to_uppercase().into()
            } else {
                name.into()
            },
            members: m,
        });
        if (41..=60).contains(&r) {
            // On the target but not linked: adopted by name.
            continue;
        }
        links.groups.push(GroupLink {
            source_id: group_id(g).into(),
            target_id: tid.into(),
            origin: Origin::Created,
        });
    }
    if seed != 0 {
        // A linked group gone from the source, with members.
        let tid = "00G999999999999999".to_owned();
        target.groups.push(TargetGroup {
            id: tid.clone().into(),
            display_name: "Old group".into(),
            members: (0..users.min(300))
                .step_by(3)
                .map(|i| target_id(i).into())
                .collect(),
        });
        links.groups.push(GroupLink {
            source_id: "DG-gone".to_owned().into(),
            target_id: tid.into(),
            origin: Origin::Created,
        });
    }
    (source, target, links)
}
