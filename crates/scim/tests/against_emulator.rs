//! The SCIM client against the Salesforce emulator, in both dialects: every resource, every
//! error and its message, limits, retries and token refresh.
#![allow(clippy::unwrap_used)]

use scimsync_core::plan::{EntitlementChange, UserAttributes, UserChanges};
use scimsync_core::ports::{Classify, Disposition, Lookup, ReadScope, Target};
use scimsync_core::{TargetGroupId, TargetUserId};
use scimsync_scim::{Auth, ClientAuthMethod, Dialect, ScimClient, ScimConfig, TargetedReads};
use scimsync_sim::salesforce::{
    BurstKind, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SalesforceConfig, SalesforceSim,
};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(
    sim: &SalesforceSim,
    token_url: &str,
    id: &str,
    secret: &str,
    dialect: Dialect,
) -> ScimConfig {
    ScimConfig {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_secs(2),
        requests_per_second: 500,
        ..ScimConfig::new(
            url::Url::parse(&sim.base_url()).unwrap(),
            Auth::ClientCredentials {
                token_url: url::Url::parse(token_url).unwrap(),
                client_id: id.to_owned(),
                client_secret: SecretString::from(secret.to_owned()),
                method: ClientAuthMethod::Form,
            },
            dialect,
        )
    }
}

fn client(sim: &SalesforceSim, dialect: Dialect) -> ScimClient {
    ScimClient::new(config(
        sim,
        &sim.token_url(),
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        dialect,
    ))
    .unwrap()
}

fn attrs(sim: &SalesforceSim, user_name: &str, external_id: &str) -> UserAttributes {
    UserAttributes {
        user_name: user_name.into(),
        external_id: external_id.into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        display_name: Some("Ada Lovelace".into()),
        nick_name: None,
        title: Some("Engineer".into()),
        email: user_name.into(),
        work_phone: Some("+15550001".into()),
        federation_id: Some(user_name.into()),
        enterprise: Default::default(),
        profile: sim.catalogue_id("Standard User").map(Into::into),
        permission_sets: vec![sim.catalogue_id("Sales Cloud User").unwrap().into()],
        role: sim.catalogue_id("Sales Rep").map(Into::into),
    }
}

#[tokio::test]
async fn users_groups_and_the_catalogue_in_salesforces_dialect() {
    let sim = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let c = client(&sim, Dialect::Salesforce);
    let ada = c
        .create_user(&attrs(&sim, "Ada@Example.com", "DU1"))
        .await
        .unwrap();
    assert_eq!(
        ada.user_name, "ada@example.com",
        "lower-cased by Salesforce"
    );
    assert_eq!(ada.federation_id.as_deref(), Some("Ada@Example.com"));
    assert_eq!(ada.entitlements.len(), 2);
    // One PATCH with several changes, then a deactivation: never a DELETE.
    let changes = UserChanges {
        title: Some(None),
        family_name: Some(Some("Byron".into())),
        entitlements: Some(EntitlementChange {
            profile: sim.catalogue_id("Standard User").unwrap().into(),
            profile_changed: false,
            permission_sets: vec![],
            added: vec![],
            removed: vec![sim.catalogue_id("Sales Cloud User").unwrap().into()],
        }),
        ..UserChanges::default()
    };
    let before = sim.inspect().count("PATCH", "/services/scim/v2/Users");
    c.update_user(&ada.id, &changes).await.unwrap();
    assert_eq!(
        sim.inspect().count("PATCH", "/services/scim/v2/Users"),
        before + 1,
        "one request"
    );
    let after = c.get_user(&ada.id).await.unwrap();
    assert_eq!(after.family_name.as_deref(), Some("Byron"));
    assert_eq!(after.title, None);
    assert_eq!(after.entitlements.len(), 1);
    c.update_user(
        &ada.id,
        &UserChanges {
            active: Some(false),
            ..UserChanges::default()
        },
    )
    .await
    .unwrap();
    assert!(!c.get_user(&ada.id).await.unwrap().active);
    assert_eq!(sim.inspect().count("DELETE", "/services/scim"), 0);

    // Paging past Salesforce's 200 and filters with quotes and backslashes.
    for i in 0..205 {
        c.create_user(&attrs(
            &sim,
            &format!("u{i}@example.com"),
            &format!("DU-{i}"),
        ))
        .await
        .unwrap();
    }
    let odd = c
        .create_user(&attrs(&sim, "odd@example.com", r#"we"ird\id"#))
        .await
        .unwrap();
    let snapshot = c
        .read(ReadScope {
            groups: true,
            catalogue: true,
        })
        .await
        .unwrap();
    assert_eq!(snapshot.users.len(), 207);
    let found = c
        .find_user("nobody@example.com", r#"we"ird\id"#)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, odd.id);
    let found = c
        .find_user("U7@EXAMPLE.COM", "not-there")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_name, "u7@example.com");

    // Catalogue: profiles with licence and group permission, permission sets, roles.
    let chatter = snapshot
        .catalogue
        .profiles
        .iter()
        .find(|p| p.name == "Chatter Free User")
        .unwrap();
    assert_eq!(chatter.licence.as_deref(), Some("Chatter Free"));
    assert!(!chatter.allows_groups);
    assert!(!snapshot.catalogue.permission_sets.is_empty() && !snapshot.catalogue.roles.is_empty());

    // Groups: create, rename, members in batches.
    let c = ScimClient::new(ScimConfig {
        member_batch_size: 2,
        ..config(
            &sim,
            &sim.token_url(),
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            Dialect::Salesforce,
        )
    })
    .unwrap();
    let g = c.create_group("Sales").await.unwrap();
    c.rename_group(&g.id, "Sales EMEA").await.unwrap();
    let members: Vec<_> = snapshot
        .users
        .iter()
        .filter(|u| u.active)
        .take(5)
        .map(|u| u.id.clone())
        .collect();
    let patches = sim.inspect().count("PATCH", "/services/scim/v2/Groups");
    c.add_members(&g.id, &members).await.unwrap();
    assert_eq!(
        sim.inspect().count("PATCH", "/services/scim/v2/Groups"),
        patches + 3,
        "batches of 2"
    );
    c.remove_members(&g.id, &members[..2]).await.unwrap();
    let group = sim.inspect().group_by_name("Sales EMEA").unwrap();
    assert_eq!(group.members.len(), 3);

    let steps = c.check().await;
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    // The emulator describes itself fully: discovery has nothing to note.
    let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
    let caps = c.capabilities().unwrap();
    assert!(caps.notes.is_empty(), "{:?}", caps.notes);
    assert!(caps.user_attributes.is_some(), "{caps:?}");
    assert_eq!(
        names,
        [
            "token",
            "service provider config",
            "schemas",
            "users",
            "catalogue"
        ]
    );
    let usage = c.stats().api_usage.unwrap();
    assert!(
        usage.0 > 200 && usage.1 == 100_000,
        "Sforce-Limit-Info recorded: {usage:?}"
    );
}

// The token and permission errors, in both dialects, are in `emulator.rs`.
#[tokio::test]
async fn a_refused_creation_carries_the_targets_reason_verbatim() {
    let sim = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    // A refused creation carries the target's reason verbatim.
    let c = client(&sim, Dialect::Salesforce);
    let mut no_profile = attrs(&sim, "np@example.com", "DU9");
    no_profile.profile = None;
    no_profile.permission_sets.clear();
    let err = c.create_user(&no_profile).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "REQUIRED_FIELD_MISSING: user_must_have_one_entitlement_which_must_be_a_profileid"
        ),
        "{err}"
    );
    assert!(
        matches!(err.disposition(), Disposition::Refused { code: Some(ref c) } if c == "REQUIRED_FIELD_MISSING")
    );
    c.create_user(&attrs(&sim, "dup@example.com", "DU10"))
        .await
        .unwrap();
    let err = c
        .create_user(&attrs(&sim, "DUP@example.com", "DU11"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("DUPLICATE_USERNAME"), "{err}");
}

#[tokio::test]
async fn a_rate_rejection_slows_the_pace_and_it_climbs_back() {
    let sim = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let c = client(&sim, Dialect::Salesforce);
    assert_eq!(c.stats().pace_per_s, 500, "the configured rate");
    sim.knobs()
        .rate_limit_burst(1, 0, BurstKind::RequestLimitExceeded);
    c.read(ReadScope {
        groups: true,
        catalogue: true,
    })
    .await
    .unwrap();
    assert_eq!(c.stats().rate_limited, 1);
    let slowed = c.stats().pace_per_s;
    assert!((400..=420).contains(&slowed), "cut to 80 %: {slowed}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let climbed = c.stats().pace_per_s;
    assert!(
        climbed >= slowed + 15 && climbed <= 500,
        "climbs back 10 a second: {slowed} → {climbed}"
    );
}

#[tokio::test]
async fn a_429_burst_with_retry_after_is_absorbed() {
    let sim = SalesforceSim::start(SalesforceConfig::generic())
        .await
        .unwrap();
    let c = client(&sim, Dialect::Generic);
    let u = c
        .create_user(&attrs(&sim, "g@example.com", "DU1"))
        .await
        .unwrap();
    sim.knobs()
        .rate_limit_burst(2, 1, BurstKind::TooManyRequests);
    let started = Instant::now();
    c.get_user(&u.id).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured twice"
    );
    assert_eq!(c.stats().rate_limited, 2);
    let sf = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let s = client(&sf, Dialect::Salesforce);
    sf.knobs()
        .rate_limit_burst(1, 1, BurstKind::RequestLimitExceeded);
    s.read(ReadScope {
        groups: false,
        catalogue: true,
    })
    .await
    .unwrap();
    sf.knobs().fail_next(2, 503);
    s.read(ReadScope {
        groups: false,
        catalogue: true,
    })
    .await
    .unwrap();
    sf.knobs().drop_next(1);
    s.read(ReadScope {
        groups: false,
        catalogue: true,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_run_goes_on() {
    let sim = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let c = Arc::new(client(&sim, Dialect::Salesforce));
    for i in 0..5 {
        c.create_user(&attrs(
            &sim,
            &format!("a{i}@example.com"),
            &format!("DU{i}"),
        ))
        .await
        .unwrap();
    }
    sim.knobs().revoke_tokens();
    let tasks: Vec<_> = (5..15)
        .map(|i| {
            let c = Arc::clone(&c);
            let a = attrs(&sim, &format!("a{i}@example.com"), &format!("DU{i}"));
            tokio::spawn(async move { c.create_user(&a).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(sim.inspect().users().len(), 15);
    assert_eq!(
        sim.inspect().tokens_issued(),
        2,
        "one new token for all the requests that saw the revoked one"
    );
    assert_eq!(c.stats().tokens_fetched, 2);
    let stats = c.stats();
    assert_eq!(
        stats.requests_by_method.values().sum::<u64>(),
        stats.requests
    );
    assert!(
        stats
            .requests_by_method
            .get("POST")
            .is_some_and(|n| *n >= 15)
    );
}

#[tokio::test]
async fn the_generic_dialect_speaks_rfc_7644() {
    let sim = SalesforceSim::start(SalesforceConfig::generic())
        .await
        .unwrap();
    let c = client(&sim, Dialect::Generic);
    let mut a = attrs(&sim, "g@example.com", "DU1");
    a.profile = None;
    a.permission_sets.clear();
    a.role = None;
    let u = c.create_user(&a).await.unwrap();
    c.update_user(
        &u.id,
        &UserChanges {
            email: Some("g2@example.com".into()),
            work_phone: Some(Some("+1999".into())),
            title: Some(None),
            ..UserChanges::default()
        },
    )
    .await
    .unwrap();
    let after = c.get_user(&u.id).await.unwrap();
    assert_eq!(
        after.work_email(),
        Some("g2@example.com"),
        "no verification hold in generic mode"
    );
    assert_eq!(after.work_phone(), Some("+1999"));
    assert_eq!(after.title, None);
    let g = c.create_group("Ops").await.unwrap();
    c.add_members(&g.id, std::slice::from_ref(&u.id))
        .await
        .unwrap();
    // The ETag from the 204 answer is sent back as If-Match.
    c.remove_members(&g.id, std::slice::from_ref(&u.id))
        .await
        .unwrap();
    assert!(
        sim.inspect()
            .group_by_name("Ops")
            .unwrap()
            .members
            .is_empty()
    );
}

/// An org with 300 seeded users (`u000@example.com`…, externalId `DU000`…) and two groups of
/// ten members each; returns the user ids and the group ids.
async fn seeded(sim: &SalesforceSim, c: &ScimClient) -> (Vec<String>, Vec<String>) {
    let ids: Vec<String> = (0..300)
        .map(|i| {
            sim.seed_user(scimsync_sim::salesforce::SimUser {
                user_name: format!("u{i:03}@example.com"),
                external_id: Some(format!("DU{i:03}")),
                family_name: Some("Lovelace".into()),
                email: format!("u{i:03}@example.com"),
                active: true,
                ..Default::default()
            })
        })
        .collect();
    let mut groups = Vec::new();
    for (g, name) in ["Sales", "Support"].into_iter().enumerate() {
        let gid = sim.seed_group(name);
        let members: Vec<TargetUserId> = ids[g * 10..g * 10 + 10]
            .iter()
            .map(|i| TargetUserId::from(i.clone()))
            .collect();
        c.add_members(&TargetGroupId::from(gid.clone()), &members)
            .await
            .unwrap();
        groups.push(gid);
    }
    (ids, groups)
}

/// 120 ids (two of them absent), three userNames in another case (one absent), two
/// externalIds (one differing only in case: absent), one group by id and one by name (the
/// other name differing in case: absent).
fn lookup(ids: &[String], groups: &[String]) -> Lookup {
    let mut user_ids: Vec<TargetUserId> = ids[..118]
        .iter()
        .map(|i| TargetUserId::from(i.clone()))
        .collect();
    user_ids.push(TargetUserId::from("005000000000999AAA".to_owned()));
    user_ids.push(TargetUserId::from("005000000000998AAA".to_owned()));
    Lookup {
        user_ids,
        user_names: vec![
            "U200@Example.COM".into(),
            "u201@example.com".into(),
            "nobody@example.com".into(),
        ],
        external_ids: vec!["DU250".into(), "du251".into()],
        group_ids: vec![TargetGroupId::from(groups[0].clone())],
        group_names: vec!["Support".into(), "sales".into()],
    }
}

/// What a lookup answered: userNames sorted, groups by name with their member count.
fn answered(
    snapshot: &scimsync_core::target::TargetSnapshot,
) -> (Vec<String>, Vec<(String, usize)>) {
    let mut users: Vec<String> = snapshot
        .users
        .iter()
        .map(|u| u.user_name.to_string())
        .collect();
    users.sort();
    let mut groups: Vec<(String, usize)> = snapshot
        .groups
        .iter()
        .map(|g| (g.display_name.to_string(), g.members.len()))
        .collect();
    groups.sort();
    (users, groups)
}

fn expected() -> (Vec<String>, Vec<(String, usize)>) {
    let mut users: Vec<String> = (0..118)
        .chain([200, 201, 250])
        .map(|i| format!("u{i:03}@example.com"))
        .collect();
    users.sort();
    (users, vec![("Sales".into(), 10), ("Support".into(), 10)])
}

#[tokio::test]
async fn read_some_asks_by_filters_joined_by_or_in_batches() {
    let sim = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let c = client(&sim, Dialect::Salesforce);
    c.discover().await.unwrap();
    let (ids, groups) = seeded(&sim, &c).await;
    let before = sim.inspect().request_log().len();
    let requests = c.api_usage().requests;
    let got = c.read_some(&lookup(&ids, &groups)).await.unwrap();
    assert_eq!(answered(&got), expected());
    let sales = got
        .groups
        .iter()
        .find(|g| g.display_name == "Sales")
        .unwrap();
    assert_eq!(sales.members[0].as_str(), ids[0]);
    let log: Vec<_> = sim.inspect().request_log().split_off(before);
    let users: Vec<_> = log
        .iter()
        .filter(|r| r.path.starts_with("/services/scim/v2/Users?"))
        .collect();
    // 120 ids in three filters of at most 50 clauses, one for the names, one for externalIds.
    assert_eq!(users.len(), 5, "{users:#?}");
    assert!(
        users
            .iter()
            .all(|r| r.status == 200 && (r.path.contains("+or+") || r.path.contains("%20or%20"))),
        "{users:#?}"
    );
    let groups_asked = log
        .iter()
        .filter(|r| r.path.starts_with("/services/scim/v2/Groups?"))
        .count();
    assert_eq!(groups_asked, 2, "one filter by id, one by displayName");
    // The two ids the filters did not answer are read by id (404), in case the target
    // evaluated only part of a filter.
    let by_id: Vec<_> = log
        .iter()
        .filter(|r| r.path.starts_with("/services/scim/v2/Users/"))
        .collect();
    assert_eq!(by_id.len(), 2, "{by_id:#?}");
    assert!(by_id.iter().all(|r| r.status == 404));
    assert_eq!(log.len(), 9, "{log:#?}");
    assert_eq!(
        c.api_usage().requests - requests,
        9,
        "counted like every request"
    );
    assert_eq!(c.targeted_reads(), TargetedReads::Or);
    assert!(got.capabilities.is_none() && got.catalogue.profiles.is_empty());
    // Nothing asked, nothing sent.
    let none = c.read_some(&Lookup::default()).await.unwrap();
    assert!(none.users.is_empty() && none.groups.is_empty());
    assert_eq!(sim.inspect().request_log().len(), before + 9);
}

#[tokio::test]
async fn read_some_steps_down_to_single_clauses_when_or_is_refused_and_remembers() {
    let sim = SalesforceSim::start(SalesforceConfig::strict())
        .await
        .unwrap();
    // Pages of 2: listing the 300 users would take 150 requests, more than one per key.
    let c = ScimClient::new(ScimConfig {
        page_size: 2,
        ..config(
            &sim,
            &sim.token_url(),
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            Dialect::Salesforce,
        )
    })
    .unwrap();
    c.discover().await.unwrap();
    let (ids, groups) = seeded(&sim, &c).await;
    let before = sim.inspect().request_log().len();
    let got = c.read_some(&lookup(&ids, &groups)).await.unwrap();
    assert_eq!(answered(&got), expected());
    assert_eq!(c.targeted_reads(), TargetedReads::Single);
    let log: Vec<_> = sim.inspect().request_log().split_off(before);
    let refused: Vec<_> = log.iter().filter(|r| r.status == 400).collect();
    assert_eq!(refused.len(), 1, "`or` is tried once: {refused:#?}");
    // Then one request for totalResults (is a listing cheaper? no), a GET per id, one filter
    // per userName and externalId, a GET for the group by id and one filter per displayName.
    assert_eq!(log.len(), 1 + 1 + 120 + 3 + 2 + 1 + 2, "{}", log.len());
    // The client keeps the lower mode: no `or` again.
    let before = sim.inspect().request_log().len();
    let again = c.read_some(&lookup(&ids, &groups)).await.unwrap();
    assert_eq!(answered(&again), expected());
    let log: Vec<_> = sim.inspect().request_log().split_off(before);
    assert!(log.iter().all(|r| r.status != 400), "{log:#?}");
    assert_eq!(
        log.iter().filter(|r| r.status == 404).count(),
        2,
        "the two absent ids"
    );
    assert_eq!(log.len(), 1 + 120 + 3 + 2 + 1 + 2);
    // A client told what an earlier one learned starts there, and with pages of 200 the
    // listing (2 pages) is cheaper than 125 requests of one key each.
    let other = client(&sim, Dialect::Salesforce);
    other.follow_targeted_reads(TargetedReads::Single);
    other.follow_targeted_reads(TargetedReads::Or);
    assert_eq!(
        other.targeted_reads(),
        TargetedReads::Single,
        "never back up"
    );
    let before = sim.inspect().request_log().len();
    let listed = other.read_some(&lookup(&ids, &groups)).await.unwrap();
    assert_eq!(answered(&listed), expected());
    let log: Vec<_> = sim.inspect().request_log().split_off(before);
    let users: Vec<&str> = log
        .iter()
        .filter(|r| r.path.contains("/Users"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(users.len(), 1 + 2, "{users:#?}");
    assert!(users.iter().all(|p| !p.contains("filter=")), "{users:#?}");
}

#[tokio::test]
async fn read_some_in_the_generic_dialect_finds_the_same_objects() {
    let sim = SalesforceSim::start(SalesforceConfig::generic())
        .await
        .unwrap();
    let c = client(&sim, Dialect::Generic);
    c.discover().await.unwrap();
    let (ids, groups) = seeded(&sim, &c).await;
    let got = c.read_some(&lookup(&ids, &groups)).await.unwrap();
    assert_eq!(answered(&got), expected());
    assert_eq!(c.targeted_reads(), TargetedReads::Or);
}

/// The bench's churn: 1,000 users among 100,000 cost ceil(1000 / 50) = 20 requests.
#[tokio::test]
async fn read_some_of_a_thousand_users_among_a_hundred_thousand_takes_twenty_requests() {
    let sim = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let ids: Vec<String> = (0..100_000)
        .map(|i| {
            sim.seed_user(scimsync_sim::salesforce::SimUser {
                user_name: format!("u{i:06}@example.com"),
                family_name: Some("Lovelace".into()),
                email: format!("u{i:06}@example.com"),
                active: true,
                ..Default::default()
            })
        })
        .collect();
    let c = client(&sim, Dialect::Salesforce);
    c.discover().await.unwrap();
    let asked: Vec<TargetUserId> = ids
        .iter()
        .step_by(100)
        .map(|i| TargetUserId::from(i.clone()))
        .collect();
    assert_eq!(asked.len(), 1_000);
    let before = c.api_usage().requests;
    let started = Instant::now();
    let got = c
        .read_some(&Lookup {
            user_ids: asked.clone(),
            ..Lookup::default()
        })
        .await
        .unwrap();
    let used = c.api_usage().requests - before;
    eprintln!(
        "read_some: 1,000 of 100,000 users in {used} requests, {:?}",
        started.elapsed()
    );
    let mut got: Vec<TargetUserId> = got.users.into_iter().map(|u| u.id).collect();
    got.sort();
    let mut want = asked;
    want.sort();
    assert_eq!(got, want);
    assert_eq!(used, 20);
}
