//! The rules of incremental runs.

use super::*;
use crate::links::Links;
use crate::planner::plan;
use crate::source::SourceSnapshot;
use crate::testing::*;

const NOW: Timestamp = Timestamp(1_795_000_000_000);
const DAY: i64 = 24 * 60 * 60 * 1000;

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

fn kind(facts: &TargetFacts, asked: bool, caps: bool) -> RunKind {
    choose(KindInput {
        asked,
        facts,
        policy: "p1",
        full_every_ms: DAY,
        capabilities_changed: caps,
        now: NOW,
    })
}

#[test]
fn a_run_is_full_when_asked_unread_due_or_under_another_policy_else_incremental() {
    let mut facts = TargetFacts::default();
    assert_eq!(
        kind(&facts, false, false),
        RunKind::Full {
            reason: FullReason::NoState
        }
    );
    facts.last_full_read = Some(Timestamp(NOW.millis() - DAY + 1));
    facts.full_read_policy = Some("p1".to_owned());
    assert_eq!(kind(&facts, false, false), RunKind::Incremental);
    assert_eq!(
        kind(&facts, true, false),
        RunKind::Full {
            reason: FullReason::Asked
        }
    );
    assert_eq!(
        kind(&facts, false, true),
        RunKind::Full {
            reason: FullReason::CapabilitiesChanged
        }
    );
    facts.full_read_policy = Some("p0".to_owned());
    assert_eq!(
        kind(&facts, false, false),
        RunKind::Full {
            reason: FullReason::PolicyChanged
        }
    );
    facts.full_read_policy = Some("p1".to_owned());
    let last = Timestamp(NOW.millis() - DAY);
    facts.last_full_read = Some(last);
    assert_eq!(
        kind(&facts, false, false),
        RunKind::Full {
            reason: FullReason::Due { last }
        }
    );
    assert_eq!(
        RunKind::Full {
            reason: FullReason::Asked
        }
        .to_string(),
        "full (asked for)"
    );
}

#[test]
fn the_policy_fingerprint_follows_what_decides_the_desired_state_only() {
    let base = salesforce_policy();
    let mut safety = base.clone();
    safety.safety.max_deactivations = Some(1);
    safety.member_batch_size = 7;
    assert_eq!(policy_fingerprint(&base), policy_fingerprint(&safety));
    let mut mapped = base.clone();
    mapped.mapping.title = Some(crate::policy::SourceAttribute::Email);
    assert_ne!(policy_fingerprint(&base), policy_fingerprint(&mapped));
    let mut groups = base.clone();
    groups.exclude_groups = true;
    assert_ne!(policy_fingerprint(&base), policy_fingerprint(&groups));
}

/// A first run applied in memory: the target, the links, and the state a full read keeps.
fn synced(src: &SourceSnapshot) -> (TargetSnapshot, Links, StoredState) {
    let mut target = empty_target();
    let mut links = Links::default();
    let first = plan(src, &target, &links, &salesforce_policy(), NOW).unwrap();
    apply(&first, &mut target, &mut links, NOW).unwrap();
    let users: HashSet<&str> = links.users.iter().map(|l| l.target_id.as_str()).collect();
    let groups: HashSet<&str> = links.groups.iter().map(|l| l.target_id.as_str()).collect();
    let state = StoredState::from_full_read(&target, &users, &groups);
    (target, links, state)
}

#[test]
fn an_incremental_plan_reads_what_it_touches_and_equals_the_full_plan() {
    let g = group("G1", "Sales");
    let src = source(
        vec![
            in_groups(user("U1", "ada@example.com"), &["G1"]),
            user("U2", "bob@example.com"),
            user("U3", "cy@example.com"),
        ],
        vec![g.clone()],
    );
    let (mut target, links, state) = synced(&src);
    // An account nobody linked holds the new user's userName: adopted, not duplicated.
    target.users.push(account("005STRANGER", "dee@example.com"));
    let mut changed = src.clone();
    changed.users[1].last_name = Some("Builder".into());
    changed
        .users
        .push(in_groups(user("U4", "dee@example.com"), &["G1"]));
    let policy = salesforce_policy();

    let full = plan(&changed, &target, &links, &policy, NOW).unwrap();
    let believed = state.believed(Some(&catalogue()));
    let first = plan(&changed, &believed, &links, &policy, NOW).unwrap();
    let asked = lookup(&first);
    let bob = links
        .users
        .iter()
        .find(|l| l.source_id.as_str() == "U2")
        .unwrap();
    let group_id = links.groups[0].target_id.clone();
    assert_eq!(asked.user_ids, vec![bob.target_id.clone()]);
    assert_eq!(asked.user_names, vec!["dee@example.com".to_owned()]);
    assert_eq!(asked.external_ids, vec!["U4".to_owned()]);
    assert_eq!(asked.group_ids, vec![group_id]);
    assert!(asked.group_names.is_empty());

    let mut merged = believed.clone();
    let gone = merge(&mut merged, &asked, asked.keep(target.clone()));
    assert_eq!(gone, Gone::default());
    let second = plan(&changed, &merged, &links, &policy, NOW).unwrap();
    assert_eq!(second.operations, full.operations);
    assert!(second.operations.iter().any(|op| op.kind() == "adopt_user"));
    assert!(
        !second
            .operations
            .iter()
            .any(|op| op.kind() == "create_user")
    );
}

#[test]
fn nothing_changed_means_nothing_to_read() {
    let src = source(
        vec![user("U1", "ada@example.com")],
        vec![group("G1", "Sales")],
    );
    let (_, links, state) = synced(&src);
    let believed = state.believed(Some(&catalogue()));
    let again = plan(&src, &believed, &links, &salesforce_policy(), NOW).unwrap();
    assert!(again.is_empty());
    assert!(lookup(&again).is_empty());
}

#[test]
fn an_object_asked_by_id_and_not_found_is_gone() {
    let (target, _, state) = synced(&source(
        vec![user("U1", "ada@example.com"), user("U2", "bob@example.com")],
        vec![],
    ));
    let mut believed = state.believed(None);
    let asked = Lookup {
        user_ids: target.users.iter().map(|u| u.id.clone()).collect(),
        ..Lookup::default()
    };
    let mut found = target.clone();
    found.users.remove(0);
    found.users[0].title = Some("Boss".into());
    let gone = merge(&mut believed, &asked, found);
    assert_eq!(gone.users, vec![target.users[0].id.clone()]);
    assert_eq!(believed.users.len(), 1);
    assert_eq!(believed.users[0].title.as_deref(), Some("Boss"));
}

#[test]
fn an_accepted_update_changes_the_stored_user_but_an_email_waits_for_the_target() {
    let before = account("005A", "ada@example.com");
    let changes = UserChanges {
        title: Some(Some("CTO".into())),
        email: Some("ada@new.example.com".into()),
        entitlements: Some(crate::plan::EntitlementChange {
            profile: SYSTEM_ADMINISTRATOR.into(),
            profile_changed: true,
            permission_sets: vec![SALES_CLOUD.into()],
            added: vec![SALES_CLOUD.into()],
            removed: Vec::new(),
        }),
        ..UserChanges::default()
    };
    let (after, doubtful) = after_update(&before, &changes);
    assert!(doubtful, "an email change leaves the user to be read again");
    assert_eq!(after.title.as_deref(), Some("CTO"));
    assert_eq!(after.work_email(), Some("ada@example.com"));
    assert_eq!(catalogue().profile_of(&after), Some(SYSTEM_ADMINISTRATOR));
    let (_, doubtful) = after_update(
        &before,
        &UserChanges {
            title: Some(None),
            ..UserChanges::default()
        },
    );
    assert!(!doubtful);
    assert!(!after_deactivate(&before).active);
}

#[test]
fn members_added_and_removed_change_the_stored_group() {
    let g = TargetGroup {
        id: TargetGroupId::from("00G1"),
        display_name: "Sales".into(),
        members: vec![TargetUserId::from("005A")],
    };
    let ids = |v: &[&str]| v.iter().map(|i| TargetUserId::from(*i)).collect::<Vec<_>>();
    let added = after_members(&g, &ids(&["005A", "005B", "005B"]), true);
    assert_eq!(added.members, ids(&["005A", "005B"]));
    let removed = after_members(&added, &ids(&["005A"]), false);
    assert_eq!(removed.members, ids(&["005B"]));
    assert_eq!(after_rename(&removed, "Sales EU").display_name, "Sales EU");
}

#[test]
fn drift_names_each_attribute_with_its_stored_and_found_values() {
    let stored = account("005A", "ada@example.com");
    let mut found = stored.clone();
    // The same entitlements, told differently: no drift.
    found.entitlements[0].display = Some("Standard User".into());
    found.entitlements[0].kind = None;
    assert_eq!(drift_of_user(&stored, Some(&found), &catalogue()), None);
    found.title = Some("Boss".into());
    found.entitlements[0].value = SYSTEM_ADMINISTRATOR.into();
    let d = drift_of_user(&stored, Some(&found), &catalogue()).unwrap();
    assert_eq!(d.target_id, "005A");
    assert_eq!(
        d.describe(),
        format!(
            "title: (none) → \"Boss\"; profile: \"{STANDARD_USER}\" → \"{SYSTEM_ADMINISTRATOR}\""
        )
    );
    let gone = drift_of_user(&stored, None, &catalogue()).unwrap();
    assert_eq!(gone.describe(), "account: \"ada@example.com\" → (none)");

    let group = TargetGroup {
        id: TargetGroupId::from("00G1"),
        display_name: "Sales".into(),
        members: vec![TargetUserId::from("005A")],
    };
    let mut other = group.clone();
    other.members = vec![TargetUserId::from("005B")];
    other.display_name = "Sales!".into();
    assert_eq!(
        drift_of_group(&group, Some(&other)).unwrap().describe(),
        "displayName: \"Sales\" → \"Sales!\"; members: \"005A\" → \"005B\""
    );
}

#[test]
fn drift_of_a_targeted_read_covers_the_objects_asked_by_id_and_not_the_doubtful() {
    let a = account("005A", "ada@example.com");
    let b = account("005B", "bob@example.com");
    let mut state = StoredState {
        users: vec![a.clone(), b.clone()],
        ..StoredState::default()
    };
    let mut found = TargetSnapshot::default();
    let mut a2 = a.clone();
    a2.title = Some("x".into());
    found.users.push(a2);
    let asked = Lookup {
        user_ids: vec![a.id.clone()],
        ..Lookup::default()
    };
    assert_eq!(drift(&state, &found, Some(&asked), &catalogue()).len(), 1);
    // A whole read: b is gone.
    assert_eq!(drift(&state, &found, None, &catalogue()).len(), 2);
    state.doubtful_users.insert(a.id.clone());
    assert_eq!(drift(&state, &found, Some(&asked), &catalogue()).len(), 0);
}
