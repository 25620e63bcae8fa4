//! The indexes agree with the users and groups after every kind of change.

use serde_json::{Value, json};

use super::index::Index;
use super::{SimUser, State};
use crate::salesforce::SalesforceConfig;

/// Panics unless the live indexes are what indexing the stored users and groups afresh gives.
fn check(st: &State) {
    let mut fresh = Index::default();
    for u in st.users.values() {
        fresh.add_user(u);
    }
    for g in st.groups.values() {
        fresh.add_group(g);
    }
    let live = &st.index;
    assert_eq!(live.user_order.all(), fresh.user_order.all(), "user order");
    assert_eq!(
        live.user_names.pairs(),
        fresh.user_names.pairs(),
        "userNames"
    );
    assert_eq!(
        live.nick_names.pairs(),
        fresh.nick_names.pairs(),
        "nickNames"
    );
    assert_eq!(
        live.external_ids.pairs(),
        fresh.external_ids.pairs(),
        "externalIds"
    );
    assert_eq!(
        live.group_order.all(),
        fresh.group_order.all(),
        "group order"
    );
    assert_eq!(
        live.group_names.pairs(),
        fresh.group_names.pairs(),
        "group names"
    );
    assert_eq!(
        live.groups_of_user.pairs(),
        fresh.groups_of_user.pairs(),
        "memberships"
    );
    let ids: Vec<&String> = st.users.keys().collect();
    let paged: Vec<&String> = st.users_page(0, usize::MAX).map(|u| &u.id).collect();
    assert_eq!(paged, ids, "pages follow id order");
}

fn user(st: &State, name: &str, extra: Value) -> Value {
    let profile = st.catalogue.profiles[0].id.clone();
    let mut body = json!({
        "userName": name,
        "emails": [{"type": "work", "value": name}],
        "entitlements": [{"value": profile}],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn replace(path: &str, value: &str) -> Value {
    json!({"op": "replace", "path": path, "value": value})
}

#[test]
fn indexes_follow_a_mixed_sequence() {
    let mut st = State::new(&SalesforceConfig::demo());

    let alice = st
        .create_user(&user(
            &st,
            "Alice@Example.com",
            json!({"externalId": "ext-a"}),
        ))
        .unwrap();
    let bob = st
        .create_user(&user(
            &st,
            "bob@example.com",
            json!({"nickName": "bobby", "externalId": "ext-b"}),
        ))
        .unwrap();
    check(&st);
    assert_eq!(
        st.users_named("ALICE@example.COM").next().unwrap().id,
        alice
    );
    assert!(st.nick_taken("Alice@Example.com", "")); // derived from the name as typed

    // Conflicting creates are refused and leave nothing behind.
    let dup = st
        .create_user(&user(&st, "ALICE@example.com", json!({})))
        .unwrap_err();
    assert_eq!(dup.code, "DUPLICATE_USERNAME");
    let nick = st
        .create_user(&user(
            &st,
            "carol@example.com",
            json!({"nickName": "BOBBY"}),
        ))
        .unwrap_err();
    assert_eq!(nick.code, "DUPLICATE_COMMUNITY_NICKNAME");
    assert_eq!(st.user_count(), 2);
    check(&st);

    // A rename frees the old name; a nickName change frees the old nickName.
    st.patch_user(&alice, &[replace("userName", "alice2@example.com")])
        .unwrap();
    st.patch_user(&bob, &[replace("nickName", "robert")])
        .unwrap();
    check(&st);
    assert!(st.users_named("alice@example.com").next().is_none());
    assert!(!st.nick_taken("bobby", ""));
    assert!(st.nick_taken("ROBERT", ""));
    assert!(!st.nick_taken("robert", &bob));
    let dave = st
        .create_user(&user(
            &st,
            "alice@example.com",
            json!({"nickName": "bobby", "externalId": "ext-a"}),
        ))
        .unwrap();
    check(&st);
    let with_ext: Vec<&str> = st
        .users_with_external_id("ext-a")
        .map(|u| u.id.as_str())
        .collect();
    assert_eq!(with_ext, [alice.as_str(), dave.as_str()]);

    // All or nothing: a PATCH whose last operation is refused changes no index.
    let refused = st
        .patch_user(
            &alice,
            &[
                replace("userName", "alice3@example.com"),
                replace("externalId", "ext-z"),
                replace("nickName", "robert"),
            ],
        )
        .unwrap_err();
    assert_eq!(refused.code, "DUPLICATE_COMMUNITY_NICKNAME");
    assert_eq!(st.user(&alice).unwrap().user_name, "alice2@example.com");
    check(&st);

    // An empty nickName is invented afresh; an externalId is cleared.
    st.patch_user(
        &dave,
        &[
            replace("nickName", ""),
            json!({"op": "remove", "path": "externalId"}),
        ],
    )
    .unwrap();
    assert!(!st.nick_taken("bobby", ""));
    check(&st);

    // Groups: memberships, a refused inactive member, a rename, a rolled-back PATCH.
    let group = st
        .create_group(&json!({"displayName": "Sales", "members": {"members": [{"value": alice}]}}))
        .unwrap();
    assert!(st.deactivate_user(&bob));
    assert!(!st.user(&bob).unwrap().active);
    let add =
        |uid: &str| json!({"op": "add", "path": "members", "value": {"members": [{"value": uid}]}});
    let inactive = st.patch_group(&group, &[add(&bob)]).unwrap_err();
    assert_eq!(inactive.code, "INACTIVE_OWNER_OR_USER");
    st.patch_group(&group, &[add(&dave), replace("displayName", "Sales EMEA")])
        .unwrap();
    check(&st);
    let rolled_back = st
        .patch_group(
            &group,
            &[
                json!({"op": "remove", "path": format!("members[value eq \"{alice}\"]")}),
                replace("displayName", "Renamed"),
                add("005nosuchuser"),
            ],
        )
        .unwrap_err();
    assert_eq!(rolled_back.code, "INVALID_CROSS_REFERENCE_KEY");
    check(&st);
    assert_eq!(st.groups_named("sales emea").next().unwrap().id, group);
    assert!(st.groups_named("renamed").next().is_none());
    let of_alice: Vec<&str> = st.groups_of(&alice).map(|g| g.id.as_str()).collect();
    assert_eq!(of_alice, [group.as_str()]);
    let dup_group = st
        .create_group(&json!({"displayName": "SALES emea"}))
        .unwrap_err();
    assert_eq!(dup_group.code, "DUPLICATE_DEVELOPER_NAME");
    st.patch_group(
        &group,
        &[json!({"op": "remove", "path": "members", "value": {"members": [{"value": dave}]}})],
    )
    .unwrap();
    assert!(st.groups_of(&dave).next().is_none());
    check(&st);

    // Knobs: a seeded user (one of its own id, out of order; one replacing a user), an email
    // verification.
    st.insert_user(SimUser {
        id: "0050000000000001".into(),
        user_name: "Seeded@Example.com".into(),
        external_id: Some("ext-s".into()),
        active: true,
        ..SimUser::default()
    });
    st.insert_user(SimUser {
        id: dave.clone(),
        user_name: "replaced@example.com".into(),
        nick_name: "replaced".into(),
        active: true,
        ..SimUser::default()
    });
    check(&st);
    assert!(st.users_with_external_id("ext-a").all(|u| u.id != dave));
    assert!(!st.nick_taken("bobby", ""));
    assert_eq!(st.users_page(0, 1).next().unwrap().id, "0050000000000001");
    st.patch_user(&alice, &[json!({"op": "replace", "path": "emails", "value": [{"type": "work", "value": "new@example.com"}]})])
        .unwrap();
    assert!(st.verify_email(&alice));
    assert_eq!(st.user(&alice).unwrap().email, "new@example.com");
    check(&st);
}

#[test]
fn pages_keep_id_order() {
    let mut st = State::new(&SalesforceConfig::demo());
    for id in ["005c", "005a", "005b"] {
        st.insert_user(SimUser {
            id: id.into(),
            user_name: format!("{id}@example.com"),
            ..SimUser::default()
        });
    }
    let created = st
        .create_user(&user(&st, "made@example.com", json!({})))
        .unwrap();
    let page: Vec<&str> = st.users_page(1, 2).map(|u| u.id.as_str()).collect();
    // The created id ("0055g…") sorts after "005a".."005c"? No: '5' < 'a', so it comes first.
    assert_eq!(page, ["005a", "005b"]);
    assert_eq!(st.users_page(0, 1).next().unwrap().id, created);
    assert_eq!(st.users_page(3, 10).next().unwrap().id, "005c");
    assert!(st.users_page(4, 10).next().is_none());
    assert!(st.users_page(usize::MAX, usize::MAX).next().is_none());
    check(&st);
}
