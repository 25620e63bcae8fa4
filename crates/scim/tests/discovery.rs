//! Discovery on the wire, checked with wiremock: the Federation ID goes where the target's
//! schemas say (or where the configuration puts it) and nowhere when undeclared; the catalogue
//! is read only when asked for, and a missing `/Roles` is no failure; without filter support
//! a lookup lists the users; a cached record is followed without asking again; a refused
//! service provider config falls back, while a 403 stays fatal.
#![allow(clippy::unwrap_used)]

use scimsync_core::TargetUserId;
use scimsync_core::plan::{UserAttributes, UserChanges};
use scimsync_core::ports::{Classify, Disposition, ReadScope, Target};
use scimsync_core::target::TargetCapabilities;
use scimsync_scim::{
    Auth, ClientAuthMethod, Dialect, FederationIdPlacement, ScimClient, ScimConfig,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const SALESFORCE: &str = "urn:salesforce:schemas:extension:1.0:User";

fn config(server: &MockServer, dialect: Dialect, placement: FederationIdPlacement) -> ScimConfig {
    ScimConfig {
        backoff_base: Duration::from_millis(5),
        max_attempts: 2,
        federation_id: placement,
        ..ScimConfig::new(
            url::Url::parse(&format!("{}/scim/v2", server.uri())).unwrap(),
            Auth::ClientCredentials {
                token_url: url::Url::parse(&format!("{}/oauth2/token", server.uri())).unwrap(),
                client_id: "key".into(),
                client_secret: SecretString::from("secret".to_owned()),
                method: ClientAuthMethod::Form,
            },
            dialect,
        )
    }
}

fn client(server: &MockServer, dialect: Dialect, placement: FederationIdPlacement) -> ScimClient {
    ScimClient::new(config(server, dialect, placement)).unwrap()
}

fn list(resources: Vec<Value>) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
           "totalResults": resources.len(), "startIndex": 1,
           "itemsPerPage": resources.len(), "Resources": resources})
}

fn spc(filter: bool, etag: bool) -> Value {
    json!({"patch": {"supported": true}, "filter": {"supported": filter, "maxResults": 200},
           "sort": {"supported": false}, "etag": {"supported": etag}})
}

fn resource_types(extensions: &[&str]) -> Value {
    let ext: Vec<Value> = extensions.iter().map(|s| json!({"schema": s})).collect();
    list(vec![
        json!({"id": "User", "name": "User", "endpoint": "/Users", "schema": USER, "schemaExtensions": ext}),
        json!({"id": "Entitlement", "name": "Entitlement", "endpoint": "/Entitlements"}),
        json!({"id": "Role", "name": "Role", "endpoint": "/Roles"}),
    ])
}

fn schemas(with_salesforce: bool) -> Value {
    let mut docs = vec![
        json!({"id": USER, "attributes": [
            {"name": "userName", "required": true},
            {"name": "name", "subAttributes": [{"name": "givenName"}, {"name": "familyName"}]},
            {"name": "displayName"}, {"name": "emails"}, {"name": "active"},
            {"name": "entitlements"}, {"name": "roles"}
        ]}),
        json!({"id": ENTERPRISE, "attributes": [{"name": "employeeNumber"}, {"name": "department"}]}),
    ];
    if with_salesforce {
        docs.push(json!({"id": SALESFORCE, "attributes": [{"name": "federationIdentifier"}]}));
    }
    list(docs)
}

async fn get(server: &MockServer, p: &str, status: u16, body: Value) {
    Mock::given(method("GET"))
        .and(path(format!("/scim/v2/{p}")))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

/// A token endpoint, and `POST`/`PATCH` on users answering a user that echoes the body.
async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "t", "token_type": "Bearer"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/scim/v2/Users"))
        .respond_with(|req: &Request| {
            let mut body: Value = serde_json::from_slice(&req.body).unwrap();
            body["id"] = json!("005A");
            ResponseTemplate::new(201).set_body_json(body)
        })
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/scim/v2/Users/005A"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"id": "005A", "userName": "ada@example.com", "active": true}),
            ),
        )
        .mount(&server)
        .await;
    server
}

async fn discovery(server: &MockServer, extensions: &[&str], with_salesforce: bool) {
    get(server, "ServiceProviderConfigs", 200, spc(true, false)).await;
    get(server, "ResourceTypes", 200, resource_types(extensions)).await;
    get(server, "Schemas", 200, schemas(with_salesforce)).await;
}

fn ada() -> UserAttributes {
    UserAttributes {
        user_name: "ada@example.com".into(),
        external_id: "DU1".into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        display_name: None,
        nick_name: None,
        title: None,
        email: "ada@example.com".into(),
        work_phone: None,
        federation_id: Some("ada@corp.example.com".into()),
        enterprise: Default::default(),
        profile: Some("00eP".into()),
        permission_sets: vec![],
        role: None,
    }
}

fn new_federation_id() -> UserChanges {
    UserChanges {
        federation_id: Some(Some("ada@new.example.com".into())),
        title: Some(Some("Countess".into())),
        ..Default::default()
    }
}

async fn bodies(server: &MockServer, m: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == m && r.url.path().starts_with("/scim/v2/Users"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_declared_salesforce_extension_carries_the_federation_id() {
    let server = server().await;
    discovery(&server, &[ENTERPRISE, SALESFORCE], true).await;
    let c = client(&server, Dialect::Salesforce, FederationIdPlacement::Auto);
    let caps = c.discover().await.unwrap();
    assert_eq!(
        caps.federation_id_path.as_deref(),
        Some("urn:salesforce:schemas:extension:1.0:User:federationIdentifier")
    );
    assert!(caps.declares("federationId") && !caps.declares("title"));
    assert_eq!(caps.max_results, Some(200));
    let created = c.create_user(&ada()).await.unwrap();
    assert_eq!(
        created.federation_id.as_deref(),
        Some("ada@corp.example.com"),
        "read back at the same path"
    );
    c.update_user(&TargetUserId::from("005A"), &new_federation_id())
        .await
        .unwrap();
    let post = &bodies(&server, "POST").await[0];
    assert_eq!(
        post[SALESFORCE]["federationIdentifier"],
        "ada@corp.example.com"
    );
    assert!(
        post["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(SALESFORCE))
    );
    let patch = &bodies(&server, "PATCH").await[0];
    assert_eq!(
        patch["Operations"][0]["value"][SALESFORCE]["federationIdentifier"],
        "ada@new.example.com"
    );
}

#[tokio::test]
async fn without_the_extension_no_federation_id_is_sent_in_either_dialect() {
    for dialect in [Dialect::Salesforce, Dialect::Generic] {
        let server = server().await;
        discovery(&server, &[ENTERPRISE], false).await;
        get(&server, "ServiceProviderConfig", 200, spc(true, false)).await;
        let c = client(&server, dialect, FederationIdPlacement::Auto);
        let caps = c.discover().await.unwrap();
        assert_eq!(caps.federation_id_path, None, "{dialect:?}");
        assert!(
            caps.notes
                .iter()
                .any(|n| n.contains("SSO must match on the userName")),
            "{:?}",
            caps.notes
        );
        c.create_user(&ada()).await.unwrap();
        c.update_user(&TargetUserId::from("005A"), &new_federation_id())
            .await
            .unwrap();
        for body in bodies(&server, "POST")
            .await
            .into_iter()
            .chain(bodies(&server, "PATCH").await)
        {
            let text = body.to_string();
            assert!(
                !text.contains("ada@corp.example.com") && !text.contains("ada@new.example.com"),
                "{dialect:?}: {text}"
            );
            assert!(
                !text.contains("federationIdentifier"),
                "{dialect:?}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn a_configured_path_puts_the_federation_id_there() {
    let employee = format!("{ENTERPRISE}:employeeNumber");
    for dialect in [Dialect::Salesforce, Dialect::Generic] {
        let server = server().await;
        discovery(&server, &[ENTERPRISE, SALESFORCE], true).await;
        get(&server, "ServiceProviderConfig", 200, spc(true, false)).await;
        let c = client(
            &server,
            dialect,
            FederationIdPlacement::Path(employee.clone()),
        );
        let caps = c.discover().await.unwrap();
        assert_eq!(caps.federation_id_path.as_deref(), Some(employee.as_str()));
        let created = c.create_user(&ada()).await.unwrap();
        assert_eq!(
            created.federation_id.as_deref(),
            Some("ada@corp.example.com")
        );
        c.update_user(&TargetUserId::from("005A"), &new_federation_id())
            .await
            .unwrap();
        let post = &bodies(&server, "POST").await[0];
        assert_eq!(post[ENTERPRISE]["employeeNumber"], "ada@corp.example.com");
        assert!(post.get(SALESFORCE).is_none(), "{post}");
        let patch = &bodies(&server, "PATCH").await[0];
        let ops = patch["Operations"].as_array().unwrap();
        match dialect {
            Dialect::Salesforce => assert_eq!(
                ops[0]["value"][ENTERPRISE]["employeeNumber"],
                "ada@new.example.com"
            ),
            Dialect::Generic => assert!(
                ops.iter()
                    .any(|o| o["path"] == employee.as_str() && o["value"] == "ada@new.example.com"),
                "{patch}"
            ),
        }
    }
}

#[tokio::test]
async fn a_matching_key_is_refused_as_the_federation_id_path() {
    let server = MockServer::start().await;
    for refused in ["externalId", "userName", &format!("{USER}:userName")] {
        let err = ScimClient::new(config(
            &server,
            Dialect::Salesforce,
            FederationIdPlacement::Path(refused.to_owned()),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("matches accounts on"), "{err}");
    }
}

#[tokio::test]
async fn the_catalogue_is_read_only_when_asked_for() {
    let server = server().await;
    get(&server, "Users", 200, list(vec![])).await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Entitlements"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![])))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Roles"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![])))
        .expect(0)
        .mount(&server)
        .await;
    let c = client(&server, Dialect::Salesforce, FederationIdPlacement::Auto);
    let snapshot = c
        .read(ReadScope {
            groups: false,
            catalogue: false,
        })
        .await
        .unwrap();
    assert_eq!(snapshot.catalogue, Default::default());
    server.verify().await;
}

#[tokio::test]
async fn a_404_on_roles_gives_no_roles_not_a_failed_read() {
    let server = server().await;
    get(&server, "Users", 200, list(vec![])).await;
    get(
        &server,
        "Entitlements",
        200,
        list(vec![
            json!({"id": "00eP", "displayName": "Standard User", "type": "Profile"}),
        ]),
    )
    .await;
    get(
        &server,
        "Roles",
        404,
        json!({"detail": "not found", "status": 404}),
    )
    .await;
    let c = client(&server, Dialect::Salesforce, FederationIdPlacement::Auto);
    let snapshot = c
        .read(ReadScope {
            groups: false,
            catalogue: true,
        })
        .await
        .unwrap();
    assert_eq!(snapshot.catalogue.profiles.len(), 1);
    assert!(snapshot.catalogue.roles.is_empty());
}

#[tokio::test]
async fn roles_are_not_asked_of_a_target_that_declares_none() {
    let server = server().await;
    get(&server, "Users", 200, list(vec![])).await;
    get(&server, "Entitlements", 200, list(vec![])).await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Roles"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![])))
        .expect(0)
        .mount(&server)
        .await;
    let c = client(&server, Dialect::Salesforce, FederationIdPlacement::Auto);
    c.use_capabilities(&TargetCapabilities {
        patch: true,
        filter: true,
        entitlements: true,
        roles: false,
        ..Default::default()
    });
    let snapshot = c
        .read(ReadScope {
            groups: false,
            catalogue: true,
        })
        .await
        .unwrap();
    assert!(snapshot.catalogue.roles.is_empty());
    assert!(
        snapshot.capabilities.is_some(),
        "the record followed is reported"
    );
    server.verify().await;
}

#[tokio::test]
async fn without_filters_a_lookup_lists_and_matches_case_insensitively() {
    let server = server().await;
    get(&server, "ServiceProviderConfigs", 200, spc(false, false)).await;
    get(&server, "ResourceTypes", 404, json!({"detail": "no"})).await;
    get(&server, "Schemas", 404, json!({"detail": "no"})).await;
    get(
        &server,
        "Users",
        200,
        list(vec![
            json!({"id": "005A", "userName": "ada@example.com", "externalId": "DU1"}),
            json!({"id": "005B", "userName": "bob@example.com"}),
        ]),
    )
    .await;
    let c = client(&server, Dialect::Salesforce, FederationIdPlacement::Auto);
    let caps = c.discover().await.unwrap();
    assert!(!caps.filter);
    assert!(caps.entitlements && caps.roles, "assumed for Salesforce");
    assert_eq!(caps.user_attributes, None);
    let bob = c
        .find_user("BOB@example.com", "nope")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.id.as_str(), "005B");
    let ada = c.find_user("x@example.com", "du1").await.unwrap().unwrap();
    assert_eq!(ada.id.as_str(), "005A");
    assert!(
        c.find_user("x@example.com", "nope")
            .await
            .unwrap()
            .is_none()
    );
    let users: Vec<Request> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "GET" && r.url.path() == "/scim/v2/Users")
        .collect();
    assert_eq!(users.len(), 3);
    assert!(
        users
            .iter()
            .all(|r| !r.url.query().unwrap_or_default().contains("filter")),
        "no filter sent"
    );
}

#[tokio::test]
async fn a_cached_record_is_followed_etags_and_page_size() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scim/v2/Users/005A"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ETag", "W/\"1\"")
                .set_body_json(json!({"id": "005A", "userName": "ada@example.com"})),
        )
        .mount(&server)
        .await;
    let c = client(&server, Dialect::Generic, FederationIdPlacement::Auto);
    c.use_capabilities(&TargetCapabilities {
        patch: true,
        filter: true,
        etag: false,
        max_results: Some(50),
        ..Default::default()
    });
    c.list_users().await.unwrap();
    c.get_user(&TargetUserId::from("005A")).await.unwrap();
    c.update_user(&TargetUserId::from("005A"), &new_federation_id())
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let list = requests
        .iter()
        .find(|r| r.url.path() == "/scim/v2/Users" && r.method.as_str() == "GET")
        .unwrap();
    assert!(
        list.url.query().unwrap().contains("count=50"),
        "{:?}",
        list.url
    );
    let patch = requests
        .iter()
        .find(|r| r.method.as_str() == "PATCH")
        .unwrap();
    assert!(
        !patch.headers.contains_key("if-match"),
        "no If-Match when ETags are not declared"
    );
    assert_eq!(
        c.capabilities().unwrap().max_results,
        Some(50),
        "the record is kept"
    );
    assert!(
        !patch.body.windows(6).any(|w| w == b"ada@ne"),
        "generic + auto + no discovered path: no Federation ID"
    );
}

#[tokio::test]
async fn the_service_provider_config_falls_back_but_a_403_is_fatal() {
    // Salesforce: the plural 404s, the singular answers.
    let server = server().await;
    get(
        &server,
        "ServiceProviderConfigs",
        404,
        json!({"detail": "no"}),
    )
    .await;
    get(&server, "ServiceProviderConfig", 200, spc(true, true)).await;
    get(&server, "ResourceTypes", 200, resource_types(&[])).await;
    get(&server, "Schemas", 200, list(vec![])).await;
    let c = client(&server, Dialect::Salesforce, FederationIdPlacement::Auto);
    let caps = c.discover().await.unwrap();
    assert!(caps.etag, "read from the singular");
    assert!(
        caps.notes
            .iter()
            .any(|n| n.contains("/Schemas lists no schema"))
    );

    // Neither: the fallback.
    let server = server_with_403_or_404(404).await;
    let caps = client(&server, Dialect::Generic, FederationIdPlacement::Auto)
        .discover()
        .await
        .unwrap();
    assert!(caps.patch && caps.filter && !caps.etag && caps.max_results.is_none());
    assert!(
        caps.notes[0].starts_with("no service provider config"),
        "{:?}",
        caps.notes
    );
    assert!(!caps.entitlements && !caps.roles, "generic assumes none");

    let server = server_with_403_or_404(403).await;
    let err = client(&server, Dialect::Generic, FederationIdPlacement::Auto)
        .discover()
        .await
        .unwrap_err();
    assert_eq!(err.disposition(), Disposition::Fatal, "{err}");
}

async fn server_with_403_or_404(status: u16) -> MockServer {
    let server = server().await;
    for p in [
        "ServiceProviderConfig",
        "ServiceProviderConfigs",
        "ResourceTypes",
        "Schemas",
    ] {
        get(
            &server,
            p,
            status,
            json!({"detail": "nope", "status": status}),
        )
        .await;
    }
    server
}
