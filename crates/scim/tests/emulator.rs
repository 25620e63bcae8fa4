//! More of the SCIM client against the Salesforce emulator: every error in the generic dialect
//! too, the disposition of each, retryable limits when retries run out, ETags after an outside
//! change, and sixty mixed operations under an enforced rate.
#![allow(clippy::unwrap_used)]

use scimsync_core::plan::{UserAttributes, UserChanges};
use scimsync_core::ports::{Classify, Disposition, ReadScope, Target};
use scimsync_scim::{
    Auth, ClientAuthMethod, Dialect, ScimClient, ScimConfig, ScimError, TokenFailure,
};
use scimsync_sim::salesforce::{
    BurstKind, ClientKind, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SalesforceConfig, SalesforceSim,
};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(sim: &SalesforceSim, id: &str, secret: &str, dialect: Dialect) -> ScimConfig {
    ScimConfig {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_secs(2),
        requests_per_second: 500,
        ..ScimConfig::new(
            url::Url::parse(&sim.base_url()).unwrap(),
            Auth::ClientCredentials {
                token_url: url::Url::parse(&sim.token_url()).unwrap(),
                client_id: id.to_owned(),
                client_secret: SecretString::from(secret.to_owned()),
                method: ClientAuthMethod::Form,
            },
            dialect,
        )
    }
}

fn attrs(
    sim: &SalesforceSim,
    user_name: &str,
    external_id: &str,
    dialect: Dialect,
) -> UserAttributes {
    let sf = dialect == Dialect::Salesforce;
    UserAttributes {
        user_name: user_name.into(),
        external_id: external_id.into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        display_name: Some("Ada Lovelace".into()),
        nick_name: None,
        title: Some("Engineer".into()),
        email: user_name.into(),
        work_phone: None,
        federation_id: Some(user_name.into()),
        enterprise: Default::default(),
        profile: if sf {
            sim.catalogue_id("Standard User").map(Into::into)
        } else {
            None
        },
        permission_sets: vec![],
        role: None,
    }
}

fn orgs() -> [(Dialect, SalesforceConfig); 2] {
    [
        (Dialect::Salesforce, SalesforceConfig::demo()),
        (Dialect::Generic, SalesforceConfig::generic()),
    ]
}

#[tokio::test]
async fn every_error_in_both_dialects_with_its_disposition() {
    for (dialect, org) in orgs() {
        let org = org
            .with_client("norunas", "s1", ClientKind::NoRunAsUser)
            .with_client("noapi", "s2", ClientKind::NoApiScope)
            .with_client("nomanage", "s3", ClientKind::NoManageUsers);
        let sim = SalesforceSim::start(org).await.unwrap();
        let mut seen: Vec<ScimError> = vec![];
        let with =
            |id: &str, secret: &str| ScimClient::new(config(&sim, id, secret, dialect)).unwrap();

        let err = with(DEMO_CLIENT_ID, "wrong")
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ScimError::Token {
                    failure: TokenFailure::BadClient,
                    ..
                }
            ),
            "{dialect:?}: {err:?}"
        );
        let text = err.to_string();
        if dialect == Dialect::Salesforce {
            assert!(text.contains("Consumer Key and Consumer Secret"), "{text}");
            assert!(
                text.contains("External Client App") && text.contains("Connected App"),
                "{text}"
            );
        } else {
            // RFC 6749 words for a generic target.
            assert!(text.contains("client id and secret"), "{text}");
            assert!(
                text.contains("client_auth") && !text.contains("Connected App"),
                "{text}"
            );
        }
        assert_eq!(err.disposition(), Disposition::Fatal);

        seen.push(err);
        let err = with("unknown-client", DEMO_CLIENT_SECRET)
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err();
        let advice = if dialect == Dialect::Salesforce {
            "Consumer Key"
        } else {
            "client id and secret"
        };
        assert!(err.to_string().contains(advice), "{err}");
        assert_eq!(err.disposition(), Disposition::Fatal);

        seen.push(err);
        let err = with("norunas", "s1")
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("Run As (execution) user"),
            "{dialect:?}: {err}"
        );
        assert_eq!(err.disposition(), Disposition::Fatal);

        let issued = sim.inspect().tokens_issued();
        seen.push(err);
        let err = with("nomanage", "s3")
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ScimError::Unauthorized { .. }), "{err:?}");
        let advice = if dialect == Dialect::Salesforce {
            "Manage Users"
        } else {
            "RFC 7644"
        };
        assert!(err.to_string().contains(advice), "{dialect:?}: {err}");
        assert_eq!(err.disposition(), Disposition::Fatal);
        assert_eq!(
            sim.inspect().tokens_issued(),
            issued + 2,
            "one fresh token, then the error"
        );

        seen.push(err);
        let err = with("noapi", "s2")
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ScimError::Forbidden { .. }), "{err:?}");
        let advice = if dialect == Dialect::Salesforce {
            "(api)"
        } else {
            "scopes or permissions"
        };
        assert!(err.to_string().contains(advice), "{dialect:?}: {err}");
        assert_eq!(err.disposition(), Disposition::Fatal);

        // Refusals keep the target's code and reason.
        let c = with(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);
        c.create_user(&attrs(&sim, "dup@example.com", "D1", dialect))
            .await
            .unwrap();
        seen.push(err);
        let err = c
            .create_user(&attrs(&sim, "dup@example.com", "D2", dialect))
            .await
            .unwrap_err();
        assert!(
            matches!(err.disposition(), Disposition::Refused { .. }),
            "{dialect:?}: {err:?}"
        );
        if dialect == Dialect::Salesforce {
            assert!(err.to_string().contains("DUPLICATE_USERNAME"), "{err}");
            assert_eq!(
                err.disposition(),
                Disposition::Refused {
                    code: Some("DUPLICATE_USERNAME".into())
                }
            );
        }
        // No secret or token in any of it.
        seen.push(err);
        for e in &seen {
            let shown = format!("{e} {e:?}");
            for secret in [DEMO_CLIENT_SECRET, "s1", "s2", "s3"] {
                assert!(!shown.contains(&format!("\"{secret}\"")), "{shown}");
            }
            assert!(!shown.contains(DEMO_CLIENT_SECRET), "{shown}");
        }
    }
}

#[tokio::test]
async fn the_my_domain_message_for_the_login_domain() {
    let sim = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let mut cfg = config(
        &sim,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        Dialect::Salesforce,
    );
    cfg.auth = Auth::ClientCredentials {
        token_url: url::Url::parse(&sim.login_domain_token_url()).unwrap(),
        client_id: DEMO_CLIENT_ID.into(),
        client_secret: SecretString::from(DEMO_CLIENT_SECRET.to_owned()),
        method: ClientAuthMethod::Form,
    };
    let err = ScimClient::new(cfg)
        .unwrap()
        .read(ReadScope {
            groups: false,
            catalogue: true,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("My Domain"), "{err}");
    assert_eq!(err.disposition(), Disposition::Fatal);
}

#[tokio::test]
async fn limits_stay_retryable_when_the_retries_run_out() {
    for (dialect, org, kind) in [
        (
            Dialect::Salesforce,
            SalesforceConfig::demo(),
            BurstKind::RequestLimitExceeded,
        ),
        (
            Dialect::Generic,
            SalesforceConfig::generic(),
            BurstKind::TooManyRequests,
        ),
    ] {
        let sim = SalesforceSim::start(org).await.unwrap();
        let c = ScimClient::new(ScimConfig {
            max_attempts: 1,
            ..config(&sim, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, dialect)
        })
        .unwrap();
        c.read(ReadScope {
            groups: false,
            catalogue: true,
        })
        .await
        .unwrap();
        sim.knobs().rate_limit_burst(1, 1, kind);
        let err = c
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{dialect:?}: {err:?}");
        assert_eq!(
            err.disposition(),
            Disposition::Retryable {
                after: Some(Duration::from_secs(1))
            },
            "{dialect:?}: {err:?}"
        );
        assert!(
            !err.to_string().contains("api` scope"),
            "not the scope message: {err}"
        );
        sim.knobs().fail_next(1, 503);
        let err = c
            .read(ReadScope {
                groups: false,
                catalogue: true,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err.disposition(), Disposition::Retryable { .. }),
            "{err:?}"
        );
        c.read(ReadScope {
            groups: false,
            catalogue: true,
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_group_changed_elsewhere_is_reread_and_patched_again() {
    let sim = SalesforceSim::start(SalesforceConfig::generic())
        .await
        .unwrap();
    let a = ScimClient::new(config(
        &sim,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        Dialect::Generic,
    ))
    .unwrap();
    let b = ScimClient::new(config(
        &sim,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        Dialect::Generic,
    ))
    .unwrap();
    let u = a
        .create_user(&attrs(&sim, "e@example.com", "E1", Dialect::Generic))
        .await
        .unwrap();
    let v = a
        .create_user(&attrs(&sim, "f@example.com", "F1", Dialect::Generic))
        .await
        .unwrap();
    let g = a.create_group("Ops").await.unwrap();
    a.add_members(&g.id, std::slice::from_ref(&u.id))
        .await
        .unwrap();
    // Another writer changes the group; a's ETag is now stale.
    b.read(ReadScope {
        groups: false,
        catalogue: true,
    })
    .await
    .unwrap();
    b.rename_group(&g.id, "Ops 2").await.unwrap();
    let result = a.add_members(&g.id, std::slice::from_ref(&v.id)).await;
    let patches: Vec<_> = sim
        .inspect()
        .request_log()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.status)
        .collect();
    result.unwrap();
    assert_eq!(
        patches.iter().filter(|s| **s == 412).count(),
        1,
        "one 412, then the PATCH again with the current ETag: {patches:?}"
    );
    let group = sim.inspect().group_by_name("Ops 2").unwrap();
    assert_eq!(group.members.len(), 2, "the rename made elsewhere is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_mixed_operations_under_an_enforced_rate() {
    let sim = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let setup = ScimClient::new(config(
        &sim,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        Dialect::Salesforce,
    ))
    .unwrap();
    let mut ids = vec![];
    for i in 0..20 {
        ids.push(
            setup
                .create_user(&attrs(
                    &sim,
                    &format!("s{i}@example.com"),
                    &format!("S{i}"),
                    Dialect::Salesforce,
                ))
                .await
                .unwrap()
                .id,
        );
    }
    const R: u32 = 10;
    sim.knobs().enforce_rps(Some(R));
    let c = Arc::new(
        ScimClient::new(ScimConfig {
            requests_per_second: R,
            max_concurrency: 32,
            ..config(
                &sim,
                DEMO_CLIENT_ID,
                DEMO_CLIENT_SECRET,
                Dialect::Salesforce,
            )
        })
        .unwrap(),
    );
    let start = sim.inspect().request_log().last().unwrap().at;
    let before = sim.inspect().request_log().len();
    let wall = Instant::now();
    let mut tasks = vec![];
    for i in 0..60usize {
        let c = Arc::clone(&c);
        let id = ids[i % 20].clone();
        let new = attrs(
            &sim,
            &format!("n{i}@example.com"),
            &format!("N{i}"),
            Dialect::Salesforce,
        );
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => c.get_user(&id).await.map(|_| ()),
                1 => {
                    c.update_user(
                        &id,
                        &UserChanges {
                            title: Some(Some(format!("T{i}").into())),
                            ..UserChanges::default()
                        },
                    )
                    .await
                }
                _ => c.create_user(&new).await.map(|_| ()),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let rejections = sim.inspect().rate_rejections();
    let late: Vec<_> = rejections
        .iter()
        .filter(|at| **at > start + Duration::from_secs(1))
        .collect();
    let sent = sim.inspect().request_log().len() - before;
    eprintln!(
        "rate: {sent} requests in {:?}, {} rejections, {} after 1 s, stats {:?}",
        wall.elapsed(),
        rejections.len(),
        late.len(),
        c.stats()
    );
    assert!(
        late.is_empty(),
        "rejections after the first second: {late:?}"
    );
    assert_eq!(sim.inspect().users().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_of_salesforces_200_even_when_more_are_asked_for() {
    let sim = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let c = Arc::new(
        ScimClient::new(ScimConfig {
            page_size: 1000,
            requests_per_second: 2000,
            max_concurrency: 32,
            ..config(
                &sim,
                DEMO_CLIENT_ID,
                DEMO_CLIENT_SECRET,
                Dialect::Salesforce,
            )
        })
        .unwrap(),
    );
    let tasks: Vec<_> = (0..450)
        .map(|i| {
            let c = Arc::clone(&c);
            let a = attrs(
                &sim,
                &format!("p{i}@example.com"),
                &format!("P{i}"),
                Dialect::Salesforce,
            );
            tokio::spawn(async move { c.create_user(&a).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let before = sim.inspect().count("GET", "/services/scim/v2/Users");
    let users = c.list_users().await.unwrap();
    assert_eq!(users.len(), 450);
    let mut ids: Vec<_> = users.iter().map(|u| u.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 450, "no user twice");
    assert_eq!(
        sim.inspect().count("GET", "/services/scim/v2/Users") - before,
        3,
        "200 + 200 + 50"
    );
}

#[tokio::test]
async fn check_stops_at_the_first_failing_step_with_its_advice() {
    for (dialect, org) in orgs() {
        let org = org
            .with_client("noapi", "s2", ClientKind::NoApiScope)
            .with_client("nomanage", "s3", ClientKind::NoManageUsers);
        let sim = SalesforceSim::start(org).await.unwrap();
        let check = |id: &str, secret: &str| {
            let c = ScimClient::new(config(&sim, id, secret, dialect)).unwrap();
            async move { c.check().await }
        };
        let ok = check(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).await;
        assert!(ok.iter().all(|s| s.ok), "{dialect:?}: {ok:?}");
        let names: Vec<_> = ok.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names[..2], ["token", "service provider config"]);

        let bad = check(DEMO_CLIENT_ID, "wrong").await;
        assert_eq!(bad.len(), 1, "{bad:?}");
        let (key, api, manage) = if dialect == Dialect::Salesforce {
            ("Consumer Key", "(api)", "Manage Users")
        } else {
            ("client id and secret", "scopes or permissions", "RFC 7644")
        };
        assert!(!bad[0].ok && bad[0].detail.contains(key), "{bad:?}");
        assert!(!bad[0].detail.contains("wrong\""));

        for (id, secret, advice) in [("noapi", "s2", api), ("nomanage", "s3", manage)] {
            let steps = check(id, secret).await;
            let failed = steps.last().unwrap();
            assert!(steps[0].ok, "{dialect:?}: the token is issued: {steps:?}");
            assert!(
                !failed.ok && failed.detail.contains(advice),
                "{dialect:?}: {steps:?}"
            );
        }
    }
}
