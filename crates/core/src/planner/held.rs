//! What the planner does with what the target refused before, does not declare, or showed
//! of itself: held writes stay out of the plan until their fingerprint changes; undeclared
//! attributes are never planned; learned batch sizes and profiles are followed.

use super::plan;
use crate::links::{HeldRefusal, Links, member_attribute};
use crate::plan::{NoteKind, ObjectKind, Operation, Plan, UserAttributes};
use crate::policy::{Policy, Scope, SourceAttribute};
use crate::refusals::{
    catalogue_fingerprint, create_fingerprint, member_fingerprint, split_update,
    user_name_fingerprint,
};
use crate::source::SourceSnapshot;
use crate::target::{TargetCapabilities, TargetSnapshot};
use crate::testing::*;
use crate::time::Timestamp;

const NOW: Timestamp = Timestamp(1_795_000_000_000);

fn directory(n: usize) -> SourceSnapshot {
    SourceSnapshot {
        users: (1..=n)
            .map(|i| {
                in_groups(
                    user(&format!("DU{i}"), &format!("u{i}@example.com")),
                    &["DG1"],
                )
            })
            .collect(),
        groups: vec![group("DG1", "Sales")],
        sso_access: None,
        unreadable: Vec::new(),
        unidentified: Vec::new(),
        problems: Vec::new(),
    }
}

fn policy() -> Policy {
    let mut p = salesforce_policy();
    p.scope = Scope::Groups(vec!["DG1".into()]);
    p
}

/// Plans once and applies, so the target holds everyone.
fn synced(source: &SourceSnapshot, policy: &Policy) -> (TargetSnapshot, Links) {
    let mut target = empty_target();
    let mut links = Links::default();
    let first = plan(source, &target, &links, policy, NOW).unwrap();
    apply(&first, &mut target, &mut links, NOW).unwrap();
    (target, links)
}

fn held(source_id: &str, attribute: &str, fingerprint: String) -> HeldRefusal {
    HeldRefusal {
        object: ObjectKind::User,
        source_id: source_id.into(),
        attribute: attribute.into(),
        fingerprint,
        value: "…".into(),
        reason: "INVALID_FIELD:refused;".into(),
        at: NOW,
    }
}

fn creations(p: &Plan) -> Vec<&UserAttributes> {
    p.operations
        .iter()
        .filter_map(|op| match op {
            Operation::CreateUser { attributes, .. } => Some(attributes),
            _ => None,
        })
        .collect()
}

fn added(p: &Plan) -> Vec<String> {
    p.operations
        .iter()
        .flat_map(|op| match op {
            Operation::AddMembers { members, .. } => members.clone(),
            _ => Vec::new(),
        })
        .map(|m| m.user_name.to_string())
        .collect()
}

#[test]
fn a_refused_attribute_is_not_sent_again_until_its_value_changes() {
    let mut policy = policy();
    policy.mapping.title = Some(SourceAttribute::Custom("title".into()));
    let mut source = directory(2);
    let (mut target, mut links) = synced(&source, &policy);
    for u in &mut source.users {
        u.custom.insert("title", "CTO");
        u.email = Some(
            u.email
                .clone()
                .unwrap_or_default()
                .replace('@', ".new@")
                .into(),
        );
    }
    let p = plan(&source, &target, &links, &policy, NOW).unwrap();
    let Operation::UpdateUser { changes, .. } = &p.operations[0] else {
        panic!("{:?}", p.operations)
    };
    let title = split_update(&changes.only("title"), None, "")[0].clone();
    links.refusals.push(held("DU1", "title", title.fingerprint));

    let p = plan(&source, &target, &links, &policy, NOW).unwrap();
    let du1 = p
        .operations
        .iter()
        .find_map(|op| match op {
            Operation::UpdateUser {
                source_id, changes, ..
            } if source_id.as_str() == "DU1" => Some(changes),
            _ => None,
        })
        .unwrap();
    assert!(du1.title.is_none(), "the refused title is left out");
    assert!(du1.email.is_some(), "the email change still goes");
    assert_eq!(p.summary.held, 1);
    assert!(
        p.notes
            .iter()
            .any(|n| n.kind == NoteKind::RefusedEarlier && n.source_id == "DU1")
    );
    // DU2 has no refusal: its title goes.
    assert!(p.operations.iter().any(|op| matches!(op,
        Operation::UpdateUser { source_id, changes, .. } if source_id.as_str() == "DU2" && changes.title.is_some())));

    // Another title: a new write, sent.
    source.users[0].custom.insert("title", "CEO");
    let p = plan(&source, &target, &links, &policy, NOW).unwrap();
    assert_eq!(p.summary.held, 0);
    apply(&p, &mut target, &mut links, NOW).unwrap();
    assert!(
        links.refusals.iter().all(|r| r.source_id != "DU1"),
        "accepted: the refusal is forgotten"
    );
}

#[test]
fn attributes_the_target_does_not_declare_are_never_planned() {
    let source = directory(1);
    let policy = policy();
    let mut target = empty_target();
    target.capabilities = Some(TargetCapabilities {
        user_attributes: Some(
            crate::plan::USER_ATTRIBUTES
                .iter()
                .filter(|a| **a != "federationId")
                .map(|a| (*a).to_owned())
                .collect(),
        ),
        ..TargetCapabilities::default()
    });
    let p = plan(&source, &target, &Links::default(), &policy, NOW).unwrap();
    assert_eq!(creations(&p)[0].federation_id, None);
    let notes: Vec<_> = p
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::NotDeclared)
        .collect();
    assert_eq!(notes.len(), 1, "one note per run, not one per user");
    assert!(
        notes[0].message.contains("federationId"),
        "{}",
        notes[0].message
    );
    // An account holding no federation id is not changed to get one.
    let mut links = Links::default();
    apply(&p, &mut target, &mut links, NOW).unwrap();
    let again = plan(&source, &target, &links, &policy, NOW).unwrap();
    assert!(again.is_empty(), "{:?}", again.operations);
}

#[test]
fn a_refused_creation_waits_for_another_user_name_or_other_attributes() {
    let source = directory(2);
    let policy = policy();
    let target = empty_target();
    let cat = catalogue_fingerprint(&target.catalogue);
    let first = plan(&source, &target, &Links::default(), &policy, NOW).unwrap();
    let du2 = creations(&first)[1].clone();
    let links = Links {
        refusals: vec![
            held("DU1", "userName", user_name_fingerprint("U1@example.com")),
            held("DU2", "create", create_fingerprint(&du2, &cat)),
        ],
        ..Links::default()
    };
    let p = plan(&source, &target, &links, &policy, NOW).unwrap();
    assert!(creations(&p).is_empty(), "{:?}", p.operations);
    assert_eq!(p.summary.held, 2);
    let mut renamed = source.clone();
    renamed.users[0].email = Some("u1@acme.example.com".into());
    let p = plan(&renamed, &target, &links, &policy, NOW).unwrap();
    assert_eq!(creations(&p).len(), 1, "a new userName is tried");
}

#[test]
fn a_member_refused_alone_is_held_until_its_profile_changes() {
    let source = directory(3);
    let policy = policy();
    let (target, mut links) = synced(&source, &policy);
    let mut target = target;
    for g in &mut target.groups {
        g.members.clear();
    }
    let cat = catalogue_fingerprint(&target.catalogue);
    links.refusals.push(held(
        "DU2",
        &member_attribute("DG1"),
        member_fingerprint(true, Some(STANDARD_USER), &cat),
    ));
    let p = plan(&source, &target, &links, &policy, NOW).unwrap();
    assert_eq!(added(&p), ["u1@example.com", "u3@example.com"]);
    assert_eq!(p.summary.held, 1);
    // Another baseline profile: the membership is tried again.
    let mut other = policy.clone();
    if let Some(b) = other.governance.baseline.as_mut() {
        b.profile = "System Administrator".into();
    }
    let p = plan(&source, &target, &links, &other, NOW).unwrap();
    assert_eq!(added(&p).len(), 3);
}

#[test]
fn learned_batch_sizes_and_profiles_without_groups_are_followed() {
    let source = directory(5);
    let mut policy = policy();
    policy.member_batch_size = 100;
    let mut links = Links::default();
    links.facts.member_batch_size = Some(2);
    let p = plan(&source, &empty_target(), &links, &policy, NOW).unwrap();
    let sizes: Vec<usize> = p
        .operations
        .iter()
        .filter_map(|op| match op {
            Operation::AddMembers { members, .. } => Some(members.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, [2, 2, 1]);

    links
        .facts
        .profiles_without_groups
        .insert(STANDARD_USER.into());
    let p = plan(&source, &empty_target(), &links, &policy, NOW).unwrap();
    assert!(added(&p).is_empty());
    assert!(
        p.notes
            .iter()
            .any(|n| n.kind == NoteKind::ProfileForbidsGroups)
    );
    // Declared in the governance configuration, by name: the same.
    policy.governance.profiles_without_groups = vec!["Standard User".into()];
    let p = plan(&source, &empty_target(), &Links::default(), &policy, NOW).unwrap();
    assert!(added(&p).is_empty());
}

#[test]
fn a_user_name_suffix_keeps_usernames_apart_from_other_orgs() {
    let source = directory(1);
    let mut policy = policy();
    policy.mapping.user_name_suffix = Some(".acme".into());
    let mut target = empty_target();
    let mut links = Links::default();
    let p = plan(&source, &target, &links, &policy, NOW).unwrap();
    let created = creations(&p)[0];
    assert_eq!(created.user_name, "u1@example.com.acme");
    assert_eq!(
        created.email, "u1@example.com",
        "the email is the plain address"
    );
    assert_eq!(
        created.federation_id.as_deref(),
        Some("u1@example.com"),
        "SSO matches on the plain address"
    );
    apply(&p, &mut target, &mut links, NOW).unwrap();
    let again = plan(&source, &target, &links, &policy, NOW).unwrap();
    assert!(again.is_empty(), "{:?}", again.operations);
}
