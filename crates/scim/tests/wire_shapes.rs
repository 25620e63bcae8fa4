//! Exact wire shapes, checked with wiremock: the token request (form and Basic), the bearer
//! header, PATCH bodies in both dialects, filter escaping, and no secret in any log line.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use scimsync_core::TargetUserId;
use scimsync_core::plan::{EntitlementChange, UserChanges};
use scimsync_core::ports::{ReadScope, Target};
use scimsync_scim::{Auth, ClientAuthMethod, Dialect, ScimClient, ScimConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "consumer-secret-do-not-log";
const TOKEN: &str = "00Dxx!access-token-do-not-log";

async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": TOKEN, "token_type": "Bearer", "scope": "api",
            "instance_url": "https://x", "id": "https://x/id/00D/005", "issued_at": "1700000000000"
        })))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "005A", "userName": "a@example.com"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/services/scim/v2/Users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalResults": 0, "itemsPerPage": 0, "startIndex": 1, "Resources": []
        })))
        .mount(&server)
        .await;
    server
}

fn client(server: &MockServer, dialect: Dialect, method: ClientAuthMethod) -> ScimClient {
    ScimClient::new(ScimConfig {
        backoff_base: Duration::from_millis(5),
        max_attempts: 2,
        ..ScimConfig::new(
            url::Url::parse(&format!("{}/services/scim/v2", server.uri())).unwrap(),
            Auth::ClientCredentials {
                token_url: url::Url::parse(&format!("{}/services/oauth2/token", server.uri()))
                    .unwrap(),
                client_id: "consumer-key".into(),
                client_secret: SecretString::from(SECRET.to_owned()),
                method,
            },
            dialect,
        )
    })
    .unwrap()
}

fn changes() -> UserChanges {
    UserChanges {
        user_name: Some("ada@new.example.com".into()),
        given_name: Some(Some("Ada".into())),
        title: Some(None),
        email: Some("ada@new.example.com".into()),
        work_phone: Some(Some("+15550100".into())),
        entitlements: Some(EntitlementChange {
            profile: "00eA".into(),
            profile_changed: false,
            permission_sets: vec!["0PS1".into()],
            added: vec!["0PS1".into()],
            removed: vec![],
        }),
        role: Some(Some("00EA".into())),
        active: Some(true),
        ..UserChanges::default()
    }
}

async fn patch_body(server: &MockServer) -> Value {
    let reqs = server.received_requests().await.unwrap();
    let patch = reqs
        .iter()
        .rev()
        .find(|r| r.method.as_str() == "PATCH")
        .unwrap();
    serde_json::from_slice(&patch.body).unwrap()
}

#[tokio::test]
async fn salesforce_patch_is_one_pathless_replace_with_removals_by_path() {
    let server = server().await;
    let c = client(&server, Dialect::Salesforce, ClientAuthMethod::Form);
    c.update_user(&TargetUserId::from("005A"), &changes())
        .await
        .unwrap();
    assert_eq!(
        patch_body(&server).await,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "value": {
                    "userName": "ada@new.example.com",
                    "name": {"givenName": "Ada"},
                    "emails": [{"type": "work", "primary": true, "value": "ada@new.example.com"}],
                    "phoneNumbers": [{"type": "work", "value": "+15550100"}],
                    "entitlements": [{"value": "00eA", "type": "Profile"}, {"value": "0PS1", "type": "PermissionSet"}],
                    "roles": [{"value": "00EA"}],
                    "active": true
                }},
                {"op": "remove", "path": "title"}
            ]
        })
    );
}

#[tokio::test]
async fn generic_patch_has_one_operation_per_attribute_with_paths() {
    let server = server().await;
    let c = client(&server, Dialect::Generic, ClientAuthMethod::Basic);
    c.update_user(&TargetUserId::from("005A"), &changes())
        .await
        .unwrap();
    assert_eq!(
        patch_body(&server).await["Operations"],
        json!([
            {"op": "replace", "path": "userName", "value": "ada@new.example.com"},
            {"op": "replace", "path": "name.givenName", "value": "Ada"},
            {"op": "remove", "path": "title"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ada@new.example.com"},
            {"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "+15550100"},
            {"op": "replace", "path": "entitlements", "value": [{"value": "00eA", "type": "Profile"}, {"value": "0PS1", "type": "PermissionSet"}]},
            {"op": "replace", "path": "roles", "value": [{"value": "00EA"}]},
            {"op": "replace", "path": "active", "value": true}
        ])
    );
}

#[tokio::test]
async fn member_patches_in_both_dialects() {
    let server = server().await;
    let ids = [TargetUserId::from("005A"), TargetUserId::from("005B")];
    let sf = client(&server, Dialect::Salesforce, ClientAuthMethod::Form);
    sf.remove_members(&"00G1".into(), &ids).await.unwrap();
    assert_eq!(
        patch_body(&server).await["Operations"],
        json!([{"op": "remove", "path": "members", "value": {"members": [{"value": "005A"}, {"value": "005B"}]}}])
    );
    let generic = client(&server, Dialect::Generic, ClientAuthMethod::Basic);
    generic.remove_members(&"00G1".into(), &ids).await.unwrap();
    assert_eq!(
        patch_body(&server).await["Operations"],
        json!([
            {"op": "remove", "path": "members[value eq \"005A\"]"},
            {"op": "remove", "path": "members[value eq \"005B\"]"}
        ])
    );
}

#[tokio::test]
async fn token_requests_send_the_secret_in_the_form_or_by_basic() {
    let server = server().await;
    client(&server, Dialect::Salesforce, ClientAuthMethod::Form)
        .read(ReadScope {
            groups: false,
            catalogue: true,
        })
        .await
        .ok();
    client(&server, Dialect::Generic, ClientAuthMethod::Basic)
        .read(ReadScope {
            groups: false,
            catalogue: true,
        })
        .await
        .ok();
    let reqs = server.received_requests().await.unwrap();
    let tokens: Vec<_> = reqs
        .iter()
        .filter(|r| r.url.path() == "/services/oauth2/token")
        .collect();
    assert_eq!(tokens.len(), 2);
    let form = String::from_utf8_lossy(&tokens[0].body).into_owned();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(
        form.contains(&format!("client_secret={SECRET}"))
            && form.contains("client_id=consumer-key"),
        "{form}"
    );
    assert!(tokens[0].headers.get("authorization").is_none());
    assert_eq!(
        tokens[0].headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let basic = String::from_utf8_lossy(&tokens[1].body).into_owned();
    assert!(
        !basic.contains(SECRET),
        "Basic keeps the secret out of the body: {basic}"
    );
    let auth = tokens[1]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        format!("consumer-key:{SECRET}")
    );
    // SCIM calls carry the bearer token and ask for SCIM JSON.
    let scim = reqs
        .iter()
        .find(|r| r.url.path().starts_with("/services/scim"))
        .unwrap();
    assert_eq!(
        scim.headers.get("authorization").unwrap(),
        &format!("Bearer {TOKEN}")
    );
    assert!(
        scim.headers
            .get("accept")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("application/scim+json")
    );
}

#[tokio::test]
async fn filters_escape_quotes_and_backslashes() {
    let server = server().await;
    let c = client(&server, Dialect::Salesforce, ClientAuthMethod::Form);
    c.find_user(r#"a"b\c@example.com"#, r#"ext"1\2"#)
        .await
        .unwrap();
    let reqs = server.received_requests().await.unwrap();
    let filters: Vec<String> = reqs
        .iter()
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "filter")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(
        filters,
        vec![
            r#"externalId eq "ext\"1\\2""#.to_owned(),
            r#"userName eq "a\"b\\c@example.com""#.to_owned()
        ]
    );
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_or_token_in_any_log_line_or_error() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/services/scim/v2/Users/005X"))
        .respond_with(ResponseTemplate::new(503).set_body_string("down"))
        .mount(&server)
        .await;
    let c = client(&server, Dialect::Salesforce, ClientAuthMethod::Form);
    c.read(ReadScope {
        groups: false,
        catalogue: true,
    })
    .await
    .ok();
    let err = c.get_user(&"005X".into()).await.unwrap_err();
    c.update_user(&TargetUserId::from("005A"), &changes())
        .await
        .unwrap();
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("Retrying"), "the capture works: {logs}");
    for secret in [SECRET, TOKEN] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
        assert!(!err.to_string().contains(secret) && !format!("{err:?}").contains(secret));
        assert!(!format!("{c:?}").contains(secret));
    }
}
